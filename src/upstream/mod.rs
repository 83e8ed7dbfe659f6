//! Connections to the upstream RTMP servers.
//!
//! Owns name resolution (at every connect, so DNS changes are followed), the
//! connect timeout, the PROXY header, TLS towards `rtmps://` upstreams
//! ([`tls`]; pinned origin certificates and the advice for refused ones in
//! [`pin`]), and failover across several upstreams with passive health: an
//! upstream that refused or timed out is skipped by new connections for a
//! while. It returns an [`UpstreamStream`]; what flows over it is the
//! relay's business.

pub mod pin;
pub mod stream;
pub mod tls;

use std::io;
use std::sync::Mutex;
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

pub use self::stream::UpstreamStream;
pub use self::tls::UpstreamTlsError;
use crate::config::{UpstreamPins, UpstreamTrust};
use crate::endpoint::{UpstreamScheme, UpstreamUrl};
use crate::metrics::{Metrics, UpstreamLabels};
use crate::net;

/// Why an upstream could not be reached. Seen by operators in logs and in
/// `rtmpgate_upstream_connect_failures_total{reason}`.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// DNS gave no usable address.
    #[error("cannot resolve upstream {upstream}: {source} (check --upstream and DNS)")]
    Resolve {
        /// The upstream as configured.
        upstream: String,
        /// Resolver error.
        source: io::Error,
    },
    /// Every address refused or failed.
    #[error(
        "cannot connect to upstream {upstream}: {source} (is the RTMP server running and reachable?)"
    )]
    Connect {
        /// The upstream as configured.
        upstream: String,
        /// Last connect error.
        source: io::Error,
    },
    /// No address answered within the connect timeout.
    #[error(
        "upstream {upstream} did not accept within {timeout:?} (server overloaded or packets dropped; see --connect-timeout)"
    )]
    Timeout {
        /// The upstream as configured.
        upstream: String,
        /// The configured limit.
        timeout: Duration,
    },
    /// The TLS handshake with an `rtmps://` upstream failed.
    #[error(
        "TLS with upstream {upstream} failed: {source} (check its certificate, --upstream-ca, or the host name in --upstream)"
    )]
    Tls {
        /// The upstream as configured.
        upstream: String,
        /// The TLS error.
        source: io::Error,
    },
    /// The `rtmps://` upstream's certificate was refused: not signed by a
    /// trusted CA, a CA certificate used as the server's own, not the
    /// pinned one, expired, or for another name.
    #[error("TLS with upstream {upstream} failed: {source}; {advice}")]
    Certificate {
        /// The upstream as configured.
        upstream: String,
        /// The TLS error.
        source: io::Error,
        /// What to do about it ([`pin::advice`]).
        advice: &'static str,
    },
}

impl UpstreamError {
    /// Short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Resolve { .. } => "resolve",
            Self::Connect { source, .. } if source.kind() == io::ErrorKind::ConnectionRefused => {
                "refused"
            }
            Self::Connect { .. } => "connect",
            Self::Timeout { .. } => "timeout",
            Self::Tls { .. } | Self::Certificate { .. } => "tls",
        }
    }
}

/// Opens a tuned TCP connection to `upstream`, trying each resolved address
/// in turn, writes `header` (a PROXY protocol header) first and, for
/// `rtmps://`, performs the TLS handshake, all within `timeout`.
pub async fn connect(
    upstream: &UpstreamUrl,
    timeout: Duration,
    header: Option<&[u8]>,
    tls: &TlsConnector,
) -> Result<UpstreamStream, UpstreamError> {
    let authority = upstream.authority();
    let attempt = async {
        let addrs = tokio::net::lookup_host(&authority)
            .await
            .map_err(|source| UpstreamError::Resolve {
                upstream: authority.clone(),
                source,
            })?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "name resolved to no address");
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(err) => last = err,
            }
        }
        let connect_err = |source| UpstreamError::Connect {
            upstream: authority.clone(),
            source,
        };
        let mut stream = tcp.ok_or_else(|| connect_err(last))?;
        net::tune_stream(&stream);
        if let Some(header) = header {
            stream.write_all(header).await.map_err(connect_err)?;
        }
        match upstream.scheme {
            UpstreamScheme::Rtmp => Ok(UpstreamStream::Plain(stream)),
            UpstreamScheme::Rtmps => {
                let name = ServerName::try_from(upstream.host.clone()).map_err(|e| {
                    UpstreamError::Tls {
                        upstream: authority.clone(),
                        source: io::Error::new(io::ErrorKind::InvalidInput, e),
                    }
                })?;
                let tls = tls
                    .connect(name, crate::buffers::ReadAhead::new(stream))
                    .await
                    .map_err(|source| match pin::advice(&source) {
                        Some(advice) => UpstreamError::Certificate {
                            upstream: authority.clone(),
                            source,
                            advice,
                        },
                        None => UpstreamError::Tls {
                            upstream: authority.clone(),
                            source,
                        },
                    })?;
                Ok(UpstreamStream::Tls(Box::new(tls)))
            }
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(UpstreamError::Timeout {
                upstream: authority.clone(),
                timeout,
            })
        })
}

struct Member {
    url: UpstreamUrl,
    label: UpstreamLabels,
    /// Skipped by new connections until then, after a failure.
    down_until: Mutex<Option<Instant>>,
}

/// The configured upstreams, tried in order.
pub struct Upstreams {
    members: Vec<Member>,
    tls: TlsConnector,
    timeout: Duration,
    /// How long a failed upstream is skipped.
    hold_down: Duration,
}

impl Upstreams {
    /// The pool for `urls` (in preference order).
    pub fn new(
        urls: &[UpstreamUrl],
        trust: &UpstreamTrust,
        pins: &UpstreamPins,
        timeout: Duration,
        hold_down: Duration,
        metrics: &Metrics,
    ) -> Result<Self, UpstreamTlsError> {
        let members = urls
            .iter()
            .map(|url| {
                let label = UpstreamLabels {
                    upstream: url.to_string(),
                };
                metrics.upstream_up.get_or_create(&label).set(1);
                Member {
                    url: url.clone(),
                    label,
                    down_until: Mutex::new(None),
                }
            })
            .collect();
        Ok(Self {
            members,
            tls: TlsConnector::from(tls::client_config(trust, pins)?),
            timeout,
            hold_down,
        })
    }

    /// The configured upstreams, for logs.
    pub fn urls(&self) -> impl Iterator<Item = &UpstreamUrl> {
        self.members.iter().map(|m| &m.url)
    }

    /// Connects to the first upstream that answers: healthy ones in order,
    /// then (if all are held down) the held-down ones, since a stale
    /// verdict is better tested than obeyed. Counts failures and latency.
    pub async fn connect(
        &self,
        header: Option<&[u8]>,
        metrics: &Metrics,
    ) -> Result<UpstreamStream, UpstreamError> {
        let now = Instant::now();
        let is_down = |m: &Member| {
            m.down_until
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some_and(|until| until > now)
        };
        // Decide the order once: marking a member down while trying it
        // must not put it in the line a second time.
        let (healthy, held_down): (Vec<&Member>, Vec<&Member>) =
            self.members.iter().partition(|m| !is_down(m));
        let order = healthy.into_iter().chain(held_down);
        let mut last = None;
        for member in order {
            let started = Instant::now();
            match connect(&member.url, self.timeout, header, &self.tls).await {
                Ok(stream) => {
                    metrics
                        .upstream_connect_seconds
                        .observe(started.elapsed().as_secs_f64());
                    self.mark(member, None, metrics);
                    return Ok(stream);
                }
                Err(err) => {
                    tracing::warn!(%err, upstream = %member.url, "upstream failed; trying the next");
                    metrics
                        .upstream_failures
                        .get_or_create(&crate::metrics::ReasonLabels {
                            reason: err.reason(),
                        })
                        .inc();
                    self.mark(member, Some(Instant::now() + self.hold_down), metrics);
                    last = Some(err);
                }
            }
        }
        Err(last.expect("at least one upstream is configured"))
    }

    /// Whether any upstream accepts a connection within `timeout` (for
    /// readiness). Does not change the health state or metrics.
    pub async fn probe(&self, timeout: Duration) -> Result<(), UpstreamError> {
        let mut last = None;
        for member in &self.members {
            match connect(&member.url, timeout, None, &self.tls).await {
                Ok(_) => return Ok(()),
                Err(err) => last = Some(err),
            }
        }
        Err(last.expect("at least one upstream is configured"))
    }

    fn mark(&self, member: &Member, down_until: Option<Instant>, metrics: &Metrics) {
        *member.down_until.lock().unwrap_or_else(|p| p.into_inner()) = down_until;
        metrics
            .upstream_up
            .get_or_create(&member.label)
            .set(i64::from(down_until.is_none()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[tokio::test]
    async fn refused_is_reported_as_such() {
        let url: UpstreamUrl = format!("rtmp://127.0.0.1:{}", closed_port())
            .parse()
            .unwrap();
        let tls = TlsConnector::from(
            tls::client_config(&UpstreamTrust::Insecure, &UpstreamPins::default()).unwrap(),
        );
        let err = connect(&url, Duration::from_secs(2), None, &tls)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "refused");
        assert!(
            err.to_string().contains("is the RTMP server running"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_attempt_dropped_unfinished_marks_nothing() {
        // An rtmps:// upstream that accepts and never answers the TLS
        // handshake; the caller (a client that hung up) drops the connect.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url: UpstreamUrl = format!("rtmps://{}", silent.local_addr().unwrap())
            .parse()
            .unwrap();
        let metrics = Metrics::default();
        let pool = Upstreams::new(
            std::slice::from_ref(&url),
            &UpstreamTrust::Insecure,
            &UpstreamPins::default(),
            Duration::from_secs(5),
            Duration::from_secs(60),
            &metrics,
        )
        .unwrap();
        let dropped =
            tokio::time::timeout(Duration::from_millis(200), pool.connect(None, &metrics)).await;
        assert!(dropped.is_err(), "the handshake never finishes");
        let text = metrics.encode();
        assert!(
            text.contains(&format!("rtmpgate_upstream_up{{upstream=\"{url}\"}} 1")),
            "{text}"
        );
        assert!(
            !text.contains("rtmpgate_upstream_connect_failures_total{"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn fails_over_and_holds_the_failed_one_down() {
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead: UpstreamUrl = format!("rtmp://127.0.0.1:{}", closed_port())
            .parse()
            .unwrap();
        let good: UpstreamUrl = format!("rtmp://{}", live.local_addr().unwrap())
            .parse()
            .unwrap();
        let metrics = Metrics::default();
        let pool = Upstreams::new(
            &[dead.clone(), good],
            &UpstreamTrust::PublicRoots,
            &UpstreamPins::default(),
            Duration::from_secs(2),
            Duration::from_secs(60),
            &metrics,
        )
        .unwrap();
        pool.connect(None, &metrics).await.unwrap();
        let text = metrics.encode();
        assert!(
            text.contains("rtmpgate_upstream_connect_failures_total{reason=\"refused\"} 1"),
            "one attempt at the dead upstream: {text}"
        );
        assert!(
            text.contains(&format!("rtmpgate_upstream_up{{upstream=\"{dead}\"}} 0")),
            "{text}"
        );
        // Held down: the next connect goes straight to the good one.
        pool.connect(None, &metrics).await.unwrap();
        let refused = metrics.encode();
        assert!(
            refused.contains("rtmpgate_upstream_connect_failures_total{reason=\"refused\"} 1"),
            "{refused}"
        );
    }
}
