//! Commands held until the authorizer answers, in the order they came.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::auth::{AuthRequest, Authorizer, Call, Decision};

type DecisionFuture = Pin<Box<dyn Future<Output = Decision> + Send>>;

/// One held command and its pending decision.
pub(super) struct Waiting {
    call: Call,
    app: String,
    name: String,
    /// The stream name as sent, query included: what the decision covers.
    key: String,
    /// Input offset of the command's first byte: nothing from here on is
    /// written before the decision.
    start: u64,
    stream_id: u32,
    decision: DecisionFuture,
}

/// A decided command, taken off the list.
pub(super) struct Decided {
    pub(super) call: Call,
    pub(super) app: String,
    pub(super) name: String,
    pub(super) key: String,
    pub(super) stream_id: u32,
    pub(super) decision: Decision,
}

impl Waiting {
    /// Starts deciding `request` (the future runs when the relay polls it).
    pub(super) fn ask(
        auth: &Arc<Authorizer>,
        request: AuthRequest,
        key: String,
        start: u64,
        stream_id: u32,
    ) -> Self {
        let auth = Arc::clone(auth);
        let (call, app, name) = (request.call, request.app.clone(), request.name.clone());
        Self {
            call,
            app,
            name,
            key,
            start,
            stream_id,
            decision: Box::pin(async move { auth.authorize(&request).await }),
        }
    }
}

/// The held commands of one connection, oldest first.
#[derive(Default)]
pub(super) struct WaitingList(VecDeque<Waiting>);

impl WaitingList {
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    pub(super) fn push(&mut self, waiting: Waiting) {
        self.0.push_back(waiting);
    }

    /// Whether a command for the same stream name (as sent) already waits
    /// (its decision covers this one too, which lies behind it).
    pub(super) fn covers(&self, call: Call, key: &str) -> bool {
        self.0.iter().any(|w| w.call == call && w.key == key)
    }

    /// Where the oldest held command starts.
    pub(super) fn front_start(&self) -> Option<u64> {
        self.0.front().map(|w| w.start)
    }

    /// The oldest command's decision, if it has come (polling it with `cx`
    /// otherwise).
    pub(super) fn poll_front(&mut self, cx: &mut Context<'_>) -> Option<Decided> {
        let front = self.0.front_mut()?;
        let Poll::Ready(decision) = front.decision.as_mut().poll(cx) else {
            return None;
        };
        let w = self.0.pop_front()?;
        Some(Decided {
            call: w.call,
            app: w.app,
            name: w.name,
            key: w.key,
            stream_id: w.stream_id,
            decision,
        })
    }
}
