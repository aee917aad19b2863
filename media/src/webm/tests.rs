//! The writer against an independent reader (`matroska-demuxer`): what is
//! written is what is read back, tracks, sizes, times, key flags and bytes.

use std::io::Cursor;

use matroska_demuxer::{Frame, MatroskaFile, TrackType};

use super::{CLUSTER_MS, MAX_FRAME, Track, WebmWriter, vp8_key_frame_size};

/// A VP8 key frame header for `w` × `h` followed by `fill` bytes.
fn vp8_key(w: u16, h: u16, fill: u8) -> Vec<u8> {
    let mut f = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
    f.extend_from_slice(&w.to_le_bytes());
    f.extend_from_slice(&h.to_le_bytes());
    f.extend(std::iter::repeat_n(fill, 40));
    f
}

/// A VP8 inter frame (bit 0 of the first byte set).
fn vp8_inter(fill: u8) -> Vec<u8> {
    let mut f = vec![0x31, 0x01, 0x00];
    f.extend(std::iter::repeat_n(fill, 20));
    f
}

/// A frame as written and read: track number, milliseconds, key, bytes.
type Written = (u64, u64, bool, Vec<u8>);

/// What a recording of `secs` seconds would hold: 20 ms Opus frames, 30 fps
/// video with a key frame every second. Returns the file and what was written
/// as (track, ms, key, bytes).
fn record(secs: u64) -> (Vec<u8>, Vec<Written>) {
    let mut w = WebmWriter::new(Cursor::new(Vec::new()), Some((320, 240))).expect("header");
    let mut wrote = Vec::new();
    let mut events: Vec<(u64, Track)> = (0..secs * 50)
        .map(|i| (i * 20, Track::Audio))
        .chain((0..secs * 30).map(|i| (i * 1000 / 30, Track::Video)))
        .collect();
    events.sort_by_key(|(ms, t)| (*ms, *t == Track::Video));
    for (n, (ms, track)) in events.into_iter().enumerate() {
        let fill = (n % 251) as u8;
        let (key, frame) = match track {
            Track::Audio => (true, vec![0xfc, fill, fill]),
            Track::Video if ms % 1000 == 0 => (true, vp8_key(320, 240, fill)),
            Track::Video => (false, vp8_inter(fill)),
        };
        w.write(track, ms, key, &frame).expect("frame");
        let number = match track {
            Track::Audio => 1,
            Track::Video => 2,
        };
        wrote.push((number, ms, key, frame));
    }
    let file = w.finish(secs * 1000).expect("finish").into_inner();
    (file, wrote)
}

#[test]
fn a_recording_reads_back_frame_for_frame() {
    let (file, wrote) = record(12);
    let mut mkv = MatroskaFile::open(Cursor::new(file)).expect("a WebM file");
    assert_eq!(mkv.ebml_header().doc_type(), "webm");
    assert_eq!(mkv.info().timestamp_scale().get(), 1_000_000);
    assert_eq!(mkv.info().duration(), Some(12_000.0));
    let tracks = mkv.tracks().to_vec();
    assert_eq!(tracks.len(), 2);
    let audio = &tracks[0];
    assert_eq!(
        (
            audio.track_number().get(),
            audio.codec_id(),
            audio.track_type()
        ),
        (1, "A_OPUS", TrackType::Audio)
    );
    assert!(
        audio
            .codec_private()
            .is_some_and(|p| p.starts_with(b"OpusHead"))
    );
    let a = audio.audio().expect("audio settings");
    assert_eq!((a.sampling_frequency(), a.channels().get()), (48_000.0, 2));
    let video = &tracks[1];
    assert_eq!(
        (
            video.track_number().get(),
            video.codec_id(),
            video.track_type()
        ),
        (2, "V_VP8", TrackType::Video)
    );
    let v = video.video().expect("video settings");
    assert_eq!((v.pixel_width().get(), v.pixel_height().get()), (320, 240));

    let mut read = Vec::new();
    let mut frame = Frame::default();
    while mkv.next_frame(&mut frame).expect("a frame") {
        read.push((
            frame.track,
            frame.timestamp,
            frame.is_keyframe.unwrap_or(false),
            frame.data.clone(),
        ));
    }
    assert_eq!(read.len(), wrote.len());
    assert_eq!(read, wrote);
}

#[test]
fn long_recordings_are_cut_into_clusters_of_at_most_five_seconds() {
    let (file, _) = record(21);
    // Count the clusters by their ID in the file (a cluster ID cannot occur
    // inside these test frames).
    let clusters = file
        .windows(4)
        .filter(|w| *w == [0x1F, 0x43, 0xB6, 0x75])
        .count();
    // One per key frame (each second) at least, and none longer than 5 s.
    assert!(clusters >= 21, "{clusters} clusters");
    assert!(CLUSTER_MS <= i16::MAX as u64);
}

#[test]
fn late_frames_are_written_in_order_and_sound_only_has_no_video_track() {
    let mut w = WebmWriter::new(Cursor::new(Vec::new()), None).expect("header");
    w.write(Track::Audio, 100, true, &[1]).expect("frame");
    w.write(Track::Audio, 90, true, &[2]).expect("late frame");
    w.write(Track::Video, 95, true, &vp8_key(64, 48, 0))
        .expect("video without a video track is dropped");
    let file = w.finish(0).expect("finish").into_inner();
    let mut mkv = MatroskaFile::open(Cursor::new(file)).expect("a WebM file");
    assert_eq!(mkv.tracks().len(), 1);
    // A recording is at least as long as its last frame.
    assert_eq!(mkv.info().duration(), Some(100.0));
    let mut frame = Frame::default();
    let mut times = Vec::new();
    while mkv.next_frame(&mut frame).expect("a frame") {
        times.push(frame.timestamp);
    }
    assert_eq!(times, [100, 100]);
}

#[test]
fn an_oversized_frame_is_refused() {
    let mut w = WebmWriter::new(Cursor::new(Vec::new()), None).expect("header");
    assert!(
        w.write(Track::Audio, 0, true, &vec![0; MAX_FRAME + 1])
            .is_err()
    );
    assert!(w.write(Track::Audio, 0, true, &[0; 10]).is_ok());
}

#[test]
fn vp8_key_frames_give_their_size_and_nothing_else_does() {
    assert_eq!(vp8_key_frame_size(&vp8_key(640, 480, 7)), Some((640, 480)));
    assert_eq!(vp8_key_frame_size(&vp8_inter(7)), None);
    assert_eq!(vp8_key_frame_size(&vp8_key(640, 480, 7)[..9]), None);
    assert_eq!(vp8_key_frame_size(&[]), None);
    let mut no_start_code = vp8_key(640, 480, 7);
    no_start_code[4] = 0;
    assert_eq!(vp8_key_frame_size(&no_start_code), None);
    // The two top bits of each dimension are the scaling, not the size.
    let mut scaled = vp8_key(640, 480, 7);
    scaled[7] |= 0xc0;
    assert_eq!(vp8_key_frame_size(&scaled), Some((640, 480)));
}
