//! The call-setup benchmark, run by `cargo xtask bench call` (never by the normal
//! test suite: it is `#[ignore]`). Options come in `SHIELDCALL_BENCH_ARGS`:
//! `--calls N` (default 12).
//!
//! In one run, with the same two headless Chromium browsers (alice calls bob), it
//! interleaves three kinds of call, one warm-up round of each not counted:
//!
//! - **Shieldcall**: alice clicks `call-bob@…`, bob's `incoming-accept` is clicked;
//!   measured from that click (a capture-phase listener in bob's page) to the later of
//!   the two instants at which each page shows `e2ee-indicator` `data-state=e2ee`
//!   with a non-empty `security-code` (a `MutationObserver` in each page).
//! - **Baseline, offer while ringing** (`tests/baseline.html`, the usual plain
//!   call): the caller page gets media and sends its offer while it rings; on
//!   `accept()` the callee page gets media and answers. Measured from the start of
//!   `accept()` in the callee page to the later of the two `connectionstatechange`
//!   events with `connectionState == 'connected'`.
//! - **Baseline, offer after accept**: the same page with Shieldcall's order of
//!   messages (accept, then the caller's media and offer, then the answer), to tell
//!   the cost of that order from the cost of verification.
//!
//! Same media (audio + video, fake devices), same `RTCConfiguration` (no ICE
//! servers, `max-bundle`, loopback only). Shieldcall signals through the relay's
//! WebSocket; the baseline pages through this test's HTTP server (POST to send,
//! long-poll GET to receive). Every instant is `performance.timeOrigin +
//! performance.now()` taken inside a page, so the method is the same for all kinds
//! and WebDriver's own latency is not measured; the two browsers' clocks are
//! checked against each other's wall clock and the skew is printed.
//!
//! It asserts that every Shieldcall call reached the lock with equal codes of the
//! form `ddddd ddddd ddddd ddddd`, and that every baseline call connected.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use fantoccini::wd::WindowHandle;
use serde_json::{Value, json};
use shieldcall_e2e::{Browser, Driver, Relay, is_code, root};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// `--baseline-in-shieldcall-page` was given.
static IN_PAGE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `--bare` was given: no instrumentation in the Shieldcall pages.
static BARE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `--baseline-cert` was given: the baseline makes a fresh certificate per call.
static BASELINE_CERT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `--hide-shieldcall-ui` was given.
static HIDE_UI: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How long the callee "lets it ring" before accepting, the same for every kind.
const RING: Duration = Duration::from_millis(500);
/// A pause after each call so that closing one does not overlap the next.
const SETTLE: Duration = Duration::from_millis(400);
/// The longest any single call may take to set up.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Observation only: timestamps of what the Shieldcall page does, and a click
/// listener that takes the accept instant. Installed before signing in, so the
/// signalling WebSocket and every peer connection are seen.
const INSTRUMENT: &str = r#"
if (!window.__bench) {
  const now = () => performance.timeOrigin + performance.now();
  const B = window.__bench = { marks: [], acceptAt: null, lock: null, code: null };
  B.hide = () => {
    if (B.hideStyle) return;
    B.hideStyle = document.createElement('style');
    B.hideStyle.textContent = 'body > * { display: none !important; }';
    document.head.appendChild(B.hideStyle);
  };
  B.unhide = () => { if (B.hideStyle) { B.hideStyle.remove(); B.hideStyle = null; } };
  const mark = (n) => B.marks.push([n, now()]);
  window.addEventListener('click', (e) => {
    const t = e.target && e.target.closest && e.target.closest('[data-testid="incoming-accept"]');
    if (t) { B.acceptAt = now(); mark('accept'); if (B.hideOnAccept) B.hide(); }
  }, true);
  if (arguments[0]) return true; // --bare: no wrappers
  const P = window.RTCPeerConnection;
  const gc = P.generateCertificate;
  P.generateCertificate = function (a) {
    mark('cert:start');
    return gc.call(P, a).then((c) => { mark('cert:end'); return c; });
  };
  for (const name of ['createOffer', 'createAnswer', 'setLocalDescription', 'setRemoteDescription', 'getStats']) {
    const f = P.prototype[name];
    P.prototype[name] = function (...args) {
      mark(name + ':start');
      return f.apply(this, args).then((v) => { mark(name + ':end'); return v; });
    };
  }
  window.RTCPeerConnection = new Proxy(P, { construct(t, a) {
    const pc = new t(...a);
    mark('pc:new');
    pc.addEventListener('connectionstatechange', () => mark('pc:' + pc.connectionState));
    pc.addEventListener('icegatheringstatechange', () => mark('gather:' + pc.iceGatheringState));
    return pc;
  } });
  const md = navigator.mediaDevices;
  const gum = md.getUserMedia.bind(md);
  md.getUserMedia = (c) => { mark('gum:start'); return gum(c).then((s) => { mark('gum:end'); return s; }); };
  const W = window.WebSocket;
  const send = W.prototype.send;
  W.prototype.send = function (d) {
    try { mark('send:' + JSON.parse(d).type); } catch (e) {}
    return send.call(this, d);
  };
  window.WebSocket = new Proxy(W, { construct(t, a) {
    const ws = new t(...a);
    ws.addEventListener('message', (e) => { try { mark('recv:' + JSON.parse(e.data).type); } catch (x) {} });
    return ws;
  } });
}
return true;
"#;

/// Arms the lock detector for the next call; false if the page already shows a
/// lock (a stale view would make the measurement meaningless).
const ARM_LOCK: &str = r#"
const B = window.__bench;
const now = () => performance.timeOrigin + performance.now();
const loaf = (e) => ({
  start: performance.timeOrigin + e.startTime, duration: e.duration,
  styleAndLayout: e.styleAndLayoutStart ? e.startTime + e.duration - e.styleAndLayoutStart : 0,
  render: e.renderStart ? e.startTime + e.duration - e.renderStart : 0,
  scripts: (e.scripts || []).map((s) => [s.invoker + ' ' + s.invokerType, s.duration, s.forcedStyleAndLayoutDuration]),
});
const ok = () => {
  const i = document.querySelector('[data-testid="e2ee-indicator"]');
  const c = document.querySelector('[data-testid="security-code"]');
  return !!i && i.getAttribute('data-state') === 'e2ee' && !!c && c.textContent.trim() !== '';
};
if (ok()) return false;
if (B.observer) B.observer.disconnect();
// arguments[0]: hide the page's content from the accept to the lock; the caller
// (arguments[1] false) hides it now, the callee when its accept is clicked.
B.hideOnAccept = arguments[0] && arguments[1];
if (arguments[0] && !arguments[1]) B.hide();
B.marks = []; B.acceptAt = null; B.lock = null; B.code = null; B.lags = []; B.loafs = [];
if (B.loafObserver) B.loafObserver.disconnect();
try {
  B.loafObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) B.loafs.push(loaf(e));
  });
  B.loafObserver.observe({ type: 'long-animation-frame' });
} catch (e) {}
// Main-thread stalls for the next 1.5 s, as in the baseline page.
{
  let last = now();
  const end = last + 1500;
  const tick = () => {
    const t = now();
    const late = t - last - 4;
    if (late > 2) B.lags.push([t, late]);
    last = t;
    if (t < end) setTimeout(tick, 4);
  };
  setTimeout(tick, 4);
}
B.lockP = new Promise((resolve) => {
  B.observer = new MutationObserver(() => {
    if (B.lock === null && ok()) {
      B.lock = now();
      B.code = document.querySelector('[data-testid="security-code"]').textContent.trim();
      B.marks.push(['lock', B.lock]);
      B.observer.disconnect();
      B.unhide();
      resolve(B.lock);
    }
  });
  B.observer.observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
});
return true;
"#;

/// The Shieldcall benchmark with the plain-WebRTC baseline, interleaved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it with `cargo xtask bench call`"]
async fn call_setup_shieldcall_vs_plain_webrtc() -> Result<()> {
    let (calls, profile, ui) = args()?;
    if !ui.is_empty() {
        println!("note: baseline page with ui={ui}");
    }
    let relay = Relay::start()?;
    relay.add_user("alice@example.test", "alice-password-1", false)?;
    relay.add_user("bob@example.test", "bob-password-1", false)?;
    let baseline = BaselineServer::start().await?;
    let driver = Driver::start()?;
    let alice = Browser::open(&driver, "alice").await?;
    let bob = Browser::open(&driver, "bob").await?;

    let budget = Duration::from_secs(120 + 3 * 20 * (calls as u64 + 1));
    let profiler = profile.then(|| Profiler::new(&driver.url));
    let run = run(
        &relay,
        &baseline,
        &alice,
        &bob,
        calls,
        profiler.as_ref(),
        &ui,
        &driver.url,
    );
    let result = tokio::time::timeout(budget, run)
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("bench_call: timed out after {budget:?}")));
    if result.is_err() && std::env::var_os("SHIELDCALL_E2E_ARTIFACTS").is_some() {
        for b in [&alice, &bob] {
            b.save_artifacts("bench_call").await;
        }
    }
    alice.close().await;
    bob.close().await;
    result
}

/// `--calls N` from `SHIELDCALL_BENCH_ARGS` (default 12).
/// `--profile` as well: sample the JavaScript/Wasm CPU profile of both Shieldcall
/// pages during each counted call (through ChromeDriver's CDP endpoint) and print
/// where their main threads spent the time. It slows the pages down, so its run's
/// figures are not the benchmark's.
///
/// `--hide-shieldcall-ui`: from the accept to the lock, the Shieldcall pages'
/// content is `display: none` (the DOM still changes; nothing is laid out or
/// painted). A diagnostic: how much of Shieldcall's time is its page rendering.
///
/// `--baseline-in-shieldcall-page`: the baseline's script runs inside each
/// signed-in Shieldcall page (idle between its own calls; the page's CSP is
/// bypassed through CDP so that it may reach the test's server) instead of in a
/// page of its own. A diagnostic: is the Shieldcall page slow by itself, or only
/// while the client works a call?
///
/// `--bare`: the Shieldcall pages get only the accept listener and the lock
/// observer (no wrapped WebRTC, WebSocket or media calls, so no per-phase marks
/// for Shieldcall): shows that the instrumentation does not slow Shieldcall down.
///
/// `--baseline-cert`: the baseline pages make a fresh ECDSA P-256 certificate
/// per call and pass it in `RTCConfiguration.certificates`, as Shieldcall does
/// (a diagnostic: the cost of the per-call certificate).
///
/// `--baseline-ui app`: lay the baseline page's videos out as the Shieldcall call
/// view does (a diagnostic: how much of the difference is the page's rendering).
fn args() -> Result<(usize, bool, String)> {
    let args = std::env::var("SHIELDCALL_BENCH_ARGS").unwrap_or_default();
    let mut words = args.split_whitespace();
    let mut calls = 12;
    let mut profile = false;
    let mut ui = String::new();
    while let Some(w) = words.next() {
        if w == "--profile" {
            profile = true;
            continue;
        }
        if w == "--baseline-in-shieldcall-page" {
            IN_PAGE.store(true, std::sync::atomic::Ordering::Relaxed);
            continue;
        }
        if w == "--bare" {
            BARE.store(true, std::sync::atomic::Ordering::Relaxed);
            continue;
        }
        if w == "--baseline-cert" {
            BASELINE_CERT.store(true, std::sync::atomic::Ordering::Relaxed);
            continue;
        }
        if w == "--hide-shieldcall-ui" {
            HIDE_UI.store(true, std::sync::atomic::Ordering::Relaxed);
            continue;
        }
        if w == "--baseline-ui" {
            ui = words
                .next()
                .context("--baseline-ui needs a value")?
                .to_string();
            continue;
        }
        let value = match w.strip_prefix("--calls") {
            Some("") => words.next().context("--calls needs a number")?,
            Some(v) if v.starts_with('=') => &v[1..],
            _ => bail!(
                "unknown benchmark option {w:?} (known: --calls N, --profile, --baseline-ui app, --hide-shieldcall-ui, --baseline-cert, --bare, --baseline-in-shieldcall-page)"
            ),
        };
        calls = value
            .parse()
            .with_context(|| format!("--calls {value:?}"))?;
    }
    ensure!(calls >= 1, "--calls must be at least 1");
    if calls < 10 {
        println!("note: {calls} calls per kind; the figures in BENCHMARKS.md use at least 10");
    }
    Ok((calls, profile, ui))
}

/// The three kinds of call, in the order they are interleaved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Shieldcall,
    BaselineRing,
    BaselineAccept,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Shieldcall, Kind::BaselineRing, Kind::BaselineAccept];

    fn label(self) -> &'static str {
        match self {
            Kind::Shieldcall => "Shieldcall: accept → lock and code on both sides",
            Kind::BaselineRing => "Baseline, offer while ringing: accept → connected on both",
            Kind::BaselineAccept => "Baseline, offer after accept: accept → connected on both",
        }
    }
}

/// One measured call: the total and each page's marks, in ms after the accept.
#[derive(Debug)]
struct Sample {
    total_ms: f64,
    /// (side, mark) → ms after accept, first occurrence at or after the accept.
    marks: BTreeMap<(String, String), f64>,
    /// (side, mark) → how many times it happened between the accept and the end.
    counts: BTreeMap<(String, String), f64>,
    /// Every getStats start on each side, ms after accept (Shieldcall only).
    polls: Vec<(String, f64)>,
    /// side → ms by which the page's main thread was late (a 4 ms timer chain)
    /// between the accept and the end of the measurement.
    stalls: BTreeMap<String, f64>,
    /// side → long animation frames (> 50 ms) that started in the measured
    /// interval: (count, total ms, style and layout ms, render ms, script ms by invoker).
    loafs: BTreeMap<String, Loafs>,
}

#[derive(Debug, Default)]
struct Loafs {
    count: f64,
    total: f64,
    style_layout: f64,
    render: f64,
    scripts: BTreeMap<String, f64>,
}

/// The two windows each browser has: Shieldcall and the baseline page.
#[derive(Debug)]
struct Windows {
    shieldcall: WindowHandle,
    baseline: WindowHandle,
}

#[allow(clippy::too_many_arguments)]
async fn run(
    relay: &Relay,
    baseline: &BaselineServer,
    alice: &Browser,
    bob: &Browser,
    calls: usize,
    profiler: Option<&Profiler>,
    ui: &str,
    driver: &str,
) -> Result<()> {
    // Shieldcall in each browser's first window, instrumented before signing in.
    let alice_w = open_windows(alice, relay, baseline, "alice", "caller", ui, driver).await?;
    let bob_w = open_windows(bob, relay, baseline, "bob", "callee", ui, driver).await?;
    let skew_before = clock_skew(alice, bob, &alice_w, &bob_w).await?;

    let mut samples: HashMap<Kind, Vec<Sample>> = HashMap::new();
    let mut id = 0u64;
    for round in 0..=calls {
        for kind in Kind::ALL {
            id += 1;
            let sample = match kind {
                Kind::Shieldcall => {
                    focus(alice, &alice_w.shieldcall).await?;
                    focus(bob, &bob_w.shieldcall).await?;
                    shieldcall_call(alice, bob, profiler.filter(|_| round > 0))
                        .await
                        .with_context(|| format!("Shieldcall call, round {round}"))?
                }
                Kind::BaselineRing | Kind::BaselineAccept => {
                    focus(alice, &alice_w.baseline).await?;
                    focus(bob, &bob_w.baseline).await?;
                    let mode = if kind == Kind::BaselineRing {
                        "ring"
                    } else {
                        "accept"
                    };
                    baseline_call(alice, bob, id, mode)
                        .await
                        .with_context(|| format!("baseline call ({mode}), round {round}"))?
                }
            };
            println!(
                "round {round:>2}{} {:<16} {:>8.1} ms",
                if round == 0 {
                    " (warm-up)"
                } else {
                    "          "
                },
                format!("{kind:?}"),
                sample.total_ms
            );
            if round > 0 {
                samples.entry(kind).or_default().push(sample);
            }
            tokio::time::sleep(SETTLE).await;
        }
    }
    let skew_after = clock_skew(alice, bob, &alice_w, &bob_w).await?;
    if let Some(p) = profiler {
        p.report(calls);
    }
    report(&samples, calls, skew_before, skew_after)
}

/// Signs the browser in to Shieldcall in its first window and opens the baseline
/// page (as `me`) in a second one. Windows, not tabs: both stay visible.
async fn open_windows(
    b: &Browser,
    relay: &Relay,
    baseline: &BaselineServer,
    user: &str,
    me: &str,
    ui: &str,
    driver: &str,
) -> Result<Windows> {
    let shieldcall = b.client.window().await?;
    let in_page = IN_PAGE.load(std::sync::atomic::Ordering::Relaxed);
    if in_page {
        cdp(driver, b, "Page.setBypassCSP", json!({ "enabled": true })).await?;
    }
    let bare = BARE.load(std::sync::atomic::Ordering::Relaxed);
    if bare {
        // Without the harness's recording of peer connections either.
        b.client.goto(&format!("{}/", relay.url)).await?;
        b.wait_attr("#app", "data-state", "ready").await?;
    } else {
        b.goto(&format!("{}/", relay.url)).await?;
    }
    b.client.execute(INSTRUMENT, vec![json!(bare)]).await?;
    b.fill("login-user", &format!("{user}@example.test"))
        .await?;
    b.fill("login-password", &format!("{user}-password-1"))
        .await?;
    b.click("login-submit").await?;
    b.wait_visible("contacts")
        .await
        .with_context(|| format!("{user} signing in"))?;

    if in_page {
        let page = std::fs::read_to_string(root().join("tests/baseline.html"))?;
        let script = page
            .split_once("<script>")
            .and_then(|(_, rest)| rest.split_once("</script>"))
            .map(|(script, _)| script)
            .context("no script in tests/baseline.html")?;
        let setup = format!(
            "window.__baselineBase = arguments[0]; window.__baselineQuery = arguments[1];\
             const d = document.createElement('div');\
             d.innerHTML = '<video id=\"remote\" autoplay playsinline></video><video id=\"local\" autoplay muted playsinline></video>';\
             document.body.appendChild(d);\n{script}\nreturn true;"
        );
        b.client
            .execute(
                &setup,
                vec![json!(baseline.url), json!(format!("?me={me}&ui={ui}"))],
            )
            .await?;
        return Ok(Windows {
            baseline: shieldcall.clone(),
            shieldcall,
        });
    }
    let w = b.client.new_window(false).await?;
    b.client.switch_to_window(w.handle.clone()).await?;
    b.client
        .goto(&format!(
            "{}/baseline.html?me={me}&ui={ui}&cert={}",
            baseline.url,
            if BASELINE_CERT.load(std::sync::atomic::Ordering::Relaxed) {
                "1"
            } else {
                "0"
            }
        ))
        .await?;
    b.wait_attr("html", "data-ready", "true")
        .await
        .context("the baseline page did not start")?;
    Ok(Windows {
        shieldcall,
        baseline: w.handle,
    })
}

async fn focus(b: &Browser, w: &WindowHandle) -> Result<()> {
    b.client.switch_to_window(w.clone()).await?;
    Ok(())
}

/// `Date.now()` minus the page's high-resolution clock, in each of the four
/// pages: the instants of different pages are comparable to within these.
async fn clock_skew(
    alice: &Browser,
    bob: &Browser,
    alice_w: &Windows,
    bob_w: &Windows,
) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for (b, w) in [(alice, alice_w), (bob, bob_w)] {
        for h in [&w.shieldcall, &w.baseline] {
            focus(b, h).await?;
            let v = b
                .client
                .execute(
                    "const a = []; for (let i = 0; i < 5; i++) a.push(Date.now() - (performance.timeOrigin + performance.now())); return a.reduce((x, y) => x + y) / a.length;",
                    vec![],
                )
                .await?;
            out.push(v.as_f64().context("clock sample")?);
        }
    }
    Ok(out)
}

async fn shieldcall_call(
    alice: &Browser,
    bob: &Browser,
    profiler: Option<&Profiler>,
) -> Result<Sample> {
    alice.click("call-bob@example.test").await?;
    bob.wait_visible("incoming-accept").await?;
    tokio::time::sleep(RING).await;
    for b in [alice, bob] {
        let hide = HIDE_UI.load(std::sync::atomic::Ordering::Relaxed);
        let armed = b
            .client
            .execute(ARM_LOCK, vec![json!(hide), json!(b.name == "bob")])
            .await?;
        ensure!(
            armed.as_bool() == Some(true),
            "{}: a lock was already shown before the accept",
            b.name
        );
    }
    if let Some(p) = profiler {
        for b in [alice, bob] {
            p.start(b).await?;
        }
    }
    bob.click("incoming-accept").await?;
    let wait = |b: &Browser| {
        let client = b.client.clone();
        let name = b.name.clone();
        async move {
            let v = tokio::time::timeout(
                CALL_TIMEOUT,
                client.execute_async(
                    "const done = arguments[arguments.length - 1]; window.__bench.lockP.then(done);",
                    vec![],
                ),
            )
            .await
            .with_context(|| format!("{name}: no lock and code within {CALL_TIMEOUT:?}"))?
            .with_context(|| format!("{name}: no lock and code"))?;
            v.as_f64()
                .with_context(|| format!("{name}: lock instant {v}"))
        }
    };
    let (a_lock, b_lock) = tokio::join!(wait(alice), wait(bob));
    let (a_lock, b_lock) = (a_lock?, b_lock?);
    if let Some(p) = profiler {
        p.stop(alice, "caller").await?;
        p.stop(bob, "callee").await?;
    }

    let read = "const B = window.__bench; return { acceptAt: B.acceptAt, code: B.code, marks: B.marks, lags: B.lags, loafs: B.loafs, visibility: document.visibilityState };";
    let a = alice.client.execute(read, vec![]).await?;
    let b = bob.client.execute(read, vec![]).await?;
    let accept_at = b["acceptAt"]
        .as_f64()
        .context("bob's page saw no click on incoming-accept")?;
    let (code_a, code_b) = (
        a["code"].as_str().unwrap_or_default(),
        b["code"].as_str().unwrap_or_default(),
    );
    ensure!(is_code(code_a), "alice shows {code_a:?}");
    ensure!(
        code_a == code_b,
        "the codes differ: alice {code_a:?}, bob {code_b:?}"
    );
    for (name, v) in [("alice", &a), ("bob", &b)] {
        ensure!(
            v["visibility"] == "visible",
            "{name}'s Shieldcall page is {} (throttled timers would skew the figure)",
            v["visibility"]
        );
    }
    let mut sample = Sample {
        total_ms: a_lock.max(b_lock) - accept_at,
        marks: BTreeMap::new(),
        counts: BTreeMap::new(),
        polls: Vec::new(),
        stalls: BTreeMap::new(),
        loafs: BTreeMap::new(),
    };
    add_marks(&mut sample, "caller", &a["marks"], accept_at);
    add_marks(&mut sample, "callee", &b["marks"], accept_at);
    add_stalls(&mut sample, "caller", &a["lags"], accept_at);
    add_stalls(&mut sample, "callee", &b["lags"], accept_at);
    add_loafs(&mut sample, "caller", &a["loafs"], accept_at);
    add_loafs(&mut sample, "callee", &b["loafs"], accept_at);

    // Hang up and close the ended call view on both sides.
    alice.click("hangup").await?;
    for b in [alice, bob] {
        b.wait_testid_attr("call-state", "data-state", "ended")
            .await?;
        b.click("call-close").await?;
    }
    for b in [alice, bob] {
        b.wait_js(
            "the call view closed",
            "const e = document.querySelector('[data-testid=\"call\"]'); return !e || !!e.closest('[hidden]');",
            vec![],
        )
        .await?;
    }
    Ok(sample)
}

async fn baseline_call(caller: &Browser, callee: &Browser, id: u64, mode: &str) -> Result<Sample> {
    caller
        .client
        .execute(
            "return window.bench.dial(arguments[0], arguments[1]);",
            vec![json!(id), json!(mode)],
        )
        .await?;
    callee
        .wait_js(
            "the baseline call ringing",
            "const c = window.bench.call(); return !!c && c.id === arguments[0] && c.ringing;",
            vec![json!(id)],
        )
        .await?;
    tokio::time::sleep(RING).await;
    for b in [caller, callee] {
        b.client
            .execute("return window.bench.probe();", vec![])
            .await?;
    }
    let accept_at = callee
        .client
        .execute("return window.bench.accept();", vec![])
        .await?
        .as_f64()
        .context("accept() returned no instant")?;
    let wait = |b: &Browser| {
        let client = b.client.clone();
        let name = b.name.clone();
        async move {
            let v = tokio::time::timeout(
                CALL_TIMEOUT,
                client.execute_async(
                    "window.bench.whenConnected(arguments[arguments.length - 1]);",
                    vec![],
                ),
            )
            .await
            .with_context(|| format!("{name}: baseline not connected within {CALL_TIMEOUT:?}"))?
            .with_context(|| format!("{name}: baseline not connected"))?;
            Ok::<Value, anyhow::Error>(v)
        }
    };
    let (a_conn, b_conn) = tokio::join!(wait(caller), wait(callee));
    let (a_conn, b_conn) = (a_conn?, b_conn?);
    let a = caller
        .client
        .execute("return window.bench.result();", vec![])
        .await?;
    let b = callee
        .client
        .execute("return window.bench.result();", vec![])
        .await?;
    for (name, conn, v) in [("caller", &a_conn, &a), ("callee", &b_conn, &b)] {
        ensure!(
            conn.as_f64().is_some() && v["state"] == "connected",
            "baseline {name} did not connect: state {}, error {}",
            v["state"],
            v["error"]
        );
        ensure!(
            v["visibility"] == "visible",
            "the baseline {name} page is {}",
            v["visibility"]
        );
    }
    let (a_conn, b_conn) = (
        a_conn.as_f64().unwrap_or(0.0),
        b_conn.as_f64().unwrap_or(0.0),
    );
    let mut sample = Sample {
        total_ms: a_conn.max(b_conn) - accept_at,
        marks: BTreeMap::new(),
        counts: BTreeMap::new(),
        polls: Vec::new(),
        stalls: BTreeMap::new(),
        loafs: BTreeMap::new(),
    };
    add_marks(&mut sample, "caller", &a["marks"], accept_at);
    add_marks(&mut sample, "callee", &b["marks"], accept_at);
    add_stalls(&mut sample, "caller", &a["lags"], accept_at);
    add_stalls(&mut sample, "callee", &b["lags"], accept_at);
    add_loafs(&mut sample, "caller", &a["loafs"], accept_at);
    add_loafs(&mut sample, "callee", &b["loafs"], accept_at);
    for b in [caller, callee] {
        b.client
            .execute("return window.bench.hangup();", vec![])
            .await?;
    }
    Ok(sample)
}

/// Keeps the first occurrence of each mark at or after the accept, relative to it,
/// and every getStats start.
fn add_marks(sample: &mut Sample, side: &str, marks: &Value, accept_at: f64) {
    for m in marks.as_array().into_iter().flatten() {
        let (Some(name), Some(t)) = (m[0].as_str(), m[1].as_f64()) else {
            continue;
        };
        // Half a millisecond of slack for the two browsers' clocks.
        let dt = t - accept_at;
        if dt < -0.5 {
            continue;
        }
        if name == "getStats:start" {
            sample.polls.push((side.to_string(), dt));
        }
        if dt <= sample.total_ms {
            *sample
                .counts
                .entry((side.to_string(), name.to_string()))
                .or_default() += 1.0;
        }
        sample
            .marks
            .entry((side.to_string(), name.to_string()))
            .or_insert(dt);
    }
}

/// Adds up how late the page's timer ticks were within the measured interval.
fn add_stalls(sample: &mut Sample, side: &str, lags: &Value, accept_at: f64) {
    let total: f64 = lags
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| Some((l[0].as_f64()? - accept_at, l[1].as_f64()?)))
        .filter(|(t, _)| *t >= 0.0 && *t <= sample.total_ms)
        .map(|(_, late)| late)
        .sum();
    sample.stalls.insert(side.to_string(), total);
}

/// Sums the long animation frames that started within the measured interval.
fn add_loafs(sample: &mut Sample, side: &str, loafs: &Value, accept_at: f64) {
    let mut sum = Loafs::default();
    for l in loafs.as_array().into_iter().flatten() {
        let t = l["start"].as_f64().unwrap_or(f64::NAN) - accept_at;
        if !(t >= -50.0 && t <= sample.total_ms) {
            continue;
        }
        sum.count += 1.0;
        sum.total += l["duration"].as_f64().unwrap_or(0.0);
        sum.style_layout += l["styleAndLayout"].as_f64().unwrap_or(0.0);
        sum.render += l["render"].as_f64().unwrap_or(0.0);
        for sc in l["scripts"].as_array().into_iter().flatten() {
            let name = sc[0].as_str().unwrap_or_default().to_string();
            *sum.scripts.entry(name).or_default() += sc[1].as_f64().unwrap_or(0.0);
        }
    }
    sample.loafs.insert(side.to_string(), sum);
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn median(v: &[f64]) -> f64 {
    let v = sorted(v.to_vec());
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Nearest-rank 90th percentile.
fn p90(v: &[f64]) -> f64 {
    let v = sorted(v.to_vec());
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((0.9 * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn report(
    samples: &HashMap<Kind, Vec<Sample>>,
    calls: usize,
    skew_before: Vec<f64>,
    skew_after: Vec<f64>,
) -> Result<()> {
    let totals = |k: Kind| -> Vec<f64> {
        samples
            .get(&k)
            .map(|v| v.iter().map(|s| s.total_ms).collect())
            .unwrap_or_default()
    };
    for k in Kind::ALL {
        ensure!(
            totals(k).len() == calls,
            "{k:?}: {} of {calls} calls measured",
            totals(k).len()
        );
    }

    println!("\n=== Per-phase timeline (median ms after the accept, first occurrence) ===");
    for k in Kind::ALL {
        println!("\n{}:", k.label());
        let mut keys: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
        for s in samples.get(&k).into_iter().flatten() {
            for (key, dt) in &s.marks {
                keys.entry(key.clone()).or_default().push(*dt);
            }
        }
        let count = |side: &str, name: &str| -> f64 {
            let v: Vec<f64> = samples
                .get(&k)
                .into_iter()
                .flatten()
                .filter_map(|s| s.counts.get(&(side.to_string(), name.to_string())).copied())
                .collect();
            median(&v)
        };
        let mut rows: Vec<(f64, usize, String, String)> = keys
            .into_iter()
            .map(|((side, name), v)| (median(&v), v.len(), side, name))
            .collect();
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (t, n, side, name) in rows {
            println!(
                "  {t:>8.1}  {side:<6} {name:<28} (in {n} calls; median {} times during setup)",
                count(&side, &name)
            );
        }
        // Durations of each operation (first occurrence), median over the calls.
        let mut ops: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
        for s in samples.get(&k).into_iter().flatten() {
            for ((side, name), start) in &s.marks {
                let Some(op) = name.strip_suffix(":start") else {
                    continue;
                };
                if let Some(end) = s.marks.get(&(side.clone(), format!("{op}:end"))) {
                    ops.entry((side.clone(), op.to_string()))
                        .or_default()
                        .push(end - start);
                }
            }
        }
        let ops: Vec<String> = ops
            .iter()
            .map(|((side, op), v)| format!("{side} {op} {:.1}", median(v)))
            .collect();
        println!("  durations (ms): {}", ops.join("; "));
    }

    println!("\n=== Main-thread stalls during setup (median ms of timer lateness) ===");
    for k in Kind::ALL {
        let side = |name: &str| -> Vec<f64> {
            samples
                .get(&k)
                .into_iter()
                .flatten()
                .filter_map(|s| s.stalls.get(name).copied())
                .collect()
        };
        println!(
            "  {:<16} caller {:>6.1}  callee {:>6.1}",
            format!("{k:?}"),
            median(&side("caller")),
            median(&side("callee"))
        );
    }

    println!("\n=== Long animation frames (> 50 ms) during setup: mean per call ===");
    for k in Kind::ALL {
        for name in ["caller", "callee"] {
            let all: Vec<&Loafs> = samples
                .get(&k)
                .into_iter()
                .flatten()
                .filter_map(|s| s.loafs.get(name))
                .collect();
            let n = all.len().max(1) as f64;
            let mean = |f: fn(&Loafs) -> f64| all.iter().map(|l| f(l)).sum::<f64>() / n;
            let mut scripts: BTreeMap<&str, f64> = BTreeMap::new();
            for l in &all {
                for (s, ms) in &l.scripts {
                    *scripts.entry(s.as_str()).or_default() += ms / n;
                }
            }
            let mut scripts: Vec<(&str, f64)> = scripts.into_iter().collect();
            scripts.sort_by(|a, b| b.1.total_cmp(&a.1));
            let top: Vec<String> = scripts
                .iter()
                .take(4)
                .map(|(s, ms)| format!("{s} {ms:.1}"))
                .collect();
            println!(
                "  {:<16} {name}: {:.1} frames, {:.1} ms, of which render {:.1} (style+layout {:.1}); scripts: {}",
                format!("{k:?}"),
                mean(|l| l.count),
                mean(|l| l.total),
                mean(|l| l.render),
                mean(|l| l.style_layout),
                top.join(", ")
            );
        }
    }

    // Shieldcall: where the time after "connected" goes (the DTLS check).
    let shield = samples
        .get(&Kind::Shieldcall)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let phase = |side: &str, from: &str, to: &str| -> Vec<f64> {
        shield
            .iter()
            .filter_map(|s| {
                let a = s.marks.get(&(side.to_string(), from.to_string()))?;
                let b = s.marks.get(&(side.to_string(), to.to_string()))?;
                Some(b - a)
            })
            .collect()
    };
    let connected_both: Vec<f64> = shield
        .iter()
        .filter_map(|s| {
            let a = s.marks.get(&("caller".into(), "pc:connected".into()))?;
            let b = s.marks.get(&("callee".into(), "pc:connected".into()))?;
            Some(a.max(*b))
        })
        .collect();
    let polls_after_connected = |side: &str| -> Vec<f64> {
        shield
            .iter()
            .filter_map(|s| {
                let c = s.marks.get(&(side.to_string(), "pc:connected".into()))?;
                let l = s.marks.get(&(side.to_string(), "lock".into()))?;
                Some(
                    s.polls
                        .iter()
                        .filter(|(sd, t)| sd == side && t >= c && t <= l)
                        .count() as f64,
                )
            })
            .collect()
    };
    println!(
        "\n=== Shieldcall phases (median over {} calls) ===",
        shield.len()
    );
    println!(
        "  accept → connectionState connected on both: {:.1} ms",
        median(&connected_both)
    );
    for side in ["caller", "callee"] {
        println!(
            "  {side}: connected → lock {:.1} ms (getStats calls in between: {:.1}); cert {:.1} ms; getUserMedia {:.1} ms",
            median(&phase(side, "pc:connected", "lock")),
            median(&polls_after_connected(side)),
            median(&phase(side, "cert:start", "cert:end")),
            median(&phase(side, "gum:start", "gum:end")),
        );
    }
    println!(
        "  relay hop accept → caller: {:.1} ms; offer → callee: {:.1} ms (cross-browser)",
        median(&cross(
            shield,
            ("callee", "send:accept"),
            ("caller", "recv:accepted")
        )),
        median(&cross(
            shield,
            ("caller", "send:offer"),
            ("callee", "recv:offer")
        )),
    );
    println!(
        "  clock skew (Date.now() − timeOrigin − now(), ms) per page [alice sc, alice base, bob sc, bob base]: before {skew_before:.2?}, after {skew_after:.2?}"
    );

    let s = totals(Kind::Shieldcall);
    let r = totals(Kind::BaselineRing);
    let a = totals(Kind::BaselineAccept);
    println!("\n=== Call setup (cargo xtask bench call) ===\n");
    println!("| measure | n | median | p90 |");
    println!("|---|---|---|---|");
    for (k, v) in [
        (Kind::Shieldcall, &s),
        (Kind::BaselineRing, &r),
        (Kind::BaselineAccept, &a),
    ] {
        println!(
            "| {} | {} | {:.0} ms | {:.0} ms |",
            k.label(),
            v.len(),
            median(v),
            p90(v)
        );
    }
    println!(
        "\nratio median(Shieldcall) / median(baseline, offer while ringing) = {:.2} (target ≤ 1.1)",
        median(&s) / median(&r)
    );
    println!(
        "ratio median(Shieldcall) / median(baseline, offer after accept) = {:.2}",
        median(&s) / median(&a)
    );
    for (k, v) in [
        (Kind::Shieldcall, &s),
        (Kind::BaselineRing, &r),
        (Kind::BaselineAccept, &a),
    ] {
        let all: Vec<String> = v.iter().map(|x| format!("{x:.0}")).collect();
        println!("{k:?} samples (ms): {}", all.join(" "));
    }
    Ok(())
}

/// Per call, `to` on one side minus `from` on the other.
fn cross(samples: &[Sample], from: (&str, &str), to: (&str, &str)) -> Vec<f64> {
    samples
        .iter()
        .filter_map(|s| {
            let a = s.marks.get(&(from.0.to_string(), from.1.to_string()))?;
            let b = s.marks.get(&(to.0.to_string(), to.1.to_string()))?;
            Some(b - a)
        })
        .collect()
}

/// The baseline page and its signalling: `GET /baseline.html`, `POST /send?to=X`
/// (queues the body for X), `GET /recv?me=X` (long-polls X's queue, a JSON array).
#[derive(Debug)]
struct BaselineServer {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Mailboxes {
    queues: Mutex<HashMap<String, Vec<String>>>,
    notify: Notify,
}

impl Mailboxes {
    fn push(&self, to: &str, msg: String) {
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(to.to_string())
            .or_default()
            .push(msg);
        self.notify.notify_waiters();
    }

    fn take(&self, me: &str) -> Vec<String> {
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(me)
            .map(std::mem::take)
            .unwrap_or_default()
    }

    async fn recv(&self, me: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let list = self.take(me);
            if !list.is_empty() {
                return format!("[{}]", list.join(","));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return "[]".to_string();
            }
        }
    }
}

impl BaselineServer {
    async fn start() -> Result<Self> {
        let page = std::fs::read_to_string(root().join("tests/baseline.html"))
            .context("reading tests/baseline.html")?;
        let page = Arc::new(page);
        let boxes = Arc::new(Mailboxes::default());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (page, boxes) = (page.clone(), boxes.clone());
                tokio::spawn(async move {
                    if let Err(e) = serve(stream, &page, &boxes).await {
                        eprintln!("baseline server: {e:#}");
                    }
                });
            }
        });
        Ok(Self { url, task })
    }
}

impl Drop for BaselineServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One HTTP/1.1 request, answered with `Connection: close`.
async fn serve(mut s: TcpStream, page: &str, boxes: &Mailboxes) -> Result<()> {
    s.set_nodelay(true)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        ensure!(buf.len() < 1 << 20, "request head too long");
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut request = lines.next().unwrap_or_default().split(' ');
    let (method, target) = (
        request.next().unwrap_or_default(),
        request.next().unwrap_or_default(),
    );
    let length: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = s.read(&mut chunk).await?;
        ensure!(n > 0, "request body cut short");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let param = |key: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
            .unwrap_or_default()
    };
    let (status, kind, reply) = match (method, path) {
        ("GET", "/baseline.html") => ("200 OK", "text/html; charset=utf-8", page.to_string()),
        ("POST", "/send") => {
            boxes.push(&param("to"), body);
            ("200 OK", "application/json", "{}".to_string())
        }
        ("GET", "/recv") => ("200 OK", "application/json", boxes.recv(&param("me")).await),
        _ => ("404 Not Found", "text/plain", "not found".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nAccess-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n",
        reply.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(reply.as_bytes()).await?;
    s.shutdown().await?;
    Ok(())
}

/// CPU profiles of the Shieldcall pages through ChromeDriver's CDP endpoint
/// (`POST /session/{id}/goog/cdp/execute`), summed by function over the calls.
#[derive(Debug)]
struct Profiler {
    driver: String,
    /// (side, function) → ms of self time.
    self_ms: Mutex<BTreeMap<(String, String), f64>>,
}

impl Profiler {
    fn new(driver: &str) -> Self {
        Self {
            driver: driver.trim_start_matches("http://").to_string(),
            self_ms: Mutex::new(BTreeMap::new()),
        }
    }

    async fn cdp(&self, b: &Browser, cmd: &str, params: Value) -> Result<Value> {
        cdp(&self.driver, b, cmd, params).await
    }

    async fn start(&self, b: &Browser) -> Result<()> {
        self.cdp(b, "Profiler.enable", json!({})).await?;
        self.cdp(
            b,
            "Profiler.setSamplingInterval",
            json!({ "interval": 200 }),
        )
        .await?;
        self.cdp(b, "Profiler.start", json!({})).await?;
        Ok(())
    }

    async fn stop(&self, b: &Browser, side: &str) -> Result<()> {
        let v = self.cdp(b, "Profiler.stop", json!({})).await?;
        self.cdp(b, "Profiler.disable", json!({})).await?;
        let profile = &v["profile"];
        // Self time per node: its samples times the mean interval.
        let samples = profile["samples"].as_array().map(Vec::len).unwrap_or(0);
        let span = profile["endTime"].as_f64().unwrap_or(0.0)
            - profile["startTime"].as_f64().unwrap_or(0.0);
        let per_sample_ms = if samples > 0 {
            span / samples as f64 / 1000.0
        } else {
            0.0
        };
        let mut map = self.self_ms.lock().unwrap_or_else(|e| e.into_inner());
        for node in profile["nodes"].as_array().into_iter().flatten() {
            let hits = node["hitCount"].as_f64().unwrap_or(0.0);
            if hits == 0.0 {
                continue;
            }
            let f = &node["callFrame"];
            let url = f["url"].as_str().unwrap_or_default();
            let file = url.rsplit('/').next().unwrap_or_default();
            let name = match f["functionName"].as_str().unwrap_or_default() {
                "" => format!("(anonymous) {file}:{}", f["lineNumber"]),
                n if file.is_empty() => n.to_string(),
                n => format!("{n} {file}"),
            };
            *map.entry((side.to_string(), name)).or_default() += hits * per_sample_ms;
        }
        Ok(())
    }

    fn report(&self, calls: usize) {
        let map = self.self_ms.lock().unwrap_or_else(|e| e.into_inner());
        for side in ["caller", "callee"] {
            let mut rows: Vec<(&String, f64)> = map
                .iter()
                .filter(|((s, _), _)| s == side)
                .map(|((_, f), ms)| (f, *ms / calls as f64))
                .collect();
            rows.sort_by(|a, b| b.1.total_cmp(&a.1));
            println!(
                "\n=== {side} Shieldcall page, CPU profile: mean ms of self time per call ==="
            );
            for (f, ms) in rows.into_iter().take(30) {
                println!("  {ms:>7.2}  {f}");
            }
        }
    }
}

/// One CDP command on the browser's current window, through ChromeDriver
/// (`POST /session/{id}/goog/cdp/execute`).
async fn cdp(driver: &str, b: &Browser, cmd: &str, params: Value) -> Result<Value> {
    let driver = driver.trim_start_matches("http://");
    let session = b
        .client
        .session_id()
        .await?
        .context("no WebDriver session")?;
    let body = json!({ "cmd": cmd, "params": params }).to_string();
    let mut s = TcpStream::connect(&driver).await?;
    let req = format!(
        "POST /session/{session}/goog/cdp/execute HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        driver,
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    // Read the head, then exactly Content-Length bytes (ChromeDriver may keep
    // the connection open).
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .context("ChromeDriver's answer has no Content-Length")?;
                if buf.len() >= end + 4 + len {
                    return Ok::<String, anyhow::Error>(
                        String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned(),
                    );
                }
            }
            let n = s.read(&mut chunk).await?;
            ensure!(n > 0, "ChromeDriver closed the connection early");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    let json = tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .with_context(|| format!("{cmd}: no answer from ChromeDriver"))??;
    let v: Value = serde_json::from_str(&json).with_context(|| format!("{cmd}: {json:.200}"))?;
    Ok(v["value"].clone())
}
