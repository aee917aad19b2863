//! Blind transfer (SIP REFER with Referred-By): one side of an answered standard
//! call asks the other person to call someone else. The relay checks the new pair
//! (the connection did: reachability and the policies), ends the call, and hands
//! the person being transferred a one-time token; their `invite` with it tells the
//! target who transferred them. The new call is decided like any other (its own
//! mode, fresh certificates). If it fails, the transferee's client rings the
//! transferor back.

use std::time::{Duration, Instant};

use shieldcall_proto::{CallFeature, CallId, CallMode, ErrorCode, HangupReason, RelayMsg};

use super::{Core, DeviceId, Referral, Timer, WireError};

/// How long a `refer` may wait for its `invite`.
pub const REFER_TTL: Duration = Duration::from_secs(30);

impl Core {
    /// `transfer` from device `dev` of `user`: the other person of `id` is to call
    /// `target`. `allowed` is whether the policies allow those two a call.
    pub(super) fn transfer(
        &mut self,
        now: Instant,
        dev: DeviceId,
        user: &str,
        id: &CallId,
        target: &str,
        allowed: bool,
    ) -> Result<(), WireError> {
        let not_yours =
            || WireError::new(ErrorCode::NotYourCall, "You are not part of this call.", id);
        let wrong = |m: &str| WireError::new(ErrorCode::WrongState, m, id);
        let token = random_token().ok_or_else(|| {
            WireError::new(ErrorCode::Internal, "The relay could not make a token.", id)
        })?;
        self.at(now);
        let consulting = self.consulting(id);
        let Some(call) = self.calls.get(id) else {
            return Err(not_yours());
        };
        let (mine, other, peer) = if call.caller == user {
            (call.caller_dev(), call.callee_dev(), call.callee.clone())
        } else if call.callee == user {
            (call.callee_dev(), call.caller_dev(), call.caller.clone())
        } else {
            return Err(not_yours());
        };
        if mine != Some(dev) || call.park.is_some() {
            return Err(not_yours());
        }
        if !call.answered() {
            return Err(wrong("The call has not been answered yet."));
        }
        if call.mode == CallMode::E2ee {
            return Err(WireError::unavailable_in_e2ee(CallFeature::Transfer, id));
        }
        if consulting || call.joining.is_some() || call.group.is_some() {
            return Err(wrong(
                "The call is part of a consultation; complete the transfer or hang up the consultation first.",
            ));
        }
        let Some(other) = other else {
            return Err(wrong(
                "The other person's device is reconnecting; try again in a moment.",
            ));
        };
        if !allowed {
            return Err(wrong(&format!(
                "The policies do not allow {peer} a call with {target}."
            )));
        }
        if !self.signed_in(target) {
            return Err(wrong(&format!("{target} is not signed in.")));
        }
        // One pending transfer per transferee: a newer one replaces it.
        let replaced: Vec<String> = self
            .referrals
            .iter()
            .filter(|(_, r)| r.from == peer)
            .map(|(t, _)| t.clone())
            .collect();
        for t in replaced {
            let timer = self.referrals.remove(&t).and_then(|r| r.timer);
            self.cancel(timer);
        }
        let timer = self.schedule(REFER_TTL, Timer::Referral(token.clone()));
        self.referrals.insert(
            token.clone(),
            Referral {
                from: peer.clone(),
                to: target.into(),
                by: user.into(),
                timer,
            },
        );
        self.send(
            other,
            &RelayMsg::Refer {
                call_id: id.clone(),
                to: target.into(),
                by: user.into(),
                token: token.clone(),
            },
        );
        self.send(
            dev,
            &RelayMsg::Hangup {
                call_id: id.clone(),
                reason: HangupReason::Transferred,
            },
        );
        tracing::info!(call = %id, "call transferred");
        self.end_call(id);
        Ok(())
    }

    /// Carries out a `refer`: the transferor's name, if `token` is a pending
    /// transfer of `from` to `to` (it is used up).
    pub fn take_referral(&mut self, token: &str, from: &str, to: &str) -> Option<String> {
        let fits = self
            .referrals
            .get(token)
            .is_some_and(|r| r.from == from && r.to == to);
        if !fits {
            return None;
        }
        let r = self.referrals.remove(token)?;
        self.cancel(r.timer);
        Some(r.by)
    }
}

/// 128 random bits in hex.
fn random_token() -> Option<String> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).ok()?;
    Some(b.iter().map(|x| format!("{x:02x}")).collect())
}
