//! The protobuf wire format (<https://protobuf.dev/programming-guides/encoding/>): a message is a
//! sequence of `(tag << 3 | wire type, value)` records. Kubernetes uses no groups and no zigzag.

/// A malformed byte sequence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("unexpected end of data")]
    Truncated,
    #[error("varint longer than 10 bytes")]
    VarintOverflow,
    #[error("unsupported wire type {0}")]
    WireType(u8),
    #[error("invalid field number 0")]
    ZeroTag,
}

/// The value of one record, still untyped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// Reads records one by one.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len()).ok_or(WireError::Truncated)?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub fn varint(&mut self) -> Result<u64, WireError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let byte = *self.buf.get(self.pos).ok_or(WireError::Truncated)?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::VarintOverflow)
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// The next record, or `None` at the end of the message.
    pub fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, WireError> {
        if self.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let tag = u32::try_from(key >> 3).map_err(|_| WireError::VarintOverflow)?;
        if tag == 0 {
            return Err(WireError::ZeroTag);
        }
        let value = match (key & 7) as u8 {
            0 => Value::Varint(self.varint()?),
            1 => {
                let b = self.take(8)?;
                Value::Fixed64(u64::from_le_bytes(b.try_into().map_err(|_| WireError::Truncated)?))
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| WireError::Truncated)?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                let b = self.take(4)?;
                Value::Fixed32(u32::from_le_bytes(b.try_into().map_err(|_| WireError::Truncated)?))
            }
            other => return Err(WireError::WireType(other)),
        };
        Ok(Some((tag, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(buf: &[u8]) -> Result<Vec<(u32, Value<'_>)>, WireError> {
        let mut r = Reader::new(buf);
        let mut out = Vec::new();
        while let Some(f) = r.next_field()? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn reads_every_wire_type() {
        let buf = [
            0x08, 0x96, 0x01, // 1: varint 150
            0x12, 0x03, b'a', b'b', b'c', // 2: "abc"
            0x19, 1, 0, 0, 0, 0, 0, 0, 0, // 3: fixed64 1
            0x25, 2, 0, 0, 0, // 4: fixed32 2
            0x80, 0x01, 0x00, // 16: varint 0 (two-byte key)
        ];
        assert_eq!(
            all(&buf),
            Ok(vec![
                (1, Value::Varint(150)),
                (2, Value::Bytes(b"abc")),
                (3, Value::Fixed64(1)),
                (4, Value::Fixed32(2)),
                (16, Value::Varint(0)),
            ])
        );
    }

    #[test]
    fn negative_int32_is_a_ten_byte_varint() {
        let buf = [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(all(&buf), Ok(vec![(1, Value::Varint(u64::MAX))]));
    }

    #[test]
    fn rejects_malformed_input() {
        let cases: [(&[u8], WireError); 5] = [
            (&[0x12, 0x05, b'a'], WireError::Truncated),
            (&[0x08], WireError::Truncated),
            (&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], WireError::VarintOverflow),
            (&[0x0b], WireError::WireType(3)),
            (&[0x00, 0x00], WireError::ZeroTag),
        ];
        for (buf, want) in cases {
            assert_eq!(all(buf), Err(want), "{buf:?}");
        }
    }
}
