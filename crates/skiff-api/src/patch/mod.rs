//! PATCH and field ownership: the four patch types the apiserver accepts (`handlers/patch.go`), and
//! `metadata.managedFields` upkeep for every write, including server-side apply.
//!
//! * [`json_patch()`]: RFC 6902 (`application/json-patch+json`).
//! * [`merge_patch`]: RFC 7386 (`application/merge-patch+json`).
//! * [`strategic_merge_patch`]: Kubernetes' strategic merge patch, driven by [`schema`].
//! * [`apply::apply`]: server-side apply (`application/apply-patch+yaml`) with ownership and conflicts.
//! * [`managed_fields::record_update`]: the `Update` entry of a create/update/patch.
//!
//! Module map: [`schema`] (which list merges by which key: one table), [`fieldpath`] (the
//! `FieldsV1` set notation), `structured` (field sets, comparison and the apply merge over a
//! value), `created` (a create's fields straight as `FieldsV1`), [`strategic`], [`managed_fields`],
//! [`apply`].

pub mod apply;
mod created;
pub mod fieldpath;
pub mod managed_fields;
pub mod schema;
pub mod strategic;
mod structured;

pub use strategic::strategic_merge_patch;

use serde_json::Value;

use crate::error::{ApiError, Cause};

/// The patch types, by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`
    Json,
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    Strategic,
    /// `application/apply-patch+yaml`
    Apply,
}

impl PatchType {
    /// The patch type of a `Content-Type` header; parameters (`; charset=utf-8`) are ignored, as
    /// the apiserver cuts the header at the first `;`. `None`: answer 415
    /// ([`ApiError::unsupported_media_type`]).
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let media = ct.split(';').next().unwrap_or("").trim();
        Some(match media {
            "application/json-patch+json" => PatchType::Json,
            "application/merge-patch+json" => PatchType::Merge,
            "application/strategic-merge-patch+json" => PatchType::Strategic,
            "application/apply-patch+yaml" => PatchType::Apply,
            _ => return None,
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Strategic => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// The most operations a JSON patch may hold (`handlers/patch.go: maxJSONPatchOperations`).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Applies an RFC 6902 JSON patch. A body that is not a list of operations is a 400; an operation
/// that fails (a missing path, a failed `test`) is the apiserver's generic 422
/// ("the server rejected our request due to an error in our request"), the detail in its cause.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, ApiError> {
    let Value::Array(ops) = patch else {
        return Err(ApiError::bad_request(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
            kind_word(patch)
        )));
    };
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(ApiError::too_large(format!(
            "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
            ops.len()
        )));
    }
    if let Some(bad) = ops.iter().find(|op| !op.is_object()) {
        return Err(ApiError::bad_request(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
            kind_word(bad)
        )));
    }
    let parsed: json_patch::Patch = serde_json::from_value(patch.clone()).map_err(|e| unprocessable(e.to_string()))?;
    let mut doc = target.clone();
    json_patch::patch(&mut doc, &parsed).map_err(|e| unprocessable(e.to_string()))?;
    Ok(doc)
}

/// Applies an RFC 7386 merge patch. A `null` body is a 400 ("Invalid JSON Patch"); a body that is
/// not an object would replace the whole object, which the apiserver then fails to decode (422).
pub fn merge_patch(target: &Value, patch: &Value) -> Result<Value, ApiError> {
    match patch {
        Value::Object(_) => {
            let mut doc = target.clone();
            json_patch::merge(&mut doc, patch);
            Ok(doc)
        }
        Value::Null => Err(ApiError::bad_request("Invalid JSON Patch")),
        other => Err(invalid_patch(
            &other.to_string(),
            &format!("json: cannot unmarshal {} into Go value of type map[string]interface {{}}", kind_word(other)),
        )),
    }
}

/// The manager name the apiserver derives from a `User-Agent` when a write names none
/// (`handlers/create.go: prefixFromUserAgent`): the part before the first `/`, without
/// non-printable characters, at most 128 bytes. An empty User-Agent gives an empty manager.
pub fn manager_from_user_agent(user_agent: &str) -> String {
    const FIELD_MANAGER_MAX_LENGTH: usize = 128;
    let prefix = user_agent.split('/').next().unwrap_or("");
    let mut out = String::new();
    for c in prefix.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > FIELD_MANAGER_MAX_LENGTH {
            break;
        }
        out.push(c);
    }
    out
}

/// `errors.NewGenericServerResponse(422, ...)`: the shape of patch-application failures.
pub(crate) fn unprocessable(detail: impl Into<String>) -> ApiError {
    let mut e = ApiError::new(422, "Invalid", "the server rejected our request due to an error in our request");
    e.causes = vec![Cause::new("UnexpectedServerResponse", "", detail)];
    e
}

/// `errors.NewInvalid(GroupKind{}, "", [field.Invalid("patch", value, detail)])`.
fn invalid_patch(value: &str, detail: &str) -> ApiError {
    let cause = Cause::new("FieldValueInvalid", "patch", format!("Invalid value: {value:?}: {detail}"));
    let mut e = ApiError::new(422, "Invalid", format!(" {:?} is invalid: patch: {}", "", cause.message));
    e.causes = vec![cause];
    e
}

fn kind_word(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Null => "null",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types() {
        let cases = [
            ("application/json-patch+json", Some(PatchType::Json)),
            ("application/merge-patch+json; charset=utf-8", Some(PatchType::Merge)),
            ("application/strategic-merge-patch+json", Some(PatchType::Strategic)),
            ("application/apply-patch+yaml", Some(PatchType::Apply)),
            ("application/apply-patch+cbor", None),
            ("application/json", None),
            ("", None),
        ];
        for (ct, want) in cases {
            assert_eq!(PatchType::from_content_type(ct), want, "{ct}");
        }
        assert_eq!(PatchType::Apply.content_type(), "application/apply-patch+yaml");
    }

    #[test]
    fn json_patch_ops_and_errors() {
        let obj = json!({"spec": {"replicas": 1, "template": {"metadata": {"annotations": {"a": "b"}}}}});
        let out = json_patch(
            &obj,
            &json!([
                {"op": "replace", "path": "/spec/replicas", "value": 3},
                {"op": "remove", "path": "/spec/template/metadata/annotations/a"},
                {"op": "add", "path": "/metadata", "value": {"labels": {"x": "y"}}},
                {"op": "test", "path": "/spec/replicas", "value": 3}
            ]),
        )
        .expect("applies");
        assert_eq!(
            out,
            json!({"spec": {"replicas": 3, "template": {"metadata": {"annotations": {}}}}, "metadata": {"labels": {"x": "y"}}})
        );

        let failed = json_patch(&obj, &json!([{"op": "remove", "path": "/spec/nothing"}])).expect_err("missing path");
        assert_eq!(failed.code, 422);
        assert_eq!(failed.reason, "Invalid");
        assert_eq!(failed.message, "the server rejected our request due to an error in our request");
        assert_eq!(failed.causes[0].reason, "UnexpectedServerResponse");

        let test_failed =
            json_patch(&obj, &json!([{"op": "test", "path": "/spec/replicas", "value": 9}])).expect_err("test");
        assert_eq!(test_failed.code, 422);

        let not_list = json_patch(&obj, &json!({"op": "add"})).expect_err("not a list");
        assert_eq!(
            (not_list.code, not_list.message.as_str()),
            (400, "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
        );

        let too_many: Vec<Value> = (0..10_001).map(|_| json!({"op": "test", "path": "", "value": 1})).collect();
        assert_eq!(json_patch(&obj, &Value::Array(too_many)).expect_err("too many").code, 413);
    }

    #[test]
    fn merge_patch_rfc7386() {
        let obj = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 1, "list": [1, 2]}});
        let out = merge_patch(
            &obj,
            &json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"replicas": 5, "list": [3]}}),
        )
        .expect("applies");
        assert_eq!(out, json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"replicas": 5, "list": [3]}}));
        assert_eq!(merge_patch(&obj, &Value::Null).expect_err("null").code, 400);
        let arr = merge_patch(&obj, &json!([1])).expect_err("array");
        assert_eq!(arr.code, 422);
        assert_eq!(arr.causes[0].field, "patch");
    }

    #[test]
    fn managers_from_user_agents() {
        let cases = [
            ("kubectl/v1.35.2 (linux/amd64) kubernetes/abc123", "kubectl"),
            (
                "kube-controller-manager/v1.35.0 (linux/amd64) kubernetes/x/system:serviceaccount:kube-system:deployment-controller",
                "kube-controller-manager",
            ),
            ("OpenAPI-Generator/33.1.0/python", "OpenAPI-Generator"),
            ("curl", "curl"),
            ("", ""),
            ("a\u{7}b/1", "ab"),
        ];
        for (ua, want) in cases {
            assert_eq!(manager_from_user_agent(ua), want, "{ua}");
        }
        assert_eq!(manager_from_user_agent(&"x".repeat(300)).len(), 128);
    }
}
