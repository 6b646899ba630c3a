//! The SQLite backend of the [`Store`].
//!
//! The whole current state lives in memory as a persistent map (a snapshot is an O(1) clone) next
//! to the recent changes; SQLite holds the durable copy of both (see `db` for the layout). One
//! writer owns the connection and commits writes in batches (group commit, see `writer`), on its
//! thread or, for a write with no other in flight, on the caller's; readers and watchers never
//! touch SQLite.
//!
//! Invariants:
//! - A write is answered only after its batch is committed and fsync'd, and only committed state is
//!   ever visible to readers and watchers.
//! - Revisions are contiguous: every committed write takes the next one, and the log holds one row
//!   per revision, so the in-memory history is a contiguous run ending at the latest revision.
//! - The snapshot, the history and the live events (see `hub`) change together under one lock, and
//!   a watch reads its backlog and subscribes under the same lock: no gap, no duplicate.

mod apply;
mod db;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use parking_lot::{Mutex, RwLock};
use tokio::sync::{broadcast, oneshot};

use self::apply::{Objects, Prepared};
use self::writer::{Msg, Slot, Writer};
use crate::hub::{self, Hub};
use crate::{Event, Object, Revision, Snapshot, Store, StoreError, Watch, Write};

/// Tuning of a [`SqliteStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// How many recent changes are kept (in memory and in the on-disk log) for watches to resume
    /// from. A watch from an older revision gets `Compacted`. At least 1.
    pub history_len: usize,
    /// How many snapshots [`Store::retain_snapshot`] keeps for list continuation; the oldest is
    /// dropped first.
    pub retained_snapshots: usize,
    /// Capacity of each prefix's live-event channel: a watcher that falls this many events of its
    /// prefix behind sees `RecvError::Lagged`. At least 1.
    pub broadcast_capacity: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions { history_len: 100_000, retained_snapshots: 64, broadcast_capacity: hub::DEFAULT_CAPACITY }
    }
}

/// A [`Store`] persisted in one SQLite database file.
///
/// Dropping it (or calling [`SqliteStore::close`]) finishes the writes already sent, stops the
/// writer thread and closes the database; live watches then end with `RecvError::Closed`.
pub struct SqliteStore {
    shared: Arc<Shared>,
    writes: mpsc::Sender<Msg>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The writer, shared with its thread.
    slot: Slot,
    /// Writes between their call and their answer (or cancellation).
    in_flight: AtomicUsize,
    /// Writes committed on their caller's thread so far (tests read it).
    lone_commits: AtomicU64,
}

/// What the store and its writer thread share.
struct Shared {
    published: RwLock<Published>,
    retained: Mutex<BTreeMap<Revision, Snapshot>>,
    retained_cap: usize,
    history_len: usize,
    /// How many writes the writer's last batch held: more than one means writes overlap, and then
    /// every write goes to the writer thread to share its batches.
    last_batch: AtomicUsize,
}

/// The committed state readers and watchers see, changed only by [`Shared::publish`].
struct Published {
    snapshot: Snapshot,
    /// The last changes, oldest first, with contiguous revisions ending at `snapshot.rev`.
    history: VecDeque<Arc<Event>>,
    /// The oldest revision a watch can start after: the revision just before the first event of
    /// `history` (or the latest revision when the history is empty).
    oldest: Revision,
    /// Live events; `None` once the store is closed.
    events: Option<Hub>,
}

impl Shared {
    /// Makes a committed batch visible: the new state, the new history, and its events to live
    /// watchers, all under the lock watches start under.
    fn publish(&self, objects: Objects, rev: Revision, events: impl IntoIterator<Item = Arc<Event>>) {
        let mut published = self.published.write();
        let published = &mut *published;
        published.snapshot = Snapshot { rev, objects };
        let first = published.history.len();
        published.history.extend(events);
        if let Some(hub) = &published.events {
            hub.send(published.history.range(first..));
        }
        while published.history.len() > self.history_len {
            if let Some(dropped) = published.history.pop_front() {
                published.oldest = dropped.rev;
            }
        }
    }
}

impl SqliteStore {
    /// Opens the store at `path` (creating the file, and its parent directory, if needed), loads the
    /// current objects and the last `history_len` changes, and starts the writer thread.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let (shared, writer) = prepare(path, &options)?;
        let slot: Slot = Arc::new(Mutex::new(Some(writer)));
        let (writes, rx) = mpsc::channel();
        let thread_slot = slot.clone();
        let handle = std::thread::Builder::new()
            .name("skiff-store-writer".to_owned())
            .spawn(move || Writer::run(&thread_slot, rx))
            .map_err(|e| StoreError::Backend(format!("starting writer thread: {e}")))?;
        Ok(SqliteStore {
            shared,
            writes,
            writer: Mutex::new(Some(handle)),
            slot,
            in_flight: AtomicUsize::new(0),
            lone_commits: AtomicU64::new(0),
        })
    }

    /// Finishes the writes already sent, stops the writer thread and closes the database. Later
    /// writes and watches fail with `Closed`; live watches end. Calling it again does nothing.
    pub fn close(&self) {
        let Some(handle) = self.writer.lock().take() else { return };
        // An error means the thread is already gone (it can only exit on Close or a panic).
        let _ = self.writes.send(Msg::Close);
        if handle.join().is_err() {
            tracing::error!("store writer thread panicked");
        }
        self.shared.published.write().events = None;
    }
}

impl SqliteStore {
    /// Whether a write commits on its caller's thread: when no other write was in flight as it
    /// began and the writer's last batch held at most one write.
    fn commits_here(&self, write: &InFlight<'_>) -> bool {
        write.alone && self.shared.last_batch.load(Ordering::Acquire) <= 1
    }

    /// Commits `write` under the writer's lock on this thread; `Closed` once the store is closed.
    fn commit_alone(&self, write: Prepared) -> Result<Object, StoreError> {
        let mut writer = self.slot.lock();
        let Some(writer) = writer.as_mut() else { return Err(StoreError::Closed) };
        let (reply, mut answer) = oneshot::channel();
        writer.process(vec![(write, reply)]);
        self.lone_commits.fetch_add(1, Ordering::Relaxed);
        // `process` answers every write of its batch before it returns.
        answer.try_recv().map_err(|_| StoreError::Closed)?
    }
}

/// Whether the calling task runs on a tokio runtime with more than one worker, so that while this
/// thread blocks in a commit, another worker runs (and steals) the other tasks.
fn other_workers_run_meanwhile() -> bool {
    tokio::runtime::Handle::try_current().is_ok_and(|runtime| {
        runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread && runtime.metrics().num_workers() > 1
    })
}

/// Counts a write in flight while it lives; `alone` when no other write was in flight as it began.
struct InFlight<'a> {
    count: &'a AtomicUsize,
    alone: bool,
}

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> InFlight<'a> {
        let alone = count.fetch_add(1, Ordering::AcqRel) == 0;
        InFlight { count, alone }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn write(&self, write: Write) -> Result<Object, StoreError> {
        // Serialized here, on the caller's thread, not on the writer's.
        let write = Prepared::new(write)?;
        let in_flight = InFlight::enter(&self.in_flight);
        if self.commits_here(&in_flight) && other_workers_run_meanwhile() {
            // No other write to share a commit with, now or in the last batch (one client writing
            // at a time): commit here, as a batch of one, which saves waking the writer thread and
            // being woken by it (two thread hand-offs on the write's path). This blocks one worker
            // for the commit and its fsync, and only one: writes that arrive meanwhile are not
            // alone and go to the writer thread, which takes the lock after this commit. The other
            // workers run and steal the blocked worker's tasks. (`block_in_place` would hand them
            // over explicitly, but it woke three threads per write and cost more than it saved.)
            return self.commit_alone(write);
        }
        let (reply, answer) = oneshot::channel();
        self.writes.send(Msg::Write(write, reply)).map_err(|_| StoreError::Closed)?;
        // The reply is dropped unanswered only when the writer stopped before reaching this write.
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Every write goes through this store and is published before it is acknowledged, so reads
    /// are always consistent: the current revision, at once.
    async fn sync(&self) -> Result<Revision, StoreError> {
        Ok(self.revision())
    }

    /// Only this store writes its file, so a later revision can come only from a write of its own
    /// still in flight: the wait is for its event.
    async fn wait_for(&self, rev: Revision, timeout: std::time::Duration) -> Result<Revision, StoreError> {
        let current = self.revision();
        if current >= rev {
            return Ok(current);
        }
        let Watch { backlog, mut live } = self.watch(current)?;
        if let Some(last) = backlog.last().filter(|e| e.rev >= rev) {
            return Ok(last.rev);
        }
        let reached = tokio::time::timeout(timeout, async {
            loop {
                match live.recv().await {
                    Ok(event) if event.rev >= rev => return Ok(event.rev),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) if self.revision() >= rev => return Ok(self.revision()),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return Err(StoreError::Closed),
                }
            }
        })
        .await;
        reached
            .unwrap_or_else(|_| Err(StoreError::TooLargeResourceVersion { requested: rev, current: self.revision() }))
    }

    fn snapshot(&self) -> Snapshot {
        self.shared.published.read().snapshot.clone()
    }

    fn get(&self, key: &str) -> Option<Object> {
        self.shared.published.read().snapshot.objects.get(key).cloned()
    }

    fn retain_snapshot(&self, snapshot: &Snapshot) {
        if self.shared.retained_cap == 0 {
            return;
        }
        let mut retained = self.shared.retained.lock();
        retained.entry(snapshot.rev).or_insert_with(|| snapshot.clone());
        while retained.len() > self.shared.retained_cap {
            retained.pop_first();
        }
    }

    /// A retained snapshot, or the current one if `rev` is the latest revision.
    fn snapshot_at(&self, rev: Revision) -> Result<Snapshot, StoreError> {
        if let Some(snapshot) = self.shared.retained.lock().get(&rev) {
            return Ok(snapshot.clone());
        }
        let current = self.snapshot();
        if current.rev == rev { Ok(current) } else { Err(StoreError::SnapshotExpired(rev)) }
    }

    /// Changes under `prefix` after `after`. A revision later than the latest gives an empty
    /// backlog: the watch simply waits for it (as etcd does), so in that case the consumer skips
    /// live events at or below `after`.
    fn watch_prefix(&self, prefix: &str, after: Revision) -> Result<Watch, StoreError> {
        let published = self.shared.published.read();
        let Some(hub) = &published.events else { return Err(StoreError::Closed) };
        if after < published.oldest {
            return Err(StoreError::Compacted { requested: after, oldest: published.oldest });
        }
        let start = published.history.partition_point(|event| event.rev <= after);
        let backlog = published.history.range(start..).filter(|e| e.key.starts_with(prefix)).cloned().collect();
        Ok(Watch { backlog, live: hub.subscribe(prefix) })
    }

    fn revision(&self) -> Revision {
        self.shared.published.read().snapshot.rev
    }

    fn oldest_watchable(&self) -> Revision {
        self.shared.published.read().oldest
    }
}

/// Opens the database, loads it, and builds the shared state and the writer (not yet running).
fn prepare(path: &Path, options: &SqliteOptions) -> Result<(Arc<Shared>, Writer), StoreError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| StoreError::Backend(format!("creating {}: {e}", parent.display())))?;
    }
    let history_len = options.history_len.max(1);
    let conn = db::open(path)?;
    let loaded = db::load(&conn, history_len)?;
    let oldest = loaded.history.front().map_or(loaded.revision, |first| first.rev - 1);
    tracing::info!(
        path = %path.display(),
        objects = loaded.objects.len(),
        revision = loaded.revision,
        oldest_watchable = oldest,
        "store opened"
    );

    let shared = Arc::new(Shared {
        published: RwLock::new(Published {
            snapshot: Snapshot { rev: loaded.revision, objects: loaded.objects.clone() },
            history: loaded.history,
            oldest,
            events: Some(Hub::new(options.broadcast_capacity)),
        }),
        retained: Mutex::new(BTreeMap::new()),
        retained_cap: options.retained_snapshots,
        history_len,
        last_batch: AtomicUsize::new(0),
    });
    let history_len = Revision::try_from(history_len).unwrap_or(Revision::MAX);
    let writer = Writer {
        conn,
        shared: shared.clone(),
        objects: loaded.objects,
        revision: loaded.revision,
        compacted: loaded.compacted,
        history_len,
        prune_step: (history_len / 8).max(1),
    };
    Ok((shared, writer))
}
