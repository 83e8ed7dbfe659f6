//! Read-ahead under rustls: one socket read per burst of TLS records.
//!
//! rustls asks its transport for at most 4 KiB per read, so a 16 KiB record
//! costs four or five `read` system calls, the main cost of TLS ingest
//! after the cipher itself. [`ReadAhead`] answers those small reads from a
//! pooled 64 KiB buffer filled by one system call, and gives the buffer back
//! as soon as rustls has taken every byte, so a quiet connection holds none.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use super::IoBuf;

/// Wraps a socket so small reads are served from a pooled buffer.
#[derive(Debug)]
pub struct ReadAhead<S> {
    inner: S,
    /// Bytes read from `inner` and not yet handed out: `buf[start..end]`.
    buf: Option<IoBuf>,
    start: usize,
    end: usize,
}

impl<S> ReadAhead<S> {
    /// Wraps `inner`; no buffer is taken until the first read.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            buf: None,
            start: 0,
            end: 0,
        }
    }

    /// The wrapped socket.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.start == this.end {
            // A caller that can take a whole buffer's worth reads directly:
            // going through ours would only add a copy.
            if out.remaining() >= super::BUF_SIZE {
                this.buf = None;
                return Pin::new(&mut this.inner).poll_read(cx, out);
            }
            let mut buf = this.buf.take().unwrap_or_else(IoBuf::take);
            let mut fill = ReadBuf::new(&mut buf);
            // On Pending or EOF the buffer goes back to the pool with `buf`.
            match Pin::new(&mut this.inner).poll_read(cx, &mut fill) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            let filled = fill.filled().len();
            if filled == 0 {
                return Poll::Ready(Ok(()));
            }
            (this.start, this.end) = (0, filled);
            this.buf = Some(buf);
        }
        let Some(buf) = this.buf.as_ref() else {
            return Poll::Ready(Ok(()));
        };
        let n = out.remaining().min(this.end - this.start);
        out.put_slice(&buf[this.start..this.start + n]);
        this.start += n;
        if this.start == this.end {
            (this.start, this.end) = (0, 0);
            this.buf = None;
        }
        Poll::Ready(Ok(()))
    }
}

crate::forward_async_write!(ReadAhead<S>, S);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    #[tokio::test]
    async fn small_reads_see_every_byte_in_order_then_eof() {
        let (mut tx, rx) = duplex(256 * 1024);
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        tx.write_all(&data).await.unwrap();
        drop(tx);
        let mut rx = ReadAhead::new(rx);
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = rx.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(got, data);
        assert!(rx.buf.is_none(), "no buffer held once drained");
    }
}
