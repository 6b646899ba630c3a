//! What to do with one object, decided without I/O (upstream `attemptToDeleteItem`,
//! `classifyReferences`, `processDeletingDependentsItem`). The executor gathers the inputs (the live
//! object, a live GET of each owner, the graph's view of its dependents) and carries out the answer.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use skiff_api::resource::{self, ResourceInfo};

use super::graph::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER, OwnerRef, deleting_dependents, has_finalizer};

/// An owner as a live GET found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// No object of that kind and name, or one with another UID (upstream's "dangling").
    Absent,
    /// Exists and is not waiting for its dependents.
    Solid,
    /// Exists, with a deletionTimestamp and the `foregroundDeletion` finalizer.
    WaitingForDependentsDeletion,
    /// The reference cannot be looked up: a kind Skiff does not serve, or a namespaced owner of a
    /// cluster-scoped object. Upstream gives up on the item (an error) rather than guess, and so do we.
    Unresolvable,
}

/// Where an owner named by `r` lives: its resource and namespace. A namespaced owner lives in the
/// dependent's namespace (ownerReferences never cross namespaces); a cluster-scoped one in none.
pub fn owner_location(
    r: &OwnerRef,
    dependent_namespace: Option<&str>,
) -> Option<(&'static ResourceInfo, Option<String>)> {
    let res = resource::lookup_kind(&r.api_version, &r.kind)?;
    if !res.namespaced() {
        return Some((res, None));
    }
    let ns = dependent_namespace.filter(|ns| !ns.is_empty())?;
    Some((res, Some(ns.to_string())))
}

/// Classifies an owner from a live GET by name (`None`: not found). A found object with another UID
/// is a different object that took the name, so the owner counts as absent.
pub fn owner_state(r: &OwnerRef, live: Option<&ObjectMeta>) -> OwnerState {
    match live {
        None => OwnerState::Absent,
        Some(m) if m.uid.as_deref() != Some(r.uid.as_str()) => OwnerState::Absent,
        Some(m) if deleting_dependents(m) => OwnerState::WaitingForDependentsDeletion,
        Some(_) => OwnerState::Solid,
    }
}

/// A DELETE's `propagationPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

impl Propagation {
    pub fn to_kube(self) -> kube::api::PropagationPolicy {
        match self {
            Propagation::Background => kube::api::PropagationPolicy::Background,
            Propagation::Foreground => kube::api::PropagationPolicy::Foreground,
            Propagation::Orphan => kube::api::PropagationPolicy::Orphan,
        }
    }
}

/// The first look at a live object taken from the attempt-to-delete queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Triage {
    /// Being deleted in the foreground: see whether its blocking dependents are gone.
    DeletingDependents,
    /// Being deleted otherwise ("a one-way trip"), or owned by nobody: nothing to do.
    Skip,
    /// Has owners: classify them.
    Classify,
}

pub fn triage(live: &ObjectMeta) -> Triage {
    if deleting_dependents(live) {
        Triage::DeletingDependents
    } else if live.deletion_timestamp.is_some() || live.owner_references.as_ref().is_none_or(Vec::is_empty) {
        Triage::Skip
    } else {
        Triage::Classify
    }
}

/// What to do with an object whose owners have been classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// It stays as it is.
    Keep,
    /// It stays (some owner is solid), but these references, to absent owners or to owners waiting
    /// for their dependents, go: left in place, a waiting owner would wait for ever.
    RemoveOwnerRefs(Vec<String>),
    /// It is garbage. With `unblock_first`, first set `blockOwnerDeletion: false` on its references:
    /// an owner waiting on it and a dependent of it waiting on each other would never finish.
    Delete { propagation: Propagation, unblock_first: bool },
}

/// Decides for an object with owners (upstream `attemptToDeleteItem` after `classifyReferences`).
///
/// * `owners`: each ownerReference with the state a live GET found;
/// * `has_dependents`: the graph knows objects that it owns;
/// * `dependent_deleting_dependents`: one of those is itself being deleted in the foreground.
pub fn plan_delete(
    item: &ObjectMeta,
    owners: &[(OwnerRef, OwnerState)],
    has_dependents: bool,
    dependent_deleting_dependents: bool,
) -> Action {
    if owners.is_empty() || owners.iter().any(|(_, s)| *s == OwnerState::Unresolvable) {
        return Action::Keep;
    }
    let solid = owners.iter().any(|(_, s)| *s == OwnerState::Solid);
    let waiting = owners.iter().any(|(_, s)| *s == OwnerState::WaitingForDependentsDeletion);
    if solid {
        let gone: Vec<String> =
            owners.iter().filter(|(_, s)| *s != OwnerState::Solid).map(|(r, _)| r.uid.clone()).collect();
        return if gone.is_empty() { Action::Keep } else { Action::RemoveOwnerRefs(gone) };
    }
    if waiting && has_dependents {
        // Its owner waits in the foreground and it has dependents of its own: propagate the
        // foreground deletion down the chain.
        return Action::Delete { propagation: Propagation::Foreground, unblock_first: dependent_deleting_dependents };
    }
    // No owner left: delete it the way it asked to be deleted, by default in the background.
    let propagation = if has_finalizer(item, ORPHAN_FINALIZER) {
        Propagation::Orphan
    } else if has_finalizer(item, FOREGROUND_FINALIZER) {
        Propagation::Foreground
    } else {
        Propagation::Background
    };
    Action::Delete { propagation, unblock_first: false }
}

/// What to do with an owner deleting its dependents (upstream `processDeletingDependentsItem`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForegroundAction {
    /// No blocking dependent remains: drop the `foregroundDeletion` finalizer, which deletes it.
    RemoveFinalizer,
    /// Blocking dependents remain: look at these (those not already deleting their own dependents).
    Wait(Vec<String>),
}

/// Decides for an owner deleting its dependents, from its blocking dependents as `(uid, whether it
/// is itself deleting dependents)`.
pub fn plan_deleting_dependents(blocking: &[(String, bool)]) -> ForegroundAction {
    if blocking.is_empty() {
        return ForegroundAction::RemoveFinalizer;
    }
    ForegroundAction::Wait(blocking.iter().filter(|(_, deleting)| !deleting).map(|(uid, _)| uid.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(v: serde_json::Value) -> ObjectMeta {
        serde_json::from_value(v).expect("meta")
    }

    /// `(plural, namespace)` of an owner's location.
    type Location = (&'static str, Option<&'static str>);

    fn rs_ref(uid: &str) -> OwnerRef {
        OwnerRef {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "web-1".into(),
            uid: uid.into(),
            block_owner_deletion: true,
        }
    }

    fn cm_ref(uid: &str) -> OwnerRef {
        OwnerRef {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "own".into(),
            uid: uid.into(),
            block_owner_deletion: false,
        }
    }

    #[test]
    fn owner_location_table() {
        let node_ref = OwnerRef {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: "n1".into(),
            uid: "u".into(),
            block_owner_deletion: false,
        };
        let unknown = OwnerRef {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name: "j".into(),
            uid: "u".into(),
            block_owner_deletion: false,
        };
        let wrong_version = OwnerRef { api_version: "apps/v1beta1".into(), ..rs_ref("u") };
        let rs = rs_ref("u");
        let cases: Vec<(&str, &OwnerRef, Option<&str>, Option<Location>)> = vec![
            (
                "namespaced owner in the dependent's namespace",
                &rs,
                Some("default"),
                Some(("replicasets", Some("default"))),
            ),
            ("cluster-scoped owner of a namespaced dependent", &node_ref, Some("default"), Some(("nodes", None))),
            ("cluster-scoped owner of a cluster-scoped dependent", &node_ref, None, Some(("nodes", None))),
            ("namespaced owner of a cluster-scoped dependent", &rs, None, None),
            ("a kind Skiff does not serve", &unknown, Some("default"), None),
            ("a version Skiff does not serve", &wrong_version, Some("default"), None),
        ];
        for (name, r, ns, want) in cases {
            let got = owner_location(r, ns);
            let got = got.as_ref().map(|(res, ns)| (res.plural, ns.as_deref()));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn owner_state_table() {
        let live = meta(json!({"name": "web-1", "uid": "r1"}));
        let other = meta(json!({"name": "web-1", "uid": "r2"}));
        let fg = meta(
            json!({"name": "web-1", "uid": "r1", "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["foregroundDeletion"]}),
        );
        let orphaning = meta(
            json!({"name": "web-1", "uid": "r1", "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["orphan"]}),
        );
        let fg_no_ts = meta(json!({"name": "web-1", "uid": "r1", "finalizers": ["foregroundDeletion"]}));
        let cases = [
            ("not found", None, OwnerState::Absent),
            ("same name, other UID", Some(&other), OwnerState::Absent),
            ("live", Some(&live), OwnerState::Solid),
            ("deleting dependents", Some(&fg), OwnerState::WaitingForDependentsDeletion),
            ("orphaning owner is still solid", Some(&orphaning), OwnerState::Solid),
            ("finalizer without deletionTimestamp is solid", Some(&fg_no_ts), OwnerState::Solid),
        ];
        for (name, m, want) in cases {
            assert_eq!(owner_state(&rs_ref("r1"), m), want, "{name}");
        }
    }

    #[test]
    fn triage_table() {
        let cases = [
            ("no owners", json!({"name": "a", "uid": "1"}), Triage::Skip),
            ("empty owners", json!({"name": "a", "uid": "1", "ownerReferences": []}), Triage::Skip),
            (
                "owned",
                json!({"name": "a", "uid": "1", "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "2"}]}),
                Triage::Classify,
            ),
            (
                "owned, being deleted",
                json!({"name": "a", "uid": "1", "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["orphan"],
                       "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "2"}]}),
                Triage::Skip,
            ),
            (
                "deleting dependents, no owners",
                json!({"name": "a", "uid": "1", "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["foregroundDeletion"]}),
                Triage::DeletingDependents,
            ),
        ];
        for (name, m, want) in cases {
            assert_eq!(triage(&meta(m)), want, "{name}");
        }
    }

    #[test]
    fn plan_delete_table() {
        use OwnerState::*;
        let plain = meta(json!({"name": "p", "uid": "p1"}));
        let with_orphan = meta(json!({"name": "p", "uid": "p1", "finalizers": ["orphan"]}));
        let with_fg = meta(json!({"name": "p", "uid": "p1", "finalizers": ["foregroundDeletion"]}));
        let bg = Action::Delete { propagation: Propagation::Background, unblock_first: false };
        let fg = Action::Delete { propagation: Propagation::Foreground, unblock_first: false };
        struct Case<'a> {
            name: &'a str,
            item: &'a ObjectMeta,
            owners: Vec<(OwnerRef, OwnerState)>,
            has_dependents: bool,
            dependent_deleting: bool,
            want: Action,
        }
        let cases = vec![
            Case {
                name: "owner absent: background",
                item: &plain,
                owners: vec![(rs_ref("r1"), Absent)],
                has_dependents: false,
                dependent_deleting: false,
                want: bg.clone(),
            },
            Case {
                name: "owner absent, item has dependents: still background",
                item: &plain,
                owners: vec![(rs_ref("r1"), Absent)],
                has_dependents: true,
                dependent_deleting: false,
                want: bg.clone(),
            },
            Case {
                name: "owner solid: keep",
                item: &plain,
                owners: vec![(rs_ref("r1"), Solid)],
                has_dependents: false,
                dependent_deleting: false,
                want: Action::Keep,
            },
            Case {
                name: "one owner gone, one alive: keep, drop the dangling reference",
                item: &plain,
                owners: vec![(cm_ref("c1"), Absent), (cm_ref("c2"), Solid)],
                has_dependents: false,
                dependent_deleting: false,
                want: Action::RemoveOwnerRefs(vec!["c1".into()]),
            },
            Case {
                name: "alive owner and a waiting owner: drop the waiting reference",
                item: &plain,
                owners: vec![
                    (cm_ref("c1"), WaitingForDependentsDeletion),
                    (cm_ref("c2"), Solid),
                    (cm_ref("c3"), Absent),
                ],
                has_dependents: true,
                dependent_deleting: false,
                want: Action::RemoveOwnerRefs(vec!["c1".into(), "c3".into()]),
            },
            Case {
                name: "owner waiting, item without dependents: background",
                item: &plain,
                owners: vec![(rs_ref("r1"), WaitingForDependentsDeletion)],
                has_dependents: false,
                dependent_deleting: false,
                want: bg.clone(),
            },
            Case {
                name: "owner waiting, item with dependents: foreground",
                item: &plain,
                owners: vec![(rs_ref("r1"), WaitingForDependentsDeletion)],
                has_dependents: true,
                dependent_deleting: false,
                want: fg.clone(),
            },
            Case {
                name: "owner waiting, a dependent deleting its own: unblock, then foreground",
                item: &plain,
                owners: vec![(rs_ref("r1"), WaitingForDependentsDeletion)],
                has_dependents: true,
                dependent_deleting: true,
                want: Action::Delete { propagation: Propagation::Foreground, unblock_first: true },
            },
            Case {
                name: "one owner waiting, one absent, with dependents: foreground",
                item: &plain,
                owners: vec![(rs_ref("r1"), WaitingForDependentsDeletion), (cm_ref("c1"), Absent)],
                has_dependents: true,
                dependent_deleting: false,
                want: fg.clone(),
            },
            Case {
                name: "orphan finalizer honoured",
                item: &with_orphan,
                owners: vec![(rs_ref("r1"), Absent)],
                has_dependents: true,
                dependent_deleting: false,
                want: Action::Delete { propagation: Propagation::Orphan, unblock_first: false },
            },
            Case {
                name: "foreground finalizer honoured",
                item: &with_fg,
                owners: vec![(rs_ref("r1"), Absent)],
                has_dependents: false,
                dependent_deleting: false,
                want: fg.clone(),
            },
            Case {
                name: "an unresolvable reference keeps the item",
                item: &plain,
                owners: vec![(rs_ref("r1"), Absent), (cm_ref("x"), Unresolvable)],
                has_dependents: false,
                dependent_deleting: false,
                want: Action::Keep,
            },
            Case {
                name: "no owners: keep",
                item: &plain,
                owners: vec![],
                has_dependents: false,
                dependent_deleting: false,
                want: Action::Keep,
            },
        ];
        for c in cases {
            assert_eq!(plan_delete(c.item, &c.owners, c.has_dependents, c.dependent_deleting), c.want, "{}", c.name);
        }
    }

    #[test]
    fn plan_deleting_dependents_table() {
        let cases = [
            ("no blocking dependents", vec![], ForegroundAction::RemoveFinalizer),
            (
                "blocking dependents are looked at",
                vec![("p1".to_string(), false), ("p2".to_string(), false)],
                ForegroundAction::Wait(vec!["p1".into(), "p2".into()]),
            ),
            (
                "a dependent deleting its own dependents is left to finish",
                vec![("r1".to_string(), true), ("p2".to_string(), false)],
                ForegroundAction::Wait(vec!["p2".into()]),
            ),
            (
                "only dependents deleting their own: wait for them",
                vec![("r1".to_string(), true)],
                ForegroundAction::Wait(vec![]),
            ),
        ];
        for (name, blocking, want) in cases {
            assert_eq!(plan_deleting_dependents(&blocking), want, "{name}");
        }
    }
}
