//! Scenario 6: the relay restarted during a call. Media keeps flowing (it never
//! passed through the relay), both clients say signalling is reconnecting and then
//! reconnect, resume the call, and a hang-up still reaches the other side.

use std::time::Duration;

use shieldcall_e2e::{Browser, Driver, Relay, with_artifacts};

#[tokio::test]
async fn media_survives_a_relay_restart_and_hangup_still_arrives() -> anyhow::Result<()> {
    let relay = Relay::start()?;
    relay.add_user("alice@example.test", "alice-password-1", false)?;
    relay.add_user("bob@example.test", "bob-password-1", false)?;
    let driver = Driver::start()?;
    let alice = Browser::open(&driver, "alice").await?;
    let bob = Browser::open(&driver, "bob").await?;
    let mut relay = Some(relay);

    let result = with_artifacts("relay_restart", &[&alice, &bob], || async {
        let url = relay.as_ref().map(|r| r.url.clone()).unwrap_or_default();
        alice.sign_in(&url, "alice@example.test", "alice-password-1").await?;
        bob.sign_in(&url, "bob@example.test", "bob-password-1").await?;
        alice.click("call-bob@example.test").await?;
        bob.click("incoming-accept").await?;
        for b in [&alice, &bob] {
            b.wait_testid_attr("e2ee-indicator", "data-state", "e2ee").await?;
        }
        let code = alice.text("security-code").await?;
        bob.wait_frames().await?;

        // Stop the relay (SIGTERM) and start it again on the same address and data.
        let bind = url.trim_start_matches("http://").to_string();
        let data = relay.take().map(Relay::stop).ok_or_else(|| anyhow::anyhow!("relay"))?;
        for b in [&alice, &bob] {
            b.wait_visible("relay-status").await?;
        }
        let before = bob.frames_decoded().await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let during = bob.frames_decoded().await?;
        anyhow::ensure!(during > before, "media stopped while the relay was down ({before} -> {during} frames)");
        relay = Some(Relay::start_at(data, &bind)?);

        for b in [&alice, &bob] {
            b.wait_js(
                "signalling to reconnect",
                "const e = document.querySelector('[data-testid=relay-status]'); return !!e && !!e.closest('[hidden]');",
                vec![],
            )
            .await?;
            // Still in the same verified call.
            b.wait_testid_attr("call-state", "data-state", "connected").await?;
            anyhow::ensure!(b.text("security-code").await? == code, "{}: the code changed", b.name);
        }
        // Both devices have resumed the call once the relay shows both as busy.
        alice.wait_testid_attr("contact-bob@example.test", "data-status", "busy").await?;
        bob.wait_testid_attr("contact-alice@example.test", "data-status", "busy").await?;
        let after = bob.frames_decoded().await?;
        anyhow::ensure!(after > during, "media stopped after the restart");

        alice.click("hangup").await?;
        bob.wait_testid_attr("call-state", "data-state", "ended").await?;
        let notice = bob.text("notice").await?;
        anyhow::ensure!(notice.contains("alice@example.test ended the call"), "bob was told: {notice:?}");
        Ok(())
    })
    .await;
    alice.close().await;
    bob.close().await;
    result
}
