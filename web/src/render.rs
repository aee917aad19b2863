//! Draws the app's state into the page: header, contacts, settings, and the call
//! view with its shield and verification panel. Reads state, never changes it;
//! writes to the DOM only where a value changed (see `dom`).

use shieldcall_proto::{CallFeature, CallMode, RefuseReason, Status};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::HtmlInputElement;

use crate::call::{Ending, HoldState, Phase, Wish};
use crate::dom::{self, append, el, flag, show, text};
use crate::page::{App, Shared};
use crate::texts;

/// Shows the views that fit the state.
pub fn render(app: &Shared) {
    let a = app.borrow();
    let ui = &a.ui;
    let signed_in = a.session.me.is_some();
    let on_admin = dom::path() == "/admin";
    show(&ui.login, !signed_in);
    for e in [&ui.me, &ui.signout, &ui.settings_button] {
        show(e, signed_in);
    }
    show(
        &ui.admin_link,
        a.session.me.as_ref().is_some_and(|m| m.admin) && !on_admin,
    );
    text(
        &ui.me,
        a.session
            .me
            .as_ref()
            .map(|m| m.user.as_str())
            .unwrap_or_default(),
    );
    show(&ui.home, signed_in && !on_admin);
    show(&ui.settings, signed_in && a.settings_open && !on_admin);
    show(&ui.admin, signed_in && on_admin);
    if !signed_in {
        show(&ui.relay_banner, false);
    }
    render_elsewhere(&a, signed_in && !on_admin);
    render_contacts(&a);
    sync_history_buttons(&a);
    render_settings(&a);
    render_call(&a);
}

/// The bar for a call this user has on another device, with "Move here".
pub(crate) fn render_elsewhere(a: &App, visible: bool) {
    let ui = &a.ui;
    let e = a
        .session
        .elsewhere
        .as_ref()
        .filter(|_| visible && !a.call_active());
    show(&ui.elsewhere, e.is_some());
    let Some(e) = e else { return };
    text(
        &ui.elsewhere_text,
        &format!("You are in a call with {} on another device.", e.peer),
    );
    let movable = e.mode == CallMode::Standard;
    flag(&ui.move_here, "disabled", !movable);
    show(&ui.move_here_why, !movable);
}

pub(crate) fn render_contacts(a: &App) {
    let ui = &a.ui;
    ui.contacts.set_text_content(None);
    let me = a
        .session
        .me
        .as_ref()
        .map(|m| m.user.as_str())
        .unwrap_or_default();
    let busy = a.call_active();
    for c in a.session.contacts.iter().filter(|c| c.user != me) {
        let status = match c.status {
            Status::Online => "online",
            Status::Busy => "busy",
            // Removed contacts leave the list when they arrive (app.rs).
            Status::Offline | Status::Removed => "offline",
        };
        let build = || -> Result<(), JsValue> {
            let li = el(
                "li",
                &[
                    ("data-testid", &format!("contact-{}", c.user)),
                    ("data-status", status),
                ],
                "",
            )?;
            // The display name (when an admin gave one) above the address.
            let who = el("span", &[("class", "who")], "")?;
            match &c.name {
                Some(shown) => {
                    dom::attr(&li, "data-name", shown);
                    let name = el("span", &[("class", "name")], shown)?;
                    let addr = el("span", &[("class", "addr muted")], &c.user)?;
                    append(&who, &[&name, &addr])?;
                }
                None => {
                    let name = el("span", &[("class", "name")], &c.user)?;
                    append(&who, &[&name])?;
                }
            }
            let badge = el("span", &[("class", &format!("status {status}"))], status)?;
            let call = el(
                "button",
                &[
                    ("type", "button"),
                    ("data-testid", &format!("call-{}", c.user)),
                    ("data-call", &c.user),
                    ("aria-label", &format!("Call {}", a.shown(&c.user))),
                ],
                "Call",
            )?;
            flag(&call, "disabled", busy || c.status == Status::Offline);
            append(&li, &[&who, &badge, &call])?;
            ui.contacts.append_child(&li)?;
            Ok(())
        };
        let _ = build();
    }
}

/// Draws the call history anew (after it was fetched).
pub(crate) fn render_history(a: &App) {
    let ui = &a.ui;
    ui.history.set_text_content(None);
    let missed = a.history.iter().filter(|h| h.outcome == "missed").count();
    text(&ui.history_heading, &texts::history_heading(missed));
    let busy = a.call_active();
    for h in &a.history {
        let build = || -> Result<(), JsValue> {
            let li = el(
                "li",
                &[
                    ("data-testid", "history-item"),
                    ("data-outcome", &h.outcome),
                    ("data-direction", &h.direction),
                    ("data-peer", &h.peer),
                ],
                "",
            )?;
            let line =
                texts::history_line(&h.direction, &h.outcome, &a.shown(&h.peer), h.duration_secs);
            let what = el("span", &[("class", "what")], &line)?;
            let date = js_sys::Date::new(&JsValue::from_f64(h.at * 1000.0));
            let iso: String = date.to_iso_string().into();
            // "3 Dec 2026, 06:27" in the person's own locale.
            let style = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&style, &"dateStyle".into(), &"medium".into());
            let _ = js_sys::Reflect::set(&style, &"timeStyle".into(), &"short".into());
            let shown: String = date.to_locale_string("default", &style).into();
            let when = el("time", &[("class", "muted"), ("datetime", &iso)], &shown)?;
            let call = el(
                "button",
                &[
                    ("type", "button"),
                    ("data-call", &h.peer),
                    ("aria-label", &format!("Call {} back", a.shown(&h.peer))),
                ],
                "Call back",
            )?;
            flag(&call, "disabled", busy);
            append(&li, &[&what, &when, &call])?;
            ui.history.append_child(&li)?;
            Ok(())
        };
        let _ = build();
    }
}

/// Enables the history's "Call back" buttons only while no call is on.
fn sync_history_buttons(a: &App) {
    let busy = a.call_active();
    let mut item = a.ui.history.first_element_child();
    while let Some(li) = item {
        if let Some(b) = li.last_element_child()
            && b.has_attribute("disabled") != busy
        {
            flag(&b, "disabled", busy);
        }
        item = li.next_element_sibling();
    }
}

pub(crate) fn render_settings(a: &App) {
    let ui = &a.ui;
    let Some(s) = &a.session.e2ee else { return };
    if let Some(i) = ui.e2ee_toggle.dyn_ref::<HtmlInputElement>() {
        i.set_checked(s.enabled);
        i.set_disabled(!s.can_change);
    }
    dom::attr(
        &ui.e2ee_toggle,
        "aria-checked",
        if s.enabled { "true" } else { "false" },
    );
    dom::attr(
        &ui.e2ee_toggle,
        "data-locked",
        if s.can_change { "false" } else { "true" },
    );
    text(&ui.policy_line, &texts::policy_line(s));
    render_notify(a);
}

/// The notification permission line in Settings.
pub(crate) fn render_notify(a: &App) {
    use web_sys::NotificationPermission as P;
    let (ask, line) = match crate::alert::permission() {
        P::Granted => (
            false,
            "Incoming calls are announced while this tab is in the background.",
        ),
        P::Denied => (
            false,
            "Notifications are blocked for this site in the browser's settings.",
        ),
        _ => (true, ""),
    };
    show(&a.ui.notify_button, ask);
    text(&a.ui.notify_state, line);
}

/// Moves keyboard focus to `e` (a button).
fn focus(e: &web_sys::Element) {
    if let Some(e) = e.dyn_ref::<web_sys::HtmlElement>() {
        let _ = e.focus();
    }
}

pub(crate) fn render_call(a: &App) {
    let ui = &a.ui;
    let Some(call) = a.call() else {
        show(&ui.incoming, false);
        show(&ui.call, false);
        return;
    };
    let v = call.view();
    let incoming = v.phase == Phase::Incoming;
    let appears = incoming && ui.incoming.has_attribute("hidden");
    show(&ui.incoming, incoming);
    if appears {
        // Keyboard and screen-reader users land on "Accept" (Tab: "Decline").
        if let Ok(Some(accept)) = ui.incoming.query_selector("[data-testid=incoming-accept]") {
            focus(&accept);
        }
    }
    // The call screen appears (placed, or accepted): they land on "Hang up",
    // the one thing to do next, instead of a button that just went away.
    let screen_appears = !incoming && ui.call.has_attribute("hidden");
    show(&ui.call, !incoming);
    if screen_appears {
        focus(&ui.hangup);
    }
    if incoming {
        let mode = v
            .mode
            .map(texts::mode_name)
            .unwrap_or("standard encryption");
        text(
            &ui.incoming_text,
            &match &v.referred_by {
                _ if !v.group.is_empty() => format!(
                    "{} is adding you to a call with {} ({mode}).",
                    a.shown(&v.peer),
                    v.group.iter().map(|u| a.shown(u)).fold(
                        String::new(),
                        |s, u| if s.is_empty() { u } else { s + ", " + &u }
                    )
                ),
                Some(by) => format!(
                    "{} is calling ({mode}), transferred by {}.",
                    a.shown(&v.peer),
                    a.shown(by)
                ),
                None => format!("{} is calling ({mode}).", a.shown(&v.peer)),
            },
        );
    }
    let ended = matches!(v.phase, Phase::Ended(_));
    let state = match (&v.phase, v.mode, &v.code) {
        (Phase::Ended(Ending::Mitm(_)), _, _) => "mitm",
        (Phase::Connected, Some(CallMode::E2ee), Some(_)) => "e2ee",
        (Phase::Connected, Some(CallMode::Standard), _) => "standard",
        (Phase::Ended(_), Some(CallMode::Standard), _) => "standard",
        _ => "connecting",
    };
    let label = match (state, ended) {
        ("mitm", _) => "Not private",
        (_, true) => "Call ended",
        ("e2ee", _) => "End-to-end encrypted",
        ("standard", _) => "Standard encryption",
        _ => "Connecting…",
    };
    // The icon (shield, shield with lock, warning) follows `data-state` in CSS.
    dom::attr(&ui.indicator, "data-state", state);
    dom::attr(&ui.indicator, "aria-label", label);
    text(&ui.indicator_label, label);
    // A group call names everyone this tab is connected with.
    let mut peers = a.shown(&v.peer);
    for l in &a.legs {
        peers.push_str(", ");
        peers.push_str(&a.shown(&l.call.view().peer));
    }
    text(&ui.call_peer, &peers);
    render_group_codes(a);
    dom::attr(&ui.call_state, "data-state", texts::phase_name(&v.phase));
    text(&ui.call_state, texts::phase_name(&v.phase));
    let dur = match (v.connected_at_ms, ended) {
        (Some(t), false) => texts::duration(dom::now_ms().saturating_sub(t)),
        _ => String::new(),
    };
    text(&ui.duration, &dur);
    match &v.code {
        Some(code) => {
            let title = match v.mode {
                Some(CallMode::E2ee) => "End-to-end encrypted",
                _ => {
                    "Standard call: encrypted between the browsers, with features that need the server. \
                     You can still compare this code."
                }
            };
            text(&ui.panel_title, title);
            text(&ui.code, &code.to_string());
            show(&ui.code, true);
        }
        None => {
            let t = match state {
                "standard" if v.unverifiable => {
                    "Standard call without a security code: the connection details do not carry exactly \
                     one sha-256 certificate fingerprint, so this call cannot be verified."
                }
                "mitm" => texts::MITM_WARNING,
                _ => "Not yet verified.",
            };
            text(&ui.panel_title, t);
            text(&ui.code, "");
            show(&ui.code, false);
        }
    }
    let downgrade = v
        .downgraded
        .map(texts::downgrade_warning)
        .unwrap_or_default();
    text(&ui.downgrade, downgrade);
    show(&ui.downgrade, !downgrade.is_empty() && !ended);
    let dtls = a.current.as_ref().and_then(|l| l.dtls.as_ref()).map(|d| {
        let check = v.cert_check.map(texts::cert_check_line).unwrap_or_default();
        if d.tls_version.is_empty() {
            return check.to_string();
        }
        format!(
            "DTLS {} · {} · SRTP {}. {check}",
            tls_version_name(&d.tls_version),
            if d.dtls_cipher.is_empty() {
                "cipher unknown"
            } else {
                &d.dtls_cipher
            },
            if d.srtp_cipher.is_empty() {
                "unknown"
            } else {
                &d.srtp_cipher
            }
        )
    });
    text(&ui.dtls_line, dtls.as_deref().unwrap_or_default());
    let has_code = v.code.is_some();
    show(&ui.codes_match, has_code && !v.verified);
    show(&ui.codes_differ, has_code);
    show(&ui.verified, has_code && v.verified);
    // When the call ends, "Hang up" goes: focus that was on it (or nowhere)
    // moves to "Close".
    let close_appears = ended && ui.call_close.has_attribute("hidden");
    show(&ui.hangup, !ended);
    show(&ui.mute, !ended);
    show(&ui.camera, !ended);
    show(&ui.call_close, ended);
    if close_appears {
        let active = dom::document().ok().and_then(|d| d.active_element());
        let lost = active.is_none_or(|e| e == ui.hangup || e.tag_name() == "BODY");
        if lost {
            focus(&ui.call_close);
        }
    }
    // After a call that did not connect, the caller may leave a message.
    let unanswered = matches!(
        &v.phase,
        Phase::Ended(
            Ending::Declined
                | Ending::Refused {
                    reason: RefuseReason::NoAnswer | RefuseReason::Busy | RefuseReason::Offline,
                    ..
                }
        )
    ) && v.role == crate::call::Role::Caller;
    show(&ui.voicemail_leave, unanswered && a.recording.is_none());
    show(&ui.videos, !ended);
    // A warning opens the panel; so does a standard call under a policy that
    // requires end-to-end encryption (the relay should never have set one up).
    // Any other call that ended closes it and lets go of a pin: the code of a
    // call that is over verifies nothing, and the next call starts closed.
    if state == "mitm" || (v.downgraded == Some(Wish::Required) && !ended) {
        show(&ui.panel, true);
    } else if ended {
        show(&ui.panel, false);
        dom::attr(&ui.indicator, "data-pinned", "false");
        dom::attr(&ui.indicator, "aria-expanded", "false");
    }
    let hold = match (v.phase == Phase::Parked, v.parked) {
        (true, Some(code)) => texts::park_line(&v.peer, code),
        _ => texts::hold_line(v.hold).to_string(),
    };
    text(&ui.hold_status, &hold);
    show(&ui.hold_status, !hold.is_empty() && !ended);
    if ended || v.mode != Some(CallMode::Standard) {
        show(&ui.transfer_form, false);
    }
    render_held(a, v);
    render_recording(a, ended);
    render_features(a, v.mode, ended, v.hold, v.hold_pending);
}

/// The bar of a call held during a consultation: who waits, and "Transfer" to
/// join them with the person consulted once that call is up (standard only).
fn render_held(a: &App, v: &crate::call::View) {
    let ui = &a.ui;
    let held = a.held.as_ref().map(|l| l.call.view().peer.clone());
    show(&ui.held, held.is_some());
    let Some(held) = held else { return };
    let up = v.phase == Phase::Connected;
    let standard = v.mode == Some(CallMode::Standard);
    let line = if up && !standard {
        format!(
            "{} is on hold. This call is end-to-end encrypted, so it cannot be joined with theirs: hang up to return to them.",
            a.shown(&held)
        )
    } else {
        format!(
            "{} is on hold. Hang up this call to return to them.",
            a.shown(&held)
        )
    };
    text(&ui.held_text, &line);
    text(
        &ui.complete_transfer,
        &format!("Transfer {} to {}", held, v.peer),
    );
    flag(&ui.complete_transfer, "disabled", !(up && standard));
    flag(&ui.merge, "disabled", !(up && standard));
}

/// The recording and captions banners: what the server receives, and this
/// person's choice.
fn render_recording(a: &App, ended: bool) {
    let ui = &a.ui;
    let r = a
        .recording
        .as_ref()
        .filter(|r| !ended || r.voicemail_to.is_some());
    let line = r.map(|r| {
        if let Some(to) = &r.voicemail_to {
            format!(
                "Recording a voicemail for {} (at most 2 minutes): your audio and video go to the Shieldcall server.",
                a.shown(to)
            )
        } else if r.agreed {
            "Recording: your audio and video go to the Shieldcall server; both of you can play it later.".to_string()
        } else {
            format!(
                "{} wants to record the call: your audio and video would go to the Shieldcall server, only if you allow it.",
                a.shown(&r.by)
            )
        }
    });
    banner(
        r.map(|r| r.agreed).zip(line),
        [
            &ui.recording_banner,
            &ui.recording_text,
            &ui.recording_allow,
            &ui.recording_stop,
        ],
        "Stop recording",
    );
    let c = a.captions.as_ref().filter(|_| !ended);
    let line = c.map(|c| {
        if c.agreed {
            "Live captions: your voice goes to the Shieldcall server, which writes it down.".to_string()
        } else {
            format!(
                "{} wants live captions: your voice would go to the Shieldcall server, only if you allow it.",
                a.shown(&c.by)
            )
        }
    });
    banner(
        c.map(|c| c.agreed).zip(line),
        [
            &ui.captions_banner,
            &ui.captions_text,
            &ui.captions_allow,
            &ui.captions_stop,
        ],
        "Stop captions",
    );
    render_captions(a);
}

/// A banner (root, sentence, allow, stop) showing `line`: "Allow" and
/// "Decline" while not yet `agreed`, then `stop` alone; hidden for `None`.
fn banner(
    shown: Option<(bool, String)>,
    [root, line, allow, decline]: [&web_sys::Element; 4],
    stop: &str,
) {
    show(root, shown.is_some());
    let Some((agreed, words)) = shown else { return };
    text(line, &words);
    show(allow, !agreed);
    text(decline, if agreed { stop } else { "Decline" });
}

/// The captions under the videos: what each person said last, "Name: words"
/// (as text: words come from a recogniser, never markup).
pub(crate) fn render_captions(a: &App) {
    let ui = &a.ui;
    let said = a
        .captions
        .as_ref()
        .map(|c| c.said.as_slice())
        .unwrap_or_default();
    show(&ui.captions, !said.is_empty());
    ui.captions.set_text_content(None);
    for (who, words, done) in said {
        let mut line = if a.session.me.as_ref().is_some_and(|m| &m.user == who) {
            "You".to_string()
        } else {
            a.shown(who)
        };
        line.push_str(": ");
        line.push_str(words);
        let class = if *done { "said" } else { "said partial" };
        if let Ok(p) = el("p", &[("class", class)], &line) {
            let _ = ui.captions.append_child(&p);
        }
    }
}

/// The recordings this person is in, each with its file to play or keep.
pub(crate) fn render_recordings(a: &App) {
    let ui = &a.ui;
    ui.recordings.set_text_content(None);
    for r in &a.recordings {
        let build = || -> Result<(), JsValue> {
            let li = el(
                "li",
                &[("data-testid", "recording-item"), ("data-id", &r.id)],
                "",
            )?;
            let mine = a.session.me.as_ref().is_some_and(|m| m.user == r.owner);
            let whose = match (mine, r.captions) {
                (true, false) => format!("Your side of a call with {}", a.shown(&r.peer)),
                (false, false) => format!("{}'s side of your call", a.shown(&r.owner)),
                (true, true) => format!("What you said to {}", a.shown(&r.peer)),
                (false, true) => format!("What {} said to you", a.shown(&r.owner)),
            };
            let what = el(
                "span",
                &[("class", "what")],
                &format!("{whose}, {}", texts::duration(r.duration_ms)),
            )?;
            li.append_child(&what)?;
            if !r.captions {
                let link = el(
                    "a",
                    &[
                        ("href", &format!("/api/recordings/{}", r.id)),
                        ("target", "_blank"),
                        ("rel", "noopener"),
                    ],
                    "Play",
                )?;
                li.append_child(&link)?;
            }
            if !r.transcript.is_empty() {
                let details = el("details", &[("data-testid", "transcript")], "")?;
                let summary = el("summary", &[], "Transcript")?;
                let words = el("p", &[], &r.transcript)?;
                append(&details, &[&summary, &words])?;
                li.append_child(&details)?;
            }
            ui.recordings.append_child(&li)?;
            Ok(())
        };
        let _ = build();
    }
}

/// In a group call, each pair's code (or that it is not verified yet), one
/// line per leg, for the people of each pair to read to each other.
fn render_group_codes(a: &App) {
    let ui = &a.ui;
    show(&ui.group_codes, !a.legs.is_empty());
    ui.group_codes.set_text_content(None);
    if a.legs.is_empty() {
        return;
    }
    let views = a.current.iter().chain(&a.legs).map(|l| l.call.view());
    for v in views {
        let build = || -> Result<(), JsValue> {
            let li = el(
                "li",
                &[("data-testid", &format!("code-{}", v.peer))],
                &format!("{}: ", a.shown(&v.peer)),
            )?;
            let code = match &v.code {
                Some(c) => el("code", &[], &c.to_string())?,
                None => el("span", &[("class", "muted")], "not yet verified")?,
            };
            li.append_child(&code)?;
            ui.group_codes.append_child(&li)?;
            Ok(())
        };
        let _ = build();
    }
}

fn tls_version_name(v: &str) -> &str {
    match v {
        "FEFD" => "1.2",
        "FEFC" => "1.3",
        "" => "version unknown",
        other => other,
    }
}

pub(crate) fn render_features(
    a: &App,
    mode: Option<CallMode>,
    ended: bool,
    hold: HoldState,
    hold_pending: bool,
) {
    let ui = &a.ui;
    // Rebuilt only when what it shows changes, not on every signalling message.
    let recording = a.recording.is_some();
    let captions = a.captions.is_some();
    let key: u8 = match (mode, ended) {
        (_, true) | (None, _) => 0,
        (Some(CallMode::E2ee), false) => 1,
        (Some(CallMode::Standard), false) if hold_pending => 2,
        (Some(CallMode::Standard), false) if hold.by_me => 3,
        (Some(CallMode::Standard), false) => 4,
    };
    // One character for what the menu shows: the call's state, and whether
    // it is recorded and captioned.
    let key = char::from(b'a' + key * 4 + u8::from(recording) * 2 + u8::from(captions));
    let mut buf = [0u8; 4];
    let key = key.encode_utf8(&mut buf);
    if ui.features.get_attribute("data-for").as_deref() == Some(&*key) {
        return;
    }
    dom::attr(&ui.features, "data-for", key);
    ui.features.set_text_content(None);
    if ended {
        return;
    }
    let Some(mode) = mode else { return };
    for f in CallFeature::ALL {
        let name = match f {
            CallFeature::Hold if hold.by_me => "Resume",
            CallFeature::Hold => "Hold",
            CallFeature::Recording if recording => "Stop recording",
            CallFeature::Recording => "Record",
            CallFeature::Transcription if captions => "Stop captions",
            CallFeature::Transcription => "Live captions",
            CallFeature::Transfer => "Transfer",
            CallFeature::Park => "Park",
            CallFeature::Merge => "Merge",
            CallFeature::MoveToDevice => "Move to another device",
            CallFeature::AddParticipant => "Add people",
            CallFeature::Voicemail => "Forward to voicemail",
        };
        let key = f.as_str();
        let build = || -> Result<(), JsValue> {
            let li = el("li", &[], "")?;
            let b = el(
                "button",
                &[
                    ("type", "button"),
                    ("data-feature", key),
                    ("data-testid", &format!("feature-{key}")),
                ],
                name,
            )?;
            li.append_child(&b)?;
            if f == CallFeature::Hold {
                dom::attr(&b, "data-held", if hold.by_me { "true" } else { "false" });
                dom::attr(
                    &b,
                    "aria-pressed",
                    if hold.by_me { "true" } else { "false" },
                );
            }
            if f == CallFeature::Hold && hold_pending {
                flag(&b, "disabled", true);
            }
            if !f.available_in(mode) {
                flag(&b, "disabled", true);
                let why = el(
                    "span",
                    &[("class", "muted")],
                    " Off in end-to-end encrypted calls. Turn E2EE off in Settings → Privacy to use it.",
                )?;
                li.append_child(&why)?;
            }
            ui.features.append_child(&li)?;
            Ok(())
        };
        let _ = build();
    }
}

/// Rings while an incoming call rings here, and only then.
pub(crate) fn sync_alert(app: &Shared) {
    let mut a = app.borrow_mut();
    let ringing = a
        .call()
        .filter(|c| c.view().phase == crate::call::Phase::Incoming)
        .map(|c| c.view().peer.clone());
    match (ringing, a.alert.is_some()) {
        (Some(peer), false) => {
            let alert = crate::alert::Alert::start(&a.shown(&peer), &a.ui.incoming);
            a.alert = Some(alert);
        }
        (None, true) => a.alert = None,
        _ => {}
    }
}
