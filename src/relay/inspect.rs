//! The hook through which a relay direction's bytes can be watched and held
//! back without the relay knowing any protocol.
//!
//! An [`Inspect`] sees every byte a direction reads, in order, before it is
//! written on, and says how many may be written so far. The RTMP stream gate
//! uses it to hold a `publish` until it is authorized; an inspector that
//! never holds ([`PassAll`]) makes the relay a plain copy.

use std::io;
use std::task::{Context, Poll};

use tokio::io::{AsyncWrite, AsyncWriteExt};

/// How far a direction may write, from [`Inspect::release`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    /// Bytes, counted from the first one observed, that may be written on.
    pub upto: u64,
    /// Held bytes wait for something other than more input (a decision);
    /// the inspector has registered the waker to be woken when it comes.
    pub waiting: bool,
}

/// Watches one direction of a relay; see the module docs.
pub trait Inspect {
    /// The next bytes read from the source, in order. An error ends the
    /// relay ([`Refused`] to say the inspector refused the stream).
    fn observe(&mut self, bytes: &[u8]) -> io::Result<()>;

    /// How far the observed bytes may be written on now; polls what the
    /// held bytes wait for with `cx`. An error ends the relay.
    fn release(&mut self, cx: &mut Context<'_>) -> io::Result<Release>;

    /// The relay ended with `unwritten` observed bytes never written on.
    fn abandoned(&mut self, _unwritten: usize) {}
}

/// An inspector that holds nothing back.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassAll;

impl Inspect for PassAll {
    fn observe(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }

    fn release(&mut self, _: &mut Context<'_>) -> io::Result<Release> {
        Ok(Release {
            upto: u64::MAX,
            waiting: false,
        })
    }
}

/// The error an inspector ends a relay with when it refuses the stream
/// (not a socket error): the relay reports [`RelayEnd::Refused`](super::RelayEnd::Refused).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl Refused {
    /// This refusal as an I/O error for the relay's copy loop.
    pub fn into_io(self) -> io::Error {
        io::Error::other(self)
    }

    /// Whether `err` is a refusal.
    pub fn is(err: &io::Error) -> bool {
        err.get_ref().is_some_and(|e| e.is::<Refused>())
    }
}

/// Writes the sniffed prefix to the upstream, shown to `up` first, as far
/// as `up` releases it (waiting for a decision it awaits); returns how much
/// was written. What `up` holds until more input comes is left to the copy
/// loop.
pub(super) async fn write_prefix<U, I>(
    upstream: &mut U,
    prefix: &[u8],
    up: &mut I,
) -> io::Result<usize>
where
    U: AsyncWrite + Unpin,
    I: Inspect + ?Sized,
{
    if prefix.is_empty() {
        return Ok(0);
    }
    up.observe(prefix)?;
    let mut written = 0usize;
    while written < prefix.len() {
        let release = std::future::poll_fn(|cx| match up.release(cx) {
            Ok(r) if r.upto > written as u64 || !r.waiting => Poll::Ready(Ok(r)),
            Ok(_) => Poll::Pending,
            Err(err) => Poll::Ready(Err(err)),
        })
        .await?;
        let may = (release.upto.min(prefix.len() as u64) as usize).saturating_sub(written);
        if may == 0 {
            // Held until more input: the copy loop carries the rest.
            break;
        }
        upstream.write_all(&prefix[written..written + may]).await?;
        written += may;
    }
    Ok(written)
}
