//! Command-line flags and their environment variables (clap derive).
//!
//! Owns only the surface: names, help texts, examples. Every field is an
//! `Option` so that `config` can tell "not given" from "given", which is what
//! makes the precedence flags → environment → file → defaults work. No
//! validation happens here.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::auth::LogKeyMode;
use crate::endpoint::{ListenUrl, UpstreamUrl};

const AFTER_HELP: &str = "\
Examples:
  # Front a local nginx-rtmp with RTMPS on 8443 (self-signed certificate):
  rtmpgate --upstream rtmp://127.0.0.1:1935

  # Real certificate, RTMPS on 443 and RTMP/RTMPT on 80:
  rtmpgate --listen rtmps://0.0.0.0:443 --listen rtmp://0.0.0.0:80 \\
           --tls-cert /etc/rtmpgate/fullchain.pem --tls-key /etc/rtmpgate/key.pem \\
           --upstream rtmp://10.0.0.5:1935

  # Kubernetes sidecar: everything from the environment
  RTMPGATE_LISTEN=rtmps://0.0.0.0:8443 RTMPGATE_UPSTREAM=rtmp://127.0.0.1:1935 rtmpgate

Precedence: command-line flags, then RTMPGATE_* environment variables, then
the --config file, then built-in defaults. Durations take units: 500ms, 10s, 5m.
Logging is set with RUST_LOG (e.g. RUST_LOG=rtmpgate=debug).";

/// How log lines are written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// rtmpgate: terminate RTMPS / RTMPT / RTMPTS and relay plain RTMP to any
/// RTMP server.
#[derive(Debug, Default, Parser)]
#[command(version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Where to accept clients, as a URL; repeat for several. rtmps:// serves
    /// RTMPS and RTMPTS, rtmp:// serves RTMP and RTMPT, rtmpt:// and
    /// rtmpts:// serve only the HTTP tunnel. Add ?proxy_protocol=1 behind a
    /// TCP load balancer that sends PROXY v1/v2 headers.
    /// [default: rtmps://0.0.0.0:8443 and rtmp://0.0.0.0:1936]
    /// Example: --listen rtmps://0.0.0.0:443
    #[arg(
        long = "listen",
        value_name = "URL",
        env = "RTMPGATE_LISTEN",
        value_delimiter = ','
    )]
    pub listen: Vec<ListenUrl>,

    /// The RTMP server to relay every stream to: rtmp:// or rtmps:// (TLS,
    /// e.g. an RTMPS-only ingest). Repeat for failover: tried in order, and
    /// one that fails is skipped for --upstream-hold-down.
    /// [default: rtmp://127.0.0.1:1935]
    /// Example: --upstream rtmp://nginx-rtmp:1935
    #[arg(
        long,
        value_name = "URL",
        env = "RTMPGATE_UPSTREAM",
        value_delimiter = ','
    )]
    pub upstream: Vec<UpstreamUrl>,

    /// Trust only the CA certificates in this PEM file for rtmps://
    /// upstreams (a private CA), instead of the public Mozilla roots. An
    /// origin presenting one of these very certificates as its own (a
    /// self-signed origin) is accepted after its validity and names are
    /// checked, as curl --cacert does.
    /// Example: --upstream-ca /etc/rtmpgate/origin-ca.pem
    #[arg(
        long,
        value_name = "FILE",
        env = "RTMPGATE_UPSTREAM_CA",
        conflicts_with = "upstream_insecure"
    )]
    pub upstream_ca: Option<PathBuf>,

    /// Accept an rtmps:// upstream whose certificate is byte-identical to
    /// one in this PEM file, e.g. an origin's self-signed certificate: its
    /// validity period is checked, its issuer and names are not. With a pin
    /// the public roots are not trusted; other certificates need --upstream-ca.
    /// Example: --upstream-pin /etc/rtmpgate/origin-cert.pem
    #[arg(
        long,
        value_name = "FILE",
        env = "RTMPGATE_UPSTREAM_PIN",
        conflicts_with = "upstream_insecure"
    )]
    pub upstream_pin: Option<PathBuf>,

    /// Accept an rtmps:// upstream whose certificate's public key
    /// (SubjectPublicKeyInfo) has this SHA-256, like curl --pinnedpubkey
    /// sha256//: 64 hex digits, or base64 (with or without sha256//).
    /// Repeat for several (key rotation). Validity checked, issuer and names
    /// not; the public roots are then not trusted. Get it with:
    /// openssl x509 -in cert.pem -pubkey -noout | openssl pkey -pubin -outform der | sha256sum
    /// Example: --upstream-pin-sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    #[arg(
        long,
        value_name = "HEX",
        env = "RTMPGATE_UPSTREAM_PIN_SHA256",
        value_delimiter = ',',
        conflicts_with = "upstream_insecure"
    )]
    pub upstream_pin_sha256: Vec<String>,

    /// DANGEROUS, for tests only: do not verify rtmps:// upstream
    /// certificates. Anyone on the path can then read and alter streams.
    #[arg(long, env = "RTMPGATE_UPSTREAM_INSECURE")]
    pub upstream_insecure: bool,

    /// How long an upstream that refused or timed out is skipped by new
    /// connections when others are configured. [default: 10s]
    #[arg(long, value_name = "DURATION", env = "RTMPGATE_UPSTREAM_HOLD_DOWN", value_parser = humantime::parse_duration)]
    pub upstream_hold_down: Option<Duration>,

    /// TLS certificate chain (PEM, leaf first). Without it a self-signed
    /// certificate is generated at start and a warning is logged.
    /// Example: --tls-cert /etc/rtmpgate/fullchain.pem
    #[arg(
        long,
        value_name = "FILE",
        env = "RTMPGATE_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC).
    /// Example: --tls-key /etc/rtmpgate/key.pem
    #[arg(
        long,
        value_name = "FILE",
        env = "RTMPGATE_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Extra certificate for SNI, chosen when the client's server name
    /// matches it; repeat with --sni-key for each. Clients without SNI or
    /// with another name get --tls-cert.
    /// Example: --sni-cert /etc/rtmpgate/b.example.pem --sni-key /etc/rtmpgate/b.example.key
    #[arg(
        long,
        value_name = "FILE",
        env = "RTMPGATE_SNI_CERT",
        value_delimiter = ',',
        requires = "tls_cert"
    )]
    pub sni_cert: Vec<PathBuf>,

    /// Key for each --sni-cert, in the same order.
    #[arg(
        long,
        value_name = "FILE",
        env = "RTMPGATE_SNI_KEY",
        value_delimiter = ','
    )]
    pub sni_key: Vec<PathBuf>,

    /// How often the certificate and key files are checked for new contents
    /// (Kubernetes Secret and cert-manager updates); SIGHUP reloads at once.
    /// [default: 10s]
    #[arg(long, value_name = "DURATION", env = "RTMPGATE_TLS_RELOAD_INTERVAL", value_parser = humantime::parse_duration)]
    pub tls_reload_interval: Option<Duration>,

    /// TLS 1.3 session tickets sent per handshake. 0 (the default) keeps
    /// librtmp/GnuTLS clients such as rtmpdump working; RTMP connections are
    /// long-lived, so resumption gains little. [default: 0]
    #[arg(long, value_name = "N", env = "RTMPGATE_TLS13_TICKETS")]
    pub tls13_tickets: Option<usize>,

    /// TLS versions offered to clients, comma-separated: 1.2, 1.3 or
    /// 1.2,1.3. [default: 1.2,1.3]
    #[arg(long, value_name = "LIST", env = "RTMPGATE_TLS_VERSIONS")]
    pub tls_versions: Option<String>,

    /// Read settings from a TOML file (keys as the long flags, with
    /// underscores: listen = ["rtmps://0.0.0.0:8443"], tls_cert = "...").
    /// Example: --config /etc/rtmpgate/rtmpgate.toml
    #[arg(long, value_name = "FILE", env = "RTMPGATE_CONFIG")]
    pub config: Option<PathBuf>,

    /// Longest a client may take to finish the TLS handshake. [default: 10s]
    #[arg(long, value_name = "DURATION", env = "RTMPGATE_TLS_HANDSHAKE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub tls_handshake_timeout: Option<Duration>,

    /// Longest a client may take to send its first bytes (RTMP C0/C1 or an
    /// HTTP request line) after connecting. [default: 10s]
    #[arg(long, value_name = "DURATION", env = "RTMPGATE_HANDSHAKE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub handshake_timeout: Option<Duration>,

    /// Longest to wait for the upstream TCP connect. [default: 5s]
    #[arg(long, value_name = "DURATION", env = "RTMPGATE_CONNECT_TIMEOUT", value_parser = humantime::parse_duration)]
    pub connect_timeout: Option<Duration>,

    /// Close a relayed connection after this long with no byte in either
    /// direction; 0s disables. [default: 5m]
    #[arg(long, value_name = "DURATION", env = "RTMPGATE_IDLE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub idle_timeout: Option<Duration>,

    /// Close a relayed connection when one side takes none of the bytes
    /// waiting for it for this long (a stalled player, a zero receive
    /// window) while the other keeps sending; 0s disables. [default: 30s]
    #[arg(long, value_name = "DURATION", env = "RTMPGATE_WRITE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub write_timeout: Option<Duration>,

    /// On SIGTERM/SIGINT: stop accepting, then let live streams run this long
    /// before closing them. A second signal exits at once. [default: 30s]
    #[arg(long, value_name = "DURATION", env = "RTMPGATE_DRAIN_TIMEOUT", value_parser = humantime::parse_duration)]
    pub drain_timeout: Option<Duration>,

    /// Most client connections served at once; further clients wait in the
    /// kernel's accept queue. [default: 10000]
    #[arg(long, value_name = "N", env = "RTMPGATE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Overload: when this many bytes are buffered on behalf of connections
    /// (RTMPT session buffers, relay copy buffers), stop accepting and
    /// answer new RTMPT sessions 503 until the total is below 90% again;
    /// live streams go on. 0 = off. [default: 536870912 (512 MiB)]
    /// Example: --overload-max-buffered 268435456
    #[arg(long, value_name = "BYTES", env = "RTMPGATE_OVERLOAD_MAX_BUFFERED")]
    pub overload_max_buffered: Option<u64>,

    /// Overload: when this many client connections are served, stop
    /// accepting and answer new RTMPT sessions 503 until fewer than 90% are
    /// left; live streams go on. Unlike --max-connections it also sheds new
    /// RTMPT sessions and resumes with hysteresis. 0 = off. [default: 0]
    /// Example: --overload-max-connections 8000
    #[arg(long, value_name = "N", env = "RTMPGATE_OVERLOAD_MAX_CONNECTIONS")]
    pub overload_max_connections: Option<usize>,

    /// Send a PROXY protocol header to the upstream on every connection so
    /// it sees the real client address (nginx-rtmp parses only v1, on a
    /// `listen … proxy_protocol;` port). Off unless set.
    /// Example: --upstream-proxy-protocol v1
    #[arg(
        long,
        value_name = "VERSION",
        env = "RTMPGATE_UPSTREAM_PROXY_PROTOCOL",
        value_enum
    )]
    pub upstream_proxy_protocol: Option<crate::proxy_protocol::ProxyVersion>,

    /// Your load balancers: addresses or CIDR ranges whose PROXY headers
    /// (on listeners with `?proxy_protocol=1`) and, with
    /// --rtmpt-forwarded-for, X-Forwarded-For headers are believed;
    /// PROXY listeners refuse connections from elsewhere. Name only the
    /// balancers: anyone listed can claim any client address. No ports.
    /// [default: loopback only, 127.0.0.0/8,::1]
    /// Example: --proxy-protocol-from 10.0.4.17,10.0.4.18
    #[arg(
        long,
        value_name = "CIDR",
        env = "RTMPGATE_PROXY_PROTOCOL_FROM",
        value_delimiter = ',',
        value_parser = crate::proxy_protocol::parse_source
    )]
    pub proxy_protocol_from: Vec<ipnet::IpNet>,

    /// Most client connections at once from one client (an IPv4 address,
    /// or an IPv6 /64: one subscriber's prefix); further ones are closed at
    /// accept with a log line. Behind a balancer that sends no PROXY header
    /// every client shares its address: raise this or use 0 (no cap).
    /// [default: 64]
    #[arg(long, value_name = "N", env = "RTMPGATE_MAX_CONNECTIONS_PER_CLIENT")]
    pub max_connections_per_client: Option<usize>,

    /// RTMPT: how long an /idle poll with nothing to send waits for server
    /// bytes before answering empty. Removes ffmpeg's 50 ms sleeps while
    /// data flows and stops librtmp busy-polling; 0s answers at once.
    /// [default: 200ms]
    #[arg(long, value_name = "DURATION", env = "RTMPGATE_RTMPT_LONG_POLL", value_parser = humantime::parse_duration)]
    pub rtmpt_long_poll: Option<Duration>,

    /// RTMPT: longest a client may take to send a request head (slowloris
    /// defence; also closes idle keep-alive connections). [default: 30s]
    #[arg(long, value_name = "DURATION", env = "RTMPGATE_RTMPT_HEADER_TIMEOUT", value_parser = humantime::parse_duration)]
    pub rtmpt_header_timeout: Option<Duration>,

    /// RTMPT: drop a session after this long without any request (clients
    /// that are killed never send /close). [default: 30s]
    #[arg(long, value_name = "DURATION", env = "RTMPGATE_RTMPT_SESSION_TIMEOUT", value_parser = humantime::parse_duration)]
    pub rtmpt_session_timeout: Option<Duration>,

    /// RTMPT: most sessions open at once. [default: 10000]
    #[arg(long, value_name = "N", env = "RTMPGATE_RTMPT_MAX_SESSIONS")]
    pub rtmpt_max_sessions: Option<usize>,

    /// RTMPT: most sessions open at once from one client (an IPv4
    /// address, or an IPv6 /64). [default: 32]
    #[arg(long, value_name = "N", env = "RTMPGATE_RTMPT_MAX_SESSIONS_PER_CLIENT")]
    pub rtmpt_max_sessions_per_client: Option<usize>,

    /// RTMPT: /open requests a second one client (an IPv4 address, or an
    /// IPv6 /64) may sustain; more get 429 before any upstream connection
    /// is made. Each /open costs an upstream connect (maybe a TLS
    /// handshake), and failed connects hold an upstream down for everyone.
    /// 0 turns the limit off. [default: 10]
    #[arg(long, value_name = "N", env = "RTMPGATE_RTMPT_OPEN_RATE")]
    pub rtmpt_open_rate: Option<u32>,

    /// RTMPT: /open requests one client may make at once after a quiet
    /// spell, on top of --rtmpt-open-rate. [default: 32]
    #[arg(long, value_name = "N", env = "RTMPGATE_RTMPT_OPEN_BURST")]
    pub rtmpt_open_burst: Option<u32>,

    /// RTMPT: largest /send body in bytes; larger gets 413. Bodies are
    /// streamed, so this bounds abuse, not memory. [default: 16777216]
    #[arg(long, value_name = "BYTES", env = "RTMPGATE_RTMPT_MAX_BODY")]
    pub rtmpt_max_body: Option<u64>,

    /// RTMPT: behind an HTTP balancer that cannot send PROXY headers (nginx,
    /// a Kubernetes Gateway), take the client address from X-Forwarded-For,
    /// believed only from --proxy-protocol-from ranges. It then counts for
    /// per-client session caps, session binding, logs and PROXY headers.
    #[arg(long, env = "RTMPGATE_RTMPT_FORWARDED_FOR")]
    pub rtmpt_forwarded_for: bool,

    /// RTMPT: prefix session ids with `TAG.` so a load balancer can route
    /// /send, /idle and /close to this replica by path prefix, with no
    /// shared state (e.g. the pod name of a StatefulSet). 1 to 29 of
    /// A-Z a-z 0-9 - _.
    /// Example: --replica-tag rtmpgate-0
    #[arg(long, value_name = "TAG", env = "RTMPGATE_REPLICA_TAG")]
    pub replica_tag: Option<String>,

    /// RTMPT: let a session be used from any client address, not only the
    /// one that opened it (for forward proxies with several egress
    /// addresses). Ids stay 128-bit random either way.
    #[arg(long, env = "RTMPGATE_RTMPT_ANY_CLIENT_ADDRESS")]
    pub rtmpt_any_client_address: bool,

    /// Stream authorization (publish, and with --auth-play play).
    #[command(flatten)]
    pub auth: AuthArgs,

    /// Serve /healthz, /readyz and /metrics (Prometheus) on this address.
    /// Off unless set; bind it to a private address (no authentication).
    /// Example: --admin 127.0.0.1:9100
    #[arg(long, value_name = "ADDR", env = "RTMPGATE_ADMIN")]
    pub admin: Option<std::net::SocketAddr>,

    /// Log format: `text` (human-readable) or `json` (one object per line,
    /// for log pipelines). Level from RUST_LOG. [default: text]
    #[arg(long, value_name = "FORMAT", env = "RTMPGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Validate the configuration (URLs, certificate and key, upstream CA
    /// and pin files) and exit, like `nginx -t`. Binds no port.
    #[arg(long)]
    pub check_config: bool,
}

/// Flags of stream authorization and stream names in logs.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuthArgs {
    /// Authorize every RTMP publish (and with --auth-play every play) with
    /// an nginx-rtmp `on_publish` style webhook: a form POST with call,
    /// app, name, addr, tcurl, flashver, protocol, sni and the stream
    /// name's query arguments; 2xx allows, anything else denies. http://
    /// only. Example: --auth-webhook http://127.0.0.1:8080/on_publish
    #[arg(long, value_name = "URL", env = "RTMPGATE_AUTH_WEBHOOK")]
    pub auth_webhook: Option<String>,

    /// Longest a webhook decision may take; then the stream is denied
    /// (allowed with --auth-fail-open). [default: 5s]
    #[arg(long, value_name = "DURATION", env = "RTMPGATE_AUTH_TIMEOUT", value_parser = humantime::parse_duration)]
    pub auth_timeout: Option<Duration>,

    /// Allow streams when the webhook times out, is unreachable or answers
    /// 5xx (a 4xx still denies). Default: deny (fail closed).
    #[arg(long, env = "RTMPGATE_AUTH_FAIL_OPEN")]
    pub auth_fail_open: bool,

    /// Also authorize `play` (by default only `publish` is checked).
    #[arg(long, env = "RTMPGATE_AUTH_PLAY")]
    pub auth_play: bool,

    /// Static stream keys: a file of `app/name` or `app/name?key=VALUE`
    /// lines (`#` comments), reloaded with the certificates and on SIGHUP.
    #[arg(long, value_name = "FILE", env = "RTMPGATE_AUTH_KEYS")]
    pub auth_keys: Option<PathBuf>,

    /// Signed stream URLs: a file holding an HMAC-SHA256 secret; a stream
    /// name `name?expires=UNIX&sig=HEX` (sig over `app/name/expires`) is
    /// allowed until it expires.
    #[arg(long, value_name = "FILE", env = "RTMPGATE_AUTH_HMAC_SECRET")]
    pub auth_hmac_secret: Option<PathBuf>,

    /// How long a webhook allow is reused for the same client and stream,
    /// so a reconnecting encoder does not hammer the hook; 0s disables.
    /// [default: 5s]
    #[arg(long, value_name = "DURATION", env = "RTMPGATE_AUTH_CACHE_TTL", value_parser = humantime::parse_duration)]
    pub auth_cache_ttl: Option<Duration>,

    /// Webhook requests in flight at once; more wait within
    /// --auth-timeout. [default: 64]
    #[arg(long, value_name = "N", env = "RTMPGATE_AUTH_MAX_IN_FLIGHT")]
    pub auth_max_in_flight: Option<usize>,

    /// How stream names (often the stream key, a secret) appear in logs:
    /// `hash` (a short keyed hash, stable while the process runs), `plain`
    /// or `off`. [default: hash]
    #[arg(long, value_name = "MODE", env = "RTMPGATE_LOG_STREAM_KEY")]
    pub log_stream_key: Option<LogKeyMode>,

    /// Label bytes and active streams by `connect` app in /metrics
    /// (`rtmpgate_app_bytes_total`, `rtmpgate_app_streams_active`); at most
    /// 100 apps, never stream names.
    #[arg(long, env = "RTMPGATE_METRICS_PER_APP")]
    pub metrics_per_app: bool,
}
