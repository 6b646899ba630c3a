//! An in-memory [`ContainerRuntime`] for tests: containers "run" on wall-clock time following a
//! per-container script, images can be made to fail, exec answers are set per container name, and
//! every call is recorded.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::jiff::Timestamp;
use parking_lot::Mutex;

use crate::runtime::{
    ContainerConfig, ContainerInfo, ContainerRuntime, ContainerState, ExecOutput, ImageInfo, PullPolicy, RuntimeError,
    SandboxConfig, SandboxInfo,
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
    next_id: u64,
    next_ip: u32,
}

/// The fake runtime.
#[derive(Default)]
pub struct FakeRuntime {
    state: Mutex<State>,
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

    fn log_path(&self, id: &str) -> PathBuf {
        PathBuf::from(format!("/fake/logs/{id}.log"))
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
}
