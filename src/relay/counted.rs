//! The relay's two wrapped streams: counting the bytes each read adds,
//! noting which side hit EOF or failed first, when bytes last moved (idle
//! timeout) and since when a side has not taken bytes waiting for it (write
//! timeout).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

pub(super) const NOBODY: u8 = 0;
pub(super) const CLIENT: u8 = 1;
pub(super) const UPSTREAM: u8 = 2;

/// State shared by the two wrapped streams of one relay (same task, so
/// relaxed atomics are only there to make the future `Send`).
pub(super) struct Shared {
    started: Instant,
    /// Milliseconds since `started` of the last byte read either way.
    last_activity_ms: AtomicU64,
    /// Which side's read hit EOF first.
    pub(super) first_eof: AtomicU8,
    /// Which side's I/O failed first.
    pub(super) first_error: AtomicU8,
    /// Per side (client, upstream): 1 + milliseconds since `started` when
    /// a write to it last found it not taking bytes, 0 while it takes them.
    blocked_since_ms: [AtomicU64; 2],
}

impl Shared {
    pub(super) fn new() -> Self {
        Self {
            started: Instant::now(),
            last_activity_ms: AtomicU64::new(0),
            first_eof: AtomicU8::new(NOBODY),
            first_error: AtomicU8::new(NOBODY),
            blocked_since_ms: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.last_activity_ms.store(self.now_ms(), Relaxed);
    }

    pub(super) fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_activity_ms.load(Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    /// A write to `side` found it full (or made progress: `false`).
    fn note_blocked(&self, side: u8, blocked: bool) {
        let slot = &self.blocked_since_ms[usize::from(side == UPSTREAM)];
        if !blocked {
            slot.store(0, Relaxed);
        } else if slot.load(Relaxed) == 0 {
            slot.store(self.now_ms() + 1, Relaxed);
        }
    }

    /// The side that has not taken waiting bytes for the longest, and for
    /// how long.
    pub(super) fn most_blocked(&self) -> Option<(u8, Duration)> {
        let now = self.now_ms() + 1;
        [CLIENT, UPSTREAM]
            .into_iter()
            .filter_map(|side| {
                let since = self.blocked_since_ms[usize::from(side == UPSTREAM)].load(Relaxed);
                (since > 0).then(|| (side, Duration::from_millis(now.saturating_sub(since))))
            })
            .max_by_key(|(_, d)| *d)
    }
}

/// A stream that counts the bytes each read adds and notes EOF and errors.
pub(super) struct Counted<'a, S> {
    pub(super) inner: S,
    pub(super) side: u8,
    pub(super) read: &'a AtomicU64,
    pub(super) shared: &'a Shared,
}

impl<S> Counted<'_, S> {
    fn note<T>(&self, res: &Poll<io::Result<T>>) {
        if let Poll::Ready(Err(_)) = res {
            let _ = self
                .shared
                .first_error
                .compare_exchange(NOBODY, self.side, Relaxed, Relaxed);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            // Count the delta this read added, not the buffer's fill level.
            let added = (buf.filled().len() - before) as u64;
            if added == 0 {
                let _ = self
                    .shared
                    .first_eof
                    .compare_exchange(NOBODY, self.side, Relaxed, Relaxed);
            } else {
                self.read.fetch_add(added, Relaxed);
                self.shared.touch();
            }
        }
        self.note(&res);
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        match &res {
            Poll::Pending => self.shared.note_blocked(self.side, true),
            Poll::Ready(Ok(n)) if *n > 0 => self.shared.note_blocked(self.side, false),
            _ => {}
        }
        self.note(&res);
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let res = Pin::new(&mut self.inner).poll_flush(cx);
        match &res {
            Poll::Pending => self.shared.note_blocked(self.side, true),
            Poll::Ready(Ok(())) => self.shared.note_blocked(self.side, false),
            Poll::Ready(Err(_)) => {}
        }
        self.note(&res);
        res
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let res = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.note(&res);
        res
    }
}
