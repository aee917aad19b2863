//! What the relay acknowledged survives `kill -9`: the real binary, changes made
//! through the admin API, the process killed at once, the data read back.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;

fn http(
    port: u16,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Origin: http://127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(c) = cookie {
        req += &format!("Cookie: {c}\r\n");
    }
    req += "\r\n";
    req += body;
    s.write_all(req.as_bytes()).expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    let cookie = out
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap_or_default()
        .to_string();
    (status, cookie, out)
}

#[test]
fn acknowledged_changes_survive_kill_9() {
    let d = std::env::temp_dir().join(format!("shieldcall-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let mut child = common::shieldcall(&d)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("SHIELDCALL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut admin_pw = String::new();
    let port = loop {
        let line = lines.next().expect("a line").expect("utf-8");
        if line.trim_start().starts_with("admin@example.test") {
            admin_pw = line
                .split_whitespace()
                .nth(1)
                .expect("password")
                .to_string();
        }
        if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
            break rest.trim_end_matches('/').parse::<u16>().expect("port");
        }
    };
    let login = format!(r#"{{"user":"admin@example.test","password":"{admin_pw}"}}"#);
    let (status, cookie, _) = http(port, "POST", "/api/login", None, &login);
    assert_eq!(status, 200);
    let new = r#"{"Identity":"Tag:Kill","CallingEndtoEndEncryptionEnabledType":"Required"}"#;
    assert_eq!(
        http(port, "POST", "/api/admin/policies", Some(&cookie), new).0,
        201
    );
    let grant = r#"{"PolicyName":"Tag:Kill","User":"alice@example.test"}"#;
    assert_eq!(
        http(port, "POST", "/api/admin/grant", Some(&cookie), grant).0,
        204
    );
    // SIGKILL right after the acknowledgement: no shutdown code runs.
    child.kill().expect("kill -9");
    let _ = child.wait();

    let cli = |args: &[&str]| {
        let out = common::shieldcall(&d).args(args).output().expect("cli");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let eff = cli(&["policy", "effective", "--user", "alice@example.test"]);
    assert!(eff.contains("\"policy_identity\": \"Tag:Kill\""), "{eff}");
    let audit = cli(&["audit"]);
    assert!(
        audit.contains("\tadmin@example.test\tpolicy.new\tTag:Kill\t"),
        "{audit}"
    );
    assert!(
        audit.contains("\tadmin@example.test\tgrant\tuser:alice@example.test\t"),
        "{audit}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
