//! YAML output as kubectl writes it (`sigs.k8s.io/yaml`, i.e. go-yaml v2 over the object's JSON):
//! keys sorted, two-space indentation, sequences not indented under their key, `{}` and `[]` for
//! empty collections, double quotes for strings that would read back as another type, single
//! quotes for strings plain style cannot carry, literal blocks for multi-line strings.

use serde_json::Value;

/// The YAML document for one JSON value (object keys come out sorted: `serde_json::Map` is ordered).
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(map, 0, &mut out),
        Value::Array(items) if !items.is_empty() => write_seq(items, 0, &mut out),
        other => {
            out.push_str(&scalar(other, 0));
            out.push('\n');
        }
    }
    out
}

fn write_map(map: &serde_json::Map<String, Value>, indent: usize, out: &mut String) {
    for (key, value) in map {
        out.extend(std::iter::repeat_n(' ', indent));
        out.push_str(&string_scalar(key, indent));
        out.push(':');
        write_value_after_key(value, indent, out);
    }
}

fn write_value_after_key(value: &Value, indent: usize, out: &mut String) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            write_map(m, indent + 2, out);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_seq(items, indent, out);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other, indent + 2));
            out.push('\n');
        }
    }
}

fn write_seq(items: &[Value], indent: usize, out: &mut String) {
    for item in items {
        out.extend(std::iter::repeat_n(' ', indent));
        out.push('-');
        match item {
            Value::Object(m) if !m.is_empty() => {
                // The first key goes on the dash's line, the others align under it.
                let mut nested = String::new();
                write_map(m, indent + 2, &mut nested);
                out.push(' ');
                out.push_str(&nested[indent + 2..]);
            }
            Value::Array(inner) if !inner.is_empty() => {
                let mut nested = String::new();
                write_seq(inner, indent + 2, &mut nested);
                out.push(' ');
                out.push_str(&nested[indent + 2..]);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other, indent + 2));
                out.push('\n');
            }
        }
    }
}

fn scalar(value: &Value, indent: usize) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string_scalar(s, indent),
        Value::Object(_) => "{}".to_string(),
        Value::Array(_) => "[]".to_string(),
    }
}

/// One string in the style go-yaml v2 picks for it.
fn string_scalar(s: &str, indent: usize) -> String {
    if s.contains('\n') && !s.chars().any(|c| c != '\n' && c.is_control() && c != '\t') {
        return literal_block(s, indent);
    }
    if resolves_to_non_string(s) {
        return double_quoted(s);
    }
    if plain_allowed(s) { s.to_string() } else { format!("'{}'", s.replace('\'', "''")) }
}

fn literal_block(s: &str, indent: usize) -> String {
    let chomp = if s.ends_with('\n') { "" } else { "-" };
    let lead = if s.starts_with(' ') { "2" } else { "" };
    let mut out = format!("|{lead}{chomp}");
    for line in s.strip_suffix('\n').unwrap_or(s).split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.extend(std::iter::repeat_n(' ', indent));
            out.push_str(line);
        }
    }
    out
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether YAML 1.1 (go-yaml v2's resolver) would read the plain scalar as null, a bool, a number
/// or a timestamp.
fn resolves_to_non_string(s: &str) -> bool {
    const SPECIAL: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True",
        "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", ".inf", ".Inf", ".INF", "-.inf",
        "-.Inf", "-.INF", "+.inf", ".nan", ".NaN", ".NAN", "<<",
    ];
    if SPECIAL.contains(&s) {
        return true;
    }
    let plain = s.replace('_', "");
    let digits = plain.strip_prefix(['-', '+']).unwrap_or(&plain);
    let is_int = !digits.is_empty()
        && (digits.chars().all(|c| c.is_ascii_digit())
            || digits.strip_prefix("0x").is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
            || digits.strip_prefix("0b").is_some_and(|b| !b.is_empty() && b.chars().all(|c| c == '0' || c == '1')));
    let is_float = s.starts_with(|c: char| c.is_ascii_digit() || c == '.' || c == '-' || c == '+')
        && s.chars().any(|c| c.is_ascii_digit())
        && plain.parse::<f64>().is_ok();
    is_int || is_float || looks_like_timestamp(s)
}

fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
}

/// libyaml's `yaml_emitter_analyze_scalar` restrictions on plain block scalars.
fn plain_allowed(s: &str) -> bool {
    let first = s.chars().next().unwrap_or(' ');
    let second = s.chars().nth(1);
    if "#,[]{}&*!|>'\"%@`".contains(first) {
        return false;
    }
    if "-?:".contains(first) && second.is_none_or(|c| c == ' ') {
        return false;
    }
    if s.starts_with(' ') || s.ends_with(' ') || s.ends_with(':') {
        return false;
    }
    !(s.contains(": ") || s.contains(" #") || s.contains('\t') || s.chars().any(char::is_control))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_manifest_matches_kubectl() {
        let d = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"labels":{"app":"web"},"name":"web"},
            "spec":{"replicas":1,"selector":{"matchLabels":{"app":"web"}},"strategy":{},
            "template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"image":"nginx","name":"nginx","resources":{}}]}}},
            "status":{}});
        let want = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  labels:\n    app: web\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: web\n  strategy: {}\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - image: nginx\n        name: nginx\n        resources: {}\nstatus: {}\n";
        assert_eq!(to_yaml(&d), want);
    }

    #[test]
    fn scalars_are_quoted_like_go_yaml() {
        let cases: &[(Value, &str)] = &[
            (json!({"a": "2024-01-02T03:04:05Z"}), "a: \"2024-01-02T03:04:05Z\"\n"),
            (json!({"a": ""}), "a: \"\"\n"),
            (json!({"a": "123"}), "a: \"123\"\n"),
            (json!({"a": "true"}), "a: \"true\"\n"),
            (json!({"a": "yes"}), "a: \"yes\"\n"),
            (json!({"a": "*"}), "a: '*'\n"),
            (json!({"a": "a: b"}), "a: 'a: b'\n"),
            (json!({"a": "nginx:1.25"}), "a: nginx:1.25\n"),
            (json!({"a": null}), "a: null\n"),
            (json!({"a": []}), "a: []\n"),
            (json!({"a": ["x", 1]}), "a:\n- x\n- 1\n"),
            (json!({"a": "l1\nl2\n"}), "a: |\n  l1\n  l2\n"),
            (json!({"a": "l1\nl2"}), "a: |-\n  l1\n  l2\n"),
            (json!({"kubernetes.io/x": "v"}), "kubernetes.io/x: v\n"),
            (json!({"a": [{"b": [{"c": 1, "d": 2}]}]}), "a:\n- b:\n  - c: 1\n    d: 2\n"),
        ];
        for (value, want) in cases {
            assert_eq!(to_yaml(value), *want, "{value}");
        }
    }
}
