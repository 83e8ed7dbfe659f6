//! The TOML file (`--config`): its shape, and reading it.
//!
//! Owns the file's keys (the long flags with underscores, all optional) and
//! the errors of reading and parsing it; merging with flags is
//! [`super::merge`]'s.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use crate::proxy_protocol::ProxyVersion;

/// The TOML file's shape: the long flags with underscores, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) listen: Option<Vec<String>>,
    pub(super) upstream: Option<OneOrMany>,
    pub(super) upstream_ca: Option<PathBuf>,
    pub(super) upstream_insecure: Option<bool>,
    pub(super) upstream_pin: Option<PathBuf>,
    pub(super) upstream_pin_sha256: Option<Vec<String>>,
    pub(super) upstream_hold_down: Option<String>,
    pub(super) route: Option<Vec<FileRoute>>,
    pub(super) tls_cert: Option<PathBuf>,
    pub(super) tls_key: Option<PathBuf>,
    pub(super) sni: Option<Vec<FileCertPair>>,
    pub(super) tls_reload_interval: Option<String>,
    pub(super) tls13_tickets: Option<usize>,
    pub(super) tls_versions: Option<String>,
    pub(super) tls_handshake_timeout: Option<String>,
    pub(super) handshake_timeout: Option<String>,
    pub(super) connect_timeout: Option<String>,
    pub(super) idle_timeout: Option<String>,
    pub(super) write_timeout: Option<String>,
    pub(super) drain_timeout: Option<String>,
    pub(super) max_connections: Option<usize>,
    pub(super) max_connections_per_client: Option<usize>,
    pub(super) overload_max_buffered: Option<u64>,
    pub(super) overload_max_connections: Option<usize>,
    pub(super) rtmpt_long_poll: Option<String>,
    pub(super) rtmpt_header_timeout: Option<String>,
    pub(super) rtmpt_session_timeout: Option<String>,
    pub(super) rtmpt_max_sessions: Option<usize>,
    pub(super) rtmpt_max_sessions_per_client: Option<usize>,
    pub(super) rtmpt_max_body: Option<u64>,
    pub(super) rtmpt_open_rate: Option<u32>,
    pub(super) rtmpt_open_burst: Option<u32>,
    pub(super) rtmpt_any_client_address: Option<bool>,
    pub(super) rtmpt_forwarded_for: Option<bool>,
    pub(super) admin: Option<std::net::SocketAddr>,
    pub(super) upstream_proxy_protocol: Option<ProxyVersion>,
    pub(super) proxy_protocol_from: Option<Vec<String>>,
    pub(super) replica_tag: Option<String>,
    pub(super) auth_webhook: Option<String>,
    pub(super) auth_timeout: Option<String>,
    pub(super) auth_fail_open: Option<bool>,
    pub(super) auth_play: Option<bool>,
    pub(super) auth_keys: Option<PathBuf>,
    pub(super) auth_hmac_secret: Option<PathBuf>,
    pub(super) auth_cache_ttl: Option<String>,
    pub(super) auth_max_in_flight: Option<usize>,
    pub(super) log_stream_key: Option<String>,
    pub(super) metrics_per_app: Option<bool>,
}

/// `upstream = "rtmp://…"` or `upstream = ["rtmp://a", "rtmp://b"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// `[[route]]` tables in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRoute {
    pub(super) app: Option<String>,
    pub(super) host: Option<String>,
    pub(super) upstream: OneOrMany,
    pub(super) tc_url: Option<String>,
}

/// `[[sni]]` tables in the file: `cert = "…"`, `key = "…"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileCertPair {
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
}

pub(super) fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}
