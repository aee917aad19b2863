//! The in-memory switchboard: which devices are signed in, presence, and the calls
//! between them.
//!
//! [`Core`] is the state, a pure state machine in str0m's shape. Every
//! message a device sends reaches it as one [`Input`] through
//! [`Core::handle`]`(now, device, input)`; timers run through
//! [`Core::handle_timeout`]`(now)`; what is to be sent comes out of
//! [`Core::poll_output`] as [`Output`]s (deliver a message to a device, close
//! a device's connection), and [`Core::poll_timeout`] says when the time is
//! next needed. Nothing in it locks, awaits, reads a clock, touches a socket
//! or the store, or encodes a message; the tests drive it with a clock of
//! their own.
//!
//! [`Hub`] is its driver for the relay: the core behind one short-held lock,
//! and beside it the devices' outboxes. Before the lock is let go it drains
//! the outputs in order and pushes each message onto its device's outbox,
//! shared, not encoded (one message sent to many devices is one allocation).
//! The WebSocket task (`crate::ws`) does what needs the store first (the
//! settings, the call-mode decision, a minted call id), calls
//! [`Hub::handle`], and encodes and writes what its outbox holds in its own
//! task, outside every lock. `serve` sleeps until [`Hub::poll_timeout`], calls
//! [`Hub::handle_timeout`], and wakes early on [`Hub::timer_changed`].
//!
//! Timers (ring timeout, reconnect grace, park, ring-back, restore claims,
//! transfer tokens, joins, voicemail limits) are entries in the core's own
//! queue.
//!
//! A message for a call is authorised here (`calls`): only the call's parties may
//! touch it, and after `accept` only the two bound devices.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use shieldcall_proto::{
    CallFeature, CallId, CallMode, ClientMsg, E2eeSetting, ErrorCode, HangupReason, Presence,
    RelayMsg, Status,
};
use tokio::sync::{Notify, mpsc};

mod call_id;
mod calls;
pub mod consult;
#[cfg(test)]
mod consult_tests;
pub mod group;
#[cfg(test)]
mod group_tests;
pub mod history;
mod park;
#[cfg(test)]
mod tests;
mod transfer;
pub mod voicemail;

pub use call_id::{CALL_ID_HEX, CallKey, KEY_FILE, well_formed};
pub use history::{CallRecord, Direction, Outcome};

use crate::policy::{CallingPolicy, ExternalAccess, Refusal, access_in, domain_of, reachable};

/// A device's number for the life of its connection.
pub type DeviceId = u64;

/// What a cluster node takes from its hub to keep the database's call rows
/// in step ([`Hub::take_ended`]).
#[derive(Debug, Default)]
pub struct Ended {
    /// Calls that ended.
    pub calls: Vec<CallId>,
    /// Users whose call may have changed and who are in a call of this hub
    /// now, with that call.
    pub busy: Vec<(String, CallId)>,
    /// Users who let go of a call that goes on without them (a parker, a
    /// transferor), with that call.
    pub freed: Vec<(String, CallId)>,
    /// Pickup codes given back (picked up or taken back), with their calls.
    pub unparked: Vec<(u8, CallId)>,
}

/// What the hub's state asks its driver to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Write `msg` to `device`'s connection.
    Deliver {
        /// The device.
        device: DeviceId,
        /// The message (shared by every device it goes to).
        msg: Arc<RelayMsg>,
    },
    /// End `device`'s connection after what was delivered to it before (its
    /// session was signed out); the connection then unregisters the device.
    Close {
        /// The device.
        device: DeviceId,
    },
}

/// An error for the device that sent the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// Stable code.
    pub code: ErrorCode,
    /// Sentence for people.
    pub message: String,
    /// The call concerned.
    pub call_id: Option<CallId>,
}

/// What a feature that makes a new pair (a transfer, a merge, an added
/// person, a voicemail) needs of the pair's call decision, made now: a
/// standard call. A pair whose calls would be end-to-end encrypted gets
/// `unavailable-in-e2ee` with `e2ee` (the sentence saying what to do instead);
/// one the policies forbid, `wrong-state` naming `a` and `b`.
fn standard_pair(
    decision: Option<&Result<CallMode, crate::policy::Refusal>>,
    (a, b): (&str, &str),
    e2ee: &str,
    call_id: Option<&CallId>,
) -> Result<(), WireError> {
    let error = |code, message: String| WireError {
        code,
        message,
        call_id: call_id.cloned(),
    };
    match decision {
        Some(Ok(CallMode::Standard)) => Ok(()),
        Some(Ok(CallMode::E2ee)) => Err(error(ErrorCode::UnavailableInE2ee, e2ee.to_string())),
        Some(Err(_)) | None => Err(error(
            ErrorCode::WrongState,
            format!("The policies do not allow {a} a call with {b}."),
        )),
    }
}

impl WireError {
    fn new(code: ErrorCode, message: &str, call_id: &CallId) -> Self {
        Self {
            code,
            message: message.into(),
            call_id: Some(call_id.clone()),
        }
    }

    /// `unavailable-in-e2ee` for `feature` in the E2EE call `call_id`, saying how
    /// to get it.
    fn unavailable_in_e2ee(feature: CallFeature, call_id: &CallId) -> Self {
        Self::new(
            ErrorCode::UnavailableInE2ee,
            &format!(
                "{} is off in end-to-end encrypted calls. Turn end-to-end encryption off in Settings → Privacy to use it.",
                feature.label()
            ),
            call_id,
        )
    }

    /// As a wire message.
    pub fn into_msg(self) -> RelayMsg {
        RelayMsg::error(self.code, self.message, self.call_id)
    }
}

/// A signed-in device.
#[derive(Debug)]
struct Device {
    /// Whose device.
    user: String,
    /// The session it signed in with (to end it on sign-out).
    session: String,
}

/// Messages for one connection, in order; the connection encodes each as it
/// writes it.
pub type OutboxSender = mpsc::Sender<Arc<RelayMsg>>;

/// A device's outbox, kept by the driver (not the state).
#[derive(Debug)]
struct Outbox {
    /// Messages for the connection; dropping the sender ends it.
    tx: OutboxSender,
    /// Set when the outbox overflowed: the connection closes instead of
    /// silently losing signalling messages.
    overflow: Arc<AtomicBool>,
}

/// A user with at least one device.
#[derive(Debug)]
struct Online {
    /// The user's devices, oldest first.
    devices: Vec<DeviceId>,
    /// The last E2EE setting sent to them.
    setting: E2eeSetting,
    /// When they last changed their switch (see [`Hub::may_switch`]).
    switched_at: Option<Instant>,
}

/// A call from ringing to hangup.
#[derive(Debug)]
struct Call {
    /// Decided at invite.
    mode: CallMode,
    /// The caller.
    caller: String,
    /// The callee.
    callee: String,
    /// Ringing or up, with the devices bound to it.
    state: State,
    /// The caller holds the call (standard calls only).
    held_by_caller: bool,
    /// The callee holds the call.
    held_by_callee: bool,
    /// Parked: one side let go of the call, which waits for a pickup.
    park: Option<Park>,
    /// When it began (wall clock, Unix seconds), for the history.
    started_at: i64,
    /// When it was answered (or restored), for the history's duration.
    answered_at: Option<Instant>,
    /// The callee declined it.
    declined: bool,
    /// Its ring timeout, while it rings.
    ring_timer: Option<TimerKey>,
    /// The grace timer of the latest departure of a bound device.
    grace_timer: Option<TimerKey>,
    /// This call is a consultation (`consult`) that its caller placed while
    /// holding that other call, which comes back to them when this one ends.
    consult_of: Option<CallId>,
    /// After a consult transfer: the side that changed hands waits for its new
    /// device's commitment (`join`); until then nothing is forwarded on the
    /// call. The join timeout's key.
    joining: Option<Joining>,
    /// The group call this call is a leg of.
    group: Option<group::GroupId>,
    /// The call is being recorded, as asked by this person (standard 1:1
    /// calls only; the media component's legs end when this is unset).
    recording: Option<String>,
    /// Live captions are on, as asked by this person (as `recording`).
    captions: Option<String>,
}

/// Where a call is, with the devices bound to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// It rings on the callee's devices. `caller` is the device that placed
    /// it: when that device leaves, the call is cancelled, so there always is one.
    Ringing {
        /// The caller's device.
        caller: DeviceId,
    },
    /// Answered (or restored after a relay restart, or a leg of a group call).
    Up {
        /// The caller's bound device; `None` while it is gone and may come
        /// back within the grace, or while the caller parked the call.
        caller: Option<DeviceId>,
        /// The callee's, likewise.
        callee: Option<DeviceId>,
        /// Counts bound devices leaving, so only the latest grace timer may
        /// end the call.
        departures: u64,
    },
}

impl Call {
    /// A call in `mode` from `caller` on device `dev` to `callee`, ringing,
    /// with nothing else set: no timers, consultation or group.
    fn ringing(
        mode: CallMode,
        (caller, dev): (&str, DeviceId),
        callee: &str,
        started_at: i64,
    ) -> Self {
        Self::new(
            mode,
            caller,
            callee,
            State::Ringing { caller: dev },
            started_at,
            None,
        )
    }

    /// A call in `mode` between `caller` and `callee` on these devices, up
    /// since `now` (`started_at` on the wall clock: a restored call, a leg of a
    /// group call), with nothing else set: no hold, park, timers, consultation
    /// or group.
    fn up(
        mode: CallMode,
        (caller, caller_dev): (&str, DeviceId),
        (callee, callee_dev): (&str, DeviceId),
        (now, started_at): (Instant, i64),
    ) -> Self {
        let state = State::Up {
            caller: Some(caller_dev),
            callee: Some(callee_dev),
            departures: 0,
        };
        Self::new(mode, caller, callee, state, started_at, Some(now))
    }

    fn new(
        mode: CallMode,
        caller: &str,
        callee: &str,
        state: State,
        started_at: i64,
        answered_at: Option<Instant>,
    ) -> Self {
        Self {
            mode,
            caller: caller.into(),
            callee: callee.into(),
            state,
            held_by_caller: false,
            held_by_callee: false,
            park: None,
            started_at,
            answered_at,
            declined: false,
            ring_timer: None,
            grace_timer: None,
            consult_of: None,
            joining: None,
            group: None,
            recording: None,
            captions: None,
        }
    }

    /// Accepted (or restored, or a group's leg).
    fn answered(&self) -> bool {
        matches!(self.state, State::Up { .. })
    }

    /// The device bound to `side`, if any (a ringing call's callee has none).
    fn dev(&self, side: Side) -> Option<DeviceId> {
        match (self.state, side) {
            (State::Ringing { caller }, Side::Caller) => Some(caller),
            (State::Ringing { .. }, Side::Callee) => None,
            (State::Up { caller, .. }, Side::Caller) => caller,
            (State::Up { callee, .. }, Side::Callee) => callee,
        }
    }

    /// Who is on `side`.
    fn user(&self, side: Side) -> &str {
        match side {
            Side::Caller => &self.caller,
            Side::Callee => &self.callee,
        }
    }

    fn caller_dev(&self) -> Option<DeviceId> {
        self.dev(Side::Caller)
    }

    fn callee_dev(&self) -> Option<DeviceId> {
        self.dev(Side::Callee)
    }

    /// Binds `side` of an answered call to `dev` (a device took it over, picked
    /// it up or joined it), or unbinds it (`None`: that side parked it). A
    /// ringing call has only its caller's device, and is left as it is.
    fn bind(&mut self, side: Side, dev: Option<DeviceId>) {
        if let State::Up { caller, callee, .. } = &mut self.state {
            match side {
                Side::Caller => *caller = dev,
                Side::Callee => *callee = dev,
            }
        }
    }

    /// The callee's device `dev` accepts the ringing call; `false` if it was
    /// not ringing.
    fn answer(&mut self, dev: DeviceId) -> bool {
        let State::Ringing { caller } = self.state else {
            return false;
        };
        self.state = State::Up {
            caller: Some(caller),
            callee: Some(dev),
            departures: 0,
        };
        true
    }

    /// `side`'s bound device of an answered call left: it is unbound and the
    /// departure counted. Returns the count, for the grace timer (`None` for a
    /// ringing call, which a leaving caller cancels instead).
    fn depart(&mut self, side: Side) -> Option<u64> {
        let State::Up {
            caller,
            callee,
            departures,
        } = &mut self.state
        else {
            return None;
        };
        match side {
            Side::Caller => *caller = None,
            Side::Callee => *callee = None,
        }
        *departures += 1;
        Some(*departures)
    }

    /// How many bound devices have left the answered call (0 while it rings).
    fn departures(&self) -> u64 {
        match self.state {
            State::Ringing { .. } => 0,
            State::Up { departures, .. } => departures,
        }
    }

    /// The side `user` is on with their bound device `dev`, if it is.
    fn side_of(&self, user: &str, dev: DeviceId) -> Option<Side> {
        if self.caller == user && self.caller_dev() == Some(dev) {
            Some(Side::Caller)
        } else if self.callee == user && self.callee_dev() == Some(dev) {
            Some(Side::Callee)
        } else {
            None
        }
    }
}

/// A side of a call handed over by a consult transfer, waiting for `join`.
#[derive(Debug, Clone, Copy)]
struct Joining {
    /// The side that changed hands (its user and device are the new ones).
    side: Side,
    /// The join timeout ([`consult::JOIN_TIMEOUT`]).
    timer: Option<TimerKey>,
}

/// A parked call's park.
#[derive(Debug, Clone)]
struct Park {
    /// The pickup code (in [`PARK_CODES`]).
    code: u8,
    /// The side that let go (the parker's); it has no device until a pickup.
    side: Side,
    /// Who parked it (rung back after the park timeout).
    parker: String,
    /// Numbers parks, so a timer only acts on the park that started it.
    epoch: u64,
    /// The park timed out and the parker's devices ring.
    ringing_back: bool,
    /// The park timeout, then the ring-back timeout.
    timer: Option<TimerKey>,
    /// When it was parked: where the parker's part of the call ends if someone
    /// else picks it up.
    at: Instant,
}

/// What a timer of the hub does when it is due.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Timer {
    /// The call still rings: the caller hears `no-answer`.
    Ring(CallId),
    /// A bound device left (`departures` was `epoch`) and did not come back.
    Grace { call: CallId, epoch: u64 },
    /// An unmatched restore claim (`Restore::epoch`) expires.
    Restore { call: CallId, epoch: u64 },
    /// Nobody picked the parked call up: the parker is rung back.
    Park { call: CallId, epoch: u64 },
    /// The parker did not take the call back: it ends.
    RingBack { call: CallId, epoch: u64 },
    /// A transfer's token expires.
    Referral(String),
    /// The device a consult transfer handed a call to did not join it.
    Join(CallId),
    /// A voicemail reached its time limit.
    Voicemail(CallId),
}

/// A timer's place in the queue: its deadline, then the order it was set in.
type TimerKey = (Instant, u64);

/// The hub's clock and timers. The state reads no clock: its time is what the
/// driver gives it, and its wall-clock time (for the call history) is derived
/// from the last time given and the wall clock the driver read with it.
#[derive(Debug)]
struct Clock {
    /// The latest time the hub was given (it never goes back).
    now: Instant,
    /// An instant the driver gave, and the wall clock (Unix seconds) it read
    /// then; read again with every time given, so a wall clock set right
    /// after the relay started (NTP) is followed.
    wall: (Instant, i64),
    /// Pending timers, earliest first.
    queue: BTreeMap<TimerKey, Timer>,
    /// Numbers timers, so two with one deadline keep their order.
    seq: u64,
    /// A timer earlier than every other was set: the driver must wake.
    rearm: bool,
}

impl Clock {
    /// A clock at `now`, with no wall-clock time read yet (the Unix epoch,
    /// until [`Core::set_wall_clock`]).
    fn new(now: Instant) -> Self {
        Self {
            now,
            wall: (now, 0),
            queue: BTreeMap::new(),
            seq: 0,
            rearm: false,
        }
    }
}

/// Pickup codes, as Teams' default range: two digits, easy to say aloud. At most
/// this many calls are parked on one relay at once.
pub const PARK_CODES: std::ops::RangeInclusive<u8> = 10..=99;

/// Which side of a call a user is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Caller,
    Callee,
}

impl Side {
    /// The other side of the call.
    fn other(self) -> Self {
        match self {
            Side::Caller => Side::Callee,
            Side::Callee => Side::Caller,
        }
    }
}

/// The hub's settings, fixed for its life.
#[derive(Debug)]
pub struct Config {
    /// How long a call rings before `no-answer`.
    pub ring_timeout: Duration,
    /// How long a call survives a bound device's disconnect.
    pub grace: Duration,
    /// How long a call stays parked before the parker is rung back.
    pub park_timeout: Duration,
    /// Makes and checks call ids.
    pub key: CallKey,
}

/// The switchboard's state, a pure state machine in str0m's shape: it is
/// given time and inputs ([`Core::handle`], [`Core::handle_timeout`]), queues
/// what is to be sent ([`Core::poll_output`]) and says when it next needs the
/// time ([`Core::poll_timeout`]). It holds no lock, reads no clock, starts no
/// task and touches no socket; [`Hub`] drives it for the relay.
#[derive(Debug)]
pub struct Core {
    /// The settings.
    cfg: Config,
    /// Next device number.
    next_device: DeviceId,
    /// Connected devices.
    devices: HashMap<DeviceId, Device>,
    /// Users with devices.
    users: HashMap<String, Online>,
    /// Calls ringing or up.
    calls: HashMap<CallId, Call>,
    /// The call each user is in (a user is in at most one).
    in_call: HashMap<String, CallId>,
    /// External access by tenant domain, refreshed from the store.
    access: HashMap<String, ExternalAccess>,
    /// Each tenant's calling policy (a domain not here has the default).
    calling: HashMap<String, CallingPolicy>,
    /// Every account, as of the last refresh (`None` before the first): what
    /// contact lists are drawn from, kept to tell clients how their lists change.
    accounts: Option<BTreeSet<String>>,
    /// Display names of the accounts that have one, as of the last refresh.
    names: HashMap<String, String>,
    /// The presence last announced per user (absent: offline).
    shown: HashMap<String, Status>,
    /// In the cluster configuration: calls ended since the node last took
    /// them ([`Hub::take_ended`]), so that their rows in the database go.
    ended: Vec<CallId>,
    /// In the cluster configuration: calls answered since the node last
    /// took them ([`Hub::take_answered`]).
    answered: Vec<CallId>,
    /// In the cluster configuration: users whose call may have changed since
    /// the node last took them ([`Hub::take_ended`]), so that their busy rows
    /// follow (whoever picks up or is joined to a call is busy).
    busy_dirty: HashSet<String>,
    /// In the cluster configuration: users who let go of a call that goes on
    /// (parked it, or left it by a consult transfer) since the node last took
    /// them ([`Hub::take_ended`]): their busy rows go.
    freed: Vec<(String, CallId)>,
    /// In the cluster configuration: pickup codes given back (picked up or
    /// taken back) since the node last took them ([`Hub::take_ended`]).
    unparked: Vec<(u8, CallId)>,
    /// This hub is a node of a cluster (see `ended`).
    cluster: bool,
    /// In the cluster configuration: users online through other relay nodes
    /// (`Online` or `Busy`), as last read from the database (`crate::cluster`);
    /// absent: not online elsewhere. A user's presence is the stronger of
    /// this and what this hub sees.
    remote: HashMap<String, Status>,
    /// Users whose presence may have changed since the last flush.
    dirty: HashSet<String>,
    /// `resume`s of calls this relay does not know (it restarted), waiting for the
    /// other person's device to resume the same call. At most one per device and
    /// [`MAX_RESTORING`] in all.
    restoring: HashMap<CallId, Restore>,
    /// Numbers the claims, so a claim's expiry timer never removes a newer one.
    next_claim: u64,
    /// Parked calls by pickup code.
    parked: HashMap<u8, CallId>,
    /// Numbers parks (see [`Park::epoch`]).
    next_park: u64,
    /// Transfers not yet carried out, by token (see `transfer.rs`).
    referrals: HashMap<String, Referral>,
    /// Voicemails being left (see `voicemail.rs`), by id.
    voicemails: HashMap<CallId, voicemail::Voicemail>,
    /// Group calls (see `group.rs`).
    groups: HashMap<group::GroupId, group::Group>,
    /// Numbers groups.
    next_group: group::GroupId,
    /// This relay has a speech recogniser (`set_captions_deployed`).
    captions_deployed: bool,
    /// History records not yet written (see `history.rs`), oldest first.
    history: std::collections::VecDeque<CallRecord>,
    /// The clock and the timers.
    clock: Clock,
    /// What is to be sent, oldest first (see [`Core::poll_output`]). A cell, so
    /// a message can be queued while the state it is computed from is borrowed.
    out: RefCell<VecDeque<Output>>,
}

/// A `refer` sent and not yet carried out by an `invite`.
#[derive(Debug)]
struct Referral {
    /// Who is to call (the transferee).
    from: String,
    /// Whom.
    to: String,
    /// Who transferred.
    by: String,
    /// Its expiry ([`transfer::REFER_TTL`]).
    timer: Option<TimerKey>,
}

/// Restore claims kept at once. Each is a call id and two user names (all
/// checked: a well-formed id, an existing account); a relay that restarted with
/// N calls up needs N of them for the grace period.
pub const MAX_RESTORING: usize = 10_000;

/// One side's claim on a call lost in a relay restart.
#[derive(Debug)]
struct Restore {
    /// Who resumed.
    user: String,
    /// Their device.
    dev: DeviceId,
    /// Whom they name as the other person.
    peer: String,
    /// The mode they know.
    mode: CallMode,
    /// This claim's number (see `Core::next_claim`).
    epoch: u64,
    /// Its expiry.
    timer: Option<TimerKey>,
}

/// The switchboard's driver: the state ([`Core`]) behind one short-held lock,
/// and the devices' outboxes, which get the state's outputs.
#[derive(Debug)]
pub struct Hub {
    /// The state and the outboxes, behind one short-held lock.
    inner: Mutex<Guarded>,
    /// Woken when a timer is set earlier than every pending one.
    wake: Notify,
}

/// What the lock guards: the state, and beside it (out of the state's reach)
/// the outboxes of registered devices. Outputs are pushed while the lock is
/// held, so every outbox gets them in the order the state made them.
#[derive(Debug)]
struct Guarded {
    state: Core,
    outboxes: HashMap<DeviceId, Outbox>,
}

/// The locked state. Dropping it delivers the outputs queued meanwhile and
/// wakes the timer driver if a new earliest timer was set.
struct Locked<'a> {
    g: MutexGuard<'a, Guarded>,
    wake: &'a Notify,
}

impl Deref for Locked<'_> {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.g.state
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Core {
        &mut self.g.state
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let Guarded { state, outboxes } = &mut *self.g;
        if std::mem::take(&mut state.clock.rearm) {
            // A permit is kept if the driver is not waiting yet.
            self.wake.notify_one();
        }
        while let Some(o) = state.poll_output() {
            deliver(outboxes, o);
        }
    }
}

/// Locks `m`. A panic while holding one of the hub's locks is a bug; the relay
/// keeps serving with the state as it is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Carries out one output on the outboxes: a push, never a wait, and no
/// encoding. A device whose outbox is full is marked, and its connection closes.
fn deliver(outboxes: &mut HashMap<DeviceId, Outbox>, output: Output) {
    match output {
        Output::Deliver { device, msg } => {
            if let Some(b) = outboxes.get(&device)
                && let Err(mpsc::error::TrySendError::Full(_)) = b.tx.try_send(msg)
                && !b.overflow.swap(true, Ordering::Relaxed)
            {
                // A closed outbox means the connection is closing anyway.
                tracing::warn!(device, "outbox full; closing the connection");
            }
        }
        // Dropping the sender ends the connection after the queued frames.
        Output::Close { device } => {
            outboxes.remove(&device);
        }
    }
}

/// Devices one user may have connected at once. Ten covers a desktop, a phone and
/// a handful of tabs; past it, a stolen cookie or a runaway script cannot make the
/// relay fan every call and presence change out to hundreds of sockets.
pub const MAX_DEVICES_PER_USER: usize = 10;

/// The shortest time between two changes of one user's E2EE switch.
pub const SWITCH_INTERVAL: Duration = Duration::from_secs(1);

/// Contacts per `presence` message when a whole list (or a large change of one) is
/// sent, so each frame stays far below the 64 KiB message cap however large the
/// tenant is. Clients merge every `presence`.
pub const PRESENCE_CHUNK: usize = 32;

/// Whether a user of `domain` may see `user` under the external access `map`.
fn visible(map: &HashMap<String, ExternalAccess>, domain: &str, user: &str) -> bool {
    let d = domain_of(user);
    reachable(domain, access_in(map, domain), d, access_in(map, d))
}

impl Core {
    /// Whether the calling policies of both `people`'s tenants allow
    /// `feature`; if not, the refusal, naming whose organisation turned it off.
    fn calling_allows(
        &self,
        people: [&str; 2],
        feature: CallFeature,
        id: Option<&CallId>,
    ) -> Result<(), WireError> {
        for (i, who) in people.iter().enumerate() {
            let domain = domain_of(who);
            let allowed = self
                .calling
                .get(domain)
                .copied()
                .unwrap_or_default()
                .allows(feature);
            if !allowed {
                let whose = if i == 0 {
                    "your organisation".to_string()
                } else {
                    format!("the organisation of {who}")
                };
                return Err(WireError {
                    code: ErrorCode::NotAllowed,
                    message: format!(
                        "{} is turned off by {whose}'s calling policy.",
                        feature.label()
                    ),
                    call_id: id.cloned(),
                });
            }
        }
        Ok(())
    }

    /// The hub's time: the latest `now` it was given.
    fn now(&self) -> Instant {
        self.clock.now
    }

    /// The hub's time on the wall clock, in Unix seconds (for the history).
    fn unix_now(&self) -> i64 {
        let (at, unix) = self.clock.wall;
        let since = self.clock.now.saturating_duration_since(at).as_secs();
        unix.saturating_add(i64::try_from(since).unwrap_or(i64::MAX))
    }

    /// Sets `timer` for `after` from now. A deadline past the range of the
    /// clock never comes, and is not set.
    fn schedule(&mut self, after: Duration, timer: Timer) -> Option<TimerKey> {
        let at = self.clock.now.checked_add(after)?;
        self.clock.seq += 1;
        let key = (at, self.clock.seq);
        if self
            .clock
            .queue
            .first_key_value()
            .is_none_or(|(k, _)| key < *k)
        {
            self.clock.rearm = true;
        }
        self.clock.queue.insert(key, timer);
        Some(key)
    }

    /// Drops a timer that is no longer needed (nothing if it already ran).
    fn cancel(&mut self, key: Option<TimerKey>) {
        if let Some(key) = key {
            self.clock.queue.remove(&key);
        }
    }

    /// Queues a copy of `msg` for device `dev`, if it is signed in.
    fn send(&self, dev: DeviceId, msg: &RelayMsg) {
        self.send_shared(dev, &Arc::new(msg.clone()));
    }

    /// Queues `msg` for device `dev`, if it is signed in, sharing it with
    /// whatever other devices it goes to.
    fn send_shared(&self, dev: DeviceId, msg: &Arc<RelayMsg>) {
        if self.devices.contains_key(&dev) {
            self.out.borrow_mut().push_back(Output::Deliver {
                device: dev,
                msg: Arc::clone(msg),
            });
        }
    }

    /// The next output, oldest first; `None` when all were taken.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.get_mut().pop_front()
    }

    fn send_user(&self, user: &str, msg: &RelayMsg, except: Option<DeviceId>) {
        if let Some(o) = self.users.get(user) {
            let msg = Arc::new(msg.clone());
            for &d in &o.devices {
                if Some(d) != except {
                    self.send_shared(d, &msg);
                }
            }
        }
    }

    /// Sends every online user their part of a change to contact lists: `changes`
    /// gives the entries users of a domain may see (computed once per domain, as
    /// visibility depends only on domains); each user gets them without their own
    /// entry, in `presence` messages of at most [`PRESENCE_CHUNK`].
    fn send_per_domain(&self, mut changes: impl FnMut(&str) -> Vec<Presence>) {
        let mut by_domain: HashMap<&str, Vec<Presence>> = HashMap::new();
        for (recipient, online) in &self.users {
            let domain = domain_of(recipient);
            let visible = by_domain.entry(domain).or_insert_with(|| changes(domain));
            let contacts: Vec<Presence> = visible
                .iter()
                .filter(|p| &p.user != recipient)
                .cloned()
                .collect();
            for chunk in contacts.chunks(PRESENCE_CHUNK) {
                let msg = Arc::new(RelayMsg::Presence {
                    contacts: chunk.to_vec(),
                });
                for &d in &online.devices {
                    self.send_shared(d, &msg);
                }
            }
        }
    }

    fn contacts(&self, a: &str, b: &str) -> bool {
        a != b && visible(&self.access, domain_of(a), b)
    }

    fn status(&self, user: &str) -> Status {
        let here = if !self.users.contains_key(user) {
            Status::Offline
        } else if self.in_call.contains_key(user) {
            Status::Busy
        } else {
            Status::Online
        };
        match (here, self.remote.get(user)) {
            (Status::Busy, _) | (_, Some(Status::Busy)) => Status::Busy,
            (Status::Online, _) | (_, Some(Status::Online)) => Status::Online,
            _ => here,
        }
    }

    /// Whether `user` has a device here or, in a cluster, on another node.
    fn signed_in(&self, user: &str) -> bool {
        self.users.contains_key(user) || self.remote.contains_key(user)
    }

    /// Records `user`'s presence on other nodes; marks it for announcing if
    /// it changed.
    fn set_remote_one(&mut self, user: String, status: Status) {
        let changed = match status {
            Status::Online | Status::Busy => {
                self.remote.insert(user.clone(), status) != Some(status)
            }
            Status::Offline | Status::Removed => self.remote.remove(&user).is_some(),
        };
        if changed {
            self.sync_presence(&user);
        }
    }

    /// Notes that `user`'s presence may have changed; [`Hub::flush_presence`]
    /// announces it.
    fn sync_presence(&mut self, user: &str) {
        if !self.dirty.contains(user) {
            self.dirty.insert(user.to_string());
        }
        // Every change of `in_call` comes with this call.
        if self.cluster && !self.busy_dirty.contains(user) {
            self.busy_dirty.insert(user.to_string());
        }
    }

    /// Tells each side's other devices (not the bound one) that the user has this
    /// answered call elsewhere, so they can offer "move here".
    fn announce_elsewhere(&self, id: &CallId) {
        let Some(call) = self.calls.get(id) else {
            return;
        };
        for (user, bound, peer) in [
            (&call.caller, call.caller_dev(), &call.callee),
            (&call.callee, call.callee_dev(), &call.caller),
        ] {
            let msg = RelayMsg::ElsewhereCall {
                call_id: id.clone(),
                peer: peer.clone(),
                mode: call.mode,
            };
            self.send_user(user, &msg, bound);
        }
    }

    fn end_call(&mut self, id: &CallId) {
        if let Some(call) = self.calls.remove(id) {
            if self.cluster {
                self.ended.push(id.clone());
            }
            self.record_end(&call);
            self.cancel(call.ring_timer);
            self.cancel(call.grace_timer);
            self.cancel(call.joining.and_then(|j| j.timer));
            if let Some(p) = &call.park {
                self.parked.remove(&p.code);
                self.cancel(p.timer);
            }
            if call.answered() {
                // The other devices that were told of the call learn it is over
                // (a parker's were told when it was parked).
                let ended = RelayMsg::ElsewhereEnded {
                    call_id: id.clone(),
                };
                let parked = call.park.as_ref().map(|p| p.side);
                if parked != Some(Side::Caller) {
                    self.send_user(&call.caller, &ended, call.caller_dev());
                }
                if parked != Some(Side::Callee) {
                    self.send_user(&call.callee, &ended, call.callee_dev());
                }
            }
            for u in [&call.caller, &call.callee] {
                if self.in_call.get(u.as_str()) == Some(id) {
                    self.in_call.remove(u.as_str());
                }
                self.sync_presence(u);
            }
            // A consultation is over: the call its caller held is theirs again.
            if let Some(held) = &call.consult_of
                && self.held_for_consult(&call.caller, held)
                && !self.in_call.contains_key(&call.caller)
            {
                self.in_call.insert(call.caller.clone(), held.clone());
            }
            // A leg of a group call is over: its people are still in the
            // group's other legs, if they have any (found before the group
            // may dissolve).
            if let Some(gid) = call.group {
                for u in [&call.caller, &call.callee] {
                    if !self.in_call.contains_key(u.as_str())
                        && let Some(other) = self.other_leg(gid, u, id)
                    {
                        self.in_call.insert(u.clone(), other);
                        self.sync_presence(u);
                    }
                }
            }
            self.leave_group(id, &call);
        }
    }

    /// Call `id`, if it is an answered standard call of `user`'s bound to
    /// their device `dev`, not parked and not being handed over: what every
    /// feature that grows or hands over a call (`feature`) starts from.
    fn own_standard_call(
        &self,
        id: &CallId,
        user: &str,
        dev: DeviceId,
        feature: CallFeature,
    ) -> Result<&Call, WireError> {
        let not_yours =
            || WireError::new(ErrorCode::NotYourCall, "You are not part of this call.", id);
        let wrong = |m: &str| WireError::new(ErrorCode::WrongState, m, id);
        let call = self.calls.get(id).ok_or_else(not_yours)?;
        if call.side_of(user, dev).is_none() || call.park.is_some() {
            return Err(not_yours());
        }
        if !call.answered() {
            return Err(wrong("The call has not been answered yet."));
        }
        if call.mode == CallMode::E2ee {
            return Err(WireError::unavailable_in_e2ee(feature, id));
        }
        if call.joining.is_some() {
            return Err(wrong("The call is being set up anew; wait a moment."));
        }
        Ok(call)
    }

    /// The calls `user` is in: the current one, and the one they hold while
    /// the current one is a consultation (see `consult`).
    fn calls_of(&self, user: &str) -> Vec<CallId> {
        let Some(id) = self.in_call.get(user) else {
            return Vec::new();
        };
        let mut ids = vec![id.clone()];
        let call = self.calls.get(id);
        if let Some(held) = call.and_then(|c| c.consult_of.as_ref())
            && self.held_for_consult(user, held)
        {
            ids.push(held.clone());
        }
        if let Some(gid) = call.and_then(|c| c.group) {
            ids.extend(self.legs_of(user, gid).into_iter().filter(|l| l != id));
        }
        ids
    }

    /// Whether `held` is still a call of `user`'s (a call held for a
    /// consultation, which may have ended or changed hands meanwhile).
    fn held_for_consult(&self, user: &str, held: &CallId) -> bool {
        self.calls
            .get(held)
            .is_some_and(|c| c.park.is_none() && (c.caller == user || c.callee == user))
    }
}

impl Core {
    /// A state with no devices and no calls, its clock at `now`.
    pub fn new(cfg: Config, now: Instant) -> Self {
        Self {
            cfg,
            clock: Clock::new(now),
            next_device: Default::default(),
            devices: Default::default(),
            users: Default::default(),
            calls: Default::default(),
            in_call: Default::default(),
            access: Default::default(),
            calling: Default::default(),
            accounts: Default::default(),
            names: Default::default(),
            shown: Default::default(),
            ended: Default::default(),
            answered: Default::default(),
            busy_dirty: Default::default(),
            freed: Default::default(),
            unparked: Default::default(),
            cluster: Default::default(),
            remote: Default::default(),
            dirty: Default::default(),
            restoring: Default::default(),
            next_claim: Default::default(),
            parked: Default::default(),
            next_park: Default::default(),
            referrals: Default::default(),
            voicemails: Default::default(),
            groups: Default::default(),
            next_group: Default::default(),
            captions_deployed: Default::default(),
            history: Default::default(),
            out: Default::default(),
        }
    }

    /// Moves the clock on to `now` (never back).
    fn at(&mut self, now: Instant) {
        if now > self.clock.now {
            self.clock.now = now;
        }
    }

    /// The wall clock (Unix seconds) the driver read at `now`: the call
    /// history's times are derived from it.
    pub fn set_wall_clock(&mut self, now: Instant, unix: i64) {
        self.clock.wall = (now, unix);
    }

    /// When [`Core::handle_timeout`] is next due; `None` with no timer set.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.clock.queue.first_key_value().map(|(k, _)| k.0)
    }

    /// Runs every timer due at `now`, in deadline order.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.at(now);
        while let Some(entry) = self.clock.queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let timer = entry.remove();
            self.fire(timer);
        }
    }

    /// Timers pending (tests, and a bound on what the hub holds).
    pub fn timers(&self) -> usize {
        self.clock.queue.len()
    }

    fn fire(&mut self, timer: Timer) {
        match timer {
            Timer::Ring(id) => calls::ring_expired(self, &id),
            Timer::Grace { call, epoch } => grace_expired(self, &call, epoch),
            Timer::Restore { call, epoch } => {
                if self.restoring.get(&call).is_some_and(|r| r.epoch == epoch) {
                    self.restoring.remove(&call);
                }
            }
            Timer::Park { call, epoch } => self.park_expired(&call, epoch),
            Timer::RingBack { call, epoch } => park::ring_back_expired(self, &call, epoch),
            Timer::Referral(token) => {
                self.referrals.remove(&token);
            }
            Timer::Join(call) => consult::join_expired(self, &call),
            Timer::Voicemail(id) => self.end_voicemail(&id),
        }
    }

    /// Signs a device in; returns its number, or `None` when the user already has
    /// [`MAX_DEVICES_PER_USER`] devices.
    pub fn register(
        &mut self,
        user: &str,
        session: &str,
        setting: E2eeSetting,
    ) -> Option<DeviceId> {
        if self
            .users
            .get(user)
            .is_some_and(|o| o.devices.len() >= MAX_DEVICES_PER_USER)
        {
            return None;
        }
        self.next_device += 1;
        let id = self.next_device;
        self.devices.insert(
            id,
            Device {
                user: user.into(),
                session: session.into(),
            },
        );
        let online = self
            .users
            .entry(user.to_string())
            .or_insert_with(|| Online {
                devices: Vec::new(),
                setting: setting.clone(),
                switched_at: None,
            });
        online.devices.push(id);
        online.setting = setting;
        self.sync_presence(user);
        Some(id)
    }

    /// Signs a device out (its connection ended). A ringing call it placed is
    /// cancelled; a call it is bound to waits `grace` for the user to come back.
    pub fn unregister(&mut self, now: Instant, dev: DeviceId, user: &str) {
        self.at(now);
        self.devices.remove(&dev);
        let gone = match self.users.get_mut(user) {
            Some(o) => {
                o.devices.retain(|&d| d != dev);
                o.devices.is_empty()
            }
            None => false,
        };
        if gone {
            self.users.remove(user);
        }
        // The current call first: a consultation that still rings is cancelled,
        // which gives the held call back before it is left too.
        for id in self.calls_of(user) {
            self.depart(&id, dev);
        }
        // A message being left is left as it is.
        let left: Vec<CallId> = self
            .voicemails
            .iter()
            .filter(|(_, v)| v.dev == dev)
            .map(|(id, _)| id.clone())
            .collect();
        for id in left {
            self.end_voicemail(&id);
        }
        self.sync_presence(user);
    }

    /// Device `dev` is gone from call `id`: a call it placed that still rings is
    /// cancelled; an answered call it is bound to waits `grace` for a device of
    /// the user to come back.
    fn depart(&mut self, id: &CallId, dev: DeviceId) {
        let mut cancel = false;
        let mut wait = None;
        if let Some(call) = self.calls.get_mut(id) {
            let side = [Side::Caller, Side::Callee]
                .into_iter()
                .find(|&s| call.dev(s) == Some(dev));
            match (side, call.answered()) {
                (Some(side), true) => wait = call.depart(side),
                (Some(Side::Caller), false) => cancel = true,
                _ => {}
            }
        }
        if cancel {
            if let Some(call) = self.calls.get(id) {
                self.send_user(
                    &call.callee,
                    &RelayMsg::Cancelled {
                        call_id: id.clone(),
                    },
                    None,
                );
            }
            self.end_call(id);
        } else if let Some(epoch) = wait {
            // Only the latest departure's timer may end the call.
            let timer = self.schedule(
                self.cfg.grace,
                Timer::Grace {
                    call: id.clone(),
                    epoch,
                },
            );
            let old = self
                .calls
                .get_mut(id)
                .and_then(|c| std::mem::replace(&mut c.grace_timer, timer));
            self.cancel(old);
        }
    }

    /// The presence of every account that is a contact of `me`, drawn from the
    /// directory of the last refresh, so that the changes [`Hub::set_directory`]
    /// sends later apply to exactly this list.
    pub fn contacts_of(&self, me: &str) -> Vec<Presence> {
        let Some(accounts) = &self.accounts else {
            return Vec::new();
        };
        // In order already: the accounts are a sorted set.
        accounts
            .iter()
            .filter(|u| self.contacts(me, u))
            .map(|u| Presence {
                user: u.clone(),
                status: self.status(u),
                name: self.names.get(u).cloned(),
            })
            .collect()
    }

    /// In the cluster configuration: what the database says of these users on
    /// other relay nodes (`Offline`: not online elsewhere). Their presence is
    /// announced at the next [`Hub::flush_presence`] if it changed.
    pub fn set_remote(&mut self, statuses: Vec<(String, Status)>) {
        for (user, status) in statuses {
            self.set_remote_one(user, status);
        }
    }

    /// Makes this hub a cluster node's: it keeps the ids of the calls that
    /// end for [`Hub::take_ended`].
    pub fn set_cluster(&mut self) {
        self.cluster = true;
    }

    /// The calls that ended since the last call (cluster nodes only), and,
    /// taken at the same moment, what the busy rows must follow (see
    /// [`Ended`]). Taken together, so that the rows of a call that ended are
    /// removed before its people's rows are mended.
    pub fn take_ended(&mut self) -> Ended {
        let dirty = std::mem::take(&mut self.busy_dirty);
        let mut busy: Vec<(String, CallId)> = dirty
            .into_iter()
            .filter_map(|u| {
                let call = self.in_call.get(&u).cloned()?;
                Some((u, call))
            })
            .collect();
        busy.sort();
        Ended {
            calls: std::mem::take(&mut self.ended),
            busy,
            freed: std::mem::take(&mut self.freed),
            unparked: std::mem::take(&mut self.unparked),
        }
    }

    /// The calls answered since the last call (cluster nodes only).
    pub fn take_answered(&mut self) -> Vec<CallId> {
        std::mem::take(&mut self.answered)
    }

    /// Whether a `resume` of call `id` waits here for the other person's
    /// (a call this hub lost, being restored).
    pub fn is_restoring(&self, id: &CallId) -> bool {
        self.restoring.contains_key(id)
    }

    /// In the cluster configuration: everyone online on other relay nodes
    /// (the periodic reconcile); whoever is not listed is not online elsewhere.
    pub fn replace_remote(&mut self, online: Vec<(String, Status)>) {
        let listed: HashSet<&str> = online.iter().map(|(u, _)| u.as_str()).collect();
        let gone: Vec<String> = self
            .remote
            .keys()
            .filter(|u| !listed.contains(u.as_str()))
            .cloned()
            .collect();
        for user in gone {
            self.set_remote_one(user, Status::Offline);
        }
        for (user, status) in online {
            self.set_remote_one(user, status);
        }
    }

    /// Announces every presence change since the last call, batched: each online
    /// device gets at most one `presence` message listing the changes it may see.
    /// Called every 200 ms by `serve`, so a busy relay sends one message per
    /// device per tick instead of one per change.
    pub fn flush_presence(&mut self) {
        let g = self;
        if g.dirty.is_empty() {
            return;
        }
        let dirty = std::mem::take(&mut g.dirty);
        let mut changes = Vec::new();
        for user in dirty {
            let now = g.status(&user);
            let before = g.shown.get(&user).copied().unwrap_or(Status::Offline);
            if now == before {
                continue;
            }
            if now == Status::Offline {
                g.shown.remove(&user);
            } else {
                g.shown.insert(user.clone(), now);
            }
            let name = g.names.get(&user).cloned();
            changes.push(Presence {
                user,
                status: now,
                name,
            });
        }
        if changes.is_empty() {
            return;
        }
        changes.sort_by(|a, b| a.user.cmp(&b.user));
        let g = &*g;
        g.send_per_domain(|domain| {
            changes
                .iter()
                .filter(|p| visible(&g.access, domain, &p.user))
                .cloned()
                .collect()
        });
    }

    /// Replaces the tenants' external access and the list of accounts, and tells
    /// each online user how their contact list changed: a contact who became
    /// visible (a new account, or external access that now allows it) arrives with
    /// its presence, one who is gone arrives as `removed`. The first call, before
    /// the relay serves anyone, only records them.
    /// Sets each tenant's calling policy (from the store, at every refresh).
    /// A recording or captions that a changed policy no longer allows stop at
    /// once, as if a person had stopped them; a voicemail being left ends.
    pub fn set_calling_policies(&mut self, calling: HashMap<String, CallingPolicy>) {
        if self.calling == calling {
            return;
        }
        self.calling = calling;
        let mut stopped = Vec::new();
        for (id, call) in &self.calls {
            let people = [call.caller.as_str(), call.callee.as_str()];
            for (on, feature) in [
                (call.recording.is_some(), CallFeature::Recording),
                (call.captions.is_some(), CallFeature::Transcription),
            ] {
                if on && self.calling_allows(people, feature, None).is_err() {
                    stopped.push((id.clone(), feature));
                }
            }
        }
        for (id, feature) in stopped {
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            let msg = if feature == CallFeature::Transcription {
                call.captions = None;
                RelayMsg::Captions {
                    call_id: id.clone(),
                    on: false,
                    by: None,
                }
            } else {
                call.recording = None;
                RelayMsg::Recording {
                    call_id: id.clone(),
                    on: false,
                    by: None,
                }
            };
            let devs = [call.caller_dev(), call.callee_dev()];
            for d in devs.into_iter().flatten() {
                self.send(d, &msg);
            }
            tracing::info!(call = %id, ?feature, "stopped: the calling policy changed");
        }
        let ended: Vec<CallId> = self
            .voicemails
            .iter()
            .filter(|(_, v)| {
                self.calling_allows([&v.from, &v.to], CallFeature::Voicemail, None)
                    .is_err()
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in ended {
            self.end_voicemail(&id);
        }
    }

    pub fn set_directory(
        &mut self,
        access: HashMap<String, ExternalAccess>,
        accounts: Vec<String>,
    ) {
        let named = accounts.into_iter().map(|u| (u, String::new())).collect();
        self.set_directory_named(access, named);
    }

    /// [`Hub::set_directory`] with each account's display name (empty for
    /// none): a contact whose name changed arrives again with its presence and
    /// the new name.
    pub fn set_directory_named(
        &mut self,
        access: HashMap<String, ExternalAccess>,
        accounts: Vec<(String, String)>,
    ) {
        let g = self;
        let old_access = std::mem::replace(&mut g.access, access);
        let names: HashMap<String, String> = accounts
            .iter()
            .filter(|(_, n)| !n.is_empty())
            .map(|(u, n)| (u.clone(), n.clone()))
            .collect();
        let old_names = std::mem::replace(&mut g.names, names);
        let accounts = accounts.into_iter().map(|(u, _)| u).collect();
        let Some(old_accounts) = g.accounts.replace(accounts) else {
            return;
        };
        let g = &*g;
        let Some(accounts) = &g.accounts else { return };
        if old_access == g.access && &old_accounts == accounts && old_names == g.names {
            return;
        }
        g.send_per_domain(|domain| {
            let changes: Vec<Presence> = old_accounts
                .union(accounts)
                .filter_map(|u| {
                    let was = old_accounts.contains(u) && visible(&old_access, domain, u);
                    let is = accounts.contains(u) && visible(&g.access, domain, u);
                    let renamed = old_names.get(u) != g.names.get(u);
                    let status = match (was, is) {
                        (true, false) => Status::Removed,
                        (false, true) => g.status(u),
                        (true, true) if renamed => g.status(u),
                        _ => return None,
                    };
                    Some(Presence {
                        user: u.clone(),
                        status,
                        name: g.names.get(u).cloned(),
                    })
                })
                .collect();
            // In order already: a union of sorted sets.
            changes
        });
    }

    /// Whether `user` may change their switch now: at most once per
    /// [`SWITCH_INTERVAL`], across all their devices, since every change is a
    /// store write, an audit entry and a push to every device. Counts this one.
    /// A switch their policy locks (as last pushed) is not limited.
    pub fn may_switch(&mut self, user: &str, now: std::time::Instant) -> bool {
        let Some(o) = self.users.get_mut(user) else {
            return false;
        };
        if !o.setting.can_change {
            // The policy decides: the change is refused without a write, and the
            // user should hear that rather than "too fast".
            return true;
        }
        if o.switched_at
            .is_some_and(|t| now.duration_since(t) < SWITCH_INTERVAL)
        {
            return false;
        }
        o.switched_at = Some(now);
        true
    }

    /// Each distinct (user, session token hash) with a connected device.
    pub fn online_sessions(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .devices
            .values()
            .map(|d| (d.user.clone(), d.session.clone()))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The external access of `domain`'s tenant, as of the last refresh.
    pub fn external_access(&self, domain: &str) -> ExternalAccess {
        access_in(&self.access, domain).clone()
    }

    /// Whether `user` is in a call or ringing, here or (in a cluster) as the
    /// other nodes last said.
    pub fn is_busy(&self, user: &str) -> bool {
        self.status(user) == Status::Busy
    }

    /// `elsewhere-call` for a device `dev` of `user` that just connected, if the
    /// user has an answered call on another device.
    pub fn elsewhere_of(&self, user: &str, dev: DeviceId) -> Option<RelayMsg> {
        let id = self.in_call.get(user)?;
        let call = self.calls.get(id).filter(|c| c.answered())?;
        let (bound, peer) = if call.caller == user {
            (call.caller_dev(), &call.callee)
        } else {
            (call.callee_dev(), &call.caller)
        };
        (bound != Some(dev)).then(|| RelayMsg::ElsewhereCall {
            call_id: id.clone(),
            peer: peer.clone(),
            mode: call.mode,
        })
    }

    /// Whether call `id` is being recorded now, or with `captions` captioned
    /// (the media component ends the legs of a call that is not).
    pub fn media_wanted(&self, id: &CallId, captions: bool) -> bool {
        if captions {
            return self.calls.get(id).is_some_and(|c| c.captions.is_some());
        }
        self.voicemails.contains_key(id)
            || self.calls.get(id).is_some_and(|c| c.recording.is_some())
    }

    /// Whether device `dev` of `user` may open its media leg for call `id`:
    /// an answered standard call it is bound to, being recorded (or with
    /// `captions`, captioned), or a voicemail it leaves. Returns the other
    /// person, whether it is a voicemail, and whether a voicemail may be
    /// transcribed (both tenants' calling policies allow transcription).
    pub fn media_leg(
        &self,
        dev: DeviceId,
        user: &str,
        id: &CallId,
        captions: bool,
    ) -> Result<(String, bool, bool), WireError> {
        if !captions && let Some(to) = self.voicemail_of(id, user, dev) {
            let transcribe = self
                .calling_allows([user, &to], CallFeature::Transcription, None)
                .is_ok();
            return Ok((to, true, transcribe));
        }
        let feature = if captions {
            CallFeature::Transcription
        } else {
            CallFeature::Recording
        };
        let call = self.own_standard_call(id, user, dev, feature)?;
        let on = if captions {
            call.captions.is_some()
        } else {
            call.recording.is_some()
        };
        if !on {
            let m = if captions {
                "The call is not being captioned."
            } else {
                "The call is not being recorded."
            };
            return Err(WireError::new(ErrorCode::WrongState, m, id));
        }
        let peer = if call.caller == user {
            call.callee.clone()
        } else {
            call.caller.clone()
        };
        Ok((peer, false, false))
    }

    /// What `from` said in call `id` (a caption from the recogniser), to both
    /// people's devices while the call is captioned; dropped otherwise.
    pub fn caption(&self, id: &CallId, from: &str, text: &str, done: bool) {
        let Some(call) = self.calls.get(id).filter(|c| c.captions.is_some()) else {
            return;
        };
        let msg = RelayMsg::Caption {
            call_id: id.clone(),
            from: from.to_string(),
            text: text.to_string(),
            done,
        };
        for d in [call.caller_dev(), call.callee_dev()].into_iter().flatten() {
            self.send(d, &msg);
        }
    }

    /// Recording `id` of `owner` and `peer` is written: every device of both
    /// hears it (`recording-ready`), to fetch their lists again.
    pub fn recording_ready(&self, owner: &str, peer: &str, id: &str) {
        let msg = RelayMsg::RecordingReady { id: id.to_string() };
        self.send_user(owner, &msg, None);
        self.send_user(peer, &msg, None);
    }

    /// Whether this relay has a speech recogniser for live captions (set once
    /// at start from the configuration); without one `captions` answers
    /// `not-deployed`.
    pub fn set_captions_deployed(&mut self, on: bool) {
        self.captions_deployed = on;
    }

    /// The calls `user` is in now: the current one, a call held for a
    /// consultation, and the legs of their group call.
    pub fn calls_of_user(&self, user: &str) -> Vec<CallId> {
        self.calls_of(user)
    }

    /// Users with at least one device.
    pub fn online_users(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    /// Sends `settings` to every device of `user` if it differs from what they have.
    pub fn push_settings(&mut self, user: &str, setting: &E2eeSetting) {
        let Some(o) = self.users.get_mut(user) else {
            return;
        };
        if &o.setting == setting {
            return;
        }
        o.setting = setting.clone();
        self.send_user(
            user,
            &RelayMsg::Settings {
                e2ee: setting.clone(),
            },
            None,
        );
    }

    /// Ends every connection of `user` (or only those of one `session`) with
    /// `session-expired`.
    pub fn sign_out(&mut self, user: &str, session: Option<&str>) {
        let msg = RelayMsg::error(ErrorCode::SessionExpired, "You were signed out.", None);
        let devs: Vec<DeviceId> = self
            .devices
            .iter()
            .filter(|(_, d)| d.user == user && session.is_none_or(|s| s == d.session))
            .map(|(&id, _)| id)
            .collect();
        for id in devs {
            self.send(id, &msg);
            self.out.get_mut().push_back(Output::Close { device: id });
            self.devices.remove(&id);
        }
    }
}

/// What a device asks of the hub, one variant per request. The connection has
/// done what needs the store first (the call's mode or refusal from both
/// people's policies, a minted call id); the hub decides the rest.
#[derive(Debug)]
pub enum Input<'a> {
    /// `invite`: ring `callee` (or refuse the call, as `decision` says).
    Invite {
        /// Whom.
        callee: &'a str,
        /// The call's mode, or why it is refused.
        decision: Result<CallMode, Refusal>,
        /// The minted id.
        call_id: CallId,
        /// Who transferred the caller (a blind transfer's call).
        referred_by: Option<String>,
    },
    /// A message about a call the device takes part in: `ringing`, `accept`,
    /// `decline`, `cancel`, `hangup`, `offer`, `answer`, `ice`, `hold`,
    /// `record`, `captions`.
    Call(ClientMsg),
    /// `resume`; `decision` is the pair's call decision made again now, which
    /// restoring a call this relay lost needs.
    Resume {
        /// The `resume` message.
        msg: ClientMsg,
        /// The pair's call decision now.
        decision: Option<Result<CallMode, Refusal>>,
    },
    /// `move-here`; the call moves only if `decision` still gives a standard call.
    MoveHere {
        /// The `move-here` message.
        msg: &'a ClientMsg,
        /// The pair's call decision now.
        decision: Option<Result<CallMode, Refusal>>,
    },
    /// `consult`: call `callee` while `held` is held.
    Consult {
        /// The held call.
        held: &'a CallId,
        /// Whom.
        callee: &'a str,
        /// The consultation's mode, or why it is refused.
        decision: Result<CallMode, Refusal>,
        /// The minted id.
        call_id: CallId,
    },
    /// `consult-transfer`: join the people of `held` and `consult`.
    ConsultTransfer {
        /// The held call.
        held: &'a CallId,
        /// The consultation.
        consult: &'a CallId,
        /// The call decision for the two who remain.
        decision: Option<Result<CallMode, Refusal>>,
    },
    /// `join`: the device a call was handed to commits to it.
    Join(&'a ClientMsg),
    /// `add`: call `to` into the call `id`.
    Add {
        /// The call.
        id: &'a CallId,
        /// Whom.
        to: &'a str,
        /// The call decision for `to` with each member.
        decisions: &'a [(String, Result<CallMode, Refusal>)],
        /// The minted id of the call to `to`.
        call_id: CallId,
    },
    /// `merge`: the held call and its consultation become one group call.
    Merge {
        /// The held call.
        held: &'a CallId,
        /// The consultation.
        consult: &'a CallId,
        /// The call decision for the two others.
        decision: Option<Result<CallMode, Refusal>>,
    },
    /// `park` the call `id`, under `code` if a cluster reserved one for the
    /// whole cluster (`Some(None)`: none was free), or else a code of the
    /// hub's choice (`None`).
    Park {
        /// The call.
        id: &'a CallId,
        /// The reserved code.
        code: Option<Option<u8>>,
    },
    /// `pickup`; `decision` is the call decision with the person waiting.
    Pickup {
        /// The `pickup` message.
        msg: &'a ClientMsg,
        /// The call decision now.
        decision: Option<Result<CallMode, Refusal>>,
    },
    /// `refer`: transfer the call `id` to `target`.
    Transfer {
        /// The call.
        id: &'a CallId,
        /// Whom to.
        target: &'a str,
        /// Whether the policies allow the new call.
        allowed: bool,
    },
    /// `voicemail`: leave a message for `to`.
    Voicemail {
        /// Whom.
        to: &'a str,
        /// Whether the pair may (a standard call), or why not.
        decision: Result<CallMode, Refusal>,
        /// The minted id.
        id: CallId,
    },
}

impl Core {
    /// Handles `input` from device `dev` at `now`: every message a device
    /// sends reaches the hub here. What is to be sent to devices is queued
    /// ([`Core::poll_output`]); an error is for `dev` alone. A device that
    /// is not signed in (its session was signed out) is ignored.
    pub fn handle(
        &mut self,
        now: Instant,
        dev: DeviceId,
        input: Input<'_>,
    ) -> Result<(), WireError> {
        let Some(user) = self.devices.get(&dev).map(|d| d.user.clone()) else {
            return Ok(());
        };
        let user = user.as_str();
        match input {
            Input::Invite {
                callee,
                decision,
                call_id,
                referred_by,
            } => {
                self.invite(now, dev, user, callee, decision, call_id, referred_by);
                Ok(())
            }
            Input::Call(msg) => self.call_msg(now, dev, user, msg),
            Input::Resume { msg, decision } => self.resume(now, dev, user, msg, decision),
            Input::MoveHere { msg, decision } => self.move_here(now, dev, user, msg, decision),
            Input::Consult {
                held,
                callee,
                decision,
                call_id,
            } => self.consult(now, dev, user, held, callee, decision, call_id),
            Input::ConsultTransfer {
                held,
                consult,
                decision,
            } => self.consult_transfer(now, dev, user, held, consult, decision),
            Input::Join(msg) => self.join(now, dev, user, msg),
            Input::Add {
                id,
                to,
                decisions,
                call_id,
            } => self.add(now, dev, user, id, to, decisions, call_id),
            Input::Merge {
                held,
                consult,
                decision,
            } => self.merge(now, dev, user, held, consult, decision),
            Input::Park { id, code } => self.park(now, dev, user, id, code),
            Input::Pickup { msg, decision } => self.pickup(now, dev, user, msg, decision),
            Input::Transfer {
                id,
                target,
                allowed,
            } => self.transfer(now, dev, user, id, target, allowed),
            Input::Voicemail { to, decision, id } => {
                self.voicemail(now, dev, user, to, decision, id)
            }
        }
    }
}

impl Hub {
    /// A hub with these settings and no devices.
    pub fn new(cfg: Config) -> Arc<Self> {
        let now = Instant::now();
        let mut state = Core::new(cfg, now);
        state.set_wall_clock(now, crate::store::unix_now());
        Arc::new(Self {
            inner: Mutex::new(Guarded {
                state,
                outboxes: HashMap::new(),
            }),
            wake: Notify::new(),
        })
    }

    fn lock(&self) -> Locked<'_> {
        Locked {
            g: lock(&self.inner),
            wake: &self.wake,
        }
    }

    /// The state, with the clock moved on to `now` and the wall clock read.
    fn lock_at(&self, now: Instant) -> Locked<'_> {
        let mut g = self.lock();
        g.at(now);
        g.set_wall_clock(now, crate::store::unix_now());
        g
    }

    /// See [`Core::handle`].
    pub fn handle(&self, now: Instant, dev: DeviceId, input: Input<'_>) -> Result<(), WireError> {
        self.lock_at(now).handle(now, dev, input)
    }

    /// Runs every timer due at `now` (see [`Core::handle_timeout`]).
    pub fn handle_timeout(&self, now: Instant) {
        self.lock_at(now).handle_timeout(now);
    }

    /// Completes when a timer was set earlier than what [`Hub::poll_timeout`]
    /// last answered (at once if that happened since the last wait).
    pub async fn timer_changed(&self) {
        self.wake.notified().await;
    }

    /// Signs a device in, with the outbox its connection writes from; returns
    /// its number, or `None` when the user already has
    /// [`MAX_DEVICES_PER_USER`] devices.
    pub fn register(
        &self,
        user: &str,
        session: &str,
        setting: E2eeSetting,
        tx: OutboxSender,
        overflow: Arc<AtomicBool>,
    ) -> Option<DeviceId> {
        let mut g = self.lock();
        let id = g.register(user, session, setting)?;
        g.g.outboxes.insert(id, Outbox { tx, overflow });
        Some(id)
    }

    /// Signs a device out (its connection ended; see [`Core::unregister`]).
    pub fn unregister(&self, now: Instant, dev: DeviceId, user: &str) {
        let mut g = self.lock_at(now);
        g.g.outboxes.remove(&dev);
        g.unregister(now, dev, user);
    }

    /// Puts `msg` on device `dev`'s outbox as if the hub had sent it (a
    /// message of a call another node carries, for a device here). `false`:
    /// no such device.
    pub fn deliver_to(&self, dev: DeviceId, msg: Arc<RelayMsg>) -> bool {
        let mut g = self.lock();
        if !g.devices.contains_key(&dev) {
            return false;
        }
        deliver(&mut g.g.outboxes, Output::Deliver { device: dev, msg });
        true
    }
}

/// The state's queries and the relay's own inputs (directory refreshes,
/// captions, sign-outs), each under the lock.
macro_rules! through_lock {
    ($($name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?;)*) => {
        impl Hub {
            $(
                #[doc = concat!("See [`Core::", stringify!($name), "`].")]
                pub fn $name(&self $(, $arg: $ty)*) $(-> $ret)? {
                    self.lock().$name($($arg),*)
                }
            )*
        }
    };
}

through_lock! {
    poll_timeout() -> Option<Instant>;
    timers() -> usize;
    knows_call(id: &CallId) -> bool;
    mint_call_id(caller: &str, callee: &str, mode: CallMode) -> crate::Result<CallId>;
    call_peer(id: &CallId, user: &str) -> Option<String>;
    restoring() -> usize;
    consult_pair(held: &CallId, consult: &CallId, user: &str) -> Option<(String, String)>;
    take_referral(token: &str, from: &str, to: &str) -> Option<String>;
    call_members(id: &CallId, user: &str) -> Option<Vec<String>>;
    parked_peer(code: u8) -> Option<String>;
    contacts_of(me: &str) -> Vec<Presence>;
    set_remote(statuses: Vec<(String, Status)>);
    set_cluster();
    take_ended() -> Ended;
    take_answered() -> Vec<CallId>;
    is_restoring(id: &CallId) -> bool;
    replace_remote(online: Vec<(String, Status)>);
    flush_presence();
    set_calling_policies(calling: HashMap<String, CallingPolicy>);
    set_directory(access: HashMap<String, ExternalAccess>, accounts: Vec<String>);
    set_directory_named(access: HashMap<String, ExternalAccess>, accounts: Vec<(String, String)>);
    may_switch(user: &str, now: Instant) -> bool;
    online_sessions() -> Vec<(String, String)>;
    external_access(domain: &str) -> ExternalAccess;
    is_busy(user: &str) -> bool;
    elsewhere_of(user: &str, dev: DeviceId) -> Option<RelayMsg>;
    media_wanted(id: &CallId, captions: bool) -> bool;
    media_leg(dev: DeviceId, user: &str, id: &CallId, captions: bool) -> Result<(String, bool, bool), WireError>;
    caption(id: &CallId, from: &str, text: &str, done: bool);
    recording_ready(owner: &str, peer: &str, id: &str);
    set_captions_deployed(on: bool);
    calls_of_user(user: &str) -> Vec<CallId>;
    online_users() -> Vec<String>;
    push_settings(user: &str, setting: &E2eeSetting);
    sign_out(user: &str, session: Option<&str>);
    take_history() -> VecDeque<CallRecord>;
    requeue_history(records: VecDeque<CallRecord>);
}

/// A bound device left call `id` (its `departures` count was then `epoch`) and
/// no device of that user came back within the grace: the call ends.
fn grace_expired(g: &mut Core, id: &CallId, epoch: u64) {
    let Some(call) = g.calls.get(id) else { return };
    // A parked call has no device on the parker's side by design.
    let missing = match &call.park {
        Some(p) => call.dev(p.side.other()).is_none(),
        None => call.caller_dev().is_none() || call.callee_dev().is_none(),
    };
    if !missing || call.departures() != epoch {
        return;
    }
    let msg = RelayMsg::Hangup {
        call_id: id.clone(),
        reason: HangupReason::PeerGone,
    };
    for d in [call.caller_dev(), call.callee_dev()].into_iter().flatten() {
        g.send(d, &msg);
    }
    tracing::info!(call = %id, "call ended: device did not come back");
    g.end_call(id);
}
