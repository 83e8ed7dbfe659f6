//! Merging and validation, from flags, environment names and files.
use super::*;
use crate::cli::Cli;
use clap::Parser;

fn cli(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("rtmpgate").chain(args.iter().copied())).unwrap()
}

#[test]
fn defaults_listen_on_documented_ports() {
    let c = Config::from_sources(&Cli::default()).unwrap();
    let urls: Vec<String> = c.listeners.iter().map(|l| l.to_string()).collect();
    assert_eq!(urls, DEFAULT_LISTEN);
    assert_eq!(c.upstreams[0].to_string(), DEFAULT_UPSTREAM);
    assert_eq!(c.upstreams.len(), 1);
    assert_eq!(c.tls, TlsSource::SelfSigned);
    assert_eq!(c.tls13_tickets, 0);
    assert_eq!(c.tls_versions, TlsVersions::default());
}

#[test]
fn tls_versions_parse_and_refuse_what_rustls_does_not_offer() {
    let c = Config::from_sources(&cli(&["--tls-versions", "1.3"])).unwrap();
    assert_eq!(
        c.tls_versions,
        TlsVersions {
            tls12: false,
            tls13: true
        }
    );
    let c = Config::from_sources(&cli(&["--tls-versions", " 1.3 , 1.2 "])).unwrap();
    assert_eq!(c.tls_versions, TlsVersions::default());
    for bad in ["1.1", "", "tls1.3", "1.2;1.3"] {
        let err = Config::from_sources(&cli(&["--tls-versions", bad]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("tls_versions"), "{bad:?}: {err}");
        assert!(
            err.contains("1.2"),
            "{bad:?}: the error says what to use: {err}"
        );
    }
}

#[test]
fn flags_beat_file_and_file_beats_defaults() {
    let dir = std::env::temp_dir().join(format!("rtmpgate-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(
        &file,
        "listen = [\"rtmp://127.0.0.1:2000\"]\nupstream = \"rtmp://10.1.1.1:1935\"\nidle_timeout = \"0s\"\nconnect_timeout = \"2s\"\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let c = Config::from_sources(&cli(&["--config", path])).unwrap();
    assert_eq!(c.listeners[0].to_string(), "rtmp://127.0.0.1:2000");
    assert_eq!(c.upstreams[0].host, "10.1.1.1");
    assert_eq!(c.timeouts.idle, None);
    assert_eq!(c.timeouts.connect, Duration::from_secs(2));
    let c = Config::from_sources(&cli(&[
        "--config",
        path,
        "--upstream",
        "rtmp://127.0.0.2",
        "--connect-timeout",
        "750ms",
    ]))
    .unwrap();
    assert_eq!(c.upstreams[0].host, "127.0.0.2");
    assert_eq!(c.timeouts.connect, Duration::from_millis(750));
    assert_eq!(c.listeners[0].to_string(), "rtmp://127.0.0.1:2000");
}

#[test]
fn bad_file_names_the_problem() {
    let dir = std::env::temp_dir().join(format!("rtmpgate-cfg2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(&file, "listen_on = 3\n").unwrap();
    let e = Config::from_sources(&cli(&["--config", file.to_str().unwrap()])).unwrap_err();
    assert!(e.to_string().contains("listen_on"), "{e}");
    std::fs::write(&file, "idle_timeout = \"soon\"\n").unwrap();
    let e = Config::from_sources(&cli(&["--config", file.to_str().unwrap()])).unwrap_err();
    assert!(e.to_string().contains("idle_timeout"), "{e}");
    let e = Config::from_sources(&cli(&["--config", "/nonexistent/x.toml"])).unwrap_err();
    assert!(e.to_string().contains("--config"), "{e}");
}

#[test]
fn rtmpt_settings_from_flags_and_file() {
    let dir = std::env::temp_dir().join(format!("rtmpgate-cfg3-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(
        &file,
        "rtmpt_long_poll = \"5ms\"\nrtmpt_max_body = 1024\nrtmpt_any_client_address = true\nrtmpt_header_timeout = \"7s\"\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let c = Config::from_sources(&cli(&["--config", path])).unwrap();
    assert_eq!(c.rtmpt.session.long_poll, Duration::from_millis(5));
    assert_eq!(c.rtmpt.max_body, 1024);
    assert_eq!(c.rtmpt.header_timeout, Duration::from_secs(7));
    assert!(!c.rtmpt.limits.bind_client);
    let c = Config::from_sources(&cli(&["--config", path, "--rtmpt-long-poll", "0s"])).unwrap();
    assert_eq!(c.rtmpt.session.long_poll, Duration::ZERO);
    let e = Config::from_sources(&cli(&["--rtmpt-long-poll", "1m"])).unwrap_err();
    assert!(e.to_string().contains("rtmpt_long_poll"), "{e}");
    let e = Config::from_sources(&cli(&["--rtmpt-header-timeout", "0s"])).unwrap_err();
    assert!(e.to_string().contains("rtmpt_header_timeout"), "{e}");
}

#[test]
fn rtmpt_open_rate_from_flags_and_file() {
    let d = Config::from_sources(&cli(&[])).unwrap().rtmpt.open_rate;
    assert_eq!((d.per_second, d.burst), (10, 32), "README documents these");
    let dir = std::env::temp_dir().join(format!("rtmpgate-cfg-rate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(&file, "rtmpt_open_rate = 3\nrtmpt_open_burst = 7\n").unwrap();
    let path = file.to_str().unwrap();
    let r = Config::from_sources(&cli(&["--config", path]))
        .unwrap()
        .rtmpt
        .open_rate;
    assert_eq!((r.per_second, r.burst), (3, 7));
    let r = Config::from_sources(&cli(&["--config", path, "--rtmpt-open-rate", "0"]))
        .unwrap()
        .rtmpt
        .open_rate;
    assert_eq!((r.per_second, r.burst), (0, 7), "the flag wins");
    let e = Config::from_sources(&cli(&["--rtmpt-open-burst", "0"])).unwrap_err();
    assert!(e.to_string().contains("rtmpt_open_burst"), "{e}");
    Config::from_sources(&cli(&["--rtmpt-open-rate", "0", "--rtmpt-open-burst", "0"]))
        .expect("no burst is needed while the limit is off");
}

#[test]
fn several_upstreams_and_trust() {
    let c = Config::from_sources(&cli(&[
        "--upstream",
        "rtmps://a.example,rtmp://b.example:1936",
        "--upstream-insecure",
    ]))
    .unwrap();
    assert_eq!(c.upstreams.len(), 2);
    assert_eq!(c.upstream_trust, UpstreamTrust::Insecure);
    let e = Cli::try_parse_from(["rtmpgate", "--upstream-ca", "x.pem", "--upstream-insecure"]);
    assert!(e.is_err(), "clap refuses both");
}

#[test]
fn shipped_example_file_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/rtmpgate.toml");
    let c = Config::from_sources(&cli(&["--config", path])).unwrap();
    assert_eq!(c.listeners.len(), 2);
    assert_eq!(c.proxy_protocol_from.len(), 2);
}

#[test]
fn overload_limits_from_flags_env_names_and_file() {
    use clap::CommandFactory;
    let c = Config::from_sources(&Cli::default()).unwrap();
    assert_eq!(c.overload.max_buffered, 512 * 1024 * 1024);
    assert_eq!(c.overload.max_connections, 0, "off by default");

    let dir = std::env::temp_dir().join(format!("rtmpgate-cfg-ovl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(
        &file,
        "overload_max_buffered = 1048576\noverload_max_connections = 500\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let c = Config::from_sources(&cli(&["--config", path])).unwrap();
    assert_eq!(c.overload.max_buffered, 1 << 20);
    assert_eq!(c.overload.max_connections, 500);
    let c = Config::from_sources(&cli(&[
        "--config",
        path,
        "--overload-max-buffered",
        "0",
        "--overload-max-connections",
        "7",
    ]))
    .unwrap();
    assert_eq!(c.overload.max_buffered, 0, "flag beats file; 0 = off");
    assert_eq!(c.overload.max_connections, 7);

    // The environment names follow the others (clap reads them).
    let cmd = Cli::command();
    let env = |id: &str| {
        cmd.get_arguments()
            .find(|a| a.get_id() == id)
            .and_then(|a| a.get_env())
            .and_then(|e| e.to_str())
            .map(str::to_owned)
    };
    assert_eq!(
        env("overload_max_buffered").as_deref(),
        Some("RTMPGATE_OVERLOAD_MAX_BUFFERED")
    );
    assert_eq!(
        env("overload_max_connections").as_deref(),
        Some("RTMPGATE_OVERLOAD_MAX_CONNECTIONS")
    );

    let e = Config::from_sources(&cli(&[
        "--max-connections",
        "100",
        "--overload-max-connections",
        "200",
    ]))
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("overload_max_connections") && msg.contains("lower it"),
        "{msg}"
    );
    let e = Cli::try_parse_from(["rtmpgate", "--overload-max-buffered", "lots"]).unwrap_err();
    assert!(e.to_string().contains("--overload-max-buffered"), "{e}");
}

#[test]
fn duplicate_listeners_refused() {
    let e = Config::from_sources(&cli(&[
        "--listen",
        "rtmp://127.0.0.1:5000",
        "--listen",
        "rtmps://127.0.0.1:5000",
    ]))
    .unwrap_err();
    assert!(e.to_string().contains("twice"), "{e}");
}

#[test]
fn upstream_pins_from_flags_env_names_and_file() {
    use clap::CommandFactory;
    let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let digest: [u8; 32] = std::array::from_fn(|i| {
        u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex test vector")
    });
    let c = Config::from_sources(&Cli::default()).unwrap();
    assert!(c.upstream_pins.is_empty(), "no pin by default");

    let dir = std::env::temp_dir().join(format!("rtmpgate-cfg-pin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(
        &file,
        format!("upstream_pin = \"/etc/file-pin.pem\"\nupstream_pin_sha256 = [\"{hex}\"]\n"),
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let c = Config::from_sources(&cli(&["--config", path])).unwrap();
    assert_eq!(
        c.upstream_pins.certs.as_deref(),
        Some(std::path::Path::new("/etc/file-pin.pem"))
    );
    assert_eq!(c.upstream_pins.spki_sha256, vec![digest]);

    // Flags beat the file; base64 (curl's sha256// form) and colon-separated
    // hex name the same digest; the flag repeats.
    let b64 = "sha256//n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=";
    let colons: String = hex
        .as_bytes()
        .chunks(2)
        .map(|p| std::str::from_utf8(p).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let c = Config::from_sources(&cli(&[
        "--config",
        path,
        "--upstream-pin",
        "/etc/flag-pin.pem",
        "--upstream-pin-sha256",
        b64,
        "--upstream-pin-sha256",
        &colons.to_uppercase(),
    ]))
    .unwrap();
    assert_eq!(
        c.upstream_pins.certs.as_deref(),
        Some(std::path::Path::new("/etc/flag-pin.pem"))
    );
    assert_eq!(c.upstream_pins.spki_sha256, vec![digest, digest]);

    let cmd = Cli::command();
    let env = |id: &str| {
        cmd.get_arguments()
            .find(|a| a.get_id() == id)
            .and_then(|a| a.get_env())
            .and_then(|e| e.to_str())
            .map(str::to_owned)
    };
    assert_eq!(
        env("upstream_pin").as_deref(),
        Some("RTMPGATE_UPSTREAM_PIN")
    );
    assert_eq!(
        env("upstream_pin_sha256").as_deref(),
        Some("RTMPGATE_UPSTREAM_PIN_SHA256")
    );

    for bad in ["abc", &hex[..62], "sha256//AAAA"] {
        let e = Config::from_sources(&cli(&["--upstream-pin-sha256", bad])).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("upstream_pin_sha256") && msg.contains("64 hex digits"),
            "{msg}"
        );
    }
    let e = Cli::try_parse_from(["rtmpgate", "--upstream-pin", "x.pem", "--upstream-insecure"]);
    assert!(e.is_err(), "clap refuses a pin with --upstream-insecure");
    std::fs::write(&file, "upstream_insecure = true\n").unwrap();
    let e = Config::from_sources(&cli(&["--config", path, "--upstream-pin", "x.pem"])).unwrap_err();
    assert!(e.to_string().contains("exclude each other"), "{e}");
}

#[test]
fn proxy_protocol_from_defaults_to_loopback_and_refuses_ports() {
    let c = Config::from_sources(&Cli::default()).unwrap();
    let shown: Vec<String> = c
        .proxy_protocol_from
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(
        shown,
        ["127.0.0.0/8", "::1/128"],
        "no private range by default"
    );

    let c =
        Config::from_sources(&cli(&["--proxy-protocol-from", "10.0.4.17,10.0.8.0/24"])).unwrap();
    let shown: Vec<String> = c
        .proxy_protocol_from
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(shown, ["10.0.4.17/32", "10.0.8.0/24"]);

    let e = Cli::try_parse_from(["rtmpgate", "--proxy-protocol-from", "10.0.4.17:8080"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("has a port"), "{e}");

    let dir = std::env::temp_dir().join(format!("rtmpgate-cfg-ppf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(
        &file,
        "proxy_protocol_from = [\"10.0.4.17\", \"10.0.4.18:443\"]\n",
    )
    .unwrap();
    let e = Config::from_sources(&cli(&["--config", file.to_str().unwrap()])).unwrap_err();
    let e = e.to_string();
    assert!(
        e.contains("proxy_protocol_from") && e.contains("has a port"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn auth_settings_from_flags_and_file() {
    use crate::auth::LogKeyMode;
    let c = Config::from_sources(&Cli::default()).unwrap();
    assert!(c.auth.webhook_url.is_none() && c.auth.keys_file.is_none());
    assert_eq!(c.auth.log_stream_key, LogKeyMode::Hash);
    assert_eq!(c.auth.timeout, Duration::from_secs(5));

    let dir = std::env::temp_dir().join(format!("rtmpgate-cfg-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(
        &file,
        "auth_webhook = \"http://127.0.0.1:9/hook\"\nauth_timeout = \"2s\"\nauth_play = true\n\
         auth_keys = \"/etc/keys\"\nlog_stream_key = \"plain\"\nauth_max_in_flight = 3\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let c = Config::from_sources(&cli(&["--config", path])).unwrap();
    assert_eq!(
        c.auth.webhook_url.as_deref(),
        Some("http://127.0.0.1:9/hook")
    );
    assert_eq!(c.auth.timeout, Duration::from_secs(2));
    assert!(c.auth.check_play && !c.auth.fail_open);
    assert_eq!(c.auth.log_stream_key, LogKeyMode::Plain);
    assert_eq!(c.auth.max_in_flight, 3);

    let c = Config::from_sources(&cli(&[
        "--config",
        path,
        "--auth-timeout",
        "700ms",
        "--log-stream-key",
        "off",
        "--auth-fail-open",
    ]))
    .unwrap();
    assert_eq!(
        c.auth.timeout,
        Duration::from_millis(700),
        "flags beat the file"
    );
    assert_eq!(c.auth.log_stream_key, LogKeyMode::Off);
    assert!(c.auth.fail_open);

    std::fs::write(&file, "log_stream_key = \"loud\"\n").unwrap();
    let e = Config::from_sources(&cli(&["--config", path])).unwrap_err();
    assert!(e.to_string().contains("log_stream_key"), "{e}");
    let e = Config::from_sources(&cli(&["--auth-timeout", "0s"])).unwrap_err();
    assert!(e.to_string().contains("auth_timeout"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
