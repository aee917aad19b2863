//! Sound for live captions: the Opus frames one person's leg receives become
//! 16 kHz mono PCM, the rate speech recognisers take, in order and without
//! holes (a lost packet is concealed by the decoder, a longer silence in the
//! sender's clock is filled with silence up to [`MAX_GAP_MS`]).
//!
//! Pure: frames go in with their RTP time, PCM comes out with [`Transcriber::take`].
//! A frame the decoder cannot read, or that makes it panic, is replaced by
//! silence and the decoder starts afresh: nothing a peer sends ends the leg.

use opus_decoder::OpusDecoder;

/// The PCM rate the recogniser takes.
pub const RATE: u32 = 16_000;

/// Samples in 20 ms at [`RATE`] (an Opus frame as browsers send it).
const FRAME: usize = (RATE / 50) as usize;

/// The largest gap in the sender's clock filled with silence; a longer one
/// (a muted or paused sender) is joined without it, as the recogniser needs
/// no long silence to end an utterance.
pub const MAX_GAP_MS: u64 = 1_000;

/// PCM kept for the recogniser if nobody takes it, at most (10 s): past it
/// the oldest is dropped, so a stalled recogniser costs bounded memory.
const MAX_PENDING: usize = RATE as usize * 10;

/// One person's sound on its way to the recogniser.
pub struct Transcriber {
    decoder: OpusDecoder,
    /// The RTP time (48 kHz) the next frame is expected at.
    next_rtp: Option<u64>,
    /// Decoded and not yet taken.
    pcm: Vec<i16>,
    /// Frames decoded, and frames the decoder refused (replaced by silence).
    pub decoded: u64,
    /// See [`Transcriber::decoded`].
    pub refused: u64,
}

impl std::fmt::Debug for Transcriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcriber")
            .field("pending", &self.pcm.len())
            .field("decoded", &self.decoded)
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

fn new_decoder() -> OpusDecoder {
    // 16 kHz mono is one of the rates the decoder is built for; it cannot fail.
    #[allow(clippy::expect_used)]
    OpusDecoder::new(RATE, 1).expect("16 kHz mono is a valid Opus output")
}

impl Default for Transcriber {
    fn default() -> Self {
        Self::new()
    }
}

impl Transcriber {
    /// A transcriber with nothing decoded yet.
    pub fn new() -> Self {
        Self {
            decoder: new_decoder(),
            next_rtp: None,
            pcm: Vec::new(),
            decoded: 0,
            refused: 0,
        }
    }

    /// An Opus frame with RTP time `rtp` (its value and clock rate).
    pub fn push(&mut self, rtp: (u64, u32), frame: &[u8]) {
        let (t, rate) = rtp;
        if let Some(expected) = self.next_rtp
            && rate > 0
            && t > expected
        {
            // Packets lost (or a sender that stopped sending): concealed by
            // the decoder for a few frames, then silence.
            let gap_ms = (t - expected).saturating_mul(1000) / u64::from(rate);
            let frames = usize::try_from(gap_ms.min(MAX_GAP_MS) / 20).unwrap_or(0);
            for i in 0..frames {
                if i < 3 {
                    self.decode(&[]);
                } else {
                    self.silence(FRAME);
                }
            }
        }
        let n = self.decode(frame);
        if rate > 0 {
            let step = (n as u64).saturating_mul(u64::from(rate)) / u64::from(RATE);
            self.next_rtp = Some(t.saturating_add(step.max(1)));
        }
        self.bound();
    }

    /// Decodes `frame` (empty: conceal a lost one) onto the pending PCM;
    /// returns the samples added.
    fn decode(&mut self, frame: &[u8]) -> usize {
        let mut out = [0i16; OpusDecoder::MAX_FRAME_SIZE_48K];
        let decoder = &mut self.decoder;
        // The decoder is pure Rust without `unsafe`, but a crafted packet that
        // trips an assertion in it must not end the relay's media task.
        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            decoder.decode(frame, &mut out, false)
        }));
        match got {
            Ok(Ok(n)) => {
                self.decoded += 1;
                let n = n.min(out.len());
                self.pcm.extend_from_slice(&out[..n]);
                n
            }
            Ok(Err(_)) => {
                self.refused += 1;
                self.silence(FRAME);
                FRAME
            }
            Err(_) => {
                self.refused += 1;
                self.decoder = new_decoder();
                self.silence(FRAME);
                FRAME
            }
        }
    }

    fn silence(&mut self, n: usize) {
        self.pcm.resize(self.pcm.len() + n, 0);
    }

    fn bound(&mut self) {
        if self.pcm.len() > MAX_PENDING {
            let extra = self.pcm.len() - MAX_PENDING;
            self.pcm.drain(..extra);
        }
    }

    /// The PCM decoded since the last call (16 kHz, mono).
    pub fn take(&mut self) -> Vec<i16> {
        std::mem::take(&mut self.pcm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Opus packet of one 20 ms CELT frame of silence (TOC 0xf8:
    /// configuration 31, mono, one frame), as encoders send for digital
    /// silence.
    const SILENT: [u8; 3] = [0xf8, 0xff, 0xfe];

    #[test]
    fn each_frame_becomes_20_ms_at_16_khz() {
        let mut t = Transcriber::new();
        for i in 0..5u64 {
            t.push((i * 960, 48_000), &SILENT);
        }
        assert_eq!(t.take().len(), 5 * 320);
        assert!(t.take().is_empty(), "taken once");
        assert_eq!(t.refused, 0);
    }

    #[test]
    fn lost_packets_are_filled_so_the_time_stays_right() {
        let mut t = Transcriber::new();
        t.push((0, 48_000), &SILENT);
        // Four packets lost.
        t.push((5 * 960, 48_000), &SILENT);
        assert_eq!(t.take().len(), 6 * 320);
        // A sender silent for a minute: at most MAX_GAP_MS filled.
        t.push((5 * 960 + 48_000 * 60, 48_000), &SILENT);
        assert_eq!(t.take().len(), (MAX_GAP_MS as usize / 20 + 1) * 320);
    }

    #[test]
    fn garbage_is_silence_and_the_next_frame_decodes() {
        let mut t = Transcriber::new();
        t.push((0, 48_000), &[0xff; 700]);
        t.push((960, 48_000), &[]);
        t.push((1920, 48_000), &[0x0b, 0xde, 0xad]);
        t.push((2880, 48_000), &SILENT);
        assert!(t.refused >= 1, "the garbage was refused");
        assert!(t.decoded >= 1, "the good frame after it decoded");
        // Each frame took its place in time, whether decoded or silence (a
        // concealment with nothing to conceal from may give none).
        let pcm = t.take();
        assert!(pcm.len() >= 3 * 320, "{}", pcm.len());
    }

    #[test]
    fn a_stalled_reader_costs_bounded_memory() {
        let mut t = Transcriber::new();
        for i in 0..1_000u64 {
            t.push((i * 960, 48_000), &SILENT);
        }
        assert_eq!(t.take().len(), MAX_PENDING);
    }
}
