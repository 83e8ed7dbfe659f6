//! Well-formed input: header forms, timestamps, offsets, control messages.

use super::*;

#[test]
fn single_message_with_offsets() {
    let mut bytes = fmt0(3, 0, 10, 20, 0);
    bytes.extend(pattern(10, 0));
    let got = read_all(&bytes, 1000);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].start, got[0].end), (0, 22));
    assert!(!got[0].interleaved);
    assert_eq!(got[0].message.payload, pattern(10, 0));
    assert_eq!(got[0].message.stream_id, 0);
}

#[test]
fn varied_stream_messages() {
    let bytes = varied_stream();
    let got = read_all(&bytes, 64 * 1024);
    let summary: Vec<_> = got
        .iter()
        .map(|r| {
            (
                r.message.csid,
                r.message.timestamp,
                r.message.type_id,
                r.message.payload.len(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (2, 0, 1, 4),
            (3, 5, 20, 500),
            (4, 10, 9, 300),
            (70, 11, 8, 250),
            (400, 0x0123_4567, 18, 450),
            (3, 12, 21, 3),
            (3, 21, 21, 3),
            (3, 30, 21, 3),
        ]
    );
    assert_eq!(got[2].message.payload, pattern(300, 2));
    assert_eq!(got[3].message.payload, pattern(250, 3));
    assert!(got[2].interleaved && got[3].interleaved);
    assert!(!got[1].interleaved && !got[4].interleaved);
    assert_eq!(got[5].message.stream_id, 1, "fmt 1 keeps the stream id");
    assert_eq!(got.last().unwrap().end, bytes.len() as u64);
    // Consecutive non-interleaved messages tile the input.
    assert_eq!(got[0].start, 0);
    assert_eq!(got[1].start, got[0].end);
}

#[test]
fn byte_at_a_time_matches_bulk() {
    let bytes = varied_stream();
    let bulk = read_all(&bytes, 64 * 1024);
    let mut reader = ChunkReader::new(64 * 1024);
    let mut single = Vec::new();
    for (i, byte) in bytes.iter().enumerate() {
        reader.push(std::slice::from_ref(byte));
        single.extend(drain(&mut reader));
        assert_eq!(
            reader.consumed() + reader.unparsed().len() as u64,
            i as u64 + 1
        );
    }
    assert_eq!(single, bulk);
    // Each message is returned as soon as its last byte is pushed.
    let mut reader = ChunkReader::new(64 * 1024);
    for (i, byte) in bytes.iter().enumerate() {
        reader.push(std::slice::from_ref(byte));
        for r in drain(&mut reader) {
            assert_eq!(r.end, i as u64 + 1);
        }
    }
}

#[test]
fn every_prefix_is_incomplete_not_an_error() {
    let bytes = varied_stream();
    let all = read_all(&bytes, 64 * 1024);
    for cut in 0..bytes.len() {
        let got = read_all_lenient(&bytes[..cut]);
        assert!(all.starts_with(&got));
        assert!(got.iter().all(|r| r.end <= cut as u64));
    }
}

fn read_all_lenient(bytes: &[u8]) -> Vec<Received> {
    let mut reader = ChunkReader::new(64 * 1024);
    reader.push(bytes);
    drain(&mut reader)
}

#[test]
fn set_chunk_size_then_large_message() {
    let mut bytes = set_chunk_size(4096);
    let big = msg(3, 0, 9, pattern(10_000, 7));
    bytes.extend(encode_message(&big, 4096).unwrap());
    let mut reader = ChunkReader::new(64 * 1024);
    reader.push(&bytes);
    let got = drain(&mut reader);
    assert_eq!(reader.chunk_size(), 4096);
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].message, big);
    // 10 000 bytes in chunks of 4096 is 3 chunks: one 12-byte header, two
    // 1-byte fmt 3 headers.
    assert_eq!(got[1].end - got[1].start, 10_000 + 12 + 2);
}

#[test]
fn set_chunk_size_masks_top_bit() {
    let mut reader = ChunkReader::new(1024);
    reader.push(&set_chunk_size(0x8000_1000));
    drain(&mut reader);
    assert_eq!(reader.chunk_size(), 0x1000);
}

#[test]
fn extended_timestamp_on_every_chunk() {
    let ts = 0x0100_0000;
    let m = msg(5, ts, 9, pattern(300, 9));
    let bytes = encode_message(&m, 128).unwrap();
    // fmt 0 header (12) + ext (4), then two fmt 3 headers each with ext.
    assert_eq!(bytes.len(), 300 + 16 + 2 * 5);
    assert_eq!(&bytes[1..4], &[0xFF, 0xFF, 0xFF]);
    assert_eq!(read_all(&bytes, 1024)[0].message, m);
    // 0xFFFFFF itself must use the extended field too.
    let edge = msg(5, 0xFF_FFFF, 9, vec![1]);
    let bytes = encode_message(&edge, 128).unwrap();
    assert_eq!(bytes.len(), 12 + 4 + 1);
    assert_eq!(read_all(&bytes, 1024)[0].message, edge);
}

#[test]
fn extended_delta_inherited_by_fmt3() {
    let mut s = fmt0(6, 1000, 1, 8, 1);
    s.push(0xAA);
    s.extend(fmt1(6, 0xFF_FFFF, 1, 8));
    s.extend(0x0100_0000u32.to_be_bytes());
    s.push(0xBB);
    s.extend(fmt3(6));
    s.extend(0x0100_0000u32.to_be_bytes());
    s.push(0xCC);
    let ts: Vec<u32> = read_all(&s, 1024)
        .iter()
        .map(|r| r.message.timestamp)
        .collect();
    assert_eq!(ts, [1000, 1000 + 0x0100_0000, 1000 + 0x0200_0000]);
}

#[test]
fn fmt3_after_fmt0_uses_its_timestamp_as_delta() {
    let mut s = fmt0(3, 100, 1, 20, 0);
    s.push(1);
    s.extend(fmt3(3));
    s.push(2);
    let ts: Vec<u32> = read_all(&s, 1024)
        .iter()
        .map(|r| r.message.timestamp)
        .collect();
    assert_eq!(ts, [100, 200]);
}

#[test]
fn timestamps_wrap() {
    let mut s = fmt0(3, 0xFF_FFFF, 0, 20, 0);
    s.extend(u32::MAX.to_be_bytes());
    s.extend(fmt2(3, 2));
    let ts: Vec<u32> = read_all(&s, 1024)
        .iter()
        .map(|r| r.message.timestamp)
        .collect();
    assert_eq!(ts, [u32::MAX, 1]);
}

#[test]
fn zero_length_message() {
    let got = read_all(&fmt0(3, 0, 0, 20, 0), 1024);
    assert_eq!(got[0].message.payload.len(), 0);
    assert_eq!(got[0].end, 12);
}

#[test]
fn abort_discards_partial_message() {
    let mut s = fmt0(3, 0, 300, 20, 0);
    s.extend(pattern(128, 1));
    let abort = Message {
        csid: 2,
        timestamp: 0,
        type_id: TYPE_ABORT,
        stream_id: 0,
        payload: Bytes::from_static(&[0, 0, 0, 3]),
    };
    s.extend(encode_message(&abort, 128).unwrap());
    // fmt 3 now starts a new 300-byte message.
    for piece in pattern(300, 2).chunks(128) {
        s.extend(fmt3(3));
        s.extend(piece);
    }
    let got = read_all(&s, 1024);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].message.type_id, TYPE_ABORT);
    assert_eq!(got[1].message.payload, pattern(300, 2));
}

#[test]
fn encode_round_trips_all_forms() {
    for csid in [2, 63, 64, 319, 320, MAX_CSID] {
        for chunk_size in [1, 7, 128, 4096] {
            for timestamp in [0, 0xFF_FFFE, 0xFF_FFFF, u32::MAX] {
                for len in [0, 1, 300] {
                    let m = Message {
                        csid,
                        timestamp,
                        type_id: 20,
                        stream_id: 0x0102_0304,
                        payload: Bytes::from(pattern(len, 5)),
                    };
                    let bytes = encode_message(&m, chunk_size).unwrap();
                    let mut reader = ChunkReader::new(1024);
                    if chunk_size != DEFAULT_CHUNK_SIZE {
                        reader.push(&set_chunk_size(chunk_size));
                        drain(&mut reader);
                    }
                    let start = reader.consumed();
                    reader.push(&bytes);
                    let got = drain(&mut reader);
                    assert_eq!(got.len(), 1);
                    assert_eq!(got[0].message, m);
                    assert_eq!(got[0].end - start, bytes.len() as u64);
                }
            }
        }
    }
}
