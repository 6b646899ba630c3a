//! What the controllers cache: objects without managedFields, and writes built from such a cached
//! object keep the stored entries (the API server treats a write without managedFields so).

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use skiff_testkit::TestServer;

#[tokio::test]
async fn cached_objects_have_no_managed_fields_and_updates_keep_the_stored_ones() {
    let server = TestServer::start().await;
    let pods: Api<Pod> = Api::default_namespaced(server.client("creator/v1"));
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "labels": {"app": "a"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}
    }))
    .expect("a Pod");
    let created = pods.create(&PostParams::default(), &pod).await.expect("create");
    assert!(created.metadata.managed_fields.as_ref().is_some_and(|m| !m.is_empty()), "the server records managers");

    let cache_client: Api<Pod> =
        Api::default_namespaced(server.loopback_client(skiff_controllers::manager::USER_AGENT));
    let mut stream = skiff_controllers::watch(cache_client.clone(), watcher::Config::default()).boxed();
    let cached = loop {
        match stream.next().await.expect("the watch goes on").expect("a watch event") {
            watcher::Event::InitApply(p) | watcher::Event::Apply(p) => break p,
            _ => continue,
        }
    };
    assert_eq!(cached.metadata.name.as_deref(), Some("p"));
    assert_eq!(cached.metadata.managed_fields, None, "trimmed in the cache");

    // An update (PUT) built from the cached copy: the creator's entry stays, the controller's joins.
    let mut edited = cached.clone();
    edited.metadata.labels.get_or_insert_default().insert("tier".into(), "web".into());
    let updated = cache_client.replace("p", &PostParams::default(), &edited).await.expect("update from the cache");
    let managers: Vec<_> = updated.metadata.managed_fields.iter().flatten().filter_map(|m| m.manager.clone()).collect();
    assert_eq!(managers, ["creator", "kube-controller-manager"]);
    server.stop().await;
}
