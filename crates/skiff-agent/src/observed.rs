//! What the agent knows about one pod on the node: the runtime's sandbox and container instances,
//! plus the waiting reasons of its last sync (the kubelet's "reason cache").

use std::collections::HashMap;

use crate::runtime::{ContainerInfo, SandboxInfo};

/// Why a container is not running, as the last sync found (`CrashLoopBackOff`, `ErrImagePull`,
/// `ImagePullBackOff`, `CreateContainerConfigError`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

impl Waiting {
    pub fn new(reason: &str, message: impl Into<String>) -> Waiting {
        Waiting { reason: reason.to_string(), message: message.into() }
    }
}

/// The observed state of one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedPod {
    pub sandbox: Option<SandboxInfo>,
    /// Every instance, any order.
    pub containers: Vec<ContainerInfo>,
    /// Container name → why it waits (set by the executor, cleared when it starts).
    pub waiting: HashMap<String, Waiting>,
    /// The node's IPs (`status.hostIP(s)`).
    pub host_ips: Vec<String>,
}

impl ObservedPod {
    /// The instances of `name`, newest (highest attempt, then latest created) first.
    pub fn instances(&self, name: &str) -> Vec<&ContainerInfo> {
        let mut v: Vec<&ContainerInfo> = self.containers.iter().filter(|c| c.name == name).collect();
        v.sort_by(|a, b| b.attempt.cmp(&a.attempt).then(b.created_at.cmp(&a.created_at)));
        v
    }

    /// The newest instance of `name`.
    pub fn latest(&self, name: &str) -> Option<&ContainerInfo> {
        self.instances(name).into_iter().next()
    }

    /// Whether the sandbox exists and is usable.
    pub fn sandbox_ready(&self) -> bool {
        self.sandbox.as_ref().is_some_and(|s| s.ready)
    }

    /// Whether any container instance is running.
    pub fn any_running(&self) -> bool {
        self.containers.iter().any(ContainerInfo::is_running)
    }
}
