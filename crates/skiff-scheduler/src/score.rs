//! Scores: which feasible node is best? The default plugins' Score steps, each normalized to
//! 0..=100 and weighted as in the default profile:
//!
//! | plugin | weight | prefers |
//! |---|---|---|
//! | `TaintToleration` | 3 | fewer untolerated `PreferNoSchedule` taints |
//! | `NodeAffinity` | 2 | more preferred-affinity weight |
//! | `PodTopologySpread` (system default, hostname) | 2 | fewer pods of the same controller |
//! | `NodeResourcesFit` (`LeastAllocated`) | 1 | more free CPU and memory |
//! | `NodeResourcesBalancedAllocation` | 1 | CPU and memory used in equal proportion |

use crate::filter::{term_matches, tolerates_any};
use crate::info::{NodeInfo, PodInfo};

/// The best score a plugin gives (`framework.MaxNodeScore`).
pub const MAX_NODE_SCORE: i64 = 100;

const WEIGHT_TAINT: i64 = 3;
const WEIGHT_AFFINITY: i64 = 2;
const WEIGHT_SPREAD: i64 = 2;
const WEIGHT_LEAST_ALLOCATED: i64 = 1;
const WEIGHT_BALANCED: i64 = 1;

/// `LeastAllocated` over CPU and memory (equal weights), with the pod's non-zero requests added:
/// the free fraction of each, times 100, averaged.
pub fn least_allocated(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let free = |alloc: i64, requested: i64| {
        if alloc <= 0 || requested > alloc { 0 } else { (alloc - requested) * MAX_NODE_SCORE / alloc }
    };
    let cpu = free(node.allocatable.milli_cpu, node.nonzero_cpu + pod.usage.nonzero_cpu);
    let mem = free(node.allocatable.memory, node.nonzero_memory + pod.usage.nonzero_memory);
    (cpu + mem) / 2
}

/// `BalancedAllocation` over CPU and memory: 100 × (1 − the standard deviation of the used
/// fractions), with the pod's requests added.
pub fn balanced_allocation(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let fraction =
        |alloc: i64, requested: i64| if alloc <= 0 { 0.0 } else { (requested as f64 / alloc as f64).min(1.0) };
    let cpu = fraction(node.allocatable.milli_cpu, node.requested.milli_cpu + pod.usage.requests.milli_cpu);
    let mem = fraction(node.allocatable.memory, node.requested.memory + pod.usage.requests.memory);
    let std = (cpu - mem).abs() / 2.0;
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

/// Raw `TaintToleration` score: untolerated `PreferNoSchedule` taints (fewer is better).
pub fn intolerable_taints(pod: &PodInfo, node: &NodeInfo) -> i64 {
    node.taints.iter().filter(|t| t.effect == "PreferNoSchedule" && !tolerates_any(&pod.tolerations, t)).count() as i64
}

/// Raw `NodeAffinity` score: the summed weights of the matching preferred terms.
pub fn preferred_affinity(pod: &PodInfo, node: &NodeInfo) -> i64 {
    pod.preferred_affinity
        .iter()
        .filter(|t| t.weight != 0 && term_matches(&t.preference, &node.name, &node.labels))
        .map(|t| i64::from(t.weight))
        .sum()
}

/// Raw spreading score: pods of the same controller already on the node (fewer is better). A pod
/// without a controller spreads against nothing.
pub fn same_owner(pod: &PodInfo, node: &NodeInfo) -> i64 {
    pod.usage.owner.as_deref().map_or(0, |o| i64::from(node.owner_count(o)))
}

/// The weighted total score of each node, in order. Normalization needs the whole candidate set,
/// so this scores them together.
pub fn score_nodes(pod: &PodInfo, nodes: &[&NodeInfo]) -> Vec<i64> {
    let taints: Vec<i64> = nodes.iter().map(|n| intolerable_taints(pod, n)).collect();
    let affinity: Vec<i64> = nodes.iter().map(|n| preferred_affinity(pod, n)).collect();
    let spread: Vec<i64> = nodes.iter().map(|n| same_owner(pod, n)).collect();
    let max_taints = taints.iter().copied().max().unwrap_or(0);
    let max_affinity = affinity.iter().copied().max().unwrap_or(0);
    let (min_spread, max_spread) =
        (spread.iter().copied().min().unwrap_or(0), spread.iter().copied().max().unwrap_or(0));
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            // DefaultNormalizeScore, reversed for taints.
            let taint =
                if max_taints == 0 { MAX_NODE_SCORE } else { MAX_NODE_SCORE - taints[i] * MAX_NODE_SCORE / max_taints };
            let aff = if max_affinity == 0 { 0 } else { affinity[i] * MAX_NODE_SCORE / max_affinity };
            // PodTopologySpread's NormalizeScore.
            let spr = if max_spread == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max_spread + min_spread - spread[i]) / max_spread
            };
            WEIGHT_TAINT * taint
                + WEIGHT_AFFINITY * aff
                + WEIGHT_SPREAD * spr
                + WEIGHT_LEAST_ALLOCATED * least_allocated(pod, n)
                + WEIGHT_BALANCED * balanced_allocation(pod, n)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::info::PodUsage;
    use crate::resources::Resources;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::{Value, json};
    use std::sync::Arc;

    fn node(name: &str, cpu: &str, mem: &str, spec: Value) -> NodeInfo {
        NodeInfo::new(
            &serde_json::from_value::<Node>(json!({"metadata": {"name": name, "labels": {"zone": name}}, "spec": spec,
                "status": {"allocatable": {"cpu": cpu, "memory": mem, "pods": "110"}, "conditions": [{"type": "Ready", "status": "True"}]}}))
            .expect("a Node"),
        )
    }

    fn pod(spec: Value) -> PodInfo {
        let mut p = json!({"metadata": {"name": "p", "namespace": "default", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-uid", "controller": true}]},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}});
        if let Some(o) = spec.as_object() {
            for (k, v) in o {
                p["spec"][k] = v.clone();
            }
        }
        PodInfo::new(&serde_json::from_value::<Pod>(p).expect("a Pod"))
    }

    fn used(cpu: i64, mem: i64, owner: Option<&str>) -> PodUsage {
        PodUsage {
            requests: Resources { milli_cpu: cpu, memory: mem, pods: 1, ..Resources::default() },
            nonzero_cpu: cpu,
            nonzero_memory: mem,
            owner: owner.map(Arc::from),
            ..PodUsage::default()
        }
    }

    #[test]
    fn resource_scores() {
        let p = pod(json!({}));
        let empty = node("a", "4", "4Gi", json!({}));
        // cpu: 3/4 free → 75; memory: 3/4 free → 75.
        assert_eq!(least_allocated(&p, &empty), 75);
        // fractions 0.25 and 0.25 → perfectly balanced.
        assert_eq!(balanced_allocation(&p, &empty), 100);
        let mut skewed = node("b", "4", "4Gi", json!({}));
        skewed.add_pod(&used(2000, 0, None));
        // cpu (1+2)/4 used → 25 free; memory 75 free → 50.
        assert_eq!(least_allocated(&p, &skewed), 50);
        // fractions 0.75 and 0.25 → std 0.25 → 75.
        assert_eq!(balanced_allocation(&p, &skewed), 75);
        let mut full = node("c", "1", "1Gi", json!({}));
        full.add_pod(&used(500, 0, None));
        assert_eq!(least_allocated(&p, &full), 0, "over-requested resources score 0");
    }

    #[test]
    fn totals_prefer_spread_then_free_nodes() {
        let p = pod(json!({}));
        let a = node("a", "4", "4Gi", json!({}));
        let mut b = node("b", "4", "4Gi", json!({}));
        b.add_pod(&used(0, 0, Some("rs-uid")));
        let mut c = node("c", "4", "4Gi", json!({}));
        c.add_pod(&used(1000, 1 << 30, None));
        let scores = score_nodes(&p, &[&a, &b, &c]);
        // a: taint 3×100 + spread 2×100 + least 75 + balanced 100.
        assert_eq!(scores[0], 300 + 200 + 75 + 100);
        // b: spread normalized (max 1, min 0) → 0.
        assert_eq!(scores[1], 300 + 75 + 100);
        // c: spread 100, least (2/4 free) 50.
        assert_eq!(scores[2], 300 + 200 + 50 + 100);
    }

    #[test]
    fn taints_and_affinity_scores() {
        let p = pod(json!({
            "tolerations": [{"key": "ok", "operator": "Exists"}],
            "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}},
                {"weight": 5, "preference": {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}}]}}}));
        let a = node("a", "4", "4Gi", json!({"taints": [{"key": "bad", "effect": "PreferNoSchedule"}]}));
        let b = node("b", "4", "4Gi", json!({"taints": [{"key": "ok", "effect": "PreferNoSchedule"}]}));
        assert_eq!((intolerable_taints(&p, &a), intolerable_taints(&p, &b)), (1, 0));
        assert_eq!((preferred_affinity(&p, &a), preferred_affinity(&p, &b)), (5, 15));
        let scores = score_nodes(&p, &[&a, &b]);
        // a: taint 0, affinity 5×100/15 = 33 (×2), spread 100 (×2), least 75, balanced 100.
        assert_eq!(scores[0], 66 + 200 + 75 + 100);
        assert_eq!(scores[1], 300 + 200 + 200 + 75 + 100);
    }
}
