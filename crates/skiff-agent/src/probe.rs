//! Liveness, readiness and startup probes (upstream `pkg/kubelet/prober`).
//!
//! * [`ProbeResults`]: the published result per (container ID, probe kind), read by the plan and
//!   the status;
//! * [`Thresholds`]: the pure success/failure-threshold state machine of one worker;
//! * [`Prober`]: the I/O seam that runs one check ([`NetProber`]: HTTP to the pod IP, TCP connect,
//!   exec through the runtime);
//! * [`run_worker`]: one probe's loop (initial delay, period, timeout), on tokio's clock so tests
//!   drive it with `tokio::time::pause`.
//!
//! gRPC probes are not implemented: they report a failure saying so. HTTPS probes are not
//! implemented either (upstream skips certificate checks); they fail likewise.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Container, ExecAction, HTTPGetAction, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use crate::runtime::ContainerRuntime;

/// The three probe kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    /// "Liveness", as in the `Unhealthy` event ("Liveness probe failed: ...").
    pub fn title(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }

    /// The container's probe of this kind.
    pub fn of(self, c: &Container) -> Option<&Probe> {
        match self {
            ProbeKind::Liveness => c.liveness_probe.as_ref(),
            ProbeKind::Readiness => c.readiness_probe.as_ref(),
            ProbeKind::Startup => c.startup_probe.as_ref(),
        }
    }

    /// The result before any probe ran: readiness fails (not ready until proven), liveness
    /// succeeds, startup is unknown.
    pub fn initial(self) -> ProbeResult {
        match self {
            ProbeKind::Liveness => ProbeResult::Success,
            ProbeKind::Readiness => ProbeResult::Failure,
            ProbeKind::Startup => ProbeResult::Unknown,
        }
    }
}

/// A published probe result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeResult {
    Success,
    Failure,
    Unknown,
}

/// Published results by (container ID, kind).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeResults {
    results: HashMap<(String, ProbeKind), ProbeResult>,
}

impl ProbeResults {
    pub fn get(&self, container_id: &str, kind: ProbeKind) -> Option<ProbeResult> {
        self.results.get(&(container_id.to_string(), kind)).copied()
    }

    /// Sets a result; returns whether it changed.
    pub fn set(&mut self, container_id: &str, kind: ProbeKind, result: ProbeResult) -> bool {
        self.results.insert((container_id.to_string(), kind), result) != Some(result)
    }

    /// Forgets every result of containers not in `keep`.
    pub fn retain_containers(&mut self, keep: &dyn Fn(&str) -> bool) {
        self.results.retain(|(id, _), _| keep(id));
    }
}

/// A probe's timing and thresholds, defaulted as `SetDefaults_Probe` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    pub fn of(p: &Probe) -> Timing {
        let secs = |v: Option<i32>, d: i32, min: i32| Duration::from_secs(v.unwrap_or(d).max(min) as u64);
        Timing {
            initial_delay: secs(p.initial_delay_seconds, 0, 0),
            period: secs(p.period_seconds, 10, 1),
            timeout: secs(p.timeout_seconds, 1, 1),
            success_threshold: p.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
        }
    }
}

/// One worker's threshold state: a result is published only after `failureThreshold`
/// consecutive failures or `successThreshold` consecutive successes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thresholds {
    last: Option<bool>,
    run: u32,
    success: u32,
    failure: u32,
}

impl Thresholds {
    pub fn new(t: &Timing) -> Thresholds {
        Thresholds { last: None, run: 0, success: t.success_threshold, failure: t.failure_threshold }
    }

    /// Records one check; returns the result to publish, if the run reached its threshold.
    pub fn observe(&mut self, ok: bool) -> Option<ProbeResult> {
        if self.last == Some(ok) {
            self.run += 1;
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        match ok {
            true if self.run >= self.success => Some(ProbeResult::Success),
            false if self.run >= self.failure => Some(ProbeResult::Failure),
            _ => None,
        }
    }

    /// Starts counting again (after a liveness or startup failure was acted on).
    pub fn reset(&mut self) {
        self.last = None;
        self.run = 0;
    }
}

/// One check to perform, with ports and hosts resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Exec {
        command: Vec<String>,
    },
    Http {
        scheme: String,
        host: String,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    Tcp {
        host: String,
        port: u16,
    },
    Grpc {
        host: String,
        port: u16,
        service: Option<String>,
    },
    /// A lifecycle `sleep` hook.
    Sleep(Duration),
}

/// A named or numbered port of `container`.
fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port number: {n}")),
        IntOrString::String(s) => match s.parse::<u16>() {
            Ok(n) => Ok(n),
            Err(_) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(s.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("couldn't find port: {s} in {}", container.name)),
        },
    }
}

/// The handler fields shared by probes and lifecycle hooks.
#[derive(Debug, Clone, Copy, Default)]
pub struct HandlerRef<'a> {
    pub exec: Option<&'a ExecAction>,
    pub http_get: Option<&'a HTTPGetAction>,
    pub tcp_socket: Option<&'a TCPSocketAction>,
    pub grpc: Option<(i32, Option<&'a str>)>,
    pub sleep: Option<i64>,
}

impl<'a> HandlerRef<'a> {
    pub fn of_probe(p: &'a Probe) -> HandlerRef<'a> {
        HandlerRef {
            exec: p.exec.as_ref(),
            http_get: p.http_get.as_ref(),
            tcp_socket: p.tcp_socket.as_ref(),
            grpc: p.grpc.as_ref().map(|g| (g.port, g.service.as_deref())),
            sleep: None,
        }
    }

    pub fn of_hook(h: &'a k8s_openapi::api::core::v1::LifecycleHandler) -> HandlerRef<'a> {
        HandlerRef {
            exec: h.exec.as_ref(),
            http_get: h.http_get.as_ref(),
            tcp_socket: h.tcp_socket.as_ref(),
            grpc: None,
            sleep: h.sleep.as_ref().map(|s| s.seconds),
        }
    }
}

/// The check a handler describes, for `container` of a pod with `pod_ip` (the default host).
pub fn check_for(h: HandlerRef<'_>, container: &Container, pod_ip: &str) -> Result<Check, String> {
    if let Some(e) = h.exec {
        return Ok(Check::Exec { command: e.command.clone().unwrap_or_default() });
    }
    if let Some(g) = h.http_get {
        let mut path = g.path.clone().unwrap_or_default();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        return Ok(Check::Http {
            scheme: g.scheme.clone().unwrap_or_else(|| "HTTP".into()),
            host: g.host.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| pod_ip.to_string()),
            port: resolve_port(&g.port, container)?,
            path,
            headers: g.http_headers.iter().flatten().map(|h| (h.name.clone(), h.value.clone())).collect(),
        });
    }
    if let Some(t) = h.tcp_socket {
        return Ok(Check::Tcp {
            host: t.host.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| pod_ip.to_string()),
            port: resolve_port(&t.port, container)?,
        });
    }
    if let Some((port, service)) = h.grpc {
        let port = u16::try_from(port).map_err(|_| format!("invalid port number: {port}"))?;
        return Ok(Check::Grpc { host: pod_ip.to_string(), port, service: service.map(str::to_string) });
    }
    if let Some(s) = h.sleep {
        return Ok(Check::Sleep(Duration::from_secs(s.max(0) as u64)));
    }
    Err("missing probe handler".to_string())
}

/// The outcome of one check; `message` is the failure's text for the `Unhealthy` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    pub message: String,
}

impl Outcome {
    pub fn success() -> Outcome {
        Outcome { ok: true, message: String::new() }
    }

    pub fn failure(message: impl Into<String>) -> Outcome {
        Outcome { ok: false, message: message.into() }
    }
}

/// Runs one check against a container.
#[async_trait]
pub trait Prober: Send + Sync + 'static {
    async fn check(&self, container_id: &str, check: &Check, timeout: Duration) -> Outcome;
}

/// The real prober: exec through the runtime, HTTP/1.1 GET and TCP connects from the node.
pub struct NetProber {
    runtime: Arc<dyn ContainerRuntime>,
}

impl NetProber {
    pub fn new(runtime: Arc<dyn ContainerRuntime>) -> NetProber {
        NetProber { runtime }
    }
}

/// `host:port`, bracketing IPv6 literals.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// A minimal HTTP/1.1 GET: the status code of the response.
async fn http_get(host: &str, port: u16, path: &str, headers: &[(String, String)]) -> Result<u16, String> {
    let mut stream = tokio::net::TcpStream::connect(host_port(host, port)).await.map_err(|e| e.to_string())?;
    let mut req = format!("GET {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {}\r\n", host_port(host, port)));
    }
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("user-agent")) {
        req.push_str("User-Agent: kube-probe/1.35\r\n");
    }
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("accept")) {
        req.push_str("Accept: */*\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 64 * 1024 {
            break;
        }
    }
    let line = String::from_utf8_lossy(&buf);
    line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| "malformed HTTP response".to_string())
}

#[async_trait]
impl Prober for NetProber {
    async fn check(&self, container_id: &str, check: &Check, timeout: Duration) -> Outcome {
        match check {
            Check::Exec { command } => match self.runtime.exec(container_id, command, timeout).await {
                Ok(out) if out.exit_code == 0 => Outcome::success(),
                Ok(out) => {
                    let text = String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).trim_end().to_string();
                    Outcome::failure(text)
                }
                Err(e) => Outcome::failure(e.to_string()),
            },
            Check::Http { scheme, host, port, path, headers } => {
                if !scheme.eq_ignore_ascii_case("HTTP") {
                    return Outcome::failure(format!("{scheme} probes are not supported"));
                }
                let url = format!("http://{}{path}", host_port(host, *port));
                match tokio::time::timeout(timeout, http_get(host, *port, path, headers)).await {
                    Ok(Ok(code)) if (200..400).contains(&code) => Outcome::success(),
                    Ok(Ok(code)) => Outcome::failure(format!("HTTP probe failed with statuscode: {code}")),
                    Ok(Err(e)) => Outcome::failure(format!("Get \"{url}\": {e}")),
                    Err(_) => Outcome::failure(format!(
                        "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                    )),
                }
            }
            Check::Tcp { host, port } => {
                let addr = host_port(host, *port);
                match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
                    Ok(Ok(_)) => Outcome::success(),
                    Ok(Err(e)) => Outcome::failure(format!("dial tcp {addr}: connect: {e}")),
                    Err(_) => Outcome::failure(format!("dial tcp {addr}: i/o timeout")),
                }
            }
            Check::Grpc { host, port, service } => {
                match crate::grpc_probe::check(&host_port(host, *port), service.as_deref().unwrap_or(""), timeout).await
                {
                    Ok(()) => Outcome::success(),
                    Err(message) => Outcome::failure(message),
                }
            }
            Check::Sleep(d) => {
                tokio::time::sleep(*d).await;
                Outcome::success()
            }
        }
    }
}

/// What a worker reports when its published result changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultChange {
    pub container_id: String,
    pub container: String,
    pub kind: ProbeKind,
    pub result: ProbeResult,
    /// The failure text of the last check, for the `Unhealthy` event.
    pub message: String,
}

/// Where workers publish: the shared results, and a wake-up for the pod worker.
#[derive(Clone, Default)]
pub struct ResultSink {
    pub results: Arc<Mutex<ProbeResults>>,
    pub notify: Arc<Notify>,
    /// Failed checks, for `Unhealthy` events (drained by the pod worker).
    pub failures: Arc<Mutex<Vec<ResultChange>>>,
}

/// One probe worker's inputs.
pub struct Worker {
    pub kind: ProbeKind,
    pub container_id: String,
    pub container: String,
    pub check: Check,
    pub timing: Timing,
    /// How long the container has been running already (the initial delay counts from its start).
    pub running_for: Duration,
    /// Whether the container has a startup probe (liveness and readiness wait for it).
    pub has_startup_probe: bool,
}

/// Runs one probe until the task is aborted (when the container goes away) or, for liveness and
/// startup, until it publishes a failure (the container is then restarted with a new ID and a
/// new worker).
pub async fn run_worker(w: Worker, prober: Arc<dyn Prober>, sink: ResultSink) {
    {
        let mut r = sink.results.lock();
        if r.get(&w.container_id, w.kind).is_none() && r.set(&w.container_id, w.kind, w.kind.initial()) {
            sink.notify.notify_one();
        }
    }
    tokio::time::sleep(w.timing.initial_delay.saturating_sub(w.running_for)).await;
    let mut state = Thresholds::new(&w.timing);
    let mut tick = tokio::time::interval(w.timing.period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let startup = sink.results.lock().get(&w.container_id, ProbeKind::Startup);
        match w.kind {
            // Started: the startup probe has done its job.
            ProbeKind::Startup if startup == Some(ProbeResult::Success) => return,
            // Liveness and readiness wait for the startup probe.
            ProbeKind::Liveness | ProbeKind::Readiness
                if w.has_startup_probe && startup != Some(ProbeResult::Success) =>
            {
                continue;
            }
            _ => {}
        }
        let outcome =
            match tokio::time::timeout(w.timing.timeout, prober.check(&w.container_id, &w.check, w.timing.timeout))
                .await
            {
                Ok(o) => o,
                Err(_) => Outcome::failure(format!("command timed out after {}s", w.timing.timeout.as_secs())),
            };
        if !outcome.ok {
            sink.failures.lock().push(ResultChange {
                container_id: w.container_id.clone(),
                container: w.container.clone(),
                kind: w.kind,
                result: ProbeResult::Failure,
                message: outcome.message.clone(),
            });
            sink.notify.notify_one();
        }
        let Some(result) = state.observe(outcome.ok) else { continue };
        let changed = sink.results.lock().set(&w.container_id, w.kind, result);
        if changed {
            sink.notify.notify_one();
        }
        if result == ProbeResult::Failure && matches!(w.kind, ProbeKind::Liveness | ProbeKind::Startup) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::VecDeque;

    #[test]
    fn thresholds() {
        let t = Timing {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: 2,
            failure_threshold: 3,
        };
        let mut s = Thresholds::new(&t);
        let got: Vec<Option<ProbeResult>> =
            [true, true, false, false, true, false, false, false, true].iter().map(|ok| s.observe(*ok)).collect();
        use ProbeResult::{Failure, Success};
        assert_eq!(got, vec![None, Some(Success), None, None, None, None, None, Some(Failure), None]);
    }

    #[test]
    fn timing_defaults() {
        let p: Probe = serde_json::from_value(json!({"exec": {"command": ["true"]}})).expect("probe");
        let t = Timing::of(&p);
        assert_eq!(
            t,
            Timing {
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: 3
            }
        );
    }

    #[test]
    fn checks_resolve_ports_and_hosts() {
        let c: Container =
            serde_json::from_value(json!({"name": "web", "ports": [{"name": "http", "containerPort": 8080}]}))
                .expect("c");
        let p: Probe = serde_json::from_value(
            json!({"httpGet": {"path": "healthz", "port": "http", "httpHeaders": [{"name": "X", "value": "1"}]}}),
        )
        .expect("p");
        assert_eq!(
            check_for(HandlerRef::of_probe(&p), &c, "10.0.0.5"),
            Ok(Check::Http {
                scheme: "HTTP".into(),
                host: "10.0.0.5".into(),
                port: 8080,
                path: "/healthz".into(),
                headers: vec![("X".into(), "1".into())]
            })
        );
        let p: Probe = serde_json::from_value(json!({"tcpSocket": {"port": 81}})).expect("p");
        assert_eq!(
            check_for(HandlerRef::of_probe(&p), &c, "10.0.0.5"),
            Ok(Check::Tcp { host: "10.0.0.5".into(), port: 81 })
        );
        let p: Probe = serde_json::from_value(json!({"tcpSocket": {"port": "nope"}})).expect("p");
        assert_eq!(
            check_for(HandlerRef::of_probe(&p), &c, "1.2.3.4"),
            Err("couldn't find port: nope in web".to_string())
        );
    }

    /// A prober that answers from a script, then repeats its last answer, counting calls.
    struct Scripted {
        answers: Mutex<VecDeque<bool>>,
        last: Mutex<bool>,
        calls: Mutex<Vec<tokio::time::Instant>>,
    }

    #[async_trait]
    impl Prober for Scripted {
        async fn check(&self, _id: &str, _check: &Check, _timeout: Duration) -> Outcome {
            self.calls.lock().push(tokio::time::Instant::now());
            let mut last = self.last.lock();
            if let Some(a) = self.answers.lock().pop_front() {
                *last = a;
            }
            if *last { Outcome::success() } else { Outcome::failure("boom") }
        }
    }

    fn scripted(answers: &[bool]) -> Arc<Scripted> {
        Arc::new(Scripted {
            answers: Mutex::new(answers.iter().copied().collect()),
            last: Mutex::new(true),
            calls: Mutex::default(),
        })
    }

    fn worker(kind: ProbeKind, delay: u64, period: u64, failure: u32, has_startup: bool) -> Worker {
        Worker {
            kind,
            container_id: "c1".into(),
            container: "app".into(),
            check: Check::Exec { command: vec!["true".into()] },
            timing: Timing {
                initial_delay: Duration::from_secs(delay),
                period: Duration::from_secs(period),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: failure,
            },
            running_for: Duration::ZERO,
            has_startup_probe: has_startup,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_waits_initial_delay_then_flips() {
        let prober = scripted(&[true, true, false, false, true]);
        let sink = ResultSink::default();
        let task =
            tokio::spawn(run_worker(worker(ProbeKind::Readiness, 15, 10, 2, false), prober.clone(), sink.clone()));
        let start = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(
            sink.results.lock().get("c1", ProbeKind::Readiness),
            Some(ProbeResult::Failure),
            "not ready before the first success"
        );
        tokio::time::sleep(Duration::from_secs(15)).await;
        assert_eq!(sink.results.lock().get("c1", ProbeKind::Readiness), Some(ProbeResult::Success));
        assert_eq!(prober.calls.lock()[0] - start, Duration::from_secs(15));
        tokio::time::sleep(Duration::from_secs(20)).await; // checks at 25 (ok), 35 (fail)
        assert_eq!(
            sink.results.lock().get("c1", ProbeKind::Readiness),
            Some(ProbeResult::Success),
            "one failure is below the threshold"
        );
        tokio::time::sleep(Duration::from_secs(10)).await; // 45: second failure
        assert_eq!(sink.results.lock().get("c1", ProbeKind::Readiness), Some(ProbeResult::Failure));
        tokio::time::sleep(Duration::from_secs(10)).await; // 55: success again
        assert_eq!(sink.results.lock().get("c1", ProbeKind::Readiness), Some(ProbeResult::Success));
        assert_eq!(sink.failures.lock().len(), 2);
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn liveness_failure_publishes_once_and_stops() {
        let prober = scripted(&[true, false]);
        let sink = ResultSink::default();
        let task = tokio::spawn(run_worker(worker(ProbeKind::Liveness, 0, 1, 1, false), prober.clone(), sink.clone()));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(sink.results.lock().get("c1", ProbeKind::Liveness), Some(ProbeResult::Success));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(sink.results.lock().get("c1", ProbeKind::Liveness), Some(ProbeResult::Failure));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(task.is_finished());
        assert_eq!(prober.calls.lock().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn startup_gates_liveness() {
        let live = scripted(&[false]);
        let sink = ResultSink::default();
        let task = tokio::spawn(run_worker(worker(ProbeKind::Liveness, 0, 1, 1, true), live.clone(), sink.clone()));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(live.calls.lock().is_empty(), "liveness does not run before startup succeeds");
        assert_eq!(sink.results.lock().get("c1", ProbeKind::Liveness), Some(ProbeResult::Success));
        let startup = scripted(&[false, true]);
        let st = tokio::spawn(run_worker(worker(ProbeKind::Startup, 0, 1, 3, false), startup.clone(), sink.clone()));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(sink.results.lock().get("c1", ProbeKind::Startup), Some(ProbeResult::Unknown));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(sink.results.lock().get("c1", ProbeKind::Startup), Some(ProbeResult::Success));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(st.is_finished(), "startup stops once it succeeded");
        assert_eq!(startup.calls.lock().len(), 2);
        assert_eq!(sink.results.lock().get("c1", ProbeKind::Liveness), Some(ProbeResult::Failure));
        task.abort();
    }

    #[tokio::test]
    async fn net_prober_http_and_tcp() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let code = if n == 0 { 200 } else { 500 };
                n += 1;
                let _ = s.write_all(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").as_bytes()).await;
            }
        });
        let fake: Arc<dyn ContainerRuntime> = Arc::new(crate::fake::FakeRuntime::new());
        let p = NetProber::new(fake);
        let http =
            Check::Http { scheme: "HTTP".into(), host: "127.0.0.1".into(), port, path: "/".into(), headers: vec![] };
        assert_eq!(p.check("x", &http, Duration::from_secs(1)).await, Outcome::success());
        assert_eq!(
            p.check("x", &http, Duration::from_secs(1)).await,
            Outcome::failure("HTTP probe failed with statuscode: 500")
        );
        assert!(p.check("x", &Check::Tcp { host: "127.0.0.1".into(), port }, Duration::from_secs(1)).await.ok);
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let cport = closed.local_addr().expect("addr").port();
        drop(closed);
        assert!(!p.check("x", &Check::Tcp { host: "127.0.0.1".into(), port: cport }, Duration::from_secs(1)).await.ok);
    }
}
