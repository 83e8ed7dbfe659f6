//! RTMPT / RTMPTS: RTMP tunnelled in HTTP POSTs.
//!
//! Owns the HTTP side of the tunnel: one hyper HTTP/1 connection per client
//! connection (title-case headers, header-read timeout), request checks
//! (method, path, content type, body size), `/open` (per-client rate,
//! session creation and upstream connect) and handing `/send`, `/idle`, `/close` to the session
//! task. Sessions are keyed by id, never by TCP connection: clients and
//! proxies open and close connections freely.
//!
//! | file | owns |
//! |---|---|
//! | [`command`] | what the HTTP side and a session task say to each other |
//! | `http` | the hyper service: request checks, `/open`, handing requests to sessions |
//! | [`conn`] | per-connection pipelining detection |
//! | [`forwarded`] | the client behind a trusted HTTP balancer (`X-Forwarded-For`) |
//! | [`path`] | parsing request paths |
//! | [`table`] | session ids, caps, expiry |
//! | [`session`] | one session's task: ordering, buffering, long-poll |
//! | [`reply`] | exact response bytes |

pub mod command;
pub mod conn;
pub mod forwarded;
pub mod framing;
mod http;
pub mod path;
pub mod reply;
pub mod session;
pub mod table;

pub(crate) use self::http::{Tunnel, serve_http};

use std::sync::Arc;

use self::table::SessionTable;
pub use crate::config::RtmptSettings;
use crate::limits::OpenRateLimiter;

/// Shared RTMPT state of one process.
pub struct Rtmpt {
    /// Settings.
    pub settings: RtmptSettings,
    /// Live sessions.
    pub table: Arc<SessionTable>,
    /// Per-client rate of `/open`.
    pub open_rate: OpenRateLimiter,
}

impl Rtmpt {
    /// Empty state for these settings; session ids start with `replica_tag.`
    /// when one is given.
    pub fn new(settings: RtmptSettings, replica_tag: Option<String>) -> Self {
        Self {
            settings,
            table: Arc::new(SessionTable::new(settings.limits, replica_tag)),
            open_rate: OpenRateLimiter::new(settings.open_rate),
        }
    }
}

/// Drops expired sessions until `stop` fires: the one reaper of the process.
pub(crate) async fn reap(table: Arc<SessionTable>, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(table.reap_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let n = table.expire(tokio::time::Instant::now());
                if n > 0 {
                    tracing::info!(expired = n, "rtmpt sessions expired (no request within the session timeout)");
                }
            }
            () = stop.cancelled() => return,
        }
    }
}

/// How an RTMPT connection ended, for the close log line and metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpEnd {
    /// Requests served, then the client (or a drain) closed it.
    Done,
    /// A request head did not arrive within `--rtmpt-header-timeout`
    /// (slowloris, or an idle keep-alive).
    HeaderTimeout,
    /// Not HTTP/1 hyper could parse (garbage, header too large).
    BadRequest,
    /// The client left in the middle of a request.
    Incomplete,
    /// The client took no reply bytes for `--write-timeout` (a zero
    /// receive window, a client that pipelines and never reads): the same
    /// label as a relay's stalled client.
    WriteTimeout,
    /// Any other I/O or protocol error.
    Error,
}

impl HttpEnd {
    /// Short label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "http_done",
            Self::HeaderTimeout => "http_header_timeout",
            Self::BadRequest => "http_bad_request",
            Self::Incomplete => "http_incomplete_request",
            Self::WriteTimeout => "client_write_timeout",
            Self::Error => "http_error",
        }
    }

    fn of(err: &hyper::Error) -> Self {
        if err.is_timeout() {
            Self::HeaderTimeout
        } else if err.is_parse() || err.is_parse_too_large() {
            Self::BadRequest
        } else if err.is_incomplete_message() {
            Self::Incomplete
        } else {
            Self::Error
        }
    }
}
