//! One scheduling decision (`schedulePod`): filter nodes until enough are feasible, score them,
//! pick the best; or explain, in upstream's words, why none fits.

use std::collections::BTreeMap;
use std::fmt;

use crate::filter::{Reason, filter};
use crate::info::{NodeInfo, PodInfo};
use crate::score::score_nodes;

/// Why a pod fits nowhere. `Display` is the `PodScheduled` condition's message and the
/// `FailedScheduling` event's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FitError {
    /// The cluster has no nodes at all (`ErrNoNodesAvailable`).
    NoNodes,
    /// Every node failed a filter.
    Unfit {
        num_nodes: usize,
        /// How many nodes gave each reason.
        reasons: BTreeMap<Reason, usize>,
        /// Nodes where preemption could help (resources, ports) versus not.
        resolvable: usize,
    },
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FitError::NoNodes => f.write_str("no nodes available to schedule pods"),
            FitError::Unfit { num_nodes, reasons, resolvable } => {
                let histogram = sorted_histogram(reasons.iter().map(|(r, n)| (r.to_string(), *n)));
                // DefaultPreemption's PostFilter message. Skiff does not preempt, which upstream
                // reports as "no victims" (all pods share one priority) for the resolvable nodes.
                let mut preemption = BTreeMap::new();
                if *resolvable > 0 {
                    preemption.insert("No preemption victims found for incoming pod".to_string(), *resolvable);
                }
                if num_nodes > resolvable {
                    preemption.insert("Preemption is not helpful for scheduling".to_string(), num_nodes - resolvable);
                }
                let preemption = sorted_histogram(preemption.into_iter());
                write!(
                    f,
                    "0/{num_nodes} nodes are available: {histogram}. preemption: 0/{num_nodes} nodes are available: {preemption}."
                )
            }
        }
    }
}

/// `sortReasonsHistogram`: "N reason" strings, sorted as strings, joined by ", ".
fn sorted_histogram(entries: impl Iterator<Item = (String, usize)>) -> String {
    let mut items: Vec<String> = entries.map(|(r, n)| format!("{n} {r}")).collect();
    items.sort();
    items.join(", ")
}

/// How many feasible nodes to find before scoring (`numFeasibleNodesToFind` with the adaptive
/// default of `percentageOfNodesToScore`): all of them below 100 nodes, else
/// `50 − nodes/125` percent (at least 5 %), and never fewer than 100.
pub fn nodes_to_find(num_nodes: usize, percentage: Option<u32>) -> usize {
    const MIN_FEASIBLE: usize = 100;
    if num_nodes < MIN_FEASIBLE || percentage == Some(100) {
        return num_nodes;
    }
    let pct = match percentage {
        Some(p) if p > 0 => p as usize,
        _ => 50usize.saturating_sub(num_nodes / 125).max(5),
    };
    (num_nodes * pct / 100).max(MIN_FEASIBLE)
}

/// Where the next decision starts looking, and the tie-breaking randomness. Starting each search
/// where the last stopped spreads the evaluated subset over all nodes, as upstream's
/// `nextStartNodeIndex` does.
#[derive(Debug, Clone)]
pub struct Cursor {
    pub next_start: usize,
    rng: u64,
    /// `percentageOfNodesToScore`; `None` is upstream's adaptive default.
    pub percentage: Option<u32>,
}

impl Default for Cursor {
    fn default() -> Self {
        Cursor { next_start: 0, rng: 0x9E37_79B9_7F4A_7C15, percentage: None }
    }
}

impl Cursor {
    /// A cursor with the given `percentageOfNodesToScore` (`None`: adaptive).
    pub fn with_percentage(percentage: Option<u32>) -> Cursor {
        Cursor { percentage, ..Cursor::default() }
    }

    /// xorshift64: cheap randomness for choosing among equally good nodes.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

/// Chooses a node for `pod` among `nodes`: the index of the node, or why none fits.
pub fn schedule(pod: &PodInfo, nodes: &[NodeInfo], cursor: &mut Cursor) -> Result<usize, FitError> {
    let n = nodes.len();
    if n == 0 {
        return Err(FitError::NoNodes);
    }
    let want = nodes_to_find(n, cursor.percentage);
    let mut feasible = Vec::with_capacity(want.min(n));
    let mut reasons: BTreeMap<Reason, usize> = BTreeMap::new();
    let mut resolvable = 0;
    let start = cursor.next_start % n;
    let mut processed = 0;
    for i in 0..n {
        let idx = (start + i) % n;
        processed += 1;
        match filter(pod, &nodes[idx]) {
            Ok(()) => {
                feasible.push(idx);
                if feasible.len() >= want {
                    break;
                }
            }
            Err(rs) => {
                if rs.first().is_some_and(Reason::resolvable) {
                    resolvable += 1;
                }
                for r in rs {
                    *reasons.entry(r).or_insert(0) += 1;
                }
            }
        }
    }
    cursor.next_start = (start + processed) % n;
    match feasible.len() {
        0 => Err(FitError::Unfit { num_nodes: n, reasons, resolvable }),
        1 => Ok(feasible[0]),
        _ => {
            let candidates: Vec<&NodeInfo> = feasible.iter().map(|&i| &nodes[i]).collect();
            let scores = score_nodes(pod, &candidates);
            // The highest score; ties broken uniformly at random (reservoir sampling), as upstream.
            let mut best = 0;
            let mut ties = 1u64;
            for i in 1..scores.len() {
                if scores[i] > scores[best] {
                    best = i;
                    ties = 1;
                } else if scores[i] == scores[best] {
                    ties += 1;
                    if cursor.next_random().is_multiple_of(ties) {
                        best = i;
                    }
                }
            }
            Ok(feasible[best])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::{Value, json};

    fn node(name: &str, labels: Value, spec: Value) -> NodeInfo {
        NodeInfo::new(
            &serde_json::from_value::<Node>(json!({"metadata": {"name": name, "labels": labels}, "spec": spec,
                "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}, "conditions": [{"type": "Ready", "status": "True"}]}}))
            .expect("a Node"),
        )
    }

    fn pod(i: usize, spec: Value) -> PodInfo {
        let mut p = json!({"metadata": {"name": format!("p{i}"), "namespace": "default", "uid": format!("uid-{i}"),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs", "controller": true}]},
            "spec": {"containers": [{"name": "c"}]}});
        if let Some(o) = spec.as_object() {
            for (k, v) in o {
                p["spec"][k] = v.clone();
            }
        }
        PodInfo::new(&serde_json::from_value::<Pod>(p).expect("a Pod"))
    }

    #[test]
    fn nodes_to_find_follows_upstream() {
        let cases = [
            (0, None, 0),
            (3, None, 3),
            (99, None, 99),
            (100, None, 100),
            (1000, None, 420),
            (5000, None, 500),
            (10_000, None, 500),
            (1000, Some(10), 100),
            (1000, Some(100), 1000),
            (100_000, None, 5000),
        ];
        for (n, pct, want) in cases {
            assert_eq!(nodes_to_find(n, pct), want, "{n} nodes at {pct:?}");
        }
    }

    #[test]
    fn replicas_spread_evenly() {
        let mut nodes: Vec<NodeInfo> = (0..3).map(|i| node(&format!("n{i}"), json!({}), json!({}))).collect();
        let mut cursor = Cursor::default();
        for i in 0..6 {
            let p = pod(i, json!({}));
            let idx = schedule(&p, &nodes, &mut cursor).expect("fits");
            nodes[idx].add_pod(&p.usage);
        }
        let counts: Vec<u32> = nodes.iter().map(|n| n.owner_count("rs")).collect();
        assert_eq!(counts, vec![2, 2, 2]);
    }

    #[test]
    fn accounting_prevents_overcommit() {
        let mut nodes = vec![node("n0", json!({}), json!({})), node("n1", json!({}), json!({}))];
        let mut cursor = Cursor::default();
        let big = json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1500m"}}}]});
        for i in 0..2 {
            let p = pod(i, big.clone());
            let idx = schedule(&p, &nodes, &mut cursor).expect("fits");
            nodes[idx].add_pod(&p.usage);
        }
        assert_eq!(nodes.iter().map(|n| n.requested.milli_cpu).collect::<Vec<_>>(), vec![1500, 1500]);
        let err = schedule(&pod(2, big), &nodes, &mut cursor).expect_err("no room");
        assert_eq!(
            err.to_string(),
            "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
        );
    }

    #[test]
    fn fit_error_messages() {
        let nodes = vec![
            node("n0", json!({"disk": "ssd"}), json!({})),
            node("n1", json!({}), json!({"taints": [{"key": "k", "effect": "NoSchedule"}]})),
            node("n2", json!({}), json!({"unschedulable": true})),
            node("n3", json!({}), json!({})),
        ];
        let mut cursor = Cursor::default();
        let err = schedule(&pod(0, json!({"nodeSelector": {"disk": "hdd"}})), &nodes, &mut cursor).expect_err("unfit");
        assert_eq!(
            err.to_string(),
            "0/4 nodes are available: 1 node(s) had untolerated taint(s), 1 node(s) were unschedulable, \
             2 node(s) didn't match Pod's node affinity/selector. preemption: 0/4 nodes are available: \
             4 Preemption is not helpful for scheduling."
        );
        let only = vec![node("n0", json!({}), json!({}))];
        let err = schedule(&pod(0, json!({"nodeSelector": {"disk": "hdd"}})), &only, &mut cursor).expect_err("unfit");
        assert_eq!(
            err.to_string(),
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
        );
        assert_eq!(schedule(&pod(0, json!({})), &[], &mut cursor), Err(FitError::NoNodes));
        assert_eq!(FitError::NoNodes.to_string(), "no nodes available to schedule pods");
    }

    #[test]
    fn selector_picks_the_matching_node() {
        let nodes = vec![
            node("n0", json!({}), json!({})),
            node("n1", json!({"disk": "ssd"}), json!({})),
            node("n2", json!({}), json!({})),
        ];
        let mut cursor = Cursor::default();
        for i in 0..5 {
            assert_eq!(schedule(&pod(i, json!({"nodeSelector": {"disk": "ssd"}})), &nodes, &mut cursor), Ok(1));
        }
    }

    #[test]
    fn large_clusters_evaluate_a_rotating_subset() {
        let nodes: Vec<NodeInfo> = (0..1000).map(|i| node(&format!("n{i}"), json!({}), json!({}))).collect();
        let mut cursor = Cursor::default();
        schedule(&pod(0, json!({})), &nodes, &mut cursor).expect("fits");
        assert_eq!(cursor.next_start, 420);
        schedule(&pod(1, json!({})), &nodes, &mut cursor).expect("fits");
        assert_eq!(cursor.next_start, 840);
    }
}
