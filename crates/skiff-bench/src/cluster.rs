//! Skiff as the benchmarks run it: the real `skiff server` and `skiff agent` binaries on a private
//! data directory, a free port, and the harness's own bridge and pod range, plus the demo images.
//!
//! Cleaning up: [`Cluster::shutdown`] deletes the benchmark's pods through the API (so the agent
//! releases containers, network namespaces, CNI addresses and iptables rules) and then stops the
//! processes; [`Agent`]'s `Drop` removes whatever is left (runc containers, mounts, the bridge, the
//! blackhole route it added, pod cgroups) if a scenario failed half-way.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use serde_json::{Value, json};

use crate::procs::{Guard, run, unmount_under};

/// The pods' network: the harness's own bridge and ranges, apart from the e2e tests' (`skag*`,
/// 10.244.0.0/16) and the default `skiff server` (`skiff0`, 10.42.0.0/16).
#[derive(Debug, Clone)]
pub struct Net {
    pub bridge: String,
    pub cluster_cidr: String,
    pub pod_cidr: String,
}

/// What every scenario needs: the binaries, the image archives, a scratch directory.
pub struct Env {
    pub skiff: PathBuf,
    pub kubectl: Option<PathBuf>,
    /// The demo image archives, v1 and v2 (`skiff.local/demo-web:v1`, `:v2`).
    pub images: [PathBuf; 2],
    pub net: Net,
    /// podman's pod network for `kube play`.
    pub podman_subnet: String,
    pub quick: bool,
    pub scratch: tempfile::TempDir,
}

pub const IMAGE_V1: &str = "skiff.local/demo-web:v1";
pub const IMAGE_V2: &str = "skiff.local/demo-web:v2";
/// The node the benchmark's agent registers.
pub const NODE: &str = "skiff-bench-node";

impl Env {
    /// A fresh directory under the scratch directory.
    pub fn dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let d = tempfile::Builder::new().prefix(name).tempdir_in(self.scratch.path())?.keep();
        Ok(d)
    }
}

/// A client from a kubeconfig, with timeouts long enough for watches.
pub async fn client(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).context("read the kubeconfig")?;
    let mut config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?;
    config.read_timeout = Some(Duration::from_secs(600));
    Ok(kube::Client::try_from(config)?)
}

/// A running `skiff server`.
pub struct Server {
    pub guard: Guard,
    pub kubeconfig: PathBuf,
}

impl Server {
    /// Starts `skiff server --no-agent` on `data_dir` and a free port, with `extra` arguments, and
    /// waits for its "listening" and "kubeconfig" lines.
    pub fn start(skiff: &Path, data_dir: &Path, extra: &[&str]) -> anyhow::Result<Server> {
        std::fs::create_dir_all(data_dir)?;
        let log = data_dir.with_extension("server.log");
        let log_file = std::fs::File::create(&log)?;
        let mut child = Command::new(skiff)
            .args(["server", "--no-agent", "--port", "0", "--bind", "127.0.0.1", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("SKIFF_LOG", std::env::var("SKIFF_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .with_context(|| format!("spawn {}", skiff.display()))?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let guard = Guard::new(child, "skiff server");
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
            let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).map_err(|_| {
                anyhow::anyhow!("skiff server did not start: {}", std::fs::read_to_string(&log).unwrap_or_default())
            })?;
            if let Some(a) = line.strip_prefix("skiff server listening on https://") {
                addr = Some(a.trim().parse::<SocketAddr>()?);
            } else if let Some(k) = line.strip_prefix("kubeconfig: ") {
                kubeconfig = Some(PathBuf::from(k.trim()));
            }
        }
        addr.context("the server's address")?;
        Ok(Server { guard, kubeconfig: kubeconfig.context("kubeconfig")? })
    }
}

/// A running real `skiff agent` (runc containers on the harness's bridge).
pub struct Agent {
    pub guard: Guard,
    pub data_dir: PathBuf,
    net: Net,
    added_blackhole: bool,
}

fn blackhole_present(cidr: &str) -> bool {
    Command::new("ip")
        .args(["route", "show", "type", "blackhole", cidr])
        .output()
        .map(|o| !String::from_utf8_lossy(&o.stdout).trim().is_empty())
        .unwrap_or(false)
}

/// Imports the demo images into the image store of the agent whose data directory is
/// `server_data_dir/agent` (where `skiff image import --data-dir` puts them).
pub fn import_images(env: &Env, agent_data_dir: &Path) -> anyhow::Result<()> {
    let root = agent_data_dir.parent().context("agent data dir has a parent")?;
    anyhow::ensure!(agent_data_dir.ends_with("agent"), "the agent's data directory is DIR/agent");
    for (archive, name) in env.images.iter().zip([IMAGE_V1, IMAGE_V2]) {
        run(Command::new(&env.skiff)
            .args(["image", "import"])
            .arg(archive)
            .args(["--name", name, "--data-dir"])
            .arg(root))?;
    }
    Ok(())
}

impl Agent {
    /// Starts `skiff agent` for node [`NODE`] with `data_dir` (which must be `SOMETHING/agent`, the
    /// images already imported).
    pub fn start(env: &Env, kubeconfig: &Path, data_dir: &Path) -> anyhow::Result<Agent> {
        let added_blackhole = !blackhole_present(&env.net.cluster_cidr);
        let log = data_dir.with_extension("log");
        let child = Command::new(&env.skiff)
            .args(["agent", "--kubeconfig"])
            .arg(kubeconfig)
            .args(["--node-name", NODE, "--data-dir"])
            .arg(data_dir)
            .args(["--pod-cidr", &env.net.pod_cidr, "--cluster-cidr", &env.net.cluster_cidr])
            .args(["--bridge", &env.net.bridge, "--kubelet-port", "0"])
            .env("SKIFF_LOG", std::env::var("SKIFF_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(log)?))
            .spawn()
            .context("spawn skiff agent")?;
        Ok(Agent {
            guard: Guard::new(child, "skiff agent"),
            data_dir: data_dir.to_path_buf(),
            net: env.net.clone(),
            added_blackhole,
        })
    }

    pub fn runc_root(&self) -> PathBuf {
        self.data_dir.join("runc")
    }

    /// The PID of a runc container of this agent (`runc state`).
    pub fn container_pid(&self, id: &str) -> anyhow::Result<i32> {
        let state: Value =
            serde_json::from_str(&run(Command::new("runc").arg("--root").arg(self.runc_root()).args(["state", id]))?)?;
        state["pid"].as_i64().map(|p| p as i32).context("runc state has no pid")
    }

    fn runc_containers(&self) -> Vec<String> {
        Command::new("runc")
            .arg("--root")
            .arg(self.runc_root())
            .args(["list", "-q"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect())
            .unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.guard.stop(Duration::from_secs(5));
        for id in self.runc_containers() {
            let _ = Command::new("runc").arg("--root").arg(self.runc_root()).args(["delete", "--force", &id]).status();
        }
        unmount_under(&self.data_dir);
        let _ = Command::new("ip").args(["link", "del", &self.net.bridge]).stderr(Stdio::null()).status();
        skiff_runtime::masquerade::remove(&self.net.bridge);
        if self.added_blackhole {
            let _ = Command::new("ip")
                .args(["route", "del", "blackhole", &self.net.cluster_cidr])
                .stderr(Stdio::null())
                .status();
        }
        // Pods whose sandbox was never torn down leave (empty) cgroup directories.
        let uids: Vec<String> = std::fs::read_dir(self.data_dir.join("sandboxes"))
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let hierarchies: Vec<PathBuf> =
            std::fs::read_dir("/sys/fs/cgroup").map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        for uid in uids.iter().filter(|u| !u.is_empty() && !u.contains('.') && !u.contains('/')) {
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

/// A server with controllers and scheduler, and one real agent.
pub struct Cluster {
    pub client: kube::Client,
    pub agent: Agent,
    pub server: Server,
}

impl Cluster {
    /// Starts a server and an agent on a fresh directory; returns when the node is Ready.
    pub async fn start(env: &Env) -> anyhow::Result<Cluster> {
        let dir = env.dir("cluster-")?;
        let agent_dir = dir.join("agent");
        import_images(env, &agent_dir)?;
        let server = Server::start(&env.skiff, &dir.join("data"), &[])?;
        let agent = Agent::start(env, &server.kubeconfig, &agent_dir)?;
        let client = client(&server.kubeconfig).await?;
        let cluster = Cluster { client, agent, server };
        cluster.wait_node_ready(Duration::from_secs(60)).await?;
        wait_service_account(&cluster.client).await?;
        Ok(cluster)
    }

    async fn wait_node_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(n)) = nodes.get_opt(NODE).await {
                let ready = n
                    .status
                    .and_then(|s| s.conditions)
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                if ready {
                    return Ok(());
                }
            }
            anyhow::ensure!(Instant::now() < deadline, "node {NODE} was not Ready within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Deletes the pods (and their owners) labelled `bench`, and waits until they are gone.
    pub async fn clear(&self) -> anyhow::Result<()> {
        let lp = ListParams::default().labels("bench");
        let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(self.client.clone(), "default");
        let _ = deployments.delete_collection(&DeleteParams::default(), &lp).await;
        let _ = self.pods().delete_collection(&DeleteParams::default(), &lp).await;
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let left = self.pods().list(&lp).await.map(|l| l.items.len()).unwrap_or(usize::MAX);
            if left == 0 {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "{left} benchmark pods still exist after 180 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Deletes the benchmark's objects (the agent tears their pods down), then stops agent and
    /// server.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let cleared = self.clear().await;
        self.agent.guard.stop(Duration::from_secs(5));
        self.server.guard.stop(Duration::from_secs(10));
        cleared
    }
}

/// Pods are admitted once the namespace's `default` ServiceAccount exists; waits for it.
pub async fn wait_service_account(client: &kube::Client) -> anyhow::Result<()> {
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), "default");
    let deadline = Instant::now() + Duration::from_secs(30);
    while sas.get_opt("default").await.ok().flatten().is_none() {
        anyhow::ensure!(Instant::now() < deadline, "no default ServiceAccount after 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The pod template of every benchmark pod: the demo web server, image present, a short grace
/// period so that deletions between runs do not wait 30 s for busybox httpd (which ignores SIGTERM
/// as PID 1).
pub fn pod_spec(image: &str) -> Value {
    json!({
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "web", "image": image, "imagePullPolicy": "IfNotPresent"}],
    })
}

/// A bare pod labelled `bench=<run>`.
pub fn pod(name: &str, run: &str) -> Pod {
    let v = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": run}},
        "spec": pod_spec(IMAGE_V1),
    });
    serde_json::from_value(v).unwrap_or_default()
}

/// A Deployment labelled `bench=<name>` whose pods carry `app=<name>`.
pub fn deployment(name: &str, replicas: i32, image: &str, max_surge: Option<i32>) -> Value {
    let mut d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"bench": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name, "bench": name}}, "spec": pod_spec(image)},
        },
    });
    if let Some(surge) = max_surge {
        d["spec"]["strategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": 0}});
    }
    d
}

/// The Deployment as YAML (JSON is YAML), for `kubectl apply` and `podman kube play`, with the
/// pull policy `Never` (podman's kube play would otherwise try the registry).
pub fn deployment_yaml(name: &str, replicas: i32) -> String {
    let mut d = deployment(name, replicas, IMAGE_V1, None);
    d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("Never");
    serde_json::to_string_pretty(&d).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests() {
        let d = deployment("roll", 10, IMAGE_V1, Some(1));
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"], json!({"maxSurge": 1, "maxUnavailable": 0}));
        assert_eq!(d["spec"]["template"]["metadata"]["labels"]["app"], "roll");
        let yaml: Value = serde_json::from_str(&deployment_yaml("web", 3)).expect("json is yaml");
        assert_eq!(yaml["spec"]["replicas"], 3);
        assert_eq!(yaml["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "Never");
        let p = pod("p-1", "start-1");
        assert_eq!(p.metadata.labels.and_then(|l| l.get("bench").cloned()).as_deref(), Some("start-1"));
    }
}
