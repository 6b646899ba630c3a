//! The executor: registers the Node, renews its Lease, watches the pods bound to it and runs one
//! worker per pod that turns [`compute_pod_actions`] into runtime calls and writes
//! [`pod_status`] to `pods/status` when it changes. Also graceful termination (confirmed by a
//! DELETE with `gracePeriodSeconds=0` and a UID precondition) and cleanup of whatever the runtime
//! still runs for pods that no longer exist.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Node, Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::AbortHandle;

use crate::backoff::Backoff;
use crate::env::{self, EnvSources, NodeFacts};
use crate::events::{EventType, Recorder, pod_reference};
use crate::node::{self, LEASE_DURATION_SECONDS, LEASE_NAMESPACE, MachineInfo, NodeSpec};
use crate::observed::{ObservedPod, Waiting};
use crate::plan::{
    ContainerKind, PodActions, StartContainer, compute_pod_actions, container_hash, format_pod, is_sidecar,
};
use crate::probe::{self, Check, HandlerRef, NetProber, ProbeKind, ProbeResults, Prober, ResultSink, Timing, Worker};
use crate::runtime::{
    ContainerConfig, ContainerInfo, ContainerRuntime, ContainerState, Mount, PullPolicy, RuntimeError, SandboxConfig,
    SandboxInfo,
};
use crate::server::{self, BoundPod, BoundPods, KubeletServer, StreamingConfig};
use crate::status::pod_status;
use crate::{sysctl, volumes};

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node_name: String,
    /// The InternalIP; default: the host's primary IP.
    pub node_ip: Option<IpAddr>,
    /// The Hostname address; default: the node name.
    pub hostname: Option<String>,
    /// Where pod directories (volumes, termination logs) live.
    pub root_dir: PathBuf,
    /// Extra Node labels.
    pub labels: Vec<(String, String)>,
    /// `status.capacity.pods`.
    pub pods: u32,
    /// Lease renewals (the kubelet's 10 s).
    pub lease_renew_interval: Duration,
    /// Node status heartbeats (`nodeStatusReportFrequency`, 5 min).
    pub node_status_interval: Duration,
    /// How often each pod worker relists the runtime (the PLEG's 1 s).
    pub sync_interval: Duration,
    /// Sweeps for runtime pods without an API object.
    pub housekeeping_interval: Duration,
    /// How often a running pod's configMap and secret volumes are rewritten from the objects as
    /// they are then (the kubelet's `syncFrequency`, 1 min, bounds its own delay).
    pub volume_refresh_interval: Duration,
    /// Crash-loop and image-pull back-off (10 s doubling to 300 s).
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// `nodeInfo.containerRuntimeVersion`.
    pub runtime_version: String,
    /// The kubelet server for logs and `kubectl exec` (none: not served; the Node still says
    /// port 10250).
    pub streaming: Option<StreamingConfig>,
    /// The Lease's `leaseDurationSeconds` (the kubelet's `nodeLeaseDurationSeconds`, 40).
    pub lease_duration_seconds: i32,
    /// Where the node's pod range comes from.
    pub pod_cidr: PodCidr,
    /// Called with the node's pod range once it is known, before any pod runs (the runtime sets
    /// up its bridge network with it).
    pub on_pod_cidr: Option<PodCidrHook>,
    /// Route every other node's pod range via its address ([`crate::routes`]), for pods to reach
    /// pods on other nodes.
    pub node_routes: bool,
    /// The cluster's pod range (traffic from this node's pods into it is not masqueraded).
    pub cluster_cidr: Option<String>,
}

/// Where the node's pod range comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PodCidr {
    /// The agent neither sets nor waits for one (simulated and fake runtimes).
    #[default]
    Unmanaged,
    /// Given (`--pod-cidr`): registered in the Node's `spec.podCIDR`, which node IPAM keeps.
    Fixed(String),
    /// Assigned by node IPAM: the agent waits until its Node has a `spec.podCIDR`.
    FromNode,
}

/// A callback receiving the node's pod range.
#[derive(Clone)]
pub struct PodCidrHook(pub Arc<dyn Fn(&str) + Send + std::marker::Sync>);

impl std::fmt::Debug for PodCidrHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PodCidrHook")
    }
}

impl AgentConfig {
    pub fn new(node_name: &str, root_dir: PathBuf) -> AgentConfig {
        AgentConfig {
            node_name: node_name.to_string(),
            node_ip: None,
            hostname: None,
            root_dir,
            labels: Vec::new(),
            pods: 110,
            lease_renew_interval: Duration::from_secs(10),
            node_status_interval: Duration::from_secs(300),
            sync_interval: Duration::from_secs(1),
            housekeeping_interval: Duration::from_secs(30),
            volume_refresh_interval: Duration::from_secs(10),
            backoff_initial: crate::backoff::INITIAL,
            backoff_max: crate::backoff::MAX,
            runtime_version: "skiff://0.1.0".to_string(),
            streaming: None,
            lease_duration_seconds: LEASE_DURATION_SECONDS,
            pod_cidr: PodCidr::Unmanaged,
            on_pod_cidr: None,
            node_routes: false,
            cluster_cidr: None,
        }
    }
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot register node {node}")]
    Register { node: String, source: kube::Error },
    #[error("cannot list the pods bound to node {node}")]
    ListPods { node: String, source: kube::Error },
    #[error("cannot start the kubelet server")]
    Serve(#[source] server::ServerError),
}

/// What every worker shares.
struct Ctx {
    client: Client,
    config: AgentConfig,
    runtime: Arc<dyn ContainerRuntime>,
    prober: Arc<dyn Prober>,
    recorder: Recorder,
    host_ip: String,
    facts: NodeFacts,
    /// The pods bound here, for the kubelet server.
    pods: Arc<BoundPods>,
    /// `daemonEndpoints.kubeletEndpoint.Port`.
    kubelet_port: u16,
}

/// The node agent.
pub struct Agent;

impl Agent {
    /// Runs the agent until `shutdown` completes, probing with [`NetProber`].
    pub async fn run(
        client: Client,
        config: AgentConfig,
        runtime: Arc<dyn ContainerRuntime>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), AgentError> {
        let prober: Arc<dyn Prober> = Arc::new(NetProber::new(runtime.clone()));
        Agent::run_with_prober(client, config, runtime, prober, shutdown).await
    }

    /// Runs the agent with a chosen [`Prober`].
    pub async fn run_with_prober(
        client: Client,
        config: AgentConfig,
        runtime: Arc<dyn ContainerRuntime>,
        prober: Arc<dyn Prober>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), AgentError> {
        let machine = MachineInfo::detect();
        let host_ip = config.node_ip.unwrap_or_else(node::primary_ip).to_string();
        let facts = NodeFacts {
            host_ip: host_ip.clone(),
            allocatable_cpu: machine.cpus.to_string(),
            allocatable_memory: format!("{}Ki", machine.memory_bytes / 1024),
        };
        let pods = Arc::new(BoundPods::default());
        let kubelet = match &config.streaming {
            Some(streaming) => {
                let hostname = config.hostname.as_deref().unwrap_or(&config.node_name);
                let names = server::tls::serving_names(&host_ip, hostname);
                let state = Arc::new(server::ServerState { pods: pods.clone(), runtime: runtime.clone() });
                Some(KubeletServer::start(streaming, &names, state).await.map_err(AgentError::Serve)?)
            }
            None => None,
        };
        let ctx = Arc::new(Ctx {
            recorder: Recorder::new(client.clone(), &config.node_name),
            client,
            runtime,
            prober,
            host_ip,
            facts,
            config,
            pods,
            kubelet_port: kubelet.as_ref().map_or(server::DEFAULT_PORT, |k| k.addr.port()),
        });
        let node_uid = register_node(&ctx, &machine).await?;
        renew_lease(&ctx, node_uid.as_deref()).await;
        tracing::info!(node = %ctx.config.node_name, "node registered");
        let heartbeats = tokio::spawn(heartbeat_loop(ctx.clone(), node_uid));
        let mut shutdown = std::pin::pin!(shutdown);
        let pod_cidr = tokio::select! {
            cidr = pod_cidr(&ctx) => cidr,
            _ = &mut shutdown => {
                heartbeats.abort();
                if let Some(k) = kubelet {
                    k.stop().await;
                }
                return Ok(());
            }
        };
        if let (Some(cidr), Some(hook)) = (&pod_cidr, &ctx.config.on_pod_cidr) {
            (hook.0)(cidr);
        }
        let routes = ctx.config.node_routes.then(|| {
            let config = crate::routes::RouteConfig {
                node_name: ctx.config.node_name.clone(),
                node_ip: ctx.host_ip.parse().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
                pod_cidr: pod_cidr.clone(),
                cluster_cidr: ctx.config.cluster_cidr.clone(),
            };
            tokio::spawn(crate::routes::run(ctx.client.clone(), config))
        });
        if let Err(e) = cleanup_at_start(&ctx).await {
            heartbeats.abort();
            routes.iter().for_each(|r| r.abort());
            return Err(e);
        }
        let pods = tokio::spawn(pod_loop(ctx.clone()));
        shutdown.await;
        heartbeats.abort();
        pods.abort();
        routes.iter().for_each(|r| r.abort());
        if let Some(k) = kubelet {
            k.stop().await;
        }
        Ok(())
    }
}

fn node_api(ctx: &Ctx) -> Api<Node> {
    Api::all(ctx.client.clone())
}

/// Creates the Node, or refreshes its labels and status (re-registration). Returns its UID.
async fn register_node(ctx: &Ctx, machine: &MachineInfo) -> Result<Option<String>, AgentError> {
    let c = &ctx.config;
    let ip: IpAddr = ctx.host_ip.parse().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    let spec = NodeSpec {
        name: &c.node_name,
        ip,
        hostname: c.hostname.as_deref().unwrap_or(&c.node_name),
        pods: c.pods,
        labels: &c.labels,
        runtime_version: &c.runtime_version,
        kubelet_port: ctx.kubelet_port,
    };
    let mut body = node::node_object(&spec, machine, Timestamp::now());
    if let PodCidr::Fixed(cidr) = &c.pod_cidr {
        body["spec"] = node::pod_cidr_spec(cidr);
    }
    let err = |source| AgentError::Register { node: c.node_name.clone(), source };
    let node: Node = serde_json::from_value(body.clone()).map_err(|e| err(kube::Error::SerdeError(e)))?;
    let api = node_api(ctx);
    match api.create(&PostParams::default(), &node).await {
        Ok(created) => Ok(created.metadata.uid),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let existing = api
                .patch(
                    &c.node_name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"labels": body["metadata"]["labels"]}})),
                )
                .await
                .map_err(err)?;
            if let PodCidr::Fixed(cidr) = &c.pod_cidr {
                match node::assigned_pod_cidr(&existing) {
                    None => {
                        api.patch(&c.node_name, &PatchParams::default(), &Patch::Merge(json!({"spec": body["spec"]})))
                            .await
                            .map_err(err)?;
                    }
                    Some(have) if &have != cidr => tracing::warn!(
                        node = %c.node_name, node_pod_cidr = %have, pod_cidr = %cidr,
                        "the Node already has another pod range; pods here use the given one and other nodes route the Node's"
                    ),
                    Some(_) => {}
                }
            }
            let updated = api
                .patch_status(&c.node_name, &PatchParams::default(), &Patch::Merge(json!({"status": body["status"]})))
                .await
                .map_err(err)?;
            Ok(updated.metadata.uid)
        }
        Err(e) => Err(err(e)),
    }
}

/// Renews (or creates) the node's Lease; failures are logged and retried next round.
async fn renew_lease(ctx: &Ctx, node_uid: Option<&str>) {
    let node = &ctx.config.node_name;
    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), LEASE_NAMESPACE);
    let now = Timestamp::now();
    let duration = ctx.config.lease_duration_seconds;
    let patch =
        json!({"spec": {"renewTime": node::micro_time(now), "holderIdentity": node, "leaseDurationSeconds": duration}});
    match api.patch(node, &PatchParams::default(), &Patch::Merge(patch)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let mut lease = node::lease_object(node, node_uid, now);
            lease["spec"]["leaseDurationSeconds"] = json!(duration);
            if let Ok(lease) = serde_json::from_value::<Lease>(lease)
                && let Err(e) = api.create(&PostParams::default(), &lease).await
            {
                tracing::warn!(node, error = %e, "cannot create the node lease");
            }
        }
        Err(e) => tracing::warn!(node, error = %e, "cannot renew the node lease"),
    }
}

/// The node's pod range: the given one, or the one node IPAM sets on the Node (waiting for it,
/// with a log line, and retrying reads that fail); `None` when the agent does not manage one.
async fn pod_cidr(ctx: &Ctx) -> Option<String> {
    match &ctx.config.pod_cidr {
        PodCidr::Unmanaged => None,
        PodCidr::Fixed(cidr) => Some(cidr.clone()),
        PodCidr::FromNode => {
            let name = &ctx.config.node_name;
            let mut told = false;
            loop {
                match node_api(ctx).get(name).await {
                    Ok(n) => {
                        if let Some(cidr) = node::assigned_pod_cidr(&n) {
                            tracing::info!(node = %name, pod_cidr = %cidr, "using the pod range node IPAM gave this node");
                            return Some(cidr);
                        }
                    }
                    Err(e) => tracing::debug!(node = %name, error = %e, "cannot read the Node"),
                }
                if !told {
                    tracing::info!(node = %name, "waiting for node IPAM to set the Node's spec.podCIDR");
                    told = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Renews the Lease; posts the node's status every `node_status_interval`, and at once when the
/// Node's Ready condition in the API says otherwise (the node lifecycle controller set it Unknown
/// while the agent was unreachable), as the kubelet compares on each `nodeStatusUpdateFrequency`.
async fn heartbeat_loop(ctx: Arc<Ctx>, node_uid: Option<String>) {
    let mut lease = tokio::time::interval(ctx.config.lease_renew_interval);
    lease.tick().await;
    let mut status = tokio::time::interval(ctx.config.node_status_interval);
    status.tick().await;
    loop {
        tokio::select! {
            _ = lease.tick() => {
                renew_lease(&ctx, node_uid.as_deref()).await;
                let ready = ctx.runtime.list_sandboxes().await.is_ok();
                if let Ok(n) = node_api(&ctx).get(&ctx.config.node_name).await
                    && node::ready_differs(&n, ready)
                {
                    tracing::info!(node = %ctx.config.node_name, "the Node's Ready condition is stale; posting status");
                    post_node_status(&ctx, ready).await;
                }
            }
            _ = status.tick() => {
                let ready = ctx.runtime.list_sandboxes().await.is_ok();
                post_node_status(&ctx, ready).await;
            }
        }
    }
}

async fn post_node_status(ctx: &Ctx, ready: bool) {
    let conditions = node::node_conditions(ready, "container runtime is not responding", Timestamp::now());
    let patch = json!({"status": {"conditions": conditions}});
    if let Err(e) =
        node_api(ctx).patch_status(&ctx.config.node_name, &PatchParams::default(), &Patch::Merge(patch)).await
    {
        tracing::warn!(error = %e, "cannot post node status");
    }
}

/// Stops and removes everything the runtime runs for `pod_uid` (a pod the API no longer has).
async fn kill_runtime_pod(ctx: &Ctx, pod_uid: &str) {
    let containers = ctx.runtime.list_containers(pod_uid).await.unwrap_or_default();
    for c in containers.iter().filter(|c| c.is_running()) {
        if let Err(e) = ctx.runtime.stop_container(&c.id, Duration::from_secs(2)).await {
            tracing::warn!(container = %c.id, error = %e, "cannot stop an orphaned container");
        }
    }
    for c in &containers {
        let _ = ctx.runtime.remove_container(&c.id).await;
    }
    if let Err(e) = ctx.runtime.stop_sandbox(pod_uid).await {
        tracing::warn!(pod = %pod_uid, error = %e, "cannot stop an orphaned sandbox");
    }
    volumes::remove_pod_dir(&ctx.config.root_dir, pod_uid);
}

fn field_selector(ctx: &Ctx) -> String {
    format!("spec.nodeName={}", ctx.config.node_name)
}

/// Before watching: whatever the runtime runs for pods that are not bound here any more goes.
async fn cleanup_at_start(ctx: &Ctx) -> Result<(), AgentError> {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let pods = api
        .list(&ListParams::default().fields(&field_selector(ctx)))
        .await
        .map_err(|source| AgentError::ListPods { node: ctx.config.node_name.clone(), source })?;
    let known: HashSet<String> = pods.items.iter().filter_map(|p| p.metadata.uid.clone()).collect();
    sweep(ctx, &known).await;
    Ok(())
}

/// Kills runtime pods whose UID is not in `known`.
async fn sweep(ctx: &Ctx, known: &HashSet<String>) {
    match ctx.runtime.list_sandboxes().await {
        Ok(sandboxes) => {
            for sb in sandboxes.iter().filter(|s| !known.contains(&s.pod_uid)) {
                tracing::info!(pod = %sb.pod_uid, name = %sb.name, "killing a pod that is not bound to this node");
                kill_runtime_pod(ctx, &sb.pod_uid).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot list sandboxes"),
    }
}

enum Msg {
    Pod(Box<watcher::Event<Pod>>),
    WorkerDone(String),
    Housekeeping,
    /// A container of this pod exited: sync it now rather than on the next relist.
    Exited(String),
}

/// Watches the pods bound to this node and keeps one worker per pod.
async fn pod_loop(ctx: Arc<Ctx>) {
    let (tx, mut rx) = mpsc::channel::<Msg>(1024);
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let selector = field_selector(&ctx);
    let watch_tx = tx.clone();
    let watch_task = tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default().fields(&selector)).default_backoff().boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(e) => {
                    if watch_tx.send(Msg::Pod(Box::new(e))).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "pod watch failed; retrying"),
            }
        }
    });
    let hk_tx = tx.clone();
    let every = ctx.config.housekeeping_interval;
    let hk_task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if hk_tx.send(Msg::Housekeeping).await.is_err() {
                return;
            }
        }
    });
    let exits_task = ctx.runtime.exits().map(|mut exits| {
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                let uid = match exits.recv().await {
                    Ok(uid) => uid,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if tx.send(Msg::Exited(uid)).await.is_err() {
                    return;
                }
            }
        })
    });
    let mut workers: HashMap<String, watch::Sender<Option<Pod>>> = HashMap::new();
    let mut listing: HashSet<String> = HashSet::new();
    while let Some(msg) = rx.recv().await {
        let event = match msg {
            Msg::Pod(e) => *e,
            Msg::WorkerDone(uid) => {
                workers.remove(&uid);
                continue;
            }
            Msg::Housekeeping => {
                let known: HashSet<String> = workers.keys().cloned().collect();
                sweep(&ctx, &known).await;
                continue;
            }
            Msg::Exited(uid) => {
                // Wakes the worker with the pod it has (a watch send marks it changed).
                if let Some(w) = workers.get(&uid) {
                    w.send_modify(|_| {});
                }
                continue;
            }
        };
        match event {
            watcher::Event::Init => listing.clear(),
            watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                listing.insert(uid.clone());
                let ours =
                    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(ctx.config.node_name.as_str());
                match BoundPod::of(&pod).filter(|_| ours) {
                    Some((namespace, name, entry)) => ctx.pods.set(&namespace, &name, entry),
                    None => ctx.pods.remove_uid(&uid),
                }
                match workers.get(&uid) {
                    Some(w) => {
                        let _ = w.send(ours.then_some(pod));
                    }
                    None if ours => {
                        let (wtx, wrx) = watch::channel(Some(pod));
                        workers.insert(uid.clone(), wtx);
                        let (ctx, done) = (ctx.clone(), tx.clone());
                        tokio::spawn(async move {
                            PodWorker::new(ctx, uid.clone()).run(wrx).await;
                            let _ = done.send(Msg::WorkerDone(uid)).await;
                        });
                    }
                    None => {}
                }
            }
            watcher::Event::InitDone => {
                ctx.pods.retain_uids(|uid| listing.contains(uid));
                for (uid, w) in &workers {
                    if !listing.contains(uid) {
                        let _ = w.send(None);
                    }
                }
            }
            watcher::Event::Delete(pod) => {
                if let Some(uid) = &pod.metadata.uid {
                    ctx.pods.remove_uid(uid);
                }
                if let Some(w) = pod.metadata.uid.as_ref().and_then(|u| workers.get(u)) {
                    let _ = w.send(None);
                }
            }
        }
    }
    watch_task.abort();
    hk_task.abort();
    if let Some(task) = exits_task {
        task.abort();
    }
}

/// The state one pod's worker keeps between syncs.
struct PodWorker {
    ctx: Arc<Ctx>,
    uid: String,
    backoff: Backoff,
    image_backoff: Backoff,
    /// The reason cache: why containers wait.
    waiting: HashMap<String, Waiting>,
    /// The last image-pull error and its time, per image back-off key.
    pull_errors: HashMap<String, (String, Timestamp)>,
    sink: ResultSink,
    probe_tasks: HashMap<(String, ProbeKind), AbortHandle>,
    last_status: Option<Value>,
    /// The last pod seen, for cleanup after the object is gone.
    last_pod: Option<Pod>,
    /// When the configMap and secret volumes were last written.
    volumes_written: Option<std::time::Instant>,
}

/// Whether the worker is finished.
#[derive(Debug, PartialEq, Eq)]
enum Sync {
    Continue,
    Done,
}

fn container_of(pod: &Pod, kind: ContainerKind, index: usize) -> Option<&Container> {
    let spec = pod.spec.as_ref()?;
    match kind {
        ContainerKind::Init => spec.init_containers.as_ref()?.get(index),
        ContainerKind::Regular => spec.containers.get(index),
    }
}

fn find_container<'a>(pod: &'a Pod, name: &str) -> Option<(ContainerKind, &'a Container)> {
    let spec = pod.spec.as_ref()?;
    if let Some(c) = spec.containers.iter().find(|c| c.name == name) {
        return Some((ContainerKind::Regular, c));
    }
    spec.init_containers.iter().flatten().find(|c| c.name == name).map(|c| (ContainerKind::Init, c))
}

fn field_path(kind: ContainerKind, name: &str) -> String {
    match kind {
        ContainerKind::Init => format!("spec.initContainers{{{name}}}"),
        ContainerKind::Regular => format!("spec.containers{{{name}}}"),
    }
}

fn since(t: Timestamp) -> Duration {
    Duration::try_from(Timestamp::now().as_duration().saturating_sub(t.as_duration())).unwrap_or(Duration::ZERO)
}

/// The last `max` bytes of a CRI-format log, message parts only.
fn log_tail(path: &std::path::Path, max: usize) -> String {
    let Ok(text) = std::fs::read_to_string(path) else { return String::new() };
    let mut out = String::new();
    for line in text.lines() {
        // <time> <stream> <P|F> <message>
        let mut parts = line.splitn(4, ' ');
        let (_, _, tag, msg) = (parts.next(), parts.next(), parts.next(), parts.next().unwrap_or(""));
        out.push_str(msg);
        if tag != Some("P") {
            out.push('\n');
        }
    }
    let start = out.len().saturating_sub(max);
    let start = (start..out.len()).find(|i| out.is_char_boundary(*i)).unwrap_or(out.len());
    out[start..].to_string()
}

impl PodWorker {
    fn new(ctx: Arc<Ctx>, uid: String) -> PodWorker {
        let (initial, max) = (ctx.config.backoff_initial, ctx.config.backoff_max);
        PodWorker {
            ctx,
            uid,
            backoff: Backoff::new(initial, max),
            image_backoff: Backoff::new(initial, max),
            waiting: HashMap::new(),
            pull_errors: HashMap::new(),
            sink: ResultSink::default(),
            probe_tasks: HashMap::new(),
            last_status: None,
            last_pod: None,
            volumes_written: None,
        }
    }

    async fn run(mut self, mut rx: watch::Receiver<Option<Pod>>) {
        loop {
            let pod = rx.borrow_and_update().clone();
            let outcome = match pod {
                Some(pod) => {
                    let r = self.sync(&pod).await;
                    self.last_pod = Some(pod);
                    r
                }
                None => {
                    self.gone().await;
                    Sync::Done
                }
            };
            if outcome == Sync::Done {
                break;
            }
            let notify = self.sink.notify.clone();
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        self.gone().await;
                        break;
                    }
                }
                _ = notify.notified() => {}
                _ = tokio::time::sleep(self.ctx.config.sync_interval) => {}
            }
        }
        self.stop_probes(&HashSet::new());
    }

    fn pod_dir(&self) -> PathBuf {
        volumes::pod_dir(&self.ctx.config.root_dir, &self.uid)
    }

    fn termination_log(&self, name: &str, attempt: u32) -> PathBuf {
        self.pod_dir().join("containers").join(name).join(format!("{attempt}-termination-log"))
    }

    /// What the runtime shows for this pod, with termination messages filled in.
    async fn observe(&self, pod: Option<&Pod>) -> Result<ObservedPod, RuntimeError> {
        let sandbox = self.ctx.runtime.sandbox(&self.uid).await?;
        let mut containers = self.ctx.runtime.list_containers(&self.uid).await?;
        for c in &mut containers {
            let fallback = pod
                .and_then(|p| find_container(p, &c.name))
                .is_some_and(|(_, spec)| spec.termination_message_policy.as_deref() == Some("FallbackToLogsOnError"));
            if let ContainerState::Exited { message, exit_code, .. } = &mut c.state
                && message.is_none()
            {
                let text = std::fs::read_to_string(self.termination_log(&c.name, c.attempt)).unwrap_or_default();
                *message = if !text.is_empty() {
                    Some(text.chars().take(4096).collect())
                } else if fallback && *exit_code != 0 {
                    Some(log_tail(&self.ctx.runtime.log_path(&c.id), 2048))
                } else {
                    None
                };
            }
        }
        Ok(ObservedPod { sandbox, containers, waiting: self.waiting.clone(), host_ips: vec![self.ctx.host_ip.clone()] })
    }

    async fn event(&self, pod: &Pod, field: Option<String>, kind: EventType, reason: &str, message: &str) {
        self.ctx.recorder.record(&pod_reference(pod, field), kind, reason, message).await;
    }

    /// One sync of a pod that exists.
    async fn sync(&mut self, pod: &Pod) -> Sync {
        tracing::trace!(pod = %format_pod(pod), "sync");
        let observed = match self.observe(Some(pod)).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(pod = %format_pod(pod), error = %e, "cannot observe the runtime");
                return Sync::Continue;
            }
        };
        if pod.metadata.deletion_timestamp.is_some() {
            return self.terminate(pod, observed).await;
        }
        if let Some(deadline) = self.deadline_exceeded(pod) {
            return self.fail_deadline(pod, observed, deadline).await;
        }
        if observed.sandbox.is_none()
            && !is_terminal(pod)
            && let Some(message) = sysctl::forbidden(pod)
        {
            return self.reject(pod, observed, sysctl::FORBIDDEN_REASON, &message).await;
        }
        self.report_probe_failures(pod).await;
        let probes = self.sink.results.lock().clone();
        let now = Timestamp::now();
        let actions = compute_pod_actions(pod, &observed, &self.backoff, &probes, now);
        self.execute(pod, &observed, actions, now).await;
        let Ok(observed) = self.observe(Some(pod)).await else { return Sync::Continue };
        self.refresh_volumes(pod, &observed).await;
        self.manage_probes(pod, &observed);
        self.gc_instances(&observed).await;
        let probes = self.sink.results.lock().clone();
        let status = pod_status(pod, &observed, &probes, Timestamp::now());
        self.write_status(pod, serde_json::to_value(&status).unwrap_or(Value::Null)).await;
        Sync::Continue
    }

    /// `spec.activeDeadlineSeconds` passed since `status.startTime`.
    fn deadline_exceeded(&self, pod: &Pod) -> Option<i64> {
        let deadline = pod.spec.as_ref()?.active_deadline_seconds?;
        let start = pod.status.as_ref()?.start_time.as_ref()?.0;
        (since(start) >= Duration::from_secs(deadline.max(0) as u64)).then_some(deadline)
    }

    /// Kills the pod and marks it Failed with reason `DeadlineExceeded`.
    async fn fail_deadline(&mut self, pod: &Pod, observed: ObservedPod, _deadline: i64) -> Sync {
        let message = "Pod was active on the node longer than the specified deadline";
        if observed.any_running() {
            self.event(pod, None, EventType::Normal, "DeadlineExceeded", message).await;
        }
        self.kill_pod(pod, &observed, None).await;
        let Ok(observed) = self.observe(Some(pod)).await else { return Sync::Continue };
        let probes = self.sink.results.lock().clone();
        let mut status = pod_status(pod, &observed, &probes, Timestamp::now());
        status.phase = Some("Failed".into());
        status.reason = Some("DeadlineExceeded".into());
        status.message = Some(message.into());
        self.write_status(pod, serde_json::to_value(&status).unwrap_or(Value::Null)).await;
        Sync::Continue
    }

    /// Does not admit the pod, as the kubelet's `rejectPod`: a Warning event, and the pod `Failed`
    /// with `reason` and the message `Pod was rejected: <message>`. Nothing of it ever runs.
    async fn reject(&mut self, pod: &Pod, observed: ObservedPod, reason: &str, message: &str) -> Sync {
        self.event(pod, None, EventType::Warning, reason, message).await;
        let probes = self.sink.results.lock().clone();
        let mut status = pod_status(pod, &observed, &probes, Timestamp::now());
        status.phase = Some("Failed".into());
        status.reason = Some(reason.into());
        status.message = Some(format!("Pod was rejected: {message}"));
        self.write_status(pod, serde_json::to_value(&status).unwrap_or(Value::Null)).await;
        Sync::Continue
    }

    async fn execute(&mut self, pod: &Pod, observed: &ObservedPod, actions: PodActions, now: Timestamp) {
        for u in &actions.backoff_updates {
            self.backoff.next(&u.key, u.event_time, now);
        }
        for (name, w) in &actions.waiting {
            if self.waiting.get(name) != Some(w)
                && let Some((kind, _)) = find_container(pod, name)
            {
                let msg = format!("Back-off restarting failed container {name} in pod {}", format_pod(pod));
                self.event(pod, Some(field_path(kind, name)), EventType::Warning, "BackOff", &msg).await;
            }
            self.waiting.insert(name.clone(), w.clone());
        }
        if actions.kill_pod {
            self.kill_pod(pod, observed, None).await;
        } else if actions.finish_pod {
            self.stop_containers(pod, observed, termination_grace(pod)).await;
        }
        let mut sandbox = observed.sandbox.clone().filter(|s| s.ready);
        if actions.create_sandbox {
            let began = tokio::time::Instant::now();
            match self.ctx.runtime.run_sandbox(&self.sandbox_config(pod)).await {
                Ok(sb) => {
                    tracing::debug!(pod = %format_pod(pod), elapsed = ?began.elapsed(), "sandbox created");
                    sandbox = Some(sb)
                }
                Err(e) => {
                    let msg = format!("Failed to create pod sandbox: {e}");
                    self.event(pod, None, EventType::Warning, "FailedCreatePodSandBox", &msg).await;
                    return;
                }
            }
        }
        for k in &actions.kill {
            let kind = find_container(pod, &k.name).map_or(ContainerKind::Regular, |(kind, _)| kind);
            self.event(pod, Some(field_path(kind, &k.name)), EventType::Normal, "Killing", &k.message).await;
            let grace = k.grace_override.unwrap_or_else(|| termination_grace(pod));
            if let Err(e) = self.ctx.runtime.stop_container(&k.id, Duration::from_secs(grace.max(2) as u64)).await {
                tracing::warn!(container = %k.id, error = %e, "cannot stop container");
            }
        }
        let Some(sandbox) = sandbox else { return };
        for s in &actions.start {
            self.start(pod, &sandbox, s).await;
        }
    }

    fn sandbox_config(&self, pod: &Pod) -> SandboxConfig {
        let spec = pod.spec.clone().unwrap_or_default();
        SandboxConfig {
            pod_uid: self.uid.clone(),
            name: pod.name_any(),
            namespace: pod.namespace().unwrap_or_default(),
            hostname: spec.hostname.clone().unwrap_or_else(|| pod.name_any()),
            host_network: spec.host_network == Some(true),
            host_aliases: spec
                .host_aliases
                .iter()
                .flatten()
                .map(|a| (a.ip.clone(), a.hostnames.clone().unwrap_or_default()))
                .collect(),
            log_dir: self.pod_dir().join("logs"),
            port_mappings: crate::runtime::port_mappings(&spec),
        }
    }

    /// Fetches the ConfigMaps and Secrets `names` from the pod's namespace (`None`: not found).
    async fn fetch_sources(&self, namespace: &str, cms: &[String], secrets: &[String]) -> Result<EnvSources, String> {
        let mut out = EnvSources::default();
        let cm_api: Api<ConfigMap> = Api::namespaced(self.ctx.client.clone(), namespace);
        for n in cms {
            out.config_maps.insert(n.clone(), cm_api.get_opt(n).await.map_err(|e| e.to_string())?);
        }
        let s_api: Api<Secret> = Api::namespaced(self.ctx.client.clone(), namespace);
        for n in secrets {
            out.secrets.insert(n.clone(), s_api.get_opt(n).await.map_err(|e| e.to_string())?);
        }
        Ok(out)
    }

    /// Rewrites the configMap and secret volumes of a pod with a running container when
    /// `volume_refresh_interval` has passed since they were written, so updates to those objects
    /// reach the running containers.
    async fn refresh_volumes(&mut self, pod: &Pod, observed: &ObservedPod) {
        let due = self.volumes_written.is_none_or(|t| t.elapsed() >= self.ctx.config.volume_refresh_interval);
        if !due || !observed.any_running() || !volumes::has_source_volumes(pod) {
            return;
        }
        self.volumes_written = Some(std::time::Instant::now());
        let (cms, secrets) = volumes::referenced(pod);
        let namespace = pod.namespace().unwrap_or_default();
        let sources = match self.fetch_sources(&namespace, &cms, &secrets).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(pod = %format_pod(pod), error = %e, "cannot read the pod's configMaps and secrets");
                return;
            }
        };
        for e in volumes::refresh_volumes(pod, &self.ctx.config.root_dir, &sources) {
            tracing::warn!(pod = %format_pod(pod), error = %e, "cannot refresh a volume");
        }
    }

    /// `CreateContainerConfigError`: the container cannot be configured (a missing ConfigMap key,
    /// a bad mount); a `Failed` event says why, as the kubelet's.
    async fn config_error(&mut self, pod: &Pod, field: &str, name: &str, message: String) {
        let event = format!("Error: {message}");
        self.hold(pod, field, name, "CreateContainerConfigError", message, Some(("Failed", event))).await;
    }

    async fn hold(
        &mut self,
        pod: &Pod,
        field: &str,
        name: &str,
        reason: &str,
        message: String,
        event: Option<(&str, String)>,
    ) {
        if let Some((ev_reason, ev_msg)) = event
            && self.waiting.get(name).map(|w| (&w.reason, &w.message)) != Some((&reason.to_string(), &message))
        {
            self.event(pod, Some(field.to_string()), EventType::Warning, ev_reason, &ev_msg).await;
        }
        self.waiting.insert(name.to_string(), Waiting::new(reason, message));
    }

    /// Resolves, pulls and starts one container.
    async fn start(&mut self, pod: &Pod, sandbox: &SandboxInfo, s: &StartContainer) {
        let Some(c) = container_of(pod, s.kind, s.index).cloned() else { return };
        let field = field_path(s.kind, &c.name);
        let namespace = pod.namespace().unwrap_or_default();
        let pod_ip = sandbox.ip.clone().unwrap_or_default();

        // Volumes, environment, mounts.
        let (mut cms, mut secrets) = env::referenced(&c);
        let (vcms, vsecrets) = volumes::referenced(pod);
        cms.extend(vcms);
        secrets.extend(vsecrets);
        let sources = match self.fetch_sources(&namespace, &cms, &secrets).await {
            Ok(s) => s,
            Err(e) => {
                self.config_error(pod, &field, &c.name, e.to_string()).await;
                return;
            }
        };
        let vols = match volumes::prepare_volumes(pod, &self.ctx.config.root_dir, &sources) {
            Ok(v) => {
                self.volumes_written = Some(std::time::Instant::now());
                v
            }
            Err(e @ volumes::VolumeError::SetUp { .. }) => {
                let reason = "ContainerCreating";
                self.hold(pod, &field, &c.name, reason, String::new(), None).await;
                self.event(pod, None, EventType::Warning, "FailedMount", &e.to_string()).await;
                return;
            }
            Err(e) => {
                self.config_error(pod, &field, &c.name, e.to_string()).await;
                return;
            }
        };
        let env = match env::container_env(pod, &c, &sources, &pod_ip, &self.ctx.facts) {
            Ok(e) => e,
            Err(e) => {
                self.config_error(pod, &field, &c.name, e.to_string()).await;
                return;
            }
        };
        let mut mounts = match volumes::container_mounts(&c, &vols, &env) {
            Ok(m) => m,
            Err(e) => {
                self.config_error(pod, &field, &c.name, e.to_string()).await;
                return;
            }
        };
        let term_log = self.termination_log(&c.name, s.attempt);
        if let Some(dir) = term_log.parent()
            && std::fs::create_dir_all(dir).is_ok()
            && std::fs::write(&term_log, b"").is_ok()
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&term_log, std::fs::Permissions::from_mode(0o666));
            mounts.push(Mount {
                host_path: term_log.clone(),
                container_path: c.termination_message_path.clone().unwrap_or_else(|| "/dev/termination-log".into()),
                read_only: false,
            });
        }

        // Image.
        let image = c.image.clone().unwrap_or_default();
        let policy = PullPolicy::of(c.image_pull_policy.as_deref(), &image);
        let image_key = format!("{}_{image}", self.uid);
        let now = Timestamp::now();
        if let Some((prev, failed_at)) = self.pull_errors.get(&image_key).cloned()
            && self.image_backoff.in_backoff_since(&image_key, failed_at, now)
        {
            let msg = format!("Back-off pulling image \"{image}\": {prev}");
            let ev = format!("Back-off pulling image \"{image}\"");
            if self.waiting.get(&c.name).map(|w| w.reason.as_str()) != Some("ImagePullBackOff") {
                self.event(pod, Some(field.clone()), EventType::Normal, "BackOff", &ev).await;
            }
            self.waiting.insert(c.name.clone(), Waiting::new("ImagePullBackOff", msg));
            return;
        }
        let started = tokio::time::Instant::now();
        let info = match self.ctx.runtime.ensure_image(&image, policy).await {
            Ok(info) => {
                self.pull_errors.remove(&image_key);
                info
            }
            Err(e) => {
                let (reason, text) = match &e {
                    RuntimeError::ImageNeverPull { .. } => ("ErrImageNeverPull", e.to_string()),
                    RuntimeError::InvalidImageName { .. } => ("InvalidImageName", e.to_string()),
                    _ => ("ErrImagePull", e.to_string()),
                };
                if reason == "ErrImagePull" {
                    self.event(
                        pod,
                        Some(field.clone()),
                        EventType::Normal,
                        "Pulling",
                        &format!("Pulling image \"{image}\""),
                    )
                    .await;
                    self.event(
                        pod,
                        Some(field.clone()),
                        EventType::Warning,
                        "Failed",
                        &format!("Failed to pull image \"{image}\": {text}"),
                    )
                    .await;
                }
                self.event(pod, Some(field.clone()), EventType::Warning, "Failed", &format!("Error: {reason}")).await;
                self.pull_errors.insert(image_key.clone(), (text.clone(), now));
                self.image_backoff.next(&image_key, now, now);
                self.waiting.insert(c.name.clone(), Waiting::new(reason, text));
                return;
            }
        };
        if info.pulled {
            let took = started.elapsed().as_secs_f64();
            self.event(pod, Some(field.clone()), EventType::Normal, "Pulling", &format!("Pulling image \"{image}\""))
                .await;
            let msg = format!(
                "Successfully pulled image \"{image}\" in {took:.3}s ({took:.3}s including waiting). Image size: {} bytes.",
                info.size
            );
            self.event(pod, Some(field.clone()), EventType::Normal, "Pulled", &msg).await;
        } else {
            self.event(
                pod,
                Some(field.clone()),
                EventType::Normal,
                "Pulled",
                &format!("Container image \"{image}\" already present on machine"),
            )
            .await;
        }

        let (command, args) = env::expand_command(&c, &env);
        let config = ContainerConfig {
            name: c.name.clone(),
            attempt: s.attempt,
            image: image.clone(),
            image_id: info.image_id.clone(),
            command,
            args,
            working_dir: c.working_dir.clone(),
            env,
            mounts,
            hash: container_hash(&c),
            tty: c.tty == Some(true),
            stdin: c.stdin == Some(true),
            security_context: c.security_context.as_ref().and_then(|s| serde_json::to_value(s).ok()),
            resources: c.resources.as_ref().and_then(|s| serde_json::to_value(s).ok()),
            pod_security_context: pod
                .spec
                .as_ref()
                .and_then(|s| s.security_context.as_ref())
                .and_then(|s| serde_json::to_value(s).ok()),
            log_path: self.pod_dir().join("logs").join(&c.name).join(format!("{}.log", s.attempt)),
        };
        let began = tokio::time::Instant::now();
        match self.ctx.runtime.start_container(sandbox, &config).await {
            Ok(id) => {
                tracing::debug!(pod = %format_pod(pod), container = %c.name, elapsed = ?began.elapsed(), "container started");
                self.waiting.remove(&c.name);
                self.event(
                    pod,
                    Some(field.clone()),
                    EventType::Normal,
                    "Created",
                    &format!("Created container: {}", c.name),
                )
                .await;
                self.event(
                    pod,
                    Some(field.clone()),
                    EventType::Normal,
                    "Started",
                    &format!("Started container {}", c.name),
                )
                .await;
                self.post_start(pod, &c, &field, &id, &pod_ip).await;
            }
            Err(e) => {
                let text = e.to_string();
                self.hold(
                    pod,
                    &field,
                    &c.name,
                    "RunContainerError",
                    text.clone(),
                    Some(("Failed", format!("Error: {text}"))),
                )
                .await;
            }
        }
    }

    /// Runs the `postStart` hook; a failure kills the container (upstream `FailedPostStartHook`).
    async fn post_start(&self, pod: &Pod, c: &Container, field: &str, id: &str, pod_ip: &str) {
        let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) else { return };
        let check = match probe::check_for(HandlerRef::of_hook(hook), c, pod_ip) {
            Ok(check) => check,
            Err(e) => {
                self.event(pod, Some(field.into()), EventType::Warning, "FailedPostStartHook", &e).await;
                return;
            }
        };
        let outcome =
            self.ctx.prober.check(id, &check, Duration::from_secs(termination_grace(pod).max(2) as u64)).await;
        if !outcome.ok {
            self.event(pod, Some(field.into()), EventType::Warning, "FailedPostStartHook", &outcome.message).await;
            let _ =
                self.ctx.runtime.stop_container(id, Duration::from_secs(termination_grace(pod).max(2) as u64)).await;
        }
    }

    /// Stops the pod's running containers (main ones together, then sidecars in reverse order)
    /// with `grace` (default: the pod's `terminationGracePeriodSeconds`), then its sandbox.
    async fn kill_pod(&mut self, pod: &Pod, observed: &ObservedPod, grace: Option<i64>) {
        let grace = grace.unwrap_or_else(|| termination_grace(pod));
        self.stop_containers(pod, observed, grace).await;
        if observed.sandbox.is_some()
            && let Err(e) = self.ctx.runtime.stop_sandbox(&self.uid).await
        {
            tracing::warn!(pod = %format_pod(pod), error = %e, "cannot stop the sandbox");
        }
        self.stop_probes(&HashSet::new());
    }

    /// Stops the pod's running containers: main ones together, then sidecars in reverse order.
    async fn stop_containers(&self, pod: &Pod, observed: &ObservedPod, grace: i64) {
        let running: Vec<&ContainerInfo> = observed.containers.iter().filter(|c| c.is_running()).collect();
        let sidecar_order: Vec<String> = pod
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.as_ref())
            .map(|l| l.iter().filter(|c| is_sidecar(c)).map(|c| c.name.clone()).rev().collect())
            .unwrap_or_default();
        let (sidecars, main): (Vec<&ContainerInfo>, Vec<&ContainerInfo>) =
            running.into_iter().partition(|c| sidecar_order.contains(&c.name));
        let stops = main.iter().map(|c| self.stop_one(pod, c, grace));
        futures::future::join_all(stops).await;
        for name in &sidecar_order {
            for c in sidecars.iter().filter(|c| &c.name == name) {
                self.stop_one(pod, c, grace).await;
            }
        }
    }

    /// `Killing`, the `preStop` hook, then stop with what is left of the grace period (at least 2 s).
    async fn stop_one(&self, pod: &Pod, c: &ContainerInfo, grace: i64) {
        let spec = find_container(pod, &c.name);
        let kind = spec.map_or(ContainerKind::Regular, |(k, _)| k);
        let field = field_path(kind, &c.name);
        self.event(pod, Some(field.clone()), EventType::Normal, "Killing", &format!("Stopping container {}", c.name))
            .await;
        let total = Duration::from_secs(grace.max(0) as u64);
        let mut left = total;
        if let Some((_, cs)) = spec
            && let Some(hook) = cs.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref())
        {
            let pod_ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default();
            let started = tokio::time::Instant::now();
            match probe::check_for(HandlerRef::of_hook(hook), cs, &pod_ip) {
                Ok(check) => {
                    let outcome = tokio::time::timeout(total, self.ctx.prober.check(&c.id, &check, total)).await;
                    if let Ok(o) = outcome
                        && !o.ok
                    {
                        self.event(pod, Some(field.clone()), EventType::Warning, "FailedPreStopHook", &o.message).await;
                    }
                }
                Err(e) => tracing::debug!(error = %e, "bad preStop hook"),
            }
            // The hook's time comes out of the grace period.
            left = total.saturating_sub(started.elapsed());
        }
        let left = left.max(Duration::from_secs(2));
        if let Err(e) = self.ctx.runtime.stop_container(&c.id, left).await {
            tracing::warn!(container = %c.id, error = %e, "cannot stop container");
        }
    }

    /// Graceful deletion: stop everything, write the final status, confirm with a DELETE
    /// (`gracePeriodSeconds=0`, UID precondition), clean up.
    async fn terminate(&mut self, pod: &Pod, observed: ObservedPod) -> Sync {
        let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or_else(|| termination_grace(pod));
        self.kill_pod(pod, &observed, Some(grace)).await;
        if let Ok(after) = self.observe(Some(pod)).await {
            let status = pod_status(pod, &after, &ProbeResults::default(), Timestamp::now());
            self.write_status(pod, serde_json::to_value(&status).unwrap_or(Value::Null)).await;
        }
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &pod.namespace().unwrap_or_default());
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions { uid: Some(self.uid.clone()), resource_version: None }),
            ..DeleteParams::default()
        };
        match api.delete(&pod.name_any(), &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => {
                tracing::warn!(pod = %format_pod(pod), error = %e, "cannot confirm the deletion; retrying");
                return Sync::Continue;
            }
        }
        kill_runtime_pod(&self.ctx, &self.uid).await;
        Sync::Done
    }

    /// The pod object is gone (or moved): kill what still runs.
    async fn gone(&mut self) {
        self.stop_probes(&HashSet::new());
        if let Some(pod) = self.last_pod.clone()
            && let Ok(observed) = self.observe(Some(&pod)).await
        {
            self.kill_pod(&pod, &observed, None).await;
        }
        kill_runtime_pod(&self.ctx, &self.uid).await;
    }

    /// Starts a probe worker for every probe of a running container that has none; stops the
    /// workers of containers that stopped.
    fn manage_probes(&mut self, pod: &Pod, observed: &ObservedPod) {
        let pod_ip = observed.sandbox.as_ref().and_then(|s| s.ip.clone()).unwrap_or_default();
        let mut live = HashSet::new();
        let spec = pod.spec.clone().unwrap_or_default();
        let sidecars = spec.init_containers.iter().flatten().filter(|c| is_sidecar(c));
        for c in sidecars.chain(spec.containers.iter()) {
            let Some(info) = observed.latest(&c.name).filter(|i| i.is_running()) else { continue };
            let ContainerState::Running { started_at } = info.state else { continue };
            for kind in [ProbeKind::Startup, ProbeKind::Liveness, ProbeKind::Readiness] {
                let Some(p) = kind.of(c) else { continue };
                let key = (info.id.clone(), kind);
                live.insert(key.clone());
                if self.probe_tasks.contains_key(&key) {
                    continue;
                }
                let check: Check = match probe::check_for(HandlerRef::of_probe(p), c, &pod_ip) {
                    Ok(check) => check,
                    Err(e) => {
                        tracing::warn!(container = %c.name, error = %e, "bad probe");
                        continue;
                    }
                };
                let w = Worker {
                    kind,
                    container_id: info.id.clone(),
                    container: c.name.clone(),
                    check,
                    timing: Timing::of(p),
                    running_for: since(started_at),
                    has_startup_probe: c.startup_probe.is_some(),
                };
                let task = tokio::spawn(probe::run_worker(w, self.ctx.prober.clone(), self.sink.clone()));
                self.probe_tasks.insert(key, task.abort_handle());
            }
        }
        self.stop_probes(&live);
    }

    /// Stops the probe workers not in `keep` and forgets their results.
    fn stop_probes(&mut self, keep: &HashSet<(String, ProbeKind)>) {
        self.probe_tasks.retain(|k, h| {
            let kept = keep.contains(k);
            if !kept {
                h.abort();
            }
            kept
        });
        let ids: HashSet<String> = keep.iter().map(|(id, _)| id.clone()).collect();
        self.sink.results.lock().retain_containers(&|id| ids.contains(id));
    }

    /// `Unhealthy` events for failed checks since the last sync.
    async fn report_probe_failures(&self, pod: &Pod) {
        let failures: Vec<probe::ResultChange> = std::mem::take(&mut *self.sink.failures.lock());
        for f in failures {
            let kind = find_container(pod, &f.container).map_or(ContainerKind::Regular, |(k, _)| k);
            let msg = format!("{} probe failed: {}", f.kind.title(), f.message);
            self.event(pod, Some(field_path(kind, &f.container)), EventType::Warning, "Unhealthy", &msg).await;
        }
    }

    /// Removes exited instances beyond the two newest per container.
    async fn gc_instances(&self, observed: &ObservedPod) {
        let names: HashSet<&str> = observed.containers.iter().map(|c| c.name.as_str()).collect();
        for name in names {
            for old in observed.instances(name).into_iter().skip(2).filter(|c| c.is_exited()) {
                let _ = self.ctx.runtime.remove_container(&old.id).await;
            }
        }
    }

    /// Patches `pods/status` when the status differs from what the API has and from what was
    /// last written.
    async fn write_status(&mut self, pod: &Pod, status: Value) {
        let current = pod.status.as_ref().and_then(|s| serde_json::to_value(s).ok()).unwrap_or(Value::Null);
        if status == current || self.last_status.as_ref() == Some(&status) {
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &pod.namespace().unwrap_or_default());
        let pp = PatchParams { field_manager: Some("kubelet".into()), ..PatchParams::default() };
        let began = tokio::time::Instant::now();
        match api.patch_status(&pod.name_any(), &pp, &Patch::Merge(json!({"status": status}))).await {
            Ok(_) => {
                tracing::debug!(pod = %format_pod(pod), phase = ?status["phase"], elapsed = ?began.elapsed(), "status written");
                self.last_status = Some(status)
            }
            Err(e) => tracing::warn!(pod = %format_pod(pod), error = %e, "cannot write pod status"),
        }
    }
}

/// `spec.terminationGracePeriodSeconds` (default 30).
/// Whether the pod's phase is final (`Succeeded` or `Failed`).
fn is_terminal(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

fn termination_grace(pod: &Pod) -> i64 {
    pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30)
}
