//! The test image: busybox from Debian's busybox-static, written as an OCI archive with no
//! registry and no internet, and imported into an agent's image store.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use super::run;

/// The test image's name as pods use it.
pub const IMAGE: &str = "localhost/skiff-test:v1";

/// Busybox applets the image links.
pub const APPLETS: &[&str] =
    &["sh", "echo", "cat", "sleep", "httpd", "wget", "true", "trap", "kill", "ls", "hostname", "timeout"];

fn put_blob(blobs: &Path, bytes: &[u8]) -> String {
    let digest = skiff_runtime::digest::sha256(bytes);
    std::fs::write(blobs.join(&digest["sha256:".len()..]), bytes).expect("write blob");
    digest
}

/// Writes an OCI image layout archive of a busybox image (one uncompressed layer: /bin/busybox,
/// applet links, /etc/passwd, /www/index.html) to `dir/image.tar`.
pub fn build_image(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "www", "proc", "sys", "dev"] {
        std::fs::create_dir_all(rootfs.join(d)).expect("mkdir");
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .expect("busybox-static is installed (scripts/install-deps.sh)");
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).expect("symlink");
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\n").expect("group");
    std::fs::write(rootfs.join("www/index.html"), "hello from skiff\n").expect("index");
    let layer_tar = dir.join("layer.tar");
    run(Command::new("tar")
        .args(["--owner=0", "--group=0", "--numeric-owner", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&layer_tar)
        .args(["bin", "etc", "tmp", "www", "proc", "sys", "dev"]));
    let layout = dir.join("layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("mkdir blobs");
    let layer = std::fs::read(&layer_tar).expect("read layer");
    let layer_digest = put_blob(&blobs, &layer);
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = json!({
        "architecture": arch, "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    })
    .to_string();
    let config_digest = put_blob(&blobs, config.as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    })
    .to_string();
    let manifest_digest = put_blob(&blobs, manifest.as_bytes());
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"},
        }],
    });
    std::fs::write(layout.join("index.json"), index.to_string()).expect("index");
    std::fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
    let archive = dir.join("image.tar");
    run(Command::new("tar").arg("-C").arg(&layout).arg("-cf").arg(&archive).args([
        "oci-layout",
        "index.json",
        "blobs",
    ]));
    archive
}

/// Imports the image archive into the image store an agent on `data_dir` opens.
pub fn import_image(data_dir: &Path, archive: &Path) {
    let store_dir = skiff_agent::runc_runtime::RuncConfig::new(data_dir.to_path_buf()).image_dir();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let images = rt.block_on(async {
        let store = skiff_runtime::ImageStore::open(store_dir, skiff_runtime::StoreConfig::default()).expect("store");
        store.import(archive, Some("localhost/skiff-test")).await.expect("import the test image")
    });
    assert_eq!(images.len(), 1, "one image imported");
}
