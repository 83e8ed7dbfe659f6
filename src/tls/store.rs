//! The certificates rtmpgate serves, chosen per handshake by SNI, and
//! swapped atomically on reload.
//!
//! Owns [`CertStore`] (a default pair plus SNI pairs, loaded and checked
//! together) and [`CertResolver`] (rustls' hook; holds the current store).
//! A reload builds a complete new store first and swaps it in only if every
//! pair loaded and matched, so a bad update never replaces a good one. Live
//! connections keep the keys they handshook with.

use std::fmt;
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, DnsName, ServerName};

use super::{TlsError, load_chain, load_key, provider, self_signed};
use crate::config::{CertPair, TlsSource};

/// One loaded set of certificates.
pub struct CertStore {
    default: Arc<CertifiedKey>,
    /// Pairs chosen when the client's SNI matches their leaf certificate.
    by_name: Vec<Arc<CertifiedKey>>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("sni_pairs", &self.by_name.len())
            .finish_non_exhaustive()
    }
}

fn load_pair(pair: &CertPair) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = load_chain(&pair.cert)?;
    let key = load_key(&pair.key)?;
    CertifiedKey::from_der(chain, key, &provider())
        .map(Arc::new)
        .map_err(|e| TlsError::Mismatch {
            cert: pair.cert.clone(),
            key: pair.key.clone(),
            why: e.to_string(),
        })
}

impl CertStore {
    /// Loads the default source and the SNI pairs; fails on the first bad one.
    pub fn load(default: &TlsSource, sni: &[CertPair]) -> Result<Self, TlsError> {
        let default = match default {
            TlsSource::Files { cert, key } => load_pair(&CertPair {
                cert: cert.clone(),
                key: key.clone(),
            })?,
            TlsSource::SelfSigned => {
                let (chain, key) = self_signed()?;
                let ck = CertifiedKey::from_der(chain, key, &provider())
                    .map_err(|e| TlsError::Generate(e.to_string()))?;
                Arc::new(ck)
            }
        };
        let by_name = sni.iter().map(load_pair).collect::<Result<_, _>>()?;
        Ok(Self { default, by_name })
    }

    /// The pair for a client that sent `sni` (or none).
    pub fn choose(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = sni.and_then(|s| DnsName::try_from(s.to_owned()).ok()) else {
            return Arc::clone(&self.default);
        };
        let name = ServerName::DnsName(name);
        self.by_name
            .iter()
            .find(|ck| valid_for(&ck.cert[0], &name))
            .unwrap_or(&self.default)
            .clone()
    }

    /// The default leaf certificate (tests and logs).
    pub fn default_leaf(&self) -> &CertificateDer<'static> {
        &self.default.cert[0]
    }
}

fn valid_for(leaf: &CertificateDer<'_>, name: &ServerName<'_>) -> bool {
    webpki::EndEntityCert::try_from(leaf)
        .and_then(|ee| ee.verify_is_valid_for_subject_name(name))
        .is_ok()
}

/// rustls' certificate hook: the current [`CertStore`], swappable.
pub struct CertResolver {
    current: RwLock<Arc<CertStore>>,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver").finish_non_exhaustive()
    }
}

impl CertResolver {
    /// Serves `store` until the next [`CertResolver::replace`].
    pub fn new(store: CertStore) -> Self {
        Self {
            current: RwLock::new(Arc::new(store)),
        }
    }

    /// Installs a new store for every handshake from now on.
    pub fn replace(&self, store: CertStore) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(store);
    }

    /// The store in use now.
    pub fn current(&self) -> Arc<CertStore> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().choose(hello.server_name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &std::path::Path, name: &str) -> CertPair {
        let g = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, g.cert.pem()).unwrap();
        std::fs::write(&key, g.signing_key.serialize_pem()).unwrap();
        CertPair { cert, key }
    }

    #[test]
    fn sni_picks_matching_pair_else_default() {
        let dir = std::env::temp_dir().join(format!("rtmpgate-sni-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let default = pair(&dir, "default.test");
        let a = pair(&dir, "a.test");
        let b = pair(&dir, "b.test");
        let store = CertStore::load(
            &TlsSource::Files {
                cert: default.cert,
                key: default.key,
            },
            &[a, b],
        )
        .unwrap();
        let leaf = |sni| store.choose(sni).cert[0].clone();
        assert_eq!(leaf(Some("a.test")), store.by_name[0].cert[0]);
        assert_eq!(leaf(Some("b.test")), store.by_name[1].cert[0]);
        assert_eq!(&leaf(Some("c.test")), store.default_leaf());
        assert_eq!(&leaf(None), store.default_leaf());
    }
}
