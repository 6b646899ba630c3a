//! The taint eviction controller's executor (`taint_eviction.go`: `Run`, `deletePodHandler`,
//! `addConditionAndDeletePod`): re-evaluates every pod on a NoExecute-tainted node whenever a Node
//! or Pod changes and when the next scheduled deletion is due, and carries out [`eviction::pass`].

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Taint};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::Notify;

use super::eviction::{self, PodView, Scheduled, Step};
use super::taints;
use super::{FIELD_MANAGER, TAINT_EVICTION_CONTROLLER};
use crate::events::{EventType, Recorder};

/// The longest sleep between passes when nothing changes.
const IDLE: Duration = Duration::from_secs(1);
/// Attempts at one deletion (`retries`).
const RETRIES: usize = 5;

/// Runs the taint eviction controller on the given caches; `wake` is notified on every Node or Pod
/// change. Never returns (stop it by dropping the future).
pub async fn run(client: Client, nodes: Store<Node>, pods: Store<Pod>, wake: Arc<Notify>) {
    let _ = nodes.wait_until_ready().await;
    let _ = pods.wait_until_ready().await;
    tracing::info!(controller = TAINT_EVICTION_CONTROLLER, "Starting controller");
    let recorder = Recorder::new(client.clone(), TAINT_EVICTION_CONTROLLER);
    let mut schedule: BTreeMap<String, Scheduled> = BTreeMap::new();
    loop {
        let started = Instant::now();
        let now = Timestamp::now();
        let tainted: BTreeMap<String, Vec<Taint>> = nodes
            .state()
            .iter()
            .map(|n| (n.name_any(), eviction::no_execute(taints::of(n))))
            .filter(|(_, t)| !t.is_empty())
            .collect();
        let views = pod_views(&pods, &tainted, &schedule);
        let steps = eviction::pass(&views, &tainted, &mut schedule, now);
        let took = started.elapsed();
        for step in steps {
            match step {
                Step::Cancelled { key } => {
                    let (ns, name) = split(&key);
                    let message = eviction::cancelling_message(ns, name);
                    recorder.record(&pod_ref(ns, name), EventType::Normal, eviction::EVENT_REASON, &message).await;
                }
                Step::Evict { key, uid } => {
                    let (ns, name) = split(&key);
                    tracing::info!(controller = TAINT_EVICTION_CONTROLLER, pod = %key, "Deleting pod");
                    let message = eviction::marking_message(ns, name);
                    recorder.record(&pod_ref(ns, name), EventType::Normal, eviction::EVENT_REASON, &message).await;
                    let cached =
                        pods.get(&ObjectRef::new(name).within(ns)).filter(|p| p.uid().as_deref() == Some(&uid));
                    evict(&client, ns, name, &uid, cached.as_deref()).await;
                }
            }
        }
        // A pass reads every pod while some node is tainted: with many pods changing, passes back
        // to back would take a core, so the next one waits at least four times as long as this
        // one's reading and deciding took (a fifth of a core at most).
        tokio::time::sleep(took.saturating_mul(4).min(IDLE)).await;
        let wait = eviction::next_due(&schedule)
            .map(|due| Duration::try_from(due.duration_since(Timestamp::now())).unwrap_or(Duration::ZERO))
            .map_or(IDLE, |d| d.min(IDLE));
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// The pods a pass looks at: those on a node with NoExecute taints (one walk over the cache that
/// reads only `spec.nodeName`) and those with a deletion scheduled (looked up by key; gone ones
/// are left out, so the pass forgets them). With no taint and nothing scheduled, which is how a
/// healthy cluster runs, none.
fn pod_views(
    pods: &Store<Pod>,
    tainted: &BTreeMap<String, Vec<Taint>>,
    schedule: &BTreeMap<String, Scheduled>,
) -> Vec<PodView> {
    let mut views: Vec<PodView> = if tainted.is_empty() {
        Vec::new()
    } else {
        pods.state().iter().filter(|p| on_tainted_node(p, tainted)).filter_map(|p| view(p)).collect()
    };
    let seen: HashSet<String> = views.iter().map(|v| v.key.clone()).collect();
    for key in schedule.keys().filter(|k| !seen.contains(*k)) {
        let (ns, name) = split(key);
        if let Some(view) = pods.get(&ObjectRef::new(name).within(ns)).and_then(|p| view(&p)) {
            views.push(view);
        }
    }
    views
}

fn on_tainted_node(pod: &Pod, tainted: &BTreeMap<String, Vec<Taint>>) -> bool {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| tainted.contains_key(n))
}

fn key_of(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

/// A bound pod not being deleted, as the pass sees it.
fn view(pod: &Pod) -> Option<PodView> {
    let spec = pod.spec.as_ref()?;
    let node = spec.node_name.clone().filter(|n| !n.is_empty())?;
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    Some(PodView {
        key: key_of(pod),
        uid: pod.uid().unwrap_or_default(),
        node,
        tolerations: spec.tolerations.clone().unwrap_or_default(),
    })
}

fn split(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// A reference to a pod as upstream's eviction Events carry it (no UID).
fn pod_ref(namespace: &str, name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        ..ObjectReference::default()
    }
}

/// Whether the pod already carries the eviction's DisruptionTarget condition.
fn has_disruption_target(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| {
        c.iter().any(|c| {
            c.type_ == eviction::DISRUPTION_TARGET
                && c.status == "True"
                && c.reason.as_deref() == Some(eviction::DISRUPTION_REASON)
                && c.message.as_deref() == Some(eviction::DISRUPTION_MESSAGE)
        })
    })
}

/// Adds `DisruptionTarget=True` and deletes the pod (with its default grace period), retrying.
async fn evict(client: &Client, namespace: &str, name: &str, uid: &str, cached: Option<&Pod>) {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.to_string()), ..PatchParams::default() };
    let condition = json!({"status": {"conditions": [{
        "type": eviction::DISRUPTION_TARGET,
        "status": "True",
        "reason": eviction::DISRUPTION_REASON,
        "message": eviction::DISRUPTION_MESSAGE,
        "lastTransitionTime": Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    }]}});
    let delete = DeleteParams {
        preconditions: Some(Preconditions { uid: Some(uid.to_string()), resource_version: None }),
        ..DeleteParams::default()
    };
    let mut last = None;
    for _ in 0..RETRIES {
        if !cached.is_some_and(has_disruption_target)
            && let Err(e) = api.patch_status(name, &params, &Patch::Strategic(&condition)).await
        {
            if matches!(&e, kube::Error::Api(s) if s.code == 404) {
                return;
            }
            last = Some(e);
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        match api.delete(name, &delete).await {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if let Some(e) = last {
        tracing::warn!(pod = %format!("{namespace}/{name}"), error = %e, "cannot evict a pod from a tainted node");
    }
}
