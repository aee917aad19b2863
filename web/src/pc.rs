//! Carries out the peer-connection commands of every call this tab has (the
//! current one, a call held for a consultation, the other legs of a group
//! call), one at a time per call and in order, and turns each connection's
//! events into inputs for its own machine. A call is known by its generation
//! ([`crate::page::Line::generation`]); a command, an event or a late result of a call that
//! is gone is dropped, and never touches another call's connection.
//!
//! What a command yields and what a connection reports go to the machine
//! through the [`Feed`] the caller (`calling`) hands in: this module runs
//! connections and knows nothing of how calls are fed.

use std::rc::Rc;

use crate::dom::spawn as spawn_local;
use wasm_bindgen::prelude::*;

use crate::call::{CertCheck, Input, PcCommand};
use crate::dom::{js_text, sleep};
use crate::page::Shared;
use crate::rtc::{self, Peer, PeerEvent};

/// Feeds call `generation`'s machine with an input (`calling::feed_gen`).
pub(crate) type Feed = fn(&Shared, u32, Input);

/// Runs call `generation`'s queued commands one at a time, in order.
pub(crate) fn run(app: &Shared, generation: u32, feed: Feed) {
    let cmd = {
        let mut a = app.borrow_mut();
        let Some(s) = a.slot(generation) else { return };
        if *s.busy {
            return;
        }
        let Some(cmd) = s.queue.pop_front() else {
            return;
        };
        *s.busy = true;
        cmd
    };
    let a = app.clone();
    spawn_local(async move {
        let input = exec(&a, cmd, generation, feed).await;
        let here = match a.borrow_mut().slot(generation) {
            Some(s) => {
                *s.busy = false;
                true
            }
            None => false,
        };
        if let (true, Some(input)) = (here, input) {
            feed(&a, generation, input);
        }
        run(&a, generation, feed);
    });
}

async fn exec(app: &Shared, cmd: PcCommand, generation: u32, feed: Feed) -> Option<Input> {
    let pc = app.borrow_mut().pc_of(generation);
    let result: Result<Option<Input>, JsValue> = match (cmd, pc) {
        (PcCommand::Create, _) => return create(app, generation, feed).await,
        (PcCommand::Close, _) => {
            let mut a = app.borrow_mut();
            let current = match a.slot(generation) {
                Some(s) => {
                    *s.peer = None;
                    s.current
                }
                None => false,
            };
            if current {
                crate::dom::show(&a.ui.panel, false);
            }
            Ok(None)
        }
        (_, None) => Ok(None),
        (PcCommand::CreateOffer, Some(pc)) => {
            async {
                media_attached(app, generation).await?;
                let sdp = rtc::create_offer(&pc).await?;
                Ok(Some(Input::LocalOffer { sdp }))
            }
            .await
        }
        (PcCommand::AcceptOffer { sdp }, Some(pc)) => {
            async {
                // The answer does not wait for the camera, which may still be
                // opening: the offer's transceivers are made to send, and the
                // camera's tracks go into them when it opens (`Peer::attach`),
                // with nothing renegotiated.
                rtc::set_remote_offer(&pc, &sdp).await?;
                rtc::send_on_offered(&pc);
                let sdp = rtc::answer(&pc).await?;
                Ok(Some(Input::LocalAnswer { sdp }))
            }
            .await
        }
        (PcCommand::SetAnswer { sdp }, Some(pc)) => rtc::set_answer(&pc, &sdp).await.map(|()| None),
        (PcCommand::SetSending(on), Some(_)) => {
            let senders = app
                .borrow_mut()
                .slot(generation)
                .and_then(|s| s.peer.as_ref().map(Peer::senders));
            rtc::set_sending(&senders.unwrap_or_default(), on)
                .await
                .map(|()| None)
        }
        // A candidate the browser refuses is not fatal; others may still work.
        (PcCommand::AddIce(c), Some(pc)) => Ok(rtc::add_ice(&pc, &c).await.ok().and(None)),
    };
    result.unwrap_or(Some(Input::PcFailed))
}

/// `Create`: the camera is asked for first, so that it opens while the
/// certificate and the connection are made.
async fn create(app: &Shared, generation: u32, feed: Feed) -> Option<Input> {
    let media = rtc::start_local_media();
    let (servers, video, cert) = {
        let mut a = app.borrow_mut();
        let cert = a
            .current
            .as_mut()
            .filter(|l| l.generation == generation)
            .and_then(|l| l.cert.take());
        let servers = a.session.ice_servers.clone();
        let video = a.slot(generation).and_then(|s| s.video);
        (servers, video, cert)
    };
    let Some(video) = video else {
        discard(media);
        return None;
    };
    let weak = Rc::downgrade(app);
    let on_event = move |ev: PeerEvent| {
        let weak = weak.clone();
        spawn_local(async move {
            if let Some(a) = weak.upgrade() {
                on_peer(&a, ev, generation, feed);
            }
        });
    };
    let (peer, fp) = match Peer::create(cert, &servers, &video, on_event).await {
        Ok(created) => created,
        Err(e) => {
            discard(media);
            app.borrow().notice(&format!(
                "The connection could not be set up: {}",
                js_text(&e)
            ));
            return Some(Input::PcFailed);
        }
    };
    // Settles when the camera is attached (true) or could not be (false):
    // offers wait for it, answers do not.
    let mut settle = None;
    let attached = js_sys::Promise::new(&mut |resolve, _| settle = Some(resolve));
    {
        let mut a = app.borrow_mut();
        let Some(s) = a.slot(generation) else {
            discard(media);
            return None; // dropped with `peer`
        };
        *s.peer = Some(peer);
        *s.media = Some(attached);
    }
    // The peer exists: the callee's commitment (or the caller's offer
    // command, held by the machine until the callee commits) goes out now.
    feed(app, generation, Input::PeerReady { local: fp });
    let a = app.clone();
    spawn_local(async move {
        let ok = match rtc::local_media(media).await {
            Ok(stream) => {
                let mut a = a.borrow_mut();
                let preview = a.ui.local_video.clone();
                match a.slot(generation) {
                    Some(s) => match s.peer.as_mut() {
                        // Only the current call shows its camera in the preview.
                        Some(peer) => peer.attach(stream, s.current.then_some(&preview)),
                        None => rtc::stop(&stream),
                    },
                    None => rtc::stop(&stream),
                }
                true
            }
            Err(e) => {
                let here = a.borrow_mut().slot(generation).is_some();
                if here {
                    a.borrow().notice(&format!(
                        "Camera or microphone unavailable: {}",
                        js_text(&e)
                    ));
                    feed(&a, generation, Input::PcFailed);
                }
                false
            }
        };
        if let Some(settle) = settle {
            let _ = settle.call1(&JsValue::NULL, &JsValue::from_bool(ok));
        }
    });
    None
}

/// Stops the camera and microphone asked for by a peer that was not made.
fn discard(media: Result<wasm_bindgen_futures::JsFuture, JsValue>) {
    spawn_local(async move {
        if let Ok(stream) = rtc::local_media(media).await {
            rtc::stop(&stream);
        }
    });
}

/// Waits until call `generation`'s camera and microphone are attached.
async fn media_attached(app: &Shared, generation: u32) -> Result<(), JsValue> {
    let attached = app
        .borrow_mut()
        .slot(generation)
        .and_then(|s| s.media.clone());
    let Some(p) = attached else { return Ok(()) };
    match wasm_bindgen_futures::JsFuture::from(p).await?.as_bool() {
        Some(true) => Ok(()),
        _ => Err(JsValue::from_str("no camera or microphone")),
    }
}

fn on_peer(app: &Shared, ev: PeerEvent, generation: u32, feed: Feed) {
    if app.borrow_mut().slot(generation).is_none() {
        return;
    }
    match ev {
        PeerEvent::Ice(c) => feed(app, generation, Input::LocalIce(c)),
        PeerEvent::Track => {}
        PeerEvent::State(s) if s == "failed" => feed(app, generation, Input::PcFailed),
        PeerEvent::State(s) if s == "connected" => check_dtls(app, generation, feed),
        PeerEvent::State(_) => {}
    }
}

/// Waits for the DTLS transport to report `connected` in `getStats()` and feeds the
/// fingerprints it used. Looks every 25 ms; gives up (connection failed) after 10 s.
fn check_dtls(app: &Shared, generation: u32, feed: Feed) {
    let a = app.clone();
    spawn_local(async move {
        for _ in 0..400 {
            let Some(pc) = a.borrow_mut().pc_of(generation) else {
                return;
            };
            match rtc::dtls_info(&pc).await {
                Ok(info) if info.state == "connected" => {
                    let input = match info.check {
                        CertCheck::Both => Input::DtlsConnected {
                            local: info.local,
                            remote: info.remote,
                        },
                        CertCheck::RemoteOnly => Input::DtlsConnectedRemoteOnly {
                            remote: info.remote,
                        },
                        CertCheck::BrowserOnly => Input::DtlsConnectedUnobserved,
                    };
                    if let Some(s) = a.borrow_mut().slot(generation) {
                        *s.dtls = Some(info);
                    }
                    feed(&a, generation, input);
                    return;
                }
                Ok(info) if info.state == "failed" => {
                    feed(&a, generation, Input::PcFailed);
                    return;
                }
                _ => sleep(25).await,
            }
        }
        feed(&a, generation, Input::PcFailed);
    });
}
