//! Built-in TLS: `shieldcall serve --tls-cert FILE --tls-key FILE`.
//!
//! rustls (ring provider) through tokio-rustls. The handshake runs in the
//! relay's one accept loop (`crate::http`), which then serves each connection
//! with hyper's HTTP/1.1 server with upgrades, so WebSockets (WSS) work as on
//! plain HTTP. The certificate and key are read once, at start: a restart picks
//! up renewed files.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

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
