//! Scenario 2: one switch off. Both sides show the plain shield, the call
//! connects with media, and both panels still show the same security code (every
//! call commits and computes it, so a relay that downgrades the mode cannot keep
//! people from verifying); Alice, whose switch is on, is told the call is standard.
//! Bob puts the call on hold: both see it and RTP stops both ways; he resumes and
//! media flows again.

use shieldcall_e2e::{connected_with_code, is_code, with_alice_and_bob};

#[tokio::test]
async fn one_switch_off_gives_a_standard_call_with_a_code_to_compare() -> anyhow::Result<()> {
    with_alice_and_bob("standard_call", async |_relay, alice, bob| {
        // Bob turns end-to-end encryption off in Settings → Privacy.
        bob.turn_e2ee_off().await?;

        alice.click("call-bob@example.test").await?;
        bob.click("incoming-accept").await?;
        let mut codes = Vec::new();
        for b in [&alice, &bob] {
            b.wait_testid_attr("e2ee-indicator", "data-state", "standard")
                .await?;
            let code = connected_with_code(b).await?;
            anyhow::ensure!(is_code(&code), "{}: code {code:?}", b.name);
            codes.push(code);
        }
        anyhow::ensure!(codes[0] == codes[1], "the codes differ: {codes:?}");
        // Alice's switch is on: her panel says the server made the call standard.
        let warning = alice.text("downgrade-warning").await?;
        anyhow::ensure!(
            warning.contains("set this call up as standard"),
            "alice's downgrade warning: {warning:?}"
        );
        // Bob turned his own switch off: nothing to warn him about.
        anyhow::ensure!(bob.text("downgrade-warning").await?.is_empty());
        assert!(bob.wait_frames().await? > 0.0);
        // Features that E2EE turns off are available here.
        assert_eq!(alice.attr("feature-recording", "disabled").await?, None);

        // Hold: Bob puts the call on hold from the features menu. Both see it,
        // and media stops both ways; the code stays.
        alice.wait_media_flowing().await?;
        bob.click("call-more").await?;
        bob.click("feature-hold").await?;
        for (b, who) in [
            (&bob, "you put the call on hold"),
            (&alice, "the other person"),
        ] {
            b.wait_visible("hold-status").await?;
            let line = b.text("hold-status").await?;
            anyhow::ensure!(line.contains(who), "{}: {line:?}", b.name);
        }
        bob.wait_testid_attr("feature-hold", "data-held", "true")
            .await?;
        for b in [&alice, &bob] {
            b.wait_media_still().await?;
            anyhow::ensure!(b.text("security-code").await? == codes[0]);
        }
        // Bob resumes: media flows again both ways and the hold line goes.
        bob.click("feature-hold").await?;
        for b in [&alice, &bob] {
            b.wait_media_flowing().await?;
            anyhow::ensure!(
                !b.visible("hold-status").await?,
                "{}: still on hold",
                b.name
            );
        }

        bob.click("hangup").await?;
        alice
            .wait_testid_attr("call-state", "data-state", "ended")
            .await?;
        Ok(())
    })
    .await
}
