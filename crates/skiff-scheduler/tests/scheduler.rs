//! The scheduler against the real API server, in process. Nodes are created by hand (or by the
//! simulator for the throughput run); no controllers run, so pods are created directly.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use skiff_testkit::TestServer;

struct Cluster {
    client: Client,
    server: TestServer,
}

async fn cluster() -> Cluster {
    let server = TestServer::start().await;
    Cluster { client: server.client("skiff-scheduler-test"), server }
}

/// Runs the scheduler on a loopback client of the cluster's server, as `skiff server` does.
fn start_scheduler(c: &Cluster) {
    tokio::spawn(skiff_scheduler::run(c.server.loopback_client(skiff_scheduler::USER_AGENT), std::future::pending()));
}

async fn create_node(client: &Client, name: &str, labels: Value, spec: Value, ready: &str) {
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
        "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                   "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady"}]}
    }))
    .expect("a Node");
    Api::<Node>::all(client.clone()).create(&PostParams::default(), &node).await.expect("create node");
}

fn pod(name: &str, owner: Option<&str>, spec_extra: Value) -> Pod {
    let mut p = json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}});
    if let Some(uid) = owner {
        p["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-rs", "uid": uid, "controller": true}]);
    }
    if let (Some(spec), Some(extra)) = (p["spec"].as_object_mut(), spec_extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(p).expect("a Pod")
}

fn node_of(p: &Pod) -> Option<String> {
    p.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty())
}

/// The benchmarks' scheduler client: the loopback one, as in `skiff server`; with
/// SKIFF_BENCH_SCHEDULER_TLS=1 a client over TLS instead (what an external kube-scheduler would
/// use), to compare the two.
fn bench_scheduler_client(c: &Cluster) -> Client {
    if std::env::var_os("SKIFF_BENCH_SCHEDULER_TLS").is_some_and(|v| !v.is_empty()) {
        c.server.client("skiff-scheduler-bench")
    } else {
        c.server.loopback_client(skiff_scheduler::USER_AGENT)
    }
}

/// CPU time (user + system) used so far by the process (`/proc/self/stat`) or the calling thread
/// (`/proc/thread-self/stat`), in seconds. Benchmarks print it next to wall-clock time: the
/// machine is shared, and CPU time per pod is much less sensitive to other work than pods/s.
fn cpu_seconds(stat: &str) -> f64 {
    let text = std::fs::read_to_string(stat).unwrap_or_default();
    // Fields after the parenthesized command name: state is field 3, utime 14 and stime 15.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
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

async fn events_for(client: &Client, pod: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(pod))
        .collect()
}

fn condition(p: &Pod, type_: &str) -> Option<(String, Option<String>, Option<String>)> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_and_spreads_replicas() {
    let c = cluster().await;
    for i in 0..3 {
        create_node(&c.client, &format!("n{i}"), json!({}), json!({}), "True").await;
    }
    start_scheduler(&c);
    let pods: Api<Pod> = Api::default_namespaced(c.client.clone());
    for i in 0..6 {
        pods.create(&PostParams::default(), &pod(&format!("web-{i}"), Some("rs-1"), json!({})))
            .await
            .expect("create pod");
    }
    let placed = wait_for(Duration::from_secs(20), "six pods bound", || async {
        let list = pods.list(&ListParams::default()).await.ok()?;
        let nodes: Vec<String> = list.items.iter().filter_map(node_of).collect();
        (nodes.len() == 6).then_some(nodes)
    })
    .await;
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for n in placed {
        *per_node.entry(n).or_default() += 1;
    }
    assert_eq!(per_node, BTreeMap::from([("n0".into(), 2), ("n1".into(), 2), ("n2".into(), 2)]));

    let p = pods.get("web-0").await.expect("get pod");
    assert_eq!(condition(&p, "PodScheduled").map(|c| c.0), Some("True".to_string()));
    let node = node_of(&p).expect("bound");
    let events = wait_for(Duration::from_secs(10), "a Scheduled event", || async {
        let e = events_for(&c.client, "web-0").await;
        (!e.is_empty()).then_some(e)
    })
    .await;
    let e = &events[0];
    assert_eq!(e.reason.as_deref(), Some("Scheduled"));
    assert_eq!(e.type_.as_deref(), Some("Normal"));
    assert_eq!(e.message.as_deref(), Some(format!("Successfully assigned default/web-0 to {node}").as_str()));
    assert_eq!(e.source.as_ref().and_then(|s| s.component.as_deref()), Some("default-scheduler"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedulable_until_a_matching_node_appears() {
    let c = cluster().await;
    for i in 0..3 {
        create_node(&c.client, &format!("n{i}"), json!({"disk": "hdd"}), json!({}), "True").await;
    }
    start_scheduler(&c);
    let pods: Api<Pod> = Api::default_namespaced(c.client.clone());
    pods.create(&PostParams::default(), &pod("needs-ssd", None, json!({"nodeSelector": {"disk": "ssd"}})))
        .await
        .expect("create");
    let want = "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. \
                preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
    let cond = wait_for(Duration::from_secs(10), "PodScheduled=False", || async {
        let p = pods.get("needs-ssd").await.ok()?;
        condition(&p, "PodScheduled").filter(|c| c.0 == "False")
    })
    .await;
    assert_eq!(cond, ("False".to_string(), Some("Unschedulable".to_string()), Some(want.to_string())));
    let events = wait_for(Duration::from_secs(10), "a FailedScheduling event", || async {
        let e = events_for(&c.client, "needs-ssd").await;
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(events[0].reason.as_deref(), Some("FailedScheduling"));
    assert_eq!(events[0].type_.as_deref(), Some("Warning"));
    assert_eq!(events[0].message.as_deref(), Some(want));

    // A new node that matches: the pod is retried and lands there.
    create_node(&c.client, "fast", json!({"disk": "ssd"}), json!({}), "True").await;
    let node = wait_for(Duration::from_secs(10), "the pod to be bound", || async {
        node_of(&pods.get("needs-ssd").await.ok()?)
    })
    .await;
    assert_eq!(node, "fast");
    let p = pods.get("needs-ssd").await.expect("get");
    assert_eq!(condition(&p, "PodScheduled").map(|c| c.0), Some("True".to_string()));

    // A label change on an existing node counts as well.
    pods.create(&PostParams::default(), &pod("needs-gpu", None, json!({"nodeSelector": {"gpu": "yes"}})))
        .await
        .expect("create");
    wait_for(Duration::from_secs(10), "needs-gpu unschedulable", || async {
        condition(&pods.get("needs-gpu").await.ok()?, "PodScheduled").filter(|c| c.0 == "False")
    })
    .await;
    Api::<Node>::all(c.client.clone())
        .patch("n1", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"gpu": "yes"}}})))
        .await
        .expect("label n1");
    let node =
        wait_for(Duration::from_secs(10), "needs-gpu bound", || async { node_of(&pods.get("needs-gpu").await.ok()?) })
            .await;
    assert_eq!(node, "n1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taints_readiness_and_cordon_are_respected() {
    let c = cluster().await;
    create_node(
        &c.client,
        "tainted",
        json!({}),
        json!({"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}),
        "True",
    )
    .await;
    create_node(&c.client, "cordoned", json!({}), json!({"unschedulable": true}), "True").await;
    create_node(&c.client, "sick", json!({}), json!({}), "False").await;
    create_node(&c.client, "plain", json!({}), json!({}), "True").await;
    start_scheduler(&c);
    let pods: Api<Pod> = Api::default_namespaced(c.client.clone());
    for i in 0..4 {
        pods.create(&PostParams::default(), &pod(&format!("p{i}"), None, json!({}))).await.expect("create");
    }
    // Tolerates the taint and nothing else, and must land off "plain".
    let tolerant = json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["plain"]}]}]}}}});
    pods.create(&PostParams::default(), &pod("gpu-job", None, tolerant)).await.expect("create");
    let placed = wait_for(Duration::from_secs(20), "five pods bound", || async {
        let list = pods.list(&ListParams::default()).await.ok()?;
        let placed: BTreeMap<String, String> =
            list.items.iter().filter_map(|p| Some((p.name_any(), node_of(p)?))).collect();
        (placed.len() == 5).then_some(placed)
    })
    .await;
    for i in 0..4 {
        assert_eq!(placed[&format!("p{i}")], "plain", "p{i}");
    }
    assert_eq!(placed["gpu-job"], "tainted");

    // Nothing fits a pod that only the sick and cordoned nodes would take.
    let picky = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["sick", "cordoned"]}]}]}}}});
    pods.create(&PostParams::default(), &pod("picky", None, picky)).await.expect("create");
    let cond = wait_for(Duration::from_secs(10), "picky unschedulable", || async {
        condition(&pods.get("picky").await.ok()?, "PodScheduled").filter(|c| c.0 == "False")
    })
    .await;
    assert_eq!(
        cond.2.as_deref(),
        Some(
            "0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, \
             1 node(s) were unschedulable, 2 node(s) had untolerated taint(s). preemption: 0/4 nodes are available: \
             4 Preemption is not helpful for scheduling."
        )
    );
    // The sick node recovers: the pod goes there.
    Api::<Node>::all(c.client.clone())
        .patch_status(
            "sick",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})),
        )
        .await
        .expect("mark ready");
    let node =
        wait_for(Duration::from_secs(10), "picky bound", || async { node_of(&pods.get("picky").await.ok()?) }).await;
    assert_eq!(node, "sick");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_are_not_overcommitted() {
    let c = cluster().await;
    create_node(&c.client, "a", json!({}), json!({}), "True").await;
    create_node(&c.client, "b", json!({}), json!({}), "True").await;
    let pods: Api<Pod> = Api::default_namespaced(c.client.clone());
    // Created before the scheduler starts, so its decisions come back to back.
    let big = json!({"containers": [{"name": "app", "image": "x", "resources": {"requests": {"cpu": "1500m", "memory": "1Gi"}}}]});
    for i in 0..5 {
        pods.create(&PostParams::default(), &pod(&format!("big-{i}"), None, big.clone())).await.expect("create");
    }
    start_scheduler(&c);
    let (bound, pending) = wait_for(Duration::from_secs(20), "4 bound and 1 unschedulable", || async {
        let list = pods.list(&ListParams::default()).await.ok()?;
        let bound: Vec<String> = list.items.iter().filter_map(node_of).collect();
        let pending: Vec<Pod> =
            list.items.into_iter().filter(|p| condition(p, "PodScheduled").is_some_and(|c| c.0 == "False")).collect();
        (bound.len() == 4 && pending.len() == 1).then_some((bound, pending))
    })
    .await;
    assert_eq!(bound.iter().filter(|n| *n == "a").count(), 2);
    assert_eq!(
        condition(&pending[0], "PodScheduled").and_then(|c| c.2).as_deref(),
        Some(
            "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
        )
    );
    // Deleting a placed pod frees room: the waiting pod is retried.
    let victim = pods
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .find(|p| node_of(p).is_some())
        .expect("a bound pod");
    pods.delete(&victim.name_any(), &kube::api::DeleteParams { grace_period_seconds: Some(0), ..Default::default() })
        .await
        .expect("delete");
    let waiting = pending[0].name_any();
    wait_for(Duration::from_secs(10), "the waiting pod bound", || async { node_of(&pods.get(&waiting).await.ok()?) })
        .await;
}

/// Prints (does not assert) scheduling throughput: pods created first, then the scheduler binds
/// them all onto simulated nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_2000_pods_on_100_nodes() {
    measure(100, 2000).await;
}

/// 1,000 simulated nodes; run with `cargo test -p skiff-scheduler --release --test scheduler -- --ignored throughput_5000`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput_5000_pods_on_1000_nodes() {
    measure(1000, 5000).await;
}

async fn measure(nodes: usize, count: usize) {
    let c = cluster().await;
    // SKIFF_BENCH_START_DELAY_MS delays the simulator's pod writes, to measure binding alone.
    let start_delay = std::env::var("SKIFF_BENCH_START_DELAY_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let sim = skiff_agent::simulate::SimulatorConfig {
        prefix: "bench".into(),
        count: nodes,
        start_delay: Duration::from_millis(start_delay),
        ..Default::default()
    };
    let client = c.client.clone();
    tokio::spawn(async move { skiff_agent::simulate::run(client, sim, std::future::pending()).await });
    wait_for(Duration::from_secs(120), "simulated nodes", || async {
        let n = Api::<Node>::all(c.client.clone()).list(&ListParams::default()).await.ok()?.items.len();
        (n == nodes).then_some(())
    })
    .await;
    let pods: Api<Pod> = Api::default_namespaced(c.client.clone());
    let created = Instant::now();
    futures::stream::iter(0..count)
        .map(|i| {
            let pods = pods.clone();
            async move {
                let p = pod(&format!("bench-{i}"), Some(&format!("rs-{}", i % 20)), json!({}));
                pods.create(&PostParams::default(), &p).await.expect("create pod");
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let creation = created.elapsed();
    // The pid, so that `perf record -p` can attach to the scheduling window alone.
    eprintln!("scheduling {count} pods (pid {})", std::process::id());
    let start = Instant::now();
    let cpu = cpu_seconds("/proc/self/stat");
    let in_flight = std::env::var("SKIFF_BENCH_IN_FLIGHT").ok().and_then(|v| v.parse().ok()).unwrap_or(512);
    let config =
        skiff_scheduler::Config { record_scheduled_events: false, max_in_flight: in_flight, ..Default::default() };
    tokio::spawn(skiff_scheduler::run_with(bench_scheduler_client(&c), config, std::future::pending()));
    count_bound(&c.client, count).await;
    let took = start.elapsed();
    let cpu = cpu_seconds("/proc/self/stat") - cpu;
    if std::env::var_os("SKIFF_BENCH_METRICS").is_some() {
        let req = http::Request::get("/metrics").body(Vec::new()).expect("a request");
        let text = c.client.request_text(req).await.expect("metrics");
        text.lines().filter(|l| l.starts_with("apiserver_request_total")).for_each(|l| eprintln!("{l}"));
    }
    println!(
        "created {count} pods in {creation:.2?} ({:.0}/s); scheduled them on {nodes} simulated nodes in {took:.2?}: {:.0} pods/s (without Scheduled events); {cpu:.2} CPU-s, {:.0} µs CPU per pod",
        count as f64 / creation.as_secs_f64(),
        count as f64 / took.as_secs_f64(),
        cpu * 1e6 / count as f64
    );
}

/// Raw binding throughput of the API server, without the scheduler (for comparison).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn raw_binding_rate() {
    let c = cluster().await;
    create_node(&c.client, "n0", json!({}), json!({}), "True").await;
    let pods: Api<Pod> = Api::default_namespaced(c.client.clone());
    let count = 2000;
    let t = Instant::now();
    futures::stream::iter(0..count)
        .map(|i| {
            let pods = pods.clone();
            async move {
                pods.create(&PostParams::default(), &pod(&format!("raw-{i}"), None, json!({})))
                    .await
                    .expect("create pod");
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let created = t.elapsed();
    let t = Instant::now();
    futures::stream::iter(0..count)
        .map(|i| {
            let pods = pods.clone();
            async move {
                let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": format!("raw-{i}")},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": "n0"}});
                pods.create_subresource::<_, Value>("binding", &format!("raw-{i}"), &PostParams::default(), &binding)
                    .await
                    .expect("bind");
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    println!("created {count} in {created:.2?}, bound in {:.2?}", t.elapsed());
}

/// The scheduler alone (hand-made nodes, no simulator writes): 2,000 pods on 100 nodes
/// (`SKIFF_BENCH_PODS` and `SKIFF_BENCH_NODES` change the numbers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn scheduler_only_rate() {
    let c = cluster().await;
    let env = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    for i in 0..env("SKIFF_BENCH_NODES", 100) {
        create_node(&c.client, &format!("n{i}"), json!({}), json!({}), "True").await;
    }
    let pods: Api<Pod> = Api::default_namespaced(c.client.clone());
    let count = env("SKIFF_BENCH_PODS", 2000);
    futures::stream::iter(0..count)
        .map(|i| {
            let pods = pods.clone();
            async move {
                pods.create(&PostParams::default(), &pod(&format!("raw-{i}"), None, json!({})))
                    .await
                    .expect("create pod");
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let t = Instant::now();
    let cpu = cpu_seconds("/proc/self/stat");
    let in_flight = std::env::var("SKIFF_BENCH_IN_FLIGHT").ok().and_then(|v| v.parse().ok()).unwrap_or(512);
    let config =
        skiff_scheduler::Config { record_scheduled_events: false, max_in_flight: in_flight, ..Default::default() };
    tokio::spawn(skiff_scheduler::run_with(bench_scheduler_client(&c), config, std::future::pending()));
    count_bound(&c.client, count).await;
    let took = t.elapsed();
    let cpu = cpu_seconds("/proc/self/stat") - cpu;
    println!(
        "scheduled {count} in {took:.2?}: {:.0} pods/s; {cpu:.2} CPU-s, {:.0} µs CPU per pod",
        count as f64 / took.as_secs_f64(),
        cpu * 1e6 / count as f64
    );
}

/// Waits until `count` pods are bound, counting from a watch of assigned pods rather than by
/// listing thousands of pods over and over. The watch decodes the scheduler's light
/// [`WatchedPod`](skiff_scheduler::watched::WatchedPod), so the harness takes as little of the
/// two cores as it can from what it measures.
async fn count_bound(client: &Client, count: usize) {
    use kube::runtime::watcher::{Config, Event};
    let api: Api<skiff_scheduler::watched::WatchedPod> = Api::default_namespaced(client.clone());
    let mut stream = kube::runtime::watcher(api, Config::default().fields("spec.nodeName!=")).boxed();
    let mut bound = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while bound.len() < count {
        let next = tokio::time::timeout_at(deadline.into(), stream.next()).await.expect("all pods bound in time");
        if let Some(Ok(Event::Apply(p) | Event::InitApply(p))) = next {
            bound.insert(p.metadata.name.unwrap_or_default());
        }
    }
}

/// The cost of one scheduling decision (`PodInfo::new` and `schedule`, as the executor runs them)
/// over 1,000 nodes: 10,000 pods of 20 ReplicaSets, each accounted on its node before the next
/// decision, as assumed pods are. No API server: this is the decision alone.
#[test]
#[ignore]
fn decision_cost_on_1000_nodes() {
    use skiff_scheduler::info::{NodeInfo, PodInfo};
    use skiff_scheduler::schedule::{Cursor, schedule};
    let mut nodes: Vec<NodeInfo> = (0..1000)
        .map(|i| {
            NodeInfo::new(
                &serde_json::from_value::<Node>(json!({
                    "metadata": {"name": format!("n{i}"), "labels": {"kubernetes.io/hostname": format!("n{i}")}},
                    "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                               "conditions": [{"type": "Ready", "status": "True"}]}}))
                .expect("a Node"),
            )
        })
        .collect();
    let pods: Vec<Pod> = (0..10_000)
        .map(|i| {
            let mut p = pod(&format!("p{i}"), Some(&format!("rs-{}", i % 20)), json!({}));
            p.metadata.uid = Some(format!("uid-{i}"));
            p
        })
        .collect();
    let mut cursor = Cursor::default();
    let t = Instant::now();
    let cpu = cpu_seconds("/proc/thread-self/stat");
    for p in &pods {
        let info = PodInfo::new(p);
        let idx = schedule(&info, &nodes, &mut cursor).expect("fits");
        nodes[idx].add_pod(&info.usage);
    }
    let took = t.elapsed();
    let cpu = cpu_seconds("/proc/thread-self/stat") - cpu;
    let per = took / pods.len() as u32;
    println!(
        "{} decisions over {} nodes in {took:.2?}: {per:.1?} per decision ({:.0} decisions/s); {:.1} µs CPU per decision",
        pods.len(),
        nodes.len(),
        pods.len() as f64 / took.as_secs_f64(),
        cpu * 1e6 / pods.len() as f64
    );
    let per_node: Vec<i64> = nodes.iter().map(|n| n.requested.pods).collect();
    assert_eq!(per_node.iter().sum::<i64>(), 10_000);
    // Each decision scores a rotating 42 % of the nodes (upstream's adaptive default), so the
    // spread is even within that sample, not exactly across all nodes.
    let (min, max) = (per_node.iter().min().copied(), per_node.iter().max().copied());
    println!("pods per node: min {min:?}, max {max:?}");
    assert!(min >= Some(5) && max <= Some(15), "spread evenly: {min:?}..{max:?}");
}

/// The `skiff` binary's allocator (crates/skiff/src/main.rs), so that these measurements are of
/// the allocator the server runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
