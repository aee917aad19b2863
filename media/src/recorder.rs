//! Turns the frames one person's media leg receives into a WebM file: the file
//! starts at the first VP8 key frame (its size is the video track's), sound
//! that came before it is kept, and if no key frame comes within
//! [`KEY_FRAME_WAIT_MS`] (a camera that is off) the file is sound only.
//!
//! Time: each track's frames are placed by their own RTP clock, from where the
//! track's first frame arrived on the network clock; so a track is as smooth
//! as its sender made it, and the two tracks line up as they arrived.
//!
//! Pure: the writer is given, time is given; nothing here blocks or panics on
//! what a peer sent.

use std::io::{self, Seek, Write};
use std::time::Instant;

use crate::webm::{Track, WebmWriter, vp8_key_frame_size};

/// How long a recording waits for the camera's first key frame before it
/// records sound only (a key frame is asked for at once; a browser sends one
/// within a few hundred milliseconds).
pub const KEY_FRAME_WAIT_MS: u64 = 3_000;

/// Sound kept while the recording waits for a key frame (Opus frames of 20 ms:
/// 3 s is 150 of them).
const MAX_EARLY_AUDIO: usize = 200;

/// Which track a frame is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Opus.
    Audio,
    /// VP8.
    Video,
}

/// A track's clock: where its first frame arrived, and its RTP time then.
#[derive(Debug, Clone, Copy)]
struct Clock {
    /// Milliseconds from the recording's start to the track's first frame.
    at_ms: u64,
    /// The RTP time of that frame, and the clock rate.
    rtp: (u64, u32),
}

impl Clock {
    fn ms(&self, rtp: (u64, u32)) -> u64 {
        let (t0, rate0) = self.rtp;
        let (t, rate) = rtp;
        if rate != rate0 || rate == 0 {
            return self.at_ms;
        }
        self.at_ms + t.saturating_sub(t0).saturating_mul(1000) / u64::from(rate)
    }
}

/// One person's recording.
#[derive(Debug)]
pub struct Recorder<W: Write + Seek> {
    /// The output, until the writer takes it.
    out: Option<W>,
    /// The writer, once the file has started.
    writer: Option<WebmWriter<W>>,
    /// When the first frame arrived: the recording's zero.
    start: Option<Instant>,
    /// Each track's clock.
    clocks: [Option<Clock>; 2],
    /// Sound before the file started: (ms, frame).
    early: Vec<(u64, Vec<u8>)>,
    /// Frames written, per track.
    pub frames: [u64; 2],
}

impl<W: Write + Seek> Recorder<W> {
    /// A recording into `out`, which stays empty until the first frame.
    pub fn new(out: W) -> Self {
        Self {
            out: Some(out),
            writer: None,
            start: None,
            clocks: [None, None],
            early: Vec::new(),
            frames: [0, 0],
        }
    }

    /// Whether the recording still waits for the camera's first key frame.
    pub fn wants_key_frame(&self) -> bool {
        self.writer.is_none()
    }

    /// A frame of `kind` that arrived at `arrival` with RTP time `rtp` (its
    /// value and clock rate).
    pub fn push(
        &mut self,
        kind: Kind,
        arrival: Instant,
        rtp: (u64, u32),
        frame: &[u8],
    ) -> io::Result<()> {
        let start = *self.start.get_or_insert(arrival);
        let index = usize::from(kind == Kind::Video);
        let clock = *self.clocks[index].get_or_insert(Clock {
            at_ms: millis(arrival.saturating_duration_since(start)),
            rtp,
        });
        let ms = clock.ms(rtp);
        if self.writer.is_none() {
            let size = match kind {
                Kind::Video => vp8_key_frame_size(frame),
                Kind::Audio => None,
            };
            let give_up = ms >= KEY_FRAME_WAIT_MS;
            match (size, kind) {
                (Some(size), _) => self.open(Some(size))?,
                (None, Kind::Audio) if give_up => self.open(None)?,
                (None, Kind::Audio) => {
                    if self.early.len() < MAX_EARLY_AUDIO {
                        self.early.push((ms, frame.to_vec()));
                    }
                    return Ok(());
                }
                // Video before the first key frame cannot be decoded.
                (None, Kind::Video) => return Ok(()),
            }
        }
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        let (track, key) = match kind {
            Kind::Audio => (Track::Audio, true),
            Kind::Video => (Track::Video, vp8_key_frame_size(frame).is_some()),
        };
        w.write(track, ms, key, frame)?;
        self.frames[index] += 1;
        Ok(())
    }

    /// Starts the file (with a video track of `video`'s size, if any) and
    /// writes the sound kept until now.
    fn open(&mut self, video: Option<(u16, u16)>) -> io::Result<()> {
        let Some(out) = self.out.take() else {
            return Ok(());
        };
        let mut w = WebmWriter::new(out, video)?;
        for (ms, frame) in self.early.drain(..) {
            w.write(Track::Audio, ms, true, &frame)?;
            self.frames[0] += 1;
        }
        self.writer = Some(w);
        Ok(())
    }

    /// Ends the recording at `now`: the file's duration is from the first
    /// frame to `now`. `None` if no frame ever came (nothing was written).
    pub fn finish(mut self, now: Instant) -> io::Result<Option<W>> {
        let Some(start) = self.start else {
            return Ok(None);
        };
        if self.writer.is_none() && !self.early.is_empty() {
            self.open(None)?;
        }
        match self.writer {
            Some(w) => w
                .finish(millis(now.saturating_duration_since(start)))
                .map(Some),
            None => Ok(None),
        }
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::time::Duration;

    use super::*;

    fn key(w: u16, h: u16) -> Vec<u8> {
        let mut f = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        f.extend_from_slice(&w.to_le_bytes());
        f.extend_from_slice(&h.to_le_bytes());
        f.extend_from_slice(&[0; 16]);
        f
    }

    fn read(file: Vec<u8>) -> (usize, Vec<(u64, u64)>) {
        use matroska_demuxer::{Frame, MatroskaFile};
        let mut mkv = MatroskaFile::open(Cursor::new(file)).expect("WebM");
        let tracks = mkv.tracks().len();
        let mut frame = Frame::default();
        let mut out = Vec::new();
        while mkv.next_frame(&mut frame).expect("frame") {
            out.push((frame.track, frame.timestamp));
        }
        (tracks, out)
    }

    #[test]
    fn the_file_starts_at_the_first_key_frame_and_keeps_the_sound_before_it() {
        let t0 = Instant::now();
        let mut r = Recorder::new(Cursor::new(Vec::new()));
        let ms = |n| t0 + Duration::from_millis(n);
        r.push(Kind::Audio, ms(0), (1000, 48_000), &[1])
            .expect("audio");
        // Video that is not a key frame is dropped.
        r.push(Kind::Video, ms(10), (90_000, 90_000), &[0x31, 0, 0])
            .expect("inter frame");
        r.push(Kind::Audio, ms(20), (1960, 48_000), &[2])
            .expect("audio");
        assert!(r.wants_key_frame());
        r.push(Kind::Video, ms(40), (92_700, 90_000), &key(64, 48))
            .expect("key frame");
        assert!(!r.wants_key_frame());
        // The audio clock, not the arrival, places its frames.
        r.push(Kind::Audio, ms(90), (2920, 48_000), &[3])
            .expect("audio");
        let file = r.finish(ms(100)).expect("finish").expect("a file");
        let (tracks, frames) = read(file.into_inner());
        assert_eq!(tracks, 2);
        assert_eq!(frames, [(1, 0), (1, 20), (2, 40), (1, 40)]);
    }

    #[test]
    fn without_a_key_frame_the_recording_is_sound_only() {
        let t0 = Instant::now();
        let mut r = Recorder::new(Cursor::new(Vec::new()));
        for i in 0..200u64 {
            let at = t0 + Duration::from_millis(i * 20);
            r.push(Kind::Audio, at, (i * 960, 48_000), &[7])
                .expect("audio");
        }
        assert!(!r.wants_key_frame(), "gave up waiting after 3 s");
        let file = r
            .finish(t0 + Duration::from_secs(4))
            .expect("finish")
            .expect("a file");
        let (tracks, frames) = read(file.into_inner());
        assert_eq!(tracks, 1);
        assert_eq!(frames.len(), 200);
    }

    #[test]
    fn a_recording_that_never_received_anything_leaves_no_file() {
        let r = Recorder::new(Cursor::new(Vec::new()));
        assert!(r.finish(Instant::now()).expect("finish").is_none());
    }
}
