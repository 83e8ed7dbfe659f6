//! The copy loop of one relay: both directions, pooled buffers, half-close.
//!
//! Like `tokio::io::copy_bidirectional`, but a direction holds a buffer only
//! while it has bytes to pass on: the buffer is taken from the pool when a
//! read is attempted and given back when that read is pending or everything
//! read has been written. An idle relay therefore holds no buffer, and a
//! busy one reads until its 64 KiB buffer is full or the source has nothing
//! more right now before writing, so many small TLS records reach the
//! upstream in one `write`.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::buffers::{BUF_SIZE, IoBuf};
use crate::overload::{Charge, Overload};

/// One direction's state.
struct Direction {
    /// Read but not yet written: `buf[start..end]`.
    buf: Option<IoBuf>,
    /// The buffer's bytes, charged to overload shedding while it is held.
    charge: Charge,
    start: usize,
    end: usize,
    /// The source reached EOF.
    read_done: bool,
    /// Bytes were written since the last flush.
    need_flush: bool,
    /// EOF passed on (writer shut down).
    done: bool,
}

impl Direction {
    fn new(overload: &Arc<Overload>) -> Self {
        Self {
            buf: None,
            charge: overload.charge(0),
            start: 0,
            end: 0,
            read_done: false,
            need_flush: false,
            done: false,
        }
    }

    /// Gives the (drained) buffer back to the pool.
    fn release(&mut self) {
        if self.buf.take().is_some() {
            self.charge.set(0);
        }
    }
    /// Moves bytes from `reader` to `writer` until the reader has nothing
    /// more right now (Pending) or has ended and the writer is shut down
    /// (`Ready(Ok)`).
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut reader: Pin<&mut R>,
        mut writer: Pin<&mut W>,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        loop {
            if self.start < self.end {
                let buf = self.buf.as_ref().expect("pending bytes live in a buffer");
                let n = ready!(writer.as_mut().poll_write(cx, &buf[self.start..self.end]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.start += n;
                self.need_flush = true;
                if self.start < self.end {
                    continue;
                }
                (self.start, self.end) = (0, 0);
            }
            if self.read_done {
                self.release();
                ready!(writer.as_mut().poll_flush(cx))?;
                ready!(writer.as_mut().poll_shutdown(cx))?;
                self.done = true;
                return Poll::Ready(Ok(()));
            }
            match self.fill(cx, reader.as_mut()) {
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => {
                    if self.start < self.end {
                        // Something was read before the source ran dry.
                        continue;
                    }
                    self.release();
                    if self.need_flush {
                        ready!(writer.as_mut().poll_flush(cx))?;
                        self.need_flush = false;
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    /// Reads until the buffer is full (`Ready`), EOF (`Ready`, `read_done`)
    /// or the source has nothing more right now (`Pending`, possibly with
    /// bytes read).
    fn fill<R: AsyncRead + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        mut reader: Pin<&mut R>,
    ) -> Poll<io::Result<()>> {
        if self.buf.is_none() {
            self.charge.set(BUF_SIZE);
        }
        let buf = self.buf.get_or_insert_with(IoBuf::take);
        while self.end < buf.len() {
            let mut rb = ReadBuf::new(&mut buf[self.end..]);
            match reader.as_mut().poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    self.read_done = true;
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Ok(())) => self.end += rb.filled().len(),
                // An error after some bytes: pass those on first; the
                // error comes back on the next read.
                Poll::Ready(Err(_)) | Poll::Pending if self.end > 0 => return Poll::Pending,
                other => return other,
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// Copies `a` → `b` and `b` → `a` until both directions reached EOF and
/// passed it on, or one fails. Byte counts are left to the caller's
/// stream wrappers. Buffers held are charged to `overload`.
pub async fn bidirectional<A, B>(a: &mut A, b: &mut B, overload: &Arc<Overload>) -> io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let mut a_to_b = Direction::new(overload);
    let mut b_to_a = Direction::new(overload);
    poll_fn(|cx| {
        let a_to_b_poll = if a_to_b.done {
            Poll::Ready(Ok(()))
        } else {
            a_to_b.poll_copy(cx, Pin::new(&mut *a), Pin::new(&mut *b))
        };
        let b_to_a_poll = if b_to_a.done {
            Poll::Ready(Ok(()))
        } else {
            b_to_a.poll_copy(cx, Pin::new(&mut *b), Pin::new(&mut *a))
        };
        match (a_to_b_poll, b_to_a_poll) {
            (Poll::Ready(Err(err)), _) | (_, Poll::Ready(Err(err))) => Poll::Ready(Err(err)),
            (Poll::Ready(Ok(())), Poll::Ready(Ok(()))) => Poll::Ready(Ok(())),
            _ => Poll::Pending,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::overload::OverloadLimits;
    use std::task::Waker;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    fn overload() -> Arc<Overload> {
        Overload::new(OverloadLimits::default(), &Metrics::default())
    }

    fn poll_once<R, W>(dir: &mut Direction, reader: &mut R, writer: &mut W) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut cx = Context::from_waker(Waker::noop());
        dir.poll_copy(&mut cx, Pin::new(reader), Pin::new(writer))
    }

    #[tokio::test]
    async fn idle_direction_holds_no_buffer() {
        let (mut src_peer, mut src) = duplex(1024);
        let (mut dst, mut dst_peer) = duplex(1024);
        let overload = overload();
        let mut dir = Direction::new(&overload);
        assert!(poll_once(&mut dir, &mut src, &mut dst).is_pending());
        assert!(dir.buf.is_none(), "nothing to read: no buffer held");
        assert_eq!(overload.buffered(), 0);

        src_peer.write_all(b"hello").await.unwrap();
        assert!(poll_once(&mut dir, &mut src, &mut dst).is_pending());
        assert!(dir.buf.is_none(), "all written: buffer given back");
        assert_eq!(overload.buffered(), 0, "and no longer charged");
        let mut got = [0u8; 5];
        dst_peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");

        drop(src_peer);
        assert!(poll_once(&mut dir, &mut src, &mut dst).is_ready());
        assert!(dir.done);
        assert_eq!(dst_peer.read(&mut got).await.unwrap(), 0, "EOF passed on");
    }

    #[tokio::test]
    async fn blocked_writer_holds_one_buffer_and_stops_reading() {
        let (mut src_peer, mut src) = duplex(512 * 1024);
        // The destination takes 1 KiB and is never read: a stalled player.
        let (mut dst, _dst_peer) = duplex(1024);
        src_peer.write_all(&vec![7u8; 300 * 1024]).await.unwrap();
        let overload = overload();
        let mut dir = Direction::new(&overload);
        assert!(poll_once(&mut dir, &mut src, &mut dst).is_pending());
        assert!(dir.buf.is_some(), "unwritten bytes keep their buffer");
        assert_eq!(overload.buffered(), BUF_SIZE as u64, "charged while held");
        assert!(dir.end <= crate::buffers::BUF_SIZE);
        // What the relay has not read is still in the source: backpressure,
        // not buffering without limit.
        let mut left = Vec::new();
        drop(src_peer);
        src.read_to_end(&mut left).await.unwrap();
        assert_eq!(left.len(), 300 * 1024 - dir.end);
    }
}
