//! Scenario 2: self-healing. A Deployment's pods, one at a time:
//!
//! - its container's process killed (`kill -9` of the PID `runc state` gives) → the container
//!   restarted (restartCount up) and the pod Ready again. Each pod is killed only once: the kubelet's
//!   crash back-off (10 s after a first restart) would otherwise be what is measured.
//! - the pod deleted → a replacement pod (a new UID) Ready.
//!
//! Times are from the kill or the delete request to the watch event that showed the result.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};

use super::{ms_since, table};
use crate::Output;
use crate::chart::Series;
use crate::cluster::{self, Cluster, Env, IMAGE_V1};
use crate::procs::kill9;
use crate::report::Section;
use crate::track::{Tracker, first_container, pod_flags, pod_live, pod_ready};

const NAME: &str = "heal";
const TIMEOUT: Duration = Duration::from_secs(120);

/// Live, Ready pods: (uid, name, restart count, container id).
fn ready_pods(tracker: &Tracker<Pod>) -> Vec<(String, String, i32, Option<String>)> {
    tracker.with(|seen| {
        seen.objects
            .iter()
            .filter(|(_, p)| pod_live(p) && pod_ready(p))
            .map(|(uid, p)| {
                let (restarts, id) = first_container(p);
                (uid.clone(), p.name_any(), restarts, id)
            })
            .collect()
    })
}

async fn wait_all_ready(tracker: &Tracker<Pod>, replicas: usize) -> anyhow::Result<()> {
    tracker
        .until(&format!("{replicas} pods Ready"), TIMEOUT, move |seen| {
            seen.objects.values().filter(|p| pod_live(p) && pod_ready(p)).count() >= replicas
        })
        .await?;
    Ok(())
}

pub async fn run(env: &Env, out: &Output) -> anyhow::Result<Section> {
    let (replicas, iterations) = if env.quick { (1, 1) } else { (5, 25) };
    let cluster = Cluster::start(env).await?;
    let measured = measure(&cluster, replicas, iterations).await;
    let shutdown = cluster.shutdown().await;
    let (kill_ms, delete_ms) = measured?;
    shutdown?;

    let mut section = Section::new("self-healing");
    section.line("## Self-healing (scenario 2)");
    section.line(format!(
        "How: a Deployment of {replicas} busybox httpd pods on the real agent. Alternately, the container \
         process of a pod not killed before is killed (`kill -9` of the PID from `runc state`), timed until \
         the pod shows a higher restartCount and is Ready again (each pod is killed once: a second crash \
         would wait out the kubelet's 10 s back-off, as Kubernetes does), and a pod is deleted, timed \
         until a replacement pod (new UID) is Ready. {iterations} of each.\n"
    ));
    let rows = vec![
        ("process killed → restarted and Ready".to_string(), section.metric("kill_to_ready_ms", "ms", &kill_ms)),
        (
            "pod deleted → replacement Ready".to_string(),
            section.metric("delete_to_replacement_ready_ms", "ms", &delete_ms),
        ),
    ];
    section.line(table("ms", &rows));
    let series = [Series::new("kill -9 → Ready", &kill_ms), Series::new("delete → replacement Ready", &delete_ms)];
    section.line(out.chart("self-healing", "Self-healing (ms)", "ms", &series));
    Ok(section)
}

async fn measure(cluster: &Cluster, replicas: usize, iterations: usize) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let pods = cluster.pods();
    let tracker = Tracker::start(pods.clone(), &format!("bench={NAME}"), pod_flags).await?;
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), "default");
    let d: Deployment = serde_json::from_value(cluster::deployment(NAME, replicas as i32, IMAGE_V1, None))?;
    deployments.create(&PostParams::default(), &d).await?;
    wait_all_ready(&tracker, replicas).await?;
    let mut killed: HashSet<String> = HashSet::new();
    let (mut kill_ms, mut delete_ms) = (Vec::new(), Vec::new());
    for _ in 0..iterations {
        // Kill the process of a pod never killed.
        wait_all_ready(&tracker, replicas).await?;
        let pod = ready_pods(&tracker).into_iter().find(|p| !killed.contains(&p.0));
        let (uid, _name, restarts, id) = pod.ok_or_else(|| anyhow::anyhow!("no pod left that was never killed"))?;
        let id = id.ok_or_else(|| anyhow::anyhow!("the pod's container has no ID"))?;
        let pid = cluster.agent.container_pid(id.trim_start_matches("skiff://"))?;
        killed.insert(uid.clone());
        let t0 = Instant::now();
        kill9(pid)?;
        let target = uid.clone();
        let at = tracker
            .until("the killed container restarted and Ready", TIMEOUT, move |seen| {
                seen.objects.get(&target).is_some_and(|p| pod_ready(p) && first_container(p).0 > restarts)
            })
            .await?;
        kill_ms.push(ms_since(t0, at));

        // Delete a pod (one already killed, so that fresh ones remain to kill).
        wait_all_ready(&tracker, replicas).await?;
        let ready = ready_pods(&tracker);
        let victim = ready.iter().find(|p| killed.contains(&p.0)).or(ready.first()).cloned();
        let (_, name, _, _) = victim.ok_or_else(|| anyhow::anyhow!("no Ready pod to delete"))?;
        let before: HashSet<String> = tracker.with(|seen| seen.objects.keys().cloned().collect());
        let t0 = Instant::now();
        pods.delete(&name, &DeleteParams::default()).await?;
        let at = tracker
            .until("a replacement pod Ready", TIMEOUT, move |seen| {
                seen.objects.iter().any(|(uid, p)| !before.contains(uid) && pod_live(p) && pod_ready(p))
            })
            .await?;
        delete_ms.push(ms_since(t0, at));
    }
    Ok((kill_ms, delete_ms))
}
