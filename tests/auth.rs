//! Stream authorization end to end over real loopback sockets: the gate
//! holds a publish/play until the keys file, a signed URL or a webhook
//! decides; an allowed stream reaches the test upstream byte for byte, a
//! refused one never does, and its client gets an `onStatus` error.

mod common;
mod rtmpt_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::amf0::{Value, object, string};
use common::*;
use rtmpgate::config::Config;
use rtmpt_support::Tunnel;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const LIMIT: Duration = Duration::from_secs(10);

fn keys_file(dir: &TempDir, lines: &str) -> std::path::PathBuf {
    let path = dir.path().join("keys.txt");
    std::fs::write(&path, lines).unwrap();
    path
}

/// A gateway with `--auth-keys` holding `lines`, and its test upstream; the
/// directory must outlive the gateway (the file is reloaded).
async fn keys_gateway(lines: &str) -> (TempDir, TestUpstream, TestGateway) {
    let dir = TempDir::new("auth-keys");
    let keys = keys_file(&dir, lines);
    let up = TestUpstream::start().await;
    let gw = gateway(&up, |c| c.auth.keys_file = Some(keys)).await;
    (dir, up, gw)
}

async fn gateway(up: &TestUpstream, tweak: impl FnOnce(&mut Config)) -> TestGateway {
    start_gateway(
        &["rtmp://127.0.0.1:0", "rtmps://127.0.0.1:0"],
        up.addr,
        tweak,
    )
    .await
}

/// Handshakes, sends `msgs` in one write; returns the client and the bytes
/// sent after C2.
async fn send_session(gw: &TestGateway, msgs: &[RtmpMessage]) -> (tokio::net::TcpStream, Vec<u8>) {
    let mut client = connect_tcp(gw.rtmp()).await;
    client_handshake(&mut client).await;
    let bytes = encode_messages(msgs);
    client.write_all(&bytes).await.unwrap();
    (client, bytes)
}

/// The test upstream got `want` after its handshake, exactly.
async fn upstream_got_exactly(up: &mut TestUpstream, want: &[u8]) {
    let conn = up.next_conn().await;
    let got = conn.wait_for_len(want.len(), LIMIT).await;
    assert_bytes_eq("client → upstream", &got.bytes, want);
}

/// The client is refused: it reads an `onStatus` with `code`, then EOF; the
/// upstream never saw `secret` (the refused stream name) nor a `publish`.
async fn refused<S: tokio::io::AsyncRead + Unpin>(
    client: &mut S,
    up: &mut TestUpstream,
    code: &str,
    secret: &str,
) {
    refused_quietly(client, up, Some(code), secret).await;
}

/// [`refused`]; with `code` `None` the client may be closed without an
/// `onStatus` (its handshake had not finished).
async fn refused_quietly<S: tokio::io::AsyncRead + Unpin>(
    client: &mut S,
    up: &mut TestUpstream,
    code: Option<&str>,
    secret: &str,
) {
    let closed = read_until_closed(client, LIMIT, "the refused client's close").await;
    let text = String::from_utf8_lossy(&closed.bytes);
    if let Some(code) = code {
        assert!(
            text.contains(code),
            "the client is told {code}; got {text:?}"
        );
    }
    // An upstream connection, if one was made, was accepted by now: the
    // gateway connects before it relays and closes it with the client.
    tokio::time::sleep(Duration::from_millis(200)).await;
    if let Some(conn) = up.try_next_conn() {
        let seen = conn.wait_for_end(LIMIT).await.bytes;
        let seen = String::from_utf8_lossy(&seen);
        assert!(
            !seen.contains(secret),
            "the upstream saw the refused name: {seen:?}"
        );
        assert!(
            !seen.contains("publish"),
            "the upstream saw a publish: {seen:?}"
        );
    }
}

fn deny_count(gw: &TestGateway, call: &str, rule: &str) -> f64 {
    gw.metric(
        "rtmpgate_auth_decisions_total",
        &[("call", call), ("result", "deny"), ("rule", rule)],
    )
}

#[tokio::test]
async fn a_listed_key_publishes_byte_exact() {
    let (_dir, mut up, gw) = keys_gateway("# ingest\nlive/good\n").await;
    let (_client, bytes) =
        send_session(&gw, &publish_session("live", "good", fresh_seed(), 12)).await;
    upstream_got_exactly(&mut up, &bytes).await;
    let allowed = gw.metric(
        "rtmpgate_auth_decisions_total",
        &[("call", "publish"), ("result", "allow"), ("rule", "keys")],
    );
    assert!(allowed >= 1.0, "allow counted: {allowed}");
}

#[tokio::test]
async fn an_unlisted_key_never_reaches_the_upstream() {
    let (_dir, mut up, gw) = keys_gateway("live/good\n").await;
    let (mut client, _) = send_session(&gw, &publish_session("live", "stolen-key", 1, 4)).await;
    refused(
        &mut client,
        &mut up,
        "NetStream.Publish.BadName",
        "stolen-key",
    )
    .await;
    assert_eq!(deny_count(&gw, "publish", "keys"), 1.0);
    gw.wait_metric(
        "rtmpgate_connections_closed_total",
        &[("protocol", "rtmp"), ("reason", "auth_denied")],
        1.0,
    )
    .await;
}

#[tokio::test]
async fn rtmps_is_authorized_the_same_way() {
    let (_dir, mut up, gw) = keys_gateway("live/good\n").await;
    let mut tls = connect_rtmps(gw.rtmps()).await;
    client_handshake(&mut tls).await;
    tls.write_all(&encode_messages(&publish_session("live", "bad", 2, 2)))
        .await
        .unwrap();
    refused(&mut tls, &mut up, "NetStream.Publish.BadName", "bad").await;

    let mut tls = connect_rtmps(gw.rtmps()).await;
    client_handshake(&mut tls).await;
    let bytes = encode_messages(&publish_session("live", "good", 3, 6));
    tls.write_all(&bytes).await.unwrap();
    upstream_got_exactly(&mut up, &bytes).await;
}

/// A publish written one byte per TCP segment, and a chunk size change
/// before it, still reach the upstream exactly (or not at all).
#[tokio::test]
async fn a_publish_split_across_reads_and_chunks() {
    let (_dir, mut up, gw) = keys_gateway("live/good\n").await;
    for (key, allowed) in [("good", true), ("bad", false)] {
        let mut msgs = publish_session("live", key, 4, 3);
        // Small chunks before publish: its name spans several chunks.
        msgs.insert(1, RtmpMessage::set_chunk_size(7));
        let bytes = encode_messages(&msgs);
        let mut client = connect_tcp(gw.rtmp()).await;
        client.set_nodelay(true).unwrap();
        client_handshake(&mut client).await;
        let (head, tail) = bytes.split_at(600);
        let mut wrote = Ok(());
        for b in head {
            wrote = wrote.and(client.write_all(&[*b]).await);
        }
        wrote = wrote.and(client.write_all(tail).await);
        // A refused client may be closed before it finished writing.
        assert!(wrote.is_ok() || !allowed, "{wrote:?}");
        if allowed {
            upstream_got_exactly(&mut up, &bytes).await;
        } else {
            refused(&mut client, &mut up, "NetStream.Publish.BadName", "bad").await;
        }
    }
}

/// C0, C1, C2 and the publish in one write, before S0/S1/S2 came back.
#[tokio::test]
async fn a_publish_before_the_handshake_finished_is_still_held() {
    let (_dir, mut up, gw) = keys_gateway("live/good\n").await;
    let mut client = connect_tcp(gw.rtmp()).await;
    let mut all = vec![3u8];
    all.extend(handshake_block(0, 9));
    all.extend(handshake_block(0, 10)); // C2 without waiting for S1
    all.extend(encode_messages(&publish_session("live", "early-bad", 5, 2)));
    client.write_all(&all).await.unwrap();
    // Refused before S0/S1/S2 reached it: closed without an onStatus.
    refused_quietly(&mut client, &mut up, None, "early-bad").await;
}

/// Garbage after the handshake (a broken chunk stream) is closed, not
/// passed on unchecked.
#[tokio::test]
async fn an_unreadable_chunk_stream_is_closed_when_auth_is_on() {
    let (_dir, _up, gw) = keys_gateway("live/good\n").await;
    let mut client = connect_tcp(gw.rtmp()).await;
    client_handshake(&mut client).await;
    // fmt 1 header on a chunk stream never started.
    client
        .write_all(&[0x43, 0, 0, 0, 0, 0, 9, 20, 1, 2, 3])
        .await
        .unwrap();
    let closed = read_until_closed(&mut client, LIMIT, "close").await;
    assert!(closed.bytes.is_empty() || !String::from_utf8_lossy(&closed.bytes).contains("BadName"));
    gw.wait_metric(
        "rtmpgate_connections_closed_total",
        &[("protocol", "rtmp"), ("reason", "refused")],
        1.0,
    )
    .await;
}

#[tokio::test]
async fn play_is_checked_only_with_auth_play() {
    let dir = TempDir::new("auth-keys");
    let keys = keys_file(&dir, "live/good\n");
    for check_play in [false, true] {
        let mut up = TestUpstream::start().await;
        let keys = keys.clone();
        let gw = gateway(&up, |c| {
            c.auth.keys_file = Some(keys);
            c.auth.check_play = check_play;
        })
        .await;
        let msgs = play_session("live", "other");
        let (mut client, bytes) = send_session(&gw, &msgs).await;
        if check_play {
            refused(&mut client, &mut up, "NetStream.Play.Failed", "other").await;
            assert_eq!(deny_count(&gw, "play", "keys"), 1.0);
        } else {
            upstream_got_exactly(&mut up, &bytes).await;
        }
    }
}

fn play_session(app: &str, name: &str) -> Vec<RtmpMessage> {
    vec![
        connect_message(app),
        RtmpMessage::command(
            0,
            &[string("createStream"), Value::Number(2.0), Value::Null],
        ),
        RtmpMessage::command(
            1,
            &[
                string("play"),
                Value::Number(3.0),
                Value::Null,
                string(name),
            ],
        ),
    ]
}

fn connect_message(app: &str) -> RtmpMessage {
    RtmpMessage::command(
        0,
        &[
            string("connect"),
            Value::Number(1.0),
            object(&[
                ("app", string(app)),
                ("flashVer", string("LNX 9,0,124,2")),
                ("tcUrl", string(&format!("rtmp://127.0.0.1/{app}"))),
            ]),
        ],
    )
}

#[tokio::test]
async fn signed_urls_expire_and_need_the_right_signature() {
    let dir = TempDir::new("auth-hmac");
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "s3cret-for-tests\n").unwrap();
    let mut up = TestUpstream::start().await;
    let gw = gateway(&up, |c| c.auth.hmac_secret_file = Some(secret_file)).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signed = |expires: u64| {
        let sig = rtmpgate::auth::sign(b"s3cret-for-tests", "live", "cam1", expires);
        format!("cam1?expires={expires}&sig={sig}")
    };
    let good = signed(now + 600);
    let (_c, bytes) = send_session(&gw, &publish_session("live", &good, 6, 4)).await;
    upstream_got_exactly(&mut up, &bytes).await;

    let expired = signed(now - 10);
    let (mut c, _) = send_session(&gw, &publish_session("live", &expired, 7, 1)).await;
    refused(&mut c, &mut up, "NetStream.Publish.BadName", "cam1").await;

    let wrong = format!("cam1?expires={}&sig={}", now + 600, "0".repeat(64));
    let (mut c, _) = send_session(&gw, &publish_session("live", &wrong, 8, 1)).await;
    refused(&mut c, &mut up, "NetStream.Publish.BadName", "cam1").await;
    assert_eq!(deny_count(&gw, "publish", "hmac"), 2.0);
}

#[tokio::test]
async fn the_keys_file_reloads() {
    let dir = TempDir::new("auth-reload");
    let keys = keys_file(&dir, "live/first\n");
    let mut up = TestUpstream::start().await;
    let path = keys.clone();
    let gw = gateway(&up, |c| {
        c.auth.keys_file = Some(path);
        c.tls_reload_interval = Duration::from_millis(100);
    })
    .await;
    let (mut c, _) = send_session(&gw, &publish_session("live", "second", 9, 1)).await;
    refused(&mut c, &mut up, "NetStream.Publish.BadName", "second").await;
    // A new mtime and size: the watcher picks it up within a few ticks.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(&keys, "live/first\nlive/second\n").unwrap();
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let (mut c, bytes) = send_session(&gw, &publish_session("live", "second", 10, 2)).await;
        // Refused clients are closed at once; an allowed one stays open.
        let mut byte = [0u8; 1];
        let probe = tokio::time::timeout(Duration::from_millis(800), async {
            loop {
                match c.read(&mut byte).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        let conn = up.try_next_conn();
        if probe.is_err() {
            let conn = conn.expect("an allowed stream reached the upstream");
            let got = conn.wait_for_len(bytes.len(), LIMIT).await;
            assert_bytes_eq("after reload", &got.bytes, &bytes);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the keys file was never reloaded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// RTMPT and RTMPTS sessions pass the same gate: the session task sees the
/// client's `/send` bodies. A publish split across two `/send`s is held
/// until its second half and its decision; a refused one gets the
/// `onStatus` in the `/send` reply and the session ends.
#[tokio::test]
async fn rtmpt_and_rtmpts_sessions_are_authorized() {
    let (_dir, mut up, gw) = keys_gateway("live/good\n").await;
    for tls in [false, true] {
        for (key, allowed) in [("good", true), ("bad", false)] {
            let mut t = if tls {
                Tunnel::open_tls(gw.rtmps()).await
            } else {
                Tunnel::open_tcp(gw.rtmp()).await
            };
            t.rtmp_handshake().await;
            let bytes = encode_messages(&publish_session("live", key, 16, 4));
            let (first, second) = bytes.split_at(bytes.len() / 3);
            let r1 = t.send_raw(first).await;
            let r2 = t.send_raw(second).await;
            let conn = up.next_conn().await;
            if allowed {
                r1.expect_status(200, "first half");
                r2.expect_status(200, "second half");
                let got = conn.wait_for_len(bytes.len(), LIMIT).await;
                assert_bytes_eq("rtmpt, allowed", &got.bytes, &bytes);
            } else {
                let replies = [&r1, &r2].map(|r| String::from_utf8_lossy(&r.body).into_owned());
                assert!(
                    replies
                        .iter()
                        .any(|b| b.contains("NetStream.Publish.BadName")),
                    "a /send reply carries the refusal: {replies:?}"
                );
                let seen = conn.wait_for_end(LIMIT).await.bytes;
                let seen = String::from_utf8_lossy(&seen);
                assert!(
                    !seen.contains("bad"),
                    "the upstream saw the refused name: {seen:?}"
                );
                let after = t.idle_raw().await;
                assert_ne!(after.status, 200, "the session is over");
            }
        }
    }
    let denied = gw.metric(
        "rtmpgate_rtmpt_sessions_closed_total",
        &[("reason", "auth_denied")],
    );
    assert_eq!(denied, 2.0);
}

// ---------------------------------------------------------------------------
// The webhook
// ---------------------------------------------------------------------------

/// A one-route HTTP hook on 127.0.0.1: answers every POST with `status`
/// after `delay`, and keeps the form bodies it got.
struct Hook {
    url: String,
    bodies: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn hook(status: u16, delay: Duration) -> Hook {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/on_publish", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&bodies);
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                loop {
                    let Some(body) = read_request(&mut sock).await else {
                        return;
                    };
                    seen.lock().unwrap().push(body);
                    tokio::time::sleep(delay).await;
                    let reply = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
                    if sock.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Hook { url, bodies, task }
}

/// One HTTP/1.1 request's body (by Content-Length), bounded.
async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = sock.read(&mut tmp).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            return Some(String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned());
        }
        let n = tokio::time::timeout(LIMIT, sock.read(&mut tmp))
            .await
            .ok()?
            .ok()?;
        if n == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// A form body's fields, decoded.
fn form(body: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

fn field<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn the_webhook_gets_nginx_rtmp_fields_and_its_2xx_allows() {
    let hook = hook(204, Duration::ZERO).await;
    let mut up = TestUpstream::start().await;
    let url = hook.url.clone();
    let gw = gateway(&up, |c| c.auth.webhook_url = Some(url)).await;
    let (_c, bytes) = send_session(&gw, &publish_session("live", "cam?token=abc&x=1", 11, 5)).await;
    upstream_got_exactly(&mut up, &bytes).await;
    let bodies = hook.bodies.lock().unwrap().clone();
    assert_eq!(
        bodies.len(),
        1,
        "releaseStream and publish of one name: one call, {bodies:?}"
    );
    let f = form(&bodies[0]);
    assert_eq!(field(&f, "call"), Some("publish"));
    assert_eq!(field(&f, "app"), Some("live"));
    assert_eq!(field(&f, "name"), Some("cam"));
    assert_eq!(field(&f, "token"), Some("abc"));
    assert_eq!(field(&f, "x"), Some("1"));
    assert_eq!(field(&f, "addr"), Some("127.0.0.1"));
    assert_eq!(field(&f, "protocol"), Some("rtmp"));
    assert_eq!(field(&f, "type"), Some("live"));
    assert_eq!(field(&f, "tcurl"), Some("rtmps://localhost/live"));
    assert!(
        field(&f, "flashver").is_some_and(|v| v.starts_with("FMLE/3.0")),
        "{f:?}"
    );
}

#[tokio::test]
async fn the_webhook_denies_with_4xx_timeout_and_when_down() {
    let forbidden = hook(403, Duration::ZERO).await;
    let slow = hook(200, Duration::from_secs(3)).await;
    let down = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    for url in [forbidden.url.clone(), slow.url.clone(), down] {
        let mut up = TestUpstream::start().await;
        let gw = gateway(&up, |c| {
            c.auth.webhook_url = Some(url.clone());
            c.auth.timeout = Duration::from_millis(300);
        })
        .await;
        let (mut c, _) = send_session(&gw, &publish_session("live", "k1", 12, 1)).await;
        refused(&mut c, &mut up, "NetStream.Publish.BadName", "k1").await;
        assert_eq!(deny_count(&gw, "publish", "webhook"), 1.0, "{url}");
    }
}

#[tokio::test]
async fn fail_open_allows_when_the_webhook_is_down_but_not_on_4xx() {
    let forbidden = hook(401, Duration::ZERO).await;
    let down = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    for (url, allowed) in [(down, true), (forbidden.url.clone(), false)] {
        let mut up = TestUpstream::start().await;
        let gw = gateway(&up, |c| {
            c.auth.webhook_url = Some(url.clone());
            c.auth.timeout = Duration::from_millis(300);
            c.auth.fail_open = true;
        })
        .await;
        let (mut c, bytes) = send_session(&gw, &publish_session("live", "k2", 13, 3)).await;
        if allowed {
            upstream_got_exactly(&mut up, &bytes).await;
        } else {
            refused(&mut c, &mut up, "NetStream.Publish.BadName", "k2").await;
        }
    }
}

/// Many stream commands while the hook is slow: the client is closed, not
/// queued without bound.
#[tokio::test]
async fn a_command_flood_while_waiting_is_closed() {
    let slow = hook(200, Duration::from_secs(2)).await;
    let mut up = TestUpstream::start().await;
    let url = slow.url.clone();
    let gw = gateway(&up, |c| {
        c.auth.webhook_url = Some(url);
        c.auth.timeout = Duration::from_secs(5);
    })
    .await;
    let mut msgs = vec![connect_message("live")];
    for i in 0..20 {
        msgs.push(RtmpMessage::command(
            0,
            &[
                string("FCPublish"),
                Value::Number(2.0),
                Value::Null,
                string(&format!("n{i}")),
            ],
        ));
    }
    let (mut c, _) = send_session(&gw, &msgs).await;
    read_until_closed(&mut c, LIMIT, "flood close").await;
    if let Some(conn) = up.try_next_conn() {
        let seen = conn.wait_for_end(LIMIT).await.bytes;
        assert!(!String::from_utf8_lossy(&seen).contains("FCPublish"));
    }
    gw.wait_metric(
        "rtmpgate_connections_closed_total",
        &[("protocol", "rtmp"), ("reason", "refused")],
        1.0,
    )
    .await;
}

/// With `[[route]]`s rtmpgate does both handshakes itself; the gate follows
/// from the first chunk and refuses the same way, with and without a tcUrl
/// rewrite.
#[tokio::test]
async fn routed_connections_are_authorized() {
    let dir = TempDir::new("auth-keys");
    let keys = keys_file(&dir, "live/good\n");
    for tc_url in [None, Some("rtmp://origin.internal/live")] {
        let mut routed_up = TestUpstream::start().await;
        let default_up = TestUpstream::start().await;
        let rule = rtmpgate::routes::RouteRule {
            app: Some("live".into()),
            host: None,
            upstreams: vec![format!("rtmp://{}", routed_up.addr).parse().unwrap()],
            tc_url: tc_url.map(str::to_owned),
        };
        let keys = keys.clone();
        let gw = gateway(&default_up, |c| {
            c.auth.keys_file = Some(keys);
            c.routes = vec![rule];
        })
        .await;
        let (mut c, _) = send_session(&gw, &publish_session("live", "bad", 14, 2)).await;
        refused(&mut c, &mut routed_up, "NetStream.Publish.BadName", "bad").await;

        let (_c, bytes) = send_session(&gw, &publish_session("live", "good", 15, 6)).await;
        let conn = routed_up.next_conn().await;
        if tc_url.is_none() {
            let got = conn.wait_for_len(bytes.len(), LIMIT).await;
            assert_bytes_eq("routed, allowed", &got.bytes, &bytes);
        } else {
            // connect is re-encoded; the media after it arrives whole.
            let tail = &bytes[bytes.len() - 2000..];
            let got = conn.wait_for_len(bytes.len() - 40, LIMIT).await;
            assert!(
                got.bytes.windows(tail.len()).any(|w| w == tail),
                "media reached the route"
            );
        }
    }
}

/// `--metrics-per-app`: active streams and bytes by app, never by stream
/// name; off by default.
#[tokio::test]
async fn per_app_metrics_are_opt_in_and_name_only_the_app() {
    for per_app in [false, true] {
        let mut up = TestUpstream::start().await;
        let gw = gateway(&up, |c| c.metrics_per_app = per_app).await;
        let (client, bytes) =
            send_session(&gw, &publish_session("live", "secret-key", 17, 3)).await;
        upstream_got_exactly(&mut up, &bytes).await;
        let active = [("app", "live"), ("call", "publish")];
        if per_app {
            gw.wait_metric("rtmpgate_app_streams_active", &active, 1.0)
                .await;
        }
        drop(client);
        gw.wait_metric(
            "rtmpgate_connections_closed_total",
            &[("protocol", "rtmp"), ("reason", "client_closed")],
            1.0,
        )
        .await;
        let text = gw.metrics_text();
        assert!(
            !text.contains("secret-key"),
            "no stream name in the metrics"
        );
        let up_bytes = gw.metric(
            "rtmpgate_app_bytes_total",
            &[("app", "live"), ("direction", "client_to_upstream")],
        );
        if per_app {
            assert_eq!(gw.metric("rtmpgate_app_streams_active", &active), 0.0);
            assert!(up_bytes >= bytes.len() as f64, "{up_bytes}");
        } else {
            assert!(!text.contains("app=\"live\""), "off by default:\n{text}");
        }
    }
}

/// A decision covers the stream name as sent, query included: a good key
/// in `releaseStream` does not let a `publish` with another key through.
#[tokio::test]
async fn one_good_key_does_not_cover_another_on_the_same_connection() {
    let (_dir, mut up, gw) = keys_gateway("live/cam?key=good\n").await;
    let msgs = vec![
        connect_message("live"),
        RtmpMessage::command(
            0,
            &[
                string("releaseStream"),
                Value::Number(2.0),
                Value::Null,
                string("cam?key=good"),
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
                string("cam?key=bad"),
                string("live"),
            ],
        ),
    ];
    let (mut c, _) = send_session(&gw, &msgs).await;
    refused(&mut c, &mut up, "NetStream.Publish.BadName", "key=bad").await;
    assert_eq!(deny_count(&gw, "publish", "keys"), 1.0);
}
