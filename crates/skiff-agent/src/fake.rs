//! An in-memory [`ContainerRuntime`] for tests: containers "run" on wall-clock time following a
//! per-container script, images can be made to fail, exec answers are set per container name, and
//! every call is recorded. Streaming exec runs a tiny command language ([`FakeRuntime`]'s
//! `exec_stream`): `exit N`, `cat`, `sleep`, `stderr WORDS...`, and anything else echoes its
//! arguments.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::jiff::Timestamp;
use parking_lot::Mutex;
use tokio::sync::broadcast;

use crate::runtime::{
    ContainerConfig, ContainerInfo, ContainerRuntime, ContainerState, ExecOutput, ExecRequest, ExecSession, ImageInfo,
    PullPolicy, RuntimeError, SandboxConfig, SandboxInfo, TerminalSize,
};

/// What one run of a container does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// Runs until stopped.
    Forever,
    /// Exits with `code` after `after`.
    Exit { code: i32, after: Duration },
}

/// A recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    EnsureImage { image: String, policy: PullPolicy },
    RunSandbox { pod_uid: String },
    StopSandbox { pod_uid: String },
    Start { pod_uid: String, name: String, attempt: u32 },
    Stop { id: String, grace: Duration },
    Remove { id: String },
    Exec { id: String, cmd: Vec<String> },
    ExecStream { id: String, command: Vec<String>, stdin: bool, tty: bool },
    PortForward { pod_uid: String, port: u16 },
}

#[derive(Default)]
struct State {
    sandboxes: HashMap<String, SandboxInfo>,
    containers: HashMap<String, (ContainerInfo, Run)>,
    configs: HashMap<String, ContainerConfig>,
    /// Container name → scripted runs by attempt (the last one repeats).
    scripts: HashMap<String, Vec<Run>>,
    bad_images: HashSet<String>,
    present_images: HashSet<String>,
    /// Container name → exec exit code (default 0).
    exec_codes: HashMap<String, i32>,
    calls: Vec<Call>,
    /// Pod port → where a port-forward to it connects ([`FakeRuntime::serve_port`]).
    ports: HashMap<u16, std::net::SocketAddr>,
    next_id: u64,
    next_ip: u32,
}

/// The fake runtime.
#[derive(Default)]
pub struct FakeRuntime {
    state: Mutex<State>,
    /// Streaming exec processes still running.
    exec_live: Arc<AtomicUsize>,
    /// Terminal sizes received by streaming execs, by container ID.
    resizes: Arc<Mutex<Vec<(String, TerminalSize)>>>,
    exits: ExitEvents,
}

/// The sender of [`ContainerRuntime::exits`]: a scripted exit is announced when it happens.
struct ExitEvents(broadcast::Sender<String>);

impl Default for ExitEvents {
    fn default() -> Self {
        ExitEvents(broadcast::channel(1024).0)
    }
}

/// Counts a fake exec process as live until dropped.
struct LiveGuard(Arc<AtomicUsize>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a fake exec process does; returns its exit code (`None`: killed).
async fn fake_process(
    command: Vec<String>,
    tty: bool,
    stdin: Option<tokio::io::DuplexStream>,
    mut stdout: tokio::io::DuplexStream,
    stderr: Option<tokio::io::DuplexStream>,
    killed: &mut tokio::sync::oneshot::Sender<i32>,
) -> Option<i32> {
    use tokio::io::AsyncWriteExt;
    let args = command.get(1..).unwrap_or_default().join(" ");
    let work = async {
        match command.first().map(String::as_str) {
            Some("exit") => args.trim().parse().unwrap_or(0),
            Some("sleep") => std::future::pending().await,
            Some("cat") => {
                if let Some(mut input) = stdin {
                    let _ = tokio::io::copy(&mut input, &mut stdout).await;
                }
                0
            }
            Some("stderr") => {
                let line = format!("{args}\n");
                match (stderr, tty) {
                    (Some(mut e), false) => {
                        let _ = e.write_all(line.as_bytes()).await;
                    }
                    _ => {
                        let _ = stdout.write_all(line.as_bytes()).await;
                    }
                }
                0
            }
            _ => {
                let _ = stdout.write_all(format!("{args}\n").as_bytes()).await;
                0
            }
        }
    };
    tokio::select! {
        code = work => Some(code),
        // The session was dropped: the runtime kills the process.
        _ = killed.closed() => None,
    }
}

fn now() -> Timestamp {
    Timestamp::now()
}

impl FakeRuntime {
    pub fn new() -> FakeRuntime {
        FakeRuntime::default()
    }

    /// Containers named `name` (in any pod) follow `runs`, one per attempt; the last repeats.
    pub fn script(&self, name: &str, runs: Vec<Run>) {
        self.state.lock().scripts.insert(name.to_string(), runs);
    }

    /// Pulls of `image` fail.
    pub fn fail_image(&self, image: &str) {
        self.state.lock().bad_images.insert(image.to_string());
    }

    /// Exec in containers named `name` exits with `code`.
    pub fn set_exec_code(&self, name: &str, code: i32) {
        self.state.lock().exec_codes.insert(name.to_string(), code);
    }

    /// How many streaming exec processes still run.
    pub fn live_execs(&self) -> usize {
        self.exec_live.load(Ordering::SeqCst)
    }

    /// Terminal sizes sent to streaming execs, by container ID.
    pub fn resizes(&self) -> Vec<(String, TerminalSize)> {
        self.resizes.lock().clone()
    }

    /// Port-forwards to the pod port `port` connect to `addr` (e.g. a test's loopback listener).
    pub fn serve_port(&self, port: u16, addr: std::net::SocketAddr) {
        self.state.lock().ports.insert(port, addr);
    }

    /// Everything called so far.
    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().calls.clone()
    }

    /// The config a container was started with.
    pub fn config(&self, id: &str) -> Option<ContainerConfig> {
        self.state.lock().configs.get(id).cloned()
    }

    /// Adds a running pod the agent never started (an orphan): a sandbox and one container.
    pub fn add_orphan(&self, pod_uid: &str, name: &str) -> String {
        let mut s = self.state.lock();
        s.next_id += 1;
        let id = format!("orphan{:06}", s.next_id);
        let t = now();
        s.sandboxes.insert(
            pod_uid.to_string(),
            SandboxInfo {
                id: format!("sb-{pod_uid}"),
                pod_uid: pod_uid.into(),
                name: "orphan".into(),
                namespace: "default".into(),
                ip: Some("10.88.9.9".into()),
                ready: true,
                created_at: t,
            },
        );
        let info = ContainerInfo {
            id: id.clone(),
            pod_uid: pod_uid.into(),
            name: name.into(),
            attempt: 0,
            image: "busybox".into(),
            image_id: "sha256:0".into(),
            hash: 0,
            created_at: t,
            state: ContainerState::Running { started_at: t },
        };
        s.containers.insert(id.clone(), (info, Run::Forever));
        id
    }

    /// Moves scripted containers that are due to exit to `Exited`.
    fn advance(s: &mut State) {
        let t = now();
        for (info, run) in s.containers.values_mut() {
            if let (ContainerState::Running { started_at }, Run::Exit { code, after }) = (&info.state, run) {
                let due = started_at.checked_add(*after).unwrap_or(*started_at);
                if t >= due {
                    info.state = ContainerState::Exited {
                        exit_code: *code,
                        reason: None,
                        message: None,
                        started_at: Some(*started_at),
                        finished_at: due,
                        oom: false,
                    };
                }
            }
        }
    }
}

#[async_trait]
impl ContainerRuntime for FakeRuntime {
    async fn ensure_image(&self, image: &str, policy: PullPolicy) -> Result<ImageInfo, RuntimeError> {
        let mut s = self.state.lock();
        s.calls.push(Call::EnsureImage { image: image.into(), policy });
        let present = s.present_images.contains(image);
        if policy == PullPolicy::Never && !present {
            return Err(RuntimeError::ImageNeverPull { image: image.into() });
        }
        if s.bad_images.contains(image) {
            return Err(RuntimeError::ImagePull {
                image: image.into(),
                message: format!("failed to pull and unpack image \"{image}\": not found"),
            });
        }
        let pulled = policy == PullPolicy::Always || !present;
        s.present_images.insert(image.to_string());
        let repo = image.split('@').next().unwrap_or(image);
        let repo = repo.rsplit_once(':').filter(|(_, tag)| !tag.contains('/')).map_or(repo, |(r, _)| r);
        Ok(ImageInfo {
            image: image.into(),
            image_id: format!("{repo}@sha256:{:064x}", image.len()),
            size: 1024,
            pulled,
        })
    }

    async fn run_sandbox(&self, config: &SandboxConfig) -> Result<SandboxInfo, RuntimeError> {
        let mut s = self.state.lock();
        s.calls.push(Call::RunSandbox { pod_uid: config.pod_uid.clone() });
        if let Some(existing) = s.sandboxes.get(&config.pod_uid).filter(|sb| sb.ready) {
            return Ok(existing.clone());
        }
        s.next_ip += 1;
        let ip = format!("10.88.{}.{}", s.next_ip / 250, s.next_ip % 250 + 2);
        let info = SandboxInfo {
            id: format!("sb-{}", config.pod_uid),
            pod_uid: config.pod_uid.clone(),
            name: config.name.clone(),
            namespace: config.namespace.clone(),
            ip: Some(ip),
            ready: true,
            created_at: now(),
        };
        s.sandboxes.insert(config.pod_uid.clone(), info.clone());
        Ok(info)
    }

    async fn sandbox(&self, pod_uid: &str) -> Result<Option<SandboxInfo>, RuntimeError> {
        Ok(self.state.lock().sandboxes.get(pod_uid).cloned())
    }

    async fn list_sandboxes(&self) -> Result<Vec<SandboxInfo>, RuntimeError> {
        Ok(self.state.lock().sandboxes.values().cloned().collect())
    }

    async fn stop_sandbox(&self, pod_uid: &str) -> Result<(), RuntimeError> {
        let mut s = self.state.lock();
        s.calls.push(Call::StopSandbox { pod_uid: pod_uid.into() });
        s.sandboxes.remove(pod_uid);
        Ok(())
    }

    async fn start_container(&self, sandbox: &SandboxInfo, config: &ContainerConfig) -> Result<String, RuntimeError> {
        let mut s = self.state.lock();
        s.calls.push(Call::Start {
            pod_uid: sandbox.pod_uid.clone(),
            name: config.name.clone(),
            attempt: config.attempt,
        });
        if !s.sandboxes.get(&sandbox.pod_uid).is_some_and(|sb| sb.ready) {
            return Err(RuntimeError::NotFound { kind: "sandbox", id: sandbox.id.clone() });
        }
        s.next_id += 1;
        let id = format!("{:012x}{:052x}", s.next_id, 0);
        let run = s
            .scripts
            .get(&config.name)
            .and_then(|r| r.get(config.attempt as usize).or(r.last()))
            .copied()
            .unwrap_or(Run::Forever);
        let t = now();
        let info = ContainerInfo {
            id: id.clone(),
            pod_uid: sandbox.pod_uid.clone(),
            name: config.name.clone(),
            attempt: config.attempt,
            image: config.image.clone(),
            image_id: config.image_id.clone(),
            hash: config.hash,
            created_at: t,
            state: ContainerState::Running { started_at: t },
        };
        s.containers.insert(id.clone(), (info, run));
        s.configs.insert(id.clone(), config.clone());
        if let Run::Exit { after, .. } = run {
            let (exits, uid) = (self.exits.0.clone(), sandbox.pod_uid.clone());
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = exits.send(uid);
            });
        }
        Ok(id)
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let mut s = self.state.lock();
        s.calls.push(Call::Stop { id: id.into(), grace });
        Self::advance(&mut s);
        let Some((info, _)) = s.containers.get_mut(id) else {
            return Err(RuntimeError::NotFound { kind: "container", id: id.into() });
        };
        if let ContainerState::Running { started_at } = info.state {
            // SIGTERM, handled: 128 + 15.
            info.state = ContainerState::Exited {
                exit_code: 143,
                reason: None,
                message: None,
                started_at: Some(started_at),
                finished_at: now(),
                oom: false,
            };
        }
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        let mut s = self.state.lock();
        s.calls.push(Call::Remove { id: id.into() });
        s.containers.remove(id);
        Ok(())
    }

    async fn list_containers(&self, pod_uid: &str) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let mut s = self.state.lock();
        Self::advance(&mut s);
        Ok(s.containers.values().filter(|(c, _)| c.pod_uid == pod_uid).map(|(c, _)| c.clone()).collect())
    }

    /// The path the container was started with, else a fake one.
    fn log_path(&self, id: &str) -> PathBuf {
        match self.state.lock().configs.get(id).map(|c| c.log_path.clone()) {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => PathBuf::from(format!("/fake/logs/{id}.log")),
        }
    }

    async fn exec(&self, id: &str, cmd: &[String], _timeout: Duration) -> Result<ExecOutput, RuntimeError> {
        let mut s = self.state.lock();
        s.calls.push(Call::Exec { id: id.into(), cmd: cmd.to_vec() });
        Self::advance(&mut s);
        let name = match s.containers.get(id) {
            Some((c, _)) if c.is_running() => c.name.clone(),
            _ => return Err(RuntimeError::NotFound { kind: "running container", id: id.into() }),
        };
        let code = s.exec_codes.get(&name).copied().unwrap_or(0);
        Ok(ExecOutput {
            exit_code: code,
            stdout: Vec::new(),
            stderr: if code == 0 { Vec::new() } else { b"exec failed\n".to_vec() },
        })
    }

    /// Connects to the address [`FakeRuntime::serve_port`] gave the port (the fake has no network
    /// namespaces); an unknown port is refused, worded as containerd words it.
    async fn port_forward(&self, pod_uid: &str, port: u16) -> Result<tokio::net::TcpStream, RuntimeError> {
        let (id, addr) = {
            let mut s = self.state.lock();
            s.calls.push(Call::PortForward { pod_uid: pod_uid.into(), port });
            let id = s
                .sandboxes
                .get(pod_uid)
                .map(|sb| sb.id.clone())
                .ok_or_else(|| RuntimeError::NotFound { kind: "sandbox", id: pod_uid.into() })?;
            (id, s.ports.get(&port).copied())
        };
        let refused = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let result = match addr {
            Some(addr) => tokio::net::TcpStream::connect(addr).await,
            None => Err(refused()),
        };
        result.map_err(|e| RuntimeError::PortForward(crate::netns::dial_error(&id, port, &e)))
    }

    fn exits(&self) -> Option<broadcast::Receiver<String>> {
        Some(self.exits.0.subscribe())
    }

    async fn exec_stream(&self, id: &str, request: &ExecRequest) -> Result<ExecSession, RuntimeError> {
        {
            let mut s = self.state.lock();
            Self::advance(&mut s);
            if !s.containers.get(id).is_some_and(|(c, _)| c.is_running()) {
                return Err(RuntimeError::NotFound { kind: "running container", id: id.into() });
            }
            s.calls.push(Call::ExecStream {
                id: id.into(),
                command: request.command.clone(),
                stdin: request.stdin,
                tty: request.tty,
            });
        }
        const PIPE: usize = 64 * 1024;
        let (out_w, out_r) = tokio::io::duplex(PIPE);
        let (err_w, err_r) = if request.tty {
            (None, None)
        } else {
            let (w, r) = tokio::io::duplex(PIPE);
            (Some(w), Some(r))
        };
        let (in_w, in_r) = if request.stdin {
            let (w, r) = tokio::io::duplex(PIPE);
            (Some(w), Some(r))
        } else {
            (None, None)
        };
        let resize = if request.tty {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<TerminalSize>();
            let (sizes, id) = (self.resizes.clone(), id.to_string());
            tokio::spawn(async move {
                while let Some(size) = rx.recv().await {
                    sizes.lock().push((id.clone(), size));
                }
            });
            Some(tx)
        } else {
            None
        };
        let (mut exit_tx, exit_rx) = tokio::sync::oneshot::channel::<i32>();
        self.exec_live.fetch_add(1, Ordering::SeqCst);
        let guard = LiveGuard(self.exec_live.clone());
        let (command, tty) = (request.command.clone(), request.tty);
        tokio::spawn(async move {
            let _guard = guard;
            if let Some(code) = fake_process(command, tty, in_r, out_w, err_w, &mut exit_tx).await {
                let _ = exit_tx.send(code);
            }
        });
        Ok(ExecSession {
            stdin: in_w.map(|w| Box::new(w) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>),
            stdout: Some(Box::new(out_r)),
            stderr: err_r.map(|r| Box::new(r) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            resize,
            exit: Box::pin(async move {
                exit_rx.await.map_err(|_| RuntimeError::Failed { op: "exec", message: "the process was killed".into() })
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scripted_runs_exit_and_stop() {
        let rt = FakeRuntime::new();
        rt.script("app", vec![Run::Exit { code: 1, after: Duration::ZERO }, Run::Forever]);
        let sb =
            rt.run_sandbox(&SandboxConfig { pod_uid: "u".into(), ..SandboxConfig::default() }).await.expect("sandbox");
        assert_eq!(sb.ip.as_deref(), Some("10.88.0.3"));
        let id = rt
            .start_container(&sb, &ContainerConfig { name: "app".into(), ..ContainerConfig::default() })
            .await
            .expect("start");
        let listed = rt.list_containers("u").await.expect("list");
        assert_eq!(listed[0].exit().map(|e| e.0), Some(1));
        let id2 = rt
            .start_container(&sb, &ContainerConfig { name: "app".into(), attempt: 1, ..ContainerConfig::default() })
            .await
            .expect("start");
        assert!(rt.list_containers("u").await.expect("list").iter().any(|c| c.id == id2 && c.is_running()));
        rt.stop_container(&id2, Duration::from_secs(2)).await.expect("stop");
        assert!(rt.list_containers("u").await.expect("list").iter().all(|c| c.is_exited()));
        assert!(rt.exec(&id, &["true".into()], Duration::from_secs(1)).await.is_err());
        let img = rt.ensure_image("nginx:1.27", PullPolicy::IfNotPresent).await.expect("image");
        assert!(img.image_id.starts_with("nginx@sha256:"));
        rt.fail_image("bad:1");
        assert!(matches!(
            rt.ensure_image("bad:1", PullPolicy::IfNotPresent).await,
            Err(RuntimeError::ImagePull { .. })
        ));
    }

    #[tokio::test]
    async fn streaming_exec_language() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let rt = FakeRuntime::new();
        let sb =
            rt.run_sandbox(&SandboxConfig { pod_uid: "u".into(), ..SandboxConfig::default() }).await.expect("sandbox");
        let id = rt
            .start_container(&sb, &ContainerConfig { name: "app".into(), ..ContainerConfig::default() })
            .await
            .expect("start");
        let req = |cmd: &[&str], stdin: bool, tty: bool| ExecRequest {
            command: cmd.iter().map(|s| s.to_string()).collect(),
            stdin,
            tty,
        };
        async fn read_all(r: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>) -> String {
            let mut out = String::new();
            if let Some(mut r) = r {
                r.read_to_string(&mut out).await.expect("read");
            }
            out
        }
        let s = rt.exec_stream(&id, &req(&["echo", "a", "b"], false, false)).await.expect("exec");
        assert!(s.stdin.is_none() && s.resize.is_none());
        assert_eq!(read_all(s.stdout).await, "a b\n");
        assert_eq!(s.exit.await, Ok(0));
        let s = rt.exec_stream(&id, &req(&["exit", "7"], false, false)).await.expect("exec");
        assert_eq!(s.exit.await, Ok(7));
        let s = rt.exec_stream(&id, &req(&["stderr", "bad"], false, false)).await.expect("exec");
        assert_eq!((read_all(s.stderr).await, read_all(s.stdout).await), ("bad\n".to_string(), String::new()));
        let s = rt.exec_stream(&id, &req(&["stderr", "tty"], false, true)).await.expect("exec");
        assert!(s.stderr.is_none() && s.resize.is_some());
        assert_eq!(read_all(s.stdout).await, "tty\n");
        let mut s = rt.exec_stream(&id, &req(&["cat"], true, false)).await.expect("exec");
        let mut input = s.stdin.take().expect("stdin");
        input.write_all(b"in\n").await.expect("write");
        drop(input);
        assert_eq!(read_all(s.stdout).await, "in\n");
        assert_eq!(s.exit.await, Ok(0));
        let s = rt.exec_stream(&id, &req(&["sleep"], false, false)).await.expect("exec");
        assert_eq!(rt.live_execs(), 1);
        drop(s);
        for _ in 0..100 {
            if rt.live_execs() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(rt.live_execs(), 0, "dropping the session kills the process");
        rt.stop_container(&id, Duration::from_secs(1)).await.expect("stop");
        assert!(matches!(rt.exec_stream(&id, &req(&["echo"], false, false)).await, Err(RuntimeError::NotFound { .. })));
    }
}
