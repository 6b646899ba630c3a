//! Namespaces: the four that exist from the start, and the finalization of deleted ones (everything
//! in a terminating namespace is deleted, then the namespace itself), as the namespace controller does.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use skiff_api::resource::{self, RESOURCES};
use skiff_api::schema::FieldValidation;
use skiff_api::{ApiError, meta};
use skiff_store::{Json, Write};
use tokio::sync::watch;

use crate::App;
use crate::registry::{DeleteOptions, Registry, WriteOptions};
use crate::request::{Query, Target};

pub const BUILT_IN: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

const MANAGER: &str = "skiff-apiserver";

fn namespaces_target(name: Option<&str>) -> Result<Target, ApiError> {
    let r = resource::lookup("", "v1", "namespaces").ok_or_else(|| ApiError::internal("namespaces are not served"))?;
    Ok(Target { resource: r, namespace: None, name: name.map(str::to_string), subresource: None })
}

/// Creates the built-in namespaces that do not exist yet.
pub async fn bootstrap(reg: &Registry) -> Result<(), ApiError> {
    let t = namespaces_target(None)?;
    let opts = WriteOptions {
        manager: MANAGER.into(),
        dry_run: false,
        validation: FieldValidation::Strict,
        duplicates: Default::default(),
    };
    for name in BUILT_IN {
        if reg.get(&t, name).is_ok() {
            continue;
        }
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}});
        match reg.create(&t, ns, &opts).await {
            Ok(_) => {}
            Err(e) if e.reason == "AlreadyExists" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Finalizes terminating namespaces until `stop` turns true. Woken by namespace changes, and
/// re-checks every second while a namespace waits for its content to go.
pub async fn run(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    loop {
        let pending = match finalize_all(&app.registry).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "namespace finalization failed");
                true
            }
        };
        let wait = if pending { Duration::from_secs(1) } else { Duration::from_secs(5) };
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = namespace_changed(&app) => {}
        }
    }
}

/// Resolves when a namespace object changes.
async fn namespace_changed(app: &App) {
    let store = &app.registry.store;
    let Ok(prefix) = namespaces_target(None).map(|t| t.resource.key_prefix()) else { return };
    let Ok(mut w) = store.watch_prefix(&prefix, store.revision()) else { return };
    // Every change under the prefix is a namespace's.
    let _ = w.live.recv().await;
}

/// Deletes the content of every terminating namespace; removes those that are empty. Returns
/// whether some namespace still waits.
async fn finalize_all(reg: &Registry) -> Result<bool, ApiError> {
    let t = namespaces_target(None)?;
    let listed = reg.list(&t, &Query::default())?;
    let mut pending = false;
    for ns in listed.items.iter().map(Json::parse).filter(|ns| meta::deletion_timestamp(ns).is_some()) {
        let name = meta::name(&ns);
        if delete_content(reg, name).await? {
            pending = true;
            continue;
        }
        let key = t.resource.key(None, name);
        if let Some(current) = reg.store.get(&key) {
            let stored = current.value.parse();
            let mut finalized = stored.clone();
            let others_left = remove_own_finalizer(&mut finalized);
            let write = if !others_left && meta::finalizers(&finalized).is_empty() {
                Write::Delete { key, expected: Some(current.rev) }
            } else if finalized != stored {
                Write::Update { key, value: finalized, expected: Some(current.rev) }
            } else {
                // Other finalizers (spec's or metadata's) hold it: their owners remove them, and
                // that change wakes this loop again.
                continue;
            };
            if let Err(e) = reg.store.write(write).await {
                tracing::debug!(namespace = name, error = %e, "namespace finalization raced");
                pending = true;
            }
        }
    }
    Ok(pending)
}

/// The namespace controller's finalizer in `spec.finalizers`.
const FINALIZER: &str = "kubernetes";

/// Removes the controller's own [`FINALIZER`] from a namespace's `spec.finalizers` (the field goes
/// when nothing is left in it), as upstream's `finalizeNamespace`; returns whether other spec
/// finalizers remain, which keep the namespace until their owners finalize it too.
fn remove_own_finalizer(ns: &mut Value) -> bool {
    let Some(spec) = ns.get_mut("spec").and_then(Value::as_object_mut) else { return false };
    let Some(list) = spec.get_mut("finalizers").and_then(Value::as_array_mut) else {
        spec.remove("finalizers");
        return false;
    };
    list.retain(|f| f.as_str() != Some(FINALIZER));
    let left = !list.is_empty();
    if !left {
        spec.remove("finalizers");
    }
    left
}

/// Deletes everything in namespace `ns`, pods first (OrderedNamespaceDeletion: other content stays
/// until the pods are gone); returns whether something is still there.
async fn delete_content(reg: &Registry, ns: &str) -> Result<bool, ApiError> {
    let mut remaining = false;
    let opts = DeleteOptions { propagation_policy: Some("Background".into()), ..DeleteOptions::default() };
    let pods_first = RESOURCES.iter().filter(|r| r.namespaced()).filter(|r| (r.group, r.kind) == ("", "Pod"));
    let others = RESOURCES.iter().filter(|r| r.namespaced()).filter(|r| (r.group, r.kind) != ("", "Pod"));
    for r in pods_first.chain(others) {
        if remaining && r.kind != "Pod" {
            break;
        }
        let t = Target { resource: r, namespace: Some(ns.to_string()), name: None, subresource: None };
        let listed = reg.list(&t, &Query::default())?;
        for obj in listed.items.iter().map(Json::parse) {
            remaining = true;
            if meta::deletion_timestamp(&obj).is_some() {
                continue;
            }
            match reg.delete(&t, meta::name(&obj), &opts).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(remaining)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_controller_removes_only_its_own_finalizer() {
        let mut ns = json!({"spec": {"finalizers": ["kubernetes", "e2e.example.com/fake"]}});
        assert!(remove_own_finalizer(&mut ns), "another finalizer is left");
        assert_eq!(ns, json!({"spec": {"finalizers": ["e2e.example.com/fake"]}}));
        let mut ns = json!({"spec": {"finalizers": ["kubernetes"]}});
        assert!(!remove_own_finalizer(&mut ns));
        assert_eq!(ns, json!({"spec": {}}));
        let mut ns = json!({"metadata": {"name": "n"}});
        assert!(!remove_own_finalizer(&mut ns));
        assert_eq!(ns, json!({"metadata": {"name": "n"}}));
    }
}
