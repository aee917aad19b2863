//! `shieldcall-relay`: the Shieldcall server.
//!
//! # Layout
//! - [`serve`] runs the HTTP server on a bound listener until a shutdown future
//!   completes, [`serve_tls`] the same over TLS ([`tls`]), both through one
//!   accept loop with time limits (`http`); [`app`] builds the router, so tests
//!   drive it on port 0 (`server.rs`).
//! - [`AppState`]: the one shared state (config, store, hub, sign-in limiter,
//!   media component; `state.rs`); `directory.rs` loads what the hub knows of
//!   the store and watches the store for changes.
//! - [`policy`]: the pure policy engine (effective setting, call mode).
//! - [`store`]: persistence behind the [`store::Store`] trait: SQLite, or
//!   PostgreSQL with a `database_url`.
//! - [`ops`]: administrative changes with their audit entries, for CLI and API.
//! - [`auth`]: passwords, sessions and the extractors guarding private routes.
//! - `api`: sign-in, sign-out, `/api/me`; `admin`: `/api/admin/...`.
//! - `ws`: one WebSocket connection, over the relay's own RFC 6455 server side
//!   (`ws::frame`, a sans-IO codec, and `ws::socket`); [`hub`]: presence and call
//!   routing.
//! - [`turn`]: ICE servers and TURN REST credentials.
//! - [`media`]: the media component (recording, voicemail, the sound for live
//!   captions) over `shieldcall-media`; [`captions`]: the speech recogniser.
//! - [`cli`]: the `shieldcall` command line; `static_files`: the browser client.
//! - [`bus`] and [`cluster`]: several relay nodes (`--bus-url`): the NATS
//!   client they talk through, PostgreSQL as the arbiter of their races, a
//!   node's runtime (lease, reaping, presence across nodes); `ws`'s `remote`
//!   carries calls between nodes.
//!
//! # Panics
//! None on client input. Bad frames, unknown users, foreign call ids and floods are
//! answered with errors; a panic is a bug.
//!
//! The binary (`src/main.rs`) only parses the command line and calls this library.

mod admin;
mod api;
pub mod auth;
pub mod bus;
pub mod captions;
pub mod cli;
pub mod cluster;
pub mod code_cmd;
pub mod config;
mod directory;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
mod http;
pub mod hub;
pub mod media;
pub mod ops;
pub mod policy;
mod server;
mod state;
mod static_files;
pub mod store;
pub mod tls;
pub mod turn;
mod ws;

pub use config::{Config, DatabaseUrl};
pub use error::{Error, Result};
pub use server::{API_BODY_LIMIT, Scheme, app, serve, serve_tls};
pub use state::AppState;
