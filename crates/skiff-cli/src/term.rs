//! The local terminal of `skiff exec -it`, as kubectl's `k8s.io/kubectl/pkg/util/term` handles it:
//! whether a TTY is used at all (`SetupTTY`), raw mode for the session with the terminal restored
//! on every way out (`TTY.Safe`, moby's `MakeRaw`/`RestoreTerminal`), and the window size sent on
//! the resize channel, first the initial one and then one per `SIGWINCH` (`MonitorSize`).

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use futures::SinkExt;
use futures::channel::mpsc;
use kube::api::TerminalSize;
use rustix::termios::{OptionalActions, Termios, tcgetattr, tcgetwinsize, tcsetattr};
use tokio::signal::unix::{SignalKind, signal};

/// kubectl's warning when `-t` is asked for but stdin is not a terminal (the session goes on
/// without one).
pub const NOT_A_TERMINAL: &str = "Unable to use a TTY - input is not a terminal or the right kind of file";

/// How an exec session uses the terminal (kubectl's `StreamOptions.SetupTTY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtyPlan {
    /// Ask the server for a TTY (`tty=true`, stderr merged into stdout) and put the local
    /// terminal in raw mode.
    pub tty: bool,
    /// Print [`NOT_A_TERMINAL`] first.
    pub warn: bool,
}

/// Decides the TTY from `-i`, `-t` and whether stdin is a terminal. As kubectl: without `-i` there
/// is no TTY (and no warning); `-it` on a stdin that is not a terminal warns and goes on without.
pub fn plan(stdin: bool, tty: bool, stdin_is_terminal: bool) -> TtyPlan {
    let wanted = stdin && tty;
    TtyPlan { tty: wanted && stdin_is_terminal, warn: wanted && !stdin_is_terminal }
}

/// The terminal settings of a descriptor as they were, put back when the guard is dropped: at the
/// end of the session, on an error (`?`), on a panic's unwinding, and before an exit on a signal
/// (the caller drops it first). kubectl saves them even when it does not go raw.
pub struct TerminalGuard {
    fd: OwnedFd,
    saved: Termios,
}

impl TerminalGuard {
    /// Saves the settings of the terminal `fd` refers to, changing nothing.
    pub fn save(fd: impl AsFd) -> io::Result<TerminalGuard> {
        let fd = fd.as_fd().try_clone_to_owned()?;
        let saved = tcgetattr(&fd)?;
        Ok(TerminalGuard { fd, saved })
    }

    /// Saves the settings, then puts the terminal in raw mode (`cfmakeraw`, as moby's `MakeRaw`):
    /// no echo, no line editing, no signals from keys (Ctrl-C reaches the remote process as a
    /// byte), no output processing, 8-bit characters, reads return after one byte.
    pub fn raw(fd: impl AsFd) -> io::Result<TerminalGuard> {
        let guard = TerminalGuard::save(fd)?;
        let mut raw = guard.saved.clone();
        raw.make_raw();
        tcsetattr(&guard.fd, OptionalActions::Now, &raw)?;
        Ok(guard)
    }

    /// Puts the saved settings back now (dropping the guard does it too).
    pub fn restore(&self) -> io::Result<()> {
        Ok(tcsetattr(&self.fd, OptionalActions::Now, &self.saved)?)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        // Nothing better to do on failure: the terminal may already be gone (a hangup).
        let _ = self.restore();
    }
}

/// The size kubectl sends for a terminal of `rows` lines and `cols` columns: `Width` is the
/// columns, `Height` the lines (`{"Width":cols,"Height":rows}` on channel 4).
pub fn terminal_size(rows: u16, cols: u16) -> TerminalSize {
    TerminalSize { width: cols, height: rows }
}

/// The window size of the terminal `fd` refers to, `None` when it is not a terminal.
pub fn window_size(fd: impl AsFd) -> Option<TerminalSize> {
    let ws = tcgetwinsize(fd).ok()?;
    Some(terminal_size(ws.ws_row, ws.ws_col))
}

/// Sends the window size of the terminal `out` (kubectl measures its stdout) to `sizes`: once now,
/// then after each `SIGWINCH`, until the terminal cannot be measured or `sizes` is closed. A size
/// that cannot be queued at once is dropped, as kubectl does, so a slow connection never blocks.
pub async fn forward_sizes(out: OwnedFd, mut sizes: mpsc::Sender<TerminalSize>) {
    let Some(initial) = window_size(&out) else {
        return;
    };
    if sizes.send(initial).await.is_err() {
        return;
    }
    let Ok(mut winch) = signal(SignalKind::window_change()) else {
        return;
    };
    while winch.recv().await.is_some() {
        let Some(size) = window_size(&out) else {
            return;
        };
        if sizes.try_send(size).is_err_and(|e| e.is_disconnected()) {
            return;
        }
    }
}

/// Resolves at the first SIGHUP, SIGINT, SIGTERM or SIGQUIT (kubectl's `interrupt` handler, which
/// restores the terminal and exits 1). Listening starts at the first poll; if a handler cannot be
/// installed the future never resolves (the signal then acts as it would without us).
pub async fn termination_signal() {
    let kinds = [SignalKind::hangup(), SignalKind::interrupt(), SignalKind::terminate(), SignalKind::quit()];
    let mut streams: Vec<_> = kinds.into_iter().filter_map(|k| signal(k).ok()).collect();
    if streams.is_empty() {
        return std::future::pending().await;
    }
    let waits = streams.iter_mut().map(|s| Box::pin(s.recv()));
    futures::future::select_all(waits).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::termios::{ControlModes, InputModes, LocalModes, OutputModes, SpecialCodeIndex, Winsize, tcsetwinsize};

    #[test]
    fn plans_the_tty_as_kubectl() {
        // (-i, -t, stdin is a terminal) -> (tty, warning)
        let cases = [
            ((true, true, true), (true, false)),
            ((true, true, false), (false, true)),
            ((false, true, true), (false, false)),
            ((false, true, false), (false, false)),
            ((true, false, true), (false, false)),
            ((true, false, false), (false, false)),
            ((false, false, true), (false, false)),
        ];
        for ((stdin, tty, terminal), (want_tty, warn)) in cases {
            assert_eq!(plan(stdin, tty, terminal), TtyPlan { tty: want_tty, warn }, "-i={stdin} -t={tty} {terminal}");
        }
        assert_eq!(NOT_A_TERMINAL, "Unable to use a TTY - input is not a terminal or the right kind of file");
    }

    #[test]
    fn resize_messages_carry_columns_as_width_and_rows_as_height() {
        // kube writes this JSON after the channel byte 4; the kubelet decodes Go's field names.
        for (rows, cols, json) in [
            (24, 80, r#"{"Width":80,"Height":24}"#),
            (37, 101, r#"{"Width":101,"Height":37}"#),
            (0, 0, r#"{"Width":0,"Height":0}"#),
            (u16::MAX, 1, r#"{"Width":1,"Height":65535}"#),
        ] {
            let encoded = serde_json::to_string(&terminal_size(rows, cols)).expect("encode");
            assert_eq!(encoded, json, "{rows}x{cols}");
        }
    }

    /// A pseudo-terminal pair: (controller, the terminal side a program would have as stdin).
    fn pty() -> (OwnedFd, std::fs::File) {
        use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
        let controller = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).expect("openpt");
        grantpt(&controller).expect("grantpt");
        unlockpt(&controller).expect("unlockpt");
        let name = ptsname(&controller, Vec::new()).expect("ptsname");
        let path = std::path::PathBuf::from(name.to_str().expect("utf-8 name"));
        let terminal = std::fs::OpenOptions::new().read(true).write(true).open(path).expect("open the terminal");
        (controller, terminal)
    }

    type Snapshot = (InputModes, OutputModes, ControlModes, LocalModes, Vec<u8>);

    fn snapshot(fd: impl AsFd) -> Snapshot {
        let t = tcgetattr(fd).expect("tcgetattr");
        let codes = [
            SpecialCodeIndex::VMIN,
            SpecialCodeIndex::VTIME,
            SpecialCodeIndex::VINTR,
            SpecialCodeIndex::VEOF,
            SpecialCodeIndex::VERASE,
            SpecialCodeIndex::VQUIT,
        ];
        let cc = codes.into_iter().map(|i| t.special_codes[i]).collect();
        (t.input_modes, t.output_modes, t.control_modes, t.local_modes, cc)
    }

    #[test]
    fn raw_mode_is_moby_make_raw_and_dropping_the_guard_restores_the_terminal() {
        let (_controller, terminal) = pty();
        let before = snapshot(&terminal);
        // A fresh pty is cooked: line editing, echo and signal keys on.
        assert!(before.3.contains(LocalModes::ICANON | LocalModes::ECHO | LocalModes::ISIG), "{before:?}");
        {
            let _guard = TerminalGuard::raw(&terminal).expect("raw mode");
            let (input, output, control, local, cc) = snapshot(&terminal);
            let cooked_local = LocalModes::ECHO | LocalModes::ECHONL | LocalModes::ICANON | LocalModes::ISIG;
            assert!(!local.intersects(cooked_local | LocalModes::IEXTEN), "{local:?}");
            let cooked_input = InputModes::IGNBRK
                | InputModes::BRKINT
                | InputModes::PARMRK
                | InputModes::ISTRIP
                | InputModes::INLCR
                | InputModes::IGNCR
                | InputModes::ICRNL
                | InputModes::IXON;
            assert!(!input.intersects(cooked_input), "{input:?}");
            assert!(!output.contains(OutputModes::OPOST), "{output:?}");
            assert!(!control.contains(ControlModes::PARENB), "{control:?}");
            assert_eq!(control & ControlModes::CSIZE, ControlModes::CS8, "{control:?}");
            assert_eq!((cc[0], cc[1]), (1, 0), "VMIN 1, VTIME 0");
            assert_ne!(snapshot(&terminal), before);
        }
        assert_eq!(snapshot(&terminal), before, "the guard put every setting back");
    }

    #[test]
    fn the_guard_restores_on_an_error_path_and_a_saved_guard_changes_nothing() {
        let (_controller, terminal) = pty();
        let before = snapshot(&terminal);
        let failing = || -> io::Result<()> {
            let _guard = TerminalGuard::raw(&terminal)?;
            Err(io::Error::other("the session failed"))
        };
        assert!(failing().is_err());
        assert_eq!(snapshot(&terminal), before, "restored when `?` left early");
        let saved = TerminalGuard::save(&terminal).expect("save");
        assert_eq!(snapshot(&terminal), before, "saving changes nothing");
        drop(saved);
        assert_eq!(snapshot(&terminal), before);
        // Not a terminal: no guard (kubectl then runs the session as is).
        let file = regular_file();
        assert!(TerminalGuard::raw(&file).is_err());
        assert!(window_size(&file).is_none());
    }

    fn regular_file() -> std::fs::File {
        std::fs::File::open("/proc/self/status").expect("open a regular file")
    }

    #[test]
    fn measures_the_window_as_width_columns_and_height_rows() {
        let (_controller, terminal) = pty();
        let size = Winsize { ws_row: 37, ws_col: 101, ws_xpixel: 0, ws_ypixel: 0 };
        tcsetwinsize(&terminal, size).expect("set the size");
        let measured = window_size(&terminal).expect("a terminal");
        assert_eq!((measured.width, measured.height), (101, 37));
    }

    #[tokio::test]
    async fn forwards_the_initial_size_then_each_change() {
        let (_controller, terminal) = pty();
        tcsetwinsize(&terminal, Winsize { ws_row: 24, ws_col: 80, ws_xpixel: 0, ws_ypixel: 0 }).expect("size");
        use futures::StreamExt;
        let (tx, mut rx) = mpsc::channel(10);
        let out = terminal.as_fd().try_clone_to_owned().expect("dup");
        let task = tokio::spawn(forward_sizes(out, tx));
        let first = rx.next().await.expect("the initial size");
        assert_eq!((first.width, first.height), (80, 24));
        tcsetwinsize(&terminal, Winsize { ws_row: 50, ws_col: 132, ws_xpixel: 0, ws_ypixel: 0 }).expect("size");
        // The process is not the pty's session leader, so no SIGWINCH arrives by itself: send one.
        let wait = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            loop {
                rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::WINCH).expect("kill");
                if let Ok(Some(size)) = tokio::time::timeout(std::time::Duration::from_millis(200), rx.next()).await {
                    return size;
                }
            }
        });
        let changed = wait.await.expect("a resize after SIGWINCH");
        assert_eq!((changed.width, changed.height), (132, 50));
        task.abort();
    }
}
