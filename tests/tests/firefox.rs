//! Firefox as a second real browser: an E2EE call Firefox↔Firefox and
//! Chromium↔Firefox both ways, with the same code on both screens, equal to
//! `shieldcall code` over their SDP, and video decoded both ways.
//!
//! Firefox reports no certificate statistics; the panel must say what was and
//! was not checked (the peer's certificate from `getRemoteCertificates()`).

use anyhow::{Result, ensure};
use shieldcall_e2e::{Browser, Driver, Relay, connect_verified, hang_up, with_artifacts};

const ALICE: &str = "alice@example.test";
const BOB: &str = "bob@example.test";

fn relay() -> Result<Relay> {
    let relay = Relay::start()?;
    relay.add_user(ALICE, "alice-password-1", false)?;
    relay.add_user(BOB, "bob-password-1", false)?;
    Ok(relay)
}

/// The Firefox panel names the check it really did: Firefox has no certificate
/// statistics, so the panel must not claim both certificates were read; it reads
/// the peer's from the DTLS transport where it can, or says nothing was read.
async fn firefox_panel_is_honest(b: &Browser) -> Result<()> {
    let details = b.text("dtls-details").await?;
    ensure!(
        !details.contains("Both certificates")
            && (details.contains("other side's certificate was read from the DTLS connection")
                || details.contains("does not show which certificates DTLS used")),
        "{}: {details:?}",
        b.name
    );
    Ok(())
}

#[tokio::test]
async fn firefox_calls_firefox_end_to_end_encrypted() -> Result<()> {
    let relay = relay()?;
    let alice = Browser::open_firefox("alice-firefox").await?;
    let bob = Browser::open_firefox("bob-firefox").await?;
    let result = with_artifacts("firefox_firefox", &[&alice, &bob], || async {
        alice.sign_in(&relay.url, ALICE, "alice-password-1").await?;
        bob.sign_in(&relay.url, BOB, "bob-password-1").await?;
        connect_verified(&relay, &alice, &bob, BOB).await?;
        firefox_panel_is_honest(&alice).await?;
        firefox_panel_is_honest(&bob).await?;
        hang_up(&bob, &alice).await
    })
    .await;
    alice.close().await;
    bob.close().await;
    result
}

#[tokio::test]
async fn chromium_and_firefox_call_each_other_end_to_end_encrypted() -> Result<()> {
    let relay = relay()?;
    let driver = Driver::start()?;
    let alice = Browser::open(&driver, "alice-chromium").await?;
    let bob = Browser::open_firefox("bob-firefox").await?;
    let result = with_artifacts("chromium_firefox", &[&alice, &bob], || async {
        alice.sign_in(&relay.url, ALICE, "alice-password-1").await?;
        bob.sign_in(&relay.url, BOB, "bob-password-1").await?;
        let first = connect_verified(&relay, &alice, &bob, BOB).await?;
        firefox_panel_is_honest(&bob).await?;
        hang_up(&alice, &bob).await?;
        // The other way round: Firefox calls Chromium, with fresh certificates.
        alice.click("call-close").await?;
        bob.click("call-close").await?;
        let second = connect_verified(&relay, &bob, &alice, ALICE).await?;
        hang_up(&bob, &alice).await?;
        ensure!(
            first != second,
            "a new call has new certificates and a new code"
        );
        Ok(())
    })
    .await;
    alice.close().await;
    bob.close().await;
    result
}
