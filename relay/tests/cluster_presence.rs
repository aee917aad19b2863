//! Presence across relay nodes (`shieldcall_relay::cluster::Node`): each node's
//! hub, on one real PostgreSQL database and one real `nats-server`, learns who
//! is online through the other nodes: at once after a change (a hint, then a
//! read), after a storm of connects and disconnects (converged within a
//! second), after a node died (its lease ran out and it was reaped), and after
//! hints were lost (the periodic reconcile). A node whose lease was taken from
//! it is fenced. Always on PostgreSQL and NATS (both started by `cargo xtask
//! test`).

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use common::nats::Nats;
use common::new_database;
use shieldcall_proto::{E2eePolicyType, E2eeSetting, PolicySource, RelayMsg, Status};
use shieldcall_relay::bus::Bus;
use shieldcall_relay::cluster::{Arbiter, Node, Timing};
use shieldcall_relay::hub::{CallKey, Config, DeviceId, Hub};
use shieldcall_relay::store::PostgresStore;
use sqlx::Connection;
use tokio::sync::mpsc;

const USERS: [&str; 8] = [
    "alice@x", "bob@x", "carol@x", "dave@x", "erin@x", "frank@x", "grace@x", "heidi@x",
];

fn fast() -> Timing {
    Timing {
        lease: Duration::from_millis(800),
        renew: Duration::from_millis(100),
        reap: Duration::from_millis(100),
        reconcile: Duration::from_millis(300),
        grace: Duration::from_secs(30),
    }
}

fn setting() -> E2eeSetting {
    E2eeSetting {
        enabled: false,
        can_change: true,
        policy: E2eePolicyType::DisabledUserOverride,
        policy_identity: "Global".into(),
        source: PolicySource::Global,
    }
}

/// A relay node's hub and its cluster part.
struct Relay {
    hub: Arc<Hub>,
    node: Option<Node>,
}

impl Relay {
    async fn start(db: &str, nats: &str, timing: Timing) -> Self {
        let hub = Hub::new(Config {
            ring_timeout: Duration::from_secs(45),
            grace: Duration::from_secs(30),
            park_timeout: Duration::from_secs(300),
            key: CallKey::random().expect("key"),
        });
        hub.set_directory(
            Default::default(),
            USERS.iter().map(|u| u.to_string()).collect(),
        );
        let arbiter = Arbiter::connect(db, timing.lease).await.expect("join");
        let bus = Bus::connect(nats, "test-node").await.expect("bus");
        let node = Node::start(arbiter, bus, hub.clone(), timing)
            .await
            .expect("node");
        Self {
            hub,
            node: Some(node),
        }
    }

    fn node(&self) -> &Node {
        self.node.as_ref().expect("running")
    }

    /// A device of `user` connects here.
    async fn connect(&self, user: &str) -> (DeviceId, mpsc::Receiver<Arc<RelayMsg>>) {
        let (tx, rx) = mpsc::channel(1024);
        let dev = self
            .hub
            .register(
                user,
                "session",
                setting(),
                tx,
                Arc::new(AtomicBool::new(false)),
            )
            .expect("register");
        assert!(
            self.node()
                .device_up(dev, user, "session")
                .await
                .expect("device up")
        );
        (dev, rx)
    }

    async fn disconnect(&self, dev: DeviceId, user: &str) {
        self.hub.unregister(Instant::now(), dev, user);
        self.node()
            .device_down(dev, user)
            .await
            .expect("device down");
    }

    /// How `of` shows in `me`'s contact list here.
    fn sees(&self, me: &str, of: &str) -> Status {
        self.hub
            .contacts_of(me)
            .into_iter()
            .find(|p| p.user == of)
            .map_or(Status::Offline, |p| p.status)
    }
}

async fn database() -> String {
    let url = new_database();
    PostgresStore::connect(&url).await.expect("migrate");
    url
}

/// Waits until `ok` holds; returns how long that took. Fails after `limit`.
async fn within(limit: Duration, what: &str, ok: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_crosses_nodes_at_once() {
    let (db, nats) = (database().await, Nats::start(&[]));
    let a = Relay::start(&db, &nats.url(), Timing::default()).await;
    let b = Relay::start(&db, &nats.url(), Timing::default()).await;
    let (_alice, mut alice_rx) = a.connect("alice@x").await;
    assert_eq!(a.sees("alice@x", "bob@x"), Status::Offline);
    let (bob, _bob_rx) = b.connect("bob@x").await;
    let t = within(Duration::from_secs(1), "A sees Bob online", || {
        a.sees("alice@x", "bob@x") == Status::Online
    })
    .await;
    within(Duration::from_secs(1), "B sees Alice online", || {
        b.sees("bob@x", "alice@x") == Status::Online
    })
    .await;
    // Alice's device hears of it, as of a local change.
    a.hub.flush_presence();
    let mut told = false;
    while let Ok(m) = alice_rx.try_recv() {
        if let RelayMsg::Presence { contacts } = &*m {
            told |= contacts
                .iter()
                .any(|p| p.user == "bob@x" && p.status == Status::Online);
        }
    }
    assert!(told, "Alice was not told Bob is online");
    b.disconnect(bob, "bob@x").await;
    let gone = within(Duration::from_secs(1), "A sees Bob offline", || {
        a.sees("alice@x", "bob@x") == Status::Offline
    })
    .await;
    eprintln!("online seen after {t:?}, offline after {gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_connects_and_disconnects_converges_within_a_second() {
    let (db, nats) = (database().await, Nats::start(&[]));
    let relays = Arc::new([
        Relay::start(&db, &nats.url(), Timing::default()).await,
        Relay::start(&db, &nats.url(), Timing::default()).await,
    ]);
    // Each node's devices, per user, after the storm.
    let mut storms = Vec::new();
    for (n, seed) in [(0usize, 7u64), (1, 13)] {
        let relays = relays.clone();
        storms.push(tokio::spawn(async move {
            let r = &relays[n];
            let mut held: Vec<Vec<DeviceId>> = vec![Vec::new(); USERS.len()];
            let mut rng = seed;
            for _ in 0..300 {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (rng >> 33) as usize % USERS.len();
                let connect = (rng >> 20) % 2 == 0;
                if connect && held[u].len() < 3 {
                    let (dev, _rx) = r.connect(USERS[u]).await;
                    held[u].push(dev);
                } else if let Some(dev) = held[u].pop() {
                    r.disconnect(dev, USERS[u]).await;
                }
            }
            // Some leave for good at the end, so both ways are checked.
            for (u, devs) in held.iter_mut().enumerate().filter(|(u, _)| u % 2 == 0) {
                while let Some(dev) = devs.pop() {
                    r.disconnect(dev, USERS[u]).await;
                }
            }
            held.iter().map(|d| !d.is_empty()).collect::<Vec<bool>>()
        }));
    }
    let mut online = vec![false; USERS.len()];
    for s in storms {
        for (u, here) in s.await.expect("storm").into_iter().enumerate() {
            online[u] |= here;
        }
    }
    // Everyone's view of everyone else, on both nodes, is the truth.
    let took = within(Duration::from_secs(1), "presence converged", || {
        relays.iter().all(|r| {
            USERS.iter().enumerate().all(|(u, user)| {
                let me = if u == 0 { USERS[1] } else { USERS[0] };
                let want = if online[u] {
                    Status::Online
                } else {
                    Status::Offline
                };
                *user == me || r.sees(me, user) == want
            })
        })
    })
    .await;
    eprintln!("online after the storm: {online:?}; converged {took:?} after it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_reaped_and_its_people_go_offline() {
    let (db, nats) = (database().await, Nats::start(&[]));
    let a = Relay::start(&db, &nats.url(), fast()).await;
    let mut b = Relay::start(&db, &nats.url(), fast()).await;
    let (_alice, _rx) = a.connect("alice@x").await;
    let (_bob, _bob_rx) = b.connect("bob@x").await;
    within(Duration::from_secs(1), "A sees Bob", || {
        a.sees("alice@x", "bob@x") == Status::Online
    })
    .await;
    // B stops renewing and says nothing (as after kill -9): its devices'
    // rows stay until A reaps it.
    drop(b.node.take());
    let t = within(Duration::from_secs(3), "A sees Bob offline", || {
        a.sees("alice@x", "bob@x") == Status::Offline
    })
    .await;
    let left = common::table_rows(&db, "cluster_nodes").await;
    assert_eq!(left, 1, "B was reaped");
    eprintln!(
        "offline {t:?} after the node stopped (lease {:?})",
        fast().lease
    );
    assert!(t <= fast().lease + Duration::from_millis(500), "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_lease_was_taken_is_fenced() {
    let (db, nats) = (database().await, Nats::start(&[]));
    let a = Relay::start(&db, &nats.url(), fast()).await;
    assert!(!a.node().is_fenced());
    let mut c = sqlx::PgConnection::connect(&db).await.expect("connect");
    sqlx::query("DELETE FROM cluster_nodes WHERE id = $1")
        .bind(a.node().id())
        .execute(&mut c)
        .await
        .expect("delete");
    tokio::time::timeout(Duration::from_secs(1), a.node().fenced())
        .await
        .expect("fenced within a renew interval");
    let (tx, _rx) = mpsc::channel(1);
    let dev = a
        .hub
        .register(
            "alice@x",
            "s",
            setting(),
            tx,
            Arc::new(AtomicBool::new(false)),
        )
        .expect("register");
    assert!(
        !a.node()
            .device_up(dev, "alice@x", "s")
            .await
            .expect("query"),
        "a fenced node records no device"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiners_and_lost_hints_are_repaired() {
    let (db, mut nats) = (database().await, Nats::start(&[]));
    let b = Relay::start(&db, &nats.url(), fast()).await;
    let (_bob, _rx) = b.connect("bob@x").await;
    // A node that starts later sees Bob before it serves anyone.
    let a = Relay::start(&db, &nats.url(), fast()).await;
    assert_eq!(a.sees("alice@x", "bob@x"), Status::Online);
    // The bus goes down: Carol's hint is lost.
    nats.stop();
    let (_carol, _crx) = b.connect("carol@x").await;
    nats.run();
    let t = within(Duration::from_secs(3), "the reconcile finds Carol", || {
        a.sees("alice@x", "carol@x") == Status::Online
    })
    .await;
    eprintln!(
        "a lost hint repaired after {t:?} (reconcile every {:?})",
        fast().reconcile
    );
}
