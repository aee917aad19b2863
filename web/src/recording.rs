//! Recording and live captions in the page: the banner that says what the
//! server receives, the person's own agreement, and the media leg, a second
//! send-only peer connection to the server made only after that agreement
//! (camera and microphone for a recording, the microphone alone for captions;
//! see `docs/protocol.md`, "Recording" and "Live captions"). The call's own
//! connection is untouched. Each use has its own leg: `App::recording` and
//! `App::captions`.
//!
//! What it must never do: open a leg for an end-to-end encrypted call (the
//! relay says `recording` and `captions` only for standard calls, and this
//! checks the mode too), or send before its own person agreed.

use crate::dom::spawn as spawn_local;
use js_sys::{Array, Object, Reflect};
use shieldcall_proto::{CallId, CallMode, ClientMsg};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::RtcPeerConnection;

use crate::page::{App, Recording, Shared};
use crate::render::render;
use crate::rtc;

/// The app's recording, or with `captions` its captions.
fn slot(a: &mut App, captions: bool) -> &mut Option<Box<Recording>> {
    if captions {
        &mut a.captions
    } else {
        &mut a.recording
    }
}

/// "Leave a voicemail" after a call that did not connect.
pub(crate) fn leave_voicemail(app: &Shared) {
    let mut a = app.borrow_mut();
    let to = a.call().map(|c| c.view().peer.clone());
    if let (Some(to), None) = (to, &a.recording) {
        a.send(ClientMsg::Voicemail { to });
    }
}

/// `voicemail`: the message may be recorded now, under `call_id`: this
/// device's camera and microphone go to the server (the person asked).
pub(crate) fn voicemail(app: &Shared, call_id: CallId, to: String) {
    {
        let mut a = app.borrow_mut();
        let by = a.session.user();
        a.recording = Some(Box::new(Recording {
            said: Vec::new(),
            call_id,
            by,
            agreed: true,
            pc: None,
            voicemail_to: Some(to),
            stream: None,
        }));
    }
    let a = app.clone();
    spawn_local(async move {
        let opened = async {
            let stream = rtc::local_media(rtc::start_local_media()).await?;
            match a.borrow_mut().recording.as_mut() {
                Some(r) => r.stream = Some(stream.clone()),
                None => {
                    rtc::stop(&stream);
                    return Ok(());
                }
            }
            open_leg(&a, &stream, false).await
        };
        if let Err(e) = opened.await {
            a.borrow().notice(&format!(
                "The voicemail could not be recorded: {}",
                crate::dom::js_text(&e)
            ));
            stop(&a, false);
        }
        render(&a);
    });
    render(app);
}

/// "Record" (or "Stop recording"), "Live captions" (or "Stop captions") in
/// the features menu.
pub(crate) fn toggle(app: &Shared, captions: bool) {
    let mut a = app.borrow_mut();
    let on = slot(&mut a, captions).is_none();
    if let Some(call_id) = a.call().and_then(|c| c.id().cloned()) {
        a.send(if captions {
            ClientMsg::Captions { call_id, on }
        } else {
            ClientMsg::Record { call_id, on }
        });
    }
}

/// `recording` or `captions`: the call is recorded or captioned (asked by
/// `by`) or no longer is.
pub(crate) fn changed(app: &Shared, captions: bool, call_id: CallId, on: bool, by: Option<String>) {
    let agree = {
        let mut a = app.borrow_mut();
        let standard = a
            .call()
            .is_some_and(|c| c.id() == Some(&call_id) && c.view().mode == Some(CallMode::Standard));
        if !on || !standard {
            *slot(&mut a, captions) = None; // closes the leg
            drop(a);
            render(app);
            return;
        }
        let me = a.session.user();
        let by = by.unwrap_or_default();
        // Who asked agreed by asking; the other person is asked on screen.
        let mine = by == me;
        let s = slot(&mut a, captions);
        if s.as_ref().is_none_or(|r| r.call_id != call_id) {
            *s = Some(Box::new(Recording {
                said: Vec::new(),
                call_id,
                by,
                agreed: false,
                pc: None,
                voicemail_to: None,
                stream: None,
            }));
        }
        mine
    };
    if agree {
        allow(app, captions);
    }
    render(app);
}

/// This person agrees: their camera and microphone (for captions, the
/// microphone) go to the server.
pub(crate) fn allow(app: &Shared, captions: bool) {
    let stream = {
        let mut a = app.borrow_mut();
        let stream = a.peer().and_then(rtc::Peer::local_stream);
        let Some(r) = slot(&mut a, captions).as_mut().filter(|r| !r.agreed) else {
            return;
        };
        r.agreed = true;
        stream
    };
    let Some(stream) = stream else {
        app.borrow().notice("The camera and microphone are off.");
        return;
    };
    let a = app.clone();
    spawn_local(async move {
        if let Err(e) = open_leg(&a, &stream, captions).await {
            a.borrow()
                .notice(&format!("It could not start: {}", crate::dom::js_text(&e)));
        }
        render(&a);
    });
}

/// Makes the send-only connection (audio only for captions) and sends its
/// offer whole.
async fn open_leg(
    app: &Shared,
    stream: &web_sys::MediaStream,
    captions: bool,
) -> Result<(), JsValue> {
    let pc = RtcPeerConnection::new()?;
    let add = Reflect::get(&pc, &"addTransceiver".into())?.dyn_into::<js_sys::Function>()?;
    let tracks = if captions {
        stream.get_audio_tracks()
    } else {
        stream.get_tracks()
    };
    for track in tracks.iter() {
        let init = Object::new();
        Reflect::set(&init, &"direction".into(), &"sendonly".into())?;
        Reflect::set(&init, &"streams".into(), &Array::of1(stream))?;
        add.call2(&pc, &track, &init)?;
    }
    let sdp = rtc::create_offer(&pc).await?;
    let mut a = app.borrow_mut();
    let Some(r) = slot(&mut a, captions)
        .as_mut()
        .filter(|r| r.agreed && r.pc.is_none())
    else {
        pc.close(); // stopped meanwhile
        return Ok(());
    };
    r.pc = Some(pc);
    let call_id = r.call_id.clone();
    a.send(ClientMsg::MediaOffer {
        call_id,
        sdp,
        captions,
    });
    Ok(())
}

/// `media-answer`: the server's side of the leg.
pub(crate) fn answered(app: &Shared, call_id: CallId, sdp: String, captions: bool) {
    let pc = slot(&mut app.borrow_mut(), captions)
        .as_ref()
        .filter(|r| r.call_id == call_id)
        .and_then(|r| r.pc.clone());
    if let Some(pc) = pc {
        let a = app.clone();
        spawn_local(async move {
            if rtc::set_answer(&pc, &sdp).await.is_err() {
                a.borrow().notice("The server's answer was refused.");
            }
        });
    }
}

/// "Decline" or "Stop": the recording (captions) stops for both.
pub(crate) fn stop(app: &Shared, captions: bool) {
    let mut a = app.borrow_mut();
    if let Some(call_id) = slot(&mut a, captions).as_ref().map(|r| r.call_id.clone()) {
        a.send(if captions {
            ClientMsg::Captions { call_id, on: false }
        } else {
            ClientMsg::Record { call_id, on: false }
        });
    }
}

/// `caption`: what `from` said, shown under the videos (as text, never
/// markup) in place of what they said before.
pub(crate) fn heard(app: &Shared, call_id: &CallId, from: String, text: String, done: bool) {
    {
        let mut a = app.borrow_mut();
        let Some(c) = a.captions.as_mut().filter(|c| &c.call_id == call_id) else {
            return;
        };
        match c.said.iter_mut().find(|(who, ..)| *who == from) {
            Some(line) => (line.1, line.2) = (text, done),
            None => c.said.push((from, text, done)),
        }
    }
    crate::render::render_captions(&app.borrow());
}
