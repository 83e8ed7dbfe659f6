//! An `/open`→`/close` loop must not make upstream connections without
//! limit (issue 17, attack 7): every `/open` costs an upstream connect
//! (maybe a TLS handshake), and failed connects hold an upstream down for
//! everyone. Over real loopback sockets, one client loops as fast as it can;
//! beyond its burst it gets 429 and the upstream sees at most burst +
//! rate × elapsed connections, while a client at another address (127.0.0.2)
//! still opens at once. Every wait is bounded.

mod common;
mod rtmpt_support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::{STEP, TestUpstream, UpstreamMode, within};
use rtmpt_support::{HttpConn, close_req, open_req, parse_open_body};

const RTMP: &str = "rtmp://127.0.0.1:0";
const LIMIT_HITS: &str = "rtmpgate_limit_hits_total";
const REQUESTS: &str = "rtmpgate_rtmpt_requests_total";

const RATE: u32 = 5;
const BURST: u32 = 8;
/// How long the client loops.
const LOOP: Duration = Duration::from_millis(1200);

/// Upstream connections that arrive within `settle` of each other, counted
/// until none has for that long (bounded by STEP).
async fn drain_conns(upstream: &mut TestUpstream, settle: Duration) -> usize {
    within(STEP, "counting upstream connections", async {
        let mut n = 0;
        loop {
            match tokio::time::timeout(settle, async {
                loop {
                    if let Some(c) = upstream.try_next_conn() {
                        return c;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            {
                Ok(_) => n += 1,
                Err(_) => return n,
            }
        }
    })
    .await
}

#[tokio::test]
async fn an_open_close_loop_is_rated_per_client_before_the_upstream() {
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let gw = start_gateway_rated(upstream.addr).await;
    let addr = gw.rtmp();

    let mut c = HttpConn::tcp(addr).await;
    let (mut opened, mut limited) = (0usize, 0usize);
    let mut refusal = None;
    let started = Instant::now();
    within(STEP, "the /open-/close loop", async {
        while started.elapsed() < LOOP {
            let res = c.roundtrip(&open_req()).await;
            match res.status {
                200 => {
                    opened += 1;
                    let id = parse_open_body(&res.body);
                    c.roundtrip(&close_req(&id, 0))
                        .await
                        .expect_status(200, "/close of a rated session");
                }
                429 => {
                    limited += 1;
                    refusal.get_or_insert(res);
                }
                _ => {
                    res.expect_status(429, &format!("/open #{}", opened + limited));
                }
            }
        }
    })
    .await;
    let elapsed = started.elapsed();
    let upstream_conns = drain_conns(&mut upstream, Duration::from_millis(300)).await;
    eprintln!(
        "{} /open in {elapsed:?}: {opened} opened, {limited} got 429, {upstream_conns} upstream \
         connections",
        opened + limited
    );

    let allowed = BURST as f64 + RATE as f64 * elapsed.as_secs_f64();
    assert!(
        opened >= BURST as usize,
        "the burst is served: {opened} opened"
    );
    assert!(
        (opened as f64) <= allowed + 1.0,
        "{opened} opens in {elapsed:?}, above burst {BURST} + {RATE}/s"
    );
    assert_eq!(
        upstream_conns, opened,
        "a refused /open made no upstream connection"
    );
    assert!(limited > 0, "the loop was never refused");
    let refusal = refusal.expect("a 429");
    let retry: u64 = refusal
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("429 carries Retry-After in seconds");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    let why = String::from_utf8_lossy(&refusal.body);
    assert!(why.contains("wait"), "the body says what to do: {why:?}");
    assert_eq!(
        gw.metric(LIMIT_HITS, &[("limit", "rtmpt_open_rate")]),
        limited as f64
    );
    assert_eq!(
        gw.metric(REQUESTS, &[("verb", "open"), ("status", "429")]),
        limited as f64
    );

    // Another client is not held back by the first one's loop.
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut o = HttpConn::tcp_from(other, addr).await;
    let res = o.roundtrip(&open_req()).await;
    res.expect_status(200, "/open from 127.0.0.2 while 127.0.0.1 is rated");
    let _conn = upstream.next_conn().await;

    // The first client gets a token back after 1/RATE s.
    tokio::time::sleep(Duration::from_secs(1) / RATE + Duration::from_millis(50)).await;
    c.roundtrip(&open_req())
        .await
        .expect_status(200, "/open from 127.0.0.1 after waiting");
}

async fn start_gateway_rated(upstream: std::net::SocketAddr) -> common::TestGateway {
    common::start_gateway(&[RTMP], upstream, |c| {
        c.rtmpt.open_rate.per_second = RATE;
        c.rtmpt.open_rate.burst = BURST;
    })
    .await
}
