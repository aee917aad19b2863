//! A restart keeps users, sessions, policies, assignments, switches and the audit log.

mod common;

use common::*;
use shieldcall_proto::{ClientMsg, E2eePolicyType, RelayMsg};

#[tokio::test]
async fn everything_acknowledged_survives_a_restart() {
    let relay = start().await;
    relay.add_user("adm@a.test", true).await;
    relay.add_user("ann@a.test", false).await;
    let admin = relay.login("adm@a.test", "password-adm@a.test").await;
    let ann = relay.login("ann@a.test", "password-ann@a.test").await;
    let r = relay
        .admin(&admin, "POST", "/api/admin/policies", r#"{"Identity":"Tag:Opt","Description":"opt in","CallingEndtoEndEncryptionEnabledType":"DisabledUserOverride"}"#)
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        relay
            .admin(
                &admin,
                "POST",
                "/api/admin/grant",
                r#"{"PolicyName":"Tag:Opt","User":"ann@a.test"}"#
            )
            .await
            .status,
        204
    );
    let (mut dev, _) = relay.device_with(&ann).await;
    dev.send(&ClientMsg::SetE2ee { enabled: true }).await;
    assert!(matches!(dev.recv().await, RelayMsg::Settings { .. }));
    drop(dev);
    let dir = relay.stop().await;

    let relay = start_with(dir, |_| {}).await;
    // The sessions still work.
    let me = relay.http("GET", "/api/me", &[("Cookie", &ann)], "").await;
    assert_eq!(me.status, 200, "{}", me.body);
    let e2ee = &me.json()["e2ee"];
    assert_eq!(e2ee["policy_identity"], "Tag:Opt");
    assert_eq!(e2ee["enabled"], true, "the switch survived");
    let (_dev, welcome) = relay.device_with(&ann).await;
    let RelayMsg::Welcome { e2ee, .. } = welcome else {
        panic!()
    };
    assert_eq!(e2ee.policy, E2eePolicyType::DisabledUserOverride);
    // Policies and the audit log survived.
    let p = relay
        .http(
            "GET",
            "/api/admin/policies/Tag:Opt",
            &[("Cookie", &admin)],
            "",
        )
        .await;
    assert_eq!(p.status, 200);
    assert_eq!(p.json()["Description"], "opt in");
    let audit = relay
        .http("GET", "/api/admin/audit", &[("Cookie", &admin)], "")
        .await;
    let actions: Vec<String> = audit
        .json()
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default().to_string())
        .collect();
    for a in [
        "user.e2ee-switch",
        "grant",
        "policy.new",
        "user.add",
        "tenant.add",
    ] {
        assert!(actions.contains(&a.to_string()), "{a} in {actions:?}");
    }
    // Passwords too.
    relay.login("ann@a.test", "password-ann@a.test").await;
    relay.stop().await;
}
