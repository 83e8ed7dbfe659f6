//! A routed RTMP connection: handshake with the client here, read up to its
//! `connect`, pick the upstream by `app` and `tcUrl` host, handshake with
//! that upstream, then relay bytes as usual.
//!
//! Owns that sequence and its bounds (one deadline for the client's part,
//! a byte cap before `connect`). Both hops start fresh chunk streams after
//! their own handshakes, so the client's bytes after C2 are forwarded
//! unchanged (or with `connect` re-chunked after a `tcUrl` rewrite) and the
//! rest is the plain byte relay ([`rechunk`] keeps chunk state in step
//! after a length-changing rewrite). Only the plain handshake is spoken:
//! Flash-era players that need the digest handshake are not routed.
//! Unrouted connections never come here and are never parsed.

pub mod rechunk;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use std::sync::Arc;

use crate::context::{ClientAddrs, ServeContext};
use crate::gate::{ClientFacts, ServerSide, StreamGate};
use crate::outcome::{CloseReason, Outcome, close_gently, finish_gated};
use crate::relay;
// The `_error` rtmpgate itself sends is chunked at the protocol default:
// rtmpgate never announces another chunk size to the client.
use crate::routes::{self, base_app};
use crate::rtmp::chunk::{DEFAULT_CHUNK_SIZE, TYPE_COMMAND_AMF0, TYPE_COMMAND_AMF3};
use crate::rtmp::handshake::{C0C1_LEN, HANDSHAKE_SIZE, S0S1S2_LEN};
use crate::rtmp::{self, ChunkReader, ConnectInfo, Received};
use rechunk::Rechunk;

/// Most bytes a client may send after its handshake before `connect` is
/// complete: a connect is a few hundred bytes, a set-chunk-size 16.
const PRE_CONNECT_LIMIT: usize = 64 * 1024;
/// Largest message accepted before `connect`: one that cannot fit in
/// [`PRE_CONNECT_LIMIT`] is refused as soon as its header arrives.
const PRE_CONNECT_MESSAGE: u32 = PRE_CONNECT_LIMIT as u32;
/// Largest message held during the re-chunking watch after `connect`; a
/// longer one ends the watch (it is media, past the commands watched for).
const MAX_MESSAGE: u32 = rechunk::WATCH_LIMIT as u32;

/// Why the client's part failed, as a close reason label.
struct Refused(&'static str);

/// Serves a connection whose first bytes (`buf`) are an RTMP C0 and the
/// start of C1, when routes are configured.
pub(crate) async fn serve<S>(
    ctx: &ServeContext,
    mut client: S,
    buf: BytesMut,
    protocol: &'static str,
    addrs: ClientAddrs,
    sni: Option<String>,
) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let deadline = Instant::now() + ctx.config.timeouts.first_bytes;
    let (received, pending, reader) = match read_until_connect(&mut client, buf, deadline).await {
        Ok(r) => r,
        Err(Refused(why)) => {
            close_gently(&mut client).await;
            return Outcome::early(protocol, CloseReason::Rejected(why));
        }
    };
    let info = match ConnectInfo::parse(&received.message) {
        Ok(info) => info,
        Err(err) => {
            tracing::warn!(%err, "first command is not a usable connect; closing");
            close_gently(&mut client).await;
            return Outcome::early(protocol, CloseReason::Rejected("bad_connect"));
        }
    };
    let app = base_app(&info.app);
    let rules: Vec<_> = ctx.routes.iter().map(|(rule, _)| rule.clone()).collect();
    let Some(index) = routes::pick(&rules, app, info.host.as_deref()) else {
        tracing::warn!(app, host = ?info.host, "no route for this app; refusing connect");
        refuse_connect(
            &mut client,
            info.transaction_id,
            "no route for this application",
        )
        .await;
        return Outcome::early(protocol, CloseReason::Rejected("no_route"));
    };
    let (rule, upstreams) = &ctx.routes[index];
    tracing::info!(app, host = ?info.host, route = index, "routed");
    let upstream = match ctx.connect_route_upstream(upstreams, addrs).await {
        Ok(u) => u,
        Err(err) => {
            tracing::warn!(%err, "upstream unavailable for this route");
            refuse_connect(&mut client, info.transaction_id, "upstream unavailable").await;
            return Outcome::early(protocol, CloseReason::UpstreamUnavailable);
        }
    };
    let mut upstream = match upstream_handshake(upstream, ctx.config.timeouts.connect).await {
        Ok(u) => u,
        Err(err) => {
            tracing::warn!(%err, "RTMP handshake with the upstream failed");
            refuse_connect(
                &mut client,
                info.transaction_id,
                "upstream handshake failed",
            )
            .await;
            return Outcome::early(protocol, CloseReason::UpstreamUnavailable);
        }
    };
    let idle = ctx.config.timeouts.relay();
    // rtmpgate did both handshakes: the gate and the server side follow
    // chunks from their first byte.
    let facts = ClientFacts {
        addr: addrs.peer.ip(),
        protocol,
        sni,
    };
    let gate = StreamGate::after_handshake(Arc::clone(&ctx.auth), facts);
    let mut gate = Box::new(gate.with_app_metrics(Arc::clone(&ctx.metrics.apps)));
    let mut server = Box::new(ServerSide::after_handshake());
    let watch = relay::Watch {
        up: &mut *gate,
        down: &mut *server,
    };
    let (abort, overload) = (&ctx.abort, &ctx.overload);
    let (stats, mut client) = match &rule.tc_url {
        None => {
            let stats = relay::relay_inspected(
                &mut client,
                upstream,
                pending,
                idle,
                abort,
                overload,
                watch,
            )
            .await;
            (stats, Either::Plain(client))
        }
        Some(tc_url) => match rewritten(&received, &pending, tc_url, reader.chunk_size()) {
            Err(why) => {
                tracing::warn!(why, "tcUrl rewrite impossible; closing");
                let _ = upstream.shutdown().await;
                close_gently(&mut client).await;
                return Outcome::early(protocol, CloseReason::Rejected("tc_url_rewrite"));
            }
            Ok((prefix, false)) => {
                let all = [&prefix[..], &pending[received.end as usize..]].concat();
                let stats = relay::relay_inspected(
                    &mut client,
                    upstream,
                    all,
                    idle,
                    abort,
                    overload,
                    watch,
                )
                .await;
                (stats, Either::Plain(client))
            }
            Ok((prefix, true)) => {
                let mut reader = reader;
                reader.set_max_message_len(MAX_MESSAGE);
                let raw = BytesMut::from(&pending[received.end as usize..]);
                let mut client =
                    Rechunk::new(client, reader, received.message.csid, raw, received.end);
                let stats = relay::relay_inspected(
                    &mut client,
                    upstream,
                    prefix,
                    idle,
                    abort,
                    overload,
                    watch,
                )
                .await;
                (stats, Either::Rechunked(Box::new(client)))
            }
        },
    };
    let verdict = gate.verdict();
    drop(gate);
    match &mut client {
        Either::Plain(c) => finish_gated(c, protocol, stats, verdict, &server).await,
        Either::Rechunked(c) => finish_gated(&mut **c, protocol, stats, verdict, &server).await,
    }
}

/// The client as the relay used it: as is, or behind the re-chunker.
enum Either<S> {
    Plain(S),
    Rechunked(Box<Rechunk<S>>),
}

/// Reads until `buf` holds at least `n` bytes, by `deadline`.
async fn fill<S: AsyncRead + Unpin>(
    client: &mut S,
    buf: &mut BytesMut,
    n: usize,
    deadline: Instant,
) -> Result<(), Refused> {
    while buf.len() < n {
        buf.reserve(n - buf.len());
        match tokio::time::timeout_at(deadline, client.read_buf(buf)).await {
            Err(_) => return Err(Refused("handshake_timeout")),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(Refused("client_gone_early")),
            Ok(Ok(_)) => {}
        }
    }
    Ok(())
}

/// The client's handshake, then chunked messages up to `connect`. Returns
/// the connect (with its offsets), every byte after C2 read so far, and
/// the chunk reader (which has seen all of them).
async fn read_until_connect<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut S,
    mut buf: BytesMut,
    deadline: Instant,
) -> Result<(Received, BytesMut, ChunkReader), Refused> {
    fill(client, &mut buf, C0C1_LEN, deadline).await?;
    let reply = rtmp::server_response(&buf[..C0C1_LEN]).map_err(|err| {
        tracing::warn!(%err, "cannot route this client's handshake");
        Refused("bad_handshake")
    })?;
    buf.advance(C0C1_LEN);
    client
        .write_all(&reply)
        .await
        .map_err(|_| Refused("client_gone_early"))?;
    fill(client, &mut buf, HANDSHAKE_SIZE, deadline).await?;
    buf.advance(HANDSHAKE_SIZE); // C2: nothing in it matters here
    let mut reader = ChunkReader::new(PRE_CONNECT_MESSAGE);
    reader.push(&buf);
    loop {
        match reader.next_message() {
            Err(err) => {
                tracing::warn!(%err, "bad chunk stream before connect");
                return Err(Refused("bad_chunk_stream"));
            }
            Ok(Some(rec)) => {
                let t = rec.message.type_id;
                if t == TYPE_COMMAND_AMF0 || t == TYPE_COMMAND_AMF3 {
                    return Ok((rec, buf, reader));
                }
                // Set chunk size, window size…: applied by the reader,
                // forwarded with everything else.
                continue;
            }
            Ok(None) => {}
        }
        if buf.len() >= PRE_CONNECT_LIMIT {
            return Err(Refused("pre_connect_too_long"));
        }
        let before = buf.len();
        fill(client, &mut buf, before + 1, deadline).await?;
        reader.push(&buf[before..]);
    }
}

/// rtmpgate's client handshake with the upstream: exactly C0+C1 first (some
/// servers refuse a longer first read), then C2 once S0+S1+S2 are in.
async fn upstream_handshake<U: AsyncRead + AsyncWrite + Unpin>(
    mut upstream: U,
    timeout: std::time::Duration,
) -> std::io::Result<U> {
    let exchange = async {
        upstream.write_all(&rtmp::client_c0c1()).await?;
        let mut s = vec![0u8; S0S1S2_LEN];
        upstream.read_exact(&mut s).await?;
        rtmp::handshake::check_version(s[0])
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        upstream
            .write_all(&rtmp::client_c2(&s[1..=HANDSHAKE_SIZE]))
            .await?;
        Ok::<_, std::io::Error>(())
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "upstream handshake timed out")
        })??;
    Ok(upstream)
}

/// The bytes up to and including `connect` re-encoded around a new
/// `tcUrl`, and whether its length changed (so the next message on its
/// chunk stream needs a full header: [`Rechunk`]).
fn rewritten(
    received: &Received,
    pending: &[u8],
    tc_url: &str,
    chunk_size: u32,
) -> Result<(Vec<u8>, bool), &'static str> {
    if received.interleaved {
        return Err("connect chunks interleaved with another chunk stream");
    }
    let new =
        rtmp::rewrite_tc_url(&received.message, tc_url).map_err(|_| "connect not rewritable")?;
    let length_changed = new.payload.len() != received.message.payload.len();
    let encoded = rtmp::encode_message(&new, chunk_size).map_err(|_| "connect not encodable")?;
    let mut out = Vec::with_capacity(received.start as usize + encoded.len());
    out.extend_from_slice(&pending[..received.start as usize]);
    out.extend_from_slice(&encoded);
    Ok((out, length_changed))
}

/// Answers `connect` with an RTMP `_error` and closes: a clear refusal
/// instead of a hang.
async fn refuse_connect<S: AsyncWrite + Unpin>(client: &mut S, transaction_id: f64, why: &str) {
    let reply = rtmp::error_reply(transaction_id, why);
    if let Ok(bytes) = rtmp::encode_message(&reply, DEFAULT_CHUNK_SIZE) {
        let _ = tokio::time::timeout(relay::CLOSE_GRACE, client.write_all(&bytes)).await;
    }
    close_gently(client).await;
}
