//! The relay's message handling (`relay/src/hub`): a script of client frames from
//! six devices of four users, disconnects, reconnects, directory refreshes,
//! sign-outs and time passing never panics, never sends a frame a client cannot
//! decode, never tells a user about a call they are not in, and leaves nobody in
//! a call once every device is gone. See `shieldcall_relay::fuzzing::hub_messages`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The harness keeps its own clock: no runtime, nothing carried over from
    // one input to the next.
    shieldcall_relay::fuzzing::hub_messages(data);
});
