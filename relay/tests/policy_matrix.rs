//! The whole policy matrix through a real relay: every policy value × how it is
//! assigned (direct, group, the tenant's Global) × the user's switch (never set,
//! off, on), on both sides of a call, within one tenant and across tenants. Each
//! pair is called once and the mode or refusal checked on both sides.

mod common;

use common::*;
use shieldcall_proto::{CallMode, ClientMsg, E2eePolicyType, RefuseReason, RelayMsg};
use shieldcall_relay::policy::{ExternalAccess, Target};
use shieldcall_relay::store::Audit;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Via {
    Direct,
    Group,
    Global,
}

#[derive(Debug, Clone, Copy)]
struct Side {
    value: E2eePolicyType,
    via: Via,
    switch: Option<bool>,
}

/// The switch as the spec defines it, written out rather than calling the engine.
fn enabled(s: Side) -> bool {
    use E2eePolicyType::*;
    match s.value {
        Disabled => false,
        DisabledUserOverride => s.switch == Some(true),
        EnabledUserOverride => s.switch != Some(false),
        Required => true,
    }
}

fn all_sides() -> Vec<Side> {
    let mut out = Vec::new();
    for value in E2eePolicyType::ALL {
        for via in [Via::Direct, Via::Group, Via::Global] {
            for switch in [None, Some(false), Some(true)] {
                out.push(Side { value, via, switch });
            }
        }
    }
    out
}

fn audit() -> Audit {
    Audit {
        domain: String::new(),
        actor: "test".into(),
        action: "test".into(),
        target: String::new(),
        old: None,
        new: None,
    }
}

/// Prepares tenant `base` (direct and group assignments) and one tenant per value
/// for the Global cases (`<value>.<base>`), and creates a user for `side`.
async fn user_for(relay: &Relay, base: &str, side: Side, tag: &str) -> String {
    let value = side.value.as_str().to_ascii_lowercase();
    let sw = match side.switch {
        None => "unset",
        Some(true) => "on",
        Some(false) => "off",
    };
    let via = format!("{:?}", side.via).to_ascii_lowercase();
    let domain = match side.via {
        Via::Global => format!("{value}.{base}"),
        _ => base.to_string(),
    };
    let user = format!("{tag}-{value}-{via}-{sw}@{domain}");
    relay.add_user(&user, false).await;
    let ops = relay.ops();
    let tag_name = format!("Tag:{}", side.value);
    match side.via {
        Via::Global => {
            ops.set_policy(&domain, "Global", None, Some(side.value))
                .await
                .expect("set Global");
        }
        Via::Direct => {
            let _ = ops
                .new_policy(&domain, &tag_name, None, Some(side.value))
                .await;
            ops.grant(
                &domain,
                &Target::User { user: user.clone() },
                Some(&tag_name),
            )
            .await
            .expect("grant");
        }
        Via::Group => {
            let _ = ops
                .new_policy(&domain, &tag_name, None, Some(side.value))
                .await;
            let group = format!("grp-{value}");
            if ops.add_group(&domain, &group).await.is_ok() {
                let target = Target::Group {
                    group: group.clone(),
                    rank: Some(1),
                };
                ops.grant(&domain, &target, Some(&tag_name))
                    .await
                    .expect("grant group");
            }
            ops.add_member(&domain, &group, &user)
                .await
                .expect("member");
        }
    }
    // Store the switch directly: under Disabled/Required the user could not set it,
    // but a value stored earlier must not matter either.
    let store = relay.state.store();
    let before = store
        .user(&user)
        .await
        .expect("user")
        .expect("exists")
        .e2ee_switch;
    store
        .set_switch(&user, side.switch, before, &audit())
        .await
        .expect("switch");
    user
}

async fn check_pair(caller: &mut (Side, String, Client), callee: &mut (Side, String, Client)) {
    let (cs, cu, cc) = (caller.0, caller.1.clone(), &mut caller.2);
    let (es, eu, ec) = (callee.0, callee.1.clone(), &mut callee.2);
    let ctx = format!("{cs:?} -> {es:?}");
    cc.send(&ClientMsg::Invite {
        to: eu.clone(),
        transfer: None,
    })
    .await;
    let want: Result<CallMode, &str> = if enabled(cs) && enabled(es) {
        Ok(CallMode::E2ee)
    } else if cs.value == E2eePolicyType::Required {
        Err(&cu)
    } else if es.value == E2eePolicyType::Required {
        Err(&eu)
    } else {
        Ok(CallMode::Standard)
    };
    match (want, cc.recv().await) {
        (
            Ok(mode),
            RelayMsg::Calling {
                call_id, mode: got, ..
            },
        ) => {
            assert_eq!(got, mode, "{ctx}");
            match ec.recv().await {
                RelayMsg::Incoming { mode: got, .. } => assert_eq!(got, mode, "{ctx}"),
                other => panic!("{ctx}: callee got {other:?}"),
            }
            cc.send(&ClientMsg::Cancel {
                call_id: call_id.clone(),
            })
            .await;
            assert_eq!(ec.recv().await, RelayMsg::Cancelled { call_id }, "{ctx}");
        }
        (
            Err(by),
            RelayMsg::CallRefused {
                reason,
                required_by,
                ..
            },
        ) => {
            assert_eq!(reason, RefuseReason::E2eeRequired, "{ctx}");
            assert_eq!(required_by.as_deref(), Some(by), "{ctx}");
            match ec.recv().await {
                RelayMsg::CallRefused {
                    reason,
                    required_by,
                    peer,
                    ..
                } => {
                    assert_eq!(
                        (reason, required_by.as_deref(), peer.as_str()),
                        (RefuseReason::E2eeRequired, Some(by), cu.as_str()),
                        "{ctx}"
                    );
                }
                other => panic!("{ctx}: callee got {other:?}"),
            }
        }
        (want, got) => panic!("{ctx}: wanted {want:?}, got {got:?}"),
    }
}

/// A relay whose per-connection rate limit does not get in the way: each caller
/// here sends two messages per callee, faster than a person would.
async fn fast_relay() -> Relay {
    start_with(temp_dir(), |c| {
        c.msg_rate = 10_000.0;
        c.msg_burst = 10_000.0;
    })
    .await
}

async fn connect_all(relay: &Relay, base: &str, tag: &str) -> Vec<(Side, String, Client)> {
    let mut out = Vec::new();
    for side in all_sides() {
        let user = user_for(relay, base, side, tag).await;
        let (c, _) = relay.device(&user).await;
        out.push((side, user, c));
    }
    out
}

#[tokio::test]
async fn matrix_across_tenants() {
    let relay = fast_relay().await;
    let mut callers = connect_all(&relay, "a.test", "c").await;
    let mut callees = connect_all(&relay, "b.test", "e").await;
    for caller in callers.iter_mut() {
        for callee in callees.iter_mut() {
            check_pair(caller, callee).await;
        }
    }
    relay.stop().await;
}

#[tokio::test]
async fn matrix_within_one_tenant() {
    let relay = fast_relay().await;
    let mut users = connect_all(&relay, "a.test", "u").await;
    let n = users.len();
    for i in 0..n {
        for j in 0..n {
            // Same tenant only: direct and group users share a.test; Global users
            // share a tenant with those of the same value.
            let (a, b) = (users[i].0, users[j].0);
            let same = match (a.via, b.via) {
                (Via::Global, Via::Global) => a.value == b.value,
                (Via::Global, _) | (_, Via::Global) => false,
                _ => true,
            };
            if i == j || !same {
                continue;
            }
            let (lo, hi) = users.split_at_mut(i.max(j));
            let (x, y) = if i < j {
                (&mut lo[i], &mut hi[0])
            } else {
                (&mut hi[0], &mut lo[j])
            };
            check_pair(x, y).await;
        }
    }
    relay.stop().await;
}

#[tokio::test]
async fn external_access_refuses_with_not_allowed() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    relay.add_user("bob@b.test", false).await;
    relay.add_user("cid@c.test", false).await;
    let ops = relay.ops();
    ops.set_external_access(
        "a.test",
        &ExternalAccess::AllowList {
            domains: vec!["b.test".into()],
        },
    )
    .await
    .expect("a");
    ops.set_external_access("c.test", &ExternalAccess::Block)
        .await
        .expect("c");
    // As the admin API does (the change watcher would within a poll).
    relay.state.refresh().await.expect("refresh");
    let (mut ann, _) = relay.device("ann@a.test").await;
    let (mut bob, _) = relay.device("bob@b.test").await;
    let (mut cid, _) = relay.device("cid@c.test").await;
    ann.send(&ClientMsg::Invite {
        to: "cid@c.test".into(),
        transfer: None,
    })
    .await;
    assert!(matches!(
        ann.recv().await,
        RelayMsg::CallRefused {
            reason: RefuseReason::NotAllowed,
            ..
        }
    ));
    cid.send(&ClientMsg::Invite {
        to: "bob@b.test".into(),
        transfer: None,
    })
    .await;
    assert!(matches!(
        cid.recv().await,
        RelayMsg::CallRefused {
            reason: RefuseReason::NotAllowed,
            ..
        }
    ));
    bob.send(&ClientMsg::Invite {
        to: "ann@a.test".into(),
        transfer: None,
    })
    .await;
    assert!(matches!(bob.recv().await, RelayMsg::Calling { .. }));
    relay.stop().await;
}

/// Whether an account exists in a tenant the caller may not reach is not
/// answered: a blocked tenant's real and unknown names both get `not-allowed`,
/// and `unknown-user` only comes from a reachable tenant.
#[tokio::test]
async fn unknown_user_is_not_told_across_a_blocked_tenant() {
    let relay = start().await;
    relay.add_user("ann@a.test", false).await;
    relay.add_user("bob@b.test", false).await;
    relay
        .ops()
        .set_external_access("b.test", &ExternalAccess::Block)
        .await
        .expect("b");
    relay.state.refresh().await.expect("refresh");
    let (mut ann, _) = relay.device("ann@a.test").await;
    for (to, expected) in [
        ("bob@b.test", RefuseReason::NotAllowed),
        ("ghost@b.test", RefuseReason::NotAllowed),
        ("ghost@a.test", RefuseReason::UnknownUser),
    ] {
        ann.send(&ClientMsg::Invite {
            to: to.into(),
            transfer: None,
        })
        .await;
        match ann.recv().await {
            RelayMsg::CallRefused { reason, .. } => assert_eq!(reason, expected, "{to}"),
            other => panic!("{to}: {other:?}"),
        }
    }
    relay.stop().await;
}
