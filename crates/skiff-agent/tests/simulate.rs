//! Simulated nodes against the real API server, in process. Pods are bound by hand
//! (`spec.nodeName` at create), so no scheduler runs.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use skiff_agent::simulate::{self, SimulatorConfig};
use skiff_testkit::TestServer;

struct Cluster {
    client: Client,
    _server: TestServer,
}

async fn cluster() -> Cluster {
    let server = TestServer::start().await;
    Cluster { client: server.client("skiff-simulate-test"), _server: server }
}

fn start(client: &Client, config: SimulatorConfig) {
    let client = client.clone();
    tokio::spawn(async move { simulate::run(client, config, std::future::pending()).await });
}

async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn bound_pod(name: &str, node: &str, annotation: Option<&str>, restart_policy: &str) -> Pod {
    let mut p = json!({"metadata": {"name": name},
        "spec": {"nodeName": node, "restartPolicy": restart_policy, "containers": [{"name": "app", "image": "nginx:1.27"}]}});
    if let Some(a) = annotation {
        p["metadata"]["annotations"] = json!({simulate::ANNOTATION: a});
    }
    serde_json::from_value(p).expect("a Pod")
}

fn condition(p: &Pod, type_: &str) -> Option<String> {
    p.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_).map(|c| c.status.clone())
}

fn phase(p: &Pod) -> Option<String> {
    p.status.as_ref()?.phase.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_nodes_and_renews_leases() {
    let c = cluster().await;
    let config = SimulatorConfig {
        prefix: "rack".into(),
        count: 3,
        cpu: "8".into(),
        memory: "16Gi".into(),
        lease_renew_interval: Duration::from_millis(600),
        ..SimulatorConfig::default()
    };
    start(&c.client, config);
    let nodes: Api<Node> = Api::all(c.client.clone());
    let list = wait_for(Duration::from_secs(10), "three nodes", || async {
        let l = nodes.list(&ListParams::default()).await.ok()?;
        (l.items.len() == 3).then_some(l.items)
    })
    .await;
    let mut names: Vec<String> = list.iter().map(|n| n.name_any()).collect();
    names.sort();
    assert_eq!(names, ["rack-0", "rack-1", "rack-2"]);
    let n = nodes.get("rack-1").await.expect("get node");
    assert_eq!(n.labels().get("kubernetes.io/hostname").map(String::as_str), Some("rack-1"));
    assert_eq!(n.labels().get("kubernetes.io/os").map(String::as_str), Some("linux"));
    let status = n.status.expect("status");
    let alloc = status.allocatable.expect("allocatable");
    assert_eq!((alloc["cpu"].0.as_str(), alloc["memory"].0.as_str(), alloc["pods"].0.as_str()), ("8", "16Gi", "110"));
    let ready = status.conditions.expect("conditions").into_iter().find(|c| c.type_ == "Ready").expect("Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_deref()), ("True", Some("KubeletReady")));
    assert_eq!(status.node_info.expect("nodeInfo").kubelet_version, simulate::KUBELET_VERSION);

    let leases: Api<Lease> = Api::namespaced(c.client.clone(), simulate::LEASE_NAMESPACE);
    let lease = wait_for(Duration::from_secs(10), "rack-2's lease", || async { leases.get("rack-2").await.ok() }).await;
    let spec = lease.spec.clone().expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("rack-2"));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    let owner = lease.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owner.first().map(|o| (o.kind.as_str(), o.name.as_str())), Some(("Node", "rack-2")));
    let first = spec.renew_time.expect("renewTime").0;
    wait_for(Duration::from_secs(10), "a renewal", || async {
        let t = leases.get("rack-2").await.ok()?.spec?.renew_time?.0;
        (t > first).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drives_pods_through_their_lifecycle() {
    let c = cluster().await;
    let config = SimulatorConfig {
        prefix: "sim".into(),
        count: 2,
        ready_delay: Duration::from_millis(500),
        fail_after: Duration::from_millis(200),
        ..SimulatorConfig::default()
    };
    start(&c.client, config);
    let nodes: Api<Node> = Api::all(c.client.clone());
    wait_for(Duration::from_secs(10), "nodes", || async {
        (nodes.list(&ListParams::default()).await.ok()?.items.len() == 2).then_some(())
    })
    .await;
    let pods: Api<Pod> = Api::default_namespaced(c.client.clone());
    let pp = PostParams::default();
    pods.create(&pp, &bound_pod("web", "sim-0", None, "Always")).await.expect("create");
    pods.create(&pp, &bound_pod("stuck", "sim-1", Some("never-ready"), "Always")).await.expect("create");
    pods.create(&pp, &bound_pod("once", "sim-1", Some("fail"), "Never")).await.expect("create");
    pods.create(&pp, &bound_pod("loop", "sim-0", Some("fail"), "Always")).await.expect("create");
    pods.create(&pp, &bound_pod("elsewhere", "real-node", None, "Always")).await.expect("create");

    // Running first, then Ready after the delay.
    let running = wait_for(Duration::from_secs(10), "web running", || async {
        let p = pods.get("web").await.ok()?;
        (phase(&p).as_deref() == Some("Running")).then_some(p)
    })
    .await;
    let status = running.status.clone().expect("status");
    assert!(status.pod_ip.is_some() && status.host_ip.is_some() && status.start_time.is_some());
    let cs = &status.container_statuses.clone().expect("container statuses")[0];
    assert_eq!((cs.name.as_str(), cs.restart_count, cs.image.as_str()), ("app", 0, "nginx:1.27"));
    assert!(cs.container_id.as_deref().is_some_and(|id| id.starts_with("containerd://")));
    let web = wait_for(Duration::from_secs(10), "web ready", || async {
        let p = pods.get("web").await.ok()?;
        (condition(&p, "Ready").as_deref() == Some("True")).then_some(p)
    })
    .await;
    assert_eq!(condition(&web, "ContainersReady").as_deref(), Some("True"));
    assert_eq!(condition(&web, "Initialized").as_deref(), Some("True"));
    assert_eq!(condition(&web, "PodReadyToStartContainers").as_deref(), Some("True"));

    let failed = wait_for(Duration::from_secs(10), "once failed", || async {
        let p = pods.get("once").await.ok()?;
        (phase(&p).as_deref() == Some("Failed")).then_some(p)
    })
    .await;
    let term =
        failed.status.and_then(|s| s.container_statuses).and_then(|cs| cs[0].state.clone()).and_then(|s| s.terminated);
    assert_eq!(term.map(|t| (t.exit_code, t.reason)), Some((1, Some("Error".to_string()))));

    let looping = wait_for(Duration::from_secs(10), "loop crash-looping", || async {
        let p = pods.get("loop").await.ok()?;
        let cs = p.status.clone()?.container_statuses?.first()?.clone();
        (cs.restart_count >= 1).then_some(cs)
    })
    .await;
    assert_eq!(phase(&pods.get("loop").await.expect("get")).as_deref(), Some("Running"));
    assert_eq!(looping.state.and_then(|s| s.waiting).and_then(|w| w.reason).as_deref(), Some("CrashLoopBackOff"));

    // Never-ready pods run and stay unready; pods on other nodes are left alone.
    let stuck = pods.get("stuck").await.expect("get");
    assert_eq!((phase(&stuck).as_deref(), condition(&stuck, "Ready").as_deref()), (Some("Running"), Some("False")));
    let other = pods.get("elsewhere").await.expect("get");
    assert_eq!(phase(&other).as_deref(), Some("Pending"));
    assert!(other.status.and_then(|s| s.container_statuses).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirms_graceful_deletion() {
    let c = cluster().await;
    start(&c.client, SimulatorConfig { prefix: "del".into(), count: 1, ..SimulatorConfig::default() });
    let pods: Api<Pod> = Api::default_namespaced(c.client.clone());
    let nodes: Api<Node> = Api::all(c.client.clone());
    wait_for(Duration::from_secs(10), "the node", || async { nodes.get("del-0").await.ok() }).await;
    pods.create(&PostParams::default(), &bound_pod("doomed", "del-0", None, "Always")).await.expect("create");
    wait_for(Duration::from_secs(10), "doomed running", || async {
        (phase(&pods.get("doomed").await.ok()?).as_deref() == Some("Running")).then_some(())
    })
    .await;
    // A graceful delete only marks the pod; the simulated kubelet confirms it.
    let deleted = pods.delete("doomed", &DeleteParams::default()).await.expect("delete");
    assert!(
        deleted.left().is_some_and(|p| p.metadata.deletion_timestamp.is_some()),
        "graceful: the pod is still there, terminating"
    );
    wait_for(Duration::from_secs(10), "the pod gone", || async {
        match pods.get("doomed").await {
            Err(kube::Error::Api(s)) if s.code == 404 => Some(()),
            _ => None,
        }
    })
    .await;
}
