//! The media component, in the relay's process (the embedded default): one UDP
//! socket and the media legs on it (`shieldcall_media::leg`). A recording leg
//! records one person's side of a recorded standard call (or a voicemail)
//! into `recordings/` in the data directory, with a JSON file beside it saying
//! whose it is. A captions leg gives one person's sound to the speech
//! recogniser (`captions`), whose captions go to both people through the hub
//! and, when the leg ends, into a transcript kept like a recording. A
//! voicemail is transcribed too when the relay has a recogniser.
//!
//! It starts with the first leg (no socket is bound for a relay that never
//! records or captions). A leg ends when its call is no longer recorded or
//! captioned (checked every second against the hub: stopped, hung up, gone),
//! when the browser goes away (ICE disconnects), or when the relay stops; its
//! file is finished then, and its transcript written once the recogniser has
//! said its last words (at most [`LAST_WORDS`] later).
//!
//! What it must never do: open a leg the hub did not allow (the connection
//! asks the hub first), or let one leg's bad datagrams end another's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use shieldcall_media::leg::{Leg, LegOutput, Sink};

use crate::captions::{Heard, Recogniser};
use shieldcall_proto::CallId;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::hub::Hub;

/// Legs at once on one relay: each is a WebRTC session and an open file, and a
/// recorded call has two. Past it a new leg is refused, not an old one cut.
pub const MAX_LEGS: usize = 200;

/// How long a finished leg's transcript waits for the recogniser's last
/// caption before it is written without it.
pub const LAST_WORDS: Duration = Duration::from_secs(5);

/// Where recordings go, inside the data directory.
pub const RECORDINGS_DIR: &str = "recordings";

/// What is known of a recording, kept beside its file (`<id>.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordingInfo {
    /// The file's name without `.webm` (32 hex digits, random).
    pub id: String,
    /// Whose audio and video it is.
    pub owner: String,
    /// The other person in the call.
    pub peer: String,
    /// When it started, Unix seconds.
    pub started_at: i64,
    /// How long it ran, milliseconds.
    pub duration_ms: u64,
    /// A voicemail `owner` left for `peer`, not a recorded call.
    #[serde(default)]
    pub voicemail: bool,
    /// What `owner` said, as the recogniser heard it (the final captions, one
    /// utterance a line), if the leg was transcribed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
    /// A transcript of live captions alone: there is no audio or video file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub captions: bool,
}

/// A leg to open.
#[derive(Debug)]
pub struct Open {
    /// The recorded call.
    pub call_id: CallId,
    /// Whose side.
    pub owner: String,
    /// The other person.
    pub peer: String,
    /// The browser's send-only offer.
    pub offer: String,
    /// A voicemail, not a recorded call.
    pub voicemail: bool,
    /// The captions leg (sound for the recogniser, nothing recorded).
    pub captions: bool,
    /// A voicemail may be transcribed (the calling policies allow it).
    pub transcribe: bool,
}

enum Command {
    Open(Open, oneshot::Sender<Result<String>>),
    Count(oneshot::Sender<usize>),
}

/// The handle the connections use; the task owns the socket and the legs.
#[derive(Debug, Clone)]
pub struct MediaServer {
    commands: mpsc::Sender<Command>,
    /// The socket's address (the legs' ICE candidate).
    pub address: SocketAddr,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

struct Running {
    leg: Leg<std::fs::File>,
    call_id: CallId,
    info: RecordingInfo,
    path: PathBuf,
    started: Instant,
    /// The recogniser's stream for this leg's sound, if transcribed.
    stream: Option<u32>,
    /// The final captions so far.
    transcript: Vec<String>,
}

/// A finished leg whose transcript waits for the recogniser's last words.
struct Closing {
    info: RecordingInfo,
    path: PathBuf,
    transcript: Vec<String>,
    call_id: CallId,
    until: Instant,
}

/// The recogniser, started with the first leg that needs it.
struct Speech {
    python: Option<PathBuf>,
    running: Option<(Recogniser, mpsc::Receiver<Heard>)>,
}

impl Speech {
    /// The running recogniser, started if need be.
    fn get(&mut self) -> Result<&mut Recogniser> {
        if self.running.is_none() {
            let Some(python) = &self.python else {
                return Err(Error::Invalid(
                    "this server has no speech recogniser".into(),
                ));
            };
            self.running = Some(Recogniser::start(python)?);
        }
        match &mut self.running {
            Some((r, _)) => Ok(r),
            None => Err(Error::Internal("no recogniser".into())),
        }
    }

    /// What the recogniser said next (never, if it is not running).
    async fn heard(&mut self) -> Heard {
        match &mut self.running {
            Some((_, rx)) => rx.recv().await.unwrap_or(Heard::Gone),
            None => std::future::pending().await,
        }
    }
}

impl MediaServer {
    /// Binds `address` and starts the task; legs record into `data_dir`, and
    /// `python` (one with PocketSphinx) runs the speech recogniser, if set.
    pub async fn start(
        address: SocketAddr,
        data_dir: &Path,
        hub: Arc<Hub>,
        python: Option<PathBuf>,
    ) -> Result<Self> {
        let socket = UdpSocket::bind(address)
            .await
            .map_err(|e| Error::Internal(format!("media socket {address}: {e}")))?;
        let address = socket
            .local_addr()
            .map_err(|e| Error::Internal(format!("media socket: {e}")))?;
        let dir = data_dir.join(RECORDINGS_DIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Internal(format!("create {}: {e}", dir.display())))?;
        let (tx, rx) = mpsc::channel(64);
        let speech = Speech {
            python,
            running: None,
        };
        tokio::spawn(run(socket, address, dir, hub, rx, speech));
        tracing::info!(%address, "media component started");
        Ok(Self {
            commands: tx,
            address,
        })
    }

    /// Opens a leg for `open`; returns the SDP answer.
    pub async fn open(&self, open: Open) -> Result<String> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Open(open, tx))
            .await
            .map_err(|_| Error::Internal("the media component stopped".into()))?;
        rx.await
            .map_err(|_| Error::Internal("the media component stopped".into()))?
    }

    /// Legs open now.
    pub async fn legs(&self) -> usize {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Count(tx)).await.is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }
}

async fn run(
    socket: UdpSocket,
    local: SocketAddr,
    dir: PathBuf,
    hub: Arc<Hub>,
    mut commands: mpsc::Receiver<Command>,
    mut speech: Speech,
) {
    let mut legs: HashMap<u64, Running> = HashMap::new();
    let mut closing: HashMap<u32, Closing> = HashMap::new();
    let mut next = 0u64;
    let mut buf = vec![0u8; 2048];
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    let mut wake = Instant::now() + Duration::from_secs(1);
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                None => break,
                Some(Command::Count(reply)) => { let _ = reply.send(legs.len()); }
                Some(Command::Open(open, reply)) => {
                    next += 1;
                    let r = open_leg(&dir, local, open, legs.len(), &mut speech, next);
                    let r = r.map(|(running, answer)| {
                        legs.insert(next, running);
                        answer
                    });
                    let _ = reply.send(r);
                }
            },
            heard = speech.heard() => match heard {
                Heard::Caption { stream, text, done } => {
                    if let Some(r) = legs.values_mut().find(|r| r.stream == Some(stream)) {
                        if r.info.captions {
                            hub.caption(&r.call_id, &r.info.owner, &text, done);
                        }
                        if done {
                            r.transcript.push(text);
                        }
                    } else if let Some(c) = closing.get_mut(&stream) {
                        if c.info.captions {
                            hub.caption(&c.call_id, &c.info.owner, &text, done);
                        }
                        if done {
                            c.transcript.push(text);
                        }
                    }
                }
                Heard::Closed { stream } => {
                    if let Some(c) = closing.remove(&stream) {
                        describe(&hub, c.info, &c.path, c.transcript);
                    }
                }
                Heard::Gone => {
                    speech.running = None;
                    for r in legs.values_mut() {
                        r.stream = None;
                    }
                    for (_, c) in closing.drain() {
                        describe(&hub, c.info, &c.path, c.transcript);
                    }
                }
            },
            got = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = got else { continue };
                let now = Instant::now();
                let data = &buf[..n];
                if let Some((_, r)) = legs.iter_mut().find(|(_, r)| r.leg.accepts(now, from, data))
                    && let Err(e) = r.leg.handle_receive(now, from, data)
                {
                    tracing::debug!(error = %e, "media leg input refused");
                }
            }
            () = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                for r in legs.values_mut() {
                    let _ = r.leg.handle_timeout(now);
                }
            }
            _ = sweep.tick() => {
                // A leg whose call is no longer recorded (captioned) ends.
                let over: Vec<u64> = legs
                    .iter()
                    .filter(|(_, r)| !hub.media_wanted(&r.call_id, r.info.captions))
                    .map(|(k, _)| *k)
                    .collect();
                for k in over {
                    if let Some(r) = legs.remove(&k) {
                        finish(&hub, r, &mut speech, &mut closing);
                    }
                }
                // Transcripts whose last words did not come.
                let now = Instant::now();
                let late: Vec<u32> = closing
                    .iter()
                    .filter(|(_, c)| c.until <= now)
                    .map(|(k, _)| *k)
                    .collect();
                for k in late {
                    if let Some(c) = closing.remove(&k) {
                        describe(&hub, c.info, &c.path, c.transcript);
                    }
                }
            }
        }
        // Everything the legs want sent, and when they next need time.
        wake = Instant::now() + Duration::from_secs(1);
        let mut closed = Vec::new();
        for (k, r) in &mut legs {
            if let (Some(stream), Some((recogniser, _))) = (r.stream, &mut speech.running) {
                recogniser.feed(stream, &r.leg.take_pcm());
            }
            loop {
                match r.leg.poll_output() {
                    Ok(LegOutput::Transmit { to, data }) => {
                        let _ = socket.send_to(&data, to).await;
                    }
                    Ok(LegOutput::Timeout(at)) => {
                        wake = wake.min(at);
                        break;
                    }
                    Ok(LegOutput::Closed) => {
                        closed.push(*k);
                        break;
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "media leg ended");
                        closed.push(*k);
                        break;
                    }
                }
            }
        }
        for k in closed {
            if let Some(r) = legs.remove(&k) {
                finish(&hub, r, &mut speech, &mut closing);
            }
        }
    }
    // The relay stops: nothing more will be heard.
    speech.running = None;
    for (_, r) in legs.drain() {
        finish(&hub, r, &mut speech, &mut closing);
    }
    for (_, c) in closing.drain() {
        describe(&hub, c.info, &c.path, c.transcript);
    }
}

/// Makes a leg: recording into a new file of `dir`, or for captions giving
/// its sound to the recogniser as stream `key` (a voicemail both, when there is
/// a recogniser).
fn open_leg(
    dir: &Path,
    local: SocketAddr,
    open: Open,
    count: usize,
    speech: &mut Speech,
    key: u64,
) -> Result<(Running, String)> {
    if count >= MAX_LEGS {
        return Err(Error::Internal(format!(
            "{MAX_LEGS} media legs are open already"
        )));
    }
    let mut raw = [0u8; 16];
    getrandom::getrandom(&mut raw).map_err(|e| Error::Internal(format!("getrandom: {e}")))?;
    let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("{id}.webm"));
    // The recogniser's stream: the leg's key (unique while the relay runs).
    let stream = key as u32;
    let transcribed = if open.captions {
        speech.get().map_err(|e| match e {
            Error::Invalid(why) => Error::Invalid(why),
            other => Error::Invalid(format!("live captions could not start: {other}")),
        })?;
        true
    } else {
        open.voicemail && open.transcribe && speech.python.is_some() && speech.get().is_ok()
    };
    let sink = if open.captions {
        Sink::transcribe()
    } else {
        let file = std::fs::File::create(&path)
            .map_err(|e| Error::Internal(format!("create {}: {e}", path.display())))?;
        let sink = Sink::record(file);
        if transcribed {
            sink.and_transcribe()
        } else {
            sink
        }
    };
    let now = Instant::now();
    let (leg, answer) = match Leg::accept(&open.offer, local, sink, now) {
        Ok(ok) => ok,
        Err(e) => {
            if !open.captions {
                let _ = std::fs::remove_file(&path);
            }
            return Err(Error::Invalid(e.to_string()));
        }
    };
    let info = RecordingInfo {
        id,
        owner: open.owner,
        peer: open.peer,
        started_at: crate::store::unix_now(),
        duration_ms: 0,
        voicemail: open.voicemail,
        transcript: None,
        captions: open.captions,
    };
    tracing::info!(call = %open.call_id, captions = open.captions, "media leg opened");
    let running = Running {
        leg,
        call_id: open.call_id,
        info,
        path,
        started: now,
        stream: transcribed.then_some(stream),
        transcript: Vec::new(),
    };
    Ok((running, answer))
}

/// Finishes a leg's file; what is known of it is written beside it now, or,
/// if the recogniser has still to say its last words, once it has (see
/// [`Closing`]). A leg that received nothing leaves no file.
fn finish(hub: &Hub, r: Running, speech: &mut Speech, closing: &mut HashMap<u32, Closing>) {
    let Running {
        leg,
        mut info,
        path,
        started,
        stream,
        transcript,
        call_id,
    } = r;
    let now = Instant::now();
    info.duration_ms =
        u64::try_from(now.saturating_duration_since(started).as_millis()).unwrap_or(0);
    let kept = match leg.finish(now) {
        Ok(Some(_)) => true,
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(error = %e, "recording failed");
            false
        }
    };
    if !kept {
        let _ = std::fs::remove_file(&path);
        if !info.captions {
            // Nothing recorded: no transcript of it either.
            if let (Some(stream), Some((recogniser, _))) = (stream, &mut speech.running) {
                recogniser.close(stream);
            }
            return;
        }
    }
    if let (Some(stream), Some((recogniser, _))) = (stream, &mut speech.running)
        && recogniser.close(stream)
    {
        let until = now + LAST_WORDS;
        let c = Closing {
            info,
            path,
            transcript,
            call_id,
            until,
        };
        closing.insert(stream, c);
        return;
    }
    describe(hub, info, &path, transcript);
}

/// Writes what is known of a finished leg beside its file (`<id>.json`), with
/// its transcript if it has one, and tells both people it is there; a
/// captions leg that heard nothing leaves nothing.
fn describe(hub: &Hub, mut info: RecordingInfo, path: &Path, transcript: Vec<String>) {
    if !transcript.is_empty() {
        info.transcript = Some(transcript.join("\n"));
    }
    if info.captions && info.transcript.is_none() {
        return;
    }
    let meta = path.with_extension("json");
    match serde_json::to_vec(&info) {
        Ok(json) => match std::fs::write(&meta, json) {
            Ok(()) => hub.recording_ready(&info.owner, &info.peer, &info.id),
            Err(e) => tracing::warn!(error = %e, "recording: its description was not written"),
        },
        Err(e) => tracing::warn!(error = %e, "recording: no description"),
    }
    tracing::info!(
        ms = info.duration_ms,
        captions = info.captions,
        "media leg finished"
    );
}

/// The recordings `user` is in (theirs and the other person's side), newest
/// first.
pub fn recordings_of(data_dir: &Path, user: &str) -> Vec<RecordingInfo> {
    let dir = data_dir.join(RECORDINGS_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut list: Vec<RecordingInfo> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice::<RecordingInfo>(&b).ok())
        .filter(|r| r.owner == user || r.peer == user)
        .collect();
    list.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
    list
}

/// Deletes the recordings that started more than `retention` before `now`
/// (Unix seconds), file and description; returns how many.
pub fn expire(data_dir: &Path, now: i64, retention: Duration) -> usize {
    let dir = data_dir.join(RECORDINGS_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let keep = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
    let mut gone = 0;
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let Some(info) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<RecordingInfo>(&b).ok())
        else {
            continue;
        };
        if now.saturating_sub(info.started_at) > keep {
            // The file first: a description without its file is listed by
            // nobody's mistake, a file without one by nobody at all. (A
            // transcript of captions alone has no file.)
            let _ = std::fs::remove_file(path.with_extension("webm"));
            if std::fs::remove_file(&path).is_ok() {
                gone += 1;
            }
        }
    }
    gone
}

/// The file of recording `id` if `user` is in it.
pub fn recording_file(data_dir: &Path, user: &str, id: &str) -> Option<PathBuf> {
    let well_formed = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return None;
    }
    recordings_of(data_dir, user)
        .iter()
        .any(|r| r.id == id && !r.captions)
        .then(|| data_dir.join(RECORDINGS_DIR).join(format!("{id}.webm")))
}
