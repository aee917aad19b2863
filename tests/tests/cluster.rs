//! Two relay nodes in real browsers: one PostgreSQL database, one `nats-server`,
//! two release relays started with `--bus-url`, and two load balancers in front
//! (Alice's prefers node A, Bob's node B; each falls back to the other). Alice
//! on node A calls Bob on node B: an end-to-end encrypted call with equal codes
//! and decoded video both ways. Then node A is killed with `kill -9`: the media
//! goes on, both browsers reconnect (Alice's through her balancer to node B,
//! Bob's when node B, having reaped A, tells it to) and resume, node B takes
//! the call over, the code is unchanged, and Alice's hang-up reaches Bob.

use std::time::{Duration, Instant};

use shieldcall_e2e::cluster::{Balancer, Nats};
use shieldcall_e2e::{
    Browser, Driver, Relay, TempDir, connect_verified, new_database, with_artifacts,
};

const ALICE: &str = "alice@example.test";
const BOB: &str = "bob@example.test";

#[tokio::test]
async fn a_call_across_two_nodes_survives_kill_9_of_one() -> anyhow::Result<()> {
    let db = new_database()?;
    let nats = Nats::start()?;
    let (lb_alice, alice_url) = Balancer::bind().await?;
    let (lb_bob, bob_url) = Balancer::bind().await?;
    let origins = [alice_url.clone(), bob_url.clone()];
    let a = Relay::start_node(TempDir::new("node-a")?, &db, &nats.url, &origins)?;
    let b = Relay::start_node(TempDir::new("node-b")?, &db, &nats.url, &origins)?;
    a.add_user(ALICE, "alice-password-1", false)?;
    a.add_user(BOB, "bob-password-1", false)?;
    let _lb_alice = Balancer::serve(lb_alice, alice_url.clone(), &[&a.url, &b.url])?;
    let _lb_bob = Balancer::serve(lb_bob, bob_url.clone(), &[&b.url, &a.url])?;
    let driver = Driver::start()?;
    let alice = Browser::open(&driver, "alice").await?;
    let bob = Browser::open(&driver, "bob").await?;
    let mut node_a = Some(a);

    let result = with_artifacts("cluster", &[&alice, &bob], || async {
        alice.sign_in(&alice_url, ALICE, "alice-password-1").await?;
        bob.sign_in(&bob_url, BOB, "bob-password-1").await?;
        // Each sees the other online, though they are on different nodes.
        alice.wait_testid_attr(&format!("contact-{BOB}"), "data-status", "online").await?;
        bob.wait_testid_attr(&format!("contact-{ALICE}"), "data-status", "online").await?;
        let a = node_a.as_ref().ok_or_else(|| anyhow::anyhow!("node a"))?;
        let code = connect_verified(a, &alice, &bob, BOB).await?;
        alice.wait_testid_attr(&format!("contact-{BOB}"), "data-status", "busy").await?;

        // Node A, which carries the call, dies without a word.
        let before = bob.frames_decoded().await?;
        let killed = Instant::now();
        node_a.take().map(Relay::kill_9).transpose()?;
        // Alice's browser reconnects through her balancer to node B at once;
        // Bob's is told to once node B has reaped A (A's lease is 10 s, and
        // B looks every 2 s). Both resume through node B, which takes the
        // call over.
        tokio::time::sleep(Duration::from_secs(14).saturating_sub(killed.elapsed())).await;
        for br in [&alice, &bob] {
            br.wait_js(
                "signalling back after the node died",
                "const e = document.querySelector('[data-testid=relay-status]'); return !!e && !!e.closest('[hidden]');",
                vec![],
            )
            .await?;
        }
        for br in [&alice, &bob] {
            br.wait_testid_attr("call-state", "data-state", "connected").await?;
            anyhow::ensure!(br.text("security-code").await? == code, "{}: the code changed", br.name);
        }
        let after = bob.frames_decoded().await?;
        anyhow::ensure!(after > before, "media stopped when the node died ({before} -> {after} frames)");
        alice.wait_testid_attr(&format!("contact-{BOB}"), "data-status", "busy").await?;

        alice.click("hangup").await?;
        bob.wait_testid_attr("call-state", "data-state", "ended").await?;
        let notice = bob.text("notice").await?;
        anyhow::ensure!(notice.contains("alice@example.test ended the call"), "bob was told: {notice:?}");
        eprintln!("node A killed; the call ended through node B {:?} later", killed.elapsed());
        Ok(())
    })
    .await;
    alice.close().await;
    bob.close().await;
    drop(b);
    result
}
