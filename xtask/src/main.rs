//! `cargo xtask`: the project's one entry point for building, running, testing and
//! benchmarking Shieldcall.
//!
//! - `cargo xtask run [-- ARGS]`: build the browser bundle and the relay, then run
//!   `shieldcall serve` (default http://127.0.0.1:8080) on embedded defaults.
//! - `cargo xtask dist`: build the browser bundle into `www/pkg/` without serving.
//! - `cargo xtask test`: formatting, clippy, native tests, the browser tests in
//!   headless Chromium, and the end-to-end tests (Chromium and Firefox), with a
//!   throwaway PostgreSQL server for the tests of the PostgreSQL store, and
//!   `nats-server` for the tests of the bus between relay nodes.
//! - `cargo xtask wasm-test-runner ...`: the `wasm-bindgen-test-runner`, used by
//!   `cargo test --target wasm32-unknown-unknown` (set as the target's runner).
//!
//! Everything it needs is either a crate in `Cargo.lock` (wasm-bindgen's CLI code,
//! so its version always equals the `wasm-bindgen` the client links) or a Debian
//! package (Chromium, Firefox ESR, PostgreSQL, NATS) / rustup target that it installs when it runs as root, and otherwise
//! names the exact command to run.

mod bench;
mod dist;
mod pg;
mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    match task.as_str() {
        "run" => run(&rest),
        "dist" => dist::dist().map(|_| ()),
        "test" => test(),
        "e2e" => {
            let chromedriver = tools::ensure_chromium()?;
            let geckodriver = tools::ensure_firefox()?;
            let postgres = pg::TestPostgres::start()?;
            e2e(
                &chromedriver,
                &geckodriver,
                rest.first().map(String::as_str),
                Some(&postgres.url),
                true,
            )
        }
        "bench" => bench::bench(&rest),
        "wasm-test-runner" => {
            let argv = std::iter::once("wasm-bindgen-test-runner".to_string()).chain(rest);
            wasm_bindgen_cli::wasm_bindgen_test_runner::run_cli_with_args(argv)
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 run [-- ARGS]   build the client and relay, run `shieldcall serve ARGS`\n  \
                 dist            build the browser bundle into www/pkg\n  \
                 test            fmt, clippy, rustdoc, native tests, browser tests, end-to-end tests\n  \
                 e2e [FILTER]    only the end-to-end tests (keeps logs and screenshots of failures in target/e2e/)\n  \
                 bench relay [--postgres]  relay benchmark (idle session memory, forward latency, call setups);\n                  \
                 with --postgres also on PostgreSQL, side by side\n  \
                 bench call      call-setup benchmark in headless Chromium against a plain WebRTC baseline\n  \
                 bench media     what recording costs the relay per recorded call\n  \
                 bench captions  caption latency after speech, and what a captioned call costs the relay"
            );
            if task.is_empty() || task == "help" || task == "--help" {
                Ok(())
            } else {
                bail!("unknown command {task:?}")
            }
        }
    }
}

/// The workspace root (the parent of this crate's directory).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `cargo` as invoked by the user (respects `$CARGO`).
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Runs `cmd`, failing with its description when it does not succeed.
pub fn check(cmd: &mut Command, what: &str) -> Result<()> {
    eprintln!("xtask: {what}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start: {what}"))?;
    if !status.success() {
        bail!("failed: {what} ({status})");
    }
    Ok(())
}

fn run(args: &[String]) -> Result<()> {
    dist::dist()?;
    let args: Vec<&String> = args.iter().skip_while(|a| *a == "--").collect();
    let mut cmd = cargo();
    // Live captions when PocketSphinx can be had; the relay runs without them
    // (and says so to whoever asks) when it cannot.
    if std::env::var_os("SHIELDCALL_CAPTIONS_PYTHON").is_none() {
        match tools::ensure_captions() {
            Ok(python) => {
                cmd.env("SHIELDCALL_CAPTIONS_PYTHON", python);
            }
            Err(e) => eprintln!("xtask: live captions are off: {e:#}"),
        }
    }
    cmd.args([
        "run",
        "--release",
        "--package",
        "shieldcall-relay",
        "--bin",
        "shieldcall",
        "--",
        "serve",
    ])
    .args(args);
    check(&mut cmd, "shieldcall serve")
}

fn test() -> Result<()> {
    tools::ensure_wasm_target()?;
    let chromedriver = tools::ensure_chromium()?;
    let geckodriver = tools::ensure_firefox()?;
    // The speech recogniser of live captions, for the relay's tests and the
    // browser tests' relays.
    let captions = tools::ensure_captions()?;
    check(
        cargo().args(["fmt", "--all", "--check"]),
        "cargo fmt --check",
    )?;
    check(
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
        "cargo clippy --all-targets -- -D warnings",
    )?;
    check(
        cargo().args([
            "clippy",
            "--package",
            "shieldcall-web",
            "--target",
            "wasm32-unknown-unknown",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
        "cargo clippy (wasm32) -- -D warnings",
    )?;
    // Alone, so that `shieldcall-web` is also checked without its `app` feature.
    check(
        cargo().args([
            "clippy",
            "--package",
            "shieldcall-admin",
            "--target",
            "wasm32-unknown-unknown",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
        "cargo clippy (wasm32, admin bundle) -- -D warnings",
    )?;
    // The API docs are part of the product: no broken or private links.
    check(
        cargo()
            .args(["doc", "--no-deps", "--workspace"])
            .env("RUSTDOCFLAGS", "-D warnings"),
        "cargo doc --no-deps (RUSTDOCFLAGS=-D warnings)",
    )?;
    // One PostgreSQL server for the run, stopped when `test` returns.
    let postgres = pg::TestPostgres::start()?;
    let nats = tools::ensure_nats()?;
    check(
        cargo()
            .args(["test", "--workspace", "--exclude", "shieldcall-e2e"])
            .env(pg::URL_VAR, &postgres.url)
            .env(CAPTIONS_VAR, &captions)
            .env(NATS_VAR, &nats),
        "native tests",
    )?;
    // Every integration test once more with the relay on PostgreSQL (a database
    // per test), so both stores answer to the whole suite. The same package set
    // as above, so that features unify alike and nothing is rebuilt.
    check(
        cargo()
            .args([
                "test",
                "--workspace",
                "--exclude",
                "shieldcall-e2e",
                "--test",
                "*",
            ])
            .env(pg::URL_VAR, &postgres.url)
            .env(CAPTIONS_VAR, &captions)
            .env(NATS_VAR, &nats)
            .env("SHIELDCALL_TEST_STORE", "postgres"),
        "the relay's integration tests on PostgreSQL",
    )?;
    wasm_tests(&chromedriver)?;
    e2e(
        &chromedriver,
        &geckodriver,
        None,
        Some(&postgres.url),
        false,
    )?;
    eprintln!("xtask: all checks passed");
    Ok(())
}

/// The relay's tests find the speech recogniser's Python here.
const CAPTIONS_VAR: &str = "SHIELDCALL_TEST_CAPTIONS_PYTHON";

/// The relay's bus tests start their NATS servers from this binary.
const NATS_VAR: &str = "SHIELDCALL_TEST_NATS_SERVER";

/// Builds the release relay and returns its path.
pub fn release_relay() -> Result<PathBuf> {
    check(
        cargo().args([
            "build",
            "--release",
            "--package",
            "shieldcall-relay",
            "--bin",
            "shieldcall",
        ]),
        "building the release relay",
    )?;
    Ok(root().join("target/release/shieldcall"))
}

/// Runs the end-to-end tests against the release bundle and the release relay, one
/// test at a time (each starts two or three browsers on a 2-core machine).
fn e2e(
    chromedriver: &Path,
    geckodriver: &Path,
    filter: Option<&str>,
    postgres: Option<&str>,
    keep_artifacts: bool,
) -> Result<()> {
    dist::dist()?;
    let relay = release_relay()?;
    let mut cmd = cargo();
    cmd.args(["test", "--package", "shieldcall-e2e", "--"]);
    if let Some(f) = filter {
        cmd.arg(f);
    }
    cmd.arg("--test-threads=1")
        .env("SHIELDCALL_BIN", relay)
        .env("CHROMEDRIVER", chromedriver)
        .env("GECKODRIVER", geckodriver)
        // The relays the browser tests start have live captions.
        .env("SHIELDCALL_CAPTIONS_PYTHON", tools::ensure_captions()?)
        // The cluster test runs its nodes over a NATS server of its own.
        .env(NATS_VAR, tools::ensure_nats()?);
    if let Some(url) = postgres {
        cmd.env(pg::URL_VAR, url);
    }
    if keep_artifacts {
        let dir = root().join("target/e2e");
        let _ = std::fs::remove_dir_all(&dir);
        // `always` (set by the person running it) keeps every test's, as asked.
        if std::env::var("SHIELDCALL_E2E_ARTIFACTS").as_deref() != Ok("always") {
            cmd.env("SHIELDCALL_E2E_ARTIFACTS", "1");
        }
        let result = check(&mut cmd, "end-to-end tests");
        if result.is_err() && dir.exists() {
            eprintln!(
                "xtask: console logs and screenshots of the failing tests are in {}",
                dir.display()
            );
        }
        return result;
    }
    check(&mut cmd, "end-to-end tests")
}

/// Runs the `wasm-bindgen-test` tests in headless Chromium, with this binary as the
/// target's runner.
fn wasm_tests(chromedriver: &Path) -> Result<()> {
    let me = std::env::current_exe().context("locating the xtask binary")?;
    // Copy the runner out of target/ so the nested cargo can rebuild xtask freely.
    let runner = root().join("target").join("xtask-wasm-test-runner");
    std::fs::copy(&me, &runner).context("copying the test runner")?;
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--package",
        "shieldcall-web",
        "--target",
        "wasm32-unknown-unknown",
    ])
    .env(
        "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
        format!("{} wasm-test-runner", runner.display()),
    )
    .env("CHROMEDRIVER", chromedriver)
    .env("WASM_BINDGEN_TEST_TIMEOUT", "60")
    .env("WASM_BINDGEN_TEST_WEBDRIVER_JSON", tools::webdriver_json()?);
    check(
        &mut cmd,
        "browser tests (wasm-bindgen-test, headless Chromium)",
    )
}
