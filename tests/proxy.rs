//! PROXY protocol: headers sent to the upstream are byte-exact, headers
//! from trusted load balancers are honoured (and passed on), untrusted or
//! malformed ones close only the offender, and per-client limits apply to
//! the real client behind the balancer.

mod common;

use std::net::SocketAddr;

use common::*;
use rtmpgate::proxy_protocol::ProxyVersion;
use rustls_pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const RTMP: &str = "rtmp://127.0.0.1:0";
const RTMP_PP: &str = "rtmp://127.0.0.1:0?proxy_protocol=1";
const RTMPS_PP: &str = "rtmps://127.0.0.1:0?proxy_protocol=1";

/// The test's balancer is this host: named explicitly, as an operator must
/// name theirs (the default trusts loopback only, never private ranges).
fn trust_balancer(c: &mut rtmpgate::config::Config) {
    c.proxy_protocol_from = vec!["127.0.0.1/32".parse().unwrap()];
}

fn c0c1(seed: u64) -> Vec<u8> {
    [&[RTMP_VERSION][..], &handshake_block(0, seed)].concat()
}

fn v1_header(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    format!(
        "PROXY TCP4 {} {} {} {}\r\n",
        src.ip(),
        dst.ip(),
        src.port(),
        dst.port()
    )
    .into_bytes()
}

fn v2_header(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let ip4 = |a: SocketAddr| match a.ip() {
        std::net::IpAddr::V4(v4) => v4.octets(),
        _ => panic!("IPv4 only here"),
    };
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&ip4(src));
    h.extend_from_slice(&ip4(dst));
    h.extend_from_slice(&src.port().to_be_bytes());
    h.extend_from_slice(&dst.port().to_be_bytes());
    h
}

#[tokio::test]
async fn upstream_gets_exact_v1_and_v2_headers_then_the_stream() {
    for (version, encode) in [
        (
            ProxyVersion::V1,
            v1_header as fn(SocketAddr, SocketAddr) -> Vec<u8>,
        ),
        (ProxyVersion::V2, v2_header),
    ] {
        let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
        let gw = start_gateway(&[RTMP], upstream.addr, |c| {
            c.upstream_proxy_protocol = Some(version);
        })
        .await;
        let mut client = connect_tcp(gw.rtmp()).await;
        let me = client.local_addr().unwrap();
        let hello = c0c1(fresh_seed());
        client.write_all(&hello).await.unwrap();
        let conn = upstream.next_conn().await;
        let want = [encode(me, gw.rtmp()), hello].concat();
        let got = conn.wait_for_len(want.len(), STEP).await;
        assert_bytes_eq(&format!("{version:?} header + C0C1"), &got.bytes, &want);
    }
}

#[tokio::test]
async fn trusted_balancer_header_names_the_real_client_upstream() {
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let gw = start_gateway(&[RTMP_PP], upstream.addr, |c| {
        trust_balancer(c);
        c.upstream_proxy_protocol = Some(ProxyVersion::V1);
    })
    .await;
    let real: SocketAddr = "203.0.113.9:4444".parse().unwrap();
    for inbound in [v1_header, v2_header] {
        let mut client = connect_tcp(gw.rtmp()).await;
        let hello = c0c1(fresh_seed());
        // Header and C0+C1 in one write: what follows the header is kept.
        client
            .write_all(&[inbound(real, gw.rtmp()), hello.clone()].concat())
            .await
            .unwrap();
        let conn = upstream.next_conn().await;
        let want = [v1_header(real, gw.rtmp()), hello].concat();
        let got = conn.wait_for_len(want.len(), STEP).await;
        assert_bytes_eq("PROXY header passed on", &got.bytes, &want);
    }
}

#[tokio::test]
async fn proxy_header_before_tls_on_rtmps() {
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let gw = start_gateway(&[RTMPS_PP], upstream.addr, |c| {
        trust_balancer(c);
        c.upstream_proxy_protocol = Some(ProxyVersion::V2);
    })
    .await;
    let real: SocketAddr = "198.51.100.3:7000".parse().unwrap();
    let mut tcp = TcpStream::connect(gw.rtmps()).await.unwrap();
    tcp.write_all(&v1_header(real, gw.rtmps())).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(client_config());
    let name = ServerName::try_from(SERVER_NAME).unwrap();
    let mut tls = within(STEP, "TLS after PROXY", connector.connect(name, tcp))
        .await
        .expect("TLS handshake after a PROXY header");
    let hello = c0c1(fresh_seed());
    tls.write_all(&hello).await.unwrap();
    let conn = upstream.next_conn().await;
    let want = [v2_header(real, gw.rtmps()), hello].concat();
    let got = conn.wait_for_len(want.len(), STEP).await;
    assert_bytes_eq("v2 header + C0C1 after TLS", &got.bytes, &want);
}

#[tokio::test]
async fn untrusted_or_missing_header_closes_only_the_offender() {
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    // Trust only 10.0.0.0/8: the loopback client is not a trusted balancer.
    let gw = start_gateway(&[RTMP_PP, RTMP], upstream.addr, |c| {
        c.proxy_protocol_from = vec!["10.0.0.0/8".parse().unwrap()];
    })
    .await;
    let pp_port = gw.addrs[0].1;
    let mut offender = connect_tcp(pp_port).await;
    let _ = offender
        .write_all(&v1_header("203.0.113.1:1".parse().unwrap(), pp_port))
        .await;
    let closed = read_until_closed(&mut offender, STEP, "untrusted PROXY sender closed").await;
    assert!(closed.bytes.is_empty());
    gw.wait_metric(CLOSED, &[("reason", "proxy_untrusted")], 1.0)
        .await;

    // The plain listener next to it is unaffected.
    let mut ok = connect_tcp(gw.addrs[1].1).await;
    let hello = c0c1(fresh_seed());
    ok.write_all(&hello).await.unwrap();
    let conn = upstream.next_conn().await;
    let got = conn.wait_for_len(hello.len(), STEP).await;
    assert_bytes_eq("unaffected client", &got.bytes, &hello);
    assert!(
        upstream.try_next_conn().is_none(),
        "offender reached the upstream"
    );
}

#[tokio::test]
async fn garbage_instead_of_header_is_refused() {
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let gw = start_gateway(&[RTMP_PP], upstream.addr, trust_balancer).await;
    let mut client = connect_tcp(gw.rtmp()).await;
    // An RTMP client that does not know about the balancer.
    client.write_all(&c0c1(1)).await.unwrap();
    let closed = read_until_closed(&mut client, STEP, "headerless client closed").await;
    assert!(closed.bytes.is_empty());
    gw.wait_metric(CLOSED, &[("reason", "proxy_header_invalid")], 1.0)
        .await;
    assert!(upstream.try_next_conn().is_none());
}

#[tokio::test]
async fn per_client_cap_counts_the_real_client() {
    let mut upstream = TestUpstream::start_with(UpstreamMode::Raw).await;
    let gw = start_gateway(&[RTMP_PP], upstream.addr, |c| {
        trust_balancer(c);
        c.max_connections_per_client = 1;
    })
    .await;
    let a: SocketAddr = "203.0.113.1:1000".parse().unwrap();
    let b: SocketAddr = "203.0.113.2:1000".parse().unwrap();
    let mut held = Vec::new();
    // Two real clients behind one balancer address: both served.
    for src in [a, b] {
        let mut c = connect_tcp(gw.rtmp()).await;
        let hello = c0c1(fresh_seed());
        c.write_all(&[v1_header(src, gw.rtmp()), hello.clone()].concat())
            .await
            .unwrap();
        let conn = upstream.next_conn().await;
        conn.wait_for_len(hello.len(), STEP).await;
        held.push((c, conn));
    }
    // A second connection from client a: over its cap.
    let mut again = connect_tcp(gw.rtmp()).await;
    again
        .write_all(&[v1_header(a, gw.rtmp()), c0c1(9)].concat())
        .await
        .unwrap();
    let closed = read_until_closed(&mut again, STEP, "second connection of a closed").await;
    assert!(closed.bytes.is_empty());
    gw.wait_metric(
        "rtmpgate_limit_hits_total",
        &[("limit", "max_connections_per_client")],
        1.0,
    )
    .await;
    assert_eq!(held.len(), 2);
}
