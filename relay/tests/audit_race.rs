//! Two admins (or an admin and the CLI) changing one policy at the same moment:
//! every audit entry's old value is the value its write really replaced, so the
//! log reads as one chain, each entry's "old" the previous entry's "new".

mod common;

use common::*;

/// The tenant's audit entries for `action` on `target`, oldest first.
async fn audited(
    relay: &Relay,
    action: &str,
    target: &str,
) -> Vec<shieldcall_relay::store::AuditEntry> {
    let mut entries: Vec<_> = relay
        .state
        .store()
        .audit_log("a.test", 100)
        .await
        .expect("audit")
        .into_iter()
        .filter(|e| e.audit.action == action && e.audit.target == target)
        .collect();
    entries.sort_by_key(|e| e.id);
    entries
}

#[tokio::test]
async fn concurrent_policy_changes_leave_a_consistent_audit_chain() {
    let relay = start().await;
    relay.add_user("adm@a.test", true).await;
    let ops = relay.ops();
    ops.new_policy("a.test", "Tag:Race", Some("d0"), None)
        .await
        .expect("new policy");
    let changes = (1..=16).map(|i| {
        let ops = relay.ops();
        async move {
            let d = format!("d{i}");
            ops.set_policy("a.test", "Tag:Race", Some(&d), None)
                .await
                .expect("set policy")
        }
    });
    futures_util::future::join_all(changes).await;
    let entries = audited(&relay, "policy.set", "Tag:Race").await;
    assert_eq!(entries.len(), 16);
    assert!(
        entries[0]
            .audit
            .old
            .as_deref()
            .is_some_and(|o| o.contains("\"d0\"")),
        "{:?}",
        entries[0]
    );
    for pair in entries.windows(2) {
        assert_eq!(
            pair[1].audit.old, pair[0].audit.new,
            "entry {} says it replaced what entry {} did not write",
            pair[1].id, pair[0].id
        );
    }
    relay.stop().await;
}

/// The same for grants: concurrent grants to one user chain up.
#[tokio::test]
async fn concurrent_grants_leave_a_consistent_audit_chain() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    let ops = relay.ops();
    for p in ["Tag:P1", "Tag:P2", "Tag:P3"] {
        ops.new_policy("a.test", p, None, None)
            .await
            .expect("policy");
    }
    let target = shieldcall_relay::policy::Target::User {
        user: "ann@a.test".into(),
    };
    let grants = (0..12).map(|i| {
        let ops = relay.ops();
        let target = target.clone();
        async move {
            let p = ["Tag:P1", "Tag:P2", "Tag:P3"][i % 3];
            ops.grant("a.test", &target, Some(p)).await.expect("grant");
        }
    });
    futures_util::future::join_all(grants).await;
    let entries = audited(&relay, "grant", "user:ann@a.test").await;
    assert_eq!(entries.len(), 12);
    assert_eq!(entries[0].audit.old, None);
    for pair in entries.windows(2) {
        assert_eq!(pair[1].audit.old, pair[0].audit.new, "entry {}", pair[1].id);
    }
    relay.stop().await;
}
