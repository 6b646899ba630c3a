//! Cleaning up after a node agent that a failing test left behind: its runc containers, mounts,
//! bridge, the CNI plugin's and the agent's NAT rules, the blackhole route and pod cgroups.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Whether the blackhole route for `cidr` exists.
pub fn blackhole_present(cidr: &str) -> bool {
    Command::new("ip")
        .args(["route", "show", "type", "blackhole", cidr])
        .output()
        .map(|o| !String::from_utf8_lossy(&o.stdout).trim().is_empty())
        .unwrap_or(false)
}

/// The runc containers under `runc_root`.
pub fn runc_containers(runc_root: &Path) -> Vec<String> {
    let out = Command::new("runc").arg("--root").arg(runc_root).args(["list", "-q"]).output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect()).unwrap_or_default()
}

/// Removes what an agent with data directory `agent_dir` and pod bridge `bridge` left: its runc
/// containers, mounts and pod cgroups ([`remove_agent_state`]), the bridge, the CNI and masquerade
/// NAT rules of its network and the blackhole route `blackhole` (when the test added it).
pub fn remove_agent_leftovers(agent_dir: &Path, mount_prefix: &Path, bridge: &str, blackhole: Option<&str>) {
    remove_agent_state(agent_dir, mount_prefix);
    let _ = Command::new("ip").args(["link", "del", bridge]).stderr(Stdio::null()).status();
    remove_cni_nat_rules(bridge);
    skiff_runtime::masquerade::remove(bridge);
    if let Some(cidr) = blackhole {
        let _ = Command::new("ip").args(["route", "del", "blackhole", cidr]).stderr(Stdio::null()).status();
    }
}

/// Removes an agent's runc containers (root `agent_dir/runc`), every mount under `mount_prefix`
/// and the cgroup directories of its pods (those whose sandbox was never destroyed; empty by now).
pub fn remove_agent_state(agent_dir: &Path, mount_prefix: &Path) {
    let runc_root = agent_dir.join("runc");
    for id in runc_containers(&runc_root) {
        let _ = Command::new("runc").arg("--root").arg(&runc_root).args(["delete", "--force", &id]).status();
    }
    let prefix = format!("{}/", mount_prefix.display());
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<&str> =
        info.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&prefix)).collect();
    mounts.reverse();
    for m in mounts {
        let _ = Command::new("umount").arg("-l").arg(m).status();
    }
    let uids: Vec<String> = std::fs::read_dir(agent_dir.join("sandboxes"))
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

/// The NAT rules the CNI bridge plugin added (`ipMasq`) for pods on `bridge`'s network.
pub fn cni_nat_rules(bridge: &str) -> Vec<String> {
    let out = Command::new("iptables").args(["-w", "-t", "nat", "-S", "POSTROUTING"]).output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    let network = format!("name: \\\"skiff-{bridge}\\\"");
    text.lines().filter(|l| l.starts_with("-A ") && l.contains(&network)).map(str::to_string).collect()
}

/// Removes what a failed run left of the plugin's NAT rules and chains.
pub fn remove_cni_nat_rules(bridge: &str) {
    for rule in cni_nat_rules(bridge) {
        let Ok(args) = shell_words(&rule) else { continue };
        let mut delete: Vec<String> = vec!["-w".into(), "-t".into(), "nat".into(), "-D".into()];
        delete.extend(args.iter().skip(1).cloned());
        let _ = Command::new("iptables").args(&delete).stderr(Stdio::null()).status();
        if let Some(chain) = args.iter().skip_while(|a| *a != "-j").nth(1).filter(|c| c.starts_with("CNI-")) {
            for op in ["-F", "-X"] {
                let _ = Command::new("iptables").args(["-w", "-t", "nat", op, chain]).stderr(Stdio::null()).status();
            }
        }
    }
}

/// Splits an `iptables -S` line into arguments (double quotes with backslash escapes).
fn shell_words(line: &str) -> Result<Vec<String>, ()> {
    let (mut words, mut cur, mut quoted, mut chars) = (Vec::new(), String::new(), false, line.chars());
    let mut any = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => cur.push(chars.next().ok_or(())?),
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => cur.push(c),
        }
    }
    if quoted {
        return Err(());
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    Ok(words)
}

/// The portmap plugin's shared `nat` chains (created with the first hostPort, never removed by the
/// plugin).
const PORTMAP_CHAINS: [&str; 3] = ["CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK"];

/// Whether the portmap plugin's shared chains exist (a test that publishes hostPorts checks this
/// first, and removes them afterwards only if it created them).
pub fn portmap_chains_present() -> bool {
    let out = Command::new("iptables").args(["-w", "-t", "nat", "-S"]).output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    text.lines().any(|l| PORTMAP_CHAINS.iter().any(|c| l == format!("-N {c}")))
}

/// Removes the portmap plugin's shared chains and the jumps to them.
pub fn remove_portmap_chains() {
    let out = Command::new("iptables").args(["-w", "-t", "nat", "-S"]).output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    for line in text.lines().filter(|l| l.starts_with("-A ")) {
        let Ok(args) = shell_words(line) else { continue };
        let jumps_to_portmap = args.windows(2).any(|w| w[0] == "-j" && PORTMAP_CHAINS.contains(&w[1].as_str()));
        if jumps_to_portmap && !PORTMAP_CHAINS.contains(&args.get(1).map(String::as_str).unwrap_or("")) {
            let mut delete: Vec<String> = vec!["-w".into(), "-t".into(), "nat".into(), "-D".into()];
            delete.extend(args.iter().skip(1).cloned());
            let _ = Command::new("iptables").args(&delete).stderr(Stdio::null()).status();
        }
    }
    for op in ["-F", "-X"] {
        for chain in PORTMAP_CHAINS {
            let _ = Command::new("iptables").args(["-w", "-t", "nat", op, chain]).stderr(Stdio::null()).status();
        }
    }
}
