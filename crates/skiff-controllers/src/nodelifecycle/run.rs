//! The executor (`node_lifecycle_controller.go: Run`): list+watch caches of Nodes, node Leases and
//! Pods, and four loops:
//! * the health monitor, every `node_monitor_period` (`monitorNodeHealth`);
//! * the NoSchedule condition taints, on every node change and every period
//!   (`doNoScheduleTaintingPass`);
//! * the rate-limited NoExecute tainting, every 100 ms (`doNoExecuteTaintingPass`);
//! * the taint eviction controller ([`super::evictor`]), sharing the caches.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, ObjectReference, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::Notify;

use super::disruption::{self, Disruption, Outcome};
use super::health::{self, Grace, Health};
use super::taints::{self, Change, NoExecuteStep};
use super::{Config, FIELD_MANAGER, LEASE_NAMESPACE, NODE_CONTROLLER, evictor};
use crate::events::{EventType, Recorder, reference};

/// How often the NoExecute tainting queue is drained (`scheduler.NodeEvictionPeriod`).
const NODE_EVICTION_PERIOD: Duration = Duration::from_millis(100);
/// Attempts at a write that meets conflicts (`scheduler.NodeHealthUpdateRetry`).
const RETRIES: usize = 5;

/// Runs the node lifecycle and taint eviction controllers until `shutdown` completes.
pub async fn run(client: Client, config: Config, shutdown: impl Future<Output = ()>) {
    let (nodes, node_writer) = reflector::store::<Node>();
    let (leases, lease_writer) = reflector::store::<Lease>();
    let (pods, pod_writer) = reflector::store::<Pod>();
    let node_changed = Arc::new(Notify::new());
    let evict_wake = Arc::new(Notify::new());
    let node_watch = {
        let (a, b) = (node_changed.clone(), evict_wake.clone());
        reflector::reflector(node_writer, crate::watch(Api::<Node>::all(client.clone()), watcher::Config::default()))
            .default_backoff()
            .for_each(move |_| {
                a.notify_one();
                b.notify_one();
                async {}
            })
    };
    let lease_watch = reflector::reflector(
        lease_writer,
        crate::watch(Api::<Lease>::namespaced(client.clone(), LEASE_NAMESPACE), watcher::Config::default()),
    )
    .default_backoff()
    .for_each(|_| async {});
    let pod_watch = {
        let wake = evict_wake.clone();
        reflector::reflector(pod_writer, crate::watch(Api::<Pod>::all(client.clone()), watcher::Config::default()))
            .default_backoff()
            .for_each(move |_| {
                wake.notify_one();
                async {}
            })
    };
    let controller = Arc::new(NodeLifecycle {
        recorder: Recorder::new(client.clone(), NODE_CONTROLLER),
        client: client.clone(),
        disruption: Mutex::new(Disruption::new(&config)),
        config,
        nodes: nodes.clone(),
        leases: leases.clone(),
        pods: pods.clone(),
        health: Mutex::default(),
        retry: Mutex::default(),
    });
    let work = async {
        let _ = nodes.wait_until_ready().await;
        let _ = leases.wait_until_ready().await;
        let _ = pods.wait_until_ready().await;
        tracing::info!(controller = NODE_CONTROLLER, "Starting controller");
        tokio::join!(
            controller.monitor_loop(),
            controller.no_schedule_loop(node_changed),
            controller.no_execute_loop(),
            evictor::run(client.clone(), nodes.clone(), pods.clone(), evict_wake.clone()),
        );
    };
    tokio::select! {
        _ = shutdown => {}
        _ = node_watch => {}
        _ = lease_watch => {}
        _ = pod_watch => {}
        _ = work => {}
    }
    tracing::info!(controller = NODE_CONTROLLER, "Shutting down controller");
}

/// The node lifecycle controller's state.
struct NodeLifecycle {
    client: Client,
    config: Config,
    recorder: Recorder,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: Store<Pod>,
    /// What was last heard from each node.
    health: Mutex<HashMap<String, Health>>,
    disruption: Mutex<Disruption>,
    /// Nodes whose pods could not all be marked not ready (`nodesToRetry`).
    retry: Mutex<HashSet<String>>,
}

fn patch_params() -> PatchParams {
    PatchParams { field_manager: Some(FIELD_MANAGER.to_string()), ..PatchParams::default() }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// A reference to a node as upstream's node Events carry it.
fn node_ref(node: &Node) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(node.name_any()),
        uid: node.uid(),
        ..ObjectReference::default()
    }
}

/// The Ready status of a condition, as the zone computation counts it.
fn status_of(c: Option<&NodeCondition>) -> Option<String> {
    c.map(|c| c.status.clone())
}

impl NodeLifecycle {
    fn grace(&self) -> Grace {
        Grace { monitor: self.config.node_monitor_grace_period, startup: self.config.node_startup_grace_period }
    }

    async fn monitor_loop(&self) {
        let mut known: BTreeMap<String, Node> = BTreeMap::new();
        let mut tick = tokio::time::interval(self.config.node_monitor_period.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.monitor(&mut known).await;
        }
    }

    /// One health pass over every node (`monitorNodeHealth`).
    async fn monitor(&self, known: &mut BTreeMap<String, Node>) {
        let nodes: Vec<Arc<Node>> = self.nodes.state();
        let names: BTreeSet<String> = nodes.iter().map(|n| n.name_any()).collect();
        let now = Timestamp::now();
        for node in &nodes {
            let name = node.name_any();
            if known.contains_key(&name) {
                self.disruption.lock().ensure_zone(&disruption::zone_key(node), now);
                continue;
            }
            tracing::debug!(node = %name, "Controller observed a new Node");
            let message = format!("Node {name} event: Registered Node {name} in Controller");
            self.recorder.record(&node_ref(node), EventType::Normal, "RegisteredNode", &message).await;
            known.insert(name, (**node).clone());
            self.disruption.lock().ensure_zone(&disruption::zone_key(node), now);
            self.mark_reachable(node).await;
        }
        let gone: Vec<String> = known.keys().filter(|n| !names.contains(*n)).cloned().collect();
        for name in gone {
            if let Some(node) = known.remove(&name) {
                let message = format!("Node {name} event: Removing Node {name} from Controller");
                self.recorder.record(&node_ref(&node), EventType::Normal, "RemovingNode", &message).await;
            }
            self.health.lock().remove(&name);
            self.retry.lock().remove(&name);
        }

        let mut zones: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
        let mut by_node: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
        for pod in self.pods.state() {
            if let Some(n) = pod.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()) {
                by_node.entry(n).or_default().push(pod);
            }
        }
        for node in &nodes {
            let name = node.name_any();
            let (observed, current, node) = match self.update_health(node).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(node = %name, error = %e, "cannot update node health; no pods will be evicted");
                    continue;
                }
            };
            if !disruption::excluded(&node) {
                zones.entry(disruption::zone_key(&node)).or_default().push(status_of(current.as_ref()));
            }
            let Some(current) = current else {
                self.retry.lock().remove(&name);
                continue;
            };
            self.process_taint_based_eviction(&node, &observed.status).await;
            let needs_retry = self.retry.lock().contains(&name);
            let became_not_ready = current.status != health::TRUE && observed.status == health::TRUE;
            if became_not_ready {
                let message = format!("Node {name} status is now: NodeNotReady");
                self.recorder.record(&node_ref(&node), EventType::Normal, "NodeNotReady", &message).await;
            }
            if became_not_ready || (needs_retry && observed.status != health::TRUE) {
                let pods = by_node.get(&name).map(Vec::as_slice).unwrap_or(&[]);
                if let Err(e) = self.mark_pods_not_ready(pods, &name).await {
                    tracing::warn!(node = %name, error = %e, "cannot mark all pods not ready; will retry");
                    self.retry.lock().insert(name);
                    continue;
                }
            }
            self.retry.lock().remove(&name);
        }

        let outcome = self.disruption.lock().handle(&zones, Timestamp::now());
        match outcome {
            Outcome::Nothing => {}
            Outcome::MarkAllReachable => {
                tracing::info!("Controller detected that all Nodes are not-Ready. Entering master disruption mode");
                for node in &nodes {
                    self.mark_reachable(node).await;
                }
            }
            Outcome::ResetProbes => {
                tracing::info!("Controller detected that some Nodes are Ready. Exiting master disruption mode");
                let now = Timestamp::now();
                for h in self.health.lock().values_mut() {
                    h.probe = now;
                    h.ready_transition = now;
                }
            }
        }
    }

    /// Observes one node, writing its conditions as Unknown when it has gone silent
    /// (`tryUpdateNodeHealth` with retries). Returns the observed and current Ready conditions and
    /// the node as last seen.
    async fn update_health(&self, node: &Node) -> kube::Result<(NodeCondition, Option<NodeCondition>, Node)> {
        let name = node.name_any();
        let lease = self.leases.get(&ObjectRef::new(&name).within(LEASE_NAMESPACE));
        let api: Api<Node> = Api::all(self.client.clone());
        let mut node = node.clone();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let saved = self.health.lock().get(&name).cloned();
            let o = health::observe(saved.as_ref(), &node, lease.as_deref(), Timestamp::now(), self.grace());
            self.health.lock().insert(name.clone(), o.health.clone());
            let Some(conditions) = o.write else {
                return Ok((o.observed_ready, o.current_ready, node));
            };
            let patch = json!({
                "metadata": {"resourceVersion": node.resource_version()},
                "status": {"conditions": conditions},
            });
            match api.patch_status(&name, &patch_params(), &Patch::Merge(&patch)).await {
                Ok(updated) => {
                    tracing::info!(node = %name, "node stopped posting status; conditions set to Unknown");
                    self.health.lock().insert(name.clone(), o.health_after_write);
                    return Ok((o.observed_ready, o.current_ready, updated));
                }
                Err(e) if attempt < RETRIES && !is_not_found(&e) => {
                    tracing::debug!(node = %name, error = %e, "retrying the node status update");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    node = api.get(&name).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `processTaintBaseEviction`.
    async fn process_taint_based_eviction(&self, node: &Node, observed: &str) {
        let name = node.name_any();
        match taints::no_execute_step(observed, taints::of(node)) {
            NoExecuteStep::Swap(change) => {
                if let Err(e) = self.swap_taints(&name, &change).await {
                    tracing::warn!(node = %name, error = %e, "cannot swap the NoExecute taints; will retry");
                }
            }
            NoExecuteStep::Queue(status) => {
                let target = if status == health::FALSE { taints::NOT_READY } else { taints::UNREACHABLE };
                let tainted = taints::exists(taints::of(node), &taints::template(target, taints::NO_EXECUTE));
                let now = Timestamp::now();
                let mut d = self.disruption.lock();
                let queue = d.queue(&disruption::zone_key(node), now);
                if !tainted {
                    queue.remove(&name);
                }
                if queue.add(&name, now) {
                    tracing::debug!(node = %name, status, "node queued for a NoExecute taint");
                }
            }
            NoExecuteStep::Reachable => self.mark_reachable(node).await,
            NoExecuteStep::Nothing => {}
        }
    }

    /// Removes the NoExecute condition taints and forgets any queued tainting (`markNodeAsReachable`).
    async fn mark_reachable(&self, node: &Node) {
        let name = node.name_any();
        let change = taints::reachable();
        if taints::apply(taints::of(node), &change, Timestamp::now()).is_some()
            && let Err(e) = self.swap_taints(&name, &change).await
        {
            tracing::warn!(node = %name, error = %e, "cannot remove the NoExecute taints; will retry");
            return;
        }
        let zone = disruption::zone_key(node);
        if let Some(q) = self.disruption.lock().queues.get_mut(&zone) {
            q.remove(&name);
        }
    }

    /// Applies a taint change to the live node, with the resourceVersion as a precondition and
    /// retries on conflict. Returns whether anything was written.
    async fn swap_taints(&self, name: &str, change: &Change) -> kube::Result<bool> {
        let api: Api<Node> = Api::all(self.client.clone());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let node = match api.get(name).await {
                Ok(n) => n,
                Err(e) if is_not_found(&e) => return Ok(false),
                Err(e) => return Err(e),
            };
            let Some(new) = taints::apply(taints::of(&node), change, Timestamp::now()) else { return Ok(false) };
            let patch = json!({
                "metadata": {"resourceVersion": node.resource_version()},
                "spec": {"taints": new},
            });
            match api.patch(name, &patch_params(), &Patch::Merge(&patch)).await {
                Ok(_) => {
                    tracing::debug!(node = name, ?change, "node taints updated");
                    return Ok(true);
                }
                Err(e) if is_conflict(&e) && attempt < RETRIES => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Sets `Ready=False` on the pods of `node` that have a Ready condition not already False, with
    /// a Warning `NodeNotReady` Event each (`MarkPodsNotReady`).
    async fn mark_pods_not_ready(&self, pods: &[Arc<Pod>], node: &str) -> kube::Result<()> {
        let mut failed = None;
        for pod in pods {
            let on_node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node);
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
            if !on_node || ready.is_none_or(|c| c.status == health::FALSE) {
                continue;
            }
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
            let patch = json!({"status": {"conditions": [
                {"type": "Ready", "status": "False", "lastTransitionTime": Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}
            ]}});
            match api.patch_status(&pod.name_any(), &patch_params(), &Patch::Strategic(&patch)).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => continue,
                Err(e) => {
                    tracing::info!(pod = %pod.name_any(), error = %e, "cannot update the status of a pod");
                    failed = Some(e);
                }
            }
            self.recorder.record(&reference(&**pod), EventType::Warning, "NodeNotReady", "Node is not ready").await;
        }
        failed.map_or(Ok(()), Err)
    }

    /// Keeps the NoSchedule condition taints in line with the conditions, on every node change.
    async fn no_schedule_loop(&self, changed: Arc<Notify>) {
        loop {
            for node in self.nodes.state() {
                let change = taints::no_schedule_change(&node);
                if change.is_empty() {
                    continue;
                }
                if let Err(e) = self.swap_taints(&node.name_any(), &change).await {
                    tracing::warn!(node = %node.name_any(), error = %e, "cannot update the NoSchedule taints");
                }
            }
            tokio::select! {
                _ = changed.notified() => {}
                _ = tokio::time::sleep(self.config.node_monitor_period) => {}
            }
        }
    }

    /// Drains the zones' tainting queues as their rate limiters allow (`doNoExecuteTaintingPass`).
    async fn no_execute_loop(&self) {
        loop {
            tokio::time::sleep(NODE_EVICTION_PERIOD).await;
            let now = Timestamp::now();
            let due: Vec<(String, String)> = {
                let mut d = self.disruption.lock();
                let mut due = Vec::new();
                for (zone, q) in d.queues.iter_mut() {
                    while let Some(node) = q.pop_ready(now) {
                        due.push((zone.clone(), node));
                    }
                }
                due
            };
            for (zone, name) in due {
                let Some(node) = self.nodes.get(&ObjectRef::new(&name)) else { continue };
                let ready = health::ready_status(&node);
                if ready.is_none() {
                    self.retry_tainting(&zone, &name, Duration::from_millis(50));
                    continue;
                }
                let Some(change) = taints::queued_no_execute(ready) else { continue };
                match self.swap_taints(&name, &change).await {
                    Ok(_) => tracing::info!(node = %name, ?change, "NoExecute taint placed"),
                    Err(e) => {
                        tracing::warn!(node = %name, error = %e, "cannot place the NoExecute taint; will retry");
                        self.retry_tainting(&zone, &name, Duration::ZERO);
                    }
                }
            }
        }
    }

    fn retry_tainting(&self, zone: &str, node: &str, after: Duration) {
        let at = health::after(Timestamp::now(), after);
        if let Some(q) = self.disruption.lock().queues.get_mut(zone) {
            q.retry(node, at);
        }
    }
}
