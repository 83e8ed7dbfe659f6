//! `rtmpt::forwarded::client` on arbitrary X-Forwarded-For values: never
//! panics; an untrusted peer is always returned unchanged; otherwise the
//! answer is the peer itself or an address that appears in the headers
//! (the peer when an entry between it and the client cannot be read).
//!
//! Input: byte 0 picks the peer (trusted or not, v4 or v6), the rest is split
//! on '\n' into header values (each value that `HeaderValue::from_bytes`
//! refuses is skipped, as hyper would refuse the request).

#![no_main]

use std::net::{IpAddr, SocketAddr};

use hyper::HeaderMap;
use hyper::header::HeaderValue;
use libfuzzer_sys::fuzz_target;
use rtmpgate::proxy_protocol::{DEFAULT_TRUSTED, trusted};
use rtmpgate::rtmpt::forwarded::client;

const PEERS: [&str; 4] = [
    "127.0.0.1:5000",
    "198.51.100.1:5000",
    "[::1]:5000",
    "[::ffff:127.0.0.1]:5000",
];

fuzz_target!(|input: &[u8]| {
    let Some((&pick, data)) = input.split_first() else {
        return;
    };
    let ranges: Vec<_> = DEFAULT_TRUSTED
        .iter()
        .map(|r| r.parse().expect("default ranges parse"))
        .collect();
    let peer: SocketAddr = PEERS[usize::from(pick) % PEERS.len()].parse().unwrap();
    let mut headers = HeaderMap::new();
    let mut values = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            values.push(v.clone());
            headers.append("x-forwarded-for", v);
        }
    }
    // Unrelated headers must not matter.
    if pick & 0x80 != 0 {
        headers.append("forwarded", HeaderValue::from_static("for=203.0.113.9"));
        headers.append("x-real-ip", HeaderValue::from_static("203.0.113.9"));
    }

    let got = client(peer, &headers, &ranges);
    if !trusted(peer.ip(), &ranges) {
        assert_eq!(got, peer, "an untrusted peer's header was believed");
        return;
    }
    if got == peer {
        return;
    }
    assert_eq!(got.port(), 0);
    let listed: Vec<IpAddr> = values
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    assert!(listed.contains(&got.ip()), "{got} is not in the header");
    // If any listed hop is untrusted, the answer is one of them.
    if listed.iter().any(|ip| !trusted(*ip, &ranges)) {
        assert!(!trusted(got.ip(), &ranges), "{got} is a trusted hop");
    }
});
