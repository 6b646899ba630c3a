//! [`RuncRuntime`]: the [`ContainerRuntime`] over `skiff-runtime` (image store, pod sandboxes on a
//! CNI bridge, containers driven through runc).
//!
//! The runtime keeps an in-memory registry keyed by pod UID: the pod's [`Sandbox`] and its
//! container instances (name, attempt, spec hash, the runc [`Container`] handle). Observed state
//! (`list_sandboxes`, `list_containers`) is derived from it and from each container's own exit
//! observation.
//!
//! Restart safety: the sandbox and container records `skiff-runtime` keeps on disk carry what the
//! registry needs (pod identity and IP; the container's attempt, image, image ID and spec hash as
//! its metadata), so [`RuncRuntime::new`] rebuilds the registry from them: running containers are
//! adopted with the same ID and process (the agent's relist then sees an unchanged pod, so no
//! restart is counted), containers that exited meanwhile are reported exited with containerd's
//! unknown status (`255`, reason `Unknown`), and the agent's start-up sweep removes the pods the
//! API no longer has.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::jiff::Timestamp;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use skiff_runtime::cni::{self, Network, NetworkConfig};
use skiff_runtime::runc::Launch;
use skiff_runtime::{
    BindMount, Container, ContainerStatus, ExitInfo, Image, ImageError, ImageStore, PullOptions, Runtime,
    RuntimeConfig, Sandbox, StoreConfig,
};
use skiff_runtime::{masquerade, spread};
use tokio::sync::broadcast;

use crate::runtime::{
    ContainerConfig, ContainerInfo, ContainerRuntime, ContainerState, ExecOutput, ExecRequest, ExecSession, ImageInfo,
    PullPolicy, RuntimeError, SandboxConfig, SandboxInfo, TerminalSize,
};

/// Where and how the runtime runs pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuncConfig {
    /// The agent's data directory; the runtime uses `images/`, `containers/`, `runc/`,
    /// `sandboxes/` and `cni/` under it.
    pub data_dir: PathBuf,
    /// The Linux bridge pods attach to.
    pub bridge: String,
    /// This node's pod subnet.
    pub pod_cidr: String,
    /// The cluster's pod range (blackholed on the host).
    pub cluster_cidr: String,
    /// The runc binary.
    pub runc_binary: PathBuf,
    /// Masquerade traffic from pods to outside the cluster range (one node-level rule set,
    /// see `skiff_runtime::masquerade`).
    pub ip_masq: bool,
    /// Registries (`host:port`) pulled from over plain HTTP (`--insecure-registry`); loopback
    /// registries always are.
    pub insecure_registries: Vec<String>,
    /// Mirrors per registry, tried in order before it (`--registry-mirror`).
    pub registry_mirrors: BTreeMap<String, Vec<String>>,
}

impl RuncConfig {
    /// Defaults: bridge `skiff0`, pod subnet `10.42.0.0/24`, cluster CIDR `10.42.0.0/16`, `runc`
    /// from `PATH`, masquerading on.
    pub fn new(data_dir: PathBuf) -> RuncConfig {
        RuncConfig {
            data_dir,
            bridge: "skiff0".into(),
            pod_cidr: "10.42.0.0/24".into(),
            cluster_cidr: "10.42.0.0/16".into(),
            runc_binary: "runc".into(),
            ip_masq: true,
            insecure_registries: Vec::new(),
            registry_mirrors: BTreeMap::new(),
        }
    }

    /// The image store's settings.
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig { insecure_registries: self.insecure_registries.clone(), mirrors: self.registry_mirrors.clone() }
    }

    /// The image store's directory (tests import images there before starting the agent).
    pub fn image_dir(&self) -> PathBuf {
        self.data_dir.join("images")
    }

    fn network(&self) -> NetworkConfig {
        NetworkConfig {
            name: format!("skiff-{}", self.bridge),
            bridge: self.bridge.clone(),
            subnet: self.pod_cidr.clone(),
            cluster_cidr: self.cluster_cidr.clone(),
            ipam_data_dir: self.data_dir.join("cni/networks"),
            cache_dir: self.data_dir.join("cni/results"),
            ..NetworkConfig::default()
        }
    }
}

/// One container instance the runtime started.
struct Instance {
    info: ContainerInfo,
    started_at: Option<Timestamp>,
    container: Arc<Container>,
}

/// One pod: its sandbox and container instances (by container ID).
struct Pod {
    sandbox: Arc<Sandbox>,
    info: SandboxInfo,
    containers: HashMap<String, Instance>,
}

/// How many exit events may wait for the agent before the oldest are dropped (the agent's relist
/// still sees those exits).
const EXIT_EVENTS: usize = 1024;

/// An exited container kept after its sandbox was torn down, as the kubelet keeps dead
/// containers: its final state stays in the pod's status and `kubectl logs` still reads it.
#[derive(Clone)]
struct Finished {
    info: ContainerInfo,
    log_path: PathBuf,
}

/// The real container runtime.
pub struct RuncRuntime {
    config: RuncConfig,
    images: ImageStore,
    runtime: Runtime,
    /// The pod network; replaced by [`RuncRuntime::set_pod_cidr`] (a range node IPAM gave).
    network: Mutex<Network>,
    pods: Mutex<HashMap<String, Pod>>,
    /// Exited containers of torn-down sandboxes, by pod UID, until the pod is forgotten (a second
    /// `stop_sandbox`, or `remove_container` of each).
    finished: Mutex<HashMap<String, Vec<Finished>>>,
    /// One lock per pod whose sandbox is being created, so two calls for one pod cannot both
    /// create it (same directory) while different pods' sandboxes are created in parallel.
    creating: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Pod UIDs whose container exited ([`ContainerRuntime::exits`]).
    exits: broadcast::Sender<String>,
}

fn failed(op: &'static str) -> impl FnOnce(String) -> RuntimeError {
    move |message| RuntimeError::Failed { op, message }
}

impl RuncRuntime {
    /// Opens the image store, prepares the runtime's directories and makes sure the blackhole route
    /// for the cluster CIDR exists.
    pub async fn new(config: RuncConfig) -> Result<RuncRuntime, RuntimeError> {
        let images = ImageStore::open(config.image_dir(), config.store_config())
            .map_err(|e| failed("open image store")(e.to_string()))?;
        // One subdirectory per pod in each: spread over the file system (the runtime does the
        // same for its containers' directories).
        for dir in ["sandboxes", "pods"].map(|d| config.data_dir.join(d)) {
            let marked =
                spread::create(&dir).map_err(|e| failed("create directory")(format!("{}: {e}", dir.display())))?;
            tracing::debug!(dir = %dir.display(), marked, "per-pod directory");
        }
        let runtime = Runtime::new(
            RuntimeConfig {
                state_dir: config.data_dir.join("containers"),
                runc_root: config.data_dir.join("runc"),
                runc_binary: config.runc_binary.clone(),
            },
            images.clone(),
        )
        .map_err(|e| failed("start runtime")(e.to_string()))?;
        cni::ensure_blackhole_route(&config.cluster_cidr)
            .await
            .map_err(|e| failed("blackhole route")(e.to_string()))?;
        if config.ip_masq {
            masquerade::ensure(&config.bridge, &config.pod_cidr, &config.cluster_cidr)
                .await
                .map_err(|e| failed("masquerade")(e.to_string()))?;
        }
        let network = Network::new(config.network());
        let rt = RuncRuntime {
            config,
            images,
            runtime,
            network: Mutex::new(network),
            pods: Mutex::new(HashMap::new()),
            finished: Mutex::new(HashMap::new()),
            creating: Mutex::new(HashMap::new()),
            exits: broadcast::channel(EXIT_EVENTS).0,
        };
        rt.recover().await;
        Ok(rt)
    }

    /// Rebuilds the registry from the records a previous agent process left (see the module
    /// docs). Containers whose sandbox is gone are stopped and removed.
    async fn recover(&self) {
        let sandboxes = Sandbox::recover(&self.config.data_dir.join("sandboxes"), &self.network()).await;
        let containers = self.runtime.recover().await;
        let mut pods: HashMap<String, Pod> = HashMap::new();
        for sb in sandboxes {
            let info = SandboxInfo {
                id: sb.pod_uid.clone(),
                pod_uid: sb.pod_uid.clone(),
                name: sb.pod_name.clone(),
                namespace: sb.namespace.clone(),
                ip: Some(sb.ip.to_string()),
                ready: sb.is_intact(),
                created_at: sb.created_at,
            };
            pods.insert(sb.pod_uid.clone(), Pod { sandbox: Arc::new(sb), info, containers: HashMap::new() });
        }
        let mut orphans = Vec::new();
        for c in containers {
            let Some(pod) = pods.get_mut(&c.pod_uid) else {
                orphans.push(c);
                continue;
            };
            let started_at = skiff_runtime::state::parse_time(c.record().started_at.as_deref());
            let info = adopted_info(&c);
            self.report_exit(&c);
            pod.containers.insert(c.id.clone(), Instance { info, started_at, container: Arc::new(c) });
        }
        for c in orphans {
            tracing::info!(container = %c.id, "removing a container whose sandbox is gone");
            c.stop(Duration::from_secs(2)).await;
            if let Err(e) = c.remove().await {
                tracing::warn!(error = %e, "cannot remove an orphaned container");
            }
        }
        let adopted: usize = pods.values().map(|p| p.containers.len()).sum();
        if !pods.is_empty() {
            tracing::info!(pods = pods.len(), containers = adopted, "adopted the pods of a previous agent process");
        }
        self.pods.lock().extend(pods);
    }

    /// Creates the pod's sandbox unless it exists (the caller holds the pod's creation lock).
    async fn create_sandbox(&self, config: &SandboxConfig) -> Result<SandboxInfo, RuntimeError> {
        if let Some(existing) = self.pods.lock().get(&config.pod_uid) {
            return Ok(existing.info.clone());
        }
        if config.host_network {
            return Err(failed("run sandbox")("hostNetwork pods are not supported yet".into()));
        }
        let sb_config = skiff_runtime::SandboxConfig {
            pod_uid: config.pod_uid.clone(),
            pod_name: config.name.clone(),
            namespace: config.namespace.clone(),
            hostname: config.hostname.clone(),
            host_aliases: config.host_aliases.iter().map(|(ip, names)| format!("{ip}\t{}", names.join("\t"))).collect(),
            port_mappings: config
                .port_mappings
                .iter()
                .map(|m| cni::PortMapping {
                    host_port: m.host_port,
                    container_port: m.container_port,
                    protocol: m.protocol.clone(),
                    host_ip: m.host_ip.clone(),
                })
                .collect(),
            ..Default::default()
        };
        let sandbox = Sandbox::create(&sb_config, &self.config.data_dir.join("sandboxes"), &self.network())
            .await
            .map_err(|e| failed("run sandbox")(e.to_string()))?;
        let info = SandboxInfo {
            id: config.pod_uid.clone(),
            pod_uid: config.pod_uid.clone(),
            name: config.name.clone(),
            namespace: config.namespace.clone(),
            ip: Some(sandbox.ip.to_string()),
            ready: true,
            created_at: Timestamp::now(),
        };
        self.pods.lock().insert(
            config.pod_uid.clone(),
            Pod { sandbox: Arc::new(sandbox), info: info.clone(), containers: HashMap::new() },
        );
        Ok(info)
    }

    /// Sends the container's pod UID on [`ContainerRuntime::exits`] when it exits.
    fn report_exit(&self, container: &Container) {
        let (exited, exits, uid) = (container.exited(), self.exits.clone(), container.pod_uid.clone());
        tokio::spawn(async move {
            exited.await;
            // No receiver (no agent listening yet) is fine: the relist still sees the exit.
            let _ = exits.send(uid);
        });
    }

    /// Uses `cidr` as this node's pod subnet for sandboxes created from now on (the agent calls it
    /// with the range node IPAM gave its Node, before running pods).
    pub fn set_pod_cidr(&self, cidr: &str) {
        let config = NetworkConfig { subnet: cidr.to_string(), ..self.config.network() };
        *self.network.lock() = Network::new(config);
        if self.config.ip_masq {
            let (bridge, subnet, cluster) =
                (self.config.bridge.clone(), cidr.to_string(), self.config.cluster_cidr.clone());
            tokio::spawn(async move {
                if let Err(e) = masquerade::ensure(&bridge, &subnet, &cluster).await {
                    tracing::warn!(error = %e, "cannot set up masquerading for the pod network");
                }
            });
        }
    }

    /// The current pod network.
    fn network(&self) -> Network {
        self.network.lock().clone()
    }

    /// The container instances of the pod's live sandbox, with their current states.
    fn list_live(&self, pod_uid: &str) -> Vec<ContainerInfo> {
        let pods = self.pods.lock();
        let Some(pod) = pods.get(pod_uid) else { return Vec::new() };
        pod.containers
            .values()
            .map(|i| {
                let state = match i.container.status() {
                    ContainerStatus::Created => ContainerState::Created,
                    ContainerStatus::Running { started_at } => ContainerState::Running { started_at },
                    ContainerStatus::Exited(exit) => exited(&exit, i.started_at),
                };
                ContainerInfo { state, ..i.info.clone() }
            })
            .collect()
    }

    fn find(&self, id: &str) -> Option<(String, Arc<Container>)> {
        let pods = self.pods.lock();
        pods.iter().find_map(|(uid, p)| p.containers.get(id).map(|i| (uid.clone(), i.container.clone())))
    }

    /// The image, present or pulled per `policy`; `bool`: pulled now.
    async fn image(&self, image: &str, policy: PullPolicy) -> Result<(Image, bool), RuntimeError> {
        let present = match self.images.get(image) {
            Ok(found) => Some(found),
            Err(ImageError::NotFound(_)) => None,
            Err(ImageError::Reference(e)) => {
                return Err(RuntimeError::InvalidImageName { image: image.into(), message: e.to_string() });
            }
            Err(e) => return Err(failed("read image")(e.to_string())),
        };
        match (policy, present) {
            (PullPolicy::Never, None) => Err(RuntimeError::ImageNeverPull { image: image.into() }),
            (PullPolicy::Never | PullPolicy::IfNotPresent, Some(found)) => Ok((found, false)),
            _ => match self.images.pull(image, PullOptions::default()).await {
                Ok(pulled) => Ok((pulled, true)),
                Err(ImageError::Reference(e)) => {
                    Err(RuntimeError::InvalidImageName { image: image.into(), message: e.to_string() })
                }
                Err(e) => Err(RuntimeError::ImagePull {
                    image: image.into(),
                    message: format!("failed to pull and unpack image \"{image}\": {e}"),
                }),
            },
        }
    }
}

/// What the runtime records with each container for the agent (the [`ContainerInfo`] fields
/// the runtime itself does not know).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct InstanceMeta {
    attempt: u32,
    image: String,
    image_id: String,
    hash: u64,
}

/// The agent's view of an adopted container, from its record (state filled in when listed).
fn adopted_info(c: &Container) -> ContainerInfo {
    let meta: InstanceMeta = serde_json::from_value(c.metadata.clone()).unwrap_or_default();
    ContainerInfo {
        id: c.id.clone(),
        pod_uid: c.pod_uid.clone(),
        name: c.name.clone(),
        attempt: meta.attempt,
        image: meta.image,
        image_id: meta.image_id,
        hash: meta.hash,
        created_at: c.created_at,
        state: ContainerState::Created,
    }
}

/// `--registry-mirror` values, parsed ([`parse_registry_mirrors`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryMirrors {
    /// Mirrors per registry, in the order given.
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// The mirrors given as `http://`: spoken to in plain HTTP.
    pub plain_http: Vec<String>,
}

/// A `--registry-mirror` value that is not `REGISTRY=MIRROR[,MIRROR...]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("registry mirror {value:?}: {problem}")]
pub struct MirrorError {
    pub value: String,
    pub problem: String,
}

/// Parses `--registry-mirror` values, `registry=mirror[,mirror...]` (e.g.
/// `docker.io=http://127.0.0.1:5000`), into mirrors per registry (in order, values for one
/// registry accumulating) and the mirrors to speak plain HTTP to (those given as `http://`).
/// A mirror is a `host[:port]`; an `https://` scheme and a trailing `/` are dropped.
pub fn parse_registry_mirrors(values: &[String]) -> Result<RegistryMirrors, MirrorError> {
    let mut mirrors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut insecure = Vec::new();
    for value in values {
        let err = |problem: String| MirrorError { value: value.clone(), problem };
        let Some((registry, list)) = value.split_once('=') else {
            return Err(err("not REGISTRY=MIRROR[,MIRROR...]".into()));
        };
        let registry = registry.trim();
        if registry.is_empty() || registry.contains('/') {
            return Err(err(format!("{registry:?} is not a registry host")));
        }
        for mirror in list.split(',').map(str::trim) {
            let (host, plain) = match mirror.strip_prefix("http://") {
                Some(rest) => (rest, true),
                None => (mirror.strip_prefix("https://").unwrap_or(mirror), false),
            };
            let host = host.trim_end_matches('/');
            if host.is_empty() || host.contains('/') || host.contains("://") {
                return Err(err(format!("{mirror:?} is not a host[:port]")));
            }
            if plain && !insecure.iter().any(|h| h == host) {
                insecure.push(host.to_string());
            }
            mirrors.entry(registry.to_string()).or_default().push(host.to_string());
        }
    }
    Ok(RegistryMirrors { mirrors, plain_http: insecure })
}

/// `repo@sha256:…` from a normalized reference and a manifest digest.
pub fn image_id(reference: &str, digest: &str) -> String {
    let repo = reference.split('@').next().unwrap_or(reference);
    let (head, last) = repo.rsplit_once('/').unwrap_or(("", repo));
    let last = last.split(':').next().unwrap_or(last);
    if head.is_empty() { format!("{last}@{digest}") } else { format!("{head}/{last}@{digest}") }
}

/// The trait's exit state from the runtime's observation.
pub fn exited(exit: &ExitInfo, started_at: Option<Timestamp>) -> ContainerState {
    ContainerState::Exited {
        exit_code: exit.code(),
        reason: Some(exit.reason().to_string()),
        message: None,
        started_at,
        finished_at: exit.finished_at,
        oom: exit.oom_killed,
    }
}

fn field<'a>(contexts: &[Option<&'a Value>], key: &str) -> Option<&'a Value> {
    contexts.iter().flatten().find_map(|c| c.get(key))
}

fn quantity(v: Option<&Value>) -> Option<f64> {
    skiff_api::validation::parse_quantity(v?.as_str()?).ok()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// The runtime's container config from the agent's: command/args, env, mounts, the security
/// context (container fields override the pod's) and resource limits.
pub fn runtime_config(config: &ContainerConfig) -> skiff_runtime::ContainerConfig {
    let sc = config.security_context.as_ref();
    let psc = config.pod_security_context.as_ref();
    let both = [sc, psc];
    let id = |key| field(&both, key).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok());
    let flag = |key| sc.and_then(|c| c.get(key)).and_then(Value::as_bool);
    let caps = sc.and_then(|c| c.get("capabilities"));
    let res = config.resources.as_ref();
    let limits = res.and_then(|r| r.get("limits"));
    let requests = res.and_then(|r| r.get("requests"));
    skiff_runtime::ContainerConfig {
        name: config.name.clone(),
        command: config.command.clone().unwrap_or_default(),
        args: config.args.clone().unwrap_or_default(),
        env: config.env.clone(),
        working_dir: config.working_dir.clone().filter(|w| !w.is_empty()),
        run_as_user: id("runAsUser"),
        run_as_group: id("runAsGroup"),
        // The pod's supplementalGroups, then its fsGroup, as the kubelet hands them to the runtime.
        supplemental_groups: psc
            .and_then(|p| p.get("supplementalGroups"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .chain(psc.and_then(|p| p.get("fsGroup")))
            .filter_map(Value::as_u64)
            .filter_map(|n| u32::try_from(n).ok())
            .collect(),
        readonly_rootfs: flag("readOnlyRootFilesystem").unwrap_or(false),
        privileged: flag("privileged").unwrap_or(false),
        no_new_privileges: flag("allowPrivilegeEscalation") == Some(false),
        capabilities_add: strings(caps.and_then(|c| c.get("add"))),
        capabilities_drop: strings(caps.and_then(|c| c.get("drop"))),
        memory_limit_bytes: quantity(limits.and_then(|l| l.get("memory"))).map(|b| b.ceil() as i64),
        cpu_limit_millis: quantity(limits.and_then(|l| l.get("cpu"))).map(|c| (c * 1000.0).ceil() as i64),
        cpu_request_millis: quantity(requests.and_then(|l| l.get("cpu"))).map(|c| (c * 1000.0).ceil() as i64),
        mounts: config
            .mounts
            .iter()
            .map(|m| BindMount {
                source: m.host_path.clone(),
                destination: m.container_path.clone(),
                readonly: m.read_only,
            })
            .collect(),
        sysctls: psc
            .and_then(|p| p.get("sysctls"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| {
                Some((crate::sysctl::normalize(s.get("name")?.as_str()?), s.get("value")?.as_str()?.to_string()))
            })
            .collect(),
    }
}

#[async_trait]
impl ContainerRuntime for RuncRuntime {
    async fn ensure_image(&self, image: &str, policy: PullPolicy) -> Result<ImageInfo, RuntimeError> {
        let (found, pulled) = self.image(image, policy).await?;
        Ok(ImageInfo {
            image: image.into(),
            image_id: image_id(&found.reference, &found.digest),
            size: found.size(),
            pulled,
        })
    }

    async fn run_sandbox(&self, config: &SandboxConfig) -> Result<SandboxInfo, RuntimeError> {
        let lock = self.creating.lock().entry(config.pod_uid.clone()).or_default().clone();
        let result = {
            let _creating = lock.lock().await;
            self.create_sandbox(config).await
        };
        let mut creating = self.creating.lock();
        // The last caller for this pod forgets its lock (the map holds one reference).
        if Arc::strong_count(&lock) == 2 {
            creating.remove(&config.pod_uid);
        }
        result
    }

    async fn sandbox(&self, pod_uid: &str) -> Result<Option<SandboxInfo>, RuntimeError> {
        Ok(self.pods.lock().get(pod_uid).map(|p| p.info.clone()))
    }

    async fn list_sandboxes(&self) -> Result<Vec<SandboxInfo>, RuntimeError> {
        Ok(self.pods.lock().values().map(|p| p.info.clone()).collect())
    }

    async fn stop_sandbox(&self, pod_uid: &str) -> Result<(), RuntimeError> {
        let ids: Vec<String> = match self.pods.lock().get(pod_uid) {
            Some(p) => p.containers.keys().cloned().collect(),
            None => {
                // Already torn down: forget its exited containers too.
                self.finished.lock().remove(pod_uid);
                return Ok(());
            }
        };
        for id in &ids {
            self.stop_container(id, Duration::from_secs(2)).await?;
        }
        let exited: Vec<Finished> = self
            .list_live(pod_uid)
            .into_iter()
            .map(|info| Finished { log_path: self.log_path(&info.id), info })
            .collect();
        // Recorded as finished before they are removed, so a listing (the status, `kubectl logs`)
        // between the two still sees every container.
        self.finished.lock().entry(pod_uid.to_string()).or_default().extend(exited);
        for id in &ids {
            self.remove_container(id).await?;
        }
        let Some(pod) = self.pods.lock().remove(pod_uid) else { return Ok(()) };
        pod.sandbox.destroy(&self.network()).await.map_err(|e| failed("stop sandbox")(e.to_string()))
    }

    async fn start_container(&self, sandbox: &SandboxInfo, config: &ContainerConfig) -> Result<String, RuntimeError> {
        let Some(sb) = self.pods.lock().get(&sandbox.pod_uid).map(|p| p.sandbox.clone()) else {
            return Err(RuntimeError::NotFound { kind: "sandbox", id: sandbox.id.clone() });
        };
        let (image, _) = self.image(&config.image, PullPolicy::Never).await?;
        let meta = InstanceMeta {
            attempt: config.attempt,
            image: config.image.clone(),
            image_id: image_id(&image.reference, &image.digest),
            hash: config.hash,
        };
        let container = self
            .runtime
            .launch(
                Launch::Run,
                &sb,
                &runtime_config(config),
                &image,
                &config.log_path,
                serde_json::to_value(&meta).unwrap_or_default(),
            )
            .await
            .map_err(|e| failed("start container")(e.to_string()))?;
        let started_at = match container.status() {
            ContainerStatus::Running { started_at } => Some(started_at),
            _ => None,
        };
        let id = container.id.clone();
        let info = ContainerInfo {
            id: id.clone(),
            pod_uid: sandbox.pod_uid.clone(),
            name: config.name.clone(),
            attempt: config.attempt,
            image: config.image.clone(),
            image_id: image_id(&image.reference, &image.digest),
            hash: config.hash,
            created_at: Timestamp::now(),
            state: ContainerState::Created,
        };
        self.report_exit(&container);
        let container = Arc::new(container);
        let mut pods = self.pods.lock();
        match pods.get_mut(&sandbox.pod_uid) {
            Some(pod) => {
                pod.containers.insert(id.clone(), Instance { info, started_at, container });
                Ok(id)
            }
            None => Err(RuntimeError::NotFound { kind: "sandbox", id: sandbox.id.clone() }),
        }
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let Some((_, container)) = self.find(id) else {
            return Err(RuntimeError::NotFound { kind: "container", id: id.into() });
        };
        container.stop(grace).await;
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        let instance = {
            let mut pods = self.pods.lock();
            pods.values_mut().find_map(|p| p.containers.remove(id))
        };
        let Some(instance) = instance else {
            for list in self.finished.lock().values_mut() {
                list.retain(|f| f.info.id != id);
            }
            return Ok(());
        };
        match Arc::try_unwrap(instance.container) {
            Ok(container) => container.remove().await.map_err(|e| failed("remove container")(e.to_string())),
            Err(shared) => {
                // Still in use (a concurrent stop or exec): put it back for a later retry.
                let uid = instance.info.pod_uid.clone();
                if let Some(pod) = self.pods.lock().get_mut(&uid) {
                    pod.containers.insert(id.into(), Instance { container: shared, ..instance });
                }
                Err(failed("remove container")(format!("container {id} is busy")))
            }
        }
    }

    async fn list_containers(&self, pod_uid: &str) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let mut all = self.list_live(pod_uid);
        if let Some(finished) = self.finished.lock().get(pod_uid) {
            // A container being removed is in both lists for a moment: the live entry counts.
            let live: HashSet<String> = all.iter().map(|c| c.id.clone()).collect();
            all.extend(finished.iter().filter(|f| !live.contains(&f.info.id)).map(|f| f.info.clone()));
        }
        Ok(all)
    }

    fn log_path(&self, id: &str) -> PathBuf {
        if let Some((_, c)) = self.find(id) {
            return c.log_path.clone();
        }
        let finished = self.finished.lock();
        match finished.values().flatten().find(|f| f.info.id == id) {
            Some(f) => f.log_path.clone(),
            None => self.config.data_dir.join("containers").join(format!("{id}.log")),
        }
    }

    async fn exec(&self, id: &str, cmd: &[String], timeout: Duration) -> Result<ExecOutput, RuntimeError> {
        if self.find(id).is_none() {
            return Err(RuntimeError::NotFound { kind: "container", id: id.into() });
        }
        let runc = self.runtime.runc();
        let child = tokio::process::Command::new(runc.program())
            .arg("--root")
            .arg(runc.root())
            .arg("exec")
            .arg(id)
            .args(cmd)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed("exec")(e.to_string()))?;
        match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Err(_) => Err(RuntimeError::Timeout(timeout)),
            Ok(Err(e)) => Err(failed("exec")(e.to_string())),
            Ok(Ok(out)) => {
                Ok(ExecOutput { exit_code: out.status.code().unwrap_or(-1), stdout: out.stdout, stderr: out.stderr })
            }
        }
    }

    async fn exec_stream(&self, id: &str, request: &ExecRequest) -> Result<ExecSession, RuntimeError> {
        if self.find(id).is_none() {
            return Err(RuntimeError::NotFound { kind: "container", id: id.into() });
        }
        let spec = skiff_runtime::ExecSpec {
            args: request.command.clone(),
            tty: request.tty,
            stdin: request.stdin,
            ..Default::default()
        };
        let mut process =
            skiff_runtime::exec(self.runtime.runc(), id, spec).await.map_err(|e| failed("exec")(e.to_string()))?;
        let resize = process.terminal().map(|terminal| {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<TerminalSize>();
            // Ends when the session drops its sender.
            tokio::spawn(async move {
                while let Some(size) = rx.recv().await {
                    if let Err(e) = terminal.resize(size.width, size.height) {
                        tracing::debug!(error = %e, "exec: resizing the terminal");
                    }
                }
            });
            tx
        });
        let waiter = process.exit_waiter();
        // The streams keep the process alive; the ExecProcess itself is dropped at the end of
        // this function, so dropping the session's stdin and outputs kills it.
        Ok(ExecSession {
            stdin: process.stdin.take().map(|w| Box::new(w) as _),
            stdout: process.stdout.take().map(|r| Box::new(r) as _),
            stderr: process.stderr.take().map(|r| Box::new(r) as _),
            resize,
            exit: Box::pin(async move { waiter.wait().await.map_err(|e| failed("exec")(e.to_string())) }),
        })
    }

    async fn port_forward(&self, pod_uid: &str, port: u16) -> Result<tokio::net::TcpStream, RuntimeError> {
        let (netns, id) = self
            .pods
            .lock()
            .get(pod_uid)
            .map(|p| (p.sandbox.namespaces.net.clone(), p.info.id.clone()))
            .ok_or_else(|| RuntimeError::NotFound { kind: "sandbox", id: pod_uid.into() })?;
        crate::netns::connect_loopback(&netns, port)
            .await
            .map_err(|e| RuntimeError::PortForward(crate::netns::dial_error(&id, port, &e)))
    }

    fn exits(&self) -> Option<broadcast::Receiver<String>> {
        Some(self.exits.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn image_ids_drop_the_tag() {
        let cases = [
            ("docker.io/library/nginx:1.27", "docker.io/library/nginx@sha256:ab"),
            ("localhost:5000/app:v1", "localhost:5000/app@sha256:ab"),
            ("localhost:5000/app", "localhost:5000/app@sha256:ab"),
            ("docker.io/library/nginx@sha256:00", "docker.io/library/nginx@sha256:ab"),
            ("busybox", "busybox@sha256:ab"),
        ];
        for (reference, want) in cases {
            assert_eq!(image_id(reference, "sha256:ab"), want, "{reference}");
        }
    }

    #[test]
    fn exit_info_maps_to_exited() {
        let t = Timestamp::UNIX_EPOCH;
        let cases = [
            (Some(0), false, 0, "Completed"),
            (Some(1), false, 1, "Error"),
            (Some(137), true, 137, "OOMKilled"),
            (None, false, 255, "Unknown"),
            (None, true, 137, "OOMKilled"),
        ];
        for (code, oom, want_code, want_reason) in cases {
            let exit = ExitInfo { exit_code: code, signal: None, oom_killed: oom, finished_at: t };
            assert_eq!(
                exited(&exit, Some(t)),
                ContainerState::Exited {
                    exit_code: want_code,
                    reason: Some(want_reason.into()),
                    message: None,
                    started_at: Some(t),
                    finished_at: t,
                    oom,
                }
            );
        }
    }

    #[test]
    fn parses_registry_mirrors() {
        let v = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let RegistryMirrors { mirrors, plain_http } = parse_registry_mirrors(&v(&[
            "docker.io=http://127.0.0.1:5000",
            "quay.io=https://mirror.example:443/,m2.example",
            "docker.io=backup.example",
        ]))
        .expect("parse");
        assert_eq!(mirrors.get("docker.io"), Some(&v(&["127.0.0.1:5000", "backup.example"])));
        assert_eq!(mirrors.get("quay.io"), Some(&v(&["mirror.example:443", "m2.example"])));
        assert_eq!(plain_http, v(&["127.0.0.1:5000"]));
        for bad in ["docker.io", "=m", "docker.io=", "docker.io=http://m/path", "a/b=m"] {
            assert!(parse_registry_mirrors(&v(&[bad])).is_err(), "{bad}");
        }
        let config = RuncConfig { registry_mirrors: mirrors.clone(), ..RuncConfig::new("/d".into()) };
        assert_eq!(config.store_config().mirrors, mirrors);
    }

    #[test]
    fn metadata_round_trips_to_container_info() {
        let meta =
            InstanceMeta { attempt: 2, image: "busybox".into(), image_id: "busybox@sha256:ab".into(), hash: u64::MAX };
        let back: InstanceMeta = serde_json::from_value(serde_json::to_value(&meta).expect("json")).expect("parse");
        assert_eq!(back, meta);
        assert_eq!(serde_json::from_value::<InstanceMeta>(Value::Null).unwrap_or_default(), InstanceMeta::default());
    }

    #[test]
    fn converts_container_config() {
        let config = ContainerConfig {
            name: "app".into(),
            command: Some(vec!["sh".into()]),
            args: None,
            working_dir: Some(String::new()),
            security_context: Some(json!({"runAsUser": 1000, "privileged": true, "allowPrivilegeEscalation": false,
                "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}})),
            pod_security_context: Some(
                json!({"runAsUser": 5, "runAsGroup": 7, "supplementalGroups": [9], "fsGroup": 11,
                "sysctls": [{"name": "kernel/shm_rmid_forced", "value": "1"}]}),
            ),
            resources: Some(json!({"limits": {"memory": "64Mi", "cpu": "500m"}, "requests": {"cpu": "0.1"}})),
            ..ContainerConfig::default()
        };
        let rc = runtime_config(&config);
        assert_eq!(rc.command, vec!["sh".to_string()]);
        assert!(rc.args.is_empty());
        assert_eq!(rc.working_dir, None);
        assert_eq!((rc.run_as_user, rc.run_as_group), (Some(1000), Some(7)));
        assert_eq!(rc.supplemental_groups, vec![9, 11]);
        assert!(rc.privileged && rc.no_new_privileges && !rc.readonly_rootfs);
        assert_eq!((rc.capabilities_add, rc.capabilities_drop), (vec!["NET_ADMIN".into()], vec!["ALL".into()]));
        assert_eq!(rc.memory_limit_bytes, Some(64 * 1024 * 1024));
        assert_eq!((rc.cpu_limit_millis, rc.cpu_request_millis), (Some(500), Some(100)));
        assert_eq!(rc.sysctls, vec![("kernel.shm_rmid_forced".to_string(), "1".to_string())]);
    }
}
