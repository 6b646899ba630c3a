//! ControllerRef bookkeeping (k/k `pkg/controller/controller_ref_manager.go`, as
//! `getReplicaSetsForDeployment` uses it): which ReplicaSets a Deployment owns, which orphans it
//! adopts and which of its own it releases because their labels no longer match.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

/// The outcome of claiming: `owned` are controlled and matching; `adopt` are matching orphans to
/// patch a controller reference onto; `release` are controlled but no longer matching.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claim {
    pub owned: Vec<ReplicaSet>,
    pub adopt: Vec<ReplicaSet>,
    pub release: Vec<ReplicaSet>,
}

/// `metav1.NewControllerRef(d, apps/v1 Deployment)`.
pub fn controller_ref(d: &Deployment) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".to_string(),
        kind: "Deployment".to_string(),
        name: d.metadata.name.clone().unwrap_or_default(),
        uid: d.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// `metav1.GetControllerOf`.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.as_ref()?.iter().find(|r| r.controller == Some(true))
}

/// Whether a label selector selects these labels. An empty selector selects everything; an
/// unknown operator selects nothing.
pub fn selector_matches(selector: &LabelSelector, labels: Option<&BTreeMap<String, String>>) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k));
    let labels_ok = selector.match_labels.iter().flatten().all(|(k, v)| get(k) == Some(v));
    let expressions_ok = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or(&[]);
        match e.operator.as_str() {
            "In" => get(&e.key).is_some_and(|v| values.contains(v)),
            "NotIn" => get(&e.key).is_none_or(|v| !values.contains(v)),
            "Exists" => get(&e.key).is_some(),
            "DoesNotExist" => get(&e.key).is_none(),
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

fn selector(d: &Deployment) -> LabelSelector {
    d.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default()
}

/// `ClaimReplicaSets` over every ReplicaSet of the Deployment's namespace.
pub fn claim_replica_sets(d: &Deployment, in_namespace: &[ReplicaSet]) -> Claim {
    let uid = d.metadata.uid.as_deref().unwrap_or("");
    let deleting = d.metadata.deletion_timestamp.is_some();
    let sel = selector(d);
    let mut claim = Claim::default();
    for rs in in_namespace {
        if rs.metadata.namespace != d.metadata.namespace {
            continue;
        }
        let matches = selector_matches(&sel, rs.metadata.labels.as_ref());
        match controller_of(&rs.metadata) {
            Some(owner) if owner.uid != uid => {}
            Some(_) if matches => claim.owned.push(rs.clone()),
            Some(_) if !deleting => claim.release.push(rs.clone()),
            Some(_) => {}
            None if matches && !deleting && rs.metadata.deletion_timestamp.is_none() => claim.adopt.push(rs.clone()),
            None => {}
        }
    }
    claim
}

/// A ReplicaSet with the Deployment's controller reference added (what adoption writes).
pub fn adopted(d: &Deployment, rs: &ReplicaSet) -> ReplicaSet {
    let mut rs = rs.clone();
    rs.metadata.owner_references.get_or_insert_with(Vec::new).push(controller_ref(d));
    rs
}

/// A ReplicaSet's owner references without the Deployment's (what release writes).
pub fn released_owner_references(d: &Deployment, rs: &ReplicaSet) -> Vec<OwnerReference> {
    let uid = d.metadata.uid.as_deref().unwrap_or("");
    rs.metadata.owner_references.iter().flatten().filter(|r| r.uid != uid).cloned().collect()
}

/// The pods `Recreate` must wait for: selected by the Deployment and controlled by one of its
/// ReplicaSets (`getPodMapForDeployment`).
pub fn pods_of<'a>(d: &Deployment, owned: &[ReplicaSet], pods: impl IntoIterator<Item = &'a Pod>) -> Vec<Pod> {
    let sel = selector(d);
    let uids: Vec<&str> = owned.iter().filter_map(|rs| rs.metadata.uid.as_deref()).collect();
    pods.into_iter()
        .filter(|p| p.metadata.namespace == d.metadata.namespace)
        .filter(|p| selector_matches(&sel, p.metadata.labels.as_ref()))
        .filter(|p| controller_of(&p.metadata).is_some_and(|o| uids.contains(&o.uid.as_str())))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "d1"},
            "spec": {"selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]},
                     "template": {}}
        }))
        .expect("deployment")
    }

    fn rs(name: &str, labels: serde_json::Value, owner: Option<&str>) -> ReplicaSet {
        let owners: Vec<serde_json::Value> = owner
            .map(|uid| json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "x", "uid": uid, "controller": true}))
            .into_iter()
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "labels": labels, "ownerReferences": owners},
            "spec": {"selector": {}}
        }))
        .expect("rs")
    }

    #[test]
    fn claims_adopts_and_releases() {
        let d = deployment();
        let all = [
            rs("mine", json!({"app": "web"}), Some("d1")),
            rs("orphan", json!({"app": "web", "tier": "fe"}), None),
            rs("orphan-db", json!({"app": "web", "tier": "db"}), None),
            rs("relabelled", json!({"app": "other"}), Some("d1")),
            rs("theirs", json!({"app": "web"}), Some("d2")),
        ];
        let claim = claim_replica_sets(&d, &all);
        let names = |v: &[ReplicaSet]| v.iter().filter_map(|r| r.metadata.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&claim.owned), ["mine"]);
        assert_eq!(names(&claim.adopt), ["orphan"]);
        assert_eq!(names(&claim.release), ["relabelled"]);
        let adopted = adopted(&d, &claim.adopt[0]);
        assert_eq!(controller_of(&adopted.metadata), Some(&controller_ref(&d)));
        assert!(released_owner_references(&d, &claim.release[0]).is_empty());
    }

    #[test]
    fn controller_ref_blocks_owner_deletion() {
        let r = controller_ref(&deployment());
        assert_eq!(
            serde_json::to_value(&r).expect("json"),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d1", "controller": true, "blockOwnerDeletion": true})
        );
    }
}
