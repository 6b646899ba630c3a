//! Reading and cleaning the cgroups runc creates from a container's `cgroupsPath`
//! (`/skiff/<pod-uid>/<container-id>`), on cgroup v1 (per-controller hierarchies under
//! `/sys/fs/cgroup/<controller>`, this machine's hybrid layout) and on a pure cgroup v2 host.

use std::path::{Path, PathBuf};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The cgroup path of a pod's container: `/skiff/<pod-uid>/<container-id>`.
pub fn container_path(pod_uid: &str, container_id: &str) -> String {
    format!("/skiff/{pod_uid}/{container_id}")
}

/// True on a unified (v2-only) host.
fn is_unified() -> bool {
    Path::new(CGROUP_ROOT).join("cgroup.controllers").exists()
}

/// The number of OOM kills recorded for the cgroup at `cgroups_path`, from `memory.oom_control`
/// (v1: `oom_kill N`, kernel 4.13+) or `memory.events` (v2). `None` when it cannot be read (the
/// cgroup is gone or the memory controller is absent).
pub fn oom_kills(cgroups_path: &str) -> Option<u64> {
    let rel = cgroups_path.trim_start_matches('/');
    let file = if is_unified() {
        Path::new(CGROUP_ROOT).join(rel).join("memory.events")
    } else {
        Path::new(CGROUP_ROOT).join("memory").join(rel).join("memory.oom_control")
    };
    std::fs::read_to_string(file).ok().and_then(|t| parse_oom_kill(&t))
}

/// The `oom_kill` counter of a `memory.oom_control` or `memory.events` text.
pub fn parse_oom_kill(text: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix("oom_kill ").and_then(|n| n.trim().parse().ok()))
}

/// Removes the (empty) per-pod cgroup directories `/skiff/<pod-uid>` that runc leaves behind in
/// every hierarchy once the pod's containers are deleted. Best effort: a directory still holding
/// a container's cgroup stays.
pub fn remove_pod(pod_uid: &str) {
    for dir in pod_dirs(pod_uid) {
        let _ = std::fs::remove_dir(dir);
    }
}

fn pod_dirs(pod_uid: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if pod_uid.is_empty() || pod_uid.contains('/') || pod_uid.contains("..") {
        return out;
    }
    let rel = Path::new("skiff").join(pod_uid);
    if is_unified() {
        out.push(Path::new(CGROUP_ROOT).join(&rel));
        return out;
    }
    if let Ok(entries) = std::fs::read_dir(CGROUP_ROOT) {
        for e in entries.flatten() {
            out.push(e.path().join(&rel));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_oom_counters() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        let v2 = "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_oom_kill(v1), Some(2));
        assert_eq!(parse_oom_kill(v2), Some(1));
        assert_eq!(parse_oom_kill("oom_kill_disable 0\nunder_oom 0\n"), None);
    }

    #[test]
    fn paths() {
        assert_eq!(container_path("uid-1", "c-2"), "/skiff/uid-1/c-2");
        assert!(pod_dirs("../x").is_empty());
    }
}
