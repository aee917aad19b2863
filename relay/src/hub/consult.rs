//! Consult transfer (SIP REFER with Replaces): Bob, in a standard call with
//! Alice, holds it, calls Carol (`consult`: the one second call a user may
//! have), talks with her, and joins the two (`consult-transfer`). Bob leaves both
//! calls; Carol's device leaves the consultation and joins Alice's call
//! (`replaced`, then `join` with a commitment to a fresh certificate); Alice's
//! device connects afresh to it (`new-leg`), so the two people compare a new
//! code. Nobody rings again. If the consultation ends any other way, the held
//! call is simply Bob's again.
//!
//! What this must never do: let a consultation or a hand-over skip the checks a
//! new call between the people gets (the connection decides the new pair from
//! today's policies before it calls in), or forward anything on the handed-over
//! side before its new device committed.

use std::time::{Duration, Instant};

use shieldcall_proto::{
    CallFeature, CallId, CallMode, ClientMsg, ErrorCode, HangupReason, RelayMsg,
};

use super::calls::Placed;
use super::history::Leg;
use super::{Core, DeviceId, Joining, Side, Timer, WireError};
use crate::policy::Refusal;

/// How long the device a call was handed to may take to `join` it (it makes a
/// certificate, a few milliseconds, and sends one message); past it the person
/// waiting hears `peer-gone`.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(15);

impl Core {
    /// The live consultation of the held call `held`, and who placed it.
    pub(super) fn consultation_of(&self, held: &CallId) -> Option<(CallId, String)> {
        let call = self.calls.get(held)?;
        [&call.caller, &call.callee].into_iter().find_map(|u| {
            let id = self.in_call.get(u.as_str())?;
            let c = self.calls.get(id)?;
            (id != held && c.consult_of.as_ref() == Some(held) && c.caller == *u)
                .then(|| (id.clone(), u.clone()))
        })
    }

    /// Whether call `id` is a consultation whose held call is still its caller's.
    pub(super) fn is_consultation(&self, id: &CallId) -> bool {
        self.calls.get(id).is_some_and(|c| {
            c.consult_of
                .as_ref()
                .is_some_and(|held| self.held_for_consult(&c.caller, held))
        })
    }

    /// Whether call `id` takes part in a consultation, either side of it: such a
    /// call is not parked, moved or transferred blind until it is over.
    pub(super) fn consulting(&self, id: &CallId) -> bool {
        self.is_consultation(id) || self.consultation_of(id).is_some()
    }
}

impl Core {
    /// `consult` from device `dev` of `user`: call `callee` while the held call
    /// `held` waits. `decision` is the call decision for the new pair; the
    /// consultation is an ordinary call in every other respect (its own mode,
    /// id and code). A held call that does not fit gets `call-refused` with
    /// `busy` (the caller is in a call that cannot wait).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn consult(
        &mut self,
        now: Instant,
        dev: DeviceId,
        user: &str,
        held: &CallId,
        callee: &str,
        decision: Result<CallMode, Refusal>,
        call_id: CallId,
    ) -> Result<(), WireError> {
        self.at(now);
        check_held(self, held, user, dev, CallFeature::Transfer)?;
        if self.consultation_of(held).is_some() {
            return Err(WireError::new(
                ErrorCode::WrongState,
                "You are consulting someone already; hang that call up first.",
                held,
            ));
        }
        let (by_me, _) = held_state(self, held, user);
        if !by_me {
            return Err(WireError::new(
                ErrorCode::WrongState,
                "Put the call on hold before you consult someone.",
                held,
            ));
        }
        let placed = Placed {
            dev,
            caller: user,
            callee,
            call_id,
            referred_by: None,
            beside: Some(held.clone()),
            consult: true,
            group: None,
        };
        self.place(placed, decision);
        Ok(())
    }

    /// The two people a consult transfer of `held` with `consult` by `user`
    /// would connect (the person waiting in `held`, the one consulted), for the
    /// policy decision the transfer needs; `None` when the calls do not fit.
    pub fn consult_pair(
        &self,
        held: &CallId,
        consult: &CallId,
        user: &str,
    ) -> Option<(String, String)> {
        let h = self.calls.get(held)?;
        let c = self.calls.get(consult)?;
        let waiting = if h.caller == user {
            h.callee.clone()
        } else if h.callee == user {
            h.caller.clone()
        } else {
            return None;
        };
        (c.caller == user && c.consult_of.as_ref() == Some(held))
            .then(|| (waiting, c.callee.clone()))
    }

    /// `consult-transfer` from device `dev` of `user`: the person waiting in
    /// `held` and the person consulted in `consult` are connected. `decision`
    /// is the call decision for those two, made now: they must be allowed a
    /// standard call (the joined call keeps the held call's id and mode).
    pub(super) fn consult_transfer(
        &mut self,
        now: Instant,
        dev: DeviceId,
        user: &str,
        held: &CallId,
        consult: &CallId,
        decision: Option<Result<CallMode, Refusal>>,
    ) -> Result<(), WireError> {
        self.at(now);
        let (waiting, _, target, target_dev) =
            check_pair(self, held, consult, user, dev, CallFeature::Transfer)?;
        let wrong = |m: &str| WireError::new(ErrorCode::WrongState, m, held);
        let side = match self.calls.get(held) {
            Some(h) if h.caller == user => Side::Caller,
            Some(_) => Side::Callee,
            None => return Err(wrong("The call is over.")),
        };
        let e2ee = format!(
            "Calls between {waiting} and {target} are end-to-end encrypted, and a transferred call is a standard call; transfer blind instead, so that they call each other."
        );
        super::standard_pair(decision.as_ref(), (&waiting, &target), &e2ee, Some(held))?;
        // The consultation ends for both; the consulted person's device is
        // about to join the held call instead.
        if let Some(c) = self.calls.get_mut(consult) {
            c.consult_of = None;
        }
        self.send(
            target_dev,
            &RelayMsg::Replaced {
                call_id: consult.clone(),
                join: held.clone(),
                peer: waiting.clone(),
                by: user.into(),
                mode: CallMode::Standard,
            },
        );
        self.send(
            dev,
            &RelayMsg::Hangup {
                call_id: consult.clone(),
                reason: HangupReason::Transferred,
            },
        );
        self.end_call(consult);
        // The transferor's part of the held call is over (both histories keep
        // it); the rest is the new pair's, from now.
        let (at, unix) = (self.now(), self.unix_now());
        let timer = self.schedule(JOIN_TIMEOUT, Timer::Join(held.clone()));
        let Some(h) = self.calls.get_mut(held) else {
            return Ok(());
        };
        let leg = Leg {
            caller: h.caller.clone(),
            callee: h.callee.clone(),
            mode: h.mode,
            started_at: h.started_at,
            answered_at: h.answered_at,
            ended: at,
        };
        h.started_at = unix;
        h.answered_at = Some(at);
        h.held_by_caller = false;
        h.held_by_callee = false;
        match side {
            Side::Caller => h.caller = target.clone(),
            Side::Callee => h.callee = target.clone(),
        }
        h.bind(side, Some(target_dev));
        h.joining = Some(Joining { side, timer });
        self.record_leg(&leg);
        self.in_call.insert(target.clone(), held.clone());
        if self.in_call.get(user) == Some(held) {
            self.in_call.remove(user);
        }
        // The transferor let go of the held call, which goes on: their busy
        // row (it names the held call; the consultation took the consulted
        // person's only) goes. Their `in_call` named the consultation, which
        // has just ended, so it is no guide here.
        if self.cluster && !self.in_call.contains_key(user) {
            self.freed.push((user.to_string(), held.clone()));
        }
        self.sync_presence(user);
        self.sync_presence(&target);
        self.send(
            dev,
            &RelayMsg::Hangup {
                call_id: held.clone(),
                reason: HangupReason::Transferred,
            },
        );
        self.send_user(
            user,
            &RelayMsg::ElsewhereEnded {
                call_id: held.clone(),
            },
            Some(dev),
        );
        tracing::info!(call = %held, "consult transfer: waiting for the new device to join");
        Ok(())
    }

    /// `join` from device `dev` of `user`: the device a consult transfer handed
    /// the call to commits to its fresh certificate; the person waiting gets
    /// `new-leg` and offers to it.
    pub(super) fn join(
        &mut self,
        now: Instant,
        dev: DeviceId,
        user: &str,
        msg: &ClientMsg,
    ) -> Result<(), WireError> {
        let ClientMsg::Join {
            call_id: id,
            commit,
        } = msg
        else {
            return Ok(());
        };
        self.at(now);
        let not_yours =
            || WireError::new(ErrorCode::NotYourCall, "You are not part of this call.", id);
        let Some(call) = self.calls.get_mut(id) else {
            return Err(not_yours());
        };
        let Some(j) = call.joining else {
            return Err(not_yours());
        };
        let who = call.user(j.side);
        let other = call.dev(j.side.other());
        // The device it was handed to, or another of the user's after a
        // reconnect (the side is then unbound).
        if who != user || call.dev(j.side).is_some_and(|d| d != dev) {
            return Err(not_yours());
        }
        let Some(commit) = *commit else {
            return Err(WireError::new(
                ErrorCode::BadCommitment,
                "join needs a commitment to this device's certificate.",
                id,
            ));
        };
        let Some(other) = other else {
            return Err(WireError::new(
                ErrorCode::WrongState,
                "The other person's device is reconnecting; try again in a moment.",
                id,
            ));
        };
        call.bind(j.side, Some(dev));
        call.joining = None;
        self.cancel(j.timer);
        self.send(
            other,
            &RelayMsg::NewLeg {
                call_id: id.clone(),
                peer: user.into(),
                commit,
            },
        );
        self.announce_elsewhere(id);
        tracing::info!(call = %id, device = dev, "consult transfer: joined");
        Ok(())
    }
}

/// Checks that `held` is an answered standard call of `user`'s, bound to
/// `dev`, not parked, not handed over, not itself a consultation, and without
/// a consultation already.
fn check_held(
    g: &Core,
    held: &CallId,
    user: &str,
    dev: DeviceId,
    feature: CallFeature,
) -> Result<(), WireError> {
    let wrong = |m: &str| WireError::new(ErrorCode::WrongState, m, held);
    let call = g.own_standard_call(held, user, dev, feature)?;
    if call.group.is_some() {
        return Err(wrong(
            "This is a group call: add people to it instead of consulting.",
        ));
    }
    if g.is_consultation(held) {
        return Err(wrong(
            "This call is a consultation; complete the transfer or hang up first.",
        ));
    }
    Ok(())
}

/// What `consult-transfer` and `merge` check alike: `held` is `user`'s
/// ([`check_held`]), `consult` is their answered standard consultation about
/// it, and both other people's devices are there. Returns the person waiting
/// and their device, then the person consulted and theirs.
pub(super) fn check_pair(
    g: &Core,
    held: &CallId,
    consult: &CallId,
    user: &str,
    dev: DeviceId,
    feature: CallFeature,
) -> Result<(String, DeviceId, String, DeviceId), WireError> {
    check_held(g, held, user, dev, feature)?;
    let wrong = |m: &str| WireError::new(ErrorCode::WrongState, m, held);
    let Some(c) = g.calls.get(consult) else {
        return Err(WireError::new(
            ErrorCode::NotYourCall,
            "You are not part of this call.",
            consult,
        ));
    };
    if c.caller != user || c.caller_dev() != Some(dev) || c.consult_of.as_ref() != Some(held) {
        return Err(WireError::new(
            ErrorCode::NotYourCall,
            "That call is not your consultation about this one.",
            consult,
        ));
    }
    if !c.answered() {
        return Err(wrong("The person you consult has not answered yet."));
    }
    if c.mode == CallMode::E2ee {
        return Err(WireError::unavailable_in_e2ee(feature, consult));
    }
    let (target, target_dev) = (c.callee.clone(), c.callee_dev());
    let h = g
        .calls
        .get(held)
        .ok_or_else(|| wrong("The call is over."))?;
    let (waiting, waiting_dev) = if h.caller == user {
        (h.callee.clone(), h.callee_dev())
    } else {
        (h.caller.clone(), h.caller_dev())
    };
    match (waiting_dev, target_dev) {
        (Some(w), Some(t)) => Ok((waiting, w, target, t)),
        _ => Err(wrong(
            "The other person's device is reconnecting; try again in a moment.",
        )),
    }
}

/// (this side holds, the other side holds) for `user` in call `id`.
fn held_state(g: &Core, id: &CallId, user: &str) -> (bool, bool) {
    g.calls.get(id).map_or((false, false), |c| {
        if c.caller == user {
            (c.held_by_caller, c.held_by_callee)
        } else {
            (c.held_by_callee, c.held_by_caller)
        }
    })
}

/// The device a consult transfer handed call `id` to never joined: the person
/// waiting hears `peer-gone`, and the call ends.
pub(super) fn join_expired(g: &mut Core, id: &CallId) {
    let Some(call) = g.calls.get(id) else { return };
    let Some(j) = call.joining else { return };
    let (joining, waiting) = (call.dev(j.side), call.dev(j.side.other()));
    if let Some(d) = waiting {
        g.send(
            d,
            &RelayMsg::Hangup {
                call_id: id.clone(),
                reason: HangupReason::PeerGone,
            },
        );
    }
    if let Some(d) = joining {
        g.send(
            d,
            &RelayMsg::Hangup {
                call_id: id.clone(),
                reason: HangupReason::Normal,
            },
        );
    }
    tracing::info!(call = %id, "consult transfer: the new device never joined");
    g.end_call(id);
}
