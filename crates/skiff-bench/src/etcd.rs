//! A real etcd (`/usr/bin/etcd`, Debian's etcd-server) on free loopback ports with a temporary data
//! directory, for the API scenario's etcd backend. Killed by its PID when dropped; its directory is
//! the caller's.

use std::io::{Read, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::procs::Guard;

pub struct Etcd {
    pub guard: Guard,
    pub client_port: u16,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Etcd {
    pub fn start(dir: &Path) -> anyhow::Result<Etcd> {
        let (client_port, peer_port) = (free_port()?, free_port()?);
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let log = std::fs::File::create(dir.join("etcd.log"))?;
        let child = Command::new("/usr/bin/etcd")
            .arg("--name=default")
            .arg(format!("--data-dir={}", dir.join("data").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=default={peer}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start /usr/bin/etcd (Debian's etcd-server; scripts/install-deps.sh)")?;
        let etcd = Etcd { guard: Guard::new(child, "etcd"), client_port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !etcd.healthy() {
            anyhow::ensure!(Instant::now() < deadline, "etcd did not become healthy within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(etcd)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn healthy(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.client_port)) else { return false };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        if stream.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
            return false;
        }
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.contains(r#""health":"true""#)
    }
}
