//! The call, as a pure state machine.
//!
//! Inputs are relay messages, peer-connection events, user actions and the time
//! (`now_ms`); outputs are messages to send, peer-connection commands and a view
//! the UI renders. Nothing here touches the browser, so every path runs natively
//! in tests; `crate::rtc` and `crate::ui` only turn browser callbacks into
//! [`Input`]s and carry out [`Output`]s.
//!
//! The flow, the same in both modes (the mode decides features and the
//! indicator, never whether the two people can verify):
//! 1. The callee, on accept, sends the commitment to the fingerprint of a fresh
//!    certificate (made for this call while it rang) with `accept`, before it has
//!    seen the offer.
//! 2. The caller makes its own certificate, connection and offer while it rings,
//!    but sends the offer (and its candidates) only after it holds the commitment,
//!    and checks the answer's fingerprint against it.
//! 3. Every SDP, local and remote, first and renegotiated, must carry exactly one
//!    sha-256 fingerprint (`shieldcall_proto::extract_fingerprint`); anything else
//!    is unverifiable and ends an E2EE call (a standard call goes on without a code).
//! 4. When DTLS is connected, the certificates DTLS used must have the
//!    fingerprints the SDP announced, as far as the browser reports them
//!    ([`CertCheck`]); only then the code is shown, with the lock in an E2EE call.
//! 5. The remote fingerprint is pinned for the call: a renegotiation that changes
//!    it ends the call with the man-in-the-middle warning.
//!
//! A call that arrives `standard` while this user's own setting asks for
//! end-to-end encryption is flagged ([`Wish`], `View::downgraded`).
//!
//! Never shows a lock on any path other than 4 in an E2EE call, and never panics
//! on any input.

mod machine;
#[cfg(test)]
mod tests;

pub use machine::{
    Call, CertCheck, Ending, HoldState, Input, Output, PcCommand, Phase, Role, UserAction, View,
    Warning, Wish,
};

/// How long the client lets an outgoing call ring before giving up, in ms. The
/// relay's own ring timeout is 45 s; this is a backstop for a relay that went away.
pub const RING_TIMEOUT_MS: u64 = 50_000;

/// How long media setup may take after accept before the call is given up, in ms.
pub const CONNECT_TIMEOUT_MS: u64 = 30_000;
