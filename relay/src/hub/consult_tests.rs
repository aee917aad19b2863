//! Consult transfer on the hub's own clock: Alice calls Bob, Bob holds the call
//! and consults Carol, then joins Alice and Carol. The hand-over, its join
//! timeout, a device lost while consulting, and the held call coming back.

use std::time::{Duration, Instant};

use shieldcall_proto::{CallId, CallMode, ClientMsg, HangupReason, RelayMsg, Status};

use super::consult::JOIN_TIMEOUT;
use super::tests::{ALICE, BOB, CAROL, DAVE, GRACE, MS, Phone, commit, hangup, online, three, up};
use super::{Hub, Input, Outcome};

/// Alice and Bob in an answered standard call that Bob holds, and Bob's
/// consultation with Carol, answered unless `answer` is false: the two ids.
pub(super) fn consulting(
    hub: &Hub,
    now: Instant,
    [alice, bob, carol]: [&mut Phone; 3],
    answer: bool,
) -> (CallId, CallId) {
    let held = up(hub, now, alice, bob);
    hub.handle(
        now,
        bob.id,
        Input::Call(ClientMsg::Hold {
            call_id: held.clone(),
            on: true,
        }),
    )
    .expect("hold");
    alice.take();
    bob.take();
    let consult = hub
        .mint_call_id(BOB, CAROL, CallMode::Standard)
        .expect("id");
    hub.handle(
        now,
        bob.id,
        Input::Consult {
            held: &held,
            callee: CAROL,
            decision: Ok(CallMode::Standard),
            call_id: consult.clone(),
        },
    )
    .expect("consult");
    assert!(matches!(&bob.take()[..], [RelayMsg::Calling { call_id, .. }] if *call_id == consult));
    assert!(
        matches!(&carol.take()[..], [RelayMsg::Incoming { call_id, .. }] if *call_id == consult)
    );
    if answer {
        hub.handle(
            now,
            carol.id,
            Input::Call(ClientMsg::Accept {
                call_id: consult.clone(),
                commit: commit(),
            }),
        )
        .expect("accept");
        assert!(matches!(&bob.take()[..], [RelayMsg::Accepted { .. }]));
    }
    assert!(alice.take().is_empty(), "Alice only waits on hold");
    (held, consult)
}

pub(super) fn status(hub: &Hub, user: &str) -> Status {
    hub.contacts_of(DAVE)
        .into_iter()
        .find(|p| p.user == user)
        .map_or(Status::Offline, |p| p.status)
}

#[test]
fn a_consult_transfer_hands_the_call_to_the_one_consulted() {
    let (hub, mut alice, mut bob, mut carol, dave) = three();
    let t0 = Instant::now();
    let (held, consult) = consulting(&hub, t0, [&mut alice, &mut bob, &mut carol], true);
    let t1 = t0 + Duration::from_secs(60);
    hub.handle(
        t1,
        bob.id,
        Input::ConsultTransfer {
            held: &held,
            consult: &consult,
            decision: Some(Ok(CallMode::Standard)),
        },
    )
    .expect("consult transfer");
    assert_eq!(
        bob.take(),
        [
            RelayMsg::Hangup {
                call_id: consult.clone(),
                reason: HangupReason::Transferred
            },
            RelayMsg::Hangup {
                call_id: held.clone(),
                reason: HangupReason::Transferred
            },
        ]
    );
    assert_eq!(
        carol.take(),
        [RelayMsg::Replaced {
            call_id: consult.clone(),
            join: held.clone(),
            peer: ALICE.into(),
            by: BOB.into(),
            mode: CallMode::Standard,
        }]
    );
    assert!(
        alice.take().is_empty(),
        "nothing for Alice before Carol commits"
    );
    assert_eq!(status(&hub, BOB), Status::Online, "Bob is free");
    assert_eq!(status(&hub, CAROL), Status::Busy);

    // Until Carol joins, what Alice's old leg still sends goes nowhere.
    let ice = ClientMsg::Ice {
        call_id: held.clone(),
        candidate: shieldcall_proto::IceCandidate {
            candidate: String::new(),
            sdp_mid: None,
            sdp_m_line_index: None,
            username_fragment: None,
        },
    };
    hub.handle(t1, alice.id, Input::Call(ice)).expect("dropped");
    assert!(carol.take().is_empty());
    // Bob is out of both calls; Dave was never in them.
    hub.handle(t1, bob.id, Input::Join(&join(&held)))
        .expect_err("not Bob's");
    hub.handle(t1, dave.id, Input::Join(&join(&held)))
        .expect_err("not Dave's");
    let no_commit = ClientMsg::Join {
        call_id: held.clone(),
        commit: None,
    };
    hub.handle(t1, carol.id, Input::Join(&no_commit))
        .expect_err("a join commits");

    hub.handle(t1, carol.id, Input::Join(&join(&held)))
        .expect("join");
    assert_eq!(
        alice.take(),
        [RelayMsg::NewLeg {
            call_id: held.clone(),
            peer: CAROL.into(),
            commit: commit().expect("commitment"),
        }]
    );
    assert_eq!(hub.timers(), 0, "the join timeout is gone");
    // The new pair talks: Alice's fresh offer reaches Carol.
    let offer = ClientMsg::Offer {
        call_id: held.clone(),
        sdp: "v=0\r\n".into(),
    };
    hub.handle(t1, alice.id, Input::Call(offer)).expect("offer");
    assert!(matches!(&carol.take()[..], [RelayMsg::Offer { .. }]));

    let t2 = t1 + Duration::from_secs(30);
    hub.handle(t2, alice.id, Input::Call(hangup(&held)))
        .expect("hangup");
    assert!(matches!(&carol.take()[..], [RelayMsg::Hangup { .. }]));
    // Each part of the call is in the history of the two people in it then.
    let mut parts: Vec<(String, String, i64)> = hub
        .take_history()
        .into_iter()
        .inspect(|r| assert_eq!(r.outcome, Outcome::Answered, "{r:?}"))
        .map(|r| (r.user, r.peer, r.duration_secs))
        .collect();
    parts.sort();
    let part = |u: &str, p: &str, d| (u.to_string(), p.to_string(), d);
    assert_eq!(
        parts,
        [
            part(ALICE, BOB, 60),
            part(ALICE, CAROL, 30),
            part(BOB, ALICE, 60),
            part(BOB, CAROL, 60),
            part(CAROL, ALICE, 30),
            part(CAROL, BOB, 60),
        ]
    );
    assert_eq!(status(&hub, CAROL), Status::Online);
    assert_eq!(status(&hub, ALICE), Status::Online);
}

fn join(id: &CallId) -> ClientMsg {
    ClientMsg::Join {
        call_id: id.clone(),
        commit: commit(),
    }
}

#[test]
fn a_call_handed_to_a_device_that_never_joins_ends_at_the_join_timeout() {
    let (hub, mut alice, mut bob, mut carol, _dave) = three();
    let t0 = Instant::now();
    let (held, consult) = consulting(&hub, t0, [&mut alice, &mut bob, &mut carol], true);
    hub.handle(
        t0,
        bob.id,
        Input::ConsultTransfer {
            held: &held,
            consult: &consult,
            decision: Some(Ok(CallMode::Standard)),
        },
    )
    .expect("consult transfer");
    carol.take();
    assert_eq!(hub.poll_timeout(), Some(t0 + JOIN_TIMEOUT));
    hub.handle_timeout(t0 + JOIN_TIMEOUT - MS);
    assert!(alice.take().is_empty() && carol.take().is_empty());
    hub.handle_timeout(t0 + JOIN_TIMEOUT);
    assert_eq!(
        alice.take(),
        [RelayMsg::Hangup {
            call_id: held.clone(),
            reason: HangupReason::PeerGone
        }]
    );
    assert!(matches!(&carol.take()[..], [RelayMsg::Hangup { .. }]));
    assert_eq!(hub.timers(), 0);
    assert_eq!(status(&hub, ALICE), Status::Online);
    assert_eq!(status(&hub, CAROL), Status::Online);
    hub.handle(t0 + JOIN_TIMEOUT, carol.id, Input::Join(&join(&held)))
        .expect_err("too late");
}

#[test]
fn the_held_call_is_the_callers_again_when_the_consultation_ends() {
    let (hub, mut alice, mut bob, mut carol, _dave) = three();
    let t0 = Instant::now();
    let (held, consult) = consulting(&hub, t0, [&mut alice, &mut bob, &mut carol], false);
    // While Bob consults, the held call stays held and cannot go elsewhere.
    let unhold = ClientMsg::Hold {
        call_id: held.clone(),
        on: false,
    };
    hub.handle(t0, bob.id, Input::Call(unhold.clone()))
        .expect_err("held while consulting");
    hub.handle(
        t0,
        bob.id,
        Input::Park {
            id: &held,
            code: None,
        },
    )
    .expect_err("no park while consulting");
    hub.handle(
        t0,
        bob.id,
        Input::Transfer {
            id: &held,
            target: DAVE,
            allowed: true,
        },
    )
    .expect_err("no blind transfer while consulting");
    let second = hub.mint_call_id(BOB, DAVE, CallMode::Standard).expect("id");
    hub.handle(
        t0,
        bob.id,
        Input::Consult {
            held: &held,
            callee: DAVE,
            decision: Ok(CallMode::Standard),
            call_id: second,
        },
    )
    .expect_err("one consultation at a time");

    // Carol declines: the held call is Bob's again, and he takes it back.
    hub.handle(
        t0,
        carol.id,
        Input::Call(ClientMsg::Decline {
            call_id: consult.clone(),
        }),
    )
    .expect("decline");
    assert!(matches!(&bob.take()[..], [RelayMsg::CallRefused { .. }]));
    assert_eq!(status(&hub, BOB), Status::Busy, "still in the held call");
    assert_eq!(status(&hub, CAROL), Status::Online);
    hub.handle(t0, bob.id, Input::Call(unhold)).expect("unhold");
    assert!(matches!(
        &alice.take()[..],
        [RelayMsg::Hold { by_peer: false, .. }]
    ));
    // Not held any more: no consultation until it is again.
    let again = hub
        .mint_call_id(BOB, CAROL, CallMode::Standard)
        .expect("id");
    let consult_again = |now| {
        hub.handle(
            now,
            bob.id,
            Input::Consult {
                held: &held,
                callee: CAROL,
                decision: Ok(CallMode::Standard),
                call_id: again.clone(),
            },
        )
    };
    consult_again(t0).expect_err("the call must be held first");
    let hold = ClientMsg::Hold {
        call_id: held.clone(),
        on: true,
    };
    hub.handle(t0, bob.id, Input::Call(hold)).expect("hold");
    consult_again(t0).expect("a second consultation");
    assert!(matches!(&carol.take()[..], [RelayMsg::Incoming { .. }]));
}

#[test]
fn a_device_lost_while_consulting_leaves_both_calls_to_the_grace() {
    let (hub, mut alice, mut bob, mut carol, _dave) = three();
    let t0 = Instant::now();
    let (held, consult) = consulting(&hub, t0, [&mut alice, &mut bob, &mut carol], true);
    hub.unregister(t0, bob.id, BOB);
    assert!(alice.take().is_empty() && carol.take().is_empty());
    // Bob comes back on a new device within the grace and resumes the held call.
    let mut bob2 = online(&hub, BOB);
    hub.handle(
        t0 + GRACE - MS,
        bob2.id,
        Input::Resume {
            msg: ClientMsg::Resume {
                call_id: held.clone(),
                peer: ALICE.into(),
                mode: CallMode::Standard,
            },
            decision: None,
        },
    )
    .expect("resume");
    assert!(matches!(
        &bob2.take()[..],
        [RelayMsg::Hold { by_me: true, .. }]
    ));
    // The consultation he did not resume ends at the grace; the held call stays.
    hub.handle_timeout(t0 + GRACE);
    assert_eq!(
        carol.take(),
        [RelayMsg::Hangup {
            call_id: consult,
            reason: HangupReason::PeerGone
        }]
    );
    assert!(alice.take().is_empty());
    assert_eq!(status(&hub, BOB), Status::Busy);
    assert_eq!(status(&hub, CAROL), Status::Online);
    hub.handle(t0 + GRACE, bob2.id, Input::Call(hangup(&held)))
        .expect("hangup");
    assert!(matches!(&alice.take()[..], [RelayMsg::Hangup { .. }]));
    assert_eq!(hub.timers(), 0);
    assert_eq!(status(&hub, BOB), Status::Online);
}

#[test]
fn a_consultation_still_ringing_is_cancelled_with_the_device() {
    let (hub, mut alice, mut bob, mut carol, _dave) = three();
    let t0 = Instant::now();
    let (_, consult) = consulting(&hub, t0, [&mut alice, &mut bob, &mut carol], false);
    hub.unregister(t0, bob.id, BOB);
    assert_eq!(carol.take(), [RelayMsg::Cancelled { call_id: consult }]);
    // The held call waits the grace for Bob, then ends.
    hub.handle_timeout(t0 + GRACE);
    assert!(matches!(
        &alice.take()[..],
        [RelayMsg::Hangup {
            reason: HangupReason::PeerGone,
            ..
        }]
    ));
    assert_eq!(hub.timers(), 0);
    for u in [ALICE, BOB, CAROL] {
        assert_ne!(status(&hub, u), Status::Busy, "{u}");
    }
}
