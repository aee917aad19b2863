//! Scenario 2: one switch off. Both sides show the plain shield and no code, and
//! the call still connects with media.

use shieldcall_e2e::{Browser, Driver, Relay, with_artifacts};

#[tokio::test]
async fn one_switch_off_gives_a_standard_call_without_code() -> anyhow::Result<()> {
    let relay = Relay::start()?;
    relay.add_user("alice@example.test", "alice-password-1", false)?;
    relay.add_user("bob@example.test", "bob-password-1", false)?;
    let driver = Driver::start()?;
    let alice = Browser::open(&driver, "alice").await?;
    let bob = Browser::open(&driver, "bob").await?;

    let result = with_artifacts("standard_call", &[&alice, &bob], || async {
        alice
            .sign_in(&relay.url, "alice@example.test", "alice-password-1")
            .await?;
        bob.sign_in(&relay.url, "bob@example.test", "bob-password-1")
            .await?;

        // Bob turns end-to-end encryption off in Settings → Privacy.
        bob.click("open-settings").await?;
        bob.wait_testid_attr("settings-e2ee-toggle", "aria-checked", "true")
            .await?;
        bob.click("settings-e2ee-toggle").await?;
        bob.wait_testid_attr("settings-e2ee-toggle", "aria-checked", "false")
            .await?;

        alice.click("call-bob@example.test").await?;
        bob.click("incoming-accept").await?;
        for b in [&alice, &bob] {
            b.wait_testid_attr("e2ee-indicator", "data-state", "standard")
                .await?;
            b.wait_testid_attr("call-state", "data-state", "connected")
                .await?;
            assert_eq!(
                b.text("security-code").await?,
                "",
                "{}: no code in a standard call",
                b.name
            );
            assert!(!b.visible("security-code").await?);
            assert!(!b.visible("codes-match").await?);
        }
        assert!(bob.wait_frames().await? > 0.0);
        // Features that E2EE turns off are available here.
        assert_eq!(alice.attr("feature-recording", "disabled").await?, None);

        bob.click("hangup").await?;
        alice
            .wait_testid_attr("call-state", "data-state", "ended")
            .await?;
        Ok(())
    })
    .await;
    alice.close().await;
    bob.close().await;
    result
}
