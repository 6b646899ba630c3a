//! The live view `rollout status` draws on a terminal: one bar per count against the desired
//! replicas, and the old ReplicaSets draining. Pure rendering; the caller redraws it.

use serde_json::Value;

fn int(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

/// A bar like `[#####.....] 1/2` of `width` cells.
pub fn bar(label: &str, value: i64, total: i64, width: usize) -> String {
    let total_cells = width.max(1);
    let filled = if total <= 0 {
        total_cells
    } else {
        usize::try_from((value.clamp(0, total) * total_cells as i64) / total).unwrap_or(0)
    };
    format!("{label:<10} [{}{}] {value}/{total}", "#".repeat(filled), ".".repeat(total_cells - filled))
}

/// The lines of the view for a Deployment and its old ReplicaSets (name, replicas).
pub fn render(deploy: &Value, old: &[(String, i64)]) -> Vec<String> {
    let desired = int(deploy, "/spec/replicas");
    let mut lines = vec![
        bar("updated", int(deploy, "/status/updatedReplicas"), desired, 20),
        bar("ready", int(deploy, "/status/readyReplicas"), desired, 20),
        bar("available", int(deploy, "/status/availableReplicas"), desired, 20),
    ];
    for (name, replicas) in old.iter().filter(|(_, r)| *r > 0) {
        lines.push(format!("old {name}: {replicas} draining"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn draws_bars() {
        assert_eq!(bar("ready", 1, 2, 10), "ready      [#####.....] 1/2");
        assert_eq!(bar("ready", 0, 0, 4), "ready      [####] 0/0");
        let d = json!({"spec":{"replicas":4},"status":{"updatedReplicas":2,"readyReplicas":4,"availableReplicas":3}});
        let lines = render(&d, &[("web-old".into(), 2), ("web-older".into(), 0)]);
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[3], "old web-old: 2 draining");
    }
}
