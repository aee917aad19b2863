//! The relay's HTTP/1.1 server: one accept loop for plain HTTP and for TLS.
//!
//! Each connection is served by hyper's HTTP/1.1 server with upgrades (for the
//! WebSocket), with `ConnectInfo<SocketAddr>` set as axum's
//! `into_make_service_with_connect_info` would. Time limits, so that a silent
//! client cannot hold a connection slot:
//!
//! - the TLS handshake: [`crate::tls::HANDSHAKE_TIMEOUT`];
//! - a request's headers, and an idle keep-alive connection between requests:
//!   `Config::http_header_timeout` (hyper's `header_read_timeout`, which needs a
//!   timer; axum's own `serve` sets none, so there such a client stayed forever);
//! - a request from its headers to its response head (reading the body, running
//!   the handler): `Config::http_request_timeout`, then `408`.
//!
//! Connection caps: at most `Config::max_connections` at once, and
//! `Config::max_connections_per_address` from one address (trusted proxies
//! exempt); a connection beyond a cap is closed at once, before any byte is read.
//!
//! An upgraded WebSocket leaves hyper and has its own limits (`crate::ws`); it
//! still counts against the caps until it closes.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::tls::{HANDSHAKE_TIMEOUT, rustls};

/// The time limits and caps of the accept loop (from `Config`).
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// `Config::http_header_timeout`.
    pub header_timeout: Duration,
    /// `Config::http_request_timeout`.
    pub request_timeout: Duration,
    /// `Config::max_connections_per_address`.
    pub per_address: usize,
    /// `Config::max_connections`.
    pub total: usize,
    /// `Config::trusted_proxies`: exempt from the per-address cap.
    pub exempt: Vec<IpAddr>,
}

impl From<&crate::Config> for Limits {
    fn from(c: &crate::Config) -> Self {
        Self {
            header_timeout: c.http_header_timeout,
            request_timeout: c.http_request_timeout,
            per_address: c.max_connections_per_address,
            total: c.max_connections,
            exempt: c.trusted_proxies.clone(),
        }
    }
}

/// Open connections, in all and by address.
#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One connection's place under the caps; given back on drop.
struct Slot {
    open: Arc<Mutex<Open>>,
    addr: IpAddr,
}

impl Slot {
    /// A place for a connection from `addr`, if the caps allow one.
    fn take(open: &Arc<Mutex<Open>>, addr: IpAddr, limits: &Limits) -> Option<Self> {
        let mut o = open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let here = o.by_address.get(&addr).copied().unwrap_or(0);
        if o.total >= limits.total || (here >= limits.per_address && !limits.exempt.contains(&addr))
        {
            return None;
        }
        o.total += 1;
        *o.by_address.entry(addr).or_default() += 1;
        Some(Self {
            open: open.clone(),
            addr,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut o = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        o.total = o.total.saturating_sub(1);
        if let Some(n) = o.by_address.get_mut(&self.addr) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                o.by_address.remove(&self.addr);
            }
        }
    }
}

/// Accepts TCP on `listener` and serves `router` on each connection, after a TLS
/// handshake when `tls` is given. When `shutdown` completes: stops accepting, lets
/// open requests finish (idle connections close at once) and returns when every
/// connection is gone.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let open = Arc::new(Mutex::new(Open::default()));
    // Connection tasks hold a receiver: `stop_tx.closed()` tells when all ended.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => r,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // E.g. out of file descriptors: wait for some to be freed.
                tracing::error!(error = %e, "accept failed");
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        let Some(slot) = Slot::take(&open, peer.ip(), &limits) else {
            tracing::warn!("connection cap reached; closing a new connection");
            drop(tcp);
            continue;
        };
        // Signalling is many small messages: send each at once (no Nagle delay).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY failed");
        }
        let conn = Connection {
            peer,
            router: router.clone(),
            header_timeout: limits.header_timeout,
            request_timeout: limits.request_timeout,
            stop: stop_rx.clone(),
        };
        let tcp = Counted {
            io: tcp,
            _slot: slot,
        };
        tokio::spawn(conn.run(acceptor.clone(), tcp));
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(true);
    stop_tx.closed().await;
}

/// One accepted connection.
struct Connection {
    /// The client's address, for `ConnectInfo` (sign-in rate limits).
    peer: SocketAddr,
    /// The application.
    router: Router,
    /// See `Config::http_header_timeout`.
    header_timeout: Duration,
    /// See `Config::http_request_timeout`.
    request_timeout: Duration,
    /// Set when the server stops.
    stop: watch::Receiver<bool>,
}

/// A TCP stream that holds its place under the connection caps for as long as it
/// exists: through the TLS session and an upgrade to a WebSocket, to the close.
struct Counted {
    io: TcpStream,
    _slot: Slot,
}

impl tokio::io::AsyncRead for Counted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Counted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl Connection {
    /// From the TLS handshake (if any) to close.
    async fn run(mut self, acceptor: Option<TlsAcceptor>, tcp: Counted) {
        let Some(acceptor) = acceptor else {
            return self.serve(tcp).await;
        };
        let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
        let tls = tokio::select! {
            r = handshake => match r {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake timed out");
                    return;
                }
            },
            () = stopped(&mut self.stop) => return,
        };
        self.serve(tls).await;
    }

    /// HTTP/1.1 with upgrades on `io`.
    async fn serve<I>(mut self, io: I)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let tower = TowerToHyperService::new(self.router);
        let peer = self.peer;
        let deadline = self.request_timeout;
        let service = service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let call = hyper::service::Service::call(&tower, req);
            async move {
                match tokio::time::timeout(deadline, call).await {
                    Ok(r) => r,
                    Err(_) => {
                        tracing::debug!("request timed out");
                        let mut resp = axum::response::IntoResponse::into_response((
                            axum::http::StatusCode::REQUEST_TIMEOUT,
                            "request timed out\n",
                        ));
                        resp.headers_mut().insert(
                            axum::http::header::CONNECTION,
                            axum::http::HeaderValue::from_static("close"),
                        );
                        Ok(resp)
                    }
                }
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        let mut conn = std::pin::pin!(conn);
        let result = tokio::select! {
            r = conn.as_mut() => r,
            () = stopped(&mut self.stop) => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

/// Completes when the server stops (or is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
