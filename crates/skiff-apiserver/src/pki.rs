//! The server's credentials: a CA, a serving certificate signed by it, the client certificate the
//! server presents to node agents, and the admin bearer token, created on first start in the data
//! directory and reused afterwards; and the kubeconfig that lets the real kubectl use them as they are.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot read or write {path}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot generate a certificate")]
    Generate(#[from] rcgen::Error),
    #[error("{path} holds no usable PEM {what}")]
    Pem { path: PathBuf, what: &'static str },
}

/// Everything the server needs to serve TLS and authenticate its admin.
pub struct Credentials {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// The client certificate (and its key) the server presents when it dials a node agent's kubelet
    /// server for logs and exec (kube-apiserver's `--kubelet-client-certificate`).
    pub kubelet_client_cert_pem: String,
    pub kubelet_client_key_pem: String,
    pub token: String,
}

const CA_CERT: &str = "pki/ca.crt";
const CA_KEY: &str = "pki/ca.key";
const SERVING_CERT: &str = "pki/serving.crt";
const SERVING_KEY: &str = "pki/serving.key";
const KUBELET_CLIENT_CERT: &str = "pki/kubelet-client.crt";
const KUBELET_CLIENT_KEY: &str = "pki/kubelet-client.key";
const TOKEN: &str = "pki/admin.token";
/// The identity of [`Credentials::kubelet_client_cert_pem`], as kubeadm names kube-apiserver's.
pub const KUBELET_CLIENT_CN: &str = "skiff-apiserver-kubelet-client";
pub const KUBELET_CLIENT_ORG: &str = "system:masters";

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io { path: path.to_owned(), source })
}

/// Writes `contents` to `path` readable by its owner only, atomically (write + rename).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    let io = |source| PkiError::Io { path: path.to_owned(), source };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io)?;
    f.write_all(contents).map_err(io)?;
    f.sync_all().map_err(io)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

/// The host names and addresses the serving certificate is valid for.
fn subject_alt_names(extra: &[String]) -> Vec<String> {
    let mut names = vec!["127.0.0.1".to_string(), "localhost".to_string(), "::1".to_string()];
    if let Ok(host) = fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim().to_string();
        if !host.is_empty() && !names.contains(&host) {
            names.push(host);
        }
    }
    for n in extra {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    names
}

/// The CA's certificate parameters (fixed, so the issuer can be rebuilt from them at every start).
fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, "skiff-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ok(params)
}

/// The API server's client certificate for node agents: CN `skiff-apiserver-kubelet-client`,
/// O `system:masters`, usable for TLS client authentication only.
fn kubelet_client_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, KUBELET_CLIENT_CN);
    params.distinguished_name.push(DnType::OrganizationName, KUBELET_CLIENT_ORG);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    Ok(params)
}

/// Loads the credentials from `data_dir`, creating whatever is missing. The serving certificate is
/// issued once, for loopback, the host's name and `extra_names`; delete `pki/serving.*` to re-issue it.
pub fn load_or_create(data_dir: &Path, extra_names: &[String]) -> Result<Credentials, PkiError> {
    let ca_cert_path = data_dir.join(CA_CERT);
    let ca_key_path = data_dir.join(CA_KEY);
    if !ca_cert_path.exists() || !ca_key_path.exists() {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        write_private(&ca_key_path, key.serialize_pem().as_bytes())?;
        write_private(&ca_cert_path, cert.pem().as_bytes())?;
        // A new CA invalidates any certificate signed by an old one.
        let _ = fs::remove_file(data_dir.join(SERVING_CERT));
        let _ = fs::remove_file(data_dir.join(KUBELET_CLIENT_CERT));
    }
    let ca_pem = read(&ca_cert_path)?;
    let ca_key = KeyPair::from_pem(&read(&ca_key_path)?)?;

    let cert_path = data_dir.join(SERVING_CERT);
    let key_path = data_dir.join(SERVING_KEY);
    if !cert_path.exists() || !key_path.exists() {
        // The issuer is described by the CA's parameters, which are the same at every start.
        let issuer = Issuer::new(ca_params()?, &ca_key);
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(subject_alt_names(extra_names))?;
        params.distinguished_name.push(DnType::CommonName, "skiff-apiserver");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &issuer)?;
        write_private(&key_path, key.serialize_pem().as_bytes())?;
        write_private(&cert_path, cert.pem().as_bytes())?;
    }

    let client_cert_path = data_dir.join(KUBELET_CLIENT_CERT);
    let client_key_path = data_dir.join(KUBELET_CLIENT_KEY);
    if !client_cert_path.exists() || !client_key_path.exists() {
        let issuer = Issuer::new(ca_params()?, &ca_key);
        let key = KeyPair::generate()?;
        let cert = kubelet_client_params()?.signed_by(&key, &issuer)?;
        write_private(&client_key_path, key.serialize_pem().as_bytes())?;
        write_private(&client_cert_path, cert.pem().as_bytes())?;
    }

    let token_path = data_dir.join(TOKEN);
    if !token_path.exists() {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        // Hex: nothing a shell or a command line reads specially (a base64url token could
        // start with '-' and be taken for an option of `skiff agent --token`).
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        write_private(&token_path, token.as_bytes())?;
    }
    Ok(Credentials {
        ca_pem,
        cert_pem: read(&cert_path)?,
        key_pem: read(&key_path)?,
        kubelet_client_cert_pem: read(&client_cert_path)?,
        kubelet_client_key_pem: read(&client_key_path)?,
        token: read(&token_path)?.trim().to_string(),
    })
}

/// A kubeconfig for `server` (e.g. `https://127.0.0.1:6443`) trusting the CA and carrying the token.
pub fn kubeconfig(server: &str, creds: &Credentials) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(creds.ca_pem.as_bytes());
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: skiff
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: admin
  user:
    token: {token}
contexts:
- name: skiff
  context:
    cluster: skiff
    user: admin
    namespace: default
current-context: skiff
preferences: {{}}
",
        token = creds.token
    )
}

/// rustls server configuration from the PEM certificate chain and key.
pub fn server_tls_config(creds: &Credentials) -> Result<rustls::ServerConfig, PkiError> {
    let pem_err = |what| PkiError::Pem { path: PathBuf::from(SERVING_CERT), what };
    let certs: Vec<_> = rustls_pemfile::certs(&mut creds.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|_| pem_err("certificate"))?;
    let key = rustls_pemfile::private_key(&mut creds.key_pem.as_bytes())
        .map_err(|_| pem_err("private key"))?
        .ok_or_else(|| pem_err("private key"))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|_| pem_err("certificate/key pair"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_created_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = load_or_create(dir.path(), &[]).expect("create");
        let b = load_or_create(dir.path(), &[]).expect("reuse");
        assert_eq!(a.token, b.token);
        assert_eq!(a.cert_pem, b.cert_pem);
        assert_eq!(a.kubelet_client_cert_pem, b.kubelet_client_cert_pem);
        assert_ne!(a.kubelet_client_cert_pem, a.cert_pem);
        let mode = fs::metadata(dir.path().join(KUBELET_CLIENT_KEY)).expect("client key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(a.token.len() >= 40);
        assert!(a.token.bytes().all(|c| c.is_ascii_hexdigit()), "{}", a.token);
        let mode = fs::metadata(dir.path().join(TOKEN)).expect("token").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let _ = rustls::crypto::ring::default_provider().install_default();
        server_tls_config(&a).expect("rustls accepts the pair");
        let kc = kubeconfig("https://127.0.0.1:6443", &a);
        assert!(kc.contains(&a.token));
        assert!(kc.contains("certificate-authority-data: "));
    }
}
