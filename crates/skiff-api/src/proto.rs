//! Kubernetes' protobuf request bodies (`application/vnd.kubernetes.protobuf`) to their JSON form.
//!
//! kubectl's typed clients (`kubectl create deployment|namespace|configmap|secret|serviceaccount`,
//! `drain`'s evictions) send protobuf and never fall back to JSON, while Skiff keeps objects as JSON. A
//! body is the magic `k8s\0` followed by a `runtime.Unknown` (apimachinery
//! `pkg/runtime/serializer/protobuf/protobuf.go`): `typeMeta = 1 {apiVersion = 1, kind = 2}`,
//! `raw = 2` (the object's own encoding), `contentEncoding = 3`, `contentType = 4`. The object is
//! decoded with the layout in `proto/schema.json` (generated, see `proto/generate.rs`) into exactly the
//! JSON Go would have written for the same object; `proto/message.rs` says what is left out and why.

#[cfg(test)]
mod generate;
mod message;
mod schema;
mod wire;

use serde_json::{Map, Value};

pub use message::{DecodeError, go_duration};

use crate::ApiError;
use wire::Reader;

/// The media type of Kubernetes protobuf.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf body starts with.
const MAGIC: &[u8; 4] = b"k8s\0";

/// Whether a `Content-Type` header names Kubernetes protobuf (parameters and case ignored).
pub fn is_protobuf(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

/// The protobuf message of a kind: `apps/v1` `Deployment` is `io.k8s.api.apps.v1.Deployment`, core `v1`
/// kinds live in `io.k8s.api.core.v1`, `meta.k8s.io/v1` in `io.k8s.apimachinery.pkg.apis.meta.v1`.
/// The package is the group's first label (`coordination.k8s.io` → `coordination`).
pub fn message_name(api_version: &str, kind: &str) -> Option<String> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    if version.is_empty() || kind.is_empty() {
        return None;
    }
    let package = match group {
        "" | "core" => "api.core".to_string(),
        "meta.k8s.io" => "apimachinery.pkg.apis.meta".to_string(),
        "internal.apiserver.k8s.io" => "api.apiserverinternal".to_string(),
        g => format!("api.{}", g.split('.').next().unwrap_or(g)),
    };
    Some(format!("io.k8s.{package}.{version}.{kind}"))
}

/// The `runtime.Unknown` envelope.
#[derive(Debug, Default, PartialEq, Eq)]
struct Unknown<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
}

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("failed to decode protobuf body: {e}"))
}

fn text(b: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(b.to_vec()).map_err(|_| bad("invalid UTF-8 in type meta"))
}

fn unknown(body: &[u8]) -> Result<Unknown<'_>, ApiError> {
    let mut out = Unknown::default();
    let mut r = Reader::new(body);
    while let Some((tag, value)) = r.next_field().map_err(bad)? {
        let wire::Value::Bytes(b) = value else { continue };
        match tag {
            1 => {
                let mut tm = Reader::new(b);
                while let Some((tag, value)) = tm.next_field().map_err(bad)? {
                    match (tag, value) {
                        (1, wire::Value::Bytes(v)) => out.api_version = text(v)?,
                        (2, wire::Value::Bytes(v)) => out.kind = text(v)?,
                        _ => {}
                    }
                }
            }
            2 => out.raw = b,
            3 => out.content_encoding = text(b)?,
            _ => {}
        }
    }
    Ok(out)
}

/// Decodes a Kubernetes protobuf body into the object's JSON, with `apiVersion` and `kind` set.
///
/// A body without the magic prefix, a malformed one, or one of a kind the schema does not hold is a
/// 400 `BadRequest`, as the apiserver answers an undecodable body.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let Some(rest) = body.strip_prefix(MAGIC) else {
        return Err(ApiError::bad_request(
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]",
        ));
    };
    let envelope = unknown(rest)?;
    if !envelope.content_encoding.is_empty() {
        return Err(bad(format!("unsupported content encoding {:?}", envelope.content_encoding)));
    }
    let not_registered = || {
        ApiError::bad_request(format!(
            "no kind {:?} is registered for version {:?} in scheme \"pkg/api/legacyscheme/scheme.go:30\"",
            envelope.kind, envelope.api_version
        ))
    };
    let name = message_name(&envelope.api_version, &envelope.kind).ok_or_else(not_registered)?;
    let schema = schema::schema().map_err(|e| ApiError::internal(e.to_string()))?;
    if schema.message(&name).is_none() {
        return Err(not_registered());
    }
    let fields = message::decode(schema, &name, envelope.raw).map_err(bad)?;
    let mut object = Map::new();
    object.insert("kind".into(), Value::String(envelope.kind.clone()));
    object.insert("apiVersion".into(), Value::String(envelope.api_version.clone()));
    object.extend(fields);
    Ok(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Protobuf bodies recorded from kubectl v1.35.2 (`kubectl create ... -o json` against a server that
    /// saves the request and answers with it), each with what that kubectl printed for the same object.
    /// `deployment_rich.pb` was encoded by hand (every kind of field, zero pointers, inline structs,
    /// quantities, int-or-strings, times) and its JSON is what kubectl printed when served that body.
    const GOLDEN: &[(&str, &[u8], &str)] = &[
        (
            "deployment",
            include_bytes!("../tests/fixtures/proto/deployment.pb"),
            include_str!("../tests/fixtures/proto/deployment.json"),
        ),
        (
            "deployment_zero",
            include_bytes!("../tests/fixtures/proto/deployment_zero.pb"),
            include_str!("../tests/fixtures/proto/deployment_zero.json"),
        ),
        (
            "namespace",
            include_bytes!("../tests/fixtures/proto/namespace.pb"),
            include_str!("../tests/fixtures/proto/namespace.json"),
        ),
        (
            "configmap",
            include_bytes!("../tests/fixtures/proto/configmap.pb"),
            include_str!("../tests/fixtures/proto/configmap.json"),
        ),
        (
            "configmap_bin",
            include_bytes!("../tests/fixtures/proto/configmap_bin.pb"),
            include_str!("../tests/fixtures/proto/configmap_bin.json"),
        ),
        (
            "secret",
            include_bytes!("../tests/fixtures/proto/secret.pb"),
            include_str!("../tests/fixtures/proto/secret.json"),
        ),
        (
            "deployment_rich",
            include_bytes!("../tests/fixtures/proto/deployment_rich.pb"),
            include_str!("../tests/fixtures/proto/deployment_rich.json"),
        ),
        (
            "serviceaccount",
            include_bytes!("../tests/fixtures/proto/serviceaccount.pb"),
            include_str!("../tests/fixtures/proto/serviceaccount.json"),
        ),
    ];

    /// Go prints a zero `metav1.Time` that is not `omitzero` as `null`; Skiff leaves it out.
    fn without_nulls(v: Value) -> Value {
        match v {
            Value::Object(m) => {
                Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, without_nulls(v))).collect())
            }
            Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
            v => v,
        }
    }

    #[test]
    fn golden_bodies_decode_as_kubectl_prints_them() {
        for (name, body, want) in GOLDEN {
            let want: Value = serde_json::from_str(want).expect(name);
            assert_eq!(decode(body).expect(name), without_nulls(want), "{name}");
        }
    }

    #[test]
    fn rich_deployment_keeps_what_go_keeps() {
        let got = decode(GOLDEN.iter().find(|g| g.0 == "deployment_rich").expect("fixture").1).expect("decode");
        let pod = &got["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        let cases = [
            (&got["spec"]["replicas"], json!(0)),
            (&got["spec"]["paused"], Value::Null),
            (&got["status"]["replicas"], Value::Null),
            (&got["status"]["conditions"][0]["lastTransitionTime"], Value::Null),
            (&got["status"]["conditions"][0]["lastUpdateTime"], json!("2023-11-14T22:13:20Z")),
            (&got["metadata"]["creationTimestamp"], json!("2023-11-14T22:13:20Z")),
            (&got["metadata"]["annotations"]["empty"], json!("")),
            (&got["spec"]["strategy"]["rollingUpdate"], json!({"maxUnavailable": "25%", "maxSurge": 1})),
            (&c["securityContext"]["allowPrivilegeEscalation"], json!(false)),
            (&c["stdin"], Value::Null),
            (&c["ports"][0], json!({"name": "http", "containerPort": 0, "protocol": "TCP"})),
            (&c["env"][0], json!({"name": "A"})),
            (&c["resources"]["limits"]["cpu"], json!("500m")),
            (&c["livenessProbe"]["httpGet"]["port"], json!(8080)),
            (&c["livenessProbe"]["httpGet"]["httpHeaders"][0]["value"], json!("")),
            (&c["readinessProbe"]["tcpSocket"]["port"], json!("http")),
            (&pod["volumes"][0]["configMap"]["name"], json!("c")),
            (&pod["volumes"][2]["hostPath"], json!({"path": "/data", "type": ""})),
            (&pod["securityContext"]["supplementalGroups"], json!([0, 5, 70000])),
            (&pod["terminationGracePeriodSeconds"], json!(0)),
            (&pod["hostNetwork"], Value::Null),
        ];
        for (i, (got, want)) in cases.into_iter().enumerate() {
            assert_eq!(got, &want, "case {i}");
        }
    }

    #[test]
    fn message_names() {
        let cases = [
            ("apps/v1", "Deployment", Some("io.k8s.api.apps.v1.Deployment")),
            ("v1", "Pod", Some("io.k8s.api.core.v1.Pod")),
            ("coordination.k8s.io/v1", "Lease", Some("io.k8s.api.coordination.v1.Lease")),
            ("events.k8s.io/v1", "Event", Some("io.k8s.api.events.v1.Event")),
            ("policy/v1", "Eviction", Some("io.k8s.api.policy.v1.Eviction")),
            ("autoscaling/v1", "Scale", Some("io.k8s.api.autoscaling.v1.Scale")),
            ("meta.k8s.io/v1", "DeleteOptions", Some("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions")),
            ("", "Pod", None),
            ("v1", "", None),
        ];
        for (api_version, kind, want) in cases {
            assert_eq!(message_name(api_version, kind).as_deref(), want, "{api_version} {kind}");
        }
    }

    #[test]
    fn content_types() {
        assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
        assert!(is_protobuf("application/vnd.kubernetes.protobuf; charset=utf-8"));
        assert!(!is_protobuf("application/json"));
        assert!(is_protobuf("Application/VND.Kubernetes.Protobuf"));
        assert!(!is_protobuf("application/vnd.kubernetes.protobuf+json"));
    }

    /// Encodes a length-delimited field.
    fn ld(tag: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(tag << 3) | 2, u8::try_from(payload.len()).expect("short")];
        out.extend_from_slice(payload);
        out
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = ld(1, api_version.as_bytes());
        tm.extend(ld(2, kind.as_bytes()));
        let mut body = b"k8s\0".to_vec();
        body.extend(ld(1, &tm));
        body.extend(ld(2, raw));
        body.extend(ld(3, b""));
        body.extend(ld(4, b""));
        body
    }

    #[test]
    fn delete_options_keep_zero_pointers() {
        // gracePeriodSeconds = 0 (1: varint), propagationPolicy = "Foreground" (4), dryRun = ["All"] (5),
        // orphanDependents = false (3).
        let mut raw = vec![0x08, 0x00, 0x18, 0x00];
        raw.extend(ld(4, b"Foreground"));
        raw.extend(ld(5, b"All"));
        let got = decode(&envelope("meta.k8s.io/v1", "DeleteOptions", &raw)).expect("decode");
        assert_eq!(
            got,
            json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1", "gracePeriodSeconds": 0,
                   "orphanDependents": false, "propagationPolicy": "Foreground", "dryRun": ["All"]})
        );
    }

    #[test]
    fn eviction_nests_messages() {
        let mut meta = ld(1, b"web-1");
        meta.extend(ld(3, b"default"));
        let mut raw = ld(1, &meta);
        raw.extend(ld(2, &[0x08, 0x1e]));
        let got = decode(&envelope("policy/v1", "Eviction", &raw)).expect("decode");
        assert_eq!(
            got,
            json!({"kind": "Eviction", "apiVersion": "policy/v1",
                   "metadata": {"name": "web-1", "namespace": "default"}, "deleteOptions": {"gracePeriodSeconds": 30}})
        );
    }

    #[test]
    fn unknown_tags_are_skipped() {
        // ObjectMeta.name plus a field 99 no schema knows.
        let mut meta = ld(1, b"x");
        meta.extend([0x98, 0x06, 0x07]);
        let got = decode(&envelope("v1", "Namespace", &ld(1, &meta))).expect("decode");
        assert_eq!(got, json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "x"}}));
    }

    #[test]
    fn rejects_bad_bodies() {
        let cases: [(Vec<u8>, &str); 5] = [
            (
                b"{\"kind\":\"Pod\"}".to_vec(),
                "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]",
            ),
            (
                envelope("v1", "Nope", b""),
                "no kind \"Nope\" is registered for version \"v1\" in scheme \"pkg/api/legacyscheme/scheme.go:30\"",
            ),
            (
                envelope("", "", b""),
                "no kind \"\" is registered for version \"\" in scheme \"pkg/api/legacyscheme/scheme.go:30\"",
            ),
            (
                envelope("v1", "Namespace", &[0x0a, 0x05, 0x0a]),
                "failed to decode protobuf body: unexpected end of data",
            ),
            (
                envelope("v1", "Namespace", &ld(1, &ld(1, &[0xff]))),
                "failed to decode protobuf body: field name: invalid UTF-8",
            ),
        ];
        for (body, want) in cases {
            let err = decode(&body).expect_err(want);
            assert_eq!((err.code, err.message.as_str()), (400, want));
        }
    }
}
