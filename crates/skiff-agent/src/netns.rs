//! Connections made from inside a pod's network namespace (`kubectl port-forward`): a short-lived
//! thread joins the namespace (`setns`), connects to `127.0.0.1:PORT` and exits; the socket stays
//! in the pod's namespace, so servers bound to the pod's loopback only are reachable, as with
//! containerd's `portForward`. The calling threads (tokio's) never change namespace.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};

/// Connects to `127.0.0.1:port` in the network namespace held by the file `netns` (a bind-mounted
/// `/proc/.../ns/net`).
pub async fn connect_loopback(netns: &Path, port: u16) -> io::Result<tokio::net::TcpStream> {
    let netns: PathBuf = netns.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    // A dedicated thread: setns() changes the calling thread for good, so it must not be one a
    // pool reuses.
    std::thread::Builder::new().name("netns-connect".into()).spawn(move || {
        let _ = tx.send(connect_in(&netns, port));
    })?;
    let stream = rx.await.map_err(|_| io::Error::other("the namespace thread died"))??;
    tokio::net::TcpStream::from_std(stream)
}

/// The blocking part, on the thread that joins the namespace.
fn connect_in(netns: &Path, port: u16) -> io::Result<TcpStream> {
    let file = std::fs::File::open(netns)?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
    let stream = TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    stream.set_nonblocking(true)?;
    Ok(stream)
}

/// containerd's text for a failed port-forward dial (Go's `net.Dial("tcp4", "localhost:P")`
/// error wrapped): `failed to connect to localhost:80 inside namespace "ID": dial tcp4
/// 127.0.0.1:80: connect: connection refused`.
pub fn dial_error(sandbox_id: &str, port: u16, error: &io::Error) -> String {
    format!(
        "failed to connect to localhost:{port} inside namespace {sandbox_id:?}: dial tcp4 127.0.0.1:{port}: connect: {}",
        errno_text(error)
    )
}

/// An OS error as Go's `syscall.Errno` prints it (the C text with a lower-case first letter).
pub fn errno_text(error: &io::Error) -> String {
    let text = match error.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None if error.kind() == io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        None => error.to_string(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_errors() {
        let refused = io::Error::from_raw_os_error(nix::errno::Errno::ECONNREFUSED as i32);
        let cases = [
            (refused, "connection refused"),
            (io::Error::from_raw_os_error(nix::errno::Errno::ENETUNREACH as i32), "network is unreachable"),
            (io::Error::from_raw_os_error(nix::errno::Errno::ETIMEDOUT as i32), "connection timed out"),
            (io::Error::from(io::ErrorKind::ConnectionRefused), "connection refused"),
        ];
        for (error, want) in cases {
            assert_eq!(errno_text(&error), want, "{error:?}");
        }
        let refused = io::Error::from_raw_os_error(nix::errno::Errno::ECONNREFUSED as i32);
        assert_eq!(
            dial_error("abc123", 8080, &refused),
            "failed to connect to localhost:8080 inside namespace \"abc123\": dial tcp4 127.0.0.1:8080: connect: connection refused"
        );
    }

    /// Needs root: a fresh network namespace has only a down loopback, so nothing there answers
    /// even where the host has a listener on the same port.
    #[tokio::test]
    async fn connects_inside_the_namespace() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let host = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = host.local_addr().expect("addr").port();
        // Our own namespace: the host listener answers.
        let own = connect_loopback(Path::new("/proc/self/ns/net"), port).await.expect("connect in our namespace");
        assert_eq!(own.peer_addr().expect("peer"), host.local_addr().expect("addr"));
        let dir = tempfile::tempdir().expect("tempdir");
        let ns = skiff_runtime::nsfs::create(dir.path(), "netns-test").expect("namespaces");
        let err = connect_loopback(&ns.net, port).await.expect_err("nothing listens in the pod's namespace");
        skiff_runtime::nsfs::remove(&ns);
        // Loopback is down in a new namespace: unreachable rather than refused.
        assert!(matches!(errno_text(&err).as_str(), "network is unreachable" | "connection refused"), "{err}");
    }
}
