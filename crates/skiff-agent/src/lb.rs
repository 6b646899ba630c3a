//! A client-side TCP load balancer, so an agent given several API servers
//! (`--server https://a:6443,https://b:6443`) keeps working when one of them dies, as k3s's agent
//! load balancer does.
//!
//! The balancer listens on `127.0.0.1:<free port>` and the agent's kube client talks to
//! `https://127.0.0.1:<port>`: TLS passes through untouched (the API servers' certificates carry
//! `127.0.0.1` among their names). Each accepted connection is forwarded to the first server, in
//! [`try_order`] from the last one that accepted a connection, that accepts a TCP connection within
//! the connect timeout. A server that dies closes the connections forwarded to it; the kube client's
//! requests then fail and its watches end, and their retries reach a live server through the
//! balancer. The balancer stays on a server while it answers (no fail-back), so the agent's
//! connections do not move for nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Why the balancer cannot start.
#[derive(Debug, thiserror::Error)]
pub enum LbError {
    #[error("no API server given")]
    NoServers,
    #[error("the API server URL {0:?} is not of the form https://HOST[:PORT]")]
    BadUrl(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

/// How the balancer listens and how patient it is with servers.
#[derive(Debug, Clone)]
pub struct LbOptions {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// How long a connection to one server may take before the next is tried.
    pub connect_timeout: Duration,
}

impl Default for LbOptions {
    fn default() -> Self {
        LbOptions { listen: SocketAddr::from(([127, 0, 0, 1], 0)), connect_timeout: Duration::from_secs(2) }
    }
}

/// `host:port` of an API server URL (`https://host[:port][/]`, port 443 by default; IPv6 hosts in
/// brackets), the address the balancer connects to.
pub fn server_authority(url: &str) -> Result<String, LbError> {
    let bad = || LbError::BadUrl(url.to_string());
    let rest = url.trim().strip_prefix("https://").ok_or_else(bad)?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return Err(bad());
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad)?),
            };
            (format!("[{host}]"), port)
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (authority.to_string(), None),
        },
    };
    if host.is_empty() || host == "[]" {
        return Err(bad());
    }
    let port = match port {
        None => 443,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
    };
    Ok(format!("{host}:{port}"))
}

/// The order in which to try `len` servers: the last good one (`preferred`) first, then the ones
/// after it, wrapping around, so a failure rotates to the next server in the list.
pub fn try_order(len: usize, preferred: usize) -> Vec<usize> {
    let start = if len == 0 { 0 } else { preferred % len };
    (0..len).map(|i| (start + i) % len).collect()
}

/// The servers and which of them accepted the last connection.
#[derive(Debug)]
struct Backends {
    addrs: Vec<String>,
    current: AtomicUsize,
}

impl Backends {
    /// A connection to the first server, in [`try_order`], that accepts one within `timeout`;
    /// remembers it as the current one. `None` when none does.
    async fn connect(&self, timeout: Duration) -> Option<TcpStream> {
        let preferred = self.current.load(Ordering::Relaxed);
        for i in try_order(self.addrs.len(), preferred) {
            let addr = &self.addrs[i];
            match tokio::time::timeout(timeout, TcpStream::connect(addr.as_str())).await {
                Ok(Ok(stream)) => {
                    if self.current.swap(i, Ordering::Relaxed) != i {
                        tracing::info!(server = %addr, "API server load balancer switched server");
                    }
                    return Some(stream);
                }
                Ok(Err(e)) => tracing::debug!(server = %addr, error = %e, "API server refused a connection"),
                Err(_) => tracing::debug!(server = %addr, ?timeout, "API server did not accept a connection in time"),
            }
        }
        None
    }
}

/// A running balancer; dropping it stops it (connections already forwarded stay open until either
/// side closes them).
pub struct LoadBalancer {
    addr: SocketAddr,
    backends: Arc<Backends>,
    task: Option<JoinHandle<()>>,
}

impl LoadBalancer {
    /// Listens on `options.listen` and forwards to `servers` (API server URLs, `https://host:port`).
    /// Must be called within a Tokio runtime, which runs the balancer.
    pub async fn start(servers: &[String], options: LbOptions) -> Result<LoadBalancer, LbError> {
        if servers.is_empty() {
            return Err(LbError::NoServers);
        }
        let addrs = servers.iter().map(|s| server_authority(s)).collect::<Result<Vec<_>, _>>()?;
        let listener = TcpListener::bind(options.listen)
            .await
            .map_err(|source| LbError::Listen { addr: options.listen, source })?;
        let addr = listener.local_addr().map_err(|source| LbError::Listen { addr: options.listen, source })?;
        let backends = Arc::new(Backends { addrs, current: AtomicUsize::new(0) });
        let task = tokio::spawn(serve(listener, backends.clone(), options.connect_timeout));
        tracing::info!(address = %addr, servers = ?backends.addrs, "API server load balancer listening");
        Ok(LoadBalancer { addr, backends, task: Some(task) })
    }

    /// The address the balancer listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:<port>`: the URL clients use instead of the servers'.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// `host:port` of the server new connections go to first (the last one that accepted one).
    pub fn current(&self) -> &str {
        let i = self.backends.current.load(Ordering::Relaxed);
        &self.backends.addrs[i % self.backends.addrs.len()]
    }

    /// Lets the balancer run for the rest of the process (until the runtime stops) and returns its
    /// URL.
    pub fn detach(mut self) -> String {
        drop(self.task.take());
        self.url()
    }
}

impl Drop for LoadBalancer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Accepts connections and forwards each to a server until the task is aborted.
async fn serve(listener: TcpListener, backends: Arc<Backends>, connect_timeout: Duration) {
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "API server load balancer: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let backends = backends.clone();
        tokio::spawn(async move {
            let Some(server) = backends.connect(connect_timeout).await else {
                tracing::warn!(%peer, servers = ?backends.addrs, "no API server accepts connections");
                return;
            };
            forward(client, server).await;
        });
    }
}

/// Copies bytes both ways until either side closes or fails.
async fn forward(mut client: TcpStream, mut server: TcpStream) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut server).await {
        tracing::debug!(error = %e, "forwarded API server connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn authorities() {
        let ok = [
            ("https://127.0.0.1:6443", "127.0.0.1:6443"),
            ("https://10.0.0.1:6443/", "10.0.0.1:6443"),
            ("https://a.example", "a.example:443"),
            ("  https://b:1 ", "b:1"),
            ("https://[::1]:6443", "[::1]:6443"),
            ("https://[fd00::2]", "[fd00::2]:443"),
        ];
        for (url, want) in ok {
            assert_eq!(server_authority(url).expect(url), want, "{url}");
        }
        let bad = [
            "http://127.0.0.1:6443",
            "127.0.0.1:6443",
            "https://",
            "https://:6443",
            "https://a:0",
            "https://a:65536",
            "https://a:x",
            "https://a:6443/api",
            "https://user@a:6443",
            "https://[::1",
            "https://[::1]6443",
            "https://[]:1",
        ];
        for url in bad {
            assert!(matches!(server_authority(url), Err(LbError::BadUrl(u)) if u == url), "{url}");
        }
    }

    #[test]
    fn orders() {
        let cases: [(usize, usize, &[usize]); 6] =
            [(0, 0, &[]), (1, 0, &[0]), (3, 0, &[0, 1, 2]), (3, 1, &[1, 2, 0]), (3, 2, &[2, 0, 1]), (3, 4, &[1, 2, 0])];
        for (len, preferred, want) in cases {
            assert_eq!(try_order(len, preferred), want, "len {len}, preferred {preferred}");
        }
    }

    /// A server that writes its name to every connection, then echoes. Aborting the task closes the
    /// listener and every connection (they live in its `JoinSet`), as a killed process would.
    async fn named_server(name: &'static str, listener: TcpListener) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((mut s, _)) = listener.accept().await else { return };
                connections.spawn(async move {
                    let _ = s.write_all(name.as_bytes()).await;
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        })
    }

    async fn bind() -> (TcpListener, String) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("https://{}", l.local_addr().expect("addr"));
        (l, url)
    }

    /// The name of the server a new connection through `lb` reaches, or `None` if it is closed.
    async fn reached(lb: &LoadBalancer) -> Option<String> {
        let mut c = TcpStream::connect(lb.local_addr()).await.expect("connect to the balancer");
        let mut name = [0u8; 1];
        match tokio::time::timeout(Duration::from_secs(5), c.read(&mut name)).await.expect("an answer in time") {
            Ok(1) => Some(String::from_utf8_lossy(&name).into_owned()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn forwards_and_fails_over() {
        let (la, a) = bind().await;
        let (lb_, b) = bind().await;
        let (lc, c) = bind().await;
        let a_port = la.local_addr().expect("addr");
        let server_a = named_server("a", la).await;
        let server_b = named_server("b", lb_).await;
        // c is down from the start.
        drop(lc);

        let lb = LoadBalancer::start(&[a.clone(), b.clone(), c.clone()], LbOptions::default()).await.expect("start");
        assert!(lb.url().starts_with("https://127.0.0.1:"), "{}", lb.url());

        // Bytes pass both ways.
        let mut conn = TcpStream::connect(lb.local_addr()).await.expect("connect");
        let mut buf = [0u8; 6];
        conn.write_all(b"hello").await.expect("write");
        conn.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"ahello");
        assert_eq!(lb.current(), a_port.to_string());

        // a dies: the open connection ends, new ones go to b and stay there.
        server_a.abort();
        let _ = server_a.await;
        let mut rest = Vec::new();
        let ended = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut rest)).await;
        assert!(ended.is_ok(), "the forwarded connection ends with its server");
        assert_eq!(reached(&lb).await.as_deref(), Some("b"));
        assert_eq!(lb.current(), b.trim_start_matches("https://"));

        // a comes back: the balancer stays on b while b answers.
        let la = TcpListener::bind(a_port).await.expect("rebind a");
        let server_a = named_server("a", la).await;
        assert_eq!(reached(&lb).await.as_deref(), Some("b"));

        // b dies: c is down too, so the rotation wraps around to a.
        server_b.abort();
        let _ = server_b.await;
        assert_eq!(reached(&lb).await.as_deref(), Some("a"));
        assert_eq!(lb.current(), a_port.to_string());

        // Nobody answers: the client's connection is closed.
        server_a.abort();
        let _ = server_a.await;
        assert_eq!(reached(&lb).await, None);
    }

    #[tokio::test]
    async fn refuses_bad_input() {
        assert!(matches!(LoadBalancer::start(&[], LbOptions::default()).await, Err(LbError::NoServers)));
        let bad = ["https://a:1".to_string(), "a:2".to_string()];
        assert!(matches!(LoadBalancer::start(&bad, LbOptions::default()).await, Err(LbError::BadUrl(u)) if u == "a:2"));
    }

    #[tokio::test]
    async fn dropping_stops_listening() {
        let (la, a) = bind().await;
        let _server = named_server("a", la).await;
        let lb = LoadBalancer::start(&[a], LbOptions::default()).await.expect("start");
        let addr = lb.local_addr();
        assert_eq!(reached(&lb).await.as_deref(), Some("a"));
        drop(lb);
        // The accept loop is aborted and its listener closed.
        assert!(retry_refused(addr).await, "the balancer still accepts after drop");
    }

    /// Whether connections to `addr` are refused within a second (the abort is asynchronous).
    async fn retry_refused(addr: SocketAddr) -> bool {
        for _ in 0..50 {
            if TcpStream::connect(addr).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}
