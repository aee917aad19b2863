//! A signed-in user's contact list follows the directory live: a change of
//! external access, a new account or a removed one reaches open sessions without
//! a reconnect (new contacts with their presence, gone ones as `removed`).

mod common;

use std::collections::BTreeMap;

use common::*;
use shieldcall_proto::{ClientMsg, RelayMsg, Status};
use shieldcall_relay::policy::ExternalAccess;

/// A client's view of its contact list, kept as the browser client keeps it.
#[derive(Default)]
struct List(BTreeMap<String, Status>);

impl List {
    fn merge(&mut self, m: RelayMsg) {
        if let RelayMsg::Presence { contacts } = m {
            for p in contacts {
                if p.status == Status::Removed {
                    self.0.remove(&p.user);
                } else {
                    self.0.insert(p.user, p.status);
                }
            }
        }
    }

    /// Merges everything the relay sent before the answer to a `ping`.
    async fn sync(&mut self, c: &mut Client, id: u64) {
        c.send(&ClientMsg::Ping { id }).await;
        loop {
            match c.recv_any().await {
                RelayMsg::Pong { id: got } if got == id => return,
                m => self.merge(m),
            }
        }
    }

    /// Merges presence messages until `user` has `want` (`None`: not listed).
    async fn wait_for(&mut self, c: &mut Client, user: &str, want: Option<Status>) {
        while self.0.get(user).copied() != want {
            let m = c
                .try_recv_any(WAIT)
                .await
                .unwrap_or_else(|| panic!("{user} never became {want:?}; list {:?}", self.0));
            self.merge(m);
        }
    }
}

async fn signed_in(relay: &Relay, user: &str) -> (Client, List) {
    let cookie = relay.cookie_for(user).await;
    let mut c = relay
        .ws_raw(Some(&cookie), Some(&relay.origin()))
        .await
        .expect("upgrade");
    c.send(&ClientMsg::Hello { version: 1 }).await;
    let welcome = c.recv_any().await;
    assert!(matches!(welcome, RelayMsg::Welcome { .. }), "{welcome:?}");
    (c, List::default())
}

#[tokio::test]
async fn external_access_changes_the_list_live() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    relay.add_user("bob@b.test", false).await;
    let (mut ann, mut list) = signed_in(&relay, "ann@a.test").await;
    list.wait_for(&mut ann, "bob@b.test", Some(Status::Offline))
        .await;

    // Ann's tenant blocks other tenants: bob leaves her list.
    relay
        .ops()
        .set_external_access("a.test", &ExternalAccess::Block)
        .await
        .expect("block");
    list.wait_for(&mut ann, "bob@b.test", None).await;

    // Bob signs in meanwhile; ann does not see him.
    let (mut bob, mut bob_list) = signed_in(&relay, "bob@b.test").await;
    list.sync(&mut ann, 1).await;
    bob_list.sync(&mut bob, 2).await;
    assert!(!list.0.contains_key("bob@b.test"), "{:?}", list.0);
    assert!(!bob_list.0.contains_key("ann@a.test"), "{:?}", bob_list.0);

    // Only b.test allowed: both see each other again, bob as online.
    let allow = ExternalAccess::AllowList {
        domains: vec!["b.test".into()],
    };
    relay
        .ops()
        .set_external_access("a.test", &allow)
        .await
        .expect("allow b.test");
    list.wait_for(&mut ann, "bob@b.test", Some(Status::Online))
        .await;
    bob_list
        .wait_for(&mut bob, "ann@a.test", Some(Status::Online))
        .await;
    relay.stop().await;
}

#[tokio::test]
async fn new_and_removed_accounts_reach_open_lists() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    let (mut ann, mut list) = signed_in(&relay, "ann@a.test").await;

    relay.add_user("cid@a.test", false).await;
    list.wait_for(&mut ann, "cid@a.test", Some(Status::Offline))
        .await;

    relay.ops().remove_user("cid@a.test").await.expect("remove");
    list.wait_for(&mut ann, "cid@a.test", None).await;
    // Ann never sees herself.
    assert!(!list.0.contains_key("ann@a.test"));
    relay.stop().await;
}

/// Merges presence messages until `user` is listed with display name `want`.
async fn wait_for_name(c: &mut Client, user: &str, want: Option<&str>) {
    loop {
        let m = c
            .try_recv_any(WAIT)
            .await
            .unwrap_or_else(|| panic!("{user} never got the display name {want:?}"));
        if let RelayMsg::Presence { contacts } = m
            && let Some(p) = contacts.iter().find(|p| p.user == user)
            && p.name.as_deref() == want
        {
            assert_ne!(p.status, Status::Removed);
            return;
        }
    }
}

#[tokio::test]
async fn display_names_reach_open_lists_and_are_checked() {
    let relay = start().await;
    relay.add_user("root@a.test", true).await;
    relay.add_user("ann@a.test", false).await;
    relay.add_user("bob@a.test", false).await;
    relay.add_user("eve@b.test", false).await;
    let (mut ann, _) = signed_in(&relay, "ann@a.test").await;
    let cookie = relay.cookie_for("root@a.test").await;

    // The admin names Bob; the name is normalised and reaches Ann's open list.
    let r = relay
        .admin(
            &cookie,
            "PUT",
            "/api/admin/users/bob@a.test/name",
            r#"{"name":"  Bob   Example  "}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(r#""name":"Bob Example""#), "{}", r.body);
    wait_for_name(&mut ann, "bob@a.test", Some("Bob Example")).await;
    // A device that signs in now gets it in its first list.
    let (_, welcome_list) = relay.device("ann@a.test").await;
    drop(welcome_list);
    let users = relay.admin(&cookie, "GET", "/api/admin/users", "").await;
    assert!(
        users.body.contains(r#""name":"Bob Example""#),
        "{}",
        users.body
    );

    // Refused, with nothing written: control and bidi characters, 65 characters,
    // a user of another tenant (not found, as if it did not exist).
    for (body, want) in [
        (r#"{"name":"Bob\u0007"}"#, 400),
        (r#"{"name":"\u202eelA"}"#, 400),
        (&format!(r#"{{"name":"{}"}}"#, "é".repeat(65)), 400),
        (r#"{"name":1}"#, 422),
    ] {
        let r = relay
            .admin(&cookie, "PUT", "/api/admin/users/bob@a.test/name", body)
            .await;
        assert_eq!(r.status, want, "{body}: {}", r.body);
    }
    let r = relay
        .admin(
            &cookie,
            "PUT",
            "/api/admin/users/eve@b.test/name",
            r#"{"name":"Eve"}"#,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let bob = relay
        .state
        .store()
        .user("bob@a.test")
        .await
        .expect("read")
        .expect("bob");
    assert_eq!(bob.display_name, "Bob Example");
    let longest = "é".repeat(64);
    let r = relay
        .admin(
            &cookie,
            "PUT",
            "/api/admin/users/bob@a.test/name",
            &format!(r#"{{"name":"{longest}"}}"#),
        )
        .await;
    assert_eq!(r.status, 200, "64 characters are allowed: {}", r.body);
    wait_for_name(&mut ann, "bob@a.test", Some(&longest)).await;

    // The CLI removes it (an empty name); Ann's list follows within a poll.
    let out = shieldcall(&relay.dir)
        .args(["user", "name", "bob@a.test", ""])
        .output()
        .expect("cli");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for_name(&mut ann, "bob@a.test", None).await;
    let log = relay
        .state
        .store()
        .audit_log("a.test", 10)
        .await
        .expect("audit");
    let names: Vec<(&str, Option<&str>, Option<&str>)> = log
        .iter()
        .filter(|e| e.audit.action == "user.name")
        .map(|e| {
            (
                e.audit.actor.as_str(),
                e.audit.old.as_deref(),
                e.audit.new.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("cli", Some(longest.as_str()), None),
            ("root@a.test", Some("Bob Example"), Some(longest.as_str())),
            ("root@a.test", None, Some("Bob Example")),
        ]
    );
    relay.stop().await;
}
