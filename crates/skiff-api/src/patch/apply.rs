//! Server-side apply (`application/apply-patch+yaml`), after structured-merge-diff's
//! `Updater.Apply` and the apiserver's field manager chain.
//!
//! 1. The applier's field set is the set of what it sent (`structured::to_field_set`), minus what
//!    nobody owns (name, uid, ...) and minus `status` for kinds with a status subresource.
//! 2. The applied object is merged into the live one (maps by key, map lists by key, sets by value,
//!    atomic values replaced).
//! 3. Fields the applier owned at its previous apply but no longer sends are removed, unless some
//!    manager (the applier's new set included) still owns them or something below them.
//! 4. Fields another manager owns and this apply changes are conflicts: 409 with one
//!    `FieldManagerConflict` cause each, or, with `force`, they move to the applier.
//! 5. The applier's `Apply` entry is its new set; fields it changed or removed leave other entries.
//!
//! Simplifications, all on the safe side for kubectl: the `status` an applier sends to a kind with a
//! status subresource is dropped before merging (the strategy would reset it); `kubectl`'s
//! client-side-apply annotation is kept in sync (`lastAppliedUpdater`) but the CSA→SSA conflict
//! exemption (`lastAppliedManager`) is not implemented; there is no cap on the number of entries
//! (`capManagersManager`); unions are not normalized.

use serde_json::{Map, Value};

use super::fieldpath::{Path, Set, path_string};
use super::managed_fields::{self, Entry};
use super::schema;
use super::structured;
use crate::error::{ApiError, Cause};
use crate::meta;
use crate::resource::ResourceInfo;

/// The annotation `kubectl apply` (client-side) keeps its last configuration in.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Server-side apply: merges `applied` (the full object the applier sends) into `live` (None = create),
/// removes fields this manager owned before but no longer sends (unless another manager owns them), records
/// the manager's Apply entry in managedFields, and returns 409 Conflict with causes
/// `[{reason: "FieldManagerConflict", message: "conflict with \"<manager>\" using <apiVersion>", field: ".spec.replicas"}]`
/// (and the apiserver's message wording, see F.8) when a field owned by another manager gets a different
/// value, unless `force`, in which case ownership moves to the applier.
pub fn apply(
    resource: &ResourceInfo,
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, ApiError> {
    let Value::Object(_) = applied else {
        return Err(ApiError::bad_request("error decoding YAML: the apply patch must be an object"));
    };
    let expected = resource.api_version();
    let sent_version = applied.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if sent_version != expected {
        return Err(ApiError::bad_request(format!(
            "Incorrect version specified in apply patch. Specified patch version: {sent_version}, expected: {expected}"
        )));
    }
    if meta::at(applied, &["metadata", "managedFields"]).is_some_and(|v| !v.is_null()) {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }

    let root = schema::root(resource.kind);
    let mut config = applied.clone();
    if resource.has_status()
        && let Value::Object(m) = &mut config
    {
        m.remove("status");
    }
    let config_set = structured::to_field_set(root, &config).map_err(|e| {
        let gvk = format!("{expected}, Kind={}", resource.kind);
        let gvk = if resource.group.is_empty() { format!("/{gvk}") } else { gvk };
        ApiError::new(500, "", format!("failed to create typed patch object ({gvk}): {e}"))
    })?;
    let config_set = managed_fields::owned_part(&config_set, resource, None);

    let mut live_obj = live.cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let mut entries = managed_fields::decode(&live_obj).unwrap_or_default();
    if live_obj.get("metadata").is_some() {
        meta::remove_meta(&mut live_obj, "managedFields");
    }

    let mut merged = structured::merge(root, &live_obj, &config);
    let previous = entries.iter().position(|e| e.is(manager, "Apply", ""));
    let last_set = previous.map(|i| entries[i].set.clone()).unwrap_or_default();

    // Prune what the applier dropped, keeping anything someone (the applier included) still owns.
    let owned_by_others: Set = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != previous)
        .fold(Set::new(), |acc, (_, e)| acc.union(&e.set));
    let owned = owned_by_others.union(&config_set);
    prune(root, &mut merged, &last_set, &owned);

    // Conflicts: fields of other managers that this apply changes.
    let diff = structured::compare(root, &live_obj, &merged);
    let changed = managed_fields::owned_part(&diff.changed, resource, None);
    let removed = managed_fields::owned_part(&diff.removed, resource, None);
    let mut conflicts: Vec<(String, Path)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if Some(i) == previous {
            continue;
        }
        for p in e.set.intersection(&changed).paths() {
            conflicts.push((describe_manager(e), p));
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflict_error(conflicts));
    }
    for (i, e) in entries.iter_mut().enumerate() {
        if Some(i) != previous {
            e.set = e.set.difference(&changed).difference(&removed);
        }
    }

    let object_changed = merged != live_obj;
    match previous {
        Some(i) => {
            let e = &mut entries[i];
            if object_changed || e.set != config_set || e.time.is_none() {
                e.time = Some(now.to_string());
            }
            e.set = config_set;
            e.api_version = expected;
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: "Apply".to_string(),
            api_version: expected,
            time: Some(now.to_string()),
            set: config_set,
            subresource: String::new(),
        }),
    }

    if manager == "kubectl" && meta::annotations(&merged).is_some_and(|a| a.contains_key(LAST_APPLIED_ANNOTATION)) {
        let text = last_applied(applied);
        meta::object_field_mut(&mut merged, "metadata");
        if let Some(Value::Object(md)) = merged.get_mut("metadata") {
            let annotations = md.entry("annotations").or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(a) = annotations {
                a.insert(LAST_APPLIED_ANNOTATION.to_string(), Value::String(text));
            }
        }
    }
    managed_fields::encode_into(&mut merged, entries);
    Ok(merged)
}

/// Removes from `obj` the paths of `last` that nobody owns any more, then the objects and lists of
/// `last` that this left empty (`Updater.prune`: items not in `last` are never touched).
fn prune(root: schema::TypeName, obj: &mut Value, last: &Set, owned: &Set) {
    if last.is_empty() {
        return;
    }
    for p in last.paths().iter().rev() {
        if !owned.has_under(p) {
            structured::remove_path(root, obj, p);
        }
    }
    for p in last.interior_paths() {
        if owned.has_under(&p) {
            continue;
        }
        if structured::get_path(root, obj, &p).is_some_and(structured::is_empty_container) {
            structured::remove_path(root, obj, &p);
        }
    }
}

/// How the apiserver names a manager in conflicts (`printManager` on the manager identifier, which
/// has no time): `"kubectl"` for an applier, `"kubectl-edit" using apps/v1` for an updater.
fn describe_manager(e: &Entry) -> String {
    let mut s = format!("{:?}", e.manager);
    if !e.subresource.is_empty() {
        s = format!("{s} with subresource {:?}", e.subresource);
    }
    if e.operation == "Update" {
        s = format!("{s} using {}", e.api_version);
    }
    s
}

/// `NewConflictError`: 409 Conflict, one cause per conflicting field, the message as
/// `getConflictMessage` words it.
fn conflict_error(mut conflicts: Vec<(String, Path)>) -> ApiError {
    conflicts.sort();
    let causes: Vec<Cause> = conflicts
        .iter()
        .map(|(m, p)| Cause::new("FieldManagerConflict", path_string(p), format!("conflict with {m}")))
        .collect();
    let message = if let [(m, p)] = conflicts.as_slice() {
        format!("Apply failed with 1 conflict: conflict with {m}: {}", path_string(p))
    } else {
        let mut lines = Vec::new();
        let mut current: Option<&String> = None;
        for (m, p) in &conflicts {
            if current != Some(m) {
                lines.push(format!("conflicts with {m}:"));
                current = Some(m);
            }
            lines.push(format!("- {}", path_string(p)));
        }
        format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
    };
    let mut e = ApiError::new(409, "Conflict", message);
    e.causes = causes;
    e
}

/// The annotation value `lastAppliedUpdater` writes: the applied object without the annotation, as
/// compact JSON followed by a newline.
fn last_applied(applied: &Value) -> String {
    let mut copy = applied.clone();
    if let Some(Value::Object(a)) = copy.get_mut("metadata").and_then(|m| m.get_mut("annotations")) {
        a.remove(LAST_APPLIED_ANNOTATION);
    }
    format!("{copy}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::fieldpath::path;
    use crate::patch::managed_fields::{decode, record_update};
    use crate::resource::lookup;
    use serde_json::json;

    fn deployments() -> &'static ResourceInfo {
        lookup("apps", "v1", "deployments").expect("deployments")
    }

    fn config(replicas: Option<i64>, image: &str, labels: Value) -> Value {
        let mut spec = json!({
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": image, "ports": [{"containerPort": 80}]}]}}
        });
        if let Some(r) = replicas {
            spec["replicas"] = json!(r);
        }
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": labels}, "spec": spec})
    }

    #[test]
    fn create_by_apply_records_the_apply_entry() {
        let out = apply(
            deployments(),
            None,
            &config(Some(2), "nginx", json!({"app": "web"})),
            "kubectl",
            false,
            "2026-01-01T00:00:00Z",
        )
        .expect("creates");
        assert_eq!(out["spec"]["replicas"], 2);
        assert_eq!(out["metadata"]["name"], "web");
        assert_eq!(
            out["metadata"]["managedFields"],
            json!([{
                "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": "2026-01-01T00:00:00Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {
                        "f:replicas": {},
                        "f:selector": {},
                        "f:template": {
                            "f:metadata": {"f:labels": {"f:app": {}}},
                            "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                                ".": {}, "f:image": {}, "f:name": {},
                                "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                            }}}
                        }
                    }
                }
            }])
        );
    }

    #[test]
    fn reapply_removes_fields_the_manager_no_longer_sends() {
        let first = config(Some(2), "nginx", json!({"app": "web", "tier": "front"}));
        let live = apply(deployments(), None, &first, "kubectl", false, "2026-01-01T00:00:00Z").expect("creates");
        // Someone else adds a label the applier never owned.
        let mut edited = live.clone();
        edited["metadata"]["labels"]["team"] = json!("a");
        record_update(deployments(), Some(&live), &mut edited, "kubectl-label", None, "2026-01-01T00:01:00Z");

        let second = config(None, "nginx", json!({"app": "web"}));
        let out =
            apply(deployments(), Some(&edited), &second, "kubectl", false, "2026-01-01T00:02:00Z").expect("applies");
        assert!(out["spec"].get("replicas").is_none(), "replicas was only the applier's");
        assert_eq!(out["metadata"]["labels"], json!({"app": "web", "team": "a"}));
        let entries = decode(&out).expect("decodes");
        let mine = entries.iter().find(|e| e.is("kubectl", "Apply", "")).expect("apply entry");
        assert!(!mine.set.has(&path(&["f:spec", "f:replicas"])));
        assert!(!mine.set.has(&path(&["f:metadata", "f:labels", "f:tier"])));
        assert_eq!(mine.time.as_deref(), Some("2026-01-01T00:02:00Z"));
    }

    #[test]
    fn dropped_container_is_removed_and_a_shared_field_is_kept() {
        let mut two = config(Some(1), "nginx", json!({"app": "web"}));
        two["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .expect("containers")
            .push(json!({"name": "sidecar", "image": "busybox"}));
        let live = apply(deployments(), None, &two, "kubectl", false, "t1").expect("creates");
        // A second applier shares spec.replicas (same value: no conflict).
        let other = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 1}});
        let live = apply(deployments(), Some(&live), &other, "helper", false, "t2").expect("shares");
        let out =
            apply(deployments(), Some(&live), &config(None, "nginx", json!({"app": "web"})), "kubectl", false, "t3")
                .expect("applies");
        let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, vec!["web"]);
        assert_eq!(out["spec"]["replicas"], 1, "still owned by helper");
    }

    #[test]
    fn conflicting_managers_get_409_with_causes() {
        let live = apply(deployments(), None, &config(Some(2), "nginx", json!({"app": "web"})), "kubectl", false, "t1")
            .expect("creates");
        // kubectl scale (an Update through /scale by a manager from the User-Agent)... then a client-side
        // apply that owns replicas on the main resource.
        let mut csa = live.clone();
        csa["spec"]["replicas"] = json!(5);
        record_update(deployments(), Some(&live), &mut csa, "kubectl-client-side-apply", None, "2026-01-01T00:01:00Z");

        let err =
            apply(deployments(), Some(&csa), &config(Some(3), "nginx", json!({"app": "web"})), "kubectl", false, "t2")
                .expect_err("conflict");
        assert_eq!(err.code, 409);
        assert_eq!(err.reason, "Conflict");
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
        );
        assert_eq!(
            err.causes,
            vec![Cause::new(
                "FieldManagerConflict",
                ".spec.replicas",
                "conflict with \"kubectl-client-side-apply\" using apps/v1"
            )]
        );
        let status = err.to_status();
        assert_eq!(status["details"]["causes"][0]["reason"], "FieldManagerConflict");

        // Same value as the other owner: no conflict, shared ownership.
        apply(deployments(), Some(&csa), &config(Some(5), "nginx", json!({"app": "web"})), "kubectl", false, "t2")
            .expect("same value shares");

        // Two conflicts, from two managers.
        let mut edited = csa.clone();
        edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:edited");
        record_update(deployments(), Some(&csa), &mut edited, "kubectl-edit", None, "2026-01-01T00:02:00Z");
        let err = apply(
            deployments(),
            Some(&edited),
            &config(Some(3), "nginx:2", json!({"app": "web"})),
            "kubectl",
            false,
            "t3",
        )
        .expect_err("two conflicts");
        assert_eq!(
            err.message,
            "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:\n- .spec.replicas\nconflicts with \"kubectl-edit\" using apps/v1:\n- .spec.template.spec.containers[name=\"web\"].image"
        );
        assert_eq!(err.causes.len(), 2);
    }

    #[test]
    fn force_takes_ownership() {
        let live = apply(deployments(), None, &config(Some(2), "nginx", json!({"app": "web"})), "kubectl", false, "t1")
            .expect("creates");
        let mut scaled = live.clone();
        scaled["spec"]["replicas"] = json!(5);
        record_update(deployments(), Some(&live), &mut scaled, "kubectl", Some("scale"), "2026-01-01T00:01:00Z");
        let err = apply(
            deployments(),
            Some(&scaled),
            &config(Some(3), "nginx", json!({"app": "web"})),
            "kubectl",
            false,
            "t2",
        )
        .expect_err("conflict with the scale entry");
        assert_eq!(err.causes[0].message, "conflict with \"kubectl\" with subresource \"scale\" using apps/v1");

        let out = apply(
            deployments(),
            Some(&scaled),
            &config(Some(3), "nginx", json!({"app": "web"})),
            "kubectl",
            true,
            "t2",
        )
        .expect("forced");
        assert_eq!(out["spec"]["replicas"], 3);
        let entries = decode(&out).expect("decodes");
        assert_eq!(entries.len(), 1, "the scale entry lost its only field");
        assert!(entries[0].set.has(&path(&["f:spec", "f:replicas"])));
    }

    #[test]
    fn managed_fields_after_update_then_apply() {
        let mut created = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}
        });
        record_update(deployments(), None, &mut created, "kubectl-create", None, "2026-01-01T00:00:00Z");
        let applied = json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}
        });
        let err = apply(deployments(), Some(&created), &applied, "kubectl", false, "2026-01-01T00:05:00Z")
            .expect_err("image owned");
        assert_eq!(err.causes[0].field, ".spec.template.spec.containers[name=\"web\"].image");
        let out =
            apply(deployments(), Some(&created), &applied, "kubectl", true, "2026-01-01T00:05:00Z").expect("forced");
        let mf = out["metadata"]["managedFields"].as_array().expect("entries");
        assert_eq!(mf.len(), 2);
        assert_eq!(mf[0]["operation"], "Apply", "Apply entries sort first");
        assert_eq!(
            mf[0]["fieldsV1"],
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
        );
        assert_eq!(mf[1]["manager"], "kubectl-create");
        assert_eq!(
            mf[1]["fieldsV1"]["f:spec"]["f:template"]["f:spec"],
            json!({"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:name": {}}}})
        );
        assert_eq!(out["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.27");
        assert_eq!(out["spec"]["replicas"], 1);
    }

    #[test]
    fn bad_apply_requests() {
        let mut wrong = config(Some(1), "nginx", json!({}));
        wrong["apiVersion"] = json!("apps/v1beta1");
        let e = apply(deployments(), None, &wrong, "kubectl", false, "t").expect_err("version");
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                400,
                "Incorrect version specified in apply patch. Specified patch version: apps/v1beta1, expected: apps/v1"
            )
        );
        let mut with_mf = config(Some(1), "nginx", json!({}));
        with_mf["metadata"]["managedFields"] = json!([]);
        assert_eq!(
            apply(deployments(), None, &with_mf, "kubectl", false, "t").expect_err("mf").message,
            "metadata.managedFields must be nil"
        );
        let mut no_name = config(Some(1), "nginx", json!({}));
        no_name["spec"]["template"]["spec"]["containers"] = json!([{"image": "x"}]);
        let e = apply(deployments(), None, &no_name, "kubectl", false, "t").expect_err("key");
        assert_eq!(e.code, 500);
        assert!(e.message.starts_with("failed to create typed patch object (apps/v1, Kind=Deployment): .spec.template.spec.containers: element 0"), "{}", e.message);
    }

    #[test]
    fn status_is_neither_applied_nor_owned_on_the_main_resource() {
        let mut c = config(Some(1), "nginx", json!({"app": "web"}));
        c["status"] = json!({"replicas": 7});
        let out = apply(deployments(), None, &c, "kubectl", false, "t").expect("creates");
        assert!(out.get("status").is_none());
        assert!(!decode(&out).expect("decodes")[0].set.has_under(&path(&["f:status"])));
    }

    #[test]
    fn kubectl_keeps_the_last_applied_annotation_in_sync() {
        let mut live = config(Some(1), "nginx", json!({"app": "web"}));
        live["metadata"]["annotations"] = json!({LAST_APPLIED_ANNOTATION: "{\"old\":true}\n"});
        let applied = config(Some(2), "nginx", json!({"app": "web"}));
        let out = apply(deployments(), Some(&live), &applied, "kubectl", false, "t").expect("applies");
        let text = out["metadata"]["annotations"][LAST_APPLIED_ANNOTATION].as_str().expect("annotation");
        assert!(text.ends_with('\n'));
        assert_eq!(serde_json::from_str::<Value>(text.trim_end()).expect("json"), applied);
    }
}
