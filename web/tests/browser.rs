//! What only a browser can show: a real `RTCPeerConnection` with a fresh
//! certificate announces exactly that certificate's fingerprint in its SDP, and the
//! security code computed in Wasm matches the spec.
//!
//! Runs in headless Chromium through `cargo xtask test`.

#![cfg(target_arch = "wasm32")]

use shieldcall_proto::{Commitment, Fingerprint, extract_fingerprint, security_code};
use shieldcall_web::cert::{certificate_fingerprint, fresh_certificate};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use web_sys::{RtcConfiguration, RtcPeerConnection, RtcSessionDescriptionInit};

wasm_bindgen_test_configure!(run_in_browser);

async fn peer_with_fresh_certificate() -> (RtcPeerConnection, Fingerprint) {
    let cert = fresh_certificate().await.expect("generateCertificate");
    let fp = certificate_fingerprint(&cert).expect("fingerprint");
    let config = RtcConfiguration::new();
    config.set_certificates(&js_sys::Array::of1(&cert));
    let pc = RtcPeerConnection::new_with_configuration(&config).expect("RTCPeerConnection");
    (pc, fp)
}

async fn sdp_of(promise: js_sys::Promise) -> String {
    let desc = JsFuture::from(promise).await.expect("create offer/answer");
    js_sys::Reflect::get(&desc, &"sdp".into())
        .expect("sdp field")
        .as_string()
        .expect("sdp string")
}

#[wasm_bindgen_test]
async fn fresh_certificates_differ() {
    let a = certificate_fingerprint(&fresh_certificate().await.expect("cert")).expect("fp");
    let b = certificate_fingerprint(&fresh_certificate().await.expect("cert")).expect("fp");
    assert_ne!(a, b);
}

#[wasm_bindgen_test]
async fn offer_and_answer_carry_the_certificate_fingerprints() {
    let (caller, caller_fp) = peer_with_fresh_certificate().await;
    let (callee, callee_fp) = peer_with_fresh_certificate().await;
    caller.create_data_channel("probe");
    let offer = sdp_of(caller.create_offer()).await;
    assert_eq!(extract_fingerprint(&offer), Ok(caller_fp));

    let init = RtcSessionDescriptionInit::new(web_sys::RtcSdpType::Offer);
    init.set_sdp(&offer);
    JsFuture::from(callee.set_remote_description(&init))
        .await
        .expect("setRemoteDescription");
    let answer = sdp_of(callee.create_answer()).await;
    assert_eq!(extract_fingerprint(&answer), Ok(callee_fp));

    // The commitment the callee would send opens to the answer's fingerprint and
    // to nothing else.
    let commit = Commitment::to(&callee_fp);
    assert!(commit.opens_to(&extract_fingerprint(&answer).expect("answer fp")));
    assert!(!commit.opens_to(&caller_fp));

    let code = security_code(&caller_fp, &callee_fp)
        .expect("distinct")
        .to_string();
    assert_eq!(
        code,
        security_code(&callee_fp, &caller_fp)
            .expect("distinct")
            .to_string()
    );
    assert_eq!(code.len(), 23);
    caller.close();
    callee.close();
    let _ = caller.dyn_into::<js_sys::Object>();
}

#[wasm_bindgen_test]
fn security_code_in_wasm_matches_the_spec_vector() {
    let a: Fingerprint = "00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F".parse().expect("a");
    let b: Fingerprint = "20:21:22:23:24:25:26:27:28:29:2A:2B:2C:2D:2E:2F:30:31:32:33:34:35:36:37:38:39:3A:3B:3C:3D:3E:3F".parse().expect("b");
    assert_eq!(
        security_code(&a, &b).expect("distinct").to_string(),
        "11641 59886 82465 52428"
    );
}

/// The fenced examples of the protocol doc, by info string.
fn examples(kind: &str) -> Vec<String> {
    let doc = include_str!("../../docs/protocol.md");
    let fence = format!("```json {kind}\n");
    doc.split(&fence)
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap_or_default().to_string())
        .collect()
}

#[wasm_bindgen_test]
fn browser_codec_reads_every_relay_message_as_proto_does() {
    use shieldcall_proto::RelayMsg;
    use shieldcall_web::codec::decode_relay;
    let all = examples("relay");
    assert!(all.len() >= 16);
    for text in all {
        let ours = decode_relay(&text);
        let theirs = RelayMsg::decode(&text).map_err(|e| e.to_string());
        assert_eq!(ours.ok(), theirs.ok(), "{text}");
    }
    for bad in [
        "",
        "[]",
        "null",
        "{}",
        r#"{"type":"nope"}"#,
        r#"{"type":"pong","id":-1}"#,
        r#"{"type":"pong","id":1.5}"#,
        r#"{"type":"hangup","call_id":"c","reason":"bored"}"#,
        r#"{"type":"accepted","call_id":"c","commit":"00"}"#,
    ] {
        assert!(decode_relay(bad).is_err(), "{bad}");
    }
}

#[wasm_bindgen_test]
fn browser_codec_writes_every_client_message_as_proto_does() {
    use shieldcall_proto::ClientMsg;
    use shieldcall_web::codec::encode_client;
    let all = examples("client");
    assert!(all.len() >= 13);
    for text in all {
        let msg = ClientMsg::decode(&text).expect("documented example");
        let ours: serde_json::Value =
            serde_json::from_str(&encode_client(&msg).expect("encode")).expect("json");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(ours, doc, "{text}");
    }
}

#[wasm_bindgen_test]
fn browser_codec_enum_names_are_the_serde_names() {
    use shieldcall_proto::{CallMode, ErrorCode, HangupReason, RefuseReason, Status};
    use shieldcall_web::codec::{ERROR_CODES, HANGUP_REASONS, MODES, REFUSE_REASONS, STATUSES};
    fn check<T: serde::Serialize + Copy + PartialEq + std::fmt::Debug>(
        table: &[(&str, T)],
        variants: usize,
    ) {
        assert_eq!(table.len(), variants, "every variant is listed");
        for (name, value) in table {
            assert_eq!(
                serde_json::to_string(value).expect("serialize"),
                format!("\"{name}\"")
            );
        }
    }
    // Exhaustive matches: adding a variant fails to compile here until counted.
    let n_error = |e: ErrorCode| match e {
        ErrorCode::BadMessage
        | ErrorCode::TooLarge
        | ErrorCode::UnsupportedVersion
        | ErrorCode::HelloFirst
        | ErrorCode::RateLimited
        | ErrorCode::NotYourCall
        | ErrorCode::WrongState
        | ErrorCode::BadCommitment
        | ErrorCode::UnavailableInE2ee
        | ErrorCode::NotDeployed
        | ErrorCode::PolicyLocked
        | ErrorCode::NotAllowed
        | ErrorCode::SessionExpired
        | ErrorCode::TooManyDevices
        | ErrorCode::Internal => 15,
    };
    let n_refuse = |r: RefuseReason| match r {
        RefuseReason::E2eeRequired
        | RefuseReason::NotAllowed
        | RefuseReason::Offline
        | RefuseReason::Busy
        | RefuseReason::UnknownUser
        | RefuseReason::SelfCall
        | RefuseReason::NoAnswer
        | RefuseReason::Declined => 8,
    };
    let n_hangup = |h: HangupReason| match h {
        HangupReason::Normal
        | HangupReason::ConnectionFailed
        | HangupReason::Mitm
        | HangupReason::Unverifiable
        | HangupReason::PeerGone
        | HangupReason::Moved
        | HangupReason::NotPickedUp
        | HangupReason::Transferred => 8,
    };
    let n_status = |s: Status| match s {
        Status::Online | Status::Busy | Status::Offline | Status::Removed => 4,
    };
    let n_mode = |m: CallMode| match m {
        CallMode::E2ee | CallMode::Standard => 2,
    };
    check(ERROR_CODES, n_error(ErrorCode::Internal));
    check(REFUSE_REASONS, n_refuse(RefuseReason::Busy));
    check(HANGUP_REASONS, n_hangup(HangupReason::Normal));
    check(STATUSES, n_status(Status::Busy));
    check(MODES, n_mode(CallMode::E2ee));
}

/// The reconnect delay doubles from 0.5 s to at most 15 s, and each tab waits
/// a random share of it between half and all, so tabs cut off together spread
/// out.
#[wasm_bindgen_test]
fn reconnect_delays_double_with_jitter() {
    use shieldcall_web::session::backoff_ms;
    for (attempt, ceiling) in [(0, 500), (1, 1000), (3, 4000), (5, 15_000), (40, 15_000)] {
        assert_eq!(backoff_ms(attempt, 0.0), ceiling / 2, "attempt {attempt}");
        assert_eq!(
            backoff_ms(attempt, 0.999_999),
            ceiling - 1,
            "attempt {attempt}"
        );
    }
    // Not a random number: the shortest wait, never a longer or negative one.
    for odd in [f64::NAN, -1.0, 1.0, f64::INFINITY] {
        assert_eq!(backoff_ms(2, odd), 1000);
    }
    // A hundred tabs cut off at once come back spread over the window (the
    // chance that all draw in one third of it is (2/3)^100, about 2e-18).
    let delays: Vec<i32> = (0..100)
        .map(|_| backoff_ms(5, js_sys::Math::random()))
        .collect();
    let (min, max) = (
        *delays.iter().min().expect("delays"),
        *delays.iter().max().expect("delays"),
    );
    assert!((7500..10_000).contains(&min), "{min}");
    assert!((12_500..15_000).contains(&max), "{max}");
}
