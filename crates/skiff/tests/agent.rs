//! End-to-end: `skiff agent` (the real one, runc containers on a CNI bridge) against `skiff server`,
//! driven with the real kubectl.
//!
//! Needs root, runc, the CNI plugins and busybox-static (scripts/install-deps.sh). The agent gets
//! its own data directory, bridge and pod subnet; the test deletes its pods (so the agent releases
//! containers, network namespaces and mounts) before killing the agent, and a [`Drop`] safety net
//! removes whatever a failing test left behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::image::{IMAGE, build_image, import_image};
use common::node::{blackhole_present, cni_nat_rules, remove_agent_leftovers};
use common::{Server, poll, run};
use serde_json::{Value, json};

/// A running `skiff agent`; dropping it kills it (by PID) and removes what it left: runc
/// containers, mounts under its data directory, its bridge.
struct Agent {
    child: Option<Child>,
    /// The `skiff` arguments it was started with (a restart reuses them).
    args: Vec<String>,
    data_dir: PathBuf,
    bridge: String,
    log: PathBuf,
    /// Whether the cluster CIDR's blackhole route was absent before the agent added it (then the
    /// test removes it again).
    added_blackhole: bool,
    _tmp: tempfile::TempDir,
}

const CLUSTER_CIDR: &str = "10.244.0.0/16";

impl Agent {
    /// `n` picks the bridge `skag<n>` and subnet `10.244.<n>.0/24`.
    fn start(server: &Server, node: &str, n: u8) -> Agent {
        Agent::start_with(server, node, n, &[])
    }

    /// [`Agent::start`] with extra `skiff agent` arguments.
    fn start_with(server: &Server, node: &str, n: u8, extra: &[&str]) -> Agent {
        let tmp = tempfile::Builder::new().prefix("skiff-agent-e2e-").tempdir().expect("tempdir");
        let data_dir = tmp.path().join("data");
        import_image(&data_dir, &build_image(tmp.path()));
        let bridge = format!("skag{n}");
        let added_blackhole = !blackhole_present(CLUSTER_CIDR);
        let log = tmp.path().join("agent.log");
        let kubeconfig = server.data_dir().join("kubeconfig.yaml");
        let mut args: Vec<String> = vec!["agent".into(), "--kubeconfig".into(), kubeconfig.display().to_string()];
        args.extend(["--node-name", node, "--data-dir"].map(String::from));
        args.push(data_dir.display().to_string());
        let pod_cidr = format!("10.244.{n}.0/24");
        args.extend(["--pod-cidr", &pod_cidr, "--cluster-cidr", CLUSTER_CIDR, "--bridge", &bridge].map(String::from));
        args.extend(["--kubelet-port", "0"].map(String::from));
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut agent = Agent { child: None, args, data_dir, bridge, log, added_blackhole, _tmp: tmp };
        agent.spawn();
        agent
    }

    /// Starts the `skiff agent` process, appending to its log.
    fn spawn(&mut self) {
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("agent log");
        let child = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(&self.args)
            .env("SKIFF_LOG", std::env::var("SKIFF_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("spawn skiff agent");
        self.child = Some(child);
    }

    /// SIGKILLs the agent process (by its PID); its containers keep running.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn runc_root(&self) -> PathBuf {
        self.data_dir.join("runc")
    }

    /// The runc container IDs under the agent's runc root.
    fn runc_containers(&self) -> Vec<String> {
        common::node::runc_containers(&self.runc_root())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("SKIFF_E2E_AGENT_LOG").is_some() {
            eprintln!("--- agent log ---\n{}", self.log_text());
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let blackhole = self.added_blackhole.then_some(CLUSTER_CIDR);
        remove_agent_leftovers(&self.data_dir, &self.data_dir, &self.bridge, blackhole);
    }
}

fn pod(s: &Server, name: &str) -> Option<Value> {
    let out = s.kubectl(&["get", "pod", name, "-o", "json"]);
    out.status.success().then(|| serde_json::from_slice(&out.stdout).ok()).flatten()
}

fn condition(pod: &Value, kind: &str) -> Option<String> {
    pod["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == kind)?["status"].as_str().map(str::to_string)
}

/// Waits until `name` is Running and Ready; returns the pod.
fn wait_ready(s: &Server, agent: &Agent, name: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(p) = pod(s, name)
            && p["status"]["phase"] == "Running"
            && condition(&p, "Ready").as_deref() == Some("True")
        {
            return p;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "pod {name} did not become Running and Ready: {}\n--- agent log ---\n{}",
                pod(s, name).map(|p| p["status"].to_string()).unwrap_or_default(),
                agent.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The contents of a CRI log file (the fourth field of each line).
fn log_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3).map(str::to_string))
        .collect()
}

fn delete_and_wait(s: &Server, name: &str) {
    s.kubectl_ok(&["delete", "pod", name, "--timeout=90s"]);
    poll(Duration::from_secs(30), "the pod to be gone", || pod(s, name).is_none().then_some(()));
}

fn wait_node_ready(s: &Server, name: &str) {
    poll(Duration::from_secs(60), "the node to be Ready", || {
        let out = s.kubectl(&["get", "node", name, "-o", "json"]);
        let node: Value = serde_json::from_slice(&out.stdout).ok()?;
        (condition(&node, "Ready").as_deref() == Some("True")).then_some(())
    });
}

/// The first container status of pod `name`.
fn container_status(s: &Server, name: &str) -> Value {
    pod(s, name).map(|p| p["status"]["containerStatuses"][0].clone()).unwrap_or_default()
}

#[test]
fn agent_runs_pods_with_runc() {
    let s = Server::start();
    let agent = Agent::start(&s, "e2e-runc", 210);
    wait_node_ready(&s, "e2e-runc");

    // One container: runs, gets an IP from the node's subnet, logs, is deleted gracefully.
    s.kubectl_ok(&[
        "run",
        "hello",
        &format!("--image={IMAGE}"),
        "--image-pull-policy=Never",
        "--restart=Never",
        "--command",
        "--",
        "sh",
        "-c",
        "trap 'exit 0' TERM; echo hello; sleep 3600 & wait",
    ]);
    let p = wait_ready(&s, &agent, "hello");
    let ip = p["status"]["podIP"].as_str().expect("podIP").to_string();
    assert!(ip.starts_with("10.244.210."), "podIP {ip} is in the node's pod CIDR");
    assert_eq!(p["status"]["podIPs"], json!([{"ip": ip}]));
    assert_eq!(p["spec"]["nodeName"], "e2e-runc");
    let status = &p["status"]["containerStatuses"][0];
    assert_eq!((status["name"].as_str(), status["ready"].as_bool()), (Some("hello"), Some(true)));
    assert!(status["state"]["running"]["startedAt"].is_string(), "{status}");
    assert!(status["imageID"].as_str().is_some_and(|id| id.starts_with("localhost/skiff-test@sha256:")), "{status}");
    let uid = p["metadata"]["uid"].as_str().expect("uid").to_string();
    let log = agent.data_dir.join("pods").join(&uid).join("logs/hello/0.log");
    poll(Duration::from_secs(10), "the container's log", || {
        log_lines(&log).contains(&"hello".to_string()).then_some(())
    });
    assert_eq!(agent.runc_containers().len(), 1, "one runc container");
    // The per-pod and per-container directories' parents spread their children, where the file
    // system has the attribute (ext4 here): a probe directory beside them says whether it does.
    let probe = agent.data_dir.with_extension("mark-probe");
    let supported = skiff_runtime::spread::create(&probe).expect("probe dir");
    let _ = std::fs::remove_dir(&probe);
    for dir in ["pods", "containers", "runc", "sandboxes"] {
        let marked = skiff_runtime::spread::is_marked(&agent.data_dir.join(dir));
        assert_eq!(marked, supported, "{dir} carries the T attribute where the file system has it");
    }
    // Pods leave the cluster masqueraded by the agent's one rule set, not a chain per pod.
    let postrouting =
        Command::new("iptables").args(["-w", "-t", "nat", "-S", "POSTROUTING"]).output().expect("iptables");
    let jump = format!(
        "-A POSTROUTING -s 10.244.210.0/24 -m comment --comment \"skiff: pods of {0}\" -j SKIFF-MASQ-{0}",
        agent.bridge
    );
    assert!(String::from_utf8_lossy(&postrouting.stdout).lines().any(|l| l == jump), "{jump} is installed");
    assert_eq!(cni_nat_rules(&agent.bridge), Vec::<String>::new(), "no per-pod NAT rules");

    // Two containers in one pod share the network namespace: wget reaches httpd on localhost.
    // The server's exec readiness probe runs through `runc exec`. (httpd as PID 1 ignores SIGTERM:
    // a short grace period keeps the deletion quick.)
    let manifest = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 2, "containers": [
            {"name": "server", "image": IMAGE, "imagePullPolicy": "Never",
             "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
             "readinessProbe": {"exec": {"command": ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]},
                                "periodSeconds": 1}},
            {"name": "client", "image": IMAGE, "imagePullPolicy": "Never",
             "command": ["sh", "-c",
                "trap 'exit 0' TERM; until wget -q -O- http://127.0.0.1:8080/; do sleep 0.2; done; sleep 3600 & wait"]},
        ]},
    });
    s.kubectl_stdin_ok(&["create", "-f", "-"], &manifest.to_string());
    let web = wait_ready(&s, &agent, "web");
    let server = web["status"]["containerStatuses"].as_array().and_then(|a| a.iter().find(|c| c["name"] == "server"));
    assert_eq!(server.map(|c| c["ready"].clone()), Some(json!(true)), "the exec probe passed: {web}");
    let web_uid = web["metadata"]["uid"].as_str().expect("uid").to_string();
    let client_log = agent.data_dir.join("pods").join(&web_uid).join("logs/client/0.log");
    poll(Duration::from_secs(20), "the client to fetch the page over localhost", || {
        log_lines(&client_log).contains(&"hello from skiff".to_string()).then_some(())
    });
    assert_eq!(agent.runc_containers().len(), 3, "three runc containers");

    delete_and_wait(&s, "hello");
    delete_and_wait(&s, "web");
    poll(Duration::from_secs(30), "the runc containers to be removed", || {
        agent.runc_containers().is_empty().then_some(())
    });
    assert!(
        !agent.data_dir.join("sandboxes").join(&uid).exists(),
        "the sandbox directory of the deleted pod is removed"
    );
    assert_eq!(cni_nat_rules(&agent.bridge), Vec::<String>::new(), "no per-pod NAT rules");
    drop(agent);
    let postrouting =
        Command::new("iptables").args(["-w", "-t", "nat", "-S", "POSTROUTING"]).output().expect("iptables");
    assert!(
        !String::from_utf8_lossy(&postrouting.stdout).contains("SKIFF-MASQ-skag210"),
        "the clean-up removes the rules"
    );
}

/// `kubectl logs` (-f, --previous, --timestamps) and `kubectl exec` (exit codes, stdin) go through
/// the API server to the agent's kubelet server; a crashing container is restarted and counted; a
/// container past its memory limit is reported OOMKilled.
#[test]
fn kubectl_logs_exec_restarts_and_oom() {
    let s = Server::start();
    let agent = Agent::start(&s, "e2e-streams", 211);
    wait_node_ready(&s, "e2e-streams");
    let image = format!("--image={IMAGE}");
    s.kubectl_ok(&[
        "run",
        "talk",
        &image,
        "--image-pull-policy=Never",
        "--restart=Never",
        "--command",
        "--",
        "sh",
        "-c",
        "trap 'exit 0' TERM; echo first; sleep 3600 & wait",
    ]);
    wait_ready(&s, &agent, "talk");
    poll(Duration::from_secs(10), "kubectl logs to show the first line", || {
        (s.kubectl_ok(&["logs", "talk"]) == "first\n").then_some(())
    });
    let stamped = s.kubectl_ok(&["logs", "talk", "--timestamps"]);
    let (stamp, line) = stamped.trim_end().split_once(' ').expect("a timestamp, a space, the line");
    assert_eq!(line, "first");
    assert!(stamp.parse::<k8s_openapi::jiff::Timestamp>().is_ok(), "an RFC 3339 timestamp: {stamped}");

    // `logs -f` keeps streaming: a line the container writes later arrives while kubectl runs.
    let mut follow = s.kubectl_spawn(&["logs", "-f", "talk"]);
    follow.wait_for_stdout(Duration::from_secs(20), "the first line", |o| o.contains("first"));
    s.kubectl_ok(&["exec", "talk", "--", "sh", "-c", "echo later > /proc/1/fd/1"]);
    follow.wait_for_stdout(Duration::from_secs(20), "the later line", |o| o == "first\nlater\n");
    assert!(!follow.exited(), "kubectl logs -f is still following");
    drop(follow);

    // exec: separate stdout and stderr, the remote exit code becomes kubectl's.
    let out = s.kubectl(&["exec", "talk", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("err\n"), "{stderr}");
    assert!(stderr.contains("command terminated with exit code 3"), "{stderr}");
    // exec -i: stdin reaches the process, and its end ends `cat`.
    let out = s.kubectl_with(&["exec", "-i", "talk", "--", "cat"], Some("piped input\n"), &[]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped input\n");
    // The process runs in the pod: its UTS namespace carries the pod's hostname.
    assert_eq!(s.kubectl_ok(&["exec", "talk", "--", "hostname"]), "talk\n");
    // A command that does not exist is an error, not a hang.
    let out = s.kubectl(&["exec", "talk", "--", "no-such-command"]);
    assert!(!out.status.success(), "{out:?}");
    // Bad input answered by the API server before any agent is involved.
    let err = s.kubectl_err(&["logs", "talk", "-c", "nope"]);
    assert!(err.contains("container nope is not valid for pod talk"), "{err}");

    // A crashing container is restarted, counted, and its previous instance's log kept.
    s.kubectl_ok(&[
        "run",
        "crash",
        &image,
        "--image-pull-policy=Never",
        "--command",
        "--",
        "sh",
        "-c",
        "echo crashed-once; exit 1",
    ]);
    let status = poll(Duration::from_secs(90), "a restart", || {
        let st = container_status(&s, "crash");
        (st["restartCount"].as_u64().unwrap_or(0) >= 1 && st["lastState"]["terminated"]["exitCode"] == 1).then_some(st)
    });
    assert_eq!(status["lastState"]["terminated"]["reason"], "Error", "{status}");
    assert_eq!(s.kubectl_ok(&["logs", "crash", "--previous"]), "crashed-once\n");
    poll(Duration::from_secs(60), "CrashLoopBackOff", || {
        (container_status(&s, "crash")["state"]["waiting"]["reason"] == "CrashLoopBackOff").then_some(())
    });
    let row = s.kubectl_ok(&["get", "pod", "crash", "--no-headers"]);
    assert!(row.contains("CrashLoopBackOff"), "{row}");

    // A container past its memory limit is killed by the kernel and reported OOMKilled.
    let hog = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hog"},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "hog", "image": IMAGE, "imagePullPolicy": "Never",
            "command": ["sh", "-c", "x=aaaaaaaa; while true; do x=$x$x; done"],
            "resources": {"limits": {"memory": "32Mi"}}}]},
    });
    s.kubectl_stdin_ok(&["create", "-f", "-"], &hog.to_string());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let terminated = loop {
        let st = container_status(&s, "hog");
        if st["state"]["terminated"].is_object() {
            break st["state"]["terminated"].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the hog was not OOM-killed: {}\n--- agent log ---\n{}",
            pod(&s, "hog").map(|p| p["status"].to_string()).unwrap_or_default(),
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(terminated["reason"], "OOMKilled", "{terminated}");
    assert_eq!(terminated["exitCode"], 137, "{terminated}");
    let row = s.kubectl_ok(&["get", "pod", "hog", "--no-headers"]);
    assert!(row.contains("OOMKilled"), "{row}");

    // A pod that runs to completion stays completed (never restarted) and keeps its logs.
    s.kubectl_ok(&[
        "run",
        "once",
        &image,
        "--image-pull-policy=Never",
        "--restart=Never",
        "--command",
        "--",
        "sh",
        "-c",
        "echo done-once",
    ]);
    poll(Duration::from_secs(60), "the pod to succeed", || {
        (pod(&s, "once")?["status"]["phase"] == "Succeeded").then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let once = pod(&s, "once").expect("the completed pod");
    assert_eq!(once["status"]["phase"], "Succeeded", "{once}");
    assert_eq!(once["status"]["containerStatuses"][0]["state"]["terminated"]["reason"], "Completed", "{once}");
    assert_eq!(once["status"]["containerStatuses"][0]["restartCount"], 0, "{once}");
    assert_eq!(s.kubectl_ok(&["logs", "once"]), "done-once\n");

    // Bad input ends in the pod's status, never in a crash: an image that cannot be pulled (a
    // registry address on loopback where nothing listens) backs off; a command that does not exist
    // is reported with its name.
    s.kubectl_ok(&["run", "nopull", "--image=127.0.0.1:9/skiff-none:v1", "--restart=Never"]);
    poll(Duration::from_secs(90), "ImagePullBackOff", || {
        (container_status(&s, "nopull")["state"]["waiting"]["reason"] == "ImagePullBackOff").then_some(())
    });
    let events = s.kubectl_ok(&["get", "events", "--field-selector", "involvedObject.name=nopull"]);
    assert!(events.contains("Failed") && events.contains("ErrImagePull"), "{events}");
    s.kubectl_ok(&[
        "run",
        "nocmd",
        &image,
        "--image-pull-policy=Never",
        "--restart=Never",
        "--command",
        "--",
        "no-such-command",
    ]);
    let reported = poll(Duration::from_secs(60), "the failed start to be reported", || {
        let st = container_status(&s, "nocmd");
        let state = st["state"].as_object()?.values().next()?.clone();
        state["message"].as_str().is_some_and(|m| m.contains("no-such-command")).then_some(st)
    });
    assert_eq!(reported["ready"], false, "{reported}");
    wait_node_ready(&s, "e2e-streams");

    for name in ["talk", "crash", "hog", "once", "nopull", "nocmd"] {
        delete_and_wait(&s, name);
    }
    poll(Duration::from_secs(30), "the runc containers to be removed", || {
        agent.runc_containers().is_empty().then_some(())
    });
    assert_eq!(cni_nat_rules(&agent.bridge), Vec::<String>::new(), "CNI DEL removed the pods' NAT rules");
    drop(agent);
}

/// A `kubectl port-forward` running in the background, its output in files; killed by its PID on
/// drop.
struct PortForward {
    child: Child,
    out: PathBuf,
    err: PathBuf,
    _dir: tempfile::TempDir,
}

impl PortForward {
    /// Starts `kubectl port-forward pod/POD MAPPINGS...` with extra environment variables and
    /// waits until it listens on every local port.
    fn start(s: &Server, pod: &str, mappings: &[(u16, u16)], envs: &[(&str, &str)], extra: &[&str]) -> PortForward {
        let dir = tempfile::tempdir().expect("tempdir");
        let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
        let target = format!("pod/{pod}");
        let specs: Vec<String> = mappings.iter().map(|(l, r)| format!("{l}:{r}")).collect();
        let mut args = vec!["port-forward", target.as_str()];
        args.extend(specs.iter().map(String::as_str));
        args.extend(extra);
        let child = s
            .kubectl_command(&args)
            .envs(envs.iter().copied())
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .spawn()
            .expect("spawn kubectl port-forward");
        let mut pf = PortForward { child, out, err, _dir: dir };
        for (local, remote) in mappings {
            let line = format!("Forwarding from 127.0.0.1:{local} -> {remote}");
            poll(Duration::from_secs(30), "kubectl port-forward to listen", || {
                assert!(!pf.exited(), "kubectl port-forward exited: {}", pf.stderr());
                pf.stdout().contains(&line).then_some(())
            });
        }
        pf
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A local port nothing listens on (bound and released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("addr").port()
}

/// Sends an HTTP/1.0 GET for `path` to 127.0.0.1:`port` and returns the whole response.
fn pf_try_get(port: u16, path: &str) -> std::io::Result<String> {
    http_request(std::net::SocketAddr::from(([127, 0, 0, 1], port)), path)
}

fn pf_get(port: u16, path: &str) -> String {
    pf_try_get(port, path).unwrap_or_else(|e| panic!("GET {path} through 127.0.0.1:{port}: {e}"))
}

/// The body of an HTTP response, asserting a 200.
fn body_of(response: &str) -> &str {
    assert!(response.starts_with("HTTP/1.") && response.contains(" 200 "), "not a 200: {response:?}");
    response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default()
}

/// `kubectl port-forward` through the API server to the agent: the default WebSocket tunnel and
/// the native SPDY upgrade (`KUBECTL_PORT_FORWARD_WEBSOCKETS=false`) both carry HTTP to busybox
/// httpd in a runc pod, repeatedly and with connections open at the same time; a server bound to
/// the pod's 127.0.0.1 only is reached (the dial happens inside the pod's network namespace); a
/// port nothing listens on gives kubelet's error through kubectl, which then drops the connection
/// as upstream 1.35 does.
#[test]
fn kubectl_port_forward() {
    let s = Server::start();
    let agent = Agent::start(&s, "e2e-portforward", 214);
    wait_node_ready(&s, "e2e-portforward");
    let image = format!("--image={IMAGE}");
    s.kubectl_ok(&[
        "run",
        "web",
        &image,
        "--image-pull-policy=Never",
        "--restart=Never",
        "--command",
        "--",
        "sh",
        "-c",
        "httpd -f -p 80 -h /www & httpd -f -p 127.0.0.1:8081 -h /www & trap 'exit 0' TERM; wait",
    ]);
    wait_ready(&s, &agent, "web");
    let want = "hello from skiff\n";

    for envs in [&[][..], &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")][..]] {
        let (web, local_only) = (free_port(), free_port());
        // Verbose enough to show which dialer connected.
        let pf = PortForward::start(&s, "web", &[(web, 80), (local_only, 8081)], envs, &["-v=4"]);
        // httpd needs a moment after the pod is Ready; retry the first fetch only.
        poll(Duration::from_secs(20), "the first page through the port-forward", || {
            let r = pf_try_get(web, "/index.html").ok()?;
            r.ends_with(&format!("\r\n\r\n{want}")).then_some(())
        });
        for _ in 0..5 {
            assert_eq!(body_of(&pf_get(web, "/index.html")), want, "{envs:?}");
        }
        assert_eq!(body_of(&pf_get(local_only, "/index.html")), want, "the pod's loopback-only server {envs:?}");

        // Two connections open at once: the first request is sent in two parts around a whole
        // second request.
        {
            use std::io::{Read, Write};
            let mut first = std::net::TcpStream::connect(("127.0.0.1", web)).expect("connect");
            first.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
            first.write_all(b"GET /index.html HTTP/1.0\r\n").expect("first half");
            let threads: Vec<_> =
                (0..2).map(|_| std::thread::spawn(move || body_of(&pf_get(web, "/index.html")).to_string())).collect();
            for t in threads {
                assert_eq!(t.join().expect("concurrent fetch"), want);
            }
            first.write_all(b"Host: localhost\r\n\r\n").expect("second half");
            let mut response = String::new();
            first.read_to_string(&mut response).expect("read");
            assert_eq!(body_of(&response), want);
        }
        let out = pf.stdout();
        assert!(out.matches(&format!("Handling connection for {web}")).count() >= 9, "{out}");
        let log = pf.stderr();
        assert!(!log.contains("an error occurred") && !log.contains("Unhandled Error"), "{envs:?}: {log}");
        if envs.is_empty() {
            // The WebSocket tunnel itself was negotiated, no fallback to SPDY.
            assert!(log.contains("negotiated protocol: portforward.k8s.io") && !log.contains("fallback"), "{log}");
        } else {
            assert!(!log.contains("tunneling_dialer"), "{log}");
        }
        drop(pf);
    }

    // Nothing listens on port 81: the kubelet's error reaches kubectl on the error stream.
    for envs in [&[][..], &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")][..]] {
        let closed = free_port();
        let mut pf = PortForward::start(&s, "web", &[(closed, 81)], envs, &[]);
        {
            use std::io::{Read, Write};
            let mut conn = std::net::TcpStream::connect(("127.0.0.1", closed)).expect("connect");
            conn.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
            let _ = conn.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let mut got = Vec::new();
            let _ = conn.read_to_end(&mut got);
            assert!(got.is_empty(), "no data from a closed port: {got:?}");
        }
        let stderr = poll(Duration::from_secs(20), "kubectl to report the error", || {
            let e = pf.stderr();
            e.contains("lost connection to pod").then_some(e)
        });
        let expected = format!("an error occurred forwarding {closed} -> 81: error forwarding port 81 to pod ");
        assert!(stderr.contains(&expected), "{envs:?}: {stderr}");
        assert!(
            stderr.contains(", uid : failed to connect to localhost:81 inside namespace ")
                && stderr.contains("dial tcp4 127.0.0.1:81: connect: connection refused"),
            "{envs:?}: {stderr}"
        );
        poll(Duration::from_secs(10), "kubectl to exit", || pf.exited().then_some(()));
    }

    delete_and_wait(&s, "web");
    poll(Duration::from_secs(30), "the runc containers to be removed", || {
        agent.runc_containers().is_empty().then_some(())
    });
    drop(agent);
}

/// Runs `skiff ARGS` (the kubectl-like verbs) with `--kubeconfig` and optional stdin (helper H6's).
fn h6_skiff(s: &Server, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    // Bounded: a stream that never ends fails the test (exit 124) instead of hanging it.
    let mut cmd = Command::new("timeout");
    cmd.args(["120", env!("CARGO_BIN_EXE_skiff")]);
    // The flag goes before `--` (after it, it would be part of the command), else at the end.
    let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
    cmd.args(&args[..split]).arg("--kubeconfig").arg(&s.kubeconfig).args(&args[split..]).env("SKIFF_LOG", "off");
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn skiff");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(input.as_bytes()).expect("write skiff's stdin");
    }
    child.wait_with_output().expect("wait for skiff")
}

fn h6_text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `skiff ARGS` must succeed; returns its stdout.
fn h6_skiff_ok(s: &Server, args: &[&str]) -> String {
    let out = h6_skiff(s, args, None);
    assert!(out.status.success(), "skiff {args:?} failed ({}): {}", out.status, h6_text(&out.stderr));
    h6_text(&out.stdout)
}

/// Asserts `skiff ARGS` and `kubectl ARGS` print the same and exit alike; returns skiff's output.
fn h6_same_as_kubectl(s: &Server, args: &[&str]) -> std::process::Output {
    let ours = h6_skiff(s, args, None);
    let theirs = s.kubectl(args);
    assert_eq!(h6_text(&ours.stdout), h6_text(&theirs.stdout), "stdout of {args:?}");
    assert_eq!(h6_text(&ours.stderr), h6_text(&theirs.stderr), "stderr of {args:?}");
    assert_eq!(ours.status.code(), theirs.status.code(), "exit code of {args:?}");
    ours
}

/// The `skiff` binary alone (no kubectl) runs, reads logs of and execs into pods of a real agent:
/// `run`, `logs` (`--tail`, `--timestamps`, `-f`, `--previous`), `exec` (exit codes, stdin, a
/// terminal through a pty), each compared with kubectl where kubectl's output is deterministic.
#[test]
fn skiff_cli_logs_and_exec_against_a_real_agent() {
    let s = Server::start();
    let agent = Agent::start(&s, "e2e-skiff-cli", 220);
    wait_node_ready(&s, "e2e-skiff-cli");
    let image = format!("--image={IMAGE}");
    let created = h6_skiff_ok(
        &s,
        &[
            "run",
            "chat",
            &image,
            "--image-pull-policy=Never",
            "--restart=Never",
            "--command",
            "--",
            "sh",
            "-c",
            "trap 'exit 0' TERM; echo first; echo second; sleep 3600 & wait",
        ],
    );
    assert_eq!(created, "pod/chat created\n");
    wait_ready(&s, &agent, "chat");
    poll(Duration::from_secs(10), "skiff logs to show both lines", || {
        (h6_skiff_ok(&s, &["logs", "chat"]) == "first\nsecond\n").then_some(())
    });
    for args in [
        &["logs", "chat"][..],
        &["logs", "chat", "--tail=1"],
        &["logs", "chat", "-c", "chat"],
        &["logs", "pod/chat", "--tail", "0"],
        &["logs", "chat", "-c", "nope"],
        &["logs", "nope"],
        &["exec", "chat", "-c", "nope", "--", "true"],
    ] {
        h6_same_as_kubectl(&s, args);
    }
    assert_eq!(h6_skiff_ok(&s, &["logs", "chat", "--tail=1"]), "second\n");
    let stamped = h6_skiff_ok(&s, &["logs", "chat", "--timestamps"]);
    let lines: Vec<(&str, &str)> = stamped.lines().filter_map(|l| l.split_once(' ')).collect();
    assert_eq!(lines.iter().map(|(_, l)| *l).collect::<Vec<_>>(), ["first", "second"], "{stamped}");
    for (stamp, _) in &lines {
        assert!(stamp.parse::<k8s_openapi::jiff::Timestamp>().is_ok(), "an RFC 3339 timestamp: {stamped}");
    }

    // `logs -f` keeps streaming: a line the container writes later arrives while skiff runs.
    let mut follow = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["logs", "-f", "chat", "--kubeconfig"])
        .arg(&s.kubeconfig)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn skiff logs -f");
    let followed = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    {
        let mut stdout = follow.stdout.take().expect("stdout");
        let into = followed.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 1024];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                into.lock().expect("lock").push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }
    let seen = |want: &str| {
        let want = want.to_string();
        let followed = followed.clone();
        poll(Duration::from_secs(20), &format!("skiff logs -f to print {want:?}"), move || {
            (*followed.lock().expect("lock") == want).then_some(())
        })
    };
    seen("first\nsecond\n");
    h6_skiff_ok(&s, &["exec", "chat", "--", "sh", "-c", "echo later > /proc/1/fd/1"]);
    seen("first\nsecond\nlater\n");
    assert!(follow.try_wait().expect("try_wait").is_none(), "skiff logs -f is still following");
    let _ = follow.kill();
    let _ = follow.wait();

    // exec: stdout and stderr kept apart; the remote exit code becomes skiff's, with kubectl's line.
    let args = ["exec", "chat", "--", "sh", "-c", "echo out; echo err >&2; exit 3"];
    let out = h6_same_as_kubectl(&s, &args);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(h6_text(&out.stdout), "out\n");
    assert_eq!(h6_text(&out.stderr), "err\ncommand terminated with exit code 3\n");
    assert_eq!(h6_skiff_ok(&s, &["exec", "chat", "--", "hostname"]), "chat\n");
    // exec -i: stdin reaches the process and its end ends `cat`.
    let out = h6_skiff(&s, &["exec", "-i", "chat", "--", "cat"], Some("piped input\nline two\n"));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(h6_text(&out.stdout), "piped input\nline two\n");
    // Without -i the process gets no stdin: `cat` ends at once.
    assert_eq!(h6_skiff_ok(&s, &["exec", "chat", "--", "cat"]), "");
    // A command that does not exist fails (no hang), as it does with kubectl.
    let ours = h6_skiff(&s, &["exec", "chat", "--", "no-such-command"], None);
    let theirs = s.kubectl(&["exec", "chat", "--", "no-such-command"]);
    assert!(!ours.status.success(), "{ours:?}");
    assert_eq!(ours.status.code(), theirs.status.code(), "skiff {ours:?}\nkubectl {theirs:?}");

    // exec -it under a pseudo-terminal (`script` gives skiff one): the process sees a terminal of
    // the size skiff's terminal has (sent on the resize channel, after the process may have
    // started: it looks a few times), and skiff's terminal is as it was afterwards (raw mode only
    // during the session).
    let line = format!(
        "stty rows 37 cols 101; before=$(stty -g); {} exec -it chat --kubeconfig {} -- sh -c \
         'test -t 0 && test -t 1 && echo on-a-tty; for i in 1 2 3 4 5; do s=$(busybox stty size); \
         [ \"$s\" = \"37 101\" ] && break; sleep 1; done; echo \"size=$s\"; exit 4'; code=$?; \
         [ \"$(stty -g)\" = \"$before\" ] && echo terminal-restored; exit $code",
        env!("CARGO_BIN_EXE_skiff"),
        s.kubeconfig.display()
    );
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("run script (bsdutils)");
    let printed = h6_text(&out.stdout);
    assert!(printed.contains("on-a-tty"), "{printed:?} {}", h6_text(&out.stderr));
    assert!(printed.contains("size=37 101"), "{printed:?}");
    assert!(printed.contains("command terminated with exit code 4"), "{printed:?}");
    assert!(printed.contains("terminal-restored"), "{printed:?}");
    assert_eq!(out.status.code(), Some(4), "{printed:?}");
    // -it with a stdin that is not a terminal: kubectl's warning, then the session without a TTY.
    let args = ["exec", "-it", "chat", "--", "sh", "-c", "test -t 0 || echo no-tty"];
    let ours = h6_skiff(&s, &args, Some(""));
    let theirs = s.kubectl_with(&args, Some(""), &[]);
    assert_eq!(h6_text(&ours.stdout), "no-tty\n", "{ours:?}");
    assert_eq!(h6_text(&ours.stderr), "Unable to use a TTY - input is not a terminal or the right kind of file\n");
    assert_eq!((h6_text(&ours.stdout), h6_text(&ours.stderr)), (h6_text(&theirs.stdout), h6_text(&theirs.stderr)));
    assert_eq!(ours.status.code(), theirs.status.code());

    // A crashing container is restarted; `logs --previous` shows the instance before.
    let created = h6_skiff_ok(
        &s,
        &[
            "run",
            "crashy",
            &image,
            "--image-pull-policy=Never",
            "--command",
            "--",
            "sh",
            "-c",
            "echo crashed-once; exit 1",
        ],
    );
    assert_eq!(created, "pod/crashy created\n");
    poll(Duration::from_secs(90), "a restart", || {
        let st = container_status(&s, "crashy");
        (st["restartCount"].as_u64().unwrap_or(0) >= 1).then_some(())
    });
    poll(Duration::from_secs(10), "skiff logs --previous", || {
        (h6_skiff_ok(&s, &["logs", "crashy", "--previous"]) == "crashed-once\n").then_some(())
    });
    h6_same_as_kubectl(&s, &["logs", "crashy", "-p"]);

    // A stuck rollout on a real node: `rollout status` names the failing readiness probe (from the
    // agent's Unhealthy events) and shows a crashing container's last log lines.
    let probed = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "probed"},
        "spec": {"replicas": 1, "progressDeadlineSeconds": 5, "selector": {"matchLabels": {"app": "probed"}},
            "template": {"metadata": {"labels": {"app": "probed"}}, "spec": {
                "terminationGracePeriodSeconds": 2,
                "containers": [{"name": "app", "image": IMAGE, "imagePullPolicy": "Never",
                    "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
                    "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1}}]}}},
    });
    let crasher = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "crasher"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "crasher"}},
            "template": {"metadata": {"labels": {"app": "crasher"}}, "spec": {
                "containers": [{"name": "app", "image": IMAGE, "imagePullPolicy": "Never",
                    "command": ["sh", "-c", "echo boom-line-1; echo boom-line-2; exit 1"]}]}}},
    });
    let manifest = format!("{probed}\n---\n{crasher}\n");
    let applied = h6_skiff(&s, &["apply", "-f", "-"], Some(&manifest));
    assert_eq!(
        h6_text(&applied.stdout),
        "deployment.apps/probed created\ndeployment.apps/crasher created\n",
        "{}",
        h6_text(&applied.stderr)
    );
    let out = h6_skiff(&s, &["rollout", "status", "deploy/probed", "--timeout=90s"], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let why = h6_text(&out.stderr);
    assert!(why.ends_with("error: deployment \"probed\" exceeded its progress deadline\n"), "{why}");
    assert!(
        why.contains(" container app: running but not ready: readiness probe exec [cat /tmp/ready] has not passed\n"),
        "{why}"
    );
    assert!(why.contains("probe failing in pod probed-") && why.contains(": Readiness probe failed: "), "{why}");
    poll(Duration::from_secs(90), "the crasher to crash-loop", || {
        let out = h6_skiff_ok(
            &s,
            &[
                "get",
                "pods",
                "-l",
                "app=crasher",
                "-o",
                "jsonpath={.items[0].status.containerStatuses[0].state.waiting.reason}",
            ],
        );
        (out == "CrashLoopBackOff").then_some(())
    });
    let out = h6_skiff(&s, &["rollout", "status", "deploy/crasher", "--timeout=2s"], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let why = h6_text(&out.stderr);
    assert!(why.contains(" container app: CrashLoopBackOff (last exit code 1, "), "{why}");
    assert!(why.contains("/app:\n  boom-line-1\n  boom-line-2\n"), "the last log lines: {why}");
    assert!(why.ends_with("error: timed out waiting for the condition\n"), "{why}");
    for name in ["probed", "crasher"] {
        assert_eq!(
            h6_skiff_ok(&s, &["delete", "deploy", name]),
            format!("deployment.apps \"{name}\" deleted from default namespace\n")
        );
    }
    poll(Duration::from_secs(60), "the deployments' pods to be gone", || {
        h6_skiff_ok(&s, &["get", "pods", "-o", "name"])
            .lines()
            .all(|l| !l.contains("probed-") && !l.contains("crasher-"))
            .then_some(())
    });

    for name in ["chat", "crashy"] {
        let out = h6_skiff_ok(&s, &["delete", "pod", name, "--timeout=90s"]);
        assert_eq!(out, format!("pod \"{name}\" deleted from default namespace\n"));
    }
    poll(Duration::from_secs(30), "the runc containers to be removed", || {
        agent.runc_containers().is_empty().then_some(())
    });
    drop(agent);
}

/// The runc state (`status`, `pid`) of container `id` under the agent's runc root.
fn runc_state(agent: &Agent, id: &str) -> (String, i64) {
    let out = Command::new("runc").arg("--root").arg(agent.runc_root()).args(["state", id]).output().expect("runc");
    let state: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (state["status"].as_str().unwrap_or("gone").to_string(), state["pid"].as_i64().unwrap_or(0))
}

/// The `tick-N` numbers `kubectl logs` shows for `pod`.
fn ticks(s: &Server, pod: &str) -> Vec<u64> {
    let out = s.kubectl(&["logs", pod]);
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.strip_prefix("tick-")?.parse().ok()).collect()
}

/// Restart safety: the agent is SIGKILLed and started again on the same data directory. A running
/// pod keeps its container (same ID, same PID, RESTARTS 0) and its logs keep flowing, including
/// what the container wrote while no agent read; a pod deleted while the agent was down stays
/// Terminating until the restarted agent has removed every trace of it, then disappears.
#[test]
fn agent_restart_adopts_running_pods_and_cleans_up_deleted_ones() {
    let s = Server::start();
    let mut agent = Agent::start(&s, "e2e-restart", 212);
    wait_node_ready(&s, "e2e-restart");
    let image = format!("--image={IMAGE}");
    s.kubectl_ok(&[
        "run",
        "keeper",
        &image,
        "--image-pull-policy=Never",
        "--command",
        "--",
        "sh",
        "-c",
        "trap 'exit 0' TERM; i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done",
    ]);
    s.kubectl_ok(&[
        "run",
        "doomed",
        &image,
        "--image-pull-policy=Never",
        "--restart=Never",
        "--command",
        "--",
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 3600 & wait",
    ]);
    s.kubectl_ok(&[
        "run",
        "forced",
        &image,
        "--image-pull-policy=Never",
        "--restart=Never",
        "--command",
        "--",
        "sh",
        "-c",
        "sleep 3600",
    ]);
    let keeper = wait_ready(&s, &agent, "keeper");
    let doomed = wait_ready(&s, &agent, "doomed");
    let forced = wait_ready(&s, &agent, "forced");
    let container_id = |p: &Value| {
        let id = p["status"]["containerStatuses"][0]["containerID"].as_str().expect("containerID").to_string();
        id.strip_prefix("skiff://").expect("skiff:// ID").to_string()
    };
    let keeper_id = container_id(&keeper);
    let doomed_id = container_id(&doomed);
    let doomed_uid = doomed["metadata"]["uid"].as_str().expect("uid").to_string();
    let doomed_ip = doomed["status"]["podIP"].as_str().expect("podIP").to_string();
    let forced_id = container_id(&forced);
    let forced_uid = forced["metadata"]["uid"].as_str().expect("uid").to_string();
    let (status, keeper_pid) = runc_state(&agent, &keeper_id);
    assert_eq!(status, "running");
    poll(Duration::from_secs(20), "the keeper's first ticks", || (ticks(&s, "keeper").len() >= 3).then_some(()));

    agent.kill9();
    let ticks_at_kill = ticks_in_file(&agent, &keeper);
    // The agent is gone; its containers are not.
    assert_eq!(runc_state(&agent, &keeper_id), ("running".to_string(), keeper_pid));
    assert_eq!(runc_state(&agent, &doomed_id).0, "running");
    // Deleted while no agent runs: the pod waits, Terminating, for its node to confirm.
    s.kubectl_ok(&["delete", "pod", "doomed", "--wait=false"]);
    std::thread::sleep(Duration::from_secs(2));
    let terminating = pod(&s, "doomed").expect("the pod waits for its agent");
    assert!(terminating["metadata"]["deletionTimestamp"].is_string(), "{terminating}");
    // Force-deleted while no agent runs: the API forgets it at once; the node must still clean up.
    s.kubectl_ok(&["delete", "pod", "forced", "--grace-period=0", "--force"]);
    assert!(pod(&s, "forced").is_none());
    assert_eq!(runc_state(&agent, &forced_id).0, "running");

    agent.spawn();
    poll(Duration::from_secs(60), "the deleted pod to disappear", || pod(&s, "doomed").is_none().then_some(()));
    // Every trace of it is gone: container, sandbox directory and network namespace, IP, cgroups.
    assert_eq!(runc_state(&agent, &doomed_id).0, "gone");
    let sandbox = agent.data_dir.join("sandboxes").join(&doomed_uid);
    assert!(!sandbox.exists(), "{}", sandbox.display());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains(&doomed_uid), "no mount of the deleted pod is left");
    let leases = agent.data_dir.join("cni/networks").join("skiff-skag212").join(&doomed_ip);
    assert!(!leases.exists(), "the IP {doomed_ip} went back to host-local");
    for hierarchy in ["memory", "pids", "cpu"] {
        let dir = Path::new("/sys/fs/cgroup").join(hierarchy).join("skiff").join(&doomed_uid);
        assert!(!dir.exists(), "{}", dir.display());
    }
    // The force-deleted pod is swept at start-up.
    poll(Duration::from_secs(30), "the force-deleted pod's container to go", || {
        (runc_state(&agent, &forced_id).0 == "gone").then_some(())
    });
    poll(Duration::from_secs(10), "the force-deleted pod's sandbox to go", || {
        (!agent.data_dir.join("sandboxes").join(&forced_uid).exists()).then_some(())
    });

    // The running pod was adopted, not restarted.
    let after = wait_ready(&s, &agent, "keeper");
    let status = &after["status"]["containerStatuses"][0];
    assert_eq!(status["restartCount"], 0, "{status}");
    assert_eq!(container_id(&after), keeper_id);
    assert_eq!(
        status["state"]["running"]["startedAt"],
        keeper["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
    );
    assert_eq!(runc_state(&agent, &keeper_id), ("running".to_string(), keeper_pid), "same process");
    let row = s.kubectl_ok(&["get", "pod", "keeper", "--no-headers"]);
    assert_eq!(common::cells(&row)[3], "0", "RESTARTS: {row}");
    // Its logs keep flowing through the restart: every line once, in order, and new ones.
    let last = *ticks_at_kill.last().expect("ticks before the kill");
    let seen = poll(Duration::from_secs(30), "new log lines after the restart", || {
        let t = ticks(&s, "keeper");
        t.last().is_some_and(|n| *n > last + 15).then_some(t)
    });
    let want: Vec<u64> = (0..=*seen.last().expect("ticks")).collect();
    assert_eq!(seen, want, "no line lost or repeated across the restart");

    delete_and_wait(&s, "keeper");
    poll(Duration::from_secs(30), "the runc containers to be removed", || {
        agent.runc_containers().is_empty().then_some(())
    });
    drop(agent);
}

/// The `tick-N` numbers in `pod`'s log file (read directly: no agent serves logs right now).
fn ticks_in_file(agent: &Agent, pod: &Value) -> Vec<u64> {
    let uid = pod["metadata"]["uid"].as_str().expect("uid");
    let name = pod["metadata"]["name"].as_str().expect("name");
    let log = agent.data_dir.join("pods").join(uid).join("logs").join(name).join("0.log");
    log_lines(&log).iter().filter_map(|l| l.strip_prefix("tick-")?.parse().ok()).collect()
}

/// A Debian `docker-registry` on a free loopback port; stopped (by its PID) on drop.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).expect("registry config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is installed (scripts/install-deps.sh)");
        let registry = Registry { child, port, _dir: dir };
        poll(Duration::from_secs(10), "docker-registry to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(drop)
        });
        registry
    }

    /// Pushes the OCI layout's `v1` as `repo_tag` with skopeo.
    fn push(&self, layout: &Path, repo_tag: &str) {
        run(Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://127.0.0.1:{}/{repo_tag}", self.port))
            .stdout(Stdio::null()));
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /` at `addr`; the response, or `None` if nothing answers.
fn http_get(addr: std::net::SocketAddr) -> Option<String> {
    http_request(addr, "/").ok()
}

/// `GET path` over HTTP/1.0 at `addr`; the whole response.
fn http_request(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut response = String::new();
    conn.read_to_string(&mut response)?;
    Ok(response)
}

/// `--registry-mirror`: a Docker Hub short name (`skiff-test:v1`) is pulled from a mirror on
/// loopback. `hostPort` (CNI portmap): the pod answers on the node's own address and port 18080,
/// and no longer once it is deleted.
#[test]
fn agent_pulls_through_a_registry_mirror_and_publishes_host_ports() {
    let scratch = tempfile::tempdir().expect("tempdir");
    build_image(scratch.path());
    let registry = Registry::start();
    registry.push(&scratch.path().join("layout"), "library/skiff-test:v1");
    // The hostPort makes the portmap plugin create its shared chains: removed at the end if new.
    struct PortmapChains(bool);
    impl Drop for PortmapChains {
        fn drop(&mut self) {
            if !self.0 {
                common::node::remove_portmap_chains();
            }
        }
    }
    let _portmap = PortmapChains(common::node::portmap_chains_present());
    let s = Server::start();
    let mirror = format!("docker.io=http://127.0.0.1:{}", registry.port);
    let agent = Agent::start_with(&s, "e2e-mirror", 213, &["--registry-mirror", &mirror]);
    wait_node_ready(&s, "e2e-mirror");
    let manifest = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "published"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "web", "image": "skiff-test:v1",
            "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
            "ports": [{"containerPort": 8080, "hostPort": 18080}]}]},
    });
    s.kubectl_stdin_ok(&["create", "-f", "-"], &manifest.to_string());
    let p = wait_ready(&s, &agent, "published");
    let status = &p["status"]["containerStatuses"][0];
    let image_id = status["imageID"].as_str().unwrap_or_default();
    assert!(image_id.starts_with("docker.io/library/skiff-test@sha256:"), "{status}");

    let node = s.kubectl_json(&["get", "node", "e2e-mirror"]);
    let node_ip: std::net::IpAddr = node["status"]["addresses"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
        .and_then(|a| a["address"].as_str())
        .and_then(|ip| ip.parse().ok())
        .expect("the node's InternalIP");
    assert!(!node_ip.is_loopback(), "{node_ip}");
    let addr = std::net::SocketAddr::new(node_ip, 18080);
    let body = poll(Duration::from_secs(20), "the hostPort to answer", || {
        http_get(addr).filter(|b| b.starts_with("HTTP/1.1 200"))
    });
    assert!(body.ends_with("hello from skiff\n"), "{body}");

    delete_and_wait(&s, "published");
    assert_eq!(http_get(addr), None, "the hostPort is released with the pod");
    let nat = Command::new("iptables").args(["-t", "nat", "-S"]).output().expect("iptables");
    let rules = String::from_utf8_lossy(&nat.stdout);
    assert!(!rules.contains("--dport 18080"), "portmap's rules are deleted: {rules}");
    poll(Duration::from_secs(30), "the runc containers to be removed", || {
        agent.runc_containers().is_empty().then_some(())
    });
    drop(agent);
    drop(registry);
}

/// Pod features the kubelet gives real containers: a `configMap` volume follows updates to its
/// ConfigMap while the container runs, an `emptyDir` with `medium: Memory` is a tmpfs (unmounted
/// with the pod), a safe sysctl is set in the pod's namespaces, termination messages come from a
/// file or the log, and a pod asking for an unsafe sysctl is rejected by the node.
#[test]
fn config_map_updates_tmpfs_empty_dir_and_sysctls() {
    let s = Server::start();
    let agent = Agent::start(&s, "e2e-volumes", 215);
    wait_node_ready(&s, "e2e-volumes");
    s.kubectl_ok(&["create", "configmap", "cfg", "--from-literal=data-1=value-1"]);
    let manifest = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "vols"},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 2,
            "securityContext": {"sysctls": [{"name": "kernel.shm_rmid_forced", "value": "1"}]},
            "containers": [{"name": "app", "image": IMAGE, "imagePullPolicy": "Never",
                "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
                "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}, {"name": "cache", "mountPath": "/cache"}]}],
            "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}},
                        {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}}]},
    });
    s.kubectl_stdin_ok(&["create", "-f", "-"], &manifest.to_string());
    let vols = wait_ready(&s, &agent, "vols");
    let exec = |script: &str| s.kubectl_ok(&["exec", "vols", "--", "sh", "-c", script]);

    assert_eq!(exec("cat /proc/sys/kernel/shm_rmid_forced"), "1\n", "the pod's sysctl");
    let host = std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").expect("host sysctl");
    assert_eq!(host, "0\n", "the host's IPC namespace keeps its own value");
    let mount = exec("grep ' /cache ' /proc/mounts");
    assert!(mount.starts_with("tmpfs /cache tmpfs "), "{mount}");
    assert!(mount.contains("size=8192k"), "the sizeLimit: {mount}");
    assert_eq!(exec("stat -c %a /cache"), "777\n");
    exec("echo kept > /cache/f");
    let uid = vols["metadata"]["uid"].as_str().expect("uid").to_string();
    let pod_dir = agent.data_dir.join("pods").join(&uid);
    assert_eq!(skiff_runtime::rootfs::mounts_under(&pod_dir).len(), 1, "one tmpfs on the host");

    assert_eq!(exec("cat /etc/cfg/data-1"), "value-1");
    s.kubectl_ok(&["patch", "configmap", "cfg", "-p", r#"{"data":{"data-1":"value-2","data-3":"value-3"}}"#]);
    poll(Duration::from_secs(60), "the update to reach the running container", || {
        (exec("cat /etc/cfg/data-1 /etc/cfg/data-3 2>/dev/null; true") == "value-2value-3").then_some(())
    });
    assert_eq!(container_status(&s, "vols")["restartCount"], 0, "no restart for it");
    assert_eq!(exec("cat /cache/f"), "kept\n");

    // Termination messages: the last of the log for a failed container with
    // FallbackToLogsOnError (a final line without a newline stays without one), and a file at a
    // custom path written by a non-root user.
    // And a secret volume a non-root user reads through the pod's fsGroup; it cannot write it.
    s.kubectl_ok(&["create", "secret", "generic", "sec", "--from-literal=data-1=value-1"]);
    let messages = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "messages"},
        "spec": {"restartPolicy": "Never", "securityContext": {"fsGroup": 1001},
          "volumes": [{"name": "sec", "secret": {"secretName": "sec", "defaultMode": 0o440}}],
          "containers": [
            {"name": "secret", "image": IMAGE, "imagePullPolicy": "Never", "securityContext": {"runAsUser": 1000},
             "volumeMounts": [{"name": "sec", "mountPath": "/etc/sec"}],
             "command": ["sh", "-c", "cat /etc/sec/data-1; echo; stat -L -c '%A %g' /etc/sec/data-1; id -G; \
                 touch /etc/sec/x 2>/dev/null && echo writable || echo read-only"]},
            {"name": "fallback", "image": IMAGE, "imagePullPolicy": "Never",
             "terminationMessagePolicy": "FallbackToLogsOnError", "command": ["sh", "-c", "echo -n DONE; false"]},
            {"name": "file", "image": IMAGE, "imagePullPolicy": "Never", "securityContext": {"runAsUser": 1000},
             "terminationMessagePath": "/dev/termination-custom-log",
             "command": ["sh", "-c", "echo -n DEAR; echo -n FILE > /dev/termination-custom-log"]}]},
    });
    s.kubectl_stdin_ok(&["create", "-f", "-"], &messages.to_string());
    let done = poll(Duration::from_secs(30), "both containers to finish", || {
        pod(&s, "messages").filter(|p| p["status"]["phase"] == "Failed")
    });
    let message = |name: &str| {
        let statuses = done["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
        let status = statuses.into_iter().find(|c| c["name"] == name).unwrap_or_default();
        status["state"]["terminated"]["message"].clone()
    };
    assert_eq!(message("fallback"), json!("DONE"), "{done}");
    assert_eq!(message("file"), json!("FILE"), "{done}");
    // Their logs outlast them (asked for at once: the agent tears the finished pod down meanwhile).
    assert_eq!(s.kubectl_ok(&["logs", "messages", "-c", "file"]), "DEAR");
    assert_eq!(s.kubectl_ok(&["logs", "messages", "-c", "fallback"]), "DONE");
    assert_eq!(s.kubectl_ok(&["logs", "messages", "-c", "secret"]), "value-1\n-r--r----- 1001\n0 1001\nread-only\n");

    // A pod asking for an unsafe sysctl never starts.
    let rejected = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "msgmax"},
        "spec": {"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "10000"}]},
            "containers": [{"name": "app", "image": IMAGE, "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]},
    });
    s.kubectl_stdin_ok(&["create", "-f", "-"], &rejected.to_string());
    let failed = poll(Duration::from_secs(30), "the pod to be rejected", || {
        pod(&s, "msgmax").filter(|p| p["status"]["phase"] == "Failed")
    });
    assert_eq!(failed["status"]["reason"], "SysctlForbidden");
    assert_eq!(agent.runc_containers().len(), 1, "only the first pod's container runs");

    delete_and_wait(&s, "vols");
    delete_and_wait(&s, "msgmax");
    delete_and_wait(&s, "messages");
    poll(Duration::from_secs(30), "the pod's tmpfs to be unmounted and its directory removed", || {
        (skiff_runtime::rootfs::mounts_under(&agent.data_dir).is_empty() && !pod_dir.exists()).then_some(())
    });
}
