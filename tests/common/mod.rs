//! Shared harness for rtmpgate's integration tests.
//!
//! Everything runs on loopback with ephemeral ports; nothing here sleeps to
//! wait for a server: listeners are bound before their address is handed out.
//! Every wait is bounded ([`within`]) and panics with a message saying what
//! it was waiting for.
//!
//! * [`test_pki`], [`client_config`]: a certificate generated once per test
//!   run and a rustls client that trusts exactly that certificate.
//! * [`start_gateway`] → [`TestGateway`]: rtmpgate in-process on port 0.
//! * [`TestUpstream`] → [`UpstreamConn`]: an RTMP server (or a raw TCP sink)
//!   that records what it receives and obeys send / shutdown / reset.
//! * [`rtmp_client_handshake`], [`RtmpMessage`], [`amf0`]: the client side of
//!   the RTMP handshake and a chunk encoder/decoder for realistic traffic.

#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rtmpgate::Gateway;
use rtmpgate::config::{Config, TlsSource};
use rtmpgate::endpoint::ListenScheme;
use rtmpgate::metrics::Metrics;
use rustls::RootCertStore;
use rustls::client::{ClientConfig, Resumption};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

// ---------------------------------------------------------------------------
// Bounded waiting
// ---------------------------------------------------------------------------

/// Upper bound for one step of a test (a connect, a handshake, a small
/// exchange). Generous: only a hang should ever reach it.
pub const STEP: Duration = Duration::from_secs(10);

/// Upper bound for bulk transfers and many-connection scenarios.
pub const BULK: Duration = Duration::from_secs(25);

/// Awaits `fut`, panicking with `what` if it takes longer than `limit`.
pub async fn within<F: Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

// ---------------------------------------------------------------------------
// Deterministic test data
// ---------------------------------------------------------------------------

/// `len` pseudo-random bytes determined by `seed` (splitmix64), so payloads
/// are distinct per seed and reproducible.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A seed that differs between calls and between test runs.
pub fn fresh_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    nanos ^ (u64::from(std::process::id()) << 32) ^ COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// Asserts two byte strings are equal without dumping megabytes on failure.
#[track_caller]
pub fn assert_bytes_eq(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let first_diff = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let show = |b: &[u8]| {
        let end = (first_diff + 16).min(b.len());
        format!("{:02x?}", &b[first_diff.min(b.len())..end])
    };
    panic!(
        "{what}: bytes differ: got {} bytes, want {} bytes, first difference at offset {first_diff} \
         (got {}, want {})",
        got.len(),
        want.len(),
        show(got),
        show(want)
    );
}

// ---------------------------------------------------------------------------
// Temporary directories
// ---------------------------------------------------------------------------

/// A unique directory under the system temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `rtmpgate-test-<tag>-<pid>-<unique>`.
    pub fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "rtmpgate-test-{tag}-{}-{:x}",
            std::process::id(),
            fresh_seed()
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------
// Certificates and the TLS client
// ---------------------------------------------------------------------------

/// The server name every test client asks for; the certificate also has an
/// IP SAN for 127.0.0.1.
pub const SERVER_NAME: &str = "localhost";

/// One self-signed certificate per test run (per test binary).
pub struct TestPki {
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Private key, PEM (PKCS#8).
    pub key_pem: String,
    /// Certificate, DER, for the clients' root store.
    pub cert_der: CertificateDer<'static>,
}

impl TestPki {
    /// Writes `cert.pem` and `key.pem` into `dir`, returning their paths.
    pub fn write_to(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, &self.cert_pem).expect("write cert.pem");
        std::fs::write(&key, &self.key_pem).expect("write key.pem");
        (cert, key)
    }
}

/// The test run's certificate, generated on first use.
pub fn test_pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| {
        let generated =
            rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string(), "127.0.0.1".into()])
                .expect("rcgen generates a certificate");
        TestPki {
            cert_pem: generated.cert.pem(),
            key_pem: generated.signing_key.serialize_pem(),
            cert_der: generated.cert.der().clone(),
        }
    })
}

/// A rustls client config that trusts exactly the test certificate, with
/// the given resumption (session/ticket store) settings.
pub fn client_config_with(resumption: Resumption) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(test_pki().cert_der.clone())
        .expect("test certificate is a valid trust anchor");
    let mut config = ClientConfig::builder_with_provider(rtmpgate::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("the crypto provider supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = resumption;
    Arc::new(config)
}

/// A client config trusting the test certificate that offers only TLS 1.2.
pub fn client_config_tls12() -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(test_pki().cert_der.clone())
        .expect("test certificate is a valid trust anchor");
    let config = ClientConfig::builder_with_provider(rtmpgate::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("the crypto provider supports TLS 1.2")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A rustls client config that trusts exactly the test certificate.
pub fn client_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    Arc::clone(CONFIG.get_or_init(|| client_config_with(Resumption::default())))
}

/// A loopback port that refuses every connect for as long as this lives.
///
/// The socket is bound but never listens, so the kernel answers SYNs with a
/// reset, and holding the bind keeps another test from taking the port (a
/// bind-then-drop port can be handed to a parallel test's listener).
pub struct RefusingPort {
    _socket: socket2::Socket,
    addr: SocketAddr,
}

impl RefusingPort {
    pub fn new() -> Self {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("loopback");
        socket.bind(&any.into()).expect("bind a loopback port");
        let addr = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .expect("bound address");
        Self {
            _socket: socket,
            addr,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Default for RefusingPort {
    fn default() -> Self {
        Self::new()
    }
}

/// TCP connect to `addr`, bounded.
pub async fn connect_tcp(addr: SocketAddr) -> TcpStream {
    within(STEP, "TCP connect to the gateway", TcpStream::connect(addr))
        .await
        .unwrap_or_else(|e| panic!("TCP connect to {addr}: {e}"))
}

/// TCP connect plus TLS handshake with `config`, bounded.
pub async fn connect_tls_with(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> io::Result<TlsStream<TcpStream>> {
    connect_tls_as(addr, config, SERVER_NAME).await
}

/// TCP connect plus TLS handshake, verifying the certificate for
/// `server_name` (a DNS name is sent as SNI; an IP address sends no SNI).
pub async fn connect_tls_as(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    server_name: &str,
) -> io::Result<TlsStream<TcpStream>> {
    let tcp = connect_tcp(addr).await;
    let name = ServerName::try_from(server_name.to_string()).expect("valid server name");
    within(
        STEP,
        "TLS handshake with the gateway",
        TlsConnector::from(config).connect(name, tcp),
    )
    .await
}

/// An RTMPS client connection (TLS established, no RTMP byte sent yet).
pub async fn connect_rtmps(addr: SocketAddr) -> TlsStream<TcpStream> {
    connect_tls_with(addr, client_config())
        .await
        .unwrap_or_else(|e| panic!("TLS handshake with {addr}: {e}"))
}

/// The bytes of a TLS ClientHello as a real rustls client sends it.
pub fn client_hello_bytes() -> Vec<u8> {
    let name = ServerName::try_from(SERVER_NAME).expect("valid server name");
    let mut conn = rustls::ClientConnection::new(client_config(), name).expect("client connection");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out)
            .expect("writing to a Vec cannot fail");
    }
    out
}

// ---------------------------------------------------------------------------
// Reading until the peer closes
// ---------------------------------------------------------------------------

/// How a stream ended when read to its end.
#[derive(Debug)]
pub struct Closed {
    /// Every byte read before the end.
    pub bytes: Vec<u8>,
    /// `Ok(())` for a clean EOF (TCP FIN; for TLS also a close_notify),
    /// otherwise the error that ended reading.
    pub result: io::Result<()>,
}

impl Closed {
    /// Whether the stream ended with a clean EOF.
    pub fn is_clean(&self) -> bool {
        self.result.is_ok()
    }
}

/// Reads `stream` until EOF or an error, bounded by `limit`.
pub async fn read_until_closed<S: AsyncRead + Unpin>(
    stream: &mut S,
    limit: Duration,
    what: &str,
) -> Closed {
    within(limit, what, async {
        let mut bytes = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => {
                    break Closed {
                        bytes,
                        result: Ok(()),
                    };
                }
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
                Err(e) => {
                    break Closed {
                        bytes,
                        result: Err(e),
                    };
                }
            }
        }
    })
    .await
}

// ---------------------------------------------------------------------------
// The gateway under test
// ---------------------------------------------------------------------------

/// rtmpgate running in-process on ephemeral ports.
pub struct TestGateway {
    /// Bound listeners, in configuration order.
    pub addrs: Vec<(ListenScheme, SocketAddr)>,
    /// The gateway's metrics.
    pub metrics: Arc<Metrics>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Starts rtmpgate with `listeners` (URLs, normally with port 0) relaying to
/// `upstream`, using the test certificate from PEM files. Test defaults: a
/// 2 s drain at shutdown. `tweak` may change anything before binding.
pub async fn start_gateway(
    listeners: &[&str],
    upstream: SocketAddr,
    tweak: impl FnOnce(&mut Config),
) -> TestGateway {
    let dir = TempDir::new("pki");
    let (cert, key) = test_pki().write_to(dir.path());
    let mut config = Config {
        listeners: listeners
            .iter()
            .map(|u| u.parse().unwrap_or_else(|e| panic!("listen URL {u}: {e}")))
            .collect(),
        upstreams: vec![
            format!("rtmp://{upstream}")
                .parse()
                .expect("upstream URL parses"),
        ],
        tls: TlsSource::Files { cert, key },
        ..Config::default()
    };
    config.timeouts.drain = Duration::from_secs(2);
    tweak(&mut config);
    let metrics = Arc::new(Metrics::default());
    let gateway = Gateway::bind(config, Arc::clone(&metrics))
        .await
        .unwrap_or_else(|e| panic!("gateway failed to start: {e}"));
    // Certificates are loaded at bind; the files are no longer needed.
    drop(dir);
    let addrs = gateway.local_addrs();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(gateway.run(async move {
        let _ = rx.await;
    }));
    TestGateway {
        addrs,
        metrics,
        shutdown: Some(tx),
        task: Some(task),
    }
}

impl TestGateway {
    /// The first listener with `scheme`.
    pub fn addr(&self, scheme: ListenScheme) -> SocketAddr {
        self.addrs
            .iter()
            .find(|(s, _)| *s == scheme)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no {scheme} listener in {:?}", self.addrs))
    }

    /// The first rtmps:// listener.
    pub fn rtmps(&self) -> SocketAddr {
        self.addr(ListenScheme::Rtmps)
    }

    /// The first rtmp:// listener.
    pub fn rtmp(&self) -> SocketAddr {
        self.addr(ListenScheme::Rtmp)
    }

    /// Prometheus text of the gateway's metrics.
    pub fn metrics_text(&self) -> String {
        self.metrics.encode()
    }

    /// Sum of the series of `name` whose labels include `labels`.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_value(&self.metrics_text(), name, labels)
    }

    /// Waits (bounded) until the metric equals `want`; panics with the whole
    /// exposition otherwise. Metrics are written when a connection task ends,
    /// which can be just after the client saw its socket close.
    pub async fn wait_metric(&self, name: &str, labels: &[(&str, &str)], want: f64) {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            if self.metric(name, labels) == want {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "metric {name}{labels:?} is {} after {STEP:?}, want {want}\n{}",
                    self.metric(name, labels),
                    self.metrics_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Triggers a graceful shutdown (the future given to `run` completes):
    /// the gateway stops accepting and drains live connections.
    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits (bounded) for `run` to return; call after [`Self::trigger_shutdown`].
    pub async fn wait_stopped(mut self) {
        if let Some(task) = self.task.take() {
            within(BULK, "gateway shutdown", task)
                .await
                .expect("gateway task panicked");
        }
    }

    /// Triggers a graceful shutdown and waits (bounded) for `run` to return.
    pub async fn shutdown(mut self) {
        self.trigger_shutdown();
        self.wait_stopped().await;
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Sum of the values of the series of `name` (full exposition name, e.g.
/// `rtmpgate_connections_closed_total`) whose label set includes `labels`.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_text, value) = if let Some(inner) = rest.strip_prefix('{') {
            let Some((inner, value)) = inner.split_once('}') else {
                continue;
            };
            (inner, value)
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            continue; // a longer metric name sharing the prefix
        };
        let series: HashMap<&str, &str> = label_text
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
            .collect();
        if labels.iter().all(|(k, v)| series.get(k) == Some(v)) {
            sum += value
                .trim()
                .parse::<f64>()
                .unwrap_or_else(|e| panic!("bad metric value in `{line}`: {e}"));
        }
    }
    sum
}

/// `rtmpgate_connections_closed_total`, the series most tests assert on.
pub const CLOSED: &str = "rtmpgate_connections_closed_total";

// ---------------------------------------------------------------------------
// RTMP handshake
// ---------------------------------------------------------------------------

/// Size of C1/C2/S1/S2.
pub const HANDSHAKE_SIZE: usize = 1536;
/// RTMP version byte in C0/S0.
pub const RTMP_VERSION: u8 = 3;

/// A C1 or S1: 4-byte time, 4 zero bytes, 1528 random bytes.
pub fn handshake_block(time: u32, seed: u64) -> Vec<u8> {
    let mut block = Vec::with_capacity(HANDSHAKE_SIZE);
    block.extend_from_slice(&time.to_be_bytes());
    block.extend_from_slice(&[0; 4]);
    block.extend_from_slice(&pattern(seed, HANDSHAKE_SIZE - 8));
    block
}

/// What the client side of a handshake sent and received.
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    /// C0 + C1 as sent (1537 bytes, one write).
    pub c0c1: Vec<u8>,
    /// S0 + S1 + S2 as received.
    pub s0s1s2: Vec<u8>,
    /// C2 as sent (echo of S1).
    pub c2: Vec<u8>,
}

impl ClientHandshake {
    /// Everything the client wrote during the handshake, in order.
    pub fn sent(&self) -> Vec<u8> {
        [&self.c0c1[..], &self.c2[..]].concat()
    }

    /// C1 alone.
    pub fn c1(&self) -> &[u8] {
        &self.c0c1[1..]
    }
}

/// Runs the client side of the RTMP handshake over any stream: writes C0+C1
/// (exactly 1537 bytes, one write), reads S0+S1+S2, checks S0 and that S2
/// echoes C1, and writes C2 = S1.
pub async fn rtmp_client_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> io::Result<ClientHandshake> {
    let mut c0c1 = Vec::with_capacity(1 + HANDSHAKE_SIZE);
    c0c1.push(RTMP_VERSION);
    c0c1.extend_from_slice(&handshake_block(0, fresh_seed()));
    stream.write_all(&c0c1).await?;
    stream.flush().await?;
    let mut s0s1s2 = vec![0u8; 1 + 2 * HANDSHAKE_SIZE];
    stream.read_exact(&mut s0s1s2).await?;
    let bad = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    if s0s1s2[0] != RTMP_VERSION {
        return Err(bad(format!("S0 is {:#04x}, want 0x03", s0s1s2[0])));
    }
    if s0s1s2[1 + HANDSHAKE_SIZE..] != c0c1[1..] {
        return Err(bad("S2 is not an echo of C1".into()));
    }
    let c2 = s0s1s2[1..1 + HANDSHAKE_SIZE].to_vec();
    stream.write_all(&c2).await?;
    stream.flush().await?;
    Ok(ClientHandshake { c0c1, s0s1s2, c2 })
}

/// Client handshake, bounded, panicking on failure.
pub async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> ClientHandshake {
    within(STEP, "RTMP client handshake", rtmp_client_handshake(stream))
        .await
        .unwrap_or_else(|e| panic!("RTMP client handshake failed: {e}"))
}

/// What the upstream saw of the handshake.
#[derive(Debug, Clone)]
pub struct ServerHandshake {
    /// C0 + C1 as received.
    pub c0c1: Vec<u8>,
    /// S1 as sent.
    pub s1: Vec<u8>,
    /// C2 as received (checked to echo S1).
    pub c2: Vec<u8>,
}

impl ServerHandshake {
    /// Everything the client sent during the handshake, as received.
    pub fn received(&self) -> Vec<u8> {
        [&self.c0c1[..], &self.c2[..]].concat()
    }
}

async fn rtmp_server_handshake(stream: &mut TcpStream) -> Result<ServerHandshake, String> {
    let mut c0c1 = vec![0u8; 1 + HANDSHAKE_SIZE];
    stream
        .read_exact(&mut c0c1)
        .await
        .map_err(|e| format!("reading C0+C1: {e}"))?;
    if c0c1[0] != RTMP_VERSION {
        return Err(format!("C0 is {:#04x}, want 0x03", c0c1[0]));
    }
    let s1 = handshake_block(1000, fresh_seed());
    let reply = [&[RTMP_VERSION][..], &s1, &c0c1[1..]].concat();
    stream
        .write_all(&reply)
        .await
        .map_err(|e| format!("writing S0+S1+S2: {e}"))?;
    let mut c2 = vec![0u8; HANDSHAKE_SIZE];
    stream
        .read_exact(&mut c2)
        .await
        .map_err(|e| format!("reading C2: {e}"))?;
    if c2 != s1 {
        return Err("C2 is not an echo of S1".into());
    }
    Ok(ServerHandshake { c0c1, s1, c2 })
}

// ---------------------------------------------------------------------------
// The test upstream
// ---------------------------------------------------------------------------

/// What an upstream connection has received so far.
#[derive(Debug, Default, Clone)]
pub struct Recorded {
    /// Every byte received after the handshake (or from the start in raw mode).
    pub bytes: Vec<u8>,
    /// How reading ended, once it has.
    pub end: Option<ReadEnd>,
}

/// How the upstream's reading of a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadEnd {
    /// The gateway shut down its write side (FIN).
    Eof,
    /// Reading failed (e.g. connection reset).
    Error(io::ErrorKind),
    /// The test reset the connection itself.
    Reset,
}

enum UpCmd {
    Send(Vec<u8>, oneshot::Sender<io::Result<()>>),
    ShutdownWrite(oneshot::Sender<io::Result<()>>),
    Reset,
}

/// How [`TestUpstream`] treats new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamMode {
    /// Perform the RTMP server handshake, then record.
    Rtmp,
    /// Record from the first byte (no handshake).
    Raw,
}

/// One connection accepted by [`TestUpstream`].
pub struct UpstreamConn {
    /// The gateway's address on this connection.
    pub peer: SocketAddr,
    /// The handshake as seen by the upstream (`None` in raw mode), or why it failed.
    pub handshake: Option<Result<ServerHandshake, String>>,
    state: watch::Receiver<Recorded>,
    cmds: mpsc::UnboundedSender<UpCmd>,
}

impl UpstreamConn {
    /// The completed handshake; panics if it failed or was not performed.
    #[track_caller]
    pub fn handshake(&self) -> &ServerHandshake {
        match &self.handshake {
            Some(Ok(h)) => h,
            Some(Err(e)) => panic!("upstream RTMP handshake failed: {e}"),
            None => panic!("raw upstream performs no handshake"),
        }
    }

    /// A copy of what has been recorded so far.
    pub fn recorded(&self) -> Recorded {
        self.state.borrow().clone()
    }

    /// Number of bytes received so far.
    pub fn received_len(&self) -> usize {
        self.state.borrow().bytes.len()
    }

    /// Waits (bounded by `limit`) until `n` bytes have arrived or reading
    /// ended; returns the recording.
    pub async fn wait_for_len(&self, n: usize, limit: Duration) -> Recorded {
        let mut rx = self.state.clone();
        let what = format!("{n} bytes at the upstream");
        let res = tokio::time::timeout(
            limit,
            rx.wait_for(|r| r.bytes.len() >= n || r.end.is_some()),
        )
        .await;
        match res {
            Ok(Ok(r)) => r.clone(),
            Ok(Err(_)) => self.recorded(),
            Err(_) => panic!(
                "timed out after {limit:?} waiting for {what}; have {}",
                self.received_len()
            ),
        }
    }

    /// Waits until exactly `want` has arrived (more or less fails).
    pub async fn expect_bytes(&self, what: &str, want: &[u8]) {
        let r = self.wait_for_len(want.len(), BULK).await;
        assert_bytes_eq(what, &r.bytes, want);
    }

    /// Waits (bounded by `limit`) until reading ended; returns the recording.
    pub async fn wait_for_end(&self, limit: Duration) -> Recorded {
        let mut rx = self.state.clone();
        let res = tokio::time::timeout(limit, rx.wait_for(|r| r.end.is_some())).await;
        match res {
            Ok(Ok(r)) => r.clone(),
            Ok(Err(_)) => self.recorded(),
            Err(_) => panic!(
                "timed out after {limit:?} waiting for the gateway to close the upstream \
                 connection; received {} bytes",
                self.received_len()
            ),
        }
    }

    /// Whether reading has ended (without waiting).
    pub fn ended(&self) -> Option<ReadEnd> {
        self.state.borrow().end.clone()
    }

    /// Writes `data` to the gateway; returns once it is written (bounded).
    pub async fn send(&self, data: Vec<u8>) {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(UpCmd::Send(data, tx))
            .expect("upstream connection task is gone");
        within(BULK, "the upstream's write", rx)
            .await
            .expect("upstream connection task is gone")
            .expect("upstream write failed");
    }

    /// Shuts down the write side (FIN); reading goes on.
    pub async fn shutdown_write(&self) {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(UpCmd::ShutdownWrite(tx))
            .expect("upstream connection task is gone");
        within(STEP, "the upstream's shutdown", rx)
            .await
            .expect("upstream connection task is gone")
            .expect("upstream shutdown failed");
    }

    /// Aborts the connection with a TCP RST.
    pub fn reset(&self) {
        let _ = self.cmds.send(UpCmd::Reset);
    }
}

/// A test RTMP server on 127.0.0.1:0 that accepts any number of connections
/// and hands each to the test as an [`UpstreamConn`], in accept order.
pub struct TestUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    conns: mpsc::UnboundedReceiver<UpstreamConn>,
    task: JoinHandle<()>,
}

impl TestUpstream {
    /// An upstream that performs the RTMP server handshake.
    pub async fn start() -> Self {
        Self::start_with(UpstreamMode::Rtmp).await
    }

    /// An upstream in the given mode.
    pub async fn start_with(mode: UpstreamMode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind test upstream");
        let addr = listener.local_addr().expect("upstream address");
        let (tx, conns) = mpsc::unbounded_channel();
        let task = tokio::spawn(accept_upstream(listener, mode, tx));
        Self { addr, conns, task }
    }

    /// The next accepted connection (after its handshake), bounded.
    pub async fn next_conn(&mut self) -> UpstreamConn {
        within(STEP, "a connection at the upstream", self.conns.recv())
            .await
            .expect("upstream accept loop ended")
    }

    /// The next accepted connection if one is already there.
    pub fn try_next_conn(&mut self) -> Option<UpstreamConn> {
        self.conns.try_recv().ok()
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_upstream(
    listener: TcpListener,
    mode: UpstreamMode,
    tx: mpsc::UnboundedSender<UpstreamConn>,
) {
    // Connection tasks live in this set: aborting the accept task (on drop
    // of the TestUpstream) ends them all.
    let mut tasks = JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let tx = tx.clone();
        tasks.spawn(serve_upstream_conn(stream, peer, mode, tx));
    }
}

async fn serve_upstream_conn(
    mut stream: TcpStream,
    peer: SocketAddr,
    mode: UpstreamMode,
    tx: mpsc::UnboundedSender<UpstreamConn>,
) {
    let handshake = match mode {
        UpstreamMode::Raw => None,
        UpstreamMode::Rtmp => Some(
            tokio::time::timeout(STEP, rtmp_server_handshake(&mut stream))
                .await
                .unwrap_or_else(|_| Err("handshake timed out".into())),
        ),
    };
    let (state_tx, state) = watch::channel(Recorded::default());
    let (cmds, mut cmd_rx) = mpsc::unbounded_channel();
    if matches!(handshake, Some(Err(_))) {
        state_tx.send_modify(|r| r.end = Some(ReadEnd::Error(io::ErrorKind::InvalidData)));
    }
    let failed = matches!(handshake, Some(Err(_)));
    let _ = tx.send(UpstreamConn {
        peer,
        handshake,
        state,
        cmds,
    });
    if failed {
        return;
    }
    let (mut rd, mut wr) = stream.into_split();
    let (kill_tx, mut kill_rx) = oneshot::channel::<()>();
    let state_tx = Arc::new(state_tx);
    let reader_state = Arc::clone(&state_tx);
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            tokio::select! {
                res = rd.read(&mut buf) => match res {
                    Ok(0) => {
                        reader_state.send_modify(|r| r.end = Some(ReadEnd::Eof));
                        break;
                    }
                    Ok(n) => reader_state.send_modify(|r| r.bytes.extend_from_slice(&buf[..n])),
                    Err(e) => {
                        reader_state.send_modify(|r| r.end = Some(ReadEnd::Error(e.kind())));
                        break;
                    }
                },
                _ = &mut kill_rx => break,
            }
        }
        rd
    });
    let mut kill_tx = Some(kill_tx);
    while let Some(cmd) = cmd_rx.recv().await {
        match cmd {
            UpCmd::Send(data, done) => {
                let res = async {
                    wr.write_all(&data).await?;
                    wr.flush().await
                }
                .await;
                let _ = done.send(res);
            }
            UpCmd::ShutdownWrite(done) => {
                let _ = done.send(wr.shutdown().await);
            }
            UpCmd::Reset => {
                if let Some(kill) = kill_tx.take() {
                    let _ = kill.send(());
                }
                if let Ok(rd) = reader.await {
                    let stream = rd.reunite(wr).expect("halves of one stream");
                    let _ = stream.set_zero_linger();
                    drop(stream);
                }
                state_tx.send_modify(|r| {
                    if r.end.is_none() {
                        r.end = Some(ReadEnd::Reset);
                    }
                });
                return;
            }
        }
    }
    // The test dropped the handle: keep recording until the gateway closes.
    let _ = reader.await;
}

// ---------------------------------------------------------------------------
// RTMP chunk stream encoding
// ---------------------------------------------------------------------------

/// The chunk size every RTMP connection starts with.
pub const DEFAULT_CHUNK_SIZE: usize = 128;

/// RTMP message type ids used by the tests.
pub mod msg_type {
    /// Set Chunk Size (protocol control).
    pub const SET_CHUNK_SIZE: u8 = 1;
    /// Window Acknowledgement Size (protocol control).
    pub const WINDOW_ACK_SIZE: u8 = 5;
    /// Audio data.
    pub const AUDIO: u8 = 8;
    /// Video data.
    pub const VIDEO: u8 = 9;
    /// AMF0 data message (@setDataFrame / onMetaData).
    pub const DATA_AMF0: u8 = 18;
    /// AMF0 command message (connect, publish, _result...).
    pub const COMMAND_AMF0: u8 = 20;
}

/// One RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpMessage {
    /// Chunk stream id (2..=65599).
    pub csid: u32,
    /// Absolute timestamp in ms.
    pub timestamp: u32,
    /// Message type id.
    pub type_id: u8,
    /// Message stream id.
    pub stream_id: u32,
    /// Message body.
    pub payload: Vec<u8>,
}

fn basic_header(out: &mut Vec<u8>, fmt: u8, csid: u32) {
    match csid {
        2..=63 => out.push((fmt << 6) | csid as u8),
        64..=319 => out.extend_from_slice(&[fmt << 6, (csid - 64) as u8]),
        320..=65599 => {
            let id = csid - 64;
            out.extend_from_slice(&[(fmt << 6) | 1, id as u8, (id >> 8) as u8]);
        }
        _ => panic!("chunk stream id {csid} out of range"),
    }
}

impl RtmpMessage {
    /// A message on chunk stream `csid`, message stream `stream_id`.
    pub fn new(csid: u32, type_id: u8, stream_id: u32, timestamp: u32, payload: Vec<u8>) -> Self {
        Self {
            csid,
            timestamp,
            type_id,
            stream_id,
            payload,
        }
    }

    /// Appends the message as chunks: a type-0 chunk (basic header with the
    /// csid + 11-byte message header [+ extended timestamp]), then type-3
    /// continuation chunks, each carrying at most `chunk_size` payload bytes.
    pub fn encode_into(&self, chunk_size: usize, out: &mut Vec<u8>) {
        assert!(self.payload.len() < 1 << 24, "message too long for RTMP");
        let extended = self.timestamp >= 0xFF_FFFF;
        let ts_field = if extended { 0xFF_FFFF } else { self.timestamp };
        basic_header(out, 0, self.csid);
        out.extend_from_slice(&ts_field.to_be_bytes()[1..]);
        out.extend_from_slice(&(self.payload.len() as u32).to_be_bytes()[1..]);
        out.push(self.type_id);
        out.extend_from_slice(&self.stream_id.to_le_bytes());
        if extended {
            out.extend_from_slice(&self.timestamp.to_be_bytes());
        }
        let mut chunks = self.payload.chunks(chunk_size);
        if let Some(first) = chunks.next() {
            out.extend_from_slice(first);
        }
        for chunk in chunks {
            basic_header(out, 3, self.csid);
            if extended {
                out.extend_from_slice(&self.timestamp.to_be_bytes());
            }
            out.extend_from_slice(chunk);
        }
    }

    /// The message as chunk-stream bytes.
    pub fn encode(&self, chunk_size: usize) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(self.payload.len() + 16 + self.payload.len() / chunk_size * 4);
        self.encode_into(chunk_size, &mut out);
        out
    }

    /// Set Chunk Size control message (csid 2, stream 0).
    pub fn set_chunk_size(size: u32) -> Self {
        Self::new(
            2,
            msg_type::SET_CHUNK_SIZE,
            0,
            0,
            size.to_be_bytes().to_vec(),
        )
    }

    /// An AMF0 command (csid 3) from its encoded values.
    pub fn command(stream_id: u32, values: &[amf0::Value]) -> Self {
        Self::new(
            3,
            msg_type::COMMAND_AMF0,
            stream_id,
            0,
            amf0::encode(values),
        )
    }
}

/// Encodes messages in order, tracking Set Chunk Size: messages after a
/// Set Chunk Size are chunked with the new size, as a real client does.
pub fn encode_messages(messages: &[RtmpMessage]) -> Vec<u8> {
    let mut chunk_size = DEFAULT_CHUNK_SIZE;
    let mut out = Vec::new();
    for m in messages {
        m.encode_into(chunk_size, &mut out);
        if m.type_id == msg_type::SET_CHUNK_SIZE && m.csid == 2 && m.payload.len() == 4 {
            let size = u32::from_be_bytes(m.payload[..4].try_into().expect("4 bytes"));
            chunk_size = (size & 0x7FFF_FFFF) as usize;
        }
    }
    out
}

/// Decodes what [`encode_messages`] produces (type 0 and type 3 chunks, Set
/// Chunk Size honoured; interleaving across chunk streams supported).
pub fn decode_messages(mut bytes: &[u8]) -> Result<Vec<RtmpMessage>, String> {
    struct Partial {
        msg: RtmpMessage,
        len: usize,
        extended: bool,
    }
    let mut chunk_size = DEFAULT_CHUNK_SIZE;
    let mut open: HashMap<u32, Partial> = HashMap::new();
    let mut out = Vec::new();
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
        if bytes.len() < n {
            return Err(format!("truncated: need {n} bytes, have {}", bytes.len()));
        }
        let (head, tail) = bytes.split_at(n);
        *bytes = tail;
        Ok(head)
    }
    while !bytes.is_empty() {
        let b0 = take(&mut bytes, 1)?[0];
        let fmt = b0 >> 6;
        let csid = match b0 & 0x3F {
            0 => 64 + u32::from(take(&mut bytes, 1)?[0]),
            1 => {
                let b = take(&mut bytes, 2)?;
                64 + u32::from(b[0]) + (u32::from(b[1]) << 8)
            }
            id => u32::from(id),
        };
        match fmt {
            0 => {
                if open.contains_key(&csid) {
                    return Err(format!("type-0 chunk on csid {csid} inside a message"));
                }
                let h = take(&mut bytes, 11)?;
                let ts = u32::from_be_bytes([0, h[0], h[1], h[2]]);
                let len = u32::from_be_bytes([0, h[3], h[4], h[5]]) as usize;
                let type_id = h[6];
                let stream_id = u32::from_le_bytes([h[7], h[8], h[9], h[10]]);
                let extended = ts == 0xFF_FFFF;
                let timestamp = if extended {
                    u32::from_be_bytes(take(&mut bytes, 4)?.try_into().expect("4 bytes"))
                } else {
                    ts
                };
                open.insert(
                    csid,
                    Partial {
                        msg: RtmpMessage::new(csid, type_id, stream_id, timestamp, Vec::new()),
                        len,
                        extended,
                    },
                );
            }
            3 => {
                let p = open
                    .get(&csid)
                    .ok_or_else(|| format!("type-3 chunk on csid {csid} without a message"))?;
                if p.extended {
                    take(&mut bytes, 4)?;
                }
            }
            other => return Err(format!("chunk type {other} not produced by the encoder")),
        }
        let p = open.get_mut(&csid).expect("opened above");
        let n = (p.len - p.msg.payload.len()).min(chunk_size);
        p.msg.payload.extend_from_slice(take(&mut bytes, n)?);
        if p.msg.payload.len() == p.len {
            let done = open.remove(&csid).expect("present").msg;
            if done.type_id == msg_type::SET_CHUNK_SIZE && done.csid == 2 && done.payload.len() == 4
            {
                let size = u32::from_be_bytes(done.payload[..4].try_into().expect("4 bytes"));
                chunk_size = (size & 0x7FFF_FFFF) as usize;
            }
            out.push(done);
        }
    }
    if let Some(csid) = open.keys().next() {
        return Err(format!("message on csid {csid} incomplete at end of input"));
    }
    Ok(out)
}

/// Minimal AMF0 encoding for command messages.
pub mod amf0 {
    /// An AMF0 value.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        /// Number (f64).
        Number(f64),
        /// Boolean.
        Bool(bool),
        /// UTF-8 string (< 64 KiB).
        String(String),
        /// Object with ordered properties.
        Object(Vec<(String, Value)>),
        /// Null.
        Null,
    }

    /// A string value.
    pub fn string(s: &str) -> Value {
        Value::String(s.to_string())
    }

    /// An object value.
    pub fn object(props: &[(&str, Value)]) -> Value {
        Value::Object(
            props
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    fn put_str(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    fn put(out: &mut Vec<u8>, v: &Value) {
        match v {
            Value::Number(n) => {
                out.push(0x00);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Value::Bool(b) => out.extend_from_slice(&[0x01, u8::from(*b)]),
            Value::String(s) => {
                out.push(0x02);
                put_str(out, s);
            }
            Value::Object(props) => {
                out.push(0x03);
                for (k, v) in props {
                    put_str(out, k);
                    put(out, v);
                }
                out.extend_from_slice(&[0, 0, 0x09]);
            }
            Value::Null => out.push(0x05),
        }
    }

    /// Encodes values back to back, as a command message body.
    pub fn encode(values: &[Value]) -> Vec<u8> {
        let mut out = Vec::new();
        for v in values {
            put(&mut out, v);
        }
        out
    }
}

/// The messages a publisher sends after the handshake: connect,
/// createStream, publish, then Set Chunk Size and `media` audio/video
/// messages of varied sizes (payloads derived from `seed`). The first
/// media payload starts with `seed` as 8 little-endian bytes, so a
/// receiver can tell which publisher it is talking to.
pub fn publish_session(app: &str, stream_key: &str, seed: u64, media: usize) -> Vec<RtmpMessage> {
    use amf0::{Value, object, string};
    let mut msgs = vec![
        RtmpMessage::command(
            0,
            &[
                string("connect"),
                Value::Number(1.0),
                object(&[
                    ("app", string(app)),
                    ("type", string("nonprivate")),
                    ("flashVer", string("FMLE/3.0 (compatible; rtmpgate-test)")),
                    ("tcUrl", string(&format!("rtmps://localhost/{app}"))),
                ]),
            ],
        ),
        RtmpMessage::command(
            0,
            &[
                string("releaseStream"),
                Value::Number(2.0),
                Value::Null,
                string(stream_key),
            ],
        ),
        RtmpMessage::command(
            0,
            &[string("createStream"), Value::Number(3.0), Value::Null],
        ),
        RtmpMessage::command(
            1,
            &[
                string("publish"),
                Value::Number(4.0),
                Value::Null,
                string(stream_key),
                string("live"),
            ],
        ),
        RtmpMessage::set_chunk_size(4096),
    ];
    for i in 0..media {
        let video = i % 3 != 2;
        // Sizes vary around chunk boundaries and well beyond them.
        let len = [1, 127, 128, 129, 4095, 4096, 4097, 20_000][i % 8] + (i / 8) * 37;
        let mut payload = pattern(seed.wrapping_add(i as u64), len.max(8));
        if i == 0 {
            payload[..8].copy_from_slice(&seed.to_le_bytes());
        }
        msgs.push(RtmpMessage::new(
            if video { 6 } else { 4 },
            if video {
                msg_type::VIDEO
            } else {
                msg_type::AUDIO
            },
            1,
            (i as u32) * 33,
            payload,
        ));
    }
    msgs
}

/// The seed a [`publish_session`] was made with, read back from its decoded
/// messages.
pub fn publish_session_seed(messages: &[RtmpMessage]) -> Option<u64> {
    messages
        .iter()
        .find(|m| m.type_id == msg_type::VIDEO || m.type_id == msg_type::AUDIO)
        .and_then(|m| m.payload.get(..8))
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

// ---------------------------------------------------------------------------
// A live relay to check that the gateway is undisturbed
// ---------------------------------------------------------------------------

/// An established client ⇄ gateway ⇄ upstream relay whose both directions
/// can be exercised on demand, byte-exact.
pub struct LiveRelay<S> {
    /// The client's stream.
    pub client: S,
    /// The upstream's side of the same connection.
    pub upstream: UpstreamConn,
    sent_up: Vec<u8>,
    round: u64,
}

impl<S: AsyncRead + AsyncWrite + Unpin> LiveRelay<S> {
    /// Runs the RTMP handshake over `client` and picks up the upstream side.
    pub async fn establish(mut client: S, upstream: &mut TestUpstream) -> Self {
        let hs = client_handshake(&mut client).await;
        let conn = upstream.next_conn().await;
        assert_bytes_eq(
            "live relay handshake",
            &conn.handshake().received(),
            &hs.sent(),
        );
        Self {
            client,
            upstream: conn,
            sent_up: Vec::new(),
            round: 0,
        }
    }

    /// Sends one message each way and checks both arrive byte-exact.
    pub async fn check(&mut self, what: &str) {
        self.round += 1;
        let seed = 0x11FE_0000 + self.round;
        let up = RtmpMessage::new(
            6,
            msg_type::VIDEO,
            1,
            self.round as u32,
            pattern(seed, 3000),
        )
        .encode(DEFAULT_CHUNK_SIZE);
        within(STEP, "live relay client write", self.client.write_all(&up))
            .await
            .unwrap_or_else(|e| panic!("{what}: live relay client write failed: {e}"));
        self.sent_up.extend_from_slice(&up);
        let r = self.upstream.wait_for_len(self.sent_up.len(), STEP).await;
        assert_eq!(r.end, None, "{what}: live relay closed at the upstream");
        assert_bytes_eq(what, &r.bytes, &self.sent_up);
        let down = RtmpMessage::new(3, msg_type::COMMAND_AMF0, 0, 0, pattern(!seed, 700))
            .encode(DEFAULT_CHUNK_SIZE);
        self.upstream.send(down.clone()).await;
        let mut got = vec![0u8; down.len()];
        within(
            STEP,
            "live relay client read",
            self.client.read_exact(&mut got),
        )
        .await
        .unwrap_or_else(|e| panic!("{what}: live relay client read failed: {e}"));
        assert_bytes_eq(what, &got, &down);
    }
}
