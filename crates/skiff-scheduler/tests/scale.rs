//! The issue's scale-up scenario: a Deployment scaled from 0 to 10,000 replicas on 1,000 simulated
//! nodes, until every pod is Running and the Deployment is Available.
//!
//! The whole control plane runs in this one test process, wired as `skiff server` wires it: the
//! API server (in process, over TLS on a loopback port), the controller manager
//! (`skiff_controllers::manager::run`) and the scheduler (default configuration: `Scheduled` Events
//! on) each with a loopback client (the router in memory), and the node simulator with a client
//! over TLS, as a separate agent has. The peak RSS printed is this process's `VmHWM`: all of them together, plus the
//! harness's own pod watch.
//!
//! ```sh
//! cargo test -p skiff-scheduler --release --test scale -- --ignored --nocapture
//! SKIFF_SCALE_NODES=100 SKIFF_SCALE_REPLICAS=1000 cargo test -p skiff-scheduler --release --test scale -- --ignored --nocapture
//! # Kubernetes' largest documented cluster; warnings other than dropped Events shown
//! RUST_LOG=warn,skiff_controllers::events=error,skiff_scheduler::events=error SKIFF_SCALE_DEADLINE_S=2400 \
//!   SKIFF_SCALE_NODES=5000 SKIFF_SCALE_REPLICAS=150000 cargo test -p skiff-scheduler --release --test scale -- --ignored --nocapture
//! ```
//!
//! During the scale-up one more client (over TLS) probes the API's latency: create, get, a watch's
//! delivery and a first page of pods (see [`probe`]); its requests are in the CPU figure too.
//!
//! It prints figures and asserts only that the end state is reached (within 15 minutes, or
//! `SKIFF_SCALE_DEADLINE_S`).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use skiff_scheduler::watched::WatchedPod;
use tokio_util::sync::CancellationToken;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// CPU time (user + system) this process has used, in seconds (`/proc/self/stat`, USER_HZ = 100).
fn cpu_seconds() -> f64 {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// A field of `/proc/self/status` in kB (`VmHWM`: peak resident set; `VmRSS`: now).
fn proc_status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn mib(kb: Option<u64>) -> String {
    kb.map_or_else(|| "?".to_string(), |kb| format!("{:.0} MiB", kb as f64 / 1024.0))
}

async fn client_for(kubeconfig: &std::path::Path) -> Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("read the kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .expect("a client config");
    Client::try_from(config).expect("a client")
}

/// Pod counts seen by the harness's watch: created, bound, Running.
#[derive(Default)]
struct Seen {
    created: HashSet<String>,
    bound: HashSet<String>,
    running: HashSet<String>,
}

impl Seen {
    fn observe(&mut self, p: WatchedPod) {
        let name = p.metadata.name.unwrap_or_default();
        if p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty()) {
            self.bound.insert(name.clone());
        }
        if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
            self.running.insert(name.clone());
        }
        self.created.insert(name);
    }
}

/// API latencies measured while the control plane works (issue #6, scenario 4): what one more
/// client, over TLS like kubectl, sees. Every `PROBE_PERIOD`: a ConfigMap created (a write), read
/// back (a single read), the time from sending that create to its event arriving at a watch of
/// ConfigMaps, and a first page of pods as `kubectl get pods` asks for it (`limit=500`).
#[derive(Default)]
struct Latencies {
    create: Vec<Duration>,
    get: Vec<Duration>,
    watch_delivery: Vec<Duration>,
    list_pods: Vec<Duration>,
    /// How many times the probe's watch was closed by the server and opened again.
    watch_reopened: usize,
}

const PROBE_PERIOD: Duration = Duration::from_millis(200);

async fn probe(client: Client, stop: CancellationToken) -> Latencies {
    let configmaps: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let pods: Api<WatchedPod> = Api::default_namespaced(client);
    // The watch is read by its own task, which stamps each event as it arrives. When the server
    // ends it (a watch that fell behind is closed, as kube-apiserver closes one), it is opened
    // again from the last revision seen, as a client does; those re-opens are counted.
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    let reopened = Arc::new(AtomicUsize::new(0));
    let watch_api = configmaps.clone();
    let reopened_by_watch = reopened.clone();
    tokio::spawn(async move {
        let params = WatchParams::default().labels("probe=latency");
        let mut from = String::from("0");
        loop {
            let Ok(watch) = watch_api.watch(&params, &from).await else { return };
            let mut watch = watch.boxed();
            while let Some(Ok(event)) = watch.next().await {
                match event {
                    WatchEvent::Added(cm) => {
                        from = cm.metadata.resource_version.clone().unwrap_or(from);
                        let _ = arrived_tx.send((cm.metadata.name.unwrap_or_default(), Instant::now()));
                    }
                    WatchEvent::Modified(cm) | WatchEvent::Deleted(cm) => {
                        from = cm.metadata.resource_version.unwrap_or(from);
                    }
                    // Too old to resume from: start over from what exists.
                    WatchEvent::Error(e) if e.code == 410 => from = String::from("0"),
                    WatchEvent::Bookmark(_) | WatchEvent::Error(_) => {}
                }
            }
            if arrived_tx.is_closed() {
                return;
            }
            reopened_by_watch.fetch_add(1, Ordering::Relaxed);
        }
    });
    let mut out = Latencies::default();
    for i in 0.. {
        let tick = Instant::now();
        let name = format!("probe-{i}");
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"probe": "latency"}}, "data": {"n": i.to_string()}
        }))
        .expect("a ConfigMap");
        let sent = Instant::now();
        configmaps.create(&PostParams::default(), &cm).await.expect("the probe's create");
        out.create.push(sent.elapsed());
        let t = Instant::now();
        configmaps.get(&name).await.expect("the probe's get");
        out.get.push(t.elapsed());
        let delivered = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some((seen, at)) = arrived.recv().await {
                if seen == name {
                    return Some(at);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("the probe's ConfigMap delivered to its watch");
        out.watch_delivery.push(delivered - sent);
        let t = Instant::now();
        pods.list(&ListParams::default().limit(500)).await.expect("the probe's list");
        out.list_pods.push(t.elapsed());
        if tokio::time::timeout_at((tick + PROBE_PERIOD).into(), stop.cancelled()).await.is_ok() {
            break;
        }
    }
    out.watch_reopened = reopened.load(Ordering::Relaxed);
    out
}

/// "p50 X ms, p99 Y ms, max Z ms (n)" of `samples`.
fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    let at = |q: f64| samples.get(((samples.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or_default();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(at(1.0)),
        samples.len()
    )
}

fn available(d: &Deployment, replicas: i32) -> bool {
    let Some(s) = &d.status else { return false };
    let condition = s.conditions.iter().flatten().any(|c| c.type_ == "Available" && c.status == "True");
    condition
        && s.observed_generation == d.metadata.generation
        && s.available_replicas == Some(replicas)
        && s.updated_replicas == Some(replicas)
        && s.replicas == Some(replicas)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn deployment_0_to_10000_replicas_on_1000_nodes() {
    let nodes = env_or("SKIFF_SCALE_NODES", 1000);
    let replicas = env_or("SKIFF_SCALE_REPLICAS", 10_000);
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Warnings of the in-process server and controllers (a watch closed for falling behind...).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = skiff_apiserver::start(skiff_apiserver::Config {
        data_dir: dir.path().to_path_buf(),
        bind: "127.0.0.1".parse().expect("an address"),
        port: 0,
        // SKIFF_SCALE_HISTORY: the store's watch history (`skiff server --history`), to see its cost.
        history: std::env::var("SKIFF_SCALE_HISTORY").ok().and_then(|v| v.parse().ok()),
    })
    .await
    .expect("the API server starts");
    let client = client_for(&server.kubeconfig).await;
    let stop = CancellationToken::new();

    let sim = skiff_agent::simulate::SimulatorConfig { prefix: "sim".into(), count: nodes, ..Default::default() };
    let sim_client = client_for(&server.kubeconfig).await;
    let sim_stop = stop.clone();
    tokio::spawn(async move { skiff_agent::simulate::run(sim_client, sim, sim_stop.cancelled_owned()).await });
    let t = Instant::now();
    loop {
        let n = Api::<Node>::all(client.clone()).list(&ListParams::default()).await.map(|l| l.items.len());
        if n.as_ref().is_ok_and(|n| *n == nodes) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(300), "simulated nodes registered in time ({n:?})");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("{nodes} simulated nodes registered in {:.2?}", t.elapsed());

    let ca_pem = std::fs::read_to_string(server.kubeconfig.with_file_name("pki").join("ca.crt")).unwrap_or_default();
    let cm = skiff_controllers::manager::Config {
        identity: "scale-test".into(),
        ca_pem,
        // Room for every node's /24 (the default /16 holds 256): kube-controller-manager's
        // `--cluster-cidr` sized for the cluster.
        node_ipam: skiff_controllers::nodeipam::Config {
            cluster_cidr: "10.0.0.0/8".into(),
            ..skiff_controllers::nodeipam::Config::default()
        },
        ..skiff_controllers::manager::Config::default()
    };
    let controllers_client = skiff_apiserver::loopback::client(&server.app, skiff_controllers::manager::USER_AGENT);
    tokio::spawn(skiff_controllers::manager::run(controllers_client, cm, stop.clone()));
    let scheduler_client = skiff_apiserver::loopback::client(&server.app, skiff_scheduler::USER_AGENT);
    let scheduler_stop = stop.clone();
    tokio::spawn(async move { skiff_scheduler::run(scheduler_client, scheduler_stop.cancelled_owned()).await });

    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}
    }))
    .expect("a Deployment");
    deployments.create(&PostParams::default(), &deployment).await.expect("create the Deployment");
    let t = Instant::now();
    loop {
        let d = deployments.get("web").await.expect("get the Deployment");
        if available(&d, 0) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "the empty Deployment settles");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss_before = proc_status_kb("VmRSS:");
    let hwm_before = proc_status_kb("VmHWM:");

    // The harness's own watch of the pods (light decoding), started before the scale-up.
    let pods: Api<WatchedPod> = Api::default_namespaced(client.clone());
    let mut stream = watcher(pods, watcher::Config::default()).boxed();

    let probe_stop = CancellationToken::new();
    let probing = tokio::spawn(probe(client_for(&server.kubeconfig).await, probe_stop.clone()));
    let start = Instant::now();
    let cpu = cpu_seconds();
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": replicas}})))
        .await
        .expect("scale the Deployment");
    // SKIFF_SCALE_DEADLINE_S: how long the scale-up may take (the largest runs need longer).
    let deadline = start + Duration::from_secs(env_or("SKIFF_SCALE_DEADLINE_S", 900) as u64);
    let mut seen = Seen::default();
    let (mut all_created, mut all_bound) = (None, None);
    while seen.running.len() < replicas {
        let next = tokio::time::timeout_at(deadline.into(), stream.next()).await.unwrap_or_else(|_| {
            panic!(
                "all pods Running in time: {} created, {} bound, {} running",
                seen.created.len(),
                seen.bound.len(),
                seen.running.len()
            )
        });
        if let Some(Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p))) = next {
            seen.observe(p);
        }
        if all_created.is_none() && seen.created.len() >= replicas {
            all_created = Some(start.elapsed());
        }
        if all_bound.is_none() && seen.bound.len() >= replicas {
            all_bound = Some(start.elapsed());
        }
    }
    let all_running = start.elapsed();
    println!(
        "all {replicas} pods Running after {all_running:.2?} (created {all_created:.2?}, bound {all_bound:.2?}); \
         peak RSS so far {}",
        mib(proc_status_kb("VmHWM:"))
    );
    loop {
        let d = deployments.get("web").await.expect("get the Deployment");
        if available(&d, replicas as i32) {
            break;
        }
        assert!(Instant::now() < deadline, "the Deployment Available in time: {:?}", d.status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all_available = start.elapsed();
    let cpu = cpu_seconds() - cpu;
    probe_stop.cancel();
    let mut latencies = probing.await.expect("the probe");
    let hwm = proc_status_kb("VmHWM:");
    let name = deployments.get("web").await.map(|d| d.name_any()).unwrap_or_default();
    println!(
        "deployment/{name} 0 -> {replicas} replicas on {nodes} simulated nodes: all created {all_created:.2?}, \
         all bound {all_bound:.2?}, all Running {all_running:.2?} ({:.0} pods/s), Deployment Available {all_available:.2?}; \
         {cpu:.1} CPU-s ({:.0} µs CPU per pod)",
        replicas as f64 / all_running.as_secs_f64(),
        cpu * 1e6 / replicas as f64
    );
    println!(
        "peak RSS (VmHWM, whole control plane + simulator + harness in this process): {} (before the scale-up: RSS {}, peak {})",
        mib(hwm),
        mib(rss_before),
        mib(hwm_before)
    );
    println!("API latency during the scale-up, one more client over TLS, one probe every {PROBE_PERIOD:?}:");
    println!("  create ConfigMap: {}", summary(&mut latencies.create));
    println!("  get ConfigMap: {}", summary(&mut latencies.get));
    println!(
        "  create sent -> event at a watch: {} (the watch closed by the server and re-opened {} times)",
        summary(&mut latencies.watch_delivery),
        latencies.watch_reopened
    );
    println!("  list pods, limit 500: {}", summary(&mut latencies.list_pods));
    stop.cancel();
}

/// The `skiff` binary's allocator (crates/skiff/src/main.rs), so that these measurements are of
/// the allocator the server runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
