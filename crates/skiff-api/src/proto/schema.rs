//! The protobuf layout of the Kubernetes messages Skiff decodes, loaded from the generated
//! `schema.json` (see `generate.rs`) and `omitempty.json` (see `probe_omitempty.py`).

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

pub const TIME: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Time";
pub const MICRO_TIME: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime";
pub const DURATION: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Duration";
pub const FIELDS_V1: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1";
pub const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
pub const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
pub const RAW_EXTENSION: &str = "io.k8s.apimachinery.pkg.runtime.RawExtension";

/// Messages whose JSON form is not an object of their fields (a string, a number or embedded JSON);
/// `message.rs` knows their layout, so the schema does not list them.
pub const SPECIAL: &[&str] = &[TIME, MICRO_TIME, DURATION, FIELDS_V1, QUANTITY, INT_OR_STRING, RAW_EXTENSION];

/// How often a field occurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Optional,
    Repeated,
    /// `map<string, T>`: repeated entries `{key = 1; value = 2}`.
    Map,
    /// A Go struct embedded with `json:",inline"`: a message in protobuf whose fields are the
    /// enclosing object's (`Volume`'s `VolumeSource`, `Probe`'s `ProbeHandler`).
    Inline,
}

/// The type of a field (of a map's value, for maps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    String,
    Int32,
    Int64,
    Bool,
    Bytes,
    Double,
    /// A message, by full name (`io.k8s.api.core.v1.PodSpec`).
    Message(String),
}

/// One field of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The JSON property name.
    pub json: String,
    pub label: Label,
    pub ty: FieldType,
    /// A zero number, `false` or `""` is left out of the JSON: Go declares the field as a plain
    /// (non-pointer) scalar with `omitempty`, so its zero value means "unset" and protobuf carries it
    /// only because gogo-protobuf always writes non-pointer fields. Measured by kubectl for the messages
    /// `omitempty.json` lists as probed; elsewhere strings and bytes are omitted when empty (as nearly
    /// all Kubernetes string fields are `omitempty`) and other zeros kept (a pointer's zero matters).
    pub omit_zero: bool,
}

/// All messages, by full name, each with its fields by tag.
#[derive(Debug, Default)]
pub struct Schema {
    messages: HashMap<String, HashMap<u32, Field>>,
}

impl Schema {
    /// The fields of a message, or `None` when the schema does not know it.
    pub fn message(&self, name: &str) -> Option<&HashMap<u32, Field>> {
        self.messages.get(name)
    }
}

#[derive(Deserialize)]
struct SchemaFile {
    messages: HashMap<String, Vec<(u32, String, String, String)>>,
}

#[derive(Deserialize)]
struct OmitFile {
    probed: Vec<String>,
    messages: HashMap<String, Vec<String>>,
}

/// Why the embedded data does not load: a build-time defect, reported as a 500 by the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("proto schema: {0}")]
    Json(String),
    #[error("proto schema: {message}.{field}: unknown label {label:?}")]
    Label { message: String, field: String, label: String },
}

fn field_type(ty: &str) -> FieldType {
    match ty {
        "string" => FieldType::String,
        "int32" => FieldType::Int32,
        "int64" => FieldType::Int64,
        "bool" => FieldType::Bool,
        "bytes" => FieldType::Bytes,
        "double" => FieldType::Double,
        message => FieldType::Message(message.to_string()),
    }
}

/// Parses the two data files.
pub fn parse(schema: &str, omit: &str) -> Result<Schema, SchemaError> {
    let file: SchemaFile = serde_json::from_str(schema).map_err(|e| SchemaError::Json(e.to_string()))?;
    let omit: OmitFile = serde_json::from_str(omit).map_err(|e| SchemaError::Json(e.to_string()))?;
    let mut messages = HashMap::new();
    for (name, fields) in file.messages {
        let omitted = omit.messages.get(&name);
        let mut by_tag = HashMap::new();
        for (tag, json, label, ty) in fields {
            let label = match label.as_str() {
                "" => Label::Optional,
                "[]" => Label::Repeated,
                "map" => Label::Map,
                "inline" => Label::Inline,
                _ => return Err(SchemaError::Label { message: name, field: json, label }),
            };
            let ty = field_type(&ty);
            let omit_zero = if omit.probed.contains(&name) {
                omitted.is_some_and(|o| o.contains(&json))
            } else {
                matches!(ty, FieldType::String | FieldType::Bytes)
            };
            by_tag.insert(tag, Field { json, label, ty, omit_zero });
        }
        messages.insert(name, by_tag);
    }
    Ok(Schema { messages })
}

static SCHEMA: LazyLock<Result<Schema, SchemaError>> =
    LazyLock::new(|| parse(include_str!("schema.json"), include_str!("omitempty.json")));

/// The embedded schema, parsed once per process.
pub fn schema() -> Result<&'static Schema, SchemaError> {
    SCHEMA.as_ref().map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(message: &str, json: &str) -> (u32, Label, FieldType) {
        let s = schema().expect("schema");
        let fields = s.message(message).unwrap_or_else(|| panic!("{message}"));
        let (tag, f) = fields.iter().find(|(_, f)| f.json == json).unwrap_or_else(|| panic!("{message}.{json}"));
        (*tag, f.label, f.ty.clone())
    }

    fn msg(name: &str) -> FieldType {
        FieldType::Message(name.to_string())
    }

    /// Tags as upstream's `generated.proto` files declare them.
    #[test]
    fn known_tags() {
        use FieldType::*;
        use Label::*;
        let meta = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
        let cases = [
            ("io.k8s.api.apps.v1.Deployment", "spec", (2, Optional, msg("io.k8s.api.apps.v1.DeploymentSpec"))),
            ("io.k8s.api.apps.v1.Deployment", "metadata", (1, Optional, msg(meta))),
            ("io.k8s.api.apps.v1.DeploymentSpec", "replicas", (1, Optional, Int32)),
            ("io.k8s.api.apps.v1.DeploymentSpec", "progressDeadlineSeconds", (9, Optional, Int32)),
            (meta, "name", (1, Optional, String)),
            (meta, "generateName", (2, Optional, String)),
            (meta, "labels", (11, Map, String)),
            (meta, "creationTimestamp", (8, Optional, msg(TIME))),
            (meta, "managedFields", (17, Repeated, msg("io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry"))),
            ("io.k8s.api.core.v1.Container", "image", (2, Optional, String)),
            ("io.k8s.api.core.v1.PodSpec", "containers", (2, Repeated, msg("io.k8s.api.core.v1.Container"))),
            ("io.k8s.api.core.v1.PodSpec", "hostIPC", (13, Optional, Bool)),
            ("io.k8s.api.core.v1.PodStatus", "podIPs", (12, Repeated, msg("io.k8s.api.core.v1.PodIP"))),
            ("io.k8s.api.core.v1.Secret", "data", (2, Map, Bytes)),
            ("io.k8s.api.core.v1.ConfigMap", "binaryData", (3, Map, Bytes)),
            ("io.k8s.api.core.v1.ResourceRequirements", "limits", (1, Map, msg(QUANTITY))),
            ("io.k8s.api.core.v1.ContainerPort", "containerPort", (3, Optional, Int32)),
            ("io.k8s.api.core.v1.PodSecurityContext", "supplementalGroups", (4, Repeated, Int64)),
            ("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", "gracePeriodSeconds", (1, Optional, Int64)),
            (
                "io.k8s.api.policy.v1.Eviction",
                "deleteOptions",
                (2, Optional, msg("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions")),
            ),
            ("io.k8s.api.coordination.v1.LeaseSpec", "renewTime", (4, Optional, msg(MICRO_TIME))),
        ];
        for (message, json, want) in cases {
            assert_eq!(tag(message, json), want, "{message}.{json}");
        }
    }

    /// Which zeros Go's JSON drops (non-pointer `omitempty`) and which it keeps (pointers, required).
    #[test]
    fn omit_zero_flags() {
        let s = schema().expect("schema");
        let cases = [
            ("io.k8s.api.apps.v1.DeploymentSpec", "replicas", false),
            ("io.k8s.api.apps.v1.DeploymentSpec", "paused", true),
            ("io.k8s.api.apps.v1.DeploymentSpec", "minReadySeconds", true),
            ("io.k8s.api.apps.v1.DeploymentStatus", "replicas", true),
            ("io.k8s.api.apps.v1.DeploymentStatus", "collisionCount", false),
            ("io.k8s.api.core.v1.SecurityContext", "allowPrivilegeEscalation", false),
            ("io.k8s.api.core.v1.SecurityContext", "privileged", false),
            ("io.k8s.api.core.v1.Container", "stdin", true),
            ("io.k8s.api.core.v1.Container", "imagePullPolicy", true),
            ("io.k8s.api.core.v1.Container", "name", false),
            ("io.k8s.api.core.v1.ContainerPort", "containerPort", false),
            ("io.k8s.api.core.v1.ContainerPort", "hostPort", true),
            ("io.k8s.api.core.v1.HTTPHeader", "value", false),
            ("io.k8s.api.core.v1.HostPathVolumeSource", "type", false),
            ("io.k8s.api.core.v1.PodSpec", "hostNetwork", true),
            ("io.k8s.api.core.v1.PodSpec", "terminationGracePeriodSeconds", false),
            ("io.k8s.api.core.v1.Secret", "immutable", false),
            ("io.k8s.api.core.v1.Secret", "type", true),
            ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "generation", true),
            ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "name", true),
            // Not probed: strings dropped when empty, other zeros kept.
            ("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", "gracePeriodSeconds", false),
            ("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", "propagationPolicy", true),
            ("io.k8s.api.core.v1.PodStatus", "phase", true),
        ];
        for (message, json, want) in cases {
            let f = s.message(message).and_then(|m| m.values().find(|f| f.json == json));
            assert_eq!(f.map(|f| f.omit_zero), Some(want), "{message}.{json}");
        }
    }

    #[test]
    fn specials_are_not_listed() {
        let s = schema().expect("schema");
        for name in SPECIAL {
            assert!(s.message(name).is_none(), "{name}");
        }
    }

    #[test]
    fn rejects_unknown_labels() {
        let err = parse(r#"{"messages": {"M": [[1, "a", "?", "string"]]}}"#, r#"{"probed": [], "messages": {}}"#);
        assert!(matches!(err, Err(SchemaError::Label { .. })));
    }
}
