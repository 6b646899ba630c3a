//! Importing images from archives: an OCI image layout (`oci-layout`, `index.json`, `blobs/`) packed
//! as a tar, or a `docker save` tarball (`manifest.json` with `Config`, `RepoTags` and `Layers`).
//! Names come from the archive (`io.containerd.image.name`, `org.opencontainers.image.ref.name`,
//! `RepoTags`); a caller-given name fills in when the archive carries none or only a bare tag.

use crate::image::{Image, ImageError, ImageStore, Layer, hash_file, io_err, parse_config};
use crate::reference;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

const INDEX_TYPES: [&str; 2] =
    ["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerSaveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The reference an imported image is recorded under, from the archive's annotation (a full
/// reference, or a bare tag) and the caller's `fallback` name.
fn image_name(annotation: Option<&str>, fallback: Option<&str>) -> Result<String, ImageError> {
    let missing = || ImageError::Invalid("archive names no image and no name was given".into());
    match annotation.filter(|a| !a.is_empty()) {
        Some(a) if a.contains('/') || a.contains(':') || a.contains('@') => Ok(reference::normalize(a)?),
        Some(tag) => {
            let base = reference::parse(fallback.ok_or_else(missing)?)?;
            Ok(reference::normalize(&format!("{}/{}:{tag}", base.registry(), base.repository()))?)
        }
        None => Ok(reference::normalize(fallback.ok_or_else(missing)?)?),
    }
}

/// The Go architecture name of this machine (`amd64`, `arm64`), as image platforms spell it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

impl ImageStore {
    /// Imports every image of the archive at `path` (an OCI layout tar or a `docker save` tar).
    /// `name` names an image the archive does not name fully.
    pub async fn import(&self, path: &Path, name: Option<&str>) -> Result<Vec<Image>, ImageError> {
        let (store, path, name) = (self.clone(), path.to_path_buf(), name.map(str::to_string));
        tokio::task::spawn_blocking(move || store.import_blocking(&path, name.as_deref()))
            .await
            .map_err(|e| ImageError::Invalid(format!("import task failed: {e}")))?
    }

    fn import_blocking(&self, path: &Path, name: Option<&str>) -> Result<Vec<Image>, ImageError> {
        let dir = self.tmp_path("import");
        std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        let result = (|| {
            let file = std::fs::File::open(path).map_err(io_err("opening", path))?;
            tar::Archive::new(file).unpack(&dir).map_err(io_err("unpacking", path))?;
            if dir.join("index.json").is_file() && dir.join("oci-layout").is_file() {
                self.import_oci_layout(&dir, name)
            } else if dir.join("manifest.json").is_file() {
                self.import_docker_save(&dir, name)
            } else {
                Err(ImageError::Invalid(format!(
                    "{} is neither an OCI image layout nor a docker save archive",
                    path.display()
                )))
            }
        })();
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    /// Moves blob `digest` from an unpacked OCI layout into the store, verifying it.
    fn take_layout_blob(&self, dir: &Path, digest: &str) -> Result<(), ImageError> {
        let hex = crate::digest::sha256_hex(digest)
            .ok_or_else(|| ImageError::Invalid(format!("unsupported digest {digest}")))?;
        if self.blob_path(digest).exists() {
            return Ok(());
        }
        self.commit_blob_file(&dir.join("blobs/sha256").join(hex), digest)
    }

    fn read_layout_json<T: for<'de> Deserialize<'de>>(&self, dir: &Path, digest: &str) -> Result<T, ImageError> {
        self.take_layout_blob(dir, digest)?;
        let path = self.blob_path(digest);
        let bytes = std::fs::read(&path).map_err(io_err("reading", &path))?;
        serde_json::from_slice(&bytes).map_err(|e| ImageError::Invalid(format!("{digest}: {e}")))
    }

    fn import_oci_layout(&self, dir: &Path, name: Option<&str>) -> Result<Vec<Image>, ImageError> {
        let index_path = dir.join("index.json");
        let bytes = std::fs::read(&index_path).map_err(io_err("reading", &index_path))?;
        let index: Index =
            serde_json::from_slice(&bytes).map_err(|e| ImageError::Invalid(format!("index.json: {e}")))?;
        let mut images = Vec::new();
        for entry in &index.manifests {
            let annotation = entry
                .annotations
                .get("io.containerd.image.name")
                .or_else(|| entry.annotations.get("org.opencontainers.image.ref.name"));
            let reference = image_name(annotation.map(String::as_str), name)?;
            let mut manifest_digest = entry.digest.clone();
            if INDEX_TYPES.contains(&entry.media_type.as_str()) {
                let nested: Index = self.read_layout_json(dir, &entry.digest)?;
                let _ = nested.media_type;
                let chosen = nested
                    .manifests
                    .iter()
                    .find(|m| m.platform.as_ref().is_some_and(|p| p.os == "linux" && p.architecture == go_arch()))
                    .ok_or_else(|| ImageError::Invalid(format!("{reference}: no linux/{} manifest", go_arch())))?;
                manifest_digest = chosen.digest.clone();
            }
            let manifest: Manifest = self.read_layout_json(dir, &manifest_digest)?;
            let config_path = {
                self.take_layout_blob(dir, &manifest.config.digest)?;
                self.blob_path(&manifest.config.digest)
            };
            let config_bytes = std::fs::read(&config_path).map_err(io_err("reading", &config_path))?;
            let (config, diff_ids) = parse_config(&config_bytes)?;
            if diff_ids.len() != manifest.layers.len() {
                return Err(ImageError::Invalid(format!(
                    "{reference}: {} layers but {} diffIDs",
                    manifest.layers.len(),
                    diff_ids.len()
                )));
            }
            let mut layers = Vec::new();
            for (l, diff_id) in manifest.layers.iter().zip(diff_ids) {
                self.take_layout_blob(dir, &l.digest)?;
                layers.push(Layer {
                    digest: l.digest.clone(),
                    diff_id,
                    media_type: l.media_type.clone(),
                    size: l.size,
                });
            }
            let image = Image {
                reference,
                digest: manifest_digest,
                config_digest: manifest.config.digest.clone(),
                layers,
                config,
            };
            self.commit_image(&image)?;
            images.push(image);
        }
        Ok(images)
    }

    fn import_docker_save(&self, dir: &Path, name: Option<&str>) -> Result<Vec<Image>, ImageError> {
        let manifest_path = dir.join("manifest.json");
        let bytes = std::fs::read(&manifest_path).map_err(io_err("reading", &manifest_path))?;
        let entries: Vec<DockerSaveEntry> =
            serde_json::from_slice(&bytes).map_err(|e| ImageError::Invalid(format!("manifest.json: {e}")))?;
        let mut images = Vec::new();
        for entry in entries {
            let inside = |rel: &str| -> Result<std::path::PathBuf, ImageError> {
                let p = Path::new(rel);
                if p.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
                    return Err(ImageError::Invalid(format!("manifest.json path {rel:?}")));
                }
                Ok(dir.join(p))
            };
            let config_bytes = {
                let p = inside(&entry.config)?;
                std::fs::read(&p).map_err(io_err("reading", &p))?
            };
            let config_digest = self.write_blob(&config_bytes)?;
            let (config, diff_ids) = parse_config(&config_bytes)?;
            if diff_ids.len() != entry.layers.len() {
                return Err(ImageError::Invalid(format!(
                    "docker save: {} layers but {} diffIDs",
                    entry.layers.len(),
                    diff_ids.len()
                )));
            }
            let mut layers = Vec::new();
            for (rel, diff_id) in entry.layers.iter().zip(diff_ids) {
                let p = inside(rel)?;
                let digest = hash_file(&p)?;
                let size = std::fs::metadata(&p).map_err(io_err("reading", &p))?.len();
                let mut head = [0u8; 4];
                let n = std::io::Read::read(&mut std::fs::File::open(&p).map_err(io_err("opening", &p))?, &mut head)
                    .map_err(io_err("reading", &p))?;
                let media_type = match crate::layer::sniff(&head[..n]) {
                    crate::layer::Compression::Gzip => "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    _ => "application/vnd.docker.image.rootfs.diff.tar",
                };
                if !self.blob_path(&digest).exists() {
                    // Same file system (the import dir is under the store root): a rename.
                    self.commit_blob_file(&p, &digest)?;
                }
                layers.push(Layer { digest, diff_id, media_type: media_type.into(), size });
            }
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {
                    "mediaType": "application/vnd.docker.container.image.v1+json",
                    "digest": config_digest,
                    "size": config_bytes.len(),
                },
                "layers": layers.iter().map(|l| serde_json::json!({
                    "mediaType": l.media_type, "digest": l.digest, "size": l.size,
                })).collect::<Vec<_>>(),
            });
            let manifest_digest = self.write_blob(manifest.to_string().as_bytes())?;
            let tags = entry.repo_tags.unwrap_or_default();
            let names: Vec<String> = if tags.is_empty() {
                vec![image_name(None, name)?]
            } else {
                tags.iter().map(|t| image_name(Some(t), name)).collect::<Result<_, _>>()?
            };
            for reference in names {
                let image = Image {
                    reference,
                    digest: manifest_digest.clone(),
                    config_digest: config_digest.clone(),
                    layers: layers.clone(),
                    config: config.clone(),
                };
                self.commit_image(&image)?;
                images.push(image);
            }
        }
        Ok(images)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_imported_images() {
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Result<&'a str, ()>);
        let cases: [Case; 7] = [
            (Some("docker.io/library/busybox:1.36"), None, Ok("docker.io/library/busybox:1.36")),
            (Some("busybox:latest"), None, Ok("docker.io/library/busybox:latest")),
            (Some("v1"), Some("localhost/test"), Ok("localhost/test:v1")),
            (Some("v1"), Some("test:old"), Ok("docker.io/library/test:v1")),
            (None, Some("localhost/test:v2"), Ok("localhost/test:v2")),
            (Some("v1"), None, Err(())),
            (None, None, Err(())),
        ];
        for (annotation, fallback, want) in cases {
            let got = image_name(annotation, fallback).map_err(|_| ());
            assert_eq!(got.as_deref(), want.as_deref(), "{annotation:?} {fallback:?}");
        }
    }
}
