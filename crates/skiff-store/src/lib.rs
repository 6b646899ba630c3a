//! Skiff's object store.
//!
//! A key-value store of JSON objects with one global, monotonically increasing revision: every write
//! gets the next revision, which is also the object's `metadata.resourceVersion`. The store keeps a
//! bounded history of changes so a watch can resume from a recent revision; older revisions are
//! compacted and answer [`StoreError::Compacted`] (the API's 410 Gone).
//!
//! Keys are strings such as `/apps/deployments/default/web`; a list or watch takes a key prefix
//! (`/apps/deployments/default/`). Nothing above the [`Store`] trait knows which backend is in use:
//! [`SqliteStore`] (one server, one file) or, with the `etcd` feature (on by default), [`EtcdStore`]
//! (several API servers sharing one etcd).

use std::sync::Arc;

use serde_json::Value;

#[cfg(test)]
mod conformance;
#[cfg(feature = "etcd")]
mod etcd;
mod hub;
mod json;
mod sqlite;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(feature = "etcd")]
pub use etcd::{EtcdOptions, EtcdStore};
pub use json::{Fields, Json};
pub use sqlite::{SqliteOptions, SqliteStore};

/// A global revision. Revision 0 means "nothing written yet".
pub type Revision = u64;

/// An object as stored: its key, the revision of its last write, and its value (its JSON text),
/// whose `metadata.resourceVersion` equals `rev` as a decimal string.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub key: Arc<str>,
    pub rev: Revision,
    pub value: Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// One change. For `Deleted`, `object` is the last state of the object with `rev` set to the
/// revision of the delete (as Kubernetes sends it). `prev` is the state before this change (none for
/// `Added`), which a watcher needs to tell when an object starts or stops matching a selector.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    pub rev: Revision,
    pub key: Arc<str>,
    pub object: Json,
    pub prev: Option<Json>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key {0} already exists")]
    AlreadyExists(String),
    #[error("key {0} not found")]
    NotFound(String),
    /// The object's current revision is not the expected one (optimistic concurrency).
    #[error("key {key} is at revision {current}, not {expected}")]
    Conflict { key: String, expected: Revision, current: Revision },
    /// The requested revision is older than the oldest change the store still holds.
    #[error("required revision {requested} has been compacted (oldest available {oldest})")]
    Compacted { requested: Revision, oldest: Revision },
    /// A continue token's snapshot is no longer held.
    #[error("the snapshot at revision {0} is no longer available")]
    SnapshotExpired(Revision),
    /// [`Store::sync`] gave up: this store's reads did not reach `requested`, the revision the
    /// backend had when the sync began, within the wait (its own watch is stalled or far behind).
    /// kube-apiserver's `NewTooLargeResourceVersionError` (a 504 `Timeout`); the message is its
    /// wording.
    #[error("Too large resource version: {requested}, current: {current}")]
    TooLargeResourceVersion { requested: Revision, current: Revision },
    #[error("store backend failed: {0}")]
    Backend(String),
    #[error("store is closed")]
    Closed,
}

/// A consistent view of every object at one revision, cheap to take and to keep (a persistent map).
#[derive(Clone)]
pub struct Snapshot {
    pub rev: Revision,
    pub objects: imbl::OrdMap<Arc<str>, Object>,
}

impl Snapshot {
    /// Objects whose key starts with `prefix` and sorts after `after` (exclusive), in key order.
    pub fn range<'a>(&'a self, prefix: &'a str, after: Option<&'a str>) -> impl Iterator<Item = &'a Object> + 'a {
        let start: Arc<str> = Arc::from(after.unwrap_or(prefix));
        self.objects
            .range(start..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .filter(move |(k, _)| after.is_none_or(|a| &***k != a))
            .map(|(_, v)| v)
    }
}

/// A live watch of a key prefix: the changes under it after the requested revision that the store
/// still held when the watch started (`backlog`), then every later one from `live`, in revision
/// order, with no gap between the two.
pub struct Watch {
    pub backlog: Vec<Arc<Event>>,
    pub live: tokio::sync::broadcast::Receiver<Arc<Event>>,
}

/// A write to apply atomically at the next revision.
#[derive(Debug, Clone)]
pub enum Write {
    /// Fails with `AlreadyExists` if the key exists.
    Create { key: String, value: Value },
    /// Fails with `NotFound` if absent, `Conflict` if `expected` is set and differs.
    Update { key: String, value: Value, expected: Option<Revision> },
    /// Fails with `NotFound` if absent, `Conflict` if `expected` is set and differs.
    Delete { key: String, expected: Option<Revision> },
}

#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies one write; returns the object as stored (for a delete, its last state at the delete's
    /// revision). The write is durable when this returns.
    async fn write(&self, write: Write) -> Result<Object, StoreError>;

    /// Waits until this store's reads ([`Store::snapshot`], [`Store::get`]) reflect every write
    /// acknowledged anywhere (through this store or any other sharing its backend) before the
    /// call, and returns the revision they have reached then (at least the revision of each such
    /// write). A read that must be consistent ("most recent": a get or list without
    /// `resourceVersion`) calls it first, as kube-apiserver's consistent reads from its watch cache
    /// do (KEP-2340).
    ///
    /// A store that is the only writer of its data (SQLite) is always consistent and answers at
    /// once. One that reads a cache kept by a watch (etcd) asks the backend for its current
    /// revision and waits for the cache to reach it; if it does not within a few seconds, the call
    /// fails with [`StoreError::TooLargeResourceVersion`] (or `Backend` if the backend cannot be
    /// asked, `Closed` once the store is closed).
    async fn sync(&self) -> Result<Revision, StoreError>;

    /// Waits until this store's reads have reached revision `rev` (a client saw it elsewhere: on
    /// another server sharing the backend) and returns the revision reached; fails with
    /// [`StoreError::TooLargeResourceVersion`] if that takes longer than `timeout`, as
    /// kube-apiserver's watch cache answers a read at a future resourceVersion after blocking
    /// (`waitUntilFreshAndBlock`, 3 s).
    async fn wait_for(&self, rev: Revision, timeout: std::time::Duration) -> Result<Revision, StoreError>;

    /// The latest state of every object, at the latest revision.
    fn snapshot(&self) -> Snapshot;

    /// The latest state of one object.
    fn get(&self, key: &str) -> Option<Object> {
        self.snapshot().objects.get(key).cloned()
    }

    /// Keeps `snapshot` so that a later [`Store::snapshot_at`] can return it (for list continuation).
    fn retain_snapshot(&self, snapshot: &Snapshot);

    /// A snapshot kept by [`Store::retain_snapshot`], or `SnapshotExpired`.
    fn snapshot_at(&self, rev: Revision) -> Result<Snapshot, StoreError>;

    /// Changes after `after` (exclusive) to keys that start with `prefix` (`""`: every key).
    /// `Compacted` if some changes after `after` are no longer held. A change under another prefix
    /// never reaches the watch, not even to wake it.
    fn watch_prefix(&self, prefix: &str, after: Revision) -> Result<Watch, StoreError>;

    /// Every change after `after`: [`Store::watch_prefix`] with the empty prefix.
    fn watch(&self, after: Revision) -> Result<Watch, StoreError> {
        self.watch_prefix("", after)
    }

    /// The latest revision.
    fn revision(&self) -> Revision;

    /// The revision up to which every change has been sent to live watches: a watch has each
    /// change under its prefix up to it in its backlog or its channel. The latest revision, except
    /// on etcd after a progress notification moved the revision past changes still to come.
    fn live_revision(&self) -> Revision {
        self.revision()
    }

    /// The oldest revision a watch can still start after.
    fn oldest_watchable(&self) -> Revision;
}
