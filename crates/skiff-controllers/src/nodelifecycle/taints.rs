//! Which taints the node lifecycle controller adds and removes (`node_lifecycle_controller.go`:
//! `doNoScheduleTaintingPass`, `processTaintBaseEviction`, `doNoExecuteTaintingPass`;
//! `controller_utils.go`: `AddOrUpdateTaintOnNode`, `RemoveTaintOffNode`).
//!
//! Taints match by key and effect; every taint the controller adds carries `timeAdded`.

use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::health::{self, FALSE, TRUE, UNKNOWN};

pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

pub const NO_SCHEDULE: &str = "NoSchedule";
pub const NO_EXECUTE: &str = "NoExecute";

/// A taint with `key` and `effect`, no value, no time.
pub fn template(key: &str, effect: &str) -> Taint {
    Taint { key: key.to_string(), effect: effect.to_string(), ..Taint::default() }
}

/// The taint key that a condition of `kind` with `status` calls for (`nodeConditionToTaintKeyStatusMap`).
fn condition_taint(kind: &str, status: &str) -> Option<&'static str> {
    match (kind, status) {
        (health::READY, FALSE) => Some(NOT_READY),
        (health::READY, UNKNOWN) => Some(UNREACHABLE),
        (health::MEMORY_PRESSURE, TRUE) => Some(MEMORY_PRESSURE),
        (health::DISK_PRESSURE, TRUE) => Some(DISK_PRESSURE),
        (health::NETWORK_UNAVAILABLE, TRUE) => Some(NETWORK_UNAVAILABLE),
        (health::PID_PRESSURE, TRUE) => Some(PID_PRESSURE),
        _ => None,
    }
}

/// Whether `key` is one of the condition taints.
fn is_condition_taint(key: &str) -> bool {
    [NOT_READY, UNREACHABLE, MEMORY_PRESSURE, DISK_PRESSURE, NETWORK_UNAVAILABLE, PID_PRESSURE].contains(&key)
}

/// Same key and effect (`Taint.MatchTaint`).
pub fn same(a: &Taint, b: &Taint) -> bool {
    a.key == b.key && a.effect == b.effect
}

/// Whether `taints` has one matching `t`.
pub fn exists(taints: &[Taint], t: &Taint) -> bool {
    taints.iter().any(|x| same(x, t))
}

/// The node's taints.
pub fn of(node: &Node) -> &[Taint] {
    node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or(&[])
}

/// Taints to add and to remove (templates: `timeAdded` is set when applied).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    pub add: Vec<Taint>,
    pub remove: Vec<Taint>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }

    /// Adds `add` and removes `remove`, both with `effect`.
    pub fn swap(add: &str, remove: &str, effect: &str) -> Change {
        Change { add: vec![template(add, effect)], remove: vec![template(remove, effect)] }
    }
}

/// The NoSchedule condition taints the node should carry, against those it carries.
pub fn no_schedule_change(node: &Node) -> Change {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
    let mut wanted: Vec<Taint> = conditions
        .iter()
        .filter_map(|c| condition_taint(&c.type_, &c.status))
        .map(|key| template(key, NO_SCHEDULE))
        .collect();
    if node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false) {
        wanted.push(template(UNSCHEDULABLE, NO_SCHEDULE));
    }
    let current: Vec<&Taint> = of(node)
        .iter()
        .filter(|t| t.effect == NO_SCHEDULE && (t.key == UNSCHEDULABLE || is_condition_taint(&t.key)))
        .collect();
    let add = wanted.iter().filter(|w| !current.iter().any(|c| same(c, w))).cloned().collect();
    let remove = current.iter().filter(|c| !wanted.iter().any(|w| same(c, w))).map(|c| (*c).clone()).collect();
    Change { add, remove }
}

/// What to do about the NoExecute taints given the observed Ready status (`processTaintBaseEviction`).
#[derive(Debug, Clone, PartialEq)]
pub enum NoExecuteStep {
    /// Swap the opposite taint at once (the node is already NoExecute-tainted for the other state).
    Swap(Change),
    /// Queue the node for tainting (rate limited) for this Ready status (`False` or `Unknown`).
    Queue(&'static str),
    /// The node is Ready: remove both NoExecute taints and forget any queued tainting.
    Reachable,
    /// Nothing to do.
    Nothing,
}

/// The NoExecute step for a node whose observed Ready status is `ready` and taints `taints`.
pub fn no_execute_step(ready: &str, taints: &[Taint]) -> NoExecuteStep {
    match ready {
        FALSE if exists(taints, &template(UNREACHABLE, NO_EXECUTE)) => {
            NoExecuteStep::Swap(Change::swap(NOT_READY, UNREACHABLE, NO_EXECUTE))
        }
        FALSE => NoExecuteStep::Queue(FALSE),
        UNKNOWN if exists(taints, &template(NOT_READY, NO_EXECUTE)) => {
            NoExecuteStep::Swap(Change::swap(UNREACHABLE, NOT_READY, NO_EXECUTE))
        }
        UNKNOWN => NoExecuteStep::Queue(UNKNOWN),
        TRUE => NoExecuteStep::Reachable,
        _ => NoExecuteStep::Nothing,
    }
}

/// The NoExecute taint a queued node gets once the rate limiter lets it through, given its Ready
/// status then; None when it is Ready again (or has no Ready condition) and needs none.
pub fn queued_no_execute(ready: Option<&str>) -> Option<Change> {
    match ready {
        Some(FALSE) => Some(Change::swap(NOT_READY, UNREACHABLE, NO_EXECUTE)),
        Some(UNKNOWN) => Some(Change::swap(UNREACHABLE, NOT_READY, NO_EXECUTE)),
        _ => None,
    }
}

/// Removing both NoExecute condition taints (`markNodeAsReachable`).
pub fn reachable() -> Change {
    Change { add: vec![], remove: vec![template(UNREACHABLE, NO_EXECUTE), template(NOT_READY, NO_EXECUTE)] }
}

/// The taints after applying `change` to `existing` at `now`; None when nothing changes. An added
/// taint replaces one with the same key and effect unless identical (`AddOrUpdateTaint`).
pub fn apply(existing: &[Taint], change: &Change, now: Timestamp) -> Option<Vec<Taint>> {
    let mut taints = existing.to_vec();
    let mut changed = false;
    for add in &change.add {
        let add = Taint { time_added: Some(Time(now)), ..add.clone() };
        match taints.iter_mut().find(|t| same(t, &add)) {
            Some(t) if *t == add => {}
            Some(t) => {
                *t = add;
                changed = true;
            }
            None => {
                taints.push(add);
                changed = true;
            }
        }
    }
    let before = taints.len();
    taints.retain(|t| !change.remove.iter().any(|r| same(t, r)));
    changed |= taints.len() != before;
    changed.then_some(taints)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("timestamp")
    }

    fn node(conditions: &[(&str, &str)], taints: &[(&str, &str)], unschedulable: bool) -> Node {
        let conditions: Vec<_> = conditions.iter().map(|(t, s)| json!({"type": t, "status": s})).collect();
        let taints: Vec<_> = taints.iter().map(|(k, e)| json!({"key": k, "effect": e})).collect();
        serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "spec": {"taints": taints, "unschedulable": unschedulable},
            "status": {"conditions": conditions}
        }))
        .expect("node")
    }

    fn keys(taints: &[Taint]) -> Vec<(String, String)> {
        taints.iter().map(|t| (t.key.clone(), t.effect.clone())).collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, e)| (k.to_string(), e.to_string())).collect()
    }

    #[test]
    fn no_schedule_taints_follow_conditions() {
        // (conditions, existing taints, unschedulable, expected adds, expected removes)
        type Case<'a> = (
            &'a [(&'a str, &'a str)],
            &'a [(&'a str, &'a str)],
            bool,
            &'a [(&'a str, &'a str)],
            &'a [(&'a str, &'a str)],
        );
        let cases: &[Case] = &[
            (&[("Ready", "True")], &[], false, &[], &[]),
            (&[("Ready", "Unknown")], &[], false, &[(UNREACHABLE, NO_SCHEDULE)], &[]),
            (
                &[("Ready", "False")],
                &[(UNREACHABLE, NO_SCHEDULE)],
                false,
                &[(NOT_READY, NO_SCHEDULE)],
                &[(UNREACHABLE, NO_SCHEDULE)],
            ),
            (
                &[("Ready", "True")],
                &[(NOT_READY, NO_SCHEDULE), (NOT_READY, NO_EXECUTE), ("user", NO_SCHEDULE)],
                false,
                &[],
                &[(NOT_READY, NO_SCHEDULE)],
            ),
            (
                &[("Ready", "True"), ("MemoryPressure", "True"), ("DiskPressure", "False"), ("PIDPressure", "True")],
                &[],
                false,
                &[(MEMORY_PRESSURE, NO_SCHEDULE), (PID_PRESSURE, NO_SCHEDULE)],
                &[],
            ),
            (
                &[("Ready", "True"), ("NetworkUnavailable", "True")],
                &[],
                true,
                &[(NETWORK_UNAVAILABLE, NO_SCHEDULE), (UNSCHEDULABLE, NO_SCHEDULE)],
                &[],
            ),
            (&[("Ready", "True")], &[(UNSCHEDULABLE, NO_SCHEDULE)], false, &[], &[(UNSCHEDULABLE, NO_SCHEDULE)]),
            (&[("Ready", "Unknown")], &[(UNREACHABLE, NO_SCHEDULE)], false, &[], &[]),
        ];
        for (i, (conditions, existing, unschedulable, add, remove)) in cases.iter().enumerate() {
            let change = no_schedule_change(&node(conditions, existing, *unschedulable));
            assert_eq!(keys(&change.add), pairs(add), "case {i} adds");
            assert_eq!(keys(&change.remove), pairs(remove), "case {i} removes");
        }
    }

    #[test]
    fn no_execute_steps() {
        let unreachable = [template(UNREACHABLE, NO_EXECUTE)];
        let not_ready = [template(NOT_READY, NO_EXECUTE)];
        let cases: [(&str, &[Taint], NoExecuteStep); 7] = [
            ("False", &[], NoExecuteStep::Queue("False")),
            ("False", &unreachable, NoExecuteStep::Swap(Change::swap(NOT_READY, UNREACHABLE, NO_EXECUTE))),
            ("False", &not_ready, NoExecuteStep::Queue("False")),
            ("Unknown", &[], NoExecuteStep::Queue("Unknown")),
            ("Unknown", &not_ready, NoExecuteStep::Swap(Change::swap(UNREACHABLE, NOT_READY, NO_EXECUTE))),
            ("True", &unreachable, NoExecuteStep::Reachable),
            ("", &[], NoExecuteStep::Nothing),
        ];
        for (ready, taints, want) in cases {
            assert_eq!(no_execute_step(ready, taints), want, "{ready} {taints:?}");
        }
        assert_eq!(queued_no_execute(Some("Unknown")), Some(Change::swap(UNREACHABLE, NOT_READY, NO_EXECUTE)));
        assert_eq!(queued_no_execute(Some("False")), Some(Change::swap(NOT_READY, UNREACHABLE, NO_EXECUTE)));
        assert_eq!(queued_no_execute(Some("True")), None);
        assert_eq!(queued_no_execute(None), None);
    }

    #[test]
    fn applying_changes_stamps_time_and_reports_no_op() {
        let user =
            Taint { key: "dedicated".into(), value: Some("gpu".into()), effect: NO_SCHEDULE.into(), time_added: None };
        let existing = vec![user.clone(), Taint { time_added: Some(Time(ts(1))), ..template(NOT_READY, NO_EXECUTE) }];
        let swapped = apply(&existing, &Change::swap(UNREACHABLE, NOT_READY, NO_EXECUTE), ts(9)).expect("changed");
        assert_eq!(
            swapped,
            vec![user.clone(), Taint { time_added: Some(Time(ts(9))), ..template(UNREACHABLE, NO_EXECUTE) }]
        );
        // Removing what is absent changes nothing.
        assert_eq!(apply(std::slice::from_ref(&user), &reachable(), ts(9)), None);
        // Re-adding an identical taint changes nothing; a different time refreshes it.
        let stamped = [Taint { time_added: Some(Time(ts(9))), ..template(UNREACHABLE, NO_EXECUTE) }];
        let again = Change { add: vec![template(UNREACHABLE, NO_EXECUTE)], remove: vec![] };
        assert_eq!(apply(&stamped, &again, ts(9)), None);
        assert_eq!(
            apply(&stamped, &again, ts(10)),
            Some(vec![Taint { time_added: Some(Time(ts(10))), ..template(UNREACHABLE, NO_EXECUTE) }])
        );
        // Both NoExecute taints go when reachable; NoSchedule ones stay.
        let both =
            [template(UNREACHABLE, NO_SCHEDULE), template(UNREACHABLE, NO_EXECUTE), template(NOT_READY, NO_EXECUTE)];
        assert_eq!(apply(&both, &reachable(), ts(0)), Some(vec![template(UNREACHABLE, NO_SCHEDULE)]));
    }
}
