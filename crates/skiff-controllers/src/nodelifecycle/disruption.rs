//! Zone disruption and the rate-limited NoExecute tainting queue (`node_lifecycle_controller.go`:
//! `ComputeZoneState`, `handleDisruption`, `setLimiterInZone`; `scheduler/rate_limited_queue.go`).
//!
//! Nodes are grouped in zones (region and zone labels). Each zone has a queue of nodes waiting for
//! a NoExecute taint, drained through a token bucket (burst 1) at `node_eviction_rate` nodes per
//! second; at `secondary_node_eviction_rate` (large zones) or not at all (small zones) when the
//! zone is partially disrupted; and not at all when *every* zone is fully disrupted (no Ready node
//! anywhere: more likely a control-plane or network problem than dead nodes), in which case the
//! NoExecute taints already placed are removed too.

use std::collections::{BTreeMap, HashSet, VecDeque};

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::Config;

/// The label that excludes a node from the zone health computation.
pub const EXCLUDE_DISRUPTION_LABEL: &str = "node.kubernetes.io/exclude-disruption";

/// The state of one zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneState {
    Initial,
    Normal,
    PartialDisruption,
    FullDisruption,
}

/// The zone key of a node (`component-helpers/node/topology: GetZoneKey`): region and zone labels
/// (stable first, then the deprecated beta ones) joined by `":\0:"`; empty when both are missing.
pub fn zone_key(node: &Node) -> String {
    let labels = node.metadata.labels.as_ref();
    let get = |stable: &str, beta: &str| {
        labels
            .and_then(|l| l.get(stable).filter(|v| !v.is_empty()).or_else(|| l.get(beta)))
            .cloned()
            .unwrap_or_default()
    };
    let region = get("topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region");
    let zone = get("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone");
    if region.is_empty() && zone.is_empty() { String::new() } else { format!("{region}:\x00:{zone}") }
}

/// Whether the node is left out of the zone health computation.
pub fn excluded(node: &Node) -> bool {
    node.metadata.labels.as_ref().is_some_and(|l| l.contains_key(EXCLUDE_DISRUPTION_LABEL))
}

/// The number of not-ready nodes and the state of a zone, from its nodes' Ready statuses (`None`:
/// no Ready condition, counted as not ready).
pub fn zone_state(ready: &[Option<String>], unhealthy_threshold: f64) -> (usize, ZoneState) {
    let ready_nodes = ready.iter().filter(|s| s.as_deref() == Some("True")).count();
    let not_ready = ready.len() - ready_nodes;
    let state = if ready_nodes == 0 && not_ready > 0 {
        ZoneState::FullDisruption
    } else if not_ready > 2 && not_ready as f64 / ready.len() as f64 >= unhealthy_threshold {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    };
    (not_ready, state)
}

/// A token bucket with a burst of one (`flowcontrol.NewTokenBucketRateLimiter(qps, 1)`); a rate of
/// zero never accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    qps: f64,
    tokens: f64,
    last: Timestamp,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(qps: f64, now: Timestamp) -> TokenBucket {
        TokenBucket { qps, tokens: 1.0, last: now }
    }

    pub fn qps(&self) -> f64 {
        self.qps
    }

    fn refill(&mut self, now: Timestamp) {
        let elapsed = now.duration_since(self.last).as_secs_f64().max(0.0);
        self.tokens = (self.tokens + elapsed * self.qps).min(1.0);
        self.last = now;
    }

    /// Takes a token if one is available.
    pub fn try_accept(&mut self, now: Timestamp) -> bool {
        if self.qps <= 0.0 {
            return false;
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Changes the rate (`SwapLimiter`): a new full bucket, drained if the old one had no token.
    pub fn swap(&mut self, qps: f64, now: Timestamp) {
        if self.qps == qps {
            return;
        }
        let had_token = self.try_accept(now);
        *self = TokenBucket::new(qps, now);
        if qps > 0.0 && !had_token {
            self.try_accept(now);
        }
    }
}

/// The nodes of one zone waiting for a NoExecute taint (`RateLimitedTimedQueue`). A node stays
/// *known* after it has been processed, so it is not queued again until [`TaintQueue::remove`]d.
#[derive(Debug, Clone)]
pub struct TaintQueue {
    limiter: TokenBucket,
    queue: VecDeque<(String, Timestamp)>,
    known: HashSet<String>,
}

impl TaintQueue {
    pub fn new(qps: f64, now: Timestamp) -> TaintQueue {
        TaintQueue { limiter: TokenBucket::new(qps, now), queue: VecDeque::new(), known: HashSet::new() }
    }

    /// Queues `node` unless known; returns whether it was added.
    pub fn add(&mut self, node: &str, now: Timestamp) -> bool {
        if !self.known.insert(node.to_string()) {
            return false;
        }
        self.insert(node, now);
        true
    }

    /// Forgets `node`; returns whether it was known.
    pub fn remove(&mut self, node: &str) -> bool {
        self.queue.retain(|(n, _)| n != node);
        self.known.remove(node)
    }

    /// The next node due at `now` that the rate limiter lets through, taken off the queue (it stays
    /// known). A node not yet due does not use up a token.
    pub fn pop_ready(&mut self, now: Timestamp) -> Option<String> {
        let (_, at) = self.queue.front()?;
        if now < *at || !self.limiter.try_accept(now) {
            return None;
        }
        self.queue.pop_front().map(|(n, _)| n)
    }

    /// Puts a node whose tainting failed back, due at `at`.
    pub fn retry(&mut self, node: &str, at: Timestamp) {
        if self.known.contains(node) && !self.queue.iter().any(|(n, _)| n == node) {
            self.insert(node, at);
        }
    }

    /// Inserts in due-time order (after those due at the same time).
    fn insert(&mut self, node: &str, at: Timestamp) {
        let position = self.queue.iter().position(|(_, t)| *t > at).unwrap_or(self.queue.len());
        self.queue.insert(position, (node.to_string(), at));
    }

    pub fn swap_limiter(&mut self, qps: f64, now: Timestamp) {
        self.limiter.swap(qps, now);
    }

    pub fn qps(&self) -> f64 {
        self.limiter.qps()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// What [`Disruption::handle`] asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Nothing,
    /// Every zone just became fully disrupted: remove the NoExecute taints of every node.
    MarkAllReachable,
    /// Some node is Ready again after a full disruption: restart every node's probe at now.
    ResetProbes,
}

/// Zone states and tainting queues.
#[derive(Debug, Clone)]
pub struct Disruption {
    rate: f64,
    secondary_rate: f64,
    unhealthy_threshold: f64,
    large_cluster: usize,
    pub states: BTreeMap<String, ZoneState>,
    pub queues: BTreeMap<String, TaintQueue>,
}

impl Disruption {
    pub fn new(config: &Config) -> Disruption {
        Disruption {
            rate: config.node_eviction_rate,
            secondary_rate: config.secondary_node_eviction_rate,
            unhealthy_threshold: config.unhealthy_zone_threshold,
            large_cluster: config.large_cluster_size_threshold,
            states: BTreeMap::new(),
            queues: BTreeMap::new(),
        }
    }

    /// Starts tracking `zone` if it is new (`addPodEvictorForNewZone`).
    pub fn ensure_zone(&mut self, zone: &str, now: Timestamp) {
        if !self.states.contains_key(zone) {
            self.states.insert(zone.to_string(), ZoneState::Initial);
            self.queues.insert(zone.to_string(), TaintQueue::new(self.rate, now));
        }
    }

    /// The queue of `zone`, created if needed.
    pub fn queue(&mut self, zone: &str, now: Timestamp) -> &mut TaintQueue {
        let rate = self.rate;
        self.queues.entry(zone.to_string()).or_insert_with(|| TaintQueue::new(rate, now))
    }

    fn rate_for(&self, size: usize, state: ZoneState) -> Option<f64> {
        match state {
            ZoneState::Normal | ZoneState::FullDisruption => Some(self.rate),
            ZoneState::PartialDisruption => Some(if size > self.large_cluster { self.secondary_rate } else { 0.0 }),
            ZoneState::Initial => None,
        }
    }

    fn set_limiter(&mut self, zone: &str, size: usize, state: ZoneState, now: Timestamp) {
        if let Some(qps) = self.rate_for(size, state) {
            self.queue(zone, now).swap_limiter(qps, now);
        }
    }

    /// Updates zone states from this pass's Ready statuses per zone (`handleDisruption`).
    pub fn handle(&mut self, zones: &BTreeMap<String, Vec<Option<String>>>, now: Timestamp) -> Outcome {
        let mut new_states = BTreeMap::new();
        let mut all_are_fully = true;
        for (zone, ready) in zones {
            let (_, state) = zone_state(ready, self.unhealthy_threshold);
            all_are_fully &= state == ZoneState::FullDisruption;
            new_states.insert(zone.clone(), state);
            self.states.entry(zone.clone()).or_insert(ZoneState::Initial);
        }
        self.states.retain(|zone, _| zones.contains_key(zone));
        let all_were_fully = self.states.values().all(|s| *s == ZoneState::FullDisruption);
        if all_are_fully && all_were_fully {
            return Outcome::Nothing;
        }
        let zone_names: Vec<String> = self.states.keys().cloned().collect();
        if all_are_fully {
            for zone in &zone_names {
                self.queue(zone, now).swap_limiter(0.0, now);
                self.states.insert(zone.clone(), ZoneState::FullDisruption);
            }
            return Outcome::MarkAllReachable;
        }
        let size = |zone: &str| zones.get(zone).map(Vec::len).unwrap_or(0);
        if all_were_fully {
            for zone in &zone_names {
                let state = new_states.get(zone).copied().unwrap_or(ZoneState::Normal);
                self.set_limiter(zone, size(zone), state, now);
                self.states.insert(zone.clone(), state);
            }
            return Outcome::ResetProbes;
        }
        for zone in &zone_names {
            let state = new_states.get(zone).copied().unwrap_or(ZoneState::Normal);
            if self.states.get(zone) == Some(&state) {
                continue;
            }
            self.set_limiter(zone, size(zone), state, now);
            self.states.insert(zone.clone(), state);
        }
        Outcome::Nothing
    }
}

/// `t + secs` (fractional).
pub fn later(t: Timestamp, secs: f64) -> Timestamp {
    t.checked_add(SignedDuration::from_secs_f64(secs)).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(secs: f64) -> Timestamp {
        later(Timestamp::from_second(1_700_000_000).expect("timestamp"), secs)
    }

    fn statuses(list: &[&str]) -> Vec<Option<String>> {
        list.iter().map(|s| if s.is_empty() { None } else { Some(s.to_string()) }).collect()
    }

    #[test]
    fn zone_keys() {
        let node = |labels: serde_json::Value| -> Node {
            serde_json::from_value(json!({"metadata": {"name": "n", "labels": labels}})).expect("node")
        };
        assert_eq!(zone_key(&node(json!({}))), "");
        assert_eq!(
            zone_key(&node(json!({"topology.kubernetes.io/region": "r", "topology.kubernetes.io/zone": "z"}))),
            "r:\x00:z"
        );
        assert_eq!(zone_key(&node(json!({"failure-domain.beta.kubernetes.io/zone": "b"}))), ":\x00:b");
        assert!(excluded(&node(json!({"node.kubernetes.io/exclude-disruption": ""}))));
        assert!(!excluded(&node(json!({}))));
    }

    #[test]
    fn zone_states() {
        let cases: [(&[&str], (usize, ZoneState)); 6] = [
            (&["True"], (0, ZoneState::Normal)),
            (&["Unknown"], (1, ZoneState::FullDisruption)),
            (&["True", "Unknown"], (1, ZoneState::Normal)),
            (&["True", "Unknown", "False", ""], (3, ZoneState::PartialDisruption)),
            (&["True", "True", "Unknown", "False", ""], (3, ZoneState::PartialDisruption)),
            (&["True", "True", "True", "Unknown", "False", ""], (3, ZoneState::Normal)),
        ];
        for (ready, want) in cases {
            assert_eq!(zone_state(&statuses(ready), 0.55), want, "{ready:?}");
        }
        assert_eq!(zone_state(&[], 0.55), (0, ZoneState::Normal));
    }

    #[test]
    fn token_bucket_bursts_one_then_paces() {
        let mut b = TokenBucket::new(0.1, ts(0.0));
        assert!(b.try_accept(ts(0.0)));
        assert!(!b.try_accept(ts(5.0)));
        assert!(b.try_accept(ts(10.0)));
        assert!(!b.try_accept(ts(10.0)));
        b.swap(0.0, ts(30.0));
        assert!(!b.try_accept(ts(1000.0)), "a zero rate never accepts");
        let mut fresh = TokenBucket::new(0.0, ts(0.0));
        fresh.swap(0.1, ts(0.0));
        assert!(!fresh.try_accept(ts(0.0)), "swapping from an empty bucket starts drained");
        assert!(fresh.try_accept(ts(10.0)));
    }

    #[test]
    fn queue_is_unique_until_removed() {
        let mut q = TaintQueue::new(0.1, ts(0.0));
        assert!(q.add("a", ts(0.0)));
        assert!(!q.add("a", ts(0.0)));
        assert!(q.add("b", ts(0.0)));
        assert_eq!(q.pop_ready(ts(0.0)), Some("a".to_string()));
        assert_eq!(q.pop_ready(ts(1.0)), None, "rate limited");
        assert_eq!(q.pop_ready(ts(10.0)), Some("b".to_string()));
        assert!(!q.add("a", ts(11.0)), "processed nodes stay known");
        assert!(q.remove("a"));
        assert!(q.add("a", ts(11.0)));
        q.retry("b", ts(50.0));
        assert_eq!(q.pop_ready(ts(20.0)), Some("a".to_string()));
        assert_eq!(q.pop_ready(ts(40.0)), None, "b is due at 50");
        assert_eq!(q.pop_ready(ts(50.0)), Some("b".to_string()));
        assert!(q.is_empty());
    }

    fn zones(list: &[(&str, &[&str])]) -> BTreeMap<String, Vec<Option<String>>> {
        list.iter().map(|(z, r)| (z.to_string(), statuses(r))).collect()
    }

    #[test]
    fn full_disruption_stops_tainting_and_recovery_resets() {
        let mut d = Disruption::new(&Config::default());
        d.ensure_zone("", ts(0.0));
        assert_eq!(d.handle(&zones(&[("", &["True", "True"])]), ts(0.0)), Outcome::Nothing);
        assert_eq!(d.states.get(""), Some(&ZoneState::Normal));
        assert_eq!(d.handle(&zones(&[("", &["True", "Unknown"])]), ts(1.0)), Outcome::Nothing);
        assert_eq!(d.handle(&zones(&[("", &["Unknown", "Unknown"])]), ts(2.0)), Outcome::MarkAllReachable);
        assert_eq!(d.states.get(""), Some(&ZoneState::FullDisruption));
        assert_eq!(d.queues.get("").map(TaintQueue::qps), Some(0.0));
        assert_eq!(d.handle(&zones(&[("", &["Unknown", "Unknown"])]), ts(3.0)), Outcome::Nothing);
        assert_eq!(d.handle(&zones(&[("", &["True", "Unknown"])]), ts(4.0)), Outcome::ResetProbes);
        assert_eq!(d.states.get(""), Some(&ZoneState::Normal));
        assert_eq!(d.queues.get("").map(TaintQueue::qps), Some(0.1));
    }

    #[test]
    fn one_zone_down_among_healthy_ones_keeps_the_normal_rate() {
        let mut d = Disruption::new(&Config::default());
        d.ensure_zone("a", ts(0.0));
        d.ensure_zone("b", ts(0.0));
        let outcome = d.handle(&zones(&[("a", &["Unknown"]), ("b", &["True"])]), ts(1.0));
        assert_eq!(outcome, Outcome::Nothing);
        assert_eq!(d.states.get("a"), Some(&ZoneState::FullDisruption));
        assert_eq!(d.queues.get("a").map(TaintQueue::qps), Some(0.1));
    }

    #[test]
    fn partial_disruption_of_a_small_zone_stops_its_tainting() {
        let mut d = Disruption::new(&Config::default());
        d.ensure_zone("a", ts(0.0));
        let outcome = d.handle(&zones(&[("a", &["True", "Unknown", "Unknown", "Unknown"])]), ts(1.0));
        assert_eq!(outcome, Outcome::Nothing);
        assert_eq!(d.states.get("a"), Some(&ZoneState::PartialDisruption));
        assert_eq!(d.queues.get("a").map(TaintQueue::qps), Some(0.0));
        let mut big = Disruption::new(&Config { large_cluster_size_threshold: 3, ..Config::default() });
        big.ensure_zone("a", ts(0.0));
        big.handle(&zones(&[("a", &["True", "Unknown", "Unknown", "Unknown"])]), ts(1.0));
        assert_eq!(big.queues.get("a").map(TaintQueue::qps), Some(0.01));
    }
}
