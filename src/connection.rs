//! One client connection from accept to close: the dispatcher.
//!
//! Owns the per-connection pipeline: (PROXY header) → per-client cap →
//! (TLS handshake) → first bytes → sniff →
//! route (relay to the upstream, or hand to the RTMPT server), each phase
//! under its own timeout, and the log lines (opened, once the protocol is
//! known; closed) and metrics of a connection. RTMPT connections log both at
//! debug: an RTMPT client (or the proxy in front of it) may use one TCP
//! connection per request, so RTMPT is logged per session instead
//! ([`crate::rtmpt::session`]). Accepting is [`crate::listener`]'s job; copying bytes
//! is [`crate::relay`]'s; how a connection ended is [`crate::outcome`]'s.
//! Nothing imports this room back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;

use crate::buffers::ReadAhead;
use crate::context::{ClientAddrs, ServeContext};
use crate::endpoint::{ListenScheme, ListenUrl};
use crate::gate::{ClientFacts, ServerSide, StreamGate};
use crate::metrics::{CloseLabels, ListenerLabels};
use crate::net::ClientSocket;
use crate::outcome::{CloseReason, Outcome, close_gently, finish_gated};
use crate::proxy_protocol;
use crate::relay;
use crate::routed;
use crate::rtmpt::{self, Rtmpt};
use crate::sniff::{Rewind, Sniffed};

/// Room for the first read: an RTMP C0+C1 (1537 bytes) or an HTTP request
/// head usually arrives whole in one segment.
const FIRST_READ: usize = 2048;

/// Logs at debug for an RTMPT connection (`protocol` rtmpt/rtmpts), at
/// info otherwise.
macro_rules! info_unless_rtmpt {
    ($protocol:expr, $($arg:tt)+) => {
        if matches!($protocol, "rtmpt" | "rtmpts") {
            tracing::debug!($($arg)+)
        } else {
            tracing::info!($($arg)+)
        }
    };
}

/// How a connection was admitted, and whether its "connection opened" line
/// is written.
struct Admission {
    /// Accepted while [`crate::overload`] sheds new work.
    overloaded: bool,
    opened_logged: AtomicBool,
}

impl Admission {
    /// Writes the "connection opened" line, once: when the protocol is
    /// known, or at the close of a connection that ended before.
    fn log_opened(&self, protocol: &'static str) {
        if !self.opened_logged.swap(true, Relaxed) {
            info_unless_rtmpt!(protocol, protocol, "connection opened");
        }
    }
}

/// Serves one accepted client connection to its end. `overloaded`: it was
/// accepted while [`crate::overload`] sheds new work (the listeners stay
/// open for live RTMPT sessions), so a new RTMP stream on it is refused.
pub(crate) async fn serve(
    ctx: Arc<ServeContext>,
    rtmpt: Arc<Rtmpt>,
    stream: TcpStream,
    peer: SocketAddr,
    url: ListenUrl,
    overloaded: bool,
) {
    let started = Instant::now();
    let labels = ListenerLabels {
        listener: url.scheme.as_str(),
    };
    ctx.metrics.accepted.get_or_create(&labels).inc();
    ctx.metrics.active.get_or_create(&labels).inc();
    let admission = Admission {
        overloaded,
        opened_logged: AtomicBool::new(false),
    };
    let local = stream.local_addr().unwrap_or(url.addr);
    let outcome = serve_socket(&ctx, &rtmpt, stream, peer, local, url, &admission).await;
    admission.log_opened(outcome.protocol);

    ctx.metrics.active.get_or_create(&labels).dec();
    ctx.metrics
        .closed
        .get_or_create(&CloseLabels {
            protocol: outcome.protocol,
            reason: outcome.reason.as_str(),
        })
        .inc();
    ctx.metrics.add_bytes(outcome.up, outcome.down);
    let names = outcome.stream.unwrap_or_default();
    let app = names.app.as_deref();
    ctx.metrics.apps.add_bytes(app, outcome.up, outcome.down);
    info_unless_rtmpt!(
        outcome.protocol,
        protocol = outcome.protocol,
        reason = outcome.reason.as_str(),
        app = names.app.as_deref(),
        stream = names.stream.as_deref(),
        call = names.call,
        bytes_in = outcome.up,
        bytes_out = outcome.down,
        duration_ms = started.elapsed().as_millis() as u64,
        "connection closed"
    );
}

/// PROXY header (if the listener expects one), per-client cap, TLS
/// handshake (on TLS listeners), then [`serve_stream`].
async fn serve_socket(
    ctx: &Arc<ServeContext>,
    rt: &Arc<Rtmpt>,
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    url: ListenUrl,
    admission: &Admission,
) -> Outcome {
    let scheme = url.scheme;
    let (mut socket, quickack) = ClientSocket::new(stream);
    let (client, rest) = if url.proxy_protocol {
        if !proxy_protocol::trusted(peer.ip(), &ctx.config.proxy_protocol_from) {
            tracing::warn!(
                "connection to a PROXY protocol listener from an untrusted address; closed (see --proxy-protocol-from)"
            );
            return Outcome::early(scheme.as_str(), CloseReason::Rejected("proxy_untrusted"));
        }
        match proxy_protocol::read_header(&mut socket, ctx.config.timeouts.first_bytes).await {
            Ok(received) => {
                let client = received.client.unwrap_or(peer);
                tracing::Span::current().record("client", tracing::field::display(client));
                tracing::info!("PROXY header received");
                (client, received.rest)
            }
            Err(err) => {
                tracing::warn!(%err, "bad PROXY header; closed");
                return Outcome::early(scheme.as_str(), CloseReason::Rejected(err.reason()));
            }
        }
    } else {
        (peer, Bytes::new())
    };
    let Some(_slot) = ctx.per_client.acquire(client.ip()) else {
        ctx.metrics.limit_hit("max_connections_per_client");
        tracing::warn!(%client, limit = "max_connections_per_client", "too many connections from this address; closed");
        return Outcome::early(
            scheme.as_str(),
            CloseReason::Rejected("max_connections_per_client"),
        );
    };
    let addrs = ClientAddrs {
        peer: client,
        local,
    };
    let stream = Rewind::new(rest, socket);
    let Some(acceptor) = ctx.tls.as_ref().filter(|_| scheme.is_tls()) else {
        let who = Who { addrs, sni: None };
        return serve_stream(ctx, rt, stream, who, scheme, &quickack, admission).await;
    };
    // The handshake's state is boxed (and freed when it ends) so it does not
    // size the task that then lives as long as the stream.
    let handshake = Box::pin(acceptor.accept_with(ReadAhead::new(stream), |conn| {
        conn.set_buffer_limit(Some(crate::tls::SENDABLE_TLS_LIMIT));
    }));
    match tokio::time::timeout(ctx.config.timeouts.tls_handshake, handshake).await {
        // Boxed: a TLS stream is ~1.3 KB, and every async layer that takes
        // the stream by value keeps its own slot for it for the whole
        // connection; a pointer keeps the task of an idle stream small.
        Ok(Ok(tls)) => {
            let sni = tls.get_ref().1.server_name().map(str::to_owned);
            let who = Who { addrs, sni };
            serve_stream(ctx, rt, Box::new(tls), who, scheme, &quickack, admission).await
        }
        Ok(Err(err)) => {
            let reason = tls_failure_reason(&err);
            tracing::warn!(%err, reason, "TLS handshake failed");
            ctx.metrics
                .tls_failures
                .get_or_create(&crate::metrics::ReasonLabels { reason })
                .inc();
            Outcome::early("tls", CloseReason::TlsFailed)
        }
        Err(_) => {
            tracing::warn!(
                timeout = ?ctx.config.timeouts.tls_handshake,
                "TLS handshake timed out"
            );
            ctx.metrics
                .tls_failures
                .get_or_create(&crate::metrics::ReasonLabels { reason: "timeout" })
                .inc();
            Outcome::early("tls", CloseReason::TlsTimeout)
        }
    }
}

/// A short, bounded label for a failed TLS handshake, for the metric.
fn tls_failure_reason(err: &std::io::Error) -> &'static str {
    use rustls::Error as E;
    match err.get_ref().and_then(|e| e.downcast_ref::<E>()) {
        // Not TLS at all (plain RTMP or HTTP on a TLS port, scanners).
        Some(E::InvalidMessage(_)) => "not_tls",
        // No common version, cipher suite or group.
        Some(E::PeerIncompatible(_)) => "incompatible",
        // The client refused us, typically our certificate (self-signed,
        // wrong name, expired).
        Some(E::AlertReceived(_)) => "alert_from_client",
        Some(_) => "protocol_error",
        None if err.kind() == std::io::ErrorKind::UnexpectedEof => "client_gone",
        None => "io_error",
    }
}

/// Who a client is: its addresses and, over TLS, the server name it asked
/// for.
struct Who {
    addrs: ClientAddrs,
    sni: Option<String>,
}

/// After TLS (if any): read the first bytes, decide what they are, route.
async fn serve_stream<S>(
    ctx: &Arc<ServeContext>,
    rt: &Arc<Rtmpt>,
    mut client: S,
    who: Who,
    scheme: ListenScheme,
    quickack: &AtomicBool,
    admission: &Admission,
) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Who { addrs, sni } = who;
    let tls = scheme.is_tls();
    let base = if tls { "rtmps" } else { "rtmp" };
    let mut first = BytesMut::with_capacity(FIRST_READ);
    match tokio::time::timeout(ctx.config.timeouts.first_bytes, client.read_buf(&mut first)).await {
        Err(_) => {
            tracing::warn!("client sent nothing before the handshake timeout");
            close_gently(&mut client).await;
            return Outcome::early(base, CloseReason::FirstBytesTimeout);
        }
        Ok(Ok(0)) | Ok(Err(_)) => return Outcome::early(base, CloseReason::ClientGone),
        Ok(Ok(_)) => {}
    }
    let tunnel_only = matches!(scheme, ListenScheme::Rtmpt | ListenScheme::Rtmpts);
    let sniffed = Sniffed::from_first_byte(first[0]);
    let protocol = match (sniffed, tls) {
        (Sniffed::Http, true) => "rtmpts",
        (Sniffed::Http, false) => "rtmpt",
        _ => base,
    };
    admission.log_opened(protocol);
    let overloaded = admission.overloaded;
    let draining = ctx.draining.load(Relaxed);
    let rejected = match sniffed {
        // Listeners stay open while a drain waits for RTMPT sessions; new
        // streams belong on another replica.
        Sniffed::Rtmp | Sniffed::Rtmpe if draining => {
            tracing::info!("new stream while draining; refused");
            "draining"
        }
        // Overloaded while RTMPT sessions keep the listeners open: new
        // streams wait for another time (see `crate::overload`).
        Sniffed::Rtmp | Sniffed::Rtmpe if !tunnel_only && overloaded => {
            ctx.metrics.overload_shed("accept");
            tracing::info!("new stream while overloaded; refused");
            "overloaded"
        }
        Sniffed::Rtmp | Sniffed::Rtmpe if !tunnel_only => {
            if sniffed == Sniffed::Rtmpe {
                tracing::info!("RTMPE client: relayed unchanged, encryption not terminated");
            }
            if sniffed == Sniffed::Rtmp && !ctx.routes.is_empty() {
                // Boxed, like the HTTP tunnel below: the rarer, larger
                // paths must not size the task of every plain relay.
                return Box::pin(routed::serve(ctx, client, first, protocol, addrs, sni)).await;
            }
            return relay_to_upstream(ctx, client, first, protocol, addrs, sni).await;
        }
        Sniffed::Http => {
            // ffmpeg writes request head and body separately; without
            // quick ACKs each request stalls ~40 ms on delayed ACK.
            quickack.store(true, Relaxed);
            let tunnel = rtmpt::Tunnel { protocol, sni };
            let end = Box::pin(rtmpt::serve_http(
                ctx,
                rt,
                Rewind::new(first.freeze(), client),
                addrs,
                tunnel,
            ))
            .await;
            return Outcome::early(protocol, CloseReason::Http(end));
        }
        Sniffed::Tls => {
            tracing::warn!(
                "TLS ClientHello on a plain listener; clients must use an rtmps:// listener"
            );
            "tls_on_plain_port"
        }
        Sniffed::Rtmp | Sniffed::Rtmpe => {
            tracing::warn!("RTMP on a tunnel-only listener; use an rtmp:// or rtmps:// listener");
            "rtmp_on_tunnel_port"
        }
        Sniffed::Unknown(byte) => {
            tracing::warn!(first_byte = byte, "not RTMP, RTMPT or TLS; closing");
            "unknown_protocol"
        }
    };
    close_gently(&mut client).await;
    Outcome::early(protocol, CloseReason::Rejected(rejected))
}

async fn relay_to_upstream<S>(
    ctx: &ServeContext,
    mut client: S,
    first: BytesMut,
    protocol: &'static str,
    addrs: ClientAddrs,
    sni: Option<String>,
) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Boxed for the same reason as the TLS handshake: a connect attempt's
    // state must not stay in the task for the stream's lifetime.
    let upstream = match Box::pin(ctx.connect_upstream(addrs)).await {
        Ok(u) => u,
        Err(err) => {
            tracing::warn!(%err, "upstream unavailable");
            close_gently(&mut client).await;
            return Outcome::early(protocol, CloseReason::UpstreamUnavailable);
        }
    };
    let facts = ClientFacts {
        addr: addrs.peer.ip(),
        protocol,
        sni,
    };
    // Boxed: the gate's follower state is a few hundred bytes that plain
    // pipes need not carry.
    let gate = StreamGate::new(Arc::clone(&ctx.auth), facts);
    let mut gate = Box::new(gate.with_app_metrics(Arc::clone(&ctx.metrics.apps)));
    let mut server = Box::<ServerSide>::default();
    let watch = relay::Watch {
        up: &mut *gate,
        down: &mut *server,
    };
    let stats = relay::relay_inspected(
        &mut client,
        upstream,
        first,
        ctx.config.timeouts.relay(),
        &ctx.abort,
        &ctx.overload,
        watch,
    )
    .await;
    let verdict = gate.verdict();
    drop(gate);
    finish_gated(&mut client, protocol, stats, verdict, &server).await
}
