//! Scenario 4: a man in the middle, three ways, through the test-only tampering
//! proxy of `shieldcall_e2e::mitm` (never part of the shipped binary). The browsers
//! talk to the relay only through the proxy.
//!
//! a. The fingerprint in the answer is rewritten: the caller never shows the lock,
//!    the call ends with the man-in-the-middle warning on both sides.
//! b. The commitment is altered: the caller warns and ends the call, the callee is
//!    told why.
//! c. A full two-leg man in the middle: a third browser terminates DTLS towards each
//!    side with its own certificates and forwards the media. The call connects,
//!    both sides show the lock, media flows, and the two codes differ; "Codes
//!    differ" ends the call on both sides. Reading the code aloud catches it.
//! e. The extra-fingerprint attack, in Chromium and in Firefox (below).

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use shieldcall_e2e::mitm::{self, Mode, Proxy};
use shieldcall_e2e::{Browser, Driver, Relay, is_code, with_artifacts};
use shieldcall_proto::{extract_fingerprint, security_code};

const ALICE: &str = "alice@example.test";
const BOB: &str = "bob@example.test";
const ALICE_PW: &str = "alice-password-1";
const BOB_PW: &str = "bob-password-1";

async fn setup(mode: Mode) -> Result<(Relay, Proxy, Driver)> {
    let (relay, proxy) = mitm::start(mode).await?;
    relay.add_user(ALICE, ALICE_PW, false)?;
    relay.add_user(BOB, BOB_PW, false)?;
    let driver = Driver::start()?;
    Ok((relay, proxy, driver))
}

/// Records, from now on, whether the page ever shows the lock (`e2ee-indicator`
/// in state `e2ee`) and every text the notice shows.
async fn watch(b: &Browser) -> Result<()> {
    b.client
        .execute(
            "window.__sawLock = false; window.__notices = [];\
             const check = () => {\
               const e = document.querySelector('[data-testid=\"e2ee-indicator\"]');\
               if (e && e.getAttribute('data-state') === 'e2ee') window.__sawLock = true;\
               const n = document.querySelector('[data-testid=\"notice\"]');\
               const t = n && !n.closest('[hidden]') ? n.textContent : '';\
               if (t && window.__notices.at(-1) !== t) window.__notices.push(t); };\
             new MutationObserver(check).observe(document.documentElement,\
               { subtree: true, childList: true, attributes: true, characterData: true });\
             check();",
            vec![],
        )
        .await?;
    Ok(())
}

/// Both sign in through the proxy, start watching, and Alice calls Bob, who
/// accepts.
async fn call_through(proxy: &Proxy, alice: &Browser, bob: &Browser) -> Result<()> {
    alice.sign_in(&proxy.url, ALICE, ALICE_PW).await?;
    bob.sign_in(&proxy.url, BOB, BOB_PW).await?;
    watch(alice).await?;
    watch(bob).await?;
    alice.click(&format!("call-{BOB}")).await?;
    bob.click("incoming-accept").await?;
    Ok(())
}

async fn saw_lock(b: &Browser) -> Result<bool> {
    let v = b.client.execute("return window.__sawLock;", vec![]).await?;
    v.as_bool()
        .with_context(|| format!("{}: the watcher is not installed", b.name))
}

async fn notices(b: &Browser) -> Result<Vec<String>> {
    let v = b.client.execute("return window.__notices;", vec![]).await?;
    Ok(v.as_array()
        .with_context(|| format!("{}: the watcher is not installed", b.name))?
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect())
}

/// Waits until `b`'s call ended in the man-in-the-middle state with no code shown,
/// and checks the warning it showed names the man in the middle and says `detail`.
async fn warned(b: &Browser, detail: &str) -> Result<()> {
    b.wait_testid_attr("e2ee-indicator", "data-state", "mitm")
        .await?;
    b.wait_testid_attr("call-state", "data-state", "ended")
        .await?;
    let code = b.text("security-code").await?;
    ensure!(
        !b.visible("security-code").await? || code.trim().is_empty(),
        "{} still shows the code {code:?} after the warning",
        b.name
    );
    let shown = notices(b).await?;
    let warning = shown
        .iter()
        .find(|n| n.contains("man in the middle"))
        .with_context(|| format!("{} never showed the warning; notices: {shown:?}", b.name))?;
    ensure!(
        warning.contains(detail),
        "{}'s warning says {detail:?}: {warning:?}",
        b.name
    );
    // The warning must still be there when the call is over (late relay errors
    // about the ended call must not replace it).
    let last = b.text("notice").await?;
    ensure!(
        last.contains("man in the middle"),
        "{}'s notice no longer shows the warning: {last:?} (all: {shown:?})",
        b.name
    );
    Ok(())
}

/// Modes a and b: a tampered signalling message the caller must catch before any
/// media is keyed.
async fn caller_catches(test: &str, mode: Mode, event: &str) -> Result<()> {
    let (_relay, proxy, driver) = setup(mode).await?;
    let alice = Browser::open(&driver, "alice").await?;
    let bob = Browser::open(&driver, "bob").await?;

    let result = with_artifacts(test, &[&alice, &bob], || async {
        call_through(&proxy, &alice, &bob).await?;

        warned(&alice, "not the one the other side committed to").await?;
        warned(&bob, "The other side found").await?;
        ensure!(!saw_lock(&alice).await?, "the caller showed the lock");
        ensure!(!saw_lock(&bob).await?, "the callee showed the lock");
        let events = proxy.events();
        ensure!(
            events.iter().any(|e| e.contains(event)),
            "the proxy did not tamper ({event}): {events:?}"
        );
        Ok(())
    })
    .await;
    alice.close().await;
    bob.close().await;
    result
}

#[tokio::test]
async fn rewritten_answer_fingerprint_ends_the_call_with_the_warning() -> Result<()> {
    caller_catches(
        "mitm_answer_fingerprint",
        Mode::RewriteAnswerFingerprint,
        "rewrote the fingerprint in the answer",
    )
    .await
}

#[tokio::test]
async fn altered_commitment_makes_the_caller_warn_and_end_the_call() -> Result<()> {
    caller_catches(
        "mitm_commitment",
        Mode::AlterCommitment,
        "altered the commitment",
    )
    .await
}

#[tokio::test]
async fn two_leg_mitm_connects_with_a_lock_but_the_codes_differ() -> Result<()> {
    let (_relay, proxy, driver) = setup(Mode::TwoLeg).await?;
    let attacker = Browser::open(&driver, "attacker").await?;
    let alice = Browser::open(&driver, "alice").await?;
    let bob = Browser::open(&driver, "bob").await?;

    let result = with_artifacts("mitm_two_legs", &[&alice, &bob, &attacker], || async {
        attacker.client.goto(&proxy.attacker_url()).await?;
        let (leg1, leg2) = proxy.wait_attacker().await?;

        call_through(&proxy, &alice, &bob).await?;

        // Both sides connect and show the lock: each side's checks pass, because
        // each really runs DTLS with the certificate it was shown.
        for b in [&alice, &bob] {
            b.wait_testid_attr("e2ee-indicator", "data-state", "e2ee")
                .await?;
        }
        let code_a = alice.text("security-code").await?;
        let code_b = bob.text("security-code").await?;
        ensure!(is_code(&code_a), "alice shows a code, got {code_a:?}");
        ensure!(is_code(&code_b), "bob shows a code, got {code_b:?}");
        ensure!(
            code_a != code_b,
            "the attacker made the codes match: {code_a}"
        );

        // Each side talks to the attacker: its remote certificate is the attacker's
        // leg, and its code is the code of that DTLS session.
        let (a_local, a_remote) = alice.sdp().await?;
        let (b_local, b_remote) = bob.sdp().await?;
        let fa = extract_fingerprint(&a_local)?;
        let fb = extract_fingerprint(&b_local)?;
        ensure!(
            extract_fingerprint(&a_remote)? == leg1,
            "alice's peer is not the attacker's leg 1"
        );
        ensure!(
            extract_fingerprint(&b_remote)? == leg2,
            "bob's peer is not the attacker's leg 2"
        );
        ensure!(
            code_a == security_code(&fa, &leg1)?.to_string(),
            "alice's code is the code of alice and leg 1"
        );
        ensure!(
            code_b == security_code(&leg2, &fb)?.to_string(),
            "bob's code is the code of leg 2 and bob"
        );

        // Media really flows through the attacker, both ways.
        ensure!(alice.wait_frames().await? > 0.0, "alice decodes video");
        ensure!(bob.wait_frames().await? > 0.0, "bob decodes video");

        let events = proxy.events();
        for expected in [
            "replaced the commitment",
            "diverted the caller's offer",
            "injected the attacker's leg-1 answer",
            "injected the attacker's leg-2 offer",
            "diverted the callee's answer",
        ] {
            ensure!(
                events.iter().any(|e| e.contains(expected)),
                "the proxy did not do: {expected} (events: {events:?})"
            );
        }

        // Reading the code aloud catches the attacker.
        alice.click("e2ee-indicator").await?;
        alice.click("codes-differ").await?;
        warned(&alice, "security codes differ").await?;
        warned(&bob, "The other side found").await?;
        Ok(())
    })
    .await;
    alice.close().await;
    bob.close().await;
    attacker.close().await;
    result
}

/// The extra-fingerprint man in the middle (e): the attacker terminates DTLS on
/// two legs, but keeps the callee's real commitment and gives each side its
/// peer's real sha-256 fingerprint plus an `a=fingerprint:sha-384` line for the
/// attacker's own certificate. A browser that accepts any listed fingerprint
/// (Firefox) would connect to the attacker while both codes matched. The strict
/// one-fingerprint rule refuses the description before the browser sees it: the
/// call ends with the warning on both sides and no lock is ever shown.
async fn extra_fingerprint_is_refused(test: &str, firefox: bool) -> Result<()> {
    let (_relay, proxy, driver) = setup(Mode::ExtraFingerprint).await?;
    let attacker = Browser::open(&driver, "attacker").await?;
    let (alice, bob) = if firefox {
        (
            Browser::open_firefox("alice-firefox").await?,
            Browser::open_firefox("bob-firefox").await?,
        )
    } else {
        (
            Browser::open(&driver, "alice").await?,
            Browser::open(&driver, "bob").await?,
        )
    };
    let result = with_artifacts(test, &[&alice, &bob, &attacker], || async {
        attacker.client.goto(&proxy.attacker_url()).await?;
        proxy.wait_attacker().await?;
        call_through(&proxy, &alice, &bob).await?;

        warned(&bob, "exactly one sha-256").await?;
        warned(&alice, "exactly one sha-256").await?;
        ensure!(!saw_lock(&alice).await?, "the caller showed the lock");
        ensure!(!saw_lock(&bob).await?, "the callee showed the lock");
        let events = proxy.events();
        ensure!(
            events
                .iter()
                .any(|e| e.contains("with the caller's sha-256 and the attacker's sha-384")),
            "the proxy did not add the attacker's fingerprint: {events:?}"
        );
        Ok(())
    })
    .await;
    alice.close().await;
    bob.close().await;
    attacker.close().await;
    result
}

#[tokio::test]
async fn extra_fingerprint_line_is_refused_in_chromium() -> Result<()> {
    extra_fingerprint_is_refused("mitm_extra_fingerprint_chromium", false).await
}

#[tokio::test]
async fn extra_fingerprint_line_is_refused_in_firefox() -> Result<()> {
    extra_fingerprint_is_refused("mitm_extra_fingerprint_firefox", true).await
}
