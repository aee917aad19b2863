//! A DTLS certificate fingerprint: the 32 bytes of a SHA-256 digest.
//!
//! Parsed strictly from the SDP form (`AB:CD:...`, 32 colon-separated hex pairs,
//! either case) and printed in exactly that form, upper case. Equality runs in
//! constant time: fingerprints are compared against attacker-chosen values.

use std::fmt;
use std::str::FromStr;

/// Number of bytes in a SHA-256 fingerprint.
pub const FINGERPRINT_LEN: usize = 32;

/// A SHA-256 certificate fingerprint.
#[derive(Clone, Copy, Eq, PartialOrd, Ord)]
pub struct Fingerprint([u8; FINGERPRINT_LEN]);

/// Why a fingerprint string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    /// Not 32 colon-separated pairs of hex digits.
    #[error("a sha-256 fingerprint is 32 pairs of hex digits separated by colons")]
    Malformed,
}

impl Fingerprint {
    /// Wraps raw digest bytes.
    pub const fn from_bytes(bytes: [u8; FINGERPRINT_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw digest bytes.
    pub const fn as_bytes(&self) -> &[u8; FINGERPRINT_LEN] {
        &self.0
    }

    /// The fingerprint of a DER-encoded certificate (RFC 8122: the hash of its
    /// DER form), as `RTCDtlsTransport.getRemoteCertificates()` returns it.
    pub fn of_der(der: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        Self(Sha256::digest(der).into())
    }
}

impl PartialEq for Fingerprint {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

/// Constant-time equality of two equally long byte arrays.
pub(crate) fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.len() != FINGERPRINT_LEN * 3 - 1 {
            return Err(FingerprintError::Malformed);
        }
        let mut out = [0u8; FINGERPRINT_LEN];
        for (i, byte) in out.iter_mut().enumerate() {
            let at = i * 3;
            if i > 0 && bytes[at - 1] != b':' {
                return Err(FingerprintError::Malformed);
            }
            let hi = hex_value(bytes[at]).ok_or(FingerprintError::Malformed)?;
            let lo = hex_value(bytes[at + 1]).ok_or(FingerprintError::Malformed)?;
            *byte = (hi << 4) | lo;
        }
        Ok(Self(out))
    }
}

/// The value of one hex digit, either case.
pub(crate) fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";

    #[test]
    fn display_is_exact_sdp_form() {
        let fp: Fingerprint = SAMPLE.parse().expect("valid");
        assert_eq!(fp.to_string(), SAMPLE);
        let lower: Fingerprint = SAMPLE.to_lowercase().parse().expect("valid");
        assert_eq!(lower, fp);
        assert_eq!(lower.to_string(), SAMPLE);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            &SAMPLE[..SAMPLE.len() - 3],
            &format!("{SAMPLE}:00"),
            &SAMPLE.replace(':', "-"),
            &SAMPLE.replacen("AA", "AG", 1),
            &SAMPLE.replacen("00", " 0", 1),
            &format!(" {}", &SAMPLE[1..]),
        ] {
            assert_eq!(
                bad.parse::<Fingerprint>(),
                Err(FingerprintError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn of_der_is_sha256_of_the_bytes() {
        // SHA-256("abc"), FIPS 180-2's first example.
        assert_eq!(
            Fingerprint::of_der(b"abc").to_string(),
            "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
        );
    }

    #[test]
    fn equality_compares_every_byte() {
        let a = Fingerprint::from_bytes([7; 32]);
        let mut b = [7; 32];
        b[31] = 8;
        assert_ne!(a, Fingerprint::from_bytes(b));
        assert_eq!(a, Fingerprint::from_bytes([7; 32]));
    }
}
