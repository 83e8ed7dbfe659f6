//! Tests of rule combination without a network: settings, errors, local
//! rules, log names. Webhook behaviour is in `webhook_tests`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

/// A fresh temporary directory for one test.
pub(super) fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rtmpgate-auth-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(super) fn request(call: Call, name: &str, args: &[(&str, &str)]) -> AuthRequest {
    AuthRequest {
        call,
        app: "live".into(),
        name: name.into(),
        args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        addr: IpAddr::from([127, 0, 0, 1]),
        tcurl: "rtmp://127.0.0.1:1935/live".into(),
        flashver: "FMLE/3.0".into(),
        protocol: "rtmp",
        sni: None,
    }
}

fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
    let p = dir.join(file);
    std::fs::write(&p, text).unwrap();
    p
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn auth_off_and_play_not_checked() {
    let a = Authorizer::build(&AuthSettings::default()).unwrap();
    assert!(!a.is_enabled());
    let d = a.authorize(&request(Call::Publish, "x", &[])).await;
    assert!(d.allowed);
    assert_eq!((d.rule, d.reason.as_str()), (Rule::NoRule, "auth off"));

    let dir = temp_dir("play");
    let keys = write(&dir, "keys", "live/cam?key=k1\n");
    let settings = AuthSettings {
        keys_file: Some(keys),
        ..AuthSettings::default()
    };
    let a = Authorizer::build(&settings).unwrap();
    assert!(a.checks(Call::Publish) && !a.checks(Call::Play));
    let d = a.authorize(&request(Call::Play, "cam", &[])).await;
    assert!(d.allowed);
    assert_eq!(d.reason, "play not checked");
    let a = Authorizer::build(&AuthSettings {
        check_play: true,
        ..settings
    })
    .unwrap();
    assert!(a.checks(Call::Play));
    assert!(!a.authorize(&request(Call::Play, "cam", &[])).await.allowed);
    assert!(
        a.authorize(&request(Call::Play, "cam", &[("key", "k1")]))
            .await
            .allowed
    );
}

#[tokio::test]
async fn keys_or_hmac_without_webhook() {
    let dir = temp_dir("local");
    let settings = AuthSettings {
        keys_file: Some(write(&dir, "keys", "live/cam?key=k1\n")),
        hmac_secret_file: Some(write(&dir, "secret", "s3cret\n")),
        ..AuthSettings::default()
    };
    let a = Authorizer::build(&settings).unwrap();
    let check = |args: Vec<(&'static str, String)>| {
        let a = a.clone();
        async move {
            let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
            a.authorize(&request(Call::Publish, "cam", &args)).await
        }
    };
    let d = check(vec![("key", "k1".into())]).await;
    assert_eq!((d.allowed, d.rule), (true, Rule::Keys));
    let d = check(vec![("key", "k2".into())]).await;
    assert_eq!(
        (d.allowed, d.rule, d.reason.as_str()),
        (false, Rule::Keys, "no matching key")
    );

    let exp = now() + 60;
    // The secret's trailing newline is not part of it.
    let sig = sign(b"s3cret", "live", "cam", exp);
    let d = check(vec![("expires", exp.to_string()), ("sig", sig.clone())]).await;
    assert_eq!((d.allowed, d.rule), (true, Rule::Hmac));
    let d = check(vec![("expires", (exp + 1).to_string()), ("sig", sig)]).await;
    assert_eq!(
        (d.allowed, d.rule, d.reason.as_str()),
        (false, Rule::Hmac, "bad signature")
    );
    let old = now() - 10;
    let sig = sign(b"s3cret", "live", "cam", old);
    let d = check(vec![("expires", old.to_string()), ("sig", sig)]).await;
    assert_eq!((d.allowed, d.reason.as_str()), (false, "expired"));
    let d = check(vec![("expires", exp.to_string()), ("sig", "nothex".into())]).await;
    assert_eq!((d.allowed, d.reason.as_str()), (false, "bad signature"));
    assert!(!d.reason.contains("s3cret"));

    let m = a.metrics();
    let deny = m
        .decisions
        .get_or_create(&metrics::DecisionLabels {
            call: "publish",
            result: "deny",
            rule: "hmac",
        })
        .get();
    assert_eq!(deny, 3);
}

#[tokio::test]
async fn reload_through_authorizer() {
    let dir = temp_dir("reload");
    let keys = write(&dir, "keys", "live/a\n");
    let a = Authorizer::build(&AuthSettings {
        keys_file: Some(keys.clone()),
        ..AuthSettings::default()
    })
    .unwrap();
    assert!(a.authorize(&request(Call::Publish, "a", &[])).await.allowed);
    std::fs::write(&keys, "live/b\n").unwrap();
    assert!(a.reload().await.unwrap());
    assert!(!a.authorize(&request(Call::Publish, "a", &[])).await.allowed);
    std::fs::write(&keys, "oops\n").unwrap();
    assert!(a.reload().await.is_err());
    assert!(a.authorize(&request(Call::Publish, "b", &[])).await.allowed);
    let none = Authorizer::build(&AuthSettings::default()).unwrap();
    assert!(!none.reload().await.unwrap());
}

#[test]
fn log_name_modes() {
    let build = |mode| {
        Authorizer::build(&AuthSettings {
            log_stream_key: mode,
            ..AuthSettings::default()
        })
        .unwrap()
    };
    let hash = build(LogKeyMode::Hash);
    let h = hash.log_name("secret-key").unwrap();
    assert!(h.starts_with("h:") && h.len() == 14, "{h}");
    assert!(h[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        hash.log_name("secret-key").unwrap(),
        h,
        "stable in a process"
    );
    assert_ne!(hash.log_name("secret-kez").unwrap(), h);
    assert_ne!(
        build(LogKeyMode::Hash).log_name("secret-key").unwrap(),
        h,
        "keyed"
    );
    assert_eq!(build(LogKeyMode::Plain).log_name("k").as_deref(), Some("k"));
    assert_eq!(build(LogKeyMode::Off).log_name("k"), None);
    assert_eq!(LogKeyMode::default(), LogKeyMode::Hash);
    for m in [LogKeyMode::Hash, LogKeyMode::Plain, LogKeyMode::Off] {
        assert_eq!(m.as_str().parse::<LogKeyMode>(), Ok(m));
    }
    assert_eq!("PLAIN".parse::<LogKeyMode>(), Ok(LogKeyMode::Plain));
    let e = "clear".parse::<LogKeyMode>().unwrap_err();
    assert!(e.contains("use hash, plain or off"), "{e}");
}

#[test]
fn every_error_names_the_flag_and_what_to_do() {
    let dir = temp_dir("errors");
    let err = |s: AuthSettings| Authorizer::build(&s).unwrap_err().to_string();
    let hook = |url: &str| {
        err(AuthSettings {
            webhook_url: Some(url.into()),
            ..AuthSettings::default()
        })
    };
    let e = hook("https://user:pw@hook.example/x?token=t0k");
    assert!(
        e.contains("--auth-webhook") && e.contains("only http://"),
        "{e}"
    );
    assert!(!e.contains("pw") && !e.contains("t0k"), "{e}");
    let e = hook("ftp://127.0.0.1/x");
    assert!(
        e.contains("the scheme must be http://") && e.contains("http://127.0.0.1:8080"),
        "{e}"
    );
    let e = hook("http://");
    assert!(
        e.contains("--auth-webhook") && e.contains("not a usable URL"),
        "{e}"
    );
    let e = hook("/no/host");
    assert!(e.contains("not a usable URL"), "{e}");
    let e = err(AuthSettings {
        timeout: Duration::ZERO,
        ..AuthSettings::default()
    });
    assert_eq!(e, "--auth-timeout: must be more than zero, e.g. 5s");
    let e = err(AuthSettings {
        max_in_flight: 0,
        ..AuthSettings::default()
    });
    assert_eq!(e, "--auth-max-in-flight: must be at least 1");
    let missing = dir.join("missing");
    let e = err(AuthSettings {
        keys_file: Some(missing.clone()),
        ..AuthSettings::default()
    });
    assert!(
        e.starts_with("--auth-keys ") && e.contains("cannot read") && e.contains("permissions"),
        "{e}"
    );
    let e = err(AuthSettings {
        hmac_secret_file: Some(missing),
        ..AuthSettings::default()
    });
    assert!(
        e.starts_with("--auth-hmac-secret ") && e.contains("cannot read"),
        "{e}"
    );
    let e = err(AuthSettings {
        hmac_secret_file: Some(write(&dir, "empty", "\r\n\n")),
        ..AuthSettings::default()
    });
    assert!(
        e.contains("--auth-hmac-secret") && e.contains("the secret is empty"),
        "{e}"
    );
    let e = err(AuthSettings {
        keys_file: Some(write(&dir, "bad", "live/a?key=s3cretvalue&x=1\n")),
        ..AuthSettings::default()
    });
    assert!(e.contains("bad:1: only one key=VALUE"), "{e}");
    assert!(
        !e.contains("s3cretvalue"),
        "the line (a key) is not echoed: {e}"
    );
    let e = AuthError::Random("no entropy".into()).to_string();
    assert!(e.contains("random") && e.contains("no entropy"), "{e}");
}

#[test]
fn debug_hides_secrets() {
    let s = AuthSettings {
        webhook_url: Some("http://u:pw@127.0.0.1:9/hook?token=t0k".into()),
        ..AuthSettings::default()
    };
    let d = format!("{s:?}");
    assert!(d.contains("http://<user>@127.0.0.1:9/hook?<query>"), "{d}");
    assert!(!d.contains("pw") && !d.contains("t0k"), "{d}");
    let dir = temp_dir("debug");
    let a = Authorizer::build(&AuthSettings {
        hmac_secret_file: Some(write(&dir, "secret", "hunter2")),
        ..AuthSettings::default()
    })
    .unwrap();
    let d = format!("{a:?}");
    assert!(d.contains("hmac: true") && !d.contains("hunter2"), "{d}");
    let r = format!(
        "{:?}",
        request(Call::Publish, "streamkey1", &[("sig", "abcdef")])
    );
    assert!(!r.contains("streamkey1") && !r.contains("abcdef"), "{r}");
    assert!(r.contains(r#"arg_names: ["sig"]"#), "{r}");
}
