//! Blind transfer: in a standard call Alice–Bob, Bob transfers Alice to Carol from
//! the features menu. Bob's call ends; Alice's browser calls Carol by itself and
//! Carol's ringing screen says Bob transferred it; once Carol accepts, media
//! flows Alice↔Carol with a new code. Then Carol transfers Alice to Bob, who
//! declines: Alice's browser rings Carol back.

use shieldcall_e2e::{Browser, Driver, Relay, connected_with_code, is_code, with_artifacts};

async fn transfer(from: &Browser, to: &str) -> anyhow::Result<()> {
    from.click("call-more").await?;
    from.click("feature-transfer").await?;
    from.fill("transfer-to", to).await?;
    from.click("transfer-submit").await
}

#[tokio::test]
async fn a_blind_transfer_connects_the_caller_to_the_target() -> anyhow::Result<()> {
    let relay = Relay::start()?;
    relay.add_user("alice@example.test", "alice-password-1", false)?;
    relay.add_user("bob@example.test", "bob-password-1", false)?;
    relay.add_user("carol@example.test", "carol-password-1", false)?;
    let driver = Driver::start()?;
    let alice = Browser::open(&driver, "alice").await?;
    let bob = Browser::open(&driver, "bob").await?;
    let carol = Browser::open(&driver, "carol").await?;

    let result = with_artifacts("transfer", &[&alice, &bob, &carol], || async {
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
        let first = connected_with_code(&alice).await?;
        connected_with_code(&bob).await?;

        // Bob transfers Alice to Carol.
        transfer(&bob, "carol@example.test").await?;
        bob.wait_testid_attr("call-state", "data-state", "ended")
            .await?;
        anyhow::ensure!(
            bob.text("notice")
                .await?
                .contains("You transferred alice@example.test")
        );
        carol.wait_visible("incoming-accept").await?;
        let ring = carol.text("incoming-text").await?;
        anyhow::ensure!(
            ring.contains("alice@example.test") && ring.contains("transferred by bob@example.test"),
            "carol's ringing screen: {ring:?}"
        );
        carol.click("incoming-accept").await?;
        let a = connected_with_code(&alice).await?;
        let c = connected_with_code(&carol).await?;
        anyhow::ensure!(is_code(&a) && a == c, "codes {a:?} {c:?}");
        anyhow::ensure!(a != first, "the new call kept the old code");
        for b in [&alice, &carol] {
            b.wait_media_flowing().await?;
        }

        // Carol transfers Alice to Bob, who declines: Alice's browser calls
        // Carol back.
        transfer(&carol, "bob@example.test").await?;
        carol
            .wait_testid_attr("call-state", "data-state", "ended")
            .await?;
        bob.wait_visible("incoming-decline").await?;
        bob.click("incoming-decline").await?;
        carol.wait_visible("incoming-accept").await?;
        let ring = carol.text("incoming-text").await?;
        anyhow::ensure!(ring.contains("alice@example.test"), "{ring:?}");
        let notice = alice.text("notice").await?;
        anyhow::ensure!(
            notice.contains("calling carol@example.test back"),
            "{notice:?}"
        );
        carol.click("incoming-accept").await?;
        connected_with_code(&alice).await?;
        connected_with_code(&carol).await?;
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
