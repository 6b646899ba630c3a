//! Streaming exec (`kubectl exec`): a process started in a running container with its stdio
//! attached, or a terminal.
//!
//! Design: the process is started with `runc exec --detach` ([`Runc::exec_detached`]), as a
//! containerd shim does. runc's `--console-socket` (how it hands over a terminal) only works
//! detached, and detached runc exits once the process runs, so the same path serves both modes:
//! - without a TTY the process inherits pipes (stdin only when asked for, else `/dev/null`);
//! - with a TTY runc connects to a unix socket in a private temporary directory and sends the
//!   pty master with `SCM_RIGHTS`; stdin and stdout are that master, stderr merges into it.
//!
//! When runc exits the process is re-parented to this process, a child subreaper (set by
//! [`crate::Runtime::new`] and again by [`exec`]). A pidfd opened right then refers to exactly
//! that process for good (its pid cannot be reused before we reap it): a task waits on it and
//! reaps the exit status (128 + N for signal N), and the kill on drop signals through it, so it
//! never hits another process. The process is killed (SIGKILL) when its [`ExecProcess`] and
//! every stream taken from it are dropped while it still runs; processes it started
//! itself are not (they belong to the container, as with upstream runtimes).

use crate::pidfd::{self, Pidfd};
use crate::runc::{ExecArgs, Runc, RuncError};
use nix::sys::wait::WaitStatus;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

/// How long runc may take to start the process (it hangs on a frozen container, for one).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long runc may take to hand over the terminal once it has exited successfully.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(5);

/// A streaming exec that could not be started or observed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Nothing to run.
    #[error("exec: no command given")]
    EmptyCommand,
    /// runc refused or failed (no such container, stopped container, executable not found...).
    #[error(transparent)]
    Runc(#[from] RuncError),
    /// runc did not start the process in time.
    #[error("exec in {id}: runc did not start the process within {timeout:?}")]
    Timeout {
        /// The container id.
        id: String,
        /// The limit.
        timeout: Duration,
    },
    /// Local plumbing failed (pipes, the console socket, the pid file, the pidfd).
    #[error("exec: {context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The process's exit status could not be observed.
    #[error("exec: exit status unknown: {0}")]
    ExitUnknown(String),
}

fn io_err(context: &'static str) -> impl FnOnce(io::Error) -> ExecError {
    move |source| ExecError::Io { context, source }
}

/// What to run with `kubectl exec`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSpec {
    /// The command and its arguments (not run through a shell).
    pub args: Vec<String>,
    /// `KEY=value` entries added to the container's environment.
    pub env: Vec<String>,
    /// Give the process a terminal (stdout and stderr merge into it).
    pub tty: bool,
    /// Attach a stdin the caller writes to; otherwise stdin is `/dev/null` (or, with a TTY, the
    /// terminal nobody types into).
    pub stdin: bool,
    /// The working directory (default: the container's).
    pub cwd: Option<String>,
}

/// How the process ended, published by its reaper task: `Ok(code)` or why it is unknown.
type ExitSlot = Option<Result<i32, String>>;

/// A process started by [`exec`]. Take the streams out of it ([`Option::take`]); the process
/// is killed when this and every stream taken from it are dropped while it runs.
pub struct ExecProcess {
    // Fields drop in order: the kill guard goes before the terminal, so a dropped TTY session
    // ends in SIGKILL rather than the hang-up (SIGHUP) of the closing terminal.
    guard: Arc<KillOnDrop>,
    /// The process's stdin when [`ExecSpec::stdin`] was set (with a TTY: the terminal).
    pub stdin: Option<ExecStdin>,
    /// The process's stdout (with a TTY: the terminal's output).
    pub stdout: Option<ExecReader>,
    /// The process's stderr; `None` with a TTY.
    pub stderr: Option<ExecReader>,
    terminal: Option<Terminal>,
    pid: i32,
    exit: ExitWaiter,
}

impl std::fmt::Debug for ExecProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecProcess")
            .field("pid", &self.pid)
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .field("tty", &self.terminal.is_some())
            .finish_non_exhaustive()
    }
}

impl ExecProcess {
    /// The process's pid in the host's pid namespace.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The terminal's resize handle; `Some` only with a TTY.
    pub fn terminal(&self) -> Option<Terminal> {
        self.terminal.clone()
    }

    /// A waiter for the exit code that does not keep the process alive (the agent's session
    /// hands it out separately from the streams).
    pub fn exit_waiter(&self) -> ExitWaiter {
        self.exit.clone()
    }

    /// Waits for the process to exit: its exit code, 128 + N when signal N killed it.
    pub async fn wait(&self) -> Result<i32, ExecError> {
        self.exit.clone().wait().await
    }

    /// Sends SIGKILL now (no effect once it has exited).
    pub fn kill(&self) {
        self.guard.kill();
    }
}

/// Resolves to an exec'd process's exit code.
#[derive(Debug, Clone)]
pub struct ExitWaiter(watch::Receiver<ExitSlot>);

impl ExitWaiter {
    /// The exit code (128 + N for signal N) once the process has exited.
    pub async fn wait(mut self) -> Result<i32, ExecError> {
        match self.0.wait_for(Option::is_some).await {
            Ok(slot) => match slot.clone() {
                Some(Ok(code)) => Ok(code),
                Some(Err(why)) => Err(ExecError::ExitUnknown(why)),
                None => Err(ExecError::ExitUnknown("not observed".into())),
            },
            Err(_) => Err(ExecError::ExitUnknown("the reaper task ended (runtime shutting down)".into())),
        }
    }

    fn exited(&self) -> bool {
        self.0.borrow().is_some()
    }
}

/// Kills the process when the last holder (the [`ExecProcess`] and its streams) goes away.
struct KillOnDrop {
    pidfd: OwnedFd,
    exit: ExitWaiter,
}

impl KillOnDrop {
    fn kill(&self) {
        if !self.exit.exited() {
            // Through the pidfd: never another process, even after the pid is reused; ESRCH
            // once it has been reaped.
            let _ = rustix::process::pidfd_send_signal(&self.pidfd, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TTY session's terminal: sets the window size (the process gets SIGWINCH).
#[derive(Clone)]
pub struct Terminal(Arc<AsyncFd<OwnedFd>>);

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminal").finish_non_exhaustive()
    }
}

impl Terminal {
    /// Sets the terminal's size in character cells.
    pub fn resize(&self, width: u16, height: u16) -> Result<(), ExecError> {
        let size = rustix::termios::Winsize { ws_row: height, ws_col: width, ws_xpixel: 0, ws_ypixel: 0 };
        rustix::termios::tcsetwinsize(self.0.get_ref(), size).map_err(|e| io_err("setting the window size")(e.into()))
    }
}

/// The write side of a process's stdin: a pipe, or the terminal. Shutting it down closes a
/// pipe (the process reads EOF); a terminal stays open until the process exits.
pub struct ExecStdin {
    // Declared (so dropped) first: see [`ExecProcess`].
    _guard: Arc<KillOnDrop>,
    /// `None` once shut down.
    inner: Option<StdinKind>,
}

enum StdinKind {
    Pipe(tokio::net::unix::pipe::Sender),
    Pty(Arc<AsyncFd<OwnedFd>>),
}

/// A process's stdout or stderr: a pipe, or the terminal's output (a terminal hang-up, `EIO`,
/// reads as end of stream).
pub struct ExecReader {
    // Declared (so dropped) first: see [`ExecProcess`].
    _guard: Arc<KillOnDrop>,
    inner: OutputKind,
}

enum OutputKind {
    Pipe(tokio::net::unix::pipe::Receiver),
    Pty(Arc<AsyncFd<OwnedFd>>),
}

impl AsyncWrite for ExecStdin {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Some(StdinKind::Pipe(p)) => Pin::new(p).poll_write(cx, buf),
            Some(StdinKind::Pty(fd)) => loop {
                let mut ready = ready!(fd.poll_write_ready(cx))?;
                match ready.try_io(|fd| rustix::io::write(fd.get_ref(), buf).map_err(io::Error::from)) {
                    Ok(result) => return Poll::Ready(result),
                    Err(_would_block) => continue,
                }
            },
            None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Neither a pipe nor a terminal buffers on our side.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if matches!(this.inner, Some(StdinKind::Pipe(_))) {
            // Dropping the write end closes the pipe: the process reads EOF.
            this.inner = None;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for ExecReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            OutputKind::Pipe(p) => Pin::new(p).poll_read(cx, buf),
            OutputKind::Pty(fd) => loop {
                let mut ready = ready!(fd.poll_read_ready(cx))?;
                let unfilled = buf.initialize_unfilled();
                match ready.try_io(|fd| rustix::io::read(fd.get_ref(), &mut *unfilled).map_err(io::Error::from)) {
                    Ok(Ok(n)) => {
                        buf.advance(n);
                        return Poll::Ready(Ok(()));
                    }
                    // Every slave end is closed: the process (and what it started) has exited.
                    Ok(Err(e)) if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => {
                        return Poll::Ready(Ok(()));
                    }
                    Ok(Err(e)) => return Poll::Ready(Err(e)),
                    Err(_would_block) => continue,
                }
            },
        }
    }
}

/// Starts `spec` in running container `container_id` (see the module docs). Errors (no such
/// container, a stopped one, a command that cannot be found) come from runc.
pub async fn exec(runc: &Runc, container_id: &str, spec: ExecSpec) -> Result<ExecProcess, ExecError> {
    if spec.args.is_empty() {
        return Err(ExecError::EmptyCommand);
    }
    // Only a subreaper gets the detached process back when runc exits; without it the exit
    // status would go to init. (The runtime already is one; this is idempotent.)
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| io_err("becoming a child subreaper")(e.into()))?;
    let dir = tempfile::Builder::new().prefix("skiff-exec-").tempdir().map_err(io_err("creating a temp dir"))?;
    let files = SetupFiles::in_dir(dir.path());
    let (plumbing, stdio) = if spec.tty {
        let listener = tokio::net::UnixListener::bind(&files.console).map_err(io_err("binding the console socket"))?;
        (Plumbing::Console(listener), ChildStdio::null())
    } else {
        let (ends, stdio) = pipes(spec.stdin)?;
        (Plumbing::Pipes(ends), stdio)
    };
    let args = ExecArgs {
        args: &spec.args,
        env: &spec.env,
        cwd: spec.cwd.as_deref(),
        console_socket: spec.tty.then_some(files.console.as_path()),
        pid_file: &files.pid,
        log: &files.log,
    };
    let started = tokio::time::timeout(
        START_TIMEOUT,
        runc.exec_detached(container_id, args, stdio.stdin, stdio.stdout, stdio.stderr),
    )
    .await;
    match started {
        Err(_) => return Err(ExecError::Timeout { id: container_id.to_string(), timeout: START_TIMEOUT }),
        Ok(result) => result?,
    }
    let pid = read_pid(&files.pid)?;
    // From here on the process runs: its kill guard comes first, so any later failure kills it.
    let (guard, exit) = watch_process(pid)?;
    let process = match plumbing {
        Plumbing::Pipes(ends) => {
            let output = |p| ExecReader { inner: OutputKind::Pipe(p), _guard: guard.clone() };
            ExecProcess {
                stdin: ends.stdin.map(|p| ExecStdin { inner: Some(StdinKind::Pipe(p)), _guard: guard.clone() }),
                stdout: Some(output(ends.stdout)),
                stderr: Some(output(ends.stderr)),
                terminal: None,
                pid,
                exit,
                guard,
            }
        }
        Plumbing::Console(listener) => {
            let master = tokio::time::timeout(CONSOLE_TIMEOUT, receive_console(&listener))
                .await
                .map_err(|_| io_err("receiving the terminal")(io::ErrorKind::TimedOut.into()))??;
            ExecProcess {
                stdin: spec
                    .stdin
                    .then(|| ExecStdin { inner: Some(StdinKind::Pty(master.clone())), _guard: guard.clone() }),
                stdout: Some(ExecReader { inner: OutputKind::Pty(master.clone()), _guard: guard.clone() }),
                stderr: None,
                terminal: Some(Terminal(master)),
                pid,
                exit,
                guard,
            }
        }
    };
    drop(dir);
    Ok(process)
}

/// How the process's stdio is wired.
enum Plumbing {
    /// Without a TTY: our ends of its pipes.
    Pipes(PipeEnds),
    /// With a TTY: where runc sends the terminal.
    Console(tokio::net::UnixListener),
}

/// The per-exec files in the private temp dir.
struct SetupFiles {
    console: PathBuf,
    pid: PathBuf,
    log: PathBuf,
}

impl SetupFiles {
    fn in_dir(dir: &Path) -> SetupFiles {
        SetupFiles { console: dir.join("console.sock"), pid: dir.join("exec.pid"), log: dir.join("runc.log") }
    }
}

/// The ends runc's child gets.
struct ChildStdio {
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
}

impl ChildStdio {
    fn null() -> ChildStdio {
        ChildStdio { stdin: Stdio::null(), stdout: Stdio::null(), stderr: Stdio::null() }
    }
}

/// The ends we keep.
struct PipeEnds {
    stdin: Option<tokio::net::unix::pipe::Sender>,
    stdout: tokio::net::unix::pipe::Receiver,
    stderr: tokio::net::unix::pipe::Receiver,
}

/// Pipes for a process without a terminal: ours non-blocking and close-on-exec, the child's
/// blocking (a process expects blocking stdio).
fn pipes(with_stdin: bool) -> Result<(PipeEnds, ChildStdio), ExecError> {
    let pipe = || -> Result<(OwnedFd, OwnedFd), ExecError> {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| io_err("creating a pipe")(e.into()))
    };
    let receiver =
        |fd: OwnedFd| tokio::net::unix::pipe::Receiver::from_owned_fd(fd).map_err(io_err("registering a pipe"));
    let (stdin_child, stdin_ours) = if with_stdin {
        let (r, w) = pipe()?;
        let sender = tokio::net::unix::pipe::Sender::from_owned_fd(w).map_err(io_err("registering a pipe"))?;
        (Stdio::from(r), Some(sender))
    } else {
        (Stdio::null(), None)
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    Ok((
        PipeEnds { stdin: stdin_ours, stdout: receiver(out_r)?, stderr: receiver(err_r)? },
        ChildStdio { stdin: stdin_child, stdout: Stdio::from(out_w), stderr: Stdio::from(err_w) },
    ))
}

fn read_pid(path: &Path) -> Result<i32, ExecError> {
    let text = std::fs::read_to_string(path).map_err(io_err("reading runc's pid file"))?;
    parse_pid(&text).ok_or_else(|| io_err("reading runc's pid file")(io::Error::other(format!("bad pid {text:?}"))))
}

/// A positive pid from a pid file's text.
fn parse_pid(text: &str) -> Option<i32> {
    text.trim().parse().ok().filter(|p: &i32| *p > 0)
}

/// Opens a pidfd on `pid` (now our child), spawns the task that reaps it, and returns the kill
/// guard and the exit waiter.
fn watch_process(pid: i32) -> Result<(Arc<KillOnDrop>, ExitWaiter), ExecError> {
    let fd = pidfd::open(pid).map_err(io_err("opening a pidfd"))?;
    let kill_fd = fd.try_clone().map_err(io_err("duplicating a pidfd"))?;
    let pidfd = Pidfd::register(fd, pid).map_err(io_err("registering a pidfd"))?;
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let status = match pidfd.reap().await {
            Ok(WaitStatus::Exited(_, code)) => Ok(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => Ok(128 + signal as i32),
            Ok(other) => Err(format!("unexpected wait status of {pid}: {other:?}")),
            Err(e) => Err(format!("waitpid {pid}: {e}")),
        };
        let _ = tx.send(Some(status));
    });
    let exit = ExitWaiter(rx);
    Ok((Arc::new(KillOnDrop { pidfd: kill_fd, exit: exit.clone() }), exit))
}

/// Accepts runc's connection on the console socket and takes the pty master it sends, made
/// non-blocking for tokio.
async fn receive_console(listener: &tokio::net::UnixListener) -> Result<Arc<AsyncFd<OwnedFd>>, ExecError> {
    let (stream, _) = listener.accept().await.map_err(io_err("accepting runc's console connection"))?;
    let master = loop {
        stream.readable().await.map_err(io_err("receiving the terminal"))?;
        match stream.try_io(tokio::io::Interest::READABLE, || recv_fd(&stream)) {
            Ok(fd) => break fd,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(io_err("receiving the terminal")(e)),
        }
    };
    rustix::io::ioctl_fionbio(&master, true).map_err(|e| io_err("making the terminal non-blocking")(e.into()))?;
    // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays open and the same for the
    // AsyncFd's whole life (the requirement of `register`).
    #[allow(unsafe_code)]
    let master = unsafe { AsyncFd::register(master) }.map_err(|e| io_err("registering the terminal")(e.into()))?;
    Ok(Arc::new(master))
}

/// One `recvmsg` on runc's console connection: the message is the pty's name, the descriptor
/// comes as `SCM_RIGHTS`.
fn recv_fd(socket: impl AsFd) -> io::Result<OwnedFd> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut name = [0u8; 4096];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg =
        rustix::net::recvmsg(socket, &mut [io::IoSliceMut::new(&mut name)], &mut control, RecvFlags::CMSG_CLOEXEC)?;
    let fd = control.drain().find_map(|m| match m {
        RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
        _ => None,
    });
    match fd {
        Some(fd) => Ok(fd),
        None if msg.bytes == 0 => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "runc closed the console socket")),
        None => Err(io::Error::other("runc's console message carried no descriptor")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pid_files() {
        let cases = [("4242", Some(4242)), ("4242\n", Some(4242)), ("", None), ("0", None), ("-1", None), ("x", None)];
        for (text, want) in cases {
            assert_eq!(parse_pid(text), want, "{text:?}");
        }
    }

    #[test]
    fn setup_files_live_in_the_private_dir() {
        let f = SetupFiles::in_dir(Path::new("/tmp/skiff-exec-x"));
        assert_eq!(f.console, Path::new("/tmp/skiff-exec-x/console.sock"));
        assert_eq!(f.pid, Path::new("/tmp/skiff-exec-x/exec.pid"));
        assert_eq!(f.log, Path::new("/tmp/skiff-exec-x/runc.log"));
    }

    #[tokio::test]
    async fn empty_commands_are_refused() {
        let runc = Runc::new("runc", "/nonexistent");
        let err = exec(&runc, "c", ExecSpec::default()).await.expect_err("empty");
        assert!(matches!(err, ExecError::EmptyCommand), "{err}");
    }

    #[tokio::test]
    async fn a_missing_runc_is_an_error() {
        let runc = Runc::new("/nonexistent/runc", "/nonexistent");
        let spec = ExecSpec { args: vec!["true".into()], ..Default::default() };
        let err = exec(&runc, "c", spec).await.expect_err("no runc");
        assert!(matches!(err, ExecError::Runc(RuncError::Spawn { .. })), "{err}");
    }

    #[tokio::test]
    async fn the_terminal_message_carries_a_descriptor() {
        use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
        let (a, b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let (r, _w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        let fds = [r.as_fd()];
        assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
        rustix::net::sendmsg(&a, &[io::IoSlice::new(b"/dev/pts/7")], &mut control, SendFlags::empty())
            .expect("sendmsg");
        let got = recv_fd(&b).expect("fd");
        let same = |fd: &OwnedFd| std::fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd)));
        assert_eq!(same(&got).expect("link"), same(&r).expect("link"));

        // A message without a descriptor, then a closed socket.
        rustix::net::sendmsg(&a, &[io::IoSlice::new(b"x")], &mut SendAncillaryBuffer::default(), SendFlags::empty())
            .expect("sendmsg");
        assert_eq!(recv_fd(&b).expect_err("no fd").to_string(), "runc's console message carried no descriptor");
        drop(a);
        assert_eq!(recv_fd(&b).expect_err("eof").kind(), io::ErrorKind::UnexpectedEof);
    }
}
