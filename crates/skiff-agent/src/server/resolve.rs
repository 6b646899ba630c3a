//! Which container instance a request means, and which pods the node serves. The current instance
//! is the newest (highest attempt) of that container name; `previous` is the newest exited one
//! before it (the agent keeps two instances per name, as the kubelet keeps one previous).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;
use parking_lot::RwLock;
use skiff_api::error::ApiError;

use crate::runtime::ContainerInfo;

/// A pod bound to this node: its UID and every container name its spec has (init, regular,
/// ephemeral).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundPod {
    pub uid: String,
    pub containers: Vec<String>,
}

impl BoundPod {
    /// `(namespace, name, entry)` for a pod object.
    pub fn of(pod: &Pod) -> Option<(String, String, BoundPod)> {
        let uid = pod.metadata.uid.clone()?;
        let name = pod.metadata.name.clone()?;
        let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let spec = pod.spec.as_ref();
        let mut containers: Vec<String> =
            spec.map(|s| s.containers.iter().map(|c| c.name.clone()).collect()).unwrap_or_default();
        containers.extend(spec.and_then(|s| s.init_containers.as_ref()).into_iter().flatten().map(|c| c.name.clone()));
        containers
            .extend(spec.and_then(|s| s.ephemeral_containers.as_ref()).into_iter().flatten().map(|c| c.name.clone()));
        Some((namespace, name, BoundPod { uid, containers }))
    }
}

/// The pods bound to this node, by namespace and name; the agent's pod loop keeps it current.
#[derive(Debug, Default)]
pub struct BoundPods {
    pods: RwLock<HashMap<(String, String), BoundPod>>,
}

impl BoundPods {
    pub fn set(&self, namespace: &str, name: &str, pod: BoundPod) {
        self.pods.write().insert((namespace.to_string(), name.to_string()), pod);
    }

    /// Forgets the pod with this UID (a pod recreated under the same name keeps its new entry).
    pub fn remove_uid(&self, uid: &str) {
        self.pods.write().retain(|_, p| p.uid != uid);
    }

    /// Keeps only the pods whose UID `keep` accepts.
    pub fn retain_uids(&self, keep: impl Fn(&str) -> bool) {
        self.pods.write().retain(|_, p| keep(&p.uid));
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<BoundPod> {
        self.pods.read().get(&(namespace.to_string(), name.to_string())).cloned()
    }
}

/// The instances of container `name`, newest first.
pub fn instances<'a>(all: &'a [ContainerInfo], name: &str) -> Vec<&'a ContainerInfo> {
    let mut list: Vec<&ContainerInfo> = all.iter().filter(|c| c.name == name).collect();
    list.sort_by_key(|c| std::cmp::Reverse((c.attempt, c.created_at)));
    list
}

/// The instance whose logs `/containerLogs` shows (`previous`: the one before the current).
pub fn log_instance<'a>(
    all: &'a [ContainerInfo],
    pod: &str,
    container: &str,
    previous: bool,
) -> Result<&'a ContainerInfo, ApiError> {
    let list = instances(all, container);
    let Some(current) = list.first().copied() else {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
        )));
    };
    if !previous {
        return Ok(current);
    }
    list.iter().skip(1).copied().find(|c| c.is_exited()).ok_or_else(|| {
        ApiError::bad_request(format!("previous terminated container \"{container}\" in pod \"{pod}\" not found"))
    })
}

/// The running instance `exec` runs in.
pub fn exec_instance<'a>(all: &'a [ContainerInfo], container: &str) -> Result<&'a ContainerInfo, ApiError> {
    instances(all, container)
        .first()
        .copied()
        .filter(|c| c.is_running())
        .ok_or_else(|| ApiError::new(404, "NotFound", format!("container not found (\"{container}\")")))
}

/// The pod's entry, or 404; and the container must be in its spec, or 404.
pub fn bound_container(pods: &BoundPods, namespace: &str, pod: &str, container: &str) -> Result<BoundPod, ApiError> {
    let entry = pods.get(namespace, pod).ok_or_else(|| ApiError::not_found("", "pods", pod))?;
    if !entry.containers.iter().any(|c| c == container) {
        return Err(ApiError::new(404, "NotFound", format!("container \"{container}\" not found in pod \"{pod}\"")));
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ContainerState;
    use k8s_openapi::jiff::Timestamp;

    fn info(id: &str, name: &str, attempt: u32, running: bool) -> ContainerInfo {
        let t = Timestamp::from_second(1_700_000_000 + i64::from(attempt)).expect("t");
        ContainerInfo {
            id: id.into(),
            pod_uid: "u".into(),
            name: name.into(),
            attempt,
            image: "busybox".into(),
            image_id: "sha256:0".into(),
            hash: 0,
            created_at: t,
            state: if running {
                ContainerState::Running { started_at: t }
            } else {
                ContainerState::Exited {
                    exit_code: 1,
                    reason: None,
                    message: None,
                    started_at: Some(t),
                    finished_at: t,
                    oom: false,
                }
            },
        }
    }

    #[test]
    fn picks_instances() {
        let all = vec![
            info("a0", "app", 0, false),
            info("a2", "app", 2, true),
            info("a1", "app", 1, false),
            info("s0", "side", 0, true),
        ];
        let id = |r: Result<&ContainerInfo, ApiError>| r.map(|c| c.id.clone()).map_err(|e| (e.code, e.message));
        assert_eq!(id(log_instance(&all, "p", "app", false)), Ok("a2".into()));
        assert_eq!(id(log_instance(&all, "p", "app", true)), Ok("a1".into()));
        assert_eq!(
            id(log_instance(&all, "p", "side", true)),
            Err((400, "previous terminated container \"side\" in pod \"p\" not found".into()))
        );
        assert_eq!(
            id(log_instance(&all, "p", "none", false)),
            Err((400, "container \"none\" in pod \"p\" is waiting to start: ContainerCreating".into()))
        );
        assert_eq!(id(exec_instance(&all, "app")), Ok("a2".into()));
        let done = vec![info("b0", "job", 0, false)];
        assert_eq!(id(log_instance(&done, "p", "job", false)), Ok("b0".into()));
        assert_eq!(id(exec_instance(&done, "job")), Err((404, "container not found (\"job\")".into())));
    }

    #[test]
    fn bound_pods() {
        let pods = BoundPods::default();
        let entry = |uid: &str| BoundPod { uid: uid.into(), containers: vec!["app".into(), "init".into()] };
        pods.set("ns", "p", entry("u1"));
        pods.set("ns", "q", entry("u2"));
        assert_eq!(bound_container(&pods, "ns", "p", "init").map(|p| p.uid), Ok("u1".into()));
        let err = |r: Result<BoundPod, ApiError>| r.map_err(|e| (e.code, e.message)).map(|p| p.uid);
        assert_eq!(
            err(bound_container(&pods, "ns", "p", "x")),
            Err((404, "container \"x\" not found in pod \"p\"".into()))
        );
        assert_eq!(err(bound_container(&pods, "other", "p", "app")), Err((404, "pods \"p\" not found".into())));
        // A pod recreated under the same name: removing the old UID keeps the new one.
        pods.set("ns", "p", entry("u3"));
        pods.remove_uid("u1");
        assert_eq!(pods.get("ns", "p").map(|p| p.uid), Some("u3".into()));
        pods.retain_uids(|u| u == "u3");
        assert_eq!(pods.get("ns", "q"), None);
    }

    #[test]
    fn entry_of_pod() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"containers": [{"name": "app"}], "initContainers": [{"name": "init"}]}
        }))
        .expect("pod");
        assert_eq!(
            BoundPod::of(&pod),
            Some((
                "ns".into(),
                "p".into(),
                BoundPod { uid: "u".into(), containers: vec!["app".into(), "init".into()] }
            ))
        );
    }
}
