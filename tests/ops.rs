//! Operations: the admin endpoint (`/healthz`, `/readyz`, `/metrics`), the
//! drain at shutdown, certificate reload (files rewritten in place and the
//! Kubernetes `..data` symlink swap) and SNI certificate selection, over
//! real loopback sockets.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rtmpgate::Gateway;
use rtmpgate::config::CertPair;
use rtmpgate::config::{Config, TlsSource};
use rtmpgate::endpoint::ListenScheme;
use rtmpgate::metrics::Metrics;
use rtmpgate::tls::TlsReloader;
use rustls::RootCertStore;
use rustls::client::{ClientConfig, Resumption};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

const ACTIVE: &str = "rtmpgate_connections_active";
const ACCEPTED: &str = "rtmpgate_connections_accepted_total";
const RELOADS: &str = "rtmpgate_tls_reloads_total";
const RTMPS_LABEL: &[(&str, &str)] = &[("listener", "rtmps")];

// ---------------------------------------------------------------------------
// A gateway with its admin endpoint and reloader exposed
// ---------------------------------------------------------------------------

/// rtmpgate in-process with one rtmps:// listener on port 0 and (unless
/// the config turns it off) the admin endpoint on port 0.
struct OpsGateway {
    rtmps: SocketAddr,
    admin: Option<SocketAddr>,
    metrics: Arc<Metrics>,
    reloader: Option<Arc<TlsReloader>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Starts the gateway relaying to `upstream` with the certificate `tls`;
/// admin on 127.0.0.1:0, a 2 s drain; `tweak` may change anything.
async fn start_ops(
    upstream: SocketAddr,
    tls: TlsSource,
    tweak: impl FnOnce(&mut Config),
) -> OpsGateway {
    let mut config = Config {
        listeners: vec!["rtmps://127.0.0.1:0".parse().expect("listen URL parses")],
        upstreams: vec![
            format!("rtmp://{upstream}")
                .parse()
                .expect("upstream URL parses"),
        ],
        tls,
        admin: Some("127.0.0.1:0".parse().expect("admin address parses")),
        ..Config::default()
    };
    config.timeouts.drain = Duration::from_secs(2);
    tweak(&mut config);
    let metrics = Arc::new(Metrics::default());
    let gateway = Gateway::bind(config, Arc::clone(&metrics))
        .await
        .unwrap_or_else(|e| panic!("gateway failed to start: {e}"));
    let rtmps = gateway
        .local_addrs()
        .into_iter()
        .find(|(s, _)| *s == ListenScheme::Rtmps)
        .map(|(_, a)| a)
        .expect("an rtmps listener");
    let admin = gateway.admin_addr();
    let reloader = gateway.tls_reloader();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(gateway.run(async move {
        let _ = rx.await;
    }));
    OpsGateway {
        rtmps,
        admin,
        metrics,
        reloader,
        shutdown: Some(tx),
        task: Some(task),
    }
}

/// The per-run test certificate as PEM files; the directory must outlive
/// the gateway only if reloads are exercised.
fn test_pki_files() -> (TempDir, TlsSource) {
    let dir = TempDir::new("ops-pki");
    let (cert, key) = test_pki().write_to(dir.path());
    (dir, TlsSource::Files { cert, key })
}

impl OpsGateway {
    fn admin(&self) -> SocketAddr {
        self.admin.expect("admin endpoint enabled")
    }

    fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_value(&self.metrics.encode(), name, labels)
    }

    /// Polls the in-process metrics (bounded) until `name{labels}` is `want`.
    async fn wait_metric(&self, name: &str, labels: &[(&str, &str)], want: f64) {
        let deadline = Instant::now() + STEP;
        while self.metric(name, labels) != want {
            if Instant::now() >= deadline {
                panic!(
                    "metric {name}{labels:?} is {} after {STEP:?}, want {want}\n{}",
                    self.metric(name, labels),
                    self.metrics.encode()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn reloader(&self) -> Arc<TlsReloader> {
        self.reloader
            .clone()
            .expect("a TLS listener has a reloader")
    }

    fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits (bounded by `limit`) for `run` to return.
    async fn wait_stopped(&mut self, limit: Duration) {
        let task = self.task.take().expect("gateway still running");
        within(limit, "the gateway's run() to return", task)
            .await
            .expect("gateway task panicked");
    }
}

impl Drop for OpsGateway {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 client for the admin endpoint
// ---------------------------------------------------------------------------

struct HttpReply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl HttpReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request on a fresh connection (`Connection: close`), read to EOF,
/// bounded.
async fn http(addr: SocketAddr, method: &str, path: &str) -> HttpReply {
    let raw = within(STEP, &format!("admin {method} {path}"), async {
        let mut s = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect to admin {addr}: {e}"));
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.expect("write request");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.expect("read reply");
        raw
    })
    .await;
    let text = String::from_utf8(raw).expect("admin reply is UTF-8");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in reply: {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let reply = HttpReply {
        status,
        headers,
        body: body.to_string(),
    };
    assert!(
        reply.header("transfer-encoding").is_none(),
        "unexpected chunked reply: {text:?}"
    );
    if let Some(len) = reply.header("content-length") {
        assert_eq!(
            len.parse::<usize>().ok(),
            Some(reply.body.len()),
            "content-length vs body"
        );
    }
    reply
}

async fn get(addr: SocketAddr, path: &str) -> HttpReply {
    http(addr, "GET", path).await
}

/// `/metrics` text, checked to be a 200 Prometheus/OpenMetrics exposition.
async fn scrape(admin: SocketAddr) -> String {
    let r = get(admin, "/metrics").await;
    assert_eq!(r.status, 200, "/metrics: {}", r.body);
    let ct = r.header("content-type").unwrap_or_default();
    assert!(
        ct.starts_with("text/plain") || ct.starts_with("application/openmetrics-text"),
        "/metrics content type {ct:?}"
    );
    r.body
}

/// Polls `/metrics` (bounded) until `name{labels}` is `want`; returns the text.
async fn wait_scraped(admin: SocketAddr, name: &str, labels: &[(&str, &str)], want: f64) -> String {
    let deadline = Instant::now() + STEP;
    loop {
        let text = scrape(admin).await;
        if metric_value(&text, name, labels) == want {
            return text;
        }
        if Instant::now() >= deadline {
            panic!("/metrics: {name}{labels:?} is not {want} after {STEP:?}\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `/readyz` (bounded) until it answers `want`; returns the body.
async fn wait_readyz(admin: SocketAddr, want: u16) -> String {
    let deadline = Instant::now() + STEP;
    loop {
        let r = get(admin, "/readyz").await;
        if r.status == want {
            return r.body;
        }
        if Instant::now() >= deadline {
            panic!(
                "/readyz is {} ({:?}) after {STEP:?}, want {want}",
                r.status, r.body
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `/readyz` is 200; its probe connection to the upstream is taken off the
/// upstream's queue so the next relay's connection is the next one there.
async fn assert_ready(admin: SocketAddr, upstream: &mut TestUpstream) {
    let r = get(admin, "/readyz").await;
    assert_eq!(r.status, 200, "/readyz with a live upstream: {:?}", r.body);
    let probe = upstream.next_conn().await;
    assert!(
        matches!(probe.handshake, Some(Err(_))),
        "the readiness probe is a bare TCP connect, not an RTMP session"
    );
}

// ---------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------

/// A generated self-signed certificate and its key.
struct Pem {
    cert: String,
    key: String,
    der: CertificateDer<'static>,
}

fn generate(names: &[&str]) -> Pem {
    let g =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("rcgen generates a certificate");
    Pem {
        cert: g.cert.pem(),
        key: g.signing_key.serialize_pem(),
        der: g.cert.der().clone(),
    }
}

/// A client trusting exactly `roots`, without resumption, so every
/// handshake is a full one that shows the server's current certificate.
fn trusting(roots: &[&CertificateDer<'static>]) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for r in roots {
        store
            .add((*r).clone())
            .expect("test certificate is a valid trust anchor");
    }
    let mut config = ClientConfig::builder_with_provider(rtmpgate::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("the crypto provider supports the default versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    Arc::new(config)
}

/// The leaf certificate the server presented.
fn leaf(s: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    s.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("the server presented a certificate")
        .clone()
        .into_owned()
}

/// TLS handshake as `name` (a DNS name is sent as SNI, an IP is not);
/// returns the leaf presented.
async fn leaf_for(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    name: &str,
) -> CertificateDer<'static> {
    let s = connect_tls_as(addr, Arc::clone(config), name)
        .await
        .unwrap_or_else(|e| panic!("TLS handshake as {name}: {e}"));
    leaf(&s)
}

fn write_pair(dir: &Path, cert: &str, key: &str) {
    std::fs::create_dir_all(dir).expect("create cert dir");
    std::fs::write(dir.join("tls.crt"), cert).expect("write tls.crt");
    std::fs::write(dir.join("tls.key"), key).expect("write tls.key");
}

/// A Kubernetes Secret volume: `tls.crt -> ..data/tls.crt`,
/// `tls.key -> ..data/tls.key`, `..data -> <timestamped dir>`.
struct SecretVolume {
    root: PathBuf,
    version: u32,
}

impl SecretVolume {
    fn new(root: &Path, cert: &str, key: &str) -> Self {
        let mut v = Self {
            root: root.to_owned(),
            version: 0,
        };
        v.publish(cert, key);
        for f in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{f}"), root.join(f))
                .expect("symlink into ..data");
        }
        v
    }

    /// Writes a new version directory and atomically points `..data` at it,
    /// as the kubelet does.
    fn publish(&mut self, cert: &str, key: &str) {
        self.version += 1;
        let name = format!("..ts{}", self.version);
        write_pair(&self.root.join(&name), cert, key);
        let tmp = self.root.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&name, &tmp).expect("new ..data symlink");
        std::fs::rename(&tmp, self.root.join("..data")).expect("swap ..data");
    }

    fn source(&self) -> TlsSource {
        TlsSource::Files {
            cert: self.root.join("tls.crt"),
            key: self.root.join("tls.key"),
        }
    }
}

// ---------------------------------------------------------------------------
// Admin endpoint
// ---------------------------------------------------------------------------

#[tokio::test]
async fn admin_health_readiness_and_live_metrics() {
    let mut upstream = TestUpstream::start().await;
    let (_pki, tls) = test_pki_files();
    let gw = start_ops(upstream.addr, tls, |_| {}).await;
    let admin = gw.admin();

    let h = get(admin, "/healthz").await;
    assert_eq!(h.status, 200, "/healthz: {:?}", h.body);
    assert_eq!(h.body, "ok\n");
    assert_ready(admin, &mut upstream).await;

    // Families without a series yet are left out of the exposition.
    let text = scrape(admin).await;
    assert!(text.contains("# TYPE rtmpgate_build_info gauge"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(metric_value(&text, ACCEPTED, RTMPS_LABEL), 0.0, "{text}");
    assert_eq!(metric_value(&text, ACTIVE, RTMPS_LABEL), 0.0, "{text}");

    // A relay opens: active 1, accepted 1.
    let client = connect_rtmps(gw.rtmps).await;
    let mut live = LiveRelay::establish(client, &mut upstream).await;
    live.check("first relay").await;
    let text = wait_scraped(admin, ACTIVE, RTMPS_LABEL, 1.0).await;
    assert_eq!(metric_value(&text, ACCEPTED, RTMPS_LABEL), 1.0, "{text}");
    assert!(
        text.contains("# TYPE rtmpgate_connections_active gauge"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE rtmpgate_connections_accepted counter"),
        "{text}"
    );

    // It closes from both ends: active back to 0, counted as closed.
    within(STEP, "client close", live.client.shutdown())
        .await
        .expect("client close");
    let rec = live.upstream.wait_for_end(STEP).await;
    assert_eq!(rec.end, Some(ReadEnd::Eof));
    live.upstream.shutdown_write().await;
    let closed = read_until_closed(&mut live.client, STEP, "the relay to close").await;
    assert!(closed.is_clean(), "{:?}", closed.result);
    let text = wait_scraped(admin, ACTIVE, RTMPS_LABEL, 0.0).await;
    assert_eq!(metric_value(&text, ACCEPTED, RTMPS_LABEL), 1.0, "{text}");
    assert_eq!(
        metric_value(
            &text,
            CLOSED,
            &[("protocol", "rtmps"), ("reason", "client_closed")]
        ),
        1.0,
        "{text}"
    );
    assert!(
        metric_value(
            &text,
            "rtmpgate_relayed_bytes_total",
            &[("direction", "client_to_upstream")]
        ) > 0.0,
        "{text}"
    );

    // A second connection: the counter moves on, the gauge follows.
    let client = connect_rtmps(gw.rtmps).await;
    let mut second = LiveRelay::establish(client, &mut upstream).await;
    second.check("second relay").await;
    let text = wait_scraped(admin, ACTIVE, RTMPS_LABEL, 1.0).await;
    assert_eq!(metric_value(&text, ACCEPTED, RTMPS_LABEL), 2.0, "{text}");
    drop(second);
    wait_scraped(admin, ACTIVE, RTMPS_LABEL, 0.0).await;

    // Anything else is refused politely.
    assert_eq!(get(admin, "/nope").await.status, 404);
    assert_eq!(http(admin, "POST", "/metrics").await.status, 405);
}

#[tokio::test]
async fn readyz_is_503_while_the_upstream_is_down() {
    let closed = RefusingPort::new();
    let (_pki, tls) = test_pki_files();
    let gw = start_ops(closed.addr(), tls, |_| {}).await;
    let admin = gw.admin();
    assert_eq!(
        get(admin, "/healthz").await.status,
        200,
        "liveness ignores the upstream"
    );
    let r = get(admin, "/readyz").await;
    assert_eq!(
        r.status, 503,
        "/readyz with the upstream down: {:?}",
        r.body
    );
    assert!(!r.body.is_empty(), "the 503 says why");
    assert!(!scrape(admin).await.is_empty());
}

// ---------------------------------------------------------------------------
// Drain at shutdown
// ---------------------------------------------------------------------------

/// Connects until the listener refuses (it closes once the accept loop has
/// seen the shutdown); bounded.
async fn wait_refused(addr: SocketAddr) {
    let deadline = Instant::now() + STEP;
    loop {
        match within(STEP, "connect after shutdown", TcpStream::connect(addr)).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            Err(e) => panic!("connect to {addr} after shutdown: unexpected {e}"),
            // Still listening (or in the backlog of a listener about to
            // close): drop it so it cannot hold up the drain.
            Ok(s) => drop(s),
        }
        if Instant::now() >= deadline {
            panic!("{addr} still accepts connections {STEP:?} after shutdown");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn drain_keeps_relays_flowing_and_ends_when_the_last_one_closes() {
    let mut upstream = TestUpstream::start().await;
    let (_pki, tls) = test_pki_files();
    let drain = Duration::from_secs(10);
    let mut gw = start_ops(upstream.addr, tls, |c| c.timeouts.drain = drain).await;
    let admin = gw.admin();
    assert_ready(admin, &mut upstream).await;
    let client = connect_rtmps(gw.rtmps).await;
    let mut live = LiveRelay::establish(client, &mut upstream).await;
    live.check("before shutdown").await;

    gw.trigger_shutdown();
    let body = wait_readyz(admin, 503).await;
    assert_eq!(body, "draining\n");
    assert!(
        upstream.try_next_conn().is_none(),
        "a draining probe does not touch the upstream"
    );
    live.check("during the drain").await;

    // New clients are no longer taken; the live one is undisturbed.
    wait_refused(gw.rtmps).await;
    live.check("after the listener closed").await;
    // (A probe that raced the closing listener may still be winding down.)
    gw.wait_metric(ACTIVE, RTMPS_LABEL, 1.0).await;
    assert_eq!(
        get(admin, "/healthz").await.status,
        200,
        "alive while draining"
    );

    // The last relay closes from both ends: run() returns long before the
    // 10 s drain is over.
    within(STEP, "client close", live.client.shutdown())
        .await
        .expect("client close");
    let closed_at = Instant::now();
    let rec = live.upstream.wait_for_end(STEP).await;
    assert_eq!(rec.end, Some(ReadEnd::Eof));
    live.upstream.shutdown_write().await;
    let closed = read_until_closed(&mut live.client, STEP, "the relay to close").await;
    assert!(closed.is_clean(), "{:?}", closed.result);
    gw.wait_stopped(Duration::from_secs(5)).await;
    assert!(
        closed_at.elapsed() < Duration::from_secs(5),
        "run() took {:?} after the last client left",
        closed_at.elapsed()
    );
    let text = gw.metrics.encode();
    assert_eq!(
        metric_value(
            &text,
            CLOSED,
            &[("protocol", "rtmps"), ("reason", "client_closed")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric_value(&text, CLOSED, &[("reason", "shutdown")]),
        0.0,
        "{text}"
    );
    assert_eq!(metric_value(&text, ACTIVE, RTMPS_LABEL), 0.0, "{text}");
}

#[tokio::test]
async fn relay_still_open_after_the_drain_is_closed_with_close_notify() {
    let mut upstream = TestUpstream::start().await;
    let (_pki, tls) = test_pki_files();
    let drain = Duration::from_millis(500);
    let mut gw = start_ops(upstream.addr, tls, |c| c.timeouts.drain = drain).await;
    let client = connect_rtmps(gw.rtmps).await;
    let mut live = LiveRelay::establish(client, &mut upstream).await;
    live.check("before shutdown").await;

    let triggered = Instant::now();
    gw.trigger_shutdown();
    let closed = read_until_closed(&mut live.client, STEP, "the drain to end the relay").await;
    let after = triggered.elapsed();
    assert!(
        closed.is_clean(),
        "the client sees TLS close_notify then EOF, got {:?}",
        closed.result
    );
    assert!(
        closed.bytes.is_empty(),
        "no stray bytes: {:?}",
        closed.bytes
    );
    assert!(
        after >= drain - Duration::from_millis(50),
        "relay closed after {after:?}, before the {drain:?} drain was over"
    );
    let rec = live.upstream.wait_for_end(STEP).await;
    assert!(rec.end.is_some());
    gw.wait_stopped(STEP).await;
    let text = gw.metrics.encode();
    assert_eq!(
        metric_value(
            &text,
            CLOSED,
            &[("protocol", "rtmps"), ("reason", "shutdown")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(metric_value(&text, ACTIVE, RTMPS_LABEL), 0.0, "{text}");
}

// ---------------------------------------------------------------------------
// Certificate reload
// ---------------------------------------------------------------------------

#[tokio::test]
async fn reload_rewritten_files_new_clients_get_new_cert_old_relay_unharmed() {
    let mut upstream = TestUpstream::start().await;
    let a = generate(&["localhost", "127.0.0.1"]);
    let b = generate(&["localhost", "127.0.0.1"]);
    let dir = TempDir::new("ops-reload");
    write_pair(dir.path(), &a.cert, &a.key);
    let tls = TlsSource::Files {
        cert: dir.path().join("tls.crt"),
        key: dir.path().join("tls.key"),
    };
    // Only explicit checks reload in this test.
    let gw = start_ops(upstream.addr, tls, |c| {
        c.admin = None;
        c.tls_reload_interval = Duration::from_secs(3600);
    })
    .await;
    let both = trusting(&[&a.der, &b.der]);

    let client = connect_tls_as(gw.rtmps, Arc::clone(&both), SERVER_NAME)
        .await
        .expect("TLS handshake with cert A");
    assert_eq!(leaf(&client), a.der, "starts with cert A");
    let mut old = LiveRelay::establish(client, &mut upstream).await;
    old.check("before reload").await;

    // Unchanged files: no reload.
    gw.reloader().check();
    assert_eq!(gw.metric(RELOADS, &[]), 0.0);

    write_pair(dir.path(), &b.cert, &b.key);
    gw.reloader().check();
    assert_eq!(gw.metric(RELOADS, &[("result", "ok")]), 1.0);
    assert_eq!(
        leaf_for(gw.rtmps, &both, SERVER_NAME).await,
        b.der,
        "new client gets B"
    );
    assert_eq!(leaf(&old.client), a.der);
    old.check("after reload").await;

    // A new client on B relays too.
    let client = connect_tls_as(gw.rtmps, Arc::clone(&both), SERVER_NAME)
        .await
        .expect("TLS handshake with cert B");
    assert_eq!(leaf(&client), b.der);
    let mut new = LiveRelay::establish(client, &mut upstream).await;
    new.check("relay on the new certificate").await;

    // A key that does not fit: refused, B kept, counted once.
    let stray = generate(&["localhost"]);
    std::fs::write(dir.path().join("tls.key"), &stray.key).expect("write stray key");
    gw.reloader().check();
    gw.reloader().check();
    assert_eq!(
        gw.metric(RELOADS, &[("result", "error")]),
        1.0,
        "{}",
        gw.metrics.encode()
    );
    assert_eq!(gw.metric(RELOADS, &[("result", "ok")]), 1.0);
    assert_eq!(
        leaf_for(gw.rtmps, &both, SERVER_NAME).await,
        b.der,
        "B still served"
    );
    old.check("after the failed reload").await;
    new.check("after the failed reload").await;
}

#[tokio::test]
async fn reload_follows_kubernetes_secret_symlink_swap() {
    let mut upstream = TestUpstream::start().await;
    let a = generate(&["localhost", "127.0.0.1"]);
    let b = generate(&["localhost", "127.0.0.1"]);
    let c = generate(&["localhost", "127.0.0.1"]);
    let dir = TempDir::new("ops-k8s");
    let mut volume = SecretVolume::new(dir.path(), &a.cert, &a.key);
    let interval = Duration::from_millis(100);
    let gw = start_ops(upstream.addr, volume.source(), |cfg| {
        cfg.admin = None;
        cfg.tls_reload_interval = interval;
    })
    .await;
    let all = trusting(&[&a.der, &b.der, &c.der]);

    let client = connect_tls_as(gw.rtmps, Arc::clone(&all), SERVER_NAME)
        .await
        .expect("TLS handshake with cert A");
    assert_eq!(leaf(&client), a.der);
    let mut old = LiveRelay::establish(client, &mut upstream).await;
    old.check("before the swap").await;

    // The kubelet swaps ..data: the periodic check picks it up.
    volume.publish(&b.cert, &b.key);
    gw.wait_metric(RELOADS, &[("result", "ok")], 1.0).await;
    assert_eq!(
        leaf_for(gw.rtmps, &all, SERVER_NAME).await,
        b.der,
        "new client gets B"
    );
    assert_eq!(leaf(&old.client), a.der);
    old.check("after the swap").await;

    // A swap to a mismatched pair: B stays, one error.
    volume.publish(&b.cert, &c.key);
    gw.wait_metric(RELOADS, &[("result", "error")], 1.0).await;
    assert_eq!(
        leaf_for(gw.rtmps, &all, SERVER_NAME).await,
        b.der,
        "B still served"
    );
    old.check("after the bad swap").await;
    // Several more checks later it is still reported once, not per check.
    tokio::time::sleep(interval * 4).await;
    assert_eq!(
        gw.metric(RELOADS, &[("result", "error")]),
        1.0,
        "{}",
        gw.metrics.encode()
    );
    assert_eq!(gw.metric(RELOADS, &[("result", "ok")]), 1.0);

    // A good pair again: picked up.
    volume.publish(&c.cert, &c.key);
    gw.wait_metric(RELOADS, &[("result", "ok")], 2.0).await;
    assert_eq!(leaf_for(gw.rtmps, &all, SERVER_NAME).await, c.der, "then C");
    old.check("after recovery").await;
}

// ---------------------------------------------------------------------------
// SNI
// ---------------------------------------------------------------------------

#[tokio::test]
async fn sni_picks_the_matching_pair_else_the_default() {
    let upstream = TestUpstream::start().await;
    let default = generate(&["localhost", "127.0.0.1"]);
    let other = generate(&["b.test"]);
    let dir = TempDir::new("ops-sni");
    write_pair(&dir.path().join("default"), &default.cert, &default.key);
    write_pair(&dir.path().join("b"), &other.cert, &other.key);
    let tls = TlsSource::Files {
        cert: dir.path().join("default/tls.crt"),
        key: dir.path().join("default/tls.key"),
    };
    let sni = vec![CertPair {
        cert: dir.path().join("b/tls.crt"),
        key: dir.path().join("b/tls.key"),
    }];
    let gw = start_ops(upstream.addr, tls, |c| {
        c.admin = None;
        c.sni = sni;
    })
    .await;
    let both = trusting(&[&default.der, &other.der]);

    assert_eq!(
        leaf_for(gw.rtmps, &both, "b.test").await,
        other.der,
        "SNI b.test"
    );
    assert_eq!(
        leaf_for(gw.rtmps, &both, "localhost").await,
        default.der,
        "SNI localhost"
    );
    // An IP address sends no SNI at all: the default pair.
    assert_eq!(
        leaf_for(gw.rtmps, &both, "127.0.0.1").await,
        default.der,
        "no SNI"
    );
    // A client trusting only the default certificate cannot be handed b.test's.
    let only_default = trusting(&[&default.der]);
    let refused = connect_tls_as(gw.rtmps, only_default, "b.test").await;
    assert!(
        refused.is_err(),
        "b.test must be served the b.test certificate"
    );
    assert_eq!(gw.metric(RELOADS, &[]), 0.0);
}
