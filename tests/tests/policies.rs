//! Scenario 3: policies. `Disabled` locks the switch off and calls are standard; a
//! `Required` user calling someone who cannot do E2EE is refused with the reason on
//! both sides; a policy changed on `/admin` in a third tab changes the open user's
//! setting live.

use shieldcall_e2e::{Browser, Driver, Relay, with_artifacts};

#[tokio::test]
async fn policy_outcomes_in_the_browser() -> anyhow::Result<()> {
    let relay = Relay::start()?;
    relay.add_user("admin@example.test", "admin-password-1", true)?;
    relay.add_user("alice@example.test", "alice-password-1", false)?;
    relay.add_user("carol@example.test", "carol-password-1", false)?;
    relay.cli(
        &[
            "policy",
            "new",
            "--identity",
            "Tag:NoE2ee",
            "--calling-e2ee",
            "Disabled",
        ],
        None,
    )?;
    relay.cli(
        &[
            "policy",
            "new",
            "--identity",
            "Tag:MustE2ee",
            "--calling-e2ee",
            "Required",
        ],
        None,
    )?;
    relay.cli(
        &[
            "policy",
            "grant",
            "--policy-name",
            "Tag:NoE2ee",
            "--user",
            "carol@example.test",
        ],
        None,
    )?;
    relay.cli(
        &[
            "policy",
            "grant",
            "--policy-name",
            "Tag:MustE2ee",
            "--user",
            "alice@example.test",
        ],
        None,
    )?;

    let driver = Driver::start()?;
    let alice = Browser::open(&driver, "alice").await?;
    let carol = Browser::open(&driver, "carol").await?;
    let admin = Browser::open(&driver, "admin").await?;

    let result = with_artifacts("policies", &[&alice, &carol, &admin], || async {
        alice.sign_in(&relay.url, "alice@example.test", "alice-password-1").await?;
        carol.sign_in(&relay.url, "carol@example.test", "carol-password-1").await?;

        // Disabled: carol's switch is off and locked, and says which policy decides.
        carol.click("open-settings").await?;
        carol.wait_testid_attr("settings-e2ee-toggle", "aria-checked", "false").await?;
        assert_eq!(carol.attr("settings-e2ee-toggle", "data-locked").await?.as_deref(), Some("true"));
        assert!(carol.text("settings-policy").await?.contains("Tag:NoE2ee"));
        // Required: alice's switch is on and locked.
        alice.click("open-settings").await?;
        alice.wait_testid_attr("settings-e2ee-toggle", "aria-checked", "true").await?;
        assert_eq!(alice.attr("settings-e2ee-toggle", "data-locked").await?.as_deref(), Some("true"));

        // Required calling Disabled: refused, with the reason on both sides.
        alice.click("call-carol@example.test").await?;
        alice.wait_testid_attr("call-state", "data-state", "ended").await?;
        let a = alice.text("notice").await?;
        assert!(a.contains("requires end-to-end encrypted calls") && a.contains("carol@example.test"), "{a}");
        carol.wait_visible("notice").await?;
        let c = carol.text("notice").await?;
        assert!(c.contains("alice@example.test may only take end-to-end encrypted calls"), "{c}");

        // The admin changes carol's policy to EnabledUserOverride on /admin; carol's
        // open tab follows at once.
        admin.sign_in(&relay.url, "admin@example.test", "admin-password-1").await?;
        admin.goto(&format!("{}/admin", relay.url)).await?;
        admin.wait_visible("policy-row-Tag:NoE2ee").await?;
        // The admin page is its own bundle, fetched on /admin only.
        assert!(fetched(&admin, "/pkg/shieldcall_admin_bg.wasm").await?);
        assert!(fetched(&alice, "/pkg/shieldcall_web_bg.wasm").await?);
        assert!(!fetched(&alice, "shieldcall_admin").await?, "the call page fetched the admin bundle");
        admin
            .client
            .execute(
                "const s = document.querySelector('[data-testid=\"policy-type-Tag:NoE2ee\"]'); s.value = 'EnabledUserOverride';",
                vec![],
            )
            .await?;
        admin.click("policy-save-Tag:NoE2ee").await?;
        carol.wait_testid_attr("settings-e2ee-toggle", "data-locked", "false").await?;

        // The calling policy: recording off; the page shows it saved, the audit
        // log has it, and the relay answers so (the API is the page's).
        admin.click("AllowCloudRecordingForCalls").await?;
        admin.click("calling-save").await?;
        admin
            .wait_js(
                "the calling policy saved",
                "const r = document.querySelector('[data-testid=\"AllowCloudRecordingForCalls\"]'); \
                 const a = document.querySelector('[data-testid=\"audit\"]'); \
                 return !!r && !r.checked && !!a && a.textContent.includes('calling-policy');",
                vec![],
            )
            .await?;
        let saved = admin
            .client
            .execute_async(
                "const done = arguments[0]; fetch('/api/admin/calling-policy').then(r => r.json()).then(done);",
                vec![],
            )
            .await?;
        assert_eq!(
            saved,
            serde_json::json!({"AllowCloudRecordingForCalls": false, "AllowTranscriptionForCalling": true, "AllowVoicemail": true})
        );
        carol.wait_testid_attr("settings-e2ee-toggle", "aria-checked", "true").await?;

        // Now the call is end-to-end encrypted.
        carol.click("notice-dismiss").await?;
        alice.click("call-close").await?;
        alice.click("call-carol@example.test").await?;
        carol.click("incoming-accept").await?;
        for b in [&alice, &carol] {
            b.wait_testid_attr("e2ee-indicator", "data-state", "e2ee").await?;
        }
        assert_eq!(alice.text("security-code").await?, carol.text("security-code").await?);
        alice.click("hangup").await?;
        carol.wait_testid_attr("call-state", "data-state", "ended").await?;
        Ok(())
    })
    .await;
    for b in [alice, carol, admin] {
        b.close().await;
    }
    result
}

/// Whether the page fetched a file whose URL contains `name`.
async fn fetched(b: &Browser, name: &str) -> anyhow::Result<bool> {
    let v = b
        .client
        .execute(
            "return performance.getEntriesByType('resource').some(e => e.name.includes(arguments[0]));",
            vec![serde_json::json!(name)],
        )
        .await?;
    v.as_bool()
        .ok_or_else(|| anyhow::anyhow!("performance entries: {v}"))
}
