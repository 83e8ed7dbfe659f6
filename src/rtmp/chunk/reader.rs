//! Reading chunks: per-chunk-stream header state, partial messages, the
//! limits, and the control messages that change how later chunks are read.

use std::collections::HashMap;

use bytes::{Buf, BytesMut};

use super::{ChunkError, ChunkLimits, Control, DEFAULT_CHUNK_SIZE, Message, Received, control};

/// A 24-bit timestamp field with this value means "see the 4-byte extended
/// timestamp".
pub(super) const EXTENDED: u32 = 0xFF_FFFF;

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

    /// Changes the longest message accepted from now on (the router reads
    /// `connect` under a tight limit, then media under RTMP's own).
    pub fn set_max_message_len(&mut self, max_message_len: u32) {
        self.limits.max_message_len = max_message_len;
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

    /// What compressed headers on chunk stream `csid` inherit: its last
    /// 24-bit timestamp field, timestamp and message stream id; `None`
    /// before its first message.
    pub fn inherited(&self, csid: u32) -> Option<(u32, u32, u32)> {
        let h = self.streams.get(&csid)?.header;
        Some((h.ts_field, h.timestamp, h.stream_id))
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
            (Some(state), Some(partial)) => {
                (None, state.header.length as usize - partial.payload.len())
            }
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
        match control(msg)? {
            Some(Control::ChunkSize(size)) => self.chunk_size = size,
            Some(Control::Abort(csid)) => {
                if let Some(state) = self.streams.get_mut(&csid) {
                    state.partial = None;
                }
            }
            None => {}
        }
        Ok(())
    }
}

fn be24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}
