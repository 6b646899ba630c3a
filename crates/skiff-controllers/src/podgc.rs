//! Pod garbage collection (`pkg/controller/podgc`): pods bound to a Node that no longer exists are
//! force-deleted, so their owners replace them on nodes that do. (Terminated-pod and unscheduled
//! terminating-pod collection are left to later work.)

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

/// How long a node must be gone before its pods are collected: the upstream quarantine that lets a
/// node re-register (`quarantineTime` is 40 s upstream; shorter here so failover stays quick).
pub const QUARANTINE: Duration = Duration::from_secs(5);

/// Pods bound to a node absent from `nodes` (and not already being force-deleted).
pub fn orphaned<'a>(pods: impl IntoIterator<Item = &'a Pod>, nodes: &BTreeSet<String>) -> Vec<&'a Pod> {
    pods.into_iter()
        .filter(|p| {
            let node = p.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("");
            !node.is_empty() && !nodes.contains(node)
        })
        .collect()
}

/// Runs until `shutdown` completes: every few seconds, collects pods whose node has been gone for
/// at least [`QUARANTINE`].
pub async fn run(client: Client, shutdown: impl Future<Output = ()>) {
    let (pod_reader, pod_writer) = reflector::store::<Pod>();
    let (node_reader, node_writer) = reflector::store::<Node>();
    let pods =
        reflector::reflector(pod_writer, crate::watch(Api::<Pod>::all(client.clone()), watcher::Config::default()))
            .default_backoff()
            .for_each(|_| async {});
    let nodes =
        reflector::reflector(node_writer, crate::watch(Api::<Node>::all(client.clone()), watcher::Config::default()))
            .default_backoff()
            .for_each(|_| async {});
    let collect = collect_loop(client, pod_reader, node_reader);
    tokio::select! {
        _ = shutdown => {}
        _ = pods => {}
        _ = nodes => {}
        _ = collect => {}
    }
}

async fn collect_loop(client: Client, pods: Store<Pod>, nodes: Store<Node>) {
    let _ = pods.wait_until_ready().await;
    let _ = nodes.wait_until_ready().await;
    // Pods first seen orphaned, by UID: collected only once the quarantine has passed.
    let mut suspects: std::collections::HashMap<String, tokio::time::Instant> = Default::default();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let known: BTreeSet<String> = nodes.state().iter().map(|n| n.name_any()).collect();
        let all = pods.state();
        let now = tokio::time::Instant::now();
        let orphans: Vec<&Pod> = orphaned(all.iter().map(|p| &**p), &known);
        let current: BTreeSet<String> = orphans.iter().filter_map(|p| p.uid()).collect();
        suspects.retain(|uid, _| current.contains(uid));
        for pod in orphans {
            let Some(uid) = pod.uid() else { continue };
            let since = *suspects.entry(uid.clone()).or_insert(now);
            if now.duration_since(since) < QUARANTINE {
                continue;
            }
            // The node may have come back since the cache was read: check it live.
            let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
            if matches!(Api::<Node>::all(client.clone()).get_opt(&node).await, Ok(Some(_)) | Err(_)) {
                continue;
            }
            let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions { uid: Some(uid.clone()), resource_version: None }),
                ..DeleteParams::default()
            };
            match api.delete(&pod.name_any(), &params).await {
                Ok(_) => {
                    tracing::info!(pod = %pod.name_any(), node, "deleted a pod bound to a node that no longer exists")
                }
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => tracing::warn!(pod = %pod.name_any(), error = %e, "cannot delete an orphaned pod"),
            }
            suspects.remove(&uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    fn pod(node: Option<&str>) -> Pod {
        Pod { spec: Some(PodSpec { node_name: node.map(str::to_string), ..PodSpec::default() }), ..Pod::default() }
    }

    #[test]
    fn only_pods_on_missing_nodes_are_orphaned() {
        let nodes: BTreeSet<String> = ["a".to_string()].into();
        let pods = [pod(Some("a")), pod(Some("gone")), pod(None), pod(Some(""))];
        let found = orphaned(pods.iter(), &nodes);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].spec.as_ref().and_then(|s| s.node_name.as_deref()), Some("gone"));
    }
}
