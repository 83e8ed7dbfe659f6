//! The routed tcUrl re-chunker (`routed::rechunk::Fixup`) on arbitrary
//! client chunk streams, set up as `routed` does: the reader that found the
//! first command message (the `connect`) watches that message's chunk
//! stream from its end, with the 256 KiB watch limit. It never panics; any
//! split of the input gives the same output and the same error; while it
//! watches it holds at most `WATCH_LIMIT` bytes, and it has stopped once
//! more than that came after `connect`; what it forwards reads back as the
//! same messages (payload, type, stream, timestamp) as what the client
//! sent; and when no further message on the watched chunk stream
//! completes, the output is the input byte for byte.
//!
//! Byte 0 picks the size of the reads; byte 1 whether the connect's
//! chunk stream is the watched one or another (`2..=9`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rtmpgate::routed::rechunk::{Fixup, WATCH_LIMIT};
use rtmpgate::rtmp::ChunkReader;
use rtmpgate::rtmp::chunk::{TYPE_COMMAND_AMF0, TYPE_COMMAND_AMF3};

/// `routed` reads at most this much before `connect` (its message cap too).
const PRE_CONNECT: usize = 64 * 1024;

/// A message as the upstream sees it.
type Msg = (u32, u32, u8, u32, Vec<u8>);

/// What a fresh reader reads from `data`: the messages, then the error.
fn messages(data: &[u8]) -> (Vec<Msg>, Option<String>) {
    let mut reader = ChunkReader::new(PRE_CONNECT as u32);
    reader.set_max_message_len(WATCH_LIMIT as u32);
    reader.push(data);
    let mut out = Vec::new();
    loop {
        match reader.next_message() {
            Ok(Some(r)) => {
                let m = r.message;
                out.push((
                    m.csid,
                    m.timestamp,
                    m.type_id,
                    m.stream_id,
                    m.payload.to_vec(),
                ));
            }
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e.to_string())),
        }
    }
}

struct Run {
    /// Reader offset where `connect` ended.
    connect_end: usize,
    /// Its chunk stream.
    csid: u32,
    out: Vec<u8>,
    err: Option<String>,
}

/// Finds `connect` in reads of `piece` bytes, then hands every later read
/// to a fix-up watching chunk stream `watch(csid)`.
fn run(data: &[u8], piece: usize, other: bool) -> Option<Run> {
    let mut reader = ChunkReader::new(PRE_CONNECT as u32);
    let mut fed = 0;
    let rec = 'found: loop {
        if fed >= data.len().min(PRE_CONNECT) {
            return None;
        }
        // `routed` reads at most about PRE_CONNECT before connect.
        let n = piece.min(PRE_CONNECT).min(data.len() - fed);
        reader.push(&data[fed..fed + n]);
        fed += n;
        loop {
            match reader.next_message() {
                Ok(Some(r))
                    if matches!(r.message.type_id, TYPE_COMMAND_AMF0 | TYPE_COMMAND_AMF3) =>
                {
                    break 'found r;
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return None,
            }
        }
    };
    let end = rec.end as usize;
    assert!(end <= fed, "a message ends past the bytes fed");
    let csid = if other {
        2 + (rec.message.csid + 1) % 8
    } else {
        rec.message.csid
    };
    reader.set_max_message_len(WATCH_LIMIT as u32);
    let mut fix = Fixup::new(reader, csid, data[end..fed].into(), rec.end);
    let mut out = Vec::new();
    let mut result = fix.process();
    while result.is_ok() {
        // What `Rechunk` hands the relay after each read.
        out.extend_from_slice(&fix.out().split());
        if fix.watching() {
            assert!(
                fix.held() <= WATCH_LIMIT as usize,
                "holds {} bytes",
                fix.held()
            );
            assert!(
                fed - end <= WATCH_LIMIT as usize,
                "still watching {} bytes after connect",
                fed - end
            );
        }
        if fed == data.len() {
            break;
        }
        let n = piece.min(data.len() - fed);
        result = fix.feed(&data[fed..fed + n]);
        fed += n;
    }
    let err = result.err().map(|e| e.to_string());
    if err.is_none() {
        // The client's EOF.
        fix.stop();
        assert!(!fix.watching());
    }
    // On an error: what was decided before it.
    out.extend_from_slice(&fix.out().split());
    Some(Run {
        connect_end: end,
        csid,
        out,
        err,
    })
}

fuzz_target!(|input: &[u8]| {
    let [split, which, data @ ..] = input else {
        return;
    };
    let piece = if split & 0x80 != 0 {
        usize::from(split & 0x7f) + 1
    } else {
        (usize::from(*split) + 1) * 1024
    };
    let other = which & 1 == 1;
    let Some(whole) = run(data, data.len(), other) else {
        return;
    };
    let pieces = run(data, piece, other).expect("connect found whatever the split");
    assert_eq!(whole.connect_end, pieces.connect_end);
    assert_eq!(whole.err, pieces.err, "the split changed the error");
    assert!(whole.out == pieces.out, "the split changed the output");
    if whole.err.is_some() {
        return;
    }
    let after = &data[whole.connect_end..];
    let (sent, sent_err) = messages(data);
    let forwarded = [&data[..whole.connect_end], &whole.out[..]].concat();
    let (read, read_err) = messages(&forwarded);
    assert_eq!(
        sent, read,
        "the upstream reads other messages than the client sent"
    );
    assert_eq!(sent_err, read_err, "the upstream meets another error");
    // No message on the watched chunk stream after connect: untouched.
    let connect_at = sent
        .iter()
        .position(|m| matches!(m.2, TYPE_COMMAND_AMF0 | TYPE_COMMAND_AMF3));
    if connect_at.is_some_and(|i| !sent[i + 1..].iter().any(|m| m.0 == whole.csid)) {
        assert!(whole.out == after, "bytes changed with nothing to re-chunk");
    }
});
