//! Connections to the upstream RTMP server.
//!
//! Owns name resolution (at every connect, so DNS changes are followed), the
//! connect timeout, and socket tuning of the upstream hop. It returns a plain
//! stream; what flows over it is the relay's business.

use std::io;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::endpoint::UpstreamUrl;
use crate::net;

/// Why the upstream could not be reached. Seen by operators in logs and in
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
        }
    }
}

/// Opens a tuned TCP connection to `upstream`, trying each resolved address
/// in turn, and writes `header` (a PROXY protocol header) first, all within
/// `timeout`.
pub async fn connect(
    upstream: &UpstreamUrl,
    timeout: Duration,
    header: Option<&[u8]>,
) -> Result<TcpStream, UpstreamError> {
    let authority = upstream.authority();
    let attempt = async {
        let addrs = tokio::net::lookup_host(&authority)
            .await
            .map_err(|source| UpstreamError::Resolve {
                upstream: authority.clone(),
                source,
            })?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "name resolved to no address");
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(mut stream) => {
                    net::tune_stream(&stream);
                    if let Some(header) = header {
                        stream.write_all(header).await.map_err(|source| {
                            UpstreamError::Connect {
                                upstream: authority.clone(),
                                source,
                            }
                        })?;
                    }
                    return Ok(stream);
                }
                Err(err) => last = err,
            }
        }
        Err(UpstreamError::Connect {
            upstream: authority.clone(),
            source: last,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refused_is_reported_as_such() {
        // Bind then drop to get a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url: UpstreamUrl = format!("rtmp://127.0.0.1:{port}").parse().unwrap();
        let err = connect(&url, Duration::from_secs(2), None)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "refused");
        assert!(
            err.to_string().contains("is the RTMP server running"),
            "{err}"
        );
    }
}
