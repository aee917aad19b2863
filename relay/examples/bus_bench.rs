//! Bus benchmark: what one hop over NATS (the relay's own client, `bus`, through
//! a real `nats-server` on loopback) costs a message between two relay nodes,
//! against the floor: the same messages over one plain TCP connection on
//! loopback, in the same process, run side by side.
//!
//! ```sh
//! cargo run --release -p shieldcall-relay --example bus_bench -- \
//!     --nats /usr/sbin/nats-server --rate 5000 --size 4096 --seconds 10 --rounds 3
//! ```
//!
//! Measures for each, in rounds that alternate between the two:
//! 1. one-way latency p50/p90/p99 of `--size`-byte messages at `--rate`
//!    messages/s (sent in 1 ms batches);
//! 2. the highest rate: `--burst` messages sent as fast as the sender can,
//!    timed from the first sent to the last received.
//!
//! Both ends are in this process, so a message carries its send time and the
//! receiver subtracts it from the same clock. The numbers are the bus's share
//! of a cross-node forward; the relay's own share is `relay_bench`'s.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use shieldcall_relay::bus::Bus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone)]
struct Args {
    nats: PathBuf,
    rate: u64,
    size: usize,
    seconds: u64,
    rounds: usize,
    burst: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        nats: PathBuf::from("/usr/sbin/nats-server"),
        rate: 5_000,
        size: 4096,
        seconds: 10,
        rounds: 3,
        burst: 100_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--nats" => a.nats = v.into(),
            "--rate" => a.rate = v.parse()?,
            "--size" => a.size = v.parse()?,
            "--seconds" => a.seconds = v.parse()?,
            "--rounds" => a.rounds = v.parse()?,
            "--burst" => a.burst = v.parse()?,
            _ => bail!("unknown flag {flag}"),
        }
    }
    if a.size < 16 {
        bail!("--size must be at least 16 (a message carries its send time and number)");
    }
    Ok(a)
}

/// A message: its number and send time (ns since `epoch`), then filler.
fn message(epoch: Instant, n: u64, size: usize) -> Vec<u8> {
    let mut m = vec![0x5a; size];
    m[..8].copy_from_slice(&n.to_le_bytes());
    let at = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
    m[8..16].copy_from_slice(&at.to_le_bytes());
    m
}

fn latency(epoch: Instant, m: &[u8]) -> Duration {
    let mut at = [0; 8];
    at.copy_from_slice(&m[8..16]);
    let sent = Duration::from_nanos(u64::from_le_bytes(at));
    epoch.elapsed().saturating_sub(sent)
}

/// Two ends of a path for messages.
enum Path {
    Tcp {
        tx: tokio::net::tcp::OwnedWriteHalf,
        rx: tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
    },
    Bus {
        tx: Bus,
        /// Keeps its own connection open (a subscription holds its bus).
        rx: shieldcall_relay::bus::Subscription,
    },
}

impl Path {
    async fn tcp() -> anyhow::Result<Self> {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        let (a, b) = tokio::join!(tokio::net::TcpStream::connect(addr), l.accept());
        let a = a?;
        let (b, _) = b?;
        a.set_nodelay(true)?;
        b.set_nodelay(true)?;
        let (_, tx) = a.into_split();
        let (rx, _) = b.into_split();
        Ok(Self::Tcp {
            tx,
            rx: tokio::io::BufReader::new(rx),
        })
    }

    async fn bus(url: &str) -> anyhow::Result<Self> {
        let tx = Bus::connect(url, "bench-a").await?;
        let rx_bus = Bus::connect(url, "bench-b").await?;
        let rx = rx_bus.subscribe("bench.node.b").await?;
        rx_bus.flush().await?;
        Ok(Self::Bus { tx, rx })
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Tcp { .. } => "TCP loopback (floor)",
            Self::Bus { .. } => "NATS bus",
        }
    }

    /// Splits into a sending and a receiving half.
    fn split(self) -> (Sender, Receiver) {
        match self {
            Self::Tcp { tx, rx } => (Sender::Tcp(tx), Receiver::Tcp(rx)),
            Self::Bus { tx, rx } => (Sender::Bus(tx), Receiver::Bus(rx)),
        }
    }
}

enum Sender {
    Tcp(tokio::net::tcp::OwnedWriteHalf),
    Bus(Bus),
}

enum Receiver {
    Tcp(tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>),
    Bus(shieldcall_relay::bus::Subscription),
}

impl Sender {
    async fn send(&mut self, m: Vec<u8>) -> anyhow::Result<()> {
        match self {
            Self::Tcp(w) => {
                let len = u32::try_from(m.len())?.to_le_bytes();
                w.write_all(&len).await?;
                w.write_all(&m).await?;
            }
            Self::Bus(b) => loop {
                match b.publish("bench.node.b", m.clone()) {
                    Ok(()) => break,
                    // The writer's queue is full: let it drain.
                    Err(shieldcall_relay::bus::BusError::Full) => tokio::task::yield_now().await,
                    Err(e) => return Err(e.into()),
                }
            },
        }
        Ok(())
    }
}

impl Receiver {
    async fn recv(&mut self) -> anyhow::Result<Vec<u8>> {
        match self {
            Self::Tcp(r) => {
                let mut len = [0; 4];
                r.read_exact(&mut len).await?;
                let mut m = vec![0; u32::from_le_bytes(len) as usize];
                r.read_exact(&mut m).await?;
                Ok(m)
            }
            Self::Bus(s) => Ok(s.next().await.context("bus closed")?.payload),
        }
    }
}

struct Latencies {
    p50: Duration,
    p90: Duration,
    p99: Duration,
    lost: u64,
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn paced(path: Path, a: &Args) -> anyhow::Result<Latencies> {
    let epoch = Instant::now();
    let total = a.rate * a.seconds;
    let (mut tx, mut rx) = path.split();
    let size = a.size;
    let per_ms = a.rate as f64 / 1000.0;
    let sending = tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        let mut sent = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        while sent < total {
            tick.tick().await;
            let due = ((start.elapsed().as_secs_f64() * 1000.0 + 1.0) * per_ms) as u64;
            while sent < due.min(total) {
                tx.send(message(epoch, sent, size)).await?;
                sent += 1;
            }
        }
        anyhow::Ok(tx)
    });
    let mut got = Vec::with_capacity(total as usize);
    let deadline = Duration::from_secs(a.seconds + 10);
    while (got.len() as u64) < total {
        match tokio::time::timeout(deadline, rx.recv()).await {
            Ok(m) => got.push(latency(epoch, &m?)),
            Err(_) => break,
        }
    }
    let _tx = sending.await??;
    let lost = total - got.len() as u64;
    got.sort();
    Ok(Latencies {
        p50: pct(&got, 0.5),
        p90: pct(&got, 0.9),
        p99: pct(&got, 0.99),
        lost,
    })
}

async fn burst(path: Path, n: usize, size: usize) -> anyhow::Result<f64> {
    let epoch = Instant::now();
    let (mut tx, mut rx) = path.split();
    let start = Instant::now();
    let sending = tokio::spawn(async move {
        for i in 0..n as u64 {
            tx.send(message(epoch, i, size)).await?;
        }
        anyhow::Ok(tx)
    });
    for _ in 0..n {
        tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .context("burst: a message did not arrive")??;
    }
    let secs = start.elapsed().as_secs_f64();
    let _tx = sending.await??;
    Ok(n as f64 / secs)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = parse_args()?;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let mut server = Command::new(&a.nats)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", a.nats.display()))?;
    let url = format!("nats://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let result = async {
        if !ready {
            bail!("nats-server did not start");
        }
        // [tcp, bus] × rounds.
        let mut p50 = [Vec::new(), Vec::new()];
        let mut p90 = [Vec::new(), Vec::new()];
        let mut p99 = [Vec::new(), Vec::new()];
        let mut rates = [Vec::new(), Vec::new()];
        let mut lost = [0u64, 0];
        for round in 0..a.rounds {
            for (i, bus) in [false, true].into_iter().enumerate() {
                let path = if bus { Path::bus(&url).await? } else { Path::tcp().await? };
                let name = path.name();
                let l = paced(path, &a).await?;
                let path = if bus { Path::bus(&url).await? } else { Path::tcp().await? };
                let r = burst(path, a.burst, a.size).await?;
                eprintln!(
                    "round {}: {name}: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, lost {}; highest rate {:.0} msg/s",
                    round + 1,
                    ms(l.p50),
                    ms(l.p90),
                    ms(l.p99),
                    l.lost,
                    r
                );
                p50[i].push(ms(l.p50));
                p90[i].push(ms(l.p90));
                p99[i].push(ms(l.p99));
                rates[i].push(r);
                lost[i] += l.lost;
            }
        }
        let m = |v: &mut [Vec<f64>; 2]| [median(&mut v[0]), median(&mut v[1])];
        let (p50, p90, p99, rates) = (m(&mut p50), m(&mut p90), m(&mut p99), m(&mut rates));
        println!(
            "\n{} B messages at {} msg/s for {} s, {} rounds (medians of the rounds)\n",
            a.size, a.rate, a.seconds, a.rounds
        );
        println!("| measure | TCP loopback (floor) | NATS bus | ratio |");
        println!("|---|---|---|---|");
        for (name, v) in [("one-way p50, ms", p50), ("one-way p90, ms", p90), ("one-way p99, ms", p99)] {
            println!("| {name} | {:.3} | {:.3} | {:.2} |", v[0], v[1], v[1] / v[0]);
        }
        println!(
            "| highest rate, msg/s ({} messages) | {:.0} | {:.0} | {:.2} |",
            a.burst,
            rates[0],
            rates[1],
            rates[1] / rates[0]
        );
        println!("| messages lost (all rounds) | {} | {} | |", lost[0], lost[1]);
        anyhow::Ok(())
    }
    .await;
    let _ = server.kill();
    let _ = server.wait();
    result
}
