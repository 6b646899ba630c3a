//! The subset of kubectl's JSONPath templates (`k8s.io/client-go/util/jsonpath`) that scripts use:
//! `{.a.b}`, `{.items[*].x}`, `{.items[0]}`, `{..image}`, `{.a['k.with.dots']}`,
//! `{.conditions[?(@.type=="Ready")].status}`, `{range ...}...{end}` and quoted literals `{"\n"}`.
//! Missing keys print nothing (kubectl's `--allow-missing-template-keys=true`).

use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JsonPathError {
    #[error("unclosed action")]
    Unclosed,
    #[error("unrecognized character in action: {0}")]
    Unrecognized(String),
    #[error("not in range, nothing to end")]
    UnmatchedEnd,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    Wildcard,
    Recursive(Option<String>),
    Filter { path: Vec<Step>, op: String, value: Value },
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Path(Vec<Step>),
    Range(Vec<Step>, Vec<Node>),
}

/// Evaluates a template against an object, as `kubectl get -o jsonpath=TEMPLATE` prints it.
pub fn render(template: &str, data: &Value) -> Result<String, JsonPathError> {
    let nodes = parse(template)?;
    let mut out = String::new();
    eval(&nodes, data, &mut out);
    Ok(out)
}

fn parse(template: &str) -> Result<Vec<Node>, JsonPathError> {
    let mut stack: Vec<(Vec<Step>, Vec<Node>)> = vec![(Vec::new(), Vec::new())];
    let mut rest = template;
    while !rest.is_empty() {
        let Some(open) = rest.find('{') else {
            push(&mut stack, Node::Text(rest.to_string()));
            break;
        };
        if open > 0 {
            push(&mut stack, Node::Text(rest[..open].to_string()));
        }
        let close = find_close(&rest[open..]).ok_or(JsonPathError::Unclosed)? + open;
        let action = rest[open + 1..close].trim();
        rest = &rest[close + 1..];
        if let Some(path) = action.strip_prefix("range ") {
            stack.push((parse_path(path.trim())?, Vec::new()));
        } else if action == "end" {
            if stack.len() < 2 {
                return Err(JsonPathError::UnmatchedEnd);
            }
            let (path, body) = stack.pop().ok_or(JsonPathError::UnmatchedEnd)?;
            push(&mut stack, Node::Range(path, body));
        } else if action.starts_with('"') {
            push(&mut stack, Node::Text(unquote(action)));
        } else {
            push(&mut stack, Node::Path(parse_path(action)?));
        }
    }
    if stack.len() != 1 {
        return Err(JsonPathError::Unclosed);
    }
    Ok(stack.pop().map(|(_, nodes)| nodes).unwrap_or_default())
}

fn push(stack: &mut [(Vec<Step>, Vec<Node>)], node: Node) {
    if let Some((_, nodes)) = stack.last_mut() {
        nodes.push(node);
    }
}

/// The index of the `}` closing the action that starts at `s[0] == '{'`, skipping quoted text.
fn find_close(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (Some(_), '\\') if !escaped => escaped = true,
            (Some(q), c) if c == q && !escaped => quote = None,
            (Some(_), _) => escaped = false,
            (None, '"' | '\'') => quote = Some(c),
            (None, '}') => return Some(i),
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> String {
    let inner = s.trim_matches('"');
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_path(s: &str) -> Result<Vec<Step>, JsonPathError> {
    let mut steps = Vec::new();
    let mut rest = s.strip_prefix('$').unwrap_or(s);
    if rest == "@" {
        return Ok(steps);
    }
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("..") {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let name = &after[..end];
            steps.push(Step::Recursive((!name.is_empty() && name != "*").then(|| name.to_string())));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let name = &after[..end];
            if name == "*" {
                steps.push(Step::Wildcard);
            } else if !name.is_empty() {
                steps.push(Step::Field(name.to_string()));
            }
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = bracket_end(after).ok_or(JsonPathError::Unclosed)?;
            steps.push(parse_bracket(after[..end].trim())?);
            rest = &after[end + 1..];
        } else {
            return Err(JsonPathError::Unrecognized(rest.to_string()));
        }
    }
    Ok(steps)
}

fn bracket_end(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') if depth == 0 => return Some(i),
            (None, ']') => depth -= 1,
            _ => {}
        }
    }
    None
}

fn parse_bracket(inner: &str) -> Result<Step, JsonPathError> {
    if inner == "*" {
        return Ok(Step::Wildcard);
    }
    if let Some(filter) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
        let ops = ["==", "!=", "<=", ">=", "<", ">"];
        let Some((pos, op)) = ops.iter().filter_map(|op| filter.find(op).map(|p| (p, *op))).min_by_key(|(p, _)| *p)
        else {
            let path = parse_path(filter.trim().strip_prefix('@').unwrap_or(filter.trim()))?;
            return Ok(Step::Filter { path, op: "exists".into(), value: Value::Null });
        };
        let lhs = filter[..pos].trim();
        let rhs = filter[pos + op.len()..].trim();
        let path = parse_path(lhs.strip_prefix('@').unwrap_or(lhs))?;
        let value = if rhs.starts_with(['"', '\'']) {
            Value::String(rhs.trim_matches(['"', '\'']).to_string())
        } else {
            serde_json::from_str(rhs).unwrap_or_else(|_| Value::String(rhs.to_string()))
        };
        return Ok(Step::Filter { path, op: op.to_string(), value });
    }
    if inner.starts_with(['\'', '"']) {
        return Ok(Step::Field(inner.trim_matches(['\'', '"']).replace("\\.", ".")));
    }
    inner.parse::<i64>().map(Step::Index).map_err(|_| JsonPathError::Unrecognized(format!("[{inner}]")))
}

fn select<'a>(steps: &[Step], data: &'a Value) -> Vec<&'a Value> {
    let mut current = vec![data];
    for step in steps {
        let mut next = Vec::new();
        for v in current {
            match step {
                Step::Field(name) => next.extend(v.get(name)),
                Step::Index(i) => {
                    if let Some(items) = v.as_array() {
                        let idx = if *i < 0 { items.len() as i64 + i } else { *i };
                        next.extend(usize::try_from(idx).ok().and_then(|i| items.get(i)));
                    }
                }
                Step::Wildcard => match v {
                    Value::Array(items) => next.extend(items.iter()),
                    Value::Object(map) => next.extend(map.values()),
                    _ => {}
                },
                Step::Recursive(name) => recurse(v, name.as_deref(), &mut next),
                Step::Filter { path, op, value } => {
                    let items: Vec<&Value> = match v {
                        Value::Array(items) => items.iter().collect(),
                        other => vec![other],
                    };
                    next.extend(items.into_iter().filter(|item| {
                        let found = select(path, item);
                        match op.as_str() {
                            "exists" => !found.is_empty(),
                            _ => found.first().is_some_and(|f| compare(f, op, value)),
                        }
                    }));
                }
            }
        }
        current = next;
    }
    current
}

fn compare(left: &Value, op: &str, right: &Value) -> bool {
    match op {
        "==" => left == right || left.as_f64().zip(right.as_f64()).is_some_and(|(a, b)| a == b),
        "!=" => left != right,
        _ => match (left.as_f64(), right.as_f64()) {
            (Some(a), Some(b)) => match op {
                "<" => a < b,
                ">" => a > b,
                "<=" => a <= b,
                _ => a >= b,
            },
            _ => false,
        },
    }
}

fn recurse<'a>(v: &'a Value, name: Option<&str>, out: &mut Vec<&'a Value>) {
    match name {
        None => out.push(v),
        Some(n) => out.extend(v.get(n)),
    }
    match v {
        Value::Object(map) => map.values().for_each(|c| recurse(c, name, out)),
        Value::Array(items) => items.iter().for_each(|c| recurse(c, name, out)),
        _ => {}
    }
}

fn eval(nodes: &[Node], data: &Value, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Path(steps) => {
                let values: Vec<String> = select(steps, data).into_iter().map(print_value).collect();
                out.push_str(&values.join(" "));
            }
            Node::Range(steps, body) => {
                for item in select(steps, data) {
                    match item {
                        Value::Array(items) if matches!(steps.last(), Some(Step::Field(_))) => {
                            items.iter().for_each(|i| eval(body, i, out));
                        }
                        other => eval(body, other, out),
                    }
                }
            }
        }
    }
}

/// Strings print raw; everything else prints as compact JSON, as Go's `fmt` does for JSONPath values.
fn print_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_common_templates() {
        let list = json!({"kind":"List","items":[
            {"metadata":{"name":"a","labels":{"app.kubernetes.io/name":"x"}},"spec":{"containers":[{"image":"nginx"},{"image":"busybox"}]},
             "status":{"conditions":[{"type":"Ready","status":"True"},{"type":"Available","status":"False"}]}},
            {"metadata":{"name":"b"},"spec":{"replicas":3,"containers":[{"image":"redis"}]}}]});
        let cases: &[(&str, &str)] = &[
            ("{.items[0].metadata.name}", "a"),
            ("{.items[*].metadata.name}", "a b"),
            ("{range .items[*]}{.metadata.name}{\"\\n\"}{end}", "a\nb\n"),
            ("{..image}", "nginx busybox redis"),
            ("{.items[0].status.conditions[?(@.type==\"Available\")].status}", "False"),
            ("{.items[0].metadata.labels['app\\.kubernetes\\.io/name']}", "x"),
            ("{.items[1].spec.replicas}", "3"),
            ("{.items[1].metadata}", "{\"name\":\"b\"}"),
            ("{.items[-1].metadata.name}", "b"),
            ("{.items[0].missing}", ""),
            ("name={.items[0].metadata.name}!", "name=a!"),
            ("{.items[?(@.spec.replicas>2)].metadata.name}", "b"),
        ];
        for (template, want) in cases {
            assert_eq!(render(template, &list).as_deref(), Ok(*want), "{template}");
        }
    }

    #[test]
    fn rejects_malformed_templates() {
        assert_eq!(render("{.a", &json!({})), Err(JsonPathError::Unclosed));
        assert_eq!(render("{end}", &json!({})), Err(JsonPathError::UnmatchedEnd));
        assert_eq!(render("{range .a}", &json!({})), Err(JsonPathError::Unclosed));
    }
}
