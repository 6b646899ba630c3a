//! Status and conditions (k/k `pkg/controller/deployment/progress.go`, `sync.go: calculateStatus`):
//! the counters, `Available`, `Progressing` with its deadline, `ReplicaFailure`, the paused
//! conditions, and what `kubectl rollout status` concludes from them.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::plan::Sync;
use super::util;

pub const PROGRESSING: &str = "Progressing";
pub const AVAILABLE: &str = "Available";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Condition reasons (`util/deployment_util.go`).
pub mod reason {
    pub const REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";
    pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
    pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
    pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
    pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
    pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
    pub const PAUSED: &str = "DeploymentPaused";
    pub const RESUMED: &str = "DeploymentResumed";
    pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
    pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
}

/// A requeue for a stuck Deployment whose deadline is (almost) past: soon, but not in a hot loop.
const REQUEUE_SOON: Duration = Duration::from_millis(500);

pub fn new_condition(type_: &str, status: &str, reason: &str, message: String, now: Timestamp) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

pub fn get_condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

/// `SetDeploymentCondition`: same status and reason changes nothing; same status keeps
/// `lastTransitionTime`; the condition moves to the end of the list.
pub fn set_condition(status: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(current) = get_condition(status, &c.type_) {
        if current.status == c.status && current.reason == c.reason {
            return;
        }
        if current.status == c.status {
            c.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &c.type_.clone());
    status.conditions.get_or_insert_with(Vec::new).push(c);
}

pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
    }
}

/// `calculateStatus`: the counters from the ReplicaSets, and `Available`.
pub fn calculate_status(s: &Sync<'_>) -> DeploymentStatus {
    let all: Vec<&ReplicaSet> = s.all_indices().into_iter().map(|i| &s.rss[i]).collect();
    let available: i32 = all.iter().map(|rs| util::rs_available(rs)).sum();
    let total: i32 = all.iter().map(|rs| util::rs_replicas(rs)).sum();
    let old = s.d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: Some(s.d.metadata.generation.unwrap_or(0)),
        replicas: Some(all.iter().map(|rs| util::rs_actual(rs)).sum()),
        updated_replicas: Some(s.new_rs.map_or(0, |i| util::rs_actual(&s.rss[i]))),
        ready_replicas: Some(all.iter().map(|rs| util::rs_ready(rs)).sum()),
        available_replicas: Some(available),
        unavailable_replicas: Some((total - available).max(0)),
        terminating_replicas: terminating_replicas(&all),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
    };
    let desired = util::replicas(&s.d);
    let c = if available >= desired - util::max_unavailable(&s.d) {
        new_condition(
            AVAILABLE,
            "True",
            reason::MINIMUM_REPLICAS_AVAILABLE,
            "Deployment has minimum availability.".into(),
            s.now,
        )
    } else {
        new_condition(
            AVAILABLE,
            "False",
            reason::MINIMUM_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability.".into(),
            s.now,
        )
    };
    set_condition(&mut status, c);
    status
}

/// `GetTerminatingReplicaCountForReplicaSets`: unknown (None) once an observed ReplicaSet does not
/// report the field.
fn terminating_replicas(all: &[&ReplicaSet]) -> Option<i32> {
    let mut sum = 0;
    for rs in all {
        let status = rs.status.as_ref();
        match status.and_then(|s| s.terminating_replicas) {
            Some(n) => sum += n,
            None if status.and_then(|s| s.observed_generation).unwrap_or(0) == 0 => {}
            None => return None,
        }
    }
    Some(sum)
}

/// `reflect.DeepEqual(d.Status, newStatus)`, except that a zero counter equals a missing one (a
/// server may omit zeros, as Go's `omitempty` does).
pub fn status_equal(old: Option<&DeploymentStatus>, new: &DeploymentStatus) -> bool {
    fn zeroless(s: &DeploymentStatus) -> DeploymentStatus {
        let z = |v: Option<i32>| v.filter(|n| *n != 0);
        DeploymentStatus {
            available_replicas: z(s.available_replicas),
            ready_replicas: z(s.ready_replicas),
            replicas: z(s.replicas),
            unavailable_replicas: z(s.unavailable_replicas),
            updated_replicas: z(s.updated_replicas),
            observed_generation: s.observed_generation.filter(|n| *n != 0),
            conditions: s.conditions.clone().filter(|c| !c.is_empty()),
            ..s.clone()
        }
    }
    zeroless(&old.cloned().unwrap_or_default()) == zeroless(new)
}

/// `DeploymentComplete`: every replica updated and available, and the spec observed.
pub fn deployment_complete(d: &Deployment, status: Option<&DeploymentStatus>) -> bool {
    let desired = util::replicas(d);
    let Some(s) = status else { return desired == 0 && d.metadata.generation.unwrap_or(0) <= 0 };
    s.updated_replicas.unwrap_or(0) == desired
        && s.replicas.unwrap_or(0) == desired
        && s.available_replicas.unwrap_or(0) == desired
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// `DeploymentProgressing`: compared with the current status, more updated, fewer old, more ready
/// or more available replicas.
pub fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let v = |x: Option<i32>| x.unwrap_or(0);
    let old_old = v(old.replicas) - v(old.updated_replicas);
    let new_old = v(new.replicas) - v(new.updated_replicas);
    v(new.updated_replicas) > v(old.updated_replicas)
        || new_old < old_old
        || v(new.ready_replicas) > v(old.ready_replicas)
        || v(new.available_replicas) > v(old.available_replicas)
}

/// `DeploymentTimedOut`: no progress recorded for `progressDeadlineSeconds`.
pub fn deployment_timed_out(d: &Deployment, new: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(deadline) = util::progress_deadline(d) else { return false };
    let Some(c) = get_condition(new, PROGRESSING) else { return false };
    match c.reason.as_deref() {
        Some(reason::NEW_RS_AVAILABLE) => false,
        Some(reason::TIMED_OUT) => true,
        _ => {
            let Some(from) = c.last_update_time.as_ref() else { return false };
            from.0.checked_add(SignedDuration::from_secs(i64::from(deadline))).is_ok_and(|end| end < now)
        }
    }
}

impl Sync<'_> {
    /// `checkPausedConditions`: `Progressing=Unknown` with `DeploymentPaused` / `DeploymentResumed`,
    /// which also restarts the deadline clock. A timed-out condition is never overwritten.
    pub fn check_paused_conditions(&mut self) {
        if util::progress_deadline(&self.d).is_none() {
            return;
        }
        let current = self.d.status.as_ref().and_then(|s| get_condition(s, PROGRESSING)).and_then(|c| c.reason.clone());
        if current.as_deref() == Some(reason::TIMED_OUT) {
            return;
        }
        let paused_recorded = current.as_deref() == Some(reason::PAUSED);
        let paused = util::is_paused(&self.d);
        let c = if paused && !paused_recorded {
            new_condition(PROGRESSING, "Unknown", reason::PAUSED, "Deployment is paused".into(), self.now)
        } else if !paused && paused_recorded {
            new_condition(PROGRESSING, "Unknown", reason::RESUMED, "Deployment is resumed".into(), self.now)
        } else {
            return;
        };
        set_condition(self.d.status.get_or_insert_with(Default::default), c);
        self.update_status();
    }

    /// `syncRolloutStatus`: status plus the `Progressing` and `ReplicaFailure` conditions; when
    /// nothing changed, schedule the deadline check (`requeueStuckDeployment`).
    pub fn sync_rollout_status(&mut self) {
        let mut new_status = calculate_status(self);
        let deadline = util::progress_deadline(&self.d);
        if deadline.is_none() {
            remove_condition(&mut new_status, PROGRESSING);
        }
        let current = self.d.status.as_ref().and_then(|s| get_condition(s, PROGRESSING)).cloned();
        let complete_already = new_status.replicas == new_status.updated_replicas
            && current.as_ref().is_some_and(|c| c.reason.as_deref() == Some(reason::NEW_RS_AVAILABLE));
        let new_name = self.new_rs.and_then(|i| self.rss[i].metadata.name.clone());
        let subject = match &new_name {
            Some(n) => format!("ReplicaSet {n:?}"),
            None => format!("Deployment {:?}", self.name()),
        };
        if deadline.is_some() && !complete_already {
            if deployment_complete(&self.d, Some(&new_status)) {
                let c = new_condition(
                    PROGRESSING,
                    "True",
                    reason::NEW_RS_AVAILABLE,
                    format!("{subject} has successfully progressed."),
                    self.now,
                );
                set_condition(&mut new_status, c);
            } else if deployment_progressing(&self.d, &new_status) {
                let mut c = new_condition(
                    PROGRESSING,
                    "True",
                    reason::REPLICA_SET_UPDATED,
                    format!("{subject} is progressing."),
                    self.now,
                );
                if let Some(current) = &current {
                    if current.status == "True" {
                        c.last_transition_time = current.last_transition_time.clone();
                    }
                    remove_condition(&mut new_status, PROGRESSING);
                }
                set_condition(&mut new_status, c);
            } else if deployment_timed_out(&self.d, &new_status, self.now) {
                let c = new_condition(
                    PROGRESSING,
                    "False",
                    reason::TIMED_OUT,
                    format!("{subject} has timed out progressing."),
                    self.now,
                );
                set_condition(&mut new_status, c);
            }
        }
        match self.replica_failure() {
            Some(c) => set_condition(&mut new_status, c),
            None => remove_condition(&mut new_status, REPLICA_FAILURE),
        }
        if status_equal(self.d.status.as_ref(), &new_status) {
            self.requeue_after = requeue_stuck(&self.d, &new_status, self.now);
            return;
        }
        self.d.status = Some(new_status);
        self.update_status();
    }

    /// `getReplicaFailures`: the new ReplicaSet's `ReplicaFailure` condition, else any ReplicaSet's.
    fn replica_failure(&self) -> Option<DeploymentCondition> {
        let order = self.new_rs.into_iter().chain(self.all_indices());
        order
            .filter_map(|i| {
                self.rss[i].status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == REPLICA_FAILURE)
            })
            .map(|c| DeploymentCondition {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_update_time: c.last_transition_time.clone(),
                last_transition_time: c.last_transition_time.clone(),
            })
            .next()
    }
}

/// `requeueStuckDeployment`: when a rollout is under way and made no progress, check again when its
/// deadline passes (`lastUpdateTime + progressDeadlineSeconds`, plus a second for clock skew).
pub fn requeue_stuck(d: &Deployment, new_status: &DeploymentStatus, now: Timestamp) -> Option<Duration> {
    let deadline = util::progress_deadline(d)?;
    let current = d.status.as_ref().and_then(|s| get_condition(s, PROGRESSING))?;
    if deployment_complete(d, Some(new_status)) || current.reason.as_deref() == Some(reason::TIMED_OUT) {
        return None;
    }
    let last = current.last_update_time.as_ref()?.0;
    let end = last.checked_add(SignedDuration::from_secs(i64::from(deadline))).ok()?;
    let after = end.duration_since(now);
    if after < SignedDuration::from_secs(1) {
        return Some(REQUEUE_SOON);
    }
    Duration::try_from(after + SignedDuration::from_secs(1)).ok()
}

/// What `kubectl rollout status deployment/x` prints for this object (kubectl
/// `pkg/polymorphichelpers/rollout_status.go`), and whether it is done. Err is kubectl's error.
pub fn rollout_status(d: &Deployment) -> Result<(String, bool), String> {
    let name = d.metadata.name.as_deref().unwrap_or("");
    let status = d.status.clone().unwrap_or_default();
    if d.metadata.generation.unwrap_or(0) > status.observed_generation.unwrap_or(0) {
        return Ok(("Waiting for deployment spec update to be observed...\n".to_string(), false));
    }
    if get_condition(&status, PROGRESSING).is_some_and(|c| c.reason.as_deref() == Some(reason::TIMED_OUT)) {
        return Err(format!("deployment {name:?} exceeded its progress deadline"));
    }
    let v = |x: Option<i32>| x.unwrap_or(0);
    let (updated, replicas, available) = (v(status.updated_replicas), v(status.replicas), v(status.available_replicas));
    if let Some(want) = d.spec.as_ref().and_then(|s| s.replicas)
        && updated < want
    {
        return Ok((
            format!(
                "Waiting for deployment {name:?} rollout to finish: {updated} out of {want} new replicas have been updated...\n"
            ),
            false,
        ));
    }
    if replicas > updated {
        return Ok((
            format!(
                "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...\n",
                replicas - updated
            ),
            false,
        ));
    }
    if available < updated {
        return Ok((
            format!(
                "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available...\n"
            ),
            false,
        ));
    }
    Ok((format!("deployment {name:?} successfully rolled out\n"), true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).expect("ts")
    }

    #[test]
    fn set_condition_keeps_transition_time_for_same_status() {
        let mut st = DeploymentStatus::default();
        set_condition(&mut st, new_condition(PROGRESSING, "True", reason::NEW_RS_CREATED, "a".into(), ts(0)));
        set_condition(&mut st, new_condition(AVAILABLE, "True", reason::MINIMUM_REPLICAS_AVAILABLE, "b".into(), ts(0)));
        // Same status and reason: untouched, even the message.
        set_condition(&mut st, new_condition(PROGRESSING, "True", reason::NEW_RS_CREATED, "other".into(), ts(5)));
        assert_eq!(get_condition(&st, PROGRESSING).and_then(|c| c.message.clone()).as_deref(), Some("a"));
        // Same status, new reason: new update time, old transition time, moved to the end.
        set_condition(&mut st, new_condition(PROGRESSING, "True", reason::REPLICA_SET_UPDATED, "c".into(), ts(10)));
        let c = get_condition(&st, PROGRESSING).expect("cond");
        assert_eq!(
            (c.last_update_time.clone(), c.last_transition_time.clone()),
            (Some(Time(ts(10))), Some(Time(ts(0))))
        );
        assert_eq!(
            st.conditions.as_ref().map(|c| c.last().map(|c| c.type_.clone())),
            Some(Some(PROGRESSING.to_string()))
        );
        // New status: both times new.
        set_condition(&mut st, new_condition(PROGRESSING, "False", reason::TIMED_OUT, "d".into(), ts(20)));
        let c = get_condition(&st, PROGRESSING).expect("cond");
        assert_eq!(c.last_transition_time, Some(Time(ts(20))));
    }

    fn deployment(status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": 3, "progressDeadlineSeconds": 60, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}}},
            "status": status,
        }))
        .expect("deployment")
    }

    #[test]
    fn kubectl_rollout_status_messages() {
        let cases = [
            (json!({"observedGeneration": 1}), Ok(("Waiting for deployment spec update to be observed...\n", false))),
            (
                json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1}),
                Ok((
                    "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...\n",
                    false,
                )),
            ),
            (
                json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3}),
                Ok((
                    "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...\n",
                    false,
                )),
            ),
            (
                json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2}),
                Ok((
                    "Waiting for deployment \"web\" rollout to finish: 2 of 3 updated replicas are available...\n",
                    false,
                )),
            ),
            (
                json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
                Ok(("deployment \"web\" successfully rolled out\n", true)),
            ),
            (
                json!({"observedGeneration": 2, "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}),
                Err("deployment \"web\" exceeded its progress deadline"),
            ),
        ];
        for (status, want) in cases {
            let got = rollout_status(&deployment(status.clone()));
            let want = want.map(|(m, done)| (m.to_string(), done)).map_err(str::to_string);
            assert_eq!(got, want, "{status}");
        }
    }

    #[test]
    fn timed_out_after_the_deadline_only() {
        let d = deployment(json!({}));
        let mut st = DeploymentStatus::default();
        set_condition(&mut st, new_condition(PROGRESSING, "True", reason::REPLICA_SET_UPDATED, "x".into(), ts(0)));
        assert!(!deployment_timed_out(&d, &st, ts(60)), "the deadline itself is not past");
        assert!(deployment_timed_out(&d, &st, ts(61)));
        set_condition(&mut st, new_condition(PROGRESSING, "True", reason::NEW_RS_AVAILABLE, "x".into(), ts(0)));
        assert!(!deployment_timed_out(&d, &st, ts(600)));
    }

    #[test]
    fn requeue_at_the_deadline() {
        let mut d = deployment(json!({}));
        let mut st = DeploymentStatus::default();
        set_condition(&mut st, new_condition(PROGRESSING, "True", reason::REPLICA_SET_UPDATED, "x".into(), ts(0)));
        d.status = Some(st.clone());
        assert_eq!(requeue_stuck(&d, &st, ts(20)), Some(Duration::from_secs(41)));
        assert_eq!(requeue_stuck(&d, &st, ts(60)), Some(REQUEUE_SOON));
        d.spec.as_mut().expect("spec").progress_deadline_seconds = None;
        assert_eq!(requeue_stuck(&d, &st, ts(20)), None);
    }

    #[test]
    fn zero_counters_equal_missing_ones() {
        let a = DeploymentStatus { replicas: Some(0), observed_generation: Some(1), ..Default::default() };
        let b = DeploymentStatus { observed_generation: Some(1), ..Default::default() };
        assert!(status_equal(Some(&b), &a));
        assert!(!status_equal(None, &a));
    }
}
