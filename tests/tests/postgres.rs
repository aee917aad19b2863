//! The relay on PostgreSQL, in real browsers: the users made with the CLI on the
//! database, an end-to-end encrypted call with equal codes and decoded video both
//! ways; the relay restarted mid-call (the sessions it resumes are read back from
//! PostgreSQL), media flowing throughout; Alice's hang-up reaches Bob, and the
//! call is in both histories, read from the database.

use std::time::Duration;

use shieldcall_e2e::{
    Browser, Driver, Relay, TempDir, connect_verified, new_database, with_artifacts,
};

const ALICE: &str = "alice@example.test";
const BOB: &str = "bob@example.test";

async fn newest_history_peer(b: &Browser) -> anyhow::Result<Option<String>> {
    let v = b
        .client
        .execute(
            "const e = document.querySelector('[data-testid=history-item]'); return e ? e.dataset.peer : null;",
            vec![],
        )
        .await?;
    Ok(v.as_str().map(String::from))
}

#[tokio::test]
async fn a_call_on_postgres_survives_a_relay_restart() -> anyhow::Result<()> {
    let db = new_database()?;
    let relay = Relay::start_on_postgres(TempDir::new("data")?, &db)?;
    relay.add_user(ALICE, "alice-password-1", false)?;
    relay.add_user(BOB, "bob-password-1", false)?;
    let driver = Driver::start()?;
    let alice = Browser::open(&driver, "alice").await?;
    let bob = Browser::open(&driver, "bob").await?;
    let mut relay = Some(relay);

    let result = with_artifacts("postgres", &[&alice, &bob], || async {
        let first = relay.as_ref().ok_or_else(|| anyhow::anyhow!("relay"))?;
        let url = first.url.clone();
        alice.sign_in(&url, ALICE, "alice-password-1").await?;
        bob.sign_in(&url, BOB, "bob-password-1").await?;
        connect_verified(first, &alice, &bob, BOB).await?;
        let code = alice.text("security-code").await?;

        // Restart on the same address, data directory (the call-id key) and database.
        let bind = url.trim_start_matches("http://").to_string();
        let data = relay.take().map(Relay::stop).ok_or_else(|| anyhow::anyhow!("relay"))?;
        for b in [&alice, &bob] {
            b.wait_visible("relay-status").await?;
        }
        let before = bob.frames_decoded().await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        relay = Some(Relay::start_on_postgres_at(data, &db, &bind)?);
        for b in [&alice, &bob] {
            b.wait_js(
                "signalling to reconnect",
                "const e = document.querySelector('[data-testid=relay-status]'); return !!e && !!e.closest('[hidden]');",
                vec![],
            )
            .await?;
            b.wait_testid_attr("call-state", "data-state", "connected").await?;
            anyhow::ensure!(b.text("security-code").await? == code, "{}: the code changed", b.name);
        }
        alice.wait_testid_attr(&format!("contact-{BOB}"), "data-status", "busy").await?;
        bob.wait_testid_attr(&format!("contact-{ALICE}"), "data-status", "busy").await?;
        let after = bob.frames_decoded().await?;
        anyhow::ensure!(after > before, "media stopped across the restart ({before} -> {after} frames)");

        alice.click("hangup").await?;
        bob.wait_testid_attr("call-state", "data-state", "ended").await?;
        let notice = bob.text("notice").await?;
        anyhow::ensure!(notice.contains("alice@example.test ended the call"), "bob was told: {notice:?}");

        // Both histories hold the call, read back from PostgreSQL.
        for (b, peer) in [(&alice, BOB), (&bob, ALICE)] {
            b.wait_visible("history-item").await?;
            let newest = newest_history_peer(b).await?;
            anyhow::ensure!(newest.as_deref() == Some(peer), "{}: newest history entry {newest:?}", b.name);
        }
        let rows = std::process::Command::new("psql")
            .arg(&db)
            .args(["-Atc", "SELECT count(*) FROM call_history WHERE outcome = 'answered'"])
            .output()?;
        let count = String::from_utf8_lossy(&rows.stdout).trim().to_string();
        anyhow::ensure!(count == "2", "answered rows in PostgreSQL: {count:?}");
        Ok(())
    })
    .await;
    alice.close().await;
    bob.close().await;
    result
}
