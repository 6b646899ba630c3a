//! The container runtime seam: what the agent asks of whatever runs containers (the CRI's role).
//!
//! The agent never assumes state: every sync starts from [`ContainerRuntime::list_containers`] and
//! [`ContainerRuntime::sandbox`], as the kubelet's PLEG relists the runtime. The trait is
//! implemented by [`crate::fake::FakeRuntime`] (tests) and, once wired, by an adapter over
//! `skiff-runtime`.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::broadcast;

/// `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// The container's policy, defaulted as the API server does: `Always` for `:latest` or an
    /// untagged image, else `IfNotPresent`.
    pub fn of(policy: Option<&str>, image: &str) -> PullPolicy {
        match policy {
            Some("Always") => PullPolicy::Always,
            Some("Never") => PullPolicy::Never,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            _ => {
                if image.contains('@') {
                    return PullPolicy::IfNotPresent;
                }
                let last = image.rsplit('/').next().unwrap_or(image);
                match last.split_once(':') {
                    Some((_, "latest")) | None => PullPolicy::Always,
                    Some(_) => PullPolicy::IfNotPresent,
                }
            }
        }
    }
}

/// An image present on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The image as the pod named it.
    pub image: String,
    /// `status.containerStatuses[].imageID`: the repository digest (`docker.io/library/nginx@sha256:…`).
    pub image_id: String,
    /// Bytes, for the `Pulled` event.
    pub size: u64,
    /// Whether it was pulled just now (`false`: already present).
    pub pulled: bool,
}

/// The pod-level sandbox to create: its namespaces and network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxConfig {
    pub pod_uid: String,
    pub name: String,
    pub namespace: String,
    /// The pod's hostname (`spec.hostname` or the pod name).
    pub hostname: String,
    pub host_network: bool,
    /// `spec.hostAliases`: (ip, hostnames) lines for /etc/hosts.
    pub host_aliases: Vec<(String, Vec<String>)>,
    /// Where the pod's container logs go (`<root>/pods/<uid>/logs`).
    pub log_dir: PathBuf,
    /// The `hostPort`s of the pod's containers ([`port_mappings`]).
    pub port_mappings: Vec<PortMapping>,
}

/// A container port published on the node (`ports[].hostPort`), for CNI's portmap plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp` (lower case, as CNI's `portMappings` take it).
    pub protocol: String,
    /// `hostIP`; empty: every address.
    pub host_ip: String,
}

/// The pod's port mappings as the kubelet builds them for its sandbox: every port of the app
/// containers (`spec.containers`) with a `hostPort`, protocol defaulting to TCP.
pub fn port_mappings(spec: &k8s_openapi::api::core::v1::PodSpec) -> Vec<PortMapping> {
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let host_port = u16::try_from(p.host_port?).ok().filter(|p| *p > 0)?;
            Some(PortMapping {
                host_port,
                container_port: u16::try_from(p.container_port).ok()?,
                protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
                host_ip: p.host_ip.clone().unwrap_or_default(),
            })
        })
        .collect()
}

/// A sandbox as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxInfo {
    pub id: String,
    pub pod_uid: String,
    pub name: String,
    pub namespace: String,
    /// The pod IP (None with no network yet; the host IP for `hostNetwork`).
    pub ip: Option<String>,
    /// Still usable: its namespaces exist. A not-ready sandbox makes the agent recreate the pod.
    pub ready: bool,
    pub created_at: Timestamp,
}

/// A host path bind-mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub host_path: PathBuf,
    pub container_path: String,
    pub read_only: bool,
}

/// One container to create and start, everything resolved by the agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerConfig {
    pub name: String,
    /// 0 for the first run, +1 per restart (becomes `restartCount`).
    pub attempt: u32,
    pub image: String,
    pub image_id: String,
    /// `command` / `args` after `$(VAR)` expansion; `None` keeps the image's ENTRYPOINT / CMD.
    pub command: Option<Vec<String>>,
    pub args: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<Mount>,
    /// The spec hash the agent compares to detect a changed container ([`crate::plan::container_hash`]).
    pub hash: u64,
    pub tty: bool,
    pub stdin: bool,
    /// The container's security context, resources and the like, in wire form, for the runtime
    /// to interpret (`securityContext`, `resources`).
    pub security_context: Option<serde_json::Value>,
    pub resources: Option<serde_json::Value>,
    /// The pod-level security context (`runAsUser`, `fsGroup`, `sysctls`...).
    pub pod_security_context: Option<serde_json::Value>,
    /// Where the log file goes (CRI format).
    pub log_path: PathBuf,
}

/// What a container is doing, observed from the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, not started (or the start failed).
    Created,
    Running {
        started_at: Timestamp,
    },
    Exited {
        exit_code: i32,
        /// Runtime's own reason, if any (`OOMKilled`, `ContainerCannotRun`, `StartError`).
        reason: Option<String>,
        /// The termination message (filled by the agent from the termination-log file or logs).
        message: Option<String>,
        started_at: Option<Timestamp>,
        finished_at: Timestamp,
        /// Killed by the cgroup's OOM killer.
        oom: bool,
    },
}

/// One container instance as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub pod_uid: String,
    pub name: String,
    pub attempt: u32,
    pub image: String,
    pub image_id: String,
    pub hash: u64,
    pub created_at: Timestamp,
    pub state: ContainerState,
}

impl ContainerInfo {
    pub fn is_running(&self) -> bool {
        matches!(self.state, ContainerState::Running { .. })
    }

    pub fn is_exited(&self) -> bool {
        matches!(self.state, ContainerState::Exited { .. })
    }

    /// `(exit_code, finished_at)` of an exited container.
    pub fn exit(&self) -> Option<(i32, Timestamp)> {
        match &self.state {
            ContainerState::Exited { exit_code, finished_at, .. } => Some((*exit_code, *finished_at)),
            _ => None,
        }
    }
}

/// The result of a command run in a container (probes, hooks).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// What `kubectl exec` asks to run in a container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecRequest {
    pub command: Vec<String>,
    /// Attach the caller's stdin (`kubectl exec -i`).
    pub stdin: bool,
    /// Give the process a terminal (`kubectl exec -t`): stdout and stderr merge into it.
    pub tty: bool,
}

/// A terminal size, as `kubectl exec -t` sends it on the resize channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TerminalSize {
    pub width: u16,
    pub height: u16,
}

/// A process started by [`ContainerRuntime::exec_stream`]: its streams, its terminal and its exit.
pub struct ExecSession {
    /// The process's stdin when requested; dropping it closes the process's stdin.
    pub stdin: Option<Box<dyn tokio::io::AsyncWrite + Send + Unpin>>,
    /// The process's stdout (with a TTY: the terminal's output).
    pub stdout: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>,
    /// The process's stderr; `None` with a TTY.
    pub stderr: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>,
    /// Terminal size changes; `Some` only with a TTY.
    pub resize: Option<tokio::sync::mpsc::UnboundedSender<TerminalSize>>,
    /// Resolves to the process's exit code (128 + signal when killed by one).
    pub exit: futures::future::BoxFuture<'static, Result<i32, RuntimeError>>,
}

impl std::fmt::Debug for ExecSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSession")
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .field("tty", &self.resize.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a runtime call failed. Pull errors are told apart because they become their own waiting
/// reasons (`ErrImagePull`, `ErrImageNeverPull`, `InvalidImageName`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    #[error("{message}")]
    ImagePull { image: String, message: String },
    #[error("Container image \"{image}\" is not present with pull policy of Never")]
    ImageNeverPull { image: String },
    #[error("Failed to apply default image tag \"{image}\": {message}")]
    InvalidImageName { image: String, message: String },
    #[error("no such {kind} {id}")]
    NotFound { kind: &'static str, id: String },
    #[error("exec timed out after {0:?}")]
    Timeout(Duration),
    #[error("{op}: {message}")]
    Failed { op: &'static str, message: String },
    /// A port-forward connection to the pod could not be made; the message is the runtime's
    /// whole text (containerd's `failed to connect to localhost:P inside namespace ...`).
    #[error("{0}")]
    PortForward(String),
}

/// The operations the agent needs from a container runtime.
#[async_trait]
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Makes `image` present according to `policy`.
    async fn ensure_image(&self, image: &str, policy: PullPolicy) -> Result<ImageInfo, RuntimeError>;
    /// Creates the pod's sandbox (namespaces, network); idempotent per pod UID.
    async fn run_sandbox(&self, config: &SandboxConfig) -> Result<SandboxInfo, RuntimeError>;
    /// The pod's sandbox, if one exists.
    async fn sandbox(&self, pod_uid: &str) -> Result<Option<SandboxInfo>, RuntimeError>;
    /// Every sandbox on the node (to find pods that no longer exist).
    async fn list_sandboxes(&self) -> Result<Vec<SandboxInfo>, RuntimeError>;
    /// Tears the sandbox down (network, namespaces) and removes the pod's containers.
    async fn stop_sandbox(&self, pod_uid: &str) -> Result<(), RuntimeError>;
    /// Creates and starts a container in the sandbox; returns its ID.
    async fn start_container(&self, sandbox: &SandboxInfo, config: &ContainerConfig) -> Result<String, RuntimeError>;
    /// SIGTERM (or the image's STOPSIGNAL), then SIGKILL after `grace`. Stopping a stopped
    /// container is not an error.
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), RuntimeError>;
    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError>;
    /// Every container instance of the pod, running or exited.
    async fn list_containers(&self, pod_uid: &str) -> Result<Vec<ContainerInfo>, RuntimeError>;
    /// The container's CRI-format log file.
    fn log_path(&self, id: &str) -> PathBuf;
    /// Runs `cmd` in the container and collects its output (probes, hooks). Streaming exec for
    /// `kubectl exec` is [`ContainerRuntime::exec_stream`].
    async fn exec(&self, id: &str, cmd: &[String], timeout: Duration) -> Result<ExecOutput, RuntimeError>;
    /// Starts `request.command` in the running container `id` with its streams attached
    /// (`kubectl exec`). The process runs until it exits or the session's stdin and outputs are
    /// dropped and it is killed by the runtime.
    async fn exec_stream(&self, id: &str, request: &ExecRequest) -> Result<ExecSession, RuntimeError> {
        let _ = request;
        Err(RuntimeError::Failed { op: "exec", message: format!("streaming exec is not supported for {id}") })
    }
    /// Opens a TCP connection to `127.0.0.1:port` inside the pod's network namespace
    /// (`kubectl port-forward`), so a server bound to the pod's loopback only is reachable too.
    async fn port_forward(&self, pod_uid: &str, port: u16) -> Result<tokio::net::TcpStream, RuntimeError> {
        let _ = port;
        Err(RuntimeError::Failed { op: "port-forward", message: format!("not supported for pod {pod_uid}") })
    }
    /// The UIDs of pods one of whose containers just exited, so the agent syncs that pod at once
    /// instead of on its next relist (an event-driven PLEG; the relist stays as the fallback, so
    /// a missed or lagged event only costs time). `None`: the runtime sends no events.
    fn exits(&self) -> Option<broadcast::Receiver<String>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports_become_port_mappings() {
        let spec: k8s_openapi::api::core::v1::PodSpec = serde_json::from_value(serde_json::json!({
            "initContainers": [{"name": "i", "ports": [{"containerPort": 1, "hostPort": 1}]}],
            "containers": [
                {"name": "a", "ports": [
                    {"containerPort": 80, "hostPort": 18080},
                    {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "127.0.0.1"},
                    {"containerPort": 8080},
                ]},
                {"name": "b"},
            ],
        }))
        .expect("spec");
        let m = |h, c, p: &str, ip: &str| PortMapping {
            host_port: h,
            container_port: c,
            protocol: p.into(),
            host_ip: ip.into(),
        };
        assert_eq!(port_mappings(&spec), vec![m(18080, 80, "tcp", ""), m(5353, 53, "udp", "127.0.0.1")]);
    }

    #[test]
    fn pull_policy_defaults() {
        let cases = [
            (None, "nginx", PullPolicy::Always),
            (None, "nginx:latest", PullPolicy::Always),
            (None, "nginx:1.27", PullPolicy::IfNotPresent),
            (None, "localhost:5000/app", PullPolicy::Always),
            (None, "localhost:5000/app:v1", PullPolicy::IfNotPresent),
            (None, "nginx@sha256:abc", PullPolicy::IfNotPresent),
            (Some("Never"), "nginx", PullPolicy::Never),
            (Some("Always"), "nginx:1", PullPolicy::Always),
            (Some("IfNotPresent"), "nginx", PullPolicy::IfNotPresent),
        ];
        for (policy, image, want) in cases {
            assert_eq!(PullPolicy::of(policy, image), want, "{policy:?} {image}");
        }
    }
}
