//! A tampering reverse proxy for the man-in-the-middle tests (scenario 4,
//! `tests/tests/mitm.rs`). Test-only: it lives in the end-to-end crate, which the
//! shipped `shieldcall` binary never depends on; the relay itself has no tampering
//! mode.
//!
//! The browsers open the proxy's URL instead of the relay's. For each TCP
//! connection the proxy peeks at the HTTP request head:
//! - `GET /ws` (the client's signalling socket): it first opens its own WebSocket
//!   to the relay's `/ws` with the browser's `Cookie` and `Origin` (so a refusal,
//!   `401` or `403`, is passed back to the browser as it is), then accepts the
//!   browser's upgrade and forwards frames both ways; text frames go through the
//!   tamper hook of the chosen [`Mode`];
//! - `GET /__mitm.html` and the WebSocket `GET /__mitm`: the attacker page of
//!   [`Mode::TwoLeg`] (`tests/mitm.html`) and its control channel;
//! - anything else: the raw bytes (the peeked ones included) to the relay and back.
//!
//! The relay must accept the browsers' `Origin`, which is the proxy's: [`start`]
//! runs it with `--public-origin http://127.0.0.1:PROXYPORT`. Everything stops on
//! drop: the relay is terminated by [`Relay`]'s drop, and dropping the [`Proxy`]
//! aborts its task and with it every connection it serves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use shieldcall_proto::{
    CallId, ClientMsg, Commitment, Fingerprint, IceCandidate, RelayMsg, extract_fingerprint,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::{Relay, TempDir, WAIT};

/// What the proxy does to the signalling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Rewrites the sha-256 fingerprint in every relay→caller `answer` to another
    /// valid fingerprint.
    RewriteAnswerFingerprint,
    /// Flips one hex digit of the commitment in every relay→caller `accepted`.
    AlterCommitment,
    /// A full two-leg man in the middle: the attacker page terminates DTLS towards
    /// each side with its own certificates and forwards the media. The caller gets
    /// the commitment to the attacker's leg-1 certificate; offers, answers and
    /// candidates go to the attacker page instead of the relay, and the page's go
    /// to the browsers as if the relay had sent them.
    TwoLeg,
    /// The extra-fingerprint man in the middle: two legs as in [`Mode::TwoLeg`],
    /// but the caller gets the callee's real commitment, and each side gets the
    /// attacker's description with the *real* peer's sha-256 fingerprint (so the
    /// commitment opens and both codes are the real ones) plus an added
    /// `a=fingerprint:sha-384` line for the attacker's own certificate, which a
    /// browser that accepts any listed fingerprint would let DTLS end at.
    ExtraFingerprint,
}

impl Mode {
    /// Whether the attacker page terminates DTLS on two legs.
    fn two_legs(self) -> bool {
        matches!(self, Self::TwoLeg | Self::ExtraFingerprint)
    }
}

/// The running proxy; its task and all its connections stop on drop.
#[derive(Debug)]
pub struct Proxy {
    /// Base URL the browsers open, `http://127.0.0.1:PORT`.
    pub url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds the proxy, starts a relay that accepts the proxy's origin, and serves.
/// Returns the relay (for the CLI and its data dir) and the proxy (for the
/// browsers).
pub async fn start(mode: Mode) -> Result<(Relay, Proxy)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
    let relay = start_relay(&["--public-origin", &url])?;
    let relay_addr = relay
        .url
        .strip_prefix("http://")
        .with_context(|| format!("unexpected relay URL {}", relay.url))?
        .to_string();
    let shared = Arc::new(Shared {
        mode,
        relay: relay_addr,
        state: Mutex::new(State::default()),
    });
    let task = tokio::spawn(serve(listener, shared.clone()));
    Ok((relay, Proxy { url, shared, task }))
}

impl Proxy {
    /// The attacker page of [`Mode::TwoLeg`].
    pub fn attacker_url(&self) -> String {
        format!("{}/__mitm.html", self.url)
    }

    /// What the proxy tampered with or diverted so far, in order.
    pub fn events(&self) -> Vec<String> {
        self.shared.state().events.clone()
    }

    /// The sha-256 fingerprints of the attacker's leg-1 (towards the caller) and
    /// leg-2 (towards the callee) certificates, once its page reported them.
    pub fn attacker_fingerprints(&self) -> Option<(Fingerprint, Fingerprint)> {
        self.shared.state().legs
    }

    /// Waits until the attacker page is connected and has reported its
    /// certificates' fingerprints.
    pub async fn wait_attacker(&self) -> Result<(Fingerprint, Fingerprint)> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(legs) = self.attacker_fingerprints() {
                return Ok(legs);
            }
            if Instant::now() > deadline {
                bail!(
                    "the attacker page did not connect to the proxy and report its certificates within {WAIT:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Starts `shieldcall serve` like [`Relay::start`], with `extra` arguments.
pub fn start_relay(extra: &[&str]) -> Result<Relay> {
    Relay::launch(TempDir::new("data")?, "127.0.0.1:0", extra)
}

type Tx = mpsc::UnboundedSender<Message>;

/// What the connections share.
#[derive(Debug)]
struct Shared {
    mode: Mode,
    /// The relay's `host:port`.
    relay: String,
    state: Mutex<State>,
}

/// The proxy's view of the call. Never held across an `.await`.
#[derive(Debug, Default)]
struct State {
    next_conn: u64,
    /// Frames to each browser's signalling socket, by connection.
    browsers: HashMap<u64, Tx>,
    /// The caller's and callee's connections, once seen.
    caller: Option<u64>,
    callee: Option<u64>,
    call_id: Option<CallId>,
    /// Frames to the attacker page.
    page: Option<Tx>,
    /// The attacker's leg-1 and leg-2 fingerprints.
    legs: Option<(Fingerprint, Fingerprint)>,
    /// [`Mode::ExtraFingerprint`]: the attacker's leg-1 and leg-2 certificates'
    /// sha-384 fingerprints, as SDP writes them.
    legs_384: Option<(String, String)>,
    /// [`Mode::ExtraFingerprint`]: the caller's and the callee's real sha-256.
    caller_fp: Option<Fingerprint>,
    callee_fp: Option<Fingerprint>,
    /// [`Mode::ExtraFingerprint`]: the attacker's leg-1 answer, held until the
    /// callee's real answer says which fingerprint to put in it.
    held_answer1: Option<String>,
    events: Vec<String>,
}

/// Where a frame goes.
#[derive(Debug)]
enum Route {
    /// To the relay, on the connection it came from.
    Relay(String),
    /// To a browser's signalling socket.
    Browser(u64, String),
    /// To the attacker page.
    Page(String),
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `routes`; `to_relay` is the relay side of the connection they came from.
    fn deliver(&self, routes: Vec<Route>, to_relay: Option<&Tx>) {
        let st = self.state();
        for route in routes {
            let sent = match route {
                Route::Relay(text) => to_relay.map(|tx| tx.send(Message::text(text)).is_ok()),
                Route::Browser(id, text) => st
                    .browsers
                    .get(&id)
                    .map(|tx| tx.send(Message::text(text)).is_ok()),
                Route::Page(text) => st
                    .page
                    .as_ref()
                    .map(|tx| tx.send(Message::text(text)).is_ok()),
            };
            if sent != Some(true) {
                eprintln!("mitm proxy: a frame could not be delivered (its receiver is gone)");
            }
        }
    }

    /// The tamper hook for relay → browser frames on connection `conn`.
    fn on_relay_frame(&self, conn: u64, text: &str) -> Vec<Route> {
        trace(conn, "relay → browser", text);
        let pass = vec![Route::Browser(conn, text.to_string())];
        let Ok(msg) = RelayMsg::decode(text) else {
            return pass;
        };
        let mut st = self.state();
        match (self.mode, msg) {
            (Mode::RewriteAnswerFingerprint, RelayMsg::Answer { call_id, sdp }) => {
                match rewrite_fingerprint(&sdp) {
                    Some(sdp) => {
                        st.events
                            .push("rewrote the fingerprint in the answer to the caller".into());
                        vec![Route::Browser(
                            conn,
                            RelayMsg::Answer { call_id, sdp }.encode(),
                        )]
                    }
                    None => {
                        st.events
                            .push("the answer had no sha-256 fingerprint to rewrite".into());
                        pass
                    }
                }
            }
            (
                Mode::AlterCommitment,
                RelayMsg::Accepted {
                    call_id,
                    commit: Some(commit),
                },
            ) => match flip_hex_digit(&commit) {
                Some(altered) => {
                    st.events.push(format!(
                        "altered the commitment to the caller: {commit} -> {altered}"
                    ));
                    vec![Route::Browser(
                        conn,
                        RelayMsg::Accepted {
                            call_id,
                            commit: Some(altered),
                        }
                        .encode(),
                    )]
                }
                None => pass,
            },
            (Mode::ExtraFingerprint, RelayMsg::Accepted { call_id, .. }) => {
                // The real commitment goes through: the attack keeps it valid.
                st.caller = Some(conn);
                st.call_id = Some(call_id);
                pass
            }
            (
                Mode::TwoLeg,
                RelayMsg::Accepted {
                    call_id,
                    commit: Some(_),
                },
            ) => {
                st.caller = Some(conn);
                st.call_id = Some(call_id.clone());
                let Some((leg1, _)) = st.legs else {
                    st.events
                        .push("the call was accepted before the attacker page was ready".into());
                    return pass;
                };
                let commit = Commitment::to(&leg1);
                st.events.push(format!(
                    "replaced the commitment to the caller with {commit}, the attacker's leg 1"
                ));
                vec![Route::Browser(
                    conn,
                    RelayMsg::Accepted {
                        call_id,
                        commit: Some(commit),
                    }
                    .encode(),
                )]
            }
            _ => pass,
        }
    }

    /// The tamper hook for browser → relay frames on connection `conn`.
    fn on_browser_frame(&self, conn: u64, text: &str) -> Vec<Route> {
        trace(conn, "browser → relay", text);
        let pass = vec![Route::Relay(text.to_string())];
        if !self.mode.two_legs() {
            return pass;
        }
        let Ok(msg) = ClientMsg::decode(text) else {
            return pass;
        };
        let mut st = self.state();
        match msg {
            ClientMsg::Accept { call_id, .. } => {
                st.callee = Some(conn);
                st.call_id = Some(call_id);
                pass
            }
            ClientMsg::Offer { sdp, .. } => {
                st.caller = Some(conn);
                st.caller_fp = extract_fingerprint(&sdp).ok();
                st.events
                    .push("diverted the caller's offer to the attacker's leg 1".into());
                vec![Route::Page(
                    json!({"kind": "offer1", "sdp": sdp}).to_string(),
                )]
            }
            ClientMsg::Answer { sdp, .. } => {
                st.callee = Some(conn);
                st.callee_fp = extract_fingerprint(&sdp).ok();
                st.events
                    .push("diverted the callee's answer to the attacker's leg 2".into());
                let mut routes = vec![Route::Page(
                    json!({"kind": "answer2", "sdp": sdp}).to_string(),
                )];
                if let Some(held) = st.held_answer1.take() {
                    routes.extend(st.doctored_answer1(&held));
                }
                routes
            }
            ClientMsg::Ice { candidate, .. } => {
                let kind = if st.caller == Some(conn) {
                    "ice1"
                } else if st.callee == Some(conn) {
                    "ice2"
                } else {
                    return pass;
                };
                vec![Route::Page(
                    json!({"kind": kind, "candidate": candidate}).to_string(),
                )]
            }
            _ => pass,
        }
    }

    /// A frame from the attacker page.
    fn on_page_frame(&self, text: &str) -> Result<Vec<Route>> {
        let v: Value = serde_json::from_str(text).context("attacker page: not JSON")?;
        let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
        let field = |name: &str| -> Result<String> {
            v.get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .with_context(|| format!("attacker page: {kind} without {name}"))
        };
        let mut st = self.state();
        let to = |who: Option<u64>, call_id: &Option<CallId>| -> Result<(u64, CallId)> {
            match (who, call_id) {
                (Some(id), Some(call_id)) => Ok((id, call_id.clone())),
                _ => bail!("attacker page sent {kind} before the call was set up"),
            }
        };
        let routes = match kind {
            "fingerprints" => {
                let leg1: Fingerprint = field("leg1")?
                    .parse()
                    .context("attacker page: leg-1 fingerprint")?;
                let leg2: Fingerprint = field("leg2")?
                    .parse()
                    .context("attacker page: leg-2 fingerprint")?;
                st.legs = Some((leg1, leg2));
                if let (Ok(a), Ok(b)) = (field("leg1_sha384"), field("leg2_sha384")) {
                    st.legs_384 = Some((a, b));
                }
                Vec::new()
            }
            "answer1" if self.mode == Mode::ExtraFingerprint => {
                let sdp = field("sdp")?;
                if st.callee_fp.is_some() {
                    st.doctored_answer1(&sdp)
                } else {
                    st.held_answer1 = Some(sdp);
                    Vec::new()
                }
            }
            "offer2" if self.mode == Mode::ExtraFingerprint => {
                let (callee, call_id) = to(st.callee, &st.call_id)?;
                let (Some(real), Some((_, extra))) = (st.caller_fp, st.legs_384.clone()) else {
                    bail!("offer2 before the caller's offer and the attacker's fingerprints");
                };
                let sdp = add_fingerprint(&field("sdp")?, &real, &extra);
                st.events.push(
                    "sent the callee the attacker's leg-2 offer with the caller's sha-256 and the attacker's sha-384"
                        .into(),
                );
                vec![Route::Browser(
                    callee,
                    RelayMsg::Offer { call_id, sdp }.encode(),
                )]
            }
            "answer1" => {
                let (caller, call_id) = to(st.caller, &st.call_id)?;
                st.events
                    .push("injected the attacker's leg-1 answer to the caller".into());
                let sdp = field("sdp")?;
                vec![Route::Browser(
                    caller,
                    RelayMsg::Answer { call_id, sdp }.encode(),
                )]
            }
            "offer2" => {
                let (callee, call_id) = to(st.callee, &st.call_id)?;
                st.events
                    .push("injected the attacker's leg-2 offer to the callee".into());
                let sdp = field("sdp")?;
                vec![Route::Browser(
                    callee,
                    RelayMsg::Offer { call_id, sdp }.encode(),
                )]
            }
            "ice1" | "ice2" => {
                let who = if kind == "ice1" { st.caller } else { st.callee };
                let (id, call_id) = to(who, &st.call_id)?;
                let candidate: IceCandidate =
                    serde_json::from_value(v.get("candidate").cloned().unwrap_or_default())
                        .context("attacker page: candidate")?;
                vec![Route::Browser(
                    id,
                    RelayMsg::Ice { call_id, candidate }.encode(),
                )]
            }
            "log" => {
                eprintln!("mitm attacker page: {}", field("text")?);
                Vec::new()
            }
            other => bail!("attacker page: unknown message {other:?}"),
        };
        Ok(routes)
    }
}

impl State {
    /// [`Mode::ExtraFingerprint`]: the attacker's leg-1 answer to the caller, with
    /// the callee's real sha-256 and the attacker's sha-384 line.
    fn doctored_answer1(&mut self, sdp: &str) -> Vec<Route> {
        let (Some(caller), Some(call_id), Some(real), Some((extra, _))) = (
            self.caller,
            self.call_id.clone(),
            self.callee_fp,
            self.legs_384.clone(),
        ) else {
            self.events
                .push("could not doctor the leg-1 answer: the call is not set up".into());
            return Vec::new();
        };
        let sdp = add_fingerprint(sdp, &real, &extra);
        self.events.push(
            "sent the caller the attacker's leg-1 answer with the callee's sha-256 and the attacker's sha-384"
                .into(),
        );
        vec![Route::Browser(
            caller,
            RelayMsg::Answer { call_id, sdp }.encode(),
        )]
    }
}

/// The SDP with every sha-256 fingerprint line set to `real` and followed by
/// `a=fingerprint:sha-384 {extra}` (the extra-fingerprint attack).
pub fn add_fingerprint(sdp: &str, real: &Fingerprint, extra: &str) -> String {
    map_sha256_lines(sdp, |eol| {
        format!("a=fingerprint:sha-256 {real}{eol}\na=fingerprint:sha-384 {extra}{eol}")
    })
}

/// The SDP with each `a=fingerprint:sha-256` line (any case) replaced by what
/// `line` makes of it, given the line's own ending (`"\r"` or `""`).
fn map_sha256_lines(sdp: &str, line: impl Fn(&str) -> String) -> String {
    let prefix = "a=fingerprint:sha-256 ";
    sdp.split('\n')
        .map(|l| {
            let (body, cr) = match l.strip_suffix('\r') {
                Some(body) => (body, "\r"),
                None => (l, ""),
            };
            if body.len() >= prefix.len() && body[..prefix.len()].eq_ignore_ascii_case(prefix) {
                line(cr)
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// With `SHIELDCALL_MITM_TRACE` set, prints each signalling frame's type (and an
/// error's code), never its SDP, to help read a failing test.
fn trace(conn: u64, direction: &str, text: &str) {
    if std::env::var_os("SHIELDCALL_MITM_TRACE").is_none() {
        return;
    }
    let v: Value = serde_json::from_str(text).unwrap_or_default();
    let kind = v.get("type").and_then(Value::as_str).unwrap_or("?");
    let code = v.get("code").and_then(Value::as_str).unwrap_or("");
    eprintln!("mitm proxy: connection {conn} {direction}: {kind} {code}");
}

/// The SDP with every sha-256 fingerprint replaced by another valid one (each byte
/// inverted); `None` if it has no single sha-256 fingerprint.
pub fn rewrite_fingerprint(sdp: &str) -> Option<String> {
    let original = extract_fingerprint(sdp).ok()?;
    let mut bytes = *original.as_bytes();
    for b in &mut bytes {
        *b = !*b;
    }
    let forged = Fingerprint::from_bytes(bytes);
    let rewritten = map_sha256_lines(sdp, |eol| format!("a=fingerprint:sha-256 {forged}{eol}"));
    (extract_fingerprint(&rewritten).ok() == Some(forged)).then_some(rewritten)
}

/// The commitment with its first hex digit changed.
pub fn flip_hex_digit(commit: &Commitment) -> Option<Commitment> {
    let hex = commit.to_string();
    let first = if hex.starts_with('0') { '1' } else { '0' };
    format!("{first}{}", hex.get(1..)?).parse().ok()
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    // Owned by this task: aborting it drops the set, which aborts every connection.
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("mitm proxy: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        conns.spawn(async move {
            if let Err(e) = connection(stream, &shared).await {
                eprintln!("mitm proxy: {e:#}");
            }
        });
    }
}

/// An HTTP request head, as peeked.
#[derive(Debug)]
struct Head {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    len: usize,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn is_upgrade(&self) -> bool {
        self.method == "GET"
            && self
                .header("upgrade")
                .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
    }
}

/// Peeks (without consuming) until the request head is complete.
async fn peek_head(stream: &TcpStream) -> Result<Head> {
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            bail!("the connection closed before a request");
        }
        if let Some(end) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..end]);
            let mut lines = text.split("\r\n");
            let mut first = lines.next().unwrap_or_default().split(' ');
            let method = first.next().unwrap_or_default().to_string();
            let target = first.next().unwrap_or_default();
            let path = target.split('?').next().unwrap_or_default().to_string();
            let headers = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
            return Ok(Head {
                method,
                path,
                headers,
                len: end + 4,
            });
        }
        if n == buf.len() || Instant::now() > deadline {
            // Not a request this proxy needs to understand: pass it through.
            return Ok(Head {
                method: String::new(),
                path: String::new(),
                headers: Vec::new(),
                len: 0,
            });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn connection(mut stream: TcpStream, shared: &Arc<Shared>) -> Result<()> {
    let head = peek_head(&stream).await?;
    match head.path.as_str() {
        "/ws" if head.is_upgrade() => browser_socket(stream, &head, shared).await,
        "/__mitm" if head.is_upgrade() => page_socket(stream, shared).await,
        "/__mitm.html" if head.method == "GET" => {
            let mut request = vec![0u8; head.len];
            stream.read_exact(&mut request).await?;
            let body = include_str!("../mitm.html");
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(response.as_bytes()).await?;
            stream.shutdown().await?;
            Ok(())
        }
        _ => {
            let mut upstream = TcpStream::connect(&shared.relay)
                .await
                .context("connecting to the relay")?;
            let _ = upstream.set_nodelay(true);
            // Errors here are resets at the end of a keep-alive connection.
            let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
            Ok(())
        }
    }
}

/// A browser's signalling socket, bridged to its own socket to the relay.
async fn browser_socket(stream: TcpStream, head: &Head, shared: &Arc<Shared>) -> Result<()> {
    let mut request = format!("ws://{}/ws", shared.relay).into_client_request()?;
    for (name, value) in [
        (header::COOKIE, head.header("cookie")),
        (header::ORIGIN, head.header("origin")),
    ] {
        if let Some(value) = value {
            request
                .headers_mut()
                .insert(name, HeaderValue::from_str(value)?);
        }
    }
    let upstream = match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => ws,
        Err(WsError::Http(refusal)) => {
            // Refuse the browser the way the relay refused the proxy.
            refuse(stream, refusal.status()).await;
            return Ok(());
        }
        Err(e) => return Err(e).context("connecting to the relay's /ws"),
    };
    let browser = tokio_tungstenite::accept_async(stream)
        .await
        .context("accepting the browser's /ws")?;

    let (to_browser, mut to_browser_rx) = mpsc::unbounded_channel::<Message>();
    let (to_relay, mut to_relay_rx) = mpsc::unbounded_channel::<Message>();
    let conn = {
        let mut st = shared.state();
        st.next_conn += 1;
        let id = st.next_conn;
        st.browsers.insert(id, to_browser.clone());
        id
    };
    let (mut browser_tx, mut browser_rx) = browser.split();
    let (mut relay_tx, mut relay_rx) = upstream.split();

    let write_browser = async {
        while let Some(m) = to_browser_rx.recv().await {
            browser_tx.send(m).await?;
        }
        anyhow::Ok(())
    };
    let write_relay = async {
        while let Some(m) = to_relay_rx.recv().await {
            relay_tx.send(m).await?;
        }
        anyhow::Ok(())
    };
    let read_browser = async {
        while let Some(m) = browser_rx.next().await {
            match m? {
                Message::Text(text) => {
                    shared.deliver(
                        shared.on_browser_frame(conn, text.as_str()),
                        Some(&to_relay),
                    );
                }
                Message::Close(frame) => {
                    let _ = to_relay.send(Message::Close(frame));
                    break;
                }
                other => {
                    let _ = to_relay.send(other);
                }
            }
        }
        anyhow::Ok(())
    };
    let read_relay = async {
        while let Some(m) = relay_rx.next().await {
            match m? {
                Message::Text(text) => {
                    shared.deliver(shared.on_relay_frame(conn, text.as_str()), None);
                }
                Message::Close(frame) => {
                    let _ = to_browser.send(Message::Close(frame));
                    break;
                }
                other => {
                    let _ = to_browser.send(other);
                }
            }
        }
        anyhow::Ok(())
    };
    let result = tokio::select! {
        r = write_browser => r,
        r = write_relay => r,
        r = read_browser => r,
        r = read_relay => r,
    };
    shared.state().browsers.remove(&conn);
    // A socket that closes is how calls end; only report real failures.
    match result {
        Err(e) if !is_disconnect(&e) => Err(e),
        _ => Ok(()),
    }
}

/// Answers a WebSocket upgrade with `status` instead of upgrading.
// The callback's error type is tungstenite's, not ours to make smaller.
#[allow(clippy::result_large_err)]
async fn refuse(stream: TcpStream, status: StatusCode) {
    let _ = tokio_tungstenite::accept_hdr_async(stream, move |_: &Request, _: Response| {
        let mut response = ErrorResponse::new(None);
        *response.status_mut() = status;
        Err(response)
    })
    .await;
}

fn is_disconnect(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<WsError>(),
        Some(
            WsError::ConnectionClosed
                | WsError::AlreadyClosed
                | WsError::Io(_)
                | WsError::Protocol(_)
        )
    )
}

/// The attacker page's control socket.
async fn page_socket(stream: TcpStream, shared: &Arc<Shared>) -> Result<()> {
    let ws = tokio_tungstenite::accept_async(stream)
        .await
        .context("accepting the attacker page's socket")?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    shared.state().page = Some(tx);
    let (mut sink, mut source) = ws.split();
    let write = async {
        while let Some(m) = rx.recv().await {
            sink.send(m).await?;
        }
        anyhow::Ok(())
    };
    let read = async {
        while let Some(m) = source.next().await {
            match m? {
                Message::Text(text) => match shared.on_page_frame(text.as_str()) {
                    Ok(routes) => shared.deliver(routes, None),
                    Err(e) => eprintln!("mitm proxy: {e:#}"),
                },
                Message::Close(_) => break,
                _ => {}
            }
        }
        anyhow::Ok(())
    };
    tokio::select! {
        r = write => r,
        r = read => r,
    }
}
