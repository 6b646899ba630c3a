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
pub type SharedLog = Arc<parking_lot::Mutex<LogFile>>;

/// The kubelet's `containerLogMaxSize` default: a log file is rotated past 10 MiB.
pub const MAX_LOG_SIZE: u64 = 10 << 20;
/// The kubelet's `containerLogMaxFiles` default: the current file and 4 rotated ones.
pub const MAX_LOG_FILES: usize = 5;

/// A CRI log file that rotates by size, as the kubelet's container log manager does: past
/// `max_size`, `0.log` becomes `0.log.1` (older ones shift to `.2`, …; the oldest beyond
/// `max_files` goes) and writing goes on in a new `0.log`. Readers following the file notice the
/// new inode and reopen it.
#[derive(Debug)]
pub struct LogFile {
    path: std::path::PathBuf,
    file: std::fs::File,
    size: u64,
    max_size: u64,
    max_files: usize,
}

impl LogFile {
    /// Opens `path` for appending (created if needed) with the kubelet's default limits.
    pub fn open(path: &std::path::Path) -> std::io::Result<LogFile> {
        LogFile::with_limits(path, MAX_LOG_SIZE, MAX_LOG_FILES)
    }

    /// Opens `path` for appending, rotating past `max_size` bytes and keeping `max_files` files.
    pub fn with_limits(path: &std::path::Path, max_size: u64, max_files: usize) -> std::io::Result<LogFile> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogFile { path: path.to_owned(), file, size, max_size, max_files: max_files.max(1) })
    }

    /// Appends one entry, rotating first if it would take the file past its limit.
    pub fn write_entry(&mut self, entry: &[u8]) -> std::io::Result<()> {
        if self.size > 0 && self.size + entry.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(entry)?;
        self.size += entry.len() as u64;
        Ok(())
    }

    fn rotated(&self, n: usize) -> std::path::PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        name.into()
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if self.max_files == 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let _ = std::fs::remove_file(self.rotated(self.max_files - 1));
        for n in (1..self.max_files - 1).rev() {
            let _ = std::fs::rename(self.rotated(n), self.rotated(n + 1));
        }
        std::fs::rename(&self.path, self.rotated(1))?;
        self.file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Copies `reader` to `log` until end of file, one entry per line (lines over [`MAX_LINE`] split
/// into partial entries). A final unterminated line is written as a partial entry, as containerd
/// writes it, so readers give it back without a newline (`echo -n DONE` logs `DONE`, which a
/// `FallbackToLogsOnError` termination message shows as is).
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
        let entry = format_entry(&rfc3339_nano(jiff::Timestamp::now()), stream, partial || at_eof, &line);
        let _ = log.lock().write_entry(&entry);
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
        let log = Arc::new(parking_lot::Mutex::new(LogFile::open(&path).expect("create")));
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

    #[test]
    fn rotates_by_size_keeping_max_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        let mut log = LogFile::with_limits(&path, 10, 3).expect("open");
        for entry in ["aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n", "ffff\n", "gggg\n"] {
            log.write_entry(entry.as_bytes()).expect("write");
        }
        let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
        assert_eq!(read(&path), "gggg\n");
        assert_eq!(read(&dir.path().join("0.log.1")), "eeee\nffff\n");
        assert_eq!(read(&dir.path().join("0.log.2")), "cccc\ndddd\n");
        assert!(!dir.path().join("0.log.3").exists(), "only 3 files are kept");
        // Reopening continues the current file's size accounting.
        let mut again = LogFile::with_limits(&path, 10, 3).expect("reopen");
        again.write_entry(b"hhhh\n").expect("write");
        assert_eq!(read(&path), "gggg\nhhhh\n");
        again.write_entry(b"i\n").expect("write");
        assert_eq!(read(&path), "i\n");
    }

    #[tokio::test]
    async fn splits_lines_and_long_lines() {
        let e = |tag: &str, c: &str| ("stdout".to_string(), tag.to_string(), c.to_string());
        assert_eq!(run(b"a\n\nb\nlast").await, vec![e("F", "a"), e("F", ""), e("F", "b"), e("P", "last")]);
        assert_eq!(run(b"").await, vec![]);
        let long = "x".repeat(MAX_LINE + 5);
        assert_eq!(run(format!("{long}\n").as_bytes()).await, vec![e("P", &"x".repeat(MAX_LINE)), e("F", "xxxxx")]);
    }
}
