//! Park and pickup: one side of an answered standard call lets go of it under a
//! two-digit code; the other person waits; anyone the policies allow a call with
//! them picks it up with the code (the waiting side then connects afresh to the
//! new device, `new-leg`); after the park timeout the parker is rung back, and if
//! nobody takes it then, the call ends.

use shieldcall_proto::{
    CallFeature, CallId, CallMode, ClientMsg, Commitment, ErrorCode, HangupReason, RelayMsg,
};

use std::time::Instant;

use super::history::Leg;
use super::{Core, DeviceId, PARK_CODES, Park, Side, Timer, WireError};
use crate::policy::Refusal;

/// An error about a pickup, which names no call (the device only knows the code).
fn pickup_error(code: ErrorCode, message: &str) -> WireError {
    WireError {
        code,
        message: message.into(),
        call_id: None,
    }
}

impl Core {
    /// `park` from device `dev` of `user`, under `reserved` when a cluster
    /// node reserved a code for the whole cluster (`Some(None)`: none was
    /// free, refused as when every code is taken, as is a code this hub
    /// uses), or else (`None`) under a code of the hub's choice.
    pub(super) fn park(
        &mut self,
        now: Instant,
        dev: DeviceId,
        user: &str,
        id: &CallId,
        reserved: Option<Option<u8>>,
    ) -> Result<(), WireError> {
        let not_yours =
            || WireError::new(ErrorCode::NotYourCall, "You are not part of this call.", id);
        let wrong = |m: &str| WireError::new(ErrorCode::WrongState, m, id);
        self.at(now);
        let taken: Vec<u8> = self.parked.keys().copied().collect();
        self.next_park += 1;
        let epoch = self.next_park;
        let consulting = self.consulting(id);
        let Some(call) = self.calls.get_mut(id) else {
            return Err(not_yours());
        };
        let Some(side) = call.side_of(user, dev) else {
            return Err(not_yours());
        };
        if !call.answered() {
            return Err(wrong("The call has not been answered yet."));
        }
        if consulting || call.joining.is_some() || call.group.is_some() {
            return Err(wrong(
                "The call is part of a consultation; complete the transfer or hang up the consultation first.",
            ));
        }
        if call.mode == CallMode::E2ee {
            return Err(WireError::unavailable_in_e2ee(CallFeature::Park, id));
        }
        if call.park.is_some() {
            return Err(wrong("The call is parked already."));
        }
        let Some(other) = call.dev(side.other()) else {
            return Err(wrong(
                "The other person's device is reconnecting; try again in a moment.",
            ));
        };
        let code = match reserved {
            Some(c) => c.filter(|c| PARK_CODES.contains(c) && !taken.contains(c)),
            None => free_code(&taken),
        };
        let Some(code) = code else {
            return Err(wrong(
                "Every pickup code (10–99) is in use; pick up a parked call first.",
            ));
        };
        call.bind(side, None);
        call.held_by_caller = false;
        call.held_by_callee = false;
        call.park = Some(Park {
            code,
            side,
            parker: user.into(),
            epoch,
            ringing_back: false,
            timer: None,
            at: now,
        });
        self.parked.insert(code, id.clone());
        // The parker is free for other calls; the call is no longer theirs.
        self.in_call.remove(user);
        if self.cluster {
            self.freed.push((user.to_string(), id.clone()));
        }
        self.sync_presence(user);
        self.send(
            dev,
            &RelayMsg::Parked {
                call_id: id.clone(),
                code,
            },
        );
        self.send_user(
            user,
            &RelayMsg::ElsewhereEnded {
                call_id: id.clone(),
            },
            Some(dev),
        );
        self.send(
            other,
            &RelayMsg::OnPark {
                call_id: id.clone(),
                code,
            },
        );
        tracing::info!(call = %id, code, "call parked");
        let timer = self.schedule(
            self.cfg.park_timeout,
            Timer::Park {
                call: id.clone(),
                epoch,
            },
        );
        if let Some(p) = self.calls.get_mut(id).and_then(|c| c.park.as_mut()) {
            p.timer = timer;
        }
        Ok(())
    }

    /// The person waiting in the call parked under `code`, for the policy decision
    /// `pickup` needs.
    pub fn parked_peer(&self, code: u8) -> Option<String> {
        let call = self.calls.get(self.parked.get(&code)?)?;
        let p = call.park.as_ref()?;
        Some(match p.side {
            Side::Caller => call.callee.clone(),
            Side::Callee => call.caller.clone(),
        })
    }

    /// `pickup` from device `dev` of `user`. `decision` is the call decision for
    /// `user` and the person waiting ([`Hub::parked_peer`]), made now: the pickup
    /// is a new pair, so it must be allowed and give a standard call.
    pub(super) fn pickup(
        &mut self,
        now: Instant,
        dev: DeviceId,
        user: &str,
        msg: &ClientMsg,
        decision: Option<Result<CallMode, Refusal>>,
    ) -> Result<(), WireError> {
        let ClientMsg::Pickup { code, commit } = msg else {
            return Ok(());
        };
        self.at(now);
        let unknown = || {
            pickup_error(
                ErrorCode::NotYourCall,
                &format!("No call is parked under {code}."),
            )
        };
        let Some(id) = self.parked.get(code).cloned() else {
            return Err(unknown());
        };
        let Some(peer) = self.calls.get(&id).and_then(|c| {
            c.park.as_ref().map(|p| match p.side {
                Side::Caller => c.callee.clone(),
                Side::Callee => c.caller.clone(),
            })
        }) else {
            return Err(unknown());
        };
        if peer == user {
            return Err(pickup_error(
                ErrorCode::WrongState,
                "This is your own call, waiting for someone else to pick it up.",
            ));
        }
        if self.in_call.contains_key(user) {
            return Err(pickup_error(
                ErrorCode::WrongState,
                "You are in a call; hang up before you pick up another.",
            ));
        }
        match decision {
            Some(Ok(CallMode::Standard)) => {}
            Some(Ok(CallMode::E2ee)) => {
                return Err(pickup_error(
                    ErrorCode::UnavailableInE2ee,
                    &format!(
                        "Calls between you and {peer} are end-to-end encrypted, and a parked call is a standard call; call them instead."
                    ),
                ));
            }
            Some(Err(_)) | None => {
                return Err(pickup_error(
                    ErrorCode::WrongState,
                    &format!("The policies do not allow you a call with {peer}."),
                ));
            }
        }
        let Some(commit) = *commit else {
            return Err(pickup_error(
                ErrorCode::BadCommitment,
                "pickup needs a commitment to this device's certificate.",
            ));
        };
        take_parked(self, &id, user, dev, commit)
            .map_err(|m| pickup_error(ErrorCode::WrongState, m))?;
        self.send(
            dev,
            &RelayMsg::PickedUp {
                call_id: id.clone(),
                code: *code,
                peer,
                mode: CallMode::Standard,
            },
        );
        self.announce_elsewhere(&id);
        tracing::info!(call = %id, code, "parked call picked up");
        Ok(())
    }

    /// The park timed out: the parker's devices ring ("ring back"); with none
    /// online, or when that ring times out too, the call ends.
    pub(super) fn park_expired(&mut self, id: &CallId, epoch: u64) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let Some(p) = call
            .park
            .as_mut()
            .filter(|p| p.epoch == epoch && !p.ringing_back)
        else {
            return;
        };
        let parker = p.parker.clone();
        let peer = match p.side {
            Side::Caller => call.callee.clone(),
            Side::Callee => call.caller.clone(),
        };
        let online = self.users.contains_key(&parker) && !self.in_call.contains_key(&parker);
        if !online {
            not_picked_up(self, id);
            return;
        }
        if let Some(p) = self.calls.get_mut(id).and_then(|c| c.park.as_mut()) {
            p.ringing_back = true;
        }
        self.send_user(
            &parker,
            &RelayMsg::Incoming {
                call_id: id.clone(),
                from: peer,
                mode: CallMode::Standard,
                referred_by: None,
                group: Vec::new(),
            },
            None,
        );
        tracing::info!(call = %id, "park timed out: ringing the parker back");
        let timer = self.schedule(
            self.cfg.ring_timeout,
            Timer::RingBack {
                call: id.clone(),
                epoch,
            },
        );
        if let Some(p) = self.calls.get_mut(id).and_then(|c| c.park.as_mut()) {
            p.timer = timer;
        }
    }

    /// A message from the parker's side of a parked call (`user` is the parker):
    /// while the parker is rung back, `accept` takes the call back and `decline`
    /// ends it; anything else is not theirs any more.
    pub(super) fn parker_msg(
        g: &mut Core,
        id: &CallId,
        user: &str,
        dev: DeviceId,
        msg: &ClientMsg,
    ) -> Result<(), WireError> {
        let ringing_back = g
            .calls
            .get(id)
            .and_then(|c| c.park.as_ref())
            .is_some_and(|p| p.ringing_back && p.parker == user);
        let not_yours =
            || WireError::new(ErrorCode::NotYourCall, "You are not part of this call.", id);
        match msg {
            ClientMsg::Ringing { .. } if ringing_back => Ok(()),
            ClientMsg::Accept { commit, .. } if ringing_back => {
                if g.in_call.contains_key(user) {
                    return Err(WireError::new(
                        ErrorCode::WrongState,
                        "You are in another call; hang up before you take this one back.",
                        id,
                    ));
                }
                let Some(commit) = *commit else {
                    return Err(WireError::new(
                        ErrorCode::BadCommitment,
                        "accept needs a commitment to the callee's certificate.",
                        id,
                    ));
                };
                take_parked(g, id, user, dev, commit)
                    .map_err(|m| WireError::new(ErrorCode::WrongState, m, id))?;
                g.send_user(
                    user,
                    &RelayMsg::AnsweredElsewhere {
                        call_id: id.clone(),
                    },
                    Some(dev),
                );
                g.announce_elsewhere(id);
                tracing::info!(call = %id, "parked call taken back by the parker");
                Ok(())
            }
            ClientMsg::Decline { .. } if ringing_back => {
                not_picked_up(g, id);
                Ok(())
            }
            _ => Err(not_yours()),
        }
    }
}

/// A free pickup code, chosen at random among the free ones (so a code cannot be
/// guessed from the order of parks); `None` when all are taken.
fn free_code(taken: &[u8]) -> Option<u8> {
    let free: Vec<u8> = PARK_CODES.filter(|c| !taken.contains(c)).collect();
    if free.is_empty() {
        return None;
    }
    let mut b = [0u8; 2];
    // Without randomness the first free code still works; only the order is
    // then predictable.
    let r = getrandom::getrandom(&mut b).map_or(0, |()| usize::from(u16::from_le_bytes(b)));
    free.get(r % free.len()).copied()
}

/// Ends a parked call nobody took: the person waiting gets `hangup`
/// (`not-picked-up`), the parker's ringing devices `cancelled`.
fn not_picked_up(g: &mut Core, id: &CallId) {
    let Some(call) = g.calls.get(id) else { return };
    let Some(p) = call.park.clone() else { return };
    if let Some(d) = call.dev(p.side.other()) {
        g.send(
            d,
            &RelayMsg::Hangup {
                call_id: id.clone(),
                reason: HangupReason::NotPickedUp,
            },
        );
    }
    if p.ringing_back {
        g.send_user(
            &p.parker,
            &RelayMsg::Cancelled {
                call_id: id.clone(),
            },
            None,
        );
    }
    tracing::info!(call = %id, "parked call ended: nobody picked it up");
    g.end_call(id);
}

/// Gives the parked side of call `id` to device `dev` of `user` (a pickup, or the
/// parker taking it back): the person waiting gets `new-leg` with `commit` and
/// connects afresh. Errors are sentences for a `wrong-state`.
fn take_parked(
    g: &mut Core,
    id: &CallId,
    user: &str,
    dev: DeviceId,
    commit: Commitment,
) -> Result<(), &'static str> {
    let (g_now, unix) = (g.now(), g.unix_now());
    let Some(call) = g.calls.get_mut(id) else {
        return Err("The call is over.");
    };
    let Some(p) = call.park.take() else {
        return Err("The call is no longer parked.");
    };
    let Some(waiting) = call.dev(p.side.other()) else {
        call.park = Some(p);
        return Err("The person waiting is reconnecting; try again in a moment.");
    };
    // Someone else picks up: the parker's part of the call is over, and both
    // people's histories get it (up to the park); the rest is a new leg with
    // its own entry, from now.
    let first_leg = (p.parker != user).then(|| {
        let leg = Leg {
            caller: call.caller.clone(),
            callee: call.callee.clone(),
            mode: call.mode,
            started_at: call.started_at,
            answered_at: call.answered_at,
            ended: p.at,
        };
        call.started_at = unix;
        call.answered_at = Some(g_now);
        leg
    });
    match p.side {
        Side::Caller => call.caller = user.into(),
        Side::Callee => call.callee = user.into(),
    }
    call.bind(p.side, Some(dev));
    g.parked.remove(&p.code);
    if g.cluster {
        g.unparked.push((p.code, id.clone()));
    }
    g.cancel(p.timer);
    if let Some(leg) = first_leg {
        g.record_leg(&leg);
    }
    g.in_call.insert(user.into(), id.clone());
    g.sync_presence(user);
    if p.ringing_back && p.parker != user {
        // Someone else picked up while the parker was rung back.
        g.send_user(
            &p.parker,
            &RelayMsg::Cancelled {
                call_id: id.clone(),
            },
            None,
        );
    }
    g.send(
        waiting,
        &RelayMsg::NewLeg {
            call_id: id.clone(),
            peer: user.into(),
            commit,
        },
    );
    Ok(())
}

/// The parker did not take back the parked call `id` they were rung back for
/// (park number `epoch`): it ends.
pub(super) fn ring_back_expired(g: &mut Core, id: &CallId, epoch: u64) {
    let still = g
        .calls
        .get(id)
        .and_then(|c| c.park.as_ref())
        .is_some_and(|p| p.epoch == epoch && p.ringing_back);
    if still {
        not_picked_up(g, id);
    }
}
