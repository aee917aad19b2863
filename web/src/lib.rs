//! `shieldcall-web`: the Shieldcall browser client, compiled to WebAssembly.
//!
//! # Layout
//! - [`call`]: the call as a pure state machine, tested natively.
//! - [`session`]: who is signed in, contacts and presence, the E2EE setting, the
//!   ICE servers: the relay's word about the session, as plain data, tested natively.
//! - [`texts`]: every sentence shown about calls and settings, tested natively.
//! - The page's glue (wasm only), in layers; a module uses only those above it
//!   in this list, never one below, so no two import each other:
//!   - `page`: what the page holds (the session, the relay socket, every call
//!     as a `Line` with its connection, recordings, lists), data only;
//!   - `render`: drawing it (and the ring tone following the call's state);
//!     `lists`: the history and recordings fetched from the relay;
//!   - `pc`: every call's peer-connection commands and events, handing what
//!     they yield to the machine through a function it is given;
//!   - `calling`: the call as the page runs it: feeding each call's machine
//!     (current, held, group legs) and carrying out what it says;
//!   - `group`, `handover`, `recording`: group calls, calls that change hands,
//!     recordings and captions, each built on `calling`;
//!   - `app`: the controller: the page's events, the relay socket, sign-in,
//!     and where each relay message goes.
//! - `cert`, `rtc` (wasm only): fresh per-call certificates, the peer connection,
//!   and bindings for what `web-sys` lacks (`RTCCertificate.getFingerprints`).
//! - `net` (wasm only): `fetch` and the signalling WebSocket with reconnect.
//! - `ui`, `dom`, `listen` (wasm only): the page and its listeners; `alert`: the
//!   ring tone and the notification of an incoming call.
//!
//! The admin policy page is its own bundle (`shieldcall-admin`, loaded on `/admin`
//! only), built on `codec`, `dom`, `listen` and `net` with this crate's `app`
//! feature off; [`ADMIN_EVENT`] is how the two meet.
//!
//! Everything that decides something is plain Rust and runs natively in tests;
//! the wasm-only modules talk to the browser. No `unwrap` on browser results:
//! every call into the browser returns a `Result` that is shown or passed on.

pub mod call;
#[cfg(target_arch = "wasm32")]
pub mod codec;
pub mod session;
pub mod texts;

#[cfg(all(target_arch = "wasm32", feature = "app"))]
mod alert;
#[cfg(all(target_arch = "wasm32", feature = "app"))]
mod app;
#[cfg(all(target_arch = "wasm32", feature = "app"))]
mod calling;
#[cfg(all(target_arch = "wasm32", feature = "app"))]
pub mod cert;
#[cfg(target_arch = "wasm32")]
pub mod dom;
#[cfg(all(target_arch = "wasm32", feature = "app"))]
mod group;
#[cfg(all(target_arch = "wasm32", feature = "app"))]
mod handover;
#[cfg(target_arch = "wasm32")]
pub mod listen;
#[cfg(all(target_arch = "wasm32", feature = "app"))]
mod lists;
#[cfg(target_arch = "wasm32")]
pub mod net;
#[cfg(all(target_arch = "wasm32", feature = "app"))]
mod page;
#[cfg(all(target_arch = "wasm32", feature = "app"))]
mod pc;
#[cfg(all(target_arch = "wasm32", feature = "app"))]
mod recording;
#[cfg(all(target_arch = "wasm32", feature = "app"))]
mod render;
#[cfg(all(target_arch = "wasm32", feature = "app"))]
pub mod rtc;
#[cfg(all(target_arch = "wasm32", feature = "app"))]
mod ui;

/// The event the call client fires on the document when an admin is signed in on
/// `/admin`, for the admin bundle to draw its page.
pub const ADMIN_EVENT: &str = "shieldcall-admin";
/// The attribute the call client sets on the admin section at the same time, for
/// an admin bundle that starts after the event.
pub const ADMIN_OPEN: &str = "data-open";
/// The page's admin section, which the admin bundle draws into.
pub const ADMIN_SECTION: &str = "[data-testid=admin]";

#[cfg(all(target_arch = "wasm32", feature = "app"))]
use wasm_bindgen::prelude::*;

/// Entry point, run by the generated glue when the module loads.
#[cfg(all(target_arch = "wasm32", feature = "app"))]
#[wasm_bindgen(start)]
pub fn start() -> Result<(), JsValue> {
    app::start()
}
