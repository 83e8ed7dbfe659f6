//! Overload shedding: one process-wide high-water mark on buffered bytes and
//! client connections, in the spirit of Envoy's overload manager.
//!
//! Owns the accounting ([`Overload`], lock-free atomics), the hysteresis
//! (enter at 100% of a limit, leave only once every limit is below 90%, so
//! the state does not flap around the threshold), the log line on each
//! transition, and the `rtmpgate_overloaded` / `rtmpgate_buffered_bytes`
//! gauges. It does not decide what to shed: the accept loops
//! ([`crate::listener`]) pause and RTMPT `/open` ([`crate::rtmpt`]) answers
//! 503 while [`Overload::is_overloaded`] is true; live streams are never
//! touched.
//!
//! Anything that holds bytes on behalf of a connection charges them with
//! [`Overload::charge`], which returns a [`Charge`] guard that releases the
//! bytes when dropped and can be resized ([`Charge::set`]) as a buffer grows
//! and drains.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;

use crate::metrics::Metrics;

/// Once overloaded, every limit must fall below this share (in tenths) of
/// itself before new work is taken again: 90%.
const LEAVE_TENTHS: u64 = 9;

/// Longest a paused accept loop sleeps before looking again, in case a
/// transition's wake-up was missed. Short enough that a recovery is noticed
/// promptly, long enough to cost nothing while paused.
pub const RECHECK: Duration = Duration::from_millis(250);

/// Default `--overload-max-buffered`: 512 MiB. See the README ("Overload").
pub const DEFAULT_MAX_BUFFERED: u64 = 512 * 1024 * 1024;

/// The configured high-water marks; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverloadLimits {
    /// Bytes buffered on behalf of connections (RTMPT session buffers, relay
    /// copy buffers) at which new work is shed.
    pub max_buffered: u64,
    /// Client connections being served at which new work is shed.
    pub max_connections: usize,
}

impl Default for OverloadLimits {
    fn default() -> Self {
        Self {
            max_buffered: DEFAULT_MAX_BUFFERED,
            max_connections: 0,
        }
    }
}

/// The process's load against its limits. Cheap to share (`Arc`) and to
/// call from any task: every operation is a few relaxed atomic operations,
/// no lock.
pub struct Overload {
    limits: OverloadLimits,
    /// Bytes charged now. The gauge's atomic *is* the counter, so the
    /// exported value is exact and costs nothing extra.
    buffered: Gauge,
    connections: AtomicUsize,
    overloaded: AtomicBool,
    overloaded_gauge: Gauge,
    /// Woken when the state leaves overload.
    relieved: Notify,
}

impl std::fmt::Debug for Overload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overload")
            .field("limits", &self.limits)
            .field("buffered", &self.buffered())
            .field("connections", &self.connections())
            .field("overloaded", &self.overloaded.load(Ordering::Relaxed))
            .finish()
    }
}

impl Overload {
    /// Accounting against `limits`, exporting its gauges through `metrics`.
    pub fn new(limits: OverloadLimits, metrics: &Metrics) -> Arc<Self> {
        Arc::new(Self {
            limits,
            buffered: metrics.buffered_bytes.clone(),
            connections: AtomicUsize::new(0),
            overloaded: AtomicBool::new(false),
            overloaded_gauge: metrics.overloaded.clone(),
            relieved: Notify::new(),
        })
    }

    /// The configured limits.
    pub fn limits(&self) -> OverloadLimits {
        self.limits
    }

    /// Bytes charged now.
    pub fn buffered(&self) -> u64 {
        self.buffered.get().max(0) as u64
    }

    /// Client connections counted now.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Charges `bytes` of buffered data until the returned guard is dropped
    /// (or resized with [`Charge::set`]).
    pub fn charge(self: &Arc<Self>, bytes: usize) -> Charge {
        self.add_buffered(bytes);
        Charge {
            owner: Arc::clone(self),
            bytes,
        }
    }

    /// Adds `bytes` to the buffered total. Prefer [`Self::charge`]; a caller
    /// of this must call [`Self::release_buffered`] with the same amount.
    pub fn add_buffered(&self, bytes: usize) {
        if bytes > 0 {
            self.buffered.inc_by(bytes as i64);
            self.update();
        }
    }

    /// Takes `bytes` off the buffered total.
    pub fn release_buffered(&self, bytes: usize) {
        if bytes > 0 {
            self.buffered.dec_by(bytes as i64);
            self.update();
        }
    }

    /// Counts one client connection until the guard is dropped.
    pub fn connection(self: &Arc<Self>) -> ConnectionSlot {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.update();
        ConnectionSlot {
            owner: Arc::clone(self),
        }
    }

    /// Whether new work should be shed now. Enters at 100% of any limit,
    /// leaves once every limit is below 90%.
    pub fn is_overloaded(&self) -> bool {
        self.update()
    }

    /// Waits until the process is no longer overloaded (returns at once if
    /// it is not). Wakes on the transition, and looks again every
    /// [`RECHECK`] in any case.
    pub async fn relieved(&self) {
        loop {
            let woken = self.relieved.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if !self.is_overloaded() {
                return;
            }
            let _ = tokio::time::timeout(RECHECK, woken).await;
        }
    }

    /// Recomputes the state from the counters; logs and wakes waiters on a
    /// transition. Returns whether overloaded.
    fn update(&self) -> bool {
        let was = self.overloaded.load(Ordering::Relaxed);
        let now = if was {
            !self.below(LEAVE_TENTHS)
        } else {
            !self.below(10)
        };
        if now != was
            && self
                .overloaded
                .compare_exchange(was, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.overloaded_gauge.set(i64::from(now));
            let (buffered, connections) = (self.buffered(), self.connections());
            let (max_buffered, max_connections) =
                (self.limits.max_buffered, self.limits.max_connections);
            if now {
                tracing::warn!(
                    buffered,
                    max_buffered,
                    connections,
                    max_connections,
                    "overloaded: accepting paused and new RTMPT sessions refused; live streams go on \
                     (see --overload-max-buffered, --overload-max-connections)"
                );
            } else {
                tracing::info!(
                    buffered,
                    connections,
                    "overload over (every limit below 90%): accepting again"
                );
                self.relieved.notify_waiters();
            }
        }
        now
    }

    /// Whether every enabled limit is below `tenths`/10 of itself.
    fn below(&self, tenths: u64) -> bool {
        let under = |value: u64, max: u64| max == 0 || value * 10 < max.saturating_mul(tenths);
        under(self.buffered(), self.limits.max_buffered)
            && under(
                self.connections() as u64,
                self.limits.max_connections as u64,
            )
    }
}

/// Buffered bytes charged to an [`Overload`]; released when dropped.
#[derive(Debug)]
pub struct Charge {
    owner: Arc<Overload>,
    bytes: usize,
}

impl Charge {
    /// Charges `bytes` from now on instead of the previous amount (a buffer
    /// that grew or drained).
    pub fn set(&mut self, bytes: usize) {
        if bytes > self.bytes {
            self.owner.add_buffered(bytes - self.bytes);
        } else {
            self.owner.release_buffered(self.bytes - bytes);
        }
        self.bytes = bytes;
    }

    /// Bytes charged now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.owner.release_buffered(self.bytes);
    }
}

/// One client connection counted by an [`Overload`]; uncounted when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    owner: Arc<Overload>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.owner.connections.fetch_sub(1, Ordering::Relaxed);
        self.owner.update();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overload(max_buffered: u64, max_connections: usize) -> (Arc<Overload>, Metrics) {
        let metrics = Metrics::default();
        let o = Overload::new(
            OverloadLimits {
                max_buffered,
                max_connections,
            },
            &metrics,
        );
        (o, metrics)
    }

    #[test]
    fn enters_at_the_limit_and_leaves_below_ninety_percent() {
        let (o, metrics) = overload(1000, 0);
        let mut a = o.charge(600);
        assert!(!o.is_overloaded());
        let b = o.charge(399);
        assert!(!o.is_overloaded(), "999 of 1000");
        a.set(601);
        assert!(o.is_overloaded(), "1000 of 1000");
        assert!(metrics.encode().contains("rtmpgate_overloaded 1"));
        a.set(502);
        assert!(o.is_overloaded(), "901: still above 90%");
        a.set(501);
        assert!(o.is_overloaded(), "900 is not below 90%");
        a.set(500);
        assert!(!o.is_overloaded(), "899 is");
        a.set(601);
        assert!(o.is_overloaded(), "enters again at 100%");
        drop(b);
        assert!(!o.is_overloaded());
        assert_eq!(o.buffered(), 601);
        drop(a);
        assert_eq!(o.buffered(), 0);
        let text = metrics.encode();
        assert!(text.contains("rtmpgate_overloaded 0"), "{text}");
        assert!(text.contains("rtmpgate_buffered_bytes 0"), "{text}");
    }

    #[test]
    fn connections_trip_it_too_and_zero_means_off() {
        let (o, _m) = overload(0, 10);
        let slots: Vec<_> = (0..9).map(|_| o.connection()).collect();
        assert!(!o.is_overloaded());
        let tenth = o.connection();
        assert!(o.is_overloaded());
        drop(tenth);
        assert!(o.is_overloaded(), "9 of 10 is not below 90%");
        drop(slots);
        assert!(!o.is_overloaded());
        let (off, _m) = overload(0, 0);
        let _big = off.charge(usize::MAX / 4);
        let _c = off.connection();
        assert!(!off.is_overloaded());
    }

    #[tokio::test]
    async fn relieved_wakes_on_the_transition() {
        let (o, _m) = overload(100, 0);
        let charge = o.charge(100);
        assert!(o.is_overloaded());
        let waiter = tokio::spawn({
            let o = Arc::clone(&o);
            async move { o.relieved().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(charge);
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("woken")
            .expect("no panic");
    }
}
