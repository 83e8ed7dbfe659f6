//! Telling protocols apart from the first bytes a client sends.
//!
//! Owns the classification only. The caller keeps the bytes it read and
//! hands them on (to the upstream, or to the HTTP server through
//! [`Rewind`]), so nothing read while sniffing is ever lost.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, ReadBuf};

/// What the first byte of a connection says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// RTMP C0 version 3.
    Rtmp,
    /// RTMPE C0 (0x06, or 0x08 for the XTEA/Blowfish variants): relayed
    /// unchanged, never terminated.
    Rtmpe,
    /// An ASCII letter: an HTTP request line (RTMPT is `POST`).
    Http,
    /// A TLS record header (ClientHello).
    Tls,
    /// Anything else.
    Unknown(u8),
}

impl Sniffed {
    /// Classifies a connection by its first byte.
    pub fn from_first_byte(byte: u8) -> Self {
        match byte {
            0x03 => Self::Rtmp,
            0x06 | 0x08 => Self::Rtmpe,
            0x16 => Self::Tls,
            b'A'..=b'Z' => Self::Http,
            other => Self::Unknown(other),
        }
    }
}

/// A stream that yields `prefix` before reading from `inner` again: how
/// bytes consumed while sniffing reach a parser that wants the whole stream.
#[derive(Debug)]
pub struct Rewind<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    /// Wraps `inner`, replaying `prefix` first.
    pub fn new(prefix: Bytes, inner: S) -> Self {
        Self { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

crate::forward_async_write!(Rewind<S>, S);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn classifies_first_bytes() {
        assert_eq!(Sniffed::from_first_byte(0x03), Sniffed::Rtmp);
        assert_eq!(Sniffed::from_first_byte(0x06), Sniffed::Rtmpe);
        assert_eq!(Sniffed::from_first_byte(b'P'), Sniffed::Http);
        assert_eq!(Sniffed::from_first_byte(0x16), Sniffed::Tls);
        assert_eq!(Sniffed::from_first_byte(0xff), Sniffed::Unknown(0xff));
    }

    #[tokio::test]
    async fn rewind_replays_prefix_then_stream() {
        let (mut a, b) = tokio::io::duplex(16);
        tokio::io::AsyncWriteExt::write_all(&mut a, b" /open/1")
            .await
            .unwrap();
        drop(a);
        let mut r = Rewind::new(Bytes::from_static(b"POST"), b);
        let mut out = String::new();
        r.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "POST /open/1");
    }
}
