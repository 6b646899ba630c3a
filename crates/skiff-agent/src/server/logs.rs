//! Container logs as the kubelet serves them: the CRI log file (`<RFC3339Nano> <stdout|stderr>
//! <P|F> <text>` per line, `P` for a piece of a longer line) read with `PodLogOptions`
//! (kubelet `kuberuntime/logs/logs.go`).
//!
//! Parsing and formatting are pure ([`parse_line`], [`LogWriter`], [`tail_start`]);
//! [`stream_log`] drives them over the file and, with `follow`, keeps reading as the file grows
//! until the container stops running and the file is drained.
//!
//! Two refinements over the kubelet, which works on raw file lines: `P` pieces are joined into
//! one logical line, so `tailLines` counts logical lines and `timestamps` prefixes each logical
//! line once (with its first piece's time), and `sinceTime` keeps or drops a logical line whole.

use std::future::Future;
use std::io::SeekFrom;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, BufReader};
use tokio::sync::mpsc;

/// How often a followed log is re-read at its end.
pub const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// How often, while following, the container is checked to still be running.
pub const STATE_CHECK: Duration = Duration::from_millis(500);
/// Output is sent in chunks of about this size.
const CHUNK: usize = 32 * 1024;

/// `PodLogOptions`, as the kubelet's `/containerLogs` endpoint takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    /// Only the last N lines.
    pub tail_lines: Option<u64>,
    /// Lines older than this are left out (`sinceSeconds` or `sinceTime`; the later wins).
    pub since: Option<Timestamp>,
    /// Prefix each line with its RFC3339Nano time and a space.
    pub timestamps: bool,
    /// Stop after this many bytes.
    pub limit_bytes: Option<u64>,
}

/// Why the query is not valid `PodLogOptions`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogOptionsError {
    #[error("{param}: Invalid value: \"{value}\": {why}")]
    Invalid { param: &'static str, value: String, why: &'static str },
    #[error("sinceSeconds: Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified")]
    BothSince,
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" | "" => Some(false),
        _ => None,
    }
}

/// Parses the `/containerLogs` query (`follow`, `previous`, `tailLines`, `sinceSeconds`,
/// `sinceTime`, `timestamps`, `limitBytes`) and validates it as `ValidatePodLogOptions` does.
pub fn parse_query(query: &str, now: Timestamp) -> Result<LogOptions, LogOptionsError> {
    let mut opts = LogOptions::default();
    let (mut since_seconds, mut since_time) = (None, None);
    let invalid = |param, value: &str, why| LogOptionsError::Invalid { param, value: value.to_string(), why };
    for (key, value) in form_pairs(query) {
        let boolean = |param| parse_bool(&value).ok_or_else(|| invalid(param, &value, "must be a boolean"));
        let number = |param| value.parse::<i64>().map_err(|_| invalid(param, &value, "must be an integer"));
        match key.as_str() {
            "follow" => opts.follow = boolean("follow")?,
            "previous" => opts.previous = boolean("previous")?,
            "timestamps" => opts.timestamps = boolean("timestamps")?,
            "tailLines" => {
                let n = number("tailLines")?;
                let n =
                    u64::try_from(n).map_err(|_| invalid("tailLines", &value, "must be greater than or equal to 0"))?;
                opts.tail_lines = Some(n);
            }
            "limitBytes" => {
                let n = number("limitBytes")?;
                if n < 1 {
                    return Err(invalid("limitBytes", &value, "must be greater than 0"));
                }
                opts.limit_bytes = Some(n as u64);
            }
            "sinceSeconds" => {
                let n = number("sinceSeconds")?;
                if n < 1 {
                    return Err(invalid("sinceSeconds", &value, "must be greater than 0"));
                }
                since_seconds = Some(n);
            }
            "sinceTime" => {
                let t: Timestamp =
                    value.parse().map_err(|_| invalid("sinceTime", &value, "must be an RFC3339 time"))?;
                since_time = Some(t);
            }
            _ => {}
        }
    }
    if since_seconds.is_some() && since_time.is_some() {
        return Err(LogOptionsError::BothSince);
    }
    if let Some(secs) = since_seconds {
        let back = k8s_openapi::jiff::SignedDuration::from_secs(secs);
        opts.since = Some(now.checked_sub(back).unwrap_or(Timestamp::MIN));
    }
    if let Some(t) = since_time {
        opts.since = Some(t);
    }
    Ok(opts)
}

/// The `key=value` pairs of a query string, percent-decoded (`+` is a space).
pub fn form_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of a CRI log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriLine<'a> {
    pub time: Timestamp,
    pub stream: Stream,
    /// `P`: a piece of a line that continues on the next file line.
    pub partial: bool,
    pub content: &'a [u8],
}

/// Parses one file line (without its newline). Lines that do not parse are skipped by readers,
/// as the kubelet skips them.
pub fn parse_line(line: &[u8]) -> Option<CriLine<'_>> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?.parse::<Timestamp>().ok()?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    // Tags are `:`-separated; the first says partial or full.
    let tags = parts.next()?;
    let partial = tags.split(|&b| b == b':').next() == Some(b"P");
    let content = parts.next().unwrap_or(b"");
    Some(CriLine { time, stream, partial, content })
}

/// `types.RFC3339NanoFixed` in UTC: always nine fractional digits.
pub fn format_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S.%NZ").to_string()
}

/// Turns parsed lines into output, applying `sinceTime`, `timestamps` and `limitBytes`.
#[derive(Debug, Clone)]
pub struct LogWriter {
    since: Option<Timestamp>,
    timestamps: bool,
    remaining: Option<u64>,
    at_line_start: bool,
    skipping: bool,
    /// Logical lines completed so far.
    pub lines: u64,
}

impl LogWriter {
    pub fn new(opts: &LogOptions) -> LogWriter {
        LogWriter {
            since: opts.since,
            timestamps: opts.timestamps,
            remaining: opts.limit_bytes,
            at_line_start: true,
            skipping: false,
            lines: 0,
        }
    }

    /// Appends what `line` shows to `out`; `false` once `limitBytes` is reached (stop reading).
    pub fn write(&mut self, line: &CriLine<'_>, out: &mut Vec<u8>) -> bool {
        let mut piece = Vec::with_capacity(line.content.len() + 32);
        if self.at_line_start {
            self.skipping = self.since.is_some_and(|s| line.time < s);
            if self.timestamps && !self.skipping {
                piece.extend_from_slice(format_time(line.time).as_bytes());
                piece.push(b' ');
            }
        }
        self.at_line_start = !line.partial;
        if !line.partial {
            self.lines += 1;
        }
        if self.skipping {
            return true;
        }
        piece.extend_from_slice(line.content);
        if !line.partial {
            piece.push(b'\n');
        }
        match &mut self.remaining {
            None => {
                out.extend_from_slice(&piece);
                true
            }
            Some(left) => {
                let take = piece.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                out.extend_from_slice(&piece[..take]);
                *left -= take as u64;
                *left > 0
            }
        }
    }
}

/// The byte offset where the last `n` logical lines of a log start (file lines joined across
/// `P` pieces; an unfinished last line counts). Reads `reader` to its end.
pub async fn tail_start<R: tokio::io::AsyncBufRead + Unpin>(mut reader: R, n: u64) -> std::io::Result<u64> {
    let mut starts = std::collections::VecDeque::new();
    let mut offset = 0u64;
    let mut at_line_start = true;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = reader.read_until(b'\n', &mut buf).await?;
        if read == 0 {
            break;
        }
        let body = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let Some(line) = parse_line(body) else {
            offset += read as u64;
            continue;
        };
        if at_line_start {
            starts.push_back(offset);
            if starts.len() as u64 > n {
                starts.pop_front();
            }
        }
        at_line_start = !line.partial;
        offset += read as u64;
    }
    if n == 0 {
        return Ok(offset);
    }
    Ok(starts.front().copied().unwrap_or(offset))
}

/// Why a log cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("failed to read log file {path}")]
    Read { path: PathBuf, source: std::io::Error },
}

/// Streams the log at `path` into `out` by [`LogOptions`]. With `follow`, keeps reading as the
/// file grows while `running()` says the container runs, then drains what is left and ends.
/// Ends early when `out`'s receiver goes away (the client left).
pub async fn stream_log<F, Fut>(
    path: PathBuf,
    opts: LogOptions,
    mut running: F,
    out: mpsc::Sender<Vec<u8>>,
) -> Result<(), LogError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let err = |source| LogError::Read { path: path.clone(), source };
    // A follower may come before the runtime wrote anything: wait for the file.
    let file = loop {
        match tokio::fs::File::open(&path).await {
            Ok(f) => break f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !opts.follow || !running().await {
                    return Ok(());
                }
                if out.is_closed() {
                    return Ok(());
                }
                tokio::time::sleep(FOLLOW_POLL).await;
            }
            Err(e) => return Err(err(e)),
        }
    };
    let mut inode = inode_of(&file).await;
    let mut reader = BufReader::new(file);
    if let Some(n) = opts.tail_lines {
        let start = tail_start(&mut reader, n).await.map_err(err)?;
        reader.seek(SeekFrom::Start(start)).await.map_err(err)?;
    }
    // Without follow, tail shows exactly N lines even if the file grows meanwhile.
    let line_cap = opts.tail_lines.filter(|_| !opts.follow);
    let mut writer = LogWriter::new(&opts);
    let mut pending = Vec::new();
    let mut buf = Vec::new();
    let mut draining = !opts.follow;
    let mut last_check: Option<tokio::time::Instant> = None;
    // The runtime rotated the file (a new inode at `path`): finish the old one, then go on there.
    let mut rotated = false;
    loop {
        if line_cap.is_some_and(|cap| writer.lines >= cap) {
            break;
        }
        let read = reader.read_until(b'\n', &mut buf).await.map_err(err)?;
        if read > 0 && buf.ends_with(b"\n") {
            let more = emit(&mut writer, &buf[..buf.len() - 1], &mut pending);
            buf.clear();
            if !more {
                break;
            }
            if pending.len() >= CHUNK && out.send(std::mem::take(&mut pending)).await.is_err() {
                return Ok(());
            }
            continue;
        }
        if read > 0 {
            // An unfinished line: keep it and read on.
            continue;
        }
        // At the end of the file.
        if draining {
            if !buf.is_empty() {
                emit(&mut writer, &buf, &mut pending);
            }
            break;
        }
        if !pending.is_empty() && out.send(std::mem::take(&mut pending)).await.is_err() {
            return Ok(());
        }
        if out.is_closed() {
            return Ok(());
        }
        if rotated {
            // The old file is read to its end: continue with the new one from its start.
            if let Ok(file) = tokio::fs::File::open(&path).await {
                inode = inode_of(&file).await;
                reader = BufReader::new(file);
                buf.clear();
            }
            rotated = false;
            continue;
        }
        let current = tokio::fs::metadata(&path).await.ok().map(|m| std::os::unix::fs::MetadataExt::ino(&m));
        if current.is_some() && current != inode {
            // Read what was written to the old file before the rename, then switch.
            rotated = true;
            continue;
        }
        if last_check.is_none_or(|t| t.elapsed() >= STATE_CHECK) {
            last_check = Some(tokio::time::Instant::now());
            if !running().await {
                // One more pass reads whatever was written before the container stopped.
                draining = true;
                continue;
            }
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
    if !pending.is_empty() {
        let _ = out.send(pending).await;
    }
    Ok(())
}

/// The inode of an open file (to notice rotation: the path then names another inode).
async fn inode_of(file: &tokio::fs::File) -> Option<u64> {
    file.metadata().await.ok().map(|m| std::os::unix::fs::MetadataExt::ino(&m))
}

/// Writes one file line; `false` when the byte limit is reached.
fn emit(writer: &mut LogWriter, raw: &[u8], out: &mut Vec<u8>) -> bool {
    match parse_line(raw) {
        Some(line) => writer.write(&line, out),
        None => {
            tracing::debug!(line = %String::from_utf8_lossy(raw), "skipping a log line that does not parse");
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    const LOG: &str = "\
2024-01-02T03:04:05.000000001Z stdout F one
2024-01-02T03:04:06.5Z stderr F two
2024-01-02T03:04:07Z stdout P thr
2024-01-02T03:04:08Z stdout P e
2024-01-02T03:04:09Z stdout F e!
2024-01-02T03:04:10.123456789Z stdout F four
";

    fn render(text: &str, opts: &LogOptions) -> String {
        let mut w = LogWriter::new(opts);
        let mut out = Vec::new();
        for l in text.lines() {
            if let Some(line) = parse_line(l.as_bytes())
                && !w.write(&line, &mut out)
            {
                break;
            }
        }
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn parses_cri_lines() {
        let l = parse_line(b"2024-01-02T03:04:05.123456789Z stdout F hello world").expect("line");
        assert_eq!(l.time, ts("2024-01-02T03:04:05.123456789Z"));
        assert_eq!((l.stream, l.partial, l.content), (Stream::Stdout, false, &b"hello world"[..]));
        let l = parse_line(b"2024-01-02T03:04:05+02:00 stderr P:x  two spaces").expect("line");
        assert_eq!(l.time, ts("2024-01-02T01:04:05Z"));
        assert_eq!((l.stream, l.partial, l.content), (Stream::Stderr, true, &b" two spaces"[..]));
        let l = parse_line(b"2024-01-02T03:04:05Z stdout F ").expect("empty content");
        assert_eq!(l.content, b"");
        let l = parse_line(b"2024-01-02T03:04:05Z stdout F").expect("no content");
        assert_eq!(l.content, b"");
        for bad in ["", "garbage", "2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z stdin F x", "yesterday stdout F x"] {
            assert_eq!(parse_line(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn formats_fixed_nanoseconds() {
        assert_eq!(format_time(ts("2024-01-02T03:04:05Z")), "2024-01-02T03:04:05.000000000Z");
        assert_eq!(format_time(ts("2024-01-02T03:04:05.5+01:00")), "2024-01-02T02:04:05.500000000Z");
        assert_eq!(format_time(ts("2024-01-02T03:04:05.123456789Z")), "2024-01-02T03:04:05.123456789Z");
    }

    #[test]
    fn writes_by_options() {
        let t = |s: &str| Some(ts(s));
        let cases: Vec<(&str, LogOptions, &str)> = vec![
            ("all", LogOptions::default(), "one\ntwo\nthree!\nfour\n"),
            (
                "timestamps once per logical line",
                LogOptions { timestamps: true, ..LogOptions::default() },
                "2024-01-02T03:04:05.000000001Z one\n2024-01-02T03:04:06.500000000Z two\n\
                 2024-01-02T03:04:07.000000000Z three!\n2024-01-02T03:04:10.123456789Z four\n",
            ),
            (
                "since keeps equal times",
                LogOptions { since: t("2024-01-02T03:04:06.5Z"), ..LogOptions::default() },
                "two\nthree!\nfour\n",
            ),
            (
                "since judges a joined line by its start",
                LogOptions { since: t("2024-01-02T03:04:08Z"), ..LogOptions::default() },
                "four\n",
            ),
            ("since after everything", LogOptions { since: t("2030-01-01T00:00:00Z"), ..LogOptions::default() }, ""),
            ("limit cuts mid-line", LogOptions { limit_bytes: Some(6), ..LogOptions::default() }, "one\ntw"),
            ("limit on a boundary", LogOptions { limit_bytes: Some(4), ..LogOptions::default() }, "one\n"),
            (
                "limit counts the timestamp",
                LogOptions { limit_bytes: Some(10), timestamps: true, ..LogOptions::default() },
                "2024-01-02",
            ),
            (
                "limit larger than the log",
                LogOptions { limit_bytes: Some(1000), ..LogOptions::default() },
                "one\ntwo\nthree!\nfour\n",
            ),
        ];
        for (name, opts, want) in cases {
            assert_eq!(render(LOG, &opts), want, "{name}");
        }
    }

    #[tokio::test]
    async fn tail_offsets() {
        let len = LOG.len() as u64;
        let third = LOG.find("2024-01-02T03:04:07Z").expect("third") as u64;
        let fourth = LOG.find("2024-01-02T03:04:10").expect("fourth") as u64;
        let second = LOG.find("2024-01-02T03:04:06").expect("second") as u64;
        for (n, want) in [(0, len), (1, fourth), (2, third), (3, second), (4, 0), (100, 0)] {
            assert_eq!(tail_start(LOG.as_bytes(), n).await.expect("tail"), want, "tail {n}");
        }
        // An unfinished last line counts as a line; garbage lines do not.
        let text = "2024-01-02T03:04:05Z stdout F a\nnot a log line\n2024-01-02T03:04:06Z stdout P b";
        let b = text.find("2024-01-02T03:04:06Z").expect("b") as u64;
        assert_eq!(tail_start(text.as_bytes(), 1).await.expect("tail"), b);
        assert_eq!(tail_start(&b""[..], 3).await.expect("tail"), 0);
    }

    #[test]
    fn query_options() {
        let now = ts("2024-01-02T03:04:05Z");
        let opts = parse_query(
            "follow=true&previous=1&tailLines=10&timestamps=true&limitBytes=500&sinceSeconds=60&pretty=x",
            now,
        )
        .expect("valid");
        assert_eq!(
            opts,
            LogOptions {
                follow: true,
                previous: true,
                tail_lines: Some(10),
                since: Some(ts("2024-01-02T03:03:05Z")),
                timestamps: true,
                limit_bytes: Some(500),
            }
        );
        let opts = parse_query("sinceTime=2024-01-01T00%3A00%3A00Z&follow=false", now).expect("valid");
        assert_eq!(opts.since, Some(ts("2024-01-01T00:00:00Z")));
        assert!(!opts.follow);
        assert_eq!(parse_query("", now), Ok(LogOptions::default()));
        assert_eq!(parse_query("tailLines=0", now).map(|o| o.tail_lines), Ok(Some(0)));
        let errors = [
            ("tailLines=-1", "tailLines: Invalid value: \"-1\": must be greater than or equal to 0"),
            ("tailLines=x", "tailLines: Invalid value: \"x\": must be an integer"),
            ("limitBytes=0", "limitBytes: Invalid value: \"0\": must be greater than 0"),
            ("sinceSeconds=0", "sinceSeconds: Invalid value: \"0\": must be greater than 0"),
            ("follow=yes", "follow: Invalid value: \"yes\": must be a boolean"),
            ("sinceTime=today", "sinceTime: Invalid value: \"today\": must be an RFC3339 time"),
            (
                "sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z",
                "sinceSeconds: Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
            ),
        ];
        for (query, want) in errors {
            assert_eq!(parse_query(query, now).map_err(|e| e.to_string()), Err(want.to_string()), "{query}");
        }
    }

    #[test]
    fn decodes_forms() {
        assert_eq!(
            form_pairs("command=sh&command=-c&command=echo+a%20b%26c&x&=y&bad=%zz%4"),
            vec![
                ("command".to_string(), "sh".to_string()),
                ("command".to_string(), "-c".to_string()),
                ("command".to_string(), "echo a b&c".to_string()),
                ("x".to_string(), String::new()),
                (String::new(), "y".to_string()),
                ("bad".to_string(), "%zz%4".to_string()),
            ]
        );
    }

    async fn collect(mut rx: mpsc::Receiver<Vec<u8>>) -> String {
        let mut all = Vec::new();
        while let Some(chunk) = rx.recv().await {
            all.extend(chunk);
        }
        String::from_utf8(all).expect("utf8")
    }

    #[tokio::test]
    async fn reads_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        // An unfinished last line is shown when not following.
        std::fs::write(&path, format!("{LOG}2024-01-02T03:04:11Z stdout P tail")).expect("write");
        let run = |opts: LogOptions| {
            let path = path.clone();
            async move {
                let (tx, rx) = mpsc::channel(4);
                let task = tokio::spawn(stream_log(path, opts, || async { false }, tx));
                let text = collect(rx).await;
                task.await.expect("join").expect("read");
                text
            }
        };
        assert_eq!(run(LogOptions::default()).await, "one\ntwo\nthree!\nfour\ntail");
        assert_eq!(run(LogOptions { tail_lines: Some(2), ..LogOptions::default() }).await, "four\ntail");
        assert_eq!(run(LogOptions { tail_lines: Some(0), ..LogOptions::default() }).await, "");
        assert_eq!(
            run(LogOptions { tail_lines: Some(3), limit_bytes: Some(5), ..LogOptions::default() }).await,
            "three"
        );
        // A missing file is an empty log.
        let (tx, rx) = mpsc::channel(4);
        stream_log(dir.path().join("none.log"), LogOptions::default(), || async { true }, tx).await.expect("read");
        assert_eq!(collect(rx).await, "");
    }

    #[tokio::test]
    async fn follows_a_growing_file_until_the_container_stops() {
        use std::io::Write;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        std::fs::write(&path, "2024-01-02T03:04:05Z stdout F old\n").expect("write");
        let alive = Arc::new(AtomicBool::new(true));
        let (tx, mut rx) = mpsc::channel(4);
        let flag = alive.clone();
        let opts = LogOptions { follow: true, tail_lines: Some(1), ..LogOptions::default() };
        let task = tokio::spawn(stream_log(
            path.clone(),
            opts,
            move || {
                let flag = flag.clone();
                async move { flag.load(Ordering::SeqCst) }
            },
            tx,
        ));
        assert_eq!(rx.recv().await.expect("first chunk"), b"old\n".to_vec());
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
        // A file line written in two steps is only shown once complete; a `P` piece is shown
        // as soon as its file line is.
        f.write_all(b"2024-01-02T03:04:06Z stdout F ne").expect("append");
        f.flush().expect("flush");
        tokio::time::sleep(FOLLOW_POLL * 3).await;
        f.write_all(b"w\n2024-01-02T03:04:07Z stderr P part\n").expect("append");
        f.flush().expect("flush");
        let mut got = Vec::new();
        while got != b"new\npart" {
            let chunk =
                tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("more output").expect("open");
            got.extend(chunk);
            assert!(b"new\npart".starts_with(&got), "{:?}", String::from_utf8_lossy(&got));
        }
        // The container stops after a last line: it is drained, then the stream ends.
        f.write_all(b"2024-01-02T03:04:07.5Z stderr F ial\n2024-01-02T03:04:08Z stdout F last\n").expect("append");
        f.flush().expect("flush");
        alive.store(false, Ordering::SeqCst);
        let rest = tokio::time::timeout(Duration::from_secs(5), collect(rx)).await.expect("stream ends");
        assert_eq!(rest, "ial\nlast\n");
        task.await.expect("join").expect("read");
    }

    #[tokio::test]
    async fn follow_goes_on_in_the_new_file_after_a_rotation() {
        use std::io::Write;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        std::fs::write(&path, "2024-01-02T03:04:05Z stdout F one\n").expect("write");
        let alive = Arc::new(AtomicBool::new(true));
        let (tx, mut rx) = mpsc::channel(4);
        let flag = alive.clone();
        let opts = LogOptions { follow: true, ..LogOptions::default() };
        let task = tokio::spawn(stream_log(
            path.clone(),
            opts,
            move || {
                let flag = flag.clone();
                async move { flag.load(Ordering::SeqCst) }
            },
            tx,
        ));
        assert_eq!(rx.recv().await.expect("first chunk"), b"one\n".to_vec());
        // The runtime's rotation: a last line into the old file, rename, a new file.
        let mut old = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
        old.write_all(b"2024-01-02T03:04:06Z stdout F two\n").expect("append");
        std::fs::rename(&path, dir.path().join("0.log.1")).expect("rotate");
        std::fs::write(&path, "2024-01-02T03:04:07Z stdout F three\n").expect("new file");
        let mut got = Vec::new();
        while got != b"two\nthree\n" {
            let chunk =
                tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("more output").expect("open");
            got.extend(chunk);
            assert!(b"two\nthree\n".starts_with(&got), "{:?}", String::from_utf8_lossy(&got));
        }
        alive.store(false, Ordering::SeqCst);
        let rest = tokio::time::timeout(Duration::from_secs(5), collect(rx)).await.expect("stream ends");
        assert_eq!(rest, "");
        task.await.expect("join").expect("read");
    }

    #[tokio::test]
    async fn follow_stops_when_the_client_leaves() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        std::fs::write(&path, "").expect("write");
        let (tx, rx) = mpsc::channel(4);
        let opts = LogOptions { follow: true, ..LogOptions::default() };
        let task = tokio::spawn(stream_log(path, opts, || async { true }, tx));
        drop(rx);
        tokio::time::timeout(Duration::from_secs(5), task).await.expect("ends").expect("join").expect("read");
    }
}
