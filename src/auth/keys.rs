//! The static keys file (`--auth-keys`): parsing, matching and reloading.
//!
//! Owns the file format and the constant-time comparison. Does not own when
//! to reload (the caller's timer/SIGHUP calls [`KeysFile::reload`]), nor how
//! a match combines with other rules (`authorizer`).
//!
//! Format: one rule per line, `app/name` (that stream, any arguments) or
//! `app/name?key=VALUE` (that stream with argument `key` equal to `VALUE`,
//! compared with the *decoded* argument). `app` is everything before the
//! first `/`. Blank lines and lines starting with `#` are ignored.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use aws_lc_rs::constant_time::verify_slices_are_equal;

use super::{AuthError, flags};

/// One line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyRule {
    app: String,
    name: String,
    key: Option<String>,
}

/// The parsed rules of one version of the file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct KeyRules {
    rules: Vec<KeyRule>,
}

fn ct_eq(a: &str, b: &str) -> bool {
    verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

impl KeyRules {
    /// Parses the file's contents; `path` only names the file in errors.
    pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<Self, AuthError> {
        let mut rules = Vec::new();
        for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
            let err = |reason| AuthError::KeysSyntax {
                path: path.to_path_buf(),
                line: i + 1,
                reason,
            };
            let line = std::str::from_utf8(raw).map_err(|_| err("not UTF-8"))?;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.contains(char::is_whitespace) {
                return Err(err("whitespace inside a rule"));
            }
            let (stream, query) = match line.split_once('?') {
                Some((s, q)) => (s, Some(q)),
                None => (line, None),
            };
            let (app, name) = stream
                .split_once('/')
                .filter(|(a, n)| !a.is_empty() && !n.is_empty())
                .ok_or_else(|| err("expected app/name"))?;
            let key = match query {
                None => None,
                Some(q) => {
                    let v = q
                        .strip_prefix("key=")
                        .ok_or_else(|| err("the only argument allowed is key=VALUE"))?;
                    if v.is_empty() {
                        return Err(err("empty key value"));
                    }
                    if v.contains(['&', '=']) {
                        return Err(err("only one key=VALUE per line"));
                    }
                    Some(v.to_owned())
                }
            };
            rules.push(KeyRule {
                app: app.to_owned(),
                name: name.to_owned(),
                key,
            });
        }
        Ok(Self { rules })
    }

    /// Whether a rule allows stream `app/name` with argument `key`.
    ///
    /// Every rule is compared, each comparison in constant time with
    /// respect to the contents, so timing does not tell how close a guess is.
    pub(crate) fn allows(&self, app: &str, name: &str, key: Option<&str>) -> bool {
        let mut ok = false;
        for r in &self.rules {
            let key_ok = match (&r.key, key) {
                (None, _) => true,
                (Some(want), Some(got)) => ct_eq(want, got),
                (Some(_), None) => false,
            };
            ok |= ct_eq(&r.app, app) & ct_eq(&r.name, name) & key_ok;
        }
        ok
    }

    /// Number of rules.
    pub(crate) fn len(&self) -> usize {
        self.rules.len()
    }
}

fn fingerprint(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// The keys file and the rules last loaded from it.
#[derive(Debug)]
pub(crate) struct KeysFile {
    path: PathBuf,
    rules: Mutex<Arc<KeyRules>>,
    /// Fingerprint of the contents last tried, loaded or not: a bad file is
    /// reported once, not at every check.
    last_seen: Mutex<u64>,
}

impl KeysFile {
    /// Reads and parses the file (start-up; blocking is fine there).
    pub(crate) fn load(path: &Path) -> Result<Self, AuthError> {
        let bytes = std::fs::read(path).map_err(|source| read_err(path, source))?;
        let rules = KeyRules::parse(path, &bytes)?;
        Ok(Self {
            path: path.to_path_buf(),
            rules: Mutex::new(Arc::new(rules)),
            last_seen: Mutex::new(fingerprint(&bytes)),
        })
    }

    /// The rules in force.
    pub(crate) fn current(&self) -> Arc<KeyRules> {
        self.rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the file (without blocking a runtime worker); swaps the
    /// rules in if the contents changed and parse. `Ok(true)`: new rules in
    /// force; `Ok(false)`: contents unchanged since the last attempt; `Err`:
    /// the old rules stay.
    pub(crate) async fn reload(&self) -> Result<bool, AuthError> {
        let bytes = tokio::fs::read(&self.path)
            .await
            .map_err(|source| read_err(&self.path, source))?;
        let now = fingerprint(&bytes);
        {
            let mut last = self
                .last_seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if *last == now {
                return Ok(false);
            }
            *last = now;
        }
        let rules = KeyRules::parse(&self.path, &bytes)?;
        *self.rules.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(rules);
        Ok(true)
    }
}

fn read_err(path: &Path, source: std::io::Error) -> AuthError {
    AuthError::Read {
        flag: flags::KEYS,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<KeyRules, AuthError> {
        KeyRules::parse(Path::new("keys.txt"), s.as_bytes())
    }

    #[test]
    fn parses_and_matches() {
        let r = parse("# comment\n\nlive/open\n  live/cam?key=s3cret  \r\nlive/cam?key=other\n")
            .unwrap();
        assert_eq!(r.len(), 3);
        assert!(r.allows("live", "open", None));
        assert!(r.allows("live", "open", Some("anything")));
        assert!(r.allows("live", "cam", Some("s3cret")));
        assert!(r.allows("live", "cam", Some("other")));
        assert!(!r.allows("live", "cam", Some("s3cre")));
        assert!(!r.allows("live", "cam", None));
        assert!(!r.allows("other", "open", None));
        assert!(!r.allows("live", "opened", None));
        assert!(!parse("").unwrap().allows("live", "open", None));
    }

    #[test]
    fn malformed_lines_name_the_line() {
        for (text, line, reason) in [
            ("live/a\nnoslash\n", 2, "expected app/name"),
            ("/name", 1, "expected app/name"),
            ("app/", 1, "expected app/name"),
            (
                "#x\nlive/a?token=1",
                2,
                "the only argument allowed is key=VALUE",
            ),
            ("live/a?key=", 1, "empty key value"),
            ("live/a?key=1&key=2", 1, "only one key=VALUE per line"),
            ("live/a b", 1, "whitespace inside a rule"),
        ] {
            match parse(text) {
                Err(e @ AuthError::KeysSyntax { .. }) => {
                    let AuthError::KeysSyntax {
                        line: l, reason: r, ..
                    } = &e
                    else {
                        unreachable!()
                    };
                    assert_eq!((*l, *r), (line, reason), "{text:?}");
                    let msg = e.to_string();
                    assert!(msg.contains(&format!("keys.txt:{line}")), "{msg}");
                    assert!(msg.contains("--auth-keys"), "{msg}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        let bad = KeyRules::parse(Path::new("k"), b"live/a\n\xff\n").unwrap_err();
        assert!(bad.to_string().contains("k:2: not UTF-8"), "{bad}");
    }

    #[tokio::test]
    async fn reload_swaps_rules_and_keeps_old_on_error() {
        let dir = std::env::temp_dir().join(format!("rtmpgate-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys");
        std::fs::write(&path, "live/a\n").unwrap();
        let f = KeysFile::load(&path).unwrap();
        assert!(!f.reload().await.unwrap(), "unchanged");
        std::fs::write(&path, "live/b\n").unwrap();
        assert!(f.reload().await.unwrap());
        assert!(f.current().allows("live", "b", None));
        assert!(!f.current().allows("live", "a", None));
        std::fs::write(&path, "live/c\nbroken\n").unwrap();
        assert!(matches!(
            f.reload().await,
            Err(AuthError::KeysSyntax { line: 2, .. })
        ));
        assert!(f.current().allows("live", "b", None), "old rules kept");
        assert!(!f.reload().await.unwrap(), "same bad file reported once");
        std::fs::remove_file(&path).unwrap();
        let e = f.reload().await.unwrap_err();
        assert!(matches!(e, AuthError::Read { .. }));
        assert!(e.to_string().contains("cannot read"), "{e}");
        assert!(f.current().allows("live", "b", None));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
