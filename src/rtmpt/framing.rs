//! Following HTTP/1 request framing in a pipelined byte stream, for
//! [`super::conn`]'s pipelining count.
//!
//! Owns [`Framing`]: request heads found by `httparse`, bodies skipped by
//! Content-Length without copying them. Anything else (chunked bodies,
//! heads over [`MAX_HEAD`], heads that do not parse) turns it off for good.
//! Public for the `rtmpt_framing` fuzz target.

/// Request heads larger than this are not followed, however they arrive
/// (RTMPT clients send a few hundred bytes).
pub const MAX_HEAD: usize = 16 * 1024;
/// Header lines parsed per request head; RTMPT clients send about six.
pub const MAX_HEADERS: usize = 32;

/// Where the framing follower is in the byte stream (public for the
/// `rtmpt_framing` fuzz target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// Collecting a request head.
    Head(Vec<u8>),
    /// Skipping this many body bytes.
    Body(u64),
    /// Framing not understood; counting stopped.
    Off,
}

impl Default for Framing {
    /// At the start of a request head.
    fn default() -> Self {
        Framing::Head(Vec::new())
    }
}

impl Framing {
    /// Follows `data`; returns how many request heads it completed.
    pub fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut heads = 0;
        while !data.is_empty() {
            match self {
                Framing::Off => break,
                Framing::Body(left) => {
                    let n = (*left).min(data.len() as u64);
                    *left -= n;
                    data = &data[n as usize..];
                    if *left == 0 {
                        *self = Framing::Head(Vec::new());
                    }
                }
                Framing::Head(buf) => match head_end(buf, data) {
                    None => {
                        if buf.len() + data.len() > MAX_HEAD {
                            *self = Framing::Off;
                        } else {
                            buf.extend_from_slice(data);
                        }
                        break;
                    }
                    Some(end) if buf.len() + end > MAX_HEAD => {
                        *self = Framing::Off;
                        break;
                    }
                    Some(end) => {
                        buf.extend_from_slice(&data[..end]);
                        data = &data[end..];
                        match body_length(buf) {
                            Some(len) => {
                                heads += 1;
                                *self = if len == 0 {
                                    Framing::Head(Vec::new())
                                } else {
                                    Framing::Body(len)
                                };
                            }
                            None => *self = Framing::Off,
                        }
                    }
                },
            }
        }
        heads
    }
}

/// Index in `data` just past the `\r\n\r\n` ending the head whose first
/// part is `buf`, if it is in `data`.
fn head_end(buf: &[u8], data: &[u8]) -> Option<usize> {
    const END: &[u8; 4] = b"\r\n\r\n";
    let carry = &buf[buf.len().saturating_sub(3)..];
    // A terminator straddling the previous read ends earliest: try the
    // longest carried part first.
    for from_carry in (1..=carry.len()).rev() {
        let from_data = 4 - from_carry;
        if data.len() >= from_data
            && carry[carry.len() - from_carry..] == END[..from_carry]
            && data[..from_data] == END[from_carry..]
        {
            return Some(from_data);
        }
    }
    data.windows(4).position(|w| w == END).map(|p| p + 4)
}

/// Body length of a complete request head; `None` when the framing is not
/// a plain Content-Length one (or the head does not parse).
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

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: &[u8] = b"POST /idle/abc/1 HTTP/1.1\r\nContent-Type: application/x-fcs\r\nContent-Length: 1\r\n\r\n\0";

    fn send(body: &[u8]) -> Vec<u8> {
        let mut r = format!(
            "POST /send/abc/2 HTTP/1.1\r\nContent-Type: application/x-fcs\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    }

    #[test]
    fn counts_pipelined_heads_in_one_read() {
        let mut f = Framing::Head(Vec::new());
        let mut bytes = IDLE.to_vec();
        // A body that itself contains a blank line must not count as a head.
        bytes.extend(send(b"\r\n\r\nPOST / HTTP/1.1\r\n\r\n"));
        assert_eq!(f.feed(&bytes), 2);
    }

    #[test]
    fn counts_heads_split_at_every_byte() {
        let mut bytes = IDLE.to_vec();
        bytes.extend(send(&[3u8; 300]));
        bytes.extend_from_slice(IDLE);
        let mut f = Framing::Head(Vec::new());
        let heads: u64 = bytes.chunks(1).map(|c| f.feed(c)).sum();
        assert_eq!(heads, 3);
        for split in [1, 7, 60, 83, 84, 85, 200] {
            let mut f = Framing::Head(Vec::new());
            let (a, b) = bytes.split_at(split);
            assert_eq!(f.feed(a) + f.feed(b), 3, "split at {split}");
        }
    }

    #[test]
    fn stops_counting_on_framing_it_does_not_follow() {
        let mut f = Framing::Head(Vec::new());
        let chunked =
            b"POST /send/a/1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n";
        assert_eq!(f.feed(chunked), 0);
        assert!(matches!(f, Framing::Off));
        let mut f = Framing::Head(Vec::new());
        assert_eq!(f.feed(&vec![b'a'; MAX_HEAD + 1]), 0);
        assert!(matches!(f, Framing::Off));
    }

    /// Found with the `rtmpt_framing` fuzz target's split check: a head longer than
    /// `MAX_HEAD` was followed when one read brought all of it, and not
    /// when it came in pieces.
    #[test]
    fn an_oversized_head_is_not_followed_however_it_arrives() {
        let mut head = b"POST /idle/abc/1 HTTP/1.1\r\nX-Pad: ".to_vec();
        head.resize(MAX_HEAD + 100, b'a');
        head.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
        let mut whole = Framing::Head(Vec::new());
        let mut pieces = Framing::Head(Vec::new());
        let in_pieces: u64 = head.chunks(4096).map(|c| pieces.feed(c)).sum();
        assert_eq!((whole.feed(&head), in_pieces), (0, 0));
        assert!(matches!(whole, Framing::Off));
        assert!(matches!(pieces, Framing::Off));
    }
}
