//! `shieldcall-relay`: the Shieldcall server.
//!
//! # Layout
//! - [`serve`] runs the HTTP server on a bound listener until a shutdown future
//!   completes, [`serve_tls`] the same over TLS ([`tls`]), both through one
//!   accept loop with time limits (`http`); [`app`] builds the router, so tests
//!   drive it on port 0.
//! - [`AppState`]: the one shared state (config, store, hub, sign-in limiter).
//! - [`policy`]: the pure policy engine (effective setting, call mode).
//! - [`store`]: persistence behind the [`store::Store`] trait; SQLite today.
//! - [`ops`]: administrative changes with their audit entries, for CLI and API.
//! - [`auth`]: passwords, sessions and the extractors guarding private routes.
//! - `api`: sign-in, sign-out, `/api/me`; `admin`: `/api/admin/...`.
//! - `ws`: one WebSocket connection, over the relay's own RFC 6455 server side
//!   (`ws::frame`, a sans-IO codec, and `ws::socket`); [`hub`]: presence and call
//!   routing.
//! - [`turn`]: ICE servers and TURN REST credentials.
//! - [`cli`]: the `shieldcall` command line; `static_files`: the browser client.
//!
//! # Panics
//! None on client input. Bad frames, unknown users, foreign call ids and floods are
//! answered with errors; a panic is a bug.
//!
//! The binary (`src/main.rs`) only parses the command line and calls this library.

mod admin;
mod api;
pub mod auth;
pub mod captions;
pub mod cli;
pub mod code_cmd;
pub mod config;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
mod http;
pub mod hub;
pub mod media;
pub mod ops;
pub mod policy;
mod static_files;
pub mod store;
pub mod tls;
pub mod turn;
mod ws;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use axum::routing::{get, post};
use tokio::sync::watch;

pub use config::{Config, DatabaseUrl};
pub use error::{Error, Result};

use crate::hub::Hub;
use crate::store::{NodeLock, PostgresStore, SqliteStore, Store, unix_now};

/// Everything the handlers share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Settings.
    config: Config,
    /// Persistence.
    store: Arc<dyn Store>,
    /// Devices, presence and calls.
    hub: Arc<Hub>,
    /// Failed sign-ins per account and address.
    limiter: auth::LoginLimiter,
    /// Origins added by `serve` for the bound address.
    bound_origins: RwLock<Vec<String>>,
    /// Set by `serve_tls`: the relay itself speaks TLS, so cookies are `Secure`.
    tls: AtomicBool,
    /// Flips to `true` when the server stops, so WebSockets close.
    shutdown: watch::Sender<bool>,
    /// Held while settings are read from the store and pushed, so a slow refresh
    /// never pushes a setting older than one a concurrent change just pushed.
    settings_lock: tokio::sync::Mutex<()>,
    /// A hash of a random password at the configured cost, checked against when
    /// the user name is unknown (made on first use).
    dummy_hash: tokio::sync::OnceCell<String>,
    /// The store's change counter as of the last full refresh (-1 before the
    /// first); a change this relay made and pushed itself advances it, so the
    /// change watcher does not reload everything for it.
    seen_changes: std::sync::atomic::AtomicI64,
    /// Full refreshes done, for tests and diagnostics.
    refreshes: std::sync::atomic::AtomicU64,
    /// Held while call history records go from the hub to the store, so that a
    /// reader who flushed first sees every record made before it asked.
    history_lock: tokio::sync::Mutex<()>,
    /// On PostgreSQL: this relay's claim to be the database's one node, checked
    /// by a task of `serve` (see [`guard_node`]).
    node_lock: tokio::sync::Mutex<Option<NodeLock>>,
    /// Notified when the claim went to another relay: `serve` stops.
    node_lost: tokio::sync::Notify,
    /// Set with `node_lost`, so `serve` returns an error instead of `Ok`.
    lost: AtomicBool,
    /// The media component (recording), started with the first media leg.
    media: tokio::sync::OnceCell<media::MediaServer>,
}

impl AppState {
    /// Opens the store the configuration names: PostgreSQL at
    /// `config.database_url`, claimed as this relay's one node, or else SQLite
    /// in `config.data_dir`. The call-id key is kept in `config.data_dir`
    /// (`hub::KEY_FILE`) either way.
    pub async fn open(config: Config) -> Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| Error::Internal(format!("create {}: {e}", config.data_dir.display())))?;
        let key = hub::CallKey::load_or_create(&config.data_dir)?;
        match &config.database_url {
            Some(url) => {
                let store = PostgresStore::connect(&url.0).await?;
                let lock = store.claim_node().await?;
                let state = Self::with_store(config, Arc::new(store), key);
                *state.inner.node_lock.lock().await = Some(lock);
                Ok(state)
            }
            None => {
                let store = SqliteStore::open(&config.data_dir).await?;
                Ok(Self::with_store(config, Arc::new(store), key))
            }
        }
    }

    /// State over any store, minting call ids with `key`.
    pub fn with_store(config: Config, store: Arc<dyn Store>, key: hub::CallKey) -> Self {
        let hub = Hub::new(
            config.ring_timeout,
            config.reconnect_grace,
            config.park_timeout,
            key,
        );
        hub.set_captions_deployed(config.captions_python.is_some());
        let limiter = auth::LoginLimiter::new(
            config.login_per_account,
            config.login_per_address,
            config.login_window,
        );
        Self {
            inner: Arc::new(Inner {
                config,
                store,
                hub,
                limiter,
                bound_origins: RwLock::new(Vec::new()),
                tls: AtomicBool::new(false),
                shutdown: watch::channel(false).0,
                settings_lock: tokio::sync::Mutex::new(()),
                dummy_hash: tokio::sync::OnceCell::new(),
                seen_changes: std::sync::atomic::AtomicI64::new(-1),
                refreshes: std::sync::atomic::AtomicU64::new(0),
                history_lock: tokio::sync::Mutex::new(()),
                node_lock: tokio::sync::Mutex::new(None),
                node_lost: tokio::sync::Notify::new(),
                lost: AtomicBool::new(false),
                media: tokio::sync::OnceCell::new(),
            }),
        }
    }

    /// Writes the call history records the hub made to the store. Records the
    /// store refuses go back to the hub, to be tried again.
    pub async fn flush_history(&self) -> Result<()> {
        let _one = self.inner.history_lock.lock().await;
        let mut records = self.hub().take_history();
        if records.is_empty() {
            return Ok(());
        }
        // One transaction: all of them are written, or none.
        if let Err(e) = self.store().add_history(records.make_contiguous()).await {
            self.hub().requeue_history(records);
            return Err(e);
        }
        Ok(())
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    /// The switchboard.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    /// The media component, started (its UDP socket bound) on first use.
    pub async fn media(&self) -> Result<&media::MediaServer> {
        self.inner
            .media
            .get_or_try_init(|| {
                media::MediaServer::start(
                    self.config().media_address,
                    &self.config().data_dir,
                    self.hub().clone(),
                    self.config().captions_python.clone(),
                )
            })
            .await
    }

    /// The media component if it has started.
    pub fn media_started(&self) -> Option<&media::MediaServer> {
        self.inner.media.get()
    }

    fn limiter(&self) -> &auth::LoginLimiter {
        &self.inner.limiter
    }

    /// The hash checked for unknown user names (see `Inner::dummy_hash`).
    async fn dummy_hash(&self) -> Result<String> {
        let cost = self.inner.config.password_cost;
        self.inner
            .dummy_hash
            .get_or_try_init(|| async move {
                auth::hash_password(cost, auth::random_hex::<16>()?).await
            })
            .await
            .cloned()
    }

    /// Full refreshes done so far (see [`AppState::refresh`]).
    pub fn refreshes(&self) -> u64 {
        self.inner.refreshes.load(Ordering::Relaxed)
    }

    /// This relay changed the store from `before` to `after` of the change
    /// counter and pushed the change itself: if that was the only change since
    /// the last full refresh, the watcher need not reload everything for it.
    pub(crate) fn own_change(&self, before: i64, after: i64) {
        if after == before + 1 {
            let _ = self.inner.seen_changes.compare_exchange(
                before,
                after,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    /// Serialises settings pushes (see `Inner::settings_lock`).
    async fn settings_guard(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.settings_lock.lock().await
    }

    fn shutdown_rx(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Whether `origin` (an `Origin` header value) is one of ours.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/');
        self.inner
            .config
            .public_origins
            .iter()
            .any(|o| o.trim_end_matches('/') == origin)
            || self
                .inner
                .bound_origins
                .read()
                .is_ok_and(|v| v.iter().any(|o| o == origin))
    }

    /// Whether session cookies are `Secure`: a public origin is https
    /// ([`Config::secure_cookies`]) or the relay serves TLS itself ([`serve_tls`]).
    pub fn secure_cookies(&self) -> bool {
        self.inner.config.secure_cookies() || self.inner.tls.load(Ordering::Relaxed)
    }

    /// Allows the origins of the address the server is bound to:
    /// `http://<addr>`, and for loopback also `http://localhost:<port>`.
    pub fn add_bound_origins(&self, addr: SocketAddr) {
        self.add_bound_origins_with(Scheme::Http, addr);
    }

    /// [`AppState::add_bound_origins`] for `scheme`.
    pub fn add_bound_origins_with(&self, scheme: Scheme, addr: SocketAddr) {
        let scheme = scheme.as_str();
        let mut list = vec![format!("{scheme}://{addr}")];
        if addr.ip().is_loopback() {
            list.push(format!("{scheme}://localhost:{}", addr.port()));
        }
        if let Ok(mut v) = self.inner.bound_origins.write() {
            v.extend(list);
        }
    }

    /// Re-reads tenants, accounts, policies, assignments and switches, and pushes
    /// changed settings and contact lists to signed-in users; closes the
    /// connections of sessions that no longer exist (signed out, password changed,
    /// expired) and of users that were removed.
    pub async fn refresh(&self) -> Result<()> {
        let _serial = self.inner.settings_lock.lock().await;
        self.inner.refreshes.fetch_add(1, Ordering::Relaxed);
        let store = self.store();
        let tenants = store.tenants().await?;
        let calling = tenants
            .iter()
            .map(|t| (t.domain.clone(), t.calling))
            .collect();
        self.hub().set_calling_policies(calling);
        let access = tenants
            .into_iter()
            .map(|t| (t.domain, t.external_access))
            .collect();
        self.hub()
            .set_directory_named(access, store.directory().await?);
        // Sessions that ended elsewhere (a password change or sign-out by the
        // CLI, expiry) close their connections here, within a poll interval.
        let now = unix_now();
        for (user, session) in self.hub().online_sessions() {
            if store.session(&session, now).await?.is_none() {
                self.hub().sign_out(&user, Some(&session));
            }
        }
        let mut by_domain = HashMap::new();
        for user in self.hub().online_users() {
            let Some(u) = store.user(&user).await? else {
                self.hub().sign_out(&user, None);
                continue;
            };
            let domain = u.domain().to_string();
            if !by_domain.contains_key(&domain) {
                let data = (
                    store.policies(&domain).await?,
                    store.assignments(&domain).await?,
                );
                by_domain.insert(domain.clone(), data);
            }
            let Some((policies, assignments)) = by_domain.get(&domain) else {
                continue;
            };
            let groups = store.groups_of(&user).await?;
            let setting =
                policy::effective_setting(policies, assignments, &user, &groups, u.e2ee_switch);
            self.hub().push_settings(&user, &setting);
        }
        Ok(())
    }
}

/// The HTTP routes.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/api/login", post(api::login))
        .route("/api/logout", post(api::logout))
        .route("/api/me", get(api::me))
        .route("/api/history", get(api::history))
        .route("/api/recordings", get(api::recordings))
        .route("/api/recordings/{id}", get(api::recording))
        .route("/ws", get(ws::upgrade))
        .nest("/api/admin", admin::routes())
        .fallback(static_handler)
        .layer(axum::extract::DefaultBodyLimit::max(API_BODY_LIMIT))
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            strict_transport,
        ))
        .with_state(state)
}

/// Under HTTPS (a public https origin or the relay's own TLS), every response
/// tells the browser to use HTTPS only for a year (HSTS), so a later visit cannot
/// be downgraded to plain HTTP where the `Secure` cookie would not be sent and the
/// page could be replaced.
async fn strict_transport(State(state): State<AppState>, mut resp: Response) -> Response {
    if state.secure_cookies() {
        resp.headers_mut().insert(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            axum::http::HeaderValue::from_static("max-age=31536000"),
        );
    }
    resp
}

/// The largest request body the API reads (413 beyond it). A sign-in form or an
/// admin change is a few hundred bytes; axum's default would be 2 MiB per request.
pub const API_BODY_LIMIT: usize = 64 * 1024;

async fn static_handler(State(state): State<AppState>, uri: Uri) -> Response {
    static_files::serve_file(&state.inner.config.www, &uri).await
}

/// Watches the store's change counter and refreshes signed-in users on a change,
/// so the CLI (another process) reaches them within a poll interval.
async fn watch_changes(state: AppState) {
    let mut tick = tokio::time::interval(state.config().poll_interval);
    loop {
        tick.tick().await;
        match state.store().changes().await {
            Ok(n) if n != state.inner.seen_changes.load(Ordering::Acquire) => {
                // Read before the refresh: a change during it is seen next time.
                if let Err(e) = state.refresh().await {
                    tracing::warn!(error = %e, "refresh after store change failed");
                    continue;
                }
                state.inner.seen_changes.store(n, Ordering::Release);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reading the change counter failed"),
        }
    }
}

/// How the server is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP and WS ([`serve`]).
    Http,
    /// HTTPS and WSS ([`serve_tls`]).
    Https,
}

impl Scheme {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// What `serve` and `serve_tls` run beside the listener: the bound origins, the
/// change watcher, the presence flush, the call history writer, the node guard
/// and the hub's timers. The tasks stop when this is dropped.
struct Running {
    tasks: [tokio::task::JoinHandle<()>; 6],
}

impl Running {
    /// Registers the bound origins for `scheme` (and `Secure` cookies for
    /// https), starts the tasks, and wraps `shutdown` so that it also tells the
    /// WebSockets to close.
    fn start(
        state: &AppState,
        scheme: Scheme,
        addr: SocketAddr,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        if scheme == Scheme::Https {
            state.inner.tls.store(true, Ordering::Relaxed);
        }
        state.add_bound_origins_with(scheme, addr);
        let watcher = tokio::spawn(watch_changes(state.clone()));
        let hub = state.hub().clone();
        let every = state.config().presence_interval;
        let presence = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                hub.flush_presence();
            }
        });
        let writer = state.clone();
        let every = state.config().poll_interval;
        let history = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = writer.flush_history().await {
                    tracing::warn!(error = %e, "writing the call history failed; kept for the next try");
                }
            }
        });
        let guard = tokio::spawn(guard_node(state.clone()));
        let keeper = state.clone();
        let retention = tokio::spawn(async move {
            // Recordings past their retention go, checked hourly.
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
            loop {
                tick.tick().await;
                let config = keeper.config();
                let (dir, keep) = (config.data_dir.clone(), config.recording_retention);
                let gone =
                    tokio::task::spawn_blocking(move || media::expire(&dir, unix_now(), keep))
                        .await
                        .unwrap_or(0);
                if gone > 0 {
                    tracing::info!(gone, "recordings past their retention deleted");
                }
            }
        });
        let timers = tokio::spawn(drive_timers(state.hub().clone()));
        let stopping = state.clone();
        let shutdown = async move {
            tokio::select! {
                () = shutdown => {}
                () = stopping.inner.node_lost.notified() => {}
            }
            let _ = stopping.inner.shutdown.send(true);
        };
        (
            Self {
                tasks: [watcher, presence, history, guard, timers, retention],
            },
            shutdown,
        )
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Runs the hub's timers: sleeps until the earliest is due, runs what is due,
/// and starts over early when a call sets an earlier one.
async fn drive_timers(hub: Arc<Hub>) {
    loop {
        match hub.poll_timeout() {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at.into()) => {
                        hub.handle_timeout(std::time::Instant::now());
                    }
                    () = hub.timer_changed() => {}
                }
            }
            None => hub.timer_changed().await,
        }
    }
}

/// How often a PostgreSQL relay checks its claim on the database (5 s): how
/// long a relay whose claim went to another node may go on before it stops.
const NODE_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Checks this relay's claim on the database every [`NODE_CHECK`] (nothing to
/// do on SQLite). If another relay took it (this relay's connection broke, and
/// the other started meanwhile), two switchboards would each hold half of the
/// calls: this one stops. PostgreSQL out of reach is only logged; nobody can
/// take the claim then.
async fn guard_node(state: AppState) {
    let mut tick = tokio::time::interval(NODE_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut lock = state.inner.node_lock.lock().await;
        let Some(held) = lock.as_mut() else { return };
        match held.check().await {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(
                    "another relay node took this database; stopping (a cluster needs a message bus)"
                );
                state.inner.lost.store(true, Ordering::SeqCst);
                state.inner.node_lost.notify_one();
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach PostgreSQL to check this node's claim; trying again")
            }
        }
    }
}

/// Loads external access and the accounts into the hub before the first
/// connection, so no contact list is drawn from an empty directory. A failure is
/// logged; the change watcher tries again.
async fn initial_refresh(state: &AppState) {
    if let Err(e) = state.refresh().await {
        tracing::warn!(error = %e, "loading the directory failed");
    }
}

/// Serves `app(state)` on `listener` until `shutdown` completes, then closes the
/// WebSockets and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, None, shutdown).await
}

/// [`serve`] over TLS: HTTPS and WSS with `tls_config` (see
/// [`tls::load_server_config`]). The bound origins are `https://...` and session
/// cookies are `Secure`. Each TLS handshake must finish within
/// [`tls::HANDSHAKE_TIMEOUT`].
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    state: AppState,
    tls_config: Arc<tls::rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, Some(tls_config), shutdown).await
}

/// [`serve`] and [`serve_tls`]: the directory loaded, the side tasks running,
/// then the accept loop until `shutdown`.
async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    tls: Option<Arc<tls::rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    initial_refresh(&state).await;
    let scheme = if tls.is_some() {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let (running, shutdown) = Running::start(&state, scheme, listener.local_addr()?, shutdown);
    let limits = http::Limits::from(state.config());
    let lost = state.clone();
    http::accept_loop(listener, app(state), tls, limits, shutdown).await;
    drop(running);
    if let Some(lock) = lost.inner.node_lock.lock().await.take() {
        lock.release().await;
    }
    if lost.inner.lost.load(Ordering::SeqCst) {
        return Err(std::io::Error::other(
            "another relay node took this relay's database",
        ));
    }
    Ok(())
}
