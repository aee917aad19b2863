//! Builds the browser bundles: each client crate for wasm32, then wasm-bindgen's
//! glue (as a library, so its version is the one in `Cargo.lock`), into `www/pkg/`.
//! Two bundles: the call client everyone loads (`shieldcall-web`, budget 100 KB
//! gzipped) and the admin policy page (`shieldcall-admin`), loaded on `/admin` only.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::{cargo, check, root, tools};

/// Sizes of a built bundle, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct BundleSize {
    /// wasm + JS glue, uncompressed.
    pub raw: u64,
    /// wasm + JS glue, each gzipped at level 9.
    pub gzipped: u64,
}

/// The bundles: package, and the file stem wasm-bindgen writes.
const BUNDLES: [(&str, &str); 2] = [
    ("shieldcall-web", "shieldcall_web"),
    ("shieldcall-admin", "shieldcall_admin"),
];

/// Builds `www/pkg/{shieldcall_web,shieldcall_admin}{.js,_bg.wasm}` and reports
/// the call client's size (the admin bundle's is printed).
pub fn dist() -> Result<BundleSize> {
    tools::ensure_wasm_target()?;
    let mut sizes = Vec::new();
    for (package, stem) in BUNDLES {
        sizes.push(bundle(package, stem)?);
    }
    Ok(sizes[0])
}

fn bundle(package: &str, stem: &str) -> Result<BundleSize> {
    // One package per build: built together, cargo would unify the features of
    // `shieldcall-web` and put the call client into the admin bundle.
    check(
        cargo().args([
            "build",
            "--package",
            package,
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            "wasm-release",
        ]),
        &format!("building {package} (wasm32)"),
    )?;
    let wasm = root().join(format!(
        "target/wasm32-unknown-unknown/wasm-release/{stem}.wasm"
    ));
    let out = root().join("www/pkg");
    std::fs::create_dir_all(&out)?;
    // This crate's snippets of an earlier build must not be served or counted.
    for old in snippet_dirs(&out, package)? {
        std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .web(true)?
        // Keep the default module path so `init()` works without arguments.
        .omit_default_module_path(false)
        .typescript(false)
        .remove_name_section(true)
        .remove_producers_section(true)
        .generate(&out)
        .map_err(|e| anyhow::anyhow!("wasm-bindgen: {e:#}"))?;
    let bg = out.join(format!("{stem}_bg.wasm"));
    optimise(&bg)?;
    // The glue, the module, and the JS snippets the crate inlines (served
    // from `pkg/snippets/<crate>-<hash>/`, and loaded with it).
    let mut files = vec![out.join(format!("{stem}.js")), bg];
    for dir in snippet_dirs(&out, package)? {
        files.extend(js_files(&dir)?);
    }
    let mut size = BundleSize { raw: 0, gzipped: 0 };
    for f in &files {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        size.raw += bytes.len() as u64;
        size.gzipped += gzip_len(&bytes)?;
    }
    eprintln!(
        "xtask: bundle {stem} in {}: {:.1} KB raw, {:.2} KB gzipped",
        out.display(),
        size.raw as f64 / 1000.0,
        size.gzipped as f64 / 1000.0
    );
    Ok(size)
}

/// The directories of `package`'s snippets under `out/snippets`.
fn snippet_dirs(out: &std::path::Path, package: &str) -> Result<Vec<PathBuf>> {
    let dir = out.join("snippets");
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let prefix = format!("{package}-");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() && name.starts_with(&prefix) {
            found.push(path);
        }
    }
    Ok(found)
}

/// The `.js` files under `dir`, at any depth.
fn js_files(dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(js_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "js") {
            found.push(path);
        }
    }
    Ok(found)
}

fn gzip_len(bytes: &[u8]) -> Result<u64> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes)?;
    Ok(enc.finish()?.len() as u64)
}

/// Runs `wasm-opt -Oz` only when a binaryen of version 112 or later is installed:
/// Debian's binaryen 108 produces a bundle that fails at start-up while reporting
/// success.
fn optimise(wasm: &PathBuf) -> Result<()> {
    let Ok(out) = Command::new("wasm-opt").arg("--version").output() else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .split(|c: char| !c.is_ascii_digit())
        .find(|s| !s.is_empty())
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(0);
    if version < 112 {
        eprintln!(
            "xtask: skipping wasm-opt (binaryen {version} < 112 is known to break the bundle)"
        );
        return Ok(());
    }
    check(
        Command::new("wasm-opt")
            .arg("-Oz")
            .arg("--enable-bulk-memory")
            .arg("--enable-nontrapping-float-to-int")
            .arg(wasm)
            .arg("-o")
            .arg(wasm),
        "wasm-opt -Oz",
    )
}
