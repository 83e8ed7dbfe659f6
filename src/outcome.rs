//! How a connection ended: the reason and byte counts its close log line
//! and metrics report, and closing a client gently.
//!
//! Owns [`CloseReason`], [`Outcome`] and [`close_gently`], shared by the
//! connection dispatcher ([`crate::connection`]) and the routed path
//! ([`crate::routed`]), which both end connections.

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::gate::{ServerSide, StreamNames, Verdict, write_refusal};
use crate::relay::{self, RelayEnd};
use crate::rtmpt;

/// Why a connection ended, as logged and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The relay ran and ended this way.
    Relay(RelayEnd),
    /// TLS handshake did not finish in time.
    TlsTimeout,
    /// TLS handshake failed (not TLS, bad version, no shared cipher…).
    TlsFailed,
    /// The client sent nothing within the handshake timeout.
    FirstBytesTimeout,
    /// The client closed or failed before sending a byte.
    ClientGone,
    /// The first byte is no protocol this listener serves.
    Rejected(&'static str),
    /// The upstream could not be reached.
    UpstreamUnavailable,
    /// The RTMPT connection ended (served its requests, or how it failed).
    Http(rtmpt::HttpEnd),
    /// A publish or play was refused by stream authorization.
    AuthDenied,
}

impl CloseReason {
    /// Short label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Relay(end) => end.as_str(),
            Self::TlsTimeout => "tls_handshake_timeout",
            Self::TlsFailed => "tls_handshake_failed",
            Self::FirstBytesTimeout => "handshake_timeout",
            Self::ClientGone => "client_gone_early",
            Self::Rejected(what) => what,
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::Http(end) => end.as_str(),
            Self::AuthDenied => "auth_denied",
        }
    }
}

/// What the close log line and metrics report.
pub(crate) struct Outcome {
    pub(crate) protocol: &'static str,
    pub(crate) reason: CloseReason,
    pub(crate) up: u64,
    pub(crate) down: u64,
    /// The stream the connection named, when it was followed.
    pub(crate) stream: Option<StreamNames>,
}

impl Outcome {
    pub(crate) fn early(protocol: &'static str, reason: CloseReason) -> Self {
        Self {
            protocol,
            reason,
            up: 0,
            down: 0,
            stream: None,
        }
    }
}

/// The outcome of a relay through the stream gate: a refused client is told
/// why and closed here.
pub(crate) async fn finish_gated<S: AsyncWrite + Unpin>(
    client: &mut S,
    protocol: &'static str,
    stats: relay::RelayStats,
    verdict: Verdict,
    server: &ServerSide,
) -> Outcome {
    if let Some(err) = &stats.error {
        tracing::debug!(%err, "relay ended with an error");
    }
    let reason = match (stats.end, &verdict.refusal) {
        (RelayEnd::Refused, Some(refusal)) => {
            write_refusal(client, refusal, server).await;
            close_gently(client).await;
            CloseReason::AuthDenied
        }
        (RelayEnd::Refused, None) => {
            close_gently(client).await;
            CloseReason::Relay(RelayEnd::Refused)
        }
        (end, _) => CloseReason::Relay(end),
    };
    Outcome {
        protocol,
        reason,
        up: stats.client_to_upstream,
        down: stats.upstream_to_client,
        stream: Some(verdict.names),
    }
}

/// Closes a client we are turning away: a TLS close_notify (or FIN) so it
/// sees a deliberate close rather than a truncation; bounded in time.
pub async fn close_gently<S: AsyncWrite + Unpin>(client: &mut S) {
    let _ = tokio::time::timeout(relay::CLOSE_GRACE, client.shutdown()).await;
}
