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

#[cfg(test)]
use super::inspect::PassAll;
use super::inspect::{Inspect, Refused};
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
    /// `buf[..observed]` has been shown to the inspector.
    observed: usize,
    /// Bytes written on so far.
    written: u64,
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
            observed: 0,
            written: 0,
            read_done: false,
            need_flush: false,
            done: false,
        }
    }

    /// Starts with `held`: bytes already shown to the inspector.
    fn preload(&mut self, held: &[u8]) -> io::Result<()> {
        if held.len() > BUF_SIZE {
            let why = "the client's first bytes hold more than the relay buffer";
            return Err(Refused(why.to_owned()).into_io());
        }
        self.charge.set(BUF_SIZE);
        let buf = self.buf.get_or_insert_with(IoBuf::take);
        buf[..held.len()].copy_from_slice(held);
        (self.start, self.end, self.observed) = (0, held.len(), held.len());
        Ok(())
    }

    /// Gives the (drained) buffer back to the pool.
    fn release(&mut self) {
        if self.buf.take().is_some() {
            self.charge.set(0);
        }
    }
    /// Moves bytes from `reader` to `writer` until the reader has nothing
    /// more right now (Pending) or has ended and the writer is shut down
    /// (`Ready(Ok)`). Every byte read is shown to `inspect` first, and
    /// written only as far as it releases.
    fn poll_copy<R, W, I>(
        &mut self,
        cx: &mut Context<'_>,
        mut reader: Pin<&mut R>,
        mut writer: Pin<&mut W>,
        inspect: &mut I,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
        I: Inspect + ?Sized,
    {
        loop {
            if self.observed < self.end {
                let buf = self.buf.as_ref().expect("read bytes live in a buffer");
                inspect.observe(&buf[self.observed..self.end])?;
                self.observed = self.end;
            }
            let mut waiting = false;
            if self.start < self.end {
                let release = inspect.release(cx)?;
                waiting = release.waiting;
                let pending = (self.end - self.start) as u64;
                let may = release.upto.saturating_sub(self.written).min(pending) as usize;
                if may > 0 {
                    let buf = self.buf.as_ref().expect("pending bytes live in a buffer");
                    let chunk = &buf[self.start..self.start + may];
                    let n = ready!(writer.as_mut().poll_write(cx, chunk))?;
                    if n == 0 {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    self.start += n;
                    self.written += n as u64;
                    self.need_flush = true;
                    continue;
                }
            }
            if self.start == self.end {
                (self.start, self.end, self.observed) = (0, 0, 0);
            } else if self.make_room() {
                if !waiting {
                    let why = "an unfinished message fills the relay buffer; refusing to hold more";
                    return Poll::Ready(Err(Refused(why.to_owned()).into_io()));
                }
                // Full of held bytes: only the awaited decision can free it.
                ready!(self.poll_flush(cx, writer.as_mut()))?;
                return Poll::Pending;
            }
            if self.read_done {
                if self.start < self.end && waiting {
                    ready!(self.poll_flush(cx, writer.as_mut()))?;
                    return Poll::Pending;
                }
                // Held bytes that nothing can release any more (an
                // unfinished command at EOF) are dropped.
                (self.start, self.end, self.observed) = (0, 0, 0);
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
                    if self.observed < self.end {
                        // Something was read before the source ran dry.
                        continue;
                    }
                    if self.start == self.end {
                        self.release();
                    }
                    ready!(self.poll_flush(cx, writer.as_mut()))?;
                    return Poll::Pending;
                }
            }
        }
    }

    /// Moves held bytes to the front of the buffer; `true` when they fill
    /// all of it, so that nothing more can be read.
    fn make_room(&mut self) -> bool {
        let buf = self.buf.as_mut().expect("held bytes live in a buffer");
        if self.start > 0 {
            buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.observed -= self.start;
            self.start = 0;
        }
        self.end == buf.len()
    }

    /// Flushes the writer if bytes were written since the last flush.
    fn poll_flush<W: AsyncWrite + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        writer: Pin<&mut W>,
    ) -> Poll<io::Result<()>> {
        if self.need_flush {
            ready!(writer.poll_flush(cx))?;
            self.need_flush = false;
        }
        Poll::Ready(Ok(()))
    }

    /// Writes what is pending without reading, as far as the writer takes
    /// it at once; returns the bytes left unwritten.
    fn try_drain<W: AsyncWrite + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        mut writer: Pin<&mut W>,
    ) -> usize {
        while self.start < self.end {
            let buf = self.buf.as_ref().expect("pending bytes live in a buffer");
            match writer.as_mut().poll_write(cx, &buf[self.start..self.end]) {
                Poll::Ready(Ok(n)) if n > 0 => self.start += n,
                _ => break,
            }
        }
        let _ = writer.poll_flush(cx);
        self.end - self.start
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

/// Where the `a` → `b` direction starts when bytes of `a` were read before
/// the copy (the sniffed prefix).
pub struct Start<'a> {
    /// Bytes of `a` already written to `b`.
    pub written: u64,
    /// Bytes of `a` shown to the inspector and held by it, not yet written.
    pub held: &'a [u8],
}

/// Copies `a` → `b` and `b` → `a` until both directions reached EOF and
/// passed it on, or one fails (byte counts are left to the caller's stream
/// wrappers; buffers held are charged to `overload`), with `a_to_b` and `b_to_a` watching (and `a_to_b`
/// possibly holding back) each direction. When an inspector refuses, what
/// the other direction had read is written on if the writer takes it at
/// once, and both inspectors learn what was left unwritten. `start` says
/// how many bytes of `a` were already written on and which were seen by
/// `a_to_b` but not released yet; those go first.
pub async fn inspected<A, B, I, J>(
    a: &mut A,
    b: &mut B,
    overload: &Arc<Overload>,
    start: Start<'_>,
    a_to_b: &mut I,
    b_to_a: &mut J,
) -> io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
    I: Inspect + ?Sized,
    J: Inspect + ?Sized,
{
    let mut up = Direction::new(overload);
    let mut down = Direction::new(overload);
    up.written = start.written;
    if !start.held.is_empty() {
        up.preload(start.held)?;
    }
    poll_fn(|cx| {
        let up_poll = if up.done {
            Poll::Ready(Ok(()))
        } else {
            up.poll_copy(cx, Pin::new(&mut *a), Pin::new(&mut *b), a_to_b)
        };
        if let Poll::Ready(Err(err)) = &up_poll
            && Refused::is(err)
        {
            b_to_a.abandoned(down.try_drain(cx, Pin::new(&mut *a)));
            a_to_b.abandoned(up.end - up.start);
            return up_poll;
        }
        let down_poll = if down.done {
            Poll::Ready(Ok(()))
        } else {
            down.poll_copy(cx, Pin::new(&mut *b), Pin::new(&mut *a), b_to_a)
        };
        match (up_poll, down_poll) {
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
        dir.poll_copy(&mut cx, Pin::new(reader), Pin::new(writer), &mut PassAll)
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
