//! A relay node dies (`kill -9` of a real `shieldcall serve --bus-url` process)
//! in the middle of a call it carries: within its lease the surviving node
//! reaps it, the survivor's device is told to connect again, both people
//! resume through the surviving node, which takes the call over, and a
//! hang-up then reaches the other person. (In a browser the media never
//! stops: it flows between the two browsers, not through a relay.) Always on
//! PostgreSQL and NATS (`cargo xtask test`).

mod common;

use std::net::SocketAddr;
use std::process::Child;
use std::time::{Duration, Instant};

use common::nats::Nats;
use common::{Client, call_answered, device_at, new_database, start_with, temp_dir};
use shieldcall_proto::{CallMode, ClientMsg, HangupReason, RelayMsg};

const ANN: &str = "ann@a.test";
const BOB: &str = "bob@a.test";
const CAT: &str = "cat@a.test";

/// `shieldcall serve` as a node of the cluster on `db` and `bus`; returns the
/// process and its address once it listens.
fn node_process(db: &str, bus: &str) -> (Child, SocketAddr) {
    common::serve_process(&[("SHIELDCALL_DATABASE_URL", db), ("SHIELDCALL_BUS_URL", bus)])
}

/// Reads until `want` (other messages in between), within `limit`.
async fn until(c: &mut Client, limit: Duration, want: impl Fn(&RelayMsg) -> bool) -> RelayMsg {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match c.try_recv_any(left).await {
            Some(m) if want(&m) => return m,
            Some(_) => {}
            None => panic!("not received within {limit:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_node_carrying_a_call_then_both_resume_through_the_other() {
    let (db, nats) = (new_database(), Nats::start(&[]));
    // Node B in this process, node A a process of its own.
    let b = start_with(temp_dir(), |c| {
        c.database_url = Some(shieldcall_relay::DatabaseUrl(db.clone()));
        c.bus_url = Some(shieldcall_relay::DatabaseUrl(nats.url()));
    })
    .await;
    b.add_user(ANN, false).await;
    b.add_user(BOB, false).await;
    let (mut a, a_addr) = node_process(&db, &nats.url());
    let (ann_cookie, bob_cookie) = (b.cookie_for(ANN).await, b.cookie_for(BOB).await);

    // Ann on A calls Bob on B: A carries the call.
    let (mut ann, _) = device_at(a_addr, &ann_cookie).await;
    let (mut bob, _) = b.device_with(&bob_cookie).await;
    let id = call_answered(&mut ann, &mut bob, BOB).await;

    // A dies without a word.
    a.kill().expect("kill -9");
    a.wait().expect("reap");
    let killed = Instant::now();
    drop(ann);
    // B reaps A within its lease (10 s) and a reap interval (2 s), and tells
    // Bob's browser to connect again.
    assert!(
        bob.closed_within(Duration::from_secs(15)).await,
        "Bob's connection was not renewed"
    );
    let told = killed.elapsed();
    // Both browsers come back through B (the load balancer's only node now)
    // and resume; the first resume takes the call over for B.
    let (mut bob, _) = b.device_with(&bob_cookie).await;
    let (mut ann, _) = b.device_with(&ann_cookie).await;
    let resume = |peer: &str| ClientMsg::Resume {
        call_id: id.clone(),
        peer: peer.into(),
        mode: CallMode::E2ee,
    };
    bob.send(&resume(ANN)).await;
    ann.send(&resume(BOB)).await;
    // The call goes on: Ann's hang-up reaches Bob.
    tokio::time::sleep(Duration::from_millis(200)).await;
    ann.send(&ClientMsg::Hangup {
        call_id: id.clone(),
        reason: HangupReason::Normal,
    })
    .await;
    let hangup = until(&mut bob, Duration::from_secs(5), |m| {
        matches!(m, RelayMsg::Hangup { .. })
    })
    .await;
    assert_eq!(
        hangup,
        RelayMsg::Hangup {
            call_id: id,
            reason: HangupReason::Normal
        }
    );
    eprintln!(
        "node killed; Bob told to reconnect after {told:?}; the call resumed and ended through the other node after {:?}",
        killed.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_cleanly_hands_its_calls_over_at_once() {
    let (db, nats) = (new_database(), Nats::start(&[]));
    let cluster = |db: String, bus: String| {
        move |c: &mut shieldcall_relay::Config| {
            c.database_url = Some(shieldcall_relay::DatabaseUrl(db));
            c.bus_url = Some(shieldcall_relay::DatabaseUrl(bus));
        }
    };
    let a = start_with(temp_dir(), cluster(db.clone(), nats.url())).await;
    let b = start_with(temp_dir(), cluster(db.clone(), nats.url())).await;
    a.add_user(ANN, false).await;
    a.add_user(BOB, false).await;
    a.add_user(CAT, false).await;
    b.state.refresh().await.expect("refresh");
    let (ann_cookie, bob_cookie) = (a.cookie_for(ANN).await, a.cookie_for(BOB).await);
    let (mut ann, _) = a.device_with(&ann_cookie).await;
    let (mut bob, _) = b.device_with(&bob_cookie).await;
    // Cat (on B) had a call with Ann, carried by A, and it is over.
    let (mut cat, _) = b.device(CAT).await;
    let done = call_answered(&mut ann, &mut cat, CAT).await;
    ann.send(&ClientMsg::Hangup {
        call_id: done,
        reason: HangupReason::Normal,
    })
    .await;
    until(&mut cat, Duration::from_secs(5), |m| {
        matches!(m, RelayMsg::Hangup { .. })
    })
    .await;
    let id = call_answered(&mut ann, &mut bob, BOB).await;

    // A is stopped (an upgrade, say): its tabs are closed, and it leaves.
    let stopped = Instant::now();
    a.stop().await;
    assert!(ann.closed_within(Duration::from_secs(2)).await);
    assert!(
        bob.closed_within(Duration::from_secs(2)).await,
        "Bob was not told at once"
    );
    let told = stopped.elapsed();
    // Cat, whose call there is over, stays connected.
    cat.assert_alive(1).await;
    let (mut bob, _) = b.device_with(&bob_cookie).await;
    let (mut ann, _) = b.device_with(&ann_cookie).await;
    for (c, peer) in [(&mut bob, ANN), (&mut ann, BOB)] {
        c.send(&ClientMsg::Resume {
            call_id: id.clone(),
            peer: peer.into(),
            mode: CallMode::E2ee,
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    bob.send(&ClientMsg::Hangup {
        call_id: id.clone(),
        reason: HangupReason::Normal,
    })
    .await;
    until(&mut ann, Duration::from_secs(5), |m| {
        matches!(m, RelayMsg::Hangup { .. })
    })
    .await;
    eprintln!("stopped; Bob told to reconnect after {told:?}");
}
