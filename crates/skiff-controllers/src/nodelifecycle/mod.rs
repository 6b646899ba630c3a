//! The node lifecycle controller (`k/k pkg/controller/nodelifecycle/`) and the taint eviction
//! controller (`k/k pkg/controller/tainteviction/`).
//!
//! * Node health: a node whose Lease (`kube-node-lease/<node>`) and Ready heartbeat have both gone
//!   quiet for `node_monitor_grace_period` gets its Ready, MemoryPressure, DiskPressure and
//!   PIDPressure conditions set to `Unknown` (`NodeStatusUnknown`, "Kubelet stopped posting node
//!   status."), the pods on it `Ready=False`, and Events `NodeNotReady` on the node and its pods.
//! * Taints: condition taints with effect `NoSchedule` follow the conditions (`not-ready`,
//!   `unreachable`, the pressures, `unschedulable`); `not-ready`/`unreachable` with effect
//!   `NoExecute` are added through a per-zone rate limiter, swapped when Ready flips between False
//!   and Unknown, and removed when it is True again. When every zone is fully disrupted, NoExecute
//!   tainting stops and the taints are removed, as upstream's "master disruption mode".
//! * Taint eviction: pods on a node with `NoExecute` taints they do not tolerate are deleted; a
//!   toleration with `tolerationSeconds` delays the deletion; a toleration without it keeps the pod.
//!
//! Codemap: [`health`] (probe timestamps, conditions set to Unknown), [`taints`] (which taints to
//! add and remove), [`disruption`] (zone states, the rate-limited tainting queue), [`eviction`]
//! (which pods to delete when) are pure; [`mod@run`] and [`evictor`] are the executors.

pub mod disruption;
pub mod eviction;
pub mod evictor;
pub mod health;
pub mod run;
pub mod taints;

use std::time::Duration;

pub use run::run;

/// The Event source of the node lifecycle controller.
pub const NODE_CONTROLLER: &str = "node-controller";
/// The Event source of the taint eviction controller.
pub const TAINT_EVICTION_CONTROLLER: &str = "taint-eviction-controller";
/// The namespace of the node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The field manager of the controllers' writes.
pub const FIELD_MANAGER: &str = "kube-controller-manager";

/// How the node lifecycle and taint eviction controllers run (kube-controller-manager's flags of
/// the same names, with their defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `--node-monitor-period`: how often node health is checked (5 s).
    pub node_monitor_period: Duration,
    /// `--node-monitor-grace-period`: how long a node may stay silent (neither Lease renewal nor
    /// Ready heartbeat) before it is marked `Unknown` (50 s since Kubernetes 1.32; 40 s before).
    pub node_monitor_grace_period: Duration,
    /// `--node-startup-grace-period`: the same for a node that never posted a Ready condition (60 s).
    pub node_startup_grace_period: Duration,
    /// `--node-eviction-rate`: nodes per second NoExecute-tainted in a healthy zone (0.1).
    pub node_eviction_rate: f64,
    /// `--secondary-node-eviction-rate`: the same in a partially disrupted large zone (0.01).
    pub secondary_node_eviction_rate: f64,
    /// `--unhealthy-zone-threshold`: the not-ready fraction (with more than 2 not ready) that
    /// makes a zone partially disrupted (0.55).
    pub unhealthy_zone_threshold: f64,
    /// `--large-cluster-size-threshold`: zones up to this many nodes stop tainting entirely when
    /// partially disrupted (50).
    pub large_cluster_size_threshold: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_monitor_period: Duration::from_secs(5),
            node_monitor_grace_period: Duration::from_secs(50),
            node_startup_grace_period: Duration::from_secs(60),
            node_eviction_rate: 0.1,
            secondary_node_eviction_rate: 0.01,
            unhealthy_zone_threshold: 0.55,
            large_cluster_size_threshold: 50,
        }
    }
}
