//! Recording a standard call over real WebSockets and a real media leg: Ann
//! asks to record, both devices hear it; Ann's side (a str0m peer, as a browser
//! would be: send-only Opus and VP8 over real UDP) sends its media to the
//! relay's media component; when she stops, the leg ends and the WebM is
//! listed for both people, readable by an independent demuxer, and refused to
//! anyone else. In an E2EE call nothing of it happens and no leg exists.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use shieldcall_proto::{CallId, CallMode, ClientMsg, ErrorCode, RelayMsg};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input, Output, Rtc, RtcConfig};

fn code(m: &RelayMsg) -> Option<ErrorCode> {
    match m {
        RelayMsg::Error { code, .. } => Some(*code),
        _ => None,
    }
}

fn record(id: &CallId, on: bool) -> ClientMsg {
    ClientMsg::Record {
        call_id: id.clone(),
        on,
    }
}

/// A browser's media leg: a send-only str0m peer on its own UDP socket.
struct Browser {
    rtc: Rtc,
    socket: UdpSocket,
    addr: SocketAddr,
    audio: Mid,
    video: Mid,
}

impl Browser {
    fn offer() -> (Self, String, str0m::change::SdpPendingOffer) {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_nonblocking(true).expect("nonblocking");
        let addr = socket.local_addr().expect("addr");
        let mut rtc = RtcConfig::new()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .clear_codecs()
            .enable_opus(true)
            .enable_vp8(true)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
        let mut api = rtc.sdp_api();
        let audio = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().expect("an offer");
        let b = Self {
            rtc,
            socket,
            addr,
            audio,
            video,
        };
        (b, offer.to_sdp_string(), pending)
    }

    fn pt(&mut self, mid: Mid, codec: Codec) -> Pt {
        let w = self.rtc.writer(mid).expect("a writer");
        w.payload_params()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
            .expect("negotiated")
    }

    /// Sends `secs` of media in real time once connected (a VP8 key frame of
    /// 320×240 each second); returns how long it ran.
    fn send(mut self, secs: u64) -> u64 {
        let start = Instant::now();
        let mut buf = [0u8; 2000];
        let mut connected_at = None;
        let (mut a, mut v) = (0u64, 0u64);
        while start.elapsed() < Duration::from_secs(secs + 10) {
            let now = Instant::now();
            while let Ok((n, from)) = self.socket.recv_from(&mut buf) {
                let r = Receive::new(Protocol::Udp, from, self.addr, &buf[..n]).expect("datagram");
                self.rtc
                    .handle_input(Input::Receive(now, r))
                    .expect("input");
            }
            self.rtc.handle_input(Input::Timeout(now)).expect("timeout");
            loop {
                match self.rtc.poll_output().expect("output") {
                    Output::Transmit(t) => {
                        let _ = self.socket.send_to(&t.contents, t.destination);
                    }
                    Output::Timeout(_) => break,
                    Output::Event(str0m::Event::Connected) => connected_at = Some(now),
                    Output::Event(_) => {}
                }
            }
            if let Some(at) = connected_at {
                let ms = now.duration_since(at).as_millis() as u64;
                if ms > secs * 1000 {
                    return ms;
                }
                let (opus, vp8) = (
                    self.pt(self.audio, Codec::Opus),
                    self.pt(self.video, Codec::Vp8),
                );
                while a * 20 <= ms {
                    let t = MediaTime::new(a * 960, Frequency::FORTY_EIGHT_KHZ);
                    let w = self.rtc.writer(self.audio).expect("audio");
                    w.write(opus, now, t, vec![0xfc, a as u8, 1])
                        .expect("audio");
                    a += 1;
                }
                while v * 40 <= ms {
                    let t = MediaTime::new(v * 3600, Frequency::NINETY_KHZ);
                    let frame = if v.is_multiple_of(25) {
                        let mut f =
                            vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];
                        f.extend(std::iter::repeat_n(v as u8, 200));
                        f
                    } else {
                        let mut f = vec![0x31, 0x01, 0x00];
                        f.extend(std::iter::repeat_n(v as u8, 80));
                        f
                    };
                    let w = self.rtc.writer(self.video).expect("video");
                    w.write(vp8, now, t, frame).expect("video");
                    v += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        panic!("the media leg never connected");
    }
}

#[tokio::test]
async fn a_recorded_call_leaves_a_webm_for_both_people_only() {
    let relay = start().await;
    relay.add_user("cat@a.test", false).await;
    let (mut ann, mut bob, id) = answered_call_in(&relay, CallMode::Standard).await;

    // Before anyone asked, no leg.
    let (_b, offer, _) = Browser::offer();
    ann.send(&ClientMsg::MediaOffer {
        call_id: id.clone(),
        sdp: offer,
    })
    .await;
    assert_eq!(code(&ann.recv().await), Some(ErrorCode::WrongState));

    ann.send(&record(&id, true)).await;
    let on = RelayMsg::Recording {
        call_id: id.clone(),
        on: true,
        by: Some("ann@a.test".into()),
    };
    assert_eq!(ann.recv().await, on);
    assert_eq!(bob.recv().await, on);

    // A broken offer is refused, and no file is left for it.
    ann.send(&ClientMsg::MediaOffer {
        call_id: id.clone(),
        sdp: "v=0\r\nnot an offer".into(),
    })
    .await;
    assert_eq!(code(&ann.recv().await), Some(ErrorCode::WrongState));

    let (browser, offer, pending) = Browser::offer();
    ann.send(&ClientMsg::MediaOffer {
        call_id: id.clone(),
        sdp: offer,
    })
    .await;
    let RelayMsg::MediaAnswer { sdp, .. } = ann.recv().await else {
        panic!("no media answer")
    };
    let mut browser = browser;
    browser
        .rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&sdp).expect("SDP"))
        .expect("answer");
    let media = relay
        .state
        .media_started()
        .expect("the media component")
        .clone();
    assert_eq!(media.legs().await, 1);
    let ran = tokio::task::spawn_blocking(move || browser.send(2))
        .await
        .expect("the browser");
    assert!(ran >= 2000);

    ann.send(&record(&id, false)).await;
    let off = RelayMsg::Recording {
        call_id: id.clone(),
        on: false,
        by: None,
    };
    assert_eq!(ann.recv().await, off);
    assert_eq!(bob.recv().await, off);
    // The leg ends within the media component's sweep (1 s).
    let deadline = Instant::now() + Duration::from_secs(5);
    while media.legs().await > 0 {
        assert!(Instant::now() < deadline, "the leg did not end");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let list = |user: &'static str| {
        let relay = &relay;
        async move {
            let cookie = relay.cookie_for(user).await;
            let r = relay
                .http("GET", "/api/recordings", &[("Cookie", &cookie)], "")
                .await;
            assert_eq!(r.status, 200);
            r.json()["recordings"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        }
    };
    let anns = list("ann@a.test").await;
    assert_eq!(anns.len(), 1, "{anns:?}");
    assert_eq!(anns[0]["owner"], "ann@a.test");
    assert_eq!(anns[0]["peer"], "bob@a.test");
    assert!(anns[0]["duration_ms"].as_u64().is_some_and(|d| d >= 2000));
    assert_eq!(list("bob@a.test").await, anns);
    assert!(list("cat@a.test").await.is_empty());
    let rec = anns[0]["id"].as_str().expect("id").to_string();
    let get = |user: &'static str| {
        let (relay, rec) = (&relay, rec.clone());
        async move {
            let cookie = relay.cookie_for(user).await;
            relay
                .http(
                    "GET",
                    &format!("/api/recordings/{rec}"),
                    &[("Cookie", &cookie)],
                    "",
                )
                .await
        }
    };
    let r = get("bob@a.test").await;
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("video/webm"))
    );
    assert_eq!(get("cat@a.test").await.status, 404);

    // The file itself, read by an independent demuxer.
    let dir = relay.stop().await;
    let file = std::fs::read(dir.join("recordings").join(format!("{rec}.webm"))).expect("the file");
    let mut mkv = matroska_demuxer::MatroskaFile::open(std::io::Cursor::new(file)).expect("WebM");
    assert_eq!(mkv.tracks().len(), 2);
    let mut frame = matroska_demuxer::Frame::default();
    let mut counts = [0u32; 3];
    while mkv.next_frame(&mut frame).expect("a frame") {
        counts[frame.track as usize] += 1;
    }
    assert!(counts[1] >= 90 && counts[2] >= 40, "{counts:?}");
}

#[tokio::test]
async fn an_e2ee_call_is_never_recorded_and_no_leg_exists() {
    let relay = start().await;
    let (mut ann, mut bob, id) = answered_call(&relay).await;
    ann.send(&record(&id, true)).await;
    assert_eq!(code(&ann.recv().await), Some(ErrorCode::UnavailableInE2ee));
    let (_b, offer, _) = Browser::offer();
    ann.send(&ClientMsg::MediaOffer {
        call_id: id.clone(),
        sdp: offer,
    })
    .await;
    assert_eq!(code(&ann.recv().await), Some(ErrorCode::UnavailableInE2ee));
    bob.expect_quiet(Duration::from_millis(150)).await;
    assert!(
        relay.state.media_started().is_none(),
        "a media socket was opened"
    );
    relay.stop().await;
}

#[test]
fn recordings_past_their_retention_are_deleted_with_their_description() {
    use shieldcall_relay::media::{RecordingInfo, expire, recordings_of};
    let dir = temp_dir();
    let recs = dir.join("recordings");
    std::fs::create_dir_all(&recs).expect("dir");
    let day = 24 * 3600;
    let now = 1_800_000_000;
    for (id, age_days) in [("0".repeat(32), 31), ("1".repeat(32), 29)] {
        let info = RecordingInfo {
            id: id.clone(),
            owner: "ann@a.test".into(),
            peer: "bob@a.test".into(),
            started_at: now - age_days * day,
            duration_ms: 4000,
            voicemail: false,
        };
        std::fs::write(recs.join(format!("{id}.webm")), b"webm").expect("file");
        std::fs::write(
            recs.join(format!("{id}.json")),
            serde_json::to_vec(&info).expect("json"),
        )
        .expect("description");
    }
    let thirty = Duration::from_secs(30 * 24 * 3600);
    assert_eq!(expire(&dir, now, thirty), 1);
    assert!(!recs.join(format!("{}.webm", "0".repeat(32))).exists());
    let left: Vec<String> = recordings_of(&dir, "bob@a.test")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, ["1".repeat(32)]);
    assert_eq!(expire(&dir, now, thirty), 0, "nothing more to delete");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_voicemail_after_a_decline_is_the_recipients() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    relay.add_user("bob@a.test", false).await;
    let (mut ann, _) = relay.device("ann@a.test").await;
    let (mut bob, _) = relay.device("bob@a.test").await;
    // Ann and Bob both on: their calls are E2EE, and so no voicemail.
    ann.send(&ClientMsg::Voicemail {
        to: "bob@a.test".into(),
    })
    .await;
    assert_eq!(code(&ann.recv().await), Some(ErrorCode::UnavailableInE2ee));
    ann.send(&ClientMsg::SetE2ee { enabled: false }).await;
    assert!(matches!(ann.recv().await, RelayMsg::Settings { .. }));
    for to in ["nobody@a.test", "ann@a.test"] {
        ann.send(&ClientMsg::Voicemail { to: to.into() }).await;
        assert_eq!(code(&ann.recv().await), Some(ErrorCode::WrongState), "{to}");
    }

    ann.send(&ClientMsg::Voicemail {
        to: "Bob@A.test".into(),
    })
    .await;
    let RelayMsg::Voicemail { call_id: vm, to } = ann.recv().await else {
        panic!("no voicemail id")
    };
    assert_eq!(to, "bob@a.test");
    bob.expect_quiet(Duration::from_millis(100)).await;
    let (browser, offer, pending) = Browser::offer();
    ann.send(&ClientMsg::MediaOffer {
        call_id: vm.clone(),
        sdp: offer,
    })
    .await;
    let RelayMsg::MediaAnswer { sdp, .. } = ann.recv().await else {
        panic!("no media answer")
    };
    let mut browser = browser;
    browser
        .rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&sdp).expect("SDP"))
        .expect("answer");
    // Bob cannot send into Ann's message.
    let (_other, offer, _) = Browser::offer();
    bob.send(&ClientMsg::MediaOffer {
        call_id: vm.clone(),
        sdp: offer,
    })
    .await;
    assert_eq!(code(&bob.recv().await), Some(ErrorCode::NotYourCall));
    tokio::task::spawn_blocking(move || browser.send(2))
        .await
        .expect("the browser");
    ann.send(&record(&vm, false)).await;
    assert_eq!(
        ann.recv().await,
        RelayMsg::Recording {
            call_id: vm,
            on: false,
            by: None
        }
    );
    assert_eq!(
        bob.recv().await,
        RelayMsg::VoicemailLeft {
            from: "ann@a.test".into()
        }
    );
    let media = relay.state.media_started().expect("media").clone();
    let deadline = Instant::now() + Duration::from_secs(5);
    while media.legs().await > 0 {
        assert!(Instant::now() < deadline, "the leg did not end");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cookie = relay.cookie_for("bob@a.test").await;
    let r = relay
        .http("GET", "/api/recordings", &[("Cookie", &cookie)], "")
        .await;
    let list = r.json()["recordings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["voicemail"], true);
    assert_eq!(list[0]["owner"], "ann@a.test");
    assert_eq!(list[0]["peer"], "bob@a.test");
    relay.stop().await;
}
