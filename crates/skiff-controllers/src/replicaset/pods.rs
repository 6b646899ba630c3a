//! Facts about one pod that the ReplicaSet controller decides on: active or terminating, ready or
//! available, its controller, its deletion cost. Each mirrors a helper of k/k
//! (`pkg/api/v1/pod/util.go`, `pkg/controller/controller_utils.go`, `apimachinery metav1.GetControllerOf`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value};
use skiff_api::selector::LabelSelector;

/// The annotation that lowers or raises a pod's cost of deletion on scale-down (PodDeletionCost, GA).
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The pod's phase, `""` when the kubelet has not reported one.
pub fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// Succeeded or Failed: the pod will never run again (`podutil.IsPodTerminal`).
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Counted as a replica: not terminal and not being deleted (`controller.IsPodActive`).
pub fn is_active(pod: &Pod) -> bool {
    !is_terminal(pod) && pod.metadata.deletion_timestamp.is_none()
}

/// Being deleted but still running its containers (`controller.isPodTerminating`); such pods are
/// reported in `status.terminatingReplicas`.
pub fn is_terminating(pod: &Pod) -> bool {
    !is_terminal(pod) && pod.metadata.deletion_timestamp.is_some()
}

/// The pod's `Ready` condition if it is `True`.
fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .filter(|c| c.status == "True")
}

/// The `Ready` condition is `True` (`podutil.IsPodReady`).
pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some()
}

/// When a ready pod became ready (`lastTransitionTime` of its `Ready` condition); `None` when the pod
/// is not ready or the time is missing (Go's zero time).
pub fn ready_time(pod: &Pod) -> Option<Timestamp> {
    ready_condition(pod).and_then(|c| c.last_transition_time.as_ref()).map(|t| t.0)
}

/// Ready for at least `min_ready_seconds` (`podutil.IsPodAvailable`): ready, and either
/// `min_ready_seconds` is 0 or the ready time plus `min_ready_seconds` is strictly before `now`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    if !is_ready(pod) {
        return false;
    }
    if min_ready_seconds == 0 {
        return true;
    }
    match ready_time(pod) {
        Some(t) => t.as_nanosecond() + i128::from(min_ready_seconds) * 1_000_000_000 < now.as_nanosecond(),
        None => false,
    }
}

/// The highest restart count among the pod's containers (`maxContainerRestarts`).
pub fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().map(|c| c.restart_count).max())
        .unwrap_or(0)
        .max(0)
}

/// The `controller.kubernetes.io/pod-deletion-cost` annotation as an int32; 0 when absent or invalid
/// (`helper.GetDeletionCostFromPodAnnotations`: no `+` sign, no leading zeros, int32 range).
pub fn deletion_cost(pod: &Pod) -> i32 {
    let Some(value) = pod.metadata.annotations.as_ref().and_then(|a| a.get(POD_DELETION_COST)) else {
        return 0;
    };
    let first_ok = match value.as_bytes().first() {
        Some(b'-') => true,
        Some(b'0') => value == "0",
        Some(b'1'..=b'9') => true,
        _ => false,
    };
    if !first_ok {
        return 0;
    }
    value.parse::<i32>().unwrap_or(0)
}

/// The node the pod is bound to, `""` when unscheduled.
pub fn node_name(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("")
}

/// The owner reference with `controller: true`, if any (`metav1.GetControllerOf`).
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.as_ref()?.iter().find(|r| r.controller == Some(true))
}

/// True when `meta`'s controller is the object with `uid`.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == uid)
}

/// `namespace/name`, the key of the work queue and of expectations (`controller.KeyFunc`, `PodKey`).
pub fn key(meta: &ObjectMeta) -> String {
    format!("{}/{}", meta.namespace.as_deref().unwrap_or(""), meta.name.as_deref().unwrap_or(""))
}

/// Labels in the wire form the selector matcher reads.
pub fn labels_json(labels: Option<&BTreeMap<String, String>>) -> Map<String, Value> {
    labels.into_iter().flatten().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()
}

/// The ReplicaSet's `spec.selector` as a matcher (`metav1.LabelSelectorAsSelector`); an error when it
/// does not convert, in which case upstream skips the ReplicaSet.
pub fn selector_of(rs: &ReplicaSet) -> Result<LabelSelector, String> {
    let Some(spec) = rs.spec.as_ref() else {
        return Ok(LabelSelector::nothing());
    };
    let value = serde_json::to_value(&spec.selector).map_err(|e| e.to_string())?;
    LabelSelector::from_label_selector(&value)
}

/// The selector matches the object's labels.
pub fn selector_matches(selector: &LabelSelector, meta: &ObjectMeta) -> bool {
    selector.matches(Some(&labels_json(meta.labels.as_ref())))
}

/// `spec.replicas`, defaulted to 1 as the API server does.
pub fn desired_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `spec.minReadySeconds`, 0 when unset.
pub fn min_ready_seconds(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Builders for pods and ReplicaSets used by the tests of every module here.

    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{Container, ContainerStatus, PodCondition, PodSpec, PodStatus, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector as K8sSelector, Time};

    /// A fixed instant, so tests do not depend on the clock.
    pub fn t(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).expect("valid timestamp")
    }

    pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// A ReplicaSet `default/web` with uid `rs-uid`, selector `app=web`, template labels `app=web`.
    pub fn rs(replicas: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("rs-uid".into()),
                generation: Some(1),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: None,
                selector: K8sSelector { match_labels: Some(labels(&[("app", "web")])), match_expressions: None },
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta { labels: Some(labels(&[("app", "web")])), ..ObjectMeta::default() }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "nginx".into(),
                            image: Some("nginx".into()),
                            ..Container::default()
                        }],
                        ..PodSpec::default()
                    }),
                }),
            }),
            status: None,
        }
    }

    pub fn owner_ref(uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "web".into(),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    /// A pod `default/<name>` with uid `uid-<name>`, labels `app=web`, owned by `rs-uid`, Pending,
    /// unscheduled, created at `t(0)`.
    pub fn pod(name: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                labels: Some(labels(&[("app", "web")])),
                owner_references: Some(vec![owner_ref("rs-uid")]),
                creation_timestamp: Some(Time(t(0))),
                resource_version: Some("1".into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus { phase: Some("Pending".into()), ..PodStatus::default() }),
        }
    }

    /// Fluent tweaks on a test pod.
    pub trait PodExt {
        fn on(self, node: &str) -> Pod;
        fn phase(self, phase: &str) -> Pod;
        fn ready_since(self, at: Timestamp) -> Pod;
        fn not_ready(self) -> Pod;
        fn created(self, at: Timestamp) -> Pod;
        fn restarts(self, n: i32) -> Pod;
        fn cost(self, v: &str) -> Pod;
        fn orphan(self) -> Pod;
        fn owned_by(self, uid: &str) -> Pod;
        fn deleting(self) -> Pod;
        fn with_labels(self, pairs: &[(&str, &str)]) -> Pod;
        fn uid(self, uid: &str) -> Pod;
    }

    impl PodExt for Pod {
        fn on(mut self, node: &str) -> Pod {
            self.spec.get_or_insert_default().node_name = Some(node.into());
            self
        }
        fn phase(mut self, phase: &str) -> Pod {
            self.status.get_or_insert_default().phase = Some(phase.into());
            self
        }
        fn ready_since(mut self, at: Timestamp) -> Pod {
            let status = self.status.get_or_insert_default();
            status.phase = Some("Running".into());
            status.conditions = Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(at)),
                ..PodCondition::default()
            }]);
            self
        }
        fn not_ready(mut self) -> Pod {
            let status = self.status.get_or_insert_default();
            status.conditions =
                Some(vec![PodCondition { type_: "Ready".into(), status: "False".into(), ..PodCondition::default() }]);
            self
        }
        fn created(mut self, at: Timestamp) -> Pod {
            self.metadata.creation_timestamp = Some(Time(at));
            self
        }
        fn restarts(mut self, n: i32) -> Pod {
            self.status.get_or_insert_default().container_statuses =
                Some(vec![ContainerStatus { name: "c".into(), restart_count: n, ..ContainerStatus::default() }]);
            self
        }
        fn cost(mut self, v: &str) -> Pod {
            self.metadata.annotations = Some(labels(&[(POD_DELETION_COST, v)]));
            self
        }
        fn orphan(mut self) -> Pod {
            self.metadata.owner_references = None;
            self
        }
        fn owned_by(mut self, uid: &str) -> Pod {
            self.metadata.owner_references = Some(vec![owner_ref(uid)]);
            self
        }
        fn deleting(mut self) -> Pod {
            self.metadata.deletion_timestamp = Some(Time(t(0)));
            self
        }
        fn with_labels(mut self, pairs: &[(&str, &str)]) -> Pod {
            self.metadata.labels = Some(labels(pairs));
            self
        }
        fn uid(mut self, uid: &str) -> Pod {
            self.metadata.uid = Some(uid.into());
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn activity_by_phase_and_deletion() {
        let cases = [
            (pod("a"), true, false),
            (pod("a").phase("Running"), true, false),
            (pod("a").phase("Unknown"), true, false),
            (pod("a").phase("Succeeded"), false, false),
            (pod("a").phase("Failed"), false, false),
            (pod("a").deleting(), false, true),
            (pod("a").phase("Failed").deleting(), false, false),
        ];
        for (p, active, terminating) in cases {
            assert_eq!(is_active(&p), active, "{:?}", p.status);
            assert_eq!(is_terminating(&p), terminating, "{:?}", p.status);
        }
    }

    #[test]
    fn availability_needs_min_ready_seconds_strictly_elapsed() {
        let p = pod("a").ready_since(t(0));
        let cases = [(0, t(0), true), (10, t(5), false), (10, t(10), false), (10, t(11), true)];
        for (mrs, now, want) in cases {
            assert_eq!(is_available(&p, mrs, now), want, "minReadySeconds={mrs} now={now}");
        }
        assert!(!is_available(&pod("a").not_ready(), 0, t(100)));
    }

    #[test]
    fn deletion_cost_parsing_follows_upstream() {
        let cases = [("10", 10), ("-5", -5), ("0", 0), ("+1", 0), ("007", 0), ("x", 0), ("", 0), ("2147483648", 0)];
        for (v, want) in cases {
            assert_eq!(deletion_cost(&pod("a").cost(v)), want, "{v:?}");
        }
        assert_eq!(deletion_cost(&pod("a")), 0);
    }

    #[test]
    fn restarts_take_the_maximum() {
        assert_eq!(max_restarts(&pod("a")), 0);
        assert_eq!(max_restarts(&pod("a").restarts(4)), 4);
    }

    #[test]
    fn selector_and_controller() {
        let rs = rs(1);
        let sel = selector_of(&rs).expect("selector");
        assert!(selector_matches(&sel, &pod("a").metadata));
        assert!(!selector_matches(&sel, &pod("a").with_labels(&[("app", "db")]).metadata));
        assert!(is_controlled_by(&pod("a").metadata, "rs-uid"));
        assert!(!is_controlled_by(&pod("a").orphan().metadata, "rs-uid"));
        assert_eq!(key(&pod("a").metadata), "default/a");
    }
}
