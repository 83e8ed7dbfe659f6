//! Parsing one chunk header (basic header, message header, extended
//! timestamp) against the follower's per-chunk-stream state.

use super::streams::Streams;
use crate::rtmp::chunk::ChunkError;

/// Longest chunk header: 3-byte basic header, 11-byte message header,
/// 4-byte extended timestamp.
pub(super) const MAX_HEADER_LEN: usize = 18;

/// A 24-bit timestamp field with this value means "see the extended one".
const EXTENDED: u32 = 0xFF_FFFF;

/// A chunk header parsed from the front of some bytes.
pub(super) struct Parsed {
    pub(super) csid: u32,
    pub(super) len: usize,
    pub(super) fmt: u8,
    pub(super) ts_field: u32,
    pub(super) ts_value: u32,
    /// Length, type and stream id carried by a fmt 0 or 1 header.
    pub(super) length: Option<u32>,
    pub(super) type_id: Option<u8>,
    pub(super) stream_id: Option<u32>,
}

/// Parses a chunk header at the front of `b`; `None` until all of it is
/// there.
pub(super) fn parse(streams: &Streams, b: &[u8]) -> Result<Option<Parsed>, ChunkError> {
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
    let prev = streams.get(csid);
    if fmt != 0 && prev.is_none() {
        return Err(ChunkError::NoPreviousHeader { csid, fmt });
    }
    if fmt != 3 && prev.is_some_and(|s| s.remaining > 0) {
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
    Ok(Some(Parsed {
        csid,
        len: pos,
        fmt,
        ts_field,
        ts_value,
        length: (fmt <= 1).then(|| be24(&h[3..6])),
        type_id: (fmt <= 1).then(|| h[6]),
        stream_id: (fmt == 0).then(|| u32::from_le_bytes([h[7], h[8], h[9], h[10]])),
    }))
}

fn be24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}
