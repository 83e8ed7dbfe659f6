//! RTMPT / RTMPTS end to end: a hand-written HTTP/1.1 client (see
//! `rtmpt_support`) against rtmpgate in-process, in front of the shared
//! test upstream (`common::TestUpstream`). Real loopback sockets, ephemeral
//! ports, every wait bounded.

mod common;
mod rtmpt_support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtmpgate::rtmpt::RtmptSettings;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use common::{
    CLOSED, LiveRelay, RTMP_VERSION, ReadEnd, STEP, TestUpstream, UpstreamMode, assert_bytes_eq,
    connect_rtmps, connect_tcp, fresh_seed, handshake_block, pattern, read_until_closed,
    start_gateway, within,
};
use rtmpt_support::{
    HttpConn, LiveTunnel, Pusher, Tunnel, close_req, idle_req, open_req, parse_open_body, post,
    request, send_req, url_safe,
};

const RTMP: &str = "rtmp://127.0.0.1:0";
const RTMPS: &str = "rtmps://127.0.0.1:0";
const RTMPT: &str = "rtmpt://127.0.0.1:0";
const RTMPTS: &str = "rtmpts://127.0.0.1:0";

const MIB: usize = 1024 * 1024;

const SESSIONS_CLOSED: &str = "rtmpgate_rtmpt_sessions_closed_total";
const SESSIONS_ACTIVE: &str = "rtmpgate_rtmpt_sessions_active";
const REQUESTS: &str = "rtmpgate_rtmpt_requests_total";
const BUFFERED: &str = "rtmpgate_buffered_bytes";

/// Most server bytes one reply may carry (the default `max_reply`).
fn max_reply() -> usize {
    RtmptSettings::default().session.max_reply
}

/// The address the gateway serves `scheme` on.
fn addr_of(gw: &common::TestGateway, url: &str) -> SocketAddr {
    let scheme = url.split("://").next().expect("scheme");
    gw.addrs
        .iter()
        .find(|(s, _)| s.as_str() == scheme)
        .map(|(_, a)| *a)
        .unwrap_or_else(|| panic!("no {scheme} listener in {:?}", gw.addrs))
}

// ---------------------------------------------------------------------------
// 1. Multi-megabyte transfers, byte-exact both ways
// ---------------------------------------------------------------------------

/// Handshake through the tunnel, then `up_len` bytes client→upstream over
/// many `/send`s of varied sizes while the upstream writes `down_len` bytes
/// that come back in `/send` and `/idle` replies. Both directions are
/// compared byte for byte.
async fn bulk_both_ways(
    mut t: Tunnel,
    upstream: &mut TestUpstream,
    up_len: usize,
    down_len: usize,
) {
    let (c0c1, c2) = t.rtmp_handshake().await;
    let conn = Arc::new(upstream.next_conn().await);
    assert_bytes_eq(
        "handshake at the upstream",
        &conn.handshake().received(),
        &[c0c1, c2].concat(),
    );

    let seed = fresh_seed();
    let up = pattern(seed, up_len);
    let down = Arc::new(pattern(!seed, down_len));
    let pusher = Pusher::start(Arc::clone(&conn), Arc::clone(&down), 100_003);

    let sizes = [1, 1000, 4096, 65_536, 200_000, 17, 130_000, 8191];
    let mut got = Vec::with_capacity(down_len);
    let mut offset = 0;
    let (mut sends, mut idles) = (0usize, 0usize);
    within(Duration::from_secs(25), "the bulk transfer", async {
        while offset < up.len() || got.len() < down.len() {
            let res = if offset < up.len() {
                let n = sizes[sends % sizes.len()].min(up.len() - offset);
                sends += 1;
                let res = t.send_raw(&up[offset..offset + n]).await;
                offset += n;
                res
            } else {
                idles += 1;
                t.idle_raw().await
            };
            let data = res.data("bulk reply");
            assert!(
                data.len() <= max_reply(),
                "a reply carried {} server bytes, more than max_reply {}",
                data.len(),
                max_reply()
            );
            got.extend_from_slice(data);
        }
    })
    .await;
    pusher.finish().await;
    assert_bytes_eq("upstream→client bytes at the client", &got, &down);
    let rec = conn.wait_for_len(up.len(), Duration::from_secs(20)).await;
    assert_eq!(rec.end, None, "the upstream connection ended early");
    assert_bytes_eq("client→upstream bytes at the upstream", &rec.bytes, &up);
    assert!(sends > 50, "many /send requests: {sends}");
    // Nothing more in either direction.
    assert!(t.idle().await.is_empty(), "extra server bytes");
    assert_eq!(conn.received_len(), up.len(), "extra client bytes");
}

#[tokio::test]
async fn rtmpt_multi_megabyte_byte_exact_both_ways() {
    let mut upstream = TestUpstream::start().await;
    let gw = start_gateway(&[RTMPT], upstream.addr, |_| {}).await;
    let t = Tunnel::open_tcp(addr_of(&gw, RTMPT)).await;
    bulk_both_ways(t, &mut upstream, 6 * MIB + 12_345, 6 * MIB + 54_321).await;
}

#[tokio::test]
async fn rtmpts_multi_megabyte_byte_exact_both_ways() {
    let mut upstream = TestUpstream::start().await;
    let gw = start_gateway(&[RTMPS], upstream.addr, |_| {}).await;
    let t = Tunnel::open_tls(gw.rtmps()).await;
    bulk_both_ways(t, &mut upstream, 3 * MIB + 777, 3 * MIB + 999).await;
}

// ---------------------------------------------------------------------------
// 2. Pipelining on one keep-alive connection
// ---------------------------------------------------------------------------

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let gw = start_gateway(&[RTMP], upstream.addr, |_| {}).await;
    let mut t = Tunnel::open_tcp(gw.rtmp()).await;
    let conn = upstream.next_conn().await;
    let seed = fresh_seed();
    let server = pattern(seed ^ 1, 20_000);
    conn.send(server.clone()).await;

    // Requests whose replies differ in status, so their order is visible.
    let id = t.id.clone();
    let (x, y, z) = (
        pattern(seed, 5000),
        pattern(seed ^ 2, 1),
        pattern(seed ^ 3, 70_000),
    );
    let batch = [
        send_req(&id, 0, &x),
        post("/fcs/ident2", &[0]),
        send_req(&id, 1, &y),
        idle_req(&id, 2),
        request("GET", "/open/1", &[("Host", "127.0.0.1")], b""),
        send_req(&id, 3, &z),
        idle_req(&id, 4),
    ];
    let want = [200, 404, 200, 200, 405, 200, 200];
    t.conn.write_raw(&batch.concat()).await;
    let mut got = Vec::new();
    for (i, status) in want.iter().enumerate() {
        let res = t.conn.read_response().await;
        res.expect_status(*status, &format!("pipelined reply #{i}"));
        if *status == 200 {
            got.extend_from_slice(res.data("pipelined reply"));
        }
    }
    t.seq = 5;
    conn.expect_bytes(
        "pipelined bodies at the upstream",
        &[&x[..], &y, &z].concat(),
    )
    .await;

    // A second batch of large bodies spanning many TCP segments.
    let bodies: Vec<Vec<u8>> = (0..4).map(|i| pattern(seed + 10 + i, 150_000)).collect();
    let batch: Vec<u8> = bodies
        .iter()
        .enumerate()
        .flat_map(|(i, b)| send_req(&id, 5 + i as u64, b))
        .collect();
    t.conn.write_raw(&batch).await;
    for i in 0..bodies.len() {
        let res = t.conn.read_response().await;
        got.extend_from_slice(res.data(&format!("large pipelined send #{i}")));
    }
    t.seq = 9;
    let all_up = [&x[..], &y, &z, &bodies.concat()].concat();
    conn.expect_bytes("all pipelined bodies at the upstream", &all_up)
        .await;
    let len = server.len();
    t.idle_until(&mut got, len, STEP).await;
    assert_bytes_eq("server bytes over the pipelined replies", &got, &server);
}

/// Long-poll for the pipelining timing tests: an /idle held for it would be
/// obvious next to [`FAST`].
const LONG_POLL: Duration = Duration::from_secs(3);
/// Generous bound for an idle + send pair that is not held.
const FAST: Duration = Duration::from_millis(1500);

/// A gateway with a long long-poll and a session on it (raw upstream).
async fn long_poll_session() -> (
    common::TestGateway,
    TestUpstream,
    Tunnel,
    common::UpstreamConn,
) {
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let gw = start_gateway(&[RTMP], upstream.addr, |c| {
        c.rtmpt.session.long_poll = LONG_POLL;
    })
    .await;
    let t = Tunnel::open_tcp(gw.rtmp()).await;
    let conn = upstream.next_conn().await;
    (gw, upstream, t, conn)
}

/// A parked `/idle` is answered as soon as the next request arrives on its
/// connection, not after the long-poll.
#[tokio::test]
async fn request_arriving_behind_parked_idle_releases_it() {
    let (_gw, _upstream, mut t, conn) = long_poll_session().await;
    let id = t.id.clone();
    t.conn.write_raw(&idle_req(&id, 0)).await;
    assert!(
        t.conn
            .try_read_response(Duration::from_millis(200))
            .await
            .is_none(),
        "an /idle with no server bytes must be parked (long-poll)"
    );
    let x = pattern(1, 1000);
    let start = Instant::now();
    t.conn.write_raw(&send_req(&id, 1, &x)).await;
    let idle = t.conn.read_response().await;
    let send = t.conn.read_response().await;
    let elapsed = start.elapsed();
    assert!(idle.data("parked idle").is_empty());
    assert!(send.data("send behind the idle").is_empty());
    conn.expect_bytes("send behind a parked idle", &x).await;
    assert!(
        elapsed < FAST,
        "idle + send took {elapsed:?}: the send waited behind the long-poll ({LONG_POLL:?})"
    );
}

/// Pipelining proper: `/idle` and `/send` written back to back in one write
/// (so they arrive in one segment). The send must not wait for the idle's
/// whole long-poll, neither on a connection that has served requests nor as
/// the first bytes of a new connection.
#[tokio::test]
async fn idle_pipelined_with_next_request_in_one_write_is_not_held() {
    let (gw, _upstream, mut t, conn) = long_poll_session().await;
    let id = t.id.clone();
    // Make the connection a used one.
    assert!(t.send(b"warm-up").await.is_empty());
    let mut sent = b"warm-up".to_vec();

    let y = pattern(2, 2000);
    let start = Instant::now();
    t.conn
        .write_raw(&[idle_req(&id, 1), send_req(&id, 2, &y)].concat())
        .await;
    t.conn.read_response().await.data("pipelined idle");
    t.conn.read_response().await.data("pipelined send");
    let used = start.elapsed();
    sent.extend_from_slice(&y);
    conn.expect_bytes("pipelined send after idle", &sent).await;

    let mut fresh = HttpConn::tcp(gw.rtmp()).await;
    let z = pattern(3, 3000);
    let start = Instant::now();
    fresh
        .write_raw(&[idle_req(&id, 3), send_req(&id, 4, &z)].concat())
        .await;
    fresh
        .read_response()
        .await
        .data("pipelined idle (new connection)");
    fresh
        .read_response()
        .await
        .data("pipelined send (new connection)");
    let new = start.elapsed();
    sent.extend_from_slice(&z);
    conn.expect_bytes("pipelined send on a new connection", &sent)
        .await;

    assert!(
        used < FAST && new < FAST,
        "an /idle pipelined in the same write as the next request is held for the \
         long-poll: idle+send took {used:?} on a used connection and {new:?} as the first \
         bytes of a new one (long_poll {LONG_POLL:?}, want < {FAST:?})"
    );
}

/// Requests written the way ffmpeg and librtmp write them: the head, then
/// the body in a second write, on a socket with Nagle on. The body leaves
/// the client only once the head is ACKed, so a gateway that lets the
/// kernel delay that ACK (~40 ms on Linux once replies have turned delayed
/// ACKs on) stalls every request; rtmpgate re-arms TCP_QUICKACK.
///
/// Not a speed figure: a stalled request takes at least the kernel's
/// minimum delayed-ACK time (40 ms), an unstalled one well under 1 ms on
/// loopback, so the test counts requests past 30 ms and allows a third of
/// them to be slow for a busy machine.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn requests_split_across_writes_are_not_held_by_delayed_acks() {
    split_requests_are_not_stalled(RTMP).await;
}

/// The same over RTMPTS: rustls turns each write into its own record.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn rtmpts_requests_split_across_writes_are_not_held_by_delayed_acks() {
    split_requests_are_not_stalled(RTMPS).await;
}

#[cfg(target_os = "linux")]
async fn split_requests_are_not_stalled(listen: &str) {
    const REQUESTS: usize = 30;
    const STALLED: Duration = Duration::from_millis(30);
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let gw = start_gateway(&[listen], upstream.addr, |_| {}).await;
    let mut t = if listen == RTMPS {
        Tunnel::open_tls(gw.rtmps()).await
    } else {
        Tunnel::open_tcp(gw.rtmp()).await
    };
    let conn = upstream.next_conn().await;
    let mut sent = Vec::new();
    let mut slow = Vec::new();
    for i in 0..REQUESTS {
        let body = pattern(i as u64, 200);
        let seq = t.next_seq();
        let req = send_req(&t.id, seq, &body);
        let head_len = req
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("request head")
            + 4;
        let start = Instant::now();
        t.conn.write_raw(&req[..head_len]).await;
        t.conn.write_raw(&req[head_len..]).await;
        let res = t.conn.read_response().await;
        let took = start.elapsed();
        res.data(&format!("split /send seq {seq}"));
        if took >= STALLED {
            slow.push(took);
        }
        sent.extend_from_slice(&body);
    }
    conn.expect_bytes("split /send bodies", &sent).await;
    assert!(
        slow.len() <= REQUESTS / 3,
        "{} of {REQUESTS} split requests took >= {STALLED:?} ({slow:?}): \
         the gateway's delayed ACK holds the client's body (TCP_QUICKACK not re-armed)",
        slow.len()
    );
}

// ---------------------------------------------------------------------------
// 3. Out-of-order arrival across connections
// ---------------------------------------------------------------------------

#[tokio::test]
async fn out_of_order_requests_across_connections_are_applied_in_order() {
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let gw = start_gateway(&[RTMP], upstream.addr, |_| {}).await;
    let addr = gw.rtmp();
    let mut a = Tunnel::open_tcp(addr).await;
    let conn = upstream.next_conn().await;
    let id = a.id.clone();
    let seed = fresh_seed();
    // seq 0 fixes the numbering (a first request numbered 1 would be taken
    // as Red5-style numbering after a short grace).
    let w = pattern(seed, 100);
    assert!(a.send(&w).await.is_empty());

    // seq 2 arrives on connection B before seq 1 on connection A.
    let mut b = HttpConn::tcp(addr).await;
    let y = pattern(seed ^ 2, 40_000);
    b.write_raw(&send_req(&id, 2, &y)).await;
    gw.wait_metric("rtmpgate_rtmpt_reordered_requests_total", &[], 1.0)
        .await;
    assert!(
        b.try_read_response(Duration::from_millis(50))
            .await
            .is_none(),
        "seq 2 must wait for seq 1"
    );
    assert_eq!(conn.received_len(), w.len(), "seq 2 forwarded before seq 1");

    let x = pattern(seed ^ 1, 30_000);
    let ra = a.conn.roundtrip(&send_req(&id, 1, &x)).await;
    ra.data("seq 1 on connection A");
    let rb = b.read_response().await;
    rb.data("seq 2 on connection B");
    conn.expect_bytes("seq 0, 1, 2 at the upstream", &[&w[..], &x, &y].concat())
        .await;

    // The session goes on normally on either connection.
    a.seq = 3;
    let mut live = LiveTunnel::new(a, conn, [w, x, y].concat());
    live.check("after reordering").await;
    assert_eq!(gw.metric("rtmpgate_rtmpt_sequence_gaps_total", &[]), 0.0);
}

// ---------------------------------------------------------------------------
// 4. Duplicates
// ---------------------------------------------------------------------------

/// The same reply: status, body and headers (but `Date`, which ticks, and
/// `Connection`, which is the connection's business).
#[track_caller]
fn assert_same_reply(got: &rtmpt_support::Response, want: &rtmpt_support::Response, what: &str) {
    assert_eq!(got.status_line, want.status_line, "{what}: status line");
    assert_bytes_eq(what, &got.body, &want.body);
    let keep = |r: &rtmpt_support::Response| {
        r.headers
            .iter()
            .filter(|(k, _)| {
                !k.eq_ignore_ascii_case("date") && !k.eq_ignore_ascii_case("connection")
            })
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(keep(got), keep(want), "{what}: headers");
}

#[tokio::test]
async fn duplicate_request_replays_reply_and_is_not_forwarded_again() {
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let gw = start_gateway(&[RTMP], upstream.addr, |_| {}).await;
    let addr = gw.rtmp();
    let mut t = Tunnel::open_tcp(addr).await;
    let conn = upstream.next_conn().await;
    let id = t.id.clone();
    let seed = fresh_seed();

    // An idle whose reply carries server bytes.
    let d1 = pattern(seed, 150_000);
    conn.send(d1.clone()).await;
    let first = t.conn.roundtrip(&idle_req(&id, 0)).await;
    let mut got = first.data("idle 0").to_vec();
    assert!(!got.is_empty(), "an idle returns once server bytes arrive");
    // The retry (e.g. on a new connection after a lost reply) gets the very
    // same bytes, not a new drain of what is pending.
    let mut other = HttpConn::tcp(addr).await;
    let again = other.roundtrip(&idle_req(&id, 0)).await;
    assert_same_reply(&again, &first, "replayed idle reply");

    // A send whose reply is then replayed; its body must not go up twice.
    let x = pattern(seed ^ 1, 50_000);
    let sent = t.conn.roundtrip(&send_req(&id, 1, &x)).await;
    got.extend_from_slice(sent.data("send 1"));
    conn.expect_bytes("send 1 at the upstream", &x).await;
    let d2 = pattern(seed ^ 2, 30_000);
    conn.send(d2.clone()).await;
    // (rtmpgate does not read a duplicate's body, so hyper answers it with
    // `Connection: close`; each retry gets its own connection here.)
    for round in 0..2 {
        let mut retry = HttpConn::tcp(addr).await;
        let again = retry.roundtrip(&send_req(&id, 1, &x)).await;
        assert_same_reply(&again, &sent, &format!("replayed send reply #{round}"));
    }
    assert_eq!(
        gw.metric("rtmpgate_rtmpt_duplicate_requests_total", &[]),
        3.0
    );

    // The next sequence number: the upstream got x once, then z.
    let z = pattern(seed ^ 3, 10);
    let res = t.conn.roundtrip(&send_req(&id, 2, &z)).await;
    got.extend_from_slice(res.data("send 2"));
    conn.expect_bytes("upstream after duplicates", &[&x[..], &z].concat())
        .await;
    // Every server byte arrives exactly once, in order.
    t.seq = 3;
    let want = [d1, d2].concat();
    t.idle_until(&mut got, want.len(), STEP).await;
    assert_bytes_eq("server bytes with duplicates", &got, &want);

    // An older request that is not the last one is refused, not replayed.
    let stale = HttpConn::tcp(addr)
        .await
        .roundtrip(&send_req(&id, 1, &x))
        .await;
    stale.expect_status(400, "stale seq");
    assert_eq!(conn.received_len(), x.len() + z.len());
}

// ---------------------------------------------------------------------------
// 5. Unknown ids and client binding
// ---------------------------------------------------------------------------

#[tokio::test]
async fn unknown_session_ids_get_404_and_leave_live_session_alone() {
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let gw = start_gateway(&[RTMP], upstream.addr, |_| {}).await;
    let addr = gw.rtmp();
    let tunnel = Tunnel::open_tcp(addr).await;
    let conn = upstream.next_conn().await;
    let mut live = LiveTunnel::new(tunnel, conn, Vec::new());
    live.check("before the guesses").await;

    let id = live.tunnel.id.clone();
    let mut flipped = id.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
    let guesses = [
        "00000000000000000000000000000000".to_string(),
        format!("{:032x}", fresh_seed()),
        String::from_utf8(flipped).unwrap(),
        id[..8].to_string(),
        id.to_uppercase(),
        format!("{id}0"),
        "1".to_string(),
    ];
    let seq = live.tunnel.seq;
    let mut refused = 0.0;
    for guess in &guesses {
        if guess == &id {
            continue;
        }
        for req in [
            send_req(guess, seq, b"INJECTED"),
            idle_req(guess, seq),
            close_req(guess, seq),
            send_req(guess, 0, b"INJECTED"),
        ] {
            let res = HttpConn::tcp(addr).await.roundtrip(&req).await;
            res.expect_status(404, &format!("guessed id {guess}"));
            refused += 1.0;
        }
    }
    // Paths that are not tunnel paths at all.
    for path in [
        format!("/send/{id}x{}/0", "y".repeat(64)),
        format!("/send/{id}/"),
        format!("/send/{id}/-1"),
        format!("/send/../{id}/0"),
        format!("/idle/{id}%00/0"),
    ] {
        let res = HttpConn::tcp(addr)
            .await
            .roundtrip(&post(&path, b"INJECTED"))
            .await;
        res.expect_status(404, &path);
    }
    assert_eq!(
        gw.metric("rtmpgate_rtmpt_unknown_session_requests_total", &[]),
        refused
    );
    live.check("after the guesses").await;
    assert_eq!(gw.metric(SESSIONS_ACTIVE, &[]), 1.0);
}

#[tokio::test]
async fn session_is_bound_to_the_client_address() {
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let gw = start_gateway(&[RTMP], upstream.addr, |_| {}).await;
    let addr = gw.rtmp();
    let other_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let tunnel = Tunnel::open_tcp(addr).await;
    let conn = upstream.next_conn().await;
    let mut live = LiveTunnel::new(tunnel, conn, Vec::new());
    live.check("before the foreign requests").await;
    let id = live.tunnel.id.clone();
    let seq = live.tunnel.seq;

    for req in [
        send_req(&id, seq, b"INJECTED"),
        idle_req(&id, seq),
        close_req(&id, seq),
    ] {
        let mut c = HttpConn::tcp_from(other_ip, addr).await;
        c.roundtrip(&req)
            .await
            .expect_status(404, "the session's id from another address");
    }
    live.check("after the foreign requests").await;

    // A session opened from 127.0.0.2 works there and not from 127.0.0.1.
    let mut theirs = Tunnel::open(HttpConn::tcp_from(other_ip, addr).await).await;
    let their_conn = upstream.next_conn().await;
    let mut c = HttpConn::tcp(addr).await;
    c.roundtrip(&send_req(&theirs.id, 0, b"INJECTED"))
        .await
        .expect_status(404, "127.0.0.2's session from 127.0.0.1");
    let mine = pattern(9, 500);
    assert!(theirs.send(&mine).await.is_empty());
    their_conn.expect_bytes("127.0.0.2's own send", &mine).await;
    live.check("at the end").await;
}

#[tokio::test]
async fn any_client_address_setting_lets_another_address_use_the_session() {
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let gw = start_gateway(&[RTMP], upstream.addr, |c| {
        c.rtmpt.limits.bind_client = false;
    })
    .await;
    let addr = gw.rtmp();
    let mut t = Tunnel::open_tcp(addr).await;
    let conn = upstream.next_conn().await;
    // The same session continued from 127.0.0.2 (e.g. a proxy farm).
    t.conn = HttpConn::tcp_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), addr).await;
    let mut live = LiveTunnel::new(t, conn, Vec::new());
    live.check("from another address").await;
}

// ---------------------------------------------------------------------------
// 6. HTTP-level refusals
// ---------------------------------------------------------------------------

/// Regression (slowhttptest slow-body run): a client that sends part of an
/// `/open` body and hangs up used to leave its connection open for ever,
/// hyper waiting for the rest of the body and our EOF hold waiting for
/// hyper. It must be closed at once, with no session left.
#[tokio::test]
async fn body_cut_short_by_a_hang_up_closes_the_connection() {
    let upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let gw = start_gateway(&[RTMP], upstream.addr, |_| {}).await;
    let mut s = common::connect_tcp(gw.rtmp()).await;
    s.write_all(
        b"POST /open/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-fcs\r\nContent-Length: 64\r\n\r\nab",
    )
    .await
    .unwrap();
    s.shutdown().await.unwrap();
    // The server answers (400) or just closes; either way it must close.
    common::read_until_closed(
        &mut s,
        Duration::from_secs(5),
        "server closing a connection whose body was cut short",
    )
    .await;
    assert_eq!(gw.metric(SESSIONS_ACTIVE, &[]), 0.0);
}

/// hyper's header-read timeout only works with a timer set: a client that
/// sends a request line and then nothing (slowloris) is closed at
/// `--rtmpt-header-timeout` and counted as such; garbage is counted as a
/// bad request.
#[tokio::test]
async fn slow_request_head_is_closed_at_the_header_timeout_and_counted() {
    const HEADER_TIMEOUT: Duration = Duration::from_millis(300);
    let upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let gw = start_gateway(&[RTMP], upstream.addr, |c| {
        c.rtmpt.header_timeout = HEADER_TIMEOUT;
    })
    .await;
    let closed = common::CLOSED;
    let mut slow = common::connect_tcp(gw.rtmp()).await;
    slow.write_all(b"POST /open/1 HTTP/1.1\r\n").await.unwrap();
    let started = Instant::now();
    common::read_until_closed(
        &mut slow,
        HEADER_TIMEOUT * 20,
        "a request head that never ends",
    )
    .await;
    assert!(
        started.elapsed() >= HEADER_TIMEOUT / 2,
        "closed before the header timeout: {:?}",
        started.elapsed()
    );
    gw.wait_metric(closed, &[("reason", "http_header_timeout")], 1.0)
        .await;

    let mut garbage = common::connect_tcp(gw.rtmp()).await;
    garbage
        .write_all(b"PUT\x00\x01 nonsense\r\n\r\n")
        .await
        .unwrap();
    common::read_until_closed(&mut garbage, Duration::from_secs(5), "garbage request").await;
    gw.wait_metric(closed, &[("reason", "http_bad_request")], 1.0)
        .await;
}

#[tokio::test]
async fn bad_requests_get_precise_statuses() {
    const MAX_BODY: usize = 4096;
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let gw = start_gateway(&[RTMP], upstream.addr, |c| {
        c.rtmpt.max_body = MAX_BODY as u64;
    })
    .await;
    let addr = gw.rtmp();
    let tunnel = Tunnel::open_tcp(addr).await;
    let conn = upstream.next_conn().await;
    let id = tunnel.id.clone();
    let len = |n: usize| n.to_string();
    let fcs = ("Content-Type", rtmpt_support::FCS);
    let host = ("Host", "127.0.0.1");

    let big = pattern(1, MAX_BODY + 1);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("send over max_body", send_req(&id, 0, &big), 413),
        (
            "send over max_body, head only",
            request(
                "POST",
                &format!("/send/{id}/0"),
                &[host, fcs, ("Content-Length", "100000000")],
                b"",
            ),
            413,
        ),
        ("open with a big body", post("/open/1", &[0; 65]), 413),
        (
            "idle with a big body",
            post(&format!("/idle/{id}/0"), &[0; 200]),
            413,
        ),
        ("GET", request("GET", "/open/1", &[host], b""), 405),
        (
            "GET of a send path",
            request("GET", &format!("/send/{id}/0"), &[host], b""),
            405,
        ),
        (
            "no Content-Type",
            request("POST", "/open/1", &[host, ("Content-Length", "1")], &[0]),
            415,
        ),
        (
            "text/plain",
            request(
                "POST",
                &format!("/send/{id}/0"),
                &[
                    host,
                    ("Content-Type", "text/plain"),
                    ("Content-Length", &len(5)),
                ],
                b"HELLO",
            ),
            415,
        ),
        (
            "chunked send",
            request(
                "POST",
                &format!("/send/{id}/0"),
                &[host, fcs, ("Transfer-Encoding", "chunked")],
                b"5\r\nHELLO\r\n0\r\n\r\n",
            ),
            411,
        ),
        ("fcs/ident2", post("/fcs/ident2", &[0]), 404),
        ("not a tunnel path", post("/index.html", &[0]), 404),
    ];
    for (what, req, status) in &cases {
        let mut c = HttpConn::tcp(addr).await;
        let res = c.roundtrip(req).await;
        res.expect_status(*status, what);
        assert!(!res.chunked, "{what}: error replies have a length");
        if *status == 405 {
            assert_eq!(res.header("Allow"), Some("POST"), "{what}: Allow header");
        }
    }
    assert_eq!(
        gw.metric(REQUESTS, &[("verb", "ident"), ("status", "404")]),
        1.0
    );
    assert_eq!(
        conn.received_len(),
        0,
        "a refused body reached the upstream"
    );

    // None of that touched the session: seq 0 is still free, and a body of
    // exactly max_body is accepted.
    let exact = pattern(2, MAX_BODY);
    let mut live = LiveTunnel::new(tunnel, conn, Vec::new());
    assert!(live.tunnel.send(&exact).await.is_empty());
    live.sent_up.extend_from_slice(&exact);
    live.upstream.expect_bytes("max_body bytes", &exact).await;
    live.check("after the refusals").await;
}

// ---------------------------------------------------------------------------
// 7. Session expiry
// ---------------------------------------------------------------------------

#[tokio::test]
async fn silent_session_expires_while_polling_session_survives() {
    const EXPIRY: Duration = Duration::from_millis(300);
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let gw = start_gateway(&[RTMP], upstream.addr, |c| {
        c.rtmpt.limits.expiry = EXPIRY;
    })
    .await;
    let addr = gw.rtmp();
    let mut silent = Tunnel::open_tcp(addr).await;
    let silent_up = upstream.next_conn().await;
    let silent_since = Instant::now();
    let busy = Tunnel::open_tcp(addr).await;
    let busy_up = upstream.next_conn().await;
    let mut busy = LiveTunnel::new(busy, busy_up, Vec::new());

    // The busy session polls back to back for several expiry periods.
    let expired = [("reason", "expired")];
    let mut expired_after = None;
    within(STEP, "the silent session to expire", async {
        while expired_after.is_none() || silent_since.elapsed() < EXPIRY * 4 {
            busy.tunnel.idle().await;
            if expired_after.is_none() && gw.metric(SESSIONS_CLOSED, &expired) == 1.0 {
                expired_after = Some(silent_since.elapsed());
            }
        }
    })
    .await;
    let after = expired_after.expect("expired");
    assert!(
        after >= EXPIRY - Duration::from_millis(10),
        "expired after {after:?}, before the {EXPIRY:?} expiry"
    );
    assert_eq!(
        gw.metric(SESSIONS_CLOSED, &[]),
        1.0,
        "only the silent session ended"
    );

    // The silent session is gone: its upstream connection closed, its id 404.
    let end = silent_up.wait_for_end(STEP).await;
    assert_eq!(end.end, Some(ReadEnd::Eof));
    silent
        .idle_raw()
        .await
        .expect_status(404, "expired session");
    let mut c = HttpConn::tcp(addr).await;
    c.roundtrip(&send_req(&silent.id, 0, b"late"))
        .await
        .expect_status(404, "expired session");
    assert_eq!(end.bytes.len(), 0);

    busy.check("the polling session after the expiry").await;
    assert_eq!(gw.metric(SESSIONS_ACTIVE, &[]), 1.0);
}

// ---------------------------------------------------------------------------
// 8. Buffer cap and backpressure
// ---------------------------------------------------------------------------

#[tokio::test]
async fn buffer_cap_pushes_back_on_upstream_until_client_polls() {
    const TOTAL: usize = 20 * MIB;
    // What the session may hold beyond its cap: nothing (its buffer never
    // allocates past the cap) but slack for rounding.
    const MARGIN: f64 = 1024.0;
    let cap = RtmptSettings::default().session.buffer_cap as f64;
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let gw = start_gateway(&[RTMP], upstream.addr, |_| {}).await;
    let mut t = Tunnel::open_tcp(gw.rtmp()).await;
    let conn = Arc::new(upstream.next_conn().await);
    let data = Arc::new(pattern(fresh_seed(), TOTAL));
    let pusher = Pusher::start(Arc::clone(&conn), Arc::clone(&data), 64 * 1024);

    // Wait until the upstream's writes stop making progress (blocked by the
    // full buffers) for a while, bounded.
    let mut last = 0;
    let mut still_since = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(25));
    let overall = Instant::now();
    loop {
        tick.tick().await;
        let now = pusher.written();
        assert!(
            now < TOTAL,
            "the upstream wrote all {TOTAL} bytes with no client polling"
        );
        if now != last {
            last = now;
            still_since = Instant::now();
        } else if still_since.elapsed() >= Duration::from_millis(500) {
            break;
        }
        assert!(
            overall.elapsed() < Duration::from_secs(10),
            "the upstream kept writing for 10 s ({now} bytes) with no client polling"
        );
    }
    let stalled_at = pusher.written();
    // The bytes the session holds, as /metrics reports them: the full cap,
    // and not a byte of allocation more (socket buffers hold the rest of
    // what the upstream wrote).
    let held = gw.metric(BUFFERED, &[]);
    assert!(
        held <= cap + MARGIN && held >= cap * 0.9,
        "the stalled session holds {held} bytes; its cap is {cap}"
    );

    // One poll takes a reply (kept for a duplicate) and the buffer refills
    // from the blocked upstream: still the cap plus that one reply, not the
    // buffer's old allocation pinned by the reply beside a new one.
    let mut got = Vec::with_capacity(TOTAL);
    got.extend(t.idle().await);
    assert_eq!(got.len(), max_reply(), "a full reply from the full buffer");
    let mut refilled = gw.metric(BUFFERED, &[]);
    let mut steady_since = Instant::now();
    within(STEP, "the buffer to refill", async {
        while steady_since.elapsed() < Duration::from_millis(300) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = gw.metric(BUFFERED, &[]);
            if now != refilled {
                refilled = now;
                steady_since = Instant::now();
            }
        }
    })
    .await;
    let bound = cap + max_reply() as f64 + MARGIN;
    assert!(
        refilled <= bound && refilled >= cap * 0.9,
        "after one poll the session holds {refilled} bytes; want the cap {cap} plus at most \
         one cached reply ({} bytes)",
        max_reply()
    );

    // Now the client polls: everything arrives byte-exact.
    t.idle_until(&mut got, TOTAL, Duration::from_secs(25)).await;
    pusher.finish().await;
    assert_bytes_eq("20 MiB through the capped buffer", &got, &data);
    // Drained: at most the reply cached for a duplicate is left.
    let left = gw.metric(BUFFERED, &[]);
    assert!(
        left <= max_reply() as f64,
        "{left} bytes still held after the session drained"
    );
    eprintln!(
        "upstream stalled after writing {stalled_at} bytes; the session held {held}, \
         {refilled} after one poll"
    );
}

// ---------------------------------------------------------------------------
// 9. Exact response bytes
// ---------------------------------------------------------------------------

/// What librtmp's hand-written parser needs in a 200 reply.
#[track_caller]
fn assert_librtmp_parsable(res: &rtmpt_support::Response, what: &str) {
    let head = res.head_text();
    assert!(
        res.raw.starts_with(b"HTTP/1.1 200 "),
        "{what}: reply must start with `HTTP/1.1 200 `:\n{head}"
    );
    let cl = format!("\r\nContent-Length: {}\r\n", res.body.len());
    assert!(
        head.contains(&cl),
        "{what}: want `{}` in\n{head}",
        cl.trim()
    );
    assert!(
        head.contains("\r\nContent-Type: application/x-fcs\r\n"),
        "{what}: want `Content-Type: application/x-fcs` in\n{head}"
    );
    assert!(
        !res.chunked && !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{what}: must not be chunked:\n{head}"
    );
    assert!(head.ends_with("\r\n\r\n"));
    assert_eq!(
        res.raw.len(),
        head.len() + res.body.len(),
        "{what}: raw length"
    );
}

#[tokio::test]
async fn replies_have_the_exact_shape_librtmp_parses() {
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let gw = start_gateway(&[RTMP, RTMPTS], upstream.addr, |_| {}).await;
    let addr = gw.rtmp();

    let mut c = HttpConn::tcp(addr).await;
    let open = c.roundtrip(&open_req()).await;
    assert_librtmp_parsable(&open, "/open");
    let id = parse_open_body(&open.body);
    assert_eq!(
        open.body,
        format!("{id}\n").into_bytes(),
        "id and exactly one \\n"
    );
    assert!(id.len() >= 32, "id {id:?} shorter than 32 characters");
    assert!(id.len() <= 63, "id {id:?} longer than ffmpeg keeps");
    assert!(url_safe(&id));
    let conn = upstream.next_conn().await;

    let mut c2 = HttpConn::tcp(addr).await;
    let open2 = c2.roundtrip(&open_req()).await;
    assert_librtmp_parsable(&open2, "second /open");
    let id2 = parse_open_body(&open2.body);
    assert_ne!(id, id2, "two opens must give different ids");
    let _conn2 = upstream.next_conn().await;
    // Over TLS too.
    let mut c3 = HttpConn::tls(addr_of(&gw, RTMPTS)).await;
    let open3 = c3.roundtrip(&open_req()).await;
    assert_librtmp_parsable(&open3, "/open over RTMPTS");
    assert_ne!(parse_open_body(&open3.body), id);
    let _conn3 = upstream.next_conn().await;

    // An empty idle reply: the delay byte only.
    let idle = c.roundtrip(&idle_req(&id, 0)).await;
    assert_librtmp_parsable(&idle, "empty /idle");
    assert_eq!(idle.body, [0x01], "empty idle: delay byte 1 only");

    // A send reply and an idle reply with server bytes.
    let x = pattern(5, 333);
    let send = c.roundtrip(&send_req(&id, 1, &x)).await;
    assert_librtmp_parsable(&send, "/send");
    assert_eq!(send.body.len(), 1);
    conn.expect_bytes("send body", &x).await;
    let d = pattern(6, 4321);
    conn.send(d.clone()).await;
    let mut got = Vec::new();
    let mut seq = 2;
    while got.len() < d.len() {
        let idle = c.roundtrip(&idle_req(&id, seq)).await;
        seq += 1;
        assert_librtmp_parsable(&idle, "/idle with data");
        got.extend_from_slice(idle.data("idle with data"));
    }
    assert_bytes_eq("idle data", &got, &d);

    let close = c.roundtrip(&close_req(&id, seq)).await;
    assert_librtmp_parsable(&close, "/close");
    assert_eq!(close.body, [0]);
}

// ---------------------------------------------------------------------------
// 10. Close
// ---------------------------------------------------------------------------

#[tokio::test]
async fn close_half_closes_upstream_after_all_bytes() {
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let gw = start_gateway(&[RTMP], upstream.addr, |_| {}).await;
    let addr = gw.rtmp();
    let mut t = Tunnel::open_tcp(addr).await;
    let conn = upstream.next_conn().await;
    let id = t.id.clone();
    let x = pattern(1, 300_000);
    assert!(t.send(&x).await.is_empty());
    // The last send and the close pipelined in one write.
    let y = pattern(2, 200_000);
    t.conn
        .write_raw(&[send_req(&id, 1, &y), close_req(&id, 2)].concat())
        .await;
    t.conn.read_response().await.data("send before close");
    let close = t.conn.read_response().await;
    close.expect_status(200, "/close");
    assert_eq!(close.body, [0]);
    t.seq = 3;

    let end = conn.wait_for_end(STEP).await;
    assert_eq!(end.end, Some(ReadEnd::Eof), "the upstream sees a clean EOF");
    assert_bytes_eq("bytes before the EOF", &end.bytes, &[&x[..], &y].concat());

    t.idle_raw().await.expect_status(404, "idle after close");
    let mut c = HttpConn::tcp(addr).await;
    c.roundtrip(&send_req(&id, 3, b"late"))
        .await
        .expect_status(404, "send after close");
    c.roundtrip(&close_req(&id, 4))
        .await
        .expect_status(404, "close after close");
    gw.wait_metric(SESSIONS_CLOSED, &[("reason", "client_closed")], 1.0)
        .await;
    assert_eq!(gw.metric(SESSIONS_ACTIVE, &[]), 0.0);
}

// ---------------------------------------------------------------------------
// 11. Upstream down
// ---------------------------------------------------------------------------

#[tokio::test]
async fn open_with_upstream_down_is_502_and_leaves_no_session() {
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr")
    };
    let gw = start_gateway(&[RTMP], dead, |c| {
        c.rtmpt.limits.max_sessions = 1;
        c.rtmpt.limits.max_per_client = 1;
    })
    .await;
    let addr = gw.rtmp();
    for i in 0..3 {
        let mut c = HttpConn::tcp(addr).await;
        let res = c.roundtrip(&open_req()).await;
        res.expect_status(502, &format!("/open #{i} with the upstream down"));
        assert!(!res.body.is_empty(), "the 502 explains itself");
    }
    assert_eq!(gw.metric(SESSIONS_ACTIVE, &[]), 0.0);
    assert_eq!(
        gw.metric(
            "rtmpgate_upstream_connect_failures_total",
            &[("reason", "refused")]
        ),
        3.0
    );

    // With room for one session only, the failed opens left nothing behind:
    // once the upstream is up, an open succeeds, and the cap still holds.
    let listener = TcpListener::bind(dead)
        .await
        .expect("rebind the upstream port");
    let ok = Tunnel::open_tcp(addr).await;
    let (_up, _) = within(STEP, "the upstream accept", listener.accept())
        .await
        .expect("accept");
    let mut c = HttpConn::tcp(addr).await;
    c.roundtrip(&open_req())
        .await
        .expect_status(503, "second session over the cap of one");
    assert!(url_safe(&ok.id));
    assert_eq!(gw.metric(SESSIONS_ACTIVE, &[]), 1.0);
}

// ---------------------------------------------------------------------------
// 12. One port, two protocols
// ---------------------------------------------------------------------------

#[tokio::test]
async fn plain_port_serves_rtmp_and_rtmpt_at_once() {
    let mut upstream = TestUpstream::start().await;
    let gw = start_gateway(&[RTMP], upstream.addr, |_| {}).await;
    let addr = gw.rtmp();
    let mut relay = LiveRelay::establish(connect_tcp(addr).await, &mut upstream).await;
    let mut t = Tunnel::open_tcp(addr).await;
    let (c0c1, c2) = t.rtmp_handshake().await;
    let conn = upstream.next_conn().await;
    assert_bytes_eq(
        "tunnel handshake",
        &conn.handshake().received(),
        &[c0c1, c2].concat(),
    );
    let mut live = LiveTunnel::new(t, conn, Vec::new());
    for round in 0..3 {
        relay.check(&format!("RTMP round {round}")).await;
        live.check(&format!("RTMPT round {round}")).await;
    }
    assert_eq!(
        gw.metric("rtmpgate_connections_active", &[("listener", "rtmp")]),
        2.0
    );
}

#[tokio::test]
async fn tls_port_serves_rtmps_and_rtmpts_at_once() {
    let mut upstream = TestUpstream::start().await;
    let gw = start_gateway(&[RTMPS], upstream.addr, |_| {}).await;
    let addr = gw.rtmps();
    let mut relay = LiveRelay::establish(connect_rtmps(addr).await, &mut upstream).await;
    let mut t = Tunnel::open_tls(addr).await;
    let (c0c1, c2) = t.rtmp_handshake().await;
    let conn = upstream.next_conn().await;
    assert_bytes_eq(
        "tunnel handshake",
        &conn.handshake().received(),
        &[c0c1, c2].concat(),
    );
    let mut live = LiveTunnel::new(t, conn, Vec::new());
    for round in 0..3 {
        relay.check(&format!("RTMPS round {round}")).await;
        live.check(&format!("RTMPTS round {round}")).await;
    }
    assert_eq!(
        gw.metric("rtmpgate_connections_active", &[("listener", "rtmps")]),
        2.0
    );
}

// ---------------------------------------------------------------------------
// librtmp's way of closing: /send and /close back to back, socket closed
// without reading the replies
// ---------------------------------------------------------------------------

#[tokio::test]
async fn close_is_applied_when_the_client_hangs_up_without_reading() {
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let gw = start_gateway(&[RTMP], upstream.addr, |c| {
        // The idle is answered late, after the client has hung up, so the
        // replies behind it meet a reset socket.
        c.rtmpt.session.long_poll = Duration::from_millis(300);
    })
    .await;
    let mut t = Tunnel::open_tcp(gw.rtmp()).await;
    let conn = upstream.next_conn().await;
    let id = t.id.clone();
    let last = pattern(7, 2_000);
    t.conn
        .write_raw(&[idle_req(&id, 0), send_req(&id, 1, &last), close_req(&id, 2)].concat())
        .await;
    drop(t); // hang up without reading anything
    let end = conn.wait_for_end(STEP).await;
    assert_eq!(end.end, Some(ReadEnd::Eof), "the /close was applied");
    assert_bytes_eq("bytes before the close", &end.bytes, &last);
    gw.wait_metric(SESSIONS_CLOSED, &[("reason", "client_closed")], 1.0)
        .await;
}

// ---------------------------------------------------------------------------
// Scale-out: replica tags, learned stickiness, draining with live sessions
// ---------------------------------------------------------------------------

#[tokio::test]
async fn replica_tag_prefixes_ids_and_open_names_the_session_in_a_header() {
    let upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let gw = start_gateway(&[RTMP], upstream.addr, |c| {
        c.replica_tag = Some("rtmpgate-1".into());
    })
    .await;
    let mut c = HttpConn::tcp(gw.rtmp()).await;
    let res = c.roundtrip(&open_req()).await;
    res.expect_status(200, "/open");
    let id = parse_open_body(&res.body);
    assert!(id.starts_with("rtmpgate-1."), "{id}");
    assert!(id.len() <= 62 && url_safe(&id), "{id}");
    assert_eq!(res.header("X-Rtmpt-Session"), Some(id.as_str()));
    assert!(
        res.head_text().contains("\r\nX-Rtmpt-Session: "),
        "title case on the wire: {}",
        res.head_text()
    );
}

#[tokio::test]
async fn draining_keeps_live_sessions_served_and_refuses_new_ones() {
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let mut gw = start_gateway(&[RTMP], upstream.addr, |c| {
        c.timeouts.drain = Duration::from_secs(20);
    })
    .await;
    let addr = gw.rtmp();
    let mut t = Tunnel::open_tcp(addr).await;
    let conn = upstream.next_conn().await;
    let before = pattern(1, 5_000);
    t.send(&before).await;
    conn.expect_bytes("before the drain", &before).await;

    gw.trigger_shutdown();
    // New sessions go elsewhere.
    let refused = within(STEP, "open while draining", async {
        loop {
            let mut c = HttpConn::tcp(addr).await;
            let res = c.roundtrip(&open_req()).await;
            if res.status == 503 {
                break res;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(!refused.body.is_empty());
    // A new RTMP stream is refused too.
    let mut rtmp = connect_tcp(addr).await;
    rtmp.write_all(&[&[RTMP_VERSION][..], &handshake_block(0, 3)].concat())
        .await
        .unwrap();
    read_until_closed(&mut rtmp, STEP, "new stream refused while draining").await;
    gw.wait_metric(CLOSED, &[("reason", "draining")], 1.0).await;

    // The live session keeps working, even over a brand-new connection.
    t.conn = HttpConn::tcp(addr).await;
    let during = pattern(2, 5_000);
    t.send(&during).await;
    conn.expect_bytes("during the drain", &[&before[..], &during].concat())
        .await;
    t.close().await.expect_status(200, "/close while draining");
    // With the last session gone the drain ends long before its 20 s.
    within(Duration::from_secs(8), "drain ends", gw.wait_stopped()).await;
}

/// A request as an HTTP balancer forwards it, naming the client.
fn forwarded(path: &str, client: &str) -> Vec<u8> {
    rtmpt_support::request(
        "POST",
        path,
        &[
            ("Host", "127.0.0.1"),
            ("X-Forwarded-For", client),
            ("Content-Type", "application/x-fcs"),
            ("Content-Length", "1"),
        ],
        &[0],
    )
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_balancer_names_the_client() {
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    // Every request arrives from 127.0.0.1, a trusted range by default.
    let gw = start_gateway(&[RTMP], upstream.addr, |c| {
        c.rtmpt.forwarded_for = true;
        c.rtmpt.limits.max_per_client = 1;
    })
    .await;
    let mut c = HttpConn::tcp(gw.rtmp()).await;
    let a = c.roundtrip(&forwarded("/open/1", "203.0.113.1")).await;
    a.expect_status(200, "client a");
    let id_a = parse_open_body(&a.body);
    c.roundtrip(&forwarded("/open/1", "203.0.113.2"))
        .await
        .expect_status(200, "client b: its own per-client cap");
    c.roundtrip(&forwarded("/open/1", "203.0.113.1"))
        .await
        .expect_status(503, "client a again: over its cap of 1");
    // The session is bound to client a, not to the balancer.
    c.roundtrip(&forwarded(&format!("/idle/{id_a}/0"), "203.0.113.2"))
        .await
        .expect_status(404, "client b may not use a's session");
    c.roundtrip(&forwarded(&format!("/idle/{id_a}/0"), "203.0.113.1"))
        .await
        .expect_status(200, "client a uses its session");
    let _ = upstream.next_conn().await;
}
