//! The Kubernetes WebSocket channel protocol (`channel.k8s.io`, `v4.channel.k8s.io`,
//! `v5.channel.k8s.io`) as pure functions: every binary message starts with a stream id (0 stdin,
//! 1 stdout, 2 stderr, 3 error, 4 resize from v4 on); v5 adds the close signal `[255, id]`. Under v4
//! and v5 the exec ends with a `Status` JSON on channel 3; under the first version the error channel
//! carries only a failure's message, as text (apimachinery `util/httpstream/wsstream`, kubelet
//! `cri/streaming/remotecommand`).

use serde::Serialize;

use crate::runtime::TerminalSize;

/// Stream ids.
pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
/// v5: `[CLOSE, id]` half-closes stream `id`.
pub const CLOSE: u8 = 255;

/// A channel protocol version the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `channel.k8s.io`, the first version (what the conformance test of exec over WebSocket asks).
    V1,
    V4,
    V5,
}

impl Protocol {
    /// The subprotocols offered to `WebSocketUpgrade::protocols`, most preferred first.
    pub const OFFERED: [&'static str; 3] = ["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"];

    /// The `Sec-WebSocket-Protocol` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::V1 => "channel.k8s.io",
            Protocol::V4 => "v4.channel.k8s.io",
            Protocol::V5 => "v5.channel.k8s.io",
        }
    }

    /// What the error channel carries for the exec's final `status` (a [`exit_status`] or
    /// [`internal_error_status`] JSON): the Status itself from v4 on; under v1 nothing for a
    /// success and the message text of a failure (`v1WriteStatusFunc`).
    pub fn final_error(self, status: Vec<u8>) -> Option<Vec<u8>> {
        if self != Protocol::V1 {
            return Some(status);
        }
        let parsed: serde_json::Value = serde_json::from_slice(&status).ok()?;
        if parsed["status"] == "Success" {
            return None;
        }
        Some(parsed["message"].as_str().unwrap_or("").as_bytes().to_vec())
    }

    /// The protocol a negotiated subprotocol names.
    pub fn from_name(name: &str) -> Option<Protocol> {
        match name.trim() {
            "channel.k8s.io" => Some(Protocol::V1),
            "v4.channel.k8s.io" => Some(Protocol::V4),
            "v5.channel.k8s.io" => Some(Protocol::V5),
            _ => None,
        }
    }
}

/// One outgoing message: the stream id followed by the data.
pub fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1);
    out.push(stream);
    out.extend_from_slice(data);
    out
}

/// What a client message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Bytes for the process's stdin.
    Stdin(Vec<u8>),
    /// A terminal size change.
    Resize(TerminalSize),
    /// v5: the client closed stream `id` (0: stdin EOF).
    Close(u8),
    /// Empty messages, unknown streams, a close signal under v4, a zero size: nothing to do.
    Ignored,
}

/// Why a client message cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("invalid resize message: {0}")]
    Resize(String),
}

/// The wire form of a resize (`{"Width":W,"Height":H}`, Go field names).
#[derive(Debug, serde::Deserialize)]
struct WireSize {
    #[serde(rename = "Width", default)]
    width: u16,
    #[serde(rename = "Height", default)]
    height: u16,
}

/// Decodes one binary message from the client.
pub fn parse_inbound(protocol: Protocol, message: &[u8]) -> Result<Inbound, ChannelError> {
    let Some((&stream, data)) = message.split_first() else { return Ok(Inbound::Ignored) };
    match stream {
        STDIN if data.is_empty() => Ok(Inbound::Ignored),
        STDIN => Ok(Inbound::Stdin(data.to_vec())),
        RESIZE if protocol == Protocol::V1 => Ok(Inbound::Ignored),
        RESIZE => {
            let size: WireSize = serde_json::from_slice(data).map_err(|e| ChannelError::Resize(e.to_string()))?;
            // The kubelet skips a zero size (a terminal that reports none).
            if size.width == 0 && size.height == 0 {
                return Ok(Inbound::Ignored);
            }
            Ok(Inbound::Resize(TerminalSize { width: size.width, height: size.height }))
        }
        CLOSE if protocol == Protocol::V5 => Ok(data.first().map_or(Inbound::Ignored, |&id| Inbound::Close(id))),
        _ => Ok(Inbound::Ignored),
    }
}

/// The first message: an empty one on the lowest stream the client reads, telling it the
/// connection is established (the kubelet's `createWebSocketStreams`).
pub fn ready_frame(stdout: bool, stderr: bool) -> Vec<u8> {
    let stream = if stdout {
        STDOUT
    } else if stderr {
        STDERR
    } else {
        ERROR
    };
    vec![stream]
}

/// A `metav1.Status` as the kubelet marshals it on the error stream (Go field order, empty fields
/// left out, `metadata` always present).
#[derive(Debug, Serialize)]
struct WireStatus<'a> {
    metadata: Empty,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<WireDetails<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
}

#[derive(Debug, Serialize)]
struct Empty {}

#[derive(Debug, Serialize)]
struct WireDetails<'a> {
    causes: Vec<WireCause<'a>>,
}

#[derive(Debug, Serialize)]
struct WireCause<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    message: String,
}

fn to_bytes(status: &WireStatus<'_>) -> Vec<u8> {
    serde_json::to_vec(status).unwrap_or_else(|_| br#"{"metadata":{},"status":"Failure"}"#.to_vec())
}

/// The Status for a command that exited: `Success` for 0, else `Failure` / `NonZeroExitCode` with
/// the code as the `ExitCode` cause (which kubectl turns into "command terminated with exit code
/// N"). The message words the cause as containerd does.
pub fn exit_status(command: &[String], code: i32) -> Vec<u8> {
    if code == 0 {
        return to_bytes(&WireStatus {
            metadata: Empty {},
            status: "Success",
            message: None,
            reason: None,
            details: None,
            code: None,
        });
    }
    to_bytes(&WireStatus {
        metadata: Empty {},
        status: "Failure",
        message: Some(format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        )),
        reason: Some("NonZeroExitCode"),
        details: Some(WireDetails { causes: vec![WireCause { reason: Some("ExitCode"), message: code.to_string() }] }),
        code: None,
    })
}

/// The Status for a command that could not be run (`apierrors.NewInternalError`).
pub fn internal_error_status(error: &str) -> Vec<u8> {
    let cause = format!("error executing command in container: {error}");
    to_bytes(&WireStatus {
        metadata: Empty {},
        status: "Failure",
        message: Some(format!("Internal error occurred: {cause}")),
        reason: Some("InternalError"),
        details: Some(WireDetails { causes: vec![WireCause { reason: None, message: cause }] }),
        code: Some(500),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_names() {
        assert_eq!(Protocol::from_name("v5.channel.k8s.io"), Some(Protocol::V5));
        assert_eq!(Protocol::from_name(" v4.channel.k8s.io"), Some(Protocol::V4));
        assert_eq!(Protocol::from_name("channel.k8s.io"), Some(Protocol::V1));
        assert_eq!(Protocol::from_name("base64.channel.k8s.io"), None);
        assert_eq!(Protocol::from_name("v5.channel.k8s.io+base64"), None);
        for p in [Protocol::V1, Protocol::V4, Protocol::V5] {
            assert_eq!(Protocol::from_name(p.as_str()), Some(p));
        }
        assert_eq!(Protocol::OFFERED[0], "v5.channel.k8s.io");
    }

    #[test]
    fn frames() {
        assert_eq!(frame(STDOUT, b"hi\n"), b"\x01hi\n".to_vec());
        assert_eq!(frame(STDERR, b""), vec![2]);
        assert_eq!(frame(ERROR, b"{}"), b"\x03{}".to_vec());
    }

    #[test]
    fn inbound_messages() {
        let size = |w, h| Inbound::Resize(TerminalSize { width: w, height: h });
        let cases: Vec<(Protocol, &[u8], Inbound)> = vec![
            (Protocol::V5, b"", Inbound::Ignored),
            (Protocol::V5, b"\x00", Inbound::Ignored),
            (Protocol::V5, b"\x00ls\n", Inbound::Stdin(b"ls\n".to_vec())),
            (Protocol::V4, b"\x00x", Inbound::Stdin(b"x".to_vec())),
            (Protocol::V5, br#"{"Width":80,"Height":24}"#, Inbound::Ignored),
            (Protocol::V5, b"\x04{\"Width\":80,\"Height\":24}", size(80, 24)),
            (Protocol::V4, b"\x04{\"Height\":50,\"Width\":200}", size(200, 50)),
            (Protocol::V5, b"\x04{\"Width\":0,\"Height\":0}", Inbound::Ignored),
            (Protocol::V1, b"\x04{\"Width\":80,\"Height\":24}", Inbound::Ignored),
            (Protocol::V1, b"\x00x", Inbound::Stdin(b"x".to_vec())),
            (Protocol::V1, b"\xff\x00", Inbound::Ignored),
            (Protocol::V5, b"\xff\x00", Inbound::Close(0)),
            (Protocol::V5, b"\xff\x01", Inbound::Close(1)),
            (Protocol::V5, b"\xff", Inbound::Ignored),
            (Protocol::V4, b"\xff\x00", Inbound::Ignored),
            (Protocol::V5, b"\x01out", Inbound::Ignored),
            (Protocol::V5, b"\x07?", Inbound::Ignored),
        ];
        for (protocol, message, want) in cases {
            assert_eq!(parse_inbound(protocol, message), Ok(want), "{protocol:?} {message:?}");
        }
        assert!(matches!(parse_inbound(Protocol::V5, b"\x04not json"), Err(ChannelError::Resize(_))));
        assert!(matches!(parse_inbound(Protocol::V5, b"\x04{\"Width\":-1}"), Err(ChannelError::Resize(_))));
    }

    #[test]
    fn the_first_version_sends_only_failures_as_text() {
        let ok = exit_status(&["ls".into()], 0);
        let failed = exit_status(&["false".into()], 1);
        assert_eq!(Protocol::V1.final_error(ok.clone()), None);
        assert_eq!(
            Protocol::V1.final_error(failed.clone()).as_deref(),
            Some(&b"command terminated with non-zero exit code: error executing command [false], exit code 1"[..])
        );
        assert_eq!(Protocol::V4.final_error(ok.clone()), Some(ok.clone()));
        assert_eq!(Protocol::V5.final_error(failed.clone()), Some(failed));
    }

    #[test]
    fn ready_frames() {
        assert_eq!(ready_frame(true, true), vec![STDOUT]);
        assert_eq!(ready_frame(false, true), vec![STDERR]);
        assert_eq!(ready_frame(false, false), vec![ERROR]);
    }

    #[test]
    fn statuses() {
        assert_eq!(
            String::from_utf8(exit_status(&["ls".into()], 0)).expect("utf8"),
            r#"{"metadata":{},"status":"Success"}"#
        );
        let cmd: Vec<String> = ["sh", "-c", "exit 3"].map(String::from).to_vec();
        assert_eq!(
            String::from_utf8(exit_status(&cmd, 3)).expect("utf8"),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        assert_eq!(
            String::from_utf8(internal_error_status("no such file")).expect("utf8"),
            r#"{"metadata":{},"status":"Failure","message":"Internal error occurred: error executing command in container: no such file","reason":"InternalError","details":{"causes":[{"message":"error executing command in container: no such file"}]},"code":500}"#
        );
    }
}
