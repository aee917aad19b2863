//! The one shared state of the relay ([`AppState`]): the configuration, the
//! store, the hub, the sign-in limiter, the media component and what `serve`
//! and the directory refresh (`directory.rs`) keep between requests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use crate::hub::{self, Hub};
use crate::server::Scheme;
use crate::store::{NodeLock, PostgresStore, SqliteStore, Store};
use crate::{Config, Error, Result, auth, media};

/// Everything the handlers share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    /// Settings.
    pub(crate) config: Config,
    /// Persistence.
    pub(crate) store: Arc<dyn Store>,
    /// Devices, presence and calls.
    pub(crate) hub: Arc<Hub>,
    /// Failed sign-ins per account and address.
    pub(crate) limiter: auth::LoginLimiter,
    /// Origins added by `serve` for the bound address.
    pub(crate) bound_origins: RwLock<Vec<String>>,
    /// Set by `serve_tls`: the relay itself speaks TLS, so cookies are `Secure`.
    pub(crate) tls: AtomicBool,
    /// Flips to `true` when the server stops, so WebSockets close.
    pub(crate) shutdown: watch::Sender<bool>,
    /// Held (to write) while settings are read from the store and pushed, so
    /// a slow refresh never pushes a setting older than one a concurrent
    /// change just pushed; held to read while a device signs in with the
    /// setting it read, so that it misses no push. Sign-ins share it: a
    /// thousand browsers reconnecting after a restart are not served one
    /// after another.
    pub(crate) settings_lock: tokio::sync::RwLock<()>,
    /// A hash of a random password at the configured cost, checked against when
    /// the user name is unknown (made on first use).
    pub(crate) dummy_hash: tokio::sync::OnceCell<String>,
    /// The store's change counter as of the last full refresh (-1 before the
    /// first); a change this relay made and pushed itself advances it, so the
    /// change watcher does not reload everything for it.
    pub(crate) seen_changes: std::sync::atomic::AtomicI64,
    /// Full refreshes done, for tests and diagnostics.
    pub(crate) refreshes: std::sync::atomic::AtomicU64,
    /// Held while call history records go from the hub to the store, so that a
    /// reader who flushed first sees every record made before it asked.
    pub(crate) history_lock: tokio::sync::Mutex<()>,
    /// On PostgreSQL: this relay's claim to be the database's one node, checked
    /// by a task of `serve` (see `server::guard_node`).
    pub(crate) node_lock: tokio::sync::Mutex<Option<NodeLock>>,
    /// Notified when the claim went to another relay: `serve` stops.
    pub(crate) node_lost: tokio::sync::Notify,
    /// Set with `node_lost`, so `serve` returns an error instead of `Ok`.
    pub(crate) lost: AtomicBool,
    /// The media component (recording), started with the first media leg.
    pub(crate) media: tokio::sync::OnceCell<media::MediaServer>,
    /// In the cluster configuration: this node's part (`crate::ws::Cluster`).
    pub(crate) cluster: std::sync::OnceLock<Arc<crate::ws::Cluster>>,
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
        match (&config.database_url, &config.bus_url) {
            (None, Some(_)) => Err(Error::Invalid(
                "bus_url (several relay nodes) needs a PostgreSQL database_url: SQLite is one relay's".into(),
            )),
            (Some(url), Some(bus_url)) => {
                let store = PostgresStore::connect(&url.0).await?;
                let timing = crate::cluster::Timing {
                    grace: config.reconnect_grace,
                    ..Default::default()
                };
                let arbiter = crate::cluster::Arbiter::join(store.pool(), timing.lease).await?;
                // One key for every node: any node checks a resume of a call
                // another made.
                let key = hub::CallKey::from_bytes(arbiter.shared_key().await?);
                let bus = crate::bus::Bus::connect(&bus_url.0, &format!("shieldcall-{}", arbiter.node()))
                    .await
                    .map_err(|e| Error::Invalid(e.to_string()))?;
                let state = Self::with_store(config, Arc::new(store), key);
                state.hub().set_cluster();
                let node =
                    crate::cluster::Node::start(arbiter, bus.clone(), state.hub().clone(), timing).await?;
                let cluster = crate::ws::Cluster::start(&state, node, bus).await?;
                let _ = state.inner.cluster.set(cluster);
                Ok(state)
            }
            (Some(url), None) => {
                let store = PostgresStore::connect(&url.0).await?;
                let lock = store.claim_node().await?;
                let state = Self::with_store(config, Arc::new(store), key);
                *state.inner.node_lock.lock().await = Some(lock);
                Ok(state)
            }
            (None, None) => {
                let store = SqliteStore::open(&config.data_dir).await?;
                Ok(Self::with_store(config, Arc::new(store), key))
            }
        }
    }

    /// State over any store, minting call ids with `key`.
    pub fn with_store(config: Config, store: Arc<dyn Store>, key: hub::CallKey) -> Self {
        let hub = Hub::new(hub::Config {
            ring_timeout: config.ring_timeout,
            grace: config.reconnect_grace,
            park_timeout: config.park_timeout,
            key,
        });
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
                settings_lock: tokio::sync::RwLock::new(()),
                dummy_hash: tokio::sync::OnceCell::new(),
                seen_changes: std::sync::atomic::AtomicI64::new(-1),
                refreshes: std::sync::atomic::AtomicU64::new(0),
                history_lock: tokio::sync::Mutex::new(()),
                node_lock: tokio::sync::Mutex::new(None),
                node_lost: tokio::sync::Notify::new(),
                lost: AtomicBool::new(false),
                media: tokio::sync::OnceCell::new(),
                cluster: std::sync::OnceLock::new(),
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

    /// In the cluster configuration: this node's part.
    pub(crate) fn cluster(&self) -> Option<&Arc<crate::ws::Cluster>> {
        self.inner.cluster.get()
    }

    /// A handle that does not keep the state alive (for background tasks the
    /// state itself holds).
    pub(crate) fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    /// The state again, if it is still alive.
    pub(crate) fn upgrade(weak: &std::sync::Weak<Inner>) -> Option<Self> {
        weak.upgrade().map(|inner| Self { inner })
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

    pub(crate) fn limiter(&self) -> &auth::LoginLimiter {
        &self.inner.limiter
    }

    /// The hash checked for unknown user names (see `Inner::dummy_hash`).
    pub(crate) async fn dummy_hash(&self) -> Result<String> {
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
    pub(crate) async fn settings_guard(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.inner.settings_lock.write().await
    }

    /// Keeps settings pushes out while a device signs in (see
    /// `Inner::settings_lock`); sign-ins share it.
    pub(crate) async fn signin_guard(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.inner.settings_lock.read().await
    }

    pub(crate) fn shutdown_rx(&self) -> watch::Receiver<bool> {
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
    /// ([`Config::secure_cookies`]) or the relay serves TLS itself ([`crate::serve_tls`]).
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
}
