//! The loopback client (the router in memory) against a real server: what it writes, clients over
//! TLS read, and the other way round; errors, watches and metrics are those of any request.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use skiff_testkit::TestServer;

fn config_map(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": "loop"}}, "data": {"k": value}}))
        .expect("a ConfigMap")
}

#[tokio::test]
async fn loopback_and_tls_clients_see_one_api() {
    let server = TestServer::start().await;
    let remote: Api<ConfigMap> = Api::default_namespaced(server.client("loopback-test"));
    let local: Api<ConfigMap> = Api::default_namespaced(server.loopback_client("loopback-test/v0.1.0"));

    // A watch over the loopback client sees what a TLS client writes, and the other way round.
    let mut local_watch =
        local.watch(&WatchParams::default().labels("app=loop"), "0").await.expect("a watch in memory").boxed();
    let mut remote_watch =
        remote.watch(&WatchParams::default().labels("app=loop"), "0").await.expect("a watch over TLS").boxed();

    let created = local.create(&PostParams::default(), &config_map("made-here", "1")).await.expect("create in memory");
    let read = remote.get("made-here").await.expect("read over TLS");
    assert_eq!(read.metadata.uid, created.metadata.uid);
    // The field manager comes from the loopback client's User-Agent, as over the network.
    let managers: Vec<_> = read.metadata.managed_fields.iter().flatten().filter_map(|m| m.manager.clone()).collect();
    assert_eq!(managers, ["loopback-test"]);
    assert_eq!(read.data.as_ref().and_then(|d| d.get("k")).map(String::as_str), Some("1"));
    remote.create(&PostParams::default(), &config_map("made-there", "2")).await.expect("create over TLS");
    assert_eq!(local.get("made-there").await.expect("read in memory").metadata.name.as_deref(), Some("made-there"));

    for (what, watch) in [("in memory", &mut local_watch), ("over TLS", &mut remote_watch)] {
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let event = tokio::time::timeout(Duration::from_secs(10), watch.try_next())
                .await
                .unwrap_or_else(|_| panic!("events {what} in time"))
                .expect("a watch event")
                .expect("the watch goes on");
            if let WatchEvent::Added(cm) = event {
                seen.push(cm.metadata.name.unwrap_or_default());
            }
        }
        assert_eq!(seen, ["made-here", "made-there"], "{what}");
    }

    // Errors are the API's Status objects, as over the network.
    let exists = local.create(&PostParams::default(), &config_map("made-here", "3")).await.expect_err("a conflict");
    match exists {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "AlreadyExists");
        }
        other => panic!("an API error, got {other:?}"),
    }
    let missing = local.get("nothing").await.expect_err("not found");
    assert!(matches!(missing, kube::Error::Api(ref s) if s.code == 404 && s.reason == "NotFound"), "{missing:?}");
    let invalid =
        local.create(&PostParams::default(), &config_map("Not_A_Name", "4")).await.expect_err("an invalid name");
    assert!(matches!(invalid, kube::Error::Api(ref s) if s.code == 422 && s.reason == "Invalid"), "{invalid:?}");

    local.delete("made-there", &DeleteParams::default()).await.expect("delete in memory");
    assert!(remote.get_opt("made-there").await.expect("read over TLS").is_none());

    // The requests went through the router: counted like any other (two creates and two watches, one each way).
    let metrics = server.server().app.metrics.render(0);
    for (line, count) in [
        ("apiserver_request_total{verb=\"create\",resource=\"configmaps\",code=\"201\"}", 2),
        ("apiserver_request_total{verb=\"create\",resource=\"configmaps\",code=\"409\"}", 1),
        ("apiserver_request_total{verb=\"create\",resource=\"configmaps\",code=\"422\"}", 1),
        ("apiserver_request_total{verb=\"watch\",resource=\"configmaps\",code=\"200\"}", 2),
    ] {
        assert!(metrics.lines().any(|l| l == format!("{line} {count}")), "{line} {count} in:\n{metrics}");
    }
    server.stop().await;
}
