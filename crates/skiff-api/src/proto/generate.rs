//! The generator of `schema.json`: the protobuf layout (tag, JSON name, cardinality, type) of every
//! message reachable from the kinds Skiff serves.
//!
//! Kubernetes' `generated.proto` files are not available offline and must not be copied into the repo, so
//! the layout is recovered from two crates already on disk:
//! * **k8s-pb** (prost output of the upstream `.proto` files): tags, wire types and message types, from the
//!   `#[prost(...)]` attributes; field names there are snake_case Rust names.
//! * **k8s-openapi**'s `schemars` schemas: the exact JSON property names of each definition. A snake_case
//!   name is joined to the property whose name is equal once both are lowercased and stripped of `_`; the
//!   join must be unique or the generator fails.
//!
//! Regenerate (after bumping either crate) with
//! `cargo test -p skiff-api --lib proto::generate::tests::regenerate_schema -- --ignored`, then
//! `python3 crates/skiff-api/src/proto/probe_omitempty.py` (which reads `schema.json`). The source of
//! k8s-pb is found in `$CARGO_HOME/registry/src/*/k8s-pb-<PB_VERSION>/src` or at `$K8S_PB_SRC`.
//! `schema_matches_generator` (not ignored) fails when the committed file is stale.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::{apps, autoscaling, coordination, core, events, policy};
use k8s_openapi::apimachinery::pkg::apis::meta;
use k8s_openapi::schemars::SchemaGenerator;
use k8s_openapi::schemars::generate::SchemaSettings;
use serde_json::Value;

use super::schema::SPECIAL;

/// The k8s-pb release whose source the generator reads.
const PB_VERSION: &str = "0.9.0";

/// Why generation failed; every variant is a reason to look at the inputs, never to guess.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{0}: cannot parse prost field")]
    Parse(String),
    #[error("message {0} is not in k8s-pb")]
    MissingMessage(String),
    #[error("message {0} has no schemars definition")]
    MissingDefinition(String),
    #[error("{message}.{field}: {count} JSON properties match")]
    Join { message: String, field: String, count: usize },
}

/// One field as prost declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PbField {
    tag: u32,
    rust_name: String,
    /// `""` (optional), `"[]"` (repeated) or `"map"` (a `map<string, type>`).
    label: &'static str,
    /// A scalar (`string`, `int32`, `int64`, `bool`, `bytes`, `double`) or a message's full name.
    ty: String,
}

/// Every message of k8s-pb's `api` and `apimachinery` trees, by full name (`io.k8s.api.apps.v1.Deployment`).
type PbMessages = BTreeMap<String, Vec<PbField>>;

/// Where the k8s-pb source lives on this machine.
pub fn locate_source() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("K8S_PB_SRC") {
        return Some(PathBuf::from(dir));
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let registry = cargo_home.join("registry").join("src");
    let mut found: Vec<PathBuf> = std::fs::read_dir(registry)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join(format!("k8s-pb-{PB_VERSION}")).join("src"))
        .filter(|p| p.is_dir())
        .collect();
    found.sort();
    found.pop()
}

/// Parses every `mod.rs` under `src/api` and `src/apimachinery`.
fn parse_tree(src: &Path) -> Result<PbMessages, GenerateError> {
    let mut out = PbMessages::new();
    for top in ["api", "apimachinery"] {
        let mut stack = vec![src.join(top)];
        while let Some(dir) = stack.pop() {
            let entries =
                std::fs::read_dir(&dir).map_err(|source| GenerateError::Read { path: dir.clone(), source })?;
            for entry in entries.filter_map(Result::ok) {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.file_name().is_some_and(|n| n == "mod.rs") {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|source| GenerateError::Read { path: path.clone(), source })?;
                    let module: Vec<String> = path
                        .parent()
                        .and_then(|p| p.strip_prefix(src).ok())
                        .map(|p| p.iter().map(|s| s.to_string_lossy().into_owned()).collect())
                        .unwrap_or_default();
                    parse_module(&module, &text, &mut out)?;
                }
            }
        }
    }
    Ok(out)
}

/// `io.k8s.` + the module path: k8s-pb mirrors the proto packages (`k8s.io.api.apps.v1`), whose
/// OpenAPI names are `io.k8s.api.apps.v1`.
fn package_name(module: &[String]) -> String {
    format!("io.k8s.{}", module.join("."))
}

/// Parses the prost structs of one module file into `out`.
fn parse_module(module: &[String], text: &str, out: &mut PbMessages) -> Result<(), GenerateError> {
    let package = package_name(module);
    let mut current: Option<(String, Vec<PbField>)> = None;
    let mut attr: Option<String> = None;
    let mut decl = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(rest) = line.strip_prefix("pub struct ") {
            let name = rest.trim_end_matches('{').trim().to_string();
            current = Some((format!("{package}.{name}"), Vec::new()));
            continue;
        }
        if line == "}" {
            if let Some((name, fields)) = current.take() {
                out.insert(name, fields);
            }
            continue;
        }
        if current.is_none() || trimmed.starts_with("///") {
            continue;
        }
        if let Some(a) = trimmed.strip_prefix("#[prost(") {
            attr = Some(a.trim_end_matches(")]").to_string());
            decl.clear();
            continue;
        }
        if attr.is_some() {
            if !decl.is_empty() {
                decl.push(' ');
            }
            decl.push_str(trimmed);
            // A declaration may span lines (`BTreeMap<\n K,\n V,\n>,`): it ends at a `,` outside `<>`.
            if decl.ends_with(',') && decl.matches('<').count() == decl.matches('>').count() {
                let a = attr.take().unwrap_or_default();
                let field = parse_field(module, &a, &decl).ok_or_else(|| GenerateError::Parse(decl.clone()))?;
                if let Some((_, fields)) = current.as_mut() {
                    fields.push(field);
                }
            }
        }
    }
    Ok(())
}

/// One field from its attribute body (`message, optional, tag = "1"`) and its declaration
/// (`pub metadata: ::core::option::Option<super::...::ObjectMeta>,`).
fn parse_field(module: &[String], attr: &str, decl: &str) -> Option<PbField> {
    let tag = attr.split("tag = \"").nth(1)?.split('"').next()?.parse().ok()?;
    let rust_name = decl.strip_prefix("pub ")?.split(':').next()?.trim().trim_start_matches("r#").to_string();
    let ty_text = decl.split_once(':').map(|x| x.1)?.trim().trim_end_matches(',');
    let first = attr.split(',').next()?.trim();
    let (label, ty) = if let Some(map) = attr.strip_prefix("btree_map = \"") {
        let value = map.split('"').next()?.split(", ").nth(1)?;
        let ty = if value == "message" { message_type(module, ty_text)? } else { value.to_string() };
        ("map", ty)
    } else {
        let label = if attr.contains("repeated") { "[]" } else { "" };
        let ty = match first {
            "message" => message_type(module, ty_text)?,
            "bytes = \"vec\"" => "bytes".to_string(),
            scalar @ ("string" | "int32" | "int64" | "bool" | "double") => scalar.to_string(),
            _ => return None,
        };
        (label, ty)
    };
    Some(PbField { tag, rust_name, label, ty })
}

/// The full name of the message a Rust type refers to, resolving `super::` against the module.
fn message_type(module: &[String], ty_text: &str) -> Option<String> {
    // The innermost generic argument is the message path (`Option<Box<X>>`, `Vec<X>`, `BTreeMap<K, X>`).
    let inner = ty_text.rsplit(['<', ' ']).find(|s| !s.is_empty() && *s != ">")?.trim_end_matches(['>', ',']);
    let mut module: Vec<String> = module.to_vec();
    let mut rest = inner;
    while let Some(r) = rest.strip_prefix("super::") {
        module.pop();
        rest = r;
    }
    if rest.contains("::") {
        let mut parts: Vec<&str> = rest.split("::").collect();
        let name = parts.pop()?;
        module.extend(parts.into_iter().map(str::to_string));
        Some(format!("{}.{name}", package_name(&module)))
    } else {
        Some(format!("{}.{rest}", package_name(&module)))
    }
}

/// The roots: the kinds Skiff serves (see `resource.rs`) and those their subresources and deletes speak.
fn definitions() -> (Vec<String>, BTreeMap<String, Value>) {
    fn add<T: k8s_openapi::schemars::JsonSchema>(generator: &mut SchemaGenerator, roots: &mut Vec<String>) {
        generator.subschema_for::<T>();
        roots.push(T::schema_name().into_owned());
    }
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut roots = Vec::new();
    let g = &mut generator;
    let r = &mut roots;
    add::<core::v1::ConfigMap>(g, r);
    add::<core::v1::Event>(g, r);
    add::<core::v1::Namespace>(g, r);
    add::<core::v1::Node>(g, r);
    add::<core::v1::Pod>(g, r);
    add::<core::v1::Secret>(g, r);
    add::<core::v1::ServiceAccount>(g, r);
    add::<core::v1::Binding>(g, r);
    add::<apps::v1::Deployment>(g, r);
    add::<apps::v1::ReplicaSet>(g, r);
    add::<coordination::v1::Lease>(g, r);
    add::<events::v1::Event>(g, r);
    add::<autoscaling::v1::Scale>(g, r);
    add::<policy::v1::Eviction>(g, r);
    add::<meta::v1::DeleteOptions>(g, r);
    let defs = generator.take_definitions(true).into_iter().collect();
    (roots, defs)
}

/// Lowercase without underscores: where a snake_case Rust name and a camelCase JSON name meet.
fn normalize(name: &str) -> String {
    name.chars().filter(|c| *c != '_').flat_map(char::to_lowercase).collect()
}

/// A field of the output: tag, JSON name, label (`""`, `"[]"`, `"map"` or `"inline"`), type.
type OutField = (u32, String, &'static str, String);

/// The upstream name of a k8s-pb message. k8s-pb re-cases some struct names (`PodOS` is `PodOs`,
/// `HTTPGetAction` is `HttpGetAction`), so the name is matched, lowercased, against the definitions
/// of the same package; the match must be unique. A message without a definition (a Go struct only
/// ever embedded inline, like `EphemeralContainerCommon`) keeps its k8s-pb name.
fn upstream_name(pb_name: &str, defs: &BTreeMap<String, Value>) -> Result<String, GenerateError> {
    if defs.contains_key(pb_name) || SPECIAL.contains(&pb_name) {
        return Ok(pb_name.to_string());
    }
    let lower = pb_name.to_lowercase();
    let found: Vec<&String> = defs.keys().filter(|d| d.to_lowercase() == lower).collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Ok(pb_name.to_string()),
        _ => Err(GenerateError::MissingDefinition(pb_name.to_string())),
    }
}

fn properties<'a>(name: &str, defs: &'a BTreeMap<String, Value>) -> Result<Vec<&'a String>, GenerateError> {
    defs.get(name)
        .and_then(|d| d.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().collect())
        .ok_or_else(|| GenerateError::MissingDefinition(name.to_string()))
}

/// The messages reachable from the roots (by upstream name), each field with its JSON name.
fn build(
    pb: &PbMessages,
    roots: &[String],
    defs: &BTreeMap<String, Value>,
) -> Result<BTreeMap<String, Vec<OutField>>, GenerateError> {
    let mut by_upstream: BTreeMap<String, &String> = BTreeMap::new();
    for pb_name in pb.keys() {
        by_upstream.insert(upstream_name(pb_name, defs)?, pb_name);
    }
    let mut out = BTreeMap::new();
    // (message, the definition whose properties name its fields): an inlined message's fields are
    // properties of the definition it is embedded in.
    let mut todo: Vec<(String, String)> = roots.iter().map(|r| (r.clone(), r.clone())).collect();
    while let Some((name, def)) = todo.pop() {
        if out.contains_key(&name) || SPECIAL.contains(&name.as_str()) {
            continue;
        }
        let pb_name = by_upstream.get(&name).ok_or_else(|| GenerateError::MissingMessage(name.clone()))?;
        let fields = &pb[*pb_name];
        let props = properties(&def, defs)?;
        let mut entries = Vec::new();
        for f in fields {
            let ty = if f.ty.contains('.') { upstream_name(&f.ty, defs)? } else { f.ty.clone() };
            let want = normalize(&f.rust_name);
            let matches: Vec<&&String> = props.iter().filter(|p| normalize(p) == want).collect();
            let (json, label) = match matches.as_slice() {
                [json] => ((**json).clone(), f.label),
                // A Go struct embedded with `json:",inline"` is a message field in protobuf whose own
                // fields are properties of this definition (`ConfigMapKeySelector.localObjectReference`).
                [] if ty.contains('.') && f.label.is_empty() && is_inlined(pb, &by_upstream, &ty, &props) => {
                    (String::new(), "inline")
                }
                _ => {
                    return Err(GenerateError::Join {
                        message: name.clone(),
                        field: f.rust_name.clone(),
                        count: matches.len(),
                    });
                }
            };
            if label == "inline" {
                todo.push((ty.clone(), def.clone()));
            } else if ty.contains('.') {
                todo.push((ty.clone(), ty.clone()));
            }
            entries.push((f.tag, json, label, ty));
        }
        let named: BTreeSet<&String> = entries.iter().map(|e| &e.1).collect();
        if name == def && !entries.iter().any(|e| e.2 == "inline") {
            for p in props.iter().filter(|p| !named.contains(*p) && p.as_str() != "apiVersion" && p.as_str() != "kind")
            {
                eprintln!(
                    "note: {name}.{p} is in the OpenAPI schema but not in k8s-pb {PB_VERSION}; it will not decode"
                );
            }
        }
        entries.sort();
        out.insert(name, entries);
    }
    Ok(out)
}

/// Whether every field of the message `inner` is a property of the outer definition.
fn is_inlined(pb: &PbMessages, by_upstream: &BTreeMap<String, &String>, inner: &str, outer: &[&String]) -> bool {
    let outer: BTreeSet<String> = outer.iter().map(|p| normalize(p)).collect();
    by_upstream
        .get(inner)
        .and_then(|n| pb.get(*n))
        .is_some_and(|fields| !fields.is_empty() && fields.iter().all(|f| outer.contains(&normalize(&f.rust_name))))
}

/// The text of `schema.json`: one message per line, so a regeneration diffs readably.
pub fn generate(src: &Path) -> Result<String, GenerateError> {
    let pb = parse_tree(src)?;
    let (roots, defs) = definitions();
    let messages = build(&pb, &roots, &defs)?;
    let mut text = String::from("{\n");
    text.push_str(&format!(
        "\"comment\": {},\n\"messages\": {{\n",
        Value::from(format!(
            "Generated from k8s-pb {PB_VERSION} and k8s-openapi's schemars names by crates/skiff-api/src/proto/generate.rs; do not edit. Each field: [tag, jsonName, \"\" | \"[]\" | \"map\", type]."
        ))
    ));
    let lines: Vec<String> = messages
        .iter()
        .map(|(name, fields)| {
            let fields: Vec<Value> =
                fields.iter().map(|(tag, json, label, ty)| serde_json::json!([tag, json, label, ty])).collect();
            format!("{}: {}", Value::from(name.as_str()), Value::Array(fields))
        })
        .collect();
    text.push_str(&lines.join(",\n"));
    text.push_str("\n}\n}\n");
    Ok(text)
}

/// The committed schema's path.
pub fn schema_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/proto/schema.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "writes src/proto/schema.json; run by hand after bumping k8s-pb or k8s-openapi"]
    fn regenerate_schema() {
        let src = locate_source().expect("k8s-pb source");
        let text = generate(&src).expect("generate");
        std::fs::write(schema_path(), text).expect("write schema.json");
    }

    /// Fails when `schema.json` is stale; skipped (with a note) where k8s-pb is not in the registry.
    #[test]
    fn schema_matches_generator() {
        let Some(src) = locate_source() else {
            eprintln!("k8s-pb {PB_VERSION} source not found; skipping the schema sync check");
            return;
        };
        let text = generate(&src).expect("generate");
        let committed = std::fs::read_to_string(schema_path()).expect("schema.json");
        assert!(text == committed, "src/proto/schema.json is stale: rerun regenerate_schema");
    }

    #[test]
    fn resolves_relative_message_paths() {
        let module: Vec<String> = ["api", "apps", "v1"].iter().map(|s| s.to_string()).collect();
        let ty = ":: core :: option :: Option<super::super::super::apimachinery::pkg::apis::meta::v1::ObjectMeta>";
        assert_eq!(
            message_type(&module, ty.replace(' ', "").as_str()).as_deref(),
            Some("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
        );
        assert_eq!(
            message_type(&module, "::prost::alloc::vec::Vec<DeploymentCondition>").as_deref(),
            Some("io.k8s.api.apps.v1.DeploymentCondition")
        );
        assert_eq!(
            message_type(&module, "::core::option::Option<super::super::core::v1::PodTemplateSpec>").as_deref(),
            Some("io.k8s.api.core.v1.PodTemplateSpec")
        );
    }

    #[test]
    fn parses_prost_attributes() {
        let m: Vec<String> = ["api", "core", "v1"].iter().map(|s| s.to_string()).collect();
        let cases = [
            (
                "string, optional, tag = \"2\"",
                "pub generate_name: ::core::option::Option<::prost::alloc::string::String>,",
                2,
                "generate_name",
                "",
                "string",
            ),
            ("int32, optional, tag = \"1\"", "pub replicas: ::core::option::Option<i32>,", 1, "replicas", "", "int32"),
            (
                "message, repeated, tag = \"2\"",
                "pub containers: ::prost::alloc::vec::Vec<Container>,",
                2,
                "containers",
                "[]",
                "io.k8s.api.core.v1.Container",
            ),
            (
                "btree_map = \"string, string\", tag = \"11\"",
                "pub labels: ::std::collections::BTreeMap<::prost::alloc::string::String, ::prost::alloc::string::String>,",
                11,
                "labels",
                "map",
                "string",
            ),
            (
                "btree_map = \"string, bytes\", tag = \"2\"",
                "pub data: ::std::collections::BTreeMap<::prost::alloc::string::String, ::prost::alloc::vec::Vec<u8>>,",
                2,
                "data",
                "map",
                "bytes",
            ),
            (
                "btree_map = \"string, message\", tag = \"1\"",
                "pub limits: ::std::collections::BTreeMap<::prost::alloc::string::String, super::super::super::apimachinery::pkg::api::resource::Quantity>,",
                1,
                "limits",
                "map",
                "io.k8s.apimachinery.pkg.api.resource.Quantity",
            ),
            (
                "bytes = \"vec\", optional, tag = \"1\"",
                "pub raw: ::core::option::Option<::prost::alloc::vec::Vec<u8>>,",
                1,
                "raw",
                "",
                "bytes",
            ),
            (
                "string, optional, tag = \"1\"",
                "pub r#type: ::core::option::Option<::prost::alloc::string::String>,",
                1,
                "type",
                "",
                "string",
            ),
            (
                "int64, repeated, packed = \"false\", tag = \"3\"",
                "pub groups: ::prost::alloc::vec::Vec<i64>,",
                3,
                "groups",
                "[]",
                "int64",
            ),
        ];
        for (attr, decl, tag, name, label, ty) in cases {
            let f = parse_field(&m, attr, decl).expect(decl);
            assert_eq!((f.tag, f.rust_name.as_str(), f.label, f.ty.as_str()), (tag, name, label, ty), "{decl}");
        }
    }

    #[test]
    fn normalize_joins_snake_and_camel() {
        assert_eq!(normalize("pod_i_ps"), normalize("podIPs"));
        assert_eq!(normalize("host_ipc"), normalize("hostIPC"));
        assert_ne!(normalize("host_pid"), normalize("hostIPC"));
    }
}
