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
        transfer: None,
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
    // A stranger naming ann cannot claim it: the id was made for ann and bob.
    eve.send(&resume(&id, "ann@a.test")).await;
    assert!(matches!(
        eve.recv().await,
        RelayMsg::Error {
            code: ErrorCode::NotYourCall,
            ..
        }
    ));
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
    assert!(matches!(bob2.recv().await, RelayMsg::ElsewhereCall { .. }));
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

/// A restore claim costs memory for the grace period, so only a well-formed call
/// id naming an existing account is kept, one per device, and the map is bounded.
#[tokio::test]
async fn restore_claims_are_checked_and_one_per_device() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    relay.add_user("bob@a.test", false).await;
    let (mut ann, _) = relay.device("ann@a.test").await;
    let refused = [
        (CallId("x".into()), "bob@a.test".to_string()),
        (CallId("A".repeat(32)), "bob@a.test".to_string()),
        (CallId("a".repeat(33)), "bob@a.test".to_string()),
        (CallId("a".repeat(32)), "nobody@a.test".to_string()),
        (CallId("a".repeat(32)), "b".repeat(60_000)),
    ];
    // Well formed, naming real people, but not minted by this relay.
    let forged = CallId("ab".repeat(32));
    let refused: Vec<_> = refused
        .into_iter()
        .chain([(forged, "bob@a.test".to_string())])
        .collect();
    for (id, peer) in &refused {
        ann.send(&resume(id, peer)).await;
        assert!(
            matches!(
                ann.recv().await,
                RelayMsg::Error {
                    code: ErrorCode::NotYourCall,
                    ..
                }
            ),
            "{id:?}"
        );
    }
    assert_eq!(relay.state.hub().restoring(), 0);
    // Many well-formed claims from one device: only its last one is kept.
    let hub = relay.state.hub();
    for _ in 0..50 {
        let id = hub
            .mint_call_id("ann@a.test", "bob@a.test", CallMode::E2ee)
            .expect("id");
        ann.send(&resume(&id, "bob@a.test")).await;
    }
    ann.assert_alive(1).await;
    assert_eq!(relay.state.hub().restoring(), 1);
    relay.stop().await;
}

/// A claim renewed late in the grace period is not removed by the first claim's
/// timer: the other side can still complete the restore.
#[tokio::test]
async fn a_renewed_claim_outlives_the_first_claims_timer() {
    let grace = std::time::Duration::from_millis(600);
    let relay = start_with(temp_dir(), |c| c.reconnect_grace = grace).await;
    relay.add_user("ann@a.test", false).await;
    relay.add_user("bob@a.test", false).await;
    let id = relay
        .state
        .hub()
        .mint_call_id("ann@a.test", "bob@a.test", CallMode::E2ee)
        .expect("id");
    let (mut ann, _) = relay.device("ann@a.test").await;
    ann.send(&resume(&id, "bob@a.test")).await;
    ann.assert_alive(1).await;
    tokio::time::sleep(grace * 2 / 3).await;
    // Ann's tab reconnected and claims again.
    drop(ann);
    let (mut ann2, _) = relay.device("ann@a.test").await;
    ann2.send(&resume(&id, "bob@a.test")).await;
    ann2.assert_alive(2).await;
    // The first claim's timer fires now; the renewed claim must survive it.
    tokio::time::sleep(grace * 2 / 3).await;
    assert_eq!(relay.state.hub().restoring(), 1);
    let (mut bob, _) = relay.device("bob@a.test").await;
    bob.send(&resume(&id, "ann@a.test")).await;
    bob.send(&ClientMsg::Offer {
        call_id: id.clone(),
        sdp: "v=0\r\n".into(),
    })
    .await;
    assert_eq!(
        ann2.recv().await,
        RelayMsg::Offer {
            call_id: id.clone(),
            sdp: "v=0\r\n".into()
        }
    );
    relay.stop().await;
}

/// After a restart, a restore follows what the id was minted for and today's
/// policies: a higher mode than the call had is not taken, and a pair whose
/// policies no longer allow the call gets it ended on both devices.
#[tokio::test]
async fn a_restore_takes_neither_a_higher_mode_nor_a_call_policies_now_forbid() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    relay.add_user("bob@a.test", false).await;
    let hub = relay.state.hub();
    // A standard call: both claiming e2ee is refused (the tag covers the mode).
    let standard = hub
        .mint_call_id("ann@a.test", "bob@a.test", CallMode::Standard)
        .expect("id");
    let (mut ann, _) = relay.device("ann@a.test").await;
    let (mut bob, _) = relay.device("bob@a.test").await;
    ann.send(&resume(&standard, "bob@a.test")).await;
    assert!(matches!(
        ann.recv().await,
        RelayMsg::Error {
            code: ErrorCode::NotYourCall,
            ..
        }
    ));
    // An e2ee call, while bob's switch is now off: today's decision is standard,
    // so the restore is refused and both devices are told the call is over.
    bob.send(&ClientMsg::SetE2ee { enabled: false }).await;
    assert!(matches!(bob.recv().await, RelayMsg::Settings { .. }));
    let e2ee = hub
        .mint_call_id("ann@a.test", "bob@a.test", CallMode::E2ee)
        .expect("id");
    ann.send(&resume(&e2ee, "bob@a.test")).await;
    bob.send(&resume(&e2ee, "ann@a.test")).await;
    for c in [&mut ann, &mut bob] {
        assert_eq!(
            c.recv().await,
            RelayMsg::Hangup {
                call_id: e2ee.clone(),
                reason: HangupReason::Normal
            }
        );
    }
    assert!(!hub.knows_call(&e2ee));
    relay.stop().await;
}
