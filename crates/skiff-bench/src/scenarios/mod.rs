//! The scenarios of issue #6, one module each. Every scenario starts the processes it needs, cleans
//! them up, and returns a [`Section`](crate::report::Section): its Markdown (first line the
//! heading) and its metrics.

pub mod api_store;
pub mod cold_start;
mod lean;
pub mod pod_start;
pub mod rollout;
pub mod self_heal;

use std::time::{Duration, Instant};

use crate::stats::{Summary, fmt_num};

/// Milliseconds, as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Milliseconds from `t0` to `t` (0 if `t` is earlier).
pub fn ms_since(t0: Instant, t: Instant) -> f64 {
    ms(t.saturating_duration_since(t0))
}

/// A Markdown table of summaries: one row per figure.
pub fn table(unit: &str, rows: &[(String, Option<Summary>)]) -> String {
    let mut t =
        format!("| figure | median ({unit}) | p25–p75 | min–max | p99 | runs/samples |\n|---|---|---|---|---|---|\n");
    for (label, s) in rows {
        match s {
            Some(s) => t.push_str(&format!(
                "| {label} | **{}** | {}–{} | {}–{} | {} | {} |\n",
                fmt_num(s.median),
                fmt_num(s.p25),
                fmt_num(s.p75),
                fmt_num(s.min),
                fmt_num(s.max),
                fmt_num(s.p99),
                s.n
            )),
            None => t.push_str(&format!("| {label} | – | – | – | – | 0 |\n")),
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables() {
        let rows = vec![("one pod".to_string(), Summary::of(&[10.0, 20.0, 30.0])), ("none".to_string(), None)];
        assert_eq!(
            table("ms", &rows),
            "| figure | median (ms) | p25–p75 | min–max | p99 | runs/samples |\n|---|---|---|---|---|---|\n\
             | one pod | **20.0** | 10.0–30.0 | 10.0–30.0 | 30.0 | 3 |\n| none | – | – | – | – | 0 |\n"
        );
    }
}
