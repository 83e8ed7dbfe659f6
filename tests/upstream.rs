//! The upstream side: RTMPS origination (with a private CA, and refusal of
//! an untrusted certificate) and failover across several upstreams.

mod common;

use std::net::SocketAddr;

use common::*;
use rtmpgate::config::UpstreamTrust;

const RTMP: &str = "rtmp://127.0.0.1:0";
const RTMPS: &str = "rtmps://127.0.0.1:0";

/// An RTMPS-only origin: a second rtmpgate terminating TLS in front of the
/// recording test upstream.
async fn rtmps_origin(upstream: &TestUpstream) -> TestGateway {
    start_gateway(&[RTMPS], upstream.addr, |_| {}).await
}

fn rtmps_url(origin: SocketAddr) -> rtmpgate::endpoint::UpstreamUrl {
    format!("rtmps://{SERVER_NAME}:{}", origin.port())
        .parse()
        .unwrap()
}

#[tokio::test]
async fn plain_rtmp_client_reaches_rtmps_only_origin_byte_exact() {
    let mut upstream = TestUpstream::start().await;
    let origin = rtmps_origin(&upstream).await;
    let ca = TempDir::new("ca");
    let (ca_cert, _) = test_pki().write_to(ca.path());
    let gw = start_gateway(&[RTMP], upstream.addr, |c| {
        c.upstreams = vec![rtmps_url(origin.rtmps())];
        c.upstream_trust = UpstreamTrust::PrivateCa(ca_cert);
    })
    .await;
    let client = connect_tcp(gw.rtmp()).await;
    let mut live = LiveRelay::establish(client, &mut upstream).await;
    for round in 0..3 {
        live.check(&format!("rtmp → rtmpgate → rtmps origin, round {round}"))
            .await;
    }
    gw.wait_metric(
        "rtmpgate_connections_accepted_total",
        &[("listener", "rtmp")],
        1.0,
    )
    .await;
    assert_eq!(
        origin.metric(
            "rtmpgate_connections_accepted_total",
            &[("listener", "rtmps")]
        ),
        1.0,
        "the origin saw a TLS connection"
    );
}

#[tokio::test]
async fn untrusted_origin_certificate_is_refused() {
    let mut upstream = TestUpstream::start().await;
    let origin = rtmps_origin(&upstream).await;
    // Public roots only: the origin's self-signed certificate is not trusted.
    let gw = start_gateway(&[RTMP], upstream.addr, |c| {
        c.upstreams = vec![rtmps_url(origin.rtmps())];
    })
    .await;
    let mut client = connect_tcp(gw.rtmp()).await;
    tokio::io::AsyncWriteExt::write_all(
        &mut client,
        &[&[RTMP_VERSION][..], &handshake_block(0, 1)].concat(),
    )
    .await
    .unwrap();
    let closed = read_until_closed(&mut client, STEP, "client closed on bad origin").await;
    assert!(closed.bytes.is_empty());
    gw.wait_metric(
        "rtmpgate_upstream_connect_failures_total",
        &[("reason", "tls")],
        1.0,
    )
    .await;
    assert!(upstream.try_next_conn().is_none());
}

#[tokio::test]
async fn fails_over_to_the_next_upstream_and_reports_health() {
    let mut upstream = TestUpstream::start().await;
    let dead: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let dead_url: rtmpgate::endpoint::UpstreamUrl = format!("rtmp://{dead}").parse().unwrap();
    let gw = start_gateway(&[RTMP], upstream.addr, |c| {
        let good = c.upstreams[0].clone();
        c.upstreams = vec![dead_url.clone(), good];
    })
    .await;
    for round in 0..2 {
        let client = connect_tcp(gw.rtmp()).await;
        let mut live = LiveRelay::establish(client, &mut upstream).await;
        live.check(&format!(
            "relay via the second upstream, connection {round}"
        ))
        .await;
    }
    // The dead one was tried once, then held down for the second client.
    assert_eq!(
        gw.metric(
            "rtmpgate_upstream_connect_failures_total",
            &[("reason", "refused")]
        ),
        1.0
    );
    assert_eq!(
        gw.metric(
            "rtmpgate_upstream_up",
            &[("upstream", &dead_url.to_string())]
        ),
        0.0
    );
}
