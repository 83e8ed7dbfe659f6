//! Which client an RTMPT request comes from when an HTTP balancer (nginx,
//! a Kubernetes Gateway) stands in between and cannot send a PROXY header.
//!
//! Owns reading `X-Forwarded-For`, and only from trusted balancers
//! (`--proxy-protocol-from`), when `--rtmpt-forwarded-for` is on: anyone
//! else could write any address into it.

use std::net::{IpAddr, SocketAddr};

use hyper::HeaderMap;
use ipnet::IpNet;

use crate::proxy_protocol::trusted;

/// The client behind `peer`: the rightmost `X-Forwarded-For` address that
/// is not itself a trusted balancer (earlier entries could be forged by the
/// client), when `peer` is trusted; else `peer` itself.
pub fn client(peer: SocketAddr, headers: &HeaderMap, trusted_ranges: &[IpNet]) -> SocketAddr {
    if !trusted(peer.ip(), trusted_ranges) {
        return peer;
    }
    let chain: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    chain
        .iter()
        .rev()
        .find(|ip| !trusted(**ip, trusted_ranges))
        .or(chain.first())
        .map(|ip| SocketAddr::new(*ip, 0))
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges() -> Vec<IpNet> {
        vec![
            "10.0.0.0/8".parse().unwrap(),
            "127.0.0.0/8".parse().unwrap(),
        ]
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn believes_only_trusted_balancers() {
        let lb: SocketAddr = "10.1.1.1:5000".parse().unwrap();
        let stranger: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        let h = headers(&["203.0.113.5"]);
        assert_eq!(client(lb, &h, &ranges()).ip().to_string(), "203.0.113.5");
        assert_eq!(client(stranger, &h, &ranges()), stranger);
        assert_eq!(client(lb, &HeaderMap::new(), &ranges()), lb);
    }

    #[test]
    fn takes_the_rightmost_untrusted_hop() {
        let lb: SocketAddr = "10.1.1.1:5000".parse().unwrap();
        // The client forged the first entry; a second balancer added one.
        let h = headers(&["1.2.3.4, 203.0.113.5", "10.2.2.2"]);
        assert_eq!(client(lb, &h, &ranges()).ip().to_string(), "203.0.113.5");
        let all_internal = headers(&["10.3.3.3, 10.2.2.2"]);
        assert_eq!(
            client(lb, &all_internal, &ranges()).ip().to_string(),
            "10.3.3.3"
        );
        let garbage = headers(&["not-an-address"]);
        assert_eq!(client(lb, &garbage, &ranges()), lb);
    }
}
