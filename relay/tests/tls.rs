//! Built-in TLS: `serve_tls` answers HTTPS and WSS over a real TLS connection
//! (a client trusting the throwaway test certificate in `tests/data/`), marks
//! the session cookie `Secure`, admits the `https://` bound origin, and stops
//! cleanly; the CLI refuses half a TLS configuration with a clear message.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::{FAST, HttpResponse, WAIT, parse_response, temp_dir, test_config};
use futures_util::{SinkExt, StreamExt};
use shieldcall_proto::{ClientMsg, RelayMsg};
use shieldcall_relay::AppState;
use shieldcall_relay::auth;
use shieldcall_relay::ops::Ops;
use shieldcall_relay::tls::{self, rustls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn cert_path() -> PathBuf {
    data("throwaway-test-cert.pem")
}

fn key_path() -> PathBuf {
    data("throwaway-test-key.pem")
}

/// A TLS client that trusts only the test certificate.
fn connector() -> TlsConnector {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert_path()).expect("cert file") {
        roots.add(cert.expect("cert")).expect("add root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

struct TlsRelay {
    addr: SocketAddr,
    state: AppState,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn start() -> TlsRelay {
    let dir = temp_dir();
    let www = dir.join("www");
    std::fs::create_dir_all(&www).expect("mkdir www");
    std::fs::write(www.join("index.html"), "<!doctype html><p>hello over tls").expect("index");
    let mut config = test_config(&dir);
    config.www = www;
    let state = AppState::open(config).await.expect("open state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let tls_config = tls::load_server_config(&cert_path(), &key_path()).expect("TLS config");
    let (stop, stopped) = oneshot::channel::<()>();
    let st = state.clone();
    let task = tokio::spawn(async move {
        shieldcall_relay::serve_tls(listener, st, tls_config, async {
            let _ = stopped.await;
        })
        .await
        .expect("serve_tls");
    });
    TlsRelay {
        addr,
        state,
        stop,
        task,
    }
}

impl TlsRelay {
    fn origin(&self) -> String {
        format!("https://{}", self.addr)
    }

    async fn tls(&self) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.expect("connect");
        let name = rustls::pki_types::ServerName::IpAddress(self.addr.ip().into());
        tokio::time::timeout(WAIT, connector().connect(name, tcp))
            .await
            .expect("handshake in time")
            .expect("TLS handshake with the test certificate")
    }

    /// One HTTP/1.1 request over TLS.
    async fn https(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> HttpResponse {
        let mut s = self.tls().await;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            req += &format!("{k}: {v}\r\n");
        }
        req += "\r\n";
        req += body;
        s.write_all(req.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        let read = tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
            .await
            .expect("response in time");
        // A close without close_notify after a full response is not our concern.
        if let Err(e) = read {
            assert!(!raw.is_empty(), "read: {e}");
        }
        parse_response(&raw)
    }

    /// A WSS upgrade of `/ws`; the HTTP status on refusal.
    async fn wss(
        &self,
        cookie: Option<&str>,
        origin: &str,
    ) -> Result<WebSocketStream<TlsStream<TcpStream>>, u16> {
        let mut req = format!("wss://{}/ws", self.addr)
            .into_client_request()
            .expect("request");
        if let Some(c) = cookie {
            req.headers_mut()
                .insert("Cookie", c.parse().expect("header"));
        }
        req.headers_mut()
            .insert("Origin", origin.parse().expect("header"));
        let stream = self.tls().await;
        match tokio::time::timeout(WAIT, tokio_tungstenite::client_async(req, stream))
            .await
            .expect("upgrade answered in time")
        {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("wss connect: {e}"),
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("clean stop")
            .expect("join");
    }
}

async fn next_msg(ws: &mut WebSocketStream<TlsStream<TcpStream>>) -> RelayMsg {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = frame {
            return RelayMsg::decode(t.as_str()).expect("valid message");
        }
    }
}

#[tokio::test]
async fn https_and_wss_with_secure_cookie() {
    let relay = start().await;

    // The page.
    let page = relay.https("GET", "/", &[], "").await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("hello over tls"), "{page:?}");

    // Sign-in: a Secure session cookie.
    let hash = auth::hash_password(FAST, "password-alice".to_string())
        .await
        .expect("hash");
    Ops {
        store: relay.state.store(),
        actor: "test",
    }
    .add_user("alice@example.test", hash, false)
    .await
    .expect("add user");
    let body =
        serde_json::json!({"user": "alice@example.test", "password": "password-alice"}).to_string();
    let origin = relay.origin();
    let login = relay
        .https(
            "POST",
            "/api/login",
            &[("Content-Type", "application/json"), ("Origin", &origin)],
            &body,
        )
        .await;
    assert_eq!(login.status, 200, "{login:?}");
    let set_cookie = login.header("set-cookie").expect("set-cookie");
    assert!(
        set_cookie.split(';').any(|a| a.trim() == "Secure"),
        "{set_cookie}"
    );
    assert!(relay.state.secure_cookies());
    // The __Host- prefix: no sibling subdomain can plant or overwrite it.
    assert!(
        set_cookie.starts_with("__Host-shieldcall_session="),
        "{set_cookie}"
    );
    // HSTS: later visits cannot be downgraded to plain HTTP.
    assert_eq!(
        login.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    let cookie = login.cookie().expect("cookie");
    // The plain name is not read under HTTPS (a planted cookie signs no one in).
    let value = cookie.split_once('=').map(|(_, v)| v).expect("value");
    let plain_name = format!("shieldcall_session={value}");
    let me = relay
        .https("GET", "/api/me", &[("Cookie", &plain_name)], "")
        .await;
    assert_eq!(me.status, 401, "{me:?}");

    // WSS: no session → 401; the plain-http origin is not ours → 403.
    assert_eq!(relay.wss(None, &origin).await.err(), Some(401));
    let plain = format!("http://{}", relay.addr);
    assert_eq!(relay.wss(Some(&cookie), &plain).await.err(), Some(403));

    // WSS with the session and the https bound origin (also as localhost).
    let localhost = format!("https://localhost:{}", relay.addr.port());
    let mut other = relay.wss(Some(&cookie), &localhost).await.expect("upgrade");
    let mut ws = relay.wss(Some(&cookie), &origin).await.expect("upgrade");
    ws.send(Message::Text(
        ClientMsg::Hello { version: 1 }.encode().into(),
    ))
    .await
    .expect("send hello");
    let welcome = next_msg(&mut ws).await;
    assert!(matches!(welcome, RelayMsg::Welcome { .. }), "{welcome:?}");
    other.close(None).await.expect("close");

    // Shutdown closes the open WebSocket and serve_tls returns.
    relay.stop().await;
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "WebSocket still open after shutdown");
}

fn serve_fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_shieldcall"))
        .arg("serve")
        .args(args)
        .arg("--data-dir")
        .arg(temp_dir())
        .env_remove("SHIELDCALL_TLS_CERT")
        .env_remove("SHIELDCALL_TLS_KEY")
        .env_remove("SHIELDCALL_CONFIG")
        .output()
        .expect("run shieldcall");
    assert!(!out.status.success(), "serve started with {args:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    stderr
}

#[test]
fn cli_refuses_half_or_broken_tls_config() {
    let cert = cert_path();
    let cert = cert.to_str().expect("utf-8 path");
    let key = key_path();
    let key = key.to_str().expect("utf-8 path");

    let e = serve_fails(&["--tls-cert", "x"]);
    assert!(e.contains("--tls-cert needs --tls-key"), "{e}");
    let e = serve_fails(&["--tls-key", key]);
    assert!(e.contains("--tls-key needs --tls-cert"), "{e}");

    let e = serve_fails(&["--tls-cert", "/nonexistent/cert.pem", "--tls-key", key]);
    assert!(e.contains("TLS certificate /nonexistent/cert.pem"), "{e}");
    // A certificate where the key should be: no private key in it.
    let e = serve_fails(&["--tls-cert", cert, "--tls-key", cert]);
    assert!(
        e.contains("TLS key") && e.contains("no PEM private key"),
        "{e}"
    );
}

#[tokio::test]
async fn cli_serves_https_with_tls_from_the_config_file() {
    use std::io::{BufRead, BufReader};
    let dir = temp_dir();
    let toml = dir.join("shieldcall.toml");
    std::fs::write(
        &toml,
        format!(
            "bind = \"127.0.0.1:0\"\ndemo = false\ntls_cert = {:?}\ntls_key = {:?}\n",
            cert_path(),
            key_path()
        ),
    )
    .expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_shieldcall"))
        .arg("serve")
        .arg("--config")
        .arg(&toml)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env_remove("SHIELDCALL_TLS_CERT")
        .env_remove("SHIELDCALL_TLS_KEY")
        .env_remove("SHIELDCALL_BIND")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    // Kept open to the end: the relay prints a last line when it stops.
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read");
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("Shieldcall is running at https://")
        .and_then(|rest| rest.strip_suffix('/'))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("startup line: {line:?}"));

    // A real HTTPS request: `/api/me` without a session answers 401.
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut s = connector().connect(name, tcp).await.expect("handshake");
    s.write_all(b"GET /api/me HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .expect("response in time");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");

    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(killed.success());
    assert!(
        child.wait().expect("wait").success(),
        "clean exit on SIGTERM"
    );
}
