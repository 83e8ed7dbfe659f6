//! Start-up and shutdown: building the shared state, binding, running the
//! accept loops, draining.
//!
//! Owns the [`Gateway`]: [`Gateway::bind`] is the one place that builds the
//! per-process state ([`ServeContext`], the RTMPT room's [`Rtmpt`]) and
//! binds every socket; [`Gateway::run`] starts one accept loop per listener
//! ([`crate::listener`]), the RTMPT reaper, the certificate watcher and the
//! admin endpoint, then drains at shutdown. What happens on one connection
//! is [`crate::connection`]'s job.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{AuthError, Authorizer};
use crate::config::{Config, TlsSource};
use crate::context::ServeContext;
use crate::endpoint::{ListenScheme, ListenUrl, UpstreamUrl};
use crate::limits::PerClient;
use crate::listener;
use crate::metrics::Metrics;
use crate::overload::Overload;
use crate::rtmpt::{self, Rtmpt};
use crate::tls::{self, CertResolver, CertStore, TlsError, TlsReloader};
use crate::upstream::{UpstreamTlsError, Upstreams};

/// How often the drain looks whether RTMPT sessions are gone.
const DRAIN_POLL: Duration = Duration::from_millis(100);

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The admin address is taken or not ours.
    #[error(
        "cannot listen on admin address {addr}: {source} (is another process using the port? see --admin)"
    )]
    Admin {
        /// The admin address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// A listen address is taken or not ours.
    #[error(
        "cannot listen on {url}: {source} (is another process using the port, or is the address not on this host?)"
    )]
    Bind {
        /// The listener that failed.
        url: ListenUrl,
        /// The OS error.
        source: io::Error,
    },
    /// The TLS certificate or key is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The upstream TLS trust settings are unusable.
    #[error(transparent)]
    UpstreamTls(#[from] UpstreamTlsError),
    /// The stream authorization settings or files are unusable.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// Bound listeners, ready to serve.
pub struct Gateway {
    ctx: Arc<ServeContext>,
    rtmpt: Arc<Rtmpt>,
    listeners: Vec<(ListenUrl, TcpListener)>,
    admin: Option<TcpListener>,
    reloader: Option<Arc<TlsReloader>>,
}

impl Gateway {
    /// Loads TLS material and binds every configured listener.
    pub async fn bind(config: Config, metrics: Arc<Metrics>) -> Result<Self, StartError> {
        let tls = tls_state(&config, &metrics)?;
        let auth = Authorizer::build_with(&config.auth, metrics.auth.clone())?;
        metrics.apps.enable(config.metrics_per_app);
        let pool = |urls: &[UpstreamUrl]| {
            Upstreams::new(
                urls,
                &config.upstream_trust,
                &config.upstream_pins,
                config.timeouts.connect,
                config.upstream_hold_down,
                &metrics,
            )
        };
        let upstreams = pool(&config.upstreams)?;
        let routes = config
            .routes
            .iter()
            .map(|r| Ok((r.clone(), pool(&r.upstreams)?)))
            .collect::<Result<Vec<_>, UpstreamTlsError>>()?;
        let (tls, reloader) = match tls {
            Some(t) => (Some(t.acceptor), Some(t.reloader)),
            None => (None, None),
        };
        let mut listeners = Vec::with_capacity(config.listeners.len());
        for url in &config.listeners {
            let socket = TcpListener::bind(url.addr)
                .await
                .map_err(|source| StartError::Bind { url: *url, source })?;
            listeners.push((*url, socket));
        }
        let admin = match config.admin {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Admin { addr, source })?,
            ),
            None => None,
        };
        let abort = CancellationToken::new();
        let overload = Overload::new(config.overload, &metrics);
        Ok(Self {
            rtmpt: Arc::new(Rtmpt::new(config.rtmpt, config.replica_tag.clone())),
            ctx: Arc::new(ServeContext {
                metrics,
                tls,
                http_done: abort.child_token(),
                abort,
                draining: AtomicBool::new(false),
                per_client: PerClient::new(config.max_connections_per_client),
                overload,
                upstreams,
                routes,
                tasks: TaskTracker::new(),
                next_conn_id: AtomicU64::new(0),
                auth,
                config,
            }),
            listeners,
            admin,
            reloader,
        })
    }

    /// The certificate reloader, when a TLS listener is configured
    /// (SIGHUP and file changes use it; tests may call it directly).
    pub fn tls_reloader(&self) -> Option<Arc<TlsReloader>> {
        self.reloader.clone()
    }

    /// The overload accounting: anything that buffers bytes for a
    /// connection charges them here (tests read it too).
    pub fn overload(&self) -> Arc<Overload> {
        Arc::clone(&self.ctx.overload)
    }

    /// The admin endpoint's bound address, if enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound addresses, in configuration order (useful with port 0).
    pub fn local_addrs(&self) -> Vec<(ListenScheme, SocketAddr)> {
        self.listeners
            .iter()
            .map(|(u, l)| {
                (
                    u.scheme,
                    l.local_addr().expect("bound socket has an address"),
                )
            })
            .collect()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets live
    /// connections run for the drain timeout, closes the rest and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let stop_accepting = CancellationToken::new();
        // If this future is dropped (an embedding program aborts it), the
        // accept loops stop too instead of serving on unsupervised.
        let _stop_on_drop = stop_accepting.clone().drop_guard();
        let tracker = self.ctx.tasks.clone();
        let permits = Arc::new(Semaphore::new(self.ctx.config.max_connections));
        for (url, listener) in self.listeners {
            let addr = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            tracing::info!(listener = %url.scheme, %addr, proxy_protocol = url.proxy_protocol, "listening");
            tokio::spawn(listener::accept_loop(
                listener,
                url,
                Arc::clone(&self.ctx),
                Arc::clone(&self.rtmpt),
                Arc::clone(&permits),
                tracker.clone(),
                stop_accepting.clone(),
            ));
        }
        for (preference, url) in self.ctx.upstreams.urls().enumerate() {
            tracing::info!(upstream = %url, preference, "upstream");
        }
        let stop_reaper = CancellationToken::new();
        tokio::spawn(rtmpt::reap(
            Arc::clone(&self.rtmpt.table),
            stop_reaper.clone(),
        ));
        if let Some(reloader) = self.reloader.clone() {
            let interval = self.ctx.config.tls_reload_interval;
            tokio::spawn(reloader.watch(interval, stop_reaper.clone()));
        }
        if self.ctx.config.auth.keys_file.is_some() {
            let interval = self.ctx.config.tls_reload_interval;
            tokio::spawn(watch_keys(
                Arc::clone(&self.ctx.auth),
                interval,
                stop_reaper.clone(),
            ));
        }
        if let Some(admin) = self.admin {
            let addr = admin
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            tracing::info!(%addr, "admin endpoint: /healthz /readyz /metrics");
            tokio::spawn(crate::admin::serve(
                admin,
                Arc::clone(&self.ctx),
                stop_reaper.clone(),
            ));
        }
        shutdown.await;
        self.ctx.draining.store(true, Relaxed);
        let drain = self.ctx.config.timeouts.drain;
        let deadline = tokio::time::Instant::now() + drain;
        tracing::info!(
            live = tracker.len(),
            rtmpt_sessions = self.rtmpt.table.len(),
            ?drain,
            "shutting down: draining live connections and RTMPT sessions"
        );
        // RTMPT clients open new TCP connections for their requests, so
        // while sessions live the listeners stay open; new RTMP streams and
        // new sessions are refused meanwhile (see `connection`, `rtmpt`).
        while !self.rtmpt.table.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(DRAIN_POLL).await;
        }
        stop_accepting.cancel();
        self.ctx.http_done.cancel();
        tracker.close();
        if tokio::time::timeout_at(deadline, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                live = tracker.len(),
                "drain timeout reached; closing the rest"
            );
            self.ctx.abort.cancel();
            // Relays end at once on abort; handshakes end on their own timeouts.
            let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
        }
        stop_reaper.cancel();
        tracing::info!("shut down");
    }
}

/// Reloads the stream keys file on SIGHUP and every `interval`, until
/// `stop`; a broken file keeps the previous keys in force.
async fn watch_keys(auth: Arc<Authorizer>, interval: Duration, stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let hup_recv = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
            _ = hup_recv => {}
        }
        match auth.reload().await {
            Ok(true) => tracing::info!("stream keys file reloaded"),
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(%err, "stream keys file not reloaded; the previous keys stay in force")
            }
        }
    }
}

/// TLS state of a running gateway: the acceptor and its reloader.
pub struct TlsState {
    /// Accepts TLS handshakes with the current certificates.
    pub acceptor: TlsAcceptor,
    /// Swaps in new certificates.
    pub reloader: Arc<TlsReloader>,
}

/// Loads the certificates and builds the TLS acceptor if any listener needs
/// one, warning loudly when the certificate is a generated self-signed one.
/// Also used by `--check-config`, which must not bind ports.
pub fn tls_state(config: &Config, metrics: &Arc<Metrics>) -> Result<Option<TlsState>, TlsError> {
    if !config.listeners.iter().any(|l| l.scheme.is_tls()) {
        return Ok(None);
    }
    if config.tls == TlsSource::SelfSigned {
        tracing::warn!(
            "!!! NO CERTIFICATE CONFIGURED: serving TLS with a self-signed certificate \
             generated at start. Clients that verify certificates will refuse it. \
             Configure a real one with --tls-cert FILE --tls-key FILE \
             (or RTMPGATE_TLS_CERT / RTMPGATE_TLS_KEY) !!!"
        );
    }
    let store = CertStore::load(&config.tls, &config.sni)?;
    let resolver = Arc::new(CertResolver::new(store));
    let server = tls::server_config(
        Arc::clone(&resolver),
        config.tls13_tickets,
        config.tls_versions,
    );
    let reloader = TlsReloader::new(
        resolver,
        config.tls.clone(),
        config.sni.clone(),
        Arc::clone(metrics),
    );
    Ok(Some(TlsState {
        acceptor: TlsAcceptor::from(server),
        reloader: Arc::new(reloader),
    }))
}
