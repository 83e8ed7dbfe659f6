//! Bounded load/soak tool for rtmpgate, all in one process on loopback.
//!
//! ```text
//! cargo run --release --example soak -- --streams N --seconds S [--rtmpt-streams M]
//!     [--rate BYTES_PER_SEC] [--drain SECS]
//! ```
//!
//! It starts a sink upstream (RTMP server handshake, then checks every byte
//! it receives and sends its own deterministic stream back), rtmpgate
//! in-process (`rtmps://` and `rtmp://` listeners, a self-signed
//! certificate, the sink as its only upstream), then N RTMPS streams and M
//! RTMPT sessions that each send a deterministic stream at a steady rate for
//! S seconds and check every byte they get back. At the end it prints a table
//! (streams held, bytes each way, bytes lost or mismatched, errors, RSS) and
//! exits non-zero if any byte was lost or reordered or any stream failed.
//!
//! Each stream's byte streams are a pure function of a per-stream key that
//! the client puts into its C1 (bytes 8..16), so the sink knows which
//! stream a connection carries. Every loop is bounded by a deadline.
//!
//! `tests/soak_smoke.rs` includes this file and calls [`run`] with tiny
//! sizes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rtmpgate::Gateway;
use rtmpgate::config::{Config, TlsSource};
use rtmpgate::endpoint::ListenScheme;
use rtmpgate::metrics::Metrics;
use rustls::RootCertStore;
use rustls::client::ClientConfig;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, MissedTickBehavior, sleep, sleep_until, timeout, timeout_at};
use tokio_rustls::TlsConnector;
use tokio_util::task::TaskTracker;

/// RTMP handshake block size (C1, C2, S1, S2).
const HS: usize = 1536;
/// Seed salt of the client → upstream direction.
const UP: u64 = 0x5550_5f53_4f41_4b21;
/// Seed salt of the upstream → client direction.
const DOWN: u64 = 0x444f_574e_5f53_4f41;
/// Bound on one connect, TLS handshake, RTMP handshake or HTTP request.
const STEP: Duration = Duration::from_secs(10);
/// Errors listed in full in the table (the rest are only counted).
const SHOWN_ERRORS: usize = 10;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// RTMPS streams.
    pub rtmps_streams: usize,
    /// RTMPT sessions (plain HTTP on the `rtmp://` listener).
    pub rtmpt_streams: usize,
    /// How long every stream sends.
    pub duration: Duration,
    /// Bytes per second per stream, in each direction.
    pub rate: u64,
    /// Send interval (each send carries `rate * tick` bytes).
    pub tick: Duration,
    /// How long after `duration` the in-flight bytes may take to arrive.
    pub drain: Duration,
    /// Connections are started spread over this long.
    pub ramp: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            rtmps_streams: 8,
            rtmpt_streams: 8,
            duration: Duration::from_secs(3),
            rate: 32 * 1024,
            tick: Duration::from_millis(50),
            drain: Duration::from_secs(10),
            ramp: Duration::from_millis(500),
        }
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// RTMPS streams attempted.
    pub rtmps_total: usize,
    /// RTMPS streams that ran to the end without error.
    pub rtmps_held: usize,
    /// RTMPT sessions attempted.
    pub rtmpt_total: usize,
    /// RTMPT sessions that ran to the end without error.
    pub rtmpt_held: usize,
    /// Target bytes per second per stream, each way.
    pub rate: u64,
    /// Mean sending time per stream (streams start spread over the ramp).
    pub sending: Duration,
    /// Bytes the clients sent (after the handshake).
    pub up_sent: u64,
    /// Bytes the sink received (after the handshake).
    pub up_received: u64,
    /// Bytes the sink sent (after the handshake).
    pub down_sent: u64,
    /// Bytes the clients received (after the handshake).
    pub down_received: u64,
    /// Bytes sent but never received, both directions.
    pub lost: u64,
    /// Bytes received that differ from the expected stream at their offset
    /// (reordered, duplicated, corrupted, or shifted by a loss).
    pub mismatched: u64,
    /// Every failure, in no particular order.
    pub errors: Vec<String>,
    /// From the first connect to the last stream's end.
    pub elapsed: Duration,
    /// The sending window (connect ramp + sending time per stream).
    pub duration: Duration,
    /// RSS (KiB) with the gateway and sink started, no connection open.
    pub rss_before_kib: u64,
    /// RSS (KiB) once every stream was established (or at mid-run).
    pub rss_connected_kib: u64,
    /// Streams established when `rss_connected_kib` was taken.
    pub connected_at_sample: usize,
    /// RSS (KiB) after every stream ended.
    pub rss_after_kib: u64,
    /// Peak RSS (VmHWM, KiB) of the process.
    pub peak_rss_kib: u64,
}

impl Report {
    /// Whether every stream held and no byte was lost or mismatched.
    pub fn passed(&self) -> bool {
        self.errors.is_empty()
            && self.lost == 0
            && self.mismatched == 0
            && self.rtmps_held == self.rtmps_total
            && self.rtmpt_held == self.rtmpt_total
    }

    /// Bytes each direction would carry at the target rate.
    pub fn target_bytes(&self) -> u64 {
        ((self.rtmps_total + self.rtmpt_total) as f64
            * self.rate as f64
            * self.sending.as_secs_f64()) as u64
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let secs = self.duration.as_secs_f64().max(1e-9);
        let per_conn = if self.connected_at_sample > 0 {
            self.rss_connected_kib.saturating_sub(self.rss_before_kib) as f64
                / self.connected_at_sample as f64
        } else {
            0.0
        };
        let mut rows: Vec<(String, String)> = vec![
            (
                "streams held (RTMPS)".into(),
                format!("{}/{}", self.rtmps_held, self.rtmps_total),
            ),
            (
                "streams held (RTMPT)".into(),
                format!("{}/{}", self.rtmpt_held, self.rtmpt_total),
            ),
            (
                "client → upstream".into(),
                format!(
                    "{} sent, {} received ({:.1} MiB, {:.2} MiB/s)",
                    self.up_sent,
                    self.up_received,
                    mib(self.up_sent),
                    mib(self.up_sent) / secs
                ),
            ),
            (
                "upstream → client".into(),
                format!(
                    "{} sent, {} received ({:.1} MiB, {:.2} MiB/s)",
                    self.down_sent,
                    self.down_received,
                    mib(self.down_sent),
                    mib(self.down_sent) / secs
                ),
            ),
            (
                "target per direction".into(),
                format!(
                    "{} B/s × {} streams × {:.1} s = {:.1} MiB (up {:.0}%, down {:.0}% reached)",
                    self.rate,
                    self.rtmps_total + self.rtmpt_total,
                    self.sending.as_secs_f64(),
                    mib(self.target_bytes()),
                    100.0 * self.up_sent as f64 / self.target_bytes().max(1) as f64,
                    100.0 * self.down_sent as f64 / self.target_bytes().max(1) as f64
                ),
            ),
            ("bytes lost".into(), self.lost.to_string()),
            (
                "bytes mismatched/reordered".into(),
                self.mismatched.to_string(),
            ),
            ("errors".into(), self.errors.len().to_string()),
            (
                "duration".into(),
                format!(
                    "{:.1} s sending, {:.1} s total",
                    self.duration.as_secs_f64(),
                    self.elapsed.as_secs_f64()
                ),
            ),
            (
                "RSS before connections".into(),
                format!("{:.1} MiB", self.rss_before_kib as f64 / 1024.0),
            ),
            (
                "RSS with streams open".into(),
                format!(
                    "{:.1} MiB ({} streams established)",
                    self.rss_connected_kib as f64 / 1024.0,
                    self.connected_at_sample
                ),
            ),
            (
                "RSS per stream".into(),
                format!("{per_conn:.1} KiB (client + gateway + sink, one process)"),
            ),
            (
                "RSS after".into(),
                format!("{:.1} MiB", self.rss_after_kib as f64 / 1024.0),
            ),
            (
                "peak RSS (VmHWM)".into(),
                format!("{:.1} MiB", self.peak_rss_kib as f64 / 1024.0),
            ),
            (
                "result".into(),
                if self.passed() { "PASS" } else { "FAIL" }.into(),
            ),
        ];
        let width = rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows.drain(..) {
            let pad = width - k.chars().count();
            out.push_str(&format!("| {k}{} | {v}\n", " ".repeat(pad)));
        }
        for e in self.errors.iter().take(SHOWN_ERRORS) {
            out.push_str(&format!("error: {e}\n"));
        }
        if self.errors.len() > SHOWN_ERRORS {
            out.push_str(&format!(
                "… and {} more errors\n",
                self.errors.len() - SHOWN_ERRORS
            ));
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Deterministic streams
// ---------------------------------------------------------------------------

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `out` with the bytes at `offset..` of the stream named by `seed`.
pub fn fill(seed: u64, offset: u64, out: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    while i < out.len() {
        let word = splitmix(seed ^ (pos / 8).wrapping_mul(0xD6E8_FEB8_6659_FD93)).to_le_bytes();
        let start = (pos % 8) as usize;
        let n = (8 - start).min(out.len() - i);
        out[i..i + n].copy_from_slice(&word[start..start + n]);
        i += n;
        pos += n as u64;
    }
}

/// Checks received bytes against the expected stream, in order.
pub struct Checker {
    seed: u64,
    offset: u64,
    scratch: Vec<u8>,
}

impl Checker {
    /// A checker expecting the stream named by `seed` from offset 0.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            offset: 0,
            scratch: Vec::new(),
        }
    }

    /// Returns how many bytes of `data` differ from the expected ones.
    pub fn check(&mut self, data: &[u8]) -> u64 {
        self.scratch.resize(data.len(), 0);
        fill(self.seed, self.offset, &mut self.scratch);
        self.offset += data.len() as u64;
        data.iter()
            .zip(&self.scratch)
            .filter(|(a, b)| a != b)
            .count() as u64
    }
}

/// The producing side of a stream.
struct Producer {
    seed: u64,
    offset: u64,
}

impl Producer {
    fn next(&mut self, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        fill(self.seed, self.offset, &mut out);
        self.offset += len as u64;
        out
    }
}

// ---------------------------------------------------------------------------
// Per-stream shared state (client and sink run in this process)
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Shared {
    up_sent: AtomicU64,
    up_done: AtomicBool,
    up_received: AtomicU64,
    up_bad: AtomicU64,
    down_sent: AtomicU64,
    down_done: AtomicBool,
    down_received: AtomicU64,
    down_bad: AtomicU64,
}

impl Shared {
    /// Both sides stopped sending and everything sent has arrived.
    fn complete(&self) -> bool {
        self.up_done.load(Relaxed)
            && self.down_done.load(Relaxed)
            && self.up_received.load(Relaxed) >= self.up_sent.load(Relaxed)
            && self.down_received.load(Relaxed) >= self.down_sent.load(Relaxed)
    }
}

type Registry = Arc<Mutex<HashMap<u64, Arc<Shared>>>>;
type Errors = Arc<Mutex<Vec<String>>>;

/// When each phase ends.
#[derive(Clone, Copy)]
struct Clock {
    start: Instant,
    stop_sending: Instant,
    drained: Instant,
    hard: Instant,
}

fn chunk_len(opts: &Options) -> usize {
    ((opts.rate as f64 * opts.tick.as_secs_f64()).round() as usize).max(1)
}

// ---------------------------------------------------------------------------
// The sink upstream
// ---------------------------------------------------------------------------

async fn sink_accept(
    listener: TcpListener,
    registry: Registry,
    errors: Errors,
    opts: Options,
    clock: Clock,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = sleep_until(clock.hard) => return,
        };
        match accepted {
            Ok((stream, _)) => {
                let registry = Arc::clone(&registry);
                let errors = Arc::clone(&errors);
                let opts = opts.clone();
                tracker.spawn(async move {
                    let r = timeout_at(clock.hard, sink_conn(stream, &registry, &opts, clock))
                        .await
                        .unwrap_or_else(|_| Err("sink: hard deadline reached".into()));
                    if let Err(e) = r {
                        errors.lock().unwrap().push(e);
                    }
                });
            }
            Err(e) => {
                errors.lock().unwrap().push(format!("sink accept: {e}"));
                sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn sink_conn(
    mut stream: TcpStream,
    registry: &Registry,
    opts: &Options,
    clock: Clock,
) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let mut c0c1 = vec![0u8; 1 + HS];
    timeout(STEP, stream.read_exact(&mut c0c1))
        .await
        .map_err(|_| "sink: timed out reading C0+C1".to_string())?
        .map_err(|e| format!("sink: reading C0+C1: {e}"))?;
    if c0c1[0] != 3 {
        return Err(format!("sink: C0 is {:#04x}", c0c1[0]));
    }
    let key = u64::from_le_bytes(c0c1[9..17].try_into().expect("8 bytes"));
    let shared = registry
        .lock()
        .unwrap()
        .get(&key)
        .cloned()
        .ok_or_else(|| format!("sink: unknown stream key {key:#x} in C1"))?;
    let mut s1 = vec![0u8; HS];
    fill(key ^ 0x5331, 0, &mut s1[8..]);
    s1[..8].fill(0);
    let mut reply = Vec::with_capacity(1 + 2 * HS);
    reply.push(3);
    reply.extend_from_slice(&s1);
    reply.extend_from_slice(&c0c1[1..]);
    let mut c2 = vec![0u8; HS];
    timeout(STEP, async {
        stream.write_all(&reply).await?;
        stream.read_exact(&mut c2).await
    })
    .await
    .map_err(|_| "sink: timed out in the handshake".to_string())?
    .map_err(|e| format!("sink {key:#x}: handshake: {e}"))?;
    if c2 != s1 {
        return Err(format!("sink {key:#x}: C2 is not an echo of S1"));
    }

    let (mut rd, mut wr) = stream.into_split();
    let chunk = chunk_len(opts);
    let writer = async {
        let mut producer = Producer {
            seed: key ^ DOWN,
            offset: 0,
        };
        let phase = Duration::from_micros(key % opts.tick.as_micros().max(1) as u64);
        let mut ticks = tokio::time::interval_at(Instant::now() + phase, opts.tick);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut result = Ok(());
        loop {
            ticks.tick().await;
            if Instant::now() >= clock.stop_sending {
                break;
            }
            let data = producer.next(chunk);
            if let Err(e) = wr.write_all(&data).await {
                result = Err(format!("sink {key:#x}: write: {e}"));
                break;
            }
            shared.down_sent.fetch_add(data.len() as u64, Relaxed);
        }
        shared.down_done.store(true, Relaxed);
        result
    };
    let reader = async {
        let mut checker = Checker::new(key ^ UP);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if shared.complete() {
                return Ok(());
            }
            if Instant::now() >= clock.drained {
                return Err(format!("sink {key:#x}: drain deadline reached"));
            }
            match timeout(Duration::from_millis(50), rd.read(&mut buf)).await {
                Err(_) => {}
                Ok(Ok(0)) => {
                    return if shared.up_done.load(Relaxed)
                        && shared.up_received.load(Relaxed) >= shared.up_sent.load(Relaxed)
                    {
                        Ok(())
                    } else {
                        Err(format!("sink {key:#x}: EOF from the gateway mid-stream"))
                    };
                }
                Ok(Ok(n)) => {
                    let bad = checker.check(&buf[..n]);
                    shared.up_bad.fetch_add(bad, Relaxed);
                    shared.up_received.fetch_add(n as u64, Relaxed);
                }
                Ok(Err(e)) => return Err(format!("sink {key:#x}: read: {e}")),
            }
        }
    };
    let (w, r) = tokio::join!(writer, reader);
    w.and(r)?;
    // The client closes first; the gateway must then close this side.
    let mut buf = [0u8; 1024];
    let closed = timeout(Duration::from_secs(5), rd.read(&mut buf))
        .await
        .map(|r| r.unwrap_or(0));
    match closed {
        Ok(0) => Ok(()),
        Ok(n) => Err(format!(
            "sink {key:#x}: {n} unexpected bytes after the stream completed"
        )),
        Err(_) => Err(format!(
            "sink {key:#x}: the gateway kept the upstream open 5 s after the client closed"
        )),
    }
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

fn c0c1_for(key: u64) -> Vec<u8> {
    let mut out = vec![0u8; 1 + HS];
    out[0] = 3;
    out[9..17].copy_from_slice(&key.to_le_bytes());
    fill(key ^ 0x4331, 0, &mut out[17..]);
    out
}

async fn rtmps_client(
    addr: SocketAddr,
    tls: Arc<ClientConfig>,
    key: u64,
    shared: Arc<Shared>,
    opts: Options,
    clock: Clock,
    connected: Arc<AtomicUsize>,
) -> Result<(), String> {
    let tcp = timeout(STEP, TcpStream::connect(addr))
        .await
        .map_err(|_| "RTMPS: TCP connect timed out".to_string())?
        .map_err(|e| format!("RTMPS: TCP connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from("localhost").expect("valid name");
    let mut stream = timeout(STEP, TlsConnector::from(tls).connect(name, tcp))
        .await
        .map_err(|_| "RTMPS: TLS handshake timed out".to_string())?
        .map_err(|e| format!("RTMPS: TLS handshake: {e}"))?;
    let c0c1 = c0c1_for(key);
    let mut s = vec![0u8; 1 + 2 * HS];
    timeout(STEP, async {
        stream.write_all(&c0c1).await?;
        stream.flush().await?;
        stream.read_exact(&mut s).await?;
        stream.write_all(&s[1..1 + HS]).await?;
        stream.flush().await
    })
    .await
    .map_err(|_| format!("RTMPS {key:#x}: RTMP handshake timed out"))?
    .map_err(|e| format!("RTMPS {key:#x}: RTMP handshake: {e}"))?;
    if s[0] != 3 || s[1 + HS..] != c0c1[1..] {
        return Err(format!("RTMPS {key:#x}: bad S0/S2"));
    }
    connected.fetch_add(1, Relaxed);
    let (mut rd, mut wr) = tokio::io::split(stream);
    let chunk = chunk_len(&opts);
    let writer = async {
        let mut producer = Producer {
            seed: key ^ UP,
            offset: 0,
        };
        let phase = Duration::from_micros(key % opts.tick.as_micros().max(1) as u64);
        let mut ticks = tokio::time::interval_at(Instant::now() + phase, opts.tick);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut result = Ok(());
        loop {
            ticks.tick().await;
            if Instant::now() >= clock.stop_sending {
                break;
            }
            let data = producer.next(chunk);
            let written = async {
                wr.write_all(&data).await?;
                wr.flush().await
            };
            if let Err(e) = written.await {
                result = Err(format!("RTMPS {key:#x}: write: {e}"));
                break;
            }
            shared.up_sent.fetch_add(data.len() as u64, Relaxed);
        }
        shared.up_done.store(true, Relaxed);
        result.map(|()| wr)
    };
    let reader = async {
        let mut checker = Checker::new(key ^ DOWN);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if shared.complete() {
                return Ok(());
            }
            if Instant::now() >= clock.drained {
                return Err(format!("RTMPS {key:#x}: drain deadline reached"));
            }
            match timeout(Duration::from_millis(50), rd.read(&mut buf)).await {
                Err(_) => {}
                Ok(Ok(0)) => return Err(format!("RTMPS {key:#x}: EOF from the gateway")),
                Ok(Ok(n)) => {
                    shared.down_bad.fetch_add(checker.check(&buf[..n]), Relaxed);
                    shared.down_received.fetch_add(n as u64, Relaxed);
                }
                Ok(Err(e)) => return Err(format!("RTMPS {key:#x}: read: {e}")),
            }
        }
    };
    let (w, r) = tokio::join!(writer, reader);
    let wr = w?;
    r?;
    // Polite close: close_notify, then drop.
    let mut stream = rd.unsplit(wr);
    let _ = timeout(Duration::from_secs(1), stream.shutdown()).await;
    Ok(())
}

/// A minimal HTTP/1.1 keep-alive client for the tunnel.
struct Http {
    stream: TcpStream,
    buf: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Http {
    /// POSTs `body` to `path`; returns the reply body of a 200.
    async fn post(&mut self, path: &str, body: &[u8]) -> Result<Vec<u8>, String> {
        timeout(STEP, self.post_inner(path, body))
            .await
            .map_err(|_| format!("POST {path}: no reply within {STEP:?}"))?
    }

    async fn post_inner(&mut self, path: &str, body: &[u8]) -> Result<Vec<u8>, String> {
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: soak\r\n\
             Connection: Keep-Alive\r\nCache-Control: no-cache\r\n\
             Content-Type: application/x-fcs\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        self.stream
            .write_all(&req)
            .await
            .map_err(|e| format!("POST {path}: write: {e}"))?;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if let Some(head_end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
                let mut lines = head.split("\r\n");
                let status_line = lines.next().unwrap_or_default();
                let status: u16 = status_line
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("POST {path}: bad status line {status_line:?}"))?;
                let len = lines
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| format!("POST {path}: reply without Content-Length"))?;
                let end = head_end + 4 + len;
                if self.buf.len() >= end {
                    let reply: Vec<u8> = self.buf[head_end + 4..end].to_vec();
                    self.buf.drain(..end);
                    if status != 200 {
                        return Err(format!(
                            "POST {path}: {status_line} {:?}",
                            String::from_utf8_lossy(&reply[..reply.len().min(100)])
                        ));
                    }
                    return Ok(reply);
                }
            }
            match self.stream.read(&mut chunk).await {
                Ok(0) => return Err(format!("POST {path}: connection closed by the gateway")),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("POST {path}: read: {e}")),
            }
        }
    }
}

/// An RTMPT session: id and the next sequence number.
struct Tunnel {
    http: Http,
    id: String,
    seq: u64,
}

impl Tunnel {
    /// `/send` or `/idle`; returns the server bytes after the delay byte.
    async fn data(&mut self, verb: &str, body: &[u8]) -> Result<Vec<u8>, String> {
        let path = format!("/{verb}/{}/{}", self.id, self.seq);
        self.seq += 1;
        let mut reply = self.http.post(&path, body).await?;
        if reply.is_empty() {
            return Err(format!("POST {path}: reply without the delay byte"));
        }
        reply.remove(0);
        Ok(reply)
    }
}

async fn rtmpt_client(
    addr: SocketAddr,
    key: u64,
    shared: Arc<Shared>,
    opts: Options,
    clock: Clock,
    connected: Arc<AtomicUsize>,
) -> Result<(), String> {
    let tcp = timeout(STEP, TcpStream::connect(addr))
        .await
        .map_err(|_| "RTMPT: TCP connect timed out".to_string())?
        .map_err(|e| format!("RTMPT: TCP connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let mut http = Http {
        stream: tcp,
        buf: Vec::new(),
    };
    let open = http.post("/open/1", &[0]).await?;
    let id = std::str::from_utf8(&open)
        .ok()
        .and_then(|s| s.strip_suffix('\n'))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("RTMPT: bad /open reply {open:?}"))?
        .to_string();
    let mut t = Tunnel { http, id, seq: 0 };
    let tag = format!("RTMPT {key:#x} ({})", t.id);

    // RTMP handshake through the tunnel.
    let c0c1 = c0c1_for(key);
    let mut got = t.data("send", &c0c1).await?;
    let hs_deadline = Instant::now() + STEP;
    while got.len() < 1 + 2 * HS {
        if Instant::now() >= hs_deadline {
            return Err(format!("{tag}: S0+S1+S2 incomplete after {STEP:?}"));
        }
        got.extend(t.data("idle", &[0]).await?);
    }
    if got.len() != 1 + 2 * HS || got[0] != 3 || got[1 + HS..] != c0c1[1..] {
        return Err(format!("{tag}: bad S0/S1/S2 ({} bytes)", got.len()));
    }
    let mut checker = Checker::new(key ^ DOWN);
    let mut take = |data: &[u8]| {
        shared.down_bad.fetch_add(checker.check(data), Relaxed);
        shared.down_received.fetch_add(data.len() as u64, Relaxed);
    };
    let first = t.data("send", &got[1..1 + HS]).await?;
    take(&first);
    connected.fetch_add(1, Relaxed);

    // Steady state: owe `rate` bytes per second since this point.
    let mut producer = Producer {
        seed: key ^ UP,
        offset: 0,
    };
    let begun = Instant::now();
    let max_send = chunk_len(&opts) * 8;
    loop {
        let now = Instant::now();
        if now >= clock.stop_sending {
            break;
        }
        let next = now + opts.tick;
        let due = (opts.rate as f64 * (now - begun).as_secs_f64()) as u64;
        let owed = due.saturating_sub(producer.offset).min(max_send as u64) as usize;
        let data = if owed > 0 {
            let body = producer.next(owed);
            let reply = t.data("send", &body).await?;
            shared.up_sent.fetch_add(body.len() as u64, Relaxed);
            reply
        } else {
            t.data("idle", &[0]).await?
        };
        take(&data);
        sleep_until(next.min(clock.stop_sending)).await;
    }
    shared.up_done.store(true, Relaxed);
    // Drain: poll until both directions are complete.
    while !shared.complete() {
        if Instant::now() >= clock.drained {
            return Err(format!("{tag}: drain deadline reached"));
        }
        let data = t.data("idle", &[0]).await?;
        take(&data);
        if data.is_empty() {
            sleep(Duration::from_millis(10)).await;
        }
    }
    let path = format!("/close/{}/{}", t.id, t.seq);
    t.http.post(&path, &[0]).await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Process memory
// ---------------------------------------------------------------------------

/// A `Vm*` field of /proc/self/status in KiB (0 if unavailable).
pub fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

struct Pki {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    der: CertificateDer<'static>,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn make_pki() -> Result<Pki, String> {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".into()])
            .map_err(|e| format!("rcgen: {e}"))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("rtmpgate-soak-{}-{nanos:x}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir {}: {e}", dir.display()))?;
    let pki = Pki {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        der: generated.cert.der().clone(),
        dir,
    };
    std::fs::write(&pki.cert, generated.cert.pem()).map_err(|e| format!("cert.pem: {e}"))?;
    std::fs::write(&pki.key, generated.signing_key.serialize_pem())
        .map_err(|e| format!("key.pem: {e}"))?;
    Ok(pki)
}

/// Runs the whole soak and returns its report (never panics on a stream
/// failure: failures are in [`Report::errors`]).
pub async fn run(opts: Options) -> Report {
    let mut report = Report {
        rtmps_total: opts.rtmps_streams,
        rtmpt_total: opts.rtmpt_streams,
        duration: opts.ramp + opts.duration,
        rate: opts.rate,
        sending: opts.duration + opts.ramp / 2,
        ..Report::default()
    };
    let errors: Errors = Arc::default();
    let fail = |report: &mut Report, e: String| {
        report.errors.push(e);
        report.clone()
    };

    // Sink upstream.
    let sink = match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => return fail(&mut report, format!("bind sink: {e}")),
    };
    let sink_addr = sink.local_addr().expect("bound");

    // Gateway.
    let pki = match make_pki() {
        Ok(p) => p,
        Err(e) => return fail(&mut report, e),
    };
    let mut config = Config {
        listeners: ["rtmps://127.0.0.1:0", "rtmp://127.0.0.1:0"]
            .iter()
            .map(|u| u.parse().expect("listen URL parses"))
            .collect(),
        upstreams: vec![
            format!("rtmp://{sink_addr}")
                .parse()
                .expect("upstream URL parses"),
        ],
        tls: TlsSource::Files {
            cert: pki.cert.clone(),
            key: pki.key.clone(),
        },
        max_connections: 100_000,
        ..Config::default()
    };
    config.timeouts.drain = Duration::from_secs(2);
    config.timeouts.idle = Some(Duration::from_secs(120));
    config.rtmpt.limits.max_sessions = 100_000;
    config.rtmpt.limits.max_per_client = 100_000;
    config.rtmpt.limits.expiry = Duration::from_secs(60);
    let gateway = match Gateway::bind(config, Arc::new(Metrics::default())).await {
        Ok(g) => g,
        Err(e) => return fail(&mut report, format!("gateway failed to start: {e}")),
    };
    let addrs = gateway.local_addrs();
    let addr_of = |scheme| {
        addrs
            .iter()
            .find(|(s, _)| *s == scheme)
            .map(|(_, a)| *a)
            .expect("listener configured")
    };
    let (rtmps_addr, rtmp_addr) = (addr_of(ListenScheme::Rtmps), addr_of(ListenScheme::Rtmp));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let gateway_task = tokio::spawn(gateway.run(async move {
        let _ = stop_rx.await;
    }));

    let mut roots = RootCertStore::empty();
    roots.add(pki.der.clone()).expect("valid trust anchor");
    let tls = Arc::new(
        ClientConfig::builder_with_provider(rtmpgate::tls::provider())
            .with_safe_default_protocol_versions()
            .expect("default versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );

    let start = Instant::now();
    let stop_sending = start + opts.ramp + opts.duration;
    let drained = stop_sending + opts.drain;
    let clock = Clock {
        start,
        stop_sending,
        drained,
        hard: drained + Duration::from_secs(5),
    };
    let registry: Registry = Arc::default();
    let sink_tasks = TaskTracker::new();
    let sink_task = tokio::spawn(sink_accept(
        sink,
        Arc::clone(&registry),
        Arc::clone(&errors),
        opts.clone(),
        clock,
        sink_tasks.clone(),
    ));

    report.rss_before_kib = proc_status_kib("VmRSS");
    let connected = Arc::new(AtomicUsize::new(0));
    let total = opts.rtmps_streams + opts.rtmpt_streams;
    let mut clients = tokio::task::JoinSet::new();
    let mut streams = Vec::with_capacity(total);
    for i in 0..total {
        let key = splitmix(0x736f_616b ^ i as u64) | 1;
        let shared = Arc::new(Shared::default());
        registry.lock().unwrap().insert(key, Arc::clone(&shared));
        streams.push(Arc::clone(&shared));
        let is_rtmps = i < opts.rtmps_streams;
        let at = clock.start + opts.ramp.mul_f64(i as f64 / total.max(1) as f64);
        let (opts, tls, connected) = (opts.clone(), Arc::clone(&tls), Arc::clone(&connected));
        clients.spawn(async move {
            sleep_until(at).await;
            let work = async {
                if is_rtmps {
                    rtmps_client(rtmps_addr, tls, key, shared, opts, clock, connected).await
                } else {
                    rtmpt_client(rtmp_addr, key, shared, opts, clock, connected).await
                }
            };
            let r = timeout_at(clock.hard, work)
                .await
                .unwrap_or_else(|_| Err(format!("stream {key:#x}: hard deadline reached")));
            (is_rtmps, r)
        });
    }

    // RSS once everything is established (or half way through sending).
    let half = clock.start + opts.ramp + opts.duration / 2;
    while connected.load(Relaxed) < total && Instant::now() < half && !clients.is_empty() {
        sleep(Duration::from_millis(20)).await;
    }
    // Let the first buffers fill before sampling.
    sleep_until((Instant::now() + opts.tick * 4).min(clock.stop_sending)).await;
    report.rss_connected_kib = proc_status_kib("VmRSS");
    report.connected_at_sample = connected.load(Relaxed);

    while let Some(joined) = clients.join_next().await {
        match joined {
            Ok((is_rtmps, Ok(()))) => {
                if is_rtmps {
                    report.rtmps_held += 1;
                } else {
                    report.rtmpt_held += 1;
                }
            }
            Ok((_, Err(e))) => report.errors.push(e),
            Err(e) => report.errors.push(format!("client task: {e}")),
        }
    }
    sink_tasks.close();
    if timeout_at(clock.hard + Duration::from_secs(1), sink_tasks.wait())
        .await
        .is_err()
    {
        report.errors.push("sink connections did not end".into());
    }
    sink_task.abort();
    report.elapsed = start.elapsed();

    for s in &streams {
        let (us, ur) = (s.up_sent.load(Relaxed), s.up_received.load(Relaxed));
        let (ds, dr) = (s.down_sent.load(Relaxed), s.down_received.load(Relaxed));
        report.up_sent += us;
        report.up_received += ur;
        report.down_sent += ds;
        report.down_received += dr;
        report.lost += us.saturating_sub(ur) + ds.saturating_sub(dr);
        report.mismatched += s.up_bad.load(Relaxed) + s.down_bad.load(Relaxed);
    }
    report.errors.extend(errors.lock().unwrap().drain(..));

    let _ = stop_tx.send(());
    if timeout(Duration::from_secs(15), gateway_task)
        .await
        .is_err()
    {
        report.errors.push("gateway did not shut down".into());
    }
    report.rss_after_kib = proc_status_kib("VmRSS");
    report.peak_rss_kib = proc_status_kib("VmHWM");
    drop(pki);
    report
}

fn usage() -> ! {
    eprintln!(
        "usage: soak --streams N --seconds S [--rtmpt-streams M] [--rate BYTES_PER_SEC] \
         [--drain SECS]"
    );
    std::process::exit(2)
}

fn parse_args() -> Options {
    let mut opts = Options {
        rtmps_streams: 0,
        rtmpt_streams: 0,
        duration: Duration::from_secs(10),
        drain: Duration::from_secs(15),
        ramp: Duration::ZERO,
        ..Options::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        let num = |v: String| v.parse::<f64>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--streams" => opts.rtmps_streams = num(value()) as usize,
            "--rtmpt-streams" => opts.rtmpt_streams = num(value()) as usize,
            "--seconds" => opts.duration = Duration::from_secs_f64(num(value())),
            "--rate" => opts.rate = num(value()) as u64,
            "--drain" => opts.drain = Duration::from_secs_f64(num(value())),
            _ => usage(),
        }
    }
    let total = opts.rtmps_streams + opts.rtmpt_streams;
    // Spread connects: ~5 ms per stream, at most 2 s.
    opts.ramp = Duration::from_millis(5 * total as u64).min(Duration::from_secs(2));
    opts
}

fn main() -> std::process::ExitCode {
    let opts = parse_args();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "soak: {} RTMPS + {} RTMPT streams, {:?} each, {} B/s each way per stream",
        opts.rtmps_streams, opts.rtmpt_streams, opts.duration, opts.rate
    );
    let report = runtime.block_on(run(opts));
    print!("{}", report.table());
    if report.passed() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
