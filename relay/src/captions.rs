//! The speech recogniser for live captions: a child process the relay starts
//! (`captions/recognizer.py`, PocketSphinx from PyPI, offline US English) and
//! talks to over pipes. Streams of 16 kHz PCM go in, one per captioned media
//! leg; partial and final captions come out, each naming its stream.
//!
//! The process is started with the first stream and restarted with the next
//! one after it ended; if it cannot keep up, sound is dropped (counted), never
//! queued without bound. Nothing here blocks the media component's task:
//! sound is handed over with `try_send`, and captions come back on a channel.
//!
//! Limits, and why: at most [`MAX_DECODERS`] utterances are recognised at
//! once (each recogniser holds its language model, about 90 MB); sound waits
//! at most [`QUEUE`] frames of 20 ms (4 s) for the process.

use std::path::PathBuf;
use std::process::Stdio;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::error::{Error, Result};

/// The recogniser's program, run with the configured Python.
const PROGRAM: &str = include_str!("captions/recognizer.py");

/// Utterances recognised at once (see the module's limits).
pub const MAX_DECODERS: usize = 4;

/// Frames of sound waiting for the process, at most (a frame is one leg's
/// sound of one turn of the media task, about 20 ms; 200 is 4 s at one
/// stream): past it the newest is dropped.
pub const QUEUE: usize = 200;

/// A line longer than this from the recogniser ends it (a caption is a few
/// hundred bytes).
const MAX_LINE: usize = 16 * 1024;

/// What the recogniser said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// A caption for `stream`: partial, or (`done`) an utterance's final one.
    Caption {
        /// The stream (a media leg).
        stream: u32,
        /// The words.
        text: String,
        /// The utterance ended.
        done: bool,
    },
    /// The stream's last caption has been said (it was closed).
    Closed {
        /// The stream.
        stream: u32,
    },
    /// The process ended (every open stream with it).
    Gone,
}

/// One line of the recogniser's output.
#[derive(Debug, Deserialize)]
struct Line {
    stream: Option<u32>,
    text: Option<String>,
    #[serde(rename = "final", default)]
    done: bool,
    #[serde(default)]
    closed: bool,
}

/// The running recogniser.
#[derive(Debug)]
pub struct Recogniser {
    frames: mpsc::Sender<(u32, Vec<u8>)>,
    /// Sound dropped because the process fell behind, in frames.
    pub dropped: u64,
    child: Child,
}

impl Recogniser {
    /// Starts the recogniser with `python`; what it hears comes on the
    /// returned channel.
    pub fn start(python: &PathBuf) -> Result<(Self, mpsc::Receiver<Heard>)> {
        let mut child = Command::new(python)
            .arg("-c")
            .arg(PROGRAM)
            .arg(MAX_DECODERS.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                Error::Internal(format!(
                    "the speech recogniser ({}) did not start: {e}",
                    python.display()
                ))
            })?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(Error::Internal("the speech recogniser has no pipes".into()));
        };
        let (frames, mut rx) = mpsc::channel::<(u32, Vec<u8>)>(QUEUE);
        tokio::spawn(async move {
            while let Some((stream, pcm)) = rx.recv().await {
                let mut head = [0u8; 8];
                head[..4].copy_from_slice(&stream.to_le_bytes());
                let len = u32::try_from(pcm.len()).unwrap_or(0);
                head[4..].copy_from_slice(&len.to_le_bytes());
                let written = async {
                    stdin.write_all(&head).await?;
                    stdin.write_all(&pcm[..len as usize]).await?;
                    stdin.flush().await
                };
                if written.await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::warn!(recogniser = %line.chars().take(300).collect::<String>());
            }
        });
        let (heard_tx, heard) = mpsc::channel(256);
        tokio::spawn(async move {
            let mut out = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match out.read_line(&mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line.len() > MAX_LINE => break,
                    Ok(_) => {}
                }
                let Ok(l) = serde_json::from_str::<Line>(&line) else {
                    tracing::warn!("the speech recogniser said something unreadable");
                    continue;
                };
                let heard = match (l.stream, l.text, l.closed) {
                    (Some(stream), _, true) => Heard::Closed { stream },
                    (Some(stream), Some(text), false) => Heard::Caption {
                        stream,
                        text,
                        done: l.done,
                    },
                    _ => continue, // {"ready": true}
                };
                if heard_tx.send(heard).await.is_err() {
                    return;
                }
            }
            tracing::warn!("the speech recogniser ended");
            let _ = heard_tx.send(Heard::Gone).await;
        });
        tracing::info!("speech recogniser started");
        Ok((
            Self {
                frames,
                dropped: 0,
                child,
            },
            heard,
        ))
    }

    /// Sound for `stream` (16 kHz mono); dropped if the process fell behind.
    pub fn feed(&mut self, stream: u32, pcm: &[i16]) {
        if pcm.is_empty() {
            return;
        }
        let bytes = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
        if self.frames.try_send((stream, bytes)).is_err() {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(
                    dropped = self.dropped,
                    "the speech recogniser fell behind: sound dropped"
                );
            }
        }
    }

    /// `stream` ended: its last caption comes, then [`Heard::Closed`].
    /// Returns false if the process is gone (no `Closed` will come).
    pub fn close(&mut self, stream: u32) -> bool {
        // Not dropped when the queue is full: the close waits its turn.
        let frames = self.frames.clone();
        tokio::spawn(async move {
            let _ = frames.send((stream, Vec::new())).await;
        });
        !self.frames.is_closed()
    }

    /// The process's id, to measure it.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}
