//! The store conformance suite: one set of checks of the `Store` contract, run
//! on both engines, SQLite (a real file) and PostgreSQL (a fresh database on
//! the test server `cargo xtask test` starts). Whatever a handler, the CLI or the
//! policy refresher may rely on is here: ordering, errors, compare-and-set,
//! cascades, the session and history caps, audit entries and the change counter.
//! (The whole relay suite also runs on PostgreSQL; these are the details it does
//! not reach.)

mod common;

use shieldcall_proto::{CallMode, E2eePolicyType};
use shieldcall_relay::Error;
use shieldcall_relay::hub::{CallRecord, Direction, Outcome};
use shieldcall_relay::policy::{CallingPolicy, ExternalAccess, Policy, Target};
use shieldcall_relay::store::{
    Audit, HISTORY_PER_USER, MAX_SESSIONS_PER_USER, PostgresStore, Session, SqliteStore, Store,
    User, unix_now,
};

async fn sqlite() -> Box<dyn Store> {
    Box::new(
        SqliteStore::open(&common::temp_dir())
            .await
            .expect("open SQLite"),
    )
}

async fn postgres() -> Box<dyn Store> {
    Box::new(
        PostgresStore::connect(&common::new_database())
            .await
            .expect("connect PostgreSQL"),
    )
}

/// One `#[tokio::test]` per engine for each check.
macro_rules! on_both {
    ($($check:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test]
            async fn $check() {
                super::$check(super::sqlite().await.as_ref()).await;
            })*
        }
        mod on_postgres {
            $(#[tokio::test]
            async fn $check() {
                super::$check(super::postgres().await.as_ref()).await;
            })*
        }
    };
}

on_both!(
    users_and_tenants,
    groups_and_members,
    policies_and_compare_and_set,
    assignments,
    removing_a_user_takes_what_was_theirs,
    sessions,
    call_history,
    audit_and_changes,
);

fn audit(domain: &str, action: &str, target: &str) -> Audit {
    Audit {
        domain: domain.into(),
        actor: "conformance".into(),
        action: action.into(),
        target: target.into(),
        old: None,
        new: None,
    }
}

fn global() -> Policy {
    Policy {
        identity: "Global".into(),
        description: String::new(),
        calling_e2ee: E2eePolicyType::DisabledUserOverride,
    }
}

fn user(name: &str) -> User {
    User {
        name: name.into(),
        password_hash: format!("$argon2id$fake-hash-of-{name}"),
        admin: false,
        e2ee_switch: None,
        display_name: String::new(),
    }
}

async fn add(store: &dyn Store, name: &str) {
    let domain = name.split('@').nth(1).expect("domain");
    store
        .add_user(&user(name), &global(), &audit(domain, "user.add", name))
        .await
        .expect("add user");
}

async fn users_and_tenants(store: &dyn Store) {
    add(store, "zoe@b.test").await;
    add(store, "bob@a.test").await;
    add(store, "ann@a.test").await;
    let again = store
        .add_user(
            &user("ann@a.test"),
            &global(),
            &audit("a.test", "user.add", "ann@a.test"),
        )
        .await;
    assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");

    // Names sorted; users of one tenant or of all.
    let directory = store.directory().await.expect("directory");
    let names: Vec<&str> = directory.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ann@a.test", "bob@a.test", "zoe@b.test"]);
    assert!(directory.iter().all(|(_, d)| d.is_empty()));
    let in_a: Vec<String> = store
        .users(Some("a.test"))
        .await
        .expect("users")
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(in_a, ["ann@a.test", "bob@a.test"]);
    assert_eq!(store.users(None).await.expect("all").len(), 3);
    assert!(store.users(Some("c.test")).await.expect("none").is_empty());

    // Every field comes back as written.
    let mut admin = user("root@a.test");
    admin.admin = true;
    admin.e2ee_switch = Some(true);
    admin.display_name = "Ruth Örn-Ødegård".into();
    store
        .add_user(
            &admin,
            &global(),
            &audit("a.test", "user.add", "root@a.test"),
        )
        .await
        .expect("add admin");
    assert_eq!(store.user("root@a.test").await.expect("read"), Some(admin));
    assert_eq!(store.user("nobody@a.test").await.expect("read"), None);

    // A tenant per domain, with its Global policy, allowing everyone.
    let tenants = store.tenants().await.expect("tenants");
    let domains: Vec<&str> = tenants.iter().map(|t| t.domain.as_str()).collect();
    assert_eq!(domains, ["a.test", "b.test"]);
    assert!(
        tenants
            .iter()
            .all(|t| t.external_access == ExternalAccess::AllowAll)
    );
    assert_eq!(
        store.policies("b.test").await.expect("policies"),
        [global()]
    );

    // External access: compare-and-set, and the list round-trips in order.
    let list = ExternalAccess::AllowList {
        domains: vec!["c.test".into(), "b.test".into()],
    };
    let a = audit("a.test", "external-access", "a.test");
    store
        .set_external_access("a.test", &list, &ExternalAccess::AllowAll, &a)
        .await
        .expect("set");
    let stale = store
        .set_external_access(
            "a.test",
            &ExternalAccess::Block,
            &ExternalAccess::AllowAll,
            &a,
        )
        .await;
    assert!(matches!(stale, Err(Error::Changed(_))), "{stale:?}");
    let missing = store
        .set_external_access(
            "x.test",
            &ExternalAccess::Block,
            &ExternalAccess::AllowAll,
            &a,
        )
        .await;
    assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");
    let tenants = store.tenants().await.expect("tenants");
    assert_eq!(tenants[0].external_access, list);

    // The calling policy: everything allowed for a new tenant; then
    // compare-and-set, and each field round-trips on its own.
    assert!(
        tenants
            .iter()
            .all(|t| t.calling == CallingPolicy::default())
    );
    let c = audit("a.test", "calling-policy", "a.test");
    let policy = CallingPolicy {
        allow_cloud_recording_for_calls: false,
        allow_transcription_for_calling: true,
        allow_voicemail: false,
    };
    store
        .set_calling_policy("a.test", &policy, &CallingPolicy::default(), &c)
        .await
        .expect("set");
    let stale = store
        .set_calling_policy(
            "a.test",
            &CallingPolicy::default(),
            &CallingPolicy::default(),
            &c,
        )
        .await;
    assert!(matches!(stale, Err(Error::Changed(_))), "{stale:?}");
    let missing = store
        .set_calling_policy("x.test", &policy, &CallingPolicy::default(), &c)
        .await;
    assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");
    let tenants = store.tenants().await.expect("tenants");
    assert_eq!(tenants[0].calling, policy);
    assert_eq!(tenants[1].calling, CallingPolicy::default());

    // The switch: compare-and-set on the value as read.
    let s = audit("a.test", "switch", "ann@a.test");
    store
        .set_switch("ann@a.test", Some(false), None, &s)
        .await
        .expect("switch");
    let stale = store.set_switch("ann@a.test", Some(true), None, &s).await;
    assert!(matches!(stale, Err(Error::Changed(_))), "{stale:?}");
    let missing = store.set_switch("no@a.test", Some(true), None, &s).await;
    assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");
    let ann = store.user("ann@a.test").await.expect("read").expect("ann");
    assert_eq!(ann.e2ee_switch, Some(false));

    // The display name: compare-and-set, in the directory, "" for none.
    let n = audit("a.test", "user.name", "ann@a.test");
    store
        .set_display_name("ann@a.test", "Ann Example", "", &n)
        .await
        .expect("name");
    let stale = store.set_display_name("ann@a.test", "Other", "", &n).await;
    assert!(matches!(stale, Err(Error::Changed(_))), "{stale:?}");
    let missing = store.set_display_name("no@a.test", "X", "", &n).await;
    assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");
    let directory = store.directory().await.expect("directory");
    assert!(directory.contains(&("ann@a.test".into(), "Ann Example".into())));
    assert!(directory.contains(&("root@a.test".into(), "Ruth Örn-Ødegård".into())));
    store
        .set_display_name("ann@a.test", "", "Ann Example", &n)
        .await
        .expect("unname");
    let ann = store.user("ann@a.test").await.expect("read").expect("ann");
    assert_eq!(ann.display_name, "");

    // A new password ends the user's sessions.
    let token = "a".repeat(64);
    store
        .create_session(&Session {
            token_hash: token.clone(),
            user: "ann@a.test".into(),
            expires_at: unix_now() + 60,
        })
        .await
        .expect("session");
    store
        .set_password(
            "ann@a.test",
            "$argon2id$new",
            &audit("a.test", "passwd", "ann@a.test"),
        )
        .await
        .expect("passwd");
    assert_eq!(store.session(&token, unix_now()).await.expect("read"), None);
    let ann = store.user("ann@a.test").await.expect("read").expect("ann");
    assert_eq!(ann.password_hash, "$argon2id$new");
    let missing = store
        .set_password("no@a.test", "x", &audit("a.test", "passwd", "no@a.test"))
        .await;
    assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");
}

async fn groups_and_members(store: &dyn Store) {
    add(store, "ann@a.test").await;
    add(store, "bob@a.test").await;
    add(store, "eve@b.test").await;
    let a = |what: &str| audit("a.test", what, "g");
    for g in ["sales", "empty", "eng"] {
        store
            .add_group("a.test", g, &a("group.add"))
            .await
            .expect("group");
    }
    let dup = store.add_group("a.test", "eng", &a("group.add")).await;
    assert!(matches!(dup, Err(Error::Conflict(_))), "{dup:?}");
    let no_tenant = store.add_group("x.test", "eng", &a("group.add")).await;
    assert!(
        matches!(no_tenant, Err(Error::NotFound(_))),
        "{no_tenant:?}"
    );

    store
        .add_member("a.test", "eng", "bob@a.test", &a("member.add"))
        .await
        .expect("member");
    store
        .add_member("a.test", "eng", "ann@a.test", &a("member.add"))
        .await
        .expect("member");
    store
        .add_member("a.test", "sales", "ann@a.test", &a("member.add"))
        .await
        .expect("member");
    let dup = store
        .add_member("a.test", "eng", "ann@a.test", &a("member.add"))
        .await;
    assert!(matches!(dup, Err(Error::Conflict(_))), "{dup:?}");
    for (group, member) in [("nope", "ann@a.test"), ("eng", "nobody@a.test")] {
        let missing = store
            .add_member("a.test", group, member, &a("member.add"))
            .await;
        assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");
    }

    // Groups by name, members sorted, an empty group kept.
    let groups = store.groups("a.test").await.expect("groups");
    let seen: Vec<(&str, Vec<&str>)> = groups
        .iter()
        .map(|g| {
            (
                g.name.as_str(),
                g.members.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("empty", vec![]),
            ("eng", vec!["ann@a.test", "bob@a.test"]),
            ("sales", vec!["ann@a.test"]),
        ]
    );
    assert!(store.groups("b.test").await.expect("none").is_empty());
    assert_eq!(
        store.groups_of("ann@a.test").await.expect("of"),
        ["eng", "sales"]
    );

    store
        .remove_member("a.test", "eng", "ann@a.test", &a("member.remove"))
        .await
        .expect("remove member");
    let again = store
        .remove_member("a.test", "eng", "ann@a.test", &a("member.remove"))
        .await;
    assert!(matches!(again, Err(Error::NotFound(_))), "{again:?}");
    assert_eq!(store.groups_of("ann@a.test").await.expect("of"), ["sales"]);

    // A removed group takes its memberships and its assignment with it.
    let p = Policy {
        identity: "Tag:Sales".into(),
        description: "sales".into(),
        calling_e2ee: E2eePolicyType::Required,
    };
    store
        .put_policy("a.test", &p, None, &a("policy.new"))
        .await
        .expect("policy");
    let sales = Target::Group {
        group: "sales".into(),
        rank: Some(1),
    };
    store
        .assign("a.test", &sales, Some("Tag:Sales"), None, &a("grant"))
        .await
        .expect("grant");
    store
        .remove_group("a.test", "sales", &a("group.remove"))
        .await
        .expect("remove group");
    assert!(store.groups_of("ann@a.test").await.expect("of").is_empty());
    assert!(
        store
            .assignments("a.test")
            .await
            .expect("assignments")
            .is_empty()
    );
    let again = store
        .remove_group("a.test", "sales", &a("group.remove"))
        .await;
    assert!(matches!(again, Err(Error::NotFound(_))), "{again:?}");
}

async fn policies_and_compare_and_set(store: &dyn Store) {
    add(store, "ann@a.test").await;
    let a = |what: &str| audit("a.test", what, "p");
    let policy = |identity: &str, kind| Policy {
        identity: identity.into(),
        description: format!("about {identity}"),
        calling_e2ee: kind,
    };
    let zed = policy("Tag:Zed", E2eePolicyType::Required);
    let alpha = policy("Tag:Alpha", E2eePolicyType::Disabled);
    for p in [&zed, &alpha] {
        store
            .put_policy("a.test", p, None, &a("policy.new"))
            .await
            .expect("create");
    }
    let dup = store
        .put_policy("a.test", &zed, None, &a("policy.new"))
        .await;
    assert!(matches!(dup, Err(Error::Conflict(_))), "{dup:?}");
    let no_tenant = store
        .put_policy("x.test", &zed, None, &a("policy.new"))
        .await;
    assert!(
        matches!(no_tenant, Err(Error::NotFound(_))),
        "{no_tenant:?}"
    );

    // Global first, then by identity.
    let names: Vec<String> = store
        .policies("a.test")
        .await
        .expect("policies")
        .into_iter()
        .map(|p| p.identity)
        .collect();
    assert_eq!(names, ["Global", "Tag:Alpha", "Tag:Zed"]);

    // An update replaces only the policy as read.
    let zed2 = policy("Tag:Zed", E2eePolicyType::EnabledUserOverride);
    store
        .put_policy("a.test", &zed2, Some(&zed), &a("policy.set"))
        .await
        .expect("update");
    let stale = store
        .put_policy("a.test", &zed, Some(&zed), &a("policy.set"))
        .await;
    assert!(matches!(stale, Err(Error::Changed(_))), "{stale:?}");
    let ghost = policy("Tag:Ghost", E2eePolicyType::Required);
    let missing = store
        .put_policy("a.test", &ghost, Some(&ghost), &a("policy.set"))
        .await;
    assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");
    let stored = store.policies("a.test").await.expect("policies");
    assert_eq!(stored[2], zed2);

    // Removal: compare-and-set too; it takes the policy's assignments along.
    let ann = Target::User {
        user: "ann@a.test".into(),
    };
    store
        .assign("a.test", &ann, Some("Tag:Zed"), None, &a("grant"))
        .await
        .expect("grant");
    let stale = store
        .remove_policy("a.test", &zed, &a("policy.remove"))
        .await;
    assert!(matches!(stale, Err(Error::Changed(_))), "{stale:?}");
    assert_eq!(store.assignments("a.test").await.expect("kept").len(), 1);
    store
        .remove_policy("a.test", &zed2, &a("policy.remove"))
        .await
        .expect("remove");
    assert!(store.assignments("a.test").await.expect("gone").is_empty());
    let again = store
        .remove_policy("a.test", &zed2, &a("policy.remove"))
        .await;
    assert!(matches!(again, Err(Error::NotFound(_))), "{again:?}");
}

async fn assignments(store: &dyn Store) {
    add(store, "ann@a.test").await;
    let a = |what: &str| audit("a.test", what, "t");
    for id in ["Tag:One", "Tag:Two"] {
        let p = Policy {
            identity: id.into(),
            description: String::new(),
            calling_e2ee: E2eePolicyType::Required,
        };
        store
            .put_policy("a.test", &p, None, &a("policy.new"))
            .await
            .expect("policy");
    }
    store
        .add_group("a.test", "eng", &a("group.add"))
        .await
        .expect("group");
    let ann = Target::User {
        user: "ann@a.test".into(),
    };
    let eng = Target::Group {
        group: "eng".into(),
        rank: Some(7),
    };
    store
        .assign("a.test", &ann, Some("Tag:One"), None, &a("grant"))
        .await
        .expect("grant user");
    store
        .assign("a.test", &eng, Some("Tag:Two"), None, &a("grant"))
        .await
        .expect("grant group");
    store
        .assign(
            "a.test",
            &Target::Global,
            Some("Tag:Two"),
            None,
            &a("grant"),
        )
        .await
        .expect("grant global");
    // Compare-and-set on the assignment as read: a second "first" grant loses.
    let stale = store
        .assign("a.test", &ann, Some("Tag:Two"), None, &a("grant"))
        .await;
    assert!(matches!(stale, Err(Error::Changed(_))), "{stale:?}");
    let unknown = store
        .assign(
            "a.test",
            &ann,
            Some("Tag:None"),
            Some("Tag:One"),
            &a("grant"),
        )
        .await;
    assert!(matches!(unknown, Err(Error::NotFound(_))), "{unknown:?}");

    // By kind, then target; the rank survives.
    let mut all = store.assignments("a.test").await.expect("assignments");
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].target, Target::Global);
    assert_eq!(all[1].target, eng);
    assert_eq!(all[2].target, ann);
    assert_eq!(all[2].policy, "Tag:One");

    // Replace, then remove.
    store
        .assign(
            "a.test",
            &ann,
            Some("Tag:Two"),
            Some("Tag:One"),
            &a("grant"),
        )
        .await
        .expect("replace");
    store
        .assign("a.test", &eng, None, Some("Tag:Two"), &a("revoke"))
        .await
        .expect("revoke");
    all = store.assignments("a.test").await.expect("assignments");
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].policy, "Tag:Two");
    assert!(store.assignments("b.test").await.expect("none").is_empty());
}

async fn removing_a_user_takes_what_was_theirs(store: &dyn Store) {
    add(store, "ann@a.test").await;
    add(store, "bob@a.test").await;
    let a = |what: &str| audit("a.test", what, "ann@a.test");
    store
        .add_group("a.test", "eng", &a("group.add"))
        .await
        .expect("group");
    store
        .add_member("a.test", "eng", "ann@a.test", &a("member.add"))
        .await
        .expect("member");
    let p = Policy {
        identity: "Tag:Ann".into(),
        description: String::new(),
        calling_e2ee: E2eePolicyType::Required,
    };
    store
        .put_policy("a.test", &p, None, &a("policy.new"))
        .await
        .expect("policy");
    let ann = Target::User {
        user: "ann@a.test".into(),
    };
    store
        .assign("a.test", &ann, Some("Tag:Ann"), None, &a("grant"))
        .await
        .expect("grant");
    let token = "b".repeat(64);
    store
        .create_session(&Session {
            token_hash: token.clone(),
            user: "ann@a.test".into(),
            expires_at: unix_now() + 60,
        })
        .await
        .expect("session");
    store
        .add_history(&[
            record("ann@a.test", "bob@a.test", 1),
            record("bob@a.test", "ann@a.test", 1),
        ])
        .await
        .expect("history");

    store
        .remove_user("ann@a.test", &a("user.remove"))
        .await
        .expect("remove");
    assert_eq!(store.user("ann@a.test").await.expect("read"), None);
    assert_eq!(store.session(&token, unix_now()).await.expect("read"), None);
    assert!(store.groups_of("ann@a.test").await.expect("of").is_empty());
    assert!(
        store
            .assignments("a.test")
            .await
            .expect("assignments")
            .is_empty()
    );
    assert!(
        store
            .history("ann@a.test", 10)
            .await
            .expect("history")
            .is_empty()
    );
    // The other person's history keeps the call with her.
    assert_eq!(
        store
            .history("bob@a.test", 10)
            .await
            .expect("history")
            .len(),
        1
    );
    // The policy stays: it belongs to the tenant.
    assert_eq!(store.policies("a.test").await.expect("policies").len(), 2);
    let again = store.remove_user("ann@a.test", &a("user.remove")).await;
    assert!(matches!(again, Err(Error::NotFound(_))), "{again:?}");
}

async fn sessions(store: &dyn Store) {
    add(store, "ann@a.test").await;
    let now = unix_now();
    let hash = |i: usize| format!("{i:064x}");
    // An expired session is not returned, and the next sign-in sweeps it.
    store
        .create_session(&Session {
            token_hash: "e".repeat(64),
            user: "ann@a.test".into(),
            expires_at: now - 1,
        })
        .await
        .expect("expired");
    assert_eq!(
        store.session(&"e".repeat(64), now).await.expect("read"),
        None
    );

    let mut ended = Vec::new();
    for i in 0..MAX_SESSIONS_PER_USER + 2 {
        let s = Session {
            token_hash: hash(i),
            user: "ann@a.test".into(),
            // All alike: the oldest by creation goes first.
            expires_at: now + 3600,
        };
        ended.extend(store.create_session(&s).await.expect("create"));
        assert_eq!(store.session(&hash(i), now).await.expect("read"), Some(s));
    }
    // Two beyond the cap: the first two ended, and were named.
    assert_eq!(ended, [hash(0), hash(1)]);
    assert_eq!(store.session(&hash(0), now).await.expect("read"), None);
    assert!(store.session(&hash(2), now).await.expect("read").is_some());
    // Valid until `expires_at`, not at it.
    assert_eq!(
        store.session(&hash(2), now + 3600).await.expect("read"),
        None
    );

    store.delete_session(&hash(2)).await.expect("delete");
    assert_eq!(store.session(&hash(2), now).await.expect("read"), None);
    // Deleting what is not there is not an error (sign-out twice).
    store.delete_session(&hash(2)).await.expect("delete again");
}

fn record(user: &str, peer: &str, at: i64) -> CallRecord {
    CallRecord {
        user: user.into(),
        peer: peer.into(),
        direction: Direction::Outgoing,
        outcome: Outcome::Answered,
        mode: Some(CallMode::E2ee),
        at,
        duration_secs: 42,
    }
}

async fn call_history(store: &dyn Store) {
    add(store, "ann@a.test").await;
    add(store, "bob@a.test").await;
    let mut missed = record("bob@a.test", "ann@a.test", 5);
    missed.direction = Direction::Incoming;
    missed.outcome = Outcome::Missed;
    missed.mode = None;
    missed.duration_secs = 0;
    store
        .add_history(&[
            record("ann@a.test", "bob@a.test", 5),
            missed.clone(),
            // Removed since the call: skipped, and the rest is still written.
            record("gone@a.test", "bob@a.test", 5),
        ])
        .await
        .expect("add");
    assert_eq!(
        store.history("bob@a.test", 10).await.expect("read"),
        [missed]
    );
    assert!(
        store
            .history("gone@a.test", 10)
            .await
            .expect("read")
            .is_empty()
    );

    // Newest first; at most `limit`; each user keeps the newest HISTORY_PER_USER.
    let extra = i64::from(HISTORY_PER_USER) + 5;
    let batch: Vec<CallRecord> = (0..extra)
        .map(|i| record("ann@a.test", "bob@a.test", 100 + i))
        .collect();
    store.add_history(&batch).await.expect("add many");
    let all = store.history("ann@a.test", 1_000).await.expect("read");
    assert_eq!(all.len(), HISTORY_PER_USER as usize);
    assert_eq!(all[0].at, 100 + extra - 1);
    assert_eq!(
        all[all.len() - 1].at,
        100 + extra - i64::from(HISTORY_PER_USER)
    );
    assert_eq!(all[0], record("ann@a.test", "bob@a.test", 100 + extra - 1));
    let page = store.history("ann@a.test", 3).await.expect("read");
    assert_eq!(page, all[..3]);
    // Bob's own entries were not trimmed by Ann's.
    assert_eq!(
        store.history("bob@a.test", 10).await.expect("read").len(),
        1
    );
}

async fn audit_and_changes(store: &dyn Store) {
    let before = store.changes().await.expect("changes");
    add(store, "ann@a.test").await;
    let after_add = store.changes().await.expect("changes");
    assert!(after_add > before, "adding a user is a change");

    // A failed compare-and-set writes nothing: neither data, nor audit, nor a change.
    let log = store.audit_log("a.test", 100).await.expect("log");
    let stale = store
        .set_switch(
            "ann@a.test",
            Some(true),
            Some(false),
            &audit("a.test", "switch", "ann@a.test"),
        )
        .await;
    assert!(matches!(stale, Err(Error::Changed(_))), "{stale:?}");
    assert_eq!(store.audit_log("a.test", 100).await.expect("log"), log);
    assert_eq!(store.changes().await.expect("changes"), after_add);

    // One switch is one change.
    store
        .set_switch(
            "ann@a.test",
            Some(true),
            None,
            &Audit {
                old: Some("default".into()),
                new: Some("on".into()),
                ..audit("a.test", "switch", "ann@a.test")
            },
        )
        .await
        .expect("switch");
    assert_eq!(store.changes().await.expect("changes"), after_add + 1);
    // Sessions and history are not changes a refresh needs.
    store
        .create_session(&Session {
            token_hash: "c".repeat(64),
            user: "ann@a.test".into(),
            expires_at: unix_now() + 60,
        })
        .await
        .expect("session");
    store
        .add_history(&[record("ann@a.test", "bob@b.test", 1)])
        .await
        .expect("history");
    assert_eq!(store.changes().await.expect("changes"), after_add + 1);

    // Newest first, ids increasing, every field kept; the tenant's entry came
    // before its first user's.
    let log = store.audit_log("a.test", 100).await.expect("log");
    let actions: Vec<&str> = log.iter().map(|e| e.audit.action.as_str()).collect();
    assert_eq!(actions, ["switch", "user.add", "tenant.add"]);
    assert!(log[0].id > log[1].id && log[1].id > log[2].id);
    assert_eq!(log[0].audit.old.as_deref(), Some("default"));
    assert_eq!(log[0].audit.new.as_deref(), Some("on"));
    assert_eq!(log[0].audit.actor, "conformance");
    assert!((log[0].at - unix_now()).abs() < 60);
    assert_eq!(
        log[2].audit.new.as_deref(),
        Some("Global=DisabledUserOverride")
    );
    assert_eq!(store.audit_log("a.test", 1).await.expect("log").len(), 1);
    assert!(
        store
            .audit_log("b.test", 100)
            .await
            .expect("log")
            .is_empty()
    );
}
