//! The pure sync plan of one pod: from the pod spec, what the runtime shows, the back-off table and
//! the probe results, what to do next (upstream's `computePodActions` in
//! `pkg/kubelet/kuberuntime/kuberuntime_manager.go`). The executor ([`crate::agent`]) carries it out.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::jiff::Timestamp;

use crate::backoff::Backoff;
use crate::observed::{ObservedPod, Waiting};
use crate::probe::{ProbeKind, ProbeResult, ProbeResults};
use crate::runtime::ContainerInfo;

/// Which list a container comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerKind {
    Init,
    Regular,
}

/// Start `spec.<kind>[index]` as instance `attempt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartContainer {
    pub kind: ContainerKind,
    pub index: usize,
    pub name: String,
    pub attempt: u32,
}

/// Why a running container is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillReason {
    LivenessFailed,
    StartupFailed,
    SpecChanged,
    /// A running container whose name is no longer in the spec.
    NotInSpec,
}

/// Stop one running container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillContainer {
    pub id: String,
    pub name: String,
    pub reason: KillReason,
    /// The `Killing` event's message ("Container app failed liveness probe, will be restarted").
    pub message: String,
    /// A probe's `terminationGracePeriodSeconds`, overriding the pod's.
    pub grace_override: Option<i64>,
}

/// Record a restart in the back-off table (`key`, the exit it follows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackoffUpdate {
    pub key: String,
    pub event_time: Timestamp,
}

/// What one sync does, in order: kill the pod (everything and the sandbox), create a sandbox, kill
/// containers, then start containers. `waiting` are containers held back (crash-loop back-off).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodActions {
    /// Stop every running container, then tear the sandbox down (its exited containers go with it).
    pub kill_pod: bool,
    /// The pod has finished but its terminal phase is not reported yet: stop what still runs
    /// (sidecars) and keep the sandbox and the exited containers, so the status written next
    /// carries their final states. The sandbox goes once the phase is terminal.
    pub finish_pod: bool,
    pub create_sandbox: bool,
    pub kill: Vec<KillContainer>,
    pub start: Vec<StartContainer>,
    pub waiting: Vec<(String, Waiting)>,
    pub backoff_updates: Vec<BackoffUpdate>,
}

impl PodActions {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        *self == PodActions::default()
    }
}

/// The hash of the parts of a container whose change restarts it: its name and image (the only
/// mutable field that matters, as upstream hashes since 1.31).
pub fn container_hash(c: &Container) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for part in [c.name.as_str(), c.image.as_deref().unwrap_or("")] {
        for b in part.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}

/// `spec.restartPolicy`, defaulted to `Always`.
pub fn pod_restart_policy(spec: &PodSpec) -> &str {
    spec.restart_policy.as_deref().unwrap_or("Always")
}

/// A restartable init container (a native sidecar).
pub fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// Whether a regular container that exited with `exit_code` is started again: its own
/// `restartPolicy` and `restartPolicyRules` (1.35 `ContainerRestartRules`) win over the pod's.
pub fn should_restart(c: &Container, pod_policy: &str, exit_code: i32) -> bool {
    for rule in c.restart_policy_rules.iter().flatten() {
        if let Some(codes) = &rule.exit_codes {
            let listed = codes.values.iter().flatten().any(|v| *v == exit_code);
            let matches = match codes.operator.as_str() {
                "In" => listed,
                "NotIn" => !listed,
                _ => false,
            };
            if matches && rule.action == "Restart" {
                return true;
            }
        }
    }
    match c.restart_policy.as_deref().unwrap_or(pod_policy) {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// `name_namespace(uid)`, upstream's `format.Pod`.
pub fn format_pod(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.uid.as_deref().unwrap_or("")
    )
}

/// A duration as Go prints it (`10s`, `1m20s`, `5m0s`), whole seconds.
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

fn next_attempt(observed: &ObservedPod, name: &str) -> u32 {
    observed.latest(name).map_or(0, |c| c.attempt + 1)
}

/// Whether every regular container has exited and none is to be restarted: the pod is done.
pub fn pod_finished(spec: &PodSpec, observed: &ObservedPod) -> bool {
    let policy = pod_restart_policy(spec);
    !spec.containers.is_empty()
        && spec.containers.iter().all(|c| match observed.latest(&c.name).and_then(ContainerInfo::exit) {
            Some((code, _)) => !should_restart(c, policy, code),
            None => false,
        })
}

/// Whether a regular init container failed under `restartPolicy: Never` (the pod has failed).
pub fn init_failed_for_good(spec: &PodSpec, observed: &ObservedPod) -> bool {
    pod_restart_policy(spec) == "Never"
        && spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| !is_sidecar(c))
            .any(|c| observed.latest(&c.name).and_then(ContainerInfo::exit).is_some_and(|(code, _)| code != 0))
}

/// Any regular container has been created: initialization happened before.
fn any_regular_started(spec: &PodSpec, observed: &ObservedPod) -> bool {
    spec.containers.iter().any(|c| observed.latest(&c.name).is_some())
}

/// Whether the container counts as started for sidecar ordering: running and its startup probe
/// (if any) succeeded.
fn started(c: &Container, info: &ContainerInfo, probes: &ProbeResults) -> bool {
    info.is_running()
        && (c.startup_probe.is_none() || probes.get(&info.id, ProbeKind::Startup) == Some(ProbeResult::Success))
}

struct Planner<'a> {
    pod: &'a Pod,
    observed: &'a ObservedPod,
    backoff: &'a Backoff,
    now: Timestamp,
    actions: PodActions,
}

impl Planner<'_> {
    /// Starts `c` unless its last exit is still within its back-off; `skip_id` is an instance being
    /// killed this round (not an exit yet).
    fn start_or_backoff(&mut self, kind: ContainerKind, index: usize, c: &Container, skip_id: Option<&str>) {
        let uid = self.pod.metadata.uid.as_deref().unwrap_or("");
        let key = Backoff::container_key(uid, &c.name, container_hash(c));
        let last_exit = self
            .observed
            .instances(&c.name)
            .into_iter()
            .filter(|i| Some(i.id.as_str()) != skip_id)
            .find_map(|i| i.exit().map(|(_, finished)| finished));
        if let Some(finished) = last_exit {
            if self.backoff.in_backoff_since(&key, finished, self.now) {
                let message = format!(
                    "back-off {} restarting failed container={} pod={}",
                    go_duration(self.backoff.get(&key)),
                    c.name,
                    format_pod(self.pod)
                );
                self.actions.waiting.push((c.name.clone(), Waiting::new("CrashLoopBackOff", message)));
                return;
            }
            self.actions.backoff_updates.push(BackoffUpdate { key, event_time: finished });
        }
        let attempt = next_attempt(self.observed, &c.name);
        self.actions.start.push(StartContainer { kind, index, name: c.name.clone(), attempt });
    }

    /// Liveness / startup failures and spec changes of a running container: kill it, and restart
    /// it when the policy (or the spec change) says so.
    fn check_running(
        &mut self,
        kind: ContainerKind,
        index: usize,
        c: &Container,
        info: &ContainerInfo,
        probes: &ProbeResults,
        restart_on_failure: bool,
    ) {
        let (reason, mut message, restart, grace) = if info.hash != container_hash(c) {
            (KillReason::SpecChanged, format!("Container {} definition changed", c.name), true, None)
        } else if probes.get(&info.id, ProbeKind::Liveness) == Some(ProbeResult::Failure) {
            let grace = c.liveness_probe.as_ref().and_then(|p| p.termination_grace_period_seconds);
            (
                KillReason::LivenessFailed,
                format!("Container {} failed liveness probe", c.name),
                restart_on_failure,
                grace,
            )
        } else if probes.get(&info.id, ProbeKind::Startup) == Some(ProbeResult::Failure) {
            let grace = c.startup_probe.as_ref().and_then(|p| p.termination_grace_period_seconds);
            (KillReason::StartupFailed, format!("Container {} failed startup probe", c.name), restart_on_failure, grace)
        } else {
            return;
        };
        if restart {
            message.push_str(", will be restarted");
        }
        self.actions.kill.push(KillContainer {
            id: info.id.clone(),
            name: c.name.clone(),
            reason,
            message,
            grace_override: grace,
        });
        if restart {
            self.start_or_backoff(kind, index, c, Some(&info.id));
        }
    }
}

/// The next actions for `pod` given what the runtime shows (see the module docs).
pub fn compute_pod_actions(
    pod: &Pod,
    observed: &ObservedPod,
    backoff: &Backoff,
    probes: &ProbeResults,
    now: Timestamp,
) -> PodActions {
    let default_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&default_spec);
    let mut p = Planner { pod, observed, backoff, now, actions: PodActions::default() };
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let terminal = phase == "Succeeded" || phase == "Failed";
    if pod.metadata.deletion_timestamp.is_some() || terminal {
        // Nothing starts again: stop what still runs and release the sandbox.
        p.actions.kill_pod = observed.any_running() || observed.sandbox_ready();
        return p.actions;
    }
    if pod_finished(spec, observed) || init_failed_for_good(spec, observed) {
        p.actions.finish_pod = observed.any_running();
        return p.actions;
    }
    let policy = pod_restart_policy(spec);
    let init = spec.init_containers.as_deref().unwrap_or(&[]);

    if !observed.sandbox_ready() {
        if policy == "Never" && !observed.containers.is_empty() {
            // Containers ran in a sandbox that is gone; a Never pod does not run them again.
            p.actions.kill_pod = observed.any_running() || observed.sandbox.is_some();
            return p.actions;
        }
        p.actions.kill_pod = observed.any_running() || observed.sandbox.is_some();
        p.actions.create_sandbox = true;
        match init.first() {
            Some(first) => p.actions.start.push(StartContainer {
                kind: ContainerKind::Init,
                index: 0,
                name: first.name.clone(),
                attempt: next_attempt(observed, &first.name),
            }),
            None => {
                for (i, c) in spec.containers.iter().enumerate() {
                    p.actions.start.push(StartContainer {
                        kind: ContainerKind::Regular,
                        index: i,
                        name: c.name.clone(),
                        attempt: next_attempt(observed, &c.name),
                    });
                }
            }
        }
        return p.actions;
    }

    // Running containers the spec no longer names.
    let known = |n: &str| init.iter().chain(&spec.containers).any(|c| c.name == n);
    for info in observed.containers.iter().filter(|c| c.is_running() && !known(&c.name)) {
        p.actions.kill.push(KillContainer {
            id: info.id.clone(),
            name: info.name.clone(),
            reason: KillReason::NotInSpec,
            message: format!("Container {} is not in the pod spec", info.name),
            grace_override: None,
        });
    }

    // Init containers, in order; sidecars keep running.
    let main_started = any_regular_started(spec, observed);
    let mut initialized = true;
    for (i, c) in init.iter().enumerate() {
        let latest = observed.latest(&c.name);
        if is_sidecar(c) {
            match latest {
                None => {
                    p.actions.start.push(StartContainer {
                        kind: ContainerKind::Init,
                        index: i,
                        name: c.name.clone(),
                        attempt: 0,
                    });
                    initialized = false;
                }
                Some(info) if info.is_running() => {
                    p.check_running(ContainerKind::Init, i, c, info, probes, true);
                    if !started(c, info, probes) {
                        initialized = false;
                    }
                }
                Some(info) if info.is_exited() => {
                    p.start_or_backoff(ContainerKind::Init, i, c, None);
                    initialized = false;
                }
                Some(_) => {
                    p.start_or_backoff(ContainerKind::Init, i, c, None);
                    initialized = false;
                }
            }
            if !initialized && !main_started {
                break;
            }
            initialized = true;
            continue;
        }
        if main_started {
            continue;
        }
        match latest.map(|l| (l, l.exit())) {
            Some((_, Some((0, _)))) => continue,
            Some((_, Some(_))) => {
                // Failed: Never was handled above (the pod failed); retried with back-off.
                p.start_or_backoff(ContainerKind::Init, i, c, None);
            }
            Some((l, None)) if l.is_running() => {}
            Some(_) | None => {
                p.actions.start.push(StartContainer {
                    kind: ContainerKind::Init,
                    index: i,
                    name: c.name.clone(),
                    attempt: next_attempt(observed, &c.name),
                });
            }
        }
        initialized = false;
        break;
    }
    if !initialized {
        return p.actions;
    }

    for (i, c) in spec.containers.iter().enumerate() {
        match observed.latest(&c.name) {
            None => p.actions.start.push(StartContainer {
                kind: ContainerKind::Regular,
                index: i,
                name: c.name.clone(),
                attempt: 0,
            }),
            Some(info) if info.is_running() => {
                let restart_on_failure = c.restart_policy.as_deref().unwrap_or(policy) != "Never";
                p.check_running(ContainerKind::Regular, i, c, info, probes, restart_on_failure);
            }
            Some(info) => match info.exit() {
                Some((code, _)) if should_restart(c, policy, code) => {
                    p.start_or_backoff(ContainerKind::Regular, i, c, None)
                }
                Some(_) => {}
                None => p.start_or_backoff(ContainerKind::Regular, i, c, None),
            },
        }
    }
    p.actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{ContainerState, SandboxInfo};
    use serde_json::json;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_750_000_000 + s).expect("time")
    }

    fn pod(policy: &str, init: serde_json::Value, containers: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {"restartPolicy": policy, "initContainers": init, "containers": containers},
            "status": {"phase": "Pending"},
        }))
        .expect("pod")
    }

    fn c(name: &str) -> serde_json::Value {
        json!({"name": name, "image": "busybox:1"})
    }

    fn sandbox() -> Option<SandboxInfo> {
        Some(SandboxInfo {
            id: "sb".into(),
            pod_uid: "u1".into(),
            name: "web".into(),
            namespace: "ns".into(),
            ip: Some("10.88.0.2".into()),
            ready: true,
            created_at: t(0),
        })
    }

    fn hash(name: &str) -> u64 {
        container_hash(&serde_json::from_value(c(name)).expect("container"))
    }

    fn running(name: &str, attempt: u32) -> ContainerInfo {
        ContainerInfo {
            id: format!("{name}-{attempt}"),
            pod_uid: "u1".into(),
            name: name.into(),
            attempt,
            image: "busybox:1".into(),
            image_id: "sha".into(),
            hash: hash(name),
            created_at: t(attempt as i64),
            state: ContainerState::Running { started_at: t(attempt as i64) },
        }
    }

    fn exited(name: &str, attempt: u32, code: i32, finished: i64) -> ContainerInfo {
        ContainerInfo {
            state: ContainerState::Exited {
                exit_code: code,
                reason: None,
                message: None,
                started_at: Some(t(0)),
                finished_at: t(finished),
                oom: false,
            },
            ..running(name, attempt)
        }
    }

    fn observed(containers: Vec<ContainerInfo>) -> ObservedPod {
        ObservedPod { sandbox: sandbox(), containers, ..ObservedPod::default() }
    }

    fn start(kind: ContainerKind, index: usize, name: &str, attempt: u32) -> StartContainer {
        StartContainer { kind, index, name: name.into(), attempt }
    }

    use ContainerKind::{Init, Regular};

    #[test]
    fn new_pod_creates_sandbox_and_starts() {
        let p = pod("Always", json!([]), json!([c("a"), c("b")]));
        let got = compute_pod_actions(&p, &ObservedPod::default(), &Backoff::default(), &ProbeResults::default(), t(0));
        assert_eq!(
            got,
            PodActions {
                create_sandbox: true,
                start: vec![start(Regular, 0, "a", 0), start(Regular, 1, "b", 0)],
                ..PodActions::default()
            }
        );
        let p = pod("Always", json!([c("i1"), c("i2")]), json!([c("a")]));
        let got = compute_pod_actions(&p, &ObservedPod::default(), &Backoff::default(), &ProbeResults::default(), t(0));
        assert_eq!(got.start, vec![start(Init, 0, "i1", 0)]);
        assert!(got.create_sandbox);
    }

    #[test]
    fn restart_policies() {
        // (policy, exit code, restarted?)
        let cases = [
            ("Always", 0, true),
            ("Always", 1, true),
            ("OnFailure", 0, false),
            ("OnFailure", 2, true),
            ("Never", 1, false),
            ("Never", 0, false),
        ];
        for (policy, code, restarted) in cases {
            let p = pod(policy, json!([]), json!([c("a"), c("b")]));
            let o = observed(vec![exited("a", 0, code, 5), running("b", 0)]);
            let got = compute_pod_actions(&p, &o, &Backoff::default(), &ProbeResults::default(), t(6));
            let want = if restarted { vec![start(Regular, 0, "a", 1)] } else { vec![] };
            assert_eq!(got.start, want, "{policy} exit {code}");
            assert_eq!(got.backoff_updates.len(), usize::from(restarted));
        }
    }

    #[test]
    fn crash_loop_back_off() {
        let p = pod("Always", json!([]), json!([c("a")]));
        let key = Backoff::container_key("u1", "a", hash("a"));
        let mut b = Backoff::default();
        // First exit: restarted at once.
        let o = observed(vec![exited("a", 0, 1, 5)]);
        let got = compute_pod_actions(&p, &o, &b, &ProbeResults::default(), t(5));
        assert_eq!(got.start, vec![start(Regular, 0, "a", 1)]);
        assert_eq!(got.backoff_updates, vec![BackoffUpdate { key: key.clone(), event_time: t(5) }]);
        b.next(&key, t(5), t(5));
        // Second exit at 6: waits 10 s.
        let o = observed(vec![exited("a", 0, 1, 5), exited("a", 1, 1, 6)]);
        let got = compute_pod_actions(&p, &o, &b, &ProbeResults::default(), t(10));
        assert!(got.start.is_empty());
        assert_eq!(
            got.waiting,
            vec![(
                "a".to_string(),
                Waiting::new("CrashLoopBackOff", "back-off 10s restarting failed container=a pod=web_ns(u1)")
            )]
        );
        let got = compute_pod_actions(&p, &o, &b, &ProbeResults::default(), t(16));
        assert_eq!(got.start, vec![start(Regular, 0, "a", 2)]);
        b.next(&key, t(6), t(16));
        b.next(&key, t(6), t(16));
        b.next(&key, t(6), t(16));
        let got = compute_pod_actions(&p, &o, &b, &ProbeResults::default(), t(17));
        assert_eq!(got.waiting[0].1.message, "back-off 1m20s restarting failed container=a pod=web_ns(u1)");
    }

    #[test]
    fn liveness_and_spec_change_kill() {
        let p = pod("Always", json!([]), json!([c("a")]));
        let mut probes = ProbeResults::default();
        probes.set("a-0", ProbeKind::Liveness, ProbeResult::Failure);
        let o = observed(vec![running("a", 0)]);
        let got = compute_pod_actions(&p, &o, &Backoff::default(), &probes, t(5));
        assert_eq!(got.kill.len(), 1);
        assert_eq!(got.kill[0].message, "Container a failed liveness probe, will be restarted");
        assert_eq!(got.kill[0].reason, KillReason::LivenessFailed);
        assert_eq!(got.start, vec![start(Regular, 0, "a", 1)]);

        let never = pod("Never", json!([]), json!([c("a")]));
        let got = compute_pod_actions(&never, &o, &Backoff::default(), &probes, t(5));
        assert_eq!(got.kill[0].message, "Container a failed liveness probe");
        assert!(got.start.is_empty());

        let mut changed = running("a", 0);
        changed.hash = 7;
        let got =
            compute_pod_actions(&never, &observed(vec![changed]), &Backoff::default(), &ProbeResults::default(), t(5));
        assert_eq!(got.kill[0].message, "Container a definition changed, will be restarted");
        assert_eq!(got.start, vec![start(Regular, 0, "a", 1)]);
    }

    #[test]
    fn init_containers_in_order() {
        let p = pod("Always", json!([c("i1"), c("i2")]), json!([c("a")]));
        let b = Backoff::default();
        let r = ProbeResults::default();
        let got = compute_pod_actions(&p, &observed(vec![running("i1", 0)]), &b, &r, t(1));
        assert!(got.is_empty(), "{got:?}");
        let got = compute_pod_actions(&p, &observed(vec![exited("i1", 0, 0, 1)]), &b, &r, t(2));
        assert_eq!(got.start, vec![start(Init, 1, "i2", 0)]);
        let got = compute_pod_actions(&p, &observed(vec![exited("i1", 0, 0, 1), exited("i2", 0, 0, 2)]), &b, &r, t(3));
        assert_eq!(got.start, vec![start(Regular, 0, "a", 0)]);
        // A failing init container is retried under Always.
        let got = compute_pod_actions(&p, &observed(vec![exited("i1", 0, 1, 1)]), &b, &r, t(2));
        assert_eq!(got.start, vec![start(Init, 0, "i1", 1)]);
        // And fails the pod under Never.
        let never = pod("Never", json!([c("i1"), c("i2")]), json!([c("a")]));
        // The sandbox stays until the Failed phase is reported, so the status keeps the exit.
        let got = compute_pod_actions(&never, &observed(vec![exited("i1", 0, 1, 1)]), &b, &r, t(2));
        assert_eq!(got, PodActions::default());
        let mut failed = never.clone();
        failed.status.get_or_insert_default().phase = Some("Failed".into());
        let got = compute_pod_actions(&failed, &observed(vec![exited("i1", 0, 1, 1)]), &b, &r, t(3));
        assert_eq!(got, PodActions { kill_pod: true, ..PodActions::default() });
        // Once a regular container ran, init containers are not run again.
        let got = compute_pod_actions(&p, &observed(vec![running("a", 0)]), &b, &r, t(3));
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn sidecars_start_then_next_init() {
        let side = json!({"name": "side", "image": "busybox:1", "restartPolicy": "Always"});
        let p = pod("Never", json!([side, c("i1")]), json!([c("a")]));
        let b = Backoff::default();
        let r = ProbeResults::default();
        let got = compute_pod_actions(&p, &observed(vec![]), &b, &r, t(0));
        assert_eq!(got.start, vec![start(Init, 0, "side", 0)]);
        let got = compute_pod_actions(&p, &observed(vec![running("side", 0)]), &b, &r, t(1));
        assert_eq!(got.start, vec![start(Init, 1, "i1", 0)]);
        // A sidecar that exits is restarted even under Never, after main containers started.
        let got = compute_pod_actions(
            &p,
            &observed(vec![exited("side", 0, 1, 2), exited("i1", 0, 0, 1), running("a", 0)]),
            &b,
            &r,
            t(3),
        );
        assert_eq!(got.start, vec![start(Init, 0, "side", 1)]);
        // Main containers done under Never: the sidecar is stopped; the sandbox waits for the
        // terminal phase to be reported.
        let got = compute_pod_actions(
            &p,
            &observed(vec![running("side", 0), exited("i1", 0, 0, 1), exited("a", 0, 0, 4)]),
            &b,
            &r,
            t(5),
        );
        assert_eq!(got, PodActions { finish_pod: true, ..PodActions::default() });
    }

    #[test]
    fn deletion_and_terminal() {
        let mut p = pod("Always", json!([]), json!([c("a")]));
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(0)));
        let got = compute_pod_actions(
            &p,
            &observed(vec![running("a", 0)]),
            &Backoff::default(),
            &ProbeResults::default(),
            t(1),
        );
        assert_eq!(got, PodActions { kill_pod: true, ..PodActions::default() });
        // Nothing left to stop.
        let got = compute_pod_actions(&p, &ObservedPod::default(), &Backoff::default(), &ProbeResults::default(), t(1));
        assert!(got.is_empty());
        // Unknown running containers are killed.
        let p = pod("Always", json!([]), json!([c("a")]));
        let got = compute_pod_actions(
            &p,
            &observed(vec![running("a", 0), running("old", 0)]),
            &Backoff::default(),
            &ProbeResults::default(),
            t(1),
        );
        assert_eq!(got.kill.len(), 1);
        assert_eq!(got.kill[0].reason, KillReason::NotInSpec);
    }

    #[test]
    fn restart_rules_override() {
        let mut cont: Container = serde_json::from_value(json!({"name": "a", "restartPolicy": "Never",
            "restartPolicyRules": [{"action": "Restart", "exitCodes": {"operator": "In", "values": [42]}}]}))
        .expect("container");
        assert!(should_restart(&cont, "Always", 42));
        assert!(!should_restart(&cont, "Always", 1));
        cont.restart_policy_rules = None;
        cont.restart_policy = Some("OnFailure".into());
        assert!(!should_restart(&cont, "Always", 0));
        assert!(should_restart(&cont, "Never", 3));
    }

    #[test]
    fn go_durations() {
        let cases = [(10, "10s"), (80, "1m20s"), (300, "5m0s"), (3725, "1h2m5s")];
        for (s, want) in cases {
            assert_eq!(go_duration(Duration::from_secs(s)), want);
        }
    }
}
