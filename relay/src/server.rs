//! The HTTP server: the routes ([`app`]), the accept loop's side tasks (the
//! change watcher, presence, the call history writer, the node guard, the
//! hub's timers, the recordings' retention), and [`serve`] / [`serve_tls`],
//! which run them all until a shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use axum::routing::{get, post};

use crate::directory::{initial_refresh, watch_changes};
use crate::hub::Hub;
use crate::store::unix_now;
use crate::{AppState, admin, api, http, media, static_files, tls, ws};

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
/// change watcher, the presence flush, the call history writer, the node guard,
/// the hub's timers and, in a cluster, the watch on the node's lease. The tasks
/// stop when this is dropped.
struct Running {
    tasks: [tokio::task::JoinHandle<()>; 7],
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
        // A cluster node whose lease ran out stops serving.
        let fence = state.clone();
        let fenced = tokio::spawn(async move {
            match fence.cluster() {
                Some(c) => {
                    c.node().fenced().await;
                    fence.inner.node_lost.notify_one();
                }
                None => std::future::pending().await,
            }
        });
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
                tasks: [watcher, presence, history, guard, timers, retention, fenced],
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
    if let Some(c) = lost.cluster() {
        if c.node().is_fenced() {
            return Err(std::io::Error::other(
                "this relay node's lease in the cluster ran out (the database was out of reach); it stopped serving",
            ));
        }
        if let Err(e) = c.node().leave().await {
            tracing::warn!(error = %e, "leaving the cluster failed; the other nodes reap this one when its lease runs out");
        }
    }
    if lost.inner.lost.load(Ordering::SeqCst) {
        return Err(std::io::Error::other(
            "another relay node took this relay's database",
        ));
    }
    Ok(())
}
