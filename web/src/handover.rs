//! Calls that change hands, as the page follows them: a transfer (`refer`),
//! a consult transfer (`replaced`, and "Transfer" during a consultation),
//! merging into a group call, moving a call to this device, picking up a
//! parked call, and the other person's new device (`new-leg`). Each ends or
//! replaces the current call and starts the next through `calling`.

use shieldcall_proto::{CallId, CallMode, Commitment};

use crate::call::{Call, Input, Phase};
use crate::calling::{carry_out, feed};
use crate::dom;
use crate::page::Shared;
use crate::render::render;

/// `refer`: the other person transferred this call to `to`. The call ends here
/// and this device calls `to` with the token; if that call fails, `by` is called
/// back.
pub(crate) fn referred(app: &Shared, call_id: CallId, to: String, by: String, token: String) {
    let current = app
        .borrow()
        .call()
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
        a.set_current(call);
        a.ring_back = Some(by);
        drop(a);
        carry_out(app, out);
    }
    render(app);
}

/// "Transfer" during a consultation: joins the person on hold with the one
/// consulted (`consult-transfer`); the relay then ends both calls here.
pub(crate) fn complete_transfer(app: &Shared) {
    if let Some((call_id, consult)) = consultation(app) {
        let msg = shieldcall_proto::ClientMsg::ConsultTransfer { call_id, consult };
        app.borrow_mut().send(msg);
    }
}

/// "Merge" during a consultation: the held call and this one become one group
/// call (`merge`); the relay then says who is in it (`group`).
pub(crate) fn merge(app: &Shared) {
    if let Some((call_id, consult)) = consultation(app) {
        let msg = shieldcall_proto::ClientMsg::Merge { call_id, consult };
        app.borrow_mut().send(msg);
    }
}

/// The held call and the connected consultation about it, if there are both.
fn consultation(app: &Shared) -> Option<(CallId, CallId)> {
    let a = app.borrow();
    let held = a.held.as_ref().and_then(|l| l.call.id().cloned())?;
    let consult = a
        .call()
        .filter(|c| c.view().phase == Phase::Connected && c.consult_of() == Some(&held))
        .and_then(|c| c.id().cloned())?;
    Some((held, consult))
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
        .call()
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
        a.set_current(call);
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
        let Some(e) = a.session.elsewhere.clone() else {
            return;
        };
        if e.mode != CallMode::Standard {
            return;
        }
        let (call, out) = Call::take_over(e.call_id, &e.peer, e.mode, a.wish(), dom::now_ms());
        a.set_current(call);
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
        a.set_current(call);
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
        let current = a.call().filter(|c| {
            !c.is_ended() && c.id() == Some(&call_id) && c.view().mode == Some(CallMode::Standard)
        });
        let Some(mode) = current.and_then(|c| c.view().mode) else {
            // A member joined the group call: a leg of its own.
            let known = a.legs.iter().any(|l| l.call.id() == Some(&call_id));
            if !a.group.is_empty() && !known {
                drop(a);
                crate::group::new_member(app, call_id, peer, commit);
            }
            return;
        };
        let before = current.map(|c| c.view().peer.clone()).unwrap_or_default();
        let (call, out) = Call::new_leg(call_id, peer, mode, commit, a.wish(), dom::now_ms());
        // Late results of the old leg are dropped by generation; its connection
        // closes (and its camera stops) as the peer is dropped.
        a.set_current(call);
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
