//! Captions benchmark: how soon a caption follows speech, and what live
//! captions cost the server per captioned call.
//!
//! ```sh
//! cargo xtask bench captions         # or, by hand:
//! SHIELDCALL_CAPTIONS_PYTHON=target/tools/captions/bin/python \
//!   cargo run --release -p shieldcall-relay --example captions_bench -- \
//!     --relay target/release/shieldcall --calls 2 --seconds 30
//! ```
//!
//! Starts the release relay as its own process (with its speech recogniser),
//! places `--calls` answered standard calls over real WebSockets, and measures
//! over `--seconds`, side by side in one run: first the calls answered and not
//! captioned (the baseline), then the same calls with captions on and both
//! people's captions legs open. In each call one side speaks: a str0m peer
//! sends, as a browser would (send-only Opus over real UDP, DTLS-SRTP, real
//! time), the phrase of `relay/tests/data/speech.wav` in a loop, encoded by
//! opus-rs; the other side sends silence.
//!
//! Latency: for each time the phrase ends (known from the sender's clock: the
//! last loud sample of the WAV, in the loop the sender is in), the time until
//! the other person's WebSocket receives the next final caption. The browser
//! draws it in the next frame (at most 16 ms more); this measures the server
//! and the network, which is what the relay controls. Costs: CPU share of one
//! core and RSS, of the relay and of the recogniser process it starts, the
//! same calls captioned against not. The senders run in this process and share
//! the machine's two cores with the relay.

#[path = "bench_support/mod.rs"]
mod bench_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bench_support::*;
use shieldcall_media::sender::{Frames, Sender, speech, wav_pcm};
use shieldcall_proto::{ClientMsg, RelayMsg};
use str0m::media::Direction;

const SPEECH: &[u8] = include_bytes!("../tests/data/speech.wav");

/// The final captions one person received, and when.
type Finals = Arc<Mutex<Vec<(Instant, String)>>>;

/// The children of `pid` (the recogniser, once started).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = call_args(2, 30)?;
    anyhow::ensure!(
        std::env::var_os("SHIELDCALL_CAPTIONS_PYTHON").is_some(),
        "set SHIELDCALL_CAPTIONS_PYTHON (cargo xtask bench captions does)"
    );
    let dir =
        std::env::temp_dir().join(format!("shieldcall-captions-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let users = prepare(&dir, None, 2 * args.calls).await?;
    let (mut relay, port) = start_relay(&args.relay, &dir, None)?;
    let pid = relay.id();
    let result = run(&args, &users, port, pid).await;
    let _ = relay.kill();
    let _ = relay.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let r = result?;
    let n = args.calls as f64;
    let mut lat = r.latencies.clone();
    lat.sort_by(f64::total_cmp);
    println!(
        "| measure | {} calls answered, not captioned | the same calls captioned (both sides) | per captioned call |",
        args.calls
    );
    println!("|---|---|---|---|");
    println!(
        "| CPU, share of one core (relay + recogniser) | {:.3} | {:.3} | {:.3} |",
        r.idle.0,
        r.captioned.0,
        (r.captioned.0 - r.idle.0) / n
    );
    println!(
        "| RSS (relay + recogniser) | {:.1} MiB | {:.1} MiB | {:.1} MiB |",
        r.idle.1 as f64 / 1024.0,
        r.captioned.1 as f64 / 1024.0,
        r.captioned.1.saturating_sub(r.idle.1) as f64 / 1024.0 / n
    );
    println!(
        "| of which the recogniser | — | {:.3} of a core, {:.1} MiB | — |",
        r.recogniser.0,
        r.recogniser.1 as f64 / 1024.0
    );
    println!();
    println!(
        "Caption latency, end of the phrase to its final caption at the other person ({} phrases, {} without a final caption within 5 s): p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms. Finals that contained \"tomorrow\": {} of {}.",
        lat.len() + r.missed,
        r.missed,
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        lat.last().copied().unwrap_or(f64::NAN),
        r.heard_word,
        r.finals
    );
    Ok(())
}

struct Outcome {
    idle: (f64, u64),
    captioned: (f64, u64),
    recogniser: (f64, u64),
    latencies: Vec<f64>,
    missed: usize,
    finals: usize,
    heard_word: usize,
}

/// Places the calls, measures them idle, captions them and measures again,
/// timing each final caption against the end of the phrase it follows.
async fn run(
    args: &CallArgs,
    users: &[(String, String)],
    port: u16,
    pid: u32,
) -> anyhow::Result<Outcome> {
    let mut calls = standard_calls(port, users, args.calls).await?;
    let idle = measure(&[pid], args.seconds).await?;

    // The phrase: its packets, how long one loop lasts, and where in it the
    // speech ends (the last sample louder than -30 dBFS).
    let voice = speech(SPEECH).map_err(anyhow::Error::msg)?;
    let pcm = wav_pcm(SPEECH).map_err(anyhow::Error::msg)?;
    let loop_ms = voice.len() as f64 * 20.0;
    let end_ms = pcm
        .iter()
        .rposition(|s| s.unsigned_abs() > 1036)
        .context("a silent phrase")? as f64
        / 16.0;
    let silence = {
        let mut wav = SPEECH.to_vec();
        let data = wav.len() - pcm.len() * 2;
        wav[data..].fill(0);
        speech(&wav).map_err(anyhow::Error::msg)?
    };

    let mut senders = Vec::new();
    for (a, b, id) in &mut calls {
        send(
            a,
            &ClientMsg::Captions {
                call_id: id.clone(),
                on: true,
            },
        )
        .await?;
        for (k, ws) in [&mut *a, &mut *b].into_iter().enumerate() {
            let RelayMsg::Captions { on: true, .. } = next_call_msg(ws).await? else {
                bail!("not captioned")
            };
            let (mut s, offer) =
                Sender::offer(Direction::SendOnly, Direction::Inactive, Frames::default())?;
            s.speak(if k == 0 {
                voice.clone()
            } else {
                silence.clone()
            });
            send(
                ws,
                &ClientMsg::MediaOffer {
                    call_id: id.clone(),
                    sdp: offer,
                    captions: true,
                },
            )
            .await?;
            let RelayMsg::MediaAnswer { sdp, .. } = next_call_msg(ws).await? else {
                bail!("no media answer")
            };
            s.answer(&sdp).map_err(anyhow::Error::msg)?;
            senders.push((k == 0, s));
        }
    }
    // The senders run in a thread of their own, in real time, until stopped;
    // each speaker's start (its first frame) is noted for the latency.
    let stop = Arc::new(AtomicBool::new(false));
    let starts: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; args.calls]));
    let (st, sts) = (stop.clone(), starts.clone());
    let thread = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut buf = vec![0u8; 2048];
        while !st.load(Ordering::Relaxed) {
            let mut speaker = 0;
            for (speaks, s) in &mut senders {
                s.step(&mut buf, u64::MAX).map_err(anyhow::Error::msg)?;
                if *speaks {
                    if let Some(t) = s.connected_at()
                        && let Ok(mut v) = sts.lock()
                    {
                        v[speaker].get_or_insert(t);
                    }
                    speaker += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    });
    // Listen on each callee's socket: the final captions, when they came
    // (the caller's socket is read too, and what it gets dropped).
    let mut listeners: Vec<(tokio::task::JoinHandle<()>, Finals)> = Vec::new();
    let mut callers = Vec::new();
    for (mut a, mut b, _) in calls.drain(..) {
        callers.push(tokio::spawn(async move {
            while next_call_msg(&mut a).await.is_ok() {}
        }));
        let finals: Finals = Arc::default();
        let into = finals.clone();
        let task = tokio::spawn(async move {
            while let Ok(m) = next_call_msg(&mut b).await {
                if let RelayMsg::Caption {
                    text, done: true, ..
                } = m
                    && let Ok(mut f) = into.lock()
                {
                    f.push((Instant::now(), text));
                }
            }
        });
        listeners.push((task, finals));
    }
    // The recogniser starts with the first leg.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let kids = children(pid);
    anyhow::ensure!(kids.len() == 1, "the recogniser process: {kids:?}");
    let mut both = vec![pid];
    both.extend(&kids);
    let t_measure = Instant::now();
    let (captioned, recogniser) = {
        let c0 = cpu(kids[0])?;
        let m = measure(&both, args.seconds).await?;
        let share = (cpu(kids[0])? - c0).as_secs_f64() / t_measure.elapsed().as_secs_f64();
        (m, (share, rss_kib(kids[0])?))
    };
    let t_end = Instant::now();
    // A phrase that ended in the window has its final caption after it: the
    // speakers go on (their silence ends the utterance) a little longer.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    thread
        .join()
        .map_err(|_| anyhow::anyhow!("the senders' thread"))??;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let starts = starts.lock().map_err(|_| anyhow::anyhow!("lock"))?.clone();
    for c in callers {
        c.abort();
    }
    let (mut latencies, mut missed, mut n_finals, mut heard_word) = (Vec::new(), 0, 0, 0);
    for ((task, finals), start) in listeners.into_iter().zip(starts) {
        task.abort();
        let got = finals.lock().map_err(|_| anyhow::anyhow!("lock"))?.clone();
        let start = start.context("a speaker never connected")?;
        n_finals += got.len();
        heard_word += got.iter().filter(|(_, t)| t.contains("tomorrow")).count();
        // Each end of the phrase within the measured time.
        let mut k = 0u32;
        loop {
            let end = start + Duration::from_secs_f64((f64::from(k) * loop_ms + end_ms) / 1000.0);
            k += 1;
            if end < t_measure {
                continue;
            }
            if end > t_end {
                break;
            }
            match got.iter().find(|(at, _)| *at >= end) {
                Some((at, _)) if *at - end <= Duration::from_secs(5) => {
                    latencies.push((*at - end).as_secs_f64() * 1000.0);
                }
                _ => missed += 1,
            }
        }
    }
    Ok(Outcome {
        idle,
        captioned,
        recogniser,
        latencies,
        missed,
        finals: n_finals,
        heard_word,
    })
}
