//! Container logs in the CRI format the kubelet reads (`kubectl logs`):
//! `<RFC3339Nano timestamp> <stdout|stderr> <F|P> <content>` per line, with `P` for a chunk of a
//! line longer than [`MAX_LINE`] that continues in the next entry and `F` for a line's last chunk.

use std::io::Write;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// The longest chunk written as one entry (containerd's default `max_container_log_line_size`).
pub const MAX_LINE: usize = 16 * 1024;

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The process's standard output.
    Stdout,
    /// The process's standard error.
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Go's `time.RFC3339Nano` in UTC: fractional seconds without trailing zeros (none if zero).
pub fn rfc3339_nano(ts: jiff::Timestamp) -> String {
    let base = ts.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = ts.subsec_nanosecond();
    if nanos == 0 {
        return format!("{base}Z");
    }
    let frac = format!("{nanos:09}");
    format!("{base}.{}Z", frac.trim_end_matches('0'))
}

/// One CRI log entry; `content` without its newline.
pub fn format_entry(ts: &str, stream: Stream, partial: bool, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 48);
    out.extend_from_slice(ts.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(content);
    out.push(b'\n');
    out
}

/// A log file shared by a container's stdout and stderr copiers.
pub type SharedLog = Arc<parking_lot::Mutex<std::fs::File>>;

/// Copies `reader` to `log` until end of file, one entry per line (lines over [`MAX_LINE`] split
/// into partial entries). A final unterminated line is written as a full entry.
pub async fn copy_stream(reader: impl AsyncRead + Unpin, stream: Stream, log: SharedLog) {
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        let (mut partial, mut newline) = (false, false);
        while let Ok(buf) = reader.fill_buf().await {
            if buf.is_empty() {
                break;
            }
            let room = MAX_LINE - line.len();
            if let Some(i) = buf.iter().take(room).position(|b| *b == b'\n') {
                line.extend_from_slice(&buf[..i]);
                reader.consume(i + 1);
                newline = true;
                break;
            }
            let n = buf.len().min(room);
            line.extend_from_slice(&buf[..n]);
            reader.consume(n);
            if line.len() >= MAX_LINE {
                partial = true;
                break;
            }
        }
        let at_eof = !newline && !partial;
        if at_eof && line.is_empty() {
            return;
        }
        let entry = format_entry(&rfc3339_nano(jiff::Timestamp::now()), stream, partial, &line);
        let _ = log.lock().write_all(&entry);
        if at_eof {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_timestamps_like_go() {
        let ts = |s: &str| s.parse::<jiff::Timestamp>().expect("ts");
        assert_eq!(rfc3339_nano(ts("2016-10-06T00:17:09.669794202Z")), "2016-10-06T00:17:09.669794202Z");
        assert_eq!(rfc3339_nano(ts("2016-10-06T00:17:09.5Z")), "2016-10-06T00:17:09.5Z");
        assert_eq!(rfc3339_nano(ts("2016-10-06T00:17:09Z")), "2016-10-06T00:17:09Z");
    }

    #[test]
    fn formats_entries() {
        assert_eq!(
            format_entry("2016-10-06T00:17:09.669794202Z", Stream::Stdout, false, b"hello"),
            b"2016-10-06T00:17:09.669794202Z stdout F hello\n"
        );
        assert_eq!(format_entry("T", Stream::Stderr, true, b""), b"T stderr P \n");
    }

    async fn run(input: &[u8]) -> Vec<(String, String, String)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        let log = Arc::new(parking_lot::Mutex::new(std::fs::File::create(&path).expect("create")));
        copy_stream(input, Stream::Stdout, log).await;
        let text = std::fs::read_to_string(&path).expect("read");
        text.lines()
            .map(|l| {
                let mut parts = l.splitn(4, ' ');
                let _ts = parts.next();
                let s = parts.next().unwrap_or_default().to_string();
                let tag = parts.next().unwrap_or_default().to_string();
                (s, tag, parts.next().unwrap_or_default().to_string())
            })
            .collect()
    }

    #[tokio::test]
    async fn splits_lines_and_long_lines() {
        let e = |tag: &str, c: &str| ("stdout".to_string(), tag.to_string(), c.to_string());
        assert_eq!(run(b"a\n\nb\nlast").await, vec![e("F", "a"), e("F", ""), e("F", "b"), e("F", "last")]);
        assert_eq!(run(b"").await, vec![]);
        let long = "x".repeat(MAX_LINE + 5);
        assert_eq!(run(format!("{long}\n").as_bytes()).await, vec![e("P", &"x".repeat(MAX_LINE)), e("F", "xxxxx")]);
    }
}
