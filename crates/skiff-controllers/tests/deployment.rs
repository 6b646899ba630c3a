//! The Deployment controller against the real API server, in process, with the real ReplicaSet
//! controller. The test plays the kubelet: it marks pods Running and Ready through `pods/status`
//! (images starting with `broken` never get ready), as Kubernetes' own integration tests do.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use skiff_controllers::deployment::{progress, util};
use skiff_testkit::TestServer;
use tokio::sync::watch;

struct Cluster {
    client: Client,
    stop: watch::Sender<bool>,
    server: TestServer,
}

impl Cluster {
    async fn start() -> Cluster {
        let server = TestServer::start().await;
        let client = server.client("skiff-deployment-test");
        let (stop, _) = watch::channel(false);
        let cluster = Cluster { client, stop, server };
        tokio::spawn(skiff_controllers::deployment::run(cluster.client.clone(), cluster.stopped()));
        tokio::spawn(skiff_controllers::replicaset::run(cluster.client.clone(), cluster.stopped()));
        tokio::spawn(kubelet(cluster.client.clone(), cluster.stopped()));
        cluster
    }

    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.server.stop().await;
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), "default")
    }

    fn replica_sets(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), "default")
    }

    async fn deployment(&self, name: &str) -> Deployment {
        self.deployments().get(name).await.expect("get deployment")
    }

    async fn owned_replica_sets(&self, d: &Deployment) -> Vec<ReplicaSet> {
        let uid = d.metadata.uid.clone();
        let mut rss: Vec<ReplicaSet> = self
            .replica_sets()
            .list(&ListParams::default())
            .await
            .expect("list rs")
            .items
            .into_iter()
            .filter(|rs| {
                rs.owner_references().iter().any(|o| Some(&o.uid) == uid.as_ref() && o.controller == Some(true))
            })
            .collect();
        // Creation times have whole seconds: revisions give the order.
        rss.sort_by(util::by_revision);
        rss
    }

    async fn create(&self, d: Value) -> Deployment {
        let d: Deployment = serde_json::from_value(d).expect("deployment json");
        self.deployments().create(&PostParams::default(), &d).await.expect("create deployment")
    }

    async fn patch(&self, name: &str, patch: Value) {
        self.deployments().patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch deployment");
    }

    /// Waits until the Deployment is complete for its current generation (`DeploymentComplete` and
    /// kubectl's "successfully rolled out").
    async fn wait_complete(&self, name: &str) -> Deployment {
        wait_for(&format!("deployment {name} complete"), Duration::from_secs(60), || async {
            let d = self.deployment(name).await;
            let done = progress::deployment_complete(&d, d.status.as_ref())
                && progress::rollout_status(&d).is_ok_and(|(_, done)| done);
            done.then_some(d)
        })
        .await
    }

    async fn events(&self) -> Vec<String> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), "default");
        let mut events: Vec<Event> = api.list(&ListParams::default()).await.expect("events").items;
        events.sort_by_key(|e| e.first_timestamp.clone().map(|t| t.0));
        events.into_iter().filter_map(|e| Some(format!("{}: {}", e.reason?, e.message?))).collect()
    }
}

/// Polls `f` until it returns Some, or panics after `timeout`.
async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The test's kubelet: every live pod whose image does not start with `broken` becomes Running and
/// Ready.
async fn kubelet(client: Client, stop: impl Future<Output = ()>) {
    let api: Api<Pod> = Api::namespaced(client, "default");
    let work = async {
        loop {
            if let Ok(pods) = api.list(&ListParams::default()).await {
                for pod in pods {
                    let image = pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.containers.first())
                        .and_then(|c| c.image.clone())
                        .unwrap_or_default();
                    let ready = pod
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                    if ready || pod.metadata.deletion_timestamp.is_some() || image.starts_with("broken") {
                        continue;
                    }
                    let now = k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
                    let status = json!({"status": {
                        "phase": "Running",
                        "conditions": [
                            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                            {"type": "Ready", "status": "True", "lastTransitionTime": now},
                            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                        ],
                        "containerStatuses": [{"name": "web", "image": image, "imageID": "", "ready": true, "restartCount": 0,
                                               "started": true, "state": {"running": {"startedAt": now}}}],
                    }});
                    let _ = api.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&status)).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        _ = work => {}
        _ = stop => {}
    }
}

fn web(replicas: i32, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": image}]}}
        }
    })
}

fn annotation(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, key: &str) -> Option<String> {
    meta.annotations.as_ref().and_then(|a| a.get(key)).cloned()
}

fn image_patch(image: &str) -> Value {
    json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}})
}

/// Checks upstream's rolling invariants (`WaitForDeploymentCompleteAndCheckRolling`) until stopped:
/// never more than `replicas + maxSurge` wanted, never fewer than `replicas - maxUnavailable`
/// available. Returns the violations seen.
fn watch_invariants(client: Client, name: &'static str) -> (Arc<AtomicBool>, tokio::task::JoinHandle<Vec<String>>) {
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let task = tokio::spawn(async move {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let rss: Api<ReplicaSet> = Api::namespaced(client, "default");
        let mut violations = vec![];
        while !flag.load(Ordering::SeqCst) {
            let (Ok(d), Ok(list)) = (deployments.get(name).await, rss.list(&ListParams::default()).await) else {
                continue;
            };
            let desired = util::replicas(&d);
            let wanted: i32 = list.items.iter().map(util::rs_replicas).sum();
            let max = desired + util::max_surge(&d);
            if wanted > max {
                violations.push(format!("{wanted} replicas wanted > {max}"));
            }
            let available = d.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
            let min = desired - util::max_unavailable(&d);
            if available < min {
                violations.push(format!("{available} available < {min}"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        violations
    });
    (done, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_then_rolling_update() {
    let c = Cluster::start().await;
    let created = c.create(web(3, "nginx:1")).await;
    let d = c.wait_complete("web").await;
    let rss = c.owned_replica_sets(&created).await;
    assert_eq!(rss.len(), 1);
    let first = rss[0].clone();
    let hash = first.labels().get("pod-template-hash").cloned().expect("hash label");
    assert_eq!(first.name_any(), format!("web-{hash}"));
    assert_eq!(util::rs_replicas(&first), 3);
    assert_eq!(annotation(&first.metadata, util::REVISION).as_deref(), Some("1"));
    assert_eq!(annotation(&d.metadata, util::REVISION).as_deref(), Some("1"));
    let owner = first.owner_references().first().cloned().expect("owner");
    assert_eq!(
        (owner.kind.as_str(), owner.controller, owner.block_owner_deletion),
        ("Deployment", Some(true), Some(true))
    );
    let managers: Vec<String> =
        first.metadata.managed_fields.iter().flatten().filter_map(|m| m.manager.clone()).collect();
    assert!(managers.iter().any(|m| m == "kube-controller-manager"), "managedFields: {managers:?}");
    let progressing = d
        .status
        .as_ref()
        .and_then(|s| progress::get_condition(s, progress::PROGRESSING))
        .cloned()
        .expect("progressing");
    assert_eq!(progressing.reason.as_deref(), Some("NewReplicaSetAvailable"));
    assert_eq!(progressing.message, Some(format!("ReplicaSet \"web-{hash}\" has successfully progressed.")));

    let (done, checker) = watch_invariants(c.client.clone(), "web");
    c.patch("web", image_patch("nginx:2")).await;
    let d = wait_for("new revision", Duration::from_secs(60), || async {
        let d = c.wait_complete("web").await;
        (annotation(&d.metadata, util::REVISION).as_deref() == Some("2")).then_some(d)
    })
    .await;
    done.store(true, Ordering::SeqCst);
    let violations = checker.await.expect("checker");
    assert!(violations.is_empty(), "rolling invariants broken: {violations:?}");

    let rss = c.owned_replica_sets(&d).await;
    assert_eq!(rss.len(), 2);
    let second = rss.iter().find(|rs| rs.name_any() != first.name_any()).expect("new rs");
    assert_eq!(util::rs_replicas(second), 3);
    assert_eq!(annotation(&second.metadata, util::REVISION).as_deref(), Some("2"));
    let old = rss.iter().find(|rs| rs.name_any() == first.name_any()).expect("old rs");
    assert_eq!(util::rs_replicas(old), 0);
    // Events are written in the background: poll for them.
    let scaled_up = format!("ScalingReplicaSet: Scaled up replica set {} from 0 to 1", second.name_any());
    let scaled_down = format!("ScalingReplicaSet: Scaled down replica set {} from 1 to 0", first.name_any());
    wait_for("the ScalingReplicaSet events", Duration::from_secs(10), || async {
        let events = c.events().await;
        (events.contains(&scaled_up) && events.contains(&scaled_down)).then_some(())
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_mid_rollout_is_proportional() {
    let c = Cluster::start().await;
    let created = c.create(web(10, "nginx:1")).await;
    c.wait_complete("web").await;
    // New pods never get ready: the rollout stalls at old 8 / new 5 (10 + 3 surge, 8 available).
    c.patch("web", image_patch("broken:1")).await;
    let sizes = |rss: &[ReplicaSet]| rss.iter().map(util::rs_replicas).collect::<Vec<_>>();
    wait_for("stalled rollout", Duration::from_secs(30), || async {
        let rss = c.owned_replica_sets(&created).await;
        (sizes(&rss) == [8, 5]).then_some(())
    })
    .await;
    c.patch("web", json!({"spec": {"replicas": 20}})).await;
    let rss = wait_for("proportional scale-up", Duration::from_secs(30), || async {
        let rss = c.owned_replica_sets(&created).await;
        (sizes(&rss) == [15, 10]).then_some(rss)
    })
    .await;
    for rs in &rss {
        assert_eq!(annotation(&rs.metadata, util::DESIRED_REPLICAS).as_deref(), Some("20"));
        assert_eq!(annotation(&rs.metadata, util::MAX_REPLICAS).as_deref(), Some("25"));
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_rollback() {
    let c = Cluster::start().await;
    let created = c.create(web(2, "nginx:1")).await;
    c.wait_complete("web").await;
    let first = c.owned_replica_sets(&created).await.remove(0);

    c.patch("web", json!({"spec": {"paused": true}})).await;
    c.patch("web", image_patch("nginx:2")).await;
    let d = wait_for("paused condition", Duration::from_secs(30), || async {
        let d = c.deployment("web").await;
        let reason = d
            .status
            .as_ref()
            .and_then(|s| progress::get_condition(s, progress::PROGRESSING))
            .and_then(|c| c.reason.clone());
        (reason.as_deref() == Some("DeploymentPaused")).then_some(d)
    })
    .await;
    let cond =
        d.status.as_ref().and_then(|s| progress::get_condition(s, progress::PROGRESSING)).cloned().expect("cond");
    assert_eq!((cond.status.as_str(), cond.message.as_deref()), ("Unknown", Some("Deployment is paused")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(c.owned_replica_sets(&created).await.len(), 1, "no rollout while paused");

    c.patch("web", json!({"spec": {"paused": false}})).await;
    let d = wait_for("rollout after resume", Duration::from_secs(60), || async {
        let d = c.wait_complete("web").await;
        (annotation(&d.metadata, util::REVISION).as_deref() == Some("2")).then_some(d)
    })
    .await;
    let second =
        c.owned_replica_sets(&d).await.into_iter().find(|rs| rs.name_any() != first.name_any()).expect("second");

    // `kubectl rollout undo`: the first ReplicaSet's template, without its hash label, back into the
    // Deployment. (kubectl sends a JSON patch; a merge patch with the whole template is equivalent
    // here and needs no `jsonpatch` feature of kube.)
    let mut template = serde_json::to_value(util::rs_template(&first)).expect("template");
    if let Some(labels) = template.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        labels.remove("pod-template-hash");
    }
    c.patch("web", json!({"spec": {"template": template}})).await;
    let d = wait_for("rollback", Duration::from_secs(60), || async {
        let d = c.wait_complete("web").await;
        (annotation(&d.metadata, util::REVISION).as_deref() == Some("3")).then_some(d)
    })
    .await;
    let rss = c.owned_replica_sets(&d).await;
    assert_eq!(rss.len(), 2, "the old ReplicaSet is reused");
    let reused = rss.iter().find(|rs| rs.name_any() == first.name_any()).expect("first again");
    assert_eq!(util::rs_replicas(reused), 2);
    assert_eq!(annotation(&reused.metadata, util::REVISION).as_deref(), Some("3"));
    assert_eq!(annotation(&reused.metadata, util::REVISION_HISTORY).as_deref(), Some("1"));
    let second = rss.iter().find(|rs| rs.name_any() == second.name_any()).expect("second");
    assert_eq!(util::rs_replicas(second), 0);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_deadline_exceeded() {
    let c = Cluster::start().await;
    let mut d = web(2, "broken:1");
    d["spec"]["progressDeadlineSeconds"] = json!(2);
    c.create(d).await;
    let d = wait_for("ProgressDeadlineExceeded", Duration::from_secs(30), || async {
        let d = c.deployment("web").await;
        let reason = d
            .status
            .as_ref()
            .and_then(|s| progress::get_condition(s, progress::PROGRESSING))
            .and_then(|c| c.reason.clone());
        (reason.as_deref() == Some("ProgressDeadlineExceeded")).then_some(d)
    })
    .await;
    let cond =
        d.status.as_ref().and_then(|s| progress::get_condition(s, progress::PROGRESSING)).cloned().expect("cond");
    assert_eq!(cond.status, "False");
    assert!(cond.message.as_deref().is_some_and(|m| m.ends_with("has timed out progressing.")), "{cond:?}");
    assert_eq!(progress::rollout_status(&d), Err("deployment \"web\" exceeded its progress deadline".to_string()));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_never_runs_old_and_new_pods_together() {
    let c = Cluster::start().await;
    let mut d = web(2, "nginx:1");
    d["spec"]["strategy"] = json!({"type": "Recreate"});
    let created = c.create(d).await;
    c.wait_complete("web").await;

    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let checker = tokio::spawn(async move {
        let mut mixed = vec![];
        while !flag.load(Ordering::SeqCst) {
            if let Ok(list) = pods.list(&ListParams::default()).await {
                let mut hashes: Vec<String> =
                    list.items.iter().filter_map(|p| p.labels().get("pod-template-hash").cloned()).collect();
                hashes.sort();
                hashes.dedup();
                if hashes.len() > 1 {
                    mixed.push(hashes);
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        mixed
    });
    c.patch("web", image_patch("nginx:2")).await;
    let d = wait_for("recreate rollout", Duration::from_secs(60), || async {
        let d = c.wait_complete("web").await;
        (annotation(&d.metadata, util::REVISION).as_deref() == Some("2")).then_some(d)
    })
    .await;
    done.store(true, Ordering::SeqCst);
    let mixed = checker.await.expect("checker");
    assert!(mixed.is_empty(), "old and new pods ran together: {mixed:?}");
    // Creation times have whole seconds, so order by revision.
    let mut rss = c.owned_replica_sets(&created).await;
    rss.sort_by(util::by_revision);
    assert_eq!(rss.iter().map(util::rs_replicas).collect::<Vec<_>>(), [0, 2]);
    assert_eq!(d.status.as_ref().and_then(|s| s.updated_replicas), Some(2));
    c.stop().await;
}
