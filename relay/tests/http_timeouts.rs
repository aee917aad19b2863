//! A client that connects and sends nothing, trickles its headers, or keeps an
//! idle keep-alive connection does not hold a connection for ever: the relay
//! closes it after `http_header_timeout`, while normal requests are served.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(1);

/// Reads until the relay closes the connection; how long that took.
async fn closed_after(s: &mut TcpStream, start: Instant) -> Duration {
    let mut sink = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut sink))
        .await
        .expect("the relay closes the connection")
        .ok();
    start.elapsed()
}

#[tokio::test]
async fn silent_slow_and_idle_connections_are_closed() {
    let relay = start_with(temp_dir(), |c| c.http_header_timeout = TIMEOUT).await;

    // Connects and says nothing.
    let t = Instant::now();
    let mut silent = TcpStream::connect(relay.addr).await.expect("connect");
    let waited = closed_after(&mut silent, t).await;
    assert!(waited >= TIMEOUT - Duration::from_millis(100), "{waited:?}");

    // Sends half a request line and stalls.
    let t = Instant::now();
    let mut slow = TcpStream::connect(relay.addr).await.expect("connect");
    slow.write_all(b"GET /api/me HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    closed_after(&mut slow, t).await;

    // A whole request on a keep-alive connection is answered; the connection
    // is then closed once it has been idle for the timeout.
    let mut idle = TcpStream::connect(relay.addr).await.expect("connect");
    idle.write_all(b"GET /api/me HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let t = Instant::now();
    let mut head = [0; 12];
    idle.read_exact(&mut head).await.expect("response");
    assert_eq!(&head, b"HTTP/1.1 401");
    closed_after(&mut idle, t).await;

    // Meanwhile the relay serves others as usual.
    relay.add_user("ann@a.test", false).await;
    let (mut ann, _) = relay.device("ann@a.test").await;
    ann.assert_alive(1).await;
    relay.stop().await;
}

/// A request whose body never finishes is answered `408` after
/// `http_request_timeout`, and the connection is closed.
#[tokio::test]
async fn a_request_body_that_never_finishes_gets_408() {
    let relay = start_with(temp_dir(), |c| {
        c.http_request_timeout = Duration::from_millis(500)
    })
    .await;
    let mut s = TcpStream::connect(relay.addr).await.expect("connect");
    s.write_all(
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user\":",
    )
    .await
    .expect("write");
    let t = Instant::now();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .expect("answered and closed")
        .ok();
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    assert!(
        raw.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    relay.stop().await;
}

/// Connections beyond the per-address cap are closed at once; a WebSocket counts
/// for as long as it is open, and its place is free again when it closes.
#[tokio::test]
async fn connections_beyond_the_per_address_cap_are_closed() {
    let relay = start_with(temp_dir(), |c| c.max_connections_per_address = 2).await;
    relay.add_user("ann@a.test", false).await;
    let (mut ws, _) = relay.device("ann@a.test").await;
    let _idle = TcpStream::connect(relay.addr).await.expect("connect");
    let t = Instant::now();
    let mut third = TcpStream::connect(relay.addr).await.expect("connect");
    let waited = closed_after(&mut third, t).await;
    assert!(
        waited < Duration::from_secs(2),
        "closed at once, took {waited:?}"
    );
    ws.assert_alive(1).await;
    drop(ws);
    // The WebSocket's place comes back once its close is done.
    let deadline = Instant::now() + WAIT;
    loop {
        let mut s = TcpStream::connect(relay.addr).await.expect("connect");
        s.write_all(b"GET /api/me HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut head = [0; 12];
        if s.read_exact(&mut head).await.is_ok() {
            assert_eq!(&head, b"HTTP/1.1 401");
            break;
        }
        assert!(Instant::now() < deadline, "the place never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    relay.stop().await;
}
