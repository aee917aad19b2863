//! Call ids that only this relay can make: 128 random bits followed by a 128-bit
//! HMAC-SHA256 tag over them, the caller, the callee and the mode, under a key kept
//! in the data directory. After a restart the relay has forgotten its calls, and
//! `resume` restores one from what the two devices claim; the tag lets it accept
//! only a claim about a call it really set up between those two people in that
//! mode, instead of any id and the higher mode either side names.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use shieldcall_proto::{CallId, CallMode};

use crate::auth::hex;
use crate::error::{Error, Result};

/// Domain separation for the tag.
const LABEL: &[u8] = b"shieldcall/call-id/v1";

/// Hex digits in a call id: 32 for the random part, 32 for the tag.
pub const CALL_ID_HEX: usize = 64;

/// The file in the data directory that holds the key.
pub const KEY_FILE: &str = "call-id.key";

/// The key; never printed.
#[derive(Clone)]
pub struct CallKey([u8; 32]);

impl std::fmt::Debug for CallKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallKey(..)")
    }
}

impl CallKey {
    /// A fresh random key (a relay without a data directory: ids then do not
    /// survive a restart, which only matters for `resume`).
    pub fn random() -> Result<Self> {
        let mut k = [0u8; 32];
        getrandom::getrandom(&mut k).map_err(|e| Error::Internal(format!("getrandom: {e}")))?;
        Ok(Self(k))
    }

    /// A key from its bytes (tests and fuzzing).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key in `dir/call-id.key`, made (mode 0600) on first start.
    pub fn load_or_create(dir: &Path) -> Result<Self> {
        let path = dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let k: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| Error::Internal(format!("{} is not 32 bytes", path.display())))?;
                Ok(Self(k))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::random()?;
                write_private(&path, &key.0)
                    .map_err(|e| Error::Internal(format!("writing {}: {e}", path.display())))?;
                Ok(key)
            }
            Err(e) => Err(Error::Internal(format!("reading {}: {e}", path.display()))),
        }
    }

    fn tag(&self, nonce: &[u8], caller: &str, callee: &str, mode: CallMode) -> [u8; 16] {
        // Infallible: HMAC takes a key of any length.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            return [0; 16];
        };
        mac.update(LABEL);
        mac.update(nonce);
        for part in [caller.as_bytes(), callee.as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.update(&[match mode {
            CallMode::E2ee => 1,
            CallMode::Standard => 0,
        }]);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    /// A new id for a call from `caller` to `callee` in `mode`.
    pub fn mint(&self, caller: &str, callee: &str, mode: CallMode) -> Result<CallId> {
        let mut nonce = [0u8; 16];
        getrandom::getrandom(&mut nonce).map_err(|e| Error::Internal(format!("getrandom: {e}")))?;
        let tag = self.tag(&nonce, caller, callee, mode);
        Ok(CallId(format!("{}{}", hex(&nonce), hex(&tag))))
    }

    /// Whether `id` was minted for exactly this caller, callee and mode.
    pub fn verify(&self, id: &CallId, caller: &str, callee: &str, mode: CallMode) -> bool {
        if !well_formed(id) {
            return false;
        }
        let (nonce_hex, tag_hex) = id.0.split_at(CALL_ID_HEX / 2);
        let (Some(nonce), Some(tag)) = (unhex::<16>(nonce_hex), unhex::<16>(tag_hex)) else {
            return false;
        };
        let expected = self.tag(&nonce, caller, callee, mode);
        // Constant time: the tag is the secret-dependent part.
        expected
            .iter()
            .zip(tag)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// Whether `id` has the form of a call id this relay makes: [`CALL_ID_HEX`]
/// lower-case hex digits.
pub fn well_formed(id: &CallId) -> bool {
    id.0.len() == CALL_ID_HEX && id.0.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        let hi = (b[2 * i] as char).to_digit(16)?;
        let lo = (b[2 * i + 1] as char).to_digit(16)?;
        *o = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_verifies_only_for_its_parties_and_mode() {
        let k = CallKey::random().expect("key");
        let id = k
            .mint("ann@a.test", "bob@a.test", CallMode::Standard)
            .expect("id");
        assert!(well_formed(&id));
        assert!(k.verify(&id, "ann@a.test", "bob@a.test", CallMode::Standard));
        assert!(!k.verify(&id, "ann@a.test", "bob@a.test", CallMode::E2ee));
        assert!(!k.verify(&id, "bob@a.test", "ann@a.test", CallMode::Standard));
        assert!(!k.verify(&id, "ann@a.test", "eve@a.test", CallMode::Standard));
        // Length-prefixed names: moving the '@' between the two does not collide.
        assert!(!k.verify(&id, "ann@a.testb", "ob@a.test", CallMode::Standard));
        let other = CallKey::random().expect("key");
        assert!(!other.verify(&id, "ann@a.test", "bob@a.test", CallMode::Standard));
        let mut forged = id.0.clone();
        forged.replace_range(63..64, if forged.ends_with('0') { "1" } else { "0" });
        assert!(!k.verify(
            &CallId(forged),
            "ann@a.test",
            "bob@a.test",
            CallMode::Standard
        ));
    }

    #[test]
    fn the_key_is_kept_in_the_data_dir() {
        let dir = std::env::temp_dir().join(format!("shieldcall-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let a = CallKey::load_or_create(&dir).expect("create");
        let b = CallKey::load_or_create(&dir).expect("load");
        let id = a
            .mint("ann@a.test", "bob@a.test", CallMode::E2ee)
            .expect("id");
        assert!(b.verify(&id, "ann@a.test", "bob@a.test", CallMode::E2ee));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
