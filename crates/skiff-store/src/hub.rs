//! The live side of watches: changes fanned out by key prefix, so a change wakes only the watches
//! whose prefix it falls under (kube-apiserver keeps one watch cache per resource for the same
//! reason). Without it every write woke every watch of every resource in the process, only for
//! most of them to drop the event.
//!
//! Watches of the same prefix share one channel. A channel is made by the first watch of its
//! prefix and forgotten at the first send after its last watch is gone, so the channels' buffers
//! (each `capacity` slots, allocated in full) exist only for prefixes somebody watches.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::broadcast;

use crate::Event;

/// The default capacity of a prefix's channel. Each channel allocates all its slots (40 to 48 bytes
/// each) when it is made, and a server at rest watches several prefixes (the garbage collector
/// watches every resource: with 16,384 slots per channel `skiff server --no-agent` measured 6.3 MiB
/// more at rest, some eight to ten channels), so this is kept small: 256 slots are 10 to 12 KiB. A
/// watch that falls further behind its prefix catches up from the store's history (100,000
/// changes by default), which costs a copy of what it missed, not a lost event.
pub(crate) const DEFAULT_CAPACITY: usize = 256;

pub(crate) struct Hub {
    capacity: usize,
    channels: Mutex<Vec<Channel>>,
}

struct Channel {
    prefix: Box<str>,
    sender: broadcast::Sender<Arc<Event>>,
}

impl Hub {
    /// A hub whose channels each hold `capacity` events (at least 1): a watch that falls that many
    /// events of its prefix behind sees `RecvError::Lagged`.
    pub fn new(capacity: usize) -> Hub {
        Hub { capacity: capacity.max(1), channels: Mutex::new(Vec::new()) }
    }

    /// The live changes under `prefix` (`""`: every change) from the next [`send`](Hub::send) on.
    pub fn subscribe(&self, prefix: &str) -> broadcast::Receiver<Arc<Event>> {
        let mut channels = self.channels.lock();
        if let Some(channel) = channels.iter().find(|c| &*c.prefix == prefix) {
            return channel.sender.subscribe();
        }
        let (sender, receiver) = broadcast::channel(self.capacity);
        channels.push(Channel { prefix: prefix.into(), sender });
        receiver
    }

    /// Sends each event, in order, to the channels of the prefixes its key falls under.
    pub fn send<'a>(&self, events: impl IntoIterator<Item = &'a Arc<Event>>) {
        let mut channels = self.channels.lock();
        channels.retain(|c| c.sender.receiver_count() > 0);
        if channels.is_empty() {
            return;
        }
        for event in events {
            for channel in channels.iter().filter(|c| event.key.starts_with(&*c.prefix)) {
                // An error only means the last receiver went away since the retain above.
                let _ = channel.sender.send(event.clone());
            }
        }
    }

    /// How many prefixes have a channel (some of whose watches may have gone since the last send).
    #[cfg(test)]
    pub fn channels(&self) -> usize {
        self.channels.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventKind, Json};
    use broadcast::error::TryRecvError;

    fn event(rev: u64, key: &str) -> Arc<Event> {
        Arc::new(Event {
            kind: EventKind::Added,
            rev,
            key: Arc::from(key),
            object: Json::encode(&serde_json::json!({})),
            prev: None,
        })
    }

    fn received(rx: &mut broadcast::Receiver<Arc<Event>>) -> Vec<u64> {
        std::iter::from_fn(|| rx.try_recv().ok().map(|e| e.rev)).collect()
    }

    #[test]
    fn each_watch_gets_only_the_changes_under_its_prefix_in_order() {
        let hub = Hub::new(16);
        let mut pods = hub.subscribe("/core/pods/");
        let mut pods_in_a = hub.subscribe("/core/pods/a/");
        let mut everything = hub.subscribe("");
        let mut pods_again = hub.subscribe("/core/pods/");
        assert_eq!(hub.channels(), 3, "watches of one prefix share a channel");
        let events = [
            event(1, "/core/pods/a/x"),
            event(2, "/core/configmaps/a/x"),
            event(3, "/core/pods/b/y"),
            event(4, "/core/podsx"),
        ];
        hub.send(&events);
        assert_eq!(received(&mut pods), [1, 3]);
        assert_eq!(received(&mut pods_again), [1, 3]);
        assert_eq!(received(&mut pods_in_a), [1]);
        assert_eq!(received(&mut everything), [1, 2, 3, 4]);
    }

    #[test]
    fn a_channel_goes_with_its_last_watch() {
        let hub = Hub::new(16);
        let first = hub.subscribe("/core/pods/");
        let mut second = hub.subscribe("/core/pods/");
        drop(first);
        hub.send(&[event(1, "/core/pods/a/x")]);
        assert_eq!(hub.channels(), 1, "one watch is left");
        assert_eq!(received(&mut second), [1]);
        drop(second);
        hub.send(&[event(2, "/core/pods/a/x")]);
        assert_eq!(hub.channels(), 0);
        let mut later = hub.subscribe("/core/pods/");
        assert!(matches!(later.try_recv(), Err(TryRecvError::Empty)), "a new channel starts empty");
    }

    #[test]
    fn a_watch_that_falls_behind_its_own_prefix_lags() {
        let hub = Hub::new(2);
        let mut pods = hub.subscribe("/core/pods/");
        let mut maps = hub.subscribe("/core/configmaps/");
        let events: Vec<_> = (1..=5).map(|rev| event(rev, "/core/configmaps/a/x")).collect();
        hub.send(&events);
        assert!(matches!(pods.try_recv(), Err(TryRecvError::Empty)), "other prefixes' changes do not fill it");
        assert!(matches!(maps.try_recv(), Err(TryRecvError::Lagged(3))));
        assert_eq!(received(&mut maps), [4, 5]);
    }

    #[test]
    fn dropping_the_hub_closes_its_channels() {
        let hub = Hub::new(4);
        let mut pods = hub.subscribe("/core/pods/");
        drop(hub);
        assert!(matches!(pods.try_recv(), Err(TryRecvError::Closed)));
    }
}
