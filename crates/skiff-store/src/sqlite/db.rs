//! The on-disk layout and every SQL statement the store runs.
//!
//! Three tables:
//! - `log(rev, key, kind, value, prev_rev)`: one row per revision. `value` is the object's JSON
//!   after the change (for a delete, the last state at the delete's revision) and `prev_rev` the
//!   revision of the state the change replaced. Each value is written once, here.
//! - `objects(key, rev)`: every live object and the log row holding its current value.
//! - `meta(name, value)`: `compacted`, the revision up to which the log has been pruned, and
//!   `revision`, the latest revision when it was last pruned.
//!
//! Pruning keeps the last `history_len` rows (the watch history) and, below that, only the rows
//! that are some live object's current value. Invariant: every log row at or below `compacted` is
//! referenced by `objects`. A write that replaces such a row deletes it in the same transaction;
//! rows above `compacted` are pruned in rev ranges, when the log has grown a pruning step past the
//! history length, in the same transaction as a batch. The latest row is never pruned, so the
//! latest revision survives restarts even once every object is deleted.
//!
//! The database runs in WAL mode with `synchronous=FULL`, so a committed transaction is fsync'd
//! before the commit returns, and in exclusive locking mode: one store owns the file, and a second
//! process opening it fails instead of corrupting the revision sequence. A write costs one log
//! page and one small `objects` page, which keeps the single-client commit rate close to the disk's
//! fsync rate. SQLite syncs with `fdatasync` (`HAVE_FDATASYNC`, set for the bundled SQLite in
//! `.cargo/config.toml`): its source otherwise calls `fsync`, which also writes the inode for the
//! new modification time, a second synchronous write per commit.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use super::apply::{Change, Objects};
use crate::json::set_resource_version;
use crate::{Event, EventKind, Json, Object, Revision, StoreError};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, params};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log (
    rev INTEGER PRIMARY KEY NOT NULL,
    key TEXT NOT NULL,
    kind INTEGER NOT NULL,
    value TEXT NOT NULL,
    prev_rev INTEGER
);
CREATE TABLE IF NOT EXISTS objects (
    key TEXT PRIMARY KEY NOT NULL,
    rev INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
) WITHOUT ROWID;
";

const UPSERT_OBJECT: &str =
    "INSERT INTO objects (key, rev) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET rev = excluded.rev";
const DELETE_OBJECT: &str = "DELETE FROM objects WHERE key = ?1";
const INSERT_LOG: &str = "INSERT INTO log (rev, key, kind, value, prev_rev) VALUES (?1, ?2, ?3, ?4, ?5)";
const DELETE_LOG_ROW: &str = "DELETE FROM log WHERE rev = ?1";
const BEGIN: &str = "BEGIN IMMEDIATE";
const COMMIT: &str = "COMMIT";
const SET_META: &str =
    "INSERT INTO meta (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value";
/// Rows in `(?1, ?2]` that are no live object's current value.
const PRUNE_LOG: &str = "DELETE FROM log WHERE rev > ?1 AND rev <= ?2 \
     AND NOT EXISTS (SELECT 1 FROM objects WHERE objects.key = log.key AND objects.rev = log.rev)";

/// Everything [`load`] reads back on open.
pub(super) struct Loaded {
    pub objects: Objects,
    /// The last log rows (at most the history length), oldest first, with contiguous revisions.
    pub history: VecDeque<Arc<Event>>,
    /// The latest revision ever written.
    pub revision: Revision,
    /// The revision up to which the log has been pruned on disk.
    pub compacted: Revision,
}

/// Opens (creating if needed) the database at `path` with the durability settings above.
pub(super) fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(backend("opening database"))?;
    // Exclusive before WAL: then SQLite keeps the WAL index in heap memory instead of a shared
    // memory file, and never gives the file lock up.
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE").map_err(backend("setting locking mode"))?;
    // journal_mode answers with a row, so it goes through pragma_update_and_check.
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)).map_err(backend("enabling WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!("database refused WAL mode (journal_mode={mode})")));
    }
    conn.pragma_update(None, "synchronous", "FULL").map_err(backend("setting synchronous"))?;
    // Take the exclusive lock now (it is kept after the commit), so a second store fails here.
    conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;").map_err(backend("locking database"))?;
    conn.execute_batch(SCHEMA).map_err(backend("creating schema"))?;
    Ok(conn)
}

/// Reads the current objects, the last `history_len` log rows and the revisions.
///
/// `Event::prev` of a loaded event is rebuilt from the previous log row of the same key when that
/// row is also loaded. When it is not (the change is among the oldest held for its key): a delete's
/// `prev` is rebuilt from its own row, since a delete's value is the last state with only the
/// resourceVersion changed and the row keeps `prev_rev`; a modification's `prev` is `None`.
pub(super) fn load(conn: &Connection, history_len: usize) -> Result<Loaded, StoreError> {
    let objects = load_objects(conn)?;
    let meta_revision = meta(conn, "revision")?;
    let compacted = meta(conn, "compacted")?;
    let max_log: Option<Revision> = conn
        .query_row("SELECT MAX(rev) FROM log", [], |row| row.get::<_, Option<Rev>>(0))
        .map_err(backend("reading log"))?
        .map(|r| r.0);
    let max_object = objects.values().map(|o| o.rev).max();
    let revision = [Some(meta_revision), max_log, max_object, Some(compacted)].into_iter().flatten().max().unwrap_or(0);
    // Rows at or below `compacted` are live objects' values, not history.
    let after = revision.saturating_sub(Revision::try_from(history_len).unwrap_or(Revision::MAX)).max(compacted);
    let history = load_history(conn, after, &objects)?;
    Ok(Loaded { objects, history, revision, compacted })
}

fn load_objects(conn: &Connection) -> Result<Objects, StoreError> {
    let mut stmt = conn
        .prepare("SELECT objects.key, objects.rev, log.value FROM objects LEFT JOIN log ON log.rev = objects.rev")
        .map_err(backend("reading objects"))?;
    let rows = stmt
        .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, Rev>(1)?.0, row.get::<_, Option<String>>(2)?)))
        .map_err(backend("reading objects"))?;
    let mut objects = Objects::new();
    for row in rows {
        let (key, rev, json) = row.map_err(backend("reading objects"))?;
        let json = json.ok_or_else(|| StoreError::Backend(format!("object {key}: log row {rev} is missing")))?;
        let value = parse(json, || format!("object {key}"))?;
        let key: Arc<str> = Arc::from(key);
        objects.insert(key.clone(), Object { key, rev, value });
    }
    Ok(objects)
}

/// The log rows after `after`. A row that is an object's current state shares its text with
/// `objects` instead of holding a second copy.
fn load_history(conn: &Connection, after: Revision, objects: &Objects) -> Result<VecDeque<Arc<Event>>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT rev, key, kind, value, prev_rev FROM log WHERE rev > ?1 ORDER BY rev")
        .map_err(backend("reading log"))?;
    let rows = stmt
        .query_map([Rev(after)], |row| {
            Ok((
                row.get::<_, Rev>(0)?.0,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, Option<Rev>>(4)?.map(|r| r.0),
            ))
        })
        .map_err(backend("reading log"))?;
    // The state of each key as of the row being read, for rebuilding `prev`.
    let mut states: HashMap<Arc<str>, Json> = HashMap::new();
    let mut history = VecDeque::new();
    for row in rows {
        let (rev, key, kind, json, prev_rev) = row.map_err(backend("reading log"))?;
        let kind = kind_from_code(kind).ok_or_else(|| StoreError::Backend(format!("log row {rev} has kind {kind}")))?;
        let key: Arc<str> = Arc::from(key);
        let object = match objects.get(&key) {
            Some(current) if current.rev == rev => current.value.clone(),
            _ => parse(json, || format!("log row {rev}"))?,
        };
        let held = states.remove(&key);
        let prev = match kind {
            EventKind::Added => None,
            EventKind::Modified => held,
            EventKind::Deleted => held.or_else(|| {
                prev_rev.map(|prev_rev| {
                    let mut prev = object.parse();
                    set_resource_version(&mut prev, prev_rev);
                    Json::encode(&prev)
                })
            }),
        };
        if kind != EventKind::Deleted {
            states.insert(key.clone(), object.clone());
        }
        history.push_back(Arc::new(Event { kind, rev, key, object, prev }));
    }
    Ok(history)
}

fn meta(conn: &Connection, name: &str) -> Result<Revision, StoreError> {
    let value: Option<Rev> = conn
        .query_row("SELECT value FROM meta WHERE name = ?1", [name], |row| row.get(0))
        .optional()
        .map_err(backend("reading meta"))?;
    Ok(value.map_or(0, |r| r.0))
}

/// Persists `changes` (in revision order, ending at `revision`) in one transaction. `compacted` is
/// the revision the log is pruned to on disk; with `prune_to`, rows in `(compacted, prune_to]` that
/// no live object needs are pruned in the same transaction. Nothing is persisted unless this
/// returns `Ok`.
///
/// `BEGIN` and `COMMIT` are cached statements like the rest: SQLite would otherwise parse their
/// text again for every batch (rusqlite's `Transaction` runs them with `execute_batch`).
pub(super) fn commit<'a>(
    conn: &mut Connection,
    changes: impl IntoIterator<Item = &'a Change>,
    revision: Revision,
    compacted: Revision,
    prune_to: Option<Revision>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(BEGIN)?.execute([])?;
    let written = write_batch(conn, changes, revision, compacted, prune_to)
        .and_then(|()| conn.prepare_cached(COMMIT)?.execute([]).map(drop));
    if written.is_err() && !conn.is_autocommit() {
        // Still inside the transaction (a statement or the commit failed): undo all of it. If even
        // that fails, the connection is unusable and the next batch's BEGIN reports it.
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            tracing::error!(error = %e, "store rollback failed");
        }
    }
    written
}

/// The statements of one batch, inside [`commit`]'s transaction.
fn write_batch<'a>(
    conn: &Connection,
    changes: impl IntoIterator<Item = &'a Change>,
    revision: Revision,
    compacted: Revision,
    prune_to: Option<Revision>,
) -> rusqlite::Result<()> {
    let mut log = conn.prepare_cached(INSERT_LOG)?;
    let mut upsert = conn.prepare_cached(UPSERT_OBJECT)?;
    let mut delete = conn.prepare_cached(DELETE_OBJECT)?;
    for change in changes {
        let event = &change.event;
        let rev = Rev(event.rev);
        log.execute(params![
            rev,
            &*event.key,
            kind_code(event.kind),
            change.object.value.as_str(),
            change.prev_rev.map(Rev)
        ])?;
        match event.kind {
            EventKind::Added | EventKind::Modified => upsert.execute(params![&*event.key, rev])?,
            EventKind::Deleted => delete.execute(params![&*event.key])?,
        };
        // The replaced value was kept below `compacted` only because it was current.
        if let Some(prev_rev) = change.prev_rev.filter(|&p| p <= compacted) {
            conn.prepare_cached(DELETE_LOG_ROW)?.execute([Rev(prev_rev)])?;
        }
    }
    if let Some(prune_to) = prune_to {
        conn.prepare_cached(PRUNE_LOG)?.execute([Rev(compacted), Rev(prune_to)])?;
        let mut set_meta = conn.prepare_cached(SET_META)?;
        set_meta.execute(params!["compacted", Rev(prune_to)])?;
        set_meta.execute(params!["revision", Rev(revision)])?;
    }
    Ok(())
}

/// A revision as SQLite holds it: an INTEGER, so at most `i64::MAX` (a limit no store reaches).
struct Rev(Revision);

impl ToSql for Rev {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        let value = i64::try_from(self.0).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(ToSqlOutput::from(value))
    }
}

impl FromSql for Rev {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let value = i64::column_result(value)?;
        Revision::try_from(value).map(Rev).map_err(|_| FromSqlError::OutOfRange(value))
    }
}

fn kind_code(kind: EventKind) -> i64 {
    match kind {
        EventKind::Added => 0,
        EventKind::Modified => 1,
        EventKind::Deleted => 2,
    }
}

fn kind_from_code(code: i64) -> Option<EventKind> {
    match code {
        0 => Some(EventKind::Added),
        1 => Some(EventKind::Modified),
        2 => Some(EventKind::Deleted),
        _ => None,
    }
}

fn parse(json: String, what: impl FnOnce() -> String) -> Result<Json, StoreError> {
    Json::from_text(json).map_err(|e| StoreError::Backend(format!("{} holds invalid JSON: {e}", what())))
}

/// Maps a SQLite error to `StoreError::Backend`, saying what was being done.
pub(super) fn backend(doing: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::Backend(format!("{doing}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bundled SQLite is compiled from the environment the workspace's crates are: the flag
    /// that makes it sync with `fdatasync` (see `.cargo/config.toml`) must be in it.
    #[test]
    fn sqlite_is_built_to_sync_with_fdatasync() {
        let flags = option_env!("LIBSQLITE3_FLAGS").unwrap_or_default();
        assert!(flags.split_whitespace().any(|f| f == "-DHAVE_FDATASYNC=1"), "LIBSQLITE3_FLAGS={flags:?}");
    }

    #[test]
    fn kind_codes_round_trip() {
        for kind in [EventKind::Added, EventKind::Modified, EventKind::Deleted] {
            assert_eq!(kind_from_code(kind_code(kind)), Some(kind));
        }
        assert_eq!(kind_from_code(3), None);
        assert_eq!(kind_from_code(-1), None);
    }

    /// Rows written straight into the log, loaded back with a window that starts mid-way.
    #[test]
    fn load_rebuilds_prev_within_the_window() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = open(&dir.path().join("db")).expect("open");
        let rows: [(Revision, &str, EventKind, &str, Option<Revision>); 6] = [
            (1, "/a", EventKind::Added, r#"{"v":1,"metadata":{"resourceVersion":"1"}}"#, None),
            (2, "/b", EventKind::Added, r#"{"v":1,"metadata":{"resourceVersion":"2"}}"#, None),
            (3, "/a", EventKind::Modified, r#"{"v":2,"metadata":{"resourceVersion":"3"}}"#, Some(1)),
            (4, "/b", EventKind::Deleted, r#"{"v":1,"metadata":{"resourceVersion":"4"}}"#, Some(2)),
            (5, "/a", EventKind::Modified, r#"{"v":3,"metadata":{"resourceVersion":"5"}}"#, Some(3)),
            (6, "/a", EventKind::Deleted, r#"{"v":3,"metadata":{"resourceVersion":"6"}}"#, Some(5)),
        ];
        for (rev, key, kind, json, prev_rev) in rows {
            conn.execute(INSERT_LOG, params![Rev(rev), key, kind_code(kind), json, prev_rev.map(Rev)]).expect("insert");
        }
        conn.execute(SET_META, params!["revision", Rev(6)]).expect("meta");

        // A window of 4: revisions 3..=6.
        let loaded = load(&conn, 4).expect("load");
        assert_eq!(loaded.revision, 6);
        assert!(loaded.objects.is_empty());
        let got: Vec<(Revision, EventKind, Option<serde_json::Value>)> =
            loaded.history.iter().map(|e| (e.rev, e.kind, e.prev.as_ref().map(Json::parse))).collect();
        let want = vec![
            // The first change of /a in the window: its previous state is gone.
            (3, EventKind::Modified, None),
            // Rebuilt from the delete row itself.
            (4, EventKind::Deleted, Some(serde_json::json!({"v": 1, "metadata": {"resourceVersion": "2"}}))),
            (5, EventKind::Modified, Some(serde_json::json!({"v": 2, "metadata": {"resourceVersion": "3"}}))),
            (6, EventKind::Deleted, Some(serde_json::json!({"v": 3, "metadata": {"resourceVersion": "5"}}))),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn revision_comes_from_meta_when_everything_is_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = open(&dir.path().join("db")).expect("open");
        conn.execute(SET_META, params!["revision", Rev(42)]).expect("meta");
        conn.execute(SET_META, params!["compacted", Rev(40)]).expect("meta");
        let loaded = load(&conn, 10).expect("load");
        assert_eq!((loaded.revision, loaded.compacted), (42, 40));
        assert!(loaded.history.is_empty());
    }

    #[test]
    fn corrupt_rows_are_backend_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = open(&dir.path().join("db")).expect("open");
        conn.execute(INSERT_LOG, params![Rev(1), "/a", 0, "{not json", None::<Rev>]).expect("insert");
        conn.execute(UPSERT_OBJECT, params!["/a", Rev(1)]).expect("insert");
        let err = load(&conn, 10).err().expect("must fail");
        assert!(err.to_string().starts_with("store backend failed: object /a holds invalid JSON"), "{err}");
    }
}
