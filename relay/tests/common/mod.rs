//! Shared test helpers: a relay on port 0 with a fresh data directory, a tiny
//! HTTP/1.1 client, and real WebSocket clients (tokio-tungstenite).

#![allow(dead_code)]

pub mod nats;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use shieldcall_proto::{CallId, ClientMsg, ErrorCode, RelayMsg};
use shieldcall_relay::auth::{self, PasswordCost};
use shieldcall_relay::ops::Ops;
use shieldcall_relay::store::{Session, unix_now};
use shieldcall_relay::{AppState, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for an expected message.
pub const WAIT: Duration = Duration::from_secs(5);

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "shieldcall-test-{}",
        auth::random_hex::<8>().expect("random")
    ));
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

/// Cheap Argon2 for tests.
pub const FAST: PasswordCost = PasswordCost {
    memory_kib: 64,
    iterations: 1,
};

/// A running relay.
pub struct Relay {
    pub addr: SocketAddr,
    pub state: AppState,
    pub dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The test configuration for `dir`: SQLite in `dir`, or with
/// `SHIELDCALL_TEST_STORE=postgres` the PostgreSQL database of `dir` (see
/// [`database_for`]). `cargo xtask test` runs the relay's tests both ways.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut c = Config::new(dir);
    c.password_cost = FAST;
    c.poll_interval = Duration::from_millis(100);
    c.database_url = database_for(dir).map(shieldcall_relay::DatabaseUrl);
    c
}

/// Whether this run of the tests is on PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("SHIELDCALL_TEST_STORE").as_deref() == Ok("postgres")
}

/// The test server's URL, from `cargo xtask test`.
pub fn postgres_server() -> String {
    std::env::var("SHIELDCALL_TEST_DATABASE_URL").expect(
        "the PostgreSQL tests need a server: run them with `cargo xtask test`, which starts one, \
         or set SHIELDCALL_TEST_DATABASE_URL=postgres://user@host:port/postgres (a user that may CREATE DATABASE)",
    )
}

/// A new, empty database on the test server; returns its URL. Runs on a thread
/// of its own so that it works inside and outside a runtime.
pub fn new_database() -> String {
    let server = postgres_server();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            use sqlx::{Connection, Executor};
            let name = format!("sc_{}", auth::random_hex::<8>().expect("random"));
            let mut conn = sqlx::PgConnection::connect(&server)
                .await
                .expect("connect to the test PostgreSQL");
            conn.execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .expect("create database");
            let (base, _) = server.rsplit_once('/').expect("a URL with a database");
            format!("{base}/{name}")
        })
    })
    .join()
    .expect("create database thread")
}

/// On PostgreSQL: `dir`'s database, made on first use and remembered in
/// `dir/database-url`, so a relay restarted on `dir` finds its data again as on
/// SQLite. `None` on SQLite.
pub fn database_for(dir: &std::path::Path) -> Option<String> {
    if !on_postgres() {
        return None;
    }
    let file = dir.join("database-url");
    if let Ok(url) = std::fs::read_to_string(&file) {
        return Some(url);
    }
    let url = new_database();
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(&file, &url).expect("write database-url");
    Some(url)
}

/// The `shieldcall` binary on `dir`'s store: `--data-dir dir`, and on
/// PostgreSQL the database of `dir` in `SHIELDCALL_DATABASE_URL`.
pub fn shieldcall(dir: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_shieldcall"));
    cmd.arg("--data-dir").arg(dir);
    match database_for(dir) {
        Some(url) => cmd.env("SHIELDCALL_DATABASE_URL", url),
        None => cmd.env_remove("SHIELDCALL_DATABASE_URL"),
    };
    cmd
}

/// Rows in `table` of the PostgreSQL database at `url` (the cluster tests'
/// look at what the nodes left behind).
pub async fn table_rows(url: &str, table: &str) -> i64 {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&mut c)
        .await
        .expect("count")
}

/// `shieldcall serve` as a process of its own on a fresh directory, on port 0,
/// with `env` set; returns it and its address once it listens.
pub fn serve_process(env: &[(&str, &str)]) -> (std::process::Child, SocketAddr) {
    use std::io::BufRead;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_shieldcall"));
    cmd.args(["serve", "--no-demo", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(temp_dir())
        .env("SHIELDCALL_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the relay exited before it listened")
            .expect("utf-8");
        if let Some(at) = line.split("running at http://").nth(1) {
            let at = at.split_whitespace().next().unwrap_or_default();
            break at.trim_end_matches('/').parse().expect("an address");
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// Starts a relay with a fresh directory.
pub async fn start() -> Relay {
    start_with(temp_dir(), |_| {}).await
}

/// Starts a relay on `dir`, with `tweak` applied to the test configuration.
pub async fn start_with(dir: PathBuf, tweak: impl FnOnce(&mut Config)) -> Relay {
    // `SHIELDCALL_TEST_LOG=shieldcall_relay=debug` (a tracing filter): the
    // relays' logs go into the test's output, shown when it fails.
    if let Ok(f) = std::env::var("SHIELDCALL_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(f))
            .with_test_writer()
            .try_init();
    }
    let mut config = test_config(&dir);
    tweak(&mut config);
    let state = AppState::open(config).await.expect("open state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let st = state.clone();
    let task = tokio::spawn(async move {
        shieldcall_relay::serve(listener, st, async {
            let _ = stopped.await;
        })
        .await
        .expect("serve");
    });
    Relay {
        addr,
        state,
        dir,
        stop: Some(stop),
        task: Some(task),
    }
}

impl Relay {
    /// Stops the server and waits for it.
    pub async fn stop(mut self) -> PathBuf {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(WAIT, t)
                .await
                .expect("clean stop")
                .expect("join");
        }
        self.dir.clone()
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ops(&self) -> Ops<'_> {
        Ops {
            store: self.state.store(),
            actor: "test",
        }
    }

    /// Adds a user with password `password-<name>`, and refreshes the relay at
    /// once as the admin API does (the change watcher would within a poll).
    pub async fn add_user(&self, name: &str, admin: bool) {
        let hash = auth::hash_password(FAST, format!("password-{name}"))
            .await
            .expect("hash");
        self.ops()
            .add_user(name, hash, admin)
            .await
            .expect("add user");
        self.state.refresh().await.expect("refresh");
    }

    /// A session cookie for `user`, made directly in the store.
    pub async fn cookie_for(&self, user: &str) -> String {
        self.cookie_expiring(user, unix_now() + 3600).await
    }

    /// A session cookie for `user` that expires at `expires_at` (Unix seconds).
    pub async fn cookie_expiring(&self, user: &str, expires_at: i64) -> String {
        let (token, hash) = auth::new_token().expect("token");
        self.state
            .store()
            .create_session(&Session {
                token_hash: hash,
                user: user.into(),
                expires_at,
            })
            .await
            .expect("session");
        format!("{}={token}", auth::COOKIE)
    }

    /// Signs in over HTTP; returns the cookie (`name=value`).
    pub async fn login(&self, user: &str, password: &str) -> String {
        let body = serde_json::json!({"user": user, "password": password}).to_string();
        let r = self
            .http(
                "POST",
                "/api/login",
                &[("Content-Type", "application/json")],
                &body,
            )
            .await;
        assert_eq!(r.status, 200, "login {user}: {}", r.body);
        r.cookie().expect("cookie")
    }

    /// One HTTP/1.1 request.
    pub async fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> HttpResponse {
        let mut s = TcpStream::connect(self.addr).await.expect("connect");
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
        tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
            .await
            .expect("response in time")
            .expect("read");
        parse_response(&raw)
    }

    /// An admin API call with cookie, same origin and JSON.
    pub async fn admin(&self, cookie: &str, method: &str, path: &str, body: &str) -> HttpResponse {
        let origin = self.origin();
        self.http(
            method,
            path,
            &[
                ("Cookie", cookie),
                ("Origin", &origin),
                ("Content-Type", "application/json"),
            ],
            body,
        )
        .await
    }

    /// What `GET /api/recordings` lists for `user` (recordings, voicemails,
    /// transcripts), newest first.
    pub async fn recordings(&self, user: &str) -> Vec<serde_json::Value> {
        let cookie = self.cookie_for(user).await;
        let r = self
            .http("GET", "/api/recordings", &[("Cookie", &cookie)], "")
            .await;
        assert_eq!(r.status, 200);
        r.json()["recordings"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// [`Relay::recordings`] once it lists something, within `wait` (a
    /// transcript is written once the recogniser has said its last words).
    pub async fn recordings_within(&self, user: &str, wait: Duration) -> Vec<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let list = self.recordings(user).await;
            if !list.is_empty() || tokio::time::Instant::now() > deadline {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Opens a WebSocket with `cookie` and `origin`; the HTTP status on refusal.
    pub async fn ws_raw(&self, cookie: Option<&str>, origin: Option<&str>) -> Result<Client, u16> {
        ws_at(self.addr, cookie, origin).await
    }

    /// A signed-in device of `user` past `hello`; returns it and its `welcome`.
    pub async fn device(&self, user: &str) -> (Client, RelayMsg) {
        let cookie = self.cookie_for(user).await;
        self.device_with(&cookie).await
    }

    /// A device with an existing cookie, past `hello`.
    pub async fn device_with(&self, cookie: &str) -> (Client, RelayMsg) {
        device_at(self.addr, cookie).await
    }
}

/// A device with `cookie` on the relay at `addr` (its own origin), past
/// `hello` and the first contact list; returns it and its `welcome`.
pub async fn device_at(addr: SocketAddr, cookie: &str) -> (Client, RelayMsg) {
    let origin = format!("http://{addr}");
    let mut c = ws_at(addr, Some(cookie), Some(&origin))
        .await
        .expect("upgrade");
    c.send(&ClientMsg::Hello { version: 1 }).await;
    let welcome = c.recv_any().await;
    assert!(matches!(welcome, RelayMsg::Welcome { .. }), "{welcome:?}");
    let presence = c.recv_any().await;
    assert!(
        matches!(presence, RelayMsg::Presence { .. }),
        "{presence:?}"
    );
    (c, welcome)
}

/// Opens a WebSocket to the relay at `addr` with `cookie` and `origin`; the
/// HTTP status on refusal.
pub async fn ws_at(
    addr: SocketAddr,
    cookie: Option<&str>,
    origin: Option<&str>,
) -> Result<Client, u16> {
    let mut req = format!("ws://{addr}/ws")
        .into_client_request()
        .expect("request");
    if let Some(c) = cookie {
        req.headers_mut()
            .insert("Cookie", c.parse().expect("header"));
    }
    if let Some(o) = origin {
        req.headers_mut()
            .insert("Origin", o.parse().expect("header"));
    }
    // TCP_NODELAY as browsers do; without it Nagle and delayed ACKs add 40 ms.
    match tokio_tungstenite::connect_async_with_config(req, None, true).await {
        Ok((ws, _)) => Ok(Client { ws }),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("connect: {e}"),
    }
}

/// `caller` calls `to`, and `callee` (a device of theirs) accepts; returns the
/// call's id once the caller heard `accepted` (other messages in between are
/// skipped).
pub async fn call_answered(caller: &mut Client, callee: &mut Client, to: &str) -> CallId {
    caller
        .send(&ClientMsg::Invite {
            to: to.into(),
            transfer: None,
        })
        .await;
    let id = loop {
        if let m @ RelayMsg::Calling { .. } = caller.recv().await {
            break call_id(&m);
        }
    };
    while !matches!(callee.recv().await, RelayMsg::Incoming { .. }) {}
    callee
        .send(&ClientMsg::Accept {
            call_id: id.clone(),
            commit: Some(commit()),
        })
        .await;
    while !matches!(caller.recv().await, RelayMsg::Accepted { .. }) {}
    id
}

/// A response of the tiny HTTP client.
/// Parses a raw HTTP/1.1 response (head and body).
pub fn parse_response(raw: &[u8]) -> HttpResponse {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_string(),
    }
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `name=value` of the Set-Cookie header.
    pub fn cookie(&self) -> Option<String> {
        self.header("set-cookie")
            .and_then(|c| c.split(';').next())
            .map(String::from)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A real WebSocket client.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    pub async fn send(&mut self, msg: &ClientMsg) {
        self.send_raw(&msg.encode()).await;
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    /// The next relay message of any kind.
    pub async fn recv_any(&mut self) -> RelayMsg {
        self.try_recv_any(WAIT).await.expect("a message in time")
    }

    /// The next relay message within `wait`, if any (`None` also when closed).
    pub async fn try_recv_any(&mut self, wait: Duration) -> Option<RelayMsg> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            match frame {
                Ok(Message::Text(t)) => {
                    return Some(RelayMsg::decode(t.as_str()).expect("relay sends valid messages"));
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next message that is not `presence`.
    pub async fn recv(&mut self) -> RelayMsg {
        loop {
            let m = self.recv_any().await;
            if !matches!(m, RelayMsg::Presence { .. }) {
                return m;
            }
        }
    }

    /// Asserts that no non-presence message arrives within `wait`.
    pub async fn expect_quiet(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.try_recv_any(left).await {
                None => return,
                Some(RelayMsg::Presence { .. }) => {}
                Some(m) => panic!("unexpected {m:?}"),
            }
        }
    }

    /// Whether the relay closed the connection within `wait` (skipping messages).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Sends `ping` and expects `pong` (skipping other messages).
    pub async fn assert_alive(&mut self, id: u64) {
        self.send(&ClientMsg::Ping { id }).await;
        loop {
            match self.recv_any().await {
                RelayMsg::Pong { id: got } if got == id => return,
                _ => {}
            }
        }
    }
}

/// The call id of `calling`/`incoming`, or panic.
pub fn call_id(m: &RelayMsg) -> shieldcall_proto::CallId {
    match m {
        RelayMsg::Calling { call_id, .. } | RelayMsg::Incoming { call_id, .. } => call_id.clone(),
        other => panic!("expected calling/incoming, got {other:?}"),
    }
}

/// A valid commitment for tests.
pub fn commit() -> shieldcall_proto::Commitment {
    "8539b5720e784316dae00fea08435fc10f6814c4074565541dfb06c0f5d58115"
        .parse()
        .expect("commitment")
}

/// The code of an `error`, or `None` for any other message.
pub fn error_code(m: &RelayMsg) -> Option<ErrorCode> {
    match m {
        RelayMsg::Error { code, .. } => Some(*code),
        _ => None,
    }
}

/// In the E2EE call `id`, `ann` asks with `ask` for what sends media to the
/// server (`record` or `captions`) and then offers that leg anyway (with
/// `captions`, the captions leg): both are refused `unavailable-in-e2ee`,
/// `bob` hears nothing of it, and the relay never bound its media socket.
pub async fn refused_in_e2ee(
    relay: &Relay,
    (ann, bob): (&mut Client, &mut Client),
    id: &CallId,
    ask: ClientMsg,
    captions: bool,
) {
    use shieldcall_media::sender::{Frames, Sender};
    use str0m::media::Direction;
    ann.send(&ask).await;
    assert_eq!(
        error_code(&ann.recv().await),
        Some(ErrorCode::UnavailableInE2ee)
    );
    let video = if captions {
        Direction::Inactive
    } else {
        Direction::SendOnly
    };
    let (_peer, offer) =
        Sender::offer(Direction::SendOnly, video, Frames::default()).expect("a peer");
    ann.send(&ClientMsg::MediaOffer {
        call_id: id.clone(),
        sdp: offer,
        captions,
    })
    .await;
    assert_eq!(
        error_code(&ann.recv().await),
        Some(ErrorCode::UnavailableInE2ee)
    );
    bob.expect_quiet(Duration::from_millis(150)).await;
    assert!(
        relay.state.media_started().is_none(),
        "a media socket was opened"
    );
}

/// Users `ann@a.test` and `bob@a.test`, one device each, in an answered E2EE call
/// (ann called, bob accepted with a commitment): the devices and the call id.
pub async fn answered_call(relay: &Relay) -> (Client, Client, CallId) {
    answered_call_in(relay, shieldcall_proto::CallMode::E2ee).await
}

/// [`answered_call`] in `mode` (for a standard call ann turns her switch off).
pub async fn answered_call_in(
    relay: &Relay,
    mode: shieldcall_proto::CallMode,
) -> (Client, Client, CallId) {
    relay.add_user("ann@a.test", false).await;
    relay.add_user("bob@a.test", false).await;
    let (mut ann, _) = relay.device("ann@a.test").await;
    let (mut bob, _) = relay.device("bob@a.test").await;
    if mode == shieldcall_proto::CallMode::Standard {
        ann.send(&ClientMsg::SetE2ee { enabled: false }).await;
        assert!(matches!(ann.recv().await, RelayMsg::Settings { .. }));
    }
    ann.send(&ClientMsg::Invite {
        to: "bob@a.test".into(),
        transfer: None,
    })
    .await;
    let calling = ann.recv().await;
    assert!(
        matches!(calling, RelayMsg::Calling { mode: m, .. } if m == mode),
        "{calling:?}"
    );
    let id = call_id(&calling);
    call_id(&bob.recv().await);
    bob.send(&ClientMsg::Accept {
        call_id: id.clone(),
        commit: Some(commit()),
    })
    .await;
    assert!(matches!(ann.recv().await, RelayMsg::Accepted { .. }));
    (ann, bob, id)
}
