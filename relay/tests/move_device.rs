//! Moving an answered standard call to another device of the same user: every
//! other device learns of the call, `move-here` binds the new device, the old one
//! gets `hangup` (`moved`), the other person's device `new-leg` with the new
//! commitment, and media messages follow the new binding. E2EE calls, calls the
//! policies would now make E2EE, and every malformed or foreign request are
//! refused and change nothing.

mod common;

use std::time::Duration;

use common::*;
use shieldcall_proto::{
    CallId, CallMode, ClientMsg, Commitment, ErrorCode, HangupReason, RelayMsg,
};

const QUIET: Duration = Duration::from_millis(120);

fn other_commit() -> Commitment {
    "11".repeat(32).parse().expect("commitment")
}

fn move_here(id: &CallId, commit: Option<Commitment>) -> ClientMsg {
    ClientMsg::MoveHere {
        call_id: id.clone(),
        commit,
    }
}

fn elsewhere(id: &CallId, peer: &str) -> RelayMsg {
    RelayMsg::ElsewhereCall {
        call_id: id.clone(),
        peer: peer.into(),
        mode: CallMode::Standard,
    }
}

fn offer(id: &CallId) -> ClientMsg {
    ClientMsg::Offer {
        call_id: id.clone(),
        sdp: "v=0\r\n".into(),
    }
}

#[tokio::test]
async fn a_standard_call_moves_to_another_device_and_back() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    relay.add_user("bob@a.test", false).await;
    let (mut ann, _) = relay.device("ann@a.test").await;
    let (mut ann2, _) = relay.device("ann@a.test").await;
    let (mut bob1, _) = relay.device("bob@a.test").await;
    let (mut bob2, _) = relay.device("bob@a.test").await;
    ann.send(&ClientMsg::SetE2ee { enabled: false }).await;
    assert!(matches!(ann.recv().await, RelayMsg::Settings { .. }));
    assert!(matches!(ann2.recv().await, RelayMsg::Settings { .. }));
    ann.send(&ClientMsg::Invite {
        to: "bob@a.test".into(),
        transfer: None,
    })
    .await;
    let id = call_id(&ann.recv().await);
    call_id(&bob1.recv().await);
    call_id(&bob2.recv().await);
    bob1.send(&ClientMsg::Accept {
        call_id: id.clone(),
        commit: Some(commit()),
    })
    .await;
    assert!(matches!(ann.recv().await, RelayMsg::Accepted { .. }));
    // The other devices of both people learn of the answered call.
    assert!(matches!(
        bob2.recv().await,
        RelayMsg::AnsweredElsewhere { .. }
    ));
    assert_eq!(bob2.recv().await, elsewhere(&id, "ann@a.test"));
    assert_eq!(ann2.recv().await, elsewhere(&id, "bob@a.test"));
    ann.expect_quiet(QUIET).await;
    bob1.expect_quiet(QUIET).await;
    // A device that connects later hears of it right after `welcome`.
    let (mut bob3, _) = relay.device("bob@a.test").await;
    assert_eq!(bob3.recv().await, elsewhere(&id, "ann@a.test"));

    // Bob moves the call to his second device.
    bob2.send(&move_here(&id, Some(other_commit()))).await;
    assert_eq!(
        bob1.recv().await,
        RelayMsg::Hangup {
            call_id: id.clone(),
            reason: HangupReason::Moved
        }
    );
    assert_eq!(bob1.recv().await, elsewhere(&id, "ann@a.test"));
    assert_eq!(
        ann.recv().await,
        RelayMsg::NewLeg {
            call_id: id.clone(),
            peer: "bob@a.test".into(),
            commit: other_commit()
        }
    );
    // Ann's fresh offer reaches the new device only; the old one is unbound.
    ann.send(&offer(&id)).await;
    assert!(matches!(bob2.recv().await, RelayMsg::Offer { .. }));
    bob1.send(&offer(&id)).await;
    assert_eq!(error_code(&bob1.recv().await), Some(ErrorCode::NotYourCall));
    bob3.expect_quiet(QUIET).await;

    // And back to the first device.
    bob1.send(&move_here(&id, Some(commit()))).await;
    assert!(matches!(
        bob2.recv().await,
        RelayMsg::Hangup {
            reason: HangupReason::Moved,
            ..
        }
    ));
    assert_eq!(bob2.recv().await, elsewhere(&id, "ann@a.test"));
    assert!(matches!(ann.recv().await, RelayMsg::NewLeg { commit: c, .. } if c == commit()));

    // Hang-up: every device that was told of the call hears it is over.
    bob1.send(&ClientMsg::Hangup {
        call_id: id.clone(),
        reason: HangupReason::Normal,
    })
    .await;
    assert!(matches!(ann.recv().await, RelayMsg::Hangup { .. }));
    for d in [&mut bob2, &mut bob3, &mut ann2] {
        assert_eq!(
            d.recv().await,
            RelayMsg::ElsewhereEnded {
                call_id: id.clone()
            }
        );
    }
    bob1.expect_quiet(QUIET).await;
    relay.stop().await;
}

#[tokio::test]
async fn an_e2ee_call_does_not_move() {
    let relay = start().await;
    let (mut ann, mut bob, id) = answered_call(&relay).await;
    let (mut bob2, _) = relay.device("bob@a.test").await;
    let announced = bob2.recv().await;
    assert!(
        matches!(
            &announced,
            RelayMsg::ElsewhereCall {
                mode: CallMode::E2ee,
                ..
            }
        ),
        "{announced:?}"
    );
    bob2.send(&move_here(&id, Some(other_commit()))).await;
    let got = bob2.recv().await;
    assert_eq!(
        error_code(&got),
        Some(ErrorCode::UnavailableInE2ee),
        "{got:?}"
    );
    ann.expect_quiet(QUIET).await;
    bob.expect_quiet(QUIET).await;
    // Still bound to the first device.
    ann.send(&offer(&id)).await;
    assert!(matches!(bob.recv().await, RelayMsg::Offer { .. }));
    relay.stop().await;
}

#[tokio::test]
async fn a_call_the_policies_would_now_make_e2ee_does_not_move() {
    let relay = start().await;
    let (mut ann, mut bob, id) = answered_call_in(&relay, CallMode::Standard).await;
    // Ann turns her switch back on during the call: a new call between them
    // would be end-to-end encrypted, so no new leg is made as standard. (A
    // switch changes at most once a second.)
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ann.send(&ClientMsg::SetE2ee { enabled: true }).await;
    assert!(matches!(ann.recv().await, RelayMsg::Settings { .. }));
    let (mut bob2, _) = relay.device("bob@a.test").await;
    assert_eq!(bob2.recv().await, elsewhere(&id, "ann@a.test"));
    bob2.send(&move_here(&id, Some(other_commit()))).await;
    assert_eq!(
        error_code(&bob2.recv().await),
        Some(ErrorCode::UnavailableInE2ee)
    );
    ann.expect_quiet(QUIET).await;
    bob.expect_quiet(QUIET).await;
    relay.stop().await;
}

#[tokio::test]
async fn bad_moves_are_refused_and_change_nothing() {
    let relay = start().await;
    relay.add_user("eve@a.test", false).await;
    let (mut ann, mut bob, id) = answered_call_in(&relay, CallMode::Standard).await;
    let (mut bob2, _) = relay.device("bob@a.test").await;
    assert_eq!(bob2.recv().await, elsewhere(&id, "ann@a.test"));
    let (mut eve, _) = relay.device("eve@a.test").await;

    // No commitment.
    bob2.send(&move_here(&id, None)).await;
    assert_eq!(
        error_code(&bob2.recv().await),
        Some(ErrorCode::BadCommitment)
    );
    // From the device that has the call.
    bob.send(&move_here(&id, Some(commit()))).await;
    assert_eq!(error_code(&bob.recv().await), Some(ErrorCode::WrongState));
    // Someone else's call, and a call that does not exist.
    eve.send(&move_here(&id, Some(commit()))).await;
    assert_eq!(error_code(&eve.recv().await), Some(ErrorCode::NotYourCall));
    bob2.send(&move_here(&CallId("00".repeat(32)), Some(commit())))
        .await;
    assert_eq!(error_code(&bob2.recv().await), Some(ErrorCode::NotYourCall));
    // `feature` does not move a call.
    bob2.send(&ClientMsg::Feature {
        call_id: id.clone(),
        feature: shieldcall_proto::CallFeature::MoveToDevice,
    })
    .await;
    assert_eq!(error_code(&bob2.recv().await), Some(ErrorCode::NotYourCall));
    bob.send(&ClientMsg::Feature {
        call_id: id.clone(),
        feature: shieldcall_proto::CallFeature::MoveToDevice,
    })
    .await;
    assert_eq!(error_code(&bob.recv().await), Some(ErrorCode::WrongState));
    ann.expect_quiet(QUIET).await;
    // Nothing changed: the call is still on Bob's first device.
    ann.send(&offer(&id)).await;
    assert!(matches!(bob.recv().await, RelayMsg::Offer { .. }));
    bob2.expect_quiet(QUIET).await;
    relay.stop().await;
}

#[tokio::test]
async fn a_ringing_call_does_not_move() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    relay.add_user("bob@a.test", false).await;
    let (mut ann, _) = relay.device("ann@a.test").await;
    let (mut ann2, _) = relay.device("ann@a.test").await;
    let (mut bob, _) = relay.device("bob@a.test").await;
    ann.send(&ClientMsg::SetE2ee { enabled: false }).await;
    assert!(matches!(ann.recv().await, RelayMsg::Settings { .. }));
    assert!(matches!(ann2.recv().await, RelayMsg::Settings { .. }));
    ann.send(&ClientMsg::Invite {
        to: "bob@a.test".into(),
        transfer: None,
    })
    .await;
    let id = call_id(&ann.recv().await);
    call_id(&bob.recv().await);
    ann2.send(&move_here(&id, Some(commit()))).await;
    assert_eq!(error_code(&ann2.recv().await), Some(ErrorCode::WrongState));
    bob.expect_quiet(QUIET).await;
    relay.stop().await;
}
