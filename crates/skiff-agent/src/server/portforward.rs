//! `kubectl port-forward` on the node: one SPDY/3.1 connection ([`super::spdy`]) carries, per
//! forwarded local connection, a pair of streams the client opens with the headers `streamType`
//! (`error` or `data`), `port` and `requestID`. Once both streams of a request arrive the data
//! stream is spliced to TCP `127.0.0.1:PORT` in the pod's network namespace; a failure is written
//! as text on the error stream, and both streams are half-closed (FIN) at the end, as the kubelet's
//! `cri/streaming/portforward/httpstream.go` with containerd's `portForward` does.
//!
//! The SPDY bytes arrive either over a native `Upgrade: SPDY/3.1` connection or tunnelled in the
//! binary messages of a WebSocket with subprotocol [`TUNNEL_PROTOCOL`] (kubectl's default since
//! 1.31); [`serve_websocket`] turns the latter into a byte stream for [`serve`].
//!
//! spdystream does no flow control: `WINDOW_UPDATE` and `SETTINGS` are read and ignored, and a
//! slow pod connection slows the whole SPDY connection down (the reader waits for it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::spdy::{self, Decoder, Encoder, FLAG_FIN, Frame, Head, Headers, SpdyError, rst};

/// The port-forward protocol version (`X-Stream-Protocol-Version`).
pub const PROTOCOL: &str = "portforward.k8s.io";
/// The WebSocket subprotocol of SPDY tunnelled in a WebSocket.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// How long the second stream of a request may take after the first (the kubelet's
/// `streamCreationTimeout` default).
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// After the pod closed its side, how long the client's side may still take (containerd's
/// "give a chance to terminate gracefully": one second).
pub const LINGER: Duration = Duration::from_secs(1);
/// Frames queued for the client before producers wait.
const OUT_QUEUE: usize = 64;
/// Client data chunks queued per stream before the reader waits.
const IN_QUEUE: usize = 16;
/// Bytes read from the pod per data frame.
const CHUNK: usize = 32 * 1024;

/// Header names (compared case-insensitively; spdystream sends them lower-cased).
pub const STREAM_TYPE: &str = "streamType";
pub const PORT: &str = "port";
pub const REQUEST_ID: &str = "requestID";

/// Opens a TCP connection to a port on the pod's loopback; the error is the text the error stream
/// carries after `error forwarding port P to pod X, uid U: `.
pub type Dialer = Arc<dyn Fn(u16) -> BoxFuture<'static, Result<TcpStream, String>> + Send + Sync>;

/// What the error text calls the pod: the CRI streaming server names the sandbox and leaves the
/// UID empty (`error forwarding port 80 to pod <sandbox>, uid : ...`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    pub pod: String,
    pub uid: String,
}

impl Target {
    /// The error-stream text for a forward that failed with `error`.
    pub fn error_text(&self, port: u16, error: &str) -> String {
        format!("error forwarding port {port} to pod {}, uid {}: {error}", self.pod, self.uid)
    }
}

/// The two kinds of port-forward stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Error,
    Data,
}

/// A stream the client opened, as validated (`httpStreamReceived`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRequest {
    pub role: Role,
    pub port: u16,
    pub request_id: String,
}

/// Reads a new stream's headers. Errors are the kubelet's reasons for rejecting (resetting) it.
/// Without `requestID` (old clients) the request is derived from the stream id: the error stream's
/// own id, the data stream's id minus 2.
pub fn stream_request(stream_id: u32, headers: &Headers) -> Result<StreamRequest, String> {
    let port = spdy::header(headers, PORT).filter(|p| !p.is_empty()).ok_or(format!("{PORT:?} header is required"))?;
    let parsed: u16 = port.parse().map_err(|e| format!("unable to parse {port:?} as a port: {e}"))?;
    if parsed < 1 {
        return Err(format!("port {port:?} must be > 0"));
    }
    let kind = spdy::header(headers, STREAM_TYPE)
        .filter(|t| !t.is_empty())
        .ok_or(format!("{STREAM_TYPE:?} header is required"))?;
    let role = match kind {
        "error" => Role::Error,
        "data" => Role::Data,
        other => return Err(format!("invalid stream type {other:?}")),
    };
    let request_id = match spdy::header(headers, REQUEST_ID).filter(|r| !r.is_empty()) {
        Some(r) => r.to_string(),
        None if role == Role::Error => stream_id.to_string(),
        None => (i64::from(stream_id) - 2).to_string(),
    };
    Ok(StreamRequest { role, port: parsed, request_id })
}

/// One accepted stream.
struct Open {
    /// Client bytes for the pod (data streams, until the client's FIN).
    to_pod: Option<mpsc::Sender<Vec<u8>>>,
    /// Dropped with the entry (RST_STREAM from the client, or the connection's end): the forward
    /// of a data stream stops.
    _reset: oneshot::Sender<()>,
}

/// The streams of one request seen so far.
struct Pair {
    error: Option<u32>,
    data: Option<PendingData>,
    since: Instant,
}

/// A data stream waiting for its error stream.
struct PendingData {
    id: u32,
    port: u16,
    from_client: mpsc::Receiver<Vec<u8>>,
    reset: oneshot::Receiver<()>,
}

/// A forward that ended: its streams are forgotten.
struct Done {
    error: u32,
    data: u32,
}

/// Serves one upgraded connection until the client closes it or it fails. `io` carries SPDY/3.1.
pub async fn serve<IO>(io: IO, target: Target, dial: Dialer)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(io);
    let (out, out_rx) = mpsc::channel::<Frame>(OUT_QUEUE);
    let writer = tokio::spawn(write_loop(wr, out_rx));
    let (frames_tx, mut frames) = mpsc::channel::<Result<Frame, SpdyError>>(IN_QUEUE);
    let reader = tokio::spawn(read_loop(rd, frames_tx));
    let (done_tx, mut done) = mpsc::unbounded_channel::<Done>();
    let mut conn = Connection {
        target: Arc::new(target),
        dial,
        out,
        streams: HashMap::new(),
        pairs: HashMap::new(),
        forwards: JoinSet::new(),
        done: done_tx,
        last_stream: 0,
        going_away: false,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Some(Ok(frame)) => conn.handle(frame).await,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "port-forward: bad SPDY frame");
                    let _ = conn
                        .out
                        .send(Frame::GoAway { last_good_stream_id: conn.last_stream, status: spdy::goaway::PROTOCOL_ERROR })
                        .await;
                    break;
                }
                None => break,
            },
            Some(d) = done.recv() => {
                conn.streams.remove(&d.error);
                conn.streams.remove(&d.data);
            }
            Some(_) = conn.forwards.join_next(), if !conn.forwards.is_empty() => {}
            _ = tick.tick() => conn.expire(Instant::now()).await,
        }
    }
    // The client is gone (or broke the protocol): stop every forward; the writer ends once the
    // last sender is dropped.
    reader.abort();
    conn.forwards.abort_all();
    drop(conn);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
}

/// The connection's stream bookkeeping, owned by [`serve`]'s loop.
struct Connection {
    target: Arc<Target>,
    dial: Dialer,
    out: mpsc::Sender<Frame>,
    streams: HashMap<u32, Open>,
    pairs: HashMap<String, Pair>,
    forwards: JoinSet<()>,
    done: mpsc::UnboundedSender<Done>,
    /// The highest stream id the client opened (for GOAWAY).
    last_stream: u32,
    going_away: bool,
}

impl Connection {
    async fn send(&self, frame: Frame) {
        let _ = self.out.send(frame).await;
    }

    async fn handle(&mut self, frame: Frame) {
        match frame {
            Frame::SynStream { stream_id, flags, headers, .. } => self.open(stream_id, flags, &headers).await,
            Frame::Data { stream_id, flags, data } => {
                let Some(open) = self.streams.get_mut(&stream_id) else { return };
                if !data.is_empty()
                    && let Some(tx) = &open.to_pod
                    && tx.send(data).await.is_err()
                {
                    open.to_pod = None;
                }
                if flags & FLAG_FIN != 0 {
                    open.to_pod = None;
                }
            }
            Frame::RstStream { stream_id, .. } => {
                // Dropping the entry drops its reset sender: the forward stops.
                self.streams.remove(&stream_id);
            }
            // A ping from the client (odd id) is echoed; answers to ours (even) never come.
            Frame::Ping { id } if id % 2 == 1 => self.send(Frame::Ping { id }).await,
            Frame::GoAway { .. } => self.going_away = true,
            // No flow control (as spdystream); the peer's replies and headers carry nothing for us.
            Frame::Ping { .. }
            | Frame::Settings { .. }
            | Frame::WindowUpdate { .. }
            | Frame::Headers { .. }
            | Frame::SynReply { .. }
            | Frame::Unknown { .. } => {}
        }
    }

    /// A new stream: validate, reply, pair it with its sibling, and start the forward when both
    /// are there.
    async fn open(&mut self, id: u32, flags: u8, headers: &Headers) {
        self.last_stream = self.last_stream.max(id);
        if self.going_away {
            return self.send(Frame::RstStream { stream_id: id, status: rst::REFUSED_STREAM }).await;
        }
        if self.streams.contains_key(&id) {
            return self.send(Frame::RstStream { stream_id: id, status: rst::PROTOCOL_ERROR }).await;
        }
        let request = match stream_request(id, headers) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, stream = id, "port-forward: stream rejected");
                return self.send(Frame::RstStream { stream_id: id, status: rst::CANCEL }).await;
            }
        };
        self.send(Frame::SynReply { stream_id: id, flags: 0, headers: Headers::new() }).await;
        let (reset, reset_rx) = oneshot::channel();
        let mut open = Open { to_pod: None, _reset: reset };
        let pair = self.pairs.entry(request.request_id.clone()).or_insert_with(|| Pair {
            error: None,
            data: None,
            since: Instant::now(),
        });
        let duplicate = match request.role {
            Role::Error if pair.error.is_some() => Some("error stream already assigned"),
            Role::Data if pair.data.is_some() => Some("data stream already assigned"),
            Role::Error => {
                pair.error = Some(id);
                None
            }
            Role::Data => {
                let (tx, from_client) = mpsc::channel(IN_QUEUE);
                if flags & FLAG_FIN == 0 {
                    open.to_pod = Some(tx);
                }
                pair.data = Some(PendingData { id, port: request.port, from_client, reset: reset_rx });
                None
            }
        };
        if let Some(e) = duplicate {
            // `printError` on the request's error stream; the extra stream just closes.
            let text = format!("error processing stream for request {}: {e}", request.request_id);
            tracing::warn!("port-forward: {text}");
            if let Some(error_id) = pair.error {
                self.send(Frame::data(error_id, text.into_bytes())).await;
            }
            return self.send(Frame::fin(id)).await;
        }
        self.streams.insert(id, open);
        if !(pair.error.is_some() && pair.data.is_some()) {
            return;
        }
        let Some(Pair { error: Some(error), data: Some(data), .. }) = self.pairs.remove(&request.request_id) else {
            return;
        };
        let forward = Forward {
            port: data.port,
            error,
            data: data.id,
            from_client: data.from_client,
            reset: data.reset,
            out: self.out.clone(),
            dial: self.dial.clone(),
            target: self.target.clone(),
        };
        let (done, data) = (self.done.clone(), data.id);
        self.forwards.spawn(async move {
            forward.run().await;
            let _ = done.send(Done { error, data });
        });
    }

    /// Requests whose second stream did not come in time: the message goes to the error stream
    /// (if that one came) and the streams close.
    async fn expire(&mut self, now: Instant) {
        let late: Vec<String> = self
            .pairs
            .iter()
            .filter(|(_, p)| now.duration_since(p.since) >= STREAM_CREATION_TIMEOUT)
            .map(|(id, _)| id.clone())
            .collect();
        for request in late {
            let Some(pair) = self.pairs.remove(&request) else { continue };
            tracing::warn!(request = %request, "port-forward: timed out waiting for streams");
            if let Some(error) = pair.error {
                let text = format!("(request={request}) timed out waiting for streams");
                self.send(Frame::data(error, text.into_bytes())).await;
                self.send(Frame::fin(error)).await;
                self.streams.remove(&error);
            }
            if let Some(data) = pair.data {
                self.send(Frame::fin(data.id)).await;
                self.streams.remove(&data.id);
            }
        }
    }
}
/// One forwarded connection: the data stream spliced to the pod's port.
struct Forward {
    port: u16,
    error: u32,
    data: u32,
    from_client: mpsc::Receiver<Vec<u8>>,
    reset: oneshot::Receiver<()>,
    out: mpsc::Sender<Frame>,
    dial: Dialer,
    target: Arc<Target>,
}

/// How a forward ended.
enum Outcome {
    /// Both directions done (or the pod's side done and the client's lingered).
    Finished,
    /// The client reset the data stream, or the connection is gone.
    Reset,
    /// The pod's port could not be reached: the error stream carries this.
    Failed(String),
}

impl Forward {
    /// Runs to the end, then writes the error (if any), and half-closes the error stream and
    /// then the data stream (the kubelet's deferred closes). The error stream is closed even
    /// after a reset: the client reads it to its end before it lets go of the connection.
    async fn run(mut self) {
        let mut data_closed = false;
        let outcome = {
            let splice =
                splice(self.dial.clone(), self.port, self.data, &mut self.from_client, &self.out, &mut data_closed);
            tokio::select! {
                _ = &mut self.reset => Outcome::Reset,
                outcome = splice => outcome,
            }
        };
        if let Outcome::Failed(e) = &outcome {
            let text = self.target.error_text(self.port, e);
            tracing::info!("port-forward: {text}");
            let _ = self.out.send(Frame::data(self.error, text.into_bytes())).await;
        }
        let _ = self.out.send(Frame::fin(self.error)).await;
        if !data_closed && !matches!(outcome, Outcome::Reset) {
            let _ = self.out.send(Frame::fin(self.data)).await;
        }
    }
}

/// Dials the pod's port and copies both ways with half-closes: the client's FIN shuts the TCP
/// write side; the pod's end of data becomes the data stream's FIN, after which the client's side
/// gets [`LINGER`] to finish.
async fn splice(
    dial: Dialer,
    port: u16,
    data: u32,
    from_client: &mut mpsc::Receiver<Vec<u8>>,
    out: &mpsc::Sender<Frame>,
    data_closed: &mut bool,
) -> Outcome {
    let tcp = match dial(port).await {
        Ok(tcp) => tcp,
        Err(e) => return Outcome::Failed(e),
    };
    let _ = tcp.set_nodelay(true);
    let (mut pod_rd, mut pod_wr) = tcp.into_split();
    let to_pod = async move {
        while let Some(chunk) = from_client.recv().await {
            pod_wr.write_all(&chunk).await?;
        }
        pod_wr.shutdown().await
    };
    let to_client = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = pod_rd.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            if out.send(Frame::data(data, buf[..n].to_vec())).await.is_err() {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
        }
        *data_closed = true;
        let _ = out.send(Frame::fin(data)).await;
        Ok::<_, std::io::Error>(())
    };
    tokio::pin!(to_pod, to_client);
    tokio::select! {
        r = &mut to_client => {
            if let Err(e) = r {
                tracing::debug!(error = %e, port, "port-forward: reading from the pod");
            }
            let _ = tokio::time::timeout(LINGER, to_pod).await;
        }
        r = &mut to_pod => {
            if let Err(e) = r {
                tracing::debug!(error = %e, port, "port-forward: writing to the pod");
            }
            if let Err(e) = to_client.await {
                tracing::debug!(error = %e, port, "port-forward: reading from the pod");
            }
        }
    }
    Outcome::Finished
}

/// Encodes frames in order (one header compression context) and writes them; ends when every
/// sender is gone or the client stops reading.
async fn write_loop<W: AsyncWrite>(w: W, mut frames: mpsc::Receiver<Frame>) {
    tokio::pin!(w);
    let mut encoder = Encoder::new();
    while let Some(first) = frames.recv().await {
        let mut next = Some(first);
        // Write what is queued, then flush once.
        while let Some(frame) = next {
            match encoder.encode(&frame) {
                Ok(bytes) => {
                    if w.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "port-forward: cannot encode a frame"),
            }
            next = frames.try_recv().ok();
        }
        if w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}

/// Reads and decodes frames until the client closes the connection or sends something invalid
/// (forwarded as the last item).
async fn read_loop<R: AsyncRead>(r: R, frames: mpsc::Sender<Result<Frame, SpdyError>>) {
    tokio::pin!(r);
    let mut decoder = Decoder::new();
    let mut head = [0u8; spdy::HEAD_LEN];
    loop {
        if r.read_exact(&mut head).await.is_err() {
            return;
        }
        let head = Head::parse(&head);
        let mut payload = vec![0u8; head.length()];
        if r.read_exact(&mut payload).await.is_err() {
            return;
        }
        let frame = decoder.decode(&head, &payload);
        let failed = frame.is_err();
        if frames.send(frame).await.is_err() || failed {
            return;
        }
    }
}

/// Serves SPDY tunnelled in a WebSocket (subprotocol [`TUNNEL_PROTOCOL`]): every binary message
/// carries the next bytes of the SPDY stream, in both directions. Ends with a normal close.
pub async fn serve_websocket(socket: WebSocket, target: Target, dial: Dialer) {
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (mut from_ws, mut to_ws) = tokio::io::split(theirs);
    let (mut sink, mut stream) = socket.split();
    let session = tokio::spawn(serve(ours, target, dial));
    let inbound = async move {
        while let Some(Ok(message)) = stream.next().await {
            match message {
                Message::Binary(bytes) if to_ws.write_all(&bytes).await.is_err() => break,
                Message::Close(_) => break,
                // Pings are answered by the WebSocket layer; text is not part of the tunnel.
                _ => {}
            }
        }
        let _ = to_ws.shutdown().await;
    };
    let outbound = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match from_ws.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink.send(Message::Binary(buf[..n].to_vec().into())).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = sink.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
        let _ = sink.close().await;
    };
    let inbound = tokio::spawn(inbound);
    outbound.await;
    // The session is over; the client answers our close (or is gone).
    let _ = tokio::time::timeout(Duration::from_secs(5), inbound).await;
    let _ = session.await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::DuplexStream;
    use tokio::net::TcpListener;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn stream_requests() {
        let ok = |role, port, id: &str| Ok(StreamRequest { role, port, request_id: id.into() });
        let cases: Vec<(u32, Headers, Result<StreamRequest, String>)> = vec![
            (1, h(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]), ok(Role::Error, 80, "0")),
            (3, h(&[("streamtype", "data"), ("port", "8080"), ("requestid", "0")]), ok(Role::Data, 8080, "0")),
            (5, h(&[("streamType", "error"), ("port", "80")]), ok(Role::Error, 80, "5")),
            (7, h(&[("streamtype", "data"), ("port", "80")]), ok(Role::Data, 80, "5")),
            (1, h(&[("streamtype", "data")]), Err("\"port\" header is required".into())),
            (
                1,
                h(&[("streamtype", "data"), ("port", "http")]),
                Err("unable to parse \"http\" as a port: invalid digit found in string".into()),
            ),
            (1, h(&[("streamtype", "data"), ("port", "0")]), Err("port \"0\" must be > 0".into())),
            (
                1,
                h(&[("streamtype", "data"), ("port", "65536")]),
                Err("unable to parse \"65536\" as a port: number too large to fit in target type".into()),
            ),
            (1, h(&[("port", "80")]), Err("\"streamType\" header is required".into())),
            (1, h(&[("port", "80"), ("streamtype", "stdin")]), Err("invalid stream type \"stdin\"".into())),
        ];
        for (id, headers, want) in cases {
            assert_eq!(stream_request(id, &headers), want, "{headers:?}");
        }
        assert_eq!(
            Target { pod: "sb1".into(), uid: String::new() }.error_text(81, "boom"),
            "error forwarding port 81 to pod sb1, uid : boom"
        );
    }

    /// A SPDY client over an in-memory pipe, speaking as spdystream does.
    struct Client {
        io: DuplexStream,
        enc: Encoder,
        dec: Decoder,
    }

    impl Client {
        async fn send(&mut self, frame: Frame) {
            let bytes = self.enc.encode(&frame).expect("encode");
            self.io.write_all(&bytes).await.expect("write");
        }

        async fn open(&mut self, id: u32, kind: &str, port: u16, request: &str) {
            let headers = h(&[("streamtype", kind), ("port", &port.to_string()), ("requestid", request)]);
            self.send(Frame::SynStream { stream_id: id, associated_to: 0, priority: 0, slot: 0, flags: 0, headers })
                .await;
        }

        async fn next(&mut self) -> Option<Frame> {
            let mut head = [0u8; spdy::HEAD_LEN];
            tokio::time::timeout(Duration::from_secs(10), self.io.read_exact(&mut head))
                .await
                .expect("in time")
                .ok()?;
            let head = Head::parse(&head);
            let mut payload = vec![0u8; head.length()];
            self.io.read_exact(&mut payload).await.ok()?;
            Some(self.dec.decode(&head, &payload).expect("valid frame"))
        }

        /// Reads until both streams got their FIN: (data bytes, error bytes, other frames).
        async fn collect(&mut self, data: u32, error: u32) -> (Vec<u8>, String, Vec<Frame>) {
            let (mut d, mut e, mut other, mut fins) = (Vec::new(), Vec::new(), Vec::new(), 0);
            while fins < 2 {
                match self.next().await.expect("a frame") {
                    Frame::Data { stream_id, flags, data: bytes } if stream_id == data || stream_id == error => {
                        if stream_id == data { &mut d } else { &mut e }.extend(bytes);
                        if flags & FLAG_FIN != 0 {
                            fins += 1;
                        }
                    }
                    f => other.push(f),
                }
            }
            (d, String::from_utf8(e).expect("utf8"), other)
        }
    }

    fn start(dial: Dialer) -> Client {
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        tokio::spawn(serve(theirs, Target { pod: "sb1".into(), uid: String::new() }, dial));
        Client { io: ours, enc: Encoder::new(), dec: Decoder::new() }
    }

    fn reply(id: u32) -> Frame {
        Frame::SynReply { stream_id: id, flags: 0, headers: Headers::new() }
    }

    /// A pod server: reads until the client half-closes, answers `got: <request>`, closes.
    async fn pod_server() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    let _ = conn.read_to_end(&mut got).await;
                    let _ = conn.write_all(&[b"got: ".as_slice(), &got].concat()).await;
                });
            }
        });
        addr
    }

    fn dial_to(addr: std::net::SocketAddr, port: u16) -> Dialer {
        Arc::new(move |p| {
            Box::pin(async move {
                if p != port {
                    return Err(format!("failed to connect to localhost:{p}: connection refused"));
                }
                TcpStream::connect(addr).await.map_err(|e| e.to_string())
            })
        })
    }

    #[tokio::test]
    async fn forwards_a_connection_with_half_closes() {
        let addr = pod_server().await;
        let mut c = start(dial_to(addr, 80));
        c.send(Frame::Ping { id: 1 }).await;
        assert_eq!(c.next().await, Some(Frame::Ping { id: 1 }));
        c.open(1, "error", 80, "0").await;
        assert_eq!(c.next().await, Some(reply(1)));
        c.send(Frame::fin(1)).await;
        c.open(3, "data", 80, "0").await;
        assert_eq!(c.next().await, Some(reply(3)));
        c.send(Frame::data(3, b"hello ".to_vec())).await;
        c.send(Frame::data(3, b"pod".to_vec())).await;
        c.send(Frame::WindowUpdate { stream_id: 3, delta: 1000 }).await;
        c.send(Frame::fin(3)).await;
        let (data, error, other) = c.collect(3, 1).await;
        assert_eq!(
            (String::from_utf8(data).expect("utf8"), error, other),
            ("got: hello pod".into(), String::new(), vec![])
        );

        // A second request on the same connection (the compression contexts carry on).
        c.open(5, "error", 80, "1").await;
        c.open(7, "data", 80, "1").await;
        c.send(Frame::fin(7)).await;
        let (data, error, other) = c.collect(7, 5).await;
        assert_eq!((data, error), (b"got: ".to_vec(), String::new()));
        assert_eq!(other, vec![reply(5), reply(7)]);
    }

    #[tokio::test]
    async fn a_reset_data_stream_still_closes_the_error_stream() {
        // A pod server that never answers.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let held = tokio::spawn(async move { listener.accept().await.map(|(conn, _)| conn) });
        let mut c = start(dial_to(addr, 80));
        c.open(1, "error", 80, "0").await;
        c.open(3, "data", 80, "0").await;
        assert_eq!(c.next().await, Some(reply(1)));
        assert_eq!(c.next().await, Some(reply(3)));
        let _conn = held.await.expect("task").expect("accepted");
        c.send(Frame::RstStream { stream_id: 3, status: rst::CANCEL }).await;
        assert_eq!(c.next().await, Some(Frame::fin(1)));
    }

    #[tokio::test]
    async fn failures_go_to_the_error_stream() {
        let addr = pod_server().await;
        let mut c = start(dial_to(addr, 80));
        c.open(1, "error", 81, "0").await;
        c.open(3, "data", 81, "0").await;
        let (data, error, other) = c.collect(3, 1).await;
        assert_eq!(data, Vec::<u8>::new());
        assert_eq!(
            error,
            "error forwarding port 81 to pod sb1, uid : failed to connect to localhost:81: connection refused"
        );
        assert_eq!(other, vec![reply(1), reply(3)]);

        // Invalid streams are reset; a second data stream for a request is reported.
        c.send(Frame::SynStream {
            stream_id: 5,
            associated_to: 0,
            priority: 0,
            slot: 0,
            flags: 0,
            headers: h(&[("streamtype", "data")]),
        })
        .await;
        assert_eq!(c.next().await, Some(Frame::RstStream { stream_id: 5, status: rst::CANCEL }));
        c.open(7, "data", 80, "9").await;
        c.open(9, "error", 80, "x").await;
        c.open(11, "error", 80, "x").await;
        assert_eq!(c.next().await, Some(reply(7)));
        assert_eq!(c.next().await, Some(reply(9)));
        assert_eq!(c.next().await, Some(reply(11)));
        assert_eq!(
            c.next().await,
            Some(Frame::data(9, b"error processing stream for request x: error stream already assigned".to_vec()))
        );
        assert_eq!(c.next().await, Some(Frame::fin(11)));
        // The client going away ends the session: the pipe closes.
        let Client { io, .. } = c;
        let (mut rd, mut wr) = tokio::io::split(io);
        wr.shutdown().await.expect("shutdown");
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut rest)).await.expect("closed").expect("read");
    }
}
