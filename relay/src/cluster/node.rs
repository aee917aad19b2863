//! One relay node's part in the cluster: its lease, the reaping of dead
//! nodes, its devices in the database, and its hub's view of who is online
//! through the other nodes.
//!
//! Presence is "hint, then read". After a device of this node connects or
//! disconnects (committed first), the node publishes the user's name on
//! [`PRESENCE_SUBJECT`]; every other node reads that user's presence through the
//! nodes other than itself from the database and gives it to its hub, which
//! announces a change to the user's contacts. A hint may be lost (NATS core
//! delivers at most once, and a node may be reconnecting): every
//! [`Timing::reconcile`] each node reads everyone online elsewhere and repairs
//! its view. A node subscribes to the hints and reads the whole view before it
//! serves anyone, so it misses no change made meanwhile.
//!
//! The lease: renewed every [`Timing::renew`] for [`Timing::lease`]. A renewal
//! refused (the lease ran out, or another node reaped this one), or no renewal
//! that succeeded for a whole lease (the database unreachable), fences the
//! node: [`Node::fenced`] completes and the relay must stop serving, since the
//! other nodes have counted its people offline and may clean up its calls.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Arbiter;
use crate::bus::{Bus, Subscription};
use crate::error::{Error, Result};
use crate::hub::{DeviceId, Hub};

/// The subject of presence hints: a JSON array of user names.
pub const PRESENCE_SUBJECT: &str = "sc.presence";

/// The subject on which the node that reaped dead nodes names them (a JSON
/// array of node ids), so that every node lets go of what it held for them.
pub const DEAD_SUBJECT: &str = "sc.dead";

/// Most users read per presence query (hints that arrive together are read
/// together, up to this many).
const HINT_BATCH: usize = 500;

/// The node's clocks.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a lease lasts (10 s): after a node dies, the others count its
    /// people offline within this, and reap it within this and `reap`.
    pub lease: Duration,
    /// How often the lease is renewed (2 s: five chances per lease).
    pub renew: Duration,
    /// How often dead nodes are looked for (2 s).
    pub reap: Duration,
    /// How often the whole view of the other nodes is read again (5 s).
    pub reconcile: Duration,
    /// How long an answered call whose side's node died waits for that side
    /// (the relay's reconnect grace).
    pub grace: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(10),
            renew: Duration::from_secs(2),
            reap: Duration::from_secs(2),
            reconcile: Duration::from_secs(5),
            grace: Duration::from_secs(30),
        }
    }
}

/// A running node. Its background tasks stop when it is dropped.
#[derive(Debug)]
pub struct Node {
    arbiter: Arbiter,
    bus: Bus,
    fenced: watch::Receiver<bool>,
    dead: broadcast::Sender<Vec<String>>,
    timing: Timing,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Node {
    /// Starts the node's part for `hub`: subscribes to the hints, reads who is
    /// online elsewhere, then keeps the lease, reaps and reconciles in the
    /// background. Call before serving anyone.
    pub async fn start(arbiter: Arbiter, bus: Bus, hub: Arc<Hub>, timing: Timing) -> Result<Self> {
        let hints = bus.subscribe(PRESENCE_SUBJECT).await.map_err(bus_error)?;
        let deaths = bus.subscribe(DEAD_SUBJECT).await.map_err(bus_error)?;
        bus.flush().await.map_err(bus_error)?;
        let (dead, _) = broadcast::channel(64);
        hub.replace_remote(arbiter.online_elsewhere().await?);
        let (fence, fenced) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(hold_lease(arbiter.clone(), timing, fence)),
            tokio::spawn(reap(
                arbiter.clone(),
                bus.clone(),
                hub.clone(),
                timing,
                dead.clone(),
            )),
            tokio::spawn(hear_deaths(deaths, dead.clone())),
            tokio::spawn(read_hints(arbiter.clone(), hub.clone(), hints)),
            tokio::spawn(reconcile(arbiter.clone(), hub, timing)),
        ];
        tracing::info!(node = %arbiter.node(), "joined the cluster");
        Ok(Self {
            arbiter,
            bus,
            fenced,
            dead,
            timing,
            tasks,
        })
    }

    /// This node's id.
    pub fn id(&self) -> &str {
        self.arbiter.node()
    }

    /// The arbiter, as this node.
    pub fn arbiter(&self) -> &Arbiter {
        &self.arbiter
    }

    /// A device of `user` (session `session_hash`) connected here: recorded,
    /// then hinted. `false`: this node is fenced; the device must not be served.
    pub async fn device_up(
        &self,
        device: DeviceId,
        user: &str,
        session_hash: &str,
    ) -> Result<bool> {
        if !self.arbiter.add_device(device, user, session_hash).await? {
            return Ok(false);
        }
        self.hint(&[user]);
        Ok(true)
    }

    /// A device of `user` here disconnected: forgotten, then hinted.
    pub async fn device_down(&self, device: DeviceId, user: &str) -> Result<()> {
        if self.arbiter.remove_device(device).await? {
            self.hint(&[user]);
        }
        Ok(())
    }

    /// Names the nodes found dead, as they are reaped (by this node or
    /// another).
    pub fn dead_nodes(&self) -> broadcast::Receiver<Vec<String>> {
        self.dead.subscribe()
    }

    /// Completes when the node is fenced (see the module docs).
    pub async fn fenced(&self) {
        let mut rx = self.fenced.clone();
        let _ = rx.wait_for(|f| *f).await;
    }

    /// Whether the node is fenced.
    pub fn is_fenced(&self) -> bool {
        *self.fenced.borrow()
    }

    /// Leaves the cluster (a clean shutdown, after the node's connections
    /// closed): its rows go as if it had been reaped, and the other nodes hear
    /// of it at once, so that its people resume through them without waiting
    /// for its lease to run out.
    pub async fn leave(&self) -> Result<()> {
        for t in &self.tasks {
            t.abort();
        }
        let r = self.arbiter.leave(self.timing.grace).await?;
        let mut users = r.users;
        for c in &r.cancelled {
            users.extend([c.caller.clone(), c.callee.clone()]);
        }
        users.sort();
        users.dedup();
        let users: Vec<&str> = users.iter().map(String::as_str).collect();
        self.hint(&users);
        if let Ok(payload) = serde_json::to_vec(&r.nodes)
            && let Err(e) = self.bus.publish(DEAD_SUBJECT, payload)
        {
            tracing::warn!(error = %e, "leaving the cluster was not announced");
        }
        self.bus.flush().await.map_err(bus_error)?;
        tracing::info!(node = %self.id(), "left the cluster");
        Ok(())
    }

    /// Publishes a presence hint naming `users` (after a committed change
    /// of their presence elsewhere: a call placed or ended).
    pub fn hint_users(&self, users: &[&str]) {
        publish_hint(&self.bus, users);
    }

    fn hint(&self, users: &[&str]) {
        publish_hint(&self.bus, users);
    }
}

fn bus_error(e: crate::bus::BusError) -> Error {
    Error::Internal(format!("bus: {e}"))
}

fn publish_hint(bus: &Bus, users: &[&str]) {
    for chunk in users.chunks(HINT_BATCH) {
        let Ok(payload) = serde_json::to_vec(chunk) else {
            continue;
        };
        if let Err(e) = bus.publish(PRESENCE_SUBJECT, payload) {
            // The other nodes' reconcile repairs it.
            tracing::warn!(error = %e, "presence hint not sent");
        }
    }
}

/// Renews the lease; fences the node when it cannot.
async fn hold_lease(arbiter: Arbiter, timing: Timing, fence: watch::Sender<bool>) {
    let mut tick = tokio::time::interval(timing.renew);
    let mut held_since = Instant::now();
    loop {
        tick.tick().await;
        let asked = Instant::now();
        match arbiter.renew(timing.lease).await {
            Ok(true) => held_since = asked,
            Ok(false) => {
                tracing::error!(node = %arbiter.node(), "the node's lease ran out; stopping");
                let _ = fence.send(true);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "lease not renewed");
                // Renewed last at `held_since` (asked then): past a lease from
                // it, the lease may have run out and others may have reaped us.
                if held_since.elapsed() >= timing.lease {
                    tracing::error!(node = %arbiter.node(), "the lease could not be renewed for a whole lease; stopping");
                    let _ = fence.send(true);
                    return;
                }
            }
        }
    }
}

/// Looks for dead nodes; after reaping one, this node's hub and every other
/// node learn of its users at once, and every node of its death. Ends the
/// calls whose home died and that nobody resumed in time.
async fn reap(
    arbiter: Arbiter,
    bus: Bus,
    hub: Arc<Hub>,
    timing: Timing,
    dead: broadcast::Sender<Vec<String>>,
) {
    let mut tick = tokio::time::interval(timing.reap);
    loop {
        tick.tick().await;
        let mut users = Vec::new();
        match arbiter.reap(timing.grace).await {
            Ok(r) if !r.nodes.is_empty() => {
                tracing::warn!(nodes = ?r.nodes, users = r.users.len(), "reaped dead relay nodes");
                users.extend(r.users);
                for c in &r.cancelled {
                    users.extend([c.caller.clone(), c.callee.clone()]);
                }
                if let Ok(payload) = serde_json::to_vec(&r.nodes)
                    && let Err(e) = bus.publish(DEAD_SUBJECT, payload)
                {
                    tracing::warn!(error = %e, "the dead nodes were not announced");
                }
                let _ = dead.send(r.nodes);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reaping failed"),
        }
        match arbiter.expire_grace().await {
            Ok(ended) => {
                for c in ended {
                    tracing::info!(call = %c.id, "a call whose relay node died was not resumed in time");
                    users.extend([c.caller, c.callee]);
                }
            }
            Err(e) => tracing::warn!(error = %e, "ending orphaned calls failed"),
        }
        if !users.is_empty() {
            users.sort();
            users.dedup();
            if let Ok(st) = arbiter.statuses_elsewhere(&users).await {
                hub.set_remote(st);
            }
            let users: Vec<&str> = users.iter().map(String::as_str).collect();
            publish_hint(&bus, &users);
        }
    }
}

/// Passes on the deaths other nodes announce.
async fn hear_deaths(mut deaths: Subscription, dead: broadcast::Sender<Vec<String>>) {
    while let Some(m) = deaths.next().await {
        match serde_json::from_slice::<Vec<String>>(&m.payload) {
            Ok(nodes) => {
                let _ = dead.send(nodes);
            }
            Err(_) => tracing::warn!("an unreadable announcement of dead nodes; ignored"),
        }
    }
}

/// Reads the presence of the users the hints name, batched.
async fn read_hints(arbiter: Arbiter, hub: Arc<Hub>, mut hints: Subscription) {
    let mut users: Vec<String> = Vec::new();
    while let Some(first) = hints.next().await {
        users.clear();
        add_hint(&mut users, &first.payload);
        while users.len() < HINT_BATCH {
            match hints.try_next() {
                Some(m) => add_hint(&mut users, &m.payload),
                None => break,
            }
        }
        users.sort();
        users.dedup();
        match arbiter.statuses_elsewhere(&users).await {
            Ok(st) => hub.set_remote(st),
            Err(e) => tracing::warn!(error = %e, "presence not read; the reconcile will"),
        }
    }
}

/// Adds the names a hint carries to `users`.
fn add_hint(users: &mut Vec<String>, payload: &[u8]) {
    match serde_json::from_slice::<Vec<String>>(payload) {
        Ok(names) => users.extend(names),
        Err(_) => tracing::warn!("an unreadable presence hint; ignored"),
    }
}

/// Reads everyone online elsewhere, repairing lost hints.
async fn reconcile(arbiter: Arbiter, hub: Arc<Hub>, timing: Timing) {
    let mut tick = tokio::time::interval(timing.reconcile);
    tick.tick().await;
    loop {
        tick.tick().await;
        match arbiter.online_elsewhere().await {
            Ok(online) => hub.replace_remote(online),
            Err(e) => tracing::warn!(error = %e, "presence reconcile failed"),
        }
    }
}
