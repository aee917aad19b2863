//! Consult transfer in three browsers: in a standard call Alice–Bob, Bob picks
//! "Consult first" for Carol: his browser holds Alice and calls Carol. Carol
//! declines the first time, and Bob is back with Alice (still held; he resumes
//! and media flows again on the same connection). The second time Carol accepts,
//! Bob and Carol talk, and Bob's "Transfer" joins Alice and Carol: Bob's calls
//! end, Carol's browser joins Alice's call without ringing, and the two connect
//! afresh with a new code they both see.

use shieldcall_e2e::{Browser, Driver, Relay, connected_with_code, is_code, with_artifacts};

/// Bob asks to consult `to` from the transfer form ("Consult first").
async fn consult(bob: &Browser, to: &str) -> anyhow::Result<()> {
    bob.click("call-more").await?;
    bob.click("feature-transfer").await?;
    bob.fill("transfer-to", to).await?;
    bob.click("transfer-consult").await
}

#[tokio::test]
async fn a_consult_transfer_joins_the_held_caller_with_the_one_consulted() -> anyhow::Result<()> {
    let relay = Relay::start()?;
    relay.add_user("alice@example.test", "alice-password-1", false)?;
    relay.add_user("bob@example.test", "bob-password-1", false)?;
    relay.add_user("carol@example.test", "carol-password-1", false)?;
    let driver = Driver::start()?;
    let alice = Browser::open(&driver, "alice").await?;
    let bob = Browser::open(&driver, "bob").await?;
    let carol = Browser::open(&driver, "carol").await?;

    let result = with_artifacts("consult_transfer", &[&alice, &bob, &carol], || async {
        alice
            .sign_in(&relay.url, "alice@example.test", "alice-password-1")
            .await?;
        bob.sign_in(&relay.url, "bob@example.test", "bob-password-1")
            .await?;
        carol
            .sign_in(&relay.url, "carol@example.test", "carol-password-1")
            .await?;
        // Alice and Carol turn end-to-end encryption off: every pair is standard.
        alice.turn_e2ee_off().await?;
        carol.turn_e2ee_off().await?;

        alice.click("call-bob@example.test").await?;
        bob.click("incoming-accept").await?;
        let first = connected_with_code(&alice).await?;
        connected_with_code(&bob).await?;

        // A first consultation, declined: Bob is back with Alice, still held.
        consult(&bob, "carol@example.test").await?;
        alice.wait_visible("hold-status").await?;
        alice.wait_media_still().await?;
        carol.wait_visible("incoming-decline").await?;
        bob.wait_visible("held-call").await?;
        carol.click("incoming-decline").await?;
        bob.wait_testid_attr("call-state", "data-state", "connected")
            .await?;
        anyhow::ensure!(
            bob.text("call-peer").await?.contains("alice@example.test"),
            "Bob's screen is back on Alice"
        );
        anyhow::ensure!(!bob.visible("held-call").await?);
        anyhow::ensure!(bob.text("security-code").await? == first);
        bob.click("call-more").await?;
        bob.click("feature-hold").await?; // "Resume"
        alice.wait_media_flowing().await?;
        bob.wait_remote_media().await?;

        // The second time Carol accepts; Bob talks to her, then joins them.
        consult(&bob, "carol@example.test").await?;
        carol.wait_visible("incoming-accept").await?;
        let ring = carol.text("incoming-text").await?;
        anyhow::ensure!(ring.contains("bob@example.test"), "{ring:?}");
        carol.click("incoming-accept").await?;
        let bc = connected_with_code(&bob).await?;
        anyhow::ensure!(connected_with_code(&carol).await? == bc);
        carol.wait_media_flowing().await?;
        let held = bob.text("held-text").await?;
        anyhow::ensure!(held.contains("alice@example.test"), "{held:?}");
        alice.wait_media_still().await?;

        bob.click("complete-transfer").await?;
        bob.wait_testid_attr("call-state", "data-state", "ended")
            .await?;
        anyhow::ensure!(!bob.visible("held-call").await?);
        // Alice's screen turns to Carol (a new leg) before it shows a code.
        alice
            .wait_js(
                "Alice's call names Carol",
                "const e = document.querySelector('[data-testid=\"call-peer\"]'); return !!e && e.textContent.includes('carol@example.test');",
                vec![],
            )
            .await?;
        let a = connected_with_code(&alice).await?;
        let c = connected_with_code(&carol).await?;
        anyhow::ensure!(is_code(&a) && a == c, "codes {a:?} {c:?}");
        anyhow::ensure!(a != first && a != bc, "the joined call kept an old code");
        anyhow::ensure!(
            carol
                .text("call-peer")
                .await?
                .contains("alice@example.test"),
            "Carol's screen names Alice"
        );
        anyhow::ensure!(
            !carol.visible("incoming").await?,
            "Carol's browser rang for the join"
        );
        anyhow::ensure!(!alice.visible("hold-status").await?, "Alice is not held");
        for b in [&alice, &carol] {
            b.wait_media_flowing().await?;
        }
        // Carol's browser made one connection for the consultation and a
        // fresh one for the joined call.
        anyhow::ensure!(carol.peer_connections().await? == 2);
        alice.click("hangup").await?;
        carol
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
