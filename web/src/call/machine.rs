//! The states and transitions of one call. See the module docs of `call`.

use shieldcall_proto::{
    CallId, CallMode, ClientMsg, Commitment, Fingerprint, HangupReason, IceCandidate, RefuseReason,
    RelayMsg, SecurityCode, extract_fingerprint, security_code,
};

use super::{CONNECT_TIMEOUT_MS, RING_TIMEOUT_MS};

/// Which side of the call this device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sent the invite.
    Caller,
    /// Received `incoming`.
    Callee,
}

/// Something the peer-connection glue must do, in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PcCommand {
    /// Make a fresh certificate, a peer connection with it and the local media;
    /// answer with [`Input::PeerReady`].
    Create,
    /// `createOffer` + `setLocalDescription`; answer with [`Input::LocalOffer`].
    CreateOffer,
    /// `setRemoteDescription(offer)`, then `createAnswer` + `setLocalDescription`;
    /// answer with [`Input::LocalAnswer`].
    AcceptOffer {
        /// The caller's offer.
        sdp: String,
    },
    /// `setRemoteDescription(answer)`.
    SetAnswer {
        /// The callee's answer.
        sdp: String,
    },
    /// `addIceCandidate`, only ever after the remote description.
    AddIce(IceCandidate),
    /// Send the local camera and microphone (`true`), or nothing at all (`false`,
    /// on hold: `replaceTrack(null)`, so no media packets leave; the connection,
    /// its certificates and the code stay).
    SetSending(bool),
    /// Close the peer connection and stop the local media.
    Close,
}

/// One effect of an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send to the relay.
    Send(ClientMsg),
    /// Do something to the peer connection.
    Pc(PcCommand),
}

/// What the user did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserAction {
    /// Accept the ringing call.
    Accept,
    /// Decline the ringing call.
    Decline,
    /// Hang up (or cancel an outgoing call that has not been answered).
    Hangup,
    /// "Codes match": both people read the same code.
    CodesMatch,
    /// "Codes differ": someone is in between.
    CodesDiffer,
    /// Put the call on hold (standard calls).
    Hold,
    /// Take this side's hold off.
    Unhold,
    /// Park the call (standard calls): this device lets go of it under a code.
    Park,
}

/// An input to the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A message from the relay about this call (others are ignored).
    Relay(RelayMsg),
    /// The user did something.
    User(UserAction),
    /// The fresh certificate and the peer connection exist.
    PeerReady {
        /// The fresh certificate's SHA-256 fingerprint.
        local: Fingerprint,
    },
    /// The local offer is set; send it.
    LocalOffer {
        /// The SDP.
        sdp: String,
    },
    /// The local answer is set; send it.
    LocalAnswer {
        /// The SDP.
        sdp: String,
    },
    /// The browser found a local ICE candidate.
    LocalIce(IceCandidate),
    /// DTLS is connected; these are the fingerprints of the certificates the DTLS
    /// transport actually used, from the browser's certificate statistics.
    DtlsConnected {
        /// Our certificate, as DTLS used it.
        local: Option<Fingerprint>,
        /// The peer's certificate, as DTLS received it.
        remote: Option<Fingerprint>,
    },
    /// DTLS is connected and the browser has no certificate statistics, but its
    /// `RTCDtlsTransport.getRemoteCertificates()` gave the peer's certificate:
    /// `remote` is the SHA-256 of its DER. Ours is the one this device made.
    DtlsConnectedRemoteOnly {
        /// The peer's certificate, as DTLS received it.
        remote: Option<Fingerprint>,
    },
    /// DTLS is connected, but this browser reports no certificate details at all.
    /// The code then rests on the browser's own mandatory check that the
    /// certificate DTLS used has a fingerprint of the remote description (JSEP),
    /// which the strict one-fingerprint rule makes the committed one; the panel
    /// says so.
    DtlsConnectedUnobserved,
    /// The peer connection failed or a browser call returned an error.
    PcFailed,
    /// The relay connection dropped (media may go on).
    RelayDown,
    /// The relay connection is back.
    RelayUp,
    /// The user transfers the call to this user (blind transfer).
    TransferTo(String),
    /// Time passes (the UI ticks once a second).
    Tick,
}

/// How the certificates DTLS used were checked against the SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertCheck {
    /// Both certificates were read from the browser's statistics (Chrome).
    Both,
    /// The peer's certificate was read from the DTLS transport; ours is the one
    /// this device made and configured.
    RemoteOnly,
    /// The browser reports neither; it checked the peer's certificate itself
    /// against the one fingerprint the remote description carries.
    #[default]
    BrowserOnly,
}

/// Who holds the call, as the relay last said. Media stops both ways while
/// either side holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HoldState {
    /// This user put the call on hold.
    pub by_me: bool,
    /// The other person did.
    pub by_peer: bool,
}

impl HoldState {
    /// Whether the call is on hold at all.
    pub const fn any(self) -> bool {
        self.by_me || self.by_peer
    }
}

/// What this user's own setting asked of the call's mode, as last pushed by the
/// relay: a call that arrives `standard` against it gets a warning, because only
/// the relay's word says why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wish {
    /// The setting is off: a standard call is expected.
    #[default]
    None,
    /// The user's switch is on (other people's settings may still make it standard).
    Switch,
    /// The policy requires end-to-end encryption: a standard call should not exist.
    Required,
}

/// Why verification failed: what the warning says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warning {
    /// The answer's fingerprint does not open the callee's commitment.
    CommitmentMismatch,
    /// The certificate DTLS used is not the one the SDP announced.
    FingerprintMismatch,
    /// The remote fingerprint changed during the call.
    FingerprintChanged,
    /// The people read different codes.
    CodesDiffer,
    /// The other side detected one of the above.
    ReportedByPeer,
    /// An E2EE call whose SDP has no single sha-256 fingerprint.
    Unverifiable,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Someone hung up.
    HungUp {
        /// True when this side hung up.
        by_me: bool,
    },
    /// The callee declined.
    Declined,
    /// The caller cancelled before an answer.
    Cancelled,
    /// The relay refused the call.
    Refused {
        /// The reason code.
        reason: RefuseReason,
        /// For `e2ee-required`, the user whose policy requires it.
        required_by: Option<String>,
    },
    /// Answered on another device of this user.
    AnsweredElsewhere,
    /// Another device of this user took the call over.
    Moved,
    /// This device asked to take the call over and the relay refused.
    NotMoved,
    /// This device parked the call under `code`; anyone allowed picks it up.
    Parked {
        /// The pickup code.
        code: u8,
    },
    /// The call was parked and nobody picked it up.
    NotPickedUp,
    /// This device asked to pick up a parked call and the relay refused.
    PickupFailed,
    /// This user transferred the call to someone else.
    Transferred,
    /// The other person transferred this user to `to` (who is called next).
    Referred {
        /// Whom the call goes to.
        to: String,
    },
    /// The person who called this user joined them with their held call with
    /// `peer` (consult transfer): this device joins that call next.
    Replaced {
        /// Who this user is joined with.
        peer: String,
    },
    /// This device was to join a transferred call and the relay refused.
    NotJoined,
    /// The relay refused to place this call beside another (a consultation, or
    /// an add to a group call); the error says why.
    NotPlaced,
    /// Media could not be set up, or was lost.
    ConnectionFailed,
    /// Verification failed: possibly a man in the middle.
    Mitm(Warning),
}

/// Where the call is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Invite sent, waiting for the relay.
    Inviting,
    /// The callee's devices are being alerted (or ring).
    Ringing,
    /// Someone calls; this device rings.
    Incoming,
    /// Accepted; certificates, SDP, ICE and DTLS under way.
    Connecting,
    /// Media is up. `code` is set once the certificates are checked, in both modes.
    Connected,
    /// The other side parked the call: no peer connection; waiting for a pickup
    /// (`new-leg`, which starts a fresh machine), or hang up.
    Parked,
    /// Over.
    Ended(Ending),
}

/// Everything the UI shows about the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The other person.
    pub peer: String,
    /// This device's side.
    pub role: Role,
    /// The mode, once the relay decided it.
    pub mode: Option<CallMode>,
    /// Where the call is.
    pub phase: Phase,
    /// The security code, once DTLS is connected and the certificates match the
    /// SDP, in E2EE and standard calls alike (so a relay that splits or downgrades
    /// the mode cannot keep two people from verifying).
    pub code: Option<SecurityCode>,
    /// A standard call whose SDP carries no single sha-256 fingerprint: no code can
    /// be shown (an E2EE call ends instead).
    pub unverifiable: bool,
    /// The call arrived `standard` although this user's setting asked for
    /// end-to-end encryption: what the setting was.
    pub downgraded: Option<Wish>,
    /// The people said the codes match.
    pub verified: bool,
    /// The relay connection is down and being re-established.
    pub relay_down: bool,
    /// When media connected, for the duration shown.
    pub connected_at_ms: Option<u64>,
    /// How the certificates DTLS used were checked, once connected.
    pub cert_check: Option<CertCheck>,
    /// Who holds the call.
    pub hold: HoldState,
    /// A hold or unhold was asked and the relay has not answered yet.
    pub hold_pending: bool,
    /// The pickup code while the other side has parked the call.
    pub parked: Option<u8>,
    /// Who transferred the caller to this user (an incoming call from a `refer`).
    pub referred_by: Option<String>,
    /// The others already in the call this user is being added to.
    pub group: Vec<String>,
}

/// How the callee side of a leg commits to its certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CommitWith {
    /// `accept` (an incoming call).
    Accept,
    /// `move-here` (taking over a call another device of the user carries).
    MoveHere,
    /// `join` (a call a consult transfer or a group call handed this device).
    Join,
}

/// One call from invite or incoming to its end.
#[derive(Debug)]
pub struct Call {
    /// The relay's id, once known.
    id: Option<CallId>,
    /// Public view.
    view: View,
    /// When the current phase started, for timeouts.
    phase_since_ms: u64,
    /// The callee's commitment (caller side, E2EE).
    commit: Option<Commitment>,
    /// Our fresh certificate's fingerprint.
    local_fp: Option<Fingerprint>,
    /// The remote fingerprint from the SDP, pinned for the call.
    remote_fp: Option<Fingerprint>,
    /// The remote description has been handed to the peer connection.
    remote_set: bool,
    /// Remote candidates that arrived before the remote description.
    early_ice: Vec<IceCandidate>,
    /// The offer arrived before our peer connection existed (callee).
    pending_offer: Option<String>,
    /// The caller asked for its peer connection while the call rang.
    pc_requested: bool,
    /// The caller's offer, made while the call rang, held until the callee's
    /// commitment arrives: the offer announces our fingerprint.
    ready_offer: Option<String>,
    /// The caller's offer has gone to the relay.
    offer_sent: bool,
    /// The caller's own candidates, held until its offer has gone (they would
    /// tell the relay the call is being set up before the callee committed).
    held_ice: Vec<IceCandidate>,
    /// What this user's setting asked for when the call began.
    wish: Wish,
    /// The message this device commits with, as the callee side of a leg:
    /// `accept`, or `move-here` (taking over a call another device of the user
    /// carries) or `join` (a call a consult transfer or a group handed it).
    commit_with: CommitWith,
    /// This device picks up the call parked under this code: it commits with
    /// `pickup` and learns the call from `picked-up`.
    pickup: Option<u8>,
    /// This outgoing call is a consultation about this held call (`consult`).
    consult_of: Option<CallId>,
    /// This outgoing call adds its callee to this call's group (`add`).
    add_to: Option<CallId>,
}

impl Call {
    /// A new outgoing call: returns the machine and the invite to send. `wish` is
    /// what this user's setting asks for (see [`Wish`]).
    pub fn outgoing(to: &str, wish: Wish, now_ms: u64) -> (Self, Vec<Output>) {
        let call = Self::new(to, Role::Caller, None, None, wish, Phase::Inviting, now_ms);
        (
            call,
            vec![Output::Send(ClientMsg::Invite {
                to: to.to_string(),
                transfer: None,
            })],
        )
    }

    /// A new outgoing call that carries out a transfer (`refer`): the invite
    /// carries its token, so the callee is told who transferred the call.
    pub fn outgoing_transfer(
        to: &str,
        token: String,
        wish: Wish,
        now_ms: u64,
    ) -> (Self, Vec<Output>) {
        let call = Self::new(to, Role::Caller, None, None, wish, Phase::Inviting, now_ms);
        let invite = ClientMsg::Invite {
            to: to.to_string(),
            transfer: Some(token),
        };
        (call, vec![Output::Send(invite)])
    }

    /// A consultation (consult transfer): call `to` while the call `held`, which
    /// this user holds, waits. Otherwise an outgoing call like any.
    pub fn outgoing_consult(
        to: &str,
        held: CallId,
        wish: Wish,
        now_ms: u64,
    ) -> (Self, Vec<Output>) {
        let mut call = Self::new(to, Role::Caller, None, None, wish, Phase::Inviting, now_ms);
        call.consult_of = Some(held.clone());
        let consult = ClientMsg::Consult {
            call_id: held,
            to: to.to_string(),
        };
        (call, vec![Output::Send(consult)])
    }

    /// Adds `to` to the call `beside` (a group call): an outgoing call to them,
    /// placed with `add`; otherwise a call like any.
    pub fn outgoing_add(to: &str, beside: CallId, wish: Wish, now_ms: u64) -> (Self, Vec<Output>) {
        let mut call = Self::new(to, Role::Caller, None, None, wish, Phase::Inviting, now_ms);
        call.add_to = Some(beside.clone());
        let add = ClientMsg::Add {
            call_id: beside,
            to: to.to_string(),
        };
        (call, vec![Output::Send(add)])
    }

    /// After `replaced` (consult transfer, handed over by `by`) or `leg` (a
    /// group call grew): this device joins the call `call_id` with `peer`. A
    /// fresh certificate and peer connection, the commitment sent with `join`;
    /// `peer`'s device offers next.
    pub fn join(
        call_id: CallId,
        peer: &str,
        mode: CallMode,
        by: Option<String>,
        wish: Wish,
        now_ms: u64,
    ) -> (Self, Vec<Output>) {
        let (mut call, out) = Self::committing(CommitWith::Join, call_id, peer, mode, wish, now_ms);
        call.view.referred_by = by;
        (call, out)
    }

    /// Whether this is a consultation or an add placed beside call `id` that
    /// the relay has not placed yet (an error about `id` is then its refusal).
    pub fn awaits_placing(&self, id: &CallId) -> bool {
        self.id.is_none()
            && self.view.phase == Phase::Inviting
            && (self.consult_of.as_ref() == Some(id) || self.add_to.as_ref() == Some(id))
    }

    /// Notes the others already in the call (`incoming` with `group`).
    #[must_use]
    pub fn in_group(mut self, others: Vec<String>) -> Self {
        self.view.group = others;
        self
    }

    /// The held call this one consults about, if it is a consultation.
    pub fn consult_of(&self) -> Option<&CallId> {
        self.consult_of.as_ref()
    }

    /// A new incoming call, from `incoming`: returns the machine and the `ringing`
    /// acknowledgement to send.
    pub fn incoming(
        call_id: CallId,
        from: &str,
        mode: CallMode,
        wish: Wish,
        now_ms: u64,
    ) -> (Self, Vec<Output>) {
        let call = Self::new(
            from,
            Role::Callee,
            Some(call_id.clone()),
            Some(mode),
            wish,
            Phase::Incoming,
            now_ms,
        );
        (call, vec![Output::Send(ClientMsg::Ringing { call_id })])
    }

    fn new(
        peer: &str,
        role: Role,
        id: Option<CallId>,
        mode: Option<CallMode>,
        wish: Wish,
        phase: Phase,
        now_ms: u64,
    ) -> Self {
        Self {
            id,
            view: View {
                peer: peer.to_string(),
                role,
                mode,
                phase,
                code: None,
                unverifiable: false,
                downgraded: downgrade(mode, wish),
                verified: false,
                relay_down: false,
                connected_at_ms: None,
                cert_check: None,
                hold: HoldState::default(),
                hold_pending: false,
                parked: None,
                referred_by: None,
                group: Vec::new(),
            },
            phase_since_ms: now_ms,
            commit: None,
            local_fp: None,
            remote_fp: None,
            remote_set: false,
            early_ice: Vec::new(),
            pending_offer: None,
            pc_requested: false,
            ready_offer: None,
            offer_sent: false,
            held_ice: Vec::new(),
            wish,
            commit_with: CommitWith::Accept,
            pickup: None,
            consult_of: None,
            add_to: None,
        }
    }

    /// This device picks up the call parked under `code`: a fresh certificate and
    /// peer connection, the commitment sent with `pickup`; the relay answers
    /// `picked-up` with the call, and the person waiting offers to this device.
    pub fn pick_up(code: u8, wish: Wish, now_ms: u64) -> (Self, Vec<Output>) {
        let mut call = Self::new(
            "",
            Role::Callee,
            None,
            None,
            wish,
            Phase::Connecting,
            now_ms,
        );
        call.pickup = Some(code);
        (call, vec![Output::Pc(PcCommand::Create)])
    }

    /// This device takes over the answered standard call `call_id` that another
    /// device of this user carries ("move here"): it makes a fresh certificate and
    /// peer connection, commits with `move-here`, and answers the other person's
    /// fresh offer. Returns the machine and what to do.
    pub fn take_over(
        call_id: CallId,
        peer: &str,
        mode: CallMode,
        wish: Wish,
        now_ms: u64,
    ) -> (Self, Vec<Output>) {
        Self::committing(CommitWith::MoveHere, call_id, peer, mode, wish, now_ms)
    }

    /// The callee side of a leg of `call_id` with `peer` that this device
    /// joins by committing with `with`: a fresh certificate and peer
    /// connection first; the other side offers once the commitment is sent.
    fn committing(
        with: CommitWith,
        call_id: CallId,
        peer: &str,
        mode: CallMode,
        wish: Wish,
        now_ms: u64,
    ) -> (Self, Vec<Output>) {
        let mut call = Self::new(
            peer,
            Role::Callee,
            Some(call_id),
            Some(mode),
            wish,
            Phase::Connecting,
            now_ms,
        );
        call.commit_with = with;
        (call, vec![Output::Pc(PcCommand::Create)])
    }

    /// The other side of this call moved to a new device (`new-leg`): a fresh
    /// certificate and peer connection, offering to the new device, whose
    /// commitment is `commit`. Nothing of the old leg carries over: the code is
    /// computed afresh and the call is not verified until the people compare it.
    pub fn new_leg(
        call_id: CallId,
        peer: &str,
        mode: CallMode,
        commit: Commitment,
        wish: Wish,
        now_ms: u64,
    ) -> (Self, Vec<Output>) {
        let mut call = Self::new(
            peer,
            Role::Caller,
            Some(call_id),
            Some(mode),
            wish,
            Phase::Connecting,
            now_ms,
        );
        call.commit = Some(commit);
        (call, vec![Output::Pc(PcCommand::Create)])
    }

    /// What the UI shows.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// The relay's call id, once known.
    pub fn id(&self) -> Option<&CallId> {
        self.id.as_ref()
    }

    /// Notes who transferred the caller to this user (`incoming` with
    /// `referred_by`), for the ringing screen.
    #[must_use]
    pub fn referred_by(mut self, by: Option<String>) -> Self {
        self.view.referred_by = by;
        self
    }

    /// A pickup that the relay has not answered yet (it knows no call id).
    pub fn awaits_pickup(&self) -> bool {
        self.pickup.is_some() && self.id.is_none() && !self.is_ended()
    }

    /// True once the call is over.
    pub fn is_ended(&self) -> bool {
        matches!(self.view.phase, Phase::Ended(_))
    }

    /// Whether a relay message is about this call.
    pub fn concerns(&self, msg: &RelayMsg) -> bool {
        match (msg, &self.id) {
            (RelayMsg::Calling { to, .. }, None) => *to == self.view.peer,
            (RelayMsg::CallRefused { peer, .. }, None) => *peer == self.view.peer,
            (RelayMsg::PickedUp { code, .. }, None) => self.pickup == Some(*code),
            (msg, Some(id)) => msg.call_id() == Some(id),
            _ => false,
        }
    }

    /// Feeds one input; returns what to do.
    pub fn handle(&mut self, input: Input, now_ms: u64) -> Vec<Output> {
        if self.is_ended() {
            return Vec::new();
        }
        match input {
            Input::Relay(msg) => self.on_relay(msg, now_ms),
            Input::User(action) => self.on_user(action, now_ms),
            Input::PeerReady { local } => self.on_peer_ready(local, now_ms),
            Input::LocalOffer { sdp } => self.on_local_sdp(sdp, true, now_ms),
            Input::LocalAnswer { sdp } => self.on_local_sdp(sdp, false, now_ms),
            Input::LocalIce(candidate) if self.view.role == Role::Caller && !self.offer_sent => {
                if self.held_ice.len() < MAX_EARLY_ICE
                    && (self.in_media_phase() || self.view.phase == Phase::Ringing)
                {
                    self.held_ice.push(candidate);
                }
                Vec::new()
            }
            Input::LocalIce(candidate) => match &self.id {
                Some(call_id) if self.in_media_phase() => {
                    vec![Output::Send(ClientMsg::Ice {
                        call_id: call_id.clone(),
                        candidate,
                    })]
                }
                _ => Vec::new(),
            },
            Input::DtlsConnected { local, remote } => {
                self.on_dtls(CertCheck::Both, local, remote, now_ms)
            }
            Input::DtlsConnectedRemoteOnly { remote } => {
                self.on_dtls(CertCheck::RemoteOnly, self.local_fp, remote, now_ms)
            }
            Input::DtlsConnectedUnobserved => self.on_dtls(
                CertCheck::BrowserOnly,
                self.local_fp,
                self.remote_fp,
                now_ms,
            ),
            Input::PcFailed => self.end_with_hangup(
                Ending::ConnectionFailed,
                HangupReason::ConnectionFailed,
                now_ms,
            ),
            Input::RelayDown => {
                self.view.relay_down = true;
                Vec::new()
            }
            Input::RelayUp => {
                self.view.relay_down = false;
                // Re-attach this device to the call on the (possibly restarted) relay.
                match (&self.id, self.view.mode) {
                    (Some(call_id), Some(mode))
                        if self.in_media_phase() || self.view.phase == Phase::Parked =>
                    {
                        vec![Output::Send(ClientMsg::Resume {
                            call_id: call_id.clone(),
                            peer: self.view.peer.clone(),
                            mode,
                        })]
                    }
                    _ => Vec::new(),
                }
            }
            Input::Tick => self.on_tick(now_ms),
            Input::TransferTo(to) => match &self.id {
                Some(call_id)
                    if self.view.phase == Phase::Connected
                        && self.view.mode == Some(CallMode::Standard) =>
                {
                    vec![Output::Send(ClientMsg::Transfer {
                        call_id: call_id.clone(),
                        to,
                    })]
                }
                _ => Vec::new(),
            },
        }
    }

    fn in_media_phase(&self) -> bool {
        matches!(self.view.phase, Phase::Connecting | Phase::Connected)
    }

    /// An E2EE call: a check that fails ends it, and the indicator may show the
    /// lock. Commitment, pinning and the code are the same in both modes.
    fn is_e2ee(&self) -> bool {
        self.view.mode == Some(CallMode::E2ee)
    }

    /// Whether the commitment and certificate checks that lead to a code apply:
    /// always in an E2EE call (a failure ends it), and in a standard call unless
    /// its SDP carried no single fingerprint.
    fn verifiable(&self) -> bool {
        self.is_e2ee() || !self.view.unverifiable
    }

    fn set_phase(&mut self, phase: Phase, now_ms: u64) {
        self.view.phase = phase;
        self.phase_since_ms = now_ms;
    }

    /// Ends the call locally, closing the peer connection if one may exist.
    fn end(&mut self, ending: Ending, now_ms: u64) -> Vec<Output> {
        let had_pc = self.local_fp.is_some() || self.pc_requested || self.in_media_phase();
        self.view.code = None;
        self.set_phase(Phase::Ended(ending), now_ms);
        if had_pc {
            vec![Output::Pc(PcCommand::Close)]
        } else {
            Vec::new()
        }
    }

    /// Ends the call and tells the other side why.
    fn end_with_hangup(
        &mut self,
        ending: Ending,
        reason: HangupReason,
        now_ms: u64,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        if let Some(call_id) = self.id.clone() {
            let msg = match self.view.phase {
                Phase::Inviting | Phase::Ringing => ClientMsg::Cancel { call_id },
                Phase::Incoming => ClientMsg::Decline { call_id },
                _ => ClientMsg::Hangup { call_id, reason },
            };
            out.push(Output::Send(msg));
        }
        out.extend(self.end(ending, now_ms));
        out
    }

    fn mitm(&mut self, warning: Warning, now_ms: u64) -> Vec<Output> {
        let reason = if warning == Warning::Unverifiable {
            HangupReason::Unverifiable
        } else {
            HangupReason::Mitm
        };
        self.end_with_hangup(Ending::Mitm(warning), reason, now_ms)
    }

    fn on_user(&mut self, action: UserAction, now_ms: u64) -> Vec<Output> {
        match (action, &self.view.phase) {
            (UserAction::Accept, Phase::Incoming) => {
                self.set_phase(Phase::Connecting, now_ms);
                vec![Output::Pc(PcCommand::Create)]
            }
            (UserAction::Decline, Phase::Incoming) => {
                self.end_with_hangup(Ending::Declined, HangupReason::Normal, now_ms)
            }
            (UserAction::Hangup, Phase::Inviting) if self.id.is_none() => {
                self.end(Ending::Cancelled, now_ms)
            }
            (UserAction::Hangup, Phase::Inviting | Phase::Ringing) => {
                self.end_with_hangup(Ending::Cancelled, HangupReason::Normal, now_ms)
            }
            (UserAction::Hangup, Phase::Incoming) => {
                self.end_with_hangup(Ending::Declined, HangupReason::Normal, now_ms)
            }
            (UserAction::Hangup, Phase::Connecting | Phase::Connected | Phase::Parked) => {
                self.end_with_hangup(Ending::HungUp { by_me: true }, HangupReason::Normal, now_ms)
            }
            (UserAction::CodesMatch, Phase::Connected) if self.view.code.is_some() => {
                self.view.verified = true;
                Vec::new()
            }
            (UserAction::CodesDiffer, Phase::Connected) if self.view.code.is_some() => {
                self.mitm(Warning::CodesDiffer, now_ms)
            }
            (UserAction::Park, Phase::Connected) if self.view.mode == Some(CallMode::Standard) => {
                match &self.id {
                    Some(call_id) => vec![Output::Send(ClientMsg::Park {
                        call_id: call_id.clone(),
                    })],
                    None => Vec::new(),
                }
            }
            // Hold is a standard-call feature: an E2EE call never asks.
            (UserAction::Hold | UserAction::Unhold, Phase::Connected)
                if self.view.mode == Some(CallMode::Standard) && !self.view.hold_pending =>
            {
                let on = action == UserAction::Hold;
                match &self.id {
                    Some(call_id) if on != self.view.hold.by_me => {
                        self.view.hold_pending = true;
                        vec![Output::Send(ClientMsg::Hold {
                            call_id: call_id.clone(),
                            on,
                        })]
                    }
                    _ => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }

    fn on_relay(&mut self, msg: RelayMsg, now_ms: u64) -> Vec<Output> {
        match msg {
            RelayMsg::Calling { call_id, mode, .. } if self.view.phase == Phase::Inviting => {
                self.id = Some(call_id);
                self.view.mode = Some(mode);
                self.view.downgraded = downgrade(Some(mode), self.wish);
                self.set_phase(Phase::Ringing, now_ms);
                // Certificate, peer connection, camera and offer are made while
                // it rings; nothing of them leaves before the callee commits.
                self.pc_requested = true;
                vec![Output::Pc(PcCommand::Create)]
            }
            RelayMsg::Ringing { .. } => Vec::new(),
            RelayMsg::CallRefused {
                reason,
                required_by,
                call_id,
                ..
            } => {
                self.id.get_or_insert(call_id);
                let ending = match reason {
                    RefuseReason::Declined => Ending::Declined,
                    reason => Ending::Refused {
                        reason,
                        required_by,
                    },
                };
                self.end(ending, now_ms)
            }
            RelayMsg::Accepted { commit, .. }
                if self.view.role == Role::Caller && self.view.phase == Phase::Ringing =>
            {
                // Every call commits, standard ones too: a missing commitment
                // is an attack in either mode.
                match commit {
                    None => self.mitm(Warning::CommitmentMismatch, now_ms),
                    Some(c) => {
                        // Step 2: we hold the commitment before anything that
                        // names our certificate has left (our certificate may
                        // exist: it was fixed without knowing the callee's).
                        self.commit = Some(c);
                        self.set_phase(Phase::Connecting, now_ms);
                        match self.ready_offer.take() {
                            Some(sdp) => self.send_offer(sdp),
                            // Still being made: it leaves when it is ready.
                            None if self.pc_requested => Vec::new(),
                            None => vec![Output::Pc(PcCommand::Create)],
                        }
                    }
                }
            }
            RelayMsg::AnsweredElsewhere { .. } if self.view.phase == Phase::Incoming => {
                self.end(Ending::AnsweredElsewhere, now_ms)
            }
            RelayMsg::Cancelled { .. }
                if matches!(self.view.phase, Phase::Incoming | Phase::Connecting) =>
            {
                self.end(Ending::Cancelled, now_ms)
            }
            RelayMsg::Offer { sdp, .. }
                if self.view.role == Role::Callee && self.in_media_phase() =>
            {
                self.on_offer(sdp, now_ms)
            }
            RelayMsg::Answer { sdp, .. }
                if self.view.role == Role::Caller && self.in_media_phase() =>
            {
                self.on_answer(sdp, now_ms)
            }
            RelayMsg::Ice { candidate, .. } if self.in_media_phase() => {
                if self.remote_set {
                    vec![Output::Pc(PcCommand::AddIce(candidate))]
                } else {
                    // Held until the remote description is set (Galène does the same).
                    if self.early_ice.len() < MAX_EARLY_ICE {
                        self.early_ice.push(candidate);
                    }
                    Vec::new()
                }
            }
            RelayMsg::Hold { by_me, by_peer, .. }
                if self.in_media_phase() && self.view.mode == Some(CallMode::Standard) =>
            {
                let was = self.view.hold.any();
                self.view.hold = HoldState { by_me, by_peer };
                self.view.hold_pending = false;
                if was == self.view.hold.any() {
                    Vec::new()
                } else {
                    vec![Output::Pc(PcCommand::SetSending(!self.view.hold.any()))]
                }
            }
            RelayMsg::PickedUp {
                call_id,
                peer,
                mode,
                ..
            } if self.pickup.is_some() && self.id.is_none() => {
                self.id = Some(call_id);
                self.view.peer = peer;
                self.view.mode = Some(mode);
                self.view.downgraded = downgrade(Some(mode), self.wish);
                Vec::new()
            }
            RelayMsg::Error { .. } if self.pickup.is_some() && self.id.is_none() => {
                self.end(Ending::PickupFailed, now_ms)
            }
            RelayMsg::Refer { to, .. }
                if self.in_media_phase() && self.view.mode == Some(CallMode::Standard) =>
            {
                // The app calls `to` next, with the refer's token.
                self.end(Ending::Referred { to }, now_ms)
            }
            RelayMsg::Parked { code, .. }
                if self.in_media_phase() && self.view.mode == Some(CallMode::Standard) =>
            {
                self.end(Ending::Parked { code }, now_ms)
            }
            RelayMsg::OnPark { code, .. }
                if self.in_media_phase() && self.view.mode == Some(CallMode::Standard) =>
            {
                // The leg is over; a pickup brings a new one (`new-leg`).
                self.view.parked = Some(code);
                self.view.code = None;
                self.view.verified = false;
                self.view.hold = HoldState::default();
                self.view.connected_at_ms = None;
                self.view.cert_check = None;
                self.set_phase(Phase::Parked, now_ms);
                vec![Output::Pc(PcCommand::Close)]
            }
            RelayMsg::Replaced { peer, .. }
                if self.in_media_phase() && self.view.mode == Some(CallMode::Standard) =>
            {
                // The app joins the call it names next, with a fresh certificate.
                self.end(Ending::Replaced { peer }, now_ms)
            }
            RelayMsg::Error { .. }
                if self.id.is_none()
                    && self.view.phase == Phase::Inviting
                    && (self.consult_of.is_some() || self.add_to.is_some()) =>
            {
                self.end(Ending::NotPlaced, now_ms)
            }
            RelayMsg::Error { .. }
                if self.commit_with != CommitWith::Accept && !self.remote_set =>
            {
                // The relay refused `join`, or `move-here` (the error is shown;
                // a call that did not move stays where it was).
                let ending = match self.commit_with {
                    CommitWith::MoveHere => Ending::NotMoved,
                    _ => Ending::NotJoined,
                };
                self.end(ending, now_ms)
            }
            RelayMsg::Error { .. } if self.view.hold_pending => {
                // The relay refused the hold change (the error is shown).
                self.view.hold_pending = false;
                Vec::new()
            }
            RelayMsg::Hangup { reason, .. } => {
                let ending = match reason {
                    HangupReason::Mitm => Ending::Mitm(Warning::ReportedByPeer),
                    HangupReason::Unverifiable => Ending::Mitm(Warning::Unverifiable),
                    HangupReason::ConnectionFailed => Ending::ConnectionFailed,
                    HangupReason::Moved => Ending::Moved,
                    HangupReason::NotPickedUp => Ending::NotPickedUp,
                    HangupReason::Transferred => Ending::Transferred,
                    HangupReason::Normal | HangupReason::PeerGone => {
                        Ending::HungUp { by_me: false }
                    }
                };
                self.end(ending, now_ms)
            }
            _ => Vec::new(),
        }
    }

    fn on_peer_ready(&mut self, local: Fingerprint, now_ms: u64) -> Vec<Output> {
        let prewarm = self.view.role == Role::Caller && self.view.phase == Phase::Ringing;
        if !(self.view.phase == Phase::Connecting || prewarm) || self.local_fp.is_some() {
            return Vec::new();
        }
        self.local_fp = Some(local);
        let Some(call_id) = self.id.clone() else {
            // A pickup commits before it knows the call.
            return match self.pickup {
                Some(code) => vec![Output::Send(ClientMsg::Pickup {
                    code,
                    commit: Some(Commitment::to(&local)),
                })],
                None => Vec::new(),
            };
        };
        match self.view.role {
            Role::Caller => vec![Output::Pc(PcCommand::CreateOffer)],
            Role::Callee => {
                // Step 1: commit before seeing the offer (in every mode).
                let commit = Some(Commitment::to(&local));
                let msg = match self.commit_with {
                    CommitWith::Accept => ClientMsg::Accept { call_id, commit },
                    CommitWith::MoveHere => ClientMsg::MoveHere { call_id, commit },
                    CommitWith::Join => ClientMsg::Join { call_id, commit },
                };
                let mut out = vec![Output::Send(msg)];
                if let Some(sdp) = self.pending_offer.take() {
                    out.extend(self.on_offer(sdp, now_ms));
                }
                out
            }
        }
    }

    fn on_local_sdp(&mut self, sdp: String, offer: bool, now_ms: u64) -> Vec<Output> {
        let Some(call_id) = self.id.clone() else {
            return Vec::new();
        };
        let prewarm = offer && self.view.phase == Phase::Ringing;
        if !(self.in_media_phase() || prewarm) {
            return Vec::new();
        }
        // Our own SDP must announce the certificate we made for this call, by the
        // same strict rule as the peer's; otherwise there is no code to show.
        if extract_fingerprint(&sdp).ok() != self.local_fp {
            if self.is_e2ee() {
                return self.mitm(Warning::FingerprintMismatch, now_ms);
            }
            self.view.unverifiable = true;
        }
        if prewarm {
            // Held until the callee's commitment arrives (`accepted`).
            self.ready_offer = Some(sdp);
            return Vec::new();
        }
        if offer {
            self.send_offer(sdp)
        } else {
            vec![Output::Send(ClientMsg::Answer { call_id, sdp })]
        }
    }

    /// Sends the caller's offer, then the candidates gathered before it; only
    /// ever once the callee's commitment is held.
    fn send_offer(&mut self, sdp: String) -> Vec<Output> {
        let Some(call_id) = self.id.clone().filter(|_| self.commit.is_some()) else {
            return Vec::new();
        };
        self.offer_sent = true;
        let mut out = vec![Output::Send(ClientMsg::Offer {
            call_id: call_id.clone(),
            sdp,
        })];
        out.extend(self.held_ice.drain(..).map(|candidate| {
            Output::Send(ClientMsg::Ice {
                call_id: call_id.clone(),
                candidate,
            })
        }));
        out
    }

    /// Pins the remote fingerprint of every remote description, the first and
    /// each renegotiation alike, by the strict one-fingerprint rule; any change
    /// ends the call.
    fn pin_remote(&mut self, sdp: &str, now_ms: u64) -> Result<(), Vec<Output>> {
        match extract_fingerprint(sdp) {
            Ok(fp) => match self.remote_fp {
                Some(pinned) if pinned != fp => Err(self.mitm(Warning::FingerprintChanged, now_ms)),
                _ => {
                    self.remote_fp = Some(fp);
                    Ok(())
                }
            },
            Err(_) if self.is_e2ee() => Err(self.mitm(Warning::Unverifiable, now_ms)),
            Err(_) if self.remote_fp.is_some() => {
                Err(self.mitm(Warning::FingerprintChanged, now_ms))
            }
            Err(_) => {
                // A standard call goes on, but without a code to read.
                self.view.unverifiable = true;
                self.view.code = None;
                Ok(())
            }
        }
    }

    fn on_offer(&mut self, sdp: String, now_ms: u64) -> Vec<Output> {
        if self.local_fp.is_none() {
            // Our certificate is still being made; the offer waits for it.
            self.pending_offer = Some(sdp);
            return Vec::new();
        }
        if let Err(out) = self.pin_remote(&sdp, now_ms) {
            return out;
        }
        self.remote_set = true;
        let mut out = vec![Output::Pc(PcCommand::AcceptOffer { sdp })];
        out.extend(
            self.early_ice
                .drain(..)
                .map(|c| Output::Pc(PcCommand::AddIce(c))),
        );
        out
    }

    fn on_answer(&mut self, sdp: String, now_ms: u64) -> Vec<Output> {
        if let Err(out) = self.pin_remote(&sdp, now_ms) {
            return out;
        }
        // Step 2, end: the answer's certificate must be the committed one, in
        // every mode (a standard call whose answer is unverifiable has no code).
        let opens = match (self.commit, self.remote_fp) {
            (Some(c), Some(fp)) => c.opens_to(&fp),
            _ => false,
        };
        if !opens && self.verifiable() {
            return self.mitm(Warning::CommitmentMismatch, now_ms);
        }
        self.remote_set = true;
        let mut out = vec![Output::Pc(PcCommand::SetAnswer { sdp })];
        out.extend(
            self.early_ice
                .drain(..)
                .map(|c| Output::Pc(PcCommand::AddIce(c))),
        );
        out
    }

    fn on_dtls(
        &mut self,
        check: CertCheck,
        local: Option<Fingerprint>,
        remote: Option<Fingerprint>,
        now_ms: u64,
    ) -> Vec<Output> {
        if !self.in_media_phase() {
            return Vec::new();
        }
        self.view.cert_check = Some(check);
        let matches = local.is_some()
            && local == self.local_fp
            && remote.is_some()
            && remote == self.remote_fp;
        if !self.verifiable() {
            // No single fingerprint to compare with; a certificate the browser
            // reports is still compared with what the SDP pinned, if anything.
            if remote.is_some() && self.remote_fp.is_some() && remote != self.remote_fp {
                return self.mitm(Warning::FingerprintMismatch, now_ms);
            }
        } else {
            if !matches {
                return self.mitm(Warning::FingerprintMismatch, now_ms);
            }
            if let (Some(l), Some(r)) = (self.local_fp, self.remote_fp) {
                match security_code(&l, &r) {
                    Ok(code) => self.view.code = Some(code),
                    // Both sides with one certificate: a reflection, not a call.
                    Err(_) => return self.mitm(Warning::FingerprintMismatch, now_ms),
                }
            }
        }
        if self.view.phase != Phase::Connected {
            self.view.connected_at_ms = Some(now_ms);
            self.set_phase(Phase::Connected, now_ms);
        }
        Vec::new()
    }

    fn on_tick(&mut self, now_ms: u64) -> Vec<Output> {
        let waited = now_ms.saturating_sub(self.phase_since_ms);
        match self.view.phase {
            Phase::Inviting | Phase::Ringing if waited >= RING_TIMEOUT_MS => self.end_with_hangup(
                Ending::Refused {
                    reason: RefuseReason::NoAnswer,
                    required_by: None,
                },
                HangupReason::Normal,
                now_ms,
            ),
            Phase::Connecting if waited >= CONNECT_TIMEOUT_MS => self.end_with_hangup(
                Ending::ConnectionFailed,
                HangupReason::ConnectionFailed,
                now_ms,
            ),
            _ => Vec::new(),
        }
    }
}

/// The warning a call of `mode` deserves under this user's `wish`.
fn downgrade(mode: Option<CallMode>, wish: Wish) -> Option<Wish> {
    (mode == Some(CallMode::Standard) && wish != Wish::None).then_some(wish)
}

/// Remote candidates kept before the remote description; more are dropped (a
/// normal call has a handful).
const MAX_EARLY_ICE: usize = 64;
