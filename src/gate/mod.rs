//! The stream gate: what one RTMP connection publishes or plays, and
//! holding a `publish`/`play` back from the upstream until it is
//! authorized.
//!
//! Owns [`StreamGate`] (the client → upstream [`Inspect`]or: follows the
//! client's chunk stream with [`rtmp::follow`](crate::rtmp::follow), reads
//! `connect` and every command that names a stream, asks the
//! [`Authorizer`] and releases bytes only up to the first command still
//! waiting), [`ServerSide`] (the upstream → client follower, for the chunk
//! size and message boundary the refusal needs), the refusal's `onStatus`
//! and the stream names for the close log line. It does not own the rules
//! (`auth`), the relay (`relay`) or the sockets (the caller).
//!
//! Bytes of allowed streams are relayed unchanged; nothing is rewritten.
//! With authorization on, what cannot be followed (RTMPE, a malformed chunk
//! stream, a command too long or unreadable) is refused: fail closed. With
//! it off, the gate only names streams and never holds or refuses.

mod server_side;
mod waiting;

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::task::Context;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::app_metrics::{AppMetrics, StreamGuard};
use crate::auth::{AuthRequest, Authorizer, Call};
use crate::relay::{Inspect, Refused, Release};
use crate::rtmp::follow::{Followed, Follower};
use crate::rtmp::stream_command::{StreamCommand, classify};
use crate::rtmp::{self, query};

pub use server_side::ServerSide;
use waiting::{Waiting, WaitingList};

/// Commands awaiting a decision at once; a client that sends more before
/// the first is answered is flooding.
const MAX_WAITING: usize = 8;

/// Streams allowed on one connection that need no second decision.
const MAX_ALLOWED: usize = 16;

/// What the gate knows of the client, for the requests it builds.
#[derive(Debug, Clone)]
pub struct ClientFacts {
    /// The real client address.
    pub addr: IpAddr,
    /// `rtmp`, `rtmps`, `rtmpt` or `rtmpts`.
    pub protocol: &'static str,
    /// TLS server name, if any.
    pub sni: Option<String>,
}

/// The stream a connection named last, for its close log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamNames {
    /// The `connect` app.
    pub app: Option<String>,
    /// The stream name as the log mode shows it (never a raw key unless
    /// `--log-stream-key=plain`).
    pub stream: Option<String>,
    /// `publish` or `play`.
    pub call: Option<&'static str>,
}

/// A refused publish or play: what the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What was refused.
    pub call: Call,
    /// The message stream the command came on (the `onStatus` goes there).
    pub stream_id: u32,
    /// Why, as the client and the log see it.
    pub reason: String,
}

/// What a gate saw on a connection that ended.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// The refused publish or play, if one was.
    pub refusal: Option<Refusal>,
    /// The stream the connection named last.
    pub names: StreamNames,
}

/// `connect`'s facts, once it went past.
#[derive(Debug, Clone, Default)]
struct Connected {
    app: String,
    tc_url: String,
    flash_ver: String,
}

/// The client → upstream inspector; see the module docs.
pub struct StreamGate {
    auth: Arc<Authorizer>,
    client: ClientFacts,
    /// Refuse what cannot be checked.
    enforce: bool,
    follower: Follower,
    /// Scratch for what one `observe` completes.
    followed: Vec<Followed>,
    /// Following stopped (not enforcing): everything passes.
    blind: bool,
    first_byte_seen: bool,
    connected: Option<Connected>,
    waiting: WaitingList,
    allowed: Vec<(Call, String)>,
    names: StreamNames,
    refusal: Option<Refusal>,
    /// Per-app active streams, when counted.
    apps: Option<Arc<AppMetrics>>,
    /// This connection's stream in the per-app gauge.
    active: Option<StreamGuard>,
}

impl StreamGate {
    /// A gate for one client connection, from its first byte (C0).
    pub fn new(auth: Arc<Authorizer>, client: ClientFacts) -> Self {
        Self::with(auth, client, Follower::new(), false)
    }

    /// A gate whose input starts with the first chunk after the handshake
    /// (rtmpgate did the handshake itself, as on routed connections).
    pub fn after_handshake(auth: Arc<Authorizer>, client: ClientFacts) -> Self {
        Self::with(auth, client, Follower::after(0), true)
    }

    fn with(
        auth: Arc<Authorizer>,
        client: ClientFacts,
        follower: Follower,
        handshaken: bool,
    ) -> Self {
        let enforce = auth.is_enabled();
        Self {
            auth,
            client,
            enforce,
            follower,
            followed: Vec::new(),
            blind: false,
            first_byte_seen: handshaken,
            connected: None,
            waiting: WaitingList::default(),
            allowed: Vec::new(),
            names: StreamNames::default(),
            refusal: None,
            apps: None,
            active: None,
        }
    }

    /// Counts the connection's stream in the per-app metrics once it passes.
    pub fn with_app_metrics(mut self, apps: Arc<AppMetrics>) -> Self {
        self.apps = Some(apps);
        self
    }

    /// The stream went on to the upstream: count it (once per connection).
    fn stream_passed(&mut self, call: Call) {
        if self.active.is_none()
            && let Some(apps) = &self.apps
        {
            let app = self.connected.as_ref().map(|c| c.app.as_str());
            self.active = apps.stream_started(app, call.as_str());
        }
    }

    /// The stream the connection named last.
    pub fn names(&self) -> &StreamNames {
        &self.names
    }

    /// The refused publish or play, once one was.
    pub fn refusal(&self) -> Option<&Refusal> {
        self.refusal.as_ref()
    }

    /// What the gate saw, for the end of the connection.
    pub fn verdict(&self) -> Verdict {
        Verdict {
            refusal: self.refusal.clone(),
            names: self.names.clone(),
        }
    }

    /// Stops following, or refuses when enforcing.
    fn unfollowable(&mut self, why: String) -> io::Result<()> {
        if self.enforce {
            tracing::warn!(reason = %why, "RTMP stream cannot be checked; closing (authorization is on)");
            return Err(Refused(why).into_io());
        }
        tracing::debug!(reason = %why, "RTMP stream no longer followed");
        self.blind = true;
        self.waiting.clear();
        Ok(())
    }

    fn on_command(&mut self, f: Followed) -> io::Result<()> {
        let (call, command, raw) = match classify(&f.message) {
            Ok(StreamCommand::Connect {
                app,
                tc_url,
                flash_ver,
            }) => {
                self.names.app = Some(app.clone());
                self.connected = Some(Connected {
                    app,
                    tc_url: tc_url.unwrap_or_default(),
                    flash_ver: flash_ver.unwrap_or_default(),
                });
                return Ok(());
            }
            Ok(StreamCommand::Publish { command, name }) => (Call::Publish, command, name),
            Ok(StreamCommand::Play { command, name }) => (Call::Play, command, name),
            Ok(StreamCommand::Other) => return Ok(()),
            Err(err) => return self.unfollowable(err.to_string()),
        };
        let Some((name, args)) = query::split_query(&raw) else {
            return self.unfollowable(format!("{command} with too many query arguments"));
        };
        self.names.stream = self.auth.log_name(&name);
        self.names.call = Some(call.as_str());
        // Decisions are remembered for the name as sent, query included:
        // another key for the same stream is asked about again.
        if self.waiting.covers(call, &raw) {
            return Ok(());
        }
        if !self.auth.checks(call) || self.is_allowed(call, &raw) {
            self.stream_passed(call);
            return Ok(());
        }
        if self.waiting.len() >= MAX_WAITING {
            return Err(Refused(format!(
                "more than {MAX_WAITING} stream commands awaiting authorization"
            ))
            .into_io());
        }
        let connected = self.connected.clone().unwrap_or_default();
        let request = AuthRequest {
            call,
            app: connected.app,
            name,
            args,
            addr: self.client.addr,
            tcurl: connected.tc_url,
            flashver: connected.flash_ver,
            protocol: self.client.protocol,
            sni: self.client.sni.clone(),
        };
        self.waiting.push(Waiting::ask(
            &self.auth,
            request,
            raw,
            f.start,
            f.message.stream_id,
        ));
        Ok(())
    }

    fn is_allowed(&self, call: Call, name: &str) -> bool {
        self.allowed.iter().any(|(c, n)| *c == call && n == name)
    }

    fn remember_allowed(&mut self, call: Call, name: String) {
        if self.allowed.len() >= MAX_ALLOWED {
            self.allowed.remove(0);
        }
        self.allowed.push((call, name));
    }
}

impl Inspect for StreamGate {
    fn observe(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.blind || bytes.is_empty() {
            return Ok(());
        }
        if !self.first_byte_seen {
            self.first_byte_seen = true;
            if bytes[0] != rtmp::handshake::RTMP_VERSION {
                return self.unfollowable(
                    "encrypted RTMP (RTMPE) cannot be authorized; use rtmps:// instead".into(),
                );
            }
        }
        let mut followed = std::mem::take(&mut self.followed);
        let result = self.follower.feed(bytes, &mut followed);
        let mut outcome = match result {
            Ok(()) => Ok(()),
            Err(err) => self.unfollowable(format!("unreadable RTMP chunk stream: {err}")),
        };
        for f in followed.drain(..) {
            if outcome.is_err() || self.blind {
                break;
            }
            if is_command(f.message.type_id) {
                outcome = self.on_command(f);
            }
        }
        self.followed = followed;
        outcome
    }

    fn release(&mut self, cx: &mut Context<'_>) -> io::Result<Release> {
        if self.blind {
            return Ok(Release {
                upto: u64::MAX,
                waiting: false,
            });
        }
        while let Some(decided) = self.waiting.poll_front(cx) {
            let names = self.auth.log_name(&decided.name);
            let d = &decided.decision;
            if d.allowed {
                tracing::info!(
                    call = decided.call.as_str(),
                    app = %decided.app,
                    stream = names.as_deref(),
                    rule = d.rule.as_str(),
                    latency_ms = d.latency.as_millis() as u64,
                    "stream authorized"
                );
                self.stream_passed(decided.call);
                self.remember_allowed(decided.call, decided.key);
                continue;
            }
            tracing::warn!(
                call = decided.call.as_str(),
                app = %decided.app,
                stream = names.as_deref(),
                rule = d.rule.as_str(),
                reason = %d.reason,
                latency_ms = d.latency.as_millis() as u64,
                "stream refused"
            );
            let reason = format!("{} refused: {}", decided.call.as_str(), d.reason);
            self.refusal = Some(Refusal {
                call: decided.call,
                stream_id: decided.stream_id,
                reason: reason.clone(),
            });
            return Err(Refused(reason).into_io());
        }
        let follow = self.follower.hold_from();
        Ok(match self.waiting.front_start() {
            Some(start) => Release {
                upto: start.min(follow),
                waiting: true,
            },
            None => Release {
                upto: follow,
                waiting: false,
            },
        })
    }
}

fn is_command(type_id: u8) -> bool {
    type_id == rtmp::chunk::TYPE_COMMAND_AMF0 || type_id == rtmp::chunk::TYPE_COMMAND_AMF3
}

/// Tells a refused client why: an `onStatus` error, where the server's
/// chunk stream (as `server` followed it) allows inserting one; bounded in
/// time. Closing the client is the caller's.
pub async fn write_refusal<S: AsyncWrite + Unpin>(
    client: &mut S,
    refusal: &Refusal,
    server: &ServerSide,
) {
    if let Some(status) = server
        .insert_point()
        .and_then(|chunk_size| refusal_status(refusal, chunk_size))
    {
        let _ = tokio::time::timeout(WRITE_REFUSAL, client.write_all(&status)).await;
    }
}

/// Longest the refusal's `onStatus` may take to write.
const WRITE_REFUSAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The `onStatus` error for `refusal`, chunked for a client reading with
/// `chunk_size`.
pub fn refusal_status(refusal: &Refusal, chunk_size: u32) -> Option<Vec<u8>> {
    let code = match refusal.call {
        Call::Publish => rtmp::status::PUBLISH_BAD_NAME,
        Call::Play => rtmp::status::PLAY_FAILED,
    };
    rtmp::error_status(refusal.stream_id, code, &refusal.reason, chunk_size).ok()
}
