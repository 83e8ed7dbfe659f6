//! How an RTMPT session ended: the reason its close line and
//! `rtmpgate_rtmpt_sessions_closed_total{reason}` report.

/// Why a session ended, for its log line and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The client sent `/close`.
    ClientClosed,
    /// The upstream closed and every byte was delivered.
    UpstreamClosed,
    /// Writing to or reading from the upstream failed.
    UpstreamError,
    /// The upstream read nothing of a `/send` body for
    /// [`WRITE_STALL`](super::body::WRITE_STALL) (or past the body deadline).
    UpstreamWriteTimeout,
    /// A `/send` body failed or stalled.
    ClientError,
    /// The reaper dropped it after no request for the expiry time.
    Expired,
    /// A missing sequence number never arrived.
    SequenceGap,
    /// Stream authorization refused a publish or play.
    AuthDenied,
    /// The stream gate could not follow the client (authorization on) or
    /// the client flooded it.
    Refused,
    /// rtmpgate shut down.
    Shutdown,
}

impl SessionEnd {
    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientClosed => "client_closed",
            Self::UpstreamClosed => "upstream_closed",
            Self::UpstreamError => "upstream_error",
            Self::UpstreamWriteTimeout => "upstream_write_timeout",
            Self::AuthDenied => "auth_denied",
            Self::Refused => "refused",
            Self::ClientError => "client_error",
            Self::Expired => "expired",
            Self::SequenceGap => "sequence_gap",
            Self::Shutdown => "shutdown",
        }
    }
}
