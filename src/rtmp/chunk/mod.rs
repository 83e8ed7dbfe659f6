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
//!
//! | file | owns |
//! |---|---|
//! | [`reader`] | [`ChunkReader`]: per-chunk-stream state, limits, control messages |
//! | [`writer`] | [`encode_message`]: one message as chunks |

use bytes::Bytes;

pub mod reader;
pub mod writer;

pub use reader::ChunkReader;
pub use writer::encode_message;

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

/// What a protocol control message does to the chunks that follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Set Chunk Size: the sender's chunks are this long from now on.
    ChunkSize(u32),
    /// Abort: drop the unfinished message on this chunk stream.
    Abort(u32),
}

/// Reads a Set Chunk Size or Abort message (`None` for any other type).
/// Values a reader cannot apply are errors, for every reader alike: one
/// that guessed could lose step with the peer.
pub fn control(msg: &Message) -> Result<Option<Control>, ChunkError> {
    if msg.type_id != TYPE_SET_CHUNK_SIZE && msg.type_id != TYPE_ABORT {
        return Ok(None);
    }
    let Some(word) = msg.payload.get(..4) else {
        return Err(ChunkError::ShortControlMessage {
            type_id: msg.type_id,
            len: msg.payload.len(),
        });
    };
    let value = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
    if msg.type_id == TYPE_ABORT {
        return Ok(Some(Control::Abort(value)));
    }
    // The top bit is reserved and must be zero; ffmpeg and nginx-rtmp
    // ignore it rather than fail, and so do we.
    let size = value & 0x7FFF_FFFF;
    if size == 0 || size > MAX_CHUNK_SIZE {
        return Err(ChunkError::BadChunkSize(size));
    }
    Ok(Some(Control::ChunkSize(size)))
}

#[cfg(test)]
mod tests;
