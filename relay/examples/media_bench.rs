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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::bail;
use bench_support::*;
use shieldcall_media::sender::{Frames, Sender};
use shieldcall_proto::{ClientMsg, RelayMsg};
use str0m::media::Direction;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = call_args(10, 10)?;
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
    args: &CallArgs,
    users: &[(String, String)],
    port: u16,
    pid: u32,
) -> anyhow::Result<((f64, u64), (f64, u64), u64)> {
    let mut calls = standard_calls(port, users, args.calls).await?;
    let idle = measure(&[pid], args.seconds).await?;

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
            let (mut s, offer) =
                Sender::offer(Direction::SendOnly, Direction::SendOnly, Frames::default())?;
            send(
                ws,
                &ClientMsg::MediaOffer {
                    call_id: id.clone(),
                    sdp: offer,
                    captions: false,
                },
            )
            .await?;
            let RelayMsg::MediaAnswer { sdp, .. } = next_call_msg(ws).await? else {
                bail!("no media answer")
            };
            s.answer(&sdp).map_err(anyhow::Error::msg)?;
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
                let n = s.step(&mut buf, u64::MAX).map_err(anyhow::Error::msg)?;
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
    let rec = measure(&[pid], args.seconds).await?;
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
