//! The RTMPT session table: ids, caps, lookup and the single expiry reaper.
//!
//! Owns which sessions exist. A session's state lives in its own task
//! ([`super::session`]); the table only keeps the handle to reach it. The
//! lock is a std `Mutex` held for map operations only, never across an
//! `.await`. Dropping an entry (expiry, or the session ending) cancels the
//! session's token, which ends its task even while it waits on the upstream.
//! Only the session marks itself seen ([`SessionTable::touch`]), for requests
//! it takes: a refused or replayed request does not keep a session alive.

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::command::Command;
use crate::config::TableLimits;
use crate::limits::client_key;

/// Random bytes in a session id: 128 bits from the OS CSPRNG, so ids cannot
/// be guessed or enumerated.
const ID_RANDOM_BYTES: usize = 16;

/// Why `/open` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenRefused {
    /// The global session cap is reached.
    #[error("RTMPT session limit reached")]
    Full,
    /// This client address holds its share already.
    #[error("RTMPT session limit for this client address reached")]
    ClientFull,
}

struct Entry {
    tx: mpsc::Sender<Command>,
    /// Cancelled when the entry goes: the session task stops at once.
    cancel: CancellationToken,
    client: IpAddr,
    last_seen: Instant,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, Entry>,
    /// Sessions per [`client_key`].
    per_client: HashMap<IpAddr, usize>,
}

/// All live RTMPT sessions of this process.
pub struct SessionTable {
    inner: Mutex<Inner>,
    limits: TableLimits,
    /// This replica's id prefix, if any.
    tag: Option<String>,
}

/// A fresh unguessable, URL-safe session id: 32 lowercase hex digits from
/// the OS CSPRNG, after `TAG.` when this replica has a tag, so a balancer
/// can route by path prefix with no shared state.
pub fn new_session_id(tag: Option<&str>) -> String {
    let mut raw = [0u8; ID_RANDOM_BYTES];
    getrandom::fill(&mut raw).expect("the OS random source is available");
    let random = u128::from_be_bytes(raw);
    match tag {
        Some(tag) => format!("{tag}.{random:032x}"),
        None => format!("{random:032x}"),
    }
}

impl SessionTable {
    /// An empty table with these limits, prefixing ids with `tag`.
    pub fn new(limits: TableLimits, tag: Option<String>) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            limits,
            tag,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere must not take RTMPT down with it: the map stays
        // consistent because every critical section is a single map update.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new session under a fresh id, enforcing the caps.
    /// `cancel` is cancelled when the session leaves the table.
    pub fn insert(
        &self,
        client: IpAddr,
        tx: mpsc::Sender<Command>,
        cancel: CancellationToken,
    ) -> Result<String, OpenRefused> {
        let mut inner = self.lock();
        if inner.sessions.len() >= self.limits.max_sessions {
            return Err(OpenRefused::Full);
        }
        // Counted per client (an IPv6 /64), bound to the exact address.
        let count = inner.per_client.entry(client_key(client)).or_default();
        if *count >= self.limits.max_per_client {
            return Err(OpenRefused::ClientFull);
        }
        *count += 1;
        loop {
            let id = new_session_id(self.tag.as_deref());
            if let MapEntry::Vacant(slot) = inner.sessions.entry(id.clone()) {
                slot.insert(Entry {
                    tx,
                    cancel,
                    client,
                    last_seen: Instant::now(),
                });
                return Ok(id);
            }
        }
    }

    /// The handle of session `id`, if it exists and `client` may use it.
    /// Does not mark it seen: the session does that for requests it takes.
    pub fn lookup(&self, id: &str, client: IpAddr) -> Option<mpsc::Sender<Command>> {
        let inner = self.lock();
        let entry = inner.sessions.get(id)?;
        if self.limits.bind_client && entry.client != client {
            return None;
        }
        Some(entry.tx.clone())
    }

    /// Marks session `id` as seen now (it took a request).
    pub fn touch(&self, id: &str) {
        if let Some(entry) = self.lock().sessions.get_mut(id) {
            entry.last_seen = Instant::now();
        }
    }

    /// Forgets session `id` (its task ends once all handles are gone).
    pub fn remove(&self, id: &str) -> bool {
        let mut inner = self.lock();
        match inner.sessions.remove(id) {
            Some(entry) => {
                entry.cancel.cancel();
                release(&mut inner.per_client, entry.client);
                true
            }
            None => false,
        }
    }

    /// Drops every session not seen for the expiry time; returns how many.
    pub fn expire(&self, now: Instant) -> usize {
        let expiry = self.limits.expiry;
        let mut inner = self.lock();
        let Inner {
            sessions,
            per_client,
        } = &mut *inner;
        let before = sessions.len();
        sessions.retain(|_, e| {
            let keep = now.saturating_duration_since(e.last_seen) < expiry;
            if !keep {
                e.cancel.cancel();
                release(per_client, e.client);
            }
            keep
        });
        before - sessions.len()
    }

    /// Sessions now open.
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How often the reaper looks: a tenth of the expiry, at most once a
    /// second, so expiry is late by at most that much.
    pub fn reap_interval(&self) -> Duration {
        (self.limits.expiry / 10).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

fn release(per_client: &mut HashMap<IpAddr, usize>, client: IpAddr) {
    if let MapEntry::Occupied(mut slot) = per_client.entry(client_key(client)) {
        *slot.get_mut() -= 1;
        if *slot.get() == 0 {
            slot.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::{MAX_TAG_LEN, valid_tag};

    fn tok() -> CancellationToken {
        CancellationToken::new()
    }

    fn table(max_sessions: usize, max_per_client: usize) -> SessionTable {
        SessionTable::new(
            TableLimits {
                max_sessions,
                max_per_client,
                expiry: Duration::from_secs(30),
                bind_client: true,
            },
            None,
        )
    }

    #[test]
    fn ids_are_128_bit_hex_and_distinct() {
        let a = new_session_id(None);
        let b = new_session_id(None);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        let tag = "t".repeat(MAX_TAG_LEN);
        let tagged = new_session_id(Some(&tag));
        assert_eq!(tagged.len(), 62);
        assert!(tagged.starts_with(&format!("{tag}.")));
        assert!(crate::rtmpt::path::parse(&format!("/idle/{tagged}/0")).is_some());
        assert!(
            valid_tag("rtmpgate-0")
                && !valid_tag("a.b")
                && !valid_tag("")
                && !valid_tag(&"x".repeat(30))
        );
    }

    #[test]
    fn caps_hold_and_release() {
        let t = table(3, 2);
        let (tx, _rx) = mpsc::channel(1);
        let ip1: IpAddr = "127.0.0.1".parse().unwrap();
        let ip2: IpAddr = "127.0.0.2".parse().unwrap();
        let a = t.insert(ip1, tx.clone(), tok()).unwrap();
        t.insert(ip1, tx.clone(), tok()).unwrap();
        assert_eq!(
            t.insert(ip1, tx.clone(), tok()),
            Err(OpenRefused::ClientFull)
        );
        t.insert(ip2, tx.clone(), tok()).unwrap();
        assert_eq!(t.insert(ip2, tx.clone(), tok()), Err(OpenRefused::Full));
        assert!(t.remove(&a));
        assert!(!t.remove(&a));
        t.insert(ip1, tx, tok()).unwrap();
    }

    #[test]
    fn one_ipv6_slash_64_shares_the_session_cap_but_not_the_sessions() {
        let t = table(10, 2);
        let (tx, _rx) = mpsc::channel(1);
        let a: IpAddr = "2001:db8:7:7::1".parse().unwrap();
        let b: IpAddr = "2001:db8:7:7:ffff::2".parse().unwrap();
        let id = t.insert(a, tx.clone(), tok()).unwrap();
        t.insert(b, tx.clone(), tok()).unwrap();
        assert_eq!(t.insert(b, tx.clone(), tok()), Err(OpenRefused::ClientFull));
        t.insert("2001:db8:7:8::1".parse().unwrap(), tx.clone(), tok())
            .unwrap();
        // Binding stays per exact address, and removal frees the /64's slot.
        assert!(t.lookup(&id, b).is_none());
        assert!(t.remove(&id));
        t.insert(b, tx, tok()).unwrap();
    }

    #[test]
    fn lookup_is_bound_to_the_opening_address() {
        let t = table(10, 10);
        let (tx, _rx) = mpsc::channel(1);
        let id = t.insert("127.0.0.1".parse().unwrap(), tx, tok()).unwrap();
        assert!(t.lookup(&id, "127.0.0.1".parse().unwrap()).is_some());
        assert!(t.lookup(&id, "127.0.0.9".parse().unwrap()).is_none());
        assert!(t.lookup("0000", "127.0.0.1".parse().unwrap()).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_drops_only_silent_sessions() {
        let t = table(10, 10);
        let (tx, _rx) = mpsc::channel(1);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let quiet_cancel = tok();
        let quiet = t.insert(ip, tx.clone(), quiet_cancel.clone()).unwrap();
        let busy_cancel = tok();
        let busy = t.insert(ip, tx, busy_cancel.clone()).unwrap();
        tokio::time::advance(Duration::from_secs(20)).await;
        // Looking a session up (a request the session may refuse) does not
        // keep it alive; only the session's touch does.
        t.lookup(&quiet, ip).unwrap();
        t.touch(&busy);
        tokio::time::advance(Duration::from_secs(15)).await;
        assert_eq!(t.expire(Instant::now()), 1);
        assert!(t.lookup(&quiet, ip).is_none());
        assert!(quiet_cancel.is_cancelled(), "expiry stops the session task");
        assert!(t.lookup(&busy, ip).is_some());
        assert!(!busy_cancel.is_cancelled());
        assert!(t.remove(&busy));
        assert!(busy_cancel.is_cancelled(), "removal stops the session task");
    }
}
