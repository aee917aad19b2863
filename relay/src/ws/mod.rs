//! One WebSocket connection: `GET /ws`.
//!
//! The upgrade runs only after [`Authed`] (401 without a session) and the origin
//! check (403 for a foreign `Origin`). Then one loop `select!`s over the socket,
//! the device's outbox (filled by the hub), a liveness ticker and shutdown. On
//! exit the device is unregistered. What a text message does is [`signal`]'s:
//! this module is the socket loop only.
//!
//! The WebSocket itself is [`socket`] over the sans-IO [`frame`] codec, written
//! for this relay so that a waiting connection holds no buffers (see `socket`).
//!
//! Limits: reads of 4 KiB ([`socket::READ_CHUNK`]), messages up to [`MAX_MESSAGE_BYTES`]
//! (refused from the frame header, before they are read), ping every 20 s, closed
//! after 45 s of silence, a token bucket of 20 messages/s with bursts of 60
//! (configurable; pings count too), an outbox of [`OUTBOX`] messages, and
//! [`socket::WRITE_TIMEOUT`] for each frame written.
//!
//! Never logs SDP, candidates, cookies or message bodies.

pub(crate) mod frame;
mod remote;
mod signal;
mod socket;

pub(crate) use remote::Cluster;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::extract::State;
use axum::response::Response;
use shieldcall_proto::{ErrorCode, MAX_MESSAGE_BYTES, RelayMsg};
use tokio::sync::mpsc;

use self::frame::{ProtocolError, close_code};
use self::signal::{Conn, Flow};
use self::socket::{Incoming, Socket, SocketError, Upgrade, Upgraded};
use crate::AppState;
use crate::auth::Authed;
use crate::auth::NotCrossSite;
use crate::store::unix_now;

/// Messages queued for a device before it counts as not reading.
pub const OUTBOX: usize = 256;

/// `GET /ws`. The extractors run in order: a session (401), the origin (403), then
/// the handshake itself (400 or 426).
pub async fn upgrade(
    State(state): State<AppState>,
    authed: Authed,
    _: NotCrossSite,
    upgrade: Upgrade,
) -> Response {
    upgrade.on_upgrade(move |io| {
        // The connection never needs the password hash; do not keep it around.
        let mut authed = authed;
        authed.user.password_hash = String::new();
        run(Socket::new(io, MAX_MESSAGE_BYTES), state, authed)
    })
}

/// A token bucket: `rate` per second, up to `burst`.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    at: Instant,
    /// When the last `rate-limited` error was sent (at most one per second).
    warned: Option<Instant>,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        let dt = now.duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

type Ws = Socket<Upgraded>;

async fn send(socket: &mut Ws, msg: &RelayMsg) -> bool {
    socket.send_text(&msg.encode()).await.is_ok()
}

/// Why the loop ended: the close code and reason to send, if a close is still due.
type Ending = Option<(u16, &'static str)>;

async fn run(mut socket: Ws, state: AppState, authed: Authed) {
    let (tx, mut rx) = mpsc::channel(OUTBOX);
    let overflow = Arc::new(AtomicBool::new(false));
    // Only what the loop needs, not a copy of the whole configuration per connection.
    let (msg_rate, msg_burst, ping_interval, idle_timeout) = {
        let c = state.config();
        (c.msg_rate, c.msg_burst, c.ping_interval, c.idle_timeout)
    };
    let kick = Arc::new(tokio::sync::Notify::new());
    let mut conn = Conn {
        state: state.clone(),
        authed,
        device: None,
        tx: Some(tx),
        overflow: overflow.clone(),
        kick: kick.clone(),
    };
    let mut shutdown = state.shutdown_rx();
    let mut bucket = Bucket {
        tokens: msg_burst,
        rate: msg_rate,
        burst: msg_burst,
        at: Instant::now(),
        warned: None,
    };
    let mut last_seen = Instant::now();
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
    // The session's end closes the connection at that moment, not at a later ping.
    let left =
        u64::try_from(conn.authed.session.expires_at.saturating_sub(unix_now())).unwrap_or(0);
    let expiry = tokio::time::sleep(std::time::Duration::from_secs(left));
    tokio::pin!(expiry);
    let ending: Ending = loop {
        tokio::select! {
            incoming = socket.recv() => {
                let incoming = match incoming {
                    Ok(Incoming::Closed) | Err(SocketError::Io(_)) => break None,
                    Ok(Incoming::Close(code)) => break Some((code, "")),
                    Ok(m) => m,
                    Err(SocketError::Protocol(e)) => {
                        if let ProtocolError::TooLarge(_) = e {
                            let m = RelayMsg::error(ErrorCode::TooLarge, format!("Messages are limited to {MAX_MESSAGE_BYTES} bytes."), None);
                            let _ = send(&mut socket, &m).await;
                        }
                        tracing::info!(user = %conn.authed.user.name, error = %e, "websocket protocol error; closing");
                        break Some((e.close_code(), "protocol error"));
                    }
                };
                last_seen = Instant::now();
                match incoming {
                    Incoming::Text(text) => {
                        if !bucket.take(last_seen) {
                            if bucket.warned.is_none_or(|w| last_seen.duration_since(w).as_secs() >= 1) {
                                bucket.warned = Some(last_seen);
                                let m = RelayMsg::error(ErrorCode::RateLimited, "Too many messages; some were dropped.", None);
                                if !send(&mut socket, &m).await { break None; }
                            }
                            continue;
                        }
                        // Boxed: the handler future (store queries) is large, and an idle
                        // connection should not carry its space.
                        let replies = Box::pin(conn.handle(&text)).await;
                        drop(text);
                        let (mut failed, mut close) = (false, false);
                        for (msg, flow) in replies {
                            if !send(&mut socket, &msg).await { failed = true; break; }
                            close |= matches!(flow, Flow::Close);
                        }
                        if failed { break None; }
                        if close { break Some((close_code::POLICY, "closed by the relay")); }
                    }
                    Incoming::Binary(_) => {
                        let m = RelayMsg::error(ErrorCode::BadMessage, "Binary frames are not used; send JSON text.", None);
                        if !send(&mut socket, &m).await { break None; }
                    }
                    // Pings count against the same budget as messages: a ping flood
                    // goes unanswered instead of making the relay write.
                    Incoming::Ping(payload) => {
                        if bucket.take(last_seen) && socket.pong(&payload).await.is_err() { break None; }
                    }
                    Incoming::Pong | Incoming::Close(_) | Incoming::Closed => {}
                }
            }
            out = rx.recv(), if conn.device.is_some() => {
                match out {
                    Some(msg) => {
                        if overflow.load(Ordering::Relaxed) {
                            tracing::info!(user = %conn.authed.user.name, "device too slow; closing");
                            break Some((close_code::POLICY, "not reading"));
                        }
                        // Encoded here, in this connection's task, outside every lock.
                        if !send(&mut socket, &msg).await {
                            tracing::info!(user = %conn.authed.user.name, "write failed or timed out; closing");
                            break None;
                        }
                    }
                    // The hub dropped this device (signed out or not reading).
                    None => break Some((close_code::POLICY, "signed out")),
                }
            }
            _ = ticker.tick() => {
                if last_seen.elapsed() > idle_timeout {
                    tracing::info!(user = %conn.authed.user.name, "connection silent; closing");
                    break Some((close_code::POLICY, "silent"));
                }
                if socket.ping().await.is_err() { break None; }
            }
            () = &mut expiry => {
                let m = RelayMsg::error(ErrorCode::SessionExpired, "Your session expired; sign in again.", None);
                let _ = send(&mut socket, &m).await;
                break Some((close_code::POLICY, "session expired"));
            }
            _ = shutdown.changed() => break Some((close_code::GOING_AWAY, "relay stopping")),
            () = kick.notified() => break Some((close_code::GOING_AWAY, "connect again")),
        }
    };
    // Unregister first: the close below may wait a moment for the peer's answer.
    if let Some(dev) = conn.device {
        state
            .hub()
            .unregister(Instant::now(), dev, &conn.authed.user.name);
        if let Some(c) = state.cluster() {
            c.device_gone(dev, &conn.authed.user.name).await;
        }
        tracing::info!(user = %conn.authed.user.name, device = dev, "device disconnected");
    }
    drop(conn);
    drop(rx);
    if let Some((code, reason)) = ending {
        socket.close(code, reason).await;
    }
}
