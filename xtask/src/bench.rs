//! `cargo xtask bench relay|call`: the benchmarks whose numbers go into
//! `BENCHMARKS.md`. Each runs release builds; none is a timed unit test.

use anyhow::{Result, bail};

use crate::{cargo, check, dist, release_relay, tools};

/// Dispatches `bench <what> [ARGS]`.
pub fn bench(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("relay") => relay(&args[1..]),
        Some("call") => call(&args[1..]),
        _ => bail!("usage: cargo xtask bench relay|call [ARGS]"),
    }
}

/// The relay benchmark: real WebSocket clients against the release relay.
fn relay(extra: &[String]) -> Result<()> {
    let relay = release_relay()?;
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--release",
        "--package",
        "shieldcall-relay",
        "--example",
        "relay_bench",
        "--",
        "--relay",
    ])
    .arg(relay)
    .args(extra);
    check(&mut cmd, "relay benchmark")
}

/// The call-setup benchmark: Shieldcall calls and a plain-WebRTC baseline in the
/// same browsers, in the same run.
fn call(extra: &[String]) -> Result<()> {
    let chromedriver = tools::ensure_chromium()?;
    dist::dist()?;
    let relay = release_relay()?;
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--release",
        "--package",
        "shieldcall-e2e",
        "--test",
        "bench_call",
        "--",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("SHIELDCALL_BIN", relay)
    .env("CHROMEDRIVER", chromedriver)
    .env("SHIELDCALL_BENCH_ARGS", extra.join(" "));
    check(&mut cmd, "call-setup benchmark")
}
