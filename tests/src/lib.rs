//! Helpers for the end-to-end tests: a real relay on port 0 serving the built
//! client, and headless Chromium with the project's flags. Everything started here
//! is stopped on drop, also when a test fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// Chromium flags that work on a headless, loopback-only host.
pub const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
];

/// A relay serving `www/` on an ephemeral loopback port, stopped on drop.
#[derive(Debug)]
pub struct Relay {
    /// Base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// Runs the server; dropping it stops the server.
    runtime: Option<tokio::runtime::Runtime>,
    /// Completes the server's shutdown future.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Relay {
    /// Starts a relay that serves the built client. Fails with the command to run if
    /// the bundle has not been built.
    pub fn start() -> Result<Self> {
        let www = root().join("www");
        if !www.join("pkg/shieldcall_web_bg.wasm").exists() {
            bail!("the browser bundle is missing: run `cargo xtask dist` (cargo xtask test does)");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = shieldcall_relay::AppState::new(www);
        runtime.spawn(shieldcall_relay::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            url,
            runtime: Some(runtime),
            stop: Some(stop),
        })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
        }
    }
}

/// A fresh, empty Chromium profile directory, removed on drop.
#[derive(Debug)]
pub struct Profile(pub PathBuf);

impl Profile {
    /// Creates a new profile directory under the system temp dir.
    pub fn new(name: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "shieldcall-{name}-{}-{}",
            std::process::id(),
            nanos()
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Loads `url` in headless Chromium, lets its scripts run for `budget_ms` of
/// virtual time, and returns the serialised DOM.
pub fn dump_dom(url: &str, budget_ms: u32) -> Result<String> {
    let profile = Profile::new("dom")?;
    let out = Command::new("/usr/bin/chromium")
        .args(CHROMIUM_ARGS)
        .arg(format!("--user-data-dir={}", profile.0.display()))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .context("starting /usr/bin/chromium (cargo xtask test installs it)")?;
    if !out.status.success() {
        bail!(
            "chromium exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
