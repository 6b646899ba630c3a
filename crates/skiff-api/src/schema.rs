//! Schema checking of request bodies: type errors (the apiserver's decode errors) and unknown fields
//! (its `fieldValidation` strict / warn / ignore handling, `apiserver pkg/endpoints/handlers/rest.go`).
//!
//! The schema is the one k8s-openapi generates for the resource's type (its `JsonSchema` impls, so
//! exactly the fields `k8s_openapi::api::apps::v1::Deployment` and friends have). Checking walks the
//! input JSON against it rather than deserializing: a typed round trip would reject objects Go
//! accepts (k8s-openapi requires fields that Go leaves zero, such as a container's `name`, which are
//! validation's business and must come back as 422, not 400).

use std::sync::OnceLock;

use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value};

use crate::error::{ApiError, Cause};
use crate::resource::ResourceInfo;
use crate::validation::parse_quantity;

/// The `fieldValidation` query parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    /// Unknown fields fail the request with 400.
    Strict,
    /// Unknown fields become `Warning` headers.
    Warn,
    /// Unknown fields are dropped silently.
    Ignore,
}

impl FieldValidation {
    /// Absent or empty means `Warn` (the apiserver's default). Anything else but the three values is
    /// a 422 on the request options, as `ValidateFieldValidation` reports it for create; see
    /// [`FieldValidation::parse_for`] to name the options kind of another verb.
    #[allow(clippy::result_large_err, reason = "ApiError is the API's error type everywhere; callers return it as is")]
    pub fn parse(s: Option<&str>) -> Result<Self, ApiError> {
        Self::parse_for(s, "CreateOptions")
    }

    /// As [`FieldValidation::parse`], with the options kind (`CreateOptions`, `UpdateOptions`,
    /// `PatchOptions`) the error names.
    #[allow(clippy::result_large_err, reason = "ApiError is the API's error type everywhere; callers return it as is")]
    pub fn parse_for(s: Option<&str>, options_kind: &str) -> Result<Self, ApiError> {
        match s.unwrap_or("") {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Strict" => Ok(FieldValidation::Strict),
            "Ignore" => Ok(FieldValidation::Ignore),
            other => Err(ApiError::invalid(
                options_kind,
                "meta.k8s.io",
                "",
                vec![Cause::new(
                    "FieldValueNotSupported",
                    "fieldValidation",
                    format!("Unsupported value: {other:?}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""),
                )],
            )),
        }
    }
}

/// Checks `obj` against the resource's schema. A type error is a 400 worded as the apiserver's decode
/// error; otherwise the result lists the unknown fields (`spec.foo`,
/// `spec.template.spec.containers[0].imagee`) in document order. As in Go's strict decoder, a key is
/// unknown whatever its value, `null` included; a known key with a `null` value is never a type error.
#[allow(clippy::result_large_err, reason = "ApiError is the API's error type everywhere; callers return it as is")]
pub fn check(resource: &ResourceInfo, obj: &Value) -> Result<Vec<String>, ApiError> {
    let Some(schema) = schema_for(resource) else { return Ok(Vec::new()) };
    let mut walk = Walk { defs: defs(schema), unknown: Vec::new() };
    let root = Ctx { up: None, step: Step::Root { kind: resource.kind } };
    walk.value(schema, obj, &root).map_err(|detail| decode_error(resource, &detail))?;
    Ok(walk.unknown)
}

/// Removes the fields [`check`] reported unknown, as decoding into the typed object drops them
/// (under `fieldValidation=Warn` or `Ignore` the object is stored without them). Paths are
/// `a.b[2].c`: object keys separated by dots, list indexes in brackets.
pub fn prune(obj: &mut Value, unknown: &[String]) {
    // Deepest and last first, so earlier removals never shift an index a later path relies on.
    for path in unknown.iter().rev() {
        let segments = split_path(path);
        let Some((last, parents)) = segments.split_last() else { continue };
        let parent = parents.iter().try_fold(&mut *obj, |v, seg| match seg {
            Segment::Key(k) => v.get_mut(k.as_str()),
            Segment::Index(i) => v.get_mut(*i),
        });
        if let (Some(Value::Object(map)), Segment::Key(k)) = (parent, last) {
            map.remove(k.as_str());
        }
    }
}

enum Segment {
    Key(String),
    Index(usize),
}

fn split_path(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Segment::Key(key.to_string()));
        }
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(Segment::Index(i));
            }
        }
    }
    out
}

/// 400 for a body the apiserver could not decode: `<Kind> in version "<v>" cannot be handled as a
/// <Kind>: <detail>` (`transformDecodeError`).
pub fn decode_error(resource: &ResourceInfo, detail: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{} in version {:?} cannot be handled as a {}: {detail}",
        resource.kind, resource.version, resource.kind
    ))
}

/// The strict-decoding error: `strict decoding error: unknown field "spec.foo", duplicate field
/// "spec.replicas"`, as a 400, from the texts of its errors ([`crate::duplicates::Duplicates`]
/// orders them). The apiserver wraps it in the decode-error prefix; [`strict_error_for`] does that.
pub fn strict_error(errors: &[String]) -> ApiError {
    ApiError::bad_request(strict_text(errors))
}

/// [`strict_error`] with the `<Kind> in version "v1" cannot be handled as a <Kind>: ` prefix that kubectl
/// users see (`Error from server (BadRequest): error when creating "x.yaml": Deployment in version "v1"
/// cannot be handled as a Deployment: strict decoding error: unknown field "spec.replica"`).
pub fn strict_error_for(resource: &ResourceInfo, errors: &[String]) -> ApiError {
    decode_error(resource, &strict_text(errors))
}

fn strict_text(errors: &[String]) -> String {
    format!("strict decoding error: {}", errors.join(", "))
}

// ---------------------------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------------------------

fn root_schema<T: JsonSchema>() -> Value {
    SchemaGenerator::default().into_root_schema_for::<T>().as_value().clone()
}

/// The root schema of a served kind, generated the first time a body of that kind is checked
/// (each holds the definitions of every type it nests: a Pod's is hundreds of KB decoded, and a
/// server at rest checks only a few kinds).
fn schema_for(resource: &ResourceInfo) -> Option<&'static Value> {
    use k8s_openapi::api::{apps, coordination, core, events};
    type Kinds = [((&'static str, &'static str), fn() -> Value); 11];
    const KINDS: Kinds = [
        (("", "Pod"), root_schema::<core::v1::Pod>),
        (("", "ConfigMap"), root_schema::<core::v1::ConfigMap>),
        (("", "Secret"), root_schema::<core::v1::Secret>),
        (("", "ServiceAccount"), root_schema::<core::v1::ServiceAccount>),
        (("", "Namespace"), root_schema::<core::v1::Namespace>),
        (("", "Node"), root_schema::<core::v1::Node>),
        (("", "Event"), root_schema::<core::v1::Event>),
        (("apps", "Deployment"), root_schema::<apps::v1::Deployment>),
        (("apps", "ReplicaSet"), root_schema::<apps::v1::ReplicaSet>),
        (("coordination.k8s.io", "Lease"), root_schema::<coordination::v1::Lease>),
        (("events.k8s.io", "Event"), root_schema::<events::v1::Event>),
    ];
    static SCHEMAS: [OnceLock<Value>; 11] = [const { OnceLock::new() }; 11];
    let index = KINDS.iter().position(|(kind, _)| *kind == (resource.group, resource.kind))?;
    let (_, generate) = KINDS.get(index)?;
    Some(SCHEMAS.get(index)?.get_or_init(generate))
}

fn defs(root: &Value) -> &Map<String, Value> {
    static EMPTY: OnceLock<Map<String, Value>> = OnceLock::new();
    root.get("$defs").and_then(Value::as_object).unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

/// Where the walk is: a chain of steps from the value being checked up to the root. The paths an
/// error or an unknown field names are rendered from it only then (most bodies have neither): the
/// strict-error path (`a.b[0].c`, [`Ctx::path`]), Go's error path (`a.b.c`, no indices) and the Go
/// struct that holds the current field.
struct Ctx<'c> {
    up: Option<&'c Ctx<'c>>,
    step: Step<'c>,
}

#[derive(Clone, Copy)]
enum Step<'c> {
    /// The object itself, a `kind`.
    Root { kind: &'c str },
    /// Field `key` of the Go struct `parent`.
    Field { key: &'c str, parent: &'c str },
    /// Element `i` of a list.
    Index(usize),
    /// The value at `key` of a map.
    MapValue(&'c str),
}

impl<'c> Ctx<'c> {
    fn field(&'c self, key: &'c str, parent: &'c str) -> Ctx<'c> {
        Ctx { up: Some(self), step: Step::Field { key, parent } }
    }

    fn index(&'c self, i: usize) -> Ctx<'c> {
        Ctx { up: Some(self), step: Step::Index(i) }
    }

    fn map_value(&'c self, key: &'c str) -> Ctx<'c> {
        Ctx { up: Some(self), step: Step::MapValue(key) }
    }

    /// The steps from the root down to this one.
    fn steps(&self) -> Vec<Step<'c>> {
        let mut steps = vec![self.step];
        let mut at = self.up;
        while let Some(ctx) = at {
            steps.push(ctx.step);
            at = ctx.up;
        }
        steps.reverse();
        steps
    }

    /// The Go struct holding the current field: that of the nearest field step, else the kind.
    fn go_parent(&self) -> &'c str {
        let mut at = Some(self);
        while let Some(ctx) = at {
            match ctx.step {
                Step::Field { parent, .. } => return parent,
                Step::Root { kind } => return kind,
                Step::Index(_) | Step::MapValue(_) => at = ctx.up,
            }
        }
        ""
    }

    /// `spec.template.spec.containers[0].image`, `data[key]`.
    fn path(&self) -> String {
        let mut path = String::new();
        for step in self.steps() {
            match step {
                Step::Root { .. } => {}
                Step::Field { key, .. } => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                }
                Step::Index(i) => path.push_str(&format!("[{i}]")),
                Step::MapValue(key) => path.push_str(&format!("[{key}]")),
            }
        }
        path
    }

    /// Go's path: the field names only, `spec.template.spec.containers.image`.
    fn go_path(&self) -> String {
        let fields: Vec<&str> = self
            .steps()
            .into_iter()
            .filter_map(|step| match step {
                Step::Field { key, .. } => Some(key),
                _ => None,
            })
            .collect();
        fields.join(".")
    }
}

struct Walk<'a> {
    defs: &'a Map<String, Value>,
    unknown: Vec<String>,
}

/// The short name a schema reference names (`io.k8s.api.apps.v1.DeploymentSpec` → `DeploymentSpec`).
fn short_name(def: &str) -> &str {
    def.rsplit('.').next().unwrap_or(def)
}

/// The JSON kind of a value as Go's `UnmarshalTypeError` names it.
fn json_kind(v: &Value) -> String {
    match v {
        Value::String(_) => "string".into(),
        Value::Number(n) if n.is_f64() => format!("number {n}"),
        Value::Number(_) => "number".into(),
        Value::Bool(_) => "bool".into(),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
        Value::Null => "null".into(),
    }
}

impl<'a> Walk<'a> {
    /// Resolves `$ref`, returning the definition and its name.
    fn resolve(&self, schema: &'a Value) -> (&'a Value, Option<&'a str>) {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap_or(r);
                (self.defs.get(name).unwrap_or(schema), Some(name))
            }
            None => (schema, None),
        }
    }

    /// The Go type name of a schema, for error messages.
    fn go_type(&self, schema: &'a Value) -> String {
        let (s, name) = self.resolve(schema);
        if let Some(name) = name {
            return match short_name(name) {
                "IntOrString" => "intstr.IntOrString".into(),
                "Quantity" => "resource.Quantity".into(),
                short => format!("v1.{short}"),
            };
        }
        match (s.get("type").and_then(Value::as_str), s.get("format").and_then(Value::as_str)) {
            (Some("integer"), Some(f)) => f.to_string(),
            (Some("integer"), None) => "int64".into(),
            (Some("number"), _) => "float64".into(),
            (Some("boolean"), _) => "bool".into(),
            (Some("string"), Some("byte")) => "[]uint8".into(),
            (Some("string"), _) => "string".into(),
            (Some("array"), _) => format!("[]{}", s.get("items").map(|i| self.go_type(i)).unwrap_or_default()),
            (Some("object"), _) => match s.get("additionalProperties") {
                Some(ap) => format!("map[string]{}", self.go_type(ap)),
                None => "map[string]interface {}".into(),
            },
            _ => "interface {}".into(),
        }
    }

    fn type_error(&self, v: &Value, schema: &'a Value, ctx: &Ctx<'_>) -> String {
        let go_path = ctx.go_path();
        if go_path.is_empty() {
            return format!("json: cannot unmarshal {} into Go value of type {}", json_kind(v), self.go_type(schema));
        }
        format!(
            "json: cannot unmarshal {} into Go struct field {}.{} of type {}",
            json_kind(v),
            ctx.go_parent(),
            go_path,
            self.go_type(schema)
        )
    }

    fn value(&mut self, schema: &'a Value, v: &Value, ctx: &Ctx<'_>) -> Result<(), String> {
        if v.is_null() {
            return Ok(());
        }
        let (s, name) = self.resolve(schema);
        match name.map(short_name) {
            Some("Quantity") => {
                let text = match v {
                    Value::String(t) => t.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => return Err(self.type_error(v, schema, ctx)),
                };
                return parse_quantity(&text).map(|_| ()).map_err(str::to_string);
            }
            Some("IntOrString") => {
                return match v {
                    Value::String(_) | Value::Number(_) => Ok(()),
                    _ => Err(self.type_error(v, schema, ctx)),
                };
            }
            _ => {}
        }
        match s.get("type").and_then(Value::as_str) {
            Some("object") => {
                let Value::Object(obj) = v else { return Err(self.type_error(v, schema, ctx)) };
                if let Some(props) = s.get("properties").and_then(Value::as_object) {
                    let parent = name.map(short_name).unwrap_or_else(|| ctx.go_parent());
                    for (k, val) in obj {
                        match props.get(k) {
                            Some(ps) => self.value(ps, val, &ctx.field(k, parent))?,
                            None => self.unknown.push(ctx.field(k, parent).path()),
                        }
                    }
                } else if let Some(ap) = s.get("additionalProperties") {
                    for (k, val) in obj {
                        self.value(ap, val, &ctx.map_value(k))?;
                    }
                }
                Ok(())
            }
            Some("array") => {
                let Value::Array(items) = v else { return Err(self.type_error(v, schema, ctx)) };
                if let Some(item_schema) = s.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.value(item_schema, item, &ctx.index(i))?;
                    }
                }
                Ok(())
            }
            Some("string") => match v {
                Value::String(t) if s.get("format").and_then(Value::as_str) == Some("byte") => check_base64(t),
                Value::String(_) => Ok(()),
                _ => Err(self.type_error(v, schema, ctx)),
            },
            Some("integer") => match v {
                Value::Number(n) if n.is_i64() || n.is_u64() => {
                    let fits = match s.get("format").and_then(Value::as_str) {
                        Some("int32") => n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
                        _ => n.as_i64().is_some(),
                    };
                    if fits { Ok(()) } else { Err(self.type_error(v, schema, ctx)) }
                }
                _ => Err(self.type_error(v, schema, ctx)),
            },
            Some("number") => match v {
                Value::Number(_) => Ok(()),
                _ => Err(self.type_error(v, schema, ctx)),
            },
            Some("boolean") => match v {
                Value::Bool(_) => Ok(()),
                _ => Err(self.type_error(v, schema, ctx)),
            },
            _ => Ok(()),
        }
    }
}

/// `[]byte` fields are standard base64; Go reports the first bad byte.
fn check_base64(t: &str) -> Result<(), String> {
    let b = t.as_bytes();
    let body = t.trim_end_matches('=');
    let pad = b.len() - body.len();
    for (i, c) in body.bytes().enumerate() {
        if !(c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'\r' || c == b'\n') {
            return Err(format!("illegal base64 data at input byte {i}"));
        }
    }
    let data_len = body.bytes().filter(|c| *c != b'\r' && *c != b'\n').count();
    if pad > 2 || !(data_len + pad).is_multiple_of(4) || data_len % 4 == 1 {
        return Err(format!("illegal base64 data at input byte {}", body.len().min(b.len().saturating_sub(1))));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::lookup;
    use serde_json::json;

    fn res(group: &str, plural: &str) -> &'static ResourceInfo {
        lookup(group, "v1", plural).expect("resource")
    }

    #[test]
    fn field_validation_values() {
        let cases = [
            (None, Some(FieldValidation::Warn)),
            (Some(""), Some(FieldValidation::Warn)),
            (Some("Strict"), Some(FieldValidation::Strict)),
            (Some("Ignore"), Some(FieldValidation::Ignore)),
            (Some("Warn"), Some(FieldValidation::Warn)),
            (Some("strict"), None),
        ];
        for (input, want) in cases {
            assert_eq!(FieldValidation::parse(input).ok(), want, "{input:?}");
        }
        let e = FieldValidation::parse_for(Some("Loud"), "PatchOptions").expect_err("invalid");
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"Loud\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
        );
    }

    #[test]
    fn unknown_fields_are_listed_with_paths() {
        let d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}, "bogus": null},
            "spec": {
                "foo": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}, "spec": {}},
                    "spec": {"containers": [
                        {"name": "a", "image": "nginx", "resources": {}},
                        {"name": "b", "imagee": "nginx", "ports": [{"containerPort": 80, "hostIp": "x"}]}
                    ]}
                }
            },
            "status": {}
        });
        let got = check(res("apps", "deployments"), &d).expect("decodes");
        assert_eq!(
            got,
            vec![
                "metadata.bogus",
                "spec.foo",
                "spec.template.metadata.spec",
                "spec.template.spec.containers[1].imagee",
                "spec.template.spec.containers[1].ports[0].hostIp",
            ]
        );
        let clean = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "annotations": {"a": "b"}, "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"containers": [{"name": "a", "image": "x", "resources": {"limits": {"cpu": 1, "memory": "1Gi"}}, "livenessProbe": {"httpGet": {"port": "http"}}}]}});
        assert_eq!(check(res("", "pods"), &clean).expect("decodes"), Vec::<String>::new());
        let lease = json!({"spec": {"holderIdentity": "x", "renewTime": "2026-01-01T00:00:00.000000Z", "extra": true}});
        assert_eq!(check(res("coordination.k8s.io", "leases"), &lease).expect("decodes"), vec!["spec.extra"]);
        let ev = json!({"regarding": {"kind": "Pod"}, "note": "n", "involvedObject": {}});
        assert_eq!(check(res("events.k8s.io", "events"), &ev).expect("decodes"), vec!["involvedObject"]);
    }

    #[test]
    fn type_errors_are_decode_errors() {
        let cases = [
            (
                res("apps", "deployments"),
                json!({"spec": {"replicas": "three"}}),
                "Deployment in version \"v1\" cannot be handled as a Deployment: json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32",
            ),
            (
                res("apps", "deployments"),
                json!({"spec": "x"}),
                "Deployment in version \"v1\" cannot be handled as a Deployment: json: cannot unmarshal string into Go struct field Deployment.spec of type v1.DeploymentSpec",
            ),
            (
                res("", "pods"),
                json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": "80"}]}]}}),
                "Pod in version \"v1\" cannot be handled as a Pod: json: cannot unmarshal string into Go struct field ContainerPort.spec.containers.ports.containerPort of type int32",
            ),
            (
                res("", "pods"),
                json!({"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": "lots"}}}]}}),
                "Pod in version \"v1\" cannot be handled as a Pod: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            ),
            (
                res("", "configmaps"),
                json!({"data": {"a": 1}}),
                "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot unmarshal number into Go struct field ConfigMap.data of type string",
            ),
            (
                res("", "secrets"),
                json!({"data": {"a": "not base64!"}}),
                "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 3",
            ),
            (
                res("", "nodes"),
                json!({"spec": {"unschedulable": "yes"}}),
                "Node in version \"v1\" cannot be handled as a Node: json: cannot unmarshal string into Go struct field NodeSpec.spec.unschedulable of type bool",
            ),
        ];
        for (r, obj, want) in cases {
            let e = check(r, &obj).expect_err(want);
            assert_eq!((e.code, e.reason, e.message.as_str()), (400, "BadRequest", want));
        }
        assert!(check(res("", "secrets"), &json!({"data": {"a": "eA==", "b": "aGVsbG8="}})).is_ok());
    }

    #[test]
    fn strict_error_wording() {
        let errors = vec![
            "unknown field \"spec.replicass\"".to_string(),
            "duplicate field \"spec.template.spec.containers[0].image\"".to_string(),
        ];
        assert_eq!(
            strict_error(&errors).message,
            "strict decoding error: unknown field \"spec.replicass\", duplicate field \"spec.template.spec.containers[0].image\""
        );
        assert_eq!(
            strict_error_for(res("apps", "deployments"), &errors[..1]).message,
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.replicass\""
        );
    }

    #[test]
    fn prune_removes_unknown_fields_by_path() {
        let mut obj = serde_json::json!({
            "spec": {"foo": 1, "template": {"spec": {"containers": [{"name": "a"}, {"name": "b", "imagee": "x"}]}}}
        });
        prune(&mut obj, &["spec.foo".to_string(), "spec.template.spec.containers[1].imagee".to_string()]);
        assert_eq!(
            obj,
            serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}}})
        );
    }
}
