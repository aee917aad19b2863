//! The relay's WebSocket frame codec (`relay/src/ws/frame.rs`) never panics on
//! arbitrary bytes from a client, and never yields a message over the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shieldcall_relay::fuzzing::ws_frames;

const MAX_MESSAGE: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    for event in ws_frames(data, MAX_MESSAGE) {
        if let shieldcall_relay::fuzzing::Event::Text(text) = &event {
            assert!(text.len() <= MAX_MESSAGE, "message of {} bytes", text.len());
        }
    }
});
