//! What the relay benchmarks share: users and sessions made straight in the
//! store, the release relay started as its own process, and WebSocket clients.

#![allow(dead_code)] // each benchmark uses its part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use shieldcall_proto::{CallId, ClientMsg, RelayMsg};
use shieldcall_relay::auth::{self, PasswordCost};
use shieldcall_relay::ops::Ops;
use shieldcall_relay::store::{PostgresStore, Session, SqliteStore, Store, unix_now};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client's WebSocket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Creates users `u<i>@bench.test` and one session cookie each, in SQLite in
/// `dir` or in PostgreSQL at `database_url`.
pub async fn prepare(
    dir: &Path,
    database_url: Option<&str>,
    users: usize,
) -> anyhow::Result<Vec<(String, String)>> {
    let store: Box<dyn Store> = match database_url {
        Some(url) => Box::new(PostgresStore::connect(url).await?),
        None => Box::new(SqliteStore::open(dir).await?),
    };
    let store = store.as_ref();
    let ops = Ops {
        store,
        actor: "bench",
    };
    let cost = PasswordCost {
        memory_kib: 64,
        iterations: 1,
    };
    let mut out = Vec::with_capacity(users);
    for i in 0..users {
        let name = format!("u{i}@bench.test");
        let hash = auth::hash_password(cost, format!("bench-password-{i}")).await?;
        ops.add_user(&name, hash, false).await?;
        let (token, hash) = auth::new_token()?;
        let session = Session {
            token_hash: hash,
            user: name.clone(),
            expires_at: unix_now() + 86_400,
        };
        store.create_session(&session).await?;
        out.push((name, format!("{}={token}", auth::COOKIE)));
    }
    Ok(out)
}

/// [`start_relay`] as a node of a cluster on `database_url` and `bus`.
pub fn start_node(
    relay: &Path,
    dir: &Path,
    database_url: &str,
    bus: &str,
) -> anyhow::Result<(Child, u16)> {
    start_relay_with(relay, dir, Some(database_url), Some(bus))
}

pub fn start_relay(
    relay: &Path,
    dir: &Path,
    database_url: Option<&str>,
) -> anyhow::Result<(Child, u16)> {
    start_relay_with(relay, dir, database_url, None)
}

fn start_relay_with(
    relay: &Path,
    dir: &Path,
    database_url: Option<&str>,
    bus: Option<&str>,
) -> anyhow::Result<(Child, u16)> {
    let cfg = dir.join("bench.toml");
    std::fs::write(
        &cfg,
        "demo = false\nws_rate_per_sec = 1000000.0\nws_burst = 1000000.0\nmax_connections_per_address = 100000\n",
    )?;
    let mut cmd = Command::new(relay);
    match database_url {
        Some(url) => cmd.env("SHIELDCALL_DATABASE_URL", url),
        None => cmd.env_remove("SHIELDCALL_DATABASE_URL"),
    };
    match bus {
        Some(url) => cmd.env("SHIELDCALL_BUS_URL", url),
        None => cmd.env_remove("SHIELDCALL_BUS_URL"),
    };
    let mut child = cmd
        .args(["serve", "--bind", "127.0.0.1:0", "--no-demo", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir)
        .env("SHIELDCALL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("start {}", relay.display()))?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let port = loop {
        let line = lines.next().context("relay exited")??;
        if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
            break rest.trim_end_matches('/').parse()?;
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Ok((child, port))
}

/// The flags of the media and captions benchmarks: the relay binary, how
/// many calls, how long each measurement lasts.
pub struct CallArgs {
    pub relay: PathBuf,
    pub calls: usize,
    pub seconds: u64,
}

/// `--relay PATH --calls N --seconds S`, each optional.
pub fn call_args(calls: usize, seconds: u64) -> anyhow::Result<CallArgs> {
    let mut a = CallArgs {
        relay: PathBuf::from("target/release/shieldcall"),
        calls,
        seconds,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--relay" => a.relay = PathBuf::from(v),
            "--calls" => a.calls = v.parse()?,
            "--seconds" => a.seconds = v.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

/// A process's CPU time so far (user + system), from `/proc/<pid>/stat`.
pub fn cpu(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).context("utime")?.parse::<u64>()?
        + fields.get(12).context("stime")?.parse::<u64>()?;
    // Linux reports in clock ticks of 1/100 s on every platform we run on.
    Ok(Duration::from_millis(ticks * 10))
}

/// The CPU share of one core and the RSS (KiB) of `pids` together over `secs`.
pub async fn measure(pids: &[u32], secs: u64) -> anyhow::Result<(f64, u64)> {
    let total = |pids: &[u32]| -> anyhow::Result<Duration> {
        pids.iter()
            .map(|p| cpu(*p))
            .sum::<anyhow::Result<Duration>>()
    };
    let (c0, t0) = (total(pids)?, Instant::now());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (c1, t1) = (total(pids)?, Instant::now());
    let share = (c1 - c0).as_secs_f64() / (t1 - t0).as_secs_f64();
    let rss = pids
        .iter()
        .map(|p| rss_kib(*p))
        .sum::<anyhow::Result<u64>>()?;
    Ok((share, rss))
}

pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("value")?.parse()?)
}

/// A signed-in WebSocket past `hello`, none of the relay's messages read yet.
pub async fn open(port: u16, cookie: &str) -> anyhow::Result<Ws> {
    let mut req = format!("ws://127.0.0.1:{port}/ws").into_client_request()?;
    req.headers_mut().insert("Cookie", cookie.parse()?);
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), true).await?;
    send(&mut ws, &ClientMsg::Hello { version: 1 }).await?;
    Ok(ws)
}

/// [`open`], then past `welcome` and the contact list.
pub async fn connect(port: u16, cookie: &str) -> anyhow::Result<Ws> {
    let mut ws = open(port, cookie).await?;
    // welcome, then the contact list
    for _ in 0..2 {
        next(&mut ws).await?;
    }
    Ok(ws)
}

pub async fn next(ws: &mut Ws) -> anyhow::Result<RelayMsg> {
    loop {
        match ws.next().await.context("closed")?? {
            Message::Text(t) => return Ok(RelayMsg::decode(t.as_str())?),
            Message::Close(_) => bail!("closed"),
            _ => {}
        }
    }
}

/// The next message that is not presence.
pub async fn next_call_msg(ws: &mut Ws) -> anyhow::Result<RelayMsg> {
    loop {
        let m = next(ws).await?;
        if !matches!(m, RelayMsg::Presence { .. }) {
            return Ok(m);
        }
    }
}

pub async fn send(ws: &mut Ws, m: &ClientMsg) -> anyhow::Result<()> {
    ws.send(Message::Text(m.encode().into())).await?;
    Ok(())
}

/// `n` answered standard calls between `users` 0 and 1, 2 and 3, ...: the
/// caller's socket, the callee's, and the call.
pub async fn standard_calls(
    port: u16,
    users: &[(String, String)],
    n: usize,
) -> anyhow::Result<Vec<(Ws, Ws, CallId)>> {
    let mut calls = Vec::new();
    for i in 0..n {
        let mut a = connect(port, &users[2 * i].1).await?;
        let mut b = connect(port, &users[2 * i + 1].1).await?;
        send(&mut a, &ClientMsg::SetE2ee { enabled: false }).await?;
        let RelayMsg::Settings { .. } = next_call_msg(&mut a).await? else {
            bail!("no settings")
        };
        let id = call(&mut a, &mut b, &users[2 * i + 1].0).await?;
        calls.push((a, b, id));
    }
    Ok(calls)
}

pub async fn call(caller: &mut Ws, callee: &mut Ws, to: &str) -> anyhow::Result<CallId> {
    send(
        caller,
        &ClientMsg::Invite {
            to: to.into(),
            transfer: None,
        },
    )
    .await?;
    let RelayMsg::Calling { call_id, .. } = next_call_msg(caller).await? else {
        bail!("no calling")
    };
    let RelayMsg::Incoming { .. } = next_call_msg(callee).await? else {
        bail!("no incoming")
    };
    let commit = "8539b5720e784316dae00fea08435fc10f6814c4074565541dfb06c0f5d58115".parse()?;
    let accept = ClientMsg::Accept {
        call_id: call_id.clone(),
        commit: Some(commit),
    };
    send(callee, &accept).await?;
    let RelayMsg::Accepted { .. } = next_call_msg(caller).await? else {
        bail!("no accepted")
    };
    Ok(call_id)
}
