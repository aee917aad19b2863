//! Hold and resume: either side of an answered standard call holds it, both
//! devices learn the state from their own side, the call stays held while either
//! side holds, a device that resumes a held call learns it; an E2EE call, a call
//! not yet answered and a stranger are refused and change nothing.

mod common;

use std::time::Duration;

use common::*;
use shieldcall_proto::{CallFeature, CallId, CallMode, ClientMsg, ErrorCode, RelayMsg};

fn hold(id: &CallId, on: bool) -> ClientMsg {
    ClientMsg::Hold {
        call_id: id.clone(),
        on,
    }
}

fn state(id: &CallId, by_me: bool, by_peer: bool) -> RelayMsg {
    RelayMsg::Hold {
        call_id: id.clone(),
        by_me,
        by_peer,
    }
}

#[tokio::test]
async fn either_side_holds_and_the_call_stays_held_until_both_let_go() {
    let relay = start().await;
    let (mut ann, mut bob, id) = answered_call_in(&relay, CallMode::Standard).await;

    bob.send(&hold(&id, true)).await;
    assert_eq!(bob.recv().await, state(&id, true, false));
    assert_eq!(ann.recv().await, state(&id, false, true));

    // Both hold: Bob letting go leaves the call held by Ann.
    ann.send(&hold(&id, true)).await;
    assert_eq!(ann.recv().await, state(&id, true, true));
    assert_eq!(bob.recv().await, state(&id, true, true));
    bob.send(&hold(&id, false)).await;
    assert_eq!(bob.recv().await, state(&id, false, true));
    assert_eq!(ann.recv().await, state(&id, true, false));

    // Saying it again changes nothing and says so again (idempotent).
    ann.send(&hold(&id, true)).await;
    assert_eq!(ann.recv().await, state(&id, true, false));
    assert_eq!(bob.recv().await, state(&id, false, true));

    ann.send(&hold(&id, false)).await;
    assert_eq!(ann.recv().await, state(&id, false, false));
    assert_eq!(bob.recv().await, state(&id, false, false));

    // `feature` does not hold: hold has its own message.
    bob.send(&ClientMsg::Feature {
        call_id: id.clone(),
        feature: CallFeature::Hold,
    })
    .await;
    assert_eq!(error_code(&bob.recv().await), Some(ErrorCode::WrongState));
    ann.expect_quiet(Duration::from_millis(100)).await;

    // Media messages still flow on a held call (a renegotiation must get through).
    ann.send(&hold(&id, true)).await;
    assert_eq!(ann.recv().await, state(&id, true, false));
    assert_eq!(bob.recv().await, state(&id, false, true));
    ann.send(&ClientMsg::Offer {
        call_id: id.clone(),
        sdp: "v=0\r\n".into(),
    })
    .await;
    assert!(matches!(bob.recv().await, RelayMsg::Offer { .. }));
    relay.stop().await;
}

#[tokio::test]
async fn an_e2ee_call_refuses_hold_and_the_peer_hears_nothing() {
    let relay = start().await;
    let (mut ann, mut bob, id) = answered_call(&relay).await;
    for on in [true, false] {
        ann.send(&hold(&id, on)).await;
        let got = ann.recv().await;
        assert_eq!(
            error_code(&got),
            Some(ErrorCode::UnavailableInE2ee),
            "{got:?}"
        );
        let RelayMsg::Error {
            message, call_id, ..
        } = got
        else {
            unreachable!()
        };
        assert_eq!(call_id, Some(id.clone()));
        assert!(
            message.starts_with("Hold is off in end-to-end encrypted calls"),
            "{message}"
        );
    }
    bob.expect_quiet(Duration::from_millis(150)).await;
    relay.stop().await;
}

#[tokio::test]
async fn hold_before_the_answer_or_by_a_stranger_is_refused() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    relay.add_user("bob@a.test", false).await;
    relay.add_user("eve@a.test", false).await;
    let (mut ann, _) = relay.device("ann@a.test").await;
    let (mut bob, _) = relay.device("bob@a.test").await;
    let (mut eve, _) = relay.device("eve@a.test").await;
    ann.send(&ClientMsg::SetE2ee { enabled: false }).await;
    assert!(matches!(ann.recv().await, RelayMsg::Settings { .. }));
    ann.send(&ClientMsg::Invite {
        to: "bob@a.test".into(),
        transfer: None,
    })
    .await;
    let id = call_id(&ann.recv().await);
    call_id(&bob.recv().await);
    // Ringing: the caller may not hold yet, the callee's device is not bound.
    ann.send(&hold(&id, true)).await;
    assert_eq!(error_code(&ann.recv().await), Some(ErrorCode::WrongState));
    bob.send(&hold(&id, true)).await;
    assert_eq!(error_code(&bob.recv().await), Some(ErrorCode::NotYourCall));
    bob.send(&ClientMsg::Accept {
        call_id: id.clone(),
        commit: Some(commit()),
    })
    .await;
    assert!(matches!(ann.recv().await, RelayMsg::Accepted { .. }));
    // A stranger with the call id changes nothing.
    eve.send(&hold(&id, true)).await;
    assert_eq!(error_code(&eve.recv().await), Some(ErrorCode::NotYourCall));
    ann.expect_quiet(Duration::from_millis(100)).await;
    bob.expect_quiet(Duration::from_millis(100)).await;
    // The call is still unheld: Ann's first hold is the first change.
    ann.send(&hold(&id, true)).await;
    assert_eq!(ann.recv().await, state(&id, true, false));
    relay.stop().await;
}

#[tokio::test]
async fn a_device_that_resumes_a_held_call_learns_it_is_held() {
    let relay = start_with(temp_dir(), |c| c.reconnect_grace = Duration::from_secs(5)).await;
    let (mut ann, bob, id) = answered_call_in(&relay, CallMode::Standard).await;
    ann.send(&hold(&id, true)).await;
    assert_eq!(ann.recv().await, state(&id, true, false));
    drop(bob);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut bob2, _) = relay.device("bob@a.test").await;
    // A new device of Bob's hears of his call (its device is gone for now).
    assert!(matches!(bob2.recv().await, RelayMsg::ElsewhereCall { .. }));
    bob2.send(&ClientMsg::Resume {
        call_id: id.clone(),
        peer: "ann@a.test".into(),
        mode: CallMode::Standard,
    })
    .await;
    assert_eq!(bob2.recv().await, state(&id, false, true));
    // And the rebound device gets the next change.
    ann.send(&hold(&id, false)).await;
    assert_eq!(ann.recv().await, state(&id, false, false));
    assert_eq!(bob2.recv().await, state(&id, false, false));
    relay.stop().await;
}
