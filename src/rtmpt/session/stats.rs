//! What a session counts for its close log line: bytes each way, requests,
//! and how many TCP connections carried them.
//!
//! Owns the counting only; the session ([`super`]) feeds it and logs.

/// Connections remembered to tell a new one from one seen recently. A
/// client uses one or two connections at a time (one per request through
/// squid): eight recent ones count interleaved connections exactly.
const RECENT_CONNS: usize = 8;

/// Counters of one session.
#[derive(Debug, Default)]
pub(super) struct Stats {
    /// Client→upstream bytes.
    pub(super) bytes_up: u64,
    /// Upstream→client bytes.
    pub(super) bytes_down: u64,
    /// Requests that reached the session (with `/open`).
    pub(super) requests: u64,
    /// Distinct TCP connections that carried them.
    pub(super) connections: u64,
    recent: [u64; RECENT_CONNS],
    next_slot: usize,
}

impl Stats {
    /// Counts one request carried by connection `conn` (ids start at 1).
    pub(super) fn request_on(&mut self, conn: u64) {
        self.requests += 1;
        if conn == 0 || self.recent.contains(&conn) {
            return;
        }
        self.connections += 1;
        self.recent[self.next_slot] = conn;
        self.next_slot = (self.next_slot + 1) % RECENT_CONNS;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_distinct_connections() {
        let mut s = Stats::default();
        for conn in [1, 1, 1] {
            s.request_on(conn);
        }
        assert_eq!((s.requests, s.connections), (3, 1));
        // One request per connection, as squid does.
        for conn in 2..=40 {
            s.request_on(conn);
        }
        assert_eq!((s.requests, s.connections), (42, 40));
        // Two connections taking turns count once each.
        let mut s = Stats::default();
        for i in 0..20 {
            s.request_on(100 + i % 2);
        }
        assert_eq!((s.requests, s.connections), (20, 2));
    }
}
