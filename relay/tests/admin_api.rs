//! The admin API: only admins of the tenant, same-origin for changes, Teams'
//! names, Global permanent, removal of an assigned policy, effective policy, audit.

mod common;

use common::*;

async fn setup() -> (Relay, String) {
    let relay = start().await;
    relay.add_user("adm@a.test", true).await;
    relay.add_user("ann@a.test", false).await;
    relay.add_user("other@b.test", true).await;
    let admin = relay.cookie_for("adm@a.test").await;
    (relay, admin)
}

#[tokio::test]
async fn only_admins_and_only_same_origin_changes() {
    let (relay, admin) = setup().await;
    let ann = relay.cookie_for("ann@a.test").await;
    assert_eq!(
        relay
            .http("GET", "/api/admin/policies", &[], "")
            .await
            .status,
        401
    );
    assert_eq!(
        relay
            .http("GET", "/api/admin/policies", &[("Cookie", &ann)], "")
            .await
            .status,
        403
    );
    assert_eq!(
        relay
            .http("GET", "/api/admin/policies", &[("Cookie", &admin)], "")
            .await
            .status,
        200
    );
    let body = r#"{"Identity":"Tag:X"}"#;
    let json = ("Content-Type", "application/json");
    // No Origin, or a foreign one: refused.
    assert_eq!(
        relay
            .http(
                "POST",
                "/api/admin/policies",
                &[("Cookie", &admin), json],
                body
            )
            .await
            .status,
        403
    );
    let evil = [
        ("Cookie", admin.as_str()),
        json,
        ("Origin", "https://evil.example"),
    ];
    assert_eq!(
        relay
            .http("POST", "/api/admin/policies", &evil, body)
            .await
            .status,
        403
    );
    // Not JSON: refused.
    let origin = relay.origin();
    let form = [
        ("Cookie", admin.as_str()),
        ("Origin", origin.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    assert_eq!(
        relay
            .http("POST", "/api/admin/policies", &form, body)
            .await
            .status,
        415
    );
    assert_eq!(
        relay
            .admin(&admin, "POST", "/api/admin/policies", body)
            .await
            .status,
        201
    );
    relay.stop().await;
}

#[tokio::test]
async fn policy_lifecycle_with_teams_names() {
    let (relay, admin) = setup().await;
    let r = relay
        .http("GET", "/api/admin/policies", &[("Cookie", &admin)], "")
        .await;
    assert_eq!(
        r.json(),
        serde_json::json!([{"Identity":"Global","Description":"Tenant default","CallingEndtoEndEncryptionEnabledType":"EnabledUserOverride"}])
    );
    let r = relay.admin(&admin, "POST", "/api/admin/policies", r#"{"Identity":"Tag:Finance","Description":"money","CallingEndtoEndEncryptionEnabledType":"Required"}"#).await;
    assert_eq!(r.status, 201);
    assert_eq!(
        relay
            .admin(
                &admin,
                "POST",
                "/api/admin/policies",
                r#"{"Identity":"Tag:Finance"}"#
            )
            .await
            .status,
        409
    );
    assert_eq!(
        relay
            .admin(
                &admin,
                "POST",
                "/api/admin/policies",
                r#"{"Identity":"Finance"}"#
            )
            .await
            .status,
        400
    );
    assert_eq!(
        relay
            .admin(
                &admin,
                "POST",
                "/api/admin/policies",
                r#"{"Identity":"Tag:Y","CallingEndtoEndEncryptionEnabledType":"Enabled"}"#
            )
            .await
            .status,
        422
    );
    let r = relay
        .admin(
            &admin,
            "PUT",
            "/api/admin/policies/Tag:Finance",
            r#"{"Description":"finance team"}"#,
        )
        .await;
    assert_eq!(r.json()["CallingEndtoEndEncryptionEnabledType"], "Required");
    assert_eq!(r.json()["Description"], "finance team");

    // Group with rank, then the effective policy and its source.
    assert_eq!(
        relay
            .admin(&admin, "POST", "/api/admin/groups", r#"{"name":"finance"}"#)
            .await
            .status,
        204
    );
    assert_eq!(
        relay
            .admin(
                &admin,
                "POST",
                "/api/admin/groups/finance/members",
                r#"{"user":"ann@a.test"}"#
            )
            .await
            .status,
        204
    );
    assert_eq!(
        relay
            .admin(
                &admin,
                "POST",
                "/api/admin/groups/finance/members",
                r#"{"user":"other@b.test"}"#
            )
            .await
            .status,
        400
    );
    assert_eq!(
        relay
            .admin(
                &admin,
                "POST",
                "/api/admin/grant",
                r#"{"PolicyName":"Tag:Finance","Group":"finance","Rank":1}"#
            )
            .await
            .status,
        204
    );
    assert_eq!(
        relay
            .admin(
                &admin,
                "POST",
                "/api/admin/grant",
                r#"{"PolicyName":"Tag:Finance","User":"ann@a.test","Global":true}"#
            )
            .await
            .status,
        400
    );
    let e = relay
        .http(
            "GET",
            "/api/admin/users/ann@a.test/effective",
            &[("Cookie", &admin)],
            "",
        )
        .await;
    assert_eq!(e.json()["policy_identity"], "Tag:Finance");
    assert_eq!(
        e.json()["source"],
        serde_json::json!({"kind":"group","group":"finance","rank":1})
    );
    let users = relay
        .http("GET", "/api/admin/users", &[("Cookie", &admin)], "")
        .await;
    assert_eq!(
        users.json().as_array().map(|a| a.len()),
        Some(2),
        "only the own tenant: {}",
        users.body
    );

    // Global is permanent; removing an assigned policy drops its assignments.
    assert_eq!(
        relay
            .admin(&admin, "DELETE", "/api/admin/policies/Global", "")
            .await
            .status,
        400
    );
    assert_eq!(
        relay
            .admin(&admin, "DELETE", "/api/admin/policies/Tag:Finance", "")
            .await
            .status,
        204
    );
    let a = relay
        .http("GET", "/api/admin/assignments", &[("Cookie", &admin)], "")
        .await;
    assert_eq!(a.json(), serde_json::json!([]));
    let e = relay
        .http(
            "GET",
            "/api/admin/users/ann@a.test/effective",
            &[("Cookie", &admin)],
            "",
        )
        .await;
    assert_eq!(e.json()["policy_identity"], "Global");

    // Another tenant's admin sees none of this.
    let other = relay.cookie_for("other@b.test").await;
    let theirs = relay
        .http("GET", "/api/admin/groups", &[("Cookie", &other)], "")
        .await;
    assert_eq!(theirs.json(), serde_json::json!([]));
    assert_eq!(
        relay
            .http(
                "GET",
                "/api/admin/users/ann@a.test/effective",
                &[("Cookie", &other)],
                ""
            )
            .await
            .status,
        404
    );

    let audit = relay
        .http("GET", "/api/admin/audit?limit=3", &[("Cookie", &admin)], "")
        .await;
    let first = &audit.json()[0];
    assert_eq!(first["action"], "policy.remove");
    assert_eq!(first["actor"], "adm@a.test");
    assert_eq!(first["old"], "Required");
    relay.stop().await;
}

#[tokio::test]
async fn external_access_round_trips() {
    let (relay, admin) = setup().await;
    let r = relay
        .http(
            "GET",
            "/api/admin/external-access",
            &[("Cookie", &admin)],
            "",
        )
        .await;
    assert_eq!(r.json(), serde_json::json!({"mode":"allow-all"}));
    let body = r#"{"mode":"allow-list","domains":["c.test"]}"#;
    assert_eq!(
        relay
            .admin(&admin, "PUT", "/api/admin/external-access", body)
            .await
            .status,
        204
    );
    let r = relay
        .http(
            "GET",
            "/api/admin/external-access",
            &[("Cookie", &admin)],
            "",
        )
        .await;
    assert_eq!(
        r.json(),
        serde_json::json!({"mode":"allow-list","domains":["c.test"]})
    );
    relay.stop().await;
}
