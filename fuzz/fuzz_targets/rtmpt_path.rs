//! RTMPT request paths: `rtmpt::path::parse` on arbitrary UTF-8 never
//! panics, and any session route it returns has a 1..=63 character URL-safe
//! id and the numeric sequence number written in the path.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rtmpgate::rtmpt::path::{MAX_ID_LEN, Route, Verb, parse};

fuzz_target!(|path: &str| {
    let Some(route) = parse(path) else {
        return;
    };
    assert!(path.starts_with('/'));
    match route {
        Route::Ident => assert!(path.starts_with("/fcs/ident")),
        Route::Open => assert!(path.starts_with("/open/")),
        Route::Session { verb, id, seq } => {
            assert!(!id.is_empty() && id.len() <= MAX_ID_LEN, "id {id:?}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')),
                "id {id:?} is not URL-safe"
            );
            // The path is exactly /verb/id/seq with an optional trailing '/',
            // and seq is all digits (leading zeros allowed).
            let mut parts = path[1..].split('/');
            assert_eq!(parts.next(), Some(verb.as_str()));
            assert_eq!(parts.next(), Some(id));
            let digits = parts.next().expect("a sequence number");
            assert!(!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
            assert_eq!(digits.parse::<u64>().ok(), Some(seq));
            assert!(matches!(parts.next(), None | Some("")));
            assert_eq!(parts.next(), None, "nothing after a trailing slash");
            assert!(matches!(verb, Verb::Send | Verb::Idle | Verb::Close));
            // Rebuilding the canonical path gives the same route.
            let canonical = format!("/{}/{id}/{seq}", verb.as_str());
            assert_eq!(parse(&canonical), Some(route));
        }
    }
});
