//! Blind transfer: Bob, in an answered standard call with Ann, transfers her to
//! Cat. The relay checks the new pair, ends the call (Bob: `hangup`
//! `transferred`), and gives Ann a `refer` with a one-time token; Ann's invite
//! with it rings Cat with `referred_by: bob`, as a new call decided afresh. Refusals (E2EE call, unknown or offline target, a pair the policies
//! forbid, a stale or foreign token) change nothing.

mod common;

use std::time::Duration;

use common::*;
use shieldcall_proto::{CallId, CallMode, ClientMsg, ErrorCode, HangupReason, RelayMsg};

const QUIET: Duration = Duration::from_millis(120);

fn transfer(id: &CallId, to: &str) -> ClientMsg {
    ClientMsg::Transfer {
        call_id: id.clone(),
        to: to.into(),
    }
}

#[tokio::test]
async fn a_blind_transfer_ends_the_call_and_the_invite_names_the_transferor() {
    let relay = start().await;
    relay.add_user("cat@a.test", false).await;
    let (mut ann, mut bob, id) = answered_call_in(&relay, CallMode::Standard).await;
    let (mut cat, _) = relay.device("cat@a.test").await;
    bob.send(&transfer(&id, "Cat@A.test")).await;
    assert_eq!(
        bob.recv().await,
        RelayMsg::Hangup {
            call_id: id.clone(),
            reason: HangupReason::Transferred
        }
    );
    let RelayMsg::Refer {
        call_id: referred,
        to,
        by,
        token,
    } = ann.recv().await
    else {
        panic!("ann got no refer")
    };
    assert_eq!(
        (referred, to.as_str(), by.as_str()),
        (id.clone(), "cat@a.test", "bob@a.test")
    );
    assert_eq!(token.len(), 32);
    // The old call is over.
    ann.send(&ClientMsg::Hangup {
        call_id: id.clone(),
        reason: HangupReason::Normal,
    })
    .await;
    assert_eq!(error_code(&ann.recv().await), Some(ErrorCode::NotYourCall));

    // A stranger cannot use the token; nor can Ann for someone else.
    let (mut cat2, _) = relay.device("cat@a.test").await;
    cat2.send(&ClientMsg::Invite {
        to: "bob@a.test".into(),
        transfer: Some(token.clone()),
    })
    .await;
    assert_eq!(error_code(&cat2.recv().await), Some(ErrorCode::WrongState));
    drop(cat2);
    ann.send(&ClientMsg::Invite {
        to: "bob@a.test".into(),
        transfer: Some(token.clone()),
    })
    .await;
    assert_eq!(error_code(&ann.recv().await), Some(ErrorCode::WrongState));

    // Ann calls Cat with it: a new call with a new id, decided afresh (Ann's
    // switch is off: standard), and Cat is told who transferred it.
    ann.send(&ClientMsg::Invite {
        to: "cat@a.test".into(),
        transfer: Some(token.clone()),
    })
    .await;
    let calling = ann.recv().await;
    assert!(
        matches!(
            &calling,
            RelayMsg::Calling {
                mode: CallMode::Standard,
                ..
            }
        ),
        "{calling:?}"
    );
    let new = call_id(&calling);
    assert_ne!(new, id);
    assert_eq!(
        cat.recv().await,
        RelayMsg::Incoming {
            call_id: new.clone(),
            from: "ann@a.test".into(),
            mode: CallMode::Standard,
            referred_by: Some("bob@a.test".into()),
            group: Vec::new(),
        }
    );
    // Used once.
    ann.send(&ClientMsg::Cancel { call_id: new }).await;
    assert!(matches!(cat.recv().await, RelayMsg::Cancelled { .. }));
    ann.send(&ClientMsg::Invite {
        to: "cat@a.test".into(),
        transfer: Some(token),
    })
    .await;
    assert_eq!(error_code(&ann.recv().await), Some(ErrorCode::WrongState));
    bob.expect_quiet(QUIET).await;
    relay.stop().await;
}

#[tokio::test]
async fn bad_transfers_are_refused_and_the_call_goes_on() {
    let relay = start().await;
    relay.add_user("cat@a.test", false).await;
    relay.add_user("dan@a.test", false).await;
    relay.add_user("eve@a.test", false).await;
    let (mut ann, mut bob, id) = answered_call_in(&relay, CallMode::Standard).await;
    let (mut eve, _) = relay.device("eve@a.test").await;
    let _cat = relay.device("cat@a.test").await;
    for (to, code) in [
        ("nobody@a.test", ErrorCode::WrongState),
        ("not a name", ErrorCode::WrongState),
        ("dan@a.test", ErrorCode::WrongState), // offline
        ("ann@a.test", ErrorCode::WrongState), // the other person
        ("bob@a.test", ErrorCode::WrongState), // oneself
    ] {
        bob.send(&transfer(&id, to)).await;
        let got = bob.recv().await;
        assert_eq!(error_code(&got), Some(code), "{to}: {got:?}");
    }
    // Someone else's call.
    eve.send(&transfer(&id, "cat@a.test")).await;
    assert_eq!(error_code(&eve.recv().await), Some(ErrorCode::NotYourCall));
    ann.expect_quiet(QUIET).await;
    // The call goes on between Ann and Bob.
    ann.send(&ClientMsg::Offer {
        call_id: id.clone(),
        sdp: "v=0\r\n".into(),
    })
    .await;
    assert!(matches!(bob.recv().await, RelayMsg::Offer { .. }));
    relay.stop().await;
}

#[tokio::test]
async fn an_e2ee_call_is_not_transferred() {
    let relay = start().await;
    relay.add_user("cat@a.test", false).await;
    let (mut ann, mut bob, id) = answered_call(&relay).await;
    let _cat = relay.device("cat@a.test").await;
    bob.send(&transfer(&id, "cat@a.test")).await;
    assert_eq!(
        error_code(&bob.recv().await),
        Some(ErrorCode::UnavailableInE2ee)
    );
    ann.expect_quiet(QUIET).await;
    relay.stop().await;
}
