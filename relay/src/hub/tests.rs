//! The hub on a clock of the test's own: every timer (ring, grace, park and
//! ring-back, restore claims, transfer tokens) is driven with `handle_timeout`,
//! one millisecond before its deadline and at it, with no socket, no runtime and
//! no sleeping.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use shieldcall_proto::{
    CallId, CallMode, ClientMsg, Commitment, E2eePolicyType, E2eeSetting, Fingerprint,
    HangupReason, PolicySource, RefuseReason, RelayMsg,
};
use tokio::sync::mpsc;

use super::transfer::REFER_TTL;
use super::{CallKey, Config, Core, DeviceId, Direction, Hub, Input, Outcome, Output};
use crate::policy::Refusal;

pub(super) const RING: Duration = Duration::from_secs(45);
pub(super) const GRACE: Duration = Duration::from_secs(30);
const PARK: Duration = Duration::from_secs(300);
pub(super) const MS: Duration = Duration::from_millis(1);

pub(super) const ALICE: &str = "alice@example.test";
pub(super) const BOB: &str = "bob@example.test";
pub(super) const CAROL: &str = "carol@example.test";
pub(super) const DAVE: &str = "dave@example.test";

/// A device: its number and its outbox, decoded.
pub(super) struct Phone {
    pub(super) id: DeviceId,
    rx: mpsc::Receiver<Arc<RelayMsg>>,
}

impl Phone {
    /// Everything queued for it since the last look, through the wire
    /// encoding as the connection writes it.
    pub(super) fn take(&mut self) -> Vec<RelayMsg> {
        let mut out = Vec::new();
        while let Ok(msg) = self.rx.try_recv() {
            out.push(RelayMsg::decode(&msg.encode()).expect("the hub sends what clients decode"));
        }
        out
    }
}

pub(super) fn hub() -> Arc<Hub> {
    let hub = Hub::new(Config {
        ring_timeout: RING,
        grace: GRACE,
        park_timeout: PARK,
        key: CallKey::random().expect("key"),
    });
    hub.set_directory(
        Default::default(),
        vec![ALICE.into(), BOB.into(), CAROL.into(), DAVE.into()],
    );
    hub
}

fn setting() -> E2eeSetting {
    E2eeSetting {
        enabled: false,
        can_change: true,
        policy: E2eePolicyType::DisabledUserOverride,
        policy_identity: "Global".into(),
        source: PolicySource::Global,
    }
}

pub(super) fn online(hub: &Hub, user: &str) -> Phone {
    let (tx, rx) = mpsc::channel(256);
    let id = hub
        .register(
            user,
            "session",
            setting(),
            tx,
            Arc::new(AtomicBool::new(false)),
        )
        .expect("register");
    Phone { id, rx }
}

/// A hub with Alice, Bob and Carol online, and Dave, whose contact list shows
/// their presence.
pub(super) fn three() -> (Arc<Hub>, Phone, Phone, Phone, Phone) {
    let hub = hub();
    let people = (
        online(&hub, ALICE),
        online(&hub, BOB),
        online(&hub, CAROL),
        online(&hub, DAVE),
    );
    (hub, people.0, people.1, people.2, people.3)
}

pub(super) fn commit() -> Option<Commitment> {
    Some(Commitment::to(&Fingerprint::from_bytes([7; 32])))
}

/// Alice calls Bob at `now`; both outboxes are emptied.
pub(super) fn ring(hub: &Hub, now: Instant, alice: &mut Phone, bob: &mut Phone) -> CallId {
    let id = hub
        .mint_call_id(ALICE, BOB, CallMode::Standard)
        .expect("id");
    hub.handle(
        now,
        alice.id,
        Input::Invite {
            callee: BOB,
            decision: Ok(CallMode::Standard),
            call_id: id.clone(),
            referred_by: None,
        },
    )
    .expect("invite");
    assert!(matches!(alice.take()[..], [RelayMsg::Calling { .. }]));
    assert!(matches!(bob.take()[..], [RelayMsg::Incoming { .. }]));
    id
}

/// Alice calls Bob at `now` and Bob accepts at once.
pub(super) fn up(hub: &Hub, now: Instant, alice: &mut Phone, bob: &mut Phone) -> CallId {
    let id = ring(hub, now, alice, bob);
    hub.handle(
        now,
        bob.id,
        Input::Call(ClientMsg::Accept {
            call_id: id.clone(),
            commit: commit(),
        }),
    )
    .expect("accept");
    assert!(matches!(alice.take()[..], [RelayMsg::Accepted { .. }]));
    bob.take();
    id
}

/// Bob's `resume` of his standard call `id` with Alice, with the pair's call
/// decision made again (`decision`, for a call the hub lost).
fn resume(id: &CallId, decision: Option<Result<CallMode, Refusal>>) -> Input<'static> {
    Input::Resume {
        msg: ClientMsg::Resume {
            call_id: id.clone(),
            peer: ALICE.into(),
            mode: CallMode::Standard,
        },
        decision,
    }
}

/// Alice parks `id` at `now`; the pickup code she is told.
fn park(hub: &Hub, now: Instant, alice: &mut Phone, id: &CallId) -> u8 {
    hub.handle(now, alice.id, Input::Park { id, code: None })
        .expect("park");
    alice
        .take()
        .iter()
        .find_map(|m| match m {
            RelayMsg::Parked { code, .. } => Some(*code),
            _ => None,
        })
        .expect("the code")
}

pub(super) fn hangup(id: &CallId) -> ClientMsg {
    ClientMsg::Hangup {
        call_id: id.clone(),
        reason: HangupReason::Normal,
    }
}

#[test]
fn a_call_rings_out_at_its_deadline_and_not_before() {
    let hub = hub();
    let (mut alice, mut bob) = (online(&hub, ALICE), online(&hub, BOB));
    let t0 = Instant::now();
    let id = ring(&hub, t0, &mut alice, &mut bob);
    assert_eq!(hub.poll_timeout(), Some(t0 + RING));

    hub.handle_timeout(t0 + RING - MS);
    assert!(alice.take().is_empty() && bob.take().is_empty());

    hub.handle_timeout(t0 + RING);
    assert!(matches!(
        &alice.take()[..],
        [RelayMsg::CallRefused { reason: RefuseReason::NoAnswer, call_id, .. }] if *call_id == id
    ));
    assert!(matches!(&bob.take()[..], [RelayMsg::Cancelled { call_id }] if *call_id == id));
    assert_eq!(hub.timers(), 0);
    assert_eq!(hub.poll_timeout(), None);
    let history = hub.take_history();
    let bobs = history
        .iter()
        .find(|r| r.user == BOB)
        .expect("Bob's record");
    assert_eq!(
        (bobs.direction, bobs.outcome),
        (Direction::Incoming, Outcome::Missed)
    );
}

#[test]
fn an_answer_cancels_the_ring_timer_and_the_duration_is_the_clocks() {
    let hub = hub();
    let (mut alice, mut bob) = (online(&hub, ALICE), online(&hub, BOB));
    let t0 = Instant::now();
    let id = up(&hub, t0, &mut alice, &mut bob);
    assert_eq!(hub.timers(), 0, "nothing is left to time out");
    hub.handle_timeout(t0 + RING * 2);
    assert!(alice.take().is_empty() && bob.take().is_empty());

    // 95 s later by the hub's clock, whatever the wall clock says.
    hub.handle(
        t0 + Duration::from_secs(95),
        alice.id,
        Input::Call(hangup(&id)),
    )
    .expect("hangup");
    assert!(matches!(&bob.take()[..], [RelayMsg::Hangup { .. }]));
    let history = hub.take_history();
    assert!(!history.is_empty());
    for r in &history {
        assert_eq!(
            (r.outcome, r.duration_secs),
            (Outcome::Answered, 95),
            "{r:?}"
        );
    }
}

#[test]
fn a_device_that_leaves_has_the_grace_to_come_back() {
    let hub = hub();
    let (mut alice, mut bob) = (online(&hub, ALICE), online(&hub, BOB));
    let t0 = Instant::now();
    let id = up(&hub, t0, &mut alice, &mut bob);
    let t1 = t0 + Duration::from_secs(60);
    hub.unregister(t1, bob.id, BOB);
    assert_eq!(hub.poll_timeout(), Some(t1 + GRACE));

    // Back on a new connection before the grace is over: the call is his again.
    let mut bob2 = online(&hub, BOB);
    hub.handle(t1 + Duration::from_secs(10), bob2.id, resume(&id, None))
        .expect("resume");
    hub.handle_timeout(t1 + GRACE);
    assert!(alice.take().is_empty(), "the call survived");
    hub.handle(t1 + GRACE, alice.id, Input::Call(hangup(&id)))
        .expect("hangup");
    assert!(
        bob2.take()
            .iter()
            .any(|m| matches!(m, RelayMsg::Hangup { call_id, .. } if *call_id == id)),
        "the hangup reaches the new connection"
    );
}

#[test]
fn a_device_that_does_not_come_back_ends_the_call_at_the_grace() {
    let hub = hub();
    let (mut alice, mut bob) = (online(&hub, ALICE), online(&hub, BOB));
    let t0 = Instant::now();
    let id = up(&hub, t0, &mut alice, &mut bob);
    hub.unregister(t0 + MS, bob.id, BOB);

    hub.handle_timeout(t0 + MS + GRACE - MS);
    assert!(alice.take().is_empty());
    hub.handle_timeout(t0 + MS + GRACE);
    assert!(matches!(
        &alice.take()[..],
        [RelayMsg::Hangup { reason: HangupReason::PeerGone, call_id }] if *call_id == id
    ));
    assert_eq!(hub.timers(), 0);
}

#[test]
fn only_the_latest_departure_starts_the_grace() {
    let hub = hub();
    let (mut alice, mut bob) = (online(&hub, ALICE), online(&hub, BOB));
    let t0 = Instant::now();
    let id = up(&hub, t0, &mut alice, &mut bob);
    // Leaves, comes back after 5 s, leaves again 20 s in.
    hub.unregister(t0, bob.id, BOB);
    let bob2 = online(&hub, BOB);
    hub.handle(t0 + Duration::from_secs(5), bob2.id, resume(&id, None))
        .expect("resume");
    let t2 = t0 + Duration::from_secs(20);
    hub.unregister(t2, bob2.id, BOB);
    assert_eq!(hub.timers(), 1, "the first grace was replaced");
    assert_eq!(hub.poll_timeout(), Some(t2 + GRACE));

    hub.handle_timeout(t0 + GRACE);
    assert!(
        alice.take().is_empty(),
        "the first departure does not count"
    );
    hub.handle_timeout(t2 + GRACE);
    assert!(matches!(
        &alice.take()[..],
        [RelayMsg::Hangup {
            reason: HangupReason::PeerGone,
            ..
        }]
    ));
}

#[test]
fn a_parked_call_rings_the_parker_back_then_ends() {
    let hub = hub();
    let (mut alice, mut bob) = (online(&hub, ALICE), online(&hub, BOB));
    let t0 = Instant::now();
    let id = up(&hub, t0, &mut alice, &mut bob);
    let t1 = t0 + Duration::from_secs(10);
    park(&hub, t1, &mut alice, &id);
    assert!(matches!(&bob.take()[..], [RelayMsg::OnPark { .. }]));
    assert_eq!(hub.poll_timeout(), Some(t1 + PARK));

    hub.handle_timeout(t1 + PARK - MS);
    assert!(alice.take().is_empty() && bob.take().is_empty());
    hub.handle_timeout(t1 + PARK);
    assert!(
        matches!(&alice.take()[..], [RelayMsg::Incoming { from, .. }] if from == BOB),
        "the parker is rung back"
    );
    assert_eq!(hub.poll_timeout(), Some(t1 + PARK + RING));

    hub.handle_timeout(t1 + PARK + RING);
    assert!(matches!(
        &bob.take()[..],
        [RelayMsg::Hangup {
            reason: HangupReason::NotPickedUp,
            ..
        }]
    ));
    assert!(matches!(&alice.take()[..], [RelayMsg::Cancelled { .. }]));
    assert_eq!(hub.timers(), 0);
}

#[test]
fn a_picked_up_call_drops_its_park_timer() {
    let hub = hub();
    let (mut alice, mut bob) = (online(&hub, ALICE), online(&hub, BOB));
    let mut carol = online(&hub, CAROL);
    let t0 = Instant::now();
    let id = up(&hub, t0, &mut alice, &mut bob);
    let code = park(&hub, t0, &mut alice, &id);
    let pickup = ClientMsg::Pickup {
        code,
        commit: commit(),
    };
    hub.handle(
        t0,
        carol.id,
        Input::Pickup {
            msg: &pickup,
            decision: Some(Ok(CallMode::Standard)),
        },
    )
    .expect("pickup");
    assert!(
        carol
            .take()
            .iter()
            .any(|m| matches!(m, RelayMsg::PickedUp { .. }))
    );
    assert_eq!(hub.timers(), 0);
    hub.handle_timeout(t0 + PARK + RING);
    assert!(alice.take().is_empty(), "no ring-back after a pickup");
}

#[test]
fn a_pickup_by_someone_else_keeps_the_parkers_part_in_the_history() {
    let hub = hub();
    let (mut alice, mut bob) = (online(&hub, ALICE), online(&hub, BOB));
    let mut carol = online(&hub, CAROL);
    let t0 = Instant::now();
    let id = up(&hub, t0, &mut alice, &mut bob);
    // Alice and Bob talk 2 minutes; Alice parks; Carol picks up 30 s later and
    // talks with Bob for 1 minute.
    let parked = t0 + Duration::from_secs(120);
    let code = park(&hub, parked, &mut alice, &id);
    let picked = parked + Duration::from_secs(30);
    let pickup = ClientMsg::Pickup {
        code,
        commit: commit(),
    };
    hub.handle(
        picked,
        carol.id,
        Input::Pickup {
            msg: &pickup,
            decision: Some(Ok(CallMode::Standard)),
        },
    )
    .expect("pickup");
    carol.take();
    hub.handle(
        picked + Duration::from_secs(60),
        carol.id,
        Input::Call(hangup(&id)),
    )
    .expect("hangup");

    let mut got: Vec<(String, String, &str, i64)> = hub
        .take_history()
        .into_iter()
        .map(|r| {
            assert_eq!(r.outcome, Outcome::Answered, "{r:?}");
            (r.user, r.peer, r.direction.as_str(), r.duration_secs)
        })
        .collect();
    got.sort();
    let want = [
        // Alice's part, up to the park, for both of them.
        (ALICE, BOB, "outgoing", 120),
        (BOB, ALICE, "incoming", 120),
        // Carol took Alice's side (the caller's) from the pickup.
        (BOB, CAROL, "incoming", 60),
        (CAROL, BOB, "outgoing", 60),
    ];
    let mut want: Vec<(String, String, &str, i64)> = want
        .iter()
        .map(|&(u, p, d, s)| (u.to_string(), p.to_string(), d, s))
        .collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn an_unmatched_restore_claim_expires_at_the_grace() {
    let hub = hub();
    let bob = online(&hub, BOB);
    // A call minted before a restart that this hub never saw.
    let id = hub
        .mint_call_id(ALICE, BOB, CallMode::Standard)
        .expect("id");
    let t0 = Instant::now();
    hub.handle(t0, bob.id, resume(&id, Some(Ok(CallMode::Standard))))
        .expect("claim");
    assert_eq!((hub.restoring(), hub.timers()), (1, 1));
    hub.handle_timeout(t0 + GRACE - MS);
    assert_eq!(hub.restoring(), 1);
    hub.handle_timeout(t0 + GRACE);
    assert_eq!((hub.restoring(), hub.timers()), (0, 0));
}

#[test]
fn a_transfer_token_expires() {
    let hub = hub();
    let (mut alice, mut bob) = (online(&hub, ALICE), online(&hub, BOB));
    let _carol = online(&hub, CAROL);
    let t0 = Instant::now();
    let id = up(&hub, t0, &mut alice, &mut bob);
    hub.handle(
        t0,
        alice.id,
        Input::Transfer {
            id: &id,
            target: CAROL,
            allowed: true,
        },
    )
    .expect("transfer");
    let token = bob
        .take()
        .into_iter()
        .find_map(|m| match m {
            RelayMsg::Refer { token, .. } => Some(token),
            _ => None,
        })
        .expect("refer");
    assert_eq!(hub.poll_timeout(), Some(t0 + REFER_TTL));
    hub.handle_timeout(t0 + REFER_TTL);
    assert_eq!(hub.take_referral(&token, BOB, CAROL), None);
    assert_eq!(hub.timers(), 0);
}

#[test]
fn ended_calls_leave_no_timers_behind() {
    let hub = hub();
    let (mut alice, mut bob) = (online(&hub, ALICE), online(&hub, BOB));
    let t0 = Instant::now();
    for i in 0..100 {
        let now = t0 + Duration::from_millis(i);
        let id = ring(&hub, now, &mut alice, &mut bob);
        hub.handle(
            now,
            alice.id,
            Input::Call(ClientMsg::Cancel { call_id: id }),
        )
        .expect("cancel");
        alice.take();
        bob.take();
    }
    assert_eq!(hub.timers(), 0);
}

#[test]
fn the_driver_is_woken_only_for_an_earlier_timer() {
    let hub = hub();
    let (mut alice, mut bob) = (online(&hub, ALICE), online(&hub, BOB));
    let t0 = Instant::now();
    // Nothing set yet: nothing to wake for.
    assert!(hub.timer_changed().now_or_never().is_none());
    ring(&hub, t0, &mut alice, &mut bob);
    assert!(
        hub.timer_changed().now_or_never().is_some(),
        "the first timer wakes the driver"
    );
    // A later deadline than the pending one needs no wake.
    let (mut carol, _dave) = (online(&hub, CAROL), online(&hub, DAVE));
    let id = hub
        .mint_call_id(CAROL, DAVE, CallMode::Standard)
        .expect("id");
    hub.handle(
        t0 + MS,
        carol.id,
        Input::Invite {
            callee: DAVE,
            decision: Ok(CallMode::Standard),
            call_id: id,
            referred_by: None,
        },
    )
    .expect("invite");
    assert!(matches!(carol.take()[..], [RelayMsg::Calling { .. }]));
    assert_eq!(hub.timers(), 2);
    assert!(hub.timer_changed().now_or_never().is_none());
}

#[test]
fn a_voicemail_ends_at_its_time_limit_and_the_recipient_hears_of_it() {
    use super::voicemail::MAX_VOICEMAIL;
    let hub = hub();
    let (mut alice, mut bob) = (online(&hub, ALICE), online(&hub, BOB));
    let t0 = Instant::now();
    let id = hub
        .mint_call_id(ALICE, BOB, CallMode::Standard)
        .expect("id");
    hub.handle(
        t0,
        alice.id,
        Input::Voicemail {
            to: BOB,
            decision: Ok(CallMode::Standard),
            id: id.clone(),
        },
    )
    .expect("voicemail");
    assert!(matches!(&alice.take()[..], [RelayMsg::Voicemail { .. }]));
    assert!(hub.media_wanted(&id, false), "the media leg may run");
    assert_eq!(
        hub.media_leg(alice.id, ALICE, &id, false)
            .expect("Alice's leg"),
        (BOB.to_string(), true, true)
    );
    assert!(hub.media_leg(bob.id, BOB, &id, false).is_err(), "not Bob's");
    hub.handle_timeout(t0 + MAX_VOICEMAIL - MS);
    assert!(bob.take().is_empty());
    hub.handle_timeout(t0 + MAX_VOICEMAIL);
    assert!(matches!(
        &alice.take()[..],
        [RelayMsg::Recording { on: false, .. }]
    ));
    assert_eq!(bob.take(), [RelayMsg::VoicemailLeft { from: ALICE.into() }]);
    assert!(!hub.media_wanted(&id, false));
    assert_eq!(hub.timers(), 0);
}

#[test]
fn the_calling_policy_refuses_server_features_and_stops_one_under_way() {
    use crate::policy::CallingPolicy;
    use shieldcall_proto::ErrorCode;
    let hub = hub();
    let t0 = Instant::now();
    let (mut alice, mut bob, mut carol) =
        (online(&hub, ALICE), online(&hub, BOB), online(&hub, CAROL));
    let id = up(&hub, t0, &mut alice, &mut bob);
    let record = |on| ClientMsg::Record {
        call_id: id.clone(),
        on,
    };
    hub.handle(t0, alice.id, Input::Call(record(true)))
        .expect("record");
    alice.take();
    bob.take();

    // The admin turns recording off: the recording under way stops for both.
    let policy = |recording, voicemail| CallingPolicy {
        allow_cloud_recording_for_calls: recording,
        allow_voicemail: voicemail,
        ..CallingPolicy::default()
    };
    hub.set_calling_policies([("example.test".to_string(), policy(false, true))].into());
    let stopped = RelayMsg::Recording {
        call_id: id.clone(),
        on: false,
        by: None,
    };
    assert_eq!(alice.take(), std::slice::from_ref(&stopped));
    assert_eq!(bob.take(), [stopped]);
    assert!(!hub.media_wanted(&id, false), "its legs end");
    // Nobody can start it again; the refusal says who decided.
    let e = hub
        .handle(t0, bob.id, Input::Call(record(true)))
        .expect_err("refused");
    assert_eq!(e.code, ErrorCode::NotAllowed);
    assert!(e.message.contains("your organisation"), "{}", e.message);
    // What the policy still allows goes on.
    hub.set_captions_deployed(true);
    hub.handle(
        t0,
        bob.id,
        Input::Call(ClientMsg::Captions {
            call_id: id.clone(),
            on: true,
        }),
    )
    .expect("captions");
    assert!(hub.media_wanted(&id, true));
    // The same policy again changes nothing.
    hub.set_calling_policies([("example.test".to_string(), policy(false, true))].into());
    assert!(
        alice
            .take()
            .iter()
            .all(|m| matches!(m, RelayMsg::Captions { .. }))
    );

    // Voicemail off: refused before anything is recorded.
    hub.set_calling_policies([("example.test".to_string(), policy(true, false))].into());
    let vm = hub
        .mint_call_id(CAROL, DAVE, CallMode::Standard)
        .expect("id");
    let e = hub
        .handle(
            t0,
            carol.id,
            Input::Voicemail {
                to: DAVE,
                decision: Ok(CallMode::Standard),
                id: vm,
            },
        )
        .expect_err("refused");
    assert_eq!(e.code, ErrorCode::NotAllowed);
    assert!(carol.take().is_empty());
}

/// Takes every output the state queued, in order.
fn outputs(core: &mut Core) -> Vec<Output> {
    std::iter::from_fn(|| core.poll_output()).collect()
}

/// The messages among `outputs` for `device`.
fn to(device: DeviceId, outputs: &[Output]) -> Vec<RelayMsg> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Deliver { device: d, msg } if *d == device => Some((**msg).clone()),
            _ => None,
        })
        .collect()
}

/// The state alone, in str0m's shape: no lock, no outbox, no runtime and no
/// clock but the test's. Inputs and time go in; outputs and the next
/// deadline come out.
#[test]
fn the_core_alone_takes_inputs_and_time_and_gives_outputs() {
    let t0 = Instant::now();
    let mut core = Core::new(
        Config {
            ring_timeout: RING,
            grace: GRACE,
            park_timeout: PARK,
            key: CallKey::random().expect("key"),
        },
        t0,
    );
    core.set_directory(Default::default(), vec![ALICE.into(), BOB.into()]);
    let alice = core.register(ALICE, "a", setting()).expect("alice");
    let bob = core.register(BOB, "b", setting()).expect("bob");
    assert_eq!(core.poll_timeout(), None, "no timer before a call");
    outputs(&mut core);

    // A call rings: one output each, in order, and one timer.
    let id = core
        .mint_call_id(ALICE, BOB, CallMode::Standard)
        .expect("id");
    let invite = Input::Invite {
        callee: BOB,
        decision: Ok(CallMode::Standard),
        call_id: id.clone(),
        referred_by: None,
    };
    core.handle(t0, alice, invite).expect("invite");
    let out = outputs(&mut core);
    assert!(matches!(&to(alice, &out)[..], [RelayMsg::Calling { .. }]));
    assert!(matches!(&to(bob, &out)[..], [RelayMsg::Incoming { .. }]));
    assert_eq!(out.len(), 2);
    assert_eq!(core.poll_timeout(), Some(t0 + RING));

    // A device that is not signed in asks nothing of anyone.
    let hangup = ClientMsg::Hangup {
        call_id: id.clone(),
        reason: HangupReason::Normal,
    };
    core.handle(t0, 9_999, Input::Call(hangup))
        .expect("ignored");
    assert!(outputs(&mut core).is_empty());

    // The ring timeout, driven by the test's clock alone.
    core.handle_timeout(t0 + RING - MS);
    assert!(outputs(&mut core).is_empty(), "not yet");
    core.handle_timeout(t0 + RING);
    let out = outputs(&mut core);
    assert!(matches!(
        &to(alice, &out)[..],
        [RelayMsg::CallRefused {
            reason: RefuseReason::NoAnswer,
            ..
        }]
    ));
    assert!(matches!(&to(bob, &out)[..], [RelayMsg::Cancelled { .. }]));
    assert_eq!(core.poll_timeout(), None);

    // A sign-out: the error, then the connection's close.
    core.sign_out(BOB, None);
    let out = outputs(&mut core);
    assert!(matches!(&to(bob, &out)[..], [RelayMsg::Error { .. }]));
    assert_eq!(out.last(), Some(&Output::Close { device: bob }));
}
