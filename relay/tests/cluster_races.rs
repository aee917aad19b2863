//! The cluster arbiter (`shieldcall_relay::cluster`) on a real PostgreSQL: each
//! race between two nodes, run 200 times with each node on connections of its
//! own, is decided exactly one way and leaves nothing behind; a node whose lease
//! ran out is fenced and reaped exactly once; presence counts live nodes only.
//! Always on PostgreSQL (the test server of `cargo xtask test`).

mod common;

use std::time::Duration;

use common::new_database;
use shieldcall_proto::Status;
use shieldcall_relay::cluster::{Accepted, Arbiter, Placed, RingEnd, RingEnded};
use shieldcall_relay::store::PostgresStore;
use sqlx::Connection;

const ROUNDS: usize = 200;
const LONG: Duration = Duration::from_secs(60);

/// A migrated database and two nodes on it.
async fn two_nodes() -> (String, Arbiter, Arbiter) {
    let url = new_database();
    PostgresStore::connect(&url).await.expect("migrate");
    let a = Arbiter::connect(&url, LONG).await.expect("node a");
    let b = Arbiter::connect(&url, LONG).await.expect("node b");
    (url, a, b)
}

/// Rows left in a cluster table.
async fn count(url: &str, table: &str) -> i64 {
    let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&mut c)
        .await
        .expect("count")
}

async fn nothing_left(url: &str) {
    assert_eq!(count(url, "cluster_calls").await, 0, "calls left behind");
    assert_eq!(count(url, "cluster_busy").await, 0, "busy rows left behind");
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_accepts_on_two_nodes_one_wins() {
    let (url, a, b) = two_nodes().await;
    let mut wins = [0; 2];
    for i in 0..ROUNDS {
        let id = format!("acc{i}");
        let placed = a.place(&id, "alice@x", "bob@x", 1, LONG).await.unwrap();
        assert_eq!(placed, Placed::Ringing);
        // Bob's two devices, one on each node, accept at once.
        let (ra, rb) = tokio::join!(a.accept(&id, "bob@x", 10), b.accept(&id, "bob@x", 20));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        match (&ra, &rb) {
            (Accepted::Won(row), Accepted::Taken) => {
                wins[0] += 1;
                assert_eq!(
                    row.callee_at.as_ref().map(|d| (d.node.as_str(), d.device)),
                    Some((a.node(), 10))
                );
            }
            (Accepted::Taken, Accepted::Won(row)) => {
                wins[1] += 1;
                assert_eq!(
                    row.callee_at.as_ref().map(|d| (d.node.as_str(), d.device)),
                    Some((b.node(), 20))
                );
            }
            other => panic!("round {i}: not exactly one winner: {other:?}"),
        }
        // Accepting again, from either node, is refused.
        assert_eq!(b.accept(&id, "bob@x", 21).await.unwrap(), Accepted::Taken);
        let ended = a.hang_up(&id, "bob@x").await.unwrap().expect("hung up");
        assert!(ended.answered);
        assert_eq!(a.hang_up(&id, "alice@x").await.unwrap(), None, "ended once");
    }
    nothing_left(&url).await;
    eprintln!("winners: node a {}, node b {}", wins[0], wins[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_at_the_ring_deadline_or_the_timeout_never_both() {
    let (url, a, b) = two_nodes().await;
    let ring = Duration::from_millis(20);
    let mut accepted = 0;
    let mut timed_out = 0;
    for i in 0..ROUNDS {
        let id = format!("dl{i}");
        a.place(&id, "alice@x", "bob@x", 1, ring).await.unwrap();
        // Land around the deadline: a little before, at, or after it.
        tokio::time::sleep(Duration::from_millis(16 + (i as u64 % 9))).await;
        let (acc, end) = tokio::join!(
            b.accept(&id, "bob@x", 2),
            a.end_ringing(&id, RingEnd::Timeout)
        );
        let (acc, mut end) = (acc.unwrap(), end.unwrap());
        // A timeout asked before the deadline asks again, as the timer would.
        while let RingEnded::NotYet(left) = end {
            tokio::time::sleep(left).await;
            end = a.end_ringing(&id, RingEnd::Timeout).await.unwrap();
        }
        match (&acc, &end) {
            (Accepted::Won(_), RingEnded::Gone) => {
                accepted += 1;
                assert!(a.hang_up(&id, "alice@x").await.unwrap().is_some());
            }
            (Accepted::TooLate | Accepted::Gone, RingEnded::Ended(row)) => {
                timed_out += 1;
                assert!(!row.answered);
            }
            other => panic!("round {i}: the accept and the timeout disagree: {other:?}"),
        }
    }
    nothing_left(&url).await;
    assert_eq!(accepted + timed_out, ROUNDS);
    eprintln!("accepted {accepted}, timed out {timed_out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_invites_make_at_most_one_call() {
    let (url, a, b) = two_nodes().await;
    for i in 0..ROUNDS {
        let (one, two) = (format!("x{i}a"), format!("x{i}b"));
        let (ra, rb) = tokio::join!(
            a.place(&one, "alice@x", "bob@x", 1, LONG),
            b.place(&two, "bob@x", "alice@x", 2, LONG)
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let (winner, by) = match (&ra, &rb) {
            (Placed::Ringing, Placed::Busy(_)) => (&one, "alice@x"),
            (Placed::Busy(_), Placed::Ringing) => (&two, "bob@x"),
            other => panic!("round {i}: not exactly one call: {other:?}"),
        };
        assert_eq!(
            count(&url, "cluster_calls").await,
            1,
            "the refused call left nothing"
        );
        assert_eq!(count(&url, "cluster_busy").await, 2);
        let cancelled = a.end_ringing(winner, RingEnd::Cancel(by)).await.unwrap();
        assert!(matches!(cancelled, RingEnded::Ended(_)), "{cancelled:?}");
    }
    nothing_left(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_calls_in_a_circle_never_deadlock() {
    let (url, a, b) = two_nodes().await;
    let c = Arbiter::connect(&url, LONG).await.unwrap();
    for i in 0..ROUNDS {
        let ids = [format!("c{i}1"), format!("c{i}2"), format!("c{i}3")];
        let (r1, r2, r3) = tokio::join!(
            a.place(&ids[0], "ann@x", "ben@x", 1, LONG),
            b.place(&ids[1], "ben@x", "cat@x", 1, LONG),
            c.place(&ids[2], "cat@x", "ann@x", 1, LONG)
        );
        // PostgreSQL's deadlock detector would fail one of them with an error.
        let placed: Vec<Placed> = [r1, r2, r3]
            .into_iter()
            .map(|r| r.expect("no deadlock"))
            .collect();
        let ringing = placed.iter().filter(|p| **p == Placed::Ringing).count();
        // Each pair shares a person: at most one call; the first to take its
        // lower name goes through unless a call already holds its higher one.
        assert!(ringing <= 1, "round {i}: {placed:?}");
        assert_eq!(count(&url, "cluster_calls").await, ringing as i64);
        assert_eq!(count(&url, "cluster_busy").await, 2 * ringing as i64);
        for (k, p) in placed.iter().enumerate() {
            if *p == Placed::Ringing {
                let caller = ["ann@x", "ben@x", "cat@x"][k];
                a.end_ringing(&ids[k], RingEnd::Cancel(caller))
                    .await
                    .unwrap();
            }
        }
    }
    nothing_left(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decline_cancel_and_accept_race_one_wins() {
    let (url, a, b) = two_nodes().await;
    for i in 0..ROUNDS {
        let id = format!("r{i}");
        a.place(&id, "alice@x", "bob@x", 1, LONG).await.unwrap();
        let (acc, dec, can) = tokio::join!(
            b.accept(&id, "bob@x", 2),
            b.end_ringing(&id, RingEnd::Decline("bob@x")),
            a.end_ringing(&id, RingEnd::Cancel("alice@x"))
        );
        let (acc, dec, can) = (acc.unwrap(), dec.unwrap(), can.unwrap());
        let wins = usize::from(matches!(acc, Accepted::Won(_)))
            + usize::from(matches!(dec, RingEnded::Ended(_)))
            + usize::from(matches!(can, RingEnded::Ended(_)));
        assert_eq!(wins, 1, "round {i}: {acc:?} {dec:?} {can:?}");
        if matches!(acc, Accepted::Won(_)) {
            a.hang_up(&id, "alice@x").await.unwrap().expect("hung up");
        }
    }
    nothing_left(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_people_cannot_end_or_accept_a_call() {
    let (url, a, b) = two_nodes().await;
    a.place("w1", "alice@x", "bob@x", 1, LONG).await.unwrap();
    assert_eq!(
        b.accept("w1", "mallory@x", 3).await.unwrap(),
        Accepted::Gone
    );
    assert_eq!(
        b.accept("w1", "alice@x", 3).await.unwrap(),
        Accepted::Gone,
        "the caller is not the callee"
    );
    assert_eq!(
        b.end_ringing("w1", RingEnd::Decline("alice@x"))
            .await
            .unwrap(),
        RingEnded::Gone
    );
    assert_eq!(
        b.end_ringing("w1", RingEnd::Cancel("bob@x")).await.unwrap(),
        RingEnded::Gone
    );
    assert!(matches!(
        a.end_ringing("w1", RingEnd::Timeout).await.unwrap(),
        RingEnded::NotYet(_)
    ));
    assert_eq!(
        a.hang_up("w1", "alice@x").await.unwrap(),
        None,
        "a ringing call is cancelled, not hung up"
    );
    assert!(
        a.place("w2", "carol@x", "carol@x", 1, LONG).await.is_err(),
        "no call to oneself"
    );
    assert_eq!(
        a.place("w3", "carol@x", "bob@x", 1, LONG).await.unwrap(),
        Placed::Busy("bob@x".into())
    );
    assert_eq!(count(&url, "cluster_calls").await, 1);
    a.end_ringing("w1", RingEnd::Cancel("alice@x"))
        .await
        .unwrap();
    nothing_left(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_fenced_reaped_once_and_its_calls_wait_or_end() {
    let url = new_database();
    PostgresStore::connect(&url).await.expect("migrate");
    let a = Arbiter::connect(&url, LONG).await.unwrap();
    let a2 = Arbiter::connect(&url, LONG).await.unwrap();
    let short = Duration::from_millis(400);
    let b = Arbiter::connect(&url, short).await.unwrap();
    assert!(a.add_device(1, "alice@x", "s-alice").await.unwrap());
    assert!(a.add_device(2, "dave@x", "s-dave").await.unwrap());
    assert!(a.add_device(3, "carol@x", "s-carol").await.unwrap());
    assert!(b.add_device(1, "bob@x", "s-bob").await.unwrap());
    assert!(b.add_device(2, "erin@x", "s-erin").await.unwrap());
    assert!(b.add_device(3, "erin@x", "s-erin2").await.unwrap());
    // Bob (on b) rings Carol; Dave (on a) and Erin (on b) talk.
    assert_eq!(
        b.place("ring", "bob@x", "carol@x", 1, LONG).await.unwrap(),
        Placed::Ringing
    );
    assert_eq!(
        a.place("talk", "dave@x", "erin@x", 2, LONG).await.unwrap(),
        Placed::Ringing
    );
    assert!(matches!(
        b.accept("talk", "erin@x", 2).await.unwrap(),
        Accepted::Won(_)
    ));
    let everyone = names(&["alice@x", "bob@x", "carol@x", "dave@x", "erin@x", "zoe@x"]);
    let st = a.statuses(&everyone).await.unwrap();
    let want = [
        Status::Online,
        Status::Busy,
        Status::Busy,
        Status::Busy,
        Status::Busy,
        Status::Offline,
    ];
    assert_eq!(st.iter().map(|(_, s)| *s).collect::<Vec<_>>(), want);
    assert_eq!(a.devices_of("erin@x").await.unwrap().len(), 2);
    assert!(b.renew(short).await.unwrap(), "a live node renews");

    // b stops renewing: past its lease it is offline to everyone and fenced,
    // before anyone has reaped it.
    tokio::time::sleep(short + Duration::from_millis(100)).await;
    let st = a.statuses(&names(&["bob@x", "erin@x"])).await.unwrap();
    assert!(st.iter().all(|(_, s)| *s == Status::Offline), "{st:?}");
    assert!(a.devices_of("erin@x").await.unwrap().is_empty());
    assert!(
        !b.renew(short).await.unwrap(),
        "a lapsed lease is not renewed"
    );
    assert!(!b.add_device(9, "bob@x", "s").await.unwrap());
    assert_eq!(
        b.rebind("talk", "erin@x", 3).await.unwrap(),
        None,
        "a fenced node decides nothing"
    );

    // Two nodes reap at once: exactly one cleans up.
    let (r1, r2) = tokio::join!(a.reap(LONG), a2.reap(LONG));
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    let reaped = if r1.nodes.is_empty() {
        r2.clone()
    } else {
        r1.clone()
    };
    assert!(
        r1.nodes.is_empty() != r2.nodes.is_empty(),
        "reaped once: {r1:?} {r2:?}"
    );
    assert_eq!(reaped.nodes, [b.node().to_string()]);
    assert_eq!(reaped.users, names(&["bob@x", "erin@x"]));
    assert_eq!(reaped.cancelled.len(), 1);
    assert_eq!(reaped.cancelled[0].id, "ring");
    assert_eq!(reaped.waiting.len(), 1);
    let talk = &reaped.waiting[0];
    assert!(talk.in_grace && talk.callee_at.is_none());
    assert_eq!(
        talk.caller_at.as_ref().map(|d| d.node.as_str()),
        Some(a.node())
    );
    assert_eq!(
        a.reap(LONG).await.unwrap().nodes.len(),
        0,
        "nothing left to reap"
    );
    // Carol is free again; Bob's ring is gone with its busy rows.
    let st = a.statuses(&names(&["carol@x", "dave@x"])).await.unwrap();
    assert_eq!(st[0].1, Status::Online);
    assert_eq!(st[1].1, Status::Busy, "Dave's call waits for Erin");

    // Erin comes back through node a: the call is whole again.
    let back = a
        .rebind("talk", "erin@x", 7)
        .await
        .unwrap()
        .expect("rebound");
    assert!(!back.in_grace);
    assert_eq!(
        back.callee_at.map(|d| (d.node, d.device)),
        Some((a.node().to_string(), 7))
    );
    assert!(a.expire_grace().await.unwrap().is_empty());
    a.hang_up("talk", "dave@x").await.unwrap().expect("hung up");
    nothing_left(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_side_never_comes_back_ends_after_the_grace() {
    let url = new_database();
    PostgresStore::connect(&url).await.expect("migrate");
    let a = Arbiter::connect(&url, LONG).await.unwrap();
    let short = Duration::from_millis(300);
    let b = Arbiter::connect(&url, short).await.unwrap();
    a.place("g", "dave@x", "erin@x", 1, LONG).await.unwrap();
    assert!(matches!(
        b.accept("g", "erin@x", 1).await.unwrap(),
        Accepted::Won(_)
    ));
    tokio::time::sleep(short + Duration::from_millis(100)).await;
    let grace = Duration::from_millis(200);
    let reaped = a.reap(grace).await.unwrap();
    assert_eq!(reaped.waiting.len(), 1);
    assert!(a.expire_grace().await.unwrap().is_empty(), "not yet");
    tokio::time::sleep(grace + Duration::from_millis(50)).await;
    let ended = a.expire_grace().await.unwrap();
    assert_eq!(ended.len(), 1);
    assert_eq!(
        a.rebind("g", "erin@x", 2).await.unwrap(),
        None,
        "too late to come back"
    );
    nothing_left(&url).await;
}
