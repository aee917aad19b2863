//! Scenario 1: both switches on. Both tabs show the lock and the same code, equal to
//! `shieldcall code` applied to the fingerprints in the two peers' SDP; remote video
//! is decoded on both sides; "Codes match" marks the call verified; hang-up ends it
//! on both sides.

use shieldcall_e2e::{Browser, Driver, Relay, TempDir, cli, is_code, with_artifacts};

#[tokio::test]
async fn both_switches_on_shows_lock_and_the_same_code() -> anyhow::Result<()> {
    let relay = Relay::start()?;
    relay.add_user("alice@example.test", "alice-password-1", false)?;
    relay.add_user("bob@example.test", "bob-password-1", false)?;
    let driver = Driver::start()?;
    let alice = Browser::open(&driver, "alice").await?;
    let bob = Browser::open(&driver, "bob").await?;

    let result = with_artifacts("e2ee_call", &[&alice, &bob], || async {
        alice
            .sign_in(&relay.url, "alice@example.test", "alice-password-1")
            .await?;
        bob.sign_in(&relay.url, "bob@example.test", "bob-password-1")
            .await?;

        alice.click("call-bob@example.test").await?;
        bob.click("incoming-accept").await?;
        for b in [&alice, &bob] {
            b.wait_testid_attr("e2ee-indicator", "data-state", "e2ee")
                .await?;
        }
        let code_a = alice.text("security-code").await?;
        let code_b = bob.text("security-code").await?;
        assert!(is_code(&code_a), "alice shows {code_a:?}");
        assert_eq!(code_a, code_b, "both sides show the same code");
        // Chromium reports the certificates DTLS used: the panel shows the DTLS
        // version, cipher and SRTP profile from certificate-checked statistics.
        for b in [&alice, &bob] {
            let details = b.text("dtls-details").await?;
            assert!(
                details.starts_with("DTLS 1.") && details.contains("SRTP"),
                "{}: {details:?}",
                b.name
            );
        }

        // The code equals `shieldcall code --sdp` over the SDP the peers exchanged.
        let (a_local, a_remote) = alice.sdp().await?;
        let (b_local, b_remote) = bob.sdp().await?;
        assert_eq!(a_local, b_remote, "the relay forwarded the offer unaltered");
        assert_eq!(
            b_local, a_remote,
            "the relay forwarded the answer unaltered"
        );
        let dir = TempDir::new("sdp")?;
        let (fa, fb) = (dir.0.join("alice.sdp"), dir.0.join("bob.sdp"));
        std::fs::write(&fa, &a_local)?;
        std::fs::write(&fb, &b_local)?;
        let cli_code = cli(
            &relay.data.0,
            &[
                "code",
                "--sdp",
                &fa.to_string_lossy(),
                &fb.to_string_lossy(),
            ],
            None,
        )?;
        assert_eq!(cli_code.trim(), code_a);

        assert!(alice.wait_frames().await? > 0.0);
        assert!(bob.wait_frames().await? > 0.0);

        alice.click("e2ee-indicator").await?;
        alice.click("codes-match").await?;
        alice.wait_visible("verified").await?;

        alice.click("hangup").await?;
        for b in [&alice, &bob] {
            b.wait_testid_attr("call-state", "data-state", "ended")
                .await?;
        }
        Ok(())
    })
    .await;
    alice.close().await;
    bob.close().await;
    result
}
