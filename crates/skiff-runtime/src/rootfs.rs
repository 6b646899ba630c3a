//! A container's root file system: an overlayfs mount whose lower directories are the image's
//! unpacked layers (shared, never written) and whose upper and work directories belong to the
//! container alone, all under the container's own directory:
//! `<dir>/rootfs` (the mount point), `<dir>/upper`, `<dir>/work`.

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use std::path::{Path, PathBuf};

/// Mount options longer than a page are refused by the kernel.
const MAX_OPTIONS: usize = 4000;

/// A root file system that could not be set up or torn down.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// Creating or removing the container's directories failed.
    #[error("{context} {path}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The overlay mount itself failed.
    #[error("mounting overlay at {target}: {source}")]
    Mount {
        /// The mount point.
        target: PathBuf,
        /// The kernel's answer.
        #[source]
        source: nix::Error,
    },
    /// Unmounting failed.
    #[error("unmounting {target}: {source}")]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The kernel's answer.
        #[source]
        source: nix::Error,
    },
    /// Too many or too long layer paths for one mount call.
    #[error("overlay options are {0} bytes, over the kernel's page-size limit")]
    TooManyLayers(usize),
}

/// A mounted container root file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    /// The container's directory holding `rootfs`, `upper` and `work`.
    pub dir: PathBuf,
    /// The merged view: the bundle's root path.
    pub path: PathBuf,
}

/// The overlay mount options for `layers` (bottom first; overlayfs wants the top-most first).
pub fn overlay_options(layers: &[PathBuf], upper: &Path, work: &Path) -> String {
    let lower: Vec<String> = layers.iter().rev().map(|p| p.display().to_string()).collect();
    format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), upper.display(), work.display())
}

/// Mounts an overlay of `layers` (bottom first) at `<dir>/rootfs`. On failure nothing is left
/// mounted and the directories this call created are removed.
pub fn mount_overlay(layers: &[PathBuf], dir: &Path) -> Result<Rootfs, RootfsError> {
    let io = |context, path: &Path| {
        let path = path.to_path_buf();
        move |source| RootfsError::Io { context, path, source }
    };
    let (path, upper, work) = (dir.join("rootfs"), dir.join("upper"), dir.join("work"));
    let mut lowers = layers.to_vec();
    if lowers.is_empty() {
        // overlayfs needs at least one lower directory; an image without layers gets an empty one.
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty).map_err(io("creating", &empty))?;
        lowers.push(empty);
    }
    let options = overlay_options(&lowers, &upper, &work);
    if options.len() > MAX_OPTIONS {
        return Err(RootfsError::TooManyLayers(options.len()));
    }
    for d in [&path, &upper, &work] {
        std::fs::create_dir_all(d).map_err(io("creating", d))?;
    }
    let result = mount(Some("overlay"), &path, Some("overlay"), MsFlags::empty(), Some(options.as_str()));
    if let Err(source) = result {
        let _ = remove_dirs(dir);
        return Err(RootfsError::Mount { target: path, source });
    }
    Ok(Rootfs { dir: dir.to_path_buf(), path })
}

/// Unmounts `<dir>/rootfs` if mounted and removes the container's upper, work and mount
/// directories. Safe to call again.
pub fn unmount(dir: &Path) -> Result<(), RootfsError> {
    let path = dir.join("rootfs");
    if is_mountpoint(&path) {
        umount2(&path, MntFlags::empty())
            .or_else(|_| umount2(&path, MntFlags::MNT_DETACH))
            .map_err(|source| RootfsError::Unmount { target: path.clone(), source })?;
    }
    remove_dirs(dir)
}

fn remove_dirs(dir: &Path) -> Result<(), RootfsError> {
    for sub in ["rootfs", "upper", "work", "empty"] {
        let p = dir.join(sub);
        match std::fs::remove_dir_all(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(RootfsError::Io { context: "removing", path: p, source }),
        }
    }
    Ok(())
}

/// True when `path` is a mount point (listed in `/proc/self/mountinfo`).
pub fn is_mountpoint(path: &Path) -> bool {
    let want = path.display().to_string();
    mount_points().any(|m| m == want)
}

/// The mount points strictly below `dir`, as listed in `/proc/self/mountinfo` (a path mounted
/// twice is listed twice).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let prefix = format!("{}/", dir.display().to_string().trim_end_matches('/'));
    mount_points().filter(|m| m.starts_with(&prefix)).map(PathBuf::from).collect()
}

/// Every mount point of this process's mount namespace.
fn mount_points() -> impl Iterator<Item = String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let points: Vec<String> = info.lines().filter_map(|l| l.split(' ').nth(4)).map(unescape_mount_path).collect();
    points.into_iter()
}

/// `/proc` escapes space, tab, newline and backslash in mount paths as octal.
fn unescape_mount_path(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_put_top_layer_first() {
        let layers = vec![PathBuf::from("/l/base"), PathBuf::from("/l/mid"), PathBuf::from("/l/top")];
        assert_eq!(
            overlay_options(&layers, Path::new("/c/upper"), Path::new("/c/work")),
            "lowerdir=/l/top:/l/mid:/l/base,upperdir=/c/upper,workdir=/c/work"
        );
    }

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape_mount_path("/a\\040b"), "/a b");
    }

    /// Needs root, as overlay mounts do.
    #[test]
    fn mounts_and_unmounts_with_whiteouts() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (base, top) = (tmp.path().join("base"), tmp.path().join("top"));
        std::fs::create_dir_all(base.join("etc")).expect("mkdir");
        std::fs::create_dir_all(base.join("var/cache")).expect("mkdir");
        std::fs::write(base.join("etc/passwd"), "root").expect("write");
        std::fs::write(base.join("etc/hosts"), "old").expect("write");
        std::fs::write(base.join("var/cache/old"), "x").expect("write");
        let layer = {
            let mut b = tar::Builder::new(Vec::new());
            for (p, d) in [
                ("etc/hosts", &b"new"[..]),
                ("etc/.wh.passwd", b""),
                ("var/cache/.wh..wh..opq", b""),
                ("var/cache/fresh", b"y"),
            ] {
                let mut h = tar::Header::new_gnu();
                h.set_size(d.len() as u64);
                h.set_mode(0o644);
                h.set_uid(0);
                h.set_gid(0);
                h.set_mtime(0);
                b.append_data(&mut h, p, d).expect("append");
            }
            b.into_inner().expect("tar")
        };
        std::fs::create_dir_all(&top).expect("mkdir");
        crate::layer::unpack(&layer[..], &top).expect("unpack");
        let cdir = tmp.path().join("c1");
        let rootfs = mount_overlay(&[base.clone(), top.clone()], &cdir).expect("mount");
        assert!(is_mountpoint(&rootfs.path));
        assert_eq!(mounts_under(tmp.path()), vec![rootfs.path.clone()]);
        assert_eq!(mounts_under(&rootfs.path), Vec::<PathBuf>::new(), "strictly below");
        let read = |p: &str| std::fs::read_to_string(rootfs.path.join(p)).ok();
        assert_eq!(read("etc/hosts").as_deref(), Some("new"));
        assert_eq!(read("etc/passwd"), None, "whiteout hides the lower file");
        assert_eq!(read("var/cache/old"), None, "opaque dir hides lower entries");
        assert_eq!(read("var/cache/fresh").as_deref(), Some("y"));
        std::fs::write(rootfs.path.join("new-file"), "z").expect("write");
        assert!(cdir.join("upper/new-file").exists());
        assert!(!base.join("new-file").exists() && !top.join("new-file").exists());
        unmount(&cdir).expect("unmount");
        assert!(!is_mountpoint(&rootfs.path));
        assert_eq!(mounts_under(tmp.path()), Vec::<PathBuf>::new());
        assert!(!cdir.join("upper").exists());
        unmount(&cdir).expect("second unmount is a no-op");
    }

    #[test]
    fn failed_mount_leaves_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cdir = tmp.path().join("c");
        let err = mount_overlay(&[tmp.path().join("missing-layer")], &cdir);
        assert!(matches!(err, Err(RootfsError::Mount { .. })), "{err:?}");
        assert!(!cdir.join("rootfs").exists() && !cdir.join("upper").exists());
    }
}
