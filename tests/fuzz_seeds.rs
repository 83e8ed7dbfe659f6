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
