//! The node lifecycle, taint eviction and node IPAM controllers against the real API server, in
//! process, with the whole controller manager running. The test plays the kubelets: it registers
//! Nodes, renews their Leases in `kube-node-lease`, posts their Ready conditions and marks pods
//! Ready, then stops renewing one node's Lease.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use parking_lot::Mutex;
use serde_json::{Value, json};
use skiff_controllers::{manager, nodeipam, nodelifecycle};
use skiff_testkit::TestServer;
use tokio_util::sync::CancellationToken;

const NS: &str = "default";
const WAIT: Duration = Duration::from_secs(40);
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// A running API server, a client, the controller manager and a fake kubelet renewing the Leases
/// of the nodes in `alive`.
struct Env {
    client: Client,
    _server: TestServer,
    stop: CancellationToken,
    alive: Arc<Mutex<BTreeSet<String>>>,
}

impl Env {
    async fn server() -> Env {
        let server = TestServer::start().await;
        let client = server.client("skiff-nodelifecycle-test");
        let env = Env { client, _server: server, stop: CancellationToken::new(), alive: Arc::default() };
        env.start_kubelet();
        env
    }

    /// Starts the controller manager with short node timings.
    fn start_manager(&self) {
        let config = manager::Config {
            identity: "test-manager".into(),
            node_lifecycle: nodelifecycle::Config {
                node_monitor_period: Duration::from_millis(300),
                node_monitor_grace_period: Duration::from_secs(2),
                ..nodelifecycle::Config::default()
            },
            node_ipam: nodeipam::Config::default(),
            ..manager::Config::default()
        };
        tokio::spawn(manager::run(self.client.clone(), config, self.stop.clone()));
    }

    /// Renews the Lease of every node in `alive` every 300 ms.
    fn start_kubelet(&self) {
        let (client, alive, stop) = (self.client.clone(), self.alive.clone(), self.stop.clone());
        tokio::spawn(async move {
            let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
            loop {
                let names: Vec<String> = alive.lock().iter().cloned().collect();
                for name in names {
                    let patch = json!({"spec": {"renewTime": MicroTime(Timestamp::now())}});
                    let _ = leases.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await;
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(300)) => {}
                }
            }
        });
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), NS)
    }

    /// Registers a Ready node with a Lease that the fake kubelet renews.
    async fn add_node(&self, name: &str, pod_cidr: Option<&str>) {
        let mut node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {}});
        if let Some(cidr) = pod_cidr {
            node["spec"] = json!({"podCIDR": cidr, "podCIDRs": [cidr]});
        }
        let node: Node = serde_json::from_value(node).expect("node");
        self.nodes().create(&PostParams::default(), &node).await.expect("create node");
        self.post_ready(name).await;
        let lease: Lease = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": MicroTime(Timestamp::now())}
        }))
        .expect("lease");
        Api::<Lease>::namespaced(self.client.clone(), "kube-node-lease")
            .create(&PostParams::default(), &lease)
            .await
            .expect("create lease");
        self.alive.lock().insert(name.to_string());
    }

    /// Posts the node's conditions as a healthy kubelet does.
    async fn post_ready(&self, name: &str) {
        let now = Time(Timestamp::now());
        let condition = |kind: &str, status: &str, reason: &str, message: &str| {
            json!({"type": kind, "status": status, "reason": reason, "message": message,
                   "lastHeartbeatTime": now, "lastTransitionTime": now})
        };
        let patch = json!({"status": {"conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ]}});
        self.nodes().patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("node status");
    }

    /// Creates a pod bound to `node` tolerating `unreachable:NoExecute` for `seconds` (None:
    /// forever), and marks it Running and Ready.
    async fn add_pod(&self, name: &str, node: &str, seconds: Option<i64>) -> Pod {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "nodeName": node,
                "containers": [{"name": "c", "image": "nginx"}],
                "tolerations": [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}]
            }
        }))
        .expect("pod");
        self.pods().create(&PostParams::default(), &pod).await.expect("create pod");
        self.mark_ready(name).await
    }

    async fn mark_ready(&self, name: &str) -> Pod {
        let now = Time(Timestamp::now());
        let patch = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
        ]}});
        self.pods().patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("pod status")
    }

    async fn events(&self, reason: &str) -> Vec<Event> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), NS);
        let list = events.list(&ListParams::default()).await.expect("events");
        list.items.into_iter().filter(|e| e.reason.as_deref() == Some(reason)).collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after [`WAIT`].
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn taints(node: &Node) -> Vec<Taint> {
    node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default()
}

fn has_taint(node: &Node, key: &str, effect: &str) -> bool {
    taints(node).iter().any(|t| t.key == key && t.effect == effect)
}

fn condition<'a>(node: &'a Node, kind: &str) -> Option<&'a k8s_openapi::api::core::v1::NodeCondition> {
    node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == kind)
}

fn pod_condition(pod: &Pod, kind: &str) -> Option<String> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    conditions.iter().find(|c| c.type_ == kind).map(|c| c.status.clone())
}

/// Whether the pod is gone or being deleted.
async fn deleting(api: &Api<Pod>, name: &str) -> bool {
    match api.get_opt(name).await.expect("get pod") {
        None => true,
        Some(p) => p.metadata.deletion_timestamp.is_some(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_goes_unknown_is_tainted_and_its_pods_evicted() {
    let env = Env::server().await;
    env.start_manager();
    env.add_node("n1", None).await;
    env.add_node("n2", None).await;
    let pods = env.pods();

    // A ReplicaSet whose pod, bound to n1, tolerates the unreachable taint for 0 s.
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{"name": "c", "image": "nginx"}],
                    "tolerations": [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 0}]
                }
            }
        }
    }))
    .expect("replicaset");
    let rs = Api::<ReplicaSet>::namespaced(env.client.clone(), NS)
        .create(&PostParams::default(), &rs)
        .await
        .expect("create rs");
    let rs_uid = rs.uid().expect("uid");
    let owned = |p: &Pod| p.owner_references().iter().any(|r| r.uid == rs_uid);
    let first = wait_for("the ReplicaSet's pod", || {
        let pods = pods.clone();
        async move { pods.list(&ListParams::default()).await.ok()?.items.into_iter().find(|p| owned(p)) }
    })
    .await
    .name_any();
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": first, "namespace": NS},
                         "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}});
    let _: Value = pods.create_subresource("binding", &first, &PostParams::default(), &binding).await.expect("bind");
    env.mark_ready(&first).await;

    env.add_pod("zero", "n1", Some(0)).await;
    env.add_pod("three", "n1", Some(3)).await;
    env.add_pod("forever", "n1", None).await;
    env.add_pod("healthy", "n2", Some(0)).await;

    // The kubelet of n1 stops.
    env.alive.lock().remove("n1");
    let nodes = env.nodes();
    let node = wait_for("n1 to become Ready=Unknown", || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get("n1").await.ok()?;
            (condition(&n, "Ready")?.status == "Unknown").then_some(n)
        }
    })
    .await;
    let ready = condition(&node, "Ready").expect("ready");
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(ready.message.as_deref(), Some("Kubelet stopped posting node status."));
    for kind in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        let c = condition(&node, kind).expect("pressure condition");
        assert_eq!((c.status.as_str(), c.reason.as_deref()), ("Unknown", Some("NodeStatusUnknown")), "{kind}");
    }

    let node = wait_for("n1's unreachable taints", || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get("n1").await.ok()?;
            (has_taint(&n, UNREACHABLE, "NoExecute") && has_taint(&n, UNREACHABLE, "NoSchedule")).then_some(n)
        }
    })
    .await;
    // Right after the taint, the pod tolerating it for 3 s is still there.
    let three = pods.get("three").await.expect("three");
    assert!(three.metadata.deletion_timestamp.is_none(), "evicted before its tolerationSeconds");
    let no_execute = taints(&node).into_iter().find(|t| t.effect == "NoExecute").expect("NoExecute taint");
    assert!(no_execute.time_added.is_some(), "NoExecute taints carry timeAdded");
    assert!(!has_taint(&node, "node.kubernetes.io/not-ready", "NoExecute"));
    // n2 keeps renewing: untouched.
    let n2 = nodes.get("n2").await.expect("n2");
    assert_eq!(condition(&n2, "Ready").map(|c| c.status.as_str()), Some("True"));
    assert!(taints(&n2).is_empty(), "{:?}", taints(&n2));

    wait_for("the 0 s pod to be evicted", || {
        let pods = pods.clone();
        async move { deleting(&pods, "zero").await.then_some(()) }
    })
    .await;
    wait_for("the ReplicaSet's bound pod to be evicted", || {
        let (pods, first) = (pods.clone(), first.clone());
        async move { deleting(&pods, &first).await.then_some(()) }
    })
    .await;
    wait_for("a replacement pod", || {
        let (pods, first) = (pods.clone(), first.clone());
        async move {
            let list = pods.list(&ListParams::default()).await.ok()?;
            list.items
                .into_iter()
                .find(|p| owned(p) && p.name_any() != first && p.metadata.deletion_timestamp.is_none())
        }
    })
    .await;
    // Pods on the unknown node were marked not ready.
    let forever = wait_for("the pods on n1 marked not ready", || {
        let pods = pods.clone();
        async move {
            let p = pods.get("forever").await.ok()?;
            (pod_condition(&p, "Ready").as_deref() == Some("False")).then_some(p)
        }
    })
    .await;
    assert!(forever.metadata.deletion_timestamp.is_none());

    wait_for("the 3 s pod to be evicted", || {
        let pods = pods.clone();
        async move { deleting(&pods, "three").await.then_some(()) }
    })
    .await;
    if let Some(p) = pods.get_opt("three").await.expect("get three") {
        assert_eq!(pod_condition(&p, "DisruptionTarget").as_deref(), Some("True"), "{:?}", p.status);
    }
    // The pod tolerating forever stays, and so does the one on the healthy node.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!deleting(&pods, "forever").await, "a pod tolerating forever was evicted");
    assert!(!deleting(&pods, "healthy").await, "a pod on a healthy node was evicted");

    // Events, as upstream words them (written in the background: poll for them).
    wait_for("the TaintManagerEviction events", || async {
        let evictions = env.events("TaintManagerEviction").await;
        let messages: Vec<String> = evictions.iter().filter_map(|e| e.message.clone()).collect();
        (messages.contains(&"Marking for deletion Pod default/zero".to_string())
            && messages.contains(&"Marking for deletion Pod default/three".to_string()))
        .then_some(())
    })
    .await;
    wait_for("the NodeNotReady events of n1 and its pod", || async {
        let not_ready = env.events("NodeNotReady").await;
        let node = not_ready.iter().any(|e| {
            e.involved_object.kind.as_deref() == Some("Node")
                && e.message.as_deref() == Some("Node n1 status is now: NodeNotReady")
        });
        let pod = not_ready.iter().any(|e| {
            e.involved_object.name.as_deref() == Some("forever")
                && e.type_.as_deref() == Some("Warning")
                && e.message.as_deref() == Some("Node is not ready")
        });
        (node && pod).then_some(())
    })
    .await;
    wait_for("a RegisteredNode event", || async { (!env.events("RegisteredNode").await.is_empty()).then_some(()) })
        .await;

    // The kubelet comes back: Lease renewed, Ready posted; the taints go.
    env.alive.lock().insert("n1".into());
    env.post_ready("n1").await;
    wait_for("n1's taints to be removed", || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get("n1").await.ok()?;
            let ready = condition(&n, "Ready")?.status == "True";
            (ready && !taints(&n).iter().any(|t| t.key == UNREACHABLE)).then_some(())
        }
    })
    .await;
    // And it stays healthy while the Lease is renewed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let n = nodes.get("n1").await.expect("n1");
    assert_eq!(condition(&n, "Ready").map(|c| c.status.as_str()), Some("True"));
    assert!(taints(&n).is_empty(), "{:?}", taints(&n));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_node_is_down_nothing_is_evicted() {
    let env = Env::server().await;
    env.start_manager();
    env.add_node("solo", None).await;
    env.add_pod("p", "solo", Some(0)).await;
    env.alive.lock().remove("solo");
    let nodes = env.nodes();
    wait_for("solo to be unknown and NoSchedule-tainted", || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get("solo").await.ok()?;
            let unknown = condition(&n, "Ready")?.status == "Unknown";
            (unknown && has_taint(&n, UNREACHABLE, "NoSchedule")).then_some(())
        }
    })
    .await;
    // Full disruption: no NoExecute taint, no eviction (upstream's "master disruption mode").
    tokio::time::sleep(Duration::from_secs(2)).await;
    let n = nodes.get("solo").await.expect("solo");
    assert!(!has_taint(&n, UNREACHABLE, "NoExecute"), "{:?}", taints(&n));
    assert!(!deleting(&env.pods(), "p").await, "evicted during a full disruption");
    let p = env.pods().get("p").await.expect("p");
    assert_eq!(pod_condition(&p, "Ready").as_deref(), Some("False"), "pods are still marked not ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_get_distinct_pod_cidrs_and_keep_their_own() {
    let env = Env::server().await;
    // A node registered before the controller starts keeps its range, which is never handed out.
    env.add_node("pre", Some("10.42.0.0/24")).await;
    env.start_manager();
    env.add_node("a", None).await;
    env.add_node("b", None).await;
    let nodes = env.nodes();
    let mut cidrs = Vec::new();
    for name in ["a", "b"] {
        let node = wait_for("a pod CIDR", || {
            let nodes = nodes.clone();
            async move {
                let n = nodes.get(name).await.ok()?;
                n.spec.as_ref()?.pod_cidr.is_some().then_some(n)
            }
        })
        .await;
        let spec = node.spec.expect("spec");
        let cidr = spec.pod_cidr.expect("podCIDR");
        assert_eq!(spec.pod_cidrs, Some(vec![cidr.clone()]));
        let parsed: nodeipam::Cidr = cidr.parse().expect("a CIDR");
        assert_eq!(parsed.prefix, 24, "{cidr}");
        assert!(parsed.overlaps(&"10.42.0.0/16".parse().expect("cluster")), "{cidr}");
        cidrs.push(cidr);
    }
    assert_ne!(cidrs[0], cidrs[1]);
    assert!(!cidrs.contains(&"10.42.0.0/24".to_string()), "{cidrs:?}");
    let pre = nodes.get("pre").await.expect("pre");
    assert_eq!(pre.spec.and_then(|s| s.pod_cidr).as_deref(), Some("10.42.0.0/24"));

    // A deleted node's range can be handed out again later; a third node gets a fresh one now.
    nodes.delete("a", &DeleteParams::default()).await.expect("delete a");
    env.add_node("c", None).await;
    let c = wait_for("c's pod CIDR", || {
        let nodes = nodes.clone();
        async move { nodes.get("c").await.ok()?.spec?.pod_cidr }
    })
    .await;
    assert!(!["10.42.0.0/24".to_string(), cidrs[1].clone()].contains(&c), "{c} reused a range in use");
}
