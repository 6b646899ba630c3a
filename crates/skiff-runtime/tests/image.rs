//! The image store against real archives and a real registry (Debian's docker-registry, pushed to
//! with skopeo, pulled over plain HTTP on loopback). Needs root for unpacking (whiteouts, chown).

mod common;

use skiff_runtime::{ImageStore, PullOptions, StoreConfig};
use std::path::Path;
use std::time::Duration;

fn layer_count(store: &ImageStore) -> usize {
    std::fs::read_dir(store.root().join("layers/sha256")).expect("layers").count()
}

#[tokio::test]
async fn imports_an_oci_layout_shares_layers_and_removes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(tmp.path().join("store"), StoreConfig::default()).expect("open");
    let layout = tmp.path().join("layout");
    let manifest_digest = common::write_oci_layout(&layout, "v1");
    let archive = tmp.path().join("img.tar");
    common::tar_dir(&layout, &archive);

    let a = store.import(&archive, Some("localhost/app")).await.expect("import");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].reference, "localhost/app:v1");
    assert_eq!(a[0].digest, manifest_digest);
    assert_eq!(a[0].config.cmd, vec!["sh".to_string()]);
    let b = store.import(&archive, Some("localhost/other")).await.expect("import again");
    assert_eq!(b[0].reference, "localhost/other:v1");
    assert_eq!(layer_count(&store), 1, "the layer is unpacked once and shared");
    let dirs = store.layer_dirs(&a[0]);
    assert!(dirs[0].join("bin/busybox").is_file());
    assert_eq!(std::fs::read_link(dirs[0].join("bin/sh")).expect("link"), Path::new("busybox"));

    assert_eq!(store.get("localhost/app:v1").expect("get"), a[0]);
    let refs: Vec<String> = store.list().expect("list").into_iter().map(|i| i.reference).collect();
    assert_eq!(refs, vec!["localhost/app:v1", "localhost/other:v1"]);

    store.remove("localhost/app:v1").await.expect("remove");
    assert!(matches!(store.get("localhost/app:v1"), Err(skiff_runtime::ImageError::NotFound(_))));
    assert_eq!(layer_count(&store), 1, "still used by localhost/other");
    store.remove("localhost/other:v1").await.expect("remove");
    assert_eq!(layer_count(&store), 0, "garbage-collected");
    assert_eq!(std::fs::read_dir(store.root().join("blobs/sha256")).expect("blobs").count(), 0);
}

#[tokio::test]
async fn imports_a_docker_save_tarball() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(tmp.path().join("store"), StoreConfig::default()).expect("open");
    let dir = tmp.path().join("save");
    std::fs::create_dir_all(dir.join("abc")).expect("mkdir");
    let tar = common::rootfs_tar();
    let diff_id = skiff_runtime::digest::sha256(&tar);
    std::fs::write(dir.join("abc/layer.tar"), &tar).expect("layer");
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/bin/sh"], "User": "nobody"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    })
    .to_string();
    let config_digest = skiff_runtime::digest::sha256(config.as_bytes());
    std::fs::write(dir.join(format!("{}.json", &config_digest[7..])), &config).expect("config");
    let manifest = serde_json::json!([{
        "Config": format!("{}.json", &config_digest[7..]),
        "RepoTags": ["busybox-save:1.0"],
        "Layers": ["abc/layer.tar"],
    }]);
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).expect("manifest");
    let archive = tmp.path().join("save.tar");
    common::tar_dir(&dir, &archive);
    let images = store.import(&archive, None).await.expect("import");
    assert_eq!(images.len(), 1);
    let img = &images[0];
    assert_eq!(img.reference, "docker.io/library/busybox-save:1.0");
    assert_eq!(img.config_digest, config_digest);
    assert_eq!(img.config.entrypoint, vec!["/bin/sh".to_string()]);
    assert_eq!(img.config.user, "nobody");
    assert_eq!(img.layers[0].diff_id, diff_id);
    assert_eq!(img.layers[0].media_type, "application/vnd.docker.image.rootfs.diff.tar");
    assert!(store.layer_dirs(img)[0].join("www/index.html").is_file());
}

/// A docker-registry this test started; stopped (by its PID) on drop.
struct Registry {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).expect("config");
        let child = std::process::Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry is installed (scripts/install-deps.sh)");
        let registry = Registry { child, port, _dir: dir };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return registry;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("docker-registry did not listen on {port}");
    }

    fn push(&self, layout: &Path, repo_tag: &str) {
        let status = std::process::Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://127.0.0.1:{}/{repo_tag}", self.port))
            .stdout(std::process::Stdio::null())
            .status()
            .expect("skopeo is installed");
        assert!(status.success(), "skopeo copy failed");
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn pulls_from_a_real_registry_over_plain_http() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    let manifest_digest = common::write_oci_layout(&layout, "v1");
    registry.push(&layout, "test:v1");

    let store = ImageStore::open(tmp.path().join("store"), StoreConfig::default()).expect("open");
    let reference = format!("127.0.0.1:{}/test:v1", registry.port);
    // Two concurrent pulls of one reference share one download.
    let (a, b) =
        tokio::join!(store.pull(&reference, PullOptions::default()), store.pull(&reference, PullOptions::default()));
    let (a, b) = (a.expect("pull"), b.expect("pull"));
    assert_eq!(a, b);
    assert_eq!(a.reference, reference);
    assert_eq!(a.digest, manifest_digest, "skopeo keeps the OCI manifest as is");
    assert!(store.layer_dirs(&a)[0].join("bin/busybox").is_file());
    assert_eq!(store.get(&reference).expect("recorded"), a);

    // By digest.
    let by_digest = format!("127.0.0.1:{}/test@{manifest_digest}", registry.port);
    let d = store.pull(&by_digest, PullOptions::default()).await.expect("pull by digest");
    assert_eq!(d.config_digest, a.config_digest);

    // A missing tag is the registry's error.
    let missing = store.pull(&format!("127.0.0.1:{}/test:nope", registry.port), PullOptions::default()).await;
    assert!(matches!(missing, Err(skiff_runtime::ImageError::Registry { .. })), "{missing:?}");
}

#[tokio::test]
async fn pulls_docker_hub_names_through_a_mirror() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = tmp.path().join("layout");
    common::write_oci_layout(&layout, "v1");
    registry.push(&layout, "library/mirrored:v1");
    let mut config = StoreConfig::default();
    config.mirrors.insert("docker.io".into(), vec![format!("127.0.0.1:{}", registry.port)]);
    let store = ImageStore::open(tmp.path().join("store"), config).expect("open");
    let image = store.pull("mirrored:v1", PullOptions::default()).await.expect("pull via mirror");
    assert_eq!(image.reference, "docker.io/library/mirrored:v1");
    assert!(store.layer_dirs(&image)[0].join("bin/busybox").is_file());
}
