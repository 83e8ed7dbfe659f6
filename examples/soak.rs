//! Bounded load/soak tool for rtmpgate, all in one process on loopback.
//!
//! ```text
//! cargo run --release --example soak -- --streams N --seconds S [--rtmpt-streams M]
//!     [--rate BYTES_PER_SEC] [--drain SECS] [--kill-percent P]
//!     [--fault upstream-restart] [--fault kill-clients] [--fault cert-reload]
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
//! Faults (any combination, each once, spread over the sending window):
//!
//! * `kill-clients` (at 20%): P% (default 20) of the live client
//!   connections are dropped abruptly (SO_LINGER 0: a TCP RST, no TLS
//!   close_notify, no RTMPT `/close`). Checks: every other stream keeps
//!   moving, and rtmpgate's `connections_active` falls back to the number of
//!   client connections still open (no leak).
//! * `cert-reload` (at 40%): a new certificate and key are written over the
//!   files rtmpgate was started with and the reload is triggered in-process.
//!   Checks: one successful reload, new RTMPS connections get the new
//!   certificate, every RTMPS stream live at the reload keeps moving.
//! * `upstream-restart` (at 60%): the sink's listener is closed and its live
//!   connections dropped; after 1 s it listens again on the same port. The
//!   streams it carried end; their clients reconnect as new streams (new
//!   keys) and run to the end. Checks: every stream cut is reconnected, and
//!   every byte either side received before the cut was the expected byte at
//!   its offset (no corruption, reordering or bytes of another stream; bytes
//!   in flight at the cut are not counted as lost).
//!
//! At the end every stream must be closed and rtmpgate's active connections
//! and RTMPT sessions must fall to 0 (killed sessions expire).
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
use tokio_util::sync::CancellationToken;
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
/// Pause between reconnect attempts while the upstream is down.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);
/// Bound on each fault's own checks (metrics falling back, streams moving).
const FAULT_CHECK: Duration = Duration::from_secs(15);
/// New RTMPS connections made after a reload to look at the certificate.
const CERT_PROBES: usize = 3;

#[path = "soak/faults.rs"]
mod faults;

pub use faults::{Fault, FaultReport};
use faults::{Faults, SinkControl, bad_bytes};

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
    /// Faults to inject, each once.
    pub faults: Vec<Fault>,
    /// Share of live client connections `kill-clients` drops, in percent.
    pub kill_percent: u32,
    /// How long the sink stays down in `upstream-restart`.
    pub restart_downtime: Duration,
    /// rtmpgate's RTMPT session timeout (killed sessions expire after it).
    pub rtmpt_expiry: Duration,
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
            faults: Vec::new(),
            kill_percent: 20,
            restart_downtime: Duration::from_secs(1),
            rtmpt_expiry: Duration::from_secs(10),
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
    /// Bytes the clients sent (after the handshake; counted when handed to
    /// the socket, so a write cut short by a fault counts in full).
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
    /// Every fault injected, in order.
    pub faults: Vec<FaultReport>,
    /// Streams killed on purpose (`kill-clients`); not counted as held.
    pub killed: usize,
    /// Streams cut by the upstream restart.
    pub broken: usize,
    /// Cut streams reconnected as new streams that ran to the end.
    pub reconnected: usize,
    /// Connection attempts that failed while the upstream was down.
    pub reconnect_attempts: usize,
}

impl Report {
    /// Whether every stream held (or was killed on purpose, or was cut and
    /// reconnected), no byte was lost or mismatched, and every fault check
    /// held.
    pub fn passed(&self) -> bool {
        self.errors.is_empty()
            && self.lost == 0
            && self.mismatched == 0
            && self.rtmps_held + self.rtmpt_held + self.killed
                == self.rtmps_total + self.rtmpt_total
            && self.reconnected == self.broken
            && self.faults.iter().all(|f| f.errors.is_empty())
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
            (
                "streams killed / cut / reconnected".into(),
                format!(
                    "{} / {} / {} ({} attempts failed while the upstream was down)",
                    self.killed, self.broken, self.reconnected, self.reconnect_attempts
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
                "peak RSS per stream".into(),
                format!(
                    "{:.1} KiB ((VmHWM − RSS before) / {} streams)",
                    self.peak_rss_kib.saturating_sub(self.rss_before_kib) as f64
                        / (self.rtmps_total + self.rtmpt_total).max(1) as f64,
                    self.rtmps_total + self.rtmpt_total
                ),
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
        if !self.faults.is_empty() {
            out.push_str(
                "\n| fault | at | streams live | held | broken by it | reconnected | bytes moved in its window | bytes checked before the cut | lost/reordered | errors |\n\
                 |---|---|---|---|---|---|---|---|---|---|\n",
            );
            for f in &self.faults {
                out.push_str(&format!(
                    "| {} | {:.1} s | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                    f.fault.name(),
                    f.at.as_secs_f64(),
                    f.live,
                    f.held,
                    f.broken,
                    f.reconnected,
                    f.bytes_moved,
                    f.verified_before_cut,
                    f.mismatched,
                    f.errors.len()
                ));
            }
            for f in &self.faults {
                for n in &f.notes {
                    out.push_str(&format!("{}: {n}\n", f.fault.name()));
                }
                for e in f.errors.iter().take(SHOWN_ERRORS) {
                    out.push_str(&format!("{}: error: {e}\n", f.fault.name()));
                }
            }
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
    /// RTMPS (else RTMPT).
    rtmps: bool,
    /// The client finished its handshakes: a stream, not an attempt.
    established: AtomicBool,
    /// This attempt is over (ended, failed or killed).
    ended: AtomicBool,
    /// Dropped on purpose by `kill-clients`.
    killed: AtomicBool,
    /// Cut by the sink's restart.
    cut: AtomicBool,
    /// Fires to make the client drop its connection.
    kill: CancellationToken,
    /// A second handle on the client's socket, to set SO_LINGER 0 on it.
    ctl: Mutex<Option<std::net::TcpStream>>,
    /// For a reconnect after a cut: counts it once it is established.
    reconnects: Option<Arc<AtomicUsize>>,
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

    /// The client finished its handshakes.
    fn establish(&self) {
        self.established.store(true, Relaxed);
        if let Some(n) = &self.reconnects {
            n.fetch_add(1, Relaxed);
        }
    }

    /// Ended by a fault (so an error on it is expected).
    fn faulted(&self) -> bool {
        self.killed.load(Relaxed) || self.cut.load(Relaxed)
    }

    /// Bytes received so far, both directions.
    fn received(&self) -> u64 {
        self.up_received.load(Relaxed) + self.down_received.load(Relaxed)
    }

    /// Established and not over: a live stream.
    fn live(&self) -> bool {
        self.established.load(Relaxed) && !self.ended.load(Relaxed) && !self.faulted()
    }
}

type Registry = Arc<Mutex<HashMap<u64, Arc<Shared>>>>;
/// Failures with the time they were seen, for per-fault attribution.
type Errors = Arc<Mutex<Vec<(Instant, String)>>>;

fn push_error(errors: &Errors, e: String) {
    errors.lock().unwrap().push((Instant::now(), e));
}

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

/// One life of the sink between restarts: stopping it closes its listener
/// and drops its connections; `tasks` tells when all of that is done.
#[derive(Clone, Default)]
struct Generation {
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Generation {
    /// Serves `listener` as this generation (see [`sink_accept`]).
    fn start(&self, listener: TcpListener, env: &Env, tracker: &TaskTracker) {
        tokio::spawn(self.tasks.track_future(sink_accept(
            listener,
            Arc::clone(&env.registry),
            Arc::clone(&env.errors),
            env.opts.clone(),
            env.clock,
            tracker.clone(),
            self.clone(),
        )));
    }
}

/// Accepts until the hard deadline or until `generation` is stopped (the
/// `upstream-restart` fault): then the listener closes and every
/// connection of this generation is dropped, its stream marked as cut first.
async fn sink_accept(
    listener: TcpListener,
    registry: Registry,
    errors: Errors,
    opts: Options,
    clock: Clock,
    tracker: TaskTracker,
    generation: Generation,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = sleep_until(clock.hard) => return,
            () = generation.stop.cancelled() => return,
        };
        match accepted {
            Ok((stream, _)) => {
                let registry = Arc::clone(&registry);
                let errors = Arc::clone(&errors);
                let opts = opts.clone();
                let stop = generation.stop.clone();
                tracker.spawn(generation.tasks.track_future(async move {
                    let mine: Mutex<Option<Arc<Shared>>> = Mutex::new(None);
                    let conn = timeout_at(
                        clock.hard,
                        sink_conn(stream, &registry, &opts, clock, &mine),
                    );
                    let r = tokio::select! {
                        r = conn => r.unwrap_or_else(|_| Err("sink: hard deadline reached".into())),
                        () = stop.cancelled() => {
                            // Marked before the socket is dropped (when this
                            // select returns), so the client knows why.
                            if let Some(s) = mine.lock().unwrap().take() {
                                s.cut.store(true, Relaxed);
                            }
                            Ok(())
                        }
                    };
                    if let Err(e) = r {
                        push_error(&errors, e);
                    }
                }));
            }
            Err(e) => {
                push_error(&errors, format!("sink accept: {e}"));
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
    mine: &Mutex<Option<Arc<Shared>>>,
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
    *mine.lock().unwrap() = Some(Arc::clone(&shared));
    // A stream killed on purpose (its connection reset by the client) ends
    // quietly at the sink too.
    let killed = || shared.killed.load(Relaxed);
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
            if Instant::now() >= clock.stop_sending || killed() {
                break;
            }
            let data = producer.next(chunk);
            // Counted as sent once handed over: bytes of a write cut short
            // by a fault may still arrive, and must not look invented.
            shared.down_sent.fetch_add(data.len() as u64, Relaxed);
            match timeout(STEP, wr.write_all(&data)).await {
                Ok(Ok(())) => {}
                _ if killed() => break,
                Ok(Err(e)) => {
                    result = Err(format!("sink {key:#x}: write: {e}"));
                    break;
                }
                Err(_) => {
                    result = Err(format!("sink {key:#x}: write stalled for {STEP:?}"));
                    break;
                }
            }
        }
        shared.down_done.store(true, Relaxed);
        result
    };
    let reader = async {
        let mut checker = Checker::new(key ^ UP);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if shared.complete() || killed() {
                return Ok(());
            }
            if Instant::now() >= clock.drained {
                return Err(format!("sink {key:#x}: drain deadline reached"));
            }
            match timeout(Duration::from_millis(50), rd.read(&mut buf)).await {
                Err(_) => {}
                Ok(_) if killed() => return Ok(()),
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
    if killed() {
        return Ok(());
    }
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

/// Counts a client connection while it is open.
struct OpenConn(Arc<AtomicUsize>);

impl Drop for OpenConn {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// TCP connect; keeps a second handle on the socket in `shared.ctl` so
/// `kill-clients` can set SO_LINGER 0 on it (the slot drops that handle
/// when the attempt ends).
async fn dial(
    addr: SocketAddr,
    shared: &Shared,
    conns: &Arc<AtomicUsize>,
    what: &str,
) -> Result<(TcpStream, OpenConn), String> {
    let tcp = timeout(STEP, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("{what}: TCP connect timed out"))?
        .map_err(|e| format!("{what}: TCP connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let std = tcp.into_std().map_err(|e| format!("{what}: socket: {e}"))?;
    let ctl = std
        .try_clone()
        .map_err(|e| format!("{what}: dup socket: {e}"))?;
    *shared.ctl.lock().unwrap() = Some(ctl);
    let tcp = TcpStream::from_std(std).map_err(|e| format!("{what}: socket: {e}"))?;
    conns.fetch_add(1, Relaxed);
    Ok((tcp, OpenConn(Arc::clone(conns))))
}

#[allow(clippy::too_many_arguments)]
async fn rtmps_client(
    addr: SocketAddr,
    tls: Arc<ClientConfig>,
    key: u64,
    shared: Arc<Shared>,
    opts: Options,
    clock: Clock,
    connected: Arc<AtomicUsize>,
    conns: Arc<AtomicUsize>,
) -> Result<(), String> {
    let (tcp, _open) = dial(addr, &shared, &conns, "RTMPS").await?;
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
    shared.establish();
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
            shared.up_sent.fetch_add(data.len() as u64, Relaxed);
            let written = async {
                wr.write_all(&data).await?;
                wr.flush().await
            };
            if let Err(e) = written.await {
                result = Err(format!("RTMPS {key:#x}: write: {e}"));
                break;
            }
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
    conns: Arc<AtomicUsize>,
) -> Result<(), String> {
    let (tcp, _open) = dial(addr, &shared, &conns, "RTMPT").await?;
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
    shared.establish();
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
            shared.up_sent.fetch_add(body.len() as u64, Relaxed);
            t.data("send", &body).await?
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
    /// The pair `cert-reload` writes over `cert` and `key`.
    next_cert_pem: String,
    next_key_pem: String,
    next_der: CertificateDer<'static>,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn make_pki() -> Result<Pki, String> {
    let names = vec!["localhost".to_string(), "127.0.0.1".into()];
    let generated =
        rcgen::generate_simple_self_signed(names.clone()).map_err(|e| format!("rcgen: {e}"))?;
    let next = rcgen::generate_simple_self_signed(names).map_err(|e| format!("rcgen: {e}"))?;
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
        next_cert_pem: next.cert.pem(),
        next_key_pem: next.signing_key.serialize_pem(),
        next_der: next.cert.der().clone(),
    };
    std::fs::write(&pki.cert, generated.cert.pem()).map_err(|e| format!("cert.pem: {e}"))?;
    std::fs::write(&pki.key, generated.signing_key.serialize_pem())
        .map_err(|e| format!("key.pem: {e}"))?;
    Ok(pki)
}

/// Sum of every series of `name` (e.g. `rtmpgate_connections_active`).
fn metric_sum(metrics: &Metrics, name: &str) -> f64 {
    metrics
        .encode()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let value = if rest.starts_with('{') {
                rest.split_once("} ")?.1
            } else {
                rest.strip_prefix(' ')?
            };
            value.trim().parse::<f64>().ok()
        })
        .sum()
}

/// Polls (every 20 ms, at most `limit`) until `done` holds.
async fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(20)).await;
    }
}

/// Everything the client slots and the fault driver share.
struct Env {
    opts: Options,
    clock: Clock,
    rtmps_addr: SocketAddr,
    rtmp_addr: SocketAddr,
    tls: Arc<ClientConfig>,
    registry: Registry,
    /// Every stream (attempt) ever started, for the final accounting.
    all: Mutex<Vec<Arc<Shared>>>,
    /// Streams that completed their handshakes (for the RSS sample).
    connected: Arc<AtomicUsize>,
    /// Client connections open now.
    conns: Arc<AtomicUsize>,
    /// Cut streams whose slot has established a new stream.
    reconnected: Arc<AtomicUsize>,
    reconnect_attempts: AtomicUsize,
    errors: Errors,
}

/// How a client slot ended.
enum SlotEnd {
    /// Its stream(s) ran to the end.
    Held,
    /// Killed on purpose.
    Killed,
}

fn stream_key(slot: usize, attempt: u64) -> u64 {
    splitmix(0x736f_616b ^ slot as u64 ^ (attempt << 40)) | 1
}

/// One client slot: a stream, and after a cut by the upstream restart a new
/// stream (new key) as soon as the upstream is back, until sending ends.
async fn slot(env: Arc<Env>, i: usize, rtmps: bool) -> Result<SlotEnd, String> {
    let mut attempt = 0u64;
    let mut reconnecting = false;
    loop {
        let key = stream_key(i, attempt);
        attempt += 1;
        let shared = Arc::new(Shared {
            rtmps,
            reconnects: reconnecting.then(|| Arc::clone(&env.reconnected)),
            ..Shared::default()
        });
        env.registry
            .lock()
            .unwrap()
            .insert(key, Arc::clone(&shared));
        env.all.lock().unwrap().push(Arc::clone(&shared));
        let (opts, clock) = (env.opts.clone(), env.clock);
        let (connected, conns) = (Arc::clone(&env.connected), Arc::clone(&env.conns));
        let work = async {
            if rtmps {
                let tls = Arc::clone(&env.tls);
                let addr = env.rtmps_addr;
                let s = Arc::clone(&shared);
                rtmps_client(addr, tls, key, s, opts, clock, connected, conns).await
            } else {
                let s = Arc::clone(&shared);
                rtmpt_client(env.rtmp_addr, key, s, opts, clock, connected, conns).await
            }
        };
        let result = tokio::select! {
            r = timeout_at(clock.hard, work) => {
                r.unwrap_or_else(|_| Err(format!("stream {key:#x}: hard deadline reached")))
            }
            () = shared.kill.cancelled() => Err("killed".into()),
        };
        shared.ended.store(true, Relaxed);
        drop(shared.ctl.lock().unwrap().take());
        let established = shared.established.load(Relaxed);
        if established {
            reconnecting = false;
        }
        match result {
            Ok(()) => return Ok(SlotEnd::Held),
            Err(_) if shared.killed.load(Relaxed) => return Ok(SlotEnd::Killed),
            Err(e) if shared.cut.load(Relaxed) => {
                if Instant::now() + Duration::from_secs(1) >= clock.stop_sending {
                    return Err(format!("{e} (cut too late to reconnect)"));
                }
                reconnecting = true;
            }
            Err(e) if reconnecting && !established => {
                env.reconnect_attempts.fetch_add(1, Relaxed);
                if Instant::now() + Duration::from_millis(500) >= clock.stop_sending {
                    return Err(format!("could not reconnect before sending ended: {e}"));
                }
                sleep(RECONNECT_BACKOFF).await;
            }
            Err(e) => return Err(e),
        }
    }
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
        // Every soak client is 127.0.0.1: no per-client cap.
        max_connections_per_client: 0,
        // Only the cert-reload fault reloads, explicitly.
        tls_reload_interval: Duration::from_secs(3600),
        ..Config::default()
    };
    config.timeouts.drain = Duration::from_secs(2);
    config.timeouts.idle = Some(Duration::from_secs(120));
    config.rtmpt.limits.max_sessions = 100_000;
    config.rtmpt.limits.max_per_client = 100_000;
    config.rtmpt.open_rate.per_second = 0;
    config.rtmpt.limits.expiry = opts.rtmpt_expiry;
    let metrics = Arc::new(Metrics::default());
    let gateway = match Gateway::bind(config, Arc::clone(&metrics)).await {
        Ok(g) => g,
        Err(e) => return fail(&mut report, format!("gateway failed to start: {e}")),
    };
    let reloader = gateway.tls_reloader();
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

    // Clients trust the certificate and the one cert-reload swaps in.
    let mut roots = RootCertStore::empty();
    roots.add(pki.der.clone()).expect("valid trust anchor");
    roots.add(pki.next_der.clone()).expect("valid trust anchor");
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

    report.rss_before_kib = proc_status_kib("VmRSS");
    let total = opts.rtmps_streams + opts.rtmpt_streams;
    let env = Arc::new(Env {
        opts: opts.clone(),
        clock,
        rtmps_addr,
        rtmp_addr,
        tls,
        registry,
        all: Mutex::new(Vec::with_capacity(total)),
        connected: Arc::new(AtomicUsize::new(0)),
        conns: Arc::new(AtomicUsize::new(0)),
        reconnected: Arc::new(AtomicUsize::new(0)),
        reconnect_attempts: AtomicUsize::new(0),
        errors: Arc::clone(&errors),
    });
    let generation = Generation::default();
    generation.start(sink, &env, &sink_tasks);
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..total {
        let is_rtmps = i < opts.rtmps_streams;
        let at = clock.start + opts.ramp.mul_f64(i as f64 / total.max(1) as f64);
        let env = Arc::clone(&env);
        clients.spawn(async move {
            sleep_until(at).await;
            let r = slot(env, i, is_rtmps).await;
            (is_rtmps, Instant::now(), r)
        });
    }

    // Faults, in order, over the sending window after the ramp.
    let driver = Faults {
        env: Arc::clone(&env),
        metrics: Arc::clone(&metrics),
        reloader,
        sink: SinkControl {
            addr: sink_addr,
            generation: Mutex::new(generation),
            tracker: sink_tasks.clone(),
        },
        cert_files: (
            (pki.cert.clone(), pki.next_cert_pem.clone()),
            (pki.key.clone(), pki.next_key_pem.clone()),
            pki.next_der.clone(),
        ),
    };
    let mut faults = opts.faults.clone();
    faults.sort();
    faults.dedup();
    let fault_task = tokio::spawn(async move {
        let mut reports = Vec::new();
        for fault in faults {
            let at = clock.start + opts.ramp + opts.duration.mul_f64(fault.at_share());
            sleep_until(at).await;
            reports.push(driver.inject(fault, at - clock.start).await);
        }
        reports
    });

    // RSS once everything is established (or half way through sending).
    let half = clock.start + opts.ramp + opts.duration / 2;
    while env.connected.load(Relaxed) < total && Instant::now() < half && !clients.is_empty() {
        sleep(Duration::from_millis(20)).await;
    }
    // Let the first buffers fill before sampling.
    sleep_until((Instant::now() + opts.tick * 4).min(clock.stop_sending)).await;
    report.rss_connected_kib = proc_status_kib("VmRSS");
    report.connected_at_sample = env.connected.load(Relaxed);

    let mut slot_errors = Vec::new();
    while let Some(joined) = clients.join_next().await {
        match joined {
            Ok((is_rtmps, _, Ok(SlotEnd::Held))) => {
                if is_rtmps {
                    report.rtmps_held += 1;
                } else {
                    report.rtmpt_held += 1;
                }
            }
            Ok((_, _, Ok(SlotEnd::Killed))) => report.killed += 1,
            Ok((_, when, Err(e))) => slot_errors.push((when, e)),
            Err(e) => slot_errors.push((Instant::now(), format!("client task: {e}"))),
        }
    }
    match fault_task.await {
        Ok(reports) => report.faults = reports,
        Err(e) => report.errors.push(format!("fault driver: {e}")),
    }
    sink_tasks.close();
    if timeout_at(clock.hard + Duration::from_secs(1), sink_tasks.wait())
        .await
        .is_err()
    {
        report.errors.push("sink connections did not end".into());
    }
    report.elapsed = start.elapsed();

    // No leak: every client is gone, so rtmpgate must hold no connection
    // and, once killed sessions expired, no RTMPT session.
    let leak_bound = opts.rtmpt_expiry + Duration::from_secs(5);
    let clean = wait_for(leak_bound, || {
        metric_sum(&metrics, "rtmpgate_connections_active") == 0.0
            && metric_sum(&metrics, "rtmpgate_rtmpt_sessions_active") == 0.0
    })
    .await;
    if !clean {
        report.errors.push(format!(
            "leak: {} connections and {} RTMPT sessions still active {leak_bound:?} after the \
             last client ended",
            metric_sum(&metrics, "rtmpgate_connections_active"),
            metric_sum(&metrics, "rtmpgate_rtmpt_sessions_active")
        ));
    }

    for s in env.all.lock().unwrap().iter() {
        let (us, ur) = (s.up_sent.load(Relaxed), s.up_received.load(Relaxed));
        let (ds, dr) = (s.down_sent.load(Relaxed), s.down_received.load(Relaxed));
        report.up_sent += us;
        report.up_received += ur;
        report.down_sent += ds;
        report.down_received += dr;
        if s.faulted() || !s.established.load(Relaxed) {
            // Bytes in flight at a kill or cut are gone by design; what was
            // received must still be exact, and no more than was sent.
            report.mismatched += bad_bytes(s);
        } else {
            report.lost += us.saturating_sub(ur) + ds.saturating_sub(dr);
            report.mismatched += s.up_bad.load(Relaxed) + s.down_bad.load(Relaxed);
        }
        if s.cut.load(Relaxed) {
            report.broken += 1;
        }
    }
    report.reconnected = env.reconnected.load(Relaxed);
    report.reconnect_attempts = env.reconnect_attempts.load(Relaxed);

    let total_received = report.up_received + report.down_received;
    let ends: Vec<u64> = report
        .faults
        .iter()
        .skip(1)
        .map(|f| f.received_at)
        .chain([total_received])
        .collect();
    for (f, end) in report.faults.iter_mut().zip(ends) {
        f.bytes_moved = end.saturating_sub(f.received_at);
    }
    // Failures go to the fault whose window they fall in (from it to the
    // next fault), or to the run.
    let mut timed: Vec<(Instant, String)> = slot_errors;
    timed.extend(errors.lock().unwrap().drain(..));
    for (when, e) in timed {
        let since = when.saturating_duration_since(start);
        match report.faults.iter_mut().rev().find(|f| f.at <= since) {
            Some(f) => {
                f.held = f.held.saturating_sub(1);
                f.errors.push(e);
            }
            None => report.errors.push(e),
        }
    }
    let fault_errors: usize = report.faults.iter().map(|f| f.errors.len()).sum();
    if fault_errors > 0 {
        report.errors.push(format!(
            "{fault_errors} failures during faults (listed with their fault)"
        ));
    }

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
         [--drain SECS] [--kill-percent P] [--fault upstream-restart|kill-clients|cert-reload]..."
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
            "--kill-percent" => opts.kill_percent = num(value()) as u32,
            "--fault" => opts
                .faults
                .push(Fault::parse(&value()).unwrap_or_else(|| usage())),
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
        // The table goes to stdout; rtmpgate's log lines (many during the
        // faults) to stderr.
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "soak: {} RTMPS + {} RTMPT streams, {:?} each, {} B/s each way per stream, faults: {}",
        opts.rtmps_streams,
        opts.rtmpt_streams,
        opts.duration,
        opts.rate,
        if opts.faults.is_empty() {
            "none".to_string()
        } else {
            opts.faults
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let report = runtime.block_on(run(opts));
    print!("{}", report.table());
    if report.passed() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
