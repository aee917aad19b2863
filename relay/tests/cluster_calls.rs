//! Calls between relay nodes: two relays on one PostgreSQL database with one
//! `nats-server` between them (the cluster configuration), real WebSocket
//! clients on each. A call placed on node A to a person on node B rings them
//! there, and everything of it (accept, offer, answer, candidates, hold,
//! hang-up) crosses; the first accept wins across nodes; two people calling
//! each other through two nodes make one call; a call moves between devices
//! on different nodes, and is picked up through another node than the one
//! it was parked on (the parker free again, whoever picks up busy, for the
//! whole cluster), a consult transfer joins people on the other node (the
//! transferor free, whoever joined busy), and a person on the other node is
//! added to a call and leaves it, or merged into one; the database keeps no row of a call that ended. Always on PostgreSQL and NATS (`cargo xtask test`).

mod common;

use std::time::Duration;

use common::nats::Nats;
use common::{
    Client, Relay, call_answered, call_id, commit, error_code, new_database, start_with,
    table_rows, temp_dir,
};
use shieldcall_proto::{
    CallId, CallMode, ClientMsg, Commitment, ErrorCode, HangupReason, IceCandidate, RefuseReason,
    RelayMsg, Status,
};

const ANN: &str = "ann@a.test";
const BOB: &str = "bob@a.test";
/// A third person, for the tests that need one (added by each).
const CAT: &str = "cat@a.test";

/// Two nodes on `db` and `nats`, with Ann and Bob in the directory of both.
async fn two_nodes(db: &str, nats: &Nats) -> (Relay, Relay) {
    two_nodes_ringing(db, nats, Duration::from_secs(45)).await
}

/// [`two_nodes`] with `ring` as the ring timeout.
async fn two_nodes_ringing(db: &str, nats: &Nats, ring: Duration) -> (Relay, Relay) {
    let node = |db: String, bus: String| {
        start_with(temp_dir(), move |c| {
            c.database_url = Some(shieldcall_relay::DatabaseUrl(db));
            c.bus_url = Some(shieldcall_relay::DatabaseUrl(bus));
            c.ring_timeout = ring;
            // The 200-round races send faster than a person does.
            c.msg_rate = 1000.0;
            c.msg_burst = 1000.0;
        })
    };
    let a = node(db.to_string(), nats.url()).await;
    let b = node(db.to_string(), nats.url()).await;
    a.add_user(ANN, false).await;
    a.add_user(BOB, false).await;
    b.state.refresh().await.expect("refresh");
    (a, b)
}

/// Waits until no call row is left (the home removes it as its hub ends the call).
async fn no_calls_left(db: &str) {
    for _ in 0..200 {
        if table_rows(db, "cluster_calls").await == 0 && table_rows(db, "cluster_busy").await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("call rows left behind: {}", dump(db).await);
}

/// The call and busy rows, for a failure's message.
async fn dump(db: &str) -> String {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(db).await.expect("connect");
    let calls: Vec<(String, String, String, String, String)> =
        sqlx::query_as("SELECT id, caller, callee, home_node, state FROM cluster_calls")
            .fetch_all(&mut c)
            .await
            .expect("calls");
    let busy: Vec<(String, String)> = sqlx::query_as("SELECT user_name, call_id FROM cluster_busy")
        .fetch_all(&mut c)
        .await
        .expect("busy");
    format!("calls {calls:?}, busy {busy:?}")
}

/// What `client` hears (presence aside) until it is quiet for half a second.
async fn quiet_or(client: &mut Client) -> Vec<RelayMsg> {
    let mut got = Vec::new();
    while let Some(m) = client.try_recv_any(Duration::from_millis(500)).await {
        if !matches!(m, RelayMsg::Presence { .. }) {
            got.push(m);
        }
    }
    got
}

/// Turns the person's E2EE switch off, so that their calls are standard ones
/// (the features E2EE turns off work in them), and waits for the settings.
async fn switch_off(client: &mut Client) {
    client.send(&ClientMsg::SetE2ee { enabled: false }).await;
    until(client, "settings", |m| {
        matches!(m, RelayMsg::Settings { .. })
    })
    .await;
}

/// `client` invites `to`; the `calling` that answers it.
async fn invite(client: &mut Client, to: &str) -> RelayMsg {
    client
        .send(&ClientMsg::Invite {
            to: to.into(),
            transfer: None,
        })
        .await;
    until(client, "calling", |m| matches!(m, RelayMsg::Calling { .. })).await
}

/// `from` sends an offer in call `id`, and it reaches `to`.
async fn offer_reaches(from: &mut Client, to: &mut Client, id: &CallId) {
    from.send(&ClientMsg::Offer {
        call_id: id.clone(),
        sdp: "v=0\r\n".into(),
    })
    .await;
    until(
        to,
        "offer",
        |m| matches!(m, RelayMsg::Offer { call_id, .. } if call_id == id),
    )
    .await;
}

/// `from` hangs up call `id`, and `to` hears it.
async fn hangup_reaches(from: &mut Client, to: &mut Client, id: &CallId) {
    from.send(&ClientMsg::Hangup {
        call_id: id.clone(),
        reason: HangupReason::Normal,
    })
    .await;
    until(
        to,
        "hangup",
        |m| matches!(m, RelayMsg::Hangup { call_id, .. } if call_id == id),
    )
    .await;
}

/// Reads messages until `want` says yes (presence and the like in between).
async fn until(client: &mut Client, what: &str, want: impl Fn(&RelayMsg) -> bool) -> RelayMsg {
    first_of(client, what, want, |_| false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_crosses_nodes_and_the_first_accept_wins() {
    let (db, nats) = (new_database(), Nats::start(&[]));
    let (a, b) = two_nodes(&db, &nats).await;
    let (mut ann, _) = a.device(ANN).await;
    // Bob has a tab on each node.
    let (mut bob1, _) = a.device(BOB).await;
    let (mut bob2, _) = b.device(BOB).await;
    // Ann sees Bob online (he is on both nodes).
    ann.send(&ClientMsg::Invite {
        to: BOB.into(),
        transfer: None,
    })
    .await;
    let calling = ann.recv().await;
    assert!(
        matches!(
            calling,
            RelayMsg::Calling {
                mode: CallMode::E2ee,
                ..
            }
        ),
        "{calling:?}"
    );
    let id = call_id(&calling);
    // Both of Bob's tabs ring, the one on node B through its stand-in on A.
    assert!(matches!(bob1.recv().await, RelayMsg::Incoming { .. }));
    assert!(matches!(bob2.recv().await, RelayMsg::Incoming { .. }));
    // Both accept at once: one wins.
    let accept = ClientMsg::Accept {
        call_id: id.clone(),
        commit: Some(commit()),
    };
    tokio::join!(bob1.send(&accept), bob2.send(&accept));
    assert_eq!(
        ann.recv().await,
        RelayMsg::Accepted {
            call_id: id.clone(),
            commit: Some(commit())
        }
    );
    // The winner hears nothing more; the other tab learns it lost.
    let (r1, r2) = (quiet_or(&mut bob1).await, quiet_or(&mut bob2).await);
    let lost = |got: &[RelayMsg]| {
        got.iter().any(|m| {
            matches!(m, RelayMsg::AnsweredElsewhere { .. })
                || matches!(
                    m,
                    RelayMsg::Error {
                        code: ErrorCode::WrongState,
                        ..
                    }
                )
        })
    };
    let mut winner = match (lost(&r1), lost(&r2), r1.is_empty(), r2.is_empty()) {
        (false, true, true, _) => bob1,
        (true, false, _, true) => bob2,
        other => panic!("not exactly one winner: {other:?} {r1:?} {r2:?}"),
    };

    // Offer, answer and candidates cross, whichever tab won.
    let sdp =
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\na=fingerprint:sha-256 AB:CD\r\n".to_string();
    ann.send(&ClientMsg::Offer {
        call_id: id.clone(),
        sdp: sdp.clone(),
    })
    .await;
    assert_eq!(
        winner.recv().await,
        RelayMsg::Offer {
            call_id: id.clone(),
            sdp: sdp.clone()
        }
    );
    winner
        .send(&ClientMsg::Answer {
            call_id: id.clone(),
            sdp: sdp.clone(),
        })
        .await;
    assert_eq!(
        ann.recv().await,
        RelayMsg::Answer {
            call_id: id.clone(),
            sdp
        }
    );
    let cand = IceCandidate {
        candidate: "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: None,
    };
    winner
        .send(&ClientMsg::Ice {
            call_id: id.clone(),
            candidate: cand.clone(),
        })
        .await;
    assert_eq!(
        ann.recv().await,
        RelayMsg::Ice {
            call_id: id.clone(),
            candidate: cand
        }
    );
    // E2EE turns features off across nodes as on one.
    winner
        .send(&ClientMsg::Feature {
            call_id: id.clone(),
            feature: shieldcall_proto::CallFeature::Transcription,
        })
        .await;
    assert!(matches!(
        winner.recv().await,
        RelayMsg::Error {
            code: ErrorCode::UnavailableInE2ee,
            ..
        }
    ));
    // Busy for everyone, on both nodes.
    for _ in 0..100 {
        let busy = [&a, &b].iter().all(|r| {
            r.state
                .hub()
                .contacts_of(ANN)
                .iter()
                .any(|p| p.user == BOB && p.status == Status::Busy)
        });
        if busy {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for r in [&a, &b] {
        let seen = r.state.hub().contacts_of(ANN);
        assert!(
            seen.iter()
                .any(|p| p.user == BOB && p.status == Status::Busy),
            "{seen:?}"
        );
    }
    winner
        .send(&ClientMsg::Hangup {
            call_id: id.clone(),
            reason: HangupReason::Normal,
        })
        .await;
    assert_eq!(
        ann.recv().await,
        RelayMsg::Hangup {
            call_id: id.clone(),
            reason: HangupReason::Normal
        }
    );
    no_calls_left(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_calling_each_other_through_two_nodes_make_one_call() {
    let (db, nats) = (new_database(), Nats::start(&[]));
    let (a, b) = two_nodes(&db, &nats).await;
    let (mut ann, _) = a.device(ANN).await;
    let (mut bob, _) = b.device(BOB).await;
    for round in 0..10 {
        let (to_bob, to_ann) = (
            ClientMsg::Invite {
                to: BOB.into(),
                transfer: None,
            },
            ClientMsg::Invite {
                to: ANN.into(),
                transfer: None,
            },
        );
        tokio::join!(ann.send(&to_bob), bob.send(&to_ann));
        // Each hears about its own invite and, at most, the other's.
        let mut calls = Vec::new();
        let mut refused = 0;
        let mut incoming = Vec::new();
        for (who, c) in [("ann", &mut ann), ("bob", &mut bob)] {
            for m in quiet_or(c).await {
                match m {
                    RelayMsg::Calling { call_id, .. } => calls.push((who, call_id)),
                    RelayMsg::CallRefused {
                        reason: RefuseReason::Busy,
                        ..
                    } => refused += 1,
                    RelayMsg::Incoming { call_id, .. } => incoming.push((who, call_id)),
                    other => panic!("round {round}: {who}: {other:?}"),
                }
            }
        }
        assert_eq!(
            (calls.len(), refused, incoming.len()),
            (1, 1, 1),
            "round {round}"
        );
        let (caller, id) = calls.remove(0);
        assert_ne!(incoming[0].0, caller);
        assert_eq!(incoming[0].1, id);
        let c = if caller == "ann" { &mut ann } else { &mut bob };
        c.send(&ClientMsg::Cancel {
            call_id: id.clone(),
        })
        .await;
        let other = if caller == "ann" { &mut bob } else { &mut ann };
        until(other, "cancelled", |m| {
            matches!(m, RelayMsg::Cancelled { .. })
        })
        .await;
        no_calls_left(&db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_device_resumes_through_either_node() {
    let (db, nats) = (new_database(), Nats::start(&[]));
    let (a, b) = two_nodes(&db, &nats).await;
    let (mut ann, _) = a.device(ANN).await;
    let bob_cookie = b.cookie_for(BOB).await;
    // Twice: Bob comes back through the other node (B, the call's home is
    // A), then through the home itself.
    for back_on in [&b, &a] {
        let (mut bob, _) = b.device_with(&bob_cookie).await;
        let id = call_answered(&mut ann, &mut bob, BOB).await;
        // Bob's connection drops; his browser comes back and resumes.
        drop(bob);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (mut bob, _) = back_on.device_with(&bob_cookie).await;
        bob.send(&ClientMsg::Resume {
            call_id: id.clone(),
            peer: ANN.into(),
            mode: CallMode::E2ee,
        })
        .await;
        // The call goes on: what Ann sends reaches Bob's new connection.
        let sdp = "v=0\r\na=fingerprint:sha-256 AB:CD\r\n".to_string();
        let offer = ClientMsg::Offer {
            call_id: id.clone(),
            sdp: sdp.clone(),
        };
        let mut got = None;
        for _ in 0..20 {
            ann.send(&offer).await;
            if let Some(m) = bob.try_recv_any(Duration::from_millis(200)).await
                && matches!(m, RelayMsg::Offer { .. })
            {
                got = Some(m);
                break;
            }
        }
        assert!(
            got.is_some(),
            "the resumed device does not get the call's messages"
        );
        hangup_reaches(&mut ann, &mut bob, &id).await;
        no_calls_left(&db).await;
        // Offers sent while the resume was on its way were refused to Ann.
        while ann.try_recv_any(Duration::from_millis(100)).await.is_some() {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_a_blind_transfer_work_across_nodes() {
    let (db, nats) = (new_database(), Nats::start(&[]));
    let (a, b) = two_nodes(&db, &nats).await;
    a.add_user("cat@a.test", false).await;
    b.state.refresh().await.expect("refresh");
    // Bob on A (the call's home), Ann and Cat on B; Ann's switch is off, so
    // the call is a standard one.
    let (mut bob, _) = a.device(BOB).await;
    let (mut ann, _) = b.device(ANN).await;
    let (mut cat, _) = b.device("cat@a.test").await;
    switch_off(&mut ann).await;
    bob.send(&ClientMsg::Invite {
        to: ANN.into(),
        transfer: None,
    })
    .await;
    let calling = bob.recv().await;
    assert!(
        matches!(
            calling,
            RelayMsg::Calling {
                mode: CallMode::Standard,
                ..
            }
        ),
        "{calling:?}"
    );
    let id = call_id(&calling);
    until(&mut ann, "incoming", |m| {
        matches!(m, RelayMsg::Incoming { .. })
    })
    .await;
    ann.send(&ClientMsg::Accept {
        call_id: id.clone(),
        commit: Some(commit()),
    })
    .await;
    assert!(matches!(bob.recv().await, RelayMsg::Accepted { .. }));

    // Ann (on B) holds: both sides hear it from the home's hub.
    ann.send(&ClientMsg::Hold {
        call_id: id.clone(),
        on: true,
    })
    .await;
    let held = |by_me, by_peer| RelayMsg::Hold {
        call_id: id.clone(),
        by_me,
        by_peer,
    };
    assert_eq!(ann.recv().await, held(true, false));
    assert_eq!(bob.recv().await, held(false, true));

    // Bob transfers Ann to Cat: Ann's invite with the token goes to the node
    // whose hub made it (A), and Cat (on B) rings, told who transferred her.
    bob.send(&ClientMsg::Transfer {
        call_id: id.clone(),
        to: "cat@a.test".into(),
    })
    .await;
    let refer = until(&mut ann, "refer", |m| matches!(m, RelayMsg::Refer { .. })).await;
    let RelayMsg::Refer { token, by, .. } = refer else {
        unreachable!()
    };
    assert_eq!(by, BOB);
    ann.send(&ClientMsg::Invite {
        to: "cat@a.test".into(),
        transfer: Some(token),
    })
    .await;
    let calling = until(&mut ann, "calling", |m| {
        matches!(m, RelayMsg::Calling { .. })
    })
    .await;
    let new = call_id(&calling);
    let incoming = until(&mut cat, "incoming", |m| {
        matches!(m, RelayMsg::Incoming { .. })
    })
    .await;
    assert!(
        matches!(&incoming, RelayMsg::Incoming { call_id, from, referred_by: Some(by), .. }
            if *call_id == new && from == ANN && by == BOB),
        "{incoming:?}"
    );
    cat.send(&ClientMsg::Decline { call_id: new }).await;
    until(&mut ann, "declined", |m| {
        matches!(m, RelayMsg::CallRefused { .. })
    })
    .await;
    no_calls_left(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_moves_between_devices_on_different_nodes() {
    let (db, nats) = (new_database(), Nats::start(&[]));
    let (a, b) = two_nodes(&db, &nats).await;
    // Ann calls from node A, the call's home, and Bob answers there; each has
    // a second device on node B.
    let (mut ann, _) = a.device(ANN).await;
    let (mut ann2, _) = b.device(ANN).await;
    let (mut bob1, _) = a.device(BOB).await;
    let (mut bob2, _) = b.device(BOB).await;
    switch_off(&mut ann).await;
    let calling = invite(&mut ann, BOB).await;
    assert!(
        matches!(
            calling,
            RelayMsg::Calling {
                mode: CallMode::Standard,
                ..
            }
        ),
        "{calling:?}"
    );
    let id = call_id(&calling);
    for bob in [&mut bob1, &mut bob2] {
        until(bob, "incoming", |m| matches!(m, RelayMsg::Incoming { .. })).await;
    }
    bob1.send(&ClientMsg::Accept {
        call_id: id.clone(),
        commit: Some(commit()),
    })
    .await;
    until(&mut ann, "accepted", |m| {
        matches!(m, RelayMsg::Accepted { .. })
    })
    .await;
    let elsewhere = |peer: &str| RelayMsg::ElsewhereCall {
        call_id: id.clone(),
        peer: peer.into(),
        mode: CallMode::Standard,
    };
    // Every other device of theirs on the other node hears of the call: the
    // one that rang, the one that did not, and one that connects later.
    until(&mut bob2, "elsewhere-call (rang)", |m| *m == elsewhere(ANN)).await;
    until(&mut ann2, "elsewhere-call (caller's)", |m| {
        *m == elsewhere(BOB)
    })
    .await;
    let (mut bob3, _) = b.device(BOB).await;
    until(&mut bob3, "elsewhere-call (connected later)", |m| {
        *m == elsewhere(ANN)
    })
    .await;

    // Bob moves the call to his device on B.
    let other: Commitment = "11".repeat(32).parse().expect("commitment");
    bob2.send(&ClientMsg::MoveHere {
        call_id: id.clone(),
        commit: Some(other),
    })
    .await;
    let moved = RelayMsg::Hangup {
        call_id: id.clone(),
        reason: HangupReason::Moved,
    };
    assert_eq!(bob1.recv().await, moved);
    assert_eq!(bob1.recv().await, elsewhere(ANN));
    assert_eq!(
        ann.recv().await,
        RelayMsg::NewLeg {
            call_id: id.clone(),
            peer: BOB.into(),
            commit: other,
        }
    );
    // Ann's fresh offer reaches the device on B; the old one is unbound.
    let offer = ClientMsg::Offer {
        call_id: id.clone(),
        sdp: "v=0\r\n".into(),
    };
    ann.send(&offer).await;
    until(&mut bob2, "offer", |m| matches!(m, RelayMsg::Offer { .. })).await;
    bob1.send(&offer).await;
    assert_eq!(error_code(&bob1.recv().await), Some(ErrorCode::NotYourCall));

    // Ann moves her side to B too: both ends there, the call still A's.
    ann2.send(&ClientMsg::MoveHere {
        call_id: id.clone(),
        commit: Some(commit()),
    })
    .await;
    assert_eq!(ann.recv().await, moved);
    assert_eq!(ann.recv().await, elsewhere(BOB));
    let leg = until(&mut bob2, "new-leg", |m| {
        matches!(m, RelayMsg::NewLeg { .. })
    })
    .await;
    assert_eq!(
        leg,
        RelayMsg::NewLeg {
            call_id: id.clone(),
            peer: ANN.into(),
            commit: commit(),
        }
    );
    bob2.send(&offer).await;
    until(&mut ann2, "offer", |m| matches!(m, RelayMsg::Offer { .. })).await;

    // Bob hangs up on B: Ann's device there hears it; every other device
    // that knew of the call, on either node, hears that it is over.
    hangup_reaches(&mut bob2, &mut ann2, &id).await;
    let over = RelayMsg::ElsewhereEnded {
        call_id: id.clone(),
    };
    for d in [&mut bob1, &mut bob3, &mut ann] {
        until(d, "elsewhere-ended", |m| *m == over).await;
    }
    no_calls_left(&db).await;
}

/// Waits until `user` has a busy row (`true`) or none.
async fn busy_row(db: &str, user: &str, want: bool) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(db).await.expect("connect");
    for _ in 0..300 {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM cluster_busy WHERE user_name = $1")
            .bind(user)
            .fetch_one(&mut conn)
            .await
            .expect("count");
        if (n == 1) == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{user}: busy row should be there: {want}; {}",
        dump(db).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_parked_on_one_node_is_picked_up_through_the_other() {
    let (db, nats) = (new_database(), Nats::start(&[]));
    let (a, b) = two_nodes(&db, &nats).await;
    a.add_user(CAT, false).await;
    b.state.refresh().await.expect("refresh");
    // Bob on A (the call's home) calls Ann on B; a standard call.
    let (mut bob, _) = a.device(BOB).await;
    let (mut ann, _) = b.device(ANN).await;
    let (mut cat, _) = b.device(CAT).await;
    switch_off(&mut ann).await;
    let id = call_answered(&mut bob, &mut ann, ANN).await;

    // Bob parks it: he is free again for the whole cluster.
    bob.send(&ClientMsg::Park {
        call_id: id.clone(),
    })
    .await;
    let RelayMsg::Parked { code, .. } = bob.recv().await else {
        panic!("no parked")
    };
    let on_park = until(&mut ann, "on-park", |m| {
        matches!(m, RelayMsg::OnPark { .. })
    })
    .await;
    assert_eq!(
        on_park,
        RelayMsg::OnPark {
            call_id: id.clone(),
            code
        }
    );
    assert_eq!(table_rows(&db, "cluster_parked").await, 1);
    busy_row(&db, BOB, false).await;
    // So he can call Cat on B (before, his old row made him busy).
    bob.send(&ClientMsg::Invite {
        to: CAT.into(),
        transfer: None,
    })
    .await;
    let other = call_id(&bob.recv().await);
    until(
        &mut cat,
        "incoming",
        |m| matches!(m, RelayMsg::Incoming { call_id, .. } if *call_id == other),
    )
    .await;
    cat.send(&ClientMsg::Decline { call_id: other }).await;
    until(&mut bob, "declined", |m| {
        matches!(m, RelayMsg::CallRefused { .. })
    })
    .await;

    // Cat picks it up through node B: the pickup goes to A, whose hub
    // carries the call.
    let cat_commit: Commitment = "22".repeat(32).parse().expect("commitment");
    cat.send(&ClientMsg::Pickup {
        code,
        commit: Some(cat_commit),
    })
    .await;
    let picked = until(&mut cat, "picked-up", |m| {
        matches!(m, RelayMsg::PickedUp { .. })
    })
    .await;
    assert_eq!(
        picked,
        RelayMsg::PickedUp {
            call_id: id.clone(),
            code,
            peer: ANN.into(),
            mode: CallMode::Standard,
        }
    );
    let leg = until(&mut ann, "new-leg", |m| {
        matches!(m, RelayMsg::NewLeg { .. })
    })
    .await;
    assert_eq!(
        leg,
        RelayMsg::NewLeg {
            call_id: id.clone(),
            peer: CAT.into(),
            commit: cat_commit,
        }
    );
    // Cat is busy now; the code is given back.
    busy_row(&db, CAT, true).await;
    for _ in 0..300 {
        if table_rows(&db, "cluster_parked").await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        table_rows(&db, "cluster_parked").await,
        0,
        "code given back"
    );
    // Media messages follow: Ann's offer reaches Cat, both on B.
    offer_reaches(&mut ann, &mut cat, &id).await;
    // A second pickup of the code, through B: nothing is parked under it.
    bob.send(&ClientMsg::Pickup {
        code,
        commit: Some(commit()),
    })
    .await;
    let got = bob.recv().await;
    assert_eq!(error_code(&got), Some(ErrorCode::NotYourCall), "{got:?}");

    hangup_reaches(&mut cat, &mut ann, &id).await;
    no_calls_left(&db).await;
    busy_row(&db, CAT, false).await;
}

/// Two nodes on a fresh database (kept running by the second value), Bob's
/// device on node A, Ann's and Cat's on node B, both of their switches off,
/// and Bob's answered call with Ann, which node A carries. Every call among
/// the three is standard, as a consult transfer, an add and a merge need.
async fn three_on_two_nodes() -> (String, (Relay, Relay, Nats), Client, Client, Client, CallId) {
    let (db, nats) = (new_database(), Nats::start(&[]));
    let (a, b) = two_nodes(&db, &nats).await;
    a.add_user(CAT, false).await;
    b.state.refresh().await.expect("refresh");
    let (mut bob, _) = a.device(BOB).await;
    let (mut ann, _) = b.device(ANN).await;
    let (mut cat, _) = b.device(CAT).await;
    switch_off(&mut ann).await;
    switch_off(&mut cat).await;
    let held = call_answered(&mut bob, &mut ann, ANN).await;
    (db, (a, b, nats), bob, ann, cat, held)
}

/// Bob holds `held`, his call with Ann, and consults Cat, who accepts; the
/// consultation's id.
async fn consult_cat(
    bob: &mut Client,
    ann: &mut Client,
    cat: &mut Client,
    held: &CallId,
) -> CallId {
    bob.send(&ClientMsg::Hold {
        call_id: held.clone(),
        on: true,
    })
    .await;
    until(ann, "hold", |m| {
        matches!(m, RelayMsg::Hold { by_peer: true, .. })
    })
    .await;
    bob.send(&ClientMsg::Consult {
        call_id: held.clone(),
        to: CAT.into(),
    })
    .await;
    let calling = until(bob, "calling", |m| matches!(m, RelayMsg::Calling { .. })).await;
    let consulted = call_id(&calling);
    until(
        cat,
        "incoming",
        |m| matches!(m, RelayMsg::Incoming { call_id, .. } if *call_id == consulted),
    )
    .await;
    cat.send(&ClientMsg::Accept {
        call_id: consulted.clone(),
        commit: Some(commit()),
    })
    .await;
    until(bob, "accepted", |m| matches!(m, RelayMsg::Accepted { .. })).await;
    consulted
}

/// A consult transfer with its people on both nodes: Bob on node A (the
/// home of both calls) holds his call with Ann on node B, consults Cat on
/// node B, and joins the two. Cat's `join` reaches Ann across the bus; Bob,
/// who let go of a call that goes on, is free for the whole cluster, and
/// Cat, who joined it, is busy; the hang-up leaves no row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consult_transfer_joins_people_on_the_other_node() {
    let (db, _nodes, mut bob, mut ann, mut cat, held) = three_on_two_nodes().await;
    let consulted = consult_cat(&mut bob, &mut ann, &mut cat, &held).await;
    busy_row(&db, CAT, true).await;

    bob.send(&ClientMsg::ConsultTransfer {
        call_id: held.clone(),
        consult: consulted.clone(),
    })
    .await;
    let replaced = until(&mut cat, "replaced", |m| {
        matches!(m, RelayMsg::Replaced { .. })
    })
    .await;
    assert_eq!(
        replaced,
        RelayMsg::Replaced {
            call_id: consulted.clone(),
            join: held.clone(),
            peer: ANN.into(),
            by: BOB.into(),
            mode: CallMode::Standard,
        }
    );
    let cat_commit: Commitment = "33".repeat(32).parse().expect("commitment");
    cat.send(&ClientMsg::Join {
        call_id: held.clone(),
        commit: Some(cat_commit),
    })
    .await;
    let leg = until(&mut ann, "new-leg", |m| {
        matches!(m, RelayMsg::NewLeg { .. })
    })
    .await;
    assert_eq!(
        leg,
        RelayMsg::NewLeg {
            call_id: held.clone(),
            peer: CAT.into(),
            commit: cat_commit,
        }
    );
    // Bob is out of both calls: his row goes. Cat is in Ann's call now.
    busy_row(&db, BOB, false).await;
    busy_row(&db, CAT, true).await;
    // Media messages follow the new pair, across the bus.
    offer_reaches(&mut ann, &mut cat, &held).await;
    hangup_reaches(&mut ann, &mut cat, &held).await;
    no_calls_left(&db).await;
}

/// A group call with its people on both nodes: Bob on node A (the home)
/// adds Cat on node B to his call with Ann on node B. Cat rings with Ann
/// named, accepts, gets her leg with Ann and joins it; Ann gets `new-leg`;
/// the leg's offer crosses to A and back. Cat is busy for the whole cluster
/// while she is in, free once she leaves, and no row is left at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_on_the_other_node_is_added_to_a_call_and_leaves_it() {
    let (db, _nodes, mut bob, mut ann, mut cat, ab) = three_on_two_nodes().await;

    bob.send(&ClientMsg::Add {
        call_id: ab.clone(),
        to: CAT.into(),
    })
    .await;
    let calling = until(&mut bob, "calling", |m| {
        matches!(m, RelayMsg::Calling { .. })
    })
    .await;
    let bc = call_id(&calling);
    let incoming = until(&mut cat, "incoming", |m| {
        matches!(m, RelayMsg::Incoming { .. })
    })
    .await;
    assert_eq!(
        incoming,
        RelayMsg::Incoming {
            call_id: bc.clone(),
            from: BOB.into(),
            mode: CallMode::Standard,
            referred_by: None,
            group: vec![ANN.into()],
        }
    );
    cat.send(&ClientMsg::Accept {
        call_id: bc.clone(),
        commit: Some(commit()),
    })
    .await;
    let leg = until(&mut cat, "leg", |m| matches!(m, RelayMsg::Leg { .. })).await;
    let RelayMsg::Leg {
        call_id: ac, peer, ..
    } = leg
    else {
        unreachable!()
    };
    assert_eq!(peer, ANN);
    let cat_commit: Commitment = "44".repeat(32).parse().expect("commitment");
    cat.send(&ClientMsg::Join {
        call_id: ac.clone(),
        commit: Some(cat_commit),
    })
    .await;
    let new_leg = until(&mut ann, "new-leg", |m| {
        matches!(m, RelayMsg::NewLeg { .. })
    })
    .await;
    assert_eq!(
        new_leg,
        RelayMsg::NewLeg {
            call_id: ac.clone(),
            peer: CAT.into(),
            commit: cat_commit,
        }
    );
    offer_reaches(&mut ann, &mut cat, &ac).await;
    busy_row(&db, CAT, true).await;

    // Cat leaves: both her legs end, and Ann and Bob go on.
    for id in [&bc, &ac] {
        cat.send(&ClientMsg::Hangup {
            call_id: id.clone(),
            reason: HangupReason::Normal,
        })
        .await;
    }
    until(
        &mut ann,
        "the leg's hangup",
        |m| matches!(m, RelayMsg::Hangup { call_id, .. } if *call_id == ac),
    )
    .await;
    busy_row(&db, CAT, false).await;
    busy_row(&db, ANN, true).await;
    offer_reaches(&mut bob, &mut ann, &ab).await;
    hangup_reaches(&mut bob, &mut ann, &ab).await;
    no_calls_left(&db).await;
}

/// A merge with its people on both nodes: Bob on node A holds his call with
/// Ann on node B, consults Cat on node B, and merges the two calls. Both are
/// unheld, everyone hears who is in the call, and Cat gets her leg with Ann,
/// whose join reaches Ann across the bus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_makes_one_call_of_people_on_both_nodes() {
    let (db, _nodes, mut bob, mut ann, mut cat, held) = three_on_two_nodes().await;
    let consulted = consult_cat(&mut bob, &mut ann, &mut cat, &held).await;

    bob.send(&ClientMsg::Merge {
        call_id: held.clone(),
        consult: consulted.clone(),
    })
    .await;
    // Cat's leg with Ann comes before the news of who is in the call.
    let leg = until(&mut cat, "leg", |m| matches!(m, RelayMsg::Leg { .. })).await;
    let RelayMsg::Leg {
        call_id: ac, peer, ..
    } = leg
    else {
        unreachable!()
    };
    let everyone: Vec<String> = [ANN, BOB, CAT].map(String::from).to_vec();
    for (who, c) in [("Ann", &mut ann), ("Bob", &mut bob), ("Cat", &mut cat)] {
        let group = until(c, who, |m| matches!(m, RelayMsg::Group { .. })).await;
        assert_eq!(
            group,
            RelayMsg::Group {
                members: everyone.clone()
            },
            "{who}"
        );
    }
    assert_eq!(peer, ANN);
    cat.send(&ClientMsg::Join {
        call_id: ac.clone(),
        commit: Some(commit()),
    })
    .await;
    until(
        &mut ann,
        "new-leg",
        |m| matches!(m, RelayMsg::NewLeg { call_id, peer, .. } if *call_id == ac && peer == CAT),
    )
    .await;
    busy_row(&db, CAT, true).await;
    for (id, c) in [(&held, &mut bob), (&consulted, &mut cat), (&ac, &mut ann)] {
        c.send(&ClientMsg::Hangup {
            call_id: id.clone(),
            reason: HangupReason::Normal,
        })
        .await;
    }
    no_calls_left(&db).await;
}

/// A sign-in on node A or B; the HTTP status.
async fn sign_in(relay: &Relay, user: &str, password: &str) -> u16 {
    let body = serde_json::json!({"user": user, "password": password}).to_string();
    relay
        .http(
            "POST",
            "/api/login",
            &[
                ("Content-Type", "application/json"),
                ("Origin", &relay.origin()),
            ],
            &body,
        )
        .await
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_limits_count_across_nodes() {
    let (db, nats) = (new_database(), Nats::start(&[]));
    let (a, b) = two_nodes(&db, &nats).await;
    // Five wrong passwords for Ann through node A use up her allowance from
    // this address...
    for _ in 0..5 {
        assert_eq!(sign_in(&a, ANN, "wrong").await, 401);
    }
    // ... so node B makes the next attempt wait too, right password or not.
    assert_eq!(sign_in(&b, ANN, &format!("password-{ANN}")).await, 429);
    assert_eq!(sign_in(&a, ANN, "wrong").await, 429);
    // After the delay (1 s), the right password works on either node, and
    // clears her counts everywhere.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(sign_in(&b, ANN, &format!("password-{ANN}")).await, 200);
    for _ in 0..4 {
        assert_eq!(sign_in(&a, ANN, "wrong").await, 401);
    }
    assert_eq!(sign_in(&b, ANN, &format!("password-{ANN}")).await, 200);
}

/// Reads until `want`; fails on `forbid` before it.
async fn first_of(
    client: &mut Client,
    what: &str,
    want: impl Fn(&RelayMsg) -> bool,
    forbid: impl Fn(&RelayMsg) -> bool,
) -> RelayMsg {
    for _ in 0..50 {
        let Some(m) = client.try_recv_any(Duration::from_secs(5)).await else {
            panic!("{what}: nothing more came");
        };
        assert!(!forbid(&m), "{what}: {m:?} came first");
        if want(&m) {
            return m;
        }
    }
    panic!("{what}: not received");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_accepts_on_two_nodes_200_times() {
    let (db, nats) = (new_database(), Nats::start(&[]));
    let (a, b) = two_nodes(&db, &nats).await;
    let (mut ann, _) = a.device(ANN).await;
    let (mut bob_a, _) = a.device(BOB).await;
    let (mut bob_b, _) = b.device(BOB).await;
    let mut wins = [0; 2];
    for round in 0..200 {
        let id = call_id(&invite(&mut ann, BOB).await);
        for bob in [&mut bob_a, &mut bob_b] {
            until(bob, "incoming", |m| matches!(m, RelayMsg::Incoming { .. })).await;
        }
        // Bob's tabs on node A and node B accept at once.
        let accept = ClientMsg::Accept {
            call_id: id.clone(),
            commit: Some(commit()),
        };
        tokio::join!(bob_a.send(&accept), bob_b.send(&accept));
        until(&mut ann, "accepted", |m| {
            matches!(m, RelayMsg::Accepted { .. })
        })
        .await;
        // Each tab offers: only the bound one's reaches Ann; the other is
        // told it is not its call (or that it was answered elsewhere).
        for (i, bob) in [&mut bob_a, &mut bob_b].into_iter().enumerate() {
            bob.send(&ClientMsg::Offer {
                call_id: id.clone(),
                sdp: format!("v=0\r\ns={i}\r\n"),
            })
            .await;
        }
        let mut offer = None;
        while let Some(m) = ann.try_recv_any(Duration::from_secs(3)).await {
            if matches!(m, RelayMsg::Offer { .. }) {
                offer = Some(m);
                break;
            }
            eprintln!("round {round}: ann also got {m:?}");
        }
        let Some(offer) = offer else {
            for (n, bob) in [("bob_a", &mut bob_a), ("bob_b", &mut bob_b)] {
                while let Some(m) = bob.try_recv_any(Duration::from_millis(300)).await {
                    eprintln!("round {round}: {n} got {m:?}");
                }
            }
            panic!("round {round}: no offer reached Ann");
        };
        let RelayMsg::Offer { sdp, .. } = offer else {
            unreachable!()
        };
        let winner = if sdp.contains("s=0") { 0 } else { 1 };
        wins[winner] += 1;
        ann.send(&ClientMsg::Hangup {
            call_id: id.clone(),
            reason: HangupReason::Normal,
        })
        .await;
        // The bound tab hears the hang-up; Ann hears no second offer first.
        let bound = if winner == 0 { &mut bob_a } else { &mut bob_b };
        until(bound, "hang-up", |m| matches!(m, RelayMsg::Hangup { .. })).await;
        let late = ann.try_recv_any(Duration::from_millis(30)).await;
        assert!(
            !matches!(late, Some(RelayMsg::Offer { .. })),
            "round {round}: a second tab was bound: {late:?}"
        );
        no_calls_left(&db).await;
    }
    eprintln!(
        "first accepts won by the tab on node A {}, on node B {}",
        wins[0], wins[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accept_from_another_node_at_the_ring_deadline_or_the_timeout_never_both() {
    let (db, nats) = (new_database(), Nats::start(&[]));
    let ring = Duration::from_millis(60);
    let (a, b) = two_nodes_ringing(&db, &nats, ring).await;
    let (mut ann, _) = a.device(ANN).await;
    let (mut bob, _) = b.device(BOB).await;
    let (mut accepted, mut timed_out) = (0, 0);
    let no_answer = |m: &RelayMsg| {
        matches!(
            m,
            RelayMsg::CallRefused {
                reason: RefuseReason::NoAnswer,
                ..
            }
        )
    };
    for round in 0..200u64 {
        let id = call_id(&invite(&mut ann, BOB).await);
        until(&mut bob, "incoming", |m| {
            matches!(m, RelayMsg::Incoming { .. })
        })
        .await;
        // Around the deadline: a little before, at, or after it.
        tokio::time::sleep(Duration::from_millis(30 + round % 50)).await;
        bob.send(&ClientMsg::Accept {
            call_id: id.clone(),
            commit: Some(commit()),
        })
        .await;
        let outcome = until(&mut ann, "accepted or no answer", |m| {
            matches!(m, RelayMsg::Accepted { .. }) || no_answer(m)
        })
        .await;
        if matches!(outcome, RelayMsg::Accepted { .. }) {
            accepted += 1;
            ann.send(&ClientMsg::Hangup {
                call_id: id.clone(),
                reason: HangupReason::Normal,
            })
            .await;
            // Bob's call was not also cancelled.
            first_of(
                &mut bob,
                "hang-up",
                |m| matches!(m, RelayMsg::Hangup { .. }),
                |m| matches!(m, RelayMsg::Cancelled { .. }),
            )
            .await;
        } else {
            timed_out += 1;
            until(&mut bob, "cancelled", |m| {
                matches!(m, RelayMsg::Cancelled { .. })
            })
            .await;
            // His late accept is refused, and Ann hears nothing more of it.
            let late = ann.try_recv_any(Duration::from_millis(30)).await;
            assert!(
                !matches!(late, Some(RelayMsg::Accepted { .. })),
                "round {round}: accepted after the timeout"
            );
        }
        no_calls_left(&db).await;
    }
    eprintln!("accepted {accepted}, timed out {timed_out}");
    assert!(
        accepted > 0 && timed_out > 0,
        "the deadline was not straddled"
    );
}
