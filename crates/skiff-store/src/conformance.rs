//! Behaviour every [`Store`] backend must have, as checks generic over the backend; each
//! backend's tests run them on a fresh, empty store that nobody else writes to (so revisions
//! are exactly `base + 1`, `base + 2`, ... from the store's revision when the check starts).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::{Event, EventKind, Json, Revision, Store, StoreError, Watch, Write};

pub(crate) fn create(key: &str, value: Value) -> Write {
    Write::Create { key: key.to_owned(), value }
}

pub(crate) fn update(key: &str, value: Value, expected: Option<Revision>) -> Write {
    Write::Update { key: key.to_owned(), value, expected }
}

pub(crate) fn delete(key: &str, expected: Option<Revision>) -> Write {
    Write::Delete { key: key.to_owned(), expected }
}

pub(crate) fn resource_version(value: &Json) -> Option<String> {
    value.parse().pointer("/metadata/resourceVersion").and_then(Value::as_str).map(str::to_owned)
}

pub(crate) fn revs(events: &[Arc<Event>]) -> Vec<Revision> {
    events.iter().map(|e| e.rev).collect()
}

/// Every event of a watch, backlog then live (skipping live events at or below the last one
/// seen), until the one at revision `until`.
pub(crate) async fn collect(mut watch: Watch, after: Revision, until: Revision) -> Vec<Arc<Event>> {
    let mut events: Vec<Arc<Event>> = std::mem::take(&mut watch.backlog);
    while events.last().map_or(after, |e| e.rev) < until {
        let event = tokio::time::timeout(Duration::from_secs(20), watch.live.recv())
            .await
            .expect("no event within 20s")
            .expect("live channel");
        if event.rev > events.last().map_or(after, |e| e.rev) {
            events.push(event);
        }
    }
    events
}

/// Create, update and delete with their failure modes; failed writes take no revision; the
/// history shows every change with its previous state.
pub(crate) async fn create_update_delete<S: Store>(store: &S) {
    let base = store.revision();
    let key = "/v1/pods/ns/a";
    let created = store.write(create(key, json!({"metadata": {"name": "a"}}))).await.expect("create");
    assert_eq!(created.rev, base + 1);
    assert_eq!(&*created.key, key);
    let rv = |rev: Revision| rev.to_string();
    assert_eq!(created.value, json!({"metadata": {"name": "a", "resourceVersion": rv(base + 1)}}));
    assert_eq!(store.get(key), Some(created.clone()));

    let err = store.write(create(key, json!({}))).await.expect_err("exists");
    assert!(matches!(err, StoreError::AlreadyExists(ref k) if k == key), "{err:?}");
    let err = store.write(update(key, json!({}), Some(base + 7))).await.expect_err("conflict");
    assert!(
        matches!(err, StoreError::Conflict { expected, current, .. } if expected == base + 7 && current == base + 1),
        "{err:?}"
    );
    let err = store.write(update("/v1/pods/ns/b", json!({}), None)).await.expect_err("missing");
    assert!(matches!(err, StoreError::NotFound(ref k) if k == "/v1/pods/ns/b"), "{err:?}");
    let err = store.write(update("/v1/pods/ns/b", json!({}), Some(0))).await.expect_err("missing");
    assert!(
        matches!(err, StoreError::NotFound(ref k) if k == "/v1/pods/ns/b"),
        "expecting revision 0 never creates: {err:?}"
    );
    let err = store.write(delete("/v1/pods/ns/b", None)).await.expect_err("missing");
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    let err = store.write(delete("/v1/pods/ns/b", Some(base + 1))).await.expect_err("missing");
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert_eq!(store.revision(), base + 1, "failed writes take no revision");
    assert!(store.get("/v1/pods/ns/b").is_none());

    let updated = store
        .write(update(
            key,
            json!({"metadata": {"name": "a", "resourceVersion": "999"}, "spec": {"x": 1}}),
            Some(base + 1),
        ))
        .await
        .expect("update");
    assert_eq!(updated.rev, base + 2);
    assert_eq!(updated.value, json!({"metadata": {"name": "a", "resourceVersion": rv(base + 2)}, "spec": {"x": 1}}));
    assert_eq!(store.get(key), Some(updated.clone()));

    let err = store.write(delete(key, Some(base + 1))).await.expect_err("conflict");
    assert!(
        matches!(err, StoreError::Conflict { expected, current, .. } if expected == base + 1 && current == base + 2),
        "{err:?}"
    );
    let deleted = store.write(delete(key, Some(base + 2))).await.expect("delete");
    assert_eq!(deleted.rev, base + 3);
    assert_eq!(deleted.value, json!({"metadata": {"name": "a", "resourceVersion": rv(base + 3)}, "spec": {"x": 1}}));
    assert_eq!(store.get(key), None);
    assert_eq!(store.revision(), base + 3);

    // Recreating after a delete is a fresh Added; an unconditional update then works.
    let again = store.write(create(key, json!({"v": 2}))).await.expect("recreate");
    assert_eq!(again.rev, base + 4);
    let blind = store.write(update(key, json!({"v": 3}), None)).await.expect("update without revision");
    assert_eq!(blind.rev, base + 5);
    let gone = store.write(delete(key, None)).await.expect("delete without revision");
    assert_eq!(gone.rev, base + 6);

    let watch = store.watch(base).expect("watch");
    let prev_rv = |e: &Arc<Event>| e.prev.as_ref().and_then(resource_version).and_then(|v| v.parse::<Revision>().ok());
    let got: Vec<(EventKind, Revision, Option<Revision>)> =
        watch.backlog.iter().map(|e| (e.kind, e.rev, prev_rv(e))).collect();
    let want = [
        (EventKind::Added, base + 1, None),
        (EventKind::Modified, base + 2, Some(base + 1)),
        (EventKind::Deleted, base + 3, Some(base + 2)),
        (EventKind::Added, base + 4, None),
        (EventKind::Modified, base + 5, Some(base + 4)),
        (EventKind::Deleted, base + 6, Some(base + 5)),
    ];
    assert_eq!(got, want);
    assert_eq!(watch.backlog[2].object, deleted.value);
    assert_eq!(watch.backlog[1].object, updated.value);
    assert_eq!(watch.backlog[2].prev.as_ref(), Some(&updated.value));
}

/// Writers race; watchers start at different revisions meanwhile. Each watcher sees exactly the
/// acknowledged writes after its start revision, in revision order, with no gap between backlog
/// and live events.
pub(crate) async fn watch_delivers_every_later_change_in_order<S: Store>(store: Arc<S>, tasks: u64, writes: u64) {
    let base = store.revision();
    let writers: Vec<_> = (0..tasks)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..writes {
                    let object = store.write(create(&format!("/w/{t}/{i}"), json!({"i": i}))).await.expect("create");
                    assert_eq!(resource_version(&object.value), Some(object.rev.to_string()));
                    acked.push(object.rev);
                }
                acked
            })
        })
        .collect();
    let end = base + tasks * writes;
    let watchers: Vec<_> = (0..8u64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(i * 15)).await;
                let after = store.revision().saturating_sub(i * 3).max(store.oldest_watchable()).max(base);
                let watch = store.watch(after).expect("watch");
                (after, collect(watch, after, end).await)
            })
        })
        .collect();
    let mut acked = Vec::new();
    for writer in writers {
        acked.extend(writer.await.expect("writer"));
    }
    acked.sort_unstable();
    assert_eq!(acked, (base + 1..=end).collect::<Vec<_>>(), "every write took the next revision");
    for watcher in watchers {
        let (after, events) = watcher.await.expect("watcher");
        assert_eq!(revs(&events), (after + 1..=end).collect::<Vec<_>>(), "watch after {after}");
        for event in &events {
            assert_eq!(event.kind, EventKind::Added);
            assert_eq!(resource_version(&event.object), Some(event.rev.to_string()));
        }
    }
    assert_eq!(store.snapshot().objects.len() as u64, tasks * writes);
}

/// A watch from a revision not reached yet has no backlog and gets the changes as they come.
pub(crate) async fn watch_from_a_future_revision_waits<S: Store>(store: &S) {
    let base = store.revision();
    let mut watch = store.watch(base + 100).expect("watch");
    assert!(watch.backlog.is_empty());
    store.write(create("/f", json!({}))).await.expect("create");
    let event =
        tokio::time::timeout(Duration::from_secs(20), watch.live.recv()).await.expect("in time").expect("event");
    assert_eq!((event.kind, event.rev, &*event.key), (EventKind::Added, base + 1, "/f"));
    assert!(store.watch(base + 1).expect("watch").backlog.is_empty());
}

/// A watch of a prefix has only the changes under it, in its backlog and live; the empty prefix
/// has every change; `live_revision` covers every change sent.
pub(crate) async fn watch_prefix_sees_only_its_prefix<S: Store>(store: &S) {
    let base = store.revision();
    for key in ["/p/a/1", "/q/a/1", "/p/b/1"] {
        store.write(create(key, json!({}))).await.expect("create");
    }
    let keys = |events: &[Arc<Event>]| events.iter().map(|e| e.key.to_string()).collect::<Vec<_>>();
    let mut p = store.watch_prefix("/p/", base).expect("watch /p/");
    let mut pa = store.watch_prefix("/p/a/", base).expect("watch /p/a/");
    let mut all = store.watch_prefix("", base).expect("watch everything");
    assert_eq!(keys(&p.backlog), ["/p/a/1", "/p/b/1"]);
    assert_eq!(keys(&pa.backlog), ["/p/a/1"]);
    assert_eq!(keys(&all.backlog), ["/p/a/1", "/q/a/1", "/p/b/1"]);
    for key in ["/q/a/2", "/p/a/2", "/q/b/2", "/p/b/2"] {
        store.write(create(key, json!({}))).await.expect("create");
    }
    assert_eq!(store.live_revision(), base + 7);
    assert_eq!([next_key(&mut p).await, next_key(&mut p).await], ["/p/a/2", "/p/b/2"]);
    assert_eq!(next_key(&mut pa).await, "/p/a/2");
    let mut live_all = Vec::new();
    for _ in 0..4 {
        live_all.push(next_key(&mut all).await);
    }
    assert_eq!(live_all, ["/q/a/2", "/p/a/2", "/q/b/2", "/p/b/2"]);
    assert!(p.live.try_recv().is_err() && pa.live.try_recv().is_err(), "nothing else under the prefixes");
}

/// The key of a watch's next live event.
async fn next_key(watch: &mut Watch) -> String {
    let event = tokio::time::timeout(Duration::from_secs(20), watch.live.recv()).await.expect("in time");
    event.expect("event").key.to_string()
}

/// A wait for a future revision ends with the write that reaches it; one for a revision nobody
/// writes ends after its timeout with `TooLargeResourceVersion`; a reached one answers at once.
pub(crate) async fn wait_for_a_future_revision<S: Store>(store: Arc<S>) {
    let base = store.revision();
    assert_eq!(store.wait_for(base, Duration::from_millis(1)).await.expect("reached"), base);
    let writer = store.clone();
    let write = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        writer.write(create("/w/1", json!({}))).await.expect("create")
    });
    let reached = store.wait_for(base + 1, Duration::from_secs(20)).await.expect("reached with the write");
    assert!(reached > base, "reached {reached}");
    assert_eq!(write.await.expect("writer").rev, base + 1);
    let err = store.wait_for(base + 50, Duration::from_millis(200)).await.expect_err("nobody writes that far");
    assert!(
        matches!(err, StoreError::TooLargeResourceVersion { requested, current } if requested == base + 50 && current == base + 1),
        "{err:?}"
    );
}

/// A retained snapshot keeps its revision's state; the latest revision is always available; a
/// future one is not.
pub(crate) async fn snapshots_keep_their_revision<S: Store>(store: &S) {
    let base = store.revision();
    let mut taken = Vec::new();
    for i in 0..3u64 {
        store.write(create(&format!("/s/{i}"), json!({}))).await.expect("create");
        let snapshot = store.snapshot();
        assert_eq!(snapshot.rev, base + i + 1);
        store.retain_snapshot(&snapshot);
        taken.push(snapshot);
    }
    store.write(delete("/s/0", None)).await.expect("delete");
    for (i, rev) in [base + 2, base + 3].into_iter().enumerate() {
        let snapshot = store.snapshot_at(rev).expect("retained");
        assert_eq!(snapshot.rev, rev);
        assert_eq!(snapshot.objects.len(), i + 2, "the snapshot at {rev} does not see later writes");
    }
    assert_eq!(store.snapshot_at(base + 4).expect("current").objects.len(), 2);
    assert!(matches!(store.snapshot_at(base + 5), Err(StoreError::SnapshotExpired(r)) if r == base + 5));
    assert_eq!(taken[0].objects.len(), 1);
}

/// `Snapshot::range` lists a prefix in key order, after a key.
pub(crate) async fn snapshot_range_lists_a_prefix_after_a_key<S: Store>(store: &S) {
    for key in ["/pods/a/1", "/pods/a/2", "/pods/a/3", "/pods/aa/1", "/pods/b/1", "/pods0", "/pod"] {
        store.write(create(key, json!({}))).await.expect("create");
    }
    let snapshot = store.snapshot();
    let cases: [(&str, Option<&str>, &[&str]); 8] = [
        ("/pods/a/", None, &["/pods/a/1", "/pods/a/2", "/pods/a/3"]),
        ("/pods/a/", Some("/pods/a/1"), &["/pods/a/2", "/pods/a/3"]),
        ("/pods/a/", Some("/pods/a/3"), &[]),
        ("/pods/a/", Some("/pods/a/15"), &["/pods/a/2", "/pods/a/3"]),
        ("/pods/", None, &["/pods/a/1", "/pods/a/2", "/pods/a/3", "/pods/aa/1", "/pods/b/1"]),
        ("/pods/", Some("/pods/aa/1"), &["/pods/b/1"]),
        ("/pods/c/", None, &[]),
        ("/", None, &["/pod", "/pods/a/1", "/pods/a/2", "/pods/a/3", "/pods/aa/1", "/pods/b/1", "/pods0"]),
    ];
    for (prefix, after, want) in cases {
        let got: Vec<&str> = snapshot.range(prefix, after).map(|o| &*o.key).collect();
        assert_eq!(got, want, "prefix {prefix} after {after:?}");
    }
}

/// `sync` answers the revision every acknowledged write is readable at: with nobody else writing,
/// exactly the last write's, and the reads show that write.
pub(crate) async fn sync_reaches_the_last_write<S: Store>(store: &S) {
    let base = store.revision();
    assert_eq!(store.sync().await.expect("sync"), base, "nothing written yet");
    let key = "/v1/configmaps/ns/sync";
    let writes = [
        create(key, json!({"data": {"n": "1"}})),
        update(key, json!({"data": {"n": "2"}}), None),
        delete(key, None),
        create(key, json!({"data": {"n": "3"}})),
    ];
    for (i, write) in writes.into_iter().enumerate() {
        let deleting = matches!(write, Write::Delete { .. });
        let written = store.write(write).await.expect("write");
        assert_eq!(written.rev, base + i as Revision + 1);
        let reached = store.sync().await.expect("sync");
        assert!(reached >= written.rev, "sync reached {reached}, before the write at {}", written.rev);
        assert_eq!(reached, written.rev, "nobody else writes");
        assert!(store.snapshot().rev >= reached);
        assert_eq!(store.get(key), if deleting { None } else { Some(written) });
    }
    // Syncing again with nothing new changes nothing.
    assert_eq!(store.sync().await.expect("sync"), base + 4);
    assert_eq!(store.revision(), base + 4);
}
