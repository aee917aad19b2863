//! `resume` after a reconnect: a known call is rebound, a call lost in a relay
//! restart is restored once both people resume it naming each other, and a stranger
//! cannot attach to it.

mod common;

use common::*;
use shieldcall_proto::{CallId, CallMode, ClientMsg, ErrorCode, HangupReason, RelayMsg};

fn resume(id: &CallId, peer: &str) -> ClientMsg {
    ClientMsg::Resume {
        call_id: id.clone(),
        peer: peer.into(),
        mode: CallMode::E2ee,
    }
}

fn hangup(id: &CallId) -> ClientMsg {
    ClientMsg::Hangup {
        call_id: id.clone(),
        reason: HangupReason::Normal,
    }
}

#[tokio::test]
async fn a_call_survives_a_relay_restart_when_both_resume() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    relay.add_user("bob@a.test", false).await;
    relay.add_user("eve@a.test", false).await;
    let (ann_cookie, bob_cookie, eve_cookie) = (
        relay.cookie_for("ann@a.test").await,
        relay.cookie_for("bob@a.test").await,
        relay.cookie_for("eve@a.test").await,
    );
    let (mut ann, _) = relay.device_with(&ann_cookie).await;
    let (mut bob, _) = relay.device_with(&bob_cookie).await;
    ann.send(&ClientMsg::Invite {
        to: "bob@a.test".into(),
    })
    .await;
    let id = call_id(&ann.recv().await);
    call_id(&bob.recv().await);
    bob.send(&ClientMsg::Accept {
        call_id: id.clone(),
        commit: Some(commit()),
    })
    .await;
    assert!(matches!(ann.recv().await, RelayMsg::Accepted { .. }));

    // The relay restarts: sessions are kept, calls are not.
    drop((ann, bob));
    let dir = relay.stop().await;
    let relay = start_with(dir, |_| {}).await;
    let (mut ann, _) = relay.device_with(&ann_cookie).await;
    let (mut bob, _) = relay.device_with(&bob_cookie).await;
    let (mut eve, _) = relay.device_with(&eve_cookie).await;

    // Before both resumed, the call does not exist for anyone.
    ann.send(&resume(&id, "bob@a.test")).await;
    ann.send(&hangup(&id)).await;
    assert!(matches!(
        ann.recv().await,
        RelayMsg::Error {
            code: ErrorCode::NotYourCall,
            ..
        }
    ));
    // A stranger naming ann cannot complete it.
    eve.send(&resume(&id, "ann@a.test")).await;
    eve.expect_quiet(std::time::Duration::from_millis(200))
        .await;
    ann.send(&resume(&id, "bob@a.test")).await;
    bob.send(&resume(&id, "ann@a.test")).await;
    bob.expect_quiet(std::time::Duration::from_millis(200))
        .await;

    // Restored: signalling flows again and a hang-up reaches the other side.
    bob.send(&ClientMsg::Offer {
        call_id: id.clone(),
        sdp: "v=0\r\n".into(),
    })
    .await;
    assert_eq!(
        ann.recv().await,
        RelayMsg::Offer {
            call_id: id.clone(),
            sdp: "v=0\r\n".into()
        }
    );
    eve.send(&hangup(&id)).await;
    assert!(matches!(
        eve.recv().await,
        RelayMsg::Error {
            code: ErrorCode::NotYourCall,
            ..
        }
    ));
    ann.send(&hangup(&id)).await;
    assert_eq!(
        bob.recv().await,
        RelayMsg::Hangup {
            call_id: id.clone(),
            reason: HangupReason::Normal
        }
    );
    relay.stop().await;
}

#[tokio::test]
async fn resume_rebinds_a_known_call_and_refuses_strangers() {
    let relay = start().await;
    let (mut ann, bob, id) = answered_call(&relay).await;
    relay.add_user("eve@a.test", false).await;
    let (mut eve, _) = relay.device("eve@a.test").await;

    eve.send(&resume(&id, "bob@a.test")).await;
    assert!(matches!(
        eve.recv().await,
        RelayMsg::Error {
            code: ErrorCode::NotYourCall,
            ..
        }
    ));

    drop(bob);
    let (mut bob2, _) = relay.device("bob@a.test").await;
    bob2.send(&resume(&id, "ann@a.test")).await;
    ann.send(&hangup(&id)).await;
    assert_eq!(
        bob2.recv().await,
        RelayMsg::Hangup {
            call_id: id.clone(),
            reason: HangupReason::Normal
        }
    );
    relay.stop().await;
}
