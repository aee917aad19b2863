//! Sign-in, sessions and the upgrade rules: 401 without a session, 403 for a
//! foreign origin, rate limits, sign-out ending open connections.

mod common;

use common::*;
use shieldcall_proto::{ErrorCode, RelayMsg};

#[tokio::test]
async fn login_sets_a_strict_http_only_cookie_and_me_answers() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    let body = r#"{"user":"ann@a.test","password":"password-ann@a.test"}"#;
    let r = relay
        .http(
            "POST",
            "/api/login",
            &[("Content-Type", "application/json")],
            body,
        )
        .await;
    assert_eq!(r.status, 200);
    let set = r.header("set-cookie").expect("cookie");
    for flag in [
        "shieldcall_session=",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(!set.contains("Secure"), "plain http origin: no Secure flag");
    let cookie = r.cookie().expect("cookie");
    let me = relay
        .http("GET", "/api/me", &[("Cookie", &cookie)], "")
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["user"], "ann@a.test");
    assert_eq!(me.json()["e2ee"]["policy"], "EnabledUserOverride");
    let none = relay.http("GET", "/api/me", &[], "").await;
    assert_eq!(none.status, 401);
    relay.stop().await;
}

#[tokio::test]
async fn secure_cookie_behind_an_https_origin() {
    let relay = start_with(temp_dir(), |c| {
        c.public_origins = vec!["https://call.example.org".into()]
    })
    .await;
    relay.add_user("ann@a.test", false).await;
    let body = r#"{"user":"ann@a.test","password":"password-ann@a.test"}"#;
    let r = relay
        .http(
            "POST",
            "/api/login",
            &[("Content-Type", "application/json")],
            body,
        )
        .await;
    assert!(r.header("set-cookie").expect("cookie").contains("Secure"));
    relay.stop().await;
}

#[tokio::test]
async fn wrong_password_is_401_and_repeated_failures_are_rate_limited() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    let json = [("Content-Type", "application/json")];
    let bad = r#"{"user":"ann@a.test","password":"wrong-password"}"#;
    for _ in 0..5 {
        let r = relay.http("POST", "/api/login", &json, bad).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["error"], "bad-credentials");
    }
    // The account is now locked for the window, even with the right password.
    let good = r#"{"user":"ann@a.test","password":"password-ann@a.test"}"#;
    let r = relay.http("POST", "/api/login", &json, good).await;
    assert_eq!(r.status, 429);
    let unknown = relay
        .http(
            "POST",
            "/api/login",
            &json,
            r#"{"user":"nobody@a.test","password":"x"}"#,
        )
        .await;
    assert_eq!(unknown.status, 401);
    let not_json = relay.http("POST", "/api/login", &[], good).await;
    assert_eq!(not_json.status, 415);
    relay.stop().await;
}

/// Attempts sent all at once are counted before any password check finishes:
/// exactly the account's limit of them is checked, the rest are refused.
#[tokio::test]
async fn parallel_wrong_passwords_cannot_outrun_the_limit() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    let json = [("Content-Type", "application/json")];
    let bad = r#"{"user":"ann@a.test","password":"wrong-password"}"#;
    let statuses = futures_util::future::join_all(
        (0..40).map(|_| relay.http("POST", "/api/login", &json, bad)),
    )
    .await
    .into_iter()
    .map(|r| r.status)
    .collect::<Vec<_>>();
    let checked = statuses.iter().filter(|&&s| s == 401).count();
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!(checked, 5, "{statuses:?}");
    assert_eq!(limited, 35, "{statuses:?}");
    relay.stop().await;
}

/// Five wrong passwords from one address no longer lock the account for
/// everyone: behind a trusted proxy the client address comes from
/// X-Forwarded-For, and the account's owner at another address signs in. Without
/// the opt-in the header is ignored (any client could write it).
#[tokio::test]
async fn failures_at_one_address_do_not_lock_the_account_elsewhere() {
    for trusted in [true, false] {
        let relay = start_with(temp_dir(), |c| {
            if trusted {
                c.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
            }
        })
        .await;
        relay.add_user("ann@a.test", false).await;
        let bad = r#"{"user":"ann@a.test","password":"wrong-password"}"#;
        let good = r#"{"user":"ann@a.test","password":"password-ann@a.test"}"#;
        let from = |ip: &'static str| {
            [
                ("Content-Type", "application/json"),
                ("X-Forwarded-For", ip),
            ]
        };
        for _ in 0..5 {
            let r = relay
                .http("POST", "/api/login", &from("203.0.113.9"), bad)
                .await;
            assert_eq!(r.status, 401);
        }
        let attacker = relay
            .http("POST", "/api/login", &from("203.0.113.9"), good)
            .await;
        assert_eq!(attacker.status, 429, "the guessing address waits");
        let owner = relay
            .http(
                "POST",
                "/api/login",
                &from("198.51.100.4, 203.0.113.9"),
                good,
            )
            .await;
        if trusted {
            assert_eq!(owner.status, 429, "the proxy appended 203.0.113.9 last");
            let owner = relay
                .http("POST", "/api/login", &from("198.51.100.4"), good)
                .await;
            assert_eq!(owner.status, 200, "{}", owner.body);
        } else {
            assert_eq!(
                owner.status, 429,
                "X-Forwarded-For is ignored without the opt-in"
            );
        }
        relay.stop().await;
    }
}

#[tokio::test]
async fn upgrade_needs_a_session_and_our_origin() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    let cookie = relay.cookie_for("ann@a.test").await;
    let origin = relay.origin();
    assert_eq!(relay.ws_raw(None, Some(&origin)).await.err(), Some(401));
    assert_eq!(
        relay
            .ws_raw(Some("shieldcall_session=forged"), Some(&origin))
            .await
            .err(),
        Some(401)
    );
    assert_eq!(
        relay
            .ws_raw(Some(&cookie), Some("https://evil.example"))
            .await
            .err(),
        Some(403)
    );
    let localhost = format!("http://localhost:{}", relay.addr.port());
    assert!(relay.ws_raw(Some(&cookie), Some(&localhost)).await.is_ok());
    assert!(relay.ws_raw(Some(&cookie), Some(&origin)).await.is_ok());
    // Without an Origin header (not a browser) the session alone decides.
    assert!(relay.ws_raw(Some(&cookie), None).await.is_ok());
    relay.stop().await;
}

#[tokio::test]
async fn welcome_carries_turn_rest_credentials() {
    let relay = start_with(temp_dir(), |c| {
        c.ice.turn_urls = vec!["turn:turn.a.test:3478".into()];
        c.ice.turn_secret = Some("s3cret".into());
    })
    .await;
    relay.add_user("ann@a.test", false).await;
    let (_c, welcome) = relay.device("ann@a.test").await;
    let RelayMsg::Welcome {
        ice_servers, user, ..
    } = welcome
    else {
        panic!()
    };
    assert_eq!(user, "ann@a.test");
    let turn = &ice_servers[0];
    let name = turn.username.clone().expect("username");
    assert!(name.ends_with(":ann@a.test"), "{name}");
    assert_eq!(
        turn.credential.as_deref(),
        Some(shieldcall_relay::turn::credential("s3cret", &name).as_str())
    );
    relay.stop().await;
}

#[tokio::test]
async fn logout_ends_the_session_and_its_connections() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    let cookie = relay.login("ann@a.test", "password-ann@a.test").await;
    let (mut c, _) = relay.device_with(&cookie).await;
    let out = relay
        .http("POST", "/api/logout", &[("Cookie", &cookie)], "")
        .await;
    assert_eq!(out.status, 204);
    match c.recv().await {
        RelayMsg::Error { code, .. } => assert_eq!(code, ErrorCode::SessionExpired),
        other => panic!("{other:?}"),
    }
    assert!(c.closed_within(WAIT).await);
    assert_eq!(
        relay
            .http("GET", "/api/me", &[("Cookie", &cookie)], "")
            .await
            .status,
        401
    );
    assert_eq!(relay.ws_raw(Some(&cookie), None).await.err(), Some(401));
    relay.stop().await;
}

#[tokio::test]
async fn an_expired_session_is_refused() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    let cookie = relay
        .cookie_expiring("ann@a.test", shieldcall_relay::store::unix_now() - 1)
        .await;
    assert_eq!(
        relay
            .http("GET", "/api/me", &[("Cookie", &cookie)], "")
            .await
            .status,
        401
    );
    assert_eq!(relay.ws_raw(Some(&cookie), None).await.err(), Some(401));
    relay.stop().await;
}

#[tokio::test]
async fn removing_a_user_signs_them_out_everywhere() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    let cookie = relay.cookie_for("ann@a.test").await;
    let (mut dev, _) = relay.device_with(&cookie).await;
    relay.ops().remove_user("ann@a.test").await.expect("remove");
    match dev.recv().await {
        RelayMsg::Error { code, .. } => assert_eq!(code, ErrorCode::SessionExpired),
        other => panic!("{other:?}"),
    }
    assert!(dev.closed_within(WAIT).await);
    assert_eq!(
        relay
            .http("GET", "/api/me", &[("Cookie", &cookie)], "")
            .await
            .status,
        401
    );
    relay.stop().await;
}

/// Waits for the session-ended error and the close, and says how long it took.
async fn ended_within(dev: &mut Client, limit: std::time::Duration) -> std::time::Duration {
    let start = std::time::Instant::now();
    match tokio::time::timeout(limit, dev.recv()).await {
        Ok(RelayMsg::Error { code, .. }) => assert_eq!(code, ErrorCode::SessionExpired),
        other => panic!("no session-expired within {limit:?}: {other:?}"),
    }
    assert!(dev.closed_within(limit).await, "still open after {limit:?}");
    start.elapsed()
}

/// A password change made by the CLI (another process: only the store changes)
/// closes a stolen cookie's connection within a second; a second device of the
/// same user on another session goes too, as every session was ended.
#[tokio::test]
async fn a_password_change_elsewhere_closes_open_connections_within_a_second() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    let stolen = relay.cookie_for("ann@a.test").await;
    let (mut thief, _) = relay.device_with(&stolen).await;
    let (mut other, _) = relay.device("ann@a.test").await;
    let hash = shieldcall_relay::auth::hash_password(FAST, "new-password-1".into())
        .await
        .expect("hash");
    relay
        .ops()
        .set_password("ann@a.test", &hash)
        .await
        .expect("passwd");
    let limit = std::time::Duration::from_secs(1);
    ended_within(&mut thief, limit).await;
    ended_within(&mut other, limit).await;
    assert_eq!(relay.ws_raw(Some(&stolen), None).await.err(), Some(401));
    relay.stop().await;
}

/// A session deleted in the store (a sign-out on another relay process or by the
/// CLI) closes its connection; other sessions of the user stay.
#[tokio::test]
async fn a_session_ended_in_the_store_closes_only_its_connections() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    let gone = relay.login("ann@a.test", "password-ann@a.test").await;
    let (mut a, _) = relay.device_with(&gone).await;
    let (mut b, _) = relay.device("ann@a.test").await;
    let token = gone.split_once('=').map(|(_, t)| t).expect("cookie");
    relay
        .state
        .store()
        .delete_session(&shieldcall_relay::auth::token_hash(token))
        .await
        .expect("delete");
    // Any change to the store makes the relay look (here: a new account).
    relay.add_user("bob@a.test", false).await;
    ended_within(&mut a, std::time::Duration::from_secs(1)).await;
    b.assert_alive(7).await;
    relay.stop().await;
}

/// A session's expiry closes its connection at that moment, not at a later ping.
#[tokio::test]
async fn an_expiring_session_closes_its_connection_on_time() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    let cookie = relay
        .cookie_expiring("ann@a.test", shieldcall_relay::store::unix_now() + 2)
        .await;
    let (mut dev, _) = relay.device_with(&cookie).await;
    let took = ended_within(&mut dev, std::time::Duration::from_secs(4)).await;
    assert!(took >= std::time::Duration::from_millis(500), "{took:?}");
    relay.stop().await;
}

#[tokio::test]
async fn an_oversize_body_is_refused() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    let origin = relay.origin();
    let padding = "x".repeat(shieldcall_relay::API_BODY_LIMIT);
    let body =
        format!(r#"{{"user":"ann@a.test","password":"password-ann@a.test","pad":"{padding}"}}"#);
    let headers = [
        ("Origin", origin.as_str()),
        ("Content-Type", "application/json"),
    ];
    let r = relay.http("POST", "/api/login", &headers, &body).await;
    assert_eq!(r.status, 413);
    // The same sign-in without the padding works.
    let body = r#"{"user":"ann@a.test","password":"password-ann@a.test"}"#;
    assert_eq!(
        relay
            .http("POST", "/api/login", &headers, body)
            .await
            .status,
        200
    );
    relay.stop().await;
}

/// A user holds at most 20 sessions: the 21st sign-in ends the oldest, and the
/// connection opened with it closes.
#[tokio::test]
async fn the_oldest_session_ends_beyond_twenty() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    let first = relay.login("ann@a.test", "password-ann@a.test").await;
    let (mut dev, _) = relay.device_with(&first).await;
    let mut later = Vec::new();
    for _ in 1..shieldcall_relay::store::MAX_SESSIONS_PER_USER {
        later.push(relay.login("ann@a.test", "password-ann@a.test").await);
    }
    // Twenty sessions: the first still works.
    dev.assert_alive(1).await;
    later.push(relay.login("ann@a.test", "password-ann@a.test").await);
    ended_within(&mut dev, std::time::Duration::from_secs(1)).await;
    let status = |c: &str| {
        let c = c.to_string();
        let relay = &relay;
        async move {
            relay
                .http("GET", "/api/me", &[("Cookie", &c)], "")
                .await
                .status
        }
    };
    assert_eq!(status(&first).await, 401);
    assert_eq!(status(&later[0]).await, 200);
    assert_eq!(status(later.last().expect("last")).await, 200);
    relay.stop().await;
}
