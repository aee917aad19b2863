//! Decoding a client frame never panics, and a decoded message re-encodes to a
//! frame that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shieldcall_proto::ClientMsg;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(msg) = ClientMsg::decode(text) {
        assert_eq!(ClientMsg::decode(&msg.encode()), Ok(msg));
    }
});
