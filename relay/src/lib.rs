//! `shieldcall-relay`: the Shieldcall server.
//!
//! # Layout
//! - [`serve`] runs the HTTP server on a bound listener until a shutdown future
//!   completes; [`app`] builds the router, so tests drive it on port 0.
//! - `static_files`: the browser client from `www/`.
//! - `code_cmd`: `shieldcall code`.
//!
//! The binary (`src/main.rs`) only parses the command line and calls this library.

pub mod code_cmd;
mod static_files;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;

/// Everything the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Directory the browser client is served from.
    www: PathBuf,
}

impl AppState {
    /// State serving the client from `www`.
    pub fn new(www: PathBuf) -> Self {
        Self {
            inner: Arc::new(Inner { www }),
        }
    }
}

/// The HTTP routes.
pub fn app(state: AppState) -> Router {
    Router::new().fallback(static_handler).with_state(state)
}

async fn static_handler(State(state): State<AppState>, uri: Uri) -> Response {
    static_files::serve_file(&state.inner.www, &uri).await
}

/// Serves `app(state)` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
