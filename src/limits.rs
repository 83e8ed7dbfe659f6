//! Per-client-address connection counting.
//!
//! Owns what "one client" is for the caps ([`client_key`]: an IPv4
//! address, or an IPv6 /64) and the per-client cap on concurrent client
//! connections: a map from key to count under a std `Mutex` (held for one
//! map update, never across an `.await`), and a guard that gives the slot
//! back when the connection ends. The global cap is the accept loop's
//! semaphore. The RTMPT session table counts its sessions by the same key.

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
}
