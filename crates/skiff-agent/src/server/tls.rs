//! The kubelet server's TLS: a self-signed serving certificate made at start (the API server does
//! not verify it, as kube-apiserver without `--kubelet-certificate-authority` does not) and a
//! REQUIRED client certificate that chains to the cluster CA: only the API server holds one.

use std::sync::Arc;

use base64::Engine;
use rcgen::{CertificateParams, DnType, KeyPair, KeyUsagePurpose};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;

/// Why the TLS configuration cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate the serving certificate")]
    Generate(#[from] rcgen::Error),
    #[error("the client CA holds no PEM certificate")]
    NoClientCa,
    #[error("the client CA is not a usable certificate")]
    BadClientCa(#[source] rustls::Error),
    #[error("cannot build the client certificate verifier")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("cannot build the TLS configuration")]
    Config(#[source] rustls::Error),
}

/// A self-signed serving certificate (CN = the first name) for `names`: IP addresses become IP
/// SANs, the rest DNS SANs.
pub fn self_signed(names: &[String]) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), TlsError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    let cn = names.first().map_or("skiff-agent", String::as_str);
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.self_signed(&key)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((cert.der().clone(), key))
}

/// The names the serving certificate covers: the node IP, the hostname, loopback.
pub fn serving_names(node_ip: &str, hostname: &str) -> Vec<String> {
    let mut names = Vec::new();
    for n in [hostname, node_ip, "127.0.0.1", "localhost"] {
        if !n.is_empty() && !names.iter().any(|m| m == n) {
            names.push(n.to_string());
        }
    }
    names
}

/// The certificates of a PEM bundle.
pub fn pem_certificates(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes()).filter_map(Result::ok).collect()
}

/// PEM text for DER certificates (for a CA taken from a kubeconfig, which kube-rs keeps as DER).
pub fn der_to_pem(certs: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for der in certs {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

/// The rustls server configuration: ring, TLS 1.2/1.3, HTTP/1.1 only (WebSocket upgrades), a
/// fresh self-signed certificate for `names`, and client certificates required to chain to a
/// certificate of `client_ca_pem`.
pub fn server_config(names: &[String], client_ca_pem: &str) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    let cas = pem_certificates(client_ca_pem);
    if cas.is_empty() {
        return Err(TlsError::NoClientCa);
    }
    for ca in cas {
        roots.add(ca).map_err(TlsError::BadClientCa)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let (cert, key) = self_signed(names)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], key)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_deduplicated() {
        assert_eq!(serving_names("10.0.0.5", "node-a"), vec!["node-a", "10.0.0.5", "127.0.0.1", "localhost"]);
        assert_eq!(serving_names("127.0.0.1", ""), vec!["127.0.0.1", "localhost"]);
    }

    #[test]
    fn pem_round_trip() {
        let (cert, _) = self_signed(&["node-a".into(), "10.0.0.5".into()]).expect("cert");
        let pem = der_to_pem(&[cert.to_vec(), cert.to_vec()]);
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert_eq!(pem_certificates(&pem), vec![cert.clone(), cert]);
        assert!(pem_certificates("not pem").is_empty());
    }

    #[test]
    fn config_needs_a_ca() {
        let names = serving_names("10.0.0.5", "node-a");
        assert!(matches!(server_config(&names, ""), Err(TlsError::NoClientCa)));
        let (ca, _) = self_signed(&["ca".into()]).expect("cert");
        let config = server_config(&names, &der_to_pem(&[ca.to_vec()])).expect("config");
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
