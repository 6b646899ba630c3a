//! Pod volumes the agent materializes on the node and hands to the runtime as bind mounts:
//! `emptyDir` (a per-pod directory; a tmpfs mount for `medium: Memory`), `configMap` and `secret`
//! (one file per key), and each container's `volumeMounts` (`subPath`, `subPathExpr`).
//!
//! The files of a configMap or secret volume are written when a container starts and again by
//! [`refresh_volumes`] while the pod runs, so updates reach running containers as the kubelet's
//! do (a `subPath` mount of one file keeps the file it was started with, as upstream). Each file is
//! replaced whole (written beside it, then renamed over it), so a reader sees the old or the new
//! content, never a part.
//!
//! Layout, like the kubelet's: `<root>/pods/<uid>/volumes/kubernetes.io~<kind>/<volume>`. The pod's
//! tmpfs mounts are unmounted by [`remove_pod_dir`] before its directory goes.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, KeyToPath, Pod, Volume};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use skiff_api::validation::parse_quantity;

use crate::env::{EnvSources, expand};
use crate::runtime::Mount;

/// Why a volume or mount cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A referenced object is missing (upstream `FailedMount`; the pod waits).
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {message}")]
    SetUp { volume: String, message: String },
    #[error("cannot write volume {path}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A bad `subPath`/`subPathExpr` or an unknown volume (`CreateContainerConfigError`).
    #[error("{0}")]
    Mount(String),
}

/// The pod's directory under the agent root.
pub fn pod_dir(root: &Path, pod_uid: &str) -> PathBuf {
    root.join("pods").join(pod_uid)
}

/// The ConfigMaps and Secrets the pod's volumes refer to.
pub fn referenced(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let (mut cms, mut secrets) = (Vec::new(), Vec::new());
    for v in pod.spec.as_ref().and_then(|s| s.volumes.as_ref()).into_iter().flatten() {
        if let Some(cm) = &v.config_map {
            cms.push(cm.name.clone());
        }
        if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            secrets.push(s);
        }
    }
    (cms, secrets)
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io { path: path.to_path_buf(), source }
}

/// The files of a configMap/secret volume: path → (bytes, mode).
fn projected_files(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    volume: &str,
    what: &str,
) -> Result<BTreeMap<String, (Vec<u8>, u32)>, VolumeError> {
    let mut out = BTreeMap::new();
    match items {
        Some(items) if !items.is_empty() => {
            for item in items {
                let Some(bytes) = data.get(&item.key) else {
                    return Err(VolumeError::SetUp {
                        volume: volume.into(),
                        message: format!("configmap references non-existent config key: {}", item.key)
                            .replace("configmap", what),
                    });
                };
                out.insert(item.path.clone(), (bytes.clone(), item.mode.unwrap_or(default_mode) as u32));
            }
        }
        _ => {
            for (k, v) in data {
                out.insert(k.clone(), (v.clone(), default_mode as u32));
            }
        }
    }
    Ok(out)
}

/// Writes `files` into `dir`, leaving unchanged files alone and removing files no longer wanted.
/// With an fsGroup, each file is that group's and group-readable before it takes its place.
fn sync_dir(dir: &Path, files: &BTreeMap<String, (Vec<u8>, u32)>, fs_group: Option<u32>) -> Result<(), VolumeError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for (rel, (bytes, mode)) in files {
        if Path::new(rel).components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(VolumeError::Mount(format!("invalid path {rel:?}")));
        }
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let group_read = if fs_group.is_some() { 0o440 } else { 0 };
        let mode = std::fs::Permissions::from_mode(*mode & 0o7777 | group_read);
        if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
            replace_file(&path, bytes, mode, fs_group)?;
        } else {
            std::fs::set_permissions(&path, mode).map_err(io(&path))?;
        }
    }
    // Remove top-level entries that are no longer projected (and any temporary file a crash left).
    let wanted: Vec<&str> = files.keys().filter_map(|k| k.split('/').next()).collect();
    for entry in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !wanted.contains(&name.as_str()) {
            let p = entry.path();
            let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` with `mode` in one step for readers: a temporary file beside it
/// (hidden, `..` prefixed, like the kubelet's own names in a volume), renamed over it.
fn replace_file(path: &Path, bytes: &[u8], mode: std::fs::Permissions, group: Option<u32>) -> Result<(), VolumeError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!("..{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    if group.is_some() {
        std::os::unix::fs::lchown(&tmp, None, group).map_err(io(&tmp))?;
    }
    std::fs::set_permissions(&tmp, mode).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// The pod's volumes directory.
fn volumes_dir(pod: &Pod, root: &Path) -> PathBuf {
    pod_dir(root, pod.metadata.uid.as_deref().unwrap_or("unknown")).join("volumes")
}

/// A prepared volume: its host directory, and whether every mount of it is read-only (the API's
/// data volumes, configMap and secret, are, as the kubelet's: a container cannot change them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeDir {
    pub path: PathBuf,
    pub read_only: bool,
}

/// Creates or refreshes every volume of the pod; returns volume name → its directory.
pub fn prepare_volumes(
    pod: &Pod,
    root: &Path,
    sources: &EnvSources,
) -> Result<HashMap<String, VolumeDir>, VolumeError> {
    let base = volumes_dir(pod, root);
    let mut out = HashMap::new();
    for v in pod.spec.as_ref().and_then(|s| s.volumes.as_ref()).into_iter().flatten() {
        if let Some(empty) = &v.empty_dir {
            let dir = base.join("kubernetes.io~empty-dir").join(&v.name);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            if empty.medium.as_deref() == Some("Memory") {
                mount_tmpfs(&dir, empty.size_limit.as_ref())?;
            }
            let group = fs_group(pod);
            let unchanged = group.is_some_and(|g| on_root_mismatch(pod) && root_matches(&dir, g));
            // World-writable like the kubelet's emptyDir, so non-root containers can write (and
            // set-group-ID under an fsGroup, which the walk below would set again).
            let setgid = if group.is_some() { 0o2000 } else { 0 };
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777 | setgid)).map_err(io(&dir))?;
            if !unchanged {
                set_ownership(&dir, group, false)?;
            }
            out.insert(v.name.clone(), VolumeDir { path: dir, read_only: false });
        } else if v.config_map.is_some() || v.secret.is_some() {
            let dir = sync_source_volume(v, &base, sources, fs_group(pod))?;
            out.insert(v.name.clone(), VolumeDir { path: dir, read_only: true });
        }
    }
    Ok(out)
}

/// The pod's `securityContext.fsGroup`.
fn fs_group(pod: &Pod) -> Option<u32> {
    let group = pod.spec.as_ref()?.security_context.as_ref()?.fs_group?;
    u32::try_from(group).ok()
}

/// `securityContext.fsGroupChangePolicy: OnRootMismatch`: a volume whose root already has the
/// fsGroup's ownership is not walked again.
fn on_root_mismatch(pod: &Pod) -> bool {
    let sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    sc.and_then(|c| c.fs_group_change_policy.as_deref()) == Some("OnRootMismatch")
}

/// Whether a writable volume's root has `group` and the bits [`set_ownership`] gives a directory
/// (the kubelet's `requiresPermissionChange`, negated).
fn root_matches(dir: &Path, group: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let want = 0o660 | 0o110 | 0o2000;
    std::fs::metadata(dir).is_ok_and(|m| m.gid() == group && m.mode() & want == want)
}

/// Gives a volume's files to `fs_group`, as the kubelet's `SetVolumeOwnership`: every file and
/// directory gets the group, group read (and write, unless the volume is read-only) added to its
/// mode, and directories group search and the set-group-ID bit, so files created later get the
/// group too. Nothing changes without an fsGroup.
fn set_ownership(dir: &Path, fs_group: Option<u32>, read_only: bool) -> Result<(), VolumeError> {
    let Some(group) = fs_group else { return Ok(()) };
    let mask = if read_only { 0o440 } else { 0o660 };
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        std::os::unix::fs::lchown(&path, None, Some(group)).map_err(io(&path))?;
        let mut mode = meta.permissions().mode() & 0o7777 | mask;
        if meta.is_dir() {
            mode |= 0o2000 | 0o110;
            for entry in std::fs::read_dir(&path).map_err(io(&path))? {
                stack.push(entry.map_err(io(&path))?.path());
            }
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(io(&path))?;
    }
    Ok(())
}

/// Rewrites the configMap and secret volumes of a running pod from `sources`, the objects as
/// they are now: changed keys are replaced, removed keys go, and an optional source that was
/// deleted leaves its volume empty. A volume not set up yet (no container started with it) is
/// left to [`prepare_volumes`]; one whose required source is gone keeps its files, as the
/// kubelet's does. Returns the volumes that could not be refreshed, with why.
pub fn refresh_volumes(pod: &Pod, root: &Path, sources: &EnvSources) -> Vec<VolumeError> {
    let base = volumes_dir(pod, root);
    let group = fs_group(pod);
    let mut errors = Vec::new();
    for v in pod.spec.as_ref().and_then(|s| s.volumes.as_ref()).into_iter().flatten() {
        if (v.config_map.is_some() || v.secret.is_some())
            && source_dir(v, &base).is_some_and(|d| d.is_dir())
            && let Err(e) = sync_source_volume(v, &base, sources, group)
        {
            errors.push(e);
        }
    }
    errors
}

/// Whether the pod has a volume [`refresh_volumes`] keeps current.
pub fn has_source_volumes(pod: &Pod) -> bool {
    let (cms, secrets) = referenced(pod);
    !cms.is_empty() || !secrets.is_empty()
}

/// Where a configMap or secret volume lives.
fn source_dir(v: &Volume, base: &Path) -> Option<PathBuf> {
    let kind = if v.config_map.is_some() {
        "kubernetes.io~configmap"
    } else if v.secret.is_some() {
        "kubernetes.io~secret"
    } else {
        return None;
    };
    Some(base.join(kind).join(&v.name))
}

/// Writes a configMap or secret volume's files from its source object, owned by `fs_group` when
/// given; returns its directory.
fn sync_source_volume(
    v: &Volume,
    base: &Path,
    sources: &EnvSources,
    fs_group: Option<u32>,
) -> Result<PathBuf, VolumeError> {
    let dir = source_dir(v, base).ok_or_else(|| VolumeError::Mount(format!("volume {:?} has no source", v.name)))?;
    if let Some(cm) = &v.config_map {
        let data: BTreeMap<String, Vec<u8>> = match sources.config_maps.get(&cm.name).cloned().flatten() {
            Some(obj) => {
                let mut d: BTreeMap<String, Vec<u8>> =
                    obj.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
                d.extend(obj.binary_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
                d
            }
            None if cm.optional == Some(true) => BTreeMap::new(),
            None => {
                return Err(VolumeError::SetUp {
                    volume: v.name.clone(),
                    message: format!("configmap \"{}\" not found", cm.name),
                });
            }
        };
        let files =
            projected_files(&data, cm.items.as_deref(), cm.default_mode.unwrap_or(0o644), &v.name, "configmap")?;
        sync_dir(&dir, &files, fs_group)?;
    } else if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let data: BTreeMap<String, Vec<u8>> = match sources.secrets.get(&name).cloned().flatten() {
            Some(obj) => {
                let mut d: BTreeMap<String, Vec<u8>> =
                    obj.string_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
                d.extend(obj.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
                d
            }
            None if s.optional == Some(true) => BTreeMap::new(),
            None => {
                return Err(VolumeError::SetUp {
                    volume: v.name.clone(),
                    message: format!("secret \"{name}\" not found"),
                });
            }
        };
        let files = projected_files(&data, s.items.as_deref(), s.default_mode.unwrap_or(0o644), &v.name, "secret")?;
        sync_dir(&dir, &files, fs_group)?;
    }
    set_ownership(&dir, fs_group, true)?;
    Ok(dir)
}

/// Mounts a tmpfs on `dir` unless one is there already (a container restart, or an agent that
/// restarted and adopted the pod): `emptyDir.medium: Memory`, sized by `sizeLimit` when given
/// (otherwise the kernel's default, half the memory).
fn mount_tmpfs(dir: &Path, size_limit: Option<&Quantity>) -> Result<(), VolumeError> {
    if skiff_runtime::rootfs::is_mountpoint(dir) {
        return Ok(());
    }
    let mut options = "mode=0777".to_string();
    if let Some(q) = size_limit {
        let bytes =
            parse_quantity(&q.0).map_err(|e| VolumeError::Mount(format!("emptyDir sizeLimit {:?}: {e}", q.0)))?.ceil();
        options.push_str(&format!(",size={}", bytes.max(4096.0) as u64));
    }
    nix::mount::mount(Some("tmpfs"), dir, Some("tmpfs"), nix::mount::MsFlags::empty(), Some(options.as_str()))
        .map_err(|e| VolumeError::Io { path: dir.to_path_buf(), source: e.into() })
}

/// Removes a pod's directory, unmounting its tmpfs volumes first (deepest first; lazily, so a
/// mount a process still holds open does not keep the rest).
pub fn remove_pod_dir(root: &Path, pod_uid: &str) {
    let dir = pod_dir(root, pod_uid);
    let mut mounts = skiff_runtime::rootfs::mounts_under(&dir);
    mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
    for m in mounts {
        if let Err(e) = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!(path = %m.display(), error = %e, "cannot unmount a pod volume");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Checks a `subPath` (after expansion): relative, without `..`.
fn check_sub_path(p: &str) -> Result<(), VolumeError> {
    if Path::new(p).is_absolute() {
        return Err(VolumeError::Mount(format!("subPath \"{p}\" must be a relative path")));
    }
    if Path::new(p).components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(VolumeError::Mount(format!("subPath \"{p}\" must not contain '..'")));
    }
    Ok(())
}

/// The bind mounts of container `c`, from its `volumeMounts` and the prepared volumes.
pub fn container_mounts(
    c: &Container,
    volumes: &HashMap<String, VolumeDir>,
    env: &[(String, String)],
) -> Result<Vec<Mount>, VolumeError> {
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let Some(VolumeDir { path: dir, read_only }) = volumes.get(&m.name) else {
            return Err(VolumeError::Mount(format!(
                "cannot find volume \"{}\" to mount into container \"{}\"",
                m.name, c.name
            )));
        };
        let sub = match (&m.sub_path, &m.sub_path_expr) {
            (Some(p), _) if !p.is_empty() => Some(p.clone()),
            (_, Some(e)) if !e.is_empty() => Some(expand(e, &lookup)),
            _ => None,
        };
        let host_path = match sub {
            Some(p) => {
                check_sub_path(&p)?;
                let path = dir.join(&p);
                if !path.exists() {
                    std::fs::create_dir_all(&path).map_err(io(&path))?;
                    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777));
                }
                path
            }
            None => dir.clone(),
        };
        out.push(Mount {
            host_path,
            container_path: m.mount_path.clone(),
            read_only: *read_only || m.read_only == Some(true),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "spec": {"containers": [], "volumes": [
            {"name": "scratch", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "cm", "items": [{"key": "data-1", "path": "path/to/data-2", "mode": 0o400}]}},
            {"name": "all", "configMap": {"name": "cm", "defaultMode": 0o440}},
            {"name": "opt", "configMap": {"name": "absent", "optional": true}},
            {"name": "sec", "secret": {"secretName": "s"}},
        ]}}))
        .expect("pod")
    }

    fn sources() -> EnvSources {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "cm"}, "data": {"data-1": "value-1"}, "binaryData": {"dump.bin": "3sr+utD+/w=="}})).expect("cm");
        let s: Secret =
            serde_json::from_value(json!({"metadata": {"name": "s"}, "data": {"data-1": "dmFsdWUtMQo="}})).expect("s");
        EnvSources {
            config_maps: [("cm".to_string(), Some(cm))].into_iter().collect(),
            secrets: [("s".to_string(), Some(s))].into_iter().collect(),
        }
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("meta").permissions().mode() & 0o777
    }

    #[test]
    fn volumes_are_materialized() {
        let root = tempfile::tempdir().expect("tmp");
        let vols = prepare_volumes(&pod(), root.path(), &sources()).expect("volumes");
        let base = root.path().join("pods/u1/volumes");
        assert_eq!(vols["scratch"].path, base.join("kubernetes.io~empty-dir/scratch"));
        assert!(vols["scratch"].path.is_dir());
        let mapped = vols["cfg"].path.join("path/to/data-2");
        assert_eq!(std::fs::read_to_string(&mapped).expect("read"), "value-1");
        assert_eq!(mode(&mapped), 0o400);
        assert_eq!(
            std::fs::read(vols["all"].path.join("dump.bin")).expect("read"),
            vec![0xde, 0xca, 0xfe, 0xba, 0xd0, 0xfe, 0xff]
        );
        assert_eq!(mode(&vols["all"].path.join("data-1")), 0o440);
        assert_eq!(std::fs::read_to_string(vols["sec"].path.join("data-1")).expect("read"), "value-1\n");
        assert_eq!(mode(&vols["sec"].path.join("data-1")), 0o644);
        assert_eq!(std::fs::read_dir(&vols["opt"].path).expect("dir").count(), 0);

        // An update removes keys that are gone.
        let mut src = sources();
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "cm"}, "data": {"data-1": "value-2"}})).expect("cm");
        src.config_maps.insert("cm".into(), Some(cm));
        let vols = prepare_volumes(&pod(), root.path(), &src).expect("volumes");
        assert_eq!(std::fs::read_to_string(vols["all"].path.join("data-1")).expect("read"), "value-2");
        assert!(!vols["all"].path.join("dump.bin").exists());

        // A missing required ConfigMap.
        src.config_maps.insert("cm".into(), None);
        let err = prepare_volumes(&pod(), root.path(), &src).expect_err("missing");
        assert_eq!(err.to_string(), "MountVolume.SetUp failed for volume \"cfg\" : configmap \"cm\" not found");
    }

    #[test]
    fn mounts_and_sub_paths() {
        let root = tempfile::tempdir().expect("tmp");
        let vols: HashMap<String, VolumeDir> =
            [("v".to_string(), VolumeDir { path: root.path().to_path_buf(), read_only: false })].into_iter().collect();
        let c: Container = serde_json::from_value(json!({"name": "c", "volumeMounts": [
            {"name": "v", "mountPath": "/all", "readOnly": true},
            {"name": "v", "mountPath": "/logs", "subPathExpr": "$(POD_NAME)"},
        ]}))
        .expect("c");
        let env = vec![("POD_NAME".to_string(), "foo".to_string())];
        let m = container_mounts(&c, &vols, &env).expect("mounts");
        assert_eq!(
            m[0],
            Mount { host_path: root.path().to_path_buf(), container_path: "/all".into(), read_only: true }
        );
        assert_eq!(m[1].host_path, root.path().join("foo"));
        assert!(root.path().join("foo").is_dir());
        for (expr, bad) in [("..", true), ("/tmp", true), ("a/../../b", true), ("ok/dir", false)] {
            let c: Container = serde_json::from_value(
                json!({"name": "c", "volumeMounts": [{"name": "v", "mountPath": "/x", "subPathExpr": expr}]}),
            )
            .expect("c");
            assert_eq!(container_mounts(&c, &vols, &env).is_err(), bad, "{expr}");
        }
        let c: Container =
            serde_json::from_value(json!({"name": "c", "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}))
                .expect("c");
        assert!(matches!(container_mounts(&c, &vols, &env), Err(VolumeError::Mount(_))));
        // The API's data volumes are mounted read-only whatever the mount asks.
        let data: HashMap<String, VolumeDir> =
            [("cfg".to_string(), VolumeDir { path: root.path().to_path_buf(), read_only: true })].into_iter().collect();
        let c: Container = serde_json::from_value(json!({"name": "c", "volumeMounts": [
            {"name": "cfg", "mountPath": "/cfg", "readOnly": false}, {"name": "cfg", "mountPath": "/one", "subPath": "k"}]}))
        .expect("c");
        assert!(container_mounts(&c, &data, &env).expect("mounts").iter().all(|m| m.read_only));
    }

    #[test]
    fn an_fs_group_owns_the_volumes() {
        use std::os::unix::fs::MetadataExt;
        let root = tempfile::tempdir().expect("tmp");
        let mut pod = pod();
        pod.spec.as_mut().expect("spec").security_context =
            Some(serde_json::from_value(json!({"fsGroup": 1001})).expect("sc"));
        let vols = prepare_volumes(&pod, root.path(), &sources()).expect("volumes");
        let meta = |p: &Path| std::fs::metadata(p).expect("meta");
        // A secret's file with defaultMode 0440 stays 0440, now the group's (conformance: `-r--r-----`).
        let sec = vols["sec"].path.join("data-1");
        assert_eq!((meta(&sec).gid(), meta(&sec).mode() & 0o7777), (1001, 0o644 | 0o440));
        let mapped = vols["cfg"].path.join("path/to/data-2");
        assert_eq!((meta(&mapped).gid(), meta(&mapped).mode() & 0o7777), (1001, 0o440));
        assert_eq!(meta(&vols["cfg"].path.join("path")).mode() & 0o7777, 0o2755 | 0o110);
        let scratch = &vols["scratch"].path;
        assert_eq!((meta(scratch).gid(), meta(scratch).mode() & 0o7777), (1001, 0o2777));
        assert!(vols["cfg"].read_only && vols["sec"].read_only && !vols["scratch"].read_only);
        // A refresh keeps the ownership.
        let mut src = sources();
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "cm"}, "data": {"data-1": "value-2"}})).expect("cm");
        src.config_maps.insert("cm".into(), Some(cm));
        assert!(refresh_volumes(&pod, root.path(), &src).is_empty());
        let all = vols["all"].path.join("data-1");
        assert_eq!(std::fs::read_to_string(&all).expect("read"), "value-2");
        assert_eq!((meta(&all).gid(), meta(&all).mode() & 0o7777), (1001, 0o440));

        // A file that lost the group (written by another group, say) gets it back at the next set-up,
        // unless the policy is OnRootMismatch and the root is still right.
        let stray = scratch.join("stray");
        std::fs::write(&stray, "x").expect("write");
        std::os::unix::fs::chown(&stray, None, Some(0)).expect("chown");
        prepare_volumes(&pod, root.path(), &sources()).expect("volumes");
        assert_eq!(meta(&stray).gid(), 1001, "Always (the default) walks the volume");
        std::os::unix::fs::chown(&stray, None, Some(0)).expect("chown");
        let sc = pod.spec.as_mut().and_then(|s| s.security_context.as_mut()).expect("sc");
        sc.fs_group_change_policy = Some("OnRootMismatch".into());
        prepare_volumes(&pod, root.path(), &sources()).expect("volumes");
        assert_eq!(meta(&stray).gid(), 0, "OnRootMismatch with a matching root skips the walk");
        assert_eq!((meta(scratch).gid(), meta(scratch).mode() & 0o7777), (1001, 0o2777));
        std::os::unix::fs::chown(scratch, None, Some(0)).expect("chown");
        prepare_volumes(&pod, root.path(), &sources()).expect("volumes");
        assert_eq!((meta(scratch).gid(), meta(&stray).gid()), (1001, 1001), "a mismatched root: walked");
    }
}
