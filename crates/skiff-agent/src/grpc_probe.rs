//! The gRPC health probe (`probe.grpc`): one `grpc.health.v1.Health/Check` call over plaintext
//! HTTP/2 (h2c), as the kubelet's prober makes it (`pkg/probe/grpc`): the container is healthy
//! only when it answers `SERVING`.
//!
//! The two protobuf messages have one field each, so they are written and read here by hand
//! (`HealthCheckRequest { string service = 1 }`, `HealthCheckResponse { ServingStatus status = 1 }`)
//! rather than with a protobuf and gRPC stack the agent would carry for one call.

use std::pin::Pin;
use std::time::Duration;

use hyper::body::Body;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// What a check found: `Ok` with the serving status, or why it failed, in the kubelet's words.
pub type Answer = Result<(), String>;

/// `grpc.health.v1.HealthCheckResponse.ServingStatus` names.
fn status_name(n: u64) -> String {
    match n {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        n => n.to_string(),
    }
}

/// gRPC status code names (`codes.Code.String()`), for the messages of failed calls.
fn code_name(code: u32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    NAMES.get(code as usize).map_or_else(|| format!("Code({code})"), |n| n.to_string())
}

/// Appends `n` as a protobuf varint.
fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads a protobuf varint at the start of `b`: its value and length.
fn get_varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut n = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        n |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((n, i + 1));
        }
    }
    None
}

/// A `HealthCheckRequest` for `service` in a gRPC message frame (uncompressed flag, length).
pub fn request_frame(service: &str) -> Vec<u8> {
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a); // field 1, length-delimited
        put_varint(&mut msg, service.len() as u64);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    frame
}

/// The serving status of the `HealthCheckResponse` in a gRPC message frame (0, `UNKNOWN`, when
/// the field is absent, as protobuf's default).
pub fn response_status(frame: &[u8]) -> Result<u64, String> {
    let bad = || "malformed health response".to_string();
    let (&flag, rest) = frame.split_first().ok_or_else(bad)?;
    if flag != 0 || rest.len() < 4 {
        return Err(bad());
    }
    let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let mut msg = rest.get(4..4 + len).ok_or_else(bad)?;
    let mut status = 0;
    while !msg.is_empty() {
        let (key, n) = get_varint(msg).ok_or_else(bad)?;
        msg = &msg[n..];
        match key & 7 {
            0 => {
                let (v, n) = get_varint(msg).ok_or_else(bad)?;
                msg = &msg[n..];
                if key >> 3 == 1 {
                    status = v;
                }
            }
            2 => {
                let (len, n) = get_varint(msg).ok_or_else(bad)?;
                msg = msg.get(n + len as usize..).ok_or_else(bad)?;
            }
            1 => msg = msg.get(8..).ok_or_else(bad)?,
            5 => msg = msg.get(4..).ok_or_else(bad)?,
            _ => return Err(bad()),
        }
    }
    Ok(status)
}

/// Checks `service` (empty: the server as a whole) at `host:port`, within `timeout`.
pub async fn check(addr: &str, service: &str, timeout: Duration) -> Answer {
    let stream = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("timeout: failed to connect service {addr:?} within {timeout:?}: {e}")),
        Err(_) => return Err(format!("timeout: failed to connect service {addr:?} within {timeout:?}")),
    };
    match tokio::time::timeout(timeout, call(stream, addr, service)).await {
        Ok(answer) => answer,
        Err(_) => Err(format!("timeout: health rpc did not complete within {timeout:?}")),
    }
}

/// The health call on a connected stream.
async fn call(stream: tokio::net::TcpStream, addr: &str, service: &str) -> Answer {
    let failed = |e: &dyn std::fmt::Display| format!("error: health rpc probe failed: {e}");
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .map_err(|e| failed(&e))?;
    let driver = tokio::spawn(conn);
    let request = hyper::Request::post(format!("http://{addr}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", "kube-probe/1.35")
        .body(axum::body::Body::from(request_frame(service)))
        .map_err(|e| failed(&e))?;
    let answer = async {
        let response = sender.send_request(request).await.map_err(|e| failed(&e))?;
        let (head, mut body) = response.into_parts();
        if head.status != hyper::StatusCode::OK {
            return Err(failed(&format!("unexpected HTTP status {}", head.status)));
        }
        let (mut data, mut trailers) = (Vec::new(), None);
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            let frame = frame.map_err(|e| failed(&e))?;
            match frame.into_data() {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(frame) => trailers = frame.into_trailers().ok(),
            }
        }
        // A call that fails early answers with its status in the headers alone.
        let status_of = |h: &hyper::HeaderMap| {
            let code = h.get("grpc-status")?.to_str().ok()?.parse::<u32>().ok()?;
            let message = h.get("grpc-message").and_then(|m| m.to_str().ok()).unwrap_or("").to_string();
            Some((code, message))
        };
        match trailers.as_ref().and_then(status_of).or_else(|| status_of(&head.headers)) {
            Some((0, _)) => {}
            Some((12, message)) => {
                return Err(format!(
                    "this server doesn't implement the grpc health protocol (grpc.health.v1.Health): rpc error: code = Unimplemented desc = {message}"
                ));
            }
            Some((code, message)) => {
                return Err(failed(&format!("rpc error: code = {} desc = {message}", code_name(code))));
            }
            None => return Err(failed(&"no grpc-status in the answer")),
        }
        match response_status(&data)? {
            1 => Ok(()),
            other => Err(format!("service unhealthy (responded with {:?})", status_name(other))),
        }
    }
    .await;
    driver.abort();
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_requests_and_reads_responses() {
        assert_eq!(request_frame(""), vec![0, 0, 0, 0, 0]);
        assert_eq!(request_frame("etcd"), vec![0, 0, 0, 0, 6, 0x0a, 4, b'e', b't', b'c', b'd']);
        let long = "s".repeat(200);
        let framed = request_frame(&long);
        assert_eq!(&framed[..8], &[0, 0, 0, 0, 203, 0x0a, 0xc8, 0x01]);
        assert_eq!(response_status(&[0, 0, 0, 0, 2, 0x08, 1]), Ok(1));
        assert_eq!(response_status(&[0, 0, 0, 0, 2, 0x08, 2]), Ok(2));
        assert_eq!(response_status(&[0, 0, 0, 0, 0]), Ok(0), "absent field: UNKNOWN");
        // Unknown fields are skipped.
        assert_eq!(response_status(&[0, 0, 0, 0, 5, 0x12, 1, b'x', 0x08, 1]), Ok(1));
        for bad in [&[][..], &[1, 0, 0, 0, 0], &[0, 0, 0, 0, 9, 0x08], &[0, 0, 0, 0, 1, 0x08]] {
            assert!(response_status(bad).is_err(), "{bad:?}");
        }
        assert_eq!(status_name(3), "SERVICE_UNKNOWN");
        assert_eq!(code_name(14), "Unavailable");
        assert_eq!(code_name(99), "Code(99)");
    }
}
