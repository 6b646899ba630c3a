//! Container lifecycle on top of runc: create (overlay rootfs, `config.json`, `runc create`),
//! start, observe, signal, stop, remove.
//!
//! Design (stdio and exit codes): the agent process is the containers' reaper, as a
//! containerd shim is. [`Runtime::new`] makes it a child subreaper
//! (`PR_SET_CHILD_SUBREAPER`), then `runc create` runs in runc's pass-through stdio mode with
//! the write ends of two pipes as its stdout/stderr: the container's init process inherits them
//! and, when runc exits, is re-parented to the agent. A task per stream turns the pipe into CRI
//! log lines ([`crate::logs`]); a pidfd on the init pid tells when it exits and `waitpid` yields the status;
//! since the cgroup still exists until `runc delete`, its `oom_kill` counter tells an OOM kill
//! apart from any other SIGKILL. Limitation: an agent restart loses the pipes and the exit code of
//! containers started before it (kubelet's checkpointing is future work).

use crate::cgroup;
use crate::image::{Image, ImageStore};
use crate::logs::{self, SharedLog, Stream};
use crate::rootfs::{self, RootfsError};
use crate::runc::{Runc, RuncError};
use crate::sandbox::Sandbox;
use crate::spec::{self, ContainerConfig, SpecContext, SpecError};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A container operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// Root file system trouble.
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    /// The runtime spec could not be built.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// runc failed.
    #[error(transparent)]
    Runc(#[from] RuncError),
    /// Bundle or log file trouble.
    #[error("{context} {path}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The container name cannot be part of an id.
    #[error("invalid container name {0:?}")]
    InvalidName(String),
}

fn io(context: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ContainerError {
    let path = path.to_path_buf();
    move |source| ContainerError::Io { context, path, source }
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    /// Exit code (128 + signal for a signal death); `None` when the agent could not observe it.
    pub exit_code: Option<i32>,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// The memory cgroup recorded an OOM kill.
    pub oom_killed: bool,
    /// When the exit was observed.
    pub finished_at: jiff::Timestamp,
}

impl ExitInfo {
    /// Kubernetes' `state.terminated.reason`: `OOMKilled`, `Completed` or `Error`.
    pub fn reason(&self) -> &'static str {
        if self.oom_killed {
            "OOMKilled"
        } else if self.exit_code == Some(0) {
            "Completed"
        } else {
            "Error"
        }
    }
}

/// Where a container is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerStatus {
    /// Created, not started.
    Created,
    /// Its process runs.
    Running {
        /// When it was started.
        started_at: jiff::Timestamp,
    },
    /// It ended.
    Exited(ExitInfo),
}

/// Settings of the container runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where container bundles (rootfs mounts, config.json) live.
    pub state_dir: PathBuf,
    /// runc's `--root`.
    pub runc_root: PathBuf,
    /// The runc binary.
    pub runc_binary: PathBuf,
}

/// Creates containers. One per agent.
#[derive(Clone)]
pub struct Runtime {
    runc: Runc,
    state_dir: PathBuf,
    images: ImageStore,
    /// Whether this process is a child subreaper (exit codes observable).
    reaper: bool,
}

impl Runtime {
    /// A runtime using `images` for root file systems. Makes this process a child subreaper so
    /// container init processes are re-parented to it (see the module docs).
    pub fn new(config: RuntimeConfig, images: ImageStore) -> Result<Self, ContainerError> {
        for d in [&config.state_dir, &config.runc_root] {
            std::fs::create_dir_all(d).map_err(io("creating", d))?;
        }
        let reaper = nix::sys::prctl::set_child_subreaper(true).is_ok();
        if !reaper {
            tracing::warn!("not a child subreaper: container exit codes will be unknown");
        }
        Ok(Self {
            runc: Runc::new(&config.runc_binary, &config.runc_root),
            state_dir: config.state_dir,
            images,
            reaper,
        })
    }

    /// The runc driver (for listing or cleaning up by id).
    pub fn runc(&self) -> &Runc {
        &self.runc
    }

    /// Creates (does not start) container `config` of `sandbox` from `image`, logging to
    /// `log_path` in the CRI format. On failure nothing is left behind.
    pub async fn create(
        &self,
        sandbox: &Sandbox,
        config: &ContainerConfig,
        image: &Image,
        log_path: &Path,
    ) -> Result<Container, ContainerError> {
        let name = &config.name;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
            return Err(ContainerError::InvalidName(name.clone()));
        }
        let id = container_id(&sandbox.pod_uid, name);
        let bundle = self.state_dir.join(&id);
        std::fs::create_dir_all(&bundle).map_err(io("creating", &bundle))?;
        let container = Container {
            id: id.clone(),
            name: name.clone(),
            bundle: bundle.clone(),
            log_path: log_path.to_path_buf(),
            cgroups_path: cgroup::container_path(&sandbox.pod_uid, &id),
            runc: self.runc.clone(),
            started_at: Arc::new(parking_lot::Mutex::new(None)),
            exit: None,
        };
        match self.prepare_and_create(sandbox, config, image, container).await {
            Ok(c) => Ok(c),
            Err((e, c)) => {
                let _ = self.runc.delete_force(&c.id).await;
                let _ = rootfs::unmount(&c.bundle);
                let _ = std::fs::remove_dir_all(&c.bundle);
                Err(e)
            }
        }
    }

    async fn prepare_and_create(
        &self,
        sandbox: &Sandbox,
        config: &ContainerConfig,
        image: &Image,
        mut c: Container,
    ) -> Result<Container, (ContainerError, Container)> {
        macro_rules! try_ {
            ($e:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(e) => return Err((e.into(), c)),
                }
            };
        }
        let layers = self.images.layer_dirs(image);
        let root = try_!(rootfs::mount_overlay(&layers, &c.bundle));
        let passwd = std::fs::read_to_string(root.path.join("etc/passwd")).unwrap_or_default();
        let group = std::fs::read_to_string(root.path.join("etc/group")).unwrap_or_default();
        let user = try_!(spec::resolve_user(&image.config.user, config, &passwd, &group));
        let ctx = SpecContext {
            rootfs: root.path.clone(),
            hostname: sandbox.hostname.clone(),
            netns: Some(sandbox.namespaces.net.clone()),
            ipcns: Some(sandbox.namespaces.ipc.clone()),
            utsns: Some(sandbox.namespaces.uts.clone()),
            etc_files: sandbox.etc_files(),
            cgroups_path: c.cgroups_path.clone(),
        };
        let json = try_!(spec::build_spec(config, &image.config, &user, &ctx));
        try_!(spec::write_config(&c.bundle, &json));
        if let Some(parent) = c.log_path.parent() {
            try_!(std::fs::create_dir_all(parent).map_err(io("creating", parent)));
        }
        let log_file = try_!(
            std::fs::OpenOptions::new().create(true).append(true).open(&c.log_path).map_err(io("opening", &c.log_path))
        );
        let log: SharedLog = Arc::new(parking_lot::Mutex::new(log_file));
        let (out_r, out_w) =
            try_!(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io("pipe", &c.bundle)(e.into())));
        let (err_r, err_w) =
            try_!(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io("pipe", &c.bundle)(e.into())));
        let pid_file = c.bundle.join("init.pid");
        let created = self.runc.create(&c.id, &c.bundle, &pid_file, Stdio::from(out_w), Stdio::from(err_w)).await;
        // Our copies of the write ends are gone (moved into the runc child and dropped with it);
        // only the container holds them now, so the copiers see EOF when it exits.
        let copiers = vec![spawn_copier(out_r, Stream::Stdout, log.clone()), spawn_copier(err_r, Stream::Stderr, log)];
        try_!(created);
        let pid_text = try_!(std::fs::read_to_string(&pid_file).map_err(io("reading", &pid_file)));
        let pid: i32 = try_!(
            pid_text
                .trim()
                .parse()
                .map_err(|_| io("parsing", &pid_file)(std::io::Error::other(format!("bad pid {pid_text:?}"))))
        );
        let (tx, rx) = watch::channel(None);
        tokio::spawn(observe_exit(
            pid,
            self.reaper,
            c.id.clone(),
            c.cgroups_path.clone(),
            self.runc.clone(),
            copiers,
            tx,
        ));
        c.exit = Some(rx);
        Ok(c)
    }
}

/// A unique runc id: `<pod-uid prefix>-<name>-<nanos>`.
fn container_id(pod_uid: &str, name: &str) -> String {
    let prefix: String = pod_uid.chars().filter(|c| c.is_ascii_alphanumeric()).take(12).collect();
    let nanos = jiff::Timestamp::now().as_nanosecond();
    format!("{prefix}-{name}-{:x}", nanos as u64)
}

fn spawn_copier(fd: std::os::fd::OwnedFd, stream: Stream, log: SharedLog) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let file = tokio::fs::File::from_std(std::fs::File::from(fd));
        logs::copy_stream(file, stream, log).await;
    })
}

/// Waits for the init process, reads the OOM counter, drains the logs, publishes the exit.
async fn observe_exit(
    pid: i32,
    reaper: bool,
    id: String,
    cgroups_path: String,
    runc: Runc,
    copiers: Vec<tokio::task::JoinHandle<()>>,
    tx: watch::Sender<Option<ExitInfo>>,
) {
    use nix::sys::wait::WaitStatus;
    let waited = if reaper { wait_child(pid).await } else { None };
    let (exit_code, signal) = match waited {
        Some(WaitStatus::Exited(_, code)) => (Some(code), None),
        Some(WaitStatus::Signaled(_, sig, _)) => (Some(128 + sig as i32), Some(sig as i32)),
        _ => {
            // Not our child: poll runc until the container stops.
            loop {
                match runc.state(&id).await {
                    Ok(s) if s.status != "stopped" => tokio::time::sleep(Duration::from_millis(200)).await,
                    _ => break,
                }
            }
            (None, None)
        }
    };
    let oom_killed = cgroup::oom_kills(&cgroups_path).is_some_and(|n| n > 0);
    for c in copiers {
        let _ = tokio::time::timeout(Duration::from_secs(2), c).await;
    }
    let _ = tx.send(Some(ExitInfo { exit_code, signal, oom_killed, finished_at: jiff::Timestamp::now() }));
}

/// Waits for our child `pid` to exit without holding a thread: a pidfd becomes readable when the
/// process exits, then a non-blocking `waitpid` reaps it. `None` if `pid` is not our child.
async fn wait_child(pid: i32) -> Option<nix::sys::wait::WaitStatus> {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let raw = rustix::process::Pid::from_raw(pid)?;
    let pidfd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty()).ok()?;
    // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays open and the same for the
    // AsyncFd's whole life (the requirement of `register`).
    #[allow(unsafe_code)]
    let pidfd = unsafe { tokio::io::unix::AsyncFd::register(pidfd) }.ok()?;
    loop {
        let mut ready = pidfd.readable().await.ok()?;
        match waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => ready.clear_ready(),
            Ok(status) => return Some(status),
            Err(_) => return None,
        }
    }
}

/// A created container.
#[derive(Debug)]
pub struct Container {
    /// runc's id.
    pub id: String,
    /// The container's name in the pod.
    pub name: String,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The CRI log file.
    pub log_path: PathBuf,
    /// The cgroup path.
    pub cgroups_path: String,
    runc: Runc,
    started_at: Arc<parking_lot::Mutex<Option<jiff::Timestamp>>>,
    exit: Option<watch::Receiver<Option<ExitInfo>>>,
}

impl Container {
    /// Starts the container's process.
    pub async fn start(&self) -> Result<(), ContainerError> {
        self.runc.start(&self.id).await?;
        *self.started_at.lock() = Some(jiff::Timestamp::now());
        Ok(())
    }

    /// The current status.
    pub fn status(&self) -> ContainerStatus {
        if let Some(exit) = self.exit.as_ref().and_then(|rx| rx.borrow().clone()) {
            return ContainerStatus::Exited(exit);
        }
        match *self.started_at.lock() {
            Some(started_at) => ContainerStatus::Running { started_at },
            None => ContainerStatus::Created,
        }
    }

    /// Waits until the container has exited.
    pub async fn wait(&self) -> ExitInfo {
        let Some(mut rx) = self.exit.clone() else {
            return ExitInfo { exit_code: None, signal: None, oom_killed: false, finished_at: jiff::Timestamp::now() };
        };
        loop {
            if let Some(exit) = rx.borrow_and_update().clone() {
                return exit;
            }
            if rx.changed().await.is_err() {
                let last = rx.borrow().clone();
                return last.unwrap_or(ExitInfo {
                    exit_code: None,
                    signal: None,
                    oom_killed: false,
                    finished_at: jiff::Timestamp::now(),
                });
            }
        }
    }

    /// Sends `signal` (`TERM`, `KILL`, `HUP`, ...) to the container's init process.
    pub async fn kill(&self, signal: &str) -> Result<(), ContainerError> {
        Ok(self.runc.kill(&self.id, signal).await?)
    }

    /// SIGTERM, then SIGKILL after `grace` if still running; returns how it ended.
    pub async fn stop(&self, grace: Duration) -> ExitInfo {
        if let ContainerStatus::Exited(exit) = self.status() {
            return exit;
        }
        let _ = self.kill("TERM").await;
        match tokio::time::timeout(grace, self.wait()).await {
            Ok(exit) => exit,
            Err(_) => {
                let _ = self.kill("KILL").await;
                self.wait().await
            }
        }
    }

    /// Deletes the container (killing it if needed), unmounts its root file system and removes
    /// its bundle. The log file stays (the agent rotates and removes logs).
    pub async fn remove(self) -> Result<(), ContainerError> {
        self.runc.delete_force(&self.id).await?;
        if self.exit.is_some() {
            let _ = tokio::time::timeout(Duration::from_secs(5), self.wait()).await;
        }
        rootfs::unmount(&self.bundle)?;
        std::fs::remove_dir_all(&self.bundle).map_err(io("removing", &self.bundle))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_reasons() {
        let e = |code: Option<i32>, oom: bool| ExitInfo {
            exit_code: code,
            signal: None,
            oom_killed: oom,
            finished_at: jiff::Timestamp::UNIX_EPOCH,
        };
        assert_eq!(e(Some(0), false).reason(), "Completed");
        assert_eq!(e(Some(1), false).reason(), "Error");
        assert_eq!(e(Some(137), true).reason(), "OOMKilled");
        assert_eq!(e(None, false).reason(), "Error");
    }

    #[test]
    fn ids_are_runc_safe() {
        let id = container_id("0c9a-55f1/..x", "app");
        assert!(id.starts_with("0c9a55f1x-app-"), "{id}");
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
