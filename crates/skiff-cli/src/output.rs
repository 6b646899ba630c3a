//! Output formats (`-o wide|yaml|json|name|jsonpath=...`) and kubectl's table layout of a server Table.

use serde_json::{Value, json};
use skiff_api::ResourceInfo;

use crate::error::CliError;
use crate::resources::kind_prefix;
use crate::{jsonpath, tabwriter, yaml};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The server's Table, columns of priority 0.
    Table,
    /// The server's Table, all columns.
    Wide,
    Yaml,
    Json,
    /// `kind.group/name`.
    Name,
    JsonPath(String),
}

impl Output {
    /// Parses `-o`; `None` is the default table.
    pub fn parse(s: Option<&str>) -> Result<Output, CliError> {
        let Some(s) = s else { return Ok(Output::Table) };
        Ok(match s {
            "" => Output::Table,
            "wide" => Output::Wide,
            "yaml" => Output::Yaml,
            "json" => Output::Json,
            "name" => Output::Name,
            other => match other.split_once('=') {
                Some(("jsonpath" | "jsonpath-as-json", template)) => Output::JsonPath(template.to_string()),
                _ => {
                    return Err(CliError::Usage(format!(
                        "unable to match a printer suitable for the output format \"{other}\", allowed formats are: json,jsonpath,jsonpath-as-json,name,wide,yaml"
                    )));
                }
            },
        })
    }

    pub fn is_table(&self) -> bool {
        matches!(self, Output::Table | Output::Wide)
    }
}

/// Prints objects (a single object when `single`, else a `List`) in a non-table format.
pub fn print_objects(objects: &[Value], single: bool, output: &Output) -> Result<String, CliError> {
    let objects: Vec<Value> = objects.iter().cloned().map(without_managed_fields).collect();
    let data = if single && objects.len() == 1 {
        objects[0].clone()
    } else {
        json!({"apiVersion": "v1", "items": objects, "kind": "List", "metadata": {"resourceVersion": ""}})
    };
    Ok(match output {
        Output::Yaml => yaml::to_yaml(&data),
        Output::Json => format!("{}\n", to_json(&data)),
        Output::Name => objects.iter().map(|o| format!("{}\n", object_name(o))).collect(),
        Output::JsonPath(t) => {
            jsonpath::render(t, &data).map_err(|e| CliError::Failed(format!("error parsing jsonpath {t}, {e}")))?
        }
        Output::Table | Output::Wide => String::new(),
    })
}

/// kubectl hides `metadata.managedFields` unless `--show-managed-fields`.
pub fn without_managed_fields(mut obj: Value) -> Value {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    obj
}

/// JSON indented by four spaces, as kubectl's JSON printer writes it.
pub fn to_json(v: &Value) -> String {
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    match serde::Serialize::serialize(v, &mut ser) {
        Ok(()) => String::from_utf8(buf).unwrap_or_default(),
        Err(_) => v.to_string(),
    }
}

/// `deployment.apps/web` for an object.
pub fn object_name(obj: &Value) -> String {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    let prefix =
        if group.is_empty() { kind.to_ascii_lowercase() } else { format!("{}.{group}", kind.to_ascii_lowercase()) };
    format!("{prefix}/{}", skiff_api::meta::name(obj))
}

/// Puts `apiVersion` and `kind` back on list items (the server leaves them out).
pub fn with_type(mut obj: Value, r: &ResourceInfo) -> Value {
    if let Some(map) = obj.as_object_mut() {
        map.entry("apiVersion").or_insert_with(|| json!(r.api_version()));
        map.entry("kind").or_insert_with(|| json!(r.kind));
    }
    obj
}

/// How one Table is laid out.
#[derive(Debug, Clone, Default)]
pub struct TableOptions {
    pub wide: bool,
    /// `kind.group` to prefix names with when several kinds are printed.
    pub kind_prefix: Option<String>,
    /// A NAMESPACE column first (`-A`).
    pub namespace_column: bool,
    pub no_headers: bool,
    pub show_labels: bool,
}

impl TableOptions {
    pub fn for_resource(r: &ResourceInfo, several_kinds: bool, all_namespaces: bool, wide: bool) -> Self {
        TableOptions {
            wide,
            kind_prefix: several_kinds.then(|| kind_prefix(r)),
            namespace_column: all_namespaces && r.namespaced(),
            ..Default::default()
        }
    }
}

/// The tab-separated lines (header unless `no_headers`) for a server Table; formatting happens
/// with [`tabwriter::format`] so several tables can be laid out separately.
pub fn table_lines(table: &Value, opts: &TableOptions) -> (String, usize) {
    let columns: Vec<&Value> =
        table.get("columnDefinitions").and_then(Value::as_array).map(|c| c.iter().collect()).unwrap_or_default();
    let shown: Vec<usize> = (0..columns.len())
        .filter(|i| opts.wide || columns[*i].get("priority").and_then(Value::as_i64).unwrap_or(0) == 0)
        .collect();
    let rows = table.get("rows").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut out = String::new();
    if !opts.no_headers {
        let mut header: Vec<String> = Vec::new();
        if opts.namespace_column {
            header.push("NAMESPACE".into());
        }
        header
            .extend(shown.iter().map(|i| columns[*i].get("name").and_then(Value::as_str).unwrap_or("").to_uppercase()));
        if opts.show_labels {
            header.push("LABELS".into());
        }
        out.push_str(&header.join("\t"));
        out.push('\n');
    }
    for row in &rows {
        let cells = row.get("cells").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut line: Vec<String> = Vec::new();
        if opts.namespace_column {
            line.push(row.pointer("/object/metadata/namespace").and_then(Value::as_str).unwrap_or("").to_string());
        }
        for i in &shown {
            let mut text = cell_text(cells.get(*i).unwrap_or(&Value::Null));
            let is_name = columns[*i].get("format").and_then(Value::as_str) == Some("name");
            if let (true, Some(prefix)) = (is_name, &opts.kind_prefix) {
                text = format!("{prefix}/{text}");
            }
            line.push(text);
        }
        if opts.show_labels {
            line.push(labels_text(row.pointer("/object/metadata/labels")));
        }
        out.push_str(&line.join("\t"));
        out.push('\n');
    }
    (out, rows.len())
}

/// A cell as kubectl prints it: strings cut at the first newline, numbers as numbers, nothing as `<none>`.
pub fn cell_text(v: &Value) -> String {
    match v {
        Value::String(s) => match s.split_once('\n') {
            Some((first, _)) => format!("{first}..."),
            None => s.clone(),
        },
        Value::Null => "<none>".into(),
        other => other.to_string(),
    }
}

/// `a=1,b=2` (sorted), or `<none>`.
pub fn labels_text(labels: Option<&Value>) -> String {
    let pairs: Vec<String> = labels
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect())
        .unwrap_or_default();
    if pairs.is_empty() { "<none>".into() } else { pairs.join(",") }
}

/// Lays out tab-separated lines as `kubectl get` does.
pub fn layout(lines: &str) -> String {
    tabwriter::format(lines, tabwriter::GET)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Value {
        json!({"kind":"Table","columnDefinitions":[
            {"name":"Name","type":"string","format":"name","priority":0},
            {"name":"Ready","type":"string","format":"","priority":0},
            {"name":"Restarts","type":"integer","format":"","priority":0},
            {"name":"IP","type":"string","format":"","priority":1}],
          "rows":[{"cells":["web-1","1/1",0,"10.0.0.1"],"object":{"metadata":{"name":"web-1","namespace":"default","labels":{"app":"web"}}}}]})
    }

    #[test]
    fn lays_out_tables_like_kubectl() {
        let (lines, n) = table_lines(&table(), &TableOptions::default());
        assert_eq!(n, 1);
        assert_eq!(layout(&lines), "NAME    READY   RESTARTS\nweb-1   1/1     0\n");
        let opts =
            TableOptions { wide: true, kind_prefix: Some("pod".into()), namespace_column: true, ..Default::default() };
        let (lines, _) = table_lines(&table(), &opts);
        assert_eq!(
            layout(&lines),
            "NAMESPACE   NAME        READY   RESTARTS   IP\ndefault     pod/web-1   1/1     0          10.0.0.1\n"
        );
        let opts = TableOptions { no_headers: true, show_labels: true, ..Default::default() };
        assert_eq!(layout(&table_lines(&table(), &opts).0), "web-1   1/1   0     app=web\n");
    }

    #[test]
    fn parses_output_formats() {
        assert_eq!(Output::parse(None).ok(), Some(Output::Table));
        assert_eq!(Output::parse(Some("jsonpath={.a}")).ok(), Some(Output::JsonPath("{.a}".into())));
        assert!(Output::parse(Some("xml")).is_err());
    }

    #[test]
    fn prints_names_and_lists() {
        let d = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"}});
        assert_eq!(
            print_objects(std::slice::from_ref(&d), true, &Output::Name).expect("name"),
            "deployment.apps/web\n"
        );
        let p = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}});
        assert_eq!(object_name(&p), "pod/p");
        let list =
            print_objects(&[d], false, &Output::JsonPath("{.kind} {.items[0].metadata.name}".into())).expect("jp");
        assert_eq!(list, "List web");
    }
}
