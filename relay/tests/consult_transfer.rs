//! Consult transfer over real WebSockets: Bob, in a standard call with Ann,
//! holds it, consults Cat (`consult`), and joins the two (`consult-transfer`):
//! Cat's device gets `replaced` and commits with `join`, Ann's gets `new-leg`,
//! and nobody rings again. Refusals (not held, an E2EE call, an E2EE or
//! unanswered consultation, a pair the policies would make E2EE, someone else's
//! calls) change nothing.

mod common;

use std::time::Duration;

use common::*;
use shieldcall_proto::{CallId, CallMode, ClientMsg, ErrorCode, HangupReason, RelayMsg};

const QUIET: Duration = Duration::from_millis(150);

fn hold(id: &CallId, on: bool) -> ClientMsg {
    ClientMsg::Hold {
        call_id: id.clone(),
        on,
    }
}

fn consult(id: &CallId, to: &str) -> ClientMsg {
    ClientMsg::Consult {
        call_id: id.clone(),
        to: to.into(),
    }
}

fn complete(held: &CallId, consult: &CallId) -> ClientMsg {
    ClientMsg::ConsultTransfer {
        call_id: held.clone(),
        consult: consult.clone(),
    }
}

/// Bob holds `held` and calls Cat about it; Cat's device rings and, if
/// `answer`, accepts. The consultation's id and mode.
async fn consult_cat(
    ann: &mut Client,
    bob: &mut Client,
    cat: &mut Client,
    held: &CallId,
    answer: bool,
) -> (CallId, CallMode) {
    bob.send(&hold(held, true)).await;
    assert!(matches!(
        bob.recv().await,
        RelayMsg::Hold { by_me: true, .. }
    ));
    assert!(matches!(
        ann.recv().await,
        RelayMsg::Hold { by_peer: true, .. }
    ));
    bob.send(&consult(held, "cat@a.test")).await;
    let calling = bob.recv().await;
    let RelayMsg::Calling { call_id, mode, .. } = calling.clone() else {
        panic!("{calling:?}")
    };
    assert_eq!(
        cat.recv().await,
        RelayMsg::Incoming {
            call_id: call_id.clone(),
            from: "bob@a.test".into(),
            mode,
            referred_by: None,
            group: Vec::new(),
        }
    );
    if answer {
        cat.send(&ClientMsg::Accept {
            call_id: call_id.clone(),
            commit: Some(commit()),
        })
        .await;
        assert!(matches!(bob.recv().await, RelayMsg::Accepted { .. }));
    }
    (call_id, mode)
}

#[tokio::test]
async fn a_consult_transfer_joins_the_two_without_ringing() {
    let relay = start().await;
    relay.add_user("cat@a.test", false).await;
    let (mut ann, mut bob, held) = answered_call_in(&relay, CallMode::Standard).await;
    let (mut cat, _) = relay.device("cat@a.test").await;
    // Cat's switch off: the consultation is standard.
    cat.send(&ClientMsg::SetE2ee { enabled: false }).await;
    assert!(matches!(cat.recv().await, RelayMsg::Settings { .. }));
    let (consulted, mode) = consult_cat(&mut ann, &mut bob, &mut cat, &held, true).await;
    assert_eq!(mode, CallMode::Standard);
    assert_ne!(consulted, held);
    // Bob talks to Cat while Ann waits: the consultation carries media.
    bob.send(&ClientMsg::Offer {
        call_id: consulted.clone(),
        sdp: "v=0\r\n".into(),
    })
    .await;
    assert!(matches!(cat.recv().await, RelayMsg::Offer { .. }));
    ann.expect_quiet(QUIET).await;

    bob.send(&complete(&held, &consulted)).await;
    assert_eq!(
        bob.recv().await,
        RelayMsg::Hangup {
            call_id: consulted.clone(),
            reason: HangupReason::Transferred
        }
    );
    assert_eq!(
        bob.recv().await,
        RelayMsg::Hangup {
            call_id: held.clone(),
            reason: HangupReason::Transferred
        }
    );
    assert_eq!(
        cat.recv().await,
        RelayMsg::Replaced {
            call_id: consulted.clone(),
            join: held.clone(),
            peer: "ann@a.test".into(),
            by: "bob@a.test".into(),
            mode: CallMode::Standard,
        }
    );
    // Nothing reaches Ann until Cat's device commits.
    ann.expect_quiet(QUIET).await;
    cat.send(&ClientMsg::Join {
        call_id: held.clone(),
        commit: Some(commit()),
    })
    .await;
    assert_eq!(
        ann.recv().await,
        RelayMsg::NewLeg {
            call_id: held.clone(),
            peer: "cat@a.test".into(),
            commit: commit(),
        }
    );
    // The new leg runs as any: Ann offers, Cat answers.
    ann.send(&ClientMsg::Offer {
        call_id: held.clone(),
        sdp: "v=0\r\n".into(),
    })
    .await;
    assert!(matches!(cat.recv().await, RelayMsg::Offer { .. }));
    cat.send(&ClientMsg::Answer {
        call_id: held.clone(),
        sdp: "v=0\r\n".into(),
    })
    .await;
    assert!(matches!(ann.recv().await, RelayMsg::Answer { .. }));
    // Bob is out of both calls and free for another.
    for id in [&held, &consulted] {
        bob.send(&ClientMsg::Hangup {
            call_id: id.clone(),
            reason: HangupReason::Normal,
        })
        .await;
        assert_eq!(error_code(&bob.recv().await), Some(ErrorCode::NotYourCall));
    }
    cat.send(&ClientMsg::Hangup {
        call_id: held.clone(),
        reason: HangupReason::Normal,
    })
    .await;
    assert!(matches!(ann.recv().await, RelayMsg::Hangup { .. }));
    bob.send(&ClientMsg::Invite {
        to: "ann@a.test".into(),
        transfer: None,
    })
    .await;
    assert!(matches!(bob.recv().await, RelayMsg::Calling { .. }));
    relay.stop().await;
}

#[tokio::test]
async fn a_consultation_that_ends_gives_the_held_call_back() {
    let relay = start().await;
    relay.add_user("cat@a.test", false).await;
    let (mut ann, mut bob, held) = answered_call_in(&relay, CallMode::Standard).await;
    let (mut cat, _) = relay.device("cat@a.test").await;
    // Not held yet: no consultation.
    bob.send(&consult(&held, "cat@a.test")).await;
    assert_eq!(error_code(&bob.recv().await), Some(ErrorCode::WrongState));
    cat.expect_quiet(QUIET).await;

    let (consulted, _) = consult_cat(&mut ann, &mut bob, &mut cat, &held, false).await;
    // Unanswered: nothing to join yet.
    bob.send(&complete(&held, &consulted)).await;
    assert_eq!(error_code(&bob.recv().await), Some(ErrorCode::WrongState));
    // While Bob consults, the held call stays as it is.
    bob.send(&hold(&held, false)).await;
    assert_eq!(error_code(&bob.recv().await), Some(ErrorCode::WrongState));
    bob.send(&ClientMsg::Park {
        call_id: held.clone(),
    })
    .await;
    assert_eq!(error_code(&bob.recv().await), Some(ErrorCode::WrongState));
    // Ann cannot use Bob's consultation.
    ann.send(&complete(&held, &consulted)).await;
    assert_eq!(error_code(&ann.recv().await), Some(ErrorCode::NotYourCall));

    cat.send(&ClientMsg::Decline {
        call_id: consulted.clone(),
    })
    .await;
    assert!(matches!(bob.recv().await, RelayMsg::CallRefused { .. }));
    // The held call is Bob's again: he takes his hold off and Ann hears him.
    bob.send(&hold(&held, false)).await;
    assert!(matches!(
        bob.recv().await,
        RelayMsg::Hold { by_me: false, .. }
    ));
    assert!(matches!(
        ann.recv().await,
        RelayMsg::Hold { by_peer: false, .. }
    ));
    relay.stop().await;
}

#[tokio::test]
async fn end_to_end_encryption_refuses_each_step_and_changes_nothing() {
    let relay = start().await;
    relay.add_user("cat@a.test", false).await;
    // An E2EE call cannot be held, so it cannot wait for a consultation.
    let (_ann, mut bob, e2ee) = answered_call(&relay).await;
    bob.send(&consult(&e2ee, "cat@a.test")).await;
    assert_eq!(
        error_code(&bob.recv().await),
        Some(ErrorCode::UnavailableInE2ee)
    );
    relay.stop().await;

    // A standard call (Ann's switch off), an E2EE consultation (Bob and Cat on):
    // the consultation is a call like any, but it is not handed over.
    let relay = start().await;
    relay.add_user("cat@a.test", false).await;
    let (mut ann, mut bob, held) = answered_call_in(&relay, CallMode::Standard).await;
    let (mut cat, _) = relay.device("cat@a.test").await;
    let (consulted, mode) = consult_cat(&mut ann, &mut bob, &mut cat, &held, true).await;
    assert_eq!(mode, CallMode::E2ee);
    bob.send(&complete(&held, &consulted)).await;
    assert_eq!(
        error_code(&bob.recv().await),
        Some(ErrorCode::UnavailableInE2ee)
    );
    cat.expect_quiet(QUIET).await;
    ann.expect_quiet(QUIET).await;
    // Both calls go on.
    bob.send(&ClientMsg::Offer {
        call_id: consulted.clone(),
        sdp: "v=0\r\n".into(),
    })
    .await;
    assert!(matches!(cat.recv().await, RelayMsg::Offer { .. }));
    relay.stop().await;
}

#[tokio::test]
async fn a_pair_the_policies_would_make_e2ee_is_not_joined() {
    // Bob's switch off, Ann's and Cat's on: Ann–Bob and Bob–Cat are standard,
    // Ann–Cat would be end-to-end encrypted, which a handed-over call is not.
    let relay = start().await;
    for u in ["ann@a.test", "bob@a.test", "cat@a.test"] {
        relay.add_user(u, false).await;
    }
    let (mut ann, _) = relay.device("ann@a.test").await;
    let (mut bob, _) = relay.device("bob@a.test").await;
    let (mut cat, _) = relay.device("cat@a.test").await;
    bob.send(&ClientMsg::SetE2ee { enabled: false }).await;
    assert!(matches!(bob.recv().await, RelayMsg::Settings { .. }));
    bob.send(&ClientMsg::Invite {
        to: "ann@a.test".into(),
        transfer: None,
    })
    .await;
    let held = call_id(&bob.recv().await);
    call_id(&ann.recv().await);
    ann.send(&ClientMsg::Accept {
        call_id: held.clone(),
        commit: Some(commit()),
    })
    .await;
    assert!(matches!(bob.recv().await, RelayMsg::Accepted { .. }));
    let (consulted, mode) = consult_cat(&mut ann, &mut bob, &mut cat, &held, true).await;
    assert_eq!(mode, CallMode::Standard);
    bob.send(&complete(&held, &consulted)).await;
    let refused = bob.recv().await;
    assert_eq!(error_code(&refused), Some(ErrorCode::UnavailableInE2ee));
    let RelayMsg::Error { message, .. } = refused else {
        unreachable!()
    };
    assert!(message.contains("transfer blind"), "{message}");
    cat.expect_quiet(QUIET).await;
    // Bob ends the consultation and has Ann back.
    bob.send(&ClientMsg::Hangup {
        call_id: consulted.clone(),
        reason: HangupReason::Normal,
    })
    .await;
    assert!(matches!(cat.recv().await, RelayMsg::Hangup { .. }));
    bob.send(&hold(&held, false)).await;
    assert!(matches!(
        bob.recv().await,
        RelayMsg::Hold { by_me: false, .. }
    ));
    relay.stop().await;
}
