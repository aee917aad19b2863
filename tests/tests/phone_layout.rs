//! The client on a phone-sized viewport (390×844, an iPhone 12–15) and on a
//! desktop one (1280×800): on every screen a person meets (sign-in, contacts,
//! settings, an incoming call, a connected call with its verification panel
//! open, the ended call) no visible element reaches past the viewport's edges
//! and the page does not scroll sideways; the 20-digit code stays on one line.
//! Screenshots of each screen at each size are kept with
//! `SHIELDCALL_E2E_ARTIFACTS=always`.

use anyhow::{Result, ensure};
use serde_json::Value;
use shieldcall_e2e::{Browser, Driver, Relay, with_artifacts};

const ALICE: &str = "alice@example.test";
const BOB: &str = "bob@example.test";

/// Every visible element whose box reaches past the viewport, and the page's
/// sideways scroll width against its width.
const OVERFLOW: &str = "const w = document.documentElement.clientWidth; const out = [];\
  for (const e of document.querySelectorAll('body *')) {\
    if (e.closest('[hidden]') || e.closest('svg') && e.tagName !== 'svg') continue;\
    const r = e.getBoundingClientRect(); if (r.width === 0 && r.height === 0) continue;\
    if (r.left < -0.5 || r.right > w + 0.5) out.push((e.dataset.testid || e.tagName.toLowerCase()) + ' ' + Math.round(r.left) + '..' + Math.round(r.right));\
  }\
  return { width: w, scroll: document.documentElement.scrollWidth, out };";

async fn fits(b: &Browser, size: &str, screen: &str) -> Result<()> {
    let v: Value = b.client.execute(OVERFLOW, vec![]).await?;
    let width = v["width"].as_f64().unwrap_or(0.0);
    let scroll = v["scroll"].as_f64().unwrap_or(f64::MAX);
    let out: Vec<&str> = v["out"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    ensure!(
        out.is_empty() && scroll <= width,
        "{}: {screen} overflows a {size} viewport of {width} px (scroll width {scroll}): {out:?}",
        b.name
    );
    if std::env::var("SHIELDCALL_E2E_ARTIFACTS").as_deref() == Ok("always") {
        b.save_artifacts(&format!("layout/{size}/{screen}")).await;
    }
    Ok(())
}

/// The number of lines an element's text takes.
async fn lines(b: &Browser, testid: &str) -> Result<f64> {
    let v = b
        .client
        .execute(
            "const e = document.querySelector(`[data-testid=\"${arguments[0]}\"]`);\
             const lh = parseFloat(getComputedStyle(e).lineHeight); return e.getBoundingClientRect().height / lh;",
            vec![serde_json::json!(testid)],
        )
        .await?;
    Ok(v.as_f64().unwrap_or(f64::MAX))
}

#[tokio::test]
async fn nothing_overflows_a_phone_viewport() -> Result<()> {
    every_screen_fits("phone", (390, 844)).await
}

#[tokio::test]
async fn nothing_overflows_a_desktop_viewport() -> Result<()> {
    every_screen_fits("desktop", (1280, 800)).await
}

/// Walks Alice and Bob, in windows of `width`×`height`, through every screen
/// of a call, checking at each that nothing overflows.
async fn every_screen_fits(size: &str, (width, height): (u32, u32)) -> Result<()> {
    let relay = Relay::start()?;
    relay.add_user(ALICE, "alice-password-1", false)?;
    relay.add_user(BOB, "bob-password-1", false)?;
    let driver = Driver::start()?;
    let alice = Browser::open(&driver, "alice").await?;
    let bob = Browser::open(&driver, "bob").await?;
    let result = with_artifacts(&format!("layout_{size}"), &[&alice, &bob], || async {
        for b in [&alice, &bob] {
            b.client.set_window_size(width, height).await?;
        }
        alice.goto(&format!("{}/", relay.url)).await?;
        fits(&alice, size, "sign-in").await?;
        alice.sign_in(&relay.url, ALICE, "alice-password-1").await?;
        bob.sign_in(&relay.url, BOB, "bob-password-1").await?;
        alice.wait_visible(&format!("contact-{BOB}")).await?;
        fits(&alice, size, "contacts").await?;
        alice.click("open-settings").await?;
        alice.wait_visible("settings-e2ee-toggle").await?;
        fits(&alice, size, "settings").await?;

        alice.click(&format!("call-{BOB}")).await?;
        bob.wait_visible("incoming-decline").await?;
        fits(&bob, size, "incoming").await?;
        fits(&alice, size, "ringing").await?;
        bob.click("incoming-accept").await?;
        for b in [&alice, &bob] {
            b.wait_testid_attr("e2ee-indicator", "data-state", "e2ee")
                .await?;
        }
        alice.click("e2ee-indicator").await?;
        alice.wait_visible("security-code").await?;
        fits(&alice, size, "call-with-panel").await?;
        fits(&bob, size, "call").await?;
        let n = lines(&alice, "security-code").await?;
        ensure!(n < 1.5, "the code takes {n:.1} lines");
        alice.click("hangup").await?;
        bob.wait_testid_attr("call-state", "data-state", "ended")
            .await?;
        fits(&bob, size, "ended").await
    })
    .await;
    alice.close().await;
    bob.close().await;
    result
}
