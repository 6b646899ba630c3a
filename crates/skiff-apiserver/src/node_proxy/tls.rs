//! The TLS client the API server dials node agents with.
//!
//! It presents the API server's kubelet-client certificate (the agent requires a client certificate
//! that chains to the cluster CA) and does NOT verify the agent's serving certificate, which each
//! agent generates for itself: this is kube-apiserver's behaviour when it runs without
//! `--kubelet-certificate-authority`. Handshake signatures are still checked, so the peer must hold
//! the key of the certificate it shows; only the certificate's chain and name go unchecked.

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::pki::Credentials;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the kubelet client certificate or key is not usable PEM")]
    Pem,
    #[error("rustls refuses the kubelet client configuration")]
    Rustls(#[from] rustls::Error),
}

/// Accepts any serving certificate (see the module documentation), checking only that the handshake
/// is signed by the key of the certificate presented.
#[derive(Debug)]
struct AnyServerCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The client configuration for dialing agents: the ring provider, the kubelet-client certificate,
/// no verification of the agent's certificate, and HTTP/1.1 only (upgrades need it).
pub fn client_config(creds: &Credentials) -> Result<rustls::ClientConfig, TlsError> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut creds.kubelet_client_cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::Pem)?;
    if certs.is_empty() {
        return Err(TlsError::Pem);
    }
    let key = rustls_pemfile::private_key(&mut creds.kubelet_client_key_pem.as_bytes())
        .map_err(|_| TlsError::Pem)?
        .ok_or(TlsError::Pem)?;
    let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyServerCert { algorithms: provider.signature_verification_algorithms });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_from_the_issued_credentials() {
        let dir = tempfile::tempdir().expect("tempdir");
        let creds = crate::pki::load_or_create(dir.path(), &[]).expect("credentials");
        let config = client_config(&creds).expect("client config");
        assert!(config.client_auth_cert_resolver.has_certs());
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);

        let broken = Credentials { kubelet_client_key_pem: "not a key".into(), ..creds };
        assert!(matches!(client_config(&broken), Err(TlsError::Pem)));
    }
}
