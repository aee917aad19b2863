//! A relay on PostgreSQL as the database's one node: a second relay on the same
//! database is refused, nodes that start together migrate once, `kill -9` frees
//! the database for the next relay at once, a relay whose claim went to another
//! stops, a database URL's password never reaches an error message, and a CLI
//! change reaches a device through `NOTIFY` rather than the poll. Always on
//! PostgreSQL (the test server of `cargo xtask test`).

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::{FAST, new_database, temp_dir};
use shieldcall_relay::store::PostgresStore;
use shieldcall_relay::{AppState, Config, DatabaseUrl};
use sqlx::{Connection, Executor};

fn config(url: &str) -> Config {
    let mut c = Config::new(temp_dir());
    c.password_cost = FAST;
    c.poll_interval = Duration::from_millis(100);
    c.database_url = Some(DatabaseUrl(url.into()));
    c
}

#[tokio::test]
async fn a_second_node_without_a_bus_is_refused() {
    let url = new_database();
    let first = AppState::open(config(&url)).await.expect("first node");
    let t0 = Instant::now();
    let second = AppState::open(config(&url)).await;
    let err = second.expect_err("a second node on the same database");
    assert!(
        err.to_string()
            .contains("another relay node already uses this database"),
        "{err}"
    );
    // It waited for a killed relay's claim to go, then gave up.
    assert!(t0.elapsed() >= Duration::from_secs(3), "{:?}", t0.elapsed());
    // The CLI is no node: it works beside the running relay.
    let cli = PostgresStore::connect(&url)
        .await
        .expect("CLI beside the relay");
    drop(cli);
    drop(first);
    // The first one gone, its claim goes with its connection.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match AppState::open(config(&url)).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => eprintln!("not yet: {e}"),
            Err(e) => panic!("the database stayed claimed: {e}"),
        }
    }
}

#[tokio::test]
async fn nodes_starting_together_migrate_once() {
    let url = new_database();
    // Six at once, each on connections of its own.
    let opens = (0..6).map(|_| PostgresStore::connect(&url));
    for open in futures_util::future::join_all(opens).await {
        open.expect("every open succeeds");
    }
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    let versions: Vec<i32> =
        sqlx::query_scalar("SELECT version FROM schema_version ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .expect("versions");
    assert_eq!(
        versions,
        [1, 2, 3, 4, 5, 6],
        "each version applied exactly once"
    );
    let changes: i64 = sqlx::query_scalar("SELECT changes FROM meta")
        .fetch_one(&mut conn)
        .await
        .expect("meta");
    assert_eq!(changes, 0);
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let url = new_database();
    PostgresStore::connect(&url).await.expect("migrate");
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    conn.execute("INSERT INTO schema_version (version) VALUES (99)")
        .await
        .expect("pretend a newer relay ran");
    let err = PostgresStore::connect(&url)
        .await
        .expect_err("an older relay on a newer schema");
    assert!(err.to_string().contains("newer than this relay's"), "{err}");
}

/// `shieldcall serve` on the database `url`; returns the child once it listens.
fn serve(url: &str) -> Child {
    common::serve_process(&[("SHIELDCALL_DATABASE_URL", url)]).0
}

#[test]
fn kill_9_frees_the_database_for_the_next_relay_at_once() {
    let url = new_database();
    let mut first = serve(&url);
    first.kill().expect("kill -9");
    first.wait().expect("reap");
    let t0 = Instant::now();
    let mut second = serve(&url);
    // Well within the claim's patience: PostgreSQL saw the connection close.
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    second.kill().expect("kill");
    second.wait().expect("reap");
}

#[tokio::test]
async fn a_relay_whose_claim_went_to_another_stops() {
    let url = new_database();
    let state = AppState::open(config(&url)).await.expect("node");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let serving = tokio::spawn(shieldcall_relay::serve(
        listener,
        state,
        std::future::pending(),
    ));
    // Serving, and its first check of the claim done (it runs at start): if
    // the connection died before that check, the relay would simply claim the
    // free database again.
    let mut http = tokio::net::TcpStream::connect(addr).await.expect("serving");
    tokio::io::AsyncWriteExt::write_all(&mut http, b"GET /api/me HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut head = [0u8; 12];
    tokio::io::AsyncReadExt::read_exact(&mut http, &mut head)
        .await
        .expect("an answer");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The claim's connection dies (PostgreSQL restarted, a network cut) and
    // another relay claims the database before this one notices.
    let mut admin = sqlx::PgConnection::connect(&url).await.expect("connect");
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_all(&mut admin)
    .await
    .expect("terminate");
    assert_eq!(killed, [true], "exactly the one claim was held");
    let other = PostgresStore::connect(&url).await.expect("store");
    let _claim = other.claim_node().await.expect("the other relay claims it");
    // The first relay finds out at its next check (5 s) and stops with an error.
    let stopped = tokio::time::timeout(Duration::from_secs(15), serving)
        .await
        .expect("the relay stopped")
        .expect("join");
    let err = stopped.expect_err("stopping for a lost claim is an error");
    assert!(
        err.to_string().contains("took this relay's database"),
        "{err}"
    );
}

#[tokio::test]
async fn a_database_password_never_reaches_an_error() {
    let secret = "s3cret-pw-17";
    for url in [
        format!("postgres://shieldcall:{secret}@127.0.0.1:1/db"),
        format!("postgres://shieldcall:{secret}@[::1/db"),
        format!("mysql://shieldcall:{secret}@127.0.0.1/db"),
    ] {
        let mut c = config(&url);
        c.data_dir = temp_dir();
        let err = AppState::open(c).await.expect_err("no server there");
        let shown = format!("{err} / {err:?}");
        assert!(!shown.contains(secret), "{shown}");
    }
    let c = config(&format!("postgres://u:{secret}@127.0.0.1:1/db"));
    assert!(!format!("{c:?}").contains(secret));
}

/// A change the CLI makes reaches a signed-in device through PostgreSQL's
/// `NOTIFY`, long before the relay's next poll of the change counter (set to
/// a minute here, so only the notification can explain a quick arrival).
#[tokio::test]
async fn a_cli_change_arrives_through_notify_not_the_poll() {
    let url = new_database();
    let relay = common::start_with(temp_dir(), |c| {
        c.database_url = Some(DatabaseUrl(url.clone()));
        c.poll_interval = Duration::from_secs(60);
    })
    .await;
    relay.add_user("ann@a.test", false).await;
    let (mut ann, _) = relay.device("ann@a.test").await;
    let cli = |args: &[&str]| {
        let out = common::shieldcall(&relay.dir)
            .env("SHIELDCALL_DATABASE_URL", &url)
            .args(args)
            .output()
            .expect("run the CLI");
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    cli(&[
        "policy",
        "new",
        "--identity",
        "Tag:Off",
        "--calling-e2ee",
        "Disabled",
    ]);
    // A policy no one holds yet changes nobody's setting.
    ann.expect_quiet(Duration::from_millis(300)).await;
    let before = relay.state.refreshes();
    let t0 = Instant::now();
    cli(&["policy", "grant", "--policy-name", "Tag:Off", "--global"]);
    let got = tokio::time::timeout(Duration::from_secs(5), ann.recv())
        .await
        .expect("the change within 5 s, not at the next poll a minute away");
    let shieldcall_proto::RelayMsg::Settings { e2ee } = got else {
        panic!("expected settings, got {got:?}");
    };
    assert!(!e2ee.enabled, "{e2ee:?}");
    eprintln!("CLI grant to settings on the device: {:?}", t0.elapsed());
    assert!(relay.state.refreshes() > before);
    relay.stop().await;
}
