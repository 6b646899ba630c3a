//! End-to-end: the Rust `kube` client (kube 5, k8s-openapi v1_35) against `skiff server`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::Server;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

/// Every ConfigMap a test makes carries the label `e2e`, so lists and watches can leave out the
/// ones controllers create (`kube-root-ca.crt` in every namespace).
fn configmap(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"e2e": "true"}},
        "data": data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
    }))
    .expect("a ConfigMap")
}

fn labelled(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    let mut cm = configmap(name, &[("k", "v")]);
    let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    cm.metadata.labels = Some(labels.chain([("e2e".to_string(), "true".to_string())]).collect());
    cm
}

fn web_deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
            }
        }
    }))
    .expect("a Deployment")
}

/// The `Status` of an API error, or a panic naming what was expected.
fn api_error(r: Result<impl std::fmt::Debug, kube::Error>, what: &str) -> kube::core::Status {
    match r {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("{what}: expected an API error, got {other:?}"),
    }
}

fn rv_of(obj: &impl ResourceExt) -> u64 {
    obj.resource_version().expect("a resourceVersion").parse().expect("a numeric resourceVersion")
}

#[tokio::test]
async fn configmap_crud() {
    let s = Server::start();
    let api: Api<ConfigMap> = Api::default_namespaced(s.client().await);
    let pp = PostParams::default();

    let created = api.create(&pp, &configmap("cm", &[("a", "1")])).await.expect("create");
    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    let rv1 = rv_of(&created);

    let got = api.get("cm").await.expect("get");
    assert_eq!(got, created, "GET returns what create returned");

    let listed = api.list(&ListParams::default().labels("e2e")).await.expect("list");
    assert_eq!(listed.items.iter().map(|c| c.name_any()).collect::<Vec<_>>(), ["cm"]);
    let list_rv: u64 = listed.metadata.resource_version.as_deref().expect("list rv").parse().expect("numeric");
    assert!(list_rv >= rv1);

    let mut changed = got.clone();
    changed.data.get_or_insert_default().insert("b".into(), "2".into());
    let replaced = api.replace("cm", &pp, &changed).await.expect("replace");
    assert!(rv_of(&replaced) > rv1);
    assert_eq!(replaced.data.as_ref().map(|d| d.len()), Some(2));
    assert_eq!(replaced.metadata.uid, created.metadata.uid);
    assert_eq!(replaced.metadata.creation_timestamp, created.metadata.creation_timestamp);

    let merged = api
        .patch("cm", &PatchParams::default(), &Patch::Merge(json!({"data": {"a": null, "c": "3"}})))
        .await
        .expect("merge patch");
    assert_eq!(merged.data, Some(BTreeMap::from([("b".into(), "2".into()), ("c".into(), "3".into())])));

    let applied = api
        .patch(
            "cm",
            &PatchParams::apply("e2e"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"d": "4"}})),
        )
        .await
        .expect("server-side apply");
    assert_eq!(applied.data.as_ref().and_then(|d| d.get("d")).map(String::as_str), Some("4"));
    assert_eq!(applied.data.as_ref().map(|d| d.len()), Some(3), "apply keeps fields it does not own: {applied:?}");
    let managers: Vec<_> = applied.managed_fields().iter().filter_map(|m| m.manager.clone()).collect();
    assert!(managers.contains(&"e2e".to_string()), "{managers:?}");

    let deleted = api.delete("cm", &DeleteParams::default()).await.expect("delete");
    let status = deleted.right().expect("a Status for a deleted ConfigMap");
    let details = status.details.expect("details");
    assert_eq!((details.name.as_str(), details.kind.as_str()), ("cm", "configmaps"));
    assert_eq!(details.uid, created.metadata.uid.unwrap_or_default());

    let e = api_error(api.get("cm").await, "get after delete");
    assert_eq!((e.code, e.reason.as_str(), e.message.as_str()), (404, "NotFound", r#"configmaps "cm" not found"#));
}

#[tokio::test]
async fn server_side_apply_creates_a_missing_object() {
    let s = Server::start();
    let api: Api<ConfigMap> = Api::default_namespaced(s.client().await);
    let applied = api
        .patch(
            "fresh",
            &PatchParams::apply("e2e"),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fresh"}, "data": {"x": "y"}}),
            ),
        )
        .await
        .expect("apply creates");
    assert_eq!(applied.name_any(), "fresh");
    let mf = applied.managed_fields();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some("e2e"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
}

#[tokio::test]
async fn deployment_crud_scale_and_defaults() {
    let s = Server::start();
    let api: Api<Deployment> = Api::default_namespaced(s.client().await);
    let pp = PostParams::default();
    let d = api.create(&pp, &web_deployment("web", 2)).await.expect("create");
    assert_eq!(d.metadata.generation, Some(1));
    let spec = d.spec.as_ref().expect("spec");
    assert_eq!(spec.revision_history_limit, Some(10));
    assert_eq!(spec.progress_deadline_seconds, Some(600));
    let strategy = spec.strategy.as_ref().expect("strategy");
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    let c = &spec.template.spec.as_ref().expect("pod spec").containers[0];
    assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"), "nginx:1.27 has a tag");

    let mut next = d.clone();
    next.spec.as_mut().expect("spec").replicas = Some(4);
    // Unconditional (no resourceVersion): a controller may have written the status meanwhile.
    next.metadata.resource_version = None;
    let replaced = api.replace("web", &pp, &next).await.expect("replace");
    assert_eq!(replaced.metadata.generation, Some(2));

    let patched = api
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"tier": "a"}}})))
        .await
        .expect("patch");
    assert_eq!(patched.metadata.generation, Some(2), "a label change is not a spec change");

    let scale = api.get_scale("web").await.expect("get scale");
    assert_eq!(scale.spec.as_ref().and_then(|s| s.replicas), Some(4));
    assert_eq!(scale.status.as_ref().and_then(|s| s.selector.clone()).as_deref(), Some("app=web"));
    let scaled = api
        .patch_scale("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 1}})))
        .await
        .expect("patch scale");
    assert_eq!(scaled.spec.as_ref().and_then(|s| s.replicas), Some(1));
    let after = api.get("web").await.expect("get");
    assert_eq!(after.spec.as_ref().and_then(|s| s.replicas), Some(1));
    assert_eq!(after.metadata.generation, Some(3));

    let applied = api
        .patch(
            "web",
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"paused": true}})),
        )
        .await
        .expect("apply");
    assert_eq!(applied.spec.as_ref().and_then(|s| s.paused), Some(true));
    assert_eq!(applied.spec.as_ref().and_then(|s| s.replicas), Some(1), "fields owned by others stay");

    api.delete("web", &DeleteParams::background()).await.expect("delete");
    let e = api_error(api.get("web").await, "get after delete");
    assert_eq!((e.code, e.message.as_str()), (404, r#"deployments.apps "web" not found"#));
}

#[tokio::test]
async fn stale_resource_version_is_a_conflict() {
    let s = Server::start();
    let api: Api<ConfigMap> = Api::default_namespaced(s.client().await);
    let pp = PostParams::default();
    let v1 = api.create(&pp, &configmap("cm", &[("a", "1")])).await.expect("create");
    let mut first = v1.clone();
    first.data.get_or_insert_default().insert("a".into(), "2".into());
    let v2 = api.replace("cm", &pp, &first).await.expect("first writer wins");

    let mut second = v1.clone();
    second.data.get_or_insert_default().insert("a".into(), "3".into());
    let e = api_error(api.replace("cm", &pp, &second).await, "replace from a stale read");
    assert_eq!(e.code, 409);
    assert_eq!(e.reason, "Conflict");
    assert_eq!(
        e.message,
        r#"Operation cannot be fulfilled on configmaps "cm": the object has been modified; please apply your changes to the latest version and try again"#
    );
    let now = api.get("cm").await.expect("get");
    assert_eq!(now.resource_version(), v2.resource_version(), "a conflict writes nothing");
    assert_eq!(now.data, v2.data);

    // A stale resourceVersion in a merge patch is a precondition too.
    let stale_patch = json!({"metadata": {"resourceVersion": v1.resource_version()}, "data": {"a": "4"}});
    let e = api_error(api.patch("cm", &PatchParams::default(), &Patch::Merge(stale_patch)).await, "stale patch");
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
}

#[tokio::test]
async fn creating_an_existing_name_is_already_exists() {
    let s = Server::start();
    let api: Api<Deployment> = Api::default_namespaced(s.client().await);
    api.create(&PostParams::default(), &web_deployment("web", 1)).await.expect("create");
    let e = api_error(api.create(&PostParams::default(), &web_deployment("web", 1)).await, "second create");
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(e.message, r#"deployments.apps "web" already exists"#);
    let details = e.details.expect("details");
    assert_eq!((details.name.as_str(), details.group.as_str(), details.kind.as_str()), ("web", "apps", "deployments"));
}

#[tokio::test]
async fn list_chunks_return_every_item_once() {
    let s = Server::start();
    let api: Api<ConfigMap> = Api::default_namespaced(s.client().await);
    let mut expected = BTreeSet::new();
    for i in 0..25 {
        let name = format!("chunk-{i:02}");
        api.create(&PostParams::default(), &configmap(&name, &[("i", &i.to_string())])).await.expect("create");
        expected.insert(name);
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = Vec::new();
    let mut list_rv = None;
    loop {
        let mut lp = ListParams::default().labels("e2e").limit(10);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await.expect("list page");
        pages.push((page.items.len(), page.metadata.remaining_item_count));
        list_rv.get_or_insert(page.metadata.resource_version.clone());
        assert_eq!(&page.metadata.resource_version, list_rv.as_ref().expect("rv"), "all pages come from one snapshot");
        seen.extend(page.items.iter().map(|c| c.name_any()));
        // A write between pages must not show up in later pages.
        if token.is_none() {
            api.create(&PostParams::default(), &configmap("chunk-99-late", &[])).await.expect("create late");
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    // With a selector the server does not count what remains (kube-apiserver counts only unfiltered
    // lists).
    assert_eq!(pages, [(10, None), (10, None), (5, None)]);
    assert_eq!(seen.len(), 25, "{seen:?}");
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), expected);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "lists are in name order");

    // Without one, every page but the last says how many objects follow it.
    let total = api.list(&ListParams::default()).await.expect("list all").items.len();
    assert!(total >= 26, "{total}");
    let (mut token, mut read) = (None::<String>, 0usize);
    loop {
        let mut lp = ListParams::default().limit(7);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await.expect("list page");
        read += page.items.len();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(next) => {
                assert_eq!(page.metadata.remaining_item_count, Some((total - read) as i64), "after {read}");
                token = Some(next);
            }
            None => {
                assert_eq!(page.metadata.remaining_item_count, None);
                break;
            }
        }
    }
    assert_eq!(read, total);
}

#[tokio::test]
async fn label_and_field_selectors() {
    let s = Server::start();
    let api: Api<ConfigMap> = Api::default_namespaced(s.client().await);
    let pp = PostParams::default();
    for cm in [
        labelled("a-web", &[("app", "web"), ("tier", "front")]),
        labelled("b-db", &[("app", "db")]),
        labelled("c-cache", &[("app", "cache"), ("tier", "back")]),
        labelled("d-none", &[]),
    ] {
        api.create(&pp, &cm).await.expect("create");
    }
    async fn names(api: &Api<ConfigMap>, lp: ListParams) -> Vec<String> {
        api.list(&lp).await.expect("list").items.iter().map(|c| c.name_any()).collect()
    }
    let by_labels = |sel: &str| ListParams::default().labels(&format!("e2e,{sel}"));
    assert_eq!(names(&api, by_labels("app=web")).await, ["a-web"]);
    assert_eq!(names(&api, by_labels("app==db")).await, ["b-db"]);
    assert_eq!(names(&api, by_labels("app!=web")).await, ["b-db", "c-cache", "d-none"]);
    assert_eq!(names(&api, by_labels("app in (web,db)")).await, ["a-web", "b-db"]);
    assert_eq!(names(&api, by_labels("app notin (web,db)")).await, ["c-cache", "d-none"]);
    assert_eq!(names(&api, by_labels("tier")).await, ["a-web", "c-cache"]);
    assert_eq!(names(&api, by_labels("!tier")).await, ["b-db", "d-none"]);
    assert_eq!(names(&api, by_labels("app,tier=back")).await, ["c-cache"]);
    let by_fields = |sel: &str| ListParams::default().labels("e2e").fields(sel);
    assert_eq!(names(&api, by_fields("metadata.name=b-db")).await, ["b-db"]);
    assert_eq!(names(&api, by_fields("metadata.name!=b-db")).await, ["a-web", "c-cache", "d-none"]);
    assert_eq!(names(&api, by_fields("metadata.namespace=default,metadata.name=d-none")).await, ["d-none"]);
    assert_eq!(names(&api, by_fields("metadata.namespace=other")).await, Vec::<String>::new());
    assert_eq!(names(&api, by_fields("metadata.name=a-web").labels("app=db")).await, Vec::<String>::new());

    let e = api_error(api.list(&ListParams::default().labels("app in (web")).await, "bad label selector");
    assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));
    let e = api_error(api.list(&ListParams::default().fields("data.k=v")).await, "unsupported field");
    assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));
    // Kinds without their own field labels answer as `runtime.DefaultMetaV1FieldSelectorConversion` does.
    assert_eq!(e.message, r#""data.k" is not a known field selector: only "metadata.name", "metadata.namespace""#);
    // Pods have their own set (`pkg/registry/core/pod/strategy.go`), and their own wording.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::default_namespaced(api.clone().into_client());
    let e = api_error(pods.list(&ListParams::default().fields("spec.foo=bar")).await, "unsupported pod field");
    assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));
    assert_eq!(e.message, "field label not supported: spec.foo");
    assert!(
        pods.list(&by_fields("spec.nodeName=,status.phase=Pending")).await.expect("pod field labels").items.is_empty()
    );
}

/// Runs a `kube::runtime::watcher` and checks it sees the existing object, then a create, an update
/// and a delete.
/// The next event of a watcher stream, within 20 s.
async fn next_event<K>(
    events: &mut (impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Unpin),
) -> watcher::Event<K> {
    tokio::time::timeout(Duration::from_secs(20), events.try_next())
        .await
        .expect("a watcher event within 20s")
        .expect("no watcher error")
        .expect("the watcher stream does not end")
}

async fn watcher_sees_initial_objects_and_changes(config: watcher::Config) {
    let s = Server::start();
    let client: Client = s.client().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let pp = PostParams::default();
    api.create(&pp, &configmap("before", &[("a", "1")])).await.expect("create before");

    let mut events = watcher(api.clone(), config.labels("e2e")).boxed();
    assert!(matches!(next_event(&mut events).await, watcher::Event::Init), "Init first");
    match next_event(&mut events).await {
        watcher::Event::InitApply(cm) => assert_eq!(cm.name_any(), "before"),
        other => panic!("expected InitApply(before), got {other:?}"),
    }
    assert!(matches!(next_event(&mut events).await, watcher::Event::InitDone), "InitDone after the existing objects");

    api.create(&pp, &configmap("after", &[])).await.expect("create after");
    match next_event(&mut events).await {
        watcher::Event::Apply(cm) => assert_eq!(cm.name_any(), "after"),
        other => panic!("expected Apply(after), got {other:?}"),
    }
    api.patch("before", &PatchParams::default(), &Patch::Merge(json!({"data": {"a": "2"}}))).await.expect("patch");
    match next_event(&mut events).await {
        watcher::Event::Apply(cm) => {
            assert_eq!(cm.name_any(), "before");
            assert_eq!(cm.data.and_then(|d| d.get("a").cloned()).as_deref(), Some("2"));
        }
        other => panic!("expected Apply(before), got {other:?}"),
    }
    api.delete("after", &DeleteParams::default()).await.expect("delete");
    match next_event(&mut events).await {
        watcher::Event::Delete(cm) => assert_eq!(cm.name_any(), "after"),
        other => panic!("expected Delete(after), got {other:?}"),
    }
}

#[tokio::test]
async fn watcher_with_list_then_watch() {
    watcher_sees_initial_objects_and_changes(watcher::Config::default()).await;
}

#[tokio::test]
async fn watcher_with_streaming_lists() {
    watcher_sees_initial_objects_and_changes(watcher::Config::default().streaming_lists()).await;
}

/// A list at a resourceVersion the server has not reached (one read from another server) waits
/// for it, as kube-apiserver's watch cache does for 3 s, and is a 504 when it does not come.
#[tokio::test]
async fn a_list_at_a_future_resource_version_waits_for_it() {
    let s = Server::start();
    let api: Api<ConfigMap> = Api::default_namespaced(s.client().await);
    let pp = PostParams::default();
    let first = api.create(&pp, &configmap("future-a", &[])).await.expect("create");
    let ahead = (rv_of(&first) + 1).to_string();
    let at_ahead = ListParams::default().labels("e2e").at(&ahead);
    let (listed, _) = tokio::join!(api.list(&at_ahead), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        api.create(&pp, &configmap("future-b", &[])).await.expect("create the awaited revision")
    });
    // Served at the revision asked for or later (the server's controllers may write too); before
    // the wait, this was a 504 at once.
    let listed = listed.expect("served once the revision came");
    let rv: u64 = listed.metadata.resource_version.as_deref().expect("list rv").parse().expect("numeric");
    assert!(rv > rv_of(&first), "list at {rv}");

    // kube-rs, as client-go, retries a 504 that carries Retry-After (15 times by default): this
    // request goes out once.
    let mut config = s.kube_config().await;
    config.default_retry = false;
    let once = Client::try_from(config).expect("a client without retries");
    let never = rv_of(&first) + 1000;
    let path =
        format!("/api/v1/namespaces/default/configmaps?resourceVersion={never}&resourceVersionMatch=NotOlderThan");
    let status = common::send_raw(&once, "GET", &path, None, None, Vec::new()).await.expect_status(504, "Timeout");
    assert!(status["message"].as_str().is_some_and(|m| m.contains("Too large resource version")), "{status}");
    assert_eq!(status["details"]["retryAfterSeconds"], 1, "{status}");
}

/// Metadata-only clients (client-go's metadata informers, kube-rs' `*_metadata` calls) ask for
/// `as=PartialObjectMetadataList` / `as=PartialObjectMetadata`: the objects' metadata, nothing else.
#[tokio::test]
async fn metadata_only_lists_gets_and_watches() {
    let s = Server::start();
    let client: Client = s.client().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let pp = PostParams::default();
    let created = api.create(&pp, &configmap("meta-a", &[("secret-ish", "payload")])).await.expect("create");

    let listed = api.list_metadata(&ListParams::default().labels("e2e")).await.expect("list_metadata");
    assert_eq!(listed.types.kind, "PartialObjectMetadataList");
    assert_eq!(listed.types.api_version, "meta.k8s.io/v1");
    assert!(listed.metadata.resource_version.is_some(), "the list keeps its resourceVersion");
    assert_eq!(listed.items.len(), 1);
    let item = &listed.items[0];
    let types = item.types.as_ref().expect("each item carries its type");
    assert_eq!((types.kind.as_str(), types.api_version.as_str()), ("PartialObjectMetadata", "meta.k8s.io/v1"));
    assert_eq!(item.metadata.uid, created.metadata.uid);
    assert_eq!(item.metadata.labels, created.metadata.labels);

    let got = api.get_metadata("meta-a").await.expect("get_metadata");
    assert_eq!(got.metadata.resource_version, created.metadata.resource_version);

    // On the wire: metadata only (the client's type would drop a `data` field silently).
    let get = |accept: &str| {
        http::Request::get("/api/v1/namespaces/default/configmaps/meta-a")
            .header("Accept", accept)
            .body(Vec::new())
            .expect("request")
    };
    let text = client.request_text(get("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1")).await;
    let raw: serde_json::Value = serde_json::from_str(&text.expect("raw get")).expect("JSON");
    assert_eq!(raw["kind"], "PartialObjectMetadata");
    assert!(raw.get("data").is_none() && raw["metadata"]["name"] == "meta-a", "{raw}");
    // One object asked for as a list, and nothing else acceptable: 406.
    let status = api_error(
        client.request_text(get("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")).await,
        "a single object as PartialObjectMetadataList",
    );
    assert_eq!(status.code, 406, "{status:?}");

    // A metadata watcher, with a streaming list (bookmarks carry PartialObjectMetadata too).
    let config = watcher::Config::default().labels("e2e").streaming_lists();
    let metadata: Api<kube::core::PartialObjectMeta<ConfigMap>> = Api::default_namespaced(client.clone());
    let mut events = watcher(metadata, config).boxed();
    assert!(matches!(next_event(&mut events).await, watcher::Event::Init), "Init first");
    match next_event(&mut events).await {
        watcher::Event::InitApply(m) => assert_eq!(m.name_any(), "meta-a"),
        other => panic!("expected InitApply(meta-a), got {other:?}"),
    }
    assert!(matches!(next_event(&mut events).await, watcher::Event::InitDone), "InitDone after the existing objects");
    api.create(&pp, &configmap("meta-b", &[])).await.expect("create meta-b");
    match next_event(&mut events).await {
        watcher::Event::Apply(m) => {
            assert_eq!(m.name_any(), "meta-b");
            assert_eq!(m.types.as_ref().map(|t| t.kind.as_str()), Some("PartialObjectMetadata"));
        }
        other => panic!("expected Apply(meta-b), got {other:?}"),
    }
}

#[tokio::test]
async fn watcher_with_a_label_selector_sees_objects_enter_and_leave() {
    let s = Server::start();
    let api: Api<ConfigMap> = Api::default_namespaced(s.client().await);
    let mut events = watcher(api.clone(), watcher::Config::default().labels("app=web").streaming_lists()).boxed();
    assert!(matches!(next_event(&mut events).await, watcher::Event::Init));
    assert!(matches!(next_event(&mut events).await, watcher::Event::InitDone), "nothing matches yet");
    api.create(&PostParams::default(), &labelled("x", &[("app", "db")])).await.expect("create");
    api.patch("x", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})))
        .await
        .expect("relabel");
    match next_event(&mut events).await {
        watcher::Event::Apply(cm) => assert_eq!(cm.labels().get("app").map(String::as_str), Some("web")),
        other => panic!("expected Apply(x) on entering the selection, got {other:?}"),
    }
    api.patch("x", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "db"}}})))
        .await
        .expect("relabel");
    match next_event(&mut events).await {
        watcher::Event::Delete(cm) => assert_eq!(cm.name_any(), "x"),
        other => panic!("expected Delete(x) on leaving the selection, got {other:?}"),
    }
}

/// Collects `n` events of a raw watch from `rv`, or fails after 20s.
async fn watch_events(api: &Api<ConfigMap>, rv: &str, n: usize) -> Vec<WatchEvent<ConfigMap>> {
    let stream = api.watch(&WatchParams::default().labels("e2e").timeout(30), rv).await.expect("start a watch");
    tokio::time::timeout(Duration::from_secs(20), stream.take(n).try_collect::<Vec<_>>())
        .await
        .unwrap_or_else(|_| panic!("{n} watch events from {rv} within 20s"))
        .expect("watch events")
}

fn summary(events: &[WatchEvent<ConfigMap>]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| match e {
            WatchEvent::Added(o) => ("ADDED".into(), o.name_any()),
            WatchEvent::Modified(o) => ("MODIFIED".into(), o.name_any()),
            WatchEvent::Deleted(o) => ("DELETED".into(), o.name_any()),
            WatchEvent::Bookmark(b) => ("BOOKMARK".into(), b.metadata.resource_version.clone()),
            WatchEvent::Error(s) => ("ERROR".into(), format!("{} {}", s.code, s.message)),
        })
        .collect()
}

#[tokio::test]
async fn watch_from_a_resource_version_resumes_across_a_restart() {
    let mut s = Server::start();
    let api: Api<ConfigMap> = Api::default_namespaced(s.client().await);
    let pp = PostParams::default();
    api.create(&pp, &configmap("a", &[])).await.expect("create a");
    let rv = api.list(&ListParams::default()).await.expect("list").metadata.resource_version.expect("list rv");

    api.create(&pp, &configmap("b", &[])).await.expect("create b");
    api.patch("a", &PatchParams::default(), &Patch::Merge(json!({"data": {"x": "1"}}))).await.expect("modify a");
    let before = summary(&watch_events(&api, &rv, 2).await);
    assert_eq!(before, [("ADDED".to_string(), "b".to_string()), ("MODIFIED".into(), "a".into())]);

    s.restart();
    let api: Api<ConfigMap> = Api::default_namespaced(s.client().await);
    api.delete("b", &DeleteParams::default()).await.expect("delete b after the restart");
    api.create(&pp, &configmap("c", &[])).await.expect("create c after the restart");
    let after = summary(&watch_events(&api, &rv, 4).await);
    assert_eq!(
        after,
        [
            ("ADDED".to_string(), "b".to_string()),
            ("MODIFIED".into(), "a".into()),
            ("DELETED".into(), "b".into()),
            ("ADDED".into(), "c".into()),
        ],
        "every change after {rv}, from before and after the restart, in order"
    );
}

#[tokio::test]
async fn watch_events_carry_increasing_resource_versions() {
    let s = Server::start();
    let api: Api<ConfigMap> = Api::default_namespaced(s.client().await);
    let rv = api.list(&ListParams::default()).await.expect("list").metadata.resource_version.expect("rv");
    for i in 0..5 {
        api.create(&PostParams::default(), &configmap(&format!("m{i}"), &[])).await.expect("create");
    }
    let events = watch_events(&api, &rv, 5).await;
    let rvs: Vec<u64> = events
        .iter()
        .map(|e| match e {
            WatchEvent::Added(o) => rv_of(o),
            other => panic!("expected ADDED, got {other:?}"),
        })
        .collect();
    assert!(rvs.windows(2).all(|w| w[0] < w[1]), "{rvs:?}");
    assert!(rvs[0] > rv.parse::<u64>().expect("numeric"), "{rvs:?} after {rv}");
}

/// A watch from a revision the store no longer holds ends with one ERROR event: a 410 `Expired`
/// Status. `--history 10` makes the store's history small enough to get there quickly.
#[tokio::test]
async fn watch_from_a_compacted_resource_version_is_expired() {
    let s = Server::start_with_args(&["--history", "10"]);
    let api: Api<ConfigMap> = Api::default_namespaced(s.client().await);
    let rv = api.list(&ListParams::default()).await.expect("list").metadata.resource_version.expect("rv");
    for i in 0..30 {
        api.create(&PostParams::default(), &configmap(&format!("h{i}"), &[])).await.expect("create");
    }
    let events = watch_events(&api, &rv, 1).await;
    match &events[0] {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert!(status.message.starts_with(&format!("too old resource version: {rv} (")), "{}", status.message);
        }
        other => panic!("expected an ERROR event, got {other:?}"),
    }
    // The watcher recovers by relisting.
    let mut w = watcher(api.clone(), watcher::Config::default()).boxed();
    let first = tokio::time::timeout(Duration::from_secs(20), w.try_next()).await.expect("event").expect("no error");
    assert!(matches!(first, Some(watcher::Event::Init)));
}

#[tokio::test]
/// A continue token outlives its snapshot only as long as the store can rebuild it: SQLite keeps
/// the snapshots of recent lists, etcd rebuilds one from its history (`--history` changes long).
async fn expired_continue_token_is_gone() {
    let s = Server::start_with_args(&["--history", "40"]);
    let api: Api<ConfigMap> = Api::default_namespaced(s.client().await);
    for i in 0..3 {
        api.create(&PostParams::default(), &configmap(&format!("e{i}"), &[])).await.expect("create");
    }
    let first = api.list(&ListParams::default().limit(1)).await.expect("first page");
    let token = first.metadata.continue_.expect("a continue token");
    // Many later paginated lists, each at a new revision, push the first snapshot out; the writes
    // push its revision out of the history.
    for i in 0..80 {
        api.create(&PostParams::default(), &configmap(&format!("later{i:02}"), &[])).await.expect("create");
        api.list(&ListParams::default().limit(1)).await.expect("page");
    }
    let e = api_error(api.list(&ListParams::default().limit(1).continue_token(&token)).await, "expired continue");
    assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
    assert!(
        e.message.starts_with("The provided continue parameter is too old to display a consistent list result."),
        "{}",
        e.message
    );
    // The answer carries a token that goes on from the same place at the latest revision (an
    // inconsistent list): the rest of the objects after `e0`, each once, then no token.
    let r = s
        .raw("GET", &format!("/api/v1/namespaces/default/configmaps?limit=1&continue={token}"), None, Vec::new())
        .await;
    let status = r.expect_status(410, "Expired");
    let mut next = status["metadata"]["continue"].as_str().expect("metadata.continue").to_string();
    let mut names = Vec::new();
    loop {
        let page = api.list(&ListParams::default().limit(25).continue_token(&next)).await.expect("page");
        names.extend(page.items.iter().map(|c| c.name_any()));
        match page.metadata.continue_ {
            Some(t) if !t.is_empty() => next = t,
            _ => break,
        }
    }
    // (Every ConfigMap of the namespace now after `e0`, the controllers' `kube-root-ca.crt` too.)
    let all = api.list(&ListParams::default()).await.expect("list");
    let expected: Vec<String> = all.items.iter().map(|c| c.name_any()).filter(|n| n.as_str() > "e0").collect();
    assert!(expected.len() >= 82, "{expected:?}");
    assert_eq!(names, expected);
    // A token with a revision that is neither a revision nor -1 is a bad request.
    // (base64url of `{"v":"meta.k8s.io/v1","rv":-2,"start":"x"}`)
    let bogus = "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6LTIsInN0YXJ0IjoieCJ9";
    let e = api_error(api.list(&ListParams::default().continue_token(bogus)).await, "bad token");
    assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"), "{}", e.message);
}

#[tokio::test]
async fn discovery_and_version() {
    let s = Server::start();
    let client = s.client().await;
    let v = client.apiserver_version().await.expect("version");
    assert_eq!((v.major.as_str(), v.minor.as_str()), ("1", "35"));
    assert!(v.git_version.starts_with("v1.35."), "{}", v.git_version);
    let discovery = kube::Discovery::new(client).run().await.expect("discovery");
    let apps = discovery.get("apps").expect("the apps group");
    let kinds: BTreeSet<String> = apps.recommended_resources().into_iter().map(|(r, _)| r.kind).collect();
    assert!(kinds.contains("Deployment") && kinds.contains("ReplicaSet"), "{kinds:?}");
    let core = discovery.get("").expect("the core group");
    let core_kinds: BTreeSet<String> = core.recommended_resources().into_iter().map(|(r, _)| r.kind).collect();
    for k in ["Pod", "Node", "Namespace", "ConfigMap", "Secret", "ServiceAccount", "Event"] {
        assert!(core_kinds.contains(k), "{k} missing from {core_kinds:?}");
    }
    assert!(discovery.get("coordination.k8s.io").is_some());
    assert!(discovery.get("events.k8s.io").is_some());
}

#[tokio::test]
async fn every_served_kind_round_trips() {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::{Event, Node, Pod, Secret, ServiceAccount};
    use k8s_openapi::api::events::v1::Event as EventV1;

    // The API server alone: with the scheduler and controllers running, the ReplicaSet and the pod
    // would get status writes between the create and the get this compares.
    let s = Server::start_api_only();
    let client = s.client().await;
    let pp = PostParams::default();

    /// Create, get, list, delete; returns the created object's JSON.
    async fn round_trip<K>(api: Api<K>, obj: serde_json::Value) -> serde_json::Value
    where
        K: kube::Resource
            + Clone
            + std::fmt::Debug
            + k8s_openapi::serde::de::DeserializeOwned
            + k8s_openapi::serde::Serialize,
    {
        let name = obj["metadata"]["name"].as_str().expect("name").to_string();
        let typed: K = serde_json::from_value(obj).expect("typed object");
        let created = api.create(&PostParams::default(), &typed).await.unwrap_or_else(|e| panic!("create {name}: {e}"));
        let got = api.get(&name).await.unwrap_or_else(|e| panic!("get {name}: {e}"));
        let listed = api.list(&ListParams::default().fields(&format!("metadata.name={name}"))).await.expect("list");
        assert_eq!(listed.items.len(), 1, "{name}");
        let json = serde_json::to_value(&got).expect("json");
        assert_eq!(json, serde_json::to_value(&created).expect("json"), "{name}");
        api.delete(&name, &DeleteParams::default()).await.unwrap_or_else(|e| panic!("delete {name}: {e}"));
        assert_eq!(api_error(api.get(&name).await, "get after delete").code, 404, "{name}");
        json
    }

    let node = round_trip(Api::<Node>::all(client.clone()), json!({"metadata": {"name": "node-1"}, "spec": {}})).await;
    assert!(node["metadata"].get("namespace").is_none(), "nodes are cluster-scoped: {node}");

    let secret = round_trip(
        Api::<Secret>::default_namespaced(client.clone()),
        json!({"metadata": {"name": "sec"}, "stringData": {"password": "hunter2"}}),
    )
    .await;
    assert_eq!(secret["data"], json!({"password": "aHVudGVyMg=="}), "stringData is merged into data: {secret}");
    assert!(secret.get("stringData").is_none(), "{secret}");
    assert_eq!(secret["type"], "Opaque");

    round_trip(Api::<ServiceAccount>::default_namespaced(client.clone()), json!({"metadata": {"name": "robot"}})).await;
    let lease = round_trip(
        Api::<Lease>::namespaced(client.clone(), "kube-node-lease"),
        json!({"metadata": {"name": "node-1"}, "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40, "renewTime": "2026-01-02T03:04:05.123456Z"}}),
    )
    .await;
    assert_eq!(lease["spec"]["renewTime"], "2026-01-02T03:04:05.123456Z", "MicroTime keeps microseconds");
    round_trip(
        Api::<Event>::default_namespaced(client.clone()),
        json!({"metadata": {"name": "ev.1"}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
               "reason": "Testing", "message": "hello", "type": "Normal", "count": 1,
               "firstTimestamp": "2026-01-02T03:04:05Z", "lastTimestamp": "2026-01-02T03:04:05Z", "source": {"component": "e2e"}}),
    )
    .await;
    round_trip(
        Api::<EventV1>::default_namespaced(client.clone()),
        json!({"metadata": {"name": "ev.2"}, "eventTime": "2026-01-02T03:04:05.000001Z", "reportingController": "e2e",
               "reportingInstance": "e2e-1", "action": "Test", "reason": "Testing", "type": "Normal",
               "regarding": {"kind": "Pod", "name": "p", "namespace": "default"}, "note": "hello"}),
    )
    .await;
    round_trip(
        Api::<ReplicaSet>::default_namespaced(client.clone()),
        json!({"metadata": {"name": "rs"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
               "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}),
    )
    .await;
    let pod = round_trip(
        Api::<Pod>::default_namespaced(client.clone()),
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}),
    )
    .await;
    assert_eq!(pod["status"]["phase"], "Pending");
    let _ = pp;
}

#[tokio::test]
async fn status_writes_go_through_the_status_subresource_only() {
    // A Deployment controller may write the status too: only values it never writes are asserted.
    let s = Server::start();
    let api: Api<Deployment> = Api::default_namespaced(s.client().await);
    let d = api.create(&PostParams::default(), &web_deployment("web", 2)).await.expect("create");
    assert!(d.status.as_ref().is_none_or(|st| st.replicas.is_none()), "create drops status: {:?}", d.status);

    // Status on the main resource is ignored.
    let sentinel = json!({"status": {"replicas": 7, "collisionCount": 42}});
    let main = api.patch("web", &PatchParams::default(), &Patch::Merge(sentinel)).await.expect("patch");
    let st = main.status.unwrap_or_default();
    assert_ne!((st.replicas, st.collision_count), (Some(7), Some(42)), "status written through the main resource");

    // Spec on /status is ignored; status is written; generation does not move.
    let patch = json!({"spec": {"replicas": 9}, "status": {"replicas": 7, "collisionCount": 42}});
    let st = api.patch_status("web", &PatchParams::default(), &Patch::Merge(patch)).await.expect("patch status");
    assert_eq!(st.status.as_ref().and_then(|s| s.collision_count), Some(42));
    assert_eq!(st.spec.as_ref().and_then(|s| s.replicas), Some(2), "spec unchanged through /status");
    assert_eq!(st.metadata.generation, Some(1));
    let got = api.get_status("web").await.expect("get status");
    assert_eq!(got.spec.as_ref().and_then(|s| s.replicas), Some(2));
}

#[tokio::test]
async fn pod_binding_assigns_a_node_once() {
    use k8s_openapi::api::core::v1::{Binding, Pod};
    let s = Server::start();
    let api: Api<Pod> = Api::default_namespaced(s.client().await);
    // The test is this pod's scheduler: with the default one, the server's scheduler could find
    // no node and write PodScheduled=False after the binding below (as kube-scheduler could).
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {"schedulerName": "e2e-binder", "containers": [{"name": "c", "image": "busybox"}]}
    }))
    .expect("pod");
    api.create(&PostParams::default(), &pod).await.expect("create");
    let binding: Binding =
        serde_json::from_value(json!({"metadata": {"name": "p"}, "target": {"kind": "Node", "name": "node-1"}}))
            .expect("binding");
    let st: kube::core::Status =
        api.create_subresource("binding", "p", &PostParams::default(), &binding).await.expect("bind");
    assert_eq!(st.code, 201, "{st:?}");
    let bound = api.get("p").await.expect("get");
    assert_eq!(bound.spec.as_ref().and_then(|s| s.node_name.clone()).as_deref(), Some("node-1"));
    let conditions = bound.status.and_then(|s| s.conditions).unwrap_or_default();
    let scheduled = conditions.iter().find(|c| c.type_ == "PodScheduled").expect("a PodScheduled condition");
    assert_eq!(scheduled.status, "True");

    let e = api_error(
        api.create_subresource::<_, kube::core::Status>("binding", "p", &PostParams::default(), &binding).await,
        "rebind",
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert!(e.message.contains(r#"pod p is already assigned to node "node-1""#), "{}", e.message);
}

/// The conformance test "Namespaces should apply a finalizer to a Namespace": client-go's
/// `Namespaces().Finalize` is a PUT of the Namespace on `/finalize`, the one write that changes
/// `spec.finalizers`.
#[tokio::test]
async fn namespace_finalize_replaces_spec_finalizers() {
    use k8s_openapi::api::core::v1::Namespace;

    const FAKE: &str = "e2e.example.com/fakeFinalizer";
    fn finalizers(ns: &Namespace) -> Vec<String> {
        ns.spec.as_ref().and_then(|s| s.finalizers.clone()).unwrap_or_default()
    }
    async fn finalize(api: &Api<Namespace>, ns: &Namespace) -> Result<Namespace, kube::Error> {
        api.replace_subresource("finalize", &ns.name_any(), &PostParams::default(), ns).await
    }

    let s = Server::start_api_only();
    let api: Api<Namespace> = Api::all(s.client().await);
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "e2e-finalize"}})).expect("a Namespace");
    let created = api.create(&PostParams::default(), &ns).await.expect("create");
    assert_eq!(finalizers(&created), ["kubernetes"]);

    let mut with_fake = created.clone();
    with_fake.spec.get_or_insert_default().finalizers.get_or_insert_default().push(FAKE.to_string());
    let finalized = finalize(&api, &with_fake).await.expect("finalize");
    assert_eq!(finalizers(&finalized), ["kubernetes", FAKE]);
    assert_eq!(finalized.status, created.status, "finalize keeps the status");
    assert_eq!(finalizers(&api.get("e2e-finalize").await.expect("get")), ["kubernetes", FAKE]);

    // A PUT on the namespace itself keeps the finalizers it was sent without.
    let mut main = finalized.clone();
    main.spec.get_or_insert_default().finalizers = Some(vec![]);
    main.labels_mut().insert("e2e".into(), "updated".into());
    let replaced = api.replace("e2e-finalize", &PostParams::default(), &main).await.expect("replace");
    assert_eq!(finalizers(&replaced), ["kubernetes", FAKE]);
    assert_eq!(replaced.labels().get("e2e").map(String::as_str), Some("updated"));

    let mut without = replaced.clone();
    without.spec.get_or_insert_default().finalizers.get_or_insert_default().retain(|f| f != FAKE);
    let finalized = finalize(&api, &without).await.expect("finalize again");
    assert_eq!(finalizers(&finalized), ["kubernetes"]);

    // Finalizer names are validated; the subresource is update only; discovery lists it.
    let mut bad = finalized.clone();
    bad.spec.get_or_insert_default().finalizers = Some(vec!["not-qualified".into()]);
    let e = api_error(finalize(&api, &bad).await, "unqualified finalizer");
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"), "{}", e.message);
    let r = s.raw("GET", "/api/v1/namespaces/e2e-finalize/finalize", None, Vec::new()).await;
    r.expect_status(405, "MethodNotAllowed");
    let v1 = s.get_json("/api/v1").await;
    let listed = v1["resources"].as_array().into_iter().flatten().find(|r| r["name"] == "namespaces/finalize");
    let listed = listed.unwrap_or_else(|| panic!("namespaces/finalize in /api/v1: {v1}"));
    assert_eq!(listed["kind"], "Namespace");
    assert_eq!(listed["verbs"], json!(["update"]));

    // Deleted, the namespace waits for every spec finalizer: the controller removes only its own
    // (`kubernetes`), and the namespace goes when the other one's owner finalizes it.
    let mut with_fake = finalized.clone();
    with_fake.spec.get_or_insert_default().finalizers.get_or_insert_default().push(FAKE.to_string());
    finalize(&api, &with_fake).await.expect("finalize with the fake finalizer");
    api.delete("e2e-finalize", &Default::default()).await.expect("delete");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let waiting = loop {
        let ns = api.get("e2e-finalize").await.expect("still there");
        if finalizers(&ns) == [FAKE] {
            break ns;
        }
        assert!(tokio::time::Instant::now() < deadline, "the controller did not remove its finalizer: {ns:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(waiting.metadata.deletion_timestamp.is_some());
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(api.get_opt("e2e-finalize").await.expect("get").is_some(), "held by the fake finalizer");
    let mut done = api.get("e2e-finalize").await.expect("get");
    done.spec.get_or_insert_default().finalizers = Some(vec![]);
    finalize(&api, &done).await.expect("finalize without it");
    while api.get_opt("e2e-finalize").await.expect("get").is_some() {
        assert!(tokio::time::Instant::now() < deadline + std::time::Duration::from_secs(30), "not removed");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The conformance test "Sysctls should reject invalid sysctls": the create fails at the API, naming
/// the invalid names only.
#[tokio::test]
async fn pod_with_invalid_sysctls_is_rejected() {
    use k8s_openapi::api::core::v1::Pod;

    let s = Server::start_api_only();
    let api: Api<Pod> = Api::default_namespaced(s.client().await);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "sysctl-pod"},
        "spec": {
            "containers": [{"name": "test-container", "image": "busybox"}],
            "securityContext": {"sysctls": [
                {"name": "foo-", "value": "bar"},
                {"name": "kernel.shmmax", "value": "100000000"},
                {"name": "safe-and-unsafe", "value": "100000000"},
                {"name": "bar..", "value": "42"}
            ]}
        }
    }))
    .expect("a Pod");
    let e = api_error(api.create(&PostParams::default(), &pod).await, "invalid sysctls");
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"), "{}", e.message);
    let regex = r"must have at most 253 characters and match regex ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$";
    assert_eq!(
        e.message,
        format!(
            r#"Pod "sysctl-pod" is invalid: [spec.securityContext.sysctls[0].name: Invalid value: "foo-": {regex}, spec.securityContext.sysctls[3].name: Invalid value: "bar..": {regex}]"#
        )
    );
    let fields: Vec<String> =
        e.details.into_iter().flat_map(|d| d.causes).map(|c| format!("{} {}", c.reason, c.field)).collect();
    assert_eq!(
        fields,
        [
            "FieldValueInvalid spec.securityContext.sysctls[0].name",
            "FieldValueInvalid spec.securityContext.sysctls[3].name"
        ]
    );
    let e = api_error(api.get("sysctl-pod").await, "not created");
    assert_eq!(e.code, 404);
}

/// DELETE on a collection deletes what its selector picks and answers the list as listed; a bad
/// selector deletes nothing.
#[tokio::test]
async fn delete_collection_by_label_selector() {
    let s = Server::start_api_only();
    let api: Api<ConfigMap> = Api::default_namespaced(s.client().await);
    let pp = PostParams::default();
    for (name, app) in [("gone-1", "gone"), ("gone-2", "gone"), ("stay", "stay")] {
        api.create(&pp, &labelled(name, &[("app", app)])).await.expect("create");
    }
    async fn names(api: &Api<ConfigMap>) -> Vec<String> {
        let listed = api.list(&ListParams::default().labels("e2e")).await.expect("list");
        listed.items.iter().map(|c| c.name_any()).collect()
    }

    let path = "/api/v1/namespaces/default/configmaps";
    for bad in ["labelSelector=app%20in%20(gone", "fieldSelector=data.k%3Dv", "labelSelector=app%3D%3D%3Dx"] {
        let st = s.raw("DELETE", &format!("{path}?{bad}"), None, Vec::new()).await.expect_status(400, "BadRequest");
        assert!(!st["message"].as_str().unwrap_or_default().is_empty(), "{bad}: {st}");
    }
    assert_eq!(names(&api).await, ["gone-1", "gone-2", "stay"]);

    let r = s.raw("DELETE", &format!("{path}?labelSelector=app%3Dgone"), None, Vec::new()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let list = r.json();
    assert_eq!((list["kind"].as_str(), list["apiVersion"].as_str()), (Some("ConfigMapList"), Some("v1")), "{list}");
    assert!(list["metadata"]["resourceVersion"].as_str().is_some_and(|rv| !rv.is_empty()), "{list}");
    let items: Vec<(&str, &Value)> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| (i["metadata"]["name"].as_str().unwrap_or_default(), &i["data"]))
        .collect();
    assert_eq!(items, [("gone-1", &json!({"k": "v"})), ("gone-2", &json!({"k": "v"}))], "{list}");
    assert_eq!(names(&api).await, ["stay"]);

    // The kube client reads the answer as the list it is.
    let deleted = api
        .delete_collection(&DeleteParams::default(), &ListParams::default().labels("app=stay"))
        .await
        .expect("delete collection");
    let deleted = deleted.left().expect("a list");
    assert_eq!(deleted.items.iter().map(|c| c.name_any()).collect::<Vec<_>>(), ["stay"]);
    assert_eq!(names(&api).await, Vec::<String>::new());
    // With a limit, one page goes, as kube-apiserver deletes one page when the client pages.
    for name in ["paged-1", "paged-2"] {
        api.create(&pp, &labelled(name, &[("app", "paged")])).await.expect("create");
    }
    let r = s.raw("DELETE", &format!("{path}?labelSelector=app%3Dpaged&limit=1"), None, Vec::new()).await;
    let page = r.json();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{page}");
    assert!(page["metadata"]["continue"].as_str().is_some_and(|c| !c.is_empty()), "{page}");
    assert_eq!(names(&api).await, ["paged-2"]);
    api.delete("paged-2", &DeleteParams::default()).await.expect("delete");
    // Nothing picked: an empty list.
    let r = s.raw("DELETE", &format!("{path}?labelSelector=app%3Dnone"), None, Vec::new()).await;
    assert_eq!((r.status, r.json()["items"].clone()), (200, json!([])), "{}", r.text());
}
