//! Container lifecycle on top of runc: create (overlay rootfs, `config.json`, `runc create`),
//! start, observe, signal, stop, remove; and adoption of the containers a previous agent process
//! started ([`Runtime::recover`]).
//!
//! Design (exit codes): the agent process is the containers' reaper, as a containerd shim is.
//! [`Runtime::new`] makes it a child subreaper (`PR_SET_CHILD_SUBREAPER`), so when `runc create`
//! exits the container's init process is re-parented to the agent; a pidfd on the init pid tells
//! when it exits and `waitpid` yields the status. Since the cgroup still exists until
//! `runc delete`, its `oom_kill` counter tells an OOM kill apart from any other SIGKILL.
//!
//! Design (stdio that outlives the agent): the container's stdout and stderr are not pipes to
//! the agent but two named pipes in the bundle, `stdout.fifo` and `stderr.fifo` (the technique
//! containerd uses between its shim and the CRI plugin). The agent creates each FIFO, opens it
//! **read-write** and hands that descriptor to `runc create` as the stream (runc's pass-through
//! mode), so the container's init process inherits it; then it opens its own read-only,
//! non-blocking end and copies lines into the CRI log ([`crate::logs`]). Because the container's
//! descriptor is also a reader, the FIFO always has a reader while the container lives: when
//! the agent dies, the container's writes never fail with `EPIPE`/`SIGPIPE`; they fill the pipe
//! buffer (raised to 1 MiB with `F_SETPIPE_SZ` where allowed) and block only if the agent stays
//! away long enough for that to fill. A restarted agent reopens the FIFOs read-only and drains
//! what was buffered and everything after into the same log file. The agent never holds a write
//! end, so its reader sees end-of-file when the container's last writer exits. Lines the agent
//! had read but not yet written when it was killed (at most one partial line per stream) are
//! lost; nothing else is.
//!
//! Restart safety: each bundle has a `container.json` record ([`crate::state`]: id, name, pod,
//! log and cgroup paths, created/started times and the caller's metadata). [`Runtime::recover`]
//! reads them back: a running container is adopted (same process, same PID, not restarted), its
//! logs reopened and its exit watched through a pidfd. The restarted agent is not its parent, so
//! the exit status cannot be reaped: it is reported as unknown, which the agent turns into
//! containerd's `255`/`Unknown` (or `137`/`OOMKilled` when the cgroup recorded an OOM kill).
//! Containers that were only created (never started), whose record is missing, or that runc
//! no longer knows are removed.

use crate::cgroup;
use crate::image::{Image, ImageStore};
use crate::logs::{self, SharedLog, Stream};
use crate::pidfd::{self, Pidfd};
use crate::rootfs::{self, RootfsError};
use crate::runc::{Launch, Runc, RuncError};
use crate::sandbox::Sandbox;
use crate::spec::{self, ContainerConfig, SpecContext, SpecError};
use crate::state;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::unix::pipe;
use tokio::sync::watch;

/// The record's file name in the bundle.
const RECORD: &str = "container.json";
/// The FIFOs carrying the container's output, in the bundle.
const STDOUT_FIFO: &str = "stdout.fifo";
const STDERR_FIFO: &str = "stderr.fifo";
/// The pipe buffer asked for each FIFO, so a container can keep writing for a while when no
/// agent reads (Linux's default `pipe-max-size` for unprivileged users).
const FIFO_BUFFER: i32 = 1 << 20;

/// containerd's exit code for a container whose exit status could not be observed.
pub const UNKNOWN_EXIT_CODE: i32 = 255;

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
    /// The container record could not be written.
    #[error(transparent)]
    State(#[from] state::StateError),
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
    /// An exit whose status was not observed (adopted containers, see the module docs).
    pub fn unknown(oom_killed: bool) -> ExitInfo {
        ExitInfo { exit_code: None, signal: None, oom_killed, finished_at: jiff::Timestamp::now() }
    }

    /// Kubernetes' `state.terminated.reason`: `OOMKilled`, `Completed`, `Error`, or containerd's
    /// `Unknown` when the status was not observed.
    pub fn reason(&self) -> &'static str {
        match self.exit_code {
            _ if self.oom_killed => "OOMKilled",
            Some(0) => "Completed",
            Some(_) => "Error",
            None => "Unknown",
        }
    }

    /// `state.terminated.exitCode`: the observed code; unobserved, 137 after an OOM kill (the
    /// kernel kills with SIGKILL) or containerd's [`UNKNOWN_EXIT_CODE`].
    pub fn code(&self) -> i32 {
        match self.exit_code {
            Some(code) => code,
            None if self.oom_killed => 137,
            None => UNKNOWN_EXIT_CODE,
        }
    }
}

/// `container.json`: what a restarted agent needs to adopt the container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// runc's id (also the bundle directory's name).
    pub id: String,
    /// The container's name in the pod.
    pub name: String,
    /// The pod's UID.
    pub pod_uid: String,
    /// The CRI log file.
    pub log_path: PathBuf,
    /// The cgroup path.
    pub cgroups_path: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, once started.
    #[serde(default)]
    pub started_at: Option<String>,
    /// The caller's own data (the agent's attempt, image, hash), kept as given.
    #[serde(default)]
    pub metadata: serde_json::Value,
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
        // One subdirectory per container in each: spread over the file system.
        for d in [&config.state_dir, &config.runc_root] {
            crate::spread::create(d).map_err(io("creating", d))?;
        }
        let reaper = nix::sys::prctl::set_child_subreaper(true).is_ok();
        if !reaper {
            tracing::warn!("not a child subreaper: container exit codes will be unknown");
        }
        let runc = Runc::sealed(&config.runc_binary, &config.runc_root).unwrap_or_else(|e| {
            tracing::warn!(binary = %config.runc_binary.display(), error = %e, "cannot make a sealed copy of runc");
            Runc::new(&config.runc_binary, &config.runc_root)
        });
        Ok(Self { runc, state_dir: config.state_dir, images, reaper })
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
        self.launch(Launch::Create, sandbox, config, image, log_path, serde_json::Value::Null).await
    }

    /// Sets container `config.name` of `sandbox` up and, for [`Launch::Run`], starts it (one
    /// `runc run --detach`: running when this returns); [`Launch::Create`] leaves it for
    /// [`Container::start`]. `metadata` is recorded with the container (returned as
    /// [`Container::metadata`] after an agent restart too). On failure nothing is left behind.
    pub async fn launch(
        &self,
        how: Launch,
        sandbox: &Sandbox,
        config: &ContainerConfig,
        image: &Image,
        log_path: &Path,
        metadata: serde_json::Value,
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
            pod_uid: sandbox.pod_uid.clone(),
            bundle: bundle.clone(),
            log_path: log_path.to_path_buf(),
            cgroups_path: cgroup::container_path(&sandbox.pod_uid, &id),
            created_at: jiff::Timestamp::now(),
            metadata,
            runc: self.runc.clone(),
            started_at: Arc::new(parking_lot::Mutex::new(None)),
            exit: None,
        };
        match self.prepare_and_create(how, sandbox, config, image, container).await {
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
        how: Launch,
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
        let log = try_!(open_log(&c.log_path));
        let (out_w, out_r) = try_!(open_fifo(&c.bundle.join(STDOUT_FIFO)));
        let (err_w, err_r) = try_!(open_fifo(&c.bundle.join(STDERR_FIFO)));
        let pid_file = c.bundle.join("init.pid");
        let created = self.runc.launch(how, &c.id, &c.bundle, &pid_file, Stdio::from(out_w), Stdio::from(err_w)).await;
        // Our copies of the write ends are gone (moved into the runc child and dropped with it);
        // only the container holds them now, so the copiers see EOF when it exits.
        let copiers = vec![spawn_copier(out_r, Stream::Stdout, log.clone()), spawn_copier(err_r, Stream::Stderr, log)];
        try_!(created);
        if how == Launch::Run {
            *c.started_at.lock() = Some(jiff::Timestamp::now());
        }
        let pid_text = try_!(std::fs::read_to_string(&pid_file).map_err(io("reading", &pid_file)));
        let pid: i32 = try_!(
            pid_text
                .trim()
                .parse()
                .map_err(|_| io("parsing", &pid_file)(std::io::Error::other(format!("bad pid {pid_text:?}"))))
        );
        try_!(c.save());
        let (tx, rx) = watch::channel(None);
        let observer =
            Observer { id: c.id.clone(), cgroups_path: c.cgroups_path.clone(), runc: self.runc.clone(), copiers, tx };
        tokio::spawn(observer.run(pid, if self.reaper { Waiter::Child } else { Waiter::Runc }));
        c.exit = Some(rx);
        Ok(c)
    }

    /// Adopts the containers a previous agent process left (see the module docs): returns the
    /// running ones and those that exited meanwhile (status unknown); removes the rest (created
    /// but never started, unrecorded, unknown to runc before starting) with their bundles.
    pub async fn recover(&self) -> Vec<Container> {
        let bundles = state::subdirs(&self.state_dir);
        let mut out = Vec::new();
        for bundle in &bundles {
            let id = dir_name(bundle);
            match state::read::<ContainerRecord>(&bundle.join(RECORD)) {
                Ok(Some(record)) if record.id == id => {
                    if let Some(c) = self.adopt(record, bundle.clone()).await {
                        out.push(c);
                    }
                }
                Ok(_) => {
                    tracing::info!(container = %id, "removing a container without a record");
                    discard(&self.runc, &id, bundle).await;
                }
                Err(e) => {
                    tracing::warn!(container = %id, error = %e, "removing a container with an unreadable record");
                    discard(&self.runc, &id, bundle).await;
                }
            }
        }
        // runc containers whose bundle is gone.
        let known: Vec<String> = bundles.iter().map(|b| dir_name(b)).collect();
        for dir in state::subdirs(self.runc.root()) {
            let id = dir_name(&dir);
            if !known.contains(&id) {
                tracing::info!(container = %id, "removing a runc container without a bundle");
                let _ = self.runc.delete_force(&id).await;
            }
        }
        out
    }

    async fn adopt(&self, record: ContainerRecord, bundle: PathBuf) -> Option<Container> {
        let id = record.id.clone();
        let created_at = state::parse_time(Some(&record.created_at)).unwrap_or_else(jiff::Timestamp::now);
        let started_at = state::parse_time(record.started_at.as_deref());
        let mut c = Container {
            id: record.id,
            name: record.name,
            pod_uid: record.pod_uid,
            bundle,
            log_path: record.log_path,
            cgroups_path: record.cgroups_path,
            created_at,
            metadata: record.metadata,
            runc: self.runc.clone(),
            started_at: Arc::new(parking_lot::Mutex::new(started_at.or(Some(created_at)))),
            exit: None,
        };
        let status = self.runc.state(&id).await.map(|s| (s.status, s.pid));
        let live = match status {
            Ok((status, _)) if status == "created" || status == "creating" => {
                tracing::info!(container = %id, "removing a container that was created but never started");
                discard(&self.runc, &id, &c.bundle).await;
                return None;
            }
            Ok((status, pid)) if (status == "running" || status == "paused") && pid > 0 => {
                // The pidfd is opened before runc confirms the pid again, so it cannot name a
                // process that reused the pid.
                let pidfd = pidfd::open(pid).ok();
                let again = self.runc.state(&id).await.map(|s| (s.status, s.pid));
                match (pidfd, again) {
                    (Some(fd), Ok((st, p))) if p == pid && (st == "running" || st == "paused") => Some((fd, pid)),
                    _ => None,
                }
            }
            _ => None,
        };
        let (tx, rx) = watch::channel(None);
        match live {
            Some((pidfd, pid)) => {
                let copiers = match open_log(&c.log_path) {
                    Ok(log) => [(STDOUT_FIFO, Stream::Stdout), (STDERR_FIFO, Stream::Stderr)]
                        .into_iter()
                        .filter_map(|(f, stream)| {
                            let reader = pipe::OpenOptions::new().open_receiver(c.bundle.join(f));
                            match reader {
                                Ok(r) => Some(spawn_copier(r, stream, log.clone())),
                                Err(e) => {
                                    tracing::warn!(container = %id, error = %e, "cannot reopen the output FIFO");
                                    None
                                }
                            }
                        })
                        .collect(),
                    Err(e) => {
                        tracing::warn!(container = %id, error = %e, "cannot reopen the log");
                        Vec::new()
                    }
                };
                let observer = Observer {
                    id: id.clone(),
                    cgroups_path: c.cgroups_path.clone(),
                    runc: self.runc.clone(),
                    copiers,
                    tx,
                };
                tokio::spawn(observer.run_adopted(pidfd, pid));
                tracing::info!(container = %id, "adopted a running container");
            }
            None => {
                let oom = cgroup::oom_kills(&c.cgroups_path).is_some_and(|n| n > 0);
                let _ = tx.send(Some(ExitInfo::unknown(oom)));
            }
        }
        c.exit = Some(rx);
        Some(c)
    }
}

fn dir_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Deletes runc container `id` and its bundle (root file system unmounted first).
async fn discard(runc: &Runc, id: &str, bundle: &Path) {
    let _ = runc.delete_force(id).await;
    let _ = rootfs::unmount(bundle);
    let _ = std::fs::remove_dir_all(bundle);
}

/// The CRI log file, opened for appending (created if needed).
fn open_log(path: &Path) -> Result<SharedLog, ContainerError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
    }
    let file = logs::LogFile::open(path).map_err(io("opening", path))?;
    Ok(Arc::new(parking_lot::Mutex::new(file)))
}

/// Makes the FIFO at `path` and opens the container's end (read-write, so the FIFO always has
/// a reader while the container lives) and then the agent's (read-only, non-blocking). The
/// order matters: opened while a writer exists, the reader sees end-of-file (`EPOLLHUP`) once
/// the last writer closes.
fn open_fifo(path: &Path) -> Result<(std::fs::File, pipe::Receiver), ContainerError> {
    match nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(io("creating FIFO", path)(e.into())),
    }
    let writer = std::fs::OpenOptions::new().read(true).write(true).open(path).map_err(io("opening", path))?;
    if let Err(e) = nix::fcntl::fcntl(&writer, nix::fcntl::FcntlArg::F_SETPIPE_SZ(FIFO_BUFFER)) {
        tracing::debug!(error = %e, "cannot enlarge the FIFO buffer");
    }
    let reader = pipe::OpenOptions::new().open_receiver(path).map_err(io("opening", path))?;
    Ok((writer, reader))
}

/// A unique runc id: `<pod-uid prefix>-<name>-<nanos>`.
fn container_id(pod_uid: &str, name: &str) -> String {
    let prefix: String = pod_uid.chars().filter(|c| c.is_ascii_alphanumeric()).take(12).collect();
    let nanos = jiff::Timestamp::now().as_nanosecond();
    format!("{prefix}-{name}-{:x}", nanos as u64)
}

fn spawn_copier(reader: pipe::Receiver, stream: Stream, log: SharedLog) -> tokio::task::JoinHandle<()> {
    tokio::spawn(logs::copy_stream(reader, stream, log))
}

/// How the exit of a container's init process is waited for.
#[derive(Debug, Clone, Copy)]
enum Waiter {
    /// Our child (we are a subreaper): a pidfd, then `waitpid` for the status.
    Child,
    /// Not ours to reap: poll runc until the container stops.
    Runc,
}

/// Watches one container: waits for its exit, reads the OOM counter, drains the logs and
/// publishes the exit.
struct Observer {
    id: String,
    cgroups_path: String,
    runc: Runc,
    copiers: Vec<tokio::task::JoinHandle<()>>,
    tx: watch::Sender<Option<ExitInfo>>,
}

impl Observer {
    async fn run(self, pid: i32, waiter: Waiter) {
        use nix::sys::wait::WaitStatus;
        let waited = match waiter {
            Waiter::Child => wait_child(pid).await,
            Waiter::Runc => None,
        };
        let (exit_code, signal) = match waited {
            Some(WaitStatus::Exited(_, code)) => (Some(code), None),
            Some(WaitStatus::Signaled(_, sig, _)) => (Some(128 + sig as i32), Some(sig as i32)),
            _ => {
                self.poll_runc().await;
                (None, None)
            }
        };
        self.finish(exit_code, signal).await;
    }

    /// An adopted container: its pidfd becomes readable when it exits; the status is unknown.
    async fn run_adopted(self, fd: std::os::fd::OwnedFd, pid: i32) {
        match Pidfd::register(fd, pid) {
            Ok(pidfd) => {
                let _ = pidfd.exited().await;
            }
            Err(_) => self.poll_runc().await,
        }
        self.finish(None, None).await;
    }

    async fn poll_runc(&self) {
        loop {
            match self.runc.state(&self.id).await {
                Ok(s) if s.status != "stopped" => tokio::time::sleep(Duration::from_millis(200)).await,
                _ => break,
            }
        }
    }

    async fn finish(self, exit_code: Option<i32>, signal: Option<i32>) {
        let oom_killed = cgroup::oom_kills(&self.cgroups_path).is_some_and(|n| n > 0);
        for mut c in self.copiers {
            // A copier whose FIFO never had a writer after it opened would wait forever.
            if tokio::time::timeout(Duration::from_secs(2), &mut c).await.is_err() {
                c.abort();
            }
        }
        let _ = self.tx.send(Some(ExitInfo { exit_code, signal, oom_killed, finished_at: jiff::Timestamp::now() }));
    }
}

/// Waits for our child `pid` to exit without holding a thread, and reaps it. `None` if `pid` is
/// not our child.
async fn wait_child(pid: i32) -> Option<nix::sys::wait::WaitStatus> {
    Pidfd::open(pid).ok()?.reap().await.ok()
}

/// A created container.
#[derive(Debug)]
pub struct Container {
    /// runc's id.
    pub id: String,
    /// The container's name in the pod.
    pub name: String,
    /// The pod's UID.
    pub pod_uid: String,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The CRI log file.
    pub log_path: PathBuf,
    /// The cgroup path.
    pub cgroups_path: String,
    /// When it was created.
    pub created_at: jiff::Timestamp,
    /// The caller's data given to [`Runtime::launch`].
    pub metadata: serde_json::Value,
    runc: Runc,
    started_at: Arc<parking_lot::Mutex<Option<jiff::Timestamp>>>,
    exit: Option<watch::Receiver<Option<ExitInfo>>>,
}

impl Container {
    /// Starts the container's process (and records when).
    pub async fn start(&self) -> Result<(), ContainerError> {
        self.runc.start(&self.id).await?;
        *self.started_at.lock() = Some(jiff::Timestamp::now());
        if let Err(e) = self.save() {
            tracing::warn!(container = %self.id, error = %e, "cannot record the container's start");
        }
        Ok(())
    }

    /// The record a restarted agent reads back.
    pub fn record(&self) -> ContainerRecord {
        ContainerRecord {
            id: self.id.clone(),
            name: self.name.clone(),
            pod_uid: self.pod_uid.clone(),
            log_path: self.log_path.clone(),
            cgroups_path: self.cgroups_path.clone(),
            created_at: state::format_time(self.created_at),
            started_at: self.started_at.lock().map(state::format_time),
            metadata: self.metadata.clone(),
        }
    }

    fn save(&self) -> Result<(), ContainerError> {
        Ok(state::write_atomic(&self.bundle.join(RECORD), &self.record())?)
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
        self.exited().await
    }

    /// A future that ends when the container has exited, independent of `self` (so a watcher
    /// task does not keep the container borrowed or shared).
    pub fn exited(&self) -> impl Future<Output = ExitInfo> + Send + 'static {
        let exit = self.exit.clone();
        async move {
            let Some(mut rx) = exit else {
                return ExitInfo::unknown(false);
            };
            loop {
                if let Some(exit) = rx.borrow_and_update().clone() {
                    return exit;
                }
                if rx.changed().await.is_err() {
                    let last = rx.borrow().clone();
                    return last.unwrap_or(ExitInfo::unknown(false));
                }
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
        let cases = [
            (Some(0), false, "Completed", 0),
            (Some(1), false, "Error", 1),
            (Some(143), false, "Error", 143),
            (Some(137), true, "OOMKilled", 137),
            (None, false, "Unknown", 255),
            (None, true, "OOMKilled", 137),
        ];
        for (code, oom, reason, want) in cases {
            assert_eq!((e(code, oom).reason(), e(code, oom).code()), (reason, want), "{code:?} {oom}");
        }
    }

    #[test]
    fn records_round_trip() {
        let record = ContainerRecord {
            id: "abc-app-1".into(),
            name: "app".into(),
            pod_uid: "uid".into(),
            log_path: "/logs/app/0.log".into(),
            cgroups_path: "/skiff/uid/abc-app-1".into(),
            created_at: "2024-01-01T00:00:00Z".into(),
            started_at: None,
            metadata: serde_json::json!({"attempt": 2, "hash": u64::MAX}),
        };
        let text = serde_json::to_string(&record).expect("json");
        assert_eq!(serde_json::from_str::<ContainerRecord>(&text).expect("parse"), record);
        let old: ContainerRecord = serde_json::from_str(
            r#"{"id":"i","name":"n","pod_uid":"u","log_path":"/l","cgroups_path":"/c","created_at":"t"}"#,
        )
        .expect("optional fields default");
        assert_eq!((old.started_at, old.metadata), (None, serde_json::Value::Null));
    }

    #[test]
    fn ids_are_runc_safe() {
        let id = container_id("0c9a-55f1/..x", "app");
        assert!(id.starts_with("0c9a55f1x-app-"), "{id}");
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
