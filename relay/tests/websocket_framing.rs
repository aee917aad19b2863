//! The relay's own WebSocket server side, spoken to byte by byte over TCP: the
//! handshake, fragments and control frames, and each protocol violation answered
//! with the right close code while other connections carry on.

mod common;

use common::*;
use shieldcall_proto::{ClientMsg, ErrorCode, RelayMsg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A WebSocket client written from RFC 6455, with no library in between.
struct Raw {
    s: TcpStream,
    /// Bytes read past what was handled.
    buf: Vec<u8>,
}

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn handshake(relay: &Relay, cookie: &str, version: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nOrigin: {}\r\nCookie: {cookie}\r\n\
         Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: {version}\r\n\
         Sec-WebSocket-Key: {KEY}\r\n\r\n",
        relay.addr,
        relay.origin()
    )
}

/// A masked client frame.
fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x5a, 0x01, 0xc3, 0x7e];
    let mut out = vec![b0];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

impl Raw {
    async fn open(relay: &Relay, user: &str) -> Raw {
        let cookie = relay.cookie_for(user).await;
        let mut s = TcpStream::connect(relay.addr).await.expect("connect");
        s.set_nodelay(true).expect("nodelay");
        s.write_all(handshake(relay, &cookie, "13").as_bytes())
            .await
            .expect("write");
        let mut raw = Raw { s, buf: Vec::new() };
        let head = loop {
            if let Some(end) = raw.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(raw.buf.drain(..end + 4).collect()).expect("utf8");
                break head;
            }
            raw.fill().await;
        };
        let r = parse_response(head.as_bytes());
        assert_eq!(r.status, 101, "{head}");
        // RFC 6455, 1.3: the accept value for this key.
        assert_eq!(
            r.header("sec-websocket-accept"),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
        assert_eq!(r.header("sec-websocket-extensions"), None);
        raw
    }

    async fn fill(&mut self) -> usize {
        let mut chunk = [0; 4096];
        let n = tokio::time::timeout(WAIT, self.s.read(&mut chunk))
            .await
            .expect("data in time")
            .expect("read");
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.expect("write");
    }

    /// The next server frame: first byte and payload; `None` at end of stream.
    async fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.buf.len() >= 2 {
                assert_eq!(self.buf[1] & 0x80, 0, "server frames are unmasked");
                let (len, at) = match self.buf[1] {
                    126 if self.buf.len() >= 4 => (
                        usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])),
                        4,
                    ),
                    126 | 127 => (usize::MAX, 0),
                    n => (usize::from(n), 2),
                };
                if len != usize::MAX && self.buf.len() >= at + len {
                    let b0 = self.buf[0];
                    let payload = self.buf[at..at + len].to_vec();
                    self.buf.drain(..at + len);
                    return Some((b0, payload));
                }
            }
            if self.fill().await == 0 {
                return None;
            }
        }
    }

    /// The next text message, decoded.
    async fn msg(&mut self) -> RelayMsg {
        loop {
            let (b0, p) = self.frame().await.expect("a frame");
            if b0 == 0x81 {
                return RelayMsg::decode(std::str::from_utf8(&p).expect("utf8")).expect("decode");
            }
        }
    }

    /// The close code the relay closes with, skipping other frames.
    async fn close_code(&mut self) -> u16 {
        loop {
            match self.frame().await {
                Some((0x88, p)) => return u16::from_be_bytes([p[0], p[1]]),
                Some(_) => {}
                None => panic!("stream ended without a close frame"),
            }
        }
    }
}

fn hello() -> Vec<u8> {
    ClientMsg::Hello { version: 1 }.encode().into_bytes()
}

#[tokio::test]
async fn fragments_and_pings_between_them() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    let mut ann = Raw::open(&relay, "ann@a.test").await;
    let text = hello();
    let (a, b) = text.split_at(5);
    ann.send(&frame(0x01, a)).await;
    ann.send(&frame(0x89, b"still here")).await;
    ann.send(&frame(0x80, b)).await;
    assert_eq!(ann.frame().await, Some((0x8A, b"still here".to_vec())));
    assert!(matches!(ann.msg().await, RelayMsg::Welcome { .. }));
    // A clean close is echoed with the same code.
    ann.send(&frame(0x88, &[0x03, 0xE8])).await;
    assert_eq!(ann.close_code().await, 1000);
    relay.stop().await;
}

#[tokio::test]
async fn violations_close_with_their_codes_and_spare_others() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    relay.add_user("bob@a.test", false).await;
    let (mut bob, _) = relay.device("bob@a.test").await;

    let cases: [(&str, Vec<u8>, u16); 5] = [
        ("unmasked", vec![0x81, 0x02, b'h', b'i'], 1002),
        ("reserved bit", frame(0xC1, b"{}"), 1002),
        ("unknown opcode", frame(0x83, b""), 1002),
        ("continuation first", frame(0x80, b"{}"), 1002),
        ("text not UTF-8", frame(0x81, &[0xC3, 0x28]), 1007),
    ];
    for (what, bytes, want) in cases {
        let mut ann = Raw::open(&relay, "ann@a.test").await;
        ann.send(&frame(0x81, &hello())).await;
        assert!(
            matches!(ann.msg().await, RelayMsg::Welcome { .. }),
            "{what}"
        );
        ann.send(&bytes).await;
        assert_eq!(ann.close_code().await, want, "{what}");
    }
    bob.assert_alive(1).await;
    relay.stop().await;
}

#[tokio::test]
async fn an_oversize_message_is_refused_from_its_header() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    let mut ann = Raw::open(&relay, "ann@a.test").await;
    // The header of a 16 MiB text frame, and none of its payload.
    let mut header = vec![0x81, 0x80 | 127];
    header.extend_from_slice(&(16u64 << 20).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    ann.send(&header).await;
    let RelayMsg::Error { code, .. } = ann.msg().await else {
        panic!("error expected")
    };
    assert_eq!(code, ErrorCode::TooLarge);
    assert_eq!(ann.close_code().await, 1009);
    relay.stop().await;
}

#[tokio::test]
async fn binary_messages_get_an_error_and_the_connection_stays() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    let mut ann = Raw::open(&relay, "ann@a.test").await;
    ann.send(&frame(0x82, b"\x00\x01")).await;
    let RelayMsg::Error { code, .. } = ann.msg().await else {
        panic!("error expected")
    };
    assert_eq!(code, ErrorCode::BadMessage);
    ann.send(&frame(0x81, &hello())).await;
    assert!(matches!(ann.msg().await, RelayMsg::Welcome { .. }));
    relay.stop().await;
}

#[tokio::test]
async fn handshakes_the_relay_refuses() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    let cookie = relay.cookie_for("ann@a.test").await;
    let origin = relay.origin();
    let base = [
        ("Cookie", cookie.as_str()),
        ("Origin", origin.as_str()),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Key", KEY),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut h: Vec<(&str, &str)> = base.to_vec();
        h.extend_from_slice(extra);
        h
    };
    // `http` sends `Connection: close`, so the upgrade token is missing.
    let r = relay
        .http("GET", "/ws", &with(&[("Sec-WebSocket-Version", "13")]), "")
        .await;
    assert_eq!(r.status, 400);
    let bad_version = with(&[("Connection", "Upgrade"), ("Sec-WebSocket-Version", "8")]);
    let r = relay.http("GET", "/ws", &bad_version, "").await;
    assert_eq!(r.status, 426);
    assert_eq!(r.header("sec-websocket-version"), Some("13"));
    relay.stop().await;
}
