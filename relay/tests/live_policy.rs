//! A policy or switch change reaches open sessions within a second, whether made
//! through the admin API, the CLI (another process) or another device.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use shieldcall_proto::{ClientMsg, E2eePolicyType, ErrorCode, RelayMsg};

async fn settings(c: &mut Client) -> shieldcall_proto::E2eeSetting {
    match c.recv().await {
        RelayMsg::Settings { e2ee } => e2ee,
        other => panic!("expected settings, got {other:?}"),
    }
}

#[tokio::test]
async fn cli_change_reaches_an_open_session_within_a_second() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    let (mut ann, _) = relay.device("ann@a.test").await;
    let t0 = Instant::now();
    let out = common::shieldcall(&relay.dir)
        .args([
            "policy",
            "set",
            "--identity",
            "Global",
            "--calling-e2ee",
            "Required",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run cli");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = settings(&mut ann).await;
    assert_eq!(s.policy, E2eePolicyType::Required);
    assert!(!s.can_change);
    // The CLI process start is included; the relay's own part is one poll (100 ms here).
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    relay.stop().await;
}

#[tokio::test]
async fn api_change_and_switch_reach_every_device() {
    let relay = start().await;
    relay.add_user("adm@a.test", true).await;
    relay.add_user("ann@a.test", false).await;
    let (mut ann1, _) = relay.device("ann@a.test").await;
    let (mut ann2, _) = relay.device("ann@a.test").await;

    // The switch on one device reaches both.
    ann1.send(&ClientMsg::SetE2ee { enabled: false }).await;
    for c in [&mut ann1, &mut ann2] {
        let s = settings(c).await;
        assert!(!s.enabled && s.can_change);
    }

    // An admin puts ann under Required: pushed at once, switch locked.
    let admin = relay.cookie_for("adm@a.test").await;
    let r = relay
        .admin(
            &admin,
            "POST",
            "/api/admin/policies",
            r#"{"Identity":"Tag:Strict","CallingEndtoEndEncryptionEnabledType":"Required"}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let t0 = Instant::now();
    let r = relay
        .admin(
            &admin,
            "POST",
            "/api/admin/grant",
            r#"{"PolicyName":"Tag:Strict","User":"ann@a.test"}"#,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    for c in [&mut ann1, &mut ann2] {
        let s = settings(c).await;
        assert!(s.enabled && !s.can_change);
        assert_eq!(s.policy_identity, "Tag:Strict");
    }
    assert!(t0.elapsed() < Duration::from_secs(1));
    ann2.send(&ClientMsg::SetE2ee { enabled: false }).await;
    assert!(matches!(
        ann2.recv().await,
        RelayMsg::Error {
            code: ErrorCode::PolicyLocked,
            ..
        }
    ));

    // Unassigning (empty PolicyName) falls back to Global and the stored switch (off).
    let r = relay
        .admin(
            &admin,
            "POST",
            "/api/admin/grant",
            r#"{"PolicyName":"","User":"ann@a.test"}"#,
        )
        .await;
    assert_eq!(r.status, 204);
    let s = settings(&mut ann1).await;
    assert_eq!((s.policy_identity.as_str(), s.enabled), ("Global", false));
    relay.stop().await;
}
