//! HAProxy's PROXY protocol, both ways.
//!
//! Owns writing a v1 or v2 header towards the upstream (so nginx-rtmp, SRS
//! and others see the real client address) and reading one from a trusted
//! load balancer on a listener (`?proxy_protocol=1`). Parsing and encoding
//! are the `ppp` crate's; this module adds the read loop, its size cap and
//! deadline, and the trust check.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ipnet::IpNet;
use ppp::{PartialResult, v1, v2};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Longest header accepted: a v1 line is at most 107 bytes; v2 may carry
/// TLVs, but a load balancer's fit easily in this.
const MAX_HEADER: usize = 1024;

/// Load balancer addresses trusted by default: loopback only (a balancer
/// on the same host). Private ranges are not trusted by default: any host
/// in them (another tenant's pod, a compromised box on the LAN) could then
/// claim any client address, in logs, per-client caps and the PROXY header
/// sent upstream. Operators name their balancers (`--proxy-protocol-from`).
pub const DEFAULT_TRUSTED: &[&str] = &["127.0.0.0/8", "::1/128"];

/// Why a `--proxy-protocol-from` entry was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SourceError {
    /// An address with a port (`10.0.0.5:8080`): trust is per address, and
    /// silently dropping the port (or the entry) would trust the wrong set.
    #[error(
        "`{0}` has a port; name the balancer's address or range without one (e.g. 10.0.0.5 or 10.0.0.0/24)"
    )]
    HasPort(String),
    /// Neither an address nor a CIDR range.
    #[error("`{0}` is not an IP address or CIDR range (e.g. 10.0.0.5 or 10.0.0.0/24)")]
    Invalid(String),
}

/// Parses one trusted source: a CIDR range, or one address (a /32 or /128).
pub fn parse_source(text: &str) -> Result<IpNet, SourceError> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    if text.parse::<SocketAddr>().is_ok() {
        return Err(SourceError::HasPort(text.to_owned()));
    }
    Err(SourceError::Invalid(text.to_owned()))
}

/// Which PROXY protocol header to send upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyVersion {
    /// Text header (`PROXY TCP4 …\r\n`); the only one nginx-rtmp parses.
    V1,
    /// Binary header.
    V2,
}

/// Encodes the header announcing a connection from `client` to `local`.
pub fn encode(version: ProxyVersion, client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let (client, local) = same_family(client, local);
    match version {
        ProxyVersion::V1 => v1::Addresses::from((client, local))
            .to_string()
            .into_bytes(),
        ProxyVersion::V2 => v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Proxy,
            v2::Protocol::Stream,
            (client, local),
        )
        .build()
        .expect("a v2 header without TLVs always builds"),
    }
}

/// A header needs both addresses in one family; map IPv4 into IPv6 when
/// they differ (a dual-stack listener).
fn same_family(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    let v6 = |s: SocketAddr| match s.ip() {
        IpAddr::V4(ip) => SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), s.port()),
        IpAddr::V6(_) => s,
    };
    if a.is_ipv4() == b.is_ipv4() {
        (a, b)
    } else {
        (v6(a), v6(b))
    }
}

/// Why a PROXY header was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyError {
    /// The sender is not in the trusted ranges.
    #[error(
        "PROXY header from {0}, which is not a trusted load balancer (see --proxy-protocol-from)"
    )]
    Untrusted(IpAddr),
    /// No complete header in time.
    #[error("no PROXY header within {0:?}; the listener expects one (…?proxy_protocol=1)")]
    Timeout(Duration),
    /// The bytes are not a PROXY header.
    #[error("invalid PROXY header: {0}")]
    Invalid(String),
    /// The connection closed before a complete header.
    #[error("connection closed inside the PROXY header")]
    Closed,
}

impl ProxyError {
    /// Label for metrics and close reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Untrusted(_) => "proxy_untrusted",
            Self::Timeout(_) => "proxy_header_timeout",
            Self::Invalid(_) => "proxy_header_invalid",
            Self::Closed => "client_gone_early",
        }
    }
}

/// The outcome of reading a PROXY header.
#[derive(Debug)]
pub struct Received {
    /// The client's address as the load balancer saw it; `None` for
    /// `UNKNOWN`/`LOCAL` (health checks), where the socket's peer stands.
    pub client: Option<SocketAddr>,
    /// Bytes read past the header: the start of the client's own stream.
    pub rest: Bytes,
}

/// Whether `peer` may send PROXY headers.
pub fn trusted(peer: IpAddr, ranges: &[IpNet]) -> bool {
    let peer = match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(peer),
        v4 => v4,
    };
    ranges.iter().any(|r| r.contains(&peer))
}

/// Reads a PROXY v1 or v2 header from `stream` within `deadline`.
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    deadline: Duration,
) -> Result<Received, ProxyError> {
    let mut buf = BytesMut::with_capacity(256);
    let read = async {
        loop {
            if stream
                .read_buf(&mut buf)
                .await
                .map_err(|_| ProxyError::Closed)?
                == 0
            {
                return Err(ProxyError::Closed);
            }
            if let Some(done) = parse(&mut buf)? {
                return Ok(done);
            }
            if buf.len() >= MAX_HEADER {
                return Err(ProxyError::Invalid("header too long".into()));
            }
        }
    };
    tokio::time::timeout(deadline, read)
        .await
        .unwrap_or(Err(ProxyError::Timeout(deadline)))
}

/// Every v1 header starts with this.
const V1_PREFIX: &[u8] = b"PROXY ";
/// Longest v1 header, CRLF included (the spec's bound).
const V1_MAX: usize = 107;
/// Every v2 header starts with this signature.
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// Parses a header at the start of `buf`; `Ok(None)` while incomplete.
///
/// The v1 line is framed here, by its CRLF, before it is parsed: a parser
/// given a line cut by a TCP read boundary (say after the source port)
/// could refuse a valid header or accept a shorter one.
pub fn parse(buf: &mut BytesMut) -> Result<Option<Received>, ProxyError> {
    let is_prefix = |sig: &[u8]| buf.starts_with(sig) || sig.starts_with(buf);
    let (len, client) = if is_prefix(V2_SIGNATURE) {
        let res = v2::Header::try_from(&buf[..]);
        if res.is_incomplete() {
            return Ok(None);
        }
        match res {
            Err(e) => return Err(ProxyError::Invalid(e.to_string())),
            Ok(h) => (h.len(), v2_client(&h)),
        }
    } else if is_prefix(V1_PREFIX) {
        let window = &buf[..buf.len().min(V1_MAX)];
        let Some(end) = window.windows(2).position(|w| w == b"\r\n").map(|p| p + 2) else {
            if buf.len() >= V1_MAX {
                return Err(ProxyError::Invalid(
                    "v1 header longer than 107 bytes".into(),
                ));
            }
            return Ok(None);
        };
        // A v1 line is plain ASCII with one CR, at its end. Checked here so
        // the parser never sees anything else (it would slice the line at
        // the first CR, inside a multi-byte character).
        let body = &buf[..end - 2];
        if !body.is_ascii() || body.contains(&b'\r') {
            return Err(ProxyError::Invalid(
                "v1 header is not one ASCII line".into(),
            ));
        }
        let line = std::str::from_utf8(&buf[..end]).expect("checked ASCII");
        let h = v1::Header::try_from(line).map_err(|e| ProxyError::Invalid(e.to_string()))?;
        (end, v1_client(&h))
    } else {
        return Err(ProxyError::Invalid(
            "does not start like a PROXY header".into(),
        ));
    };
    let rest = buf.split_off(len).freeze();
    Ok(Some(Received { client, rest }))
}

fn v1_client(h: &v1::Header<'_>) -> Option<SocketAddr> {
    match h.addresses {
        v1::Addresses::Tcp4(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        v1::Addresses::Tcp6(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        v1::Addresses::Unknown => None,
    }
}

fn v2_client(h: &v2::Header<'_>) -> Option<SocketAddr> {
    match (h.command, h.addresses) {
        (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
            Some(SocketAddr::new(a.source_address.into(), a.source_port))
        }
        (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
            Some(SocketAddr::new(a.source_address.into(), a.source_port))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> (SocketAddr, SocketAddr) {
        (
            "203.0.113.7:51000".parse().unwrap(),
            "10.0.0.2:1935".parse().unwrap(),
        )
    }

    #[test]
    fn v1_bytes_are_exact() {
        let (c, l) = addrs();
        assert_eq!(
            encode(ProxyVersion::V1, c, l),
            b"PROXY TCP4 203.0.113.7 10.0.0.2 51000 1935\r\n"
        );
        let c6: SocketAddr = "[2001:db8::1]:4000".parse().unwrap();
        assert_eq!(
            encode(ProxyVersion::V1, c6, l),
            b"PROXY TCP6 2001:db8::1 ::ffff:10.0.0.2 4000 1935\r\n"
        );
    }

    #[test]
    fn v2_bytes_are_exact() {
        let (c, l) = addrs();
        let h = encode(ProxyVersion::V2, c, l);
        let mut want = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        want.extend_from_slice(&[0x21, 0x11, 0, 12]);
        want.extend_from_slice(&[203, 0, 113, 7, 10, 0, 0, 2]);
        want.extend_from_slice(&51000u16.to_be_bytes());
        want.extend_from_slice(&1935u16.to_be_bytes());
        assert_eq!(h, want);
    }

    #[test]
    fn parses_both_versions_and_keeps_what_follows() {
        let (c, l) = addrs();
        for v in [ProxyVersion::V1, ProxyVersion::V2] {
            let mut buf = BytesMut::from(&encode(v, c, l)[..]);
            buf.extend_from_slice(b"\x03rest");
            let got = parse(&mut buf).unwrap().unwrap();
            assert_eq!(got.client, Some(c));
            assert_eq!(&got.rest[..], b"\x03rest");
        }
        let mut partial = BytesMut::from(&b"PROXY TCP4 1.2"[..]);
        assert!(parse(&mut partial).unwrap().is_none());
        let mut junk = BytesMut::from(&b"\x03\x00\x00\x00 not a proxy header\r\n"[..]);
        assert!(parse(&mut junk).is_err());
        // Found by fuzzing: a stray CR before a multi-byte character made
        // the v1 parser slice inside the character and panic.
        let mut stray =
            BytesMut::from(&b"PROXY TCP6 2001:4000 1935\r\xd0\xb0R.0.113.5 1 2\r\n"[..]);
        assert!(parse(&mut stray).is_err());
    }

    #[test]
    fn a_header_cut_at_any_read_boundary_waits_for_the_rest() {
        let (c, l) = addrs();
        let c6: SocketAddr = "[2001:db8::1]:4000".parse().unwrap();
        for (v, src) in [
            (ProxyVersion::V1, c),
            (ProxyVersion::V1, c6),
            (ProxyVersion::V2, c),
            (ProxyVersion::V2, c6),
        ] {
            let header = encode(v, src, l);
            for cut in 1..header.len() {
                let mut buf = BytesMut::from(&header[..cut]);
                assert!(
                    parse(&mut buf).unwrap().is_none(),
                    "{v:?} cut at {cut} of {}",
                    header.len()
                );
                buf.extend_from_slice(&header[cut..]);
                buf.extend_from_slice(b"\x03");
                let got = parse(&mut buf).unwrap().unwrap();
                assert_eq!(got.client.map(|a| a.port()), Some(src.port()));
                assert_eq!(&got.rest[..], b"\x03");
            }
        }
    }

    #[test]
    fn default_trust_is_loopback_only() {
        let ranges: Vec<IpNet> = DEFAULT_TRUSTED.iter().map(|r| r.parse().unwrap()).collect();
        assert!(trusted("127.0.0.1".parse().unwrap(), &ranges));
        assert!(trusted("::1".parse().unwrap(), &ranges));
        assert!(trusted("::ffff:127.0.0.1".parse().unwrap(), &ranges));
        // Private ranges must be named by the operator: any host there
        // could otherwise claim any client address.
        for private in ["10.1.2.3", "172.16.0.9", "192.168.1.1", "fd00::1"] {
            assert!(
                !trusted(private.parse().unwrap(), &ranges),
                "{private} trusted by default"
            );
        }
        assert!(!trusted("203.0.113.7".parse().unwrap(), &ranges));
    }

    #[test]
    fn sources_are_ranges_or_addresses_never_ip_port() {
        assert_eq!(
            parse_source("10.0.0.0/8"),
            Ok("10.0.0.0/8".parse().unwrap())
        );
        assert_eq!(parse_source("10.0.0.5"), Ok("10.0.0.5/32".parse().unwrap()));
        assert_eq!(parse_source(" ::1 "), Ok("::1/128".parse().unwrap()));
        for with_port in ["10.0.0.5:8080", "[::1]:443"] {
            let err = parse_source(with_port).unwrap_err();
            assert_eq!(err, SourceError::HasPort(with_port.into()));
            assert!(err.to_string().contains("without one"), "{err}");
        }
        assert!(matches!(
            parse_source("lb.example"),
            Err(SourceError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn read_header_times_out_on_silence() {
        let (_keep, mut rx) = tokio::io::duplex(64);
        let err = read_header(&mut rx, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "proxy_header_timeout");
    }
}
