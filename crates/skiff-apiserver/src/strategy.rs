//! Per-kind write rules (the apiserver's `RESTCreateStrategy`/`RESTUpdateStrategy`): which part of an
//! object a write on the main resource or on `/status` may change, and when `generation` moves.

use serde_json::{Value, json};
use skiff_api::meta;
use skiff_api::{ResourceInfo, Subresource};

/// Kinds whose `metadata.generation` starts at 1 and is bumped on every spec change.
pub fn tracks_generation(r: &ResourceInfo) -> bool {
    matches!((r.group, r.kind), ("apps", "Deployment") | ("apps", "ReplicaSet") | ("", "Pod"))
}

/// A Secret's `stringData` is write-only: merged (base64-encoded) into `data`, then dropped, on every
/// create and update (`pkg/apis/core/v1/conversion.go`).
pub fn merge_string_data(r: &ResourceInfo, obj: &mut Value) {
    if (r.group, r.kind) != ("", "Secret") {
        return;
    }
    let Some(map) = obj.as_object_mut() else { return };
    let Some(Value::Object(string_data)) = map.remove("stringData") else { return };
    let data = map.entry("data").or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    if let Some(data) = data.as_object_mut() {
        use base64::Engine;
        for (k, v) in string_data {
            let text = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            data.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(text)));
        }
    }
}

/// Resets what a create may not set: the status of kinds whose status only controllers write.
pub fn prepare_create(r: &ResourceInfo, obj: &mut Value) {
    merge_string_data(r, obj);
    match (r.group, r.kind) {
        ("apps", "Deployment") | ("apps", "ReplicaSet") => {
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        }
        ("", "Pod") => {
            let qos = qos_class(obj);
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        ("", "Namespace") => {
            obj["status"] = json!({"phase": "Active"});
        }
        _ => {}
    }
    if tracks_generation(r) {
        meta::set_meta(obj, "generation", json!(1));
    }
}

/// A write to the main resource keeps the stored status (and a Namespace's `spec.finalizers`); a
/// write to `/status` keeps the stored spec (and, per kind, some metadata); a Namespace's
/// `/finalize` keeps only the status (`pkg/registry/core/namespace/strategy.go`).
pub fn prepare_update(r: &ResourceInfo, new: &mut Value, old: &Value, subresource: Option<Subresource>) {
    merge_string_data(r, new);
    if !r.has_status() {
        return;
    }
    match subresource {
        Some(Subresource::Status) => {
            copy_field(new, old, "spec");
            if (r.group, r.kind) == ("apps", "Deployment") {
                // The Deployment controller writes the revision annotation through /status: annotations
                // stay as sent, labels do not.
                copy_meta(new, old, "labels");
            }
            if (r.group, r.kind) == ("", "Pod") {
                copy_meta(new, old, "ownerReferences");
            }
        }
        Some(Subresource::Finalize) => copy_field(new, old, "status"),
        _ => {
            copy_field(new, old, "status");
            if (r.group, r.kind) == ("", "Namespace") {
                copy_finalizers(new, old);
            }
        }
    }
}

/// Keeps the stored `spec.finalizers` of a Namespace: only `/finalize` changes them.
fn copy_finalizers(new: &mut Value, old: &Value) {
    let kept = old.pointer("/spec/finalizers").cloned();
    if kept.is_none() && new.get("spec").is_none() {
        return;
    }
    let Some(n) = new.as_object_mut() else { return };
    let spec = n.entry("spec").or_insert_with(|| json!({}));
    let Some(spec) = spec.as_object_mut() else { return };
    match kept {
        Some(f) => {
            spec.insert("finalizers".into(), f);
        }
        None => {
            spec.remove("finalizers");
        }
    }
}

/// Whether a write changed what `generation` counts: the spec (for pods too since 1.35).
pub fn spec_changed(new: &Value, old: &Value) -> bool {
    new.get("spec") != old.get("spec")
}

fn copy_field(new: &mut Value, old: &Value, key: &str) {
    let Some(n) = new.as_object_mut() else { return };
    match old.get(key) {
        Some(v) => {
            n.insert(key.to_string(), v.clone());
        }
        None => {
            n.remove(key);
        }
    }
}

fn copy_meta(new: &mut Value, old: &Value, key: &str) {
    match old.get("metadata").and_then(|m| m.get(key)) {
        Some(v) => meta::set_meta(new, key, v.clone()),
        None => {
            meta::remove_meta(new, key);
        }
    }
}

/// The pod's QoS class (`pkg/apis/core/helper/qos`): Guaranteed when every container sets equal CPU
/// and memory limits and requests, BestEffort when none sets any, Burstable otherwise.
pub fn qos_class(pod: &Value) -> &'static str {
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(pod.pointer("/spec/initContainers").and_then(Value::as_array).into_iter().flatten());
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        let has = |m: Option<&serde_json::Map<String, Value>>| {
            m.is_some_and(|m| m.keys().any(|k| k == "cpu" || k == "memory"))
        };
        if has(requests) || has(limits) {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(res));
            // A request defaults to its limit, so a missing request with a limit is equal.
            let request = requests.and_then(|r| r.get(res)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_api::resource::lookup;

    #[test]
    fn main_writes_keep_status_and_status_writes_keep_spec() {
        let deploy = lookup("apps", "v1", "deployments").expect("deployments");
        let old = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let mut main = json!({"metadata": {"labels": {"a": "2"}}, "spec": {"replicas": 3}, "status": {"replicas": 9}});
        prepare_update(deploy, &mut main, &old, None);
        assert_eq!(main["status"], json!({"replicas": 1}));
        assert_eq!(main["spec"], json!({"replicas": 3}));

        let mut status = json!({"metadata": {"labels": {"a": "2"}, "annotations": {"x": "y"}}, "spec": {"replicas": 3}, "status": {"replicas": 2}});
        prepare_update(deploy, &mut status, &old, Some(Subresource::Status));
        assert_eq!(status["spec"], json!({"replicas": 1}));
        assert_eq!(status["status"], json!({"replicas": 2}));
        assert_eq!(status["metadata"]["labels"], json!({"a": "1"}));
        assert_eq!(status["metadata"]["annotations"], json!({"x": "y"}));
    }

    #[test]
    fn only_finalize_changes_namespace_finalizers() {
        let namespaces = lookup("", "v1", "namespaces").expect("namespaces");
        let old = json!({"spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
        let sent = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"finalizers": ["kubernetes", "example.com/x"]}, "status": {"phase": "Terminating"}});
        let mut main = sent.clone();
        prepare_update(namespaces, &mut main, &old, None);
        assert_eq!(
            main,
            json!({"metadata": {"labels": {"a": "b"}}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        );
        let mut finalize = sent.clone();
        prepare_update(namespaces, &mut finalize, &old, Some(Subresource::Finalize));
        assert_eq!(finalize["spec"], sent["spec"]);
        assert_eq!(finalize["metadata"], sent["metadata"]);
        assert_eq!(finalize["status"], old["status"]);
        let mut cleared = json!({"spec": {}});
        prepare_update(namespaces, &mut cleared, &json!({"spec": {}}), None);
        assert_eq!(cleared, json!({"spec": {}}));
    }

    #[test]
    fn create_resets_controller_owned_status() {
        let pods = lookup("", "v1", "pods").expect("pods");
        let mut pod = json!({"metadata": {}, "spec": {"containers": [{"name": "a", "image": "x"}]}, "status": {"phase": "Running"}});
        prepare_create(pods, &mut pod);
        assert_eq!(pod["status"], json!({"phase": "Pending", "qosClass": "BestEffort"}));
        assert_eq!(pod["metadata"]["generation"], json!(1));
    }

    #[test]
    fn secret_string_data_moves_into_data() {
        let secrets = lookup("", "v1", "secrets").expect("secrets");
        let mut s = json!({"data": {"a": "eA=="}, "stringData": {"password": "hunter2", "a": "y"}});
        prepare_create(secrets, &mut s);
        assert_eq!(s, json!({"data": {"a": "eQ==", "password": "aHVudGVyMg=="}}));
    }

    #[test]
    fn qos_classes() {
        let pod = |resources: Value| json!({"spec": {"containers": [{"name": "a", "resources": resources}]}});
        assert_eq!(qos_class(&pod(json!({}))), "BestEffort");
        assert_eq!(qos_class(&pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))), "Guaranteed");
        assert_eq!(
            qos_class(&pod(
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}})
            )),
            "Burstable"
        );
        assert_eq!(qos_class(&pod(json!({"requests": {"cpu": "1"}}))), "Burstable");
    }
}
