//! Scenario 1: both switches on. Both tabs show the lock and the same code, equal to
//! `shieldcall code` applied to the fingerprints in the two peers' SDP; remote video
//! is decoded on both sides; every feature E2EE turns off is greyed with the
//! reason; "Codes match" marks the call verified; hang-up ends it
//! on both sides.

use shieldcall_e2e::{connect_verified, hang_up, with_alice_and_bob};

#[tokio::test]
async fn both_switches_on_shows_lock_and_the_same_code() -> anyhow::Result<()> {
    with_alice_and_bob("e2ee_call", async |relay, alice, bob| {

        connect_verified(relay, alice, bob, "bob@example.test").await?;
        // Chromium reports the certificates DTLS used: the panel shows the DTLS
        // version, cipher and SRTP profile from certificate-checked statistics.
        for b in [&alice, &bob] {
            let details = b.text("dtls-details").await?;
            anyhow::ensure!(
                details.starts_with("DTLS 1.")
                    && details.contains("SRTP")
                    && details.contains("Both certificates"),
                "{}: {details:?}",
                b.name
            );
        }

        // Every feature E2EE turns off is shown greyed, with the reason.
        for b in [&alice, &bob] {
            for f in shieldcall_proto::CallFeature::ALL {
                let id = format!("feature-{}", f.as_str());
                anyhow::ensure!(
                    b.attr(&id, "disabled").await?.is_some(),
                    "{}: {id} is not disabled in an E2EE call",
                    b.name
                );
            }
            let list = b.text("call-features").await?;
            anyhow::ensure!(
                list.contains("Off in end-to-end encrypted calls"),
                "{}: {list:?}",
                b.name
            );
        }

        alice.click("e2ee-indicator").await?;
        alice.click("codes-match").await?;
        alice.wait_visible("verified").await?;
        hang_up(alice, bob).await?;
        // The panel Alice pinned open closes with the call.
        alice
            .wait_js(
                "the verification panel to close with the call",
                "const p = document.querySelector('[data-testid=e2ee-panel]'); const i = document.querySelector('[data-testid=e2ee-indicator]'); return p.hidden && i.getAttribute('aria-expanded') === 'false' && i.getAttribute('data-pinned') === 'false';",
                vec![],
            )
            .await
    })
    .await
}
