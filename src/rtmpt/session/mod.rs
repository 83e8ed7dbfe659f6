//! One RTMPT session: the task that owns its upstream socket.
//!
//! Owns everything that happens inside a session: applying requests in
//! sequence order (with a small reorder window), replaying the cached reply
//! to a duplicate, streaming `/send` bodies into the upstream, buffering
//! server bytes up to a cap (then not reading the upstream, so TCP
//! backpressure reaches the server; the buffered bytes are charged to
//! [`crate::overload`]), the `/idle` long-poll, the delay byte, and the log
//! line when the session ends. HTTP parsing is in [`super`];
//! which sessions exist is in [`super::table`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::command::{Body, Command, Reply, Request};
use super::path::Verb;
use super::table::SessionTable;
use crate::config::SessionSettings;
use crate::metrics::Metrics;
use crate::overload::{Charge, Overload};
use crate::relay::sleep_until_opt;
use crate::upstream::UpstreamStream;

mod ordering;

/// How long a missing sequence number may hold later requests before the
/// session is declared broken.
const GAP_TIMEOUT: Duration = Duration::from_secs(5);
/// A first request numbered 1 (Red5's client) waits this long for a 0.
const START_GRACE: Duration = Duration::from_millis(100);
/// Longest a client may take to deliver one `/send` body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Upstream read size; also the growth step of the server→client buffer.
const READ_CHUNK: usize = 16 * 1024;

/// Why a session ended, for its log line and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The client sent `/close`.
    ClientClosed,
    /// The upstream closed and every byte was delivered.
    UpstreamClosed,
    /// Writing to or reading from the upstream failed.
    UpstreamError,
    /// A `/send` body failed or stalled.
    ClientError,
    /// The reaper dropped it after no request for the expiry time.
    Expired,
    /// A missing sequence number never arrived.
    SequenceGap,
    /// rtmpgate shut down.
    Shutdown,
}

impl SessionEnd {
    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientClosed => "client_closed",
            Self::UpstreamClosed => "upstream_closed",
            Self::UpstreamError => "upstream_error",
            Self::ClientError => "client_error",
            Self::Expired => "expired",
            Self::SequenceGap => "sequence_gap",
            Self::Shutdown => "shutdown",
        }
    }
}

/// Red5's adaptive polling hint: 1 while data flows, then 3, 5, 9, 0x11 and
/// 0x21 after each further ten empty replies.
pub fn delay_byte(empty_streak: u32) -> u8 {
    match empty_streak / 10 {
        0 => 0x01,
        1 => 0x03,
        2 => 0x05,
        3 => 0x09,
        4 => 0x11,
        _ => 0x21,
    }
}

struct Parked {
    seq: u64,
    reply: oneshot::Sender<Reply>,
    deadline: Instant,
}

/// Everything a session task needs to start.
pub struct SessionStart {
    /// Session id (also the table key).
    pub id: String,
    /// Client address that opened it.
    pub client: IpAddr,
    /// Connected upstream.
    pub upstream: UpstreamStream,
    /// Commands from the HTTP side.
    pub commands: mpsc::Receiver<Command>,
    /// Limits and timings.
    pub settings: SessionSettings,
    /// The table to leave when done.
    pub table: Arc<SessionTable>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Fires when rtmpgate's drain period is over.
    pub abort: CancellationToken,
    /// Where the buffered server bytes are charged.
    pub overload: Arc<Overload>,
}

/// The session task's state.
struct Session {
    up_read: ReadHalf<UpstreamStream>,
    up_write: WriteHalf<UpstreamStream>,
    settings: SessionSettings,
    metrics: Arc<Metrics>,
    /// Server→client bytes not yet delivered.
    down: BytesMut,
    /// `down`'s length, as charged to the overload accounting.
    charged: Charge,
    upstream_eof: bool,
    /// Next sequence number to apply; `None` before the first request.
    next_seq: Option<u64>,
    /// Early arrivals, keyed by sequence number, with arrival time.
    window: BTreeMap<u64, (Request, Instant)>,
    /// Last applied sequence number and its reply, for duplicates.
    last: Option<(u64, Reply)>,
    parked: Option<Parked>,
    empty_streak: u32,
    bytes_up: u64,
    bytes_down: u64,
}

/// Runs a session until it ends; removes it from the table and logs.
pub async fn run(start: SessionStart) {
    let SessionStart {
        id,
        client,
        upstream,
        mut commands,
        settings,
        table,
        metrics,
        abort,
        overload,
    } = start;
    let started = Instant::now();
    let (up_read, up_write) = tokio::io::split(upstream);
    let mut s = Session {
        up_read,
        up_write,
        settings,
        metrics: Arc::clone(&metrics),
        down: BytesMut::new(),
        charged: overload.charge(0),
        upstream_eof: false,
        next_seq: None,
        window: BTreeMap::new(),
        last: None,
        parked: None,
        empty_streak: 0,
        bytes_up: 0,
        bytes_down: 0,
    };
    let end = s.serve(&mut commands, &abort).await;
    table.remove(&id);
    // Whatever still waits gets a clear "session over".
    if let Some(p) = s.parked.take() {
        let _ = p.reply.send(Reply::Gone);
    }
    for (_, (req, _)) in std::mem::take(&mut s.window) {
        let _ = req.reply.send(Reply::Gone);
    }
    commands.close();
    while let Ok(cmd) = commands.try_recv() {
        if let Command::Request(req) = cmd {
            let _ = req.reply.send(Reply::Gone);
        }
    }
    metrics.add_bytes(s.bytes_up, s.bytes_down);
    metrics.rtmpt_session_closed(end.as_str());
    tracing::info!(
        session = %short(&id),
        %client,
        reason = end.as_str(),
        bytes_in = s.bytes_up,
        bytes_out = s.bytes_down,
        duration_ms = started.elapsed().as_millis() as u64,
        "rtmpt session closed"
    );
}

/// First 8 characters of an id: enough to correlate logs, too few to hijack.
pub fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

impl Session {
    async fn serve(
        &mut self,
        commands: &mut mpsc::Receiver<Command>,
        abort: &CancellationToken,
    ) -> SessionEnd {
        loop {
            if let Err(end) = self.apply_ready().await {
                return end;
            }
            if self.finished() {
                return SessionEnd::UpstreamClosed;
            }
            let can_read = !self.upstream_eof && self.down.len() < self.settings.buffer_cap;
            let park_deadline = self.parked.as_ref().map(|p| p.deadline);
            let gap_deadline = self.gap_deadline();
            tokio::select! {
                () = abort.cancelled() => return SessionEnd::Shutdown,
                cmd = commands.recv() => match cmd {
                    None => return SessionEnd::Expired,
                    Some(Command::Request(req)) => self.accept(req),
                    Some(Command::Release { seq }) => {
                        if self.parked.as_ref().is_some_and(|p| p.seq == seq) {
                            self.answer_parked();
                        }
                    }
                },
                res = read_upstream(&mut self.up_read, &mut self.down), if can_read => {
                    if let Err(end) = self.note_upstream_read(res) {
                        return end;
                    }
                    if self.parked.is_some() {
                        self.answer_parked();
                    }
                }
                () = sleep_until_opt(park_deadline) => self.answer_parked(),
                () = sleep_until_opt(gap_deadline) => {
                    if let Err(end) = self.on_gap_timeout() {
                        return end;
                    }
                }
            }
        }
    }

    /// Upstream gone and everything delivered: nothing more can happen.
    fn finished(&self) -> bool {
        self.upstream_eof && self.down.is_empty() && self.parked.is_none()
    }

    fn note_upstream_read(&mut self, res: std::io::Result<usize>) -> Result<(), SessionEnd> {
        match res {
            Ok(0) => {
                self.upstream_eof = true;
                Ok(())
            }
            Ok(n) => {
                self.bytes_down += n as u64;
                self.charged.set(self.down.len());
                Ok(())
            }
            Err(err) => {
                tracing::debug!(%err, "upstream read failed");
                Err(SessionEnd::UpstreamError)
            }
        }
    }

    /// Applies queued requests for as long as the next one is there.
    async fn apply_ready(&mut self) -> Result<(), SessionEnd> {
        while let Some(next) = self.next_seq {
            if self.parked.is_some() {
                return Ok(());
            }
            let Some((req, _)) = self.window.remove(&next) else {
                return Ok(());
            };
            self.next_seq = Some(next + 1);
            self.apply(req).await?;
        }
        Ok(())
    }

    async fn apply(&mut self, req: Request) -> Result<(), SessionEnd> {
        let Request {
            verb,
            seq,
            body,
            pipelined,
            reply,
        } = req;
        match verb {
            Verb::Send => {
                if let Some(body) = body
                    && let Err(end) = self.forward_body(body).await
                {
                    let _ = reply.send(Reply::Gone);
                    return Err(end);
                }
                let r = self.take_reply();
                self.finish(seq, reply, r);
            }
            Verb::Idle => {
                // Park only when nothing can answer it sooner: no server
                // bytes, no upstream EOF, and no later request sent.
                let next_waiting = pipelined || self.window.contains_key(&(seq + 1));
                if self.down.is_empty()
                    && !self.upstream_eof
                    && !next_waiting
                    && !self.settings.long_poll.is_zero()
                {
                    self.parked = Some(Parked {
                        seq,
                        reply,
                        deadline: Instant::now() + self.settings.long_poll,
                    });
                } else {
                    let r = self.take_reply();
                    self.finish(seq, reply, r);
                }
            }
            Verb::Close => {
                let _ = self.up_write.shutdown().await;
                self.finish(seq, reply, Reply::Closed);
                return Err(SessionEnd::ClientClosed);
            }
        }
        Ok(())
    }

    fn answer_parked(&mut self) {
        if let Some(p) = self.parked.take() {
            let r = self.take_reply();
            self.finish(p.seq, p.reply, r);
        }
    }

    /// Remembers the reply for duplicates and sends it.
    fn finish(&mut self, seq: u64, to: oneshot::Sender<Reply>, reply: Reply) {
        self.last = Some((seq, reply.clone()));
        let _ = to.send(reply);
    }

    /// Drains up to one reply's worth of server bytes.
    fn take_reply(&mut self) -> Reply {
        let n = self.down.len().min(self.settings.max_reply);
        let data = self.down.split_to(n).freeze();
        self.charged.set(self.down.len());
        if data.is_empty() {
            self.empty_streak = self.empty_streak.saturating_add(1);
        } else {
            self.empty_streak = 0;
        }
        Reply::Data {
            delay: delay_byte(self.empty_streak),
            data,
        }
    }

    /// Streams a `/send` body into the upstream as its frames arrive, while
    /// still reading the upstream so neither side can stall the other.
    async fn forward_body(&mut self, mut body: Body) -> Result<(), SessionEnd> {
        let deadline = Instant::now() + BODY_TIMEOUT;
        loop {
            let can_read = !self.upstream_eof && self.down.len() < self.settings.buffer_cap;
            tokio::select! {
                frame = body.frame() => match frame {
                    None => return Ok(()),
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            self.up_write.write_all(&data).await.map_err(|err| {
                                tracing::debug!(%err, "upstream write failed");
                                SessionEnd::UpstreamError
                            })?;
                            self.bytes_up += data.len() as u64;
                        }
                    }
                    Some(Err(err)) => {
                        tracing::debug!(%err, "client body failed");
                        return Err(SessionEnd::ClientError);
                    }
                },
                res = read_upstream(&mut self.up_read, &mut self.down), if can_read => {
                    self.note_upstream_read(res)?;
                }
                () = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(timeout = ?BODY_TIMEOUT, "client stalled sending a body");
                    return Err(SessionEnd::ClientError);
                }
            }
        }
    }
}

async fn read_upstream(
    up: &mut ReadHalf<UpstreamStream>,
    down: &mut BytesMut,
) -> std::io::Result<usize> {
    down.reserve(READ_CHUNK);
    up.read_buf(down).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_byte_steps_up_like_red5() {
        assert_eq!(delay_byte(0), 1);
        assert_eq!(delay_byte(9), 1);
        assert_eq!(delay_byte(10), 3);
        assert_eq!(delay_byte(25), 5);
        assert_eq!(delay_byte(35), 9);
        assert_eq!(delay_byte(45), 0x11);
        assert_eq!(delay_byte(1000), 0x21);
    }

    #[test]
    fn short_ids_hide_the_secret_part() {
        assert_eq!(short("0123456789abcdef"), "01234567");
        assert_eq!(short("abc"), "abc");
    }
}
