//! Decoding a relay frame (what the browser client parses) never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shieldcall_proto::RelayMsg;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(msg) = RelayMsg::decode(text) {
        assert_eq!(RelayMsg::decode(&msg.encode()), Ok(msg));
    }
});
