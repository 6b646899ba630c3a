//! Node health (`node_lifecycle_controller.go: tryUpdateNodeHealth`): when the controller last
//! heard from each node, by its own clock, and the conditions to post when that is too long ago.
//!
//! The probe timestamp advances when the Ready condition's `lastHeartbeatTime` changes or the
//! node's Lease `renewTime` advances; the times themselves are only compared, never trusted, so
//! clock skew between the kubelet and the controller does not matter.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// The node condition types.
pub const READY: &str = "Ready";
pub const MEMORY_PRESSURE: &str = "MemoryPressure";
pub const DISK_PRESSURE: &str = "DiskPressure";
pub const PID_PRESSURE: &str = "PIDPressure";
pub const NETWORK_UNAVAILABLE: &str = "NetworkUnavailable";

/// Condition statuses.
pub const TRUE: &str = "True";
pub const FALSE: &str = "False";
pub const UNKNOWN: &str = "Unknown";

/// Reason and message of a condition the kubelet stopped posting.
pub const UNKNOWN_REASON: &str = "NodeStatusUnknown";
pub const UNKNOWN_MESSAGE: &str = "Kubelet stopped posting node status.";
/// Reason and message of a condition the kubelet never posted.
pub const NEVER_UPDATED_REASON: &str = "NodeStatusNeverUpdated";
pub const NEVER_UPDATED_MESSAGE: &str = "Kubelet never posted node status.";

/// The conditions set to Unknown for a silent node (NetworkUnavailable is left alone: the control
/// plane manages it).
const CONDITIONS_SET_UNKNOWN: [&str; 4] = [READY, MEMORY_PRESSURE, DISK_PRESSURE, PID_PRESSURE];

/// The grace periods that apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grace {
    /// For nodes that posted a Ready condition.
    pub monitor: Duration,
    /// For nodes that never did.
    pub startup: Duration,
}

/// What the controller remembers about a node between passes (upstream `nodeHealthData`).
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// When the controller last saw a sign of life, by its own clock.
    pub probe: Timestamp,
    /// When the controller last saw the Ready condition change.
    pub ready_transition: Timestamp,
    /// The Ready condition of the status last taken in (None: that status had none).
    pub ready: Option<NodeCondition>,
    /// The Lease last taken in: `Some(renewTime)`; None when none was.
    pub lease: Option<Option<Timestamp>>,
}

/// One pass over one node.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The health to remember if nothing is written.
    pub health: Health,
    /// The Ready condition as observed (a made-up `Unknown` one dated at creation when absent).
    pub observed_ready: NodeCondition,
    /// The Ready condition after this pass: the observed one, or the one written.
    pub current_ready: Option<NodeCondition>,
    /// The node's conditions to write through `nodes/status` (the Ready condition changed).
    pub write: Option<Vec<NodeCondition>>,
    /// The health to remember once `write` succeeded.
    pub health_after_write: Health,
}

/// The condition of type `kind`, if the node has one.
pub fn condition<'a>(node: &'a Node, kind: &str) -> Option<&'a NodeCondition> {
    node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == kind)
}

/// The Ready condition's status (`True`, `False`, `Unknown`), if the node has one.
pub fn ready_status(node: &Node) -> Option<&str> {
    condition(node, READY).map(|c| c.status.as_str())
}

/// `t + d`, saturating.
pub fn after(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d).ok().and_then(|d| t.checked_add(d).ok()).unwrap_or(Timestamp::MAX)
}

fn lease_renew_time(lease: &Lease) -> Option<Timestamp> {
    lease.spec.as_ref()?.renew_time.as_ref().map(|t| t.0)
}

/// Takes in the node (and its Lease) as observed at `now`, given what was remembered (`saved`).
pub fn observe(
    saved: Option<&Health>,
    node: &Node,
    lease: Option<&Lease>,
    now: Timestamp,
    grace: Grace,
) -> Observation {
    let created = node.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(now);
    let current = condition(node, READY);
    let mut health = saved.cloned();
    let (observed_ready, grace_period) = match current {
        None => {
            // Never posted: a made-up Unknown condition dated at creation, and the startup grace.
            let fake = NodeCondition {
                type_: READY.to_string(),
                status: UNKNOWN.to_string(),
                last_heartbeat_time: Some(Time(created)),
                last_transition_time: Some(Time(created)),
                ..NodeCondition::default()
            };
            health = Some(match health {
                Some(h) => Health { ready: None, ..h },
                None => Health { probe: created, ready_transition: created, ready: None, lease: None },
            });
            (fake, grace.startup)
        }
        Some(c) => (c.clone(), grace.monitor),
    };
    let saved_ready = health.as_ref().and_then(|h| h.ready.clone());
    let saved_lease = health.as_ref().and_then(|h| h.lease);
    let fresh = |ready: Option<&NodeCondition>| Health {
        probe: now,
        ready_transition: now,
        ready: ready.cloned(),
        lease: saved_lease,
    };
    let mut health = match (health, &saved_ready, current) {
        (None, _, _) | (Some(_), None, Some(_)) | (Some(_), Some(_), None) => fresh(current),
        (Some(h), Some(saved), Some(cur)) if saved.last_heartbeat_time != cur.last_heartbeat_time => {
            let transition =
                if saved.last_transition_time != cur.last_transition_time { now } else { h.ready_transition };
            Health { probe: now, ready_transition: transition, ready: Some(cur.clone()), lease: h.lease }
        }
        (Some(h), _, _) => h,
    };
    // A renewed Lease is a sign of life too (even from a kubelet that never posted a status).
    let observed_lease = lease.map(lease_renew_time);
    if let Some(renew) = observed_lease {
        let advanced = match health.lease {
            None => true,
            Some(saved) => matches!((saved, renew), (Some(a), Some(b)) if a < b),
        };
        if advanced {
            health.lease = Some(renew);
            health.probe = now;
        }
    }

    let mut observation = Observation {
        health: health.clone(),
        observed_ready: observed_ready.clone(),
        current_ready: current.cloned(),
        write: None,
        health_after_write: health.clone(),
    };
    if now <= after(health.probe, grace_period) {
        return observation;
    }
    let conditions = unknown_conditions(node, created, now);
    let new_ready = conditions.iter().find(|c| c.type_ == READY).cloned();
    if new_ready.as_ref() != Some(&observed_ready) {
        observation.health_after_write =
            Health { probe: health.probe, ready_transition: now, ready: new_ready.clone(), lease: observed_lease };
        observation.current_ready = new_ready;
        observation.write = Some(conditions);
    }
    observation
}

/// The node's conditions with Ready and the pressures set to Unknown (added when missing).
fn unknown_conditions(node: &Node, created: Timestamp, now: Timestamp) -> Vec<NodeCondition> {
    let mut conditions = node.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    for kind in CONDITIONS_SET_UNKNOWN {
        match conditions.iter_mut().find(|c| c.type_ == kind) {
            None => conditions.push(NodeCondition {
                type_: kind.to_string(),
                status: UNKNOWN.to_string(),
                reason: Some(NEVER_UPDATED_REASON.to_string()),
                message: Some(NEVER_UPDATED_MESSAGE.to_string()),
                last_heartbeat_time: Some(Time(created)),
                last_transition_time: Some(Time(now)),
            }),
            Some(c) if c.status != UNKNOWN => {
                c.status = UNKNOWN.to_string();
                c.reason = Some(UNKNOWN_REASON.to_string());
                c.message = Some(UNKNOWN_MESSAGE.to_string());
                c.last_transition_time = Some(Time(now));
            }
            Some(_) => {}
        }
    }
    conditions
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GRACE: Grace = Grace { monitor: Duration::from_secs(40), startup: Duration::from_secs(60) };

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("timestamp")
    }

    fn rfc(secs: i64) -> String {
        ts(secs).to_string()
    }

    /// A node created at t=0 whose Ready condition has `status` and heartbeat `beat`.
    fn node(ready: Option<(&str, i64)>) -> Node {
        let mut conditions = vec![
            json!({"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "lastHeartbeatTime": rfc(0), "lastTransitionTime": rfc(0)}),
        ];
        if let Some((status, beat)) = ready {
            conditions.push(json!({"type": "Ready", "status": status, "reason": "KubeletReady", "message": "kubelet is posting ready status", "lastHeartbeatTime": rfc(beat), "lastTransitionTime": rfc(0)}));
        }
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "creationTimestamp": rfc(0)},
            "status": {"conditions": conditions}
        }))
        .expect("node")
    }

    fn lease(renew: i64) -> Lease {
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40, "renewTime": format!("{}", ts(renew).strftime("%Y-%m-%dT%H:%M:%S.000000Z"))}
        }))
        .expect("lease")
    }

    #[test]
    fn first_sight_starts_the_clock_now() {
        let n = node(Some(("True", 0)));
        let o = observe(None, &n, None, ts(100), GRACE);
        assert_eq!(o.health.probe, ts(100));
        assert_eq!(o.health.ready_transition, ts(100));
        assert_eq!(o.write, None);
        assert_eq!(o.current_ready.map(|c| c.status), Some("True".to_string()));
    }

    #[test]
    fn probe_advances_on_heartbeat_or_lease_only() {
        // (what changes between the two passes, probe after the second pass at t=30)
        type Case = (&'static str, Node, Option<Lease>, Option<Lease>, Timestamp);
        let cases: [Case; 4] = [
            ("nothing", node(Some(("True", 0))), None, None, ts(10)),
            ("heartbeat", node(Some(("True", 20))), None, None, ts(30)),
            ("lease renewed", node(Some(("True", 0))), Some(lease(5)), Some(lease(25)), ts(30)),
            ("lease unchanged", node(Some(("True", 0))), Some(lease(5)), Some(lease(5)), ts(10)),
        ];
        for (what, second, lease1, lease2, probe) in cases {
            let first = observe(None, &node(Some(("True", 0))), lease1.as_ref(), ts(10), GRACE);
            let o = observe(Some(&first.health), &second, lease2.as_ref(), ts(30), GRACE);
            assert_eq!(o.health.probe, probe, "{what}");
            assert_eq!(o.write, None, "{what}");
        }
    }

    #[test]
    fn a_silent_node_goes_unknown_after_the_grace_period() {
        let n = node(Some(("True", 0)));
        let first = observe(None, &n, Some(&lease(0)), ts(10), GRACE);
        // Exactly at the end of the grace period: still fine.
        let at = observe(Some(&first.health), &n, Some(&lease(0)), ts(50), GRACE);
        assert_eq!(at.write, None);
        let o = observe(Some(&first.health), &n, Some(&lease(0)), ts(51), GRACE);
        let written = o.write.expect("conditions to write");
        let ready = written.iter().find(|c| c.type_ == READY).expect("ready");
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(ready.message.as_deref(), Some("Kubelet stopped posting node status."));
        assert_eq!(ready.last_transition_time, Some(Time(ts(51))));
        assert_eq!(ready.last_heartbeat_time, Some(Time(ts(0))), "the heartbeat is left as posted");
        let memory = written.iter().find(|c| c.type_ == MEMORY_PRESSURE).expect("memory");
        assert_eq!((memory.status.as_str(), memory.reason.as_deref()), ("Unknown", Some("NodeStatusUnknown")));
        // Missing pressures are added as never updated, dated at creation.
        for kind in [DISK_PRESSURE, PID_PRESSURE] {
            let c = written.iter().find(|c| c.type_ == kind).expect("added");
            assert_eq!(c.status, "Unknown");
            assert_eq!(c.reason.as_deref(), Some("NodeStatusNeverUpdated"));
            assert_eq!(c.message.as_deref(), Some("Kubelet never posted node status."));
            assert_eq!(c.last_heartbeat_time, Some(Time(ts(0))));
        }
        assert_eq!(o.observed_ready.status, "True");
        assert_eq!(o.current_ready.map(|c| c.status), Some("Unknown".to_string()));
        assert_eq!(o.health_after_write.ready_transition, ts(51));
        assert_eq!(o.health_after_write.probe, ts(10));
    }

    #[test]
    fn an_already_unknown_node_is_not_written_again() {
        let mut n = node(Some(("Unknown", 0)));
        if let Some(c) = n.status.as_mut().and_then(|s| s.conditions.as_mut()) {
            c.retain(|c| c.type_ == READY);
        }
        let first = observe(None, &n, None, ts(10), GRACE);
        let o = observe(Some(&first.health), &n, None, ts(100), GRACE);
        assert_eq!(o.write, None, "Ready is already Unknown: no write even though pressures are missing");
    }

    #[test]
    fn a_node_that_never_posted_gets_the_startup_grace_from_creation() {
        let n = node(None);
        let early = observe(None, &n, None, ts(60), GRACE);
        assert_eq!(early.write, None);
        assert_eq!(early.observed_ready.status, "Unknown");
        assert_eq!(early.current_ready, None);
        let late = observe(Some(&early.health), &n, None, ts(61), GRACE);
        let written = late.write.expect("write");
        let ready = written.iter().find(|c| c.type_ == READY).expect("ready");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        assert_eq!(ready.message.as_deref(), Some("Kubelet never posted node status."));
        // A Lease keeps such a node alive.
        let leased = observe(Some(&early.health), &n, Some(&lease(60)), ts(61), GRACE);
        assert_eq!(leased.write, None);
    }

    #[test]
    fn ready_transition_moves_only_when_the_condition_transitioned() {
        let first = observe(None, &node(Some(("True", 0))), None, ts(10), GRACE);
        let mut flipped = node(Some(("False", 20)));
        if let Some(c) = flipped
            .status
            .as_mut()
            .and_then(|s| s.conditions.as_mut())
            .and_then(|c| c.iter_mut().find(|c| c.type_ == READY))
        {
            c.last_transition_time = Some(Time(ts(20)));
        }
        let o = observe(Some(&first.health), &flipped, None, ts(30), GRACE);
        assert_eq!(o.health.ready_transition, ts(30));
        let same = observe(Some(&first.health), &node(Some(("True", 20))), None, ts(30), GRACE);
        assert_eq!(same.health.ready_transition, ts(10));
    }
}
