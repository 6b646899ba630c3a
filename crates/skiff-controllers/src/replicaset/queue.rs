//! A work queue of keys with client-go's guarantees (`util/workqueue`): a key queued many times is
//! processed once; a key is never processed by two workers at once (re-adds while processing wait for
//! `done`); delayed adds; per-key exponential back-off for failed syncs.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// First retry delay of a failing key (`DefaultTypedControllerRateLimiter`'s 5 ms).
pub const BASE_DELAY: Duration = Duration::from_millis(5);
/// Longest retry delay (1000 s).
pub const MAX_DELAY: Duration = Duration::from_secs(1000);

#[derive(Debug)]
struct Inner<K> {
    queue: VecDeque<K>,
    /// Queued and not yet handed to a worker.
    dirty: HashSet<K>,
    /// Handed to a worker, not yet `done`.
    processing: HashSet<K>,
    failures: HashMap<K, u32>,
    shutting_down: bool,
}

/// The queue; share it as `Arc<WorkQueue<K>>`.
#[derive(Debug)]
pub struct WorkQueue<K> {
    inner: Mutex<Inner<K>>,
    notify: Notify,
}

/// The delay before the `failures`-th retry: 5 ms · 2^failures, at most 1000 s.
pub fn backoff(failures: u32) -> Duration {
    let factor = 2u32.checked_pow(failures).unwrap_or(u32::MAX);
    BASE_DELAY.checked_mul(factor).map_or(MAX_DELAY, |d| d.min(MAX_DELAY))
}

impl<K: Clone + Eq + Hash + Send + Sync + 'static> WorkQueue<K> {
    pub fn new() -> Arc<WorkQueue<K>> {
        Arc::new(WorkQueue {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                failures: HashMap::new(),
                shutting_down: false,
            }),
            notify: Notify::new(),
        })
    }

    /// Queues `key` unless it is already queued; a key being processed is queued again when done.
    pub fn add(&self, key: K) {
        let mut inner = self.inner.lock();
        if inner.shutting_down || !inner.dirty.insert(key.clone()) {
            return;
        }
        if !inner.processing.contains(&key) {
            inner.queue.push_back(key);
            drop(inner);
            self.notify.notify_one();
        }
    }

    /// Queues `key` after `delay` (from a timer task; needs a tokio runtime).
    pub fn add_after(self: &Arc<Self>, key: K, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let queue = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(key);
        });
    }

    /// Queues `key` after its back-off, which doubles with each failure until [`forget`](Self::forget).
    pub fn add_rate_limited(self: &Arc<Self>, key: K) {
        let failures = {
            let mut inner = self.inner.lock();
            let n = inner.failures.entry(key.clone()).or_insert(0);
            let current = *n;
            *n = n.saturating_add(1);
            current
        };
        self.add_after(key, backoff(failures));
    }

    /// Resets the back-off of `key` after a successful sync.
    pub fn forget(&self, key: &K) {
        self.inner.lock().failures.remove(key);
    }

    /// The number of failures recorded for `key`.
    pub fn failures(&self, key: &K) -> u32 {
        self.inner.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// The next key to process, waiting for one; `None` once shut down.
    pub async fn get(&self) -> Option<K> {
        loop {
            let notified = self.notify.notified();
            {
                let mut inner = self.inner.lock();
                if inner.shutting_down {
                    return None;
                }
                if let Some(key) = inner.queue.pop_front() {
                    inner.dirty.remove(&key);
                    inner.processing.insert(key.clone());
                    let more = !inner.queue.is_empty();
                    drop(inner);
                    if more {
                        // Let another idle worker pick up the next key.
                        self.notify.notify_one();
                    }
                    return Some(key);
                }
            }
            notified.await;
        }
    }

    /// Marks `key` processed; if it was added meanwhile it is queued again.
    pub fn done(&self, key: &K) {
        let mut inner = self.inner.lock();
        inner.processing.remove(key);
        if inner.dirty.contains(key) {
            inner.queue.push_back(key.clone());
            drop(inner);
            self.notify.notify_one();
        }
    }

    /// Stops the queue: `get` returns `None` from now on.
    pub fn shutdown(&self) {
        self.inner.lock().shutting_down = true;
        self.notify.notify_waiters();
    }

    /// Keys waiting to be processed.
    pub fn len(&self) -> usize {
        self.inner.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(5));
        assert_eq!(backoff(1), Duration::from_millis(10));
        assert_eq!(backoff(10), Duration::from_millis(5120));
        assert_eq!(backoff(30), MAX_DELAY);
        assert_eq!(backoff(u32::MAX), MAX_DELAY);
    }

    #[tokio::test]
    async fn duplicates_collapse_and_processing_keys_wait() {
        let q: Arc<WorkQueue<String>> = WorkQueue::new();
        q.add("a".into());
        q.add("a".into());
        q.add("b".into());
        assert_eq!(q.len(), 2);
        let a = q.get().await.expect("a");
        assert_eq!(a, "a");
        // Re-added while processing: not handed out again until done.
        q.add("a".into());
        assert_eq!(q.get().await.as_deref(), Some("b"));
        assert!(q.is_empty());
        q.done(&a);
        assert_eq!(q.get().await.as_deref(), Some("a"));
        q.done(&"a".to_string());
        q.done(&"b".to_string());
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn delayed_and_rate_limited_adds() {
        let q: Arc<WorkQueue<String>> = WorkQueue::new();
        q.add_after("late".into(), Duration::from_millis(200));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(q.is_empty());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(q.len(), 1);
        let k = q.get().await.expect("late");
        q.done(&k);
        q.add_rate_limited(k.clone());
        q.add_rate_limited(k.clone());
        assert_eq!(q.failures(&k), 2);
        q.forget(&k);
        assert_eq!(q.failures(&k), 0);
    }

    #[tokio::test]
    async fn shutdown_wakes_waiting_workers() {
        let q: Arc<WorkQueue<String>> = WorkQueue::new();
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.get().await });
        tokio::task::yield_now().await;
        q.shutdown();
        assert_eq!(waiter.await.expect("join"), None);
        q.add("x".into());
        assert!(q.is_empty());
    }
}
