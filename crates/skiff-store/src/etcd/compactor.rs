//! Background compaction of etcd's history, as kube-apiserver does it: every interval, compact to
//! the revision seen one interval earlier, so a watch can always resume from a revision less than
//! one interval old.
//!
//! Several API servers on one etcd coordinate through the key `compact_rev_key` (outside the
//! prefix; the same key kube-apiserver uses): each tick, a server claims the round with a
//! transaction on that key's version; only the winner compacts, the others learn from the key's
//! value which revision was compacted and catch up their version.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Compare, CompareOp, KvClient, Txn, TxnOp, TxnOpResponse};

use super::cache::Cache;
use super::codec;
use super::endpoints::retried;
use crate::StoreError;

/// The key the servers coordinate through (kube-apiserver's name, so they coordinate with it too).
pub(crate) const COMPACT_REV_KEY: &str = "compact_rev_key";

/// The compactor's memory between ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Round {
    /// The version of `COMPACT_REV_KEY` this server expects (how many rounds have been claimed).
    pub version: i64,
    /// The revision seen at the previous tick: what this server compacts to when it wins.
    pub rev: i64,
}

/// What one tick did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tick {
    pub next: Round,
    /// The revision etcd is now compacted to, as far as this server knows (its own compaction or
    /// the value another server claimed the round with).
    pub compacted: Option<i64>,
}

/// Runs one tick: claims the round, and compacts to `round.rev` if this server won (except on
/// the first round, whose revision is 0).
pub(crate) async fn tick(kv: &KvClient, round: Round, timeout: Duration) -> Result<Tick, StoreError> {
    let txn = Txn::new()
        .when([Compare::version(COMPACT_REV_KEY, CompareOp::Equal, round.version)])
        .and_then([TxnOp::put(COMPACT_REV_KEY, round.rev.to_string(), None)])
        .or_else([TxnOp::get(COMPACT_REV_KEY, None)]);
    let response = retried(timeout, "compaction claim", || {
        let (mut kv, txn) = (kv.clone(), txn.clone());
        async move { kv.txn(txn).await }
    })
    .await?;
    let current = response
        .header()
        .map(|h| h.revision())
        .ok_or_else(|| StoreError::Backend("etcd transaction answer has no header".to_owned()))?;
    if !response.succeeded() {
        // Another server claimed this round: take its version, and its revision as compacted.
        let claimed = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get.kvs().first().map(|kv| (kv.version(), kv.value().to_vec())),
            _ => None,
        });
        let (version, value) = claimed.unwrap_or_default();
        let compacted = std::str::from_utf8(&value).ok().and_then(|v| v.parse::<i64>().ok()).filter(|&r| r > 0);
        return Ok(Tick { next: Round { version, rev: current }, compacted });
    }
    let next = Round { version: round.version + 1, rev: current };
    if round.rev <= 0 {
        return Ok(Tick { next, compacted: None });
    }
    match retried(timeout, "compaction", || {
        let mut kv = kv.clone();
        async move { kv.compact(round.rev, None).await }
    })
    .await
    {
        Ok(_) => Ok(Tick { next, compacted: Some(round.rev) }),
        // Someone compacted further already: fine.
        Err(StoreError::Backend(m)) if m.contains("required revision has been compacted") => {
            Ok(Tick { next, compacted: Some(round.rev) })
        }
        Err(e) => {
            tracing::warn!(error = %e, revision = round.rev, "etcd compaction failed");
            Ok(Tick { next, compacted: None })
        }
    }
}

/// Compacts every `interval` until the task is aborted, trimming the cache's history to what etcd
/// still holds.
pub(crate) async fn run(kv: KvClient, cache: Arc<Cache>, interval: Duration, timeout: Duration) {
    let mut round = Round::default();
    loop {
        tokio::time::sleep(interval).await;
        match tick(&kv, round, timeout).await {
            Ok(tick) => {
                round = tick.next;
                if let Some(compacted) = tick.compacted {
                    tracing::debug!(compacted, "etcd compacted");
                    if let Ok(compacted) = codec::revision(compacted) {
                        cache.trim(compacted);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "etcd compaction round failed"),
        }
    }
}
