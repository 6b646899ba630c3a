//! The agent's "kubelet server": the HTTPS endpoint the API server calls for container logs
//! (`GET /containerLogs/{ns}/{pod}/{container}`), `kubectl exec` sessions
//! (`GET|POST /exec/{ns}/{pod}/{container}` upgraded to a WebSocket) and `kubectl port-forward`
//! (`GET|POST /portForward/{ns}/{pod}` upgraded to SPDY/3.1, natively or tunnelled in a
//! WebSocket). Clients must present a certificate signed by the cluster CA; only pods bound to
//! this node are served.
//!
//! [`tls`] builds the TLS side, [`logs`] reads CRI log files, [`channel`] frames the WebSocket
//! channel protocol, [`exec`] bridges a WebSocket to a runtime exec session, [`resolve`] maps a
//! pod and container name to a runtime container, [`spdy`] frames SPDY/3.1 and [`portforward`]
//! serves port-forward connections over it.

pub mod channel;
pub mod exec;
pub mod logs;
pub mod portforward;
pub mod resolve;
pub mod spdy;
pub mod tls;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Path, RawQuery, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use k8s_openapi::jiff::Timestamp;
use skiff_api::error::ApiError;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

pub use resolve::{BoundPod, BoundPods};

use crate::runtime::ContainerRuntime;

/// The kubelet's port.
pub const DEFAULT_PORT: u16 = 10250;
/// A TLS handshake that takes longer is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and for whom the kubelet server runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamingConfig {
    /// Default `0.0.0.0:10250`; port 0 picks a free port (published in the Node).
    pub bind: SocketAddr,
    /// The cluster CA (PEM): client certificates must chain to it.
    pub client_ca_pem: String,
}

impl StreamingConfig {
    /// All addresses, port 10250.
    pub fn new(client_ca_pem: impl Into<String>) -> StreamingConfig {
        StreamingConfig {
            bind: SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), DEFAULT_PORT),
            client_ca_pem: client_ca_pem.into(),
        }
    }
}

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot set up the kubelet server's TLS")]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {addr}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

/// What the handlers read: the node's pods and its runtime.
pub struct ServerState {
    pub pods: Arc<BoundPods>,
    pub runtime: Arc<dyn ContainerRuntime>,
}

/// A running kubelet server.
#[derive(Debug)]
pub struct KubeletServer {
    /// The bound address (the real port when configured with 0).
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl KubeletServer {
    /// Binds `config.bind` and serves, with a fresh certificate for `names`.
    pub async fn start(
        config: &StreamingConfig,
        names: &[String],
        state: Arc<ServerState>,
    ) -> Result<KubeletServer, ServerError> {
        let tls = tls::server_config(names, &config.client_ca_pem)?;
        let listener =
            TcpListener::bind(config.bind).await.map_err(|source| ServerError::Listen { addr: config.bind, source })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Listen { addr: config.bind, source })?;
        let (shutdown, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, TlsAcceptor::from(Arc::new(tls)), router(state), stopped));
        tracing::info!(%addr, "kubelet server listening");
        Ok(KubeletServer { addr, shutdown, task })
    }

    /// Stops accepting and drops every open connection.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    service: Router,
    mut stopped: watch::Receiver<bool>,
) {
    // Dropping the set when the loop ends aborts the open connections.
    let mut connections = JoinSet::new();
    loop {
        let tcp = tokio::select! {
            _ = stopped.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!(error = %e, "kubelet server: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, service) = (acceptor.clone(), service.clone());
        connections.spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "kubelet server: TLS handshake refused");
                    return;
                }
                Err(_) => return,
            };
            let svc = TowerToHyperService::new(service);
            let _ =
                auto::Builder::new(TokioExecutor::new()).serve_connection_with_upgrades(TokioIo::new(tls), svc).await;
        });
    }
}

/// The routes.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/containerLogs/{namespace}/{pod}/{container}", get(container_logs))
        .route("/exec/{namespace}/{pod}/{container}", any(exec))
        .route("/portForward/{namespace}/{pod}", any(port_forward))
        .fallback(|| async { status_response(&ApiError::not_found_path()) })
        .with_state(state)
}

/// A Kubernetes `Status` as the response.
pub fn status_response(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(&e.to_status()).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// The container instances of a pod, as a 500 Status when the runtime fails.
async fn list(state: &ServerState, uid: &str) -> Result<Vec<crate::runtime::ContainerInfo>, ApiError> {
    state.runtime.list_containers(uid).await.map_err(|e| ApiError::internal(e.to_string()))
}

async fn container_logs(
    State(state): State<Arc<ServerState>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let opts = match logs::parse_query(query.as_deref().unwrap_or(""), Timestamp::now()) {
        Ok(o) => o,
        Err(e) => return status_response(&ApiError::bad_request(e.to_string())),
    };
    let found = async {
        let entry = resolve::bound_container(&state.pods, &namespace, &pod, &container)?;
        let all = list(&state, &entry.uid).await?;
        let info = resolve::log_instance(&all, &pod, &container, opts.previous)?;
        Ok::<_, ApiError>((entry.uid, info.id.clone()))
    };
    let (uid, id) = match found.await {
        Ok(f) => f,
        Err(e) => return status_response(&e),
    };
    let path = state.runtime.log_path(&id);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(8);
    let runtime = state.runtime.clone();
    let running = move || {
        let (runtime, uid, id) = (runtime.clone(), uid.clone(), id.clone());
        async move { runtime.list_containers(&uid).await.is_ok_and(|all| all.iter().any(|c| c.id == id && c.is_running())) }
    };
    tokio::spawn(async move {
        if let Err(e) = logs::stream_log(path, opts, running, tx).await {
            tracing::warn!(error = %e, "cannot stream a container log");
        }
    });
    let body = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|c| c.map(|v| Ok::<_, std::io::Error>(Bytes::from(v))))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn exec(
    State(state): State<Arc<ServerState>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let (mut parts, _body) = request.into_parts();
    let params = match exec::parse_exec_query(parts.uri.query().unwrap_or("")) {
        Ok(p) => p,
        Err(e) => return status_response(&ApiError::bad_request(e.to_string())),
    };
    let found = async {
        let entry = resolve::bound_container(&state.pods, &namespace, &pod, &container)?;
        let all = list(&state, &entry.uid).await?;
        Ok::<_, ApiError>(resolve::exec_instance(&all, &container)?.id.clone())
    };
    let id = match found.await {
        Ok(id) => id,
        Err(e) => return status_response(&e),
    };
    // The contract allows the upgrade on POST too (SPDY's verb); the WebSocket handshake is the same.
    if parts.method == Method::POST {
        parts.method = Method::GET;
    }
    let Ok(ws) = WebSocketUpgrade::from_request_parts(&mut parts, &()).await else {
        return status_response(&ApiError::bad_request("Upgrade request required"));
    };
    let ws = ws.protocols(channel::Protocol::OFFERED);
    let Some(protocol) = ws.selected_protocol().and_then(|v| v.to_str().ok()).and_then(channel::Protocol::from_name)
    else {
        let offered: Vec<String> = ws.requested_protocols().filter_map(|v| v.to_str().ok()).map(String::from).collect();
        return status_response(&ApiError::bad_request(format!(
            "requested protocol(s) are not supported: {offered:?}; supports {:?}",
            channel::Protocol::OFFERED
        )));
    };
    ws.on_upgrade(move |socket| async move {
        let request = params.request();
        let start = async { state.runtime.exec_stream(&id, &request).await };
        exec::serve(socket, protocol, params, start).await;
    })
}

/// `GET|POST /portForward/{namespace}/{pod}`: the kubelet's `getPortForward`. A WebSocket
/// handshake offering [`portforward::TUNNEL_PROTOCOL`] tunnels SPDY in binary messages;
/// `Upgrade: SPDY/3.1` with `X-Stream-Protocol-Version: portforward.k8s.io` speaks it natively.
async fn port_forward(
    State(state): State<Arc<ServerState>>,
    Path((namespace, pod)): Path<(String, String)>,
    request: Request,
) -> Response {
    let (mut parts, _body) = request.into_parts();
    let Some(entry) = state.pods.get(&namespace, &pod) else {
        return status_response(&ApiError::new(404, "NotFound", "pod does not exist"));
    };
    let sandbox = match state.runtime.sandbox(&entry.uid).await {
        Ok(Some(sb)) => sb,
        Ok(None) => {
            return status_response(&ApiError::internal(format!(
                "failed to find sandboxID for pod {pod}_{namespace}({})",
                entry.uid
            )));
        }
        Err(e) => return status_response(&ApiError::internal(e.to_string())),
    };
    // As the CRI streaming server: the sandbox names the pod, the UID stays empty.
    let target = portforward::Target { pod: sandbox.id.clone(), uid: String::new() };
    let (runtime, uid) = (state.runtime.clone(), entry.uid.clone());
    let dial: portforward::Dialer = Arc::new(move |port| {
        let (runtime, uid) = (runtime.clone(), uid.clone());
        Box::pin(async move { runtime.port_forward(&uid, port).await.map_err(|e| e.to_string()) })
    });

    let upgrade = parts.headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or("").trim().to_string();
    if upgrade.eq_ignore_ascii_case("websocket") {
        if parts.method == Method::POST {
            parts.method = Method::GET;
        }
        let Ok(ws) = WebSocketUpgrade::from_request_parts(&mut parts, &()).await else {
            return status_response(&ApiError::bad_request("Upgrade request required"));
        };
        let ws = ws.protocols([portforward::TUNNEL_PROTOCOL]);
        if ws.selected_protocol().is_none() {
            let offered: Vec<String> =
                ws.requested_protocols().filter_map(|v| v.to_str().ok()).map(String::from).collect();
            return status_response(&ApiError::bad_request(format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports [{:?}]",
                portforward::TUNNEL_PROTOCOL
            )));
        }
        return ws.on_upgrade(move |socket| portforward::serve_websocket(socket, target, dial));
    }
    if !upgrade.to_ascii_lowercase().starts_with("spdy/3.1") {
        return status_response(&ApiError::bad_request(format!(
            "unable to upgrade: missing upgrade headers in request: Upgrade {upgrade:?}"
        )));
    }
    let offered: Vec<String> = parts
        .headers
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if offered.is_empty() {
        return status_response(&ApiError::bad_request("unable to upgrade: X-Stream-Protocol-Version is required"));
    }
    if !offered.iter().any(|p| p == portforward::PROTOCOL) {
        let e = ApiError::new(
            403,
            "Forbidden",
            format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts [{:?}]",
                portforward::PROTOCOL
            ),
        );
        let mut resp = status_response(&e);
        resp.headers_mut()
            .insert("x-accepted-stream-protocol-versions", HeaderValue::from_static(portforward::PROTOCOL));
        return resp;
    }
    let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
        return status_response(&ApiError::bad_request("unable to upgrade: the connection cannot be upgraded"));
    };
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => portforward::serve(TokioIo::new(upgraded), target, dial).await,
            Err(e) => tracing::debug!(error = %e, "port-forward: the SPDY upgrade did not complete"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "SPDY/3.1")
        .header("x-stream-protocol-version", portforward::PROTOCOL)
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
