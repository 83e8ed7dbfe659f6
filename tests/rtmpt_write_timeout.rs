//! RTMPT replies under `--write-timeout` (issue 17, attack 6): a client
//! that pipelines `/idle` requests and never reads the replies (a zero
//! receive window) must not pin its connection, while a client that reads
//! slowly but steadily keeps it. Real loopback sockets, every wait bounded.

mod common;
mod rtmpt_support;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use common::{STEP, within};
use rtmpt_support::{Tunnel, idle_req};

const CLOSED: &str = "rtmpgate_connections_closed_total";
const WRITE_TIMEOUT: Duration = Duration::from_millis(500);

/// An upstream that sends 64 KiB blocks to its first connection until
/// rtmpgate closes it (the test aborts it at the end).
async fn flooding_upstream() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = upstream.local_addr().expect("address");
    let flood = tokio::spawn(async move {
        let (mut sock, _) = upstream.accept().await.expect("accept");
        let block = vec![0x5a; 64 * 1024];
        while sock.write_all(&block).await.is_ok() {}
    });
    (addr, flood)
}

/// A plain connection with a 4 KiB receive buffer, so replies block once
/// the gateway's send buffer is full.
async fn small_window(addr: std::net::SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    within(STEP, "connect", socket.connect(addr))
        .await
        .expect("connect")
}

#[tokio::test]
async fn a_client_that_never_reads_its_replies_is_closed_after_the_write_timeout() {
    let (up_addr, flood) = flooding_upstream().await;
    let gw = common::start_gateway(&["rtmp://127.0.0.1:0"], up_addr, |c| {
        c.timeouts.write = Some(WRITE_TIMEOUT);
        // Far longer than the test: only the write deadline can end it.
        c.rtmpt.limits.expiry = Duration::from_secs(120);
        c.rtmpt.header_timeout = Duration::from_secs(120);
    })
    .await;
    let mut t = Tunnel::open_tcp(gw.rtmp()).await;

    // Idles 10 ms apart, each answered with up to 64 KiB of upstream bytes
    // (the flood refills the session between them): 300 of them are ~19
    // MiB, far more than the socket buffers between us hold (the send
    // buffer grows to 4 MiB at most here).
    // A write error means the gateway has already closed the connection.
    let mut stalled = small_window(gw.rtmp()).await;
    let started = Instant::now();
    for _ in 0..300 {
        let seq = t.next_seq();
        let idle = idle_req(&t.id, seq);
        if within(STEP, "write an idle", stalled.write_all(&idle))
            .await
            .is_err()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gw.wait_metric(
        CLOSED,
        &[("protocol", "rtmpt"), ("reason", "client_write_timeout")],
        1.0,
    )
    .await;
    eprintln!("stalled connection closed after {:?}", started.elapsed());
    // The socket is closed: reading drains what was queued, then ends.
    within(
        Duration::from_secs(10),
        "EOF on the stalled socket",
        async {
            let mut buf = vec![0u8; 256 * 1024];
            while matches!(stalled.read(&mut buf).await, Ok(n) if n > 0) {}
        },
    )
    .await;
    flood.abort();
}

#[tokio::test]
async fn a_client_reading_slowly_but_steadily_keeps_its_connection() {
    let (up_addr, flood) = flooding_upstream().await;
    let gw = common::start_gateway(&["rtmp://127.0.0.1:0"], up_addr, |c| {
        c.timeouts.write = Some(WRITE_TIMEOUT);
    })
    .await;
    let mut t = Tunnel::open_tcp(gw.rtmp()).await;
    let mut slow = small_window(gw.rtmp()).await;
    let mut requests = Vec::new();
    for _ in 0..8 {
        let seq = t.next_seq();
        requests.extend(idle_req(&t.id, seq));
    }
    within(STEP, "write the pipelined idles", slow.write_all(&requests))
        .await
        .expect("write idles");
    // 4 KiB every 100 ms (below the timeout each time) for 3 s: six write
    // timeouts long, and the connection must still be there.
    let mut buf = [0u8; 4096];
    let mut got = 0;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let n = within(STEP, "a slow read", slow.read(&mut buf))
            .await
            .expect("read");
        assert!(n > 0, "the gateway closed a client that kept reading");
        got += n;
    }
    eprintln!("slow reader took {got} bytes in 3 s");
    assert_eq!(
        gw.metric(CLOSED, &[("reason", "client_write_timeout")]),
        0.0,
        "a steady reader was closed as stalled"
    );
    flood.abort();
}
