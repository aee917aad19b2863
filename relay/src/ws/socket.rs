//! The server end of one WebSocket: the upgrade handshake ([`Upgrade`]) and a
//! socket ([`Socket`]) over any byte stream, built on the sans-IO [`frame`] codec.
//!
//! Why not tungstenite: it keeps its read buffer (the 4 KiB we set) and a write
//! buffer as large as the largest frame ever sent for the whole life of a
//! connection, which made an idle connection cost about 7 KiB of its 12. Here a
//! connection holds no buffer while it waits:
//!
//! - Each read takes up to [`READ_CHUNK`] bytes into a buffer on the poll's own
//!   stack, and only the bytes that arrived are kept, in a heap buffer that is
//!   freed once every whole frame in it is handled.
//! - A frame is written from one allocation of exactly its size, freed after the
//!   write.
//! - The message cap is judged from frame headers, so an oversize message is
//!   refused before it is read. At most one frame plus one read is buffered:
//!   about `max_message + 4 KiB`.
//!
//! Writes have a deadline ([`WRITE_TIMEOUT`]): a peer that stops reading cannot
//! hold a connection open by filling its socket buffers.

use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Poll, ready};
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::frame::{self, Assembler, Event, OpCode, ProtocolError};

/// Bytes taken from the stream per read (the 4 KiB read buffer; it lives
/// on the stack only while a read runs).
pub const READ_CHUNK: usize = 4 * 1024;

/// How long one frame may take to write before the peer counts as not reading.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// After our close frame: how long to wait for the peer's, and how many bytes to
/// read and discard meanwhile. Closing a socket with unread bytes makes the kernel
/// send a reset, which can destroy our last messages before the peer reads them.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

/// RFC 6455, 1.3.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// What a [`Socket`] read.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A text message.
    Text(String),
    /// A binary message, of this many bytes (the protocol has none).
    Binary(usize),
    /// A ping; answer it with [`Socket::pong`].
    Ping(Vec<u8>),
    /// A pong.
    Pong,
    /// The peer's close frame with its code (1000 when it gave none); answer with
    /// [`Socket::close`] and the same code, as RFC 6455 (5.5.1) asks.
    Close(u16),
    /// The stream ended.
    Closed,
}

/// Why a [`Socket`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The peer broke the protocol or a limit; close with its code.
    #[error("websocket: {0}")]
    Protocol(#[from] ProtocolError),
    /// The stream failed or a write ran past [`WRITE_TIMEOUT`].
    #[error("websocket i/o: {0}")]
    Io(#[from] io::Error),
}

/// One WebSocket connection, server side.
#[derive(Debug)]
pub struct Socket<S> {
    /// The upgraded byte stream.
    io: S,
    /// Received bytes not yet handled: part of a frame, or frames still to handle.
    /// Empty, with no allocation, between messages.
    pending: Vec<u8>,
    /// Where the unhandled bytes of `pending` begin (handled frames before it are
    /// dropped in one go before the next read: linear, not quadratic, in the
    /// number of small frames a read brings).
    start: usize,
    /// Messages from frames.
    asm: Assembler,
    /// Our close frame is sent; nothing more may be.
    close_sent: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Socket<S> {
    /// A socket over a stream whose handshake is done, refusing messages over
    /// `max_message` bytes.
    pub fn new(io: S, max_message: usize) -> Self {
        Self {
            io,
            pending: Vec::new(),
            start: 0,
            asm: Assembler::new(max_message),
            close_sent: false,
        }
    }

    /// The next message or control frame. Cancel-safe (it only reads; a partly
    /// read frame stays buffered for the next call), so it can race other futures
    /// in a `select!`. Writing is left to the caller, never raced: a cancelled
    /// write could leave half a frame on the wire.
    pub async fn recv(&mut self) -> Result<Incoming, SocketError> {
        loop {
            if let Some(event) = self.next_buffered()? {
                return Ok(match event {
                    Event::Text(t) => Incoming::Text(t),
                    Event::Binary(n) => Incoming::Binary(n),
                    Event::Ping(p) => Incoming::Ping(p),
                    Event::Pong => Incoming::Pong,
                    Event::Close(code) => {
                        Incoming::Close(code.unwrap_or(frame::close_code::NORMAL))
                    }
                });
            }
            // Everything before `start` is handled: drop it once, before reading
            // more, instead of shifting the buffer after every frame.
            if self.start > 0 {
                self.pending.drain(..self.start);
                self.start = 0;
            }
            if read_some(&mut self.io, &mut self.pending).await? == 0 {
                self.close_sent = true;
                return Ok(Incoming::Closed);
            }
        }
    }

    /// Handles whole frames already buffered until one yields an event.
    fn next_buffered(&mut self) -> Result<Option<Event>, ProtocolError> {
        loop {
            let rest = &self.pending[self.start..];
            let Some(h) = frame::parse_header(rest)? else {
                return Ok(None);
            };
            self.asm.check(&h)?;
            // `check` bounds the payload by the message cap, so this fits.
            let end = h.frame_len().ok_or(ProtocolError::BadLength)?;
            // Nothing is reserved for the rest of the frame: memory follows the bytes
            // that arrived, so a peer that announces 64 KiB and sends nothing more
            // holds nothing (and its silence ends the connection).
            let Some(raw) = rest.get(h.header_len..end) else {
                return Ok(None);
            };
            let mut payload = raw.to_vec();
            frame::apply_mask(&mut payload, h.mask);
            self.start += end;
            if self.start == self.pending.len() {
                self.pending = Vec::new();
                self.start = 0;
            }
            if let Some(event) = self.asm.push(&h, payload)? {
                return Ok(Some(event));
            }
        }
    }

    /// Sends a text message.
    pub async fn send_text(&mut self, text: &str) -> Result<(), SocketError> {
        self.send(OpCode::Text, text.as_bytes()).await
    }

    /// Sends a ping.
    pub async fn ping(&mut self) -> Result<(), SocketError> {
        self.send(OpCode::Ping, b"").await
    }

    /// Answers a ping.
    pub async fn pong(&mut self, payload: &[u8]) -> Result<(), SocketError> {
        self.send(OpCode::Pong, payload).await
    }

    async fn send(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), SocketError> {
        if self.close_sent {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "closed").into());
        }
        let bytes = frame::encode(opcode, payload);
        let write = async {
            self.io.write_all(&bytes).await?;
            self.io.flush().await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "peer not reading").into()),
        }
    }

    /// Sends our close frame (once), then waits a little for the peer's so that
    /// everything sent before it arrives. Never fails: the connection ends anyway.
    pub async fn close(&mut self, code: u16, reason: &str) {
        if self.close_sent {
            return;
        }
        let sent = self
            .send(OpCode::Close, &frame::close_payload(code, reason))
            .await;
        self.close_sent = true;
        self.pending = Vec::new();
        if sent.is_err() {
            return;
        }
        let _ = self.io.shutdown().await;
        let drain = async {
            let mut discarded = Vec::new();
            let mut total = 0;
            while total < LINGER_BYTES {
                match read_some(&mut self.io, &mut discarded).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
                discarded.clear();
            }
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
    }
}

/// Reads once, up to [`READ_CHUNK`] bytes, and appends what arrived to `into`.
/// The chunk is a local of the poll, so a connection waiting for data holds none.
async fn read_some<S: AsyncRead + Unpin>(io: &mut S, into: &mut Vec<u8>) -> io::Result<usize> {
    poll_fn(|cx| {
        let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut buf = ReadBuf::uninit(&mut chunk);
        ready!(Pin::new(&mut *io).poll_read(cx, &mut buf))?;
        into.extend_from_slice(buf.filled());
        Poll::Ready(Ok(buf.filled().len()))
    })
    .await
}

/// A valid WebSocket upgrade request (RFC 6455, 4.2.1), as an extractor.
#[derive(Debug)]
pub struct Upgrade {
    /// `Sec-WebSocket-Accept` for the response.
    accept: HeaderValue,
    /// hyper's handle on the connection, ready once the 101 is sent.
    on_upgrade: hyper::upgrade::OnUpgrade,
}

/// Why an upgrade request is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum UpgradeRejection {
    /// Not a WebSocket handshake, or a malformed one; the text says which part.
    BadRequest(&'static str),
    /// A WebSocket version other than 13.
    Version,
    /// The connection cannot be upgraded (not HTTP/1.1).
    NotUpgradable,
}

impl IntoResponse for UpgradeRejection {
    fn into_response(self) -> Response {
        match self {
            Self::BadRequest(why) => (StatusCode::BAD_REQUEST, why).into_response(),
            Self::Version => (
                StatusCode::UPGRADE_REQUIRED,
                [(header::SEC_WEBSOCKET_VERSION, "13")],
                "only WebSocket version 13 is supported",
            )
                .into_response(),
            Self::NotUpgradable => (
                StatusCode::UPGRADE_REQUIRED,
                "connection cannot be upgraded",
            )
                .into_response(),
        }
    }
}

/// Whether any `name` header holds `token` in its comma-separated list.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// `Sec-WebSocket-Accept` for a client's key.
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(ACCEPT_GUID);
    BASE64.encode(sha.finalize())
}

/// Checks the handshake headers; on success, the `Sec-WebSocket-Accept` value.
pub fn check_handshake(parts: &Parts) -> Result<HeaderValue, UpgradeRejection> {
    use UpgradeRejection::BadRequest;
    if parts.method != axum::http::Method::GET {
        return Err(BadRequest("a WebSocket upgrade is a GET"));
    }
    if parts.version != axum::http::Version::HTTP_11 {
        return Err(UpgradeRejection::NotUpgradable);
    }
    if !has_token(&parts.headers, header::CONNECTION, "upgrade") {
        return Err(BadRequest("Connection: upgrade is missing"));
    }
    if !has_token(&parts.headers, header::UPGRADE, "websocket") {
        return Err(BadRequest("Upgrade: websocket is missing"));
    }
    if parts
        .headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(UpgradeRejection::Version);
    }
    let key = parts
        .headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or(BadRequest("Sec-WebSocket-Key is missing"))?
        .as_bytes()
        .trim_ascii();
    if BASE64.decode(key).map(|k| k.len()) != Ok(16) {
        return Err(BadRequest("Sec-WebSocket-Key is not 16 bytes in base64"));
    }
    HeaderValue::from_str(&accept_key(key)).map_err(|_| BadRequest("Sec-WebSocket-Key"))
}

impl<St: Sync> FromRequestParts<St> for Upgrade {
    type Rejection = UpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        let accept = check_handshake(parts)?;
        let on_upgrade = parts
            .extensions
            .remove::<hyper::upgrade::OnUpgrade>()
            .ok_or(UpgradeRejection::NotUpgradable)?;
        Ok(Self { accept, on_upgrade })
    }
}

/// The upgraded stream.
pub type Upgraded = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;

impl Upgrade {
    /// Answers `101 Switching Protocols` and runs `then` on the upgraded stream in
    /// its own task. No subprotocol and no extension is accepted.
    pub fn on_upgrade<F, Fut>(self, then: F) -> Response
    where
        F: FnOnce(Upgraded) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(io) => then(hyper_util::rt::TokioIo::new(io)).await,
                Err(e) => tracing::debug!(error = %e, "upgrade failed"),
            }
        });
        (
            StatusCode::SWITCHING_PROTOCOLS,
            [
                (header::CONNECTION, HeaderValue::from_static("upgrade")),
                (header::UPGRADE, HeaderValue::from_static("websocket")),
                (header::SEC_WEBSOCKET_ACCEPT, self.accept),
            ],
        )
            .into_response()
    }
}

#[cfg(test)]
#[path = "socket_tests.rs"]
mod tests;
