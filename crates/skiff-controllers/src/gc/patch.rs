//! The JSON merge patches (RFC 7386) the collector sends. Each carries the object's `uid` and
//! `resourceVersion` as preconditions: lists in a merge patch are replaced whole, so a patch computed
//! from a stale read must fail with 409 Conflict instead of undoing someone else's change. The caller
//! re-reads and recomputes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::{Map, Value, json};

/// `{"metadata": {uid, resourceVersion, <field>: value}}`; `value` null removes the field.
fn metadata_patch(meta: &ObjectMeta, field: &str, value: Value) -> Value {
    let mut m = Map::new();
    if let Some(uid) = &meta.uid {
        m.insert("uid".into(), json!(uid));
    }
    if let Some(rv) = &meta.resource_version {
        m.insert("resourceVersion".into(), json!(rv));
    }
    m.insert(field.into(), value);
    json!({ "metadata": m })
}

fn refs_value(refs: &[OwnerReference]) -> Value {
    if refs.is_empty() { Value::Null } else { serde_json::to_value(refs).unwrap_or(Value::Null) }
}

/// Removes the ownerReferences to the owners with these UIDs; `None` when there are none.
pub fn remove_owner_refs(meta: &ObjectMeta, owner_uids: &[String]) -> Option<Value> {
    let refs = meta.owner_references.as_deref().unwrap_or_default();
    let kept: Vec<OwnerReference> = refs.iter().filter(|r| !owner_uids.contains(&r.uid)).cloned().collect();
    if kept.len() == refs.len() {
        return None;
    }
    Some(metadata_patch(meta, "ownerReferences", refs_value(&kept)))
}

/// Sets `blockOwnerDeletion: false` on every reference that blocks; `None` when none does.
pub fn unblock_owner_refs(meta: &ObjectMeta) -> Option<Value> {
    let refs = meta.owner_references.as_deref().unwrap_or_default();
    if !refs.iter().any(|r| r.block_owner_deletion == Some(true)) {
        return None;
    }
    let unblocked: Vec<OwnerReference> = refs
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if r.block_owner_deletion == Some(true) {
                r.block_owner_deletion = Some(false);
            }
            r
        })
        .collect();
    Some(metadata_patch(meta, "ownerReferences", refs_value(&unblocked)))
}

/// Removes one finalizer; `None` when the object does not carry it. Removing the last finalizer of
/// an object with a deletionTimestamp deletes it.
pub fn remove_finalizer(meta: &ObjectMeta, finalizer: &str) -> Option<Value> {
    let all = meta.finalizers.as_deref().unwrap_or_default();
    if !all.iter().any(|f| f == finalizer) {
        return None;
    }
    let kept: Vec<&String> = all.iter().filter(|f| *f != finalizer).collect();
    let value = if kept.is_empty() { Value::Null } else { json!(kept) };
    Some(metadata_patch(meta, "finalizers", value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(v: Value) -> ObjectMeta {
        serde_json::from_value(v).expect("meta")
    }

    fn two_owners() -> ObjectMeta {
        meta(json!({
            "name": "dep", "uid": "d1", "resourceVersion": "42",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "a", "uid": "a1", "controller": true, "blockOwnerDeletion": true},
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "b", "uid": "b1"}
            ]
        }))
    }

    #[test]
    fn remove_owner_refs_table() {
        let cases = [
            (
                "one of two",
                vec!["a1".to_string()],
                Some(json!({"metadata": {"uid": "d1", "resourceVersion": "42",
                    "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "b", "uid": "b1"}]}})),
            ),
            (
                "all of them: the field goes",
                vec!["a1".to_string(), "b1".to_string()],
                Some(json!({"metadata": {"uid": "d1", "resourceVersion": "42", "ownerReferences": null}})),
            ),
            ("none referenced", vec!["zz".to_string()], None),
        ];
        for (name, uids, want) in cases {
            assert_eq!(remove_owner_refs(&two_owners(), &uids), want, "{name}");
        }
        assert_eq!(remove_owner_refs(&meta(json!({"name": "x", "uid": "x1"})), &["a1".to_string()]), None);
    }

    #[test]
    fn unblock_owner_refs_table() {
        assert_eq!(
            unblock_owner_refs(&two_owners()),
            Some(json!({"metadata": {"uid": "d1", "resourceVersion": "42", "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "a", "uid": "a1", "controller": true, "blockOwnerDeletion": false},
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "b", "uid": "b1"}
            ]}}))
        );
        let unblocked = meta(json!({"name": "dep", "uid": "d1", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "b", "uid": "b1", "blockOwnerDeletion": false}]}));
        assert_eq!(unblock_owner_refs(&unblocked), None);
    }

    #[test]
    fn remove_finalizer_table() {
        let cases = [
            (
                "the last finalizer: the field goes",
                json!({"name": "d", "uid": "u", "resourceVersion": "7", "finalizers": ["foregroundDeletion"]}),
                "foregroundDeletion",
                Some(json!({"metadata": {"uid": "u", "resourceVersion": "7", "finalizers": null}})),
            ),
            (
                "others stay, in order",
                json!({"name": "d", "uid": "u", "resourceVersion": "7", "finalizers": ["example.com/a", "orphan", "example.com/b"]}),
                "orphan",
                Some(
                    json!({"metadata": {"uid": "u", "resourceVersion": "7", "finalizers": ["example.com/a", "example.com/b"]}}),
                ),
            ),
            ("not there", json!({"name": "d", "uid": "u", "finalizers": ["example.com/a"]}), "orphan", None),
            ("no finalizers", json!({"name": "d", "uid": "u"}), "orphan", None),
        ];
        for (name, m, finalizer, want) in cases {
            assert_eq!(remove_finalizer(&meta(m), finalizer), want, "{name}");
        }
    }
}
