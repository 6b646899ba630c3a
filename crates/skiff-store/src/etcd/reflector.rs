//! Keeping the [`Cache`] in step with etcd: a consistent list of the prefix (paged, at one
//! revision), then one etcd watch of the prefix from the next revision with `prev_kv`, whose
//! events the cache applies. When the watch breaks (etcd restarted, connection lost) it is
//! re-opened from the revision after the cache's, so nothing is missed; when that revision has been
//! compacted meanwhile, the prefix is listed again and the cache reset.
//!
//! While consistent reads wait for the cache (see [`Cache::wait_fresh`]), the reflector asks etcd
//! for a progress notification on its watch stream every [`PROGRESS_REQUEST_PERIOD`], as
//! kube-apiserver's `ConditionalProgressRequester` does: etcd answers with its current revision
//! once every event up to it has been sent, so the cache reaches etcd's revision even when the
//! last writes were to keys outside the prefix. (etcd before 3.4.31 / 3.5.13 may answer before
//! sending events it has queued: see [`exact_progress`] and `Cache::apply`.)

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, GetOptions, KvClient, SortOrder, SortTarget, WatchClient, WatchOptions};
use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};

use super::cache::{Cache, RawEvent};
use super::codec::{self, EtcdKind, Keys, Kv};
use crate::{Object, Revision, StoreError};

/// Keys per page of the initial list.
const PAGE: i64 = 500;
/// Backoff between attempts to re-open a broken watch.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often progress is requested while a consistent read waits (kube-apiserver's
/// `progressRequestPeriod`).
pub(crate) const PROGRESS_REQUEST_PERIOD: Duration = Duration::from_millis(100);

/// The first key after every key starting with `prefix` (etcd's range end for a prefix).
pub(crate) fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff (or the prefix was empty): to the end of the key space.
    vec![0]
}

/// Runs `call` with the request timeout, mapping both failures to `Backend`.
pub(crate) async fn timed<T>(
    timeout: Duration,
    doing: &str,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(StoreError::Backend(format!("etcd {doing}: {e}"))),
        Err(_) => Err(StoreError::Backend(format!("etcd {doing}: no answer within {timeout:?}"))),
    }
}

/// Every object under the prefix, at one revision (`at`, or else the revision of the first page),
/// read in pages. An entry that cannot be read is logged and left out.
pub(crate) async fn list(
    kv: &KvClient,
    keys: &Keys,
    timeout: Duration,
    at: Option<Revision>,
) -> Result<(Revision, imbl::OrdMap<Arc<str>, Object>), StoreError> {
    let prefix = keys.prefix().as_bytes().to_vec();
    let end = range_end(&prefix);
    let mut objects = imbl::OrdMap::new();
    let mut start = prefix;
    let mut at: Option<i64> = at.map(codec::etcd_revision);
    loop {
        let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
        if let Some(rev) = at {
            options = options.with_revision(rev);
        }
        let get = || {
            let (mut kv, start, options) = (kv.clone(), start.clone(), options.clone());
            async move { kv.get(start, Some(options)).await }
        };
        let response = super::endpoints::retried(timeout, "list", get).await?;
        let rev = match at {
            Some(rev) => rev,
            None => {
                let rev = response
                    .header()
                    .map(|h| h.revision())
                    .ok_or_else(|| StoreError::Backend("etcd list answer has no header".to_owned()))?;
                at = Some(rev);
                rev
            }
        };
        for kv in response.kvs() {
            match codec::object(keys, &Kv::from(kv)) {
                Ok(object) => {
                    objects.insert(object.key.clone(), object);
                }
                Err(e) => tracing::error!(error = %e, "skipping unreadable etcd entry"),
            }
        }
        match response.kvs().last() {
            Some(last) if response.more() => {
                start = last.key().to_vec();
                start.push(0);
            }
            _ => return Ok((codec::revision(rev)?, objects)),
        }
    }
}

/// The list a store starts from: the prefix as it was up to `history` revisions before `current`
/// (or at etcd's oldest revision, if it compacted later), so that the watch that follows replays
/// the changes since into the cache's history and a client can resume a watch from a revision it
/// saw before this server started (another server's, or this one's before a restart), as it could
/// from etcd itself. The [`Replay`] says when the replay has reached `current`.
pub(crate) async fn initial_list(
    kv: &KvClient,
    watch: &WatchClient,
    keys: &Keys,
    timeout: Duration,
    current: Revision,
    history: usize,
) -> Result<(Revision, imbl::OrdMap<Arc<str>, Object>, Option<Replay>), StoreError> {
    let mut from = current.saturating_sub(u64::try_from(history).unwrap_or(u64::MAX)).max(1);
    // Two tries: a compaction may land between learning etcd's oldest revision and listing at it.
    for _ in 0..2 {
        if from >= current {
            break;
        }
        match list(kv, keys, timeout, Some(from)).await {
            Err(StoreError::Backend(m)) if m.contains("required revision has been compacted") => {
                match compacted_revision(watch, keys, from, timeout).await? {
                    Some(compacted) => from = compacted,
                    None => break,
                }
            }
            Ok((rev, objects)) => {
                let replay = replay_target(kv, keys, timeout, current).await?;
                return Ok((rev, objects, Some(replay)));
            }
            Err(e) => return Err(e),
        }
    }
    let (rev, objects) = list(kv, keys, timeout, Some(current)).await?;
    Ok((rev, objects, None))
}

/// Where a replay ends, and how the reflector knows it got there. etcd before 3.4.31 answers a
/// progress request with its current revision even while the watch is still replaying older
/// events (etcd-io/etcd#15220), so the end is recognised from the state at `to` instead: every
/// object there was last written at or before `last_put`, and there are `count` of them. Once
/// the cache has applied the events up to `last_put` and holds `count` objects, it holds exactly
/// the state at `to` (the deletes after `last_put` are applied too, or it would hold more).
/// (An object created and deleted after `last_put` may be missing from the replayed history.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Replay {
    pub to: Revision,
    pub last_put: Revision,
    pub count: usize,
}

/// The [`Replay`] target at `to`: one range read of the prefix at that revision, keys only,
/// sorted by modification, limited to one key.
pub(crate) async fn replay_target(
    kv: &KvClient,
    keys: &Keys,
    timeout: Duration,
    to: Revision,
) -> Result<Replay, StoreError> {
    let prefix = keys.prefix().as_bytes().to_vec();
    let options = GetOptions::new()
        .with_range(range_end(&prefix))
        .with_revision(codec::etcd_revision(to))
        .with_keys_only()
        .with_sort(SortTarget::Mod, SortOrder::Descend)
        .with_limit(1);
    let get = || {
        let (mut kv, prefix, options) = (kv.clone(), prefix.clone(), options.clone());
        async move { kv.get(prefix, Some(options)).await }
    };
    let response = super::endpoints::retried(timeout, "replay target", get).await?;
    let last_put = match response.kvs().first() {
        Some(kv) => codec::revision(kv.mod_revision())?,
        None => 0,
    };
    let count = usize::try_from(response.count())
        .map_err(|_| StoreError::Backend(format!("etcd counted {} keys", response.count())))?;
    Ok(Replay { to, last_put, count })
}

/// The revision etcd has compacted to, if it is after `from`: a watch from `from` is canceled
/// with it (a range read's error does not say).
async fn compacted_revision(
    watch: &WatchClient,
    keys: &Keys,
    from: Revision,
    timeout: Duration,
) -> Result<Option<Revision>, StoreError> {
    let options = WatchOptions::new().with_prefix().with_start_revision(codec::etcd_revision(from));
    let mut watch = watch.clone();
    let (_requests, mut responses) = timed(timeout, "watch", watch.watch(keys.prefix(), Some(options))).await?.split();
    loop {
        let message = timed(timeout, "watch", responses.message()).await?;
        let Some(response) = message else { return Ok(None) };
        if response.compact_revision() > 0 {
            return codec::revision(response.compact_revision()).map(Some);
        }
        if response.canceled() || !response.events().is_empty() {
            return Ok(None);
        }
    }
}

/// etcd's current revision, read from the header of a linearizable (quorum) range of a single
/// key, the prefix itself, counted only: as cheap as a read gets, and it waits for nothing
/// (kube-apiserver's `GetCurrentResourceVersionFromStorage` lists the resource with limit 1).
pub(crate) async fn current_revision(kv: &KvClient, keys: &Keys, timeout: Duration) -> Result<Revision, StoreError> {
    let key = keys.prefix().as_bytes().to_vec();
    let get = || {
        let (mut kv, key) = (kv.clone(), key.clone());
        async move { kv.get(key, Some(GetOptions::new().with_count_only())).await }
    };
    let response = super::endpoints::retried(timeout, "revision read", get).await?;
    let rev = response
        .header()
        .map(|h| h.revision())
        .ok_or_else(|| StoreError::Backend("etcd revision read answer has no header".to_owned()))?;
    codec::revision(rev)
}

/// Whether an etcd of `version` (`3.5.13`, `3.6.0-rc.1`) answers a progress request only after
/// every event up to the revision it reports: from 3.4.31 and 3.5.13 on (etcd-io/etcd#15220;
/// kube-apiserver serves consistent reads from its cache only then). `None` if the version
/// cannot be read.
pub(crate) fn exact_progress(version: &str) -> Option<bool> {
    let core = version.trim().trim_start_matches('v').split(['-', '+']).next()?;
    let mut parts = core.split('.').map(str::parse::<u64>);
    let (major, minor, patch) = (parts.next()?.ok()?, parts.next()?.ok()?, parts.next()?.ok()?);
    Some(match (major, minor) {
        (3, 4) => patch >= 31,
        (3, 5) => patch >= 13,
        (3, m) => m >= 6,
        (m, _) => m > 3,
    })
}

/// How a watch ended.
enum Ended {
    /// etcd no longer holds the revision the watch had to start from.
    Compacted(i64),
}

/// What the reflector task needs.
pub(crate) struct Reflector {
    pub kv: KvClient,
    pub watch: WatchClient,
    pub keys: Keys,
    pub cache: Arc<Cache>,
    pub timeout: Duration,
    /// The replay of the history still to finish (see [`initial_list`]); progress notifications
    /// are not trusted until it has.
    pub replay: Option<Replay>,
}

impl Reflector {
    /// Follows etcd until the task is aborted.
    pub async fn run(mut self) {
        let mut backoff = MIN_BACKOFF;
        loop {
            match self.follow(&mut backoff).await {
                Ok(Ended::Compacted(compacted)) => {
                    tracing::warn!(
                        revision = self.cache.revision(),
                        compacted,
                        "etcd compacted the revision the store's watch needs: listing again"
                    );
                    match list(&self.kv, &self.keys, self.timeout, None).await {
                        Ok((rev, objects)) => {
                            self.cache.reset(rev, objects);
                            self.replay = None;
                            continue;
                        }
                        Err(e) => tracing::warn!(error = %e, "relisting etcd failed"),
                    }
                }
                Err(e) => tracing::warn!(error = %e, revision = self.cache.revision(), "etcd watch broke"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Watches from the revision after the cache's and applies what arrives, until the watch
    /// ends. `backoff` is reset once the watch is established.
    async fn follow(&mut self, backoff: &mut Duration) -> Result<Ended, StoreError> {
        let from = codec::etcd_revision(self.cache.revision().saturating_add(1));
        let options =
            WatchOptions::new().with_prefix().with_prev_key().with_progress_notify().with_start_revision(from);
        let prefix = self.keys.prefix().to_owned();
        let stream = timed(self.timeout, "watch", self.watch.watch(prefix, Some(options))).await?;
        let (mut requests, mut responses) = stream.split();
        let mut wanted = self.cache.progress_wanted();
        let mut ticks = tokio::time::interval(PROGRESS_REQUEST_PERIOD);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let message = tokio::select! {
                message = responses.message() => message,
                () = progress_due(&mut wanted, &mut ticks) => {
                    requests
                        .request_progress()
                        .await
                        .map_err(|e| StoreError::Backend(format!("etcd watch progress request: {e}")))?;
                    continue;
                }
            };
            let response = message
                .map_err(|e| StoreError::Backend(format!("etcd watch: {e}")))?
                .ok_or_else(|| StoreError::Backend("etcd watch stream ended".to_owned()))?;
            if response.compact_revision() > 0 {
                return Ok(Ended::Compacted(response.compact_revision()));
            }
            if response.canceled() {
                return Err(StoreError::Backend(format!("etcd canceled the watch: {}", response.cancel_reason())));
            }
            if response.created() {
                *backoff = MIN_BACKOFF;
                self.check_replay();
                continue;
            }
            let events: Vec<RawEvent> = response
                .events()
                .iter()
                .filter_map(|event| {
                    let kind = match event.event_type() {
                        EventType::Put => EtcdKind::Put,
                        EventType::Delete => EtcdKind::Delete,
                    };
                    let Some(kv) = event.kv() else {
                        tracing::error!("skipping etcd event without a key-value");
                        return None;
                    };
                    Some((kind, Kv::from(kv), event.prev_kv().map(Kv::from)))
                })
                .collect();
            // A response without events is a progress notification: every change up to its
            // header revision has been sent.
            let progress = if response.events().is_empty() && self.replay.is_none() {
                response.header().and_then(|h| Revision::try_from(h.revision()).ok())
            } else {
                None
            };
            self.cache.apply(events, progress);
            self.check_replay();
        }
    }

    /// Ends the replay once the cache holds the state at its end, moving the cache there.
    fn check_replay(&mut self) {
        if let Some(replay) = self.replay
            && self.cache.holds(replay.last_put, replay.count)
        {
            self.cache.apply(Vec::new(), Some(replay.to));
            self.replay = None;
        }
    }
}

/// Completes when a progress notification should be requested: some consistent read is
/// waiting (see [`Cache::progress_wanted`]) and the period since the last request has passed
/// (the first request after a quiet time goes out at once). Both waits are cancel-safe, so it can
/// lose a `select!` to a watch message.
async fn progress_due(wanted: &mut watch::Receiver<usize>, ticks: &mut Interval) {
    if wanted.wait_for(|waiting| *waiting > 0).await.is_err() {
        // The cache is gone, and with it every reader that could wait.
        std::future::pending::<()>().await;
    }
    ticks.tick().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_exact_from_3_4_31_and_3_5_13() {
        let cases = [
            ("3.4.23", Some(false)),
            ("3.4.30", Some(false)),
            ("3.4.31", Some(true)),
            ("3.5.12", Some(false)),
            ("3.5.13", Some(true)),
            ("3.5.21", Some(true)),
            ("3.6.0", Some(true)),
            ("3.6.0-rc.1", Some(true)),
            ("v3.5.13", Some(true)),
            ("3.3.27", Some(false)),
            ("2.3.8", Some(false)),
            ("4.0.0", Some(true)),
            ("3.5", None),
            ("", None),
            ("not a version", None),
        ];
        for (version, want) in cases {
            assert_eq!(exact_progress(version), want, "{version}");
        }
    }

    #[test]
    fn range_end_is_the_next_prefix() {
        let cases: [(&[u8], &[u8]); 5] =
            [(b"/registry/", b"/registry0"), (b"a", b"b"), (b"a\xff", b"b"), (b"\xff\xff", b"\x00"), (b"", b"\x00")];
        for (prefix, want) in cases {
            assert_eq!(range_end(prefix), want, "{prefix:?}");
        }
    }
}
