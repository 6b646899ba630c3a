//! Per-key exponential back-off, as client-go's `flowcontrol.Backoff` that the kubelet uses for
//! crash loops and image pulls (no jitter: the kubelet builds it with none).
//!
//! The clock is a parameter: every method takes `now`, so the plan stays pure and tests choose time.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

/// The kubelet's `backOffPeriod`.
pub const INITIAL: Duration = Duration::from_secs(10);
/// The kubelet's `MaxContainerBackOff`.
pub const MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    backoff: Duration,
    last_update: Timestamp,
}

/// Back-off delays by key (for containers: pod UID, container name and spec hash).
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(INITIAL, MAX)
    }
}

fn since(now: Timestamp, then: Timestamp) -> Duration {
    let d = now.as_duration().saturating_sub(then.as_duration());
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { initial, max, entries: HashMap::new() }
    }

    /// The key of a container's back-off entry (upstream's `GetStableKey`).
    pub fn container_key(pod_uid: &str, container: &str, hash: u64) -> String {
        format!("{pod_uid}_{container}_{hash:x}")
    }

    /// An entry is stale once `event_time` is more than twice the maximum after its last update:
    /// a container that stayed up that long starts over at the initial delay.
    fn expired(&self, event_time: Timestamp, entry: &Entry) -> bool {
        since(event_time, entry.last_update) > self.max * 2
    }

    /// The current delay for `key` (zero when none).
    pub fn get(&self, key: &str) -> Duration {
        self.entries.get(key).map_or(Duration::ZERO, |e| e.backoff)
    }

    /// Whether `now` is still within the delay that started at `event_time` (the last exit).
    pub fn in_backoff_since(&self, key: &str, event_time: Timestamp, now: Timestamp) -> bool {
        match self.entries.get(key) {
            None => false,
            Some(e) if self.expired(event_time, e) => false,
            Some(e) => since(now, event_time) < e.backoff,
        }
    }

    /// Records one more retry: the first (or one after a long quiet) sets the initial delay, each
    /// next one doubles it up to the maximum.
    pub fn next(&mut self, key: &str, event_time: Timestamp, now: Timestamp) {
        let (initial, max) = (self.initial, self.max);
        let fresh = self.entries.get(key).is_none_or(|e| self.expired(event_time, e));
        let entry = self.entries.entry(key.to_string()).or_insert(Entry { backoff: initial, last_update: now });
        entry.backoff = if fresh { initial } else { (entry.backoff * 2).min(max) };
        entry.last_update = now;
    }

    /// Forgets entries not updated for twice the maximum.
    pub fn gc(&mut self, now: Timestamp) {
        let limit = self.max * 2;
        self.entries.retain(|_, e| since(now, e.last_update) <= limit);
    }

    /// Forgets every entry whose key starts with `prefix` (a pod UID when the pod is gone).
    pub fn forget_prefix(&mut self, prefix: &str) {
        self.entries.retain(|k, _| !k.starts_with(prefix));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_750_000_000 + s).expect("time")
    }

    #[test]
    fn crash_loop_sequence() {
        // A container that exits right after each start: restart #1 is immediate, then 10, 20, 40,
        // 80, 160, 300, 300 s.
        let mut b = Backoff::default();
        let key = "u_c_1";
        let mut now = 0i64;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let exit = now; // exits at once
            let mut waited = 0;
            while b.in_backoff_since(key, t(exit), t(now)) {
                now += 1;
                waited += 1;
            }
            waits.push(waited);
            b.next(key, t(exit), t(now));
        }
        assert_eq!(waits, vec![0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.get(key), MAX);
    }

    #[test]
    fn resets_after_ten_minutes_up() {
        let mut b = Backoff::default();
        b.next("k", t(0), t(0));
        b.next("k", t(10), t(20));
        assert_eq!(b.get("k"), Duration::from_secs(20));
        // Ran for 601 s after the last restart: the entry has expired.
        assert!(!b.in_backoff_since("k", t(621), t(622)));
        b.next("k", t(621), t(622));
        assert_eq!(b.get("k"), INITIAL);
    }

    #[test]
    fn gc_and_forget() {
        let mut b = Backoff::default();
        b.next("pod1_a_1", t(0), t(0));
        b.next("pod2_a_1", t(0), t(500));
        b.gc(t(700));
        assert_eq!(b.get("pod1_a_1"), Duration::ZERO);
        assert_eq!(b.get("pod2_a_1"), INITIAL);
        b.forget_prefix("pod2_");
        assert_eq!(b.get("pod2_a_1"), Duration::ZERO);
    }
}
