//! The `runc` command line, with its own `--root` so callers (and tests) never share state with
//! the machine's default runc root. Each call is one `runc` process; errors carry runc's own
//! message (from its JSON `--log` when its stderr belongs to the container).
//!
//! [`Runc::sealed`] runs runc from a sealed in-memory copy of its binary. Every container's init
//! process is runc itself, re-executed inside the container; so that the container cannot
//! overwrite the host's runc through `/proc/self/exe` (CVE-2019-5736), runc first makes a
//! read-only copy of itself for each container (Debian's 1.1: a bind mount of the binary,
//! remounted read-only, one more mount on the host while the container starts). A binary that is
//! already a memfd sealed against writes is accepted as that copy (runc's `is_self_cloned`, which
//! names this use), so one copy made when the runtime starts serves every container.

use serde::Deserialize;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use tokio::process::Command;

/// A runc invocation that failed.
#[derive(Debug, thiserror::Error)]
pub enum RuncError {
    /// runc could not be started.
    #[error("running {binary}: {source}")]
    Spawn {
        /// The runc binary.
        binary: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// runc exited non-zero.
    #[error("runc {command} {id}: {message}")]
    Failed {
        /// The subcommand.
        command: &'static str,
        /// The container id.
        id: String,
        /// runc's error message.
        message: String,
    },
    /// `runc state` printed something unexpected.
    #[error("runc state {id}: unreadable output: {message}")]
    BadState {
        /// The container id.
        id: String,
        /// The parse error.
        message: String,
    },
}

/// `runc state` output (the OCI state plus runc's extras).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct State {
    /// Container id.
    pub id: String,
    /// Init process pid (0 once stopped).
    #[serde(default)]
    pub pid: i32,
    /// `creating`, `created`, `running`, `paused` or `stopped`.
    pub status: String,
    /// Bundle directory.
    #[serde(default)]
    pub bundle: String,
}

/// How [`Runc::launch`] leaves a container: created (waiting for `start`), or running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// `runc create`.
    Create,
    /// `runc run --detach`.
    Run,
}

/// A `runc` binary with a state root.
#[derive(Debug, Clone)]
pub struct Runc {
    binary: PathBuf,
    /// What is executed: `binary`, or `/proc/self/fd/N` for the sealed copy.
    program: PathBuf,
    root: PathBuf,
    /// The sealed copy, kept open while any clone of this `Runc` lives.
    sealed_fd: Option<Arc<OwnedFd>>,
}

impl Runc {
    /// runc at `binary` (e.g. `runc`, found on `PATH`) keeping its state under `root`.
    pub fn new(binary: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Self {
        let binary = binary.into();
        Self { program: binary.clone(), binary, root: root.into(), sealed_fd: None }
    }

    /// [`Runc::new`], executing a sealed in-memory copy of `binary` (see the module docs). The
    /// descriptor is close-on-exec: a child resolves `/proc/self/fd/N` (its inherited copy) when
    /// it executes it, and no program started from it keeps it.
    pub fn sealed(binary: impl Into<PathBuf>, root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let binary = binary.into();
        let fd = sealed_copy(&find_binary(&binary)?)?;
        let program = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        Ok(Self { binary, program, root: root.into(), sealed_fd: Some(Arc::new(fd)) })
    }

    /// What is executed for a runc command (for callers that build their own).
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Whether runc runs from a sealed copy.
    pub fn is_sealed(&self) -> bool {
        self.sealed_fd.is_some()
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.arg("--root").arg(&self.root).stdin(Stdio::null());
        cmd
    }

    async fn run(&self, command: &'static str, id: &str, args: &[&str]) -> Result<Vec<u8>, RuncError> {
        let out = self
            .command()
            .arg(command)
            .args(args)
            .arg(id)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .await
            .map_err(|source| RuncError::Spawn { binary: self.binary.clone(), source })?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(RuncError::Failed {
                command,
                id: id.to_string(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    /// Sets container `id` of `bundle` up and, for [`Launch::Run`], starts it:
    /// `runc create` leaves the init process waiting for [`Runc::start`]; `runc run --detach`
    /// does both in one runc process (one Go program start less per container). The init process
    /// inherits `stdout`/`stderr` (runc's pass-through mode). Waits for runc itself to exit, not
    /// for the container.
    pub async fn launch(
        &self,
        how: Launch,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        stdout: Stdio,
        stderr: Stdio,
    ) -> Result<(), RuncError> {
        let (command, flags): (&'static str, &[&str]) = match how {
            Launch::Create => ("create", &[]),
            Launch::Run => ("run", &["--detach"]),
        };
        let log = bundle.join("runc.log");
        let status = self
            .command()
            .arg("--log")
            .arg(&log)
            .arg("--log-format")
            .arg("json")
            .arg(command)
            .args(flags)
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(pid_file)
            .arg(id)
            .stdout(stdout)
            .stderr(stderr)
            .status()
            .await
            .map_err(|source| RuncError::Spawn { binary: self.binary.clone(), source })?;
        if status.success() {
            return Ok(());
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        Err(RuncError::Failed { command, id: id.to_string(), message: last_error(&text) })
    }

    /// `runc start`: runs the user process of a created container.
    pub async fn start(&self, id: &str) -> Result<(), RuncError> {
        self.run("start", id, &[]).await.map(drop)
    }

    /// `runc state`.
    pub async fn state(&self, id: &str) -> Result<State, RuncError> {
        let out = self.run("state", id, &[]).await?;
        serde_json::from_slice(&out).map_err(|e| RuncError::BadState { id: id.to_string(), message: e.to_string() })
    }

    /// `runc kill <id> <signal>` (`TERM`, `KILL`, `9`...).
    pub async fn kill(&self, id: &str, signal: &str) -> Result<(), RuncError> {
        let out = self
            .command()
            .arg("kill")
            .arg(id)
            .arg(signal)
            .output()
            .await
            .map_err(|source| RuncError::Spawn { binary: self.binary.clone(), source })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(RuncError::Failed {
                command: "kill",
                id: id.to_string(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    /// `runc delete --force`: kills the container if needed and removes its state and cgroup.
    /// A container runc does not know is already deleted.
    pub async fn delete_force(&self, id: &str) -> Result<(), RuncError> {
        match self.run("delete", id, &["--force"]).await {
            Err(RuncError::Failed { message, .. }) if is_not_found(&message) => Ok(()),
            other => other.map(drop),
        }
    }
}

/// What `runc exec --detach` starts ([`Runc::exec_detached`]). The process inherits the
/// container's `process` settings (user, capabilities, environment, working directory); these
/// override or extend them.
#[derive(Debug, Clone, Copy)]
pub struct ExecArgs<'a> {
    /// The command and its arguments.
    pub args: &'a [String],
    /// `KEY=value` entries added to the container's environment.
    pub env: &'a [String],
    /// The working directory (default: the container's).
    pub cwd: Option<&'a str>,
    /// With a terminal: runc sends the pty master to this unix socket (`--console-socket`).
    pub console_socket: Option<&'a Path>,
    /// Where runc writes the process's pid (host pid namespace).
    pub pid_file: &'a Path,
    /// runc's JSON log (for its error message).
    pub log: &'a Path,
}

impl Runc {
    /// `runc exec --detach`: starts `args.args` in running container `id` and returns once it
    /// runs (its pid in `args.pid_file`) or failed to start. Without a console socket the process
    /// inherits `stdin`/`stdout`/`stderr` (pass-through mode). runc does not wait for the
    /// process: once runc exits the process is re-parented to the nearest child subreaper (the
    /// agent), which reaps it and sees its exit status.
    pub async fn exec_detached(
        &self,
        id: &str,
        args: ExecArgs<'_>,
        stdin: Stdio,
        stdout: Stdio,
        stderr: Stdio,
    ) -> Result<(), RuncError> {
        let mut cmd = self.command();
        cmd.arg("--log").arg(args.log).arg("--log-format").arg("json").arg("exec").arg("--detach");
        cmd.arg("--pid-file").arg(args.pid_file);
        if let Some(socket) = args.console_socket {
            cmd.arg("--tty").arg("--console-socket").arg(socket);
        }
        if let Some(cwd) = args.cwd {
            cmd.arg("--cwd").arg(cwd);
        }
        for e in args.env {
            cmd.arg("--env").arg(e);
        }
        // Go's flag parsing stops at the first positional argument (the id), so the command's
        // own flags are never taken for runc's.
        cmd.arg(id).args(args.args).stdin(stdin).stdout(stdout).stderr(stderr).kill_on_drop(true);
        let status = cmd.status().await.map_err(|source| RuncError::Spawn { binary: self.binary.clone(), source })?;
        // Drops our copies of the process's stdio before returning.
        drop(cmd);
        if status.success() {
            return Ok(());
        }
        let text = std::fs::read_to_string(args.log).unwrap_or_default();
        Err(RuncError::Failed { command: "exec", id: id.to_string(), message: last_error(&text) })
    }
}

/// `binary` itself when it names a path, else the first executable of that name on `PATH`.
fn find_binary(binary: &Path) -> std::io::Result<PathBuf> {
    if binary.components().count() > 1 {
        return Ok(binary.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|p| p.is_file())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("{} not on PATH", binary.display())))
}

/// A memfd holding `binary`'s bytes, sealed as runc requires (`F_SEAL_SEAL | F_SEAL_SHRINK |
/// F_SEAL_GROW | F_SEAL_WRITE`): nobody can change it any more.
fn sealed_copy(binary: &Path) -> std::io::Result<OwnedFd> {
    use nix::fcntl::{FcntlArg, SealFlag, fcntl};
    use nix::sys::memfd::{MFdFlags, memfd_create};
    let mut source = std::fs::File::open(binary)?;
    let fd = memfd_create("runc", MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)?;
    let mut file = std::fs::File::from(fd);
    // In the kernel (sendfile), or through a small buffer: not the whole binary on the heap,
    // where the allocator would keep its pages after the copy.
    std::io::copy(&mut source, &mut file)?;
    let seals = SealFlag::F_SEAL_SEAL | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_WRITE;
    fcntl(&file, FcntlArg::F_ADD_SEALS(seals))?;
    Ok(OwnedFd::from(file))
}

/// runc's "does not exist" wording across versions.
fn is_not_found(message: &str) -> bool {
    message.contains("does not exist") || message.contains("not found")
}

/// The last `error`-level message of a runc JSON log, or the last line if none parses.
fn last_error(log: &str) -> String {
    #[derive(Deserialize)]
    struct Line {
        level: String,
        msg: String,
    }
    log.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Line>(l).ok())
        .find(|l| l.level == "error" || l.level == "fatal")
        .map(|l| l.msg)
        .or_else(|| log.lines().last().map(str::to_string))
        .unwrap_or_else(|| "failed without a message".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sealed_copy_is_the_binary_and_cannot_change() {
        use nix::fcntl::{FcntlArg, SealFlag, fcntl};
        let runc = Runc::sealed("sh", "/nonexistent").expect("sh is on PATH");
        assert!(runc.is_sealed());
        let fd = runc.sealed_fd.as_ref().expect("fd");
        let seals = SealFlag::from_bits_truncate(fcntl(fd.as_ref(), FcntlArg::F_GET_SEALS).expect("seals"));
        let want = SealFlag::F_SEAL_SEAL | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_WRITE;
        assert_eq!(seals, want);
        let copy = std::fs::read(runc.program()).expect("read the copy");
        assert_eq!(copy, std::fs::read(find_binary(Path::new("sh")).expect("sh")).expect("read sh"));
        let write = std::fs::OpenOptions::new().write(true).open(runc.program());
        assert!(write.and_then(|mut f| std::io::Write::write_all(&mut f, b"x")).is_err(), "writes are refused");
        // The copy runs.
        let out = std::process::Command::new(runc.program()).args(["-c", "echo sealed"]).output().expect("run");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "sealed\n");
        assert!(Runc::sealed("/nonexistent/runc", "/x").is_err());
        assert!(Runc::sealed("no-such-runc-binary", "/x").is_err());
    }

    #[test]
    fn reads_runc_errors() {
        let log = r#"{"level":"warning","msg":"x","time":"t"}
{"level":"error","msg":"runc create failed: unable to start container process: exec: \"nope\": executable file not found in $PATH","time":"t"}
"#;
        assert_eq!(
            last_error(log),
            "runc create failed: unable to start container process: exec: \"nope\": executable file not found in $PATH"
        );
        assert_eq!(last_error(""), "failed without a message");
        assert!(is_not_found("container does not exist"));
    }

    #[test]
    fn parses_state() {
        let out = r#"{"ociVersion":"1.0.2-dev","id":"c1","pid":4242,"status":"running","bundle":"/b","rootfs":"/b/rootfs","created":"2024-01-01T00:00:00Z","owner":""}"#;
        let s: State = serde_json::from_str(out).expect("state");
        assert_eq!(s, State { id: "c1".into(), pid: 4242, status: "running".into(), bundle: "/b".into() });
    }
}
