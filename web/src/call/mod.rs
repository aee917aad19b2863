//! The call, as a pure state machine.
//!
//! Inputs are relay messages, peer-connection events, user actions and the time
//! (`now_ms`); outputs are messages to send, peer-connection commands and a view
//! the UI renders. Nothing here touches the browser, so every path runs natively
//! in tests; `crate::rtc` and `crate::ui` only turn browser callbacks into
//! [`Input`]s and carry out [`Output`]s.
//!
//! The E2EE flow is DESIGN.md's, step by step:
//! 1. The callee, on accept, has a fresh certificate made and sends the commitment
//!    to its fingerprint with `accept`, before it has seen the offer.
//! 2. The caller makes its own certificate and sends its offer only after it holds
//!    the commitment, and checks the answer's fingerprint against it.
//! 3. When DTLS is connected, the certificates DTLS used must have the
//!    fingerprints the SDP announced; only then the lock and the code are shown.
//! 4. The remote fingerprint is pinned for the call: a renegotiation that changes
//!    it ends the call with the man-in-the-middle warning.
//!
//! Never shows a lock on any path other than 3, and never panics on any input.

mod machine;
#[cfg(test)]
mod tests;

pub use machine::{Call, Ending, Input, Output, PcCommand, Phase, Role, UserAction, View, Warning};

/// How long the client lets an outgoing call ring before giving up, in ms. The
/// relay's own ring timeout is 45 s; this is a backstop for a relay that went away.
pub const RING_TIMEOUT_MS: u64 = 50_000;

/// How long media setup may take after accept before the call is given up, in ms.
pub const CONNECT_TIMEOUT_MS: u64 = 30_000;
