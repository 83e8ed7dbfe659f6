//! PROXY protocol v1/v2 headers: `proxy_protocol::parse` on arbitrary bytes.
//!
//! Byte 0 picks where the rest is split. No panic; if the whole input parses
//! as a complete header, the first piece alone is incomplete or the same
//! header, and feeding both pieces gives the same result with `rest` exactly
//! the bytes after the header. Also: `encode` of addresses built from the
//! input parses back to the client address.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rtmpgate::proxy_protocol::{ProxyError, ProxyVersion, Received, encode, parse};

fn run(bytes: &[u8]) -> (Result<Option<Received>, ProxyError>, BytesMut) {
    let mut buf = BytesMut::from(bytes);
    let r = parse(&mut buf);
    (r, buf)
}

fn addr(bytes: &[u8], v6: bool) -> SocketAddr {
    let mut b = [0u8; 18];
    let n = bytes.len().min(18);
    b[..n].copy_from_slice(&bytes[..n]);
    let port = u16::from_be_bytes([b[16], b[17]]);
    let ip: IpAddr = if v6 {
        Ipv6Addr::from(<[u8; 16]>::try_from(&b[..16]).unwrap()).into()
    } else {
        Ipv4Addr::new(b[0], b[1], b[2], b[3]).into()
    };
    SocketAddr::new(ip, port)
}

fn round_trip(pick: u8, data: &[u8]) {
    let version = if pick & 1 == 0 {
        ProxyVersion::V1
    } else {
        ProxyVersion::V2
    };
    let a = addr(data, pick & 2 != 0);
    let b = addr(data.get(18..).unwrap_or_default(), pick & 4 != 0);
    let mut header = encode(version, a, b);
    let tail = data.get(36..).unwrap_or_default();
    header.extend_from_slice(tail);
    let (r, _) = run(&header);
    let got = r
        .unwrap_or_else(|e| panic!("{version:?} header for {a} {b} refused: {e}"))
        .unwrap_or_else(|| panic!("{version:?} header for {a} {b} incomplete"));
    let got_client = got.client.expect("an encoded header carries the client");
    // Mixed families are sent as v4-mapped v6.
    let want = if a.is_ipv4() != b.is_ipv4() {
        match a.ip() {
            IpAddr::V4(v4) => SocketAddr::new(v4.to_ipv6_mapped().into(), a.port()),
            IpAddr::V6(_) => a,
        }
    } else {
        a
    };
    assert_eq!(got_client, want, "{version:?} round trip");
    assert_eq!(&got.rest[..], tail);
}

fuzz_target!(|input: &[u8]| {
    let Some((&pick, data)) = input.split_first() else {
        return;
    };
    round_trip(pick, data);

    let (whole, _) = run(data);
    let Ok(Some(whole)) = whole else {
        return;
    };
    assert!(data.ends_with(&whole.rest));
    let header_len = data.len() - whole.rest.len();
    assert!(header_len > 0);

    let at = usize::from(pick) % (data.len() + 1);
    let (first, _) = run(&data[..at]);
    match first {
        Ok(None) => {
            // Incomplete: the caller keeps reading and parses everything.
            let (again, _) = run(data);
            let again = again.expect("same bytes").expect("complete");
            assert_eq!(again.client, whole.client);
            assert_eq!(again.rest, whole.rest);
        }
        Ok(Some(early)) => {
            // The header already fits in the first piece.
            assert!(at >= header_len, "parsed from {at} of {header_len} bytes");
            assert_eq!(early.client, whole.client);
            assert_eq!(&early.rest[..], &data[header_len..at]);
        }
        Err(e) => {
            panic!("the first {at} bytes of a valid {header_len}-byte header were refused: {e}")
        }
    }
});
