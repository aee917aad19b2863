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
