//! A pod's persistent namespaces: network, IPC and UTS namespaces that outlive any process,
//! kept alive by bind-mounting `/proc/thread-self/ns/<kind>` onto files (what `ip netns add`
//! does, and what the pause container does in other runtimes). The pod's containers join them by
//! path; CNI plugins get the network namespace's path as `CNI_NETNS`.

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use std::path::{Path, PathBuf};

/// A namespace that could not be created or released.
#[derive(Debug, thiserror::Error)]
pub enum NsError {
    /// Creating the files that hold the namespaces failed.
    #[error("{context} {path}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{call}: {source}")]
    Sys {
        /// Which call.
        call: &'static str,
        /// The kernel's answer.
        #[source]
        source: nix::Error,
    },
}

/// The bind-mounted namespace files of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNamespaces {
    /// Network namespace.
    pub net: PathBuf,
    /// IPC namespace.
    pub ipc: PathBuf,
    /// UTS namespace (its hostname is the pod's).
    pub uts: PathBuf,
}

impl PodNamespaces {
    /// The files for `dir`, created or not.
    pub fn paths(dir: &Path) -> Self {
        Self { net: dir.join("ns-net"), ipc: dir.join("ns-ipc"), uts: dir.join("ns-uts") }
    }
}

/// Creates new network, IPC and UTS namespaces held by files in `dir`, with `hostname` set in
/// the UTS namespace. On failure nothing stays mounted.
pub fn create(dir: &Path, hostname: &str) -> Result<PodNamespaces, NsError> {
    std::fs::create_dir_all(dir).map_err(|source| NsError::Io {
        context: "creating",
        path: dir.to_path_buf(),
        source,
    })?;
    let ns = PodNamespaces::paths(dir);
    for f in [&ns.net, &ns.ipc, &ns.uts] {
        std::fs::File::create(f).map_err(|source| NsError::Io { context: "creating", path: f.clone(), source })?;
    }
    let (paths, host) = (ns.clone(), hostname.to_string());
    // unshare() changes the calling thread only; a throw-away thread keeps the caller's
    // namespaces untouched.
    let result = std::thread::spawn(move || -> Result<(), NsError> {
        unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS)
            .map_err(|source| NsError::Sys { call: "unshare", source })?;
        nix::unistd::sethostname(&host).map_err(|source| NsError::Sys { call: "sethostname", source })?;
        for (kind, target) in [("net", &paths.net), ("ipc", &paths.ipc), ("uts", &paths.uts)] {
            let source = format!("/proc/thread-self/ns/{kind}");
            mount(Some(source.as_str()), target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(|source| NsError::Sys { call: "bind-mounting a namespace", source })?;
        }
        Ok(())
    })
    .join()
    .unwrap_or(Err(NsError::Sys { call: "namespace thread", source: nix::Error::EIO }));
    if let Err(e) = result {
        remove(&ns);
        return Err(e);
    }
    Ok(ns)
}

/// Unmounts and deletes the namespace files (the namespaces go away with their last user).
/// Safe to call again; missing files are fine.
pub fn remove(ns: &PodNamespaces) {
    for f in [&ns.net, &ns.ipc, &ns.uts] {
        let _ = umount2(f, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs root.
    #[test]
    fn creates_persistent_namespaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ns = create(dir.path(), "pod-host").expect("create");
        let own = std::fs::read_link("/proc/self/ns/net").expect("own netns");
        let held = nix::sys::stat::stat(&ns.net).expect("stat");
        let own_ino = nix::sys::stat::stat("/proc/self/ns/net").expect("stat").st_ino;
        assert_ne!(held.st_ino, own_ino, "a new network namespace, not ours ({own:?})");
        assert!(crate::rootfs::is_mountpoint(&ns.uts));
        // The hostname lives in the held UTS namespace: `nsenter` would show it; here we check
        // ours is untouched.
        assert_ne!(nix::unistd::gethostname().expect("hostname").to_string_lossy(), "pod-host");
        remove(&ns);
        assert!(!ns.net.exists() && !ns.ipc.exists() && !ns.uts.exists());
        remove(&ns);
    }
}
