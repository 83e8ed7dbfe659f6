//! The hyper side of the tunnel: one HTTP/1 connection per client
//! connection, request checks, `/open`, and handing `/send`, `/idle` and
//! `/close` to the session task.
//!
//! Owns nothing that outlives a request: sessions live in the table
//! ([`super::table`]) and their tasks ([`super::session`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

use super::command::{COMMAND_CHANNEL, Command, Request as SessionRequest};
use super::conn::{ConnState, Watched};
use super::path::{Route, Verb};
use super::reply::ReplyBody;
use super::session::SessionStart;
use super::table;
use super::{HttpEnd, Rtmpt, forwarded, path, reply, session};
use crate::context::{ClientAddrs, ServeContext};
use crate::gate::ClientFacts;

/// Largest body accepted for `/open`, `/idle` and `/close` (clients send one
/// zero byte).
const SMALL_BODY: usize = 64;
/// Most time one request may take end to end (a body upload plus a
/// long-poll); a stuck session answers 504 rather than hanging the client.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(40);
/// hyper's read buffer cap: request heads are tiny; bodies stream through.
const MAX_HTTP_BUF: usize = 64 * 1024;

/// What the tunnel's connection says of the client, for the stream gate.
#[derive(Debug, Clone)]
pub(crate) struct Tunnel {
    /// `rtmpt` or `rtmpts`.
    pub(crate) protocol: &'static str,
    /// The TLS server name the client asked for (RTMPTS).
    pub(crate) sni: Option<String>,
}

/// Serves HTTP requests on one client connection until it closes.
pub(crate) async fn serve_http<S>(
    ctx: &Arc<ServeContext>,
    rt: &Arc<Rtmpt>,
    io: S,
    addrs: ClientAddrs,
    tunnel: Tunnel,
) -> HttpEnd
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn_state = Arc::new(ConnState::default());
    let io = Watched::new(io, Arc::clone(&conn_state), ctx.config.timeouts.write);
    let service = {
        let ctx = Arc::clone(ctx);
        let rt = Arc::clone(rt);
        let conn_state = Arc::clone(&conn_state);
        let tunnel = Arc::new(tunnel);
        service_fn(move |req| {
            let ctx = Arc::clone(&ctx);
            let rt = Arc::clone(&rt);
            let tunnel = Arc::clone(&tunnel);
            // Counted when hyper hands the request over, before the handler
            // first runs: from here on it is in flight (see `conn`).
            let request = InFlight::start(Arc::clone(&conn_state));
            async move {
                let at = (addrs, &*tunnel);
                Ok::<_, Infallible>(handle(&ctx, &rt, at, &request, req).await)
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .title_case_headers(true)
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(rt.settings.header_timeout)
        .max_buf_size(MAX_HTTP_BUF);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => match res {
            Ok(()) => HttpEnd::Done,
            Err(_) if conn_state.write_timed_out() => {
                tracing::info!(
                    timeout = ?ctx.config.timeouts.write,
                    "rtmpt client took no reply bytes for the write timeout; closing"
                );
                HttpEnd::WriteTimeout
            }
            Err(err) => {
                tracing::debug!(%err, "rtmpt connection ended with an error");
                HttpEnd::of(&err)
            }
        },
        // Draining and no session left to serve (or the drain is over):
        // finish the request in flight, then close the keep-alive.
        () = ctx.http_done.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
            HttpEnd::Done
        }
    }
}

/// One request in flight on a connection; finished when dropped (answered
/// or abandoned).
struct InFlight {
    conn: Arc<ConnState>,
    index: u64,
}

impl InFlight {
    fn start(conn: Arc<ConnState>) -> Self {
        let index = conn.start_request();
        Self { conn, index }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.conn.finish_request();
    }
}

async fn handle(
    ctx: &ServeContext,
    rt: &Rtmpt,
    (addrs, tunnel): (ClientAddrs, &Tunnel),
    request: &InFlight,
    req: Request<Incoming>,
) -> Response<ReplyBody> {
    let (verb, res) = route(ctx, rt, (addrs, tunnel), &request.conn, request.index, req).await;
    ctx.metrics.rtmpt_request(verb, res.status().as_u16());
    if !res.status().is_success() {
        tracing::debug!(
            verb,
            status = res.status().as_u16(),
            "rtmpt request refused"
        );
    }
    res
}

async fn route(
    ctx: &ServeContext,
    rt: &Rtmpt,
    (addrs, tunnel): (ClientAddrs, &Tunnel),
    conn: &ConnState,
    index: u64,
    req: Request<Incoming>,
) -> (&'static str, Response<ReplyBody>) {
    use reply::error;
    if req.method() != Method::POST {
        return (
            "other",
            error(StatusCode::METHOD_NOT_ALLOWED, "RTMPT requests are POSTs"),
        );
    }
    let Some(route) = path::parse(req.uri().path()) else {
        return ("other", error(StatusCode::NOT_FOUND, "not an RTMPT path"));
    };
    let addrs = if rt.settings.forwarded_for {
        ClientAddrs {
            peer: forwarded::client(addrs.peer, req.headers(), &ctx.config.proxy_protocol_from),
            ..addrs
        }
    } else {
        addrs
    };
    let verb = match route {
        Route::Ident => return ("ident", error(StatusCode::NOT_FOUND, "no ident service")),
        Route::Open => "open",
        Route::Session { verb, .. } => verb.as_str(),
    };
    let fcs = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-fcs")
        });
    if !fcs {
        return (
            verb,
            error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/x-fcs",
            ),
        );
    }
    // RTMPT clients always send Content-Length; a chunked body has none.
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(length) = length else {
        return (
            verb,
            error(StatusCode::LENGTH_REQUIRED, "Content-Length is required"),
        );
    };
    let limit = match route {
        Route::Session {
            verb: Verb::Send, ..
        } => rt.settings.max_body,
        _ => SMALL_BODY as u64,
    };
    if length > limit {
        return (
            verb,
            error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
        );
    }
    let res = match route {
        Route::Ident => unreachable!("answered above"),
        Route::Open => open(ctx, rt, (addrs, tunnel), conn.id, req.into_body()).await,
        Route::Session { verb, id, seq } => {
            let id = id.to_owned();
            let at = Position {
                conn,
                index,
                peer: addrs.peer,
            };
            session_request(ctx, rt, at, verb, &id, seq, req.into_body()).await
        }
    };
    (verb, res)
}

/// Reads and discards a tiny body (the 0x00 of open/idle/close) so the
/// connection stays usable for the next request.
async fn discard_small(body: Incoming) -> Result<(), Response<ReplyBody>> {
    let read = Limited::new(body, SMALL_BODY).collect();
    match tokio::time::timeout(SMALL_BODY_TIMEOUT, read).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(reply::error(StatusCode::BAD_REQUEST, "bad request body")),
        Err(_) => Err(reply::error(
            StatusCode::REQUEST_TIMEOUT,
            "request body too slow",
        )),
    }
}

/// Longest a client may take to send the one byte of an open/idle/close
/// body (slow-body attacks hold a connection each otherwise).
const SMALL_BODY_TIMEOUT: Duration = Duration::from_secs(10);

async fn open(
    ctx: &ServeContext,
    rt: &Rtmpt,
    (addrs, tunnel): (ClientAddrs, &Tunnel),
    conn: u64,
    body: Incoming,
) -> Response<ReplyBody> {
    let peer = addrs.peer;
    if let Err(res) = discard_small(body).await {
        return res;
    }
    if ctx.draining.load(std::sync::atomic::Ordering::Relaxed) {
        // Not ready: balancers send new sessions elsewhere; one that still
        // arrives here is told to retry.
        return reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining: open the session elsewhere",
        );
    }
    if ctx.overload.is_overloaded() {
        // Shed new sessions; the live ones keep being served.
        ctx.metrics.overload_shed("rtmpt_open");
        tracing::info!("rtmpt /open refused: overloaded");
        return reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded: retry later or open the session elsewhere",
        );
    }
    let (tx, rx) = mpsc::channel(COMMAND_CHANNEL);
    let cancel = ctx.abort.child_token();
    let id = match rt.table.insert(peer.ip(), tx, cancel.clone()) {
        Ok(id) => id,
        Err(refused) => {
            ctx.metrics.limit_hit(match refused {
                table::OpenRefused::Full => "rtmpt_max_sessions",
                table::OpenRefused::ClientFull => "rtmpt_max_sessions_per_client",
            });
            tracing::warn!(%refused, "rtmpt /open refused");
            return reply::error(StatusCode::SERVICE_UNAVAILABLE, "too many RTMPT sessions");
        }
    };
    // After the session caps (an /open they refuse costs nothing and takes
    // no token), before the upstream connect it would cost.
    if let Err(limited) = rt.open_rate.check(peer.ip()) {
        rt.table.remove(&id);
        ctx.metrics.limit_hit("rtmpt_open_rate");
        let client = crate::limits::client_key(peer.ip());
        tracing::warn!(%client, limit = "rtmpt_open_rate", "rtmpt /open refused: {limited}");
        return reply::rate_limited(limited.retry_after);
    }
    let upstream = match ctx.connect_upstream(addrs).await {
        Ok(u) => u,
        Err(err) => {
            rt.table.remove(&id);
            tracing::warn!(%err, "upstream unavailable for a new rtmpt session");
            return reply::error(StatusCode::BAD_GATEWAY, "upstream RTMP server unavailable");
        }
    };
    ctx.metrics.rtmpt_sessions_active.inc();
    let start = SessionStart {
        id: id.clone(),
        client: peer.ip(),
        open_conn: conn,
        upstream,
        commands: rx,
        settings: rt.settings.session,
        table: Arc::clone(&rt.table),
        metrics: Arc::clone(&ctx.metrics),
        abort: ctx.abort.clone(),
        cancel,
        overload: Arc::clone(&ctx.overload),
        auth: Arc::clone(&ctx.auth),
        facts: ClientFacts {
            addr: peer.ip(),
            protocol: tunnel.protocol,
            sni: tunnel.sni.clone(),
        },
    };
    ctx.tasks.spawn(session::run(start));
    reply::opened(&id)
}

/// Where a request sits on its connection.
#[derive(Clone, Copy)]
struct Position<'a> {
    conn: &'a ConnState,
    /// The request's number on the connection.
    index: u64,
    /// The client (behind any trusted balancer).
    peer: SocketAddr,
}

async fn session_request(
    ctx: &ServeContext,
    rt: &Rtmpt,
    at: Position<'_>,
    verb: Verb,
    id: &str,
    seq: u64,
    body: Incoming,
) -> Response<ReplyBody> {
    let Some(tx) = rt.table.lookup(id, at.peer.ip()) else {
        ctx.metrics.rtmpt_unknown_session.inc();
        return reply::error(StatusCode::NOT_FOUND, "unknown RTMPT session");
    };
    let body = match verb {
        Verb::Send => Some(body.boxed_unsync()),
        Verb::Idle | Verb::Close => {
            if let Err(res) = discard_small(body).await {
                return res;
            }
            None
        }
    };
    // Registered before looking, so a read that brings the next request
    // while this one waits is never missed.
    let next_request = at.conn.activity.notified();
    tokio::pin!(next_request);
    next_request.as_mut().enable();
    let (reply_tx, mut reply_rx) = oneshot::channel();
    let request = SessionRequest {
        verb,
        seq,
        body,
        // Already read the next request on this connection: an idle must
        // answer now, or that request would wait behind the long-poll.
        pipelined: at.conn.next_request_read(at.index),
        conn: at.conn.id,
        reply: reply_tx,
    };
    let exchange = async {
        if tx.send(Command::Request(request)).await.is_err() {
            return None;
        }
        tokio::select! {
            r = &mut reply_rx => return r.ok(),
            () = next_request, if verb == Verb::Idle => {
                let _ = tx.try_send(Command::Release { seq });
            }
        }
        reply_rx.await.ok()
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
        Ok(Some(r)) => reply::from_session(r),
        Ok(None) => reply::error(StatusCode::NOT_FOUND, "session is over"),
        Err(_) => reply::error(
            StatusCode::GATEWAY_TIMEOUT,
            "session did not answer in time",
        ),
    }
}
