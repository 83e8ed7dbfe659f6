//! How much the passive chunk follower costs per relayed byte: a publisher's
//! chunk stream (64 KiB video frames at ffmpeg's 4096-byte chunk size, and
//! at the 128-byte default) fed through `rtmp::follow::Follower` in 64 KiB
//! reads — the relay's read size — side by side with copying the same bytes
//! once (what the relay itself does per byte). Medians of 5 runs.
//!
//! Run: `cargo run --release --example follow_bench`

use std::time::{Duration, Instant};

use rtmpgate::rtmp::chunk::{Message, encode_message};
use rtmpgate::rtmp::follow::{Follower, HANDSHAKE_LEN};

const FRAMES: usize = 4000;
const FRAME: usize = 64 * 1024;
const READ: usize = 64 * 1024;

fn stream(chunk_size: u32) -> Vec<u8> {
    let mut out = vec![3u8; HANDSHAKE_LEN as usize];
    let set_chunk_size = Message {
        csid: 2,
        timestamp: 0,
        type_id: 1,
        stream_id: 0,
        payload: chunk_size.to_be_bytes().to_vec().into(),
    };
    out.extend(encode_message(&set_chunk_size, 128).expect("encodes"));
    for i in 0..FRAMES {
        let m = Message {
            csid: 6,
            timestamp: (i * 33) as u32,
            type_id: 9,
            stream_id: 1,
            payload: vec![(i % 251) as u8; FRAME].into(),
        };
        out.extend(encode_message(&m, chunk_size).expect("encodes"));
    }
    out
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    for chunk_size in [4096u32, 128] {
        let input = stream(chunk_size);
        let mut follow = Vec::new();
        let mut copy = Vec::new();
        let mut sink = vec![0u8; READ];
        for _ in 0..5 {
            let started = Instant::now();
            let mut f = Follower::new();
            let mut out = Vec::new();
            for read in input.chunks(READ) {
                f.feed(read, &mut out).expect("follows");
            }
            follow.push(started.elapsed());
            assert_eq!(out.len(), 1, "media only, after the Set Chunk Size");

            let started = Instant::now();
            for read in input.chunks(READ) {
                sink[..read.len()].copy_from_slice(read);
                std::hint::black_box(&sink);
            }
            copy.push(started.elapsed());
        }
        let mb = input.len() as f64 / 1e6;
        let (f, c) = (median(follow), median(copy));
        println!(
            "chunk size {chunk_size:>5}: {mb:.0} MB  follower {:>7.0} MB/s  one copy {:>7.0} MB/s  follower/copy time {:.2}",
            mb / f.as_secs_f64(),
            mb / c.as_secs_f64(),
            f.as_secs_f64() / c.as_secs_f64()
        );
    }
}
