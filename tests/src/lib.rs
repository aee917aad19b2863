//! The end-to-end harness: a real release relay on port 0 with a fresh data dir,
//! users created through its CLI, ChromeDriver and headless Chromium with fake
//! camera and microphone, each browser with its own profile.
//!
//! Everything started here stops on drop, also when a test fails or times out:
//! the relay gets SIGTERM, ChromeDriver's whole process group (with its browsers)
//! is killed, temporary directories are removed. Every wait has a timeout and a
//! message that says what did not happen. With `SHIELDCALL_E2E_ARTIFACTS=1` (as
//! `cargo xtask e2e` sets it), a failing test's browsers leave their page log and a
//! screenshot under `target/e2e/<test>/`; with `=always`, every test's do.

pub mod cluster;
pub mod mitm;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// Chromium flags that work on a headless, loopback-only host: no sandbox (tests run
/// as root in CI), fake camera and microphone, loopback ICE, no background network.
/// One list, in `tests/chromium-flags.txt`, for these tests and the xtask's
/// browser tests.
pub fn chromium_args() -> impl Iterator<Item = &'static str> {
    include_str!("../chromium-flags.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
}

/// A temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `shieldcall-<name>-<pid>-<nanos>` under the system temp dir.
    pub fn new(name: &str) -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("shieldcall-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `shieldcall` binary under test: `$SHIELDCALL_BIN`, else the release build.
pub fn binary() -> Result<PathBuf> {
    let path = std::env::var_os("SHIELDCALL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/release/shieldcall"));
    if !path.exists() {
        bail!(
            "{} is missing: run `cargo xtask e2e` (it builds the release relay)",
            path.display()
        );
    }
    Ok(path)
}

/// A relay process serving the built client, stopped on drop.
#[derive(Debug)]
pub struct Relay {
    /// Base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// The data directory (SQLite, and the call-id key).
    pub data: TempDir,
    /// PostgreSQL instead of SQLite, when set.
    pub database_url: Option<String>,
    child: Option<Child>,
}

/// A new, empty database on the test PostgreSQL server that `cargo xtask test`
/// starts (its URL is in `SHIELDCALL_TEST_DATABASE_URL`); returns its URL.
pub fn new_database() -> Result<String> {
    let server = std::env::var("SHIELDCALL_TEST_DATABASE_URL").context(
        "SHIELDCALL_TEST_DATABASE_URL is not set: run the tests with `cargo xtask test` or `cargo xtask e2e`, which start a PostgreSQL server",
    )?;
    let name = format!(
        "e2e_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let out = Command::new("psql")
        .arg(&server)
        .args([
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            &format!("CREATE DATABASE {name}"),
        ])
        .output()
        .context("running psql")?;
    if !out.status.success() {
        bail!("CREATE DATABASE: {}", String::from_utf8_lossy(&out.stderr));
    }
    let (base, _) = server
        .rsplit_once('/')
        .context("SHIELDCALL_TEST_DATABASE_URL names no database")?;
    Ok(format!("{base}/{name}"))
}

impl Relay {
    /// Starts `shieldcall serve` on port 0 with a fresh data dir and no demo users.
    pub fn start() -> Result<Self> {
        let data = TempDir::new("data")?;
        Self::start_in(data)
    }

    /// Starts the relay on an existing data dir (restarts keep the same one).
    pub fn start_in(data: TempDir) -> Result<Self> {
        Self::start_at(data, "127.0.0.1:0")
    }

    /// Starts the relay on `bind`.
    pub fn start_at(data: TempDir, bind: &str) -> Result<Self> {
        Self::launch(data, bind, &[])
    }

    /// Starts `shieldcall serve --no-demo` on `bind` with `data`, plus `extra`
    /// arguments, and waits for the line saying where it listens.
    pub fn launch(data: TempDir, bind: &str, extra: &[&str]) -> Result<Self> {
        Self::launch_on(data, None, bind, extra)
    }

    /// Starts the relay on the PostgreSQL database `url` (through
    /// `SHIELDCALL_DATABASE_URL`, as an operator would, keeping the password off
    /// the command line); `data` holds only the call-id key.
    pub fn start_on_postgres(data: TempDir, url: &str) -> Result<Self> {
        Self::launch_on(data, Some(url.to_string()), "127.0.0.1:0", &[])
    }

    /// A node of a cluster: on the PostgreSQL database `url`, with the NATS
    /// server at `bus`, accepting `origins` (the load balancers' addresses)
    /// as its own.
    pub fn start_node(data: TempDir, url: &str, bus: &str, origins: &[String]) -> Result<Self> {
        let origins = origins.join(",");
        Self::launch_on(
            data,
            Some(url.to_string()),
            "127.0.0.1:0",
            &["--bus-url", bus, "--public-origin", &origins],
        )
    }

    /// Kills the relay with SIGKILL (`kill -9`): nothing of it runs after.
    pub fn kill_9(mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// [`Relay::start_on_postgres`] on `bind` (a restart on the same address).
    pub fn start_on_postgres_at(data: TempDir, url: &str, bind: &str) -> Result<Self> {
        Self::launch_on(data, Some(url.to_string()), bind, &[])
    }

    fn launch_on(
        data: TempDir,
        database_url: Option<String>,
        bind: &str,
        extra: &[&str],
    ) -> Result<Self> {
        let www = root().join("www");
        if !www.join("pkg/shieldcall_web_bg.wasm").exists() {
            bail!("the browser bundle is missing: run `cargo xtask dist` (cargo xtask test does)");
        }
        let mut command = Command::new(binary()?);
        match &database_url {
            Some(url) => command.env("SHIELDCALL_DATABASE_URL", url),
            None => command.env_remove("SHIELDCALL_DATABASE_URL"),
        };
        let mut child = command
            .args(["serve", "--no-demo", "--bind", bind])
            .arg("--data-dir")
            .arg(&data.0)
            .arg("--www")
            .arg(&www)
            .args(extra)
            .env("SHIELDCALL_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting shieldcall serve")?;
        // From here on the relay is stopped on drop, also if it never says where it is.
        let stdout = child.stdout.take().context("relay stdout")?;
        let mut relay = Self {
            url: String::new(),
            data,
            database_url,
            child: Some(child),
        };
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        relay.url = loop {
            let Some(line) = lines.next() else {
                bail!("the relay exited before saying where it listens");
            };
            let line = line?;
            if let Some(rest) = line.split("running at ").nth(1) {
                break rest.trim().trim_end_matches('/').to_string();
            }
            if Instant::now() > deadline {
                bail!("the relay did not start within 30 s");
            }
        };
        // Keep draining stdout so the relay never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(relay)
    }

    /// Runs a `shieldcall` admin command on this relay's store, with `stdin`.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        cli_on(&self.data.0, self.database_url.as_deref(), args, stdin)
    }

    /// Creates a user with `password`.
    pub fn add_user(&self, user: &str, password: &str, admin: bool) -> Result<()> {
        let mut args = vec!["user", "add", user, "--password-stdin"];
        if admin {
            args.push("--admin");
        }
        self.cli(&args, Some(password)).map(|_| ())
    }

    /// Stops the relay (SIGTERM, then kill) and returns its data dir.
    pub fn stop(mut self) -> TempDir {
        self.terminate();
        std::mem::replace(&mut self.data, TempDir(PathBuf::new()))
    }

    fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Runs `shieldcall --data-dir DATA ARGS` and returns its stdout.
pub fn cli(data: &Path, args: &[&str], stdin: Option<&str>) -> Result<String> {
    cli_on(data, None, args, stdin)
}

/// Runs `shieldcall --data-dir DATA ARGS` on the database `url` if given.
fn cli_on(data: &Path, url: Option<&str>, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut command = Command::new(binary()?);
    match url {
        Some(url) => command.env("SHIELDCALL_DATABASE_URL", url),
        None => command.env_remove("SHIELDCALL_DATABASE_URL"),
    };
    let mut child = command
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut pipe) = child.stdin.take()
        && let Some(text) = stdin
    {
        pipe.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "shieldcall {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// ChromeDriver, killed on drop (browsers are closed by [`Browser`]).
#[derive(Debug)]
pub struct Driver {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    child: Child,
}

impl Driver {
    /// Starts `/usr/bin/chromedriver` on a free port.
    pub fn start() -> Result<Self> {
        let port = free_port()?;
        let child = Command::new(
            std::env::var_os("CHROMEDRIVER").unwrap_or_else(|| "/usr/bin/chromedriver".into()),
        )
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting chromedriver (cargo xtask test installs chromium-driver)")?;
        let url = format!("http://127.0.0.1:{port}");
        let driver = Self { url, child };
        wait_listening(port, "chromedriver")?;
        Ok(driver)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which browser a [`Browser`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Debian's Chromium through ChromeDriver.
    Chromium,
    /// Debian's Firefox ESR through geckodriver.
    Firefox,
}

/// One headless browser tab with its own profile.
#[derive(Debug)]
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    /// Name for logs and artifacts.
    pub name: String,
    /// Chromium or Firefox.
    pub engine: Engine,
    /// The profile; also identifies this browser's processes.
    profile: TempDir,
    /// Firefox only: this browser's own geckodriver (it serves one session);
    /// stopped on drop.
    gecko: Option<Driver>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A session that was not closed (a failed test): end exactly this
        // browser's processes, found by their unique profile directory.
        let _ = Command::new("pkill")
            .arg("-KILL")
            .arg("-f")
            .arg(self.profile.0.as_os_str())
            .status();
        drop(self.gecko.take());
    }
}

/// Firefox preferences for a headless call on a loopback-only host: fake camera
/// and microphone without a permission prompt, loopback ICE candidates, host
/// addresses not hidden behind mDNS names, no background network.
const FIREFOX_PREFS: &[(&str, bool)] = &[
    ("media.navigator.streams.fake", true),
    ("media.navigator.permission.disabled", true),
    ("media.peerconnection.ice.loopback", true),
    ("media.peerconnection.ice.obfuscate_host_addresses", false),
    ("media.autoplay.block-webaudio", false),
    ("app.update.enabled", false),
    ("browser.shell.checkDefaultBrowser", false),
    ("datareporting.policy.dataSubmissionEnabled", false),
    ("toolkit.telemetry.enabled", false),
    ("network.captive-portal-service.enabled", false),
    ("browser.safebrowsing.malware.enabled", false),
    ("browser.safebrowsing.phishing.enabled", false),
];

/// `$GECKODRIVER`, else the one `cargo xtask` installs under `target/tools`.
pub fn geckodriver() -> PathBuf {
    std::env::var_os("GECKODRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/tools/bin/geckodriver"))
}

/// A free TCP port on loopback.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until something listens on `port`.
fn wait_listening(port: u16, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("{what} did not listen on {port} within 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// An end-to-end encrypted call from `alice` to `bob` (`bob_user`), answered:
/// the server feature `feature` is greyed in her menu, no connection to the
/// server is made, and the call is hung up and both screens closed.
pub async fn e2ee_call_greys(
    alice: &Browser,
    bob: &Browser,
    bob_user: &str,
    feature: &str,
) -> Result<()> {
    alice.click(&format!("call-{bob_user}")).await?;
    bob.click("incoming-accept").await?;
    alice
        .wait_testid_attr("e2ee-indicator", "data-state", "e2ee")
        .await?;
    alice.click("call-more").await?;
    alice
        .wait_js(
            &format!("{feature} greyed"),
            "const b = document.querySelector(`[data-testid=\"feature-${arguments[0]}\"]`); return !!b && b.disabled;",
            vec![json!(feature)],
        )
        .await?;
    let before = alice.peer_connections().await?;
    alice.click("hangup").await?;
    bob.wait_testid_attr("call-state", "data-state", "ended")
        .await?;
    anyhow::ensure!(
        alice.peer_connections().await? == before,
        "a leg in an E2EE call"
    );
    alice.click("call-close").await?;
    bob.click("call-close").await?;
    Ok(())
}

/// A standard call from `alice` (her switch turned off) to `bob` (`bob_user`),
/// answered and connected; then `alice` asks for the server feature `feature`
/// from the menu (`feature-<feature>`) and both see its banner (`<banner>-*`):
/// she agreed by asking, he is asked, by a sentence naming her and the
/// server. Returns how many peer connections Bob's page had made before she
/// asked, to count a leg of his.
pub async fn standard_call_asking(
    alice: &Browser,
    bob: &Browser,
    (alice_user, bob_user): (&str, &str),
    feature: &str,
    banner: &str,
) -> Result<u64> {
    alice.turn_e2ee_off().await?;
    alice.click(&format!("call-{bob_user}")).await?;
    bob.click("incoming-accept").await?;
    for b in [alice, bob] {
        b.wait_testid_attr("call-state", "data-state", "connected")
            .await?;
    }
    let before = bob.peer_connections().await?;
    alice.click("call-more").await?;
    alice.click(&format!("feature-{feature}")).await?;
    alice.wait_visible(&format!("{banner}-stop")).await?;
    bob.wait_visible(&format!("{banner}-allow")).await?;
    let asked = bob.text(&format!("{banner}-text")).await?;
    anyhow::ensure!(
        asked.contains(alice_user) && asked.contains("server"),
        "{asked:?}"
    );
    Ok(before)
}

/// How long any single wait may take before the test fails with a message.
pub const WAIT: Duration = Duration::from_secs(30);

impl Browser {
    /// Opens a new browser on `driver`.
    pub async fn open(driver: &Driver, name: &str) -> Result<Self> {
        Self::open_with(driver, name, &[]).await
    }

    /// Opens a new browser on `driver` with `extra` Chromium flags (say, a
    /// WAV file for the fake microphone to play).
    pub async fn open_with(driver: &Driver, name: &str, extra: &[String]) -> Result<Self> {
        let profile = TempDir::new(&format!("profile-{name}"))?;
        let mut args: Vec<String> = chromium_args().map(str::to_string).collect();
        args.extend(extra.iter().cloned());
        args.push(format!("--user-data-dir={}", profile.0.display()));
        let caps = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": args,
                // Notifications allowed, as a person who said yes once would have
                // them (the client shows one for a call in a background tab).
                "prefs": { "profile.default_content_setting_values.notifications": 1 },
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let serde_json::Value::Object(caps) = caps else {
            bail!("capabilities")
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .with_context(|| format!("opening browser {name}"))?;
        Ok(Self {
            client,
            name: name.to_string(),
            engine: Engine::Chromium,
            profile,
            gecko: None,
        })
    }

    /// Opens a headless Firefox ESR with its own geckodriver (one session each)
    /// and profile, with fake media and loopback ICE (`FIREFOX_PREFS`).
    pub async fn open_firefox(name: &str) -> Result<Self> {
        let profile = TempDir::new(&format!("profile-{name}"))?;
        let port = free_port()?;
        let child = Command::new(geckodriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting geckodriver (cargo xtask test installs it)")?;
        // Stopped on drop from here on, also if the session never opens.
        let gecko = Driver {
            url: format!("http://127.0.0.1:{port}"),
            child,
        };
        wait_listening(port, "geckodriver")?;
        let prefs: serde_json::Map<String, Value> = FIREFOX_PREFS
            .iter()
            .map(|(k, v)| ((*k).to_string(), json!(v)))
            .collect();
        let caps = json!({
            "moz:firefoxOptions": {
                "binary": "/usr/bin/firefox-esr",
                "args": ["-headless", "-profile", profile.0.to_string_lossy()],
                "prefs": prefs,
            },
        });
        let serde_json::Value::Object(caps) = caps else {
            bail!("capabilities")
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&gecko.url)
            .await
            .with_context(|| format!("opening Firefox {name}"))?;
        Ok(Self {
            client,
            name: name.to_string(),
            engine: Engine::Firefox,
            profile,
            gecko: Some(gecko),
        })
    }

    /// Loads `url`, records every `RTCPeerConnection` the page makes (so tests can
    /// read its SDP and stats; observation only), and waits for the client.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.client.goto(url).await?;
        self.wait_attr("#app", "data-state", "ready").await?;
        self.client
            .execute(
                "if (!window.__log) { window.__log = []; for (const k of ['log', 'warn', 'error']) { const o = console[k];\
                 console[k] = (...a) => { window.__log.push(k + ': ' + a.join(' ')); o.apply(console, a); }; }\
                 window.addEventListener('error', e => window.__log.push('error: ' + e.message)); }\
                 if (!window.__pcs) { window.__pcs = []; const P = window.RTCPeerConnection;\
                 window.RTCPeerConnection = new Proxy(P, { construct(t, a) { const pc = new t(...a); window.__pcs.push(pc); return pc; } }); }",
                vec![],
            )
            .await?;
        Ok(())
    }

    /// Signs in through the form.
    pub async fn sign_in(&self, base: &str, user: &str, password: &str) -> Result<()> {
        self.goto(&format!("{base}/")).await?;
        self.fill("login-user", user).await?;
        self.fill("login-password", password).await?;
        self.click("login-submit").await?;
        self.wait_visible("contacts")
            .await
            .with_context(|| format!("{user} signing in"))?;
        Ok(())
    }

    fn by_id(testid: &str) -> String {
        format!("[data-testid=\"{testid}\"]")
    }

    /// Turns this user's "End-to-end encrypted calls" switch off in Settings →
    /// Privacy (it starts on) and waits until the relay confirmed it: their calls
    /// are standard from then on.
    pub async fn turn_e2ee_off(&self) -> Result<()> {
        self.click("open-settings").await?;
        self.wait_testid_attr("settings-e2ee-toggle", "aria-checked", "true")
            .await?;
        self.click("settings-e2ee-toggle").await?;
        self.wait_testid_attr("settings-e2ee-toggle", "aria-checked", "false")
            .await
    }

    /// Types into the element with `data-testid`.
    pub async fn fill(&self, testid: &str, text: &str) -> Result<()> {
        let e = self.wait_visible(testid).await?;
        e.send_keys(text).await?;
        Ok(())
    }

    /// Clicks the element with `data-testid` once it is visible and enabled.
    pub async fn click(&self, testid: &str) -> Result<()> {
        let sel = Self::by_id(testid);
        let deadline = Instant::now() + WAIT;
        loop {
            let ready: bool = self
                .client
                .execute(
                    "const e = document.querySelector(arguments[0]); return !!e && !e.closest('[hidden]') && !e.disabled;",
                    vec![json!(sel)],
                )
                .await?
                .as_bool()
                .unwrap_or(false);
            if ready {
                // The page may redraw the element between the find and the
                // click (a contact list after a presence change): then the
                // new one is clicked.
                let clicked = async { self.client.find(Locator::Css(&sel)).await?.click().await };
                match clicked.await {
                    Ok(()) => return Ok(()),
                    Err(e)
                        if e.to_string().contains("stale element") && Instant::now() < deadline =>
                    {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if Instant::now() > deadline {
                bail!("{}: {testid} never became clickable", self.name);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the element with `data-testid` exists and is not hidden.
    pub async fn wait_visible(&self, testid: &str) -> Result<fantoccini::elements::Element> {
        let sel = Self::by_id(testid);
        self.wait_js(
            &format!("{testid} visible"),
            "const e = document.querySelector(arguments[0]); return !!e && !e.closest('[hidden]');",
            vec![json!(sel)],
        )
        .await?;
        Ok(self.client.find(Locator::Css(&sel)).await?)
    }

    /// Waits until `selector`'s `attr` equals `value`.
    pub async fn wait_attr(&self, selector: &str, attr: &str, value: &str) -> Result<()> {
        self.wait_js(
            &format!("{selector} [{attr}={value}]"),
            "const e = document.querySelector(arguments[0]); return !!e && e.getAttribute(arguments[1]) === arguments[2];",
            vec![json!(selector), json!(attr), json!(value)],
        )
        .await
    }

    /// Waits until the element with `data-testid` has `attr` = `value`.
    pub async fn wait_testid_attr(&self, testid: &str, attr: &str, value: &str) -> Result<()> {
        self.wait_attr(&Self::by_id(testid), attr, value).await
    }

    /// Waits until a JS predicate returns true.
    pub async fn wait_js(&self, what: &str, script: &str, args: Vec<Value>) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        loop {
            if self.client.execute(script, args.clone()).await?.as_bool() == Some(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let notice = self.text("notice").await.unwrap_or_default();
                bail!(
                    "{}: timed out after {WAIT:?} waiting for {what} (notice: {notice:?})",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until keyboard focus is on the element with `data-testid`.
    pub async fn wait_focus(&self, testid: &str) -> Result<()> {
        self.wait_js(
            &format!("keyboard focus on {testid}"),
            "const e = document.activeElement; return !!e && e.getAttribute('data-testid') === arguments[0];",
            vec![json!(testid)],
        )
        .await
    }

    /// Presses Enter where keyboard focus is, as a keyboard user would.
    pub async fn press_enter(&self) -> Result<()> {
        // U+E007 is WebDriver's Enter key.
        self.client
            .active_element()
            .await?
            .send_keys("\u{E007}")
            .await?;
        Ok(())
    }

    /// The text of the element with `data-testid` (empty if absent).
    pub async fn text(&self, testid: &str) -> Result<String> {
        let v = self
            .client
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
                vec![json!(Self::by_id(testid))],
            )
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// An attribute of the element with `data-testid`.
    pub async fn attr(&self, testid: &str, attr: &str) -> Result<Option<String>> {
        let v = self
            .client
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null;",
                vec![json!(Self::by_id(testid)), json!(attr)],
            )
            .await?;
        Ok(v.as_str().map(str::to_string))
    }

    /// Whether the element with `data-testid` is shown.
    pub async fn visible(&self, testid: &str) -> Result<bool> {
        let v = self
            .client
            .execute(
                "const e = document.querySelector(arguments[0]); return !!e && !e.closest('[hidden]');",
                vec![json!(Self::by_id(testid))],
            )
            .await?;
        Ok(v.as_bool().unwrap_or(false))
    }

    /// The local and remote SDP of the page's latest peer connection.
    pub async fn sdp(&self) -> Result<(String, String)> {
        let v = self
            .client
            .execute(
                "const pc = (window.__pcs || []).at(-1); return pc ? [pc.localDescription && pc.localDescription.sdp, pc.remoteDescription && pc.remoteDescription.sdp] : null;",
                vec![],
            )
            .await?;
        let local = v
            .get(0)
            .and_then(Value::as_str)
            .context("no local SDP")?
            .to_string();
        let remote = v
            .get(1)
            .and_then(Value::as_str)
            .context("no remote SDP")?
            .to_string();
        Ok((local, remote))
    }

    /// How many peer connections the page has made (the test hook records each).
    pub async fn peer_connections(&self) -> Result<u64> {
        let v = self
            .client
            .execute("return (window.__pcs || []).length;", vec![])
            .await?;
        v.as_u64().context("peer connection count")
    }

    /// Video frames decoded so far by the page's latest peer connection.
    pub async fn frames_decoded(&self) -> Result<f64> {
        let v = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1]; const pc = (window.__pcs || []).at(-1);\
                 if (!pc) { done(0); return; }\
                 pc.getStats().then(r => { let n = 0; r.forEach(s => { if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded || 0; }); done(n); }, () => done(0));",
                vec![],
            )
            .await?;
        Ok(v.as_f64().unwrap_or(0.0))
    }

    /// RTP packets sent and received so far by the page's latest peer connection
    /// (`outbound-rtp` `packetsSent` and `inbound-rtp` `packetsReceived`, audio and
    /// video together).
    pub async fn rtp_packets(&self) -> Result<(f64, f64)> {
        let v = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1]; const pc = (window.__pcs || []).at(-1);\
                 if (!pc) { done([0, 0]); return; }\
                 pc.getStats().then(r => { let o = 0, i = 0; r.forEach(s => { if (s.type === 'outbound-rtp') o += s.packetsSent || 0; if (s.type === 'inbound-rtp') i += s.packetsReceived || 0; }); done([o, i]); }, () => done([0, 0]));",
                vec![],
            )
            .await?;
        let n = |i: usize| v.get(i).and_then(Value::as_f64).unwrap_or(0.0);
        Ok((n(0), n(1)))
    }

    /// Waits until no RTP packet is sent or received for a whole second (media
    /// stopped both ways, as on hold); fails after [`WAIT`].
    pub async fn wait_media_still(&self) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        loop {
            let before = self.rtp_packets().await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let after = self.rtp_packets().await?;
            if before == after && after != (0.0, 0.0) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: RTP still flows (sent, received) {before:?} → {after:?}",
                    self.name
                );
            }
        }
    }

    /// Waits until RTP packets are sent and received and video frames decoded
    /// again, each rising within a second; fails after [`WAIT`].
    pub async fn wait_media_flowing(&self) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        loop {
            let (sent, received) = self.rtp_packets().await?;
            let frames = self.frames_decoded().await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (sent2, received2) = self.rtp_packets().await?;
            let frames2 = self.frames_decoded().await?;
            if sent2 > sent && received2 > received && frames2 > frames {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: media does not flow: sent {sent} → {sent2}, received {received} → {received2}, frames {frames} → {frames2}",
                    self.name
                );
            }
        }
    }

    /// Waits until the remote video element plays the other person's
    /// camera and carries their microphone: a live video track with frames
    /// on screen and a live audio track, in the stream it shows. (A callee
    /// answers before its camera opens, so its tracks reach the caller in no
    /// stream; the page must still show them.)
    pub async fn wait_remote_media(&self) -> Result<()> {
        self.wait_js(
            "the remote video to play a live video and a live audio track",
            "const v = document.querySelector('[data-testid=\"remote-video\"]');\
             const s = v && v.srcObject; if (!s) return false;\
             const live = (ts) => ts.some((t) => t.readyState === 'live');\
             return live(s.getVideoTracks()) && live(s.getAudioTracks()) && v.videoWidth > 0;",
            vec![],
        )
        .await
    }

    /// Waits until remote video frames are being decoded.
    pub async fn wait_frames(&self) -> Result<f64> {
        let deadline = Instant::now() + WAIT;
        loop {
            let n = self.frames_decoded().await?;
            if n > 0.0 {
                return Ok(n);
            }
            if Instant::now() > deadline {
                let stats = self
                    .client
                    .execute_async(
                        "const done = arguments[arguments.length - 1]; const pc = (window.__pcs || []).at(-1);\
                         if (!pc) { done('no peer connection recorded'); return; }\
                         pc.getStats().then(r => { const o = []; r.forEach(s => { if (s.type === 'inbound-rtp') o.push(s); }); done(JSON.stringify(o)); });",
                        vec![],
                    )
                    .await
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                bail!(
                    "{}: no remote video frames decoded within {WAIT:?}; inbound-rtp: {stats}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Saves a screenshot and the console log under `target/e2e/<test>/`.
    pub async fn save_artifacts(&self, test: &str) {
        let dir = root().join("target/e2e").join(test);
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(dir.join(format!("{}.png", self.name)), png);
        }
        let log = self
            .client
            .execute("return (window.__log || []).join('\\n') + '\\n--- DOM ---\\n' + document.documentElement.outerHTML;", vec![])
            .await
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .unwrap_or_default();
        let _ = std::fs::write(dir.join(format!("{}.console.log", self.name)), log);
    }

    /// Ends the WebDriver session (Chromium exits).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// The checks of a verified E2EE call between two signed-in browsers, `caller`
/// calling `callee` (whose full user name is `callee_user`): both show the lock
/// and the same code, equal to `shieldcall code --sdp` over the SDP the two peers
/// really exchanged (unaltered by the relay: byte for byte between Chromiums, the
/// fingerprints where Firefox is involved); remote video is decoded on both
/// sides. Returns the code; the call goes on ([`hang_up`]).
pub async fn connect_verified(
    relay: &Relay,
    caller: &Browser,
    callee: &Browser,
    callee_user: &str,
) -> Result<String> {
    caller.click(&format!("call-{callee_user}")).await?;
    callee.click("incoming-accept").await?;
    for b in [caller, callee] {
        b.wait_testid_attr("e2ee-indicator", "data-state", "e2ee")
            .await?;
    }
    let code_a = caller.text("security-code").await?;
    let code_b = callee.text("security-code").await?;
    anyhow::ensure!(is_code(&code_a), "{} shows {code_a:?}", caller.name);
    anyhow::ensure!(
        code_a == code_b,
        "{} shows {code_a}, {} shows {code_b}",
        caller.name,
        callee.name
    );
    let (a_local, a_remote) = caller.sdp().await?;
    let (b_local, b_remote) = callee.sdp().await?;
    if caller.engine == Engine::Chromium && callee.engine == Engine::Chromium {
        // Chromium keeps the descriptions as exchanged (plus trickled candidates
        // on both sides alike), so the relay forwarded them unaltered.
        anyhow::ensure!(a_local == b_remote, "the relay altered the offer");
        anyhow::ensure!(b_local == a_remote, "the relay altered the answer");
    } else {
        // Firefox rewrites its descriptions as candidates arrive; what must
        // agree is the certificate each side announced and the other received.
        let fp = |sdp: &str| shieldcall_proto::extract_fingerprint(sdp);
        anyhow::ensure!(
            fp(&a_local)? == fp(&b_remote)?,
            "the offer's fingerprint changed"
        );
        anyhow::ensure!(
            fp(&b_local)? == fp(&a_remote)?,
            "the answer's fingerprint changed"
        );
    }
    let dir = TempDir::new("sdp")?;
    let (fa, fb) = (dir.0.join("caller.sdp"), dir.0.join("callee.sdp"));
    std::fs::write(&fa, &a_local)?;
    std::fs::write(&fb, &b_local)?;
    let cli_code = cli(
        &relay.data.0,
        &[
            "code",
            "--sdp",
            &fa.to_string_lossy(),
            &fb.to_string_lossy(),
        ],
        None,
    )?;
    anyhow::ensure!(
        cli_code.trim() == code_a,
        "shieldcall code says {cli_code:?}, the browsers {code_a:?}"
    );
    anyhow::ensure!(
        caller.wait_frames().await? > 0.0,
        "{} decodes video",
        caller.name
    );
    anyhow::ensure!(
        callee.wait_frames().await? > 0.0,
        "{} decodes video",
        callee.name
    );
    for b in [caller, callee] {
        b.wait_remote_media().await?;
    }
    Ok(code_a)
}

/// Waits until `b`'s call is connected and shows a security code; returns it.
pub async fn connected_with_code(b: &Browser) -> Result<String> {
    b.wait_testid_attr("call-state", "data-state", "connected")
        .await?;
    b.wait_js(
        "a security code in the panel",
        "const e = document.querySelector('[data-testid=\"security-code\"]'); return !!e && e.textContent.length > 0;",
        vec![],
    )
    .await?;
    b.text("security-code").await
}

/// `who` hangs up; the call ends on both sides.
pub async fn hang_up(who: &Browser, other: &Browser) -> Result<()> {
    who.click("hangup").await?;
    for b in [who, other] {
        b.wait_testid_attr("call-state", "data-state", "ended")
            .await?;
    }
    Ok(())
}

/// A regular expression-free check of the code format `ddddd ddddd ddddd ddddd`.
pub fn is_code(s: &str) -> bool {
    let groups: Vec<&str> = s.split(' ').collect();
    groups.len() == 4
        && groups
            .iter()
            .all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit()))
}

/// Alice (`alice@example.test`, password `alice-password-1`) and Bob
/// (`bob@example.test`, `bob-password-1`): users of a fresh relay, each signed
/// in in a browser of their own. Runs `scenario` under [`with_artifacts`]
/// named `test`, then closes both browsers, whatever it returned.
pub async fn with_alice_and_bob(
    test: &str,
    scenario: impl AsyncFnOnce(&Relay, &Browser, &Browser) -> Result<()>,
) -> Result<()> {
    const ALICE: (&str, &str) = ("alice@example.test", "alice-password-1");
    const BOB: (&str, &str) = ("bob@example.test", "bob-password-1");
    let relay = Relay::start()?;
    relay.add_user(ALICE.0, ALICE.1, false)?;
    relay.add_user(BOB.0, BOB.1, false)?;
    let driver = Driver::start()?;
    let alice = Browser::open(&driver, "alice").await?;
    let bob = Browser::open(&driver, "bob").await?;
    let result = with_artifacts(test, &[&alice, &bob], || async {
        alice.sign_in(&relay.url, ALICE.0, ALICE.1).await?;
        bob.sign_in(&relay.url, BOB.0, BOB.1).await?;
        scenario(&relay, &alice, &bob).await
    })
    .await;
    alice.close().await;
    bob.close().await;
    result
}

/// Runs `f` with browsers; on failure saves their artifacts when asked to.
pub async fn with_artifacts<F, Fut>(test: &str, browsers: &[&Browser], f: F) -> Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let result = tokio::time::timeout(Duration::from_secs(240), f())
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("{test}: timed out after 240 s")));
    // `SHIELDCALL_E2E_ARTIFACTS=1`: keep them for failures; `=always`: for every test
    // (to look at what the people on the call saw).
    let keep = match std::env::var("SHIELDCALL_E2E_ARTIFACTS").as_deref() {
        Ok("always") => true,
        Ok(_) => result.is_err(),
        Err(_) => false,
    };
    if keep {
        for b in browsers {
            b.save_artifacts(test).await;
        }
    }
    result
}
