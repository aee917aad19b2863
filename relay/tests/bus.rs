//! The bus client against a real `nats-server` (Debian's, which `cargo xtask
//! test` installs and names in `SHIELDCALL_TEST_NATS_SERVER`): messages in
//! order and intact (to a queue or to a handler), subscriptions in place
//! after `flush` and gone after a drop, the server's
//! payload limit, refusals, and a server restart repaired by reconnecting
//! with every subscription renewed.

mod common;

use std::time::{Duration, Instant};

use common::nats::{Nats, free_port};
use shieldcall_relay::bus::{Bus, BusError, Message};

async fn next(sub: &mut shieldcall_relay::bus::Subscription) -> Message {
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("a message in time")
        .expect("the subscription is open")
}

/// `n` binary payloads, numbered, CRLF inside included, of up to 4 KB (the
/// `i`th one `i * step` bytes long, modulo 4 KB).
fn payloads(n: u32, step: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut p = format!("#{i}\r\n").into_bytes();
            p.extend((0..(i * step) % 4096).map(|j| (j % 251) as u8));
            p
        })
        .collect()
}

#[tokio::test]
async fn messages_arrive_in_order_and_intact() {
    let nats = Nats::start(&[]);
    let a = Bus::connect(&nats.url(), "node-a").await.unwrap();
    let b = Bus::connect(&nats.url(), "node-b").await.unwrap();
    let mut to_b = b.subscribe("sc.node.b").await.unwrap();
    let mut users = b.subscribe("sc.user.*").await.unwrap();
    b.flush().await.unwrap();
    let payloads = payloads(1000, 4);
    // One at a time, and the second half in batches of up to 7.
    for p in &payloads[..500] {
        a.publish("sc.node.b", p).unwrap();
    }
    for batch in payloads[500..].chunks(7) {
        a.publish_all("sc.node.b", batch).unwrap();
    }
    a.publish("sc.user.616c696365", b"hint").unwrap();
    a.publish("sc.node.c", b"not for b").unwrap();
    a.publish("sc.node.b", Vec::new()).unwrap();
    for p in &payloads {
        let m = next(&mut to_b).await;
        assert_eq!(m.subject, "sc.node.b");
        assert_eq!(&m.payload, p);
    }
    assert_eq!(next(&mut to_b).await.payload, b"");
    let hint = next(&mut users).await;
    assert_eq!(
        (hint.subject.as_str(), hint.payload.as_slice()),
        ("sc.user.616c696365", &b"hint"[..])
    );
    assert_eq!(b.dropped(), 0);
}

/// Publishers on several threads at once while the server reads nothing
/// (stopped), so that the socket fills: writes are cut short or refused and
/// the rest waits for the writing task. Once the server goes on, each
/// publisher's messages arrive whole and in its order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_on_several_threads_keep_their_order_when_the_socket_is_full() {
    const PUBLISHERS: u32 = 4;
    const EACH: u32 = 300;
    let nats = Nats::start(&[]);
    let a = Bus::connect(&nats.url(), "node-a").await.unwrap();
    let b = Bus::connect(&nats.url(), "node-b").await.unwrap();
    let mut sub = b.subscribe("sc.node.b").await.unwrap();
    b.flush().await.unwrap();
    // 16 KB and more each, 19 MB in all: more than a loopback socket's
    // buffers hold.
    let body = |p: u32, i: u32| {
        let mut m = format!("{p}:{i}:").into_bytes();
        m.extend((0..16_384 + i * 7).map(|j| ((j + p * 31 + i) % 251) as u8));
        m
    };
    nats.pause(true);
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let a = a.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    a.publish("sc.node.b", body(p, i)).unwrap();
                    if i % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for t in publishers {
        t.await.unwrap();
    }
    nats.pause(false);
    let mut seen = vec![0u32; PUBLISHERS as usize];
    for _ in 0..PUBLISHERS * EACH {
        let m = next(&mut sub).await.payload;
        let text = String::from_utf8_lossy(&m[..m.len().min(16)]).into_owned();
        let mut head = text.splitn(3, ':');
        let p: u32 = head.next().unwrap().parse().unwrap();
        let i: u32 = head.next().unwrap().parse().unwrap();
        assert_eq!(i, seen[p as usize], "publisher {p}'s messages out of order");
        assert!(m == body(p, i), "message {i} of publisher {p} not intact");
        seen[p as usize] += 1;
    }
    assert_eq!(seen, vec![EACH; PUBLISHERS as usize]);
    assert_eq!(b.dropped(), 0);
}

#[tokio::test]
async fn a_node_does_not_hear_itself_and_unsubscribes_on_drop() {
    let nats = Nats::start(&[]);
    let a = Bus::connect(&nats.url(), "node-a").await.unwrap();
    let b = Bus::connect(&nats.url(), "node-b").await.unwrap();
    let mut mine = a.subscribe("sc.all").await.unwrap();
    let theirs = b.subscribe("sc.all").await.unwrap();
    a.flush().await.unwrap();
    b.flush().await.unwrap();
    a.publish("sc.all", b"from a").unwrap();
    drop(theirs);
    b.flush().await.unwrap();
    b.publish("sc.all", b"from b").unwrap();
    // `a` hears `b`, not itself; the first message it gets is b's.
    assert_eq!(next(&mut mine).await.payload, b"from b");
}

#[tokio::test]
async fn a_handled_subscription_gets_every_message_in_order_until_dropped() {
    let nats = Nats::start(&[]);
    let a = Bus::connect(&nats.url(), "node-a").await.unwrap();
    let b = Bus::connect(&nats.url(), "node-b").await.unwrap();
    // The handler runs on the bus's reading task: it only passes each
    // message on, as the relay's handler only queues or delivers.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let handled = b
        .subscribe_with("sc.node.b", move |m| {
            let _ = tx.send(m);
        })
        .await
        .unwrap();
    // A queued subscription beside it, on a subject it also matches.
    let mut queued = b.subscribe("sc.node.*").await.unwrap();
    b.flush().await.unwrap();
    let payloads = payloads(500, 8);
    for p in &payloads {
        a.publish("sc.node.b", p).unwrap();
    }
    for p in &payloads {
        let m = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("in time")
            .expect("open");
        assert_eq!((m.subject.as_str(), &m.payload), ("sc.node.b", p));
        assert_eq!(&next(&mut queued).await.payload, p);
    }
    // Dropped: the server is told, and the handler hears nothing more.
    drop(handled);
    b.flush().await.unwrap();
    a.publish("sc.node.b", b"after").unwrap();
    assert_eq!(next(&mut queued).await.payload, b"after");
    assert!(
        rx.try_recv().is_err(),
        "the handler was called after its drop"
    );
    assert_eq!(b.dropped(), 0);
}

#[tokio::test]
async fn payloads_beyond_the_servers_limit_are_refused() {
    let dir = tempdir();
    let conf = dir.join("nats.conf");
    std::fs::write(&conf, "max_payload: 4096\n").unwrap();
    let nats = Nats::start(&["-c", conf.to_str().unwrap()]);
    let a = Bus::connect(&nats.url(), "node-a").await.unwrap();
    let b = Bus::connect(&nats.url(), "node-b").await.unwrap();
    let mut sub = b.subscribe("big").await.unwrap();
    b.flush().await.unwrap();
    match a.publish("big", vec![7; 4097]) {
        Err(BusError::TooLarge {
            size: 4097,
            max: 4096,
        }) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // Several at once: all or none.
    assert!(matches!(
        a.publish_all("big", [vec![1; 10], vec![7; 4097]]),
        Err(BusError::TooLarge { size: 4097, .. })
    ));
    a.publish("big", vec![7; 4096]).unwrap();
    assert_eq!(next(&mut sub).await.payload.len(), 4096);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn wrong_servers_and_credentials_are_refused_at_once() {
    // Nothing listening.
    let port = free_port();
    let e = Bus::connect(&format!("nats://127.0.0.1:{port}"), "n")
        .await
        .unwrap_err();
    assert!(matches!(e, BusError::Connect { .. }), "{e}");
    // Something that is not NATS.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        if let Ok((mut s, _)) = l.accept().await {
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let e = Bus::connect(&format!("nats://{addr}"), "n")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not a NATS server"), "{e}");
    // A server that wants a token.
    let nats = Nats::start(&["--auth", "s3cret-token"]);
    let e = Bus::connect(&format!("nats://wrong@127.0.0.1:{}", nats.port), "n")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("refused"), "{e}");
    assert!(
        !e.to_string().contains("wrong"),
        "the token stays out of the error: {e}"
    );
    let ok = Bus::connect(&format!("nats://s3cret-token@127.0.0.1:{}", nats.port), "n").await;
    assert!(ok.is_ok(), "{:?}", ok.err());
    // Not a nats:// URL.
    assert!(matches!(
        Bus::connect("tls://127.0.0.1:4222", "n").await,
        Err(BusError::Url(_))
    ));
}

#[tokio::test]
async fn a_restarted_server_is_reconnected_with_subscriptions_renewed() {
    let mut nats = Nats::start(&[]);
    let a = Bus::connect(&nats.url(), "node-a").await.unwrap();
    let b = Bus::connect(&nats.url(), "node-b").await.unwrap();
    let mut sub = b.subscribe("sc.node.b").await.unwrap();
    b.flush().await.unwrap();
    a.publish("sc.node.b", b"before").unwrap();
    assert_eq!(next(&mut sub).await.payload, b"before");

    nats.stop();
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.connected() || b.connected() {
        assert!(Instant::now() < deadline, "the loss was not noticed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Published while down: queued, not an error.
    a.publish("sc.node.b", b"while down").unwrap();

    nats.run();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(a.connected() && b.connected()) {
        assert!(Instant::now() < deadline, "no reconnect");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(a.reconnects() >= 1 && b.reconnects() >= 1);
    b.flush().await.unwrap();
    a.publish("sc.node.b", b"after").unwrap();
    // "while down" may be lost (at most once: it left before b resubscribed)
    // or arrive first; "after" arrives either way.
    let mut got = next(&mut sub).await.payload;
    if got == b"while down" {
        got = next(&mut sub).await.payload;
    }
    assert_eq!(got, b"after");
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "shieldcall-bus-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&d).expect("a temporary directory");
    d
}
