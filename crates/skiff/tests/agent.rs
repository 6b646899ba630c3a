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

use common::{Server, poll};
use serde_json::{Value, json};

/// The test image's name as pods use it.
const IMAGE: &str = "localhost/skiff-test:v1";

/// Busybox applets the image links.
const APPLETS: &[&str] = &["sh", "echo", "cat", "sleep", "httpd", "wget", "true", "trap", "kill", "ls", "hostname"];

fn run(cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed: {status}");
}

fn put_blob(blobs: &Path, bytes: &[u8]) -> String {
    let digest = skiff_runtime::digest::sha256(bytes);
    std::fs::write(blobs.join(&digest["sha256:".len()..]), bytes).expect("write blob");
    digest
}

/// Writes an OCI image layout archive of a busybox image (one uncompressed layer: /bin/busybox,
/// applet links, /etc/passwd, /www/index.html) to `dir/image.tar`.
fn build_image(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "www", "proc", "sys", "dev"] {
        std::fs::create_dir_all(rootfs.join(d)).expect("mkdir");
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .expect("busybox-static is installed (scripts/install-deps.sh)");
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).expect("symlink");
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\n").expect("group");
    std::fs::write(rootfs.join("www/index.html"), "hello from skiff\n").expect("index");
    let layer_tar = dir.join("layer.tar");
    run(Command::new("tar")
        .args(["--owner=0", "--group=0", "--numeric-owner", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&layer_tar)
        .args(["bin", "etc", "tmp", "www", "proc", "sys", "dev"]));
    let layout = dir.join("layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("mkdir blobs");
    let layer = std::fs::read(&layer_tar).expect("read layer");
    let layer_digest = put_blob(&blobs, &layer);
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = json!({
        "architecture": arch, "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    })
    .to_string();
    let config_digest = put_blob(&blobs, config.as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    })
    .to_string();
    let manifest_digest = put_blob(&blobs, manifest.as_bytes());
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"},
        }],
    });
    std::fs::write(layout.join("index.json"), index.to_string()).expect("index");
    std::fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
    let archive = dir.join("image.tar");
    run(Command::new("tar").arg("-C").arg(&layout).arg("-cf").arg(&archive).args([
        "oci-layout",
        "index.json",
        "blobs",
    ]));
    archive
}

/// Imports the test image into the image store the agent will open (`<data-dir>/images`).
fn import_image(data_dir: &Path, scratch: &Path) {
    let archive = build_image(scratch);
    let store_dir = skiff_agent::runc_runtime::RuncConfig::new(data_dir.to_path_buf()).image_dir();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let images = rt.block_on(async {
        let store = skiff_runtime::ImageStore::open(store_dir, skiff_runtime::StoreConfig::default()).expect("store");
        store.import(&archive, Some("localhost/skiff-test")).await.expect("import the test image")
    });
    assert_eq!(images.len(), 1, "one image imported");
}

/// A running `skiff agent`; dropping it kills it (by PID) and removes what it left: runc
/// containers, mounts under its data directory, its bridge.
struct Agent {
    child: Option<Child>,
    data_dir: PathBuf,
    bridge: String,
    log: PathBuf,
    /// Whether the cluster CIDR's blackhole route was absent before the agent added it (then the
    /// test removes it again).
    added_blackhole: bool,
    _tmp: tempfile::TempDir,
}

const CLUSTER_CIDR: &str = "10.244.0.0/16";

fn blackhole_present() -> bool {
    Command::new("ip")
        .args(["route", "show", "type", "blackhole", CLUSTER_CIDR])
        .output()
        .map(|o| !String::from_utf8_lossy(&o.stdout).trim().is_empty())
        .unwrap_or(false)
}

impl Agent {
    /// `n` picks the bridge `skag<n>` and subnet `10.244.<n>.0/24`.
    fn start(server: &Server, node: &str, n: u8) -> Agent {
        let tmp = tempfile::Builder::new().prefix("skiff-agent-e2e-").tempdir().expect("tempdir");
        let data_dir = tmp.path().join("data");
        import_image(&data_dir, tmp.path());
        let bridge = format!("skag{n}");
        let added_blackhole = !blackhole_present();
        let log = tmp.path().join("agent.log");
        let log_file = std::fs::File::create(&log).expect("agent log");
        let child = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(["agent", "--kubeconfig"])
            .arg(server.data_dir().join("kubeconfig.yaml"))
            .args(["--node-name", node, "--data-dir"])
            .arg(&data_dir)
            .args(["--pod-cidr", &format!("10.244.{n}.0/24"), "--cluster-cidr", CLUSTER_CIDR, "--bridge", &bridge])
            .args(["--kubelet-port", "0"])
            .env("SKIFF_LOG", std::env::var("SKIFF_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("spawn skiff agent");
        Agent { child: Some(child), data_dir, bridge, log, added_blackhole, _tmp: tmp }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn runc_root(&self) -> PathBuf {
        self.data_dir.join("runc")
    }

    /// The runc container IDs under the agent's runc root.
    fn runc_containers(&self) -> Vec<String> {
        let out = Command::new("runc").arg("--root").arg(self.runc_root()).args(["list", "-q"]).output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect()).unwrap_or_default()
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
        for id in self.runc_containers() {
            let _ = Command::new("runc").arg("--root").arg(self.runc_root()).args(["delete", "--force", &id]).status();
        }
        let prefix = format!("{}/", self.data_dir.display());
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<&str> =
            info.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&prefix)).collect();
        mounts.reverse();
        for m in mounts {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).stderr(Stdio::null()).status();
        if self.added_blackhole {
            let _ = Command::new("ip").args(["route", "del", "blackhole", CLUSTER_CIDR]).stderr(Stdio::null()).status();
        }
        // Pods whose sandbox was never destroyed leave their cgroup directories (empty by now).
        let uids: Vec<String> = std::fs::read_dir(self.data_dir.join("sandboxes"))
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let hierarchies: Vec<PathBuf> =
            std::fs::read_dir("/sys/fs/cgroup").map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        for uid in uids.iter().filter(|u| !u.is_empty() && !u.contains('.')) {
            for h in &hierarchies {
                let pod = h.join("skiff").join(uid);
                if let Ok(children) = std::fs::read_dir(&pod) {
                    for c in children.flatten().filter(|c| c.path().is_dir()) {
                        let _ = std::fs::remove_dir(c.path());
                    }
                }
                let _ = std::fs::remove_dir(&pod);
            }
        }
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
    drop(agent);
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

    for name in ["talk", "crash", "hog", "once"] {
        delete_and_wait(&s, name);
    }
    poll(Duration::from_secs(30), "the runc containers to be removed", || {
        agent.runc_containers().is_empty().then_some(())
    });
    drop(agent);
}
