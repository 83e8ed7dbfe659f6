//! The reorder window of one session: filing each arriving request as a
//! duplicate (replay the cached reply), stale, too far ahead, already
//! queued, or waiting its turn, and giving up on a gap that never fills.
//!
//! Owns only the decision; applying requests in order is the session's
//! ([`super`]).

use http_body_util::BodyExt;
use tokio::time::Instant;

use super::{BODY_TIMEOUT, GAP_TIMEOUT, START_GRACE, Session, SessionEnd};
use crate::rtmpt::command::{REORDER_WINDOW, RefuseReason, Reply, Request};

impl Session {
    /// Files an arriving request: duplicate, stale, too early, or queued.
    pub(super) fn accept(&mut self, req: Request) {
        // Any new request releases a parked idle: the client is active and
        // must not wait behind the long-poll.
        if self.parked.is_some() {
            self.answer_parked();
        }
        // The first request is usually 0; Red5's client starts at 1, which
        // waits in the window for a short grace (see `on_gap_timeout`).
        if self.next_seq.is_none() && req.seq == 0 {
            self.next_seq = Some(0);
        }
        let next = self.next_seq.unwrap_or(0);
        if req.seq < next {
            let reply = match &self.last {
                Some((seq, reply)) if *seq == req.seq => {
                    self.metrics.rtmpt_duplicates.inc();
                    tracing::debug!(
                        seq = req.seq,
                        "duplicate request: replaying the cached reply"
                    );
                    reply.clone()
                }
                _ => Reply::Refused(RefuseReason::Stale),
            };
            return answer_unapplied(req, reply);
        }
        if req.seq >= next + REORDER_WINDOW {
            return answer_unapplied(req, Reply::Refused(RefuseReason::TooFarAhead));
        }
        if self.window.contains_key(&req.seq)
            || self.parked.as_ref().is_some_and(|p| p.seq == req.seq)
        {
            return answer_unapplied(req, Reply::Refused(RefuseReason::AlreadyQueued));
        }
        if req.seq != next {
            self.metrics.rtmpt_reordered.inc();
        }
        // Only a request the session takes keeps it alive: a stale or
        // replayed one must not hold a session (and its caps) for ever.
        self.table.touch(&self.id);
        self.window.insert(req.seq, (req, Instant::now()));
    }

    /// When waiting for a missing sequence number stops being reasonable.
    pub(super) fn gap_deadline(&self) -> Option<Instant> {
        let (_, (_, arrived)) = self.window.iter().min_by_key(|(_, (_, at))| *at)?;
        let grace = if self.next_seq.is_none() {
            START_GRACE
        } else {
            GAP_TIMEOUT
        };
        Some(*arrived + grace)
    }

    pub(super) fn on_gap_timeout(&mut self) -> Result<(), SessionEnd> {
        if self.next_seq.is_none() && self.window.contains_key(&1) {
            // Red5-style client numbering from 1.
            self.next_seq = Some(1);
            return Ok(());
        }
        let missing = self.next_seq.unwrap_or(0);
        tracing::warn!(
            missing,
            waiting = self.window.len(),
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
