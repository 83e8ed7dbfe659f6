//! The RTMPT pipelining tracker (`rtmpt::framing::Framing`) on arbitrary
//! bytes read in input-chosen pieces. It never panics; it counts a request
//! head exactly when a whole-buffer parse of the same bytes has a complete
//! head (≤ `MAX_HEAD` bytes, plain Content-Length framing) ending within
//! the bytes fed so far, each body skipped by its Content-Length; so any
//! split gives the same count and the same final state; and it never holds
//! more than `MAX_HEAD` bytes of a head.
//!
//! Byte 0 picks the size of the reads.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rtmpgate::rtmpt::framing::{Framing, MAX_HEAD, MAX_HEADERS};

/// Body length of a head, `None` when the tracker must stop following.
fn body_length(head: &[u8]) -> Option<u64> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    let mut length = 0;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return None;
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(h.value).ok()?.trim().parse().ok()?;
        }
    }
    Some(length)
}

/// Where each request head ends in `data`, found on the whole buffer at
/// once; stops where the framing is not followed.
fn head_ends(data: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let Some(p) = data[at..].windows(4).position(|w| w == b"\r\n\r\n") else {
            break;
        };
        let end = at + p + 4;
        if end - at > MAX_HEAD {
            break;
        }
        let Some(len) = body_length(&data[at..end]) else {
            break;
        };
        assert!(end <= data.len());
        ends.push(end);
        at = end.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
    }
    ends
}

fn held(f: &Framing) -> usize {
    match f {
        Framing::Head(buf) => buf.len(),
        _ => 0,
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&split, data)) = input.split_first() else {
        return;
    };
    let piece = if split & 0x80 != 0 {
        usize::from(split & 0x7f) + 1
    } else {
        (usize::from(split) + 1) * 256
    };
    let ends = head_ends(data);
    let mut whole = Framing::default();
    assert_eq!(
        whole.feed(data),
        ends.len() as u64,
        "counted other heads than there are"
    );
    assert!(held(&whole) <= MAX_HEAD);

    let mut pieces = Framing::default();
    let (mut fed, mut count) = (0, 0u64);
    for part in data.chunks(piece) {
        count += pieces.feed(part);
        fed += part.len();
        let complete = ends.iter().take_while(|&&e| e <= fed).count() as u64;
        assert_eq!(count, complete, "heads counted after {fed} bytes");
        assert!(held(&pieces) <= MAX_HEAD, "holds {} bytes", held(&pieces));
    }
    assert_eq!(pieces, whole, "the split changed where the tracker is");
    // Past a complete parse, an Off tracker stays off.
    if whole == Framing::Off {
        assert_eq!(whole.feed(b"POST /idle/a/1 HTTP/1.1\r\n\r\n"), 0);
    }
});
