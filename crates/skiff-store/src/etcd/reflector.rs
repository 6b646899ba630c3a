//! Keeping the [`Cache`] in step with etcd: a consistent list of the prefix (paged, at one
//! revision), then one etcd watch of the prefix from the next revision with `prev_kv`, whose
//! events the cache applies. When the watch breaks (etcd restarted, connection lost) it is
//! re-opened from the revision after the cache's, so nothing is missed; when that revision has been
//! compacted meanwhile, the prefix is listed again and the cache reset.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, GetOptions, KvClient, WatchClient, WatchOptions};

use super::cache::{Cache, RawEvent};
use super::codec::{self, EtcdKind, Keys, Kv};
use crate::{Object, Revision, StoreError};

/// Keys per page of the initial list.
const PAGE: i64 = 500;
/// Backoff between attempts to re-open a broken watch.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

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

/// Every object under the prefix, at one revision (the revision of the first page), read in pages.
/// An entry that cannot be read is logged and left out.
pub(crate) async fn list(
    kv: &KvClient,
    keys: &Keys,
    timeout: Duration,
) -> Result<(Revision, imbl::OrdMap<Arc<str>, Object>), StoreError> {
    let prefix = keys.prefix().as_bytes().to_vec();
    let end = range_end(&prefix);
    let mut objects = imbl::OrdMap::new();
    let mut start = prefix;
    let mut at: Option<i64> = None;
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
                    match list(&self.kv, &self.keys, self.timeout).await {
                        Ok((rev, objects)) => {
                            self.cache.reset(rev, objects);
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
        let mut stream = timed(self.timeout, "watch", self.watch.watch(prefix, Some(options))).await?;
        loop {
            let response = stream
                .message()
                .await
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
            let progress = if response.events().is_empty() {
                response.header().and_then(|h| Revision::try_from(h.revision()).ok())
            } else {
                None
            };
            self.cache.apply(events, progress);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_end_is_the_next_prefix() {
        let cases: [(&[u8], &[u8]); 5] =
            [(b"/registry/", b"/registry0"), (b"a", b"b"), (b"a\xff", b"b"), (b"\xff\xff", b"\x00"), (b"", b"\x00")];
        for (prefix, want) in cases {
            assert_eq!(range_end(prefix), want, "{prefix:?}");
        }
    }
}
