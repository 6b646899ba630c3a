//! Tests of the SQLite store as a whole: semantics, concurrency, watches, restarts and crashes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::writer::Reply;
use super::*;
use crate::{EventKind, Json};

fn options(history_len: usize) -> SqliteOptions {
    SqliteOptions { history_len, ..SqliteOptions::default() }
}

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("store").join("skiff.db")
}

fn create(key: &str, value: Value) -> Write {
    Write::Create { key: key.to_owned(), value }
}

fn update(key: &str, value: Value, expected: Option<Revision>) -> Write {
    Write::Update { key: key.to_owned(), value, expected }
}

fn delete(key: &str, expected: Option<Revision>) -> Write {
    Write::Delete { key: key.to_owned(), expected }
}

fn resource_version(value: &Json) -> Option<String> {
    value.parse().pointer("/metadata/resourceVersion").and_then(Value::as_str).map(str::to_owned)
}

/// Every event of a watch, backlog then live, until the one at revision `until`.
async fn collect(mut watch: Watch, until: Revision) -> Vec<Arc<Event>> {
    let mut events: Vec<Arc<Event>> = std::mem::take(&mut watch.backlog);
    while events.last().map_or(0, |e| e.rev) < until {
        let event = tokio::time::timeout(Duration::from_secs(20), watch.live.recv())
            .await
            .expect("no event within 20s")
            .expect("live channel");
        events.push(event);
    }
    events
}

fn revs(events: &[Arc<Event>]) -> Vec<Revision> {
    events.iter().map(|e| e.rev).collect()
}

#[tokio::test]
async fn create_update_delete_semantics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&db_path(&dir), SqliteOptions::default()).expect("open");
    assert_eq!((store.revision(), store.oldest_watchable()), (0, 0));

    let created = store.write(create("/v1/pods/ns/a", json!({"metadata": {"name": "a"}}))).await.expect("create");
    assert_eq!(created.rev, 1);
    assert_eq!(*created.key, *"/v1/pods/ns/a");
    assert_eq!(created.value, json!({"metadata": {"name": "a", "resourceVersion": "1"}}));
    assert_eq!(store.get("/v1/pods/ns/a"), Some(created.clone()));

    let err = store.write(create("/v1/pods/ns/a", json!({}))).await.expect_err("exists");
    assert!(matches!(err, StoreError::AlreadyExists(ref k) if k == "/v1/pods/ns/a"), "{err:?}");
    let err = store.write(update("/v1/pods/ns/a", json!({}), Some(7))).await.expect_err("conflict");
    assert!(matches!(err, StoreError::Conflict { expected: 7, current: 1, .. }), "{err:?}");
    let err = store.write(update("/v1/pods/ns/b", json!({}), None)).await.expect_err("missing");
    assert!(matches!(err, StoreError::NotFound(ref k) if k == "/v1/pods/ns/b"), "{err:?}");
    let err = store.write(delete("/v1/pods/ns/b", None)).await.expect_err("missing");
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    // Failed writes take no revision.
    assert_eq!(store.revision(), 1);

    let updated = store
        .write(update("/v1/pods/ns/a", json!({"metadata": {"name": "a"}, "spec": {"x": 1}}), Some(1)))
        .await
        .expect("update");
    assert_eq!(updated.rev, 2);
    assert_eq!(updated.value, json!({"metadata": {"name": "a", "resourceVersion": "2"}, "spec": {"x": 1}}));

    let err = store.write(delete("/v1/pods/ns/a", Some(1))).await.expect_err("conflict");
    assert!(matches!(err, StoreError::Conflict { expected: 1, current: 2, .. }), "{err:?}");
    let deleted = store.write(delete("/v1/pods/ns/a", Some(2))).await.expect("delete");
    assert_eq!(deleted.rev, 3);
    assert_eq!(deleted.value, json!({"metadata": {"name": "a", "resourceVersion": "3"}, "spec": {"x": 1}}));
    assert_eq!(store.get("/v1/pods/ns/a"), None);
    assert_eq!(store.revision(), 3);

    let watch = store.watch(0).expect("watch");
    let got: Vec<(EventKind, Revision, Option<Revision>)> = watch
        .backlog
        .iter()
        .map(|e| {
            let prev = e.prev.as_ref().and_then(resource_version).and_then(|v| v.parse().ok());
            (e.kind, e.rev, prev)
        })
        .collect();
    assert_eq!(got, [(EventKind::Added, 1, None), (EventKind::Modified, 2, Some(1)), (EventKind::Deleted, 3, Some(2))]);
    assert_eq!(watch.backlog[2].object, deleted.value);
}

/// Builds the writer without its thread, to drive batches by hand.
fn writer_for(path: &Path, options: &SqliteOptions) -> (Arc<Shared>, Writer) {
    prepare(path, options).expect("prepare")
}

type Answer = oneshot::Receiver<Result<Object, StoreError>>;

fn batch(writes: Vec<Write>) -> (Vec<(Prepared, Reply)>, Vec<Answer>) {
    writes
        .into_iter()
        .map(|w| {
            let (tx, rx) = oneshot::channel();
            ((Prepared::new(w).expect("serializable"), tx), rx)
        })
        .unzip()
}

fn outcome(answer: Answer) -> Result<Revision, String> {
    answer.blocking_recv().expect("answered").map(|o| o.rev).map_err(|e| e.to_string())
}

#[test]
fn a_batch_checks_each_write_against_the_previous_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (shared, mut writer) = writer_for(&db_path(&dir), &SqliteOptions::default());
    let (writes, answers) = batch(vec![
        create("/a", json!({"v": 1})),
        update("/a", json!({"v": 2}), Some(1)),
        create("/a", json!({})),
        delete("/b", None),
        update("/a", json!({"v": 3}), Some(1)),
        create("/b", json!({})),
        delete("/b", Some(3)),
    ]);
    writer.process(writes);
    let got: Vec<Result<Revision, String>> = answers.into_iter().map(outcome).collect();
    let want: Vec<Result<Revision, String>> = vec![
        Ok(1),
        Ok(2),
        Err("key /a already exists".into()),
        Err("key /b not found".into()),
        Err("key /a is at revision 2, not 1".into()),
        Ok(3),
        Ok(4),
    ];
    assert_eq!(got, want);
    let published = shared.published.read();
    assert_eq!(published.snapshot.rev, 4);
    assert_eq!(published.snapshot.objects.keys().map(|k| k.to_string()).collect::<Vec<_>>(), ["/a"]);
    assert_eq!(revs(&published.history.iter().cloned().collect::<Vec<_>>()), [1, 2, 3, 4]);
}

#[test]
fn a_failed_commit_fails_the_whole_batch_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    drop(SqliteStore::open(&path, SqliteOptions::default()).expect("create schema"));
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    conn.execute_batch(
        "CREATE TRIGGER fail BEFORE INSERT ON objects WHEN NEW.key = '/fail' BEGIN SELECT RAISE(ABORT, 'boom'); END;",
    )
    .expect("trigger");
    drop(conn);

    let (shared, mut writer) = writer_for(&path, &SqliteOptions::default());
    let (writes, answers) = batch(vec![create("/a", json!({})), create("/fail", json!({})), create("/a", json!({}))]);
    writer.process(writes);
    for answer in answers {
        let err = answer.blocking_recv().expect("answered").expect_err("must fail");
        assert!(matches!(err, StoreError::Backend(ref m) if m.contains("boom")), "{err:?}");
    }
    {
        let published = shared.published.read();
        assert_eq!((published.snapshot.rev, published.snapshot.objects.len(), published.history.len()), (0, 0, 0));
    }
    assert_eq!((writer.revision, writer.objects.len()), (0, 0));

    // The next batch goes on from the same revision.
    let (writes, answers) = batch(vec![create("/a", json!({}))]);
    writer.process(writes);
    assert_eq!(answers.into_iter().map(outcome).collect::<Vec<_>>(), [Ok(1)]);
    drop(writer);

    let store = SqliteStore::open(&path, SqliteOptions::default()).expect("reopen");
    assert_eq!(store.revision(), 1);
    assert_eq!(store.snapshot().objects.keys().map(|k| k.to_string()).collect::<Vec<_>>(), ["/a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_get_distinct_contiguous_revisions() {
    const TASKS: u64 = 16;
    const WRITES: u64 = 200;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(&db_path(&dir), SqliteOptions::default()).expect("open"));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = format!("/counters/{t:02}");
                let mut revisions = Vec::new();
                let mut last = store.write(create(&key, json!({"n": 0}))).await.expect("create");
                revisions.push(last.rev);
                for n in 1..WRITES {
                    let before = last.rev;
                    last = store.write(update(&key, json!({"n": n}), Some(before))).await.expect("update");
                    assert!(last.rev > before, "revision went from {before} to {}", last.rev);
                    assert_eq!(resource_version(&last.value), Some(last.rev.to_string()));
                    revisions.push(last.rev);
                }
                revisions
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    all.sort_unstable();
    assert_eq!(all, (1..=TASKS * WRITES).collect::<Vec<_>>());
    let snapshot = store.snapshot();
    assert_eq!(snapshot.rev, TASKS * WRITES);
    assert_eq!(snapshot.objects.len() as u64, TASKS);
    for object in snapshot.objects.values() {
        assert_eq!(object.value.parse()["n"], json!(WRITES - 1), "{}", object.key);
        assert_eq!(resource_version(&object.value), Some(object.rev.to_string()));
    }
    // Every event in the history matches the revision order.
    let watch = store.watch(0).expect("watch");
    assert_eq!(revs(&watch.backlog), (1..=TASKS * WRITES).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_backlog_and_live_have_no_gap_while_writes_race() {
    const TASKS: u64 = 4;
    const WRITES: u64 = 250;
    const TOTAL: u64 = TASKS * WRITES;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(&db_path(&dir), SqliteOptions::default()).expect("open"));
    let writers: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..WRITES {
                    store.write(create(&format!("/w/{t}/{i}"), json!({}))).await.expect("create");
                }
            })
        })
        .collect();
    let watchers: Vec<_> = (0..12u64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(i * 3)).await;
                let after = store.revision().saturating_sub(i * 5);
                let watch = store.watch(after).expect("watch");
                (after, collect(watch, TOTAL).await)
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let mut started = Vec::new();
    for watcher in watchers {
        let (after, events) = watcher.await.expect("watcher");
        assert_eq!(revs(&events), (after + 1..=TOTAL).collect::<Vec<_>>(), "watch after {after}");
        for event in &events {
            assert_eq!(event.kind, EventKind::Added);
            assert_eq!(resource_version(&event.object), Some(event.rev.to_string()));
        }
        started.push(after);
    }
    println!("watches started after revisions {started:?}");
}

#[tokio::test]
async fn old_revisions_are_compacted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let store = SqliteStore::open(&path, options(10)).expect("open");
    for i in 0..25 {
        store.write(create(&format!("/k/{i:02}"), json!({}))).await.expect("create");
    }
    assert_eq!((store.revision(), store.oldest_watchable()), (25, 15));
    let err = store.watch(14).err().expect("compacted");
    assert!(matches!(err, StoreError::Compacted { requested: 14, oldest: 15 }), "{err:?}");
    let err = store.watch(0).err().expect("compacted");
    assert!(matches!(err, StoreError::Compacted { requested: 0, oldest: 15 }), "{err:?}");
    assert_eq!(revs(&store.watch(15).expect("watch").backlog), (16..=25).collect::<Vec<_>>());
    assert_eq!(revs(&store.watch(24).expect("watch").backlog), [25]);
    assert!(store.watch(25).expect("watch").backlog.is_empty());

    // A future revision: nothing yet, then the changes as they come.
    let mut future = store.watch(100).expect("watch");
    assert!(future.backlog.is_empty());
    store.write(delete("/k/00", None)).await.expect("delete");
    let event = future.live.try_recv().expect("live event");
    assert_eq!((event.kind, event.rev, &*event.key), (EventKind::Deleted, 26, "/k/00"));
    assert_eq!(store.oldest_watchable(), 16);
    for n in 0..30 {
        store.write(update("/k/01", json!({"n": n}), None)).await.expect("update");
    }
    assert_eq!((store.revision(), store.oldest_watchable()), (56, 46));
    let objects = store.snapshot().objects;
    drop(store);

    // On disk, with a history of 10 the pruning step is 1 row, so every commit prunes down to the
    // last 10 revisions (47..=56) plus the rows still holding a live object's value: /k/02../k/24
    // at revisions 3..=25. Replaced and deleted values are gone.
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    let mut stmt = conn.prepare("SELECT rev FROM log ORDER BY rev").expect("prepare");
    let rows: Vec<i64> = stmt.query_map([], |r| r.get(0)).expect("query").map(|r| r.expect("row")).collect();
    let want: Vec<i64> = (3..=25).chain(47..=56).collect();
    assert_eq!(rows, want);
    let compacted: i64 =
        conn.query_row("SELECT value FROM meta WHERE name = 'compacted'", [], |r| r.get(0)).expect("meta");
    assert_eq!(compacted, 46);
    drop(stmt);
    drop(conn);

    // Reopened, the store has the same objects and the same window.
    let store = SqliteStore::open(&path, options(10)).expect("reopen");
    assert_eq!((store.revision(), store.oldest_watchable()), (56, 46));
    assert_eq!(store.snapshot().objects, objects);
    assert_eq!(revs(&store.watch(46).expect("watch").backlog), (47..=56).collect::<Vec<_>>());
    // A longer history on reopen cannot reach below what was pruned.
    drop(store);
    let store = SqliteStore::open(&path, options(1000)).expect("reopen");
    assert_eq!(store.oldest_watchable(), 46);
}

/// With a history of 16 the log is pruned every 2 revisions (an eighth of the history), down to the
/// last 16 rows: between prunes it holds 17.
#[tokio::test]
async fn the_log_is_pruned_on_a_cadence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let log_rows = || {
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.query_row("SELECT COUNT(*), MIN(rev), MAX(rev) FROM log", [], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        })
        .expect("count")
    };
    let store = SqliteStore::open(&path, options(16)).expect("open");
    store.write(create("/x", json!({"n": 0}))).await.expect("create");
    for n in 1..17 {
        store.write(update("/x", json!({"n": n}), None)).await.expect("update");
    }
    drop(store);
    // Revision 17: nothing pruned yet.
    assert_eq!(log_rows(), (17, 1, 17));

    let mut expected = vec![];
    let mut got = vec![];
    for rev in 18..=21 {
        let store = SqliteStore::open(&path, options(16)).expect("reopen");
        store.write(update("/x", json!({"n": rev}), None)).await.expect("update");
        drop(store);
        got.push(log_rows());
        // Pruned at even revisions, down to revision - 16.
        let min = if rev % 2 == 0 { rev - 15 } else { rev - 16 };
        expected.push((rev - min + 1, min, rev));
    }
    assert_eq!(got, expected);
}

#[tokio::test]
async fn reopen_keeps_objects_revisions_and_watch_resume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let (objects, history) = {
        let store = SqliteStore::open(&path, SqliteOptions::default()).expect("open");
        store.write(create("/a", json!({"v": 1}))).await.expect("create a");
        store.write(create("/b", json!({"v": 1}))).await.expect("create b");
        store.write(update("/a", json!({"v": 2}), Some(1))).await.expect("update a");
        store.write(delete("/b", Some(2))).await.expect("delete b");
        store.write(create("/c", json!({"v": 1}))).await.expect("create c");
        (store.snapshot().objects, store.watch(0).expect("watch").backlog)
    };

    let store = SqliteStore::open(&path, SqliteOptions::default()).expect("reopen");
    assert_eq!((store.revision(), store.oldest_watchable()), (5, 0));
    assert_eq!(store.snapshot().objects, objects);
    // Events loaded from disk equal the live ones, prev included (all in the window).
    assert_eq!(store.watch(0).expect("watch").backlog, history);
    let resumed = store.watch(2).expect("watch");
    assert_eq!(revs(&resumed.backlog), [3, 4, 5]);

    let next = store.write(update("/c", json!({"v": 2}), Some(5))).await.expect("update c");
    assert_eq!(next.rev, 6);
    assert_eq!(collect(resumed, 6).await.last().map(|e| e.rev), Some(6));
}

#[tokio::test]
async fn revisions_never_go_backwards_even_when_everything_is_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    for round in 0..3u64 {
        let store = SqliteStore::open(&path, options(1)).expect("open");
        assert_eq!(store.revision(), round * 2);
        // A history of one change: the last delete is still held.
        assert_eq!(store.oldest_watchable(), (round * 2).saturating_sub(1));
        store.write(create("/only", json!({}))).await.expect("create");
        let deleted = store.write(delete("/only", None)).await.expect("delete");
        assert_eq!(deleted.rev, round * 2 + 2);
        assert!(store.snapshot().objects.is_empty());
    }
}

#[tokio::test]
async fn reopen_with_a_shorter_history_compacts_and_rebuilds_prev() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    {
        let store = SqliteStore::open(&path, SqliteOptions::default()).expect("open");
        store.write(create("/a", json!({"v": 1}))).await.expect("1");
        store.write(create("/b", json!({"v": 1}))).await.expect("2");
        store.write(update("/a", json!({"v": 2}), None)).await.expect("3");
        store.write(delete("/b", None)).await.expect("4");
        store.write(update("/a", json!({"v": 3}), None)).await.expect("5");
    }
    let store = SqliteStore::open(&path, options(3)).expect("reopen");
    assert_eq!(store.oldest_watchable(), 2);
    let err = store.watch(1).err().expect("compacted");
    assert!(matches!(err, StoreError::Compacted { requested: 1, oldest: 2 }), "{err:?}");
    let backlog = store.watch(2).expect("watch").backlog;
    let prevs: Vec<(Revision, Option<Value>)> =
        backlog.iter().map(|e| (e.rev, e.prev.as_ref().map(Json::parse))).collect();
    assert_eq!(
        prevs,
        [
            // The previous state of /a (revision 1) is no longer held.
            (3, None),
            (4, Some(json!({"v": 1, "metadata": {"resourceVersion": "2"}}))),
            (5, Some(json!({"v": 2, "metadata": {"resourceVersion": "3"}}))),
        ]
    );
}

#[tokio::test]
async fn snapshots_are_consistent_and_retained_by_revision() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        SqliteStore::open(&db_path(&dir), SqliteOptions { retained_snapshots: 2, ..Default::default() }).expect("open");
    let mut taken = Vec::new();
    for i in 0..3 {
        store.write(create(&format!("/s/{i}"), json!({}))).await.expect("create");
        let snapshot = store.snapshot();
        store.retain_snapshot(&snapshot);
        taken.push(snapshot);
    }
    store.write(delete("/s/0", None)).await.expect("delete");

    let err = store.snapshot_at(1).err().expect("expired");
    assert!(matches!(err, StoreError::SnapshotExpired(1)), "{err:?}");
    for rev in [2, 3] {
        let snapshot = store.snapshot_at(rev).expect("retained");
        assert_eq!(snapshot.rev, rev);
        assert_eq!(snapshot.objects.len() as u64, rev, "the snapshot does not see later writes");
    }
    // The latest revision is always available.
    assert_eq!(store.snapshot_at(4).expect("current").objects.len(), 2);
    assert!(matches!(store.snapshot_at(5), Err(StoreError::SnapshotExpired(5))));
    assert_eq!(taken[0].objects.len(), 1);
}

#[tokio::test]
async fn snapshot_range_lists_a_prefix_after_a_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&db_path(&dir), SqliteOptions::default()).expect("open");
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

#[tokio::test]
async fn close_stops_writes_and_ends_watches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let store = SqliteStore::open(&path, SqliteOptions::default()).expect("open");
    store.write(create("/a", json!({}))).await.expect("create");
    let mut watch = store.watch(1).expect("watch");
    store.close();
    store.close();
    assert!(matches!(store.write(create("/b", json!({}))).await, Err(StoreError::Closed)));
    assert!(matches!(store.watch(1), Err(StoreError::Closed)));
    assert!(matches!(watch.live.recv().await, Err(tokio::sync::broadcast::error::RecvError::Closed)));
    // The database is released: it can be opened again while the closed store still exists.
    let reopened = SqliteStore::open(&path, SqliteOptions::default()).expect("reopen");
    assert_eq!(reopened.revision(), 1);
}

#[tokio::test]
async fn a_second_store_on_the_same_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let store = SqliteStore::open(&path, SqliteOptions::default()).expect("open");
    store.write(create("/a", json!({}))).await.expect("create");
    let err = SqliteStore::open(&path, SqliteOptions::default()).err().expect("locked");
    assert!(matches!(err, StoreError::Backend(ref m) if m.contains("locked")), "{err:?}");
}

const CRASH_CHILD_ENV: &str = "SKIFF_STORE_CRASH_CHILD_DB";

/// The child half of [`acknowledged_writes_survive_sigkill`]: with the environment variable set,
/// writes from several tasks until killed, printing each acknowledged write. Without it, does
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Ok(path) = std::env::var(CRASH_CHILD_ENV) else { return };
    let store = Arc::new(SqliteStore::open(Path::new(&path), SqliteOptions::default()).expect("open"));
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("/crash/{t}/{i}");
                    let object = store.write(create(&key, json!({"i": i}))).await.expect("write");
                    println!("ACK {key} {}", object.rev);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args(["--exact", "sqlite::tests::crash_child", "--nocapture", "--test-threads=1"])
        .env(CRASH_CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut acked = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.len() < 2000 && Instant::now() < deadline {
        let Some(line) = lines.next() else { break };
        let line = line.expect("line");
        if let Some((key, rev)) = line.strip_prefix("ACK ").and_then(|l| l.split_once(' ')) {
            acked.insert(key.to_owned(), rev.parse::<Revision>().expect("revision"));
        }
    }
    child.kill().expect("SIGKILL");
    // Acknowledgements printed before the kill are still in the pipe.
    for line in lines {
        let line = line.expect("line");
        if let Some((key, rev)) = line.strip_prefix("ACK ").and_then(|l| l.split_once(' ')) {
            acked.insert(key.to_owned(), rev.parse::<Revision>().expect("revision"));
        }
    }
    let status = child.wait().expect("wait");
    assert!(!status.success(), "the child must have been killed, not exit: {status}");
    assert!(acked.len() >= 2000, "only {} writes acknowledged", acked.len());

    let store = SqliteStore::open(&path, SqliteOptions::default()).expect("reopen after crash");
    let max = acked.values().copied().max().unwrap_or(0);
    assert!(store.revision() >= max, "revision {} < acknowledged {max}", store.revision());
    for (key, rev) in &acked {
        let object = store.get(key).unwrap_or_else(|| panic!("acknowledged {key} at {rev} lost"));
        assert_eq!(object.rev, *rev, "{key}");
    }
    // The history survived too, contiguous up to the latest revision.
    let backlog = store.watch(0).expect("watch").backlog;
    assert_eq!(revs(&backlog), (1..=store.revision()).collect::<Vec<_>>());
    println!("{} acknowledged writes survived SIGKILL (store at revision {})", acked.len(), store.revision());
}

/// Rough throughput of durable creates. Run with
/// `cargo test -p skiff-store --release throughput -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints numbers, asserts nothing about time"]
async fn throughput() {
    // /tmp is on the real disk here (not tmpfs), so the fsyncs are real.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(&db_path(&dir), SqliteOptions::default()).expect("open"));
    let value = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": "default", "labels": {"app": "bench"}},
        "data": {"key": "a value of moderate length to look like a real object"}
    });

    const SINGLE: u64 = 3000;
    let mut latencies = Vec::with_capacity(SINGLE as usize);
    let start = Instant::now();
    for i in 0..SINGLE {
        let t = Instant::now();
        store.write(create(&format!("/bench/single/{i}"), value.clone())).await.expect("create");
        latencies.push(t.elapsed());
    }
    let secs = start.elapsed().as_secs_f64();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)].as_secs_f64() * 1e3;
    println!(
        "1 client: {SINGLE} durable creates in {secs:.2}s = {:.0}/s; p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        SINGLE as f64 / secs,
        at(0.5),
        at(0.99),
        at(1.0)
    );

    for clients in [16u64, 256] {
        let per_client = 20_000 / clients;
        let start = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let store = store.clone();
                let value = value.clone();
                tokio::spawn(async move {
                    for i in 0..per_client {
                        store.write(create(&format!("/bench/{clients}/{c}/{i}"), value.clone())).await.expect("create");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        let secs = start.elapsed().as_secs_f64();
        let total = clients * per_client;
        println!("{clients} clients: {total} durable creates in {secs:.2}s = {:.0}/s", total as f64 / secs);
    }
}

/// The behaviour every backend shares (`crate::conformance`), on a fresh SQLite store each.
mod conformance {
    use std::sync::Arc;

    use super::{SqliteOptions, SqliteStore, db_path};
    use crate::conformance;

    fn store(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(&db_path(dir), SqliteOptions::default()).expect("open")
    }

    #[tokio::test]
    async fn create_update_delete() {
        let dir = tempfile::tempdir().expect("tempdir");
        conformance::create_update_delete(&store(&dir)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watch_delivers_every_later_change_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        conformance::watch_delivers_every_later_change_in_order(Arc::new(store(&dir)), 4, 100).await;
    }

    #[tokio::test]
    async fn watch_prefix_sees_only_its_prefix() {
        let dir = tempfile::tempdir().expect("tempdir");
        conformance::watch_prefix_sees_only_its_prefix(&store(&dir)).await;
    }

    #[tokio::test]
    async fn watch_from_a_future_revision_waits() {
        let dir = tempfile::tempdir().expect("tempdir");
        conformance::watch_from_a_future_revision_waits(&store(&dir)).await;
    }

    #[tokio::test]
    async fn snapshots_keep_their_revision() {
        let dir = tempfile::tempdir().expect("tempdir");
        conformance::snapshots_keep_their_revision(&store(&dir)).await;
    }

    #[tokio::test]
    async fn snapshot_range_lists_a_prefix_after_a_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        conformance::snapshot_range_lists_a_prefix_after_a_key(&store(&dir)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wait_for_a_future_revision() {
        let dir = tempfile::tempdir().expect("tempdir");
        conformance::wait_for_a_future_revision(std::sync::Arc::new(store(&dir))).await;
    }

    #[tokio::test]
    async fn sync_reaches_the_last_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        conformance::sync_reaches_the_last_write(&store(&dir)).await;
    }
}

/// A write with no other in flight commits on its own thread; one that overlaps it goes to the
/// writer thread, which commits it after the first releases the writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::await_holding_lock, reason = "the test holds the writer on purpose while the writes start")]
async fn a_lone_write_commits_itself_and_an_overlapping_one_goes_to_the_writer_thread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(&db_path(&dir), SqliteOptions::default()).expect("open"));
    let lone_commits = |store: &SqliteStore| store.lone_commits.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(store.write(create("/first", json!({}))).await.expect("first").rev, 1);
    assert_eq!(lone_commits(&store), 1, "alone: committed on the caller's thread");

    let wait_in_flight = |n: usize| {
        let store = store.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            while store.in_flight.load(std::sync::atomic::Ordering::Acquire) != n {
                assert!(Instant::now() < deadline, "never {n} writes in flight");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };
    // Hold the writer so both writes wait for it.
    let held = store.slot.lock();
    let first = tokio::spawn({
        let store = store.clone();
        async move { store.write(create("/a", json!({}))).await }
    });
    wait_in_flight(1).await;
    let second = tokio::spawn({
        let store = store.clone();
        async move { store.write(create("/b", json!({}))).await }
    });
    wait_in_flight(2).await;
    drop(held);
    let mut revs = [first.await.expect("join").expect("a").rev, second.await.expect("join").expect("b").rev];
    revs.sort_unstable();
    assert_eq!(revs, [2, 3]);
    assert_eq!(lone_commits(&store), 2, "the overlapping write went to the writer thread");
    assert_eq!(store.in_flight.load(std::sync::atomic::Ordering::Acquire), 0);
    assert_eq!(store.snapshot().objects.len(), 3);

    // Alone again: committed here, at the next revision. Once closed, a lone write is refused.
    assert_eq!(store.write(create("/c", json!({}))).await.expect("c").rev, 4);
    assert_eq!(lone_commits(&store), 3);
    store.close();
    assert!(matches!(store.write(create("/d", json!({}))).await, Err(StoreError::Closed)));
}

/// Writes commit on their own thread only while they do not overlap: not when another is in
/// flight, and not while the writer's batches hold more than one write. On a single-threaded
/// runtime, which has no other worker to run its tasks during a commit, every write goes to the
/// writer thread.
#[tokio::test]
async fn only_writes_that_do_not_overlap_commit_on_their_own_thread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&db_path(&dir), SqliteOptions::default()).expect("open");
    let first = InFlight::enter(&store.in_flight);
    let second = InFlight::enter(&store.in_flight);
    assert!(store.commits_here(&first), "alone, and nothing committed yet");
    assert!(!store.commits_here(&second), "another write is in flight");
    drop((first, second));

    // A batch of two on the writer: the next write, though alone, goes to the writer thread.
    let (writes, answers) = batch(vec![create("/a", json!({})), create("/b", json!({}))]);
    store.slot.lock().as_mut().expect("open").process(writes);
    let revs: Vec<Revision> =
        answers.into_iter().map(|mut a| a.try_recv().expect("answered").expect("committed").rev).collect();
    assert_eq!(revs, [1, 2]);
    assert!(!store.commits_here(&InFlight::enter(&store.in_flight)), "the last batch held two");
    // That write is a batch of one, after which writes would commit on their own threads again.
    assert_eq!(store.write(create("/c", json!({}))).await.expect("c").rev, 3);
    assert!(store.commits_here(&InFlight::enter(&store.in_flight)));
    assert_eq!(store.write(create("/d", json!({}))).await.expect("d").rev, 4);
    assert_eq!(store.lone_commits.load(std::sync::atomic::Ordering::Relaxed), 0, "a single-threaded runtime");
}

/// A multi-threaded runtime with one worker has no other worker to run its tasks during a commit:
/// its writes go to the writer thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_runtime_with_one_worker_leaves_commits_to_the_writer_thread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&db_path(&dir), SqliteOptions::default()).expect("open");
    assert_eq!(store.write(create("/a", json!({}))).await.expect("a").rev, 1);
    assert_eq!(store.write(create("/b", json!({}))).await.expect("b").rev, 2);
    assert_eq!(store.lone_commits.load(std::sync::atomic::Ordering::Relaxed), 0);
}
