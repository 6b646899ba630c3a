//! Simulated nodes, like KWOK: `count` fake Nodes named `<prefix>-0` … `<prefix>-(count-1)` that
//! register with capacity, keep their Leases fresh, and move the pods bound to them through their
//! lifecycle without running anything.
//!
//! A pod goes Pending → Running (after `start_delay`) → Ready (after `ready_delay` more); a pod
//! being deleted is confirmed gone (DELETE with `gracePeriodSeconds=0` and a UID precondition)
//! after `kill_delay`, as a kubelet does once its containers are stopped.
//!
//! The annotation [`ANNOTATION`] (`skiff.dev/simulate`, set on the pod or its template) changes
//! what a pod does:
//! * `never-ready`: runs, never becomes ready;
//! * `fail`: its containers exit 1 after `fail_after`. With `restartPolicy: Never` the pod is
//!   `Failed`; otherwise the containers wait in `CrashLoopBackOff` (10 s, 20 s, … 300 s) and run
//!   again, `restartCount` growing, as the kubelet does;
//! * `complete`: its containers exit 0 after `fail_after`: `Succeeded` unless `restartPolicy` is
//!   `Always`, which restarts them like `fail`.
//!
//! The next step is always derived from the pod's observed status ([`plan`], pure), so a
//! simulator that restarts picks up where the last one stopped.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// The pod annotation that picks a simulated behaviour (see the module docs).
pub const ANNOTATION: &str = "skiff.dev/simulate";
/// The label every simulated node carries (`"true"`).
pub const SIMULATED_LABEL: &str = "skiff.dev/simulated";
/// The kubelet version simulated nodes report.
pub const KUBELET_VERSION: &str = "v1.35.0-skiff";
/// The namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// `nodeLeaseDurationSeconds`.
pub const LEASE_DURATION_SECONDS: i32 = 40;

/// What the simulated nodes look like and how fast their pods move.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Node names are `<prefix>-<i>`.
    pub prefix: String,
    pub count: usize,
    /// Capacity (and allocatable) of each node.
    pub cpu: String,
    pub memory: String,
    pub ephemeral_storage: String,
    pub pods: u32,
    /// Extra labels on every node.
    pub labels: Vec<(String, String)>,
    /// Bound → Running.
    pub start_delay: Duration,
    /// Running → Ready.
    pub ready_delay: Duration,
    /// How long `fail`/`complete` containers run before exiting.
    pub fail_after: Duration,
    /// Deletion requested → confirmed.
    pub kill_delay: Duration,
    /// Lease renewals, spread over this interval (the kubelet's 10 s).
    pub lease_renew_interval: Duration,
    /// Node status heartbeats (the kubelet's `nodeStatusReportFrequency`, 5 min).
    pub node_status_interval: Duration,
    /// API writes in flight at once.
    pub max_concurrent_writes: usize,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            prefix: "sim".to_string(),
            count: 1,
            cpu: "32".to_string(),
            memory: "256Gi".to_string(),
            ephemeral_storage: "100Gi".to_string(),
            pods: 110,
            labels: Vec::new(),
            start_delay: Duration::ZERO,
            ready_delay: Duration::ZERO,
            fail_after: Duration::from_secs(1),
            kill_delay: Duration::from_millis(100),
            lease_renew_interval: Duration::from_secs(10),
            node_status_interval: Duration::from_secs(300),
            max_concurrent_writes: 64,
        }
    }
}

impl SimulatorConfig {
    /// The name of node `i`.
    pub fn node_name(&self, i: usize) -> String {
        format!("{}-{i}", self.prefix)
    }
}

/// Why the simulator stopped.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("cannot register node {node}")]
    Register { node: String, source: kube::Error },
}

// ---------------------------------------------------------------------------------------------
// Plan: pure functions from observed objects to what a kubelet would write next.

/// What a pod's annotation asks the simulator to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    NeverReady,
    Fail,
    Complete,
}

/// The pod's [`Mode`], from [`ANNOTATION`]; unknown values are `Normal`.
pub fn mode(pod: &Pod) -> Mode {
    match pod.annotations().get(ANNOTATION).map(String::as_str) {
        Some("never-ready") => Mode::NeverReady,
        Some("fail") => Mode::Fail,
        Some("complete") => Mode::Complete,
        _ => Mode::Normal,
    }
}

/// The next write for a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Containers start (not ready yet, unless `ready` — no delay and a normal pod).
    Start { ready: bool },
    /// Containers become ready.
    Ready,
    /// Containers exit with `exit_code`.
    Exit { exit_code: i32 },
    /// Crash-looping containers run again.
    Restart,
    /// Confirm deletion.
    Delete,
}

/// How long a pod waits in `CrashLoopBackOff` after its `restarts`-th exit: 10 s doubling, at
/// most 300 s.
pub fn backoff(restarts: i32) -> Duration {
    let exp = (restarts.max(1) - 1).min(5) as u32;
    Duration::from_secs(10 * 2u64.pow(exp)).min(Duration::from_secs(300))
}

/// What to do next with `pod` and after how long, given the time since the simulator last wrote
/// its status (`None`: unknown, e.g. after a restart, which acts at once). `None`: nothing to do.
pub fn plan(pod: &Pod, config: &SimulatorConfig, since_last_write: Option<Duration>) -> Option<(Duration, Step)> {
    let after = |wait: Duration| since_last_write.map_or(Duration::ZERO, |s| wait.saturating_sub(s));
    if pod.metadata.deletion_timestamp.is_some() {
        return Some((after(config.kill_delay), Step::Delete));
    }
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    if phase == "Succeeded" || phase == "Failed" {
        return None;
    }
    let m = mode(pod);
    let statuses = status.and_then(|s| s.container_statuses.as_deref()).unwrap_or(&[]);
    if phase == "Pending" || statuses.is_empty() {
        let ready = m == Mode::Normal && config.ready_delay.is_zero();
        // The start delay counts from the binding, which the simulator did not write.
        return Some((config.start_delay, Step::Start { ready }));
    }
    let running = statuses.iter().any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
    match m {
        // Ready containers, and the pod Ready unless a readiness gate holds it back; a Ready
        // condition set False by someone else (the node lifecycle controller, while the node's
        // heartbeats were late) is written back, as the kubelet's status manager reconciles a
        // status that differs from its own.
        Mode::Normal if statuses.iter().all(|c| c.ready) => {
            let condition = |type_: &str| {
                status
                    .and_then(|s| s.conditions.as_deref())
                    .unwrap_or(&[])
                    .iter()
                    .any(|c| c.type_ == type_ && c.status == "True")
            };
            let gates = pod.spec.as_ref().and_then(|s| s.readiness_gates.as_deref()).unwrap_or(&[]);
            let held_back = gates.iter().any(|g| !condition(&g.condition_type));
            (!held_back && !condition("Ready")).then_some((Duration::ZERO, Step::Ready))
        }
        Mode::Normal => Some((after(config.ready_delay), Step::Ready)),
        Mode::NeverReady => None,
        Mode::Fail | Mode::Complete if running => {
            Some((after(config.fail_after), Step::Exit { exit_code: if m == Mode::Fail { 1 } else { 0 } }))
        }
        Mode::Fail | Mode::Complete => {
            let restarts = statuses.iter().map(|c| c.restart_count).max().unwrap_or(0);
            Some((after(backoff(restarts)), Step::Restart))
        }
    }
}

/// A Kubernetes timestamp (`2006-01-02T15:04:05Z`, seconds), as `metav1.Time` serializes.
fn time(t: Timestamp) -> String {
    wire_string(&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t))
}

/// A `metav1.MicroTime` (`2006-01-02T15:04:05.000000Z`).
fn micro_time(t: Timestamp) -> String {
    wire_string(&k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(t))
}

fn wire_string(v: &impl serde::Serialize) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// FNV-1a, for stable fake IDs.
fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}

/// 64 hex digits derived from `parts` (a fake container ID or image digest).
fn hex64(parts: &[&str]) -> String {
    (0..4u8).map(|i| format!("{:016x}", fnv(&[parts, &[&i.to_string()]].concat()))).collect()
}

/// The InternalIP of node `index` of the simulator with `prefix` (10.128.0.0/10, one /16 per prefix).
pub fn node_ip(prefix: &str, index: usize) -> Ipv4Addr {
    let slot = (fnv(&[prefix]) % 64) as u8;
    Ipv4Addr::new(10, 128 + slot, ((index / 254) % 256) as u8, (index % 254 + 1) as u8)
}

/// Pod IP number `n` of the simulator with `prefix` (100.64.0.0/10, one /16 per prefix).
pub fn pod_ip(prefix: &str, n: u64) -> Ipv4Addr {
    let slot = (fnv(&[prefix]) % 64) as u8;
    Ipv4Addr::new(100, 64 + slot, ((n / 254) % 256) as u8, (n % 254 + 1) as u8)
}

/// The Node object for node `index`, as a kubelet registers it.
pub fn node_object(config: &SimulatorConfig, index: usize, now: Timestamp) -> Value {
    let name = config.node_name(index);
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let mut labels = serde_json::Map::new();
    for (k, v) in [
        ("beta.kubernetes.io/arch", arch),
        ("beta.kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", arch),
        ("kubernetes.io/hostname", name.as_str()),
        ("kubernetes.io/os", "linux"),
        (SIMULATED_LABEL, "true"),
    ] {
        labels.insert(k.to_string(), json!(v));
    }
    for (k, v) in &config.labels {
        labels.insert(k.clone(), json!(v));
    }
    let capacity = json!({"cpu": config.cpu, "memory": config.memory, "ephemeral-storage": config.ephemeral_storage, "pods": config.pods.to_string()});
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
        "spec": {},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": node_conditions(now),
            "addresses": [
                {"type": "InternalIP", "address": node_ip(&config.prefix, index).to_string()},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": &hex64(&[&name, "machine"])[..32],
                "systemUUID": &hex64(&[&name, "uuid"])[..32],
                "bootID": &hex64(&[&name, "boot"])[..32],
                "kernelVersion": "6.1.0-skiff",
                "osImage": "Skiff simulated node",
                "containerRuntimeVersion": "simulated://1.0.0",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": arch,
            },
        },
    })
}

/// A healthy node's conditions, in the kubelet's order.
pub fn node_conditions(now: Timestamp) -> Value {
    let t = time(now);
    let c = |type_: &str, status: &str, reason: &str, message: &str| json!({"type": type_, "status": status, "reason": reason, "message": message, "lastHeartbeatTime": t, "lastTransitionTime": t});
    json!([
        c("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        c("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        c("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        c("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ])
}

/// The node's Lease, owned by the Node.
pub fn lease_object(node: &str, node_uid: Option<&str>, now: Timestamp) -> Value {
    let mut lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": node, "namespace": LEASE_NAMESPACE},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": LEASE_DURATION_SECONDS, "renewTime": micro_time(now)},
    });
    if let Some(uid) = node_uid {
        lease["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid}]);
    }
    lease
}

/// Where a pod runs: the node's IP and the pod's own.
#[derive(Debug, Clone)]
pub struct Placement {
    pub host_ip: String,
    pub pod_ip: String,
}

/// The status a kubelet would write after `step` (not for [`Step::Delete`]): a merge patch body
/// `{"status": ...}` for `pods/status`.
pub fn status_after(pod: &Pod, step: &Step, placement: &Placement, now: Timestamp) -> Value {
    let t = time(now);
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let old_statuses = status.container_statuses.clone().unwrap_or_default();
    let restart_policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let mut phase = "Running";
    let mut terminal_reason = None;
    let containers: Vec<Value> = spec
        .containers
        .iter()
        .map(|c| {
            let old = old_statuses.iter().find(|s| s.name == c.name);
            let restarts = old.map_or(0, |s| s.restart_count);
            let old_started = old
                .and_then(|s| s.state.as_ref())
                .and_then(|s| s.running.as_ref())
                .and_then(|r| r.started_at.as_ref())
                .map(|t| time(t.0))
                .unwrap_or_else(|| t.clone());
            let old_last = old.and_then(|s| s.last_state.as_ref()).map(|s| serde_json::to_value(s).unwrap_or(Value::Null));
            let id = |restarts: i32| format!("containerd://{}", hex64(&[&uid, &c.name, &restarts.to_string()]));
            let image = c.image.clone().unwrap_or_default();
            let image_id = format!("{}@sha256:{}", image.split('@').next().unwrap_or(""), hex64(&[&image]));
            let (state, last_state, ready, restart_count, started, container_id) = match step {
                Step::Start { ready } => (json!({"running": {"startedAt": t}}), json!({}), *ready, 0, true, id(0)),
                Step::Ready => (json!({"running": {"startedAt": old_started}}), old_last.unwrap_or(json!({})), true, restarts, true, id(restarts)),
                Step::Restart => (json!({"running": {"startedAt": t}}), old_last.unwrap_or(json!({})), false, restarts, true, id(restarts)),
                Step::Exit { exit_code } => {
                    let reason = if *exit_code == 0 { "Completed" } else { "Error" };
                    let terminated = json!({"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": old_started,
                        "finishedAt": t, "containerID": id(restarts)}});
                    let restart = match restart_policy {
                        "Never" => false,
                        "OnFailure" => *exit_code != 0,
                        _ => true,
                    };
                    if restart {
                        let n = restarts + 1;
                        let message = format!(
                            "back-off {}s restarting failed container={} pod={}_{}({uid})",
                            backoff(n).as_secs(),
                            c.name,
                            pod.name_any(),
                            pod.namespace().unwrap_or_default()
                        );
                        (json!({"waiting": {"reason": "CrashLoopBackOff", "message": message}}), terminated, false, n, false, id(restarts))
                    } else {
                        phase = if *exit_code == 0 { "Succeeded" } else { "Failed" };
                        terminal_reason = Some(if *exit_code == 0 { "PodCompleted" } else { "PodFailed" });
                        (terminated, json!({}), false, restarts, false, id(restarts))
                    }
                }
                Step::Delete => (json!({"running": {"startedAt": old_started}}), json!({}), false, restarts, true, id(restarts)),
            };
            json!({"name": c.name, "image": image, "imageID": image_id, "containerID": container_id, "ready": ready,
                "restartCount": restart_count, "started": started, "state": state, "lastState": last_state})
        })
        .collect();
    let init_containers: Vec<Value> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| {
            let image = c.image.clone().unwrap_or_default();
            let sidecar = c.restart_policy.as_deref() == Some("Always");
            let state = if sidecar {
                json!({"running": {"startedAt": t}})
            } else {
                json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": t, "finishedAt": t}})
            };
            json!({"name": c.name, "image": image, "imageID": format!("{image}@sha256:{}", hex64(&[&image])),
                "containerID": format!("containerd://{}", hex64(&[&uid, &c.name])), "ready": sidecar, "restartCount": 0,
                "started": sidecar, "state": state, "lastState": {}})
        })
        .collect();
    let unready: Vec<String> = containers
        .iter()
        .filter(|c| c["ready"] != json!(true))
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    let old_conditions = status.conditions.clone().unwrap_or_default();
    let gates: Vec<String> = spec.readiness_gates.iter().flatten().map(|g| g.condition_type.clone()).collect();
    let gates_ready = gates.iter().all(|g| old_conditions.iter().any(|c| c.type_ == *g && c.status == "True"));
    let condition = |type_: &str, ok: bool, reason: Option<&str>, message: Option<String>| {
        let status = if ok { "True" } else { "False" };
        let since = old_conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| time(t.0))
            .unwrap_or_else(|| t.clone());
        let mut c = json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
        if let Some(g) = pod.metadata.generation {
            c["observedGeneration"] = json!(g);
        }
        if !ok {
            c["reason"] = json!(reason);
            if let Some(m) = message {
                c["message"] = json!(m);
            }
        }
        c
    };
    let containers_ready = unready.is_empty();
    let (cr_reason, cr_message) = match terminal_reason {
        Some(r) => (r, None),
        None => ("ContainersNotReady", Some(format!("containers with unready status: [{}]", unready.join(" ")))),
    };
    let ready_condition = if !containers_ready {
        condition("Ready", false, Some(cr_reason), cr_message.clone())
    } else if !gates_ready {
        let missing = gates
            .iter()
            .find(|g| !old_conditions.iter().any(|c| c.type_ == **g && c.status == "True"))
            .cloned()
            .unwrap_or_default();
        condition(
            "Ready",
            false,
            Some("ReadinessGatesNotReady"),
            Some(format!("corresponding condition of pod readiness gate \"{missing}\" does not exist.")),
        )
    } else {
        condition("Ready", true, None, None)
    };
    let mut conditions = vec![
        condition("PodReadyToStartContainers", terminal_reason.is_none(), Some("PodCompleted"), None),
        condition("Initialized", true, None, None),
        ready_condition,
        condition("ContainersReady", containers_ready, Some(cr_reason), cr_message),
    ];
    // Conditions the kubelet does not own (PodScheduled, readiness gates, DisruptionTarget) stay.
    const OWN: [&str; 4] = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady"];
    for c in &old_conditions {
        if !OWN.contains(&c.type_.as_str()) {
            conditions.push(serde_json::to_value(c).unwrap_or(Value::Null));
        }
    }
    let start_time = status.start_time.as_ref().map(|s| time(s.0)).unwrap_or_else(|| t.clone());
    let mut out = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": placement.host_ip,
        "hostIPs": [{"ip": placement.host_ip}],
        "podIP": placement.pod_ip,
        "podIPs": [{"ip": placement.pod_ip}],
        "startTime": start_time,
        "containerStatuses": containers,
    });
    if !init_containers.is_empty() {
        out["initContainerStatuses"] = json!(init_containers);
    }
    if let Some(g) = pod.metadata.generation {
        out["observedGeneration"] = json!(g);
    }
    json!({"status": out})
}

// ---------------------------------------------------------------------------------------------
// Executor.

/// Runs `config.count` simulated nodes until `shutdown` completes: registers the Nodes and their
/// Leases, then keeps the Leases fresh and drives the pods bound to the nodes.
pub async fn run(
    client: Client,
    config: SimulatorConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SimulateError> {
    let config = Arc::new(config);
    let writes = Arc::new(Semaphore::new(config.max_concurrent_writes.max(1)));
    let uids = register_nodes(&client, &config).await?;
    tracing::info!(prefix = %config.prefix, count = config.count, "simulated nodes registered");
    let heartbeats = tokio::spawn(heartbeat_loop(client.clone(), config.clone(), uids));
    let pods = tokio::spawn(pod_loop(client, config, writes));
    shutdown.await;
    heartbeats.abort();
    pods.abort();
    Ok(())
}

/// Creates (or refreshes) every Node and its Lease, `max_concurrent_writes` at a time. Returns the
/// node UIDs by index.
async fn register_nodes(client: &Client, config: &Arc<SimulatorConfig>) -> Result<Vec<Option<String>>, SimulateError> {
    let results: Vec<Result<Option<String>, SimulateError>> = futures::stream::iter(0..config.count)
        .map(|i| {
            let client = client.clone();
            let config = config.clone();
            async move {
                let name = config.node_name(i);
                let uid = register_node(&client, &config, i)
                    .await
                    .map_err(|source| SimulateError::Register { node: name.clone(), source })?;
                renew_lease(&client, &name, uid.as_deref()).await;
                Ok(uid)
            }
        })
        .buffered(config.max_concurrent_writes.max(1))
        .collect()
        .await;
    results.into_iter().collect()
}

async fn register_node(client: &Client, config: &SimulatorConfig, i: usize) -> kube::Result<Option<String>> {
    let api: Api<Node> = Api::all(client.clone());
    let body = node_object(config, i, Timestamp::now());
    let node: Node = serde_json::from_value(body.clone()).map_err(kube::Error::SerdeError)?;
    match api.create(&PostParams::default(), &node).await {
        Ok(created) => Ok(created.metadata.uid),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            // Re-registration: refresh labels and status, as the kubelet's tryUpdateNode does.
            let name = config.node_name(i);
            api.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": body["metadata"]["labels"]}})),
            )
            .await?;
            let updated = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": body["status"]})))
                .await?;
            Ok(updated.metadata.uid)
        }
        Err(e) => Err(e),
    }
}

/// Renews (or creates) the node's Lease. Failures are logged: the next round retries.
async fn renew_lease(client: &Client, node: &str, node_uid: Option<&str>) {
    let api: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let now = Timestamp::now();
    let patch = json!({"spec": {"renewTime": micro_time(now), "holderIdentity": node, "leaseDurationSeconds": LEASE_DURATION_SECONDS}});
    match api.patch(node, &PatchParams::default(), &Patch::Merge(patch)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let lease = serde_json::from_value::<Lease>(lease_object(node, node_uid, now));
            if let Ok(lease) = lease
                && let Err(e) = api.create(&PostParams::default(), &lease).await
            {
                tracing::warn!(node, error = %e, "cannot create the node lease");
            }
        }
        Err(e) => tracing::warn!(node, error = %e, "cannot renew the node lease"),
    }
}

/// Renews each Lease every `lease_renew_interval`, spread evenly over it, and posts each node's
/// status every `node_status_interval`.
///
/// Each node renews on its own, as each kubelet's lease controller does: a renewal waits for no
/// other node's writes (not for `max_concurrent_writes`, which the pod writes of all the nodes
/// share: at 5,000 nodes, a renewal queued behind them came later than the node monitor's grace
/// period), and a node whose previous renewal is still in flight skips its turn.
async fn heartbeat_loop(client: Client, config: Arc<SimulatorConfig>, uids: Vec<Option<String>>) {
    let n = config.count.max(1);
    let step = (config.lease_renew_interval / n as u32).max(Duration::from_millis(1));
    // With more nodes than milliseconds in the interval, renew several per tick.
    let per_tick =
        (n as u128 * step.as_millis()).div_ceil(config.lease_renew_interval.as_millis().max(1)).max(1) as usize;
    let status_every =
        (config.node_status_interval.as_millis() / config.lease_renew_interval.as_millis().max(1)).max(1) as u64;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + step, step);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let in_flight: Arc<Vec<AtomicBool>> = Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
    let mut i = 0usize;
    let mut round = 0u64;
    loop {
        tick.tick().await;
        for _ in 0..per_tick {
            let index = i % n;
            i += 1;
            if i.is_multiple_of(n) {
                round += 1;
            }
            let Some(renewing) = Renewing::start(&in_flight, index) else {
                tracing::debug!(node = %config.node_name(index), "the previous lease renewal is still in flight");
                continue;
            };
            let name = config.node_name(index);
            let uid = uids.get(index).cloned().flatten();
            let post_status = round > 0 && round.is_multiple_of(status_every);
            let client = client.clone();
            tokio::spawn(async move {
                let _renewing = renewing;
                renew_lease(&client, &name, uid.as_deref()).await;
                if post_status {
                    let api: Api<Node> = Api::all(client);
                    let patch = json!({"status": {"conditions": node_conditions(Timestamp::now())}});
                    if let Err(e) = api.patch_status(&name, &PatchParams::default(), &Patch::Merge(patch)).await {
                        tracing::warn!(node = %name, error = %e, "cannot post node status");
                    }
                }
            });
        }
    }
}

/// One node's heartbeat in flight; its flag is cleared when this is dropped.
struct Renewing {
    flags: Arc<Vec<AtomicBool>>,
    index: usize,
}

impl Renewing {
    /// Marks node `index` renewing, unless it already is.
    fn start(flags: &Arc<Vec<AtomicBool>>, index: usize) -> Option<Renewing> {
        let flag = flags.get(index)?;
        (!flag.swap(true, Ordering::AcqRel)).then(|| Renewing { flags: flags.clone(), index })
    }
}

impl Drop for Renewing {
    fn drop(&mut self) {
        if let Some(flag) = self.flags.get(self.index) {
            flag.store(false, Ordering::Release);
        }
    }
}

/// What the pod loop hears about.
enum Msg {
    Pod(Box<watcher::Event<Pod>>),
    /// Task `task` (see [`PodState`]) of the pod with UID `uid` ended.
    Done {
        uid: String,
        task: u64,
        outcome: Outcome,
    },
}

/// How a pod's task ended.
#[derive(Debug)]
enum Outcome {
    /// The step's status was written; `at` is when the request was sent (the time the status
    /// itself carries), `pod` the pod as the API returned it.
    Written { at: Instant, pod: Box<Pod> },
    /// The pod is gone, or its deletion was confirmed: stop tracking it.
    Gone,
    /// The write failed (it may or may not have been applied): retry after a pause.
    Failed(String),
    /// The pause after a failure is over.
    RetryDue,
}

/// Settles the race between a step's task beginning its write and the pod loop replacing that
/// step: exactly one of [`Claim::begin_write`] and [`Claim::cancel`] succeeds. A write that has
/// begun is never cancelled, so its outcome always reaches the loop, whichever of the API's
/// response and the watch event for the write arrives first.
#[derive(Debug, Default)]
struct Claim(AtomicU8);

impl Claim {
    const PENDING: u8 = 0;
    const WRITING: u8 = 1;
    const CANCELLED: u8 = 2;

    /// The task is about to write: `false` if the loop cancelled it first.
    fn begin_write(&self) -> bool {
        self.0.compare_exchange(Self::PENDING, Self::WRITING, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// The loop replaces the task: `false` if its write has already begun.
    fn cancel(&self) -> bool {
        self.0.compare_exchange(Self::PENDING, Self::CANCELLED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

/// The pod's current task: a step waiting for its delay or being written, or (`step: None`) a
/// retry pause.
#[derive(Debug)]
struct Task {
    /// Unique over the loop, so the outcome of a replaced task is recognised and ignored.
    id: u64,
    step: Option<Step>,
    claim: Arc<Claim>,
}

/// What the pod loop must do for a pod after an event.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Nothing: no step, the same step is already scheduled, a write is in flight (its outcome
    /// re-plans), or the event was about a task that has been replaced.
    Keep,
    /// Abort the previous task (cancelled before it wrote anything), and run `step` after `delay`
    /// as task `id`.
    Run { id: u64, delay: Duration, step: Step },
    /// Abort the previous task, if any, and re-plan after a pause as task `id`.
    Retry { id: u64 },
    /// Stop tracking the pod.
    Forget,
}

/// The pod loop's bookkeeping for one pod. Pure (time is passed in, tasks are run by the caller),
/// so the rules that make the simulator indifferent to the order of API responses and watch
/// events are unit-tested:
/// * the time since the last write ([`plan`]'s input) is the time the write was *sent*, and is
///   taken from the write's own outcome, never guessed from a watch event;
/// * a write in flight is never replaced: events meanwhile only update the pod, and the write's
///   outcome re-plans from the newest pod;
/// * the outcome of a task that is no longer current is ignored.
#[derive(Debug)]
struct PodState {
    /// The newest version seen, from the watch or a write's response.
    pod: Pod,
    task: Option<Task>,
    last_write: Option<Instant>,
}

impl PodState {
    fn new(pod: Pod) -> Self {
        PodState { pod, task: None, last_write: None }
    }

    /// Keeps `pod` if it is at least as new as the one known.
    fn observe(&mut self, pod: Pod) {
        if resource_version(&pod) >= resource_version(&self.pod) {
            self.pod = pod;
        }
    }

    /// The claim the current task must win before writing.
    fn claim(&self) -> Option<Arc<Claim>> {
        self.task.as_ref().map(|t| t.claim.clone())
    }

    /// Task `id` ended with `outcome` at `now`. `ids` hands out task ids.
    fn finished(&mut self, id: u64, outcome: Outcome, config: &SimulatorConfig, now: Instant, ids: &mut u64) -> Next {
        if self.task.as_ref().is_none_or(|t| t.id != id) {
            return Next::Keep;
        }
        self.task = None;
        match outcome {
            Outcome::Written { at, pod } => {
                self.last_write = Some(at);
                self.observe(*pod);
                self.advance(config, now, ids)
            }
            Outcome::Gone => Next::Forget,
            Outcome::Failed(_) => {
                let id = next_id(ids);
                self.task = Some(Task { id, step: None, claim: Arc::default() });
                Next::Retry { id }
            }
            Outcome::RetryDue => self.advance(config, now, ids),
        }
    }

    /// Plans the pod's next step at `now`, replacing the current task if it waits for another
    /// step and has not begun writing.
    fn advance(&mut self, config: &SimulatorConfig, now: Instant, ids: &mut u64) -> Next {
        let since = self.last_write.map(|w| now.saturating_duration_since(w));
        let Some((delay, step)) = plan(&self.pod, config, since) else { return Next::Keep };
        if let Some(task) = &self.task
            && (task.step.as_ref() == Some(&step) || !task.claim.cancel())
        {
            return Next::Keep;
        }
        let id = next_id(ids);
        self.task = Some(Task { id, step: Some(step.clone()), claim: Arc::default() });
        Next::Run { id, delay, step }
    }
}

fn next_id(ids: &mut u64) -> u64 {
    *ids += 1;
    *ids
}

fn resource_version(pod: &Pod) -> Option<u64> {
    pod.metadata.resource_version.as_deref().and_then(|rv| rv.parse().ok())
}

/// A tracked pod: its state and how to abort its current task.
struct Tracked {
    state: PodState,
    abort: Option<AbortHandle>,
}

/// Watches assigned pods, keeps the ones on this simulator's nodes, and drives each one step at a
/// time.
async fn pod_loop(client: Client, config: Arc<SimulatorConfig>, writes: Arc<Semaphore>) {
    let (tx, mut rx) = mpsc::channel::<Msg>(8192);
    let api: Api<Pod> = Api::all(client.clone());
    let watch_tx = tx.clone();
    let watch = tokio::spawn(async move {
        // Pods are kept until they are gone; their managedFields are not needed to drive them.
        let mut stream = watcher(api, watcher::Config::default().fields("spec.nodeName!="))
            .modify(|p: &mut Pod| p.metadata.managed_fields = None)
            .default_backoff()
            .boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(e) => {
                    if watch_tx.send(Msg::Pod(Box::new(e))).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "simulator pod watch failed; retrying"),
            }
        }
    });
    let nodes: HashSet<String> = (0..config.count).map(|i| config.node_name(i)).collect();
    let node_index: HashMap<String, usize> = (0..config.count).map(|i| (config.node_name(i), i)).collect();
    let mut tracked: HashMap<String, Tracked> = HashMap::new();
    let mut next_ip: u64 = 0;
    let mut ids: u64 = 0;
    while let Some(msg) = rx.recv().await {
        let (uid, next) = match msg {
            Msg::Pod(event) => match *event {
                watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                    let on_ours =
                        pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some_and(|n| nodes.contains(n));
                    if !on_ours {
                        continue;
                    }
                    let uid = pod.metadata.uid.clone().unwrap_or_default();
                    let t = tracked
                        .entry(uid.clone())
                        .or_insert_with(|| Tracked { state: PodState::new(pod.clone()), abort: None });
                    t.state.observe(pod);
                    let next = t.state.advance(&config, Instant::now(), &mut ids);
                    (uid, next)
                }
                watcher::Event::Delete(pod) => {
                    if let Some(t) = tracked.remove(&pod.metadata.uid.clone().unwrap_or_default())
                        && let Some(handle) = t.abort
                    {
                        handle.abort();
                    }
                    continue;
                }
                _ => continue,
            },
            Msg::Done { uid, task, outcome } => {
                let Some(t) = tracked.get_mut(&uid) else { continue };
                if let Outcome::Failed(e) = &outcome {
                    tracing::debug!(pod = %uid, error = %e, "simulated pod step failed; retrying");
                }
                let next = t.state.finished(task, outcome, &config, Instant::now(), &mut ids);
                (uid, next)
            }
        };
        if next == Next::Forget {
            tracked.remove(&uid);
            continue;
        }
        let Some(t) = tracked.get_mut(&uid) else { continue };
        let handle = match next {
            Next::Keep | Next::Forget => continue,
            Next::Retry { id } => {
                let tx = tx.clone();
                let uid = uid.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let _ = tx.send(Msg::Done { uid, task: id, outcome: Outcome::RetryDue }).await;
                })
            }
            Next::Run { id, delay, step } => {
                let Some(claim) = t.state.claim() else { continue };
                let pod = t.state.pod.clone();
                let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
                let host_ip = node_ip(&config.prefix, node_index.get(&node).copied().unwrap_or(0)).to_string();
                let pod_ip = match pod.status.as_ref().and_then(|s| s.pod_ip.clone()) {
                    Some(ip) => ip,
                    None => {
                        next_ip += 1;
                        pod_ip(&config.prefix, next_ip).to_string()
                    }
                };
                let job = Job { pod, step, delay, placement: Placement { host_ip, pod_ip }, id, claim };
                tokio::spawn(perform(client.clone(), writes.clone(), tx.clone(), job))
            }
        };
        // The previous task was cancelled (or had ended): it will write nothing.
        if let Some(old) = t.abort.replace(handle.abort_handle()) {
            old.abort();
        }
    }
    watch.abort();
}

/// One step for a pod, as [`perform`] runs it.
struct Job {
    pod: Pod,
    step: Step,
    delay: Duration,
    placement: Placement,
    /// The task id its outcome reports.
    id: u64,
    /// Won before writing; lost if the step was replaced meanwhile.
    claim: Arc<Claim>,
}

/// Waits `job.delay`, then (unless replaced meanwhile) writes `job.step` and reports back.
async fn perform(client: Client, writes: Arc<Semaphore>, tx: mpsc::Sender<Msg>, job: Job) {
    let Job { pod, step, delay, placement, id, claim } = job;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let outcome = {
        let Ok(_permit) = writes.acquire().await else { return };
        if !claim.begin_write() {
            return;
        }
        let at = Instant::now();
        let api: Api<Pod> = Api::namespaced(client, &pod.namespace().unwrap_or_default());
        let name = pod.name_any();
        match &step {
            Step::Delete => {
                let dp = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions { uid: Some(uid.clone()), resource_version: None }),
                    ..DeleteParams::default()
                };
                match api.delete(&name, &dp).await {
                    Ok(_) => Outcome::Gone,
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Outcome::Gone,
                    Err(e) => Outcome::Failed(e.to_string()),
                }
            }
            _ => {
                let patch = status_after(&pod, &step, &placement, Timestamp::now());
                match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(patch)).await {
                    Ok(pod) => Outcome::Written { at, pod: Box::new(pod) },
                    Err(kube::Error::Api(s)) if s.code == 404 => Outcome::Gone,
                    Err(e) => Outcome::Failed(e.to_string()),
                }
            }
        }
    };
    let _ = tx.send(Msg::Done { uid, task: id, outcome }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).expect("a Pod")
    }

    fn base(annotation: Option<&str>, restart_policy: &str) -> Value {
        let mut p = json!({"metadata": {"name": "web-1", "namespace": "default", "uid": "u1", "generation": 1},
            "spec": {"nodeName": "sim-0", "restartPolicy": restart_policy, "containers": [{"name": "app", "image": "nginx:1.27"}]},
            "status": {"phase": "Pending", "qosClass": "BestEffort",
                "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}]}});
        if let Some(a) = annotation {
            p["metadata"]["annotations"] = json!({ANNOTATION: a});
        }
        p
    }

    fn placement() -> Placement {
        Placement { host_ip: "10.128.0.1".into(), pod_ip: "100.64.0.1".into() }
    }

    fn apply(mut p: Value, step: &Step, now: Timestamp) -> Value {
        let patch = status_after(&pod(p.clone()), step, &placement(), now);
        for (k, v) in patch["status"].as_object().expect("status").clone() {
            p["status"][k] = v;
        }
        p
    }

    fn config(ready_ms: u64) -> SimulatorConfig {
        SimulatorConfig { ready_delay: Duration::from_millis(ready_ms), ..SimulatorConfig::default() }
    }

    fn condition(p: &Value, type_: &str) -> (String, String) {
        let c = p["status"]["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .find(|c| c["type"] == type_)
            .expect("condition");
        (c["status"].as_str().unwrap_or("").to_string(), c["reason"].as_str().unwrap_or("").to_string())
    }

    #[test]
    fn normal_pod_lifecycle() {
        let now = Timestamp::from_second(1_750_000_000).expect("time");
        let p = base(None, "Always");
        let c = config(2000);
        assert_eq!(plan(&pod(p.clone()), &c, None), Some((Duration::ZERO, Step::Start { ready: false })));
        let started = apply(p, &Step::Start { ready: false }, now);
        assert_eq!(started["status"]["phase"], json!("Running"));
        assert_eq!(started["status"]["podIP"], json!("100.64.0.1"));
        assert_eq!(started["status"]["startTime"], json!("2025-06-15T15:06:40Z"));
        assert_eq!(
            started["status"]["containerStatuses"][0]["state"],
            json!({"running": {"startedAt": "2025-06-15T15:06:40Z"}})
        );
        assert_eq!(started["status"]["containerStatuses"][0]["ready"], json!(false));
        let types: Vec<&str> = started["status"]["conditions"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|c| c["type"].as_str())
            .collect();
        assert_eq!(types, ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]);
        assert_eq!(condition(&started, "Ready"), ("False".into(), "ContainersNotReady".into()));
        let ready_msg = started["status"]["conditions"][2]["message"].clone();
        assert_eq!(ready_msg, json!("containers with unready status: [app]"));
        assert_eq!(
            started["status"]["conditions"][4]["lastTransitionTime"],
            json!("2025-01-01T00:00:00Z"),
            "PodScheduled kept"
        );

        // Ready after the rest of the delay.
        assert_eq!(
            plan(&pod(started.clone()), &c, Some(Duration::from_millis(500))),
            Some((Duration::from_millis(1500), Step::Ready))
        );
        let ready = apply(started, &Step::Ready, now);
        assert_eq!(condition(&ready, "Ready"), ("True".into(), "".into()));
        assert_eq!(condition(&ready, "ContainersReady"), ("True".into(), "".into()));
        assert_eq!(ready["status"]["containerStatuses"][0]["ready"], json!(true));
        assert_eq!(plan(&pod(ready.clone()), &c, Some(Duration::from_secs(9))), None, "steady");

        // The node lifecycle controller marked it not Ready (the node's heartbeats were late): the
        // simulated kubelet writes its own status back at once.
        let mut marked = ready.clone();
        for c in marked["status"]["conditions"].as_array_mut().expect("conditions") {
            if c["type"] == "Ready" {
                c["status"] = json!("False");
            }
        }
        assert_eq!(plan(&pod(marked.clone()), &c, Some(Duration::from_secs(30))), Some((Duration::ZERO, Step::Ready)));
        let restored = apply(marked, &Step::Ready, now);
        assert_eq!(condition(&restored, "Ready"), ("True".into(), "".into()));
        assert_eq!(plan(&pod(restored), &c, Some(Duration::ZERO)), None);

        // Without a ready delay, one write.
        assert_eq!(
            plan(&pod(base(None, "Always")), &config(0), None),
            Some((Duration::ZERO, Step::Start { ready: true }))
        );

        // Deletion is confirmed after the kill delay.
        let mut deleting = ready;
        deleting["metadata"]["deletionTimestamp"] = json!("2025-06-15T15:07:10Z");
        assert_eq!(plan(&pod(deleting), &c, None), Some((Duration::ZERO, Step::Delete)));
    }

    #[test]
    fn never_ready_and_readiness_gates() {
        let now = Timestamp::from_second(1_750_000_000).expect("time");
        let c = config(0);
        let p = base(Some("never-ready"), "Always");
        assert_eq!(plan(&pod(p.clone()), &c, None), Some((Duration::ZERO, Step::Start { ready: false })));
        let started = apply(p, &Step::Start { ready: false }, now);
        assert_eq!(plan(&pod(started), &c, None), None);

        let mut gated = base(None, "Always");
        gated["spec"]["readinessGates"] = json!([{"conditionType": "example.com/lb"}]);
        let started = apply(gated, &Step::Start { ready: true }, now);
        assert_eq!(condition(&started, "ContainersReady"), ("True".into(), "".into()));
        assert_eq!(condition(&started, "Ready"), ("False".into(), "ReadinessGatesNotReady".into()));
        assert_eq!(plan(&pod(started), &c, None), None, "held back by its gate, not written again");
    }

    #[test]
    fn failing_pod_crash_loops_or_fails() {
        let now = Timestamp::from_second(1_750_000_000).expect("time");
        let c = config(0);
        let p = apply(base(Some("fail"), "Always"), &Step::Start { ready: false }, now);
        assert_eq!(
            plan(&pod(p.clone()), &c, Some(Duration::from_millis(200))),
            Some((Duration::from_millis(800), Step::Exit { exit_code: 1 }))
        );
        let crashed = apply(p, &Step::Exit { exit_code: 1 }, now);
        let cs = &crashed["status"]["containerStatuses"][0];
        assert_eq!(crashed["status"]["phase"], json!("Running"), "restartPolicy Always keeps the pod Running");
        assert_eq!(cs["restartCount"], json!(1));
        assert_eq!(cs["state"]["waiting"]["reason"], json!("CrashLoopBackOff"));
        assert_eq!(
            cs["state"]["waiting"]["message"],
            json!("back-off 10s restarting failed container=app pod=web-1_default(u1)")
        );
        assert_eq!(cs["lastState"]["terminated"]["exitCode"], json!(1));
        assert_eq!(cs["lastState"]["terminated"]["reason"], json!("Error"));
        assert_eq!(
            plan(&pod(crashed.clone()), &c, Some(Duration::ZERO)),
            Some((Duration::from_secs(10), Step::Restart))
        );
        let restarted = apply(crashed, &Step::Restart, now);
        assert_eq!(restarted["status"]["containerStatuses"][0]["restartCount"], json!(1));
        assert!(restarted["status"]["containerStatuses"][0]["state"]["running"].is_object());
        let crashed2 = apply(restarted, &Step::Exit { exit_code: 1 }, now);
        assert_eq!(crashed2["status"]["containerStatuses"][0]["restartCount"], json!(2));
        assert_eq!(plan(&pod(crashed2), &c, Some(Duration::ZERO)), Some((Duration::from_secs(20), Step::Restart)));

        let never = apply(base(Some("fail"), "Never"), &Step::Start { ready: false }, now);
        let failed = apply(never, &Step::Exit { exit_code: 1 }, now);
        assert_eq!(failed["status"]["phase"], json!("Failed"));
        assert_eq!(failed["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], json!(1));
        assert_eq!(condition(&failed, "Ready"), ("False".into(), "PodFailed".into()));
        assert_eq!(plan(&pod(failed), &c, None), None);

        let job = apply(base(Some("complete"), "OnFailure"), &Step::Start { ready: false }, now);
        let done = apply(job, &Step::Exit { exit_code: 0 }, now);
        assert_eq!(done["status"]["phase"], json!("Succeeded"));
        assert_eq!(done["status"]["containerStatuses"][0]["state"]["terminated"]["reason"], json!("Completed"));
        assert_eq!(condition(&done, "ContainersReady"), ("False".into(), "PodCompleted".into()));
    }

    #[test]
    fn a_node_renews_one_lease_at_a_time() {
        let flags = Arc::new((0..2).map(|_| AtomicBool::new(false)).collect::<Vec<_>>());
        let first = Renewing::start(&flags, 0).expect("node 0 is free");
        assert!(Renewing::start(&flags, 0).is_none(), "node 0 is still renewing");
        let other = Renewing::start(&flags, 1).expect("node 1 does not wait for node 0");
        drop(first);
        assert!(Renewing::start(&flags, 0).is_some(), "node 0 is free again");
        drop(other);
        assert!(Renewing::start(&flags, 2).is_none(), "no such node");
    }

    #[test]
    fn backoff_doubles_to_five_minutes() {
        let got: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(got, vec![10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn node_and_lease_objects() {
        let now = Timestamp::from_second(1_750_000_000).expect("time");
        let c = SimulatorConfig { prefix: "rack1".into(), count: 3, ..SimulatorConfig::default() };
        let n = node_object(&c, 2, now);
        assert_eq!(n["metadata"]["name"], json!("rack1-2"));
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/hostname"], json!("rack1-2"));
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/os"], json!("linux"));
        assert_eq!(
            n["status"]["capacity"],
            json!({"cpu": "32", "memory": "256Gi", "ephemeral-storage": "100Gi", "pods": "110"})
        );
        assert_eq!(n["status"]["allocatable"], n["status"]["capacity"]);
        assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], json!(KUBELET_VERSION));
        let ready = &n["status"]["conditions"][3];
        assert_eq!(
            (ready["type"].clone(), ready["status"].clone(), ready["reason"].clone()),
            (json!("Ready"), json!("True"), json!("KubeletReady"))
        );
        assert_eq!(ready["message"], json!("kubelet is posting ready status"));
        assert_eq!(n["status"]["addresses"][0]["address"], json!(node_ip("rack1", 2).to_string()));
        let typed: Node = serde_json::from_value(n).expect("a valid Node");
        assert_eq!(typed.status.and_then(|s| s.node_info).map(|i| i.machine_id.len()), Some(32));

        let l = lease_object("rack1-2", Some("uid-9"), now);
        assert_eq!(
            l["spec"],
            json!({"holderIdentity": "rack1-2", "leaseDurationSeconds": 40, "renewTime": "2025-06-15T15:06:40.000000Z"})
        );
        assert_eq!(l["metadata"]["ownerReferences"][0]["uid"], json!("uid-9"));
        serde_json::from_value::<Lease>(l).expect("a valid Lease");
    }

    #[test]
    fn addresses_differ_per_prefix_and_index() {
        assert_ne!(node_ip("a", 0), node_ip("a", 1));
        assert_eq!(node_ip("a", 0).octets()[0], 10);
        assert_eq!(pod_ip("a", 1).octets()[0], 100);
        assert_ne!(pod_ip("a", 1), pod_ip("a", 2));
        let ips: HashSet<Ipv4Addr> = (0..1000).map(|i| node_ip("a", i)).collect();
        assert_eq!(ips.len(), 1000);
    }

    /// The pod loop's handling of one pod, without I/O.
    mod ordering {
        use super::*;

        /// The `loop` pod of the integration test: containers exit 200 ms after starting.
        fn cfg() -> SimulatorConfig {
            SimulatorConfig { fail_after: Duration::from_millis(200), ..config(500) }
        }

        fn at_rv(mut p: Value, rv: u64) -> Pod {
            p["metadata"]["resourceVersion"] = json!(rv.to_string());
            pod(p)
        }

        fn ms(t0: Instant, n: u64) -> Instant {
            t0 + Duration::from_millis(n)
        }

        /// Which of a write's API response and its watch event the loop hears first.
        #[derive(Debug, Clone, Copy)]
        enum Order {
            ResponseFirst,
            WatchFirst,
        }

        /// Task `id` (which must have won its claim) wrote `written`, sending the request at
        /// `sent`; the loop hears the response and the watch event in `order`, both at `now`.
        /// Returns the answers that are not [`Next::Keep`].
        fn deliver(
            s: &mut PodState,
            order: Order,
            id: u64,
            sent: Instant,
            written: &Pod,
            now: Instant,
            ids: &mut u64,
        ) -> Vec<Next> {
            let response = |s: &mut PodState, ids: &mut u64| {
                s.finished(id, Outcome::Written { at: sent, pod: Box::new(written.clone()) }, &cfg(), now, ids)
            };
            let watch = |s: &mut PodState, ids: &mut u64| {
                s.observe(written.clone());
                s.advance(&cfg(), now, ids)
            };
            let answers = match order {
                Order::ResponseFirst => {
                    let r = response(s, ids);
                    vec![r, watch(s, ids)]
                }
                Order::WatchFirst => {
                    let w = watch(s, ids);
                    vec![w, response(s, ids)]
                }
            };
            answers.into_iter().filter(|n| *n != Next::Keep).collect()
        }

        #[test]
        fn crash_loop_timing_does_not_depend_on_event_order() {
            let now = Timestamp::from_second(1_750_000_000).expect("time");
            let t0 = Instant::now();
            for order in [Order::ResponseFirst, Order::WatchFirst] {
                let mut ids = 0;
                let pending = base(Some("fail"), "Always");
                let mut s = PodState::new(at_rv(pending.clone(), 10));
                let start = Step::Start { ready: false };
                assert_eq!(
                    s.advance(&cfg(), t0, &mut ids),
                    Next::Run { id: 1, delay: Duration::ZERO, step: start.clone() },
                    "{order:?}"
                );
                assert!(s.claim().expect("a task").begin_write(), "{order:?}");

                // Sent at 5 ms, heard at 30 ms: the containers exit 200 ms after the write.
                let started = apply(pending, &start, now);
                let got = deliver(&mut s, order, 1, ms(t0, 5), &at_rv(started.clone(), 11), ms(t0, 30), &mut ids);
                let exit = Step::Exit { exit_code: 1 };
                assert_eq!(
                    got,
                    [Next::Run { id: 2, delay: Duration::from_millis(175), step: exit.clone() }],
                    "{order:?}"
                );
                assert!(s.claim().expect("a task").begin_write(), "{order:?}");

                // The crash starts a 10 s back-off, counted from the exit's write.
                let crashed = apply(started, &exit, now);
                let got = deliver(&mut s, order, 2, ms(t0, 205), &at_rv(crashed.clone(), 12), ms(t0, 230), &mut ids);
                assert_eq!(
                    got,
                    [Next::Run { id: 3, delay: Duration::from_millis(9_975), step: Step::Restart }],
                    "{order:?}"
                );
                assert!(s.claim().expect("a task").begin_write(), "{order:?}");

                let restarted = apply(crashed, &Step::Restart, now);
                let got = deliver(&mut s, order, 3, ms(t0, 10_205), &at_rv(restarted, 13), ms(t0, 10_230), &mut ids);
                assert_eq!(got, [Next::Run { id: 4, delay: Duration::from_millis(175), step: exit }], "{order:?}");
            }
        }

        /// A started `fail` pod, written at `t0`, with its exit scheduled as task 1.
        fn exiting(t0: Instant, ids: &mut u64) -> (PodState, Value) {
            let now = Timestamp::from_second(1_750_000_000).expect("time");
            let started = apply(base(Some("fail"), "Always"), &Step::Start { ready: false }, now);
            let mut s = PodState::new(at_rv(started.clone(), 11));
            s.last_write = Some(t0);
            let exit = Step::Exit { exit_code: 1 };
            assert_eq!(s.advance(&cfg(), t0, ids), Next::Run { id: 1, delay: Duration::from_millis(200), step: exit });
            (s, started)
        }

        #[test]
        fn a_waiting_step_is_replaced_and_a_write_in_flight_is_not() {
            let t0 = Instant::now();
            let mut ids = 0;
            let (mut s, started) = exiting(t0, &mut ids);
            let mut deleting = started;
            deleting["metadata"]["deletionTimestamp"] = json!("2025-06-15T15:07:10Z");

            // Still waiting: the deletion replaces the exit, which then cannot write.
            let exit_claim = s.claim().expect("a task");
            s.observe(at_rv(deleting.clone(), 12));
            assert_eq!(
                s.advance(&cfg(), ms(t0, 50), &mut ids),
                Next::Run { id: 2, delay: Duration::from_millis(50), step: Step::Delete }
            );
            assert!(!exit_claim.begin_write(), "a replaced step does not write");
            assert_eq!(s.advance(&cfg(), ms(t0, 60), &mut ids), Next::Keep, "the same step stays scheduled");
            let stale = s.finished(1, Outcome::Failed("boom".into()), &cfg(), ms(t0, 70), &mut ids);
            assert_eq!(stale, Next::Keep, "a replaced task's outcome is ignored");
            assert_eq!(s.task.as_ref().map(|t| (t.id, t.step.clone())), Some((2, Some(Step::Delete))));

            // Already writing: the deletion waits for the write's outcome, then counts from it.
            let mut ids = 0;
            let (mut s, started) = exiting(t0, &mut ids);
            assert!(s.claim().expect("a task").begin_write());
            s.observe(at_rv(deleting, 12));
            assert_eq!(s.advance(&cfg(), ms(t0, 210), &mut ids), Next::Keep);
            assert!(!s.claim().expect("a task").cancel(), "a write in flight is not cancelled");
            let now = Timestamp::from_second(1_750_000_000).expect("time");
            let mut written = apply(started, &Step::Exit { exit_code: 1 }, now);
            written["metadata"]["deletionTimestamp"] = json!("2025-06-15T15:07:10Z");
            let next = s.finished(
                1,
                Outcome::Written { at: ms(t0, 200), pod: Box::new(at_rv(written, 13)) },
                &cfg(),
                ms(t0, 230),
                &mut ids,
            );
            assert_eq!(next, Next::Run { id: 2, delay: Duration::from_millis(70), step: Step::Delete });
        }

        #[test]
        fn failed_writes_are_retried_and_gone_pods_forgotten() {
            let t0 = Instant::now();
            let exit = Step::Exit { exit_code: 1 };
            let mut ids = 0;
            let (mut s, started) = exiting(t0, &mut ids);
            assert!(s.claim().expect("a task").begin_write());
            let next = s.finished(1, Outcome::Failed("conflict".into()), &cfg(), ms(t0, 210), &mut ids);
            assert_eq!(next, Next::Retry { id: 2 });
            assert_eq!(s.last_write, Some(t0), "a failed write is not counted as written");
            // The pause ends: the exit, already overdue, runs at once.
            let next = s.finished(2, Outcome::RetryDue, &cfg(), ms(t0, 1_210), &mut ids);
            assert_eq!(next, Next::Run { id: 3, delay: Duration::ZERO, step: exit.clone() });

            // A newer pod during the pause re-plans at once; the pause's end is then stale.
            let mut ids = 0;
            let (mut s, started_again) = exiting(t0, &mut ids);
            assert_eq!(started_again, started);
            assert!(s.claim().expect("a task").begin_write());
            assert_eq!(
                s.finished(1, Outcome::Failed("timeout".into()), &cfg(), ms(t0, 210), &mut ids),
                Next::Retry { id: 2 }
            );
            let mut labelled = started;
            labelled["metadata"]["labels"] = json!({"tier": "web"});
            s.observe(at_rv(labelled, 12));
            assert_eq!(
                s.advance(&cfg(), ms(t0, 300), &mut ids),
                Next::Run { id: 3, delay: Duration::ZERO, step: exit }
            );
            assert_eq!(s.finished(2, Outcome::RetryDue, &cfg(), ms(t0, 1_210), &mut ids), Next::Keep);

            // Gone (deleted, or 404 on the status write): forget the pod.
            assert!(s.claim().expect("a task").begin_write());
            assert_eq!(s.finished(3, Outcome::Gone, &cfg(), ms(t0, 320), &mut ids), Next::Forget);
        }

        #[test]
        fn older_pods_do_not_replace_newer_ones() {
            let p = base(None, "Always");
            let mut s = PodState::new(at_rv(p.clone(), 12));
            for (rv, want) in [(11, 12), (12, 12), (13, 13)] {
                s.observe(at_rv(p.clone(), rv));
                assert_eq!(resource_version(&s.pod), Some(want), "after rv {rv}");
            }
        }

        #[test]
        fn exactly_one_of_write_and_cancel_wins() {
            let c = Claim::default();
            assert_eq!((c.begin_write(), c.cancel(), c.begin_write()), (true, false, false));
            let c = Claim::default();
            assert_eq!((c.cancel(), c.begin_write(), c.cancel()), (true, false, false));
        }
    }
}
