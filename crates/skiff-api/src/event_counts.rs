//! The repeat counts an Event recorder keeps (client-go's `EventCorrelator`): how many times each
//! Event, by namespace and name, has been written, so a repeat bumps `count` instead of creating
//! another Event. Bounded as upstream's cache is: the least recently used entry goes first.

use hashlink::LruCache;

/// How many Events a recorder remembers (client-go's `maxLruCacheEntries`).
pub const CAPACITY: usize = 4096;

/// Repeat counts of the most recently written Events.
pub struct EventCounts {
    seen: LruCache<(String, String), i32>,
}

impl Default for EventCounts {
    fn default() -> Self {
        EventCounts::with_capacity(CAPACITY)
    }
}

impl EventCounts {
    pub fn with_capacity(capacity: usize) -> EventCounts {
        EventCounts { seen: LruCache::new(capacity.max(1)) }
    }

    /// Counts one more write of the Event `name` in `namespace` and returns its count so far
    /// (1 for an Event not seen, or no longer remembered).
    pub fn bump(&mut self, namespace: &str, name: &str) -> i32 {
        let key = (namespace.to_string(), name.to_string());
        match self.seen.get_mut(&key) {
            Some(count) => {
                *count = count.saturating_add(1);
                *count
            }
            None => {
                self.seen.insert(key, 1);
                1
            }
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_count_up_and_the_least_recently_used_is_forgotten_first() {
        let mut counts = EventCounts::with_capacity(3);
        assert_eq!(counts.bump("default", "a"), 1);
        assert_eq!(counts.bump("default", "a"), 2);
        assert_eq!(counts.bump("other", "a"), 1, "the namespace is part of the key");
        assert_eq!(counts.bump("default", "b"), 1);
        assert_eq!(counts.bump("default", "a"), 3, "a is now the most recently used");
        assert_eq!(counts.bump("default", "c"), 1, "evicts other/a, the least recently used");
        assert_eq!(counts.len(), 3);
        assert_eq!(counts.bump("other", "a"), 1, "forgotten: counted anew");
        assert_eq!(counts.bump("default", "a"), 4);
    }

    #[test]
    fn the_default_holds_client_gos_bound() {
        let mut counts = EventCounts::default();
        for i in 0..CAPACITY + 100 {
            counts.bump("default", &format!("pod-{i}.event"));
        }
        assert_eq!(counts.len(), CAPACITY);
    }
}
