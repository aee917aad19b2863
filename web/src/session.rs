//! The signed-in session as plain data: who is signed in, their contacts with
//! presence and display names, their E2EE setting, the ICE servers, and a call
//! of theirs on another device. Only the relay's messages change it, through
//! [`Session::handle`], which also says what the page must do beyond drawing
//! the new state. No browser types: tested natively.

use shieldcall_proto::{
    CallId, CallMode, E2eePolicyType, E2eeSetting, IceServer, Presence, RelayMsg, Status,
};

use crate::call::{Call, Wish};

/// The signed-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Me {
    /// Full user name.
    pub user: String,
    /// Administers their tenant.
    pub admin: bool,
}

/// A call this user has on another device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elsewhere {
    /// The call.
    pub call_id: CallId,
    /// The other person.
    pub peer: String,
    /// Its mode: only a standard call can move.
    pub mode: CallMode,
}

/// The session's state (see the module docs).
#[derive(Debug, Default)]
pub struct Session {
    /// Who is signed in, once the relay said `welcome`.
    pub me: Option<Me>,
    /// Contacts and presence, sorted by address.
    pub contacts: Vec<Presence>,
    /// The user's E2EE setting as the relay last pushed it.
    pub e2ee: Option<E2eeSetting>,
    /// STUN/TURN servers from `welcome`.
    pub ice_servers: Vec<IceServer>,
    /// An answered call of this user on another device (`elsewhere-call`),
    /// which this one may take over.
    pub elsewhere: Option<Elsewhere>,
}

/// What a message asks of the page beyond drawing the new state.
#[derive(Debug, PartialEq)]
pub enum Effect {
    /// Nothing more.
    None,
    /// A call of this user's ended: the call history has a new entry.
    LoadHistory,
    /// Not the session's: the message is about calls, given back.
    NotMine(RelayMsg),
}

impl Session {
    /// Takes the relay's word about the session: `welcome`, `presence`,
    /// `settings`, `elsewhere-call`, `elsewhere-ended`. Gives every other
    /// message back.
    pub fn handle(&mut self, msg: RelayMsg) -> Effect {
        match msg {
            RelayMsg::Welcome {
                user,
                admin,
                e2ee,
                ice_servers,
                ..
            } => {
                self.me = Some(Me { user, admin });
                self.e2ee = Some(e2ee);
                self.ice_servers = ice_servers;
                // The relay says again after `welcome` if a call is on
                // another device.
                self.elsewhere = None;
            }
            RelayMsg::Presence { contacts } => self.merge(contacts),
            RelayMsg::Settings { e2ee } => self.e2ee = Some(e2ee),
            RelayMsg::ElsewhereCall {
                call_id,
                peer,
                mode,
            } => {
                self.elsewhere = Some(Elsewhere {
                    call_id,
                    peer,
                    mode,
                });
            }
            RelayMsg::ElsewhereEnded { call_id } => {
                if self
                    .elsewhere
                    .as_ref()
                    .is_some_and(|e| e.call_id == call_id)
                {
                    self.elsewhere = None;
                }
                return Effect::LoadHistory;
            }
            other => return Effect::NotMine(other),
        }
        Effect::None
    }

    /// A `presence` message: the full list after `welcome` (in chunks), then
    /// only what changed. Every entry carries the current display name; a
    /// contact marked removed leaves the list.
    fn merge(&mut self, changes: Vec<Presence>) {
        for p in changes {
            if p.status == Status::Removed {
                self.contacts.retain(|c| c.user != p.user);
                continue;
            }
            match self.contacts.iter_mut().find(|c| c.user == p.user) {
                Some(c) => *c = p,
                None => self.contacts.push(p),
            }
        }
        self.contacts.sort_by(|x, y| x.user.cmp(&y.user));
    }

    /// How `user` is shown: "Alice Example (alice@example.test)" when an admin
    /// gave them a display name, else the address alone. The address is always
    /// there: a name is only a label, and two people may share one.
    pub fn shown(&self, user: &str) -> String {
        match self
            .contacts
            .iter()
            .find(|c| c.user == user)
            .and_then(|c| c.name.as_deref())
        {
            Some(name) => format!("{name} ({user})"),
            None => user.to_string(),
        }
    }

    /// What this user's setting, as last pushed, asks of a new call's mode.
    pub fn wish(&self) -> Wish {
        match &self.e2ee {
            Some(s) if s.policy == E2eePolicyType::Required => Wish::Required,
            Some(s) if s.enabled => Wish::Switch,
            _ => Wish::None,
        }
    }

    /// The signed-in user's name ("" before `welcome`).
    pub fn user(&self) -> String {
        self.me.as_ref().map(|m| m.user.clone()).unwrap_or_default()
    }
}

/// Where a relay message about calls goes, among the calls the page keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The current call's machine (also once it is over: it ignores what
    /// comes late).
    Current,
    /// The call held for a consultation.
    Held,
    /// The group leg at this index.
    Leg(usize),
    /// An incoming call, and no call is up here: it rings.
    Ring,
    /// An incoming call while a call is up here: ignored (the relay marks this
    /// user busy, so this is a second ring that crossed with that).
    Busy,
    /// About no call kept here (an invite given up before the relay answered,
    /// a call to this user the relay refused).
    Unknown,
}

/// Where `msg` goes (an `error` goes by [`error_for`]).
pub fn route(msg: &RelayMsg, current: Option<&Call>, held: Option<&Call>, legs: &[&Call]) -> Route {
    if let RelayMsg::Incoming { .. } = msg {
        return if current.is_some_and(|c| !c.is_ended()) {
            Route::Busy
        } else {
            Route::Ring
        };
    }
    if current.is_some_and(|c| c.concerns(msg)) {
        Route::Current
    } else if held.is_some_and(|c| c.concerns(msg)) {
        Route::Held
    } else {
        legs.iter()
            .position(|l| l.concerns(msg))
            .map_or(Route::Unknown, Route::Leg)
    }
}

/// Which call a relay `error` belongs to, among the calls the page keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFor {
    /// The current call: it is about that call and the call is not over, or it
    /// refuses the consultation or add the current call is waiting to place,
    /// or (naming no call) it refuses the pickup the current call waits for.
    Current,
    /// The call held for a consultation.
    Held,
    /// The group leg at this index: about it, or refusing it before it was placed.
    Leg(usize),
    /// A call that is over or unknown here (candidates still in flight when a
    /// call ended): it must not replace how that call ended.
    Stale,
    /// No call: the session's, shown and nothing more.
    Nobody,
}

/// Where an `error` naming `call_id` (or none) goes. A consultation or an add
/// not yet placed is known by the call it waits beside, since the relay
/// refuses it under that call's id; a pickup not yet answered learns of its
/// refusal from an error that names no call.
pub fn error_for(
    call_id: Option<&CallId>,
    current: Option<&Call>,
    held: Option<&Call>,
    legs: &[&Call],
) -> ErrorFor {
    let Some(id) = call_id else {
        return if current.is_some_and(Call::awaits_pickup) {
            ErrorFor::Current
        } else {
            ErrorFor::Nobody
        };
    };
    let about = |c: &Call| c.id() == Some(id);
    if let Some(i) = legs.iter().position(|l| l.awaits_placing(id)) {
        ErrorFor::Leg(i)
    } else if current.is_some_and(|c| c.awaits_placing(id)) {
        ErrorFor::Current
    } else if let Some(i) = legs.iter().position(|l| about(l)) {
        ErrorFor::Leg(i)
    } else if held.is_some_and(about) {
        ErrorFor::Held
    } else if current.is_some_and(|c| !c.is_ended() && about(c)) {
        ErrorFor::Current
    } else {
        ErrorFor::Stale
    }
}

/// What a tab does about a relay connection that has brought nothing for
/// `quiet` seconds: at [`PING_AFTER_S`] it asks (`ping`, which the relay
/// answers), and from [`GIVE_UP_AFTER_S`] it takes the connection for dead and
/// connects again. The relay's own WebSocket pings never reach the page, and
/// a relay whose machine vanished (rather than a process that died, whose
/// connections close) would otherwise keep a tab waiting for TCP to give up,
/// many minutes, past the 30 s in which a call waits for it to resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Nothing to do.
    Wait,
    /// Send `ping`.
    Ping,
    /// Close the connection and connect again.
    GiveUp,
}

/// Seconds of quiet after which a tab pings the relay.
pub const PING_AFTER_S: u32 = 10;
/// Seconds of quiet after which a tab connects again.
pub const GIVE_UP_AFTER_S: u32 = 20;

/// See [`Liveness`].
pub fn liveness(quiet: u32) -> Liveness {
    if quiet >= GIVE_UP_AFTER_S {
        Liveness::GiveUp
    } else if quiet == PING_AFTER_S {
        Liveness::Ping
    } else {
        Liveness::Wait
    }
}

/// Reconnect delay after `attempt` failures: a ceiling of 0.5 s doubling to
/// 15 s, of which the tab waits a random share between half and all of it
/// ("equal jitter"), so that the tabs a relay restart cut off together do not
/// all come back in the same instant. `unit` is a random number in [0, 1)
/// (`Math.random()`; anything else counts as 0). Pure, so that the relay
/// benchmark's clients reconnect after a node's death exactly as tabs do.
pub fn backoff_ms(attempt: u32, unit: f64) -> i32 {
    let ceiling = 500u64.saturating_mul(1u64 << attempt.min(5)).min(15_000) as f64;
    let unit = if (0.0..1.0).contains(&unit) {
        unit
    } else {
        0.0
    };
    (ceiling * (0.5 + unit / 2.0)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use shieldcall_proto::PolicySource;

    fn setting(policy: E2eePolicyType, enabled: bool) -> E2eeSetting {
        E2eeSetting {
            enabled,
            can_change: true,
            policy,
            policy_identity: "Global".into(),
            source: PolicySource::Global,
        }
    }

    fn presence(user: &str, status: Status, name: Option<&str>) -> Presence {
        Presence {
            user: user.into(),
            status,
            name: name.map(str::to_string),
        }
    }

    fn welcome(user: &str) -> RelayMsg {
        RelayMsg::Welcome {
            version: shieldcall_proto::PROTOCOL_VERSION,
            user: user.into(),
            device: "d-1".into(),
            admin: true,
            e2ee: setting(E2eePolicyType::EnabledUserOverride, true),
            ice_servers: vec![IceServer {
                urls: vec!["stun:stun.example.test".into()],
                username: None,
                credential: None,
            }],
        }
    }

    #[test]
    fn welcome_sets_who_and_forgets_a_call_elsewhere() {
        let mut s = Session {
            elsewhere: Some(Elsewhere {
                call_id: CallId("c1".into()),
                peer: "bob@b.test".into(),
                mode: CallMode::Standard,
            }),
            ..Session::default()
        };
        assert_eq!(s.handle(welcome("ann@a.test")), Effect::None);
        assert_eq!(
            s.me,
            Some(Me {
                user: "ann@a.test".into(),
                admin: true
            })
        );
        assert_eq!(s.user(), "ann@a.test");
        assert_eq!(s.ice_servers.len(), 1);
        assert_eq!(s.elsewhere, None);
        assert_eq!(s.wish(), Wish::Switch);
    }

    #[test]
    fn presence_merges_updates_removes_and_sorts() {
        let mut s = Session::default();
        s.handle(RelayMsg::Presence {
            contacts: vec![
                presence("cat@a.test", Status::Online, None),
                presence("bob@a.test", Status::Offline, None),
            ],
        });
        assert_eq!(
            s.contacts
                .iter()
                .map(|c| c.user.as_str())
                .collect::<Vec<_>>(),
            ["bob@a.test", "cat@a.test"]
        );
        // A change carries the current name; a removed contact goes.
        s.handle(RelayMsg::Presence {
            contacts: vec![
                presence("bob@a.test", Status::Busy, Some("Bob Builder")),
                presence("cat@a.test", Status::Removed, None),
                presence("abe@a.test", Status::Online, None),
            ],
        });
        assert_eq!(
            s.contacts,
            [
                presence("abe@a.test", Status::Online, None),
                presence("bob@a.test", Status::Busy, Some("Bob Builder")),
            ]
        );
        assert_eq!(s.shown("bob@a.test"), "Bob Builder (bob@a.test)");
        assert_eq!(s.shown("abe@a.test"), "abe@a.test");
        assert_eq!(s.shown("zed@z.test"), "zed@z.test");
        // A name taken away is gone from how they are shown.
        s.handle(RelayMsg::Presence {
            contacts: vec![presence("bob@a.test", Status::Busy, None)],
        });
        assert_eq!(s.shown("bob@a.test"), "bob@a.test");
    }

    #[test]
    fn settings_decide_the_wish() {
        let mut s = Session::default();
        assert_eq!(s.wish(), Wish::None);
        for (policy, enabled, wish) in [
            (E2eePolicyType::Required, true, Wish::Required),
            (E2eePolicyType::EnabledUserOverride, true, Wish::Switch),
            (E2eePolicyType::EnabledUserOverride, false, Wish::None),
            (E2eePolicyType::DisabledUserOverride, true, Wish::Switch),
            (E2eePolicyType::Disabled, false, Wish::None),
        ] {
            let e2ee = setting(policy, enabled);
            assert_eq!(s.handle(RelayMsg::Settings { e2ee }), Effect::None);
            assert_eq!(s.wish(), wish, "{policy:?} {enabled}");
        }
    }

    #[test]
    fn only_the_call_elsewhere_that_ended_is_forgotten() {
        let mut s = Session::default();
        s.handle(RelayMsg::ElsewhereCall {
            call_id: CallId("c1".into()),
            peer: "bob@a.test".into(),
            mode: CallMode::Standard,
        });
        assert!(s.elsewhere.is_some());
        let other = RelayMsg::ElsewhereEnded {
            call_id: CallId("c2".into()),
        };
        assert_eq!(s.handle(other), Effect::LoadHistory);
        assert!(s.elsewhere.is_some());
        let this = RelayMsg::ElsewhereEnded {
            call_id: CallId("c1".into()),
        };
        assert_eq!(s.handle(this), Effect::LoadHistory);
        assert_eq!(s.elsewhere, None);
    }

    fn hung_up(mut call: Call) -> Call {
        let id = call.id().cloned().expect("an incoming call has its id");
        let _ = call.handle(
            crate::call::Input::Relay(RelayMsg::Hangup {
                call_id: id,
                reason: shieldcall_proto::HangupReason::Normal,
            }),
            1,
        );
        assert!(call.is_ended());
        call
    }

    #[test]
    fn errors_go_to_the_call_they_are_about_or_nowhere() {
        let c1 = CallId("c1".into());
        let c2 = CallId("c2".into());
        let ringing = |id: &CallId| {
            Call::incoming(id.clone(), "bob@a.test", CallMode::Standard, Wish::None, 0).0
        };
        let current = ringing(&c1);
        let held = ringing(&c2);
        assert_eq!(
            error_for(Some(&c1), Some(&current), None, &[]),
            ErrorFor::Current
        );
        assert_eq!(
            error_for(Some(&c2), Some(&current), Some(&held), &[]),
            ErrorFor::Held
        );
        assert_eq!(
            error_for(Some(&c2), Some(&current), None, &[&held]),
            ErrorFor::Leg(0)
        );
        // Unknown here, or about a call that is over: stale.
        assert_eq!(
            error_for(Some(&c2), Some(&current), None, &[]),
            ErrorFor::Stale
        );
        let over = hung_up(ringing(&c1));
        assert_eq!(
            error_for(Some(&c1), Some(&over), None, &[]),
            ErrorFor::Stale
        );
        // Naming no call: the session's.
        assert_eq!(error_for(None, Some(&current), None, &[]), ErrorFor::Nobody);
        assert_eq!(error_for(None, None, None, &[]), ErrorFor::Nobody);
    }

    #[test]
    fn refusals_before_placing_reach_the_waiting_call() {
        let c1 = CallId("c1".into());
        let current = Call::incoming(c1.clone(), "bob@a.test", CallMode::Standard, Wish::None, 0).0;
        // "Add to call" placed beside c1, not yet placed: the relay refuses it
        // under c1's id, and it is the leg's, not the current call's.
        let (add, _) = Call::outgoing_add("cat@a.test", c1.clone(), Wish::None, 0);
        assert_eq!(
            error_for(Some(&c1), Some(&current), None, &[&add]),
            ErrorFor::Leg(0)
        );
        // A consultation about c1 (held), not yet placed, is the current call.
        let (consult, _) = Call::outgoing_consult("cat@a.test", c1.clone(), Wish::None, 0);
        assert_eq!(
            error_for(Some(&c1), Some(&consult), Some(&current), &[]),
            ErrorFor::Current
        );
        // A pickup not yet answered hears of its refusal with no call named.
        let (pickup, _) = Call::pick_up(7, Wish::None, 0);
        assert_eq!(error_for(None, Some(&pickup), None, &[]), ErrorFor::Current);
    }

    #[test]
    fn messages_go_to_their_call_and_a_second_ring_is_busy() {
        let c1 = CallId("c1".into());
        let c2 = CallId("c2".into());
        let c3 = CallId("c3".into());
        let ringing = |id: &CallId| {
            Call::incoming(id.clone(), "bob@a.test", CallMode::Standard, Wish::None, 0).0
        };
        let (current, held, leg) = (ringing(&c1), ringing(&c2), ringing(&c3));
        let hangup = |id: &CallId| RelayMsg::Hangup {
            call_id: id.clone(),
            reason: shieldcall_proto::HangupReason::Normal,
        };
        let all = |msg: &RelayMsg| route(msg, Some(&current), Some(&held), &[&leg]);
        assert_eq!(all(&hangup(&c1)), Route::Current);
        assert_eq!(all(&hangup(&c2)), Route::Held);
        assert_eq!(all(&hangup(&c3)), Route::Leg(0));
        assert_eq!(all(&hangup(&CallId("c9".into()))), Route::Unknown);
        let incoming = RelayMsg::Incoming {
            call_id: CallId("c4".into()),
            from: "dee@a.test".into(),
            mode: CallMode::Standard,
            referred_by: None,
            group: Vec::new(),
        };
        assert_eq!(all(&incoming), Route::Busy);
        assert_eq!(route(&incoming, None, None, &[]), Route::Ring);
        let over = hung_up(ringing(&c1));
        assert_eq!(route(&incoming, Some(&over), None, &[]), Route::Ring);
        // The machine of a call that is over still gets what comes late.
        assert_eq!(route(&hangup(&c1), Some(&over), None, &[]), Route::Current);
        // An invite not yet answered is known by whom it calls.
        let (outgoing, _) = Call::outgoing("dee@a.test", Wish::None, 0);
        let calling = RelayMsg::Calling {
            call_id: CallId("c5".into()),
            to: "dee@a.test".into(),
            mode: CallMode::Standard,
        };
        assert_eq!(route(&calling, Some(&outgoing), None, &[]), Route::Current);
        assert_eq!(route(&calling, None, None, &[]), Route::Unknown);
    }

    #[test]
    fn call_messages_are_given_back() {
        let mut s = Session::default();
        let msg = RelayMsg::Pong { id: 7 };
        assert_eq!(s.handle(msg.clone()), Effect::NotMine(msg));
    }

    /// A quiet relay is asked once, after 10 s, and given up on after 20 s,
    /// then on every tick until the tab connects again.
    #[test]
    fn a_quiet_relay_is_pinged_then_given_up() {
        let seen: Vec<Liveness> = (0..=22).map(liveness).collect();
        for (quiet, live) in seen.iter().enumerate() {
            let want = match quiet {
                10 => Liveness::Ping,
                20.. => Liveness::GiveUp,
                _ => Liveness::Wait,
            };
            assert_eq!(*live, want, "{quiet} s");
        }
        assert_eq!(liveness(u32::MAX), Liveness::GiveUp);
    }
}
