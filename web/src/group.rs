//! Group calls in the page: the legs beside the current call, each with its own
//! machine, peer connection and video (see `docs/protocol.md`, "Group calls").
//! The current call is one leg like the others; when it ends and others remain,
//! one of them takes its place.

use shieldcall_proto::{CallId, CallMode, Commitment};
use wasm_bindgen::JsCast;

use crate::call::{Call, Output, Phase};
use crate::calling::carry_out_gen;
use crate::dom;
use crate::page::{Line, Shared};
use crate::render::render;

/// A video element for a leg's remote media, in the call's video area.
fn leg_video(app: &Shared, peer: &str) -> Option<web_sys::HtmlMediaElement> {
    let a = app.borrow();
    let v = dom::el(
        "video",
        &[
            ("autoplay", ""),
            ("playsinline", ""),
            ("class", "remote leg"),
            ("data-testid", &format!("remote-video-{peer}")),
        ],
        "",
    )
    .ok()?;
    a.ui.videos.append_child(&v).ok()?;
    v.dyn_into().ok()
}

/// Keeps `call` as a leg beside the current call and carries out `out`.
fn start_leg(app: &Shared, call: Call, out: Vec<Output>) {
    let peer = call.view().peer.clone();
    let video = leg_video(app, &peer);
    let generation = {
        let mut a = app.borrow_mut();
        let generation = a.next_generation();
        a.legs.push(Line::new(call, generation, video));
        generation
    };
    carry_out_gen(app, generation, out);
    render(app);
}

/// `leg`: the group grew, and this device commits to a fresh certificate for a
/// leg with `peer`, whose device offers next.
pub(crate) fn leg(app: &Shared, call_id: CallId, peer: &str, mode: CallMode) {
    let wish = app.borrow().wish();
    let (call, out) = Call::join(call_id, peer, mode, None, wish, dom::now_ms());
    start_leg(app, call, out);
}

/// `new-leg` for a call this tab does not have, in a group call: a member
/// joined; this device offers to them.
pub(crate) fn new_member(app: &Shared, call_id: CallId, peer: &str, commit: Commitment) {
    let wish = app.borrow().wish();
    let (call, out) = Call::new_leg(
        call_id,
        peer,
        CallMode::Standard,
        commit,
        wish,
        dom::now_ms(),
    );
    start_leg(app, call, out);
}

/// "Add to call": calls `to` into the current call.
pub(crate) fn add(app: &Shared, to: &str) {
    let id = {
        let a = app.borrow();
        a.call()
            .filter(|c| {
                c.view().phase == Phase::Connected && c.view().mode == Some(CallMode::Standard)
            })
            .and_then(|c| c.id().cloned())
    };
    let Some(id) = id else {
        app.borrow()
            .notice("People can be added to a standard call once it is connected.");
        return;
    };
    let wish = app.borrow().wish();
    let (call, out) = Call::outgoing_add(to, id, wish, dom::now_ms());
    start_leg(app, call, out);
}

/// `group`: who is in this user's group call now. A call held for a
/// consultation that was just merged is a leg from now on.
pub(crate) fn members(app: &Shared, members: Vec<String>) {
    let held = {
        let mut a = app.borrow_mut();
        // Two people are a call, not a group (the relay says so last).
        a.group = if members.len() > 2 {
            members
        } else {
            Vec::new()
        };
        a.held.take()
    };
    if let Some(mut line) = held {
        line.video = leg_video(app, &line.call.view().peer.clone());
        if let (Some(peer), Some(video)) = (&line.peer, &line.video) {
            peer.show(video, None);
        }
        app.borrow_mut().legs.push(line);
    }
    render(app);
}
