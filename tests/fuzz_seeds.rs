//! The fuzz seed corpora (`fuzz/seeds/`) replayed on the stable toolchain:
//! the cargo-fuzz targets need nightly, which CI does not have, so this
//! keeps their main invariants checked on every run.

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use rtmpgate::endpoint::{ListenUrl, UpstreamUrl};
use rtmpgate::rtmp::{ChunkReader, amf0};

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.expect("dir entry").path();
            let bytes = std::fs::read(&path).expect("seed readable");
            (path, bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

/// Every message (or the error) the reader yields for `data` pushed in
/// `step`-byte pieces.
fn read_all(data: &[u8], step: usize) -> Vec<String> {
    let mut reader = ChunkReader::new(64 * 1024);
    let mut out = Vec::new();
    for piece in data.chunks(step.max(1)) {
        reader.push(piece);
        loop {
            match reader.next_message() {
                Ok(Some(rec)) => out.push(format!("{rec:?}")),
                Ok(None) => break,
                Err(e) => {
                    out.push(format!("error {e}"));
                    return out;
                }
            }
        }
    }
    out
}

#[test]
fn chunk_reader_gives_the_same_messages_however_input_is_split() {
    for (path, data) in seeds("rtmp_chunk") {
        let data = data.get(1..).unwrap_or_default();
        let whole = read_all(data, data.len());
        assert_eq!(read_all(data, 1), whole, "{}", path.display());
        assert_eq!(read_all(data, 7), whole, "{}", path.display());
        assert!(
            !whole.iter().any(|m| m.starts_with("error")),
            "{}",
            path.display()
        );
    }
}

/// The follower's seeds are whole client chunk streams: it reports the same
/// commands whatever the split, at least one per seed, with no error.
#[test]
fn chunk_follower_agrees_however_input_is_split() {
    use rtmpgate::rtmp::follow::Follower;
    let follow = |data: &[u8], step: usize| {
        let mut f = Follower::after(0);
        let mut out = Vec::new();
        for piece in data.chunks(step.max(1)) {
            f.feed(piece, &mut out).expect("seed follows cleanly");
        }
        out
    };
    for (path, data) in seeds("rtmp_follow") {
        let data = data.get(1..).unwrap_or_default();
        let whole = follow(data, data.len());
        assert!(!whole.is_empty(), "{}: no command followed", path.display());
        assert_eq!(follow(data, 1), whole, "{}", path.display());
        assert_eq!(follow(data, 13), whole, "{}", path.display());
    }
}

#[test]
fn amf0_round_trips_byte_exactly() {
    for (path, data) in seeds("amf0") {
        if let Ok(values) = amf0::decode_all(&data) {
            let mut again = Vec::new();
            amf0::encode_all(&values, &mut again);
            assert_eq!(again, data, "{}", path.display());
        }
    }
}

/// The path seeds are the paths real clients send: every one parses, and
/// cutting its last byte off never panics.
#[test]
fn rtmpt_paths_parse_without_panicking() {
    for (path, data) in seeds("rtmpt_path") {
        let text = std::str::from_utf8(&data).expect("path seeds are text");
        assert!(
            rtmpgate::rtmpt::path::parse(text).is_some(),
            "{}: {text:?} must parse",
            path.display()
        );
        let _ = rtmpgate::rtmpt::path::parse(&text[..text.len() - 1]);
    }
}

#[test]
fn proxy_headers_parse_whole_and_wait_when_cut() {
    let mut complete_headers = 0;
    for (path, data) in seeds("proxy_header") {
        // The first byte only picks a split point for the fuzzer.
        let header = data.get(1..).unwrap_or_default();
        let mut whole = BytesMut::from(header);
        let Ok(Some(complete)) = rtmpgate::proxy_protocol::parse(&mut whole) else {
            continue;
        };
        complete_headers += 1;
        let len = header.len() - complete.rest.len();
        for cut in 1..len {
            let mut part = BytesMut::from(&header[..cut]);
            assert!(
                matches!(rtmpgate::proxy_protocol::parse(&mut part), Ok(None)),
                "{} cut at {cut}",
                path.display()
            );
        }
    }
    assert!(
        complete_headers >= 5,
        "only {complete_headers} seeds are complete headers"
    );
}

#[test]
fn urls_parse_and_print_back() {
    let mut listen_urls = 0;
    for (_, data) in seeds("sniff_and_urls") {
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        if let Ok(url) = text.parse::<ListenUrl>() {
            listen_urls += 1;
            assert_eq!(url.to_string().parse::<ListenUrl>(), Ok(url), "{text}");
        }
        let _ = text.parse::<UpstreamUrl>();
    }
    assert!(listen_urls >= 3, "only {listen_urls} seeds are listen URLs");
}

/// An error and its sources, as one line.
fn error_chain(err: impl std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The config seeds: `example`, `lists` and `routes` are valid files;
/// `bad_duration` and `unknown_key` are refused with an error that names
/// the setting.
#[test]
fn config_files_are_accepted_or_refused_without_panicking() {
    let dir = std::env::temp_dir().join(format!("rtmpgate-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (path, data) in seeds("config_toml") {
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let file = dir.join(&name);
        std::fs::write(&file, &data).unwrap();
        let cli = rtmpgate::cli::Cli {
            config: Some(file),
            ..Default::default()
        };
        let result = rtmpgate::Config::from_sources(&cli);
        match name.as_str() {
            "bad_duration" => {
                let err = error_chain(result.expect_err(&name));
                assert!(err.contains("idle_timeout"), "{name}: {err}");
            }
            "unknown_key" => {
                let err = error_chain(result.expect_err(&name));
                assert!(err.contains("listen_on"), "{name}: {err}");
            }
            _ => {
                result.unwrap_or_else(|e| panic!("{name} is a valid config: {e}"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The ordering seeds are (kind, argument) pairs; every request (kind % 4
/// below 2) is filed with the argument as an offset from the next number,
/// and the session applies what it can after each. Whatever the order, the
/// window stays within its bounds, requests are applied consecutively and
/// none is lost; every seed applies at least one request.
#[test]
fn rtmpt_ordering_applies_in_order_within_its_window() {
    use rtmpgate::rtmpt::command::REORDER_WINDOW;
    use rtmpgate::rtmpt::session::ordering::Reorder;
    let at = tokio::time::Instant::now();
    for (path, data) in seeds("rtmpt_ordering") {
        let mut order = Reorder::default();
        let (mut last, mut applied, mut queued) = (None::<u64>, Vec::<u64>::new(), 0);
        for op in data.chunks_exact(2) {
            if op[0] % 4 >= 2 || op[0] & 0x80 != 0 {
                continue;
            }
            let next = order.next_seq().unwrap_or(0);
            let seq = next.saturating_add_signed(i64::from(op[1] as i8 >> 2));
            if order.file(seq, seq, at, last, None).is_ok() {
                queued += 1;
            }
            while let Some((seq, item)) = order.pop_ready() {
                assert_eq!(seq, item, "{}", path.display());
                if let Some(prev) = applied.last() {
                    assert_eq!(seq, prev + 1, "{}: out of order", path.display());
                }
                applied.push(seq);
                last = Some(seq);
            }
            let next = order.next_seq().unwrap_or(0);
            assert!(order.len() <= REORDER_WINDOW as usize);
            assert!(
                order
                    .waiting()
                    .all(|s| s >= next && s < next + REORDER_WINDOW)
            );
            assert_eq!(queued, applied.len() + order.len(), "{}", path.display());
        }
        let name = path.file_name().unwrap().to_str().unwrap();
        // Red5's numbering from 1 needs the start grace (a timer) to go on.
        if name != "red5_from_one" {
            assert!(!applied.is_empty(), "{name}: nothing applied");
        }
    }
}

/// The framing seeds (byte 0 picks a split) are client byte streams: the
/// pipelining tracker counts the same request heads in one read, byte by
/// byte and in 1000-byte reads, and the number each seed was made with.
#[test]
fn rtmpt_framing_counts_the_same_heads_however_input_is_split() {
    use rtmpgate::rtmpt::framing::{Framing, MAX_HEAD};
    let count = |data: &[u8], step: usize| {
        let mut f = Framing::default();
        let heads: u64 = data.chunks(step.max(1)).map(|c| f.feed(c)).sum();
        if let Framing::Head(buf) = &f {
            assert!(buf.len() <= MAX_HEAD);
        }
        (heads, f)
    };
    for (path, data) in seeds("rtmpt_framing") {
        let data = data.get(1..).unwrap_or_default();
        let whole = count(data, data.len());
        assert_eq!(count(data, 1), whole, "{}", path.display());
        assert_eq!(count(data, 1000), whole, "{}", path.display());
        let name = path.file_name().unwrap().to_str().unwrap();
        let want = match name {
            "librtmp_session" => 4,
            "pipelined_idle_send_idle" => 3,
            "48k_body" => 2,
            // Not followed: counting stops at once.
            "chunked_stops_counting" | "oversized_head" => 0,
            other => panic!("no expected head count for seed {other}"),
        };
        assert_eq!(whole.0, want, "{name}");
        assert_eq!(whole.1 == Framing::Off, want == 0, "{name}: {:?}", whole.1);
    }
}

/// The re-chunker's seeds (bytes 0 and 1 pick a split and the watched
/// stream) are client chunk streams with a `connect`: set up as `routed`
/// does, the fix-up forwards the same bytes in one read and in 100-byte
/// reads, what it forwards reads back as the same messages, it holds at
/// most the watch limit, and it has stopped watching by the end of each:
/// by re-chunking the next command, or (`watch_limit`) at the limit.
#[test]
fn rtmp_rechunk_forwards_the_same_messages_however_input_is_split() {
    use rtmpgate::routed::rechunk::{Fixup, WATCH_LIMIT};
    use rtmpgate::rtmp::chunk::TYPE_COMMAND_AMF0;
    let messages = |data: &[u8]| {
        let mut reader = ChunkReader::new(64 * 1024);
        reader.set_max_message_len(WATCH_LIMIT as u32);
        reader.push(data);
        let mut out = Vec::new();
        while let Some(r) = reader.next_message().expect("seed chunk stream is valid") {
            let m = r.message;
            out.push((m.csid, m.timestamp, m.type_id, m.stream_id, m.payload));
        }
        out
    };
    let run = |data: &[u8], step: usize| {
        // Read as `routed` does, until the connect, then hand on the rest.
        let mut reader = ChunkReader::new(64 * 1024);
        let mut pieces = data.chunks(step.max(1));
        let mut fed = 0;
        let rec = 'connect: loop {
            let piece = pieces.next().expect("a connect");
            reader.push(piece);
            fed += piece.len();
            while let Some(r) = reader.next_message().unwrap() {
                if r.message.type_id == TYPE_COMMAND_AMF0 {
                    break 'connect r;
                }
            }
        };
        reader.set_max_message_len(WATCH_LIMIT as u32);
        let end = rec.end as usize;
        let raw = BytesMut::from(&data[end..fed]);
        let mut fix = Fixup::new(reader, rec.message.csid, raw, rec.end);
        fix.process().unwrap();
        let mut out = fix.out().split().to_vec();
        for piece in pieces {
            fix.feed(piece).unwrap();
            assert!(fix.held() <= WATCH_LIMIT as usize);
            out.extend_from_slice(&fix.out().split());
        }
        let watching = fix.watching();
        fix.stop();
        out.extend_from_slice(&fix.out().split());
        (end, out, watching)
    };
    for (path, data) in seeds("rtmp_rechunk") {
        let data = data.get(2..).unwrap_or_default();
        // Everything in one read: the reader has the rest when the watch begins.
        let whole = run(data, data.len());
        let pieces = run(data, 100);
        assert_eq!(whole.1, pieces.1, "{}", path.display());
        let (end, out, _) = &pieces;
        let forwarded = [&data[..*end], &out[..]].concat();
        assert_eq!(messages(&forwarded), messages(data), "{}", path.display());
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(!pieces.2, "{name}: still watching at the end");
        if name == "watch_limit" {
            assert_eq!(out, &data[*end..], "{name}: passed through unchanged");
        } else if name == "fmt2_inherits_connect_length" {
            // The next command on connect's chunk stream got its length.
            assert_ne!(out, &data[*end..], "{name}: nothing re-chunked");
        }
    }
}
