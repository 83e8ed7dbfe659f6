//! The stream gate inside an RTMPT session: the client's `/send` bodies pass
//! through [`StreamGate`] before the upstream, as a plain relay's bytes do.
//!
//! Owns the bytes the gate holds between bodies (a command split across two
//! `/send`s, or everything behind a command awaiting its decision; at most
//! [`MAX_HELD`]), following the server's bytes for the refusal's
//! `onStatus`, and turning the gate's verdicts into session ends.

use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};

use super::SessionEnd;
use crate::app_metrics::AppMetrics;
use crate::auth::Authorizer;
use crate::gate::{ClientFacts, ServerSide, StreamGate, StreamNames, refusal_status};
use crate::relay::{Inspect, Refused};

/// Most client bytes held back in one session; more is a client flooding
/// behind a held command.
const MAX_HELD: usize = 256 * 1024;

/// One session's gate and what it holds.
pub(super) struct Gated {
    gate: Box<StreamGate>,
    server: ServerSide,
    held: BytesMut,
    /// Client bytes passed on to the upstream so far.
    written: u64,
    waiting: bool,
}

impl Gated {
    pub(super) fn new(auth: Arc<Authorizer>, client: ClientFacts, apps: Arc<AppMetrics>) -> Self {
        Self {
            gate: Box::new(StreamGate::new(auth, client).with_app_metrics(apps)),
            server: ServerSide::default(),
            held: BytesMut::new(),
            written: 0,
            waiting: false,
        }
    }

    /// Shows `data` (the next client bytes) to the gate; returns what may go
    /// to the upstream now. What it holds stays here.
    pub(super) fn pass(&mut self, data: Bytes) -> Result<Bytes, SessionEnd> {
        self.gate.observe(&data).map_err(|e| self.end(&e))?;
        let mut cx = Context::from_waker(Waker::noop());
        let release = self.gate.release(&mut cx).map_err(|e| self.end(&e))?;
        self.waiting = release.waiting;
        let may = release.upto.saturating_sub(self.written);
        if self.held.is_empty() && may >= data.len() as u64 {
            // The usual case: nothing held, nothing to hold, no copy.
            self.written += data.len() as u64;
            return Ok(data);
        }
        if self.held.len() + data.len() > MAX_HELD {
            tracing::warn!(
                held = self.held.len(),
                "rtmpt client sent too much behind a held command"
            );
            return Err(SessionEnd::Refused);
        }
        self.held.extend_from_slice(&data);
        Ok(self.take(may))
    }

    /// Whether held bytes wait for a decision (not for more input).
    pub(super) fn waiting(&self) -> bool {
        self.waiting && !self.held.is_empty()
    }

    /// Waits for the decision the held bytes wait for; returns what it
    /// releases.
    pub(super) async fn released(&mut self) -> Result<Bytes, SessionEnd> {
        let written = self.written;
        let release = poll_fn(|cx| match self.gate.release(cx) {
            Ok(r) if r.upto > written || !r.waiting => Poll::Ready(Ok(r)),
            Ok(_) => Poll::Pending,
            Err(err) => Poll::Ready(Err(err)),
        })
        .await
        .map_err(|e| self.end(&e))?;
        self.waiting = release.waiting;
        Ok(self.take(release.upto.saturating_sub(self.written)))
    }

    fn take(&mut self, may: u64) -> Bytes {
        let n = (may.min(self.held.len() as u64)) as usize;
        self.written += n as u64;
        self.held.split_to(n).freeze()
    }

    /// Follows the server's bytes (never holds them).
    pub(super) fn observe_server(&mut self, bytes: &[u8]) {
        let _ = self.server.observe(bytes);
    }

    /// The refused client's `onStatus`, if the server's stream is between
    /// messages (nothing of it is waiting undelivered in the session).
    pub(super) fn refusal_bytes(&self, all_delivered: bool) -> Option<Vec<u8>> {
        let refusal = self.gate.refusal()?;
        if !all_delivered {
            return None;
        }
        let chunk_size = self.server.insert_point()?;
        refusal_status(refusal, chunk_size)
    }

    /// The stream the session named, for its close line.
    pub(super) fn names(&self) -> StreamNames {
        self.gate.names().clone()
    }

    fn end(&self, err: &io::Error) -> SessionEnd {
        match (Refused::is(err), self.gate.refusal()) {
            (true, Some(_)) => SessionEnd::AuthDenied,
            _ => SessionEnd::Refused,
        }
    }
}
