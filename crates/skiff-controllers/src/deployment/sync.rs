//! Finding or creating the new ReplicaSet, scaling, proportional scaling, history cleanup and plain
//! status updates (k/k `pkg/controller/deployment/sync.go`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::adoption;
use super::hash;
use super::plan::{Action, Stop, Sync};
use super::progress::{self, reason};
use super::util;
use crate::events::EventType;

impl Sync<'_> {
    /// `syncStatusOnly`: a Deployment being deleted only gets its status refreshed.
    pub fn sync_status_only(&mut self) -> Result<(), Stop> {
        self.get_all_replica_sets_and_sync_revision(false)?;
        self.sync_deployment_status();
        Ok(())
    }

    /// `sync`: scaling events and paused Deployments. Proportional scaling, history cleanup when
    /// paused, status. Never creates a ReplicaSet, so a paused template edit rolls nothing out.
    pub fn sync(&mut self) -> Result<(), Stop> {
        self.get_all_replica_sets_and_sync_revision(false)?;
        self.scale();
        if util::is_paused(&self.d) && !has_rollback_annotation(&self.d) {
            self.cleanup_deployment();
        }
        self.sync_deployment_status();
        Ok(())
    }

    /// `getAllReplicaSetsAndSyncRevision`: find (or create) the new ReplicaSet and bring its and the
    /// Deployment's revision annotations up to date.
    pub fn get_all_replica_sets_and_sync_revision(&mut self, create: bool) -> Result<(), Stop> {
        self.new_rs = util::find_new_replica_set(&self.d, &self.rss)
            .and_then(|found| self.rss.iter().position(|rs| rs.metadata.name == found.metadata.name));
        let max_old = util::max_revision(self.old_indices().into_iter().map(|i| &self.rss[i]));
        let new_revision = max_old + 1;

        if let Some(i) = self.new_rs {
            let mut rs = self.rss[i].clone();
            let annotations_changed = util::set_new_replica_set_annotations(&self.d, &mut rs, new_revision, true);
            let min_ready = util::min_ready_seconds(&self.d);
            let rs_min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0);
            if annotations_changed || rs_min_ready != min_ready {
                rs.spec.get_or_insert_with(Default::default).min_ready_seconds = Some(min_ready);
                self.actions.push(Action::UpdateReplicaSet(Box::new(rs.clone())));
                self.rss[i] = rs;
                return Ok(());
            }
            let rs_revision =
                rs.metadata.annotations.as_ref().and_then(|a| a.get(util::REVISION)).cloned().unwrap_or_default();
            let mut needs_update = util::set_deployment_revision(&mut self.d, &rs_revision);
            let has_progressing =
                self.d.status.as_ref().and_then(|s| progress::get_condition(s, progress::PROGRESSING)).is_some();
            if util::progress_deadline(&self.d).is_some() && !has_progressing {
                let message = format!("Found new replica set {:?}", rs.metadata.name.as_deref().unwrap_or(""));
                let c = progress::new_condition(progress::PROGRESSING, "True", reason::FOUND_NEW_RS, message, self.now);
                progress::set_condition(self.d.status.get_or_insert_with(Default::default), c);
                needs_update = true;
            }
            if needs_update {
                self.update_status();
            }
            return Ok(());
        }
        if !create {
            return Ok(());
        }
        self.create_new_replica_set(new_revision)
    }

    fn create_new_replica_set(&mut self, new_revision: i64) -> Result<(), Stop> {
        let mut template = util::deployment_template(&self.d);
        let collision_count = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = hash::pod_template_hash(&template, collision_count);
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(util::POD_TEMPLATE_HASH.to_string(), hash.clone());
        let mut selector = self.d.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(util::POD_TEMPLATE_HASH.to_string(), hash.clone());
        let name = format!("{}-{hash}", self.name());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.metadata.namespace.clone(),
                owner_references: Some(vec![adoption::controller_ref(&self.d)]),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: Some(util::min_ready_seconds(&self.d)),
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let replicas =
            util::new_rs_new_replicas(&self.d, self.all_indices().into_iter().map(|i| &self.rss[i]).chain([&rs]), &rs);
        util::set_rs_replicas(&mut rs, replicas);
        util::set_new_replica_set_annotations(&self.d, &mut rs, new_revision, false);

        if self.observed.taken_names.contains(&name) {
            // Another ReplicaSet already has this name but is not our new one: a hash collision.
            // Bump collisionCount so that the next sync computes a different hash.
            let status = self.d.status.get_or_insert_with(Default::default);
            status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
            self.update_status();
            return Err(Stop(format!("replicasets.apps {name:?} already exists (hash collision)")));
        }

        self.actions.push(Action::CreateReplicaSet(Box::new(rs.clone())));
        if replicas > 0 {
            self.event(
                EventType::Normal,
                "ScalingReplicaSet",
                format!("Scaled up replica set {name} from 0 to {replicas}"),
            );
        }
        // The local copy stands in for the created object: newest of all.
        rs.metadata.creation_timestamp = Some(Time(self.now));
        self.rss.push(rs);
        self.new_rs = Some(self.rss.len() - 1);

        let mut needs_update = util::set_deployment_revision(&mut self.d, &new_revision.to_string());
        if util::progress_deadline(&self.d).is_some() {
            let message = format!("Created new replica set {name:?}");
            let c = progress::new_condition(progress::PROGRESSING, "True", reason::NEW_RS_CREATED, message, self.now);
            progress::set_condition(self.d.status.get_or_insert_with(Default::default), c);
            needs_update = true;
        }
        if needs_update {
            self.update_status();
        }
        Ok(())
    }

    /// `scaleReplicaSet`: one PUT with the new size and refreshed replica annotations; an Event
    /// when the size changed. True if it did.
    pub fn scale_replica_set(&mut self, i: usize, new_scale: i32, operation: &str) -> bool {
        let desired = util::replicas(&self.d);
        let max = desired + util::max_surge(&self.d);
        let rs = &mut self.rss[i];
        let old_scale = util::rs_replicas(rs);
        let size_changed = old_scale != new_scale;
        if !size_changed && !util::replicas_annotations_need_update(rs, desired, max) {
            return false;
        }
        util::set_rs_replicas(rs, new_scale);
        util::set_replicas_annotations(rs, desired, max);
        let name = rs.metadata.name.clone().unwrap_or_default();
        self.actions.push(Action::UpdateReplicaSet(Box::new(rs.clone())));
        if size_changed {
            self.event(
                EventType::Normal,
                "ScalingReplicaSet",
                format!("Scaled {operation} replica set {name} from {old_scale} to {new_scale}"),
            );
        }
        size_changed
    }

    /// `scaleReplicaSetAndRecordEvent`: nothing when the size is already right.
    pub fn scale_replica_set_and_record_event(&mut self, i: usize, new_scale: i32) -> bool {
        let current = util::rs_replicas(&self.rss[i]);
        if current == new_scale {
            return false;
        }
        let operation = if current < new_scale { "up" } else { "down" };
        self.scale_replica_set(i, new_scale, operation)
    }

    /// `FindActiveOrLatest`: the only active ReplicaSet, or when none is active the new one (else the
    /// newest old one); None when several are active.
    fn find_active_or_latest(&self) -> Option<usize> {
        let mut olds = self.old_indices();
        olds.sort_by(|a, b| util::by_creation(&self.rss[*b], &self.rss[*a]));
        let mut candidates = olds.clone();
        candidates.extend(self.new_rs);
        let active: Vec<usize> = candidates.into_iter().filter(|i| util::rs_replicas(&self.rss[*i]) > 0).collect();
        match active.len() {
            0 => self.new_rs.or(olds.first().copied()),
            1 => Some(active[0]),
            _ => None,
        }
    }

    /// `scale`: resize to a new `spec.replicas`. With one active ReplicaSet it gets everything; with a
    /// saturated new one the old are emptied; otherwise (rolling only) the difference is shared out in
    /// proportion to each ReplicaSet's size, the rounding leftover going to the biggest.
    pub fn scale(&mut self) {
        let desired = util::replicas(&self.d);
        if let Some(i) = self.find_active_or_latest() {
            if util::rs_replicas(&self.rss[i]) != desired {
                self.scale_replica_set_and_record_event(i, desired);
            }
            return;
        }
        if self.new_rs.is_some_and(|i| util::is_saturated(&self.d, &self.rss[i])) {
            for i in self.active_old_indices() {
                self.scale_replica_set_and_record_event(i, 0);
            }
            return;
        }
        if !util::is_rolling_update(&self.d) {
            return;
        }
        let mut active: Vec<usize> =
            self.all_indices().into_iter().filter(|i| util::rs_replicas(&self.rss[*i]) > 0).collect();
        let current: i32 = active.iter().map(|i| util::rs_replicas(&self.rss[*i])).sum();
        let allowed = if desired > 0 { desired + util::max_surge(&self.d) } else { 0 };
        let to_add = allowed - current;
        let operation = match to_add.signum() {
            1 => {
                active.sort_by(|a, b| util::by_size_newer(&self.rss[*a], &self.rss[*b]));
                "up"
            }
            -1 => {
                active.sort_by(|a, b| util::by_size_older(&self.rss[*a], &self.rss[*b]));
                "down"
            }
            _ => "",
        };
        let mut added = 0;
        let mut sizes = Vec::with_capacity(active.len());
        for &i in &active {
            let rs = &self.rss[i];
            if to_add != 0 {
                let proportion = util::get_proportion(rs, &self.d, to_add, added);
                sizes.push(util::rs_replicas(rs) + proportion);
                added += proportion;
            } else {
                sizes.push(util::rs_replicas(rs));
            }
        }
        for (n, &i) in active.iter().enumerate() {
            let mut size = sizes[n];
            if n == 0 && to_add != 0 {
                size = (size + to_add - added).max(0);
            }
            self.scale_replica_set(i, size, operation);
        }
    }

    /// `isScalingEvent`: an active ReplicaSet was last scaled for a different `spec.replicas`.
    pub fn is_scaling_event(&mut self) -> Result<bool, Stop> {
        self.get_all_replica_sets_and_sync_revision(false)?;
        let desired = util::replicas(&self.d);
        Ok(self
            .all_indices()
            .into_iter()
            .map(|i| &self.rss[i])
            .filter(|rs| util::rs_replicas(rs) > 0)
            .any(|rs| util::desired_replicas_annotation(rs).is_some_and(|a| a != desired)))
    }

    /// `cleanupDeployment`: delete the oldest revisions beyond `revisionHistoryLimit`, but only
    /// ReplicaSets that are empty, fully observed and not already being deleted.
    pub fn cleanup_deployment(&mut self) {
        let Some(limit) = util::revision_history_limit(&self.d) else { return };
        let mut cleanable: Vec<usize> =
            self.old_indices().into_iter().filter(|i| self.rss[*i].metadata.deletion_timestamp.is_none()).collect();
        let diff = i64::try_from(cleanable.len()).unwrap_or(i64::MAX) - i64::from(limit);
        if diff <= 0 {
            return;
        }
        cleanable.sort_by(|a, b| util::by_revision(&self.rss[*a], &self.rss[*b]));
        for &i in cleanable.iter().take(usize::try_from(diff).unwrap_or(0)) {
            let rs = &self.rss[i];
            let observed = rs.status.as_ref().and_then(|s| s.observed_generation).unwrap_or(0);
            if util::rs_actual(rs) != 0
                || util::rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
                || rs.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            let name = rs.metadata.name.clone().unwrap_or_default();
            self.actions.push(Action::DeleteReplicaSet { name });
        }
    }

    /// `syncDeploymentStatus`: write the computed status if it differs.
    pub fn sync_deployment_status(&mut self) {
        let new_status = progress::calculate_status(self);
        if progress::status_equal(self.d.status.as_ref(), &new_status) {
            return;
        }
        self.d.status = Some(new_status);
        self.update_status();
    }
}

fn has_rollback_annotation(d: &k8s_openapi::api::apps::v1::Deployment) -> bool {
    d.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(util::ROLLBACK_TO))
}
