//! The scheduler's view of the cluster (upstream's scheduler cache): nodes, and the pods placed on
//! them, including *assumed* pods — ones this scheduler bound whose binding the watch has not shown
//! yet — so that back-to-back decisions do not overcommit a node.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Node;

use crate::info::{NodeInfo, PodUsage};

/// A pod accounted on a node.
#[derive(Debug, Clone)]
struct Placed {
    node: String,
    usage: PodUsage,
    /// Bound by us, not yet seen assigned by the watch.
    assumed: bool,
}

/// Nodes and placed pods, keyed by node name and pod UID.
#[derive(Debug, Default)]
pub struct Cache {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    pods: HashMap<String, Placed>,
}

impl Cache {
    pub fn new() -> Cache {
        Cache::default()
    }

    /// The nodes, in a stable order (changed only by node additions and removals).
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// The name of the node at `index` in [`Cache::nodes`].
    pub fn node_name(&self, index: usize) -> Option<&str> {
        self.nodes.get(index).map(|n| n.name.as_str())
    }

    /// Adds or updates a node. Returns whether this can make a pod fit that did not: a new node,
    /// or a change of labels, taints, readiness, cordon or allocatable.
    pub fn upsert_node(&mut self, node: &Node) -> bool {
        let name = node.metadata.name.clone().unwrap_or_default();
        if let Some(&i) = self.index.get(&name) {
            return self.nodes[i].set_node(node);
        }
        let mut info = NodeInfo::new(node);
        // Pods may already be placed on a node that was deleted and came back.
        for p in self.pods.values().filter(|p| p.node == name) {
            info.add_pod(&p.usage);
        }
        self.index.insert(name, self.nodes.len());
        self.nodes.push(info);
        true
    }

    /// Removes a node. Its pods stay accounted (under its name) until they go.
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else { return };
        self.nodes.swap_remove(i);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
    }

    /// The names of all nodes the cache knows.
    pub fn node_names(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|n| n.name.as_str())
    }

    fn node_mut(&mut self, name: &str) -> Option<&mut NodeInfo> {
        self.index.get(name).copied().and_then(move |i| self.nodes.get_mut(i))
    }

    /// Accounts a pod this scheduler is binding to `node`, before the API confirms it.
    pub fn assume(&mut self, uid: &str, node: &str, usage: PodUsage) {
        self.remove_pod(uid);
        if let Some(n) = self.node_mut(node) {
            n.add_pod(&usage);
        }
        self.pods.insert(uid.to_string(), Placed { node: node.to_string(), usage, assumed: true });
    }

    /// Undoes [`Cache::assume`] after a failed binding (a confirmed pod is left alone).
    pub fn forget(&mut self, uid: &str) {
        if self.pods.get(uid).is_some_and(|p| p.assumed) {
            self.remove_pod(uid);
        }
    }

    /// Records a pod the API shows on `node` (confirming an assumption, or moving a pod someone
    /// else placed). Returns whether the accounting changed.
    pub fn set_pod(&mut self, uid: &str, node: &str, usage: PodUsage) -> bool {
        if let Some(p) = self.pods.get_mut(uid)
            && p.node == node
            && p.usage == usage
        {
            p.assumed = false;
            return false;
        }
        self.remove_pod(uid);
        if let Some(n) = self.node_mut(node) {
            n.add_pod(&usage);
        }
        self.pods.insert(uid.to_string(), Placed { node: node.to_string(), usage, assumed: false });
        true
    }

    /// Releases a pod (deleted or finished). Returns whether it was accounted.
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        let Some(p) = self.pods.remove(uid) else { return false };
        if let Some(n) = self.node_mut(&p.node) {
            n.remove_pod(&p.usage);
        }
        true
    }

    /// Whether the pod is accounted (placed or assumed).
    pub fn has_pod(&self, uid: &str) -> bool {
        self.pods.contains_key(uid)
    }

    /// The UIDs of confirmed (not assumed) pods, for reconciling after a relist.
    pub fn confirmed_pods(&self) -> Vec<String> {
        self.pods.iter().filter(|(_, p)| !p.assumed).map(|(uid, _)| uid.clone()).collect()
    }

    /// Accounted pods in total.
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Resources;
    use serde_json::json;

    fn node(name: &str) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}, "conditions": [{"type": "Ready", "status": "True"}]}}))
        .expect("a Node")
    }

    fn usage(cpu: i64) -> PodUsage {
        PodUsage {
            requests: Resources { milli_cpu: cpu, pods: 1, ..Resources::default() },
            nonzero_cpu: cpu,
            ..PodUsage::default()
        }
    }

    fn cpu_of(c: &Cache, name: &str) -> i64 {
        c.nodes().iter().find(|n| n.name == name).map(|n| n.requested.milli_cpu).expect("node")
    }

    #[test]
    fn assume_confirm_forget() {
        let mut c = Cache::new();
        assert!(c.upsert_node(&node("a")));
        assert!(c.upsert_node(&node("b")));
        assert!(!c.upsert_node(&node("a")), "an unchanged node is no news");
        c.assume("p1", "a", usage(1000));
        c.assume("p2", "b", usage(500));
        assert_eq!((cpu_of(&c, "a"), cpu_of(&c, "b")), (1000, 500));
        // The watch confirms p1: no double counting.
        assert!(!c.set_pod("p1", "a", usage(1000)));
        assert_eq!(cpu_of(&c, "a"), 1000);
        // A failed binding releases p2; forgetting a confirmed pod does nothing.
        c.forget("p2");
        c.forget("p1");
        assert_eq!((cpu_of(&c, "a"), cpu_of(&c, "b")), (1000, 0));
        // Someone else bound p3 to b.
        assert!(c.set_pod("p3", "b", usage(200)));
        assert_eq!(cpu_of(&c, "b"), 200);
        assert!(c.remove_pod("p3"));
        assert!(!c.remove_pod("p3"));
        assert_eq!(cpu_of(&c, "b"), 0);
    }

    #[test]
    fn nodes_come_and_go_with_their_pods() {
        let mut c = Cache::new();
        for n in ["a", "b", "c"] {
            c.upsert_node(&node(n));
        }
        c.set_pod("p1", "a", usage(300));
        c.remove_node("a");
        assert_eq!(c.node_names().collect::<Vec<_>>(), vec!["c", "b"]);
        assert_eq!(c.node_name(0), Some("c"));
        c.upsert_node(&node("a"));
        assert_eq!(cpu_of(&c, "a"), 300, "the pod still on it is counted again");
        assert_eq!(c.confirmed_pods(), vec!["p1".to_string()]);
        assert_eq!(c.pod_count(), 1);
    }
}
