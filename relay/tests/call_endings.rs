//! Busy, decline, cancel, ring timeout, offline and unknown callees.

mod common;

use std::time::Duration;

use common::*;
use shieldcall_proto::{ClientMsg, ErrorCode, RefuseReason, RelayMsg};

async fn relay_with_users(ring: Duration) -> Relay {
    let relay = start_with(temp_dir(), |c| c.ring_timeout = ring).await;
    for u in ["ann@a.test", "bob@a.test", "cid@a.test"] {
        relay.add_user(u, false).await;
    }
    relay
}

fn refused(m: &RelayMsg) -> RefuseReason {
    match m {
        RelayMsg::CallRefused { reason, .. } => *reason,
        other => panic!("expected call-refused, got {other:?}"),
    }
}

#[tokio::test]
async fn busy_callee_and_busy_caller() {
    let relay = relay_with_users(Duration::from_secs(45)).await;
    let (mut ann, _) = relay.device("ann@a.test").await;
    let (mut bob, _) = relay.device("bob@a.test").await;
    let (mut cid, _) = relay.device("cid@a.test").await;
    ann.send(&ClientMsg::Invite {
        to: "bob@a.test".into(),
        transfer: None,
    })
    .await;
    call_id(&ann.recv().await);
    call_id(&bob.recv().await);
    cid.send(&ClientMsg::Invite {
        to: "bob@a.test".into(),
        transfer: None,
    })
    .await;
    assert_eq!(refused(&cid.recv().await), RefuseReason::Busy);
    ann.send(&ClientMsg::Invite {
        to: "cid@a.test".into(),
        transfer: None,
    })
    .await;
    assert_eq!(refused(&ann.recv().await), RefuseReason::Busy);
    bob.expect_quiet(Duration::from_millis(100)).await;
    relay.stop().await;
}

#[tokio::test]
async fn decline_stops_every_device() {
    let relay = relay_with_users(Duration::from_secs(45)).await;
    let (mut ann, _) = relay.device("ann@a.test").await;
    let (mut bob1, _) = relay.device("bob@a.test").await;
    let (mut bob2, _) = relay.device("bob@a.test").await;
    ann.send(&ClientMsg::Invite {
        to: "bob@a.test".into(),
        transfer: None,
    })
    .await;
    let id = call_id(&ann.recv().await);
    call_id(&bob1.recv().await);
    call_id(&bob2.recv().await);
    bob1.send(&ClientMsg::Decline {
        call_id: id.clone(),
    })
    .await;
    let m = ann.recv().await;
    assert_eq!(refused(&m), RefuseReason::Declined);
    assert_eq!(
        bob2.recv().await,
        RelayMsg::Cancelled {
            call_id: id.clone()
        }
    );
    // The call is gone.
    bob2.send(&ClientMsg::Accept {
        call_id: id,
        commit: Some(commit()),
    })
    .await;
    assert!(matches!(
        bob2.recv().await,
        RelayMsg::Error {
            code: ErrorCode::NotYourCall,
            ..
        }
    ));
    // And both can call again.
    ann.send(&ClientMsg::Invite {
        to: "bob@a.test".into(),
        transfer: None,
    })
    .await;
    call_id(&ann.recv().await);
    relay.stop().await;
}

#[tokio::test]
async fn caller_cancels() {
    let relay = relay_with_users(Duration::from_secs(45)).await;
    let (mut ann, _) = relay.device("ann@a.test").await;
    let (mut bob, _) = relay.device("bob@a.test").await;
    ann.send(&ClientMsg::Invite {
        to: "bob@a.test".into(),
        transfer: None,
    })
    .await;
    let id = call_id(&ann.recv().await);
    call_id(&bob.recv().await);
    // The callee cannot cancel; only the caller's device.
    bob.send(&ClientMsg::Cancel {
        call_id: id.clone(),
    })
    .await;
    assert!(matches!(
        bob.recv().await,
        RelayMsg::Error {
            code: ErrorCode::NotYourCall,
            ..
        }
    ));
    ann.send(&ClientMsg::Cancel {
        call_id: id.clone(),
    })
    .await;
    assert_eq!(bob.recv().await, RelayMsg::Cancelled { call_id: id });
    relay.stop().await;
}

#[tokio::test]
async fn ring_timeout_is_no_answer() {
    let relay = relay_with_users(Duration::from_millis(300)).await;
    let (mut ann, _) = relay.device("ann@a.test").await;
    let (mut bob, _) = relay.device("bob@a.test").await;
    ann.send(&ClientMsg::Invite {
        to: "bob@a.test".into(),
        transfer: None,
    })
    .await;
    let id = call_id(&ann.recv().await);
    call_id(&bob.recv().await);
    assert_eq!(refused(&ann.recv().await), RefuseReason::NoAnswer);
    assert_eq!(bob.recv().await, RelayMsg::Cancelled { call_id: id });
    relay.stop().await;
}

#[tokio::test]
async fn offline_unknown_and_self() {
    let relay = relay_with_users(Duration::from_secs(45)).await;
    let (mut ann, _) = relay.device("ann@a.test").await;
    for (to, reason) in [
        ("bob@a.test", RefuseReason::Offline),
        ("nobody@a.test", RefuseReason::UnknownUser),
        ("not a user", RefuseReason::UnknownUser),
        ("ANN@a.test", RefuseReason::SelfCall),
    ] {
        ann.send(&ClientMsg::Invite {
            to: to.into(),
            transfer: None,
        })
        .await;
        assert_eq!(refused(&ann.recv().await), reason, "{to}");
    }
    relay.stop().await;
}
