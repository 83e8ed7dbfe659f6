//! RTMPT sessions under attack (issue 17) and logged per session (issue
//! 12): an upstream that never reads cannot hold a session task, a refused
//! request does not keep a session alive, and a session carried by one TCP
//! connection per request (as squid does) logs one line when it opens and
//! one when it ends. Real loopback sockets, every wait bounded.

mod common;
mod rtmpt_support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

use common::{STEP, TestUpstream, UpstreamMode, within};
use rtmpt_support::{HttpConn, Tunnel, close_req, idle_req, open_req, parse_open_body, send_req};

const RTMP: &str = "rtmp://127.0.0.1:0";
const SESSIONS_ACTIVE: &str = "rtmpgate_rtmpt_sessions_active";
const SESSIONS_CLOSED: &str = "rtmpgate_rtmpt_sessions_closed_total";

/// A listener whose accepted sockets are never read, with a tiny receive
/// buffer so the gateway's writes block after a few KiB.
fn deaf_upstream() -> tokio::net::TcpListener {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    socket.listen(8).expect("listen")
}

/// Starts a `/send` of `declared` bytes on a new connection and writes
/// `sent` of them (less than declared: the body never completes), in a task
/// that blocks when the gateway stops reading. Returns the task.
async fn start_big_send(
    addr: SocketAddr,
    id: &str,
    declared: usize,
    sent: usize,
) -> tokio::task::JoinHandle<()> {
    let mut head = send_req(id, 0, &[]);
    let head_text = String::from_utf8(head.clone()).expect("ASCII head");
    let fixed = head_text.replace("Content-length: 0", &format!("Content-length: {declared}"));
    assert_ne!(fixed, head_text, "the request head names its length");
    head = fixed.into_bytes();
    let mut client = TcpStream::connect(addr).await.expect("connect");
    tokio::spawn(async move {
        let _ = client.write_all(&head).await;
        let _ = client.write_all(&vec![0x5a; sent]).await;
        // Hold the connection open with the body unfinished.
        std::future::pending::<()>().await;
    })
}

/// Reads `sock` until EOF or an error (the gateway closed it); panics if
/// it stays open for `limit`.
async fn expect_closed(sock: &mut TcpStream, limit: Duration, what: &str) {
    within(limit, what, async {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}

#[tokio::test]
async fn expiry_ends_a_session_blocked_writing_to_an_upstream_that_never_reads() {
    const EXPIRY: Duration = Duration::from_millis(500);
    let deaf = deaf_upstream();
    let up_addr = deaf.local_addr().expect("address");
    let gw = common::start_gateway(&[RTMP], up_addr, |c| {
        c.rtmpt.limits.expiry = EXPIRY;
    })
    .await;
    let t = Tunnel::open_tcp(gw.rtmp()).await;
    let (mut up, _) = within(STEP, "the upstream connection", deaf.accept())
        .await
        .expect("accept");
    let sender = start_big_send(gw.rtmp(), &t.id, 16 << 20, 12 << 20).await;
    assert_eq!(gw.metric(SESSIONS_ACTIVE, &[]), 1.0);

    // No request for the expiry time: the session must end although its
    // task is inside a write the upstream never takes. Bounded well below
    // the 10 s write stall and the 30 s body deadline.
    let since = Instant::now();
    within(
        Duration::from_secs(5),
        "the blocked session to end",
        async {
            while gw.metric(SESSIONS_ACTIVE, &[]) != 0.0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        },
    )
    .await;
    eprintln!("session ended {:?} after the body started", since.elapsed());
    assert_eq!(gw.metric(SESSIONS_CLOSED, &[("reason", "expired")]), 1.0);
    // Its upstream socket is closed: the upstream reads what was written,
    // then EOF.
    expect_closed(
        &mut up,
        Duration::from_secs(5),
        "the upstream socket to close",
    )
    .await;
    sender.abort();
}

#[tokio::test]
async fn upstream_that_stops_reading_ends_the_session_as_upstream_write_timeout() {
    let deaf = deaf_upstream();
    let up_addr = deaf.local_addr().expect("address");
    let gw = common::start_gateway(&[RTMP], up_addr, |c| {
        // Longer than the write stall: only the stall can end it.
        c.rtmpt.limits.expiry = Duration::from_secs(60);
    })
    .await;
    let t = Tunnel::open_tcp(gw.rtmp()).await;
    let (mut up, _) = within(STEP, "the upstream connection", deaf.accept())
        .await
        .expect("accept");
    // A body the client delivers whole, which the upstream never reads.
    let sender = start_big_send(gw.rtmp(), &t.id, 16 << 20, 16 << 20).await;
    let reason = [("reason", "upstream_write_timeout")];
    within(Duration::from_secs(20), "the write-stall timeout", async {
        while gw.metric(SESSIONS_CLOSED, &reason) != 1.0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(gw.metric(SESSIONS_ACTIVE, &[]), 0.0);
    expect_closed(
        &mut up,
        Duration::from_secs(5),
        "the upstream socket to close",
    )
    .await;
    sender.abort();
}

#[tokio::test]
async fn stale_requests_do_not_keep_a_session_alive() {
    const EXPIRY: Duration = Duration::from_millis(300);
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let gw = common::start_gateway(&[RTMP], upstream.addr, |c| {
        c.rtmpt.limits.expiry = EXPIRY;
        c.rtmpt.session.long_poll = Duration::ZERO;
    })
    .await;
    let mut t = Tunnel::open_tcp(gw.rtmp()).await;
    let _up = upstream.next_conn().await;
    t.idle().await;
    t.idle().await;
    // Seq 0 again: neither next nor the last applied one, so refused.
    let since = Instant::now();
    let mut refused = 0;
    let status = within(STEP, "the session to expire", async {
        loop {
            let res = t.conn.roundtrip(&idle_req(&t.id, 0)).await;
            if res.status != 400 {
                return res.status;
            }
            refused += 1;
            assert!(
                since.elapsed() < EXPIRY * 6,
                "{refused} refused requests kept the session alive for {:?} (expiry {EXPIRY:?})",
                since.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    })
    .await;
    assert_eq!(status, 404, "the expired session is unknown");
    assert!(refused > 3, "only {refused} refused requests were tried");
    assert_eq!(gw.metric(SESSIONS_CLOSED, &[("reason", "expired")]), 1.0);
}

// ---------------------------------------------------------------------------
// Session-level log lines, from the binary's own output
// ---------------------------------------------------------------------------

/// The rtmpgate binary, its log lines collected as they come.
struct Binary {
    child: tokio::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Binary {
    async fn start(args: &[&str]) -> Self {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_rtmpgate"));
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("RTMPGATE_") {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd.spawn().expect("start rtmpgate");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for out in [
            Box::new(child.stdout.take().expect("stdout"))
                as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let lines = Arc::clone(&lines);
            tokio::spawn(async move {
                let mut reader = BufReader::new(out).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    lines.lock().unwrap().push(strip_ansi(&line));
                }
            });
        }
        Self { child, lines }
    }

    /// Kills the process this test started (by its handle) and waits.
    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = within(STEP, "rtmpgate to exit", self.child.wait()).await;
    }

    fn lines_with(&self, needle: &str) -> Vec<String> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    /// Waits (bounded) for a line containing `needle`.
    async fn wait_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(line) = self.lines_with(needle).pop() {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?} within {STEP:?}; got:\n{}",
                self.lines.lock().unwrap().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The value of `key=` in a text log line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[start..];
    Some(rest.split(' ').next().unwrap_or(rest).trim_matches('"'))
}

/// One request on a fresh TCP connection, closed after its response.
async fn one_shot(addr: SocketAddr, req: &[u8]) -> rtmpt_support::Response {
    let mut c = HttpConn::tcp(addr).await;
    c.roundtrip(req).await
}

#[tokio::test]
async fn session_over_one_connection_per_request_logs_one_open_and_one_close_line() {
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let up = upstream.addr.to_string();
    let gate = Binary::start(&[
        "--listen",
        "rtmpt://127.0.0.1:0",
        "--upstream",
        &format!("rtmp://{up}"),
        "--rtmpt-long-poll",
        "0s",
    ])
    .await;
    let listening = gate.wait_line("listening").await;
    let addr: SocketAddr = field(&listening, "addr")
        .unwrap_or_else(|| panic!("no addr in {listening:?}"))
        .parse()
        .expect("listen address");

    // As squid does: every request on its own TCP connection.
    let res = one_shot(addr, &open_req()).await;
    res.expect_status(200, "/open");
    let id = parse_open_body(&res.body);
    let up_conn = upstream.next_conn().await;
    let mut requests = 1;
    let up_bytes = vec![7u8; 1000];
    one_shot(addr, &send_req(&id, 0, &up_bytes))
        .await
        .expect_status(200, "/send");
    requests += 1;
    up_conn.wait_for_len(up_bytes.len(), STEP).await;
    up_conn.send(vec![9u8; 300]).await;
    let mut got = 0;
    let mut seq = 1;
    while got < 300 {
        assert!(seq < 50, "300 bytes did not arrive in 50 idles");
        let res = one_shot(addr, &idle_req(&id, seq)).await;
        got += res.data("/idle").len();
        seq += 1;
        requests += 1;
    }
    one_shot(addr, &close_req(&id, seq))
        .await
        .expect_status(200, "/close");
    requests += 1;
    let closed = gate.wait_line("rtmpt session closed").await;

    // A control on the same listener: plain RTMP on the tunnel-only port
    // is still logged per connection, at info.
    let mut rtmp = TcpStream::connect(addr).await.expect("connect");
    rtmp.write_all(&[3u8; 1537]).await.expect("write C0+C1");
    expect_closed(&mut rtmp, STEP, "the refused RTMP connection to close").await;
    gate.wait_line("reason=\"rtmp_on_tunnel_port\"").await;

    let opened = gate.lines_with("rtmpt session opened");
    assert_eq!(opened.len(), 1, "one session-open line: {opened:#?}");
    assert_eq!(gate.lines_with("rtmpt session closed").len(), 1);
    assert!(opened[0].contains(" INFO "), "{}", opened[0]);
    assert_eq!(
        field(&opened[0], "client"),
        Some("127.0.0.1"),
        "{}",
        opened[0]
    );
    assert!(closed.contains(" INFO "), "{closed}");
    let want = [
        ("reason", "client_closed".to_string()),
        ("client", "127.0.0.1".to_string()),
        ("bytes_in", up_bytes.len().to_string()),
        ("bytes_out", "300".to_string()),
        ("requests", requests.to_string()),
        ("connections", requests.to_string()),
    ];
    for (key, value) in &want {
        assert_eq!(
            field(&closed, key),
            Some(value.as_str()),
            "{key} in {closed}"
        );
    }
    assert!(field(&closed, "duration_ms").is_some(), "{closed}");
    // The per-connection lines of the tunnel's connections are debug now;
    // the control connection's are there.
    let conn_closed = gate.lines_with("connection closed");
    assert!(
        conn_closed
            .iter()
            .all(|l| !l.contains("protocol=\"rtmpt\"")),
        "RTMPT connection lines at info: {conn_closed:#?}"
    );
    assert_eq!(conn_closed.len(), 1, "only the control: {conn_closed:#?}");
    let conn_opened = gate.lines_with("connection opened");
    assert_eq!(conn_opened.len(), 1, "only the control: {conn_opened:#?}");
    gate.stop().await;
}
