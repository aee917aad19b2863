//! `shieldcall serve`: configuration from flags, environment and TOML; the demo
//! tenant; signals.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ServeArgs, runtime};
use crate::AppState;
use crate::auth;
use crate::config::Config;
use crate::error::Result;
use crate::ops::Ops;

/// The optional TOML file; flags and `SHIELDCALL_*` variables win over it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<String>,
    data_dir: Option<PathBuf>,
    /// PostgreSQL instead of SQLite.
    database_url: Option<String>,
    /// NATS between relay nodes (with `database_url`).
    bus_url: Option<String>,
    www: Option<PathBuf>,
    #[serde(default)]
    public_origins: Vec<String>,
    demo: Option<bool>,
    #[serde(default)]
    stun_urls: Vec<String>,
    #[serde(default)]
    turn_urls: Vec<String>,
    turn_secret: Option<String>,
    turn_ttl_secs: Option<u64>,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    #[serde(default)]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// Connections at once from one address (default 256).
    max_connections_per_address: Option<usize>,
    /// Connections at once in all (default 20,000).
    max_connections: Option<usize>,
    /// Seconds a call stays parked before the parker is rung back (default 300).
    park_timeout_secs: Option<u64>,
    /// The media component's UDP address, given to browsers (default
    /// `127.0.0.1:0`; set the server's reachable address to record calls
    /// from other machines).
    media_address: Option<std::net::SocketAddr>,
    /// Days a recording is kept (default 30, 1 to 3650).
    recording_retention_days: Option<u64>,
    /// A Python with PocketSphinx, for live captions (default: none, and
    /// captions are off).
    captions_python: Option<PathBuf>,
    /// Per-connection sustained messages per second (default 20).
    ws_rate_per_sec: Option<f64>,
    /// Per-connection burst (default 60).
    ws_burst: Option<f64>,
    /// PEM certificate chain for built-in TLS (with `tls_key`).
    tls_cert: Option<PathBuf>,
    /// PEM private key for built-in TLS (with `tls_cert`).
    tls_key: Option<PathBuf>,
}

/// Where `serve` listens and what it does on start.
struct Startup {
    bind: String,
    demo: bool,
    /// Certificate chain and key files, for built-in TLS.
    tls: Option<(PathBuf, PathBuf)>,
}

/// The demo tenant's users, created on first start with an empty database.
pub const DEMO_USERS: [(&str, bool); 3] = [
    ("admin@example.test", true),
    ("alice@example.test", false),
    ("bob@example.test", false),
];

/// Creates the demo tenant if the store has no users; returns the one-time
/// passwords it chose.
pub async fn create_demo(state: &AppState) -> Result<Vec<(String, String)>> {
    if !state.store().users(None).await?.is_empty() {
        return Ok(Vec::new());
    }
    let ops = Ops {
        store: state.store(),
        actor: "demo",
    };
    let mut out = Vec::new();
    for (name, admin) in DEMO_USERS {
        let password = auth::random_hex::<8>()?;
        let hash = auth::hash_password(state.config().password_cost, password.clone()).await?;
        ops.add_user(name, hash, admin).await?;
        out.push((name.to_string(), password));
    }
    Ok(out)
}

fn build_config(
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    args: &ServeArgs,
) -> anyhow::Result<(Config, Startup)> {
    let file: FileConfig = match &args.config {
        Some(path) => toml::from_str(
            &std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        )
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        None => FileConfig::default(),
    };
    let mut config = Config::new(data_dir.or(file.data_dir).unwrap_or_else(|| "data".into()));
    config.database_url = database_url
        .or(file.database_url)
        .map(crate::config::DatabaseUrl);
    config.bus_url = args
        .bus_url
        .clone()
        .or(file.bus_url)
        .map(crate::config::DatabaseUrl);
    config.www = args
        .www
        .clone()
        .or(file.www)
        .unwrap_or_else(|| "www".into());
    config.public_origins = if args.public_origins.is_empty() {
        file.public_origins
    } else {
        args.public_origins.clone()
    };
    for o in &config.public_origins {
        if !(o.starts_with("http://") || o.starts_with("https://")) {
            anyhow::bail!(
                "--public-origin {o:?}: expected http://host[:port] or https://host[:port]"
            );
        }
    }
    config.ice.stun_urls = if args.stun_urls.is_empty() {
        file.stun_urls
    } else {
        args.stun_urls.clone()
    };
    config.ice.turn_urls = if args.turn_urls.is_empty() {
        file.turn_urls
    } else {
        args.turn_urls.clone()
    };
    config.ice.turn_secret = args.turn_secret.clone().or(file.turn_secret);
    config.trusted_proxies = if args.trusted_proxies.is_empty() {
        file.trusted_proxies
    } else {
        args.trusted_proxies.clone()
    };
    if let Some(ttl) = file.turn_ttl_secs {
        config.ice.turn_ttl = Duration::from_secs(ttl);
    }
    if let Some(rate) = file.ws_rate_per_sec.filter(|r| *r > 0.0) {
        config.msg_rate = rate;
    }
    if let Some(burst) = file.ws_burst.filter(|b| *b >= 1.0) {
        config.msg_burst = burst;
    }
    if let Some(n) = file.max_connections_per_address.filter(|n| *n > 0) {
        config.max_connections_per_address = n;
    }
    if let Some(n) = file.max_connections.filter(|n| *n > 0) {
        config.max_connections = n;
    }
    if let Some(secs) = file.park_timeout_secs.filter(|s| (10..=3600).contains(s)) {
        config.park_timeout = Duration::from_secs(secs);
    }
    if let Some(days) = file
        .recording_retention_days
        .filter(|d| (1..=3650).contains(d))
    {
        config.recording_retention = Duration::from_secs(days * 24 * 3600);
    }
    config.captions_python = args.captions_python.clone().or(file.captions_python);
    if let Some(addr) = file.media_address {
        anyhow::ensure!(
            !addr.ip().is_unspecified(),
            "media_address must be an address browsers reach, not {addr} (it is their ICE candidate)"
        );
        config.media_address = addr;
    }
    let bind = args
        .bind
        .clone()
        .or(file.bind)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let demo = !args.no_demo && file.demo.unwrap_or(true);
    let tls = match (
        args.tls_cert.clone().or(file.tls_cert),
        args.tls_key.clone().or(file.tls_key),
    ) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(_), None) => {
            anyhow::bail!("--tls-cert needs --tls-key too (the PEM private key of the certificate)")
        }
        (None, Some(_)) => {
            anyhow::bail!("--tls-key needs --tls-cert too (the PEM certificate chain of the key)")
        }
    };
    Ok((config, Startup { bind, demo, tls }))
}

pub(super) fn serve(
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    args: ServeArgs,
) -> anyhow::Result<()> {
    let (config, Startup { bind, demo, tls }) = build_config(data_dir, database_url, &args)?;
    // Read at start only: a restart picks up renewed files.
    let tls = match tls {
        Some((cert, key)) => Some(crate::tls::load_server_config(&cert, &key)?),
        None => None,
    };
    let rt = runtime()?;
    rt.block_on(async move {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("SHIELDCALL_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .with_writer(std::io::stderr)
            .init();
        let state = AppState::open(config).await?;
        if demo {
            let created = create_demo(&state).await?;
            if !created.is_empty() {
                say("Created the demo tenant example.test. One-time passwords (shown only now):");
                for (user, pw) in &created {
                    say(&format!("  {user}  {pw}"));
                }
            }
        }
        let stop = shutdown_signal();
        let listener = tokio::net::TcpListener::bind(&bind).await?;
        let addr = listener.local_addr()?;
        match tls {
            Some(tls) => {
                say(&format!("Shieldcall is running at https://{addr}/"));
                crate::serve_tls(listener, state, tls, stop).await?;
            }
            None => {
                say(&format!("Shieldcall is running at http://{addr}/"));
                crate::serve(listener, state, stop).await?;
            }
        }
        say("Shieldcall stopped.");
        Ok(())
    })
}

/// A line for the operator on standard output. A closed stdout (a supervisor or a
/// benchmark that stopped reading) must not make the server panic, so a failed
/// write is ignored.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// A future that completes on Ctrl-C or SIGTERM. The handlers are installed when
/// this is called (not when the future is first polled), so a signal that
/// arrives right after start-up is not lost. Call it inside the runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        let term = async move {
            match term {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            () = term => {},
        }
    }
}
