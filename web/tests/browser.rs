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
