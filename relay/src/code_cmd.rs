//! `shieldcall code`: the security code for two fingerprints or two SDP files, so
//! testers and auditors can check what the browsers show.

use shieldcall_proto::{Fingerprint, SecurityCode, extract_fingerprint, security_code};

/// Computes the code from two fingerprints as they appear after `sha-256 ` in SDP.
/// The error is one line for people.
pub fn from_fingerprints(a: &str, b: &str) -> Result<SecurityCode, String> {
    let fa = parse(a, "first")?;
    let fb = parse(b, "second")?;
    security_code(&fa, &fb).map_err(|e| e.to_string())
}

/// Computes the code from the text of two SDP documents (an offer and an answer).
pub fn from_sdp(a: (&str, &str), b: (&str, &str)) -> Result<SecurityCode, String> {
    let fa = extract_fingerprint(a.1).map_err(|e| format!("{}: {e}", a.0))?;
    let fb = extract_fingerprint(b.1).map_err(|e| format!("{}: {e}", b.0))?;
    security_code(&fa, &fb).map_err(|e| e.to_string())
}

fn parse(s: &str, which: &str) -> Result<Fingerprint, String> {
    let s = s.trim();
    // Accept a pasted `sha-256 AB:..` too, but name any other hash function plainly.
    let value = match s.split_once(' ') {
        Some((hash, rest)) if hash.eq_ignore_ascii_case("sha-256") => rest.trim(),
        Some((hash, _)) => {
            return Err(format!(
                "{which} fingerprint: unsupported hash function {hash:?}; only sha-256 is used"
            ));
        }
        None => s,
    };
    value
        .parse()
        .map_err(|e| format!("{which} fingerprint: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const F1: &str = "00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F";
    const F2: &str = "20:21:22:23:24:25:26:27:28:29:2A:2B:2C:2D:2E:2F:30:31:32:33:34:35:36:37:38:39:3A:3B:3C:3D:3E:3F";

    #[test]
    fn computes_and_refuses() {
        assert_eq!(
            from_fingerprints(F1, &F2.to_lowercase()).map(|c| c.to_string()),
            Ok("11641 59886 82465 52428".into())
        );
        assert_eq!(
            from_fingerprints(&format!("sha-256 {F1}"), F2).map(|c| c.to_string()),
            Ok("11641 59886 82465 52428".into())
        );
        assert!(from_fingerprints(F1, F1).is_err());
        assert!(from_fingerprints(&F1[3..], F2).is_err());
        assert!(from_fingerprints(&F1.replace('A', "G"), F2).is_err());
        assert!(
            from_fingerprints(&format!("sha-1 {F1}"), F2)
                .unwrap_err()
                .contains("unsupported")
        );
    }
}
