//! Built-in TLS: `shieldcall serve --tls-cert FILE --tls-key FILE`.
//!
//! rustls (ring provider) through tokio-rustls; each connection is served by
//! hyper's HTTP/1.1 server with upgrades, so WebSockets (WSS) work as on plain
//! HTTP. The certificate and key are read once, at start: a restart picks up
//! renewed files.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
pub use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How long a client has to complete the TLS handshake, so a silent client
/// cannot hold a connection slot.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8,
/// RSA or SEC1) into a server configuration with the ring provider, offering
/// HTTP/1.1 by ALPN. Each error is one line naming the file and the problem.
pub fn load_server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let cert_err = |what: String| anyhow::anyhow!("TLS certificate {}: {what}", cert.display());
    let key_err = |what: String| anyhow::anyhow!("TLS key {}: {what}", key.display());
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(pem_error(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(pem_error(e)))?;
    if chain.is_empty() {
        return Err(cert_err(
            "no PEM certificate found (expected -----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
        pem::Error::NoItemsFound => key_err(
            "no PEM private key found (expected PKCS#8, RSA or EC: -----BEGIN PRIVATE KEY-----)"
                .into(),
        ),
        e => key_err(pem_error(e)),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow::anyhow!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| {
            let what = match e {
                rustls::Error::InconsistentKeys(_) => {
                    "the key does not belong to the certificate".to_string()
                }
                e => e.to_string(),
            };
            anyhow::anyhow!(
                "TLS certificate {} with key {}: {what}",
                cert.display(),
                key.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn pem_error(e: pem::Error) -> String {
    match e {
        pem::Error::Io(e) => e.to_string(),
        e => format!("not valid PEM: {e}"),
    }
}

/// Accepts TCP on `listener`, completes TLS handshakes (each within
/// [`HANDSHAKE_TIMEOUT`]) and serves `router` on each connection, with
/// `ConnectInfo<SocketAddr>` as `into_make_service_with_connect_info` would set
/// it. When `shutdown` completes: stops accepting, lets open requests finish
/// (idle connections close at once) and returns when every connection is gone.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    router: Router,
    tls_config: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let acceptor = TlsAcceptor::from(tls_config);
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
        tokio::spawn(connection(
            acceptor.clone(),
            tcp,
            peer,
            router.clone(),
            stop_rx.clone(),
        ));
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(true);
    stop_tx.closed().await;
}

/// One TLS connection, from handshake to close.
async fn connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
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
        () = stopped(&mut stop) => return,
    };
    let tower = TowerToHyperService::new(router);
    let service = service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        hyper::service::Service::call(&tower, req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "TLS connection ended with an error");
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
