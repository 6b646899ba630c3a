//! The writer: group commit.
//!
//! Writes arrive on a channel, each with a oneshot for its answer. The writer thread takes
//! everything pending as one batch, checks and applies each write in order against a working copy
//! of the latest state, commits the whole batch in one SQLite transaction (one fsync), and only
//! once the commit succeeded publishes the new state and events and answers every waiter. Many
//! concurrent clients therefore share one fsync, while every acknowledged write is durable.
//!
//! The [`Writer`] sits behind a lock ([`Slot`]) that its thread takes for each batch. A write that
//! finds no other write in flight, when the last batch also held one write, takes the lock itself
//! and commits as a batch of one on its own thread (see `SqliteStore::write`): a lone client then
//! pays no hand-off to the writer thread and back, and overlapping writes still share batches.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};

use parking_lot::Mutex;
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::Shared;
use super::apply::{Change, Objects, Prepared, apply};
use super::db;
use crate::{Object, Revision, StoreError};

/// The most writes committed in one transaction, so one huge burst cannot hold every waiter back
/// until all of it is applied.
const MAX_BATCH: usize = 4096;

/// The answer to one write.
pub(super) type Reply = oneshot::Sender<Result<Object, StoreError>>;

/// What the store sends the writer thread.
pub(super) enum Msg {
    Write(Prepared, Reply),
    /// Finish the writes received before this message, then stop.
    Close,
}

/// The writer thread's state: the connection and the latest committed state, which only this
/// thread changes.
pub(super) struct Writer {
    pub conn: Connection,
    pub shared: Arc<Shared>,
    pub objects: Objects,
    pub revision: Revision,
    /// Log rows at or below this revision are pruned on disk.
    pub compacted: Revision,
    pub history_len: Revision,
    /// How far the on-disk log may grow past the history length before it is pruned.
    pub prune_step: Revision,
}

/// The writer behind its lock, shared by the writer thread and lone writes; `None` once the store
/// is closed (dropping the writer closes the database).
pub(super) type Slot = Arc<Mutex<Option<Writer>>>;

impl Writer {
    /// The writer thread: runs until the store sends `Close` or drops its sender, then empties the
    /// slot.
    pub fn run(slot: &Mutex<Option<Writer>>, rx: Receiver<Msg>) {
        let mut batch = Vec::new();
        loop {
            let mut closing = false;
            match rx.recv() {
                Ok(Msg::Write(write, reply)) => batch.push((write, reply)),
                Ok(Msg::Close) | Err(_) => closing = true,
            }
            while !closing && batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(Msg::Write(write, reply)) => batch.push((write, reply)),
                    Ok(Msg::Close) => closing = true,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            let mut writer = slot.lock();
            if let Some(writer) = writer.as_mut().filter(|_| !batch.is_empty()) {
                writer.process(std::mem::take(&mut batch));
            }
            if closing {
                *writer = None;
                return;
            }
        }
    }

    /// Applies, commits, publishes and answers one batch.
    pub fn process(&mut self, batch: Vec<(Prepared, Reply)>) {
        self.shared.last_batch.store(batch.len(), Ordering::Release);
        let mut objects = self.objects.clone();
        let mut revision = self.revision;
        let mut outcomes: Vec<(Reply, Result<Change, StoreError>)> = Vec::with_capacity(batch.len());
        for (write, reply) in batch {
            let outcome = apply(&mut objects, write, revision + 1);
            if outcome.is_ok() {
                revision += 1;
            }
            outcomes.push((reply, outcome));
        }
        if revision == self.revision {
            // Nothing passed its checks: nothing to persist.
            for (reply, outcome) in outcomes {
                let _ = reply.send(outcome.map(|change| change.object));
            }
            return;
        }

        let prune_to = self.prune_to(revision);
        let changes = outcomes.iter().filter_map(|(_, outcome)| outcome.as_ref().ok());
        if let Err(e) = db::commit(&mut self.conn, changes, revision, self.compacted, prune_to) {
            // Nothing of the batch is persisted or published: fail every write of it, since even
            // a write that failed its checks may have been checked against one that did not commit.
            tracing::error!(error = %e, writes = outcomes.len(), "store commit failed");
            let message = format!("committing writes: {e}");
            for (reply, _) in outcomes {
                let _ = reply.send(Err(StoreError::Backend(message.clone())));
            }
            return;
        }

        self.objects = objects.clone();
        self.revision = revision;
        if let Some(prune_to) = prune_to {
            self.compacted = prune_to;
        }
        let events = outcomes.iter().filter_map(|(_, outcome)| outcome.as_ref().ok().map(|c| c.event.clone()));
        self.shared.publish(objects, revision, events);
        for (reply, outcome) in outcomes {
            let _ = reply.send(outcome.map(|change| change.object));
        }
    }

    /// The revision to prune the on-disk log to with this commit, if it has grown `prune_step`
    /// rows past the history length.
    fn prune_to(&self, revision: Revision) -> Option<Revision> {
        let target = revision.saturating_sub(self.history_len);
        (target >= self.compacted + self.prune_step).then_some(target)
    }
}
