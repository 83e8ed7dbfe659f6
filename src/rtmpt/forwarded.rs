//! Which client an RTMPT request comes from when an HTTP balancer (nginx,
//! a Kubernetes Gateway) stands in between and cannot send a PROXY header.
//!
//! Owns reading `X-Forwarded-For`, and only from trusted balancers
//! (`--proxy-protocol-from`), when `--rtmpt-forwarded-for` is on: anyone
//! else could write any address into it. An entry the walk cannot read
//! (`ip:port`, a name, garbage) before it reaches the client makes the
//! whole header unbelievable: skipping it would hand the answer to the
//! entry before it, which the client itself may have written.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};

use hyper::HeaderMap;
use ipnet::IpNet;

use crate::proxy_protocol::trusted;

/// Why an `X-Forwarded-For` header from a trusted balancer was not believed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ForwardedError {
    /// The balancer appends `ip:port` (Azure Application Gateway, IIS ARR
    /// and some nginx setups do); which entry is the client's is then
    /// unknown.
    #[error(
        "X-Forwarded-For entry `{0}` has a port; configure the balancer to append the bare client address (nginx: $proxy_add_x_forwarded_for, not $remote_addr:$remote_port)"
    )]
    HasPort(String),
    /// Not an address at all (`unknown`, a host name, an obfuscated id).
    #[error(
        "X-Forwarded-For entry `{0}` is not an IP address; configure the balancer to append the client's address"
    )]
    Invalid(String),
}

/// Set once the first refused header has been logged at `warn`: a
/// misconfigured balancer would otherwise log on every request.
static WARNED: AtomicBool = AtomicBool::new(false);

/// The client behind `peer`: the rightmost `X-Forwarded-For` address that
/// is not itself a trusted balancer (earlier entries could be forged by the
/// client), when `peer` is trusted; else `peer` itself. A header that
/// cannot be read up to the client ([`chain_client`] errs) is not
/// believed: the answer is `peer`, and the reason is logged.
pub fn client(peer: SocketAddr, headers: &HeaderMap, trusted_ranges: &[IpNet]) -> SocketAddr {
    if !trusted(peer.ip(), trusted_ranges) {
        return peer;
    }
    match chain_client(headers, trusted_ranges) {
        Ok(Some(ip)) => SocketAddr::new(ip, 0),
        Ok(None) => peer,
        Err(err) => {
            if !WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(%err, balancer = %peer, "X-Forwarded-For not believed; the balancer's own address stands for the client (further ones logged at debug)");
            } else {
                tracing::debug!(%err, balancer = %peer, "X-Forwarded-For not believed");
            }
            peer
        }
    }
}

/// Walks the `X-Forwarded-For` entries from the right (the nearest hop)
/// past trusted balancers to the first other address: the client. When
/// every entry is a trusted balancer, the leftmost one. `Ok(None)` when
/// the header is absent.
pub fn chain_client(
    headers: &HeaderMap,
    trusted_ranges: &[IpNet],
) -> Result<Option<IpAddr>, ForwardedError> {
    let mut entries = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        // hyper allows opaque bytes in a value; a balancer writes text.
        let text = value.to_str().map_err(|_| {
            ForwardedError::Invalid(String::from_utf8_lossy(value.as_bytes()).into())
        })?;
        entries.extend(text.split(',').map(str::trim));
    }
    let mut leftmost = None;
    for entry in entries.iter().rev() {
        let ip: IpAddr = match entry.parse() {
            Ok(ip) => ip,
            Err(_) if entry.parse::<SocketAddr>().is_ok() => {
                return Err(ForwardedError::HasPort((*entry).to_owned()));
            }
            Err(_) => return Err(ForwardedError::Invalid((*entry).to_owned())),
        };
        if !trusted(ip, trusted_ranges) {
            return Ok(Some(ip));
        }
        leftmost = Some(ip);
    }
    Ok(leftmost)
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

    #[test]
    fn an_ip_port_entry_is_refused_not_skipped() {
        let lb: SocketAddr = "10.1.1.1:5000".parse().unwrap();
        // The client forged 6.6.6.6; the balancer appended the real client
        // with its port. Skipping that entry would believe the forgery.
        for real in ["203.0.113.5:4711", "[2001:db8::5]:4711"] {
            let h = headers(&["6.6.6.6", real]);
            assert_eq!(client(lb, &h, &ranges()), lb, "{real}");
            let err = chain_client(&h, &ranges()).unwrap_err();
            assert_eq!(err, ForwardedError::HasPort(real.into()));
            assert!(err.to_string().contains("bare client address"), "{err}");
        }
        let h = headers(&["6.6.6.6, unknown"]);
        assert_eq!(client(lb, &h, &ranges()), lb);
        assert!(matches!(
            chain_client(&h, &ranges()),
            Err(ForwardedError::Invalid(_))
        ));
        // Junk left of the client is the client's own doing: ignored.
        let h = headers(&["junk:1, 203.0.113.5", "10.2.2.2"]);
        assert_eq!(client(lb, &h, &ranges()).ip().to_string(), "203.0.113.5");
    }
}
