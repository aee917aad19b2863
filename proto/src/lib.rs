//! `shieldcall-proto`: what the browser client and the relay share.
//!
//! Pure Rust: no I/O, no clock, no randomness, no async. It builds for
//! `wasm32-unknown-unknown` and for the host, and everything in it is a function of
//! its arguments, so both sides compute exactly the same thing.
//!
//! # Layout
//! - [`Fingerprint`]: a SHA-256 DTLS certificate fingerprint, parsed strictly,
//!   compared in constant time.
//! - [`extract_fingerprint`]: the one sha-256 fingerprint an SDP commits to, or an
//!   [`SdpError`] saying why there is none.
//! - [`security_code`] and [`Commitment`]: security code v1 and commitment v1,
//!   normative in `docs/security-code.md`.
//! - [`ClientMsg`] and [`RelayMsg`]: the wire protocol, `docs/protocol.md`.
//! - [`E2eePolicyType`], [`CallMode`], [`E2eeSetting`], [`CallFeature`]: the policy
//!   vocabulary.
//!
//! # Panics
//! None on any input. Malformed SDP, fingerprints, commitments or frames from a
//! peer are errors, never panics; a panic here is a bug.

pub mod admin;
mod code;
mod fingerprint;
mod msg;
mod policy;
mod sdp;

pub use code::{
    COMMIT_LABEL, CodeError, Commitment, CommitmentError, SECURITY_CODE_LABEL, SecurityCode,
    security_code,
};
pub use fingerprint::{FINGERPRINT_LEN, Fingerprint, FingerprintError};
pub use msg::{
    CallId, ClientMsg, DecodeError, ErrorCode, HangupReason, IceCandidate, IceServer,
    MAX_DISPLAY_NAME_CHARS, MAX_MESSAGE_BYTES, PROTOCOL_VERSION, Presence, RefuseReason, RelayMsg,
    Status,
};
pub use policy::{
    CallFeature, CallMode, E2eePolicyType, E2eeSetting, PolicySource, UnknownPolicyType,
};
pub use sdp::{SdpError, extract_fingerprint};
