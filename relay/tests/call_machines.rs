//! The relay's hub and the browser's call machine (`shieldcall_web::call`)
//! together, natively: no socket, no browser, one clock. Every client message
//! goes through the wire encoding into the hub, every relay message through the
//! wire encoding into the other machine; peer-connection commands are carried
//! out by a model of a peer connection that announces its certificate in its SDP
//! and "connects DTLS" with the certificate its remote description named.
//!
//! What the browser tests show with real media, this shows for every step of
//! the signalling at once, in milliseconds: one E2EE call with the same code on
//! both machines, a relay that swaps the answer's fingerprint caught by the
//! commitment, a call that rings out on both, hold in a standard call, a
//! second device of the callee that stops ringing when the first accepts, a
//! device that drops and resumes its call within the grace, a relay restart
//! that both machines resume through, and a caller who finds the callee busy.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use shieldcall_proto::{
    CallMode, ClientMsg, E2eePolicyType, E2eeSetting, Fingerprint, IceCandidate, PolicySource,
    RefuseReason, RelayMsg, extract_fingerprint, security_code,
};
use shieldcall_relay::hub::{CallKey, Config, DeviceId, Hub, Input as HubInput};
use shieldcall_web::call::{
    Call, Ending, Input, Output, PcCommand, Phase, UserAction, Warning, Wish,
};
use tokio::sync::mpsc;

const ALICE: &str = "alice@example.test";
const BOB: &str = "bob@example.test";
const CAROL: &str = "carol@example.test";
const RING: Duration = Duration::from_secs(45);
const GRACE: Duration = Duration::from_secs(30);

fn sdp(fp: &Fingerprint) -> String {
    format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 {fp}\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
         m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\n"
    )
}

fn candidate(port: u16) -> IceCandidate {
    IceCandidate {
        candidate: format!("candidate:1 1 udp 2122260223 127.0.0.1 {port} typ host"),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: None,
    }
}

/// What a peer connection did, as far as the test can tell.
#[derive(Debug, Default)]
struct Pc {
    created: bool,
    local_sdp: bool,
    /// The fingerprint its remote description announced.
    remote: Option<Fingerprint>,
    ice_added: usize,
    dtls: bool,
    closed: bool,
    sending: Option<bool>,
}

/// One device: its machine, its outbox from the hub, its model peer connection.
struct Device {
    user: &'static str,
    dev: DeviceId,
    rx: mpsc::Receiver<Arc<RelayMsg>>,
    call: Option<Call>,
    /// The fresh certificate this device makes for the call.
    cert: Fingerprint,
    pc: Pc,
    inputs: VecDeque<Input>,
    /// Every relay message this device got, in order.
    seen: Vec<RelayMsg>,
}

/// The hub, its devices (Alice's is 0, Bob's 1), one clock, and what the
/// relay does to the answer.
struct World {
    hub: Arc<Hub>,
    /// The key call ids are minted with, kept across a restart as the relay
    /// keeps its key file.
    key: CallKey,
    t0: Instant,
    ms: u64,
    mode: CallMode,
    devices: Vec<Device>,
    /// A relay in the middle: the answer Alice gets announces this certificate.
    swap_answer: Option<Fingerprint>,
}

fn setting(enabled: bool) -> E2eeSetting {
    E2eeSetting {
        enabled,
        can_change: true,
        policy: E2eePolicyType::DisabledUserOverride,
        policy_identity: "Global".into(),
        source: PolicySource::Global,
    }
}

/// A relay's hub with these people in its directory, minting with `key`.
fn hub(key: &CallKey) -> Arc<Hub> {
    let hub = Hub::new(Config {
        ring_timeout: RING,
        grace: GRACE,
        park_timeout: Duration::from_secs(300),
        key: key.clone(),
    });
    hub.set_directory(
        Default::default(),
        vec![ALICE.into(), BOB.into(), CAROL.into()],
    );
    hub
}

impl World {
    fn new(mode: CallMode) -> Self {
        let key = CallKey::random().expect("key");
        let mut w = Self {
            hub: hub(&key),
            key,
            t0: Instant::now(),
            ms: 0,
            mode,
            devices: Vec::new(),
            swap_answer: None,
        };
        w.add_device(ALICE, 0xa1);
        w.add_device(BOB, 0xb2);
        w
    }

    /// Signs a new device of `user` in (its certificates will be `cert`);
    /// returns its index.
    fn add_device(&mut self, user: &'static str, cert: u8) -> usize {
        let (dev, rx) = self.register(user);
        self.devices.push(Device {
            user,
            dev,
            rx,
            call: None,
            cert: Fingerprint::from_bytes([cert; 32]),
            pc: Pc::default(),
            inputs: VecDeque::new(),
            seen: Vec::new(),
        });
        self.devices.len() - 1
    }

    fn register(&self, user: &str) -> (DeviceId, mpsc::Receiver<Arc<RelayMsg>>) {
        let (tx, rx) = mpsc::channel(256);
        let dev = self
            .hub
            .register(
                user,
                "session",
                setting(self.mode == CallMode::E2ee),
                tx,
                Arc::new(AtomicBool::new(false)),
            )
            .expect("register");
        (dev, rx)
    }

    /// Device `who`'s connection drops: the hub unregisters it and its
    /// machine hears the relay is down (media goes on).
    fn drop_connection(&mut self, who: usize) {
        let (dev, user, now) = (self.devices[who].dev, self.devices[who].user, self.now());
        self.hub.unregister(now, dev, user);
        self.devices[who].inputs.push_back(Input::RelayDown);
        self.settle();
    }

    /// Device `who` connects again (a new connection, a new device number)
    /// and its machine hears the relay is back.
    fn reconnect(&mut self, who: usize) {
        let (dev, rx) = self.register(self.devices[who].user);
        let d = &mut self.devices[who];
        (d.dev, d.rx) = (dev, rx);
        d.inputs.push_back(Input::RelayUp);
        self.settle();
    }

    /// The relay restarts: a fresh hub with the same key, which knows no call;
    /// every device's connection drops and comes back to it.
    fn restart(&mut self) {
        self.hub = hub(&self.key);
        for who in 0..self.devices.len() {
            self.devices[who].inputs.push_back(Input::RelayDown);
        }
        self.settle();
        for who in 0..self.devices.len() {
            self.reconnect(who);
        }
    }

    fn now(&self) -> Instant {
        self.t0 + Duration::from_millis(self.ms)
    }

    fn wish(&self) -> Wish {
        match self.mode {
            CallMode::E2ee => Wish::Switch,
            CallMode::Standard => Wish::None,
        }
    }

    /// Alice places the call.
    fn call_bob(&mut self) {
        self.call(0, BOB);
    }

    /// Device `who` calls `to`.
    fn call(&mut self, who: usize, to: &str) {
        let (call, out) = Call::outgoing(to, self.wish(), self.ms);
        self.devices[who].call = Some(call);
        self.devices[who].pc = Pc::default();
        self.outputs(who, out);
        self.settle();
    }

    fn user(&mut self, who: usize, action: UserAction) {
        self.devices[who].inputs.push_back(Input::User(action));
        self.settle();
    }

    /// Lets time pass: the hub's timers run at their deadlines.
    fn advance(&mut self, by: Duration) {
        let until = self.now() + by;
        while let Some(at) = self.hub.poll_timeout().filter(|&at| at <= until) {
            self.ms = u64::try_from((at - self.t0).as_millis()).expect("ms");
            self.hub.handle_timeout(at);
            self.settle();
        }
        self.ms = u64::try_from((until - self.t0).as_millis()).expect("ms");
        self.settle();
    }

    /// Carries every message, command and event until nothing moves.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            for who in 0..self.devices.len() {
                while let Ok(msg) = self.devices[who].rx.try_recv() {
                    moved = true;
                    self.deliver(who, &msg.encode());
                }
                while let Some(input) = self.devices[who].inputs.pop_front() {
                    moved = true;
                    let now = self.ms;
                    let out = match self.devices[who].call.as_mut() {
                        Some(call) => call.handle(input, now),
                        None => Vec::new(),
                    };
                    self.outputs(who, out);
                }
            }
            // DTLS connects once both sides of a call hold a remote
            // description and a candidate of the other: each sees the
            // certificate its remote description named (a relay in the middle
            // would terminate DTLS with the certificate it put there).
            let ready = |d: &Device| {
                let pc = &d.pc;
                pc.created && pc.local_sdp && pc.remote.is_some() && pc.ice_added > 0 && !pc.dtls
            };
            let call_id = |d: &Device| d.call.as_ref().and_then(|c| c.id().cloned());
            for i in 0..self.devices.len() {
                for j in i + 1..self.devices.len() {
                    let (a, b) = (&self.devices[i], &self.devices[j]);
                    if ready(a) && ready(b) && call_id(a).is_some() && call_id(a) == call_id(b) {
                        moved = true;
                        for k in [i, j] {
                            let d = &mut self.devices[k];
                            d.pc.dtls = true;
                            d.inputs.push_back(Input::DtlsConnected {
                                local: Some(d.cert),
                                remote: d.pc.remote,
                            });
                        }
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the signalling never settles");
    }

    fn deliver(&mut self, who: usize, text: &str) {
        let mut msg = RelayMsg::decode(text).expect("the hub sends what the client decodes");
        if let (Some(fp), RelayMsg::Answer { sdp: s, .. }) = (self.swap_answer, &mut msg)
            && who == 0
        {
            *s = sdp(&fp);
        }
        let d = &mut self.devices[who];
        d.seen.push(msg.clone());
        if d.call.as_ref().is_none_or(Call::is_ended)
            && let RelayMsg::Incoming {
                call_id,
                from,
                mode,
                ..
            } = &msg
        {
            let wish = match mode {
                CallMode::E2ee => Wish::Switch,
                CallMode::Standard => Wish::None,
            };
            let (call, out) = Call::incoming(call_id.clone(), from, *mode, wish, self.ms);
            d.call = Some(call);
            d.pc = Pc::default();
            self.outputs(who, out);
            return;
        }
        if d.call.as_ref().is_some_and(|c| c.concerns(&msg)) {
            d.inputs.push_back(Input::Relay(msg));
        }
    }

    fn outputs(&mut self, who: usize, out: Vec<Output>) {
        for o in out {
            match o {
                Output::Send(msg) => self.send_up(who, &msg),
                Output::Pc(cmd) => self.pc(who, cmd),
            }
        }
    }

    fn pc(&mut self, who: usize, cmd: PcCommand) {
        let d = &mut self.devices[who];
        let port = 5000 + u16::try_from(who).expect("few devices");
        match cmd {
            PcCommand::Create => {
                d.pc.created = true;
                d.inputs.push_back(Input::PeerReady { local: d.cert });
            }
            PcCommand::CreateOffer => {
                d.pc.local_sdp = true;
                d.inputs.push_back(Input::LocalOffer { sdp: sdp(&d.cert) });
                d.inputs.push_back(Input::LocalIce(candidate(port)));
            }
            PcCommand::AcceptOffer { sdp: offer } => {
                d.pc.remote = Some(extract_fingerprint(&offer).expect("offer fingerprint"));
                d.pc.local_sdp = true;
                d.inputs.push_back(Input::LocalAnswer { sdp: sdp(&d.cert) });
                d.inputs.push_back(Input::LocalIce(candidate(port)));
            }
            PcCommand::SetAnswer { sdp: answer } => {
                d.pc.remote = Some(extract_fingerprint(&answer).expect("answer fingerprint"));
            }
            PcCommand::AddIce(_) => {
                assert!(
                    d.pc.remote.is_some(),
                    "a candidate before the remote description"
                );
                d.pc.ice_added += 1;
            }
            PcCommand::SetSending(on) => d.pc.sending = Some(on),
            PcCommand::Close => d.pc.closed = true,
        }
    }

    /// What the connection (`relay/src/ws`) does with a client message, with
    /// the mode decided by the test; errors go back to the sender as the
    /// connection sends them.
    fn send_up(&mut self, who: usize, msg: &ClientMsg) {
        let msg =
            ClientMsg::decode(&msg.encode()).expect("the client sends what the relay decodes");
        let (user, dev, now) = (self.devices[who].user, self.devices[who].dev, self.now());
        let result = match msg {
            ClientMsg::Invite { to, .. } => {
                let id = self
                    .hub
                    .mint_call_id(user, &to, self.mode)
                    .expect("call id");
                self.hub.handle(
                    now,
                    dev,
                    HubInput::Invite {
                        callee: &to,
                        decision: Ok(self.mode),
                        call_id: id,
                        referred_by: None,
                    },
                )
            }
            // A call this hub does not know (it restarted) comes with the
            // pair's call decision, made again as the connection makes it.
            msg @ ClientMsg::Resume { .. } => {
                let decision = match &msg {
                    ClientMsg::Resume { call_id, .. } if !self.hub.knows_call(call_id) => {
                        Some(Ok(self.mode))
                    }
                    _ => None,
                };
                self.hub
                    .handle(now, dev, HubInput::Resume { msg, decision })
            }
            ClientMsg::Park { call_id } => self.hub.handle(
                now,
                dev,
                HubInput::Park {
                    id: &call_id,
                    code: None,
                },
            ),
            other => self.hub.handle(now, dev, HubInput::Call(other)),
        };
        if let Err(e) = result {
            let text = e.into_msg().encode();
            self.deliver(who, &text);
        }
    }

    fn view(&self, who: usize) -> shieldcall_web::call::View {
        self.devices[who]
            .call
            .as_ref()
            .expect("a call")
            .view()
            .clone()
    }

    fn phase(&self, who: usize) -> Phase {
        self.devices[who]
            .call
            .as_ref()
            .expect("a call")
            .view()
            .phase
            .clone()
    }
}

#[test]
fn an_e2ee_call_through_the_hub_shows_one_code_on_both_machines() {
    let mut w = World::new(CallMode::E2ee);
    w.call_bob();
    assert_eq!(w.phase(0), Phase::Ringing);
    assert_eq!(w.phase(1), Phase::Incoming);
    // Nothing that reveals Alice's certificate left before Bob committed.
    assert!(
        !w.devices[1]
            .seen
            .iter()
            .any(|m| matches!(m, RelayMsg::Offer { .. } | RelayMsg::Ice { .. })),
        "the offer reached Bob before his commitment"
    );

    w.ms += 2_000;
    w.user(1, UserAction::Accept);
    let expected = security_code(&w.devices[0].cert, &w.devices[1].cert).expect("code");
    for who in 0..2 {
        let v = w.devices[who].call.as_ref().expect("call").view().clone();
        assert_eq!(v.phase, Phase::Connected, "device {who}");
        assert_eq!(v.mode, Some(CallMode::E2ee), "device {who}");
        assert_eq!(v.code, Some(expected), "device {who} shows the pair's code");
        assert!(w.devices[who].pc.dtls && w.devices[who].pc.ice_added > 0);
    }
    // The commitment came before the offer, on the wire Alice received.
    let seen = &w.devices[0].seen;
    let accepted = seen
        .iter()
        .position(|m| {
            matches!(
                m,
                RelayMsg::Accepted {
                    commit: Some(_),
                    ..
                }
            )
        })
        .expect("accepted with a commitment");
    let answer = seen
        .iter()
        .position(|m| matches!(m, RelayMsg::Answer { .. }))
        .expect("answer");
    assert!(accepted < answer);

    // Ten seconds later Alice hangs up; both machines end and close their
    // peer connections; the hub records ten seconds for both.
    w.ms += 10_000;
    w.user(0, UserAction::Hangup);
    assert_eq!(w.phase(0), Phase::Ended(Ending::HungUp { by_me: true }));
    assert_eq!(w.phase(1), Phase::Ended(Ending::HungUp { by_me: false }));
    assert!(w.devices[0].pc.closed && w.devices[1].pc.closed);
    let history = w.hub.take_history();
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|r| r.duration_secs == 10), "{history:?}");
    assert_eq!(w.hub.timers(), 0);
}

#[test]
fn a_relay_that_swaps_the_answers_certificate_is_caught_by_the_commitment() {
    let mut w = World::new(CallMode::E2ee);
    w.swap_answer = Some(Fingerprint::from_bytes([0x66; 32]));
    w.call_bob();
    w.user(1, UserAction::Accept);
    let alice = w.devices[0].call.as_ref().expect("call").view().clone();
    assert!(
        matches!(
            alice.phase,
            Phase::Ended(Ending::Mitm(Warning::CommitmentMismatch))
        ),
        "{:?}",
        alice.phase
    );
    assert_eq!(alice.code, None, "no code on a swapped certificate");
    // Alice's machine hung up: Bob's ends too, without a code either.
    let bob = w.devices[1].call.as_ref().expect("call").view().clone();
    assert!(matches!(bob.phase, Phase::Ended(_)), "{:?}", bob.phase);
    assert_eq!(bob.code, None);
}

#[test]
fn an_unanswered_call_rings_out_on_both_machines() {
    let mut w = World::new(CallMode::Standard);
    w.call_bob();
    w.advance(RING - Duration::from_millis(1));
    assert_eq!(w.phase(0), Phase::Ringing);
    assert_eq!(w.phase(1), Phase::Incoming);
    w.advance(Duration::from_millis(1));
    assert_eq!(
        w.phase(0),
        Phase::Ended(Ending::Refused {
            reason: RefuseReason::NoAnswer,
            required_by: None
        })
    );
    assert!(matches!(w.phase(1), Phase::Ended(_)), "{:?}", w.phase(1));
    assert!(!w.devices[1].pc.dtls, "no media for a call nobody answered");
}

#[test]
fn hold_in_a_standard_call_stops_and_restarts_sending_on_both_sides() {
    let mut w = World::new(CallMode::Standard);
    w.call_bob();
    w.user(1, UserAction::Accept);
    assert_eq!(w.phase(0), Phase::Connected);
    w.user(0, UserAction::Hold);
    for who in 0..2 {
        let v = w.devices[who].call.as_ref().expect("call").view().clone();
        assert_eq!(w.devices[who].pc.sending, Some(false), "device {who}");
        assert_eq!(
            (v.hold.by_me, v.hold.by_peer),
            (who == 0, who == 1),
            "device {who}"
        );
    }
    w.user(0, UserAction::Unhold);
    for who in 0..2 {
        assert_eq!(w.devices[who].pc.sending, Some(true), "device {who}");
    }
}

/// Alice and Bob in an answered call of `mode`; returns the world and the code
/// both machines show.
fn connected(mode: CallMode) -> (World, shieldcall_proto::SecurityCode) {
    let mut w = World::new(mode);
    w.call_bob();
    w.user(1, UserAction::Accept);
    let code = security_code(&w.devices[0].cert, &w.devices[1].cert).expect("code");
    for who in 0..2 {
        assert_eq!(w.phase(who), Phase::Connected, "device {who}");
        assert_eq!(w.view(who).code, Some(code), "device {who}");
    }
    (w, code)
}

#[test]
fn a_second_device_stops_ringing_when_the_first_accepts() {
    let mut w = World::new(CallMode::E2ee);
    let tablet = w.add_device(BOB, 0xb3);
    w.call_bob();
    assert_eq!(w.phase(1), Phase::Incoming);
    assert_eq!(
        w.phase(tablet),
        Phase::Incoming,
        "every device of Bob rings"
    );

    w.user(tablet, UserAction::Accept);
    assert_eq!(w.phase(1), Phase::Ended(Ending::AnsweredElsewhere));
    assert!(
        !w.devices[1].pc.created,
        "the other device made no connection"
    );
    let code = security_code(&w.devices[0].cert, &w.devices[tablet].cert).expect("code");
    for who in [0, tablet] {
        assert_eq!(w.phase(who), Phase::Connected, "device {who}");
        assert_eq!(w.view(who).code, Some(code), "device {who}");
    }
    // The device that stopped ringing cannot take the call any more.
    w.user(1, UserAction::Accept);
    assert_eq!(w.phase(tablet), Phase::Connected);
}

#[test]
fn a_device_that_drops_resumes_its_call_within_the_grace() {
    let (mut w, code) = connected(CallMode::E2ee);
    let before = w.devices[1].dev;
    w.drop_connection(1);
    assert!(w.view(1).relay_down);
    // Media goes on: neither machine ends the call while the relay is away.
    w.advance(GRACE - Duration::from_secs(1));
    assert_eq!(w.phase(0), Phase::Connected);
    assert_eq!(w.phase(1), Phase::Connected);

    w.reconnect(1);
    assert_ne!(w.devices[1].dev, before, "a new connection is a new device");
    assert!(!w.view(1).relay_down);
    // The hub bound the call to the new device: past the grace it is still up,
    // with the same code (nothing was renegotiated), and a hang-up reaches it.
    w.advance(GRACE);
    for who in 0..2 {
        assert_eq!(w.phase(who), Phase::Connected, "device {who}");
        assert_eq!(w.view(who).code, Some(code), "device {who}");
    }
    w.user(0, UserAction::Hangup);
    assert_eq!(w.phase(1), Phase::Ended(Ending::HungUp { by_me: false }));
    assert_eq!(w.hub.timers(), 0);
}

#[test]
fn a_device_that_never_comes_back_ends_the_call_after_the_grace() {
    let (mut w, _) = connected(CallMode::Standard);
    w.drop_connection(1);
    w.advance(GRACE - Duration::from_millis(1));
    assert_eq!(w.phase(0), Phase::Connected);
    w.advance(Duration::from_millis(1));
    assert!(
        matches!(w.phase(0), Phase::Ended(Ending::HungUp { by_me: false })),
        "{:?}",
        w.phase(0)
    );
    assert!(w.devices[0].pc.closed);
}

#[test]
fn both_machines_resume_their_call_through_a_restarted_relay() {
    let (mut w, code) = connected(CallMode::E2ee);
    // A minute on (the test's clock then runs ahead of the new hub's, which
    // starts at the real time and never goes back).
    w.ms += 60_000;
    let seen_before = [w.devices[0].seen.len(), w.devices[1].seen.len()];
    w.restart();
    for (who, before) in seen_before.into_iter().enumerate() {
        assert!(
            !w.devices[who].seen[before..]
                .iter()
                .any(|m| matches!(m, RelayMsg::Offer { .. } | RelayMsg::Answer { .. })),
            "device {who}: nothing is negotiated again"
        );
    }
    // Both resumed naming each other with the call's id and mode: the new hub
    // restored the call and bound it to the new devices.
    let id = w.devices[0]
        .call
        .as_ref()
        .and_then(|c| c.id())
        .cloned()
        .expect("call id");
    assert!(w.hub.knows_call(&id), "{:?} {:?}", w.phase(0), w.phase(1));
    assert_eq!(w.hub.restoring(), 0, "no claim is left waiting");
    for who in 0..2 {
        assert_eq!(w.phase(who), Phase::Connected, "device {who}");
        assert_eq!(w.view(who).code, Some(code), "device {who}");
    }
    w.ms += 5_000;
    w.user(1, UserAction::Hangup);
    assert_eq!(w.phase(0), Phase::Ended(Ending::HungUp { by_me: false }));
    // The new hub times the call from its restore.
    let history = w.hub.take_history();
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(history.iter().all(|r| r.duration_secs == 5), "{history:?}");
}

#[test]
fn a_caller_who_finds_the_callee_busy_sees_it_on_their_machine() {
    let (mut w, code) = connected(CallMode::Standard);
    let carol = w.add_device(CAROL, 0xc3);
    w.call(carol, ALICE);
    assert_eq!(
        w.phase(carol),
        Phase::Ended(Ending::Refused {
            reason: RefuseReason::Busy,
            required_by: None
        })
    );
    assert!(!w.devices[carol].pc.created);
    // Alice's call was not disturbed.
    assert_eq!(w.view(0).code, Some(code));
    assert_eq!(w.phase(1), Phase::Connected);
}
