//! The policy engine: pure functions, no database, no clock.
//!
//! [`effective_setting`] turns a tenant's policies and assignments, the groups of a
//! user and the user's own switch into the user's [`E2eeSetting`]. [`decide_call`]
//! turns both parties' settings and tenants into a [`CallMode`] or a [`Refusal`].
//!
//! Precedence (see `docs/policy.md`): a direct assignment beats every group
//! assignment; among groups the lowest rank wins (rank 1 is highest), unranked
//! assignments come after all ranked ones, and a tie is broken by the group name in
//! byte order, so the result never depends on storage order; then the tenant-wide
//! (`--global`) assignment; then the tenant's `Global` policy.

use serde::{Deserialize, Serialize};
pub use shieldcall_proto::admin::{
    Assignment, CallingPolicy, DEFAULT_CALLING_POLICY, Policy, Target,
};
use shieldcall_proto::{CallMode, E2eePolicyType, E2eeSetting, PolicySource, RefuseReason};

/// The identity of every tenant's built-in policy.
pub const GLOBAL: &str = "Global";

/// What a tenant's `Global` policy is when the tenant is created (Teams: `Disabled`).
pub const DEFAULT_GLOBAL: E2eePolicyType = E2eePolicyType::EnabledUserOverride;

/// Checks a policy identity: `Global` or `Tag:<name>` with a short plain name.
pub fn valid_identity(identity: &str) -> bool {
    if identity == GLOBAL {
        return true;
    }
    identity.strip_prefix("Tag:").is_some_and(|name| {
        !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ' '))
    })
}

/// The E2EE setting of `user`, a member of `groups`, whose switch is `switch`
/// (`None`: never touched), under the tenant's `policies` and `assignments`.
///
/// Assignments naming a policy that does not exist are skipped. A tenant without a
/// `Global` policy (never the case in a valid store) falls back to
/// [`DEFAULT_GLOBAL`].
pub fn effective_setting(
    policies: &[Policy],
    assignments: &[Assignment],
    user: &str,
    groups: &[String],
    switch: Option<bool>,
) -> E2eeSetting {
    let find = |identity: &str| policies.iter().find(|p| p.identity == identity);
    let direct = assignments.iter().find_map(|a| match &a.target {
        Target::User { user: u } if u == user => find(&a.policy).map(|p| (p, PolicySource::Direct)),
        _ => None,
    });
    let group = || {
        let mut candidates: Vec<(Option<u32>, &str, &Policy)> = assignments
            .iter()
            .filter_map(|a| match &a.target {
                Target::Group { group, rank } if groups.iter().any(|g| g == group) => {
                    find(&a.policy).map(|p| (*rank, group.as_str(), p))
                }
                _ => None,
            })
            .collect();
        // Ranked before unranked, lower rank first, then group name.
        candidates.sort_by(|a, b| (a.0.is_none(), a.0, a.1).cmp(&(b.0.is_none(), b.0, b.1)));
        candidates.first().map(|(rank, group, p)| {
            (
                *p,
                PolicySource::Group {
                    group: (*group).to_string(),
                    rank: *rank,
                },
            )
        })
    };
    let global = || {
        assignments
            .iter()
            .find_map(|a| match a.target {
                Target::Global => find(&a.policy),
                _ => None,
            })
            .or_else(|| find(GLOBAL))
            .map(|p| (p, PolicySource::Global))
    };
    let (identity, kind, source) = match direct.or_else(group).or_else(global) {
        Some((p, source)) => (p.identity.clone(), p.calling_e2ee, source),
        None => (GLOBAL.to_string(), DEFAULT_GLOBAL, PolicySource::Global),
    };
    E2eeSetting {
        enabled: kind.effective(switch),
        can_change: kind.user_can_change(),
        policy: kind,
        policy_identity: identity,
        source,
    }
}

/// A tenant's external access: whom its users may call and see outside the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum ExternalAccess {
    /// Every other tenant (the default, as in Teams).
    AllowAll,
    /// Only the listed domains.
    AllowList {
        /// Allowed mail domains.
        domains: Vec<String>,
    },
    /// No other tenant.
    Block,
}

impl ExternalAccess {
    /// Whether users of this tenant may reach users of `domain` (another tenant).
    pub fn allows(&self, domain: &str) -> bool {
        match self {
            Self::AllowAll => true,
            Self::AllowList { domains } => domains.iter().any(|d| d.eq_ignore_ascii_case(domain)),
            Self::Block => false,
        }
    }

    /// The mode's name as stored and shown: `allow-all`, `allow-list`, `block`.
    pub fn mode_name(&self) -> &'static str {
        match self {
            Self::AllowAll => "allow-all",
            Self::AllowList { .. } => "allow-list",
            Self::Block => "block",
        }
    }
}

/// The external access of a new tenant, and so of a domain the relay knows no
/// tenant for (it has no users; a call there is answered `unknown-user` only if
/// the caller's own tenant allows reaching it at all).
pub const DEFAULT_EXTERNAL_ACCESS: ExternalAccess = ExternalAccess::AllowAll;

/// The external access of `domain` among the tenants in `known`: the one lookup
/// that both the call decision and the contact lists use.
pub fn access_in<'a>(
    known: &'a std::collections::HashMap<String, ExternalAccess>,
    domain: &str,
) -> &'a ExternalAccess {
    known.get(domain).unwrap_or(&DEFAULT_EXTERNAL_ACCESS)
}

/// The domain part of `name@domain` (empty if there is none).
pub fn domain_of(user: &str) -> &str {
    user.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
}

/// Whether two users may see and call each other: same tenant, or both tenants'
/// external access allow the other's domain.
pub fn reachable(
    a_domain: &str,
    a_access: &ExternalAccess,
    b_domain: &str,
    b_access: &ExternalAccess,
) -> bool {
    a_domain == b_domain || (a_access.allows(b_domain) && b_access.allows(a_domain))
}

/// One side of a call, as the decision needs it.
#[derive(Debug, Clone, Copy)]
pub struct Party<'a> {
    /// Full user name.
    pub user: &'a str,
    /// The user's effective setting, judged by their own tenant.
    pub setting: &'a E2eeSetting,
    /// The external access of the user's tenant.
    pub access: &'a ExternalAccess,
}

/// Why a call cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The wire reason.
    pub reason: RefuseReason,
    /// For `e2ee-required`: whose policy requires it.
    pub required_by: Option<String>,
}

/// The mode of a call from `caller` to `callee`, or why there is none.
///
/// E2EE when both settings are on; otherwise standard, unless a party's policy is
/// `Required` (the caller's is checked first), which refuses with `e2ee-required`.
pub fn decide_call(caller: Party<'_>, callee: Party<'_>) -> Result<CallMode, Refusal> {
    let (cd, ed) = (domain_of(caller.user), domain_of(callee.user));
    if !reachable(cd, caller.access, ed, callee.access) {
        return Err(Refusal {
            reason: RefuseReason::NotAllowed,
            required_by: None,
        });
    }
    if caller.setting.enabled && callee.setting.enabled {
        return Ok(CallMode::E2ee);
    }
    for p in [caller, callee] {
        if p.setting.policy == E2eePolicyType::Required {
            return Err(Refusal {
                reason: RefuseReason::E2eeRequired,
                required_by: Some(p.user.to_string()),
            });
        }
    }
    Ok(CallMode::Standard)
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
