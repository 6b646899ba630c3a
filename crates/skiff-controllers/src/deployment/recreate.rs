//! The Recreate strategy (k/k `pkg/controller/deployment/recreate.go`): scale every old ReplicaSet
//! to 0, wait until none of their pods is left running, then create and scale up the new one.

use super::plan::{Stop, Sync};
use super::util;

impl Sync<'_> {
    /// `rolloutRecreate`.
    pub fn rollout_recreate(&mut self) -> Result<(), Stop> {
        // Do not create the new ReplicaSet yet: scaling up must wait for scaling down.
        self.get_all_replica_sets_and_sync_revision(false)?;
        let mut scaled = false;
        for i in self.active_old_indices() {
            scaled |= self.scale_replica_set_and_record_event(i, 0);
        }
        if scaled || self.old_pods_running() {
            self.sync_rollout_status();
            return Ok(());
        }
        if self.new_rs.is_none() {
            self.get_all_replica_sets_and_sync_revision(true)?;
        }
        if let Some(new) = self.new_rs {
            let desired = util::replicas(&self.d);
            self.scale_replica_set_and_record_event(new, desired);
        }
        if super::progress::deployment_complete(&self.d, self.d.status.as_ref()) {
            self.cleanup_deployment();
        }
        self.sync_rollout_status();
        Ok(())
    }

    /// `oldPodsRunning`: old ReplicaSets still report pods, or a pod of theirs is not yet Succeeded
    /// or Failed (Pending, Running, Unknown and terminating pods all count).
    pub fn old_pods_running(&self) -> bool {
        let old = self.old_indices();
        if old.iter().map(|i| util::rs_actual(&self.rss[*i])).sum::<i32>() > 0 {
            return true;
        }
        let new_uid = self.new_rs.and_then(|i| self.rss[i].metadata.uid.clone());
        let old_uids: Vec<&str> = old.iter().filter_map(|i| self.rss[*i].metadata.uid.as_deref()).collect();
        self.observed.pods.iter().any(|pod| {
            let Some(owner) = super::adoption::controller_of(&pod.metadata) else { return false };
            if new_uid.as_deref() == Some(owner.uid.as_str()) || !old_uids.contains(&owner.uid.as_str()) {
                return false;
            }
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded") | Some("Failed"))
        })
    }
}
