//! End-to-end tests of the RTMPS/RTMP → RTMP bridge over real loopback
//! sockets: byte-exactness, volume, concurrency, closing, bad input,
//! upstream failure, TLS tickets, the binary's start-up errors and the idle
//! timeout.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Output;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use rtmpgate::endpoint::ListenScheme;
use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Resumption, Tls12ClientSessionValue,
    Tls13ClientSessionValue,
};
use rustls::{NamedGroup, ProtocolVersion};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinSet;

const RTMPS: &str = "rtmps://127.0.0.1:0";
const RTMP: &str = "rtmp://127.0.0.1:0";

/// What an RTMP server sends after the handshake of a publisher's connect.
fn server_replies(seed: u64) -> Vec<u8> {
    use amf0::{Value, object, string};
    encode_messages(&[
        RtmpMessage::new(
            2,
            msg_type::WINDOW_ACK_SIZE,
            0,
            0,
            2_500_000u32.to_be_bytes().to_vec(),
        ),
        RtmpMessage::command(
            0,
            &[
                string("_result"),
                Value::Number(1.0),
                object(&[("fmsVer", string("FMS/3,0,1,123"))]),
                object(&[
                    ("level", string("status")),
                    ("code", string("NetConnection.Connect.Success")),
                ]),
            ],
        ),
        // Something larger than one chunk, to exercise continuation chunks.
        RtmpMessage::new(5, msg_type::DATA_AMF0, 1, 0, pattern(seed, 1000)),
    ])
}

/// The common byte-exact scenario over any client stream: the handshake
/// passes unchanged, a chunked publish session arrives byte-exact (and
/// decodes to the same messages), server replies come back byte-exact, and
/// an upstream close reaches the client as a clean EOF. Returns the number
/// of bytes relayed each way (client→upstream, upstream→client).
async fn byte_exact_session<S>(mut client: S, upstream: &mut TestUpstream) -> (usize, usize)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let hs = client_handshake(&mut client).await;
    assert_eq!(hs.c0c1.len(), 1537);
    let conn = upstream.next_conn().await;
    let seen = conn.handshake();
    assert_bytes_eq("C0+C1 at the upstream", &seen.c0c1, &hs.c0c1);
    assert_bytes_eq("C2 at the upstream", &seen.c2, &hs.c2);
    assert_bytes_eq("S1 at the client", &hs.s0s1s2[1..1537], &seen.s1);

    let seed = fresh_seed();
    let messages = publish_session("live", "stream-key", seed, 24);
    let wire = encode_messages(&messages);
    within(STEP, "client write", client.write_all(&wire))
        .await
        .expect("client write");
    conn.expect_bytes("publish session at the upstream", &wire)
        .await;
    let decoded =
        decode_messages(&conn.recorded().bytes).expect("upstream bytes decode as RTMP chunks");
    assert_eq!(decoded.len(), messages.len());
    assert!(
        decoded == messages,
        "decoded messages differ from those sent"
    );

    let replies = server_replies(seed);
    conn.send(replies.clone()).await;
    let mut got = vec![0u8; replies.len()];
    within(STEP, "client read", client.read_exact(&mut got))
        .await
        .expect("client read");
    assert_bytes_eq("server replies at the client", &got, &replies);

    // Upstream ends the session: the client gets a clean EOF and nothing more.
    conn.shutdown_write().await;
    let closed = read_until_closed(&mut client, STEP, "EOF at the client").await;
    assert!(
        closed.bytes.is_empty(),
        "extra bytes at the client: {}",
        closed.bytes.len()
    );
    assert!(
        closed.is_clean(),
        "upstream close must reach the client cleanly: {:?}",
        closed.result
    );
    within(STEP, "client shutdown", client.shutdown())
        .await
        .expect("client shutdown");
    let end = conn.wait_for_end(STEP).await;
    assert_eq!(end.end, Some(ReadEnd::Eof));
    assert_eq!(
        end.bytes.len(),
        wire.len(),
        "nothing after the session at the upstream"
    );
    (
        hs.sent().len() + wire.len(),
        hs.s0s1s2.len() + replies.len(),
    )
}

#[tokio::test]
async fn rtmps_relays_handshake_and_messages_byte_exact() {
    let mut upstream = TestUpstream::start().await;
    let gw = start_gateway(&[RTMPS], upstream.addr, |_| {}).await;
    let client = connect_rtmps(gw.rtmps()).await;
    let (up, down) = byte_exact_session(client, &mut upstream).await;
    gw.wait_metric(
        CLOSED,
        &[("protocol", "rtmps"), ("reason", "upstream_closed")],
        1.0,
    )
    .await;
    let bytes = "rtmpgate_relayed_bytes_total";
    assert_eq!(
        gw.metric(bytes, &[("direction", "client_to_upstream")]),
        up as f64
    );
    assert_eq!(
        gw.metric(bytes, &[("direction", "upstream_to_client")]),
        down as f64
    );
    assert_eq!(
        gw.metric(
            "rtmpgate_connections_accepted_total",
            &[("listener", "rtmps")]
        ),
        1.0
    );
    assert_eq!(
        gw.metric("rtmpgate_connections_active", &[("listener", "rtmps")]),
        0.0
    );
}

#[tokio::test]
async fn plain_rtmp_relays_byte_exact() {
    let mut upstream = TestUpstream::start().await;
    let gw = start_gateway(&[RTMP], upstream.addr, |_| {}).await;
    let client = connect_tcp(gw.rtmp()).await;
    let (up, down) = byte_exact_session(client, &mut upstream).await;
    gw.wait_metric(
        CLOSED,
        &[("protocol", "rtmp"), ("reason", "upstream_closed")],
        1.0,
    )
    .await;
    let bytes = "rtmpgate_relayed_bytes_total";
    assert_eq!(
        gw.metric(bytes, &[("direction", "client_to_upstream")]),
        up as f64
    );
    assert_eq!(
        gw.metric(bytes, &[("direction", "upstream_to_client")]),
        down as f64
    );
}

#[tokio::test]
async fn rtmps_multi_megabyte_both_ways_concurrently() {
    const UP_PAYLOAD: usize = 64 * 1024;
    const UP_MESSAGES: usize = 256; // 16 MiB of video payload
    const DOWN: usize = 4 * 1024 * 1024;
    let mut upstream = TestUpstream::start().await;
    let gw = start_gateway(&[RTMPS], upstream.addr, |_| {}).await;
    let mut client = connect_rtmps(gw.rtmps()).await;
    client_handshake(&mut client).await;
    let conn = upstream.next_conn().await;

    let seed = fresh_seed();
    let mut messages = vec![RtmpMessage::set_chunk_size(4096)];
    messages.extend((0..UP_MESSAGES).map(|i| {
        RtmpMessage::new(
            6,
            msg_type::VIDEO,
            1,
            i as u32 * 40,
            pattern(seed + i as u64, UP_PAYLOAD),
        )
    }));
    let up_wire = encode_messages(&messages);
    assert!(up_wire.len() > 16 * 1024 * 1024);
    let down_wire = pattern(!seed, DOWN);

    let (mut rd, mut wr) = tokio::io::split(client);
    let write_up = async {
        wr.write_all(&up_wire).await.expect("client write");
        wr.flush().await.expect("client flush");
    };
    let read_down = async {
        let mut got = vec![0u8; DOWN];
        rd.read_exact(&mut got).await.expect("client read");
        got
    };
    let send_down = conn.send(down_wire.clone());
    let receive_up = conn.wait_for_len(up_wire.len(), BULK);
    let ((), got_down, (), got_up) = within(BULK, "16 MiB up and 4 MiB down", async {
        tokio::join!(write_up, read_down, send_down, receive_up)
    })
    .await;
    assert_bytes_eq("16 MiB at the upstream", &got_up.bytes, &up_wire);
    assert_bytes_eq("4 MiB at the client", &got_down, &down_wire);
    assert_eq!(got_up.end, None);
}

#[tokio::test]
async fn many_concurrent_rtmps_and_rtmp_connections_stay_separate() {
    const PER_KIND: u64 = 64;
    const TOTAL: u64 = 2 * PER_KIND;
    let mut upstream = TestUpstream::start().await;
    // All 128 come from 127.0.0.1: lift the per-client cap (default 64),
    // which is not what this test is about (tests/client_caps.rs is).
    let gw = start_gateway(&[RTMPS, RTMP], upstream.addr, |c| {
        c.max_connections_per_client = 0;
    })
    .await;
    let base = fresh_seed() & 0xFFFF_FFFF_0000_0000;
    let reply_for = |seed: u64| pattern(!seed, 8_000 + (seed % 8_000) as usize);

    // Upstream side: each connection checks it got exactly one client's
    // session, then answers with that client's reply and closes.
    let server = tokio::spawn(async move {
        let mut handlers = JoinSet::new();
        for _ in 0..TOTAL {
            let conn = upstream.next_conn().await;
            handlers.spawn(async move {
                let rec = conn.wait_for_end(BULK).await;
                assert_eq!(rec.end, Some(ReadEnd::Eof));
                let decoded = decode_messages(&rec.bytes).expect("session decodes");
                let seed = publish_session_seed(&decoded).expect("session has media");
                let want = encode_messages(&publish_session("live", &format!("k{seed}"), seed, 12));
                assert_bytes_eq("one client's session at the upstream", &rec.bytes, &want);
                conn.send(reply_for(seed)).await;
                conn.shutdown_write().await;
                seed
            });
        }
        let mut seeds = BTreeSet::new();
        while let Some(res) = handlers.join_next().await {
            assert!(
                seeds.insert(res.expect("upstream handler")),
                "a session arrived twice"
            );
        }
        seeds
    });

    // Clients: half RTMPS, half plain RTMP, all at once. Each sends its own
    // session, half-closes, and must get exactly its own reply and a clean EOF.
    async fn client_run<S: AsyncRead + AsyncWrite + Unpin>(
        mut s: S,
        seed: u64,
        reply: Vec<u8>,
    ) -> u64 {
        client_handshake(&mut s).await;
        let wire = encode_messages(&publish_session("live", &format!("k{seed}"), seed, 12));
        s.write_all(&wire).await.expect("client write");
        s.shutdown().await.expect("client shutdown");
        let closed = read_until_closed(&mut s, BULK, "the client's reply").await;
        assert!(closed.is_clean(), "client {seed}: {:?}", closed.result);
        assert_bytes_eq("one client's reply", &closed.bytes, &reply);
        seed
    }
    let mut clients = JoinSet::new();
    for i in 0..TOTAL {
        let seed = base + i;
        let reply = reply_for(seed);
        let (tls, addr) = if i % 2 == 0 {
            (true, gw.rtmps())
        } else {
            (false, gw.rtmp())
        };
        clients.spawn(async move {
            if tls {
                client_run(connect_rtmps(addr).await, seed, reply).await
            } else {
                client_run(connect_tcp(addr).await, seed, reply).await
            }
        });
    }
    let client_seeds = within(BULK, "all clients", async {
        let mut seeds = BTreeSet::new();
        while let Some(res) = clients.join_next().await {
            seeds.insert(res.expect("client task"));
        }
        seeds
    })
    .await;
    let server_seeds = within(BULK, "all upstream handlers", server)
        .await
        .expect("upstream side");
    let want: BTreeSet<u64> = (0..TOTAL).map(|i| base + i).collect();
    assert_eq!(client_seeds, want);
    assert_eq!(server_seeds, want);
    gw.wait_metric(CLOSED, &[("reason", "client_closed")], TOTAL as f64)
        .await;
    assert_eq!(gw.metric(CLOSED, &[("protocol", "rtmps")]), PER_KIND as f64);
    assert_eq!(gw.metric(CLOSED, &[("protocol", "rtmp")]), PER_KIND as f64);
    assert_eq!(gw.metric(CLOSED, &[]), TOTAL as f64);
}

#[tokio::test]
async fn client_close_reaches_upstream_after_all_data() {
    let mut upstream = TestUpstream::start().await;
    let gw = start_gateway(&[RTMPS], upstream.addr, |_| {}).await;
    let mut client = connect_rtmps(gw.rtmps()).await;
    client_handshake(&mut client).await;
    let conn = upstream.next_conn().await;
    let wire = encode_messages(&publish_session("live", "k", fresh_seed(), 40));
    client.write_all(&wire).await.expect("client write");
    client.shutdown().await.expect("client shutdown");
    drop(client);
    let rec = conn.wait_for_end(STEP).await;
    assert_eq!(
        rec.end,
        Some(ReadEnd::Eof),
        "the upstream must see a FIN, not a reset"
    );
    assert_bytes_eq("everything before the close", &rec.bytes, &wire);
    // Client already gone: the upstream finishing its side ends the relay.
    conn.shutdown_write().await;
    gw.wait_metric(
        CLOSED,
        &[("protocol", "rtmps"), ("reason", "client_closed")],
        1.0,
    )
    .await;
}

#[tokio::test]
async fn upstream_close_reaches_client_as_clean_tls_eof() {
    let mut upstream = TestUpstream::start().await;
    let gw = start_gateway(&[RTMPS], upstream.addr, |_| {}).await;
    let mut client = connect_rtmps(gw.rtmps()).await;
    client_handshake(&mut client).await;
    let conn = upstream.next_conn().await;
    let down = pattern(fresh_seed(), 300_000);
    conn.send(down.clone()).await;
    conn.shutdown_write().await;
    let closed = read_until_closed(&mut client, STEP, "the client's EOF").await;
    assert!(
        closed.is_clean(),
        "expected close_notify then EOF, got {:?}",
        closed.result
    );
    assert_bytes_eq("everything before the close", &closed.bytes, &down);
    // The other direction is still open: the client may still send.
    let late = pattern(7, 5000);
    client
        .write_all(&late)
        .await
        .expect("write after the upstream's close");
    client.shutdown().await.expect("client shutdown");
    let rec = conn.wait_for_end(STEP).await;
    assert_eq!(rec.end, Some(ReadEnd::Eof));
    assert_bytes_eq("client data after the upstream's close", &rec.bytes, &late);
    gw.wait_metric(
        CLOSED,
        &[("protocol", "rtmps"), ("reason", "upstream_closed")],
        1.0,
    )
    .await;
}

#[tokio::test]
async fn client_half_close_still_receives_upstream_data() {
    let mut upstream = TestUpstream::start().await;
    let gw = start_gateway(&[RTMPS], upstream.addr, |_| {}).await;
    let mut client = connect_rtmps(gw.rtmps()).await;
    client_handshake(&mut client).await;
    let conn = upstream.next_conn().await;
    let up = encode_messages(&publish_session("live", "k", fresh_seed(), 8));
    client.write_all(&up).await.expect("client write");
    client.shutdown().await.expect("client half-close");
    let rec = conn.wait_for_end(STEP).await;
    assert_eq!(rec.end, Some(ReadEnd::Eof));
    assert_bytes_eq("data before the half-close", &rec.bytes, &up);
    // Sent only after the upstream saw the client's EOF.
    let down = pattern(fresh_seed(), 200_000);
    conn.send(down.clone()).await;
    conn.shutdown_write().await;
    let closed = read_until_closed(&mut client, STEP, "data after the half-close").await;
    assert!(closed.is_clean(), "{:?}", closed.result);
    assert_bytes_eq("data after the half-close", &closed.bytes, &down);
    gw.wait_metric(
        CLOSED,
        &[("protocol", "rtmps"), ("reason", "client_closed")],
        1.0,
    )
    .await;
}

#[tokio::test]
async fn upstream_reset_closes_client_promptly() {
    let mut upstream = TestUpstream::start().await;
    let gw = start_gateway(&[RTMPS], upstream.addr, |_| {}).await;
    let mut client = connect_rtmps(gw.rtmps()).await;
    client_handshake(&mut client).await;
    let conn = upstream.next_conn().await;
    conn.reset();
    let closed = read_until_closed(
        &mut client,
        STEP,
        "the client to be closed after an upstream reset",
    )
    .await;
    assert!(closed.bytes.is_empty());
    gw.wait_metric(
        CLOSED,
        &[("protocol", "rtmps"), ("reason", "upstream_error")],
        1.0,
    )
    .await;
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

/// Runs one offender against a gateway with an RTMPS and an RTMP listener
/// while an RTMPS relay is live. Checks the offender is closed cleanly
/// within the bound, the close is counted under `protocol`/`reason` (and
/// nothing else closed), nothing reached the upstream, and the live relay
/// still works both ways.
async fn bad_input_case<F, Fut>(
    tweak: impl FnOnce(&mut rtmpgate::Config),
    target: ListenScheme,
    offender: F,
    protocol: &str,
    reason: &str,
) -> (TestGateway, Closed)
where
    F: FnOnce(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = Closed>,
{
    let mut upstream = TestUpstream::start().await;
    let gw = start_gateway(&[RTMPS, RTMP], upstream.addr, tweak).await;
    let mut live = LiveRelay::establish(connect_rtmps(gw.rtmps()).await, &mut upstream).await;
    live.check("live relay before the offender").await;
    let closed = offender(gw.addr(target)).await;
    assert!(
        closed.is_clean(),
        "offender on {target} must get a clean close, got {:?} after {} bytes",
        closed.result,
        closed.bytes.len()
    );
    gw.wait_metric(CLOSED, &[("protocol", protocol), ("reason", reason)], 1.0)
        .await;
    assert_eq!(
        gw.metric(CLOSED, &[]),
        1.0,
        "only the offender closed\n{}",
        gw.metrics_text()
    );
    live.check("live relay after the offender").await;
    assert!(
        upstream.try_next_conn().is_none(),
        "the offender reached the upstream"
    );
    (gw, closed)
}

/// Connects over TCP, sends `bytes` (if any), and reads until closed.
async fn raw_offender(addr: SocketAddr, bytes: Vec<u8>) -> Closed {
    let mut s = connect_tcp(addr).await;
    if !bytes.is_empty() {
        s.write_all(&bytes).await.expect("offender write");
    }
    read_until_closed(&mut s, STEP, "the gateway to close the offender").await
}

#[tokio::test]
async fn garbage_instead_of_client_hello_is_closed() {
    let mut garbage = pattern(3, 200);
    garbage[0] = 0x00; // never a TLS handshake record
    let (gw, _) = bad_input_case(
        |_| {},
        ListenScheme::Rtmps,
        |addr| raw_offender(addr, garbage),
        "tls",
        "tls_handshake_failed",
    )
    .await;
    assert_eq!(
        gw.metric(
            "rtmpgate_tls_handshake_failures_total",
            &[("reason", "not_tls")]
        ),
        1.0
    );
}

#[tokio::test]
async fn plain_http_on_rtmps_port_is_closed() {
    let request = b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\n\r\n".to_vec();
    let (gw, closed) = bad_input_case(
        |_| {},
        ListenScheme::Rtmps,
        |addr| raw_offender(addr, request),
        "tls",
        "tls_handshake_failed",
    )
    .await;
    assert!(
        !closed.bytes.starts_with(b"HTTP/"),
        "no HTTP answer on a TLS port"
    );
    assert_eq!(
        gw.metric(
            "rtmpgate_tls_handshake_failures_total",
            &[("reason", "not_tls")]
        ),
        1.0
    );
}

#[tokio::test]
async fn tls_client_hello_on_plain_port_is_closed() {
    let hello = client_hello_bytes();
    assert_eq!(hello[0], 0x16, "a TLS handshake record");
    let (_, closed) = bad_input_case(
        |_| {},
        ListenScheme::Rtmp,
        |addr| raw_offender(addr, hello),
        "rtmp",
        "tls_on_plain_port",
    )
    .await;
    assert!(
        closed.bytes.is_empty(),
        "no answer to a ClientHello on a plain port"
    );
}

#[tokio::test]
async fn tls_client_on_plain_port_fails_promptly() {
    let mut upstream = TestUpstream::start().await;
    let gw = start_gateway(&[RTMP], upstream.addr, |_| {}).await;
    let res = connect_tls_with(gw.rtmp(), client_config()).await;
    assert!(
        res.is_err(),
        "a TLS handshake against a plain port cannot succeed"
    );
    gw.wait_metric(
        CLOSED,
        &[("protocol", "rtmp"), ("reason", "tls_on_plain_port")],
        1.0,
    )
    .await;
    assert!(upstream.try_next_conn().is_none());
}

#[tokio::test]
async fn silent_client_on_rtmps_times_out() {
    let (gw, closed) = bad_input_case(
        |c| c.timeouts.tls_handshake = Duration::from_secs(1),
        ListenScheme::Rtmps,
        |addr| raw_offender(addr, Vec::new()),
        "tls",
        "tls_handshake_timeout",
    )
    .await;
    assert!(closed.bytes.is_empty());
    assert_eq!(
        gw.metric(
            "rtmpgate_tls_handshake_failures_total",
            &[("reason", "timeout")]
        ),
        1.0
    );
}

#[tokio::test]
async fn silent_client_on_rtmp_times_out() {
    let (_, closed) = bad_input_case(
        |c| c.timeouts.first_bytes = Duration::from_secs(1),
        ListenScheme::Rtmp,
        |addr| raw_offender(addr, Vec::new()),
        "rtmp",
        "handshake_timeout",
    )
    .await;
    assert!(closed.bytes.is_empty());
}

#[tokio::test]
async fn unknown_first_byte_on_rtmp_is_closed() {
    let (_, closed) = bad_input_case(
        |_| {},
        ListenScheme::Rtmp,
        |addr| raw_offender(addr, [&[0xFF][..], &pattern(9, 1536)].concat()),
        "rtmp",
        "unknown_protocol",
    )
    .await;
    assert!(closed.bytes.is_empty());
}

// ---------------------------------------------------------------------------
// Upstream failures
// ---------------------------------------------------------------------------

#[tokio::test]
async fn refused_upstream_closes_clients_promptly() {
    let closed = RefusingPort::new();
    let gw = start_gateway(&[RTMPS, RTMP], closed.addr(), |_| {}).await;

    let c0c1 = [&[RTMP_VERSION][..], &handshake_block(0, 1)].concat();
    let mut tls = connect_rtmps(gw.rtmps()).await;
    tls.write_all(&c0c1).await.expect("write C0+C1");
    let closed = read_until_closed(&mut tls, STEP, "the RTMPS client to be closed").await;
    assert!(closed.bytes.is_empty(), "no S0/S1 without an upstream");
    assert!(
        closed.is_clean(),
        "a deliberate close sends TLS close_notify: {:?}",
        closed.result
    );

    let mut plain = connect_tcp(gw.rtmp()).await;
    plain.write_all(&c0c1).await.expect("write C0+C1");
    let closed = read_until_closed(&mut plain, STEP, "the RTMP client to be closed").await;
    assert!(closed.bytes.is_empty(), "no S0/S1 without an upstream");

    gw.wait_metric(
        "rtmpgate_upstream_connect_failures_total",
        &[("reason", "refused")],
        2.0,
    )
    .await;
    gw.wait_metric(CLOSED, &[("reason", "upstream_unavailable")], 2.0)
        .await;
    assert_eq!(
        gw.metric(
            CLOSED,
            &[("protocol", "rtmps"), ("reason", "upstream_unavailable")]
        ),
        1.0
    );
    assert_eq!(
        gw.metric(
            CLOSED,
            &[("protocol", "rtmp"), ("reason", "upstream_unavailable")]
        ),
        1.0
    );
}

// ---------------------------------------------------------------------------
// TLS 1.3 session tickets
// ---------------------------------------------------------------------------

/// A client session store that counts the TLS 1.3 tickets it is given.
#[derive(Debug)]
struct CountingStore {
    inner: ClientSessionMemoryCache,
    tickets: AtomicUsize,
    tls12: Mutex<usize>,
}

impl CountingStore {
    fn new() -> Self {
        Self {
            inner: ClientSessionMemoryCache::new(16),
            tickets: AtomicUsize::new(0),
            tls12: Mutex::new(0),
        }
    }
}

impl ClientSessionStore for CountingStore {
    fn set_kx_hint(&self, name: ServerName<'static>, group: NamedGroup) {
        self.inner.set_kx_hint(name, group)
    }
    fn kx_hint(&self, name: &ServerName<'_>) -> Option<NamedGroup> {
        self.inner.kx_hint(name)
    }
    fn set_tls12_session(&self, name: ServerName<'static>, value: Tls12ClientSessionValue) {
        *self.tls12.lock().expect("lock") += 1;
        self.inner.set_tls12_session(name, value)
    }
    fn tls12_session(&self, name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.inner.tls12_session(name)
    }
    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        self.inner.remove_tls12_session(name)
    }
    fn insert_tls13_ticket(&self, name: ServerName<'static>, value: Tls13ClientSessionValue) {
        self.tickets.fetch_add(1, Ordering::SeqCst);
        self.inner.insert_tls13_ticket(name, value)
    }
    fn take_tls13_ticket(&self, name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(name)
    }
}

/// Relays some data over a fresh TLS 1.3 connection to a gateway with
/// `tls13_tickets` configured (`None`: the default) and returns how many
/// tickets the client received.
async fn tickets_received(tls13_tickets: Option<usize>) -> usize {
    let mut upstream = TestUpstream::start().await;
    let gw = start_gateway(&[RTMPS], upstream.addr, |c| {
        if let Some(n) = tls13_tickets {
            c.tls13_tickets = n;
        }
    })
    .await;
    let store = std::sync::Arc::new(CountingStore::new());
    let config = client_config_with(Resumption::store(store.clone()));
    let client = connect_tls_with(gw.rtmps(), config)
        .await
        .expect("TLS handshake");
    assert_eq!(
        client.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );
    // Tickets follow the server's handshake flight; S0/S1/S2 and the relayed
    // data come after them, so once these are read any ticket has arrived.
    let mut live = LiveRelay::establish(client, &mut upstream).await;
    live.check("relay over TLS 1.3").await;
    live.check("relay over TLS 1.3, again").await;
    assert_eq!(*store.tls12.lock().expect("lock"), 0);
    store.tickets.load(Ordering::SeqCst)
}

#[tokio::test]
async fn no_tls13_session_tickets_by_default() {
    assert_eq!(
        tickets_received(None).await,
        0,
        "tickets break librtmp/GnuTLS clients"
    );
}

#[tokio::test]
async fn tls13_tickets_setting_sends_tickets() {
    assert_eq!(tickets_received(Some(2)).await, 2);
}

#[tokio::test]
async fn rtmps_serves_tls12_and_clients_without_sni() {
    let mut upstream = TestUpstream::start().await;
    let gw = start_gateway(&[RTMPS], upstream.addr, |_| {}).await;
    // Older librtmp/OpenSSL builds negotiate TLS 1.2.
    let tls12 = connect_tls_with(gw.rtmps(), client_config_tls12())
        .await
        .expect("TLS 1.2 handshake");
    assert_eq!(
        tls12.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_2)
    );
    let mut live = LiveRelay::establish(tls12, &mut upstream).await;
    live.check("relay over TLS 1.2").await;
    // Clients given an IP address send no SNI; the certificate is served anyway.
    let no_sni = connect_tls_as(gw.rtmps(), client_config(), "127.0.0.1")
        .await
        .expect("TLS handshake without SNI");
    let mut live2 = LiveRelay::establish(no_sni, &mut upstream).await;
    live2.check("relay without SNI").await;
    live.check("first relay still fine").await;
}

#[tokio::test]
async fn tls_versions_setting_limits_the_versions_offered() {
    use rtmpgate::config::TlsVersions;
    let mut upstream = TestUpstream::start().await;
    let only13 = start_gateway(&[RTMPS], upstream.addr, |c| {
        c.tls_versions = TlsVersions {
            tls12: false,
            tls13: true,
        };
    })
    .await;
    assert!(
        connect_tls_with(only13.rtmps(), client_config_tls12())
            .await
            .is_err(),
        "a TLS 1.2-only client got a session from a TLS 1.3-only listener"
    );
    only13
        .wait_metric(
            "rtmpgate_tls_handshake_failures_total",
            &[("reason", "incompatible")],
            1.0,
        )
        .await;
    let tls13 = connect_tls_with(only13.rtmps(), client_config())
        .await
        .expect("TLS 1.3 handshake");
    assert_eq!(
        tls13.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );
    LiveRelay::establish(tls13, &mut upstream)
        .await
        .check("relay over TLS 1.3 only")
        .await;

    // 1.2 only: a client offering both gets TLS 1.2 (how the TLS 1.2 path
    // is benchmarked with clients that prefer 1.3, such as ffmpeg).
    let only12 = start_gateway(&[RTMPS], upstream.addr, |c| {
        c.tls_versions = TlsVersions {
            tls12: true,
            tls13: false,
        };
    })
    .await;
    let tls12 = connect_tls_with(only12.rtmps(), client_config())
        .await
        .expect("TLS 1.2 handshake");
    assert_eq!(
        tls12.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_2)
    );
    LiveRelay::establish(tls12, &mut upstream)
        .await
        .check("relay over TLS 1.2 only")
        .await;
}

// ---------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------

/// Runs the rtmpgate binary with `args` (no RTMPGATE_* variables from the
/// environment), killing it if it has not exited within the bound.
async fn run_binary(args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_rtmpgate"));
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .env("RUST_LOG", "info");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RTMPGATE_") {
            cmd.env_remove(key);
        }
    }
    let child = cmd.output();
    within(STEP, &format!("rtmpgate {args:?} to exit"), child)
        .await
        .expect("run rtmpgate")
}

#[tokio::test]
async fn binary_check_config_names_missing_certificate() {
    let dir = TempDir::new("bin");
    let cert = dir.path().join("missing-cert.pem");
    let key = dir.path().join("missing-key.pem");
    let out = run_binary(&[
        "--check-config",
        "--listen",
        RTMPS,
        "--upstream",
        "rtmp://127.0.0.1:1935",
        "--tls-cert",
        cert.to_str().expect("utf-8 path"),
        "--tls-key",
        key.to_str().expect("utf-8 path"),
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "missing certificate must fail: {stderr}"
    );
    assert!(
        stderr.contains("missing-cert.pem"),
        "stderr names the file: {stderr}"
    );
    assert!(
        stderr.contains("--tls-cert"),
        "stderr names the flag: {stderr}"
    );
}

#[tokio::test]
async fn binary_check_config_accepts_good_certificate() {
    let dir = TempDir::new("bin-ok");
    let (cert, key) = test_pki().write_to(dir.path());
    let out = run_binary(&[
        "--check-config",
        "--listen",
        RTMPS,
        "--tls-cert",
        cert.to_str().expect("utf-8 path"),
        "--tls-key",
        key.to_str().expect("utf-8 path"),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("configuration OK"), "{stdout}");
}

#[tokio::test]
async fn binary_check_config_binds_no_port() {
    // Validating next to a running instance must work: no port is bound.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let listen = format!("rtmp://{}", taken.local_addr().expect("address"));
    let out = run_binary(&["--check-config", "--listen", &listen]).await;
    assert!(
        out.status.success(),
        "--check-config must not bind: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(taken);
}

#[tokio::test]
async fn binary_reports_port_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address");
    let listen = format!("rtmp://{addr}");
    let out = run_binary(&["--listen", &listen, "--upstream", "rtmp://127.0.0.1:1935"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "binding a taken port must fail: {stderr}"
    );
    assert!(
        stderr.contains(&addr.to_string()),
        "stderr names the address: {stderr}"
    );
    assert!(
        stderr.to_lowercase().contains("in use"),
        "stderr says the port is in use: {stderr}"
    );
    drop(taken);
}

#[tokio::test]
async fn binary_help_lists_flags_with_examples() {
    let out = run_binary(&["--help"]).await;
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--listen",
        "--upstream",
        "--tls-cert",
        "--tls-key",
        "--tls13-tickets",
        "--idle-timeout",
        "--check-config",
        "Example: --listen rtmps://0.0.0.0:443",
        "Example: --upstream rtmp://",
        "Example: --tls-cert /etc/rtmpgate/fullchain.pem",
        "RTMPGATE_UPSTREAM",
        "--upstream-pin <FILE>",
        "--upstream-pin-sha256 <HEX>",
        "RTMPGATE_UPSTREAM_PIN_SHA256",
    ] {
        assert!(help.contains(needle), "--help lacks `{needle}`:\n{help}");
    }
}

// ---------------------------------------------------------------------------
// Idle timeout
// ---------------------------------------------------------------------------

#[tokio::test]
async fn idle_timeout_closes_silent_relay() {
    let mut upstream = TestUpstream::start().await;
    let gw = start_gateway(&[RTMPS], upstream.addr, |c| {
        c.timeouts.idle = Some(Duration::from_millis(500));
    })
    .await;
    let client = connect_rtmps(gw.rtmps()).await;
    let mut live = LiveRelay::establish(client, &mut upstream).await;
    live.check("relay before going silent").await;
    // Now nobody sends anything: the gateway must close both sides.
    let closed = read_until_closed(
        &mut live.client,
        STEP,
        "the idle relay to be closed at the client",
    )
    .await;
    assert!(closed.bytes.is_empty());
    assert!(
        closed.is_clean(),
        "an idle close sends TLS close_notify: {:?}",
        closed.result
    );
    let rec = live.upstream.wait_for_end(STEP).await;
    assert!(rec.end.is_some());
    gw.wait_metric(
        CLOSED,
        &[("protocol", "rtmps"), ("reason", "idle_timeout")],
        1.0,
    )
    .await;
    assert_eq!(gw.metric(CLOSED, &[]), 1.0);
}

// ---------------------------------------------------------------------------
// Graceful shutdown
// ---------------------------------------------------------------------------

#[tokio::test]
async fn shutdown_drains_live_relay_then_closes_it() {
    let mut upstream = TestUpstream::start().await;
    let mut gw = start_gateway(&[RTMPS], upstream.addr, |c| {
        c.timeouts.drain = Duration::from_secs(3);
    })
    .await;
    let addr = gw.rtmps();
    let client = connect_rtmps(addr).await;
    let mut live = LiveRelay::establish(client, &mut upstream).await;
    live.check("before shutdown").await;
    gw.trigger_shutdown();
    // Live streams keep flowing during the drain period...
    live.check("during the drain").await;
    // ...and are closed at its end, on both sides.
    let closed = read_until_closed(&mut live.client, BULK, "the drain to end the relay").await;
    assert!(closed.bytes.is_empty());
    let rec = live.upstream.wait_for_end(STEP).await;
    assert!(rec.end.is_some());
    let metrics = std::sync::Arc::clone(&gw.metrics);
    gw.wait_stopped().await;
    let text = metrics.encode();
    assert_eq!(
        metric_value(
            &text,
            CLOSED,
            &[("protocol", "rtmps"), ("reason", "shutdown")]
        ),
        1.0,
        "{text}"
    );
    // Once `run` has returned the listener is gone.
    let refused = within(
        STEP,
        "connect after shutdown",
        tokio::net::TcpStream::connect(addr),
    )
    .await;
    assert!(refused.is_err(), "still accepting after shutdown");
}

// ---------------------------------------------------------------------------
// Connection cap
// ---------------------------------------------------------------------------

#[tokio::test]
async fn connection_cap_pauses_accepting_until_a_slot_frees() {
    let mut upstream = TestUpstream::start().await;
    let gw = start_gateway(&[RTMP], upstream.addr, |c| c.max_connections = 1).await;
    let first = connect_tcp(gw.rtmp()).await;
    let mut live = LiveRelay::establish(first, &mut upstream).await;
    live.check("the one allowed connection").await;

    // The second waits in the backlog: no handshake answer while the first lives.
    let mut second = connect_tcp(gw.rtmp()).await;
    let c0c1 = [&[RTMP_VERSION][..], &handshake_block(0, 2)].concat();
    second.write_all(&c0c1).await.unwrap();
    gw.wait_metric(
        "rtmpgate_limit_hits_total",
        &[("limit", "max_connections")],
        1.0,
    )
    .await;
    let mut s0 = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(300), second.read_exact(&mut s0)).await;
    assert!(early.is_err(), "second connection served above the cap");
    live.check("the first is undisturbed").await;

    // Freeing the slot lets the second through.
    drop(live);
    within(STEP, "second connection served", second.read_exact(&mut s0))
        .await
        .unwrap();
    assert_eq!(s0[0], RTMP_VERSION);
}
