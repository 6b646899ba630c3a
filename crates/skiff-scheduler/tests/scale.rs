//! The issue's scale-up scenario: a Deployment scaled from 0 to 10,000 replicas on 1,000 simulated
//! nodes, until every pod is Running and the Deployment is Available.
//!
//! The whole control plane runs in this one test process: the API server (in process, over TLS on
//! a loopback port), the controller manager (`skiff_controllers::manager::run`), the scheduler
//! (default configuration: `Scheduled` Events on), and the node simulator, each with its own
//! client. The peak RSS printed is this process's `VmHWM`: all of them together, plus the
//! harness's own pod watch.
//!
//! ```sh
//! cargo test -p skiff-scheduler --release --test scale -- --ignored --nocapture
//! SKIFF_SCALE_NODES=100 SKIFF_SCALE_REPLICAS=1000 cargo test -p skiff-scheduler --release --test scale -- --ignored --nocapture
//! ```
//!
//! It prints figures and asserts only that the end state is reached (within 15 minutes).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
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
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = skiff_apiserver::start(skiff_apiserver::Config {
        data_dir: dir.path().to_path_buf(),
        bind: "127.0.0.1".parse().expect("an address"),
        port: 0,
        history: None,
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
        ..skiff_controllers::manager::Config::default()
    };
    tokio::spawn(skiff_controllers::manager::run(client_for(&server.kubeconfig).await, cm, stop.clone()));
    let scheduler_client = client_for(&server.kubeconfig).await;
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

    let start = Instant::now();
    let cpu = cpu_seconds();
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": replicas}})))
        .await
        .expect("scale the Deployment");
    let deadline = start + Duration::from_secs(900);
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
    stop.cancel();
}

/// The `skiff` binary's allocator (crates/skiff/src/main.rs), so that these measurements are of
/// the allocator the server runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
