//! The contact list in the page follows the directory while it is open: when an
//! admin blocks, then allows, another tenant with the CLI (another process), the
//! other tenant's user leaves the list and comes back, without a reload.

use serde_json::json;
use shieldcall_e2e::{Browser, Driver, Relay, with_artifacts};

/// Whether the contact list shows `user`.
const LISTED: &str = "return !!document.querySelector(`[data-testid=\"contact-${arguments[0]}\"]`) === arguments[1];";

#[tokio::test]
async fn blocking_a_tenant_removes_its_users_from_open_lists() -> anyhow::Result<()> {
    let relay = Relay::start()?;
    relay.add_user("alice@example.test", "alice-password-1", false)?;
    relay.add_user("dave@partner.test", "dave-password-1", false)?;
    let driver = Driver::start()?;
    let alice = Browser::open(&driver, "alice").await?;

    let result = with_artifacts("live_contacts", &[&alice], || async {
        alice
            .sign_in(&relay.url, "alice@example.test", "alice-password-1")
            .await?;
        let access = |mode: &str| {
            let args = ["tenant", "external-access", "example.test", "--mode", mode];
            relay.cli(&args, None)
        };
        let listed = |what: &'static str, yes: bool| {
            alice.wait_js(what, LISTED, vec![json!("dave@partner.test"), json!(yes)])
        };
        listed("dave listed", true).await?;
        access("block")?;
        listed("dave gone", false).await?;
        access("allow-all")?;
        listed("dave back", true).await?;
        Ok(())
    })
    .await;
    alice.close().await;
    result
}
