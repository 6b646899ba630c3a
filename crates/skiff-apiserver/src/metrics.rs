//! Request metrics in Prometheus' text format (`/metrics`), named as the apiserver names them.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use parking_lot::Mutex;

#[derive(Default)]
struct Series {
    count: u64,
    seconds: f64,
}

/// Counters of served requests by verb, resource and status code.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, String, u16), Series>>,
}

impl Metrics {
    pub fn observe(&self, verb: &'static str, resource: &str, code: u16, elapsed: Duration) {
        let mut m = self.requests.lock();
        let s = m.entry((verb, resource.to_string(), code)).or_default();
        s.count += 1;
        s.seconds += elapsed.as_secs_f64();
    }

    /// The exposition text, with the store's revision and the process's memory.
    pub fn render(&self, revision: u64) -> String {
        let mut out = String::new();
        out.push_str("# HELP apiserver_request_total Counter of apiserver requests broken out by verb, resource and HTTP response code.\n");
        out.push_str("# TYPE apiserver_request_total counter\n");
        let m = self.requests.lock();
        for ((verb, resource, code), s) in m.iter() {
            let _ = writeln!(
                out,
                "apiserver_request_total{{verb=\"{verb}\",resource=\"{resource}\",code=\"{code}\"}} {}",
                s.count
            );
        }
        out.push_str("# HELP apiserver_request_duration_seconds_sum Total time spent serving requests.\n");
        out.push_str("# TYPE apiserver_request_duration_seconds_sum counter\n");
        for ((verb, resource, code), s) in m.iter() {
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_sum{{verb=\"{verb}\",resource=\"{resource}\",code=\"{code}\"}} {}",
                s.seconds
            );
        }
        drop(m);
        out.push_str("# HELP skiff_store_revision The store's latest revision.\n# TYPE skiff_store_revision gauge\n");
        let _ = writeln!(out, "skiff_store_revision {revision}");
        if let Some(rss) = resident_bytes() {
            out.push_str("# HELP process_resident_memory_bytes Resident memory size in bytes.\n");
            out.push_str("# TYPE process_resident_memory_bytes gauge\n");
            let _ = writeln!(out, "process_resident_memory_bytes {rss}");
        }
        out
    }
}

/// This process's resident set size, from `/proc/self/statm`.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.observe("get", "pods", 200, Duration::from_millis(5));
        m.observe("get", "pods", 200, Duration::from_millis(5));
        let text = m.render(42);
        assert!(text.contains("apiserver_request_total{verb=\"get\",resource=\"pods\",code=\"200\"} 2\n"));
        assert!(text.contains("skiff_store_revision 42\n"));
    }
}
