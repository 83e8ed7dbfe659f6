//! Following a live RTMP chunk stream without buffering it.
//!
//! [`Follower`] watches the bytes one side of a relay sends, as they pass,
//! and reports the few messages an edge must understand — commands
//! (`connect`, `publish`, `play`, …) and the two control messages that change
//! how later chunks are read (Set Chunk Size, Abort) — with the input offsets
//! of their first and last byte. Media payloads are counted and skipped, never
//! copied: per chunk the follower reads its header (at most 18 bytes) and
//! moves on, so it costs the relay a few instructions per chunk.
//!
//! Unlike [`ChunkReader`](super::ChunkReader), which owns its input and
//! reassembles every message (the router needs `connect` whole), the
//! follower never owns input: the relay keeps its buffer, and asks
//! [`Follower::hold_from`] how far it may forward so that an unfinished
//! command is never half-passed on.
//!
//! The plain handshake (C0, C1, C2: [`HANDSHAKE_LEN`] bytes from a client,
//! S0, S1, S2 from a server) is skipped by count; digest handshakes are the
//! same length, so they relay untouched. Ambiguous chunk constructs are
//! refused as [`ChunkReader`](super::ChunkReader) refuses them.

use header::{MAX_HEADER_LEN, Parsed};

use bytes::Bytes;

use super::chunk::{
    ChunkError, Control, DEFAULT_CHUNK_SIZE, DEFAULT_MAX_CHUNK_STREAMS, Message, TYPE_ABORT,
    TYPE_COMMAND_AMF0, TYPE_COMMAND_AMF3, TYPE_SET_CHUNK_SIZE, control,
};

/// Bytes of C0 + C1 + C2 (or S0 + S1 + S2): 1 + 1536 + 1536.
pub const HANDSHAKE_LEN: u64 = 1 + 1536 + 1536;

/// Longest command message reassembled. Real `connect`/`publish` commands
/// are a few hundred bytes; a longer one is refused rather than passed
/// unread, so that no command can be made too long to check.
pub const MAX_COMMAND_LEN: u32 = 16 * 1024;

/// A command or control message that went past, and where it lay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Followed {
    /// The message, reassembled.
    pub message: Message,
    /// Input offset of the first byte of its first chunk.
    pub start: u64,
    /// Input offset just past its last chunk.
    pub end: u64,
}

/// The header of the last message started on a chunk stream.
#[derive(Debug, Clone, Copy, Default)]
struct Header {
    ts_field: u32,
    timestamp: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

/// One chunk stream's state.
#[derive(Debug, Default)]
struct Stream {
    header: Header,
    /// Bytes of the current message still to come (0: none in progress).
    remaining: u32,
    /// The current message's payload so far, when it is one we read.
    kept: Option<Kept>,
}

#[derive(Debug)]
struct Kept {
    payload: Vec<u8>,
    start: u64,
}

/// Where the follower is inside a chunk's payload.
#[derive(Debug, Clone, Copy)]
struct InChunk {
    csid: u32,
    /// The chunk stream's entry in `streams`.
    index: usize,
    left: u32,
}

/// Follows one direction of an RTMP connection; see the module docs.
#[derive(Debug)]
pub struct Follower {
    /// Handshake bytes still to skip.
    skip: u64,
    /// Bytes fed so far.
    fed: u64,
    chunk_size: u32,
    streams: Streams,
    /// Start of a chunk header split across two feeds.
    head: [u8; MAX_HEADER_LEN],
    head_len: usize,
    chunk: Option<InChunk>,
    failed: Option<ChunkError>,
}

impl Follower {
    /// A follower of a client's (or server's) bytes from the first byte of
    /// the handshake.
    pub fn new() -> Self {
        Self::after(HANDSHAKE_LEN)
    }

    /// A follower whose input starts `skip` bytes before the first chunk
    /// (0: the input is chunks from its first byte).
    pub fn after(skip: u64) -> Self {
        Self {
            skip,
            fed: 0,
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: Streams::default(),
            head: [0; MAX_HEADER_LEN],
            head_len: 0,
            chunk: None,
            failed: None,
        }
    }

    /// The chunk size this side currently sends with.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Bytes fed so far.
    pub fn fed(&self) -> u64 {
        self.fed
    }

    /// Whether the input so far ends between two messages: no chunk, header
    /// or message unfinished, so that a whole message could be inserted here.
    pub fn at_boundary(&self) -> bool {
        self.failed.is_none()
            && self.skip == 0
            && self.chunk.is_none()
            && self.head_len == 0
            && self.streams.iter().all(|s| s.remaining == 0)
    }

    /// The earliest input offset that must not be forwarded yet: the start
    /// of an unfinished command, or of a chunk header split across feeds.
    /// [`Follower::fed`] when everything fed may go on.
    pub fn hold_from(&self) -> u64 {
        let header = self.fed - self.head_len as u64;
        self.streams
            .iter()
            .filter_map(|s| s.kept.as_ref().map(|k| k.start))
            .fold(header, u64::min)
    }

    /// Follows `data`, the next bytes of the input, appending every command
    /// and control message it completes to `out`. After an error the input
    /// cannot be followed any more and every later call fails the same way.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<Followed>) -> Result<(), ChunkError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        while !data.is_empty() {
            let step = self.step(data, out);
            match step {
                Ok(used) => data = &data[used..],
                Err(err) => {
                    self.failed = Some(err.clone());
                    self.streams.clear();
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    /// Consumes some of `data` (at least one byte): handshake, payload or a
    /// header.
    fn step(&mut self, data: &[u8], out: &mut Vec<Followed>) -> Result<usize, ChunkError> {
        if self.skip > 0 {
            let n = self.skip.min(data.len() as u64);
            self.skip -= n;
            self.fed += n;
            return Ok(n as usize);
        }
        if let Some(chunk) = self.chunk {
            return self.payload(chunk, data, out);
        }
        self.header(data, out)
    }

    /// Passes (and for a kept message copies) payload bytes of the current
    /// chunk.
    fn payload(
        &mut self,
        mut chunk: InChunk,
        data: &[u8],
        out: &mut Vec<Followed>,
    ) -> Result<usize, ChunkError> {
        let n = (chunk.left as usize).min(data.len());
        self.fed += n as u64;
        chunk.left -= n as u32;
        let stream = self.streams.at(chunk.index);
        if let Some(kept) = &mut stream.kept {
            kept.payload.extend_from_slice(&data[..n]);
        }
        stream.remaining -= n as u32;
        if chunk.left > 0 {
            self.chunk = Some(chunk);
        } else {
            self.chunk = None;
            if stream.remaining == 0 {
                self.complete(chunk.csid, out)?;
            }
        }
        Ok(n)
    }

    /// Parses the next chunk header, from `head` (a split header) and
    /// `data`; consumes what it used, or all of `data` if the header is
    /// still incomplete.
    fn header(&mut self, data: &[u8], out: &mut Vec<Followed>) -> Result<usize, ChunkError> {
        let chunk_start = self.fed - self.head_len as u64;
        let (parsed, used) = if self.head_len == 0 {
            match header::parse(&self.streams, data)? {
                Some(parsed) => {
                    let used = parsed.len;
                    (parsed, used)
                }
                None => return Ok(self.stash(data)),
            }
        } else {
            let had = self.head_len;
            let take = (MAX_HEADER_LEN - had).min(data.len());
            let mut joined = self.head;
            joined[had..had + take].copy_from_slice(&data[..take]);
            match header::parse(&self.streams, &joined[..had + take])? {
                Some(parsed) => {
                    self.head_len = 0;
                    let used = parsed.len - had;
                    (parsed, used)
                }
                None => return Ok(self.stash(data)),
            }
        };
        self.fed += used as u64;
        self.start_chunk(parsed, chunk_start, out)?;
        Ok(used)
    }

    /// Keeps the start of a header that has not fully arrived.
    fn stash(&mut self, data: &[u8]) -> usize {
        let take = (MAX_HEADER_LEN - self.head_len).min(data.len());
        self.head[self.head_len..self.head_len + take].copy_from_slice(&data[..take]);
        self.head_len += take;
        self.fed += take as u64;
        take
    }

    /// Applies a parsed header: starts a message if none is in progress on
    /// its chunk stream, then enters the chunk's payload.
    fn start_chunk(
        &mut self,
        p: Parsed,
        chunk_start: u64,
        out: &mut Vec<Followed>,
    ) -> Result<(), ChunkError> {
        let index = self.streams.entry(p.csid, DEFAULT_MAX_CHUNK_STREAMS)?;
        let stream = self.streams.at(index);
        if stream.remaining == 0 {
            let prev = stream.header;
            let header = Header {
                ts_field: p.ts_field,
                timestamp: if p.fmt == 0 {
                    p.ts_value
                } else {
                    prev.timestamp.wrapping_add(p.ts_value)
                },
                length: p.length.unwrap_or(prev.length),
                type_id: p.type_id.unwrap_or(prev.type_id),
                stream_id: p.stream_id.unwrap_or(prev.stream_id),
            };
            stream.header = header;
            stream.remaining = header.length;
            stream.kept = None;
            if is_kept(header.type_id) {
                if header.length > MAX_COMMAND_LEN {
                    return Err(ChunkError::MessageTooLong {
                        csid: p.csid,
                        len: header.length,
                        max: MAX_COMMAND_LEN,
                    });
                }
                stream.kept = Some(Kept {
                    payload: Vec::with_capacity(header.length as usize),
                    start: chunk_start,
                });
            }
        } else {
            stream.header.ts_field = p.ts_field;
        }
        let left = stream.remaining.min(self.chunk_size);
        if left > 0 {
            self.chunk = Some(InChunk {
                csid: p.csid,
                index,
                left,
            });
        } else {
            self.complete(p.csid, out)?;
        }
        Ok(())
    }

    /// A message ended on `csid`: report it if kept, and apply it if it is
    /// a control message.
    fn complete(&mut self, csid: u32, out: &mut Vec<Followed>) -> Result<(), ChunkError> {
        let Some(stream) = self.streams.get_mut(csid) else {
            return Ok(());
        };
        let Some(kept) = stream.kept.take() else {
            return Ok(());
        };
        let header = stream.header;
        let message = Message {
            csid,
            timestamp: header.timestamp,
            type_id: header.type_id,
            stream_id: header.stream_id,
            payload: Bytes::from(kept.payload),
        };
        self.apply_control(&message)?;
        out.push(Followed {
            message,
            start: kept.start,
            end: self.fed,
        });
        Ok(())
    }

    /// Set Chunk Size and Abort change how the next chunks are read; a
    /// value the follower cannot apply fails it, as it fails the reader.
    fn apply_control(&mut self, msg: &Message) -> Result<(), ChunkError> {
        match control(msg)? {
            Some(Control::ChunkSize(size)) => self.chunk_size = size,
            Some(Control::Abort(csid)) => {
                if let Some(stream) = self.streams.get_mut(csid) {
                    stream.remaining = 0;
                    stream.kept = None;
                }
            }
            None => {}
        }
        Ok(())
    }
}

impl Default for Follower {
    fn default() -> Self {
        Self::new()
    }
}

/// Messages the follower reassembles: commands and chunk-layer control.
fn is_kept(type_id: u8) -> bool {
    matches!(
        type_id,
        TYPE_COMMAND_AMF0 | TYPE_COMMAND_AMF3 | TYPE_SET_CHUNK_SIZE | TYPE_ABORT
    )
}

mod header;
mod streams;

use streams::Streams;
#[cfg(test)]
mod tests;
