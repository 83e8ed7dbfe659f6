//! The large I/O buffers of the data path, pooled and taken only while
//! bytes are in flight.
//!
//! Owns [`IoBuf`] (one [`BUF_SIZE`] buffer, back in its thread's pool when
//! dropped), the per-thread free lists, and the count of bytes held by live
//! connections ([`in_use_bytes`]) that overload shedding watches. An idle
//! connection holds no buffer: the relay and [`ReadAhead`] take one when a
//! read is ready and give it back once the bytes are written on, so 10,000
//! quiet streams cost their sockets and TLS state, not 10,000 × 64 KiB.

mod readahead;

pub use readahead::ReadAhead;

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Size of every pooled buffer: four full TLS records, so one read from the
/// socket or one write to it moves up to 64 KiB in one system call.
pub const BUF_SIZE: usize = 64 * 1024;

/// Free buffers kept per thread (4 MiB with 64 KiB buffers); more are freed.
/// Tokio runs one worker per core, so the pools stay a few MiB in all.
const KEEP_PER_THREAD: usize = 64;

/// Bytes in buffers checked out of the pools right now.
static IN_USE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static FREE: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// Bytes held in I/O buffers by connections right now (not the free pools).
pub fn in_use_bytes() -> usize {
    IN_USE.load(Relaxed)
}

/// One pooled buffer of [`BUF_SIZE`] bytes. Its contents are whatever the
/// last user left; callers track how much of it they filled.
pub struct IoBuf(Option<Box<[u8]>>);

impl std::fmt::Debug for IoBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IoBuf({} bytes)", self.len())
    }
}

impl IoBuf {
    /// Takes a buffer from this thread's pool, or allocates one.
    pub fn take() -> Self {
        let buf = FREE
            .with(|free| free.borrow_mut().pop())
            .unwrap_or_else(|| vec![0u8; BUF_SIZE].into_boxed_slice());
        IN_USE.fetch_add(BUF_SIZE, Relaxed);
        Self(Some(buf))
    }
}

impl Drop for IoBuf {
    fn drop(&mut self) {
        let Some(buf) = self.0.take() else { return };
        IN_USE.fetch_sub(BUF_SIZE, Relaxed);
        // try_with: during thread teardown the pool may already be gone;
        // then the buffer is simply freed.
        let _ = FREE.try_with(|free| {
            let mut free = free.borrow_mut();
            if free.len() < KEEP_PER_THREAD {
                free.push(buf);
            }
        });
    }
}

impl Deref for IoBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or_default()
    }
}

impl DerefMut for IoBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.0.as_deref_mut().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_counted() {
        let mut a = IoBuf::take();
        assert_eq!(a.len(), BUF_SIZE);
        a[0] = 7;
        let ptr = a.as_ptr();
        drop(a);
        let b = IoBuf::take();
        assert_eq!(b.as_ptr(), ptr, "the freed buffer is handed out again");
        drop(b);
    }
}
