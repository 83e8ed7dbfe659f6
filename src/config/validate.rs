//! Cross-field checks of a merged [`Config`], and the errors that say what
//! to change.
//!
//! Owns every rule that no single flag's parser can check (caps, durations
//! against each other, replica tags).

use super::{Config, ConfigError};
use crate::endpoint::{UpstreamUrl, UrlError};

/// Longest replica tag: `TAG.` plus 32 hex digits stays within 62 bytes
/// (ffmpeg keeps at most 63 bytes of an id; librtmp drops the last byte).
pub const MAX_TAG_LEN: usize = 29;

/// Whether `tag` can prefix session ids: 1 to [`MAX_TAG_LEN`] URL-safe
/// characters without a dot (the dot separates tag and random part).
pub fn valid_tag(tag: &str) -> bool {
    (1..=MAX_TAG_LEN).contains(&tag.len())
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Config {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
            && !valid_tag(tag)
        {
            return Err(ConfigError::Invalid {
                setting: "replica_tag",
                why: format!(
                    "`{tag}` must be 1 to {} characters of A-Z a-z 0-9 - _ (no dot)",
                    MAX_TAG_LEN
                ),
            });
        }
        if self.rtmpt.limits.max_sessions == 0 || self.rtmpt.limits.max_per_client == 0 {
            return Err(ConfigError::Invalid {
                setting: "rtmpt_max_sessions",
                why: "session caps must be at least 1".into(),
            });
        }
        if self.rtmpt.open_rate.per_second > 0 && self.rtmpt.open_rate.burst == 0 {
            return Err(ConfigError::Invalid {
                setting: "rtmpt_open_burst",
                why: "must be at least 1 while --rtmpt-open-rate is set (0 would refuse every \
                      /open); set --rtmpt-open-rate 0 to turn the limit off"
                    .into(),
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

pub(super) fn parse_upstream(text: &str) -> Result<UpstreamUrl, ConfigError> {
    text.parse().map_err(|e: UrlError| ConfigError::Invalid {
        setting: "upstream",
        why: e.to_string(),
    })
}

pub(super) fn missing_pair(setting: &'static str, flag: &str) -> ConfigError {
    ConfigError::Invalid {
        setting,
        why: format!("a certificate needs both --tls-cert and --tls-key; add {flag}"),
    }
}

/// Reads one `--upstream-pin-sha256`: the SHA-256 of a SubjectPublicKeyInfo
/// as 64 hex digits (colons allowed, as `openssl dgst -c` prints them) or as
/// base64, with or without curl's `sha256//` prefix.
pub(super) fn parse_spki_pin(text: &str) -> Result<[u8; 32], ConfigError> {
    use base64::Engine as _;
    let t = text.trim();
    let t = t.strip_prefix("sha256//").unwrap_or(t);
    let hex: Vec<u8> = t.bytes().filter(|b| *b != b':').collect();
    let bytes = if hex.len() == 64 && hex.iter().all(u8::is_ascii_hexdigit) {
        hex.chunks(2)
            .map(|pair| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
    } else {
        base64::engine::general_purpose::STANDARD.decode(t).ok()
    };
    bytes
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| ConfigError::Invalid {
            setting: "upstream_pin_sha256",
            why: format!(
                "`{text}` is not a SHA-256 digest: give 64 hex digits or 44 characters of \
                 base64, e.g. from `openssl x509 -in cert.pem -pubkey -noout | openssl pkey \
                 -pubin -outform der | sha256sum`"
            ),
        })
}
