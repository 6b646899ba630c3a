//! The informer event handlers of the ReplicaSet controller (`replica_set.go`: `addRS`, `updateRS`,
//! `deleteRS`, `addPod`, `updatePod`, `deletePod`) as pure functions from a cache change to effects:
//! which ReplicaSets to sync and which expectations the change fulfils.

use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::cache::{Cache, Change};
use super::pods;

/// What a change asks the controller to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Sync this ReplicaSet (`namespace/name`).
    Enqueue(String),
    /// Sync it after a delay (availability checks after `minReadySeconds`).
    EnqueueAfter(String, Duration),
    /// One of its expected pods appeared.
    CreationObserved(String),
    /// One of its pods is gone or being deleted.
    DeletionObserved { rs: String, pod: String },
    /// The ReplicaSet is gone: forget its expectations.
    DeleteExpectations(String),
}

/// The ReplicaSet a controller reference names, if the cache has it with that UID
/// (`resolveControllerRef`).
fn resolve(rss: &Cache<ReplicaSet>, namespace: &str, r: &OwnerReference) -> Option<String> {
    if r.kind != "ReplicaSet" {
        return None;
    }
    let rs = rss.get(namespace, &r.name)?;
    (rs.metadata.uid.as_deref() == Some(r.uid.as_str())).then(|| pods::key(&rs.metadata))
}

/// ReplicaSets of the pod's namespace whose (non-empty) selector matches it (`GetPodReplicaSets`).
fn matching_replica_sets(rss: &Cache<ReplicaSet>, pod: &Pod) -> Vec<String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    rss.in_namespace(ns)
        .iter()
        .filter(|rs| match pods::selector_of(rs) {
            Ok(sel) => !sel.is_empty() && pods::selector_matches(&sel, &pod.metadata),
            Err(_) => false,
        })
        .map(|rs| pods::key(&rs.metadata))
        .collect()
}

/// Effects of a ReplicaSet change.
pub fn on_replica_set(change: &Change<ReplicaSet>) -> Vec<Effect> {
    match change {
        Change::Added(rs) => vec![Effect::Enqueue(pods::key(&rs.metadata))],
        Change::Updated { old, new } => {
            let mut effects = Vec::new();
            if old.metadata.uid != new.metadata.uid {
                effects.push(Effect::DeleteExpectations(pods::key(&old.metadata)));
                effects.push(Effect::Enqueue(pods::key(&old.metadata)));
            }
            effects.push(Effect::Enqueue(pods::key(&new.metadata)));
            effects
        }
        Change::Deleted(rs) => {
            let key = pods::key(&rs.metadata);
            vec![Effect::DeleteExpectations(key.clone()), Effect::Enqueue(key)]
        }
    }
}

/// `deletePod`: the owner observes the deletion and syncs.
fn pod_deleted(rss: &Cache<ReplicaSet>, pod: &Pod) -> Vec<Effect> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let Some(rs) = pods::controller_of(&pod.metadata).and_then(|r| resolve(rss, ns, r)) else {
        return Vec::new();
    };
    vec![Effect::DeletionObserved { rs: rs.clone(), pod: pods::key(&pod.metadata) }, Effect::Enqueue(rs)]
}

/// Effects of a pod change, given the ReplicaSets in the cache.
pub fn on_pod(change: &Change<Pod>, rss: &Cache<ReplicaSet>) -> Vec<Effect> {
    match change {
        Change::Added(pod) => {
            if pod.metadata.deletion_timestamp.is_some() {
                // Seen for the first time already being deleted (e.g. after a restart): not a
                // creation observation.
                return pod_deleted(rss, pod);
            }
            let ns = pod.metadata.namespace.as_deref().unwrap_or("");
            if let Some(r) = pods::controller_of(&pod.metadata) {
                return match resolve(rss, ns, r) {
                    Some(rs) => vec![Effect::CreationObserved(rs.clone()), Effect::Enqueue(rs)],
                    None => Vec::new(),
                };
            }
            // An orphan: every matching ReplicaSet may want to adopt it.
            matching_replica_sets(rss, pod).into_iter().map(Effect::Enqueue).collect()
        }
        Change::Updated { old, new } => on_pod_update(old, new, rss),
        Change::Deleted(pod) => pod_deleted(rss, pod),
    }
}

/// `updatePod`.
fn on_pod_update(old: &Pod, new: &Pod, rss: &Cache<ReplicaSet>) -> Vec<Effect> {
    if old.metadata.resource_version == new.metadata.resource_version {
        // A relist re-delivering an unchanged pod.
        return Vec::new();
    }
    let label_changed = old.metadata.labels != new.metadata.labels;
    if new.metadata.deletion_timestamp.is_some() {
        // Graceful deletion started: the owner may replace it now rather than when it is gone.
        let mut effects = pod_deleted(rss, new);
        if label_changed {
            effects.extend(pod_deleted(rss, old));
        }
        return effects;
    }
    let ns = new.metadata.namespace.as_deref().unwrap_or("");
    let (old_ref, new_ref) = (pods::controller_of(&old.metadata), pods::controller_of(&new.metadata));
    let ref_changed = old_ref != new_ref;
    let mut effects = Vec::new();
    if ref_changed && let Some(rs) = old_ref.and_then(|r| resolve(rss, ns, r)) {
        effects.push(Effect::Enqueue(rs));
    }
    if let Some(r) = new_ref {
        let Some(key) = resolve(rss, ns, r) else {
            return effects;
        };
        effects.push(Effect::Enqueue(key.clone()));
        let min_ready = rss.get(ns, &r.name).map(|rs| pods::min_ready_seconds(&rs)).unwrap_or(0);
        if !pods::is_ready(old) && pods::is_ready(new) && min_ready > 0 {
            // Look again once the pod may be available (plus a second against clock skew).
            let after = Duration::from_secs(u64::try_from(min_ready).unwrap_or(0) + 1);
            effects.push(Effect::EnqueueAfter(key, after));
        }
        return effects;
    }
    if label_changed || ref_changed {
        effects.extend(matching_replica_sets(rss, new).into_iter().map(Effect::Enqueue));
    }
    effects
}

#[cfg(test)]
mod tests {
    use super::super::pods::testing::*;
    use super::*;
    use kube::runtime::watcher::Event;
    use std::sync::Arc;

    fn cache_with(rss: Vec<ReplicaSet>) -> Cache<ReplicaSet> {
        let mut c = Cache::new();
        for rs in rss {
            c.apply(Event::Apply(rs));
        }
        c
    }

    fn enq(k: &str) -> Effect {
        Effect::Enqueue(k.to_string())
    }

    fn rv(mut p: Pod, v: &str) -> Pod {
        p.metadata.resource_version = Some(v.into());
        p
    }

    fn upd(old: Pod, new: Pod) -> Change<Pod> {
        Change::Updated { old: Arc::new(old), new: Arc::new(new) }
    }

    #[test]
    fn pod_added() {
        let rss = cache_with(vec![rs(1)]);
        let cases: Vec<(&str, Pod, Vec<Effect>)> = vec![
            ("owned", pod("a"), vec![Effect::CreationObserved("default/web".into()), enq("default/web")]),
            ("owned by an unknown uid", pod("a").owned_by("stale"), vec![]),
            ("orphan matching", pod("a").orphan(), vec![enq("default/web")]),
            ("orphan not matching", pod("a").orphan().with_labels(&[("app", "x")]), vec![]),
            (
                "already deleting",
                pod("a").deleting(),
                vec![
                    Effect::DeletionObserved { rs: "default/web".into(), pod: "default/a".into() },
                    enq("default/web"),
                ],
            ),
        ];
        for (name, p, want) in cases {
            assert_eq!(on_pod(&Change::Added(Arc::new(p)), &rss), want, "{name}");
        }
    }

    #[test]
    fn pod_updated() {
        let mut slow = rs(1);
        slow.spec.as_mut().expect("spec").min_ready_seconds = Some(5);
        let rss = cache_with(vec![slow]);
        let web = "default/web";
        let cases: Vec<(&str, Change<Pod>, Vec<Effect>)> = vec![
            ("same resourceVersion", upd(pod("a"), pod("a")), vec![]),
            ("status change", upd(pod("a"), rv(pod("a").phase("Running"), "2")), vec![enq(web)]),
            (
                "became ready with minReadySeconds",
                upd(pod("a"), rv(pod("a").ready_since(t(0)), "2")),
                vec![enq(web), Effect::EnqueueAfter(web.into(), Duration::from_secs(6))],
            ),
            (
                "deletion started",
                upd(pod("a"), rv(pod("a").deleting(), "2")),
                vec![Effect::DeletionObserved { rs: web.into(), pod: "default/a".into() }, enq(web)],
            ),
            (
                "released: old owner syncs, then matching ones",
                upd(pod("a"), rv(pod("a").orphan(), "2")),
                vec![enq(web), enq(web)],
            ),
            (
                "orphan relabelled to match",
                upd(pod("a").orphan().with_labels(&[("app", "x")]), rv(pod("a").orphan(), "2")),
                vec![enq(web)],
            ),
            ("orphan unchanged labels", upd(pod("a").orphan(), rv(pod("a").orphan().phase("Running"), "2")), vec![]),
        ];
        for (name, change, want) in cases {
            assert_eq!(on_pod(&change, &rss), want, "{name}");
        }
    }

    #[test]
    fn pod_deleted_and_replicaset_changes() {
        let rss = cache_with(vec![rs(1)]);
        assert_eq!(
            on_pod(&Change::Deleted(Arc::new(pod("a"))), &rss),
            vec![Effect::DeletionObserved { rs: "default/web".into(), pod: "default/a".into() }, enq("default/web")]
        );
        assert_eq!(on_pod(&Change::Deleted(Arc::new(pod("a").orphan())), &rss), vec![]);

        let a = Arc::new(rs(1));
        assert_eq!(on_replica_set(&Change::Added(a.clone())), vec![enq("default/web")]);
        let mut recreated = rs(1);
        recreated.metadata.uid = Some("new-uid".into());
        assert_eq!(
            on_replica_set(&Change::Updated { old: a.clone(), new: Arc::new(recreated) }),
            vec![Effect::DeleteExpectations("default/web".into()), enq("default/web"), enq("default/web")]
        );
        assert_eq!(
            on_replica_set(&Change::Deleted(a)),
            vec![Effect::DeleteExpectations("default/web".into()), enq("default/web")]
        );
    }
}
