//! A WebM (Matroska) writer for one person's side of a recorded call: an Opus
//! track and a VP8 track, frames copied as they arrived (no re-encoding), in
//! clusters of at most [`CLUSTER_MS`].
//!
//! The file is written front to back; only two places are patched at the end
//! ([`WebmWriter::finish`]): the segment's size and the duration, so a player
//! shows the length and can seek. A file whose writer never finished (the
//! relay was killed) still plays: its segment is of "unknown size", which
//! WebM allows, and its duration reads as 0.
//!
//! It never panics on what a peer sent: frames are bytes, timestamps are
//! clamped into order, and an oversized frame is refused with an error.

use std::io::{self, Seek, SeekFrom, Write};

/// The longest a cluster spans: a block's time within its cluster is a signed
/// 16-bit number of milliseconds, and players seek to cluster starts.
pub const CLUSTER_MS: u64 = 5_000;

/// The largest frame written (a VP8 key frame of a 4K camera is well below).
pub const MAX_FRAME: usize = 4 << 20;

/// Opus's pre-skip at 48 kHz, in samples, that WebRTC encoders use.
const OPUS_PRE_SKIP: u16 = 312;

/// Element IDs (Matroska specification), written as their bytes.
mod id {
    pub const EBML: u32 = 0x1A45_DFA3;
    pub const EBML_VERSION: u32 = 0x4286;
    pub const EBML_READ_VERSION: u32 = 0x42F7;
    pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
    pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
    pub const DOC_TYPE: u32 = 0x4282;
    pub const DOC_TYPE_VERSION: u32 = 0x4287;
    pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;
    pub const SEGMENT: u32 = 0x1853_8067;
    pub const INFO: u32 = 0x1549_A966;
    pub const TIMECODE_SCALE: u32 = 0x2A_D7B1;
    pub const DURATION: u32 = 0x4489;
    pub const MUXING_APP: u32 = 0x4D80;
    pub const WRITING_APP: u32 = 0x5741;
    pub const TRACKS: u32 = 0x1654_AE6B;
    pub const TRACK_ENTRY: u32 = 0xAE;
    pub const TRACK_NUMBER: u32 = 0xD7;
    pub const TRACK_UID: u32 = 0x73C5;
    pub const TRACK_TYPE: u32 = 0x83;
    pub const CODEC_ID: u32 = 0x86;
    pub const CODEC_PRIVATE: u32 = 0x63A2;
    pub const CODEC_DELAY: u32 = 0x56AA;
    pub const SEEK_PRE_ROLL: u32 = 0x56BB;
    pub const VIDEO: u32 = 0xE0;
    pub const PIXEL_WIDTH: u32 = 0xB0;
    pub const PIXEL_HEIGHT: u32 = 0xBA;
    pub const AUDIO: u32 = 0xE1;
    pub const SAMPLING_FREQUENCY: u32 = 0xB5;
    pub const CHANNELS: u32 = 0x9F;
    pub const CLUSTER: u32 = 0x1F43_B675;
    pub const TIMECODE: u32 = 0xE7;
    pub const SIMPLE_BLOCK: u32 = 0xA3;
}

/// The tracks of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// Opus, 48 kHz, two channels (track 1).
    Audio,
    /// VP8 (track 2).
    Video,
}

impl Track {
    fn number(self) -> u8 {
        match self {
            Self::Audio => 1,
            Self::Video => 2,
        }
    }
}

/// Writes one WebM file. Create it once the video size is known (from the
/// first key frame, [`vp8_key_frame_size`]), or with none for sound only.
#[derive(Debug)]
pub struct WebmWriter<W: Write + Seek> {
    /// Where the file goes.
    out: W,
    /// Where the segment's size field starts (patched at the end).
    segment_size_at: u64,
    /// Where the segment's payload starts.
    segment_start: u64,
    /// Where the duration's 8-byte float starts (patched at the end).
    duration_at: u64,
    /// The open cluster: its start time and its blocks, written when it closes.
    cluster: Option<(u64, Vec<u8>)>,
    /// The latest timestamp written: a frame that comes earlier is written at it.
    last_ms: u64,
    /// Which tracks the file has.
    video: bool,
}

impl<W: Write + Seek> WebmWriter<W> {
    /// Starts a file with an Opus track and, if `video` gives its size, a VP8
    /// track of that many pixels.
    pub fn new(mut out: W, video: Option<(u16, u16)>) -> io::Result<Self> {
        let mut head = Vec::new();
        master(&mut head, id::EBML, |b| {
            uint(b, id::EBML_VERSION, 1);
            uint(b, id::EBML_READ_VERSION, 1);
            uint(b, id::EBML_MAX_ID_LENGTH, 4);
            uint(b, id::EBML_MAX_SIZE_LENGTH, 8);
            bytes(b, id::DOC_TYPE, b"webm");
            uint(b, id::DOC_TYPE_VERSION, 4);
            uint(b, id::DOC_TYPE_READ_VERSION, 2);
        });
        element_id(&mut head, id::SEGMENT);
        let segment_size_at = head.len() as u64;
        // "Unknown size" until `finish` writes the real one.
        head.extend_from_slice(&UNKNOWN_SIZE);
        let segment_start = head.len() as u64;
        let mut info = Vec::new();
        uint(&mut info, id::TIMECODE_SCALE, 1_000_000); // milliseconds
        element_id(&mut info, id::DURATION);
        info.push(0x88); // an 8-byte float, patched by `finish`
        let duration_in_info = info.len();
        info.extend_from_slice(&0f64.to_be_bytes());
        bytes(&mut info, id::MUXING_APP, b"shieldcall");
        bytes(&mut info, id::WRITING_APP, b"shieldcall");
        element_id(&mut head, id::INFO);
        size(&mut head, info.len() as u64);
        let duration_at = (head.len() + duration_in_info) as u64;
        head.extend_from_slice(&info);
        master(&mut head, id::TRACKS, |b| {
            master(b, id::TRACK_ENTRY, |t| {
                uint(t, id::TRACK_NUMBER, u64::from(Track::Audio.number()));
                uint(t, id::TRACK_UID, 1);
                uint(t, id::TRACK_TYPE, 2);
                bytes(t, id::CODEC_ID, b"A_OPUS");
                bytes(t, id::CODEC_PRIVATE, &opus_head());
                uint(
                    t,
                    id::CODEC_DELAY,
                    u64::from(OPUS_PRE_SKIP) * 1_000_000_000 / 48_000,
                );
                uint(t, id::SEEK_PRE_ROLL, 80_000_000);
                master(t, id::AUDIO, |a| {
                    float(a, id::SAMPLING_FREQUENCY, 48_000.0);
                    uint(a, id::CHANNELS, 2);
                });
            });
            if let Some((w, h)) = video {
                master(b, id::TRACK_ENTRY, |t| {
                    uint(t, id::TRACK_NUMBER, u64::from(Track::Video.number()));
                    uint(t, id::TRACK_UID, 2);
                    uint(t, id::TRACK_TYPE, 1);
                    bytes(t, id::CODEC_ID, b"V_VP8");
                    master(t, id::VIDEO, |v| {
                        uint(v, id::PIXEL_WIDTH, u64::from(w));
                        uint(v, id::PIXEL_HEIGHT, u64::from(h));
                    });
                });
            }
        });
        let base = out.stream_position()?;
        out.write_all(&head)?;
        Ok(Self {
            out,
            segment_size_at: base + segment_size_at,
            segment_start: base + segment_start,
            duration_at: base + duration_at,
            cluster: None,
            last_ms: 0,
            video: video.is_some(),
        })
    }

    /// Writes a frame of `track` at `ms` milliseconds from the start. Video
    /// frames before the first key frame should not be given (a player could
    /// not decode them); `key` marks a key frame (audio frames are all keys).
    pub fn write(&mut self, track: Track, ms: u64, key: bool, frame: &[u8]) -> io::Result<()> {
        if frame.len() > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frame too large",
            ));
        }
        if track == Track::Video && !self.video {
            return Ok(());
        }
        // Frames arrive per track in order, but the two tracks interleave
        // with jitter: a frame a little late is written at the latest time.
        let ms = ms.max(self.last_ms);
        self.last_ms = ms;
        let start_new = match &self.cluster {
            None => true,
            Some((start, _)) => {
                ms - start >= CLUSTER_MS || (track == Track::Video && key && ms > *start)
            }
        };
        if start_new {
            self.close_cluster()?;
            self.cluster = Some((ms, Vec::new()));
        }
        let Some((start, blocks)) = self.cluster.as_mut() else {
            return Ok(());
        };
        let relative = i16::try_from(ms - *start).unwrap_or(i16::MAX);
        let mut block = Vec::with_capacity(frame.len() + 4);
        block.push(0x80 | track.number()); // the track number as a 1-byte vint
        block.extend_from_slice(&relative.to_be_bytes());
        block.push(if key { 0x80 } else { 0x00 });
        block.extend_from_slice(frame);
        bytes(blocks, id::SIMPLE_BLOCK, &block);
        Ok(())
    }

    fn close_cluster(&mut self) -> io::Result<()> {
        if let Some((start, blocks)) = self.cluster.take() {
            let mut c = Vec::with_capacity(blocks.len() + 16);
            master(&mut c, id::CLUSTER, |b| {
                uint(b, id::TIMECODE, start);
                b.extend_from_slice(&blocks);
            });
            self.out.write_all(&c)?;
        }
        Ok(())
    }

    /// Writes what is left, then the segment's size and the duration
    /// (`duration_ms`, how long the recording ran); returns the output.
    pub fn finish(mut self, duration_ms: u64) -> io::Result<W> {
        self.close_cluster()?;
        let end = self.out.stream_position()?;
        self.out.seek(SeekFrom::Start(self.segment_size_at))?;
        self.out.write_all(&size_8(end - self.segment_start))?;
        self.out.seek(SeekFrom::Start(self.duration_at))?;
        // The duration is in the timecode scale's unit: milliseconds.
        #[allow(clippy::cast_precision_loss)]
        let duration = duration_ms.max(self.last_ms) as f64;
        self.out.write_all(&duration.to_be_bytes())?;
        self.out.seek(SeekFrom::Start(end))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The size field of an element whose size is not known yet.
const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// `OpusHead` (RFC 7845): the codec private data of an Opus track.
fn opus_head() -> Vec<u8> {
    let mut h = Vec::with_capacity(19);
    h.extend_from_slice(b"OpusHead");
    h.push(1); // version
    h.push(2); // channels
    h.extend_from_slice(&OPUS_PRE_SKIP.to_le_bytes());
    h.extend_from_slice(&48_000u32.to_le_bytes()); // input sample rate
    h.extend_from_slice(&0i16.to_le_bytes()); // output gain
    h.push(0); // mapping family: mono or stereo
    h
}

/// The width and height of a VP8 key frame (RFC 6386, 9.1), or `None` for an
/// inter frame or a frame too short or malformed to be one.
pub fn vp8_key_frame_size(frame: &[u8]) -> Option<(u16, u16)> {
    let key = frame.first()? & 1 == 0;
    if !key || frame.get(3..6)? != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([*frame.get(6)?, *frame.get(7)?]) & 0x3fff;
    let h = u16::from_le_bytes([*frame.get(8)?, *frame.get(9)?]) & 0x3fff;
    (w > 0 && h > 0).then_some((w, h))
}

fn element_id(b: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|x| **x == 0).count().min(3);
    b.extend_from_slice(&bytes[skip..]);
}

/// An element size as the shortest vint that holds it.
fn size(b: &mut Vec<u8>, n: u64) {
    for len in 1..=8u32 {
        // A vint of `len` bytes holds 7 * len bits, all ones reserved.
        let max = (1u64 << (7 * len)) - 1;
        if n < max {
            let marked = n | (1u64 << (7 * len));
            let bytes = marked.to_be_bytes();
            b.extend_from_slice(&bytes[8 - len as usize..]);
            return;
        }
    }
    b.extend_from_slice(&size_8(n));
}

/// An element size as an 8-byte vint (for the patched segment size).
fn size_8(n: u64) -> [u8; 8] {
    let mut bytes = (n & 0x00FF_FFFF_FFFF_FFFF).to_be_bytes();
    bytes[0] = 0x01;
    bytes
}

fn bytes(b: &mut Vec<u8>, id: u32, data: &[u8]) {
    element_id(b, id);
    size(b, data.len() as u64);
    b.extend_from_slice(data);
}

fn uint(b: &mut Vec<u8>, id: u32, v: u64) {
    let all = v.to_be_bytes();
    let skip = all.iter().take_while(|x| **x == 0).count().min(7);
    bytes(b, id, &all[skip..]);
}

fn float(b: &mut Vec<u8>, id: u32, v: f64) {
    bytes(b, id, &v.to_be_bytes());
}

fn master(b: &mut Vec<u8>, id: u32, fill: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    fill(&mut inner);
    bytes(b, id, &inner);
}

#[cfg(test)]
mod tests;
