//! TLS towards `rtmps://` upstreams: which roots and pins are trusted.
//!
//! Owns the rustls client configuration: the Mozilla roots (webpki-roots)
//! by default, only a private CA with `--upstream-ca`, pinned origin
//! certificates or keys ([`super::pin`]), or no verification at all with
//! `--upstream-insecure` (tests only: anyone on the path can then read and
//! alter the stream).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;

use super::pin::PinningVerifier;
use crate::config::{UpstreamPins, UpstreamTrust};
use crate::tls::provider;

/// Why the upstream TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamTlsError {
    /// The CA file is unreadable or holds no usable certificate.
    #[error(
        "cannot use {path} as upstream CA: {why} (give a PEM file of CA certificates via --upstream-ca)"
    )]
    Ca {
        /// The file named by `--upstream-ca`.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// The pin file is unreadable or holds no certificate.
    #[error(
        "cannot use {path} as upstream pin: {why} (give a PEM file of the origin's certificate via --upstream-pin)"
    )]
    Pin {
        /// The file named by `--upstream-pin`.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
}

/// Builds the client configuration for `rtmps://` upstreams.
pub fn client_config(
    trust: &UpstreamTrust,
    pins: &UpstreamPins,
) -> Result<Arc<ClientConfig>, UpstreamTlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the crypto provider supports the default protocol versions");
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        UpstreamTrust::Insecure => Arc::new(NoVerification),
        UpstreamTrust::PublicRoots if pins.is_empty() => {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            return Ok(Arc::new(
                builder.with_root_certificates(roots).with_no_client_auth(),
            ));
        }
        UpstreamTrust::PublicRoots => Arc::new(pinning(None, pins)?),
        UpstreamTrust::PrivateCa(path) => Arc::new(pinning(Some(path), pins)?),
    };
    Ok(Arc::new(
        builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    ))
}

/// The verifier for the `--upstream-ca` file `ca` (none: the public roots
/// are replaced by the pins) and the pins.
fn pinning(ca: Option<&Path>, pins: &UpstreamPins) -> Result<PinningVerifier, UpstreamTlsError> {
    let (chain, ca_certs) = match ca {
        None => (None, Vec::new()),
        Some(path) => {
            let err = |why: String| UpstreamTlsError::Ca {
                path: path.to_owned(),
                why,
            };
            let certs = read_certs(path).map_err(err)?;
            let mut roots = RootCertStore::empty();
            for cert in &certs {
                roots.add(cert.clone()).map_err(|e| err(e.to_string()))?;
            }
            let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| err(e.to_string()))?;
            (Some(verifier), certs)
        }
    };
    let pinned = match &pins.certs {
        Some(path) => read_certs(path).map_err(|why| UpstreamTlsError::Pin {
            path: path.to_owned(),
            why,
        })?,
        None => Vec::new(),
    };
    Ok(PinningVerifier {
        chain,
        ca_certs,
        pinned,
        spki_sha256: pins.spki_sha256.clone(),
        algorithms: provider().signature_verification_algorithms,
    })
}

/// Every certificate of a PEM file; at least one.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block found".into());
    }
    Ok(certs)
}

/// Accepts any certificate: `--upstream-insecure`.
#[derive(Debug)]
struct NoVerification;

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
