//! The fingerprint extractor against an independent oracle: Mozilla's `webrtc-sdp`
//! parses the same generated SDP, and the same rules applied to its parse must give
//! the same answer.

#![cfg(not(target_arch = "wasm32"))]

use proptest::prelude::*;
use shieldcall_proto::{Fingerprint, extract_fingerprint};
use webrtc_sdp::attribute_type::{SdpAttribute, SdpAttributeFingerprintHashType};

/// A pool small enough that sections often agree, so both outcomes are exercised.
const POOL: [[u8; 32]; 3] = [[0x11; 32], [0xa5; 32], [0x3c; 32]];

#[derive(Debug, Clone)]
enum Attr {
    Sha256 {
        pool: usize,
        upper_hash: bool,
        lower_hex: bool,
    },
    Sha1,
    /// Another hash beside sha-256: the extra-fingerprint attack.
    Sha384,
}

fn attr() -> impl Strategy<Value = Attr> {
    prop_oneof![
        4 => (0..POOL.len(), any::<bool>(), any::<bool>())
            .prop_map(|(pool, upper_hash, lower_hex)| Attr::Sha256 { pool, upper_hash, lower_hex }),
        1 => Just(Attr::Sha1),
        1 => Just(Attr::Sha384),
    ]
}

fn render(a: &Attr) -> String {
    match a {
        Attr::Sha256 {
            pool,
            upper_hash,
            lower_hex,
        } => {
            let fp = Fingerprint::from_bytes(POOL[*pool]).to_string();
            let fp = if *lower_hex { fp.to_lowercase() } else { fp };
            let hash = if *upper_hash { "SHA-256" } else { "sha-256" };
            format!("a=fingerprint:{hash} {fp}")
        }
        Attr::Sha1 => {
            "a=fingerprint:sha-1 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB".into()
        }
        Attr::Sha384 => format!(
            "a=fingerprint:sha-384 {}",
            [0x5e_u8; 48].map(|b| format!("{b:02X}")).join(":")
        ),
    }
}

fn build(session: &[Attr], media: &[Vec<Attr>], crlf: bool) -> String {
    let eol = if crlf { "\r\n" } else { "\n" };
    let mut s =
        format!("v=0{eol}o=- 4611731400430051336 2 IN IP4 127.0.0.1{eol}s=-{eol}t=0 0{eol}");
    for a in session {
        s += &render(a);
        s += eol;
    }
    for (i, m) in media.iter().enumerate() {
        s += &format!(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111{eol}c=IN IP4 0.0.0.0{eol}a=mid:{i}{eol}a=rtpmap:111 opus/48000/2{eol}"
        );
        for a in m {
            s += &render(a);
            s += eol;
        }
    }
    s
}

/// The normative rules, applied to webrtc-sdp's parse: per section at most one
/// fingerprint attribute of any hash, sha-256 only, session and media level equal
/// where both are present, every m-section covered, all equal. Only acceptance and
/// the accepted value are compared: which error a refused document gets is pinned
/// by the extractor's unit tests.
fn oracle(sdp: &str) -> Option<Result<[u8; 32], ()>> {
    // webrtc-sdp matches hash names case-sensitively (RFC 8122 makes them
    // case-insensitive), so the oracle sees them lower-cased: the one known
    // difference, covered by the unit tests of the extractor.
    let normalised = sdp.replace("a=fingerprint:SHA-256", "a=fingerprint:sha-256");
    let parsed = webrtc_sdp::parse_sdp(&normalised, false).ok()?;
    // The section's one sha-256 fingerprint, `Ok(None)` for none, `Err` when it
    // breaks the rule.
    let section = |attrs: &[SdpAttribute]| -> Result<Option<[u8; 32]>, ()> {
        let fps: Vec<_> = attrs
            .iter()
            .filter_map(|a| match a {
                SdpAttribute::Fingerprint(f) => Some(f),
                _ => None,
            })
            .collect();
        match fps.as_slice() {
            [] => Ok(None),
            [f] if f.hash_algorithm == SdpAttributeFingerprintHashType::Sha256 => {
                Ok(Some(f.fingerprint.clone().try_into().map_err(|_| ())?))
            }
            _ => Err(()),
        }
    };
    let verdict = (|| {
        let session = section(&parsed.attribute)?;
        let mut effective = Vec::new();
        if parsed.media.is_empty() {
            effective.push(session);
        }
        for m in &parsed.media {
            let own = section(m.get_attributes())?;
            if let (Some(a), Some(b)) = (own, session)
                && a != b
            {
                return Err(());
            }
            effective.push(own.or(session));
        }
        let first = effective.iter().flatten().next().copied().ok_or(())?;
        if effective.iter().all(|fp| *fp == Some(first)) {
            Ok(first)
        } else {
            Err(())
        }
    })();
    Some(verdict)
}

fn ours(sdp: &str) -> Result<[u8; 32], ()> {
    extract_fingerprint(sdp)
        .map(|f| *f.as_bytes())
        .map_err(|_| ())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn agrees_with_webrtc_sdp(
        session in prop::collection::vec(attr(), 0..3),
        media in prop::collection::vec(prop::collection::vec(attr(), 0..3), 0..4),
        crlf in any::<bool>(),
    ) {
        let sdp = build(&session, &media, crlf);
        let Some(expected) = oracle(&sdp) else {
            // webrtc-sdp refused the document; nothing to compare.
            return Ok(());
        };
        prop_assert_eq!(ours(&sdp), expected, "sdp:\n{}", sdp);
    }

    #[test]
    fn never_panics_on_arbitrary_text(s in "(a=fingerprint:|m=|\r|\n|[ -~]){0,400}") {
        let _ = extract_fingerprint(&s);
    }
}

#[test]
fn oracle_parses_the_generated_documents() {
    // Guards the property test against vacuity: the oracle must accept our template.
    let a = Attr::Sha256 {
        pool: 1,
        upper_hash: false,
        lower_hex: false,
    };
    let sdp = build(&[], &[vec![a.clone()], vec![a.clone()]], true);
    assert_eq!(oracle(&sdp), Some(Ok([0xa5; 32])));
    assert_eq!(ours(&sdp), Ok([0xa5; 32]));
    // ... and it refuses the extra-fingerprint attack, as the extractor does.
    let attacked = build(&[], &[vec![a, Attr::Sha384]], true);
    assert_eq!(oracle(&attacked), Some(Err(())));
    assert_eq!(ours(&attacked), Err(()));
}
