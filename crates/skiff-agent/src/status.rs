//! The pure pod status the agent writes to `pods/status`: phase (`getPhase` in
//! `pkg/kubelet/kubelet_pods.go`), container statuses (`convertToAPIContainerStatuses`) and the
//! kubelet's conditions (`pkg/kubelet/status/generate.go`).

use k8s_openapi::api::core::v1::{
    Container, ContainerState as ApiState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::observed::ObservedPod;
use crate::plan::{is_sidecar, pod_restart_policy};
use crate::probe::{ProbeKind, ProbeResult, ProbeResults};
use crate::runtime::{ContainerInfo, ContainerState};

/// The prefix of `containerID`s.
pub const CONTAINER_ID_SCHEME: &str = "skiff://";

/// The conditions the kubelet owns (the others, e.g. `DisruptionTarget` or readiness gates, are
/// kept from the previous status).
const OWNED: [&str; 5] = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"];

fn api_state(info: &ContainerInfo) -> ApiState {
    match &info.state {
        ContainerState::Created => ApiState {
            waiting: Some(ContainerStateWaiting { reason: Some("ContainerCreating".into()), message: None }),
            ..ApiState::default()
        },
        ContainerState::Running { started_at } => ApiState {
            running: Some(ContainerStateRunning { started_at: Some(Time(*started_at)) }),
            ..ApiState::default()
        },
        ContainerState::Exited { exit_code, reason, message, started_at, finished_at, oom } => {
            let reason = if *oom {
                "OOMKilled".to_string()
            } else if let Some(r) = reason {
                r.clone()
            } else if *exit_code == 0 {
                "Completed".to_string()
            } else {
                "Error".to_string()
            };
            ApiState {
                terminated: Some(ContainerStateTerminated {
                    container_id: Some(format!("{CONTAINER_ID_SCHEME}{}", info.id)),
                    exit_code: *exit_code,
                    finished_at: Some(Time(*finished_at)),
                    message: message.clone().filter(|m| !m.is_empty()),
                    reason: Some(reason),
                    signal: None,
                    started_at: started_at.map(Time),
                }),
                ..ApiState::default()
            }
        }
    }
}

fn waiting(reason: &str, message: Option<String>) -> ApiState {
    ApiState {
        waiting: Some(ContainerStateWaiting { reason: Some(reason.to_string()), message }),
        ..ApiState::default()
    }
}

/// The status of one container (`init`: from `spec.initContainers`).
fn container_status(
    c: &Container,
    init: bool,
    observed: &ObservedPod,
    probes: &ProbeResults,
    old: Option<&ContainerStatus>,
    default_reason: &str,
) -> ContainerStatus {
    let instances = observed.instances(&c.name);
    let image = c.image.clone().unwrap_or_default();
    let pending = observed.waiting.get(&c.name);
    let Some(latest) = instances.first() else {
        if let Some(old) = old.filter(|o| o.state.as_ref().is_some_and(|s| s.terminated.is_some())) {
            return old.clone();
        }
        let (reason, message) =
            pending.map_or((default_reason, None), |w| (w.reason.as_str(), Some(w.message.clone())));
        return ContainerStatus {
            name: c.name.clone(),
            image,
            image_id: String::new(),
            state: Some(waiting(reason, message)),
            last_state: Some(old.and_then(|o| o.last_state.clone()).unwrap_or_default()),
            restart_count: old.map_or(0, |o| o.restart_count),
            ready: false,
            started: Some(false),
            ..ContainerStatus::default()
        };
    };
    let mut state = api_state(latest);
    let mut last_state = instances.get(1).map(|i| api_state(i)).unwrap_or_default();
    if latest.is_exited()
        && let Some(w) = pending
    {
        // Exited and held back (back-off, pull error): waiting, the exit becomes lastState.
        last_state = state;
        state = waiting(&w.reason, Some(w.message.clone()));
    }
    let running = latest.is_running();
    let started = running
        && (c.startup_probe.is_none() || probes.get(&latest.id, ProbeKind::Startup) == Some(ProbeResult::Success));
    let ready = if init && !is_sidecar(c) {
        latest.exit().is_some_and(|(code, _)| code == 0)
    } else {
        started
            && (c.readiness_probe.is_none()
                || probes.get(&latest.id, ProbeKind::Readiness) == Some(ProbeResult::Success))
    };
    ContainerStatus {
        name: c.name.clone(),
        image,
        image_id: latest.image_id.clone(),
        container_id: Some(format!("{CONTAINER_ID_SCHEME}{}", latest.id)),
        state: Some(state),
        last_state: Some(last_state),
        restart_count: latest.attempt as i32,
        ready,
        started: Some(started),
        ..ContainerStatus::default()
    }
}

fn find<'a>(statuses: &'a [ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    statuses.iter().find(|s| s.name == name)
}

fn is_running(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|st| st.running.is_some())
}

fn terminated(s: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    s.state.as_ref().and_then(|st| st.terminated.as_ref())
}

fn last_terminated(s: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    s.last_state.as_ref().and_then(|st| st.terminated.as_ref())
}

fn is_waiting(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|st| st.waiting.is_some())
}

/// Whether any regular container has started at some point (running, exited, or waiting after an
/// exit).
pub fn any_regular_started(spec: &PodSpec, statuses: &[ContainerStatus]) -> bool {
    spec.containers
        .iter()
        .filter_map(|c| find(statuses, &c.name))
        .any(|s| is_running(s) || terminated(s).is_some() || last_terminated(s).is_some())
}

/// The pod phase from its container statuses, as upstream's `getPhase`.
pub fn get_phase(
    spec: &PodSpec,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    pod_is_terminal: bool,
    has_initialized: bool,
) -> &'static str {
    let init = spec.init_containers.as_deref().unwrap_or(&[]);
    let (mut pending_init, mut pending_sidecars, mut failed_init) = (0, 0, 0);
    let (mut unknown, mut running, mut waiting_n, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in init {
        let s = find(init_statuses, &c.name);
        if is_sidecar(c) {
            match s {
                None => unknown += 1,
                Some(s) if is_running(s) => {
                    if s.started != Some(true) {
                        pending_sidecars += 1;
                    }
                    running += 1;
                }
                Some(s) if terminated(s).is_some() => {}
                Some(s) if is_waiting(s) => {
                    if last_terminated(s).is_none() {
                        pending_sidecars += 1;
                        waiting_n += 1;
                    }
                }
                Some(_) => {
                    pending_sidecars += 1;
                    unknown += 1;
                }
            }
            continue;
        }
        match s {
            None => pending_init += 1,
            Some(s) if is_running(s) => pending_init += 1,
            Some(s) if terminated(s).is_some() => {
                if terminated(s).is_some_and(|t| t.exit_code != 0) {
                    failed_init += 1;
                }
            }
            Some(s) if is_waiting(s) => match last_terminated(s) {
                Some(t) if t.exit_code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            },
            Some(_) => pending_init += 1,
        }
    }
    for c in &spec.containers {
        match find(statuses, &c.name) {
            None => unknown += 1,
            Some(s) if is_running(s) => running += 1,
            Some(s) if terminated(s).is_some() => {
                stopped += 1;
                if terminated(s).is_some_and(|t| t.exit_code == 0) {
                    succeeded += 1;
                }
            }
            Some(s) if is_waiting(s) => {
                if last_terminated(s).is_some() {
                    stopped += 1;
                } else {
                    waiting_n += 1;
                }
            }
            Some(_) => unknown += 1,
        }
    }
    let policy = pod_restart_policy(spec);
    if failed_init > 0 && policy == "Never" {
        return "Failed";
    }
    if pending_init > 0 || (pending_sidecars > 0 && !has_initialized) || waiting_n > 0 {
        return "Pending";
    }
    if running > 0 && unknown == 0 {
        return "Running";
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if pod_is_terminal {
            return if stopped == succeeded { "Succeeded" } else { "Failed" };
        }
        if policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

fn condition(type_: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: type_.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        reason: reason.map(str::to_string),
        message,
        ..PodCondition::default()
    }
}

/// `[a b]`, as Go prints a `[]string`.
fn go_list(names: &[String]) -> String {
    format!("[{}]", names.join(" "))
}

/// The `Initialized` condition.
pub fn initialized_condition(
    spec: &PodSpec,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    phase: &str,
) -> PodCondition {
    let init = spec.init_containers.as_deref().unwrap_or(&[]);
    if init.is_empty() || any_regular_started(spec, statuses) {
        return condition("Initialized", true, None, None);
    }
    let (mut unknown, mut incomplete) = (Vec::new(), Vec::new());
    for c in init {
        match find(init_statuses, &c.name) {
            None => unknown.push(c.name.clone()),
            Some(s) if is_sidecar(c) => {
                if s.started != Some(true) {
                    incomplete.push(c.name.clone());
                }
            }
            Some(s) => {
                if terminated(s).is_none_or(|t| t.exit_code != 0) {
                    incomplete.push(c.name.clone());
                }
            }
        }
    }
    if phase == "Succeeded" && unknown.is_empty() {
        return condition("Initialized", true, Some("PodCompleted"), None);
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!("containers with unknown status: {}", go_list(&unknown)));
    }
    if !incomplete.is_empty() {
        messages.push(format!("containers with incomplete status: {}", go_list(&incomplete)));
    }
    if messages.is_empty() {
        condition("Initialized", true, None, None)
    } else {
        condition("Initialized", false, Some("ContainersNotInitialized"), Some(messages.join(", ")))
    }
}

/// The `ContainersReady` condition.
pub fn containers_ready_condition(
    spec: &PodSpec,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    phase: &str,
) -> PodCondition {
    let (mut unknown, mut unready) = (Vec::new(), Vec::new());
    let sidecars = spec.init_containers.iter().flatten().filter(|c| is_sidecar(c)).map(|c| (c, init_statuses));
    for (c, list) in sidecars.chain(spec.containers.iter().map(|c| (c, statuses))) {
        match find(list, &c.name) {
            None => unknown.push(c.name.clone()),
            Some(s) if !s.ready => unready.push(c.name.clone()),
            Some(_) => {}
        }
    }
    match phase {
        "Succeeded" if unknown.is_empty() => return condition("ContainersReady", false, Some("PodCompleted"), None),
        "Failed" => return condition("ContainersReady", false, Some("PodFailed"), None),
        _ => {}
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!("containers with unknown status: {}", go_list(&unknown)));
    }
    if !unready.is_empty() {
        messages.push(format!("containers with unready status: {}", go_list(&unready)));
    }
    if messages.is_empty() {
        condition("ContainersReady", true, None, None)
    } else {
        condition("ContainersReady", false, Some("ContainersNotReady"), Some(messages.join(", ")))
    }
}

/// The `Ready` condition: `ContainersReady` and every readiness gate True.
pub fn ready_condition(
    spec: &PodSpec,
    containers_ready: &PodCondition,
    old_conditions: &[PodCondition],
) -> PodCondition {
    if containers_ready.status != "True" {
        return PodCondition { type_: "Ready".into(), ..containers_ready.clone() };
    }
    let mut messages = Vec::new();
    for gate in spec.readiness_gates.iter().flatten() {
        match old_conditions.iter().find(|c| c.type_ == gate.condition_type) {
            None => messages.push(format!(
                "corresponding condition of pod readiness gate \"{}\" does not exist.",
                gate.condition_type
            )),
            Some(c) if c.status != "True" => messages.push(format!(
                "the status of pod readiness gate \"{}\" is not \"True\", but {}",
                gate.condition_type, c.status
            )),
            Some(_) => {}
        }
    }
    if messages.is_empty() {
        condition("Ready", true, None, None)
    } else {
        condition("Ready", false, Some("ReadinessGatesNotReady"), Some(messages.join(", ")))
    }
}

/// The full status of `pod`, from what the runtime shows and the probe results. Fields the agent
/// does not own (`qosClass`, `nominatedNodeName`, `reason`, `message`, foreign conditions) are kept.
pub fn pod_status(pod: &Pod, observed: &ObservedPod, probes: &ProbeResults, now: Timestamp) -> PodStatus {
    let default_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&default_spec);
    let old = pod.status.clone().unwrap_or_default();
    let old_init = old.init_container_statuses.clone().unwrap_or_default();
    let old_main = old.container_statuses.clone().unwrap_or_default();
    let old_conditions = old.conditions.clone().unwrap_or_default();
    let init = spec.init_containers.as_deref().unwrap_or(&[]);
    let default_reason = if init.is_empty() { "ContainerCreating" } else { "PodInitializing" };

    let init_statuses: Vec<ContainerStatus> = init
        .iter()
        .map(|c| container_status(c, true, observed, probes, find(&old_init, &c.name), default_reason))
        .collect();
    let statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(c, false, observed, probes, find(&old_main, &c.name), default_reason))
        .collect();

    let was_initialized = old_conditions.iter().any(|c| c.type_ == "Initialized" && c.status == "True");
    let has_initialized = was_initialized || any_regular_started(spec, &statuses);
    let pod_is_terminal =
        pod.metadata.deletion_timestamp.is_some() && !observed.any_running() && !observed.containers.is_empty();
    let old_phase = old.phase.as_deref().unwrap_or("Pending");
    let phase = if old_phase == "Succeeded" || old_phase == "Failed" {
        // A terminal phase never changes.
        if old_phase == "Succeeded" { "Succeeded" } else { "Failed" }
    } else {
        get_phase(spec, &init_statuses, &statuses, pod_is_terminal, has_initialized)
    };

    let containers_ready = containers_ready_condition(spec, &init_statuses, &statuses, phase);
    let scheduled = old_conditions
        .iter()
        .find(|c| c.type_ == "PodScheduled")
        .cloned()
        .unwrap_or_else(|| condition("PodScheduled", true, None, None));
    let mut conditions: Vec<PodCondition> =
        old_conditions.iter().filter(|c| !OWNED.contains(&c.type_.as_str())).cloned().collect();
    let generation = pod.metadata.generation;
    for mut c in [
        condition("PodReadyToStartContainers", observed.sandbox_ready(), None, None),
        initialized_condition(spec, &init_statuses, &statuses, phase),
        ready_condition(spec, &containers_ready, &old_conditions),
        containers_ready,
    ] {
        let prior = old_conditions.iter().find(|o| o.type_ == c.type_);
        c.last_transition_time = match prior {
            Some(o) if o.status == c.status && o.last_transition_time.is_some() => o.last_transition_time.clone(),
            _ => Some(Time(now)),
        };
        c.observed_generation = generation;
        conditions.push(c);
    }
    conditions.push(scheduled);

    let host_ips = &observed.host_ips;
    let pod_ip = observed.sandbox.as_ref().and_then(|s| s.ip.clone()).or(old.pod_ip.clone());
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: host_ips.first().cloned().or(old.host_ip.clone()),
        host_ips: if host_ips.is_empty() {
            old.host_ips.clone()
        } else {
            Some(host_ips.iter().map(|ip| HostIP { ip: ip.clone() }).collect())
        },
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time: old.start_time.clone().or(Some(Time(now))),
        init_container_statuses: if init.is_empty() { None } else { Some(init_statuses) },
        container_statuses: Some(statuses),
        observed_generation: generation,
        ..old
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::Waiting;
    use crate::plan::container_hash;
    use crate::runtime::SandboxInfo;
    use serde_json::{Value, json};

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_750_000_000 + s).expect("time")
    }

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).expect("pod")
    }

    fn base(policy: &str, init: Value, containers: Value) -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1", "generation": 2},
            "spec": {"restartPolicy": policy, "initContainers": init, "containers": containers, "nodeName": "n1"},
            "status": {"phase": "Pending", "qosClass": "BestEffort",
                "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}]},
        })
    }

    fn c(name: &str) -> Value {
        json!({"name": name, "image": "busybox:1"})
    }

    fn info(name: &str, attempt: u32, state: ContainerState) -> ContainerInfo {
        let cont: Container = serde_json::from_value(c(name)).expect("c");
        ContainerInfo {
            id: format!("{name}{attempt}"),
            pod_uid: "u1".into(),
            name: name.into(),
            attempt,
            image: "busybox:1".into(),
            image_id: "docker.io/library/busybox@sha256:1".into(),
            hash: container_hash(&cont),
            created_at: t(attempt as i64),
            state,
        }
    }

    fn run(name: &str, attempt: u32) -> ContainerInfo {
        info(name, attempt, ContainerState::Running { started_at: t(10) })
    }

    fn exit(name: &str, attempt: u32, code: i32) -> ContainerInfo {
        info(
            name,
            attempt,
            ContainerState::Exited {
                exit_code: code,
                reason: None,
                message: None,
                started_at: Some(t(10)),
                finished_at: t(20),
                oom: false,
            },
        )
    }

    fn observed(containers: Vec<ContainerInfo>) -> ObservedPod {
        ObservedPod {
            sandbox: Some(SandboxInfo {
                id: "sb".into(),
                pod_uid: "u1".into(),
                name: "web".into(),
                namespace: "ns".into(),
                ip: Some("10.88.0.2".into()),
                ready: true,
                created_at: t(0),
            }),
            containers,
            waiting: Default::default(),
            host_ips: vec!["192.168.1.10".into()],
        }
    }

    fn to_json(s: &PodStatus) -> Value {
        serde_json::to_value(s).expect("json")
    }

    fn cond(s: &Value, type_: &str) -> Value {
        s["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .find(|c| c["type"] == type_)
            .cloned()
            .unwrap_or(Value::Null)
    }

    #[test]
    fn running_ready_pod_shape() {
        let p = pod(base("Always", json!([]), json!([c("app")])));
        let s = to_json(&pod_status(&p, &observed(vec![run("app", 0)]), &ProbeResults::default(), t(30)));
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["hostIP"], "192.168.1.10");
        assert_eq!(s["hostIPs"], json!([{"ip": "192.168.1.10"}]));
        assert_eq!(s["podIP"], "10.88.0.2");
        assert_eq!(s["podIPs"], json!([{"ip": "10.88.0.2"}]));
        assert_eq!(s["qosClass"], "BestEffort");
        assert_eq!(s["observedGeneration"], 2);
        assert_eq!(s["startTime"], "2025-06-15T15:07:10Z");
        let types: Vec<&str> =
            s["conditions"].as_array().expect("c").iter().filter_map(|c| c["type"].as_str()).collect();
        assert_eq!(types, ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]);
        assert_eq!(
            cond(&s, "Ready"),
            json!({"type": "Ready", "status": "True", "lastTransitionTime": "2025-06-15T15:07:10Z", "observedGeneration": 2})
        );
        assert_eq!(cond(&s, "PodScheduled")["lastTransitionTime"], "2025-01-01T00:00:00Z");
        assert_eq!(
            s["containerStatuses"][0],
            json!({"name": "app", "image": "busybox:1", "imageID": "docker.io/library/busybox@sha256:1", "containerID": "skiff://app0",
                "state": {"running": {"startedAt": "2025-06-15T15:06:50Z"}}, "lastState": {}, "ready": true, "restartCount": 0, "started": true})
        );
        assert!(s.get("initContainerStatuses").is_none());
    }

    #[test]
    fn readiness_probe_gates_ready() {
        let p = pod(base(
            "Always",
            json!([]),
            json!([{"name": "app", "image": "busybox:1", "readinessProbe": {"exec": {"command": ["true"]}}}]),
        ));
        let mut probes = ProbeResults::default();
        let s = to_json(&pod_status(&p, &observed(vec![run("app", 0)]), &probes, t(30)));
        assert_eq!(s["containerStatuses"][0]["ready"], false);
        assert_eq!(
            cond(&s, "ContainersReady"),
            json!({"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady", "message": "containers with unready status: [app]",
                "lastTransitionTime": "2025-06-15T15:07:10Z", "observedGeneration": 2})
        );
        assert_eq!(cond(&s, "Ready")["reason"], "ContainersNotReady");
        probes.set("app0", ProbeKind::Readiness, ProbeResult::Success);
        let s = to_json(&pod_status(&p, &observed(vec![run("app", 0)]), &probes, t(30)));
        assert_eq!(cond(&s, "Ready")["status"], "True");
    }

    #[test]
    fn waiting_reasons() {
        let p = pod(base("Always", json!([]), json!([c("app")])));
        let s = to_json(&pod_status(&p, &observed(vec![]), &ProbeResults::default(), t(30)));
        assert_eq!(s["phase"], "Pending");
        assert_eq!(s["containerStatuses"][0]["state"], json!({"waiting": {"reason": "ContainerCreating"}}));
        assert_eq!(s["containerStatuses"][0]["imageID"], "");
        let mut o = observed(vec![]);
        o.waiting.insert("app".into(), Waiting::new("ErrImagePull", "pull failed"));
        let s = to_json(&pod_status(&p, &o, &ProbeResults::default(), t(30)));
        assert_eq!(
            s["containerStatuses"][0]["state"],
            json!({"waiting": {"reason": "ErrImagePull", "message": "pull failed"}})
        );
        assert_eq!(s["phase"], "Pending");

        // Crash loop: waiting with the last exit, restartCount from the attempt, phase Running.
        let mut o = observed(vec![exit("app", 0, 1), exit("app", 1, 1)]);
        o.waiting.insert(
            "app".into(),
            Waiting::new("CrashLoopBackOff", "back-off 10s restarting failed container=app pod=web_ns(u1)"),
        );
        let s = to_json(&pod_status(&p, &o, &ProbeResults::default(), t(30)));
        let cs = &s["containerStatuses"][0];
        assert_eq!(cs["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(cs["lastState"]["terminated"]["reason"], "Error");
        assert_eq!(cs["lastState"]["terminated"]["containerID"], "skiff://app1");
        assert_eq!(cs["restartCount"], 1);
        assert_eq!(cs["containerID"], "skiff://app1");
        assert_eq!(s["phase"], "Running");
        assert_eq!(cond(&s, "Ready")["message"], "containers with unready status: [app]");
    }

    #[test]
    fn phases_by_policy() {
        // (policy, exit code, phase)
        let cases = [
            ("Always", 0, "Running"),
            ("Always", 1, "Running"),
            ("OnFailure", 0, "Succeeded"),
            ("OnFailure", 1, "Running"),
            ("Never", 1, "Failed"),
            ("Never", 0, "Succeeded"),
        ];
        for (policy, code, want) in cases {
            let p = pod(base(policy, json!([]), json!([c("app")])));
            let s = to_json(&pod_status(&p, &observed(vec![exit("app", 0, code)]), &ProbeResults::default(), t(30)));
            assert_eq!(s["phase"], want, "{policy} {code}");
            let reason = s["containerStatuses"][0]["state"]["terminated"]["reason"].clone();
            assert_eq!(reason, if code == 0 { "Completed" } else { "Error" });
            if want == "Succeeded" {
                assert_eq!(
                    cond(&s, "ContainersReady"),
                    json!({"type": "ContainersReady", "status": "False", "reason": "PodCompleted",
                    "lastTransitionTime": "2025-06-15T15:07:10Z", "observedGeneration": 2})
                );
            }
            if want == "Failed" {
                assert_eq!(cond(&s, "Ready")["reason"], "PodFailed");
            }
        }
        // OOM.
        let p = pod(base("Never", json!([]), json!([c("app")])));
        let oom = info(
            "app",
            0,
            ContainerState::Exited {
                exit_code: 137,
                reason: None,
                message: None,
                started_at: None,
                finished_at: t(5),
                oom: true,
            },
        );
        let s = to_json(&pod_status(&p, &observed(vec![oom]), &ProbeResults::default(), t(30)));
        assert_eq!(s["containerStatuses"][0]["state"]["terminated"]["reason"], "OOMKilled");
    }

    #[test]
    fn init_container_conditions() {
        // init1 fails under Always: Pending, incomplete [init1 init2], app waits PodInitializing.
        let p = pod(base("Always", json!([c("init1"), c("init2")]), json!([c("app")])));
        let mut o = observed(vec![exit("init1", 0, 1), exit("init1", 1, 1)]);
        o.waiting.insert("init1".into(), Waiting::new("CrashLoopBackOff", "x"));
        let s = to_json(&pod_status(&p, &o, &ProbeResults::default(), t(30)));
        assert_eq!(s["phase"], "Pending");
        assert_eq!(cond(&s, "Initialized")["reason"], "ContainersNotInitialized");
        assert_eq!(cond(&s, "Initialized")["message"], "containers with incomplete status: [init1 init2]");
        assert_eq!(s["initContainerStatuses"][1]["state"], json!({"waiting": {"reason": "PodInitializing"}}));
        assert_eq!(s["containerStatuses"][0]["state"], json!({"waiting": {"reason": "PodInitializing"}}));
        assert_eq!(s["initContainerStatuses"][0]["restartCount"], 1);

        // init2 fails under Never: Failed, incomplete [init2].
        let p = pod(base("Never", json!([c("init1"), c("init2")]), json!([c("app")])));
        let s = to_json(&pod_status(
            &p,
            &observed(vec![exit("init1", 0, 0), exit("init2", 0, 1)]),
            &ProbeResults::default(),
            t(30),
        ));
        assert_eq!(s["phase"], "Failed");
        assert_eq!(cond(&s, "Initialized")["message"], "containers with incomplete status: [init2]");
        assert_eq!(s["initContainerStatuses"][0]["ready"], true);
        assert_eq!(s["initContainerStatuses"][1]["ready"], false);

        // All done: init statuses ready and exited 0, app running.
        let p = pod(base("Always", json!([c("init1"), c("init2")]), json!([c("app")])));
        let s = to_json(&pod_status(
            &p,
            &observed(vec![exit("init1", 0, 0), exit("init2", 0, 0), run("app", 0)]),
            &ProbeResults::default(),
            t(30),
        ));
        assert_eq!(s["phase"], "Running");
        assert_eq!(cond(&s, "Initialized")["status"], "True");
        assert_eq!(s["initContainerStatuses"][1]["state"]["terminated"]["reason"], "Completed");

        // Never + all succeeded: Initialized True.
        let p = pod(base("Never", json!([c("init1")]), json!([c("app")])));
        let s = to_json(&pod_status(
            &p,
            &observed(vec![exit("init1", 0, 0), exit("app", 0, 0)]),
            &ProbeResults::default(),
            t(30),
        ));
        assert_eq!(s["phase"], "Succeeded");
        assert_eq!(cond(&s, "Initialized")["status"], "True");
    }

    #[test]
    fn sidecar_counts_for_readiness() {
        let side = json!({"name": "side", "image": "busybox:1", "restartPolicy": "Always"});
        let p = pod(base("Always", json!([side]), json!([c("app")])));
        let s = to_json(&pod_status(&p, &observed(vec![run("side", 0)]), &ProbeResults::default(), t(30)));
        assert_eq!(s["phase"], "Pending");
        assert_eq!(s["initContainerStatuses"][0]["ready"], true);
        assert_eq!(cond(&s, "Initialized")["status"], "True");
        let s = to_json(&pod_status(
            &p,
            &observed(vec![exit("side", 0, 1), run("app", 0)]),
            &ProbeResults::default(),
            t(30),
        ));
        assert_eq!(cond(&s, "ContainersReady")["message"], "containers with unready status: [side]");
    }

    #[test]
    fn transitions_keep_times_and_terminal_phase_sticks() {
        let mut v = base("Always", json!([]), json!([c("app")]));
        v["status"]["conditions"] = json!([
            {"type": "Ready", "status": "True", "lastTransitionTime": "2025-01-02T00:00:00Z"},
            {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"},
        ]);
        let s = to_json(&pod_status(&pod(v.clone()), &observed(vec![run("app", 0)]), &ProbeResults::default(), t(30)));
        assert_eq!(cond(&s, "Ready")["lastTransitionTime"], "2025-01-02T00:00:00Z");
        assert_eq!(s["conditions"][0]["type"], "DisruptionTarget", "foreign conditions come first");
        v["status"]["phase"] = json!("Failed");
        let s = to_json(&pod_status(&pod(v), &observed(vec![run("app", 0)]), &ProbeResults::default(), t(30)));
        assert_eq!(s["phase"], "Failed");
    }

    #[test]
    fn deleted_pod_is_terminal() {
        let mut v = base("Always", json!([]), json!([c("app")]));
        v["metadata"]["deletionTimestamp"] = json!("2025-06-15T15:07:00Z");
        let s = to_json(&pod_status(
            &pod(v.clone()),
            &observed(vec![exit("app", 0, 143)]),
            &ProbeResults::default(),
            t(30),
        ));
        assert_eq!(s["phase"], "Failed");
        let s = to_json(&pod_status(&pod(v), &observed(vec![exit("app", 0, 0)]), &ProbeResults::default(), t(30)));
        assert_eq!(s["phase"], "Succeeded");
    }
}
