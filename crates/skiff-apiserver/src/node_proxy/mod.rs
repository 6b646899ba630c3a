//! The pod subresources a node agent serves, proxied: `GET pods/{name}/log` streams the agent's
//! `/containerLogs/...`, `GET|POST pods/{name}/exec` splices a WebSocket session with the agent's
//! `/exec/...` (the streaming contract, `notes/streaming-contract.md`), and `GET|POST
//! pods/{name}/portforward` splices the agent's `/portForward/...` (SPDY/3.1, natively upgraded or
//! tunnelled in a WebSocket; the bytes pass through untouched).
//!
//! These requests are routed here before their body is read: exec needs the raw request's upgrade
//! (`hyper::upgrade::on`). The handler answers as soon as the agent's response head arrives; the
//! stream then runs on its own, counted in `apiserver_longrunning_requests` (see [`crate::metrics`]).

pub mod dial;
pub mod location;
pub mod options;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use skiff_api::ApiError;
use skiff_api::resource::{self, Subresource};

use crate::App;
use crate::request::Target;
use crate::response;
use dial::{ProxiedBody, open};
use location::{NodeEndpoint, node_endpoint, pod_node};
use options::{ExecOptions, LogOptions, choose_container};

/// The request headers of a WebSocket handshake forwarded to the agent.
const FORWARDED_REQUEST_HEADERS: [&str; 5] =
    ["upgrade", "connection", "sec-websocket-key", "sec-websocket-version", "sec-websocket-protocol"];

/// The agent's `101` headers passed back to the client.
const FORWARDED_UPGRADE_HEADERS: [&str; 4] =
    ["upgrade", "connection", "sec-websocket-accept", "sec-websocket-protocol"];

/// The SPDY handshake's protocol negotiation header (port-forward), forwarded both ways.
const STREAM_PROTOCOL_HEADER: &str = "x-stream-protocol-version";

/// How much of an agent's error body is read, and for how long.
const ERROR_BODY_LIMIT: usize = 64 * 1024;
const ERROR_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether this request is one [`serve`] handles (routed before the body is collected).
pub fn handles(t: &Target) -> bool {
    t.resource.kind == "Pod"
        && t.name.is_some()
        && matches!(t.subresource, Some(Subresource::Log | Subresource::Exec | Subresource::PortForward))
}

/// Serves `pods/{name}/log` or `pods/{name}/exec`.
pub async fn serve(app: Arc<App>, t: &Target, parts: Parts) -> Response {
    let result = match t.subresource {
        Some(Subresource::Log) => logs(&app, t, parts).await,
        Some(Subresource::Exec) => exec(&app, t, parts).await,
        Some(Subresource::PortForward) => port_forward(&app, t, parts).await,
        _ => Err(ApiError::not_found_path()),
    };
    result.unwrap_or_else(|e| response::error(&e))
}

fn pod_name(t: &Target) -> Result<&str, ApiError> {
    t.name.as_deref().ok_or_else(ApiError::not_found_path)
}

/// The agent endpoint of the node `node` (404 when the Node does not exist, as upstream).
fn endpoint_of(app: &App, node: &str) -> Result<NodeEndpoint, ApiError> {
    let nodes = resource::lookup("", "v1", "nodes").ok_or_else(|| ApiError::internal("no nodes resource"))?;
    let target = Target { resource: nodes, namespace: None, name: Some(node.to_string()), subresource: None };
    node_endpoint(&app.registry.get(&target, node)?.parse())
}

/// `GET pods/{name}/log`: validate (`PodLogOptions`), pick the container, then stream the agent's
/// answer. An unscheduled pod has no log location: upstream then answers `204 No Content`.
async fn logs(app: &Arc<App>, t: &Target, mut parts: Parts) -> Result<Response, ApiError> {
    if parts.method != Method::GET {
        return Err(ApiError::method_not_allowed(format!("{} is not supported on this resource path", parts.method)));
    }
    let name = pod_name(t)?;
    let opts = LogOptions::parse(parts.uri.query())?;
    opts.validate(name)?;
    let pod = app.registry.get(t, name)?.parse();
    let container = choose_container(&pod, opts.container.as_deref())?;
    let Some(node) = pod_node(&pod) else {
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        return Ok(resp);
    };
    let ep = endpoint_of(app, node)?;
    let mut path = format!("/containerLogs/{}/{name}/{container}", skiff_api::meta::namespace(&pod));
    let query = opts.agent_query();
    if !query.is_empty() {
        path = format!("{path}?{query}");
    }
    let url = format!("https://{}{path}", ep.authority());
    let failed = |e: &dyn std::fmt::Display| ApiError::new(500, "", format!("Get {url:?}: {e}"));
    let (mut sender, conn) = open(&app.kubelet_tls, &ep).await.map_err(|e| failed(&e))?;
    let req = http::Request::get(&path)
        .header(header::HOST, ep.authority())
        .body(Empty::<Bytes>::new())
        .map_err(|e| failed(&e))?;
    let resp = sender.send_request(req).await.map_err(|e| failed(&e))?;
    if !resp.status().is_success() {
        return Ok(agent_error(resp.status(), &read_error_body(resp.into_body()).await, name));
    }
    let gauge = app.metrics.long_running("connect", "pods/log");
    let body = ProxiedBody::new(resp.into_body(), conn, Some(gauge));
    if upgrade_kind(&parts.headers) == UpgradeKind::WebSocket {
        return log_websocket(&mut parts, body).await;
    }
    let mut out = Response::new(Body::new(body));
    out.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(out)
}

/// The log stream over a WebSocket, as the apiserver streams any reader to a WebSocket request
/// (`wsstream.NewReader` with its default protocols): each chunk one binary message
/// (`binary.k8s.io`, or no subprotocol), or one text message in base64
/// (`base64.binary.k8s.io`); a normal close at the end.
async fn log_websocket(parts: &mut Parts, body: ProxiedBody) -> Result<Response, ApiError> {
    use axum::extract::FromRequestParts;
    use axum::extract::ws::{Message, WebSocketUpgrade};
    use base64::Engine;

    let ws = WebSocketUpgrade::from_request_parts(parts, &())
        .await
        .map_err(|e| ApiError::bad_request(format!("the WebSocket upgrade failed: {}", e.body_text())))?;
    let ws = ws.protocols(["binary.k8s.io", "base64.binary.k8s.io"]);
    let base64 = ws.selected_protocol().is_some_and(|p| p == "base64.binary.k8s.io");
    Ok(ws.on_upgrade(move |mut socket| async move {
        let mut body = std::pin::pin!(body);
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(chunk) = frame.into_data() else { continue };
            let message = if base64 {
                Message::Text(base64::engine::general_purpose::STANDARD.encode(&chunk).into())
            } else {
                Message::Binary(chunk)
            };
            if socket.send(message).await.is_err() {
                return;
            }
        }
        let _ = socket.send(Message::Close(None)).await;
    }))
}

/// What kind of upgrade a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeKind {
    /// No `Connection: Upgrade`.
    None,
    WebSocket,
    /// `SPDY/3.1`, kubectl's fallback when the WebSocket handshake fails.
    Spdy,
    Other(String),
}

/// Reads the `Connection`/`Upgrade` headers as `httpstream.IsUpgradeRequest` does.
pub fn upgrade_kind(headers: &HeaderMap) -> UpgradeKind {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    if !connection_upgrade {
        return UpgradeKind::None;
    }
    let upgrade = headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or("").trim();
    if upgrade.eq_ignore_ascii_case("websocket") {
        UpgradeKind::WebSocket
    } else if upgrade.to_ascii_uppercase().starts_with("SPDY/") {
        UpgradeKind::Spdy
    } else {
        UpgradeKind::Other(upgrade.to_string())
    }
}

/// The 400 for an exec request that is not a WebSocket handshake. kubectl falls back to SPDY when its
/// WebSocket handshake gets any other answer than 101, so every refusal of the request itself
/// (unknown pod, bad container...) is checked before this one and reaches kubectl either way.
pub fn refuse_upgrade(kind: &UpgradeKind) -> ApiError {
    match kind {
        UpgradeKind::None | UpgradeKind::WebSocket => ApiError::bad_request("Upgrade request required"),
        UpgradeKind::Spdy => ApiError::bad_request(
            "SPDY streaming is not supported: exec is served over WebSocket only (subprotocol v5.channel.k8s.io or v4.channel.k8s.io)",
        ),
        UpgradeKind::Other(p) => ApiError::bad_request(format!(
            "unsupported upgrade protocol {p:?}: exec is served over WebSocket only (subprotocol v5.channel.k8s.io or v4.channel.k8s.io)"
        )),
    }
}

/// `GET|POST pods/{name}/exec`: validate, pick the container, find the node's agent, forward the
/// WebSocket handshake; on the agent's 101 answer the client 101 and copy bytes both ways.
async fn exec(app: &Arc<App>, t: &Target, mut parts: Parts) -> Result<Response, ApiError> {
    if parts.method != Method::GET && parts.method != Method::POST {
        return Err(ApiError::method_not_allowed(format!("{} is not supported on this resource path", parts.method)));
    }
    let name = pod_name(t)?;
    let opts = ExecOptions::parse(parts.uri.query());
    opts.validate()?;
    let pod = app.registry.get(t, name)?.parse();
    let container = choose_container(&pod, opts.container.as_deref())?;
    let node =
        pod_node(&pod).ok_or_else(|| ApiError::bad_request(format!("pod {name} does not have a host assigned")))?;
    let ep = endpoint_of(app, node)?;
    let kind = upgrade_kind(&parts.headers);
    if kind != UpgradeKind::WebSocket {
        return Err(refuse_upgrade(&kind));
    }
    let client_upgrade = parts.extensions.remove::<OnUpgrade>().ok_or_else(|| refuse_upgrade(&UpgradeKind::None))?;
    let path = format!("/exec/{}/{name}/{container}?{}", skiff_api::meta::namespace(&pod), opts.agent_query());
    splice_upgrade(app, &ep, &parts, client_upgrade, &path, &[], "pods/exec").await
}

/// `GET|POST pods/{name}/portforward`: find the pod's node and forward the upgrade (a WebSocket
/// tunnelling SPDY, or `Upgrade: SPDY/3.1` with `X-Stream-Protocol-Version`) to the agent's
/// `/portForward/{ns}/{pod}`, as kube-apiserver's `PortForwardLocation` and upgrade-aware proxy do.
/// The pod's phase is not checked here (kubectl refuses a pod that is not Running itself).
async fn port_forward(app: &Arc<App>, t: &Target, mut parts: Parts) -> Result<Response, ApiError> {
    if parts.method != Method::GET && parts.method != Method::POST {
        return Err(ApiError::method_not_allowed(format!("{} is not supported on this resource path", parts.method)));
    }
    let name = pod_name(t)?;
    let pod = app.registry.get(t, name)?.parse();
    let node =
        pod_node(&pod).ok_or_else(|| ApiError::bad_request(format!("pod {name} does not have a host assigned")))?;
    let ep = endpoint_of(app, node)?;
    let kind = upgrade_kind(&parts.headers);
    if !matches!(kind, UpgradeKind::WebSocket | UpgradeKind::Spdy) {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    let client_upgrade =
        parts.extensions.remove::<OnUpgrade>().ok_or_else(|| ApiError::bad_request("Upgrade request required"))?;
    let path = format!("/portForward/{}/{name}", skiff_api::meta::namespace(&pod));
    splice_upgrade(app, &ep, &parts, client_upgrade, &path, &[STREAM_PROTOCOL_HEADER], "pods/portforward").await
}

/// Forwards an upgrade request to the agent at `path` (the handshake headers plus `extra`); on
/// the agent's 101 answers the client 101 with the agent's handshake headers (plus `extra`) and
/// copies bytes both ways until either side closes. Any other answer is passed through.
async fn splice_upgrade(
    app: &Arc<App>,
    ep: &NodeEndpoint,
    parts: &Parts,
    client_upgrade: OnUpgrade,
    path: &str,
    extra: &[&'static str],
    what: &'static str,
) -> Result<Response, ApiError> {
    let backend = |e: &dyn std::fmt::Display| ApiError::new(500, "", format!("error dialing backend: {e}"));
    let (mut sender, conn) = open(&app.kubelet_tls, ep).await.map_err(|e| backend(&e))?;
    let mut req = http::Request::builder().method(parts.method.clone()).uri(path).header(header::HOST, ep.authority());
    for h in FORWARDED_REQUEST_HEADERS.iter().chain(extra) {
        for v in parts.headers.get_all(*h) {
            req = req.header(*h, v);
        }
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| backend(&e))?;
    let mut resp = sender.send_request(req).await.map_err(|e| backend(&e))?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(pass_through(resp, conn));
    }

    let agent_upgrade = hyper::upgrade::on(&mut resp);
    let mut out = Response::new(Body::empty());
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for h in FORWARDED_UPGRADE_HEADERS.iter().chain(extra) {
        for v in resp.headers().get_all(*h) {
            out.headers_mut().append(*h, v.clone());
        }
    }
    let gauge = app.metrics.long_running("connect", what);
    tokio::spawn(async move {
        let _gauge = gauge;
        let _conn = conn;
        let (client, agent) = tokio::join!(client_upgrade, agent_upgrade);
        let (client, agent) = match (client, agent) {
            (Ok(c), Ok(a)) => (c, a),
            (c, a) => {
                tracing::debug!(client = c.is_ok(), agent = a.is_ok(), what, "upgrade did not complete");
                return;
            }
        };
        let (mut client, mut agent) = (TokioIo::new(client), TokioIo::new(agent));
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut agent).await {
            tracing::debug!(error = %e, what, "stream ended");
        }
    });
    Ok(out)
}

/// An agent's non-101 answer to a handshake, returned as it is.
fn pass_through(resp: http::Response<hyper::body::Incoming>, conn: dial::Connection) -> Response {
    let (head, body) = resp.into_parts();
    let mut out = Response::new(Body::new(ProxiedBody::new(body, conn, None)));
    *out.status_mut() = head.status;
    for h in [header::CONTENT_TYPE, header::CONTENT_LENGTH] {
        if let Some(v) = head.headers.get(&h) {
            out.headers_mut().insert(h, v.clone());
        }
    }
    out
}

/// The start of an agent's error body (empty when it cannot be read in time).
async fn read_error_body(body: hyper::body::Incoming) -> Bytes {
    let read = Limited::new(body, ERROR_BODY_LIMIT).collect();
    match tokio::time::timeout(ERROR_BODY_TIMEOUT, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        _ => Bytes::new(),
    }
}

/// The answer to a log request the agent refused. A `Status` body passes through with the agent's
/// code; any other body becomes the message of a `Status`, as `GenericHttpResponseChecker` does.
pub fn agent_error(code: StatusCode, body: &[u8], pod: &str) -> Response {
    if let Ok(status) = serde_json::from_slice::<Value>(body)
        && status.get("kind").and_then(Value::as_str) == Some("Status")
    {
        return response::raw(code.as_u16(), response::JSON, body.to_vec(), &[]);
    }
    let text = String::from_utf8_lossy(body).trim().to_string();
    let e = match code.as_u16() {
        400 => ApiError::bad_request(text),
        500 => ApiError::internal(text),
        n => {
            let reason = match n {
                401 => "Unauthorized",
                403 => "Forbidden",
                404 => "NotFound",
                503 => "ServiceUnavailable",
                _ => "",
            };
            let message = if text.is_empty() {
                format!(
                    "the server responded with the status code {n} but did not return more information (get pods/log {pod})"
                )
            } else {
                text
            };
            ApiError::new(n, reason, message)
        }
    };
    response::error(&e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn recognises_upgrade_requests() {
        let cases: &[(&[(&str, &str)], UpgradeKind)] = &[
            (&[("connection", "Upgrade"), ("upgrade", "websocket")], UpgradeKind::WebSocket),
            (&[("connection", "keep-alive, upgrade"), ("upgrade", "WebSocket")], UpgradeKind::WebSocket),
            (&[("connection", "Upgrade"), ("upgrade", "SPDY/3.1")], UpgradeKind::Spdy),
            (&[("upgrade", "websocket")], UpgradeKind::None),
            (&[], UpgradeKind::None),
            (&[("connection", "upgrade"), ("upgrade", "h2c")], UpgradeKind::Other("h2c".into())),
        ];
        for (h, kind) in cases {
            assert_eq!(&upgrade_kind(&headers(h)), kind, "{h:?}");
        }
    }

    #[test]
    fn refusals_are_400_statuses() {
        assert_eq!(refuse_upgrade(&UpgradeKind::None).message, "Upgrade request required");
        let e = refuse_upgrade(&UpgradeKind::Spdy);
        assert_eq!((e.code, e.reason), (400, "BadRequest"));
        assert!(e.message.contains("WebSocket only"), "{}", e.message);
    }

    async fn body_of(resp: Response) -> (u16, Value) {
        let code = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (code, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn agent_errors_keep_their_code() {
        let status = br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"previous terminated container \"c\" in pod \"p\" not found","reason":"BadRequest","code":400}"#;
        let (code, body) = body_of(agent_error(StatusCode::BAD_REQUEST, status, "p")).await;
        assert_eq!(code, 400);
        assert_eq!(body["message"], "previous terminated container \"c\" in pod \"p\" not found");

        let (code, body) = body_of(agent_error(StatusCode::BAD_REQUEST, b"container is waiting\n", "p")).await;
        assert_eq!(
            (code, body["reason"].as_str(), body["message"].as_str()),
            (400, Some("BadRequest"), Some("container is waiting"))
        );

        let (code, body) = body_of(agent_error(StatusCode::NOT_FOUND, b"", "p")).await;
        assert_eq!(code, 404);
        assert_eq!(body["reason"], "NotFound");
        assert_eq!(
            body["message"],
            "the server responded with the status code 404 but did not return more information (get pods/log p)"
        );

        let (code, body) = body_of(agent_error(StatusCode::INTERNAL_SERVER_ERROR, b"boom", "p")).await;
        assert_eq!((code, body["message"].as_str()), (500, Some("Internal error occurred: boom")));
    }
}
