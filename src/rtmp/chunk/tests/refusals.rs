//! Input that must be refused, and input that must not panic.

use super::*;

#[test]
fn set_chunk_size_refuses_zero_and_huge() {
    for (size, reported) in [
        (0, 0),
        (0x8000_0000, 0),
        (MAX_CHUNK_SIZE + 1, MAX_CHUNK_SIZE + 1),
    ] {
        let mut reader = ChunkReader::new(1024);
        reader.push(&set_chunk_size(size));
        assert_eq!(
            reader.next_message(),
            Err(ChunkError::BadChunkSize(reported))
        );
    }
    let mut reader = ChunkReader::new(1024);
    reader.push(&set_chunk_size(MAX_CHUNK_SIZE));
    assert!(reader.next_message().unwrap().is_some());
}

#[test]
fn short_control_message_refused() {
    let mut bytes = fmt0(2, 0, 2, TYPE_SET_CHUNK_SIZE, 0);
    bytes.extend([0, 1]);
    let mut reader = ChunkReader::new(1024);
    reader.push(&bytes);
    assert_eq!(
        reader.next_message(),
        Err(ChunkError::ShortControlMessage { type_id: 1, len: 2 })
    );
}

#[test]
fn message_too_long_refused_at_its_header() {
    let mut reader = ChunkReader::new(1000);
    reader.push(&fmt0(3, 0, 2000, 20, 0));
    assert_eq!(
        reader.next_message(),
        Err(ChunkError::MessageTooLong {
            csid: 3,
            len: 2000,
            max: 1000
        })
    );
}

#[test]
fn too_many_chunk_streams_refused() {
    let mut reader = ChunkReader::with_limits(ChunkLimits {
        max_message_len: 1024,
        max_chunk_streams: 4,
    });
    for csid in 3..7 {
        reader.push(&fmt0(csid, 0, 0, 20, 0));
    }
    assert_eq!(drain(&mut reader).len(), 4);
    // Known streams stay usable; a fifth does not.
    reader.push(&fmt0(3, 0, 0, 20, 0));
    assert_eq!(drain(&mut reader).len(), 1);
    reader.push(&fmt0(7, 0, 0, 20, 0));
    assert_eq!(
        reader.next_message(),
        Err(ChunkError::TooManyChunkStreams { max: 4 })
    );
}

#[test]
fn compressed_header_without_state_refused() {
    for (fmt, bytes) in [(1, fmt1(3, 0, 1, 20)), (2, fmt2(3, 0)), (3, fmt3(3))] {
        let mut reader = ChunkReader::new(1024);
        reader.push(&bytes);
        assert_eq!(
            reader.next_message(),
            Err(ChunkError::NoPreviousHeader { csid: 3, fmt })
        );
    }
}

#[test]
fn new_header_mid_message_refused() {
    let mut s = fmt0(3, 0, 300, 20, 0);
    s.extend(pattern(128, 0));
    s.extend(fmt0(3, 0, 300, 20, 0));
    let mut reader = ChunkReader::new(1024);
    reader.push(&s);
    assert_eq!(
        reader.next_message(),
        Err(ChunkError::HeaderMidMessage { csid: 3 })
    );
}

#[test]
fn errors_are_sticky() {
    let mut reader = ChunkReader::new(1024);
    reader.push(&fmt3(3));
    let err = reader.next_message().unwrap_err();
    let mut good = fmt0(3, 0, 1, 20, 0);
    good.push(0);
    reader.push(&good);
    assert_eq!(reader.next_message(), Err(err));
    assert!(
        reader.unparsed().is_empty(),
        "input is dropped after failure"
    );
}

/// xorshift64: deterministic pseudo-random input for the no-panic checks.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..3000 {
        let len = (rng.next() % 400) as usize;
        // Half the inputs start from a valid stream, then get corrupted.
        let mut input: Vec<u8> = if round % 2 == 0 {
            varied_stream()[..len.min(1500)].to_vec()
        } else {
            (0..len).map(|_| rng.next() as u8).collect()
        };
        for _ in 0..3 {
            if !input.is_empty() {
                let at = (rng.next() as usize) % input.len();
                input[at] = rng.next() as u8;
            }
        }
        let mut reader = ChunkReader::with_limits(ChunkLimits {
            max_message_len: 512,
            max_chunk_streams: 8,
        });
        let mut rest = &input[..];
        let mut failed = false;
        while !rest.is_empty() {
            let n = 1 + (rng.next() as usize) % rest.len();
            reader.push(&rest[..n]);
            rest = &rest[n..];
            loop {
                match reader.next_message() {
                    Ok(Some(r)) => assert!(r.message.payload.len() <= 512 && !failed),
                    Ok(None) => break,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
        }
    }
}

#[test]
fn encode_refuses_bad_arguments() {
    let m = msg(3, 0, 20, vec![1]);
    assert_eq!(encode_message(&m, 0), Err(ChunkError::BadChunkSize(0)));
    assert_eq!(
        encode_message(&m, MAX_CHUNK_SIZE + 1),
        Err(ChunkError::BadChunkSize(MAX_CHUNK_SIZE + 1))
    );
    for csid in [0, 1, MAX_CSID + 1] {
        let m = msg(csid, 0, 20, vec![1]);
        assert_eq!(encode_message(&m, 128), Err(ChunkError::InvalidCsid(csid)));
    }
    let huge = msg(3, 0, 20, vec![0; 0x100_0000]);
    assert!(matches!(
        encode_message(&huge, 128),
        Err(ChunkError::MessageTooLong { .. })
    ));
}
