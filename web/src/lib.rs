//! `shieldcall-web`: the Shieldcall browser client, compiled to WebAssembly.
//!
//! # Layout
//! - [`call`]: the call as a pure state machine, tested natively.
//! - [`texts`]: every sentence shown about calls and settings, tested natively.
//! - `app`, `calling`, `render` (wasm only): the controller (session, relay
//!   socket), the call as the page runs it, and drawing the state.
//! - `cert`, `rtc` (wasm only): fresh per-call certificates, the peer connection,
//!   and bindings for what `web-sys` lacks (`RTCCertificate.getFingerprints`).
//! - `net` (wasm only): `fetch` and the signalling WebSocket with reconnect.
//! - `ui`, `admin`, `dom`, `listen` (wasm only): the page and its listeners.
//!
//! Everything that decides something is plain Rust and runs natively in tests;
//! the wasm-only modules talk to the browser. No `unwrap` on browser results:
//! every call into the browser returns a `Result` that is shown or passed on.

pub mod call;
#[cfg(target_arch = "wasm32")]
pub mod codec;
pub mod texts;

#[cfg(target_arch = "wasm32")]
mod admin;
#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod calling;
#[cfg(target_arch = "wasm32")]
pub mod cert;
#[cfg(target_arch = "wasm32")]
mod dom;
#[cfg(target_arch = "wasm32")]
mod listen;
#[cfg(target_arch = "wasm32")]
mod net;
#[cfg(target_arch = "wasm32")]
mod render;
#[cfg(target_arch = "wasm32")]
pub mod rtc;
#[cfg(target_arch = "wasm32")]
mod ui;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen::prelude::*;

/// Entry point, run by the generated glue when the module loads.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen(start)]
pub fn start() -> Result<(), JsValue> {
    app::start()
}
