//! The etcd v3 backend of the [`Store`], so several API servers can share one state.
//!
//! - A write is one etcd transaction (see `txn`): create = `create_revision == 0 → put`, update
//!   or delete at an expected revision = `mod_revision == expected → put / delete`. The revision
//!   of an object is its etcd `mod_revision`; the store's revision is etcd's header revision.
//! - The [`Store`] read methods are synchronous, so they read an in-memory cache of the prefix
//!   (see `cache`) that one etcd watch per store keeps current (see `reflector`), as
//!   kube-apiserver's watch cache does: `snapshot`/`get` are the cache's state, `watch(after)` is
//!   its history (filled by the etcd watch, which starts at the list revision + 1 with `prev_kv`,
//!   so deletes carry the last state) followed by its live broadcast, and `snapshot_at(rev)` is
//!   a retained snapshot or the state rebuilt from the history. The first list is taken up to
//!   `history_len` revisions in the past (not before etcd's compaction) and the watch replays
//!   the changes since before `connect` returns, so a watch resumes across a server's restart or
//!   from another server's revision (kube-apiserver's cache starts empty and answers 410 there).
//! - A write returns once this store's cache has seen it, so a write is visible to the same
//!   store's readers as soon as it is acknowledged; a write that fails (`Conflict`, `NotFound`,
//!   `AlreadyExists`) returns once the cache has seen the state that failed it, so a caller that
//!   reads again and retries does not lose the same race again. Writes through other stores on the same etcd
//!   appear when their watch events arrive (milliseconds).
//! - A read that must be consistent calls [`Store::sync`] first (kube-apiserver's consistent
//!   reads from cache, KEP-2340): it reads etcd's current revision (a one-key quorum read) and
//!   waits until the cache has reached it, the reflector asking etcd for progress notifications
//!   meanwhile so that writes outside the prefix do not keep it waiting. After
//!   [`CONSISTENT_READ_TIMEOUT`] it fails with [`StoreError::TooLargeResourceVersion`]. Progress
//!   notifications are exact from etcd 3.4.31 / 3.5.13 on; an older etcd may send one ahead of
//!   the events it covers (etcd-io/etcd#15220), so there a sync that only a progress notification
//!   brought to the revision also reads the prefix's key count and last put at it, and waits
//!   until the cache holds that state.
//! - A background task compacts etcd every interval to the revision seen one interval earlier
//!   (see `compactor`); the cache then forgets the compacted changes, and a watch from before
//!   them fails with [`StoreError::Compacted`].
//! - With several endpoints, a member that does not answer is taken out of the client's rotation
//!   and requests that could not reach it are sent again (see `endpoints`), so the store keeps
//!   working while the cluster has a quorum.
//! - When etcd goes away, writes fail with `Backend` errors and the watch is re-opened from the
//!   next revision once etcd answers again; if that revision was compacted meanwhile, the prefix
//!   is listed again and live watches end (their clients re-watch and get `Compacted`).

mod cache;
mod codec;
mod compactor;
mod endpoints;
mod reflector;
mod txn;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, KvClient};
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use self::cache::{Cache, Limits};
use self::codec::Keys;
use self::reflector::{Reflector, timed};
use crate::{Object, Revision, Snapshot, Store, StoreError, Watch, Write};

/// Largest gRPC message the client accepts (a page of the list, or one watch response holding a
/// burst of large objects); tonic's default of 4 MiB is too small for the latter.
const MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// How long [`Store::sync`] waits for the cache to reach etcd's revision (kube-apiserver's
/// `blockTimeout` of the watch cache).
pub const CONSISTENT_READ_TIMEOUT: Duration = Duration::from_secs(3);

/// How long connecting waits for the replay of the history before going on (it continues in
/// the background).
const STARTUP_REPLAY_TIMEOUT: Duration = Duration::from_secs(30);

/// How often each etcd endpoint is probed when there are several.
const ENDPOINT_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// How an [`EtcdStore`] talks to etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdOptions {
    /// Every key lives under this prefix (normalised to end with `/`): the store key
    /// `/v1/pods/ns/a` is the etcd key `/registry/v1/pods/ns/a` with the default.
    pub prefix: String,
    /// How often etcd is compacted to the revision seen one interval earlier (kube-apiserver's
    /// `--etcd-compaction-interval`, 5 minutes). `None` never compacts (another server, or etcd's
    /// own `--auto-compaction-*`, must then do it).
    pub compaction_interval: Option<Duration>,
    /// The longest one etcd request may take before it fails with a `Backend` error (a write that
    /// timed out may still have been applied). Also how long a write waits for the store's own
    /// watch to deliver it.
    pub request_timeout: Duration,
    /// How long establishing a connection to an endpoint may take.
    pub connect_timeout: Duration,
    /// How many recent changes are kept in memory for watches to resume from; older ones answer
    /// `Compacted` even if etcd still holds them. A store that connects fills this history from
    /// etcd (up to this many revisions back), so watches resume across a restart.
    pub history_len: usize,
    /// How many snapshots [`Store::retain_snapshot`] keeps for list continuation.
    pub retained_snapshots: usize,
    /// Capacity of each prefix's live-event channel: a watcher that falls this many events of its
    /// prefix behind sees `RecvError::Lagged`.
    pub broadcast_capacity: usize,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            prefix: "/registry/".to_owned(),
            compaction_interval: Some(Duration::from_secs(5 * 60)),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            history_len: 100_000,
            retained_snapshots: 64,
            broadcast_capacity: crate::hub::DEFAULT_CAPACITY,
        }
    }
}

/// A [`Store`] kept in etcd v3 (plain `http://` endpoints).
///
/// Dropping it (or calling [`EtcdStore::close`]) stops its watch and compaction tasks; live
/// watches then end with `RecvError::Closed`. The data stays in etcd.
pub struct EtcdStore {
    keys: Keys,
    kv: KvClient,
    cache: Arc<Cache>,
    request_timeout: Duration,
    /// Whether etcd's progress notifications never run ahead of their events (see
    /// [`check_version`]); if not, [`Store::sync`] checks the state it reaches.
    exact_progress: bool,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl EtcdStore {
    /// Waits (at most `timeout`) until the cache holds the state at `rev`, which may be past the
    /// last change under the prefix, and returns the revision it reached. The cache's revision
    /// gets there by an event or a progress notification, asked for meanwhile
    /// ([`Cache::wait_fresh`]). With an etcd whose progress notifications can run ahead of their
    /// events, a cache that got there by a progress notification rather than an event at or
    /// after `rev` also reads the prefix's key count and last put at `rev`, and waits until it
    /// holds that state (`Cache::wait_state`). That read sorts the prefix's keys in etcd, so it
    /// is made only then: when the last write was under the prefix, its event is there.
    async fn wait_state_at(&self, rev: Revision, timeout: Duration) -> Result<Revision, StoreError> {
        let started = tokio::time::Instant::now();
        let reached = self.cache.wait_fresh(rev, timeout).await?;
        if self.exact_progress || self.cache.last_event() >= rev {
            return Ok(reached);
        }
        let target = reflector::replay_target(&self.kv, &self.keys, self.request_timeout, rev).await?;
        if self.cache.wait_state(target, timeout.saturating_sub(started.elapsed())).await {
            Ok(reached)
        } else if self.cache.is_closed() {
            Err(StoreError::Closed)
        } else {
            Err(StoreError::TooLargeResourceVersion { requested: rev, current: self.cache.revision() })
        }
    }

    /// Connects to etcd at `endpoints` (`http://host:port`), lists the prefix, and starts following
    /// it (and compacting, if configured). Must be called within a Tokio runtime, which runs the
    /// background tasks. Fails with `Backend` if etcd does not answer within the request timeout.
    pub async fn connect(endpoints: &[String], options: EtcdOptions) -> Result<EtcdStore, StoreError> {
        if endpoints.is_empty() {
            return Err(StoreError::Backend("no etcd endpoints given".to_owned()));
        }
        let connect = ConnectOptions::new()
            .with_connect_timeout(options.connect_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(10));
        let client = timed(options.request_timeout, "connect", Client::connect(endpoints, Some(connect))).await?;
        let kv = client.kv_client().max_decoding_message_size(MAX_MESSAGE);
        let watch = client.watch_client().max_decoding_message_size(MAX_MESSAGE);
        let keys = Keys::new(&options.prefix);

        let current = reflector::current_revision(&kv, &keys, options.request_timeout).await?;
        let (rev, objects, replay) =
            reflector::initial_list(&kv, &watch, &keys, options.request_timeout, current, options.history_len).await?;
        let exact_progress = check_version(&client, options.request_timeout).await;
        tracing::info!(endpoints = ?endpoints, prefix = keys.prefix(), revision = current, replayed_from = rev, objects = objects.len(), "etcd store connected");
        let limits = Limits {
            history_len: options.history_len,
            retained_snapshots: options.retained_snapshots,
            broadcast_capacity: options.broadcast_capacity,
        };
        let cache = Arc::new(Cache::new(keys.clone(), limits, rev, objects));

        let reflector = Reflector {
            kv: kv.clone(),
            watch,
            keys: keys.clone(),
            cache: cache.clone(),
            timeout: options.request_timeout,
            replay,
        };
        let mut tasks = vec![tokio::spawn(reflector.run())];
        if endpoints.len() > 1 {
            let all = endpoints.to_vec();
            tasks.push(tokio::spawn(endpoints::run(client, all, ENDPOINT_PROBE_INTERVAL)));
        }
        if let Some(interval) = options.compaction_interval {
            tasks.push(tokio::spawn(compactor::run(kv.clone(), cache.clone(), interval, options.request_timeout)));
        }
        // The replay of the history (see `reflector::initial_list`) is done before the store is
        // used, so that its first reads are as fresh as a store without history would give.
        if let Err(e) = cache.wait_fresh(current, STARTUP_REPLAY_TIMEOUT).await {
            tracing::warn!(error = %e, "the store's history replay is not done yet: going on while it finishes");
        }
        Ok(EtcdStore {
            keys,
            kv,
            cache,
            request_timeout: options.request_timeout,
            exact_progress,
            tasks: Mutex::new(tasks),
        })
    }

    /// The prefix the store's keys live under (ends with `/`).
    pub fn prefix(&self) -> &str {
        self.keys.prefix()
    }

    /// Compacts etcd's history up to `rev` now (the background compaction does this on its own)
    /// and forgets the compacted changes: a watch must then start at `rev` or later. A revision
    /// already compacted is fine; a future one is a `Backend` error.
    pub async fn compact(&self, rev: Revision) -> Result<(), StoreError> {
        let compact = || {
            let mut kv = self.kv.clone();
            async move { kv.compact(codec::etcd_revision(rev), None).await }
        };
        match endpoints::retried(self.request_timeout, "compaction", compact).await {
            Ok(_) => {}
            Err(StoreError::Backend(m)) if m.contains("required revision has been compacted") => {}
            Err(e) => return Err(e),
        }
        self.cache.trim(rev);
        Ok(())
    }

    /// Stops following etcd and compacting; later writes and watches fail with `Closed`, live
    /// watches end. Calling it again does nothing.
    pub fn close(&self) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
        self.cache.close();
    }
}

/// Whether the etcd answering has a version whose progress notifications never run ahead of its
/// events (etcd-io/etcd#15220, fixed in 3.4.31 and 3.5.13); false, with a note in the log, if
/// they may or the version cannot be read (see [`Store::sync`]).
async fn check_version(client: &Client, timeout: Duration) -> bool {
    let status = timed(timeout, "status", async { client.maintenance_client().status().await }).await;
    match status.as_ref().map(|s| (s.version(), reflector::exact_progress(s.version()))) {
        Ok((_, Some(true))) => true,
        Ok((version, Some(false))) => {
            tracing::info!(
                version,
                "etcd before 3.4.31 / 3.5.13 may send a progress notification ahead of the events it covers \
                 (etcd-io/etcd#15220): consistent reads check the state they reach with a range read"
            );
            false
        }
        Ok((version, None)) => {
            tracing::warn!(version, "cannot read the etcd version: consistent reads check the state they reach");
            false
        }
        Err(e) => {
            tracing::debug!(error = %e, "cannot ask etcd for its version");
            false
        }
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        self.close();
    }
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn write(&self, write: Write) -> Result<Object, StoreError> {
        if self.cache.is_closed() {
            return Err(StoreError::Closed);
        }
        let (txn, pending) = txn::build(&self.keys, write)?;
        // Every transaction compares revisions, so sending it again when it could not be sent is safe.
        let response = endpoints::retried(self.request_timeout, "transaction", || {
            let (mut kv, txn) = (self.kv.clone(), txn.clone());
            async move { kv.txn(txn).await }
        })
        .await?;
        let answer = txn::Answer::from_response(&response)?;
        let answered_at = codec::revision(answer.revision)?;
        let object = match txn::outcome(pending, answer) {
            Ok(object) => object,
            Err(e) => {
                // The write that made this one fail may not be in this store's reads yet (its
                // watch event is on the way): wait for it, so that a caller that reads again and
                // retries sees the newer state instead of losing the same race again.
                let reached = match &e {
                    StoreError::Conflict { current, .. } => self.cache.wait_event(*current, self.request_timeout).await,
                    StoreError::NotFound(_) | StoreError::AlreadyExists(_) => {
                        self.wait_state_at(answered_at, CONSISTENT_READ_TIMEOUT).await.is_ok()
                    }
                    _ => true,
                };
                if !reached {
                    tracing::debug!(error = %e, revision = answered_at, "etcd watch has not delivered what failed a write");
                }
                return Err(e);
            }
        };
        if !self.cache.wait_event(object.rev, self.request_timeout).await {
            // The write is durable in etcd; only this store's view lags (its watch is broken).
            tracing::warn!(key = %object.key, revision = object.rev, "etcd watch has not delivered an acknowledged write");
        }
        Ok(object)
    }

    /// Reads etcd's current revision and waits (at most `CONSISTENT_READ_TIMEOUT`) until the
    /// cache holds the state at it (`EtcdStore::wait_state_at`): every write acknowledged
    /// before is then in the cache, wherever it was made.
    async fn sync(&self) -> Result<Revision, StoreError> {
        if self.cache.is_closed() {
            return Err(StoreError::Closed);
        }
        let started = tokio::time::Instant::now();
        let current = reflector::current_revision(&self.kv, &self.keys, self.request_timeout).await?;
        self.wait_state_at(current, CONSISTENT_READ_TIMEOUT.saturating_sub(started.elapsed())).await
    }

    /// `EtcdStore::wait_state_at`: a revision another server saw may hold no change under
    /// this store's prefix.
    async fn wait_for(&self, rev: Revision, timeout: Duration) -> Result<Revision, StoreError> {
        self.wait_state_at(rev, timeout).await
    }

    fn snapshot(&self) -> Snapshot {
        self.cache.snapshot()
    }

    fn get(&self, key: &str) -> Option<Object> {
        self.cache.get(key)
    }

    fn retain_snapshot(&self, snapshot: &Snapshot) {
        self.cache.retain(snapshot);
    }

    /// A retained snapshot, the current one, or the state at `rev` rebuilt from the history (any
    /// revision the store can still watch from).
    fn snapshot_at(&self, rev: Revision) -> Result<Snapshot, StoreError> {
        self.cache.snapshot_at(rev)
    }

    fn watch_prefix(&self, prefix: &str, after: Revision) -> Result<Watch, StoreError> {
        self.cache.watch_prefix(prefix, after)
    }

    fn live_revision(&self) -> Revision {
        self.cache.last_event()
    }

    fn revision(&self) -> Revision {
        self.cache.revision()
    }

    fn oldest_watchable(&self) -> Revision {
        self.cache.oldest()
    }
}
