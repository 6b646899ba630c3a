//! A lean HTTPS client for the one-connection create benchmark: hyper's HTTP/1.1 connection API
//! over rustls on the calling thread's runtime, with nothing between the request and the
//! connection (no pool, no tower layers, no typed decoding of the whole answer).
//!
//! The `kube` client spends about as much CPU per create as the server does (a request is built,
//! serialized, passed through its layers, and the answer decoded into a typed `ConfigMap`), and on
//! one connection the client's time is in every cycle. This client measures what the server can
//! take; the `kube` client's figures stay beside it.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use secrecy::ExposeSecret;
use serde::Deserialize;

/// What a connection needs: the server's address, the CA that signed it, a bearer token.
pub struct Target {
    host: String,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    authorization: String,
}

impl Target {
    /// From a kubeconfig with a token user and a cluster CA (what `skiff server` writes).
    pub async fn from_kubeconfig(path: &Path) -> anyhow::Result<Target> {
        let kc = kube::config::Kubeconfig::read_from(path).context("read the kubeconfig")?;
        let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?;
        let host = config.cluster_url.host().context("the kubeconfig's server has no host")?.to_string();
        let port = config.cluster_url.port_u16().unwrap_or(443);
        let mut roots = rustls::RootCertStore::empty();
        for der in config.root_cert.iter().flatten() {
            roots.add(CertificateDer::from(der.clone()))?;
        }
        anyhow::ensure!(!roots.is_empty(), "the kubeconfig names no certificate authority");
        let token = config.auth_info.token.as_ref().context("the kubeconfig's user has no token")?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Target { host, port, tls: Arc::new(tls), authorization: format!("Bearer {}", token.expose_secret()) })
    }

    /// Opens one keep-alive connection; its driver runs as a task on the current runtime.
    pub async fn connect(&self) -> anyhow::Result<Connection<'_>> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(self.host.clone())?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone()).connect(name, tcp).await?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        Ok(Connection { target: self, send })
    }
}

/// One open connection to the API server.
pub struct Connection<'a> {
    target: &'a Target,
    send: SendRequest<Full<Bytes>>,
}

#[derive(Deserialize)]
struct Created {
    metadata: CreatedMeta,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreatedMeta {
    name: String,
    #[serde(default)]
    resource_version: String,
    #[serde(default)]
    uid: String,
}

impl Connection<'_> {
    /// POSTs `body` (a JSON object named `name`) to `path`; succeeds when the server answers
    /// 201 Created with that object, stored (a uid and a resourceVersion).
    pub async fn create(&mut self, path: &str, name: &str, body: Vec<u8>) -> anyhow::Result<()> {
        let request = http::Request::post(path)
            .header(http::header::HOST, &self.target.host)
            .header(http::header::AUTHORIZATION, &self.target.authorization)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        self.send.ready().await?;
        let response = self.send.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::ensure!(
            status == http::StatusCode::CREATED,
            "create {name}: {status}: {}",
            String::from_utf8_lossy(&body)
        );
        let created: Created = serde_json::from_slice(&body).with_context(|| format!("create {name}: the answer"))?;
        anyhow::ensure!(
            created.metadata.name == name
                && !created.metadata.uid.is_empty()
                && !created.metadata.resource_version.is_empty(),
            "create {name}: the answer is not the stored object"
        );
        Ok(())
    }
}
