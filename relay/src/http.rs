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
//!   timer; axum's own `serve` sets none, so there such a client stayed forever).
//!
//! An upgraded WebSocket leaves hyper and has its own limits (`crate::ws`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
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

/// Accepts TCP on `listener` and serves `router` on each connection, after a TLS
/// handshake when `tls` is given. When `shutdown` completes: stops accepting, lets
/// open requests finish (idle connections close at once) and returns when every
/// connection is gone.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let acceptor = tls.map(TlsAcceptor::from);
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
        // Signalling is many small messages: send each at once (no Nagle delay).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY failed");
        }
        let conn = Connection {
            peer,
            router: router.clone(),
            header_timeout,
            stop: stop_rx.clone(),
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
    /// Set when the server stops.
    stop: watch::Receiver<bool>,
}

impl Connection {
    /// From the TLS handshake (if any) to close.
    async fn run(mut self, acceptor: Option<TlsAcceptor>, tcp: TcpStream) {
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
        let service = service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            hyper::service::Service::call(&tower, req)
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
