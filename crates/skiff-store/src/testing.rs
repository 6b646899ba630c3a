//! Test support shared with other crates' tests (the `testing` feature; always on in this crate's
//! own tests). Not part of the store: nothing here is used by a server.
//!
//! [`EtcdServer`] is a real etcd for tests: one `etcd` process per test on free loopback ports
//! with a temporary data directory, killed (by its PID) and removed on drop. The binary is
//! `/usr/bin/etcd` (Debian's `etcd-server`, installed by scripts/install-deps.sh) or
//! `$SKIFF_ETCD_BIN`; without it the tests fail, they do not skip.

use std::fs::File;
use std::io::{Read, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One private etcd member for one test. Blocking: start it with `spawn_blocking` from async code
/// that must not stall its runtime (it waits up to 30 s for etcd to become healthy).
pub struct EtcdServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
}

fn binary() -> PathBuf {
    let path = std::env::var_os("SKIFF_ETCD_BIN").map_or_else(|| PathBuf::from("/usr/bin/etcd"), PathBuf::from);
    assert!(
        path.is_file(),
        "etcd not found at {}: tests on the etcd backend need a real etcd. Install Debian's etcd-server \
         (scripts/install-deps.sh does) or set SKIFF_ETCD_BIN to an etcd binary.",
        path.display()
    );
    path
}

/// etcd could not bind its ports: another process took one after [`free_ports`] released it.
struct PortTaken;

fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind");
    (a.local_addr().expect("addr").port(), b.local_addr().expect("addr").port())
}

impl EtcdServer {
    /// Starts a fresh etcd and waits until it is healthy.
    /// Starts a fresh etcd and waits until it is healthy. Free ports are picked by binding port 0
    /// and releasing it, so another test may take one before etcd binds it: etcd then fails with
    /// "address already in use", and this tries again with other ports.
    pub fn start() -> EtcdServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let (client_port, peer_port) = free_ports();
        let mut server = EtcdServer { child: None, dir, client_port, peer_port };
        for _ in 0..5 {
            match server.try_spawn() {
                Ok(()) => return server,
                Err(PortTaken) => (server.client_port, server.peer_port) = free_ports(),
            }
        }
        panic!("etcd found its ports taken five times");
    }

    /// The client URL to give `EtcdStore::connect` (`http://127.0.0.1:PORT`).
    pub fn endpoints(&self) -> Vec<String> {
        vec![format!("http://127.0.0.1:{}", self.client_port)]
    }

    /// Kills etcd with SIGKILL (by its PID) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error means it already exited.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same data directory and ports.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        if self.try_spawn().is_err() {
            panic!("etcd's port {} or {} was taken by another process", self.client_port, self.peer_port);
        }
    }

    /// Starts etcd and waits until it serves: its own log says it listens on the client port (the
    /// health check alone could be answered by another test's etcd on a port taken meanwhile).
    fn try_spawn(&mut self) -> Result<(), PortTaken> {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log_path = self.dir.path().join("etcd.log");
        let log = File::options().create(true).append(true).open(&log_path).expect("etcd log");
        let logged_before = log.metadata().map_or(0, |m| m.len());
        let child = Command::new(binary())
            .arg("--name=default")
            .arg(format!("--data-dir={}", self.dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=default={peer}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting etcd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if serves(&log_path, logged_before, self.client_port) {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                if log_since(&log_path, logged_before).contains("address already in use") {
                    return Err(PortTaken);
                }
                panic!("etcd exited with {status}:\n{}", self.log_tail(&log_path));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("etcd did not become healthy within 30s:\n{}", self.log_tail(&log_path));
    }

    fn log_tail(&self, path: &std::path::Path) -> String {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// Whether the etcd writing the log at `log` serves its clients on `client_port`: its log after the
/// first `logged_before` bytes (an earlier run's) says it listens there, and `/health` answers
/// `"health":"true"` (a cluster member: once the cluster has a leader). The log check tells it
/// from another test's etcd that took the port meanwhile, which would pass the health check too.
pub fn serves(log: &std::path::Path, logged_before: u64, client_port: u16) -> bool {
    let serving = format!("serving insecure client requests on 127.0.0.1:{client_port}");
    if !log_since(log, logged_before).contains(&serving) {
        return false;
    }
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", client_port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.contains(r#""health":"true""#)
}

/// What etcd logged after the first `from` bytes of its log (the log of earlier runs).
fn log_since(path: &std::path::Path, from: u64) -> String {
    let log = std::fs::read(path).unwrap_or_default();
    let start = usize::try_from(from).unwrap_or(usize::MAX).min(log.len());
    String::from_utf8_lossy(&log[start..]).into_owned()
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}
