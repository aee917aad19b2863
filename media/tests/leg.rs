//! A media leg against a real WebRTC peer (a second str0m, as a browser would
//! be: send-only audio and video) over real UDP sockets on loopback: ICE,
//! DTLS-SRTP, Opus and VP8 frames in, a WebM file out that an independent
//! demuxer reads back with both tracks, the camera's size and the frames in
//! order. An offer that asks the server to send is refused.

use std::io::Cursor;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use matroska_demuxer::{Frame, MatroskaFile, TrackType};
use shieldcall_media::leg::{Leg, LegError, LegOutput};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

fn socket() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_nonblocking(true).expect("nonblocking");
    let a = s.local_addr().expect("addr");
    (s, a)
}

/// The sending peer, as a browser's send-only connection to the server.
fn browser(
    addr: SocketAddr,
    audio: Direction,
    video: Direction,
) -> (Rtc, Mid, Mid, String, str0m::change::SdpPendingOffer) {
    let mut rtc = RtcConfig::new()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .clear_codecs()
        .enable_opus(true)
        .enable_vp8(true)
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
    let mut api = rtc.sdp_api();
    let a = api.add_media(MediaKind::Audio, audio, None, None, None);
    let v = api.add_media(MediaKind::Video, video, None, None, None);
    let (offer, pending) = api.apply().expect("an offer");
    (rtc, a, v, offer.to_sdp_string(), pending)
}

fn vp8_key(w: u16, h: u16, n: u8) -> Vec<u8> {
    let mut f = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
    f.extend_from_slice(&w.to_le_bytes());
    f.extend_from_slice(&h.to_le_bytes());
    f.extend(std::iter::repeat_n(n, 300));
    f
}

fn vp8_inter(n: u8) -> Vec<u8> {
    let mut f = vec![0x31, 0x01, 0x00];
    f.extend(std::iter::repeat_n(n, 120));
    f
}

/// The payload type the peer negotiated for `codec` on `mid`.
fn pt(rtc: &mut Rtc, mid: Mid, codec: Codec) -> str0m::media::Pt {
    let w = rtc.writer(mid).expect("a writer");
    w.payload_params()
        .find(|p| p.spec().codec == codec)
        .map(|p| p.pt())
        .expect("the codec was negotiated")
}

#[test]
fn a_leg_records_what_a_webrtc_peer_sends() {
    let (server_sock, server) = socket();
    let (client_sock, client) = socket();
    let (mut peer, amid, vmid, offer, pending) =
        browser(client, Direction::SendOnly, Direction::SendOnly);
    let (mut leg, answer) =
        Leg::accept(&offer, server, Cursor::new(Vec::new()), Instant::now()).expect("accepted");
    assert!(answer.contains("a=recvonly"), "{answer}");
    assert!(!answer.contains("a=sendonly") && !answer.contains("a=sendrecv"));
    peer.sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).expect("SDP"))
        .expect("the answer");

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
    let mut peer_connected = false;
    let mut sent = (0u32, 0u32);
    let (mut opus, mut vp8) = (None, None);
    let mut buf = [0u8; 2000];
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
        while let Ok((n, from)) = client_sock.recv_from(&mut buf) {
            let r = Receive::new(Protocol::Udp, from, client, &buf[..n]).expect("datagram");
            peer.handle_input(Input::Receive(now, r))
                .expect("peer input");
        }
        leg.handle_timeout(now).expect("leg timeout");
        peer.handle_input(Input::Timeout(now))
            .expect("peer timeout");
        loop {
            match leg.poll_output().expect("leg output") {
                LegOutput::Transmit { to, data } => {
                    server_sock.send_to(&data, to).expect("send");
                }
                LegOutput::Timeout(_) => break,
                LegOutput::Closed => panic!("the leg closed"),
            }
        }
        loop {
            match peer.poll_output().expect("peer output") {
                Output::Transmit(t) => {
                    client_sock
                        .send_to(&t.contents, t.destination)
                        .expect("send");
                }
                Output::Timeout(_) => break,
                Output::Event(Event::Connected) => peer_connected = true,
                Output::Event(_) => {}
            }
        }
        if peer_connected && leg.is_connected() {
            let opus = *opus.get_or_insert_with(|| pt(&mut peer, amid, Codec::Opus));
            let vp8 = *vp8.get_or_insert_with(|| pt(&mut peer, vmid, Codec::Vp8));
            let media_ms = now.saturating_duration_since(start).as_millis() as u64;
            while u64::from(sent.0) * 20 <= media_ms && sent.0 < 100 {
                let t = MediaTime::new(
                    u64::from(sent.0) * 960,
                    str0m::media::Frequency::FORTY_EIGHT_KHZ,
                );
                let frame = vec![0xfc, sent.0 as u8, 0x55];
                peer.writer(amid)
                    .expect("audio writer")
                    .write(opus, now, t, frame)
                    .expect("audio");
                sent.0 += 1;
            }
            while u64::from(sent.1) * 40 <= media_ms && sent.1 < 50 {
                let t = MediaTime::new(
                    u64::from(sent.1) * 3600,
                    str0m::media::Frequency::NINETY_KHZ,
                );
                let frame = if sent.1.is_multiple_of(25) {
                    vp8_key(320, 240, sent.1 as u8)
                } else {
                    vp8_inter(sent.1 as u8)
                };
                peer.writer(vmid)
                    .expect("video writer")
                    .write(vp8, now, t, frame)
                    .expect("video");
                sent.1 += 1;
            }
            if sent == (100, 50) && leg.frames().0 >= 90 && leg.frames().1 >= 45 {
                break;
            }
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
                vp8_key(320, 240, 0),
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
    let (_client_sock, client) = socket();
    for (a, v) in [
        (Direction::SendRecv, Direction::SendOnly),
        (Direction::SendOnly, Direction::RecvOnly),
    ] {
        let (_peer, _, _, offer, _) = browser(client, a, v);
        let refused = Leg::accept(&offer, server, Cursor::new(Vec::new()), Instant::now());
        assert!(matches!(refused, Err(LegError::Offer(_))), "{a:?} {v:?}");
    }
    for garbage in ["", "v=0\r\n", "not sdp at all"] {
        let refused = Leg::accept(garbage, server, Cursor::new(Vec::new()), Instant::now());
        assert!(matches!(refused, Err(LegError::Offer(_))), "{garbage:?}");
    }
}
