//! The simple (plain) RTMP handshake, both roles.
//!
//! Owns the byte layout of C0/C1/C2 and S0/S1/S2 and nothing about sockets:
//! the caller reads and writes the blocks.
//!
//! Only the plain handshake of the published RTMP specification is spoken.
//! The "complex" handshake (HMAC-SHA256 digests keyed with Adobe's Flash
//! Player/Media Server constants) that some Flash-era players insist on, and
//! the encrypted RTMPE variants (C0 = 6 or 8), are out of scope. Modern
//! encoders accept a plain S1: ffmpeg looks for a digest only when S1's
//! version field is non-zero, and librtmp's default handshake (OBS) checks
//! none. The zero version field in our S1 and C1 says "no digest scheme"
//! to clients and servers alike.

use std::time::{SystemTime, UNIX_EPOCH};

/// The protocol version carried in C0 and S0.
pub const RTMP_VERSION: u8 = 3;

/// Length of each of C1, C2, S1 and S2.
pub const HANDSHAKE_SIZE: usize = 1536;

/// Length of C0 followed by C1: what a server reads before answering.
pub const C0C1_LEN: usize = 1 + HANDSHAKE_SIZE;

/// Length of S0, S1 and S2 together: what a client reads before sending C2.
pub const S0S1S2_LEN: usize = 1 + 2 * HANDSHAKE_SIZE;

/// Why a handshake block was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// C0 (or S0) named a version other than 3: RTMPE (6, 8) or not RTMP at
    /// all.
    #[error(
        "RTMP handshake version {0} refused: only the plain handshake is supported (version 3; not RTMPE)"
    )]
    UnsupportedVersion(u8),
    /// The block was not exactly as long as the handshake step requires.
    #[error("RTMP handshake block is {got} bytes, expected {expected}")]
    Length {
        /// Bytes the step requires.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
}

/// Checks a C0 or S0 byte.
pub fn check_version(byte: u8) -> Result<(), HandshakeError> {
    if byte == RTMP_VERSION {
        Ok(())
    } else {
        Err(HandshakeError::UnsupportedVersion(byte))
    }
}

/// The server's answer to a client's C0+C1: S0+S1+S2 ([`S0S1S2_LEN`] bytes).
///
/// `c0c1` must be exactly [`C0C1_LEN`] bytes. S2 echoes C1 unchanged, which
/// is what plain-handshake clients check (if they check at all).
pub fn server_response(c0c1: &[u8]) -> Result<Vec<u8>, HandshakeError> {
    // Version first: an RTMPE client deserves the precise refusal even when
    // its C1 is shorter or longer than ours.
    let Some(&c0) = c0c1.first() else {
        return Err(HandshakeError::Length {
            expected: C0C1_LEN,
            got: 0,
        });
    };
    check_version(c0)?;
    if c0c1.len() != C0C1_LEN {
        return Err(HandshakeError::Length {
            expected: C0C1_LEN,
            got: c0c1.len(),
        });
    }
    let mut out = Vec::with_capacity(S0S1S2_LEN);
    out.push(RTMP_VERSION);
    out.extend_from_slice(&plain_block());
    out.extend_from_slice(&c0c1[1..]);
    Ok(out)
}

/// A client's C0+C1 ([`C0C1_LEN`] bytes) for handshaking with an upstream.
///
/// The C1 version field is zero so that servers do not look for a digest.
pub fn client_c0c1() -> Vec<u8> {
    let mut out = Vec::with_capacity(C0C1_LEN);
    out.push(RTMP_VERSION);
    out.extend_from_slice(&plain_block());
    out
}

/// A client's C2: the echo of the server's S1 (the [`HANDSHAKE_SIZE`] bytes
/// after S0).
pub fn client_c2(s1: &[u8]) -> Vec<u8> {
    s1.to_vec()
}

/// A C1 or S1: 4-byte time, 4 zero bytes, then random bytes.
fn plain_block() -> [u8; HANDSHAKE_SIZE] {
    let mut block = [0u8; HANDSHAKE_SIZE];
    // The epoch is arbitrary (the peer only uses it as a reference point);
    // wall-clock milliseconds wrapped to 32 bits is as good as any.
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u32);
    block[..4].copy_from_slice(&millis.to_be_bytes());
    getrandom::fill(&mut block[8..]).expect("the OS random source is available");
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c0c1_with_version(version: u8) -> Vec<u8> {
        let mut c0c1 = client_c0c1();
        c0c1[0] = version;
        c0c1
    }

    #[test]
    fn client_c0c1_layout() {
        let c0c1 = client_c0c1();
        assert_eq!(c0c1.len(), C0C1_LEN);
        assert_eq!(c0c1[0], RTMP_VERSION);
        assert_eq!(&c0c1[5..9], &[0, 0, 0, 0], "zero version: plain handshake");
        // 1528 random bytes are never all zero in practice.
        assert!(c0c1[9..].iter().any(|&b| b != 0));
        assert_ne!(client_c0c1()[9..], c0c1[9..], "fresh random each time");
    }

    #[test]
    fn server_response_echoes_c1() {
        let c0c1 = client_c0c1();
        let s = server_response(&c0c1).unwrap();
        assert_eq!(s.len(), S0S1S2_LEN);
        assert_eq!(s[0], RTMP_VERSION);
        let s1 = &s[1..1 + HANDSHAKE_SIZE];
        assert_eq!(&s1[4..8], &[0, 0, 0, 0]);
        assert_eq!(&s[1 + HANDSHAKE_SIZE..], &c0c1[1..], "S2 is C1");
    }

    #[test]
    fn client_c2_echoes_s1() {
        let s = server_response(&client_c0c1()).unwrap();
        let s1 = &s[1..1 + HANDSHAKE_SIZE];
        assert_eq!(client_c2(s1), s1);
    }

    #[test]
    fn refuses_other_versions() {
        for version in [6u8, 8, 0, 0x16, b'P'] {
            let err = server_response(&c0c1_with_version(version)).unwrap_err();
            assert_eq!(err, HandshakeError::UnsupportedVersion(version));
            assert!(
                err.to_string()
                    .contains("only the plain handshake is supported")
            );
        }
        // The version is judged before the length.
        assert_eq!(
            server_response(&[6]).unwrap_err(),
            HandshakeError::UnsupportedVersion(6)
        );
    }

    #[test]
    fn refuses_wrong_lengths() {
        assert_eq!(
            server_response(&[]).unwrap_err(),
            HandshakeError::Length {
                expected: C0C1_LEN,
                got: 0
            }
        );
        let c0c1 = client_c0c1();
        assert!(matches!(
            server_response(&c0c1[..100]),
            Err(HandshakeError::Length { got: 100, .. })
        ));
        let mut long = c0c1.clone();
        long.push(0);
        assert!(matches!(
            server_response(&long),
            Err(HandshakeError::Length { got: 1538, .. })
        ));
    }

    #[test]
    fn check_version_accepts_only_three() {
        assert!(check_version(3).is_ok());
        assert!(check_version(6).is_err());
    }
}
