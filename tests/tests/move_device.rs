//! Move to another device: in a standard call Bob, answered on his laptop, moves
//! the call to his phone. The laptop's call ends ("moved"); Alice's browser makes
//! a fresh peer connection and certificate and connects to the phone; both show a
//! new security code (not verified), media flows both ways on the new leg, and
//! the laptop can take the call back.

use shieldcall_e2e::{Browser, Driver, Relay, connected_with_code, is_code, with_artifacts};

#[tokio::test]
async fn a_standard_call_moves_to_the_users_other_device() -> anyhow::Result<()> {
    let relay = Relay::start()?;
    relay.add_user("alice@example.test", "alice-password-1", false)?;
    relay.add_user("bob@example.test", "bob-password-1", false)?;
    let driver = Driver::start()?;
    let alice = Browser::open(&driver, "alice").await?;
    let laptop = Browser::open(&driver, "bob-laptop").await?;
    let phone = Browser::open(&driver, "bob-phone").await?;

    let result = with_artifacts("move_device", &[&alice, &laptop, &phone], || async {
        alice
            .sign_in(&relay.url, "alice@example.test", "alice-password-1")
            .await?;
        laptop
            .sign_in(&relay.url, "bob@example.test", "bob-password-1")
            .await?;
        phone
            .sign_in(&relay.url, "bob@example.test", "bob-password-1")
            .await?;
        // Alice turns end-to-end encryption off: the call is standard.
        alice.turn_e2ee_off().await?;

        alice.click("call-bob@example.test").await?;
        laptop.click("incoming-accept").await?;
        let mut first = Vec::new();
        for b in [&alice, &laptop] {
            b.wait_testid_attr("call-state", "data-state", "connected")
                .await?;
            b.wait_testid_attr("e2ee-indicator", "data-state", "standard")
                .await?;
            b.wait_frames().await?;
            first.push(b.text("security-code").await?);
        }
        anyhow::ensure!(is_code(&first[0]) && first[0] == first[1], "{first:?}");
        let alice_pcs = alice.peer_connections().await?;

        // The phone offers to take the call.
        phone.wait_visible("elsewhere").await?;
        let line = phone.text("elsewhere-text").await?;
        anyhow::ensure!(line.contains("alice@example.test"), "{line:?}");
        phone.click("move-here").await?;

        // The laptop lets go and says where the call went.
        laptop
            .wait_testid_attr("call-state", "data-state", "ended")
            .await?;
        let notice = laptop.text("notice").await?;
        anyhow::ensure!(notice.contains("moved to another of your devices"), "{notice:?}");

        // Alice and the phone connect afresh: a new peer connection on Alice's
        // side, a new code on both, equal, not yet verified, media both ways.
        let mut second = Vec::new();
        for b in [&alice, &phone] {
            second.push(connected_with_code(b).await?);
            anyhow::ensure!(!b.visible("verified").await?, "{}: verified", b.name);
        }
        anyhow::ensure!(second[0] == second[1], "codes differ: {second:?}");
        anyhow::ensure!(second[0] != first[0], "the new leg kept the old code");
        anyhow::ensure!(
            alice.peer_connections().await? > alice_pcs,
            "alice did not make a fresh peer connection"
        );
        for b in [&alice, &phone] {
            b.wait_media_flowing().await?;
        }

        // The laptop may take it back; instead the phone hangs up, and the
        // laptop's bar goes.
        laptop.wait_visible("move-here").await?;
        phone.click("hangup").await?;
        alice
            .wait_testid_attr("call-state", "data-state", "ended")
            .await?;
        laptop
            .wait_js(
                "the laptop's elsewhere bar to go",
                "const e = document.querySelector('[data-testid=elsewhere]'); return !!e && e.hidden;",
                vec![],
            )
            .await?;
        Ok(())
    })
    .await;
    for b in [alice, laptop, phone] {
        b.close().await;
    }
    result
}
