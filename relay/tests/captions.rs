//! Live captions over real WebSockets, a real media leg and the real speech
//! recogniser (PocketSphinx in a child process): Ann turns captions on, both
//! devices hear it; Ann's side (a str0m peer sending real speech as Opus over
//! real UDP, as a browser would) opens its captions leg; both devices get her
//! words as captions; when captions stop, the transcript is listed for both
//! people. In an E2EE call, or on a relay without a recogniser, nothing of it
//! happens and no leg exists.
//!
//! The recogniser needs a Python with PocketSphinx: `cargo xtask test` makes
//! one and sets `SHIELDCALL_TEST_CAPTIONS_PYTHON`.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use shieldcall_media::sender::{Frames, Sender, speech, wav_pcm};
use shieldcall_proto::{CallId, CallMode, ClientMsg, ErrorCode, RelayMsg};
use shieldcall_relay::captions::{Heard, Recogniser};
use str0m::media::Direction;

/// The spoken phrase (see `tests/data/README.md`) and the word the
/// recogniser reliably hears in it.
const SPEECH: &[u8] = include_bytes!("data/speech.wav");
const WORD: &str = "tomorrow";

fn python() -> PathBuf {
    std::env::var_os("SHIELDCALL_TEST_CAPTIONS_PYTHON")
        .map(PathBuf::from)
        .expect(
            "the captions tests need a Python with PocketSphinx: run them with `cargo xtask test`, \
             or set SHIELDCALL_TEST_CAPTIONS_PYTHON=/path/to/python (pip install pocketsphinx==5.1.1)",
        )
}

fn captions(id: &CallId, on: bool) -> ClientMsg {
    ClientMsg::Captions {
        call_id: id.clone(),
        on,
    }
}

#[tokio::test]
async fn the_recogniser_hears_the_phrase_partially_then_finally() {
    let (mut r, mut heard) = Recogniser::start(&python()).expect("the recogniser");
    let pcm = wav_pcm(SPEECH).expect("the phrase");
    // As the media component sends it: 20 ms at a time, here five times
    // faster than it is spoken (the queue holds 4 s; nothing is dropped).
    for chunk in pcm.chunks(320) {
        r.feed(7, chunk);
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    assert!(r.close(7));
    let mut partial = false;
    let mut done = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, heard.recv()).await {
            Ok(Some(Heard::Caption {
                stream: 7,
                text,
                done: false,
            })) => partial |= !text.is_empty(),
            Ok(Some(Heard::Caption {
                stream: 7,
                text,
                done: true,
            })) => done = Some(text),
            Ok(Some(Heard::Closed { stream: 7 })) => break,
            other => panic!("{other:?}"),
        }
    }
    assert!(partial, "partial captions came before the final one");
    let text = done.expect("a final caption");
    assert!(text.contains(WORD), "{text:?}");
    assert_eq!(r.dropped, 0);
}

/// Ann's captions leg sending the phrase in a loop; runs until `stop`.
fn speak(mut peer: Sender, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let mut buf = [0u8; 2048];
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        peer.step(&mut buf, u64::MAX).expect("a step");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[tokio::test]
async fn captions_reach_both_people_and_leave_a_transcript() {
    let py = python();
    let relay = start_with(temp_dir(), |c| c.captions_python = Some(py)).await;
    relay.add_user("cat@a.test", false).await;
    let (mut ann, mut bob, id) = answered_call_in(&relay, CallMode::Standard).await;

    // Before anyone asked, no captions leg.
    let (_p, offer) =
        Sender::offer(Direction::SendOnly, Direction::Inactive, Frames::default()).expect("a peer");
    let offer_msg = |sdp: String| ClientMsg::MediaOffer {
        call_id: id.clone(),
        sdp,
        captions: true,
    };
    ann.send(&offer_msg(offer)).await;
    assert_eq!(error_code(&ann.recv().await), Some(ErrorCode::WrongState));
    // The generic feature message names the right one.
    bob.send(&ClientMsg::Feature {
        call_id: id.clone(),
        feature: shieldcall_proto::CallFeature::Transcription,
    })
    .await;
    assert_eq!(error_code(&bob.recv().await), Some(ErrorCode::WrongState));

    ann.send(&captions(&id, true)).await;
    let on = RelayMsg::Captions {
        call_id: id.clone(),
        on: true,
        by: Some("ann@a.test".into()),
    };
    assert_eq!(ann.recv().await, on);
    assert_eq!(bob.recv().await, on);

    let (mut peer, offer) =
        Sender::offer(Direction::SendOnly, Direction::Inactive, Frames::default()).expect("a peer");
    peer.speak(speech(SPEECH).expect("Opus"));
    ann.send(&offer_msg(offer)).await;
    let RelayMsg::MediaAnswer {
        sdp,
        captions: true,
        ..
    } = ann.recv().await
    else {
        panic!("no captions answer")
    };
    peer.answer(&sdp).expect("the answer");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let speaking = {
        let stop = stop.clone();
        std::thread::spawn(move || speak(peer, stop))
    };

    // Both hear Ann's words, partial first, then final.
    for ws in [&mut bob, &mut ann] {
        let mut partial = false;
        let deadline = Instant::now() + Duration::from_secs(30);
        let text = loop {
            assert!(Instant::now() < deadline, "no final caption in 30 s");
            match ws.recv().await {
                RelayMsg::Caption {
                    call_id,
                    from,
                    text,
                    done,
                } => {
                    assert_eq!((call_id, from.as_str()), (id.clone(), "ann@a.test"));
                    if done {
                        break text;
                    }
                    partial = true;
                }
                other => panic!("{other:?}"),
            }
        };
        assert!(partial, "partial captions first");
        assert!(text.contains(WORD), "{text:?}");
    }

    ann.send(&captions(&id, false)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    speaking.join().expect("the peer");
    let media = relay
        .state
        .media_started()
        .expect("the media component")
        .clone();
    let deadline = Instant::now() + Duration::from_secs(5);
    while media.legs().await > 0 {
        assert!(Instant::now() < deadline, "the leg did not end");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The transcript, listed for both people and nobody else, has no file.
    let anns = relay
        .recordings_within("ann@a.test", Duration::from_secs(10))
        .await;
    assert_eq!(anns.len(), 1, "{anns:?}");
    assert_eq!(anns[0]["captions"], true);
    assert_eq!(anns[0]["owner"], "ann@a.test");
    let transcript = anns[0]["transcript"].as_str().expect("a transcript");
    assert!(transcript.contains(WORD), "{transcript:?}");
    assert_eq!(relay.recordings("bob@a.test").await, anns);
    assert!(relay.recordings("cat@a.test").await.is_empty());
    let cookie = relay.cookie_for("bob@a.test").await;
    let rec = anns[0]["id"].as_str().expect("id");
    let file = relay
        .http(
            "GET",
            &format!("/api/recordings/{rec}"),
            &[("Cookie", &cookie)],
            "",
        )
        .await;
    assert_eq!(file.status, 404, "a transcript has no media file");
    relay.stop().await;
}

#[tokio::test]
async fn no_captions_in_an_e2ee_call_nor_without_a_recogniser() {
    let py = python();
    let relay = start_with(temp_dir(), |c| c.captions_python = Some(py)).await;
    let (mut ann, mut bob, id) = answered_call(&relay).await;
    refused_in_e2ee(&relay, (&mut ann, &mut bob), &id, captions(&id, true), true).await;
    relay.stop().await;

    // A relay without a recogniser says so, in a standard call.
    let relay = start().await;
    let (mut ann, mut bob, id) = answered_call_in(&relay, CallMode::Standard).await;
    ann.send(&captions(&id, true)).await;
    assert_eq!(error_code(&ann.recv().await), Some(ErrorCode::NotDeployed));
    bob.expect_quiet(Duration::from_millis(150)).await;
    assert!(relay.state.media_started().is_none());
    relay.stop().await;
}

#[tokio::test]
async fn a_voicemail_is_kept_with_its_transcript() {
    let py = python();
    let relay = start_with(temp_dir(), |c| c.captions_python = Some(py)).await;
    relay.add_user("ann@a.test", false).await;
    relay.add_user("bob@a.test", false).await;
    let (mut ann, _) = relay.device("ann@a.test").await;
    let (mut bob, _) = relay.device("bob@a.test").await;
    ann.send(&ClientMsg::SetE2ee { enabled: false }).await;
    assert!(matches!(ann.recv().await, RelayMsg::Settings { .. }));
    ann.send(&ClientMsg::Voicemail {
        to: "bob@a.test".into(),
    })
    .await;
    let RelayMsg::Voicemail { call_id: vm, .. } = ann.recv().await else {
        panic!("no voicemail id")
    };
    // Ann's camera and microphone, as a browser sends a voicemail; she says
    // the phrase once (6.8 s) and stops.
    let (mut peer, offer) =
        Sender::offer(Direction::SendOnly, Direction::SendOnly, Frames::default()).expect("a peer");
    let voice = speech(SPEECH).expect("Opus");
    let once = voice.len() as u64 * 20;
    peer.speak(voice);
    ann.send(&ClientMsg::MediaOffer {
        call_id: vm.clone(),
        sdp: offer,
        captions: false,
    })
    .await;
    let RelayMsg::MediaAnswer { sdp, .. } = ann.recv().await else {
        panic!("no media answer")
    };
    peer.answer(&sdp).expect("the answer");
    tokio::task::spawn_blocking(move || {
        let mut buf = [0u8; 2048];
        let start = Instant::now();
        while peer.sending_ms() < once {
            assert!(start.elapsed() < Duration::from_secs(30), "never connected");
            peer.step(&mut buf, once).expect("a step");
            std::thread::sleep(Duration::from_millis(2));
        }
    })
    .await
    .expect("the browser");
    ann.send(&ClientMsg::Record {
        call_id: vm,
        on: false,
    })
    .await;
    assert!(matches!(bob.recv().await, RelayMsg::VoicemailLeft { .. }));
    // The recording is listed once its transcript is written (the
    // recogniser's last words come within a few seconds).
    let list = relay
        .recordings_within("bob@a.test", Duration::from_secs(15))
        .await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["voicemail"], true);
    assert!(list[0].get("captions").is_none(), "a file to play");
    let transcript = list[0]["transcript"].as_str().expect("a transcript");
    assert!(transcript.contains(WORD), "{transcript:?}");
    let rec = list[0]["id"].as_str().expect("id");
    let cookie = relay.cookie_for("bob@a.test").await;
    let file = relay
        .http(
            "GET",
            &format!("/api/recordings/{rec}"),
            &[("Cookie", &cookie)],
            "",
        )
        .await;
    assert_eq!(file.status, 200);
    relay.stop().await;
}
