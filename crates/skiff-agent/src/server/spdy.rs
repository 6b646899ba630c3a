//! SPDY/3.1 framing, as moby/spdystream speaks it for `kubectl port-forward` (and kubectl's
//! exec/attach fallback): the frames of draft 3 (`SYN_STREAM`, `SYN_REPLY`, `RST_STREAM`,
//! `SETTINGS`, `PING`, `GOAWAY`, `HEADERS`, `WINDOW_UPDATE`, data), and the name/value header
//! blocks, zlib-compressed with the protocol's preset [`DICTIONARY`]. One compression context per
//! direction lives for the whole connection ([`Encoder`], [`Decoder`]), and every header block is
//! a sync-flushed piece of that stream, as Go's `compress/zlib` writer produces it.
//!
//! Pure functions over byte slices; the connection logic is in [`super::portforward`].

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The protocol version in every control frame.
pub const VERSION: u16 = 3;
/// The fixed frame header: 8 bytes.
pub const HEAD_LEN: usize = 8;
/// The largest payload a frame's 24-bit length can describe.
pub const MAX_LENGTH: usize = (1 << 24) - 1;
/// `FLAG_FIN` (control and data frames): the sender's last frame on the stream.
pub const FLAG_FIN: u8 = 0x01;
/// `FLAG_UNIDIRECTIONAL` (`SYN_STREAM`).
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// A decompressed header block larger than this is refused (no inflation bombs).
pub const MAX_HEADER_BLOCK: usize = 1 << 20;

/// Control frame types.
pub mod kind {
    pub const SYN_STREAM: u16 = 1;
    pub const SYN_REPLY: u16 = 2;
    pub const RST_STREAM: u16 = 3;
    pub const SETTINGS: u16 = 4;
    pub const PING: u16 = 6;
    pub const GOAWAY: u16 = 7;
    pub const HEADERS: u16 = 8;
    pub const WINDOW_UPDATE: u16 = 9;
}

/// `RST_STREAM` status codes.
pub mod rst {
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const INVALID_STREAM: u32 = 2;
    pub const REFUSED_STREAM: u32 = 3;
    pub const UNSUPPORTED_VERSION: u32 = 4;
    pub const CANCEL: u32 = 5;
    pub const INTERNAL_ERROR: u32 = 6;
    pub const FLOW_CONTROL_ERROR: u32 = 7;
    pub const STREAM_IN_USE: u32 = 8;
    pub const STREAM_ALREADY_CLOSED: u32 = 9;
}

/// `GOAWAY` status codes.
pub mod goaway {
    pub const OK: u32 = 0;
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const INTERNAL_ERROR: u32 = 2;
}

/// Header name/value pairs in order; names are lower case on the wire. A name sent with several
/// values (NUL-separated on the wire) appears once per value.
pub type Headers = Vec<(String, String)>;

/// The first value of header `name` (compared case-insensitively, as Go's `http.Header.Get`).
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// One `SETTINGS` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub flags: u8,
    /// 24 bits.
    pub id: u32,
    pub value: u32,
}

/// A frame, unpacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        slot: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        flags: u8,
        entries: Vec<Setting>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Vec<u8>,
    },
    /// A control frame of a type this implementation does not know; skipped.
    Unknown {
        frame_type: u16,
        flags: u8,
    },
}

impl Frame {
    /// An empty data frame with `FLAG_FIN`: half-closes `stream_id`.
    pub fn fin(stream_id: u32) -> Frame {
        Frame::Data { stream_id, flags: FLAG_FIN, data: Vec::new() }
    }

    /// A data frame without flags.
    pub fn data(stream_id: u32, data: Vec<u8>) -> Frame {
        Frame::Data { stream_id, flags: 0, data }
    }
}

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpdyError {
    #[error("invalid control frame: type {frame_type} with length {length}")]
    InvalidControlFrame { frame_type: u16, length: usize },
    #[error("stream id zero is disallowed")]
    ZeroStreamId,
    #[error("frame of {0} bytes is too large")]
    TooLarge(usize),
    #[error("invalid header block: {0}")]
    HeaderBlock(&'static str),
    #[error("header block compression: {0}")]
    Zlib(String),
}

/// The fixed 8-byte head of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    Control { version: u16, frame_type: u16, flags: u8, length: usize },
    Data { stream_id: u32, flags: u8, length: usize },
}

impl Head {
    /// Reads the head (the first [`HEAD_LEN`] bytes of a frame).
    pub fn parse(b: &[u8; HEAD_LEN]) -> Head {
        let first = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let flags = b[4];
        let length = usize::from(b[5]) << 16 | usize::from(b[6]) << 8 | usize::from(b[7]);
        if first & 0x8000_0000 != 0 {
            Head::Control {
                version: ((first >> 16) & 0x7fff) as u16,
                frame_type: (first & 0xffff) as u16,
                flags,
                length,
            }
        } else {
            Head::Data { stream_id: first & 0x7fff_ffff, flags, length }
        }
    }

    /// How many payload bytes follow the head.
    pub fn length(&self) -> usize {
        match *self {
            Head::Control { length, .. } | Head::Data { length, .. } => length,
        }
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Serializes a header block (uncompressed): a 32-bit pair count, then per name its length and
/// bytes (lower-cased) and its values joined by NUL, each length 32 bits. Repeated names are
/// merged into one entry, in first-seen order.
pub fn encode_header_block(headers: &Headers) -> Vec<u8> {
    let mut merged: Vec<(String, Vec<&str>)> = Vec::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => merged.push((name, vec![value])),
        }
    }
    let mut out = Vec::new();
    out.extend_from_slice(&(merged.len() as u32).to_be_bytes());
    for (name, values) in merged {
        out.extend_from_slice(&(name.len() as u32).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        let value = values.join("\0");
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// Parses an uncompressed header block. Names are lower-cased (spdystream lower-cases and
/// flags upper-case names; a peer that sends them is tolerated here), values split on NUL.
pub fn decode_header_block(b: &[u8]) -> Result<Headers, SpdyError> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8], SpdyError> {
        let end = at.checked_add(n).filter(|e| *e <= b.len()).ok_or(SpdyError::HeaderBlock("truncated"))?;
        let s = &b[at..end];
        at = end;
        Ok(s)
    };
    let count = be32(take(4)?, 0);
    let mut headers = Headers::new();
    for _ in 0..count {
        let len = be32(take(4)?, 0) as usize;
        let name = std::str::from_utf8(take(len)?).map_err(|_| SpdyError::HeaderBlock("name is not UTF-8"))?;
        if name.is_empty() {
            return Err(SpdyError::HeaderBlock("empty name"));
        }
        let name = name.to_ascii_lowercase();
        let len = be32(take(4)?, 0) as usize;
        let value = std::str::from_utf8(take(len)?).map_err(|_| SpdyError::HeaderBlock("value is not UTF-8"))?;
        for v in value.split('\0') {
            headers.push((name.clone(), v.to_string()));
        }
    }
    Ok(headers)
}

/// The sending side's header compression context (one per connection).
pub struct Encoder {
    deflate: Compress,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

impl Encoder {
    /// A zlib stream (best compression, as Go's framer) primed with [`DICTIONARY`].
    pub fn new() -> Encoder {
        let mut deflate = Compress::new(Compression::best(), true);
        // Before any data a dictionary is always accepted.
        let _ = deflate.set_dictionary(DICTIONARY);
        Encoder { deflate }
    }

    /// Compresses one header block and sync-flushes, so the peer can decode it at once.
    pub fn compress(&mut self, block: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity(block.len() / 2 + 64);
        let mut consumed = 0usize;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(64));
            }
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(&block[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Zlib(e.to_string()))?;
            consumed += (self.deflate.total_in() - before) as usize;
            // The flush is complete once all input is taken and output space is left over.
            if consumed == block.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }

    /// The wire bytes of `frame`.
    pub fn encode(&mut self, frame: &Frame) -> Result<Vec<u8>, SpdyError> {
        let (frame_type, flags, payload) = match frame {
            Frame::Data { stream_id, flags, data } => {
                if data.len() > MAX_LENGTH {
                    return Err(SpdyError::TooLarge(data.len()));
                }
                let mut out = Vec::with_capacity(HEAD_LEN + data.len());
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.push(*flags);
                out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
                out.extend_from_slice(data);
                return Ok(out);
            }
            Frame::SynStream { stream_id, associated_to, priority, slot, flags, headers } => {
                let mut p = Vec::new();
                p.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                p.extend_from_slice(&(associated_to & 0x7fff_ffff).to_be_bytes());
                p.push(priority << 5);
                p.push(*slot);
                p.extend(self.compress(&encode_header_block(headers))?);
                (kind::SYN_STREAM, *flags, p)
            }
            Frame::SynReply { stream_id, flags, headers } => {
                let mut p = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
                p.extend(self.compress(&encode_header_block(headers))?);
                (kind::SYN_REPLY, *flags, p)
            }
            Frame::Headers { stream_id, flags, headers } => {
                let mut p = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
                p.extend(self.compress(&encode_header_block(headers))?);
                (kind::HEADERS, *flags, p)
            }
            Frame::RstStream { stream_id, status } => {
                let mut p = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
                p.extend_from_slice(&status.to_be_bytes());
                (kind::RST_STREAM, 0, p)
            }
            Frame::Settings { flags, entries } => {
                let mut p = (entries.len() as u32).to_be_bytes().to_vec();
                for s in entries {
                    p.extend_from_slice(&(u32::from(s.flags) << 24 | (s.id & 0x00ff_ffff)).to_be_bytes());
                    p.extend_from_slice(&s.value.to_be_bytes());
                }
                (kind::SETTINGS, *flags, p)
            }
            Frame::Ping { id } => (kind::PING, 0, id.to_be_bytes().to_vec()),
            Frame::GoAway { last_good_stream_id, status } => {
                let mut p = (last_good_stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
                p.extend_from_slice(&status.to_be_bytes());
                (kind::GOAWAY, 0, p)
            }
            Frame::WindowUpdate { stream_id, delta } => {
                let mut p = (stream_id & 0x7fff_ffff).to_be_bytes().to_vec();
                p.extend_from_slice(&(delta & 0x7fff_ffff).to_be_bytes());
                (kind::WINDOW_UPDATE, 0, p)
            }
            Frame::Unknown { frame_type, flags } => (*frame_type, *flags, Vec::new()),
        };
        if payload.len() > MAX_LENGTH {
            return Err(SpdyError::TooLarge(payload.len()));
        }
        let mut out = Vec::with_capacity(HEAD_LEN + payload.len());
        out.extend_from_slice(&(0x8000u16 | VERSION).to_be_bytes());
        out.extend_from_slice(&frame_type.to_be_bytes());
        out.push(flags);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        out.extend(payload);
        Ok(out)
    }
}

/// The receiving side's header decompression context (one per connection).
pub struct Decoder {
    inflate: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder { inflate: Decompress::new(true) }
    }

    /// Inflates one header block's bytes (the zlib stream continues across blocks). The preset
    /// dictionary is supplied when the stream's header asks for it.
    pub fn decompress(&mut self, input: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        let mut consumed = 0usize;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(SpdyError::HeaderBlock("too large"));
                }
                out.reserve(out.capacity().max(256));
            }
            let before = self.inflate.total_in();
            let result = self.inflate.decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync);
            consumed += (self.inflate.total_in() - before) as usize;
            if out.len() > MAX_HEADER_BLOCK {
                return Err(SpdyError::HeaderBlock("too large"));
            }
            match result {
                Ok(Status::StreamEnd) => return Ok(out),
                Ok(_) => {
                    if consumed == input.len() && out.len() < out.capacity() {
                        return Ok(out);
                    }
                }
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate.set_dictionary(DICTIONARY).map_err(|e| SpdyError::Zlib(e.to_string()))?;
                }
                Err(e) => return Err(SpdyError::Zlib(e.to_string())),
            }
        }
    }

    fn headers(&mut self, compressed: &[u8]) -> Result<Headers, SpdyError> {
        decode_header_block(&self.decompress(compressed)?)
    }

    /// Unpacks a frame from its head and payload. Header blocks go through this connection's
    /// decompression context, so every header-bearing frame must be decoded, in order.
    pub fn decode(&mut self, head: &Head, p: &[u8]) -> Result<Frame, SpdyError> {
        let (frame_type, flags) = match *head {
            Head::Data { stream_id, flags, .. } => {
                if stream_id == 0 {
                    return Err(SpdyError::ZeroStreamId);
                }
                return Ok(Frame::Data { stream_id, flags, data: p.to_vec() });
            }
            Head::Control { frame_type, flags, .. } => (frame_type, flags),
        };
        let invalid = || SpdyError::InvalidControlFrame { frame_type, length: p.len() };
        let stream = |at: usize| -> Result<u32, SpdyError> {
            let id = be32(p, at) & 0x7fff_ffff;
            if id == 0 { Err(SpdyError::ZeroStreamId) } else { Ok(id) }
        };
        let frame = match frame_type {
            kind::SYN_STREAM if p.len() >= 10 => Frame::SynStream {
                stream_id: stream(0)?,
                associated_to: be32(p, 4) & 0x7fff_ffff,
                priority: p[8] >> 5,
                slot: p[9],
                flags,
                headers: self.headers(&p[10..])?,
            },
            kind::SYN_REPLY if p.len() >= 4 => {
                Frame::SynReply { stream_id: stream(0)?, flags, headers: self.headers(&p[4..])? }
            }
            kind::HEADERS if p.len() >= 4 => {
                Frame::Headers { stream_id: stream(0)?, flags, headers: self.headers(&p[4..])? }
            }
            kind::RST_STREAM if p.len() == 8 => Frame::RstStream { stream_id: stream(0)?, status: be32(p, 4) },
            kind::SETTINGS if p.len() >= 4 => {
                let count = be32(p, 0) as usize;
                if p.len() != 4 + count.checked_mul(8).ok_or_else(invalid)? {
                    return Err(invalid());
                }
                let entries = (0..count)
                    .map(|i| {
                        let word = be32(p, 4 + 8 * i);
                        Setting { flags: (word >> 24) as u8, id: word & 0x00ff_ffff, value: be32(p, 8 + 8 * i) }
                    })
                    .collect();
                Frame::Settings { flags, entries }
            }
            kind::PING if p.len() == 4 => Frame::Ping { id: be32(p, 0) },
            kind::GOAWAY if p.len() == 8 => {
                Frame::GoAway { last_good_stream_id: be32(p, 0) & 0x7fff_ffff, status: be32(p, 4) }
            }
            kind::WINDOW_UPDATE if p.len() == 8 => {
                Frame::WindowUpdate { stream_id: be32(p, 0) & 0x7fff_ffff, delta: be32(p, 4) & 0x7fff_ffff }
            }
            kind::SYN_STREAM
            | kind::SYN_REPLY
            | kind::HEADERS
            | kind::RST_STREAM
            | kind::SETTINGS
            | kind::PING
            | kind::GOAWAY
            | kind::WINDOW_UPDATE => return Err(invalid()),
            other => Frame::Unknown { frame_type: other, flags },
        };
        Ok(frame)
    }
}

/// The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1): 1423 bytes, Adler-32
/// `0xe3c6a7c2`, byte for byte what spdystream's framer primes zlib with.
pub const DICTIONARY: &[u8; 1423] = b"\
    \x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03p\
    ut\x00\x00\x00\x06delete\x00\x00\x00\x05trace\x00\x00\x00\x06accept\x00\
    \x00\x00\x0eaccept-charset\x00\x00\x00\x0faccept-enco\
    ding\x00\x00\x00\x0faccept-language\x00\x00\x00\x0daccep\
    t-ranges\x00\x00\x00\x03age\x00\x00\x00\x05allow\x00\x00\x00\x0dauth\
    orization\x00\x00\x00\x0dcache-control\x00\x00\x00\x0aco\
    nnection\x00\x00\x00\x0ccontent-base\x00\x00\x00\x10cont\
    ent-encoding\x00\x00\x00\x10content-language\
    \x00\x00\x00\x0econtent-length\x00\x00\x00\x10content-lo\
    cation\x00\x00\x00\x0bcontent-md5\x00\x00\x00\x0dcontent\
    -range\x00\x00\x00\x0ccontent-type\x00\x00\x00\x04date\x00\x00\
    \x00\x04etag\x00\x00\x00\x06expect\x00\x00\x00\x07expires\x00\x00\x00\x04f\
    rom\x00\x00\x00\x04host\x00\x00\x00\x08if-match\x00\x00\x00\x11if-mo\
    dified-since\x00\x00\x00\x0dif-none-match\x00\x00\x00\
    \x08if-range\x00\x00\x00\x13if-unmodified-since\
    \x00\x00\x00\x0dlast-modified\x00\x00\x00\x08location\x00\x00\x00\
    \x0cmax-forwards\x00\x00\x00\x06pragma\x00\x00\x00\x12proxy\
    -authenticate\x00\x00\x00\x13proxy-authoriza\
    tion\x00\x00\x00\x05range\x00\x00\x00\x07referer\x00\x00\x00\x0bretr\
    y-after\x00\x00\x00\x06server\x00\x00\x00\x02te\x00\x00\x00\x07trail\
    er\x00\x00\x00\x11transfer-encoding\x00\x00\x00\x07upgra\
    de\x00\x00\x00\x0auser-agent\x00\x00\x00\x04vary\x00\x00\x00\x03via\x00\
    \x00\x00\x07warning\x00\x00\x00\x10www-authenticate\x00\x00\
    \x00\x06method\x00\x00\x00\x03get\x00\x00\x00\x06status\x00\x00\x00\x06200\
    \x20OK\x00\x00\x00\x07version\x00\x00\x00\x08HTTP/1.1\x00\x00\x00\x03ur\
    l\x00\x00\x00\x06public\x00\x00\x00\x0aset-cookie\x00\x00\x00\x0akee\
    p-alive\x00\x00\x00\x06origin100101201202205\
    20630030230330430530630740240540\
    64074084094104114124134144154164\
    17502504505203\x20Non-Authoritative\
    \x20Information204\x20No\x20Content301\x20Mo\
    ved\x20Permanently400\x20Bad\x20Request40\
    1\x20Unauthorized403\x20Forbidden404\x20N\
    ot\x20Found500\x20Internal\x20Server\x20Erro\
    r501\x20Not\x20Implemented503\x20Service\x20\
    UnavailableJan\x20Feb\x20Mar\x20Apr\x20May\x20J\
    un\x20Jul\x20Aug\x20Sept\x20Oct\x20Nov\x20Dec\x2000:0\
    0:00\x20Mon,\x20Tue,\x20Wed,\x20Thu,\x20Fri,\x20Sa\
    t,\x20Sun,\x20GMTchunked,text/html,ima\
    ge/png,image/jpg,image/gif,appli\
    cation/xml,application/xhtml+xml\
    ,text/plain,text/javascript,publ\
    icprivatemax-age=gzip,deflate,sd\
    chcharset=utf-8charset=iso-8859-\
    1,utf-,*,enq=0.";

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    /// Splits wire bytes into frames and decodes them with one context.
    fn decode_all(dec: &mut Decoder, mut bytes: &[u8]) -> Vec<Frame> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let head = Head::parse(bytes[..HEAD_LEN].try_into().expect("head"));
            let end = HEAD_LEN + head.length();
            frames.push(dec.decode(&head, &bytes[HEAD_LEN..end]).expect("frame"));
            bytes = &bytes[end..];
        }
        frames
    }

    /// RFC 1950 Adler-32, to check the dictionary independently of zlib.
    fn adler32(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &x in data {
            a = (a + u32::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        b << 16 | a
    }

    #[test]
    fn dictionary_is_the_draft_3_one() {
        assert_eq!(DICTIONARY.len(), 1423);
        assert_eq!(adler32(DICTIONARY), 0xe3c6_a7c2);
        assert!(DICTIONARY.starts_with(b"\x00\x00\x00\x07options\x00\x00\x00\x04head"));
        assert!(DICTIONARY.ends_with(b"charset=iso-8859-1,utf-,*,enq=0."));
        // Primed streams announce it: FDICT set and the dictionary's Adler-32 after the header.
        let first = Encoder::new().compress(b"x").expect("compress");
        assert_eq!(first[0], 0x78);
        assert_eq!(first[1] & 0x20, 0x20, "FDICT");
        assert_eq!(u16::from_be_bytes([first[0], first[1]]) % 31, 0, "zlib header check bits");
        assert_eq!(first[2..6], [0xe3, 0xc6, 0xa7, 0xc2]);
    }

    /// Two SYN_STREAMs as kubectl sends them for one forwarded connection, compressed by C zlib
    /// (level 9, the SPDY dictionary, a sync flush per block, one stream for both).
    #[test]
    fn decodes_frames_from_another_implementation() {
        let error =
            hex("800300010000003c0000000100000000000078f9e3c6a7c202253a48f95b044aab4c16064092b308125b99a054cc6800\
             4e872545a989b9d0a2863515141100000000ffff");
        let data = hex("800300010000001600000003000000000000224b2ba8944a04000000ffff");
        let mut dec = Decoder::new();
        let frames = decode_all(&mut dec, &[error, data].concat());
        let syn = |id, kind| Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            slot: 0,
            flags: 0,
            headers: h(&[("port", "80"), ("requestid", "0"), ("streamtype", kind)]),
        };
        assert_eq!(frames, vec![syn(1, "error"), syn(3, "data")]);
    }

    #[test]
    fn header_blocks() {
        let headers = h(&[("Port", "8080"), ("streamType", "data"), ("x", "a"), ("x", "b"), ("empty", "")]);
        let block = encode_header_block(&headers);
        let mut want = vec![0, 0, 0, 4];
        for (n, v) in [("port", "8080"), ("streamtype", "data"), ("x", "a\0b"), ("empty", "")] {
            want.extend_from_slice(&(n.len() as u32).to_be_bytes());
            want.extend_from_slice(n.as_bytes());
            want.extend_from_slice(&(v.len() as u32).to_be_bytes());
            want.extend_from_slice(v.as_bytes());
        }
        assert_eq!(block, want);
        assert_eq!(
            decode_header_block(&block),
            Ok(h(&[("port", "8080"), ("streamtype", "data"), ("x", "a"), ("x", "b"), ("empty", "")]))
        );
        assert_eq!(header(&headers, "STREAMTYPE"), Some("data"));
        assert_eq!(header(&headers, "requestID"), None);
        assert_eq!(decode_header_block(&[0, 0, 0, 0]), Ok(Headers::new()));
        let bad: &[(&[u8], SpdyError)] = &[
            (&[0, 0], SpdyError::HeaderBlock("truncated")),
            (&[0, 0, 0, 1, 0, 0, 0, 9, b'a'], SpdyError::HeaderBlock("truncated")),
            (&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], SpdyError::HeaderBlock("empty name")),
            (&[0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0, 0, 0, 0], SpdyError::HeaderBlock("name is not UTF-8")),
            (&[0xff, 0xff, 0xff, 0xff], SpdyError::HeaderBlock("truncated")),
        ];
        for (bytes, want) in bad {
            assert_eq!(decode_header_block(bytes).as_ref(), Err(want), "{bytes:?}");
        }
    }

    #[test]
    fn compressed_blocks_share_one_context_per_direction() {
        let (mut enc, mut dec) = (Encoder::new(), Decoder::new());
        let blocks: Vec<Headers> = vec![
            h(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]),
            h(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]),
            Headers::new(),
            h(&[("big", &"v".repeat(100_000))]),
            h(&[("streamtype", "data"), ("port", "80"), ("requestid", "1")]),
        ];
        let mut sizes = Vec::new();
        for block in &blocks {
            let raw = encode_header_block(block);
            let compressed = enc.compress(&raw).expect("compress");
            assert!(compressed.ends_with(&[0, 0, 0xff, 0xff]), "sync flushed");
            sizes.push(compressed.len());
            let back = dec.decompress(&compressed).expect("decompress");
            assert!(back == raw, "block of {} bytes decoded to {} bytes", raw.len(), back.len());
        }
        // The second block compresses against the history of the first.
        assert!(sizes[1] < sizes[0] / 2, "{sizes:?}");
        // A fresh decoder cannot read the middle of another connection's stream.
        let later = enc.compress(&encode_header_block(&blocks[0])).expect("compress");
        assert!(Decoder::new().decompress(&later).is_err());
    }

    #[test]
    fn refuses_inflation_bombs() {
        let mut enc = Encoder::new();
        let huge = enc.compress(&vec![b'a'; MAX_HEADER_BLOCK + 10]).expect("compress");
        assert_eq!(Decoder::new().decompress(&huge).map(|v| v.len()), Err(SpdyError::HeaderBlock("too large")));
    }

    #[test]
    fn frames_round_trip_with_exact_bytes() {
        // (frame, wire bytes; None where a header block makes them compression-dependent)
        let cases: Vec<(Frame, Option<Vec<u8>>)> = vec![
            (Frame::data(1, b"hi".to_vec()), Some(hex("00000001000000026869"))),
            (Frame::fin(3), Some(hex("0000000301000000"))),
            (Frame::Data { stream_id: 0x7fff_fffd, flags: FLAG_FIN, data: vec![0] }, Some(hex("7ffffffd0100000100"))),
            (Frame::RstStream { stream_id: 5, status: rst::CANCEL }, Some(hex("80030003000000080000000500000005"))),
            (Frame::Ping { id: 1 }, Some(hex("800300060000000400000001"))),
            (
                Frame::GoAway { last_good_stream_id: 7, status: goaway::OK },
                Some(hex("80030007000000080000000700000000")),
            ),
            (Frame::WindowUpdate { stream_id: 1, delta: 65536 }, Some(hex("80030009000000080000000100010000"))),
            (
                Frame::Settings {
                    flags: 1,
                    entries: vec![Setting { flags: 1, id: 4, value: 100 }, Setting { flags: 0, id: 7, value: 1 << 16 }],
                },
                Some(hex("80030004010000140000000201000004000000640000000700010000")),
            ),
            (Frame::SynReply { stream_id: 1, flags: 0, headers: Headers::new() }, None),
            (Frame::SynReply { stream_id: 3, flags: FLAG_FIN, headers: h(&[("a", "b")]) }, None),
            (
                Frame::SynStream {
                    stream_id: 5,
                    associated_to: 1,
                    priority: 7,
                    slot: 2,
                    flags: FLAG_FIN | FLAG_UNIDIRECTIONAL,
                    headers: h(&[("streamtype", "data"), ("port", "8080")]),
                },
                None,
            ),
            (Frame::Headers { stream_id: 9, flags: 0, headers: h(&[("x", "1"), ("x", "2")]) }, None),
        ];
        let (mut enc, mut dec) = (Encoder::new(), Decoder::new());
        for (frame, want) in cases {
            let bytes = enc.encode(&frame).expect("encode");
            if let Some(want) = want {
                assert_eq!(bytes, want, "{frame:?}");
            }
            assert_eq!(decode_all(&mut dec, &bytes), vec![frame.clone()], "{frame:?}");
        }
    }

    #[test]
    fn syn_reply_layout() {
        let bytes =
            Encoder::new().encode(&Frame::SynReply { stream_id: 1, flags: 0, headers: Headers::new() }).expect("e");
        // Control bit + version 3, type 2, no flags, then the stream id and the compressed block.
        assert_eq!(bytes[..4], [0x80, 0x03, 0x00, 0x02]);
        assert_eq!(bytes[4], 0);
        assert_eq!(Head::parse(bytes[..8].try_into().expect("head")).length(), bytes.len() - HEAD_LEN);
        assert_eq!(bytes[8..12], [0, 0, 0, 1]);
    }

    #[test]
    fn heads() {
        let cases: &[([u8; 8], Head)] = &[
            (
                [0x80, 0x03, 0x00, 0x01, 0x01, 0x00, 0x01, 0x02],
                Head::Control { version: 3, frame_type: 1, flags: 1, length: 258 },
            ),
            ([0x80, 0x02, 0x00, 0x06, 0x00, 0, 0, 4], Head::Control { version: 2, frame_type: 6, flags: 0, length: 4 }),
            ([0, 0, 0, 1, 1, 0xff, 0xff, 0xff], Head::Data { stream_id: 1, flags: 1, length: MAX_LENGTH }),
        ];
        for (bytes, want) in cases {
            assert_eq!(Head::parse(bytes), *want);
        }
    }

    #[test]
    fn invalid_frames() {
        let mut dec = Decoder::new();
        let control = |frame_type, length| Head::Control { version: 3, frame_type, flags: 0, length };
        let cases: Vec<(Head, Vec<u8>, SpdyError)> = vec![
            (control(kind::PING, 3), vec![0, 0, 1], SpdyError::InvalidControlFrame { frame_type: 6, length: 3 }),
            (control(kind::RST_STREAM, 4), vec![0; 4], SpdyError::InvalidControlFrame { frame_type: 3, length: 4 }),
            (control(kind::RST_STREAM, 8), vec![0; 8], SpdyError::ZeroStreamId),
            (control(kind::SYN_STREAM, 9), vec![0; 9], SpdyError::InvalidControlFrame { frame_type: 1, length: 9 }),
            (
                control(kind::SETTINGS, 8),
                vec![0, 0, 0, 1, 0, 0, 0, 0],
                SpdyError::InvalidControlFrame { frame_type: 4, length: 8 },
            ),
            (Head::Data { stream_id: 0, flags: 0, length: 0 }, vec![], SpdyError::ZeroStreamId),
        ];
        for (head, payload, want) in cases {
            assert_eq!(dec.decode(&head, &payload), Err(want), "{head:?}");
        }
        assert_eq!(dec.decode(&control(0x0a, 2), &[1, 2]), Ok(Frame::Unknown { frame_type: 10, flags: 0 }));
        assert!(matches!(dec.decode(&control(kind::SYN_REPLY, 6), &[0, 0, 0, 1, 9, 9]), Err(SpdyError::Zlib(_))));
    }
}
