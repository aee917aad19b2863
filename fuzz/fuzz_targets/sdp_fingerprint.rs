//! The SDP fingerprint extractor never panics, and what it accepts round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shieldcall_proto::{Fingerprint, extract_fingerprint};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(fp) = extract_fingerprint(text) {
        assert_eq!(fp.to_string().parse::<Fingerprint>(), Ok(fp));
    }
});
