//! Monitors (upstream `graph_builder.go`'s informers): one list+watch per served resource feeding the
//! dependency graph, and the graph's answers feeding the work queue.

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use parking_lot::Mutex;
use skiff_api::resource::{RESOURCES, ResourceInfo};
use tokio::sync::mpsc;

use super::graph::{Graph, Node, Work};
use super::queue::WorkQueue;

/// The resources to monitor: every served one, once per storage (two resources sharing storage hold
/// the same objects under the same UIDs).
pub fn monitored() -> Vec<&'static ResourceInfo> {
    let mut out: Vec<&'static ResourceInfo> = Vec::new();
    for r in RESOURCES {
        if !out.iter().any(|o| o.storage == r.storage) {
            out.push(r);
        }
    }
    out
}

/// kube's description of a resource from ours.
pub fn api_resource(r: &ResourceInfo) -> ApiResource {
    ApiResource {
        group: r.group.to_string(),
        version: r.version.to_string(),
        api_version: r.api_version(),
        kind: r.kind.to_string(),
        plural: r.plural.to_string(),
    }
}

/// Shared state between monitors and workers.
pub struct Shared {
    pub graph: Mutex<Graph>,
    pub queue: Arc<WorkQueue<Work>>,
}

impl Shared {
    /// Applies an observed change and queues the work it calls for.
    fn observe(&self, r: &'static ResourceInfo, obj: &DynamicObject) -> Option<String> {
        let node = Node::from_meta(r, &obj.metadata)?;
        let uid = node.id.uid.clone();
        let work = self.graph.lock().upsert(node);
        self.enqueue(work);
        Some(uid)
    }

    /// Records that the object with this UID is gone (observed, or found out by a live GET).
    pub fn forget(&self, uid: &str) {
        let work = self.graph.lock().remove(uid);
        self.enqueue(work);
    }

    pub fn enqueue(&self, work: Vec<Work>) {
        for w in work {
            self.queue.add(w);
        }
    }
}

/// Lists and watches one resource for ever, keeping the graph in step. Sends on `synced` after the
/// first complete list.
pub async fn monitor(
    client: kube::Client,
    r: &'static ResourceInfo,
    shared: Arc<Shared>,
    synced: mpsc::UnboundedSender<&'static str>,
) {
    let api: Api<DynamicObject> = Api::all_with(client, &api_resource(r));
    let mut events = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
    // UIDs returned by the list in progress; at its end, graph nodes of this resource it did not
    // return were deleted while we were not watching.
    let mut listed: Option<HashSet<String>> = None;
    let mut reported = false;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => listed = Some(HashSet::new()),
            Ok(Event::InitApply(obj)) => {
                if let Some(uid) = shared.observe(r, &obj) {
                    listed.get_or_insert_default().insert(uid);
                }
            }
            Ok(Event::InitDone) => {
                let seen = listed.take().unwrap_or_default();
                let stale: Vec<String> =
                    shared.graph.lock().uids_of(r).into_iter().filter(|u| !seen.contains(u)).collect();
                for uid in stale {
                    shared.forget(&uid);
                }
                if !reported {
                    reported = true;
                    let _ = synced.send(r.plural);
                }
            }
            Ok(Event::Apply(obj)) => {
                shared.observe(r, &obj);
            }
            Ok(Event::Delete(obj)) => {
                if let Some(uid) = obj.metadata.uid.as_deref() {
                    shared.forget(uid);
                }
            }
            Err(e) => {
                tracing::warn!(resource = r.plural, group = r.group, error = %e, "garbage collector: watch failed; retrying")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_resource_is_monitored_once() {
        let m = monitored();
        let storages: HashSet<&str> = RESOURCES.iter().map(|r| r.storage).collect();
        assert_eq!(m.len(), storages.len());
        let names: Vec<String> = m.iter().map(|r| format!("{}/{}", r.group, r.plural)).collect();
        for want in [
            "/pods",
            "/configmaps",
            "/secrets",
            "/serviceaccounts",
            "/events",
            "/nodes",
            "/namespaces",
            "apps/deployments",
            "apps/replicasets",
            "coordination.k8s.io/leases",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} is monitored");
        }
    }

    #[test]
    fn api_resource_matches_the_table() {
        let r = skiff_api::resource::lookup("apps", "v1", "replicasets").expect("rs");
        let ar = api_resource(r);
        assert_eq!((ar.group.as_str(), ar.version.as_str(), ar.api_version.as_str()), ("apps", "v1", "apps/v1"));
        assert_eq!((ar.kind.as_str(), ar.plural.as_str()), ("ReplicaSet", "replicasets"));
        let core = api_resource(skiff_api::resource::lookup("", "v1", "pods").expect("pods"));
        assert_eq!(core.api_version, "v1");
    }
}
