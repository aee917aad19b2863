//! Security code v1 and commitment v1, exactly as `docs/security-code.md` specifies.
//!
//! Both are pure functions of certificate fingerprints. The code is symmetric (the
//! fingerprints are sorted first), so both people see the same digits without
//! knowing who called whom. Never change these functions' output: a new algorithm
//! gets a new label and version.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::fingerprint::{Fingerprint, ct_eq, hex_value};

/// Domain-separation label of security code v1.
pub const SECURITY_CODE_LABEL: &[u8] = b"shieldcall/security-code/v1";
/// Domain-separation label of commitment v1.
pub const COMMIT_LABEL: &[u8] = b"shieldcall/commit/v1";

/// The 20-digit security code: four groups of five digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecurityCode([u32; 4]);

/// Why no security code can be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Both sides presented the same certificate: a reflection, never a real call.
    #[error("the two fingerprints are equal; a call has two different certificates")]
    EqualFingerprints,
}

impl SecurityCode {
    /// The four five-digit groups, each below 100000.
    pub const fn groups(&self) -> [u32; 4] {
        self.0
    }
}

/// Computes security code v1 for the two certificate fingerprints of a call.
///
/// The order of the arguments does not matter.
pub fn security_code(a: &Fingerprint, b: &Fingerprint) -> Result<SecurityCode, CodeError> {
    let (lo, hi) = match a.as_bytes().cmp(b.as_bytes()) {
        std::cmp::Ordering::Less => (a, b),
        std::cmp::Ordering::Greater => (b, a),
        std::cmp::Ordering::Equal => return Err(CodeError::EqualFingerprints),
    };
    let digest = Sha256::new()
        .chain_update(SECURITY_CODE_LABEL)
        .chain_update(lo.as_bytes())
        .chain_update(hi.as_bytes())
        .finalize();
    let mut groups = [0u32; 4];
    for (i, group) in groups.iter_mut().enumerate() {
        let chunk = &digest[5 * i..5 * i + 5];
        let value = chunk.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        // The remainder is below 100000, so it fits a u32.
        *group = (value % 100_000) as u32;
    }
    Ok(SecurityCode(groups))
}

impl fmt::Display for SecurityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a:05} {b:05} {c:05} {d:05}")
    }
}

impl fmt::Debug for SecurityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecurityCode({self})")
    }
}

/// A commitment to a certificate fingerprint: `SHA-256(label || fingerprint)`.
///
/// On the wire it is 64 lower-case hex digits.
#[derive(Clone, Copy, Eq)]
pub struct Commitment([u8; 32]);

/// Why a commitment string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitmentError {
    /// Not 64 hex digits.
    #[error("a commitment is 64 hex digits")]
    Malformed,
}

impl Commitment {
    /// Commits to `fingerprint` (commitment v1).
    pub fn to(fingerprint: &Fingerprint) -> Self {
        let digest = Sha256::new()
            .chain_update(COMMIT_LABEL)
            .chain_update(fingerprint.as_bytes())
            .finalize();
        Self(digest.into())
    }

    /// True when this commitment was made to `fingerprint`. Constant time.
    pub fn opens_to(&self, fingerprint: &Fingerprint) -> bool {
        ct_eq(&self.0, &Self::to(fingerprint).0)
    }

    /// The raw digest.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for Commitment {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

impl fmt::Display for Commitment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Commitment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Commitment({self})")
    }
}

impl FromStr for Commitment {
    type Err = CommitmentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return Err(CommitmentError::Malformed);
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            let hi = hex_value(bytes[2 * i]).ok_or(CommitmentError::Malformed)?;
            let lo = hex_value(bytes[2 * i + 1]).ok_or(CommitmentError::Malformed)?;
            *byte = (hi << 4) | lo;
        }
        Ok(Self(out))
    }
}

impl serde::Serialize for Commitment {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Commitment {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
