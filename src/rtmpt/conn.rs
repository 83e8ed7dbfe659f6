//! What one RTMPT client connection knows about pipelining.
//!
//! Owns telling an `/idle` handler whether the client has already sent the
//! next request on the same connection, so the idle must not long-poll.
//! hyper answers one request at a time and does not read ahead while its
//! buffer holds bytes, so this cannot be learnt from hyper: [`Watched`]
//! wraps the client stream, follows HTTP/1 framing in the bytes it reads
//! ([`super::framing`]) and counts complete request heads. A read that
//! brings bytes also wakes a waiting idle. If the framing is ever not
//! understood (chunked bodies, oversized heads), counting stops and only the
//! wake-up remains.
//!
//! It also owns the write deadline towards the client: hyper waits for ever
//! on a reply the client never reads (a zero receive window), so a write or
//! flush that makes no progress for `--write-timeout` fails the connection.

use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Sleep;

use super::framing::Framing;

/// Numbers client connections for sessions' connection counts.
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Shared between the stream wrapper and the request handlers.
#[derive(Debug)]
pub struct ConnState {
    /// This connection's number in the process (from 1), so a session can
    /// count the TCP connections that carried it.
    pub id: u64,
    /// Woken by every read that brings bytes.
    pub activity: Notify,
    /// Complete request heads read from the socket so far.
    heads_seen: AtomicU64,
    /// Requests handed to the service so far.
    started: AtomicU64,
    /// Requests whose handler has finished.
    finished: AtomicU64,
    /// The connection task, parked on a client EOF until in-flight
    /// requests are done.
    eof_waiter: Mutex<Option<Waker>>,
    /// A reply made no progress for the write timeout and the connection
    /// was failed for it.
    write_timed_out: AtomicBool,
}

impl Default for ConnState {
    fn default() -> Self {
        Self {
            id: NEXT_CONN.fetch_add(1, Relaxed),
            activity: Notify::new(),
            heads_seen: AtomicU64::new(0),
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            eof_waiter: Mutex::new(None),
            write_timed_out: AtomicBool::new(false),
        }
    }
}

impl ConnState {
    /// Called once per request as its handler starts; returns its number.
    pub fn start_request(&self) -> u64 {
        self.started.fetch_add(1, Relaxed) + 1
    }

    /// Called once per request as its handler finishes.
    pub fn finish_request(&self) {
        self.finished.fetch_add(1, Relaxed);
        if let Some(waker) = self
            .eof_waiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            waker.wake();
        }
    }

    fn in_flight(&self) -> bool {
        self.started.load(Relaxed) > self.finished.load(Relaxed)
    }

    /// Whether a request after request number `index` has been read.
    pub fn next_request_read(&self, index: u64) -> bool {
        self.heads_seen.load(Relaxed) > index
    }

    /// Whether the connection ended because the client stopped taking a
    /// reply (see [`Watched`]'s write deadline).
    pub fn write_timed_out(&self) -> bool {
        self.write_timed_out.load(Relaxed)
    }
}

/// The client stream as hyper sees it, followed by a [`Framing`].
pub struct Watched<S> {
    inner: S,
    state: std::sync::Arc<ConnState>,
    framing: Framing,
    /// The client closed its socket: replies are discarded.
    gone: bool,
    /// The client's read side ended (EOF or reset) and that is being held
    /// back from hyper until in-flight requests are answered.
    read_ended: bool,
    /// Longest a write may wait without progress; `None` = for ever.
    write_timeout: Option<Duration>,
    /// Armed while a write or flush is blocked; dropped on progress.
    /// Boxed and made only on a stall, so a client that keeps up costs
    /// nothing.
    stall: Option<Pin<Box<Sleep>>>,
}

impl<S> Watched<S> {
    /// Wraps `inner`, reporting into `state`; a reply blocked for
    /// `write_timeout` fails the connection.
    pub fn new(
        inner: S,
        state: std::sync::Arc<ConnState>,
        write_timeout: Option<Duration>,
    ) -> Self {
        Self {
            inner,
            state,
            framing: Framing::default(),
            gone: false,
            read_ended: false,
            write_timeout,
            stall: None,
        }
    }

    /// Passes a write-side poll result through the deadline: progress (or
    /// any end) disarms it, a block arms it, and a block that outlasts it
    /// becomes a `TimedOut` error that hyper ends the connection on.
    fn deadline<T>(
        &mut self,
        cx: &mut Context<'_>,
        res: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if res.is_ready() {
            self.stall = None;
            return res;
        }
        let Some(limit) = self.write_timeout else {
            return res;
        };
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(stall.as_mut().poll(cx));
        self.stall = None;
        self.state.write_timed_out.store(true, Relaxed);
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client took no reply bytes for the write timeout",
        )))
    }
}

/// A client that hangs up right after writing requests (librtmp sends
/// `/send` and `/close` back to back, then closes) must still have them
/// applied. hyper aborts requests in flight when it reads EOF meanwhile, so
/// the end of the read side is shown to hyper only once no request is in
/// flight. (hyper's own `half_close` would do that too, but it also stops
/// the reads that reveal pipelined requests.)
impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read_ended {
            let before = buf.filled().len();
            match Pin::new(&mut self.inner).poll_read(cx, buf) {
                Poll::Ready(Ok(())) if buf.filled().len() > before => {
                    let heads = self.framing.feed(&buf.filled()[before..]);
                    if heads > 0 {
                        self.state.heads_seen.fetch_add(heads, Relaxed);
                    }
                    self.state.activity.notify_waiters();
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(err)) if peer_gone(&err) => {}
                other => return other,
            }
            self.read_ended = true;
        }
        // Register before looking, so a request finishing in between wakes us.
        *self
            .state
            .eof_waiter
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
        // A body cut short can never complete: tell hyper now, or the
        // request waiting for it and this EOF wait for each other.
        let cut_short = matches!(self.framing, Framing::Body(left) if left > 0);
        if self.state.in_flight() && !cut_short {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }
}

/// Whether a write error means the client has gone (rather than a fault).
fn peer_gone(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
    )
}

/// Writes go to the client until it is gone; after that they are
/// discarded as if written. librtmp sends `/send` and `/close` back to back
/// and closes its socket without reading the replies: hyper would stop at
/// the first failed reply and never hand on the `/close` it has already
/// read, leaving the session (and its upstream) open until expiry.
impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.gone {
            return Poll::Ready(Ok(buf.len()));
        }
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        match self.deadline(cx, res) {
            Poll::Ready(Err(err)) if peer_gone(&err) => {
                self.gone = true;
                Poll::Ready(Ok(buf.len()))
            }
            other => other,
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let all = bufs.iter().map(|b| b.len()).sum();
        if self.gone {
            return Poll::Ready(Ok(all));
        }
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        match self.deadline(cx, res) {
            Poll::Ready(Err(err)) if peer_gone(&err) => {
                self.gone = true;
                Poll::Ready(Ok(all))
            }
            other => other,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.gone {
            return Poll::Ready(Ok(()));
        }
        let res = Pin::new(&mut self.inner).poll_flush(cx);
        self.deadline(cx, res)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.gone {
            return Poll::Ready(Ok(()));
        }
        let res = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.deadline(cx, res)
    }
}
