//! The cluster arbiter (`shieldcall_relay::cluster`) on a real PostgreSQL: each
//! race between nodes, run 200 times with each node on connections of its
//! own, is decided exactly one way and leaves nothing behind (calls placed
//! crossing each other, in a circle, beside a held call; two nodes taking over
//! a call whose home died); a node whose lease ran out is fenced and reaped
//! exactly once; presence counts live nodes only; every node gets one key; a
//! node ends many of its calls in one statement, and no other node's.
//! Always on PostgreSQL (the test server of `cargo xtask test`).

mod common;

use std::time::Duration;

use common::{new_database, table_rows};
use shieldcall_proto::Status;
use shieldcall_relay::cluster::{Arbiter, Placed};
use shieldcall_relay::store::PostgresStore;

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

async fn nothing_left(url: &str) {
    assert_eq!(
        table_rows(url, "cluster_calls").await,
        0,
        "calls left behind"
    );
    assert_eq!(
        table_rows(url, "cluster_busy").await,
        0,
        "busy rows left behind"
    );
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
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
            table_rows(&url, "cluster_calls").await,
            1,
            "the refused call left nothing"
        );
        assert_eq!(table_rows(&url, "cluster_busy").await, 2);
        // Only the call's home ends it.
        let home = if by == "alice@x" { &a } else { &b };
        let other = if by == "alice@x" { &b } else { &a };
        assert_eq!(other.end_call(winner).await.unwrap(), None);
        assert!(home.end_call(winner).await.unwrap().is_some());
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
        assert_eq!(table_rows(&url, "cluster_calls").await, ringing as i64);
        assert_eq!(table_rows(&url, "cluster_busy").await, 2 * ringing as i64);
        for (k, p) in placed.iter().enumerate() {
            if *p == Placed::Ringing {
                let home = [&a, &b, &c][k];
                home.end_call(&ids[k]).await.unwrap().expect("ended");
            }
        }
    }
    nothing_left(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_call_beside_a_held_one_takes_only_the_callees_row() {
    let (url, a, b) = two_nodes().await;
    assert_eq!(
        a.place("held", "ann@x", "ben@x", 1, LONG).await.unwrap(),
        Placed::Ringing
    );
    // Ann consults Cat about the held call: only Cat's row is taken.
    assert_eq!(
        a.place_beside("consult", "ann@x", "cat@x", 1, LONG, Some("held"))
            .await
            .unwrap(),
        Placed::Ringing
    );
    assert_eq!(table_rows(&url, "cluster_busy").await, 3);
    // Not beside a call she is not in, nor to someone busy.
    assert_eq!(
        b.place_beside("x1", "dan@x", "eve@x", 1, LONG, Some("held"))
            .await
            .unwrap(),
        Placed::Busy("dan@x".into())
    );
    assert_eq!(
        b.place_beside("x2", "ann@x", "ben@x", 1, LONG, Some("held"))
            .await
            .unwrap(),
        Placed::Busy("ben@x".into())
    );
    assert_eq!(
        table_rows(&url, "cluster_calls").await,
        2,
        "refusals leave nothing"
    );
    assert!(a.place("self", "ann@x", "ann@x", 1, LONG).await.is_err());
    a.end_call("consult").await.unwrap().expect("ended");
    a.end_call("held").await.unwrap().expect("ended");
    nothing_left(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_ends_many_calls_at_once_and_only_its_own() {
    let (url, a, b) = two_nodes().await;
    let mut ours = Vec::new();
    for i in 0..50 {
        let id = format!("a{i}");
        let (caller, callee) = (format!("p{i}@x"), format!("q{i}@x"));
        assert_eq!(
            a.place(&id, &caller, &callee, 1, LONG).await.unwrap(),
            Placed::Ringing
        );
        ours.push(id);
    }
    assert_eq!(
        b.place("theirs", "r@x", "s@x", 1, LONG).await.unwrap(),
        Placed::Ringing
    );
    // Node A's 50 calls, B's call and an id nobody has, in one statement:
    // A's rows come back, with their busy rows gone; B's call stays.
    let mut ids = ours.clone();
    ids.push("theirs".into());
    ids.push("nobody's".into());
    let mut ended: Vec<String> = a
        .end_calls(&ids)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    ended.sort();
    ours.sort();
    assert_eq!(ended, ours);
    assert_eq!(table_rows(&url, "cluster_calls").await, 1);
    assert_eq!(table_rows(&url, "cluster_busy").await, 2);
    // Again: nothing is left to end.
    assert!(a.end_calls(&ids).await.unwrap().is_empty());
    assert!(a.end_calls(&[]).await.unwrap().is_empty());
    b.end_call("theirs").await.unwrap().expect("ended");
    nothing_left(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_gets_the_same_call_id_key() {
    let (_, a, b) = two_nodes().await;
    let (ka, kb) = tokio::join!(a.shared_key(), b.shared_key());
    assert_eq!(ka.unwrap(), kb.unwrap());
}

/// A call placed by `home`, answered, whose home then stops renewing.
async fn orphan(url: &str, id: &str, short: Duration) -> Arbiter {
    let home = Arbiter::connect(url, short).await.expect("join");
    assert_eq!(
        home.place(id, "dave@x", "erin@x", 1, LONG)
            .await
            .expect("place"),
        Placed::Ringing
    );
    assert!(home.mark_answered(id).await.expect("mark").is_some());
    home
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_fenced_reaped_once_and_its_calls_end_or_wait() {
    let url = new_database();
    PostgresStore::connect(&url).await.expect("migrate");
    let a = Arbiter::connect(&url, LONG).await.unwrap();
    let a2 = Arbiter::connect(&url, LONG).await.unwrap();
    let short = Duration::from_millis(400);
    let b = Arbiter::connect(&url, short).await.unwrap();
    assert!(a.add_device(1, "alice@x", "s-alice").await.unwrap());
    assert!(a.add_device(3, "carol@x", "s-carol").await.unwrap());
    assert!(b.add_device(1, "bob@x", "s-bob").await.unwrap());
    assert!(b.add_device(2, "erin@x", "s-erin").await.unwrap());
    assert!(b.add_device(3, "erin@x", "s-erin2").await.unwrap());
    assert_eq!(
        b.session_of(a.node(), 3).await.unwrap().as_deref(),
        Some("s-carol")
    );
    // B's hub carries a ringing call (Bob rings Carol) and an answered one
    // (Erin and Dave).
    assert_eq!(
        b.place("ring", "bob@x", "carol@x", 1, LONG).await.unwrap(),
        Placed::Ringing
    );
    assert_eq!(
        b.place("talk", "erin@x", "dave@x", 2, LONG).await.unwrap(),
        Placed::Ringing
    );
    // Marking it answered names the devices its people have on other
    // nodes (Erin has two on B itself; Dave none anywhere).
    assert_eq!(b.mark_answered("talk").await.unwrap(), Some(Vec::new()));
    assert_eq!(b.mark_answered("talk").await.unwrap(), None, "once");
    assert!(
        a.mark_answered("ring").await.unwrap().is_none(),
        "only the home marks its calls"
    );
    let everyone = names(&["alice@x", "bob@x", "carol@x", "dave@x", "erin@x", "zoe@x"]);
    let st = a.statuses(&everyone).await.unwrap();
    let want = [
        Status::Online,
        Status::Busy,
        Status::Busy,
        Status::Offline,
        Status::Busy,
        Status::Offline,
    ];
    assert_eq!(st.iter().map(|(_, s)| *s).collect::<Vec<_>>(), want);
    assert_eq!(a.devices_of("erin@x").await.unwrap().len(), 2);
    assert_eq!(
        a.home_of("talk").await.unwrap(),
        Some((b.node().to_string(), true))
    );
    assert!(b.renew(short).await.unwrap(), "a live node renews");
    assert_eq!(
        a.claim_home("talk").await.unwrap(),
        None,
        "a live home keeps its call"
    );

    // B stops renewing: past its lease it is offline to everyone and fenced,
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
        b.claim_home("talk").await.unwrap(),
        None,
        "a fenced node takes nothing over"
    );
    assert_eq!(
        a.home_of("talk").await.unwrap(),
        Some((b.node().to_string(), false))
    );

    // Two nodes reap at once: exactly one cleans up.
    let (r1, r2) = tokio::join!(a.reap(LONG), a2.reap(LONG));
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert!(
        r1.nodes.is_empty() != r2.nodes.is_empty(),
        "reaped once: {r1:?} {r2:?}"
    );
    let reaped = if r1.nodes.is_empty() { r2 } else { r1 };
    assert_eq!(reaped.nodes, [b.node().to_string()]);
    assert_eq!(reaped.users, names(&["bob@x", "erin@x"]));
    assert_eq!(
        reaped
            .cancelled
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        ["ring"]
    );
    assert_eq!(reaped.waiting.len(), 1);
    assert!(reaped.waiting[0].in_grace && reaped.waiting[0].answered);
    assert_eq!(
        a.reap(LONG).await.unwrap().nodes.len(),
        0,
        "nothing left to reap"
    );
    // Carol is free again: Bob's ring went with its busy rows.
    assert_eq!(table_rows(&url, "cluster_busy").await, 2);

    // Erin comes back through node A: A takes the call over.
    let row = a.claim_home("talk").await.unwrap().expect("taken over");
    assert!(!row.in_grace);
    assert_eq!(row.home, a.node());
    assert_eq!(
        a2.claim_home("talk").await.unwrap(),
        None,
        "taken over once"
    );
    assert!(a.expire_grace().await.unwrap().is_empty());
    a.end_call("talk")
        .await
        .unwrap()
        .expect("ended by its new home");
    nothing_left(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_taking_over_an_orphaned_call_one_wins() {
    let url = new_database();
    PostgresStore::connect(&url).await.expect("migrate");
    let a = Arbiter::connect(&url, LONG).await.unwrap();
    let b = Arbiter::connect(&url, LONG).await.unwrap();
    let short = Duration::from_millis(50);
    let mut wins = [0; 2];
    for i in 0..ROUNDS {
        let id = format!("o{i}");
        let _dead = orphan(&url, &id, short).await;
        tokio::time::sleep(short + Duration::from_millis(10)).await;
        a.reap(LONG).await.unwrap();
        let (ra, rb) = tokio::join!(a.claim_home(&id), b.claim_home(&id));
        match (ra.unwrap(), rb.unwrap()) {
            (Some(r), None) => {
                wins[0] += 1;
                assert_eq!(r.home, a.node());
                a.end_call(&id).await.unwrap().expect("ended");
            }
            (None, Some(r)) => {
                wins[1] += 1;
                assert_eq!(r.home, b.node());
                b.end_call(&id).await.unwrap().expect("ended");
            }
            other => panic!("round {i}: not exactly one new home: {other:?}"),
        }
    }
    nothing_left(&url).await;
    eprintln!("taken over by node a {}, node b {}", wins[0], wins[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_nobody_resumes_ends_after_the_grace() {
    let url = new_database();
    PostgresStore::connect(&url).await.expect("migrate");
    let a = Arbiter::connect(&url, LONG).await.unwrap();
    let short = Duration::from_millis(300);
    let _dead = orphan(&url, "g", short).await;
    tokio::time::sleep(short + Duration::from_millis(100)).await;
    let grace = Duration::from_millis(200);
    let reaped = a.reap(grace).await.unwrap();
    assert_eq!(reaped.waiting.len(), 1);
    assert!(a.expire_grace().await.unwrap().is_empty(), "not yet");
    tokio::time::sleep(grace + Duration::from_millis(50)).await;
    let ended = a.expire_grace().await.unwrap();
    assert_eq!(ended.len(), 1);
    assert_eq!(
        a.claim_home("g").await.unwrap(),
        None,
        "too late to come back"
    );
    nothing_left(&url).await;
}
