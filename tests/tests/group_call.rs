//! Group calls in three browsers. Alice calls Bob; Bob adds Carol from the
//! features menu: Carol's browser rings naming Alice, and once she accepts each
//! browser holds two connections (a full mesh) and decodes two remote videos;
//! each pair reads the same code in its panel. Carol leaves; Alice and Bob go
//! on. Then Bob holds Alice, consults Carol and merges the two calls: the mesh
//! of three again. Alice leaves; Bob and Carol go on.

use std::time::{Duration, Instant};

use serde_json::Value;
use shieldcall_e2e::{Browser, Driver, Relay, is_code, with_artifacts};

/// Video frames decoded by each connected peer connection of the page.
async fn frames_per_connection(b: &Browser) -> anyhow::Result<Vec<f64>> {
    let v = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             const pcs = (window.__pcs || []).filter(pc => pc.connectionState === 'connected');\
             Promise.all(pcs.map(pc => pc.getStats().then(r => { let n = 0; r.forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded || 0; }); return n; })))\
               .then(done, () => done([]));",
            vec![],
        )
        .await?;
    Ok(v.as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default())
}

/// Waits until `b` has exactly `n` connected peer connections, each decoding
/// remote video that keeps coming.
async fn wait_mesh(b: &Browser, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let before = frames_per_connection(b).await?;
        tokio::time::sleep(Duration::from_millis(700)).await;
        let after = frames_per_connection(b).await?;
        let flowing = after.len() == n
            && before.len() == n
            && before.iter().zip(&after).all(|(x, y)| y > x && *x > 0.0);
        if flowing {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{}: wanted {n} connections decoding video, frames {before:?} → {after:?}",
            b.name
        );
    }
}

/// The code `b`'s panel shows for its pair with `peer`, once there is one.
async fn pair_code(b: &Browser, peer: &str) -> anyhow::Result<String> {
    let id = format!("code-{peer}");
    b.wait_js(
        &format!("a code for {peer}"),
        "const e = document.querySelector('[data-testid=\"' + arguments[0] + '\"] code'); return !!e;",
        vec![Value::from(id.clone())],
    )
    .await?;
    let line = b.text(&id).await?;
    let code = line.rsplit(": ").next().unwrap_or_default().to_string();
    anyhow::ensure!(is_code(&code), "{}: {line:?}", b.name);
    Ok(code)
}

/// Each pair of the three reads the same code, and no two pairs share one.
async fn codes_agree(pairs: [(&Browser, &str, &Browser, &str); 3]) -> anyhow::Result<()> {
    let mut seen = Vec::new();
    for (x, xu, y, yu) in pairs {
        let a = pair_code(x, yu).await?;
        let b = pair_code(y, xu).await?;
        anyhow::ensure!(a == b, "{} and {} read {a} and {b}", x.name, y.name);
        anyhow::ensure!(!seen.contains(&a), "two pairs share the code {a}");
        seen.push(a);
    }
    Ok(())
}

async fn person_form(b: &Browser, feature: &str, to: &str, button: &str) -> anyhow::Result<()> {
    b.click("call-more").await?;
    b.click(feature).await?;
    b.fill("transfer-to", to).await?;
    b.click(button).await
}

const ALICE: &str = "alice@example.test";
const BOB: &str = "bob@example.test";
const CAROL: &str = "carol@example.test";

#[tokio::test]
async fn three_people_talk_in_a_mesh_after_an_add_and_after_a_merge() -> anyhow::Result<()> {
    let relay = Relay::start()?;
    relay.add_user(ALICE, "alice-password-1", false)?;
    relay.add_user(BOB, "bob-password-1", false)?;
    relay.add_user(CAROL, "carol-password-1", false)?;
    let driver = Driver::start()?;
    let alice = Browser::open(&driver, "alice").await?;
    let bob = Browser::open(&driver, "bob").await?;
    let carol = Browser::open(&driver, "carol").await?;

    let result = with_artifacts("group_call", &[&alice, &bob, &carol], || async {
        for (b, u, p) in [
            (&alice, ALICE, "alice-password-1"),
            (&bob, BOB, "bob-password-1"),
            (&carol, CAROL, "carol-password-1"),
        ] {
            b.sign_in(&relay.url, u, p).await?;
            // Every pair standard: a group call is never end-to-end encrypted.
            b.turn_e2ee_off().await?;
        }
        alice.click(&format!("call-{BOB}")).await?;
        bob.click("incoming-accept").await?;
        for b in [&alice, &bob] {
            b.wait_testid_attr("call-state", "data-state", "connected")
                .await?;
        }

        // Bob adds Carol.
        person_form(&bob, "feature-add-participant", CAROL, "transfer-add").await?;
        carol.wait_visible("incoming-accept").await?;
        let ring = carol.text("incoming-text").await?;
        anyhow::ensure!(
            ring.contains(BOB)
                && ring.contains("adding you to a call with")
                && ring.contains(ALICE),
            "{ring:?}"
        );
        carol.click("incoming-accept").await?;
        for b in [&alice, &bob, &carol] {
            wait_mesh(b, 2).await?;
        }
        codes_agree([
            (&alice, ALICE, &bob, BOB),
            (&alice, ALICE, &carol, CAROL),
            (&bob, BOB, &carol, CAROL),
        ])
        .await?;
        let names = carol.text("call-peer").await?;
        anyhow::ensure!(names.contains(ALICE) && names.contains(BOB), "{names:?}");

        // Carol leaves; Alice and Bob go on.
        carol.click("hangup").await?;
        carol
            .wait_testid_attr("call-state", "data-state", "ended")
            .await?;
        for b in [&alice, &bob] {
            wait_mesh(b, 1).await?;
            anyhow::ensure!(!b.visible("group-codes").await?, "{}: a pair list", b.name);
        }
        anyhow::ensure!(carol.visible("call-close").await?);
        carol.click("call-close").await?;

        // Bob holds Alice, consults Carol, and merges.
        person_form(&bob, "feature-transfer", CAROL, "transfer-consult").await?;
        carol.wait_visible("incoming-accept").await?;
        carol.click("incoming-accept").await?;
        carol
            .wait_testid_attr("call-state", "data-state", "connected")
            .await?;
        bob.wait_visible("held-call").await?;
        bob.click("merge-calls").await?;
        for b in [&alice, &bob, &carol] {
            wait_mesh(b, 2).await?;
        }
        anyhow::ensure!(
            !bob.visible("held-call").await?,
            "Bob still shows a held call"
        );
        anyhow::ensure!(!alice.visible("hold-status").await?, "Alice is still held");
        codes_agree([
            (&alice, ALICE, &bob, BOB),
            (&alice, ALICE, &carol, CAROL),
            (&bob, BOB, &carol, CAROL),
        ])
        .await?;

        // Alice leaves; Bob and Carol go on.
        alice.click("hangup").await?;
        for b in [&bob, &carol] {
            wait_mesh(b, 1).await?;
        }
        bob.click("hangup").await?;
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
