//! The TOML config file: `Config::from_sources` with `--config` pointing at
//! arbitrary bytes never panics (errors are fine).
//!
//! The bytes go to one temporary file per fuzzing process.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rtmpgate::cli::Cli;
use rtmpgate::config::Config;

fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("rtmpgate-fuzz-config-{}.toml", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = path();
    std::fs::write(path, data).expect("write the temporary config file");
    let cli = Cli {
        config: Some(path.clone()),
        ..Default::default()
    };
    let _ = Config::from_sources(&cli);
});
