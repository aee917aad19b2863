//! The call, as the page runs it: feeds the call machine (`crate::call`) with
//! relay messages, peer events, user actions and time, and carries out what it
//! returns: frames to the relay, and peer-connection commands, run one at a time
//! in order. Late results of an earlier call are dropped by generation.

use shieldcall_proto::CallMode;

use crate::call::{Call, Ending, Input, Output, Phase, UserAction};
use crate::dom;
use crate::lists::load_history;
use crate::page::Shared;
use crate::render::{render, render_call, sync_alert};
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
        a.set_current(call);
        a.ring_back = None;
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
        let held_id = a.call().and_then(|c| {
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
        // Its connection and its commands go with it (a `SetSending(false)`
        // from the hold may still be queued or running).
        let Some(line) = a.current.take() else { return };
        a.held = Some(line);
        let (call, out) = Call::outgoing_consult(to, held_id, a.wish(), dom::now_ms());
        a.set_current(call);
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
        let state = a.call().map(|c| {
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

/// The current call is over and a call was held for it: the held call is
/// current again (still on hold: the person takes it off), its media shown.
fn restore_held(app: &Shared) {
    let mut a = app.borrow_mut();
    let Some(line) = a.held.take() else { return };
    if line.call.is_ended() {
        return;
    }
    a.install(line);
    let a = &*a;
    if let Some(peer) = a.peer() {
        peer.show(&a.ui.remote_video, Some(&a.ui.local_video));
    }
}

/// Feeds the held call (its other person hung up, the relay ended it, time,
/// the relay connection, its connection's events) and carries out what it says.
pub(crate) fn feed_held(app: &Shared, input: Input) {
    let (out, generation) = {
        let mut a = app.borrow_mut();
        let now = dom::now_ms();
        let Some(line) = a.held.as_mut() else { return };
        let generation = line.generation;
        let was_ended = line.call.is_ended();
        let out = line.call.handle(input, now);
        if !was_ended && line.call.is_ended() {
            let peer = line.call.view().peer.clone();
            let me = a.session.user();
            if let Some(Phase::Ended(e)) = a.held.as_ref().map(|l| l.call.view().phase.clone()) {
                a.notice(&format!("Held call: {}", texts::ending(&e, &peer, &me)));
            }
        }
        (out, generation)
    };
    carry_out_gen(app, generation, out);
    let over = app
        .borrow()
        .held
        .as_ref()
        .is_some_and(|l| l.call.is_ended());
    if over {
        app.borrow_mut().held = None;
        load_history(app);
    }
}

/// Feeds the call machine and carries out what it says.
pub(crate) fn feed(app: &Shared, input: Input) {
    // Time and the relay connection reach every call; hanging up leaves a
    // group call (every leg). Made afresh for each: an `Input` clone is code.
    let every: Option<fn() -> Input> = match input {
        Input::Tick => Some(|| Input::Tick),
        Input::RelayUp => Some(|| Input::RelayUp),
        Input::RelayDown => Some(|| Input::RelayDown),
        Input::User(UserAction::Hangup) => Some(|| Input::User(UserAction::Hangup)),
        _ => None,
    };
    if let Some(make) = every {
        if !matches!(input, Input::User(_)) {
            feed_held(app, make());
        }
        feed_all(app, make);
    }
    let mut ended_now = false;
    let out = {
        let mut a = app.borrow_mut();
        let now = dom::now_ms();
        let Some(call) = a.call_mut() else { return };
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
            if !not_moved && a.session.elsewhere.as_ref().map(|e| &e.call_id) == id.as_ref() {
                a.session.elsewhere = None;
            }
            let me = a.session.user();
            if let Some(Phase::Ended(e)) = a.call().map(|c| &c.view().phase) {
                let peer = a.call().map(|c| c.view().peer.clone()).unwrap_or_default();
                let t = texts::ending(e, &peer, &me);
                a.notice(&t);
            }
            // A transfer's call is over: if it failed, the transferor is called back.
            let back = a.ring_back.take().filter(|_| failed);
            if let Some(by) = back {
                let peer = a.call().map(|c| c.view().peer.clone()).unwrap_or_default();
                a.notice(&format!(
                    "The transfer to {peer} did not go through; calling {by} back."
                ));
                drop(a);
                carry_out(app, out);
                place_call_keeping_notice(app, &by);
                load_history(app);
                return;
            }
        }
        out
    };
    carry_out(app, out);
    consult_when_held(app);
    if ended_now {
        // A recording (captions) ends with its call (the relay stops it too,
        // and says `recording-ready` once the files are written).
        let mut a = app.borrow_mut();
        a.captions = None;
        a.recording = None;
    }
    if ended_now && app.borrow().held.is_some() {
        // A consultation is over: the held call is current again.
        restore_held(app);
        render(app);
    } else if ended_now {
        if promote(app) {
            // The current leg of a group call is over; another takes its place.
        } else {
            app.borrow_mut().group.clear();
        }
        render(app);
    }
    render_call(&app.borrow());
    sync_alert(app);
    if ended_now {
        // The relay recorded the call as it ended; the list shows it.
        load_history(app);
    }
}

/// Carries out what the current call's machine said (without a current call,
/// only its messages: generation 0 is no call's).
pub(crate) fn carry_out(app: &Shared, out: Vec<Output>) {
    let generation = app.borrow().generation().unwrap_or(0);
    carry_out_gen(app, generation, out);
}

/// Carries out what call `generation`'s machine said: messages go to the
/// relay, commands to that call's connection (`pc`).
pub(crate) fn carry_out_gen(app: &Shared, generation: u32, out: Vec<Output>) {
    for o in out {
        match o {
            Output::Send(m) => app.borrow_mut().send(m),
            Output::Pc(cmd) => {
                if let Some(s) = app.borrow_mut().slot(generation) {
                    s.queue.push_back(cmd);
                }
            }
        }
    }
    crate::pc::run(app, generation, feed_gen);
}

/// Feeds call `generation`, wherever it is kept (current, held, a leg).
pub(crate) fn feed_gen(app: &Shared, generation: u32, input: Input) {
    let (current, held) = {
        let a = app.borrow();
        (
            a.generation() == Some(generation),
            a.held.as_ref().is_some_and(|l| l.generation == generation),
        )
    };
    if current {
        feed(app, input);
    } else if held {
        feed_held(app, input);
    } else {
        feed_leg(app, generation, input);
    }
}

/// Feeds leg `generation` and carries out what it says; a leg that ended is
/// let go (its connection closes, its video goes).
pub(crate) fn feed_leg(app: &Shared, generation: u32, input: Input) {
    let out = {
        let mut a = app.borrow_mut();
        let now = dom::now_ms();
        let Some(line) = a.legs.iter_mut().find(|l| l.generation == generation) else {
            return;
        };
        line.call.handle(input, now)
    };
    carry_out_gen(app, generation, out);
    let ended = {
        let mut a = app.borrow_mut();
        let at = a
            .legs
            .iter()
            .position(|l| l.generation == generation && l.call.is_ended());
        at.map(|i| a.legs.remove(i))
    };
    if let Some(line) = ended {
        if let Some(v) = &line.video {
            v.remove();
        }
        if let Phase::Ended(e) = &line.call.view().phase {
            let a = app.borrow();
            let me = a.session.user();
            a.notice(&texts::ending(e, &line.call.view().peer, &me));
        }
        load_history(app);
    }
    render(app);
}

/// Input for every leg (time, the relay connection, hanging up), made by
/// `make` for each.
fn feed_all(app: &Shared, make: fn() -> Input) {
    let gens: Vec<u32> = app.borrow().legs.iter().map(|l| l.generation).collect();
    for g in gens {
        feed_leg(app, g, make());
    }
}

/// The current call ended: a leg that is up takes its place (its media in the
/// main video), so the person stays in the group call.
fn promote(app: &Shared) -> bool {
    let mut a = app.borrow_mut();
    let Some(at) = a
        .legs
        .iter()
        .position(|l| l.call.view().phase == Phase::Connected)
        .or_else(|| (!a.legs.is_empty()).then_some(0))
    else {
        return false;
    };
    let line = a.legs.remove(at);
    if let Some(v) = &line.video {
        v.remove();
    }
    a.install(line);
    let a = &*a;
    if let Some(peer) = a.peer() {
        peer.show(&a.ui.remote_video, Some(&a.ui.local_video));
    }
    true
}
