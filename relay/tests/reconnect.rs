//! A bound device that vanishes mid-call: the call waits the grace period for the
//! same user to come back (any of their devices sending a message for the call
//! takes over), otherwise the peer gets `hangup` with `peer-gone`.

mod common;

use std::time::Duration;

use common::*;
use shieldcall_proto::{CallId, ClientMsg, HangupReason, IceCandidate, RelayMsg};

fn ice(id: &CallId) -> ClientMsg {
    ClientMsg::Ice {
        call_id: id.clone(),
        candidate: IceCandidate {
            candidate: String::new(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: None,
            username_fragment: None,
        },
    }
}

#[tokio::test]
async fn peer_gone_after_the_grace_period() {
    let relay = start_with(temp_dir(), |c| {
        c.reconnect_grace = Duration::from_millis(300)
    })
    .await;
    let (mut ann, bob, id) = answered_call(&relay).await;
    drop(bob);
    assert_eq!(
        ann.recv().await,
        RelayMsg::Hangup {
            call_id: id.clone(),
            reason: HangupReason::PeerGone
        }
    );
    // The call is over: ann is free again.
    ann.send(&ice(&id)).await;
    assert!(matches!(
        ann.recv().await,
        RelayMsg::Error {
            code: shieldcall_proto::ErrorCode::NotYourCall,
            ..
        }
    ));
    relay.stop().await;
}

#[tokio::test]
async fn the_same_user_rebinds_within_the_grace_period() {
    let relay = start_with(temp_dir(), |c| {
        c.reconnect_grace = Duration::from_millis(500)
    })
    .await;
    let (mut ann, bob, id) = answered_call(&relay).await;
    drop(bob);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut bob2, _) = relay.device("bob@a.test").await;
    // The new connection hears of Bob's call, then carries it on.
    assert!(matches!(bob2.recv().await, RelayMsg::ElsewhereCall { .. }));
    bob2.send(&ice(&id)).await;
    assert!(matches!(ann.recv().await, RelayMsg::Ice { .. }));
    ann.send(&ice(&id)).await;
    assert!(matches!(bob2.recv().await, RelayMsg::Ice { .. }));
    // The grace period passes without a hangup.
    ann.expect_quiet(Duration::from_millis(700)).await;
    ann.send(&ClientMsg::Hangup {
        call_id: id.clone(),
        reason: HangupReason::Normal,
    })
    .await;
    assert_eq!(
        bob2.recv().await,
        RelayMsg::Hangup {
            call_id: id,
            reason: HangupReason::Normal
        }
    );
    relay.stop().await;
}

#[tokio::test]
async fn a_silent_connection_is_dropped() {
    let relay = start_with(temp_dir(), |c| {
        c.ping_interval = Duration::from_millis(100);
        c.idle_timeout = Duration::from_millis(300);
    })
    .await;
    relay.add_user("ann@a.test", false).await;
    relay.add_user("bob@a.test", false).await;
    let (mut ann, _) = relay.device("ann@a.test").await;
    let (mut bob, _) = relay.device("bob@a.test").await;
    // Bob keeps talking; ann does not read (so never answers pings).
    for i in 0..8 {
        bob.assert_alive(i).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ann.closed_within(WAIT).await);
    bob.assert_alive(99).await;
    relay.stop().await;
}
