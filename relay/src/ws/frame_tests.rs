use super::*;
use proptest::prelude::*;

/// Parses and assembles every whole frame in `bytes`.
fn feed(asm: &mut Assembler, mut bytes: &[u8]) -> Result<Vec<Event>, ProtocolError> {
    let mut events = Vec::new();
    while let Some(h) = parse_header(bytes)? {
        asm.check(&h)?;
        let end = h.frame_len().unwrap_or(usize::MAX);
        let Some(raw) = bytes.get(h.header_len..end) else {
            break;
        };
        let mut payload = raw.to_vec();
        apply_mask(&mut payload, h.mask);
        events.extend(asm.push(&h, payload)?);
        bytes = &bytes[end..];
    }
    Ok(events)
}

const M: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

#[test]
fn rfc_6455_examples() {
    // 5.7: a single-frame masked text message "Hello".
    let hello = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let mut asm = Assembler::new(1024);
    assert_eq!(
        feed(&mut asm, &hello),
        Ok(vec![Event::Text("Hello".into())])
    );
    // 5.7: the server's unmasked "Hello" and unmasked pong.
    assert_eq!(
        encode(OpCode::Text, b"Hello"),
        [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
    );
    assert_eq!(encode(OpCode::Pong, b"Hello")[..2], [0x8a, 0x05]);
    // 5.7: 256 bytes and 64 KiB take the 16- and 64-bit lengths.
    assert_eq!(
        encode(OpCode::Binary, &[0; 256])[..4],
        [0x82, 0x7E, 0x01, 0x00]
    );
    assert_eq!(
        encode(OpCode::Binary, &[0; 65536])[..10],
        [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]
    );
}

#[test]
fn header_needs_all_its_bytes() {
    let frame = client_frame(0x81, &[b'x'; 300], M);
    for cut in 0..8 {
        assert_eq!(parse_header(&frame[..cut]), Ok(None), "cut at {cut}");
    }
    let h = parse_header(&frame[..8]).unwrap().unwrap();
    assert_eq!((h.header_len, h.payload_len, h.mask), (8, 300, M));
}

#[test]
fn refused_headers() {
    let cases: &[(&[u8], ProtocolError)] = &[
        (&[0xC1, 0x80, 0, 0, 0, 0], ProtocolError::ReservedBits),
        (&[0x83, 0x80, 0, 0, 0, 0], ProtocolError::UnknownOpcode(3)),
        (&[0x8B, 0x80, 0, 0, 0, 0], ProtocolError::UnknownOpcode(0xB)),
        (
            &[0x81, 0x05, b'H', b'e', b'l', b'l', b'o'],
            ProtocolError::Unmasked,
        ),
        (
            &[0x89, 0x80 | 126, 0, 126, 0, 0, 0, 0],
            ProtocolError::BadControl,
        ),
        (&[0x09, 0x80, 0, 0, 0, 0], ProtocolError::BadControl),
        (
            &[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ProtocolError::BadLength,
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(parse_header(bytes).as_ref(), Err(want), "{bytes:02x?}");
    }
}

#[test]
fn fragments_with_a_ping_between() {
    let mut bytes = client_frame(0x01, b"Hel", M);
    bytes.extend(client_frame(0x89, b"p", M));
    bytes.extend(client_frame(0x00, b"l", M));
    bytes.extend(client_frame(0x80, b"o", M));
    let mut asm = Assembler::new(1024);
    assert_eq!(
        feed(&mut asm, &bytes),
        Ok(vec![
            Event::Ping(b"p".to_vec()),
            Event::Text("Hello".into())
        ])
    );
    // Nothing is kept between messages.
    assert_eq!(asm.buf.capacity(), 0);
}

#[test]
fn fragment_order_rules() {
    let mut asm = Assembler::new(1024);
    assert_eq!(
        feed(&mut asm, &client_frame(0x80, b"x", M)),
        Err(ProtocolError::UnexpectedContinuation)
    );
    let mut asm = Assembler::new(1024);
    let mut bytes = client_frame(0x01, b"a", M);
    bytes.extend(client_frame(0x81, b"b", M));
    assert_eq!(
        feed(&mut asm, &bytes),
        Err(ProtocolError::ExpectedContinuation)
    );
}

#[test]
fn size_is_judged_from_headers() {
    let mut asm = Assembler::new(10);
    assert_eq!(
        feed(&mut asm, &client_frame(0x81, &[b'a'; 10], M)).map(|e| e.len()),
        Ok(1)
    );
    // The header alone is enough to refuse: no payload is needed.
    let big = client_frame(0x81, &[b'a'; 11], M);
    assert_eq!(
        parse_header(&big).unwrap().map(|h| asm.check(&h)),
        Some(Err(ProtocolError::TooLarge(11)))
    );
    // Fragments count together.
    let mut bytes = client_frame(0x01, &[b'a'; 6], M);
    bytes.extend(client_frame(0x80, &[b'a'; 6], M));
    assert_eq!(feed(&mut asm, &bytes), Err(ProtocolError::TooLarge(12)));
    assert_eq!(
        ProtocolError::TooLarge(12).close_code(),
        close_code::TOO_BIG
    );
}

#[test]
fn endless_empty_fragments_are_cut_off() {
    let mut asm = Assembler::new(1024);
    let mut bytes = client_frame(0x01, b"", M);
    for _ in 0..MAX_FRAGMENTS {
        bytes.extend(client_frame(0x00, b"", M));
    }
    assert_eq!(feed(&mut asm, &bytes), Err(ProtocolError::TooManyFragments));
}

#[test]
fn text_must_be_utf8_even_across_fragments() {
    let mut asm = Assembler::new(1024);
    let e = feed(&mut asm, &client_frame(0x81, &[0xff, 0xfe], M));
    assert_eq!(e, Err(ProtocolError::InvalidUtf8));
    assert_eq!(
        ProtocolError::InvalidUtf8.close_code(),
        close_code::INVALID_DATA
    );
    // "é" split between two fragments is fine.
    let mut asm = Assembler::new(1024);
    let mut bytes = client_frame(0x01, &[0xc3], M);
    bytes.extend(client_frame(0x80, &[0xa9], M));
    assert_eq!(feed(&mut asm, &bytes), Ok(vec![Event::Text("é".into())]));
}

#[test]
fn close_payloads() {
    let close = |p: &[u8]| feed(&mut Assembler::new(1024), &client_frame(0x88, p, M));
    assert_eq!(close(b""), Ok(vec![Event::Close(None)]));
    assert_eq!(
        close(&close_payload(1000, "bye")),
        Ok(vec![Event::Close(Some(1000))])
    );
    assert_eq!(
        close(&close_payload(4000, "")),
        Ok(vec![Event::Close(Some(4000))])
    );
    for bad in [
        &[0x03][..],
        &[0x03, 0xed],
        &[0x03, 0xee],
        &[0x03, 0xe8, 0xff],
        &[0x13, 0x88],
    ] {
        assert_eq!(close(bad), Err(ProtocolError::BadClose), "{bad:02x?}");
    }
    // A long reason is cut at a character boundary to fit 125 bytes.
    let p = close_payload(1000, &"é".repeat(100));
    assert_eq!(p.len(), 124);
    assert!(std::str::from_utf8(&p[2..]).is_ok());
}

proptest! {
    #[test]
    fn any_payload_round_trips_through_any_split(
        payload in proptest::collection::vec(any::<u8>(), 0..70_000),
        mask in any::<[u8; 4]>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let frame = client_frame(0x82, &payload, mask);
        let cut = cut.index(frame.len() + 1);
        // A header from a prefix is either incomplete or the same header.
        let whole = parse_header(&frame).unwrap().unwrap();
        if let Some(h) = parse_header(&frame[..cut]).unwrap() {
            prop_assert_eq!(h, whole);
        }
        let mut asm = Assembler::new(1 << 20);
        prop_assert_eq!(feed(&mut asm, &frame), Ok(vec![Event::Binary(payload.len())]));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = feed(&mut Assembler::new(100), &bytes);
    }

    #[test]
    fn masking_matches_the_rfc_definition(data in proptest::collection::vec(any::<u8>(), 0..100), mask in any::<[u8; 4]>()) {
        // RFC 6455, 5.3: octet i XOR mask octet (i MOD 4).
        let want: Vec<u8> = data.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect();
        let mut d = data;
        apply_mask(&mut d, mask);
        prop_assert_eq!(d, want);
    }
}

/// A message as a client might send it: split into fragments at arbitrary byte
/// offsets (even inside a UTF-8 character), with pings between the fragments.
fn fragmented(text: &str, cuts: &[usize], ping_after: &[bool]) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut pieces = Vec::new();
    let mut at = 0;
    for c in cuts {
        pieces.push(&bytes[at..c]);
        at = c;
    }
    pieces.push(&bytes[at..]);
    let last = pieces.len() - 1;
    let mut out = Vec::new();
    for (i, piece) in pieces.into_iter().enumerate() {
        let fin = if i == last { 0x80 } else { 0 };
        let op = if i == 0 { 0x1 } else { 0x0 };
        out.extend(client_frame(fin | op, piece, M));
        if i != last && ping_after.get(i).copied().unwrap_or(false) {
            out.extend(client_frame(0x89, b"x", M));
        }
    }
    out
}

proptest! {
    #[test]
    fn fragmented_messages_reassemble_in_order(
        msgs in proptest::collection::vec(
            ("\\PC{0,200}", proptest::collection::vec(any::<usize>(), 0..6), proptest::collection::vec(any::<bool>(), 0..6)),
            1..6,
        ),
    ) {
        let mut bytes = Vec::new();
        let mut want = Vec::new();
        for (text, cuts, pings) in &msgs {
            bytes.extend(fragmented(text, cuts, pings));
            let fragments = cuts.iter().map(|c| c % (text.len() + 1)).collect::<std::collections::BTreeSet<_>>().len() + 1;
            for i in 0..fragments - 1 {
                if pings.get(i).copied().unwrap_or(false) {
                    want.push(Event::Ping(b"x".to_vec()));
                }
            }
            want.push(Event::Text(text.clone()));
        }
        let mut asm = Assembler::new(1 << 16);
        prop_assert_eq!(feed(&mut asm, &bytes), Ok(want));
    }

    #[test]
    fn corrupted_frames_never_panic(
        text in "\\PC{0,100}",
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = fragmented(&text, &[3, 17], &[true]);
        for (i, x) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= x;
        }
        let _ = feed(&mut Assembler::new(1 << 16), &bytes);
    }
}
