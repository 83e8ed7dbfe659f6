//! Per-client-address connection counting.
//!
//! Owns the per-address cap on concurrent client connections: a map from
//! address to count under a std `Mutex` (held for one map update, never
//! across an `.await`), and a guard that gives the slot back when the
//! connection ends. The global cap is the accept loop's semaphore.

use std::collections::HashMap;
use std::net::IpAddr;
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

    /// Takes a slot for `ip`, or `None` when the address is at its cap.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
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
    fn zero_means_unlimited() {
        let pc = PerClient::new(0);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let slots: Vec<_> = (0..100).map(|_| pc.acquire(a).unwrap()).collect();
        assert_eq!(slots.len(), 100);
    }
}
