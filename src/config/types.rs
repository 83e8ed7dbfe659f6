//! Settings types of the rooms: plain data filled in by [`super::merge`]
//! and read by the room named on each.
//!
//! Owns no behaviour beyond defaults. The rooms import these types; this
//! file imports no room.

use std::path::PathBuf;
use std::time::Duration;

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

/// TLS versions the listeners offer (`--tls-versions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsVersions {
    /// TLS 1.2 offered.
    pub tls12: bool,
    /// TLS 1.3 offered.
    pub tls13: bool,
}

impl Default for TlsVersions {
    fn default() -> Self {
        Self {
            tls12: true,
            tls13: true,
        }
    }
}

impl TlsVersions {
    /// Parses a comma-separated list such as `1.2,1.3` or `1.3`.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut v = Self {
            tls12: false,
            tls13: false,
        };
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "1.2" => v.tls12 = true,
                "1.3" => v.tls13 = true,
                other => {
                    return Err(format!(
                        "`{other}` is not a TLS version rtmpgate offers: use 1.2 and/or 1.3, e.g. \"1.2,1.3\""
                    ));
                }
            }
        }
        if !(v.tls12 || v.tls13) {
            return Err("name at least one TLS version: 1.2, 1.3 or \"1.2,1.3\"".into());
        }
        Ok(v)
    }
}

/// A certificate file and its key file (`--sni-cert`/`--sni-key`, `[[sni]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    /// PEM chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Who vouches for `rtmps://` upstream certificates (read by
/// [`crate::upstream`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum UpstreamTrust {
    /// The Mozilla root programme (what browsers trust).
    #[default]
    PublicRoots,
    /// Only the CA certificates in this PEM file.
    PrivateCa(PathBuf),
    /// Nothing is verified. For tests against self-signed servers only.
    Insecure,
}

/// Origin certificates accepted for what they are rather than for who
/// signed them (`--upstream-pin`, `--upstream-pin-sha256`; read by
/// [`crate::upstream`]). Once any is given, the public roots are no longer
/// trusted: a certificate that matches no pin needs `--upstream-ca`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamPins {
    /// PEM file of certificates accepted when byte-identical to the
    /// origin's own (validity checked; chain and name not).
    pub certs: Option<PathBuf>,
    /// SHA-256 digests of accepted SubjectPublicKeyInfos (curl
    /// `--pinnedpubkey sha256//…`); validity checked, chain and name not.
    pub spki_sha256: Vec<[u8; 32]>,
}

impl UpstreamPins {
    /// Whether no pin is configured.
    pub fn is_empty(&self) -> bool {
        self.certs.is_none() && self.spki_sha256.is_empty()
    }
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
    /// A side that takes none of the bytes waiting for it for this long
    /// closes a relay; `None` = never.
    pub write: Option<Duration>,
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
            write: Some(Duration::from_secs(30)),
            drain: Duration::from_secs(30),
        }
    }
}

impl Timeouts {
    /// The relay's timers (idle, write).
    pub fn relay(&self) -> crate::relay::Timers {
        crate::relay::Timers {
            idle: self.idle,
            write: self.write,
        }
    }
}

/// RTMPT settings (read by [`crate::rtmpt`]).
#[derive(Debug, Clone, Copy)]
pub struct RtmptSettings {
    /// Session caps and expiry.
    pub limits: TableLimits,
    /// Per-session behaviour.
    pub session: SessionSettings,
    /// Largest `/send` body (Content-Length); larger gets 413.
    pub max_body: u64,
    /// Longest a client may take to send a request head.
    pub header_timeout: Duration,
    /// Believe `X-Forwarded-For` from trusted balancers.
    pub forwarded_for: bool,
    /// How fast one client may open sessions.
    pub open_rate: OpenRate,
}

impl Default for RtmptSettings {
    fn default() -> Self {
        Self {
            limits: TableLimits {
                max_sessions: 10_000,
                // One publisher or player holds one session; 32 leaves room
                // for a small NAT'd office while capping what one address
                // can pin (each session buffers up to 256 KiB plus its
                // upstream socket). README "Per-client caps".
                max_per_client: 32,
                expiry: Duration::from_secs(30),
                bind_client: true,
            },
            session: SessionSettings {
                // Longer than a frame interval, so an /idle rarely comes back
                // empty while a stream plays: ffmpeg sleeps 50 ms after every
                // empty reply. Measured (bench/rtmpt.sh): 20 ms left ffmpeg
                // players 10–27 ms (p95 +42 ms) behind plain RTMP; 200 ms
                // matched it and cut rtmpdump's cost to 0.8% of a core.
                long_poll: Duration::from_millis(200),
                max_reply: 64 * 1024,
                buffer_cap: 256 * 1024,
            },
            max_body: 16 * 1024 * 1024,
            header_timeout: Duration::from_secs(30),
            forwarded_for: false,
            // Every /open costs an upstream connection (maybe a TLS
            // handshake). The burst equals the per-client session cap, so a
            // client (a NAT'd office after a network blip) can always fill
            // its cap at once; 10 a second is far above any player's or
            // encoder's reconnects and bounds an /open-/close loop to 10
            // upstream connects a second. README "Per-client caps".
            open_rate: OpenRate {
                per_second: 10,
                burst: 32,
            },
        }
    }
}

/// A per-client token bucket on RTMPT `/open` (enforced by
/// [`crate::limits::OpenRateLimiter`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenRate {
    /// Opens a second one client may sustain; 0 = no limit.
    pub per_second: u32,
    /// Opens one client may make at once after a quiet spell (at least 1
    /// when `per_second` is set).
    pub burst: u32,
}

/// Limits the RTMPT session table enforces.
#[derive(Debug, Clone, Copy)]
pub struct TableLimits {
    /// Sessions in total.
    pub max_sessions: usize,
    /// Sessions opened from one client (IPv4 address or IPv6 /64).
    pub max_per_client: usize,
    /// A session with no request for this long is dropped.
    pub expiry: Duration,
    /// Whether a session may only be used from the address that opened it.
    pub bind_client: bool,
}

/// Per-RTMPT-session settings.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// How long an `/idle` with nothing to send may wait for server bytes.
    pub long_poll: Duration,
    /// Most server bytes in one reply.
    pub max_reply: usize,
    /// Most server bytes buffered before the upstream is no longer read.
    pub buffer_cap: usize,
}
