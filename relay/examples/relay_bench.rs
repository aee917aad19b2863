//! Relay benchmark: drives real WebSocket clients against a separately started
//! release relay (`shieldcall serve`) and prints a Markdown report.
//!
//! ```sh
//! cargo build --release -p shieldcall-relay --bin shieldcall
//! cargo run --release -p shieldcall-relay --example relay_bench -- \
//!     --relay target/release/shieldcall --sessions 10000 --rate 5000 --size 4096
//! ```
//!
//! Measures, on the relay process only (`/proc/<pid>/status`):
//! 1. RSS per idle signed-in session, with `--sessions` connections past `hello`;
//! 2. forward latency p50/p99 of `offer` messages of `--size` bytes between
//!    `--pairs` answered calls at `--rate` messages/s in total;
//! 3. the highest forward rate (every sender as fast as it can, with at most
//!    32 messages in flight per call);
//! 4. call setups per second (invite, incoming, accept, accepted, hangup).
//!
//! The relay's per-connection rate limit is raised through its TOML config for
//! 2 to 4: they measure forwarding, not the limiter. Client and relay share the
//! machine, so the numbers include the clients' CPU.
//!
//! With `--database-url postgres://...` (an empty database) it runs everything
//! twice in one run, first on the embedded SQLite store, then on PostgreSQL, and
//! reports both side by side with their ratio.
//!
//! With `--nats PATH` as well (`cargo xtask bench relay --nodes 2`), it runs the
//! four measures on the cluster configuration too (one node; two nodes with
//! calls inside one; two with every call across), and then a node's death:
//! `--failover-sessions` (5,000) sessions on one node killed with SIGKILL,
//! timed until all have reconnected to the other and presence has converged.

#[path = "bench_support/mod.rs"]
mod bench_support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bench_support::*;
use futures_util::{SinkExt, StreamExt};
use shieldcall_proto::{CallId, ClientMsg, HangupReason, RelayMsg, Status};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Clone)]
struct Args {
    relay: PathBuf,
    sessions: usize,
    users: usize,
    pairs: usize,
    rate: u64,
    size: usize,
    seconds: u64,
    /// Also run on this PostgreSQL database, side by side with SQLite.
    database_url: Option<String>,
    /// With `--nodes 2`: the `nats-server` to start for the cluster runs.
    nats: Option<PathBuf>,
    /// With `--nodes 2`: the sessions on the node that is killed.
    failover: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        relay: PathBuf::from("target/release/shieldcall"),
        sessions: 10_000,
        users: 200,
        pairs: 100,
        rate: 5_000,
        size: 4_096,
        seconds: 10,
        database_url: None,
        nats: None,
        failover: 5_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--only-failover" || flag == "--only-across" {
            continue;
        }
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--relay" => a.relay = PathBuf::from(v),
            "--sessions" => a.sessions = v.parse()?,
            "--users" => a.users = v.parse()?,
            "--pairs" => a.pairs = v.parse()?,
            "--rate" => a.rate = v.parse()?,
            "--size" => a.size = v.parse()?,
            "--seconds" => a.seconds = v.parse()?,
            "--database-url" => a.database_url = Some(v),
            "--nats" => a.nats = Some(PathBuf::from(v)),
            "--failover-sessions" => a.failover = v.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    // Enough users that no one has more devices than the relay allows.
    let per_user = shieldcall_relay::hub::MAX_DEVICES_PER_USER;
    a.users = a
        .users
        .max(2 * a.pairs)
        .max(a.sessions.div_ceil(per_user))
        .max(1);
    Ok(a)
}

async fn hangup(caller: &mut Ws, callee: &mut Ws, call_id: CallId) -> anyhow::Result<()> {
    let m = ClientMsg::Hangup {
        call_id,
        reason: HangupReason::Normal,
    };
    send(caller, &m).await?;
    let RelayMsg::Hangup { .. } = next_call_msg(callee).await? else {
        bail!("no hangup")
    };
    Ok(())
}

/// An SDP-sized text whose second line carries the send time.
fn sdp(size: usize, t0: Instant) -> String {
    let mut s = format!("v=0\r\nt={}\r\n", t0.elapsed().as_nanos());
    while s.len() < size {
        s.push_str("a=candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host\r\n");
    }
    s.truncate(size);
    s
}

fn sent_at(sdp: &str) -> Option<u128> {
    sdp.split("\r\n").nth(1)?.strip_prefix("t=")?.parse().ok()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    // `--only-failover`: the node's death alone (it needs `--database-url`
    // and `--nats`), for working on it.
    // `--only-across`: two nodes with every call across, alone.
    if std::env::args().any(|a| a == "--only-across") {
        let (Some(url), Some(nats)) = (&args.database_url, &args.nats) else {
            bail!("--only-across needs --database-url and --nats");
        };
        let bus = NatsServer::start(nats)?;
        let db = fresh_database(url, 4).await?;
        let across = measure_cluster(&args, &db, &bus.url, Layout::TwoAcross).await?;
        println!(
            "{}",
            report(&args, &[("two nodes, every call across", &across)])
        );
        return Ok(());
    }
    if std::env::args().any(|a| a == "--only-failover") {
        let (Some(url), Some(nats)) = (&args.database_url, &args.nats) else {
            bail!("--only-failover needs --database-url and --nats");
        };
        let bus = NatsServer::start(nats)?;
        println!("{}", measure_failover(&args, url, &bus.url).await?.report());
        return Ok(());
    }
    let embedded = measure(&args, None, Layout::One).await?;
    let report = match (&args.database_url, &args.nats) {
        (None, _) => report(&args, &[("embedded (SQLite)", &embedded)]),
        (Some(url), None) => {
            let postgres = measure(&args, Some(url), Layout::One).await?;
            report(
                &args,
                &[
                    ("embedded (SQLite)", &embedded),
                    ("PostgreSQL, one node", &postgres),
                ],
            )
        }
        (Some(url), Some(nats)) => {
            let bus = NatsServer::start(nats)?;
            let mut runs = Vec::new();
            for (n, layout) in [Layout::ClusterOne, Layout::TwoInside, Layout::TwoAcross]
                .into_iter()
                .enumerate()
            {
                let db = fresh_database(url, n).await?;
                runs.push(measure_cluster(&args, &db, &bus.url, layout).await?);
            }
            let failover = measure_failover(&args, url, &bus.url).await?;
            report(
                &args,
                &[
                    ("embedded (SQLite)", &embedded),
                    ("cluster, one node", &runs[0]),
                    ("two nodes, calls inside one", &runs[1]),
                    ("two nodes, every call across", &runs[2]),
                ],
            ) + &failover.report()
        }
    };
    println!("{report}");
    Ok(())
}

/// Where the relays of a run are and where its calls go.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Layout {
    /// One relay, no bus.
    One,
    /// One relay with a bus (the cluster configuration, one node).
    ClusterOne,
    /// Two nodes; both people of every call on the first.
    TwoInside,
    /// Two nodes; every caller on the first, every callee on the second.
    TwoAcross,
}

/// A `nats-server` for the cluster runs, on a port of its own choosing.
struct NatsServer {
    child: std::process::Child,
    url: String,
}

impl NatsServer {
    fn start(bin: &std::path::Path) -> anyhow::Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("shieldcall-bench-nats-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let child = Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", "-1", "--ports_file_dir"])
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let file = dir.join(format!("nats-server_{}.ports", child.id()));
        let mut server = Self {
            child,
            url: String::new(),
        };
        for _ in 0..500 {
            if let Ok(text) = std::fs::read_to_string(&file)
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                && let Some(url) = v["nats"][0].as_str()
            {
                server.url = url.to_string();
                let _ = std::fs::remove_dir_all(&dir);
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        bail!("nats-server did not listen")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new, empty database beside `url`'s (each cluster run starts afresh).
async fn fresh_database(url: &str, n: usize) -> anyhow::Result<String> {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let (base, name) = url.rsplit_once('/').context("a URL with a database")?;
    let fresh = format!("{name}_cluster{n}");
    conn.execute(format!("DROP DATABASE IF EXISTS {fresh}").as_str())
        .await?;
    conn.execute(format!("CREATE DATABASE {fresh}").as_str())
        .await?;
    Ok(format!("{base}/{fresh}"))
}

/// [`measure`] for the cluster layouts: the relays started with the bus,
/// idle sessions measured on the first node.
async fn measure_cluster(
    args: &Args,
    db: &str,
    bus: &str,
    layout: Layout,
) -> anyhow::Result<Figures> {
    let base = std::env::temp_dir().join(format!(
        "shieldcall-bench-{}-{layout:?}",
        std::process::id()
    ));
    eprintln!("{layout:?}: preparing {} users", args.users);
    let users = prepare(&base, Some(db), args.users).await?;
    let nodes = if layout == Layout::ClusterOne { 1 } else { 2 };
    let mut relays = Vec::new();
    for i in 0..nodes {
        let dir = base.join(format!("node{i}"));
        std::fs::create_dir_all(&dir)?;
        relays.push(start_node(&args.relay, &dir, db, bus)?);
    }
    let ports = match layout {
        Layout::TwoAcross => (relays[0].1, relays[1].1),
        _ => (relays[0].1, relays[0].1),
    };
    let pid = relays[0].0.id();
    let result = run(args, ports, pid, &users).await;
    for (mut child, _) in relays {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&base);
    result
}

/// What the sudden death of a node costs, in seconds after its `kill -9`.
#[derive(Debug)]
struct Failover {
    sessions: usize,
    people: usize,
    /// Sessions signed in again on the surviving node: the median one's time
    /// and the last one's.
    back_p50: f64,
    back_all: f64,
    /// The dead node's rows gone from the database: its lease ran out and the
    /// survivor reaped it.
    reaped: f64,
    /// All of it done, the database counting every session on the survivor,
    /// and a watcher there seeing every person online (and no change for 2 s
    /// after).
    converged: f64,
    /// CPU seconds from the kill until then: node B's, the clients'.
    cpu_b: f64,
    cpu_clients: f64,
    /// Sessions whose first attempt to reconnect failed.
    retried: usize,
}

impl Failover {
    fn report(&self) -> String {
        format!(
            "\n| after `kill -9` of a node holding {} sessions of {} people | seconds | target |\n\
             |---|---|---|\n\
             | sessions signed in again on the other node: median, last | {:.2}, {:.2} | |\n\
             | the dead node reaped (its lease ran out) | {:.2} | |\n\
             | presence converged (all back, reaped, a watcher sees everyone online) | {:.2} | at most 15 |\n\
             | CPU seconds meanwhile: node B, the clients | {:.2}, {:.2} | |\n\
             | sessions whose first reconnect failed | {} | |\n",
            self.sessions,
            self.people,
            self.back_p50,
            self.back_all,
            self.reaped,
            self.converged,
            self.cpu_b,
            self.cpu_clients,
            self.retried
        )
    }
}

/// Two nodes on a fresh database: node A holds `args.failover` sessions of
/// `args.users` people, a watcher on node B follows their presence. A is killed
/// with SIGKILL; each session then reconnects to B as a browser tab does (its
/// backoff: 250 to 500 ms at first, doubling while B refuses), as a load
/// balancer would send it. Measured until the cluster is right again.
async fn measure_failover(args: &Args, url: &str, bus: &str) -> anyhow::Result<Failover> {
    let db = fresh_database(url, 3).await?;
    let base =
        std::env::temp_dir().join(format!("shieldcall-bench-{}-failover", std::process::id()));
    eprintln!("failover: preparing {} users", args.users + 1);
    let users = prepare(&base, Some(&db), args.users + 1).await?;
    let mut ports = Vec::new();
    let mut children = Vec::new();
    for i in 0..2 {
        let dir = base.join(format!("node{i}"));
        std::fs::create_dir_all(&dir)?;
        let (child, port) = start_node(&args.relay, &dir, &db, bus)?;
        children.push(child);
        ports.push(port);
    }
    let mut b = children.pop().context("node B")?;
    let mut a = children.pop().context("node A")?;
    let result = failover(args, &db, &mut a, (ports[0], ports[1]), b.id(), &users).await;
    // Already dead after a run; `Child` knows, so no other process is signalled.
    let _ = a.kill();
    let _ = a.wait();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(b.id().to_string())
        .status();
    let _ = b.wait();
    let _ = std::fs::remove_dir_all(&base);
    result
}

async fn failover(
    args: &Args,
    db: &str,
    a: &mut std::process::Child,
    (a_port, b_port): (u16, u16),
    b_pid: u32,
    users: &[(String, String)],
) -> anyhow::Result<Failover> {
    use sqlx::Connection;
    let (watcher, people) = users.split_last().context("no users")?;
    // The watcher on B: how many people B reports online, and when that last
    // changed.
    let mut ws = open(b_port, &watcher.1).await?;
    let (seen_tx, mut seen) = tokio::sync::watch::channel((0usize, Instant::now()));
    let watching = tokio::spawn(async move {
        let mut status = std::collections::HashMap::new();
        while let Ok(m) = next(&mut ws).await {
            if let RelayMsg::Presence { contacts } = m {
                let mut changed = false;
                for p in contacts {
                    changed |= status.insert(p.user, p.status) != Some(p.status);
                }
                if changed {
                    let online = status.values().filter(|s| **s == Status::Online).count();
                    let _ = seen_tx.send((online, Instant::now()));
                }
            }
        }
    });

    let n = args.failover;
    eprintln!("failover: {n} sessions on node A");
    let (back_tx, mut back_rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, u32)>();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::with_capacity(n);
    let all: Vec<usize> = (0..n).collect();
    for chunk in all.chunks(250) {
        let mut batch = Vec::new();
        for &i in chunk {
            let cookie = people[i % people.len()].1.clone();
            batch.push(tokio::spawn(async move {
                connect(a_port, &cookie).await.map(|ws| (ws, cookie))
            }));
        }
        for (i, b) in chunk.iter().zip(batch) {
            let (ws, cookie) = b.await??;
            let seed = *i as u64;
            let session = session(ws, cookie, b_port, seed, back_tx.clone(), stop_rx.clone());
            tasks.push(tokio::spawn(session));
        }
    }
    // Before the kill, B sees everyone online.
    let ready = Instant::now() + Duration::from_secs(60);
    while seen.borrow().0 != people.len() {
        tokio::time::timeout_at(ready.into(), seen.changed())
            .await
            .with_context(|| format!("{} of {} online on B", seen.borrow().0, people.len()))??;
    }

    let mut pg = sqlx::PgConnection::connect(db).await?;
    let cpu_before = (cpu(b_pid)?, cpu(std::process::id())?);
    eprintln!("failover: kill -9 node A");
    let t0 = Instant::now();
    a.kill()?;
    a.wait()?;
    let count = async |pg: &mut sqlx::PgConnection, table: &str| -> anyhow::Result<usize> {
        let (rows,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(pg)
            .await?;
        Ok(usize::try_from(rows)?)
    };
    let mut backs = Vec::with_capacity(n);
    let mut retried = 0;
    let mut reaped = None;
    let deadline = t0 + Duration::from_secs(120);
    let converged = loop {
        while let Ok((t, failed)) = back_rx.try_recv() {
            backs.push(t);
            retried += usize::from(failed > 0);
        }
        if reaped.is_none() && count(&mut pg, "cluster_nodes").await? == 1 {
            reaped = Some(Instant::now());
        }
        let (online, changed) = *seen.borrow();
        if let Some(r) = reaped
            && backs.len() == n
            && online == people.len()
            && count(&mut pg, "cluster_devices").await? == n + 1
        {
            let last = backs.iter().max().copied().unwrap_or(t0);
            break r.max(last).max(changed);
        }
        if Instant::now() > deadline {
            bail!(
                "not converged 120 s after the kill: {} of {n} sessions back, reaped: {}, {online} of {} online",
                backs.len(),
                reaped.is_some(),
                people.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let cpu_b = (cpu(b_pid)? - cpu_before.0).as_secs_f64();
    let cpu_clients = (cpu(std::process::id())? - cpu_before.1).as_secs_f64();
    // And it stays so.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (online, changed) = *seen.borrow();
    if online != people.len() || changed > converged {
        bail!(
            "presence moved after converging: {online} of {} online",
            people.len()
        );
    }
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    watching.abort();
    backs.sort();
    let secs = |t: Instant| t.saturating_duration_since(t0).as_secs_f64();
    Ok(Failover {
        sessions: n,
        people: people.len(),
        back_p50: secs(backs[backs.len() / 2]),
        back_all: secs(backs[backs.len() - 1]),
        reaped: secs(reaped.unwrap_or(t0)),
        converged: secs(converged),
        cpu_b,
        cpu_clients,
        retried,
    })
}

/// One session of [`failover`]: reads until its node dies, then reconnects
/// to `b_port` with the browser's backoff and reports when it is back.
async fn session(
    mut ws: Ws,
    cookie: String,
    b_port: u16,
    seed: u64,
    back: tokio::sync::mpsc::UnboundedSender<(Instant, u32)>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            m = ws.next() => if !matches!(m, Some(Ok(_))) { break },
            _ = stop.changed() => return,
        }
    }
    drop(ws);
    // xorshift64: each session its own jitter, as each tab draws its own.
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut attempt = 0;
    let mut ws = loop {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let unit = (rng >> 11) as f64 / (1u64 << 53) as f64;
        let wait = shieldcall_web::session::backoff_ms(attempt, unit);
        tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(0))).await;
        match connect(b_port, &cookie).await {
            Ok(ws) => break ws,
            Err(_) => attempt += 1,
        }
    };
    let _ = back.send((Instant::now(), attempt));
    loop {
        tokio::select! {
            m = ws.next() => if m.is_none() { return },
            _ = stop.changed() => return,
        }
    }
}

/// One configuration's figures.
#[derive(Debug)]
struct Figures {
    sessions: u64,
    rss_before: u64,
    rss_after: u64,
    per_session: f64,
    p50_ms: f64,
    p99_ms: f64,
    delivered: f64,
    sent: u64,
    max_rate: f64,
    setups: f64,
}

/// Prepares the users, starts a relay on the store and runs the four measures.
async fn measure(
    args: &Args,
    database_url: Option<&str>,
    _layout: Layout,
) -> anyhow::Result<Figures> {
    let dir = std::env::temp_dir().join(format!(
        "shieldcall-bench-{}-{}",
        std::process::id(),
        if database_url.is_some() {
            "pg"
        } else {
            "sqlite"
        }
    ));
    std::fs::create_dir_all(&dir)?;
    let store = if database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    eprintln!("{store}: preparing {} users", args.users);
    let users = prepare(&dir, database_url, args.users).await?;
    let (mut relay, port) = start_relay(&args.relay, &dir, database_url)?;
    let pid = relay.id();
    let result = run(args, (port, port), pid, &users).await;
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let _ = relay.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

type Pair = (Ws, Ws, CallId);

type WsRx = futures_util::stream::SplitStream<Ws>;

/// Reads and discards `rx` until told to stop; hands `rx` back.
fn drain(
    mut rx: WsRx,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<WsRx>,
) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                m = rx.next() => if m.is_none() { break },
                _ = stopped.changed() => break,
            }
        }
        rx
    });
    (stop, task)
}

/// Messages in flight per call in the highest-rate run.
const WINDOW: usize = 32;

async fn idle_sessions(
    args: &Args,
    port: u16,
    pid: u32,
    users: &[(String, String)],
) -> anyhow::Result<(u64, u64, u64)> {
    drop(connect(port, &users[0].1).await?);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid)?;
    let mut tasks = Vec::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut opened = 0u64;
    let all: Vec<usize> = (0..args.sessions).collect();
    for chunk in all.chunks(250) {
        let mut batch = Vec::new();
        for &i in chunk {
            let cookie = users[i % users.len()].1.clone();
            batch.push(tokio::spawn(async move { connect(port, &cookie).await }));
        }
        for b in batch {
            let mut ws = b.await??;
            opened += 1;
            let mut stop = stop_rx.clone();
            // Keep reading (so pings are answered) until told to stop.
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        m = ws.next() => if m.is_none() { break },
                        _ = stop.changed() => break,
                    }
                }
            }));
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid)?;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok((before, after, opened))
}

async fn fixed_rate(args: &Args, pairs: Vec<Pair>) -> anyhow::Result<(Vec<u64>, u64, Vec<Pair>)> {
    let t0 = Instant::now();
    let per_pair = Duration::from_secs_f64(args.pairs as f64 / args.rate as f64);
    let seconds = Duration::from_secs(args.seconds);
    let mut handles = Vec::new();
    let n = pairs.len().max(1) as u32;
    for (k, (a, b, id)) in pairs.into_iter().enumerate() {
        let size = args.size;
        // Spread the calls over the period so the load is even, not 100 at once.
        let offset = per_pair / n * k as u32;
        handles.push(tokio::spawn(async move {
            let (mut a_tx, a_rx) = a.split();
            // The caller reads too (presence and the like), as a real client does.
            let (stop, drained) = drain(a_rx);
            let (b_tx, mut b_rx) = b.split();
            let sender = tokio::spawn(async move {
                let start = tokio::time::Instant::now() + offset;
                let mut tick = tokio::time::interval_at(start, per_pair);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut sent = 0u64;
                while t0.elapsed() < seconds {
                    tick.tick().await;
                    let m = ClientMsg::Offer {
                        call_id: id.clone(),
                        sdp: sdp(size, t0),
                    };
                    if a_tx.send(Message::Text(m.encode().into())).await.is_err() {
                        break;
                    }
                    sent += 1;
                }
                (sent, a_tx, id)
            });
            let mut lat = Vec::new();
            let end = seconds + Duration::from_millis(500);
            while let Ok(Some(Ok(msg))) =
                tokio::time::timeout(end.saturating_sub(t0.elapsed()), b_rx.next()).await
            {
                if let Message::Text(t) = msg
                    && let Ok(RelayMsg::Offer { sdp, .. }) = RelayMsg::decode(t.as_str())
                    && let Some(at) = sent_at(&sdp)
                {
                    let micros = t0.elapsed().as_nanos().saturating_sub(at) / 1000;
                    lat.push(u64::try_from(micros).unwrap_or(u64::MAX));
                }
            }
            let (sent, a_tx, id) = sender.await?;
            let _ = stop.send(true);
            let a = a_tx.reunite(drained.await?)?;
            let b = b_tx.reunite(b_rx)?;
            anyhow::Ok((lat, sent, (a, b, id)))
        }));
    }
    let (mut lat, mut sent, mut back) = (Vec::new(), 0, Vec::new());
    for h in handles {
        let (l, s, p) = h.await??;
        lat.extend(l);
        sent += s;
        back.push(p);
    }
    lat.sort_unstable();
    Ok((lat, sent, back))
}

async fn max_rate(args: &Args, pairs: Vec<Pair>) -> anyhow::Result<(f64, Vec<Pair>)> {
    let counter = Arc::new(AtomicU64::new(0));
    let burst = Duration::from_secs(args.seconds.clamp(1, 5));
    let t1 = Instant::now();
    let mut handles = Vec::new();
    for (a, b, id) in pairs {
        let size = args.size;
        let counter = counter.clone();
        // At most WINDOW messages in flight per call, so the receiver's outbox
        // never overflows (the relay closes a device that falls 256 behind).
        let window = Arc::new(tokio::sync::Semaphore::new(WINDOW));
        let credit = window.clone();
        handles.push(tokio::spawn(async move {
            let (mut a_tx, a_rx) = a.split();
            // The caller reads too (presence and the like), as a real client does.
            let (stop, drained) = drain(a_rx);
            let (b_tx, mut b_rx) = b.split();
            let sender = tokio::spawn(async move {
                while t1.elapsed() < burst {
                    match tokio::time::timeout(Duration::from_millis(500), window.acquire()).await {
                        Ok(Ok(permit)) => permit.forget(),
                        _ => break,
                    }
                    let m = ClientMsg::Offer {
                        call_id: id.clone(),
                        sdp: sdp(size, t1),
                    };
                    if a_tx.send(Message::Text(m.encode().into())).await.is_err() {
                        break;
                    }
                }
                (a_tx, id)
            });
            while let Ok(Some(Ok(_))) =
                tokio::time::timeout(Duration::from_millis(500), b_rx.next()).await
            {
                credit.add_permits(1);
                if t1.elapsed() <= burst {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
            let (a_tx, id) = sender.await?;
            let _ = stop.send(true);
            anyhow::Ok((a_tx.reunite(drained.await?)?, b_tx.reunite(b_rx)?, id))
        }));
    }
    let mut back = Vec::new();
    for h in handles {
        back.push(h.await??);
    }
    Ok((
        counter.load(Ordering::Relaxed) as f64 / burst.as_secs_f64(),
        back,
    ))
}

async fn setups(args: &Args, pairs: Vec<Pair>, users: &[(String, String)]) -> anyhow::Result<f64> {
    let count = Arc::new(AtomicU64::new(0));
    let burst = Duration::from_secs(args.seconds.clamp(1, 5));
    let t2 = Instant::now();
    let mut handles = Vec::new();
    for (p, (mut a, mut b, id)) in pairs.into_iter().enumerate() {
        let callee = users[2 * p + 1].0.clone();
        let count = count.clone();
        handles.push(tokio::spawn(async move {
            hangup(&mut a, &mut b, id).await?;
            while t2.elapsed() < burst {
                let id = call(&mut a, &mut b, &callee).await?;
                count.fetch_add(1, Ordering::Relaxed);
                hangup(&mut a, &mut b, id).await?;
            }
            anyhow::Ok(())
        }));
    }
    for h in handles {
        h.await??;
    }
    Ok(count.load(Ordering::Relaxed) as f64 / t2.elapsed().as_secs_f64())
}

/// The four measures, with callers on `ports.0` and callees on `ports.1`;
/// idle sessions on `ports.0`, whose process is `pid`.
async fn run(
    args: &Args,
    ports: (u16, u16),
    pid: u32,
    users: &[(String, String)],
) -> anyhow::Result<Figures> {
    let (port, callee_port) = ports;
    eprintln!("1/4 idle sessions: {}", args.sessions);
    let (before, after, n) = idle_sessions(args, port, pid, users).await?;
    let per_session = after.saturating_sub(before) as f64 / n.max(1) as f64;

    eprintln!("2/4 forward latency at {} msg/s", args.rate);
    let mut pairs = Vec::new();
    for p in 0..args.pairs {
        let mut a = connect(port, &users[2 * p].1).await?;
        let mut b = connect(callee_port, &users[2 * p + 1].1).await?;
        let id = call(&mut a, &mut b, &users[2 * p + 1].0).await?;
        pairs.push((a, b, id));
    }
    let (lat, sent, pairs) = fixed_rate(args, pairs).await?;
    let delivered = lat.len() as f64 / args.seconds as f64;
    let (p50, p99) = (percentile(&lat, 0.50), percentile(&lat, 0.99));

    eprintln!("3/4 highest forward rate");
    let (max, pairs) = max_rate(args, pairs).await?;

    eprintln!("4/4 call setups");
    let setup_rate = setups(args, pairs, users).await?;
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(Figures {
        sessions: n,
        rss_before: before,
        rss_after: after,
        per_session,
        p50_ms: ms(p50),
        p99_ms: ms(p99),
        delivered,
        sent,
        max_rate: max,
        setups: setup_rate,
    })
}

/// The Markdown report: one column per configuration, and with two, the ratio
/// of the second to the first.
fn report(args: &Args, runs: &[(&str, &Figures)]) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut out = format!("### Relay ({cores} cores, {cpu})\n\n| measure |");
    for (name, _) in runs {
        out += &format!(" {name} |");
    }
    if runs.len() == 2 {
        out += " ratio |";
    }
    out += " target |\n|---|";
    for _ in 0..runs.len() + usize::from(runs.len() == 2) + 1 {
        out += "---|";
    }
    out += "\n";
    let ratio = |f: &dyn Fn(&Figures) -> f64| match runs {
        [(_, a), (_, b)] if f(a) > 0.0 => format!(" {:.2} |", f(b) / f(a)),
        [_, _] => " — |".to_string(),
        _ => String::new(),
    };
    let mut row = |measure: String,
                   cell: &dyn Fn(&Figures) -> String,
                   value: &dyn Fn(&Figures) -> f64,
                   target: &str| {
        out += &format!("| {measure} |");
        for (_, f) in runs {
            out += &format!(" {} |", cell(f));
        }
        out += &ratio(value);
        out += &format!(" {target} |\n");
    };
    row(
        format!(
            "RSS per idle signed-in session ({} sessions)",
            runs[0].1.sessions
        ),
        &|f| {
            format!(
                "{:.1} KiB ({} KiB to {} KiB)",
                f.per_session, f.rss_before, f.rss_after
            )
        },
        &|f| f.per_session,
        "at most 8 KiB",
    );
    row(
        format!(
            "forward latency p50, {} msg/s of {} B over {} calls",
            args.rate, args.size, args.pairs
        ),
        &|f| format!("{:.3} ms", f.p50_ms),
        &|f| f.p50_ms,
        "",
    );
    row(
        format!(
            "forward latency p99 (delivered / sent in {} s)",
            args.seconds
        ),
        &|f| {
            format!(
                "{:.3} ms ({:.0} msg/s, {} sent)",
                f.p99_ms, f.delivered, f.sent
            )
        },
        &|f| f.p99_ms,
        "p99 at most 1 ms",
    );
    row(
        format!(
            "highest forward rate, {} B over {} calls",
            args.size, args.pairs
        ),
        &|f| format!("{:.0} msg/s", f.max_rate),
        &|f| f.max_rate,
        "",
    );
    row(
        format!("call setups, {} pairs", args.pairs),
        &|f| format!("{:.0} per s", f.setups),
        &|f| f.setups,
        "",
    );
    out
}
