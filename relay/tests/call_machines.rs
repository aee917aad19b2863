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
//! commitment, a call that rings out on both, and hold in a standard call.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use shieldcall_proto::{
    CallMode, ClientMsg, E2eePolicyType, E2eeSetting, Fingerprint, IceCandidate, PolicySource,
    RefuseReason, RelayMsg, extract_fingerprint, security_code,
};
use shieldcall_relay::hub::{CallKey, DeviceId, Hub};
use shieldcall_web::call::{
    Call, Ending, Input, Output, PcCommand, Phase, UserAction, Warning, Wish,
};
use tokio::sync::mpsc;

const ALICE: &str = "alice@example.test";
const BOB: &str = "bob@example.test";
const RING: Duration = Duration::from_secs(45);

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
    rx: mpsc::Receiver<String>,
    call: Option<Call>,
    /// The fresh certificate this device makes for the call.
    cert: Fingerprint,
    pc: Pc,
    inputs: VecDeque<Input>,
    /// Every relay message this device got, in order.
    seen: Vec<RelayMsg>,
}

/// The hub, two devices, one clock, and what the relay does to the answer.
struct World {
    hub: Arc<Hub>,
    t0: Instant,
    ms: u64,
    mode: CallMode,
    devices: [Device; 2],
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

impl World {
    fn new(mode: CallMode) -> Self {
        let hub = Hub::new(
            RING,
            Duration::from_secs(30),
            Duration::from_secs(300),
            CallKey::random().expect("key"),
        );
        hub.set_directory(Default::default(), vec![ALICE.into(), BOB.into()]);
        let device = |user: &'static str, cert: u8| {
            let (tx, rx) = mpsc::channel(256);
            let dev = hub
                .register(
                    user,
                    "session",
                    setting(mode == CallMode::E2ee),
                    tx,
                    Arc::new(AtomicBool::new(false)),
                )
                .expect("register");
            Device {
                user,
                dev,
                rx,
                call: None,
                cert: Fingerprint::from_bytes([cert; 32]),
                pc: Pc::default(),
                inputs: VecDeque::new(),
                seen: Vec::new(),
            }
        };
        let devices = [device(ALICE, 0xa1), device(BOB, 0xb2)];
        Self {
            hub,
            t0: Instant::now(),
            ms: 0,
            mode,
            devices,
            swap_answer: None,
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
        let (call, out) = Call::outgoing(BOB, self.wish(), self.ms);
        self.devices[0].call = Some(call);
        self.outputs(0, out);
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
            for who in 0..2 {
                while let Ok(text) = self.devices[who].rx.try_recv() {
                    moved = true;
                    self.deliver(who, &text);
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
            // DTLS connects once both sides hold a remote description and a
            // candidate of the other: each sees the certificate its remote
            // description named (a relay in the middle would terminate DTLS
            // with the certificate it put there).
            let ready = |pc: &Pc| {
                pc.created && pc.local_sdp && pc.remote.is_some() && pc.ice_added > 0 && !pc.dtls
            };
            if ready(&self.devices[0].pc) && ready(&self.devices[1].pc) {
                moved = true;
                for d in &mut self.devices {
                    d.pc.dtls = true;
                    d.inputs.push_back(Input::DtlsConnected {
                        local: Some(d.cert),
                        remote: d.pc.remote,
                    });
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
        let port = if who == 0 { 5000 } else { 6000 };
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
                self.hub.invite(now, dev, user, &to, Ok(self.mode), id);
                Ok(())
            }
            msg @ ClientMsg::Resume { .. } => self.hub.resume(now, dev, user, msg, None),
            ClientMsg::Park { call_id } => self.hub.park(now, dev, user, &call_id),
            other => self.hub.call_msg(now, dev, user, other),
        };
        if let Err(e) = result {
            let text = e.into_msg().encode();
            self.deliver(who, &text);
        }
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
