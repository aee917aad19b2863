//! Fresh DTLS certificates for one call, and their SHA-256 fingerprints.
//!
//! A certificate is created for each call (`RTCPeerConnection.generateCertificate`,
//! ECDSA P-256) and never stored. Its fingerprint is what the SDP announces and what
//! the commitment and the security code are computed from.

use js_sys::{Array, Object, Promise, Reflect};
use shieldcall_proto::Fingerprint;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{RtcCertificate, RtcPeerConnection};

#[wasm_bindgen]
extern "C" {
    /// `RTCDtlsFingerprint`: `{algorithm, value}`.
    #[wasm_bindgen(js_name = RTCDtlsFingerprint)]
    type DtlsFingerprint;

    #[wasm_bindgen(method, getter, structural)]
    fn algorithm(this: &DtlsFingerprint) -> Option<String>;

    #[wasm_bindgen(method, getter, structural)]
    fn value(this: &DtlsFingerprint) -> Option<String>;

    /// `RTCCertificate`, seen through the methods `web-sys` lacks.
    #[wasm_bindgen(js_name = RTCCertificate)]
    type CertificateExt;

    /// `RTCCertificate.getFingerprints()`.
    #[wasm_bindgen(method, js_name = getFingerprints, catch)]
    fn get_fingerprints(this: &CertificateExt) -> Result<Array, JsValue>;
}

/// Creates a fresh ECDSA P-256 certificate for one call.
pub async fn fresh_certificate() -> Result<RtcCertificate, JsValue> {
    let algorithm = Object::new();
    Reflect::set(&algorithm, &"name".into(), &"ECDSA".into())?;
    Reflect::set(&algorithm, &"namedCurve".into(), &"P-256".into())?;
    let promise: Promise = RtcPeerConnection::generate_certificate_with_object(&algorithm)?;
    JsFuture::from(promise).await?.dyn_into::<RtcCertificate>()
}

/// The certificate's SHA-256 fingerprint, as the browser computes it.
pub fn certificate_fingerprint(cert: &RtcCertificate) -> Result<Fingerprint, JsValue> {
    let cert: &CertificateExt = cert.unchecked_ref();
    for fp in cert.get_fingerprints()?.iter() {
        let fp: DtlsFingerprint = fp.unchecked_into();
        if fp
            .algorithm()
            .is_some_and(|a| a.eq_ignore_ascii_case("sha-256"))
        {
            let value = fp.value().unwrap_or_default();
            return value
                .parse()
                .map_err(|e| JsValue::from_str(&format!("browser fingerprint: {e}")));
        }
    }
    Err(JsValue::from_str(
        "the certificate has no sha-256 fingerprint",
    ))
}
