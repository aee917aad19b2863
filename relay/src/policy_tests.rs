//! Table-driven tests of the policy engine.

use super::*;
use E2eePolicyType::*;

fn policy(identity: &str, kind: E2eePolicyType) -> Policy {
    Policy {
        identity: identity.into(),
        description: String::new(),
        calling_e2ee: kind,
    }
}

/// (policy value, switch) → (enabled, can_change), written out by hand.
const EXPECTED: [(E2eePolicyType, Option<bool>, bool, bool); 12] = [
    (Disabled, None, false, false),
    (Disabled, Some(false), false, false),
    (Disabled, Some(true), false, false),
    (DisabledUserOverride, None, false, true),
    (DisabledUserOverride, Some(false), false, true),
    (DisabledUserOverride, Some(true), true, true),
    (EnabledUserOverride, None, true, true),
    (EnabledUserOverride, Some(false), false, true),
    (EnabledUserOverride, Some(true), true, true),
    (Required, None, true, false),
    (Required, Some(false), true, false),
    (Required, Some(true), true, false),
];

#[derive(Debug, Clone, Copy)]
enum Via {
    Direct,
    Group,
    GlobalAssignment,
    GlobalPolicy,
}

#[test]
fn every_value_by_every_assignment_kind_and_switch() {
    for (kind, switch, enabled, can_change) in EXPECTED {
        for via in [
            Via::Direct,
            Via::Group,
            Via::GlobalAssignment,
            Via::GlobalPolicy,
        ] {
            // The decoy policies differ from `kind`'s outcome so a wrong pick shows.
            let mut policies = vec![policy("Tag:Decoy", Disabled)];
            let mut assignments = Vec::new();
            let (identity, source) = match via {
                Via::GlobalPolicy => {
                    policies.push(policy(GLOBAL, kind));
                    (GLOBAL, PolicySource::Global)
                }
                other => {
                    policies.push(policy(GLOBAL, Disabled));
                    policies.push(policy("Tag:Test", kind));
                    let (target, source) = match other {
                        Via::Direct => (
                            Target::User {
                                user: "ann@a.test".into(),
                            },
                            PolicySource::Direct,
                        ),
                        Via::Group => (
                            Target::Group {
                                group: "sales".into(),
                                rank: Some(2),
                            },
                            PolicySource::Group {
                                group: "sales".into(),
                                rank: Some(2),
                            },
                        ),
                        _ => (Target::Global, PolicySource::Global),
                    };
                    assignments.push(Assignment {
                        target,
                        policy: "Tag:Test".into(),
                    });
                    ("Tag:Test", source)
                }
            };
            // Assignments to someone else and to a group ann is not in never apply.
            assignments.push(Assignment {
                target: Target::User {
                    user: "bob@a.test".into(),
                },
                policy: "Tag:Decoy".into(),
            });
            assignments.push(Assignment {
                target: Target::Group {
                    group: "other".into(),
                    rank: Some(1),
                },
                policy: "Tag:Decoy".into(),
            });
            let got = effective_setting(
                &policies,
                &assignments,
                "ann@a.test",
                &["sales".to_string()],
                switch,
            );
            let ctx = format!("{kind} via {via:?} switch {switch:?}");
            assert_eq!(got.enabled, enabled, "{ctx}");
            assert_eq!(got.can_change, can_change, "{ctx}");
            assert_eq!(got.policy, kind, "{ctx}");
            assert_eq!(got.policy_identity, identity, "{ctx}");
            assert_eq!(got.source, source, "{ctx}");
        }
    }
}

fn group(group: &str, rank: Option<u32>, policy: &str) -> Assignment {
    Assignment {
        target: Target::Group {
            group: group.into(),
            rank,
        },
        policy: policy.into(),
    }
}

fn pick(assignments: &[Assignment], groups: &[&str]) -> (String, PolicySource) {
    let policies = [
        policy(GLOBAL, EnabledUserOverride),
        policy("Tag:A", Disabled),
        policy("Tag:B", Required),
        policy("Tag:C", DisabledUserOverride),
    ];
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    let s = effective_setting(&policies, assignments, "ann@a.test", &groups, None);
    (s.policy_identity, s.source)
}

#[test]
fn precedence() {
    let direct = Assignment {
        target: Target::User {
            user: "ann@a.test".into(),
        },
        policy: "Tag:C".into(),
    };
    let global = Assignment {
        target: Target::Global,
        policy: "Tag:A".into(),
    };
    // Direct beats groups and the tenant-wide assignment.
    let all = [group("g1", Some(1), "Tag:B"), global.clone(), direct];
    assert_eq!(pick(&all, &["g1"]), ("Tag:C".into(), PolicySource::Direct));
    // A group beats the tenant-wide assignment, which beats Global.
    let (id, _) = pick(&[group("g1", None, "Tag:B"), global.clone()], &["g1"]);
    assert_eq!(id, "Tag:B");
    assert_eq!(pick(&[global], &[]), ("Tag:A".into(), PolicySource::Global));
    assert_eq!(pick(&[], &["g1"]), (GLOBAL.into(), PolicySource::Global));
    // Rank 1 beats rank 2; ranked beats unranked.
    let ranks = [
        group("g2", Some(2), "Tag:A"),
        group("g1", Some(1), "Tag:B"),
        group("g0", None, "Tag:C"),
    ];
    assert_eq!(pick(&ranks, &["g0", "g1", "g2"]).0, "Tag:B");
    assert_eq!(pick(&ranks, &["g0", "g2"]).0, "Tag:A");
    assert_eq!(pick(&ranks, &["g0"]).0, "Tag:C");
    // Ties break by group name, whatever the storage order.
    let tie = [
        group("zeta", Some(3), "Tag:A"),
        group("alpha", Some(3), "Tag:B"),
    ];
    assert_eq!(
        pick(&tie, &["zeta", "alpha"]),
        (
            "Tag:B".into(),
            PolicySource::Group {
                group: "alpha".into(),
                rank: Some(3)
            }
        )
    );
    let tie = [group("zeta", None, "Tag:A"), group("alpha", None, "Tag:B")];
    assert_eq!(pick(&tie, &["zeta", "alpha"]).0, "Tag:B");
    // An assignment to a missing policy is skipped.
    assert_eq!(pick(&[group("g1", Some(1), "Tag:Gone")], &["g1"]).0, GLOBAL);
}

#[test]
fn missing_global_falls_back_to_default() {
    let s = effective_setting(&[], &[], "ann@a.test", &[], None);
    assert_eq!(s.policy, DEFAULT_GLOBAL);
    assert!(s.enabled);
}

fn setting(kind: E2eePolicyType, switch: Option<bool>) -> E2eeSetting {
    effective_setting(&[policy(GLOBAL, kind)], &[], "x@a.test", &[], switch)
}

#[test]
fn call_mode_matrix() {
    let switches = [None, Some(false), Some(true)];
    for a_kind in E2eePolicyType::ALL {
        for b_kind in E2eePolicyType::ALL {
            for a_sw in switches {
                for b_sw in switches {
                    let (sa, sb) = (setting(a_kind, a_sw), setting(b_kind, b_sw));
                    let all = ExternalAccess::AllowAll;
                    let a = Party {
                        user: "ann@a.test",
                        setting: &sa,
                        access: &all,
                    };
                    let b = Party {
                        user: "bob@b.test",
                        setting: &sb,
                        access: &all,
                    };
                    let got = decide_call(a, b);
                    let want = if sa.enabled && sb.enabled {
                        Ok(CallMode::E2ee)
                    } else if a_kind == Required {
                        Err(Some("ann@a.test"))
                    } else if b_kind == Required {
                        Err(Some("bob@b.test"))
                    } else {
                        Ok(CallMode::Standard)
                    };
                    let got = got.map_err(|r| {
                        assert_eq!(r.reason, RefuseReason::E2eeRequired);
                        r.required_by
                    });
                    assert_eq!(
                        got,
                        want.map_err(|u| u.map(String::from)),
                        "{a_kind}/{a_sw:?} -> {b_kind}/{b_sw:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn external_access() {
    let s = setting(EnabledUserOverride, None);
    let list = ExternalAccess::AllowList {
        domains: vec!["b.test".into()],
    };
    let cases = [
        (ExternalAccess::AllowAll, ExternalAccess::AllowAll, true),
        (list.clone(), ExternalAccess::AllowAll, true),
        (
            ExternalAccess::AllowList {
                domains: vec!["c.test".into()],
            },
            ExternalAccess::AllowAll,
            false,
        ),
        (ExternalAccess::AllowAll, ExternalAccess::Block, false),
        (ExternalAccess::Block, ExternalAccess::AllowAll, false),
    ];
    for (a_access, b_access, ok) in cases {
        let a = Party {
            user: "ann@a.test",
            setting: &s,
            access: &a_access,
        };
        let b = Party {
            user: "bob@b.test",
            setting: &s,
            access: &b_access,
        };
        let got = decide_call(a, b);
        if ok {
            assert_eq!(got, Ok(CallMode::E2ee));
        } else {
            assert_eq!(got.map_err(|r| r.reason), Err(RefuseReason::NotAllowed));
        }
        // Inside one tenant, external access never matters.
        let c = Party {
            user: "cid@a.test",
            setting: &s,
            access: &b_access,
        };
        assert_eq!(decide_call(a, c), Ok(CallMode::E2ee));
    }
}

#[test]
fn identities() {
    assert!(valid_identity("Global"));
    assert!(valid_identity("Tag:Finance"));
    assert!(!valid_identity("Tag:"));
    assert!(!valid_identity("Finance"));
    assert!(!valid_identity("Tag:a/b"));
}
