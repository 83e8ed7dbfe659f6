//! Chunk layer tests; the helpers here build chunks by hand so that the
//! reader is tested against the wire format, not only against our encoder.

use bytes::Bytes;

use super::writer::write_basic_header;
use super::*;

mod reading;
mod refusals;

/// A chunk's basic header and message header, built by hand so that the
/// reader is tested against the wire format, not only against our encoder.
fn header(fmt: u8, csid: u32, fields: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_basic_header(&mut out, fmt, csid);
    out.extend_from_slice(fields);
    out
}

fn be24(v: u32) -> [u8; 3] {
    let b = v.to_be_bytes();
    [b[1], b[2], b[3]]
}

fn fmt0(csid: u32, ts_field: u32, len: u32, type_id: u8, sid: u32) -> Vec<u8> {
    let mut f = be24(ts_field).to_vec();
    f.extend_from_slice(&be24(len));
    f.push(type_id);
    f.extend_from_slice(&sid.to_le_bytes());
    header(0, csid, &f)
}

fn fmt1(csid: u32, delta_field: u32, len: u32, type_id: u8) -> Vec<u8> {
    let mut f = be24(delta_field).to_vec();
    f.extend_from_slice(&be24(len));
    f.push(type_id);
    header(1, csid, &f)
}

fn fmt2(csid: u32, delta_field: u32) -> Vec<u8> {
    header(2, csid, &be24(delta_field))
}

fn fmt3(csid: u32) -> Vec<u8> {
    header(3, csid, &[])
}

fn msg(csid: u32, timestamp: u32, type_id: u8, payload: Vec<u8>) -> Message {
    Message {
        csid,
        timestamp,
        type_id,
        stream_id: 1,
        payload: Bytes::from(payload),
    }
}

fn set_chunk_size(size: u32) -> Vec<u8> {
    let m = Message {
        csid: 2,
        timestamp: 0,
        type_id: TYPE_SET_CHUNK_SIZE,
        stream_id: 0,
        payload: Bytes::copy_from_slice(&size.to_be_bytes()),
    };
    encode_message(&m, DEFAULT_CHUNK_SIZE).unwrap()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn drain(reader: &mut ChunkReader) -> Vec<Received> {
    let mut out = Vec::new();
    while let Some(r) = reader.next_message().unwrap() {
        out.push(r);
    }
    out
}

fn read_all(bytes: &[u8], max: u32) -> Vec<Received> {
    let mut reader = ChunkReader::new(max);
    reader.push(bytes);
    let out = drain(&mut reader);
    assert!(reader.unparsed().is_empty());
    out
}

/// A stream exercising every header form: chunk size change, 1/2/3-byte
/// csids, interleaving, fmt 1/2/3 timestamps and extended timestamps.
fn varied_stream() -> Vec<u8> {
    let mut s = set_chunk_size(200);
    s.extend(encode_message(&msg(3, 5, 20, pattern(500, 1)), 200).unwrap());
    // Interleave a 300-byte message on csid 4 with a 250-byte one on 70.
    let (b, c) = (pattern(300, 2), pattern(250, 3));
    s.extend(fmt0(4, 10, 300, 9, 1));
    s.extend(&b[..200]);
    s.extend(fmt0(70, 11, 250, 8, 1));
    s.extend(&c[..200]);
    s.extend(fmt3(4));
    s.extend(&b[200..]);
    s.extend(fmt3(70));
    s.extend(&c[200..]);
    // Extended timestamp on a 3-byte csid, over three chunks.
    s.extend(encode_message(&msg(400, 0x0123_4567, 18, pattern(450, 4)), 200).unwrap());
    // Compressed headers starting new messages on csid 3.
    s.extend(fmt1(3, 7, 3, 21));
    s.extend([1, 2, 3]);
    s.extend(fmt2(3, 9));
    s.extend([4, 5, 6]);
    s.extend(fmt3(3));
    s.extend([7, 8, 9]);
    s
}
