//! The follower's per-chunk-stream state, in a small vector: clients use a
//! handful of chunk stream ids, so a linear scan beats hashing, and an
//! entry's index stays valid (entries are never removed) for the chunk in
//! progress to point at.

use super::Stream;
use crate::rtmp::chunk::ChunkError;

#[derive(Debug, Default)]
pub(super) struct Streams(Vec<(u32, Stream)>);

impl Streams {
    pub(super) fn index(&self, csid: u32) -> Option<usize> {
        self.0.iter().position(|(id, _)| *id == csid)
    }

    pub(super) fn get(&self, csid: u32) -> Option<&Stream> {
        self.index(csid).map(|i| &self.0[i].1)
    }

    pub(super) fn at(&mut self, index: usize) -> &mut Stream {
        &mut self.0[index].1
    }

    pub(super) fn get_mut(&mut self, csid: u32) -> Option<&mut Stream> {
        self.index(csid).map(|i| &mut self.0[i].1)
    }

    /// The index of `csid`'s entry, made if new (at most `max` entries).
    pub(super) fn entry(&mut self, csid: u32, max: usize) -> Result<usize, ChunkError> {
        if let Some(i) = self.index(csid) {
            return Ok(i);
        }
        if self.0.len() >= max {
            return Err(ChunkError::TooManyChunkStreams { max });
        }
        self.0.push((csid, Stream::default()));
        Ok(self.0.len() - 1)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Stream> {
        self.0.iter().map(|(_, s)| s)
    }

    pub(super) fn clear(&mut self) {
        self.0.clear();
    }
}
