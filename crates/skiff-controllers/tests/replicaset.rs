//! The ReplicaSet controller against the real API server, in process. The test plays the kubelet
//! (marks pods Running and Ready through `pods/status`), as Kubernetes' own integration tests do
//! (`test/integration/replicaset/replicaset_test.go`).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use skiff_controllers::replicaset;
use skiff_testkit::TestServer;
use tokio::sync::oneshot;

const NS: &str = "default";
const WAIT: Duration = Duration::from_secs(30);

/// A running API server, a client, and the controller; dropping stops the controller.
struct Env {
    client: Client,
    _server: TestServer,
    stop: Option<oneshot::Sender<()>>,
    controller: Option<tokio::task::JoinHandle<()>>,
}

impl Env {
    async fn start() -> Env {
        let server = TestServer::start().await;
        // As kube-controller-manager identifies itself (the server derives managedFields' manager).
        let client = server.client(replicaset::USER_AGENT);
        let (stop, stopped) = oneshot::channel::<()>();
        let options = replicaset::Options { workers: 2, ..replicaset::Options::default() };
        let controller = tokio::spawn(replicaset::run_with(client.clone(), options, async move {
            let _ = stopped.await;
        }));
        Env { client, _server: server, stop: Some(stop), controller: Some(controller) }
    }

    fn rs_api(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), NS)
    }

    fn pod_api(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), NS)
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(c) = self.controller.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), c).await;
        }
    }
}

fn replica_set(name: &str, replicas: i32, min_ready_seconds: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "minReadySeconds": min_ready_seconds,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "tier": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}
            }
        }
    }))
    .expect("replicaset")
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

/// The live pods controlled by the ReplicaSet with `uid`.
async fn owned_pods(api: &Api<Pod>, uid: &str) -> Vec<Pod> {
    let list = api.list(&ListParams::default()).await.expect("list pods");
    list.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.owner_references().iter().any(|r| r.uid == uid && r.controller == Some(true)))
        .collect()
}

async fn wait_owned(env: &Env, uid: &str, n: usize) -> Vec<Pod> {
    let api = env.pod_api();
    wait_for(&format!("{n} owned pods"), || {
        let api = api.clone();
        async move {
            let pods = owned_pods(&api, uid).await;
            (pods.len() == n).then_some(pods)
        }
    })
    .await
}

/// Plays the kubelet: the pod runs; `ready` sets its Ready condition.
async fn set_running(api: &Api<Pod>, name: &str, ready: bool) {
    let now = Timestamp::now().to_string();
    let status = if ready { "True" } else { "False" };
    let patch = json!({"status": {
        "phase": "Running",
        "conditions": [
            {"type": "Ready", "status": status, "lastTransitionTime": now},
            {"type": "ContainersReady", "status": status, "lastTransitionTime": now}
        ]
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch pod status");
}

fn names(pods: &[Pod]) -> Vec<String> {
    let mut n: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
    n.sort();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_pods_with_owner_references_labels_and_generated_names() {
    let env = Env::start().await;
    let rs = env.rs_api().create(&PostParams::default(), &replica_set("web", 3, 0)).await.expect("create rs");
    let uid = rs.uid().expect("uid");
    let pods = wait_owned(&env, &uid, 3).await;
    for pod in &pods {
        let name = pod.name_any();
        assert!(name.starts_with("web-") && name.len() == "web-".len() + 5, "name {name}");
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-"));
        let want: BTreeMap<String, String> =
            [("app", "web"), ("tier", "web")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(pod.metadata.labels.as_ref(), Some(&want));
        let refs = pod.owner_references();
        assert_eq!(refs.len(), 1);
        let r = &refs[0];
        assert_eq!(
            (
                r.api_version.as_str(),
                r.kind.as_str(),
                r.name.as_str(),
                r.uid.as_str(),
                r.controller,
                r.block_owner_deletion
            ),
            ("apps/v1", "ReplicaSet", "web", uid.as_str(), Some(true), Some(true))
        );
        let containers = &pod.spec.as_ref().expect("spec").containers;
        assert_eq!(containers[0].image.as_deref(), Some("nginx:1.27"));
    }
    // Status catches up: 3 replicas, all fully labelled, generation observed.
    let rs_api = env.rs_api();
    wait_for("status.replicas=3", || {
        let api = rs_api.clone();
        async move {
            let rs = api.get("web").await.ok()?;
            let s = rs.status?;
            (s.replicas == 3 && s.fully_labeled_replicas == Some(3) && s.observed_generation == Some(1)).then_some(())
        }
    })
    .await;
    // One SuccessfulCreate Event per pod, worded as upstream.
    let events: Api<Event> = Api::namespaced(env.client.clone(), NS);
    let want_messages: Vec<String> = names(&pods).iter().map(|n| format!("Created pod: {n}")).collect();
    wait_for("SuccessfulCreate events", || {
        let events = events.clone();
        let want = want_messages.clone();
        async move {
            let list = events.list(&ListParams::default()).await.ok()?;
            let mut got: Vec<String> = list
                .items
                .iter()
                .filter(|e| {
                    e.reason.as_deref() == Some("SuccessfulCreate") && e.involved_object.name.as_deref() == Some("web")
                })
                .filter_map(|e| e.message.clone())
                .collect();
            got.sort();
            (got == want).then_some(())
        }
    })
    .await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pod_is_replaced() {
    let env = Env::start().await;
    let rs = env.rs_api().create(&PostParams::default(), &replica_set("rep", 2, 0)).await.expect("create rs");
    let uid = rs.uid().expect("uid");
    let pods = wait_owned(&env, &uid, 2).await;
    let victim = pods[0].name_any();
    env.pod_api().delete(&victim, &DeleteParams::default()).await.expect("delete pod");
    let api = env.pod_api();
    let replaced = wait_for("a replacement pod", || {
        let api = api.clone();
        let uid = uid.clone();
        let victim = victim.clone();
        async move {
            let pods = owned_pods(&api, &uid).await;
            (pods.len() == 2 && pods.iter().all(|p| p.name_any() != victim)).then_some(pods)
        }
    })
    .await;
    assert!(names(&replaced).contains(&pods[1].name_any()));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_deletes_not_ready_pods_before_ready_ones() {
    let env = Env::start().await;
    let rs = env.rs_api().create(&PostParams::default(), &replica_set("down", 3, 0)).await.expect("create rs");
    let uid = rs.uid().expect("uid");
    let pods = wait_owned(&env, &uid, 3).await;
    let api = env.pod_api();
    let all = names(&pods);
    // All three run; only the first two are ready.
    set_running(&api, &all[0], true).await;
    set_running(&api, &all[1], true).await;
    set_running(&api, &all[2], false).await;
    let rs_api = env.rs_api();
    wait_for("readyReplicas=2", || {
        let api = rs_api.clone();
        async move { (api.get("down").await.ok()?.status?.ready_replicas == Some(2)).then_some(()) }
    })
    .await;
    rs_api
        .patch("down", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 2}})))
        .await
        .expect("scale down");
    let left = wait_owned(&env, &uid, 2).await;
    assert_eq!(names(&left), all[..2].to_vec(), "the not-ready pod goes first");
    // And the SuccessfulDelete Event names it.
    let events: Api<Event> = Api::namespaced(env.client.clone(), NS);
    let want = format!("Deleted pod: {}", all[2]);
    wait_for("SuccessfulDelete event", || {
        let events = events.clone();
        let want = want.clone();
        async move {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items
                .iter()
                .any(|e| e.reason.as_deref() == Some("SuccessfulDelete") && e.message.as_deref() == Some(want.as_str()))
                .then_some(())
        }
    })
    .await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_adopted_and_relabelled_pods_released() {
    let env = Env::start().await;
    let api = env.pod_api();
    let orphan: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "orphan", "labels": {"app": "adopt"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .expect("pod");
    api.create(&PostParams::default(), &orphan).await.expect("create orphan");
    let rs = env.rs_api().create(&PostParams::default(), &replica_set("adopt", 2, 0)).await.expect("create rs");
    let uid = rs.uid().expect("uid");
    let pods = wait_owned(&env, &uid, 2).await;
    assert!(names(&pods).contains(&"orphan".to_string()), "the orphan is adopted: {:?}", names(&pods));
    let adopted = api.get("orphan").await.expect("get orphan");
    let r = &adopted.owner_references()[0];
    assert_eq!(
        (r.kind.as_str(), r.name.as_str(), r.controller, r.block_owner_deletion),
        ("ReplicaSet", "adopt", Some(true), Some(true))
    );
    // Only one pod was created: the orphan counted.
    assert_eq!(pods.iter().filter(|p| p.metadata.generate_name.as_deref() == Some("adopt-")).count(), 1);

    // Relabel the adopted pod: it is released and replaced.
    api.patch("orphan", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "elsewhere"}}})))
        .await
        .expect("relabel");
    let released = wait_for("the relabelled pod to be released", || {
        let api = api.clone();
        let uid = uid.clone();
        async move {
            let p = api.get("orphan").await.ok()?;
            (!p.owner_references().iter().any(|r| r.uid == uid)).then_some(p)
        }
    })
    .await;
    assert!(released.metadata.deletion_timestamp.is_none());
    let now_owned = wait_owned(&env, &uid, 2).await;
    assert!(!names(&now_owned).contains(&"orphan".to_string()));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_follow_readiness_and_availability() {
    let env = Env::start().await;
    let rs = env.rs_api().create(&PostParams::default(), &replica_set("avail", 2, 2)).await.expect("create rs");
    let uid = rs.uid().expect("uid");
    let pods = wait_owned(&env, &uid, 2).await;
    let rs_api = env.rs_api();
    let status = |want: (i32, Option<i32>, Option<i32>)| {
        let api = rs_api.clone();
        async move {
            let s = api.get("avail").await.ok()?.status?;
            ((s.replicas, s.ready_replicas, s.available_replicas) == want).then_some(s)
        }
    };
    wait_for("replicas=2 ready=0", || status((2, None, None))).await;
    let api = env.pod_api();
    for p in &pods {
        set_running(&api, &p.name_any(), true).await;
    }
    // Ready at once, available only after minReadySeconds (2 s), with no further pod event.
    let ready = wait_for("ready=2", || {
        let api = rs_api.clone();
        async move {
            let s = api.get("avail").await.ok()?.status?;
            (s.ready_replicas == Some(2)).then_some(s)
        }
    })
    .await;
    assert_ne!(ready.available_replicas, Some(2), "not available before minReadySeconds");
    let s = wait_for("available=2", || status((2, Some(2), Some(2)))).await;
    assert_eq!(s.fully_labeled_replicas, Some(2));
    assert_eq!(s.terminating_replicas, Some(0));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_pods_are_replaced_and_counted() {
    let env = Env::start().await;
    let api = env.pod_api();
    // A pod bound to a node: its deletion is graceful (it stays, with a deletionTimestamp, until the
    // kubelet confirms), so it is terminating for a while.
    let bound: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "bound", "labels": {"app": "term"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]}
    }))
    .expect("pod");
    api.create(&PostParams::default(), &bound).await.expect("create pod");
    let rs = env.rs_api().create(&PostParams::default(), &replica_set("term", 1, 0)).await.expect("create rs");
    let uid = rs.uid().expect("uid");
    let pods = wait_owned(&env, &uid, 1).await;
    assert_eq!(names(&pods), vec!["bound"]);
    api.delete("bound", &DeleteParams::default()).await.expect("delete pod");
    let replacement = wait_owned(&env, &uid, 1).await;
    assert_ne!(names(&replacement), vec!["bound"]);
    let still_there = api.get("bound").await.expect("the terminating pod is still there");
    assert!(still_there.metadata.deletion_timestamp.is_some());
    let rs_api = env.rs_api();
    wait_for("terminatingReplicas=1", || {
        let api = rs_api.clone();
        async move {
            let s = api.get("term").await.ok()?.status?;
            (s.replicas == 1 && s.terminating_replicas == Some(1)).then_some(())
        }
    })
    .await;
    env.stop().await;
}
