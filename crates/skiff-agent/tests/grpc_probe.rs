//! The gRPC health probe against a real gRPC server: etcd serves `grpc.health.v1.Health` on its
//! client port (the conformance tests probe an etcd container the same way).

use std::sync::Arc;
use std::time::Duration;

use skiff_agent::probe::{Check, NetProber, Outcome, Prober};
use skiff_agent::runtime::ContainerRuntime;
use skiff_store::testing::EtcdServer;

#[tokio::test]
async fn grpc_probes_ask_a_real_server_for_its_health() {
    let etcd = tokio::task::spawn_blocking(EtcdServer::start).await.expect("etcd");
    let endpoint = etcd.endpoints().into_iter().next().expect("an endpoint");
    let port: u16 = endpoint.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(skiff_agent::fake::FakeRuntime::new());
    let prober = NetProber::new(runtime);
    let grpc = |port: u16, service: Option<&str>| Check::Grpc {
        host: "127.0.0.1".into(),
        port,
        service: service.map(str::to_string),
    };
    let timeout = Duration::from_secs(5);

    // The server as a whole is SERVING.
    assert_eq!(prober.check("c", &grpc(port, None), timeout).await, Outcome::success());
    // A service it does not know is a failed call (NotFound), not a pass.
    let unknown = prober.check("c", &grpc(port, Some("no.such.Service")), timeout).await;
    assert!(!unknown.ok);
    assert!(unknown.message.starts_with("error: health rpc probe failed: rpc error: code = NotFound"), "{unknown:?}");
    // Nothing listening: the connection fails.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = free.local_addr().expect("addr").port();
    drop(free);
    let refused = prober.check("c", &grpc(closed, None), timeout).await;
    assert!(!refused.ok);
    assert!(refused.message.starts_with("timeout: failed to connect service \"127.0.0.1:"), "{refused:?}");
    // A server that is not gRPC (plain HTTP/1) is a failure too, within the timeout.
    let http1 = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let http1_port = http1.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = http1.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await;
        }
    });
    let not_grpc = prober.check("c", &grpc(http1_port, None), Duration::from_secs(2)).await;
    assert!(!not_grpc.ok, "{not_grpc:?}");
    drop(etcd);
}
