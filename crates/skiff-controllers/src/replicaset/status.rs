//! The ReplicaSet's status (`pkg/controller/replicaset/replica_set_utils.go`: `calculateStatus`,
//! `updateReplicaSetStatus`'s "nothing changed" test, the ReplicaFailure condition helpers) and when to
//! look again for pods becoming available (`controller.FindMinNextPodAvailabilityCheck`).

use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::pods;

/// The condition type set when creating or deleting pods failed.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Why managing replicas failed, as `manageReplicas` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManageError {
    /// The error text, which becomes the condition's message.
    pub message: String,
}

/// Go's `omitempty` for int32 counters: zero is not written.
fn nonzero(n: usize) -> Option<i32> {
    let n = i32::try_from(n).unwrap_or(i32::MAX);
    (n != 0).then_some(n)
}

/// Computes the new status (`calculateStatus`) from the claimed active pods, the claimed terminating
/// pods and the outcome of managing replicas. `observedGeneration` is left as it was; it is set when
/// the status is written ([`status_for_write`]).
///
/// * `replicas`: active pods; `fullyLabeledReplicas`: those carrying every template label;
///   `readyReplicas`: Ready ones; `availableReplicas`: Ready for `minReadySeconds`;
/// * `terminatingReplicas`: claimed terminating pods (DeploymentReplicaSetTerminatingReplicas, beta
///   and on in 1.35), always written, 0 included;
/// * ReplicaFailure: added (reason `FailedCreate` when there are too few pods, `FailedDelete` when too
///   many) if managing failed and no such condition exists; removed when managing succeeded.
pub fn calculate_status(
    rs: &ReplicaSet,
    active: &[&Pod],
    terminating: &[&Pod],
    manage_error: Option<&ManageError>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let mut status = rs.status.clone().unwrap_or_default();
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = pods::min_ready_seconds(rs);
    let mut fully_labeled = 0;
    let mut ready = 0;
    let mut available = 0;
    for pod in active {
        let labels = pod.metadata.labels.as_ref();
        if template_labels.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v)) {
            fully_labeled += 1;
        }
        if pods::is_ready(pod) {
            ready += 1;
            if pods::is_available(pod, min_ready, now) {
                available += 1;
            }
        }
    }

    let has_failure = status.conditions.iter().flatten().any(|c| c.type_ == REPLICA_FAILURE);
    match manage_error {
        Some(err) if !has_failure => {
            let diff = i64::try_from(active.len()).unwrap_or(i64::MAX) - i64::from(pods::desired_replicas(rs));
            let reason = match diff.signum() {
                -1 => "FailedCreate",
                1 => "FailedDelete",
                _ => "",
            };
            let condition = ReplicaSetCondition {
                type_: REPLICA_FAILURE.to_string(),
                status: "True".to_string(),
                last_transition_time: Some(Time(now)),
                reason: Some(reason.to_string()),
                message: Some(err.message.clone()),
            };
            status.conditions.get_or_insert_default().push(condition);
        }
        None if has_failure => {
            let kept: Vec<ReplicaSetCondition> =
                status.conditions.take().into_iter().flatten().filter(|c| c.type_ != REPLICA_FAILURE).collect();
            status.conditions = (!kept.is_empty()).then_some(kept);
        }
        _ => {}
    }

    status.replicas = i32::try_from(active.len()).unwrap_or(i32::MAX);
    status.fully_labeled_replicas = nonzero(fully_labeled);
    status.ready_replicas = nonzero(ready);
    status.available_replicas = nonzero(available);
    status.terminating_replicas = Some(i32::try_from(terminating.len()).unwrap_or(i32::MAX));
    status
}

/// `updateReplicaSetStatus`'s early return: the stored status already says this and the generation
/// was observed, so no write is needed.
pub fn status_unchanged(rs: &ReplicaSet, new: &ReplicaSetStatus) -> bool {
    let old = rs.status.clone().unwrap_or_default();
    let z = |v: Option<i32>| v.unwrap_or(0);
    let conds = |s: &ReplicaSetStatus| s.conditions.clone().unwrap_or_default();
    old.replicas == new.replicas
        && z(old.fully_labeled_replicas) == z(new.fully_labeled_replicas)
        && z(old.ready_replicas) == z(new.ready_replicas)
        && z(old.available_replicas) == z(new.available_replicas)
        && old.terminating_replicas == new.terminating_replicas
        && rs.metadata.generation.unwrap_or(0) == old.observed_generation.unwrap_or(0)
        && conds(&old) == conds(new)
}

/// The status to write: `new` with `observedGeneration` set to the generation acted on (omitted when 0,
/// as Go's `omitempty`).
pub fn status_for_write(rs: &ReplicaSet, mut new: ReplicaSetStatus) -> ReplicaSetStatus {
    new.observed_generation = rs.metadata.generation.filter(|g| *g != 0);
    new
}

/// How long until the first ready-but-not-yet-available pod becomes available
/// (`FindMinNextPodAvailabilityCheck`); `None` when `minReadySeconds` is 0 or no pod is waiting.
/// The sync re-queues the ReplicaSet after this (or after `minReadySeconds` when no pod gives a time),
/// so `availableReplicas` moves without any further pod event.
pub fn next_availability_check(rs: &ReplicaSet, active: &[&Pod], now: Timestamp) -> Option<Duration> {
    let min_ready = pods::min_ready_seconds(rs);
    if min_ready <= 0 {
        return None;
    }
    active
        .iter()
        .filter(|p| pods::is_ready(p) && !pods::is_available(p, min_ready, now))
        .filter_map(|p| pods::ready_time(p))
        .map(|ready_at| {
            let due = ready_at.as_nanosecond() + i128::from(min_ready) * 1_000_000_000;
            let wait = (due - now.as_nanosecond()).max(0);
            Duration::from_nanos(u64::try_from(wait).unwrap_or(u64::MAX))
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::super::pods::testing::*;
    use super::*;

    fn status_of(
        rs: &ReplicaSet,
        pods: &[Pod],
        terminating: &[Pod],
        err: Option<&str>,
        now: Timestamp,
    ) -> ReplicaSetStatus {
        let active: Vec<&Pod> = pods.iter().collect();
        let term: Vec<&Pod> = terminating.iter().collect();
        let err = err.map(|m| ManageError { message: m.to_string() });
        calculate_status(rs, &active, &term, err.as_ref(), now)
    }

    #[test]
    fn counts_table() {
        let mut rs = rs(4);
        rs.spec.as_mut().expect("spec").min_ready_seconds = Some(10);
        let pods = vec![
            pod("a").ready_since(t(0)),                                // ready 100s: available
            pod("b").ready_since(t(95)),                               // ready 5s: not yet
            pod("c").phase("Running").not_ready(),                     // not ready
            pod("d").ready_since(t(0)).with_labels(&[("other", "x")]), // not fully labelled
        ];
        let s = status_of(&rs, &pods, &[pod("t").deleting()], None, t(100));
        assert_eq!(s.replicas, 4);
        assert_eq!(s.fully_labeled_replicas, Some(3));
        assert_eq!(s.ready_replicas, Some(3));
        assert_eq!(s.available_replicas, Some(2));
        assert_eq!(s.terminating_replicas, Some(1));
        assert_eq!(s.conditions, None);
    }

    #[test]
    fn zero_counts_are_omitted_but_terminating_is_written() {
        let s = status_of(&rs(0), &[], &[], None, t(0));
        assert_eq!(s.replicas, 0);
        assert_eq!(s.fully_labeled_replicas, None);
        assert_eq!(s.ready_replicas, None);
        assert_eq!(s.available_replicas, None);
        assert_eq!(s.terminating_replicas, Some(0));
        let wire = serde_json::to_value(&s).expect("json");
        assert_eq!(wire, serde_json::json!({"replicas": 0, "terminatingReplicas": 0}));
    }

    #[test]
    fn availability_by_min_ready_seconds() {
        let mut rs = rs(1);
        let p = vec![pod("a").ready_since(t(0))];
        let cases = [(0, 1, Some(1)), (30, 10, None), (30, 30, None), (30, 31, Some(1))];
        for (mrs, now, want) in cases {
            rs.spec.as_mut().expect("spec").min_ready_seconds = Some(mrs);
            assert_eq!(status_of(&rs, &p, &[], None, t(now)).available_replicas, want, "mrs={mrs} now={now}");
        }
    }

    #[test]
    fn replica_failure_condition_lifecycle() {
        let rs0 = rs(3);
        // Too few pods and creation failed: FailedCreate.
        let s = status_of(&rs0, &[pod("a")], &[], Some("quota exceeded"), t(5));
        let c = &s.conditions.clone().expect("conditions")[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_deref(), c.message.as_deref()),
            ("ReplicaFailure", "True", Some("FailedCreate"), Some("quota exceeded"))
        );
        assert_eq!(c.last_transition_time, Some(Time(t(5))));
        // An existing condition is kept as is while failures continue (not re-stamped).
        let mut rs1 = rs0.clone();
        rs1.status = Some(s.clone());
        let again = status_of(&rs1, &[pod("a")], &[], Some("other text"), t(50));
        assert_eq!(again.conditions, s.conditions);
        // Success removes it.
        assert_eq!(status_of(&rs1, &[pod("a")], &[], None, t(60)).conditions, None);
        // Too many pods and deletion failed: FailedDelete.
        let s = status_of(&rs(1), &[pod("a"), pod("b")], &[], Some("unable to delete pods: boom"), t(5));
        assert_eq!(s.conditions.expect("conditions")[0].reason.as_deref(), Some("FailedDelete"));
    }

    #[test]
    fn unchanged_detection_and_observed_generation() {
        let mut rs = rs(1);
        rs.metadata.generation = Some(2);
        let s = status_of(&rs, &[pod("a")], &[], None, t(0));
        // Generation 2 not yet observed: must write.
        assert!(!status_unchanged(&rs, &s));
        let written = status_for_write(&rs, s.clone());
        assert_eq!(written.observed_generation, Some(2));
        rs.status = Some(written);
        let s2 = status_of(&rs, &[pod("a")], &[], None, t(1));
        assert!(status_unchanged(&rs, &s2));
        // A pod becoming ready changes it.
        let s3 = status_of(&rs, &[pod("a").ready_since(t(0))], &[], None, t(1));
        assert!(!status_unchanged(&rs, &s3));
    }

    #[test]
    fn next_check_is_the_soonest_pod() {
        let mut rs = rs(3);
        let pods = [pod("a").ready_since(t(0)), pod("b").ready_since(t(5)), pod("c").phase("Running").not_ready()];
        let refs: Vec<&Pod> = pods.iter().collect();
        assert_eq!(next_availability_check(&rs, &refs, t(6)), None);
        rs.spec.as_mut().expect("spec").min_ready_seconds = Some(10);
        assert_eq!(next_availability_check(&rs, &refs, t(6)), Some(Duration::from_secs(4)));
        // At t(10) a is due (not yet available: strictly-before rule) and b in 5s.
        assert_eq!(next_availability_check(&rs, &refs, t(10)), Some(Duration::ZERO));
        assert_eq!(next_availability_check(&rs, &refs, t(11)), Some(Duration::from_secs(4)));
        assert_eq!(next_availability_check(&rs, &refs, t(16)), None);
    }
}
