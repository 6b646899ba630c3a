//! The garbage collector against the real API server, in process. No other controller runs: the
//! tests build the Deployment → ReplicaSet → Pod chain by hand, as the controllers would (ownerRefs
//! with `controller: true, blockOwnerDeletion: true`), with pods that are not on a node so that
//! deleting them is immediate.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use skiff_controllers::gc;
use skiff_testkit::TestServer;
use tokio::sync::oneshot;

const NS: &str = "default";
const WAIT: Duration = Duration::from_secs(30);

/// A running API server and a client; the collector runs once [`Env::start_gc`] is called and
/// stops on [`Env::stop`].
struct Env {
    client: Client,
    _server: TestServer,
    stop: Option<oneshot::Sender<()>>,
    gc: Option<tokio::task::JoinHandle<()>>,
}

impl Env {
    async fn server() -> Env {
        let server = TestServer::start().await;
        let client = server.client("skiff-gc-test");
        Env { client, _server: server, stop: None, gc: None }
    }

    async fn start() -> Env {
        let mut env = Env::server().await;
        env.start_gc();
        env
    }

    fn start_gc(&mut self) {
        let (stop, stopped) = oneshot::channel::<()>();
        let collector = gc::GarbageCollector::new(self.client.clone()).workers(2);
        self.gc = Some(tokio::spawn(collector.run(async move {
            let _ = stopped.await;
        })));
        self.stop = Some(stop);
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), NS)
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.gc.take() {
            tokio::time::timeout(Duration::from_secs(10), task).await.expect("the collector stops").expect("join");
        }
    }
}

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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn from_json<K: DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).expect("object")
}

/// An ownerReference as the Deployment and ReplicaSet controllers write them.
fn controller_ref<K: kube::Resource<DynamicType = ()>>(owner: &K) -> Value {
    json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "name": owner.name_any(),
        "uid": owner.uid().expect("uid"),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

fn template() -> Value {
    json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
}

/// The chain the Deployment controller would build: a Deployment, a ReplicaSet it controls, and
/// `pods` pods the ReplicaSet controls.
struct Chain {
    deployment: Deployment,
    rs: ReplicaSet,
    pods: Vec<Pod>,
}

async fn create_chain(env: &Env, name: &str, pods: usize) -> Chain {
    let pp = PostParams::default();
    let deployment: Deployment = env
        .api::<Deployment>()
        .create(
            &pp,
            &from_json(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name},
                "spec": {"replicas": pods, "selector": {"matchLabels": {"app": "web"}}, "template": template()}
            })),
        )
        .await
        .expect("create deployment");
    let rs: ReplicaSet = env
        .api::<ReplicaSet>()
        .create(
            &pp,
            &from_json(json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": format!("{name}-1"), "ownerReferences": [controller_ref(&deployment)]},
                "spec": {"replicas": pods, "selector": {"matchLabels": {"app": "web"}}, "template": template()}
            })),
        )
        .await
        .expect("create replicaset");
    let mut created = Vec::new();
    for i in 0..pods {
        let pod: Pod = env
            .api::<Pod>()
            .create(
                &pp,
                &from_json(json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("{name}-1-{i}"), "labels": {"app": "web"}, "ownerReferences": [controller_ref(&rs)]},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}
                })),
            )
            .await
            .expect("create pod");
        created.push(pod);
    }
    Chain { deployment, rs, pods: created }
}

async fn exists<K>(api: &Api<K>, name: &str) -> Option<K>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.expect("get")
}

async fn count_pods(env: &Env) -> usize {
    env.api::<Pod>().list(&ListParams::default()).await.expect("list pods").items.len()
}

fn delete_with(policy: kube::api::PropagationPolicy) -> DeleteParams {
    DeleteParams { propagation_policy: Some(policy), ..DeleteParams::default() }
}

fn configmap(name: &str, owners: &[&ConfigMap]) -> ConfigMap {
    let refs: Vec<Value> = owners
        .iter()
        .map(|o| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": o.name_any(), "uid": o.uid().expect("uid")}))
        .collect();
    let mut metadata = json!({"name": name});
    if !refs.is_empty() {
        metadata["ownerReferences"] = json!(refs);
    }
    from_json(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"k": "v"}}))
}

async fn create_cm(env: &Env, name: &str, owners: &[&ConfigMap]) -> ConfigMap {
    env.api::<ConfigMap>().create(&PostParams::default(), &configmap(name, owners)).await.expect("create configmap")
}

#[tokio::test]
async fn background_delete_of_a_deployment_takes_its_replicaset_and_pods() {
    let env = Env::start().await;
    let chain = create_chain(&env, "web", 3).await;
    let other = create_chain(&env, "other", 1).await;
    let gone = env
        .api::<Deployment>()
        .delete("web", &delete_with(kube::api::PropagationPolicy::Background))
        .await
        .expect("delete deployment");
    assert!(gone.is_right(), "a background delete removes the deployment at once");

    let rs_api = env.api::<ReplicaSet>();
    wait_for("the replicaset to go", || async { exists(&rs_api, "web-1").await.is_none().then_some(()) }).await;
    let pod_api = env.api::<Pod>();
    for p in &chain.pods {
        let name = p.name_any();
        wait_for(&format!("pod {name} to go"), || async { exists(&pod_api, &name).await.is_none().then_some(()) })
            .await;
    }
    // The other chain is untouched.
    assert!(exists(&env.api::<Deployment>(), "other").await.is_some());
    assert_eq!(exists(&rs_api, "other-1").await.map(|r| r.uid()), Some(other.rs.uid()));
    assert_eq!(count_pods(&env).await, 1);
    assert_eq!(chain.deployment.name_any(), "web");
    env.stop().await;
}

#[tokio::test]
async fn foreground_delete_keeps_the_deployment_until_replicaset_and_pods_are_gone() {
    let env = Env::start().await;
    let chain = create_chain(&env, "web", 2).await;
    // One pod carries a finalizer of its own: it cannot go until the test lets it, which holds the
    // ReplicaSet and, through it, the Deployment.
    let held = chain.pods[0].name_any();
    let pod_api = env.api::<Pod>();
    pod_api
        .patch(
            &held,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"finalizers": ["example.com/hold"]}})),
        )
        .await
        .expect("add finalizer");

    let deploy_api = env.api::<Deployment>();
    let pending = deploy_api
        .delete("web", &delete_with(kube::api::PropagationPolicy::Foreground))
        .await
        .expect("delete deployment")
        .left()
        .expect("a foreground delete leaves the deployment in place");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert_eq!(pending.finalizers(), ["foregroundDeletion"]);

    // The collector propagates: the ReplicaSet is deleted in the foreground (it has pods), the pods
    // are deleted; the free pod goes, the held one waits on its finalizer.
    let rs_api = env.api::<ReplicaSet>();
    let rs = wait_for("the replicaset to be deleted in the foreground", || async {
        exists(&rs_api, "web-1").await.filter(|rs| rs.metadata.deletion_timestamp.is_some())
    })
    .await;
    assert_eq!(rs.finalizers(), ["foregroundDeletion"]);
    let free = chain.pods[1].name_any();
    wait_for("the free pod to go", || async { exists(&pod_api, &free).await.is_none().then_some(()) }).await;
    let held_pod = wait_for("the held pod to be marked", || async {
        exists(&pod_api, &held).await.filter(|p| p.metadata.deletion_timestamp.is_some())
    })
    .await;
    assert_eq!(held_pod.finalizers(), ["example.com/hold"]);
    // Give the collector time to do anything wrong: the owners must wait for the held pod.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still = exists(&deploy_api, "web").await.expect("the deployment waits for its dependents");
    assert_eq!(still.finalizers(), ["foregroundDeletion"]);
    assert!(still.metadata.deletion_timestamp.is_some());
    assert!(exists(&rs_api, "web-1").await.is_some(), "the replicaset waits for its pod");

    // Let the pod go: the ReplicaSet goes, then the Deployment.
    pod_api
        .patch(&held, &PatchParams::default(), &Patch::Merge(&json!({"metadata": {"finalizers": null}})))
        .await
        .expect("remove finalizer");
    wait_for("the deployment to go", || async {
        if exists(&deploy_api, "web").await.is_some() {
            return None;
        }
        // Read after the deployment was seen gone: its dependents went before it.
        assert!(exists(&rs_api, "web-1").await.is_none(), "the replicaset went before the deployment");
        assert_eq!(count_pods(&env).await, 0, "the pods went before the deployment");
        Some(())
    })
    .await;
    env.stop().await;
}

#[tokio::test]
async fn orphan_delete_removes_the_deployment_and_keeps_its_dependents() {
    let env = Env::start().await;
    let chain = create_chain(&env, "web", 2).await;
    let deploy_api = env.api::<Deployment>();
    let pending = deploy_api
        .delete("web", &delete_with(kube::api::PropagationPolicy::Orphan))
        .await
        .expect("delete deployment")
        .left()
        .expect("an orphan delete leaves the deployment in place");
    assert_eq!(pending.finalizers(), ["orphan"]);

    wait_for("the deployment to go", || async { exists(&deploy_api, "web").await.is_none().then_some(()) }).await;
    let rs = exists(&env.api::<ReplicaSet>(), "web-1").await.expect("the replicaset stays");
    assert_eq!(rs.uid(), chain.rs.uid());
    assert_eq!(rs.metadata.owner_references, None, "the replicaset no longer names the deployment");
    let pod_api = env.api::<Pod>();
    for p in &chain.pods {
        let live = exists(&pod_api, &p.name_any()).await.expect("the pod stays");
        assert_eq!(live.owner_references(), p.owner_references(), "pods keep their replicaset");
    }
    // Orphaned, they stay for good.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(exists(&env.api::<ReplicaSet>(), "web-1").await.is_some());
    assert_eq!(count_pods(&env).await, 2);
    env.stop().await;
}

#[tokio::test]
async fn deleting_a_configmap_owner_removes_its_dependent_configmaps() {
    let env = Env::start().await;
    let owner = create_cm(&env, "owner", &[]).await;
    create_cm(&env, "dep-a", &[&owner]).await;
    create_cm(&env, "dep-b", &[&owner]).await;
    create_cm(&env, "bystander", &[]).await;
    let api = env.api::<ConfigMap>();
    // No propagationPolicy: the default for ConfigMaps is background.
    api.delete("owner", &DeleteParams::default()).await.expect("delete owner");
    for name in ["dep-a", "dep-b"] {
        wait_for(&format!("{name} to go"), || async { exists(&api, name).await.is_none().then_some(()) }).await;
    }
    assert!(exists(&api, "bystander").await.is_some());
    env.stop().await;
}

#[tokio::test]
async fn a_dependent_with_two_owners_survives_while_one_is_alive() {
    let env = Env::start().await;
    let a = create_cm(&env, "owner-a", &[]).await;
    let b = create_cm(&env, "owner-b", &[]).await;
    create_cm(&env, "shared", &[&a, &b]).await;
    let api = env.api::<ConfigMap>();
    api.delete("owner-a", &DeleteParams::default()).await.expect("delete owner-a");
    // The collector keeps it and drops the dangling reference, as upstream does.
    let kept = wait_for("the dangling reference to go", || async {
        exists(&api, "shared").await.filter(|cm| cm.owner_references().len() == 1)
    })
    .await;
    assert_eq!(kept.owner_references()[0].uid, b.uid().expect("uid"));
    assert_eq!(kept.owner_references()[0].name, "owner-b");

    api.delete("owner-b", &DeleteParams::default()).await.expect("delete owner-b");
    wait_for("the dependent to go with its last owner", || async {
        exists(&api, "shared").await.is_none().then_some(())
    })
    .await;
    env.stop().await;
}

#[tokio::test]
async fn garbage_from_before_the_collector_started_is_collected_and_uid_mismatch_counts_as_absent() {
    let mut env = Env::server().await;
    let api = env.api::<ConfigMap>();
    let owner = create_cm(&env, "owner", &[]).await;
    create_cm(&env, "owned", &[&owner]).await;
    // Names "owner", but with a UID that is not the live owner's: the owner it meant is gone.
    let mut impostor = configmap("stale-ref", &[&owner]);
    if let Some(refs) = impostor.metadata.owner_references.as_mut() {
        refs[0].uid = "00000000-0000-0000-0000-000000000000".into();
    }
    api.create(&PostParams::default(), &impostor).await.expect("create stale-ref");
    // Its owner was deleted while no collector ran.
    let gone = create_cm(&env, "gone", &[]).await;
    create_cm(&env, "orphaned-by-downtime", &[&gone]).await;
    api.delete("gone", &DeleteParams::default()).await.expect("delete gone");
    // A whole chain whose deployment went while no collector ran.
    create_chain(&env, "web", 2).await;
    env.api::<Deployment>().delete("web", &DeleteParams::default()).await.expect("delete deployment");

    env.start_gc();
    for name in ["stale-ref", "orphaned-by-downtime"] {
        wait_for(&format!("{name} to go"), || async { exists(&api, name).await.is_none().then_some(()) }).await;
    }
    wait_for("the chain to go", || async {
        (exists(&env.api::<ReplicaSet>(), "web-1").await.is_none() && count_pods(&env).await == 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(exists(&api, "owned").await.is_some(), "a dependent whose owner lives stays");
    assert!(exists(&api, "owner").await.is_some());
    env.stop().await;
}

#[tokio::test]
async fn an_owner_recreated_under_the_same_name_does_not_keep_old_dependents() {
    let env = Env::start().await;
    let api = env.api::<ConfigMap>();
    let first = create_cm(&env, "owner", &[]).await;
    create_cm(&env, "dep", &[&first]).await;
    // Delete and re-create quickly: by the time the collector looks, "owner" exists again, with
    // another UID.
    api.delete("owner", &DeleteParams::default()).await.expect("delete owner");
    let second = create_cm(&env, "owner", &[]).await;
    assert_ne!(first.uid(), second.uid());
    wait_for("dep to go", || async { exists(&api, "dep").await.is_none().then_some(()) }).await;
    assert!(exists(&api, "owner").await.is_some(), "the new owner is not touched");
    env.stop().await;
}
