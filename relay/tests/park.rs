//! Park and pickup: a side of an answered standard call parks it under a
//! two-digit code; the other person waits; someone else (or the parker, on any
//! device) picks it up with the code and the person waiting connects afresh to
//! that device (`new-leg`); after the park timeout the parker is rung back, and a
//! ring-back nobody answers ends the call. Every refusal changes nothing.

mod common;

use std::time::Duration;

use common::*;
use shieldcall_proto::{
    CallFeature, CallId, CallMode, ClientMsg, Commitment, ErrorCode, HangupReason, RelayMsg,
};

const QUIET: Duration = Duration::from_millis(120);

fn cat_commit() -> Commitment {
    "22".repeat(32).parse().expect("commitment")
}

fn offer(id: &CallId) -> ClientMsg {
    ClientMsg::Offer {
        call_id: id.clone(),
        sdp: "v=0\r\n".into(),
    }
}

/// Bob parks the call; returns the code after checking both sides heard.
async fn park(ann: &mut Client, bob: &mut Client, id: &CallId) -> u8 {
    bob.send(&ClientMsg::Park {
        call_id: id.clone(),
    })
    .await;
    let RelayMsg::Parked { call_id, code } = bob.recv().await else {
        panic!("bob was not told the code")
    };
    assert_eq!(&call_id, id);
    assert!((10..=99).contains(&code), "{code}");
    assert_eq!(
        ann.recv().await,
        RelayMsg::OnPark {
            call_id: id.clone(),
            code
        }
    );
    code
}

#[tokio::test]
async fn a_parked_call_is_picked_up_by_someone_else() {
    let relay = start().await;
    relay.add_user("cat@a.test", false).await;
    let (mut ann, mut bob, id) = answered_call_in(&relay, CallMode::Standard).await;
    let (mut cat, _) = relay.device("cat@a.test").await;
    let code = park(&mut ann, &mut bob, &id).await;
    // Bob's device has let go: the call is not his to use any more.
    bob.send(&offer(&id)).await;
    assert_eq!(error_code(&bob.recv().await), Some(ErrorCode::NotYourCall));
    // Ann's messages have nowhere to go while she waits.
    ann.send(&offer(&id)).await;
    assert_eq!(error_code(&ann.recv().await), Some(ErrorCode::WrongState));

    cat.send(&ClientMsg::Pickup {
        code,
        commit: Some(cat_commit()),
    })
    .await;
    assert_eq!(
        cat.recv().await,
        RelayMsg::PickedUp {
            call_id: id.clone(),
            code,
            peer: "ann@a.test".into(),
            mode: CallMode::Standard
        }
    );
    assert_eq!(
        ann.recv().await,
        RelayMsg::NewLeg {
            call_id: id.clone(),
            peer: "cat@a.test".into(),
            commit: cat_commit()
        }
    );
    ann.send(&offer(&id)).await;
    assert!(matches!(cat.recv().await, RelayMsg::Offer { .. }));
    bob.expect_quiet(QUIET).await;
    // The code is free again and names no call.
    bob.send(&ClientMsg::Pickup {
        code,
        commit: Some(commit()),
    })
    .await;
    let got = bob.recv().await;
    assert_eq!(error_code(&got), Some(ErrorCode::NotYourCall), "{got:?}");
    // Cat hangs up: Ann hears it.
    cat.send(&ClientMsg::Hangup {
        call_id: id.clone(),
        reason: HangupReason::Normal,
    })
    .await;
    assert!(matches!(ann.recv().await, RelayMsg::Hangup { .. }));
    relay.stop().await;
}

#[tokio::test]
async fn bad_parks_and_pickups_are_refused_and_change_nothing() {
    let relay = start().await;
    relay.add_user("cat@a.test", false).await;
    let (mut ann, mut bob, id) = answered_call_in(&relay, CallMode::Standard).await;
    let (mut cat, _) = relay.device("cat@a.test").await;
    let (mut ann2, _) = relay.device("ann@a.test").await;
    assert!(matches!(ann2.recv().await, RelayMsg::ElsewhereCall { .. }));

    // `feature` does not park; a stranger cannot park; an unknown code.
    bob.send(&ClientMsg::Feature {
        call_id: id.clone(),
        feature: CallFeature::Park,
    })
    .await;
    assert_eq!(error_code(&bob.recv().await), Some(ErrorCode::WrongState));
    cat.send(&ClientMsg::Park {
        call_id: id.clone(),
    })
    .await;
    assert_eq!(error_code(&cat.recv().await), Some(ErrorCode::NotYourCall));
    cat.send(&ClientMsg::Pickup {
        code: 42,
        commit: Some(cat_commit()),
    })
    .await;
    assert_eq!(error_code(&cat.recv().await), Some(ErrorCode::NotYourCall));
    ann.expect_quiet(QUIET).await;
    bob.expect_quiet(QUIET).await;

    let code = park(&mut ann, &mut bob, &id).await;
    // Parking twice, from the device that let go.
    bob.send(&ClientMsg::Park {
        call_id: id.clone(),
    })
    .await;
    assert_eq!(error_code(&bob.recv().await), Some(ErrorCode::NotYourCall));
    // Ann cannot pick up her own waiting call from another device.
    ann2.send(&ClientMsg::Pickup {
        code,
        commit: Some(commit()),
    })
    .await;
    assert_eq!(error_code(&ann2.recv().await), Some(ErrorCode::WrongState));
    // No commitment.
    cat.send(&ClientMsg::Pickup { code, commit: None }).await;
    assert_eq!(
        error_code(&cat.recv().await),
        Some(ErrorCode::BadCommitment)
    );
    ann.expect_quiet(QUIET).await;
    // Still parked: Cat picks it up now.
    cat.send(&ClientMsg::Pickup {
        code,
        commit: Some(cat_commit()),
    })
    .await;
    assert!(matches!(cat.recv().await, RelayMsg::PickedUp { .. }));
    assert!(matches!(ann.recv().await, RelayMsg::NewLeg { .. }));
    relay.stop().await;
}

#[tokio::test]
async fn an_e2ee_call_does_not_park() {
    let relay = start().await;
    let (mut ann, mut bob, id) = answered_call(&relay).await;
    bob.send(&ClientMsg::Park {
        call_id: id.clone(),
    })
    .await;
    assert_eq!(
        error_code(&bob.recv().await),
        Some(ErrorCode::UnavailableInE2ee)
    );
    ann.expect_quiet(QUIET).await;
    ann.send(&offer(&id)).await;
    assert!(matches!(bob.recv().await, RelayMsg::Offer { .. }));
    relay.stop().await;
}

#[tokio::test]
async fn a_pickup_the_policies_would_make_e2ee_is_refused() {
    let relay = start().await;
    relay.add_user("cat@a.test", false).await;
    let (mut ann, mut bob, id) = answered_call_in(&relay, CallMode::Standard).await;
    let (mut cat, _) = relay.device("cat@a.test").await;
    let code = park(&mut ann, &mut bob, &id).await;
    // Ann turns her switch back on while she waits: a call between Ann and Cat
    // would be end-to-end encrypted, which a parked (standard) call cannot become.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ann.send(&ClientMsg::SetE2ee { enabled: true }).await;
    assert!(matches!(ann.recv().await, RelayMsg::Settings { .. }));
    cat.send(&ClientMsg::Pickup {
        code,
        commit: Some(cat_commit()),
    })
    .await;
    assert_eq!(
        error_code(&cat.recv().await),
        Some(ErrorCode::UnavailableInE2ee)
    );
    ann.expect_quiet(QUIET).await;
    relay.stop().await;
}

#[tokio::test]
async fn after_the_park_timeout_the_parker_is_rung_back_and_takes_it() {
    let relay = start_with(temp_dir(), |c| {
        c.park_timeout = Duration::from_millis(300);
    })
    .await;
    let (mut ann, mut bob, id) = answered_call_in(&relay, CallMode::Standard).await;
    let (mut bob2, _) = relay.device("bob@a.test").await;
    assert!(matches!(bob2.recv().await, RelayMsg::ElsewhereCall { .. }));
    park(&mut ann, &mut bob, &id).await;
    assert!(matches!(bob2.recv().await, RelayMsg::ElsewhereEnded { .. }));
    // Both of Bob's devices ring with Ann's call.
    for d in [&mut bob, &mut bob2] {
        assert_eq!(
            d.recv().await,
            RelayMsg::Incoming {
                call_id: id.clone(),
                from: "ann@a.test".into(),
                mode: CallMode::Standard,
                referred_by: None,
                group: Vec::new(),
            }
        );
    }
    bob2.send(&ClientMsg::Accept {
        call_id: id.clone(),
        commit: Some(cat_commit()),
    })
    .await;
    assert_eq!(
        ann.recv().await,
        RelayMsg::NewLeg {
            call_id: id.clone(),
            peer: "bob@a.test".into(),
            commit: cat_commit()
        }
    );
    assert!(matches!(
        bob.recv().await,
        RelayMsg::AnsweredElsewhere { .. }
    ));
    ann.send(&offer(&id)).await;
    assert!(matches!(bob2.recv().await, RelayMsg::Offer { .. }));
    relay.stop().await;
}

#[tokio::test]
async fn a_ring_back_nobody_answers_ends_the_call() {
    let relay = start_with(temp_dir(), |c| {
        c.park_timeout = Duration::from_millis(200);
        c.ring_timeout = Duration::from_millis(300);
    })
    .await;
    let (mut ann, mut bob, id) = answered_call_in(&relay, CallMode::Standard).await;
    let code = park(&mut ann, &mut bob, &id).await;
    assert!(matches!(bob.recv().await, RelayMsg::Incoming { .. }));
    assert_eq!(
        ann.recv().await,
        RelayMsg::Hangup {
            call_id: id.clone(),
            reason: HangupReason::NotPickedUp
        }
    );
    assert_eq!(
        bob.recv().await,
        RelayMsg::Cancelled {
            call_id: id.clone()
        }
    );
    // The code is free, and Ann is free to call again.
    bob.send(&ClientMsg::Pickup {
        code,
        commit: Some(commit()),
    })
    .await;
    assert_eq!(error_code(&bob.recv().await), Some(ErrorCode::NotYourCall));
    ann.send(&ClientMsg::Invite {
        to: "bob@a.test".into(),
        transfer: None,
    })
    .await;
    assert!(matches!(ann.recv().await, RelayMsg::Calling { .. }));
    relay.stop().await;
}

#[tokio::test]
async fn the_person_waiting_may_hang_up_and_the_code_is_freed() {
    let relay = start().await;
    relay.add_user("cat@a.test", false).await;
    let (mut ann, mut bob, id) = answered_call_in(&relay, CallMode::Standard).await;
    let (mut cat, _) = relay.device("cat@a.test").await;
    let code = park(&mut ann, &mut bob, &id).await;
    ann.send(&ClientMsg::Hangup {
        call_id: id.clone(),
        reason: HangupReason::Normal,
    })
    .await;
    ann.expect_quiet(QUIET).await;
    cat.send(&ClientMsg::Pickup {
        code,
        commit: Some(cat_commit()),
    })
    .await;
    assert_eq!(error_code(&cat.recv().await), Some(ErrorCode::NotYourCall));
    bob.expect_quiet(QUIET).await;
    relay.stop().await;
}
