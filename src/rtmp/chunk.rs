//! RTMP chunk streams: reassembling messages from untrusted chunked bytes,
//! and chunking one message for sending.
//!
//! Owns the chunk layer only (basic and message headers, extended
//! timestamps, the peer's chunk size, Abort). What a message means is for
//! the caller, except the two protocol control messages that change how the
//! following chunks are read: Set Chunk Size (type 1) and Abort (type 2),
//! which [`ChunkReader`] applies itself and still yields.
//!
//! Every message comes with the input offsets of its first and last byte,
//! so a caller can forward the client's bytes exactly as they arrived.
//!
//! Where peers disagree about an ambiguous construct, the reader refuses it
//! rather than guess: a proxy that routes on what it parsed must see the
//! same messages as the server it forwards to. Extended timestamps are read
//! on every chunk whose header field is 0xFFFFFF, fmt 3 continuations
//! included, as ffmpeg and librtmp write and read them.

use std::collections::HashMap;

use bytes::{Buf, Bytes, BytesMut};

/// Chunk size in both directions until a Set Chunk Size says otherwise.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;

/// Largest chunk size accepted from a peer. The message length cap bounds
/// memory anyway; this only keeps absurd values out.
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;

/// Default for [`ChunkLimits::max_chunk_streams`]: clients use a handful.
pub const DEFAULT_MAX_CHUNK_STREAMS: usize = 64;

/// Lowest chunk stream id a message can use (0 and 1 select longer headers).
pub const MIN_CSID: u32 = 2;

/// Highest chunk stream id: 64 + 0xFFFF in the 3-byte basic header.
pub const MAX_CSID: u32 = 65599;

/// Message type: Set Chunk Size (protocol control).
pub const TYPE_SET_CHUNK_SIZE: u8 = 1;
/// Message type: Abort (protocol control).
pub const TYPE_ABORT: u8 = 2;
/// Message type: command encoded in AMF3 (a 0x00 format byte, then AMF0).
pub const TYPE_COMMAND_AMF3: u8 = 17;
/// Message type: command encoded in AMF0.
pub const TYPE_COMMAND_AMF0: u8 = 20;

/// A 24-bit timestamp field with this value means "see the 4-byte extended
/// timestamp".
const EXTENDED: u32 = 0xFF_FFFF;

/// Largest length the 24-bit message length field can carry.
const MAX_LENGTH_FIELD: u32 = 0xFF_FFFF;

/// One complete RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Chunk stream id it arrived on (or is to be sent on).
    pub csid: u32,
    /// Absolute timestamp in milliseconds (wrapping at 2^32).
    pub timestamp: u32,
    /// Message type id (e.g. [`TYPE_COMMAND_AMF0`]).
    pub type_id: u8,
    /// Message stream id (0 for NetConnection traffic).
    pub stream_id: u32,
    /// The reassembled payload.
    pub payload: Bytes,
}

/// A message from [`ChunkReader::next_message`] with where it lay in the
/// input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The message.
    pub message: Message,
    /// Input offset (bytes since the first pushed byte) of the first byte of
    /// the message's first chunk.
    pub start: u64,
    /// Input offset just past the message's last chunk: bytes consumed up to
    /// the end of this message.
    pub end: u64,
    /// Whether chunks of other chunk streams lay between this message's
    /// chunks, so `start..end` holds more than this message.
    pub interleaved: bool,
}

/// Bounds on what an untrusted peer can make a [`ChunkReader`] hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Longest message accepted, checked when its header arrives.
    pub max_message_len: u32,
    /// Most distinct chunk stream ids a peer may use.
    pub max_chunk_streams: usize,
}

impl ChunkLimits {
    /// These limits with [`DEFAULT_MAX_CHUNK_STREAMS`].
    pub const fn new(max_message_len: u32) -> Self {
        Self {
            max_message_len,
            max_chunk_streams: DEFAULT_MAX_CHUNK_STREAMS,
        }
    }
}

/// Why chunked input (or a message to encode) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// A message header declared a length over the limit.
    #[error("RTMP message of {len} bytes on chunk stream {csid} exceeds the {max}-byte limit")]
    MessageTooLong {
        /// Chunk stream id.
        csid: u32,
        /// Declared length.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// The peer used more distinct chunk stream ids than allowed.
    #[error("RTMP peer uses more than {max} chunk streams")]
    TooManyChunkStreams {
        /// The limit.
        max: usize,
    },
    /// A compressed header (fmt 1, 2 or 3) on a chunk stream with no earlier
    /// header to inherit from.
    #[error("RTMP chunk fmt {fmt} on chunk stream {csid} has no earlier header to refer to")]
    NoPreviousHeader {
        /// Chunk stream id.
        csid: u32,
        /// Header format.
        fmt: u8,
    },
    /// A fmt 0, 1 or 2 header while a message on that chunk stream was
    /// unfinished: peers disagree on whether that continues or replaces it.
    #[error("RTMP chunk stream {csid} starts a new message before finishing the previous one")]
    HeaderMidMessage {
        /// Chunk stream id.
        csid: u32,
    },
    /// A Set Chunk Size (or an encode request) with a size outside
    /// 1..=[`MAX_CHUNK_SIZE`].
    #[error("RTMP chunk size {0} is outside 1..={MAX_CHUNK_SIZE}")]
    BadChunkSize(u32),
    /// A Set Chunk Size or Abort whose payload is shorter than 4 bytes.
    #[error("RTMP control message type {type_id} has a {len}-byte payload, expected 4")]
    ShortControlMessage {
        /// Message type id.
        type_id: u8,
        /// Payload length.
        len: usize,
    },
    /// A chunk stream id outside [`MIN_CSID`]..=[`MAX_CSID`] given to the
    /// encoder.
    #[error("RTMP chunk stream id {0} is outside {MIN_CSID}..={MAX_CSID}")]
    InvalidCsid(u32),
}

/// The header of the last message started on a chunk stream: what
/// compressed headers inherit.
#[derive(Debug, Clone, Copy, Default)]
struct Header {
    /// The last 24-bit timestamp (or delta) field seen; fmt 3 inherits it.
    ts_field: u32,
    timestamp: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

/// One chunk stream's state.
#[derive(Debug, Default)]
struct StreamState {
    header: Header,
    partial: Option<Partial>,
}

/// A message whose chunks have not all arrived.
#[derive(Debug)]
struct Partial {
    payload: BytesMut,
    start: u64,
    first_chunk: u64,
    chunks: u64,
}

/// What one complete chunk at the front of the buffer says, before any
/// state changes.
struct Peeked {
    csid: u32,
    header_len: usize,
    payload_len: usize,
    /// `Some` when this chunk starts a message.
    starts: Option<Header>,
}

/// Reassembles messages from a peer's chunk stream, pushed in pieces of any
/// size.
///
/// After an error the stream cannot be resynchronised: every later call
/// returns the same error.
#[derive(Debug)]
pub struct ChunkReader {
    buf: BytesMut,
    /// Input offset of `buf[0]`.
    offset: u64,
    chunk_size: u32,
    streams: HashMap<u32, StreamState>,
    limits: ChunkLimits,
    chunks_read: u64,
    failed: Option<ChunkError>,
}

impl ChunkReader {
    /// A reader refusing messages longer than `max_message_len`.
    pub fn new(max_message_len: u32) -> Self {
        Self::with_limits(ChunkLimits::new(max_message_len))
    }

    /// A reader with these limits.
    pub fn with_limits(limits: ChunkLimits) -> Self {
        Self {
            buf: BytesMut::new(),
            offset: 0,
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            limits,
            chunks_read: 0,
            failed: None,
        }
    }

    /// Appends input bytes (ignored once the reader has failed).
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// The next complete message, `Ok(None)` when more input is needed.
    pub fn next_message(&mut self) -> Result<Option<Received>, ChunkError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.read_until_message();
        if let Err(err) = &result {
            self.failed = Some(err.clone());
            self.buf = BytesMut::new();
        }
        result
    }

    /// The peer's current chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Input bytes parsed so far: the offset of the first unparsed byte.
    pub fn consumed(&self) -> u64 {
        self.offset
    }

    /// Pushed bytes not yet parsed (the start of an incomplete chunk).
    pub fn unparsed(&self) -> &[u8] {
        &self.buf
    }

    fn read_until_message(&mut self) -> Result<Option<Received>, ChunkError> {
        while let Some(peeked) = self.peek_chunk()? {
            if let Some(received) = self.commit(peeked) {
                self.apply_control(&received.message)?;
                return Ok(Some(received));
            }
        }
        Ok(None)
    }

    /// Parses the chunk at the front of the buffer without consuming it;
    /// `None` until all of it has arrived.
    fn peek_chunk(&self) -> Result<Option<Peeked>, ChunkError> {
        let b = &self.buf[..];
        let Some(&first) = b.first() else {
            return Ok(None);
        };
        let fmt = first >> 6;
        let (csid, mut pos) = match first & 0x3f {
            0 if b.len() >= 2 => (64 + u32::from(b[1]), 2),
            1 if b.len() >= 3 => (64 + u32::from(b[1]) + 256 * u32::from(b[2]), 3),
            0 | 1 => return Ok(None),
            low => (u32::from(low), 1),
        };
        let header_len = [11, 7, 3, 0][usize::from(fmt)];
        let Some(h) = b.get(pos..pos + header_len) else {
            return Ok(None);
        };
        pos += header_len;
        let prev = self.streams.get(&csid);
        if fmt != 0 && prev.is_none() {
            return Err(ChunkError::NoPreviousHeader { csid, fmt });
        }
        let in_progress = prev.and_then(|s| s.partial.as_ref());
        if fmt != 3 && in_progress.is_some() {
            return Err(ChunkError::HeaderMidMessage { csid });
        }
        let ts_field = if fmt == 3 {
            prev.map_or(0, |s| s.header.ts_field)
        } else {
            be24(&h[0..3])
        };
        let ts_value = if ts_field == EXTENDED {
            let Some(ext) = b.get(pos..pos + 4) else {
                return Ok(None);
            };
            pos += 4;
            u32::from_be_bytes([ext[0], ext[1], ext[2], ext[3]])
        } else {
            ts_field
        };

        let (starts, remaining) = match (prev, in_progress) {
            (Some(state), Some(partial)) => (
                None,
                state.header.length as usize - partial.payload.len(),
            ),
            _ => {
                let (length, type_id, stream_id, timestamp) = match prev.map(|s| s.header) {
                    Some(p) if fmt == 1 => (
                        be24(&h[3..6]),
                        h[6],
                        p.stream_id,
                        p.timestamp.wrapping_add(ts_value),
                    ),
                    Some(p) if fmt != 0 => (
                        p.length,
                        p.type_id,
                        p.stream_id,
                        p.timestamp.wrapping_add(ts_value),
                    ),
                    // fmt 0 (compressed headers without state were refused
                    // above): an absolute timestamp.
                    _ => (
                        be24(&h[3..6]),
                        h[6],
                        u32::from_le_bytes([h[7], h[8], h[9], h[10]]),
                        ts_value,
                    ),
                };
                if length > self.limits.max_message_len {
                    return Err(ChunkError::MessageTooLong {
                        csid,
                        len: length,
                        max: self.limits.max_message_len,
                    });
                }
                if prev.is_none() && self.streams.len() >= self.limits.max_chunk_streams {
                    return Err(ChunkError::TooManyChunkStreams {
                        max: self.limits.max_chunk_streams,
                    });
                }
                let header = Header {
                    ts_field,
                    timestamp,
                    length,
                    type_id,
                    stream_id,
                };
                (Some(header), length as usize)
            }
        };
        let payload_len = remaining.min(self.chunk_size as usize);
        if b.len() < pos + payload_len {
            return Ok(None);
        }
        Ok(Some(Peeked {
            csid,
            header_len: pos,
            payload_len,
            starts,
        }))
    }

    /// Consumes a peeked chunk; the message it completes, if any.
    fn commit(&mut self, peeked: Peeked) -> Option<Received> {
        let start = self.offset;
        let chunk_index = self.chunks_read;
        self.buf.advance(peeked.header_len);
        let data = self.buf.split_to(peeked.payload_len);
        self.offset += (peeked.header_len + peeked.payload_len) as u64;
        self.chunks_read += 1;

        let state = self.streams.entry(peeked.csid).or_default();
        if let Some(header) = peeked.starts {
            state.header = header;
            state.partial = Some(Partial {
                // Grown as bytes arrive: never sized by the declared length.
                payload: BytesMut::new(),
                start,
                first_chunk: chunk_index,
                chunks: 0,
            });
        }
        let partial = state.partial.as_mut()?;
        if partial.payload.is_empty() {
            partial.payload = data;
        } else {
            partial.payload.extend_from_slice(&data);
        }
        partial.chunks += 1;
        if partial.payload.len() < state.header.length as usize {
            return None;
        }
        let done = state.partial.take()?;
        Some(Received {
            message: Message {
                csid: peeked.csid,
                timestamp: state.header.timestamp,
                type_id: state.header.type_id,
                stream_id: state.header.stream_id,
                payload: done.payload.freeze(),
            },
            start: done.start,
            end: self.offset,
            interleaved: chunk_index + 1 - done.first_chunk != done.chunks,
        })
    }

    /// Applies Set Chunk Size and Abort to the chunks that follow.
    fn apply_control(&mut self, msg: &Message) -> Result<(), ChunkError> {
        if msg.type_id != TYPE_SET_CHUNK_SIZE && msg.type_id != TYPE_ABORT {
            return Ok(());
        }
        let Some(word) = msg.payload.get(..4) else {
            return Err(ChunkError::ShortControlMessage {
                type_id: msg.type_id,
                len: msg.payload.len(),
            });
        };
        let value = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        if msg.type_id == TYPE_SET_CHUNK_SIZE {
            // The top bit is reserved and must be zero; ffmpeg and
            // nginx-rtmp ignore it rather than fail, and so do we.
            let size = value & 0x7FFF_FFFF;
            if size == 0 || size > MAX_CHUNK_SIZE {
                return Err(ChunkError::BadChunkSize(size));
            }
            self.chunk_size = size;
        } else if let Some(state) = self.streams.get_mut(&value) {
            state.partial = None;
        }
        Ok(())
    }
}

fn be24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

/// Chunks `msg` for sending on `msg.csid`: a fmt 0 first chunk, then fmt 3
/// continuations every `chunk_size` payload bytes, with the extended
/// timestamp repeated on each when the timestamp needs one.
///
/// A fmt 0 header depends on no earlier header, so the output can replace a
/// message in a relayed stream; but the peer's later compressed headers on
/// the same chunk stream refer to this one, so a replacement must keep the
/// timestamp, type and stream id (and length, if later fmt 2/3 headers start
/// new messages there).
pub fn encode_message(msg: &Message, chunk_size: u32) -> Result<Vec<u8>, ChunkError> {
    if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
        return Err(ChunkError::BadChunkSize(chunk_size));
    }
    if !(MIN_CSID..=MAX_CSID).contains(&msg.csid) {
        return Err(ChunkError::InvalidCsid(msg.csid));
    }
    let len = msg.payload.len();
    if len > MAX_LENGTH_FIELD as usize {
        return Err(ChunkError::MessageTooLong {
            csid: msg.csid,
            len: u32::try_from(len).unwrap_or(u32::MAX),
            max: MAX_LENGTH_FIELD,
        });
    }
    let extended = msg.timestamp >= EXTENDED;
    let chunks = len.div_ceil(chunk_size as usize).max(1);
    let mut out = Vec::with_capacity(len + 18 + (chunks - 1) * 7);
    write_basic_header(&mut out, 0, msg.csid);
    out.extend_from_slice(&msg.timestamp.min(EXTENDED).to_be_bytes()[1..]);
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.push(msg.type_id);
    out.extend_from_slice(&msg.stream_id.to_le_bytes());
    if extended {
        out.extend_from_slice(&msg.timestamp.to_be_bytes());
    }
    for (i, piece) in msg.payload.chunks(chunk_size as usize).enumerate() {
        if i > 0 {
            write_basic_header(&mut out, 3, msg.csid);
            if extended {
                out.extend_from_slice(&msg.timestamp.to_be_bytes());
            }
        }
        out.extend_from_slice(piece);
    }
    Ok(out)
}

/// The 1-, 2- or 3-byte basic header for a csid already range-checked.
fn write_basic_header(out: &mut Vec<u8>, fmt: u8, csid: u32) {
    match csid {
        2..=63 => out.push(fmt << 6 | csid as u8),
        64..=319 => out.extend_from_slice(&[fmt << 6, (csid - 64) as u8]),
        _ => {
            let id = csid - 64;
            out.extend_from_slice(&[fmt << 6 | 1, id as u8, (id >> 8) as u8]);
        }
    }
}

#[cfg(test)]
#[path = "chunk_tests.rs"]
mod tests;
