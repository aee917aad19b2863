//! The call history in the browser: a call Bob did not answer is a missed call on
//! his screen (and "not answered" on Alice's), "Call back" calls Alice, the
//! answered call then heads both lists, and the list is the relay's: it is there
//! again after a reload. And how a call announces itself: a ring tone while it
//! rings, a notification when the tab is in the background, the keyboard on
//! "Accept" (Enter answers), both gone once it is answered or given up.

use serde_json::{Value, json};
use shieldcall_e2e::{Browser, hang_up, with_alice_and_bob};

const ALICE: &str = "alice@example.test";
const BOB: &str = "bob@example.test";

/// The history's entries as `direction outcome peer`, newest first.
const ENTRIES: &str = "return [...document.querySelectorAll('[data-testid=history-item]')]\
  .map(e => e.dataset.direction + ' ' + e.dataset.outcome + ' ' + e.dataset.peer);";

async fn entries(b: &Browser) -> anyhow::Result<Vec<String>> {
    let v = b.client.execute(ENTRIES, vec![]).await?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default())
}

/// Waits until the newest entry is `want`.
async fn wait_newest(b: &Browser, want: &str) -> anyhow::Result<()> {
    let script = format!(
        "{} return l[0] === arguments[0];",
        ENTRIES.replacen("return ", "const l = ", 1)
    );
    b.wait_js(
        &format!("{}'s newest history entry to be {want}", b.name),
        &script,
        vec![json!(want)],
    )
    .await
}

#[tokio::test]
async fn missed_call_then_call_back() -> anyhow::Result<()> {
    with_alice_and_bob("history", async |relay, alice, bob| {
        anyhow::ensure!(entries(bob).await?.is_empty());

        // Alice gives up while it rings: missed for Bob.
        alice.click(&format!("call-{BOB}")).await?;
        bob.wait_visible("incoming-accept").await?;
        hang_up(alice, bob).await?;
        wait_newest(bob, &format!("incoming missed {ALICE}")).await?;
        wait_newest(alice, &format!("outgoing not-answered {BOB}")).await?;
        let heading = bob.text("history-heading").await?;
        anyhow::ensure!(heading == "Recent calls (1 missed)", "{heading}");
        let line = bob
            .client
            .execute(
                "return document.querySelector('[data-testid=history-item] .what').textContent;",
                vec![],
            )
            .await?;
        anyhow::ensure!(
            line.as_str() == Some(&format!("Missed call from {ALICE}")),
            "{line}"
        );

        // Bob calls back from the list; Alice answers; they talk; Bob hangs up.
        bob.client
            .execute(
                "document.querySelector('[data-testid=history-item] button[data-call]').click();",
                vec![],
            )
            .await?;
        alice.wait_visible("incoming-accept").await?;
        alice.click("incoming-accept").await?;
        for b in [&alice, &bob] {
            b.wait_testid_attr("e2ee-indicator", "data-state", "e2ee")
                .await?;
        }
        hang_up(bob, alice).await?;
        wait_newest(bob, &format!("outgoing answered {ALICE}")).await?;
        wait_newest(alice, &format!("incoming answered {BOB}")).await?;

        // The list is the relay's: a reload shows the same.
        bob.goto(&relay.url).await?;
        wait_newest(bob, &format!("outgoing answered {ALICE}")).await?;
        let all = entries(bob).await?;
        anyhow::ensure!(
            all == [
                format!("outgoing answered {ALICE}"),
                format!("incoming missed {ALICE}")
            ],
            "{all:?}"
        );
        Ok(())
    })
    .await
}

/// The incoming dialog's alert hooks: `data-ring` (the tone's audio state) and
/// `data-notified`.
async fn alert_hooks(b: &Browser) -> anyhow::Result<(Option<String>, Option<String>)> {
    Ok((
        b.attr("incoming", "data-ring").await?,
        b.attr("incoming", "data-notified").await?,
    ))
}

#[tokio::test]
async fn a_call_rings_and_notifies_a_background_tab() -> anyhow::Result<()> {
    with_alice_and_bob("alert", async |_relay, alice, bob| {
        // Settings says notifications are on (the browser allows them here).
        bob.click("open-settings").await?;
        let line = bob.text("settings-notify-state").await?;
        anyhow::ensure!(line.contains("announced"), "{line}");
        anyhow::ensure!(!bob.visible("settings-notify").await?);

        // Foreground: it rings, no notification.
        alice.click(&format!("call-{BOB}")).await?;
        bob.wait_visible("incoming-accept").await?;
        let (ring, notified) = alert_hooks(bob).await?;
        anyhow::ensure!(
            matches!(ring.as_deref(), Some("running" | "suspended")),
            "no ring tone: {ring:?}"
        );
        anyhow::ensure!(notified.as_deref() == Some("false"), "{notified:?}");
        // The keyboard lands on "Accept".
        let focused = bob
            .client
            .execute(
                "return document.activeElement && document.activeElement.dataset.testid;",
                vec![],
            )
            .await?;
        anyhow::ensure!(
            focused.as_str() == Some("incoming-accept"),
            "focus on {focused}"
        );
        hang_up(alice, bob).await?;
        anyhow::ensure!(
            alert_hooks(bob).await? == (None, None),
            "still ringing after the cancel"
        );

        // Background: Bob looks at another tab; the call notifies him.
        let shieldcall = bob.client.window().await?;
        let other = bob.client.new_window(true).await?;
        bob.client.switch_to_window(other.handle).await?;
        bob.client.goto("about:blank").await?;
        alice.click(&format!("call-{BOB}")).await?;
        alice
            .wait_testid_attr("call-state", "data-state", "ringing")
            .await?;
        bob.client.switch_to_window(shieldcall).await?;
        bob.wait_visible("incoming-accept").await?;
        let (ring, notified) = alert_hooks(bob).await?;
        anyhow::ensure!(ring.is_some(), "no ring tone");
        anyhow::ensure!(
            notified.as_deref() == Some("true"),
            "no notification: {notified:?}"
        );
        // Answered with the keyboard: Enter on the focused "Accept".
        bob.client
            .active_element()
            .await?
            .send_keys("\u{E007}")
            .await?;
        for b in [&alice, &bob] {
            b.wait_testid_attr("e2ee-indicator", "data-state", "e2ee")
                .await?;
        }
        anyhow::ensure!(
            alert_hooks(bob).await? == (None, None),
            "still ringing after the accept"
        );
        hang_up(alice, bob).await?;
        Ok(())
    })
    .await
}
