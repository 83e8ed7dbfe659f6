//! The passive chunk follower (what the stream gate trusts to see every
//! command) on arbitrary bytes: it never panics; any split of the input
//! gives the same commands and the same first error; what it reports is
//! what the reassembling chunk reader reads, offset for offset, up to the
//! first error of either; `hold_from` never passes what was fed; and every
//! reported command classifies without panicking.
//!
//! The first input byte picks how the rest is split into feeds.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rtmpgate::rtmp::chunk::{
    ChunkReader, TYPE_ABORT, TYPE_COMMAND_AMF0, TYPE_COMMAND_AMF3, TYPE_SET_CHUNK_SIZE,
};
use rtmpgate::rtmp::follow::{Followed, Follower, MAX_COMMAND_LEN};
use rtmpgate::rtmp::stream_command::classify;

fn follow(data: &[u8], piece: usize) -> (Vec<Followed>, Option<String>) {
    let mut follower = Follower::after(0);
    let mut out = Vec::new();
    for part in data.chunks(piece.max(1)) {
        if let Err(err) = follower.feed(part, &mut out) {
            return (out, Some(err.to_string()));
        }
        assert!(
            follower.hold_from() <= follower.fed(),
            "holds past the input"
        );
    }
    (out, None)
}

fuzz_target!(|input: &[u8]| {
    let Some((&split, data)) = input.split_first() else {
        return;
    };
    let (whole, whole_err) = follow(data, data.len());
    let (pieces, pieces_err) = follow(data, usize::from(split % 32) + 1);
    assert_eq!(whole, pieces, "the split changed what was followed");
    assert_eq!(whole_err, pieces_err, "the split changed the error");

    let mut reader = ChunkReader::new(MAX_COMMAND_LEN);
    reader.push(data);
    let mut expected = Vec::new();
    while let Ok(Some(r)) = reader.next_message() {
        let t = r.message.type_id;
        if matches!(
            t,
            TYPE_COMMAND_AMF0 | TYPE_COMMAND_AMF3 | TYPE_SET_CHUNK_SIZE | TYPE_ABORT
        ) {
            expected.push((r.message, r.start, r.end));
        }
    }
    // The reader refuses long media the follower skips, and the follower
    // refuses long commands the reader would hold: compare the common part.
    let n = whole.len().min(expected.len());
    for (f, e) in whole.iter().zip(&expected).take(n) {
        assert_eq!(
            (&f.message, f.start, f.end),
            (&e.0, e.1, e.2),
            "follower and reader disagree"
        );
    }
    for f in &whole {
        let _ = classify(&f.message);
    }
});
