//! RTMPT request paths: `/open/1`, `/send/<id>/<seq>`, `/idle/…`, `/close/…`
//! and the Flash-era `/fcs/ident2` probe.
//!
//! Owns only parsing a path into a [`Route`]; no I/O, no session lookups, so
//! it can be unit-tested and fuzzed on its own.

/// What a request path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/fcs/ident2` or `/fcs/ident`: a Flash probe, not part of the tunnel.
    Ident,
    /// `/open/1`: create a session.
    Open,
    /// A request on an existing session.
    Session {
        /// What to do.
        verb: Verb,
        /// The session id as sent (not yet looked up).
        id: &'a str,
        /// The client's sequence number.
        seq: u64,
    },
}

/// The three per-session commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// Body is RTMP bytes for the upstream.
    Send,
    /// Poll for server bytes; the 1-byte body is not forwarded.
    Idle,
    /// End the session.
    Close,
}

impl Verb {
    /// Lower-case name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Idle => "idle",
            Self::Close => "close",
        }
    }
}

/// Longest session id accepted in a path: ffmpeg keeps at most 63 bytes.
pub const MAX_ID_LEN: usize = 63;

/// Parses a request path; `None` for anything that is not an RTMPT route.
pub fn parse(path: &str) -> Option<Route<'_>> {
    let mut parts = path.strip_prefix('/')?.split('/');
    let first = parts.next()?;
    let route = match first {
        "fcs" => match parts.next()? {
            "ident" | "ident2" => Route::Ident,
            _ => return None,
        },
        // Only "/open/1" exists in the wild; any number is tolerated.
        "open" => {
            parts.next()?.parse::<u64>().ok()?;
            Route::Open
        }
        "send" | "idle" | "close" => {
            let verb = match first {
                "send" => Verb::Send,
                "idle" => Verb::Idle,
                _ => Verb::Close,
            };
            let id = parts.next()?;
            if id.is_empty()
                || id.len() > MAX_ID_LEN
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            {
                return None;
            }
            let seq = parts.next()?;
            if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Route::Session {
                verb,
                id,
                seq: seq.parse().ok()?,
            }
        }
        _ => return None,
    };
    // At most one trailing slash; nothing after it.
    match (parts.next(), parts.next()) {
        (None, _) | (Some(""), None) => Some(route),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_client_paths() {
        assert_eq!(parse("/open/1"), Some(Route::Open));
        assert_eq!(parse("/fcs/ident2"), Some(Route::Ident));
        assert_eq!(
            parse("/send/abc123/0"),
            Some(Route::Session {
                verb: Verb::Send,
                id: "abc123",
                seq: 0
            })
        );
        assert_eq!(
            parse("/idle/r1.Zx_-9/18446744073709551615"),
            Some(Route::Session {
                verb: Verb::Idle,
                id: "r1.Zx_-9",
                seq: u64::MAX
            })
        );
        assert_eq!(
            parse("/close/x/7/"),
            Some(Route::Session {
                verb: Verb::Close,
                id: "x",
                seq: 7
            })
        );
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "/",
            "/open",
            "/open/x",
            "/send/id",
            "/send//1",
            "/send/id/-1",
            "/send/id/1/2",
            "/send/id/18446744073709551616",
            "/idle/a%20b/1",
            "/send/id/+1",
            "/fcs/other",
            "send/id/1",
            "/index.html",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        let long = format!("/idle/{}/1", "a".repeat(MAX_ID_LEN + 1));
        assert_eq!(parse(&long), None);
    }
}
