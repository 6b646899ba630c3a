//! The peer: Debian's podman, as root, with runc as its runtime, isolated from any podman set-up
//! of the machine: its own `containers.conf` (through `CONTAINERS_CONF`), storage root and run
//! root in a temporary directory, and its own CNI network (bridge and subnet) for `kube play`.
//! Dropping it removes its pods, containers, images, mounts, bridge and directory.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use crate::procs::{run, unmount_under};

pub struct Podman {
    dir: PathBuf,
    bridge: String,
    /// podman's cgroupfs cgroups (`/sys/fs/cgroup/*/libpod_parent/...`) that existed before.
    cgroups_before: HashSet<PathBuf>,
    /// Whether the CNI firewall plugin's chains existed before (it creates them and never
    /// removes them; we remove them if we caused them).
    firewall_before: bool,
}

/// The CNI firewall plugin's `filter` chains.
const FIREWALL_CHAINS: [&str; 2] = ["CNI-FORWARD", "CNI-ADMIN"];

fn firewall_chains_present() -> bool {
    let out = Command::new("iptables").args(["-w", "-S"]).output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    text.lines().any(|l| FIREWALL_CHAINS.iter().any(|c| l == format!("-N {c}")))
}

fn remove_firewall_chains() {
    let quiet = |args: &[&str]| {
        let _ = Command::new("iptables").args(args).stdout(Stdio::null()).stderr(Stdio::null()).status();
    };
    let comment = "CNI firewall plugin rules";
    quiet(&["-w", "-D", "FORWARD", "-m", "comment", "--comment", comment, "-j", "CNI-FORWARD"]);
    for op in ["-F", "-X"] {
        for chain in FIREWALL_CHAINS {
            quiet(&["-w", op, chain]);
        }
    }
}

/// Every directory under `/sys/fs/cgroup/*/libpod_parent`, the parents included.
fn libpod_cgroups() -> HashSet<PathBuf> {
    fn walk(dir: &Path, out: &mut HashSet<PathBuf>) {
        out.insert(dir.to_path_buf());
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&entry.path(), out);
            }
        }
    }
    let mut out = HashSet::new();
    for h in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        let parent = h.path().join("libpod_parent");
        if parent.is_dir() {
            walk(&parent, &mut out);
        }
    }
    out
}

/// The network `podman kube play` puts pods on.
const KUBE_NETWORK: &str = "podman-default-kube-network";

/// `containers.conf`: runc (Debian's crun refuses this machine's hybrid cgroups), no default
/// ulimits (podman's defaults fail here), cgroupfs and file events (no systemd), CNI networks
/// from our own directory.
pub fn containers_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "[containers]\ndefault_ulimits = []\n\n[network]\nnetwork_backend = \"cni\"\nnetwork_config_dir = \"{d}/net\"\n\
         cni_plugin_dirs = [\"/usr/lib/cni\"]\n\n[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n\
         events_logger = \"file\"\nevents_logfile_path = \"{d}/events.log\"\ntmp_dir = \"{d}/tmp\"\n"
    )
}

/// The CNI configuration of kube play's network: podman's own default plugins, our bridge name and
/// subnet.
pub fn network_conflist(bridge: &str, subnet: &str, gateway: &str, ipam_dir: &Path) -> String {
    let conf = json!({
        "cniVersion": "0.4.0",
        "name": KUBE_NETWORK,
        "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": true, "hairpinMode": true,
             "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}], "dataDir": ipam_dir,
                      "ranges": [[{"subnet": subnet, "gateway": gateway}]]},
             "capabilities": {"ips": true}},
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "firewall", "backend": ""},
            {"type": "tuning"},
        ],
    });
    serde_json::to_string_pretty(&conf).unwrap_or_default()
}

impl Podman {
    /// Sets podman up in `dir` and loads the image archive as `image`.
    pub fn new(
        dir: &Path,
        bridge: &str,
        subnet: &str,
        gateway: &str,
        archive: &Path,
        image: &str,
    ) -> anyhow::Result<Podman> {
        std::fs::create_dir_all(dir.join("net"))?;
        std::fs::create_dir_all(dir.join("tmp"))?;
        std::fs::write(dir.join("containers.conf"), containers_conf(dir))?;
        std::fs::write(
            dir.join("net").join(format!("{KUBE_NETWORK}.conflist")),
            network_conflist(bridge, subnet, gateway, &dir.join("ipam")),
        )?;
        let cgroups_before = libpod_cgroups();
        let firewall_before = firewall_chains_present();
        let podman = Podman { dir: dir.to_path_buf(), bridge: bridge.to_string(), cgroups_before, firewall_before };
        let loaded = run(podman.cmd().args(["load", "-q", "-i"]).arg(archive))?;
        let id = loaded
            .lines()
            .find_map(|l| l.strip_prefix("Loaded image: "))
            .context("podman load names the image")?
            .trim()
            .to_string();
        run(podman.cmd().args(["tag", &id, image]))?;
        Ok(podman)
    }

    /// A podman command on this private set-up.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .args(["--storage-driver", "overlay", "--runtime", "runc", "--cgroup-manager", "cgroupfs"])
            .stdin(Stdio::null());
        c
    }

    /// `podman kube play FILE`: the time until it has started every container and exited, then
    /// checked (untimed) with `podman ps`: `replicas` containers of pods named `<name>-pod-*` run.
    pub fn play(&self, file: &Path, name: &str, replicas: usize) -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        run(self.cmd().args(["kube", "play"]).arg(file))?;
        let took = t0.elapsed();
        let running = self.running(name)?;
        anyhow::ensure!(running == replicas, "podman kube play left {running} of {replicas} containers running");
        Ok(took)
    }

    /// How many app containers of `<name>-pod-*` pods run.
    fn running(&self, name: &str) -> anyhow::Result<usize> {
        let out = run(self.cmd().args(["ps", "--filter", "status=running", "--format", "{{.Names}}"]))?;
        let prefix = format!("{name}-pod-");
        Ok(out.lines().filter(|n| n.starts_with(&prefix) && !n.ends_with("-infra")).count())
    }

    /// `podman kube down FILE` (untimed).
    pub fn down(&self, file: &Path) -> anyhow::Result<()> {
        run(self.cmd().args(["kube", "down"]).arg(file)).map(|_| ())
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let quiet = |c: &mut Command| {
            let _ = c.stdout(Stdio::null()).stderr(Stdio::null()).status();
        };
        quiet(self.cmd().args(["pod", "rm", "-af", "-t", "0"]));
        quiet(self.cmd().args(["rm", "-af", "-t", "0"]));
        quiet(self.cmd().args(["rmi", "-af"]));
        unmount_under(&self.dir);
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).stderr(Stdio::null()).status();
        if !self.firewall_before {
            remove_firewall_chains();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        // The cgroups podman made for our pods (it leaves them in some hierarchies): deepest first.
        let mut made: Vec<PathBuf> = libpod_cgroups().difference(&self.cgroups_before).cloned().collect();
        made.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for dir in made {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration() {
        let conf = containers_conf(Path::new("/tmp/x"));
        for line in ["default_ulimits = []", "runtime = \"runc\"", "network_config_dir = \"/tmp/x/net\""] {
            assert!(conf.contains(line), "{line} in\n{conf}");
        }
        let net: serde_json::Value =
            serde_json::from_str(&network_conflist("skb0pm", "10.249.0.0/24", "10.249.0.1", Path::new("/tmp/x/ipam")))
                .expect("json");
        assert_eq!(net["name"], KUBE_NETWORK);
        assert_eq!(net["plugins"][0]["bridge"], "skb0pm");
        assert_eq!(net["plugins"][0]["ipam"]["ranges"][0][0]["subnet"], "10.249.0.0/24");
        assert_eq!(net["plugins"][0]["ipam"]["dataDir"], "/tmp/x/ipam");
    }
}
