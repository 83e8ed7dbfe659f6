//! Routing by the RTMP `connect` command's `app` and `tcUrl` host: the
//! chosen upstream receives exactly the bytes the client sent after its
//! handshake; unknown apps get an `_error`; malformed input a clean close;
//! a `tcUrl` rewrite keeps every other property.

mod common;

use common::*;
use rtmpgate::routes::RouteRule;
use tokio::io::AsyncWriteExt;

const RTMP: &str = "rtmp://127.0.0.1:0";

fn rule(
    app: Option<&str>,
    host: Option<&str>,
    up: &TestUpstream,
    tc_url: Option<&str>,
) -> RouteRule {
    RouteRule {
        app: app.map(str::to_owned),
        host: host.map(str::to_owned),
        upstreams: vec![format!("rtmp://{}", up.addr).parse().unwrap()],
        tc_url: tc_url.map(str::to_owned),
    }
}

/// Handshakes with the gateway and sends a publish session for `app`;
/// returns the bytes sent after C2.
async fn publish(gw: &TestGateway, app: &str, seed: u64) -> (tokio::net::TcpStream, Vec<u8>) {
    let mut client = connect_tcp(gw.rtmp()).await;
    client_handshake(&mut client).await;
    let bytes = encode_messages(&publish_session(app, "key", seed, 12));
    client.write_all(&bytes).await.unwrap();
    (client, bytes)
}

#[tokio::test]
async fn each_app_reaches_its_own_upstream_byte_exact() {
    let mut a = TestUpstream::start().await;
    let mut b = TestUpstream::start().await;
    let routes = vec![
        rule(Some("a"), None, &a, None),
        rule(Some("b"), None, &b, None),
    ];
    let gw = start_gateway(&[RTMP], a.addr, |c| c.routes = routes).await;

    let (_ca, sent_a) = publish(&gw, "a", fresh_seed()).await;
    let conn_a = a.next_conn().await;
    conn_a.handshake(); // rtmpgate's own client handshake passed the check
    conn_a
        .expect_bytes("app a after the handshake", &sent_a)
        .await;

    let (_cb, sent_b) = publish(&gw, "b", fresh_seed()).await;
    let conn_b = b.next_conn().await;
    conn_b
        .expect_bytes("app b after the handshake", &sent_b)
        .await;
    assert!(a.try_next_conn().is_none() && b.try_next_conn().is_none());

    // Server → client still flows through the routed relay.
    conn_b.send(b"server bytes".to_vec()).await;
    let mut client = _cb;
    let mut got = [0u8; 12];
    within(STEP, "reply through routed relay", async {
        tokio::io::AsyncReadExt::read_exact(&mut client, &mut got).await
    })
    .await
    .unwrap();
    assert_eq!(&got, b"server bytes");
}

#[tokio::test]
async fn host_of_tc_url_selects_among_same_app() {
    let mut a = TestUpstream::start().await;
    let mut fallback = TestUpstream::start().await;
    // publish_session's tcUrl is rtmps://localhost/<app>.
    let routes = vec![
        rule(Some("live"), Some("other.example"), &fallback, None),
        rule(Some("live"), Some("LOCALHOST"), &a, None),
    ];
    let gw = start_gateway(&[RTMP], a.addr, |c| c.routes = routes).await;
    let (_c, sent) = publish(&gw, "live", fresh_seed()).await;
    a.next_conn()
        .await
        .expect_bytes("routed by host", &sent)
        .await;
    assert!(fallback.try_next_conn().is_none());
}

#[tokio::test]
async fn unknown_app_gets_an_rtmp_error_and_a_clean_close() {
    let a = TestUpstream::start().await;
    let gw = start_gateway(&[RTMP], a.addr, |c| {
        c.routes = vec![rule(Some("a"), None, &a, None)];
    })
    .await;
    let (mut client, _) = publish(&gw, "nope", 1).await;
    let closed = read_until_closed(&mut client, STEP, "refused client closed").await;
    assert!(closed.is_clean(), "{:?}", closed.result);
    let msgs = decode_messages(&closed.bytes).expect("the refusal is valid RTMP");
    assert_eq!(msgs.len(), 1);
    let text = String::from_utf8_lossy(&msgs[0].payload);
    assert!(text.contains("_error"), "{text}");
    assert!(text.contains("NetConnection.Connect.Rejected"), "{text}");
    gw.wait_metric(CLOSED, &[("reason", "no_route")], 1.0).await;
}

#[tokio::test]
async fn malformed_or_truncated_input_is_closed_cleanly() {
    let a = TestUpstream::start().await;
    let gw = start_gateway(&[RTMP], a.addr, |c| {
        c.routes = vec![rule(None, None, &a, None)];
        c.timeouts.first_bytes = std::time::Duration::from_millis(500);
    })
    .await;
    // A chunk header claiming a huge message, then garbage.
    let mut bad = connect_tcp(gw.rtmp()).await;
    client_handshake(&mut bad).await;
    bad.write_all(&[0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0, 0xAB])
        .await
        .unwrap();
    let closed = read_until_closed(&mut bad, STEP, "oversized message closed").await;
    assert!(closed.bytes.is_empty());
    // A command that is not connect.
    let mut other = connect_tcp(gw.rtmp()).await;
    client_handshake(&mut other).await;
    let not_connect = RtmpMessage::command(
        0,
        &[
            amf0::string("play"),
            amf0::Value::Number(1.0),
            amf0::Value::Null,
        ],
    );
    other.write_all(&not_connect.encode(128)).await.unwrap();
    read_until_closed(&mut other, STEP, "non-connect closed").await;
    // Truncated: half a connect, then silence.
    let mut half = connect_tcp(gw.rtmp()).await;
    client_handshake(&mut half).await;
    let bytes = encode_messages(&publish_session("a", "k", 1, 0));
    half.write_all(&bytes[..bytes.len() / 3]).await.unwrap();
    read_until_closed(&mut half, STEP, "truncated connect times out").await;
    gw.wait_metric(CLOSED, &[("reason", "bad_chunk_stream")], 1.0)
        .await;
    gw.wait_metric(CLOSED, &[("reason", "bad_connect")], 1.0)
        .await;
    gw.wait_metric(CLOSED, &[("reason", "handshake_timeout")], 1.0)
        .await;
}

#[tokio::test]
async fn tc_url_rewrite_keeps_every_other_property() {
    let mut a = TestUpstream::start().await;
    let new_tc = "rtmp://origin.internal:1935/live";
    let gw = start_gateway(&[RTMP], a.addr, |c| {
        c.routes = vec![rule(Some("live"), None, &a, Some(new_tc))];
    })
    .await;
    let session = publish_session("live", "key", fresh_seed(), 6);
    let (_c, _sent) = publish_messages(&gw, &session).await;
    let conn = a.next_conn().await;
    let want = encode_messages(&session).len() - 20; // lower bound; exact check below
    let got = conn.wait_for_len(want, STEP).await;
    let up = decode_messages(&got.bytes).expect("upstream receives valid RTMP");
    let connect = String::from_utf8_lossy(&up[0].payload).to_string();
    assert!(connect.contains(new_tc), "{connect}");
    assert!(!connect.contains("rtmps://localhost/live"), "{connect}");
    for kept in [
        "nonprivate",
        "FMLE/3.0 (compatible; rtmpgate-test)",
        "flashVer",
        "app",
    ] {
        assert!(connect.contains(kept), "{kept} lost: {connect}");
    }
    // Everything after connect arrives unchanged.
    assert_eq!(up.len(), session.len());
    for (u, s) in up.iter().zip(&session).skip(1) {
        assert_eq!(u.payload, s.payload);
        assert_eq!(u.type_id, s.type_id);
    }
}

async fn publish_messages(
    gw: &TestGateway,
    msgs: &[RtmpMessage],
) -> (tokio::net::TcpStream, Vec<u8>) {
    let mut client = connect_tcp(gw.rtmp()).await;
    client_handshake(&mut client).await;
    let bytes = encode_messages(msgs);
    client.write_all(&bytes).await.unwrap();
    (client, bytes)
}

/// Chunks `payload` as a new message on `csid` with a fmt 2 header: it
/// inherits length, type and stream id from the previous message there.
fn fmt2_message(csid: u8, payload: &[u8], chunk_size: usize) -> Vec<u8> {
    let mut out = vec![(2 << 6) | csid, 0, 0, 0];
    for (i, piece) in payload.chunks(chunk_size).enumerate() {
        if i > 0 {
            out.push((3 << 6) | csid);
        }
        out.extend_from_slice(piece);
    }
    out
}

#[tokio::test]
async fn length_changing_rewrite_rechunks_an_inheriting_next_message() {
    let mut a = TestUpstream::start_with(UpstreamMode::Rtmp).await;
    let new_tc = "rtmp://a-much-longer-origin-name.internal.example:1935/live";
    let gw = start_gateway(&[RTMP], a.addr, |c| {
        c.routes = vec![rule(Some("live"), None, &a, Some(new_tc))];
    })
    .await;
    let session = publish_session("live", "key", fresh_seed(), 0);
    let connect = &session[0];
    // Same length as connect, on the same chunk stream: sent with fmt 2,
    // the upstream would cut it at the rewritten connect's length.
    let second = pattern(fresh_seed(), connect.payload.len());
    let media = RtmpMessage::new(6, msg_type::VIDEO, 1, 0, pattern(3, 3000));
    let mut bytes = connect.encode(128);
    bytes.extend(fmt2_message(connect.csid as u8, &second, 128));
    bytes.extend(media.encode(128));

    let mut client = connect_tcp(gw.rtmp()).await;
    client_handshake(&mut client).await;
    client.write_all(&bytes).await.unwrap();
    client.shutdown().await.unwrap();
    let got = a.next_conn().await.wait_for_end(STEP).await;
    let up = decode_messages(&got.bytes).expect("the upstream can follow the chunk stream");
    assert_eq!(up.len(), 3, "{up:?}");
    assert!(String::from_utf8_lossy(&up[0].payload).contains(new_tc));
    assert_eq!(up[1].payload, second, "inheriting message arrives whole");
    assert_eq!(up[1].csid, connect.csid);
    assert_eq!(up[2].payload, media.payload);
}
