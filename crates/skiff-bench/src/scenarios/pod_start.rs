//! Scenario 1: pod start with real containers, the image present.
//!
//! - N bare pods (1, 10, 100) created at once through the API (the `kube` client): the time from the
//!   first create request to each pod's first Running and Ready as seen by a watch, and to all N.
//! - A 3-replica Deployment from `kubectl apply` (the real kubectl, its discovery cache warm) to
//!   converged and Available, alternating run by run with the peer, `podman kube play` of the same
//!   YAML (until it has started every container and exited).
//! - The floor: `runc create` + `runc start` of one container of the same image alone.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::PostParams;

use super::{ms, ms_since, table};
use crate::Output;
use crate::chart::Series;
use crate::cluster::{self, Cluster, Env, IMAGE_V1};
use crate::floor::Floor;
use crate::podman::Podman;
use crate::report::Section;
use crate::stats::{Summary, fmt_num};
use crate::track::{Tracker, deployment_flags, pod_flags};

struct Sizes {
    /// (pods at once, runs)
    batches: Vec<(usize, usize)>,
    deployment_runs: usize,
    floor_runs: usize,
}

fn sizes(quick: bool) -> Sizes {
    if quick {
        Sizes { batches: vec![(1, 1)], deployment_runs: 1, floor_runs: 1 }
    } else {
        Sizes { batches: vec![(1, 20), (10, 5), (100, 3)], deployment_runs: 10, floor_runs: 20 }
    }
}

/// Per-pod and whole-batch times of one batch size, in ms.
#[derive(Default)]
struct Batch {
    pod_running: Vec<f64>,
    pod_ready: Vec<f64>,
    all_running: Vec<f64>,
    all_ready: Vec<f64>,
}

async fn batch(cluster: &Cluster, n: usize, run: &str) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let pods = cluster.pods();
    let tracker = Tracker::start(pods.clone(), &format!("bench={run}"), pod_flags).await?;
    let t0 = Instant::now();
    let creates = (0..n).map(|i| {
        let pods = pods.clone();
        let pod = cluster::pod(&format!("{run}-{i}"), run);
        async move { pods.create(&PostParams::default(), &pod).await }
    });
    futures::future::try_join_all(creates).await?;
    let timeout = Duration::from_secs(60 + 2 * n as u64);
    tracker
        .until(&format!("{n} pods Ready"), timeout, move |seen| {
            seen.first.values().filter(|f| f.contains_key("ready")).count() >= n
        })
        .await?;
    let (running, ready) = tracker.with(|seen| {
        let at = |flag: &str| -> Vec<f64> {
            seen.first.values().filter_map(|f| f.get(flag)).map(|t| ms_since(t0, *t)).collect()
        };
        (at("running"), at("ready"))
    });
    cluster.clear().await?;
    Ok((running, ready))
}

/// One `kubectl apply` of the Deployment until it is Available with every replica.
async fn skiff_deployment(cluster: &Cluster, kubectl: &Path, home: &Path, file: &Path) -> anyhow::Result<f64> {
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), "default");
    let tracker = Tracker::start(deployments, "bench=web", deployment_flags).await?;
    let t0 = Instant::now();
    let status = Command::new(kubectl)
        .env("KUBECONFIG", &cluster.server.kubeconfig)
        .env("HOME", home)
        .args(["apply", "-f"])
        .arg(file)
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "kubectl apply failed: {status}");
    let at = tracker
        .until("the Deployment Available", Duration::from_secs(120), |seen| {
            seen.first.values().any(|f| f.contains_key("available"))
        })
        .await?;
    cluster.clear().await?;
    Ok(ms_since(t0, at))
}

fn warm_kubectl(cluster: &Cluster, kubectl: &Path, home: &Path) -> anyhow::Result<()> {
    let status = Command::new(kubectl)
        .env("KUBECONFIG", &cluster.server.kubeconfig)
        .env("HOME", home)
        .args(["get", "deployments"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "kubectl get deployments failed");
    Ok(())
}

pub async fn run(env: &Env, out: &Output) -> anyhow::Result<Section> {
    let kubectl =
        env.kubectl.clone().ok_or_else(|| anyhow::anyhow!("the real kubectl is needed (scripts/fetch-kubectl.sh)"))?;
    let sizes = sizes(env.quick);
    let mut section = Section::new("pod-start");
    let scratch = env.dir("pod-start-")?;
    let yaml = scratch.join("web.yaml");
    std::fs::write(&yaml, cluster::deployment_yaml("web", 3))?;
    let home = scratch.join("home");
    std::fs::create_dir_all(&home)?;

    // The floor first, on a quiet node.
    let mut floor = Floor::new(&env.dir("floor-")?, &env.images[0])?;
    let mut floor_ms = Vec::new();
    for i in 0..sizes.floor_runs + 1 {
        let took = floor.start_once(&format!("skiff-bench-floor-{i}"))?;
        if i > 0 {
            floor_ms.push(ms(took)); // the first run warms the page cache
        }
    }
    drop(floor);

    let podman_dir = env.dir("podman-")?;
    let gateway = gateway_of(&env.podman_subnet);
    let podman = Podman::new(
        &podman_dir,
        &format!("{}p", env.net.bridge),
        &env.podman_subnet,
        &gateway,
        &env.images[0],
        IMAGE_V1,
    )?;
    let cluster = Cluster::start(env).await?;
    let measured = async {
        let mut batches = Vec::new();
        for &(n, runs) in &sizes.batches {
            let mut b = Batch::default();
            for r in 0..runs {
                let (running, ready) = batch(&cluster, n, &format!("start{n}-{r}")).await?;
                b.all_running.push(running.iter().copied().fold(0.0, f64::max));
                b.all_ready.push(ready.iter().copied().fold(0.0, f64::max));
                b.pod_running.extend(running);
                b.pod_ready.extend(ready);
            }
            batches.push((n, b));
        }
        // Warm-up (unmeasured): kubectl's discovery cache, podman's pause image.
        warm_kubectl(&cluster, &kubectl, &home)?;
        skiff_deployment(&cluster, &kubectl, &home, &yaml).await?;
        podman.play(&yaml, "web", 3)?;
        podman.down(&yaml)?;
        let (mut skiff_ms, mut podman_ms) = (Vec::new(), Vec::new());
        for i in 0..sizes.deployment_runs {
            // Alternate which tool goes first.
            if i % 2 == 1 {
                podman_ms.push(ms(podman.play(&yaml, "web", 3)?));
                podman.down(&yaml)?;
            }
            skiff_ms.push(skiff_deployment(&cluster, &kubectl, &home, &yaml).await?);
            if i % 2 == 0 {
                podman_ms.push(ms(podman.play(&yaml, "web", 3)?));
                podman.down(&yaml)?;
            }
        }
        anyhow::Ok((batches, skiff_ms, podman_ms))
    }
    .await;
    let shutdown = cluster.shutdown().await;
    drop(podman);
    let (batches, skiff_ms, podman_ms) = measured?;
    shutdown?;

    section.line("## Pod start with real containers (scenario 1)");
    section.line(
        "How: `skiff server` (API server, controllers, scheduler) and one real `skiff agent` (runc, CNI \
         bridge) on this machine, the demo image (busybox httpd) already imported. N bare pods are created \
         at once through the API; a watch timestamps each pod's first `Running` phase and `Ready=True` \
         condition; times are from the first create request. The Deployment (3 replicas) is applied with \
         the real kubectl (warm discovery cache) and timed until it has converged and is `Available`; \
         podman 4 (`podman kube play` of the same YAML, runc, its own storage root and CNI network) is \
         timed until it has started every container and exited, in alternation with Skiff in the same \
         run (both tools' CLI start-up included). The floor is `runc create` + `runc start` of one \
         container of the same image alone (no network, no API).\n",
    );
    let mut rows = Vec::new();
    let mut series = Vec::new();
    for (n, b) in &batches {
        let pods = if *n == 1 { "1 pod".to_string() } else { format!("{n} pods") };
        if *n == 1 {
            rows.push((format!("{pods}: create → Running"), section.metric("pod1_running_ms", "ms", &b.all_running)));
            rows.push((format!("{pods}: create → Ready"), section.metric("pod1_ready_ms", "ms", &b.all_ready)));
            series.push(Series::new("1 pod → Ready", &b.all_ready));
        } else {
            rows.push((
                format!("{pods}: create → all Running"),
                section.metric(&format!("pods{n}_all_running_ms"), "ms", &b.all_running),
            ));
            rows.push((
                format!("{pods}: create → all Ready"),
                section.metric(&format!("pods{n}_all_ready_ms"), "ms", &b.all_ready),
            ));
            rows.push((
                format!("{pods}: each pod create → Ready"),
                section.metric(&format!("pods{n}_each_ready_ms"), "ms", &b.pod_ready),
            ));
            series.push(Series::new(format!("{n} pods → all Ready"), &b.all_ready));
        }
    }
    let skiff_dep = section.metric("deployment3_skiff_ms", "ms", &skiff_ms);
    let podman_dep = section.metric("deployment3_podman_ms", "ms", &podman_ms);
    let floor_sum = section.metric("runc_floor_ms", "ms", &floor_ms);
    rows.push(("3-replica Deployment: `kubectl apply` → Available (Skiff)".into(), skiff_dep.clone()));
    rows.push(("3-replica Deployment: `podman kube play` (peer)".into(), podman_dep.clone()));
    rows.push(("floor: `runc create` + `runc start`, one container".into(), floor_sum.clone()));
    section.line(table("ms", &rows));
    if let (Some(s), Some(p)) = (&skiff_dep, &podman_dep) {
        let pairs: Vec<f64> = skiff_ms.iter().zip(&podman_ms).map(|(s, p)| s / p).collect();
        let ratio = section.metric("deployment3_ratio_skiff_over_podman", "ratio", &pairs);
        section.line(format!(
            "**Skiff / podman for the 3-replica Deployment: {} (median of the run-by-run ratios {}; medians {} ms vs {} ms).** \
             The goal is below 1.",
            fmt_num(s.median / p.median),
            ratio.map_or("–".into(), |r: Summary| fmt_num(r.median)),
            fmt_num(s.median),
            fmt_num(p.median),
        ));
    }
    if let (Some(b1), Some(f)) = (batches.first().map(|(_, b)| b), &floor_sum)
        && let Some(one) = Summary::of(&b1.all_running)
    {
        section.line(format!(
            "\nOne pod's create → Running is {} the floor ({} ms vs {} ms); the goal is ≤ 150 ms.\n",
            format_args!("{}×", fmt_num(one.median / f.median)),
            fmt_num(one.median),
            fmt_num(f.median)
        ));
    }
    series.push(Series::new("Deployment (Skiff)", &skiff_ms));
    series.push(Series::new("Deployment (podman)", &podman_ms));
    series.push(Series::new("runc alone", &floor_ms));
    section.line(out.chart("pod-start", "Pod start (ms, create → Ready)", "ms", &series));
    Ok(section)
}

/// The first host address of an IPv4 `a.b.c.d/n` subnet (the bridge's gateway).
pub fn gateway_of(subnet: &str) -> String {
    let base = subnet.split('/').next().unwrap_or(subnet);
    let mut octets: Vec<u8> = base.split('.').filter_map(|o| o.parse().ok()).collect();
    if octets.len() == 4 {
        octets[3] = octets[3].saturating_add(1);
        return octets.iter().map(u8::to_string).collect::<Vec<_>>().join(".");
    }
    base.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateways() {
        assert_eq!(gateway_of("10.249.0.0/24"), "10.249.0.1");
        assert_eq!(gateway_of("10.88.4.0/22"), "10.88.4.1");
    }

    #[test]
    fn quick_sizes_are_tiny() {
        let s = sizes(true);
        assert_eq!((s.batches, s.deployment_runs, s.floor_runs), (vec![(1, 1)], 1, 1));
        assert_eq!(sizes(false).batches.iter().map(|b| b.0).collect::<Vec<_>>(), vec![1, 10, 100]);
    }
}
