//! One client must not take every slot (issue 17, attack 5): with the
//! built-in defaults, connections and RTMPT sessions from one address are
//! capped, over real loopback sockets from 127.0.0.1. (That addresses of
//! one IPv6 /64 share a cap is unit-tested in `limits` and `rtmpt::table`:
//! only loopback may be used here.)

mod common;
mod rtmpt_support;

use common::*;
use rtmpt_support::{HttpConn, open_req, parse_open_body};
use tokio::io::AsyncWriteExt;

const RTMP: &str = "rtmp://127.0.0.1:0";
const LIMIT_HITS: &str = "rtmpgate_limit_hits_total";
const ACTIVE: &str = "rtmpgate_connections_active";

/// The defaults the README documents ("Per-client caps").
const CONNECTIONS_PER_CLIENT: usize = 64;
const SESSIONS_PER_CLIENT: usize = 32;

#[tokio::test]
async fn by_default_one_address_gets_64_connections_and_no_more() {
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    // No tweak: the built-in defaults are under test.
    let gw = start_gateway(&[RTMP], upstream.addr, |_| {}).await;
    let mut held = Vec::new();
    for i in 0..CONNECTIONS_PER_CLIENT {
        let mut client = connect_tcp(gw.rtmp()).await;
        let hello = [&[RTMP_VERSION][..], &handshake_block(0, i as u64)].concat();
        client.write_all(&hello).await.unwrap();
        let conn = upstream.next_conn().await;
        conn.wait_for_len(hello.len(), STEP).await;
        held.push((client, conn));
    }
    let mut over = connect_tcp(gw.rtmp()).await;
    let _ = over.write_all(&[RTMP_VERSION]).await;
    let closed = read_until_closed(&mut over, STEP, "connection over the per-client cap").await;
    assert!(closed.bytes.is_empty(), "refused before any reply");
    gw.wait_metric(LIMIT_HITS, &[("limit", "max_connections_per_client")], 1.0)
        .await;
    assert!(
        upstream.try_next_conn().is_none(),
        "refused one reached the upstream"
    );

    // Freeing one slot lets the client in again; the held ones still work.
    let (client, conn) = held.pop().unwrap();
    drop(client);
    conn.reset();
    gw.wait_metric(ACTIVE, &[], (CONNECTIONS_PER_CLIENT - 1) as f64)
        .await;
    let mut again = connect_tcp(gw.rtmp()).await;
    let hello = [&[RTMP_VERSION][..], &handshake_block(0, 999)].concat();
    again.write_all(&hello).await.unwrap();
    upstream
        .next_conn()
        .await
        .wait_for_len(hello.len(), STEP)
        .await;
    let (client, conn) = &mut held[0];
    client.write_all(b"still here").await.unwrap();
    let want = 1 + 1536 + b"still here".len();
    conn.wait_for_len(want, STEP).await;
}

#[tokio::test]
async fn by_default_one_address_gets_32_rtmpt_sessions_and_no_more() {
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let gw = start_gateway(&[RTMP], upstream.addr, |_| {}).await;
    let mut c = HttpConn::tcp(gw.rtmp()).await;
    let mut ids = Vec::new();
    for i in 0..SESSIONS_PER_CLIENT {
        let res = c.roundtrip(&open_req()).await;
        res.expect_status(200, &format!("/open #{i} within the per-client cap"));
        ids.push(parse_open_body(&res.body));
        let _ = upstream.next_conn().await;
    }
    c.roundtrip(&open_req())
        .await
        .expect_status(503, "an /open over the per-client session cap");
    assert_eq!(
        gw.metric(LIMIT_HITS, &[("limit", "rtmpt_max_sessions_per_client")]),
        1.0
    );
    assert_eq!(ids.len(), SESSIONS_PER_CLIENT);
}
