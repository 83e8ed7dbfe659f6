//! The validated configuration every other module reads.
//!
//! Owns merging the three sources (flags/environment from [`crate::cli`], a
//! TOML file, built-in defaults) into typed values, checked once at start-up.
//! Errors name the flag or file at fault and say how to fix it. Loading
//! certificates is not done here but in [`crate::tls`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cli::Cli;
use crate::endpoint::{ListenUrl, UpstreamUrl};
use crate::overload::OverloadLimits;
use crate::proxy_protocol::{DEFAULT_TRUSTED, ProxyVersion};
use crate::routes::RouteRule;
use crate::rtmpt::RtmptSettings;
use crate::tls::CertPair;
use crate::upstream::UpstreamTrust;
use ipnet::IpNet;

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
    /// Per-phase deadlines.
    pub timeouts: Timeouts,
    /// Cap on concurrently served client connections.
    pub max_connections: usize,
    /// Cap per client address (0 = none).
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
}

/// Source of the server certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// PEM files given by the operator.
    Files {
        /// Certificate chain, leaf first.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// Generate a throwaway self-signed certificate at start (with a warning).
    SelfSigned,
}

/// Deadlines for each phase of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TLS handshake with the client.
    pub tls_handshake: Duration,
    /// First bytes from the client (RTMP C0/C1 or HTTP request).
    pub first_bytes: Duration,
    /// TCP connect to the upstream.
    pub connect: Duration,
    /// No traffic either way for this long closes a relay; `None` = never.
    pub idle: Option<Duration>,
    /// Grace period for live connections at shutdown.
    pub drain: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            tls_handshake: Duration::from_secs(10),
            first_bytes: Duration::from_secs(10),
            connect: Duration::from_secs(5),
            idle: Some(Duration::from_secs(300)),
            drain: Duration::from_secs(30),
        }
    }
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
            upstream_hold_down: Duration::from_secs(10),
            routes: Vec::new(),
            tls: TlsSource::SelfSigned,
            sni: Vec::new(),
            tls_reload_interval: Duration::from_secs(10),
            tls13_tickets: 0,
            timeouts: Timeouts::default(),
            max_connections: 10_000,
            max_connections_per_client: 0,
            rtmpt: RtmptSettings::default(),
            overload: OverloadLimits::default(),
            admin: None,
            replica_tag: None,
            upstream_proxy_protocol: None,
            proxy_protocol_from: DEFAULT_TRUSTED
                .iter()
                .map(|r| r.parse().expect("built-in range parses"))
                .collect(),
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

/// The TOML file's shape: the long flags with underscores, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<Vec<String>>,
    upstream: Option<OneOrMany>,
    upstream_ca: Option<PathBuf>,
    upstream_insecure: Option<bool>,
    upstream_hold_down: Option<String>,
    route: Option<Vec<FileRoute>>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    sni: Option<Vec<FileCertPair>>,
    tls_reload_interval: Option<String>,
    tls13_tickets: Option<usize>,
    tls_handshake_timeout: Option<String>,
    handshake_timeout: Option<String>,
    connect_timeout: Option<String>,
    idle_timeout: Option<String>,
    drain_timeout: Option<String>,
    max_connections: Option<usize>,
    max_connections_per_client: Option<usize>,
    overload_max_buffered: Option<u64>,
    overload_max_connections: Option<usize>,
    rtmpt_long_poll: Option<String>,
    rtmpt_header_timeout: Option<String>,
    rtmpt_session_timeout: Option<String>,
    rtmpt_max_sessions: Option<usize>,
    rtmpt_max_sessions_per_client: Option<usize>,
    rtmpt_max_body: Option<u64>,
    rtmpt_any_client_address: Option<bool>,
    rtmpt_forwarded_for: Option<bool>,
    admin: Option<std::net::SocketAddr>,
    upstream_proxy_protocol: Option<ProxyVersion>,
    proxy_protocol_from: Option<Vec<IpNet>>,
    replica_tag: Option<String>,
}

/// `upstream = "rtmp://…"` or `upstream = ["rtmp://a", "rtmp://b"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// `[[route]]` tables in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRoute {
    app: Option<String>,
    host: Option<String>,
    upstream: OneOrMany,
    tc_url: Option<String>,
}

/// `[[sni]]` tables in the file: `cert = "…"`, `key = "…"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCertPair {
    cert: PathBuf,
    key: PathBuf,
}

impl Config {
    /// Merges flags/environment (already combined by clap), the optional
    /// config file, and defaults, then validates the result.
    pub fn from_sources(cli: &Cli) -> Result<Self, ConfigError> {
        let file = match &cli.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let defaults = Config::default();
        let dur = |flag: Option<Duration>,
                   file: &Option<String>,
                   setting: &'static str,
                   default: Duration|
         -> Result<Duration, ConfigError> {
            match (flag, file) {
                (Some(d), _) => Ok(d),
                (None, Some(text)) => {
                    humantime::parse_duration(text).map_err(|e| ConfigError::Invalid {
                        setting,
                        why: format!("`{text}` is not a duration ({e}); write e.g. 10s or 500ms"),
                    })
                }
                (None, None) => Ok(default),
            }
        };
        let t = defaults.timeouts;
        let idle = dur(
            cli.idle_timeout,
            &file.idle_timeout,
            "idle_timeout",
            t.idle.unwrap_or_default(),
        )?;
        let timeouts = Timeouts {
            tls_handshake: dur(
                cli.tls_handshake_timeout,
                &file.tls_handshake_timeout,
                "tls_handshake_timeout",
                t.tls_handshake,
            )?,
            first_bytes: dur(
                cli.handshake_timeout,
                &file.handshake_timeout,
                "handshake_timeout",
                t.first_bytes,
            )?,
            connect: dur(
                cli.connect_timeout,
                &file.connect_timeout,
                "connect_timeout",
                t.connect,
            )?,
            idle: (!idle.is_zero()).then_some(idle),
            drain: dur(
                cli.drain_timeout,
                &file.drain_timeout,
                "drain_timeout",
                t.drain,
            )?,
        };

        let listeners = if !cli.listen.is_empty() {
            cli.listen.clone()
        } else if let Some(list) = &file.listen {
            list.iter()
                .map(|u| {
                    u.parse()
                        .map_err(|e: crate::endpoint::UrlError| ConfigError::Invalid {
                            setting: "listen",
                            why: e.to_string(),
                        })
                })
                .collect::<Result<_, _>>()?
        } else {
            defaults.listeners
        };
        let upstreams = if !cli.upstream.is_empty() {
            cli.upstream.clone()
        } else {
            match &file.upstream {
                None => defaults.upstreams,
                Some(OneOrMany::One(u)) => vec![parse_upstream(u)?],
                Some(OneOrMany::Many(list)) => list
                    .iter()
                    .map(|u| parse_upstream(u))
                    .collect::<Result<_, _>>()?,
            }
        };
        let insecure = cli.upstream_insecure || file.upstream_insecure.unwrap_or(false);
        let upstream_trust = match (cli.upstream_ca.clone().or(file.upstream_ca), insecure) {
            (Some(_), true) => {
                return Err(ConfigError::Invalid {
                    setting: "upstream_ca",
                    why: "--upstream-ca and --upstream-insecure exclude each other".into(),
                });
            }
            (Some(ca), false) => UpstreamTrust::PrivateCa(ca),
            (None, true) => UpstreamTrust::Insecure,
            (None, false) => UpstreamTrust::PublicRoots,
        };
        let routes = file
            .route
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                let upstreams = match r.upstream {
                    OneOrMany::One(u) => vec![parse_upstream(&u)?],
                    OneOrMany::Many(list) => list
                        .iter()
                        .map(|u| parse_upstream(u))
                        .collect::<Result<Vec<_>, _>>()?,
                };
                if upstreams.is_empty() {
                    return Err(ConfigError::Invalid {
                        setting: "route",
                        why: "every [[route]] needs at least one upstream".into(),
                    });
                }
                if let Some(t) = &r.tc_url
                    && !(t.starts_with("rtmp://") || t.starts_with("rtmps://"))
                {
                    return Err(ConfigError::Invalid {
                        setting: "route",
                        why: format!("tc_url `{t}` must be an rtmp:// or rtmps:// URL"),
                    });
                }
                Ok(RouteRule {
                    app: r.app,
                    host: r.host,
                    upstreams,
                    tc_url: r.tc_url,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let upstream_hold_down = dur(
            cli.upstream_hold_down,
            &file.upstream_hold_down,
            "upstream_hold_down",
            defaults.upstream_hold_down,
        )?;
        let tls = match (
            cli.tls_cert.clone().or(file.tls_cert),
            cli.tls_key.clone().or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => TlsSource::Files { cert, key },
            (None, None) => TlsSource::SelfSigned,
            (Some(_), None) => return Err(missing_pair("tls_key", "--tls-key")),
            (None, Some(_)) => return Err(missing_pair("tls_cert", "--tls-cert")),
        };
        if cli.sni_cert.len() != cli.sni_key.len() {
            return Err(ConfigError::Invalid {
                setting: "sni_cert",
                why: "give one --sni-key per --sni-cert, in the same order".into(),
            });
        }
        let sni = if !cli.sni_cert.is_empty() {
            cli.sni_cert
                .iter()
                .zip(&cli.sni_key)
                .map(|(cert, key)| CertPair {
                    cert: cert.clone(),
                    key: key.clone(),
                })
                .collect()
        } else {
            file.sni
                .unwrap_or_default()
                .into_iter()
                .map(|p| CertPair {
                    cert: p.cert,
                    key: p.key,
                })
                .collect::<Vec<_>>()
        };
        if !sni.is_empty() && tls == TlsSource::SelfSigned {
            return Err(missing_pair(
                "tls_cert",
                "--tls-cert and --tls-key (the default for clients without SNI)",
            ));
        }
        let tls_reload_interval = dur(
            cli.tls_reload_interval,
            &file.tls_reload_interval,
            "tls_reload_interval",
            defaults.tls_reload_interval,
        )?;
        let config = Config {
            listeners,
            upstreams,
            upstream_trust,
            upstream_hold_down,
            routes,
            tls,
            sni,
            tls_reload_interval,
            tls13_tickets: cli
                .tls13_tickets
                .or(file.tls13_tickets)
                .unwrap_or(defaults.tls13_tickets),
            timeouts,
            max_connections: cli
                .max_connections
                .or(file.max_connections)
                .unwrap_or(defaults.max_connections),
            max_connections_per_client: cli
                .max_connections_per_client
                .or(file.max_connections_per_client)
                .unwrap_or(defaults.max_connections_per_client),
            rtmpt: {
                let d = defaults.rtmpt;
                let mut r = d;
                r.session.long_poll = dur(
                    cli.rtmpt_long_poll,
                    &file.rtmpt_long_poll,
                    "rtmpt_long_poll",
                    d.session.long_poll,
                )?;
                r.header_timeout = dur(
                    cli.rtmpt_header_timeout,
                    &file.rtmpt_header_timeout,
                    "rtmpt_header_timeout",
                    d.header_timeout,
                )?;
                r.limits.expiry = dur(
                    cli.rtmpt_session_timeout,
                    &file.rtmpt_session_timeout,
                    "rtmpt_session_timeout",
                    d.limits.expiry,
                )?;
                r.limits.max_sessions = cli
                    .rtmpt_max_sessions
                    .or(file.rtmpt_max_sessions)
                    .unwrap_or(d.limits.max_sessions);
                r.limits.max_per_client = cli
                    .rtmpt_max_sessions_per_client
                    .or(file.rtmpt_max_sessions_per_client)
                    .unwrap_or(d.limits.max_per_client);
                r.max_body = cli
                    .rtmpt_max_body
                    .or(file.rtmpt_max_body)
                    .unwrap_or(d.max_body);
                let any =
                    cli.rtmpt_any_client_address || file.rtmpt_any_client_address.unwrap_or(false);
                r.limits.bind_client = !any;
                r.forwarded_for =
                    cli.rtmpt_forwarded_for || file.rtmpt_forwarded_for.unwrap_or(false);
                r
            },
            overload: OverloadLimits {
                max_buffered: cli
                    .overload_max_buffered
                    .or(file.overload_max_buffered)
                    .unwrap_or(defaults.overload.max_buffered),
                max_connections: cli
                    .overload_max_connections
                    .or(file.overload_max_connections)
                    .unwrap_or(defaults.overload.max_connections),
            },
            admin: cli.admin.or(file.admin),
            replica_tag: cli.replica_tag.clone().or(file.replica_tag),
            upstream_proxy_protocol: cli.upstream_proxy_protocol.or(file.upstream_proxy_protocol),
            proxy_protocol_from: if !cli.proxy_protocol_from.is_empty() {
                cli.proxy_protocol_from.clone()
            } else {
                file.proxy_protocol_from
                    .unwrap_or(defaults.proxy_protocol_from)
            },
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.listeners.is_empty() {
            return Err(ConfigError::Invalid {
                setting: "listen",
                why: "no listener configured; add e.g. --listen rtmps://0.0.0.0:8443".into(),
            });
        }
        for (i, a) in self.listeners.iter().enumerate() {
            if a.addr.port() != 0 && self.listeners[..i].iter().any(|b| b.addr == a.addr) {
                return Err(ConfigError::Invalid {
                    setting: "listen",
                    why: format!(
                        "{} is listed twice; one port serves every protocol of its kind",
                        a.addr
                    ),
                });
            }
        }
        if self.max_connections == 0 {
            return Err(ConfigError::Invalid {
                setting: "max_connections",
                why: "must be at least 1".into(),
            });
        }
        if self.overload.max_connections > self.max_connections {
            return Err(ConfigError::Invalid {
                setting: "overload_max_connections",
                why: format!(
                    "{} is above --max-connections {}, so it could never trip; lower it, \
                     raise --max-connections, or set 0 to turn it off",
                    self.overload.max_connections, self.max_connections
                ),
            });
        }
        if let Some(tag) = &self.replica_tag
            && !crate::rtmpt::table::valid_tag(tag)
        {
            return Err(ConfigError::Invalid {
                setting: "replica_tag",
                why: format!(
                    "`{tag}` must be 1 to {} characters of A-Z a-z 0-9 - _ (no dot)",
                    crate::rtmpt::table::MAX_TAG_LEN
                ),
            });
        }
        if self.rtmpt.limits.max_sessions == 0 || self.rtmpt.limits.max_per_client == 0 {
            return Err(ConfigError::Invalid {
                setting: "rtmpt_max_sessions",
                why: "session caps must be at least 1".into(),
            });
        }
        if self.rtmpt.session.long_poll >= self.rtmpt.limits.expiry {
            return Err(ConfigError::Invalid {
                setting: "rtmpt_long_poll",
                why: "must be shorter than --rtmpt-session-timeout".into(),
            });
        }
        for (name, d) in [
            ("tls_handshake_timeout", self.timeouts.tls_handshake),
            ("handshake_timeout", self.timeouts.first_bytes),
            ("connect_timeout", self.timeouts.connect),
            ("rtmpt_session_timeout", self.rtmpt.limits.expiry),
            ("rtmpt_header_timeout", self.rtmpt.header_timeout),
            ("tls_reload_interval", self.tls_reload_interval),
        ] {
            if d.is_zero() {
                return Err(ConfigError::Invalid {
                    setting: name,
                    why: "must be longer than 0s".into(),
                });
            }
        }
        Ok(())
    }
}

fn parse_upstream(text: &str) -> Result<UpstreamUrl, ConfigError> {
    text.parse()
        .map_err(|e: crate::endpoint::UrlError| ConfigError::Invalid {
            setting: "upstream",
            why: e.to_string(),
        })
}

fn missing_pair(setting: &'static str, flag: &str) -> ConfigError {
    ConfigError::Invalid {
        setting,
        why: format!("a certificate needs both --tls-cert and --tls-key; add {flag}"),
    }
}

fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("rtmpgate").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn defaults_listen_on_documented_ports() {
        let c = Config::from_sources(&Cli::default()).unwrap();
        let urls: Vec<String> = c.listeners.iter().map(|l| l.to_string()).collect();
        assert_eq!(urls, DEFAULT_LISTEN);
        assert_eq!(c.upstreams[0].to_string(), DEFAULT_UPSTREAM);
        assert_eq!(c.upstreams.len(), 1);
        assert_eq!(c.tls, TlsSource::SelfSigned);
        assert_eq!(c.tls13_tickets, 0);
    }

    #[test]
    fn flags_beat_file_and_file_beats_defaults() {
        let dir = std::env::temp_dir().join(format!("rtmpgate-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "listen = [\"rtmp://127.0.0.1:2000\"]\nupstream = \"rtmp://10.1.1.1:1935\"\nidle_timeout = \"0s\"\nconnect_timeout = \"2s\"\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let c = Config::from_sources(&cli(&["--config", path])).unwrap();
        assert_eq!(c.listeners[0].to_string(), "rtmp://127.0.0.1:2000");
        assert_eq!(c.upstreams[0].host, "10.1.1.1");
        assert_eq!(c.timeouts.idle, None);
        assert_eq!(c.timeouts.connect, Duration::from_secs(2));
        let c = Config::from_sources(&cli(&[
            "--config",
            path,
            "--upstream",
            "rtmp://127.0.0.2",
            "--connect-timeout",
            "750ms",
        ]))
        .unwrap();
        assert_eq!(c.upstreams[0].host, "127.0.0.2");
        assert_eq!(c.timeouts.connect, Duration::from_millis(750));
        assert_eq!(c.listeners[0].to_string(), "rtmp://127.0.0.1:2000");
    }

    #[test]
    fn bad_file_names_the_problem() {
        let dir = std::env::temp_dir().join(format!("rtmpgate-cfg2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "listen_on = 3\n").unwrap();
        let e = Config::from_sources(&cli(&["--config", file.to_str().unwrap()])).unwrap_err();
        assert!(e.to_string().contains("listen_on"), "{e}");
        std::fs::write(&file, "idle_timeout = \"soon\"\n").unwrap();
        let e = Config::from_sources(&cli(&["--config", file.to_str().unwrap()])).unwrap_err();
        assert!(e.to_string().contains("idle_timeout"), "{e}");
        let e = Config::from_sources(&cli(&["--config", "/nonexistent/x.toml"])).unwrap_err();
        assert!(e.to_string().contains("--config"), "{e}");
    }

    #[test]
    fn rtmpt_settings_from_flags_and_file() {
        let dir = std::env::temp_dir().join(format!("rtmpgate-cfg3-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "rtmpt_long_poll = \"5ms\"\nrtmpt_max_body = 1024\nrtmpt_any_client_address = true\nrtmpt_header_timeout = \"7s\"\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let c = Config::from_sources(&cli(&["--config", path])).unwrap();
        assert_eq!(c.rtmpt.session.long_poll, Duration::from_millis(5));
        assert_eq!(c.rtmpt.max_body, 1024);
        assert_eq!(c.rtmpt.header_timeout, Duration::from_secs(7));
        assert!(!c.rtmpt.limits.bind_client);
        let c = Config::from_sources(&cli(&["--config", path, "--rtmpt-long-poll", "0s"])).unwrap();
        assert_eq!(c.rtmpt.session.long_poll, Duration::ZERO);
        let e = Config::from_sources(&cli(&["--rtmpt-long-poll", "1m"])).unwrap_err();
        assert!(e.to_string().contains("rtmpt_long_poll"), "{e}");
        let e = Config::from_sources(&cli(&["--rtmpt-header-timeout", "0s"])).unwrap_err();
        assert!(e.to_string().contains("rtmpt_header_timeout"), "{e}");
    }

    #[test]
    fn several_upstreams_and_trust() {
        let c = Config::from_sources(&cli(&[
            "--upstream",
            "rtmps://a.example,rtmp://b.example:1936",
            "--upstream-insecure",
        ]))
        .unwrap();
        assert_eq!(c.upstreams.len(), 2);
        assert_eq!(c.upstream_trust, UpstreamTrust::Insecure);
        let e = Cli::try_parse_from(["rtmpgate", "--upstream-ca", "x.pem", "--upstream-insecure"]);
        assert!(e.is_err(), "clap refuses both");
    }

    #[test]
    fn shipped_example_file_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/rtmpgate.toml");
        let c = Config::from_sources(&cli(&["--config", path])).unwrap();
        assert_eq!(c.listeners.len(), 2);
        assert_eq!(c.proxy_protocol_from.len(), 2);
    }

    #[test]
    fn overload_limits_from_flags_env_names_and_file() {
        use clap::CommandFactory;
        let c = Config::from_sources(&Cli::default()).unwrap();
        assert_eq!(c.overload.max_buffered, 512 * 1024 * 1024);
        assert_eq!(c.overload.max_connections, 0, "off by default");

        let dir = std::env::temp_dir().join(format!("rtmpgate-cfg-ovl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "overload_max_buffered = 1048576\noverload_max_connections = 500\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let c = Config::from_sources(&cli(&["--config", path])).unwrap();
        assert_eq!(c.overload.max_buffered, 1 << 20);
        assert_eq!(c.overload.max_connections, 500);
        let c = Config::from_sources(&cli(&[
            "--config",
            path,
            "--overload-max-buffered",
            "0",
            "--overload-max-connections",
            "7",
        ]))
        .unwrap();
        assert_eq!(c.overload.max_buffered, 0, "flag beats file; 0 = off");
        assert_eq!(c.overload.max_connections, 7);

        // The environment names follow the others (clap reads them).
        let cmd = Cli::command();
        let env = |id: &str| {
            cmd.get_arguments()
                .find(|a| a.get_id() == id)
                .and_then(|a| a.get_env())
                .and_then(|e| e.to_str())
                .map(str::to_owned)
        };
        assert_eq!(
            env("overload_max_buffered").as_deref(),
            Some("RTMPGATE_OVERLOAD_MAX_BUFFERED")
        );
        assert_eq!(
            env("overload_max_connections").as_deref(),
            Some("RTMPGATE_OVERLOAD_MAX_CONNECTIONS")
        );

        let e = Config::from_sources(&cli(&[
            "--max-connections",
            "100",
            "--overload-max-connections",
            "200",
        ]))
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("overload_max_connections") && msg.contains("lower it"),
            "{msg}"
        );
        let e = Cli::try_parse_from(["rtmpgate", "--overload-max-buffered", "lots"]).unwrap_err();
        assert!(e.to_string().contains("--overload-max-buffered"), "{e}");
    }

    #[test]
    fn duplicate_listeners_refused() {
        let e = Config::from_sources(&cli(&[
            "--listen",
            "rtmp://127.0.0.1:5000",
            "--listen",
            "rtmps://127.0.0.1:5000",
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }
}
