//! Test helpers: a tiny busybox image written as an OCI image layout, and a per-test
//! environment (image store, runtime, CNI network on its own bridge and subnet) that cleans up.
#![allow(dead_code)]

use serde_json::json;
use skiff_runtime::cni::{Network, NetworkConfig};
use skiff_runtime::{ImageStore, Runtime, RuntimeConfig, Sandbox, SandboxConfig, StoreConfig};
use std::path::{Path, PathBuf};

/// Applets the tests use, linked to /bin/busybox.
const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "nc", "httpd", "ls", "true", "false", "head", "dd", "hostname", "id", "mkdir",
    "wget", "tail", "yes", "env", "trap", "kill",
];

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

/// The uncompressed tar of the test rootfs: /bin/busybox, applet links, /etc files, /www.
pub fn rootfs_tar() -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static is installed (scripts/install-deps.sh)");
    let mut b = tar::Builder::new(Vec::new());
    for d in ["bin/", "etc/", "tmp/", "www/", "proc/", "sys/", "dev/", "data/"] {
        let mut h = header(tar::EntryType::Directory, 0, if d == "tmp/" { 0o1777 } else { 0o755 });
        b.append_data(&mut h, d, &[][..]).expect("dir");
    }
    let mut h = header(tar::EntryType::Regular, busybox.len() as u64, 0o755);
    b.append_data(&mut h, "bin/busybox", &busybox[..]).expect("busybox");
    for applet in APPLETS {
        let mut h = header(tar::EntryType::Symlink, 0, 0o777);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox").expect("link");
    }
    let files: [(&str, &[u8]); 3] = [
        ("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"),
        ("etc/group", b"root:x:0:\nnogroup:x:65534:\n"),
        ("www/index.html", b"hello from skiff\n"),
    ];
    for (path, data) in files {
        let mut h = header(tar::EntryType::Regular, data.len() as u64, 0o644);
        b.append_data(&mut h, path, data).expect("file");
    }
    b.into_inner().expect("tar")
}

fn sha256(bytes: &[u8]) -> String {
    skiff_runtime::digest::sha256(bytes)
}

/// Writes an OCI image layout of the test image into `dir` with tag `tag`; returns the
/// manifest digest.
pub fn write_oci_layout(dir: &Path, tag: &str) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("mkdir");
    let put = |bytes: &[u8]| {
        let d = sha256(bytes);
        std::fs::write(blobs.join(&d[7..]), bytes).expect("blob");
        d
    };
    let tar = rootfs_tar();
    let diff_id = sha256(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).expect("gzip");
    let layer = gz.finish().expect("gzip");
    let layer_digest = put(&layer);
    let config = json!({
        "architecture": go_arch(), "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    })
    .to_string();
    let config_digest = put(config.as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer.len()}],
    })
    .to_string();
    let manifest_digest = put(manifest.as_bytes());
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).expect("index");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("layout");
    manifest_digest
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Packs directory `dir` into a tar file at `out`.
pub fn tar_dir(dir: &Path, out: &Path) {
    let file = std::fs::File::create(out).expect("create tar");
    let mut b = tar::Builder::new(file);
    b.append_dir_all(".", dir).expect("pack");
    b.finish().expect("finish");
}

/// A test's world: temp dirs, image store with the test image imported, runtime, network.
pub struct Env {
    pub pods: std::sync::Mutex<Vec<String>>,
    pub tmp: tempfile::TempDir,
    pub store: ImageStore,
    pub runtime: Runtime,
    pub network: Network,
    pub image: skiff_runtime::Image,
}

impl Env {
    /// `n` picks the bridge `skt<n>` and subnet `10.244.<n>.0/24`; distinct per test.
    pub async fn new(n: u8) -> Env {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = ImageStore::open(tmp.path().join("images"), StoreConfig::default()).expect("store");
        let layout = tmp.path().join("layout");
        write_oci_layout(&layout, "v1");
        let archive = tmp.path().join("image.tar");
        tar_dir(&layout, &archive);
        let image = store.import(&archive, Some("localhost/skiff-test")).await.expect("import").remove(0);
        let runtime = Runtime::new(
            RuntimeConfig {
                state_dir: tmp.path().join("containers"),
                runc_root: tmp.path().join("runc"),
                runc_binary: "runc".into(),
            },
            store.clone(),
        )
        .expect("runtime");
        let network = Network::new(NetworkConfig {
            name: format!("skiff-test-{n}"),
            bridge: format!("skt{n}"),
            subnet: format!("10.244.{n}.0/24"),
            cluster_cidr: "10.244.0.0/16".into(),
            ipam_data_dir: tmp.path().join("ipam"),
            cache_dir: tmp.path().join("cni-cache"),
            ..Default::default()
        });
        Env { pods: Default::default(), tmp, store, runtime, network, image }
    }

    pub async fn sandbox(&self, uid: &str) -> Sandbox {
        self.pods.lock().expect("pods").push(uid.to_string());
        let config = SandboxConfig {
            pod_uid: uid.into(),
            pod_name: format!("pod-{uid}"),
            namespace: "default".into(),
            hostname: format!("pod-{uid}"),
            ..Default::default()
        };
        Sandbox::create(&config, &self.tmp.path().join("pods"), &self.network).await.expect("sandbox")
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.tmp.path().join("logs").join(format!("{name}.log"))
    }

    /// Ends the test; [`Drop`] removes what is left (the bridge CNI DEL keeps, and everything
    /// a failed test did not clean up).
    pub async fn teardown(self) {}
}

/// A safety net for failing tests: deletes this test's runc containers, unmounts everything under
/// its temp dir, deletes its bridge and its pods' cgroup directories. Only this test's objects.
impl Drop for Env {
    fn drop(&mut self) {
        use std::process::Command;
        let root = self.tmp.path().join("runc");
        if let Ok(out) = Command::new("runc").arg("--root").arg(&root).args(["list", "-q"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = Command::new("runc").arg("--root").arg(&root).args(["delete", "--force", id]).status();
            }
        }
        let prefix = format!("{}/", self.tmp.path().display());
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<&str> =
            info.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&prefix)).collect();
        mounts.reverse();
        for m in mounts {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
        let bridge = self.network.config().bridge.clone();
        let _ = Command::new("ip").args(["link", "del", &bridge]).stderr(std::process::Stdio::null()).status();
        for uid in self.pods.lock().map(|p| p.clone()).unwrap_or_default() {
            if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
                for h in hierarchies.flatten() {
                    let pod = h.path().join("skiff").join(&uid);
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
}

/// The `(stream, tag, content)` triples of a CRI log file.
pub fn read_log(path: &Path) -> Vec<(String, String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut p = l.splitn(4, ' ');
            let ts = p.next().unwrap_or_default();
            assert!(ts.ends_with('Z') && ts.contains('T'), "timestamp {ts:?}");
            (
                p.next().unwrap_or_default().to_string(),
                p.next().unwrap_or_default().to_string(),
                p.next().unwrap_or_default().to_string(),
            )
        })
        .collect()
}
