//! Process file descriptors: waiting for a process to exit without holding a thread, and
//! signalling exactly that process even after its pid is reused. Used for containers' init
//! processes (our children, or adopted after a restart) and for `kubectl exec` processes.

use std::io;
use std::os::fd::OwnedFd;

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use tokio::io::unix::AsyncFd;

/// Opens a pidfd on `pid`.
pub(crate) fn open(pid: i32) -> io::Result<OwnedFd> {
    let raw = rustix::process::Pid::from_raw(pid).ok_or_else(|| io::Error::other(format!("bad pid {pid}")))?;
    Ok(rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty())?)
}

/// A pidfd registered with tokio: readable once the process has exited.
pub(crate) struct Pidfd {
    fd: AsyncFd<OwnedFd>,
    pid: i32,
}

impl Pidfd {
    /// Registers `fd`, a pidfd on `pid`.
    pub(crate) fn register(fd: OwnedFd, pid: i32) -> io::Result<Pidfd> {
        // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays open and the same for the
        // AsyncFd's whole life (the requirement of `register`).
        #[allow(unsafe_code)]
        let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
        Ok(Pidfd { fd, pid })
    }

    /// Opens and registers a pidfd on `pid`.
    pub(crate) fn open(pid: i32) -> io::Result<Pidfd> {
        Pidfd::register(open(pid)?, pid)
    }

    /// Resolves when the process has exited (it may still need reaping).
    pub(crate) async fn exited(&self) -> io::Result<()> {
        self.fd.readable().await.map(|_| ())
    }

    /// Waits for our child to exit and reaps it (`waitpid`); an error if it is not our child.
    pub(crate) async fn reap(&self) -> io::Result<WaitStatus> {
        loop {
            let mut ready = self.fd.readable().await?;
            match waitpid(nix::unistd::Pid::from_raw(self.pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => ready.clear_ready(),
                Ok(status) => return Ok(status),
                Err(e) => return Err(io::Error::from(e)),
            }
        }
    }
}
