//! Pre-digested pods and nodes (upstream's `PodInfo` and `NodeInfo`): everything the filters and
//! scores look at, parsed once so that a decision over a thousand nodes does no parsing.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, NodeSelector, Pod, PreferredSchedulingTerm, Taint, Toleration};

use crate::resources::{Resources, pod_requests};

/// The taint the node lifecycle controller puts on a node whose Ready condition is False or missing.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint for a node whose Ready condition is Unknown (its agent stopped reporting).
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint that `spec.unschedulable` (cordon) stands for.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// A host port a container asks for: (protocol, host IP, port).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub protocol: String,
    /// `0.0.0.0` when unset: every address.
    pub ip: String,
    pub port: i32,
}

impl HostPort {
    /// Whether two host ports collide: same port and protocol, and the same address or a wildcard.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// What a pod placed on a node takes from it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodUsage {
    pub requests: Resources,
    /// CPU (millicores) and memory (bytes) with the scorers' defaults for missing requests.
    pub nonzero_cpu: i64,
    pub nonzero_memory: i64,
    pub host_ports: Vec<HostPort>,
    /// The UID of the pod's controller (ReplicaSet, StatefulSet...), which default spreading groups by.
    pub owner: Option<Arc<str>>,
}

/// A pod to place, parsed.
#[derive(Debug, Clone, Default)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub usage: PodUsage,
    pub node_name: Option<String>,
    pub node_selector: BTreeMap<String, String>,
    pub required_affinity: Option<NodeSelector>,
    pub preferred_affinity: Vec<PreferredSchedulingTerm>,
    pub tolerations: Vec<Toleration>,
}

/// The UID of the object's controller owner reference, if any.
fn controller_uid(pod: &Pod) -> Option<Arc<str>> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| Arc::from(r.uid.as_str()))
}

impl PodUsage {
    /// What `pod` takes from the node it runs on.
    pub fn of(pod: &Pod) -> PodUsage {
        let Some(spec) = &pod.spec else { return PodUsage::default() };
        let nonzero = pod_requests(spec, true);
        let host_ports = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                let port = p.host_port.filter(|p| *p > 0)?;
                Some(HostPort {
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
                    ip: p.host_ip.clone().filter(|ip| !ip.is_empty()).unwrap_or_else(|| "0.0.0.0".to_string()),
                    port,
                })
            })
            .collect();
        PodUsage {
            requests: pod_requests(spec, false),
            nonzero_cpu: nonzero.milli_cpu,
            nonzero_memory: nonzero.memory,
            host_ports,
            owner: controller_uid(pod),
        }
    }
}

impl PodInfo {
    /// Parses what scheduling `pod` needs.
    pub fn new(pod: &Pod) -> PodInfo {
        let spec = pod.spec.as_ref();
        let node_affinity = spec.and_then(|s| s.affinity.as_ref()).and_then(|a| a.node_affinity.as_ref());
        PodInfo {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            usage: PodUsage::of(pod),
            node_name: spec.and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()),
            node_selector: spec.and_then(|s| s.node_selector.clone()).unwrap_or_default(),
            required_affinity: node_affinity
                .and_then(|a| a.required_during_scheduling_ignored_during_execution.clone()),
            preferred_affinity: node_affinity
                .and_then(|a| a.preferred_during_scheduling_ignored_during_execution.clone())
                .unwrap_or_default(),
            tolerations: spec.and_then(|s| s.tolerations.clone()).unwrap_or_default(),
        }
    }
}

/// Pods per controller UID on one node. Spreading looks this up for every candidate node of every
/// decision (hundreds per pod at 1,000 nodes), so it hashes with [`FxHasher`] rather than the
/// default SipHash: the keys are server-assigned UIDs, at most one per pod on the node.
pub type OwnerCounts = HashMap<Arc<str>, u32, BuildHasherDefault<FxHasher>>;

/// The Fx hash (rustc's): a multiply and rotate per 8 bytes. Several times cheaper than SipHash on
/// a 36-byte UID, which is what [`OwnerCounts`] lookups cost.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A node with the pods placed on it accounted (allocatable, requested, ports, owners).
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `spec.taints`, plus `not-ready`/`unreachable` (NoSchedule) when the Ready condition is not
    /// True and the node lifecycle controller has not tainted it yet.
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Resources,
    /// The sum of the requests of the pods on the node (`pods` counts them).
    pub requested: Resources,
    pub nonzero_cpu: i64,
    pub nonzero_memory: i64,
    pub used_ports: Vec<HostPort>,
    /// Pods on the node per controller UID.
    pub owners: OwnerCounts,
}

impl NodeInfo {
    /// A node with nothing placed on it yet.
    pub fn new(node: &Node) -> NodeInfo {
        let mut info = NodeInfo::default();
        info.set_node(node);
        info
    }

    /// Replaces the node's own fields, keeping the pods accounted. Returns whether anything a
    /// decision depends on changed (labels, taints, readiness, cordon, allocatable): a heartbeat
    /// alone cannot make an unschedulable pod fit.
    pub fn set_node(&mut self, node: &Node) -> bool {
        let before = (
            std::mem::take(&mut self.labels),
            std::mem::take(&mut self.taints),
            self.unschedulable,
            std::mem::take(&mut self.allocatable),
        );
        self.name = node.metadata.name.clone().unwrap_or_default();
        self.labels = node.metadata.labels.clone().unwrap_or_default();
        let spec = node.spec.as_ref();
        self.unschedulable = spec.and_then(|s| s.unschedulable).unwrap_or(false);
        let mut taints = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.as_str());
        let implied = match ready {
            Some("True") => None,
            Some("Unknown") => Some(TAINT_UNREACHABLE),
            _ => Some(TAINT_NOT_READY),
        };
        if let Some(key) = implied
            && !taints.iter().any(|t| t.key == TAINT_NOT_READY || t.key == TAINT_UNREACHABLE)
        {
            taints.push(Taint { key: key.to_string(), effect: "NoSchedule".to_string(), ..Taint::default() });
        }
        self.taints = taints;
        let status = node.status.as_ref();
        let list = status.and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()));
        self.allocatable = list.map(Resources::from_list).unwrap_or_default();
        before.0 != self.labels
            || before.1 != self.taints
            || before.2 != self.unschedulable
            || before.3 != self.allocatable
    }

    /// Accounts a pod placed on the node.
    pub fn add_pod(&mut self, usage: &PodUsage) {
        self.requested.add(&usage.requests);
        self.nonzero_cpu += usage.nonzero_cpu;
        self.nonzero_memory += usage.nonzero_memory;
        self.used_ports.extend(usage.host_ports.iter().cloned());
        if let Some(owner) = &usage.owner {
            *self.owners.entry(owner.clone()).or_insert(0) += 1;
        }
    }

    /// Releases a pod accounted with [`NodeInfo::add_pod`].
    pub fn remove_pod(&mut self, usage: &PodUsage) {
        self.requested.sub(&usage.requests);
        self.nonzero_cpu -= usage.nonzero_cpu;
        self.nonzero_memory -= usage.nonzero_memory;
        for p in &usage.host_ports {
            if let Some(i) = self.used_ports.iter().position(|u| u == p) {
                self.used_ports.swap_remove(i);
            }
        }
        if let Some(owner) = &usage.owner
            && let Some(n) = self.owners.get_mut(owner)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.owners.remove(owner);
            }
        }
    }

    /// Pods of the controller `owner` on this node.
    pub fn owner_count(&self, owner: &str) -> u32 {
        self.owners.get(owner).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(v: serde_json::Value) -> Node {
        serde_json::from_value(v).expect("a Node")
    }

    #[test]
    fn owner_counts_hash_every_byte() {
        use std::hash::BuildHasher;
        let h = |s: &str| BuildHasherDefault::<FxHasher>::default().hash_one(s);
        let uids = [
            "",
            "a",
            "b",
            "ab",
            "12345678",
            "123456789",
            "12345679",
            "5f3c1a2e-0b7d-4c1e-9f7a-2d6e8b1c4a01",
            "5f3c1a2e-0b7d-4c1e-9f7a-2d6e8b1c4a02",
        ];
        let hashes: std::collections::HashSet<u64> = uids.iter().map(|u| h(u)).collect();
        assert_eq!(hashes.len(), uids.len(), "no collisions among near-identical keys");
        assert_eq!(h("abc"), h("abc"), "deterministic");
        let mut counts = OwnerCounts::default();
        *counts.entry(Arc::from(uids[7])).or_insert(0) += 2;
        assert_eq!((counts.get(uids[7]), counts.get(uids[8])), (Some(&2), None));
    }

    #[test]
    fn readiness_becomes_a_taint() {
        let cases = [
            (json!([{"type": "Ready", "status": "True"}]), None),
            (json!([{"type": "Ready", "status": "False"}]), Some(TAINT_NOT_READY)),
            (json!([{"type": "Ready", "status": "Unknown"}]), Some(TAINT_UNREACHABLE)),
            (json!([]), Some(TAINT_NOT_READY)),
        ];
        for (conditions, want) in cases {
            let n = NodeInfo::new(&node(json!({"metadata": {"name": "n"}, "status": {"conditions": conditions}})));
            assert_eq!(n.taints.first().map(|t| t.key.as_str()), want, "{conditions}");
        }
        // An existing lifecycle taint is not doubled.
        let n = NodeInfo::new(&node(json!({"metadata": {"name": "n"},
            "spec": {"taints": [{"key": TAINT_NOT_READY, "effect": "NoExecute"}]},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]}})));
        assert_eq!(n.taints.len(), 1);
    }

    #[test]
    fn accounting_round_trips_and_detects_relevant_changes() {
        let base = json!({"metadata": {"name": "n", "labels": {"a": "1"}},
            "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}, "conditions": [{"type": "Ready", "status": "True"}]}});
        let mut n = NodeInfo::new(&node(base.clone()));
        assert_eq!((n.allocatable.milli_cpu, n.allocatable.memory, n.allocatable.pods), (2000, 4 << 30, 110));
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1", "controller": true}]},
            "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}],
                "resources": {"requests": {"cpu": "500m"}}}]}}))
        .expect("a Pod");
        let usage = PodUsage::of(&pod);
        assert_eq!(usage.host_ports, vec![HostPort { protocol: "TCP".into(), ip: "0.0.0.0".into(), port: 8080 }]);
        n.add_pod(&usage);
        assert_eq!(
            (n.requested.milli_cpu, n.requested.pods, n.nonzero_memory, n.owner_count("u1")),
            (500, 1, 200 << 20, 1)
        );
        n.remove_pod(&usage);
        assert_eq!(
            (n.requested.clone(), n.nonzero_cpu, n.used_ports.len(), n.owners.len()),
            (Resources::default(), 0, 0, 0)
        );

        assert!(!n.set_node(&node(base.clone())), "the same node is no change");
        let mut heartbeat = base.clone();
        heartbeat["status"]["conditions"][0]["lastHeartbeatTime"] = json!("2025-01-01T00:00:00Z");
        assert!(!n.set_node(&node(heartbeat)), "a heartbeat is no change");
        let mut relabelled = base;
        relabelled["metadata"]["labels"]["b"] = json!("2");
        assert!(n.set_node(&node(relabelled)), "a new label is a change");
    }
}
