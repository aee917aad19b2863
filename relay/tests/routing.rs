//! A whole call between two users, the callee on two devices: every device rings,
//! the first accept wins, and media messages flow only between the bound devices,
//! byte for byte.

mod common;

use common::*;
use shieldcall_proto::{
    CallMode, ClientMsg, ErrorCode, HangupReason, IceCandidate, RelayMsg, Status,
};

#[tokio::test]
async fn e2ee_call_with_two_callee_devices() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    relay.add_user("bob@a.test", false).await;
    let (mut ann, _) = relay.device("ann@a.test").await;
    let (mut bob1, _) = relay.device("bob@a.test").await;
    let (mut bob2, _) = relay.device("bob@a.test").await;

    ann.send(&ClientMsg::Invite {
        to: "bob@a.test".into(),
        transfer: None,
    })
    .await;
    let calling = ann.recv().await;
    let RelayMsg::Calling { ref to, mode, .. } = calling else {
        panic!("{calling:?}")
    };
    assert_eq!((to.as_str(), mode), ("bob@a.test", CallMode::E2ee));
    let id = call_id(&calling);
    for bob in [&mut bob1, &mut bob2] {
        let inc = bob.recv().await;
        assert_eq!(
            inc,
            RelayMsg::Incoming {
                call_id: id.clone(),
                from: "ann@a.test".into(),
                mode: CallMode::E2ee,
                referred_by: None,
                group: Vec::new(),
            }
        );
        bob.send(&ClientMsg::Ringing {
            call_id: id.clone(),
        })
        .await;
        assert_eq!(
            ann.recv().await,
            RelayMsg::Ringing {
                call_id: id.clone()
            }
        );
    }

    // A standard-style accept (no commitment) is refused in an E2EE call.
    bob2.send(&ClientMsg::Accept {
        call_id: id.clone(),
        commit: None,
    })
    .await;
    assert!(matches!(
        bob2.recv().await,
        RelayMsg::Error {
            code: ErrorCode::BadCommitment,
            ..
        }
    ));

    bob2.send(&ClientMsg::Accept {
        call_id: id.clone(),
        commit: Some(commit()),
    })
    .await;
    assert_eq!(
        ann.recv().await,
        RelayMsg::Accepted {
            call_id: id.clone(),
            commit: Some(commit())
        }
    );
    assert_eq!(
        bob1.recv().await,
        RelayMsg::AnsweredElsewhere {
            call_id: id.clone()
        }
    );
    // ... and learns the call goes on elsewhere (for "move here").
    assert_eq!(
        bob1.recv().await,
        RelayMsg::ElsewhereCall {
            call_id: id.clone(),
            peer: "ann@a.test".into(),
            mode: CallMode::E2ee
        }
    );
    // Second accept loses.
    bob1.send(&ClientMsg::Accept {
        call_id: id.clone(),
        commit: Some(commit()),
    })
    .await;
    assert!(matches!(
        bob1.recv().await,
        RelayMsg::Error {
            code: ErrorCode::WrongState,
            ..
        }
    ));

    let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\na=fingerprint:sha-256 AB:CD\r\n odd  spacing \r\n".to_string();
    ann.send(&ClientMsg::Offer {
        call_id: id.clone(),
        sdp: sdp.clone(),
    })
    .await;
    assert_eq!(
        bob2.recv().await,
        RelayMsg::Offer {
            call_id: id.clone(),
            sdp: sdp.clone()
        }
    );
    bob2.send(&ClientMsg::Answer {
        call_id: id.clone(),
        sdp: sdp.clone(),
    })
    .await;
    assert_eq!(
        ann.recv().await,
        RelayMsg::Answer {
            call_id: id.clone(),
            sdp
        }
    );
    let cand = IceCandidate {
        candidate: "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: None,
    };
    bob2.send(&ClientMsg::Ice {
        call_id: id.clone(),
        candidate: cand.clone(),
    })
    .await;
    assert_eq!(
        ann.recv().await,
        RelayMsg::Ice {
            call_id: id.clone(),
            candidate: cand.clone()
        }
    );

    // The device that lost the race is not bound.
    bob1.send(&ClientMsg::Ice {
        call_id: id.clone(),
        candidate: cand,
    })
    .await;
    assert!(matches!(
        bob1.recv().await,
        RelayMsg::Error {
            code: ErrorCode::NotYourCall,
            ..
        }
    ));

    // Features are off in E2EE calls.
    bob2.send(&ClientMsg::Feature {
        call_id: id.clone(),
        feature: shieldcall_proto::CallFeature::Transcription,
    })
    .await;
    assert!(matches!(
        bob2.recv().await,
        RelayMsg::Error {
            code: ErrorCode::UnavailableInE2ee,
            ..
        }
    ));

    ann.send(&ClientMsg::Hangup {
        call_id: id.clone(),
        reason: HangupReason::Normal,
    })
    .await;
    assert_eq!(
        bob2.recv().await,
        RelayMsg::Hangup {
            call_id: id.clone(),
            reason: HangupReason::Normal
        }
    );
    ann.expect_quiet(std::time::Duration::from_millis(100))
        .await;
    assert_eq!(
        bob1.recv().await,
        RelayMsg::ElsewhereEnded {
            call_id: id.clone()
        }
    );
    bob1.expect_quiet(std::time::Duration::from_millis(100))
        .await;
    relay.stop().await;
}

#[tokio::test]
async fn standard_call_needs_a_commitment_too_and_reports_features_honestly() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    relay.add_user("bob@a.test", false).await;
    let (mut ann, _) = relay.device("ann@a.test").await;
    let (mut bob, _) = relay.device("bob@a.test").await;
    ann.send(&ClientMsg::SetE2ee { enabled: false }).await;
    assert!(matches!(ann.recv().await, RelayMsg::Settings { .. }));
    ann.send(&ClientMsg::Invite {
        to: "bob@a.test".into(),
        transfer: None,
    })
    .await;
    let calling = ann.recv().await;
    assert!(
        matches!(
            calling,
            RelayMsg::Calling {
                mode: CallMode::Standard,
                ..
            }
        ),
        "{calling:?}"
    );
    let id = call_id(&bob.recv().await);
    // A standard call commits too: without a commitment the accept is refused.
    bob.send(&ClientMsg::Accept {
        call_id: id.clone(),
        commit: None,
    })
    .await;
    assert!(matches!(
        bob.recv().await,
        RelayMsg::Error {
            code: ErrorCode::BadCommitment,
            ..
        }
    ));
    bob.send(&ClientMsg::Accept {
        call_id: id.clone(),
        commit: Some(commit()),
    })
    .await;
    assert_eq!(
        ann.recv().await,
        RelayMsg::Accepted {
            call_id: id.clone(),
            commit: Some(commit())
        }
    );
    // This relay has no speech recogniser: live captions are honestly "not
    // here", not "not allowed".
    ann.send(&ClientMsg::Captions {
        call_id: id.clone(),
        on: true,
    })
    .await;
    assert!(matches!(
        ann.recv().await,
        RelayMsg::Error {
            code: ErrorCode::NotDeployed,
            ..
        }
    ));
    bob.send(&ClientMsg::Hangup {
        call_id: id.clone(),
        reason: HangupReason::Mitm,
    })
    .await;
    assert_eq!(
        ann.recv().await,
        RelayMsg::Hangup {
            call_id: id,
            reason: HangupReason::Mitm
        }
    );
    relay.stop().await;
}

#[tokio::test]
async fn presence_is_pushed_live() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    relay.add_user("bob@a.test", false).await;
    relay.add_user("cid@a.test", false).await;
    let (mut ann, _) = relay.device("ann@a.test").await;
    let status_of = |m: RelayMsg, who: &str| match m {
        RelayMsg::Presence { contacts } => contacts
            .into_iter()
            .find(|p| p.user == who)
            .map(|p| p.status),
        _ => None,
    };
    let (mut bob, _) = relay.device("bob@a.test").await;
    assert_eq!(
        status_of(ann.recv_any().await, "bob@a.test"),
        Some(Status::Online)
    );
    let (_cid, _) = relay.device("cid@a.test").await;
    assert_eq!(
        status_of(ann.recv_any().await, "cid@a.test"),
        Some(Status::Online)
    );
    bob.send(&ClientMsg::Invite {
        to: "cid@a.test".into(),
        transfer: None,
    })
    .await;
    let mut busy = Vec::new();
    while busy.len() < 2 {
        if let RelayMsg::Presence { contacts } = ann.recv_any().await {
            busy.extend(
                contacts
                    .into_iter()
                    .filter(|p| p.status == Status::Busy)
                    .map(|p| p.user),
            );
        }
    }
    busy.sort();
    assert_eq!(busy, ["bob@a.test", "cid@a.test"]);
    drop(bob);
    // Bob's device vanished while ringing: the call is cancelled, bob goes offline.
    let mut seen = Vec::new();
    let done = |s: &Vec<(String, Status)>| {
        s.contains(&("bob@a.test".to_string(), Status::Offline))
            && s.contains(&("cid@a.test".to_string(), Status::Online))
    };
    while !done(&seen) {
        if let RelayMsg::Presence { contacts } = ann.recv_any().await {
            seen.extend(contacts.into_iter().map(|p| (p.user, p.status)));
        }
    }
    relay.stop().await;
}

#[tokio::test]
async fn a_long_contact_list_arrives_in_slices() {
    let relay = start().await;
    for i in 0..40 {
        relay.add_user(&format!("u{i:02}@a.test"), false).await;
    }
    let cookie = relay.cookie_for("u00@a.test").await;
    let mut c = relay.ws_raw(Some(&cookie), None).await.expect("upgrade");
    c.send(&ClientMsg::Hello { version: 1 }).await;
    assert!(matches!(c.recv_any().await, RelayMsg::Welcome { .. }));
    let mut seen = std::collections::BTreeSet::new();
    let mut messages = 0;
    while seen.len() < 39 {
        match c.recv_any().await {
            RelayMsg::Presence { contacts } => {
                assert!(contacts.len() <= 32);
                messages += 1;
                seen.extend(contacts.into_iter().map(|p| p.user));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(messages, 2);
    assert!(!seen.contains("u00@a.test"), "not oneself");
    relay.stop().await;
}
