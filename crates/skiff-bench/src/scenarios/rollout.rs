//! Scenario 3: rolling update. A Deployment of 10 replicas (no probes), strategy RollingUpdate with
//! maxSurge 1 and maxUnavailable 0, its image changed v1 → v2 (and back, run after run): the time
//! from the patch to the Deployment converged on the new template (every replica updated and
//! available, no old replica left). The overhead per pod is that time divided by the replicas,
//! minus the floor (`runc create` + `runc start` alone, measured in the same run).

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use super::{ms, ms_since, table};
use crate::Output;
use crate::chart::Series;
use crate::cluster::{self, Cluster, Env, IMAGE_V1, IMAGE_V2};
use crate::floor::Floor;
use crate::report::Section;
use crate::stats::{Summary, fmt_num};
use crate::track::{Tracker, deployment_done, deployment_flags};

const NAME: &str = "roll";

pub async fn run(env: &Env, out: &Output) -> anyhow::Result<Section> {
    let (replicas, runs, floor_runs) = if env.quick { (2, 1, 1) } else { (10, 5, 10) };
    let mut floor = Floor::new(&env.dir("floor-")?, &env.images[0])?;
    let mut floor_ms = Vec::new();
    for i in 0..=floor_runs {
        let took = floor.start_once(&format!("skiff-bench-rollfloor-{i}"))?;
        if i > 0 {
            floor_ms.push(ms(took));
        }
    }
    drop(floor);
    let cluster = Cluster::start(env).await?;
    let measured = measure(&cluster, replicas, runs).await;
    let shutdown = cluster.shutdown().await;
    let totals = measured?;
    shutdown?;

    let mut section = Section::new("rolling-update");
    section.line("## Rolling update (scenario 3)");
    section.line(format!(
        "How: a Deployment of {replicas} busybox httpd pods (no probes, maxSurge 1, maxUnavailable 0) on \
         the real agent; its image is patched v1 → v2 (then back, {runs} runs) and timed until the \
         Deployment has converged on the new template (all replicas updated and available, old ones gone \
         from its status). Overhead per pod = total / {replicas} − the floor (runc create + start alone, \
         same run).\n"
    ));
    let floor_sum = Summary::of(&floor_ms);
    let per_pod: Vec<f64> = totals.iter().map(|t| t / replicas as f64).collect();
    let overhead: Vec<f64> = per_pod.iter().map(|p| p - floor_sum.as_ref().map_or(0.0, |f| f.median)).collect();
    let rows = vec![
        (format!("{replicas} replicas v1 → v2, total"), section.metric("rollout_total_ms", "ms", &totals)),
        ("per pod (total / replicas)".to_string(), section.metric("rollout_per_pod_ms", "ms", &per_pod)),
        (
            "overhead per pod above the container start".to_string(),
            section.metric("rollout_overhead_per_pod_ms", "ms", &overhead),
        ),
        ("floor: runc create + start".to_string(), section.metric("rollout_floor_ms", "ms", &floor_ms)),
    ];
    section.line(table("ms", &rows));
    if let (Some(p), Some(f)) = (Summary::of(&per_pod), floor_sum) {
        section.line(format!(
            "Each replaced pod costs {} ms, {}× the bare container start of {} ms.\n",
            fmt_num(p.median),
            fmt_num(p.median / f.median),
            fmt_num(f.median)
        ));
    }
    let series = [Series::new("per pod", &per_pod), Series::new("runc alone", &floor_ms)];
    section.line(out.chart("rolling-update", "Rolling update: time per replaced pod (ms)", "ms", &series));
    Ok(section)
}

async fn measure(cluster: &Cluster, replicas: usize, runs: usize) -> anyhow::Result<Vec<f64>> {
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), "default");
    let tracker = Tracker::start(deployments.clone(), &format!("bench={NAME}"), deployment_flags).await?;
    let d: Deployment = serde_json::from_value(cluster::deployment(NAME, replicas as i32, IMAGE_V1, Some(1)))?;
    deployments.create(&PostParams::default(), &d).await?;
    let timeout = Duration::from_secs(60 + 10 * replicas as u64);
    tracker.until("the Deployment Available", timeout, |seen| seen.objects.values().any(deployment_done)).await?;
    let mut totals = Vec::new();
    for r in 0..runs {
        let image = if r % 2 == 0 { IMAGE_V2 } else { IMAGE_V1 };
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": image, "imagePullPolicy": "IfNotPresent"}]}}}});
        let t0 = Instant::now();
        let patched = deployments.patch(NAME, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        let generation = patched.metadata.generation.unwrap_or(0);
        let at = tracker
            .until("the rollout complete", timeout, move |seen| {
                seen.objects.values().any(|d| d.metadata.generation >= Some(generation) && deployment_done(d))
            })
            .await?;
        totals.push(ms_since(t0, at));
    }
    Ok(totals)
}
