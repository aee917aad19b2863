//! Hostile or broken input: each gets a clear error, never a panic, and other
//! sessions carry on.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use shieldcall_proto::{CallId, ClientMsg, ErrorCode, RelayMsg};
use tokio_tungstenite::tungstenite::Message;

fn code(m: &RelayMsg) -> ErrorCode {
    match m {
        RelayMsg::Error { code, .. } => *code,
        other => panic!("expected error, got {other:?}"),
    }
}

async fn setup() -> (Relay, Client, Client) {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    relay.add_user("bob@a.test", false).await;
    relay.add_user("eve@a.test", false).await;
    let (ann, _) = relay.device("ann@a.test").await;
    let (bob, _) = relay.device("bob@a.test").await;
    (relay, ann, bob)
}

#[tokio::test]
async fn malformed_and_unknown_messages() {
    let (relay, mut ann, mut bob) = setup().await;
    for bad in [
        "not json",
        "{}",
        r#"{"type":"teleport"}"#,
        r#"{"type":"invite"}"#,
        r#"{"type":"invite","to":"bob@a.test","extra":1}"#,
        r#"{"type":"ping","id":-1}"#,
        "[1,2,3]",
        "\u{0}\u{1}",
    ] {
        ann.send_raw(bad).await;
        assert_eq!(code(&ann.recv().await), ErrorCode::BadMessage, "{bad}");
    }
    ann.ws
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .expect("send");
    assert_eq!(code(&ann.recv().await), ErrorCode::BadMessage);
    ann.send(&ClientMsg::Hello { version: 1 }).await;
    assert_eq!(code(&ann.recv().await), ErrorCode::HelloFirst);
    ann.assert_alive(1).await;
    bob.assert_alive(2).await;
    relay.stop().await;
}

#[tokio::test]
async fn hello_rules() {
    let (relay, _ann, _bob) = setup().await;
    let cookie = relay.cookie_for("eve@a.test").await;
    let mut c = relay.ws_raw(Some(&cookie), None).await.expect("upgrade");
    c.send(&ClientMsg::Invite {
        to: "ann@a.test".into(),
        transfer: None,
    })
    .await;
    assert_eq!(code(&c.recv().await), ErrorCode::HelloFirst);
    c.send(&ClientMsg::Hello { version: 99 }).await;
    assert_eq!(code(&c.recv().await), ErrorCode::UnsupportedVersion);
    assert!(c.closed_within(WAIT).await);
    relay.stop().await;
}

#[tokio::test]
async fn oversize_frame_is_refused_and_closed() {
    let (relay, mut ann, mut bob) = setup().await;
    let sdp = "a".repeat(shieldcall_proto::MAX_MESSAGE_BYTES + 10);
    let frame = ClientMsg::Offer {
        call_id: CallId("x".into()),
        sdp,
    }
    .encode();
    let _ = ann.ws.send(Message::Text(frame.into())).await;
    let mut got = None;
    while let Some(m) = ann.try_recv_any(WAIT).await {
        if !matches!(m, RelayMsg::Presence { .. }) {
            got = Some(code(&m));
            break;
        }
    }
    assert_eq!(got, Some(ErrorCode::TooLarge));
    assert!(ann.closed_within(WAIT).await);
    bob.assert_alive(3).await;
    relay.stop().await;
}

#[tokio::test]
async fn someone_elses_call() {
    let (relay, mut ann, mut bob) = setup().await;
    let (mut eve, _) = relay.device("eve@a.test").await;
    ann.send(&ClientMsg::Invite {
        to: "bob@a.test".into(),
        transfer: None,
    })
    .await;
    let id = call_id(&ann.recv().await);
    call_id(&bob.recv().await);
    for msg in [
        ClientMsg::Accept {
            call_id: id.clone(),
            commit: Some(commit()),
        },
        ClientMsg::Decline {
            call_id: id.clone(),
        },
        ClientMsg::Cancel {
            call_id: id.clone(),
        },
        ClientMsg::Ringing {
            call_id: id.clone(),
        },
        ClientMsg::Offer {
            call_id: id.clone(),
            sdp: "v=0".into(),
        },
        ClientMsg::Hangup {
            call_id: id.clone(),
            reason: shieldcall_proto::HangupReason::Normal,
        },
        ClientMsg::Decline {
            call_id: CallId("no-such-call".into()),
        },
    ] {
        eve.send(&msg).await;
        assert_eq!(code(&eve.recv().await), ErrorCode::NotYourCall, "{msg:?}");
    }
    // Media before the answer is out of order for the caller.
    ann.send(&ClientMsg::Offer {
        call_id: id.clone(),
        sdp: "v=0".into(),
    })
    .await;
    assert_eq!(code(&ann.recv().await), ErrorCode::WrongState);
    // The real call is untouched.
    bob.send(&ClientMsg::Accept {
        call_id: id.clone(),
        commit: Some(commit()),
    })
    .await;
    assert!(matches!(ann.recv().await, RelayMsg::Accepted { .. }));
    relay.stop().await;
}

#[tokio::test]
async fn a_flood_is_rate_limited_without_hurting_others() {
    let (relay, mut ann, mut bob) = setup().await;
    for i in 0..300 {
        ann.send(&ClientMsg::Ping { id: i }).await;
    }
    let mut pongs = 0;
    let mut limited = false;
    while let Some(m) = ann.try_recv_any(Duration::from_millis(300)).await {
        match m {
            RelayMsg::Pong { .. } => pongs += 1,
            RelayMsg::Error {
                code: ErrorCode::RateLimited,
                ..
            } => limited = true,
            _ => {}
        }
    }
    assert!(limited, "a rate-limited error was sent");
    assert!(
        (50..300).contains(&pongs),
        "{pongs} pongs: the burst passed, the rest was dropped"
    );
    bob.assert_alive(1000).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    ann.assert_alive(1001).await;
    relay.stop().await;
}

#[tokio::test]
async fn a_device_that_does_not_read_is_disconnected() {
    let relay = start_with(temp_dir(), |c| {
        c.msg_rate = 100_000.0;
        c.msg_burst = 100_000.0;
    })
    .await;
    let (mut ann, mut bob, id) = answered_call(&relay).await;
    // Bob stops reading; ann sends far more than his socket and outbox hold.
    let sdp = "a".repeat(16 * 1024);
    for _ in 0..2000 {
        ann.send(&ClientMsg::Offer {
            call_id: id.clone(),
            sdp: sdp.clone(),
        })
        .await;
    }
    assert!(bob.closed_within(Duration::from_secs(20)).await);
    ann.assert_alive(7).await;
    relay.stop().await;
}

/// A user may have ten devices connected; the eleventh `hello` is refused with
/// `too-many-devices` and closed, and the ten stay.
#[tokio::test]
async fn an_eleventh_device_is_refused() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    let cookie = relay.cookie_for("ann@a.test").await;
    let mut devices = Vec::new();
    for _ in 0..shieldcall_relay::hub::MAX_DEVICES_PER_USER {
        devices.push(relay.device_with(&cookie).await.0);
    }
    let mut extra = relay.ws_raw(Some(&cookie), None).await.expect("upgrade");
    extra
        .send(&ClientMsg::Hello {
            version: shieldcall_proto::PROTOCOL_VERSION,
        })
        .await;
    assert_eq!(code(&extra.recv().await), ErrorCode::TooManyDevices);
    assert!(extra.closed_within(WAIT).await);
    for (i, d) in devices.iter_mut().enumerate() {
        d.assert_alive(i as u64).await;
    }
    relay.stop().await;
}

/// Switch changes are limited per user (every change is a store write, an audit
/// entry and a push to every device), and one that changes nothing writes nothing.
#[tokio::test]
async fn switch_changes_are_rate_limited_and_no_ops_are_not_written() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    let (mut ann, _) = relay.device("ann@a.test").await;
    let (mut ann2, _) = relay.device("ann@a.test").await;
    ann.send(&ClientMsg::SetE2ee { enabled: false }).await;
    assert!(matches!(ann.recv().await, RelayMsg::Settings { .. }));
    assert!(matches!(ann2.recv().await, RelayMsg::Settings { .. }));
    // The other device at once: the same user's limit.
    ann2.send(&ClientMsg::SetE2ee { enabled: true }).await;
    assert_eq!(code(&ann2.recv().await), ErrorCode::RateLimited);
    let before = relay.state.store().changes().await.expect("changes");
    tokio::time::sleep(shieldcall_relay::hub::SWITCH_INTERVAL).await;
    // Off again: already off, so nothing is written and nothing is pushed.
    ann.send(&ClientMsg::SetE2ee { enabled: false }).await;
    ann.expect_quiet(Duration::from_millis(200)).await;
    assert_eq!(
        relay.state.store().changes().await.expect("changes"),
        before
    );
    relay.stop().await;
}

/// A switch change is pushed to the user's devices at once and does not make the
/// change watcher reload the whole directory (which every `hello` waits on).
#[tokio::test]
async fn a_switch_change_does_not_trigger_a_full_refresh() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    let (mut ann, _) = relay.device("ann@a.test").await;
    // Let the watcher catch up with the store as it is.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let before = relay.state.refreshes();
    ann.send(&ClientMsg::SetE2ee { enabled: false }).await;
    assert!(matches!(ann.recv().await, RelayMsg::Settings { .. }));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(relay.state.refreshes(), before);
    relay.stop().await;
}
