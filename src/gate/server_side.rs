//! The upstream → client side of a gated connection: following the
//! server's chunk stream, never holding it, to know where a refusal's
//! `onStatus` can be written.

use std::io;
use std::task::Context;

use crate::relay::{Inspect, Release};
use crate::rtmp::follow::{Followed, Follower};

/// Follows what the server sends (S0, S1, S2, then chunks).
#[derive(Debug, Default)]
pub struct ServerSide {
    follower: Follower,
    scratch: Vec<Followed>,
    lost: bool,
}

impl ServerSide {
    /// Following the server's bytes after a handshake rtmpgate did itself
    /// (routed connections): chunks from the first byte.
    pub fn after_handshake() -> Self {
        Self {
            follower: Follower::after(0),
            ..Self::default()
        }
    }

    /// The chunk size the client reads the server's chunks with, when the
    /// relay ended between two of the server's messages with all of them
    /// delivered: an `onStatus` can then be written. `None` otherwise.
    pub fn insert_point(&self) -> Option<u32> {
        (!self.lost && self.follower.at_boundary()).then(|| self.follower.chunk_size())
    }
}

impl Inspect for ServerSide {
    fn observe(&mut self, bytes: &[u8]) -> io::Result<()> {
        if !self.lost && self.follower.feed(bytes, &mut self.scratch).is_err() {
            // Never a reason to break the server's stream: only no insert.
            self.lost = true;
        }
        self.scratch.clear();
        Ok(())
    }

    fn release(&mut self, _: &mut Context<'_>) -> io::Result<Release> {
        Ok(Release {
            upto: u64::MAX,
            waiting: false,
        })
    }

    fn abandoned(&mut self, unwritten: usize) {
        if unwritten > 0 {
            self.lost = true;
        }
    }
}
