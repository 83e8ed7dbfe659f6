//! The chunk reader on arbitrary bytes, then everything downstream of it:
//! AMF0 decoding of each payload, `connect` parsing and rewriting, and the
//! chunk writer.
//!
//! The first input byte picks how the rest is split into pushes; any split
//! must give the same messages, offsets and errors as one push.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rtmpgate::rtmp::chunk::{
    ChunkError, ChunkLimits, ChunkReader, DEFAULT_CHUNK_SIZE, Message, Received,
    TYPE_SET_CHUNK_SIZE, encode_message,
};
use rtmpgate::rtmp::{ConnectInfo, amf0, rewrite_tc_url};

const LIMITS: ChunkLimits = ChunkLimits {
    max_message_len: 4096,
    max_chunk_streams: 8,
};

/// Everything the reader yields for `data` pushed in `step`-byte pieces, up
/// to and including the first error.
fn read(data: &[u8], step: usize) -> (Vec<Result<Received, ChunkError>>, u32) {
    let mut reader = ChunkReader::with_limits(LIMITS);
    let mut out = Vec::new();
    for piece in data.chunks(step) {
        reader.push(piece);
        loop {
            match reader.next_message() {
                Ok(Some(received)) => out.push(Ok(received)),
                Ok(None) => break,
                Err(err) => {
                    out.push(Err(err));
                    return (out, reader.chunk_size());
                }
            }
        }
    }
    (out, reader.chunk_size())
}

fn set_chunk_size(size: u32) -> Vec<u8> {
    let msg = Message {
        csid: 2,
        timestamp: 0,
        type_id: TYPE_SET_CHUNK_SIZE,
        stream_id: 0,
        payload: size.to_be_bytes().to_vec().into(),
    };
    encode_message(&msg, DEFAULT_CHUNK_SIZE).expect("encodes")
}

fn encoded(values: &[amf0::Value]) -> Vec<u8> {
    let mut out = Vec::new();
    amf0::encode_all(values, &mut out);
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&split, data)) = input.split_first() else {
        return;
    };
    let (whole, chunk_size) = read(data, data.len().max(1));
    let (pieces, _) = read(data, usize::from(split % 32) + 1);
    assert_eq!(whole, pieces, "splitting the input changed what was read");

    let mut last_end = 0;
    for received in whole.iter().filter_map(|r| r.as_ref().ok()) {
        let msg = &received.message;
        assert!(msg.payload.len() <= LIMITS.max_message_len as usize);
        assert!(received.start < received.end);
        assert!(received.end <= data.len() as u64 && received.end > last_end);
        last_end = received.end;

        if let Ok(values) = amf0::decode_all(&msg.payload) {
            let mut again = Vec::new();
            amf0::encode_all(&values, &mut again);
            assert_eq!(again, msg.payload, "AMF0 round trip changed the bytes");
        }

        // Any message the reader yields can be chunked again and read back.
        let mut reader = ChunkReader::with_limits(LIMITS);
        reader.push(&set_chunk_size(chunk_size));
        reader
            .next_message()
            .expect("set chunk size")
            .expect("complete");
        reader.push(&encode_message(msg, chunk_size).expect("a read message encodes"));
        let back = reader.next_message().expect("re-read").expect("complete");
        assert_eq!(&back.message, msg);

        if let Ok(info) = ConnectInfo::parse(msg) {
            let new_url = "rtmp://fuzz.example:1935/app";
            let rewritten = rewrite_tc_url(msg, new_url).expect("a parsed connect rewrites");
            let again = ConnectInfo::parse(&rewritten).expect("a rewritten connect parses");
            assert_eq!(again.app, info.app);
            assert_eq!(again.tc_url.as_deref(), Some(new_url));
            assert_eq!(again.host.as_deref(), Some("fuzz.example"));
            // Compared encoded: NaN is not equal to itself.
            assert_eq!(encoded(&again.rest), encoded(&info.rest));
            let grew = usize::from(info.tc_url.is_none());
            assert_eq!(again.command_object.len(), info.command_object.len() + grew);
        }
    }
});
