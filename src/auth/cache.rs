//! A short, bounded cache of webhook *allow* decisions.
//!
//! Owns expiry and eviction. Does not own what is cached (only allows, only
//! from the webhook: `authorizer` decides). A std `Mutex` guards the map and
//! is held only for synchronous map work, never across an `.await`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::{AuthRequest, Call};

/// Most entries kept: enough for a busy edge's reconnect storm, small
/// enough (a few MB at worst) that a flood of distinct names cannot grow
/// memory without bound.
pub(crate) const MAX_ENTRIES: usize = 10_000;

/// Everything a decision may depend on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    call: Call,
    app: String,
    name: String,
    args: Vec<(String, String)>,
    addr: IpAddr,
}

impl Key {
    fn of(req: &AuthRequest) -> Self {
        Self {
            call: req.call,
            app: req.app.clone(),
            name: req.name.clone(),
            args: req.args.clone(),
            addr: req.addr,
        }
    }
}

/// Allow decisions with their expiry.
#[derive(Debug)]
pub(crate) struct AllowCache {
    ttl: Duration,
    max: usize,
    map: Mutex<HashMap<Key, Instant>>,
}

impl AllowCache {
    /// A cache keeping allows for `ttl` (zero: keeps nothing), at most
    /// `max` entries.
    pub(crate) fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Whether an unexpired allow for `req` is cached.
    pub(crate) fn hit(&self, req: &AuthRequest) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        let key = Key::of(req);
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(&key) {
            Some(until) if *until > now => true,
            Some(_) => {
                map.remove(&key);
                false
            }
            None => false,
        }
    }

    /// Remembers an allow for `req`. When full, drops expired entries, then
    /// the one closest to expiry (the oldest, as all share one TTL).
    pub(crate) fn insert(&self, req: &AuthRequest) {
        if self.ttl.is_zero() || self.max == 0 {
            return;
        }
        let key = Key::of(req);
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.max && !map.contains_key(&key) {
            map.retain(|_, until| *until > now);
            if map.len() >= self.max {
                let oldest = map
                    .iter()
                    .min_by_key(|(_, until)| **until)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    map.remove(&k);
                }
            }
        }
        map.insert(key, now + self.ttl);
    }

    /// Entries held (expired ones included until touched).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str) -> AuthRequest {
        AuthRequest {
            call: Call::Publish,
            app: "live".into(),
            name: name.into(),
            args: vec![("k".into(), "v".into())],
            addr: IpAddr::from([127, 0, 0, 1]),
            tcurl: "rtmp://127.0.0.1/live".into(),
            flashver: "FMLE/3.0".into(),
            protocol: "rtmp",
            sni: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn expires_after_ttl() {
        let c = AllowCache::new(Duration::from_secs(5), 10);
        let r = req("a");
        assert!(!c.hit(&r));
        c.insert(&r);
        assert!(c.hit(&r));
        let mut other = r.clone();
        other.args.clear();
        assert!(!c.hit(&other), "args are part of the key");
        let mut other = r.clone();
        other.call = Call::Play;
        assert!(!c.hit(&other), "call is part of the key");
        let mut other = r.clone();
        other.addr = IpAddr::from([127, 0, 0, 2]);
        assert!(!c.hit(&other), "addr is part of the key");
        tokio::time::advance(Duration::from_millis(4_900)).await;
        assert!(c.hit(&r));
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(!c.hit(&r));
        assert_eq!(c.len(), 0, "expired entry removed on lookup");
    }

    #[tokio::test(start_paused = true)]
    async fn bounded_evicts_expired_then_oldest() {
        let c = AllowCache::new(Duration::from_secs(5), 3);
        c.insert(&req("a"));
        tokio::time::advance(Duration::from_secs(1)).await;
        c.insert(&req("b"));
        c.insert(&req("c"));
        c.insert(&req("d"));
        assert_eq!(c.len(), 3);
        assert!(!c.hit(&req("a")), "oldest evicted");
        assert!(c.hit(&req("d")));
        tokio::time::advance(Duration::from_secs(10)).await;
        c.insert(&req("e"));
        assert_eq!(c.len(), 1, "expired entries dropped when full");
        let off = AllowCache::new(Duration::ZERO, 3);
        off.insert(&req("a"));
        assert!(!off.hit(&req("a")));
    }
}
