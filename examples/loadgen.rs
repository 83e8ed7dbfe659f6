//! Load generator for the proxy benchmark (`bench/run.sh`): an RTMP upstream
//! sink and the clients of every workload, one result line per run.
//!
//! ```text
//! cargo run --release --example loadgen -- sink --listen 127.0.0.1:1935 --seconds 600
//! cargo run --release --example loadgen -- bulk --target 127.0.0.1:8443 --conns 1 --bytes 1000000000
//! cargo run --release --example loadgen -- bulk --target 127.0.0.1:8443 --bytes 1000000000 --pull
//! cargo run --release --example loadgen -- handshakes --target 127.0.0.1:8443 --conns 8 --seconds 5 [--resume]
//! cargo run --release --example loadgen -- latency --target 127.0.0.1:8443 --count 2000
//! cargo run --release --example loadgen -- hold --target 127.0.0.1:8443 --conns 1000 --seconds 10
//! cargo run --release --example loadgen -- hold --target 127.0.0.1:8443 --conns 200 --seconds 5 --stall
//! cargo run --release --example loadgen -- rtmpt --target 127.0.0.1:1936 --plain --style ffmpeg --bytes 100000000
//! ```
//!
//! Every client mode speaks TLS unless `--plain` (rustls with the crypto
//! provider rtmpgate uses, `rtmpgate::tls::provider()`, offering one cipher
//! suite so every proxy negotiates the same; certificates are NOT verified,
//! handshake signatures are), then the RTMP simple handshake (C0C1 → S0S1S2 → C2), then
//! one mode byte the sink acts on:
//!
//! - `D` + u64 length (big endian): the sink discards that many bytes, then
//!   answers `OK` + u64 count, so a client knows its bytes went all the way
//!   through the proxy;
//! - `E`: the sink echoes everything until EOF;
//! - `U` + u64 length: the sink sends that many bytes and waits for the
//!   client to close (`bulk --pull`);
//! - `F`: the sink sends 64 KiB blocks until the connection fails or a
//!   write makes no progress for its idle time (`hold --stall`: a client
//!   that never reads, to measure what a proxy holds for it);
//! - nothing (EOF right after C2): a handshake-only connection.
//!
//! Output: one line `loadgen mode=… ok=0|1 key=value …` per run on stdout
//! (`hold` also prints `loadgen event=established …` once every connection
//! is up or failed, so a script can sample the proxy's memory then). Every
//! loop is bounded by a count and by `--timeout` (whole run).

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, Resumption};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, HandshakeKind, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, sleep, sleep_until, timeout, timeout_at};
use tokio_rustls::TlsConnector;

/// RTMP handshake block size (C1, C2, S1, S2).
const HS: usize = 1536;
/// Bound on one connect, TLS handshake, RTMP handshake or HTTP request.
const STEP: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

#[derive(Parser)]
#[command(about = "RTMP/RTMPS/RTMPT load generator and upstream sink for bench/run.sh")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Tokio worker threads.
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    /// Hard deadline of the whole run, in seconds.
    #[arg(long, global = true, default_value_t = 600)]
    timeout: u64,
}

#[derive(Subcommand)]
enum Cmd {
    /// RTMP upstream sink: server handshake, then discard (`D`) or echo (`E`).
    Sink(SinkArgs),
    /// N connections each push B bytes as fast as possible.
    Bulk(BulkArgs),
    /// C loops of connect → TLS → RTMP handshake → close for S seconds.
    Handshakes(HandshakeArgs),
    /// Ping-pong of small messages through the echo sink on one connection.
    Latency(LatencyArgs),
    /// Open N connections and keep them alive with small echoed messages.
    Hold(HoldArgs),
    /// One RTMPT session pushing B bytes (ffmpeg or librtmp request style).
    Rtmpt(RtmptArgs),
}

#[derive(Args)]
struct SinkArgs {
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,
    /// Exit after this many seconds (prints its counters then).
    #[arg(long, default_value_t = 3600)]
    seconds: u64,
}

#[derive(Args, Clone)]
struct Conn {
    /// The proxy (or sink) to connect to.
    #[arg(long)]
    target: SocketAddr,
    /// Plain TCP instead of TLS.
    #[arg(long, conflicts_with = "tls")]
    plain: bool,
    /// TLS (the default).
    #[arg(long)]
    tls: bool,
    /// TLS version: 1.2 or 1.3.
    #[arg(long, default_value = "1.3")]
    tls_version: String,
    /// Cipher suite family offered (only that one): aes128gcm, aes256gcm, chacha20.
    #[arg(long, default_value = "aes128gcm")]
    cipher: String,
    /// Server name sent in SNI.
    #[arg(long, default_value = "localhost")]
    sni: String,
}

#[derive(Args)]
struct BulkArgs {
    #[command(flatten)]
    conn: Conn,
    /// Concurrent connections.
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Bytes pushed per connection.
    #[arg(long, default_value_t = 100_000_000)]
    bytes: u64,
    /// Size of each write.
    #[arg(long, default_value_t = 65536)]
    write_size: usize,
    /// Pull instead of push: the sink sends the bytes (`U`), the client
    /// reads them (a player's direction: the proxy encrypts).
    #[arg(long)]
    pull: bool,
}

#[derive(Args)]
struct HandshakeArgs {
    #[command(flatten)]
    conn: Conn,
    /// Concurrent loops.
    #[arg(long, default_value_t = 8)]
    conns: usize,
    /// How long to loop.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Keep a client session cache so TLS resumption can happen.
    #[arg(long)]
    resume: bool,
    /// Most handshakes per loop (bound).
    #[arg(long, default_value_t = 1_000_000)]
    max_per_loop: u64,
}

#[derive(Args)]
struct LatencyArgs {
    #[command(flatten)]
    conn: Conn,
    /// Measured round trips.
    #[arg(long, default_value_t = 2000)]
    count: usize,
    /// Unmeasured round trips first.
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Message size.
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Go through an RTMPT session (/send, then /idle until the echo is back).
    #[arg(long)]
    rtmpt: bool,
}

#[derive(Args)]
struct HoldArgs {
    #[command(flatten)]
    conn: Conn,
    /// Connections to open and hold.
    #[arg(long, default_value_t = 1000)]
    conns: usize,
    /// How long to hold once all are established (or failed).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Interval between the tiny echoed messages of one connection, in ms.
    #[arg(long, default_value_t = 2000)]
    trickle_interval: u64,
    /// New connections per second while ramping up.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Stalled clients: ask the sink to flood (`F`) and never read, so the
    /// proxy's buffers for each connection fill; `event=established` is
    /// printed `--settle` seconds after the last one is up.
    #[arg(long)]
    stall: bool,
    /// Seconds to let buffers fill before `event=established` (`--stall`).
    #[arg(long, default_value_t = 3.0)]
    settle: f64,
}

#[derive(Args)]
struct RtmptArgs {
    #[command(flatten)]
    conn: Conn,
    /// ffmpeg: one request at a time; librtmp: several requests in flight.
    #[arg(long, default_value = "ffmpeg")]
    style: String,
    /// Bytes pushed through the tunnel.
    #[arg(long, default_value_t = 100_000_000)]
    bytes: u64,
    /// Body size of each /send.
    #[arg(long, default_value_t = 65536)]
    body: usize,
    /// Requests in flight for the librtmp style.
    #[arg(long, default_value_t = 4)]
    depth: usize,
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

/// Prints one `loadgen key=value …` line and flushes stdout.
fn emit(fields: &[(&str, String)]) {
    let mut line = String::from("loadgen");
    for (k, v) in fields {
        let v = if v.is_empty() {
            "-".to_string()
        } else {
            v.replace(' ', "_")
        };
        line.push_str(&format!(" {k}={v}"));
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn f3(x: f64) -> String {
    format!("{x:.3}")
}

/// Shared error bookkeeping: a count and the first message.
#[derive(Default)]
struct Errors {
    count: AtomicU64,
    first: std::sync::Mutex<Option<String>>,
}

impl Errors {
    fn push(&self, e: String) {
        self.count.fetch_add(1, Relaxed);
        let mut first = self.first.lock().unwrap();
        if first.is_none() {
            eprintln!("loadgen: {e}");
            *first = Some(e);
        }
    }
    fn first(&self) -> String {
        self.first.lock().unwrap().clone().unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------

/// Accepts any certificate, but checks the handshake signatures, so the
/// client does the same public-key work as a verifying one minus the chain.
#[derive(Debug)]
struct NoChainCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoChainCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What a client needs to connect: TLS connector (None = plain) and name.
#[derive(Clone)]
struct Dialer {
    target: SocketAddr,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

fn dialer(c: &Conn, resume: bool) -> Result<Dialer, String> {
    if c.plain {
        return Ok(Dialer {
            target: c.target,
            tls: None,
        });
    }
    let family = match c.cipher.as_str() {
        "aes128gcm" => "AES_128_GCM",
        "aes256gcm" => "AES_256_GCM",
        "chacha20" => "CHACHA20",
        other => return Err(format!("unknown --cipher {other}")),
    };
    let (tls13, version) = match c.tls_version.as_str() {
        "1.3" => (true, &rustls::version::TLS13),
        "1.2" => (false, &rustls::version::TLS12),
        other => return Err(format!("unknown --tls-version {other}")),
    };
    let mut provider = (*rtmpgate::tls::provider()).clone();
    provider.cipher_suites.retain(|s| {
        let name = format!("{:?}", s.suite());
        name.contains(family) && name.starts_with("TLS13_") == tls13
    });
    // X25519 (then P-256, which TLS 1.2 servers also need in the list to use
    // a P-256 ECDSA certificate): OpenSSL 3.0 peers have no hybrid
    // post-quantum groups, so offering those first would make rtmpgate alone
    // negotiate a costlier key exchange.
    provider.kx_groups.retain(|g| {
        matches!(
            g.name(),
            rustls::NamedGroup::X25519 | rustls::NamedGroup::secp256r1
        )
    });
    if provider.cipher_suites.is_empty() {
        return Err(format!("no {family} suite for TLS {}", c.tls_version));
    }
    let provider = Arc::new(provider);
    let mut config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[version])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoChainCheck(provider)))
        .with_no_client_auth();
    config.resumption = if resume {
        Resumption::in_memory_sessions(1024)
    } else {
        Resumption::disabled()
    };
    let name = ServerName::try_from(c.sni.clone()).map_err(|e| e.to_string())?;
    Ok(Dialer {
        target: c.target,
        tls: Some((TlsConnector::from(Arc::new(config)), name)),
    })
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type Stream = Box<dyn Io>;

/// The outcome of a TLS handshake.
#[derive(Default, Clone)]
struct TlsInfo {
    resumed: bool,
    suite: String,
    version: String,
    kx: String,
}

impl Dialer {
    /// TCP connect (+ TLS handshake), each step bounded by STEP.
    async fn connect(&self) -> Result<(Stream, TlsInfo), String> {
        let tcp = timeout(STEP, TcpStream::connect(self.target))
            .await
            .map_err(|_| "TCP connect timed out".to_string())?
            .map_err(|e| format!("TCP connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let Some((connector, name)) = &self.tls else {
            return Ok((Box::new(tcp), TlsInfo::default()));
        };
        let tls = timeout(STEP, connector.connect(name.clone(), tcp))
            .await
            .map_err(|_| "TLS handshake timed out".to_string())?
            .map_err(|e| format!("TLS handshake: {e}"))?;
        let c = tls.get_ref().1;
        let info = TlsInfo {
            resumed: c.handshake_kind() == Some(HandshakeKind::Resumed),
            suite: c
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
                .unwrap_or_default(),
            version: c
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default(),
            kx: c
                .negotiated_key_exchange_group()
                .map(|g| format!("{:?}", g.name()))
                .unwrap_or_default(),
        };
        Ok((Box::new(tls), info))
    }

    /// connect + RTMP handshake.
    async fn rtmp(&self, seed: u64) -> Result<(Stream, TlsInfo), String> {
        let (mut s, info) = self.connect().await?;
        timeout(STEP, rtmp_handshake(&mut s, seed))
            .await
            .map_err(|_| "RTMP handshake timed out".to_string())??;
        Ok((s, info))
    }
}

// ---------------------------------------------------------------------------
// RTMP bits
// ---------------------------------------------------------------------------

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn fill(seed: u64, out: &mut [u8]) {
    for (i, c) in out.chunks_mut(8).enumerate() {
        let v = splitmix(seed ^ i as u64).to_le_bytes();
        c.copy_from_slice(&v[..c.len()]);
    }
}

fn c0c1(seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; 1 + HS];
    out[0] = 3;
    fill(seed, &mut out[9..]);
    out
}

/// Client side of the simple handshake; checks S0 and that S2 echoes C1.
async fn rtmp_handshake<S: AsyncRead + AsyncWrite + Unpin + ?Sized>(
    s: &mut S,
    seed: u64,
) -> Result<(), String> {
    let c = c0c1(seed);
    let mut reply = vec![0u8; 1 + 2 * HS];
    async {
        s.write_all(&c).await?;
        s.flush().await?;
        s.read_exact(&mut reply).await?;
        s.write_all(&reply[1..1 + HS]).await?;
        s.flush().await
    }
    .await
    .map_err(|e| format!("RTMP handshake: {e}"))?;
    if reply[0] != 3 || reply[1 + HS..] != c[1..] {
        return Err("RTMP handshake: bad S0 or S2".into());
    }
    Ok(())
}

/// Payload shaped like RTMP chunks: a type-0 header for a video message on
/// chunk stream 6, then type-3 headers every 4096 bytes of body.
fn payload(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut body = vec![0u8; 4096];
    let mut i = 0u64;
    while out.len() < len {
        if i == 0 {
            out.extend_from_slice(&[0x06, 0, 0, 0, 0x0f, 0xff, 0xff, 0x09, 1, 0, 0, 0]);
        } else {
            out.push(0xc6);
        }
        fill(0xb0d1 ^ i, &mut body);
        out.extend_from_slice(&body);
        i += 1;
    }
    out.truncate(len);
    out
}

// ---------------------------------------------------------------------------
// Sink
// ---------------------------------------------------------------------------

#[derive(Default)]
struct SinkStats {
    accepted: AtomicU64,
    handshakes: AtomicU64,
    bytes: AtomicU64,
    live: AtomicU64,
    peak: AtomicU64,
    errors: AtomicU64,
}

async fn sink(a: SinkArgs, end: Instant) -> bool {
    let listener = match TcpListener::bind(a.listen).await {
        Ok(l) => l,
        Err(e) => {
            emit(&[
                ("mode", "sink".into()),
                ("ok", "0".into()),
                ("error", e.to_string()),
            ]);
            return false;
        }
    };
    let stats = Arc::new(SinkStats::default());
    let end = end.min(Instant::now() + Duration::from_secs_f64(a.seconds as f64));
    eprintln!("loadgen sink listening on {}", a.listen);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = sleep_until(end) => break,
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => break,
            _ = tokio::signal::ctrl_c() => break,
        };
        match accepted {
            Ok((s, _)) => {
                stats.accepted.fetch_add(1, Relaxed);
                let live = stats.live.fetch_add(1, Relaxed) + 1;
                stats.peak.fetch_max(live, Relaxed);
                let stats = Arc::clone(&stats);
                tokio::spawn(async move {
                    match timeout_at(end, sink_conn(s, &stats)).await {
                        Ok(Ok(())) | Err(_) => {}
                        Ok(Err(_)) => {
                            stats.errors.fetch_add(1, Relaxed);
                        }
                    }
                    stats.live.fetch_sub(1, Relaxed);
                });
            }
            Err(e) => {
                eprintln!("loadgen sink accept: {e}");
                sleep(Duration::from_millis(10)).await;
            }
        }
    }
    emit(&[
        ("mode", "sink".into()),
        ("ok", "1".into()),
        ("accepted", stats.accepted.load(Relaxed).to_string()),
        ("handshakes", stats.handshakes.load(Relaxed).to_string()),
        ("bytes", stats.bytes.load(Relaxed).to_string()),
        ("peak_conns", stats.peak.load(Relaxed).to_string()),
        ("errors", stats.errors.load(Relaxed).to_string()),
    ]);
    true
}

async fn sink_conn(mut s: TcpStream, stats: &SinkStats) -> std::io::Result<()> {
    let _ = s.set_nodelay(true);
    let idle = Duration::from_secs(600);
    let to = |_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle");
    {
        let mut c = vec![0u8; 1 + HS];
        timeout(STEP, s.read_exact(&mut c)).await.map_err(to)??;
        if c[0] != 3 {
            return Err(std::io::Error::other("C0 is not 3"));
        }
        let mut reply = vec![0u8; 1 + 2 * HS];
        reply[0] = 3;
        fill(0x5331, &mut reply[9..1 + HS]);
        reply[1 + HS..].copy_from_slice(&c[1..]);
        s.write_all(&reply).await?;
        timeout(STEP, s.read_exact(&mut c[1..]))
            .await
            .map_err(to)??;
        if c[1..] != reply[1..1 + HS] {
            return Err(std::io::Error::other("C2 does not echo S1"));
        }
    }
    stats.handshakes.fetch_add(1, Relaxed);
    let mut mode = [0u8; 1];
    match timeout(idle, s.read(&mut mode)).await.map_err(to)? {
        Ok(0) | Err(_) => return Ok(()),
        Ok(_) => {}
    }
    match mode[0] {
        b'D' => {
            let mut len = [0u8; 8];
            timeout(STEP, s.read_exact(&mut len)).await.map_err(to)??;
            let want = u64::from_be_bytes(len);
            let mut buf = vec![0u8; 256 * 1024];
            let mut got = 0u64;
            while got < want {
                let cap = (want - got).min(buf.len() as u64) as usize;
                let n = timeout(idle, s.read(&mut buf[..cap])).await.map_err(to)??;
                if n == 0 {
                    return Err(std::io::Error::other("EOF in discard"));
                }
                got += n as u64;
                stats.bytes.fetch_add(n as u64, Relaxed);
            }
            drop(buf);
            let mut ack = b"OK".to_vec();
            ack.extend_from_slice(&got.to_be_bytes());
            s.write_all(&ack).await?;
            // Wait for the client to close (bounded by idle).
            let mut b = [0u8; 64];
            loop {
                match timeout(idle, s.read(&mut b)).await.map_err(to)? {
                    Ok(0) | Err(_) => return Ok(()),
                    Ok(_) => {}
                }
            }
        }
        b'U' => {
            let mut len = [0u8; 8];
            timeout(STEP, s.read_exact(&mut len)).await.map_err(to)??;
            let mut left = u64::from_be_bytes(len);
            let block = vec![0x55u8; 64 * 1024];
            while left > 0 {
                let n = left.min(block.len() as u64) as usize;
                timeout(idle, s.write_all(&block[..n]))
                    .await
                    .map_err(to)??;
                stats.bytes.fetch_add(n as u64, Relaxed);
                left -= n as u64;
            }
            let mut b = [0u8; 64];
            loop {
                match timeout(idle, s.read(&mut b)).await.map_err(to)? {
                    Ok(0) | Err(_) => return Ok(()),
                    Ok(_) => {}
                }
            }
        }
        b'F' => {
            let block = vec![0x46u8; 64 * 1024];
            loop {
                timeout(idle, s.write_all(&block)).await.map_err(to)??;
                stats.bytes.fetch_add(block.len() as u64, Relaxed);
            }
        }
        b'E' => {
            let mut buf = vec![0u8; 2048];
            loop {
                let n = timeout(idle, s.read(&mut buf)).await.map_err(to)??;
                if n == 0 {
                    return Ok(());
                }
                stats.bytes.fetch_add(n as u64, Relaxed);
                s.write_all(&buf[..n]).await?;
            }
        }
        m => Err(std::io::Error::other(format!("unknown mode byte {m:#x}"))),
    }
}

// ---------------------------------------------------------------------------
// bulk
// ---------------------------------------------------------------------------

async fn push<S: AsyncRead + AsyncWrite + Unpin + ?Sized>(
    s: &mut S,
    bytes: u64,
    data: &[u8],
) -> Result<(), String> {
    let mut head = vec![b'D'];
    head.extend_from_slice(&bytes.to_be_bytes());
    s.write_all(&head)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(data.len() as u64) as usize;
        s.write_all(&data[..n])
            .await
            .map_err(|e| format!("write: {e}"))?;
        left -= n as u64;
    }
    s.flush().await.map_err(|e| format!("flush: {e}"))?;
    let mut ack = [0u8; 10];
    s.read_exact(&mut ack)
        .await
        .map_err(|e| format!("reading the sink's ack: {e}"))?;
    let got = u64::from_be_bytes(ack[2..].try_into().expect("8 bytes"));
    if &ack[..2] != b"OK" || got != bytes {
        return Err(format!("bad ack: sink got {got} of {bytes}"));
    }
    Ok(())
}

/// Asks the sink for `bytes` and reads them all (`bulk --pull`).
async fn pull<S: AsyncRead + AsyncWrite + Unpin + ?Sized>(
    s: &mut S,
    bytes: u64,
    buf: &mut [u8],
) -> Result<(), String> {
    let mut head = vec![b'U'];
    head.extend_from_slice(&bytes.to_be_bytes());
    s.write_all(&head)
        .await
        .map_err(|e| format!("write: {e}"))?;
    s.flush().await.map_err(|e| format!("flush: {e}"))?;
    let mut got = 0u64;
    while got < bytes {
        let cap = (bytes - got).min(buf.len() as u64) as usize;
        match s.read(&mut buf[..cap]).await {
            Ok(0) => return Err(format!("EOF after {got} of {bytes} bytes")),
            Ok(n) => got += n as u64,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    Ok(())
}

async fn bulk(a: BulkArgs, end: Instant) -> bool {
    let base = vec![
        ("mode", "bulk".to_string()),
        ("conns", a.conns.to_string()),
        ("pull", (a.pull as u8).to_string()),
    ];
    let d = match dialer(&a.conn, false) {
        Ok(d) => d,
        Err(e) => return fail(base, e),
    };
    let data = Arc::new(payload(a.write_size.max(1)));
    let (go_tx, go_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<Result<TlsInfo, String>>(a.conns);
    let mut tasks = tokio::task::JoinSet::new();
    let t_start = Instant::now();
    for i in 0..a.conns {
        let (d, data, ready_tx, mut go_rx) = (
            d.clone(),
            Arc::clone(&data),
            ready_tx.clone(),
            go_rx.clone(),
        );
        let bytes = a.bytes;
        let pull_mode = a.pull;
        tasks.spawn(timeout_at(end, async move {
            let (mut s, info) = match d.rtmp(i as u64 + 1).await {
                Ok(x) => x,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.clone())).await;
                    return Err(e);
                }
            };
            let _ = ready_tx.send(Ok(info)).await;
            while !*go_rx.borrow() {
                go_rx.changed().await.map_err(|_| "aborted".to_string())?;
            }
            if pull_mode {
                let mut buf = vec![0u8; 256 * 1024];
                pull(&mut s, bytes, &mut buf).await?;
            } else {
                push(&mut s, bytes, &data).await?;
            }
            let done = Instant::now();
            let _ = timeout(Duration::from_secs(2), s.shutdown()).await;
            Ok::<Instant, String>(done)
        }));
    }
    drop(ready_tx);
    let mut info = TlsInfo::default();
    let mut ready = 0;
    let errors = Errors::default();
    for _ in 0..a.conns {
        let Ok(Some(r)) = timeout_at(end, ready_rx.recv()).await else {
            break;
        };
        match r {
            Ok(i) => {
                info = i;
                ready += 1;
            }
            Err(e) => errors.push(e),
        }
    }
    let handshake_secs = t_start.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let _ = go_tx.send(true);
    let mut last = t0;
    let mut done = 0;
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(Ok(t))) => {
                done += 1;
                last = last.max(t);
            }
            Ok(Ok(Err(e))) => {
                if ready > 0 {
                    errors.push(e)
                }
            }
            Ok(Err(_)) => errors.push("deadline reached".into()),
            Err(e) => errors.push(format!("task: {e}")),
        }
    }
    let secs = (last - t0).as_secs_f64().max(1e-9);
    let total = a.bytes * done as u64;
    let ok = done == a.conns && errors.count.load(Relaxed) == 0;
    let mut f = base;
    f.extend([
        ("ok", (ok as u8).to_string()),
        ("done", done.to_string()),
        ("ready", ready.to_string()),
        ("bytes", total.to_string()),
        ("secs", f3(secs)),
        ("mbps", f3(total as f64 / 1e6 / secs)),
        ("handshake_secs", f3(handshake_secs)),
        ("tls", info.version),
        ("suite", info.suite),
        ("kx", info.kx),
        ("errors", errors.count.load(Relaxed).to_string()),
        ("error", errors.first()),
    ]);
    emit(&f);
    ok
}

fn fail(mut f: Vec<(&str, String)>, e: String) -> bool {
    f.push(("ok", "0".into()));
    f.push(("error", e));
    emit(&f);
    false
}

// ---------------------------------------------------------------------------
// handshakes
// ---------------------------------------------------------------------------

async fn handshakes(a: HandshakeArgs, end: Instant) -> bool {
    let base = vec![
        ("mode", "handshakes".to_string()),
        ("conns", a.conns.to_string()),
        ("resume", (a.resume as u8).to_string()),
    ];
    let d = match dialer(&a.conn, a.resume) {
        Ok(d) => d,
        Err(e) => return fail(base, e),
    };
    let stop = Instant::now() + Duration::from_secs_f64(a.seconds);
    let stop = stop.min(end);
    let count = Arc::new(AtomicU64::new(0));
    let resumed = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Errors::default());
    let suite = Arc::new(std::sync::Mutex::new(TlsInfo::default()));
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..a.conns {
        let (d, count, resumed, errors, suite) = (
            d.clone(),
            Arc::clone(&count),
            Arc::clone(&resumed),
            Arc::clone(&errors),
            Arc::clone(&suite),
        );
        let max = a.max_per_loop;
        tasks.spawn(async move {
            let mut n = 0u64;
            while Instant::now() < stop && n < max {
                n += 1;
                let r = timeout_at(end, async {
                    let (mut s, info) = d.rtmp(i as u64 * 1_000_003 + n).await?;
                    let _ = timeout(Duration::from_secs(2), s.shutdown()).await;
                    Ok::<_, String>(info)
                })
                .await
                .unwrap_or_else(|_| Err("deadline reached".into()));
                match r {
                    Ok(info) => {
                        count.fetch_add(1, Relaxed);
                        if info.resumed {
                            resumed.fetch_add(1, Relaxed);
                        }
                        if n == 1 {
                            *suite.lock().unwrap() = info;
                        }
                    }
                    Err(e) => {
                        errors.push(e);
                        sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let secs = t0.elapsed().as_secs_f64();
    let n = count.load(Relaxed);
    let r = resumed.load(Relaxed);
    let info = suite.lock().unwrap().clone();
    let errs = errors.count.load(Relaxed);
    // Errors are tolerated up to 1% (a peer refusing under load is a result);
    // resumption was asked for but never happened is reported, not a failure.
    let ok = n > 0 && errs * 100 <= n;
    let mut f = base;
    f.extend([
        ("ok", (ok as u8).to_string()),
        ("handshakes", n.to_string()),
        ("secs", f3(secs)),
        ("per_sec", f3(n as f64 / secs)),
        ("resumed", r.to_string()),
        ("full", (n - r).to_string()),
        ("resumed_pct", f3(100.0 * r as f64 / n.max(1) as f64)),
        ("tls", info.version),
        ("suite", info.suite),
        ("kx", info.kx),
        ("errors", errs.to_string()),
        ("error", errors.first()),
    ]);
    emit(&f);
    ok
}

// ---------------------------------------------------------------------------
// latency
// ---------------------------------------------------------------------------

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn latency(a: LatencyArgs, end: Instant) -> bool {
    let base = vec![
        ("mode", "latency".to_string()),
        (
            "transport",
            if a.rtmpt { "rtmpt" } else { "rtmp" }.to_string(),
        ),
        ("size", a.size.to_string()),
    ];
    let d = match dialer(&a.conn, false) {
        Ok(d) => d,
        Err(e) => return fail(base, e),
    };
    let size = a.size.max(1);
    let r = timeout_at(end, async {
        let mut samples = Vec::with_capacity(a.count);
        let mut send_samples = Vec::with_capacity(a.count);
        let mut idle_total = 0u64;
        let mut msg = vec![0u8; size];
        let info;
        if a.rtmpt {
            let (s, i) = d.connect().await?;
            info = i;
            let mut t = Tunnel::open(s, 7).await?;
            t.send_all(b"E").await?;
            for k in 0..a.warmup + a.count {
                fill(k as u64, &mut msg);
                let t0 = Instant::now();
                let mut got = t.data("send", &msg).await?;
                let sent = t0.elapsed();
                let poll_end = Instant::now() + STEP;
                let mut idles = 0u64;
                while got.len() < size {
                    if Instant::now() >= poll_end {
                        return Err("echo did not come back".to_string());
                    }
                    got.extend(t.data("idle", &[0]).await?);
                    idles += 1;
                }
                if k >= a.warmup {
                    send_samples.push(sent.as_secs_f64() * 1e6);
                    idle_total += idles;
                }
                if got != msg {
                    return Err("echo differs".into());
                }
                if k >= a.warmup {
                    samples.push(t0.elapsed().as_secs_f64() * 1e6);
                }
            }
            t.close().await;
        } else {
            let (mut s, i) = d.rtmp(7).await?;
            info = i;
            s.write_all(b"E").await.map_err(|e| e.to_string())?;
            let mut back = vec![0u8; size];
            for k in 0..a.warmup + a.count {
                fill(k as u64, &mut msg);
                let t0 = Instant::now();
                timeout(STEP, async {
                    s.write_all(&msg).await?;
                    s.flush().await?;
                    s.read_exact(&mut back).await
                })
                .await
                .map_err(|_| "echo timed out".to_string())?
                .map_err(|e| format!("echo: {e}"))?;
                if k >= a.warmup {
                    samples.push(t0.elapsed().as_secs_f64() * 1e6);
                }
                if back != msg {
                    return Err("echo differs".into());
                }
            }
            let _ = timeout(Duration::from_secs(2), s.shutdown()).await;
        }
        Ok::<_, String>((samples, send_samples, idle_total, info))
    })
    .await
    .unwrap_or_else(|_| Err("deadline reached".into()));
    match r {
        Ok((mut s, mut sends, idles, info)) => {
            s.sort_by(|a, b| a.partial_cmp(b).unwrap());
            sends.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let mean = s.iter().sum::<f64>() / s.len().max(1) as f64;
            let mut f = base;
            f.extend([
                ("ok", "1".to_string()),
                ("count", s.len().to_string()),
                ("p50_us", f3(percentile(&s, 0.5))),
                ("p90_us", f3(percentile(&s, 0.9))),
                ("p99_us", f3(percentile(&s, 0.99))),
                ("max_us", f3(percentile(&s, 1.0))),
                ("mean_us", f3(mean)),
                ("send_p50_us", f3(percentile(&sends, 0.5))),
                ("idles_per_echo", f3(idles as f64 / s.len().max(1) as f64)),
                ("tls", info.version),
                ("suite", info.suite),
                ("kx", info.kx),
            ]);
            emit(&f);
            true
        }
        Err(e) => fail(base, e),
    }
}

// ---------------------------------------------------------------------------
// hold
// ---------------------------------------------------------------------------

async fn hold(a: HoldArgs, end: Instant) -> bool {
    let base = vec![
        ("mode", "hold".to_string()),
        ("conns", a.conns.to_string()),
        ("stall", (a.stall as u8).to_string()),
    ];
    let d = match dialer(&a.conn, false) {
        Ok(d) => d,
        Err(e) => return fail(base, e),
    };
    let established = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let died = Arc::new(AtomicUsize::new(0));
    let echoes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Errors::default());
    let interval = Duration::from_millis(a.trickle_interval.max(10));
    let stall = a.stall;
    let t0 = Instant::now();
    let rate = a.rate.max(1.0);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..a.conns {
        let at = t0 + Duration::from_secs_f64(i as f64 / rate);
        let (d, established, failed, died, echoes, stop, errors) = (
            d.clone(),
            Arc::clone(&established),
            Arc::clone(&failed),
            Arc::clone(&died),
            Arc::clone(&echoes),
            Arc::clone(&stop),
            Arc::clone(&errors),
        );
        tasks.spawn(timeout_at(end, async move {
            sleep_until(at).await;
            // The stall's `F` is followed by the rest of a type-1 chunk
            // header (an empty video message): rtmpgate's stream follower
            // holds a chunk header until it is whole, as real clients
            // always send them; the sink reads the mode byte only.
            let mode: &[u8] = if stall { b"F\0\0\0\0\0\0\x09" } else { b"E" };
            let mut s = match d.rtmp(i as u64 + 1).await {
                Ok((mut s, _)) => match s.write_all(mode).await {
                    Ok(()) => s,
                    Err(e) => {
                        errors.push(format!("conn {i}: {e}"));
                        failed.fetch_add(1, Relaxed);
                        return false;
                    }
                },
                Err(e) => {
                    errors.push(format!("conn {i}: {e}"));
                    failed.fetch_add(1, Relaxed);
                    return false;
                }
            };
            established.fetch_add(1, Relaxed);
            if stall {
                // Read nothing until the end; then one read proves the
                // connection is alive and the flood came through.
                while !stop.load(Relaxed) {
                    sleep(Duration::from_millis(100)).await;
                }
                let mut buf = [0u8; 4096];
                let alive = matches!(timeout(STEP, s.read(&mut buf)).await, Ok(Ok(n)) if n > 0);
                if !alive {
                    died.fetch_add(1, Relaxed);
                    errors.push(format!("conn {i}: no flood bytes after the stall"));
                }
                return alive;
            }
            // Spread the trickle over the interval.
            let phase = interval.mul_f64((i % 997) as f64 / 997.0);
            let mut next = Instant::now() + phase;
            let mut seq = 0u64;
            let mut msg = [0u8; 16];
            let mut back = [0u8; 16];
            loop {
                // Sleep until the next tick, waking early on stop.
                while Instant::now() < next {
                    if stop.load(Relaxed) {
                        break;
                    }
                    sleep_until(next.min(Instant::now() + Duration::from_millis(250))).await;
                }
                if stop.load(Relaxed) {
                    break;
                }
                next += interval;
                seq += 1;
                msg[..8].copy_from_slice(&(i as u64).to_be_bytes());
                msg[8..].copy_from_slice(&seq.to_be_bytes());
                let r = timeout(STEP, async {
                    s.write_all(&msg).await?;
                    s.flush().await?;
                    s.read_exact(&mut back).await
                })
                .await;
                match r {
                    Ok(Ok(_)) if back == msg => {
                        echoes.fetch_add(1, Relaxed);
                    }
                    Ok(Ok(_)) => {
                        errors.push(format!("conn {i}: echo differs"));
                        died.fetch_add(1, Relaxed);
                        return false;
                    }
                    Ok(Err(e)) => {
                        errors.push(format!("conn {i}: echo: {e}"));
                        died.fetch_add(1, Relaxed);
                        return false;
                    }
                    Err(_) => {
                        errors.push(format!("conn {i}: echo timed out"));
                        died.fetch_add(1, Relaxed);
                        return false;
                    }
                }
            }
            // Still alive at the end: one last exchange proves it.
            let last = timeout(STEP, async {
                s.write_all(&msg).await?;
                s.flush().await?;
                s.read_exact(&mut back).await
            })
            .await;
            let alive = matches!(last, Ok(Ok(_))) && back == msg;
            if !alive {
                died.fetch_add(1, Relaxed);
                errors.push(format!("conn {i}: final echo failed"));
            }
            let _ = timeout(Duration::from_secs(2), s.shutdown()).await;
            alive
        }));
    }
    // Wait until every connection is up or failed (bounded by the ramp + STEP).
    let settle_by = (t0 + Duration::from_secs_f64(a.conns as f64 / rate) + STEP * 2).min(end);
    while established.load(Relaxed) + failed.load(Relaxed) < a.conns && Instant::now() < settle_by {
        sleep(Duration::from_millis(20)).await;
    }
    let ramp_secs = t0.elapsed().as_secs_f64();
    if a.stall {
        sleep_until((Instant::now() + Duration::from_secs_f64(a.settle)).min(end)).await;
    }
    emit(&[
        ("event", "established".into()),
        ("established", established.load(Relaxed).to_string()),
        ("failed", failed.load(Relaxed).to_string()),
        ("conns", a.conns.to_string()),
        ("ramp_secs", f3(ramp_secs)),
    ]);
    let hold_end = (Instant::now() + Duration::from_secs_f64(a.seconds)).min(end);
    sleep_until(hold_end).await;
    let established_at_end = established.load(Relaxed);
    stop.store(true, Relaxed);
    let mut alive = 0usize;
    while let Some(r) = tasks.join_next().await {
        if let Ok(Ok(true)) = r {
            alive += 1;
        }
    }
    let ok = alive == a.conns;
    let mut f = base;
    f.extend([
        ("ok", (ok as u8).to_string()),
        ("established", established_at_end.to_string()),
        ("alive", alive.to_string()),
        ("failed", failed.load(Relaxed).to_string()),
        ("died", died.load(Relaxed).to_string()),
        ("echoes", echoes.load(Relaxed).to_string()),
        ("ramp_secs", f3(ramp_secs)),
        ("errors", errors.count.load(Relaxed).to_string()),
        ("error", errors.first()),
    ]);
    emit(&f);
    ok
}

// ---------------------------------------------------------------------------
// RTMPT
// ---------------------------------------------------------------------------

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn request(path: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: loadgen\r\n\
         Connection: Keep-Alive\r\nCache-Control: no-cache\r\n\
         Content-Type: application/x-fcs\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// Reads one HTTP reply (needs Content-Length); returns the body of a 200.
async fn read_reply<R: AsyncRead + Unpin + ?Sized>(
    rd: &mut R,
    buf: &mut Vec<u8>,
) -> Result<Vec<u8>, String> {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if let Some(head_end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or_default().to_string();
            let status: u16 = status_line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("bad status line {status_line:?}"))?;
            let len = lines
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .ok_or_else(|| "reply without Content-Length".to_string())?;
            let end = head_end + 4 + len;
            if buf.len() >= end {
                let body = buf[head_end + 4..end].to_vec();
                buf.drain(..end);
                if status != 200 {
                    return Err(status_line.to_string());
                }
                return Ok(body);
            }
        }
        match rd.read(&mut chunk).await {
            Ok(0) => return Err("connection closed by the server".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// An RTMPT session on one keep-alive connection.
struct Tunnel {
    s: Stream,
    buf: Vec<u8>,
    id: String,
    seq: u64,
    requests: u64,
    /// C2, sent together with the first payload like real clients do.
    pending_c2: Option<Vec<u8>>,
}

impl Tunnel {
    async fn post(&mut self, path: &str, body: &[u8]) -> Result<Vec<u8>, String> {
        self.requests += 1;
        timeout(STEP, async {
            self.s
                .write_all(&request(path, body))
                .await
                .map_err(|e| format!("POST {path}: {e}"))?;
            self.s.flush().await.map_err(|e| e.to_string())?;
            read_reply(&mut self.s, &mut self.buf)
                .await
                .map_err(|e| format!("POST {path}: {e}"))
        })
        .await
        .map_err(|_| format!("POST {path}: no reply in {STEP:?}"))?
    }

    /// `/open/1`, then the RTMP handshake through the tunnel.
    async fn open(s: Stream, seed: u64) -> Result<Self, String> {
        let mut t = Tunnel {
            s,
            buf: Vec::new(),
            id: String::new(),
            seq: 0,
            requests: 0,
            pending_c2: None,
        };
        let open = t.post("/open/1", &[0]).await?;
        t.id = std::str::from_utf8(&open)
            .ok()
            .map(|s| s.trim_end().to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("bad /open reply {open:?}"))?;
        let c = c0c1(seed);
        let mut got = t.data("send", &c).await?;
        let hs_end = Instant::now() + STEP;
        while got.len() < 1 + 2 * HS {
            if Instant::now() >= hs_end {
                return Err("S0S1S2 incomplete".into());
            }
            got.extend(t.data("idle", &[0]).await?);
        }
        if got.len() != 1 + 2 * HS || got[0] != 3 || got[1 + HS..] != c[1..] {
            return Err(format!("bad S0/S1/S2 ({} bytes)", got.len()));
        }
        t.pending_c2 = Some(got[1..1 + HS].to_vec());
        Ok(t)
    }
}

impl Tunnel {
    /// `/send` or `/idle`: the server bytes after the delay byte.
    async fn data(&mut self, verb: &str, body: &[u8]) -> Result<Vec<u8>, String> {
        let path = format!("/{verb}/{}/{}", self.id, self.seq);
        self.seq += 1;
        let mut reply = self.post(&path, body).await?;
        if reply.is_empty() {
            return Err(format!("POST {path}: reply without the delay byte"));
        }
        reply.remove(0);
        Ok(reply)
    }

    /// Sends bytes (prefixed by C2 on the first call); server bytes are
    /// expected to be none.
    async fn send_all(&mut self, body: &[u8]) -> Result<(), String> {
        let mut b = self.pending_c2.take().unwrap_or_default();
        b.extend_from_slice(body);
        let got = self.data("send", &b).await?;
        if !got.is_empty() {
            return Err(format!("{} unexpected server bytes", got.len()));
        }
        Ok(())
    }

    async fn close(&mut self) {
        let path = format!("/close/{}/{}", self.id, self.seq);
        let _ = self.post(&path, &[0]).await;
    }
}

async fn rtmpt(a: RtmptArgs, end: Instant) -> bool {
    let base = vec![
        ("mode", "rtmpt".to_string()),
        ("style", a.style.clone()),
        ("body", a.body.to_string()),
    ];
    if a.style != "ffmpeg" && a.style != "librtmp" {
        return fail(base, format!("unknown --style {}", a.style));
    }
    let d = match dialer(&a.conn, false) {
        Ok(d) => d,
        Err(e) => return fail(base, e),
    };
    let data = payload(a.body.max(1));
    let r = timeout_at(end, async {
        let (s, _) = d.connect().await?;
        let mut t = Tunnel::open(s, 11).await?;
        let mut head = vec![b'D'];
        head.extend_from_slice(&a.bytes.to_be_bytes());
        t.send_all(&head).await?;
        let req0 = t.requests;
        let t0 = Instant::now();
        let mut server = Vec::new();
        let n_bodies = a.bytes.div_ceil(data.len() as u64);
        let body_len = |k: u64| -> usize {
            if k + 1 < n_bodies {
                data.len()
            } else {
                (a.bytes - k * data.len() as u64) as usize
            }
        };
        if a.style == "ffmpeg" {
            for k in 0..n_bodies {
                let got = t.data("send", &data[..body_len(k)]).await?;
                server.extend(got);
            }
        } else {
            // Pipelined: the writer keeps up to `depth` requests in flight.
            let depth = a.depth.max(1);
            let sem = Semaphore::new(depth);
            let (mut rd, mut wr) = tokio::io::split(&mut t.s);
            let id = t.id.clone();
            let seq0 = t.seq;
            let writer = async {
                for k in 0..n_bodies {
                    sem.acquire().await.map_err(|e| e.to_string())?.forget();
                    let path = format!("/send/{id}/{}", seq0 + k);
                    wr.write_all(&request(&path, &data[..body_len(k)]))
                        .await
                        .map_err(|e| format!("POST {path}: {e}"))?;
                    wr.flush().await.map_err(|e| e.to_string())?;
                }
                Ok::<(), String>(())
            };
            let buf = &mut t.buf;
            let reader = async {
                let mut got = Vec::new();
                for k in 0..n_bodies {
                    let mut reply = timeout(STEP, read_reply(&mut rd, buf))
                        .await
                        .map_err(|_| format!("reply {k}: none in {STEP:?}"))??;
                    sem.add_permits(1);
                    if reply.is_empty() {
                        return Err("reply without the delay byte".to_string());
                    }
                    reply.remove(0);
                    got.extend(reply);
                }
                Ok(got)
            };
            let (w, r) = tokio::join!(writer, reader);
            w?;
            server.extend(r?);
            t.seq += n_bodies;
            t.requests += n_bodies;
        }
        let poll_end = Instant::now() + STEP;
        while server.len() < 10 {
            if Instant::now() >= poll_end {
                return Err("no ack from the sink".to_string());
            }
            server.extend(t.data("idle", &[0]).await?);
        }
        let secs = t0.elapsed().as_secs_f64();
        let got = u64::from_be_bytes(server[2..10].try_into().expect("8 bytes"));
        if &server[..2] != b"OK" || got != a.bytes {
            return Err(format!("bad ack: sink got {got} of {}", a.bytes));
        }
        let requests = t.requests - req0;
        t.close().await;
        Ok::<_, String>((secs, requests))
    })
    .await
    .unwrap_or_else(|_| Err("deadline reached".into()));
    match r {
        Ok((secs, requests)) => {
            let mut f = base;
            f.extend([
                ("ok", "1".to_string()),
                ("bytes", a.bytes.to_string()),
                ("secs", f3(secs)),
                ("mbps", f3(a.bytes as f64 / 1e6 / secs.max(1e-9))),
                ("requests", requests.to_string()),
                ("req_per_sec", f3(requests as f64 / secs.max(1e-9))),
            ]);
            emit(&f);
            true
        }
        Err(e) => fail(base, e),
    }
}

// ---------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let ok = rt.block_on(async move {
        let end = Instant::now() + Duration::from_secs(cli.timeout);
        match cli.cmd {
            Cmd::Sink(a) => sink(a, end).await,
            Cmd::Bulk(a) => bulk(a, end).await,
            Cmd::Handshakes(a) => handshakes(a, end).await,
            Cmd::Latency(a) => latency(a, end).await,
            Cmd::Hold(a) => hold(a, end).await,
            Cmd::Rtmpt(a) => rtmpt(a, end).await,
        }
    });
    // Tasks still blocked on a dead peer must not hold the process.
    rt.shutdown_timeout(Duration::from_secs(1));
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
