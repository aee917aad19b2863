//! Calls: invite, ring timeout, the messages of a call and their authorisation,
//! and `resume` after a reconnect or a relay restart.

use shieldcall_proto::{
    CallFeature, CallId, CallMode, ClientMsg, ErrorCode, HangupReason, RefuseReason, RelayMsg,
};

use std::time::Instant;

use super::{Call, Core, DeviceId, MAX_RESTORING, Restore, Side, Timer, WireError};
use crate::policy::Refusal;

/// A call to place: who calls whom from which device, under which id.
#[derive(Debug)]
pub(super) struct Placed<'a> {
    /// The caller's device.
    pub dev: DeviceId,
    /// The caller.
    pub caller: &'a str,
    /// The callee.
    pub callee: &'a str,
    /// The minted id.
    pub call_id: CallId,
    /// Who transferred the caller (a blind transfer's call).
    pub referred_by: Option<String>,
    /// The call the caller is in already, which this one is placed beside (a
    /// consultation, or an add to a group call).
    pub beside: Option<CallId>,
    /// This call is a consultation about `beside` (held by the caller).
    pub consult: bool,
    /// The group call this one adds its callee to, and who is in it besides
    /// the caller (told to the callee).
    pub group: Option<(super::group::GroupId, Vec<String>)>,
}

impl Core {
    /// Places a call whose mode (or refusal) the caller already decided;
    /// `referred_by` names who transferred the caller (a transfer's call).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn invite(
        &mut self,
        now: Instant,
        dev: DeviceId,
        caller: &str,
        callee: &str,
        decision: Result<CallMode, Refusal>,
        call_id: CallId,
        referred_by: Option<String>,
    ) {
        self.at(now);
        let placed = Placed {
            dev,
            caller,
            callee,
            call_id,
            referred_by,
            beside: None,
            consult: false,
            group: None,
        };
        self.place(placed, decision);
    }

    /// Rings the callee of `p` (or refuses the call, telling the caller why).
    pub(super) fn place(&mut self, p: Placed<'_>, decision: Result<CallMode, Refusal>) {
        let g = self;
        let Placed {
            dev,
            caller,
            callee,
            call_id,
            referred_by,
            beside,
            consult,
            group,
        } = p;
        let refuse = |g: &Core, reason: RefuseReason, required_by: Option<String>| {
            g.send(
                dev,
                &RelayMsg::CallRefused {
                    call_id: call_id.clone(),
                    peer: callee.into(),
                    reason,
                    required_by,
                },
            );
        };
        let mode = match decision {
            Ok(mode) => mode,
            Err(r) => {
                if r.reason == RefuseReason::E2eeRequired {
                    // Both sides learn why; the callee never rang.
                    g.send_user(
                        callee,
                        &RelayMsg::CallRefused {
                            call_id: call_id.clone(),
                            peer: caller.into(),
                            reason: r.reason,
                            required_by: r.required_by.clone(),
                        },
                        None,
                    );
                }
                g.record_refused(caller, callee, false);
                return refuse(g, r.reason, r.required_by);
            }
        };
        // A consultation is the one second call a user may have (the held call
        // was checked by `consult`); otherwise the caller's device is busy.
        let own = g.in_call.get(caller);
        if own.is_some() && own != beside.as_ref() {
            // The caller's own device is in another call: nothing for the callee.
            g.record_refused(caller, callee, false);
            return refuse(g, RefuseReason::Busy, None);
        }
        if g.in_call.contains_key(callee) {
            g.record_refused(caller, callee, true);
            return refuse(g, RefuseReason::Busy, None);
        }
        if !g.users.contains_key(callee) {
            g.record_refused(caller, callee, true);
            return refuse(g, RefuseReason::Offline, None);
        }
        g.calls.insert(
            call_id.clone(),
            Call {
                consult_of: beside.filter(|_| consult),
                group: group.as_ref().map(|(gid, _)| *gid),
                ..Call::ringing(mode, (caller, dev), callee, g.unix_now())
            },
        );
        g.in_call.insert(caller.into(), call_id.clone());
        g.in_call.insert(callee.into(), call_id.clone());
        g.send(
            dev,
            &RelayMsg::Calling {
                call_id: call_id.clone(),
                to: callee.into(),
                mode,
            },
        );
        g.send_user(
            callee,
            &RelayMsg::Incoming {
                call_id: call_id.clone(),
                from: caller.into(),
                mode,
                referred_by,
                group: group.map(|(_, others)| others).unwrap_or_default(),
            },
            None,
        );
        g.sync_presence(caller);
        g.sync_presence(callee);
        tracing::info!(call = %call_id, ?mode, "call ringing");
        let timer = g.schedule(g.cfg.ring_timeout, Timer::Ring(call_id.clone()));
        if let Some(call) = g.calls.get_mut(&call_id) {
            call.ring_timer = timer;
        }
    }

    /// Whether this relay knows the call (it may have lost it in a restart).
    pub fn knows_call(&self, id: &CallId) -> bool {
        self.calls.contains_key(id)
    }

    /// A new, unforgeable call id (see `call_id`).
    pub fn mint_call_id(
        &self,
        caller: &str,
        callee: &str,
        mode: CallMode,
    ) -> crate::Result<CallId> {
        self.cfg.key.mint(caller, callee, mode)
    }

    /// Handles `resume`: rebinds a known call (see `call_msg`), or restores
    /// a call this relay lost in a restart once both people's devices resumed it
    /// naming each other (docs/protocol.md, "Reconnecting"). A restore needs a
    /// call id this relay minted for exactly those two people and the mode both
    /// name, and `decision`, the call decision for the pair made again now from
    /// the current policies (the caller computes it for an unknown call), must
    /// still give that mode.
    pub(super) fn resume(
        &mut self,
        now: Instant,
        dev: DeviceId,
        user: &str,
        msg: ClientMsg,
        decision: Option<Result<CallMode, Refusal>>,
    ) -> Result<(), WireError> {
        let ClientMsg::Resume {
            call_id,
            peer,
            mode,
        } = &msg
        else {
            return self.call_msg(now, dev, user, msg);
        };
        let id = call_id.clone();
        {
            self.at(now);
            let g = &mut *self;
            if !g.calls.contains_key(&id) {
                let busy = |g: &Core, u: &str| g.in_call.get(u).is_some_and(|c| *c != id);
                if busy(g, user) || peer == user {
                    return Err(WireError::new(
                        ErrorCode::NotYourCall,
                        "You are not part of this call.",
                        &id,
                    ));
                }
                let matched = g.restoring.get(&id).is_some_and(|r| {
                    r.user == *peer && r.peer == user && g.devices.contains_key(&r.dev)
                });
                if !matched {
                    // Only a call id this relay could have made, naming an
                    // account that exists, is kept: a claim costs memory for the
                    // grace period.
                    let known_peer = g.accounts.as_ref().is_some_and(|a| a.contains(peer));
                    let minted = g.cfg.key.verify(&id, user, peer, *mode)
                        || g.cfg.key.verify(&id, peer, user, *mode);
                    if !minted || !known_peer {
                        return Err(WireError::new(
                            ErrorCode::NotYourCall,
                            "You are not part of this call.",
                            &id,
                        ));
                    }
                    // The first claim stands until it is matched or expires; a
                    // different user's claim does not displace it.
                    let keep = g.restoring.get(&id).is_some_and(|r| r.user != user);
                    if !keep {
                        // One claim per device: a new one replaces its last.
                        let replaced: Vec<CallId> = g
                            .restoring
                            .iter()
                            .filter(|(_, r)| r.dev == dev)
                            .map(|(c, _)| c.clone())
                            .collect();
                        for c in replaced {
                            let timer = g.restoring.remove(&c).and_then(|r| r.timer);
                            g.cancel(timer);
                        }
                        if g.restoring.len() >= MAX_RESTORING {
                            return Err(WireError::new(
                                ErrorCode::WrongState,
                                "The relay is restoring too many calls; try again shortly.",
                                &id,
                            ));
                        }
                        g.next_claim += 1;
                        let epoch = g.next_claim;
                        let timer = g.schedule(
                            g.cfg.grace,
                            Timer::Restore {
                                call: id.clone(),
                                epoch,
                            },
                        );
                        let old = g.restoring.insert(
                            id.clone(),
                            Restore {
                                user: user.into(),
                                dev,
                                peer: peer.clone(),
                                mode: *mode,
                                epoch,
                                timer,
                            },
                        );
                        g.cancel(old.and_then(|r| r.timer));
                    }
                    return Ok(());
                }
                let Some(first) = g.restoring.remove(&id) else {
                    return Ok(());
                };
                g.cancel(first.timer);
                if busy(g, peer) {
                    return Err(WireError::new(
                        ErrorCode::NotYourCall,
                        "You are not part of this call.",
                        &id,
                    ));
                }
                // Who called whom is in the id; the mode must be the one both
                // name and the one the policies give the pair now.
                let caller_first = g.cfg.key.verify(&id, &first.user, user, *mode);
                let still_allowed = decision
                    .as_ref()
                    .is_some_and(|d| d.as_ref().ok() == Some(mode));
                if first.mode != *mode
                    || !(caller_first || g.cfg.key.verify(&id, user, &first.user, *mode))
                    || !still_allowed
                {
                    let end = RelayMsg::Hangup {
                        call_id: id.clone(),
                        reason: HangupReason::Normal,
                    };
                    g.send(first.dev, &end);
                    g.send(dev, &end);
                    tracing::info!(call = %id, "restore refused: the call no longer fits the policies");
                    return Ok(());
                }
                let mode = *mode;
                let (caller, caller_dev, callee, callee_dev) = if caller_first {
                    (first.user.clone(), first.dev, user.to_string(), dev)
                } else {
                    (user.to_string(), dev, first.user.clone(), first.dev)
                };
                let now = g.now();
                // What the relay lost in its restart: the call is recorded
                // from its restore.
                let at = (now, g.unix_now());
                let restored = Call::up(mode, (&caller, caller_dev), (&callee, callee_dev), at);
                g.calls.insert(id.clone(), restored);
                g.in_call.insert(first.user.clone(), id.clone());
                g.in_call.insert(user.into(), id.clone());
                g.sync_presence(&first.user);
                g.sync_presence(user);
                g.announce_elsewhere(&id);
                tracing::info!(call = %id, "call restored after a relay restart");
                return Ok(());
            }
        }
        self.call_msg(now, dev, user, msg)
    }

    /// The other person in call `id` of `user`, if the call exists and `user` is
    /// in it (for the policy decision `move_here` needs).
    pub fn call_peer(&self, id: &CallId, user: &str) -> Option<String> {
        let call = self.calls.get(id)?;
        if call.caller == user {
            Some(call.callee.clone())
        } else if call.callee == user {
            Some(call.caller.clone())
        } else {
            None
        }
    }

    /// `move-here` from device `dev` of `user`: this device takes over the side of
    /// the answered standard call that another device of the user carries. The
    /// old device gets `hangup` (`moved`), the other person's device `new-leg`
    /// with this device's commitment, so the two connect afresh. `decision` is the
    /// pair's call decision now: the call moves only if it still gives a standard
    /// call (a new leg follows today's policies, as a new call would).
    pub(super) fn move_here(
        &mut self,
        now: Instant,
        dev: DeviceId,
        user: &str,
        msg: &ClientMsg,
        decision: Option<Result<CallMode, Refusal>>,
    ) -> Result<(), WireError> {
        let ClientMsg::MoveHere {
            call_id: id,
            commit,
        } = msg
        else {
            return Ok(());
        };
        let not_yours =
            || WireError::new(ErrorCode::NotYourCall, "You are not part of this call.", id);
        let wrong = |m: &str| WireError::new(ErrorCode::WrongState, m, id);
        self.at(now);
        let consulting = self.consulting(id);
        let Some(call) = self.calls.get_mut(id) else {
            return Err(not_yours());
        };
        let side = if call.caller == user {
            Side::Caller
        } else if call.callee == user {
            Side::Callee
        } else {
            return Err(not_yours());
        };
        if !call.answered() {
            return Err(wrong("The call has not been answered yet."));
        }
        if call.mode == CallMode::E2ee {
            return Err(WireError::unavailable_in_e2ee(
                CallFeature::MoveToDevice,
                id,
            ));
        }
        if consulting || call.joining.is_some() || call.group.is_some() {
            return Err(wrong(
                "The call is part of a consultation; complete the transfer or hang up the consultation first.",
            ));
        }
        let (mine, other) = (call.dev(side), call.dev(side.other()));
        if mine == Some(dev) {
            return Err(wrong("The call is already on this device."));
        }
        let Some(other) = other else {
            return Err(wrong(
                "The other person's device is reconnecting; try again in a moment.",
            ));
        };
        match decision {
            Some(Ok(CallMode::Standard)) => {}
            Some(Ok(CallMode::E2ee)) => {
                return Err(WireError::new(
                    ErrorCode::UnavailableInE2ee,
                    "Your settings now make calls between you two end-to-end encrypted, which cannot move between devices; hang up and call again.",
                    id,
                ));
            }
            Some(Err(_)) | None => {
                return Err(WireError::new(
                    ErrorCode::WrongState,
                    "The policies no longer allow this call on a new device.",
                    id,
                ));
            }
        }
        let Some(commit) = *commit else {
            return Err(WireError::new(
                ErrorCode::BadCommitment,
                "move-here needs a commitment to this device's certificate.",
                id,
            ));
        };
        call.bind(side, Some(dev));
        // A new leg starts unheld on both sides.
        call.held_by_caller = false;
        call.held_by_callee = false;
        let peer = match side {
            Side::Caller => call.callee.clone(),
            Side::Callee => call.caller.clone(),
        };
        if let Some(old) = mine {
            self.send(
                old,
                &RelayMsg::Hangup {
                    call_id: id.clone(),
                    reason: HangupReason::Moved,
                },
            );
            self.send(
                old,
                &RelayMsg::ElsewhereCall {
                    call_id: id.clone(),
                    peer,
                    mode: CallMode::Standard,
                },
            );
        }
        self.send(
            other,
            &RelayMsg::NewLeg {
                call_id: id.clone(),
                peer: user.into(),
                commit,
            },
        );
        tracing::info!(call = %id, device = dev, "call moved to another device");
        Ok(())
    }

    /// Restore claims held now (for tests and the operations docs' limits).
    pub fn restoring(&self) -> usize {
        self.restoring.len()
    }

    /// Handles a message about an existing call from device `dev` of `user`:
    /// one authorisation (`authorise`) decides whether they may send it, where
    /// the call is, then one function per message carries it out.
    pub(super) fn call_msg(
        &mut self,
        now: Instant,
        dev: DeviceId,
        user: &str,
        msg: ClientMsg,
    ) -> Result<(), WireError> {
        let Some(id) = msg.call_id().cloned() else {
            return Ok(());
        };
        self.at(now);
        // Stopping a voicemail being left (it is not a call).
        if matches!(msg, ClientMsg::Record { on: false, .. })
            && self.voicemail_of(&id, user, dev).is_some()
        {
            self.end_voicemail(&id);
            return Ok(());
        }
        let Some(p) = authorise(self, id, user, dev, &msg)? else {
            return Ok(());
        };
        let call_id = p.id.clone();
        match msg {
            ClientMsg::Ringing { .. } => {
                if let Some(d) = p.caller_dev {
                    self.send(d, &RelayMsg::Ringing { call_id });
                }
                Ok(())
            }
            ClientMsg::Accept { commit, .. } => self.accept(&p, commit),
            ClientMsg::Decline { .. } => {
                Self::decline(self, &p.id, p.caller_dev, &p.callee, dev);
                Ok(())
            }
            ClientMsg::Cancel { .. } => {
                cancel(self, &p.id, &p.callee);
                Ok(())
            }
            ClientMsg::Hangup { reason, .. } => {
                hang_up(self, &p, reason);
                Ok(())
            }
            ClientMsg::Resume { .. } => {
                resume_bound(self, &p);
                Ok(())
            }
            ClientMsg::Offer { sdp, .. } => forward(self, &p, RelayMsg::Offer { call_id, sdp }),
            ClientMsg::Answer { sdp, .. } => forward(self, &p, RelayMsg::Answer { call_id, sdp }),
            ClientMsg::Ice { candidate, .. } => {
                forward(self, &p, RelayMsg::Ice { call_id, candidate })
            }
            ClientMsg::Hold { on, .. } => {
                hold(self, &p, on);
                Ok(())
            }
            ClientMsg::Record { on, .. } => {
                media_use(self, &p, on, false);
                Ok(())
            }
            ClientMsg::Captions { on, .. } => {
                media_use(self, &p, on, true);
                Ok(())
            }
            // `authorise` lets through only the messages handled above.
            _ => Ok(()),
        }
    }

    /// The callee's device accepts the ringing call with its commitment.
    fn accept(
        &mut self,
        p: &Party<'_>,
        commit: Option<shieldcall_proto::Commitment>,
    ) -> Result<(), WireError> {
        let id = &p.id;
        // Every call commits, whatever its mode: the mode decides features,
        // never whether the two people can verify.
        if commit.is_none() {
            return Err(WireError::new(
                ErrorCode::BadCommitment,
                "accept needs a commitment to the callee's certificate.",
                id,
            ));
        }
        let at = self.now();
        let ring = self.calls.get_mut(id).and_then(|call| {
            call.answer(p.dev);
            call.answered_at = Some(at);
            call.ring_timer.take()
        });
        self.cancel(ring);
        if self.cluster {
            self.answered.push(id.clone());
        }
        if let Some(d) = p.caller_dev {
            self.send(
                d,
                &RelayMsg::Accepted {
                    call_id: id.clone(),
                    commit,
                },
            );
        }
        self.send_user(
            &p.callee,
            &RelayMsg::AnsweredElsewhere {
                call_id: id.clone(),
            },
            Some(p.dev),
        );
        self.announce_elsewhere(id);
        tracing::info!(call = %id, "call accepted");
        // An add to a group call: the newcomer meets everyone else.
        if let Some(gid) = self.calls.get(id).and_then(|c| c.group) {
            self.grow(gid, id, &p.callee, p.dev);
        }
        Ok(())
    }

    fn decline(
        g: &mut Core,
        id: &CallId,
        caller_dev: Option<DeviceId>,
        callee: &str,
        dev: DeviceId,
    ) {
        if let Some(call) = g.calls.get_mut(id) {
            call.declined = true;
        }
        if let Some(d) = caller_dev {
            g.send(
                d,
                &RelayMsg::CallRefused {
                    call_id: id.clone(),
                    peer: callee.into(),
                    reason: RefuseReason::Declined,
                    required_by: None,
                },
            );
        }
        g.send_user(
            callee,
            &RelayMsg::Cancelled {
                call_id: id.clone(),
            },
            Some(dev),
        );
        g.end_call(id);
    }
}

/// The sender of a message about a call, as the call sees them once
/// [`authorise`] let the message through.
#[derive(Debug)]
struct Party<'a> {
    /// The call.
    id: CallId,
    /// Who sent it.
    user: &'a str,
    /// From which device (bound to `side`, except a callee's ringing device).
    dev: DeviceId,
    /// Their side of the call.
    side: Side,
    /// The other side's bound device, if it has one now.
    other: Option<DeviceId>,
    /// The caller's device.
    caller_dev: Option<DeviceId>,
    /// The callee.
    callee: String,
    /// The call was answered.
    answered: bool,
}

/// The one authorisation of `msg` about call `id` from device `dev` of `user`:
/// whether they may send it, where the call is. Returns the sender as the call
/// sees them; `None` when nothing more is to be done (a message on a parked
/// side, handled as the parker's; a leftover of a leg being handed over,
/// dropped; a message with nothing to do for a call); or the refusal.
///
/// A device of the same user that comes back takes over its side's empty
/// binding here (see docs/protocol.md, "Reconnecting").
fn authorise<'a>(
    g: &mut Core,
    id: CallId,
    user: &'a str,
    dev: DeviceId,
    msg: &ClientMsg,
) -> Result<Option<Party<'a>>, WireError> {
    let not_yours = || {
        WireError::new(
            ErrorCode::NotYourCall,
            "You are not part of this call.",
            &id,
        )
    };
    let wrong = |m: &str| WireError::new(ErrorCode::WrongState, m, &id);
    let Some(call) = g.calls.get_mut(&id) else {
        return Err(not_yours());
    };
    let side = if call.caller == user {
        Side::Caller
    } else if call.callee == user {
        Side::Callee
    } else {
        return Err(not_yours());
    };
    // The parker's side of a parked call belongs to nobody until a pickup: no
    // device of the parker may rebind to it (only a ring-back answers it).
    if call.park.as_ref().is_some_and(|p| p.side == side) {
        return Core::parker_msg(g, &id, user, dev, msg).map(|()| None);
    }
    // A side a consult transfer handed over takes part once its new device
    // joined; until then the other side's leftovers of the old leg are
    // dropped, and either may hang up.
    if let Some(j) = call.joining {
        match (msg, side == j.side) {
            (ClientMsg::Hangup { .. } | ClientMsg::Resume { .. }, _) => {}
            (ClientMsg::Offer { .. } | ClientMsg::Answer { .. } | ClientMsg::Ice { .. }, false) => {
                return Ok(None);
            }
            _ => return Err(wrong("The call is being transferred; wait a moment.")),
        }
    }
    if call.answered() && call.dev(side).is_none() {
        call.bind(side, Some(dev));
        tracing::info!(call = %id, device = dev, "device rebound to call");
    }
    let bound = call.dev(side) == Some(dev);
    let answered = call.answered();
    let (mode, in_group, joining) = (call.mode, call.group.is_some(), call.joining.is_some());
    let party = Party {
        user,
        dev,
        side,
        other: call.dev(side.other()),
        caller_dev: call.caller_dev(),
        callee: call.callee.clone(),
        answered,
        id: id.clone(),
    };
    match msg {
        ClientMsg::Ringing { .. } | ClientMsg::Accept { .. } | ClientMsg::Decline { .. }
            if side != Side::Callee =>
        {
            Err(not_yours())
        }
        ClientMsg::Ringing { .. } | ClientMsg::Accept { .. } if answered => {
            Err(wrong("The call was already answered."))
        }
        ClientMsg::Decline { .. } if answered => {
            Err(wrong("The call was already answered; hang up instead."))
        }
        ClientMsg::Cancel { .. } if side != Side::Caller || !bound => Err(not_yours()),
        ClientMsg::Cancel { .. } if answered => {
            Err(wrong("The call was already answered; hang up instead."))
        }
        // Before an answer, hanging up is cancelling (the caller's device) or
        // declining (the callee's).
        ClientMsg::Hangup { .. } if !answered && side == Side::Caller && !bound => Err(not_yours()),
        ClientMsg::Hangup { .. } if answered && !bound => Err(not_yours()),
        ClientMsg::Resume { .. } if !answered || !bound => Err(not_yours()),
        ClientMsg::Offer { .. }
        | ClientMsg::Answer { .. }
        | ClientMsg::Ice { .. }
        | ClientMsg::Hold { .. }
        | ClientMsg::Record { .. }
        | ClientMsg::Captions { .. }
        | ClientMsg::Feature { .. }
            if !answered || !bound =>
        {
            // The caller's own device before the answer is early, not foreign.
            Err(if !answered && bound {
                wrong("The call has not been accepted yet.")
            } else {
                not_yours()
            })
        }
        ClientMsg::Hold { .. }
        | ClientMsg::Feature { .. }
        | ClientMsg::Record { .. }
        | ClientMsg::Captions { .. }
            if mode == CallMode::E2ee =>
        {
            let feature = match msg {
                ClientMsg::Feature { feature, .. } => *feature,
                ClientMsg::Record { .. } => CallFeature::Recording,
                ClientMsg::Captions { .. } => CallFeature::Transcription,
                _ => CallFeature::Hold,
            };
            Err(WireError::unavailable_in_e2ee(feature, &id))
        }
        ClientMsg::Hold { .. } if in_group => Err(wrong(
            "A group call is not held; leave it, or mute yourself.",
        )),
        ClientMsg::Hold { .. } if g.consultation_of(&id).is_some_and(|(_, by)| by == user) => {
            Err(wrong(
                "The call waits for your consultation; end that call or complete the transfer first.",
            ))
        }
        ClientMsg::Feature { feature, .. } => Err(feature_refusal(*feature, &id)),
        ClientMsg::Captions { on: true, .. } if !g.captions_deployed => Err(WireError::new(
            ErrorCode::NotDeployed,
            "Live captions need a speech recogniser, which this Shieldcall server does not run.",
            &id,
        )),
        ClientMsg::Record { on, .. } | ClientMsg::Captions { on, .. } => {
            if *on {
                let feature = if matches!(msg, ClientMsg::Captions { .. }) {
                    CallFeature::Transcription
                } else {
                    CallFeature::Recording
                };
                let peer = g.calls.get(&id).map_or("", |c| c.user(side.other()));
                g.calling_allows([user, peer], feature, Some(&id))?;
            }
            if in_group || joining {
                return Err(wrong(
                    "Only a call between two people is recorded or captioned here.",
                ));
            }
            Ok(Some(party))
        }
        ClientMsg::Ringing { .. }
        | ClientMsg::Accept { .. }
        | ClientMsg::Decline { .. }
        | ClientMsg::Cancel { .. }
        | ClientMsg::Hangup { .. }
        | ClientMsg::Resume { .. }
        | ClientMsg::Offer { .. }
        | ClientMsg::Answer { .. }
        | ClientMsg::Ice { .. }
        | ClientMsg::Hold { .. } => Ok(Some(party)),
        // Handled by their own methods (the connection calls them).
        ClientMsg::MoveHere { .. }
        | ClientMsg::Park { .. }
        | ClientMsg::Pickup { .. }
        | ClientMsg::Transfer { .. }
        | ClientMsg::Consult { .. }
        | ClientMsg::ConsultTransfer { .. }
        | ClientMsg::Add { .. }
        | ClientMsg::Merge { .. }
        | ClientMsg::MediaOffer { .. }
        | ClientMsg::Join { .. } => Err(wrong("This message is handled on its own.")),
        ClientMsg::Voicemail { .. }
        | ClientMsg::Hello { .. }
        | ClientMsg::Ping { .. }
        | ClientMsg::SetE2ee { .. }
        | ClientMsg::Invite { .. } => Ok(None),
    }
}

/// Why a `feature` message is refused in an answered standard call: every
/// feature is asked with its own message.
fn feature_refusal(feature: CallFeature, id: &CallId) -> WireError {
    let wrong = |m: &str| WireError::new(ErrorCode::WrongState, m, id);
    match feature {
        CallFeature::Hold => wrong("Hold is asked with a hold message."),
        CallFeature::Park => wrong("Park is asked with a park message."),
        CallFeature::MoveToDevice => {
            wrong("Moving a call is asked with move-here, from the device that takes it.")
        }
        CallFeature::Recording => wrong("Recording is asked with record."),
        CallFeature::Voicemail => super::voicemail::not_a_call_feature(id),
        CallFeature::Transcription => wrong("Live captions are asked with captions."),
        CallFeature::Transfer => {
            wrong("Transfer is asked with transfer (blind), or consult and consult-transfer.")
        }
        CallFeature::AddParticipant | CallFeature::Merge => {
            wrong("People are added with add, and calls merged with consult and merge.")
        }
    }
}

/// The caller's device gives up the ringing call.
fn cancel(g: &mut Core, id: &CallId, callee: &str) {
    g.send_user(
        callee,
        &RelayMsg::Cancelled {
            call_id: id.clone(),
        },
        None,
    );
    g.end_call(id);
}

/// A bound device hangs up; before an answer, the caller's cancels and the
/// callee's declines.
fn hang_up(g: &mut Core, p: &Party<'_>, reason: HangupReason) {
    if !p.answered {
        match p.side {
            Side::Caller => cancel(g, &p.id, &p.callee),
            Side::Callee => Core::decline(g, &p.id, p.caller_dev, &p.callee, p.dev),
        }
        return;
    }
    if let Some(d) = p.other {
        g.send(
            d,
            &RelayMsg::Hangup {
                call_id: p.id.clone(),
                reason,
            },
        );
    }
    tracing::info!(call = %p.id, ?reason, "call ended");
    g.end_call(&p.id);
}

/// A device that comes back to a held call learns the hold state.
fn resume_bound(g: &Core, p: &Party<'_>) {
    let held = call_held(g, &p.id, p.side).filter(|&(m, t)| m || t);
    if let Some((by_me, by_peer)) = held {
        g.send(
            p.dev,
            &RelayMsg::Hold {
                call_id: p.id.clone(),
                by_me,
                by_peer,
            },
        );
    }
}

/// Passes an offer, an answer or a candidate to the other side's device.
fn forward(g: &Core, p: &Party<'_>, msg: RelayMsg) -> Result<(), WireError> {
    match p.other {
        Some(d) => {
            // Moved, not copied: an offer's SDP is kilobytes.
            g.send_shared(d, &std::sync::Arc::new(msg));
            Ok(())
        }
        None => Err(WireError::new(
            ErrorCode::WrongState,
            "The other device is reconnecting; try again shortly.",
            &p.id,
        )),
    }
}

/// The sender's side holds the call (`on`) or takes its hold off; both
/// devices learn who holds it now.
fn hold(g: &mut Core, p: &Party<'_>, on: bool) {
    let Some(call) = g.calls.get_mut(&p.id) else {
        return;
    };
    match p.side {
        Side::Caller => call.held_by_caller = on,
        Side::Callee => call.held_by_callee = on,
    }
    let (by_caller, by_callee) = (call.held_by_caller, call.held_by_callee);
    let (mine, theirs) = match p.side {
        Side::Caller => (by_caller, by_callee),
        Side::Callee => (by_callee, by_caller),
    };
    let call_id = p.id.clone();
    g.send(
        p.dev,
        &RelayMsg::Hold {
            call_id: call_id.clone(),
            by_me: mine,
            by_peer: theirs,
        },
    );
    if let Some(d) = p.other {
        g.send(
            d,
            &RelayMsg::Hold {
                call_id,
                by_me: theirs,
                by_peer: mine,
            },
        );
    }
    tracing::info!(call = %p.id, side = ?p.side, on, "hold changed");
}

/// The sender turns the recording (or, with `captions`, live captions) on or
/// off; both devices learn whether it runs and at whose request.
fn media_use(g: &mut Core, p: &Party<'_>, on: bool, captions: bool) {
    let Some(call) = g.calls.get_mut(&p.id) else {
        return;
    };
    let slot = if captions {
        &mut call.captions
    } else {
        &mut call.recording
    };
    if on {
        slot.get_or_insert_with(|| p.user.to_string());
    } else {
        *slot = None;
    }
    let by = slot.clone();
    let call_id = p.id.clone();
    let msg = if captions {
        RelayMsg::Captions { call_id, on, by }
    } else {
        RelayMsg::Recording { call_id, on, by }
    };
    for d in [Some(p.dev), p.other].into_iter().flatten() {
        g.send(d, &msg);
    }
    tracing::info!(call = %p.id, on, captions, "server media use changed");
}

/// The hold state of call `id` from `side`'s view: (this side holds, the other
/// side holds).
fn call_held(g: &Core, id: &CallId, side: Side) -> Option<(bool, bool)> {
    let call = g.calls.get(id)?;
    Some(match side {
        Side::Caller => (call.held_by_caller, call.held_by_callee),
        Side::Callee => (call.held_by_callee, call.held_by_caller),
    })
}

/// Call `id` rang out: the caller hears `no-answer`, the callee's devices stop
/// ringing.
pub(super) fn ring_expired(g: &mut Core, id: &CallId) {
    let Some(call) = g.calls.get(id) else { return };
    if call.answered() {
        return;
    }
    if let Some(d) = call.caller_dev() {
        g.send(
            d,
            &RelayMsg::CallRefused {
                call_id: id.clone(),
                peer: call.callee.clone(),
                reason: RefuseReason::NoAnswer,
                required_by: None,
            },
        );
    }
    g.send_user(
        &call.callee,
        &RelayMsg::Cancelled {
            call_id: id.clone(),
        },
        None,
    );
    g.end_call(id);
}
