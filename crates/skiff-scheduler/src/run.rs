//! The executor: watches nodes and pods, decides with [`crate::schedule`], and binds through
//! `POST pods/{name}/binding`. Pods are watched as [`WatchedPod`]s (only what scheduling reads).
//!
//! One task owns all state (the [`Cache`], the queue) and makes decisions one pod at a time, so
//! each decision sees every earlier one (assumed pods). Bindings, status patches and Events run as
//! separate tasks, many in flight at once: decisions take microseconds, API writes milliseconds,
//! so a pipeline is what makes thousands of pods per second possible. Events are only queued: the
//! [`Recorder`]'s own task writes them, so they hold up neither bindings nor status patches.
//!
//! Pods that fit nowhere get `PodScheduled=False reason=Unschedulable` and a `FailedScheduling`
//! Event, and wait until a node is added or changes in a way that matters, or a placed pod goes
//! away (upstream's unschedulable queue, flushed by cluster events; also every 5 minutes).

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use crate::cache::Cache;
use crate::events::{Recorder, pod_event};
use crate::info::{PodInfo, PodUsage};
use crate::schedule::{Cursor, FitError, schedule};
use crate::watched::WatchedPod;

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Pods whose `spec.schedulerName` is this are ours (`default-scheduler`).
    pub scheduler_name: String,
    /// Bindings in flight at once.
    pub max_in_flight: usize,
    /// Status patches in flight at once, and Event writes in flight at once (apart).
    pub max_side_writes: usize,
    /// Record a `Scheduled` Event per bound pod (upstream does; benchmarks may turn it off).
    pub record_scheduled_events: bool,
    /// `percentageOfNodesToScore`; `None` is upstream's adaptive default.
    pub percentage_of_nodes_to_score: Option<u32>,
    /// How often unschedulable pods are retried even without a cluster event.
    pub unschedulable_flush: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            scheduler_name: "default-scheduler".to_string(),
            max_in_flight: 512,
            max_side_writes: 128,
            record_scheduled_events: true,
            percentage_of_nodes_to_score: None,
            unschedulable_flush: Duration::from_secs(300),
        }
    }
}

/// Runs the scheduler with the default [`Config`] until `shutdown` completes.
pub async fn run(client: Client, shutdown: impl Future<Output = ()> + Send) {
    run_with(client, Config::default(), shutdown).await
}

/// Runs the scheduler until `shutdown` completes. Watch failures are retried with back-off, so
/// this only returns at shutdown.
pub async fn run_with(client: Client, config: Config, shutdown: impl Future<Output = ()> + Send) {
    let (tx, rx) = mpsc::channel(8192);
    let watches = [
        spawn_watch(Api::<Node>::all(client.clone()), tx.clone(), |e| Msg::Node(Box::new(e))),
        spawn_watch(Api::<WatchedPod>::all(client.clone()), tx.clone(), |e| Msg::Pod(Box::new(typed(e)))),
    ];
    let side = Arc::new(Semaphore::new(config.max_side_writes.max(1)));
    let recorder = Recorder::start(client.clone(), config.max_side_writes);
    let mut core = Core {
        cursor: Cursor::with_percentage(config.percentage_of_nodes_to_score),
        client,
        config,
        tx,
        side,
        recorder,
        cache: Cache::new(),
        pending: HashMap::new(),
        active: VecDeque::new(),
        in_flight: 0,
        pods_synced: false,
        nodes_synced: false,
        pod_relist: None,
        node_relist: None,
        flush: false,
    };
    core.run(rx, shutdown).await;
    for w in watches {
        w.abort();
    }
}

/// What the core task hears about.
/// Watch events are boxed: a Pod is kilobytes, a binding result a few words.
enum Msg {
    Pod(Box<watcher::Event<Pod>>),
    Node(Box<watcher::Event<Node>>),
    Bound { uid: String, result: Result<(), BindFailure> },
}

/// Why a binding failed.
#[derive(Debug)]
enum BindFailure {
    /// The pod no longer exists.
    Gone,
    /// The pod is already assigned, or being deleted.
    Conflict,
    Other(String),
}

/// A watch event of the light [`WatchedPod`] as one of the typed Pods the core works with.
fn typed(e: watcher::Event<WatchedPod>) -> watcher::Event<Pod> {
    match e {
        watcher::Event::Apply(p) => watcher::Event::Apply(p.into()),
        watcher::Event::Delete(p) => watcher::Event::Delete(p.into()),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(p) => watcher::Event::InitApply(p.into()),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

fn spawn_watch<K>(api: Api<K>, tx: mpsc::Sender<Msg>, wrap: fn(watcher::Event<K>) -> Msg) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default()).default_backoff().boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(e) => {
                    if tx.send(wrap(e)).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "scheduler watch failed; retrying"),
            }
        }
    })
}

/// Where a pod without a node stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// In the active queue.
    Queued,
    /// A binding is in flight.
    Binding,
    /// Fits nowhere; waits for a cluster event.
    Unschedulable,
    /// A binding failed; retried at the instant.
    Backoff(Instant),
}

struct Pending {
    pod: Arc<Pod>,
    state: State,
    failures: u32,
}

struct Core {
    client: Client,
    config: Config,
    tx: mpsc::Sender<Msg>,
    side: Arc<Semaphore>,
    recorder: Recorder,
    cache: Cache,
    cursor: Cursor,
    pending: HashMap<String, Pending>,
    active: VecDeque<String>,
    in_flight: usize,
    pods_synced: bool,
    nodes_synced: bool,
    pod_relist: Option<HashSet<String>>,
    node_relist: Option<HashSet<String>>,
    /// A cluster event happened that may let unschedulable pods fit.
    flush: bool,
}

/// Pods handled between checks of the inbox, so that watch events stay fresh.
const BATCH: usize = 256;
const TICK: Duration = Duration::from_millis(200);

impl Core {
    async fn run(&mut self, mut rx: mpsc::Receiver<Msg>, shutdown: impl Future<Output = ()> + Send) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut next_tick = Instant::now() + TICK;
        let mut next_flush = Instant::now() + self.config.unschedulable_flush;
        loop {
            let has_work = self.can_schedule();
            if has_work {
                if (&mut shutdown).now_or_never().is_some() {
                    return;
                }
            } else {
                tokio::select! {
                    biased;
                    _ = &mut shutdown => return,
                    m = rx.recv() => match m {
                        Some(m) => self.handle(m),
                        None => return,
                    },
                    _ = tokio::time::sleep_until(next_tick) => {}
                }
            }
            for _ in 0..8192 {
                match rx.try_recv() {
                    Ok(m) => self.handle(m),
                    Err(_) => break,
                }
            }
            let now = Instant::now();
            if now >= next_tick {
                next_tick = now + TICK;
                if now >= next_flush {
                    next_flush = now + self.config.unschedulable_flush;
                    self.flush = true;
                }
                self.requeue_backoffs(now);
            }
            if self.flush {
                self.flush = false;
                self.requeue_unschedulable();
            }
            if self.can_schedule() {
                self.schedule_batch();
                tokio::task::yield_now().await;
            }
        }
    }

    fn can_schedule(&self) -> bool {
        self.pods_synced && self.nodes_synced && self.in_flight < self.config.max_in_flight && !self.active.is_empty()
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Node(e) => self.on_node_event(*e),
            Msg::Pod(e) => self.on_pod_event(*e),
            Msg::Bound { uid, result } => self.on_bound(uid, result),
        }
    }

    fn on_node_event(&mut self, event: watcher::Event<Node>) {
        match event {
            watcher::Event::Init => self.node_relist = Some(HashSet::new()),
            watcher::Event::InitApply(node) => {
                if let Some(seen) = &mut self.node_relist {
                    seen.insert(node.name_any());
                }
                self.flush |= self.cache.upsert_node(&node);
            }
            watcher::Event::InitDone => {
                if let Some(seen) = self.node_relist.take() {
                    let gone: Vec<String> =
                        self.cache.node_names().filter(|n| !seen.contains(*n)).map(str::to_string).collect();
                    for name in gone {
                        self.cache.remove_node(&name);
                    }
                }
                self.nodes_synced = true;
            }
            watcher::Event::Apply(node) => self.flush |= self.cache.upsert_node(&node),
            watcher::Event::Delete(node) => self.cache.remove_node(&node.name_any()),
        }
    }

    fn on_pod_event(&mut self, event: watcher::Event<Pod>) {
        match event {
            watcher::Event::Init => self.pod_relist = Some(HashSet::new()),
            watcher::Event::InitApply(pod) => {
                if let Some(seen) = &mut self.pod_relist {
                    seen.insert(pod.metadata.uid.clone().unwrap_or_default());
                }
                self.on_pod(pod);
            }
            watcher::Event::InitDone => {
                if let Some(seen) = self.pod_relist.take() {
                    for uid in self.cache.confirmed_pods() {
                        if !seen.contains(&uid) {
                            self.flush |= self.cache.remove_pod(&uid);
                        }
                    }
                    self.pending.retain(|uid, p| p.state == State::Binding || seen.contains(uid));
                }
                self.pods_synced = true;
            }
            watcher::Event::Apply(pod) => self.on_pod(pod),
            watcher::Event::Delete(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                self.flush |= self.cache.remove_pod(&uid);
                self.pending.remove(&uid);
            }
        }
    }

    fn on_pod(&mut self, pod: Pod) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
        if phase == "Succeeded" || phase == "Failed" {
            self.flush |= self.cache.remove_pod(&uid);
            self.pending.remove(&uid);
            return;
        }
        if let Some(node) = spec.and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty()) {
            self.cache.set_pod(&uid, node, PodUsage::of(&pod));
            if self.pending.get(&uid).is_some_and(|p| p.state != State::Binding) {
                self.pending.remove(&uid);
            }
            return;
        }
        let ours =
            spec.and_then(|s| s.scheduler_name.as_deref()).unwrap_or("default-scheduler") == self.config.scheduler_name;
        let gated = spec.and_then(|s| s.scheduling_gates.as_ref()).is_some_and(|g| !g.is_empty());
        if !ours || gated || pod.metadata.deletion_timestamp.is_some() {
            if self.pending.get(&uid).is_some_and(|p| p.state != State::Binding) {
                self.pending.remove(&uid);
            }
            return;
        }
        let pod = Arc::new(pod);
        match self.pending.get_mut(&uid) {
            Some(p) => {
                // The pod's own spec changed (say, a toleration was added): try it again.
                let respec = p.pod.spec != pod.spec;
                p.pod = pod;
                if respec && p.state == State::Unschedulable {
                    p.state = State::Queued;
                    self.active.push_back(uid);
                }
            }
            // Already bound by us; this is an older event than the binding.
            None if self.cache.has_pod(&uid) => {}
            None => {
                self.pending.insert(uid.clone(), Pending { pod, state: State::Queued, failures: 0 });
                self.active.push_back(uid);
            }
        }
    }

    fn on_bound(&mut self, uid: String, result: Result<(), BindFailure>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        match result {
            Ok(()) => {
                if self.pending.get(&uid).is_some_and(|p| p.state == State::Binding) {
                    self.pending.remove(&uid);
                }
            }
            Err(failure) => {
                self.cache.forget(&uid);
                let Some(p) = self.pending.get_mut(&uid) else { return };
                if matches!(failure, BindFailure::Gone) {
                    self.pending.remove(&uid);
                    return;
                }
                if let BindFailure::Other(e) = &failure {
                    tracing::warn!(pod = %uid, error = %e, "binding failed; retrying");
                }
                p.failures += 1;
                let delay = Duration::from_secs(1 << p.failures.min(4)).min(Duration::from_secs(10));
                p.state = State::Backoff(Instant::now() + delay);
            }
        }
    }

    fn requeue_backoffs(&mut self, now: Instant) {
        for (uid, p) in &mut self.pending {
            if matches!(p.state, State::Backoff(at) if at <= now) {
                p.state = State::Queued;
                self.active.push_back(uid.clone());
            }
        }
    }

    fn requeue_unschedulable(&mut self) {
        for (uid, p) in &mut self.pending {
            if p.state == State::Unschedulable {
                p.state = State::Queued;
                self.active.push_back(uid.clone());
            }
        }
    }

    fn schedule_batch(&mut self) {
        let mut done = 0;
        while done < BATCH && self.in_flight < self.config.max_in_flight {
            let Some(uid) = self.active.pop_front() else { break };
            let Some(p) = self.pending.get_mut(&uid) else { continue };
            if p.state != State::Queued {
                continue;
            }
            done += 1;
            let info = PodInfo::new(&p.pod);
            match schedule(&info, self.cache.nodes(), &mut self.cursor) {
                Ok(index) => {
                    let node = self.cache.node_name(index).unwrap_or_default().to_string();
                    p.state = State::Binding;
                    let pod = p.pod.clone();
                    self.cache.assume(&uid, &node, info.usage);
                    self.in_flight += 1;
                    self.spawn_bind(uid, pod, node);
                }
                Err(fit) => {
                    p.state = State::Unschedulable;
                    let pod = p.pod.clone();
                    self.spawn_unschedulable(pod, fit);
                }
            }
        }
    }

    fn spawn_bind(&self, uid: String, pod: Arc<Pod>, node: String) {
        let client = self.client.clone();
        let tx = self.tx.clone();
        let recorder = self.config.record_scheduled_events.then(|| self.recorder.clone());
        let component = self.config.scheduler_name.clone();
        tokio::spawn(async move {
            let result = bind(&client, &pod, &node).await;
            let ok = result.is_ok();
            let _ = tx.send(Msg::Bound { uid, result }).await;
            if let Some(recorder) = recorder.filter(|_| ok) {
                let message = format!(
                    "Successfully assigned {}/{} to {node}",
                    pod.namespace().unwrap_or_default(),
                    pod.name_any()
                );
                recorder.record(pod_event(
                    &pod,
                    &component,
                    "Normal",
                    "Scheduled",
                    "Binding",
                    &message,
                    Timestamp::now(),
                ));
            }
        });
    }

    fn spawn_unschedulable(&self, pod: Arc<Pod>, fit: FitError) {
        let client = self.client.clone();
        let side = self.side.clone();
        let recorder = self.recorder.clone();
        let component = self.config.scheduler_name.clone();
        tokio::spawn(async move {
            let message = fit.to_string();
            tracing::debug!(pod = %pod.name_any(), %message, "pod is unschedulable");
            // Upstream records the Event, then updates the condition.
            recorder.record(pod_event(
                &pod,
                &component,
                "Warning",
                "FailedScheduling",
                "Scheduling",
                &message,
                Timestamp::now(),
            ));
            let Ok(_permit) = side.acquire().await else { return };
            if let Some(patch) = unschedulable_patch(&pod, &message, Timestamp::now()) {
                let api: Api<Pod> = Api::namespaced(client, &pod.namespace().unwrap_or_default());
                if let Err(e) =
                    api.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(patch)).await
                {
                    tracing::debug!(error = %e, "cannot set PodScheduled=False");
                }
            }
        });
    }
}

/// POST `pods/{name}/binding` (upstream's `DefaultBinder`).
async fn bind(client: &Client, pod: &Pod, node: &str) -> Result<(), BindFailure> {
    let name = pod.name_any();
    let namespace = pod.namespace().unwrap_or_default();
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            uid: pod.metadata.uid.clone(),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..ObjectReference::default()
        },
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    match api.create_subresource::<_, serde_json::Value>("binding", &name, &PostParams::default(), &binding).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(BindFailure::Gone),
        Err(kube::Error::Api(s)) if s.code == 409 => Err(BindFailure::Conflict),
        Err(e) => Err(BindFailure::Other(e.to_string())),
    }
}

/// The strategic-merge patch that sets `PodScheduled=False reason=Unschedulable` with `message`,
/// or `None` when the pod already says exactly that (upstream skips the write then too). The
/// transition time only moves when the status does.
pub fn unschedulable_patch(pod: &Pod, message: &str, now: Timestamp) -> Option<serde_json::Value> {
    let current = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"));
    if let Some(c) = current
        && c.status == "False"
        && c.reason.as_deref() == Some("Unschedulable")
        && c.message.as_deref() == Some(message)
    {
        return None;
    }
    let transition = match current {
        Some(c) if c.status == "False" => c.last_transition_time.clone().map(|t| t.0).unwrap_or(now),
        _ => now,
    };
    Some(serde_json::json!({"status": {"conditions": [{
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastProbeTime": null,
        "lastTransitionTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(transition),
    }]}}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unschedulable_patch_cases() {
        let now = Timestamp::from_second(1_700_000_100).expect("time");
        let pod = |conditions: serde_json::Value| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p"}, "status": {"conditions": conditions}}))
                .expect("a Pod")
        };
        let fresh = unschedulable_patch(&pod(json!([])), "m1", now).expect("a patch");
        assert_eq!(
            fresh,
            json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "m1", "lastProbeTime": null, "lastTransitionTime": "2023-11-14T22:15:00Z"}]}})
        );
        let same = pod(json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "m1",
            "lastTransitionTime": "2023-11-14T22:00:00Z"}]));
        assert_eq!(unschedulable_patch(&same, "m1", now), None, "nothing new: no write");
        let changed = unschedulable_patch(&same, "m2", now).expect("a patch");
        assert_eq!(
            changed["status"]["conditions"][0]["lastTransitionTime"],
            json!("2023-11-14T22:00:00Z"),
            "still False: time kept"
        );
        assert_eq!(changed["status"]["conditions"][0]["message"], json!("m2"));
    }
}
