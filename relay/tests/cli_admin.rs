//! The admin command line as an operator runs it: the real binary, a real data
//! directory, passwords on standard input; and `serve` from start to SIGTERM.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

fn dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "shieldcall-cli-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn run(data: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = common::shieldcall(data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn users_groups_and_policies_like_the_teams_cmdlets() {
    let d = dir();
    let ok = |args: &[&str], stdin: &str| {
        let (ok, out, err) = run(&d, args, stdin);
        assert!(ok, "{args:?}: {err}");
        out
    };
    ok(
        &["user", "add", "adm@x.test", "--password-stdin", "--admin"],
        "supersecret\n",
    );
    ok(
        &["user", "add", "Bob@X.test", "--password-stdin"],
        "supersecret\n",
    );
    let (dup, _, err) = run(
        &d,
        &["user", "add", "bob@x.test", "--password-stdin"],
        "supersecret\n",
    );
    assert!(!dup && err.contains("already exists"), "{err}");
    let (short, _, err) = run(
        &d,
        &["user", "add", "cid@x.test", "--password-stdin"],
        "short\n",
    );
    assert!(!short && err.contains("at least 8"), "{err}");
    ok(
        &["user", "passwd", "bob@x.test", "--password-stdin"],
        "anothersecret\n",
    );

    // Display names: set with `user add --name` or `user name`, normalised,
    // listed, and refused with a bidirectional override (it could make one
    // name read as another).
    ok(
        &[
            "user",
            "add",
            "dee@x.test",
            "--password-stdin",
            "--name",
            "  Dee   Example ",
        ],
        "supersecret\n",
    );
    let out = ok(&["user", "name", "bob@x.test", "Bob Builder"], "");
    assert!(out.contains("\"Bob Builder\""), "{out}");
    let (bidi, _, err) = run(&d, &["user", "name", "bob@x.test", "Bob\u{202e}evil"], "");
    assert!(!bidi && err.contains("U+202E"), "{err}");
    let (long, _, err) = run(&d, &["user", "name", "bob@x.test", &"n".repeat(65)], "");
    assert!(!long && err.contains("at most 64"), "{err}");
    let list = ok(&["user", "list"], "");
    assert!(
        list.contains("name=Dee Example") && list.contains("name=Bob Builder"),
        "{list}"
    );
    let out = ok(&["user", "name", "dee@x.test", ""], "");
    assert!(out.contains("has no display name"), "{out}");
    let list = ok(&["user", "list"], "");
    assert!(!list.contains("name=Dee"), "{list}");

    ok(&["group", "add", "eng"], "");
    ok(&["group", "member", "add", "eng", "bob@x.test"], "");
    let out = ok(
        &[
            "policy",
            "new",
            "--identity",
            "Tag:Eng",
            "--description",
            "engineers",
            "--calling-e2ee",
            "Required",
        ],
        "",
    );
    assert!(
        out.contains("CallingEndtoEndEncryptionEnabledType  : Required"),
        "{out}"
    );
    ok(
        &[
            "policy",
            "grant",
            "--policy-name",
            "Tag:Eng",
            "--group",
            "eng",
            "--rank",
            "1",
        ],
        "",
    );
    let eff = ok(&["policy", "effective", "--user", "bob@x.test"], "");
    assert!(
        eff.contains("\"policy_identity\": \"Tag:Eng\"") && eff.contains("\"group\": \"eng\""),
        "{eff}"
    );
    ok(
        &[
            "policy",
            "set",
            "--identity",
            "Tag:Eng",
            "--calling-e2ee",
            "DisabledUserOverride",
        ],
        "",
    );
    let get = ok(&["policy", "get", "--identity", "Tag:Eng"], "");
    assert!(
        get.contains("DisabledUserOverride") && get.contains("engineers"),
        "{get}"
    );
    ok(
        &["policy", "grant", "--policy-name", "", "--group", "eng"],
        "",
    );
    let eff = ok(&["policy", "effective", "--user", "bob@x.test"], "");
    assert!(eff.contains("\"policy_identity\": \"Global\""), "{eff}");
    ok(
        &["policy", "grant", "--policy-name", "Tag:Eng", "--global"],
        "",
    );
    ok(
        &[
            "policy",
            "grant",
            "--policy-name",
            "Tag:Eng",
            "--user",
            "adm@x.test",
        ],
        "",
    );
    // The admin API's rule: a rank goes with a group only, and a target is
    // named (two targets at once are refused by the flags themselves).
    for bad in [
        &["--user", "adm@x.test", "--rank", "2"][..],
        &["--global", "--rank", "2"],
        &[],
    ] {
        let args: Vec<&str> = ["policy", "grant", "--policy-name", "Tag:Eng"]
            .into_iter()
            .chain(bad.iter().copied())
            .collect();
        let (done, _, err) = run(&d, &args, "");
        assert!(
            !done && err.contains("give exactly one of --user, --group [--rank N] or --global"),
            "{bad:?}: {err}"
        );
    }
    let (no, _, err) = run(&d, &["policy", "remove", "--identity", "Global"], "");
    assert!(
        !no && err.contains("Global policy cannot be removed"),
        "{err}"
    );
    ok(&["policy", "remove", "--identity", "Tag:Eng"], "");
    let eff = ok(&["policy", "effective", "--user", "adm@x.test"], "");
    assert!(
        eff.contains("\"policy_identity\": \"Global\""),
        "removal drops assignments: {eff}"
    );
    ok(
        &[
            "tenant",
            "external-access",
            "x.test",
            "--mode",
            "allow-list",
            "--allow",
            "y.test",
        ],
        "",
    );
    ok(&["group", "member", "remove", "eng", "bob@x.test"], "");
    ok(&["group", "remove", "eng"], "");
    ok(&["user", "remove", "bob@x.test"], "");
    let audit = ok(&["audit", "--limit", "100"], "");
    for action in [
        "user.add",
        "user.passwd",
        "user.name",
        "group.add",
        "policy.new",
        "policy.set",
        "grant",
        "policy.remove",
        "external-access",
        "user.remove",
    ] {
        assert!(
            audit.contains(&format!("\tcli\t{action}\t")),
            "{action} in {audit}"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn tls_flags_with_missing_files_fail_clearly() {
    // Built-in TLS is tested in tls.rs; here only the one-line error.
    let d = dir();
    let (ok, _, err) = run(
        &d,
        &["serve", "--tls-cert", "c.pem", "--tls-key", "k.pem"],
        "",
    );
    assert!(!ok && err.contains("TLS certificate c.pem"), "{err}");
}

#[test]
fn serve_creates_the_demo_tenant_and_stops_on_sigterm() {
    let d = dir();
    let mut child = common::shieldcall(&d)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("SHIELDCALL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut users = Vec::new();
    loop {
        let line = lines.next().expect("a line").expect("utf-8");
        if line.contains("is running at") {
            break;
        }
        if line.starts_with("  ") {
            users.push(
                line.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    assert_eq!(
        users,
        [
            "admin@example.test",
            "alice@example.test",
            "bob@example.test"
        ]
    );
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = child.wait().expect("wait");
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    // A second start keeps the users and creates nothing new.
    let (ok, out, _) = run(&d, &["user", "list"], "");
    assert!(ok && out.lines().count() == 3, "{out}");
}

#[test]
fn serve_reads_a_toml_file_and_environment() {
    let d = dir();
    let cfg = d.join("relay.toml");
    std::fs::write(
        &cfg,
        "bind = \"127.0.0.1:1\"\ndemo = false\npublic_origins = [\"https://call.example.org\"]\n",
    )
    .expect("write config");
    // The environment wins over the file: the relay binds port 0, not 1.
    let mut child = common::shieldcall(&d)
        .arg("serve")
        .env("SHIELDCALL_CONFIG", &cfg)
        .env("SHIELDCALL_BIND", "127.0.0.1:0")
        .env("SHIELDCALL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("utf-8");
    assert!(
        first.contains("is running at http://127.0.0.1:"),
        "no demo output first: {first}"
    );
    assert!(!first.contains(":1/"), "{first}");
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(killed.success());
    assert!(child.wait().expect("wait").success());
    let (ok, out, _) = run(&d, &["user", "list"], "");
    assert!(ok && out.is_empty(), "demo = false in the file: {out}");

    std::fs::write(&cfg, "no_such_key = 1\n").expect("write config");
    let (ok, _, err) = run(&d, &["serve", "--config", cfg.to_str().expect("utf-8")], "");
    assert!(!ok && err.contains("no_such_key"), "{err}");
}
