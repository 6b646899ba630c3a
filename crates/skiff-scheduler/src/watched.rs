//! [`WatchedPod`]: a Pod as the scheduler's watch decodes it, keeping only what scheduling reads.
//!
//! The scheduler hears about every pod change in the cluster (creation, binding, every status
//! write of every node agent). Decoding each into a full `k8s_openapi` Pod allocates for every
//! field, and most of a pod's bytes are fields the scheduler never reads: `managedFields` (a tree
//! per writer), labels, annotations, and the status' container states, IPs and times. This type
//! reads the spec in full (requests, affinity, tolerations, ports, gates all live there), and of
//! the rest only the identity, owners, deletion mark, phase and conditions; everything else is
//! skipped by the JSON parser without being stored. Upstream's informers decode whole objects;
//! this is the same watch, with less work per event.

use k8s_openapi::api::core::v1::{Pod, PodCondition, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::{Deserialize, Deserializer};

/// A Pod with the fields the scheduler reads (see the module docs); `Pod::from` makes the typed
/// object the decision code takes, with the other fields empty.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WatchedPod {
    #[serde(default, deserialize_with = "scheduling_metadata")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<PodSpec>,
    #[serde(default)]
    pub status: Option<WatchedStatus>,
}

/// The part of `PodStatus` the scheduler reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchedStatus {
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub conditions: Option<Vec<PodCondition>>,
}

/// The part of `ObjectMeta` the scheduler reads: identity (the watch resumes from
/// `resourceVersion`), the controller owner (spreading), the deletion mark.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchedulingMetadata {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    deletion_timestamp: Option<Time>,
    #[serde(default)]
    owner_references: Option<Vec<OwnerReference>>,
}

fn scheduling_metadata<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = SchedulingMetadata::deserialize(d)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        deletion_timestamp: m.deletion_timestamp,
        owner_references: m.owner_references,
        ..ObjectMeta::default()
    })
}

impl From<WatchedPod> for Pod {
    fn from(p: WatchedPod) -> Pod {
        Pod {
            metadata: p.metadata,
            spec: p.spec,
            status: p.status.map(|s| PodStatus { phase: s.phase, conditions: s.conditions, ..PodStatus::default() }),
        }
    }
}

impl k8s_openapi::Resource for WatchedPod {
    const API_VERSION: &'static str = <Pod as k8s_openapi::Resource>::API_VERSION;
    const GROUP: &'static str = <Pod as k8s_openapi::Resource>::GROUP;
    const KIND: &'static str = <Pod as k8s_openapi::Resource>::KIND;
    const VERSION: &'static str = <Pod as k8s_openapi::Resource>::VERSION;
    const URL_PATH_SEGMENT: &'static str = <Pod as k8s_openapi::Resource>::URL_PATH_SEGMENT;
    type Scope = <Pod as k8s_openapi::Resource>::Scope;
}

impl k8s_openapi::Metadata for WatchedPod {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_what_scheduling_reads_and_drops_the_rest() {
        let wire = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default", "uid": "u1", "resourceVersion": "42",
                "generation": 1, "labels": {"app": "web"}, "annotations": {"a": "b"},
                "deletionTimestamp": "2025-01-01T00:00:00Z",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-1", "controller": true}],
                "managedFields": [{"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:containers": {}}}}]},
            "spec": {"containers": [{"name": "c", "image": "nginx",
                        "resources": {"requests": {"cpu": "250m"}}, "ports": [{"containerPort": 80, "hostPort": 8080}]}],
                     "nodeName": "n1", "schedulerName": "default-scheduler",
                     "tolerations": [{"key": "k", "operator": "Exists"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "hostIP": "192.168.0.1",
                "conditions": [{"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "image": "nginx", "imageID": ""}]}
        });
        let watched: WatchedPod = serde_json::from_value(wire.clone()).expect("decodes");
        let pod = Pod::from(watched);
        let full: Pod = serde_json::from_value(wire).expect("a Pod");
        assert_eq!(pod.spec, full.spec, "the spec is kept whole");
        let m = &pod.metadata;
        assert_eq!(
            (m.name.as_deref(), m.namespace.as_deref(), m.uid.as_deref(), m.resource_version.as_deref()),
            (Some("web-1"), Some("default"), Some("u1"), Some("42"))
        );
        assert_eq!(m.owner_references, full.metadata.owner_references);
        assert_eq!(m.deletion_timestamp, full.metadata.deletion_timestamp);
        assert_eq!((m.labels.clone(), m.annotations.clone(), m.managed_fields.clone()), (None, None, None));
        let status = pod.status.expect("a status");
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.conditions, full.status.as_ref().and_then(|s| s.conditions.clone()));
        assert_eq!((status.pod_ip, status.container_statuses), (None, None));
    }

    #[test]
    fn sparse_pods_decode() {
        let pod = Pod::from(serde_json::from_value::<WatchedPod>(json!({"metadata": {"name": "p"}})).expect("decodes"));
        assert_eq!(pod.metadata.name.as_deref(), Some("p"));
        assert_eq!((pod.spec, pod.status), (None, None));
        let empty = Pod::from(serde_json::from_value::<WatchedPod>(json!({})).expect("decodes"));
        assert_eq!(empty.metadata, ObjectMeta::default());
    }

    #[test]
    fn is_a_kube_resource_for_pods() {
        use kube::Resource;
        assert_eq!(WatchedPod::kind(&()), "Pod");
        assert_eq!(WatchedPod::plural(&()), "pods");
        assert_eq!(WatchedPod::api_version(&()), "v1");
        assert_eq!(WatchedPod::url_path(&(), Some("default")), "/api/v1/namespaces/default/pods");
    }
}
