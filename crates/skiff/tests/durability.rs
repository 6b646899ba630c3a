//! End-to-end: what the server acknowledged survives `kill -9`, and its credentials are reused.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use common::Server;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

const N: usize = 200;

fn configmap(name: &str, i: usize) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"batch": "durability"}}, "data": {"i": i.to_string()}}),
    )
    .expect("a ConfigMap")
}

/// name → (resourceVersion, uid, data.i) of every listed ConfigMap with the test's label.
async fn stored(api: &Api<ConfigMap>) -> BTreeMap<String, (String, String, String)> {
    let list = api.list(&ListParams::default().labels("batch=durability")).await.expect("list");
    list.items
        .iter()
        .map(|c| {
            let i = c.data.as_ref().and_then(|d| d.get("i")).cloned().unwrap_or_default();
            (c.name_any(), (c.resource_version().unwrap_or_default(), c.uid().unwrap_or_default(), i))
        })
        .collect()
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let mut s = Server::start();
    let api: Api<ConfigMap> = Api::default_namespaced(s.client().await);
    // Concurrent creates exercise group commit; each is acknowledged before we count it.
    let acknowledged: BTreeMap<String, (String, String, String)> = futures::stream::iter(0..N)
        .map(|i| {
            let api = api.clone();
            async move {
                let name = format!("durable-{i:03}");
                let cm = api.create(&PostParams::default(), &configmap(&name, i)).await.expect("create");
                (name, (cm.resource_version().unwrap_or_default(), cm.uid().unwrap_or_default(), i.to_string()))
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert_eq!(acknowledged.len(), N);
    let max_rv = acknowledged.values().map(|(rv, _, _)| rv.parse::<u64>().expect("numeric rv")).max().expect("some");
    let mut rvs: Vec<u64> = acknowledged.values().map(|(rv, _, _)| rv.parse().expect("numeric")).collect();
    rvs.sort();
    rvs.dedup();
    assert_eq!(rvs.len(), N, "every write has its own resourceVersion");

    s.kill9();
    s.restart();
    let api: Api<ConfigMap> = Api::default_namespaced(s.client().await);
    let after = stored(&api).await;
    assert_eq!(after.len(), N, "all {N} acknowledged ConfigMaps are back\n{}", s.log_text());
    assert_eq!(after, acknowledged, "same resourceVersions, uids and data after kill -9");

    // Revisions continue after the last one written before the crash.
    let next = api.create(&PostParams::default(), &configmap("after-restart", 0)).await.expect("create after restart");
    let next_rv: u64 = next.resource_version().unwrap_or_default().parse().expect("numeric");
    assert!(next_rv > max_rv, "{next_rv} must be newer than {max_rv}");
    // The built-in namespaces are not created twice.
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(s.client().await);
    let names: Vec<String> =
        ns.list(&ListParams::default()).await.expect("list ns").items.iter().map(|n| n.name_any()).collect();
    assert_eq!(names, ["default", "kube-node-lease", "kube-public", "kube-system"]);
}

#[tokio::test]
async fn a_graceful_stop_keeps_everything_too() {
    let mut s = Server::start();
    let api: Api<ConfigMap> = Api::default_namespaced(s.client().await);
    for i in 0..10 {
        api.create(&PostParams::default(), &configmap(&format!("graceful-{i}"), i)).await.expect("create");
    }
    let before = stored(&api).await;
    let status = s.terminate();
    assert!(status.success(), "SIGTERM is a clean exit: {status}\n{}", s.log_text());
    s.restart();
    let api: Api<ConfigMap> = Api::default_namespaced(s.client().await);
    assert_eq!(stored(&api).await, before);
}

#[test]
fn credentials_and_kubeconfig_are_reused_across_restarts() {
    let mut s = Server::start();
    let token = s.token.clone();
    let kubeconfig = std::fs::read_to_string(&s.kubeconfig).expect("read kubeconfig");
    let ca = std::fs::read(s.data_dir().join("pki/ca.crt")).expect("read the CA");
    for (path, what) in [(&s.kubeconfig, "kubeconfig"), (&s.data_dir().join("pki/admin.token"), "token")] {
        let mode = std::fs::metadata(path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{what} is private");
    }
    assert!(kubeconfig.contains(&format!("token: {token}")), "{kubeconfig}");
    assert!(kubeconfig.contains(&format!("server: https://{}", s.addr)), "{kubeconfig}");
    let manifest = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kept"}, "data": {"a": "b"}});
    s.kubectl_stdin_ok(&["create", "-f", "-"], &manifest.to_string());

    s.restart();
    assert_eq!(s.token, token, "same token");
    assert_eq!(std::fs::read(s.data_dir().join("pki/ca.crt")).expect("read the CA"), ca, "same CA");
    assert_eq!(std::fs::read_to_string(&s.kubeconfig).expect("read kubeconfig"), kubeconfig, "same kubeconfig");
    // kubectl, with the kubeconfig and the discovery cache from before, still works.
    assert_eq!(s.kubectl_ok(&["get", "configmap", "kept", "-o", "jsonpath={.data.a}"]), "b");
}
