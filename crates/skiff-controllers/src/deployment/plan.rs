//! The plan: what one sync of one Deployment does (`syncDeployment` in k/k
//! `pkg/controller/deployment/deployment_controller.go`), computed without I/O.
//!
//! Upstream's sync is a sequence of API writes, each decided on the state the previous ones left.
//! [`plan`] runs the same sequence against an in-memory copy of the Deployment and its ReplicaSets,
//! assuming every write succeeds, and returns the writes as [`Action`]s in order. The executor
//! (`run.rs`) applies them in that order and stops at the first failure, after which the
//! Deployment is synced again from fresh caches, as upstream requeues on error.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::util;
use crate::events::EventType;

/// What the controller observed for one Deployment, from its caches.
#[derive(Debug, Clone)]
pub struct Observed {
    pub deployment: Deployment,
    /// The ReplicaSets this Deployment controls, after adoption and release (`adoption.rs`).
    pub replica_sets: Vec<ReplicaSet>,
    /// Pods controlled by those ReplicaSets (only `Recreate` looks at them).
    pub pods: Vec<Pod>,
    /// Names of every ReplicaSet in the namespace, owned or not: creating one of these names is a
    /// hash collision.
    pub taken_names: BTreeSet<String>,
    pub now: Timestamp,
}

/// One API write, in the order the sync makes them.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// POST the new ReplicaSet.
    CreateReplicaSet(Box<ReplicaSet>),
    /// PUT the ReplicaSet (replicas, annotations, minReadySeconds), with the cached resourceVersion.
    UpdateReplicaSet(Box<ReplicaSet>),
    /// DELETE an old ReplicaSet (revisionHistoryLimit).
    DeleteReplicaSet { name: String },
    /// PUT `deployments/{name}/status`; the server keeps the annotations sent (the revision).
    UpdateStatus(Box<Deployment>),
    /// An Event about the Deployment, recorded once the writes before it succeeded.
    Event { kind: EventType, reason: String, message: String },
}

/// The result of planning one sync.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Sync again after this long even without events (the progress deadline check).
    pub requeue_after: Option<Duration>,
    /// The sync ended as upstream's returns an error (e.g. a hash collision): retry with back-off.
    pub retry: Option<String>,
}

/// Ends a sync early with a retry, as an `error` return does upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop(pub String);

/// The working state of one sync: the Deployment and its ReplicaSets as the planned writes leave
/// them.
pub struct Sync<'a> {
    pub d: Deployment,
    /// Owned ReplicaSets, oldest first.
    pub rss: Vec<ReplicaSet>,
    /// Index of the new ReplicaSet in `rss`, once found or created.
    pub new_rs: Option<usize>,
    pub observed: &'a Observed,
    pub now: Timestamp,
    pub actions: Vec<Action>,
    pub requeue_after: Option<Duration>,
}

/// Plans one sync of `observed.deployment`.
pub fn plan(observed: &Observed) -> Plan {
    let mut s = Sync::new(observed);
    let result = s.sync_deployment();
    Plan { actions: s.actions, requeue_after: s.requeue_after, retry: result.err().map(|Stop(m)| m) }
}

impl<'a> Sync<'a> {
    pub fn new(observed: &'a Observed) -> Sync<'a> {
        let mut rss = observed.replica_sets.clone();
        rss.sort_by(util::by_creation);
        // Conditions carry whole seconds, as metav1.Time does on the wire.
        let now = Timestamp::from_second(observed.now.as_second()).unwrap_or(observed.now);
        Sync {
            d: observed.deployment.clone(),
            rss,
            new_rs: None,
            observed,
            now,
            actions: Vec::new(),
            requeue_after: None,
        }
    }

    pub fn name(&self) -> &str {
        self.d.metadata.name.as_deref().unwrap_or("")
    }

    /// Indices of the old ReplicaSets (all but the new one), oldest first.
    pub fn old_indices(&self) -> Vec<usize> {
        (0..self.rss.len()).filter(|i| Some(*i) != self.new_rs).collect()
    }

    /// Old ReplicaSets with `spec.replicas > 0`.
    pub fn active_old_indices(&self) -> Vec<usize> {
        self.old_indices().into_iter().filter(|i| util::rs_replicas(&self.rss[*i]) > 0).collect()
    }

    /// Old ReplicaSets then the new one, as upstream's `append(oldRSs, newRS)`.
    pub fn all_indices(&self) -> Vec<usize> {
        let mut all = self.old_indices();
        all.extend(self.new_rs);
        all
    }

    pub fn event(&mut self, kind: EventType, reason: &str, message: String) {
        self.actions.push(Action::Event { kind, reason: reason.to_string(), message });
    }

    pub fn update_status(&mut self) {
        self.actions.push(Action::UpdateStatus(Box::new(self.d.clone())));
    }

    /// `syncDeployment`, after the caches were read and ReplicaSets claimed.
    fn sync_deployment(&mut self) -> Result<(), Stop> {
        let selector = self.d.spec.as_ref().map(|s| &s.selector);
        let selects_all = selector.is_none_or(|s| {
            s.match_labels.as_ref().is_none_or(|m| m.is_empty())
                && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
        });
        if selects_all {
            self.event(
                EventType::Warning,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.".to_string(),
            );
            let generation = self.d.metadata.generation.unwrap_or(0);
            let status = self.d.status.get_or_insert_with(Default::default);
            if status.observed_generation.unwrap_or(0) < generation {
                status.observed_generation = Some(generation);
                self.update_status();
            }
            return Ok(());
        }
        if self.d.metadata.deletion_timestamp.is_some() {
            return self.sync_status_only();
        }
        self.check_paused_conditions();
        if util::is_paused(&self.d) {
            return self.sync();
        }
        // The legacy `deprecated.deployment.rollback.to` annotation is not acted on: apps/v1 has no
        // rollback subresource and kubectl 1.35 rolls back by patching the template (rollback.rs).
        if self.is_scaling_event()? {
            return self.sync();
        }
        if util::is_rolling_update(&self.d) { self.rollout_rolling() } else { self.rollout_recreate() }
    }
}
