//! Pinned origin certificates: accepting an `rtmps://` upstream for what its
//! certificate is rather than for who signed it.
//!
//! Owns [`PinningVerifier`] and the advice logged when an origin's
//! certificate is refused ([`advice`]). An origin is accepted, in order:
//! 1. when its end-entity certificate is byte-identical to one in
//!    `--upstream-pin`, or its SubjectPublicKeyInfo hashes to an
//!    `--upstream-pin-sha256`: validity period checked, issuer and names not
//!    (the pin is the identity, as with curl `--pinnedpubkey`);
//! 2. when it is byte-identical to a certificate in `--upstream-ca`:
//!    validity period and names checked, chain not. This is what OpenSSL
//!    clients (curl `--cacert`, ffmpeg, stunnel) do with a self-signed
//!    certificate given as the CA, including OpenSSL 3's `req -x509`
//!    certificates, which are `CA:TRUE` and which webpki alone refuses
//!    (`CaUsedAsEndEntity`);
//! 3. otherwise by the full WebPKI check against `--upstream-ca`; with pins
//!    and no `--upstream-ca` there is no third way (the public roots are not
//!    trusted once the operator has said which certificate the origin has).
//!
//! Handshake signatures are always verified with the provider's algorithms.

use std::fmt;
use std::io;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};

/// The origin's certificate matched none of the pins, and no
/// `--upstream-ca` was given to check it another way.
#[derive(Debug)]
pub struct NoPinMatched;

impl fmt::Display for NoPinMatched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the certificate matches no --upstream-pin or --upstream-pin-sha256")
    }
}

impl std::error::Error for NoPinMatched {}

/// Verifies origin certificates by pin, by identity with a CA-file
/// certificate, or by WebPKI chain (see the module doc for the order).
#[derive(Debug)]
pub struct PinningVerifier {
    /// Chain verification against `--upstream-ca`; `None` with pins only.
    pub(super) chain: Option<Arc<WebPkiServerVerifier>>,
    /// The certificates of `--upstream-ca`, matched byte for byte.
    pub(super) ca_certs: Vec<CertificateDer<'static>>,
    /// The certificates of `--upstream-pin`.
    pub(super) pinned: Vec<CertificateDer<'static>>,
    /// `--upstream-pin-sha256` digests.
    pub(super) spki_sha256: Vec<[u8; 32]>,
    /// Signature algorithms for the handshake signatures.
    pub(super) algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let leaf = end_entity.as_ref();
        let identical = |list: &[CertificateDer<'static>]| list.iter().any(|c| c.as_ref() == leaf);
        if identical(&self.pinned) || self.spki_pinned(leaf)? {
            check_validity(leaf, now)?;
            return Ok(ServerCertVerified::assertion());
        }
        if identical(&self.ca_certs) {
            check_validity(leaf, now)?;
            webpki::EndEntityCert::try_from(end_entity)
                .map_err(|_| CertificateError::BadEncoding)?
                .verify_is_valid_for_subject_name(server_name)
                .map_err(|_| CertificateError::NotValidForName)?;
            return Ok(ServerCertVerified::assertion());
        }
        match &self.chain {
            Some(chain) => {
                chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            }
            None => Err(CertificateError::Other(OtherError(Arc::new(NoPinMatched))).into()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl PinningVerifier {
    fn spki_pinned(&self, leaf: &[u8]) -> Result<bool, rustls::Error> {
        if self.spki_sha256.is_empty() {
            return Ok(false);
        }
        let (_, cert) =
            x509_parser::parse_x509_certificate(leaf).map_err(|_| CertificateError::BadEncoding)?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert.public_key().raw);
        Ok(self.spki_sha256.iter().any(|p| p[..] == *digest.as_ref()))
    }
}

/// The validity period, the one check a pinned certificate still gets: a
/// pin does not make an expired certificate good (HAProxy and curl agree).
fn check_validity(leaf: &[u8], now: UnixTime) -> Result<(), rustls::Error> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf).map_err(|_| CertificateError::BadEncoding)?;
    let secs = i64::try_from(now.as_secs()).map_err(|_| CertificateError::Expired)?;
    let now =
        x509_parser::time::ASN1Time::from_timestamp(secs).map_err(|_| CertificateError::Expired)?;
    let validity = cert.validity();
    if now < validity.not_before {
        return Err(CertificateError::NotValidYet.into());
    }
    if now > validity.not_after {
        return Err(CertificateError::Expired.into());
    }
    Ok(())
}

/// What the operator should do about a refused origin certificate, if
/// `err` (from the TLS handshake) is one.
pub fn advice(err: &io::Error) -> Option<&'static str> {
    let rustls::Error::InvalidCertificate(cert) = err.get_ref()?.downcast_ref::<rustls::Error>()?
    else {
        return None;
    };
    Some(match cert {
        CertificateError::Other(OtherError(other))
            if matches!(
                other.downcast_ref::<webpki::Error>(),
                Some(webpki::Error::CaUsedAsEndEntity)
            ) =>
        {
            "the origin's certificate is a CA certificate used as a server certificate \
             (OpenSSL 3's `req -x509` makes such certificates): give that certificate with \
             --upstream-pin FILE or --upstream-ca FILE, pin its key with --upstream-pin-sha256, \
             or issue the origin a leaf certificate from a CA"
        }
        CertificateError::Other(OtherError(other)) if other.is::<NoPinMatched>() => {
            "the origin's certificate is not the pinned one: update --upstream-pin or \
             --upstream-pin-sha256 after a certificate change, or give the CA that signed it \
             with --upstream-ca"
        }
        CertificateError::UnknownIssuer => {
            "no trusted CA signed the origin's certificate: give that CA (or, for a \
             self-signed origin, the certificate itself) with --upstream-ca, or pin it with \
             --upstream-pin / --upstream-pin-sha256"
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "the origin's certificate does not name the host in --upstream: use a host name or \
             IP address from its subjectAltName in --upstream, or pin the certificate with \
             --upstream-pin, which does not check names"
        }
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => {
            "the origin's certificate is outside its validity period: renew it on the origin \
             (pins do not waive expiry), or check this host's clock"
        }
        _ => {
            "check the origin's certificate, --upstream-ca, --upstream-pin and the host name \
             in --upstream"
        }
    })
}
