//! Reads the DTLS certificate fingerprint out of an SDP offer or answer.
//!
//! Only `a=fingerprint:sha-256 ...` counts; the hash name is case-insensitive. The
//! attribute may stand at session level and at media level; a media-level value
//! overrides the session-level one for that m-section (RFC 8122). Every m-section
//! must end up with the same single SHA-256 fingerprint, otherwise the SDP is
//! unverifiable and an end-to-end encrypted call must not go on. Lines may end in
//! CRLF or LF. This module never panics on any input.

use crate::fingerprint::Fingerprint;

/// Why no single SHA-256 fingerprint could be read from an SDP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// No `a=fingerprint` attribute at all.
    #[error("the SDP carries no a=fingerprint attribute")]
    NoFingerprint,
    /// Fingerprints are present, but none uses SHA-256.
    #[error("the SDP has fingerprints only for unsupported hash functions (sha-256 is required)")]
    OnlyUnsupported,
    /// An `a=fingerprint` line whose hash is sha-256 but whose value is not 32 hex pairs,
    /// or a line without a hash name and value.
    #[error("malformed a=fingerprint attribute on line {line}")]
    Malformed {
        /// 1-based line number in the SDP.
        line: usize,
    },
    /// Two different SHA-256 fingerprints (in one section or across m-sections).
    #[error("the SDP carries conflicting sha-256 fingerprints")]
    Conflicting,
    /// An m-section that has no SHA-256 fingerprint while others have one.
    #[error("m-section {index} has no sha-256 fingerprint")]
    MissingInSection {
        /// 0-based index of the m-section.
        index: usize,
    },
}

/// The sha-256 fingerprint found in one section (session level or one m-section).
#[derive(Default)]
struct Section {
    sha256: Option<Fingerprint>,
}

impl Section {
    fn add(&mut self, fp: Fingerprint) -> Result<(), SdpError> {
        match self.sha256 {
            Some(existing) if existing != fp => Err(SdpError::Conflicting),
            _ => {
                self.sha256 = Some(fp);
                Ok(())
            }
        }
    }
}

/// Extracts the one SHA-256 certificate fingerprint that an SDP commits to.
pub fn extract_fingerprint(sdp: &str) -> Result<Fingerprint, SdpError> {
    let mut session = Section::default();
    let mut media: Vec<Section> = Vec::new();
    let mut saw_any = false;

    for (n, raw) in sdp.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.starts_with("m=") {
            media.push(Section::default());
            continue;
        }
        let Some(value) = line.strip_prefix("a=fingerprint:") else {
            continue;
        };
        saw_any = true;
        let malformed = SdpError::Malformed { line: n + 1 };
        let value = value.trim_end_matches([' ', '\t']);
        let (hash, fp) = value.split_once([' ', '\t']).ok_or(malformed.clone())?;
        let fp = fp.trim_start_matches([' ', '\t']);
        if hash.is_empty() || fp.is_empty() {
            return Err(malformed);
        }
        if !hash.eq_ignore_ascii_case("sha-256") {
            continue;
        }
        let fp: Fingerprint = fp.parse().map_err(|_| malformed)?;
        media.last_mut().unwrap_or(&mut session).add(fp)?;
    }

    let effective: Vec<Option<Fingerprint>> = if media.is_empty() {
        vec![session.sha256]
    } else {
        media.iter().map(|m| m.sha256.or(session.sha256)).collect()
    };
    let Some(first) = effective.iter().flatten().next().copied() else {
        return Err(if saw_any {
            SdpError::OnlyUnsupported
        } else {
            SdpError::NoFingerprint
        });
    };
    for (index, fp) in effective.iter().enumerate() {
        match fp {
            None => return Err(SdpError::MissingInSection { index }),
            Some(fp) if *fp != first => return Err(SdpError::Conflicting),
            Some(_) => {}
        }
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99";
    const B: &str = "11:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99";

    fn sdp(session: &[&str], media: &[&[&str]], eol: &str) -> String {
        let mut s = format!("v=0{eol}o=- 1 2 IN IP4 127.0.0.1{eol}s=-{eol}t=0 0{eol}");
        for a in session {
            s += &format!("{a}{eol}");
        }
        for (i, m) in media.iter().enumerate() {
            s +=
                &format!("m=audio 9 UDP/TLS/RTP/SAVPF 111{eol}c=IN IP4 0.0.0.0{eol}a=mid:{i}{eol}");
            for a in *m {
                s += &format!("{a}{eol}");
            }
        }
        s
    }

    fn fp(v: &str) -> Fingerprint {
        v.parse().expect("test fingerprint")
    }

    #[test]
    fn media_level_crlf_and_lf() {
        let line = format!("a=fingerprint:sha-256 {A}");
        for eol in ["\r\n", "\n"] {
            let s = sdp(&[], &[&[&line], &[&line]], eol);
            assert_eq!(extract_fingerprint(&s), Ok(fp(A)));
        }
    }

    #[test]
    fn session_level_applies_to_all_sections() {
        let line = format!("a=fingerprint:SHA-256 {}", A.to_lowercase());
        assert_eq!(
            extract_fingerprint(&sdp(&[&line], &[&[], &[]], "\r\n")),
            Ok(fp(A))
        );
        assert_eq!(extract_fingerprint(&sdp(&[&line], &[], "\n")), Ok(fp(A)));
    }

    #[test]
    fn media_level_overrides_session_level() {
        let s = format!("a=fingerprint:sha-256 {A}");
        let m = format!("a=fingerprint:sha-256 {B}");
        assert_eq!(
            extract_fingerprint(&sdp(&[&s], &[&[&m], &[&m]], "\n")),
            Ok(fp(B))
        );
        assert_eq!(
            extract_fingerprint(&sdp(&[&s], &[&[&m], &[]], "\n")),
            Err(SdpError::Conflicting)
        );
    }

    #[test]
    fn each_failure_has_its_error() {
        let a = format!("a=fingerprint:sha-256 {A}");
        let b = format!("a=fingerprint:sha-256 {B}");
        let sha1 =
            "a=fingerprint:sha-1 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD";
        assert_eq!(
            extract_fingerprint(&sdp(&[], &[&[]], "\n")),
            Err(SdpError::NoFingerprint)
        );
        assert_eq!(extract_fingerprint(""), Err(SdpError::NoFingerprint));
        assert_eq!(
            extract_fingerprint(&sdp(&[], &[&[sha1]], "\n")),
            Err(SdpError::OnlyUnsupported)
        );
        assert_eq!(
            extract_fingerprint(&sdp(&[], &[&[&a, &b]], "\n")),
            Err(SdpError::Conflicting)
        );
        assert_eq!(
            extract_fingerprint(&sdp(&[], &[&[&a], &[&b]], "\n")),
            Err(SdpError::Conflicting)
        );
        assert_eq!(
            extract_fingerprint(&sdp(&[], &[&[&a], &[sha1]], "\n")),
            Err(SdpError::MissingInSection { index: 1 })
        );
        let short = format!("a=fingerprint:sha-256 {}", &A[..A.len() - 3]);
        assert!(matches!(
            extract_fingerprint(&sdp(&[], &[&[&short]], "\n")),
            Err(SdpError::Malformed { .. })
        ));
        assert!(matches!(
            extract_fingerprint("a=fingerprint:sha-256"),
            Err(SdpError::Malformed { line: 1 })
        ));
        assert!(matches!(
            extract_fingerprint("a=fingerprint:"),
            Err(SdpError::Malformed { line: 1 })
        ));
    }

    #[test]
    fn sha1_beside_sha256_is_ignored_and_duplicates_agree() {
        let a = format!("a=fingerprint:sha-256 {A}");
        let sha1 =
            "a=fingerprint:sha-1 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD";
        assert_eq!(
            extract_fingerprint(&sdp(&[], &[&[sha1, &a, &a]], "\r\n")),
            Ok(fp(A))
        );
    }
}
