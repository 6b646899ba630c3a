//! Scenario 6: cold start, and the server's memory at rest (part of scenario 4's "RSS at rest").
//!
//! - `skiff server` (API server, controllers, scheduler; `--no-agent`) from spawn to `/readyz`
//!   answering 200, on a fresh data directory (it generates its CA and certificates) and again on
//!   the existing one. The probe is a bare TLS connection per try, every 2 ms.
//! - Spawn of `skiff server` to the first pod Running: the server, then (as soon as it has written its
//!   kubeconfig) the real agent on the harness's bridge, and a pod created as soon as the API
//!   accepts it.
//! - VmRSS and VmHWM of the idle server: `--no-agent` a few seconds after start-up, and the default
//!   `skiff server` with its embedded node agent on the harness's bridge name 15 s after its node is
//!   Ready (no pods, so it creates no bridge; its masquerade rules are removed afterwards).
//! - VmRSS of a standalone `skiff agent` at rest (issue #4's "agent idle RSS"): registered with a
//!   `skiff server --no-agent`, its node Ready, no pods.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::PostParams;

use super::{ms_since, table};
use crate::Output;
use crate::chart::Series;
use crate::cluster::{self, Agent, Env, import_images};
use crate::procs::{Guard, memory_kib};
use crate::readyz;
use crate::report::Section;
use crate::stats::fmt_num;
use crate::track::pod_running;

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Spawns `skiff server` on `data_dir` and `port` with `extra` arguments (stdout discarded).
fn spawn_server(env: &Env, data_dir: &Path, port: u16, extra: &[&str]) -> anyhow::Result<Guard> {
    std::fs::create_dir_all(data_dir)?;
    let log = std::fs::File::create(data_dir.with_extension("log"))?;
    let child = Command::new(&env.skiff)
        .args(["server", "--bind", "127.0.0.1", "--port", &port.to_string(), "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env("SKIFF_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()?;
    Ok(Guard::new(child, "skiff server"))
}

/// Polls `/readyz` until it answers 200; the instant it did.
async fn wait_ready(
    tls: &Arc<rustls::ClientConfig>,
    data_dir: &Path,
    port: u16,
    server: &mut Guard,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let token_file = data_dir.join("pki/admin.token");
    let mut token = String::new();
    loop {
        if token.is_empty() {
            token = std::fs::read_to_string(&token_file).map(|t| t.trim().to_string()).unwrap_or_default();
        }
        if !token.is_empty() && readyz::ready(tls, port, &token).await {
            return Ok(Instant::now());
        }
        anyhow::ensure!(
            server.running(),
            "skiff server exited during start-up (log: {})",
            data_dir.with_extension("log").display()
        );
        anyhow::ensure!(Instant::now() < deadline, "skiff server was not ready within 60 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// (fresh, existing) spawn → /readyz in ms, and the idle (VmRSS, VmHWM) in KiB of the fresh start.
async fn readyz_run(
    env: &Env,
    tls: &Arc<rustls::ClientConfig>,
    settle: Duration,
) -> anyhow::Result<(f64, f64, (u64, u64))> {
    let data = env.dir("cold-")?.join("data");
    let port = free_port()?;
    let t0 = Instant::now();
    let mut server = spawn_server(env, &data, port, &["--no-agent"])?;
    let fresh = ms_since(t0, wait_ready(tls, &data, port, &mut server).await?);
    tokio::time::sleep(settle).await;
    let mem = memory_kib(server.pid()).unwrap_or_default();
    server.stop(Duration::from_secs(10));
    let t0 = Instant::now();
    let mut server = spawn_server(env, &data, port, &["--no-agent"])?;
    let existing = ms_since(t0, wait_ready(tls, &data, port, &mut server).await?);
    server.stop(Duration::from_secs(10));
    Ok((fresh, existing, mem))
}

/// The default `skiff server` (embedded agent) at rest: (VmRSS, VmHWM) in KiB.
async fn embedded_agent_memory(
    env: &Env,
    tls: &Arc<rustls::ClientConfig>,
    settle: Duration,
) -> anyhow::Result<(u64, u64)> {
    let data = env.dir("cold-embedded-")?.join("data");
    let port = free_port()?;
    let blackhole_before = blackhole_present(&env.net.cluster_cidr);
    let extra = [
        "--pod-cidr",
        &env.net.pod_cidr,
        "--cluster-cidr",
        &env.net.cluster_cidr,
        "--bridge",
        &env.net.bridge,
        "--kubelet-port",
        "0",
    ];
    let mut server = spawn_server(env, &data, port, &extra)?;
    let result = async {
        wait_ready(tls, &data, port, &mut server).await?;
        // The machine's node is named after it (as `skiff server` names it).
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string())?;
        wait_node_ready(&data.join("kubeconfig.yaml"), &name).await?;
        tokio::time::sleep(settle).await;
        memory_kib(server.pid()).ok_or_else(|| anyhow::anyhow!("no /proc status for the server"))
    }
    .await;
    server.stop(Duration::from_secs(10));
    crate::procs::unmount_under(&data);
    // The agent installs its masquerade rules at start, pods or not.
    skiff_runtime::masquerade::remove(&env.net.bridge);
    if !blackhole_before {
        let _ = Command::new("ip")
            .args(["route", "del", "blackhole", &env.net.cluster_cidr])
            .stderr(Stdio::null())
            .status();
    }
    result
}

/// A standalone `skiff agent` at rest (registered, its node Ready, no pods): VmRSS in KiB.
async fn standalone_agent_rss(env: &Env, settle: Duration) -> anyhow::Result<u64> {
    let root = env.dir("cold-agent-")?;
    let server = cluster::Server::start(&env.skiff, &root.join("data"), &[])?;
    let agent = Agent::start(env, &server.kubeconfig, &root.join("agent"))?;
    wait_node_ready(&server.kubeconfig, cluster::NODE).await?;
    tokio::time::sleep(settle).await;
    memory_kib(agent.guard.pid()).map(|(rss, _)| rss).ok_or_else(|| anyhow::anyhow!("no /proc status for the agent"))
}

/// Waits (at most 60 s) until the node `name` is Ready.
async fn wait_node_ready(kubeconfig: &Path, name: &str) -> anyhow::Result<()> {
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(cluster::client(kubeconfig).await?);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let node = nodes.get_opt(name).await.ok().flatten();
        let conditions = node.and_then(|n| n.status).and_then(|s| s.conditions).unwrap_or_default();
        if conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True") {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "node {name} was not Ready within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn blackhole_present(cidr: &str) -> bool {
    Command::new("ip")
        .args(["route", "show", "type", "blackhole", cidr])
        .output()
        .map(|o| !String::from_utf8_lossy(&o.stdout).trim().is_empty())
        .unwrap_or(false)
}

/// Spawn of the server to the first pod Running, in ms.
async fn first_pod_run(env: &Env, tls: &Arc<rustls::ClientConfig>, r: usize) -> anyhow::Result<f64> {
    let root = env.dir("cold-pod-")?;
    let (data, agent_dir) = (root.join("data"), root.join("agent"));
    import_images(env, &agent_dir)?;
    let port = free_port()?;
    let t0 = Instant::now();
    let mut server = spawn_server(env, &data, port, &["--no-agent"])?;
    let kubeconfig = data.join("kubeconfig.yaml");
    while !kubeconfig.is_file() {
        anyhow::ensure!(server.running() && t0.elapsed() < Duration::from_secs(60), "no kubeconfig from the server");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let agent = Agent::start(env, &kubeconfig, &agent_dir)?;
    let result = async {
        wait_ready(tls, &data, port, &mut server).await?;
        let client = cluster::client(&kubeconfig).await?;
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client.clone(), "default");
        let pod = cluster::pod(&format!("first-{r}"), "cold");
        // The pod is admitted once the default namespace and its ServiceAccount exist.
        while pods.create(&PostParams::default(), &pod).await.is_err() {
            anyhow::ensure!(t0.elapsed() < Duration::from_secs(60), "the pod was never admitted");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        loop {
            if let Ok(p) = pods.get(&format!("first-{r}")).await
                && pod_running(&p)
            {
                break;
            }
            anyhow::ensure!(t0.elapsed() < Duration::from_secs(120), "the first pod never ran");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let at = Instant::now();
        // Let the agent tear the pod down (its sandbox, CNI address, iptables rules).
        let _ = pods.delete(&format!("first-{r}"), &Default::default()).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while pods.get_opt(&format!("first-{r}")).await.ok().flatten().is_some() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::Ok(ms_since(t0, at))
    }
    .await;
    drop(agent);
    server.stop(Duration::from_secs(10));
    result
}

pub async fn run(env: &Env, out: &Output) -> anyhow::Result<Section> {
    let (runs, pod_runs, settle) =
        if env.quick { (1, 1, Duration::from_millis(300)) } else { (10, 5, Duration::from_secs(3)) };
    let tls = readyz::tls_config();
    let (mut fresh, mut existing, mut rss, mut hwm) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let (f, e, (r, h)) = readyz_run(env, &tls, settle).await?;
        fresh.push(f);
        existing.push(e);
        rss.push(r as f64 / 1024.0);
        hwm.push(h as f64 / 1024.0);
    }
    let mut first_pod = Vec::new();
    for r in 0..pod_runs {
        first_pod.push(first_pod_run(env, &tls, r).await?);
    }
    // At rest means after a full cycle of an agent's periodic work (the node Lease is renewed every 10 s).
    let agent_settle = if env.quick { settle } else { Duration::from_secs(15) };
    let (mut erss, mut ehwm) = (Vec::new(), Vec::new());
    for _ in 0..pod_runs {
        let (r, h) = embedded_agent_memory(env, &tls, agent_settle).await?;
        erss.push(r as f64 / 1024.0);
        ehwm.push(h as f64 / 1024.0);
    }
    let mut agent_rss = Vec::new();
    for _ in 0..pod_runs {
        agent_rss.push(standalone_agent_rss(env, agent_settle).await? as f64 / 1024.0);
    }

    let mut section = Section::new("cold-start");
    section.line("## Cold start and memory at rest (scenario 6; scenario 4's RSS at rest)");
    section.line(
        "How: `skiff server --no-agent` (API server, controllers, scheduler) spawned on a free port and probed \
         with `GET /readyz` over a new TLS connection every 2 ms until it answers 200: on a fresh data \
         directory (it generates its CA, certificates and store) and again on the existing one. \"First pod \
         Running\": the server spawned, the real agent started as soon as the kubeconfig exists, a pod created \
         as soon as the API admits it, polled every 5 ms until Running. Memory: VmRSS (now) and VmHWM (peak) \
         from /proc, without pods: of `skiff server --no-agent` a few seconds after start-up; of `skiff server` \
         with its node agent and of a standalone `skiff agent` (registered with a `skiff server --no-agent`) \
         15 s after the node is Ready (its Lease is renewed every 10 s).\n",
    );
    let rows = vec![
        ("spawn → /readyz 200, fresh data directory".to_string(), section.metric("readyz_fresh_ms", "ms", &fresh)),
        (
            "spawn → /readyz 200, existing data directory".to_string(),
            section.metric("readyz_existing_ms", "ms", &existing),
        ),
        (
            "spawn → first pod Running (server + agent)".to_string(),
            section.metric("first_pod_running_ms", "ms", &first_pod),
        ),
    ];
    section.line(table("ms", &rows));
    let mem_rows = vec![
        ("`skiff server --no-agent` VmRSS at rest".to_string(), section.metric("idle_rss_mib", "MiB", &rss)),
        ("`skiff server --no-agent` VmHWM (peak)".to_string(), section.metric("idle_hwm_mib", "MiB", &hwm)),
        (
            "`skiff server` with its node agent, VmRSS at rest".to_string(),
            section.metric("idle_rss_with_agent_mib", "MiB", &erss),
        ),
        (
            "`skiff server` with its node agent, VmHWM".to_string(),
            section.metric("idle_hwm_with_agent_mib", "MiB", &ehwm),
        ),
        ("standalone `skiff agent` VmRSS at rest".to_string(), section.metric("agent_idle_rss_mib", "MiB", &agent_rss)),
    ];
    section.line(table("MiB", &mem_rows));
    section.line(format!(
        "Goals (issue #6): /readyz ≤ 100 ms (the Rust peer: 150–230 ms); the whole `skiff server` idle ≤ 16 MiB \
         (k3s documents about 1.4 GB for server + agent); issue #4: the agent idle ≤ 15 MiB. Measured: {} ms \
         fresh, {} MiB with the agent, the agent alone {} MiB.\n",
        crate::stats::Summary::of(&fresh).map_or("–".into(), |s| fmt_num(s.median)),
        crate::stats::Summary::of(&erss).map_or("–".into(), |s| fmt_num(s.median)),
        crate::stats::Summary::of(&agent_rss).map_or("–".into(), |s| fmt_num(s.median)),
    ));
    let series = [
        Series::new("→ /readyz, fresh", &fresh),
        Series::new("→ /readyz, existing", &existing),
        Series::new("→ first pod Running", &first_pod),
    ];
    section.line(out.chart("cold-start", "Cold start (ms)", "ms", &series));
    Ok(section)
}
