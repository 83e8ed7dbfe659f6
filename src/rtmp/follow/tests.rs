use super::*;
use crate::rtmp::amf0::{Value, encode_all};
use crate::rtmp::chunk::{ChunkReader, encode_message};

fn message(csid: u32, type_id: u8, stream_id: u32, payload: Vec<u8>) -> Message {
    Message {
        csid,
        timestamp: 40,
        type_id,
        stream_id,
        payload: payload.into(),
    }
}

fn command(name: &str, stream_id: u32, arg: &str) -> Message {
    let mut payload = Vec::new();
    encode_all(
        &[
            Value::String(name.into()),
            Value::Number(0.0),
            Value::Null,
            Value::String(arg.into()),
        ],
        &mut payload,
    );
    message(8, TYPE_COMMAND_AMF0, stream_id, payload)
}

fn chunk_size(size: u32) -> Message {
    message(2, TYPE_SET_CHUNK_SIZE, 0, size.to_be_bytes().to_vec())
}

/// A client's bytes: a handshake, then `messages` chunked as the client's
/// chunk size at that point says.
fn stream(messages: &[Message]) -> Vec<u8> {
    let mut out = vec![3u8; HANDSHAKE_LEN as usize];
    let mut size = DEFAULT_CHUNK_SIZE;
    for m in messages {
        out.extend(encode_message(m, size).unwrap());
        if m.type_id == TYPE_SET_CHUNK_SIZE {
            size = u32::from_be_bytes(m.payload[..4].try_into().unwrap());
        }
    }
    out
}

fn follow_in_pieces(input: &[u8], piece: usize) -> Vec<Followed> {
    let mut follower = Follower::new();
    let mut out = Vec::new();
    for part in input.chunks(piece) {
        follower.feed(part, &mut out).unwrap();
    }
    assert_eq!(follower.fed(), input.len() as u64);
    out
}

fn media(len: usize) -> Message {
    message(6, 9, 1, (0..len).map(|i| i as u8).collect())
}

#[test]
fn reports_commands_and_skips_media_whatever_the_read_sizes() {
    let input = stream(&[
        command("connect", 0, "live"),
        chunk_size(4096),
        command("publish", 1, "key?token=1"),
        media(10_000),
        media(300),
        command("deleteStream", 0, ""),
    ]);
    let whole = follow_in_pieces(&input, input.len());
    let names: Vec<u8> = whole.iter().map(|f| f.message.type_id).collect();
    assert_eq!(names, [TYPE_COMMAND_AMF0, TYPE_SET_CHUNK_SIZE, 20, 20]);
    assert_eq!(whole[2].message.stream_id, 1);
    for piece in [1, 2, 3, 7, 17, 18, 19, 128, 1000] {
        assert_eq!(follow_in_pieces(&input, piece), whole, "pieces of {piece}");
    }
}

/// What the follower reports is exactly what the reassembling reader reads,
/// offsets included.
#[test]
fn agrees_with_the_chunk_reader() {
    let mut msgs = vec![command("connect", 0, "app")];
    for i in 0..40u32 {
        msgs.push(media(((i * 977) % 5000) as usize));
        if i % 7 == 0 {
            msgs.push(command("FCPublish", 0, &format!("name{i}")));
        }
        if i == 20 {
            msgs.push(chunk_size(333));
        }
    }
    let input = stream(&msgs);
    let mut reader = ChunkReader::new(1 << 20);
    reader.push(&input[HANDSHAKE_LEN as usize..]);
    let mut expected = Vec::new();
    while let Some(r) = reader.next_message().unwrap() {
        if is_kept(r.message.type_id) {
            expected.push((r.message, r.start + HANDSHAKE_LEN, r.end + HANDSHAKE_LEN));
        }
    }
    let got: Vec<_> = follow_in_pieces(&input, 1111)
        .into_iter()
        .map(|f| (f.message, f.start, f.end))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn holds_from_the_start_of_an_unfinished_command_only() {
    let before = stream(&[command("connect", 0, "live"), media(500)]);
    let publish = encode_message(&command("publish", 1, &"k".repeat(300)), 128).unwrap();
    let mut follower = Follower::new();
    let mut out = Vec::new();
    follower.feed(&before, &mut out).unwrap();
    assert_eq!(
        follower.hold_from(),
        before.len() as u64,
        "media passes at once"
    );
    assert!(follower.at_boundary());
    follower.feed(&publish[..200], &mut out).unwrap();
    assert_eq!(
        follower.hold_from(),
        before.len() as u64,
        "held from its first byte"
    );
    assert!(!follower.at_boundary());
    follower.feed(&publish[200..], &mut out).unwrap();
    assert_eq!(follower.hold_from(), (before.len() + publish.len()) as u64);
    assert_eq!(out.last().unwrap().start, before.len() as u64);
}

#[test]
fn holds_a_split_chunk_header() {
    let input = stream(&[media(10)]);
    let mut follower = Follower::new();
    let mut out = Vec::new();
    let cut = HANDSHAKE_LEN as usize + 5; // inside the 12-byte header
    follower.feed(&input[..cut], &mut out).unwrap();
    assert_eq!(follower.hold_from(), HANDSHAKE_LEN);
    follower.feed(&input[cut..], &mut out).unwrap();
    assert_eq!(follower.hold_from(), input.len() as u64);
}

#[test]
fn refuses_a_command_too_long_to_check() {
    let long = command("publish", 1, &"x".repeat(MAX_COMMAND_LEN as usize));
    let mut follower = Follower::new();
    let err = follower
        .feed(&stream(&[long]), &mut Vec::new())
        .unwrap_err();
    assert!(matches!(err, ChunkError::MessageTooLong { .. }), "{err}");
    assert!(
        follower.feed(&[0], &mut Vec::new()).is_err(),
        "stays failed"
    );
}

#[test]
fn refuses_what_the_reader_refuses() {
    let mut follower = Follower::after(0);
    // fmt 1 on a chunk stream never seen.
    let err = follower.feed(&[0x43, 0, 0, 0, 0, 0, 1, 9], &mut Vec::new());
    assert!(matches!(err, Err(ChunkError::NoPreviousHeader { .. })));
    let mut follower = Follower::after(0);
    let bad = encode_message(&chunk_size(0), 128).unwrap();
    assert_eq!(
        follower.feed(&bad, &mut Vec::new()),
        Err(ChunkError::BadChunkSize(0))
    );
}

#[test]
fn extended_timestamps_on_continuations() {
    let mut m = media(400);
    m.timestamp = 0x0100_0000;
    let input = stream(&[m, command("play", 1, "s")]);
    let got = follow_in_pieces(&input, 5);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].end, input.len() as u64);
}
