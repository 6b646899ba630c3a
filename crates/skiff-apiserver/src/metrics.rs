//! Request metrics in Prometheus' text format (`/metrics`), named as the apiserver names them.
//!
//! A request is observed once, when its response head is ready: the time of a streamed answer
//! (a followed log, an exec session, a watch) is its time to the first byte, not its whole life. The
//! streams still open are counted apart, in `apiserver_longrunning_requests`, as the apiserver does.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
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
    long_running: Arc<Mutex<BTreeMap<(&'static str, &'static str), i64>>>,
}

/// One open long-running request (a log stream, an exec session): counted in
/// `apiserver_longrunning_requests` until dropped.
pub struct LongRunning {
    key: (&'static str, &'static str),
    gauges: Arc<Mutex<BTreeMap<(&'static str, &'static str), i64>>>,
}

impl Drop for LongRunning {
    fn drop(&mut self) {
        if let Some(n) = self.gauges.lock().get_mut(&self.key) {
            *n -= 1;
        }
    }
}

impl Metrics {
    pub fn observe(&self, verb: &'static str, resource: &str, code: u16, elapsed: Duration) {
        let mut m = self.requests.lock();
        let s = m.entry((verb, resource.to_string(), code)).or_default();
        s.count += 1;
        s.seconds += elapsed.as_secs_f64();
    }

    /// Counts one long-running request of `verb` on `resource` (e.g. `connect`, `pods/exec`) until the
    /// returned guard is dropped.
    pub fn long_running(&self, verb: &'static str, resource: &'static str) -> LongRunning {
        *self.long_running.lock().entry((verb, resource)).or_default() += 1;
        LongRunning { key: (verb, resource), gauges: self.long_running.clone() }
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
        out.push_str("# HELP apiserver_longrunning_requests Gauge of all active long-running apiserver requests broken out by verb and resource.\n");
        out.push_str("# TYPE apiserver_longrunning_requests gauge\n");
        for ((verb, resource), n) in self.long_running.lock().iter() {
            let _ = writeln!(out, "apiserver_longrunning_requests{{verb=\"{verb}\",resource=\"{resource}\"}} {n}");
        }
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

    #[test]
    fn long_running_requests_are_counted_while_open() {
        let m = Metrics::default();
        let line = |n: i64| format!("apiserver_longrunning_requests{{verb=\"connect\",resource=\"pods/exec\"}} {n}\n");
        let a = m.long_running("connect", "pods/exec");
        let b = m.long_running("connect", "pods/exec");
        assert!(m.render(1).contains(&line(2)));
        drop(a);
        assert!(m.render(1).contains(&line(1)));
        drop(b);
        assert!(m.render(1).contains(&line(0)));
    }
}
