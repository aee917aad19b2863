//! Finds or installs what the tasks need beyond Rust: the wasm32 target, Debian's
//! Chromium and ChromeDriver, Debian's Firefox ESR and geckodriver (built from
//! crates.io at a pinned version into `target/tools`). As root on Debian it
//! installs the packages; otherwise it names the exact command and stops.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

use crate::check;

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

pub fn is_debian() -> bool {
    Path::new("/etc/debian_version").exists()
}

/// Makes sure `rustup target add wasm32-unknown-unknown` has been done.
pub fn ensure_wasm_target() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match out {
        Ok(o)
            if String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == "wasm32-unknown-unknown") =>
        {
            Ok(())
        }
        Ok(_) => check(
            Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]),
            "rustup target add wasm32-unknown-unknown",
        ),
        Err(_) => {
            // No rustup: trust that the toolchain has the target; cargo will say if not.
            Ok(())
        }
    }
}

/// Makes sure Chromium and ChromeDriver are installed; returns ChromeDriver's path.
pub fn ensure_chromium() -> Result<PathBuf> {
    let driver = PathBuf::from(
        std::env::var_os("CHROMEDRIVER").unwrap_or_else(|| "/usr/bin/chromedriver".into()),
    );
    let browser = Path::new("/usr/bin/chromium");
    if driver.exists() && browser.exists() {
        return Ok(driver);
    }
    let install = "apt-get update && apt-get install -y chromium chromium-driver";
    if is_root() && is_debian() {
        check(
            Command::new("sh").args(["-c", &format!("DEBIAN_FRONTEND=noninteractive {install}")]),
            install,
        )?;
        if driver.exists() {
            return Ok(driver);
        }
    }
    bail!(
        "headless Chromium is needed for the browser tests; install it with:\n    sudo sh -c '{install}'"
    )
}

/// Makes sure NATS's server is installed (Debian's `nats-server`, for the
/// tests of the bus between relay nodes); returns its path.
pub fn ensure_nats() -> Result<PathBuf> {
    let server = PathBuf::from("/usr/sbin/nats-server");
    if server.exists() {
        return Ok(server);
    }
    let install = "apt-get update && apt-get install -y nats-server";
    if is_root() && is_debian() {
        check(
            Command::new("sh").args(["-c", &format!("DEBIAN_FRONTEND=noninteractive {install}")]),
            install,
        )?;
        if server.exists() {
            return Ok(server);
        }
    }
    bail!("nats-server is needed for the bus tests; install it with:\n    sudo sh -c '{install}'")
}

/// The geckodriver version the browser tests use (crates.io, built with its lock).
pub const GECKODRIVER_VERSION: &str = "0.37.1";

/// Makes sure Firefox ESR and geckodriver are installed; returns geckodriver's path.
pub fn ensure_firefox() -> Result<PathBuf> {
    let browser = Path::new("/usr/bin/firefox-esr");
    if !browser.exists() {
        let install = "apt-get update && apt-get install -y firefox-esr";
        if is_root() && is_debian() {
            check(
                Command::new("sh")
                    .args(["-c", &format!("DEBIAN_FRONTEND=noninteractive {install}")]),
                install,
            )?;
        }
        if !browser.exists() {
            bail!(
                "Firefox ESR is needed for the browser tests; install it with:\n    sudo sh -c '{install}'"
            );
        }
    }
    if let Some(path) = std::env::var_os("GECKODRIVER") {
        return Ok(PathBuf::from(path));
    }
    let tools = crate::root().join("target/tools");
    let driver = tools.join("bin/geckodriver");
    let current = Command::new(&driver)
        .arg("--version")
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .starts_with(&format!("geckodriver {GECKODRIVER_VERSION}"))
        });
    if !current {
        let mut cmd = crate::cargo();
        cmd.args([
            "install",
            "geckodriver",
            "--version",
            &format!("={GECKODRIVER_VERSION}"),
            "--locked",
            "--root",
        ])
        .arg(&tools);
        check(
            &mut cmd,
            &format!("cargo install geckodriver {GECKODRIVER_VERSION}"),
        )?;
    }
    Ok(driver)
}

/// Writes the ChromeDriver capabilities the browser tests use and returns the path:
/// headless, no sandbox (CI runs as root), fake media devices, no network noise.
pub fn webdriver_json() -> Result<PathBuf> {
    let path = crate::root().join("target").join("webdriver.json");
    let caps = serde_json_caps();
    std::fs::create_dir_all(crate::root().join("target"))?;
    std::fs::write(&path, caps)?;
    Ok(path)
}

/// Chromium flags shared by every test that starts a browser (one list, also used
/// by the end-to-end harness).
const CHROMIUM_FLAGS: &str = include_str!("../../tests/chromium-flags.txt");

fn serde_json_caps() -> String {
    let args: Vec<String> = CHROMIUM_FLAGS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|a| format!("\"{a}\""))
        .collect();
    format!(
        "{{\"goog:chromeOptions\":{{\"binary\":\"/usr/bin/chromium\",\"args\":[{}]}}}}",
        args.join(",")
    )
}

/// The PocketSphinx version the live captions use (PyPI; it ships its US
/// English model).
pub const POCKETSPHINX_VERSION: &str = "5.1.1";

/// Makes sure a Python with PocketSphinx exists for the speech recogniser: a
/// virtual environment in `target/tools/captions`, made with the machine's
/// `python3` and `pip install pocketsphinx==5.1.1`; returns its `python`.
pub fn ensure_captions() -> Result<PathBuf> {
    let venv = crate::root().join("target/tools/captions");
    let python = venv.join("bin/python");
    let has = |python: &Path| {
        Command::new(python)
            .args([
                "-c",
                &format!(
                    "import pocketsphinx, importlib.metadata as m; \
                     assert m.version('pocketsphinx') == '{POCKETSPHINX_VERSION}'"
                ),
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has(&python) {
        return Ok(python);
    }
    if !python.exists() {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        if !made && is_root() && is_debian() {
            // Debian's python3 keeps venv in its own package.
            let install = "apt-get update && apt-get install -y python3-venv";
            check(
                Command::new("sh")
                    .args(["-c", &format!("DEBIAN_FRONTEND=noninteractive {install}")]),
                install,
            )?;
        }
        if !python.exists() {
            check(
                Command::new("python3").args(["-m", "venv"]).arg(&venv),
                "python3 -m venv target/tools/captions",
            )?;
        }
    }
    check(
        Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("pocketsphinx=={POCKETSPHINX_VERSION}"),
        ]),
        &format!("pip install pocketsphinx=={POCKETSPHINX_VERSION}"),
    )?;
    if !has(&python) {
        bail!(
            "PocketSphinx {POCKETSPHINX_VERSION} did not install into {}",
            venv.display()
        );
    }
    Ok(python)
}
