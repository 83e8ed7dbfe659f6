//! An RTMPT test client over raw sockets, for `tests/rtmpt.rs`.
//!
//! Requests are written by hand (so a test decides exactly what goes on the
//! wire, including pipelining several requests in one write) and responses
//! are parsed by hand from the raw bytes (so a test sees exactly what a
//! librtmp-style parser would see). Every wait is bounded.
//!
//! * [`HttpConn`]: one client connection (plain TCP, TCP from a chosen source
//!   address, or TLS) with a response parser that keeps unread bytes, so
//!   reads can be cancelled by a timeout without losing data.
//! * [`post`], [`request`]: request bytes as librtmp writes them.
//! * [`Tunnel`]: an RTMPT session (id + sequence numbers) on a connection.
//! * [`LiveTunnel`]: a session plus its upstream connection, whose both
//!   directions can be checked byte-exact on demand.
//! * [`Pusher`]: an upstream writing a large payload in the background while
//!   counting how much the kernel has accepted so far.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::task::JoinHandle;

use crate::common::{
    BULK, HANDSHAKE_SIZE, RTMP_VERSION, STEP, UpstreamConn, assert_bytes_eq, connect_rtmps,
    connect_tcp, fresh_seed, handshake_block, pattern, within,
};

/// The content type every RTMPT request and reply carries.
pub const FCS: &str = "application/x-fcs";

/// The delay bytes Red5 (and rtmpgate) put first in a data reply.
pub const DELAY_BYTES: [u8; 6] = [0x01, 0x03, 0x05, 0x09, 0x11, 0x21];

/// Any bidirectional byte stream a test client can use.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

// ---------------------------------------------------------------------------
// Request bytes
// ---------------------------------------------------------------------------

/// A request with exactly these header lines (no others added) and body.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// An RTMPT POST exactly as librtmp writes it (header names and order
/// included: `Content-type`, `Content-length`).
pub fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let len = body.len().to_string();
    request(
        "POST",
        path,
        &[
            ("Host", "127.0.0.1"),
            ("Accept", "*/*"),
            ("User-Agent", "Shockwave Flash"),
            ("Connection", "Keep-Alive"),
            ("Cache-Control", "no-cache"),
            ("Content-type", FCS),
            ("Content-length", &len),
        ],
        body,
    )
}

/// `/send/<id>/<seq>` with `body`.
pub fn send_req(id: &str, seq: u64, body: &[u8]) -> Vec<u8> {
    post(&format!("/send/{id}/{seq}"), body)
}

/// `/idle/<id>/<seq>` with the customary one zero byte.
pub fn idle_req(id: &str, seq: u64) -> Vec<u8> {
    post(&format!("/idle/{id}/{seq}"), &[0])
}

/// `/close/<id>/<seq>` with the customary one zero byte.
pub fn close_req(id: &str, seq: u64) -> Vec<u8> {
    post(&format!("/close/{id}/{seq}"), &[0])
}

/// `/open/1` with the customary one zero byte.
pub fn open_req() -> Vec<u8> {
    post("/open/1", &[0])
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

/// One parsed HTTP response and the exact bytes it was parsed from.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status line, headers and body, byte for byte as received.
    pub raw: Vec<u8>,
    /// The status line without CRLF.
    pub status_line: String,
    /// Status code.
    pub status: u16,
    /// Header lines as received (name case preserved), in order.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked if the response was chunked).
    pub body: Vec<u8>,
    /// Whether the body came with `Transfer-Encoding: chunked`.
    pub chunked: bool,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The head (status line and headers, up to and including the blank
    /// line) as text.
    pub fn head_text(&self) -> String {
        let end = find(&self.raw, b"\r\n\r\n").map_or(self.raw.len(), |p| p + 4);
        String::from_utf8_lossy(&self.raw[..end]).into_owned()
    }

    /// Panics unless the status is `want`.
    #[track_caller]
    pub fn expect_status(&self, want: u16, what: &str) -> &Self {
        assert_eq!(
            self.status,
            want,
            "{what}: want status {want}, got:\n{}{}",
            self.head_text(),
            String::from_utf8_lossy(&self.body[..self.body.len().min(200)])
        );
        self
    }

    /// For a 200 data reply: the server bytes after the delay byte.
    #[track_caller]
    pub fn data(&self, what: &str) -> &[u8] {
        self.expect_status(200, what);
        assert!(
            !self.body.is_empty(),
            "{what}: a data reply needs at least the delay byte"
        );
        assert!(
            DELAY_BYTES.contains(&self.body[0]),
            "{what}: delay byte {:#04x} is not one of Red5's {DELAY_BYTES:02x?}",
            self.body[0]
        );
        &self.body[1..]
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses one response from the front of `buf`. `Ok(None)` means more
/// bytes are needed; `eof` says no more will come.
fn parse_response(buf: &[u8], eof: bool) -> Result<Option<(Response, usize)>, String> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|e| format!("head not UTF-8: {e}"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_string();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1 status line: {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        headers.push((k.to_string(), v.trim().to_string()));
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let body_start = head_end + 4;
    let chunked =
        get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let (body, end) = if chunked {
        let mut body = Vec::new();
        let mut pos = body_start;
        loop {
            let Some(line_end) = find(&buf[pos..], b"\r\n") else {
                return Ok(None);
            };
            let size_text = std::str::from_utf8(&buf[pos..pos + line_end]).unwrap_or("");
            let size_text = size_text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|e| format!("bad chunk size {size_text:?}: {e}"))?;
            pos += line_end + 2;
            if size == 0 {
                // No trailers expected: just the final CRLF.
                if buf.len() < pos + 2 {
                    return Ok(None);
                }
                break (body, pos + 2);
            }
            if buf.len() < pos + size + 2 {
                return Ok(None);
            }
            body.extend_from_slice(&buf[pos..pos + size]);
            pos += size + 2;
        }
    } else if let Some(len) = get("content-length") {
        let len: usize = len
            .parse()
            .map_err(|e| format!("bad Content-Length {len:?}: {e}"))?;
        if buf.len() < body_start + len {
            return Ok(None);
        }
        (buf[body_start..body_start + len].to_vec(), body_start + len)
    } else if matches!(status, 100..=199 | 204 | 304) {
        (Vec::new(), body_start)
    } else if eof {
        (buf[body_start..].to_vec(), buf.len())
    } else {
        return Ok(None);
    };
    Ok(Some((
        Response {
            raw: buf[..end].to_vec(),
            status_line,
            status,
            headers,
            body,
            chunked,
        },
        end,
    )))
}

// ---------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------

/// One client connection to the gateway, speaking hand-written HTTP/1.1.
pub struct HttpConn {
    stream: Box<dyn Io>,
    buf: Vec<u8>,
    eof: bool,
}

impl HttpConn {
    /// Wraps an established stream.
    pub fn new(stream: impl Io + 'static) -> Self {
        Self {
            stream: Box::new(stream),
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Plain TCP to `addr` (RTMPT).
    pub async fn tcp(addr: SocketAddr) -> Self {
        Self::new(connect_tcp(addr).await)
    }

    /// Plain TCP to `addr` from source address `local` (loopback only, e.g.
    /// 127.0.0.2), to look like another client.
    pub async fn tcp_from(local: IpAddr, addr: SocketAddr) -> Self {
        let socket = TcpSocket::new_v4().expect("TCP socket");
        socket
            .bind(SocketAddr::new(local, 0))
            .unwrap_or_else(|e| panic!("bind {local}:0: {e}"));
        let stream = within(
            STEP,
            "TCP connect from another address",
            socket.connect(addr),
        )
        .await
        .unwrap_or_else(|e| panic!("connect {local} → {addr}: {e}"));
        Self::new(stream)
    }

    /// TLS to `addr` (RTMPTS), trusting the test certificate.
    pub async fn tls(addr: SocketAddr) -> Self {
        Self::new(connect_rtmps(addr).await)
    }

    /// Writes `bytes` (one or several requests, or part of one).
    pub async fn write_raw(&mut self, bytes: &[u8]) {
        within(BULK, "writing a request to the gateway", async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        })
        .await
        .expect("writing to the gateway");
    }

    /// Reads the next response, waiting at most `limit`; `None` if none was
    /// complete in time (bytes read so far are kept for the next call).
    pub async fn try_read_response(&mut self, limit: Duration) -> Option<Response> {
        tokio::time::timeout(limit, self.read_next()).await.ok()
    }

    /// Reads the next response (bounded), panicking if the connection ends
    /// first.
    pub async fn read_response(&mut self) -> Response {
        match self.try_read_response(BULK).await {
            Some(r) => r,
            None => panic!(
                "no complete response within {BULK:?}; have {} bytes: {:?}",
                self.buf.len(),
                String::from_utf8_lossy(&self.buf[..self.buf.len().min(300)])
            ),
        }
    }

    /// Cancel-safe: only whole reads are appended to the buffer.
    async fn read_next(&mut self) -> Response {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match parse_response(&self.buf, self.eof) {
                Ok(Some((res, used))) => {
                    self.buf.drain(..used);
                    return res;
                }
                Ok(None) if self.eof => panic!(
                    "the gateway closed the connection before a complete response; have {} bytes: {:?}",
                    self.buf.len(),
                    String::from_utf8_lossy(&self.buf[..self.buf.len().min(300)])
                ),
                Ok(None) => {}
                Err(e) => panic!("unparsable response: {e}"),
            }
            match self.stream.read(&mut chunk).await {
                Ok(0) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!(
                    "reading a response failed: {e}; have {} bytes",
                    self.buf.len()
                ),
            }
        }
    }

    /// Writes one request and reads its response.
    pub async fn roundtrip(&mut self, req: &[u8]) -> Response {
        self.write_raw(req).await;
        self.read_response().await
    }

    /// Waits (bounded) for the gateway to close the connection; returns
    /// any bytes that came before the close.
    pub async fn read_to_close(&mut self, limit: Duration) -> Vec<u8> {
        within(limit, "the gateway to close the connection", async {
            let mut chunk = vec![0u8; 16 * 1024];
            while !self.eof {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => self.eof = true,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await;
        std::mem::take(&mut self.buf)
    }
}

// ---------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------

/// Whether `id` looks like a session id a client can put in a URL.
pub fn url_safe(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// An RTMPT session on one connection, numbering requests from 0.
pub struct Tunnel {
    /// The connection requests go out on.
    pub conn: HttpConn,
    /// The session id from `/open`.
    pub id: String,
    /// Sequence number of the next request.
    pub seq: u64,
}

impl Tunnel {
    /// Opens a session on `conn`; panics unless `/open/1` answers 200 with
    /// a URL-safe id and one `\n`.
    pub async fn open(mut conn: HttpConn) -> Self {
        let res = conn.roundtrip(&open_req()).await;
        res.expect_status(200, "/open/1");
        let id = parse_open_body(&res.body);
        Self { conn, id, seq: 0 }
    }

    /// Opens a session over a new plain connection.
    pub async fn open_tcp(addr: SocketAddr) -> Self {
        Self::open(HttpConn::tcp(addr).await).await
    }

    /// Opens a session over a new TLS connection.
    pub async fn open_tls(addr: SocketAddr) -> Self {
        Self::open(HttpConn::tls(addr).await).await
    }

    /// Takes the next sequence number.
    pub fn next_seq(&mut self) -> u64 {
        let s = self.seq;
        self.seq += 1;
        s
    }

    /// `/send` with the next sequence number; returns the raw response.
    pub async fn send_raw(&mut self, body: &[u8]) -> Response {
        let seq = self.next_seq();
        let req = send_req(&self.id, seq, body);
        self.conn.roundtrip(&req).await
    }

    /// `/idle` with the next sequence number; returns the raw response.
    pub async fn idle_raw(&mut self) -> Response {
        let seq = self.next_seq();
        let req = idle_req(&self.id, seq);
        self.conn.roundtrip(&req).await
    }

    /// `/send`, expecting 200; returns the server bytes in the reply.
    pub async fn send(&mut self, body: &[u8]) -> Vec<u8> {
        let seq = self.seq;
        self.send_raw(body)
            .await
            .data(&format!("/send seq {seq}"))
            .to_vec()
    }

    /// `/idle`, expecting 200; returns the server bytes in the reply.
    pub async fn idle(&mut self) -> Vec<u8> {
        let seq = self.seq;
        self.idle_raw()
            .await
            .data(&format!("/idle seq {seq}"))
            .to_vec()
    }

    /// `/close`, expecting 200 with the single byte 0x00.
    pub async fn close(&mut self) -> Response {
        let seq = self.next_seq();
        let req = close_req(&self.id, seq);
        let res = self.conn.roundtrip(&req).await;
        res.expect_status(200, "/close");
        assert_eq!(res.body, [0], "/close reply body");
        res
    }

    /// Polls with `/idle` until `into` holds at least `len` bytes (bounded
    /// by `limit`); panics if more than `len` arrive.
    pub async fn idle_until(&mut self, into: &mut Vec<u8>, len: usize, limit: Duration) {
        let what = format!("{len} server bytes through /idle");
        within(limit, &what, async {
            while into.len() < len {
                let data = self.idle().await;
                into.extend_from_slice(&data);
            }
        })
        .await;
        assert!(
            into.len() == len,
            "got {} server bytes, want exactly {len}",
            into.len()
        );
    }

    /// Runs the client side of the RTMP handshake through the tunnel:
    /// C0+C1 in one `/send`, S0+S1+S2 gathered by `/idle`, C2 in one
    /// `/send`. Returns C0+C1 and C2 as sent.
    pub async fn rtmp_handshake(&mut self) -> (Vec<u8>, Vec<u8>) {
        let mut c0c1 = vec![RTMP_VERSION];
        c0c1.extend_from_slice(&handshake_block(0, fresh_seed()));
        let mut got = self.send(&c0c1).await;
        self.idle_until(&mut got, 1 + 2 * HANDSHAKE_SIZE, STEP)
            .await;
        assert_eq!(got[0], RTMP_VERSION, "S0");
        assert_bytes_eq("S2 (echo of C1)", &got[1 + HANDSHAKE_SIZE..], &c0c1[1..]);
        let c2 = got[1..1 + HANDSHAKE_SIZE].to_vec();
        let extra = self.send(&c2).await;
        assert!(
            extra.is_empty(),
            "server bytes before the handshake finished"
        );
        (c0c1, c2)
    }
}

/// The session id in an `/open` reply body, checked to be exactly the id
/// and one `\n`.
#[track_caller]
pub fn parse_open_body(body: &[u8]) -> String {
    let text = std::str::from_utf8(body).expect("/open body is text");
    let id = text
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("/open body must end with one \\n: {text:?}"));
    assert!(
        url_safe(id),
        "/open id must be non-empty and URL-safe with no white space: {id:?}"
    );
    id.to_string()
}

// ---------------------------------------------------------------------------
// A live session to check that the gateway is undisturbed
// ---------------------------------------------------------------------------

/// An open tunnel and its upstream connection; [`LiveTunnel::check`] moves
/// fresh bytes both ways and checks them byte-exact.
pub struct LiveTunnel {
    /// The client side.
    pub tunnel: Tunnel,
    /// The upstream side of the same session.
    pub upstream: UpstreamConn,
    /// Everything the client has sent through `/send` so far.
    pub sent_up: Vec<u8>,
    round: u64,
}

impl LiveTunnel {
    /// Pairs a tunnel with its upstream connection (whose recording holds
    /// what the tunnel has sent so far: `sent_up`).
    pub fn new(tunnel: Tunnel, upstream: UpstreamConn, sent_up: Vec<u8>) -> Self {
        Self {
            tunnel,
            upstream,
            sent_up,
            round: 0,
        }
    }

    /// Sends bytes each way through the session and checks both arrive
    /// byte-exact (and nothing else).
    pub async fn check(&mut self, what: &str) {
        self.round += 1;
        let seed = fresh_seed();
        let up = pattern(seed, 3000 + self.round as usize);
        let early = self.tunnel.send(&up).await;
        assert!(
            early.is_empty(),
            "{what}: unexpected server bytes before the upstream sent any"
        );
        self.sent_up.extend_from_slice(&up);
        let r = self.upstream.wait_for_len(self.sent_up.len(), STEP).await;
        assert_eq!(r.end, None, "{what}: the upstream connection ended");
        assert_bytes_eq(what, &r.bytes, &self.sent_up);
        let down = pattern(!seed, 700 + self.round as usize);
        self.upstream.send(down.clone()).await;
        let mut got = Vec::new();
        self.tunnel.idle_until(&mut got, down.len(), STEP).await;
        assert_bytes_eq(what, &got, &down);
    }
}

// ---------------------------------------------------------------------------
// Upstream writing in the background
// ---------------------------------------------------------------------------

/// An upstream connection writing `data` in `chunk`-sized writes in the
/// background; [`Pusher::written`] tells how much the kernel has accepted.
pub struct Pusher {
    written: Arc<AtomicUsize>,
    task: JoinHandle<()>,
    /// Total bytes to write.
    pub total: usize,
}

impl Pusher {
    /// Starts writing `data` to the gateway through `conn`.
    pub fn start(conn: Arc<UpstreamConn>, data: Arc<Vec<u8>>, chunk: usize) -> Self {
        let written = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&written);
        let total = data.len();
        let task = tokio::spawn(async move {
            for piece in data.chunks(chunk) {
                conn.send(piece.to_vec()).await;
                counter.fetch_add(piece.len(), Ordering::SeqCst);
            }
        });
        Self {
            written,
            task,
            total,
        }
    }

    /// Bytes accepted by the upstream's socket so far.
    pub fn written(&self) -> usize {
        self.written.load(Ordering::SeqCst)
    }

    /// Waits (bounded) for every byte to be written.
    pub async fn finish(mut self) {
        within(BULK, "the upstream to write everything", &mut self.task)
            .await
            .expect("upstream writer task panicked");
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
