//! Recording a standard call over real WebSockets and a real media leg: Ann
//! asks to record, both devices hear it; Ann's side (a str0m peer, as a browser
//! would be: send-only Opus and VP8 over real UDP) sends its media to the
//! relay's media component; when she stops, the leg ends and the WebM is
//! listed for both people, readable by an independent demuxer, and refused to
//! anyone else. In an E2EE call nothing of it happens and no leg exists.

mod common;

use std::time::{Duration, Instant};

use common::*;
use shieldcall_media::sender::{Frames, Sender};
use shieldcall_proto::{CallId, CallMode, ClientMsg, ErrorCode, RelayMsg};
use str0m::media::Direction;

fn record(id: &CallId, on: bool) -> ClientMsg {
    ClientMsg::Record {
        call_id: id.clone(),
        on,
    }
}

/// A browser's media leg: a send-only peer with the default frames.
fn browser() -> (Sender, String) {
    Sender::offer(Direction::SendOnly, Direction::SendOnly, Frames::default()).expect("a peer")
}

/// `ws` offers a media leg for `id`; returns the peer, answered.
async fn open_leg(ws: &mut Client, id: &CallId) -> Sender {
    let (mut peer, offer) = browser();
    ws.send(&ClientMsg::MediaOffer {
        call_id: id.clone(),
        sdp: offer,
        captions: false,
    })
    .await;
    let RelayMsg::MediaAnswer { sdp, .. } = ws.recv().await else {
        panic!("no media answer")
    };
    peer.answer(&sdp).expect("the answer");
    peer
}

/// Sends `secs` of media in real time once connected; returns how long.
fn send_for(mut peer: Sender, secs: u64) -> u64 {
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs + 10) {
        peer.step(&mut buf, secs * 1000).expect("a step");
        if peer.sending_ms() > secs * 1000 {
            return peer.sending_ms();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("the media leg never connected");
}

#[tokio::test]
async fn a_recorded_call_leaves_a_webm_for_both_people_only() {
    let relay = start().await;
    relay.add_user("cat@a.test", false).await;
    let (mut ann, mut bob, id) = answered_call_in(&relay, CallMode::Standard).await;

    // Before anyone asked, no leg.
    let (_b, offer) = browser();
    ann.send(&ClientMsg::MediaOffer {
        call_id: id.clone(),
        sdp: offer,
        captions: false,
    })
    .await;
    assert_eq!(error_code(&ann.recv().await), Some(ErrorCode::WrongState));

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
        captions: false,
    })
    .await;
    assert_eq!(error_code(&ann.recv().await), Some(ErrorCode::WrongState));

    let peer = open_leg(&mut ann, &id).await;
    let media = relay
        .state
        .media_started()
        .expect("the media component")
        .clone();
    assert_eq!(media.legs().await, 1);
    let ran = tokio::task::spawn_blocking(move || send_for(peer, 2))
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

    // Both people's devices hear the file is there, with its id.
    let RelayMsg::RecordingReady { id: ready } = ann.recv().await else {
        panic!("no recording-ready")
    };
    assert_eq!(
        bob.recv().await,
        RelayMsg::RecordingReady { id: ready.clone() }
    );
    let anns = relay.recordings("ann@a.test").await;
    assert_eq!(anns[0]["id"], ready.as_str());
    assert_eq!(anns.len(), 1, "{anns:?}");
    assert_eq!(anns[0]["owner"], "ann@a.test");
    assert_eq!(anns[0]["peer"], "bob@a.test");
    assert!(anns[0]["duration_ms"].as_u64().is_some_and(|d| d >= 2000));
    assert_eq!(relay.recordings("bob@a.test").await, anns);
    assert!(relay.recordings("cat@a.test").await.is_empty());
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
    // All of it was served (streamed, with its length).
    assert_eq!(
        r.header("content-length"),
        Some(file.len().to_string().as_str())
    );
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
    refused_in_e2ee(&relay, (&mut ann, &mut bob), &id, record(&id, true), false).await;
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
            transcript: None,
            captions: false,
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
    assert_eq!(
        error_code(&ann.recv().await),
        Some(ErrorCode::UnavailableInE2ee)
    );
    ann.send(&ClientMsg::SetE2ee { enabled: false }).await;
    assert!(matches!(ann.recv().await, RelayMsg::Settings { .. }));
    for to in ["nobody@a.test", "ann@a.test"] {
        ann.send(&ClientMsg::Voicemail { to: to.into() }).await;
        assert_eq!(
            error_code(&ann.recv().await),
            Some(ErrorCode::WrongState),
            "{to}"
        );
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
    let peer = open_leg(&mut ann, &vm).await;
    // Bob cannot send into Ann's message.
    let (_other, offer) = browser();
    bob.send(&ClientMsg::MediaOffer {
        call_id: vm.clone(),
        sdp: offer,
        captions: false,
    })
    .await;
    assert_eq!(error_code(&bob.recv().await), Some(ErrorCode::NotYourCall));
    tokio::task::spawn_blocking(move || send_for(peer, 2))
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
    let list = relay.recordings("bob@a.test").await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["voicemail"], true);
    assert_eq!(list[0]["owner"], "ann@a.test");
    assert_eq!(list[0]["peer"], "bob@a.test");
    relay.stop().await;
}
