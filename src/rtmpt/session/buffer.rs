//! A session's server→client buffer: bytes read from the upstream and not
//! yet delivered in a reply, held under a hard cap.
//!
//! Owns the allocation policy, so the bytes it holds are exactly what the
//! session charges to [`crate::overload`]: one `Vec` whose capacity never
//! exceeds the cap (growth doubles up to the cap, never past it; a read asks
//! for at most the room left under the cap), copied out per reply (so no
//! reply, sent or cached for a duplicate, pins the buffer's allocation), and
//! given back when it drains.

use bytes::{BufMut, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Upstream read size, and the smallest allocation once data arrives.
pub(super) const READ_CHUNK: usize = 16 * 1024;

/// Undelivered server bytes, never more than `cap` allocated.
#[derive(Debug)]
pub(super) struct DownBuffer {
    buf: Vec<u8>,
    cap: usize,
}

impl DownBuffer {
    /// An empty buffer holding at most `cap` bytes (at least one).
    pub(super) fn new(cap: usize) -> Self {
        Self {
            buf: Vec::new(),
            cap: cap.max(1),
        }
    }

    /// Bytes waiting.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing waits.
    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Whether there is room to read more from the upstream; when not, the
    /// upstream is not read and TCP backpressure reaches the server.
    pub(super) fn has_room(&self) -> bool {
        self.buf.len() < self.cap
    }

    /// Bytes allocated: what the session charges (never over the cap).
    pub(super) fn allocated(&self) -> usize {
        self.buf.capacity()
    }

    /// The last `n` bytes held (those the latest read added).
    pub(super) fn tail(&self, n: usize) -> &[u8] {
        &self.buf[self.buf.len().saturating_sub(n)..]
    }

    /// Appends bytes rtmpgate itself sends the client (a small `onStatus`;
    /// past the cap only by that much).
    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// One read from `up` into the room left (at most [`READ_CHUNK`]).
    /// Cancel-safe: bytes are kept only when the read completes.
    pub(super) async fn read_from<R: AsyncRead + Unpin>(
        &mut self,
        up: &mut R,
    ) -> std::io::Result<usize> {
        let want = READ_CHUNK.min(self.cap.saturating_sub(self.buf.len()));
        if want == 0 {
            // Callers look at `has_room` first; never read past the cap.
            return std::future::pending().await;
        }
        self.make_room(want);
        // The room is there, so the Vec's BufMut never grows it by itself;
        // the limit keeps the read inside it.
        let mut room = (&mut self.buf).limit(want);
        up.read_buf(&mut room).await
    }

    /// Grows the allocation so `want` more bytes fit: doubling, capped.
    fn make_room(&mut self, want: usize) {
        let len = self.buf.len();
        if self.buf.capacity() - len >= want {
            return;
        }
        let target = (len + want)
            .max(self.buf.capacity() * 2)
            .max(READ_CHUNK)
            .min(self.cap)
            .max(len + want);
        self.buf.reserve_exact(target - len);
    }

    /// Takes up to `max` bytes from the front, as their own allocation.
    pub(super) fn take(&mut self, max: usize) -> Bytes {
        let n = self.buf.len().min(max);
        let data = Bytes::copy_from_slice(&self.buf[..n]);
        self.buf.drain(..n);
        // A burst grew the buffer; once mostly drained, give memory back.
        let cap = self.buf.capacity();
        if cap > READ_CHUNK && self.buf.len() <= cap / 4 {
            self.buf.shrink_to((self.buf.len() * 2).max(READ_CHUNK));
        }
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = Vec::new();
        }
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: usize = 256 * 1024;

    #[tokio::test]
    async fn never_allocates_past_the_cap() {
        let source = vec![7u8; 4 * CAP];
        let mut up: &[u8] = &source;
        let mut b = DownBuffer::new(CAP);
        while b.has_room() {
            let n = b.read_from(&mut up).await.unwrap();
            assert!(n > 0 && n <= READ_CHUNK);
            assert!(b.allocated() <= CAP, "allocated {}", b.allocated());
        }
        assert_eq!(b.len(), CAP);
        assert_eq!(b.allocated(), CAP);
        // Partly drained, then refilled: still within the cap.
        assert_eq!(b.take(64 * 1024).len(), 64 * 1024);
        while b.has_room() {
            b.read_from(&mut up).await.unwrap();
        }
        assert_eq!(b.len(), CAP);
        assert!(b.allocated() <= CAP);
    }

    #[tokio::test]
    async fn drained_buffer_gives_memory_back() {
        let source = vec![1u8; CAP];
        let mut up: &[u8] = &source;
        let mut b = DownBuffer::new(CAP);
        while b.has_room() {
            b.read_from(&mut up).await.unwrap();
        }
        while b.len() > 10 {
            b.take(64 * 1024);
        }
        assert!(b.allocated() <= READ_CHUNK, "allocated {}", b.allocated());
        b.take(64 * 1024);
        assert_eq!(b.allocated(), 0);
    }

    #[tokio::test]
    async fn a_taken_reply_does_not_pin_the_buffer() {
        let source = vec![2u8; 100];
        let mut up: &[u8] = &source;
        let mut b = DownBuffer::new(CAP);
        b.read_from(&mut up).await.unwrap();
        let reply = b.take(60);
        // The reply is its own allocation, not a view into the buffer's.
        assert_eq!(reply.len(), 60);
        assert_eq!(b.len(), 40);
        let start = b.buf.as_ptr() as usize;
        let inside = start..start + b.buf.capacity();
        assert!(!inside.contains(&(reply.as_ptr() as usize)));
    }
}
