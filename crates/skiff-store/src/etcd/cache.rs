//! The in-memory view of the prefix that the [`Store`](crate::Store) methods read: the latest state
//! as a persistent map, the recent changes, and the live events, kept up to date by the
//! reflector's etcd watch (the same design as kube-apiserver's watch cache).
//!
//! Invariants (as in the SQLite backend):
//! - The snapshot, the history and the live events change together under one lock, and a watch reads
//!   its backlog and subscribes under the same lock: no gap, no duplicate.
//! - The history holds every change in `(oldest, snapshot.rev]`, in revision order (etcd revisions
//!   are global, so there are gaps where other keys changed).
//!
//! Consistent reads ([`Cache::wait_fresh`]): a reader that must see every write acknowledged
//! before it waits until the cache's revision reaches etcd's current one. Writes to other keys
//! of etcd move etcd's revision without any event of the prefix, so while somebody waits the
//! reflector asks etcd for progress notifications ([`Cache::progress_wanted`]), which move the
//! cache's revision to etcd's (kube-apiserver's `ConditionalProgressRequester`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use super::codec::{self, Change, EtcdKind, Keys, Kv};
use super::reflector::Replay;
use crate::hub::Hub;
use crate::{EventKind, Object, Revision, Snapshot, StoreError, Watch};

/// One event of an etcd watch response, as the reflector hands it over.
pub(crate) type RawEvent = (EtcdKind, Kv, Option<Kv>);

/// Sizes of the cache.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub history_len: usize,
    pub retained_snapshots: usize,
    pub broadcast_capacity: usize,
}

pub(crate) struct Cache {
    keys: Keys,
    limits: Limits,
    published: RwLock<Published>,
    retained: Mutex<BTreeMap<Revision, Snapshot>>,
    /// The revision the cache has reached, for writers waiting to read their own write and
    /// readers waiting for a consistent read.
    seen: watch::Sender<Revision>,
    /// How many consistent reads are waiting for the cache to reach a revision; while there are
    /// some, the reflector requests progress notifications.
    waiting: watch::Sender<usize>,
}

/// The state readers and watchers see.
struct Published {
    snapshot: Snapshot,
    history: VecDeque<Change>,
    /// The oldest revision a watch can start after.
    oldest: Revision,
    /// The revision of the last event applied (or of the list the state was built from). Usually
    /// `snapshot.rev`; lower after a progress notification moved `snapshot.rev` past it.
    last_event: Revision,
    /// Live events; `None` once the store is closed.
    events: Option<Hub>,
}

impl Cache {
    /// A cache holding `objects` as of revision `rev`, with no history yet.
    pub fn new(keys: Keys, limits: Limits, rev: Revision, objects: imbl::OrdMap<Arc<str>, Object>) -> Cache {
        Cache {
            keys,
            limits,
            published: RwLock::new(Published {
                snapshot: Snapshot { rev, objects },
                history: VecDeque::new(),
                oldest: rev,
                last_event: rev,
                events: Some(Hub::new(limits.broadcast_capacity)),
            }),
            retained: Mutex::new(BTreeMap::new()),
            seen: watch::Sender::new(rev),
            waiting: watch::Sender::new(0),
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        self.published.read().snapshot.clone()
    }

    pub fn get(&self, key: &str) -> Option<Object> {
        self.published.read().snapshot.objects.get(key).cloned()
    }

    /// Whether every event up to `rev` has been applied and the state has `count` objects.
    pub fn holds(&self, rev: Revision, count: usize) -> bool {
        holds_in(&self.published.read(), rev, count)
    }

    /// Whether the cache holds the state at `target.to` for certain, even if a progress
    /// notification that ran ahead of events (etcd-io/etcd#15220) brought its revision there: it
    /// has applied an event at or after `to` (events arrive in order), or its revision is at `to`
    /// and it [`holds`](Cache::holds) the target's last put and count (any event it still misses
    /// then leaves the state as it is: every key alive at `to` was last put at or before
    /// `last_put`, and with as many keys as at `to`, the keys are the same).
    fn has_state(&self, target: Replay) -> bool {
        let published = self.published.read();
        published.last_event >= target.to
            || (published.snapshot.rev >= target.to && holds_in(&published, target.last_put, target.count))
    }

    /// Waits until the cache [has the state](Cache::has_state) at `target.to`; false if it did not
    /// within `timeout`.
    pub async fn wait_state(&self, target: Replay, timeout: Duration) -> bool {
        let mut seen = self.seen.subscribe();
        let reached = seen.wait_for(|_| self.has_state(target) || self.is_closed());
        matches!(tokio::time::timeout(timeout, reached).await, Ok(Ok(_))) && !self.is_closed()
    }

    /// The revision of the last event applied (or of the last relist).
    pub fn last_event(&self) -> Revision {
        self.published.read().last_event
    }

    pub fn revision(&self) -> Revision {
        self.published.read().snapshot.rev
    }

    pub fn oldest(&self) -> Revision {
        self.published.read().oldest
    }

    pub fn is_closed(&self) -> bool {
        self.published.read().events.is_none()
    }

    /// Applies the events of one watch response in order and then moves the revision to
    /// `progress` if given and later (a progress notification: everything up to it was sent).
    /// Events at or below the last applied event were already applied and are skipped. An event
    /// that cannot be translated is logged and its key dropped from the state (it cannot be read).
    ///
    /// An event at or below the current revision but after the last applied event is not a
    /// replay: a progress notification overtook it (etcd before 3.4.31 / 3.5.13 answers a progress
    /// request ahead of events it has queued, etcd-io/etcd#15220). It is applied all the same, so
    /// the state stays right; the snapshots retained at or after its revision missed it and are
    /// dropped (their continue tokens expire).
    ///
    /// Only the reflector task changes the state (`apply` and `reset`, one call at a time), so the
    /// events are translated (JSON parsing) on a copy without holding the lock readers need, and
    /// only publishing takes it.
    pub fn apply(&self, events: Vec<RawEvent>, progress: Option<Revision>) {
        let (mut objects, start, mut last_event) = {
            let published = self.published.read();
            (published.snapshot.objects.clone(), published.snapshot.rev, published.last_event)
        };
        let (mut rev, applied_before) = (start, last_event);
        let mut overtaken: Option<Revision> = None;
        let mut changes = Vec::with_capacity(events.len());
        for (kind, kv, prev) in events {
            let event_rev = match codec::revision(kv.mod_revision) {
                Ok(r) if r > last_event => r,
                Ok(_) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "skipping etcd event");
                    continue;
                }
            };
            if event_rev <= start {
                overtaken.get_or_insert(event_rev);
            }
            last_event = event_rev;
            rev = rev.max(event_rev);
            let Some(key) = self.keys.store_key(&kv.key) else {
                tracing::error!(key = %codec::lossy(&kv.key), "skipping etcd event outside the prefix");
                continue;
            };
            match codec::change(&self.keys, kind, &kv, prev.as_ref(), objects.get(&key)) {
                Ok(change) => {
                    match change.event.kind {
                        EventKind::Added | EventKind::Modified => {
                            let object =
                                Object { key: key.clone(), rev: event_rev, value: change.event.object.clone() };
                            objects.insert(key, object);
                        }
                        EventKind::Deleted => {
                            objects.remove(&key);
                        }
                    }
                    changes.push(change);
                }
                Err(e) => {
                    tracing::error!(error = %e, key = %key, rev = event_rev, "unreadable etcd event: the key is dropped from the cache");
                    objects.remove(&key);
                }
            }
        }
        if let Some(progress) = progress {
            rev = rev.max(progress);
        }
        if let Some(first) = overtaken {
            tracing::warn!(
                revision = first,
                cached = start,
                "etcd sent a progress notification ahead of events it covers (etcd-io/etcd#15220, fixed in \
                 3.4.31 and 3.5.13): consistent reads may have missed them"
            );
            self.retained.lock().retain(|retained, _| *retained < first);
        }
        if rev == start && last_event == applied_before {
            return;
        }
        let mut published = self.published.write();
        published.snapshot = Snapshot { rev, objects };
        published.last_event = last_event;
        let published_ref = &mut *published;
        let first = published_ref.history.len();
        published_ref.history.extend(changes);
        if let Some(hub) = &published_ref.events {
            hub.send(published_ref.history.range(first..).map(|change| &change.event));
        }
        while published.history.len() > self.limits.history_len.max(1) {
            if let Some(dropped) = published.history.pop_front() {
                published.oldest = dropped.event.rev;
            }
        }
        drop(published);
        self.seen.send_replace(rev);
    }

    /// Replaces the whole state after a relist at `rev` (the watch could not resume: its revision
    /// was compacted). The history is dropped, and live watches end (their senders are replaced),
    /// so their clients re-watch and learn that their revision is too old.
    pub fn reset(&self, rev: Revision, objects: imbl::OrdMap<Arc<str>, Object>) {
        let mut published = self.published.write();
        published.snapshot = Snapshot { rev, objects };
        published.history.clear();
        published.oldest = rev;
        published.last_event = rev;
        if published.events.is_some() {
            published.events = Some(Hub::new(self.limits.broadcast_capacity));
        }
        drop(published);
        self.retained.lock().clear();
        self.seen.send_replace(rev);
    }

    /// Forgets the changes at or below `to` (etcd compacted them): a watch must start after `to`.
    pub fn trim(&self, to: Revision) {
        let mut published = self.published.write();
        if to <= published.oldest {
            return;
        }
        while published.history.front().is_some_and(|change| change.event.rev <= to) {
            published.history.pop_front();
        }
        published.oldest = to.min(published.snapshot.rev);
    }

    pub fn retain(&self, snapshot: &Snapshot) {
        if self.limits.retained_snapshots == 0 {
            return;
        }
        let mut retained = self.retained.lock();
        retained.entry(snapshot.rev).or_insert_with(|| snapshot.clone());
        while retained.len() > self.limits.retained_snapshots {
            retained.pop_first();
        }
    }

    /// A retained snapshot, the current one, or one rebuilt from the history by undoing the later
    /// changes (any revision from `oldest` on): so a continue token or an exact-revision list from
    /// another API server on the same etcd still works here.
    pub fn snapshot_at(&self, rev: Revision) -> Result<Snapshot, StoreError> {
        if let Some(snapshot) = self.retained.lock().get(&rev) {
            return Ok(snapshot.clone());
        }
        let published = self.published.read();
        if rev == published.snapshot.rev {
            return Ok(published.snapshot.clone());
        }
        if rev < published.oldest || rev > published.snapshot.rev {
            return Err(StoreError::SnapshotExpired(rev));
        }
        rewind(&published.snapshot, &published.history, rev).ok_or(StoreError::SnapshotExpired(rev))
    }

    /// Changes under `prefix` after `after`; `Compacted` if some changes after `after` are no
    /// longer held. A revision later than the latest gives an empty backlog (the consumer skips
    /// live events at or below `after`).
    pub fn watch_prefix(&self, prefix: &str, after: Revision) -> Result<Watch, StoreError> {
        let published = self.published.read();
        let Some(hub) = &published.events else { return Err(StoreError::Closed) };
        if after < published.oldest {
            return Err(StoreError::Compacted { requested: after, oldest: published.oldest });
        }
        let start = published.history.partition_point(|change| change.event.rev <= after);
        let backlog = published
            .history
            .range(start..)
            .filter(|change| change.event.key.starts_with(prefix))
            .map(|change| change.event.clone())
            .collect();
        Ok(Watch { backlog, live: hub.subscribe(prefix) })
    }

    /// Every change after `after`: [`Cache::watch_prefix`] with the empty prefix.
    #[cfg(test)]
    pub fn watch(&self, after: Revision) -> Result<Watch, StoreError> {
        self.watch_prefix("", after)
    }

    /// Ends live watches and refuses new ones; consistent reads still waiting fail with `Closed`.
    pub fn close(&self) {
        self.published.write().events = None;
        // Wakes the waiters, which see the cache closed.
        self.seen.send_modify(|_| {});
    }

    /// Waits until the cache has applied the event at `rev` (a write under the prefix) or a later
    /// one; false if it did not within `timeout`. Not its revision: a progress notification may
    /// have brought that past `rev` before the event arrived (etcd-io/etcd#15220), while events
    /// arrive in order.
    pub async fn wait_event(&self, rev: Revision, timeout: Duration) -> bool {
        let mut seen = self.seen.subscribe();
        let applied = seen.wait_for(|_| self.last_event() >= rev || self.is_closed());
        matches!(tokio::time::timeout(timeout, applied).await, Ok(Ok(_))) && !self.is_closed()
    }

    /// A consistent read's wait: until the cache has reached `rev` (etcd's revision when the
    /// read began), asking the reflector for progress notifications meanwhile, and returns the
    /// revision reached. `TooLargeResourceVersion` if that takes longer than `timeout`
    /// (kube-apiserver's `waitUntilFreshAndBlock`), `Closed` if the cache is or gets closed.
    pub async fn wait_fresh(&self, rev: Revision, timeout: Duration) -> Result<Revision, StoreError> {
        let mut seen = self.seen.subscribe();
        let reached = *seen.borrow_and_update();
        if self.is_closed() {
            return Err(StoreError::Closed);
        }
        if reached >= rev {
            return Ok(reached);
        }
        let _waiting = Waiting::register(&self.waiting);
        let waited = tokio::time::timeout(timeout, seen.wait_for(|r| *r >= rev || self.is_closed())).await;
        if self.is_closed() {
            return Err(StoreError::Closed);
        }
        match waited {
            Ok(Ok(reached)) => Ok(*reached),
            // The sender lives as long as the cache: not reachable.
            Ok(Err(_)) => Err(StoreError::Closed),
            Err(_) => Err(StoreError::TooLargeResourceVersion { requested: rev, current: self.revision() }),
        }
    }

    /// How many consistent reads are waiting ([`Cache::wait_fresh`]); the reflector requests
    /// progress notifications while it is above zero.
    pub fn progress_wanted(&self) -> watch::Receiver<usize> {
        self.waiting.subscribe()
    }
}

/// One consistent read counted in [`Cache::progress_wanted`] for as long as it lives.
struct Waiting<'a>(&'a watch::Sender<usize>);

impl<'a> Waiting<'a> {
    fn register(waiting: &'a watch::Sender<usize>) -> Waiting<'a> {
        waiting.send_modify(|n| *n += 1);
        Waiting(waiting)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The state at `rev` (at least the history's start): `snapshot` with every later change of
/// `history` undone, newest first. `None` if a change cannot be undone (its previous state is
/// unknown).
fn rewind(snapshot: &Snapshot, history: &VecDeque<Change>, rev: Revision) -> Option<Snapshot> {
    let mut objects = snapshot.objects.clone();
    for change in history.iter().rev().take_while(|change| change.event.rev > rev) {
        let event = &change.event;
        match event.kind {
            EventKind::Added => {
                objects.remove(&event.key);
            }
            EventKind::Modified | EventKind::Deleted => {
                let (prev, prev_rev) = (event.prev.clone()?, change.prev_rev?);
                objects.insert(event.key.clone(), Object { key: event.key.clone(), rev: prev_rev, value: prev });
            }
        }
    }
    Some(Snapshot { rev, objects })
}

/// [`Cache::holds`] on state already locked.
fn holds_in(published: &Published, rev: Revision, count: usize) -> bool {
    published.last_event.max(published.oldest) >= rev && published.snapshot.objects.len() == count
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::{Event, Json};
    use tokio::sync::broadcast;

    const LIMITS: Limits = Limits { history_len: 100, retained_snapshots: 2, broadcast_capacity: 16 };

    fn kv(key: &str, value: Value, create: i64, rev: i64) -> Kv {
        Kv {
            key: format!("/r{key}").into_bytes(),
            value: value.to_string().into_bytes(),
            create_revision: create,
            mod_revision: rev,
        }
    }

    fn put(key: &str, value: Value, create: i64, rev: i64, prev: Option<Kv>) -> RawEvent {
        (EtcdKind::Put, kv(key, value, create, rev), prev)
    }

    fn del(key: &str, rev: i64, prev: Option<Kv>) -> RawEvent {
        (
            EtcdKind::Delete,
            Kv { key: format!("/r{key}").into_bytes(), value: vec![], create_revision: 0, mod_revision: rev },
            prev,
        )
    }

    fn empty(rev: Revision) -> Cache {
        Cache::new(Keys::new("/r/"), LIMITS, rev, imbl::OrdMap::new())
    }

    /// /a created at 11, /b at 12, /a modified at 14, /b deleted at 15 (13 was another prefix).
    fn busy() -> Cache {
        let cache = empty(10);
        cache.apply(vec![put("/a", json!({"v": 1}), 11, 11, None), put("/b", json!({"v": 1}), 12, 12, None)], None);
        cache.apply(
            vec![
                put("/a", json!({"v": 2}), 11, 14, Some(kv("/a", json!({"v": 1}), 11, 11))),
                del("/b", 15, Some(kv("/b", json!({"v": 1}), 12, 12))),
            ],
            None,
        );
        cache
    }

    /// Key, revision and value of every object, in key order.
    type State = Vec<(String, Revision, Value)>;

    fn state(snapshot: &Snapshot) -> State {
        snapshot.objects.values().map(|o| (o.key.to_string(), o.rev, o.value.parse())).collect()
    }

    fn revs(events: &[Arc<Event>]) -> Vec<Revision> {
        events.iter().map(|e| e.rev).collect()
    }

    #[test]
    fn apply_builds_state_history_and_broadcast() {
        let cache = empty(10);
        let mut live = cache.watch(10).expect("watch").live;
        cache.apply(vec![put("/a", json!({"v": 1}), 11, 11, None), put("/b", json!({"v": 1}), 12, 12, None)], None);
        cache.apply(
            vec![
                put("/a", json!({"v": 2}), 11, 14, Some(kv("/a", json!({"v": 1}), 11, 11))),
                del("/b", 15, Some(kv("/b", json!({"v": 1}), 12, 12))),
            ],
            None,
        );
        assert_eq!(cache.revision(), 15);
        assert_eq!(
            state(&cache.snapshot()),
            [("/a".to_owned(), 14, json!({"v": 2, "metadata": {"resourceVersion": "14"}}))]
        );
        let mut got = Vec::new();
        while let Ok(event) = live.try_recv() {
            got.push((event.kind, event.rev, event.key.to_string()));
        }
        let want = [
            (EventKind::Added, 11, "/a".to_owned()),
            (EventKind::Added, 12, "/b".to_owned()),
            (EventKind::Modified, 14, "/a".to_owned()),
            (EventKind::Deleted, 15, "/b".to_owned()),
        ];
        assert_eq!(got, want);
        assert_eq!(revs(&cache.watch(12).expect("watch").backlog), [14, 15]);
        assert_eq!(revs(&cache.watch(13).expect("watch").backlog), [14, 15]);
        assert!(cache.watch(15).expect("watch").backlog.is_empty());
        assert!(cache.watch(99).expect("watch").backlog.is_empty());
    }

    #[test]
    fn replayed_events_are_skipped_and_progress_moves_the_revision() {
        let cache = busy();
        let mut live = cache.watch(15).expect("watch").live;
        cache.apply(vec![put("/a", json!({"v": 2}), 11, 14, None)], None);
        assert_eq!(cache.revision(), 15);
        cache.apply(vec![], Some(20));
        assert_eq!(cache.revision(), 20);
        assert_eq!(cache.snapshot().rev, 20);
        cache.apply(vec![], Some(18));
        assert_eq!(cache.revision(), 20);
        assert!(live.try_recv().is_err(), "no event for a replay or a progress notification");
    }

    #[test]
    fn unreadable_events_drop_the_key_without_an_event() {
        let cache = busy();
        let broken = Kv { key: b"/r/a".to_vec(), value: b"{".to_vec(), create_revision: 11, mod_revision: 16 };
        cache.apply(vec![(EtcdKind::Put, broken, None)], None);
        assert_eq!(cache.revision(), 16);
        assert!(cache.get("/a").is_none());
        assert_eq!(revs(&cache.watch(15).expect("watch").backlog), Vec::<Revision>::new());
    }

    #[test]
    fn history_is_bounded_and_compaction_trims_it() {
        let cache = Cache::new(Keys::new("/r/"), Limits { history_len: 3, ..LIMITS }, 0, imbl::OrdMap::new());
        for rev in 1..=5 {
            cache.apply(vec![put(&format!("/k{rev}"), json!({}), rev, rev, None)], None);
        }
        assert_eq!(cache.oldest(), 2);
        let err = cache.watch(1).err().expect("compacted");
        assert!(matches!(err, StoreError::Compacted { requested: 1, oldest: 2 }), "{err:?}");
        assert_eq!(revs(&cache.watch(2).expect("watch").backlog), [3, 4, 5]);
        cache.trim(4);
        assert_eq!(cache.oldest(), 4);
        assert_eq!(revs(&cache.watch(4).expect("watch").backlog), [5]);
        cache.trim(3);
        assert_eq!(cache.oldest(), 4, "trimming never goes back");
        cache.trim(50);
        assert_eq!(cache.oldest(), 5, "never past the latest revision");
    }

    #[test]
    fn snapshots_at_earlier_revisions_are_rebuilt_from_the_history() {
        let cache = busy();
        let cases: [(Revision, State); 6] = [
            (10, vec![]),
            (11, vec![("/a".into(), 11, json!({"v": 1, "metadata": {"resourceVersion": "11"}}))]),
            (
                12,
                vec![
                    ("/a".into(), 11, json!({"v": 1, "metadata": {"resourceVersion": "11"}})),
                    ("/b".into(), 12, json!({"v": 1, "metadata": {"resourceVersion": "12"}})),
                ],
            ),
            (
                13,
                vec![
                    ("/a".into(), 11, json!({"v": 1, "metadata": {"resourceVersion": "11"}})),
                    ("/b".into(), 12, json!({"v": 1, "metadata": {"resourceVersion": "12"}})),
                ],
            ),
            (
                14,
                vec![
                    ("/a".into(), 14, json!({"v": 2, "metadata": {"resourceVersion": "14"}})),
                    ("/b".into(), 12, json!({"v": 1, "metadata": {"resourceVersion": "12"}})),
                ],
            ),
            (15, vec![("/a".into(), 14, json!({"v": 2, "metadata": {"resourceVersion": "14"}}))]),
        ];
        for (rev, want) in cases {
            let snapshot = cache.snapshot_at(rev).expect("rebuilt");
            assert_eq!(snapshot.rev, rev);
            assert_eq!(state(&snapshot), want, "at {rev}");
        }
        assert!(matches!(cache.snapshot_at(16), Err(StoreError::SnapshotExpired(16))));
        assert!(matches!(cache.snapshot_at(9), Err(StoreError::SnapshotExpired(9))));
        cache.trim(12);
        assert!(matches!(cache.snapshot_at(11), Err(StoreError::SnapshotExpired(11))));
        assert_eq!(cache.snapshot_at(12).expect("still held").objects.len(), 2);
    }

    #[test]
    fn retained_snapshots_survive_trimming_and_are_bounded() {
        let cache = busy();
        for rev in [11, 12, 14] {
            cache.retain(&cache.snapshot_at(rev).expect("snapshot"));
        }
        cache.trim(15);
        assert!(matches!(cache.snapshot_at(11), Err(StoreError::SnapshotExpired(11))), "only 2 retained");
        assert_eq!(cache.snapshot_at(12).expect("retained").objects.len(), 2);
        assert_eq!(cache.snapshot_at(14).expect("retained").objects.len(), 2);
    }

    #[test]
    fn reset_replaces_everything_and_ends_live_watches() {
        let cache = busy();
        let mut live = cache.watch(15).expect("watch").live;
        cache.retain(&cache.snapshot());
        let mut objects = imbl::OrdMap::new();
        let key: Arc<str> = Arc::from("/z");
        objects.insert(key.clone(), Object { key, rev: 30, value: Json::from(json!({})) });
        cache.reset(40, objects);
        assert_eq!((cache.revision(), cache.oldest()), (40, 40));
        assert_eq!(cache.snapshot().objects.keys().map(|k| k.to_string()).collect::<Vec<_>>(), ["/z"]);
        assert!(matches!(live.try_recv(), Err(broadcast::error::TryRecvError::Closed)));
        assert!(matches!(cache.snapshot_at(15), Err(StoreError::SnapshotExpired(15))));
        assert!(matches!(cache.watch(39), Err(StoreError::Compacted { requested: 39, oldest: 40 })));
        // New watches get the new channel.
        let mut live = cache.watch(40).expect("watch").live;
        cache.apply(vec![put("/y", json!({}), 41, 41, None)], None);
        assert_eq!(live.try_recv().expect("event").rev, 41);
    }

    #[test]
    fn close_ends_and_refuses_watches() {
        let cache = busy();
        let mut live = cache.watch(15).expect("watch").live;
        cache.close();
        assert!(cache.is_closed());
        assert!(matches!(live.try_recv(), Err(broadcast::error::TryRecvError::Closed)));
        assert!(matches!(cache.watch(15), Err(StoreError::Closed)));
    }

    #[test]
    fn events_overtaken_by_a_progress_notification_are_applied() {
        let cache = busy();
        cache.retain(&cache.snapshot());
        let mut live = cache.watch(15).expect("watch").live;
        // etcd < 3.4.31 announced 20 before sending the event at 17.
        cache.apply(vec![], Some(20));
        cache.retain(&cache.snapshot());
        cache.apply(vec![put("/c", json!({"v": 1}), 17, 17, None)], None);
        assert_eq!(cache.revision(), 20, "the revision never goes back");
        assert_eq!(cache.get("/c").map(|o| o.rev), Some(17));
        assert_eq!(live.try_recv().expect("the event is broadcast").rev, 17);
        assert_eq!(revs(&cache.watch(15).expect("watch").backlog), [17]);
        assert!(matches!(cache.snapshot_at(20), Ok(s) if s.objects.contains_key("/c")), "no stale snapshot at 20");
        assert_eq!(cache.snapshot_at(15).expect("retained before the event").objects.len(), 1);
        // A replay of it, or of anything earlier, is still skipped; later events apply as usual.
        cache.apply(vec![put("/c", json!({"v": 1}), 17, 17, None), put("/a", json!({"v": 9}), 11, 16, None)], None);
        assert_eq!(cache.get("/a").map(|o| o.rev), Some(14));
        cache.apply(vec![put("/c", json!({"v": 2}), 17, 21, Some(kv("/c", json!({"v": 1}), 17, 17)))], None);
        assert_eq!((cache.revision(), cache.get("/c").map(|o| o.rev)), (21, Some(21)));
        assert_eq!(revs(&cache.watch(15).expect("watch").backlog), [17, 21]);
    }

    /// etcd < 3.4.31 announces 30 before the events at 17 (a put) and 19 (a delete) arrive: the
    /// revision is there, the state is not, until both are applied. A state whose missing events
    /// cancel out (a key created and deleted after the last put) counts as held.
    #[tokio::test]
    async fn wait_state_waits_for_the_events_a_progress_notification_overtook() {
        let cache = Arc::new(busy());
        cache.apply(vec![put("/z", json!({}), 16, 16, None)], None);
        let target = Replay { to: 30, last_put: 17, count: 2 };
        cache.apply(vec![], Some(30));
        assert_eq!(cache.revision(), 30);
        assert!(!cache.wait_state(target, Duration::from_millis(50)).await, "the put at 17 is missing");
        let waiter = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.wait_state(target, Duration::from_secs(3)).await })
        };
        cache.apply(vec![put("/c", json!({}), 17, 17, None)], None);
        assert!(!cache.wait_state(target, Duration::from_millis(50)).await, "/z is not deleted yet");
        cache.apply(vec![del("/z", 19, Some(kv("/z", json!({}), 16, 16)))], None);
        assert!(waiter.await.expect("joined"), "the state at 30 is held");

        let cache = busy();
        cache.apply(vec![], Some(30));
        let target = Replay { to: 30, last_put: 14, count: 1 };
        assert!(
            cache.wait_state(target, Duration::from_millis(50)).await,
            "/y put at 20 and deleted at 25 are not needed"
        );
        let cache = busy();
        cache.apply(vec![put("/y", json!({}), 31, 31, None)], None);
        assert!(cache.wait_state(Replay { to: 30, last_put: 14, count: 7 }, Duration::ZERO).await, "an event after 30");
        cache.close();
        assert!(!cache.wait_state(Replay { to: 30, last_put: 14, count: 7 }, Duration::from_secs(3)).await, "closed");
    }

    #[tokio::test]
    async fn wait_fresh_answers_at_once_when_the_cache_is_there() {
        let cache = busy();
        let wanted = cache.progress_wanted();
        assert_eq!(cache.wait_fresh(15, Duration::from_secs(3)).await.expect("fresh"), 15);
        assert_eq!(cache.wait_fresh(3, Duration::from_secs(3)).await.expect("fresh"), 15);
        assert!(!wanted.has_changed().expect("open"), "no progress asked for");
    }

    #[tokio::test]
    async fn wait_fresh_asks_for_progress_until_the_revision_is_reached() {
        let cache = Arc::new(busy());
        let mut wanted = cache.progress_wanted();
        let waiter = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.wait_fresh(30, Duration::from_secs(3)).await })
        };
        wanted.wait_for(|n| *n == 1).await.expect("a waiter is counted");
        // An event of the prefix is not enough; a progress notification past 30 is.
        cache.apply(vec![put("/c", json!({}), 16, 16, None)], None);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        cache.apply(vec![], Some(31));
        assert_eq!(waiter.await.expect("task").expect("fresh"), 31);
        assert_eq!(*wanted.borrow_and_update(), 0, "no longer counted");
    }

    #[tokio::test]
    async fn wait_fresh_times_out_with_too_large_resource_version() {
        let cache = busy();
        let started = tokio::time::Instant::now();
        let err = cache.wait_fresh(40, Duration::from_millis(200)).await.expect_err("stalled");
        assert!(matches!(err, StoreError::TooLargeResourceVersion { requested: 40, current: 15 }), "{err:?}");
        assert_eq!(err.to_string(), "Too large resource version: 40, current: 15");
        assert!(started.elapsed() >= Duration::from_millis(200), "waited the whole timeout");
        assert_eq!(*cache.progress_wanted().borrow(), 0, "the waiter is gone");
    }

    #[tokio::test]
    async fn wait_fresh_ends_when_the_cache_closes() {
        let cache = Arc::new(busy());
        let mut wanted = cache.progress_wanted();
        let waiter = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.wait_fresh(40, Duration::from_secs(3600)).await })
        };
        wanted.wait_for(|n| *n == 1).await.expect("a waiter is counted");
        cache.close();
        assert!(matches!(waiter.await.expect("task"), Err(StoreError::Closed)));
        assert!(matches!(cache.wait_fresh(1, Duration::from_secs(1)).await, Err(StoreError::Closed)));
    }

    #[tokio::test]
    async fn wait_event_returns_once_the_event_is_applied() {
        let cache = Arc::new(empty(10));
        assert!(cache.wait_event(10, Duration::from_millis(1)).await);
        assert!(!cache.wait_event(11, Duration::from_millis(20)).await);
        let waiter = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.wait_event(12, Duration::from_secs(10)).await })
        };
        tokio::task::yield_now().await;
        // etcd < 3.4.31 announced 14 before sending the event at 12: not enough.
        cache.apply(vec![], Some(14));
        assert!(!cache.wait_event(12, Duration::from_millis(50)).await, "the event at 12 is missing");
        cache.apply(vec![put("/a", json!({}), 12, 12, None)], None);
        assert!(waiter.await.expect("task"));
        assert!(cache.wait_event(11, Duration::ZERO).await, "an event after 11");
        cache.close();
        assert!(!cache.wait_event(20, Duration::from_secs(3)).await, "closed");
    }
}
