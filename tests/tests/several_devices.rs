//! Scenario 5: the callee signed in on two devices. Both ring; one accepts; the
//! other stops ringing, and shows the call goes on elsewhere without "Move here"
//! (an E2EE call does not move) until it ends.

use shieldcall_e2e::{Browser, Driver, Relay, with_artifacts};

#[tokio::test]
async fn both_devices_ring_and_one_answers() -> anyhow::Result<()> {
    let relay = Relay::start()?;
    relay.add_user("alice@example.test", "alice-password-1", false)?;
    relay.add_user("bob@example.test", "bob-password-1", false)?;
    let driver = Driver::start()?;
    let alice = Browser::open(&driver, "alice").await?;
    let bob_laptop = Browser::open(&driver, "bob-laptop").await?;
    let bob_phone = Browser::open(&driver, "bob-phone").await?;

    let result = with_artifacts("several_devices", &[&alice, &bob_laptop, &bob_phone], || async {
        alice.sign_in(&relay.url, "alice@example.test", "alice-password-1").await?;
        bob_laptop.sign_in(&relay.url, "bob@example.test", "bob-password-1").await?;
        bob_phone.sign_in(&relay.url, "bob@example.test", "bob-password-1").await?;

        alice.click("call-bob@example.test").await?;
        bob_laptop.wait_visible("incoming-accept").await?;
        bob_phone.wait_visible("incoming-accept").await?;
        bob_phone.click("incoming-accept").await?;

        // The laptop stops ringing and says where the call went.
        bob_laptop
            .wait_js(
                "the laptop to stop ringing",
                "const e = document.querySelector('[data-testid=incoming-accept]'); return !!e && !!e.closest('[hidden]');",
                vec![],
            )
            .await?;
        assert!(bob_laptop.text("notice").await?.contains("another of your devices"));
        for b in [&alice, &bob_phone] {
            b.wait_testid_attr("e2ee-indicator", "data-state", "e2ee").await?;
        }
        assert_eq!(alice.text("security-code").await?, bob_phone.text("security-code").await?);
        // The laptop knows Bob is in a call on another device, but an E2EE call
        // stays where it was answered: "Move here" is off, with the reason.
        bob_laptop.wait_visible("elsewhere").await?;
        anyhow::ensure!(bob_laptop.text("elsewhere-text").await?.contains("alice@example.test"));
        anyhow::ensure!(bob_laptop.attr("move-here", "disabled").await?.is_some());
        anyhow::ensure!(bob_laptop.visible("move-here-why").await?);
        bob_phone.click("hangup").await?;
        alice.wait_testid_attr("call-state", "data-state", "ended").await?;
        // The call is over: the laptop's bar goes.
        bob_laptop
            .wait_js(
                "the laptop's elsewhere bar to go",
                "const e = document.querySelector('[data-testid=elsewhere]'); return !!e && e.hidden;",
                vec![],
            )
            .await?;
        Ok(())
    })
    .await;
    for b in [alice, bob_laptop, bob_phone] {
        b.close().await;
    }
    result
}
