//! Reads the DTLS certificate fingerprint out of an SDP offer or answer.
//!
//! The rule is strict, because a browser may accept a peer certificate that
//! matches *any* `a=fingerprint` line (Firefox does): a man in the middle who adds
//! a line for their own certificate beside the real one would pass the browser's
//! check while the code still shows the real certificate. So, for the code:
//!
//! - every m-section has exactly one fingerprint: its own `a=fingerprint` line, or
//!   the one at session level when it has none (RFC 8122 inheritance); a section
//!   may carry at most one line, and the session level at most one;
//! - where both levels carry one, they must be equal ("at most the same one");
//! - every line is `a=fingerprint:sha-256 XX:XX:...` (hash name in any case, the
//!   value 32 hex pairs); any other hash function is refused, not skipped;
//! - every m-section ends up with the same fingerprint;
//! - any other line that mentions `fingerprint` in any case (`a=Fingerprint:`,
//!   ` a=fingerprint:`, `a=x-fingerprint:`), and any carriage return that does not
//!   end a line, makes the SDP malformed: what another parser might read as a
//!   fingerprint must not slip past this one.
//!
//! Anything else is an [`SdpError`]: the SDP is unverifiable and an end-to-end
//! encrypted call must not go on. Lines end in CRLF or LF. This module never
//! panics on any input.

use crate::fingerprint::Fingerprint;

/// Why no single SHA-256 fingerprint could be read from an SDP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// No `a=fingerprint` attribute at all.
    #[error("the SDP carries no a=fingerprint attribute")]
    NoFingerprint,
    /// An `a=fingerprint` line for another hash function than sha-256.
    #[error(
        "a=fingerprint on line {line} uses an unsupported hash function (only sha-256 is accepted)"
    )]
    UnsupportedHash {
        /// 1-based line number in the SDP.
        line: usize,
    },
    /// A line that mentions a fingerprint but is not `a=fingerprint:<hash> <value>`
    /// with a sha-256 value of 32 hex pairs, or a carriage return inside a line.
    #[error("malformed a=fingerprint attribute on line {line}")]
    Malformed {
        /// 1-based line number in the SDP.
        line: usize,
    },
    /// A section (session level or one m-section) with more than one
    /// `a=fingerprint` line, even equal ones.
    #[error("line {line} is a second a=fingerprint in one section (exactly one is allowed)")]
    MoreThanOne {
        /// 1-based line number of the second line.
        line: usize,
    },
    /// Two different fingerprints (session and media level, or across m-sections).
    #[error("the SDP carries conflicting sha-256 fingerprints")]
    Conflicting,
    /// An m-section that has no fingerprint while others have one.
    #[error("m-section {index} has no sha-256 fingerprint")]
    MissingInSection {
        /// 0-based index of the m-section.
        index: usize,
    },
}

/// The fingerprint line of one section (session level or one m-section), if any.
#[derive(Default, Clone, Copy)]
struct Section {
    fingerprint: Option<Fingerprint>,
}

impl Section {
    fn add(&mut self, fp: Fingerprint, line: usize) -> Result<(), SdpError> {
        if self.fingerprint.is_some() {
            return Err(SdpError::MoreThanOne { line });
        }
        self.fingerprint = Some(fp);
        Ok(())
    }
}

/// Whether `line` contains `fingerprint` in any case.
fn mentions_fingerprint(line: &str) -> bool {
    const WORD: &[u8] = b"fingerprint";
    line.as_bytes()
        .windows(WORD.len())
        .any(|w| w.eq_ignore_ascii_case(WORD))
}

/// Parses one `a=fingerprint:` line (1-based `n`) into its sha-256 value.
fn parse_line(line: &str, n: usize) -> Result<Fingerprint, SdpError> {
    let malformed = SdpError::Malformed { line: n };
    let value = line
        .strip_prefix("a=fingerprint:")
        .ok_or(malformed.clone())?;
    let (hash, fp) = value.split_once(' ').ok_or(malformed.clone())?;
    if hash.is_empty() || !hash.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(malformed);
    }
    if !hash.eq_ignore_ascii_case("sha-256") {
        return Err(SdpError::UnsupportedHash { line: n });
    }
    fp.parse().map_err(|_| malformed)
}

/// Extracts the one SHA-256 certificate fingerprint that an SDP commits to, by the
/// strict rule in the module docs.
pub fn extract_fingerprint(sdp: &str) -> Result<Fingerprint, SdpError> {
    let mut session = Section::default();
    let mut media: Vec<Section> = Vec::new();

    for (i, raw) in sdp.split('\n').enumerate() {
        let n = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.contains('\r') {
            return Err(SdpError::Malformed { line: n });
        }
        if line.starts_with("m=") {
            media.push(Section::default());
            continue;
        }
        if !mentions_fingerprint(line) {
            continue;
        }
        let fp = parse_line(line, n)?;
        media.last_mut().unwrap_or(&mut session).add(fp, n)?;
    }

    let effective: Vec<Option<Fingerprint>> = if media.is_empty() {
        vec![session.fingerprint]
    } else {
        let mut out = Vec::with_capacity(media.len());
        for m in &media {
            out.push(match (m.fingerprint, session.fingerprint) {
                (Some(own), Some(top)) if own != top => return Err(SdpError::Conflicting),
                (own, top) => own.or(top),
            });
        }
        out
    };
    let Some(first) = effective.iter().flatten().next().copied() else {
        return Err(SdpError::NoFingerprint);
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
    const SHA1: &str =
        "a=fingerprint:sha-1 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD";
    const SHA384: &str = "a=fingerprint:sha-384 0C:8E:31:5C:57:6D:A7:F6:3E:9F:3A:5F:6F:9F:2B:1E:42:90:5D:8C:A0:BA:D2:22:4F:58:8D:93:AD:E9:9D:D0:8B:1B:C4:82:27:12:2F:8C:6C:8B:5D:5A:3A:6F:29:3A";

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

    fn line(v: &str) -> String {
        format!("a=fingerprint:sha-256 {v}")
    }

    #[test]
    fn media_level_crlf_and_lf() {
        let a = line(A);
        for eol in ["\r\n", "\n"] {
            let s = sdp(&[], &[&[&a], &[&a]], eol);
            assert_eq!(extract_fingerprint(&s), Ok(fp(A)));
        }
    }

    #[test]
    fn session_level_applies_to_all_sections() {
        // Firefox writes the fingerprint once, at session level.
        let a = format!("a=fingerprint:SHA-256 {}", A.to_lowercase());
        assert_eq!(
            extract_fingerprint(&sdp(&[&a], &[&[], &[]], "\r\n")),
            Ok(fp(A))
        );
        assert_eq!(extract_fingerprint(&sdp(&[&a], &[], "\n")), Ok(fp(A)));
    }

    #[test]
    fn session_and_media_level_may_carry_the_same_one() {
        let a = line(A);
        assert_eq!(
            extract_fingerprint(&sdp(&[&a], &[&[&a], &[]], "\n")),
            Ok(fp(A))
        );
    }

    #[test]
    fn a_different_media_level_value_conflicts_with_the_session_level() {
        let (a, b) = (line(A), line(B));
        assert_eq!(
            extract_fingerprint(&sdp(&[&a], &[&[&b], &[&b]], "\n")),
            Err(SdpError::Conflicting)
        );
        assert_eq!(
            extract_fingerprint(&sdp(&[], &[&[&a], &[&b]], "\n")),
            Err(SdpError::Conflicting)
        );
    }

    /// The extra-fingerprint man in the middle: a line for the attacker's
    /// certificate beside the real sha-256 line, in any hash, at any level.
    #[test]
    fn an_added_fingerprint_line_of_any_hash_is_refused() {
        let a = line(A);
        let b = line(B);
        let cases: [(&[&str], &[&[&str]]); 7] = [
            (&[], &[&[&a, SHA384]]),
            (&[], &[&[SHA384, &a]]),
            (&[], &[&[&a, SHA1]]),
            (&[&a, SHA384], &[&[]]),
            (&[SHA384], &[&[&a]]),
            (&[], &[&[&a, &b]]),
            (&[], &[&[&a, &a]]),
        ];
        for (session, media) in cases {
            let s = sdp(session, media, "\r\n");
            assert!(extract_fingerprint(&s).is_err(), "accepted:\n{s}");
        }
        assert!(matches!(
            extract_fingerprint(&sdp(&[], &[&[&a, &a]], "\n")),
            Err(SdpError::MoreThanOne { .. })
        ));
        assert!(matches!(
            extract_fingerprint(&sdp(&[], &[&[&a, SHA384]], "\n")),
            Err(SdpError::UnsupportedHash { .. })
        ));
    }

    #[test]
    fn lines_another_parser_might_read_as_fingerprints_are_malformed() {
        let a = line(A);
        let sneaky = [
            format!("a=Fingerprint:sha-256 {B}"),
            format!("a=FINGERPRINT:sha-256 {B}"),
            format!(" a=fingerprint:sha-256 {B}"),
            format!("a=fingerprint: sha-256 {B}"),
            format!("a=fingerprint:sha-256  {B}"),
            format!("a=fingerprint:sha-256\t{B}"),
            format!("a=fingerprint:sha-256 {B} "),
            format!("a=x-fingerprint:sha-256 {B}"),
            format!("a=fingerprint:sha-256 {A}\ra=fingerprint:sha-384 {B}"),
        ];
        for extra in &sneaky {
            let s = sdp(&[], &[&[&a, extra]], "\r\n");
            assert!(
                matches!(extract_fingerprint(&s), Err(SdpError::Malformed { .. })),
                "{extra:?}: {:?}",
                extract_fingerprint(&s)
            );
        }
    }

    #[test]
    fn each_failure_has_its_error() {
        let a = line(A);
        assert_eq!(
            extract_fingerprint(&sdp(&[], &[&[]], "\n")),
            Err(SdpError::NoFingerprint)
        );
        assert_eq!(extract_fingerprint(""), Err(SdpError::NoFingerprint));
        assert!(matches!(
            extract_fingerprint(&sdp(&[], &[&[SHA1]], "\n")),
            Err(SdpError::UnsupportedHash { line: 8 })
        ));
        assert_eq!(
            extract_fingerprint(&sdp(&[], &[&[&a], &[]], "\n")),
            Err(SdpError::MissingInSection { index: 1 })
        );
        let short = line(&A[..A.len() - 3]);
        assert!(matches!(
            extract_fingerprint(&sdp(&[], &[&[&short]], "\n")),
            Err(SdpError::Malformed { .. })
        ));
        for bad in ["a=fingerprint:sha-256", "a=fingerprint:", "a=fingerprint: "] {
            assert_eq!(
                extract_fingerprint(bad),
                Err(SdpError::Malformed { line: 1 }),
                "{bad:?}"
            );
        }
    }
}
