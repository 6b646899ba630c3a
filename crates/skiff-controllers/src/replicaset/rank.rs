//! Which pods go first on scale-down: upstream's `ActivePodsWithRanks.Less`
//! (`pkg/controller/controller_utils.go`) with PodDeletionCost and LogarithmicScaleDown (both GA), and
//! the "related pods on the same node" rank of `getPodsRankedByRelatedPodsOnSameNode`
//! (`pkg/controller/replicaset/replica_set.go`).
//!
//! Earlier in the order means less valuable, deleted first:
//! 1. unassigned before assigned;
//! 2. Pending before Unknown before Running (any other phase counts as Pending);
//! 3. not ready before ready;
//! 4. lower `controller.kubernetes.io/pod-deletion-cost` first;
//! 5. higher rank first (more active related pods on the same node: doubled-up pods go first);
//! 6. both ready: ready for less time first, times compared on a log2 scale of their age; equal
//!    buckets are ordered by UID (pseudo-random);
//! 7. more container restarts first;
//! 8. newer creation first, on the same log2 scale, then UID.
//!
//! Upstream's comparison is not a strict weak order (the UID tie-breaks of 6 and 8 are not transitive
//! with the later steps), which Go's `sort.Sort` tolerates. Rust's library sorts may panic on such a
//! comparator, so [`sort_for_deletion`] is a merge sort that only asks "is a before b".

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::pods;

/// `podPhaseToOrdinal`: Pending 0, Unknown 1, Running 2; anything else is 0 (Go's map zero value).
fn phase_ordinal(pod: &Pod) -> u8 {
    match pods::phase(pod) {
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

/// `logarithmicRankDiff`: the difference of `floor(log2(age in ns))`, with -1 for a non-positive age.
fn log_rank_diff(t1: Timestamp, t2: Timestamp, now: Timestamp) -> i64 {
    let rank = |t: Timestamp| -> i64 {
        let age = now.as_nanosecond() - t.as_nanosecond();
        if age > 0 {
            // Truncation toward zero, as Go's int64(float64) conversion.
            (age as f64).log2() as i64
        } else {
            -1
        }
    };
    rank(t1) - rank(t2)
}

/// `afterOrZero`: a missing time sorts first; otherwise the later time first.
fn after_or_zero(t1: Option<Timestamp>, t2: Option<Timestamp>) -> bool {
    match (t1, t2) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => a > b,
    }
}

/// Compares two differing times as steps 6 and 8 do: missing first, else newer log2 bucket first,
/// equal buckets by UID.
fn newer_first(t1: Option<Timestamp>, t2: Option<Timestamp>, uids: (&str, &str), now: Timestamp) -> bool {
    match (t1, t2) {
        (Some(a), Some(b)) => {
            let diff = log_rank_diff(a, b, now);
            if diff == 0 { uids.0 < uids.1 } else { diff < 0 }
        }
        _ => after_or_zero(t1, t2),
    }
}

/// A pod with its rank (active related pods on its node).
#[derive(Debug, Clone, Copy)]
pub struct Ranked<'a> {
    pub pod: &'a Pod,
    pub rank: usize,
}

/// `ActivePodsWithRanks.Less`: `a` should be deleted before `b`.
pub fn less(a: Ranked<'_>, b: Ranked<'_>, now: Timestamp) -> bool {
    let (pa, pb) = (a.pod, b.pod);
    // 1. Unassigned < assigned.
    let (na, nb) = (pods::node_name(pa), pods::node_name(pb));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return na.is_empty();
    }
    // 2. Pending < Unknown < Running.
    let (oa, ob) = (phase_ordinal(pa), phase_ordinal(pb));
    if oa != ob {
        return oa < ob;
    }
    // 3. Not ready < ready.
    let (ra, rb) = (pods::is_ready(pa), pods::is_ready(pb));
    if ra != rb {
        return !ra;
    }
    // 4. Lower deletion cost first.
    let (ca, cb) = (pods::deletion_cost(pa), pods::deletion_cost(pb));
    if ca != cb {
        return ca < cb;
    }
    // 5. Doubled up < not doubled up.
    if a.rank != b.rank {
        return a.rank > b.rank;
    }
    let uids = (pa.metadata.uid.as_deref().unwrap_or(""), pb.metadata.uid.as_deref().unwrap_or(""));
    // 6. Ready for less time first.
    if ra && rb {
        let (ta, tb) = (pods::ready_time(pa), pods::ready_time(pb));
        if ta != tb {
            return newer_first(ta, tb, uids, now);
        }
    }
    // 7. More restarts first.
    let (xa, xb) = (pods::max_restarts(pa), pods::max_restarts(pb));
    if xa != xb {
        return xa > xb;
    }
    // 8. Newer first.
    let ca = pa.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let cb = pb.metadata.creation_timestamp.as_ref().map(|t| t.0);
    if ca != cb {
        return newer_first(ca, cb, uids, now);
    }
    false
}

/// Ranks each pod by the number of active `related` pods on its node
/// (`getPodsRankedByRelatedPodsOnSameNode`). Unscheduled pods share the `""` node.
pub fn rank_by_related<'a>(pods_to_rank: &[&'a Pod], related: &[&Pod]) -> Vec<Ranked<'a>> {
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for p in related.iter().filter(|p| pods::is_active(p)) {
        *on_node.entry(pods::node_name(p)).or_default() += 1;
    }
    pods_to_rank
        .iter()
        .map(|p| Ranked { pod: p, rank: on_node.get(pods::node_name(p)).copied().unwrap_or(0) })
        .collect()
}

/// Sorts with [`less`], stable, never panicking whatever the comparator's consistency.
pub fn sort_for_deletion(items: &mut Vec<Ranked<'_>>, now: Timestamp) {
    if items.len() < 2 {
        return;
    }
    let right = items.split_off(items.len() / 2);
    let mut left = std::mem::take(items);
    let mut right = right;
    sort_for_deletion(&mut left, now);
    sort_for_deletion(&mut right, now);
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut l, mut r) = (left.into_iter().peekable(), right.into_iter().peekable());
    loop {
        let take_right = match (l.peek(), r.peek()) {
            (Some(a), Some(b)) => less(*b, *a, now),
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (None, None) => break,
        };
        let next = if take_right { r.next() } else { l.next() };
        out.extend(next);
    }
    *items = out;
}

/// The `count` pods to delete (`getPodsToDelete`): all of them when `count` covers every pod,
/// otherwise the first `count` in deletion order.
pub fn pods_to_delete<'a>(active: &[&'a Pod], related: &[&Pod], count: usize, now: Timestamp) -> Vec<&'a Pod> {
    if count >= active.len() {
        return active.to_vec();
    }
    let mut ranked = rank_by_related(active, related);
    sort_for_deletion(&mut ranked, now);
    ranked.into_iter().take(count).map(|r| r.pod).collect()
}

#[cfg(test)]
mod tests {
    use super::super::pods::testing::*;
    use super::*;

    fn names(pods: &[&Pod]) -> Vec<String> {
        pods.iter().map(|p| p.metadata.name.clone().unwrap_or_default()).collect()
    }

    /// Each case: two pods (a, b) and whether a goes before b; also checks the reverse.
    #[test]
    fn pairwise_rules() {
        let now = t(100_000);
        let ready = |name: &str, at: Timestamp| pod(name).on("n1").ready_since(at);
        let cases: Vec<(&str, Pod, Pod, bool)> = vec![
            ("unassigned before assigned", pod("a"), pod("b").on("n1"), true),
            ("both assigned, different nodes: undecided here", pod("a").on("n1"), pod("b").on("n2"), false),
            ("pending before running", pod("a").on("n1"), pod("b").on("n1").phase("Running"), true),
            ("pending before unknown", pod("a").on("n1"), pod("b").on("n1").phase("Unknown"), true),
            ("unknown before running", pod("a").on("n1").phase("Unknown"), pod("b").on("n1").phase("Running"), true),
            (
                "not ready before ready",
                pod("a").on("n1").phase("Running").not_ready(),
                pod("b").on("n1").ready_since(t(0)),
                true,
            ),
            ("lower deletion cost first", ready("a", t(0)).cost("-1"), ready("b", t(0)), true),
            ("higher deletion cost last", ready("a", t(0)).cost("100"), ready("b", t(0)).cost("5"), false),
            // Ready 10s ago (bucket floor(log2(1e10)) = 33) vs 10_000s ago (bucket 43).
            ("ready more recently first", ready("a", now_off(10)), ready("b", now_off(10_000)), true),
            ("ready longer last", ready("a", now_off(10_000)), ready("b", now_off(10)), false),
            // Same bucket (ages 20s and 25s, both bucket 34): UID order decides, a's uid < b's.
            ("same ready bucket: by uid", ready("a", now_off(25)), ready("b", now_off(20)), true),
            ("same ready bucket: by uid (reversed uids)", ready("b", now_off(20)), ready("a", now_off(25)), false),
            ("more restarts first", ready("a", t(0)).restarts(3), ready("b", t(0)).restarts(1), true),
            (
                "newer pod first",
                pod("a").on("n1").created(now_off(10)),
                pod("b").on("n1").created(now_off(10_000)),
                true,
            ),
            (
                "older pod last",
                pod("a").on("n1").created(now_off(10_000)),
                pod("b").on("n1").created(now_off(10)),
                false,
            ),
            (
                "same creation bucket: by uid",
                pod("b").on("n1").created(now_off(25)),
                pod("a").on("n1").created(now_off(20)),
                false,
            ),
            ("identical pods: neither first", pod("a").on("n1"), pod("a").on("n1"), false),
        ];
        fn now_off(secs: i64) -> Timestamp {
            t(100_000 - secs)
        }
        for (name, a, b, want) in cases {
            let (ra, rb) = (Ranked { pod: &a, rank: 0 }, Ranked { pod: &b, rank: 0 });
            assert_eq!(less(ra, rb, now), want, "{name}");
            if want {
                assert!(!less(rb, ra, now), "{name} (reverse)");
            }
        }
    }

    #[test]
    fn missing_ready_time_sorts_first() {
        let now = t(1000);
        let mut a = pod("a").on("n1").ready_since(t(0));
        if let Some(cs) = a.status.as_mut().and_then(|s| s.conditions.as_mut()) {
            cs[0].last_transition_time = None;
        }
        let b = pod("b").on("n1").ready_since(t(999));
        assert!(less(Ranked { pod: &a, rank: 0 }, Ranked { pod: &b, rank: 0 }, now));
        assert!(!less(Ranked { pod: &b, rank: 0 }, Ranked { pod: &a, rank: 0 }, now));
    }

    #[test]
    fn rank_prefers_doubled_up_nodes() {
        let now = t(1000);
        // Same phase, readiness and times: only the rank differs.
        let a = pod("a").on("n1").ready_since(t(0));
        let b = pod("b").on("n2").ready_since(t(0));
        let c = pod("c").on("n2").ready_since(t(0));
        let other = pod("x").on("n1").owned_by("sibling").ready_since(t(0));
        let gone = pod("y").on("n1").owned_by("sibling").deleting();
        let related: Vec<&Pod> = vec![&a, &b, &c, &other, &gone];
        let ranked = rank_by_related(&[&a, &b, &c], &related);
        assert_eq!(ranked.iter().map(|r| r.rank).collect::<Vec<_>>(), vec![2, 2, 2]);
        // Without the sibling's pod, n2 is doubled up and its pods go first.
        let related: Vec<&Pod> = vec![&a, &b, &c];
        let chosen = pods_to_delete(&[&a, &b, &c], &related, 1, now);
        assert_eq!(names(&chosen), vec!["b"]);
    }

    #[test]
    fn scale_down_order_end_to_end() {
        let now = t(100_000);
        let pods = [
            pod("ready-old").on("n1").ready_since(t(0)).created(t(0)),
            pod("ready-new").on("n2").ready_since(t(99_990)).created(t(99_000)),
            pod("running-not-ready").on("n3").phase("Running").not_ready(),
            pod("pending-scheduled").on("n4"),
            pod("unscheduled"),
            pod("unknown").on("n5").phase("Unknown"),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let mut ranked = rank_by_related(&refs, &[]);
        sort_for_deletion(&mut ranked, now);
        let order: Vec<&Pod> = ranked.iter().map(|r| r.pod).collect();
        assert_eq!(
            names(&order),
            vec!["unscheduled", "pending-scheduled", "unknown", "running-not-ready", "ready-new", "ready-old"]
        );
        assert_eq!(names(&pods_to_delete(&refs, &[], 2, now)), vec!["unscheduled", "pending-scheduled"]);
        assert_eq!(pods_to_delete(&refs, &[], 6, now).len(), 6);
    }

    #[test]
    fn inconsistent_comparator_does_not_panic() {
        // Pods whose ready times share a log bucket but whose restarts disagree with their uids:
        // upstream's relation is not transitive here. Sorting must still return every pod.
        let now = t(100_000);
        let pods: Vec<Pod> = (0..40)
            .map(|i| {
                pod(&format!("p{i:02}"))
                    .on("n1")
                    .ready_since(t(100_000 - 20 - (i % 3)))
                    .restarts(i as i32 % 5)
                    .uid(&format!("{:02}", (i * 7) % 40))
            })
            .collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let mut ranked = rank_by_related(&refs, &[]);
        sort_for_deletion(&mut ranked, now);
        assert_eq!(ranked.len(), 40);
    }
}
