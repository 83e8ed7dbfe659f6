//! Overload shedding end to end (`src/overload.rs`): tiny thresholds tripped
//! by real RTMPT sessions holding unread server bytes, or by a few live
//! connections, over real loopback sockets. While overloaded, live streams
//! keep flowing byte-exact, new `/open` get 503, new RTMP streams are turned
//! away or wait in the backlog, and the metrics say so; once the load drops
//! below 90%, new work is served again.

mod common;
mod rtmpt_support;

use std::time::Duration;

use common::{
    CLOSED, HANDSHAKE_SIZE, LiveRelay, RTMP_VERSION, STEP, TestGateway, TestUpstream,
    assert_bytes_eq, connect_rtmps, connect_tcp, fresh_seed, handshake_block, pattern,
    read_until_closed, start_gateway, within,
};
use rtmpgate::overload::OverloadLimits;
use rtmpt_support::{HttpConn, LiveTunnel, Tunnel, open_req};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RTMP: &str = "rtmp://127.0.0.1:0";
const RTMPS: &str = "rtmps://127.0.0.1:0";

const OVERLOADED: &str = "rtmpgate_overloaded";
const BUFFERED: &str = "rtmpgate_buffered_bytes";
const SHED: &str = "rtmpgate_overload_shed_total";
const ACCEPTED: &str = "rtmpgate_connections_accepted_total";

const KIB: usize = 1024;

/// Polls the gateway's metrics (bounded) until `name` is at least `min`.
async fn wait_at_least(gw: &TestGateway, name: &str, labels: &[(&str, &str)], min: f64) {
    let what = format!("{name}{labels:?} ≥ {min}");
    within(STEP, &what, async {
        while gw.metric(name, labels) < min {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// An RTMPT session whose RTMP handshake is done, with its upstream side.
async fn live_tunnel(gw: &TestGateway, upstream: &mut TestUpstream) -> LiveTunnel {
    let mut t = Tunnel::open_tcp(gw.rtmp()).await;
    t.rtmp_handshake().await;
    let conn = upstream.next_conn().await;
    LiveTunnel::new(t, conn, Vec::new())
}

/// Two RTMPT sessions with 700 KiB of server bytes each that nobody reads
/// push the buffered total (1.4 MiB) past a 1 MiB mark. While overloaded: a
/// live RTMPS stream and a live RTMPT session keep flowing byte-exact, a
/// new `/open` gets 503, a new RTMP stream is closed without reaching the
/// upstream, and the metrics show all of it. Once the clients read their
/// buffers, the state clears and new sessions and streams are served.
#[tokio::test]
async fn buffered_rtmpt_bytes_trip_overload_live_streams_flow_new_work_is_shed_then_recovers() {
    const HELD: usize = 700 * KIB;
    let mut upstream = TestUpstream::start().await;
    let gw = start_gateway(&[RTMPS, RTMP], upstream.addr, |c| {
        c.overload = OverloadLimits {
            max_buffered: 1024 * KIB as u64,
            max_connections: 0,
        };
        c.rtmpt.session.buffer_cap = 1024 * KIB;
    })
    .await;

    // Live work before the overload: one RTMPS stream, three RTMPT sessions.
    let mut relay = LiveRelay::establish(connect_rtmps(gw.rtmps()).await, &mut upstream).await;
    relay.check("RTMPS stream before the overload").await;
    let mut live = live_tunnel(&gw, &mut upstream).await;
    live.check("RTMPT session before the overload").await;
    let mut a = live_tunnel(&gw, &mut upstream).await;
    let mut b = live_tunnel(&gw, &mut upstream).await;
    assert_eq!(gw.metric(OVERLOADED, &[]), 0.0);

    // The upstream sends A and B 700 KiB each; their clients do not poll.
    let (data_a, data_b) = (pattern(fresh_seed(), HELD), pattern(fresh_seed(), HELD));
    a.upstream.send(data_a.clone()).await;
    b.upstream.send(data_b.clone()).await;
    wait_at_least(&gw, BUFFERED, &[], (2 * HELD) as f64).await;
    gw.wait_metric(OVERLOADED, &[], 1.0).await;

    // Live streams are untouched.
    relay.check("RTMPS stream while overloaded").await;
    live.check("RTMPT session while overloaded").await;

    // A new session is refused with 503 (the listeners stay open for the
    // live sessions' requests).
    let mut conn = HttpConn::tcp(gw.rtmp()).await;
    let res = conn.roundtrip(&open_req()).await;
    res.expect_status(503, "/open while overloaded");
    assert_eq!(gw.metric(SHED, &[("what", "rtmpt_open")]), 1.0);

    // A new RTMP stream is turned away before any upstream connect.
    let mut client = connect_tcp(gw.rtmp()).await;
    let mut c0c1 = vec![RTMP_VERSION];
    c0c1.extend_from_slice(&handshake_block(0, fresh_seed()));
    client.write_all(&c0c1).await.expect("write C0+C1");
    let closed = read_until_closed(&mut client, STEP, "the refused stream to close").await;
    assert!(closed.bytes.is_empty(), "a refused stream gets no S0");
    gw.wait_metric(CLOSED, &[("reason", "overloaded")], 1.0)
        .await;
    assert!(gw.metric(SHED, &[("what", "accept")]) >= 1.0);
    assert!(
        upstream.try_next_conn().is_none(),
        "no upstream connection for a refused stream"
    );
    relay.check("RTMPS stream after the refusals").await;

    // The clients read their buffers: every byte arrives, the load drops.
    let mut got = Vec::new();
    a.tunnel.idle_until(&mut got, HELD, STEP).await;
    assert_bytes_eq("session A's held bytes", &got, &data_a);
    let mut got = Vec::new();
    b.tunnel.idle_until(&mut got, HELD, STEP).await;
    assert_bytes_eq("session B's held bytes", &got, &data_b);
    gw.wait_metric(OVERLOADED, &[], 0.0).await;
    assert!(gw.metric(BUFFERED, &[]) < (HELD / 2) as f64);

    // New work is served again.
    let mut fresh = live_tunnel(&gw, &mut upstream).await;
    fresh.check("RTMPT session opened after the recovery").await;
    let mut again = LiveRelay::establish(connect_tcp(gw.rtmp()).await, &mut upstream).await;
    again.check("RTMP stream after the recovery").await;
    relay.check("RTMPS stream after the recovery").await;
    a.check("session A after the recovery").await;
    assert_eq!(gw.metric(SHED, &[("what", "rtmpt_open")]), 1.0);
}

/// With `max_connections` 3 and no RTMPT session alive, the third live
/// stream trips the overload and accepting pauses: a fourth client's
/// connection waits in the backlog (no S0, no upstream connection) while
/// the three keep flowing. When one ends, 2 < 90% of 3, accepting resumes
/// and the waiting client is served (bringing the count back to the mark).
#[tokio::test]
async fn connection_mark_pauses_accepting_waiting_client_is_served_once_load_drops() {
    let mut upstream = TestUpstream::start().await;
    let gw = start_gateway(&[RTMP], upstream.addr, |c| {
        c.overload = OverloadLimits {
            max_buffered: 0,
            max_connections: 3,
        };
    })
    .await;
    let mut relays = Vec::new();
    for _ in 0..3 {
        let mut r = LiveRelay::establish(connect_tcp(gw.rtmp()).await, &mut upstream).await;
        r.check("stream before the overload").await;
        relays.push(r);
    }
    gw.wait_metric(OVERLOADED, &[], 1.0).await;
    wait_at_least(&gw, SHED, &[("what", "accept")], 1.0).await;

    // The fourth client: the kernel completes its TCP connect, but
    // rtmpgate does not accept it, so its C0+C1 goes unanswered.
    let mut waiting = connect_tcp(gw.rtmp()).await;
    let mut c0c1 = vec![RTMP_VERSION];
    c0c1.extend_from_slice(&handshake_block(0, fresh_seed()));
    waiting.write_all(&c0c1).await.expect("write C0+C1");
    let mut s0 = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(500), waiting.read(&mut s0)).await;
    assert!(early.is_err(), "a client got an answer while overloaded");
    for (i, r) in relays.iter_mut().enumerate() {
        r.check(&format!("stream {i} while overloaded")).await;
    }
    assert_eq!(gw.metric(ACCEPTED, &[]), 3.0, "nothing accepted meanwhile");
    assert!(upstream.try_next_conn().is_none());

    // One stream ends: below 90%, accepting resumes, the waiting client is
    // served from its backlog slot.
    let gone = relays.remove(0);
    drop(gone);
    let mut s0s1s2 = vec![0u8; 1 + 2 * HANDSHAKE_SIZE];
    within(
        STEP,
        "the waiting client's S0+S1+S2",
        waiting.read_exact(&mut s0s1s2),
    )
    .await
    .expect("S0+S1+S2 after the recovery");
    assert_eq!(s0s1s2[0], RTMP_VERSION);
    assert_bytes_eq("S2 echoes C1", &s0s1s2[1 + HANDSHAKE_SIZE..], &c0c1[1..]);
    waiting
        .write_all(&s0s1s2[1..1 + HANDSHAKE_SIZE])
        .await
        .expect("write C2");
    let conn = upstream.next_conn().await;
    assert_bytes_eq(
        "the waiting client's handshake at the upstream",
        &conn.handshake().received(),
        &[&c0c1[..], &s0s1s2[1..1 + HANDSHAKE_SIZE]].concat(),
    );
    for (i, r) in relays.iter_mut().enumerate() {
        r.check(&format!("stream {i} after the recovery")).await;
    }
    // The served client brings the count back to the mark: overloaded
    // again, and a fifth client would wait in its turn.
    assert_eq!(gw.metric(ACCEPTED, &[]), 4.0);
    gw.wait_metric(OVERLOADED, &[], 1.0).await;
}
