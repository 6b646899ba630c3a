//! A list+watch cache that reports changes as an informer does (`client-go/tools/cache`): added,
//! updated (with the old object) and deleted, including the differences a relist reveals.
//!
//! kube's reflector store applies an event before anyone sees it, so the previous object is lost;
//! the ReplicaSet controller needs it (label and controller-reference changes, a pod turning ready).
//! This cache is fed `kube::runtime::watcher` events and is pure: no I/O, no clock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kube::Resource;
use kube::runtime::watcher::Event;

/// `(namespace, name)`: namespaced objects sort by namespace, so one namespace is a range.
pub type ObjectKey = (String, String);

/// One change, as informer handlers receive it.
#[derive(Debug, Clone)]
pub enum Change<K> {
    Added(Arc<K>),
    Updated {
        old: Arc<K>,
        new: Arc<K>,
    },
    /// The last known state of a deleted object.
    Deleted(Arc<K>),
}

/// Objects of one kind, as last listed and watched.
#[derive(Debug)]
pub struct Cache<K> {
    objects: BTreeMap<ObjectKey, Arc<K>>,
    /// The names of the objects of each namespace by the UID of their controller (the owner
    /// reference with `controller: true`; `""` for none), as upstream's controller-UID and
    /// orphan indexes: a ReplicaSet's sync looks at its own pods and the orphans only.
    by_controller: HashMap<ObjectKey, BTreeMap<String, Arc<K>>>,
    /// Objects received since the current relist began (`Init` .. `InitDone`).
    relist: Option<BTreeMap<ObjectKey, Arc<K>>>,
    synced: bool,
}

impl<K> Default for Cache<K> {
    fn default() -> Self {
        Cache { objects: BTreeMap::new(), by_controller: HashMap::new(), relist: None, synced: false }
    }
}

fn key_of<K: Resource>(obj: &K) -> ObjectKey {
    let meta = obj.meta();
    (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default())
}

/// `(namespace, controller UID)`, the UID `""` for an object without a controller.
fn controller_key<K: Resource>(obj: &K) -> ObjectKey {
    let meta = obj.meta();
    let uid = meta
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone())
        .unwrap_or_default();
    (meta.namespace.clone().unwrap_or_default(), uid)
}

impl<K: Resource> Cache<K> {
    pub fn new() -> Cache<K> {
        Cache::default()
    }

    /// True once a first complete list has been applied (`HasSynced`).
    pub fn synced(&self) -> bool {
        self.synced
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.objects.get(&(namespace.to_string(), name.to_string())).cloned()
    }

    /// Every object of one namespace, in name order.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        let start = (namespace.to_string(), String::new());
        self.objects.range(start..).take_while(|((ns, _), _)| ns == namespace).map(|(_, v)| v.clone()).collect()
    }

    /// The objects of `namespace` whose controller has `uid`, or, for `""`, those without a
    /// controller; in name order.
    pub fn controlled_by(&self, namespace: &str, uid: &str) -> Vec<Arc<K>> {
        let Some(objects) = self.by_controller.get(&(namespace.to_string(), uid.to_string())) else {
            return Vec::new();
        };
        objects.values().cloned().collect()
    }

    fn index(&mut self, obj: &Arc<K>) {
        let name = obj.meta().name.clone().unwrap_or_default();
        self.by_controller.entry(controller_key(obj.as_ref())).or_default().insert(name, obj.clone());
    }

    fn unindex(&mut self, obj: &K) {
        let key = controller_key(obj);
        if let Some(objects) = self.by_controller.get_mut(&key) {
            objects.remove(obj.meta().name.as_deref().unwrap_or_default());
            if objects.is_empty() {
                self.by_controller.remove(&key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    fn upsert(&mut self, obj: K) -> Change<K> {
        let new = Arc::new(obj);
        let change = match self.objects.insert(key_of(new.as_ref()), new.clone()) {
            Some(old) => {
                self.unindex(&old);
                Change::Updated { old, new: new.clone() }
            }
            None => Change::Added(new.clone()),
        };
        self.index(&new);
        change
    }

    /// Applies one watcher event and returns what changed. A completed relist replaces the contents:
    /// objects it did not list are reported deleted, the others added or updated (`Replace`).
    pub fn apply(&mut self, event: Event<K>) -> Vec<Change<K>> {
        match event {
            Event::Apply(obj) => vec![self.upsert(obj)],
            Event::Delete(obj) => {
                let key = key_of(&obj);
                let last = match self.objects.remove(&key) {
                    Some(last) => {
                        self.unindex(&last);
                        last
                    }
                    None => Arc::new(obj),
                };
                vec![Change::Deleted(last)]
            }
            Event::Init => {
                self.relist = Some(BTreeMap::new());
                Vec::new()
            }
            Event::InitApply(obj) => {
                let relist = self.relist.get_or_insert_default();
                relist.insert(key_of(&obj), Arc::new(obj));
                Vec::new()
            }
            Event::InitDone => {
                let listed = self.relist.take().unwrap_or_default();
                let mut changes = Vec::new();
                for (key, old) in &self.objects {
                    if !listed.contains_key(key) {
                        changes.push(Change::Deleted(old.clone()));
                    }
                }
                for (key, new) in &listed {
                    match self.objects.get(key) {
                        Some(old) => changes.push(Change::Updated { old: old.clone(), new: new.clone() }),
                        None => changes.push(Change::Added(new.clone())),
                    }
                }
                self.objects = listed;
                self.by_controller.clear();
                let objects: Vec<Arc<K>> = self.objects.values().cloned().collect();
                for obj in &objects {
                    self.index(obj);
                }
                self.synced = true;
                changes
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::pods::testing::*;
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn describe(changes: &[Change<Pod>]) -> Vec<String> {
        let n = |p: &Arc<Pod>| p.metadata.name.clone().unwrap_or_default();
        changes
            .iter()
            .map(|c| match c {
                Change::Added(p) => format!("+{}", n(p)),
                Change::Updated { old, new } => format!(
                    "~{}@{}->{}",
                    n(new),
                    old.metadata.resource_version.clone().unwrap_or_default(),
                    new.metadata.resource_version.clone().unwrap_or_default()
                ),
                Change::Deleted(p) => format!("-{}", n(p)),
            })
            .collect()
    }

    fn rv(mut p: Pod, v: &str) -> Pod {
        p.metadata.resource_version = Some(v.into());
        p
    }

    #[test]
    fn list_then_watch_then_relist() {
        let mut c: Cache<Pod> = Cache::new();
        assert!(!c.synced());
        assert!(describe(&c.apply(Event::Init)).is_empty());
        assert!(describe(&c.apply(Event::InitApply(rv(pod("a"), "1")))).is_empty());
        assert!(describe(&c.apply(Event::InitApply(rv(pod("b"), "2")))).is_empty());
        assert_eq!(describe(&c.apply(Event::InitDone)), vec!["+a", "+b"]);
        assert!(c.synced());
        assert_eq!(describe(&c.apply(Event::Apply(rv(pod("a"), "3")))), vec!["~a@1->3"]);
        assert_eq!(describe(&c.apply(Event::Apply(rv(pod("c"), "4")))), vec!["+c"]);
        assert_eq!(describe(&c.apply(Event::Delete(rv(pod("b"), "5")))), vec!["-b"]);
        assert_eq!(c.len(), 2);
        // A relist that misses c (deleted while disconnected) and shows a new a.
        c.apply(Event::Init);
        c.apply(Event::InitApply(rv(pod("a"), "7")));
        assert_eq!(describe(&c.apply(Event::InitDone)), vec!["-c", "~a@3->7"]);
        assert_eq!(c.len(), 1);
    }

    fn owned(name: &str, ns: &str, controller: Option<(&str, bool)>) -> Pod {
        let mut p = pod(name);
        p.metadata.namespace = Some(ns.into());
        p.metadata.owner_references = None;
        if let Some((uid, is_controller)) = controller {
            p.metadata.owner_references =
                Some(vec![serde_json::from_value(serde_json::json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": uid, "controller": is_controller
            }))
            .expect("owner reference")]);
        }
        p
    }

    #[test]
    fn index_by_controller_follows_changes_deletes_and_relists() {
        let mut c: Cache<Pod> = Cache::new();
        let names = |pods: Vec<Arc<Pod>>| -> Vec<String> {
            pods.iter().map(|p| p.metadata.name.clone().unwrap_or_default()).collect()
        };
        c.apply(Event::Apply(owned("b", "ns", Some(("u1", true)))));
        c.apply(Event::Apply(owned("a", "ns", Some(("u1", true)))));
        c.apply(Event::Apply(owned("c", "ns", None)));
        // An owner that is not the controller leaves the pod an orphan.
        c.apply(Event::Apply(owned("d", "ns", Some(("u1", false)))));
        c.apply(Event::Apply(owned("e", "other", Some(("u1", true)))));
        assert_eq!(names(c.controlled_by("ns", "u1")), ["a", "b"]);
        assert_eq!(names(c.controlled_by("ns", "")), ["c", "d"]);
        assert_eq!(names(c.controlled_by("other", "u1")), ["e"]);
        // Released, adopted by another, deleted.
        c.apply(Event::Apply(owned("a", "ns", None)));
        c.apply(Event::Apply(owned("c", "ns", Some(("u2", true)))));
        c.apply(Event::Delete(owned("b", "ns", Some(("u1", true)))));
        assert!(c.controlled_by("ns", "u1").is_empty());
        assert_eq!(names(c.controlled_by("ns", "")), ["a", "d"]);
        assert_eq!(names(c.controlled_by("ns", "u2")), ["c"]);
        // A relist rebuilds the index from what it listed.
        c.apply(Event::Init);
        c.apply(Event::InitApply(owned("f", "ns", Some(("u2", true)))));
        c.apply(Event::InitDone);
        assert_eq!(names(c.controlled_by("ns", "u2")), ["f"]);
        assert!(c.controlled_by("ns", "").is_empty());
        assert!(c.by_controller.len() == 1, "{:?}", c.by_controller);
    }

    #[test]
    fn namespace_ranges() {
        let mut c: Cache<Pod> = Cache::new();
        let mut other = pod("z");
        other.metadata.namespace = Some("defaultx".into());
        let mut before = pod("y");
        before.metadata.namespace = Some("a".into());
        for p in [pod("b"), pod("a"), other, before] {
            c.apply(Event::Apply(p));
        }
        let names: Vec<String> =
            c.in_namespace("default").iter().map(|p| p.metadata.name.clone().unwrap_or_default()).collect();
        assert_eq!(names, vec!["a", "b"]);
        assert!(c.get("default", "a").is_some());
        assert!(c.get("default", "z").is_none());
    }
}
