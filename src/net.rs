//! Socket options for both hops, applied through `socket2::SockRef`.
//!
//! Owns which options a stream gets and why. A failed option is logged and
//! ignored: a connection without keep-alive still works.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Keep-alive probes start after this much silence: long enough not to
/// matter for live streams, short enough to reap peers that vanished
/// (NAT timeouts are typically minutes).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// Gap between keep-alive probes once they start.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Low latency and dead-peer detection, for client and upstream sockets.
///
/// TCP_NODELAY: RTMP sends many small control messages (acks, pings,
/// set-chunk-size) that must not wait for Nagle.
pub fn tune_stream(stream: &TcpStream) {
    let sock = SockRef::from(stream);
    if let Err(err) = sock.set_tcp_nodelay(true) {
        tracing::debug!(%err, "TCP_NODELAY not set");
    }
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL);
    if let Err(err) = sock.set_tcp_keepalive(&keepalive) {
        tracing::debug!(%err, "TCP keep-alive not set");
    }
}

/// Re-arms TCP_QUICKACK so the next segment is ACKed at once.
///
/// The kernel drops quick-ack mode by itself, so this is called before each
/// read of an RTMPT connection: ffmpeg writes headers and body in two writes
/// and would otherwise wait ~40 ms for our delayed ACK on every request.
#[cfg(target_os = "linux")]
pub fn quickack(stream: &TcpStream) {
    let _ = SockRef::from(stream).set_tcp_quickack(true);
}

/// TCP_QUICKACK is Linux-only; elsewhere this does nothing.
#[cfg(not(target_os = "linux"))]
pub fn quickack(_stream: &TcpStream) {}

/// A client socket that can be switched to re-arm TCP_QUICKACK before
/// reads, once the connection turns out to be RTMPT. Off, it costs one
/// relaxed atomic load per read.
///
/// Only sending and receiving change the kernel's ACK mode (sending a reply
/// soon after a request turns delayed ACKs back on; a segment read may
/// leave its ACK pending), so the option is re-set before the first read
/// poll after either, not before every poll: hyper polls a connection's
/// reads several times per request, and each `setsockopt` is a syscall.
#[derive(Debug)]
pub struct ClientSocket {
    inner: TcpStream,
    quickack: Arc<AtomicBool>,
    /// Bytes went either way since TCP_QUICKACK was last set.
    rearm: bool,
}

impl ClientSocket {
    /// Wraps an accepted stream; returns the switch that turns quick-ack on.
    pub fn new(inner: TcpStream) -> (Self, Arc<AtomicBool>) {
        let quickack = Arc::new(AtomicBool::new(false));
        (
            Self {
                inner,
                quickack: Arc::clone(&quickack),
                rearm: true,
            },
            quickack,
        )
    }

    /// Notes a poll that moved bytes, so the next read re-arms quick-ack.
    fn moved<T>(&mut self, res: &Poll<io::Result<T>>) {
        if matches!(res, Poll::Ready(Ok(_))) {
            self.rearm = true;
        }
    }
}

impl AsyncRead for ClientSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.rearm && self.quickack.load(Relaxed) {
            quickack(&self.inner);
            self.rearm = false;
        }
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.moved(&res);
        res
    }
}

impl AsyncWrite for ClientSocket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.moved(&res);
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.moved(&res);
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
