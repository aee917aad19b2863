//! A browser's side of a media leg, for tests and benchmarks: a send-only
//! WebRTC peer (str0m) on its own UDP socket that, once DTLS is up, sends
//! Opus every 20 ms (filler, or real speech given with [`Sender::speak`]) and
//! VP8 at 25 fps in real time (a key frame of 320×240 every `key_every`
//! frames), each only if offered. Not used by the relay: it is what a browser
//! does, made small enough to run many of in one thread.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input, Output, Rtc, RtcConfig};

/// The frames a [`Sender`] sends: audio bytes, video key and inter frame sizes.
#[derive(Debug, Clone, Copy)]
pub struct Frames {
    /// Bytes of each Opus frame.
    pub audio: usize,
    /// Bytes of each VP8 key frame.
    pub key: usize,
    /// Bytes of each VP8 inter frame.
    pub inter: usize,
    /// A key frame every this many video frames.
    pub key_every: u64,
}

impl Default for Frames {
    fn default() -> Self {
        Self {
            audio: 80,
            key: 8_000,
            inter: 1_400,
            key_every: 50,
        }
    }
}

/// A send-only peer.
pub struct Sender {
    /// The WebRTC peer.
    pub rtc: Rtc,
    socket: UdpSocket,
    addr: SocketAddr,
    audio: Mid,
    video: Mid,
    pending: Option<SdpPendingOffer>,
    connected: Option<Instant>,
    shape: Frames,
    /// Opus packets to send as the sound, in a loop, instead of filler (real
    /// speech, for captions).
    voice: Vec<Vec<u8>>,
    /// Frames sent: (audio, video).
    pub sent: (u64, u64),
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// A VP8 key frame header for `w` × `h`, padded with `fill` to `len` bytes.
pub fn vp8_key(w: u16, h: u16, fill: u8, len: usize) -> Vec<u8> {
    let mut f = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
    f.extend_from_slice(&w.to_le_bytes());
    f.extend_from_slice(&h.to_le_bytes());
    f.resize(len.max(10), fill);
    f
}

/// A VP8 inter frame padded with `fill` to `len` bytes.
pub fn vp8_inter(fill: u8, len: usize) -> Vec<u8> {
    let mut f = vec![0x31, 0x01, 0x00];
    f.resize(len.max(3), fill);
    f
}

impl Sender {
    /// A peer on a new loopback socket, with audio and video in the
    /// directions given (send-only, as a browser's leg); returns it and its
    /// offer.
    pub fn offer(
        audio: Direction,
        video: Direction,
        shape: Frames,
    ) -> std::io::Result<(Self, String)> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_nonblocking(true)?;
        let addr = socket.local_addr()?;
        let mut rtc = RtcConfig::new()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .clear_codecs()
            .enable_opus(true)
            .enable_vp8(true)
            .build(Instant::now());
        if let Ok(c) = Candidate::host(addr, "udp") {
            rtc.add_local_candidate(c);
        }
        let mut api = rtc.sdp_api();
        let a = api.add_media(MediaKind::Audio, audio, None, None, None);
        let v = api.add_media(MediaKind::Video, video, None, None, None);
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| std::io::Error::other("no offer"))?;
        let s = Self {
            rtc,
            socket,
            addr,
            audio: a,
            video: v,
            pending: Some(pending),
            connected: None,
            shape,
            voice: Vec::new(),
            sent: (0, 0),
        };
        Ok((s, offer.to_sdp_string()))
    }

    /// The server's answer.
    pub fn answer(&mut self, sdp: &str) -> Result<(), String> {
        let pending = self.pending.take().ok_or("answered already")?;
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| e.to_string())?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| e.to_string())
    }

    /// Sends these Opus packets (20 ms each, in a loop) as the sound.
    pub fn speak(&mut self, packets: Vec<Vec<u8>>) {
        self.voice = packets;
    }

    /// When DTLS came up: frame `n` of the sound is sent `n` × 20 ms later.
    pub fn connected_at(&self) -> Option<Instant> {
        self.connected
    }

    /// DTLS is up.
    pub fn connected(&self) -> bool {
        self.connected.is_some()
    }

    /// How long media has been sent, ms (0 before DTLS).
    pub fn sending_ms(&self) -> u64 {
        self.connected.map_or(0, |t| {
            u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
        })
    }

    fn pt(&mut self, mid: Mid, codec: Codec) -> Option<Pt> {
        let w = self.rtc.writer(mid)?;
        w.payload_params()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
    }

    /// One round: datagrams in, timers, datagrams out, and (until `until_ms`
    /// of media were sent) the frames that are due. Returns the bytes sent.
    pub fn step(&mut self, buf: &mut [u8], until_ms: u64) -> Result<u64, String> {
        let now = Instant::now();
        while let Ok((n, from)) = self.socket.recv_from(buf) {
            let Ok(r) = Receive::new(Protocol::Udp, from, self.addr, &buf[..n]) else {
                continue;
            };
            self.rtc
                .handle_input(Input::Receive(now, r))
                .map_err(|e| e.to_string())?;
        }
        self.rtc
            .handle_input(Input::Timeout(now))
            .map_err(|e| e.to_string())?;
        let mut bytes = 0;
        loop {
            match self.rtc.poll_output().map_err(|e| e.to_string())? {
                Output::Transmit(t) => {
                    bytes += t.contents.len() as u64;
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Output::Timeout(_) => break,
                Output::Event(str0m::Event::Connected) => self.connected = Some(now),
                Output::Event(_) => {}
            }
        }
        let ms = self.sending_ms().min(until_ms);
        if self.connected.is_none() {
            return Ok(bytes);
        }
        let (opus, vp8) = (
            self.pt(self.audio, Codec::Opus),
            self.pt(self.video, Codec::Vp8),
        );
        let shape = self.shape;
        while let Some(opus) = opus
            && self.sent.0 * 20 <= ms
        {
            let n = self.sent.0;
            let t = MediaTime::new(n * 960, Frequency::FORTY_EIGHT_KHZ);
            let frame = if self.voice.is_empty() {
                let mut f = vec![0xfc; shape.audio.max(2)];
                f[1] = n as u8;
                f
            } else {
                self.voice[(n as usize) % self.voice.len()].clone()
            };
            if let Some(w) = self.rtc.writer(self.audio) {
                w.write(opus, now, t, frame).map_err(|e| e.to_string())?;
            }
            self.sent.0 += 1;
        }
        while let Some(vp8) = vp8
            && self.sent.1 * 40 <= ms
        {
            let n = self.sent.1;
            let t = MediaTime::new(n * 3600, Frequency::NINETY_KHZ);
            let frame = if n.is_multiple_of(shape.key_every.max(1)) {
                vp8_key(320, 240, n as u8, shape.key)
            } else {
                vp8_inter(n as u8, shape.inter)
            };
            if let Some(w) = self.rtc.writer(self.video) {
                w.write(vp8, now, t, frame).map_err(|e| e.to_string())?;
            }
            self.sent.1 += 1;
        }
        Ok(bytes)
    }
}

/// Real speech for a [`Sender`] (`speech` feature): the 16 kHz mono 16-bit
/// PCM of a WAV file, encoded as 20 ms Opus packets as a browser would send
/// them (VoIP, 24 kbit/s). The WAV must be in that format.
#[cfg(feature = "speech")]
pub fn speech(wav: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let pcm = wav_pcm(wav)?;
    let mut enc =
        opus_rs::OpusEncoder::new(16_000, 1, opus_rs::Application::Voip).map_err(str::to_string)?;
    enc.bitrate_bps = 24_000;
    let mut out = Vec::new();
    let mut buf = [0u8; 1500];
    for chunk in pcm.chunks(320) {
        let mut frame = [0i16; 320];
        frame[..chunk.len()].copy_from_slice(chunk);
        let n = enc
            .encode_i16(&frame, 320, &mut buf)
            .map_err(str::to_string)?;
        out.push(buf[..n].to_vec());
    }
    Ok(out)
}

/// The samples of a 16 kHz mono 16-bit PCM WAV file.
#[cfg(feature = "speech")]
pub fn wav_pcm(wav: &[u8]) -> Result<Vec<i16>, String> {
    let u16_at = |i: usize| wav.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |i: usize| {
        wav.get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if wav.get(..4) != Some(b"RIFF") || wav.get(8..12) != Some(b"WAVE") {
        return Err("not a WAV file".into());
    }
    let mut at = 12;
    let mut format = None;
    while let (Some(id), Some(len)) = (wav.get(at..at + 4), u32_at(at + 4)) {
        let body = at + 8;
        let len = len as usize;
        match id {
            b"fmt " => {
                format = Some((
                    u16_at(body),
                    u16_at(body + 2),
                    u32_at(body + 4),
                    u16_at(body + 14),
                ));
            }
            b"data" => {
                if format != Some((Some(1), Some(1), Some(16_000), Some(16))) {
                    return Err(format!("not 16 kHz mono 16-bit PCM: {format:?}"));
                }
                let data = wav
                    .get(body..(body + len).min(wav.len()))
                    .unwrap_or_default();
                return Ok(data
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]))
                    .collect());
            }
            _ => {}
        }
        at = body + len + (len & 1);
    }
    Err("no data in the WAV file".into())
}
