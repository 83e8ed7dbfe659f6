//! TLS towards `rtmps://` upstreams: which roots are trusted.
//!
//! Owns the rustls client configuration: the Mozilla roots (webpki-roots)
//! by default, only a private CA with `--upstream-ca`, or no verification
//! at all with `--upstream-insecure` (tests only: anyone on the path can
//! then read and alter the stream).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;

use crate::config::UpstreamTrust;
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
}

/// Builds the client configuration for `rtmps://` upstreams.
pub fn client_config(trust: &UpstreamTrust) -> Result<Arc<ClientConfig>, UpstreamTlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the crypto provider supports the default protocol versions");
    let config = match trust {
        UpstreamTrust::PublicRoots => {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        UpstreamTrust::PrivateCa(path) => builder
            .with_root_certificates(load_ca(path)?)
            .with_no_client_auth(),
        UpstreamTrust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn load_ca(path: &Path) -> Result<RootCertStore, UpstreamTlsError> {
    let err = |why: String| UpstreamTlsError::Ca {
        path: path.to_owned(),
        why,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| err(e.to_string()))? {
        roots
            .add(cert.map_err(|e| err(e.to_string()))?)
            .map_err(|e| err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(err("no CERTIFICATE block found".into()));
    }
    Ok(roots)
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
