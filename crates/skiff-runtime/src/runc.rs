//! The `runc` command line, with its own `--root` so callers (and tests) never share state with
//! the machine's default runc root. Each call is one `runc` process; errors carry runc's own
//! message (from its JSON `--log` when its stderr belongs to the container).

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Stdio;
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

/// A `runc` binary with a state root.
#[derive(Debug, Clone)]
pub struct Runc {
    binary: PathBuf,
    root: PathBuf,
}

impl Runc {
    /// runc at `binary` (e.g. `runc`, found on `PATH`) keeping its state under `root`.
    pub fn new(binary: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Self {
        Self { binary: binary.into(), root: root.into() }
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
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

    /// `runc create`: sets the container up (namespaces, cgroup, mounts) with its init process
    /// waiting for `start`. The init process inherits `stdout`/`stderr` (runc's pass-through
    /// mode). Waits for runc itself to exit, not for the container.
    pub async fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        stdout: Stdio,
        stderr: Stdio,
    ) -> Result<(), RuncError> {
        let log = bundle.join("runc.log");
        let status = self
            .command()
            .arg("--log")
            .arg(&log)
            .arg("--log-format")
            .arg("json")
            .arg("create")
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
        Err(RuncError::Failed { command: "create", id: id.to_string(), message: last_error(&text) })
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
