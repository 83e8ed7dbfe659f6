//! One RTMPT session: the task that owns its upstream socket.
//!
//! Owns everything that happens inside a session: applying requests in
//! sequence order (with a small reorder window, `ordering`), replaying the
//! cached reply to a duplicate, streaming `/send` bodies into the upstream
//! (`body`, every write bounded) through the stream gate (`gated`: held
//! while a publish/play awaits authorization), buffering server bytes up to a cap
//! (`buffer`; then not reading the upstream, so TCP backpressure reaches
//! the server; the bytes held, cached reply included, are charged to
//! [`crate::overload`]), the `/idle` long-poll, the delay byte, and the two
//! log lines of a session (opened, closed with its `stats` and stream; why
//! it ended is `end`). HTTP parsing
//! is in [`super`]; which sessions exist is in [`super::table`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::command::{Command, Reply, Request};
use super::path::Verb;
use super::table::SessionTable;
use crate::auth::Authorizer;
use crate::config::SessionSettings;
use crate::gate::ClientFacts;
use crate::metrics::Metrics;
use crate::overload::{Charge, Overload};
use crate::relay::sleep_until_opt;
use crate::upstream::UpstreamStream;

mod body;
mod buffer;
mod end;
mod gated;
pub mod ordering;
mod stats;

use self::buffer::DownBuffer;
pub use self::end::SessionEnd;
use self::gated::Gated;
use self::ordering::Reorder;
use self::stats::Stats;

/// How long a missing sequence number may hold later requests before the
/// session is declared broken.
const GAP_TIMEOUT: Duration = Duration::from_secs(5);
/// A first request numbered 1 (Red5's client) waits this long for a 0.
const START_GRACE: Duration = Duration::from_millis(100);
/// Longest a client may take to deliver one `/send` body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// The TCP connection that carried `/open`.
    pub open_conn: u64,
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
    /// A child of `abort`, also cancelled when the table drops the session
    /// (expiry): stops the task even inside an upstream write.
    pub cancel: CancellationToken,
    /// Where the buffered server bytes are charged.
    pub overload: Arc<Overload>,
    /// Stream authorization, and what it is told about the client.
    pub auth: Arc<Authorizer>,
    /// The client as the stream gate reports it (`rtmpt`/`rtmpts`, SNI).
    pub facts: ClientFacts,
}

/// The session task's state.
struct Session {
    id: String,
    table: Arc<SessionTable>,
    up_read: ReadHalf<UpstreamStream>,
    up_write: WriteHalf<UpstreamStream>,
    settings: SessionSettings,
    metrics: Arc<Metrics>,
    abort: CancellationToken,
    cancel: CancellationToken,
    /// Server→client bytes not yet delivered.
    down: DownBuffer,
    /// `down`'s allocation plus the cached reply, as charged to the
    /// overload accounting.
    charged: Charge,
    upstream_eof: bool,
    /// The next sequence number to apply and the early arrivals.
    order: Reorder<Request>,
    /// Last applied sequence number and its reply, for duplicates.
    last: Option<(u64, Reply)>,
    parked: Option<Parked>,
    empty_streak: u32,
    stats: Stats,
    /// The client's bytes pass the stream gate on their way up.
    gated: Gated,
}

/// Runs a session until it ends; removes it from the table and logs.
pub async fn run(start: SessionStart) {
    let SessionStart {
        id,
        client,
        open_conn,
        upstream,
        mut commands,
        settings,
        table,
        metrics,
        abort,
        cancel,
        overload,
        auth,
        facts,
    } = start;
    let started = Instant::now();
    tracing::info!(session = %short(&id), %client, "rtmpt session opened");
    let (up_read, up_write) = tokio::io::split(upstream);
    let mut stats = Stats::default();
    stats.request_on(open_conn);
    let mut s = Session {
        id,
        table,
        up_read,
        up_write,
        down: DownBuffer::new(settings.buffer_cap),
        settings,
        metrics: Arc::clone(&metrics),
        abort,
        cancel,
        charged: overload.charge(0),
        upstream_eof: false,
        order: Reorder::default(),
        last: None,
        parked: None,
        empty_streak: 0,
        stats,
        gated: Gated::new(auth, facts, Arc::clone(&metrics.apps)),
    };
    let end = s.serve(&mut commands).await;
    s.table.remove(&s.id);
    // Whatever still waits gets a clear "session over".
    if let Some(p) = s.parked.take() {
        let _ = p.reply.send(Reply::Gone);
    }
    for req in s.order.drain() {
        let _ = req.reply.send(Reply::Gone);
    }
    commands.close();
    while let Ok(cmd) = commands.try_recv() {
        if let Command::Request(req) = cmd {
            let _ = req.reply.send(Reply::Gone);
        }
    }
    let st = &s.stats;
    metrics.add_bytes(st.bytes_up, st.bytes_down);
    metrics.rtmpt_session_closed(end.as_str());
    let names = s.gated.names();
    metrics
        .apps
        .add_bytes(names.app.as_deref(), st.bytes_up, st.bytes_down);
    tracing::info!(
        session = %short(&s.id),
        %client,
        reason = end.as_str(),
        app = names.app.as_deref(),
        stream = names.stream.as_deref(),
        call = names.call,
        bytes_in = st.bytes_up,
        bytes_out = st.bytes_down,
        requests = st.requests,
        connections = st.connections,
        duration_ms = started.elapsed().as_millis() as u64,
        "rtmpt session closed"
    );
}

/// First 8 characters of an id: enough to correlate logs, too few to hijack.
pub fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

impl Session {
    async fn serve(&mut self, commands: &mut mpsc::Receiver<Command>) -> SessionEnd {
        let cancel = self.cancel.clone();
        loop {
            if let Err(end) = self.apply_ready().await {
                return end;
            }
            if self.finished() {
                return SessionEnd::UpstreamClosed;
            }
            let can_read = !self.upstream_eof && self.down.has_room();
            let park_deadline = self.parked.as_ref().map(|p| p.deadline);
            let gap_deadline = self.gap_deadline();
            tokio::select! {
                () = cancel.cancelled() => return self.cancel_reason(),
                cmd = commands.recv() => match cmd {
                    None => return SessionEnd::Expired,
                    Some(Command::Request(req)) => {
                        self.stats.request_on(req.conn);
                        self.accept(req);
                    }
                    Some(Command::Release { seq }) => {
                        if self.parked.as_ref().is_some_and(|p| p.seq == seq) {
                            self.answer_parked();
                        }
                    }
                },
                res = self.down.read_from(&mut self.up_read), if can_read => {
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
                self.stats.bytes_down += n as u64;
                self.gated.observe_server(self.down.tail(n));
                self.recharge();
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
        while self.parked.is_none() {
            let Some((_, req)) = self.order.pop_ready() else {
                return Ok(());
            };
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
            conn: _,
            reply,
        } = req;
        match verb {
            Verb::Send => {
                if let Some(body) = body
                    && let Err(end) = self.forward_body(body).await
                {
                    // A refused client learns why in this reply, where
                    // the server's stream allows it.
                    match self.gated.refusal_bytes(self.down.is_empty()) {
                        Some(status) if end == SessionEnd::AuthDenied => {
                            self.down.push(&status);
                            let r = self.take_reply();
                            self.finish(seq, reply, r);
                        }
                        _ => {
                            let _ = reply.send(Reply::Gone);
                        }
                    }
                    return Err(end);
                }
                let r = self.take_reply();
                self.finish(seq, reply, r);
            }
            Verb::Idle => {
                // Park only when nothing can answer it sooner: no server
                // bytes, no upstream EOF, and no later request sent.
                let next_waiting = pipelined || self.order.is_waiting(seq + 1);
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
                self.shutdown_upstream().await;
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
        self.recharge();
        let _ = to.send(reply);
    }

    /// Charges what the session holds: the buffer's allocation and the
    /// cached reply (shared with the one being sent).
    fn recharge(&mut self) {
        let cached = match &self.last {
            Some((_, Reply::Data { data, .. })) => data.len(),
            _ => 0,
        };
        self.charged.set(self.down.allocated() + cached);
    }

    /// Drains up to one reply's worth of server bytes.
    fn take_reply(&mut self) -> Reply {
        let data = self.down.take(self.settings.max_reply);
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
