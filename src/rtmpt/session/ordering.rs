//! The reorder window of one session: filing each arriving request as a
//! duplicate (replay the cached reply), stale, too far ahead, already
//! queued, or waiting its turn, and giving up on a gap that never fills.
//!
//! Owns only the decision: [`Reorder`] is that bookkeeping on its own (no
//! I/O, no clock of its own; the `rtmpt_ordering` fuzz target drives it);
//! applying requests in order is the session's ([`super`]).

use std::collections::BTreeMap;

use http_body_util::BodyExt;
use tokio::time::Instant;

use super::{BODY_TIMEOUT, GAP_TIMEOUT, START_GRACE, Session, SessionEnd};
use crate::rtmpt::command::{REORDER_WINDOW, RefuseReason, Reply, Request};

/// Why an arriving request is answered without being applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unapplied {
    /// It is the last applied request again: replay its cached reply.
    Duplicate,
    /// Refused; the session lives on.
    Refused(RefuseReason),
}

/// The sequence numbers of one session: the next one to apply and the
/// early arrivals waiting for it (at most [`REORDER_WINDOW`], all in
/// `next..next + REORDER_WINDOW`), each with its arrival time.
#[derive(Debug)]
pub struct Reorder<T> {
    /// Next sequence number to apply; `None` before the first request.
    next_seq: Option<u64>,
    /// Early arrivals, keyed by sequence number, with arrival time.
    window: BTreeMap<u64, (T, Instant)>,
}

impl<T> Default for Reorder<T> {
    fn default() -> Self {
        Self {
            next_seq: None,
            window: BTreeMap::new(),
        }
    }
}

impl<T> Reorder<T> {
    /// Files request `seq` that arrived at `at`. `last` is the last
    /// applied sequence number (whose reply is cached), `parked` the one
    /// of a parked `/idle`. `Ok(reordered)`: queued, ahead of its turn when
    /// `reordered`; otherwise the request comes back with why not.
    pub fn file(
        &mut self,
        seq: u64,
        item: T,
        at: Instant,
        last: Option<u64>,
        parked: Option<u64>,
    ) -> Result<bool, (T, Unapplied)> {
        // The first request is usually 0; Red5's client starts at 1, which
        // waits in the window for a short grace (see `gap_timeout`).
        if self.next_seq.is_none() && seq == 0 {
            self.next_seq = Some(0);
        }
        let next = self.next_seq.unwrap_or(0);
        if seq < next {
            return Err(match last {
                Some(last) if last == seq => (item, Unapplied::Duplicate),
                _ => (item, Unapplied::Refused(RefuseReason::Stale)),
            });
        }
        if seq >= next + REORDER_WINDOW {
            return Err((item, Unapplied::Refused(RefuseReason::TooFarAhead)));
        }
        if self.window.contains_key(&seq) || parked == Some(seq) {
            return Err((item, Unapplied::Refused(RefuseReason::AlreadyQueued)));
        }
        self.window.insert(seq, (item, at));
        Ok(seq != next)
    }

    /// Takes the next request if it is there, and moves on past it.
    pub fn pop_ready(&mut self) -> Option<(u64, T)> {
        let next = self.next_seq?;
        let (item, _) = self.window.remove(&next)?;
        self.next_seq = Some(next + 1);
        Some((next, item))
    }

    /// The next sequence number to apply; `None` before the first request.
    pub fn next_seq(&self) -> Option<u64> {
        self.next_seq
    }

    /// Whether request `seq` waits in the window.
    pub fn is_waiting(&self, seq: u64) -> bool {
        self.window.contains_key(&seq)
    }

    /// Sequence numbers waiting, in order.
    pub fn waiting(&self) -> impl Iterator<Item = u64> + '_ {
        self.window.keys().copied()
    }

    /// How many requests wait.
    pub fn len(&self) -> usize {
        self.window.len()
    }

    /// Whether no request waits.
    pub fn is_empty(&self) -> bool {
        self.window.is_empty()
    }

    /// Takes every waiting request (the session is over).
    pub fn drain(&mut self) -> impl Iterator<Item = T> + use<T> {
        std::mem::take(&mut self.window)
            .into_values()
            .map(|(item, _)| item)
    }

    /// When waiting for a missing sequence number stops being reasonable:
    /// the earliest arrival plus [`START_GRACE`] before the first request
    /// is known, [`GAP_TIMEOUT`] after.
    pub fn gap_deadline(&self) -> Option<Instant> {
        let (_, (_, arrived)) = self.window.iter().min_by_key(|(_, (_, at))| *at)?;
        let grace = if self.next_seq.is_none() {
            START_GRACE
        } else {
            GAP_TIMEOUT
        };
        Some(*arrived + grace)
    }

    /// The gap deadline passed: `Ok` when the client numbers from 1
    /// (Red5) and that request is waiting, else `Err` with the missing
    /// sequence number (the session is broken).
    pub fn gap_timeout(&mut self) -> Result<(), u64> {
        if self.next_seq.is_none() && self.window.contains_key(&1) {
            self.next_seq = Some(1);
            return Ok(());
        }
        Err(self.next_seq.unwrap_or(0))
    }
}

impl Session {
    /// Files an arriving request: duplicate, stale, too early, or queued.
    pub(super) fn accept(&mut self, req: Request) {
        // Any new request releases a parked idle: the client is active and
        // must not wait behind the long-poll.
        if self.parked.is_some() {
            self.answer_parked();
        }
        let last = self.last.as_ref().map(|(seq, _)| *seq);
        let parked = self.parked.as_ref().map(|p| p.seq);
        let seq = req.seq;
        match self.order.file(seq, req, Instant::now(), last, parked) {
            Ok(reordered) => {
                if reordered {
                    self.metrics.rtmpt_reordered.inc();
                }
                // Only a request the session takes keeps it alive: a stale
                // or replayed one must not hold a session (and its caps)
                // for ever.
                self.table.touch(&self.id);
            }
            Err((req, Unapplied::Duplicate)) => {
                self.metrics.rtmpt_duplicates.inc();
                tracing::debug!(seq, "duplicate request: replaying the cached reply");
                let reply = match &self.last {
                    Some((_, reply)) => reply.clone(),
                    None => Reply::Refused(RefuseReason::Stale),
                };
                answer_unapplied(req, reply);
            }
            Err((req, Unapplied::Refused(why))) => answer_unapplied(req, Reply::Refused(why)),
        }
    }

    /// When waiting for a missing sequence number stops being reasonable.
    pub(super) fn gap_deadline(&self) -> Option<Instant> {
        self.order.gap_deadline()
    }

    pub(super) fn on_gap_timeout(&mut self) -> Result<(), SessionEnd> {
        let missing = self.order.gap_timeout().err();
        let Some(missing) = missing else {
            // Red5-style client numbering from 1.
            return Ok(());
        };
        tracing::warn!(
            missing,
            waiting = self.order.len(),
            "sequence gap never filled; closing session"
        );
        self.metrics.rtmpt_gaps.inc();
        Err(SessionEnd::SequenceGap)
    }
}

/// Answers a request that will not be applied. A `/send` body is read to
/// its end first (in its own bounded task, never forwarded) so the client's
/// keep-alive connection stays usable for its next request.
pub(super) fn answer_unapplied(req: Request, reply: Reply) {
    let Request {
        body, reply: to, ..
    } = req;
    match body {
        None => {
            let _ = to.send(reply);
        }
        Some(mut body) => {
            tokio::spawn(async move {
                let drain = async { while let Some(Ok(_)) = body.frame().await {} };
                let _ = tokio::time::timeout(BODY_TIMEOUT, drain).await;
                let _ = to.send(reply);
            });
        }
    }
}
