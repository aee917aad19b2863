//! Administrative operations, shared by the CLI and the admin API: validation,
//! old → new for the audit log, then one store call.
//!
//! Nothing here knows about HTTP or the terminal, and nothing here hashes
//! passwords: callers pass a finished Argon2id hash.

use shieldcall_proto::{E2eePolicyType, E2eeSetting, MAX_DISPLAY_NAME_CHARS};

use crate::error::{Error, Result};
use crate::policy::{self, CallingPolicy, DEFAULT_GLOBAL, ExternalAccess, GLOBAL, Policy, Target};
use crate::store::{Audit, Store, User};

/// How often a compare-and-set write is tried again after a concurrent change.
/// Each round one of the competing writers wins, so N writers at once need at
/// most N rounds; past this many the caller gets `changed` (409).
const CAS_TRIES: u32 = 64;

/// Runs a read-then-compare-and-set attempt (an `async` block, made anew each
/// round) again while the store answers [`Error::Changed`] (someone changed the
/// value between the read and the write), at most [`CAS_TRIES`] times.
macro_rules! retry_changed {
    ($attempt:expr) => {{
        let mut tries = 0;
        loop {
            match $attempt.await {
                Err(Error::Changed(_)) if tries < CAS_TRIES => tries += 1,
                other => break other,
            }
        }
    }};
}

/// Checks and normalises a user name: `name@domain`, lower case, plain characters.
pub fn normalize_user(name: &str) -> Result<String> {
    let name = name.trim().to_ascii_lowercase();
    let ok = name.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && local.len() <= 64
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
            && valid_domain(domain)
    });
    if ok {
        Ok(name)
    } else {
        Err(Error::Invalid(format!(
            "{name:?} is not a user name of the form name@domain"
        )))
    }
}

/// Checks and normalises a display name: trimmed, each run of white space one
/// space, at most [`MAX_DISPLAY_NAME_CHARS`] characters; empty is "none". Control
/// characters and the bidirectional formatting characters are refused: rendered
/// beside an address, they could make one person's name read as another's.
pub fn normalize_display_name(name: &str) -> Result<String> {
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    let bidi = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{061c}');
    if let Some(c) = name.chars().find(|&c| c.is_control() || bidi(c)) {
        return Err(Error::Invalid(format!(
            "a display name cannot contain the character U+{:04X}",
            u32::from(c)
        )));
    }
    if name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(Error::Invalid(format!(
            "a display name has at most {MAX_DISPLAY_NAME_CHARS} characters"
        )));
    }
    Ok(name)
}

/// Checks a mail domain: dot-separated labels of letters, digits and `-`.
pub fn valid_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Checks a group name.
pub fn valid_group(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ' '));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{name:?} is not a group name (letters, digits, - _ . and space)"
        )))
    }
}

/// The operations, done by `actor` (a user name, or `cli`).
#[derive(Debug, Clone, Copy)]
pub struct Ops<'a> {
    /// Where changes go.
    pub store: &'a dyn Store,
    /// Who makes them, for the audit log.
    pub actor: &'a str,
}

impl Ops<'_> {
    fn audit(
        &self,
        domain: &str,
        action: &str,
        target: &str,
        old: Option<String>,
        new: Option<String>,
    ) -> Audit {
        Audit {
            domain: domain.into(),
            actor: self.actor.into(),
            action: action.into(),
            target: target.into(),
            old,
            new,
        }
    }

    /// Adds a user (and their tenant, with `Global` = [`DEFAULT_GLOBAL`], if new).
    pub async fn add_user(&self, name: &str, password_hash: String, admin: bool) -> Result<String> {
        let name = normalize_user(name)?;
        let user = User {
            name: name.clone(),
            password_hash,
            admin,
            e2ee_switch: None,
            display_name: String::new(),
        };
        let global = Policy {
            identity: GLOBAL.into(),
            description: "Tenant default".into(),
            calling_e2ee: DEFAULT_GLOBAL,
        };
        let role = if admin { "admin" } else { "user" };
        let audit = self.audit(user.domain(), "user.add", &name, None, Some(role.into()));
        self.store.add_user(&user, &global, &audit).await?;
        Ok(name)
    }

    /// Replaces a user's password hash; their sessions end.
    pub async fn set_password(&self, name: &str, password_hash: &str) -> Result<()> {
        let name = normalize_user(name)?;
        let audit = self.audit(policy::domain_of(&name), "user.passwd", &name, None, None);
        self.store.set_password(&name, password_hash, &audit).await
    }

    /// Removes a user.
    pub async fn remove_user(&self, name: &str) -> Result<()> {
        let name = normalize_user(name)?;
        let audit = self.audit(policy::domain_of(&name), "user.remove", &name, None, None);
        self.store.remove_user(&name, &audit).await
    }

    /// Sets a user's own E2EE switch, refusing when their policy decides it.
    /// A switch already in position `on` is not written again.
    pub async fn set_switch(&self, name: &str, on: bool) -> Result<E2eeSetting> {
        let before = effective_setting(self.store, name).await?;
        if !before.can_change {
            return Err(Error::Forbidden("the policy decides the E2EE switch"));
        }
        let show = |v: Option<bool>| {
            Some(
                v.map_or("unset", |b| if b { "on" } else { "off" })
                    .to_string(),
            )
        };
        let written = retry_changed!(async {
            let user = self
                .store
                .user(name)
                .await?
                .ok_or_else(|| Error::NotFound(format!("user {name}")))?;
            if user.e2ee_switch == Some(on) {
                // Already so: no write, no audit entry, no change for the watcher.
                return Ok(false);
            }
            let audit = self.audit(
                user.domain(),
                "user.e2ee-switch",
                name,
                show(user.e2ee_switch),
                show(Some(on)),
            );
            self.store
                .set_switch(name, Some(on), user.e2ee_switch, &audit)
                .await
                .map(|()| true)
        })?;
        if !written {
            return Ok(before);
        }
        effective_setting(self.store, name).await
    }

    /// Sets a user's display name (normalised; empty removes it). Returns the
    /// name as stored. An unchanged name writes nothing.
    pub async fn set_display_name(&self, name: &str, display_name: &str) -> Result<String> {
        let name = normalize_user(name)?;
        let display_name = normalize_display_name(display_name)?;
        retry_changed!(async {
            let user = self
                .store
                .user(&name)
                .await?
                .ok_or_else(|| Error::NotFound(format!("user {name}")))?;
            if user.display_name == display_name {
                return Ok(());
            }
            let show = |n: &str| (!n.is_empty()).then(|| n.to_string());
            let audit = self.audit(
                user.domain(),
                "user.name",
                &name,
                show(&user.display_name),
                show(&display_name),
            );
            self.store
                .set_display_name(&name, &display_name, &user.display_name, &audit)
                .await
        })?;
        Ok(display_name)
    }

    /// Adds a group.
    pub async fn add_group(&self, domain: &str, name: &str) -> Result<()> {
        valid_group(name)?;
        let audit = self.audit(domain, "group.add", name, None, None);
        self.store.add_group(domain, name, &audit).await
    }

    /// Removes a group, its memberships and its assignment.
    pub async fn remove_group(&self, domain: &str, name: &str) -> Result<()> {
        let audit = self.audit(domain, "group.remove", name, None, None);
        self.store.remove_group(domain, name, &audit).await
    }

    /// Adds a user of the tenant to a group.
    pub async fn add_member(&self, domain: &str, group: &str, user: &str) -> Result<()> {
        let user = normalize_user(user)?;
        if policy::domain_of(&user) != domain {
            return Err(Error::Invalid(format!("{user} is not in tenant {domain}")));
        }
        let audit = self.audit(domain, "group.member.add", group, None, Some(user.clone()));
        self.store.add_member(domain, group, &user, &audit).await
    }

    /// Removes a user from a group.
    pub async fn remove_member(&self, domain: &str, group: &str, user: &str) -> Result<()> {
        let user = normalize_user(user)?;
        let audit = self.audit(
            domain,
            "group.member.remove",
            group,
            Some(user.clone()),
            None,
        );
        self.store.remove_member(domain, group, &user, &audit).await
    }

    /// The tenant's policies, or the one named.
    pub async fn get_policies(&self, domain: &str, identity: Option<&str>) -> Result<Vec<Policy>> {
        let all = self.store.policies(domain).await?;
        match identity {
            None => Ok(all),
            Some(id) => {
                let one: Vec<Policy> = all.into_iter().filter(|p| p.identity == id).collect();
                if one.is_empty() {
                    Err(Error::NotFound(format!("policy {id}")))
                } else {
                    Ok(one)
                }
            }
        }
    }

    /// `New-CsTeamsEnhancedEncryptionPolicy`. The value defaults to `Disabled`, as in Teams.
    pub async fn new_policy(
        &self,
        domain: &str,
        identity: &str,
        description: Option<&str>,
        kind: Option<E2eePolicyType>,
    ) -> Result<Policy> {
        if !policy::valid_identity(identity) || identity == GLOBAL {
            return Err(Error::Invalid(format!(
                "{identity:?}: a new policy's identity is Tag:<name>"
            )));
        }
        let p = Policy {
            identity: identity.into(),
            description: description.unwrap_or_default().into(),
            calling_e2ee: kind.unwrap_or(E2eePolicyType::Disabled),
        };
        let audit = self.audit(
            domain,
            "policy.new",
            identity,
            None,
            Some(p.calling_e2ee.to_string()),
        );
        self.store.put_policy(domain, &p, None, &audit).await?;
        Ok(p)
    }

    /// One policy, or `NotFound`.
    async fn policy(&self, domain: &str, identity: &str) -> Result<Policy> {
        self.get_policies(domain, Some(identity))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::NotFound(format!("policy {identity}")))
    }

    /// `Set-CsTeamsEnhancedEncryptionPolicy`: changes what is given.
    pub async fn set_policy(
        &self,
        domain: &str,
        identity: &str,
        description: Option<&str>,
        kind: Option<E2eePolicyType>,
    ) -> Result<Policy> {
        retry_changed!(async {
            let old = self.policy(domain, identity).await?;
            let new = Policy {
                identity: identity.into(),
                description: description.map_or_else(|| old.description.clone(), String::from),
                calling_e2ee: kind.unwrap_or(old.calling_e2ee),
            };
            let show = |p: &Policy| Some(format!("{} ({:?})", p.calling_e2ee, p.description));
            let audit = self.audit(domain, "policy.set", identity, show(&old), show(&new));
            self.store
                .put_policy(domain, &new, Some(&old), &audit)
                .await
                .map(|()| new)
        })
    }

    /// `Remove-CsTeamsEnhancedEncryptionPolicy`: also removes every assignment of
    /// it, so its users fall back to the next rule. `Global` is never removed.
    pub async fn remove_policy(&self, domain: &str, identity: &str) -> Result<()> {
        if identity == GLOBAL {
            return Err(Error::GlobalPermanent);
        }
        retry_changed!(async {
            let old = self.policy(domain, identity).await?;
            let shown = Some(old.calling_e2ee.to_string());
            let audit = self.audit(domain, "policy.remove", identity, shown, None);
            self.store.remove_policy(domain, &old, &audit).await
        })
    }

    /// `Grant-CsTeamsEnhancedEncryptionPolicy`: `policy` `None` (or empty) unassigns.
    pub async fn grant(
        &self,
        domain: &str,
        target: &Target,
        policy_name: Option<&str>,
    ) -> Result<()> {
        let policy_name = policy_name.filter(|p| !p.is_empty());
        let target = match target {
            Target::User { user } => {
                let user = normalize_user(user)?;
                if policy::domain_of(&user) != domain {
                    return Err(Error::Invalid(format!("{user} is not in tenant {domain}")));
                }
                if self.store.user(&user).await?.is_none() {
                    return Err(Error::NotFound(format!("user {user}")));
                }
                Target::User { user }
            }
            Target::Group { group, rank } => {
                if rank == &Some(0) {
                    return Err(Error::Invalid("rank starts at 1 (the highest)".into()));
                }
                if !self
                    .store
                    .groups(domain)
                    .await?
                    .iter()
                    .any(|g| &g.name == group)
                {
                    return Err(Error::NotFound(format!("group {group}")));
                }
                Target::Group {
                    group: group.clone(),
                    rank: *rank,
                }
            }
            Target::Global => Target::Global,
        };
        let (label, rank) = match &target {
            Target::User { user } => (format!("user:{user}"), None),
            Target::Group { group, rank } => (format!("group:{group}"), *rank),
            Target::Global => ("global".to_string(), None),
        };
        let new = policy_name.map(|p| match rank {
            Some(r) => format!("{p} (rank {r})"),
            None => p.to_string(),
        });
        retry_changed!(async {
            let old = self
                .store
                .assignments(domain)
                .await?
                .into_iter()
                .find(|a| same_target(&a.target, &target))
                .map(|a| a.policy);
            let audit = self.audit(domain, "grant", &label, old.clone(), new.clone());
            self.store
                .assign(domain, &target, policy_name, old.as_deref(), &audit)
                .await
        })
    }

    /// The tenant of `domain`, as stored now.
    async fn tenant(&self, domain: &str) -> Result<crate::store::Tenant> {
        self.store
            .tenants()
            .await?
            .into_iter()
            .find(|t| t.domain == domain)
            .ok_or_else(|| Error::NotFound(format!("tenant {domain}")))
    }

    /// Sets the tenant's external access.
    pub async fn set_external_access(&self, domain: &str, access: &ExternalAccess) -> Result<()> {
        for d in match access {
            ExternalAccess::AllowList { domains } => domains.as_slice(),
            _ => &[],
        } {
            if !valid_domain(d) {
                return Err(Error::Invalid(format!("{d:?} is not a domain")));
            }
        }
        let show = |a: &ExternalAccess| Some(serde_json::to_string(a).unwrap_or_default());
        retry_changed!(async {
            let old = self.tenant(domain).await?;
            let audit = self.audit(
                domain,
                "external-access",
                domain,
                show(&old.external_access),
                show(access),
            );
            self.store
                .set_external_access(domain, access, &old.external_access, &audit)
                .await
        })
    }

    /// Sets the tenant's calling policy (what its people may have the server
    /// do in their calls).
    pub async fn set_calling_policy(&self, domain: &str, policy: &CallingPolicy) -> Result<()> {
        let show = |p: &CallingPolicy| Some(serde_json::to_string(p).unwrap_or_default());
        retry_changed!(async {
            let old = self.tenant(domain).await?;
            let audit = self.audit(
                domain,
                "calling-policy",
                domain,
                show(&old.calling),
                show(policy),
            );
            self.store
                .set_calling_policy(domain, policy, &old.calling, &audit)
                .await
        })
    }
}

fn same_target(a: &Target, b: &Target) -> bool {
    match (a, b) {
        (Target::User { user: x }, Target::User { user: y }) => x == y,
        (Target::Group { group: x, .. }, Target::Group { group: y, .. }) => x == y,
        (Target::Global, Target::Global) => true,
        _ => false,
    }
}

/// A user's effective E2EE setting, read from the store.
pub async fn effective_setting(store: &dyn Store, user: &str) -> Result<E2eeSetting> {
    let u = store
        .user(user)
        .await?
        .ok_or_else(|| Error::NotFound(format!("user {user}")))?;
    let domain = u.domain();
    let policies = store.policies(domain).await?;
    let assignments = store.assignments(domain).await?;
    let groups = store.groups_of(user).await?;
    Ok(policy::effective_setting(
        &policies,
        &assignments,
        user,
        &groups,
        u.e2ee_switch,
    ))
}
