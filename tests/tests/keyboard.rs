//! A call with the keyboard alone: when it rings, focus is on "Accept"; once
//! the call screen shows, on "Hang up" (for the caller too); when the call
//! ends, on "Close". Enter does each step, as it would for someone who does not
//! use a mouse or who hears the page through a screen reader.

use shieldcall_e2e::with_alice_and_bob;

#[tokio::test]
async fn a_call_answered_hung_up_and_closed_with_the_keyboard() -> anyhow::Result<()> {
    with_alice_and_bob("keyboard", async |_relay, alice, bob| {
        alice.click("call-bob@example.test").await?;
        // The caller's call screen shows: focus on "Hang up".
        alice.wait_focus("hangup").await?;
        // It rings: focus on "Accept"; Enter answers.
        bob.wait_focus("incoming-accept").await?;
        bob.press_enter().await?;
        for b in [&alice, &bob] {
            b.wait_testid_attr("call-state", "data-state", "connected")
                .await?;
        }
        bob.wait_focus("hangup").await?;
        // Enter on "Hang up" ends the call for both; focus moves to "Close".
        bob.press_enter().await?;
        for b in [&alice, &bob] {
            b.wait_testid_attr("call-state", "data-state", "ended")
                .await?;
            b.wait_focus("call-close").await?;
        }
        // Enter on "Close" puts the call screen away.
        bob.press_enter().await?;
        bob.wait_js(
            "the call screen closed",
            "const e = document.querySelector('[data-testid=\"call\"]'); return !!e && e.hidden;",
            vec![],
        )
        .await?;
        Ok(())
    })
    .await
}
