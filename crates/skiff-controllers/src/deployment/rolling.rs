//! The RollingUpdate strategy (k/k `pkg/controller/deployment/rolling.go`): one step per sync. A
//! sync scales the new ReplicaSet up, or else scales old ones down, or else only updates status;
//! the next step waits for the ReplicaSet controller and kubelets to report back.

use super::plan::{Stop, Sync};
use super::util;

impl Sync<'_> {
    /// `rolloutRolling`.
    pub fn rollout_rolling(&mut self) -> Result<(), Stop> {
        self.get_all_replica_sets_and_sync_revision(true)?;
        if self.reconcile_new_replica_set() || self.reconcile_old_replica_sets() {
            self.sync_rollout_status();
            return Ok(());
        }
        if super::progress::deployment_complete(&self.d, self.d.status.as_ref()) {
            self.cleanup_deployment();
        }
        self.sync_rollout_status();
        Ok(())
    }

    /// `reconcileNewReplicaSet`: grow the new ReplicaSet as far as maxSurge allows (or shrink it to
    /// `spec.replicas`). True if it was scaled.
    fn reconcile_new_replica_set(&mut self) -> bool {
        let Some(new) = self.new_rs else { return false };
        let desired = util::replicas(&self.d);
        let current = util::rs_replicas(&self.rss[new]);
        if current == desired {
            return false;
        }
        if current > desired {
            return self.scale_replica_set_and_record_event(new, desired);
        }
        let all: Vec<usize> = self.all_indices();
        let target = util::new_rs_new_replicas(&self.d, all.iter().map(|i| &self.rss[*i]), &self.rss[new]);
        self.scale_replica_set_and_record_event(new, target)
    }

    /// `reconcileOldReplicaSets`: shrink old ReplicaSets without letting availability drop below
    /// `spec.replicas - maxUnavailable`, unhealthy replicas first. True if any was scaled.
    fn reconcile_old_replica_sets(&mut self) -> bool {
        let Some(new) = self.new_rs else { return false };
        let old = self.active_old_indices();
        let old_pods: i32 = old.iter().map(|i| util::rs_replicas(&self.rss[*i])).sum();
        if old_pods == 0 {
            return false;
        }
        let all_pods: i32 = self.all_indices().iter().map(|i| util::rs_replicas(&self.rss[*i])).sum();
        let min_available = util::replicas(&self.d) - util::max_unavailable(&self.d);
        let new_unavailable = util::rs_replicas(&self.rss[new]) - util::rs_available(&self.rss[new]);
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let Some(cleaned) = self.cleanup_unhealthy_replicas(&old, max_scaled_down) else { return false };
        let scaled = self.scale_down_old_replica_sets_for_rolling_update(&old);
        cleaned + scaled > 0
    }

    /// `cleanupUnhealthyReplicas`: remove old replicas that are not available, oldest ReplicaSet
    /// first, at most `max_cleanup`. None where upstream fails (more available than wanted).
    fn cleanup_unhealthy_replicas(&mut self, old: &[usize], max_cleanup: i32) -> Option<i32> {
        let mut old = old.to_vec();
        old.sort_by(|a, b| util::by_creation(&self.rss[*a], &self.rss[*b]));
        let mut total = 0;
        for i in old {
            if total >= max_cleanup {
                break;
            }
            let replicas = util::rs_replicas(&self.rss[i]);
            let available = util::rs_available(&self.rss[i]);
            if replicas == 0 || replicas == available {
                continue;
            }
            let down = (max_cleanup - total).min(replicas - available);
            if down < 0 {
                return None;
            }
            self.scale_replica_set_and_record_event(i, replicas - down);
            total += down;
        }
        Some(total)
    }

    /// `scaleDownOldReplicaSetsForRollingUpdate`: remove as many old replicas as availability above
    /// `minAvailable` allows, oldest ReplicaSet first.
    fn scale_down_old_replica_sets_for_rolling_update(&mut self, old: &[usize]) -> i32 {
        let min_available = util::replicas(&self.d) - util::max_unavailable(&self.d);
        let available: i32 = old.iter().copied().chain(self.new_rs).map(|i| util::rs_available(&self.rss[i])).sum();
        if available <= min_available {
            return 0;
        }
        let mut old = old.to_vec();
        old.sort_by(|a, b| util::by_creation(&self.rss[*a], &self.rss[*b]));
        let want = available - min_available;
        let mut total = 0;
        for i in old {
            if total >= want {
                break;
            }
            let replicas = util::rs_replicas(&self.rss[i]);
            if replicas == 0 {
                continue;
            }
            let down = replicas.min(want - total);
            self.scale_replica_set_and_record_event(i, replicas - down);
            total += down;
        }
        total
    }
}
