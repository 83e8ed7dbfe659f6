//! Writing to the upstream: streaming a `/send` body into it and half-closing
//! it on `/close`, every wait bounded.
//!
//! Owns the rule that no upstream write can hold a session task: each write
//! races the session's cancellation (expiry, removal, shutdown), a stall
//! timer (no progress for [`WRITE_STALL`]) and the body deadline, while the
//! upstream keeps being read so neither side can stall the other. A body
//! still arriving counts as activity for expiry; one stuck does not. An
//! upstream that never reads ends the session as `upstream_write_timeout`,
//! and its socket closes with the task.

use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::{BODY_TIMEOUT, Session, SessionEnd};
use crate::rtmpt::command::Body;

/// Longest an upstream write may make no progress at all: a server that
/// reads nothing for this long is not coming back.
pub(super) const WRITE_STALL: Duration = Duration::from_secs(10);
/// Longest the half-close on `/close` may take.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);
/// A body still arriving keeps its session alive; marked this often at most
/// (the table's lock is shared by every session).
const TOUCH_EVERY: Duration = Duration::from_secs(1);

impl Session {
    /// Why the session's token fired.
    pub(super) fn cancel_reason(&self) -> SessionEnd {
        if self.abort.is_cancelled() {
            SessionEnd::Shutdown
        } else {
            SessionEnd::Expired
        }
    }

    /// Streams a `/send` body into the upstream as its frames arrive, while
    /// still reading the upstream.
    pub(super) async fn forward_body(&mut self, mut body: Body) -> Result<(), SessionEnd> {
        let cancel = self.cancel.clone();
        let deadline = Instant::now() + BODY_TIMEOUT;
        // The frame being written, and when its write counts as stalled.
        let mut pending = Bytes::new();
        let mut stall_at = Instant::now() + WRITE_STALL;
        let mut touched = Instant::now();
        let mut body_done = false;
        loop {
            if body_done && pending.is_empty() && !self.gated.waiting() {
                return Ok(());
            }
            let can_read = !self.upstream_eof && self.down.has_room();
            let deciding = pending.is_empty() && self.gated.waiting();
            tokio::select! {
                () = cancel.cancelled() => return Err(self.cancel_reason()),
                frame = body.frame(), if pending.is_empty() && !body_done => match frame {
                    None => body_done = true,
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            // The stream gate decides how much may go up now.
                            pending = self.gated.pass(data)?;
                            stall_at = Instant::now() + WRITE_STALL;
                        }
                        if touched.elapsed() >= TOUCH_EVERY {
                            self.table.touch(&self.id);
                            touched = Instant::now();
                        }
                    }
                    Some(Err(err)) => {
                        tracing::debug!(%err, "client body failed");
                        return Err(SessionEnd::ClientError);
                    }
                },
                released = self.gated.released(), if deciding => {
                    pending = released?;
                    stall_at = Instant::now() + WRITE_STALL;
                }
                res = self.up_write.write(&pending), if !pending.is_empty() => match res {
                    Ok(n) if n > 0 => {
                        pending.advance(n);
                        self.stats.bytes_up += n as u64;
                        stall_at = Instant::now() + WRITE_STALL;
                    }
                    Ok(_) => return Err(SessionEnd::UpstreamError),
                    Err(err) => {
                        tracing::debug!(%err, "upstream write failed");
                        return Err(SessionEnd::UpstreamError);
                    }
                },
                res = self.down.read_from(&mut self.up_read), if can_read => {
                    self.note_upstream_read(res)?;
                }
                () = tokio::time::sleep_until(stall_at.min(deadline)), if !pending.is_empty() => {
                    tracing::warn!(
                        stall = ?WRITE_STALL,
                        unwritten = pending.len(),
                        "upstream stopped reading; closing the session"
                    );
                    return Err(SessionEnd::UpstreamWriteTimeout);
                }
                () = tokio::time::sleep_until(deadline), if pending.is_empty() && !body_done => {
                    tracing::warn!(timeout = ?BODY_TIMEOUT, "client stalled sending a body");
                    return Err(SessionEnd::ClientError);
                }
            }
        }
    }

    /// Half-closes the upstream on `/close`: bounded, and cut short by the
    /// session's cancellation (the socket closes with the task anyway).
    pub(super) async fn shutdown_upstream(&mut self) {
        let cancel = self.cancel.clone();
        tokio::select! {
            res = tokio::time::timeout(SHUTDOWN_TIMEOUT, self.up_write.shutdown()) => {
                if res.is_err() {
                    tracing::debug!("upstream half-close timed out");
                }
            }
            () = cancel.cancelled() => {}
        }
    }
}
