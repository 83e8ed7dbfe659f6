//! Listener and upstream addresses written as URLs (`rtmps://0.0.0.0:8443`).
//!
//! Owns the URL grammar only: scheme, host and port. It does not resolve
//! names (the upstream module does that at connect time, so DNS changes are
//! picked up) and it does not bind sockets (the listener module does).

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// What a listener speaks on the wire before any sniffing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenScheme {
    /// Plain TCP: serves RTMP (and RTMPT, which is sniffed from `POST`).
    Rtmp,
    /// TLS: serves RTMPS (and RTMPTS, sniffed after the TLS handshake).
    Rtmps,
    /// Plain TCP, HTTP tunnel only.
    Rtmpt,
    /// TLS, HTTP tunnel only.
    Rtmpts,
}

impl ListenScheme {
    /// Whether connections on this listener start with a TLS handshake.
    pub fn is_tls(self) -> bool {
        matches!(self, Self::Rtmps | Self::Rtmpts)
    }

    /// The scheme as written in a URL, also used as a log and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rtmp => "rtmp",
            Self::Rtmps => "rtmps",
            Self::Rtmpt => "rtmpt",
            Self::Rtmpts => "rtmpts",
        }
    }
}

impl fmt::Display for ListenScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A listener: where to bind and what to expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenUrl {
    /// Protocol family accepted on this socket.
    pub scheme: ListenScheme,
    /// Local address to bind (port 0 picks a free port, as tests do).
    pub addr: SocketAddr,
    /// Every connection starts with a PROXY protocol header from a trusted
    /// load balancer (`?proxy_protocol=1`).
    pub proxy_protocol: bool,
}

impl fmt::Display for ListenUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.addr)?;
        if self.proxy_protocol {
            f.write_str("?proxy_protocol=1")?;
        }
        Ok(())
    }
}

/// How rtmpgate talks to the upstream server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamScheme {
    /// Plain RTMP over TCP.
    Rtmp,
    /// RTMP over TLS.
    Rtmps,
}

/// The RTMP server that every stream is relayed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// Wire protocol towards the upstream.
    pub scheme: UpstreamScheme,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// TCP port (default 1935).
    pub port: u16,
}

impl UpstreamUrl {
    /// `host:port` in the form `tokio::net::lookup_host` accepts.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            UpstreamScheme::Rtmp => "rtmp",
            UpstreamScheme::Rtmps => "rtmps",
        };
        write!(f, "{scheme}://{}", self.authority())
    }
}

/// Why a URL was refused. Each message says what a valid one looks like.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    /// The text has no `scheme://` prefix.
    #[error("`{0}` is not a URL: write it as scheme://host:port, e.g. rtmps://0.0.0.0:8443")]
    NoScheme(String),
    /// A scheme this side does not serve.
    #[error("unsupported scheme `{scheme}` in `{url}`: use one of {allowed}")]
    Scheme {
        /// The URL as given.
        url: String,
        /// The scheme found.
        scheme: String,
        /// The schemes that are accepted here.
        allowed: &'static str,
    },
    /// Host or port is missing or malformed.
    #[error("bad address in `{url}`: {why}")]
    Address {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// Splits `scheme://authority[/path]` into scheme, host and optional port.
fn split(url: &str) -> Result<(&str, &str, Option<&str>), UrlError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| UrlError::NoScheme(url.to_owned()))?;
    // A trailing path (rtmp://host/live) is tolerated and ignored: operators
    // paste publish URLs; the app name travels inside RTMP, not here.
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let bad = |why| UrlError::Address {
        url: url.to_owned(),
        why,
    };
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("unclosed `[` in IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| bad("expected `:port` after `]`"))?,
            ),
        };
        return Ok((scheme, host, port));
    }
    match authority.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => {
            Err(bad("IPv6 addresses must be in brackets, e.g. [::1]:1935"))
        }
        Some((host, port)) => Ok((scheme, host, Some(port))),
        None => Ok((scheme, authority, None)),
    }
}

fn parse_port(url: &str, port: Option<&str>, default: u16) -> Result<u16, UrlError> {
    match port {
        None => Ok(default),
        Some(p) => p.parse().map_err(|_| UrlError::Address {
            url: url.to_owned(),
            why: "port must be a number from 0 to 65535",
        }),
    }
}

impl FromStr for ListenUrl {
    type Err = UrlError;

    fn from_str(url: &str) -> Result<Self, UrlError> {
        let (scheme, host, port) = split(url)?;
        let (scheme, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "rtmp" => (ListenScheme::Rtmp, 1935),
            "rtmps" => (ListenScheme::Rtmps, 443),
            "rtmpt" => (ListenScheme::Rtmpt, 80),
            "rtmpts" => (ListenScheme::Rtmpts, 443),
            _ => {
                return Err(UrlError::Scheme {
                    url: url.to_owned(),
                    scheme: scheme.to_owned(),
                    allowed: "rtmp, rtmps, rtmpt, rtmpts",
                });
            }
        };
        let port = parse_port(url, port, default_port)?;
        let ip = match host {
            "" | "*" => std::net::Ipv6Addr::UNSPECIFIED.into(),
            "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
            h => h.parse().map_err(|_| UrlError::Address {
                url: url.to_owned(),
                why: "a listen address must be an IP literal such as 0.0.0.0 or [::]",
            })?,
        };
        let proxy_protocol = match url.split_once('?').map(|(_, q)| q) {
            None => false,
            Some("proxy_protocol=1" | "proxy_protocol=true") => true,
            Some("proxy_protocol=0" | "proxy_protocol=false") => false,
            Some(_) => {
                return Err(UrlError::Address {
                    url: url.to_owned(),
                    why: "the only listener option is ?proxy_protocol=1",
                });
            }
        };
        Ok(Self {
            scheme,
            addr: SocketAddr::new(ip, port),
            proxy_protocol,
        })
    }
}

impl FromStr for UpstreamUrl {
    type Err = UrlError;

    fn from_str(url: &str) -> Result<Self, UrlError> {
        let (scheme, host, port) = split(url)?;
        let (scheme, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "rtmp" => (UpstreamScheme::Rtmp, 1935),
            "rtmps" => (UpstreamScheme::Rtmps, 443),
            _ => {
                return Err(UrlError::Scheme {
                    url: url.to_owned(),
                    scheme: scheme.to_owned(),
                    allowed: "rtmp, rtmps",
                });
            }
        };
        if host.is_empty() {
            return Err(UrlError::Address {
                url: url.to_owned(),
                why: "the upstream host is empty",
            });
        }
        Ok(Self {
            scheme,
            host: host.to_owned(),
            port: parse_port(url, port, default_port)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_urls() {
        let l: ListenUrl = "rtmps://0.0.0.0:8443".parse().unwrap();
        assert_eq!(l.scheme, ListenScheme::Rtmps);
        assert_eq!(l.addr, "0.0.0.0:8443".parse().unwrap());
        let l: ListenUrl = "rtmp://[::1]".parse().unwrap();
        assert_eq!(l.addr, "[::1]:1935".parse().unwrap());
        let l: ListenUrl = "RTMPT://127.0.0.1:0/".parse().unwrap();
        assert_eq!(l.scheme, ListenScheme::Rtmpt);
        assert_eq!(l.to_string(), "rtmpt://127.0.0.1:0");
        assert!(!l.proxy_protocol);
        let l: ListenUrl = "rtmp://0.0.0.0:1935?proxy_protocol=1".parse().unwrap();
        assert!(l.proxy_protocol);
        assert_eq!(l.addr.port(), 1935);
        assert_eq!(l.to_string(), "rtmp://0.0.0.0:1935?proxy_protocol=1");
        assert!("rtmp://0.0.0.0:1935?tls=1".parse::<ListenUrl>().is_err());
    }

    #[test]
    fn upstream_urls() {
        let u: UpstreamUrl = "rtmp://origin.example:1936/live".parse().unwrap();
        assert_eq!(u.host, "origin.example");
        assert_eq!(u.port, 1936);
        let u: UpstreamUrl = "rtmp://[::1]".parse().unwrap();
        assert_eq!(u.authority(), "[::1]:1935");
        let u: UpstreamUrl = "rtmps://live-api-s.facebook.com/rtmp/".parse().unwrap();
        assert_eq!(u.scheme, UpstreamScheme::Rtmps);
        assert_eq!(u.port, 443);
        assert_eq!(u.to_string(), "rtmps://live-api-s.facebook.com:443");
    }

    #[test]
    fn errors_say_what_to_write() {
        let e = "0.0.0.0:8443".parse::<ListenUrl>().unwrap_err();
        assert!(e.to_string().contains("scheme://host:port"), "{e}");
        let e = "http://1.2.3.4".parse::<ListenUrl>().unwrap_err();
        assert!(e.to_string().contains("rtmp, rtmps"), "{e}");
        let e = "rtmp://host:99999".parse::<UpstreamUrl>().unwrap_err();
        assert!(e.to_string().contains("0 to 65535"), "{e}");
        let e = "rtmp://::1:1935".parse::<UpstreamUrl>().unwrap_err();
        assert!(e.to_string().contains("brackets"), "{e}");
        let e = "rtmps://example.com:8443".parse::<ListenUrl>().unwrap_err();
        assert!(e.to_string().contains("IP literal"), "{e}");
    }
}
