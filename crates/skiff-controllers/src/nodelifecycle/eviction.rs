//! Taint-based eviction decisions (`k/k pkg/controller/tainteviction/taint_eviction.go`:
//! `processPodOnNode`, `getMinTolerationTime`; `v1helper.GetMatchingTolerations`;
//! `Toleration.ToleratesTaint`).
//!
//! For a pod on a node with NoExecute taints: a taint it does not tolerate deletes it now; if all
//! are tolerated, the smallest `tolerationSeconds` among the tolerations used (the first matching
//! one per taint) sets the deletion time, counted from when the taints were added; a toleration
//! without `tolerationSeconds` on every taint keeps it forever.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Taint, Toleration};
use k8s_openapi::jiff::Timestamp;

use super::health::after;
use super::taints::NO_EXECUTE;

/// Reason and message of the `DisruptionTarget` condition set before deleting.
pub const DISRUPTION_TARGET: &str = "DisruptionTarget";
pub const DISRUPTION_REASON: &str = "DeletionByTaintManager";
pub const DISRUPTION_MESSAGE: &str = "Taint manager: deleting due to NoExecute taint";
/// The Event reason on the pod.
pub const EVENT_REASON: &str = "TaintManagerEviction";

/// "Marking for deletion Pod ns/name".
pub fn marking_message(namespace: &str, name: &str) -> String {
    format!("Marking for deletion Pod {namespace}/{name}")
}

/// "Cancelling deletion of Pod ns/name".
pub fn cancelling_message(namespace: &str, name: &str) -> String {
    format!("Cancelling deletion of Pod {namespace}/{name}")
}

/// Whether `t` tolerates `taint` (`ToleratesTaint`): empty effect and key match any; operator
/// `Exists` matches any value, `Equal` (or empty) the same value.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// The tolerations used, the first matching one per taint; None when some taint is not tolerated.
pub fn matching_tolerations<'a>(taints: &[Taint], tolerations: &'a [Toleration]) -> Option<Vec<&'a Toleration>> {
    taints.iter().map(|taint| tolerations.iter().find(|t| tolerates(t, taint))).collect()
}

/// How long the used tolerations allow: None is forever; a non-positive `tolerationSeconds` is 0.
pub fn min_toleration(used: &[&Toleration]) -> Option<Duration> {
    if used.is_empty() {
        return Some(Duration::ZERO);
    }
    let mut min: Option<i64> = None;
    for t in used {
        if let Some(s) = t.toleration_seconds {
            if s <= 0 {
                return Some(Duration::ZERO);
            }
            min = Some(min.map_or(s, |m| m.min(s)));
        }
    }
    min.map(|s| Duration::from_secs(s.unsigned_abs()))
}

/// The NoExecute taints among `taints`.
pub fn no_execute(taints: &[Taint]) -> Vec<Taint> {
    taints.iter().filter(|t| t.effect == NO_EXECUTE).cloned().collect()
}

/// A scheduled deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheduled {
    /// When the countdown started.
    pub created: Timestamp,
    /// When to delete.
    pub fire_at: Timestamp,
    /// Whether the deletion was carried out (the entry stays so that it is not repeated).
    pub fired: bool,
}

/// What to do about one pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Keep what is scheduled (or nothing).
    Keep,
    /// Cancel the scheduled deletion.
    Cancel,
    /// Schedule (or reschedule) a deletion.
    Schedule(Scheduled),
}

/// The decision for a pod with `tolerations` on a node with NoExecute `taints` at `now`, given any
/// deletion already scheduled. The countdown starts at the earliest `timeAdded` of the taints
/// (never later than now; now when unset), or at the existing schedule's start.
pub fn decide(tolerations: &[Toleration], taints: &[Taint], scheduled: Option<&Scheduled>, now: Timestamp) -> Decision {
    if taints.is_empty() {
        return if scheduled.is_some() { Decision::Cancel } else { Decision::Keep };
    }
    let Some(used) = matching_tolerations(taints, tolerations) else {
        // Not tolerated: delete now (an already fired deletion is not repeated).
        return match scheduled {
            Some(s) if s.fired || s.fire_at <= now => Decision::Keep,
            _ => Decision::Schedule(Scheduled { created: now, fire_at: now, fired: false }),
        };
    };
    let Some(wait) = min_toleration(&used) else {
        return if scheduled.is_some() { Decision::Cancel } else { Decision::Keep };
    };
    let tainted_at = taints.iter().filter_map(|t| t.time_added.as_ref().map(|t| t.0)).min().unwrap_or(now).min(now);
    let start = scheduled.map_or(tainted_at, |s| s.created);
    let trigger = after(start, wait);
    match scheduled {
        // The existing one fires no later: keep it.
        Some(s) if s.fired || s.fire_at <= trigger => Decision::Keep,
        _ => Decision::Schedule(Scheduled { created: start, fire_at: trigger, fired: false }),
    }
}

/// A pod as the eviction pass sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodView {
    /// `namespace/name`.
    pub key: String,
    pub uid: String,
    pub node: String,
    pub tolerations: Vec<Toleration>,
}

/// One step of an eviction pass.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A scheduled deletion was cancelled (Event "Cancelling deletion of Pod ...").
    Cancelled { key: String },
    /// Delete this pod now.
    Evict { key: String, uid: String },
}

/// One pass: updates `schedule` (by pod key) for `pods` (those not being deleted) on nodes with the
/// NoExecute taints in `tainted`, and returns what to carry out. Pods that disappeared are
/// forgotten, with a cancellation when their deletion had not fired yet.
pub fn pass(
    pods: &[PodView],
    tainted: &BTreeMap<String, Vec<Taint>>,
    schedule: &mut BTreeMap<String, Scheduled>,
    now: Timestamp,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let present: std::collections::BTreeSet<&str> = pods.iter().map(|p| p.key.as_str()).collect();
    schedule.retain(|key, s| {
        let keep = present.contains(key.as_str());
        if !keep && !s.fired {
            steps.push(Step::Cancelled { key: key.clone() });
        }
        keep
    });
    for pod in pods {
        let taints = tainted.get(&pod.node).map(Vec::as_slice).unwrap_or(&[]);
        let current = schedule.get(&pod.key).copied();
        match decide(&pod.tolerations, taints, current.as_ref(), now) {
            Decision::Keep => {}
            Decision::Cancel => {
                if current.is_some_and(|s| !s.fired) {
                    steps.push(Step::Cancelled { key: pod.key.clone() });
                }
                schedule.remove(&pod.key);
            }
            Decision::Schedule(s) => {
                if current.is_some_and(|c| !c.fired) {
                    steps.push(Step::Cancelled { key: pod.key.clone() });
                }
                schedule.insert(pod.key.clone(), s);
            }
        }
        if let Some(s) = schedule.get_mut(&pod.key)
            && !s.fired
            && s.fire_at <= now
        {
            s.fired = true;
            steps.push(Step::Evict { key: pod.key.clone(), uid: pod.uid.clone() });
        }
    }
    steps
}

/// The earliest pending deletion, to wake up for.
pub fn next_due(schedule: &BTreeMap<String, Scheduled>) -> Option<Timestamp> {
    schedule.values().filter(|s| !s.fired).map(|s| s.fire_at).min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("timestamp")
    }

    fn tol(v: serde_json::Value) -> Toleration {
        serde_json::from_value(v).expect("toleration")
    }

    fn taint(key: &str, value: Option<&str>, effect: &str, added: Option<i64>) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(Into::into),
            effect: effect.into(),
            time_added: added.map(|s| Time(ts(s))),
        }
    }

    #[test]
    fn toleration_matching() {
        let t = taint("k", Some("v"), "NoExecute", None);
        let cases = [
            (json!({"key": "k", "operator": "Exists"}), true),
            (json!({"key": "k", "operator": "Equal", "value": "v"}), true),
            (json!({"key": "k", "value": "v"}), true),
            (json!({"key": "k", "value": "w"}), false),
            (json!({"key": "k"}), false),
            (json!({"operator": "Exists"}), true),
            (json!({"operator": "Exists", "effect": "NoSchedule"}), false),
            (json!({"key": "other", "operator": "Exists"}), false),
            (json!({"key": "k", "operator": "Exists", "effect": "NoExecute"}), true),
            (json!({"key": "k", "operator": "Lt", "value": "v"}), false),
        ];
        for (t2, want) in cases {
            assert_eq!(tolerates(&tol(t2.clone()), &t), want, "{t2}");
        }
    }

    #[test]
    fn min_toleration_times() {
        let secs = |s: Option<i64>| tol(json!({"operator": "Exists", "tolerationSeconds": s}));
        let (a, b, forever, zero, neg) = (secs(Some(300)), secs(Some(3)), secs(None), secs(Some(0)), secs(Some(-5)));
        let cases: [(Vec<&Toleration>, Option<Duration>); 6] = [
            (vec![], Some(Duration::ZERO)),
            (vec![&a, &b], Some(Duration::from_secs(3))),
            (vec![&forever], None),
            (vec![&forever, &a], Some(Duration::from_secs(300))),
            (vec![&a, &zero], Some(Duration::ZERO)),
            (vec![&neg], Some(Duration::ZERO)),
        ];
        for (used, want) in cases {
            assert_eq!(min_toleration(&used), want);
        }
    }

    #[test]
    fn first_matching_toleration_is_the_one_used() {
        // Upstream takes the first toleration that matches each taint, not the smallest.
        let tolerations = [
            tol(
                json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}),
            ),
            tol(json!({"operator": "Exists", "tolerationSeconds": 5})),
        ];
        let taints = [taint("node.kubernetes.io/unreachable", None, "NoExecute", Some(0))];
        let used = matching_tolerations(&taints, &tolerations).expect("tolerated");
        assert_eq!(min_toleration(&used), Some(Duration::from_secs(60)));
    }

    #[test]
    fn decisions() {
        let unreachable = [taint("node.kubernetes.io/unreachable", None, "NoExecute", Some(10))];
        let t = |secs: Option<i64>| {
            vec![tol(
                json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": secs}),
            )]
        };
        let at = |created: i64, fire: i64| Scheduled { created: ts(created), fire_at: ts(fire), fired: false };
        /// (what, tolerations, taints, already scheduled, decision at t=12)
        type Case<'a> = (&'a str, Vec<Toleration>, &'a [Taint], Option<Scheduled>, Decision);
        let cases: Vec<Case> = vec![
            ("untolerated: now", vec![], &unreachable, None, Decision::Schedule(at(12, 12))),
            ("zero seconds: due at once", t(Some(0)), &unreachable, None, Decision::Schedule(at(10, 10))),
            ("three seconds from timeAdded", t(Some(3)), &unreachable, None, Decision::Schedule(at(10, 13))),
            ("forever", t(None), &unreachable, None, Decision::Keep),
            ("forever cancels", t(None), &unreachable, Some(at(10, 13)), Decision::Cancel),
            ("no taints cancels", t(Some(3)), &[], Some(at(10, 13)), Decision::Cancel),
            ("no taints, nothing scheduled", t(Some(3)), &[], None, Decision::Keep),
            ("earlier schedule kept", t(Some(300)), &unreachable, Some(at(10, 13)), Decision::Keep),
            (
                "shorter toleration reschedules from the same start",
                t(Some(1)),
                &unreachable,
                Some(at(10, 310)),
                Decision::Schedule(at(10, 11)),
            ),
            (
                "fired is not repeated",
                vec![],
                &unreachable,
                Some(Scheduled { fired: true, ..at(12, 12) }),
                Decision::Keep,
            ),
        ];
        for (what, tolerations, taints, scheduled, want) in cases {
            assert_eq!(decide(&tolerations, taints, scheduled.as_ref(), ts(12)), want, "{what}");
        }
        // A taint without timeAdded, or dated in the future, counts from now.
        let undated = [taint("node.kubernetes.io/unreachable", None, "NoExecute", None)];
        assert_eq!(decide(&t(Some(3)), &undated, None, ts(12)), Decision::Schedule(at(12, 15)));
        let future = [taint("node.kubernetes.io/unreachable", None, "NoExecute", Some(100))];
        assert_eq!(decide(&t(Some(3)), &future, None, ts(12)), Decision::Schedule(at(12, 15)));
        // Two taints, both tolerated: the smaller toleration, from the earlier taint.
        let two = [taint("a", None, "NoExecute", Some(5)), taint("b", None, "NoExecute", Some(9))];
        let tolerations = vec![
            tol(json!({"key": "a", "operator": "Exists", "tolerationSeconds": 20})),
            tol(json!({"key": "b", "operator": "Exists", "tolerationSeconds": 4})),
        ];
        assert_eq!(decide(&tolerations, &two, None, ts(12)), Decision::Schedule(at(5, 9)));
    }

    #[test]
    fn a_pass_schedules_evicts_and_cancels() {
        let pod = |name: &str, node: &str, secs: Option<i64>| PodView {
            key: format!("default/{name}"),
            uid: format!("uid-{name}"),
            node: node.into(),
            tolerations: vec![tol(
                json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": secs}),
            )],
        };
        let pods = vec![
            pod("zero", "n1", Some(0)),
            pod("three", "n1", Some(3)),
            pod("forever", "n1", None),
            pod("elsewhere", "n2", Some(0)),
        ];
        let mut tainted = BTreeMap::new();
        tainted.insert("n1".to_string(), vec![taint("node.kubernetes.io/unreachable", None, "NoExecute", Some(10))]);
        let mut schedule = BTreeMap::new();
        let steps = pass(&pods, &tainted, &mut schedule, ts(10));
        assert_eq!(steps, vec![Step::Evict { key: "default/zero".into(), uid: "uid-zero".into() }]);
        assert_eq!(next_due(&schedule), Some(ts(13)));
        // Nothing new a second later; the 3 s one fires at 13, once.
        assert_eq!(pass(&pods, &tainted, &mut schedule, ts(11)), vec![]);
        assert_eq!(
            pass(&pods, &tainted, &mut schedule, ts(13)),
            vec![Step::Evict { key: "default/three".into(), uid: "uid-three".into() }]
        );
        assert_eq!(pass(&pods, &tainted, &mut schedule, ts(14)), vec![]);
        assert_eq!(next_due(&schedule), None);

        // Taints removed before the deadline: cancelled.
        let mut schedule = BTreeMap::new();
        pass(&pods[1..2], &tainted, &mut schedule, ts(10));
        let steps = pass(&pods[1..2], &BTreeMap::new(), &mut schedule, ts(11));
        assert_eq!(steps, vec![Step::Cancelled { key: "default/three".into() }]);
        assert!(schedule.is_empty());
        // A pod gone before its deadline: cancelled too.
        pass(&pods[1..2], &tainted, &mut schedule, ts(10));
        assert_eq!(pass(&[], &tainted, &mut schedule, ts(11)), vec![Step::Cancelled { key: "default/three".into() }]);
    }
}
