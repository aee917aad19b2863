//! A media leg against a real WebRTC peer (a second str0m, as a browser would
//! be: send-only audio and video) over real UDP sockets on loopback: ICE,
//! DTLS-SRTP, Opus and VP8 frames in, a WebM file out that an independent
//! demuxer reads back with both tracks, the camera's size and the frames in
//! order. An offer that asks the server to send is refused.

use std::io::Cursor;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use matroska_demuxer::{Frame, MatroskaFile, TrackType};
use shieldcall_media::leg::{Leg, LegError, LegOutput, Sink};
use shieldcall_media::sender::{Frames, Sender, vp8_key};
use str0m::media::Direction;

fn socket() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_nonblocking(true).expect("nonblocking");
    let a = s.local_addr().expect("addr");
    (s, a)
}

/// Small frames, a key frame each second.
const SHAPE: Frames = Frames {
    audio: 3,
    key: 310,
    inter: 123,
    key_every: 25,
};

#[test]
fn a_leg_records_what_a_webrtc_peer_sends() {
    let (server_sock, server) = socket();
    let (mut peer, offer) =
        Sender::offer(Direction::SendOnly, Direction::SendOnly, SHAPE).expect("a peer");
    let (mut leg, answer) = Leg::accept(
        &offer,
        server,
        Sink::record(Cursor::new(Vec::new())),
        Instant::now(),
    )
    .expect("accepted");
    assert!(answer.contains("a=recvonly"), "{answer}");
    assert!(!answer.contains("a=sendonly") && !answer.contains("a=sendrecv"));
    peer.answer(&answer).expect("the answer");

    // Someone else throws datagrams at the server's socket all along: STUN-like,
    // DTLS-like and random bytes. The leg takes none of them and goes on.
    let (stranger, _) = socket();
    let junk: [&[u8]; 4] = [
        &[
            0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        ],
        &[22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1],
        &[0x80, 0x60, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4, 0xde, 0xad],
        b"garbage",
    ];
    let start = Instant::now();
    let mut buf = [0u8; 2000];
    let mut peer_buf = [0u8; 2000];
    // Two seconds of media: Opus every 20 ms, VP8 at 25 fps with a key frame
    // each second, sent in real time once DTLS is up.
    while start.elapsed() < Duration::from_secs(10) {
        let now = Instant::now();
        for j in junk {
            let _ = stranger.send_to(j, server);
        }
        while let Ok((n, from)) = server_sock.recv_from(&mut buf) {
            if from == stranger.local_addr().expect("addr") {
                assert!(
                    !leg.accepts(now, from, &buf[..n]),
                    "a stranger's datagram was taken"
                );
                // Even given to the leg, it neither panics nor ends it.
                let _ = leg.handle_receive(now, from, &buf[..n]);
                continue;
            }
            if leg.accepts(now, from, &buf[..n]) {
                leg.handle_receive(now, from, &buf[..n]).expect("leg input");
            }
        }
        leg.handle_timeout(now).expect("leg timeout");
        loop {
            match leg.poll_output().expect("leg output") {
                LegOutput::Transmit { to, data } => {
                    server_sock.send_to(&data, to).expect("send");
                }
                LegOutput::Timeout(_) => break,
                LegOutput::Closed => panic!("the leg closed"),
            }
        }
        peer.step(&mut peer_buf, 1990).expect("the peer");
        if peer.sent == (100, 50) && leg.frames().0 >= 90 && leg.frames().1 >= 45 {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(leg.is_connected(), "DTLS never came up");
    let (audio, video) = leg.frames();
    assert!(
        audio >= 90 && video >= 45,
        "recorded {audio} audio, {video} video frames"
    );

    let file = leg
        .finish(Instant::now())
        .expect("finish")
        .expect("a recording")
        .into_inner();
    let mut mkv = MatroskaFile::open(Cursor::new(file)).expect("a WebM file");
    let tracks = mkv.tracks().to_vec();
    assert_eq!(tracks.len(), 2);
    let video_track = tracks
        .iter()
        .find(|t| t.track_type() == TrackType::Video)
        .expect("a video track");
    let size = video_track.video().expect("video settings");
    assert_eq!(
        (size.pixel_width().get(), size.pixel_height().get()),
        (320, 240)
    );
    assert!(mkv.info().duration().is_some_and(|d| d >= 1900.0));
    let mut frame = Frame::default();
    let mut last = [0u64; 3];
    let mut counts = [0u64; 3];
    let mut first_video_key = None;
    while mkv.next_frame(&mut frame).expect("a frame") {
        let t = frame.track as usize;
        assert!(frame.timestamp >= last[t], "track {t} goes back in time");
        last[t] = frame.timestamp;
        counts[t] += 1;
        if t == 2 && first_video_key.is_none() {
            first_video_key = frame.is_keyframe;
            assert_eq!(
                frame.data,
                vp8_key(320, 240, 0, 310),
                "the first video frame is the first key frame, as sent"
            );
        }
    }
    assert_eq!((counts[1], counts[2]), (audio, video));
    assert_eq!(first_video_key, Some(true));
}

#[test]
fn an_offer_that_asks_the_server_to_send_is_refused() {
    let (_server_sock, server) = socket();
    for (a, v) in [
        (Direction::SendRecv, Direction::SendOnly),
        (Direction::SendOnly, Direction::RecvOnly),
    ] {
        let (_peer, offer) = Sender::offer(a, v, SHAPE).expect("a peer");
        let refused = Leg::accept(
            &offer,
            server,
            Sink::record(Cursor::new(Vec::new())),
            Instant::now(),
        );
        assert!(matches!(refused, Err(LegError::Offer(_))), "{a:?} {v:?}");
    }
    for garbage in ["", "v=0\r\n", "not sdp at all"] {
        let refused = Leg::accept(
            garbage,
            server,
            Sink::record(Cursor::new(Vec::new())),
            Instant::now(),
        );
        assert!(matches!(refused, Err(LegError::Offer(_))), "{garbage:?}");
    }
}
