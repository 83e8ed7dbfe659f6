//! RTMPT HTTP responses, byte for byte what real clients parse.
//!
//! Owns status codes, headers and bodies. librtmp parses replies by hand and
//! case-sensitively (`HTTP/1.1 200 `, `Content-Length: N`), so every reply
//! has a known length (never chunked) and the connection is set to write
//! title-case header names. Bodies are two `Bytes` chained: the delay byte
//! and the server bytes, without copying the latter.

use bytes::buf::Chain;
use bytes::{Buf, Bytes};
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::command::{RefuseReason, Reply};

/// Body of every RTMPT response.
pub type ReplyBody = Full<Chain<Bytes, Bytes>>;

const FCS: HeaderValue = HeaderValue::from_static("application/x-fcs");
const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");

fn build(status: StatusCode, head: Bytes, tail: Bytes) -> Response<ReplyBody> {
    let mut res = Response::new(Full::new(head.chain(tail)));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, FCS);
    h.insert(header::CACHE_CONTROL, NO_CACHE);
    res
}

/// Header carrying the new session id on `/open` replies, so a balancer can
/// learn stickiness from it (HAProxy `stick store-response`).
pub const SESSION_HEADER: &str = "x-rtmpt-session";

/// 200 to `/open/1`: the id and exactly one `\n`, no delay byte (librtmp
/// takes Content-Length − 1 bytes as the id; ffmpeg trims white space).
pub fn opened(id: &str) -> Response<ReplyBody> {
    let mut body = Vec::with_capacity(id.len() + 1);
    body.extend_from_slice(id.as_bytes());
    body.push(b'\n');
    let mut res = build(StatusCode::OK, Bytes::from(body), Bytes::new());
    if let Ok(value) = HeaderValue::from_str(id) {
        res.headers_mut().insert(SESSION_HEADER, value);
    }
    res
}

/// The reply a session gave, as HTTP.
pub fn from_session(reply: Reply) -> Response<ReplyBody> {
    match reply {
        Reply::Data { delay, data } => {
            build(StatusCode::OK, Bytes::copy_from_slice(&[delay]), data)
        }
        Reply::Closed => build(StatusCode::OK, Bytes::from_static(&[0]), Bytes::new()),
        Reply::Refused(RefuseReason::Stale) => error(
            StatusCode::BAD_REQUEST,
            "sequence number already used and not the last one",
        ),
        Reply::Refused(RefuseReason::TooFarAhead) => error(
            StatusCode::BAD_REQUEST,
            "sequence number too far ahead of the session",
        ),
        Reply::Refused(RefuseReason::AlreadyQueued) => error(
            StatusCode::CONFLICT,
            "this sequence number is already pending",
        ),
        Reply::Gone => error(StatusCode::NOT_FOUND, "session is over"),
    }
}

/// An error reply with a one-line explanation for whoever reads it.
pub fn error(status: StatusCode, why: &'static str) -> Response<ReplyBody> {
    let mut res = build(
        status,
        Bytes::from_static(why.as_bytes()),
        Bytes::from_static(b"\n"),
    );
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
    res
}

/// 429 to an `/open` over its client's rate, with `Retry-After` (whole
/// seconds, at least 1).
pub fn rate_limited(retry_after: std::time::Duration) -> Response<ReplyBody> {
    let mut res = error(
        StatusCode::TOO_MANY_REQUESTS,
        "too many RTMPT sessions opened from this address: wait (Retry-After) and reuse a session",
    );
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_bytes(res: Response<ReplyBody>) -> Vec<u8> {
        res.into_body().collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn open_reply_is_id_and_newline() {
        let res = opened("abc");
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "application/x-fcs");
        assert_eq!(res.headers()[SESSION_HEADER], "abc");
        assert_eq!(body_bytes(res).await, b"abc\n");
    }

    #[tokio::test]
    async fn data_reply_starts_with_delay_byte() {
        let res = from_session(Reply::Data {
            delay: 3,
            data: Bytes::from_static(b"rtmp"),
        });
        assert_eq!(body_bytes(res).await, b"\x03rtmp");
        assert_eq!(body_bytes(from_session(Reply::Closed)).await, b"\x00");
    }

    #[test]
    fn rate_limited_rounds_retry_after_up_to_whole_seconds() {
        let res = rate_limited(std::time::Duration::from_millis(100));
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers()["retry-after"], "1");
        let res = rate_limited(std::time::Duration::from_millis(2001));
        assert_eq!(res.headers()["retry-after"], "3");
    }
}
