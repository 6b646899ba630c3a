//! Filters: can this pod run on this node? The default plugins' Filter steps, in upstream order
//! (`NodeUnschedulable`, `NodeName`, `TaintToleration`, `NodeAffinity`, `NodePorts`,
//! `NodeResourcesFit`), stopping at the first that fails as the framework does.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Taint, Toleration};

use crate::info::{NodeInfo, PodInfo, TAINT_UNSCHEDULABLE};

/// Why a node cannot take a pod; `Display` gives upstream's reason text (the histogram entries of
/// `0/3 nodes are available: ...`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// `spec.unschedulable` (cordoned), not tolerated.
    Unschedulable,
    /// The pod names another node.
    NodeName,
    /// A NoSchedule or NoExecute taint the pod does not tolerate.
    UntoleratedTaint,
    /// `nodeSelector` or required node affinity does not match.
    NodeAffinity,
    /// A requested host port is taken.
    NodePorts,
    /// Not enough of the named resource left.
    Insufficient(String),
    /// The node's pod capacity is used up.
    TooManyPods,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Unschedulable => f.write_str("node(s) were unschedulable"),
            Reason::NodeName => f.write_str("node(s) didn't match the requested node name"),
            Reason::UntoleratedTaint => f.write_str("node(s) had untolerated taint(s)"),
            Reason::NodeAffinity => f.write_str("node(s) didn't match Pod's node affinity/selector"),
            Reason::NodePorts => f.write_str("node(s) didn't have free ports for the requested pod ports"),
            Reason::Insufficient(resource) => write!(f, "Insufficient {resource}"),
            Reason::TooManyPods => f.write_str("Too many pods"),
        }
    }
}

impl Reason {
    /// Whether evicting lower-priority pods could help (`Unschedulable` upstream) rather than not
    /// (`UnschedulableAndUnresolvable`); it words the `preemption:` half of the message.
    pub fn resolvable(&self) -> bool {
        matches!(self, Reason::NodePorts | Reason::Insufficient(_) | Reason::TooManyPods)
    }
}

/// Whether `pod` may run on `node`; on failure, the reasons of the first filter that failed (only
/// `NodeResourcesFit` gives several, one per short resource).
pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Result<(), Vec<Reason>> {
    if node.unschedulable && !tolerates_any(&pod.tolerations, &unschedulable_taint()) {
        return Err(vec![Reason::Unschedulable]);
    }
    if pod.node_name.as_ref().is_some_and(|n| *n != node.name) {
        return Err(vec![Reason::NodeName]);
    }
    let blocking = |t: &&Taint| t.effect == "NoSchedule" || t.effect == "NoExecute";
    if node.taints.iter().filter(blocking).any(|t| !tolerates_any(&pod.tolerations, t)) {
        return Err(vec![Reason::UntoleratedTaint]);
    }
    if !node_affinity_matches(pod, &node.name, &node.labels) {
        return Err(vec![Reason::NodeAffinity]);
    }
    if pod.usage.host_ports.iter().any(|p| node.used_ports.iter().any(|u| u.conflicts(p))) {
        return Err(vec![Reason::NodePorts]);
    }
    fits_resources(pod, node)
}

fn unschedulable_taint() -> Taint {
    Taint { key: TAINT_UNSCHEDULABLE.to_string(), effect: "NoSchedule".to_string(), ..Taint::default() }
}

/// `NodeResourcesFit`: the pod count, then each requested resource against what is left.
fn fits_resources(pod: &PodInfo, node: &NodeInfo) -> Result<(), Vec<Reason>> {
    let want = &pod.usage.requests;
    let (alloc, used) = (&node.allocatable, &node.requested);
    let mut reasons = Vec::new();
    if used.pods + 1 > alloc.pods {
        reasons.push(Reason::TooManyPods);
    }
    let checks = [
        ("cpu", want.milli_cpu, alloc.milli_cpu, used.milli_cpu),
        ("memory", want.memory, alloc.memory, used.memory),
        ("ephemeral-storage", want.ephemeral_storage, alloc.ephemeral_storage, used.ephemeral_storage),
    ];
    for (name, w, a, u) in checks {
        if w > 0 && w > a.saturating_sub(u) {
            reasons.push(Reason::Insufficient(name.to_string()));
        }
    }
    for (name, w) in &want.scalar {
        let a = alloc.scalar.get(name).copied().unwrap_or(0);
        let u = used.scalar.get(name).copied().unwrap_or(0);
        if *w > 0 && *w > a.saturating_sub(u) {
            reasons.push(Reason::Insufficient(name.clone()));
        }
    }
    if reasons.is_empty() { Ok(()) } else { Err(reasons) }
}

/// `ToleratesTaint`: the effect matches (or the toleration has none), the key matches (or the
/// toleration is a key-less `Exists`), and the operator accepts the value.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    let operator = toleration.operator.as_deref().unwrap_or("Equal");
    if key != taint.key && !(key.is_empty() && operator == "Exists") {
        return false;
    }
    match operator {
        "Exists" => true,
        "Equal" | "" => toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// Whether any of the tolerations tolerates the taint.
pub fn tolerates_any(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// `nodeSelector` (every pair present) and required node affinity (any term matches).
pub fn node_affinity_matches(pod: &PodInfo, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
    if !pod.node_selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
        return false;
    }
    match &pod.required_affinity {
        None => true,
        Some(NodeSelector { node_selector_terms }) => {
            node_selector_terms.iter().any(|t| term_matches(t, node_name, labels))
        }
    }
}

/// One node selector term: every expression and field requirement holds. An empty term selects
/// nothing.
pub fn term_matches(term: &NodeSelectorTerm, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            // Only `metadata.name` is a valid field (with In or NotIn).
            r.key == "metadata.name"
                && matches!(r.operator.as_str(), "In" | "NotIn")
                && requirement_matches(r, Some(node_name))
        })
}

/// A label requirement against the label's value (`None`: the label is absent). A malformed
/// requirement matches nothing.
fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" => !values.is_empty() && value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => !values.is_empty() && value.is_none_or(|v| values.iter().all(|x| x != v)),
        "Exists" => values.is_empty() && value.is_some(),
        "DoesNotExist" => values.is_empty() && value.is_none(),
        "Gt" | "Lt" => {
            let [bound] = values else { return false };
            let (Some(v), Ok(bound)) = (value.and_then(|v| v.parse::<i64>().ok()), bound.parse::<i64>()) else {
                return false;
            };
            if r.operator == "Gt" { v > bound } else { v < bound }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::info::PodUsage;
    use crate::resources::Resources;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::{Value, json};

    fn node(extra: Value) -> NodeInfo {
        let mut n = json!({"metadata": {"name": "n1", "labels": {"zone": "a", "disk": "ssd", "gen": "5"}},
            "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "3", "example.com/gpu": "1"},
                       "conditions": [{"type": "Ready", "status": "True"}]}});
        merge(&mut n, extra);
        NodeInfo::new(&serde_json::from_value::<Node>(n).expect("a Node"))
    }

    fn pod(spec_extra: Value) -> PodInfo {
        let mut p = json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": [{"name": "c"}]}});
        merge(&mut p["spec"], spec_extra);
        PodInfo::new(&serde_json::from_value::<Pod>(p).expect("a Pod"))
    }

    fn merge(into: &mut Value, from: Value) {
        if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        a.insert(k, v);
                    }
                }
            }
        }
    }

    fn affinity(terms: Value) -> Value {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}})
    }

    #[test]
    fn filter_table() {
        use Reason::*;
        let busy = |n: &mut NodeInfo, cpu: i64, pods: i64| {
            n.add_pod(&PodUsage {
                requests: Resources { milli_cpu: cpu, pods, ..Resources::default() },
                ..PodUsage::default()
            })
        };
        let cases: Vec<(&str, Value, Value, Option<Vec<Reason>>)> = vec![
            ("plain pod fits", json!({}), json!({}), None),
            ("cordoned", json!({"spec": {"unschedulable": true}}), json!({}), Some(vec![Unschedulable])),
            (
                "cordoned but tolerated",
                json!({"spec": {"unschedulable": true}}),
                json!({"tolerations": [{"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"}]}),
                None,
            ),
            ("other node name", json!({}), json!({"nodeName": "n2"}), Some(vec![NodeName])),
            ("same node name", json!({}), json!({"nodeName": "n1"}), None),
            (
                "NoSchedule taint",
                json!({"spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}}),
                json!({}),
                Some(vec![UntoleratedTaint]),
            ),
            (
                "NoExecute taint",
                json!({"spec": {"taints": [{"key": "k", "effect": "NoExecute"}]}}),
                json!({}),
                Some(vec![UntoleratedTaint]),
            ),
            (
                "PreferNoSchedule does not filter",
                json!({"spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}}),
                json!({}),
                None,
            ),
            (
                "taint tolerated by Equal",
                json!({"spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}}),
                json!({"tolerations": [{"key": "k", "value": "v"}]}),
                None,
            ),
            (
                "Equal with the wrong value",
                json!({"spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}}),
                json!({"tolerations": [{"key": "k", "operator": "Equal", "value": "w", "effect": "NoSchedule"}]}),
                Some(vec![UntoleratedTaint]),
            ),
            (
                "wrong effect",
                json!({"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}),
                json!({"tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute"}]}),
                Some(vec![UntoleratedTaint]),
            ),
            (
                "tolerate everything",
                json!({"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}),
                json!({"tolerations": [{"operator": "Exists"}]}),
                None,
            ),
            (
                "not ready",
                json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
                json!({}),
                Some(vec![UntoleratedTaint]),
            ),
            ("nodeSelector matches", json!({}), json!({"nodeSelector": {"zone": "a"}}), None),
            ("nodeSelector misses", json!({}), json!({"nodeSelector": {"zone": "b"}}), Some(vec![NodeAffinity])),
            (
                "In",
                json!({}),
                affinity(json!([{"matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd", "ssd"]}]}])),
                None,
            ),
            (
                "NotIn",
                json!({}),
                affinity(json!([{"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]}])),
                Some(vec![NodeAffinity]),
            ),
            (
                "NotIn absent label",
                json!({}),
                affinity(json!([{"matchExpressions": [{"key": "x", "operator": "NotIn", "values": ["1"]}]}])),
                None,
            ),
            (
                "Exists",
                json!({}),
                affinity(json!([{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}])),
                None,
            ),
            (
                "DoesNotExist",
                json!({}),
                affinity(json!([{"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}])),
                Some(vec![NodeAffinity]),
            ),
            (
                "Gt",
                json!({}),
                affinity(json!([{"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["4"]}]}])),
                None,
            ),
            (
                "Lt",
                json!({}),
                affinity(json!([{"matchExpressions": [{"key": "gen", "operator": "Lt", "values": ["4"]}]}])),
                Some(vec![NodeAffinity]),
            ),
            (
                "terms are ORed",
                json!({}),
                affinity(json!([
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}])),
                None,
            ),
            (
                "expressions are ANDed",
                json!({}),
                affinity(json!([{"matchExpressions": [
                    {"key": "zone", "operator": "In", "values": ["a"]},
                    {"key": "disk", "operator": "In", "values": ["hdd"]}]}])),
                Some(vec![NodeAffinity]),
            ),
            ("empty term selects nothing", json!({}), affinity(json!([{}])), Some(vec![NodeAffinity])),
            (
                "matchFields name",
                json!({}),
                affinity(json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}])),
                None,
            ),
            (
                "matchFields other name",
                json!({}),
                affinity(json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}])),
                Some(vec![NodeAffinity]),
            ),
            (
                "cpu fits exactly",
                json!({}),
                json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "2"}}}]}),
                None,
            ),
            (
                "cpu and memory short",
                json!({}),
                json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "2001m", "memory": "5Gi"}}}]}),
                Some(vec![Insufficient("cpu".into()), Insufficient("memory".into())]),
            ),
            (
                "extended resource short",
                json!({}),
                json!({"containers": [{"name": "c", "resources": {"requests": {"example.com/gpu": "2"}}}]}),
                Some(vec![Insufficient("example.com/gpu".into())]),
            ),
            (
                "unknown extended resource",
                json!({}),
                json!({"containers": [{"name": "c", "resources": {"requests": {"example.com/fpga": "1"}}}]}),
                Some(vec![Insufficient("example.com/fpga".into())]),
            ),
        ];
        for (name, node_extra, pod_extra, want) in cases {
            let n = node(node_extra);
            let p = pod(pod_extra);
            assert_eq!(filter(&p, &n).err(), want, "{name}");
        }

        // Accounting: what is already placed counts.
        let mut n = node(json!({}));
        busy(&mut n, 1500, 1);
        let p = pod(json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "600m"}}}]}));
        assert_eq!(filter(&p, &n), Err(vec![Insufficient("cpu".into())]));
        busy(&mut n, 0, 2);
        assert_eq!(filter(&pod(json!({})), &n), Err(vec![TooManyPods]));

        let mut n = node(json!({}));
        let web = pod(json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80}]}]}));
        assert_eq!(filter(&web, &n), Ok(()));
        n.add_pod(&web.usage);
        assert_eq!(filter(&web, &n), Err(vec![NodePorts]));
        let udp = pod(
            json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80, "protocol": "UDP"}]}]}),
        );
        assert_eq!(filter(&udp, &n), Ok(()));
    }

    #[test]
    fn reason_texts() {
        let cases = [
            (Reason::Unschedulable, "node(s) were unschedulable"),
            (Reason::NodeName, "node(s) didn't match the requested node name"),
            (Reason::UntoleratedTaint, "node(s) had untolerated taint(s)"),
            (Reason::NodeAffinity, "node(s) didn't match Pod's node affinity/selector"),
            (Reason::NodePorts, "node(s) didn't have free ports for the requested pod ports"),
            (Reason::Insufficient("cpu".into()), "Insufficient cpu"),
            (Reason::TooManyPods, "Too many pods"),
        ];
        for (r, text) in cases {
            assert_eq!(r.to_string(), text);
        }
    }
}
