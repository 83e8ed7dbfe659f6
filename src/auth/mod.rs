//! Authorizing an RTMP `publish` or `play` before the origin sees it.
//!
//! Owns the rules (static keys file, signed URLs, nginx-rtmp compatible
//! webhook), the short cache of allow decisions, the stream-key form used in
//! logs and the `rtmpgate_auth_*` metrics. Does *not* own reading RTMP
//! commands (the caller builds an [`AuthRequest`]), answering the client, the
//! flags (the caller fills [`AuthSettings`]) or the reload timer (the caller
//! calls [`Authorizer::reload`]). A leaf: it imports nothing from the rest of
//! the crate.
//!
//! # How the rules combine
//!
//! [`Authorizer::authorize`] decides in this order; the first step that
//! decides wins:
//!
//! 1. A `play` while [`AuthSettings::check_play`] is off → allow (`no_rule`).
//! 2. No keys file, no HMAC secret and no webhook configured → allow
//!    (`no_rule`): auth is off.
//! 3. Local rules (no I/O): a matching line of the keys file → allow
//!    (`keys`); a valid, unexpired `?expires=…&sig=…` → allow (`hmac`).
//!    A local rule that does not match never denies by itself while a
//!    webhook is configured: the webhook gets the last word.
//! 4. A webhook allow cached for this (call, app, name, args, addr) within
//!    [`AuthSettings::cache_ttl`] → allow (`cache`).
//! 5. The webhook: a 2xx → allow (`webhook`, and cached). A 3xx (nginx-rtmp
//!    reads it as "redirect to another name", which an edge cannot do) or a
//!    4xx → deny (`webhook`). A timeout, a refused or failed connection, all
//!    in-flight slots busy for the whole timeout, or a 5xx → deny
//!    (`webhook`), or with [`AuthSettings::fail_open`] allow (`fail_open`,
//!    not cached).
//! 6. No webhook: deny, by the local rule that was tried (`hmac` when the
//!    request carried `sig`/`expires` and a secret is set, else `keys`).
//!
//! Denies are never cached. The webhook is plain `http://` only: put a
//! sidecar or a local reverse proxy in front of an `https` hook.

mod authorizer;
mod cache;
mod keys;
pub mod metrics;
mod signed;
mod webhook;

#[cfg(test)]
mod authorizer_tests;
#[cfg(test)]
mod webhook_tests;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use authorizer::Authorizer;
pub use metrics::AuthMetrics;
pub use signed::sign;

/// Flag names used in error messages; the CLI is expected to use them.
pub mod flags {
    /// Webhook URL.
    pub const WEBHOOK: &str = "--auth-webhook";
    /// Webhook timeout.
    pub const TIMEOUT: &str = "--auth-timeout";
    /// Static keys file.
    pub const KEYS: &str = "--auth-keys";
    /// HMAC secret file for signed URLs.
    pub const HMAC_SECRET: &str = "--auth-hmac-secret";
    /// Concurrent webhook requests.
    pub const MAX_IN_FLIGHT: &str = "--auth-max-in-flight";
}

/// How a stream name (often the stream key) appears in logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogKeyMode {
    /// A short keyed hash (`h:` and 12 hex digits), stable within one
    /// process only: lines can be correlated, the name not recovered.
    #[default]
    Hash,
    /// The name as sent.
    Plain,
    /// Not logged at all.
    Off,
}

impl LogKeyMode {
    /// `hash`, `plain` or `off`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogKeyMode::Hash => "hash",
            LogKeyMode::Plain => "plain",
            LogKeyMode::Off => "off",
        }
    }
}

impl std::str::FromStr for LogKeyMode {
    type Err = String;

    /// Parses `hash`, `plain` or `off` (any case), for the flag.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "hash" => Ok(LogKeyMode::Hash),
            "plain" => Ok(LogKeyMode::Plain),
            "off" => Ok(LogKeyMode::Off),
            _ => Err(format!(
                "unknown stream-key log mode {s:?}; use hash, plain or off"
            )),
        }
    }
}

/// What the caller configured; plain data, validated by [`Authorizer::build`].
#[derive(Clone)]
pub struct AuthSettings {
    /// `http://host:port/path` of an nginx-rtmp style `on_publish` hook.
    pub webhook_url: Option<String>,
    /// Bound on one webhook decision, waiting for a slot included.
    pub timeout: Duration,
    /// Allow when the webhook cannot answer (timeout, unreachable, 5xx).
    pub fail_open: bool,
    /// Also authorize `play` (otherwise only `publish` is checked).
    pub check_play: bool,
    /// File of `app/name` or `app/name?key=VALUE` lines.
    pub keys_file: Option<PathBuf>,
    /// File whose contents are the HMAC-SHA256 secret of signed URLs.
    pub hmac_secret_file: Option<PathBuf>,
    /// How long a webhook allow is reused; zero disables the cache.
    pub cache_ttl: Duration,
    /// How stream names appear in logs ([`Authorizer::log_name`]).
    pub log_stream_key: LogKeyMode,
    /// Webhook requests in flight at once; more wait (within the timeout).
    pub max_in_flight: usize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            webhook_url: None,
            timeout: Duration::from_secs(5),
            fail_open: false,
            check_play: false,
            keys_file: None,
            hmac_secret_file: None,
            cache_ttl: Duration::from_secs(5),
            log_stream_key: LogKeyMode::Hash,
            max_in_flight: 64,
        }
    }
}

impl fmt::Debug for AuthSettings {
    /// The webhook URL is shown without user info and query, which may hold
    /// tokens; the files are only paths, never their contents.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field("webhook_url", &self.webhook_url.as_deref().map(redact_url))
            .field("timeout", &self.timeout)
            .field("fail_open", &self.fail_open)
            .field("check_play", &self.check_play)
            .field("keys_file", &self.keys_file)
            .field("hmac_secret_file", &self.hmac_secret_file)
            .field("cache_ttl", &self.cache_ttl)
            .field("log_stream_key", &self.log_stream_key)
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}

/// `scheme://host[:port]/path` of `url`, dropping user info and query.
pub(crate) fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = authority.rsplit('@').next().unwrap_or("");
    let hidden = if authority.contains('@') {
        "<user>@"
    } else {
        ""
    };
    let query = if url.contains('?') { "?<query>" } else { "" };
    format!("{scheme}://{hidden}{host}{path}{query}")
}

/// Which RTMP command is being authorized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// `publish`: a client sends a stream.
    Publish,
    /// `play`: a client receives a stream.
    Play,
}

impl Call {
    /// `publish` or `play`, as in nginx-rtmp's `call=` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Call::Publish => "publish",
            Call::Play => "play",
        }
    }
}

/// One publish or play to authorize; owned plain data. Its `Debug` hides
/// the stream name and the argument values (stream keys, signatures).
#[derive(Clone, PartialEq, Eq)]
pub struct AuthRequest {
    /// publish or play.
    pub call: Call,
    /// The `app` of the RTMP `connect`.
    pub app: String,
    /// The stream name, without its `?query`.
    pub name: String,
    /// The stream name's query, decoded, in the order sent.
    pub args: Vec<(String, String)>,
    /// The real client's address (after PROXY protocol / forwarding).
    pub addr: IpAddr,
    /// The `tcUrl` of the RTMP `connect`.
    pub tcurl: String,
    /// The `flashVer` of the RTMP `connect`.
    pub flashver: String,
    /// `rtmp`, `rtmps`, `rtmpt` or `rtmpts`.
    pub protocol: &'static str,
    /// TLS server name the client asked for, if any.
    pub sni: Option<String>,
}

impl fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let arg_names: Vec<&str> = self.args.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("AuthRequest")
            .field("call", &self.call)
            .field("app", &self.app)
            .field("name", &"<hidden>")
            .field("arg_names", &arg_names)
            .field("addr", &self.addr)
            .field("tcurl", &self.tcurl)
            .field("flashver", &self.flashver)
            .field("protocol", &self.protocol)
            .field("sni", &self.sni)
            .finish()
    }
}

impl AuthRequest {
    /// The first value of query argument `key`.
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Which step decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// The static keys file.
    Keys,
    /// A signed URL.
    Hmac,
    /// The webhook's answer (or failure, failing closed).
    Webhook,
    /// A cached webhook allow.
    Cache,
    /// The webhook failed and `fail_open` allowed.
    FailOpen,
    /// No rule applies (auth off, or play not checked).
    NoRule,
}

impl Rule {
    /// Metric label and log value: `keys`, `hmac`, `webhook`, `cache`,
    /// `fail_open` or `no_rule`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Keys => "keys",
            Rule::Hmac => "hmac",
            Rule::Webhook => "webhook",
            Rule::Cache => "cache",
            Rule::FailOpen => "fail_open",
            Rule::NoRule => "no_rule",
        }
    }
}

/// The outcome of [`Authorizer::authorize`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the command may go on to the origin.
    pub allowed: bool,
    /// Which step decided.
    pub rule: Rule,
    /// Short reason for the log and the client's `onStatus` description;
    /// never contains a key, signature or secret.
    pub reason: String,
    /// Time the decision took.
    pub latency: Duration,
}

/// Why [`Authorizer::build`] or [`Authorizer::reload`] failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The webhook URL does not parse or lacks a host.
    #[error(
        "{flag} {url}: not a usable URL ({reason}); give one like http://127.0.0.1:8080/on_publish",
        flag = flags::WEBHOOK
    )]
    WebhookUrl {
        /// The URL, user info and query removed.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The webhook URL is not `http://`.
    #[error(
        "{flag} {url}: only http:// is supported; put a local proxy or sidecar in front of an https hook",
        flag = flags::WEBHOOK
    )]
    WebhookScheme {
        /// The URL, user info and query removed.
        url: String,
    },
    /// A setting is out of range.
    #[error("{flag}: {reason}")]
    Setting {
        /// The flag.
        flag: &'static str,
        /// What to give instead.
        reason: &'static str,
    },
    /// A configured file could not be read.
    #[error("{flag} {}: cannot read: {source}; check the path and permissions", path.display())]
    Read {
        /// The flag naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line of the keys file is malformed.
    #[error(
        "{flag} {}:{line}: {reason}; lines are `app/name` or `app/name?key=VALUE`, `#` starts a comment",
        path.display(),
        flag = flags::KEYS
    )]
    KeysSyntax {
        /// The keys file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line (never the line itself: it holds a key).
        reason: &'static str,
    },
    /// The HMAC secret file is empty (after trimming the trailing newline).
    #[error("{flag} {}: the secret is empty; write a long random secret into the file", path.display(), flag = flags::HMAC_SECRET)]
    EmptySecret {
        /// The secret file.
        path: PathBuf,
    },
    /// The OS random source failed (needed for the log hash key).
    #[error("cannot get random bytes from the OS for the stream-key log hash: {0}")]
    Random(String),
}
