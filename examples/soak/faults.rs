//! The faults the soak tool injects (see the tool's documentation in
//! `examples/soak.rs`): what each does to the running system and the checks
//! that must hold afterwards. The clients, the sink and the accounting stay
//! in `soak.rs`; this module only reaches into them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rtmpgate::metrics::Metrics;
use rustls::client::ClientConfig;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, sleep, timeout};
use tokio_rustls::TlsConnector;
use tokio_util::task::TaskTracker;

use super::{CERT_PROBES, Env, FAULT_CHECK, Generation, STEP, Shared, metric_sum, wait_for};

/// A fault injected mid-run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// Abruptly drop a share of the client connections.
    KillClients,
    /// Write a new certificate and key and trigger a reload.
    CertReload,
    /// Stop the sink upstream (listener and connections) and restart it.
    UpstreamRestart,
}

impl Fault {
    /// The flag value.
    pub fn name(self) -> &'static str {
        match self {
            Self::KillClients => "kill-clients",
            Self::CertReload => "cert-reload",
            Self::UpstreamRestart => "upstream-restart",
        }
    }

    /// Where in the sending window (after the ramp) the fault happens.
    pub(super) fn at_share(self) -> f64 {
        match self {
            Self::KillClients => 0.2,
            Self::CertReload => 0.4,
            Self::UpstreamRestart => 0.6,
        }
    }

    pub(super) fn parse(text: &str) -> Option<Self> {
        [Self::KillClients, Self::CertReload, Self::UpstreamRestart]
            .into_iter()
            .find(|f| f.name() == text)
    }
}

/// What one fault did and whether its checks held.
#[derive(Debug, Clone)]
pub struct FaultReport {
    /// Which fault.
    pub fault: Fault,
    /// When, since the start of the run.
    pub at: Duration,
    /// Streams live when it happened.
    pub live: usize,
    /// Of those, streams neither broken by it nor failing otherwise in its
    /// window (from it to the next fault, or the end).
    pub held: usize,
    /// Bytes received by all streams in its window, both directions.
    pub bytes_moved: u64,
    /// Total bytes received by all streams when it happened.
    pub(super) received_at: u64,
    /// Streams it ended (killed, or cut by the upstream restart): expected.
    pub broken: usize,
    /// Of those, reconnected as new streams that then ran to the end.
    pub reconnected: usize,
    /// Bytes the broken streams had received (each side) before the end,
    /// every one checked.
    pub verified_before_cut: u64,
    /// Bytes of the broken streams that differ from the expected stream.
    pub mismatched: u64,
    /// Failures not caused by this fault in its window (streams broken
    /// otherwise, failed checks).
    pub errors: Vec<String>,
    /// What the fault-specific checks saw.
    pub notes: Vec<String>,
}

/// The gateway's handles the fault driver needs.
pub(super) struct Faults {
    pub(super) env: Arc<Env>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) reloader: Option<Arc<rtmpgate::tls::TlsReloader>>,
    pub(super) sink: SinkControl,
    pub(super) cert_files: CertFiles,
}

/// Restarts the sink.
pub(super) struct SinkControl {
    pub(super) addr: SocketAddr,
    pub(super) generation: Mutex<Generation>,
    pub(super) tracker: TaskTracker,
}

impl Faults {
    fn live(&self) -> Vec<Arc<Shared>> {
        let all = self.env.all.lock().unwrap();
        all.iter().filter(|s| s.live()).cloned().collect()
    }

    /// Waits until every stream in `streams` that is still live received
    /// more than it had at the call.
    async fn still_moving(&self, streams: &[Arc<Shared>], what: &str, errors: &mut Vec<String>) {
        let before: Vec<u64> = streams.iter().map(|s| s.received()).collect();
        let moved = wait_for(FAULT_CHECK, || {
            streams
                .iter()
                .zip(&before)
                .all(|(s, b)| !s.live() || s.received() > *b)
        })
        .await;
        if !moved {
            let stuck = streams
                .iter()
                .zip(&before)
                .filter(|(s, b)| s.live() && s.received() <= **b)
                .count();
            errors.push(format!(
                "{stuck} of {} {what} received nothing for {FAULT_CHECK:?}",
                streams.len()
            ));
        }
    }

    pub(super) async fn inject(&self, fault: Fault, at: Duration) -> FaultReport {
        let live = self.live();
        let received_at = self
            .env
            .all
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.received())
            .sum();
        let mut report = FaultReport {
            fault,
            at,
            live: live.len(),
            held: 0,
            bytes_moved: 0,
            received_at,
            broken: 0,
            reconnected: 0,
            verified_before_cut: 0,
            mismatched: 0,
            errors: Vec::new(),
            notes: Vec::new(),
        };
        match fault {
            Fault::KillClients => self.kill_clients(live, &mut report).await,
            Fault::CertReload => self.cert_reload(live, &mut report).await,
            Fault::UpstreamRestart => self.upstream_restart(&mut report).await,
        }
        report.held = report.live.saturating_sub(report.broken);
        report
    }

    async fn kill_clients(&self, live: Vec<Arc<Shared>>, report: &mut FaultReport) {
        let want = (live.len() * self.env.opts.kill_percent as usize).div_ceil(100);
        let victims: Vec<Arc<Shared>> = (0..want)
            .map(|j| Arc::clone(&live[j * live.len() / want.max(1)]))
            .collect();
        let active_before = metric_sum(&self.metrics, "rtmpgate_connections_active");
        for v in &victims {
            v.killed.store(true, Relaxed);
            if let Some(ctl) = v.ctl.lock().unwrap().take() {
                // RST on close instead of FIN: no clean close of any kind.
                let _ = socket2::SockRef::from(&ctl).set_linger(Some(Duration::ZERO));
            }
            v.kill.cancel();
        }
        report.broken = victims.len();
        let (rtmps, rtmpt) = (
            victims.iter().filter(|v| v.rtmps).count(),
            victims.iter().filter(|v| !v.rtmps).count(),
        );
        let others: Vec<Arc<Shared>> = live
            .into_iter()
            .filter(|s| !s.killed.load(Relaxed))
            .collect();
        // The killed clients' sockets close, then rtmpgate's gauge must fall
        // back to the client connections still open.
        let conns = &self.env.conns;
        let open_before = conns.load(Relaxed);
        let fell = wait_for(FAULT_CHECK, || {
            let open = conns.load(Relaxed);
            open + victims.len() <= open_before
                && metric_sum(&self.metrics, "rtmpgate_connections_active") as usize == open
        })
        .await;
        let active_after = metric_sum(&self.metrics, "rtmpgate_connections_active");
        report.notes.push(format!(
            "killed {} ({rtmps} RTMPS, {rtmpt} RTMPT) with RST; rtmpgate_connections_active \
             {active_before} → {active_after}, client connections open {}",
            victims.len(),
            conns.load(Relaxed)
        ));
        if !fell {
            report.errors.push(format!(
                "rtmpgate_connections_active stayed at {active_after}, {} client connections open",
                conns.load(Relaxed)
            ));
        }
        self.still_moving(&others, "other streams", &mut report.errors)
            .await;
        report.notes.push(format!(
            "all {} other live streams kept moving",
            others.len()
        ));
        for v in &victims {
            report.verified_before_cut += v.received();
            report.mismatched += bad_bytes(v);
        }
    }

    async fn cert_reload(&self, live: Vec<Arc<Shared>>, report: &mut FaultReport) {
        let Some(reloader) = &self.reloader else {
            report.errors.push("no TLS reloader".into());
            return;
        };
        let (cert, key, next_der) = &self.cert_files;
        let write = std::fs::write(&cert.0, &cert.1).and_then(|()| std::fs::write(&key.0, &key.1));
        if let Err(e) = write {
            report.errors.push(format!("writing the new pair: {e}"));
            return;
        }
        reloader.check();
        let ok = metric_sum(&self.metrics, "rtmpgate_tls_reloads_total");
        let text = self.metrics.encode();
        let failed = text.lines().any(|l| {
            l.starts_with("rtmpgate_tls_reloads_total{result=\"error\"}") && !l.ends_with(" 0")
        });
        if ok != 1.0 || failed {
            report.errors.push(format!(
                "want exactly one successful reload, metrics say {ok} reloads (error: {failed})"
            ));
        }
        let mut seen_new = 0;
        for _ in 0..CERT_PROBES {
            match probe_leaf(self.env.rtmps_addr, Arc::clone(&self.env.tls)).await {
                Ok(leaf) if leaf == *next_der => seen_new += 1,
                Ok(_) => report
                    .errors
                    .push("a new RTMPS connection got the old certificate".into()),
                Err(e) => report.errors.push(format!("certificate probe: {e}")),
            }
        }
        report.notes.push(format!(
            "reloaded; {seen_new}/{CERT_PROBES} new RTMPS connections got the new certificate"
        ));
        let rtmps: Vec<Arc<Shared>> = live.into_iter().filter(|s| s.rtmps).collect();
        self.still_moving(
            &rtmps,
            "RTMPS streams live at the reload",
            &mut report.errors,
        )
        .await;
        report.notes.push(format!(
            "all {} RTMPS streams live at the reload kept moving",
            rtmps.len()
        ));
    }

    async fn upstream_restart(&self, report: &mut FaultReport) {
        let old = self.sink.generation.lock().unwrap().clone();
        let stopping = Instant::now();
        old.stop.cancel();
        old.tasks.close();
        if timeout(FAULT_CHECK, old.tasks.wait()).await.is_err() {
            report.errors.push(format!(
                "the sink's listener and connections were not all closed within {FAULT_CHECK:?}"
            ));
        }
        let stopped_in = stopping.elapsed();
        let downtime = self.env.opts.restart_downtime;
        sleep(downtime).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.sink.addr).await {
                Ok(l) => break Some(l),
                Err(e) if Instant::now() >= deadline => {
                    report
                        .errors
                        .push(format!("rebinding the sink on {}: {e}", self.sink.addr));
                    break None;
                }
                Err(_) => sleep(Duration::from_millis(50)).await,
            }
        };
        let cut: Vec<Arc<Shared>> = {
            let all = self.env.all.lock().unwrap();
            all.iter()
                .filter(|s| s.cut.load(Relaxed))
                .cloned()
                .collect()
        };
        report.broken = cut.len();
        if let Some(listener) = listener {
            let generation = Generation::default();
            generation.start(listener, &self.env, &self.sink.tracker);
            *self.sink.generation.lock().unwrap() = generation;
        }
        let env = &self.env;
        let back = wait_for(FAULT_CHECK, || env.reconnected.load(Relaxed) >= cut.len()).await;
        report.reconnected = env.reconnected.load(Relaxed);
        if !back {
            report.errors.push(format!(
                "{} of {} cut streams reconnected within {FAULT_CHECK:?}",
                report.reconnected,
                cut.len()
            ));
        }
        report.notes.push(format!(
            "sink stopped in {stopped_in:.0?} (listener closed, connections dropped), down \
             {downtime:?} more; {} streams cut, {} reconnected, {} connection attempts failed \
             while it was down",
            cut.len(),
            report.reconnected,
            env.reconnect_attempts.load(Relaxed)
        ));
        for s in &cut {
            report.verified_before_cut += s.received();
            report.mismatched += bad_bytes(s);
        }
    }
}

/// Paths and contents `cert-reload` writes, and the new leaf.
pub(super) type CertFiles = (
    (PathBuf, String),
    (PathBuf, String),
    CertificateDer<'static>,
);

/// Bytes of a stream that differ from the expected ones, plus any received
/// beyond what was sent (bytes that came from nowhere).
pub(super) fn bad_bytes(s: &Shared) -> u64 {
    let extra = s
        .up_received
        .load(Relaxed)
        .saturating_sub(s.up_sent.load(Relaxed))
        + s.down_received
            .load(Relaxed)
            .saturating_sub(s.down_sent.load(Relaxed));
    s.up_bad.load(Relaxed) + s.down_bad.load(Relaxed) + extra
}

/// The leaf certificate a new RTMPS connection is served.
async fn probe_leaf(
    addr: SocketAddr,
    tls: Arc<ClientConfig>,
) -> Result<CertificateDer<'static>, String> {
    let tcp = timeout(STEP, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::try_from("localhost").expect("valid name");
    let mut stream = timeout(STEP, TlsConnector::from(tls).connect(name, tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned()
        .ok_or_else(|| "no certificate".to_string())?;
    let _ = timeout(Duration::from_secs(1), stream.shutdown()).await;
    Ok(leaf)
}
