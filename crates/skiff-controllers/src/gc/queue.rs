//! A de-duplicating work queue with the guarantees of client-go's `workqueue`: an item waits in the
//! queue at most once; an item is handed to one worker at a time, and one added again while it is
//! being processed is handed out again once that worker is done; failed items come back after an
//! exponential back-off.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// First retry delay; doubles on each consecutive failure of the same item.
const BASE_DELAY: Duration = Duration::from_millis(10);
/// Longest retry delay.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// The delay before retrying an item that has failed `failures` times in a row (1 for the first).
pub fn backoff_delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    BASE_DELAY.saturating_mul(1 << exp).min(MAX_DELAY)
}

#[derive(Debug)]
struct State<T> {
    queue: VecDeque<T>,
    /// Items waiting to be processed (in `queue`, or to be put back there when their worker is done).
    dirty: HashSet<T>,
    processing: HashSet<T>,
    failures: HashMap<T, u32>,
}

/// The queue. Share it as `Arc<WorkQueue<T>>`.
#[derive(Debug)]
pub struct WorkQueue<T> {
    state: Mutex<State<T>>,
    notify: Notify,
}

impl<T: Hash + Eq + Clone + Send + 'static> Default for WorkQueue<T> {
    fn default() -> Self {
        WorkQueue::new()
    }
}

impl<T: Hash + Eq + Clone + Send + 'static> WorkQueue<T> {
    pub fn new() -> WorkQueue<T> {
        WorkQueue {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                failures: HashMap::new(),
            }),
            notify: Notify::new(),
        }
    }

    /// Adds an item unless it is already waiting.
    pub fn add(&self, item: T) {
        let mut s = self.state.lock();
        if !s.dirty.insert(item.clone()) {
            return;
        }
        if s.processing.contains(&item) {
            return;
        }
        s.queue.push_back(item);
        drop(s);
        self.notify.notify_one();
    }

    /// The next item; the caller must call [`WorkQueue::done`] with it.
    pub async fn get(&self) -> T {
        loop {
            {
                let mut s = self.state.lock();
                if let Some(item) = s.queue.pop_front() {
                    s.dirty.remove(&item);
                    s.processing.insert(item.clone());
                    let more = !s.queue.is_empty();
                    drop(s);
                    if more {
                        // Pass the wake-up on, so idle workers drain a burst together.
                        self.notify.notify_one();
                    }
                    return item;
                }
            }
            // `notify_one` stores a permit when nobody waits, so an add between the check above
            // and this await is not lost.
            self.notify.notified().await;
        }
    }

    /// Marks an item processed; if it was added meanwhile, it goes back in the queue.
    pub fn done(&self, item: &T) {
        let mut s = self.state.lock();
        s.processing.remove(item);
        if s.dirty.contains(item) {
            s.queue.push_back(item.clone());
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Forgets an item's failures (it succeeded).
    pub fn forget(&self, item: &T) {
        self.state.lock().failures.remove(item);
    }

    /// Counts a failure of `item` and adds it again after its back-off delay.
    pub fn retry_later(self: &Arc<Self>, item: T) -> Duration {
        let delay = {
            let mut s = self.state.lock();
            let n = s.failures.entry(item.clone()).or_insert(0);
            *n += 1;
            backoff_delay(*n)
        };
        let queue = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(q) = queue.upgrade() {
                q.add(item);
            }
        });
        delay
    }

    /// How many items wait to be handed out.
    pub fn len(&self) -> usize {
        self.state.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let cases = [(0, 10), (1, 10), (2, 20), (3, 40), (8, 1280), (12, 20480), (13, 30000), (100, 30000)];
        for (failures, ms) in cases {
            assert_eq!(backoff_delay(failures), Duration::from_millis(ms), "{failures} failures");
        }
    }

    #[tokio::test]
    async fn an_item_waits_at_most_once() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().await, "a");
        assert_eq!(q.get().await, "b");
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn an_item_added_while_processing_comes_back_after_done() {
        let q = WorkQueue::new();
        q.add("a");
        let a = q.get().await;
        q.add("a");
        // Not handed to a second worker while the first holds it.
        assert!(q.is_empty());
        q.add("a");
        q.done(&a);
        assert_eq!(q.len(), 1);
        assert_eq!(q.get().await, "a");
        q.done(&"a");
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn get_waits_for_an_add() {
        let q = Arc::new(WorkQueue::new());
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.get().await }
        });
        tokio::task::yield_now().await;
        q.add(7);
        assert_eq!(waiter.await.expect("join"), 7);
    }

    #[tokio::test]
    async fn retry_comes_back_after_the_backoff() {
        let q = Arc::new(WorkQueue::new());
        q.add("a");
        let a = q.get().await;
        assert_eq!(q.retry_later(a), Duration::from_millis(10));
        q.done(&a);
        assert!(q.is_empty());
        assert_eq!(q.get().await, "a");
        assert_eq!(q.retry_later("a"), Duration::from_millis(20));
        q.done(&"a");
        q.forget(&"a");
        assert_eq!(q.get().await, "a");
        assert_eq!(q.retry_later("a"), Duration::from_millis(10), "forget resets the count");
    }
}
