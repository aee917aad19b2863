//! The peer connection: carries out the call machine's [`PcCommand`](crate::call::PcCommand)s and turns the
//! browser's callbacks into [`Input`](crate::call::Input)s. It decides nothing.
//!
//! DTLS is judged from `getStats()`: the transport's `dtlsState` must be
//! `connected`, and the certificate stats it points at give the fingerprints DTLS
//! actually used. Chrome may report `connectionState == "connected"` for a moment
//! before a certificate mismatch fails the transport, so that event alone is never
//! taken as proof.

use js_sys::{Array, Reflect};
use shieldcall_proto::{Fingerprint, IceCandidate, IceServer};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Event, HtmlMediaElement, MediaStream, MediaStreamConstraints, MediaStreamTrack, RtcCertificate,
    RtcConfiguration, RtcIceCandidateInit, RtcPeerConnection, RtcPeerConnectionIceEvent,
    RtcRtpSender, RtcSdpType, RtcSessionDescriptionInit, RtcTrackEvent,
};

use crate::call::CertCheck;
use crate::cert::{certificate_fingerprint, fresh_certificate};

/// What the peer connection reports.
#[derive(Debug)]
pub enum PeerEvent {
    /// A local ICE candidate to send.
    Ice(IceCandidate),
    /// `connectionState` changed.
    State(String),
    /// A remote track arrived.
    Track,
}

/// DTLS details for the verification panel, from `getStats()`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DtlsInfo {
    /// The transport's `dtlsState`.
    pub state: String,
    /// Fingerprint of the certificate we presented.
    pub local: Option<Fingerprint>,
    /// Fingerprint of the certificate the peer presented.
    pub remote: Option<Fingerprint>,
    /// e.g. `FEFD` (DTLS 1.2).
    pub tls_version: String,
    /// e.g. `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256`.
    pub dtls_cipher: String,
    /// e.g. `AEAD_AES_128_GCM`.
    pub srtp_cipher: String,
    /// Where the certificates came from: `getStats()` (both), the DTLS
    /// transport's `getRemoteCertificates()` (the peer's only; `state` is then
    /// `RTCDtlsTransport.state`), or nowhere.
    pub check: CertCheck,
}

/// A peer connection with a fresh certificate and the local camera and microphone.
/// Owns its callbacks; [`Peer::close`] stops everything.
pub struct Peer {
    pc: RtcPeerConnection,
    local: Option<MediaStream>,
    /// Each sender and the local track it carries when not on hold.
    senders: Vec<(RtcRtpSender, MediaStreamTrack)>,
    _on_ice: Closure<dyn FnMut(RtcPeerConnectionIceEvent)>,
    _on_state: Closure<dyn FnMut(Event)>,
    _on_track: Closure<dyn FnMut(RtcTrackEvent)>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").finish_non_exhaustive()
    }
}

fn get(o: &JsValue, key: &str) -> JsValue {
    Reflect::get(o, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn get_str(o: &JsValue, key: &str) -> String {
    get(o, key).as_string().unwrap_or_default()
}

impl Peer {
    /// Makes the peer connection with `cert`, a certificate made for this call
    /// only (a fresh one when `None`); shows remote media in `remote_video`. Media is attached afterwards ([`Peer::attach`]), so
    /// the callee's commitment need not wait for the camera.
    pub async fn create(
        cert: Option<RtcCertificate>,
        ice_servers: &[IceServer],
        remote_video: &HtmlMediaElement,
        on_event: impl Fn(PeerEvent) + Clone + 'static,
    ) -> Result<(Self, Fingerprint), JsValue> {
        let cert = match cert {
            Some(c) => c,
            None => fresh_certificate().await?,
        };
        let fingerprint = certificate_fingerprint(&cert)?;
        let config = RtcConfiguration::new();
        config.set_certificates(&Array::of1(&cert));
        // `RTCIceServer` dictionaries, built by hand (no serialiser in the bundle).
        let servers = Array::new();
        for s in ice_servers {
            let o = js_sys::Object::new();
            let urls: Array = s.urls.iter().map(|u| JsValue::from_str(u)).collect();
            Reflect::set(&o, &"urls".into(), &urls)?;
            if let Some(u) = &s.username {
                Reflect::set(&o, &"username".into(), &JsValue::from_str(u))?;
            }
            if let Some(c) = &s.credential {
                Reflect::set(&o, &"credential".into(), &JsValue::from_str(c))?;
            }
            servers.push(&o);
        }
        Reflect::set(&config, &"iceServers".into(), &servers)?;
        Reflect::set(&config, &"bundlePolicy".into(), &"max-bundle".into())?;
        let pc = RtcPeerConnection::new_with_configuration(&config)?;

        let cb = on_event.clone();
        let on_ice = Closure::<dyn FnMut(RtcPeerConnectionIceEvent)>::new(
            move |e: RtcPeerConnectionIceEvent| {
                if let Some(c) = e.candidate() {
                    let candidate = c.candidate();
                    if !candidate.is_empty() {
                        cb(PeerEvent::Ice(IceCandidate {
                            candidate,
                            sdp_mid: c.sdp_mid(),
                            sdp_m_line_index: c.sdp_m_line_index(),
                            username_fragment: get(&c, "usernameFragment").as_string(),
                        }));
                    }
                }
            },
        );
        let cb = on_event.clone();
        let pc2 = pc.clone();
        let on_state = Closure::<dyn FnMut(Event)>::new(move |_| {
            let state = get_str(&pc2, "connectionState");
            cb(PeerEvent::State(state));
        });
        let remote = remote_video.clone();
        let cb = on_event;
        // A track the other side sent with no stream (a callee whose camera
        // opened after its answer) is shown in a stream of this peer's own.
        let own = MediaStream::new()?;
        let on_track = Closure::<dyn FnMut(RtcTrackEvent)>::new(move |e: RtcTrackEvent| {
            remote.set_src_object(Some(&track_stream(&e, &own)));
            cb(PeerEvent::Track);
        });
        pc.set_onicecandidate(Some(on_ice.as_ref().unchecked_ref()));
        pc.set_onconnectionstatechange(Some(on_state.as_ref().unchecked_ref()));
        pc.set_ontrack(Some(on_track.as_ref().unchecked_ref()));
        let peer = Self {
            pc,
            local: None,
            senders: Vec::new(),
            _on_ice: on_ice,
            _on_state: on_state,
            _on_track: on_track,
        };
        Ok((peer, fingerprint))
    }

    /// Sends `stream`'s tracks and shows it in `local_video` (the current
    /// call's preview; another leg of a group call shows none); the peer owns
    /// the stream from now on and stops it on close.
    ///
    /// A track goes into a sender the answer already negotiated and left
    /// empty ([`send_on_offered`]), or else is added.
    pub fn attach(&mut self, stream: MediaStream, local_video: Option<&HtmlMediaElement>) {
        for track in stream.get_tracks().iter() {
            if let Ok(track) = track.dyn_into::<MediaStreamTrack>() {
                let sender = send_track(&self.pc, &track, &stream);
                self.senders.push((sender, track));
            }
        }
        if let Some(v) = local_video {
            v.set_src_object(Some(&stream));
        }
        self.local = Some(stream);
    }

    /// Shows this connection's media again in `remote_video` and `local_video`
    /// (a held call that is current again after a consultation).
    pub fn show(&self, remote_video: &HtmlMediaElement, local_video: Option<&HtmlMediaElement>) {
        let tracks = Array::new();
        for r in self.pc.get_receivers().iter() {
            if let Ok(r) = r.dyn_into::<web_sys::RtcRtpReceiver>() {
                tracks.push(&r.track());
            }
        }
        if let Ok(stream) = MediaStream::new_with_tracks(&tracks) {
            remote_video.set_src_object(Some(&stream));
        }
        if let (Some(local), Some(v)) = (&self.local, local_video) {
            v.set_src_object(Some(local));
        }
    }

    /// A handle for async work that must not hold the owner borrowed.
    pub fn handle(&self) -> RtcPeerConnection {
        self.pc.clone()
    }

    /// The local camera and microphone, once attached (a handle).
    pub fn local_stream(&self) -> Option<MediaStream> {
        self.local.clone()
    }

    /// The senders and their tracks, for [`set_sending`] (handles, cheap to clone).
    pub fn senders(&self) -> Vec<(RtcRtpSender, MediaStreamTrack)> {
        self.senders.clone()
    }

    /// Turns the microphone (`audio`) or camera on or off; returns the new state.
    pub fn toggle(&self, audio: bool) -> bool {
        let Some(stream) = &self.local else {
            return false;
        };
        let tracks = if audio {
            stream.get_audio_tracks()
        } else {
            stream.get_video_tracks()
        };
        let mut on = false;
        for t in tracks.iter() {
            if let Ok(t) = t.dyn_into::<MediaStreamTrack>() {
                t.set_enabled(!t.enabled());
                on = t.enabled();
            }
        }
        on
    }

    /// Closes the connection and stops camera and microphone.
    pub fn close(&mut self) {
        self.pc.set_onicecandidate(None);
        self.pc.set_onconnectionstatechange(None);
        self.pc.set_ontrack(None);
        self.pc.close();
        if let Some(stream) = self.local.take() {
            stop(&stream);
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.close();
    }
}

/// Puts each sender's track back (`on`) or takes it off (`replaceTrack(null)`:
/// the sender stops sending packets at all; nothing is renegotiated, so the
/// connection and its certificates stay as they were).
pub async fn set_sending(
    senders: &[(RtcRtpSender, MediaStreamTrack)],
    on: bool,
) -> Result<(), JsValue> {
    for (sender, track) in senders {
        JsFuture::from(sender.replace_track(on.then_some(track))).await?;
    }
    Ok(())
}

/// Stops every track of `stream` (camera light off).
pub fn stop(stream: &MediaStream) {
    for t in stream.get_tracks().iter() {
        if let Ok(t) = t.dyn_into::<MediaStreamTrack>() {
            t.stop();
        }
    }
}

/// Asks for the camera and microphone now (the browser starts at once, so this
/// overlaps with whatever runs before the result is awaited).
pub fn start_local_media() -> Result<JsFuture, JsValue> {
    let devices = web_sys::window()
        .ok_or_else(|| JsValue::from_str("no window"))?
        .navigator()
        .media_devices()?;
    let constraints = MediaStreamConstraints::new();
    constraints.set_audio(&JsValue::TRUE);
    constraints.set_video(&JsValue::TRUE);
    Ok(JsFuture::from(
        devices.get_user_media_with_constraints(&constraints)?,
    ))
}

/// The camera and microphone, from [`start_local_media`].
pub async fn local_media(started: Result<JsFuture, JsValue>) -> Result<MediaStream, JsValue> {
    started?.await?.dyn_into()
}

fn description(kind: RtcSdpType, sdp: &str) -> RtcSessionDescriptionInit {
    let d = RtcSessionDescriptionInit::new(kind);
    d.set_sdp(sdp);
    d
}

/// `createOffer` + `setLocalDescription`; returns the local SDP.
pub async fn create_offer(pc: &RtcPeerConnection) -> Result<String, JsValue> {
    let offer = JsFuture::from(pc.create_offer()).await?;
    let sdp = get_str(&offer, "sdp");
    JsFuture::from(pc.set_local_description(&description(RtcSdpType::Offer, &sdp))).await?;
    Ok(local_sdp(pc).unwrap_or(sdp))
}

/// `setRemoteDescription(offer)`. The local tracks may be added afterwards: they
/// take the transceivers the offer made.
pub async fn set_remote_offer(pc: &RtcPeerConnection, offer: &str) -> Result<(), JsValue> {
    JsFuture::from(pc.set_remote_description(&description(RtcSdpType::Offer, offer))).await?;
    Ok(())
}

// Small enough to be shorter in JavaScript than as bindings (the bundle's
// budget); every function is documented where Rust declares it.
#[wasm_bindgen(
    inline_js = "export function send_on_offered(p){for(const t of p.getTransceivers())t.direction='sendrecv'}\
export function send_track(p,k,s){const t=p.getTransceivers().find(t=>!t.sender.track&&t.receiver.track.kind==k.kind);\
if(!t)return p.addTrack(k,s);t.sender.replaceTrack(k);return t.sender}\
export function track_stream(e,o){return e.streams[0]||(o.addTrack(e.track),o)}\
export function stats(r){return[...r.values()]}\
export function dtls_transport(p){for(const s of[...p.getSenders(),...p.getReceivers()])if(s.transport)return s.transport}\
export function remote_der(t){const c=t.getRemoteCertificates&&t.getRemoteCertificates();return c&&c[0]}"
)]
extern "C" {
    /// Makes every transceiver the offer created send as well as receive, so
    /// that the answer need not wait for the camera: its tracks go into these
    /// senders when it opens ([`Peer::attach`]), and nothing is renegotiated.
    /// Until then no media packet leaves.
    pub fn send_on_offered(pc: &RtcPeerConnection);
    /// Sends `track`: in a sender the answer negotiated and left empty
    /// ([`send_on_offered`]; `replaceTrack` settles at once), or else a new one.
    fn send_track(
        pc: &RtcPeerConnection,
        track: &MediaStreamTrack,
        stream: &MediaStream,
    ) -> RtcRtpSender;
    /// The stream a remote track belongs to, or `own` (with the track added)
    /// for a track sent with none.
    fn track_stream(e: &RtcTrackEvent, own: &MediaStream) -> MediaStream;
    /// Every statistic of a `getStats()` report.
    fn stats(report: &JsValue) -> Array;
    /// The DTLS transport of the connection's first sender or receiver that
    /// has one (`undefined` if none).
    fn dtls_transport(pc: &RtcPeerConnection) -> JsValue;
    /// The first certificate of the peer's chain as DTLS received it (DER, an
    /// `ArrayBuffer`), where the browser has `getRemoteCertificates()`.
    fn remote_der(transport: &JsValue) -> JsValue;
}

/// `createAnswer`, `setLocalDescription`; returns the local SDP.
pub async fn answer(pc: &RtcPeerConnection) -> Result<String, JsValue> {
    let answer = JsFuture::from(pc.create_answer()).await?;
    let sdp = get_str(&answer, "sdp");
    JsFuture::from(pc.set_local_description(&description(RtcSdpType::Answer, &sdp))).await?;
    Ok(local_sdp(pc).unwrap_or(sdp))
}

fn local_sdp(pc: &RtcPeerConnection) -> Option<String> {
    pc.local_description().map(|d| d.sdp())
}

/// `setRemoteDescription(answer)`.
pub async fn set_answer(pc: &RtcPeerConnection, answer: &str) -> Result<(), JsValue> {
    JsFuture::from(pc.set_remote_description(&description(RtcSdpType::Answer, answer))).await?;
    Ok(())
}

/// `addIceCandidate`.
pub async fn add_ice(pc: &RtcPeerConnection, c: &IceCandidate) -> Result<(), JsValue> {
    let init = RtcIceCandidateInit::new(&c.candidate);
    init.set_sdp_mid(c.sdp_mid.as_deref());
    init.set_sdp_m_line_index(c.sdp_m_line_index);
    if let Some(u) = &c.username_fragment {
        Reflect::set(&init, &"usernameFragment".into(), &JsValue::from_str(u))?;
    }
    JsFuture::from(pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init))).await?;
    Ok(())
}

/// Reads the DTLS transport and its certificates from `getStats()`.
pub async fn dtls_info(pc: &RtcPeerConnection) -> Result<DtlsInfo, JsValue> {
    let stats = stats(&JsFuture::from(pc.get_stats()).await?).to_vec();
    let by_id = |id: &str| stats.iter().find(|s| get_str(s, "id") == id).cloned();
    let fp_of = |id: String| -> Option<Fingerprint> {
        let cert = by_id(&id)?;
        if !get_str(&cert, "fingerprintAlgorithm").eq_ignore_ascii_case("sha-256") {
            return None;
        }
        get_str(&cert, "fingerprint").parse().ok()
    };
    let Some(transport) = stats.iter().find(|s| get_str(s, "type") == "transport") else {
        // No transport statistics: the DTLS transport itself.
        return Ok(dtls_transport_info(pc));
    };
    let local = fp_of(get_str(transport, "localCertificateId"));
    let remote = fp_of(get_str(transport, "remoteCertificateId"));
    let mut info = match (local, remote) {
        (Some(_), Some(_)) => DtlsInfo {
            state: get_str(transport, "dtlsState"),
            local,
            remote,
            check: CertCheck::Both,
            ..DtlsInfo::default()
        },
        // Transport statistics without certificate statistics (Firefox 153):
        // the peer's certificate from the DTLS transport, where it has it.
        _ => {
            let mut info = dtls_transport_info(pc);
            if info.state.is_empty() {
                info.state = get_str(transport, "dtlsState");
            }
            info
        }
    };
    info.tls_version = get_str(transport, "tlsVersion");
    info.dtls_cipher = get_str(transport, "dtlsCipher");
    info.srtp_cipher = get_str(transport, "srtpCipher");
    Ok(info)
}

/// The DTLS transport's state and, where the browser has
/// `RTCDtlsTransport.getRemoteCertificates()`, the fingerprint of the peer's
/// certificate (the first of the chain, as DTLS received it).
fn dtls_transport_info(pc: &RtcPeerConnection) -> DtlsInfo {
    let transport = dtls_transport(pc);
    if !transport.is_object() {
        return DtlsInfo::default();
    }
    let state = get_str(&transport, "state");
    let remote = remote_der(&transport)
        .dyn_into::<js_sys::ArrayBuffer>()
        .ok()
        .map(|der| Fingerprint::of_der(&js_sys::Uint8Array::new(&der).to_vec()));
    match remote {
        Some(fp) => DtlsInfo {
            state,
            remote: Some(fp),
            check: CertCheck::RemoteOnly,
            ..DtlsInfo::default()
        },
        None => DtlsInfo {
            state,
            ..DtlsInfo::default()
        },
    }
}
