//! Park and pickup: in a standard call Alice–Bob, Bob parks the call from the
//! features menu and is told the code; Alice waits "on park"; Carol types the
//! code and picks it up. Alice's browser connects afresh to Carol's: equal new
//! codes on both, media both ways; Bob's call is over.

use shieldcall_e2e::{Browser, Driver, Relay, connected_with_code, is_code, with_artifacts};

#[tokio::test]
async fn a_parked_call_is_picked_up_with_its_code() -> anyhow::Result<()> {
    let relay = Relay::start()?;
    relay.add_user("alice@example.test", "alice-password-1", false)?;
    relay.add_user("bob@example.test", "bob-password-1", false)?;
    relay.add_user("carol@example.test", "carol-password-1", false)?;
    let driver = Driver::start()?;
    let alice = Browser::open(&driver, "alice").await?;
    let bob = Browser::open(&driver, "bob").await?;
    let carol = Browser::open(&driver, "carol").await?;

    let result = with_artifacts("park", &[&alice, &bob, &carol], || async {
        alice
            .sign_in(&relay.url, "alice@example.test", "alice-password-1")
            .await?;
        bob.sign_in(&relay.url, "bob@example.test", "bob-password-1")
            .await?;
        carol
            .sign_in(&relay.url, "carol@example.test", "carol-password-1")
            .await?;
        // Alice turns end-to-end encryption off: her calls are standard.
        alice.turn_e2ee_off().await?;

        alice.click("call-bob@example.test").await?;
        bob.click("incoming-accept").await?;
        for b in [&alice, &bob] {
            b.wait_testid_attr("call-state", "data-state", "connected")
                .await?;
            b.wait_frames().await?;
        }
        let first = alice.text("security-code").await?;

        // Bob parks the call and is told the code.
        bob.click("call-more").await?;
        bob.click("feature-park").await?;
        bob.wait_testid_attr("call-state", "data-state", "ended")
            .await?;
        let notice = bob.text("notice").await?;
        let code: String = notice
            .split("with code ")
            .nth(1)
            .unwrap_or_default()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        anyhow::ensure!(code.len() == 2, "bob's notice: {notice:?}");
        // Alice waits on park, with the code.
        alice
            .wait_testid_attr("call-state", "data-state", "parked")
            .await?;
        let line = alice.text("hold-status").await?;
        anyhow::ensure!(line.contains(&code), "alice's park line: {line:?}");

        // Carol picks it up.
        carol.fill("pickup-code", &code).await?;
        carol.click("pickup-submit").await?;
        let mut codes = Vec::new();
        for b in [&alice, &carol] {
            codes.push(connected_with_code(b).await?);
        }
        anyhow::ensure!(
            is_code(&codes[0]) && codes[0] == codes[1],
            "codes: {codes:?}"
        );
        anyhow::ensure!(codes[0] != first, "the new leg kept the old code");
        anyhow::ensure!(carol.text("call-peer").await? == "alice@example.test");
        anyhow::ensure!(alice.text("call-peer").await? == "carol@example.test");
        for b in [&alice, &carol] {
            b.wait_media_flowing().await?;
        }
        carol.click("hangup").await?;
        alice
            .wait_testid_attr("call-state", "data-state", "ended")
            .await?;
        Ok(())
    })
    .await;
    for b in [alice, bob, carol] {
        b.close().await;
    }
    result
}
