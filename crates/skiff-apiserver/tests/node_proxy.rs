//! `pods/{name}/log` and `pods/{name}/exec` through the real API server, in process, to a fake node
//! agent: a TLS server that requires a client certificate chaining to the cluster CA (so a request
//! that reaches it proves the API server presented its kubelet-client certificate), serves
//! `/containerLogs/...` and a WebSocket `/exec/...`, and records what it was asked.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{AsyncBufReadExt, SinkExt, StreamExt};
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, AttachParams, LogParams, Patch, PatchParams, PostParams};
use parking_lot::Mutex;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::{Value, json};
use skiff_testkit::TestServer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// Every request of these tests must be answered within this (no hangs on a dead agent).
const ANSWER_WITHIN: Duration = Duration::from_secs(20);

type AgentBody = UnsyncBoxBody<Bytes, Infallible>;

// ------------------------------------------------------------------------------------ fake agent

/// What the fake agent was asked. It knows the pods `web` and `multi` of `default`.
#[derive(Debug, Clone)]
struct Seen {
    path_and_query: String,
    headers: HeaderMap,
    client_cert: Option<Vec<u8>>,
}

struct Agent {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// A followed log sends its second line only when this is notified.
    release: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn full(code: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<AgentBody> {
    let mut r = Response::new(Full::new(body.into()).boxed_unsync());
    *r.status_mut() = code;
    r.headers_mut().insert(header::CONTENT_TYPE, content_type.parse().expect("content type"));
    r
}

fn query_flag(query: &str, name: &str) -> bool {
    form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == name && v == "true")
}

impl Agent {
    /// Starts the fake agent trusting `ca_pem` for client certificates.
    async fn start(ca_pem: &str) -> Agent {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
            roots.add(cert.expect("CA PEM")).expect("add CA");
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .expect("client verifier");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("self-signed serving cert");
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("server config");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind agent");
        let addr = listener.local_addr().expect("agent addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let release = Arc::new(Notify::new());
        let (seen2, release2) = (seen.clone(), release.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (acceptor, seen, release) = (acceptor.clone(), seen2.clone(), release2.clone());
                tokio::spawn(async move {
                    // A client without a certificate from the CA fails here.
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let client_cert =
                        tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.as_ref().to_vec());
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (seen, release, client_cert) = (seen.clone(), release.clone(), client_cert.clone());
                        async move { Ok::<_, Infallible>(Agent::handle(req, seen, release, client_cert)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Agent { addr, seen, release, task }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }

    fn handle(
        mut req: Request<Incoming>,
        seen: Arc<Mutex<Vec<Seen>>>,
        release: Arc<Notify>,
        client_cert: Option<Vec<u8>>,
    ) -> Response<AgentBody> {
        let path_and_query = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
        seen.lock().push(Seen { path_and_query: path_and_query.clone(), headers: req.headers().clone(), client_cert });
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match parts.as_slice() {
            ["containerLogs", "default", pod @ ("web" | "multi"), container] => {
                if query_flag(&query, "previous") {
                    let s = status(
                        400,
                        "BadRequest",
                        &format!("previous terminated container \"{container}\" in pod \"{pod}\" not found"),
                    );
                    return full(StatusCode::BAD_REQUEST, "application/json", s.to_string());
                }
                let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
                let follow = query_flag(&query, "follow");
                let container = container.to_string();
                tokio::spawn(async move {
                    let _ = tx.send(Ok(Frame::data(Bytes::from(format!("{container} one\n"))))).await;
                    if follow {
                        release.notified().await;
                        let _ = tx.send(Ok(Frame::data(Bytes::from(format!("{container} two\n"))))).await;
                    }
                });
                let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
                let mut r = Response::new(body.boxed_unsync());
                r.headers_mut().insert(header::CONTENT_TYPE, "text/plain".parse().expect("ct"));
                r
            }
            ["containerLogs", ns, pod, _] => full(
                StatusCode::NOT_FOUND,
                "application/json",
                status(404, "NotFound", &format!("pod \"{ns}/{pod}\" is not known to this node")).to_string(),
            ),
            ["exec", "default", "web" | "multi", _] => {
                let is_ws =
                    req.headers().get(header::UPGRADE).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
                let Some(key) = req.headers().get("sec-websocket-key").cloned().filter(|_| is_ws) else {
                    return full(StatusCode::BAD_REQUEST, "text/plain", "not a websocket handshake");
                };
                let offered: Vec<String> = req
                    .headers()
                    .get_all("sec-websocket-protocol")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(','))
                    .map(|p| p.trim().to_string())
                    .collect();
                let Some(protocol) =
                    ["v5.channel.k8s.io", "v4.channel.k8s.io"].into_iter().find(|p| offered.iter().any(|o| o == p))
                else {
                    return full(StatusCode::BAD_REQUEST, "text/plain", "no supported subprotocol");
                };
                let command: Vec<String> = form_urlencoded::parse(query.as_bytes())
                    .filter(|(k, _)| k == "command")
                    .map(|(_, v)| v.into_owned())
                    .collect();
                let stdin = query_flag(&query, "stdin");
                let upgrade = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    let Ok(upgraded) = upgrade.await else { return };
                    let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
                    let mut out = vec![1u8];
                    out.extend_from_slice(format!("ran {}\n", command.join(" ")).as_bytes());
                    let _ = ws.send(Message::binary(out)).await;
                    if stdin {
                        // Echo the first stdin frame on stdout.
                        while let Some(Ok(msg)) = ws.next().await {
                            if let Message::Binary(data) = msg
                                && data.first() == Some(&0)
                                && data.len() > 1
                            {
                                let mut echo = vec![1u8];
                                echo.extend_from_slice(&data[1..]);
                                let _ = ws.send(Message::binary(echo)).await;
                                break;
                            }
                        }
                    }
                    let mut done = vec![3u8];
                    done.extend_from_slice(br#"{"metadata":{},"status":"Success"}"#);
                    let _ = ws.send(Message::binary(done)).await;
                    let _ = ws.close(None).await;
                });
                let mut r = Response::new(Empty::new().boxed_unsync());
                *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                let h = r.headers_mut();
                h.insert(header::UPGRADE, "websocket".parse().expect("h"));
                h.insert(header::CONNECTION, "Upgrade".parse().expect("h"));
                h.insert("sec-websocket-accept", derive_accept_key(key.as_bytes()).parse().expect("h"));
                h.insert("sec-websocket-protocol", protocol.parse().expect("h"));
                r
            }
            _ => full(StatusCode::NOT_FOUND, "text/plain", "404 page not found"),
        }
    }
}

// ---------------------------------------------------------------------------------- API server

struct Cluster {
    server: TestServer,
    client: kube::Client,
    ca_pem: String,
    token: String,
}

impl Cluster {
    async fn start() -> Cluster {
        let server = TestServer::start().await;
        let client = server.client("skiff-node-proxy-test");
        let ca_pem = std::fs::read_to_string(server.data_dir().join("pki/ca.crt")).expect("ca");
        let token = server.server().app.token.clone();
        Cluster { server, client, ca_pem, token }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// A Node whose agent is at `address:port` (no address or port when `None`).
    async fn node(&self, name: &str, endpoint: Option<(&str, u16)>) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node: Node = serde_json::from_value(json!({"metadata": {"name": name}})).expect("node");
        nodes.create(&PostParams::default(), &node).await.expect("create node");
        let status = match endpoint {
            Some((ip, port)) => json!({"status": {
                "addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}),
            None => json!({"status": {"addresses": []}}),
        };
        nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("node status");
    }

    /// A pod with `containers`, bound to `node` (unscheduled when `None`).
    async fn pod(&self, name: &str, node: Option<&str>, containers: &[&str]) {
        let containers: Vec<Value> = containers.iter().map(|c| json!({"name": c, "image": "busybox"})).collect();
        let mut spec = json!({"containers": containers});
        if let Some(n) = node {
            spec["nodeName"] = json!(n);
        }
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).expect("pod");
        self.pods().create(&PostParams::default(), &pod).await.expect("create pod");
    }

    async fn tls(&self) -> tokio_rustls::client::TlsStream<TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut self.ca_pem.as_bytes()) {
            roots.add(cert.expect("CA PEM")).expect("add CA");
        }
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = TcpStream::connect(self.addr()).await.expect("connect");
        TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("127.0.0.1").expect("name"), tcp)
            .await
            .expect("tls to the API server")
    }

    /// A raw HTTPS request with the admin token; answers within [`ANSWER_WITHIN`].
    async fn request(&self, method: &str, path: &str, extra: &[(&str, &str)]) -> Response<Incoming> {
        let tls = self.tls().await;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.expect("handshake");
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.addr().to_string())
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let req = req.body(Empty::<Bytes>::new()).expect("request");
        tokio::time::timeout(ANSWER_WITHIN, sender.send_request(req))
            .await
            .unwrap_or_else(|_| panic!("{method} {path} was not answered within {ANSWER_WITHIN:?}"))
            .expect("response")
    }

    /// A request's code and its whole body.
    async fn fetch(&self, method: &str, path: &str, extra: &[(&str, &str)]) -> (u16, HeaderMap, Bytes) {
        let resp = self.request(method, path, extra).await;
        let (code, headers) = (resp.status().as_u16(), resp.headers().clone());
        let body = tokio::time::timeout(ANSWER_WITHIN, resp.into_body().collect())
            .await
            .expect("body in time")
            .expect("body")
            .to_bytes();
        (code, headers, body)
    }

    /// The code and `Status` of a request expected to fail.
    async fn failure(&self, method: &str, path: &str, extra: &[(&str, &str)]) -> (u16, Value) {
        let (code, headers, body) = self.fetch(method, path, extra).await;
        assert_eq!(headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some("application/json"), "{path}");
        let status: Value = serde_json::from_slice(&body).unwrap_or_else(|_| panic!("a Status for {path}: {body:?}"));
        assert_eq!(status["kind"], "Status", "{path}");
        assert_eq!(status["code"], code, "{path}");
        (code, status)
    }

    /// Waits until `/metrics` counts `n` open log streams.
    async fn wait_for_open_logs(&self, n: usize) {
        let line = format!("apiserver_longrunning_requests{{verb=\"connect\",resource=\"pods/log\"}} {n}\n");
        let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
        loop {
            let metrics = self.fetch("GET", "/metrics", &[]).await.2;
            if String::from_utf8_lossy(&metrics).contains(&line) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "the open log streams never became {n}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

const WS_HEADERS: [(&str, &str); 4] = [
    ("connection", "Upgrade"),
    ("upgrade", "websocket"),
    ("sec-websocket-version", "13"),
    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
];

/// The next message, which must be binary.
async fn next_binary<S>(ws: &mut WebSocketStream<S>) -> Vec<u8>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match tokio::time::timeout(ANSWER_WITHIN, ws.next()).await.expect("a message in time") {
        Some(Ok(Message::Binary(b))) => b.to_vec(),
        other => panic!("expected a binary message, got {other:?}"),
    }
}

/// One cluster with one agent-backed node `n1`, pods `web` (container `app`) and `multi` on it.
async fn setup() -> (Cluster, Agent) {
    let cluster = Cluster::start().await;
    let agent = Agent::start(&cluster.ca_pem).await;
    cluster.node("n1", Some(("127.0.0.1", agent.addr.port()))).await;
    cluster.pod("web", Some("n1"), &["app"]).await;
    cluster.pod("multi", Some("n1"), &["a", "b"]).await;
    (cluster, agent)
}

// --------------------------------------------------------------------------------------- tests

#[tokio::test]
async fn logs_are_streamed_from_the_agent_with_the_client_certificate() {
    let (cluster, agent) = setup().await;

    let (code, headers, body) = cluster
        .fetch(
            "GET",
            "/api/v1/namespaces/default/pods/web/log?tailLines=5&timestamps=true&limitBytes=100&sinceTime=2024-01-02T03:04:05.250Z",
            &[],
        )
        .await;
    assert_eq!(code, 200, "{body:?}");
    assert_eq!(headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some("text/plain"));
    assert_eq!(body, Bytes::from("app one\n"));

    let seen = agent.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].path_and_query,
        "/containerLogs/default/web/app?timestamps=true&sinceTime=2024-01-02T03%3A04%3A05Z&tailLines=5&limitBytes=100"
    );
    // The agent saw the API server's kubelet-client certificate.
    let pem = std::fs::read_to_string(cluster.server.data_dir().join("pki/kubelet-client.crt")).expect("client cert");
    let der: Vec<CertificateDer> = rustls_pemfile::certs(&mut pem.as_bytes()).collect::<Result<_, _>>().expect("pem");
    assert_eq!(seen[0].client_cert.as_deref(), Some(der[0].as_ref()));
    assert!(seen[0].headers.get(header::AUTHORIZATION).is_none(), "the admin token is not passed on");

    // Through the kube client too, naming the container.
    let text = cluster
        .pods()
        .logs("multi", &LogParams { container: Some("b".into()), ..LogParams::default() })
        .await
        .expect("kube logs");
    assert_eq!(text, "b one\n");
    cluster.stop().await;
}

#[tokio::test]
async fn followed_logs_are_flushed_as_they_arrive() {
    let (cluster, agent) = setup().await;
    let stream = cluster
        .pods()
        .log_stream("web", &LogParams { follow: true, ..LogParams::default() })
        .await
        .expect("log stream");
    let mut lines = stream.lines();
    // The first line arrives while the agent still holds the second one back.
    let first = tokio::time::timeout(ANSWER_WITHIN, lines.next()).await.expect("first line in time");
    assert_eq!(first.expect("a line").expect("read"), "app one");
    assert_eq!(agent.seen()[0].path_and_query, "/containerLogs/default/web/app?follow=true");
    let metrics = cluster.fetch("GET", "/metrics", &[]).await.2;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("apiserver_longrunning_requests{verb=\"connect\",resource=\"pods/log\"} 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("apiserver_request_total{verb=\"connect\",resource=\"pods/log\",code=\"200\"} 1\n"));

    agent.release.notify_one();
    let second = tokio::time::timeout(ANSWER_WITHIN, lines.next()).await.expect("second line in time");
    assert_eq!(second.expect("a line").expect("read"), "app two");
    let end = tokio::time::timeout(ANSWER_WITHIN, lines.next()).await.expect("the end in time");
    assert!(end.is_none(), "the stream ends when the agent ends it");
    drop(lines);

    // The stream is no longer counted once it is over.
    cluster.wait_for_open_logs(0).await;

    // A client that goes away mid-stream ends the stream too (the agent still holds a line back).
    let stream = cluster
        .pods()
        .log_stream("web", &LogParams { follow: true, ..LogParams::default() })
        .await
        .expect("log stream");
    let mut lines = stream.lines();
    let first = tokio::time::timeout(ANSWER_WITHIN, lines.next()).await.expect("first line in time");
    assert_eq!(first.expect("a line").expect("read"), "app one");
    cluster.wait_for_open_logs(1).await;
    drop(lines);
    cluster.wait_for_open_logs(0).await;
    cluster.stop().await;
}

#[tokio::test]
async fn agent_errors_pass_through() {
    let (cluster, _agent) = setup().await;
    let (code, status) = cluster.failure("GET", "/api/v1/namespaces/default/pods/web/log?previous=true", &[]).await;
    assert_eq!(code, 400);
    assert_eq!(status["message"], "previous terminated container \"app\" in pod \"web\" not found");

    cluster.pod("stranger", Some("n1"), &["app"]).await;
    let (code, status) = cluster.failure("GET", "/api/v1/namespaces/default/pods/stranger/log", &[]).await;
    assert_eq!((code, status["reason"].as_str()), (404, Some("NotFound")));
    assert_eq!(status["message"], "pod \"default/stranger\" is not known to this node");
    cluster.stop().await;
}

/// The conformance test "Pods should support retrieving logs from the container over websockets":
/// `pods/{n}/log` with a WebSocket upgrade streams the log as messages, then closes.
#[tokio::test]
async fn logs_stream_over_websocket() {
    let (cluster, _agent) = setup().await;
    for (protocol, base64) in [(Some("binary.k8s.io"), false), (Some("base64.binary.k8s.io"), true), (None, false)] {
        let url = format!("wss://{}/api/v1/namespaces/default/pods/web/log?container=app", cluster.addr());
        let mut req = url.into_client_request().expect("ws request");
        req.headers_mut().insert(header::AUTHORIZATION, format!("Bearer {}", cluster.token).parse().expect("auth"));
        if let Some(p) = protocol {
            req.headers_mut().insert("sec-websocket-protocol", p.parse().expect("protocol"));
        }
        let (mut ws, resp) =
            tokio::time::timeout(ANSWER_WITHIN, tokio_tungstenite::client_async(req, cluster.tls().await))
                .await
                .expect("handshake in time")
                .expect("websocket handshake");
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(resp.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()), protocol);
        let mut text = Vec::new();
        loop {
            match tokio::time::timeout(ANSWER_WITHIN, ws.next()).await.expect("a message in time") {
                Some(Ok(Message::Binary(b))) if !base64 => text.extend_from_slice(&b),
                Some(Ok(Message::Text(t))) if base64 => {
                    use base64::Engine;
                    text.extend(base64::engine::general_purpose::STANDARD.decode(t.as_str()).expect("base64"));
                }
                Some(Ok(Message::Close(_))) | None => break,
                other => panic!("{protocol:?}: unexpected {other:?}"),
            }
        }
        assert_eq!(String::from_utf8_lossy(&text), "app one\n", "{protocol:?}");
    }
    cluster.stop().await;
}

#[tokio::test]
async fn exec_is_spliced_over_websocket() {
    let (cluster, agent) = setup().await;
    let url = format!(
        "wss://{}/api/v1/namespaces/default/pods/web/exec?command=echo&command=hi%20there&stdin=true&stdout=true&stderr=true",
        cluster.addr()
    );
    let mut req = url.into_client_request().expect("ws request");
    req.headers_mut().insert(header::AUTHORIZATION, format!("Bearer {}", cluster.token).parse().expect("auth"));
    req.headers_mut().insert("sec-websocket-protocol", "v5.channel.k8s.io".parse().expect("protocol"));
    let (mut ws, resp) = tokio::time::timeout(ANSWER_WITHIN, tokio_tungstenite::client_async(req, cluster.tls().await))
        .await
        .expect("handshake in time")
        .expect("websocket handshake");
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(resp.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()), Some("v5.channel.k8s.io"));

    assert_eq!(next_binary(&mut ws).await, b"\x01ran echo hi there\n");
    ws.send(Message::binary(b"\x00ping".to_vec())).await.expect("send stdin");
    assert_eq!(next_binary(&mut ws).await, b"\x01ping");
    let done = next_binary(&mut ws).await;
    assert_eq!(done[0], 3);
    let status: Value = serde_json::from_slice(&done[1..]).expect("status");
    assert_eq!(status["status"], "Success");
    match tokio::time::timeout(ANSWER_WITHIN, ws.next()).await.expect("close in time") {
        Some(Ok(Message::Close(_))) | None => {}
        other => panic!("expected the close, got {other:?}"),
    }

    let seen = agent.seen();
    assert_eq!(
        seen[0].path_and_query,
        "/exec/default/web/app?command=echo&command=hi+there&stdin=true&stdout=true&stderr=true&tty=false"
    );
    assert_eq!(seen[0].headers.get("sec-websocket-protocol").and_then(|v| v.to_str().ok()), Some("v5.channel.k8s.io"));
    assert!(seen[0].headers.get(header::AUTHORIZATION).is_none());

    // The kube client's exec (v5/v4 offered) works the same way.
    let mut attached = cluster
        .pods()
        .exec("multi", ["ls", "/"], &AttachParams::default().container("a").stderr(false))
        .await
        .expect("kube exec");
    let mut stdout = attached.stdout().expect("stdout");
    let status = attached.take_status().expect("status");
    let mut out = String::new();
    tokio::time::timeout(ANSWER_WITHIN, tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut out))
        .await
        .expect("stdout in time")
        .expect("read stdout");
    assert_eq!(out, "ran ls /\n");
    let status = tokio::time::timeout(ANSWER_WITHIN, status).await.expect("status in time").expect("a status");
    assert_eq!(status.status.as_deref(), Some("Success"));
    assert_eq!(
        agent.seen().last().map(|s| s.path_and_query.clone()).as_deref(),
        Some("/exec/default/multi/a?command=ls&command=%2F&stdin=false&stdout=true&stderr=false&tty=false")
    );
    cluster.stop().await;
}

#[tokio::test]
async fn exec_refuses_what_it_cannot_serve() {
    let (cluster, agent) = setup().await;
    let exec = "/api/v1/namespaces/default/pods/web/exec?command=ls&stdout=true";

    // No upgrade, or SPDY (kubectl's fallback): a 400 Status kubectl prints.
    let (code, status) = cluster.failure("POST", exec, &[]).await;
    assert_eq!((code, status["message"].as_str()), (400, Some("Upgrade request required")));
    let spdy = [("connection", "Upgrade"), ("upgrade", "SPDY/3.1"), ("x-stream-protocol-version", "v4.channel.k8s.io")];
    let (code, status) = cluster.failure("POST", exec, &spdy).await;
    assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")));
    assert!(status["message"].as_str().is_some_and(|m| m.contains("WebSocket only")), "{status}");

    let cases: &[(&str, u16, &str)] = &[
        ("/api/v1/namespaces/default/pods/web/exec?stdout=true", 400, "you must specify at least 1 command"),
        (
            "/api/v1/namespaces/default/pods/web/exec?command=ls",
            400,
            "you must specify at least 1 of stdin, stdout, stderr",
        ),
        (
            "/api/v1/namespaces/default/pods/web/exec?command=ls&stdout=true&container=nope",
            400,
            "container nope is not valid for pod web",
        ),
        (
            "/api/v1/namespaces/default/pods/multi/exec?command=ls&stdout=true",
            400,
            "a container name must be specified for pod multi, choose one of: [a b]",
        ),
        ("/api/v1/namespaces/default/pods/ghost/exec?command=ls&stdout=true", 404, "pods \"ghost\" not found"),
    ];
    for (path, code, message) in cases {
        // Refused the same whether or not the request is a WebSocket handshake.
        for extra in [&WS_HEADERS[..], &spdy[..]] {
            let (c, status) = cluster.failure("GET", path, extra).await;
            assert_eq!((c, status["message"].as_str()), (*code, Some(*message)), "{path}");
        }
    }
    assert!(agent.seen().is_empty(), "nothing reached the agent");
    cluster.stop().await;
}

#[tokio::test]
async fn log_requests_are_validated_before_the_agent() {
    let (cluster, agent) = setup().await;
    let cases: &[(&str, u16, &str)] = &[
        ("/api/v1/namespaces/default/pods/web/log?container=nope", 400, "container nope is not valid for pod web"),
        (
            "/api/v1/namespaces/default/pods/multi/log",
            400,
            "a container name must be specified for pod multi, choose one of: [a b]",
        ),
        (
            "/api/v1/namespaces/default/pods/web/log?tailLines=-1",
            422,
            "PodLogOptions \"web\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            "/api/v1/namespaces/default/pods/web/log?sinceSeconds=10&sinceTime=2024-01-02T03:04:05Z",
            422,
            "PodLogOptions \"web\" is invalid: : Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
        ),
        (
            "/api/v1/namespaces/default/pods/web/log?limitBytes=0",
            422,
            "PodLogOptions \"web\" is invalid: limitBytes: Invalid value: 0: must be greater than 0",
        ),
        ("/api/v1/namespaces/default/pods/ghost/log", 404, "pods \"ghost\" not found"),
    ];
    for (path, code, message) in cases {
        let (c, status) = cluster.failure("GET", path, &[]).await;
        assert_eq!((c, status["message"].as_str()), (*code, Some(*message)), "{path}");
    }
    let (code, _) = cluster.failure("POST", "/api/v1/namespaces/default/pods/web/log", &[]).await;
    assert_eq!(code, 405);
    assert!(agent.seen().is_empty(), "nothing reached the agent");
    cluster.stop().await;
}

#[tokio::test]
async fn unreachable_agents_are_errors_not_hangs() {
    let (cluster, _agent) = setup().await;

    // Unscheduled: exec is a 400; logs have no location, which upstream answers with 204.
    cluster.pod("pending", None, &["app"]).await;
    let (code, status) = cluster
        .failure("GET", "/api/v1/namespaces/default/pods/pending/exec?command=ls&stdout=true", &WS_HEADERS)
        .await;
    assert_eq!((code, status["message"].as_str()), (400, Some("pod pending does not have a host assigned")));
    let (code, _, body) = cluster.fetch("GET", "/api/v1/namespaces/default/pods/pending/log", &[]).await;
    assert_eq!((code, body.len()), (204, 0));

    // A node that publishes no address.
    cluster.node("bare", None).await;
    cluster.pod("on-bare", Some("bare"), &["app"]).await;
    for path in [
        "/api/v1/namespaces/default/pods/on-bare/log",
        "/api/v1/namespaces/default/pods/on-bare/exec?command=ls&stdout=true",
    ] {
        let (code, status) = cluster.failure("GET", path, &WS_HEADERS).await;
        assert_eq!(
            (code, status["message"].as_str()),
            (500, Some("no preferred addresses found; known addresses: []")),
            "{path}"
        );
    }

    // A node whose agent is down.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr").port();
    cluster.node("down", Some(("127.0.0.1", closed))).await;
    cluster.pod("on-down", Some("down"), &["app"]).await;
    let (code, status) = cluster
        .failure("GET", "/api/v1/namespaces/default/pods/on-down/exec?command=ls&stdout=true", &WS_HEADERS)
        .await;
    assert_eq!(code, 500);
    let message = status["message"].as_str().expect("message");
    assert!(
        message.starts_with(&format!("error dialing backend: dial tcp 127.0.0.1:{closed}: connect: ")),
        "{message}"
    );
    let (code, status) = cluster.failure("GET", "/api/v1/namespaces/default/pods/on-down/log", &[]).await;
    assert_eq!(code, 500);
    let message = status["message"].as_str().expect("message");
    assert!(
        message.starts_with(&format!("Get \"https://127.0.0.1:{closed}/containerLogs/default/on-down/app\": dial tcp")),
        "{message}"
    );

    // A pod bound to a node that does not exist.
    cluster.pod("on-ghost", Some("ghost"), &["app"]).await;
    let (code, status) = cluster.failure("GET", "/api/v1/namespaces/default/pods/on-ghost/log", &[]).await;
    assert_eq!((code, status["message"].as_str()), (404, Some("nodes \"ghost\" not found")));

    // A client without the cluster's certificate cannot talk to the agent at all.
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAll))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(_agent.addr).await.expect("connect agent");
    let refused = async {
        let mut tls =
            TlsConnector::from(Arc::new(config)).connect(ServerName::try_from("127.0.0.1").expect("name"), tcp).await?;
        // TLS 1.3 reports a missing client certificate on the first read.
        tokio::io::AsyncWriteExt::write_all(
            &mut tls,
            b"GET /containerLogs/default/web/app HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await?;
        let mut buf = [0u8; 64];
        let n = tokio::io::AsyncReadExt::read(&mut tls, &mut buf).await?;
        if n == 0 { Err(std::io::Error::other("closed")) } else { Ok(()) }
    };
    assert!(refused.await.is_err(), "the fake agent requires a client certificate");
    cluster.stop().await;
}

/// A verifier for the negative test above only.
#[derive(Debug)]
struct AcceptAll;

impl rustls::client::danger::ServerCertVerifier for AcceptAll {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
    }
}
