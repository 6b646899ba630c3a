//! The dependency graph (upstream `graph.go` and `graph_builder.go`): every observed object keyed by
//! UID, with its ownerReferences, and an index from an owner's UID to its dependents' UIDs.
//!
//! The graph is pure data. Feeding it an observed change ([`Graph::upsert`], [`Graph::remove`]) returns
//! the [`Work`] that change calls for, the way upstream's `processGraphChanges` fills the
//! `attemptToDelete` and `attemptToOrphan` queues. The index also holds owners that were never
//! observed (upstream's "virtual" nodes), so an owner seen after its dependents, or never, still finds
//! them.

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use skiff_api::resource::ResourceInfo;

/// The finalizer a foreground DELETE adds: the owner waits for its blocking dependents.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// The finalizer an orphaning DELETE adds: the owner waits until its dependents forget it.
pub const ORPHAN_FINALIZER: &str = "orphan";

/// Enough to GET, PATCH or DELETE one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectId {
    pub resource: &'static ResourceInfo,
    /// `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.resource;
        match &self.namespace {
            Some(ns) => write!(f, "{}/{} {ns}/{} ({})", r.api_version(), r.kind, self.name, self.uid),
            None => write!(f, "{}/{} {} ({})", r.api_version(), r.kind, self.name, self.uid),
        }
    }
}

/// The parts of an ownerReference the collector reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    pub block_owner_deletion: bool,
}

impl From<&OwnerReference> for OwnerRef {
    fn from(r: &OwnerReference) -> OwnerRef {
        OwnerRef {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            name: r.name.clone(),
            uid: r.uid.clone(),
            block_owner_deletion: r.block_owner_deletion == Some(true),
        }
    }
}

/// The ownerReferences of an object, in order.
pub fn owner_refs(meta: &ObjectMeta) -> Vec<OwnerRef> {
    meta.owner_references.iter().flatten().map(OwnerRef::from).collect()
}

/// Whether `meta` has a deletionTimestamp and the `foregroundDeletion` finalizer: it waits for its
/// dependents (upstream's "deletingDependents").
pub fn deleting_dependents(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some() && has_finalizer(meta, FOREGROUND_FINALIZER)
}

/// Whether `meta` carries `finalizer`.
pub fn has_finalizer(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.finalizers.iter().flatten().any(|f| f == finalizer)
}

/// One observed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: ObjectId,
    pub owners: Vec<OwnerRef>,
    /// `metadata.deletionTimestamp` is set.
    pub being_deleted: bool,
    pub finalizers: Vec<String>,
}

impl Node {
    /// The node of an observed object; `None` when the object has no name or UID (never from a real
    /// server).
    pub fn from_meta(resource: &'static ResourceInfo, meta: &ObjectMeta) -> Option<Node> {
        let name = meta.name.clone().filter(|n| !n.is_empty())?;
        let uid = meta.uid.clone().filter(|u| !u.is_empty())?;
        let namespace = if resource.namespaced() { meta.namespace.clone() } else { None };
        Some(Node {
            id: ObjectId { resource, namespace, name, uid },
            owners: owner_refs(meta),
            being_deleted: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
        })
    }

    /// Being deleted in the foreground: it waits for its blocking dependents to go.
    pub fn deleting_dependents(&self) -> bool {
        self.being_deleted && self.finalizers.iter().any(|f| f == FOREGROUND_FINALIZER)
    }

    /// Being deleted with the `orphan` finalizer: its dependents must forget it first.
    pub fn orphaning(&self) -> bool {
        self.being_deleted && self.finalizers.iter().any(|f| f == ORPHAN_FINALIZER)
    }
}

/// What the collector's workers should look at next.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Work {
    /// Decide whether the object with this UID is garbage (or, if it is deleting dependents, whether
    /// it may go): upstream's `attemptToDelete` queue.
    AttemptToDelete(String),
    /// Strip the owner with this UID from its dependents, then drop its `orphan` finalizer: upstream's
    /// `attemptToOrphan` queue.
    AttemptToOrphan(String),
}

/// The dependency graph.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    /// Owner UID → UIDs of the observed objects that name it in an ownerReference. Owners need not
    /// be observed.
    dependents: HashMap<String, BTreeSet<String>>,
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    /// The observed object with this UID.
    pub fn node(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The observed dependents of the object with this UID.
    pub fn dependents(&self, uid: &str) -> Vec<&Node> {
        self.dependents.get(uid).into_iter().flatten().filter_map(|d| self.nodes.get(d)).collect()
    }

    pub fn has_dependents(&self, uid: &str) -> bool {
        !self.dependents(uid).is_empty()
    }

    /// The dependents that keep a foreground-deleted owner: those whose ownerReference to it has
    /// `blockOwnerDeletion: true`, including ones that are themselves being deleted.
    pub fn blocking_dependents(&self, uid: &str) -> Vec<&Node> {
        self.dependents(uid)
            .into_iter()
            .filter(|d| d.owners.iter().any(|o| o.uid == uid && o.block_owner_deletion))
            .collect()
    }

    /// The UIDs of the observed objects of one resource (to find those a relist no longer returns).
    pub fn uids_of(&self, resource: &ResourceInfo) -> Vec<String> {
        self.nodes
            .values()
            .filter(|n| n.id.resource.group == resource.group && n.id.resource.plural == resource.plural)
            .map(|n| n.id.uid.clone())
            .collect()
    }

    /// Whether every owner of `node` is observed under that UID, with the kind and name the
    /// reference gives, and none is deleting its dependents. Such a node is not garbage as far as
    /// the graph knows, and any change to an owner will enqueue it again, so a worker need not ask
    /// the API server about its owners.
    pub fn owners_settled(&self, node: &Node) -> bool {
        node.owners.iter().all(|r| {
            self.nodes.get(&r.uid).is_some_and(|o| {
                o.id.name == r.name
                    && o.id.resource.kind == r.kind
                    && o.id.resource.api_version() == r.api_version
                    && !o.deleting_dependents()
            })
        })
    }

    /// Records an added or modified object; returns the work the change calls for.
    pub fn upsert(&mut self, node: Node) -> Vec<Work> {
        let uid = node.id.uid.clone();
        let old = self.nodes.remove(&uid);
        let mut work = Vec::new();
        let old_owners = old.as_ref().map(|o| o.owners.as_slice()).unwrap_or_default();

        // References that went away or stopped blocking: an owner waiting for its dependents may
        // now be free to go.
        for r in old_owners {
            let now = node.owners.iter().find(|n| n.uid == r.uid);
            if now.is_none() {
                self.unindex(&r.uid, &uid);
            }
            let unblocked = match now {
                None => r.block_owner_deletion,
                Some(n) => r.block_owner_deletion && !n.block_owner_deletion,
            };
            if unblocked && self.nodes.get(&r.uid).is_some_and(Node::deleting_dependents) {
                work.push(Work::AttemptToDelete(r.uid.clone()));
            }
        }
        // New references: an owner the graph has not seen may not exist, and an owner deleting its
        // dependents wants this one gone too. Either way the dependent needs a look.
        let mut look = false;
        for r in &node.owners {
            self.dependents.entry(r.uid.clone()).or_default().insert(uid.clone());
            let new = !old_owners.iter().any(|o| o.uid == r.uid);
            if new && self.nodes.get(&r.uid).is_none_or(Node::deleting_dependents) {
                look = true;
            }
        }
        if look {
            work.push(Work::AttemptToDelete(uid.clone()));
        }

        let was_orphaning = old.as_ref().is_some_and(Node::orphaning);
        let was_deleting_dependents = old.as_ref().is_some_and(Node::deleting_dependents);
        if node.orphaning() && !was_orphaning {
            work.push(Work::AttemptToOrphan(uid.clone()));
        }
        if node.deleting_dependents() && !was_deleting_dependents {
            for d in self.dependents.get(&uid).into_iter().flatten() {
                work.push(Work::AttemptToDelete(d.clone()));
            }
            work.push(Work::AttemptToDelete(uid.clone()));
        }
        self.nodes.insert(uid, node);
        dedup(work)
    }

    /// Records that the object with this UID is gone; returns the work that calls for: its
    /// dependents may now be garbage, and an owner waiting for it may now go.
    pub fn remove(&mut self, uid: &str) -> Vec<Work> {
        let mut work = Vec::new();
        if let Some(old) = self.nodes.remove(uid) {
            for r in &old.owners {
                self.unindex(&r.uid, uid);
                if self.nodes.get(&r.uid).is_some_and(Node::deleting_dependents) {
                    work.push(Work::AttemptToDelete(r.uid.clone()));
                }
            }
        }
        for d in self.dependents.get(uid).into_iter().flatten() {
            work.push(Work::AttemptToDelete(d.clone()));
        }
        dedup(work)
    }

    fn unindex(&mut self, owner: &str, dependent: &str) {
        if let Some(set) = self.dependents.get_mut(owner) {
            set.remove(dependent);
            if set.is_empty() {
                self.dependents.remove(owner);
            }
        }
    }
}

/// Drops repeats, keeping the first occurrence's order.
fn dedup(work: Vec<Work>) -> Vec<Work> {
    let mut out: Vec<Work> = Vec::with_capacity(work.len());
    for w in work {
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_api::resource::lookup;

    fn res(plural: &str) -> &'static ResourceInfo {
        let group = if plural == "deployments" || plural == "replicasets" { "apps" } else { "" };
        lookup(group, "v1", plural).expect("served resource")
    }

    fn owner(kind: &str, name: &str, uid: &str, block: bool) -> OwnerRef {
        let api_version = if kind == "Deployment" || kind == "ReplicaSet" { "apps/v1" } else { "v1" };
        OwnerRef {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            block_owner_deletion: block,
        }
    }

    fn node(plural: &str, name: &str, uid: &str, owners: Vec<OwnerRef>) -> Node {
        Node {
            id: ObjectId {
                resource: res(plural),
                namespace: Some("default".into()),
                name: name.into(),
                uid: uid.into(),
            },
            owners,
            being_deleted: false,
            finalizers: Vec::new(),
        }
    }

    fn deleting(mut n: Node, finalizer: &str) -> Node {
        n.being_deleted = true;
        n.finalizers = vec![finalizer.to_string()];
        n
    }

    fn del(uid: &str) -> Work {
        Work::AttemptToDelete(uid.into())
    }

    /// deployment d1 → replicaset r1 → pods p1, p2, all observed.
    fn chain() -> Graph {
        let mut g = Graph::new();
        g.upsert(node("deployments", "web", "d1", vec![]));
        g.upsert(node("replicasets", "web-1", "r1", vec![owner("Deployment", "web", "d1", true)]));
        g.upsert(node("pods", "web-1-a", "p1", vec![owner("ReplicaSet", "web-1", "r1", true)]));
        g.upsert(node("pods", "web-1-b", "p2", vec![owner("ReplicaSet", "web-1", "r1", false)]));
        g
    }

    #[test]
    fn from_meta_reads_what_the_collector_needs() {
        let meta: ObjectMeta = serde_json::from_value(serde_json::json!({
            "name": "web-1", "namespace": "default", "uid": "r1",
            "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["foregroundDeletion"],
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d1",
                                 "controller": true, "blockOwnerDeletion": true}]
        }))
        .expect("meta");
        let n = Node::from_meta(res("replicasets"), &meta).expect("node");
        assert_eq!(n.id.namespace.as_deref(), Some("default"));
        assert_eq!(n.owners, vec![owner("Deployment", "web", "d1", true)]);
        assert!(n.deleting_dependents());
        assert!(!n.orphaning());
        assert!(deleting_dependents(&meta));
        // Cluster-scoped objects have no namespace even if one is sent.
        let ns_meta: ObjectMeta =
            serde_json::from_value(serde_json::json!({"name": "n", "namespace": "x", "uid": "u"})).expect("meta");
        assert_eq!(Node::from_meta(res("nodes"), &ns_meta).expect("node").id.namespace, None);
        // No UID, no node.
        let bare: ObjectMeta = serde_json::from_value(serde_json::json!({"name": "n"})).expect("meta");
        assert_eq!(Node::from_meta(res("pods"), &bare), None);
    }

    #[test]
    fn upsert_work_table() {
        struct Case {
            name: &'static str,
            before: fn() -> Graph,
            change: fn() -> Node,
            want: Vec<Work>,
        }
        let cases = vec![
            Case {
                name: "dependent of an unseen owner is looked at",
                before: Graph::new,
                change: || node("pods", "p", "p1", vec![owner("ReplicaSet", "rs", "r1", true)]),
                want: vec![del("p1")],
            },
            Case {
                name: "dependent of an observed owner needs nothing",
                before: chain,
                change: || node("pods", "web-1-c", "p3", vec![owner("ReplicaSet", "web-1", "r1", true)]),
                want: vec![],
            },
            Case {
                name: "an update that keeps the same unseen owner is not looked at again",
                before: || {
                    let mut g = Graph::new();
                    g.upsert(node("pods", "p", "p1", vec![owner("ReplicaSet", "rs", "zz", true)]));
                    g
                },
                change: || node("pods", "p", "p1", vec![owner("ReplicaSet", "rs", "zz", true)]),
                want: vec![],
            },
            Case {
                name: "new dependent of an owner deleting dependents is looked at",
                before: || {
                    let mut g = chain();
                    g.upsert(deleting(
                        node("replicasets", "web-1", "r1", vec![owner("Deployment", "web", "d1", true)]),
                        FOREGROUND_FINALIZER,
                    ));
                    g
                },
                change: || node("pods", "web-1-c", "p3", vec![owner("ReplicaSet", "web-1", "r1", true)]),
                want: vec![del("p3")],
            },
            Case {
                name: "foreground deletion enqueues every dependent, then the owner",
                before: chain,
                change: || {
                    deleting(
                        node("replicasets", "web-1", "r1", vec![owner("Deployment", "web", "d1", true)]),
                        FOREGROUND_FINALIZER,
                    )
                },
                want: vec![del("p1"), del("p2"), del("r1")],
            },
            Case {
                name: "foreground deletion is acted on once, not on every update",
                before: || {
                    let mut g = chain();
                    g.upsert(deleting(
                        node("replicasets", "web-1", "r1", vec![owner("Deployment", "web", "d1", true)]),
                        FOREGROUND_FINALIZER,
                    ));
                    g
                },
                change: || {
                    deleting(
                        node("replicasets", "web-1", "r1", vec![owner("Deployment", "web", "d1", true)]),
                        FOREGROUND_FINALIZER,
                    )
                },
                want: vec![],
            },
            Case {
                name: "orphan deletion enqueues orphaning",
                before: chain,
                change: || deleting(node("deployments", "web", "d1", vec![]), ORPHAN_FINALIZER),
                want: vec![Work::AttemptToOrphan("d1".into())],
            },
            Case {
                name: "a dependent dropping its blocking reference wakes the owner deleting dependents",
                before: || {
                    let mut g = chain();
                    g.upsert(deleting(
                        node("replicasets", "web-1", "r1", vec![owner("Deployment", "web", "d1", true)]),
                        FOREGROUND_FINALIZER,
                    ));
                    g
                },
                change: || node("pods", "web-1-a", "p1", vec![]),
                want: vec![del("r1")],
            },
            Case {
                name: "a dependent unblocking its reference wakes the owner deleting dependents",
                before: || {
                    let mut g = chain();
                    g.upsert(deleting(
                        node("replicasets", "web-1", "r1", vec![owner("Deployment", "web", "d1", true)]),
                        FOREGROUND_FINALIZER,
                    ));
                    g
                },
                change: || node("pods", "web-1-a", "p1", vec![owner("ReplicaSet", "web-1", "r1", false)]),
                want: vec![del("r1")],
            },
            Case {
                name: "a dependent dropping a non-blocking reference to a live owner needs nothing",
                before: chain,
                change: || node("pods", "web-1-b", "p2", vec![]),
                want: vec![],
            },
        ];
        for c in cases {
            let mut g = (c.before)();
            assert_eq!(g.upsert((c.change)()), c.want, "{}", c.name);
        }
    }

    #[test]
    fn index_follows_reference_changes() {
        let mut g = chain();
        assert_eq!(g.dependents("r1").iter().map(|n| n.id.uid.as_str()).collect::<Vec<_>>(), ["p1", "p2"]);
        assert_eq!(g.blocking_dependents("r1").iter().map(|n| n.id.uid.as_str()).collect::<Vec<_>>(), ["p1"]);
        g.upsert(node("pods", "web-1-a", "p1", vec![]));
        assert_eq!(g.dependents("r1").iter().map(|n| n.id.uid.as_str()).collect::<Vec<_>>(), ["p2"]);
        assert!(g.blocking_dependents("r1").is_empty());
        assert!(g.has_dependents("d1"));
        assert!(!g.has_dependents("p1"));
        assert_eq!(g.len(), 4);
    }

    #[test]
    fn remove_enqueues_dependents_and_waiting_owners() {
        let mut g = chain();
        // The RS goes: its pods may be garbage.
        assert_eq!(g.remove("r1"), vec![del("p1"), del("p2")]);
        assert!(g.node("r1").is_none());
        // The pods still point at it, so the index keeps them.
        assert_eq!(g.dependents("r1").len(), 2);

        let mut g = chain();
        g.upsert(deleting(
            node("replicasets", "web-1", "r1", vec![owner("Deployment", "web", "d1", true)]),
            FOREGROUND_FINALIZER,
        ));
        // A pod goes while its RS waits for it: the RS is looked at again.
        assert_eq!(g.remove("p1"), vec![del("r1")]);
        assert_eq!(g.dependents("r1").iter().map(|n| n.id.uid.as_str()).collect::<Vec<_>>(), ["p2"]);
        // Removing something never observed still reports its dependents (a virtual delete).
        let mut g = Graph::new();
        g.upsert(node("configmaps", "dep", "c2", vec![owner("ConfigMap", "own", "c1", false)]));
        assert_eq!(g.remove("c1"), vec![del("c2")]);
        assert_eq!(g.remove("nothing"), vec![]);
    }

    #[test]
    fn owners_settled_table() {
        let g = chain();
        let cases = [
            ("all owners observed", node("pods", "x", "x1", vec![owner("ReplicaSet", "web-1", "r1", true)]), true),
            ("no owners", node("pods", "x", "x1", vec![]), true),
            ("an unseen owner", node("pods", "x", "x1", vec![owner("ReplicaSet", "web-1", "r9", true)]), false),
            (
                "a UID held by another name",
                node("pods", "x", "x1", vec![owner("ReplicaSet", "other", "r1", true)]),
                false,
            ),
            (
                "a UID held by another kind",
                node("pods", "x", "x1", vec![owner("Deployment", "web-1", "r1", true)]),
                false,
            ),
            (
                "one of two owners unseen",
                node(
                    "pods",
                    "x",
                    "x1",
                    vec![owner("ReplicaSet", "web-1", "r1", true), owner("ConfigMap", "c", "c9", false)],
                ),
                false,
            ),
        ];
        for (name, n, want) in cases {
            assert_eq!(g.owners_settled(&n), want, "{name}");
        }
        let mut g = chain();
        g.upsert(deleting(
            node("replicasets", "web-1", "r1", vec![owner("Deployment", "web", "d1", true)]),
            FOREGROUND_FINALIZER,
        ));
        let pod = node("pods", "x", "x1", vec![owner("ReplicaSet", "web-1", "r1", true)]);
        assert!(!g.owners_settled(&pod), "an owner deleting dependents is not settled");
        // Orphaning or plain deletion of the owner leaves dependents settled.
        let mut g = chain();
        g.upsert(deleting(node("replicasets", "web-1", "r1", vec![]), ORPHAN_FINALIZER));
        assert!(g.owners_settled(&pod));
    }

    #[test]
    fn uids_of_one_resource() {
        let g = chain();
        let mut pods = g.uids_of(res("pods"));
        pods.sort();
        assert_eq!(pods, ["p1", "p2"]);
        assert_eq!(g.uids_of(res("deployments")), ["d1"]);
        assert!(g.uids_of(res("configmaps")).is_empty());
    }
}
