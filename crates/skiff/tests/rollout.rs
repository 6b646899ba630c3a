//! The Deployment workflow of the seed, driven by the real kubectl against `skiff server` with its
//! controllers and scheduler, and nodes simulated by `skiff agent --simulate` (no containers):
//! create, scale, rolling update with its invariants checked throughout, history, undo, pause and
//! resume, restart, a rollout that halts on its progress deadline, self-healing.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Server;
use serde_json::Value;

/// A `skiff agent --simulate N` process, killed by its PID when dropped.
struct Simulator(Child);

impl Simulator {
    fn start(server: &Server, prefix: &str, count: usize) -> Simulator {
        let child = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(["agent", "--simulate", &count.to_string(), "--node-name", prefix, "--ready-delay", "100"])
            .arg("--kubeconfig")
            .arg(&server.kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the node simulator");
        Simulator(child)
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ready_nodes(s: &Server) -> usize {
    let nodes = s.kubectl_json(&["get", "nodes", "-o", "json"]);
    nodes["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|n| {
                    n["status"]["conditions"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
                })
                .count()
        })
        .unwrap_or(0)
}

fn cluster(nodes: usize) -> (Server, Simulator) {
    let s = Server::start();
    let sim = Simulator::start(&s, "sim", nodes);
    poll("simulated nodes to be Ready", Duration::from_secs(30), || (ready_nodes(&s) == nodes).then_some(()));
    (s, sim)
}

fn rollout_status(s: &Server, deploy: &str) -> String {
    s.kubectl_ok(&["rollout", "status", &format!("deployment/{deploy}"), "--timeout=90s"])
}

fn deployment(s: &Server, name: &str) -> Value {
    s.kubectl_json(&["get", "deployment", name, "-o", "json"])
}

fn running_pods(s: &Server, selector: &str) -> Vec<Value> {
    let pods = s.kubectl_json(&["get", "pods", "-l", selector, "-o", "json"]);
    pods["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null())
        .collect()
}

/// Watches the Deployment's status during a rollout and records every violation of
/// `availableReplicas >= replicas - maxUnavailable` and `replicas <= spec.replicas + maxSurge`
/// (Kubernetes' `WaitForDeploymentCompleteAndCheckRolling`).
struct InvariantWatch {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<(usize, Vec<String>)>>,
}

impl InvariantWatch {
    fn start(s: &Server, name: &str, max_surge: i64, max_unavailable: i64) -> InvariantWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let mut child = s
            .kubectl_command(&["get", "deployment", name, "-w", "-o", "json", "--output-watch-events=false"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl get -w");
        let stdout = child.stdout.take().expect("stdout");
        let handle = std::thread::spawn(move || {
            let mut violations = Vec::new();
            let mut seen = 0;
            let mut stream = serde_json::Deserializer::from_reader(stdout).into_iter::<Value>();
            while !flag.load(Ordering::SeqCst) {
                let Some(Ok(d)) = stream.next() else { break };
                seen += 1;
                let want = d["spec"]["replicas"].as_i64().unwrap_or(0);
                let total = d["status"]["replicas"].as_i64().unwrap_or(0);
                let available = d["status"]["availableReplicas"].as_i64().unwrap_or(0);
                let rv = d["metadata"]["resourceVersion"].as_str().unwrap_or("").to_string();
                if total > want + max_surge {
                    violations.push(format!("rv {rv}: {total} pods > {want} + maxSurge {max_surge}"));
                }
                if available < want - max_unavailable {
                    violations
                        .push(format!("rv {rv}: {available} available < {want} - maxUnavailable {max_unavailable}"));
                }
            }
            let _ = child.kill();
            let _ = child.wait();
            (seen, violations)
        });
        InvariantWatch { stop, handle: Some(handle) }
    }

    /// Stops watching; returns how many states were observed and the violations among them.
    fn finish(mut self, s: &Server, name: &str) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        // One more change wakes the reader so it sees the stop flag.
        s.kubectl_ok(&["annotate", "deployment", name, "skiff.test/poke=1", "--overwrite"]);
        self.handle.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default()
    }
}

#[test]
fn create_scale_update_undo_pause_restart() {
    let (s, _sim) = cluster(3);
    let out = s.kubectl_ok(&["create", "deployment", "web", "--image=nginx:1.25", "--replicas=3"]);
    assert_eq!(out.trim(), "deployment.apps/web created");
    let out = rollout_status(&s, "web");
    assert!(out.contains("deployment \"web\" successfully rolled out"), "{out}");
    assert_eq!(running_pods(&s, "app=web").len(), 3);
    // Replicas of one owner are spread over the nodes.
    let nodes: std::collections::BTreeSet<String> =
        running_pods(&s, "app=web").iter().filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_string)).collect();
    assert_eq!(nodes.len(), 3, "three replicas on three nodes: {nodes:?}");

    s.kubectl_ok(&["scale", "deployment", "web", "--replicas=5"]);
    rollout_status(&s, "web");
    poll("5 running pods", Duration::from_secs(30), || (running_pods(&s, "app=web").len() == 5).then_some(()));

    // Rolling update: 25% of 5 → maxSurge 2 (rounded up), maxUnavailable 1 (rounded down).
    let watch = InvariantWatch::start(&s, "web", 2, 1);
    s.kubectl_ok(&["set", "image", "deployment/web", "nginx=nginx:1.26"]);
    let out = rollout_status(&s, "web");
    assert!(out.contains("successfully rolled out"), "{out}");
    let (seen, violations) = watch.finish(&s, "web");
    assert!(seen >= 5, "the watcher saw the rollout's intermediate states (saw {seen})");
    assert!(violations.is_empty(), "rolling update broke its bounds: {violations:#?}");
    let d = deployment(&s, "web");
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.26");
    assert_eq!(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "2");
    assert_eq!(d["status"]["updatedReplicas"], 5);
    let rs = s.kubectl_json(&["get", "rs", "-l", "app=web", "-o", "json"]);
    let sizes: Vec<i64> = rs["items"]
        .as_array()
        .map(|a| a.iter().map(|r| r["spec"]["replicas"].as_i64().unwrap_or(-1)).collect())
        .unwrap_or_default();
    assert_eq!(sizes.iter().filter(|n| **n == 5).count(), 1, "{sizes:?}");
    assert_eq!(sizes.iter().filter(|n| **n == 0).count(), 1, "{sizes:?}");

    let history = s.kubectl_ok(&["rollout", "history", "deployment/web"]);
    assert!(history.contains("REVISION") && history.contains("\n1 ") && history.contains("\n2 "), "{history}");

    // Undo goes back to the first template, which becomes revision 3.
    let out = s.kubectl_ok(&["rollout", "undo", "deployment/web"]);
    assert_eq!(out.trim(), "deployment.apps/web rolled back");
    rollout_status(&s, "web");
    let d = deployment(&s, "web");
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.25");
    assert_eq!(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "3");

    // Paused: a template change makes no new ReplicaSet until resumed.
    assert_eq!(s.kubectl_ok(&["rollout", "pause", "deployment/web"]).trim(), "deployment.apps/web paused");
    s.kubectl_ok(&["set", "image", "deployment/web", "nginx=nginx:1.27"]);
    std::thread::sleep(Duration::from_secs(2));
    let rs = s.kubectl_json(&["get", "rs", "-l", "app=web", "-o", "json"]);
    let images: Vec<String> = rs["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    assert!(!images.iter().any(|i| i == "nginx:1.27"), "no rollout while paused: {images:?}");
    assert_eq!(s.kubectl_ok(&["rollout", "resume", "deployment/web"]).trim(), "deployment.apps/web resumed");
    rollout_status(&s, "web");
    assert_eq!(deployment(&s, "web")["status"]["updatedReplicas"], 5);

    // Restart: the restartedAt annotation rolls every pod.
    let out = s.kubectl_ok(&["rollout", "restart", "deployment/web"]);
    assert_eq!(out.trim(), "deployment.apps/web restarted");
    rollout_status(&s, "web");
    let d = deployment(&s, "web");
    assert!(d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string());
    assert_eq!(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "5");
}

#[test]
fn a_rollout_that_never_gets_ready_halts_on_its_deadline() {
    let (s, _sim) = cluster(2);
    s.kubectl_ok(&["create", "deployment", "bad", "--image=nginx:1.25", "--replicas=2"]);
    rollout_status(&s, "bad");
    s.kubectl_ok(&["patch", "deployment", "bad", "-p", r#"{"spec":{"progressDeadlineSeconds":3}}"#]);
    // Pods of the new template never become ready (the simulator's `never-ready` mode).
    s.kubectl_ok(&[
        "patch",
        "deployment",
        "bad",
        "-p",
        r#"{"spec":{"template":{"metadata":{"annotations":{"skiff.dev/simulate":"never-ready"}},"spec":{"containers":[{"name":"nginx","image":"nginx:broken"}]}}}}"#,
    ]);
    let out = s.kubectl(&["rollout", "status", "deployment/bad", "--timeout=60s"]);
    assert!(!out.status.success(), "rollout status must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("exceeded its progress deadline"), "{stderr}");
    let d = deployment(&s, "bad");
    let progressing = d["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Progressing").cloned())
        .expect("a Progressing condition");
    assert_eq!(progressing["reason"], "ProgressDeadlineExceeded");
    assert_eq!(progressing["status"], "False");
    // maxSurge 25% of 2 rounds up to 1 and maxUnavailable down to 0: the old pods keep serving.
    assert_eq!(d["status"]["availableReplicas"], 2, "the old version keeps serving");
}

#[test]
fn deleted_pods_and_pods_of_deleted_nodes_are_replaced() {
    let (s, _sim) = cluster(3);
    s.kubectl_ok(&["create", "deployment", "heal", "--image=nginx:1.25", "--replicas=3"]);
    rollout_status(&s, "heal");
    let victim = running_pods(&s, "app=heal")[0]["metadata"]["name"].as_str().expect("a pod").to_string();
    s.kubectl_ok(&["delete", "pod", &victim]);
    poll("a replacement pod", Duration::from_secs(30), || {
        let pods = running_pods(&s, "app=heal");
        (pods.len() == 3 && pods.iter().all(|p| p["metadata"]["name"] != victim.as_str())).then_some(())
    });

    // A Node object deleted: its pods are collected and replaced on the remaining nodes.
    let pods = running_pods(&s, "app=heal");
    let node = pods[0]["spec"]["nodeName"].as_str().expect("a node").to_string();
    let on_node: Vec<String> = pods
        .iter()
        .filter(|p| p["spec"]["nodeName"] == node.as_str())
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    s.kubectl_ok(&["delete", "node", &node]);
    poll("the pods of the deleted node to be replaced", Duration::from_secs(60), || {
        let pods = running_pods(&s, "app=heal");
        let gone = pods.iter().all(|p| !on_node.iter().any(|n| p["metadata"]["name"] == n.as_str()));
        (pods.len() == 3 && gone).then_some(())
    });
}
