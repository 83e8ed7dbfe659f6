//! What the HTTP side and a session task say to each other: commands in,
//! replies out, over a bounded channel.
//!
//! Owns the message types only, so that the session table (which keeps a
//! handle to each session) and the session task need not know each other.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use tokio::sync::oneshot;

use super::path::Verb;

/// Requests that may wait for an earlier sequence number. nginx-rtmpt-proxy
/// uses 4; real clients are in order on one connection, so reordering only
/// comes from proxies spreading requests over a few connections.
pub const REORDER_WINDOW: u64 = 4;
/// Capacity of a session's command channel: the window plus one release.
pub const COMMAND_CHANNEL: usize = REORDER_WINDOW as usize + 2;
/// A request body as the session sees it.
pub type Body = UnsyncBoxBody<Bytes, hyper::Error>;

/// What the HTTP side sends a session.
pub enum Command {
    /// A `/send`, `/idle` or `/close` request.
    Request(Request),
    /// The connection that carries parked `/idle` `seq` has another request
    /// waiting behind it (pipelining): answer the idle now.
    Release {
        /// Sequence number of the idle to release.
        seq: u64,
    },
}

/// One tunnel request, with the channel its reply goes back on.
pub struct Request {
    /// What to do.
    pub verb: Verb,
    /// Client sequence number.
    pub seq: u64,
    /// Body to forward (only for `/send`).
    pub body: Option<Body>,
    /// The client already sent its next request on the same connection:
    /// an `/idle` must not long-poll.
    pub pipelined: bool,
    /// The TCP connection that carried it ([`super::conn::ConnState::id`]),
    /// for the session's count of connections.
    pub conn: u64,
    /// Where the reply goes.
    pub reply: oneshot::Sender<Reply>,
}

/// A session's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// 200: delay byte, then server bytes.
    Data {
        /// Red5-style polling hint (ffmpeg and librtmp ignore it).
        delay: u8,
        /// Server→client RTMP bytes.
        data: Bytes,
    },
    /// 200 to `/close`: a single zero byte.
    Closed,
    /// The request was refused; the session may live on.
    Refused(RefuseReason),
    /// The session is over (upstream gone, gap, shutdown).
    Gone,
}

/// Why a single request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseReason {
    /// Older than the last applied request and not a duplicate of it.
    Stale,
    /// Too far ahead of the next expected sequence number.
    TooFarAhead,
    /// The same sequence number is already waiting.
    AlreadyQueued,
}
