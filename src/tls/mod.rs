//! TLS server configuration: PEM loading, the self-signed fallback, and the
//! rustls settings that real RTMP clients need.
//!
//! Owns turning configured PEM files into a `rustls::ServerConfig`. PEM
//! parsing is `rustls-pki-types`' `PemObject` (the maintained home of what
//! `rustls-pemfile` used to do). Which certificate a handshake gets (SNI) is
//! [`store`]; swapping them at run time is [`reload`]. The handshake itself
//! runs in [`crate::connection`], under its own timeout.

pub mod reload;
pub mod store;

pub use reload::TlsReloader;
pub use store::{CertResolver, CertStore};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;

use crate::config::TlsVersions;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Most encrypted bytes one client connection's TLS session may queue for
/// a client that is not taking them (rustls' default is 64 KiB). The
/// relay's own 64 KiB buffer already waits behind a blocked write, so the
/// queue is mostly memory per stalled player; but each 64 KiB relay write
/// is encrypted and sent in queue-sized pieces. Measured (README, "Worst
/// case per relayed connection"): 16 KiB saved 49 KiB per stalled
/// connection and cost ~10% more CPU per byte towards players; 32 KiB saves
/// 29–36 KiB for ~4%.
pub const SENDABLE_TLS_LIMIT: usize = 32 * 1024;

/// Names the generated certificate is valid for: enough for local testing.
const SELF_SIGNED_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// Why no TLS configuration could be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is missing, unreadable or holds no PEM certificate.
    #[error(
        "cannot load certificate chain from {path}: {why} (give a PEM file with the leaf first via --tls-cert)"
    )]
    Cert {
        /// File named by `--tls-cert`.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// The key file is missing, unreadable or holds no supported key.
    #[error(
        "cannot load private key from {path}: {why} (give a PEM PKCS#8, PKCS#1 or SEC1 key via --tls-key)"
    )]
    Key {
        /// File named by `--tls-key`.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// The key does not belong to the certificate, or rustls refuses the pair.
    #[error(
        "certificate {cert} and key {key} do not fit together: {why} (check that the key is the one the certificate was issued for)"
    )]
    Mismatch {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
        /// rustls' reason.
        why: String,
    },
    /// Generating the self-signed certificate failed (should not happen).
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
}

/// The crypto provider every TLS config in rtmpgate uses (see README,
/// "Dependency notes": aws-lc-rs, for its RSA and AES-GCM speed).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Builds the server configuration for all TLS listeners. Certificates
/// come from `resolver`, so they can be swapped without a new config;
/// `versions` are the TLS versions offered.
pub fn server_config(
    resolver: Arc<CertResolver>,
    tls13_tickets: usize,
    versions: TlsVersions,
) -> Arc<ServerConfig> {
    let mut offered: Vec<&'static rustls::SupportedProtocolVersion> = Vec::with_capacity(2);
    if versions.tls13 {
        offered.push(&rustls::version::TLS13);
    }
    if versions.tls12 {
        offered.push(&rustls::version::TLS12);
    }
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&offered)
        .expect("the crypto provider supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    // librtmp 2.4 with GnuTLS fails its RTMP handshake when TLS 1.3 session
    // tickets arrive after the TLS handshake; RTMP connections are long-lived,
    // so resumption buys little. Default 0, configurable.
    config.send_tls13_tickets = tls13_tickets;
    Arc::new(config)
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |why: String| TlsError::Cert {
        path: path.to_owned(),
        why,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if chain.is_empty() {
        return Err(err("no CERTIFICATE block found".into()));
    }
    Ok(chain)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        path: path.to_owned(),
        why: e.to_string(),
    })
}

/// A fresh ECDSA P-256 certificate for [`SELF_SIGNED_NAMES`], in memory only.
pub fn self_signed() -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let names: Vec<String> = SELF_SIGNED_NAMES.iter().map(|s| s.to_string()).collect();
    let generated =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    let key = PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der());
    Ok((vec![generated.cert.der().clone()], key.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rtmpgate-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn self_signed_config_sends_no_tickets() {
        let store = CertStore::load(&crate::config::TlsSource::SelfSigned, &[]).unwrap();
        let c = server_config(
            Arc::new(CertResolver::new(store)),
            0,
            TlsVersions::default(),
        );
        assert_eq!(c.send_tls13_tickets, 0);
    }

    #[test]
    fn loads_pem_pair_and_rejects_mismatch() {
        use crate::config::TlsSource;
        let d = tmpdir("pair");
        let a = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b.test".into()]).unwrap();
        let cert = write(&d, "a.crt", &a.cert.pem());
        let key = write(&d, "a.key", &a.signing_key.serialize_pem());
        let other_key = write(&d, "b.key", &b.signing_key.serialize_pem());
        CertStore::load(
            &TlsSource::Files {
                cert: cert.clone(),
                key,
            },
            &[],
        )
        .unwrap();
        let e = CertStore::load(
            &TlsSource::Files {
                cert,
                key: other_key,
            },
            &[],
        )
        .unwrap_err();
        assert!(matches!(e, TlsError::Mismatch { .. }), "{e}");
        assert!(e.to_string().contains("do not fit"), "{e}");
    }

    #[test]
    fn missing_and_empty_files_say_which_flag() {
        let d = tmpdir("bad");
        let empty = write(&d, "empty.pem", "not pem\n");
        let e = load_chain(&empty).unwrap_err();
        assert!(e.to_string().contains("--tls-cert"), "{e}");
        let e = load_key(&empty).unwrap_err();
        assert!(e.to_string().contains("--tls-key"), "{e}");
        let e = load_chain(&d.join("nope.pem")).unwrap_err();
        assert!(e.to_string().contains("nope.pem"), "{e}");
    }
}
