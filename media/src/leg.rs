//! One person's media leg, sans-IO in str0m's shape: a WebRTC peer that only
//! receives (the browser's offer is send-only), ICE-lite on the server's one
//! UDP address, DTLS-SRTP with a certificate of its own, and a [`Sink`] for
//! what arrives: a [`Recorder`], a [`Transcriber`] for live captions, or both
//! (a voicemail with its transcript). Time and datagrams go in ([`Leg::handle_receive`],
//! [`Leg::handle_timeout`]); datagrams to send and when to wake come out
//! ([`Leg::poll_output`]).
//!
//! What it must never do: send media to a browser (an offer that asks to
//! receive anything is refused), or panic on what a peer sent (a bad datagram
//! is dropped; a broken session ends the leg with an error).

use std::io::{Seek, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

use crate::recorder::{Kind, Recorder};
use crate::transcriber::Transcriber;

/// How often a key frame is asked for while the recording waits for one.
const KEY_FRAME_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// Why a leg could not be made or went on.
#[derive(Debug, thiserror::Error)]
pub enum LegError {
    /// The offer is not SDP, or not one this leg takes.
    #[error("the offer was refused: {0}")]
    Offer(String),
    /// The WebRTC session failed (the detail is str0m's).
    #[error("the media session failed: {0}")]
    Session(String),
    /// The recording could not be written.
    #[error("the recording could not be written: {0}")]
    Write(#[from] std::io::Error),
}

/// What the leg wants done.
#[derive(Debug)]
pub enum LegOutput {
    /// Send these bytes to `to` from the leg's address.
    Transmit {
        /// The browser's address.
        to: SocketAddr,
        /// The datagram.
        data: Vec<u8>,
    },
    /// Call [`Leg::handle_timeout`] at this time, unless a datagram comes first.
    Timeout(Instant),
    /// The browser is gone (ICE disconnected) or the leg closed: finish it.
    Closed,
}

/// What a leg does with what it receives.
#[derive(Debug)]
pub struct Sink<W: Write + Seek> {
    /// Writes the file, if recorded.
    pub recorder: Option<Recorder<W>>,
    /// Decodes the sound for captions, if captioned.
    pub transcriber: Option<Transcriber>,
}

impl<W: Write + Seek> Sink<W> {
    /// Recorded into `out`.
    pub fn record(out: W) -> Self {
        Self {
            recorder: Some(Recorder::new(out)),
            transcriber: None,
        }
    }

    /// Captioned, not recorded.
    pub fn transcribe() -> Self {
        Self {
            recorder: None,
            transcriber: Some(Transcriber::new()),
        }
    }

    /// Captioned as well.
    pub fn and_transcribe(mut self) -> Self {
        self.transcriber = Some(Transcriber::new());
        self
    }
}

/// One person's media leg.
pub struct Leg<W: Write + Seek> {
    /// The WebRTC peer.
    rtc: Rtc,
    /// The server's address (the one candidate).
    local: SocketAddr,
    /// Where what arrives goes.
    sink: Sink<W>,
    /// Frames received: (audio, video).
    frames: (u64, u64),
    /// The video section, to ask it for key frames.
    video: Option<Mid>,
    /// When a key frame was last asked for.
    key_asked: Option<Instant>,
    /// DTLS is up.
    connected: bool,
}

impl<W: Write + Seek> std::fmt::Debug for Leg<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leg")
            .field("local", &self.local)
            .field("connected", &self.connected)
            .finish_non_exhaustive()
    }
}

impl<W: Write + Seek> Leg<W> {
    /// Answers a browser's send-only `offer` at `now`, for a leg on the
    /// server's UDP address `local`, giving what arrives to `sink`. Returns the
    /// leg and the SDP answer.
    pub fn accept(
        offer: &str,
        local: SocketAddr,
        sink: Sink<W>,
        now: Instant,
    ) -> Result<(Self, String), LegError> {
        let offer = SdpOffer::from_sdp_string(offer).map_err(|e| LegError::Offer(e.to_string()))?;
        let mut rtc = RtcConfig::new()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .set_ice_lite(true)
            .clear_codecs()
            .enable_opus(true)
            .enable_vp8(true)
            .build(now);
        let candidate =
            Candidate::host(local, "udp").map_err(|e| LegError::Session(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| LegError::Offer(e.to_string()))?;
        let mut video = None;
        let mids: Vec<Mid> = answer_mids(&answer.to_sdp_string());
        for mid in mids {
            let Some(media) = rtc.media(mid) else {
                continue;
            };
            // The server only ever receives: a section it would send on (or
            // that is inactive-but-negotiated both ways) is refused.
            if !matches!(media.direction(), Direction::RecvOnly | Direction::Inactive) {
                return Err(LegError::Offer(format!(
                    "media section {mid} asks the server to send"
                )));
            }
            if media.kind() == MediaKind::Video {
                video.get_or_insert(mid);
            }
        }
        let leg = Self {
            rtc,
            local,
            sink,
            frames: (0, 0),
            video,
            key_asked: None,
            connected: false,
        };
        Ok((leg, answer.to_sdp_string()))
    }

    /// Whether the datagram `data` from `source` belongs to this leg (the
    /// server's one socket carries every leg).
    pub fn accepts(&self, now: Instant, source: SocketAddr, data: &[u8]) -> bool {
        Receive::new(Protocol::Udp, source, self.local, data)
            .is_ok_and(|r| self.rtc.accepts(&Input::Receive(now, r)))
    }

    /// A datagram from `source` arrived at `now`. One that does not parse is
    /// dropped.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        data: &[u8],
    ) -> Result<(), LegError> {
        let Ok(r) = Receive::new(Protocol::Udp, source, self.local, data) else {
            return Ok(());
        };
        self.rtc
            .handle_input(Input::Receive(now, r))
            .map_err(|e| LegError::Session(e.to_string()))
    }

    /// Time passed to `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), LegError> {
        self.ask_key_frame(now);
        self.rtc
            .handle_input(Input::Timeout(now))
            .map_err(|e| LegError::Session(e.to_string()))
    }

    /// The next thing to do; media that arrived is recorded on the way.
    pub fn poll_output(&mut self) -> Result<LegOutput, LegError> {
        loop {
            let out = self
                .rtc
                .poll_output()
                .map_err(|e| LegError::Session(e.to_string()))?;
            match out {
                Output::Timeout(at) => return Ok(LegOutput::Timeout(at)),
                Output::Transmit(t) => {
                    return Ok(LegOutput::Transmit {
                        to: t.destination,
                        data: t.contents.to_vec(),
                    });
                }
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::IceConnectionStateChange(
                    IceConnectionState::Disconnected,
                )) => {
                    return Ok(LegOutput::Closed);
                }
                Output::Event(Event::MediaData(m)) => {
                    let kind = if Some(m.mid) == self.video {
                        Kind::Video
                    } else {
                        Kind::Audio
                    };
                    let rtp = (m.time.numer(), m.time.denom());
                    match kind {
                        Kind::Audio => self.frames.0 += 1,
                        Kind::Video => self.frames.1 += 1,
                    }
                    if let Some(r) = &mut self.sink.recorder {
                        r.push(kind, m.network_time, rtp, &m.data)?;
                    }
                    if let (Some(t), Kind::Audio) = (&mut self.sink.transcriber, kind) {
                        t.push(rtp, &m.data);
                    }
                }
                Output::Event(_) => {}
            }
        }
    }

    /// DTLS is connected.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Frames received: (audio, video).
    pub fn frames(&self) -> (u64, u64) {
        self.frames
    }

    /// The sound decoded for captions since the last call (16 kHz mono PCM;
    /// empty if the leg is not captioned).
    pub fn take_pcm(&mut self) -> Vec<i16> {
        self.sink
            .transcriber
            .as_mut()
            .map(Transcriber::take)
            .unwrap_or_default()
    }

    /// While the recording waits for its first key frame, asks the browser
    /// for one (PLI) every [`KEY_FRAME_RETRY`].
    fn ask_key_frame(&mut self, now: Instant) {
        let due = self
            .key_asked
            .is_none_or(|t| now.saturating_duration_since(t) >= KEY_FRAME_RETRY);
        let wants = self
            .sink
            .recorder
            .as_ref()
            .is_some_and(Recorder::wants_key_frame);
        if !(self.connected && due && wants) {
            return;
        }
        if let Some(mut w) = self.video.and_then(|mid| self.rtc.writer(mid)) {
            // Not possible before the browser's stream is known; asked again.
            let _ = w.request_keyframe(None, KeyframeRequestKind::Pli);
            self.key_asked = Some(now);
        }
    }

    /// Ends the leg at `now`: the recording is finished (`None` if nothing
    /// was received, or nothing recorded).
    pub fn finish(mut self, now: Instant) -> Result<Option<W>, LegError> {
        self.rtc.disconnect();
        match self.sink.recorder {
            Some(r) => Ok(r.finish(now)?),
            None => Ok(None),
        }
    }
}

/// The `a=mid:` values of an SDP, in order.
fn answer_mids(sdp: &str) -> Vec<Mid> {
    sdp.lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=mid:"))
        .map(Mid::from)
        .collect()
}
