//! The live view `rollout status` draws on a terminal: one bar per count against the desired
//! replicas, the old ReplicaSets draining, why the rollout is stuck (when it is), and kubectl's
//! status line. Pure rendering; the caller redraws it in place.

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

/// The lines of the view: the bars of a Deployment, its old ReplicaSets that still have pods
/// (name, replicas), the reasons it is stuck (`why`, from `rollout::diagnose`) and `message`.
pub fn render(deploy: &Value, old: &[(String, i64)], why: &[String], message: &str) -> Vec<String> {
    let desired = deploy.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    let mut lines = vec![
        bar("updated", int(deploy, "/status/updatedReplicas"), desired, 20),
        bar("ready", int(deploy, "/status/readyReplicas"), desired, 20),
        bar("available", int(deploy, "/status/availableReplicas"), desired, 20),
    ];
    for (name, replicas) in old.iter().filter(|(_, r)| *r > 0) {
        lines.push(format!("old {name}: {replicas} draining"));
    }
    if !why.is_empty() {
        lines.push("why it is not done yet:".to_string());
        lines.extend(why.iter().map(|w| format!("  {w}")));
    }
    if !message.is_empty() {
        lines.push(message.to_string());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn draws_bars() {
        let cases = [
            (("ready", 1, 2, 10), "ready      [#####.....] 1/2"),
            (("ready", 0, 0, 4), "ready      [####] 0/0"),
            (("updated", 3, 3, 6), "updated    [######] 3/3"),
            (("available", 5, 3, 3), "available  [###] 5/3"),
            (("updated", -1, 3, 3), "updated    [...] -1/3"),
        ];
        for ((label, value, total, width), want) in cases {
            assert_eq!(bar(label, value, total, width), want);
        }
    }

    #[test]
    fn renders_counts_old_sets_reasons_and_the_status_line() {
        let d = json!({"spec":{"replicas":4},"status":{"updatedReplicas":2,"readyReplicas":4,"availableReplicas":3}});
        let lines = render(&d, &[("web-old".into(), 2), ("web-older".into(), 0)], &[], "");
        assert_eq!(
            lines,
            vec![
                "updated    [##########..........] 2/4",
                "ready      [####################] 4/4",
                "available  [###############.....] 3/4",
                "old web-old: 2 draining",
            ]
        );
        let why = vec!["pod web-1 container app: CrashLoopBackOff".to_string()];
        let message = "Waiting for deployment \"web\" rollout to finish: 2 out of 4 new replicas have been updated...";
        let lines = render(&d, &[], &why, message);
        assert_eq!(
            lines[3..],
            [
                "why it is not done yet:".to_string(),
                "  pod web-1 container app: CrashLoopBackOff".to_string(),
                message.to_string(),
            ]
        );
    }
}
