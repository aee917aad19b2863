use super::*;
use tokio::io::{AsyncReadExt, DuplexStream, duplex};

const MASK: [u8; 4] = [1, 2, 3, 4];

fn client_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    frame::client_frame(b0, payload, MASK)
}

fn pair(max: usize) -> (Socket<DuplexStream>, DuplexStream) {
    let (server, client) = duplex(64 * 1024);
    (Socket::new(server, max), client)
}

/// Reads one unmasked server frame: opcode bits and payload.
async fn server_frame(client: &mut DuplexStream) -> (u8, Vec<u8>) {
    let mut h = [0; 2];
    client.read_exact(&mut h).await.unwrap();
    assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
    let len = match h[1] {
        126 => usize::from(client.read_u16().await.unwrap()),
        127 => usize::try_from(client.read_u64().await.unwrap()).unwrap(),
        n => usize::from(n),
    };
    let mut p = vec![0; len];
    client.read_exact(&mut p).await.unwrap();
    (h[0], p)
}

#[tokio::test]
async fn text_ping_and_close() {
    let (mut sock, mut client) = pair(1024);
    client
        .write_all(&client_frame(0x81, b"hello"))
        .await
        .unwrap();
    client
        .write_all(&client_frame(0x89, b"are you there"))
        .await
        .unwrap();
    assert_eq!(sock.recv().await.unwrap(), Incoming::Text("hello".into()));
    let Incoming::Ping(p) = sock.recv().await.unwrap() else {
        panic!("ping expected")
    };
    sock.pong(&p).await.unwrap();
    assert_eq!(
        server_frame(&mut client).await,
        (0x8A, b"are you there".to_vec())
    );
    sock.send_text("welcome").await.unwrap();
    assert_eq!(server_frame(&mut client).await, (0x81, b"welcome".to_vec()));
    // The client closes with 1001; the server echoes it and stops.
    client
        .write_all(&client_frame(0x88, &frame::close_payload(1001, "bye")))
        .await
        .unwrap();
    client.shutdown().await.unwrap();
    assert_eq!(sock.recv().await.unwrap(), Incoming::Close(1001));
    sock.close(1001, "").await;
    assert_eq!(server_frame(&mut client).await, (0x88, vec![0x03, 0xE9]));
    assert!(sock.send_text("late").await.is_err());
}

#[tokio::test]
async fn a_frame_in_single_bytes_and_nothing_kept_afterwards() {
    let (mut sock, mut client) = pair(100_000);
    let text = "x".repeat(70_000);
    let bytes = client_frame(0x81, text.as_bytes());
    let writer = tokio::spawn(async move {
        for b in &bytes[..20] {
            client.write_all(std::slice::from_ref(b)).await.unwrap();
            tokio::task::yield_now().await;
        }
        client.write_all(&bytes[20..]).await.unwrap();
        client
    });
    assert_eq!(sock.recv().await.unwrap(), Incoming::Text(text));
    assert_eq!(sock.pending.capacity(), 0, "an idle socket holds no buffer");
    drop(writer.await);
}

#[tokio::test]
async fn two_frames_in_one_read() {
    let (mut sock, mut client) = pair(1024);
    let mut bytes = client_frame(0x81, b"one");
    bytes.extend(client_frame(0x81, b"two"));
    client.write_all(&bytes).await.unwrap();
    assert_eq!(sock.recv().await.unwrap(), Incoming::Text("one".into()));
    assert_eq!(sock.recv().await.unwrap(), Incoming::Text("two".into()));
    assert_eq!(sock.pending.capacity(), 0);
}

#[tokio::test]
async fn oversize_is_refused_from_the_header_alone() {
    let (mut sock, mut client) = pair(64 * 1024);
    // Only the header of a 1 MiB frame is ever sent.
    let header = &client_frame(0x81, &vec![b'a'; 1 << 20])[..14];
    client.write_all(header).await.unwrap();
    match sock.recv().await {
        Err(SocketError::Protocol(ProtocolError::TooLarge(n))) => assert_eq!(n, 1 << 20),
        other => panic!("{other:?}"),
    }
    assert!(sock.pending.capacity() < 1024);
}

#[tokio::test]
async fn an_announced_frame_holds_only_what_arrived() {
    let (mut sock, mut client) = pair(64 * 1024);
    let frame = client_frame(0x81, &vec![b'a'; 60 * 1024]);
    client.write_all(&frame[..20]).await.unwrap();
    let waited = tokio::time::timeout(std::time::Duration::from_millis(50), sock.recv()).await;
    assert!(waited.is_err(), "the frame is not complete");
    assert!(
        sock.pending.capacity() < 1024,
        "{}",
        sock.pending.capacity()
    );
    client.write_all(&frame[20..]).await.unwrap();
    assert_eq!(
        sock.recv().await.unwrap(),
        Incoming::Text("a".repeat(60 * 1024))
    );
}

#[tokio::test]
async fn an_unmasked_frame_is_a_protocol_error() {
    let (mut sock, mut client) = pair(1024);
    client
        .write_all(&frame::encode(OpCode::Text, b"hi"))
        .await
        .unwrap();
    assert!(matches!(
        sock.recv().await,
        Err(SocketError::Protocol(ProtocolError::Unmasked))
    ));
}

#[tokio::test]
async fn the_stream_ending_is_a_close() {
    let (mut sock, client) = pair(1024);
    drop(client);
    assert_eq!(sock.recv().await.unwrap(), Incoming::Closed);
}

#[tokio::test]
async fn close_delivers_what_was_sent_before_it() {
    let (mut sock, mut client) = pair(1024);
    // The peer is in the middle of sending something we will never read.
    client.write_all(&[0x81, 0xFE, 0xFF]).await.unwrap();
    sock.send_text("{\"type\":\"error\"}").await.unwrap();
    let peer = tokio::spawn(async move {
        let first = server_frame(&mut client).await;
        let second = server_frame(&mut client).await;
        // The client answers the close and ends the stream, which ends the linger.
        client
            .write_all(&client_frame(0x88, &[0x03, 0xF1]))
            .await
            .unwrap();
        drop(client);
        (first, second)
    });
    sock.close(frame::close_code::TOO_BIG, "too large").await;
    let (first, second) = peer.await.unwrap();
    assert_eq!(first, (0x81, b"{\"type\":\"error\"}".to_vec()));
    assert_eq!(second.0, 0x88);
    assert_eq!(second.1[..2], 1009u16.to_be_bytes());
}

#[test]
fn accept_key_from_rfc_6455() {
    // RFC 6455, 1.3.
    assert_eq!(
        accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

/// A header set to a value, or removed (`None`).
type Change<'a> = (&'a str, Option<&'a str>);

/// `check_handshake` on a valid browser upgrade request with `changes` applied.
fn handshake_with(method: &str, changes: &[Change<'_>]) -> Result<String, UpgradeRejection> {
    let mut b = axum::http::Request::builder().method(method).uri("/ws");
    let headers = b.headers_mut().expect("builder");
    for (name, value) in [
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "WebSocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    for (name, value) in changes {
        let name = header::HeaderName::from_bytes(name.as_bytes()).expect("name");
        match value {
            Some(v) => headers.insert(name, HeaderValue::from_str(v).expect("value")),
            None => headers.remove(name),
        };
    }
    let (parts, ()) = b.body(()).expect("request").into_parts();
    check_handshake(&parts).map(|v| v.to_str().expect("ascii").to_string())
}

#[test]
fn handshake_rules() {
    use UpgradeRejection::{BadRequest, Version};
    assert_eq!(
        handshake_with("GET", &[]).as_deref(),
        Ok("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    let refused: [(&str, &[Change<'_>], bool); 6] = [
        ("POST", &[], true),
        ("GET", &[("upgrade", None)], true),
        ("GET", &[("connection", Some("upgraded"))], true),
        ("GET", &[("sec-websocket-key", None)], true),
        ("GET", &[("sec-websocket-key", Some("c2hvcnQ="))], true),
        ("GET", &[("sec-websocket-version", Some("8"))], false),
    ];
    for (method, changes, bad_request) in refused {
        let got = handshake_with(method, changes);
        if bad_request {
            assert!(
                matches!(got, Err(BadRequest(_))),
                "{method} {changes:?}: {got:?}"
            );
        } else {
            assert_eq!(got, Err(Version), "{method} {changes:?}");
        }
    }
}

/// Every idle connection holds one pending `recv`; the close and its linger stay
/// out of it (boxed), so it is a few words of state, not hundreds of bytes.
#[test]
fn a_waiting_recv_is_small() {
    let (mut sock, _client) = pair(10);
    let size = std::mem::size_of_val(&sock.recv());
    assert!(size <= 256, "recv future is {size} bytes");
}
