//! SHA-256 content digests (`sha256:<hex>`) and a reader that hashes what passes through it, so a
//! layer's diffID is computed while it is being unpacked, without a second pass.

use sha2::{Digest as _, Sha256};
use std::io::Read;

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of a `sha256:<hex>` digest, if it is one (64 lowercase hex digits).
pub fn sha256_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some(hex)
}

/// Wraps a reader and hashes every byte read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    /// Starts hashing reads from `inner`.
    pub fn new(inner: R) -> Self {
        Self { inner, hasher: Sha256::new() }
    }

    /// Reads `inner` to its end (tar archives may carry padding after their end marker) and returns
    /// the digest of everything read.
    pub fn finish(mut self) -> std::io::Result<String> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        Ok(format!("sha256:{}", hex::encode(self.hasher.finalize())))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests() {
        assert_eq!(sha256(b""), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        let mut r = HashingReader::new(&b"abc"[..]);
        let mut first = [0u8; 1];
        r.read_exact(&mut first).expect("read");
        assert_eq!(
            r.finish().expect("finish"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hex_part() {
        let good = format!("sha256:{}", "0f".repeat(32));
        assert_eq!(sha256_hex(&good), Some(&good[7..]));
        for bad in ["sha256:abc", "sha512:00", "0f0f", &format!("sha256:{}", "0F".repeat(32))] {
            assert_eq!(sha256_hex(bad), None, "{bad}");
        }
    }
}
