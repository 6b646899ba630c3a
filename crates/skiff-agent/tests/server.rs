//! The kubelet server over real TLS, with the fake runtime: container logs (whole, tailed,
//! followed, errors), `exec` over the WebSocket channel protocol (exit codes in the channel-3
//! Status, stdin, v4 negotiation, resize, a client that goes away), client-certificate
//! enforcement, and the wiring through `Agent::run` (the bound port in the Node, pods found
//! through the agent's watch).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::Value;
use skiff_agent::fake::FakeRuntime;
use skiff_agent::runtime::{ContainerConfig, ContainerRuntime, SandboxConfig, TerminalSize};
use skiff_agent::server::{BoundPod, BoundPods, KubeletServer, ServerState, StreamingConfig};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const WAIT: Duration = Duration::from_secs(10);

/// A CA and a client certificate it signed.
struct Pki {
    ca_pem: String,
    client_cert: CertificateDer<'static>,
    client_key: Vec<u8>,
}

fn pki(cn: &str) -> Pki {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.distinguished_name.push(DnType::CommonName, format!("{cn}-ca"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.clone().self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca, &ca_key);
    let key = KeyPair::generate().expect("key");
    let mut client = CertificateParams::new(Vec::<String>::new()).expect("params");
    client.distinguished_name.push(DnType::CommonName, cn);
    client.distinguished_name.push(DnType::OrganizationName, "system:masters");
    client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = client.signed_by(&key, &issuer).expect("client cert");
    Pki { ca_pem: ca_cert.pem(), client_cert: cert.der().clone(), client_key: key.serialize_der() }
}

/// Accepts any server certificate, as kube-apiserver does without `--kubelet-certificate-authority`.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn client_config(identity: Option<&Pki>) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)));
    let mut config = match identity {
        Some(p) => builder
            .with_client_auth_cert(
                vec![p.client_cert.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(p.client_key.clone())),
            )
            .expect("client auth"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

async fn connect(addr: SocketAddr, identity: Option<&Pki>) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").expect("name");
    TlsConnector::from(Arc::new(client_config(identity))).connect(name, tcp).await
}

struct Env {
    pki: Pki,
    runtime: Arc<FakeRuntime>,
    server: Option<KubeletServer>,
    sandbox: skiff_agent::runtime::SandboxInfo,
    dir: tempfile::TempDir,
}

const LOG: &str = "\
2024-01-02T03:04:05.000000001Z stdout F one
2024-01-02T03:04:06Z stderr P tw
2024-01-02T03:04:06.5Z stderr F o
";

impl Env {
    /// A server for pod `default/web` (uid `u1`) with containers `app` (running) and `gone`
    /// (not started), and pod `default/job` whose container `main` ran twice (both exited).
    async fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = Arc::new(FakeRuntime::new());
        let pods = Arc::new(BoundPods::default());
        let sandbox = runtime
            .run_sandbox(&SandboxConfig { pod_uid: "u1".into(), name: "web".into(), ..SandboxConfig::default() })
            .await
            .expect("sandbox");
        pods.set("default", "web", BoundPod { uid: "u1".into(), containers: vec!["app".into(), "gone".into()] });
        let env_dir = dir.path().to_path_buf();
        let mut env = Env { pki: pki("skiff-apiserver-kubelet-client"), runtime, server: None, sandbox, dir };
        let app = env.start("app", 0).await;
        std::fs::write(env.runtime.log_path(&app), LOG).expect("log");

        // A pod whose container exited twice: the newest is current, the one before previous.
        env.runtime.script("main", vec![skiff_agent::fake::Run::Exit { code: 1, after: Duration::ZERO }]);
        let job_sb = env
            .runtime
            .run_sandbox(&SandboxConfig { pod_uid: "u2".into(), name: "job".into(), ..SandboxConfig::default() })
            .await
            .expect("sandbox");
        for attempt in 0..2 {
            let id = env
                .runtime
                .start_container(
                    &job_sb,
                    &ContainerConfig {
                        name: "main".into(),
                        attempt,
                        log_path: env_dir.join(format!("main-{attempt}.log")),
                        ..ContainerConfig::default()
                    },
                )
                .await
                .expect("start");
            let line = format!("2024-01-02T03:04:0{attempt}Z stdout F attempt {attempt}\n");
            std::fs::write(env.runtime.log_path(&id), line).expect("log");
        }
        pods.set("default", "job", BoundPod { uid: "u2".into(), containers: vec!["main".into()] });

        let config =
            StreamingConfig { bind: "127.0.0.1:0".parse().expect("addr"), client_ca_pem: env.pki.ca_pem.clone() };
        let state = Arc::new(ServerState { pods, runtime: env.runtime.clone() });
        let names = skiff_agent::server::tls::serving_names("127.0.0.1", "node-a");
        env.server = Some(KubeletServer::start(&config, &names, state).await.expect("start the kubelet server"));
        env
    }

    async fn start(&self, name: &str, attempt: u32) -> String {
        let config = ContainerConfig {
            name: name.into(),
            attempt,
            log_path: self.dir.path().join(format!("{name}-{attempt}.log")),
            ..ContainerConfig::default()
        };
        self.runtime.start_container(&self.sandbox, &config).await.expect("start")
    }

    fn addr(&self) -> SocketAddr {
        self.server.as_ref().expect("server").addr
    }

    /// A GET over a fresh mutually-authenticated connection.
    async fn get(&self, path: &str) -> hyper::Response<hyper::body::Incoming> {
        let tls = connect(self.addr(), Some(&self.pki)).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.expect("handshake");
        tokio::spawn(conn);
        let req = hyper::Request::get(path)
            .header("host", "127.0.0.1")
            .body(http_body_util::Empty::<Bytes>::new())
            .expect("request");
        sender.send_request(req).await.expect("response")
    }

    async fn get_text(&self, path: &str) -> (u16, String, String) {
        let resp = self.get(path).await;
        let status = resp.status().as_u16();
        let ctype = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, ctype, String::from_utf8(body.to_vec()).expect("utf8"))
    }

    /// Opens an exec WebSocket offering `protocols`; returns it and the chosen subprotocol.
    async fn exec(&self, query: &str, protocols: &str) -> (WebSocketStream<TlsStream<TcpStream>>, String) {
        let tls = connect(self.addr(), Some(&self.pki)).await.expect("connect");
        let url = format!("wss://127.0.0.1:{}/exec/default/web/app?{query}", self.addr().port());
        let mut req = url.into_client_request().expect("request");
        req.headers_mut().insert("Sec-WebSocket-Protocol", protocols.parse().expect("header"));
        let (ws, resp) = tokio_tungstenite::client_async(req, tls).await.expect("upgrade");
        let chosen =
            resp.headers().get("Sec-WebSocket-Protocol").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        (ws, chosen)
    }
}

/// Every binary message until the server closes, as (stream id, data).
async fn messages(ws: &mut WebSocketStream<TlsStream<TcpStream>>) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let next = tokio::time::timeout(WAIT, ws.next()).await.expect("the server answers in time");
        match next {
            Some(Ok(Message::Binary(data))) => {
                let (id, rest) = data.split_first().expect("a stream id");
                out.push((*id, rest.to_vec()));
            }
            Some(Ok(Message::Close(frame))) => {
                let code: u16 = frame.map(|f| f.code.into()).unwrap_or(1005);
                assert_eq!(code, 1000, "a normal close");
                return out;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("websocket error: {e}"),
            None => return out,
        }
    }
}

/// The bytes of one stream, joined.
fn stream(messages: &[(u8, Vec<u8>)], id: u8) -> String {
    let bytes: Vec<u8> = messages.iter().filter(|(i, _)| *i == id).flat_map(|(_, d)| d.clone()).collect();
    String::from_utf8(bytes).expect("utf8")
}

fn status_of(body: &str) -> Value {
    serde_json::from_str(body).expect("a Status body")
}

#[tokio::test]
async fn serves_logs() {
    let env = Env::new().await;
    let (code, ctype, body) = env.get_text("/containerLogs/default/web/app").await;
    assert_eq!((code, ctype.as_str(), body.as_str()), (200, "text/plain", "one\ntwo\n"));
    let (_, _, body) = env.get_text("/containerLogs/default/web/app?tailLines=1&timestamps=true").await;
    assert_eq!(body, "2024-01-02T03:04:06.000000000Z two\n");
    let (_, _, body) = env.get_text("/containerLogs/default/web/app?sinceTime=2024-01-02T03:04:06Z").await;
    assert_eq!(body, "two\n");
    let (_, _, body) = env.get_text("/containerLogs/default/web/app?limitBytes=5").await;
    assert_eq!(body, "one\nt");
    let (_, _, body) = env.get_text("/containerLogs/default/job/main").await;
    assert_eq!(body, "attempt 1\n");
    let (_, _, body) = env.get_text("/containerLogs/default/job/main?previous=true").await;
    assert_eq!(body, "attempt 0\n");
}

#[tokio::test]
async fn log_errors_are_statuses() {
    let env = Env::new().await;
    let cases = [
        ("/containerLogs/default/nope/app", 404, "NotFound", "pods \"nope\" not found"),
        ("/containerLogs/other/web/app", 404, "NotFound", "pods \"web\" not found"),
        ("/containerLogs/default/web/x", 404, "NotFound", "container \"x\" not found in pod \"web\""),
        (
            "/containerLogs/default/web/app?previous=true",
            400,
            "BadRequest",
            "previous terminated container \"app\" in pod \"web\" not found",
        ),
        (
            "/containerLogs/default/web/gone",
            400,
            "BadRequest",
            "container \"gone\" in pod \"web\" is waiting to start: ContainerCreating",
        ),
        (
            "/containerLogs/default/web/app?tailLines=-2",
            400,
            "BadRequest",
            "tailLines: Invalid value: \"-2\": must be greater than or equal to 0",
        ),
    ];
    for (path, code, reason, message) in cases {
        let (got, ctype, body) = env.get_text(path).await;
        assert_eq!((got, ctype.as_str()), (code, "application/json"), "{path}: {body}");
        let s = status_of(&body);
        assert_eq!((s["kind"].as_str(), s["status"].as_str()), (Some("Status"), Some("Failure")), "{path}");
        assert_eq!(
            (s["reason"].as_str(), s["message"].as_str(), s["code"].as_u64()),
            (Some(reason), Some(message), Some(u64::from(code))),
            "{path}"
        );
    }
}

#[tokio::test]
async fn follows_logs_until_the_container_exits() {
    use std::io::Write;
    let env = Env::new().await;
    let id = env.runtime.list_containers("u1").await.expect("list")[0].id.clone();
    let resp = env.get("/containerLogs/default/web/app?follow=true&tailLines=1").await;
    assert_eq!(resp.status().as_u16(), 200);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    let mut read_until = async |want: &str, got: &mut Vec<u8>| {
        while got.as_slice() != want.as_bytes() {
            let frame =
                tokio::time::timeout(WAIT, body.frame()).await.expect("more log").expect("open").expect("frame");
            if let Ok(data) = frame.into_data() {
                got.extend_from_slice(&data);
            }
            assert!(want.as_bytes().starts_with(got), "{:?}", String::from_utf8_lossy(got));
        }
    };
    read_until("two\n", &mut got).await;
    let mut f = std::fs::OpenOptions::new().append(true).open(env.runtime.log_path(&id)).expect("open log");
    f.write_all(b"2024-01-02T03:04:07Z stdout F three\n").expect("append");
    f.flush().expect("flush");
    read_until("two\nthree\n", &mut got).await;
    // The container stops after one more line: it is sent, then the response ends.
    f.write_all(b"2024-01-02T03:04:08Z stdout F four\n").expect("append");
    f.flush().expect("flush");
    env.runtime.stop_container(&id, Duration::from_secs(1)).await.expect("stop");
    let rest = tokio::time::timeout(WAIT, body.collect()).await.expect("the stream ends").expect("body").to_bytes();
    got.extend_from_slice(&rest);
    assert_eq!(String::from_utf8(got).expect("utf8"), "two\nthree\nfour\n");
}

#[tokio::test]
async fn exec_reports_exit_codes() {
    let env = Env::new().await;
    let (mut ws, protocol) =
        env.exec("command=echo&command=hello&command=world&stdout=true&stderr=true", "v5.channel.k8s.io").await;
    assert_eq!(protocol, "v5.channel.k8s.io");
    let got = messages(&mut ws).await;
    assert_eq!(got.first(), Some(&(1, Vec::new())), "an empty stdout message first");
    assert_eq!(stream(&got, 1), "hello world\n");
    assert_eq!(stream(&got, 3), r#"{"metadata":{},"status":"Success"}"#);

    let (mut ws, _) = env.exec("command=exit&command=3&stdout=true&stderr=true", "v5.channel.k8s.io").await;
    let got = messages(&mut ws).await;
    assert_eq!(
        got.last(),
        Some(&(3, br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#.to_vec()))
    );

    // stderr on its own stream; v4 when only v4 is offered; the kubelet's parameter names.
    let (mut ws, protocol) = env.exec("command=stderr&command=oops&output=1&error=1", "v4.channel.k8s.io").await;
    assert_eq!(protocol, "v4.channel.k8s.io");
    let got = messages(&mut ws).await;
    assert_eq!((stream(&got, 1).as_str(), stream(&got, 2).as_str()), ("", "oops\n"));
    assert_eq!(stream(&got, 3), r#"{"metadata":{},"status":"Success"}"#);

    // The first version (`channel.k8s.io`, what the conformance test asks): the same streams, and
    // the error channel carries only a failure's message, as text.
    let (mut ws, protocol) =
        env.exec("command=echo&command=remote%20execution%20test&stdout=1&stderr=1", "channel.k8s.io").await;
    assert_eq!(protocol, "channel.k8s.io");
    let got = messages(&mut ws).await;
    assert_eq!(stream(&got, 1), "remote execution test\n");
    assert!(got.iter().all(|(id, data)| *id != 3 || data.is_empty()), "nothing on the error channel: {got:?}");
    let (mut ws, _) = env.exec("command=exit&command=3&stdout=1", "channel.k8s.io").await;
    let got = messages(&mut ws).await;
    assert_eq!(
        stream(&got, 3),
        "command terminated with non-zero exit code: error executing command [exit 3], exit code 3"
    );
}

#[tokio::test]
async fn exec_with_stdin() {
    let env = Env::new().await;
    let (mut ws, _) = env.exec("command=cat&stdin=true&stdout=true&stderr=true", "v5.channel.k8s.io").await;
    ws.send(Message::binary(b"\x00hello ".to_vec())).await.expect("send");
    ws.send(Message::binary(b"\x00stdin\n".to_vec())).await.expect("send");
    // v5: close stdin; `cat` then exits.
    ws.send(Message::binary(vec![255, 0])).await.expect("send");
    let got = messages(&mut ws).await;
    assert_eq!(stream(&got, 1), "hello stdin\n");
    assert_eq!(stream(&got, 3), r#"{"metadata":{},"status":"Success"}"#);
    assert!(env.runtime.calls().contains(&skiff_agent::fake::Call::ExecStream {
        id: env.runtime.list_containers("u1").await.expect("list")[0].id.clone(),
        command: vec!["cat".into()],
        stdin: true,
        tty: false,
    }));
}

#[tokio::test]
async fn exec_tty_resizes_and_a_gone_client_kills_the_process() {
    let env = Env::new().await;
    let (mut ws, _) = env.exec("command=sleep&stdin=true&stdout=true&tty=true", "v5.channel.k8s.io").await;
    ws.send(Message::binary(b"\x04{\"Width\":120,\"Height\":40}".to_vec())).await.expect("send");
    let deadline = tokio::time::Instant::now() + WAIT;
    while env.runtime.resizes().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no resize arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(env.runtime.resizes()[0].1, TerminalSize { width: 120, height: 40 });
    assert_eq!(env.runtime.live_execs(), 1);
    drop(ws);
    while env.runtime.live_execs() != 0 {
        assert!(tokio::time::Instant::now() < deadline, "the process outlived its client");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn exec_refusals() {
    let env = Env::new().await;
    // A plain GET is not an upgrade.
    let (code, _, body) = env.get_text("/exec/default/web/app?command=ls&stdout=true").await;
    assert_eq!((code, status_of(&body)["message"].as_str()), (400, Some("Upgrade request required")));
    let (code, _, body) = env.get_text("/exec/default/web/app?command=ls").await;
    assert_eq!(
        (code, status_of(&body)["message"].as_str()),
        (400, Some("you must specify at least 1 of stdin, stdout, stderr"))
    );
    let (code, _, body) = env.get_text("/exec/default/web/gone?command=ls&stdout=true").await;
    assert_eq!((code, status_of(&body)["message"].as_str()), (404, Some("container not found (\"gone\")")));
    let (code, _, body) = env.get_text("/exec/default/nope/app?command=ls&stdout=true").await;
    assert_eq!((code, status_of(&body)["message"].as_str()), (404, Some("pods \"nope\" not found")));
}

/// The TLS handshake, or the first request, fails.
async fn refused(addr: SocketAddr, identity: Option<&Pki>) -> bool {
    let Ok(tls) = connect(addr, identity).await else { return true };
    // With TLS 1.3 the client finishes first; the server's refusal arrives as an alert.
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await else { return true };
    tokio::spawn(conn);
    let req = hyper::Request::get("/containerLogs/default/web/app")
        .header("host", "127.0.0.1")
        .body(http_body_util::Empty::<Bytes>::new())
        .expect("request");
    sender.send_request(req).await.is_err()
}

#[tokio::test]
async fn clients_need_a_certificate_from_the_cluster_ca() {
    let env = Env::new().await;
    assert!(refused(env.addr(), None).await, "no client certificate");
    assert!(refused(env.addr(), Some(&pki("intruder"))).await, "a certificate from another CA");
    assert!(!refused(env.addr(), Some(&env.pki)).await, "the cluster CA's client");
}

#[tokio::test]
async fn agent_serves_its_pods_and_publishes_the_port() {
    use k8s_openapi::api::core::v1::{Node, Pod};
    use kube::api::{Api, PostParams};
    use skiff_agent::agent::{Agent, AgentConfig};

    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = skiff_apiserver::start(skiff_apiserver::Config {
        data_dir: dir.path().join("data"),
        bind: "127.0.0.1".parse().expect("ip"),
        port: 0,
        history: None,
    })
    .await
    .expect("start the API server");
    let kubeconfig = kube::config::Kubeconfig::read_from(&server.kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .expect("config");
    let client = kube::Client::try_from(config).expect("client");

    let pki = pki("skiff-apiserver-kubelet-client");
    let runtime = Arc::new(FakeRuntime::new());
    let mut config = AgentConfig::new("node-s", dir.path().join("agent"));
    config.node_ip = Some("127.0.0.1".parse().expect("ip"));
    config.sync_interval = Duration::from_millis(100);
    config.streaming =
        Some(StreamingConfig { bind: "127.0.0.1:0".parse().expect("addr"), client_ca_pem: pki.ca_pem.clone() });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let rt: Arc<dyn ContainerRuntime> = runtime.clone();
    let agent = tokio::spawn(Agent::run(client.clone(), config, rt, async move {
        let _ = stopped.await;
    }));

    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let port = loop {
        if let Some(n) = nodes.get_opt("node-s").await.expect("node") {
            break n
                .status
                .and_then(|s| s.daemon_endpoints)
                .and_then(|d| d.kubelet_endpoint)
                .map(|e| e.port)
                .expect("port");
        }
        assert!(tokio::time::Instant::now() < deadline, "node never registered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(port, 10250, "the bound port, not the default");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hello", "namespace": "default"},
        "spec": {"nodeName": "node-s", "containers": [{"name": "app", "image": "busybox:1.36"}]}
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod).await.expect("create pod");

    // Once the container runs, exec through the kubelet server reaches it.
    let body = loop {
        let tls = connect(addr, Some(&pki)).await.expect("connect");
        let url = format!("wss://127.0.0.1:{port}/exec/default/hello/app?command=echo&command=hi&stdout=true");
        let mut req = url.into_client_request().expect("request");
        req.headers_mut().insert("Sec-WebSocket-Protocol", "v5.channel.k8s.io".parse().expect("header"));
        if let Ok((mut ws, _)) = tokio_tungstenite::client_async(req, tls).await {
            break messages(&mut ws).await;
        }
        assert!(tokio::time::Instant::now() < deadline, "exec never reached the pod");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stream(&body, 1), "hi\n");
    assert_eq!(stream(&body, 3), r#"{"metadata":{},"status":"Success"}"#);

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), agent).await;
    server.stop().await;
}
