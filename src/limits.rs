//! Per-client-address connection counting and `/open` rate limiting.
//!
//! Owns what "one client" is for the caps ([`client_key`]: an IPv4
//! address, or an IPv6 /64) and the per-client cap on concurrent client
//! connections: a map from key to count under a std `Mutex` (held for one
//! map update, never across an `.await`), and a guard that gives the slot
//! back when the connection ends. The global cap is the accept loop's
//! semaphore. The RTMPT session table counts its sessions by the same key,
//! and [`OpenRateLimiter`] (a token bucket per client, in bounded memory)
//! rates its `/open`s by it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

/// Leading bits of an IPv6 address that name one client. A subscriber or
/// host is handed a whole /64 (SLAAC needs one), so every address in it is
/// theirs to use: counting full addresses would give one client 2^64 caps.
pub const IPV6_CLIENT_PREFIX: u32 = 64;

/// The key a client's connections and sessions are counted under: an IPv4
/// address as is (also when it arrives IPv4-mapped on a dual-stack
/// socket), an IPv6 address with all but its first
/// [`IPV6_CLIENT_PREFIX`] bits cleared.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mask = u128::MAX << (128 - IPV6_CLIENT_PREFIX);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        },
    }
}
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::OpenRate;

/// Counts live connections per client address against a cap.
#[derive(Debug)]
pub struct PerClient {
    max: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub struct ClientSlot {
    owner: Arc<PerClient>,
    ip: IpAddr,
}

impl PerClient {
    /// A counter allowing `max` connections per address; 0 means no cap.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a slot for the client at `ip` (counted by [`client_key`]), or
    /// `None` when that client is at its cap.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let ip = client_key(ip);
        if self.max == 0 {
            return Some(ClientSlot {
                owner: Arc::clone(self),
                ip,
            });
        }
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(ip).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            owner: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if self.owner.max == 0 {
            return;
        }
        let mut counts = self.owner.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Most clients whose `/open` rate is tracked at once (a bucket is ~50
/// bytes with the map's overhead: about 1 MiB in all).
pub const MAX_RATED_CLIENTS: usize = 16_384;

/// Least time between two sweeps of a full bucket table, so a table held
/// full costs one O(n) pass a second, not one per `/open`.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A token bucket per client ([`client_key`]) on RTMPT `/open`.
///
/// Memory is bounded: at most [`MAX_RATED_CLIENTS`] buckets. A bucket that
/// has refilled to its burst says nothing an absent one would not, so when
/// the table is full such buckets are dropped (at most once per
/// [`SWEEP_EVERY`]). If none can be dropped (that many clients all opened
/// within the last burst/rate seconds) a new client is let through
/// untracked: it would have had a full burst anyway, and refusing it would
/// let a many-address flood lock everyone else out.
#[derive(Debug)]
pub struct OpenRateLimiter {
    settings: OpenRate,
    buckets: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    map: HashMap<IpAddr, Bucket>,
    /// No sweep of a full table before then.
    next_sweep: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// An `/open` over its client's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("more than {per_second} /open a second (burst {burst}) from this client")]
pub struct RateLimited {
    /// The configured rate.
    pub per_second: u32,
    /// The configured burst.
    pub burst: u32,
    /// When the client's next `/open` would be allowed.
    pub retry_after: Duration,
}

impl Bucket {
    /// Tokens at `now`: refilled at `per_second`, at most `burst`.
    fn refill(&mut self, now: Instant, s: OpenRate) {
        let gained = now.saturating_duration_since(self.at).as_secs_f64() * f64::from(s.per_second);
        self.tokens = (self.tokens + gained).min(f64::from(s.burst));
        self.at = now;
    }

    fn is_full(mut self, now: Instant, s: OpenRate) -> bool {
        self.refill(now, s);
        self.tokens >= f64::from(s.burst)
    }
}

impl OpenRateLimiter {
    /// A limiter for these settings (`per_second` 0: every `/open` passes).
    pub fn new(settings: OpenRate) -> Self {
        Self {
            settings,
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                next_sweep: None,
            }),
        }
    }

    /// Takes one `/open` from the bucket of the client at `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), RateLimited> {
        self.check_at(ip, Instant::now())
    }

    fn check_at(&self, ip: IpAddr, now: Instant) -> Result<(), RateLimited> {
        let s = self.settings;
        if s.per_second == 0 {
            return Ok(());
        }
        let key = client_key(ip);
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bucket) = b.map.get_mut(&key) {
            bucket.refill(now, s);
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                return Ok(());
            }
            let wait = (1.0 - bucket.tokens) / f64::from(s.per_second);
            return Err(RateLimited {
                per_second: s.per_second,
                burst: s.burst,
                retry_after: Duration::from_secs_f64(wait),
            });
        }
        if b.map.len() >= MAX_RATED_CLIENTS && b.next_sweep.is_none_or(|t| now >= t) {
            b.map.retain(|_, bucket| !bucket.is_full(now, s));
            b.next_sweep = Some(now + SWEEP_EVERY);
        }
        if b.map.len() < MAX_RATED_CLIENTS {
            let tokens = f64::from(s.burst) - 1.0;
            b.map.insert(key, Bucket { tokens, at: now });
        }
        Ok(())
    }

    /// Clients with a bucket (for tests).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.lock().unwrap().map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_per_address_and_release_on_drop() {
        let pc = PerClient::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let s1 = pc.acquire(a).unwrap();
        let _s2 = pc.acquire(a).unwrap();
        assert!(pc.acquire(a).is_none());
        assert!(pc.acquire(b).is_some());
        drop(s1);
        assert!(pc.acquire(a).is_some());
        assert!(
            pc.counts.lock().unwrap().get(&b).is_none(),
            "freed entries are removed"
        );
    }

    #[test]
    fn ipv6_clients_are_their_slash_64_ipv4_clients_their_address() {
        let key = |s: &str| client_key(s.parse().unwrap()).to_string();
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::");
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
        assert_eq!(key("203.0.113.7"), "203.0.113.7");
        assert_ne!(key("203.0.113.7"), key("203.0.113.8"));
        assert_eq!(key("::ffff:203.0.113.7"), "203.0.113.7", "dual-stack IPv4");
        assert_eq!(key("::1"), "::");
    }

    #[test]
    fn addresses_in_one_slash_64_share_the_cap() {
        let pc = PerClient::new(2);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:dead:beef:0:7".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _s1 = pc.acquire(a).unwrap();
        let s2 = pc.acquire(b).unwrap();
        assert!(pc.acquire(b).is_none(), "a and b are one client");
        assert!(pc.acquire(other).is_some(), "the next /64 is another");
        drop(s2);
        assert!(pc.acquire(a).is_some(), "b's slot came back to the /64");
    }

    #[test]
    fn zero_means_unlimited() {
        let pc = PerClient::new(0);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let slots: Vec<_> = (0..100).map(|_| pc.acquire(a).unwrap()).collect();
        assert_eq!(slots.len(), 100);
    }

    fn limiter(per_second: u32, burst: u32) -> OpenRateLimiter {
        OpenRateLimiter::new(OpenRate { per_second, burst })
    }

    #[test]
    fn burst_then_rate_per_client() {
        let l = limiter(2, 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            l.check_at(a, t0).unwrap();
        }
        let refused = l.check_at(a, t0).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_millis(500));
        assert!(
            l.check_at("192.0.2.2".parse().unwrap(), t0).is_ok(),
            "another client"
        );
        let later = t0 + Duration::from_millis(500);
        l.check_at(a, later).unwrap();
        assert!(l.check_at(a, later).is_err(), "one token in 500 ms at 2/s");
        // A long quiet spell refills to the burst, never beyond it.
        let much_later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            l.check_at(a, much_later).unwrap();
        }
        assert!(l.check_at(a, much_later).is_err());
    }

    #[test]
    fn a_slash_64_is_one_bucket_and_zero_is_off() {
        let l = limiter(1, 1);
        let t0 = Instant::now();
        l.check_at("2001:db8:1:2::1".parse().unwrap(), t0).unwrap();
        assert!(l.check_at("2001:db8:1:2::99".parse().unwrap(), t0).is_err());
        let off = limiter(0, 0);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..1000).all(|_| off.check_at(a, t0).is_ok()));
        assert_eq!(off.tracked(), 0);
    }

    #[test]
    fn the_table_stays_bounded_and_full_buckets_make_room() {
        let l = limiter(10, 20);
        let t0 = Instant::now();
        let ip = |i: usize| IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i as u32));
        for i in 0..MAX_RATED_CLIENTS + 100 {
            l.check_at(ip(i), t0).unwrap();
        }
        assert_eq!(
            l.tracked(),
            MAX_RATED_CLIENTS,
            "new clients past the cap are untracked"
        );
        // A tracked client stays limited while the table is full.
        let first = ip(0);
        for _ in 0..19 {
            l.check_at(first, t0).unwrap();
        }
        assert!(l.check_at(first, t0).is_err());
        // 1.5 s on, every other bucket is full again and is dropped
        // for the newcomer; the limited client keeps its (empty) bucket.
        let t1 = t0 + Duration::from_millis(1500);
        l.check_at(ip(MAX_RATED_CLIENTS + 200), t1).unwrap();
        assert_eq!(l.tracked(), 2);
        for _ in 0..15 {
            l.check_at(first, t1).unwrap();
        }
        assert!(l.check_at(first, t1).is_err(), "15 tokens in 1.5 s at 10/s");
    }
}
