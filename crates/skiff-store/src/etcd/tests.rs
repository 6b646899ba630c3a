//! Tests of the etcd store against a real etcd (one per test, see `server`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, WatchOptions};
use serde_json::json;

use super::*;
use crate::EventKind;
use crate::conformance::{self, collect, create, delete, revs, update};
use crate::testing::EtcdServer;

/// Test options: no background compaction (its claims would take revisions) and short timeouts.
fn options() -> EtcdOptions {
    EtcdOptions { compaction_interval: None, request_timeout: Duration::from_secs(3), ..EtcdOptions::default() }
}

async fn connect(etcd: &EtcdServer) -> EtcdStore {
    EtcdStore::connect(&etcd.endpoints(), options()).await.expect("connect")
}

async fn raw(etcd: &EtcdServer) -> Client {
    Client::connect(etcd.endpoints(), None).await.expect("raw client")
}

/// Polls `check` until it holds (another store's watch delivers within milliseconds).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within 20s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn conformance_create_update_delete() {
    let etcd = EtcdServer::start();
    conformance::create_update_delete(&connect(&etcd).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_watch_delivers_every_later_change_in_order() {
    let etcd = EtcdServer::start();
    conformance::watch_delivers_every_later_change_in_order(Arc::new(connect(&etcd).await), 4, 50).await;
}

#[tokio::test]
async fn conformance_watch_from_a_future_revision_waits() {
    let etcd = EtcdServer::start();
    conformance::watch_from_a_future_revision_waits(&connect(&etcd).await).await;
}

#[tokio::test]
async fn conformance_watch_prefix_sees_only_its_prefix() {
    let etcd = EtcdServer::start();
    conformance::watch_prefix_sees_only_its_prefix(&connect(&etcd).await).await;
}

#[tokio::test]
async fn conformance_snapshots_keep_their_revision() {
    let etcd = EtcdServer::start();
    conformance::snapshots_keep_their_revision(&connect(&etcd).await).await;
}

#[tokio::test]
async fn conformance_snapshot_range_lists_a_prefix_after_a_key() {
    let etcd = EtcdServer::start();
    conformance::snapshot_range_lists_a_prefix_after_a_key(&connect(&etcd).await).await;
}

/// Objects sit under the prefix without a resourceVersion; the store's revision is etcd's.
#[tokio::test]
async fn layout_in_etcd_matches_kube_apiserver() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd).await;
    let mut client = raw(&etcd).await;
    let at_start = client.get("x", None).await.expect("get").header().map(|h| h.revision()).expect("header");
    assert_eq!(store.revision(), u64::try_from(at_start).expect("revision"));

    let object = store
        .write(create("/v1/pods/ns/a", json!({"metadata": {"name": "a", "resourceVersion": "5"}})))
        .await
        .expect("create");
    let got = client.get("/registry/v1/pods/ns/a", None).await.expect("get");
    let kv = got.kvs().first().expect("stored under the prefix");
    assert_eq!(kv.value_str().expect("utf8"), r#"{"metadata":{"name":"a"}}"#);
    assert_eq!(u64::try_from(kv.mod_revision()).expect("revision"), object.rev);
    assert_eq!(got.header().map(|h| h.revision()), Some(kv.mod_revision()));

    // Something written straight into etcd under the prefix is an object of the store; outside
    // it, it is not.
    client.put("/registry/v1/pods/ns/b", r#"{"metadata":{"name":"b"}}"#, None).await.expect("put");
    let put = client.put("/elsewhere/x", "{}", None).await.expect("put");
    let last = u64::try_from(put.header().map(|h| h.revision()).expect("header")).expect("revision");
    eventually("the raw put", || store.get("/v1/pods/ns/b").is_some()).await;
    let b = store.get("/v1/pods/ns/b").expect("b");
    assert_eq!(b.value, json!({"metadata": {"name": "b", "resourceVersion": b.rev.to_string()}}));
    assert_eq!(store.snapshot().objects.len(), 2);
    assert!(store.revision() <= last, "the store cannot be ahead of etcd");
}

#[tokio::test]
async fn another_prefix_is_another_store() {
    let etcd = EtcdServer::start();
    let one =
        EtcdStore::connect(&etcd.endpoints(), EtcdOptions { prefix: "/one".into(), ..options() }).await.expect("one");
    let two =
        EtcdStore::connect(&etcd.endpoints(), EtcdOptions { prefix: "/two/".into(), ..options() }).await.expect("two");
    assert_eq!((one.prefix(), two.prefix()), ("/one/", "/two/"));
    one.write(create("/k", json!({"n": 1}))).await.expect("create in one");
    two.write(create("/k", json!({"n": 2}))).await.expect("same key in two");
    assert_eq!(one.get("/k").map(|o| o.value.parse()["n"].clone()), Some(json!(1)));
    assert_eq!(two.get("/k").map(|o| o.value.parse()["n"].clone()), Some(json!(2)));
    let err = one.write(create("k", json!({}))).await.expect_err("no leading slash");
    assert!(matches!(err, StoreError::Backend(ref m) if m.contains("does not start with '/'")), "{err:?}");
}

/// Several API servers: each sees the others' writes and watch events, and optimistic
/// concurrency holds across them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_see_each_others_writes_and_watch_events() {
    let etcd = EtcdServer::start();
    let a = connect(&etcd).await;
    let b = connect(&etcd).await;
    let base = a.revision();
    assert_eq!(b.revision(), base);
    let watch_b = b.watch(base).expect("watch on b");

    let created = a.write(create("/v1/cm/ns/x", json!({"data": {"k": "1"}}))).await.expect("create on a");
    eventually("b sees a's create", || b.get("/v1/cm/ns/x").is_some()).await;
    assert_eq!(b.get("/v1/cm/ns/x"), Some(created.clone()));

    // b updates what a created; a's stale update then conflicts.
    let updated =
        b.write(update("/v1/cm/ns/x", json!({"data": {"k": "2"}}), Some(created.rev))).await.expect("b update");
    let err = a.write(update("/v1/cm/ns/x", json!({"data": {"k": "3"}}), Some(created.rev))).await.expect_err("stale");
    assert!(
        matches!(err, StoreError::Conflict { expected, current, .. } if expected == created.rev && current == updated.rev),
        "{err:?}"
    );
    // The conflict returns once a's reads include the write that won, so a retry reads it.
    assert_eq!(a.get("/v1/cm/ns/x").map(|o| o.rev), Some(updated.rev));
    let err = a.write(create("/v1/cm/ns/x", json!({}))).await.expect_err("exists");
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
    let deleted = a.write(delete("/v1/cm/ns/x", Some(updated.rev))).await.expect("a deletes b's update");

    let events = collect(watch_b, base, deleted.rev).await;
    let got: Vec<(EventKind, Revision)> = events.iter().map(|e| (e.kind, e.rev)).collect();
    assert_eq!(
        got,
        [(EventKind::Added, created.rev), (EventKind::Modified, updated.rev), (EventKind::Deleted, deleted.rev)]
    );
    assert_eq!(events[2].object, deleted.value);
    assert_eq!(events[2].prev.as_ref(), Some(&updated.value));
    eventually("a's view", || a.revision() == deleted.rev && b.revision() == deleted.rev).await;
    assert_eq!(revs(&a.watch(base).expect("watch a").backlog), revs(&events));

    // A store connected later starts at the current state, with the history replayed; b can
    // rebuild an earlier snapshot (a list continued on another server).
    let c = connect(&etcd).await;
    assert_eq!(c.revision(), deleted.rev);
    assert!(c.snapshot().objects.is_empty());
    let at_update = b.snapshot_at(updated.rev).expect("rebuilt on b");
    assert_eq!(at_update.objects.get("/v1/cm/ns/x").map(|o| o.value.clone()), Some(updated.value.clone()));
    let replayed = collect(c.watch(base).expect("c replays the history"), base, deleted.rev).await;
    assert_eq!(revs(&replayed), revs(&events));
}

#[tokio::test]
async fn compaction_makes_older_revisions_too_old() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd).await;
    let base = store.revision();
    for i in 0..6 {
        store.write(create(&format!("/k/{i}"), json!({"i": i}))).await.expect("create");
    }
    let cut = base + 4;
    store.compact(cut).await.expect("compact");
    assert_eq!(store.oldest_watchable(), cut);
    let err = store.watch(cut - 1).err().expect("too old");
    assert!(
        matches!(err, StoreError::Compacted { requested, oldest } if requested == cut - 1 && oldest == cut),
        "{err:?}"
    );
    assert_eq!(revs(&store.watch(cut).expect("watch").backlog), [base + 5, base + 6]);
    assert!(matches!(store.snapshot_at(cut - 1), Err(StoreError::SnapshotExpired(_))));
    assert_eq!(store.snapshot_at(cut).expect("rebuilt").objects.len(), 4);
    // Compacting again to the same or an older revision is fine; a future one is not.
    store.compact(cut).await.expect("again");
    store.compact(base).await.expect("older");
    assert_eq!(store.oldest_watchable(), cut);
    let err = store.compact(base + 1000).await.expect_err("future");
    assert!(matches!(err, StoreError::Backend(ref m) if m.contains("future revision")), "{err:?}");

    // etcd itself refuses the compacted revisions.
    let mut client = raw(&etcd).await;
    let options = WatchOptions::new().with_prefix().with_start_revision(etcd_client_revision(cut - 1));
    let mut stream = client.watch("/registry/", Some(options)).await.expect("raw watch");
    let mut compacted = 0;
    while compacted == 0 {
        let response = tokio::time::timeout(Duration::from_secs(10), stream.message()).await.expect("answer");
        compacted = response.expect("message").expect("open").compact_revision();
    }
    assert_eq!(u64::try_from(compacted).expect("revision"), cut);
}

fn etcd_client_revision(rev: Revision) -> i64 {
    i64::try_from(rev).expect("revision")
}

/// The background compaction: the first round only records the revision, the next compacts to
/// it; two stores share the rounds through `compact_rev_key`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_compaction_follows_the_interval() {
    let etcd = EtcdServer::start();
    let compacting = EtcdOptions { compaction_interval: Some(Duration::from_millis(300)), ..options() };
    let a = EtcdStore::connect(&etcd.endpoints(), compacting.clone()).await.expect("a");
    let b = EtcdStore::connect(&etcd.endpoints(), compacting).await.expect("b");
    let first = a.write(create("/k", json!({"n": 0}))).await.expect("create");
    for n in 1..5 {
        a.write(update("/k", json!({"n": n}), None)).await.expect("update");
    }
    eventually("a compacts past the first write", || a.oldest_watchable() >= first.rev).await;
    eventually("b learns the compaction", || b.oldest_watchable() >= first.rev).await;
    assert!(matches!(a.watch(first.rev - 1), Err(StoreError::Compacted { .. })));

    let mut client = raw(&etcd).await;
    let key = client.get(compactor::COMPACT_REV_KEY, None).await.expect("get");
    let kv = key.kvs().first().expect("compact_rev_key is written");
    assert!(kv.version() >= 2, "several rounds claimed, version {}", kv.version());
    // The stores keep working on top of the compacted history.
    let last = a.write(update("/k", json!({"n": 9}), None)).await.expect("update");
    eventually("b sees it", || b.get("/k").map(|o| o.rev) == Some(last.rev)).await;
}

/// kill -9 of etcd: writes fail while it is down, the data survives, and the store reconnects and
/// resumes its watch with no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_restart_keeps_the_data_and_the_store_reconnects() {
    let mut etcd = EtcdServer::start();
    let store = connect(&etcd).await;
    let base = store.revision();
    store.write(create("/a", json!({"v": 1}))).await.expect("create a");
    let b = store.write(create("/b", json!({"v": 1}))).await.expect("create b");
    let watch = store.watch(base).expect("watch");

    etcd.kill();
    let err = store.write(create("/c", json!({}))).await.expect_err("etcd is down");
    assert!(matches!(err, StoreError::Backend(ref m) if m.starts_with("etcd ")), "{err:?}");
    // Reads are served from the cache meanwhile.
    assert_eq!(store.get("/b"), Some(b.clone()));

    etcd.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    let updated = loop {
        match store.write(update("/b", json!({"v": 2}), Some(b.rev))).await {
            Ok(object) => break object,
            Err(StoreError::Backend(m)) if Instant::now() < deadline => {
                tracing::debug!("still down: {m}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("write after restart: {e:?}"),
        }
    };
    assert_eq!(updated.rev, b.rev + 1, "the revision went on from the persisted one");
    let events = collect(watch, base, updated.rev).await;
    let got: Vec<(EventKind, String, Revision)> = events.iter().map(|e| (e.kind, e.key.to_string(), e.rev)).collect();
    assert_eq!(
        got,
        [
            (EventKind::Added, "/a".to_owned(), base + 1),
            (EventKind::Added, "/b".to_owned(), base + 2),
            (EventKind::Modified, "/b".to_owned(), base + 3)
        ]
    );
    // A new store after the restart sees the same data.
    let again = connect(&etcd).await;
    assert_eq!(again.snapshot().objects, store.snapshot().objects);
    assert_eq!(again.revision(), updated.rev);
}

/// When the revision the store's watch must resume from is compacted (etcd was away for longer
/// than the compaction interval), it lists again: the state is current and live watches end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_resume_point_relists() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd).await;
    let base = store.revision();
    store.write(create("/old", json!({}))).await.expect("create");
    let other = connect(&etcd).await;

    // A stale cache and its reflector, as if its watch had broken before these writes.
    let stale = Arc::new(Cache::new(
        Keys::new("/registry/"),
        Limits { history_len: 10, retained_snapshots: 1, broadcast_capacity: 8 },
        base,
        imbl::OrdMap::new(),
    ));
    let mut live = stale.watch(base).expect("watch").live;
    other.write(delete("/old", None)).await.expect("delete");
    let kept = other.write(create("/new", json!({"v": 1}))).await.expect("create");
    other.compact(kept.rev).await.expect("compact");

    let client = raw(&etcd).await;
    let reflector = Reflector {
        kv: client.kv_client(),
        watch: client.watch_client(),
        keys: Keys::new("/registry/"),
        cache: stale.clone(),
        timeout: Duration::from_secs(3),
        replay: None,
    };
    let task = tokio::spawn(reflector.run());
    let waited = stale.wait_event(kept.rev, Duration::from_secs(20)).await;
    task.abort();
    assert!(waited, "the reflector caught up");
    assert_eq!(stale.snapshot().objects.keys().map(|k| k.to_string()).collect::<Vec<_>>(), ["/new"]);
    assert_eq!(stale.oldest(), stale.revision());
    let ended = tokio::time::timeout(Duration::from_secs(5), live.recv()).await.expect("in time");
    assert!(matches!(ended, Err(tokio::sync::broadcast::error::RecvError::Closed)), "{ended:?}");
}

#[tokio::test]
async fn close_stops_writes_and_ends_watches() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd).await;
    let created = store.write(create("/a", json!({}))).await.expect("create");
    let mut watch = store.watch(created.rev).expect("watch");
    store.close();
    store.close();
    assert!(matches!(store.write(create("/b", json!({}))).await, Err(StoreError::Closed)));
    assert!(matches!(store.watch(created.rev), Err(StoreError::Closed)));
    assert!(matches!(watch.live.recv().await, Err(tokio::sync::broadcast::error::RecvError::Closed)));
    // The data stays in etcd.
    assert_eq!(connect(&etcd).await.get("/a"), Some(created));
}

#[tokio::test]
async fn connecting_to_no_etcd_fails_with_a_backend_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let endpoints = vec![format!("http://127.0.0.1:{port}")];
    let options = EtcdOptions {
        request_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(200),
        ..options()
    };
    let err = EtcdStore::connect(&endpoints, options.clone()).await.err().expect("nothing listens");
    assert!(matches!(err, StoreError::Backend(ref m) if m.starts_with("etcd revision read")), "{err:?}");
    let err = EtcdStore::connect(&[], options).await.err().expect("no endpoints");
    assert_eq!(err.to_string(), "store backend failed: no etcd endpoints given");
}

/// Consistent reads across API servers: a write through one store is in the other's reads once
/// the other has synced, with no wait for its watch (run without the `sync` call, this fails
/// within the first few writes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_makes_every_acknowledged_write_readable_on_another_store() {
    let etcd = EtcdServer::start();
    let a = connect(&etcd).await;
    let b = connect(&etcd).await;
    for i in 0..200 {
        let key = format!("/v1/cm/ns/k{}", i % 20);
        let written = if i < 20 {
            a.write(create(&key, json!({"i": i}))).await
        } else if i % 7 == 0 {
            a.write(delete(&key, None)).await
        } else if a.get(&key).is_none() {
            a.write(create(&key, json!({"i": i}))).await
        } else {
            a.write(update(&key, json!({"i": i}), None)).await
        }
        .expect("write through a");
        let reached = b.sync().await.expect("sync b");
        assert!(reached >= written.rev, "write {i}: b synced to {reached}, before the write at {}", written.rev);
        let seen = b.get(&key);
        if i >= 20 && i % 7 == 0 {
            assert_eq!(seen, None, "write {i}: the delete at {} is seen", written.rev);
        } else {
            assert_eq!(seen, Some(written), "write {i}");
        }
        assert!(b.revision() >= reached);
    }
    assert_eq!(a.sync().await.expect("sync a"), b.sync().await.expect("sync b"));
}

/// etcd's revision also counts writes to keys outside the prefix, which the store's watch never
/// sees: progress notifications bring the cache there, promptly and without an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_advances_past_writes_outside_the_prefix() {
    let etcd = EtcdServer::start();
    let store = connect(&etcd).await;
    let mut client = raw(&etcd).await;
    let mut live = store.watch(store.revision()).expect("watch").live;
    for i in 0..20 {
        let put = client.put(format!("/elsewhere/{i}"), "{}", None).await.expect("put outside");
        let outside = u64::try_from(put.header().map(|h| h.revision()).expect("header")).expect("revision");
        let started = Instant::now();
        let reached = store.sync().await.expect("sync");
        assert!(started.elapsed() < CONSISTENT_READ_TIMEOUT / 2, "sync {i} took {:?}", started.elapsed());
        assert_eq!(reached, outside, "sync {i}");
        assert!(store.revision() >= outside);
    }
    assert!(store.snapshot().objects.is_empty());
    assert!(live.try_recv().is_err(), "no event for keys outside the prefix");

    // A raw write inside the prefix, then one outside: a sync sees both.
    client.put("/registry/v1/cm/ns/raw", r#"{"data":{}}"#, None).await.expect("put inside");
    let put = client.put("/elsewhere/last", "{}", None).await.expect("put outside");
    let last = u64::try_from(put.header().map(|h| h.revision()).expect("header")).expect("revision");
    assert_eq!(store.sync().await.expect("sync"), last);
    assert_eq!(store.get("/v1/cm/ns/raw").map(|o| o.rev), Some(last - 1));
}

/// When the store's watch is stalled, a sync gives up after kube-apiserver's 3 seconds with
/// "Too large resource version", both the plain sync and the one that checks the state it reaches
/// (etcd before 3.4.31); a closed store refuses at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_times_out_when_the_watch_is_stalled() {
    let etcd = EtcdServer::start();
    let live = connect(&etcd).await;
    let client = raw(&etcd).await;
    for exact_progress in [true, false] {
        let base = live.sync().await.expect("sync");
        // A store whose cache nobody keeps current, as if its watch hung.
        let keys = Keys::new("/registry/");
        let limits = Limits { history_len: 10, retained_snapshots: 1, broadcast_capacity: 8 };
        let stalled = EtcdStore {
            keys: keys.clone(),
            kv: client.kv_client(),
            cache: Arc::new(Cache::new(keys, limits, base, live.snapshot().objects)),
            request_timeout: Duration::from_secs(3),
            exact_progress,
            tasks: Mutex::new(Vec::new()),
        };
        assert_eq!(stalled.sync().await.expect("nothing written since"), base, "exact: {exact_progress}");
        let written = live.write(create(&format!("/a{exact_progress}"), json!({}))).await.expect("create");
        let started = Instant::now();
        let err = stalled.sync().await.expect_err("stalled");
        let waited = started.elapsed();
        assert!(
            matches!(err, StoreError::TooLargeResourceVersion { requested, current } if requested == written.rev && current == base),
            "exact: {exact_progress}: {err:?}"
        );
        assert!(waited >= CONSISTENT_READ_TIMEOUT && waited < CONSISTENT_READ_TIMEOUT * 2, "waited {waited:?}");
        assert_eq!(live.sync().await.expect("the live store is fine"), written.rev);
    }

    live.close();
    assert!(matches!(live.sync().await, Err(StoreError::Closed)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_wait_for_a_future_revision() {
    let etcd = EtcdServer::start();
    conformance::wait_for_a_future_revision(Arc::new(connect(&etcd).await)).await;
}

#[tokio::test]
async fn conformance_sync_reaches_the_last_write() {
    let etcd = EtcdServer::start();
    conformance::sync_reaches_the_last_write(&connect(&etcd).await).await;
}

/// A store that connects replays etcd's recent history into its own, so a watch from a revision
/// seen before it started (its previous life, or another server) resumes with every change since.
/// (`collect` also takes live events: with an etcd before 3.4.31 the replay can finish just after
/// `connect` returns, see `reflector::exact_progress`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_store_resumes_watches_from_before_it_started() {
    let etcd = EtcdServer::start();
    let first = connect(&etcd).await;
    let base = first.write(create("/k/a", json!({"n": 0}))).await.expect("create a").rev;
    first.write(create("/k/b", json!({"n": 0}))).await.expect("create b");
    first.write(update("/k/a", json!({"n": 1}), None)).await.expect("update a");
    first.write(delete("/k/b", None)).await.expect("delete b");
    first.close();
    drop(first);

    let second = connect(&etcd).await;
    let watch = second.watch(base).expect("a watch from before the store started");
    let events = collect(watch, base, base + 3).await;
    assert_eq!(revs(&events), [base + 1, base + 2, base + 3]);
    let kinds: Vec<(EventKind, &str)> = events.iter().map(|e| (e.kind, &*e.key)).collect();
    assert_eq!(kinds, [(EventKind::Added, "/k/b"), (EventKind::Modified, "/k/a"), (EventKind::Deleted, "/k/b")]);
    assert_eq!(second.snapshot_at(base).expect("the state at base").objects.len(), 1);
    assert_eq!(second.get("/k/a").map(|o| o.rev), Some(base + 2));

    // A short history goes back only that far; etcd's compaction bounds it too.
    let short =
        EtcdStore::connect(&etcd.endpoints(), EtcdOptions { history_len: 1, ..options() }).await.expect("short");
    assert!(matches!(short.watch(base), Err(StoreError::Compacted { .. })));
    assert_eq!(revs(&collect(short.watch(base + 2).expect("the last change"), base + 2, base + 3).await), [base + 3]);
    second.compact(base + 2).await.expect("compact");
    let after = connect(&etcd).await;
    assert!(matches!(after.watch(base + 1), Err(StoreError::Compacted { .. })));
    assert_eq!(
        revs(&collect(after.watch(base + 2).expect("after the compaction"), base + 2, base + 3).await),
        [base + 3]
    );
}
