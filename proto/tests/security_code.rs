//! Security code v1 and commitment v1: known answers pinned in
//! `docs/security-code.md`, symmetry, sensitivity to each fingerprint.

use proptest::prelude::*;
use shieldcall_proto::{CodeError, Commitment, Fingerprint, security_code};

/// One known-answer vector as the docs list it.
struct Vector {
    a: Fingerprint,
    b: Fingerprint,
    code: String,
    commit_a: String,
    commit_b: String,
}

/// Reads the vectors from the fenced `vectors` block of `docs/security-code.md`, so
/// the published vectors and the tested ones cannot drift apart.
fn vectors() -> Vec<Vector> {
    let doc = include_str!("../../docs/security-code.md");
    let block = doc
        .split("```vectors\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/security-code.md has a ```vectors block");
    let mut out = Vec::new();
    for chunk in block.split("\n\n").filter(|c| !c.trim().is_empty()) {
        let mut fields = std::collections::HashMap::new();
        for line in chunk.lines() {
            let (k, v) = line.split_once(':').expect("key: value");
            fields.insert(k.trim(), v.trim().to_string());
        }
        out.push(Vector {
            a: fields["F1"].parse().expect("F1"),
            b: fields["F2"].parse().expect("F2"),
            code: fields["code"].clone(),
            commit_a: fields["commit(F1)"].clone(),
            commit_b: fields["commit(F2)"].clone(),
        });
    }
    out
}

#[test]
fn known_answers_from_the_spec() {
    let vectors = vectors();
    assert!(vectors.len() >= 4, "the spec lists at least four vectors");
    for v in vectors {
        let code = security_code(&v.a, &v.b).expect("distinct");
        assert_eq!(code.to_string(), v.code);
        assert_eq!(Commitment::to(&v.a).to_string(), v.commit_a);
        assert_eq!(Commitment::to(&v.b).to_string(), v.commit_b);
    }
}

#[test]
fn pinned_vector_independent_of_docs() {
    // Computed with Python's hashlib, not with this crate.
    let a: Fingerprint = "00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F".parse().expect("a");
    let b: Fingerprint = "20:21:22:23:24:25:26:27:28:29:2A:2B:2C:2D:2E:2F:30:31:32:33:34:35:36:37:38:39:3A:3B:3C:3D:3E:3F".parse().expect("b");
    assert_eq!(
        security_code(&a, &b).expect("distinct").to_string(),
        "11641 59886 82465 52428"
    );
}

#[test]
fn equal_fingerprints_are_refused() {
    let a = Fingerprint::from_bytes([9; 32]);
    assert_eq!(security_code(&a, &a), Err(CodeError::EqualFingerprints));
}

#[test]
fn format_is_four_groups_of_five_digits() {
    let code = security_code(
        &Fingerprint::from_bytes([0; 32]),
        &Fingerprint::from_bytes([0xff; 32]),
    )
    .expect("distinct")
    .to_string();
    assert_eq!(code.len(), 23);
    let groups: Vec<&str> = code.split(' ').collect();
    assert_eq!(groups.len(), 4);
    assert!(
        groups
            .iter()
            .all(|g| g.len() == 5 && g.bytes().all(|c| c.is_ascii_digit()))
    );
    // This vector has a leading-zero group: padding must be kept.
    assert_eq!(groups[3], "00955");
}

proptest! {
    #[test]
    fn symmetric(a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
        prop_assume!(a != b);
        let (a, b) = (Fingerprint::from_bytes(a), Fingerprint::from_bytes(b));
        prop_assert_eq!(security_code(&a, &b), security_code(&b, &a));
    }

    #[test]
    fn changing_either_fingerprint_changes_the_code(
        a in any::<[u8; 32]>(), b in any::<[u8; 32]>(), byte in 0usize..32, flip in 1u8..=255, which in any::<bool>()
    ) {
        prop_assume!(a != b);
        let before = security_code(&Fingerprint::from_bytes(a), &Fingerprint::from_bytes(b)).expect("distinct");
        let (mut a2, mut b2) = (a, b);
        if which { a2[byte] ^= flip } else { b2[byte] ^= flip }
        prop_assume!(a2 != b2);
        let after = security_code(&Fingerprint::from_bytes(a2), &Fingerprint::from_bytes(b2)).expect("distinct");
        // A collision in 66 bits would be astronomically unlikely here.
        prop_assert_ne!(before, after);
    }

    #[test]
    fn commitment_round_trip(a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
        let fa = Fingerprint::from_bytes(a);
        let c = Commitment::to(&fa);
        let wire = c.to_string();
        prop_assert_eq!(wire.len(), 64);
        let back: Commitment = wire.parse().expect("own encoding parses");
        prop_assert_eq!(back, c);
        prop_assert!(back.opens_to(&fa));
        prop_assert_eq!(back.opens_to(&Fingerprint::from_bytes(b)), a == b);
        let upper: Commitment = wire.to_uppercase().parse().expect("hex of either case");
        prop_assert_eq!(upper, c);
    }

    #[test]
    fn fingerprint_text_round_trip(a in any::<[u8; 32]>()) {
        let fp = Fingerprint::from_bytes(a);
        prop_assert_eq!(fp.to_string().parse::<Fingerprint>(), Ok(fp));
        prop_assert_eq!(fp.to_string().to_lowercase().parse::<Fingerprint>(), Ok(fp));
    }
}
