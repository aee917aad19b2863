//! Calls between relay nodes (the cluster configuration, `crate::cluster`).
//!
//! A call is carried by one hub: the one of the node it was placed on, its
//! *home*. The home's hub rings, binds, forwards and ends it exactly as on a
//! single relay; a device on another node takes part through a *stand-in*
//! there: a device of the home's hub whose outbox goes over the bus to the
//! device's node, and whose messages come from it. So every feature of a call
//! (hold, transfer, park, recording, a group) works the same whichever nodes
//! its people are on, and the races between them are decided where they are
//! on one relay, in the home's hub.
//!
//! - **Placing.** Before its hub rings anyone, the home takes both people's
//!   busy rows in the database ([`crate::cluster::Arbiter::place`]): two people
//!   calling each other through two nodes make one call. It then makes a
//!   stand-in for each of the callee's devices on other nodes, so that they
//!   ring too. When its hub ends the call, the rows go.
//! - **To a device** (`Deliver` on the device's node's subject): the node puts
//!   the message on the device's outbox and remembers the call's home. What
//!   comes on a node's subject is handled on the task that reads the bus, as
//!   it is read (it never waits), not queued for another task.
//! - **From a device**: a message about a call whose home is another node
//!   (remembered, or for a `resume`, read from the database) goes there
//!   (`Input`) instead of to this hub. Its stand-in there handles it with the
//!   same code a connection does (`signal::Conn`), and what it answers comes
//!   back as `Deliver`.
//! - **Other devices of the two people** hear of an answered call as on one
//!   relay (`elsewhere-call`), through stand-ins: once the call is answered,
//!   the home makes one for each of their devices on other nodes; a device
//!   that connects later asks the homes of its user's answered calls
//!   (`Attach`). So "move here" works from any node: the `move-here` goes
//!   to the home like any message of the call.
//! - **A device leaves**: its node tells every home it reached (`Gone`); the
//!   stand-in goes, and the home's hub treats it as a dropped connection
//!   (a ringing call rings on elsewhere, an answered one waits for `resume`).
//!   A stand-in no call needs any more goes by itself.
//!
//! - **A home dies**: once it is reaped, every node drops its stand-ins of
//!   the dead node's devices, and closes the connections of its own devices
//!   that had a call there; their browsers connect again (through any node)
//!   and resume. The first resume of an answered call takes it over for its
//!   node ([`crate::cluster::Arbiter::claim_home`]), whose hub restores it
//!   from the two people's resumes as after a restart (call ids are made
//!   with one key for the whole cluster); the other's resume goes there. A
//!   call not resumed within the reconnect grace ends. Media never stops.
//!
//! - **Park and pickup**: the home reserves the pickup code in the database
//!   before its hub parks the call under it; a pickup through another node
//!   looks the code up there and goes to the home.
//! - **Busy rows follow the hub** where a call changes hands within it: the
//!   people whose call changed are taken with the calls that ended, and
//!   their rows mended after those calls' rows went.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use shieldcall_proto::{CallId, RelayMsg};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::OUTBOX;
use super::signal::Conn;
use crate::auth::Authed;
use crate::bus::{Bus, Handled};
use crate::cluster::{Node, Placed, Reserved};
use crate::hub::{DeviceId, Input};
use crate::policy::Refusal;
use crate::state::{AppState, Inner as StateInner};
use crate::store::unix_now;

/// What nodes send each other on `sc.node.<id>`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
enum NodeMsg {
    /// From a call's home: a message for `device` of the receiving node.
    Deliver {
        device: u64,
        home: String,
        /// The message as the relay writes it to a socket.
        msg: String,
    },
    /// To a call's home: a message from `device` of `node`, as its client wrote it.
    Input {
        node: String,
        device: u64,
        user: String,
        session: String,
        text: String,
    },
    /// To a call's home: `device` of `node` disconnected.
    Gone { node: String, device: u64 },
    /// To the home of an answered call of `user`: their `device` connected on
    /// `node`. The home makes it a stand-in, so that it hears of the call
    /// (`elsewhere-call`) and can take it over ("move here").
    Attach {
        node: String,
        device: u64,
        user: String,
    },
}

fn subject(node: &str) -> String {
    format!("sc.node.{node}")
}

/// Calls remembered per device (the homes of calls another node carries).
const ROUTES_PER_DEVICE: usize = 64;
/// A stand-in no call of its user needs goes after this long.
const STAND_IN_IDLE: Duration = Duration::from_secs(5);
/// Most of a stand-in's waiting messages sent to its device's node in one
/// write to the bus.
const STAND_IN_BATCH: usize = 64;
/// How often the home's hub is asked which calls ended.
const ENDED_POLL: Duration = Duration::from_millis(20);

/// A stand-in, as the home keeps it.
#[derive(Debug)]
struct StandIn {
    inputs: mpsc::Sender<String>,
    /// Tells this stand-in from a later one for the same device.
    id: u64,
}

/// This node's part in calls between nodes.
#[derive(Debug)]
pub struct Cluster {
    node: Node,
    bus: Bus,
    /// For each device here: the calls other nodes carry (by call id, and a
    /// blind transfer's token as `t:<token>`), and which node.
    routes: Mutex<HashMap<DeviceId, HashMap<String, String>>>,
    /// Stand-ins of other nodes' devices, by (node, device).
    stand_ins: Mutex<HashMap<(String, u64), StandIn>>,
    /// Each device here: what makes its connection close so that its browser
    /// connects again and resumes (the home of one of its calls died).
    kicks: Mutex<HashMap<DeviceId, Arc<tokio::sync::Notify>>>,
    next_stand_in: std::sync::atomic::AtomicU64,
    /// Held while the rows of calls the hub ended are removed: a new call
    /// waits for a removal under way (a redial right after a hang-up).
    releasing: tokio::sync::Mutex<()>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// This node's subject on the bus, while the cluster lives.
    sub: Mutex<Option<Handled>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for t in lock(&self.tasks).iter() {
            t.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Cluster {
    /// Starts this node's part: subscribes to its subject (before any device
    /// connects) and keeps the database's calls in step with its hub.
    pub(crate) async fn start(state: &AppState, node: Node, bus: Bus) -> crate::Result<Arc<Self>> {
        let cluster = Arc::new(Self {
            node,
            bus,
            routes: Mutex::new(HashMap::new()),
            stand_ins: Mutex::new(HashMap::new()),
            kicks: Mutex::new(HashMap::new()),
            next_stand_in: std::sync::atomic::AtomicU64::new(1),
            releasing: tokio::sync::Mutex::new(()),
            tasks: Mutex::new(Vec::new()),
            sub: Mutex::new(None),
        });
        // The tasks hold the cluster itself (weakly: dropping it aborts them),
        // never a look-up through the state: the state gets the cluster only
        // after this returns, and a task that ran first would find none and
        // end for good.
        let weak = state.downgrade();
        let me = Arc::downgrade(&cluster);
        // What other nodes send is handled as the bus reads it: no queue and
        // no task of this node's in between.
        let (w, m) = (weak.clone(), me.clone());
        let sub = cluster
            .bus
            .subscribe_with(&subject(cluster.node.id()), move |msg| {
                if let (Some(state), Some(c)) = (AppState::upgrade(&w), m.upgrade()) {
                    receive(&state, &c, &msg);
                }
            })
            .await
            .map_err(|e| crate::Error::Internal(format!("bus: {e}")))?;
        *lock(&cluster.sub) = Some(sub);
        cluster
            .bus
            .flush()
            .await
            .map_err(|e| crate::Error::Internal(format!("bus: {e}")))?;
        let tasks = vec![
            tokio::spawn(release_ended(weak, me.clone())),
            tokio::spawn(bury(me, cluster.node.dead_nodes())),
        ];
        *lock(&cluster.tasks) = tasks;
        Ok(cluster)
    }

    /// The node.
    pub(crate) fn node(&self) -> &Node {
        &self.node
    }

    /// Device `dev` here connected; `kick` closes its connection.
    pub(super) fn watch(&self, dev: DeviceId, kick: Arc<tokio::sync::Notify>) {
        lock(&self.kicks).insert(dev, kick);
    }

    /// Nodes died: the stand-ins of their devices go (the calls here wait for
    /// those people to resume), and every device here with a call one of them
    /// carried connects again, so that its browser resumes the call through a
    /// node that takes it over.
    fn on_dead(&self, nodes: &[String]) {
        lock(&self.stand_ins).retain(|(node, _), _| !nodes.contains(node));
        let mut kicked = Vec::new();
        for (dev, routes) in lock(&self.routes).iter_mut() {
            let before = routes.len();
            routes.retain(|_, home| !nodes.contains(home));
            if routes.len() != before {
                kicked.push(*dev);
            }
        }
        let kicks = lock(&self.kicks);
        for dev in kicked {
            if let Some(k) = kicks.get(&dev) {
                k.notify_one();
            }
        }
    }

    fn send(&self, node: &str, msg: &NodeMsg) {
        self.send_all(node, std::slice::from_ref(msg));
    }

    /// Sends `msgs` to `node` in order, in one write when the bus can.
    fn send_all(&self, node: &str, msgs: &[NodeMsg]) {
        let payloads: Vec<Vec<u8>> = msgs
            .iter()
            .filter_map(|m| match serde_json::to_vec(m) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(error = %e, "a message to another node was not encoded");
                    None
                }
            })
            .collect();
        if let Err(e) = self.bus.publish_all(&subject(node), &payloads) {
            tracing::warn!(error = %e, %node, "messages to another node were not sent");
        }
    }

    /// Where a message of device `dev` about call `id` goes: `Some(home)` if
    /// another node carries the call.
    pub(super) async fn home_for(
        &self,
        state: &AppState,
        dev: DeviceId,
        id: &CallId,
        resume: bool,
    ) -> Option<String> {
        if let Some(home) = self.route(dev, &id.0) {
            return Some(home);
        }
        // A device back after its connection dropped (here, or on a node that
        // died) resumes a call it has no route for yet.
        if !resume || state.hub().knows_call(id) {
            return None;
        }
        let arbiter = self.node.arbiter();
        let id_text = id.to_string();
        let home = match arbiter.home_of(&id_text).await {
            Ok(Some((_, false))) => match arbiter.claim_home(&id_text).await {
                // Its home died: this node carries it from now on; the hub
                // restores it from the two people's resumes.
                Ok(Some(_)) => {
                    tracing::info!(call = %id, "took over a call whose relay node died");
                    return None;
                }
                // Another node took it over first.
                Ok(None) => arbiter.home_of(&id_text).await,
                Err(e) => Err(e),
            },
            other => other,
        };
        match home {
            Ok(Some((home, true))) if home != self.node.id() => {
                self.remember(dev, id.0.clone(), &home);
                Some(home)
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "the home of a call could not be read");
                None
            }
        }
    }

    /// Where a pickup of `code` by device `dev` goes: `Some(node)` if another
    /// node carries the call parked under it (this hub has no such code).
    pub(super) async fn home_of_code(
        &self,
        state: &AppState,
        dev: DeviceId,
        code: u8,
    ) -> Option<String> {
        if state.hub().parked_peer(code).is_some() {
            return None;
        }
        match self.node.arbiter().parked_at(code).await {
            Ok(Some((home, id))) if home != self.node.id() => {
                self.remember(dev, id, &home);
                Some(home)
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "a pickup code could not be looked up");
                None
            }
        }
    }

    /// Parks call `id` for device `dev` under a code reserved for
    /// the whole cluster.
    pub(super) async fn park(
        &self,
        state: &AppState,
        dev: DeviceId,
        id: &CallId,
    ) -> crate::Result<Result<(), crate::hub::WireError>> {
        let arbiter = self.node.arbiter();
        let hub = state.hub();
        let code = match arbiter.reserve_park_code(&id.to_string()).await? {
            Reserved::Code(code) => Some(code),
            // Not a call of this node's: the hub says why.
            Reserved::NoCall => {
                let input = Input::Park { id, code: None };
                return Ok(hub.handle(Instant::now(), dev, input));
            }
            Reserved::Full => None,
        };
        let input = Input::Park {
            id,
            code: Some(code),
        };
        let done = hub.handle(Instant::now(), dev, input);
        if let (Err(_), Some(code)) = (&done, code)
            && let Err(e) = arbiter.release_park_codes(&[(code, id.to_string())]).await
        {
            // The hub's refusal still goes out; the code goes with the call.
            tracing::warn!(error = %e, "a pickup code reserved for nothing was not given back");
        }
        Ok(done)
    }

    /// The node a blind transfer's `token` came from, for the invite that
    /// carries it out (the referral is that node's hub's).
    pub(super) fn home_of_token(&self, dev: DeviceId, token: &str) -> Option<String> {
        self.route(dev, &format!("t:{token}"))
    }

    fn route(&self, dev: DeviceId, key: &str) -> Option<String> {
        lock(&self.routes)
            .get(&dev)
            .and_then(|r| r.get(key))
            .cloned()
    }

    fn forget(&self, dev: DeviceId, key: &str) {
        if let Some(r) = lock(&self.routes).get_mut(&dev) {
            r.remove(key);
        }
    }

    fn remember(&self, dev: DeviceId, id: String, home: &str) {
        let mut routes = lock(&self.routes);
        let r = routes.entry(dev).or_default();
        if r.len() >= ROUTES_PER_DEVICE && !r.contains_key(&id) {
            // The oldest calls are long over; any one goes.
            if let Some(k) = r.keys().next().cloned() {
                r.remove(&k);
            }
        }
        r.insert(id, home.to_string());
    }

    /// Device `dev` of `user` connected here: the homes of the user's
    /// answered calls on other nodes make it a stand-in, so that it hears of
    /// them and can take one over.
    pub(super) async fn attach(&self, dev: DeviceId, user: &str) {
        match self.node.arbiter().homes_of_answered(user).await {
            Ok(homes) => {
                for home in homes {
                    let msg = NodeMsg::Attach {
                        node: self.node.id().to_string(),
                        device: dev,
                        user: user.to_string(),
                    };
                    self.send(&home, &msg);
                }
            }
            Err(e) => tracing::warn!(error = %e, "the user's calls on other nodes were not read"),
        }
    }

    /// Sends a message of device `dev` here to the call's `home`.
    pub(super) fn forward(&self, home: &str, dev: DeviceId, authed: &Authed, text: &str) {
        self.send(
            home,
            &NodeMsg::Input {
                node: self.node.id().to_string(),
                device: dev,
                user: authed.user.name.clone(),
                session: authed.session.token_hash.clone(),
                text: text.to_string(),
            },
        );
    }

    /// Device `dev` of `user` here disconnected: the database forgets it, and
    /// every home it reached drops its stand-in.
    pub(super) async fn device_gone(&self, dev: DeviceId, user: &str) {
        if let Err(e) = self.node.device_down(dev, user).await {
            tracing::warn!(error = %e, "a device's row was not removed; the reap will");
        }
        lock(&self.kicks).remove(&dev);
        let homes: Vec<String> = lock(&self.routes)
            .remove(&dev)
            .map(|r| {
                let mut h: Vec<String> = r.into_values().collect();
                h.sort();
                h.dedup();
                h
            })
            .unwrap_or_default();
        for home in homes {
            self.send(
                &home,
                &NodeMsg::Gone {
                    node: self.node.id().to_string(),
                    device: dev,
                },
            );
        }
    }

    /// Before this node's hub places call `id` from `caller` (device `dev`) to
    /// `callee`: takes both busy rows, and makes the callee's devices on other
    /// nodes ring here. A refusal already decided is kept; busy elsewhere
    /// becomes a `busy` refusal, which the hub records and sends as usual.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn place(
        &self,
        state: &AppState,
        id: &CallId,
        caller: &str,
        callee: &str,
        dev: DeviceId,
        beside: Option<&CallId>,
        decision: Result<shieldcall_proto::CallMode, Refusal>,
    ) -> crate::Result<Result<shieldcall_proto::CallMode, Refusal>> {
        let Ok(mode) = decision else {
            return Ok(decision);
        };
        // Calls this hub ended are released first: a transferred person's
        // next call, or a redial, must not find the last one's rows.
        self.release_ended(state).await;
        let arbiter = self.node.arbiter();
        // The hub's ring timeout ends the call first; the database's deadline
        // is for a home that died meanwhile.
        let ring = state.config().ring_timeout + Duration::from_secs(5);
        let beside = beside.map(|b| b.to_string());
        let placed = arbiter
            .place_beside(
                &id.to_string(),
                caller,
                callee,
                dev,
                ring,
                beside.as_deref(),
            )
            .await?;
        match placed {
            Placed::Busy(_) => {
                return Ok(Err(Refusal {
                    reason: shieldcall_proto::RefuseReason::Busy,
                    required_by: None,
                }));
            }
            Placed::Ringing => {}
        }
        for at in arbiter.devices_of(callee).await? {
            // Each rings once the hub has it.
            if at.node != self.node.id()
                && let Some(ready) = self.stand_in(state, &at.node, at.device, callee, None)
            {
                let _ = tokio::time::timeout(Duration::from_secs(5), ready).await;
            }
        }
        self.node.hint_users(&[caller, callee]);
        Ok(Ok(mode))
    }

    /// Removes the rows of the calls the hub ended, then mends the busy rows
    /// of the people whose call changed (see [`crate::hub::Ended`]); waits for
    /// a removal under way.
    async fn release_ended(&self, state: &AppState) {
        let _one = self.releasing.lock().await;
        let ended = state.hub().take_ended();
        // Every call that ended since the last time (hundreds a second on a
        // busy node) in one statement, not one each.
        release(self, &ended.calls).await;
        if !ended.unparked.is_empty() {
            let codes: Vec<(u8, String)> = ended
                .unparked
                .iter()
                .map(|(code, id)| (*code, id.to_string()))
                .collect();
            if let Err(e) = self.node.arbiter().release_park_codes(&codes).await {
                tracing::warn!(error = %e, "pickup codes were not given back");
            }
        }
        if ended.busy.is_empty() && ended.freed.is_empty() {
            return;
        }
        let text = |v: Vec<(String, CallId)>| -> Vec<(String, String)> {
            v.into_iter().map(|(u, c)| (u, c.to_string())).collect()
        };
        let (busy, freed) = (text(ended.busy), text(ended.freed));
        match self.node.arbiter().sync_busy(&busy, &freed).await {
            Ok(changed) if !changed.is_empty() => {
                let names: Vec<&str> = changed.iter().map(String::as_str).collect();
                self.node.hint_users(&names);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "the busy rows were not brought in step"),
        }
    }

    /// After the hub was asked to place call `id`: if it refused, the rows
    /// taken for it go.
    pub(super) async fn placed(&self, state: &AppState, id: &CallId) {
        if !state.hub().knows_call(id) {
            release(self, std::slice::from_ref(id)).await;
        }
    }

    /// Device `device` of `node` takes part in this hub's calls through a
    /// stand-in (made now, unless there is one). `first` is a message to hand
    /// it (with the device's session, for a stand-in made for it); it is
    /// handled once the stand-in is signed in, in order. For a stand-in made
    /// now, the receiver completes when the hub has it.
    fn stand_in(
        &self,
        state: &AppState,
        node: &str,
        device: u64,
        user: &str,
        first: Option<(String, String)>,
    ) -> Option<oneshot::Receiver<()>> {
        let key = (node.to_string(), device);
        {
            let mut stand_ins = lock(&self.stand_ins);
            if let Some(s) = stand_ins.get(&key) {
                if let Some((_, text)) = first
                    && s.inputs.try_send(text).is_err()
                {
                    tracing::warn!(%node, device, "a stand-in is not keeping up; a message of its device was dropped");
                }
                return None;
            }
            let (tx, rx) = mpsc::channel(OUTBOX);
            let id = self
                .next_stand_in
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            stand_ins.insert(
                key.clone(),
                StandIn {
                    inputs: tx.clone(),
                    id,
                },
            );
            let (ready_tx, ready_rx) = oneshot::channel();
            let session = first.as_ref().map(|(s, _)| s.clone());
            if let Some((_, text)) = first {
                let _ = tx.try_send(text);
            }
            tokio::spawn(stand_in_task(StandInArgs {
                weak: state.downgrade(),
                key,
                id,
                user: user.to_string(),
                session,
                inputs: rx,
                ready: ready_tx,
            }));
            Some(ready_rx)
        }
    }
}

/// How often the calls homed here are compared with the hub's.
const SWEEP: Duration = Duration::from_secs(5);

/// Keeps the database's calls in step with this hub: the rows of calls it
/// ended go, the calls it answered are marked so, and now and then a row
/// whose call the hub does not carry (a take-over whose restore never came)
/// goes too.
async fn release_ended(weak: Weak<StateInner>, me: Weak<Cluster>) {
    let mut tick = tokio::time::interval(ENDED_POLL);
    let mut swept = Instant::now();
    loop {
        tick.tick().await;
        let (Some(state), Some(c)) = (AppState::upgrade(&weak), me.upgrade()) else {
            return;
        };
        let hub = state.hub();
        c.release_ended(&state).await;
        for id in hub.take_answered() {
            match c.node.arbiter().mark_answered(&id.to_string()).await {
                // Their devices on other nodes hear of the call (a stand-in
                // made now is told at once; one there already was, by the hub).
                Ok(Some(elsewhere)) => {
                    for (user, at) in elsewhere {
                        let _ = c.stand_in(&state, &at.node, at.device, &user, None);
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "an answered call was not marked so"),
            }
        }
        if swept.elapsed() >= SWEEP {
            swept = Instant::now();
            // Older than a ring: placed, and the hub had every chance to
            // take it or restore it.
            let age = state.config().ring_timeout + SWEEP;
            match c.node.arbiter().calls_homed_here(age).await {
                Ok(ids) => {
                    let gone: Vec<CallId> = ids
                        .into_iter()
                        .map(CallId)
                        .filter(|call| !hub.knows_call(call) && !hub.is_restoring(call))
                        .collect();
                    release(&c, &gone).await;
                }
                Err(e) => tracing::warn!(error = %e, "the calls homed here were not read"),
            }
        }
    }
}

/// Lets go of what this node held for nodes that died.
async fn bury(me: Weak<Cluster>, mut dead: tokio::sync::broadcast::Receiver<Vec<String>>) {
    loop {
        let nodes = match dead.recv().await {
            Ok(nodes) => nodes,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        };
        let Some(c) = me.upgrade() else { return };
        c.on_dead(&nodes);
    }
}

/// Removes the rows of calls `ids`, which this node's hub ended, in one
/// statement, and hints their people's presence to the other nodes.
async fn release(c: &Cluster, ids: &[CallId]) {
    if ids.is_empty() {
        return;
    }
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    match c.node.arbiter().end_calls(&ids).await {
        Ok(rows) => {
            let mut users: Vec<&str> = rows
                .iter()
                .flat_map(|r| [r.caller.as_str(), r.callee.as_str()])
                .collect();
            users.sort_unstable();
            users.dedup();
            if !users.is_empty() {
                c.node.hint_users(&users);
            }
        }
        Err(e) => tracing::warn!(error = %e, "ended calls' rows were not removed"),
    }
}

/// Handles what another node sent this one, on the task that reads the bus
/// (it never waits: what takes time goes to a stand-in's task).
fn receive(state: &AppState, c: &Cluster, m: &crate::bus::Message) {
    let msg = match serde_json::from_slice::<NodeMsg>(&m.payload) {
        Ok(msg) => msg,
        Err(e) => {
            tracing::warn!(error = %e, "an unreadable message from another node; dropped");
            return;
        }
    };
    match msg {
        NodeMsg::Deliver { device, home, msg } => {
            let Ok(relay) = RelayMsg::decode(&msg) else {
                tracing::warn!("an unreadable relay message from another node; dropped");
                return;
            };
            match (&relay, relay.call_id()) {
                // The call is over for this device: its route goes, so
                // that the home's death later concerns it no more.
                (
                    RelayMsg::Hangup { .. }
                    | RelayMsg::Cancelled { .. }
                    | RelayMsg::CallRefused { .. }
                    | RelayMsg::AnsweredElsewhere { .. }
                    | RelayMsg::ElsewhereEnded { .. },
                    Some(id),
                ) => c.forget(device, &id.0),
                // A consult transfer: the consultation is over for this
                // device, which joins the held call. Both are the same
                // hub's (it placed the consultation beside the held call).
                (RelayMsg::Replaced { call_id, join, .. }, _) => {
                    c.forget(device, &call_id.0);
                    c.remember(device, join.0.clone(), &home);
                }
                (_, Some(id)) => c.remember(device, id.0.clone(), &home),
                (_, None) => {}
            }
            if let RelayMsg::Refer { token, .. } = &relay {
                c.remember(device, format!("t:{token}"), &home);
            }
            if !state.hub().deliver_to(device, Arc::new(relay)) {
                // The device left before this arrived.
                c.send(
                    &home,
                    &NodeMsg::Gone {
                        node: c.node.id().to_string(),
                        device,
                    },
                );
            }
        }
        NodeMsg::Input {
            node,
            device,
            user,
            session,
            text,
        } => {
            // Not waited for: the stand-in handles it once signed in,
            // and other nodes' messages go on meanwhile.
            let _ = c.stand_in(state, &node, device, &user, Some((session, text)));
        }
        NodeMsg::Gone { node, device } => {
            // Dropping its inputs ends the stand-in, which leaves the hub.
            lock(&c.stand_ins).remove(&(node, device));
        }
        NodeMsg::Attach { node, device, user } => {
            let _ = c.stand_in(state, &node, device, &user, None);
        }
    }
}

/// What a stand-in's outbox passes on: everything but what the device's own
/// node sends it itself (presence, settings).
fn passed_on(msg: &RelayMsg) -> bool {
    !matches!(
        msg,
        RelayMsg::Presence { .. }
            | RelayMsg::Settings { .. }
            | RelayMsg::Welcome { .. }
            | RelayMsg::Pong { .. }
    )
}

/// What a stand-in starts with.
struct StandInArgs {
    weak: Weak<StateInner>,
    key: (String, u64),
    id: u64,
    user: String,
    session: Option<String>,
    inputs: mpsc::Receiver<String>,
    ready: oneshot::Sender<()>,
}

/// [`run_stand_in`], boxed: a stand-in's handling may place a call, which
/// starts stand-ins, so the future's type would otherwise contain itself.
fn stand_in_task(
    args: StandInArgs,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(run_stand_in(args))
}

/// A stand-in: signs the device in with this hub, handles its messages as its
/// connection would, and sends what the hub and the handling say to its node.
async fn run_stand_in(args: StandInArgs) {
    let StandInArgs {
        weak,
        key,
        id,
        user,
        session,
        mut inputs,
        ready,
    } = args;
    let Some(state) = AppState::upgrade(&weak) else {
        return;
    };
    let (node, device) = key.clone();
    let forget = |state: &AppState| {
        if let Some(c) = state.cluster() {
            let mut s = lock(&c.stand_ins);
            if s.get(&key).is_some_and(|s| s.id == id) {
                s.remove(&key);
            }
        }
    };
    let authed = match stand_in_authed(&state, &user, &node, device, session).await {
        Some(a) => a,
        None => {
            forget(&state);
            return;
        }
    };
    let (tx, mut out) = mpsc::channel(OUTBOX);
    let overflow = Arc::new(AtomicBool::new(false));
    let mut conn = Conn {
        state: state.clone(),
        authed,
        device: None,
        tx: Some(tx),
        overflow,
        // A stand-in has no socket to close.
        kick: Arc::new(tokio::sync::Notify::new()),
    };
    let dev = match conn.register().await {
        Ok(Ok((dev, _))) => dev,
        _ => {
            forget(&state);
            return;
        }
    };
    let _ = ready.send(());
    let hub = state.hub().clone();
    // What goes to the device, in order, in one write to the bus.
    let deliver = |msgs: &[&RelayMsg]| {
        if msgs.is_empty() {
            return;
        }
        if let Some(c) = state.cluster() {
            let home = c.node.id();
            let msgs: Vec<NodeMsg> = msgs
                .iter()
                .map(|msg| NodeMsg::Deliver {
                    device,
                    home: home.to_string(),
                    msg: msg.encode(),
                })
                .collect();
            c.send_all(&node, &msgs);
        }
    };
    // As a device connecting here would: told of its user's answered call.
    if let Some(elsewhere) = hub.elsewhere_of(&user, dev) {
        deliver(&[&elsewhere]);
    }
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    let mut needed = Instant::now();
    loop {
        tokio::select! {
            text = inputs.recv() => {
                let Some(text) = text else { break };
                needed = Instant::now();
                let replies = Box::pin(conn.handle(&text)).await;
                deliver(&replies.iter().map(|(msg, _)| msg).collect::<Vec<_>>());
            }
            msg = out.recv() => {
                let Some(msg) = msg else { break };
                // With whatever else the hub has put there meanwhile: one
                // write to the bus for all, not one each.
                let mut batch = vec![msg];
                while batch.len() < STAND_IN_BATCH
                    && let Ok(msg) = out.try_recv()
                {
                    batch.push(msg);
                }
                let batch: Vec<&RelayMsg> = batch
                    .iter()
                    .map(|m| m.as_ref())
                    .filter(|m| passed_on(m))
                    .collect();
                deliver(&batch);
            }
            _ = sweep.tick() => {
                if !hub.calls_of_user(&user).is_empty() {
                    needed = Instant::now();
                } else if needed.elapsed() >= STAND_IN_IDLE {
                    break;
                }
            }
        }
    }
    hub.unregister(Instant::now(), dev, &user);
    forget(&state);
}

/// The user and session of another node's device, as the store has them now.
async fn stand_in_authed(
    state: &AppState,
    user: &str,
    node: &str,
    device: u64,
    session: Option<String>,
) -> Option<Authed> {
    let session = match session {
        Some(s) => s,
        // Made for ringing: the device's row names its session.
        None => state
            .cluster()?
            .node
            .arbiter()
            .session_of(node, device)
            .await
            .ok()??,
    };
    let store = state.store();
    let user = store.user(user).await.ok()??;
    let session = store.session(&session, unix_now()).await.ok()??;
    (session.user == user.name).then_some(Authed { user, session })
}
