//! Group calls on the hub's own clock: Alice and Bob in a standard call, Carol
//! and Dave added, legs made and joined, people leaving, a merge, the limits.

use std::time::Instant;

use shieldcall_proto::{CallId, CallMode, ClientMsg, HangupReason, RelayMsg, Status};

use super::consult_tests::{consulting, status};
use super::group::MAX_GROUP;
use super::tests::{ALICE, BOB, CAROL, DAVE, GRACE, Phone, commit, hangup, hub, online, three, up};
use super::{Hub, Input, WireError};
use crate::policy::Refusal;

const ERIN: &str = "erin@example.test";

/// Standard decisions for `to` with each of `members`.
fn standard(members: &[&str]) -> Vec<(String, Result<CallMode, Refusal>)> {
    members
        .iter()
        .map(|m| ((*m).to_string(), Ok(CallMode::Standard)))
        .collect()
}

/// `by` (on `phone`) adds `to` into call `id`, with every decision standard.
fn add(
    hub: &Hub,
    now: Instant,
    (by, phone): (&str, &Phone),
    id: &CallId,
    to: &str,
    members: &[&str],
) -> Result<CallId, WireError> {
    let new = hub.mint_call_id(by, to, CallMode::Standard).expect("id");
    hub.handle(
        now,
        phone.id,
        Input::Add {
            id,
            to,
            decisions: &standard(members),
            call_id: new.clone(),
        },
    )?;
    Ok(new)
}

/// The `leg` messages in `msgs`: (leg, peer).
fn legs(msgs: &[RelayMsg]) -> Vec<(CallId, String)> {
    msgs.iter()
        .filter_map(|m| match m {
            RelayMsg::Leg { call_id, peer, .. } => Some((call_id.clone(), peer.clone())),
            _ => None,
        })
        .collect()
}

fn group_of(msgs: &[RelayMsg]) -> Option<Vec<String>> {
    msgs.iter().rev().find_map(|m| match m {
        RelayMsg::Group { members } => Some(members.clone()),
        _ => None,
    })
}

fn join(hub: &Hub, now: Instant, phone: &Phone, leg: &CallId) {
    hub.handle(
        now,
        phone.id,
        Input::Join(&ClientMsg::Join {
            call_id: leg.clone(),
            commit: commit(),
        }),
    )
    .expect("join");
}

fn accept(hub: &Hub, now: Instant, phone: &Phone, id: &CallId) {
    hub.handle(
        now,
        phone.id,
        Input::Call(ClientMsg::Accept {
            call_id: id.clone(),
            commit: commit(),
        }),
    )
    .expect("accept");
}

/// Alice and Bob in a call, Bob adds Carol, and Carol joins her leg with
/// Alice: the three legs (Alice–Bob, Bob–Carol, Alice–Carol), every outbox read.
fn group_of_three(
    hub: &Hub,
    t: Instant,
    [alice, bob, carol]: [&mut Phone; 3],
) -> (CallId, CallId, CallId) {
    let ab = up(hub, t, alice, bob);
    let bc = add(hub, t, (BOB, &*bob), &ab, CAROL, &[ALICE, BOB]).expect("add");
    accept(hub, t, &*carol, &bc);
    let ac = legs(&carol.take())[0].0.clone();
    join(hub, t, &*carol, &ac);
    alice.take();
    bob.take();
    (ab, bc, ac)
}

#[test]
fn an_added_person_meets_every_member_and_a_fifth_is_refused() {
    let hub = hub();
    let (mut alice, mut bob, mut carol, mut dave) = (
        online(&hub, ALICE),
        online(&hub, BOB),
        online(&hub, CAROL),
        online(&hub, DAVE),
    );
    let mut erin = online(&hub, ERIN);
    let t = Instant::now();
    let ab = up(&hub, t, &mut alice, &mut bob);

    // Bob adds Carol: she rings with Alice named.
    let bc = add(&hub, t, (BOB, &bob), &ab, CAROL, &[ALICE, BOB]).expect("add");
    assert!(matches!(&bob.take()[..], [RelayMsg::Calling { call_id, .. }] if *call_id == bc));
    assert_eq!(
        carol.take(),
        [RelayMsg::Incoming {
            call_id: bc.clone(),
            from: BOB.into(),
            mode: CallMode::Standard,
            referred_by: None,
            group: vec![ALICE.into()],
        }]
    );
    assert!(
        alice.take().is_empty(),
        "nothing for Alice while Carol rings"
    );
    // One add at a time.
    add(&hub, t, (ALICE, &alice), &ab, DAVE, &[ALICE, BOB]).expect_err("one at a time");
    accept(&hub, t, &carol, &bc);
    assert!(matches!(
        &bob.take()[..],
        [RelayMsg::Accepted { .. }, RelayMsg::Group { .. }]
    ));
    let to_carol = carol.take();
    let carol_legs = legs(&to_carol);
    assert_eq!(carol_legs.len(), 1);
    assert_eq!(carol_legs[0].1, ALICE);
    let members = vec![ALICE.to_string(), BOB.into(), CAROL.into()];
    assert_eq!(group_of(&to_carol), Some(members.clone()));
    assert_eq!(group_of(&alice.take()), Some(members));
    let ac = carol_legs[0].0.clone();
    join(&hub, t, &carol, &ac);
    assert_eq!(
        alice.take(),
        [RelayMsg::NewLeg {
            call_id: ac.clone(),
            peer: CAROL.into(),
            commit: commit().expect("commitment"),
        }]
    );
    assert_eq!(hub.timers(), 0);

    // Alice adds Dave: he gets legs with Bob and Carol (Alice called him).
    let ad = add(&hub, t, (ALICE, &alice), &ac, DAVE, &[ALICE, BOB, CAROL]).expect("add");
    alice.take();
    assert!(matches!(&dave.take()[..], [RelayMsg::Incoming { group, .. }] if group.len() == 2));
    accept(&hub, t, &dave, &ad);
    let mut peers: Vec<String> = legs(&dave.take()).into_iter().map(|(_, p)| p).collect();
    peers.sort();
    assert_eq!(peers, [BOB, CAROL]);
    for p in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(group_of(&p.take()).map(|m| m.len()), Some(MAX_GROUP));
    }
    // A fifth is one too many.
    add(&hub, t, (BOB, &bob), &ab, ERIN, &[ALICE, BOB, CAROL, DAVE]).expect_err("at most four");
    assert!(erin.take().is_empty());
    for u in [ALICE, BOB, CAROL] {
        assert_eq!(status(&hub, u), Status::Busy, "{u}");
    }
}

#[test]
fn a_member_who_leaves_ends_only_their_legs() {
    let (hub, mut alice, mut bob, mut carol, _dave) = three();
    let t = Instant::now();
    let (ab, bc, ac) = group_of_three(&hub, t, [&mut alice, &mut bob, &mut carol]);

    // Carol leaves: she hangs up both her legs.
    hub.handle(t, carol.id, Input::Call(hangup(&bc)))
        .expect("hangup");
    hub.handle(t, carol.id, Input::Call(hangup(&ac)))
        .expect("hangup");
    let to_bob = bob.take();
    assert!(matches!(to_bob[0], RelayMsg::Hangup { .. }));
    assert_eq!(group_of(&to_bob), Some(vec![ALICE.into(), BOB.into()]));
    assert!(matches!(alice.take()[0], RelayMsg::Hangup { .. }));
    assert_eq!(status(&hub, CAROL), Status::Online);
    // Alice and Bob go on in their own leg, a call like any again: it holds.
    assert_eq!(status(&hub, ALICE), Status::Busy);
    for on in [true, false] {
        let hold = ClientMsg::Hold {
            call_id: ab.clone(),
            on,
        };
        hub.handle(t, alice.id, Input::Call(hold))
            .expect("a 1:1 call holds");
    }
    alice.take();
    bob.take();
    hub.handle(
        t,
        alice.id,
        Input::Call(ClientMsg::Offer {
            call_id: ab.clone(),
            sdp: "v=0\r\n".into(),
        }),
    )
    .expect("offer");
    assert!(matches!(&bob.take()[..], [RelayMsg::Offer { .. }]));
    hub.handle(t, bob.id, Input::Call(hangup(&ab)))
        .expect("hangup");
    for u in [ALICE, BOB, CAROL] {
        assert_eq!(status(&hub, u), Status::Online, "{u}");
    }
    assert_eq!(hub.calls_of_user(ALICE), Vec::<CallId>::new());
}

#[test]
fn a_group_is_refused_what_it_cannot_be() {
    let hub = hub();
    let (mut alice, mut bob, mut carol) =
        (online(&hub, ALICE), online(&hub, BOB), online(&hub, CAROL));
    let t = Instant::now();
    let ab = up(&hub, t, &mut alice, &mut bob);
    let id = || {
        hub.mint_call_id(BOB, CAROL, CallMode::Standard)
            .expect("id")
    };
    // A pair that would be end-to-end encrypted refuses the add.
    let mut decisions = standard(&[ALICE]);
    decisions.push((BOB.into(), Ok(CallMode::E2ee)));
    let e = hub
        .handle(
            t,
            bob.id,
            Input::Add {
                id: &ab,
                to: CAROL,
                decisions: &decisions,
                call_id: id(),
            },
        )
        .expect_err("E2EE pair");
    assert_eq!(e.code, shieldcall_proto::ErrorCode::UnavailableInE2ee);
    // Someone in it already; someone else's call.
    add(&hub, t, (BOB, &bob), &ab, ALICE, &[ALICE, BOB]).expect_err("in it");
    add(&hub, t, (CAROL, &carol), &ab, DAVE, &[ALICE, BOB]).expect_err("not hers");
    assert!(carol.take().is_empty());
    // A held call is taken off hold first.
    hub.handle(
        t,
        bob.id,
        Input::Call(ClientMsg::Hold {
            call_id: ab.clone(),
            on: true,
        }),
    )
    .expect("hold");
    add(&hub, t, (BOB, &bob), &ab, CAROL, &[ALICE, BOB]).expect_err("held");
    hub.handle(
        t,
        bob.id,
        Input::Call(ClientMsg::Hold {
            call_id: ab.clone(),
            on: false,
        }),
    )
    .expect("unhold");
    // Once a group, its legs are not held, parked or transferred.
    let bc = add(&hub, t, (BOB, &bob), &ab, CAROL, &[ALICE, BOB]).expect("add");
    accept(&hub, t, &carol, &bc);
    let hold = ClientMsg::Hold {
        call_id: ab.clone(),
        on: true,
    };
    hub.handle(t, alice.id, Input::Call(hold))
        .expect_err("no hold");
    hub.handle(
        t,
        alice.id,
        Input::Park {
            id: &ab,
            code: None,
        },
    )
    .expect_err("no park");
    hub.handle(
        t,
        alice.id,
        Input::Transfer {
            id: &ab,
            target: DAVE,
            allowed: true,
        },
    )
    .expect_err("no transfer");
}

#[test]
fn a_merge_joins_the_held_call_and_the_consultation() {
    let (hub, mut alice, mut bob, mut carol, _dave) = three();
    let t = Instant::now();
    let (held, consult) = consulting(&hub, t, [&mut alice, &mut bob, &mut carol], true);
    hub.handle(
        t,
        carol.id,
        Input::Merge {
            held: &held,
            consult: &consult,
            decision: Some(Ok(CallMode::Standard)),
        },
    )
    .expect_err("only Bob merges");
    hub.handle(
        t,
        bob.id,
        Input::Merge {
            held: &held,
            consult: &consult,
            decision: Some(Ok(CallMode::E2ee)),
        },
    )
    .expect_err("an E2EE pair");
    hub.handle(
        t,
        bob.id,
        Input::Merge {
            held: &held,
            consult: &consult,
            decision: Some(Ok(CallMode::Standard)),
        },
    )
    .expect("merge");
    let unheld = |id: &CallId| RelayMsg::Hold {
        call_id: id.clone(),
        by_me: false,
        by_peer: false,
    };
    let members = vec![ALICE.to_string(), BOB.into(), CAROL.into()];
    assert_eq!(
        alice.take(),
        [
            unheld(&held),
            RelayMsg::Group {
                members: members.clone()
            }
        ]
    );
    assert_eq!(
        bob.take(),
        [
            unheld(&held),
            RelayMsg::Group {
                members: members.clone()
            }
        ]
    );
    let to_carol = carol.take();
    let ac = legs(&to_carol);
    assert_eq!(ac.len(), 1);
    assert_eq!(group_of(&to_carol), Some(members));
    join(&hub, t, &carol, &ac[0].0);
    assert!(matches!(&alice.take()[..], [RelayMsg::NewLeg { peer, .. }] if peer == CAROL));
    // Bob may now hold neither call: both are legs.
    let hold = ClientMsg::Hold {
        call_id: held,
        on: true,
    };
    hub.handle(t, bob.id, Input::Call(hold)).expect_err("a leg");
}

#[test]
fn a_device_lost_in_a_group_leaves_every_leg_to_the_grace() {
    let (hub, mut alice, mut bob, mut carol, _dave) = three();
    let t = Instant::now();
    let (ab, bc, ac) = group_of_three(&hub, t, [&mut alice, &mut bob, &mut carol]);
    hub.unregister(t, bob.id, BOB);
    hub.handle_timeout(t + GRACE);
    let gone = |id: &CallId| RelayMsg::Hangup {
        call_id: id.clone(),
        reason: HangupReason::PeerGone,
    };
    let to_alice = alice.take();
    assert_eq!(to_alice[0], gone(&ab));
    assert_eq!(group_of(&to_alice), Some(vec![ALICE.into(), CAROL.into()]));
    assert_eq!(carol.take()[0], gone(&bc));
    assert_eq!(status(&hub, ALICE), Status::Busy, "still with Carol");
    assert_eq!(hub.calls_of_user(CAROL), vec![ac]);
    assert_eq!(hub.timers(), 0);
}
