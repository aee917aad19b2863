//! A throwaway PostgreSQL server for the tests: a fresh cluster (`initdb`) in a
//! temporary directory, listening on a free loopback port, stopped and deleted
//! when [`TestPostgres`] is dropped. The tests get its URL in
//! `SHIELDCALL_TEST_DATABASE_URL` and create one database each.
//!
//! PostgreSQL refuses to run as root, so as root the cluster belongs to the
//! `postgres` account that Debian's package creates, and its commands run
//! through `runuser`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::check;
use crate::tools::{is_debian, is_root};

/// The variable the tests read the server's URL from.
pub const URL_VAR: &str = "SHIELDCALL_TEST_DATABASE_URL";

/// The Debian package, as the issue of the cluster configuration names it.
const PACKAGE: &str = "postgresql-15";

/// `initdb`'s directory: the newest `/usr/lib/postgresql/N/bin` (Debian's
/// layout), else wherever `initdb` is on the `PATH`.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let out = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    path.parent()
        .filter(|_| out.status.success())
        .map(Path::to_path_buf)
}

/// Makes sure PostgreSQL's server programs are installed; returns their directory.
pub fn ensure_postgres() -> Result<PathBuf> {
    if let Some(bin) = bin_dir() {
        return Ok(bin);
    }
    // The distribution's default version where 15 is not offered (Debian 13).
    let install = format!(
        "apt-get update && (apt-get install -y {PACKAGE} || apt-get install -y postgresql)"
    );
    if is_root() && is_debian() {
        check(
            Command::new("sh").args(["-c", &format!("DEBIAN_FRONTEND=noninteractive {install}")]),
            &install,
        )?;
        if let Some(bin) = bin_dir() {
            return Ok(bin);
        }
    }
    bail!("PostgreSQL is needed for the store tests; install it with:\n    sudo sh -c '{install}'")
}

/// A running test server; stopped and deleted on drop.
#[derive(Debug)]
pub struct TestPostgres {
    bin: PathBuf,
    dir: PathBuf,
    /// `postgres://shieldcall@127.0.0.1:PORT/postgres`.
    pub url: String,
}

/// `program args…`, as the `postgres` account when we are root.
fn as_owner(bin: &Path, program: &str) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(bin.join(program));
        cmd
    } else {
        Command::new(bin.join(program))
    }
}

/// A loopback port nobody listens on now.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl TestPostgres {
    /// Creates and starts the cluster for tests: trust authentication, loopback
    /// only (nobody else can reach it, and it lives as long as the test run),
    /// `fsync` off.
    pub fn start() -> Result<Self> {
        Self::start_with(false)
    }

    /// The same with `fsync` on as in production (`durable`), for benchmarks.
    pub fn start_with(durable: bool) -> Result<Self> {
        let bin = ensure_postgres()?;
        // As root, under /tmp: a $TMPDIR below /root would be closed to `postgres`.
        let tmp = if is_root() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tmp.join(format!("shieldcall-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        if is_root() {
            check(
                Command::new("chown").args(["postgres:postgres"]).arg(&dir),
                "chown the test database directory to postgres",
            )?;
        }
        let data = dir.join("data");
        let port = free_port()?;
        let server = Self {
            bin,
            dir,
            url: format!("postgres://shieldcall@127.0.0.1:{port}/postgres"),
        };
        let out = as_owner(&server.bin, "initdb")
            .args([
                "--auth=trust",
                "--username=shieldcall",
                "--encoding=UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .output()
            .context("running initdb")?;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        // fsync off for tests: a test cluster that dies with the machine is thrown
        // away anyway. Up to 400 connections: every test relay has a pool of up to 16.
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync={} -c max_connections=400",
            server.dir.display(),
            if durable { "on" } else { "off" }
        );
        let out = as_owner(&server.bin, "pg_ctl")
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(&data)
            .arg("-l")
            .arg(server.dir.join("server.log"))
            .args(["-o", &options])
            .output()
            .context("running pg_ctl start")?;
        if !out.status.success() {
            let log = std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default();
            bail!(
                "the test PostgreSQL did not start: {}{log}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        eprintln!(
            "xtask: test PostgreSQL at 127.0.0.1:{port} ({})",
            server.dir.display()
        );
        Ok(server)
    }
}

impl TestPostgres {
    /// Creates the database `name`; returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String> {
        check(
            Command::new("psql").arg(&self.url).args([
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                &format!("CREATE DATABASE {name}"),
            ]),
            &format!("CREATE DATABASE {name}"),
        )?;
        let (base, _) = self.url.rsplit_once('/').unwrap_or((&self.url, ""));
        Ok(format!("{base}/{name}"))
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let _ = as_owner(&self.bin, "pg_ctl")
            .args(["stop", "-m", "immediate", "-D"])
            .arg(self.dir.join("data"))
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
