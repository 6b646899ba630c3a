//! One HTTP/1.1-over-TLS connection to a node agent, and the response body that keeps it alive.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use super::location::NodeEndpoint;
use crate::metrics::LongRunning;

/// How long connecting to an agent and the TLS handshake may take together.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an agent could not be reached. The wording follows Go's `net.Dial` errors, which kubectl users
/// know from kube-apiserver (`dial tcp 10.0.0.5:10250: connect: connection refused`).
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("dial tcp {addr}: connect: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("dial tcp {addr}: i/o timeout")]
    Timeout { addr: String },
    #[error("{host:?} is not a valid server name")]
    Name { host: String },
    #[error("tls handshake with {addr}: {source}")]
    Tls { addr: String, source: std::io::Error },
    #[error("{0}")]
    Http(#[from] hyper::Error),
}

/// Aborts the connection task when dropped, so the agent sees the connection close as soon as the
/// client of the API server goes away.
pub struct Connection(JoinHandle<()>);

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connects to `ep` over TLS with `tls` and returns the request sender and the connection's driver.
/// Upgrades (`101 Switching Protocols`) are enabled.
pub async fn open(
    tls: &Arc<rustls::ClientConfig>,
    ep: &NodeEndpoint,
) -> Result<(SendRequest<Empty<Bytes>>, Connection), DialError> {
    let addr = ep.authority();
    let name = ServerName::try_from(ep.host.clone()).map_err(|_| DialError::Name { host: ep.host.clone() })?;
    let connect = async {
        let tcp = TcpStream::connect((ep.host.as_str(), ep.port))
            .await
            .map_err(|source| DialError::Connect { addr: addr.clone(), source })?;
        let _ = tcp.set_nodelay(true);
        TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|source| DialError::Tls { addr: addr.clone(), source })
    };
    let stream =
        tokio::time::timeout(DIAL_TIMEOUT, connect).await.map_err(|_| DialError::Timeout { addr: addr.clone() })??;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let task = tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "node agent connection ended");
        }
    });
    Ok((sender, Connection(task)))
}

/// An agent's response body, passed through to the API server's client. It owns the agent connection
/// (closed when the body is dropped) and, for streams, the long-running request's gauge.
pub struct ProxiedBody {
    body: Incoming,
    _conn: Connection,
    _gauge: Option<LongRunning>,
}

impl ProxiedBody {
    pub fn new(body: Incoming, conn: Connection, gauge: Option<LongRunning>) -> ProxiedBody {
        ProxiedBody { body, _conn: conn, _gauge: gauge }
    }
}

impl Body for ProxiedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
