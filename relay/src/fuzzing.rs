//! Entry points for the fuzz targets in `fuzz/`: not an API, hidden from the docs,
//! and nothing in the relay calls them. Each takes arbitrary bytes and must never
//! panic; a panic is a bug the fuzzer found.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shieldcall_proto::{
    CallId, CallMode, ClientMsg, E2eePolicyType, E2eeSetting, RefuseReason, RelayMsg, Status,
};
use tokio::sync::mpsc;

use crate::hub::{CallKey, DeviceId, Hub, Input};
use crate::policy::{self, ExternalAccess, Party, Policy, Refusal};
use crate::ws::OUTBOX;
use crate::ws::frame::{Assembler, apply_mask, parse_header};

/// What [`ws_frames`] returns: the codec's events.
pub use crate::ws::frame::Event;

/// Runs `bytes` through the WebSocket frame codec as the socket does: header,
/// limits checked before the payload, unmasking, reassembly, UTF-8, close
/// payloads. Returns the events decoded until the first protocol error.
pub fn ws_frames(bytes: &[u8], max_message: usize) -> Vec<Event> {
    let mut events = Vec::new();
    let mut assembler = Assembler::new(max_message);
    let mut at = 0;
    while at < bytes.len() {
        let Ok(Some(h)) = parse_header(&bytes[at..]) else {
            break;
        };
        if assembler.check(&h).is_err() {
            break;
        }
        let Some(len) = h.frame_len() else { break };
        let Some(frame) = bytes.get(at..at.saturating_add(len)) else {
            break;
        };
        let mut payload = frame[h.header_len..].to_vec();
        apply_mask(&mut payload, h.mask);
        match assembler.push(&h, payload) {
            Ok(Some(e)) => events.push(e),
            Ok(None) => {}
            Err(_) => break,
        }
        at += len;
    }
    events
}

/// The users of [`hub_messages`], with the `Global` policy of their tenant.
const USERS: [(&str, E2eePolicyType); 4] = [
    ("alice@a.example", E2eePolicyType::EnabledUserOverride),
    ("bob@a.example", E2eePolicyType::DisabledUserOverride),
    ("carol@b.example", E2eePolicyType::Required),
    ("dave@c.example", E2eePolicyType::Disabled),
];

/// An account that never signs in: invites to it reach the hub's offline path.
const OFFLINE: &str = "erin@b.example";

/// The tenants' domains.
const DOMAINS: [&str; 3] = ["a.example", "b.example", "c.example"];

/// Which user each device slot belongs to, and the slot's session.
const SLOTS: [(usize, &str); 6] = [
    (0, "s0"),
    (0, "s1"),
    (1, "s2"),
    (1, "s3"),
    (2, "s4"),
    (3, "s5"),
];

/// The relay's defaults (`Config`): ring timeout and reconnect grace.
const RING: Duration = Duration::from_secs(45);
const GRACE: Duration = Duration::from_secs(30);
const PARK: Duration = Duration::from_secs(300);

/// Script lines run per input; the rest is ignored.
const MAX_LINES: usize = 256;

/// One connected device of the harness: what the connection task holds.
struct Device {
    id: DeviceId,
    rx: mpsc::Receiver<Arc<RelayMsg>>,
    overflow: Arc<AtomicBool>,
}

/// The relay around the hub, as `ws` drives it, with what the checks need.
struct Harness {
    /// The harness's clock: the hub's timers run when it moves on.
    now: Instant,
    hub: Arc<Hub>,
    /// Outbox size of new devices.
    cap: usize,
    devices: [Option<Device>; SLOTS.len()],
    /// Each user's stored switch.
    switch: [Option<bool>; USERS.len()],
    /// The accounts, as last given to the hub.
    accounts: Vec<String>,
    /// The ids of the calls invited, in order: `"c<n>"` in a frame names the n-th.
    calls: Vec<CallId>,
    /// Ids minted for calls of a relay life before a restart: `"r<n>"` in a frame
    /// names the one for pair and mode n (see [`Harness::resolve`]).
    earlier: HashMap<u32, CallId>,
    /// The call ids each user was named in (invite, either side) or resumed: a
    /// message about any other call reaching them is a leak.
    known: [HashSet<String>; USERS.len()],
}

/// Runs the relay's message handling (`crate::hub`, as `ws` calls it) on a script.
///
/// The first byte picks the outbox size (even: the relay's `OUTBOX`, odd: 4, to
/// reach the overflow path). Then each line (split on `\n`) is one step: its first
/// byte `op` names the step (`op >> 4`) and a device slot (`op & 15`, modulo 6:
/// two devices of alice, two of bob, one of carol, one of dave), the rest is its
/// argument.
///
/// - `0..=7`: the rest is a client frame from that device, decoded with
///   [`ClientMsg::decode`]. Call ids are minted by the relay and unguessable, so a
///   `call_id` of `c<n>` stands for the n-th call invited and `r<n>` for an id the
///   relay minted before a restart (pair and mode n); any other id is used as is.
///   An `invite` (after the connection's checks) and a `resume` of an unknown call
///   take their decision from `op >> 4` (1: E2EE, 2: standard, 3: not allowed, 4:
///   E2EE required; else [`policy::decide_call`]), and so does `move-here`,
///   `consult` and `consult-transfer` (whose `consult` id resolves as `call_id`
///   does). Every message the hub handles goes to [`Hub::handle`] as the
///   connection sends it (`resume` as [`Input::Resume`], call messages as
///   [`Input::Call`]); `set-e2ee` goes to [`Hub::may_switch`] and
///   [`Hub::push_settings`].
/// - `8`: the device disconnects ([`Hub::unregister`]); `9`: it connects again
///   ([`Hub::register`], then [`Hub::contacts_of`] as `hello` does).
/// - `10`: its outbox is read (a full outbox or a dropped sender closes it, as the
///   connection does); `11`: [`Hub::flush_presence`]; `12`: time goes forward by
///   the rest's first byte in seconds, running the ring and grace timers; `13`: a
///   directory refresh ([`Hub::set_directory`] and [`Hub::set_calling_policies`],
///   variant `op & 15`); `14`: sign-out
///   of the device's user (only its session if the rest is not empty); `15`:
///   the read-only queries.
///
/// At the end every device disconnects and time passes every timer; then nobody
/// may be left in a call, no restore claim may be left, and every call history
/// record names two people of the harness. Checked throughout: every frame
/// queued for a device decodes as a [`RelayMsg`], no contact list names its own
/// user, and a message about a call only reaches a user named in it.
///
/// Time is the harness's own clock, given to the hub (it never sleeps).
pub fn hub_messages(data: &[u8]) {
    let Some((&first, script)) = data.split_first() else {
        return;
    };
    let Ok(key) = CallKey::random() else {
        return;
    };
    let mut h = Harness {
        now: Instant::now(),
        hub: Hub::new(crate::hub::Config {
            ring_timeout: RING,
            grace: GRACE,
            park_timeout: PARK,
            key,
        }),
        cap: if first & 1 == 0 { OUTBOX } else { 4 },
        devices: std::array::from_fn(|_| None),
        switch: [None; USERS.len()],
        accounts: Vec::new(),
        calls: Vec::new(),
        earlier: HashMap::new(),
        known: Default::default(),
    };
    // `serve` refreshes the directory before it accepts connections.
    h.directory(0);
    for slot in 0..SLOTS.len() {
        h.register(slot);
    }
    for line in script.split(|&b| b == b'\n').take(MAX_LINES) {
        let Some((&op, rest)) = line.split_first() else {
            continue;
        };
        let slot = usize::from(op & 0x0f) % SLOTS.len();
        match op >> 4 {
            kind @ 0..=7 => {
                if let Ok(text) = std::str::from_utf8(rest) {
                    h.message(slot, kind, text);
                }
            }
            8 => h.unregister(slot),
            9 => h.register(slot),
            10 => h.drain(slot),
            11 => h.hub.flush_presence(),
            12 => h.advance(u64::from(rest.first().copied().unwrap_or(1))),
            13 => h.directory(usize::from(op & 0x0f)),
            14 => {
                let (user, session) = SLOTS[slot];
                let only = (!rest.is_empty()).then_some(session);
                h.hub.sign_out(USERS[user].0, only);
            }
            _ => h.queries(slot),
        }
    }
    h.hub.flush_presence();
    for slot in 0..SLOTS.len() {
        h.drain(slot);
        h.unregister(slot);
    }
    // A park times out, then its ring-back: every timer has run.
    h.advance(PARK.as_secs() + RING.max(GRACE).as_secs() + 1);
    h.hub.flush_presence();
    assert_eq!(h.hub.restoring(), 0, "restore claims outlived the grace");
    // Every device is gone and every timer ran: every call ended. Back online,
    // nobody shows busy.
    for slot in [0, 2, 4, 5] {
        h.register(slot);
    }
    // Every history record is about two people of the harness, and not one
    // person with themself.
    for r in h.hub.take_history() {
        assert!(
            user_index(&r.user).is_some() && user_index(&r.peer).is_some() && r.user != r.peer,
            "a history record names someone outside the call: {r:?}"
        );
    }
    for (user, _) in USERS {
        for p in h.hub.contacts_of(user) {
            assert_ne!(
                p.status,
                Status::Busy,
                "{} is still in a call with every device gone",
                p.user
            );
        }
    }
}

/// The call id a message carries, to substitute placeholders.
fn call_id_mut(msg: &mut ClientMsg) -> Option<&mut CallId> {
    match msg {
        ClientMsg::Ringing { call_id }
        | ClientMsg::Accept { call_id, .. }
        | ClientMsg::Decline { call_id }
        | ClientMsg::Cancel { call_id }
        | ClientMsg::Offer { call_id, .. }
        | ClientMsg::Answer { call_id, .. }
        | ClientMsg::Ice { call_id, .. }
        | ClientMsg::Hangup { call_id, .. }
        | ClientMsg::Resume { call_id, .. }
        | ClientMsg::Hold { call_id, .. }
        | ClientMsg::MoveHere { call_id, .. }
        | ClientMsg::Park { call_id }
        | ClientMsg::Transfer { call_id, .. }
        | ClientMsg::Consult { call_id, .. }
        | ClientMsg::Add { call_id, .. }
        | ClientMsg::Record { call_id, .. }
        | ClientMsg::Captions { call_id, .. }
        | ClientMsg::MediaOffer { call_id, .. }
        | ClientMsg::Join { call_id, .. }
        | ClientMsg::Feature { call_id, .. } => Some(call_id),
        // Its second id is resolved by the arm that handles it.
        ClientMsg::ConsultTransfer { call_id, .. } | ClientMsg::Merge { call_id, .. } => {
            Some(call_id)
        }
        ClientMsg::Hello { .. }
        | ClientMsg::Ping { .. }
        | ClientMsg::SetE2ee { .. }
        | ClientMsg::Invite { .. }
        | ClientMsg::Voicemail { .. }
        | ClientMsg::Pickup { .. } => None,
    }
}

/// The index of a user of the harness, `USERS.len()` for the offline account.
fn user_index(name: &str) -> Option<usize> {
    USERS
        .iter()
        .position(|(u, _)| *u == name)
        .or((name == OFFLINE).then_some(USERS.len()))
}

impl Harness {
    /// A user's setting under their tenant's `Global` policy and their switch
    /// (`USERS.len()`: the offline account, `DisabledUserOverride`, never set).
    fn setting(&self, user: usize) -> E2eeSetting {
        let (name, kind) = USERS
            .get(user)
            .copied()
            .unwrap_or((OFFLINE, E2eePolicyType::DisabledUserOverride));
        let global = Policy {
            identity: policy::GLOBAL.into(),
            description: String::new(),
            calling_e2ee: kind,
        };
        let switch = self.switch.get(user).copied().flatten();
        policy::effective_setting(&[global], &[], name, &[], switch)
    }

    fn register(&mut self, slot: usize) {
        if self.devices[slot].is_some() {
            return;
        }
        let (user, session) = SLOTS[slot];
        let (tx, rx) = mpsc::channel(self.cap);
        let overflow = Arc::new(AtomicBool::new(false));
        let name = USERS[user].0;
        let setting = self.setting(user);
        let Some(id) = self
            .hub
            .register(name, session, setting, tx, overflow.clone())
        else {
            return;
        };
        self.devices[slot] = Some(Device { id, rx, overflow });
        let contacts = self.hub.contacts_of(name);
        assert!(
            contacts.iter().all(|p| p.user != name),
            "{name} is their own contact"
        );
        // `hello` ends with the call this user has on another device, if any: it
        // must be one of theirs.
        if let Some(m) = self.hub.elsewhere_of(name, id) {
            observe(&self.known[user], name, &m.encode());
        }
    }

    fn unregister(&mut self, slot: usize) {
        if let Some(d) = self.devices[slot].take() {
            self.hub.unregister(self.now, d.id, USERS[SLOTS[slot].0].0);
        }
    }

    /// Reads the device's outbox as the connection does: a frame while the
    /// overflow flag is set, or the hub dropping the sender, ends the connection.
    fn drain(&mut self, slot: usize) {
        let user = SLOTS[slot].0;
        let Some(d) = self.devices[slot].as_mut() else {
            return;
        };
        let mut close = false;
        loop {
            match d.rx.try_recv() {
                Ok(msg) => {
                    if d.overflow.load(Ordering::Relaxed) {
                        close = true;
                        break;
                    }
                    // Encoded as the connection encodes it.
                    observe(&self.known[user], USERS[user].0, &msg.encode());
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    close = true;
                    break;
                }
            }
        }
        if close {
            self.unregister(slot);
        }
    }

    /// Lets `secs` seconds pass: every timer due runs, in order, each at its
    /// deadline (as the driver in `serve` runs them).
    fn advance(&mut self, secs: u64) {
        let until = self.now + Duration::from_secs(secs);
        while let Some(at) = self.hub.poll_timeout().filter(|&at| at <= until) {
            self.now = self.now.max(at);
            self.hub.handle_timeout(self.now);
        }
        self.now = until;
    }

    fn directory(&mut self, variant: usize) {
        let [a, b, _] = DOMAINS;
        let list = |d: &str| ExternalAccess::AllowList {
            domains: vec![d.to_string()],
        };
        let modes = match variant % 4 {
            0 => [
                ExternalAccess::AllowAll,
                ExternalAccess::AllowAll,
                ExternalAccess::AllowAll,
            ],
            1 => [list(b), list(a), ExternalAccess::Block],
            2 => [
                ExternalAccess::Block,
                ExternalAccess::AllowAll,
                ExternalAccess::AllowAll,
            ],
            _ => [
                ExternalAccess::AllowAll,
                ExternalAccess::Block,
                list("A.EXAMPLE"),
            ],
        };
        let access: HashMap<String, ExternalAccess> = DOMAINS
            .iter()
            .map(|d| (*d).to_string())
            .zip(modes)
            .collect();
        let mut accounts: Vec<String> = USERS.iter().map(|(u, _)| (*u).to_string()).collect();
        accounts.push(OFFLINE.to_string());
        if variant & 4 != 0 {
            // Carol's and erin's accounts are deleted.
            accounts.retain(|u| !u.ends_with("@b.example"));
        }
        self.accounts.clone_from(&accounts);
        self.hub.set_directory(access, accounts);
        // Variant 8: the first tenant turns recording, captions and voicemail
        // off (stopping what runs), the others keep the default; else all do.
        let off = crate::policy::CallingPolicy {
            allow_cloud_recording_for_calls: false,
            allow_transcription_for_calling: false,
            allow_voicemail: false,
        };
        let calling = if variant & 8 != 0 {
            [(DOMAINS[0].to_string(), off)].into()
        } else {
            HashMap::new()
        };
        self.hub.set_calling_policies(calling);
    }

    /// The id a frame's `call_id` stands for: `c<n>` the n-th call invited, `r<n>`
    /// an id minted before a restart for caller `n % 5`, callee `n / 5 % 5` (the
    /// users, then the offline account) in mode `n / 25 % 2` (E2EE, standard).
    fn resolve(&mut self, id: &mut CallId) {
        if let Some(i) = id.0.strip_prefix('c').and_then(|n| n.parse::<usize>().ok()) {
            if let Some(real) = self.calls.get(i) {
                id.clone_from(real);
            }
            return;
        }
        let Some(n) = id.0.strip_prefix('r').and_then(|n| n.parse::<u32>().ok()) else {
            return;
        };
        if let Some(real) = self.earlier.get(&n) {
            id.clone_from(real);
            return;
        }
        let name = |i: u32| {
            usize::try_from(i % 5)
                .ok()
                .and_then(|i| USERS.get(i))
                .map_or(OFFLINE, |u| u.0)
        };
        let mode = if (n / 25).is_multiple_of(2) {
            CallMode::E2ee
        } else {
            CallMode::Standard
        };
        let Ok(real) = self.hub.mint_call_id(name(n), name(n / 5), mode) else {
            return;
        };
        self.earlier.insert(n, real.clone());
        *id = real;
    }

    fn message(&mut self, slot: usize, kind: u8, text: &str) {
        let Some(dev) = self.devices[slot].as_ref().map(|d| d.id) else {
            return;
        };
        let user = SLOTS[slot].0;
        let name = USERS[user].0;
        let Ok(mut msg) = ClientMsg::decode(text) else {
            return;
        };
        if let Some(id) = call_id_mut(&mut msg) {
            self.resolve(id);
        }
        let merge = matches!(msg, ClientMsg::Merge { .. });
        let result = match msg {
            // Answered by the connection itself.
            ClientMsg::Hello { .. } | ClientMsg::Ping { .. } => Ok(()),
            ClientMsg::SetE2ee { enabled } => {
                let now = self.now;
                if self.hub.may_switch(name, now) && USERS[user].1.user_can_change() {
                    self.switch[user] = Some(enabled);
                    self.hub.push_settings(name, &self.setting(user));
                }
                Ok(())
            }
            ClientMsg::Invite { to, .. } => {
                self.invite(dev, user, &to, kind, None);
                Ok(())
            }
            ClientMsg::Consult { call_id, to } => {
                self.invite(dev, user, &to, kind, Some(call_id));
                Ok(())
            }
            // `Conn::consult_transfer` (and with `merge`): the decision for the
            // two it would join.
            ClientMsg::ConsultTransfer { call_id, consult }
            | ClientMsg::Merge { call_id, consult } => {
                self.consult_transfer(dev, name, kind, &call_id, consult, merge)
            }
            msg @ ClientMsg::Join { .. } => self.hub.handle(self.now, dev, Input::Join(&msg)),
            // `Conn::media_offer`: the hub's word, then the media component.
            ClientMsg::MediaOffer {
                call_id, captions, ..
            } => self
                .hub
                .media_leg(dev, name, &call_id, captions)
                .map(|_| ()),
            // `Conn::voicemail`: an account, the pair's decision, a new id.
            ClientMsg::Voicemail { to } => match user_index(&to) {
                Some(t) if t < USERS.len() && to != name => {
                    let decision = self.decide(kind, name, &to);
                    match self.hub.mint_call_id(name, &to, CallMode::Standard) {
                        Ok(id) => {
                            self.calls.push(id.clone());
                            self.known[user].insert(id.0.clone());
                            let to = &to;
                            let input = Input::Voicemail { to, decision, id };
                            self.hub.handle(self.now, dev, input)
                        }
                        Err(_) => Ok(()),
                    }
                }
                _ => Ok(()),
            },
            // `Conn::add`: a newcomer who is an account, a decision with each member.
            ClientMsg::Add { call_id, to } => match user_index(&to) {
                Some(t) if t < USERS.len() && self.accounts.contains(&to) => {
                    let members = self.hub.call_members(&call_id, name).unwrap_or_default();
                    let decisions: Vec<_> = members
                        .iter()
                        .filter(|m| **m != to)
                        .map(|m| (m.clone(), self.decide(kind, m, &to)))
                        .collect();
                    match self.hub.mint_call_id(name, &to, CallMode::Standard) {
                        Ok(id) => {
                            self.calls.push(id.clone());
                            self.known[user].insert(id.0.clone());
                            self.known[t].insert(id.0.clone());
                            let input = Input::Add {
                                id: &call_id,
                                to: &to,
                                decisions: &decisions,
                                call_id: id,
                            };
                            self.hub.handle(self.now, dev, input)
                        }
                        Err(_) => Ok(()),
                    }
                }
                _ => Ok(()),
            },
            msg @ ClientMsg::Resume { .. } => self.resume(dev, user, kind, msg),
            // `Conn::move_here`: the pair's decision now, then the hub.
            // `Conn::pickup` and the `park` arm of `Conn::handle`.
            msg @ ClientMsg::Pickup { .. } => {
                let peer = match &msg {
                    ClientMsg::Pickup { code, .. } => self.hub.parked_peer(*code),
                    _ => None,
                };
                let decision = peer
                    .filter(|p| p != name)
                    .map(|p| self.decide(kind, name, &p));
                let input = Input::Pickup {
                    msg: &msg,
                    decision,
                };
                self.hub.handle(self.now, dev, input)
            }
            ClientMsg::Park { call_id } => {
                let input = Input::Park {
                    id: &call_id,
                    code: None,
                };
                self.hub.handle(self.now, dev, input)
            }
            // `Conn::transfer`: a target that is an account other than the two,
            // reachable by both; the decision for the peer and the target.
            ClientMsg::Transfer { call_id, to } => {
                let peer = self.hub.call_peer(&call_id, name);
                match (peer, user_index(&to)) {
                    (Some(peer), Some(t)) if t < USERS.len() && to != peer && to != name => {
                        let allowed = self.decide(kind, &peer, &to).is_ok();
                        let input = Input::Transfer {
                            id: &call_id,
                            target: &to,
                            allowed,
                        };
                        self.hub.handle(self.now, dev, input)
                    }
                    _ => Ok(()),
                }
            }
            msg @ ClientMsg::MoveHere { .. } => {
                let peer = msg.call_id().and_then(|id| self.hub.call_peer(id, name));
                let decision = peer.map(|p| self.decide(kind, name, &p));
                let input = Input::MoveHere {
                    msg: &msg,
                    decision,
                };
                self.hub.handle(self.now, dev, input)
            }
            other => self.hub.handle(self.now, dev, Input::Call(other)),
        };
        // Legs of a group call are made by the relay (an answered add, a
        // merge): their people are named in them from then on.
        for (u, (member, _)) in USERS.iter().enumerate() {
            for id in self.hub.calls_of_user(member) {
                self.known[u].insert(id.0);
            }
        }
        if let Err(e) = result {
            let reply = e.into_msg().encode();
            assert!(RelayMsg::decode(&reply).is_ok(), "bad reply {reply}");
        }
    }

    /// The call decision for `caller` calling `callee`: forced by `kind` 1 to 4,
    /// else made from the settings and external access, as `Conn::decide` does.
    fn decide(&self, kind: u8, caller: &str, callee: &str) -> Result<CallMode, Refusal> {
        match kind {
            1 => return Ok(CallMode::E2ee),
            2 => return Ok(CallMode::Standard),
            3 => {
                return Err(Refusal {
                    reason: RefuseReason::NotAllowed,
                    required_by: None,
                });
            }
            4 => {
                return Err(Refusal {
                    reason: RefuseReason::E2eeRequired,
                    required_by: Some(callee.to_string()),
                });
            }
            _ => {}
        }
        let setting = |u: &str| self.setting(user_index(u).unwrap_or(USERS.len()));
        let (cs, es) = (setting(caller), setting(callee));
        let ca = self.hub.external_access(policy::domain_of(caller));
        let ea = self.hub.external_access(policy::domain_of(callee));
        policy::decide_call(
            Party {
                user: caller,
                setting: &cs,
                access: &ca,
            },
            Party {
                user: callee,
                setting: &es,
                access: &ea,
            },
        )
    }

    /// `Conn::invite`: the connection's checks (the name, a self-call, external
    /// access, the account), then the decision, a minted id and the hub.
    fn invite(&mut self, dev: DeviceId, user: usize, to: &str, kind: u8, consult: Option<CallId>) {
        let caller = USERS[user].0;
        let Ok(callee) = crate::ops::normalize_user(to) else {
            return;
        };
        if callee == caller {
            return;
        }
        let (me, them) = (policy::domain_of(caller), policy::domain_of(&callee));
        let reachable = policy::reachable(
            me,
            &self.hub.external_access(me),
            them,
            &self.hub.external_access(them),
        );
        if !reachable || !self.accounts.contains(&callee) {
            return;
        }
        let decision = self.decide(kind, caller, &callee);
        let mode = decision.as_ref().map_or(CallMode::Standard, |m| *m);
        let Ok(id) = self.hub.mint_call_id(caller, &callee, mode) else {
            return;
        };
        self.calls.push(id.clone());
        self.known[user].insert(id.0.clone());
        if let Some(e) = user_index(&callee).filter(|&e| e < USERS.len()) {
            self.known[e].insert(id.0.clone());
        }
        let input = match &consult {
            // `Conn::invite` with `Via::Consult`.
            Some(held) => Input::Consult {
                held,
                callee: &callee,
                decision,
                call_id: id,
            },
            None => Input::Invite {
                callee: &callee,
                decision,
                call_id: id,
                referred_by: None,
            },
        };
        if let Err(e) = self.hub.handle(self.now, dev, input) {
            let reply = e.into_msg().encode();
            assert!(RelayMsg::decode(&reply).is_ok(), "bad reply {reply}");
        }
    }

    /// `Conn::consult_transfer`: the decision for the two people it would join
    /// (or merge), then the hub.
    fn consult_transfer(
        &mut self,
        dev: DeviceId,
        name: &str,
        kind: u8,
        held: &CallId,
        mut consult: CallId,
        merge: bool,
    ) -> Result<(), crate::hub::WireError> {
        self.resolve(&mut consult);
        let pair = self.hub.consult_pair(held, &consult, name);
        let decision = pair.as_ref().map(|(w, t)| self.decide(kind, w, t));
        let consult = &consult;
        let input = if merge {
            Input::Merge {
                held,
                consult,
                decision,
            }
        } else {
            Input::ConsultTransfer {
                held,
                consult,
                decision,
            }
        };
        self.hub.handle(self.now, dev, input)
    }

    /// `Conn::resume`: for a call the hub does not know, the decision made again.
    fn resume(
        &mut self,
        dev: DeviceId,
        user: usize,
        kind: u8,
        msg: ClientMsg,
    ) -> Result<(), crate::hub::WireError> {
        let name = USERS[user].0;
        let decision = match &msg {
            ClientMsg::Resume { call_id, peer, .. } => {
                self.known[user].insert(call_id.0.clone());
                let account = crate::ops::normalize_user(peer).is_ok_and(|p| p == *peer)
                    && self.accounts.contains(peer);
                (!self.hub.knows_call(call_id) && account).then(|| self.decide(kind, name, peer))
            }
            _ => None,
        };
        self.hub
            .handle(self.now, dev, Input::Resume { msg, decision })
    }

    fn queries(&self, slot: usize) {
        let name = USERS[SLOTS[slot].0].0;
        let contacts = self.hub.contacts_of(name);
        assert!(
            contacts.iter().all(|p| p.user != name),
            "{name} is their own contact"
        );
        let sessions = self.hub.online_sessions();
        let users = self.hub.online_users();
        assert!(
            sessions.iter().all(|(u, _)| users.contains(u)),
            "a session without its user online"
        );
    }
}

/// Checks one frame queued for a device of `user`, who was named in the calls `known`.
fn observe(known: &HashSet<String>, user: &str, text: &str) {
    let msg = match RelayMsg::decode(text) {
        Ok(msg) => msg,
        Err(e) => panic!("the relay queued a frame clients cannot decode ({e}): {text}"),
    };
    let call = match &msg {
        RelayMsg::Presence { contacts } => {
            assert!(
                contacts.iter().all(|p| p.user != user),
                "{user} got their own presence"
            );
            None
        }
        // An error answers the recipient's own message, whatever call it named.
        RelayMsg::Error { .. } => None,
        other => other.call_id(),
    };
    if let Some(id) = call {
        assert!(
            known.contains(&id.0),
            "{user} got a message about call {id} they are not part of: {text}"
        );
    }
}
