//! The relay's settings, built by the CLI (flags, `SHIELDCALL_*`, a TOML file) or
//! by tests. No global config: everything lives in the one `AppState`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::PasswordCost;

/// STUN/TURN servers handed to clients.
#[derive(Clone, Default)]
pub struct IceConfig {
    /// `stun:` URLs.
    pub stun_urls: Vec<String>,
    /// `turn:`/`turns:` URLs.
    pub turn_urls: Vec<String>,
    /// coturn's `static-auth-secret`; with it each client gets REST credentials.
    pub turn_secret: Option<String>,
    /// How long TURN credentials last.
    pub turn_ttl: Duration,
}

impl fmt::Debug for IceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceConfig")
            .field("stun_urls", &self.stun_urls)
            .field("turn_urls", &self.turn_urls)
            .field("turn_secret", &self.turn_secret.as_ref().map(|_| "<set>"))
            .field("turn_ttl", &self.turn_ttl)
            .finish()
    }
}

/// A URL that may hold a password (PostgreSQL's, or the NATS bus's), so
/// `Debug` shows only that it is set.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(pub String);

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DatabaseUrl(<set>)")
    }
}

/// Everything the relay can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the SQLite database lives, and the call-id key (`hub::KEY_FILE`).
    pub data_dir: PathBuf,
    /// PostgreSQL instead of SQLite (`postgres://user:password@host/db`); the
    /// relay is then the database's one node (see `store::NodeLock`).
    pub database_url: Option<DatabaseUrl>,
    /// NATS between relay nodes (`nats://[credentials@]host:port`): with
    /// `database_url`, this relay is one node of a cluster (`crate::cluster`).
    pub bus_url: Option<DatabaseUrl>,
    /// Directory of the browser client.
    pub www: PathBuf,
    /// Origins the browser client is served from (e.g. `https://call.example.org`);
    /// the bind address's origin is added by `serve`.
    pub public_origins: Vec<String>,
    /// STUN/TURN.
    pub ice: IceConfig,
    /// How long a call rings before `no-answer` (45 s).
    pub ring_timeout: Duration,
    /// How long an answered call waits for a vanished device (30 s).
    pub reconnect_grace: Duration,
    /// How long a call stays parked before the parker is rung back (300 s).
    pub park_timeout: Duration,
    /// The UDP address of the media component (recording): bound when the first
    /// recording starts and given to browsers as the server's one ICE
    /// candidate, so it must be an address they reach (`127.0.0.1:0`: this
    /// machine only, any free port).
    pub media_address: std::net::SocketAddr,
    /// A Python with PocketSphinx (PyPI `pocketsphinx` 5.1.1) that runs the
    /// speech recogniser for live captions and voicemail transcripts; unset,
    /// live captions are not deployed (`not-deployed`).
    pub captions_python: Option<PathBuf>,
    /// Recordings are deleted this long after they started (30 days; like
    /// Teams' expiration of call recordings, set by the admin).
    pub recording_retention: Duration,
    /// How long a session lasts after sign-in (7 days).
    pub session_lifetime: Duration,
    /// WebSocket ping interval (20 s).
    pub ping_interval: Duration,
    /// A connection silent this long is closed (45 s).
    pub idle_timeout: Duration,
    /// Sustained messages per second per connection (20).
    pub msg_rate: f64,
    /// Burst of messages per connection (60): a full ICE trickle fits.
    pub msg_burst: f64,
    /// Failed sign-ins per account per window (5).
    pub login_per_account: usize,
    /// Failed sign-ins per client address per window (20).
    pub login_per_address: usize,
    /// The sign-in window (5 minutes).
    pub login_window: Duration,
    /// Reverse proxies whose `X-Forwarded-For` is believed (none by default):
    /// a request from one of these addresses is counted under the client address
    /// the proxy appended, not the proxy's own.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Argon2id cost for new hashes.
    pub password_cost: PasswordCost,
    /// How often the store's change counter is polled (250 ms).
    pub poll_interval: Duration,
    /// How often presence changes are sent out, batched (200 ms).
    pub presence_interval: Duration,
    /// How long a client has to send a request's headers, and how long a
    /// keep-alive connection may sit idle between requests (10 s).
    pub http_header_timeout: Duration,
    /// How long one request may take from its headers to its response head:
    /// reading the body and running the handler (30 s; then `408`).
    pub http_request_timeout: Duration,
    /// Connections open at once from one address, WebSockets included (256);
    /// trusted proxies are exempt, since every client comes through them.
    pub max_connections_per_address: usize,
    /// Connections open at once in all (20,000; about two file descriptors each).
    pub max_connections: usize,
}

impl Config {
    /// The defaults, with the database in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database_url: None,
            bus_url: None,
            www: PathBuf::from("www"),
            public_origins: Vec::new(),
            ice: IceConfig {
                turn_ttl: Duration::from_secs(12 * 3600),
                ..IceConfig::default()
            },
            ring_timeout: Duration::from_secs(45),
            reconnect_grace: Duration::from_secs(30),
            park_timeout: Duration::from_secs(300),
            media_address: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            recording_retention: Duration::from_secs(30 * 24 * 3600),
            captions_python: None,
            session_lifetime: Duration::from_secs(7 * 24 * 3600),
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(45),
            msg_rate: 20.0,
            msg_burst: 60.0,
            login_per_account: 5,
            login_per_address: 20,
            login_window: Duration::from_secs(300),
            trusted_proxies: Vec::new(),
            password_cost: PasswordCost::default(),
            poll_interval: Duration::from_millis(250),
            presence_interval: Duration::from_millis(200),
            http_header_timeout: Duration::from_secs(10),
            http_request_timeout: Duration::from_secs(30),
            max_connections_per_address: 256,
            max_connections: 20_000,
        }
    }

    /// Whether session cookies must be `Secure` (any public origin is https).
    /// `serve_tls` makes them `Secure` too: see `AppState::secure_cookies`.
    pub fn secure_cookies(&self) -> bool {
        self.public_origins
            .iter()
            .any(|o| o.starts_with("https://"))
    }
}
