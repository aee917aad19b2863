//! The relay's message handling (`relay/src/hub`): a script of client frames from
//! six devices of four users, disconnects, reconnects, directory refreshes,
//! sign-outs and time passing never panics, never sends a frame a client cannot
//! decode, never tells a user about a call they are not in, and leaves nobody in
//! a call once every device is gone. See `shieldcall_relay::fuzzing::hub_messages`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;

/// One runtime for all inputs, its clock paused: `hub_messages` runs every timer it
/// started before it returns, so nothing carries over from one input to the next.
static RT: OnceLock<Option<Runtime>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let rt = RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .ok()
    });
    if let Some(rt) = rt {
        shieldcall_relay::fuzzing::hub_messages(rt, data);
    }
});
