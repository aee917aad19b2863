//! The message bus between relay nodes: a NATS core client with what the nodes
//! need and nothing more: publish, subscribe, a round trip to the server
//! ([`Bus::flush`]), and reconnecting with every subscription renewed. It speaks
//! NATS's documented text protocol (`INFO`, `CONNECT`, `PUB`, `SUB`, `MSG`,
//! `PING`/`PONG`) over one TCP connection, with no headers, queue groups or
//! JetStream: the server (Debian's `nats-server`) does the distributing.
//!
//! Delivery is NATS core's: at most once, in order from one publisher on one
//! subject. [`Bus::publish`] writes to the socket itself, without waiting
//! (non-blocking, under the lock every write of the connection takes, so
//! frames never interleave): no other task is woken on the way out. What the
//! socket does not take at once, or what is published while the connection
//! is down, waits in a bounded queue ([`QUEUE`] messages; beyond it
//! [`Bus::publish`] says so and the message is dropped) for the client's
//! writing task. What a subscriber does not take in time beyond its own bound
//! ([`SUB_QUEUE`]) is dropped and counted. A subscription may instead hand its
//! messages to a function on the reading task ([`Bus::subscribe_with`]): no
//! queue and no wake-up of another task, for the relay's own subject, whose
//! messages are handled without waiting. The relay treats what comes over the
//! bus as hints that a periodic reconcile repairs, so a lost message costs a
//! reconcile interval, never a wrong state.
//!
//! Limits, on purpose: no TLS to NATS (run it on loopback or a private network,
//! or through a TLS tunnel); authentication by token (`nats://TOKEN@host:port`)
//! or user and password (`nats://user:pass@host:port`); payloads up to the
//! server's `max_payload` (1 MiB by default); subjects are the relay's own,
//! never a client's text.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;
use tokio::sync::{mpsc, oneshot};

/// Messages waiting to be written (published while disconnected, or faster
/// than the socket takes them).
pub const QUEUE: usize = 65_536;
/// Most frames handed to the socket in one write.
const WRITE_FRAMES: usize = 64;
/// Messages a subscription holds before its reader takes them.
pub const SUB_QUEUE: usize = 65_536;
/// How often the client pings the server; two pings unanswered and the
/// connection is taken for dead and made again.
pub const PING_INTERVAL: Duration = Duration::from_secs(5);
/// Longest line the server may send (an `INFO` with a long list of cluster
/// URLs fits; a line longer is a broken stream).
const MAX_LINE: usize = 64 * 1024;
/// How long connecting (TCP, `INFO`, `CONNECT`, the first `PONG`) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between reconnect attempts: doubles from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(2));

/// Why the bus could not do something.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The URL is not `nats://[credentials@]host[:port]`.
    #[error("bus URL: {0}")]
    Url(String),
    /// The server could not be reached, or refused the connection.
    #[error("NATS at {addr}: {reason}")]
    Connect {
        /// Where.
        addr: String,
        /// What happened.
        reason: String,
    },
    /// The payload is larger than the server accepts.
    #[error("message of {size} bytes is larger than the bus takes ({max})")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The server's `max_payload`.
        max: usize,
    },
    /// The queue of messages to write is full (the bus has been down long).
    #[error("the bus is unreachable and its queue is full")]
    Full,
    /// The connection was lost before the server answered (it is being made
    /// again; what was asked may or may not have reached the server).
    #[error("the bus connection was lost before the server answered")]
    Lost,
    /// The client has stopped.
    #[error("the bus client has stopped")]
    Closed,
}

/// A message received on a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The subject it was published on.
    pub subject: String,
    /// What was published.
    pub payload: Vec<u8>,
}

/// Where and how to connect, from a `nats://` URL.
#[derive(Clone, PartialEq, Eq)]
struct Target {
    addr: String,
    user: Option<String>,
    pass: Option<String>,
    token: Option<String>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Credentials never reach a log.
        write!(f, "nats://{}", self.addr)
    }
}

impl Target {
    fn parse(url: &str) -> Result<Self, BusError> {
        let rest = url.strip_prefix("nats://").ok_or_else(|| {
            BusError::Url("must start with nats:// (TLS to NATS is not supported)".into())
        })?;
        let rest = rest.trim_end_matches('/');
        let (cred, host) = match rest.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, rest),
        };
        if host.is_empty() || host.contains('/') || host.contains('?') {
            return Err(BusError::Url(
                "expected nats://[credentials@]host[:port]".into(),
            ));
        }
        let addr = if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            && !host.ends_with(']')
        {
            host.to_string()
        } else {
            format!("{host}:4222")
        };
        let (mut user, mut pass, mut token) = (None, None, None);
        match cred.map(|c| c.split_once(':').map_or((c, None), |(u, p)| (u, Some(p)))) {
            Some((u, Some(p))) => {
                user = Some(u.to_string());
                pass = Some(p.to_string());
            }
            Some((t, None)) if !t.is_empty() => token = Some(t.to_string()),
            _ => {}
        }
        Ok(Self {
            addr,
            user,
            pass,
            token,
        })
    }

    /// The `CONNECT` line: no echo (a node does not hear itself), no verbose
    /// `+OK`s, no headers.
    fn connect_line(&self, name: &str) -> String {
        let mut o = serde_json::json!({
            "verbose": false,
            "pedantic": false,
            "tls_required": false,
            "name": name,
            "lang": "rust",
            "version": env!("CARGO_PKG_VERSION"),
            "protocol": 1,
            "echo": false,
            "headers": false,
            "no_responders": false,
        });
        if let Some(t) = &self.token {
            o["auth_token"] = t.clone().into();
        }
        if let (Some(u), Some(p)) = (&self.user, &self.pass) {
            o["user"] = u.clone().into();
            o["pass"] = p.clone().into();
        }
        format!("CONNECT {o}\r\n")
    }
}

/// The server's `INFO`, the part the client uses.
#[derive(Debug, Deserialize)]
struct Info {
    #[serde(default = "default_max_payload")]
    max_payload: usize,
}

fn default_max_payload() -> usize {
    1024 * 1024
}

enum Cmd {
    Sub { sid: u64 },
    Unsub { sid: u64 },
    Flush(oneshot::Sender<()>),
}

/// What the reader tells the writer.
enum Ctl {
    /// The server pinged: answer.
    Ping,
    /// The server answered a ping.
    Pong,
}

/// Where a subscription's messages go.
#[derive(Clone)]
enum Sink {
    /// Into its queue, for [`Subscription::next`].
    Queue(mpsc::Sender<Message>),
    /// To a function, called on the task that reads the connection as each
    /// message arrives ([`Bus::subscribe_with`]).
    Call(Arc<dyn Fn(Message) + Send + Sync>),
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Queue(_) => "Queue",
            Self::Call(_) => "Call",
        })
    }
}

/// One protocol frame waiting to be written.
#[derive(Debug)]
struct Frame {
    bytes: Vec<u8>,
    /// A publication (kept across a reconnect; anything else is the lost
    /// connection's own: its subscriptions are renewed, its pings void).
    publication: bool,
}

/// The way out: the connection's socket and what waits for it. Every write
/// to the socket is made holding this, and never waits (`try_write`), so that
/// any task may write and frames stay whole and in order.
#[derive(Debug, Default)]
struct Out {
    /// The socket, while a connection is up.
    sock: Option<Arc<OwnedWriteHalf>>,
    /// Frames not yet written, oldest first.
    frames: VecDeque<Frame>,
    /// Bytes of the first frame already written.
    sent: usize,
    /// Publications among `frames`.
    pubs: usize,
}

impl Out {
    fn push(&mut self, frame: Frame) {
        self.pubs += usize::from(frame.publication);
        self.frames.push_back(frame);
    }

    /// Writes what the socket takes now, without waiting: `Ok(true)` once
    /// nothing is left, `Ok(false)` if something is (the socket is full, or
    /// there is none).
    fn pump(&mut self) -> io::Result<bool> {
        let Some(sock) = self.sock.clone() else {
            return Ok(self.frames.is_empty());
        };
        while !self.frames.is_empty() {
            let mut slices = Vec::with_capacity(self.frames.len().min(WRITE_FRAMES));
            for (i, f) in self.frames.iter().take(WRITE_FRAMES).enumerate() {
                let from = if i == 0 { self.sent } else { 0 };
                slices.push(IoSlice::new(&f.bytes[from..]));
            }
            let mut n = match sock.try_write_vectored(&slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            };
            while n > 0 {
                let Some(first) = self.frames.front() else {
                    break;
                };
                let left = first.bytes.len() - self.sent;
                if n < left {
                    self.sent += n;
                    break;
                }
                n -= left;
                self.sent = 0;
                if self.frames.pop_front().is_some_and(|f| f.publication) {
                    self.pubs -= 1;
                }
            }
        }
        Ok(true)
    }

    /// The connection is lost: a frame cut short is lost with it (at most
    /// once), and so is everything that was the connection's own.
    fn lost(&mut self) {
        self.sock = None;
        if self.sent > 0 {
            self.sent = 0;
            self.frames.pop_front();
        }
        self.frames.retain(|f| f.publication);
        self.pubs = self.frames.len();
    }
}

#[derive(Debug)]
struct Shared {
    subs: Mutex<HashMap<u64, (String, Sink)>>,
    out: Mutex<Out>,
    /// Tells the writing task that frames wait (the socket was full).
    kick: Notify,
    max_payload: AtomicUsize,
    connected: AtomicBool,
    dropped: AtomicU64,
    reconnects: AtomicU64,
}

/// A connection to NATS, shared by the node's tasks; reconnects by itself.
#[derive(Debug, Clone)]
pub struct Bus {
    tx: mpsc::Sender<Cmd>,
    shared: Arc<Shared>,
    next_sid: Arc<AtomicU64>,
}

/// A subscription: messages on its subject until dropped.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<Message>,
    _sub: Subscribed,
}

/// A subscription whose messages go to a function ([`Bus::subscribe_with`]):
/// until dropped.
#[derive(Debug)]
pub struct Handled {
    _sub: Subscribed,
}

/// Ends a subscription when dropped.
#[derive(Debug)]
struct Subscribed {
    sid: u64,
    bus: Bus,
}

impl Subscription {
    /// The next message; `None` once the client has stopped.
    pub async fn next(&mut self) -> Option<Message> {
        self.rx.recv().await
    }

    /// A message already received, if any, without waiting.
    pub fn try_next(&mut self) -> Option<Message> {
        self.rx.try_recv().ok()
    }
}

impl Drop for Subscribed {
    fn drop(&mut self) {
        lock(&self.bus.shared.subs).remove(&self.sid);
        let _ = self.bus.tx.try_send(Cmd::Unsub { sid: self.sid });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Bus {
    /// Connects to the server at `url` as `name` (shown by the server's
    /// monitoring); fails if the first connection cannot be made, so a node
    /// with a wrong URL does not start. Later losses are repaired in the
    /// background.
    pub async fn connect(url: &str, name: &str) -> Result<Self, BusError> {
        let target = Target::parse(url)?;
        let shared = Arc::new(Shared {
            subs: Mutex::new(HashMap::new()),
            out: Mutex::new(Out::default()),
            kick: Notify::new(),
            max_payload: AtomicUsize::new(default_max_payload()),
            connected: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
        });
        let first = handshake(&target, name, &shared).await?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(drive(target, name.to_string(), first, rx, shared.clone()));
        Ok(Self {
            tx,
            shared,
            next_sid: Arc::new(AtomicU64::new(1)),
        })
    }

    /// Publishes `payload` on `subject`: written to the socket now if it
    /// takes it, else queued for the writing task; in order either way.
    pub fn publish(&self, subject: &str, payload: impl AsRef<[u8]>) -> Result<(), BusError> {
        self.publish_all(subject, [payload])
    }

    /// Publishes each of `payloads` on `subject`, in order, in as few writes
    /// as the socket allows (one, usually): for messages already waiting
    /// together. Nothing is published if one is too large or the queue has
    /// no room for all.
    pub fn publish_all<P: AsRef<[u8]>>(
        &self,
        subject: &str,
        payloads: impl IntoIterator<Item = P>,
    ) -> Result<(), BusError> {
        let max = self.shared.max_payload.load(Ordering::Relaxed);
        let mut frames = Vec::new();
        for payload in payloads {
            let payload = payload.as_ref();
            if payload.len() > max {
                return Err(BusError::TooLarge {
                    size: payload.len(),
                    max,
                });
            }
            let head = format!("PUB {subject} {}\r\n", payload.len());
            let mut bytes = Vec::with_capacity(head.len() + payload.len() + 2);
            bytes.extend_from_slice(head.as_bytes());
            bytes.extend_from_slice(payload);
            bytes.extend_from_slice(b"\r\n");
            frames.push(Frame {
                bytes,
                publication: true,
            });
        }
        if self.tx.is_closed() {
            return Err(BusError::Closed);
        }
        let mut out = lock(&self.shared.out);
        if out.pubs + frames.len() > QUEUE {
            return Err(BusError::Full);
        }
        for frame in frames {
            out.push(frame);
        }
        // Written all: no one else to wake. Otherwise (the socket is full or
        // broken, or there is none yet) the writing task takes over.
        if !matches!(out.pump(), Ok(true)) {
            drop(out);
            self.shared.kick.notify_one();
        }
        Ok(())
    }

    /// Subscribes to `subject` (NATS wildcards `*` and `>` allowed). Messages
    /// flow once the server has the subscription: [`Bus::flush`] after it
    /// waits for that.
    pub async fn subscribe(&self, subject: &str) -> Result<Subscription, BusError> {
        let (tx, rx) = mpsc::channel(SUB_QUEUE);
        let sub = self.add(subject, Sink::Queue(tx)).await?;
        Ok(Subscription { rx, _sub: sub })
    }

    /// Subscribes to `subject`, handing each message to `handle` on the task
    /// that reads the connection, as it arrives: no queue and no task of the
    /// subscriber's in between. `handle` must not block (it holds up every
    /// message after it); it may take a lock held briefly, or queue work.
    pub async fn subscribe_with(
        &self,
        subject: &str,
        handle: impl Fn(Message) + Send + Sync + 'static,
    ) -> Result<Handled, BusError> {
        let sub = self.add(subject, Sink::Call(Arc::new(handle))).await?;
        Ok(Handled { _sub: sub })
    }

    async fn add(&self, subject: &str, sink: Sink) -> Result<Subscribed, BusError> {
        let sid = self.next_sid.fetch_add(1, Ordering::Relaxed);
        lock(&self.shared.subs).insert(sid, (subject.to_string(), sink));
        let sub = Subscribed {
            sid,
            bus: self.clone(),
        };
        self.tx
            .send(Cmd::Sub { sid })
            .await
            .map_err(|_| BusError::Closed)?;
        Ok(sub)
    }

    /// Completes when the server has processed everything sent before (a
    /// `PING` answered by its `PONG`): subscriptions are in place and
    /// publications have left.
    pub async fn flush(&self) -> Result<(), BusError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Flush(tx))
            .await
            .map_err(|_| BusError::Closed)?;
        rx.await.map_err(|_| BusError::Lost)
    }

    /// The connection is up now.
    pub fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// Messages dropped because a subscriber's queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Connections made again after a loss.
    pub fn reconnects(&self) -> u64 {
        self.shared.reconnects.load(Ordering::Relaxed)
    }
}

/// An established connection, after `INFO`, `CONNECT` and a `PING` answered.
struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

async fn handshake(target: &Target, name: &str, shared: &Shared) -> Result<Conn, BusError> {
    let fail = |reason: String| BusError::Connect {
        addr: target.addr.clone(),
        reason,
    };
    let run = async {
        let stream = TcpStream::connect(&target.addr)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let mut reader = BufReader::new(r);
        let mut writer = BufWriter::new(w);
        let line = read_line(&mut reader).await.map_err(fail)?;
        let info = line
            .strip_prefix("INFO ")
            .ok_or_else(|| fail(format!("not a NATS server (it said {:?})", clip(&line))))?;
        let info: Info =
            serde_json::from_str(info).map_err(|e| fail(format!("unreadable INFO: {e}")))?;
        shared
            .max_payload
            .store(info.max_payload, Ordering::Relaxed);
        let hello = format!("{}PING\r\n", target.connect_line(name));
        writer
            .write_all(hello.as_bytes())
            .await
            .map_err(|e| fail(e.to_string()))?;
        writer.flush().await.map_err(|e| fail(e.to_string()))?;
        loop {
            let line = read_line(&mut reader).await.map_err(fail)?;
            match line.as_str() {
                "PONG" => break,
                "+OK" => {}
                "PING" => {
                    writer
                        .write_all(b"PONG\r\n")
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                    writer.flush().await.map_err(|e| fail(e.to_string()))?;
                }
                l if l.starts_with("INFO ") => {}
                l => return Err(fail(format!("refused: {}", clip(l)))),
            }
        }
        Ok(Conn {
            reader,
            writer: writer.into_inner(),
        })
    };
    tokio::time::timeout(CONNECT_TIMEOUT, run)
        .await
        .map_err(|_| fail("no answer in time".into()))?
}

fn clip(s: &str) -> String {
    s.chars().take(120).collect()
}

/// One protocol line, without its CRLF.
async fn read_line(r: &mut BufReader<OwnedReadHalf>) -> Result<String, String> {
    let mut buf = Vec::new();
    let n = (&mut *r)
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut buf)
        .await
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("connection closed".into());
    }
    if !buf.ends_with(b"\r\n") {
        return Err("line too long or cut short".into());
    }
    buf.truncate(buf.len() - 2);
    String::from_utf8(buf).map_err(|_| "line is not UTF-8".into())
}

/// The background task: runs a connection until it fails, then makes another,
/// until every [`Bus`] handle is gone.
async fn drive(
    target: Target,
    name: String,
    first: Conn,
    mut rx: mpsc::Receiver<Cmd>,
    shared: Arc<Shared>,
) {
    let mut conn = Some(first);
    let mut pause = BACKOFF.0;
    loop {
        if let Some(c) = conn.take() {
            shared.connected.store(true, Ordering::Relaxed);
            pause = BACKOFF.0;
            let ended = session(c, &mut rx, &shared).await;
            shared.connected.store(false, Ordering::Relaxed);
            match ended {
                Ended::Closed => return,
                Ended::Lost(why) => {
                    tracing::warn!(bus = ?target, %why, "bus connection lost; reconnecting")
                }
            }
        }
        // A little jitter, so that nodes cut off together do not come back in step.
        let mut b = [0u8; 1];
        let _ = getrandom::getrandom(&mut b);
        let jitter = Duration::from_millis(u64::from(b[0] % 50));
        tokio::time::sleep(pause + jitter).await;
        pause = (pause * 2).min(BACKOFF.1);
        if rx.is_closed() {
            return;
        }
        match handshake(&target, &name, &shared).await {
            Ok(c) => {
                shared.reconnects.fetch_add(1, Ordering::Relaxed);
                tracing::info!(bus = ?target, "bus connection made again");
                conn = Some(c);
            }
            Err(e) => tracing::debug!(error = %e, "bus reconnect failed"),
        }
    }
}

enum Ended {
    /// Every handle is gone.
    Closed,
    /// The connection failed.
    Lost(String),
}

/// Runs one connection: the reader in its own task, the writer here.
async fn session(c: Conn, rx: &mut mpsc::Receiver<Cmd>, shared: &Arc<Shared>) -> Ended {
    let Conn { reader, writer } = c;
    let sock = Arc::new(writer);
    // Every subscription, renewed on this connection before anything that
    // waited for it.
    let mut subscribed = HashSet::new();
    {
        let mut out = lock(&shared.out);
        let mut renew = Vec::new();
        for (sid, (subject, _)) in lock(&shared.subs).iter() {
            renew.extend_from_slice(format!("SUB {subject} {sid}\r\n").as_bytes());
            subscribed.insert(*sid);
        }
        if !renew.is_empty() {
            out.frames.push_front(Frame {
                bytes: renew,
                publication: false,
            });
        }
        out.sock = Some(sock.clone());
    }
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<Ctl>(16);
    let reading = tokio::spawn(read_loop(reader, shared.clone(), ctl_tx));
    let ended = write_loop(&sock, rx, &mut ctl_rx, &mut subscribed, shared).await;
    lock(&shared.out).lost();
    reading.abort();
    // Anyone waiting on a flush of this connection hears nothing more from it:
    // their senders were dropped with the loop (they see `Lost`).
    ended
}

/// Writes what publishers left (the socket was full), the commands, the
/// pings; and watches the connection.
async fn write_loop(
    sock: &OwnedWriteHalf,
    rx: &mut mpsc::Receiver<Cmd>,
    ctl: &mut mpsc::Receiver<Ctl>,
    subscribed: &mut HashSet<u64>,
    shared: &Shared,
) -> Ended {
    // Pings in flight, oldest first: a flush's answer, or a keepalive's.
    let mut pings: VecDeque<Option<oneshot::Sender<()>>> = VecDeque::new();
    let mut keepalive = tokio::time::interval(PING_INTERVAL);
    keepalive.tick().await;
    let mut out = Vec::new();
    loop {
        let done = match lock(&shared.out).pump() {
            Ok(done) => done,
            Err(e) => return Ended::Lost(e.to_string()),
        };
        tokio::select! {
            w = sock.writable(), if !done => {
                if let Err(e) = w {
                    return Ended::Lost(e.to_string());
                }
            }
            () = shared.kick.notified() => {}
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { return Ended::Closed };
                encode(cmd, &mut out, subscribed, &mut pings, shared);
                while let Ok(cmd) = rx.try_recv() {
                    encode(cmd, &mut out, subscribed, &mut pings, shared);
                }
            }
            c = ctl.recv() => match c {
                Some(Ctl::Ping) => out.extend_from_slice(b"PONG\r\n"),
                Some(Ctl::Pong) => {
                    if let Some(Some(done)) = pings.pop_front() {
                        let _ = done.send(());
                    }
                }
                None => return Ended::Lost("the server closed the connection".into()),
            },
            _ = keepalive.tick() => {
                if pings.iter().filter(|p| p.is_none()).count() >= 2 {
                    return Ended::Lost("the server stopped answering pings".into());
                }
                pings.push_back(None);
                out.extend_from_slice(b"PING\r\n");
            }
        }
        if !out.is_empty() {
            lock(&shared.out).push(Frame {
                bytes: std::mem::take(&mut out),
                publication: false,
            });
        }
    }
}

fn encode(
    cmd: Cmd,
    out: &mut Vec<u8>,
    subscribed: &mut HashSet<u64>,
    pings: &mut VecDeque<Option<oneshot::Sender<()>>>,
    shared: &Shared,
) {
    match cmd {
        Cmd::Sub { sid } => {
            let subject = lock(&shared.subs).get(&sid).map(|(s, _)| s.clone());
            if let Some(subject) = subject
                && subscribed.insert(sid)
            {
                out.extend_from_slice(format!("SUB {subject} {sid}\r\n").as_bytes());
            }
        }
        Cmd::Unsub { sid } => {
            if subscribed.remove(&sid) {
                out.extend_from_slice(format!("UNSUB {sid}\r\n").as_bytes());
            }
        }
        Cmd::Flush(done) => {
            pings.push_back(Some(done));
            out.extend_from_slice(b"PING\r\n");
        }
    }
}

/// Reads what the server sends: messages to their subscriptions, pings and
/// pongs to the writer. Ends on the first error (the writer sees its channel
/// close and the connection is made again).
async fn read_loop(mut r: BufReader<OwnedReadHalf>, shared: Arc<Shared>, ctl: mpsc::Sender<Ctl>) {
    loop {
        let Ok(line) = read_line(&mut r).await else {
            return;
        };
        let mut words = line.split_ascii_whitespace();
        match words.next() {
            Some("MSG") => {
                let args: Vec<&str> = words.collect();
                // MSG <subject> <sid> [reply-to] <#bytes>
                let (subject, sid, len) = match args.as_slice() {
                    [s, sid, len] | [s, sid, _, len] => {
                        (*s, sid.parse::<u64>(), len.parse::<usize>())
                    }
                    _ => return,
                };
                let (Ok(sid), Ok(len)) = (sid, len) else {
                    return;
                };
                if len > shared.max_payload.load(Ordering::Relaxed) {
                    return;
                }
                let mut payload = vec![0; len + 2];
                if r.read_exact(&mut payload).await.is_err() || !payload.ends_with(b"\r\n") {
                    return;
                }
                payload.truncate(len);
                let sink = lock(&shared.subs).get(&sid).map(|(_, s)| s.clone());
                let msg = Message {
                    subject: subject.to_string(),
                    payload,
                };
                let lost = match sink {
                    Some(Sink::Queue(tx)) => tx.try_send(msg).is_err(),
                    Some(Sink::Call(handle)) => {
                        handle(msg);
                        false
                    }
                    None => false,
                };
                if lost {
                    shared.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some("PING") => {
                if ctl.send(Ctl::Ping).await.is_err() {
                    return;
                }
            }
            Some("PONG") => {
                if ctl.send(Ctl::Pong).await.is_err() {
                    return;
                }
            }
            Some("INFO") => {
                let info = line.strip_prefix("INFO ").unwrap_or_default();
                if let Ok(info) = serde_json::from_str::<Info>(info) {
                    shared
                        .max_payload
                        .store(info.max_payload, Ordering::Relaxed);
                }
            }
            Some("+OK") => {}
            Some("-ERR") => {
                // The server closes the connection after the serious ones;
                // the others (a bad subject, a permission) are the relay's bug.
                tracing::warn!(error = %clip(&line), "the bus server reported an error");
            }
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("nats://127.0.0.1:4333").unwrap();
        assert_eq!(t.addr, "127.0.0.1:4333");
        assert_eq!(t.token, None);
        let t = Target::parse("nats://nats.internal").unwrap();
        assert_eq!(t.addr, "nats.internal:4222");
        let t = Target::parse("nats://s3cret@10.0.0.2:4222/").unwrap();
        assert_eq!(t.token.as_deref(), Some("s3cret"));
        assert_eq!(t.addr, "10.0.0.2:4222");
        let t = Target::parse("nats://relay:pa:ss@[::1]:4222").unwrap();
        assert_eq!(
            (t.user.as_deref(), t.pass.as_deref()),
            (Some("relay"), Some("pa:ss"))
        );
        assert_eq!(t.addr, "[::1]:4222");
        assert_eq!(Target::parse("nats://[::1]").unwrap().addr, "[::1]:4222");
        assert!(
            format!("{t:?}").find("pa:ss").is_none(),
            "credentials stay out of logs"
        );
        for bad in [
            "tls://x:4222",
            "http://x",
            "nats://",
            "nats://x/y",
            "x:4222",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        let line = t.connect_line("node-1");
        assert!(line.starts_with("CONNECT {") && line.ends_with("}\r\n"));
        assert!(line.contains("\"echo\":false"));
    }
}
