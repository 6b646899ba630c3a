//! Node IPAM (`k/k pkg/controller/nodeipam/`, the `RangeAllocator` with `cidrset.CidrSet`): gives
//! every Node without one a `spec.podCIDR` (and `spec.podCIDRs`) carved out of the cluster CIDR.
//!
//! The used set is rebuilt from the Nodes on every (re)list, so a restarted controller never hands
//! out a range a Node already holds; a Node that has a podCIDR keeps it; a deleted Node's range is
//! released. Allocation walks the ranges in order from after the last one handed out, wrapping, as
//! upstream does. When none is left, the Node gets an Event `CIDRNotAvailable` ("Node \<name\> status
//! is now: CIDRNotAvailable") and is retried on its next update. IPv4 single-stack only.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::Ipv4Addr;
use std::str::FromStr;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, ObjectReference};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::events::{EventType, Recorder};

/// The Event source of the allocator (upstream's `cidrAllocator`).
pub const COMPONENT: &str = "cidrAllocator";
/// The largest number of node ranges a cluster CIDR may be split into (2^20).
const MAX_BITS: u8 = 20;

/// How node IPAM runs (kube-controller-manager's `--allocate-node-cidrs`, `--cluster-cidr`,
/// `--node-cidr-mask-size`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Whether to allocate at all (upstream defaults to false; Skiff, like k3s, to true).
    pub allocate_node_cidrs: bool,
    /// The pod network of the cluster (`10.42.0.0/16`, k3s's default).
    pub cluster_cidr: String,
    /// The prefix length of each node's range (24).
    pub node_cidr_mask_size: u8,
}

impl Default for Config {
    fn default() -> Self {
        Config { allocate_node_cidrs: true, cluster_cidr: "10.42.0.0/16".into(), node_cidr_mask_size: 24 }
    }
}

/// Why a CIDR operation failed (wording as upstream's where it has one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("invalid CIDR address: {0}")]
    Parse(String),
    #[error(
        "the node CIDR mask /{node} must be at least the cluster mask /{cluster} and at most {MAX_BITS} bits longer"
    )]
    Mask { cluster: u8, node: u8 },
    #[error("CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range")]
    Exhausted,
    #[error("cidr {cidr} is out the range of cluster cidr {cluster}")]
    OutOfRange { cidr: Cidr, cluster: Cidr },
}

/// An IPv4 network: address (host bits cleared) and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub addr: u32,
    pub prefix: u8,
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) }
}

impl Cidr {
    /// The network containing `addr` with `prefix` bits.
    pub fn new(addr: u32, prefix: u8) -> Cidr {
        Cidr { addr: addr & mask(prefix), prefix }
    }

    /// The last address of the network.
    pub fn last(&self) -> u32 {
        self.addr | !mask(self.prefix)
    }

    /// Whether the two networks share an address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.addr <= other.last() && other.addr <= self.last()
    }
}

impl FromStr for Cidr {
    type Err = IpamError;

    fn from_str(s: &str) -> Result<Cidr, IpamError> {
        let bad = || IpamError::Parse(s.to_string());
        let (ip, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Ok(Cidr::new(u32::from(ip), prefix))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.prefix)
    }
}

/// The node ranges of a cluster CIDR and which are in use (`cidrset.CidrSet`).
#[derive(Debug, Clone)]
pub struct CidrSet {
    cluster: Cidr,
    node_prefix: u8,
    used: Vec<bool>,
    allocated: usize,
    next: usize,
}

impl CidrSet {
    pub fn new(cluster: Cidr, node_prefix: u8) -> Result<CidrSet, IpamError> {
        if node_prefix < cluster.prefix || node_prefix > 32 || node_prefix - cluster.prefix > MAX_BITS {
            return Err(IpamError::Mask { cluster: cluster.prefix, node: node_prefix });
        }
        let max = 1usize << (node_prefix - cluster.prefix);
        Ok(CidrSet { cluster, node_prefix, used: vec![false; max], allocated: 0, next: 0 })
    }

    pub fn cluster(&self) -> Cidr {
        self.cluster
    }

    /// How many node ranges are in use.
    pub fn allocated(&self) -> usize {
        self.allocated
    }

    fn block(&self, index: usize) -> Cidr {
        let shift = 32 - u32::from(self.node_prefix);
        let offset = if shift >= 32 { 0 } else { (index as u32) << shift };
        Cidr::new(self.cluster.addr | offset, self.node_prefix)
    }

    /// The indices of the node ranges `cidr` covers.
    fn indices(&self, cidr: &Cidr) -> Result<std::ops::RangeInclusive<usize>, IpamError> {
        if !self.cluster.overlaps(cidr) {
            return Err(IpamError::OutOfRange { cidr: *cidr, cluster: self.cluster });
        }
        let shift = 32 - u32::from(self.node_prefix);
        let index = |addr: u32| -> usize {
            let offset = addr.clamp(self.cluster.addr, self.cluster.last()) - self.cluster.addr;
            if shift >= 32 { 0 } else { (offset >> shift) as usize }
        };
        Ok(index(cidr.addr)..=index(cidr.last()))
    }

    /// Allocates the next free node range.
    pub fn allocate_next(&mut self) -> Result<Cidr, IpamError> {
        let max = self.used.len();
        if self.allocated == max {
            return Err(IpamError::Exhausted);
        }
        let mut candidate = self.next;
        for _ in 0..max {
            if !self.used[candidate] {
                break;
            }
            candidate = (candidate + 1) % max;
        }
        self.next = (candidate + 1) % max;
        self.used[candidate] = true;
        self.allocated += 1;
        Ok(self.block(candidate))
    }

    /// Marks `cidr` as used (every node range it covers); succeeds if already used.
    pub fn occupy(&mut self, cidr: &Cidr) -> Result<(), IpamError> {
        for i in self.indices(cidr)? {
            if !self.used[i] {
                self.used[i] = true;
                self.allocated += 1;
            }
        }
        Ok(())
    }

    /// Marks `cidr` as free.
    pub fn release(&mut self, cidr: &Cidr) -> Result<(), IpamError> {
        for i in self.indices(cidr)? {
            if self.used[i] {
                self.used[i] = false;
                self.allocated -= 1;
            }
        }
        Ok(())
    }
}

/// The node's IPv4 pod CIDR, from `spec.podCIDRs` (or `spec.podCIDR`); `Some(Err)` when unparsable.
pub fn node_cidr(node: &Node) -> Option<Result<Cidr, IpamError>> {
    let spec = node.spec.as_ref()?;
    let listed = spec.pod_cidrs.iter().flatten().chain(spec.pod_cidr.iter()).find(|c| !c.is_empty())?;
    // Only the IPv4 entry counts (single stack).
    let v4 = spec.pod_cidrs.iter().flatten().chain(spec.pod_cidr.iter()).find(|c| !c.contains(':'));
    Some(v4.unwrap_or(listed).parse())
}

/// What the allocator does for one observed node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing (it has a range, now marked used, or is already being given one).
    Nothing,
    /// Write this range to the node.
    Assign(Cidr),
    /// No range left: Event `CIDRNotAvailable`.
    NotAvailable,
    /// The node's range cannot be used (unparsable or outside the cluster CIDR); it keeps it.
    Foreign(IpamError),
}

/// The allocator's state: the set and the ranges written but not yet seen back.
#[derive(Debug, Clone)]
pub struct Allocator {
    pub set: CidrSet,
    /// Node name → range assigned by this allocator whose write the watch has not shown yet.
    pending: HashMap<String, Cidr>,
}

impl Allocator {
    pub fn new(set: CidrSet) -> Allocator {
        Allocator { set, pending: HashMap::new() }
    }

    /// Rebuilds the used set from a complete list of nodes (keeping ranges still being written).
    pub fn rebuild<'a>(&mut self, nodes: impl IntoIterator<Item = &'a Node>) {
        let mut set = CidrSet { used: vec![false; self.set.used.len()], allocated: 0, next: 0, ..self.set.clone() };
        let mut names = std::collections::HashSet::new();
        for node in nodes {
            names.insert(node.name_any());
            if let Some(Ok(cidr)) = node_cidr(node) {
                let _ = set.occupy(&cidr);
            }
        }
        self.pending.retain(|name, _| names.contains(name));
        for cidr in self.pending.values() {
            let _ = set.occupy(cidr);
        }
        self.set = set;
    }

    /// A node was added or updated (`AllocateOrOccupyCIDR`).
    pub fn observe(&mut self, node: &Node) -> Action {
        let name = node.name_any();
        match node_cidr(node) {
            Some(Ok(cidr)) => {
                self.pending.remove(&name);
                match self.set.occupy(&cidr) {
                    Ok(()) => Action::Nothing,
                    Err(e) => Action::Foreign(e),
                }
            }
            Some(Err(e)) => Action::Foreign(e),
            None if self.pending.contains_key(&name) => Action::Nothing,
            None => match self.set.allocate_next() {
                Ok(cidr) => {
                    self.pending.insert(name, cidr);
                    Action::Assign(cidr)
                }
                Err(_) => Action::NotAvailable,
            },
        }
    }

    /// The write of `cidr` to `node` failed for good: return it to the pool.
    pub fn assignment_failed(&mut self, node: &str, cidr: &Cidr) {
        if self.pending.remove(node).is_some() {
            let _ = self.set.release(cidr);
        }
    }

    /// A node was deleted (`ReleaseCIDR`).
    pub fn deleted(&mut self, node: &Node) {
        if let Some(cidr) = self.pending.remove(&node.name_any()) {
            let _ = self.set.release(&cidr);
        }
        if let Some(Ok(cidr)) = node_cidr(node) {
            let _ = self.set.release(&cidr);
        }
    }
}

/// Runs node IPAM until `shutdown` completes; does nothing when disabled or misconfigured.
pub async fn run(client: Client, config: Config, shutdown: impl Future<Output = ()>) {
    if !config.allocate_node_cidrs {
        shutdown.await;
        return;
    }
    let set = config.cluster_cidr.parse().and_then(|c| CidrSet::new(c, config.node_cidr_mask_size));
    let set = match set {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, cluster_cidr = %config.cluster_cidr, "node IPAM disabled: invalid configuration");
            shutdown.await;
            return;
        }
    };
    tokio::select! {
        _ = shutdown => {}
        _ = allocate(client, Allocator::new(set)) => {}
    }
}

async fn allocate(client: Client, mut allocator: Allocator) {
    tracing::info!(cluster_cidr = %allocator.set.cluster(), "Starting range CIDR allocator");
    let recorder = Recorder::new(client.clone(), COMPONENT);
    let api: Api<Node> = Api::all(client.clone());
    let mut stream = crate::watch(api.clone(), watcher::Config::default()).default_backoff().boxed();
    let mut listing: Vec<Node> = Vec::new();
    while let Some(event) = stream.next().await {
        let nodes: Vec<Node> = match event {
            Ok(watcher::Event::Init) => {
                listing.clear();
                continue;
            }
            Ok(watcher::Event::InitApply(node)) => {
                listing.push(node);
                continue;
            }
            Ok(watcher::Event::InitDone) => {
                allocator.rebuild(listing.iter());
                std::mem::take(&mut listing)
            }
            Ok(watcher::Event::Apply(node)) => vec![node],
            Ok(watcher::Event::Delete(node)) => {
                allocator.deleted(&node);
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "node watch failed");
                continue;
            }
        };
        for node in nodes {
            let name = node.name_any();
            match allocator.observe(&node) {
                Action::Nothing => {}
                Action::Foreign(e) => {
                    tracing::warn!(node = %name, error = %e, "node has a pod CIDR outside the allocator")
                }
                Action::NotAvailable => {
                    tracing::warn!(node = %name, "no pod CIDR left to allocate");
                    status_change(&recorder, &node, "CIDRNotAvailable").await;
                }
                Action::Assign(cidr) => {
                    let patch = json!({"spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]}});
                    let params = PatchParams {
                        field_manager: Some(crate::nodelifecycle::FIELD_MANAGER.into()),
                        ..PatchParams::default()
                    };
                    let mut result = Err(None);
                    for _ in 0..3 {
                        match api.patch(&name, &params, &Patch::Merge(&patch)).await {
                            Ok(_) => {
                                result = Ok(());
                                break;
                            }
                            Err(kube::Error::Api(s)) if s.code == 404 => break,
                            Err(e) => result = Err(Some(e)),
                        }
                    }
                    match result {
                        Ok(()) => tracing::info!(node = %name, cidr = %cidr, "Set Node PodCIDR"),
                        Err(e) => {
                            allocator.assignment_failed(&name, &cidr);
                            if let Some(e) = e {
                                tracing::warn!(node = %name, error = %e, "cannot set the node's pod CIDR");
                                status_change(&recorder, &node, "CIDRAssignmentFailed").await;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `RecordNodeStatusChange`: Normal Event `<status>` "Node <name> status is now: <status>".
async fn status_change(recorder: &Recorder, node: &Node, status: &str) {
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(node.name_any()),
        uid: node.uid(),
        ..ObjectReference::default()
    };
    let message = format!("Node {} status is now: {status}", node.name_any());
    recorder.record(&reference, EventType::Normal, status, &message).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().expect("cidr")
    }

    fn node(name: &str, cidrs: &[&str]) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"podCIDRs": cidrs}})).expect("node")
    }

    #[test]
    fn parsing_and_printing() {
        assert_eq!(cidr("10.42.3.7/24").to_string(), "10.42.3.0/24");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        for bad in ["10.42.0.0", "10.42.0.0/33", "x/8", "fd00::/64", "10.0.0.0/-1"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn allocates_in_order_and_wraps_after_releases() {
        let mut set = CidrSet::new(cidr("10.42.0.0/16"), 24).expect("set");
        assert_eq!(set.allocate_next().map(|c| c.to_string()), Ok("10.42.0.0/24".into()));
        assert_eq!(set.allocate_next().map(|c| c.to_string()), Ok("10.42.1.0/24".into()));
        set.release(&cidr("10.42.0.0/24")).expect("release");
        // The next candidate moves on; the freed range is reused only after wrapping.
        assert_eq!(set.allocate_next().map(|c| c.to_string()), Ok("10.42.2.0/24".into()));
        set.occupy(&cidr("10.42.3.0/24")).expect("occupy");
        assert_eq!(set.allocate_next().map(|c| c.to_string()), Ok("10.42.4.0/24".into()));
        assert_eq!(set.allocated(), 4);
    }

    #[test]
    fn exhaustion_and_ranges() {
        let mut set = CidrSet::new(cidr("10.0.0.0/30"), 31).expect("set");
        assert_eq!(set.allocate_next().map(|c| c.to_string()), Ok("10.0.0.0/31".into()));
        assert_eq!(set.allocate_next().map(|c| c.to_string()), Ok("10.0.0.2/31".into()));
        assert_eq!(set.allocate_next(), Err(IpamError::Exhausted));
        assert_eq!(
            IpamError::Exhausted.to_string(),
            "CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range"
        );
        set.release(&cidr("10.0.0.2/31")).expect("release");
        assert_eq!(set.allocate_next().map(|c| c.to_string()), Ok("10.0.0.2/31".into()));
        // A larger range occupies every node range it covers.
        let mut set = CidrSet::new(cidr("10.42.0.0/16"), 24).expect("set");
        set.occupy(&cidr("10.42.0.0/22")).expect("occupy");
        assert_eq!(set.allocated(), 4);
        assert_eq!(set.allocate_next().map(|c| c.to_string()), Ok("10.42.4.0/24".into()));
        assert_eq!(
            set.occupy(&cidr("10.43.0.0/24")),
            Err(IpamError::OutOfRange { cidr: cidr("10.43.0.0/24"), cluster: cidr("10.42.0.0/16") })
        );
        assert!(CidrSet::new(cidr("10.42.0.0/16"), 8).is_err());
        assert!(CidrSet::new(cidr("10.0.0.0/8"), 30).is_err(), "too many ranges");
    }

    #[test]
    fn allocator_keeps_existing_ranges_and_never_reuses_them() {
        let mut a = Allocator::new(CidrSet::new(cidr("10.42.0.0/16"), 24).expect("set"));
        let existing = [node("old", &["10.42.0.0/24"]), node("new", &[])];
        a.rebuild(existing.iter());
        assert_eq!(a.observe(&existing[0]), Action::Nothing);
        assert_eq!(a.observe(&existing[1]), Action::Assign(cidr("10.42.1.0/24")));
        // A stale event of the same node before the write shows: nothing more.
        assert_eq!(a.observe(&existing[1]), Action::Nothing);
        assert_eq!(a.observe(&node("new", &["10.42.1.0/24"])), Action::Nothing);
        assert_eq!(a.observe(&node("third", &[])), Action::Assign(cidr("10.42.2.0/24")));
        // A relist rebuilds from the nodes plus what is still being written.
        a.rebuild([node("old", &["10.42.0.0/24"]), node("new", &["10.42.1.0/24"]), node("third", &[])].iter());
        assert_eq!(a.set.allocated(), 3);
        // Deletion releases.
        a.deleted(&node("old", &["10.42.0.0/24"]));
        assert_eq!(a.set.allocated(), 2);
        // Foreign ranges are kept by their node and reported.
        assert!(matches!(a.observe(&node("far", &["192.168.0.0/24"])), Action::Foreign(IpamError::OutOfRange { .. })));
        assert!(matches!(a.observe(&node("junk", &["nope"])), Action::Foreign(IpamError::Parse(_))));
    }

    #[test]
    fn exhausted_allocator_reports_not_available() {
        let mut a = Allocator::new(CidrSet::new(cidr("10.0.0.0/24"), 24).expect("set"));
        assert_eq!(a.observe(&node("a", &[])), Action::Assign(cidr("10.0.0.0/24")));
        assert_eq!(a.observe(&node("b", &[])), Action::NotAvailable);
        a.assignment_failed("a", &cidr("10.0.0.0/24"));
        assert_eq!(a.observe(&node("b", &[])), Action::Assign(cidr("10.0.0.0/24")));
    }

    #[test]
    fn node_cidr_prefers_the_ipv4_entry() {
        assert_eq!(node_cidr(&node("n", &["fd00::/64", "10.42.5.0/24"])), Some(Ok(cidr("10.42.5.0/24"))));
        assert_eq!(node_cidr(&node("n", &[])), None);
        let legacy: Node =
            serde_json::from_value(json!({"metadata": {"name": "n"}, "spec": {"podCIDR": "10.42.9.0/24"}}))
                .expect("node");
        assert_eq!(node_cidr(&legacy), Some(Ok(cidr("10.42.9.0/24"))));
    }
}
