//! Writing chunks: one message as a fmt 0 chunk and fmt 3 continuations.

use super::reader::EXTENDED;
use super::{ChunkError, MAX_CHUNK_SIZE, MAX_CSID, MIN_CSID, Message};

/// Largest length the 24-bit message length field can carry.
const MAX_LENGTH_FIELD: u32 = 0xFF_FFFF;

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
pub(super) fn write_basic_header(out: &mut Vec<u8>, fmt: u8, csid: u32) {
    match csid {
        2..=63 => out.push(fmt << 6 | csid as u8),
        64..=319 => out.extend_from_slice(&[fmt << 6, (csid - 64) as u8]),
        _ => {
            let id = csid - 64;
            out.extend_from_slice(&[fmt << 6 | 1, id as u8, (id >> 8) as u8]);
        }
    }
}
