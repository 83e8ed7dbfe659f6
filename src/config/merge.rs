//! Merging flags/environment, the file and defaults into a [`Config`].
//!
//! Owns precedence (flags and `RTMPGATE_*` > file > built-in defaults) and
//! turning text (durations, URLs) into typed values. Cross-field checks are
//! [`super::validate`]'s.

use std::time::Duration;

use super::file::{FileConfig, OneOrMany, load_file};
use super::validate::{missing_pair, parse_spki_pin, parse_upstream};
use super::{
    CertPair, Config, ConfigError, Timeouts, TlsSource, TlsVersions, UpstreamPins, UpstreamTrust,
};
use crate::cli::Cli;
use crate::endpoint::UrlError;
use crate::overload::OverloadLimits;
use crate::proxy_protocol::parse_source;
use crate::routes::RouteRule;

impl Config {
    /// Merges flags/environment (already combined by clap), the optional
    /// config file, and defaults, then validates the result.
    pub fn from_sources(cli: &Cli) -> Result<Self, ConfigError> {
        let file = match &cli.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let defaults = Config::default();
        let auth = super::auth::merge(&cli.auth, &file)?;
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
        let write = dur(
            cli.write_timeout,
            &file.write_timeout,
            "write_timeout",
            t.write.unwrap_or_default(),
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
            write: (!write.is_zero()).then_some(write),
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
                    u.parse().map_err(|e: UrlError| ConfigError::Invalid {
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
        let pin_texts = if !cli.upstream_pin_sha256.is_empty() {
            cli.upstream_pin_sha256.clone()
        } else {
            file.upstream_pin_sha256.unwrap_or_default()
        };
        let upstream_pins = UpstreamPins {
            certs: cli.upstream_pin.clone().or(file.upstream_pin),
            spki_sha256: pin_texts
                .iter()
                .map(|p| parse_spki_pin(p))
                .collect::<Result<_, _>>()?,
        };
        if insecure && !upstream_pins.is_empty() {
            return Err(ConfigError::Invalid {
                setting: "upstream_pin",
                why: "--upstream-pin/--upstream-pin-sha256 and --upstream-insecure exclude each other"
                    .into(),
            });
        }
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
        let tls_versions = match cli.tls_versions.as_ref().or(file.tls_versions.as_ref()) {
            Some(list) => TlsVersions::parse(list).map_err(|why| ConfigError::Invalid {
                setting: "tls_versions",
                why,
            })?,
            None => defaults.tls_versions,
        };
        let config = Config {
            listeners,
            upstreams,
            upstream_trust,
            upstream_pins,
            upstream_hold_down,
            routes,
            tls,
            sni,
            tls_reload_interval,
            tls13_tickets: cli
                .tls13_tickets
                .or(file.tls13_tickets)
                .unwrap_or(defaults.tls13_tickets),
            tls_versions,
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
                r.open_rate.per_second = cli
                    .rtmpt_open_rate
                    .or(file.rtmpt_open_rate)
                    .unwrap_or(d.open_rate.per_second);
                r.open_rate.burst = cli
                    .rtmpt_open_burst
                    .or(file.rtmpt_open_burst)
                    .unwrap_or(d.open_rate.burst);
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
                match &file.proxy_protocol_from {
                    Some(entries) => entries
                        .iter()
                        .map(|e| parse_source(e))
                        .collect::<Result<_, _>>()
                        .map_err(|e| ConfigError::Invalid {
                            setting: "proxy_protocol_from",
                            why: e.to_string(),
                        })?,
                    None => defaults.proxy_protocol_from,
                }
            },
            auth,
            metrics_per_app: cli.auth.metrics_per_app || file.metrics_per_app.unwrap_or(false),
        };
        config.validate()?;
        Ok(config)
    }
}
