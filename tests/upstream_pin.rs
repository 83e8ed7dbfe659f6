//! Pinned `rtmps://` origins (issue 12): a self-signed `CA:TRUE` certificate
//! (what OpenSSL 3's `req -x509` makes) is accepted through `--upstream-ca`,
//! `--upstream-pin` or `--upstream-pin-sha256`, its validity period still
//! checked; any other certificate is refused with advice; ordinary CA → leaf
//! chains are still verified in full, names included.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;

use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    PublicKeyData,
};
use rtmpgate::config::{TlsSource, UpstreamPins, UpstreamTrust};
use rtmpgate::upstream::tls::client_config;
use tokio_rustls::TlsConnector;

const RTMP: &str = "rtmp://127.0.0.1:0";
const RTMPS: &str = "rtmps://127.0.0.1:0";
/// The names OpenSSL's recipe puts in the SAN: IP:127.0.0.1, DNS:localhost.
const ORIGIN_NAMES: &[&str] = &["127.0.0.1", "localhost"];

/// A generated certificate, its key, and the files holding them.
struct Cert {
    cert: PathBuf,
    key: PathBuf,
    /// SHA-256 of the SubjectPublicKeyInfo, as rcgen encodes the key.
    spki_sha256: [u8; 32],
    params: CertificateParams,
    signing_key: KeyPair,
}

fn write(
    dir: &TempDir,
    tag: &str,
    cert: &rcgen::Certificate,
    key: KeyPair,
    p: CertificateParams,
) -> Cert {
    let path = dir.path().join(format!("{tag}.pem"));
    let key_path = dir.path().join(format!("{tag}.key"));
    std::fs::write(&path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let spki =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &key.subject_public_key_info());
    Cert {
        cert: path,
        key: key_path,
        spki_sha256: spki.as_ref().try_into().unwrap(),
        params: p,
        signing_key: key,
    }
}

fn params(names: &[&str], ca: bool, expired: bool) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut p = CertificateParams::new(names.clone()).unwrap();
    // Distinct subjects, so a stranger's leaf cannot claim our root as issuer.
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name
        .push(DnType::CommonName, names[0].as_str());
    if ca {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    if expired {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    p
}

/// A self-signed certificate; `ca` as OpenSSL 3's `req -x509` sets it.
fn self_signed(dir: &TempDir, tag: &str, names: &[&str], ca: bool, expired: bool) -> Cert {
    let key = KeyPair::generate().unwrap();
    let p = params(names, ca, expired);
    let cert = p.self_signed(&key).unwrap();
    write(dir, tag, &cert, key, p)
}

/// A certificate for `names` signed by `issuer`.
fn issued(dir: &TempDir, tag: &str, issuer: &Cert, names: &[&str], ca: bool) -> Cert {
    let key = KeyPair::generate().unwrap();
    let p = params(names, ca, false);
    let issuer = Issuer::from_params(&issuer.params, &issuer.signing_key);
    let cert = p.signed_by(&key, &issuer).unwrap();
    write(dir, tag, &cert, key, p)
}

/// An RTMPS-only origin (a second rtmpgate) serving `cert`, in front of
/// the recording test upstream.
async fn origin(upstream: &TestUpstream, cert: &Cert) -> TestGateway {
    let tls = TlsSource::Files {
        cert: cert.cert.clone(),
        key: cert.key.clone(),
    };
    start_gateway(&[RTMPS], upstream.addr, |c| c.tls = tls).await
}

fn rtmps_url(origin: SocketAddr) -> rtmpgate::endpoint::UpstreamUrl {
    format!("rtmps://{SERVER_NAME}:{}", origin.port())
        .parse()
        .unwrap()
}

fn ca(cert: &Cert) -> UpstreamTrust {
    UpstreamTrust::PrivateCa(cert.cert.clone())
}

fn pin_file(cert: &Cert) -> UpstreamPins {
    UpstreamPins {
        certs: Some(cert.cert.clone()),
        spki_sha256: Vec::new(),
    }
}

fn pin_key(digest: [u8; 32]) -> UpstreamPins {
    UpstreamPins {
        certs: None,
        spki_sha256: vec![digest],
    }
}

/// The TLS handshake with `origin` under this trust: `Ok` or the error
/// exactly as rtmpgate logs it.
async fn handshake(
    origin: &TestGateway,
    trust: &UpstreamTrust,
    pins: &UpstreamPins,
) -> Result<(), String> {
    let tls = TlsConnector::from(client_config(trust, pins).expect("client config builds"));
    let url = rtmps_url(origin.rtmps());
    match rtmpgate::upstream::connect(&url, STEP, None, &tls).await {
        Ok(_) => Ok(()),
        Err(e) => {
            assert_eq!(e.reason(), "tls", "{e}");
            Err(e.to_string())
        }
    }
}

async fn refused(origin: &TestGateway, trust: &UpstreamTrust, pins: &UpstreamPins, advice: &str) {
    let err = handshake(origin, trust, pins)
        .await
        .expect_err("the origin must be refused");
    assert!(err.contains(advice), "want `{advice}` in: {err}");
}

/// A plain RTMP client reaches the recording upstream through rtmpgate and
/// the RTMPS origin, byte-exact both ways.
async fn relays(
    upstream: &mut TestUpstream,
    origin: &TestGateway,
    trust: UpstreamTrust,
    pins: UpstreamPins,
) {
    let gw = start_gateway(&[RTMP], upstream.addr, |c| {
        c.upstreams = vec![rtmps_url(origin.rtmps())];
        c.upstream_trust = trust;
        c.upstream_pins = pins;
    })
    .await;
    let client = connect_tcp(gw.rtmp()).await;
    let mut live = LiveRelay::establish(client, upstream).await;
    live.check("rtmp → rtmpgate → pinned rtmps origin").await;
}

#[tokio::test]
async fn ca_true_self_signed_origin_given_as_upstream_ca_relays() {
    let dir = TempDir::new("pin");
    let cert = self_signed(&dir, "origin", ORIGIN_NAMES, true, false);
    let mut upstream = TestUpstream::start().await;
    let origin = origin(&upstream, &cert).await;
    relays(&mut upstream, &origin, ca(&cert), UpstreamPins::default()).await;
}

#[tokio::test]
async fn ca_true_self_signed_origin_pinned_by_file_or_key_relays() {
    let dir = TempDir::new("pin");
    let cert = self_signed(&dir, "origin", ORIGIN_NAMES, true, false);
    let mut upstream = TestUpstream::start().await;
    let origin = origin(&upstream, &cert).await;
    relays(
        &mut upstream,
        &origin,
        UpstreamTrust::PublicRoots,
        pin_file(&cert),
    )
    .await;
    let key = pin_key(cert.spki_sha256);
    relays(&mut upstream, &origin, UpstreamTrust::PublicRoots, key).await;
}

#[tokio::test]
async fn another_certificate_with_the_same_names_is_refused() {
    let dir = TempDir::new("pin");
    let pinned = self_signed(&dir, "pinned", ORIGIN_NAMES, true, false);
    let other = self_signed(&dir, "other", ORIGIN_NAMES, true, false);
    let upstream = TestUpstream::start().await;
    let origin = origin(&upstream, &other).await;
    let roots = UpstreamTrust::PublicRoots;
    refused(&origin, &roots, &pin_file(&pinned), "not the pinned one").await;
    // Pins replace the public roots: no fallback to them.
    refused(
        &origin,
        &roots,
        &pin_key(pinned.spki_sha256),
        "not the pinned one",
    )
    .await;
    let none = UpstreamPins::default();
    refused(
        &origin,
        &ca(&pinned),
        &none,
        "CA certificate used as a server certificate",
    )
    .await;
}

#[tokio::test]
async fn spki_pin_right_accepted_wrong_refused() {
    let dir = TempDir::new("pin");
    let cert = self_signed(&dir, "origin", ORIGIN_NAMES, true, false);
    let upstream = TestUpstream::start().await;
    let origin = origin(&upstream, &cert).await;
    let roots = UpstreamTrust::PublicRoots;
    handshake(&origin, &roots, &pin_key(cert.spki_sha256))
        .await
        .expect("the right key pin is accepted");
    let mut wrong = cert.spki_sha256;
    wrong[31] ^= 1;
    refused(&origin, &roots, &pin_key(wrong), "--upstream-pin-sha256").await;
    // Several pins (key rotation): any one matching is enough.
    let both = UpstreamPins {
        certs: None,
        spki_sha256: vec![wrong, cert.spki_sha256],
    };
    handshake(&origin, &roots, &both)
        .await
        .expect("one of two pins matches");
}

#[tokio::test]
async fn expired_pinned_certificate_is_refused() {
    let dir = TempDir::new("pin");
    let cert = self_signed(&dir, "expired", ORIGIN_NAMES, true, true);
    let upstream = TestUpstream::start().await;
    let origin = origin(&upstream, &cert).await;
    let roots = UpstreamTrust::PublicRoots;
    let none = UpstreamPins::default();
    let advice = "outside its validity period";
    refused(&origin, &roots, &pin_file(&cert), advice).await;
    refused(&origin, &roots, &pin_key(cert.spki_sha256), advice).await;
    refused(&origin, &ca(&cert), &none, advice).await;
}

#[tokio::test]
async fn names_are_checked_for_upstream_ca_but_not_for_pins() {
    let dir = TempDir::new("pin");
    // Valid, but for another host than the `localhost` we connect to.
    let cert = self_signed(&dir, "elsewhere", &["origin.example"], true, false);
    let upstream = TestUpstream::start().await;
    let origin = origin(&upstream, &cert).await;
    let none = UpstreamPins::default();
    // As curl --cacert: the CA file vouches for the certificate, not the name.
    refused(&origin, &ca(&cert), &none, "does not name the host").await;
    let roots = UpstreamTrust::PublicRoots;
    handshake(&origin, &roots, &pin_file(&cert))
        .await
        .expect("a pinned certificate is its own identity");
}

#[tokio::test]
async fn ca_to_leaf_chain_is_still_verified_in_full() {
    let dir = TempDir::new("pin");
    let root = self_signed(&dir, "root", &["root.test"], true, false);
    let leaf = issued(&dir, "leaf", &root, ORIGIN_NAMES, false);
    let wrong_name = issued(&dir, "wrong", &root, &["origin.example"], false);
    let ca_as_leaf = issued(&dir, "sub", &root, ORIGIN_NAMES, true);
    let stranger_root = self_signed(&dir, "stranger", &["other-root.test"], true, false);
    let stranger = issued(&dir, "stranger-leaf", &stranger_root, ORIGIN_NAMES, false);
    let mut upstream = TestUpstream::start().await;
    let none = UpstreamPins::default();

    let good = origin(&upstream, &leaf).await;
    relays(&mut upstream, &good, ca(&root), none.clone()).await;
    // Pins given too: the CA file still vouches for its leaves.
    handshake(&good, &ca(&root), &pin_key([0; 32]))
        .await
        .expect("a chain to --upstream-ca is accepted beside pins");

    let bad = origin(&upstream, &wrong_name).await;
    refused(&bad, &ca(&root), &none, "does not name the host").await;
    let bad = origin(&upstream, &stranger).await;
    refused(&bad, &ca(&root), &none, "no trusted CA signed").await;
    let bad = origin(&upstream, &ca_as_leaf).await;
    refused(&bad, &ca(&root), &none, "OpenSSL 3's `req -x509`").await;
    assert!(
        upstream.try_next_conn().is_none(),
        "no refused origin was relayed to"
    );
}

#[test]
fn an_unreadable_pin_file_is_refused_at_start_with_the_flag_named() {
    let dir = TempDir::new("pin");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let pins = UpstreamPins {
        certs: Some(empty),
        spki_sha256: Vec::new(),
    };
    let err = client_config(&UpstreamTrust::PublicRoots, &pins).expect_err("no certificate");
    assert!(err.to_string().contains("--upstream-pin"), "{err}");
}

/// `rtmpgate ARGS` with no RTMPGATE_* variable from the test's environment.
async fn run_binary(args: &[&str]) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_rtmpgate"));
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RTMPGATE_") {
            cmd.env_remove(key);
        }
    }
    within(STEP, &format!("rtmpgate {args:?} to exit"), cmd.output())
        .await
        .expect("run rtmpgate")
}

#[tokio::test]
async fn check_config_reads_the_pin_file_and_the_pins() {
    let dir = TempDir::new("pin-bin");
    let cert = self_signed(&dir, "origin", ORIGIN_NAMES, true, false);
    let listen = ["--listen", "rtmp://127.0.0.1:0"];
    let good = cert.cert.to_str().unwrap();
    let out =
        run_binary(&[&listen[..], &["--check-config", "--upstream-pin", good]].concat()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    let out =
        run_binary(&[&listen[..], &["--check-config", "--upstream-pin", missing]].concat()).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("--upstream-pin"),
        "{stderr}"
    );
    let out = run_binary(
        &[
            &listen[..],
            &["--check-config", "--upstream-pin-sha256", "nothex"],
        ]
        .concat(),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("upstream_pin_sha256"),
        "{stderr}"
    );
}
