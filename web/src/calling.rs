//! The call, as the page runs it: feeds the call machine (`crate::call`) with
//! relay messages, peer events, user actions and time, and carries out what it
//! returns: frames to the relay, and peer-connection commands, run one at a time
//! in order. Late results of an earlier call are dropped by generation.

use std::rc::Rc;

use shieldcall_proto::{CallId, CallMode, Commitment};

use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;

use crate::app::{Line, Shared};
use crate::call::{Call, CertCheck, Ending, Input, Output, PcCommand, Phase};
use crate::dom::{self, show};
use crate::render::{render, render_call};
use crate::rtc::{self, Peer, PeerEvent};
use crate::texts;

pub(crate) fn place_call(app: &Shared, to: &str) {
    app.borrow().notice("");
    place_call_keeping_notice(app, to);
}

/// [`place_call`] without clearing the notice (a ring-back says why it calls).
fn place_call_keeping_notice(app: &Shared, to: &str) {
    {
        let mut a = app.borrow_mut();
        if a.call_active() {
            return;
        }
        let (call, out) = Call::outgoing(to, a.wish(), dom::now_ms());
        a.call = Some(call);
        a.new_generation();
        a.dtls = None;
        a.ring_back = None;
        drop(a);
        carry_out(app, out);
    }
    render(app);
}

/// `refer`: the other person transferred this call to `to`. The call ends here
/// and this device calls `to` with the token; if that call fails, `by` is called
/// back.
pub(crate) fn referred(app: &Shared, call_id: CallId, to: String, by: String, token: String) {
    let current = app
        .borrow()
        .call
        .as_ref()
        .is_some_and(|c| !c.is_ended() && c.id() == Some(&call_id));
    if !current {
        return;
    }
    feed(
        app,
        Input::Relay(shieldcall_proto::RelayMsg::Refer {
            call_id,
            to: to.clone(),
            by: by.clone(),
            token: token.clone(),
        }),
    );
    {
        let mut a = app.borrow_mut();
        if a.call_active() {
            return;
        }
        let (call, out) = Call::outgoing_transfer(&to, token, a.wish(), dom::now_ms());
        a.call = Some(call);
        a.new_generation();
        a.dtls = None;
        a.ring_back = Some(by);
        drop(a);
        carry_out(app, out);
    }
    render(app);
}

/// "Consult first" (consult transfer): the current call, which this user holds,
/// is set aside with its peer connection, and `to` is called about it. When
/// that call ends, the held one is current again ([`restore_held`]).
pub(crate) fn consult(app: &Shared, to: &str) {
    {
        let mut a = app.borrow_mut();
        let held_id = a.call.as_ref().and_then(|c| {
            let v = c.view();
            let fits = v.phase == Phase::Connected
                && v.mode == Some(CallMode::Standard)
                && v.hold.by_me
                && !v.hold_pending;
            c.id().filter(|_| fits).cloned()
        });
        if a.held.is_some() {
            a.notice("You are consulting someone already: transfer, or hang up this call first.");
            return;
        }
        let Some(held_id) = held_id else {
            a.notice("Put the call on hold first; then you can consult someone.");
            return;
        };
        let Some(call) = a.call.take() else { return };
        let line = Line {
            call,
            peer: a.peer.take(),
            generation: a.generation,
            dtls: a.dtls.take(),
            media_attached: a.media_attached.take(),
        };
        // A command of the held call may still be queued or running (its
        // `SetSending(false)` from the hold): a held call sends nothing.
        if let Some(senders) = line.peer.as_ref().map(Peer::senders) {
            spawn_local(async move {
                let _ = rtc::set_sending(&senders, false).await;
            });
        }
        a.held = Some(line);
        a.pc_queue.clear();
        let (call, out) = Call::outgoing_consult(to, held_id, a.wish(), dom::now_ms());
        a.call = Some(call);
        a.new_generation();
        a.ring_back = None;
        a.notice("");
        drop(a);
        carry_out(app, out);
    }
    render(app);
}

/// Starts the consultation "Consult first" asked for once the relay confirmed
/// the hold; forgets it if the hold was refused or the call is over.
fn consult_when_held(app: &Shared) {
    let ready = {
        let mut a = app.borrow_mut();
        let Some(to) = a.pending_consult.clone() else {
            return;
        };
        let state = a.call.as_ref().map(|c| {
            let v = c.view();
            (v.phase == Phase::Connected, v.hold.by_me, v.hold_pending)
        });
        match state {
            Some((true, true, false)) => {
                a.pending_consult = None;
                Some(to)
            }
            Some((true, false, true)) => None, // the relay has not answered yet
            _ => {
                a.pending_consult = None;
                None
            }
        }
    };
    if let Some(to) = ready {
        consult(app, &to);
    }
}

/// "Transfer" during a consultation: joins the person on hold with the one
/// consulted (`consult-transfer`); the relay then ends both calls here.
pub(crate) fn complete_transfer(app: &Shared) {
    let mut a = app.borrow_mut();
    let held = a.held.as_ref().and_then(|l| l.call.id().cloned());
    let consult = a
        .call
        .as_ref()
        .filter(|c| c.view().phase == Phase::Connected && c.consult_of() == held.as_ref())
        .and_then(|c| c.id().cloned());
    if let (Some(call_id), Some(consult)) = (held, consult) {
        a.send(shieldcall_proto::ClientMsg::ConsultTransfer { call_id, consult });
    }
}

/// The current call is over and a call was held for it: the held call is
/// current again (still on hold: the person takes it off), its media shown.
fn restore_held(app: &Shared) {
    let mut a = app.borrow_mut();
    let Some(line) = a.held.take() else { return };
    if line.call.is_ended() {
        return;
    }
    a.call = Some(line.call);
    a.peer = line.peer;
    a.generation = line.generation;
    a.dtls = line.dtls;
    a.media_attached = line.media_attached;
    a.pc_queue.clear();
    let a = &*a;
    if let Some(peer) = &a.peer {
        peer.show(&a.ui.remote_video, &a.ui.local_video);
    }
}

/// Feeds the held call (its other person hung up, the relay ended it, time,
/// the relay connection) and carries out what it says: messages, and only the
/// peer-connection commands a held call can have (close it; stop or resume
/// sending).
pub(crate) fn feed_held(app: &Shared, input: Input) {
    let out = {
        let mut a = app.borrow_mut();
        let now = dom::now_ms();
        let Some(line) = a.held.as_mut() else { return };
        let was_ended = line.call.is_ended();
        let out = line.call.handle(input, now);
        if !was_ended && line.call.is_ended() {
            let peer = line.call.view().peer.clone();
            let me = a.me.as_ref().map(|m| m.user.clone()).unwrap_or_default();
            if let Some(Phase::Ended(e)) = a.held.as_ref().map(|l| l.call.view().phase.clone()) {
                a.notice(&format!("Held call: {}", texts::ending(&e, &peer, &me)));
            }
        }
        out
    };
    for o in out {
        match o {
            Output::Send(m) => app.borrow_mut().send(m),
            Output::Pc(PcCommand::Close) => {
                if let Some(line) = app.borrow_mut().held.as_mut() {
                    line.peer = None;
                }
            }
            Output::Pc(PcCommand::SetSending(on)) => {
                let senders = app
                    .borrow()
                    .held
                    .as_ref()
                    .and_then(|l| l.peer.as_ref().map(Peer::senders));
                if let Some(senders) = senders {
                    spawn_local(async move {
                        let _ = rtc::set_sending(&senders, on).await;
                    });
                }
            }
            Output::Pc(_) => {}
        }
    }
    let over = app
        .borrow()
        .held
        .as_ref()
        .is_some_and(|l| l.call.is_ended());
    if over {
        app.borrow_mut().held = None;
        crate::app::load_history(app);
    }
}

/// `replaced`: the person who called this user joined them with their held
/// call (consult transfer). This call ends, and this device joins that one
/// with a fresh certificate, committing with `join`.
pub(crate) fn replaced(app: &Shared, msg: shieldcall_proto::RelayMsg) {
    let shieldcall_proto::RelayMsg::Replaced {
        call_id,
        join,
        peer,
        by,
        mode,
    } = &msg
    else {
        return;
    };
    let current = app
        .borrow()
        .call
        .as_ref()
        .is_some_and(|c| !c.is_ended() && c.id() == Some(call_id));
    if !current {
        return;
    }
    let (join, peer, by, mode) = (join.clone(), peer.clone(), by.clone(), *mode);
    feed(app, Input::Relay(msg));
    {
        let mut a = app.borrow_mut();
        if a.call_active() {
            return;
        }
        let (call, out) = Call::join(join, &peer, mode, Some(by), a.wish(), dom::now_ms());
        a.call = Some(call);
        a.new_generation();
        a.peer = None;
        a.pc_queue.clear();
        a.dtls = None;
        drop(a);
        carry_out(app, out);
    }
    render(app);
}

/// "Move here": this device takes over the call the user has on another device.
pub(crate) fn move_here(app: &Shared) {
    {
        let mut a = app.borrow_mut();
        if a.call_active() {
            return;
        }
        let Some(e) = a.elsewhere.clone() else { return };
        if e.mode != CallMode::Standard {
            return;
        }
        let (call, out) = Call::take_over(e.call_id, &e.peer, e.mode, a.wish(), dom::now_ms());
        a.call = Some(call);
        a.new_generation();
        a.pc_queue.clear();
        a.dtls = None;
        a.notice("");
        drop(a);
        carry_out(app, out);
    }
    render(app);
}

/// "Pick up": this device picks up the call parked under `code`.
pub(crate) fn pick_up(app: &Shared, code: u8) {
    {
        let mut a = app.borrow_mut();
        if a.call_active() {
            a.notice("Hang up first to pick up a parked call.");
            return;
        }
        let (call, out) = Call::pick_up(code, a.wish(), dom::now_ms());
        a.call = Some(call);
        a.new_generation();
        a.pc_queue.clear();
        a.dtls = None;
        a.notice("");
        drop(a);
        carry_out(app, out);
    }
    render(app);
}

/// `new-leg`: the other person moved the call to another device. The old peer
/// connection (and its certificate) goes; a fresh one offers to the new device.
pub(crate) fn new_leg(app: &Shared, call_id: CallId, peer: &str, commit: Commitment) {
    let out = {
        let mut a = app.borrow_mut();
        let current = a.call.as_ref().filter(|c| {
            !c.is_ended() && c.id() == Some(&call_id) && c.view().mode == Some(CallMode::Standard)
        });
        let Some(mode) = current.and_then(|c| c.view().mode) else {
            return;
        };
        let before = current.map(|c| c.view().peer.clone()).unwrap_or_default();
        let (call, out) = Call::new_leg(call_id, peer, mode, commit, a.wish(), dom::now_ms());
        a.call = Some(call);
        // Late results of the old leg are dropped by generation; its connection
        // closes (and its camera stops) as the peer is dropped.
        a.new_generation();
        a.peer = None;
        a.pc_queue.clear();
        a.dtls = None;
        a.notice(&if before == peer {
            format!("{peer} moved the call to another device: connecting afresh.")
        } else {
            format!("{before} transferred you to {peer}: connecting afresh.")
        });
        out
    };
    carry_out(app, out);
    render(app);
}

/// Feeds the call machine and carries out what it says.
pub(crate) fn feed(app: &Shared, input: Input) {
    if matches!(input, Input::Tick | Input::RelayUp | Input::RelayDown) {
        feed_held(app, input.clone());
    }
    let mut ended_now = false;
    let out = {
        let mut a = app.borrow_mut();
        let now = dom::now_ms();
        let Some(call) = a.call.as_mut() else { return };
        let was_ended = call.is_ended();
        let out = call.handle(input, now);
        if !was_ended && call.is_ended() {
            ended_now = true;
            let failed = matches!(
                call.view().phase,
                Phase::Ended(Ending::Refused { .. } | Ending::Declined)
            ) && call.view().role == crate::call::Role::Caller;
            let id = call.id().cloned();
            let not_moved = matches!(call.view().phase, Phase::Ended(Ending::NotMoved));
            // A call this device carried is over here: any "move here" for it is
            // stale (the relay tells only the other devices). A refused move
            // leaves the call where it was, still movable.
            if !not_moved && a.elsewhere.as_ref().map(|e| &e.call_id) == id.as_ref() {
                a.elsewhere = None;
            }
            let me = a.me.as_ref().map(|m| m.user.clone()).unwrap_or_default();
            if let Some(Phase::Ended(e)) = a.call.as_ref().map(|c| &c.view().phase) {
                let peer = a
                    .call
                    .as_ref()
                    .map(|c| c.view().peer.clone())
                    .unwrap_or_default();
                let t = texts::ending(e, &peer, &me);
                a.notice(&t);
            }
            // A transfer's call is over: if it failed, the transferor is called back.
            let back = a.ring_back.take().filter(|_| failed);
            if let Some(by) = back {
                let peer = a
                    .call
                    .as_ref()
                    .map(|c| c.view().peer.clone())
                    .unwrap_or_default();
                a.notice(&format!(
                    "The transfer to {peer} did not go through; calling {by} back."
                ));
                drop(a);
                carry_out(app, out);
                place_call_keeping_notice(app, &by);
                crate::app::load_history(app);
                return;
            }
        }
        out
    };
    carry_out(app, out);
    consult_when_held(app);
    if ended_now && app.borrow().held.is_some() {
        // A consultation is over: the held call is current again.
        restore_held(app);
        render(app);
    }
    render_call(&app.borrow());
    crate::app::sync_alert(app);
    if ended_now {
        // The relay recorded the call as it ended; the list shows it.
        crate::app::load_history(app);
    }
}

pub(crate) fn carry_out(app: &Shared, out: Vec<Output>) {
    for o in out {
        match o {
            Output::Send(m) => app.borrow_mut().send(m),
            Output::Pc(cmd) => app.borrow_mut().pc_queue.push_back(cmd),
        }
    }
    run_pc_queue(app);
}

/// Runs queued peer-connection commands one at a time, in order.
pub(crate) fn run_pc_queue(app: &Shared) {
    let (cmd, generation) = {
        let mut a = app.borrow_mut();
        if a.pc_busy {
            return;
        }
        let Some(cmd) = a.pc_queue.pop_front() else {
            return;
        };
        a.pc_busy = true;
        (cmd, a.generation)
    };
    let a = app.clone();
    spawn_local(async move {
        let input = exec(&a, cmd, generation).await;
        let current = {
            let mut app = a.borrow_mut();
            app.pc_busy = false;
            app.generation == generation
        };
        if let (true, Some(input)) = (current, input) {
            feed(&a, input);
        }
        run_pc_queue(&a);
    });
}

pub(crate) async fn exec(app: &Shared, cmd: PcCommand, generation: u32) -> Option<Input> {
    // A command of a call that is no longer current (it ended, or a held call
    // came back in its place) must not touch the current call's peer.
    if app.borrow().generation != generation {
        return None;
    }
    let pc = app.borrow().peer.as_ref().map(Peer::handle);
    let result: Result<Option<Input>, JsValue> = match (cmd, pc) {
        (PcCommand::Create, _) => {
            // The camera is asked for first, so that it opens while the
            // certificate and the connection are made.
            let media = rtc::start_local_media();
            let (servers, remote, cert) = {
                let mut a = app.borrow_mut();
                let cert = a
                    .prepared_cert
                    .take()
                    .filter(|(g, _)| *g == generation)
                    .map(|(_, c)| c);
                (a.ice_servers.clone(), a.ui.remote_video.clone(), cert)
            };
            let weak = Rc::downgrade(app);
            let on_event = move |ev: PeerEvent| {
                let weak = weak.clone();
                spawn_local(async move {
                    if let Some(a) = weak.upgrade() {
                        on_peer(&a, ev, generation);
                    }
                });
            };
            let (peer, fp) = match Peer::create(cert, &servers, &remote, on_event).await {
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
            // offers and answers wait for it, setting the remote offer does not.
            let mut settle = None;
            let attached = js_sys::Promise::new(&mut |resolve, _| settle = Some(resolve));
            {
                let mut a = app.borrow_mut();
                if a.generation != generation {
                    discard(media);
                    return None; // dropped with `peer`
                }
                a.peer = Some(peer);
                a.media_attached = Some(attached);
            }
            // The peer exists: the callee's commitment (or the caller's offer
            // command, held by the machine until the callee commits) goes out
            // now. The caller's camera opens while the call rings; the callee's
            // once they accept, while the offer is on its way.
            feed(app, Input::PeerReady { local: fp });
            let a = app.clone();
            spawn_local(async move {
                let ok = match rtc::local_media(media).await {
                    Ok(stream) => {
                        let mut a = a.borrow_mut();
                        let a = &mut *a;
                        match a.peer.as_mut().filter(|_| a.generation == generation) {
                            Some(peer) => peer.attach(stream, &a.ui.local_video),
                            None => rtc::stop(&stream),
                        }
                        true
                    }
                    Err(e) => {
                        let current = a.borrow().generation == generation;
                        if current {
                            a.borrow().notice(&format!(
                                "Camera or microphone unavailable: {}",
                                js_text(&e)
                            ));
                            feed(&a, Input::PcFailed);
                        }
                        false
                    }
                };
                if let Some(settle) = settle {
                    let _ = settle.call1(&JsValue::NULL, &JsValue::from_bool(ok));
                }
            });
            Ok(None)
        }
        (PcCommand::Close, _) => {
            let mut a = app.borrow_mut();
            a.peer = None;
            show(&a.ui.panel, false);
            Ok(None)
        }
        (_, None) => Ok(None),
        (PcCommand::CreateOffer, Some(pc)) => {
            async {
                media_attached(app).await?;
                let sdp = rtc::create_offer(&pc).await?;
                Ok(Some(Input::LocalOffer { sdp }))
            }
            .await
        }
        (PcCommand::AcceptOffer { sdp }, Some(pc)) => {
            async {
                // The offer is set while the camera may still be opening; the
                // answer (which must carry the tracks) waits for it.
                rtc::set_remote_offer(&pc, &sdp).await?;
                media_attached(app).await?;
                let sdp = rtc::answer(&pc).await?;
                Ok(Some(Input::LocalAnswer { sdp }))
            }
            .await
        }
        (PcCommand::SetAnswer { sdp }, Some(pc)) => rtc::set_answer(&pc, &sdp).await.map(|()| None),
        (PcCommand::SetSending(on), Some(_)) => {
            let senders = app.borrow().peer.as_ref().map(Peer::senders);
            rtc::set_sending(&senders.unwrap_or_default(), on)
                .await
                .map(|()| None)
        }
        // A candidate the browser refuses is not fatal; others may still work.
        (PcCommand::AddIce(c), Some(pc)) => Ok(rtc::add_ice(&pc, &c).await.ok().and(None)),
    };
    result.unwrap_or(Some(Input::PcFailed))
}

/// Stops the camera and microphone asked for by a peer that was not made.
fn discard(media: Result<wasm_bindgen_futures::JsFuture, JsValue>) {
    spawn_local(async move {
        if let Ok(stream) = rtc::local_media(media).await {
            rtc::stop(&stream);
        }
    });
}

/// Waits until the local camera and microphone are attached to the peer.
async fn media_attached(app: &Shared) -> Result<(), JsValue> {
    let attached = app.borrow().media_attached.clone();
    let Some(p) = attached else { return Ok(()) };
    match wasm_bindgen_futures::JsFuture::from(p).await?.as_bool() {
        Some(true) => Ok(()),
        _ => Err(JsValue::from_str("no camera or microphone")),
    }
}

pub(crate) fn js_text(e: &JsValue) -> String {
    e.as_string()
        .or_else(|| {
            js_sys::Reflect::get(e, &"message".into())
                .ok()
                .and_then(|m| m.as_string())
        })
        .unwrap_or_else(|| "unknown error".into())
}

pub(crate) fn on_peer(app: &Shared, ev: PeerEvent, generation: u32) {
    if app.borrow().generation != generation {
        return;
    }
    match ev {
        PeerEvent::Ice(c) => feed(app, Input::LocalIce(c)),
        PeerEvent::Track => {}
        PeerEvent::State(s) if s == "failed" => feed(app, Input::PcFailed),
        PeerEvent::State(s) if s == "connected" => check_dtls(app, generation),
        PeerEvent::State(_) => {}
    }
}

/// Waits for the DTLS transport to report `connected` in `getStats()` and feeds the
/// fingerprints it used. Looks every 25 ms; gives up (connection failed) after 10 s.
pub(crate) fn check_dtls(app: &Shared, generation: u32) {
    let a = app.clone();
    spawn_local(async move {
        for _ in 0..400 {
            let pc = {
                let app = a.borrow();
                if app.generation != generation {
                    return;
                }
                app.peer.as_ref().map(Peer::handle)
            };
            let Some(pc) = pc else { return };
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
                    a.borrow_mut().dtls = Some(info);
                    feed(&a, input);
                    return;
                }
                Ok(info) if info.state == "failed" => {
                    feed(&a, Input::PcFailed);
                    return;
                }
                _ => sleep(25).await,
            }
        }
        feed(&a, Input::PcFailed);
    });
}

pub(crate) async fn sleep(ms: i32) {
    let p = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(p).await;
}
