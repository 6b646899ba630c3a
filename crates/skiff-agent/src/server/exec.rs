//! `kubectl exec` on the node: the WebSocket channel protocol bridged to an
//! [`ExecSession`] of the runtime. Output streams become channel 1/2 messages, channel 0 feeds
//! stdin (v5's `[255, 0]` closes it), channel 4 resizes the terminal, and the end is a `Status` on
//! channel 3 followed by a normal close. A client that goes away drops the session, and the
//! runtime kills the process.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::channel::{self, Inbound, Protocol};
use super::logs::{form_pairs, parse_bool};
use crate::runtime::{ExecRequest, ExecSession, RuntimeError, TerminalSize};

/// After the process exits, how long its output may still take to reach end-of-file (a
/// background child can hold the pipes open).
pub const DRAIN: Duration = Duration::from_secs(2);

/// What the exec request asks for (`PodExecOptions` on the kubelet's query).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecParams {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    /// Always false with `tty` (the terminal merges stderr into stdout).
    pub stderr: bool,
    pub tty: bool,
}

impl ExecParams {
    /// The runtime request.
    pub fn request(&self) -> ExecRequest {
        ExecRequest { command: self.command.clone(), stdin: self.stdin, tty: self.tty }
    }
}

/// Why an exec query is refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecParamsError {
    #[error("you must specify at least one command for the container")]
    NoCommand,
    #[error("you must specify at least 1 of stdin, stdout, stderr")]
    NoStreams,
    #[error("invalid value {value:?} for {param}")]
    Invalid { param: String, value: String },
}

/// Parses `command=...` (repeated, in order) and the stream flags. Both the API names
/// (`stdin`, `stdout`, `stderr`, `tty` = `true`) and the names kube-apiserver sends the kubelet
/// (`input`, `output`, `error`, `tty` = `1`) are understood.
pub fn parse_exec_query(query: &str) -> Result<ExecParams, ExecParamsError> {
    let mut p = ExecParams::default();
    for (key, value) in form_pairs(query) {
        let flag =
            || parse_bool(&value).ok_or_else(|| ExecParamsError::Invalid { param: key.clone(), value: value.clone() });
        match key.as_str() {
            "command" => p.command.push(value.clone()),
            "stdin" | "input" => p.stdin = flag()?,
            "stdout" | "output" => p.stdout = flag()?,
            "stderr" | "error" => p.stderr = flag()?,
            "tty" => p.tty = flag()?,
            _ => {}
        }
    }
    if p.command.is_empty() {
        return Err(ExecParamsError::NoCommand);
    }
    if !(p.stdin || p.stdout || p.stderr) {
        return Err(ExecParamsError::NoStreams);
    }
    if p.tty {
        p.stderr = false;
    }
    Ok(p)
}

/// Runs one exec over an upgraded WebSocket: starts the session with `start`, bridges it, and
/// ends with the Status. A start failure becomes an `InternalError` Status.
pub async fn serve<F>(socket: WebSocket, protocol: Protocol, params: ExecParams, start: F)
where
    F: std::future::Future<Output = Result<ExecSession, RuntimeError>>,
{
    let (sink, stream) = socket.split();
    let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(16);
    let writer = tokio::spawn(write_loop(sink, out_rx));
    let _ = out_tx.send(channel::ready_frame(params.stdout, params.stderr)).await;
    let session = match start.await {
        Ok(s) => s,
        Err(e) => {
            if let Some(error) = protocol.final_error(channel::internal_error_status(&e.to_string())) {
                let _ = out_tx.send(channel::frame(channel::ERROR, &error)).await;
            }
            drop(out_tx);
            let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
            return;
        }
    };
    let ExecSession { stdin, stdout, stderr, resize, exit } = session;

    let mut pumps = JoinSet::new();
    if let Some(r) = stdout {
        pumps.spawn(pump(r, params.stdout.then(|| (channel::STDOUT, out_tx.clone()))));
    }
    if let Some(r) = stderr {
        pumps.spawn(pump(r, params.stderr.then(|| (channel::STDERR, out_tx.clone()))));
    }
    let (stdin_tx, stdin_rx) = mpsc::channel::<Vec<u8>>(16);
    // Without `stdin` the runtime's writer (if any) is dropped here: the process reads EOF.
    let stdin_task = stdin.filter(|_| params.stdin).map(|w| tokio::spawn(write_stdin(w, stdin_rx)));

    let reader = read_loop(stream, protocol, stdin_tx, resize);
    let main = async {
        let code = exit.await;
        let _ = tokio::time::timeout(DRAIN, async { while pumps.join_next().await.is_some() {} }).await;
        code
    };
    let outcome = tokio::select! {
        _ = reader => None,
        code = main => Some(code),
    };
    pumps.abort_all();
    if let Some(t) = &stdin_task {
        t.abort();
    }
    match outcome {
        None => {
            // The client went away: dropping the session stops the process.
            writer.abort();
        }
        Some(code) => {
            let status = match code {
                Ok(code) => channel::exit_status(&params.command, code),
                Err(e) => channel::internal_error_status(&e.to_string()),
            };
            if let Some(error) = protocol.final_error(status) {
                let _ = out_tx.send(channel::frame(channel::ERROR, &error)).await;
            }
            drop(out_tx);
            let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
        }
    }
}

/// Sends frames until every sender is gone, then closes normally.
async fn write_loop(mut sink: SplitSink<WebSocket, Message>, mut frames: mpsc::Receiver<Vec<u8>>) {
    while let Some(f) = frames.recv().await {
        if sink.send(Message::Binary(f.into())).await.is_err() {
            return;
        }
    }
    let _ = sink.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
    let _ = sink.close().await;
}

/// Reads client messages until the client closes or goes away.
async fn read_loop(
    mut stream: SplitStream<WebSocket>,
    protocol: Protocol,
    stdin: mpsc::Sender<Vec<u8>>,
    resize: Option<mpsc::UnboundedSender<TerminalSize>>,
) {
    let mut stdin = Some(stdin);
    while let Some(Ok(message)) = stream.next().await {
        let data = match message {
            Message::Binary(data) => data,
            Message::Close(_) => return,
            // Pings are answered by the WebSocket layer; text is not part of v4/v5.
            _ => continue,
        };
        match channel::parse_inbound(protocol, &data) {
            Ok(Inbound::Stdin(bytes)) => {
                if let Some(tx) = &stdin
                    && tx.send(bytes).await.is_err()
                {
                    stdin = None;
                }
            }
            Ok(Inbound::Resize(size)) => {
                if let Some(r) = &resize {
                    let _ = r.send(size);
                }
            }
            Ok(Inbound::Close(channel::STDIN)) => stdin = None,
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "ignoring a bad exec message"),
        }
    }
}

/// Copies client input to the process until the client closes stdin.
async fn write_stdin(mut w: Box<dyn AsyncWrite + Send + Unpin>, mut input: mpsc::Receiver<Vec<u8>>) {
    while let Some(bytes) = input.recv().await {
        if w.write_all(&bytes).await.is_err() || w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}

/// Forwards one output stream as frames on `target`'s stream id (or discards it when the client
/// did not ask for it, so the process never blocks on a full pipe).
async fn pump(mut r: Box<dyn AsyncRead + Send + Unpin>, target: Option<(u8, mpsc::Sender<Vec<u8>>)>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Some((id, tx)) = &target
            && tx.send(channel::frame(*id, &buf[..n])).await.is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_queries() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let cases = [
            (
                "command=sh&command=-c&command=echo%20hi&stdin=true&stdout=true&stderr=true&tty=false",
                ExecParams {
                    command: s(&["sh", "-c", "echo hi"]),
                    stdin: true,
                    stdout: true,
                    stderr: true,
                    tty: false,
                },
            ),
            (
                "command=ls&output=1&error=1",
                ExecParams { command: s(&["ls"]), stdin: false, stdout: true, stderr: true, tty: false },
            ),
            (
                "command=bash&input=1&output=1&error=1&tty=1",
                ExecParams { command: s(&["bash"]), stdin: true, stdout: true, stderr: false, tty: true },
            ),
            (
                "stdout=true&command=a&container=c&command=b",
                ExecParams { command: s(&["a", "b"]), stdout: true, ..ExecParams::default() },
            ),
        ];
        for (query, want) in cases {
            assert_eq!(parse_exec_query(query), Ok(want), "{query}");
        }
        assert_eq!(parse_exec_query("stdout=true"), Err(ExecParamsError::NoCommand));
        assert_eq!(parse_exec_query("command=ls&stdout=false"), Err(ExecParamsError::NoStreams));
        assert_eq!(
            parse_exec_query("command=ls&stdout=maybe").map_err(|e| e.to_string()),
            Err("invalid value \"maybe\" for stdout".to_string())
        );
        let p = parse_exec_query("command=cat&stdin=true&tty=true").expect("valid");
        assert_eq!(p.request(), ExecRequest { command: s(&["cat"]), stdin: true, tty: true });
    }
}
