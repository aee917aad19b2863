//! The wire protocol between a browser and the relay: JSON text frames over one
//! WebSocket, one object per frame, tagged by `"type"`.
//!
//! [`ClientMsg`] is what a device sends, [`RelayMsg`] what the relay sends. Each
//! message is one enum variant; `docs/protocol.md` documents every one with a JSON
//! example and the tests below keep the two in step. Decoding never panics: any
//! input yields a message or an [`ErrorCode`] with a human sentence.

use serde::{Deserialize, Serialize};

use crate::code::Commitment;
use crate::policy::{CallFeature, CallMode, E2eeSetting};

/// The protocol version this crate speaks. A `hello` with another version is
/// answered with [`ErrorCode::UnsupportedVersion`] and the connection is closed.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest frame either side accepts, in bytes. An SDP offer with audio, video and
/// a data channel is 3–8 KB; 64 KiB leaves room for many candidates and codecs.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// A call's identifier, chosen by the relay: 64 hex digits, 128 random bits and
/// a tag that only the relay can make (see `docs/protocol.md`, "Reconnecting").
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallId(pub String);

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One ICE candidate, as `RTCIceCandidateInit` carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceCandidate {
    /// The `candidate:` attribute line; empty for end-of-candidates.
    pub candidate: String,
    /// The media stream identification tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// The index of the m-section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_m_line_index: Option<u16>,
    /// The ICE username fragment the candidate belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// A STUN or TURN server for `RTCConfiguration.iceServers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:` or `turn:`/`turns:` URLs.
    pub urls: Vec<String>,
    /// TURN user name (coturn REST scheme: `expiry:user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential (base64 HMAC-SHA1 of the user name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Presence of a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Signed in on at least one device and not in a call.
    Online,
    /// In a call or ringing.
    Busy,
    /// No device signed in.
    Offline,
    /// No longer a contact (the account was removed, or external access no longer
    /// allows it): the client drops it from its list.
    Removed,
}

/// A contact and their presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// Full user name, `name@domain`.
    pub user: String,
    /// Current presence.
    pub status: Status,
    /// The display name an admin gave the account ("Alice Example"), if any.
    /// Every entry carries the current one: a client replaces what it had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The longest display name, in characters (64): a full name with titles fits,
/// and a contact row stays one line on a phone with an ellipsis.
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;

/// Why a hangup happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HangupReason {
    /// Someone pressed hang up.
    Normal,
    /// The media connection could not be set up or was lost.
    ConnectionFailed,
    /// Verification failed: commitment, fingerprint or security code mismatch.
    /// The receiver shows the man-in-the-middle warning.
    Mitm,
    /// The SDP carried no single sha-256 fingerprint in an E2EE call.
    Unverifiable,
    /// The other side's device went away and did not come back in time.
    PeerGone,
    /// This side transferred the call (`transfer`); sent by the relay to the
    /// transferring device, whose part of the call is over.
    Transferred,
    /// Another device of this user took the call over (`move-here`); sent by the
    /// relay to the device that had it.
    Moved,
    /// A parked call nobody picked up, and the parker did not take back when rung.
    NotPickedUp,
}

/// Why the relay refused or ended the setup of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefuseReason {
    /// One side's policy requires E2EE and the other side cannot do it.
    E2eeRequired,
    /// Policy or external access forbids this pair from calling.
    NotAllowed,
    /// The callee has no device signed in.
    Offline,
    /// The callee (or caller) is already in a call.
    Busy,
    /// No such user.
    UnknownUser,
    /// Calling oneself.
    SelfCall,
    /// Nobody answered within the ring timeout.
    NoAnswer,
    /// The callee declined.
    Declined,
}

/// Error codes: a closed set, each sent with a human sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// The frame is not valid JSON or not a known message.
    BadMessage,
    /// The frame is larger than [`MAX_MESSAGE_BYTES`].
    TooLarge,
    /// The `hello` named a protocol version this relay does not speak.
    UnsupportedVersion,
    /// A message came before `hello`, or `hello` came twice.
    HelloFirst,
    /// Too many messages in too short a time.
    RateLimited,
    /// The message names a call this device is not bound to.
    NotYourCall,
    /// The message does not fit the call's current state.
    WrongState,
    /// `accept` came without a commitment (every call, E2EE or standard, needs one).
    BadCommitment,
    /// The feature is off in end-to-end encrypted calls.
    UnavailableInE2ee,
    /// The feature needs a server component this deployment does not run
    /// (e.g. a media server for recording); honest "not here", not "not allowed".
    NotDeployed,
    /// The policy decides the switch; the user cannot change it.
    PolicyLocked,
    /// A tenant's calling policy turns the feature off (recording, live
    /// captions, voicemail): the admin's "not allowed", not "not here".
    NotAllowed,
    /// The session expired or was signed out.
    SessionExpired,
    /// The user already has as many devices connected as the relay allows.
    TooManyDevices,
    /// Something failed inside the relay; nothing about it is shown.
    Internal,
}

/// A message from a device to the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum ClientMsg {
    /// First message on every connection.
    Hello {
        /// Must equal [`PROTOCOL_VERSION`].
        version: u32,
    },
    /// Application-level liveness probe; answered with `pong`.
    Ping {
        /// Echoed in `pong`.
        id: u64,
    },
    /// Turn the user's "End-to-end encrypted calls" switch on or off.
    SetE2ee {
        /// The new switch position.
        enabled: bool,
    },
    /// Call `to`.
    Invite {
        /// Callee's full user name.
        to: String,
        /// The token of a `refer` this invite carries out (a blind transfer):
        /// the callee is told who transferred the call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transfer: Option<String>,
    },
    /// This device is ringing for `call_id` (sent on `incoming`).
    Ringing {
        /// The call.
        call_id: CallId,
    },
    /// Take the call on this device. `commit` is the commitment to this device's
    /// fresh certificate, in every mode (the relay refuses an `accept` without
    /// one); it is optional on the wire only so that its absence gets a clear
    /// error instead of a decoding failure.
    Accept {
        /// The call.
        call_id: CallId,
        /// Commitment v1 to the callee's certificate fingerprint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        commit: Option<Commitment>,
    },
    /// Refuse a ringing call (every device stops ringing).
    Decline {
        /// The call.
        call_id: CallId,
    },
    /// The caller gives up before anyone answered.
    Cancel {
        /// The call.
        call_id: CallId,
    },
    /// The caller's SDP offer, forwarded unaltered to the bound callee device.
    Offer {
        /// The call.
        call_id: CallId,
        /// The SDP.
        sdp: String,
    },
    /// The callee's SDP answer, forwarded unaltered to the caller's device.
    Answer {
        /// The call.
        call_id: CallId,
        /// The SDP.
        sdp: String,
    },
    /// A trickled ICE candidate for the other side.
    Ice {
        /// The call.
        call_id: CallId,
        /// The candidate.
        candidate: IceCandidate,
    },
    /// End an established call.
    Hangup {
        /// The call.
        call_id: CallId,
        /// Why.
        reason: HangupReason,
    },
    /// After a reconnect: this device carries on the answered call `call_id` with
    /// `peer`. Rebinds the call to this device; after a relay restart, the call is
    /// restored once both people's devices have resumed it.
    Resume {
        /// The call.
        call_id: CallId,
        /// The other person.
        peer: String,
        /// The call's mode as this device knows it.
        mode: CallMode,
    },
    /// Put the answered call on hold (`on: true`) or take this side's hold off
    /// (`on: false`). Standard calls only; answered with `hold` to both sides.
    Hold {
        /// The call.
        call_id: CallId,
        /// Whether this side holds the call.
        on: bool,
    },
    /// Take over, on this device, the answered standard call that another device of
    /// this user carries ("move here"). `commit` is the commitment to this device's
    /// fresh certificate, as in `accept`; the other person's device then makes a
    /// fresh peer connection and offers to this one.
    MoveHere {
        /// The call.
        call_id: CallId,
        /// Commitment v1 to this device's certificate fingerprint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        commit: Option<Commitment>,
    },
    /// Blind transfer (SIP REFER): the other person is asked to call `to`, and
    /// this device's part of the call ends. Standard calls only.
    Transfer {
        /// The call.
        call_id: CallId,
        /// Whom the other person should call.
        to: String,
    },
    /// Park the answered standard call: this device lets go of it, the other person
    /// waits, and anyone allowed to call them picks it up with the code the relay
    /// gives (`parked`).
    Park {
        /// The call.
        call_id: CallId,
    },
    /// Pick up the call parked under `code` on this device. `commit` is the
    /// commitment to this device's fresh certificate, as in `accept`.
    Pickup {
        /// The pickup code (10–99).
        code: u8,
        /// Commitment v1 to this device's certificate fingerprint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        commit: Option<Commitment>,
    },
    /// Consult transfer, step 1: call `to` while the answered standard call
    /// `call_id`, which this device holds (`hold` with `on: true`), waits. The new
    /// call is an ordinary call (`calling`, its own mode and code); the held one
    /// comes back when it ends, unless `consult-transfer` joins the two people.
    Consult {
        /// The held call.
        call_id: CallId,
        /// Whom to consult.
        to: String,
    },
    /// Consult transfer, step 2 (SIP REFER with Replaces): connect the other
    /// person of the held call `call_id` with the other person of `consult`,
    /// without ringing anyone; this device leaves both calls. Standard calls only.
    ConsultTransfer {
        /// The held call (its other person stays in it).
        call_id: CallId,
        /// The consultation placed with `consult` (its other person joins).
        consult: CallId,
    },
    /// After `replaced`: this device joins the call `call_id`; `commit` is the
    /// commitment to this device's fresh certificate, as in `accept`. The other
    /// person's device then offers to this one (`new-leg`).
    Join {
        /// The call to join (`join` of `replaced`).
        call_id: CallId,
        /// Commitment v1 to this device's certificate fingerprint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        commit: Option<Commitment>,
    },
    /// Add `to` to the answered standard call `call_id` (a group call of at
    /// most 4): an ordinary call to them (`calling`), after which every other
    /// member connects to them too (`leg`, `new-leg`).
    Add {
        /// The call (any leg of a group call).
        call_id: CallId,
        /// Whom to add.
        to: String,
    },
    /// Merge the held call `call_id` and the consultation `consult` about it
    /// into one group call: the hold ends, and the two others connect too.
    Merge {
        /// The held call.
        call_id: CallId,
        /// The consultation placed with `consult`.
        consult: CallId,
    },
    /// Start (`on: true`) or stop recording the answered standard call: the
    /// relay asks both people (`recording`); each browser sends its media to
    /// the server (`media-offer`) only after its own person agreed.
    Record {
        /// The call.
        call_id: CallId,
        /// Record, or stop.
        on: bool,
    },
    /// Start (`on: true`) or stop live captions in the answered standard call:
    /// the relay tells both people (`captions`); each browser sends its sound
    /// to the server (`media-offer` with `captions`) only after its own person
    /// agreed, and both get what was said as `caption`s.
    Captions {
        /// The call.
        call_id: CallId,
        /// Caption, or stop.
        on: bool,
    },
    /// Leave a voicemail for `to` (after a call to them was not answered,
    /// declined, or found them busy or offline): the relay answers `voicemail`
    /// with an id for the message's media leg (`media-offer`); `record` with
    /// `on: false` ends it (at most 120 s).
    Voicemail {
        /// Whom the message is for.
        to: String,
    },
    /// This device's send-only offer for its media leg to the server, while
    /// the call is recorded (or captioned) and its person agreed.
    MediaOffer {
        /// The call.
        call_id: CallId,
        /// The SDP offer (send-only audio and video; audio only for captions).
        sdp: String,
        /// The leg for live captions, not the recording's.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        captions: bool,
    },
    /// Ask for a call feature (recording, transfer, ...).
    Feature {
        /// The call.
        call_id: CallId,
        /// The feature.
        feature: CallFeature,
    },
}

/// A message from the relay to a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum RelayMsg {
    /// Answer to `hello`: who this session is and how to reach peers.
    Welcome {
        /// Protocol version of the relay.
        version: u32,
        /// The signed-in user's full name.
        user: String,
        /// This device's identifier for the session's lifetime.
        device: String,
        /// Whether the user administers their tenant.
        admin: bool,
        /// The user's current E2EE setting.
        e2ee: E2eeSetting,
        /// STUN/TURN servers, with fresh TURN credentials.
        ice_servers: Vec<IceServer>,
    },
    /// Answer to `ping`.
    Pong {
        /// The `ping`'s id.
        id: u64,
    },
    /// Presence of contacts: the full list after `welcome`, then one entry per change.
    Presence {
        /// Contacts whose presence is reported.
        contacts: Vec<Presence>,
    },
    /// The user's E2EE setting changed (switch on another device, or a policy change).
    Settings {
        /// The new setting.
        e2ee: E2eeSetting,
    },
    /// The invite was routed: the callee's devices are being alerted.
    Calling {
        /// The new call.
        call_id: CallId,
        /// The callee.
        to: String,
        /// The mode the relay decided.
        mode: CallMode,
    },
    /// Someone calls this user.
    Incoming {
        /// The call.
        call_id: CallId,
        /// The caller.
        from: String,
        /// The mode the relay decided.
        mode: CallMode,
        /// Who transferred the caller here, for a call made by a `refer`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        referred_by: Option<String>,
        /// The others already in the call, when the caller adds this user to a
        /// group call.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        group: Vec<String>,
    },
    /// A callee device is ringing.
    Ringing {
        /// The call.
        call_id: CallId,
    },
    /// The callee accepted on one device; `commit` is present in an E2EE call.
    Accepted {
        /// The call.
        call_id: CallId,
        /// The callee's commitment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        commit: Option<Commitment>,
    },
    /// The call was answered on another device of this user; stop ringing.
    AnsweredElsewhere {
        /// The call.
        call_id: CallId,
    },
    /// The caller cancelled, or the ring timed out; stop ringing.
    Cancelled {
        /// The call.
        call_id: CallId,
    },
    /// The call was refused or not answered.
    CallRefused {
        /// The call.
        call_id: CallId,
        /// The other person.
        peer: String,
        /// Why.
        reason: RefuseReason,
        /// For `e2ee-required`: the user whose policy requires E2EE.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        required_by: Option<String>,
    },
    /// The caller's offer.
    Offer {
        /// The call.
        call_id: CallId,
        /// The SDP, unaltered.
        sdp: String,
    },
    /// The callee's answer.
    Answer {
        /// The call.
        call_id: CallId,
        /// The SDP, unaltered.
        sdp: String,
    },
    /// A candidate from the other side.
    Ice {
        /// The call.
        call_id: CallId,
        /// The candidate.
        candidate: IceCandidate,
    },
    /// The other side ended the call.
    Hangup {
        /// The call.
        call_id: CallId,
        /// Why.
        reason: HangupReason,
    },
    /// The call's hold state after a change, from this device's side: sent to both
    /// sides on every `hold`, and to a device that resumes a held call. Media stops
    /// in both directions while either side holds.
    Hold {
        /// The call.
        call_id: CallId,
        /// This user holds the call.
        by_me: bool,
        /// The other person holds the call.
        by_peer: bool,
    },
    /// This user has an answered call on another device (sent to the user's other
    /// devices when it is answered or moves, and after `welcome`), so this device
    /// can offer "move here".
    ElsewhereCall {
        /// The call.
        call_id: CallId,
        /// The other person.
        peer: String,
        /// The call's mode (only a standard call can move).
        mode: CallMode,
    },
    /// The call announced by `elsewhere-call` is over.
    ElsewhereEnded {
        /// The call.
        call_id: CallId,
    },
    /// The other side of this call is now a new device (it moved there): make a
    /// fresh peer connection with a fresh certificate and offer to it. `commit` is
    /// the new device's commitment; the security code is computed afresh.
    NewLeg {
        /// The call.
        call_id: CallId,
        /// The other person (the same person, on another device).
        peer: String,
        /// Commitment v1 to the new device's certificate fingerprint.
        commit: Commitment,
    },
    /// The other person transferred this call (SIP REFER with Referred-By): end
    /// it and call `to` with `invite` carrying `token`. The new call is decided
    /// afresh (its own mode, fresh certificates).
    Refer {
        /// The call being transferred.
        call_id: CallId,
        /// Whom to call.
        to: String,
        /// Who transferred the call.
        by: String,
        /// Carried in the `invite`; valid for 30 s, once.
        token: String,
    },
    /// To the device that parked the call: it is parked under `code`; this device's
    /// part of the call is over.
    Parked {
        /// The call.
        call_id: CallId,
        /// The pickup code (10–99).
        code: u8,
    },
    /// To the other person's device: the call was parked under `code`; wait for a
    /// pickup (`new-leg`), or hang up. The peer connection closes.
    OnPark {
        /// The call.
        call_id: CallId,
        /// The pickup code.
        code: u8,
    },
    /// To the device that picked up the call parked under `code`: this is the
    /// call; the person waiting offers to this device next.
    PickedUp {
        /// The call.
        call_id: CallId,
        /// The code it was parked under.
        code: u8,
        /// The person who was waiting.
        peer: String,
        /// The call's mode (standard).
        mode: CallMode,
    },
    /// Consult transfer: the person who called this user (`by`) joined this call
    /// with their other call: this call is over, and this device joins `join`
    /// with `peer` (a fresh certificate, committed with `join`; `peer`'s device
    /// offers next). Nobody rings.
    Replaced {
        /// The call that ends (the consultation).
        call_id: CallId,
        /// The call to join.
        join: CallId,
        /// The person in it.
        peer: String,
        /// Who transferred.
        by: String,
        /// Its mode (standard).
        mode: CallMode,
    },
    /// A group call grew: make a leg with `peer` (a fresh certificate,
    /// committed with `join`; `peer`'s device offers next).
    Leg {
        /// The leg.
        call_id: CallId,
        /// The member at its other end.
        peer: String,
        /// Its mode (standard).
        mode: CallMode,
    },
    /// Who is in this user's group call now (sent when it changes).
    Group {
        /// The members, this user among them.
        members: Vec<String>,
    },
    /// The call is being recorded (`on`, asked by `by`), or no longer is. While
    /// it is, each browser shows a banner and, once its person agreed, sends
    /// its audio and video to the server (`media-offer`).
    Recording {
        /// The call.
        call_id: CallId,
        /// Recording or not.
        on: bool,
        /// Who asked for it (absent when it stopped).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// Live captions are on in the call (`on`, asked by `by`), or no longer
    /// are. While they are, each browser shows a banner and, once its person
    /// agreed, sends its sound to the server (`media-offer` with `captions`).
    Captions {
        /// The call.
        call_id: CallId,
        /// Captioned or not.
        on: bool,
        /// Who asked for it (absent when it stopped).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// What `from` said, as the server's recogniser heard it: a partial
    /// caption that the next one replaces, or (`final`) an utterance's last.
    Caption {
        /// The call.
        call_id: CallId,
        /// Who spoke.
        from: String,
        /// The words (plain text; never markup).
        text: String,
        /// The utterance ended: this caption stays.
        #[serde(rename = "final")]
        done: bool,
    },
    /// Record the voicemail for `to` now: send the media leg's offer
    /// (`media-offer`) with this id.
    Voicemail {
        /// The message's id (as a call's).
        call_id: CallId,
        /// Whom it is for.
        to: String,
    },
    /// `from` left this user a voicemail; it is in their recordings.
    VoicemailLeft {
        /// Who left it.
        from: String,
    },
    /// A recording, voicemail or transcript this user is in has been written
    /// and is now in `GET /api/recordings` (sent to every device of both
    /// people, a second or so after it stopped).
    RecordingReady {
        /// Its id in the list.
        id: String,
    },
    /// The server's answer for this device's media leg.
    MediaAnswer {
        /// The call.
        call_id: CallId,
        /// The SDP answer (receive-only, one host candidate).
        sdp: String,
        /// The answer for the captions leg.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        captions: bool,
    },
    /// Something this device sent was refused.
    Error {
        /// Stable code.
        code: ErrorCode,
        /// A sentence for people.
        message: String,
        /// The call the error is about, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call_id: Option<CallId>,
    },
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes is larger than the limit of {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
    /// Not JSON, or not one of the known messages (the detail says which).
    #[error("not a valid message: {0}")]
    Invalid(String),
}

impl DecodeError {
    /// The wire error code for this failure.
    pub const fn code(&self) -> ErrorCode {
        match self {
            Self::TooLarge(_) => ErrorCode::TooLarge,
            Self::Invalid(_) => ErrorCode::BadMessage,
        }
    }
}

// On the wire a message is one JSON object whose `"type"` names the variant
// (serde's "internally tagged" form). The enums derive serde's *externally* tagged
// form (`{"variant": {fields}}`) and `decode`/`encode` move the tag between the
// two. Serde's own internally tagged derive buffers every message through its
// generic `Content` type, which costs the browser bundle about 80 KB of code; this
// conversion costs a few hundred bytes, one `Value` per message decoded and a
// copy of the text per message encoded. Always go through `decode`/`encode`:
// serialising the enums directly gives the inner form.

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, DecodeError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge(text.len()));
    }
    // serde_json's messages name fields and types, never echo values back.
    let invalid = |e: serde_json::Error| DecodeError::Invalid(e.to_string());
    let value: serde_json::Value = serde_json::from_str(text).map_err(invalid)?;
    let serde_json::Value::Object(mut fields) = value else {
        return Err(DecodeError::Invalid("a message is a JSON object".into()));
    };
    let ty = match fields.remove("type") {
        Some(serde_json::Value::String(ty)) => ty,
        Some(_) => return Err(DecodeError::Invalid("\"type\" must be a string".into())),
        None => return Err(DecodeError::Invalid("missing field `type`".into())),
    };
    let mut outer = serde_json::Map::new();
    outer.insert(ty, serde_json::Value::Object(fields));
    serde_json::from_value(serde_json::Value::Object(outer)).map_err(invalid)
}

fn encode<T: Serialize>(msg: &T) -> String {
    // Serialising these enums cannot fail: every map key is a string and no
    // custom serialiser returns an error.
    serde_json::to_string(msg).map_or_else(|_| String::from("{}"), |derived| retag(&derived))
}

/// The derived form `{"variant":{fields}}` as the wire form
/// `{"type":"variant",fields}`, by moving text: every variant of the two
/// enums has named fields (possibly none), no field is called `type`, and a
/// variant's name is plain kebab-case, so the first `":` ends it. Going
/// through a `serde_json::Value` instead would build a tree of the whole
/// message (an allocation per string and per object) for every message the
/// relay writes.
fn retag(derived: &str) -> String {
    let parts = derived
        .strip_prefix("{\"")
        .and_then(|rest| rest.split_once("\":{"))
        .and_then(|(name, fields)| Some((name, fields.strip_suffix("}}")?)));
    let Some((name, fields)) = parts else {
        return String::from("{}");
    };
    let mut out = String::with_capacity(derived.len() + 8);
    out.push_str("{\"type\":\"");
    out.push_str(name);
    out.push('"');
    if !fields.is_empty() {
        out.push(',');
        out.push_str(fields);
    }
    out.push('}');
    out
}

impl ClientMsg {
    /// Decodes one text frame.
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        decode(text)
    }

    /// Encodes as one text frame.
    pub fn encode(&self) -> String {
        encode(self)
    }

    /// The call this message is about, if any.
    pub fn call_id(&self) -> Option<&CallId> {
        match self {
            Self::Hello { .. }
            | Self::Ping { .. }
            | Self::SetE2ee { .. }
            | Self::Invite { .. }
            | Self::Voicemail { .. }
            | Self::Pickup { .. } => None,
            Self::Ringing { call_id }
            | Self::Accept { call_id, .. }
            | Self::Decline { call_id }
            | Self::Cancel { call_id }
            | Self::Offer { call_id, .. }
            | Self::Answer { call_id, .. }
            | Self::Ice { call_id, .. }
            | Self::Hangup { call_id, .. }
            | Self::Resume { call_id, .. }
            | Self::Hold { call_id, .. }
            | Self::MoveHere { call_id, .. }
            | Self::Park { call_id }
            | Self::Transfer { call_id, .. }
            | Self::Consult { call_id, .. }
            | Self::ConsultTransfer { call_id, .. }
            | Self::Add { call_id, .. }
            | Self::Record { call_id, .. }
            | Self::Captions { call_id, .. }
            | Self::MediaOffer { call_id, .. }
            | Self::Merge { call_id, .. }
            | Self::Join { call_id, .. }
            | Self::Feature { call_id, .. } => Some(call_id),
        }
    }
}

impl RelayMsg {
    /// Decodes one text frame.
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        decode(text)
    }

    /// The call this message is about, if any (an `error` names the call of the
    /// message it answers, which need not be the recipient's).
    pub fn call_id(&self) -> Option<&CallId> {
        match self {
            Self::Calling { call_id, .. }
            | Self::Incoming { call_id, .. }
            | Self::Ringing { call_id }
            | Self::Accepted { call_id, .. }
            | Self::AnsweredElsewhere { call_id }
            | Self::Cancelled { call_id }
            | Self::CallRefused { call_id, .. }
            | Self::Offer { call_id, .. }
            | Self::Answer { call_id, .. }
            | Self::Ice { call_id, .. }
            | Self::Hangup { call_id, .. }
            | Self::Hold { call_id, .. }
            | Self::ElsewhereCall { call_id, .. }
            | Self::ElsewhereEnded { call_id }
            | Self::NewLeg { call_id, .. }
            | Self::Parked { call_id, .. }
            | Self::OnPark { call_id, .. }
            | Self::PickedUp { call_id, .. }
            | Self::Replaced { call_id, .. }
            | Self::Leg { call_id, .. }
            | Self::Recording { call_id, .. }
            | Self::Captions { call_id, .. }
            | Self::Caption { call_id, .. }
            | Self::Voicemail { call_id, .. }
            | Self::MediaAnswer { call_id, .. }
            | Self::Refer { call_id, .. } => Some(call_id),
            Self::Error { call_id, .. } => call_id.as_ref(),
            Self::Welcome { .. }
            | Self::Pong { .. }
            | Self::Presence { .. }
            | Self::Group { .. }
            | Self::VoicemailLeft { .. }
            | Self::RecordingReady { .. }
            | Self::Settings { .. } => None,
        }
    }

    /// Encodes as one text frame.
    pub fn encode(&self) -> String {
        encode(self)
    }

    /// An error message with its human sentence.
    pub fn error(code: ErrorCode, message: impl Into<String>, call_id: Option<CallId>) -> Self {
        Self::Error {
            code,
            message: message.into(),
            call_id,
        }
    }
}
