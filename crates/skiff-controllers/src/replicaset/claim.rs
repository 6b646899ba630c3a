//! Adoption and release of pods (`pkg/controller/controller_ref_manager.go`: `ClaimObject`,
//! `ClaimPods`, `AdoptPod`, `ReleasePod`, and `GenerateDeleteOwnerRefStrategicMergeBytes`).
//!
//! A ReplicaSet owns the pods whose controller reference carries its UID. It adopts orphans that
//! match its selector and releases owned pods that stopped matching, both with strategic-merge patches
//! whose `metadata.uid` acts as a precondition (the patch fails if the pod was replaced meanwhile).

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use skiff_api::selector::LabelSelector;

use super::pods;

/// What claiming decided for the pods of one ReplicaSet.
#[derive(Debug, Default, Clone)]
pub struct ClaimPlan<'a> {
    /// Already ours and still matching.
    pub owned: Vec<&'a Pod>,
    /// Orphans that match: adopt, then they are ours.
    pub adopt: Vec<&'a Pod>,
    /// Ours but no longer matching: release (not counted as ours).
    pub release: Vec<&'a Pod>,
}

/// Classifies `pods` (the active pods of the namespace) as upstream's `ClaimObject` does:
/// * controlled by another object: ignored;
/// * controlled by `rs`: kept if the selector matches, else released unless `rs` is being deleted;
/// * orphan: adopted if `rs` is not being deleted, the selector matches, the pod is not being
///   deleted and is in the ReplicaSet's namespace.
pub fn plan_claims<'a>(rs: &ReplicaSet, selector: &LabelSelector, pods: &[&'a Pod]) -> ClaimPlan<'a> {
    let uid = rs.metadata.uid.as_deref().unwrap_or("");
    let rs_deleting = rs.metadata.deletion_timestamp.is_some();
    let mut plan = ClaimPlan::default();
    for &pod in pods {
        let matches = pods::selector_matches(selector, &pod.metadata);
        match pods::controller_of(&pod.metadata) {
            Some(r) if r.uid != uid => {}
            Some(_) if matches => plan.owned.push(pod),
            Some(_) if !rs_deleting => plan.release.push(pod),
            Some(_) => {}
            None => {
                let adoptable = !rs_deleting
                    && matches
                    && pod.metadata.deletion_timestamp.is_none()
                    && pod.metadata.namespace == rs.metadata.namespace;
                if adoptable {
                    plan.adopt.push(pod);
                }
            }
        }
    }
    plan
}

/// The terminating pods this ReplicaSet counts in `status.terminatingReplicas`
/// (`FilterTerminatingPods` then `FilterClaimedPods`): controlled by it and matching its selector.
pub fn claimed_terminating<'a>(rs: &ReplicaSet, selector: &LabelSelector, pods: &[&'a Pod]) -> Vec<&'a Pod> {
    let uid = rs.metadata.uid.as_deref().unwrap_or("");
    pods.iter()
        .copied()
        .filter(|p| pods::is_terminating(p))
        .filter(|p| pods::is_controlled_by(&p.metadata, uid) && pods::selector_matches(selector, &p.metadata))
        .collect()
}

/// The controller reference a ReplicaSet puts on its pods (`metav1.NewControllerRef`).
pub fn controller_ref(rs: &ReplicaSet) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": rs.metadata.name.as_deref().unwrap_or(""),
        "uid": rs.metadata.uid.as_deref().unwrap_or(""),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The strategic-merge patch that adopts `pod` (`ownerRefControllerPatch`): adds the controller
/// reference (merged by `uid` with the pod's other references) and pins the pod's UID.
pub fn adopt_patch(rs: &ReplicaSet, pod: &Pod) -> Value {
    json!({
        "metadata": {
            "ownerReferences": [controller_ref(rs)],
            "uid": pod.metadata.uid.as_deref().unwrap_or(""),
        }
    })
}

/// The strategic-merge patch that releases `pod` (`GenerateDeleteOwnerRefStrategicMergeBytes`):
/// deletes the reference with the ReplicaSet's UID, pinning the pod's UID.
pub fn release_patch(rs: &ReplicaSet, pod: &Pod) -> Value {
    json!({
        "metadata": {
            "uid": pod.metadata.uid.as_deref().unwrap_or(""),
            "ownerReferences": [{"$patch": "delete", "uid": rs.metadata.uid.as_deref().unwrap_or("")}],
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::pods::testing::*;
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn names(pods: &[&Pod]) -> Vec<String> {
        pods.iter().map(|p| p.metadata.name.clone().unwrap_or_default()).collect()
    }

    #[test]
    fn classification_table() {
        let mut other_ns = pod("other-ns").orphan();
        other_ns.metadata.namespace = Some("kube-system".into());
        let pods = [
            pod("mine"),
            pod("mine-relabelled").with_labels(&[("app", "db")]),
            pod("orphan").orphan(),
            pod("orphan-other-labels").orphan().with_labels(&[("app", "db")]),
            pod("orphan-deleting").orphan().deleting(),
            pod("someone-elses").owned_by("other-uid"),
            other_ns,
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let rs = rs(3);
        let sel = pods::selector_of(&rs).expect("selector");
        let plan = plan_claims(&rs, &sel, &refs);
        assert_eq!(names(&plan.owned), vec!["mine"]);
        assert_eq!(names(&plan.adopt), vec!["orphan"]);
        assert_eq!(names(&plan.release), vec!["mine-relabelled"]);
    }

    #[test]
    fn a_deleted_replicaset_neither_adopts_nor_releases() {
        let pods = [pod("mine"), pod("mine-relabelled").with_labels(&[("app", "db")]), pod("orphan").orphan()];
        let refs: Vec<&Pod> = pods.iter().collect();
        let mut rs = rs(3);
        rs.metadata.deletion_timestamp = Some(Time(t(0)));
        let sel = pods::selector_of(&rs).expect("selector");
        let plan = plan_claims(&rs, &sel, &refs);
        assert_eq!(names(&plan.owned), vec!["mine"]);
        assert!(plan.adopt.is_empty());
        assert!(plan.release.is_empty());
    }

    #[test]
    fn terminating_pods_counted_only_when_claimed() {
        let pods = [
            pod("t-mine").deleting(),
            pod("t-other").owned_by("x").deleting(),
            pod("t-orphan").orphan().deleting(),
            pod("t-relabelled").with_labels(&[("app", "db")]).deleting(),
            pod("t-failed").phase("Failed").deleting(),
            pod("active"),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let rs = rs(3);
        let sel = pods::selector_of(&rs).expect("selector");
        assert_eq!(names(&claimed_terminating(&rs, &sel, &refs)), vec!["t-mine"]);
    }

    #[test]
    fn patches_match_upstream_bytes() {
        let rs = rs(1);
        let p = pod("a");
        assert_eq!(
            adopt_patch(&rs, &p),
            json!({"metadata": {"ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs-uid",
                "controller": true, "blockOwnerDeletion": true
            }], "uid": "uid-a"}})
        );
        assert_eq!(
            release_patch(&rs, &p),
            json!({"metadata": {"uid": "uid-a", "ownerReferences": [{"$patch": "delete", "uid": "rs-uid"}]}})
        );
    }
}
