//! Expectations: what a ReplicaSet is still waiting to see in its cache after its own writes
//! (`pkg/controller/controller_utils.go`: `ControllerExpectations` wrapped by
//! `UIDTrackingControllerExpectations`).
//!
//! After issuing k creates the controller must not act on the ReplicaSet again until the pod cache has
//! shown k new pods, or it would create them twice from a stale cache. Deletions are tracked by pod
//! key, so the same pod observed twice (deletion timestamp, then removal) counts once. Expectations
//! that are not met within five minutes expire, so a lost watch event cannot stall a ReplicaSet for
//! ever. Time is passed in, so the struct is pure and tests need no clock.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How long unmet expectations block a ReplicaSet (`ExpectationsTimeout`).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The pending counts of one ReplicaSet (`ControlleeExpectations`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    add: i64,
    del: i64,
    set_at: Instant,
}

/// Expectations of every ReplicaSet, keyed by `namespace/name`.
#[derive(Debug, Default)]
pub struct ControllerExpectations {
    pending: HashMap<String, Pending>,
    /// Pod keys whose deletion is still expected, per ReplicaSet (the UID-tracking layer).
    deleting: HashMap<String, HashSet<String>>,
}

impl ControllerExpectations {
    pub fn new() -> ControllerExpectations {
        ControllerExpectations::default()
    }

    /// The ReplicaSet may act: nothing is pending, or nothing was ever expected, or the expectations
    /// are older than [`EXPECTATIONS_TIMEOUT`] (`SatisfiedExpectations`).
    pub fn satisfied(&self, key: &str, now: Instant) -> bool {
        match self.pending.get(key) {
            None => true,
            Some(p) => (p.add <= 0 && p.del <= 0) || now.saturating_duration_since(p.set_at) > EXPECTATIONS_TIMEOUT,
        }
    }

    /// Expects `count` pod creations, replacing what was pending (`ExpectCreations`).
    pub fn expect_creations(&mut self, key: &str, count: usize, now: Instant) {
        let add = i64::try_from(count).unwrap_or(i64::MAX);
        self.pending.insert(key.to_string(), Pending { add, del: 0, set_at: now });
    }

    /// Expects the deletion of these pods (`namespace/name` keys), replacing what was pending.
    pub fn expect_deletions(&mut self, key: &str, pod_keys: &[String], now: Instant) {
        let set: HashSet<String> = pod_keys.iter().cloned().collect();
        let del = i64::try_from(set.len()).unwrap_or(i64::MAX);
        self.deleting.insert(key.to_string(), set);
        self.pending.insert(key.to_string(), Pending { add: 0, del, set_at: now });
    }

    /// One expected pod appeared in the cache, or one create failed or was never attempted
    /// (`CreationObserved`). No-op when nothing is pending for the key.
    pub fn creation_observed(&mut self, key: &str) {
        if let Some(p) = self.pending.get_mut(key) {
            p.add -= 1;
        }
    }

    /// A pod's deletion was observed (it vanished or got a deletion timestamp) or its DELETE failed
    /// (`DeletionObserved`). Counts only pods this ReplicaSet was waiting for, each once.
    pub fn deletion_observed(&mut self, key: &str, pod_key: &str) {
        let Some(set) = self.deleting.get_mut(key) else {
            return;
        };
        if set.remove(pod_key)
            && let Some(p) = self.pending.get_mut(key)
        {
            p.del -= 1;
        }
    }

    /// Forgets the ReplicaSet, so one re-created under the same name starts clean
    /// (`DeleteExpectations`).
    pub fn delete(&mut self, key: &str) {
        self.pending.remove(key);
        self.deleting.remove(key);
    }

    /// The pending (creations, deletions) of a ReplicaSet, for logs and tests.
    pub fn pending(&self, key: &str) -> Option<(i64, i64)> {
        self.pending.get(key).map(|p| (p.add, p.del))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RS: &str = "default/web";

    #[test]
    fn nothing_expected_is_satisfied() {
        let e = ControllerExpectations::new();
        assert!(e.satisfied(RS, Instant::now()));
        assert_eq!(e.pending(RS), None);
    }

    #[test]
    fn creations_block_until_each_is_observed() {
        let now = Instant::now();
        let mut e = ControllerExpectations::new();
        e.expect_creations(RS, 3, now);
        assert!(!e.satisfied(RS, now));
        e.creation_observed(RS);
        e.creation_observed(RS);
        assert!(!e.satisfied(RS, now));
        assert_eq!(e.pending(RS), Some((1, 0)));
        e.creation_observed(RS);
        assert!(e.satisfied(RS, now));
        // Another ReplicaSet is not affected.
        assert!(e.satisfied("default/other", now));
    }

    #[test]
    fn failed_creates_are_subtracted() {
        let now = Instant::now();
        let mut e = ControllerExpectations::new();
        // 7 expected; the slow start created 1+2 and its third batch of 4 failed: 4 are lowered
        // by hand, 3 remain for the informer to observe.
        e.expect_creations(RS, 7, now);
        for _ in 0..4 {
            e.creation_observed(RS);
        }
        assert_eq!(e.pending(RS), Some((3, 0)));
        assert!(!e.satisfied(RS, now));
    }

    #[test]
    fn deletions_are_tracked_by_pod_key_once() {
        let now = Instant::now();
        let mut e = ControllerExpectations::new();
        e.expect_deletions(RS, &["default/a".into(), "default/b".into()], now);
        assert!(!e.satisfied(RS, now));
        // Deletion timestamp then final removal of the same pod: counted once.
        e.deletion_observed(RS, "default/a");
        e.deletion_observed(RS, "default/a");
        assert_eq!(e.pending(RS), Some((0, 1)));
        // A pod that was not expected does not count.
        e.deletion_observed(RS, "default/zzz");
        assert!(!e.satisfied(RS, now));
        e.deletion_observed(RS, "default/b");
        assert!(e.satisfied(RS, now));
    }

    #[test]
    fn expectations_expire_after_five_minutes() {
        let t0 = Instant::now();
        let mut e = ControllerExpectations::new();
        e.expect_creations(RS, 2, t0);
        let cases = [(0, false), (299, false), (300, false), (301, true)];
        for (secs, want) in cases {
            assert_eq!(e.satisfied(RS, t0 + Duration::from_secs(secs)), want, "after {secs}s");
        }
    }

    #[test]
    fn new_expectations_replace_old_ones_and_delete_forgets() {
        let t0 = Instant::now();
        let mut e = ControllerExpectations::new();
        e.expect_creations(RS, 2, t0);
        e.expect_deletions(RS, &["default/a".into()], t0);
        assert_eq!(e.pending(RS), Some((0, 1)));
        e.delete(RS);
        assert_eq!(e.pending(RS), None);
        assert!(e.satisfied(RS, t0));
        // Observations after delete are no-ops.
        e.creation_observed(RS);
        e.deletion_observed(RS, "default/a");
        assert_eq!(e.pending(RS), None);
    }
}
