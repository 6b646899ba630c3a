//! Starting and stopping the server: credentials, store, bootstrap objects, the TLS listener.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use skiff_store::{SqliteOptions, SqliteStore, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::{App, metrics, namespaces, node_proxy, pki, registry, router};

/// How to run the server.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub bind: IpAddr,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// How many recent changes the store keeps for watches to resume from (`None`: the default).
    pub history: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot set up the server's credentials")]
    Pki(#[from] pki::PkiError),
    #[error("cannot set up the client for node agents")]
    KubeletClient(#[from] node_proxy::tls::TlsError),
    #[error("cannot open the store")]
    Store(#[from] skiff_store::StoreError),
    #[error("cannot listen on {addr}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("cannot create the data directory {path}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("cannot create the built-in namespaces: {0}")]
    Bootstrap(skiff_api::ApiError),
}

/// A server that is accepting connections.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// `DATA_DIR/kubeconfig.yaml`, for kubectl.
    pub kubeconfig: PathBuf,
    pub app: Arc<App>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Runs until the accept loop ends (it does not, unless stopped).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Opens the embedded SQLite store (`DATA_DIR/state.db`) and starts serving (see [`start_with_store`]).
pub async fn start(config: Config) -> Result<RunningServer, ServerError> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir).map_err(|source| ServerError::DataDir { path: dir.clone(), source })?;
    let mut options = SqliteOptions::default();
    if let Some(h) = config.history {
        options.history_len = h;
    }
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("state.db"), options)?);
    start_with_store(config, store).await
}

/// Serves the API from `store` (SQLite, or etcd shared by several servers): makes sure credentials
/// and built-in namespaces exist, writes the kubeconfig, and starts accepting connections. Servers
/// that share one store must share their credentials too (copy `DATA_DIR/pki` from the first).
pub async fn start_with_store(config: Config, store: Arc<dyn Store>) -> Result<RunningServer, ServerError> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir).map_err(|source| ServerError::DataDir { path: dir.clone(), source })?;
    let creds = pki::load_or_create(dir, &[config.bind.to_string()])?;
    let tls = pki::server_tls_config(&creds)?;
    let kubelet_tls = Arc::new(node_proxy::tls::client_config(&creds)?);

    let addr = SocketAddr::new(config.bind, config.port);
    let listener = TcpListener::bind(addr).await.map_err(|source| ServerError::Listen { addr, source })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Listen { addr, source })?;
    let host = match addr.ip() {
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
        ip => ip.to_string(),
    };
    let address = format!("{host}:{}", addr.port());
    let app = Arc::new(App {
        registry: registry::Registry::new(store.clone()),
        token: creds.token.clone(),
        metrics: metrics::Metrics::default(),
        address: address.clone(),
        kubelet_tls,
    });
    namespaces::bootstrap(&app.registry).await.map_err(ServerError::Bootstrap)?;

    let kubeconfig = dir.join("kubeconfig.yaml");
    pki::write_private(&kubeconfig, pki::kubeconfig(&format!("https://{address}"), &creds).as_bytes())?;

    let (shutdown, mut stopped) = watch::channel(false);
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let service = router::router(app.clone());
    let cleaner = tokio::spawn(namespaces::run(app.clone(), shutdown.subscribe()));
    let task = tokio::spawn(async move {
        loop {
            let (tcp, _) = tokio::select! {
                _ = stopped.changed() => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let service = service.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let svc = TowerToHyperService::new(service);
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                    .await;
            });
        }
        cleaner.abort();
    });
    Ok(RunningServer { addr, kubeconfig, app, shutdown, task })
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// hyper (vendored, `vendor/hyper`) used to wake a connection's task when that task's own
    /// handler took the request body, so that tokio requeued the running task as a yield and woke
    /// another worker for it: one wasted wake-up of an idle thread per request with a body.
    #[tokio::test]
    async fn a_handler_reading_its_body_does_not_wake_its_own_connection() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let body = br#"{"kind":"ConfigMap"}"#;
        let head = format!("POST / HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n", body.len());
        client.write_all(head.as_bytes()).await.expect("write");
        client.write_all(body).await.expect("write");
        let echo = hyper::service::service_fn(|req: hyper::Request<Incoming>| async move {
            let body = req.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>(hyper::Response::new(Full::<Bytes>::new(body)))
        });
        let builder = auto::Builder::new(TokioExecutor::new());
        let mut conn = pin!(builder.serve_connection_with_upgrades(TokioIo::new(server), echo));
        let wakes = std::sync::Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        // One poll reads the request, runs the handler and writes the answer.
        assert!(matches!(conn.as_mut().poll(&mut Context::from_waker(&waker)), Poll::Pending));
        let mut answer = vec![0; 4096];
        let n = client.read(&mut answer).await.expect("read");
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with(r#"{"kind":"ConfigMap"}"#), "{answer}");
        assert_eq!(wakes.0.load(Ordering::Relaxed), 0, "the connection woke itself");
    }
}
