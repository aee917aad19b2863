//! The tenant's calling policy (Teams' `CsTeamsCallingPolicy`), through a real
//! relay: set by an admin over the admin API or by the CLI in another process,
//! it refuses recording and voicemail with `not-allowed` at once, stops a
//! recording under way, and a malformed policy is refused whole.

mod common;

use std::time::{Duration, Instant};

use common::*;
use shieldcall_proto::{CallMode, ClientMsg, ErrorCode, RelayMsg};

#[tokio::test]
async fn an_admin_turns_recording_off_and_it_stops_and_is_refused() {
    let relay = start().await;
    relay.add_user("adm@a.test", true).await;
    let (mut ann, mut bob, id) = answered_call_in(&relay, CallMode::Standard).await;
    let admin = relay.cookie_for("adm@a.test").await;
    let get = || {
        let (relay, admin) = (&relay, admin.clone());
        async move {
            relay
                .http(
                    "GET",
                    "/api/admin/calling-policy",
                    &[("Cookie", &admin)],
                    "",
                )
                .await
        }
    };
    assert_eq!(
        get().await.json(),
        serde_json::json!({
            "AllowCloudRecordingForCalls": true,
            "AllowTranscriptionForCalling": true,
            "AllowVoicemail": true
        })
    );
    let record = |on| ClientMsg::Record {
        call_id: id.clone(),
        on,
    };
    ann.send(&record(true)).await;
    assert!(matches!(
        ann.recv().await,
        RelayMsg::Recording { on: true, .. }
    ));
    assert!(matches!(
        bob.recv().await,
        RelayMsg::Recording { on: true, .. }
    ));

    // Malformed or unknown fields: refused, nothing changed.
    for bad in [
        r#"{"AllowCloudRecordingForCalls":false}"#,
        r#"{"AllowCloudRecordingForCalls":"no","AllowTranscriptionForCalling":true,"AllowVoicemail":true}"#,
        r#"{"AllowCloudRecordingForCalls":false,"AllowTranscriptionForCalling":true,"AllowVoicemail":true,"Extra":1}"#,
        "not json",
    ] {
        let r = relay
            .admin(&admin, "PUT", "/api/admin/calling-policy", bad)
            .await;
        assert!((400..500).contains(&r.status), "{bad}: {}", r.status);
    }
    assert_eq!(get().await.json()["AllowCloudRecordingForCalls"], true);

    let off = r#"{"AllowCloudRecordingForCalls":false,"AllowTranscriptionForCalling":true,"AllowVoicemail":true}"#;
    let r = relay
        .admin(&admin, "PUT", "/api/admin/calling-policy", off)
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(get().await.json()["AllowCloudRecordingForCalls"], false);
    // The recording under way stops for both people.
    let stopped = RelayMsg::Recording {
        call_id: id.clone(),
        on: false,
        by: None,
    };
    assert_eq!(ann.recv().await, stopped);
    assert_eq!(bob.recv().await, stopped);
    // And cannot start again.
    bob.send(&record(true)).await;
    let refusal = bob.recv().await;
    assert_eq!(
        error_code(&refusal),
        Some(ErrorCode::NotAllowed),
        "{refusal:?}"
    );
    // The change is in the audit log.
    let audit = relay
        .http("GET", "/api/admin/audit", &[("Cookie", &admin)], "")
        .await;
    assert!(audit.body.contains("calling-policy"), "{}", audit.body);
    relay.stop().await;
}

#[tokio::test]
async fn the_cli_turns_voicemail_off_for_a_running_relay() {
    let dir = temp_dir();
    let relay = start_with(dir.clone(), |_| {}).await;
    relay.add_user("ann@a.test", false).await;
    relay.add_user("bob@a.test", false).await;
    let (mut ann, _) = relay.device("ann@a.test").await;
    ann.send(&ClientMsg::SetE2ee { enabled: false }).await;
    assert!(matches!(ann.recv().await, RelayMsg::Settings { .. }));

    let out = shieldcall(&dir)
        .args([
            "tenant",
            "calling-policy",
            "a.test",
            "--allow-voicemail",
            "false",
        ])
        .output()
        .expect("the CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = shieldcall(&dir)
        .args(["tenant", "list"])
        .output()
        .expect("the CLI");
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(listed.contains(r#""AllowVoicemail":false"#), "{listed}");
    assert!(
        listed.contains(r#""AllowCloudRecordingForCalls":true"#),
        "{listed}"
    );

    // The relay sees the change within its poll (250 ms).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        ann.send(&ClientMsg::Voicemail {
            to: "bob@a.test".into(),
        })
        .await;
        match ann.recv().await {
            m if error_code(&m) == Some(ErrorCode::NotAllowed) => break,
            RelayMsg::Voicemail { call_id, .. } => {
                assert!(Instant::now() < deadline, "voicemail still allowed");
                ann.send(&ClientMsg::Record { call_id, on: false }).await;
                assert!(matches!(
                    ann.recv().await,
                    RelayMsg::Recording { on: false, .. }
                ));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("{other:?}"),
        }
    }
    relay.stop().await;
}
