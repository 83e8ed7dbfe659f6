//! The validated configuration every other module reads, and the settings
//! types of every room.
//!
//! Owns merging the three sources (flags/environment from [`crate::cli`], a
//! TOML file, built-in defaults) into typed values, checked once at start-up.
//! Errors name the flag or file at fault and say how to fix it. Loading
//! certificates is not done here but in [`crate::tls`]. The rooms that use a
//! setting import its type from here; this room imports none of them, so
//! dependencies point one way (ARCHITECTURE.md).
//!
//! | file | owns |
//! |---|---|
//! | [`types`] | settings types of the rooms (TLS source, timeouts, RTMPT, upstream trust and pins) |
//! | [`file`] | the TOML file's shape and reading it |
//! | [`merge`] | flags > environment > file > defaults, into a [`Config`] |
//! | [`validate`] | cross-field checks and the errors that say what to change |
//!
//! A new flag touches: its field in [`crate::cli::Cli`], its key in
//! [`file::FileConfig`], one merge line in [`merge`], its field (and
//! default) in [`Config`] or a type of [`types`], and the room that reads it.

pub mod auth;
pub mod file;
pub mod merge;
pub mod types;
pub mod validate;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

pub use self::types::{
    CertPair, OpenRate, RtmptSettings, SessionSettings, TableLimits, Timeouts, TlsSource,
    TlsVersions, UpstreamPins, UpstreamTrust,
};
pub use crate::auth::AuthSettings;
use crate::endpoint::{ListenUrl, UpstreamUrl};
use crate::overload::OverloadLimits;
use crate::proxy_protocol::{DEFAULT_TRUSTED, ProxyVersion};
use crate::routes::RouteRule;

/// Listeners used when none is configured; documented in the README.
pub const DEFAULT_LISTEN: &[&str] = &["rtmps://0.0.0.0:8443", "rtmp://0.0.0.0:1936"];
/// Upstream used when none is configured: an RTMP server on the same host.
pub const DEFAULT_UPSTREAM: &str = "rtmp://127.0.0.1:1935";

/// Everything rtmpgate needs to run, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Sockets to accept clients on.
    pub listeners: Vec<ListenUrl>,
    /// Servers every stream is relayed to, in preference order (never empty).
    pub upstreams: Vec<UpstreamUrl>,
    /// Who vouches for `rtmps://` upstream certificates.
    pub upstream_trust: UpstreamTrust,
    /// Origin certificates or keys accepted by identity (pinning).
    pub upstream_pins: UpstreamPins,
    /// How long a failed upstream is skipped.
    pub upstream_hold_down: Duration,
    /// Routing rules by `app`/`tcUrl` host (file only); empty: no routing.
    pub routes: Vec<RouteRule>,
    /// Where the TLS certificate comes from.
    pub tls: TlsSource,
    /// Extra certificates chosen by SNI.
    pub sni: Vec<CertPair>,
    /// How often certificate files are checked for changes.
    pub tls_reload_interval: Duration,
    /// TLS 1.3 tickets per handshake (0 keeps librtmp/GnuTLS working).
    pub tls13_tickets: usize,
    /// TLS versions offered to clients.
    pub tls_versions: TlsVersions,
    /// Per-phase deadlines.
    pub timeouts: Timeouts,
    /// Cap on concurrently served client connections.
    pub max_connections: usize,
    /// Cap per client (IPv4 address or IPv6 /64; 0 = none).
    pub max_connections_per_client: usize,
    /// HTTP tunnel settings.
    pub rtmpt: RtmptSettings,
    /// High-water marks at which new work is shed.
    pub overload: OverloadLimits,
    /// Admin endpoint (health, readiness, metrics), if enabled.
    pub admin: Option<std::net::SocketAddr>,
    /// Prefix of this replica's RTMPT session ids, if any.
    pub replica_tag: Option<String>,
    /// PROXY header sent to the upstream, if any.
    pub upstream_proxy_protocol: Option<ProxyVersion>,
    /// Sources whose PROXY headers are believed.
    pub proxy_protocol_from: Vec<IpNet>,
    /// Stream authorization and stream names in logs.
    pub auth: AuthSettings,
    /// Per-app bytes and active streams in the metrics.
    pub metrics_per_app: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listeners: DEFAULT_LISTEN
                .iter()
                .map(|u| u.parse().expect("built-in listen URL parses"))
                .collect(),
            upstreams: vec![
                DEFAULT_UPSTREAM
                    .parse()
                    .expect("built-in upstream URL parses"),
            ],
            upstream_trust: UpstreamTrust::PublicRoots,
            upstream_pins: UpstreamPins::default(),
            upstream_hold_down: Duration::from_secs(10),
            routes: Vec::new(),
            tls: TlsSource::SelfSigned,
            sni: Vec::new(),
            tls_reload_interval: Duration::from_secs(10),
            tls13_tickets: 0,
            tls_versions: TlsVersions::default(),
            timeouts: Timeouts::default(),
            max_connections: 10_000,
            // Twice the RTMPT session cap, so a client at that cap still
            // has a request connection per session and a spare; far above
            // the few streams one publisher sends (README "Per-client caps").
            max_connections_per_client: 64,
            rtmpt: RtmptSettings::default(),
            overload: OverloadLimits::default(),
            admin: None,
            replica_tag: None,
            upstream_proxy_protocol: None,
            proxy_protocol_from: DEFAULT_TRUSTED
                .iter()
                .map(|r| r.parse().expect("built-in range parses"))
                .collect(),
            auth: AuthSettings::default(),
            metrics_per_app: false,
        }
    }
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The `--config` file could not be read.
    #[error("cannot read config file {path}: {source} (check the --config path)")]
    Read {
        /// File named by `--config`.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("config file {path} is invalid: {message}")]
    Parse {
        /// File named by `--config`.
        path: PathBuf,
        /// What the TOML parser said, with line and column.
        message: String,
    },
    /// A value has the right type but makes no sense.
    #[error("invalid setting `{setting}`: {why}")]
    Invalid {
        /// Flag or file key at fault.
        setting: &'static str,
        /// What to change.
        why: String,
    },
}
