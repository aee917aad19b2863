//! The admin subcommands: users, groups, policies, tenants, audit.

use std::io::BufRead;
use std::path::PathBuf;

use super::{Command, GroupCmd, MemberCmd, PolicyCmd, TenantCmd, UserCmd};
use crate::auth::{self, PasswordCost};
use crate::error::{Error, Result};
use crate::ops::{self, Ops};
use crate::policy::{ExternalAccess, Target};
use crate::store::{PostgresStore, SqliteStore, Store};
use shieldcall_proto::admin::GrantForm;

fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::Invalid(format!("reading the password: {e}")))?;
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    if pw.chars().count() < 8 {
        return Err(Error::Invalid(
            "the password must have at least 8 characters".into(),
        ));
    }
    Ok(pw)
}

async fn only_tenant(store: &dyn Store, tenant: Option<String>) -> Result<String> {
    if let Some(t) = tenant {
        return Ok(t.to_ascii_lowercase());
    }
    let all = store.tenants().await?;
    match all.as_slice() {
        [one] => Ok(one.domain.clone()),
        [] => Err(Error::Invalid(
            "there is no tenant yet; add a user first".into(),
        )),
        _ => Err(Error::Invalid(
            "there are several tenants; name one with --tenant".into(),
        )),
    }
}

fn print_policy(p: &crate::policy::Policy) {
    println!("Identity                              : {}", p.identity);
    println!("Description                           : {}", p.description);
    println!("CallingEndtoEndEncryptionEnabledType  : {}", p.calling_e2ee);
    println!();
}

pub(super) async fn admin(
    data_dir: PathBuf,
    database_url: Option<String>,
    cmd: Command,
) -> anyhow::Result<()> {
    // The CLI runs beside a relay, so it does not claim the database as a node.
    let store: Box<dyn Store> = match database_url {
        Some(url) => Box::new(PostgresStore::connect(&url).await?),
        None => Box::new(SqliteStore::open(&data_dir).await?),
    };
    let store: &dyn Store = store.as_ref();
    let ops = Ops {
        store,
        actor: "cli",
    };
    let cost = PasswordCost::default();
    match cmd {
        Command::User(UserCmd::Add {
            user, admin, name, ..
        }) => {
            // A bad display name is refused before anything is written.
            let display = name
                .as_deref()
                .map(ops::normalize_display_name)
                .transpose()?;
            let hash = auth::hash_password(cost, read_password()?).await?;
            let user = ops.add_user(&user, hash, admin).await?;
            if let Some(display) = display.filter(|d| !d.is_empty()) {
                ops.set_display_name(&user, &display).await?;
            }
            println!("added {user}{}", if admin { " (admin)" } else { "" });
        }
        Command::User(UserCmd::Name { user, name }) => {
            let stored = ops.set_display_name(&user, &name).await?;
            if stored.is_empty() {
                println!("{user} has no display name");
            } else {
                println!("{user} is shown as {stored:?}");
            }
        }
        Command::User(UserCmd::Passwd { user, .. }) => {
            let hash = auth::hash_password(cost, read_password()?).await?;
            ops.set_password(&user, &hash).await?;
            println!(
                "password changed; {user}'s sessions are ended (a running relay closes their connections at its next poll, 250 ms by default)"
            );
        }
        Command::User(UserCmd::Remove { user }) => {
            ops.remove_user(&user).await?;
            println!("removed {user}");
        }
        Command::User(UserCmd::List { tenant }) => {
            for u in store.users(tenant.as_deref()).await? {
                let s = ops::effective_setting(store, &u.name).await?;
                let shown = if u.display_name.is_empty() {
                    String::new()
                } else {
                    format!("\tname={}", u.display_name)
                };
                println!(
                    "{}\t{}\te2ee={}\tpolicy={} ({:?}){shown}",
                    u.name,
                    if u.admin { "admin" } else { "user" },
                    if s.enabled { "on" } else { "off" },
                    s.policy_identity,
                    s.source
                );
            }
        }
        Command::Group(GroupCmd::Add { name, tenant }) => {
            let t = only_tenant(store, tenant).await?;
            ops.add_group(&t, &name).await?;
            println!("added group {name} in {t}");
        }
        Command::Group(GroupCmd::Remove { name, tenant }) => {
            let t = only_tenant(store, tenant).await?;
            ops.remove_group(&t, &name).await?;
            println!("removed group {name} from {t}");
        }
        Command::Group(GroupCmd::List { tenant }) => {
            let t = only_tenant(store, tenant).await?;
            for g in store.groups(&t).await? {
                println!("{}\t{}", g.name, g.members.join(" "));
            }
        }
        Command::Group(GroupCmd::Member(MemberCmd::Add { group, user })) => {
            let user = ops::normalize_user(&user)?;
            ops.add_member(crate::policy::domain_of(&user), &group, &user)
                .await?;
            println!("added {user} to {group}");
        }
        Command::Group(GroupCmd::Member(MemberCmd::Remove { group, user })) => {
            let user = ops::normalize_user(&user)?;
            ops.remove_member(crate::policy::domain_of(&user), &group, &user)
                .await?;
            println!("removed {user} from {group}");
        }
        Command::Policy(PolicyCmd::New(f)) => {
            let t = only_tenant(store, f.tenant).await?;
            print_policy(
                &ops.new_policy(&t, &f.identity, f.description.as_deref(), f.calling_e2ee)
                    .await?,
            );
        }
        Command::Policy(PolicyCmd::Set(f)) => {
            let t = only_tenant(store, f.tenant).await?;
            print_policy(
                &ops.set_policy(&t, &f.identity, f.description.as_deref(), f.calling_e2ee)
                    .await?,
            );
        }
        Command::Policy(PolicyCmd::Get { identity, tenant }) => {
            let t = only_tenant(store, tenant).await?;
            for p in ops.get_policies(&t, identity.as_deref()).await? {
                print_policy(&p);
            }
        }
        Command::Policy(PolicyCmd::Remove { identity, tenant }) => {
            let t = only_tenant(store, tenant).await?;
            ops.remove_policy(&t, &identity).await?;
            println!("removed {identity}; its users fall back to their next rule");
        }
        Command::Policy(PolicyCmd::Grant {
            policy_name,
            user,
            group,
            rank,
            global,
            tenant,
        }) => {
            // The API's one rule (`GrantForm::target`), so the CLI refuses
            // what the admin page would (a rank beside a user, say).
            let form = GrantForm {
                policy_name: None,
                user: user.map(|u| ops::normalize_user(&u)).transpose()?,
                group,
                rank,
                global,
            };
            let Ok(target) = form.target() else {
                anyhow::bail!(
                    "give exactly one of --user, --group [--rank N] or --global (--rank goes with --group)"
                );
            };
            let tenant = match &target {
                Target::User { user } => {
                    tenant.unwrap_or_else(|| crate::policy::domain_of(user).to_string())
                }
                Target::Group { .. } | Target::Global => only_tenant(store, tenant).await?,
            };
            ops.grant(&tenant, &target, Some(policy_name.as_str()))
                .await?;
            if policy_name.is_empty() {
                println!("assignment removed");
            } else {
                println!("granted {policy_name}");
            }
        }
        Command::Policy(PolicyCmd::Effective { user }) => {
            let user = ops::normalize_user(&user)?;
            let s = ops::effective_setting(store, &user).await?;
            println!("{}", serde_json::to_string_pretty(&s)?);
        }
        Command::Tenant(TenantCmd::List) => {
            for t in store.tenants().await? {
                println!(
                    "{}\t{}\t{}",
                    t.domain,
                    serde_json::to_string(&t.external_access)?,
                    serde_json::to_string(&t.calling)?
                );
            }
        }
        Command::Tenant(TenantCmd::CallingPolicy {
            domain,
            allow_recording,
            allow_transcription,
            allow_voicemail,
        }) => {
            let domain = domain.to_ascii_lowercase();
            let mut policy = store
                .tenants()
                .await?
                .into_iter()
                .find(|t| t.domain == domain)
                .map(|t| t.calling)
                .ok_or_else(|| anyhow::anyhow!("no tenant {domain}"))?;
            if let Some(v) = allow_recording {
                policy.allow_cloud_recording_for_calls = v;
            }
            if let Some(v) = allow_transcription {
                policy.allow_transcription_for_calling = v;
            }
            if let Some(v) = allow_voicemail {
                policy.allow_voicemail = v;
            }
            ops.set_calling_policy(&domain, &policy).await?;
            println!("{domain}: {}", serde_json::to_string(&policy)?);
        }
        Command::Tenant(TenantCmd::ExternalAccess {
            domain,
            mode,
            allow,
        }) => {
            let access = match mode.as_str() {
                "allow-all" => ExternalAccess::AllowAll,
                "allow-list" => ExternalAccess::AllowList { domains: allow },
                "block" => ExternalAccess::Block,
                _ => anyhow::bail!("--mode is allow-all, allow-list or block"),
            };
            ops.set_external_access(&domain, &access).await?;
            println!("{domain}: {}", serde_json::to_string(&access)?);
        }
        Command::Audit { tenant, limit } => {
            let t = only_tenant(store, tenant).await?;
            for e in store.audit_log(&t, limit).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{} -> {}",
                    utc(e.at),
                    e.audit.actor,
                    e.audit.action,
                    e.audit.target,
                    e.audit.old.as_deref().unwrap_or("-"),
                    e.audit.new.as_deref().unwrap_or("-")
                );
            }
        }
        Command::Serve(_) | Command::Code { .. } => {}
    }
    Ok(())
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub fn utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(super::utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::utc(1_767_225_600), "2026-01-01T00:00:00Z");
    }
}
