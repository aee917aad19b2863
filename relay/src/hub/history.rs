//! The call history: one record per person per call, made where a call ends (or
//! is refused at invite) and written to the store by the relay (`lib.rs`) in the
//! background and before every `GET /api/history`, so a person who asks right
//! after a call sees it.
//!
//! What is recorded: the other person, the direction, the mode, when it began
//! (wall clock, Unix seconds), how it ended and, for answered calls, how long it
//! lasted. A refusal by policy is recorded for the caller only: the callee never
//! rang and must not learn who tried across a policy that forbids it. A call to
//! someone busy or offline is a missed call for them. What is refused before a
//! call is decided (an unknown user, oneself, a tenant one may not reach) is not
//! recorded. A parked call that someone else picked up is recorded, when it
//! ends, for the two people in it then; a call restored after a relay restart
//! counts from its restore.

use std::collections::VecDeque;
use std::time::Instant;

use serde::Serialize;
use shieldcall_proto::CallMode;

use super::{Call, Core};

/// Records made but not yet written, at most (a store that cannot keep up loses
/// the oldest, with a warning, rather than the relay's memory).
pub const MAX_PENDING: usize = 10_000;

/// Which way a call went, for the person the record is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// They called.
    Outgoing,
    /// They were called.
    Incoming,
}

impl Direction {
    /// The wire and store name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outgoing => "outgoing",
            Self::Incoming => "incoming",
        }
    }

    /// From [`Direction::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Outgoing, Self::Incoming]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

/// How a call ended, for the person the record is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Answered and talked.
    Answered,
    /// Incoming, not answered: it rang out, the caller gave up, or they were
    /// busy or offline.
    Missed,
    /// Declined (by them if incoming, by the other person if outgoing).
    Declined,
    /// Outgoing, not answered: it rang out, they gave up, or the other person
    /// was busy or offline.
    NotAnswered,
    /// Outgoing, refused by the policies (never rang).
    Refused,
}

impl Outcome {
    /// The wire and store name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::Missed => "missed",
            Self::Declined => "declined",
            Self::NotAnswered => "not-answered",
            Self::Refused => "refused",
        }
    }

    /// From [`Outcome::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Answered,
            Self::Missed,
            Self::Declined,
            Self::NotAnswered,
            Self::Refused,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// The store name of a mode.
pub fn mode_str(mode: CallMode) -> &'static str {
    match mode {
        CallMode::E2ee => "e2ee",
        CallMode::Standard => "standard",
    }
}

/// From [`mode_str`].
pub fn parse_mode(s: &str) -> Option<CallMode> {
    [CallMode::E2ee, CallMode::Standard]
        .into_iter()
        .find(|m| mode_str(*m) == s)
}

/// One entry of one person's call history; serialised as `GET /api/history`
/// gives it (without `user`: it is the reader's own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRecord {
    /// Whose history.
    #[serde(skip)]
    pub user: String,
    /// The other person.
    pub peer: String,
    /// Which way.
    pub direction: Direction,
    /// How it ended.
    pub outcome: Outcome,
    /// The call's mode; `None` for a call refused before it had one.
    pub mode: Option<CallMode>,
    /// When it began, Unix seconds.
    pub at: i64,
    /// How long it was up, in seconds (answered calls; else 0).
    pub duration_secs: i64,
}

impl Core {
    fn push_record(&mut self, r: CallRecord) {
        if self.history.len() >= MAX_PENDING {
            self.history.pop_front();
            tracing::warn!("call history: the store fell behind; the oldest record is lost");
        }
        self.history.push_back(r);
    }

    /// Records a part of an answered call that ended while the call goes on
    /// (the parker's, when someone else picks up), for both people in it.
    pub(super) fn record_leg(&mut self, leg: &Leg) {
        let duration_secs = seconds_between(leg.answered_at, leg.ended);
        let outcomes = (Outcome::Answered, Outcome::Answered);
        self.record_pair(
            &leg.caller,
            &leg.callee,
            leg.mode,
            leg.started_at,
            duration_secs,
            outcomes,
        );
    }

    /// Records the end of `call` for both people.
    pub(super) fn record_end(&mut self, call: &Call) {
        let duration_secs = seconds_between(call.answered_at, self.now());
        let outcomes = if call.answered() {
            (Outcome::Answered, Outcome::Answered)
        } else if call.declined {
            (Outcome::Declined, Outcome::Declined)
        } else {
            (Outcome::NotAnswered, Outcome::Missed)
        };
        self.record_pair(
            &call.caller,
            &call.callee,
            call.mode,
            call.started_at,
            duration_secs,
            outcomes,
        );
    }

    /// One entry for the caller and one for the callee of a call (or a part
    /// of one) that began at `at`, with each side's outcome.
    fn record_pair(
        &mut self,
        caller: &str,
        callee: &str,
        mode: CallMode,
        at: i64,
        duration_secs: i64,
        (caller_outcome, callee_outcome): (Outcome, Outcome),
    ) {
        for (user, peer, direction, outcome) in [
            (caller, callee, Direction::Outgoing, caller_outcome),
            (callee, caller, Direction::Incoming, callee_outcome),
        ] {
            self.push_record(CallRecord {
                user: user.into(),
                peer: peer.into(),
                direction,
                outcome,
                mode: Some(mode),
                at,
                duration_secs,
            });
        }
    }

    /// Records an invite refused before it rang: `missed` says whether the callee
    /// learns of it (busy, offline) or not (a policy refusal).
    pub(super) fn record_refused(&mut self, caller: &str, callee: &str, missed: bool) {
        let at = self.unix_now();
        self.push_record(CallRecord {
            user: caller.into(),
            peer: callee.into(),
            direction: Direction::Outgoing,
            outcome: if missed {
                Outcome::NotAnswered
            } else {
                Outcome::Refused
            },
            mode: None,
            at,
            duration_secs: 0,
        });
        if missed {
            self.push_record(CallRecord {
                user: callee.into(),
                peer: caller.into(),
                direction: Direction::Incoming,
                outcome: Outcome::Missed,
                mode: None,
                at,
                duration_secs: 0,
            });
        }
    }
}

/// A part of a call that is over while the call goes on with someone else.
pub(super) struct Leg {
    /// Its caller.
    pub caller: String,
    /// Its callee.
    pub callee: String,
    /// The call's mode.
    pub mode: CallMode,
    /// When it began, Unix seconds.
    pub started_at: i64,
    /// When it was answered.
    pub answered_at: Option<Instant>,
    /// When this part ended.
    pub ended: Instant,
}

/// Whole seconds from `from` (none: not answered, 0) to `to`.
fn seconds_between(from: Option<Instant>, to: Instant) -> i64 {
    from.map_or(0, |t| {
        i64::try_from(to.saturating_duration_since(t).as_secs()).unwrap_or(i64::MAX)
    })
}

impl Core {
    /// Takes the records made since the last call, oldest first, to be written.
    pub fn take_history(&mut self) -> VecDeque<CallRecord> {
        std::mem::take(&mut self.history)
    }

    /// Puts records that could not be written back in front of newer ones
    /// (within [`MAX_PENDING`]: the oldest go first).
    pub fn requeue_history(&mut self, mut records: VecDeque<CallRecord>) {
        records.append(&mut self.history);
        while records.len() > MAX_PENDING {
            records.pop_front();
        }
        self.history = records;
    }
}
