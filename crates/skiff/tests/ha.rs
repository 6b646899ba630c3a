//! A highly available control plane on one machine: a three-member etcd cluster on loopback
//! ports, two `skiff server` processes sharing it (and one set of credentials), and a simulated
//! node agent given both servers (`--server A,B`, through its client-side load balancer). Driven by
//! the real kubectl against each server.
//!
//! Every process is started by this file and killed by its PID when its guard is dropped (also
//! when an assertion fails); every directory is a `TempDir` removed after its processes.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::{kubectl_path, poll};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

/// The leader election the servers run with (`--leader-elect-*`; kube-controller-manager's
/// defaults are 15 s / 10 s / 2 s): shorter, so the takeover is quick.
const LEASE_DURATION: Duration = Duration::from_secs(6);
const LEADER_ELECT: [&str; 6] =
    ["--leader-elect-lease-duration", "6s", "--leader-elect-renew-deadline", "4s", "--leader-elect-retry-period", "1s"];

// ------------------------------------------------------------------------------------ processes

/// A child process killed (SIGKILL, by its PID) and reaped on drop.
struct Proc(Option<Child>);

impl Proc {
    fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.0.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `n` lines of a log file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `n` distinct free ports: every listener is held until all are picked, so none repeats.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
    listeners.iter().map(|l| l.local_addr().expect("addr").port()).collect()
}

fn log_file(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open a log file")
}

// ------------------------------------------------------------------------------------ etcd

/// One member of the test etcd cluster.
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    proc: Proc,
    /// The length of its log when it was last started: what it logged before is an earlier run's.
    logged_before: u64,
}

/// Three etcd members forming one cluster on loopback ports, each with its own data directory.
struct EtcdCluster {
    members: Vec<Member>,
    // Dropped after the members (fields drop in order): removes their data directories and logs.
    dir: tempfile::TempDir,
}

fn etcd_binary() -> PathBuf {
    let path = std::env::var_os("SKIFF_ETCD_BIN").map_or_else(|| PathBuf::from("/usr/bin/etcd"), PathBuf::from);
    assert!(
        path.is_file(),
        "etcd not found at {}: install Debian's etcd-server (scripts/install-deps.sh) or set SKIFF_ETCD_BIN",
        path.display()
    );
    path
}

impl EtcdCluster {
    fn start(size: usize) -> EtcdCluster {
        let dir = tempfile::Builder::new().prefix("skiff-ha-etcd-").tempdir().expect("tempdir");
        let ports = free_ports(2 * size);
        let members = (0..size)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                proc: Proc(None),
                logged_before: 0,
            })
            .collect();
        let mut cluster = EtcdCluster { members, dir };
        for i in 0..size {
            cluster.spawn(i);
        }
        for i in 0..size {
            cluster.wait_healthy(i);
        }
        cluster
    }

    /// `http://127.0.0.1:P0,http://127.0.0.1:P1,...`
    fn endpoints(&self) -> String {
        self.members.iter().map(|m| format!("http://127.0.0.1:{}", m.client_port)).collect::<Vec<_>>().join(",")
    }

    fn log(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("{}.log", self.members[i].name))
    }

    fn spawn(&mut self, i: usize) {
        let initial = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let log = self.log(i);
        self.members[i].logged_before = std::fs::metadata(&log).map_or(0, |m| m.len());
        let m = &self.members[i];
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let child = Command::new(etcd_binary())
            .arg(format!("--name={}", m.name))
            .arg(format!("--data-dir={}", self.dir.path().join(&m.name).display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={initial}"))
            .arg("--initial-cluster-state=new")
            .arg("--initial-cluster-token=skiff-ha-test")
            .stdin(Stdio::null())
            .stdout(log_file(&log))
            .stderr(log_file(&log))
            .spawn()
            .expect("start etcd");
        self.members[i].proc = Proc(Some(child));
    }

    /// The member serves (see `skiff_store::testing::serves`: its own log, then `/health`).
    fn healthy(&self, i: usize) -> bool {
        let m = &self.members[i];
        skiff_store::testing::serves(&self.log(i), m.logged_before, m.client_port)
    }

    fn wait_healthy(&mut self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.healthy(i) {
                return;
            }
            if let Some(status) = self.members[i].proc.exited() {
                panic!("etcd member {i} exited with {status}:\n{}", tail(&self.log(i), 30));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("etcd member {i} did not become healthy within 60 s:\n{}", tail(&self.log(i), 30));
    }

    fn kill(&mut self, i: usize) {
        self.members[i].proc.kill();
    }

    /// `(member_id, leader)` from a member's `/v3/maintenance/status` (grpc-gateway JSON).
    fn status(&self, i: usize) -> Option<(String, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.members[i].client_port)).ok()?;
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = "POST /v3/maintenance/status HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        stream.write_all(request.as_bytes()).ok()?;
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        let body: Value = serde_json::from_str(answer.split_once("\r\n\r\n")?.1).ok()?;
        Some((body["header"]["member_id"].as_str()?.to_string(), body["leader"].as_str()?.to_string()))
    }

    /// The index of the Raft leader among the members.
    fn leader(&self) -> usize {
        poll(Duration::from_secs(10), "an etcd leader", || {
            (0..self.members.len()).find(|&i| self.status(i).is_some_and(|(me, leader)| me == leader))
        })
    }

    /// Starts every member again on its data directory and ports.
    fn restart_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
            self.spawn(i);
        }
        for i in 0..self.members.len() {
            self.wait_healthy(i);
        }
    }
}

// ------------------------------------------------------------------------------------ servers

/// A `skiff server --no-agent` on the etcd cluster, with a private `HOME` for kubectl.
struct HaServer {
    name: &'static str,
    addr: SocketAddr,
    kubeconfig: PathBuf,
    data_dir: PathBuf,
    home: PathBuf,
    log: PathBuf,
    proc: Proc,
    // Dropped last: removes the data directory, the home and the log.
    _root: tempfile::TempDir,
}

impl HaServer {
    /// Starts a server on `endpoints`; with `pki_from`, its credentials are a copy of that data
    /// directory's (servers sharing one etcd must share them).
    fn start(name: &'static str, endpoints: &str, pki_from: Option<&Path>) -> HaServer {
        let root = tempfile::Builder::new().prefix(&format!("skiff-ha-{name}-")).tempdir().expect("tempdir");
        let data_dir = root.path().join("data");
        let home = root.path().join("home");
        std::fs::create_dir_all(&home).expect("create home");
        if let Some(from) = pki_from {
            let to = data_dir.join("pki");
            std::fs::create_dir_all(&to).expect("create pki");
            for entry in std::fs::read_dir(from.join("pki")).expect("read pki") {
                let entry = entry.expect("pki entry");
                std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy pki");
            }
        }
        let mut server = HaServer {
            name,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            kubeconfig: data_dir.join("kubeconfig.yaml"),
            log: root.path().join("server.log"),
            data_dir,
            home,
            proc: Proc(None),
            _root: root,
        };
        server.spawn(endpoints);
        server
    }

    fn spawn(&mut self, endpoints: &str) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(["server", "--no-agent", "--bind", "127.0.0.1", "--port", "0", "--datastore-endpoint", endpoints])
            .args(LEADER_ELECT)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("SKIFF_LOG", std::env::var("SKIFF_LOG").unwrap_or_else(|_| "info".into()))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file(&self.log))
            .spawn()
            .expect("spawn skiff server");
        let stdout = child.stdout.take().expect("piped stdout");
        self.proc = Proc(Some(child));
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut addr, mut kubeconfig) = (None, None);
        while addr.is_none() || kubeconfig.is_none() {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("skiff server listening on https://") {
                        addr = Some(a.trim().parse::<SocketAddr>().expect("host:port"));
                    } else if let Some(k) = line.strip_prefix("kubeconfig: ") {
                        kubeconfig = Some(PathBuf::from(k.trim()));
                    }
                }
                Err(_) => panic!("server {} did not start:\n{}", self.name, tail(&self.log, 40)),
            }
        }
        self.addr = addr.expect("address");
        self.kubeconfig = kubeconfig.expect("kubeconfig");
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("pki/admin.token")).expect("read the token").trim().to_string()
    }

    fn ca(&self) -> PathBuf {
        self.data_dir.join("pki/ca.crt")
    }

    /// Whether this server's log names `identity` (it logs the identity it elects with).
    fn has_identity(&self, identity: &str) -> bool {
        std::fs::read_to_string(&self.log).unwrap_or_default().contains(identity)
    }

    fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(kubectl_path());
        cmd.args(args).env("KUBECONFIG", &self.kubeconfig).env("HOME", &self.home).stdin(Stdio::null());
        cmd
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = self.kubectl_command(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("spawn kubectl");
        if let Some(input) = stdin {
            child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("wait for kubectl")
    }

    fn kubectl_ok(&self, args: &[&str]) -> String {
        self.kubectl_stdin_ok(args, None)
    }

    fn kubectl_stdin_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {} against server {} failed: {}\n--- server log ---\n{}",
            args.join(" "),
            self.name,
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log, 40)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn kubectl_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.kubectl_ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {} printed no JSON ({e}): {out}", all.join(" ")))
    }

    /// A long-running kubectl whose stdout is collected in the background.
    fn kubectl_spawn(&self, args: &[&str]) -> Streaming {
        let mut child =
            self.kubectl_command(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn kubectl");
        let stdout = child.stdout.take().expect("stdout");
        let out = Arc::new(Mutex::new(String::new()));
        let into = out.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                into.lock().expect("lock").push_str(&line);
                line.clear();
            }
        });
        Streaming { _proc: Proc(Some(child)), out }
    }

    /// The holder of the Lease `kube-system/<name>`, if it exists.
    fn lease_seconds(&self, name: &str) -> String {
        let path = "jsonpath={.spec.leaseDurationSeconds}";
        let out = self.kubectl(&["get", "lease", "-n", "kube-system", name, "-o", path], None);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn lease_holder(&self, name: &str) -> Option<String> {
        let out =
            self.kubectl(&["get", "lease", "-n", "kube-system", name, "-o", "jsonpath={.spec.holderIdentity}"], None);
        let holder = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !holder.is_empty()).then_some(holder)
    }
}

/// A kubectl that keeps printing (a watch); killed by its PID on drop.
struct Streaming {
    _proc: Proc,
    out: Arc<Mutex<String>>,
}

impl Streaming {
    fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.out.lock().expect("lock").clone();
            if pred(&out) {
                return;
            }
            assert!(Instant::now() < deadline, "no {what} within {timeout:?}; the watch printed:\n{out}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `skiff agent --simulate N` given several servers.
fn start_agent(servers: &[&HaServer], prefix: &str, count: usize, log: &Path) -> Proc {
    let urls = servers.iter().map(|s| s.url()).collect::<Vec<_>>().join(",");
    let child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["agent", "--simulate", &count.to_string(), "--node-name", prefix, "--server", &urls])
        // Pods take a second to become Ready, so a rollout lasts long enough to be interrupted.
        .args(["--ready-delay", "1000"])
        .arg("--token")
        .arg(servers[0].token())
        .arg("--certificate-authority")
        .arg(servers[0].ca())
        .env("SKIFF_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file(log))
        .spawn()
        .expect("start the node simulator");
    Proc(Some(child))
}

// ------------------------------------------------------------------------------------ checks

fn condition_true(obj: &Value, kind: &str) -> bool {
    obj["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == kind && c["status"] == "True"))
}

fn ready_nodes(s: &HaServer, prefix: &str) -> usize {
    let nodes = s.kubectl_json(&["get", "nodes"]);
    nodes["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|n| n["metadata"]["name"].as_str().is_some_and(|name| name.starts_with(prefix)))
                .filter(|n| condition_true(n, "Ready"))
                .count()
        })
        .unwrap_or(0)
}

/// `(replicas, updatedReplicas, availableReplicas, Available=True)` of a Deployment whose status
/// reflects its latest spec (else `None`).
fn deployment_state(s: &HaServer, name: &str) -> Option<(i64, i64, i64, bool)> {
    let d = s.kubectl_json(&["get", "deployment", name]);
    let status = &d["status"];
    (status["observedGeneration"] == d["metadata"]["generation"]).then(|| {
        (
            status["replicas"].as_i64().unwrap_or(0),
            status["updatedReplicas"].as_i64().unwrap_or(0),
            status["availableReplicas"].as_i64().unwrap_or(0),
            condition_true(&d, "Available"),
        )
    })
}

/// Waits until the Deployment has `n` replicas, all updated and available.
fn wait_complete(s: &HaServer, name: &str, n: i64, what: &str) {
    poll(Duration::from_secs(90), what, || (deployment_state(s, name) == Some((n, n, n, true))).then_some(()));
}

/// The images of the live (not terminating) pods of `app=<name>`.
fn live_pod_images(s: &HaServer, name: &str) -> Vec<String> {
    let pods = s.kubectl_json(&["get", "pods", "-l", &format!("app={name}")]);
    let items = pods["items"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| p["spec"]["containers"][0]["image"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The renewTime of the node Lease `kube-node-lease/<node>`.
fn node_lease_renewed(s: &HaServer, node: &str) -> Option<Timestamp> {
    let out = s.kubectl(&["get", "lease", "-n", "kube-node-lease", node, "-o", "jsonpath={.spec.renewTime}"], None);
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

const DEPLOYMENT: &str = r#"{
  "apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "web", "namespace": "default"},
  "spec": {
    "replicas": 3,
    "selector": {"matchLabels": {"app": "web"}},
    "template": {
      "metadata": {"labels": {"app": "web"}},
      "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
    }
  }
}"#;

// ------------------------------------------------------------------------------------ the test

/// Two servers on a three-member etcd cluster serve one API; the server holding the controllers'
/// Lease dies and the other takes over; an etcd member dies and writes go on; everything is killed
/// and restarted and nothing is lost.
#[test]
fn two_servers_on_three_etcd_members() {
    let mut etcd = EtcdCluster::start(3);
    let endpoints = etcd.endpoints();
    let a = HaServer::start("a", &endpoints, None);
    let b = HaServer::start("b", &endpoints, Some(&a.data_dir));
    assert_eq!(a.token(), b.token(), "the servers share credentials");

    // --- An object written through one server is read and watched through the other.
    a.kubectl_ok(&["create", "configmap", "shared", "--from-literal=v=1"]);
    let via_a = a.kubectl_json(&["get", "configmap", "shared"]);
    let rv_a = via_a["metadata"]["resourceVersion"].as_str().expect("resourceVersion").to_string();
    let via_b = poll(Duration::from_secs(5), "the ConfigMap through server b", || {
        let out = b.kubectl(&["get", "configmap", "shared", "-o", "json"], None);
        out.status.success().then(|| serde_json::from_slice::<Value>(&out.stdout).expect("JSON"))
    });
    assert_eq!(via_b["data"]["v"], "1");
    assert_eq!(via_b["metadata"]["uid"], via_a["metadata"]["uid"]);
    assert_eq!(via_b["metadata"]["resourceVersion"], via_a["metadata"]["resourceVersion"], "one etcd revision");

    // A watch on b from the resourceVersion a answered sees the change made through a, and so does
    // a plain `kubectl get -w` on b.
    let raw_watch = b.kubectl_spawn(&[
        "get",
        "--raw",
        &format!(
            "/api/v1/namespaces/default/configmaps?watch=1&fieldSelector=metadata.name%3Dshared&resourceVersion={rv_a}"
        ),
    ]);
    let get_watch = b.kubectl_spawn(&["get", "configmap", "shared", "-w", "-o", "jsonpath={.data.v}{\"\\n\"}"]);
    get_watch.wait_for("the initial state through b", Duration::from_secs(15), |out| out.lines().any(|l| l == "1"));
    a.kubectl_ok(&["patch", "configmap", "shared", "-p", r#"{"data":{"v":"2"}}"#]);
    let rv_2 = a.kubectl_ok(&["get", "configmap", "shared", "-o", "jsonpath={.metadata.resourceVersion}"]);
    get_watch.wait_for("the change made through a", Duration::from_secs(15), |out| out.lines().any(|l| l == "2"));
    raw_watch.wait_for("a MODIFIED event from the revision a answered", Duration::from_secs(15), |out| {
        serde_json::Deserializer::from_str(out).into_iter::<Value>().map_while(Result::ok).any(|e| {
            e["type"] == "MODIFIED"
                && e["object"]["data"]["v"] == "2"
                && e["object"]["metadata"]["resourceVersion"] == rv_2.trim()
        })
    });
    drop((raw_watch, get_watch));

    // --- Find the controllers' leader; the agent's first server is the leader, so killing it also
    // makes the agent's load balancer fail over.
    let holder = poll(Duration::from_secs(30), "a kube-controller-manager Lease holder", || {
        a.kubectl(&["get", "ns", "kube-system"], None); // keeps kubectl's discovery cache warm
        a.lease_holder("kube-controller-manager")
    });
    let (mut leader, survivor) = if a.has_identity(&holder) {
        (a, b)
    } else {
        assert!(b.has_identity(&holder), "neither server logged the Lease holder {holder}");
        (b, a)
    };
    println!("kube-controller-manager Lease held by server {} ({holder})", leader.name);
    let agent_dir = tempfile::Builder::new().prefix("skiff-ha-agent-").tempdir().expect("tempdir");
    let agent_log = agent_dir.path().join("agent.log");
    let mut agent = start_agent(&[&leader, &survivor], "ha", 3, &agent_log);
    poll(Duration::from_secs(60), "3 simulated nodes Ready", || (ready_nodes(&survivor, "ha-") == 3).then_some(()));

    // --- A Deployment becomes Available.
    leader.kubectl_stdin_ok(&["apply", "-f", "-"], Some(DEPLOYMENT));
    wait_complete(&survivor, "web", 3, "deployment web Available with 3 replicas");

    // --- Mid-rollout, SIGKILL the leader: the survivor takes the Lease over, its controllers finish
    // the rollout and scale.
    leader.kubectl_ok(&["set", "image", "deployment/web", "web=nginx:1.28"]);
    poll(Duration::from_secs(30), "the rollout to start", || {
        live_pod_images(&survivor, "web").iter().any(|i| i == "nginx:1.28").then_some(())
    });
    let killed_at = Instant::now();
    let killed_ts = Timestamp::now();
    leader.proc.kill();
    let new_holder = poll(LEASE_DURATION * 3, "the surviving server to take the Lease over", || {
        survivor.lease_holder("kube-controller-manager").filter(|h| *h != holder)
    });
    let takeover = killed_at.elapsed();
    assert_eq!(survivor.lease_seconds("kube-controller-manager"), "6", "--leader-elect-lease-duration");
    println!("controller Lease taken over by server {} after {takeover:.1?} ({new_holder})", survivor.name);
    assert!(survivor.has_identity(&new_holder), "the new holder {new_holder} is the surviving server");
    wait_complete(&survivor, "web", 3, "the interrupted rollout to finish");
    println!("rollout finished through server {} {:.1?} after the kill", survivor.name, killed_at.elapsed());
    survivor.kubectl_ok(&["scale", "deployment", "web", "--replicas=5"]);
    wait_complete(&survivor, "web", 5, "deployment web Available with 5 replicas");
    poll(Duration::from_secs(30), "5 live pods, all of the new template", || {
        (live_pod_images(&survivor, "web") == vec!["nginx:1.28"; 5]).then_some(())
    });
    println!("scaled to 5 through server {} {:.1?} after the kill", survivor.name, killed_at.elapsed());

    // The agent renews its node Leases through the surviving server.
    poll(Duration::from_secs(40), "every node Lease renewed after the kill", || {
        (0..3).all(|i| node_lease_renewed(&survivor, &format!("ha-{i}")).is_some_and(|t| t > killed_ts)).then_some(())
    });
    assert_eq!(ready_nodes(&survivor, "ha-"), 3, "nodes stay Ready");
    assert!(agent.exited().is_none(), "the agent runs:\n{}", tail(&agent_log, 30));
    assert!(
        std::fs::read_to_string(&agent_log).unwrap_or_default().contains("load balancer switched server"),
        "the agent's load balancer moved to the surviving server:\n{}",
        tail(&agent_log, 30)
    );

    // --- The etcd leader dies: the API keeps working on the other two members.
    let etcd_leader = etcd.leader();
    etcd.kill(etcd_leader);
    let member_killed = Instant::now();
    // A write proposed just as the leader died times out in etcd (its request timeout: 5 s and two
    // election timeouts, 7 s by default): the answer is an error, and the next write succeeds.
    poll(Duration::from_secs(30), "a write with one etcd member down", || {
        let out = survivor.kubectl(&["create", "configmap", "after-etcd-kill", "--from-literal=v=1"], None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        (out.status.success() || stderr.contains("already exists")).then_some(())
    });
    println!("first write {:.1?} after the etcd leader (member {etcd_leader}) was killed", member_killed.elapsed());
    for i in 0..5 {
        survivor.kubectl_ok(&["create", "configmap", &format!("quorum-{i}"), "--from-literal=v=1"]);
    }
    survivor.kubectl_ok(&["scale", "deployment", "web", "--replicas=4"]);
    wait_complete(&survivor, "web", 4, "deployment web scaled to 4 on two etcd members");

    // --- kill -9 everything, restart: nothing is lost.
    agent.kill();
    let mut survivor = survivor;
    survivor.proc.kill();
    for i in 0..3 {
        etcd.kill(i);
    }
    etcd.restart_all();
    survivor.spawn(&etcd.endpoints());
    let names = survivor.kubectl_ok(&["get", "configmaps", "-o", "name"]);
    for want in ["shared", "after-etcd-kill", "quorum-0", "quorum-4"] {
        assert!(names.lines().any(|l| l == format!("configmap/{want}")), "configmap {want} after a restart:\n{names}");
    }
    assert_eq!(survivor.kubectl_json(&["get", "configmap", "shared"])["data"]["v"], "2");
    let d = survivor.kubectl_json(&["get", "deployment", "web"]);
    assert_eq!(d["spec"]["replicas"], 4);
}
