//! The content-addressed image store: blobs under `blobs/sha256/<hex>`, unpacked layers under
//! `layers/sha256/<diffID hex>/` (each unpacked once and shared by every image that has it), and one
//! record per image reference under `images/`. Images come from a registry ([`ImageStore::pull`],
//! in `pull.rs`) or from an archive ([`ImageStore::import`], in `import.rs`).

use crate::layer::{self, LayerError};
use crate::reference::{self, ReferenceError};
use futures::future::{BoxFuture, Shared};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors of the image store.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The reference does not parse.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// No image with this reference is in the store.
    #[error("image {0} not found in the store")]
    NotFound(String),
    /// File system trouble under the store's root.
    #[error("{context} {path}: {source}")]
    Io {
        /// What the store was doing.
        context: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A manifest, config or record is not what it should be.
    #[error("invalid image data: {0}")]
    Invalid(String),
    /// Content whose digest is not the one announced.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Which content.
        what: String,
        /// The announced digest.
        expected: String,
        /// The digest of what was received.
        actual: String,
    },
    /// The registry refused or failed.
    #[error("registry error pulling {reference}: {source}")]
    Registry {
        /// The reference being pulled.
        reference: String,
        /// The client's error.
        #[source]
        source: oci_client::errors::OciDistributionError,
    },
    /// A layer failed to unpack.
    #[error("layer {digest}: {source}")]
    Layer {
        /// The layer blob's digest.
        digest: String,
        /// Why.
        #[source]
        source: LayerError,
    },
    /// The image is used by a mounted container root file system.
    #[error("image {0} is in use by a running container")]
    InUse(String),
    /// A concurrent pull of the same reference, whose result this call shared, failed.
    #[error(transparent)]
    Shared(Arc<ImageError>),
}

pub(crate) fn io_err(context: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ImageError {
    let path = path.to_path_buf();
    move |source| ImageError::Io { context, path, source }
}

/// Store-wide settings, as a container engine's daemon configuration has them.
#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    /// Registries (`host[:port]`) spoken to in plain HTTP besides loopback ones.
    pub insecure_registries: Vec<String>,
    /// Mirrors per registry (`docker.io` → `["mirror.local:5000"]`), tried in order before the
    /// registry itself.
    pub mirrors: BTreeMap<String, Vec<String>>,
}

/// Credentials for one pull.
#[derive(Clone, Default)]
pub enum RegistryAuth {
    /// No credentials; a bearer token is still fetched anonymously when the registry asks.
    #[default]
    Anonymous,
    /// Username and password (sent as basic auth, or exchanged for a bearer token).
    Basic {
        /// User name.
        username: String,
        /// Password or access token.
        password: String,
    },
    /// A ready bearer token (Kubernetes' `registrytoken`).
    Bearer(String),
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Anonymous => f.write_str("Anonymous"),
            Self::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// Options of one pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Credentials for the image's registry.
    pub auth: RegistryAuth,
}

/// The run-time defaults an image carries in its config (`config` in the OCI image config).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// `Entrypoint`.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    #[serde(default)]
    pub cmd: Vec<String>,
    /// `Env`, `NAME=value` each.
    #[serde(default)]
    pub env: Vec<String>,
    /// `WorkingDir`, empty when unset.
    #[serde(default)]
    pub working_dir: String,
    /// `User`: `uid`, `uid:gid`, `name` or `name:group`; empty for root.
    #[serde(default)]
    pub user: String,
}

/// One layer of an image, bottom first in [`Image::layers`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// Digest of the blob as stored (compressed or not).
    pub digest: String,
    /// Digest of the uncompressed tar: the key of the unpacked directory.
    pub diff_id: String,
    /// The blob's media type.
    pub media_type: String,
    /// The blob's size in bytes.
    pub size: u64,
}

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// Normalized reference (`docker.io/library/busybox:latest`).
    pub reference: String,
    /// Digest of the manifest (the "repo digest" of `image@sha256:...`).
    pub digest: String,
    /// Digest of the config blob (the image ID Kubernetes shows as `imageID`).
    pub config_digest: String,
    /// Layers, bottom first.
    pub layers: Vec<Layer>,
    /// Run-time defaults.
    pub config: ImageConfig,
}

impl Image {
    /// Total size of the layer blobs.
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}

/// The parts of an OCI/Docker image config the store reads.
#[derive(Debug, Deserialize)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub config: Option<RawRunConfig>,
    pub rootfs: RawRootfs,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RawRunConfig {
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawRootfs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// Parses an image config blob into its run-time defaults and diffIDs.
pub(crate) fn parse_config(bytes: &[u8]) -> Result<(ImageConfig, Vec<String>), ImageError> {
    let raw: RawConfig =
        serde_json::from_slice(bytes).map_err(|e| ImageError::Invalid(format!("image config: {e}")))?;
    let rc = raw.config.unwrap_or_default();
    Ok((
        ImageConfig {
            entrypoint: rc.entrypoint.unwrap_or_default(),
            cmd: rc.cmd.unwrap_or_default(),
            env: rc.env.unwrap_or_default(),
            working_dir: rc.working_dir.unwrap_or_default(),
            user: rc.user.unwrap_or_default(),
        },
        raw.rootfs.diff_ids,
    ))
}

type PullFuture = Shared<BoxFuture<'static, Result<Image, Arc<ImageError>>>>;

pub(crate) struct Inner {
    pub root: PathBuf,
    pub config: StoreConfig,
    inflight: parking_lot::Mutex<HashMap<String, PullFuture>>,
    /// Serializes record writes and garbage collection.
    records: tokio::sync::Mutex<()>,
}

/// The image store. Cheap to clone; clones share state (and in-flight pulls).
#[derive(Clone)]
pub struct ImageStore {
    pub(crate) inner: Arc<Inner>,
}

impl ImageStore {
    /// Opens (creating if needed) the store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>, config: StoreConfig) -> Result<Self, ImageError> {
        let root = root.into();
        for sub in ["blobs/sha256", "layers/sha256", "images", "tmp"] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                config,
                inflight: parking_lot::Mutex::new(HashMap::new()),
                records: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Pulls `reference` from its registry (or a configured mirror) unless another pull of the same
    /// reference is running, in which case this call waits for and shares that one's result.
    pub async fn pull(&self, reference: &str, options: PullOptions) -> Result<Image, ImageError> {
        let key = reference::normalize(reference)?;
        let fut = {
            let mut inflight = self.inner.inflight.lock();
            match inflight.get(&key) {
                Some(f) => f.clone(),
                None => {
                    let store = self.clone();
                    let k = key.clone();
                    let fut: BoxFuture<'static, Result<Image, Arc<ImageError>>> = Box::pin(async move {
                        let result = crate::pull::pull(&store, &k, &options).await.map_err(Arc::new);
                        store.inner.inflight.lock().remove(&k);
                        result
                    });
                    let shared = futures::FutureExt::shared(fut);
                    inflight.insert(key.clone(), shared.clone());
                    shared
                }
            }
        };
        fut.await.map_err(|e| match Arc::try_unwrap(e) {
            Ok(e) => e,
            Err(shared) => ImageError::Shared(shared),
        })
    }

    /// The image recorded under `reference` (normalized first).
    pub fn get(&self, reference: &str) -> Result<Image, ImageError> {
        let key = reference::normalize(reference)?;
        let path = self.record_path(&key);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| ImageError::Invalid(format!("record {}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ImageError::NotFound(key)),
            Err(e) => Err(io_err("reading", &path)(e)),
        }
    }

    /// Every image in the store, sorted by reference.
    pub fn list(&self) -> Result<Vec<Image>, ImageError> {
        let dir = self.inner.root.join("images");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io_err("listing", &dir))? {
            let entry = entry.map_err(io_err("listing", &dir))?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(io_err("reading", &path))?;
            let image: Image = serde_json::from_slice(&bytes)
                .map_err(|e| ImageError::Invalid(format!("record {}: {e}", path.display())))?;
            out.push(image);
        }
        out.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(out)
    }

    /// Removes the image recorded under `reference` and garbage-collects the blobs and layers no
    /// other image uses. Refuses while a mounted root file system uses one of its layers.
    pub async fn remove(&self, reference: &str) -> Result<(), ImageError> {
        let image = self.get(reference)?;
        let _guard = self.inner.records.lock().await;
        let mounted = mounted_lowerdirs();
        if self.layer_dirs(&image).iter().any(|d| mounted.contains(d)) {
            let others_share =
                self.list()?.iter().any(|i| i.reference != image.reference && i.config_digest == image.config_digest);
            if !others_share {
                return Err(ImageError::InUse(image.reference));
            }
        }
        let path = self.record_path(&image.reference);
        std::fs::remove_file(&path).map_err(io_err("removing", &path))?;
        self.collect_garbage(&mounted)
    }

    /// The unpacked layer directories of `image`, bottom first: the overlayfs lower layers.
    pub fn layer_dirs(&self, image: &Image) -> Vec<PathBuf> {
        image.layers.iter().map(|l| self.layer_dir(&l.diff_id)).collect()
    }

    pub(crate) fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.inner.root.join("blobs/sha256").join(hex)
    }

    pub(crate) fn layer_dir(&self, diff_id: &str) -> PathBuf {
        let hex = diff_id.strip_prefix("sha256:").unwrap_or(diff_id);
        self.inner.root.join("layers/sha256").join(hex)
    }

    pub(crate) fn tmp_path(&self, prefix: &str) -> PathBuf {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.root.join("tmp").join(format!("{prefix}-{}-{n}", std::process::id()))
    }

    fn record_path(&self, normalized: &str) -> PathBuf {
        let name = crate::digest::sha256(normalized.as_bytes());
        let hex = name.strip_prefix("sha256:").unwrap_or(&name);
        self.inner.root.join("images").join(format!("{hex}.json"))
    }

    /// Moves `file` into the blob store under `digest` after checking its content hashes to it.
    pub(crate) fn commit_blob_file(&self, file: &Path, digest: &str) -> Result<(), ImageError> {
        let target = self.blob_path(digest);
        if crate::digest::sha256_hex(digest).is_none() {
            return Err(ImageError::Invalid(format!("unsupported digest {digest}")));
        }
        let actual = hash_file(file)?;
        if actual != digest {
            return Err(ImageError::DigestMismatch {
                what: file.display().to_string(),
                expected: digest.to_string(),
                actual,
            });
        }
        std::fs::rename(file, &target).map_err(io_err("storing blob", &target))
    }

    /// Writes `bytes` as a blob and returns its digest.
    pub(crate) fn write_blob(&self, bytes: &[u8]) -> Result<String, ImageError> {
        let digest = crate::digest::sha256(bytes);
        let target = self.blob_path(&digest);
        if !target.exists() {
            let tmp = self.tmp_path("blob");
            std::fs::write(&tmp, bytes).map_err(io_err("writing", &tmp))?;
            std::fs::rename(&tmp, &target).map_err(io_err("storing blob", &target))?;
        }
        Ok(digest)
    }

    /// Unpacks the layer blob `layer.digest` into its shared directory unless it already is there.
    pub(crate) fn unpack_layer(&self, layer: &Layer) -> Result<(), ImageError> {
        let dir = self.layer_dir(&layer.diff_id);
        if dir.is_dir() {
            return Ok(());
        }
        let blob = self.blob_path(&layer.digest);
        let file = std::fs::File::open(&blob).map_err(io_err("opening", &blob))?;
        let tmp = self.tmp_path("layer");
        std::fs::create_dir_all(&tmp).map_err(io_err("creating", &tmp))?;
        let result = layer::unpack(file, &tmp)
            .map_err(|source| ImageError::Layer { digest: layer.digest.clone(), source })
            .and_then(|diff_id| {
                if diff_id == layer.diff_id {
                    Ok(())
                } else {
                    Err(ImageError::DigestMismatch {
                        what: format!("diffID of layer {}", layer.digest),
                        expected: layer.diff_id.clone(),
                        actual: diff_id,
                    })
                }
            });
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        // chmod the root like the layer says? Overlay uses the top layer's root attributes; the
        // tar's "./" entry (if any) already set them.
        if std::fs::rename(&tmp, &dir).is_err() {
            // Another unpack of the same layer won the race; keep its copy.
            let _ = std::fs::remove_dir_all(&tmp);
            if !dir.is_dir() {
                return Err(ImageError::Invalid(format!("could not store layer {}", layer.diff_id)));
            }
        }
        Ok(())
    }

    /// Records `image`, unpacking its layers first (blocking work: call from `spawn_blocking`).
    pub(crate) fn commit_image(&self, image: &Image) -> Result<(), ImageError> {
        for layer in &image.layers {
            self.unpack_layer(layer)?;
        }
        let path = self.record_path(&image.reference);
        let tmp = self.tmp_path("record");
        let bytes =
            serde_json::to_vec_pretty(image).map_err(|e| ImageError::Invalid(format!("encoding record: {e}")))?;
        std::fs::write(&tmp, bytes).map_err(io_err("writing", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err("writing", &path))
    }

    /// Deletes blobs and layer directories that no recorded image references and no mount uses.
    fn collect_garbage(&self, mounted: &BTreeSet<PathBuf>) -> Result<(), ImageError> {
        let images = self.list()?;
        let mut blobs = BTreeSet::new();
        let mut layers = BTreeSet::new();
        for image in &images {
            blobs.insert(self.blob_path(&image.digest));
            blobs.insert(self.blob_path(&image.config_digest));
            for l in &image.layers {
                blobs.insert(self.blob_path(&l.digest));
                layers.insert(self.layer_dir(&l.diff_id));
            }
        }
        let blob_dir = self.inner.root.join("blobs/sha256");
        for entry in std::fs::read_dir(&blob_dir).map_err(io_err("listing", &blob_dir))?.flatten() {
            if !blobs.contains(&entry.path()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let layer_dir = self.inner.root.join("layers/sha256");
        for entry in std::fs::read_dir(&layer_dir).map_err(io_err("listing", &layer_dir))?.flatten() {
            let p = entry.path();
            if !layers.contains(&p) && !mounted.contains(&p) {
                let _ = std::fs::remove_dir_all(&p);
            }
        }
        Ok(())
    }
}

/// sha256 digest of a file's content.
pub(crate) fn hash_file(path: &Path) -> Result<String, ImageError> {
    let file = std::fs::File::open(path).map_err(io_err("opening", path))?;
    crate::digest::HashingReader::new(file).finish().map_err(io_err("reading", path))
}

/// Every overlayfs lower directory currently mounted on this machine.
fn mounted_lowerdirs() -> BTreeSet<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    parse_lowerdirs(&mounts)
}

/// The `lowerdir=` paths of the overlay lines of a `/proc/mounts` text.
fn parse_lowerdirs(mounts: &str) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() < 4 || fields[2] != "overlay" {
            continue;
        }
        for opt in fields[3].split(',') {
            if let Some(dirs) = opt.strip_prefix("lowerdir=") {
                out.extend(dirs.split(':').map(PathBuf::from));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_image_config() {
        let cfg = br#"{"architecture":"amd64","os":"linux",
            "config":{"Entrypoint":["/docker-entrypoint.sh"],"Cmd":["nginx","-g","daemon off;"],
            "Env":["PATH=/usr/bin"],"WorkingDir":"/srv","User":"101:101"},
            "rootfs":{"type":"layers","diff_ids":["sha256:aa","sha256:bb"]}}"#;
        let (config, diff_ids) = parse_config(cfg).expect("parse");
        assert_eq!(
            config,
            ImageConfig {
                entrypoint: vec!["/docker-entrypoint.sh".into()],
                cmd: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
                env: vec!["PATH=/usr/bin".into()],
                working_dir: "/srv".into(),
                user: "101:101".into(),
            }
        );
        assert_eq!(diff_ids, vec!["sha256:aa".to_string(), "sha256:bb".to_string()]);
        let (empty, ids) =
            parse_config(br#"{"rootfs":{"type":"layers","diff_ids":[]},"config":{"Cmd":null}}"#).expect("parse");
        assert_eq!(empty, ImageConfig::default());
        assert!(ids.is_empty());
        assert!(parse_config(b"{}").is_err());
    }

    #[test]
    fn finds_mounted_lowerdirs() {
        let mounts = "proc /proc proc rw 0 0\n\
            overlay /run/c1/rootfs overlay rw,relatime,lowerdir=/s/layers/sha256/b:/s/layers/sha256/a,upperdir=/u,workdir=/w 0 0\n";
        let got = parse_lowerdirs(mounts);
        let want: BTreeSet<PathBuf> = ["/s/layers/sha256/a", "/s/layers/sha256/b"].iter().map(PathBuf::from).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn auth_debug_redacts_secrets() {
        let auth = RegistryAuth::Basic { username: "u".into(), password: "hunter2".into() };
        assert_eq!(format!("{auth:?}"), "Basic(u, <redacted>)");
        assert_eq!(format!("{:?}", RegistryAuth::Bearer("t".into())), "Bearer(<redacted>)");
    }
}
