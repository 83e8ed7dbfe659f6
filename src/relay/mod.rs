//! The byte relay between a client stream and the upstream stream.
//!
//! Owns copying both ways with half-close ([`copy`], pooled buffers held
//! only while bytes are in flight), the idle timeout, byte counting and working out which side ended the
//! relay. It knows nothing of TLS, HTTP or RTMP: any `AsyncRead + AsyncWrite`
//! pair works.

mod copy;
mod counted;
pub mod inspect;

pub use inspect::{Inspect, PassAll, Refused, Release};

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::overload::Overload;
use counted::{CLIENT, Counted, Shared, UPSTREAM};

/// How a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEnd {
    /// The client closed first; the upstream was then shut down cleanly.
    ClientClosed,
    /// The upstream closed first; the client was then shut down cleanly.
    UpstreamClosed,
    /// A socket error on the client side (reset, broken pipe, TLS error).
    ClientError,
    /// A socket error on the upstream side.
    UpstreamError,
    /// No byte moved either way for the configured idle timeout.
    Idle,
    /// The client took no byte of what waited for it for the write timeout
    /// (a stalled player, a zero receive window).
    ClientStalled,
    /// The upstream took no byte of what waited for it for the write
    /// timeout.
    UpstreamStalled,
    /// rtmpgate was shutting down and the drain period ran out.
    Shutdown,
    /// An inspector refused the stream (e.g. an unauthorized publish).
    Refused,
}

impl RelayEnd {
    /// Short label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientClosed => "client_closed",
            Self::UpstreamClosed => "upstream_closed",
            Self::ClientError => "client_error",
            Self::UpstreamError => "upstream_error",
            Self::Idle => "idle_timeout",
            Self::ClientStalled => "client_write_timeout",
            Self::UpstreamStalled => "upstream_write_timeout",
            Self::Shutdown => "shutdown",
            Self::Refused => "refused",
        }
    }
}

/// What a finished relay reports.
#[derive(Debug)]
pub struct RelayStats {
    /// Bytes read from the client (and sent on to the upstream).
    pub client_to_upstream: u64,
    /// Bytes read from the upstream (and sent on to the client).
    pub upstream_to_client: u64,
    /// Why it ended.
    pub end: RelayEnd,
    /// The I/O error behind `ClientError`/`UpstreamError`, for the log.
    pub error: Option<io::Error>,
}

/// Longest a deliberate close may wait for a peer to take our close_notify
/// or FIN; a peer that does not read must not hold the task.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Relays `client` ⇄ `upstream` until both directions are done, the idle
/// timeout passes, or `stop` fires. `prefix` holds client bytes already read
/// (while sniffing the protocol); they go to the upstream first.
pub async fn relay<C, U>(
    client: C,
    upstream: U,
    prefix: impl AsRef<[u8]>,
    timers: impl Into<Timers>,
    stop: &CancellationToken,
    overload: &Arc<Overload>,
) -> RelayStats
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let watch = Watch {
        up: &mut PassAll,
        down: &mut PassAll,
    };
    relay_inspected(client, upstream, prefix, timers, stop, overload, watch).await
}

/// The relay's timers: `idle` (no byte either way), `write` (a side takes
/// none of the bytes waiting for it). `None` disables one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timers {
    /// Close after this long with no byte read either way.
    pub idle: Option<Duration>,
    /// Close when a side takes no waiting byte for this long.
    pub write: Option<Duration>,
}

impl From<Option<Duration>> for Timers {
    /// An idle timeout only.
    fn from(idle: Option<Duration>) -> Self {
        Self { idle, write: None }
    }
}

/// The inspectors of one relay: `up` sees (and may hold back) client →
/// upstream bytes, the prefix included; `down` sees upstream → client.
pub struct Watch<'a, I: ?Sized, J: ?Sized> {
    /// Client → upstream.
    pub up: &'a mut I,
    /// Upstream → client.
    pub down: &'a mut J,
}

/// [`relay`] with inspectors. The prefix is shown to `watch.up` and
/// written only as far as it releases; the rest waits in the relay.
pub async fn relay_inspected<C, U, I, J>(
    client: C,
    mut upstream: U,
    prefix: impl AsRef<[u8]>,
    timers: impl Into<Timers>,
    stop: &CancellationToken,
    overload: &Arc<Overload>,
    watch: Watch<'_, I, J>,
) -> RelayStats
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
    I: Inspect + ?Sized,
    J: Inspect + ?Sized,
{
    let timers = timers.into();
    let prefix = prefix.as_ref();
    let prefix_len = prefix.len() as u64;
    let written = match inspect::write_prefix(&mut upstream, prefix, watch.up).await {
        Ok(written) => written,
        Err(err) => {
            let end = if Refused::is(&err) {
                RelayEnd::Refused
            } else {
                RelayEnd::UpstreamError
            };
            return RelayStats {
                client_to_upstream: 0,
                upstream_to_client: 0,
                end,
                error: Some(err),
            };
        }
    };
    let start = copy::Start {
        written: written as u64,
        held: &prefix[written..],
    };
    let shared = Shared::new();
    let (up_bytes, down_bytes) = (AtomicU64::new(prefix_len), AtomicU64::new(0));
    let mut client = Counted {
        inner: client,
        side: CLIENT,
        read: &up_bytes,
        shared: &shared,
    };
    let mut upstream = Counted {
        inner: upstream,
        side: UPSTREAM,
        read: &down_bytes,
        shared: &shared,
    };
    let idle_check = timers.idle.unwrap_or(Duration::MAX);
    let write_check = timers.write.unwrap_or(Duration::MAX);
    let mut next_check = Instant::now().checked_add(idle_check.min(write_check));
    let (end, error) = {
        let copy = copy::inspected(
            &mut client,
            &mut upstream,
            overload,
            start,
            watch.up,
            watch.down,
        );
        tokio::pin!(copy);
        loop {
            tokio::select! {
                res = &mut copy => break match res {
                    Ok(_) => match shared.first_eof.load(Relaxed) {
                        UPSTREAM => (RelayEnd::UpstreamClosed, None),
                        _ => (RelayEnd::ClientClosed, None),
                    },
                    // A write error on a side that already sent EOF is that side
                    // going away as it said it would (e.g. our TLS close_notify
                    // meeting a closed socket): a clean close, not a failure.
                    Err(err) if Refused::is(&err) => (RelayEnd::Refused, Some(err)),
                    Err(err) => match (shared.first_error.load(Relaxed), shared.first_eof.load(Relaxed)) {
                        (UPSTREAM, UPSTREAM) => (RelayEnd::UpstreamClosed, Some(err)),
                        (UPSTREAM, _) => (RelayEnd::UpstreamError, Some(err)),
                        (_, CLIENT) => (RelayEnd::ClientClosed, Some(err)),
                        _ => (RelayEnd::ClientError, Some(err)),
                    },
                },
                () = stop.cancelled() => break (RelayEnd::Shutdown, None),
                () = sleep_until_opt(next_check) => {
                    let quiet = shared.idle_for();
                    if quiet >= idle_check {
                        break (RelayEnd::Idle, None);
                    }
                    // A side that has not taken waiting bytes for the write
                    // timeout is gone or hostile (a zero window): it must
                    // not pin the connection while the other side talks.
                    let blocked = shared.most_blocked();
                    let stalled_for = blocked.map_or(Duration::ZERO, |(_, d)| d);
                    if let Some((side, d)) = blocked && d >= write_check {
                        tracing::warn!(blocked_ms = d.as_millis() as u64, "a side stopped taking bytes; closing");
                        break (if side == CLIENT { RelayEnd::ClientStalled } else { RelayEnd::UpstreamStalled }, None);
                    }
                    let wait = (idle_check - quiet).min(write_check - stalled_for);
                    next_check = Instant::now().checked_add(wait);
                }
            }
        }
    };
    if matches!(
        end,
        RelayEnd::Idle | RelayEnd::Shutdown | RelayEnd::ClientStalled | RelayEnd::UpstreamStalled
    ) {
        // We end it: close both sides properly (TLS close_notify, FIN) so
        // peers see a deliberate close, not a truncation.
        let _ = tokio::time::timeout(CLOSE_GRACE, client.shutdown()).await;
        let _ = tokio::time::timeout(CLOSE_GRACE, upstream.shutdown()).await;
    }
    RelayStats {
        client_to_upstream: up_bytes.load(Relaxed),
        upstream_to_client: down_bytes.load(Relaxed),
        end,
        error,
    }
}

/// Sleeps until `deadline`, or forever when there is none (a disabled
/// timer in a `select!`).
pub(crate) async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::overload::OverloadLimits;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncReadExt, ReadBuf, duplex};

    fn overload() -> Arc<Overload> {
        Overload::new(OverloadLimits::default(), &Metrics::default())
    }

    #[tokio::test]
    async fn copies_both_ways_and_reports_who_closed() {
        let (client, mut client_peer) = duplex(8);
        let (upstream, mut upstream_peer) = duplex(8);
        let stop = CancellationToken::new();
        let task =
            tokio::spawn(
                async move { relay(client, upstream, b"pre", None, &stop, &overload()).await },
            );
        client_peer.write_all(b"hello").await.unwrap();
        let mut got = [0u8; 8];
        upstream_peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"prehello");
        upstream_peer.write_all(b"back").await.unwrap();
        let mut back = [0u8; 4];
        client_peer.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"back");
        drop(upstream_peer);
        // The client sees EOF once the upstream went away (half-close passed on).
        let mut rest = Vec::new();
        client_peer.read_to_end(&mut rest).await.unwrap();
        drop(client_peer);
        let stats = task.await.unwrap();
        assert_eq!(stats.end, RelayEnd::UpstreamClosed);
        assert_eq!(stats.client_to_upstream, 8);
        assert_eq!(stats.upstream_to_client, 4);
    }

    /// A stream whose reads end at once and whose writes fail: a peer that
    /// sent EOF and closed its socket.
    struct GoneAfterEof;

    impl AsyncRead for GoneAfterEof {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for GoneAfterEof {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
        }
    }

    #[tokio::test]
    async fn write_error_after_eof_is_a_clean_close() {
        let (upstream, mut upstream_peer) = duplex(64);
        let stop = CancellationToken::new();
        let task = tokio::spawn(async move {
            relay(GoneAfterEof, upstream, b"", None, &stop, &overload()).await
        });
        // The upstream answers after the client left; delivering it fails.
        upstream_peer.write_all(b"late").await.unwrap();
        let stats = task.await.unwrap();
        assert_eq!(stats.end, RelayEnd::ClientClosed, "{:?}", stats.error);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_fires_only_without_traffic() {
        let (client, mut client_peer) = duplex(64);
        let (upstream, mut upstream_peer) = duplex(64);
        let stop = CancellationToken::new();
        let task = tokio::spawn(async move {
            let overload = overload();
            relay(
                client,
                upstream,
                b"",
                Some(Duration::from_secs(10)),
                &stop,
                &overload,
            )
            .await
        });
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            client_peer.write_all(b"x").await.unwrap();
            let mut b = [0u8; 1];
            upstream_peer.read_exact(&mut b).await.unwrap();
        }
        assert!(
            !task.is_finished(),
            "traffic every 6 s must keep a 10 s idle relay open"
        );
        let stats = task.await.unwrap();
        assert_eq!(stats.end, RelayEnd::Idle);
        assert_eq!(stats.client_to_upstream, 3);
    }
}
