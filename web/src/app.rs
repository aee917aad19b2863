//! The client's controller, the top of the glue: wires the page's events
//! (clicks, forms, the one-second ticker), opens and reconnects the relay
//! socket, signs in and out, and sends each relay message where it belongs
//! (`calling`, `handover`, `group`, `recording`, `lists`). What the page holds
//! is `page`'s; decisions about a call are its machine's (`crate::call`).
//!
//! Browser callbacks never change state inside the callback that fired: socket
//! and peer events are re-posted with `spawn_local`, so an owner can drop the
//! object (and its closures) that reported them.

use std::cell::RefCell;
use std::rc::Rc;

use crate::dom::spawn as spawn_local;
use shieldcall_proto::{CallFeature, ClientMsg, RelayMsg};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{Event, HtmlInputElement};

use crate::call::{Call, Input, UserAction};
use crate::calling::{carry_out, feed, feed_held, feed_leg, place_call};
use crate::codec;
use crate::dom::{self, show, text};
use crate::listen::{Listener, Timer};
use crate::lists::{load_history, load_recordings};
use crate::net::{self, Socket, SocketEvent};
use crate::page::{App, Shared};
use crate::render::{render, render_settings, sync_alert};
use crate::session::{
    Effect, ErrorFor, Liveness, Me, Route, Session, backoff_ms, error_for, liveness, route,
};
use crate::texts;
use crate::ui::Ui;

thread_local! {
    /// The one app of the page.
    static APP: RefCell<Option<Shared>> = const { RefCell::new(None) };
}

/// Starts the client in `#app`.
pub fn start() -> Result<(), JsValue> {
    let doc = dom::document()?;
    let root = doc
        .get_element_by_id("app")
        .ok_or_else(|| JsValue::from_str("index.html has no #app"))?;
    let ui = Ui::build(root.clone())?;
    let app: Shared = Rc::new(RefCell::new(App::new(ui)));
    wire(&app)?;
    root.set_attribute("data-state", "ready")?;
    let a = app.clone();
    spawn_local(async move {
        match net::request("GET", "/api/me", None).await {
            Ok(r) if r.ok() => signed_in(&a, &r.body),
            _ => render(&a),
        }
    });
    let a = app.clone();
    let ticker = Timer::new(1000, true, move || tick(&a))?;
    app.borrow_mut().ticker = Some(ticker);
    // The app lives as long as the page; listeners and timers hold it weakly.
    APP.with(|slot| *slot.borrow_mut() = Some(app));
    Ok(())
}

/// Each second: whether the relay still answers, and the call machines' clock.
fn tick(app: &Shared) {
    let live = {
        let mut a = app.borrow_mut();
        a.quiet = a.quiet.saturating_add(1);
        if a.socket.is_some() {
            liveness(a.quiet)
        } else {
            Liveness::Wait
        }
    };
    match live {
        Liveness::Ping => app.borrow_mut().send(ClientMsg::Ping { id: 0 }),
        Liveness::GiveUp => on_socket(app, SocketEvent::Closed),
        Liveness::Wait => {}
    }
    feed(app, Input::Tick);
}

fn on(
    app: &Shared,
    target: &web_sys::Element,
    event: &'static str,
    // A function, not a closure: one copy of the listener's code for all.
    f: fn(&Shared, Event),
) -> Result<(), JsValue> {
    let weak = Rc::downgrade(app);
    let l = Listener::new(target, event, move |e| {
        if let Some(a) = weak.upgrade() {
            f(&a, e);
        }
    })?;
    app.borrow_mut().listeners.push(l);
    Ok(())
}

/// Registers the listeners of the static UI: the forms, the switch, hovering
/// the shield, and one click listener on the page for every button, which acts
/// on the `data-testid` (or `data-call`, `data-feature`) of what was clicked. One
/// listener instead of one per button keeps the bundle small: each listener is
/// a closure of its own in the Wasm.
fn wire(app: &Shared) -> Result<(), JsValue> {
    let (root, login_form, toggle, indicator, pickup_form, transfer_form) = {
        let a = app.borrow();
        let u = &a.ui;
        (
            u.root.clone(),
            u.login_form.clone(),
            u.e2ee_toggle.clone(),
            u.indicator.clone(),
            u.pickup_form.clone(),
            u.transfer_form.clone(),
        )
    };
    on(app, &login_form, "submit", |a, e| {
        e.prevent_default();
        login(a);
    })?;
    on(app, &toggle, "change", |a, e| {
        let checked = e
            .target()
            .and_then(|t| t.dyn_into::<HtmlInputElement>().ok())
            .is_some_and(|i| i.checked());
        a.borrow_mut().send(ClientMsg::SetE2ee { enabled: checked });
        // Show the stored value until the relay confirms the change.
        render_settings(&a.borrow());
    })?;
    // Hovering shows the panel; a click (or Enter) pins it open or closes it.
    on(app, &indicator, "mouseenter", |a, _| {
        set_panel(&a.borrow(), true)
    })?;
    on(app, &indicator, "mouseleave", |a, _| {
        let app = a.borrow();
        if app.ui.indicator.get_attribute("data-pinned").as_deref() != Some("true") {
            set_panel(&app, false);
        }
    })?;
    on(app, &transfer_form, "submit", |a, e| {
        e.prevent_default();
        if let Some(to) = take_person(a) {
            feed(a, Input::TransferTo(to));
        }
    })?;
    on(app, &pickup_form, "submit", |a, e| {
        e.prevent_default();
        let code = dom::value(&a.borrow().ui.pickup_code);
        match code.trim().parse::<u8>() {
            Ok(c) if (10..=99).contains(&c) => crate::handover::pick_up(a, c),
            _ => a
                .borrow()
                .notice("A pickup code is two digits, from 10 to 99."),
        }
    })?;
    on(app, &root, "click", |a, e| {
        // Contacts and history: their "Call" buttons carry `data-call`.
        if let Some((_, user)) = dom::closest_attr(e.target(), "data-call") {
            place_call(a, &user);
            return;
        }
        if let Some((_, f)) = dom::closest_attr(e.target(), "data-feature") {
            feature(a, &f);
            return;
        }
        // The button clicked, not what inside it was hit (a label or an icon
        // may carry a `data-testid` of its own).
        let button = e
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .and_then(|el| el.closest("button").ok().flatten());
        let Some(button) = button.filter(|b| !b.has_attribute("disabled")) else {
            return;
        };
        if let Some(id) = button.get_attribute("data-testid") {
            clicked(a, &id);
        }
    })?;
    Ok(())
}

/// A click on the element with `data-testid` `id`.
fn clicked(a: &Shared, id: &str) {
    let action = match id {
        "incoming-accept" => Some(UserAction::Accept),
        "incoming-decline" => Some(UserAction::Decline),
        "hangup" => Some(UserAction::Hangup),
        "codes-match" => Some(UserAction::CodesMatch),
        "codes-differ" => Some(UserAction::CodesDiffer),
        _ => None,
    };
    if let Some(action) = action {
        feed(a, Input::User(action));
        return;
    }
    match id {
        "signout" => sign_out(a),
        "open-settings" => {
            {
                let mut app = a.borrow_mut();
                app.settings_open = !app.settings_open;
            }
            render(a);
        }
        "settings-notify" => {
            let a = a.clone();
            spawn_local(async move {
                // The browser asks the person; whatever they answer is shown.
                let _ = crate::alert::ask_permission().await;
                crate::render::render_notify(&a.borrow());
            });
        }
        "notice-dismiss" => a.borrow().notice(""),
        "e2ee-indicator" => {
            let app = a.borrow();
            let pin = app.ui.indicator.get_attribute("data-pinned").as_deref() != Some("true");
            dom::attr(
                &app.ui.indicator,
                "data-pinned",
                if pin { "true" } else { "false" },
            );
            set_panel(&app, pin);
        }
        "mute" | "camera" => toggle_media(&a.borrow(), id == "mute"),
        "call-close" => {
            {
                let mut app = a.borrow_mut();
                if !app.call_active() {
                    app.current = None;
                }
            }
            render(a);
        }
        "move-here" => crate::handover::move_here(a),
        "transfer-consult" => {
            let Some(to) = take_person(a) else { return };
            let held = a.borrow().call().is_some_and(|c| c.view().hold.by_me);
            if held {
                crate::calling::consult(a, &to);
            } else {
                // Hold first; the consultation starts when the relay confirms it.
                a.borrow_mut().pending_consult = Some(to);
                feed(a, Input::User(UserAction::Hold));
            }
        }
        "transfer-add" => {
            if let Some(to) = take_person(a) {
                crate::group::add(a, &to);
            }
        }
        "complete-transfer" => crate::handover::complete_transfer(a),
        "recording-allow" => crate::recording::allow(a, false),
        "captions-allow" => crate::recording::allow(a, true),
        "voicemail-leave" => crate::recording::leave_voicemail(a),
        "recording-stop" => crate::recording::stop(a, false),
        "captions-stop" => crate::recording::stop(a, true),
        "merge-calls" => crate::handover::merge(a),
        _ => {}
    }
}

/// The person typed in the transfer form (the form closes and clears).
fn take_person(a: &Shared) -> Option<String> {
    let app = a.borrow();
    let to = dom::value(&app.ui.transfer_to).trim().to_string();
    if to.is_empty() {
        return None;
    }
    show(&app.ui.transfer_form, false);
    dom::clear(&app.ui.transfer_to);
    Some(to)
}

/// Mute or camera off (and back) on the current call.
fn toggle_media(app: &App, audio: bool) {
    let Some(peer) = app.peer() else { return };
    let button = if audio { &app.ui.mute } else { &app.ui.camera };
    let on = peer.toggle(audio);
    let label = match (audio, on) {
        (true, true) => "Mute",
        (true, false) => "Unmute",
        (false, true) => "Camera off",
        (false, false) => "Camera on",
    };
    // The label sits beside the button's icon.
    match button.query_selector("span") {
        Ok(Some(span)) => text(&span, label),
        _ => text(button, label),
    }
    dom::attr(button, "aria-pressed", if on { "false" } else { "true" });
}

/// A click on a call feature of the menu.
fn feature(a: &Shared, f: &str) {
    let feature = CallFeature::ALL.into_iter().find(|x| x.as_str() == f);
    match feature {
        Some(CallFeature::Merge) => crate::handover::merge(a),
        Some(CallFeature::Recording) => crate::recording::toggle(a, false),
        Some(CallFeature::Transcription) => crate::recording::toggle(a, true),
        Some(CallFeature::Transfer | CallFeature::AddParticipant) => {
            let app = a.borrow();
            let open = app.ui.transfer_form.has_attribute("hidden");
            show(&app.ui.transfer_form, open);
        }
        Some(CallFeature::Park) => feed(a, Input::User(UserAction::Park)),
        Some(CallFeature::Hold) => {
            // Hold goes through the call machine, which knows the state.
            let held = a.borrow().call().is_some_and(|c| c.view().hold.by_me);
            let action = if held {
                UserAction::Unhold
            } else {
                UserAction::Hold
            };
            feed(a, Input::User(action));
        }
        Some(feature) => {
            let mut app = a.borrow_mut();
            if let Some(call_id) = app.call().and_then(|c| c.id().cloned()) {
                app.send(ClientMsg::Feature { call_id, feature });
            }
        }
        None => {}
    }
}

fn set_panel(app: &App, open: bool) {
    show(&app.ui.panel, open);
    dom::attr(
        &app.ui.indicator,
        "aria-expanded",
        if open { "true" } else { "false" },
    );
}

fn login(app: &Shared) {
    let (user, password) = {
        let a = app.borrow();
        (
            dom::value(&a.ui.login_user).trim().to_string(),
            dom::value(&a.ui.login_password),
        )
    };
    let a = app.clone();
    spawn_local(async move {
        let body = codec::object(&[
            ("user", user.as_str().into()),
            ("password", password.as_str().into()),
        ]);
        let message = match net::request("POST", "/api/login", Some(&body)).await {
            Ok(r) if r.ok() => {
                dom::clear(&a.borrow().ui.login_password);
                match net::request("GET", "/api/me", None).await {
                    Ok(me) if me.ok() => {
                        signed_in(&a, &me.body);
                        return;
                    }
                    _ => "Signed in, but the session was not kept. Are cookies allowed for this site?".to_string(),
                }
            }
            Ok(r) if r.status == 401 => "The user name or the password is wrong.".to_string(),
            Ok(r) if r.status == 429 => {
                "Too many sign-in attempts. Wait a minute, then try again.".to_string()
            }
            Ok(r) => r.error_text(),
            Err(_) => {
                "The server cannot be reached. Check your connection and try again.".to_string()
            }
        };
        text(&a.borrow().ui.login_error, &message);
    });
}

fn signed_in(app: &Shared, me: &JsValue) {
    let user = codec::string(me, "user");
    let admin = codec::boolean(me, "admin");
    {
        let mut a = app.borrow_mut();
        a.session.me = Some(Me { user, admin });
        text(&a.ui.login_error, "");
    }
    connect(app);
    render(app);
    load_history(app);
    load_recordings(app);
    if admin && dom::path() == "/admin" {
        open_admin(&app.borrow().ui.admin);
    }
}

/// Makes the certificate for the incoming call of `generation` while it rings
/// (no camera: that waits for the accept), kept for that call only.
fn prepare_certificate(app: &Shared, generation: u32) {
    let weak = Rc::downgrade(app);
    spawn_local(async move {
        let Ok(cert) = crate::cert::fresh_certificate().await else {
            return; // accepting makes one, and shows why if it fails
        };
        if let Some(a) = weak.upgrade() {
            let mut a = a.borrow_mut();
            if let Some(line) = a.current.as_mut()
                && line.generation == generation
                && line.peer.is_none()
            {
                line.cert = Some(cert);
            }
        }
    });
}

/// Hands the admin section to the admin bundle (see [`crate::ADMIN_EVENT`]).
fn open_admin(section: &web_sys::Element) {
    dom::attr(section, crate::ADMIN_OPEN, "");
    let fired = dom::document().and_then(|d| {
        let e = Event::new(crate::ADMIN_EVENT)?;
        d.dispatch_event(&e)
    });
    if fired.is_err() {
        text(
            section,
            "The admin page could not be opened in this browser.",
        );
    }
}

fn sign_out(app: &Shared) {
    {
        let mut a = app.borrow_mut();
        if let Some(call_id) = a
            .call()
            .filter(|c| !c.is_ended())
            .and_then(|c| c.id().cloned())
        {
            a.send(ClientMsg::Hangup {
                call_id,
                reason: shieldcall_proto::HangupReason::Normal,
            });
        }
        if let Some(call_id) = a.held.as_ref().and_then(|l| l.call.id().cloned()) {
            a.send(ClientMsg::Hangup {
                call_id,
                reason: shieldcall_proto::HangupReason::Normal,
            });
        }
    }
    let a = app.clone();
    spawn_local(async move {
        let _ = net::request("POST", "/api/logout", None).await;
        signed_out(&a);
    });
}

fn signed_out(app: &Shared) {
    {
        let mut a = app.borrow_mut();
        // Who was signed in, their contacts, setting and ICE servers go.
        a.session = Session::default();
        a.socket = None;
        a.reconnect = None;
        a.outbox.clear();
        a.current = None;
        a.held = None;
        a.recording = None;
        a.captions = None;
        a.recordings.clear();
        for l in a.legs.drain(..) {
            if let Some(v) = &l.video {
                v.remove();
            }
        }
        a.group.clear();
        a.history.clear();
        a.alert = None;
        // What the admin bundle drew is not left in the page for the next person.
        let _ = a.ui.admin.remove_attribute(crate::ADMIN_OPEN);
        a.ui.admin.set_text_content(None);
        crate::render::render_history(&a);
    }
    render(app);
}

fn connect(app: &Shared) {
    let weak = Rc::downgrade(app);
    let socket = Socket::open(move |ev| {
        let weak = weak.clone();
        // Re-posted: the owner may drop the socket while handling the event.
        spawn_local(async move {
            if let Some(a) = weak.upgrade() {
                on_socket(&a, ev);
            }
        });
    });
    match socket {
        Ok(s) => {
            let mut a = app.borrow_mut();
            a.socket = Some(s);
            // Quiet from here: an opening that hangs is given up too.
            a.quiet = 0;
        }
        Err(_) => schedule_reconnect(app),
    }
}

fn on_socket(app: &Shared, ev: SocketEvent) {
    app.borrow_mut().quiet = 0;
    match ev {
        SocketEvent::Open => {
            let mut a = app.borrow_mut();
            a.attempts = 0;
            show(&a.ui.relay_banner, false);
            while let Some(m) = a.outbox.pop_front() {
                a.send(m);
            }
            drop(a);
            feed(app, Input::RelayUp);
        }
        SocketEvent::Message(msg) => on_relay(app, msg),
        SocketEvent::Garbled => app.borrow().notice("The server sent something this version of Shieldcall does not understand. Reload the page."),
        SocketEvent::Closed => {
            {
                let mut a = app.borrow_mut();
                a.socket = None;
                if a.session.me.is_none() || a.stay_closed {
                    return;
                }
                show(&a.ui.relay_banner, true);
            }
            feed(app, Input::RelayDown);
            schedule_reconnect(app);
        }
    }
}

fn schedule_reconnect(app: &Shared) {
    let attempts = {
        let mut a = app.borrow_mut();
        a.attempts += 1;
        a.attempts
    };
    let weak = Rc::downgrade(app);
    let timer = Timer::new(
        backoff_ms(attempts, js_sys::Math::random()),
        false,
        move || {
            let Some(a) = weak.upgrade() else { return };
            spawn_local(async move {
                // A relay that refuses the upgrade may mean the session ended.
                match net::request("GET", "/api/me", None).await {
                    Ok(r) if r.status == 401 => {
                        signed_out(&a);
                        a.borrow().notice(texts::error_prefix(
                            shieldcall_proto::ErrorCode::SessionExpired,
                        ));
                    }
                    _ => connect(&a),
                }
            });
        },
    );
    if let Ok(t) = timer {
        app.borrow_mut().reconnect = Some(t);
    }
}

fn on_relay(app: &Shared, msg: RelayMsg) {
    // The session's own messages first; what is about calls comes back.
    let handled = app.borrow_mut().session.handle(msg);
    let msg = match handled {
        Effect::NotMine(msg) => msg,
        Effect::LoadHistory => {
            load_history(app);
            render(app);
            return;
        }
        Effect::None => {
            render(app);
            return;
        }
    };
    match msg {
        RelayMsg::NewLeg {
            call_id,
            peer,
            commit,
        } => crate::handover::new_leg(app, call_id, &peer, commit),
        RelayMsg::Refer {
            call_id,
            to,
            by,
            token,
        } => crate::handover::referred(app, call_id, to, by, token),
        msg @ RelayMsg::Replaced { .. } => crate::handover::replaced(app, msg),
        RelayMsg::Leg {
            call_id,
            peer,
            mode,
        } => crate::group::leg(app, call_id, &peer, mode),
        RelayMsg::Group { members } => crate::group::members(app, members),
        RelayMsg::Recording { call_id, on, by } => {
            crate::recording::changed(app, false, call_id, on, by);
        }
        RelayMsg::Captions { call_id, on, by } => {
            crate::recording::changed(app, true, call_id, on, by);
        }
        RelayMsg::Caption {
            call_id,
            from,
            text,
            done,
        } => crate::recording::heard(app, &call_id, from, text, done),
        RelayMsg::MediaAnswer {
            call_id,
            sdp,
            captions,
        } => crate::recording::answered(app, call_id, sdp, captions),
        RelayMsg::Voicemail { call_id, to } => crate::recording::voicemail(app, call_id, to),
        RelayMsg::VoicemailLeft { from } => {
            app.borrow().notice(&format!(
                "{} left you a voicemail.",
                app.borrow().shown(&from)
            ));
        }
        // The server wrote a recording, voicemail or transcript of this
        // person's: the list is fetched again.
        RelayMsg::RecordingReady { .. } => load_recordings(app),
        RelayMsg::Pong { .. } => {}
        msg @ RelayMsg::Error { .. } => on_error(app, msg),
        msg => {
            let (to, leg) = {
                let a = app.borrow();
                let legs: Vec<&Call> = a.legs.iter().map(|l| &l.call).collect();
                let to = route(&msg, a.call(), a.held.as_ref().map(|l| &l.call), &legs);
                let leg = match to {
                    Route::Leg(i) => a.legs.get(i).map(|l| l.generation),
                    _ => None,
                };
                (to, leg)
            };
            match (to, msg) {
                (Route::Current, msg) => {
                    feed(app, Input::Relay(msg));
                    return;
                }
                (Route::Held, msg) => feed_held(app, Input::Relay(msg)),
                (Route::Leg(_), msg) => {
                    if let Some(generation) = leg {
                        feed_leg(app, generation, Input::Relay(msg));
                    }
                    return;
                }
                (
                    Route::Ring,
                    RelayMsg::Incoming {
                        call_id,
                        from,
                        mode,
                        referred_by,
                        group,
                    },
                ) => ring(app, call_id, &from, mode, referred_by, group),
                // An invite we gave up on before the relay answered.
                (Route::Unknown, RelayMsg::Calling { call_id, .. }) => {
                    app.borrow_mut().send(ClientMsg::Cancel { call_id })
                }
                // A call to us that the relay refused (e2ee-required): say why.
                (
                    Route::Unknown,
                    RelayMsg::CallRefused {
                        peer,
                        reason,
                        required_by,
                        ..
                    },
                ) => {
                    let a = app.borrow();
                    let me = a.session.user();
                    let what = texts::refusal(reason, &peer, required_by.as_deref(), &me);
                    a.notice(&format!("{peer} tried to call you. {what}"));
                }
                // Busy: the relay marks us busy; a second ring is ignored.
                _ => {}
            }
        }
    }
    render(app);
}

/// An incoming call rings here (no call is up): the certificate is made while
/// it rings, and the ring tone starts.
fn ring(
    app: &Shared,
    call_id: shieldcall_proto::CallId,
    from: &str,
    mode: shieldcall_proto::CallMode,
    referred_by: Option<String>,
    group: Vec<String>,
) {
    let (out, generation) = {
        let mut a = app.borrow_mut();
        let (call, out) = Call::incoming(call_id, from, mode, a.wish(), dom::now_ms());
        let call = call.referred_by(referred_by).in_group(group);
        (out, a.set_current(call))
    };
    carry_out(app, out);
    prepare_certificate(app, generation);
    sync_alert(app);
}

/// An `error` from the relay: shown, and given to the call it is about (a
/// refused hold, move, pickup, add or consultation ends or clears what it
/// asked). Candidates still in flight when a call ends are refused by the
/// relay; an error about a call that is over must not replace how it ended.
fn on_error(app: &Shared, msg: RelayMsg) {
    let RelayMsg::Error {
        code,
        message,
        call_id,
    } = &msg
    else {
        return;
    };
    let (target, leg) = {
        let mut a = app.borrow_mut();
        if *code == shieldcall_proto::ErrorCode::TooManyDevices {
            a.stay_closed = true;
        }
        let legs: Vec<&Call> = a.legs.iter().map(|l| &l.call).collect();
        let held = a.held.as_ref().map(|l| &l.call);
        let target = error_for(call_id.as_ref(), a.call(), held, &legs);
        if target == ErrorFor::Stale {
            web_sys::console::warn_1(&JsValue::from_str(&format!("after the call: {message}")));
        } else {
            a.notice(&format!("{} {message}", texts::error_prefix(*code)));
        }
        let leg = match target {
            ErrorFor::Leg(i) => a.legs.get(i).map(|l| l.generation),
            _ => None,
        };
        (target, leg)
    };
    // The call learns that what it asked was refused (a pending hold; an add,
    // a consultation or a pickup refused before it was placed ends).
    match (target, leg) {
        (ErrorFor::Leg(_), Some(generation)) => {
            feed_leg(app, generation, Input::Relay(msg));
        }
        (ErrorFor::Held, _) => feed_held(app, Input::Relay(msg)),
        (ErrorFor::Current, _) => feed(app, Input::Relay(msg)),
        _ => {}
    }
}
