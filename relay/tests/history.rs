//! The call history (`GET /api/history`): one entry per person per call, written
//! where the call ends, read back from the SQLite file; missed calls for people
//! who were busy or offline; nothing for a callee a policy kept from ringing;
//! only one's own calls; kept across a restart.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use shieldcall_proto::{ClientMsg, E2eePolicyType, HangupReason, RefuseReason, RelayMsg};
use shieldcall_relay::policy::ExternalAccess;

/// The user's history as the browser reads it: `(peer, direction, outcome, mode)`
/// per entry, newest first, and the raw entries.
async fn history(
    relay: &Relay,
    cookie: &str,
) -> (Vec<(String, String, String, String)>, Vec<Value>) {
    let r = relay
        .http("GET", "/api/history", &[("Cookie", cookie)], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let calls = r.json()["calls"].as_array().expect("calls").clone();
    let short = calls
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or("null").to_string();
            (s("peer"), s("direction"), s("outcome"), s("mode"))
        })
        .collect();
    (short, calls)
}

fn entry(
    peer: &str,
    direction: &str,
    outcome: &str,
    mode: &str,
) -> (String, String, String, String) {
    (peer.into(), direction.into(), outcome.into(), mode.into())
}

#[tokio::test]
async fn an_answered_call_is_in_both_histories_and_nobody_elses() {
    let relay = start().await;
    let (mut ann, mut bob, id) = answered_call(&relay).await;
    relay.add_user("cid@a.test", false).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ann.send(&ClientMsg::Hangup {
        call_id: id,
        reason: HangupReason::Normal,
    })
    .await;
    assert!(matches!(bob.recv().await, RelayMsg::Hangup { .. }));

    // Asked at once: the record made at the hangup is written before the read.
    let (a, raw) = history(&relay, &relay.cookie_for("ann@a.test").await).await;
    assert_eq!(a, vec![entry("bob@a.test", "outgoing", "answered", "e2ee")]);
    assert!(
        raw[0]["duration_secs"].as_i64().expect("duration") >= 1,
        "{raw:?}"
    );
    let at = raw[0]["at"].as_i64().expect("at");
    assert!(
        (shieldcall_relay::store::unix_now() - at).abs() < 60,
        "{at}"
    );
    let (b, _) = history(&relay, &relay.cookie_for("bob@a.test").await).await;
    assert_eq!(b, vec![entry("ann@a.test", "incoming", "answered", "e2ee")]);
    let (c, _) = history(&relay, &relay.cookie_for("cid@a.test").await).await;
    assert!(c.is_empty(), "{c:?}");

    // Without a session: refused, nothing said.
    let r = relay.http("GET", "/api/history", &[], "").await;
    assert_eq!(r.status, 401);

    // The history is in the store: it outlives the relay.
    let dir = relay.stop().await;
    let relay = start_with(dir, |_| {}).await;
    let (a, _) = history(&relay, &relay.cookie_for("ann@a.test").await).await;
    assert_eq!(a, vec![entry("bob@a.test", "outgoing", "answered", "e2ee")]);
    relay.stop().await;
}

#[tokio::test]
async fn declined_missed_busy_and_offline() {
    let relay = start_with(temp_dir(), |c| c.ring_timeout = Duration::from_millis(300)).await;
    for u in ["ann@a.test", "bob@a.test", "cid@a.test", "dan@a.test"] {
        relay.add_user(u, false).await;
    }
    let (mut ann, _) = relay.device("ann@a.test").await;
    let (mut bob, _) = relay.device("bob@a.test").await;
    let (mut cid, _) = relay.device("cid@a.test").await;
    let invite = |to: &str| ClientMsg::Invite {
        to: to.into(),
        transfer: None,
    };

    // Bob declines.
    ann.send(&invite("bob@a.test")).await;
    let id = call_id(&ann.recv().await);
    call_id(&bob.recv().await);
    bob.send(&ClientMsg::Decline { call_id: id }).await;
    assert!(matches!(ann.recv().await, RelayMsg::CallRefused { .. }));

    // Nobody answers: it rings out.
    ann.send(&invite("bob@a.test")).await;
    call_id(&ann.recv().await);
    call_id(&bob.recv().await);
    assert!(matches!(ann.recv().await, RelayMsg::CallRefused { .. }));
    assert!(matches!(bob.recv().await, RelayMsg::Cancelled { .. }));

    // Ann gives up while it rings.
    ann.send(&invite("bob@a.test")).await;
    let id = call_id(&ann.recv().await);
    call_id(&bob.recv().await);
    ann.send(&ClientMsg::Cancel { call_id: id }).await;
    assert!(matches!(bob.recv().await, RelayMsg::Cancelled { .. }));

    // Dan is offline.
    ann.send(&invite("dan@a.test")).await;
    assert!(matches!(ann.recv().await, RelayMsg::CallRefused { .. }));

    // Bob is in a call with cid; ann's call to him is missed for him.
    cid.send(&invite("bob@a.test")).await;
    call_id(&cid.recv().await);
    call_id(&bob.recv().await);
    ann.send(&invite("bob@a.test")).await;
    assert!(matches!(ann.recv().await, RelayMsg::CallRefused { .. }));

    let (a, _) = history(&relay, &relay.cookie_for("ann@a.test").await).await;
    assert_eq!(
        a,
        vec![
            entry("bob@a.test", "outgoing", "not-answered", "null"),
            entry("dan@a.test", "outgoing", "not-answered", "null"),
            entry("bob@a.test", "outgoing", "not-answered", "e2ee"),
            entry("bob@a.test", "outgoing", "not-answered", "e2ee"),
            entry("bob@a.test", "outgoing", "declined", "e2ee"),
        ]
    );
    let (b, _) = history(&relay, &relay.cookie_for("bob@a.test").await).await;
    assert_eq!(
        b,
        vec![
            entry("ann@a.test", "incoming", "missed", "null"),
            entry("ann@a.test", "incoming", "missed", "e2ee"),
            entry("ann@a.test", "incoming", "missed", "e2ee"),
            entry("ann@a.test", "incoming", "declined", "e2ee"),
        ]
    );
    // Dan signs in later and sees whom he missed.
    let (d, _) = history(&relay, &relay.cookie_for("dan@a.test").await).await;
    assert_eq!(d, vec![entry("ann@a.test", "incoming", "missed", "null")]);
    relay.stop().await;
}

#[tokio::test]
async fn a_call_refused_by_policy_is_the_callers_alone() {
    let relay = start().await;
    relay.add_user("ann@r.test", false).await;
    relay.add_user("dan@d.test", false).await;
    relay.add_user("cid@c.test", false).await;
    let ops = relay.ops();
    ops.set_policy("r.test", "Global", None, Some(E2eePolicyType::Required))
        .await
        .expect("Required");
    ops.set_policy("d.test", "Global", None, Some(E2eePolicyType::Disabled))
        .await
        .expect("Disabled");
    ops.set_external_access("c.test", &ExternalAccess::Block)
        .await
        .expect("block");
    relay.state.refresh().await.expect("refresh");
    let (mut ann, _) = relay.device("ann@r.test").await;
    let (_dan, _) = relay.device("dan@d.test").await;
    let (_cid, _) = relay.device("cid@c.test").await;
    // Required meets Disabled: refused by the policies.
    ann.send(&ClientMsg::Invite {
        to: "dan@d.test".into(),
        transfer: None,
    })
    .await;
    assert!(matches!(
        ann.recv().await,
        RelayMsg::CallRefused {
            reason: RefuseReason::E2eeRequired,
            ..
        }
    ));
    // A tenant ann may not reach: refused before any call is decided, and not
    // recorded (whether the account exists is none of ann's business).
    ann.send(&ClientMsg::Invite {
        to: "cid@c.test".into(),
        transfer: None,
    })
    .await;
    assert!(matches!(
        ann.recv().await,
        RelayMsg::CallRefused {
            reason: RefuseReason::NotAllowed,
            ..
        }
    ));
    let (a, _) = history(&relay, &relay.cookie_for("ann@r.test").await).await;
    assert_eq!(a, vec![entry("dan@d.test", "outgoing", "refused", "null")]);
    for callee in ["dan@d.test", "cid@c.test"] {
        let (c, _) = history(&relay, &relay.cookie_for(callee).await).await;
        assert!(
            c.is_empty(),
            "{callee} learns of a call the policies refused: {c:?}"
        );
    }
    relay.stop().await;
}

/// The store keeps each user's newest entries only, and a removed user's go.
#[tokio::test]
async fn the_store_keeps_the_newest_entries_per_user() {
    use shieldcall_relay::hub::{CallRecord, Direction, Outcome};
    use shieldcall_relay::store::HISTORY_PER_USER;
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    let records: Vec<CallRecord> = (0..i64::from(HISTORY_PER_USER) + 5)
        .map(|i| CallRecord {
            user: "ann@a.test".into(),
            peer: format!("p{i}@a.test"),
            direction: Direction::Outgoing,
            outcome: Outcome::NotAnswered,
            mode: None,
            at: i,
            duration_secs: 0,
        })
        .chain(std::iter::once(CallRecord {
            user: "gone@a.test".into(),
            peer: "ann@a.test".into(),
            direction: Direction::Incoming,
            outcome: Outcome::Missed,
            mode: None,
            at: 0,
            duration_secs: 0,
        }))
        .collect();
    let store = relay.state.store();
    store.add_history(&records).await.expect("add");
    let kept = store.history("ann@a.test", 1000).await.expect("read");
    assert_eq!(kept.len(), HISTORY_PER_USER as usize);
    assert_eq!(kept[0].peer, format!("p{}@a.test", HISTORY_PER_USER + 4));
    assert!(
        store
            .history("gone@a.test", 10)
            .await
            .expect("read")
            .is_empty()
    );
    relay.stop().await;
}
