//! Media benchmark: what recording costs the relay, per recorded call.
//!
//! ```sh
//! cargo xtask bench media            # or, by hand:
//! cargo run --release -p shieldcall-relay --example media_bench -- \
//!     --relay target/release/shieldcall --calls 10 --seconds 10
//! ```
//!
//! Starts the release relay as its own process, places `--calls` answered
//! standard calls over real WebSockets, and measures the relay process
//! (`/proc/<pid>`: CPU time and RSS) over `--seconds` twice, side by side in
//! one run: first with the calls answered and not recorded (the baseline),
//! then with every call recorded, each side's media sent by a str0m peer as a
//! browser would send it (send-only, real UDP on loopback, DTLS-SRTP, real
//! time: Opus every 20 ms, VP8 at 25 fps, a key frame every 2 s, about
//! 330 kbit/s a side). The senders run in this process, so their CPU is not in
//! the relay's figures; they share the machine's cores with it.

#[path = "bench_support/mod.rs"]
mod bench_support;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bench_support::*;
use shieldcall_proto::{CallId, ClientMsg, RelayMsg};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input, Output, Rtc, RtcConfig};

struct Args {
    relay: PathBuf,
    calls: usize,
    seconds: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        relay: PathBuf::from("target/release/shieldcall"),
        calls: 10,
        seconds: 10,
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

/// One side's sender: a send-only str0m peer on its own UDP socket.
struct Sender {
    rtc: Rtc,
    socket: UdpSocket,
    addr: SocketAddr,
    audio: Mid,
    video: Mid,
    connected: Option<Instant>,
    frames: (u64, u64),
}

impl Sender {
    fn offer() -> anyhow::Result<(Self, String, SdpPendingOffer)> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_nonblocking(true)?;
        let addr = socket.local_addr()?;
        let mut rtc = RtcConfig::new()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .clear_codecs()
            .enable_opus(true)
            .enable_vp8(true)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(addr, "udp")?);
        let mut api = rtc.sdp_api();
        let audio = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().context("an offer")?;
        let s = Self {
            rtc,
            socket,
            addr,
            audio,
            video,
            connected: None,
            frames: (0, 0),
        };
        Ok((s, offer.to_sdp_string(), pending))
    }

    /// One round: datagrams in, timers, datagrams out, frames that are due.
    fn step(&mut self, buf: &mut [u8]) -> anyhow::Result<u64> {
        let now = Instant::now();
        while let Ok((n, from)) = self.socket.recv_from(buf) {
            let r = Receive::new(Protocol::Udp, from, self.addr, &buf[..n])?;
            self.rtc.handle_input(Input::Receive(now, r))?;
        }
        self.rtc.handle_input(Input::Timeout(now))?;
        let mut sent = 0;
        loop {
            match self.rtc.poll_output()? {
                Output::Transmit(t) => {
                    sent += t.contents.len() as u64;
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Output::Timeout(_) => break,
                Output::Event(str0m::Event::Connected) => self.connected = Some(now),
                Output::Event(_) => {}
            }
        }
        let Some(at) = self.connected else {
            return Ok(sent);
        };
        let ms = now.duration_since(at).as_millis() as u64;
        let pt = |rtc: &mut Rtc, mid, codec| {
            rtc.writer(mid).and_then(|w| {
                w.payload_params()
                    .find(|p| p.spec().codec == codec)
                    .map(|p| p.pt())
            })
        };
        let (Some(opus), Some(vp8)) = (
            pt(&mut self.rtc, self.audio, Codec::Opus),
            pt(&mut self.rtc, self.video, Codec::Vp8),
        ) else {
            return Ok(sent);
        };
        while self.frames.0 * 20 <= ms {
            let a = self.frames.0;
            let t = MediaTime::new(a * 960, Frequency::FORTY_EIGHT_KHZ);
            let frame = vec![0xfc; 80];
            if let Some(w) = self.rtc.writer(self.audio) {
                w.write(opus, now, t, frame)?;
            }
            self.frames.0 += 1;
        }
        while self.frames.1 * 40 <= ms {
            let v = self.frames.1;
            let t = MediaTime::new(v * 3600, Frequency::NINETY_KHZ);
            let frame = if v.is_multiple_of(50) {
                let mut f = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01];
                f.resize(8_000, v as u8);
                f
            } else {
                let mut f = vec![0x31, 0x01, 0x00];
                f.resize(1_400, v as u8);
                f
            };
            if let Some(w) = self.rtc.writer(self.video) {
                w.write(vp8, now, t, frame)?;
            }
            self.frames.1 += 1;
        }
        Ok(sent)
    }
}

/// The relay's CPU time so far (user + system), from `/proc/<pid>/stat`.
fn cpu(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).context("utime")?.parse::<u64>()?
        + fields.get(12).context("stime")?.parse::<u64>()?;
    // Linux reports in clock ticks of 1/100 s on every platform we run on.
    Ok(Duration::from_millis(ticks * 10))
}

/// The relay's CPU share of one core and its RSS over `secs`.
async fn measure(pid: u32, secs: u64) -> anyhow::Result<(f64, u64)> {
    let (c0, t0) = (cpu(pid)?, Instant::now());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (c1, t1) = (cpu(pid)?, Instant::now());
    let share = (c1 - c0).as_secs_f64() / (t1 - t0).as_secs_f64();
    Ok((share, rss_kib(pid)?))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = std::env::temp_dir().join(format!("shieldcall-media-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let users = prepare(&dir, None, 2 * args.calls).await?;
    let (mut relay, port) = start_relay(&args.relay, &dir, None)?;
    let pid = relay.id();
    let result = run(&args, &users, port, pid).await;
    let _ = relay.kill();
    let _ = relay.wait();
    let recorded: u64 = std::fs::read_dir(dir.join("recordings"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "webm"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    let _ = std::fs::remove_dir_all(&dir);
    let (idle, rec, sent) = result?;
    let n = args.calls as f64;
    println!(
        "| measure | {} calls answered, not recorded | the same calls recorded (both sides) | per recorded call |",
        args.calls
    );
    println!("|---|---|---|---|");
    println!(
        "| relay CPU, share of one core | {:.3} | {:.3} | {:.4} |",
        idle.0,
        rec.0,
        (rec.0 - idle.0) / n
    );
    println!(
        "| relay RSS | {:.1} MiB | {:.1} MiB | {:.0} KiB |",
        idle.1 as f64 / 1024.0,
        rec.1 as f64 / 1024.0,
        (rec.1.saturating_sub(idle.1)) as f64 / n
    );
    println!(
        "| media into the relay | — | {:.1} Mbit/s | {:.0} kbit/s |",
        sent as f64 * 8.0 / args.seconds as f64 / 1e6,
        sent as f64 * 8.0 / args.seconds as f64 / 1e3 / n
    );
    println!(
        "| written to recordings/ | — | {:.1} MB | {:.0} KB |",
        recorded as f64 / 1e6,
        recorded as f64 / 1e3 / n
    );
    Ok(())
}

/// Places the calls, measures them idle, records them and measures again.
/// Returns the two measurements and the bytes the senders sent while measured.
async fn run(
    args: &Args,
    users: &[(String, String)],
    port: u16,
    pid: u32,
) -> anyhow::Result<((f64, u64), (f64, u64), u64)> {
    let mut calls: Vec<(Ws, Ws, CallId)> = Vec::new();
    for i in 0..args.calls {
        let mut a = connect(port, &users[2 * i].1).await?;
        let mut b = connect(port, &users[2 * i + 1].1).await?;
        send(&mut a, &ClientMsg::SetE2ee { enabled: false }).await?;
        let RelayMsg::Settings { .. } = next_call_msg(&mut a).await? else {
            bail!("no settings")
        };
        let id = call(&mut a, &mut b, &users[2 * i + 1].0).await?;
        calls.push((a, b, id));
    }
    let idle = measure(pid, args.seconds).await?;

    let mut senders = Vec::new();
    for (a, b, id) in &mut calls {
        send(
            a,
            &ClientMsg::Record {
                call_id: id.clone(),
                on: true,
            },
        )
        .await?;
        for ws in [&mut *a, &mut *b] {
            let RelayMsg::Recording { on: true, .. } = next_call_msg(ws).await? else {
                bail!("not recording")
            };
            let (mut s, offer, pending) = Sender::offer()?;
            send(
                ws,
                &ClientMsg::MediaOffer {
                    call_id: id.clone(),
                    sdp: offer,
                },
            )
            .await?;
            let RelayMsg::MediaAnswer { sdp, .. } = next_call_msg(ws).await? else {
                bail!("no media answer")
            };
            s.rtc
                .sdp_api()
                .accept_answer(pending, SdpAnswer::from_sdp_string(&sdp)?)?;
            senders.push(s);
        }
    }
    // The senders run in a thread of their own, in real time, until stopped.
    let stop = Arc::new(AtomicBool::new(false));
    let counted = Arc::new(AtomicU64::new(0));
    let counting = Arc::new(AtomicBool::new(false));
    let (st, co, cg) = (stop.clone(), counted.clone(), counting.clone());
    let thread = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut buf = vec![0u8; 2048];
        while !st.load(Ordering::Relaxed) {
            for s in &mut senders {
                let n = s.step(&mut buf)?;
                if cg.load(Ordering::Relaxed) {
                    co.fetch_add(n, Ordering::Relaxed);
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    });
    // Let DTLS settle and the first key frames arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    counting.store(true, Ordering::Relaxed);
    let rec = measure(pid, args.seconds).await?;
    counting.store(false, Ordering::Relaxed);
    for (a, _, id) in &mut calls {
        send(
            a,
            &ClientMsg::Record {
                call_id: id.clone(),
                on: false,
            },
        )
        .await?;
    }
    // The legs end within the media component's sweep of a second.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    thread
        .join()
        .map_err(|_| anyhow::anyhow!("the senders' thread"))??;
    Ok((idle, rec, counted.load(Ordering::Relaxed)))
}
