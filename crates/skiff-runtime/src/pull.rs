//! Pulling an image from an OCI distribution registry with `oci-client`: manifest (a multi-platform
//! index resolves to this machine's platform), config and layer blobs (verified by digest), then
//! the layers are unpacked into the store. Mirrors configured for the registry are tried first,
//! as containerd and Docker do, falling back to the registry itself.

use crate::image::{Image, ImageError, ImageStore, Layer, PullOptions, RegistryAuth, parse_config};
use crate::reference;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::{Client, Reference};
use tokio::io::AsyncWriteExt;

/// Pulls `normalized` into `store` (see [`ImageStore::pull`]).
pub(crate) async fn pull(store: &ImageStore, normalized: &str, options: &PullOptions) -> Result<Image, ImageError> {
    install_crypto_provider();
    let reference = reference::parse(normalized)?;
    let mirrors = store.inner.config.mirrors.get(reference.registry()).cloned().unwrap_or_default();
    for mirror in &mirrors {
        let mut via = reference.clone();
        via.set_mirror_registry(mirror.clone());
        match pull_from(store, normalized, &via, options).await {
            Ok(image) => return Ok(image),
            Err(e) => {
                tracing::warn!(reference = normalized, mirror, error = %e, "mirror pull failed");
            }
        }
    }
    // When every mirror failed, the registry's own error is the one worth reporting.
    pull_from(store, normalized, &reference, options).await
}

/// rustls needs a process-wide crypto provider; `ring` is the project's choice. Installing twice
/// is harmless (the second attempt reports the first is in place).
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn client_for(registry: &str, insecure: &[String]) -> Client {
    let protocol =
        if reference::is_insecure_registry(registry, insecure) { ClientProtocol::Http } else { ClientProtocol::Https };
    Client::new(ClientConfig { protocol, ..Default::default() })
}

fn to_client_auth(auth: &RegistryAuth) -> oci_client::secrets::RegistryAuth {
    match auth {
        RegistryAuth::Anonymous => oci_client::secrets::RegistryAuth::Anonymous,
        RegistryAuth::Basic { username, password } => {
            oci_client::secrets::RegistryAuth::Basic(username.clone(), password.clone())
        }
        RegistryAuth::Bearer(token) => oci_client::secrets::RegistryAuth::Bearer(token.clone()),
    }
}

async fn pull_from(
    store: &ImageStore,
    normalized: &str,
    reference: &Reference,
    options: &PullOptions,
) -> Result<Image, ImageError> {
    let client = client_for(reference.resolve_registry(), &store.inner.config.insecure_registries);
    let auth = to_client_auth(&options.auth);
    let registry_err = |source| ImageError::Registry { reference: normalized.to_string(), source };
    let (manifest, manifest_digest, config) =
        client.pull_manifest_and_config(reference, &auth).await.map_err(registry_err)?;
    let config_bytes = config.into_bytes();
    let config_digest = crate::digest::sha256(&config_bytes);
    if config_digest != manifest.config.digest {
        return Err(ImageError::DigestMismatch {
            what: format!("config of {normalized}"),
            expected: manifest.config.digest.clone(),
            actual: config_digest,
        });
    }
    let (image_config, diff_ids) = parse_config(&config_bytes)?;
    if diff_ids.len() != manifest.layers.len() {
        return Err(ImageError::Invalid(format!(
            "{normalized}: manifest has {} layers, config has {} diffIDs",
            manifest.layers.len(),
            diff_ids.len()
        )));
    }
    store.write_blob(&config_bytes)?;
    let mut layers = Vec::with_capacity(manifest.layers.len());
    for (descriptor, diff_id) in manifest.layers.iter().zip(diff_ids) {
        let blob = store.blob_path(&descriptor.digest);
        if crate::digest::sha256_hex(&descriptor.digest).is_none() {
            return Err(ImageError::Invalid(format!("unsupported layer digest {}", descriptor.digest)));
        }
        let unpacked = store.layer_dir(&diff_id).is_dir();
        if !blob.exists() && !unpacked {
            let tmp = store.tmp_path("download");
            let result = download(&client, reference, descriptor, &tmp).await;
            let result = result.map_err(registry_err).and_then(|()| store.commit_blob_file(&tmp, &descriptor.digest));
            if let Err(e) = result {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        }
        layers.push(Layer {
            digest: descriptor.digest.clone(),
            diff_id,
            media_type: descriptor.media_type.clone(),
            size: u64::try_from(descriptor.size).unwrap_or(0),
        });
    }
    let image = Image {
        reference: normalized.to_string(),
        digest: manifest_digest,
        config_digest: manifest.config.digest.clone(),
        layers,
        config: image_config,
    };
    let (s, i) = (store.clone(), image.clone());
    tokio::task::spawn_blocking(move || s.commit_image(&i))
        .await
        .map_err(|e| ImageError::Invalid(format!("unpack task failed: {e}")))??;
    Ok(image)
}

async fn download(
    client: &Client,
    reference: &Reference,
    descriptor: &oci_client::manifest::OciDescriptor,
    tmp: &std::path::Path,
) -> Result<(), oci_client::errors::OciDistributionError> {
    let mut file = tokio::fs::File::create(tmp).await?;
    client.pull_blob(reference, descriptor, &mut file).await?;
    file.flush().await?;
    Ok(())
}
