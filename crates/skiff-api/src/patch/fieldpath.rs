//! Field sets in the `FieldsV1` notation of `metadata.managedFields` (structured-merge-diff's
//! `fieldpath.Set`).
//!
//! A path is a list of path elements, each written as in `FieldsV1`: `f:<field>` (struct field or map
//! key), `k:<json object>` (element of a map list, by its keys), `v:<json>` (element of a set) and
//! `i:<n>` (list index). A set is a tree: a node is a *member* when the path to it is in the set
//! (`{}` for a leaf, `".": {}` for a node that also has members below it).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// A path, one `FieldsV1` element per step.
pub type Path = Vec<String>;

/// A set of field paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Set {
    members: BTreeSet<String>,
    children: BTreeMap<String, Set>,
}

impl Set {
    pub fn new() -> Self {
        Set::default()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(Set::is_empty)
    }

    /// Adds a path (the empty path is ignored).
    pub fn insert(&mut self, path: &[String]) {
        match path {
            [] => {}
            [last] => {
                if !self.members.contains(last) {
                    self.members.insert(last.clone());
                }
            }
            // The key is cloned only when the child is new (most inserts share their parents).
            [first, rest @ ..] => match self.children.get_mut(first) {
                Some(child) => child.insert(rest),
                None => self.children.entry(first.clone()).or_default().insert(rest),
            },
        }
    }

    /// Removes the path itself, not what lies below it (`difference` with that one path), and the
    /// nodes this leaves empty.
    pub fn remove(&mut self, path: &[&str]) {
        match path {
            [] => {}
            [last] => {
                self.members.remove(*last);
            }
            [first, rest @ ..] => {
                if let Some(child) = self.children.get_mut(*first) {
                    child.remove(rest);
                    if child.is_empty() {
                        self.children.remove(*first);
                    }
                }
            }
        }
    }

    /// Removes the path and everything below it (`recursive_difference` with that one path), and
    /// the nodes this leaves empty.
    pub fn remove_tree(&mut self, path: &[&str]) {
        match path {
            [] => {}
            [last] => {
                self.members.remove(*last);
                self.children.remove(*last);
            }
            [first, rest @ ..] => {
                if let Some(child) = self.children.get_mut(*first) {
                    child.remove_tree(rest);
                    if child.is_empty() {
                        self.children.remove(*first);
                    }
                }
            }
        }
    }

    /// Whether the path itself is in the set.
    pub fn has(&self, path: &[String]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// Whether the path or anything below it is in the set.
    pub fn has_under(&self, path: &[String]) -> bool {
        match path {
            [] => !self.is_empty(),
            [last] => self.members.contains(last) || self.children.get(last).is_some_and(|c| !c.is_empty()),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has_under(rest)),
        }
    }

    pub fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, child) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out.pruned()
    }

    /// The paths of `self` that are not in `other` (exact paths: members of `other` do not remove
    /// what lies below them).
    pub fn difference(&self, other: &Set) -> Set {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .map(|(pe, child)| match other.children.get(pe) {
                Some(o) => (pe.clone(), child.difference(o)),
                None => (pe.clone(), child.clone()),
            })
            .collect();
        Set { members, children }.pruned()
    }

    /// The paths of `self` that are neither in `other` nor below one of its members.
    pub fn recursive_difference(&self, other: &Set) -> Set {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter(|(pe, _)| !other.members.contains(*pe))
            .map(|(pe, child)| match other.children.get(pe) {
                Some(o) => (pe.clone(), child.recursive_difference(o)),
                None => (pe.clone(), child.clone()),
            })
            .collect();
        Set { members, children }.pruned()
    }

    pub fn intersection(&self, other: &Set) -> Set {
        let members = self.members.intersection(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, child)| other.children.get(pe).map(|o| (pe.clone(), child.intersection(o))))
            .collect();
        Set { members, children }.pruned()
    }

    /// Every member path, parents before children, in path-element order.
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        let mut pes: BTreeSet<&String> = self.members.iter().collect();
        pes.extend(self.children.keys());
        for pe in pes {
            prefix.push(pe.clone());
            if self.members.contains(pe) {
                out.push(prefix.clone());
            }
            if let Some(child) = self.children.get(pe) {
                child.collect(prefix, out);
            }
            prefix.pop();
        }
    }

    /// The paths of nodes that have members below them (interior nodes), deepest first.
    pub fn interior_paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect_interior(&mut Vec::new(), &mut out);
        out
    }

    fn collect_interior(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        for (pe, child) in &self.children {
            if child.is_empty() {
                continue;
            }
            prefix.push(pe.clone());
            child.collect_interior(prefix, out);
            out.push(prefix.clone());
            prefix.pop();
        }
    }

    fn pruned(mut self) -> Set {
        self.children.retain(|_, c| !c.is_empty());
        self
    }

    /// The `fieldsV1` JSON of this set.
    pub fn to_fields_v1(&self) -> Value {
        let mut out = Map::new();
        for pe in &self.members {
            out.insert(pe.clone(), Value::Object(Map::new()));
        }
        for (pe, child) in &self.children {
            if child.is_empty() {
                continue;
            }
            let mut inner = match child.to_fields_v1() {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            if self.members.contains(pe) {
                inner.insert(".".to_string(), Value::Object(Map::new()));
            }
            out.insert(pe.clone(), Value::Object(inner));
        }
        Value::Object(out)
    }

    /// Parses `fieldsV1`; `None` when it is not in that notation.
    pub fn from_fields_v1(v: &Value) -> Option<Set> {
        let obj = v.as_object()?;
        let mut set = Set::new();
        for (pe, child) in obj {
            if pe == "." {
                continue;
            }
            if !["f:", "k:", "v:", "i:"].iter().any(|p| pe.starts_with(p)) {
                return None;
            }
            let inner = child.as_object()?;
            if inner.is_empty() || inner.contains_key(".") {
                set.members.insert(pe.clone());
            }
            if inner.keys().any(|k| k != ".") {
                set.children.insert(pe.clone(), Set::from_fields_v1(child)?);
            }
        }
        Some(set)
    }
}

/// A path as structured-merge-diff prints it in conflict messages:
/// `.spec.template.spec.containers[name="web"].image`.
pub fn path_string(path: &[String]) -> String {
    let mut out = String::new();
    for pe in path {
        if let Some(name) = pe.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(key) = pe.strip_prefix("k:") {
            let fields: Vec<String> = match serde_json::from_str::<Value>(key) {
                Ok(Value::Object(m)) => m.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                _ => vec![key.to_string()],
            };
            out.push_str(&format!("[{}]", fields.join(",")));
        } else if let Some(value) = pe.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        } else if let Some(index) = pe.strip_prefix("i:") {
            out.push_str(&format!("[{index}]"));
        }
    }
    out
}

/// `f:<name>`
pub fn field_pe(name: &str) -> String {
    let mut pe = String::with_capacity(name.len() + 2);
    pe.push_str("f:");
    pe.push_str(name);
    pe
}

/// `k:{"a":1,"b":"x"}`, the key fields sorted by name.
pub fn key_pe(fields: &[(&str, Value)]) -> String {
    let mut sorted: Vec<&(&str, Value)> = fields.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let parts: Vec<String> = sorted.iter().map(|(k, v)| format!("{}:{}", Value::String((*k).to_string()), v)).collect();
    format!("k:{{{}}}", parts.join(","))
}

/// `v:<json>`
pub fn value_pe(v: &Value) -> String {
    format!("v:{v}")
}

/// Parses a path from strings like `["f:spec", "f:replicas"]` (test helper and documentation aid).
pub fn path(elements: &[&str]) -> Path {
    elements.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set_of(paths: &[&[&str]]) -> Set {
        let mut s = Set::new();
        for p in paths {
            s.insert(&path(p));
        }
        s
    }

    #[test]
    fn fields_v1_round_trip_with_dot_members() {
        let v = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}, "f:replicas": {}}
        });
        let s = Set::from_fields_v1(&v).expect("parses");
        assert!(s.has(&path(&["f:metadata", "f:labels"])));
        assert!(!s.has(&path(&["f:metadata"])));
        assert!(s.has(&path(&["f:spec", "f:containers", "k:{\"name\":\"web\"}", "f:image"])));
        assert_eq!(s.to_fields_v1(), v);
        assert!(Set::from_fields_v1(&json!({"spec": {}})).is_none());
    }

    #[test]
    fn set_algebra() {
        let a = set_of(&[&["f:spec", "f:replicas"], &["f:spec", "f:paused"], &["f:metadata", "f:labels", "f:a"]]);
        let b = set_of(&[&["f:spec", "f:replicas"], &["f:metadata", "f:labels"]]);
        assert_eq!(a.intersection(&b), set_of(&[&["f:spec", "f:replicas"]]));
        assert_eq!(a.difference(&b), set_of(&[&["f:spec", "f:paused"], &["f:metadata", "f:labels", "f:a"]]));
        assert_eq!(a.recursive_difference(&b), set_of(&[&["f:spec", "f:paused"]]));
        assert_eq!(a.union(&b).paths().len(), 4);
        for p in [&["f:spec", "f:replicas"][..], &["f:metadata", "f:labels"], &["f:spec"], &["f:status"]] {
            let mut removed = a.clone();
            removed.remove(p);
            assert_eq!(removed, a.difference(&set_of(&[p])), "remove {p:?}");
            let mut removed = a.clone();
            removed.remove_tree(p);
            assert_eq!(removed, a.recursive_difference(&set_of(&[p])), "remove_tree {p:?}");
        }
        assert!(a.has_under(&path(&["f:metadata"])));
        assert!(!a.has_under(&path(&["f:status"])));
        assert_eq!(
            a.interior_paths(),
            vec![path(&["f:metadata", "f:labels"]), path(&["f:metadata"]), path(&["f:spec"])]
        );
    }

    #[test]
    fn paths_print_like_structured_merge_diff() {
        let cases: &[(&[&str], &str)] = &[
            (&["f:spec", "f:replicas"], ".spec.replicas"),
            (&["f:spec", "f:containers", "k:{\"name\":\"web\"}", "f:image"], ".spec.containers[name=\"web\"].image"),
            (
                &["f:ports", "k:{\"containerPort\":80,\"protocol\":\"TCP\"}"],
                ".ports[containerPort=80,protocol=\"TCP\"]",
            ),
            (&["f:metadata", "f:finalizers", "v:\"a/b\""], ".metadata.finalizers[=\"a/b\"]"),
        ];
        for (p, want) in cases {
            assert_eq!(path_string(&path(p)), *want);
        }
        assert_eq!(
            key_pe(&[("protocol", json!("TCP")), ("containerPort", json!(80))]),
            "k:{\"containerPort\":80,\"protocol\":\"TCP\"}"
        );
    }
}
