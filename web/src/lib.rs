//! `shieldcall-web`: the Shieldcall browser client, compiled to WebAssembly.
//!
//! # Layout
//! - [`call`]: the call as a pure state machine, tested natively.
//! - `cert` (wasm only): fresh per-call DTLS certificates and their fingerprints,
//!   through small bindings for what `web-sys` lacks
//!   (`RTCCertificate.getFingerprints`).
//! - `ui` (wasm only): the page.
//!
//! Everything that decides something (fingerprints, the security code, the wire
//! protocol) is in `shieldcall-proto` and runs natively in tests; this crate only
//! talks to the browser. No `unwrap` on browser results: every call into the
//! browser returns a `Result` that is shown or passed on.

pub mod call;
#[cfg(target_arch = "wasm32")]
pub mod cert;
#[cfg(target_arch = "wasm32")]
mod ui;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen::prelude::*;

/// Entry point, run by the generated glue when the module loads.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen(start)]
pub fn start() -> Result<(), JsValue> {
    ui::mount()
}
