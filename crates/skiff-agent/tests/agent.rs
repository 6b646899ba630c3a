//! The node agent against the real API server, in process, with the fake container runtime: node
//! registration and lease renewal, pod lifecycle by restart policy, crash-loop back-off, liveness
//! restarts, graceful deletion, and orphan cleanup.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};
use skiff_agent::agent::{Agent, AgentConfig};
use skiff_agent::fake::{Call, FakeRuntime, Run};
use skiff_agent::runtime::ContainerRuntime;
use tokio::sync::oneshot;

const NODE: &str = "node-a";
const NS: &str = "default";
const WAIT: Duration = Duration::from_secs(30);

struct Env {
    client: Client,
    runtime: Arc<FakeRuntime>,
    _server: skiff_apiserver::RunningServer,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    agent: Option<tokio::task::JoinHandle<()>>,
}

impl Env {
    /// A server and a client; the agent starts with [`Env::start_agent`] (so tests can seed the
    /// runtime first).
    async fn new() -> Env {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("tempdir");
        let server = skiff_apiserver::start(skiff_apiserver::Config {
            data_dir: dir.path().join("data"),
            bind: "127.0.0.1".parse().expect("ip"),
            port: 0,
            history: None,
        })
        .await
        .expect("start the API server");
        let kubeconfig = kube::config::Kubeconfig::read_from(&server.kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .expect("config");
        let client = Client::try_from(config).expect("client");
        Env { client, runtime: Arc::new(FakeRuntime::new()), _server: server, _dir: dir, stop: None, agent: None }
    }

    fn start_agent(&mut self) {
        self.start_agent_with(|_| {});
    }

    /// Starts the agent with the tests' short intervals, then `adjust` applied.
    fn start_agent_with(&mut self, adjust: impl FnOnce(&mut AgentConfig)) {
        let mut config = AgentConfig::new(NODE, self._dir.path().join("agent"));
        config.node_ip = Some("192.0.2.10".parse().expect("ip"));
        config.lease_renew_interval = Duration::from_millis(500);
        config.sync_interval = Duration::from_millis(100);
        config.backoff_initial = Duration::from_secs(1);
        config.backoff_max = Duration::from_secs(4);
        adjust(&mut config);
        let (stop, stopped) = oneshot::channel::<()>();
        let runtime: Arc<dyn ContainerRuntime> = self.runtime.clone();
        let client = self.client.clone();
        self.agent = Some(tokio::spawn(async move {
            Agent::run(client, config, runtime, async move {
                let _ = stopped.await;
            })
            .await
            .expect("agent");
        }));
        self.stop = Some(stop);
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), NS)
    }

    async fn create_pod(&self, spec: Value) -> Pod {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": spec["name"], "namespace": NS}, "spec": spec["spec"]});
        pod["spec"]["nodeName"] = json!(NODE);
        let pod: Pod = serde_json::from_value(pod).expect("pod");
        self.pods().create(&PostParams::default(), &pod).await.expect("create pod")
    }

    /// Polls the pod until `ok` holds; returns it.
    async fn wait_pod(&self, name: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let pod = self
                .pods()
                .get_opt(name)
                .await
                .expect("get pod")
                .map(|p| serde_json::to_value(p).expect("json"))
                .unwrap_or(Value::Null);
            if ok(&pod) {
                return pod;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {name}: {what}; last seen {pod:#}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn events(&self) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), NS);
        api.list(&ListParams::default()).await.expect("events").items
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(a) = self.agent.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), a).await;
        }
    }
}

fn condition(pod: &Value, type_: &str) -> Value {
    pod["status"]["conditions"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or(Value::Null)
}

fn simple(name: &str, policy: &str, container: &str) -> Value {
    json!({"name": name, "spec": {"restartPolicy": policy, "terminationGracePeriodSeconds": 30,
        "containers": [{"name": container, "image": "busybox:1.36"}]}})
}

#[tokio::test]
async fn registers_node_and_renews_lease() {
    let mut env = Env::new().await;
    env.start_agent();
    let nodes: Api<Node> = Api::all(env.client.clone());
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), "kube-node-lease");
    let deadline = tokio::time::Instant::now() + WAIT;
    let (node, lease) = loop {
        if let (Some(n), Some(l)) =
            (nodes.get_opt(NODE).await.expect("node"), leases.get_opt(NODE).await.expect("lease"))
        {
            break (serde_json::to_value(n).expect("json"), l);
        }
        assert!(tokio::time::Instant::now() < deadline, "node never registered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], NODE);
    assert_eq!(node["metadata"]["labels"]["kubernetes.io/os"], "linux");
    assert_eq!(node["status"]["capacity"]["pods"], "110");
    assert!(node["status"]["capacity"]["cpu"].as_str().is_some_and(|c| c.parse::<u32>().is_ok_and(|n| n >= 1)));
    assert!(node["status"]["allocatable"]["memory"].as_str().is_some_and(|m| m.ends_with("Ki")));
    assert_eq!(node["status"]["addresses"][0], json!({"type": "InternalIP", "address": "192.0.2.10"}));
    assert_eq!(node["status"]["addresses"][1], json!({"type": "Hostname", "address": NODE}));
    let ready = condition(&node, "Ready");
    assert_eq!((ready["status"].clone(), ready["reason"].clone()), (json!("True"), json!("KubeletReady")));
    assert_eq!(condition(&node, "MemoryPressure")["status"], "False");
    let spec = lease.spec.clone().expect("lease spec");
    assert_eq!(spec.holder_identity.as_deref(), Some(NODE));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    let first = spec.renew_time.expect("renewTime").0;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let l = leases.get(NODE).await.expect("lease");
        if l.spec.and_then(|s| s.renew_time).is_some_and(|t| t.0 > first) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "lease never renewed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    env.stop().await;
}

#[tokio::test]
async fn pod_goes_running_and_ready() {
    let mut env = Env::new().await;
    env.start_agent();
    env.create_pod(json!({"name": "web", "spec": {"containers": [{"name": "app", "image": "nginx:1.27",
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}, {"name": "A", "value": "x-$(POD_IP)"}],
        "args": ["$(A)"]}]}}))
    .await;
    let pod = env.wait_pod("web", "Ready", |p| condition(p, "Ready")["status"] == "True").await;
    let s = &pod["status"];
    assert_eq!(s["phase"], "Running");
    assert_eq!(s["hostIP"], "192.0.2.10");
    assert!(s["podIP"].as_str().is_some_and(|ip| ip.starts_with("10.88.")), "{s:#}");
    assert_eq!(s["podIPs"][0]["ip"], s["podIP"]);
    assert!(s["startTime"].is_string());
    let types: Vec<&str> =
        s["conditions"].as_array().expect("conditions").iter().filter_map(|c| c["type"].as_str()).collect();
    assert_eq!(types, ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]);
    let cs = &s["containerStatuses"][0];
    assert_eq!(cs["name"], "app");
    assert_eq!(cs["image"], "nginx:1.27");
    assert!(cs["imageID"].as_str().is_some_and(|i| i.starts_with("nginx@sha256:")));
    assert!(cs["containerID"].as_str().is_some_and(|i| i.starts_with("skiff://")));
    assert_eq!(cs["ready"], true);
    assert_eq!(cs["started"], true);
    assert_eq!(cs["restartCount"], 0);
    assert!(cs["state"]["running"]["startedAt"].is_string());
    // The runtime got the resolved environment and expanded args.
    let id = cs["containerID"].as_str().unwrap_or("").trim_start_matches("skiff://");
    let config = env.runtime.config(id).expect("started config");
    let pod_ip = s["podIP"].as_str().unwrap_or("");
    assert_eq!(config.env, vec![("POD_IP".to_string(), pod_ip.to_string()), ("A".to_string(), format!("x-{pod_ip}"))]);
    assert_eq!(config.args, Some(vec![format!("x-{pod_ip}")]));
    assert!(config.mounts.iter().any(|m| m.container_path == "/dev/termination-log"));
    // Events, as kubectl describe shows them.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let events = env.events().await;
        let reasons: Vec<String> = events.iter().filter_map(|e| e.reason.clone()).collect();
        if ["Pulling", "Pulled", "Created", "Started"].iter().all(|r| reasons.iter().any(|x| x == r)) {
            let started = events.iter().find(|e| e.reason.as_deref() == Some("Started")).expect("Started");
            assert_eq!(started.message.as_deref(), Some("Started container app"));
            assert_eq!(started.involved_object.field_path.as_deref(), Some("spec.containers{app}"));
            assert_eq!(started.source.as_ref().and_then(|s| s.component.as_deref()), Some("kubelet"));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "missing events: {reasons:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    env.stop().await;
}

#[tokio::test]
async fn crash_loop_back_off_under_always() {
    let mut env = Env::new().await;
    env.runtime.script("crash", vec![Run::Exit { code: 1, after: Duration::from_millis(100) }]);
    env.start_agent();
    env.create_pod(simple("crasher", "Always", "crash")).await;
    let pod = env
        .wait_pod("crasher", "CrashLoopBackOff", |p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        })
        .await;
    let cs = &pod["status"]["containerStatuses"][0];
    assert_eq!(pod["status"]["phase"], "Running");
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
    let message = cs["state"]["waiting"]["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("back-off ")
            && message.ends_with(&format!("restarting failed container=crash pod=crasher_default({uid})")),
        "{message}"
    );
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
    assert_eq!(cs["lastState"]["terminated"]["reason"], "Error");
    assert_eq!(cs["ready"], false);
    assert_eq!(condition(&pod, "Ready")["reason"], "ContainersNotReady");
    env.wait_pod("crasher", "restartCount >= 3", |p| {
        p["status"]["containerStatuses"][0]["restartCount"].as_i64().unwrap_or(0) >= 3
    })
    .await;
    let events = env.events().await;
    assert!(
        events.iter().any(|e| e.reason.as_deref() == Some("BackOff")
            && e.message.as_deref()
                == Some(&format!("Back-off restarting failed container crash in pod crasher_default({uid})"))),
        "no BackOff event"
    );
    env.stop().await;
}

#[tokio::test]
async fn terminal_phases_by_restart_policy() {
    let mut env = Env::new().await;
    env.runtime.script("fails", vec![Run::Exit { code: 1, after: Duration::from_millis(100) }]);
    env.runtime.script("succeeds", vec![Run::Exit { code: 0, after: Duration::from_millis(100) }]);
    env.start_agent();
    env.create_pod(simple("never", "Never", "fails")).await;
    env.create_pod(simple("onfailure", "OnFailure", "succeeds")).await;
    let never = env.wait_pod("never", "Failed", |p| p["status"]["phase"] == "Failed").await;
    let cs = &never["status"]["containerStatuses"][0];
    assert_eq!(cs["state"]["terminated"]["exitCode"], 1);
    assert_eq!(cs["state"]["terminated"]["reason"], "Error");
    assert_eq!(cs["restartCount"], 0);
    assert_eq!(condition(&never, "Ready")["reason"], "PodFailed");
    let done = env.wait_pod("onfailure", "Succeeded", |p| p["status"]["phase"] == "Succeeded").await;
    let cs = &done["status"]["containerStatuses"][0];
    assert_eq!(cs["state"]["terminated"]["reason"], "Completed");
    assert_eq!(cs["state"]["terminated"]["exitCode"], 0);
    assert_eq!(condition(&done, "ContainersReady")["reason"], "PodCompleted");
    // The sandboxes are released once the pods are done.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !env.runtime.list_sandboxes().await.expect("sandboxes").is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "sandboxes still up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    env.stop().await;
}

/// A container's exit is acted on when the runtime reports it, not on the next relist: with a
/// relist interval far longer than the test, the exit must still be seen (and, under `Always`,
/// the container restarted).
#[tokio::test]
async fn container_exit_wakes_the_pod_worker() {
    let mut env = Env::new().await;
    // Exits well after the pod's own status writes have echoed back through the watch (each
    // echo also wakes the worker), so only the exit event can make the worker look again.
    env.runtime.script("once", vec![Run::Exit { code: 3, after: Duration::from_secs(2) }, Run::Forever]);
    env.runtime.script("done", vec![Run::Exit { code: 0, after: Duration::from_secs(2) }]);
    env.start_agent_with(|config| config.sync_interval = Duration::from_secs(3600));
    env.create_pod(simple("restarts", "Always", "once")).await;
    env.create_pod(simple("finishes", "Never", "done")).await;
    let pod = env.wait_pod("restarts", "restarted", |p| p["status"]["containerStatuses"][0]["restartCount"] == 1).await;
    assert_eq!(pod["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"], 3);
    env.wait_pod("finishes", "Succeeded", |p| p["status"]["phase"] == "Succeeded").await;
    env.stop().await;
}

#[tokio::test]
async fn failing_liveness_probe_restarts_container() {
    let mut env = Env::new().await;
    env.runtime.set_exec_code("live", 1);
    env.start_agent();
    env.create_pod(json!({"name": "probed", "spec": {"containers": [{"name": "live", "image": "busybox:1.36",
        "livenessProbe": {"exec": {"command": ["cat", "/tmp/health"]}, "periodSeconds": 1, "failureThreshold": 1}}]}}))
        .await;
    env.wait_pod("probed", "restartCount >= 1", |p| {
        p["status"]["containerStatuses"][0]["restartCount"].as_i64().unwrap_or(0) >= 1
    })
    .await;
    env.runtime.set_exec_code("live", 0);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let events = env.events().await;
        let killing = events.iter().any(|e| {
            e.reason.as_deref() == Some("Killing")
                && e.message.as_deref() == Some("Container live failed liveness probe, will be restarted")
        });
        let unhealthy = events.iter().any(|e| {
            e.reason.as_deref() == Some("Unhealthy")
                && e.message.as_deref().is_some_and(|m| m.starts_with("Liveness probe failed:"))
        });
        if killing && unhealthy {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "missing Killing/Unhealthy events");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pod = env
        .wait_pod("probed", "running again", |p| p["status"]["containerStatuses"][0]["state"]["running"].is_object())
        .await;
    assert_eq!(pod["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"], 143);
    env.stop().await;
}

#[tokio::test]
async fn deletion_is_graceful_and_confirmed() {
    let mut env = Env::new().await;
    env.start_agent();
    env.create_pod(simple("doomed", "Always", "app")).await;
    let pod = env.wait_pod("doomed", "Running", |p| p["status"]["phase"] == "Running").await;
    let id = pod["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches("skiff://")
        .to_string();
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
    env.pods()
        .delete("doomed", &DeleteParams { grace_period_seconds: Some(20), ..DeleteParams::default() })
        .await
        .expect("delete");
    env.wait_pod("doomed", "gone", Value::is_null).await;
    let calls = env.runtime.calls();
    assert!(calls.contains(&Call::Stop { id: id.clone(), grace: Duration::from_secs(20) }), "{calls:?}");
    let stop_at = calls.iter().position(|c| matches!(c, Call::Stop { id: i, .. } if *i == id)).expect("stopped");
    let sandbox_at =
        calls.iter().position(|c| *c == Call::StopSandbox { pod_uid: uid.clone() }).expect("sandbox stopped");
    assert!(stop_at < sandbox_at, "containers stop before the sandbox");
    assert!(env.runtime.list_containers(&uid).await.expect("list").is_empty(), "containers removed");
    let events = env.events().await;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("Killing") && e.message.as_deref() == Some("Stopping container app"))
    );
    env.stop().await;
}

#[tokio::test]
async fn orphans_are_killed_at_start() {
    let mut env = Env::new().await;
    let orphan = env.runtime.add_orphan("ghost", "old");
    env.start_agent();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let calls = env.runtime.calls();
        if calls.iter().any(|c| matches!(c, Call::Stop { id, .. } if *id == orphan))
            && calls.contains(&Call::StopSandbox { pod_uid: "ghost".into() })
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "orphan not killed: {calls:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(env.runtime.list_sandboxes().await.expect("list").is_empty());
    env.stop().await;
}

#[tokio::test]
async fn init_containers_then_app_and_config_errors() {
    let mut env = Env::new().await;
    env.runtime.script("init1", vec![Run::Exit { code: 0, after: Duration::from_millis(50) }]);
    env.start_agent();
    env.create_pod(json!({"name": "inited", "spec": {"restartPolicy": "Always",
        "initContainers": [{"name": "init1", "image": "busybox:1.36"}],
        "containers": [{"name": "app", "image": "busybox:1.36"}]}}))
        .await;
    let pod = env.wait_pod("inited", "Ready", |p| condition(p, "Ready")["status"] == "True").await;
    let init = &pod["status"]["initContainerStatuses"][0];
    assert_eq!(init["state"]["terminated"]["exitCode"], 0);
    assert_eq!(init["state"]["terminated"]["reason"], "Completed");
    assert_eq!(init["ready"], true);
    assert_eq!(condition(&pod, "Initialized")["status"], "True");

    env.create_pod(json!({"name": "misconfigured", "spec": {"containers": [{"name": "app", "image": "busybox:1.36",
        "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "missing", "key": "k"}}}]}]}}))
        .await;
    let pod = env
        .wait_pod("misconfigured", "CreateContainerConfigError", |p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CreateContainerConfigError"
        })
        .await;
    assert_eq!(pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"], "configmap \"missing\" not found");
    assert_eq!(pod["status"]["phase"], "Pending");

    env.runtime.fail_image("nope:404");
    env.create_pod(json!({"name": "unpullable", "spec": {"containers": [{"name": "app", "image": "nope:404"}]}})).await;
    env.wait_pod("unpullable", "ImagePullBackOff", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
    })
    .await;
    env.stop().await;
}

#[tokio::test]
async fn unsafe_sysctls_are_rejected_before_anything_runs() {
    let mut env = Env::new().await;
    env.start_agent();
    let safe = json!([{"name": "kernel/shm_rmid_forced", "value": "1"}]);
    let unsafe_ =
        json!([{"name": "kernel.shm_rmid_forced", "value": "1"}, {"name": "kernel.msgmax", "value": "10000"}]);
    for (name, sysctls) in [("safe", safe), ("unsafe", unsafe_)] {
        env.create_pod(json!({"name": name, "spec": {"securityContext": {"sysctls": sysctls},
            "containers": [{"name": "app", "image": "busybox:1.36"}]}}))
            .await;
    }
    let pod = env.wait_pod("unsafe", "Failed", |p| p["status"]["phase"] == "Failed").await;
    assert_eq!(pod["status"]["reason"], "SysctlForbidden");
    assert_eq!(pod["status"]["message"], "Pod was rejected: forbidden sysctl: \"kernel.msgmax\" not allowlisted");
    let safe = env.wait_pod("safe", "Running", |p| p["status"]["phase"] == "Running").await;
    // The safe pod's containers get its sysctls; the rejected pod never got a sandbox.
    let uid = |p: &Value| p["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let (safe_uid, unsafe_uid) = (uid(&safe), uid(&pod));
    let calls = env.runtime.calls();
    assert!(calls.iter().any(|c| matches!(c, Call::RunSandbox { pod_uid } if *pod_uid == safe_uid)), "{calls:?}");
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, Call::RunSandbox { pod_uid } | Call::Start { pod_uid, .. } if *pod_uid == unsafe_uid)),
        "{calls:?}"
    );
    let id =
        safe["status"]["containerStatuses"][0]["containerID"].as_str().unwrap_or("").trim_start_matches("skiff://");
    let config = env.runtime.config(id).expect("started config");
    let psc = config.pod_security_context.expect("pod security context");
    assert_eq!(psc["sysctls"][0]["name"], "kernel/shm_rmid_forced");
    // The rejection is an event on the pod, as the kubelet's.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !env.events().await.iter().any(|e| {
        e.reason.as_deref() == Some("SysctlForbidden")
            && e.type_.as_deref() == Some("Warning")
            && e.involved_object.name.as_deref() == Some("unsafe")
            && e.message.as_deref() == Some("forbidden sysctl: \"kernel.msgmax\" not allowlisted")
    }) {
        assert!(tokio::time::Instant::now() < deadline, "no SysctlForbidden event: {:?}", env.events().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // It stays Failed: later syncs neither start it nor reject it again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = env.pods().get("unsafe").await.expect("get");
    assert_eq!(again.status.and_then(|s| s.phase).as_deref(), Some("Failed"));
    let rejections = env.events().await.iter().filter(|e| e.reason.as_deref() == Some("SysctlForbidden")).count();
    assert_eq!(rejections, 1);
    env.stop().await;
}

#[tokio::test]
async fn config_map_and_secret_volumes_follow_their_objects() {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    let mut env = Env::new().await;
    env.start_agent_with(|c| c.volume_refresh_interval = Duration::from_millis(200));
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), NS);
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), NS);
    let cm = |name: &str, data: Value| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).expect("cm")
    };
    let pp = PostParams::default();
    cms.create(&pp, &cm("update", json!({"data-1": "value-1"}))).await.expect("create");
    cms.create(&pp, &cm("delete", json!({"data-1": "value-1"}))).await.expect("create");
    cms.create(&pp, &cm("required", json!({"data-1": "value-1"}))).await.expect("create");
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": {"data-1": "value-1"}}))
            .expect("secret");
    secrets.create(&pp, &secret).await.expect("create");
    env.create_pod(
        json!({"name": "vols", "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}], "volumes": [
            {"name": "update", "configMap": {"name": "update", "optional": true}},
            {"name": "delete", "configMap": {"name": "delete", "optional": true}},
            {"name": "create", "configMap": {"name": "create", "optional": true}},
            {"name": "required", "configMap": {"name": "required"}},
            {"name": "secret", "secret": {"secretName": "s", "optional": true}},
        ]}}),
    )
    .await;
    let pod = env.wait_pod("vols", "Running", |p| p["status"]["phase"] == "Running").await;
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_string();
    let base = env._dir.path().join("agent/pods").join(&uid).join("volumes");
    let file = move |kind: &str, vol: &str, key: &str| {
        std::fs::read_to_string(base.join(format!("kubernetes.io~{kind}")).join(vol).join(key)).ok()
    };
    assert_eq!(file("configmap", "update", "data-1").as_deref(), Some("value-1"));
    assert_eq!(file("configmap", "create", "data-1"), None);

    cms.create(&pp, &cm("create", json!({"data-1": "value-1"}))).await.expect("create");
    cms.replace("update", &pp, &cm("update", json!({"data-1": "value-1", "data-3": "value-3"}))).await.expect("update");
    cms.delete("delete", &DeleteParams::default()).await.expect("delete");
    cms.delete("required", &DeleteParams::default()).await.expect("delete");
    let mut changed: Secret = secrets.get("s").await.expect("get");
    changed.data = None;
    changed.string_data = Some([("data-1".to_string(), "value-2".to_string())].into_iter().collect());
    secrets.replace("s", &pp, &changed).await.expect("update");

    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = (
            file("configmap", "update", "data-3"),
            file("configmap", "delete", "data-1"),
            file("configmap", "create", "data-1"),
            file("secret", "secret", "data-1"),
        );
        if now == (Some("value-3".into()), None, Some("value-1".into()), Some("value-2".into())) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "volumes not refreshed: {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A required ConfigMap that is gone leaves the volume as it was, as the kubelet does.
    assert_eq!(file("configmap", "required", "data-1").as_deref(), Some("value-1"));
    // The container was not restarted for any of it.
    let pod = env.pods().get("vols").await.expect("get");
    let statuses = pod.status.and_then(|s| s.container_statuses).unwrap_or_default();
    assert_eq!(statuses.first().map(|s| s.restart_count), Some(0));
    env.stop().await;
}
