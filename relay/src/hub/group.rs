//! Group calls: up to [`MAX_GROUP`] people as a full mesh of calls ("legs"),
//! one per pair, each with its own peer connection, commitment and code. The
//! relay keeps which legs form a group and who is in it; media never passes
//! through it.
//!
//! A group starts from an answered standard call in one of two ways:
//! - **add**: one of its people calls a third (`add`): an ordinary call that
//!   rings them (`incoming` names the others, `group`). When it is answered,
//!   the relay makes a leg between the newcomer and each other member: the
//!   newcomer's device gets `leg` and commits with `join`, the member's device
//!   gets `new-leg` and offers, exactly as after a consult transfer.
//! - **merge**: a person with a held call and a consultation about it joins the
//!   two (`merge`): both calls become legs, the hold ends, and the two others
//!   get a leg between them the same way.
//!
//! Every pair must be allowed a standard call by today's policies (the
//! connection decides each pair before it calls in): a group call is never end
//! to end encrypted, so a pair whose calls would be refuses the whole add.
//! Each member gets `group` with the members whenever they change. Leaving is
//! hanging up every leg (the client does); a member with no leg left is out.
//! When two people are left (and nobody is being added), their leg is a call
//! like any again and the group is gone; they get `group` naming the two.

use std::time::Instant;

use shieldcall_proto::{CallFeature, CallId, CallMode, ErrorCode, RelayMsg};

use super::calls::Placed;
use super::consult::JOIN_TIMEOUT;
use super::{Call, Core, DeviceId, Joining, Side, Timer, WireError};
use crate::policy::Refusal;

/// People in one group call at most: a full mesh of 4 is 3 peer connections
/// (3 uploads of the camera) per browser, about what a phone on a home uplink
/// carries; 5 would be 4 each and 10 legs in all.
pub const MAX_GROUP: usize = 4;

/// Numbers a group for the life of the relay.
pub type GroupId = u64;

/// The people and legs of a group call.
#[derive(Debug, Default)]
pub(super) struct Group {
    /// Its members, in the order they joined.
    pub members: Vec<String>,
    /// Its legs: answered, being joined, or the one add still ringing.
    pub legs: Vec<CallId>,
}

impl Core {
    /// A leg of `gid` that `user` is in, other than `except`.
    pub(super) fn other_leg(&self, gid: GroupId, user: &str, except: &CallId) -> Option<CallId> {
        let group = self.groups.get(&gid)?;
        group
            .legs
            .iter()
            .filter(|l| *l != except)
            .find(|l| {
                self.calls
                    .get(*l)
                    .is_some_and(|c| c.caller == user || c.callee == user)
            })
            .cloned()
    }

    /// Every leg of `user`'s group that they are in (none outside a group).
    pub(super) fn legs_of(&self, user: &str, gid: GroupId) -> Vec<CallId> {
        self.groups.get(&gid).map_or_else(Vec::new, |g| {
            g.legs
                .iter()
                .filter(|l| {
                    self.calls
                        .get(*l)
                        .is_some_and(|c| c.caller == user || c.callee == user)
                })
                .cloned()
                .collect()
        })
    }

    /// The device `user` takes part in group `gid` with (bound on one of
    /// their answered legs), if it is connected.
    fn member_device(&self, gid: GroupId, user: &str) -> Option<DeviceId> {
        self.legs_of(user, gid).iter().find_map(|l| {
            let c = self.calls.get(l).filter(|c| c.answered())?;
            if c.caller == user {
                c.caller_dev()
            } else {
                c.callee_dev()
            }
        })
    }

    /// Call `id` ended: it leaves its group; a member with no leg left leaves
    /// it, the others are told; a group without legs is gone.
    pub(super) fn leave_group(&mut self, id: &CallId, call: &Call) {
        let Some(gid) = call.group else { return };
        let Some(group) = self.groups.get_mut(&gid) else {
            return;
        };
        group.legs.retain(|l| l != id);
        if group.legs.is_empty() {
            self.groups.remove(&gid);
            return;
        }
        let mut changed = false;
        for u in [&call.caller, &call.callee] {
            if self.other_leg(gid, u, id).is_none()
                && let Some(group) = self.groups.get_mut(&gid)
                && let Some(at) = group.members.iter().position(|m| m == u)
            {
                group.members.remove(at);
                changed = true;
            }
        }
        if changed {
            self.announce_group(gid);
        }
        // Two people left with no one being added: their leg is a call like
        // any again (hold, transfer, park...), and the group is gone.
        let dissolve = self.groups.get(&gid).is_some_and(|g| {
            g.members.len() <= 2
                && g.legs.iter().all(|l| {
                    self.calls
                        .get(l)
                        .is_some_and(|c| c.answered() && c.joining.is_none())
                })
        });
        if dissolve && let Some(group) = self.groups.remove(&gid) {
            for l in &group.legs {
                if let Some(c) = self.calls.get_mut(l) {
                    c.group = None;
                }
            }
        }
    }

    /// Tells every member's device who is in group `gid` now.
    pub(super) fn announce_group(&self, gid: GroupId) {
        let Some(group) = self.groups.get(&gid) else {
            return;
        };
        let msg = RelayMsg::Group {
            members: group.members.clone(),
        };
        for m in &group.members {
            if let Some(d) = self.member_device(gid, m) {
                self.send(d, &msg);
            }
        }
    }
}

impl Core {
    /// The people already in the call `id` of `user` (its group's members, or
    /// the two of a 1:1 call), for the decisions `add` needs.
    pub fn call_members(&self, id: &CallId, user: &str) -> Option<Vec<String>> {
        let call = self.calls.get(id)?;
        if call.caller != user && call.callee != user {
            return None;
        }
        Some(match call.group.and_then(|gid| self.groups.get(&gid)) {
            Some(group) => group.members.clone(),
            None => vec![call.caller.clone(), call.callee.clone()],
        })
    }

    /// `add` from device `dev` of `user`: call `to` into the answered standard
    /// call `id`. `decisions` are the call decisions for `to` with each member
    /// ([`Hub::call_members`]), made now: each must give a standard call.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn add(
        &mut self,
        now: Instant,
        dev: DeviceId,
        user: &str,
        id: &CallId,
        to: &str,
        decisions: &[(String, Result<CallMode, Refusal>)],
        call_id: CallId,
    ) -> Result<(), WireError> {
        self.at(now);
        let wrong = |m: &str| WireError::new(ErrorCode::WrongState, m, id);
        check_call(self, id, user, dev, CallFeature::AddParticipant)?;
        let Some(call) = self.calls.get(id) else {
            return Err(wrong("The call is over."));
        };
        if call.held_by_caller || call.held_by_callee {
            return Err(wrong("Take the call off hold before you add someone."));
        }
        let members = match call.group.and_then(|gid| self.groups.get(&gid)) {
            Some(group) => {
                let ringing = group
                    .legs
                    .iter()
                    .any(|l| self.calls.get(l).is_some_and(|c| !c.answered()));
                if ringing {
                    return Err(wrong(
                        "Someone is being added already; wait until they answer.",
                    ));
                }
                group.members.clone()
            }
            None => vec![call.caller.clone(), call.callee.clone()],
        };
        if members.iter().any(|m| m == to) {
            return Err(wrong(&format!("{to} is in this call already.")));
        }
        if members.len() >= MAX_GROUP {
            return Err(wrong(&format!(
                "A group call has at most {MAX_GROUP} people."
            )));
        }
        for m in &members {
            let e2ee = format!(
                "Calls between {m} and {to} are end-to-end encrypted, and a group call is a standard call; call {to} on their own instead."
            );
            let decision = decisions.iter().find(|(u, _)| u == m).map(|(_, d)| d);
            super::standard_pair(decision, (m, to), &e2ee, Some(id))?;
        }
        let beside = self.in_call.get(user).cloned();
        let (gid, new_group) = match call.group {
            Some(gid) => (gid, false),
            None => {
                self.next_group += 1;
                (self.next_group, true)
            }
        };
        let others: Vec<String> = members.iter().filter(|m| *m != user).cloned().collect();
        let placed = Placed {
            dev,
            caller: user,
            callee: to,
            call_id: call_id.clone(),
            referred_by: None,
            beside,
            consult: false,
            group: Some((gid, others)),
        };
        self.place(placed, Ok(CallMode::Standard));
        if !self.calls.contains_key(&call_id) {
            return Ok(()); // refused (busy, offline): the caller was told
        }
        if new_group {
            self.groups.insert(
                gid,
                Group {
                    members,
                    legs: vec![id.clone()],
                },
            );
            if let Some(c) = self.calls.get_mut(id) {
                c.group = Some(gid);
            }
        }
        if let Some(group) = self.groups.get_mut(&gid) {
            group.legs.push(call_id);
        }
        Ok(())
    }

    /// The add-call `id` of group `gid` was answered by device `dev` of
    /// `newcomer`: they are a member, and every other member gets a leg with
    /// them (the newcomer's device `leg`, then `join`; the member's `new-leg`).
    pub(super) fn grow(&mut self, gid: GroupId, id: &CallId, newcomer: &str, dev: DeviceId) {
        let Some(adder) = self.calls.get(id).map(|c| c.caller.clone()) else {
            return;
        };
        let Some(members) = self.groups.get(&gid).map(|gr| gr.members.clone()) else {
            return;
        };
        for m in members.iter().filter(|m| **m != adder && *m != newcomer) {
            // A member whose device is reconnecting is left out of this pair
            // (they see everyone else; the mesh is not complete).
            let Some(mdev) = self.member_device(gid, m) else {
                tracing::info!(
                    group = gid,
                    "group: a member is reconnecting; no leg with them"
                );
                continue;
            };
            self.make_leg(gid, (m, mdev), (newcomer, dev));
        }
        if let Some(group) = self.groups.get_mut(&gid)
            && !group.members.iter().any(|m| m == newcomer)
        {
            group.members.push(newcomer.into());
        }
        self.announce_group(gid);
    }

    /// A new leg of group `gid` between `offerer` and `joiner` (each a user and
    /// their device): the joiner's device is asked to commit (`leg`); the
    /// offerer's gets `new-leg` when it does.
    fn make_leg(
        &mut self,
        gid: GroupId,
        (offerer, odev): (&str, DeviceId),
        (joiner, jdev): (&str, DeviceId),
    ) {
        let Ok(leg) = self.cfg.key.mint(offerer, joiner, CallMode::Standard) else {
            tracing::warn!(group = gid, "group: no call id for a leg");
            return;
        };
        let now = self.now();
        let timer = self.schedule(JOIN_TIMEOUT, Timer::Join(leg.clone()));
        self.calls.insert(
            leg.clone(),
            Call {
                joining: Some(Joining {
                    side: Side::Callee,
                    timer,
                }),
                group: Some(gid),
                ..Call::up(
                    CallMode::Standard,
                    (offerer, odev),
                    (joiner, jdev),
                    (now, self.unix_now()),
                )
            },
        );
        if let Some(group) = self.groups.get_mut(&gid) {
            group.legs.push(leg.clone());
        }
        self.send(
            jdev,
            &RelayMsg::Leg {
                call_id: leg,
                peer: offerer.into(),
                mode: CallMode::Standard,
            },
        );
    }

    /// `merge` from device `dev` of `user`: the held call `held` and the
    /// consultation `consult` about it become one group call; `decision` is the
    /// call decision for the two others, made now (it must be standard).
    pub(super) fn merge(
        &mut self,
        now: Instant,
        dev: DeviceId,
        user: &str,
        held: &CallId,
        consult: &CallId,
        decision: Option<Result<CallMode, Refusal>>,
    ) -> Result<(), WireError> {
        self.at(now);
        let (waiting, wdev, target, tdev) =
            super::consult::check_pair(self, held, consult, user, dev, CallFeature::Merge)?;
        let e2ee = format!(
            "Calls between {waiting} and {target} are end-to-end encrypted, and a group call is a standard call; they cannot be merged."
        );
        super::standard_pair(decision.as_ref(), (&waiting, &target), &e2ee, Some(held))?;
        self.next_group += 1;
        let gid = self.next_group;
        self.groups.insert(
            gid,
            Group {
                members: vec![waiting.clone(), user.into(), target.clone()],
                legs: vec![held.clone(), consult.clone()],
            },
        );
        for id in [held, consult] {
            if let Some(c) = self.calls.get_mut(id) {
                c.group = Some(gid);
                c.consult_of = None;
                c.held_by_caller = false;
                c.held_by_callee = false;
            }
        }
        // The hold ends: both sides of the held call send again.
        let side_of = |c: &Call, u: &str| c.caller == u;
        if let Some(h) = self.calls.get(held) {
            let (mine, theirs) = if side_of(h, user) {
                (h.caller_dev(), h.callee_dev())
            } else {
                (h.callee_dev(), h.caller_dev())
            };
            for d in [mine, theirs].into_iter().flatten() {
                self.send(
                    d,
                    &RelayMsg::Hold {
                        call_id: held.clone(),
                        by_me: false,
                        by_peer: false,
                    },
                );
            }
        }
        self.make_leg(gid, (&waiting, wdev), (&target, tdev));
        self.announce_group(gid);
        tracing::info!(group = gid, "calls merged into a group call");
        Ok(())
    }
}

/// Checks that `id` is an answered standard call of `user`'s bound to `dev`,
/// free to grow: not parked, not being handed over, not part of a
/// consultation.
fn check_call(
    g: &Core,
    id: &CallId,
    user: &str,
    dev: DeviceId,
    feature: CallFeature,
) -> Result<(), WireError> {
    g.own_standard_call(id, user, dev, feature)?;
    if g.consulting(id) {
        return Err(WireError::new(
            ErrorCode::WrongState,
            "The call is part of a consultation; complete the transfer or hang up the consultation first.",
            id,
        ));
    }
    Ok(())
}
