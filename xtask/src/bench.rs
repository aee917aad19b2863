//! `cargo xtask bench relay|call|media|captions|bus`: the benchmarks whose numbers go into
//! `BENCHMARKS.md`. Each runs release builds; none is a timed unit test.

use anyhow::{Result, bail};

use crate::{cargo, check, dist, release_relay, tools};

/// Dispatches `bench <what> [ARGS]`.
pub fn bench(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("relay") => relay(&args[1..]),
        Some("call") => call(&args[1..]),
        Some("media") => media(&args[1..]),
        Some("captions") => captions(&args[1..]),
        Some("bus") => bus(&args[1..]),
        _ => bail!("usage: cargo xtask bench relay|call|media|captions|bus [ARGS]"),
    }
}

/// The relay benchmark: real WebSocket clients against the release relay. With
/// `--postgres`, a PostgreSQL server (fsync on) is started for the run and the
/// benchmark compares the embedded store with it side by side; with `--nodes
/// 2`, also a nats-server, and it compares the embedded relay with the cluster
/// configuration on one node, on two nodes with calls inside one, and on two
/// nodes with every call across.
fn relay(extra: &[String]) -> Result<()> {
    let relay = release_relay()?;
    // `--nodes 2`: the cluster configurations beside the embedded one, on a
    // PostgreSQL server and a nats-server started for the run.
    let nodes = extra.windows(2).any(|w| w[0] == "--nodes" && w[1] == "2");
    let postgres = nodes || extra.iter().any(|a| a == "--postgres");
    let mut extra: Vec<&String> = extra.iter().filter(|a| *a != "--postgres").collect();
    if let Some(i) = extra.iter().position(|a| *a == "--nodes") {
        extra.drain(i..(i + 2).min(extra.len()));
    }
    let server = if postgres {
        Some(crate::pg::TestPostgres::start_with(true)?)
    } else {
        None
    };
    let mut cmd = relay_example("relay_bench", &relay);
    cmd.args(extra);
    if let Some(server) = &server {
        cmd.arg("--database-url")
            .arg(server.create_database("bench")?);
    }
    if nodes {
        cmd.arg("--nats").arg(tools::ensure_nats()?);
    }
    check(&mut cmd, "relay benchmark")
}

/// `cargo run --release` of the relay's example `name`, given the release
/// relay to start (`--relay`); the caller adds its flags.
fn relay_example(name: &str, relay: &std::path::Path) -> std::process::Command {
    let mut cmd = example(name);
    cmd.arg("--relay").arg(relay);
    cmd
}

/// `cargo run --release` of the relay's example `name`, before its flags.
fn example(name: &str) -> std::process::Command {
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--release",
        "--package",
        "shieldcall-relay",
        "--example",
        name,
        "--",
    ]);
    cmd
}

/// The media benchmark: what recording costs the release relay per recorded
/// call, against the same calls not recorded, in one run.
fn media(extra: &[String]) -> Result<()> {
    let relay = release_relay()?;
    let mut cmd = relay_example("media_bench", &relay);
    cmd.args(extra);
    check(&mut cmd, "media benchmark")
}

/// The captions benchmark: caption latency after speech, and what captions
/// cost the release relay and its recogniser per captioned call.
fn captions(extra: &[String]) -> Result<()> {
    let relay = release_relay()?;
    let python = tools::ensure_captions()?;
    let mut cmd = relay_example("captions_bench", &relay);
    cmd.args(extra).env("SHIELDCALL_CAPTIONS_PYTHON", python);
    check(&mut cmd, "captions benchmark")
}

/// The bus benchmark: one hop between relay nodes over NATS, against plain
/// TCP on loopback, side by side.
fn bus(extra: &[String]) -> Result<()> {
    let mut cmd = example("bus_bench");
    cmd.arg("--nats").arg(tools::ensure_nats()?).args(extra);
    check(&mut cmd, "bus benchmark")
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
