//! Group calls over real WebSockets: Bob adds Cat to his standard call with
//! Ann (Cat rings with Ann named, accepts, gets a leg with Ann, commits with
//! `join`; Ann gets `new-leg`); everyone hears who is in it; Cat leaves and the
//! others go on. A merge of a held call and its consultation; an add that
//! would make an end-to-end encrypted pair is refused and changes nothing.

mod common;

use std::time::Duration;

use common::*;
use shieldcall_proto::{CallId, CallMode, ClientMsg, ErrorCode, HangupReason, RelayMsg};

const QUIET: Duration = Duration::from_millis(150);

fn members(m: &RelayMsg) -> Vec<String> {
    match m {
        RelayMsg::Group { members } => members.clone(),
        other => panic!("expected group, got {other:?}"),
    }
}

fn ann_bob_cat() -> Vec<String> {
    ["ann@a.test", "bob@a.test", "cat@a.test"]
        .map(String::from)
        .to_vec()
}

/// Cat (switch off) signed in beside Ann and Bob in a standard call.
async fn three(relay: &Relay) -> (Client, Client, Client, CallId) {
    relay.add_user("cat@a.test", false).await;
    let (ann, bob, id) = answered_call_in(relay, CallMode::Standard).await;
    let (mut cat, _) = relay.device("cat@a.test").await;
    cat.send(&ClientMsg::SetE2ee { enabled: false }).await;
    assert!(matches!(cat.recv().await, RelayMsg::Settings { .. }));
    (ann, bob, cat, id)
}

#[tokio::test]
async fn an_added_person_rings_then_meets_everyone() {
    let relay = start().await;
    let (mut ann, mut bob, mut cat, ab) = three(&relay).await;
    bob.send(&ClientMsg::Add {
        call_id: ab.clone(),
        to: "Cat@A.test".into(),
    })
    .await;
    let bc = call_id(&bob.recv().await);
    assert_eq!(
        cat.recv().await,
        RelayMsg::Incoming {
            call_id: bc.clone(),
            from: "bob@a.test".into(),
            mode: CallMode::Standard,
            referred_by: None,
            group: vec!["ann@a.test".into()],
        }
    );
    ann.expect_quiet(QUIET).await;
    cat.send(&ClientMsg::Accept {
        call_id: bc.clone(),
        commit: Some(commit()),
    })
    .await;
    assert!(matches!(bob.recv().await, RelayMsg::Accepted { .. }));
    assert_eq!(members(&bob.recv().await), ann_bob_cat());
    let RelayMsg::Leg {
        call_id: ac,
        peer,
        mode,
    } = cat.recv().await
    else {
        panic!("Cat got no leg")
    };
    assert_eq!((peer.as_str(), mode), ("ann@a.test", CallMode::Standard));
    assert_eq!(members(&cat.recv().await), ann_bob_cat());
    assert_eq!(members(&ann.recv().await), ann_bob_cat());
    cat.send(&ClientMsg::Join {
        call_id: ac.clone(),
        commit: Some(commit()),
    })
    .await;
    assert_eq!(
        ann.recv().await,
        RelayMsg::NewLeg {
            call_id: ac.clone(),
            peer: "cat@a.test".into(),
            commit: commit(),
        }
    );
    // Each leg carries its own negotiation.
    ann.send(&ClientMsg::Offer {
        call_id: ac.clone(),
        sdp: "v=0\r\n".into(),
    })
    .await;
    assert!(matches!(cat.recv().await, RelayMsg::Offer { call_id, .. } if call_id == ac));
    // Hold is not for a group call's legs.
    ann.send(&ClientMsg::Hold {
        call_id: ab.clone(),
        on: true,
    })
    .await;
    assert_eq!(error_code(&ann.recv().await), Some(ErrorCode::WrongState));
    // Cat leaves: both her legs end; Ann and Bob go on.
    for id in [&bc, &ac] {
        cat.send(&ClientMsg::Hangup {
            call_id: id.clone(),
            reason: HangupReason::Normal,
        })
        .await;
    }
    assert!(matches!(bob.recv().await, RelayMsg::Hangup { .. }));
    assert_eq!(
        members(&bob.recv().await),
        ["ann@a.test", "bob@a.test"].map(String::from).to_vec()
    );
    assert!(matches!(ann.recv().await, RelayMsg::Hangup { .. }));
    assert_eq!(members(&ann.recv().await).len(), 2);
    bob.send(&ClientMsg::Offer {
        call_id: ab.clone(),
        sdp: "v=0\r\n".into(),
    })
    .await;
    assert!(matches!(ann.recv().await, RelayMsg::Offer { .. }));
    relay.stop().await;
}

#[tokio::test]
async fn an_add_that_would_make_an_e2ee_pair_is_refused() {
    let relay = start().await;
    relay.add_user("cat@a.test", false).await;
    // Ann's switch is off, Bob's and Cat's on: Bob–Cat would be E2EE.
    let (mut ann, mut bob, ab) = answered_call_in(&relay, CallMode::Standard).await;
    let (mut cat, _) = relay.device("cat@a.test").await;
    ann.send(&ClientMsg::Add {
        call_id: ab.clone(),
        to: "cat@a.test".into(),
    })
    .await;
    assert_eq!(
        error_code(&ann.recv().await),
        Some(ErrorCode::UnavailableInE2ee)
    );
    cat.expect_quiet(QUIET).await;
    bob.expect_quiet(QUIET).await;
    // Nobody unknown, nobody already in it.
    for to in ["nobody@a.test", "bob@a.test"] {
        ann.send(&ClientMsg::Add {
            call_id: ab.clone(),
            to: to.into(),
        })
        .await;
        assert_eq!(error_code(&ann.recv().await), Some(ErrorCode::WrongState));
    }
    relay.stop().await;
}

#[tokio::test]
async fn an_e2ee_call_grows_into_no_group() {
    let relay = start().await;
    relay.add_user("cat@a.test", false).await;
    let (mut ann, mut bob, id) = answered_call(&relay).await;
    let (mut cat, _) = relay.device("cat@a.test").await;
    ann.send(&ClientMsg::Add {
        call_id: id.clone(),
        to: "cat@a.test".into(),
    })
    .await;
    assert_eq!(
        error_code(&ann.recv().await),
        Some(ErrorCode::UnavailableInE2ee)
    );
    // Nor is there anything to merge: an E2EE call is never held.
    bob.send(&ClientMsg::Merge {
        call_id: id.clone(),
        consult: id,
    })
    .await;
    assert_eq!(
        error_code(&bob.recv().await),
        Some(ErrorCode::UnavailableInE2ee)
    );
    cat.expect_quiet(QUIET).await;
    relay.stop().await;
}

#[tokio::test]
async fn a_merge_makes_one_call_of_three() {
    let relay = start().await;
    let (mut ann, mut bob, mut cat, ab) = three(&relay).await;
    bob.send(&ClientMsg::Hold {
        call_id: ab.clone(),
        on: true,
    })
    .await;
    assert!(matches!(bob.recv().await, RelayMsg::Hold { .. }));
    assert!(matches!(ann.recv().await, RelayMsg::Hold { .. }));
    bob.send(&ClientMsg::Consult {
        call_id: ab.clone(),
        to: "cat@a.test".into(),
    })
    .await;
    let bc = call_id(&bob.recv().await);
    call_id(&cat.recv().await);
    cat.send(&ClientMsg::Accept {
        call_id: bc.clone(),
        commit: Some(commit()),
    })
    .await;
    assert!(matches!(bob.recv().await, RelayMsg::Accepted { .. }));
    bob.send(&ClientMsg::Merge {
        call_id: ab.clone(),
        consult: bc.clone(),
    })
    .await;
    let unheld = RelayMsg::Hold {
        call_id: ab.clone(),
        by_me: false,
        by_peer: false,
    };
    assert_eq!(bob.recv().await, unheld);
    assert_eq!(members(&bob.recv().await), ann_bob_cat());
    assert_eq!(ann.recv().await, unheld);
    assert_eq!(members(&ann.recv().await), ann_bob_cat());
    assert!(matches!(cat.recv().await, RelayMsg::Leg { peer, .. } if peer == "ann@a.test"));
    assert_eq!(members(&cat.recv().await), ann_bob_cat());
    relay.stop().await;
}
