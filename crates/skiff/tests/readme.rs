//! End-to-end: the README's "The seed's workflow" walkthrough, scripted from the README text itself
//! so the README cannot drift from what works.
//!
//! The test reads the `sh` block of that section, starts `skiff server` with its embedded node agent
//! (real runc pods on a private bridge and pod range), imports the demo images, applies
//! `examples/demo.yaml`, and runs the block's commands one by one with the real kubectl, asserting
//! what the README's comments promise. Needs root, runc, the CNI plugins and busybox-static
//! (scripts/install-deps.sh). A [`Drop`] guard stops the server and removes what it left
//! (containers, mounts, the bridge, the blackhole route, CNI NAT rules), also when the test fails.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::node::{blackhole_present, remove_agent_leftovers, runc_containers};
use common::{kubectl_path, poll};
use serde_json::Value;

/// The bridge of the test server's agent (not the default `skiff0` a real server may use).
const BRIDGE: &str = "skrd0";
/// The test node's pod range and the cluster's.
const POD_CIDR: &str = "10.238.0.0/24";
const CLUSTER_CIDR: &str = "10.238.0.0/16";
/// The README section whose `sh` block is scripted.
const SECTION: &str = "## The seed's workflow";
/// How long a step may take to converge (pods started, images pulled, rollouts done).
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The commands of the section's `sh` block: comments stripped, blank lines dropped.
fn readme_commands(readme: &str) -> Vec<String> {
    let mut lines = readme.lines().skip_while(|l| l.trim_end() != SECTION);
    assert!(lines.next().is_some(), "README.md has no section {SECTION:?}");
    let mut lines = lines.take_while(|l| !l.starts_with("## ")).skip_while(|l| l.trim() != "```sh");
    assert!(lines.next().is_some(), "the section {SECTION:?} has no ```sh block");
    lines.take_while(|l| l.trim() != "```").map(strip_comment).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// A line without its `# comment` (a `#` at the start or after whitespace).
fn strip_comment(line: &str) -> &str {
    let cut = line
        .char_indices()
        .find(|&(i, c)| c == '#' && (i == 0 || line[..i].ends_with(char::is_whitespace)))
        .map_or(line.len(), |(i, _)| i);
    line[..cut].trim()
}

/// What a walkthrough step's arguments (after `$k`) are, for the outcome checks.
fn args_of(command: &str) -> Option<Vec<String>> {
    let rest = command.strip_prefix("$k ")?;
    assert!(
        !rest.contains(['"', '\'', '$', '|', ';', '&']),
        "the test splits commands on whitespace only: {command:?}"
    );
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// The server, its data directory and kubectl's `HOME`; dropping it stops the server (SIGTERM,
/// then SIGKILL after 10 s) and removes what the agent left behind.
struct Walkthrough {
    child: Option<Child>,
    data_dir: PathBuf,
    home: PathBuf,
    kubeconfig: PathBuf,
    log: PathBuf,
    /// Whether the cluster CIDR's blackhole route was absent before the server's agent added it.
    added_blackhole: bool,
    _root: tempfile::TempDir,
}

impl Walkthrough {
    /// Imports the demo images, then starts `skiff server` with its agent on [`BRIDGE`].
    fn start() -> Walkthrough {
        let root = tempfile::Builder::new().prefix("skiff-readme-").tempdir().expect("tempdir");
        let data_dir = root.path().join("data");
        let home = root.path().join("home");
        std::fs::create_dir_all(&home).expect("create kubectl's home");
        let added_blackhole = !blackhole_present(CLUSTER_CIDR);
        let mut w = Walkthrough {
            child: None,
            kubeconfig: data_dir.join("kubeconfig.yaml"),
            log: root.path().join("server.log"),
            data_dir,
            home,
            added_blackhole,
            _root: root,
        };
        for tag in ["v1", "v2"] {
            let archive = w._root.path().join(format!("demo-web-{tag}.tar"));
            let out = Command::new("bash")
                .arg(repo_root().join("scripts/build-demo-image.sh"))
                .arg(&archive)
                .arg(tag)
                .output()
                .expect("run build-demo-image.sh");
            assert!(out.status.success(), "build-demo-image.sh {tag}: {}", String::from_utf8_lossy(&out.stderr));
            let name = format!("skiff.local/demo-web:{tag}");
            let out = Command::new(env!("CARGO_BIN_EXE_skiff"))
                .args(["image", "import"])
                .arg(&archive)
                .args(["--name", &name, "--data-dir"])
                .arg(&w.data_dir)
                .output()
                .expect("run skiff image import");
            assert!(out.status.success(), "skiff image import {tag}: {}", String::from_utf8_lossy(&out.stderr));
        }
        w.spawn();
        w
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(&self.log).expect("create the server log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .arg("server")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--port", "0", "--bind", "127.0.0.1", "--pod-cidr", POD_CIDR, "--cluster-cidr", CLUSTER_CIDR])
            .args(["--kubelet-port", "0", "--bridge", BRIDGE])
            .env("SKIFF_LOG", std::env::var("SKIFF_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn skiff server");
        let stdout = child.stdout.take().expect("piped stdout");
        self.child = Some(child);
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut listening, mut kubeconfig) = (false, false);
        while !(listening && kubeconfig) {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.starts_with("skiff server listening on https://") => listening = true,
                Ok(line) => {
                    if let Some(k) = line.strip_prefix("kubeconfig: ") {
                        self.kubeconfig = PathBuf::from(k.trim());
                        kubeconfig = true;
                    }
                }
                Err(_) => panic!("skiff server did not start\n--- server log ---\n{}", self.log_text()),
            }
        }
    }

    fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }

    fn kubectl_command(&self, args: &[String]) -> Command {
        let mut cmd = Command::new(kubectl_path());
        cmd.args(args)
            .current_dir(repo_root())
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs kubectl, killing it after `timeout`; returns its output and whether it was killed.
    fn kubectl_for(&self, args: &[String], timeout: Duration) -> (Output, bool) {
        let mut child = self.kubectl_command(args).spawn().expect("spawn kubectl");
        let deadline = Instant::now() + timeout;
        let mut killed = false;
        while child.try_wait().expect("wait for kubectl").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                killed = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        (child.wait_with_output().expect("collect kubectl's output"), killed)
    }

    /// Runs kubectl (at most [`STEP_TIMEOUT`]), asserts it succeeded, returns its stdout.
    fn kubectl_ok(&self, args: &[String]) -> String {
        let (out, killed) = self.kubectl_for(args, STEP_TIMEOUT);
        assert!(
            !killed && out.status.success(),
            "kubectl {} failed ({}{})\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- server log ---\n{}",
            args.join(" "),
            out.status,
            if killed { ", killed after the step timeout" } else { "" },
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn kubectl_ok_str(&self, args: &[&str]) -> String {
        self.kubectl_ok(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.kubectl_ok_str(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {} printed no JSON ({e}):\n{out}", all.join(" ")))
    }

    /// The demo Deployment's pods that are not being deleted.
    fn live_pods(&self) -> Vec<Value> {
        let list = self.json(&["get", "pods", "-l", "app=demo"]);
        list["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect()
    }

    /// Waits until the Deployment has exactly `n` live pods, all Ready and all running `image`;
    /// returns their names.
    fn wait_settled(&self, n: usize, image: &str, exclude: &BTreeSet<String>) -> BTreeSet<String> {
        poll(STEP_TIMEOUT, &format!("{n} Ready demo pods on {image}"), || {
            let pods = self.live_pods();
            let all = self.json(&["get", "pods", "-l", "app=demo"]);
            let total = all["items"].as_array().map_or(0, Vec::len);
            let ok = pods.len() == n
                && total == n
                && pods.iter().all(|p| ready(p) && image_of(p) == image && !exclude.contains(&name_of(p)));
            ok.then(|| pods.iter().map(name_of).collect())
        })
    }

    /// Deletes the demo and waits for its pods to be gone (the agent confirms each deletion).
    fn delete_demo(&self) {
        self.kubectl_ok_str(&["delete", "deployment", "demo", "--ignore-not-found"]);
        poll(STEP_TIMEOUT, "the demo's pods to be gone", || {
            self.json(&["get", "pods", "-l", "app=demo"])["items"].as_array().is_some_and(Vec::is_empty).then_some(())
        });
    }

    /// SIGTERM, then SIGKILL after 10 s.
    fn stop_server(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.wait();
    }

    fn agent_dir(&self) -> PathBuf {
        self.data_dir.join("agent")
    }

    fn runc_containers(&self) -> Vec<String> {
        runc_containers(&self.agent_dir().join("runc"))
    }
}

impl Drop for Walkthrough {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- server log ---\n{}", self.log_text());
        }
        self.stop_server();
        let blackhole = self.added_blackhole.then_some(CLUSTER_CIDR);
        remove_agent_leftovers(&self.agent_dir(), &self.data_dir, BRIDGE, blackhole);
    }
}

fn name_of(pod: &Value) -> String {
    pod["metadata"]["name"].as_str().unwrap_or_default().to_string()
}

fn image_of(pod: &Value) -> &str {
    pod["spec"]["containers"][0]["image"].as_str().unwrap_or_default()
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// The waiting reason of a pod's container, if it waits.
fn waiting_reason(pod: &Value) -> Option<&str> {
    pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"].as_str()
}

#[test]
fn readme_seed_workflow() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("read README.md");
    let commands = readme_commands(&readme);
    assert!(commands.len() > 5, "the walkthrough has commands: {commands:?}");

    let w = Walkthrough::start();
    poll(STEP_TIMEOUT, "the server's node to be Ready", || {
        let nodes = w.json(&["get", "nodes"]);
        nodes["items"]
            .as_array()?
            .iter()
            .any(|n| {
                n["status"]["conditions"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
            })
            .then_some(())
    });
    // What `./scripts/up.sh` does before the walkthrough: the demo Deployment, rolled out.
    w.kubectl_ok_str(&["apply", "-f", "examples/demo.yaml"]);
    w.kubectl_ok_str(&["rollout", "status", "deployment/demo", "--timeout=120s"]);
    let mut pods = w.wait_settled(3, "skiff.local/demo-web:v1", &BTreeSet::new());
    // The image the running pods serve, as `set image` / `rollout undo` leave it.
    let mut image = "skiff.local/demo-web:v1".to_string();
    let mut replicas = 3;
    let mut seen = BTreeSet::new();

    for command in &commands {
        if command.starts_with("export KUBECONFIG=") {
            continue;
        }
        if let Some(path) = command.strip_prefix("k=") {
            assert!(path.ends_with("kubectl"), "$k is kubectl: {command:?}");
            continue;
        }
        let args = args_of(command).unwrap_or_else(|| panic!("a walkthrough line the test cannot run: {command:?}"));
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        eprintln!("+ kubectl {}", words.join(" "));
        match words.as_slice() {
            ["get", "pods", "-w"] => {
                // A watch never ends: run it for 3 s, then check it listed the pods.
                let (out, killed) = w.kubectl_for(&args, Duration::from_secs(3));
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert!(
                    killed,
                    "get pods -w ended on its own ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(stdout.starts_with("NAME"), "get pods -w printed a table:\n{stdout}");
                for p in &pods {
                    assert!(stdout.contains(p.as_str()), "get pods -w lists {p}:\n{stdout}");
                }
                seen.insert("watch");
            }
            ["scale", "deployment", "demo", r] => {
                let n: usize = r.strip_prefix("--replicas=").and_then(|n| n.parse().ok()).expect("--replicas=N");
                let out = w.kubectl_ok(&args);
                assert_eq!(out.trim(), "deployment.apps/demo scaled");
                replicas = n;
                pods = w.wait_settled(replicas, &image, &BTreeSet::new());
                seen.insert("scale");
            }
            ["delete", "pod", "-l", "app=demo", "--wait=false"] => {
                let out = w.kubectl_ok(&args);
                for p in &pods {
                    assert!(out.contains(&format!("pod \"{p}\" deleted")), "delete names {p}:\n{out}");
                }
                // "The Deployment replaces them at once": as many new pods, none of the old ones.
                pods = w.wait_settled(replicas, &image, &pods);
                seen.insert("delete");
            }
            ["logs", "deployment/demo"] => {
                // busybox httpd -f logs nothing; the command must reach a pod's log and succeed.
                let (out, killed) = w.kubectl_for(&args, STEP_TIMEOUT);
                assert!(!killed && out.status.success(), "logs: {}", String::from_utf8_lossy(&out.stderr));
                assert!(
                    out.stderr.is_empty() || String::from_utf8_lossy(&out.stderr).starts_with("Found "),
                    "logs stderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                seen.insert("logs");
            }
            ["exec", "deployment/demo", "--", ..] => {
                let out = w.kubectl_ok(&args);
                let tag = image.rsplit(':').next().unwrap_or_default();
                assert!(
                    out.contains(&format!("<h1>Hello from a Skiff pod ({tag})</h1>")),
                    "exec printed the demo page:\n{out}"
                );
                seen.insert("exec");
            }
            ["set", "image", "deployment/demo", spec] => {
                let new = spec.strip_prefix("web=").expect("set image web=IMAGE");
                let out = w.kubectl_ok(&args);
                assert_eq!(out.trim(), "deployment.apps/demo image updated");
                if new.ends_with(":broken") {
                    seen.insert("broken");
                } else {
                    image = new.to_string();
                    seen.insert("set image");
                }
            }
            ["rollout", "status", "deployment/demo"] => {
                let out = w.kubectl_ok(&args);
                assert!(out.contains("deployment \"demo\" successfully rolled out"), "rollout status:\n{out}");
                pods = w.wait_settled(replicas, &image, &BTreeSet::new());
                seen.insert("rollout status");
            }
            ["get", "pods"] if seen.contains("broken") && !seen.contains("undo") => {
                // The new pods cannot pull their image; the old ones keep serving.
                let out = poll(STEP_TIMEOUT, "new pods in ErrImagePull/ImagePullBackOff", || {
                    let out = w.kubectl_ok(&args);
                    (out.contains("ErrImagePull") || out.contains("ImagePullBackOff")).then_some(out)
                });
                let live = w.live_pods();
                let broken: Vec<&Value> = live.iter().filter(|p| image_of(p).ends_with(":broken")).collect();
                assert!(!broken.is_empty(), "new pods exist:\n{out}");
                for p in &broken {
                    let reason = waiting_reason(p);
                    assert!(
                        matches!(reason, Some("ErrImagePull" | "ImagePullBackOff") | None),
                        "{} waits for its image: {reason:?}",
                        name_of(p)
                    );
                }
                let serving = live.iter().filter(|p| image_of(p) == image && ready(p)).count();
                // maxUnavailable 25% of the replicas (rounded down) may go; the rest keep serving.
                assert!(serving >= replicas - replicas / 4, "{serving} old pods of {replicas} still Ready:\n{out}");
                seen.insert("broken pods");
            }
            ["rollout", "undo", "deployment/demo"] => {
                let out = w.kubectl_ok(&args);
                assert_eq!(out.trim(), "deployment.apps/demo rolled back");
                pods = w.wait_settled(replicas, &image, &BTreeSet::new());
                seen.insert("undo");
            }
            ["rollout", "history", "deployment/demo"] => {
                let out = w.kubectl_ok(&args);
                assert!(out.starts_with("deployment.apps/demo"), "rollout history:\n{out}");
                assert!(out.contains("REVISION") && out.contains("CHANGE-CAUSE"), "rollout history:\n{out}");
                seen.insert("history");
            }
            ["create", "deployment", name, ..] if words.contains(&"--dry-run=client") => {
                let out = w.kubectl_ok(&args);
                assert!(out.contains("kind: Deployment") && out.contains(&format!("name: {name}")), "dry run:\n{out}");
                let got = w.json(&["get", "deployments"]);
                let names: Vec<&str> = got["items"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|d| d["metadata"]["name"].as_str()).collect())
                    .unwrap_or_default();
                assert_eq!(names, ["demo"], "a client-side dry run creates nothing");
                seen.insert("dry run");
            }
            ["get", "all"] => {
                let out = w.kubectl_ok(&args);
                assert!(out.contains("deployment.apps/demo "), "get all shows the Deployment:\n{out}");
                assert!(out.contains("replicaset.apps/demo-"), "get all shows its ReplicaSets:\n{out}");
                for p in &pods {
                    assert!(out.contains(&format!("pod/{p} ")), "get all shows pod/{p}:\n{out}");
                }
                seen.insert("get all");
            }
            _ => {
                // A step this test has no outcome check for must at least succeed.
                w.kubectl_ok(&args);
            }
        }
    }
    for step in
        ["scale", "delete", "watch", "logs", "exec", "set image", "rollout status", "broken", "broken pods", "undo"]
    {
        assert!(seen.contains(step), "the walkthrough covers {step:?}: {commands:?}");
    }

    w.delete_demo();
    assert!(w.runc_containers().is_empty(), "no containers are left: {:?}", w.runc_containers());
}

/// The block extraction: comments go, URLs keep their text, other sections are ignored.
#[test]
fn readme_block_extraction() {
    let cases = [
        ("$k get pods -w", "$k get pods -w"),
        ("$k scale deployment demo --replicas=5   # five", "$k scale deployment demo --replicas=5"),
        (
            "$k exec d -- wget -qO- http://127.0.0.1:8080/#x   # a command",
            "$k exec d -- wget -qO- http://127.0.0.1:8080/#x",
        ),
        ("# only a comment", ""),
    ];
    for (line, want) in cases {
        assert_eq!(strip_comment(line), want, "{line:?}");
    }
    let text = "# T\n## Other\n```sh\n$k nope\n```\n## The seed's workflow\ntext\n```sh\nexport KUBECONFIG=x\n\n$k get all  # all\n```\n```sh\n$k later\n```\n## Next\n";
    assert_eq!(readme_commands(text), ["export KUBECONFIG=x", "$k get all"]);
}
