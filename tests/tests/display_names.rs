//! Display names in the browser: the name an admin gives an account (here with
//! the CLI, beside the running relay) shows above the address in the contact
//! list, on the incoming call and in the call header; a rename on the admin
//! page reaches an open tab without a reload; markup in a name is shown as
//! text, never parsed.

use shieldcall_e2e::{Browser, Driver, Relay, with_artifacts};

const ALICE: &str = "alice@example.test";
const BOB: &str = "bob@example.test";
const ADMIN: &str = "admin@example.test";

#[tokio::test]
async fn display_names_beside_addresses() -> anyhow::Result<()> {
    let relay = Relay::start()?;
    relay.add_user(ALICE, "alice-password-1", false)?;
    relay.add_user(BOB, "bob-password-1", false)?;
    relay.add_user(ADMIN, "admin-password-1", true)?;
    relay.cli(&["user", "name", ALICE, "Alice Example"], None)?;
    let driver = Driver::start()?;
    let alice = Browser::open(&driver, "alice").await?;
    let bob = Browser::open(&driver, "bob").await?;
    let admin = Browser::open(&driver, "admin").await?;

    let result = with_artifacts("display_names", &[&alice, &bob, &admin], || async {
        alice.sign_in(&relay.url, ALICE, "alice-password-1").await?;
        bob.sign_in(&relay.url, BOB, "bob-password-1").await?;
        let row = format!("contact-{ALICE}");
        bob.wait_testid_attr(&row, "data-name", "Alice Example").await?;
        let shown = bob.text(&row).await?;
        anyhow::ensure!(
            shown.contains("Alice Example") && shown.contains(ALICE),
            "Bob's row for Alice: {shown:?}"
        );
        // Bob has no display name: Alice sees his address alone.
        anyhow::ensure!(alice.attr(&format!("contact-{BOB}"), "data-name").await?.is_none());

        // The incoming call and the call header name Alice, with her address.
        alice.click(&format!("call-{BOB}")).await?;
        bob.wait_visible("incoming-accept").await?;
        let incoming = bob.text("incoming-text").await?;
        anyhow::ensure!(
            incoming.contains("Alice Example (alice@example.test) is calling"),
            "{incoming:?}"
        );
        alice.click("hangup").await?;
        bob.wait_js(
            "the incoming call to go",
            "const e = document.querySelector('[data-testid=incoming-accept]'); return !e || !!e.closest('[hidden]');",
            vec![],
        )
        .await?;

        // A rename on the admin page reaches Bob's open tab; markup stays text,
        // on the admin page too.
        admin.sign_in(&relay.url, ADMIN, "admin-password-1").await?;
        admin.goto(&format!("{}/admin", relay.url)).await?;
        admin.wait_visible("set-name").await?;
        admin.fill("set-name-user", ALICE).await?;
        admin.fill("set-name-name", "Alice <b>Bold</b>  & Co").await?;
        admin.click("set-name-submit").await?;
        bob.wait_testid_attr(&row, "data-name", "Alice <b>Bold</b> & Co").await?;
        admin
            .wait_js(
                "the users table to show the new name",
                "const r = document.querySelector('[data-testid=\"user-row-alice@example.test\"]'); return !!r && r.textContent.includes('Alice <b>Bold</b> & Co') && !r.querySelector('b');",
                vec![],
            )
            .await?;
        let parsed = bob
            .client
            .execute(
                "return document.querySelectorAll('[data-testid=\"contact-alice@example.test\"] b').length;",
                vec![],
            )
            .await?;
        anyhow::ensure!(parsed.as_u64() == Some(0), "the name was parsed as HTML");
        let shown = bob.text(&row).await?;
        anyhow::ensure!(shown.contains("Alice <b>Bold</b> & Co"), "{shown:?}");

        // Removed: the address alone again.
        relay.cli(&["user", "name", ALICE, ""], None)?;
        bob.wait_js(
            "Alice's display name to go",
            "const e = document.querySelector('[data-testid=\"contact-alice@example.test\"]'); return !!e && !e.hasAttribute('data-name');",
            vec![],
        )
        .await?;
        Ok(())
    })
    .await;
    alice.close().await;
    bob.close().await;
    admin.close().await;
    result
}
