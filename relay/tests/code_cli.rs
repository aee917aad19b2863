//! `shieldcall code` as a tester runs it: the real binary, real files.

use std::process::Command;

const F1: &str = "00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F";
const F2: &str = "20:21:22:23:24:25:26:27:28:29:2A:2B:2C:2D:2E:2F:30:31:32:33:34:35:36:37:38:39:3A:3B:3C:3D:3E:3F";

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shieldcall"))
        .arg("code")
        .args(args)
        .output()
        .expect("run shieldcall");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sdp(fp_lines: &[&str]) -> String {
    let mut s = String::from("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
    for (i, l) in fp_lines.iter().enumerate() {
        s +=
            &format!("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:{i}\r\n{l}\r\n");
    }
    s
}

#[test]
fn prints_the_code_for_fingerprints_in_either_case() {
    let (ok, out, _) = run(&[F1, &F2.to_lowercase()]);
    assert!(ok);
    assert_eq!(out, "11641 59886 82465 52428\n");
    let (ok, out, _) = run(&[F2, F1]);
    assert!(ok);
    assert_eq!(out, "11641 59886 82465 52428\n");
}

#[test]
fn reads_two_sdp_files() {
    let dir = std::env::temp_dir().join(format!("shieldcall-code-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let a = dir.join("a.sdp");
    let b = dir.join("b.sdp");
    std::fs::write(
        &a,
        sdp(&[
            &format!("a=fingerprint:sha-256 {F1}"),
            &format!("a=fingerprint:SHA-256 {F1}"),
        ]),
    )
    .expect("write");
    std::fs::write(&b, sdp(&[&format!("a=fingerprint:sha-256 {F2}")])).expect("write");
    let (ok, out, err) = run(&[
        "--sdp",
        a.to_str().expect("utf8"),
        b.to_str().expect("utf8"),
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "11641 59886 82465 52428\n");

    std::fs::write(
        &b,
        sdp(&[
            &format!("a=fingerprint:sha-256 {F2}"),
            &format!("a=fingerprint:sha-256 {F1}"),
        ]),
    )
    .expect("write");
    let (ok, out, err) = run(&[
        "--sdp",
        a.to_str().expect("utf8"),
        b.to_str().expect("utf8"),
    ]);
    assert!(!ok);
    assert!(out.is_empty());
    assert!(err.contains("conflicting"), "{err}");
    assert_eq!(err.lines().count(), 1);

    std::fs::write(
        &b,
        sdp(&["a=fingerprint:sha-1 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB"]),
    )
    .expect("write");
    let (ok, _, err) = run(&[
        "--sdp",
        a.to_str().expect("utf8"),
        b.to_str().expect("utf8"),
    ]);
    assert!(!ok);
    assert!(err.contains("unsupported"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refuses_bad_input_with_one_line() {
    let short = &F1[..F1.len() - 3];
    let nonhex = F1.replacen("0A", "0G", 1);
    let sha1 = format!("sha-1 {F1}");
    for args in [[F1, F1], [short, F2], [&nonhex, F2], [&sha1, F2]] {
        let (ok, out, err) = run(&args);
        assert!(!ok, "{args:?}");
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("shieldcall code: "), "{err}");
    }
}
