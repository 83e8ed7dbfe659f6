//! Protocol sniffing and URL parsing: `Sniffed::from_first_byte`,
//! `ListenUrl` and `UpstreamUrl` on arbitrary strings never panic; a parsed
//! URL's Display parses back to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rtmpgate::endpoint::{ListenUrl, UpstreamUrl};
use rtmpgate::sniff::Sniffed;

fuzz_target!(|text: &str| {
    if let Some(&first) = text.as_bytes().first() {
        let sniffed = Sniffed::from_first_byte(first);
        if first.is_ascii_uppercase() {
            assert_eq!(sniffed, Sniffed::Http);
        }
    }

    if let Ok(listen) = text.parse::<ListenUrl>() {
        let shown = listen.to_string();
        let again: ListenUrl = shown
            .parse()
            .unwrap_or_else(|e| panic!("{text:?} shows as {shown:?}, which is refused: {e}"));
        assert_eq!(again, listen, "{text:?} -> {shown:?}");
    }

    if let Ok(upstream) = text.parse::<UpstreamUrl>() {
        assert!(!upstream.host.is_empty());
        let _ = upstream.authority();
        let shown = upstream.to_string();
        // Hosts are not validated, so only hosts without URL syntax survive
        // a trip through Display.
        if !upstream.host.contains(['/', '?', '[', ']', '@', '#']) {
            match shown.parse::<UpstreamUrl>() {
                Ok(again) => assert_eq!(again, upstream, "{text:?} -> {shown:?}"),
                Err(e) => panic!("{text:?} shows as {shown:?}, which is refused: {e}"),
            }
        }
    }
});
