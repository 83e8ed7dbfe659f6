//! Certificate reload without restart: on SIGHUP and when the files change.
//!
//! Owns deciding *when* to reload and reporting the result (log line and
//! `rtmpgate_tls_reloads_total{result}`). Follows ghostunnel's model: SIGHUP
//! plus a periodic check of the files' *contents*. Comparing contents (not
//! modification times or inotify events on the files) is what catches
//! Kubernetes Secret volumes and cert-manager, which swap a `..data` symlink
//! to a new directory: the paths stay the same, what they resolve to changes.
//!
//! Reading and parsing the files is blocking I/O: [`TlsReloader::watch`]
//! runs it on tokio's blocking pool, never on a runtime worker, where a
//! slow or stuck volume (NFS, a FUSE secret store) would stall every
//! connection sharing that worker.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{CertResolver, CertStore, TlsError};
use crate::config::{CertPair, TlsSource};
use crate::metrics::{Metrics, ResultLabels};

/// Reloads the certificate store from its configured files.
pub struct TlsReloader {
    resolver: Arc<CertResolver>,
    source: TlsSource,
    sni: Vec<CertPair>,
    metrics: Arc<Metrics>,
    /// Fingerprint of the file contents last tried, loaded or not: a bad
    /// update is reported once, not at every check.
    last_seen: Mutex<Option<u64>>,
}

impl TlsReloader {
    /// A reloader for the store currently served by `resolver`.
    pub fn new(
        resolver: Arc<CertResolver>,
        source: TlsSource,
        sni: Vec<CertPair>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let reloader = Self {
            resolver,
            source,
            sni,
            metrics,
            last_seen: Mutex::new(None),
        };
        let now = reloader.fingerprint();
        *reloader.last_seen.lock().unwrap_or_else(|p| p.into_inner()) = now;
        reloader
    }

    /// Whether there are files to reload from (not a generated certificate).
    pub fn has_files(&self) -> bool {
        matches!(self.source, TlsSource::Files { .. })
    }

    /// Hash of every configured file's contents; `None` while one is
    /// unreadable (mid-swap, say).
    fn fingerprint(&self) -> Option<u64> {
        let mut h = DefaultHasher::new();
        let mut paths = Vec::new();
        if let TlsSource::Files { cert, key } = &self.source {
            paths.extend([cert, key]);
        }
        for p in &self.sni {
            paths.extend([&p.cert, &p.key]);
        }
        for path in paths {
            std::fs::read(path).ok()?.hash(&mut h);
        }
        Some(h.finish())
    }

    /// Loads every pair again and swaps them in; on error keeps the old ones.
    pub fn reload(&self, trigger: &'static str) -> Result<(), TlsError> {
        *self.last_seen.lock().unwrap_or_else(|p| p.into_inner()) = self.fingerprint();
        match CertStore::load(&self.source, &self.sni) {
            Ok(store) => {
                self.resolver.replace(store);
                self.count("ok");
                tracing::info!(
                    trigger,
                    "TLS certificates reloaded; new connections use them"
                );
                Ok(())
            }
            Err(err) => {
                self.count("error");
                tracing::error!(trigger, %err, "TLS reload failed; still serving the previous certificates");
                Err(err)
            }
        }
    }

    fn count(&self, result: &'static str) {
        self.metrics
            .tls_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Reloads if the files' contents changed since the last attempt.
    pub fn check(&self) {
        let now = self.fingerprint();
        let changed = {
            let last = self.last_seen.lock().unwrap_or_else(|p| p.into_inner());
            now.is_some() && *last != now
        };
        if changed {
            let _ = self.reload("file_change");
        }
    }

    /// Runs until `stop`: reload on SIGHUP, check the files every `interval`.
    pub async fn watch(self: Arc<Self>, interval: Duration, stop: CancellationToken) {
        #[cfg(unix)]
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGHUP; relying on the periodic file check");
                None
            }
        };
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let hangup = async {
                match hup.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<Option<()>>();
            let job: fn(&Self) = tokio::select! {
                () = stop.cancelled() => return,
                _ = hangup => {
                    if !self.has_files() {
                        tracing::info!("SIGHUP: no certificate files configured, nothing to reload");
                        continue;
                    }
                    |r| {
                        let _ = r.reload("sighup");
                    }
                }
                _ = tick.tick() => Self::check,
            };
            // A stuck read keeps its blocking thread, not this task: stop
            // still ends the watch (the next check waits for it no more).
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.off_runtime(job) => {}
            }
        }
    }

    /// Runs `job` (file reads, PEM parsing) on the blocking pool.
    async fn off_runtime(self: &Arc<Self>, job: fn(&Self)) {
        let me = Arc::clone(self);
        if let Err(err) = tokio::task::spawn_blocking(move || job(&me)).await {
            tracing::error!(%err, "TLS reload check failed; still serving the previous certificates");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &std::path::Path, name: &str) -> (String, String) {
        let g = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        std::fs::write(dir.join("tls.crt"), g.cert.pem()).unwrap();
        std::fs::write(dir.join("tls.key"), g.signing_key.serialize_pem()).unwrap();
        (g.cert.pem(), g.signing_key.serialize_pem())
    }

    #[test]
    fn file_change_swaps_and_bad_update_keeps_old() {
        let dir = std::env::temp_dir().join(format!("rtmpgate-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_pair(&dir, "one.test");
        let source = TlsSource::Files {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        };
        let resolver = Arc::new(CertResolver::new(CertStore::load(&source, &[]).unwrap()));
        let metrics = Arc::new(Metrics::default());
        let r = TlsReloader::new(Arc::clone(&resolver), source, vec![], Arc::clone(&metrics));
        let first = resolver.current().default_leaf().clone();

        r.check();
        assert_eq!(
            resolver.current().default_leaf(),
            &first,
            "unchanged files: no reload"
        );

        write_pair(&dir, "two.test");
        r.check();
        let second = resolver.current().default_leaf().clone();
        assert_ne!(second, first, "changed files are picked up");

        // A key that does not match: rejected, previous pair kept, counted.
        let other = rcgen::generate_simple_self_signed(vec!["x.test".into()]).unwrap();
        std::fs::write(dir.join("tls.key"), other.signing_key.serialize_pem()).unwrap();
        r.check();
        assert_eq!(resolver.current().default_leaf(), &second);
        let text = metrics.encode();
        assert!(
            text.contains("rtmpgate_tls_reloads_total{result=\"error\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("rtmpgate_tls_reloads_total{result=\"ok\"} 1"),
            "{text}"
        );
    }

    /// A certificate read that never returns (here: a FIFO nobody writes,
    /// as a hung network volume behaves) must not stall the runtime thread
    /// the watcher runs on. A current-thread runtime makes it visible: a
    /// blocking read on it stops every other task.
    #[cfg(unix)]
    #[test]
    fn a_stuck_certificate_read_does_not_stall_the_runtime() {
        let dir = std::env::temp_dir().join(format!("rtmpgate-reload-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (_, key_pem) = write_pair(&dir, "one.test");
        let key = dir.join("tls.key");
        let source = TlsSource::Files {
            cert: dir.join("tls.crt"),
            key: key.clone(),
        };
        let resolver = Arc::new(CertResolver::new(CertStore::load(&source, &[]).unwrap()));
        let metrics = Arc::new(Metrics::default());
        let r = Arc::new(TlsReloader::new(resolver, source, vec![], metrics));
        std::fs::remove_file(&key).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&key)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo failed");

        let (tx, rx) = std::sync::mpsc::channel();
        let runtime = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let stop = CancellationToken::new();
                // The first tick is at once: the watcher opens the FIFO.
                let watch = tokio::spawn(r.watch(Duration::from_millis(10), stop.clone()));
                tokio::time::sleep(Duration::from_millis(200)).await;
                let _ = tx.send(());
                stop.cancel();
                let _ = watch.await;
            });
        });
        let ran = rx.recv_timeout(Duration::from_secs(5)).is_ok();

        // Release the reader either way: opening the FIFO read-write never
        // blocks (Linux) and lets the reader's open return; put the real
        // key back, then close, which gives the reader EOF.
        let writer = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&key)
            .unwrap();
        std::fs::remove_file(&key).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        drop(writer);
        runtime.join().unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert!(
            ran,
            "a blocked certificate read stalled the runtime thread for 5 s"
        );
    }
}
