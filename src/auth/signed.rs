//! Signed URLs (`--auth-hmac-secret`): `?expires=UNIX&sig=HEX`.
//!
//! Owns the signature scheme: `sig` is the hex HMAC-SHA256, under the secret,
//! of `app/name/expires` (the `expires` argument as sent), in lower or upper
//! case. Does not own reading the secret file (`authorizer`) or how a result
//! combines with other rules.

use aws_lc_rs::hmac;

/// Why a signed URL was refused; the text goes to the log and the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SigError {
    /// The signature does not match (or is not 64 hex digits).
    BadSignature,
    /// Signature valid, but `expires` is in the past.
    Expired,
}

impl SigError {
    /// `bad signature` or `expired`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SigError::BadSignature => "bad signature",
            SigError::Expired => "expired",
        }
    }
}

fn message(app: &str, name: &str, expires: &str) -> String {
    format!("{app}/{name}/{expires}")
}

/// The `sig` argument (lowercase hex) that makes
/// `app/name?expires=EXPIRES&sig=…` valid under `secret` until `expires`
/// (Unix seconds).
pub fn sign(secret: &[u8], app: &str, name: &str, expires: u64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, message(app, name, &expires.to_string()).as_bytes());
    hex(tag.as_ref())
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

fn unhex_sha256(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        out[i] = (nib(pair[0])? << 4) | nib(pair[1])?;
    }
    Some(out)
}

/// Checks `sig` over `app/name/expires` at time `now` (Unix seconds).
/// The signature is checked first (in constant time), so "expired" is only
/// ever said of a URL that was really signed.
pub(crate) fn verify(
    key: &hmac::Key,
    app: &str,
    name: &str,
    expires: &str,
    sig: &str,
    now: u64,
) -> Result<(), SigError> {
    let tag = unhex_sha256(sig).ok_or(SigError::BadSignature)?;
    hmac::verify(key, message(app, name, expires).as_bytes(), &tag)
        .map_err(|_| SigError::BadSignature)?;
    let until: u64 = expires.parse().map_err(|_| SigError::BadSignature)?;
    if now > until {
        return Err(SigError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"top secret";

    fn check(app: &str, name: &str, expires: &str, sig: &str, now: u64) -> Result<(), SigError> {
        verify(
            &hmac::Key::new(hmac::HMAC_SHA256, SECRET),
            app,
            name,
            expires,
            sig,
            now,
        )
    }

    #[test]
    fn good_expired_wrong_garbage() {
        let sig = sign(SECRET, "live", "cam", 1000);
        assert_eq!(sig.len(), 64);
        assert_eq!(check("live", "cam", "1000", &sig, 999), Ok(()));
        assert_eq!(check("live", "cam", "1000", &sig, 1000), Ok(()));
        assert_eq!(
            check("live", "cam", "1000", &sig.to_uppercase(), 10),
            Ok(())
        );
        assert_eq!(
            check("live", "cam", "1000", &sig, 1001),
            Err(SigError::Expired)
        );
        let bad = Err(SigError::BadSignature);
        assert_eq!(check("live", "cam2", "1000", &sig, 10), bad);
        assert_eq!(check("live", "cam", "1001", &sig, 10), bad);
        assert_eq!(
            check("live", "cam", "1000", &sign(b"x", "live", "cam", 1000), 10),
            bad
        );
        assert_eq!(check("live", "cam", "1000", "zz", 10), bad);
        assert_eq!(check("live", "cam", "1000", &"g".repeat(64), 10), bad);
        assert_eq!(check("live", "cam", "1000", &sig[..62], 10), bad);
        assert_eq!(check("live", "cam", "1000", "", 10), bad);
        assert_eq!(
            check("live", "cam", "1000", "é".repeat(32).as_str(), 10),
            bad
        );
        let sig = sign(SECRET, "live", "cam", 0);
        assert_eq!(check("live", "cam", "soon", &sig, 0), bad);
        assert_eq!(SigError::Expired.as_str(), "expired");
        assert_eq!(SigError::BadSignature.as_str(), "bad signature");
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0x00, 0xab, 0x0f, 0xf0]), "00ab0ff0");
    }
}
