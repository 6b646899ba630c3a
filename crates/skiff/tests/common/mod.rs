//! Test harness: runs the real `skiff server` binary on a private data directory and a free port,
//! and drives it with the real kubectl, the `kube` client, or raw HTTPS requests.
//!
//! Every [`Server`] has its own data directory, port and `HOME` (kubectl caches discovery under
//! `~/.kube/cache`), so tests are independent and can run in parallel. The child process is killed
//! (SIGKILL, by its PID) when the `Server` is dropped.

#![allow(dead_code)] // Each test binary uses a different part of the harness.

pub mod hosts;
pub mod image;
pub mod node;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a server may take to print its "listening" line.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `skiff server`, its data directory and a private `HOME` for kubectl.
pub struct Server {
    /// `127.0.0.1:PORT`.
    pub addr: SocketAddr,
    /// `DATA_DIR/kubeconfig.yaml`.
    pub kubeconfig: PathBuf,
    /// The admin bearer token (`DATA_DIR/pki/admin.token`).
    pub token: String,
    data_dir: PathBuf,
    home: PathBuf,
    log: PathBuf,
    /// Extra `skiff server` arguments, kept for restarts.
    extra_args: Vec<String>,
    child: Option<Child>,
    /// The server's private etcd when the tests run on etcd (`SKIFF_TEST_STORE=etcd`, see
    /// skiff-testkit): killed after the server.
    _etcd: Option<skiff_store::testing::EtcdServer>,
    // Dropped last: removes the data directory, the home and the log.
    _root: tempfile::TempDir,
}

impl Server {
    /// Starts a server (API server, controllers and scheduler, as `skiff server` runs by default) on
    /// a new data directory and a free port.
    pub fn start() -> Server {
        Server::start_with_args(&[])
    }

    /// Starts the API server alone (`--no-controllers`): nothing but the test writes objects, so a
    /// test can assert that a refused request left an object's resourceVersion unchanged.
    pub fn start_api_only() -> Server {
        Server::start_with_args(&["--no-controllers"])
    }

    /// Starts a server with extra `skiff server` arguments (e.g. store tuning knobs).
    pub fn start_with_args(extra: &[&str]) -> Server {
        let root = tempfile::Builder::new().prefix("skiff-e2e-").tempdir().expect("create a temp dir for the server");
        let data_dir = root.path().join("data");
        let home = root.path().join("home");
        std::fs::create_dir_all(&home).expect("create the kubectl home");
        let log = root.path().join("server.log");
        let mut extra_args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        let etcd = match skiff_testkit::Backend::from_env() {
            skiff_testkit::Backend::Sqlite => None,
            skiff_testkit::Backend::Etcd => {
                let etcd = skiff_store::testing::EtcdServer::start();
                extra_args.extend(["--datastore-endpoint".to_string(), etcd.endpoints().join(",")]);
                Some(etcd)
            }
        };
        let mut server = Server {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            kubeconfig: data_dir.join("kubeconfig.yaml"),
            token: String::new(),
            data_dir,
            home,
            log,
            extra_args,
            child: None,
            _etcd: etcd,
            _root: root,
        };
        server.spawn(0);
        server
    }

    /// The data directory (store, credentials, kubeconfig).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The per-server `HOME` kubectl runs with; a place for scratch files too.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    fn spawn(&mut self, port: u16) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("open the server log");
        let port = port.to_string();
        let data_dir = self.data_dir.to_str().expect("UTF-8 temp path");
        let mut args = vec!["server", "--data-dir", data_dir, "--port", port.as_str(), "--bind", "127.0.0.1"];
        // Tests share one machine: a server runs no node agent of its own (which would take the
        // default bridge and pod range); tests that need nodes start agents or simulators themselves.
        args.push("--no-agent");
        args.extend(self.extra_args.iter().map(String::as_str));
        let mut child = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(&args)
            .env("SKIFF_LOG", std::env::var("SKIFF_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn the skiff binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            // Keeps draining stdout for the life of the child so it never blocks on a full pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let mut addr = None;
        let mut kubeconfig = None;
        while addr.is_none() || kubeconfig.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("skiff server listening on https://") {
                        addr = Some(a.trim().parse::<SocketAddr>().expect("the listening line has host:port"));
                    } else if let Some(k) = line.strip_prefix("kubeconfig: ") {
                        kubeconfig = Some(PathBuf::from(k.trim()));
                    }
                }
                Err(_) => {
                    let status = child.try_wait().ok().flatten();
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "skiff server did not print its listening and kubeconfig lines within {START_TIMEOUT:?} (exit status: {status:?})\n--- server log ---\n{}",
                        self.log_text()
                    );
                }
            }
        }
        self.addr = addr.expect("address");
        self.kubeconfig = kubeconfig.expect("kubeconfig");
        self.child = Some(child);
        self.token = std::fs::read_to_string(self.data_dir.join("pki/admin.token"))
            .expect("read DATA_DIR/pki/admin.token")
            .trim()
            .to_string();
    }

    /// The server's stderr so far (for failure messages).
    pub fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// The child's PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9` the server (no chance to flush or clean up) and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (a graceful stop) and wait for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the server is running");
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = child.try_wait().expect("wait for the server") {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("skiff server did not exit within 30s of SIGTERM\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server with SIGKILL (if it runs) and starts it again on the same data directory, the
    /// same port and the same arguments, so kubeconfigs and clients made before stay valid.
    pub fn restart(&mut self) {
        self.kill9();
        let port = self.addr.port();
        self.spawn(port);
        assert_eq!(self.addr.port(), port, "the restarted server listens on the same port");
    }

    // ---------------------------------------------------------------- kubectl

    /// A kubectl command with `KUBECONFIG` and this server's private `HOME`.
    pub fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(kubectl_path());
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .env_remove("KUBE_EDITOR")
            .env_remove("EDITOR")
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs kubectl to completion.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with(args, None, &[])
    }

    /// Runs kubectl with `stdin` (e.g. a manifest for `-f -`) and extra environment variables.
    pub fn kubectl_with(&self, args: &[&str], stdin: Option<&str>, envs: &[(&str, &str)]) -> Output {
        let mut cmd = self.kubectl_command(args);
        cmd.envs(envs.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("spawn kubectl");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("piped stdin");
            pipe.write_all(input.as_bytes()).expect("write kubectl's stdin");
        }
        child.wait_with_output().expect("wait for kubectl")
    }

    /// Runs kubectl, asserts it succeeded, and returns its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        self.expect_success(args, &out)
    }

    /// Runs kubectl with stdin, asserts it succeeded, and returns its stdout.
    pub fn kubectl_stdin_ok(&self, args: &[&str], stdin: &str) -> String {
        let out = self.kubectl_with(args, Some(stdin), &[]);
        self.expect_success(args, &out)
    }

    /// Asserts a kubectl run succeeded; returns its stdout.
    pub fn expect_success(&self, args: &[&str], out: &Output) -> String {
        assert!(
            out.status.success(),
            "kubectl {} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- server log ---\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        String::from_utf8(out.stdout.clone()).expect("kubectl prints UTF-8")
    }

    /// Runs kubectl expecting failure; returns its stderr.
    pub fn kubectl_err(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {} should have failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `kubectl ... -o json` parsed.
    pub fn kubectl_json(&self, args: &[&str]) -> Value {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.kubectl_ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {} printed no JSON ({e}):\n{out}", all.join(" ")))
    }

    /// Starts a long-running kubectl (e.g. `get -w`) whose stdout is collected in the background.
    pub fn kubectl_spawn(&self, args: &[&str]) -> Background {
        let mut cmd = self.kubectl_command(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn kubectl");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        collect(child.stdout.take().expect("stdout"), stdout.clone());
        collect(child.stderr.take().expect("stderr"), stderr.clone());
        Background { child, stdout, stderr, what: args.join(" ") }
    }

    /// Writes a scratch file under this server's home and returns its path.
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.home.join(name);
        std::fs::write(&path, contents).expect("write a scratch file");
        path
    }

    // ---------------------------------------------------------------- kube client and raw HTTPS

    /// The `kube` client configuration read from the server's kubeconfig.
    pub async fn kube_config(&self) -> kube::Config {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read the server's kubeconfig");
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .expect("kube accepts the server's kubeconfig")
    }

    /// A `kube` client authenticated with the server's kubeconfig.
    pub async fn client(&self) -> kube::Client {
        install_crypto_provider();
        kube::Client::try_from(self.kube_config().await).expect("build a kube client")
    }

    /// A client that trusts the server's CA but sends no credentials (set `Authorization` yourself).
    pub async fn anonymous_client(&self) -> kube::Client {
        install_crypto_provider();
        let mut config = self.kube_config().await;
        config.auth_info = Default::default();
        kube::Client::try_from(config).expect("build a kube client")
    }

    /// A raw request with the admin token.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Vec<u8>>,
    ) -> RawResponse {
        let client = self.client().await;
        send_raw(&client, method, path, content_type, None, body.into()).await
    }

    /// A raw request with the given `Authorization` header (or none).
    pub async fn raw_with_auth(&self, authorization: Option<&str>, method: &str, path: &str) -> RawResponse {
        let client = self.anonymous_client().await;
        send_raw(&client, method, path, None, authorization, Vec::new()).await
    }

    /// GET of a JSON object, asserting 200.
    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.raw("GET", path, None, Vec::new()).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    }

    /// POST of a JSON object, asserting 201; returns the created object.
    pub async fn create_json(&self, path: &str, obj: &Value) -> Value {
        let r = self.raw("POST", path, Some("application/json"), obj.to_string()).await;
        assert_eq!(r.status, 201, "POST {path}: {}", r.text());
        r.json()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One HTTP response, read whole.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// Asserts this is a `Status` failure with this HTTP code and reason, and returns it.
    pub fn expect_status(&self, code: u16, reason: &str) -> Value {
        assert_eq!(self.status, code, "HTTP status; body: {}", self.text());
        let s = self.json();
        assert_eq!(s["kind"], "Status", "{s}");
        assert_eq!(s["apiVersion"], "v1", "{s}");
        assert_eq!(s["status"], "Failure", "{s}");
        assert_eq!(s["code"], code, "{s}");
        assert_eq!(s["reason"], reason, "{s}");
        let ct = self.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        assert!(ct.starts_with("application/json"), "Content-Type of a Status: {ct:?}");
        s
    }
}

/// Sends one request through a `kube` client and reads the whole response.
pub async fn send_raw(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    authorization: Option<&str>,
    body: Vec<u8>,
) -> RawResponse {
    let mut req = http::Request::builder().method(method).uri(path).header(http::header::ACCEPT, "application/json");
    if let Some(ct) = content_type {
        req = req.header(http::header::CONTENT_TYPE, ct);
    }
    if let Some(auth) = authorization {
        req = req.header(http::header::AUTHORIZATION, auth);
    }
    let req = req.body(kube::client::Body::from(body)).expect("build a request");
    let resp = client.send(req).await.unwrap_or_else(|e| panic!("{method} {path}: transport error: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect_bytes().await.expect("read the response body").to_vec();
    RawResponse { status, headers, body }
}

fn install_crypto_provider() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A long-running kubectl; killed (SIGKILL, by PID) on drop.
pub struct Background {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    what: String,
}

impl Background {
    pub fn stdout(&self) -> String {
        self.stdout.lock().expect("stdout lock").clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// Waits until `pred` holds for the stdout so far; panics with both streams after `timeout`.
    pub fn wait_for_stdout(&self, timeout: Duration, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.stdout();
            if pred(&out) {
                return out;
            }
            if Instant::now() > deadline {
                panic!(
                    "kubectl {}: no {what} within {timeout:?}\n--- stdout ---\n{out}\n--- stderr ---\n{}",
                    self.what,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => into.lock().expect("output lock").push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    });
}

/// The path of kubectl v1.35: `$SKIFF_KUBECTL` if set, else what `scripts/fetch-kubectl.sh` prints
/// (it downloads kubectl once into `target/tools`). Never skips: a missing kubectl is a failure.
pub fn kubectl_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Ok(p) = std::env::var("SKIFF_KUBECTL") {
            return PathBuf::from(p);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let script = root.join("scripts/fetch-kubectl.sh");
        // Test processes run in parallel (nextest): one fetch at a time.
        let lock_dir = root.join("target");
        std::fs::create_dir_all(&lock_dir).expect("create target/");
        let lock = std::fs::File::create(lock_dir.join(".fetch-kubectl.lock")).expect("create the fetch lock file");
        lock.lock().expect("lock the fetch lock file");
        let out = Command::new("bash").arg(&script).current_dir(&root).stderr(Stdio::inherit()).output();
        let _ = lock.unlock();
        let out = out.unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed ({}): kubectl v1.35 is required by these tests and could not be fetched",
            script.display(),
            out.status
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let path = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
        assert!(path.is_file(), "{} printed {stdout:?}, which is not a kubectl binary", script.display());
        path
    })
    .clone()
}

// ---------------------------------------------------------------- small helpers

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn poll<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut wait = Duration::from_millis(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(wait);
        wait = (wait * 2).min(Duration::from_millis(500));
    }
}

/// The cells of a kubectl table line: columns are separated by at least 3 spaces (tabwriter
/// padding), while header words such as `NOMINATED NODE` have one.
pub fn cells(line: &str) -> Vec<String> {
    line.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(str::to_string).collect()
}

/// The finished lines of `output`: those that end in a newline. A process still writing (`kubectl
/// get -w`) may have half a line at the end.
pub fn complete_lines(output: &str) -> impl Iterator<Item = &str> {
    output.split_inclusive('\n').filter_map(|l| l.strip_suffix('\n'))
}

/// The finished lines of `output` whose first cell is `first`.
pub fn rows<'a>(output: &'a str, first: &'a str) -> impl Iterator<Item = &'a str> {
    complete_lines(output).filter(move |l| l.split_whitespace().next() == Some(first))
}

/// The first finished line of `output` whose first cell is `first`.
pub fn row<'a>(output: &'a str, first: &'a str) -> Option<&'a str> {
    rows(output, first).next()
}

/// A kubectl AGE cell for something just created (`0s`, `5s`, `2m5s`...).
pub fn is_recent_age(age: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    match age.strip_suffix('s') {
        Some(secs) if digits(secs) => true,
        Some(rest) => rest.split_once('m').is_some_and(|(m, s)| digits(m) && digits(s)),
        None => age.strip_suffix('m').is_some_and(digits),
    }
}

/// A unique-enough suffix for names within one server.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Runs a command and asserts it succeeded.
pub fn run(cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed: {status}");
}
