//! [`Store`] on SQLite through sqlx.
//!
//! Durability: WAL journal with `synchronous=FULL`, so a transaction that returned
//! is on disk even if the process is killed or the machine loses power right after
//! (NORMAL would survive a killed process but could lose the last commits on power
//! loss; the write rate here is tiny, so we pay for FULL). Schema versions are
//! plain SQL files embedded in the binary and applied at open, tracked in
//! `PRAGMA user_version`.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::{
    Audit, AuditEntry, Group, HISTORY_PER_USER, Session, Store, StoreFuture, Tenant, User,
    access_from, check_insert, check_user_value, is_unique_violation, need, unix_now,
};
use crate::error::{Error, Result};
use crate::hub::{CallRecord, Direction, Outcome, history};
use crate::policy::{Assignment, CallingPolicy, ExternalAccess, Policy, Target};
use shieldcall_proto::E2eePolicyType;

/// Schema versions in order; index + 1 is the version.
const MIGRATIONS: &[&str] = &[
    include_str!("schema_v1.sql"),
    include_str!("schema_v2.sql"),
    include_str!("schema_v3.sql"),
    include_str!("schema_v4.sql"),
];

/// The SQLite store. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Connection pool; SQLite serialises the writers.
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/shieldcall.db` and brings its schema up to date.
    pub async fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Internal(format!("create {}: {e}", dir.display())))?;
        let options = SqliteConnectOptions::new()
            .filename(dir.join("shieldcall.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A file's connections do not go stale; sqlx tests each one as it
            // is released anyway.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *tx)
            .await?;
        let current = usize::try_from(version).unwrap_or(0);
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            // PRAGMA takes no bound parameters; the value is our own integer.
            sqlx::raw_sql(&format!("PRAGMA user_version = {}", i + 1))
                .execute(&mut *tx)
                .await?;
            tracing::info!(version = i + 1, "store schema migrated");
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn write_audit(conn: &mut SqliteConnection, a: &Audit) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit (at, domain, actor, action, target, old, new) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(unix_now())
    .bind(&a.domain)
    .bind(&a.actor)
    .bind(&a.action)
    .bind(&a.target)
    .bind(&a.old)
    .bind(&a.new)
    .execute(conn)
    .await?;
    Ok(())
}

/// A write transaction that begins with its audit entry: the insert takes
/// SQLite's write lock at once, so what the transaction reads next is the latest
/// committed state and nobody writes in between (the compare of a
/// compare-and-set). Dropped without commit, the entry goes with the rest.
async fn audited<'c>(
    pool: &'c SqlitePool,
    audit: &Audit,
) -> Result<sqlx::Transaction<'c, sqlx::Sqlite>> {
    let mut tx = pool.begin().await?;
    write_audit(&mut tx, audit).await?;
    Ok(tx)
}

fn user_from(row: &sqlx::sqlite::SqliteRow) -> Result<User> {
    Ok(User {
        name: row.try_get("name")?,
        password_hash: row.try_get("password_hash")?,
        admin: row.try_get("admin")?,
        e2ee_switch: row.try_get("e2ee_switch")?,
        display_name: row.try_get("display_name")?,
    })
}

fn policy_from(row: &sqlx::sqlite::SqliteRow) -> Result<Policy> {
    let kind: String = row.try_get("calling_e2ee")?;
    Ok(Policy {
        identity: row.try_get("identity")?,
        description: row.try_get("description")?,
        calling_e2ee: E2eePolicyType::from_str(&kind)
            .map_err(|_| Error::Internal(format!("stored policy type {kind:?}")))?,
    })
}

impl Store for SqliteStore {
    fn changes(&self) -> StoreFuture<'_, i64> {
        Box::pin(async move {
            Ok(sqlx::query_scalar("SELECT changes FROM meta WHERE id = 1")
                .fetch_one(&self.pool)
                .await?)
        })
    }

    fn tenants(&self) -> StoreFuture<'_, Vec<Tenant>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT domain, external_access, allowed_domains, allow_recording, \
                 allow_transcription, allow_voicemail FROM tenants ORDER BY domain",
            )
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let mode: String = r.try_get("external_access")?;
                    let domains: String = r.try_get("allowed_domains")?;
                    Ok(Tenant {
                        domain: r.try_get("domain")?,
                        external_access: access_from(&mode, &domains),
                        calling: calling_from(r)?,
                    })
                })
                .collect()
        })
    }

    fn set_external_access<'a>(
        &'a self,
        domain: &'a str,
        access: &'a ExternalAccess,
        replacing: &'a ExternalAccess,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let domains = match access {
                ExternalAccess::AllowList { domains } => domains.join(","),
                _ => String::new(),
            };
            let mut tx = audited(&self.pool, audit).await?;
            let row = sqlx::query(
                "SELECT external_access, allowed_domains FROM tenants WHERE domain = ?",
            )
            .bind(domain)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::NotFound(format!("tenant {domain}")))?;
            let mode: String = row.try_get("external_access")?;
            let listed: String = row.try_get("allowed_domains")?;
            if access_from(&mode, &listed) != *replacing {
                return Err(Error::Changed(format!("external access of {domain}")));
            }
            let done = sqlx::query(
                "UPDATE tenants SET external_access = ?, allowed_domains = ? WHERE domain = ?",
            )
            .bind(access.mode_name())
            .bind(domains)
            .bind(domain)
            .execute(&mut *tx)
            .await?;
            need(done.rows_affected(), || format!("tenant {domain}"))?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn set_calling_policy<'a>(
        &'a self,
        domain: &'a str,
        policy: &'a CallingPolicy,
        replacing: &'a CallingPolicy,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = audited(&self.pool, audit).await?;
            let row = sqlx::query(
                "SELECT allow_recording, allow_transcription, allow_voicemail FROM tenants WHERE domain = ?",
            )
            .bind(domain)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::NotFound(format!("tenant {domain}")))?;
            if calling_from(&row)? != *replacing {
                return Err(Error::Changed(format!("calling policy of {domain}")));
            }
            let done = sqlx::query(
                "UPDATE tenants SET allow_recording = ?, allow_transcription = ?, allow_voicemail = ? WHERE domain = ?",
            )
            .bind(policy.allow_cloud_recording_for_calls)
            .bind(policy.allow_transcription_for_calling)
            .bind(policy.allow_voicemail)
            .bind(domain)
            .execute(&mut *tx)
            .await?;
            need(done.rows_affected(), || format!("tenant {domain}"))?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn add_user<'a>(
        &'a self,
        user: &'a User,
        global: &'a Policy,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let domain = user.domain();
            let mut tx = self.pool.begin().await?;
            let created =
                sqlx::query("INSERT INTO tenants (domain) VALUES (?) ON CONFLICT DO NOTHING")
                    .bind(domain)
                    .execute(&mut *tx)
                    .await?;
            if created.rows_affected() == 1 {
                sqlx::query("INSERT INTO policies (domain, identity, description, calling_e2ee) VALUES (?, ?, ?, ?)")
                    .bind(domain)
                    .bind(&global.identity)
                    .bind(&global.description)
                    .bind(global.calling_e2ee.as_str())
                    .execute(&mut *tx)
                    .await?;
                write_audit(
                    &mut tx,
                    &Audit {
                        action: "tenant.add".into(),
                        target: domain.into(),
                        old: None,
                        new: Some(format!("Global={}", global.calling_e2ee)),
                        ..audit.clone()
                    },
                )
                .await?;
            }
            let inserted = sqlx::query("INSERT INTO users (name, domain, password_hash, admin, e2ee_switch, display_name) VALUES (?, ?, ?, ?, ?, ?)")
                .bind(&user.name)
                .bind(domain)
                .bind(&user.password_hash)
                .bind(user.admin)
                .bind(user.e2ee_switch)
                .bind(&user.display_name)
                .execute(&mut *tx)
                .await;
            match inserted {
                Err(e) if is_unique_violation(&e) => {
                    return Err(Error::Conflict(format!("user {}", user.name)));
                }
                other => other?,
            };
            write_audit(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn user<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<User>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT name, password_hash, admin, e2ee_switch, display_name FROM users WHERE name = ?",
            )
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(user_from).transpose()
        })
    }

    fn directory(&self) -> StoreFuture<'_, Vec<(String, String)>> {
        Box::pin(async move {
            Ok(
                sqlx::query_as("SELECT name, display_name FROM users ORDER BY name")
                    .fetch_all(&self.pool)
                    .await?,
            )
        })
    }

    fn users<'a>(&'a self, domain: Option<&'a str>) -> StoreFuture<'a, Vec<User>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT name, password_hash, admin, e2ee_switch, display_name FROM users WHERE ?1 IS NULL OR domain = ?1 ORDER BY name",
            )
            .bind(domain)
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(user_from).collect()
        })
    }

    fn set_password<'a>(
        &'a self,
        name: &'a str,
        hash: &'a str,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query("UPDATE users SET password_hash = ? WHERE name = ?")
                .bind(hash)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            need(done.rows_affected(), || format!("user {name}"))?;
            sqlx::query("DELETE FROM sessions WHERE user = ?")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            write_audit(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn set_switch<'a>(
        &'a self,
        name: &'a str,
        on: Option<bool>,
        replacing: Option<bool>,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = audited(&self.pool, audit).await?;
            let current: Option<Option<bool>> =
                sqlx::query_scalar("SELECT e2ee_switch FROM users WHERE name = ?")
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
            check_user_value(current, &replacing, name, "switch")?;
            sqlx::query("UPDATE users SET e2ee_switch = ? WHERE name = ?")
                .bind(on)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn set_display_name<'a>(
        &'a self,
        name: &'a str,
        display_name: &'a str,
        replacing: &'a str,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = audited(&self.pool, audit).await?;
            let current: Option<String> =
                sqlx::query_scalar("SELECT display_name FROM users WHERE name = ?")
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
            check_user_value(current.as_deref(), &replacing, name, "display name")?;
            sqlx::query("UPDATE users SET display_name = ? WHERE name = ?")
                .bind(display_name)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn remove_user<'a>(&'a self, name: &'a str, audit: &'a Audit) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            sqlx::query("DELETE FROM assignments WHERE kind = 'user' AND target = ?")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            // Sessions and memberships go by ON DELETE CASCADE.
            let done = sqlx::query("DELETE FROM users WHERE name = ?")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            need(done.rows_affected(), || format!("user {name}"))?;
            write_audit(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn add_group<'a>(
        &'a self,
        domain: &'a str,
        name: &'a str,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let inserted = sqlx::query("INSERT INTO groups (domain, name) VALUES (?, ?)")
                .bind(domain)
                .bind(name)
                .execute(&mut *tx)
                .await;
            check_insert(
                inserted,
                || format!("group {name}"),
                || format!("tenant {domain}"),
            )?;
            write_audit(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn remove_group<'a>(
        &'a self,
        domain: &'a str,
        name: &'a str,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "DELETE FROM assignments WHERE domain = ? AND kind = 'group' AND target = ?",
            )
            .bind(domain)
            .bind(name)
            .execute(&mut *tx)
            .await?;
            let done = sqlx::query("DELETE FROM groups WHERE domain = ? AND name = ?")
                .bind(domain)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            need(done.rows_affected(), || format!("group {name}"))?;
            write_audit(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn groups<'a>(&'a self, domain: &'a str) -> StoreFuture<'a, Vec<Group>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT g.name AS name, m.user AS user FROM groups g \
                 LEFT JOIN members m ON m.domain = g.domain AND m.group_name = g.name \
                 WHERE g.domain = ? ORDER BY g.name, m.user",
            )
            .bind(domain)
            .fetch_all(&self.pool)
            .await?;
            let mut groups: Vec<Group> = Vec::new();
            for r in &rows {
                let name: String = r.try_get("name")?;
                let user: Option<String> = r.try_get("user")?;
                if groups.last().is_none_or(|g| g.name != name) {
                    groups.push(Group {
                        name,
                        members: Vec::new(),
                    });
                }
                if let (Some(g), Some(u)) = (groups.last_mut(), user) {
                    g.members.push(u);
                }
            }
            Ok(groups)
        })
    }

    fn add_member<'a>(
        &'a self,
        domain: &'a str,
        group: &'a str,
        user: &'a str,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let inserted =
                sqlx::query("INSERT INTO members (domain, group_name, user) VALUES (?, ?, ?)")
                    .bind(domain)
                    .bind(group)
                    .bind(user)
                    .execute(&mut *tx)
                    .await;
            check_insert(
                inserted,
                || format!("{user} in group {group}"),
                || format!("group {group} or user {user}"),
            )?;
            write_audit(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn remove_member<'a>(
        &'a self,
        domain: &'a str,
        group: &'a str,
        user: &'a str,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let done =
                sqlx::query("DELETE FROM members WHERE domain = ? AND group_name = ? AND user = ?")
                    .bind(domain)
                    .bind(group)
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
            need(done.rows_affected(), || format!("{user} in group {group}"))?;
            write_audit(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn groups_of<'a>(&'a self, user: &'a str) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            Ok(sqlx::query_scalar(
                "SELECT group_name FROM members WHERE user = ? ORDER BY group_name",
            )
            .bind(user)
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn policies<'a>(&'a self, domain: &'a str) -> StoreFuture<'a, Vec<Policy>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT identity, description, calling_e2ee FROM policies WHERE domain = ? \
                 ORDER BY identity <> 'Global', identity",
            )
            .bind(domain)
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(policy_from).collect()
        })
    }

    fn put_policy<'a>(
        &'a self,
        domain: &'a str,
        policy: &'a Policy,
        replacing: Option<&'a Policy>,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            match replacing {
                None => {
                    let inserted = sqlx::query("INSERT INTO policies (domain, identity, description, calling_e2ee) VALUES (?, ?, ?, ?)")
                        .bind(domain)
                        .bind(&policy.identity)
                        .bind(&policy.description)
                        .bind(policy.calling_e2ee.as_str())
                        .execute(&mut *tx)
                        .await;
                    check_insert(
                        inserted,
                        || format!("policy {}", policy.identity),
                        || format!("tenant {domain}"),
                    )?;
                }
                Some(old) => {
                    let done = sqlx::query("UPDATE policies SET description = ?, calling_e2ee = ? WHERE domain = ? AND identity = ? AND description = ? AND calling_e2ee = ?")
                        .bind(&policy.description)
                        .bind(policy.calling_e2ee.as_str())
                        .bind(domain)
                        .bind(&policy.identity)
                        .bind(&old.description)
                        .bind(old.calling_e2ee.as_str())
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        let exists: Option<i64> = sqlx::query_scalar(
                            "SELECT 1 FROM policies WHERE domain = ? AND identity = ?",
                        )
                        .bind(domain)
                        .bind(&policy.identity)
                        .fetch_optional(&mut *tx)
                        .await?;
                        return Err(match exists {
                            Some(_) => Error::Changed(format!("policy {}", policy.identity)),
                            None => Error::NotFound(format!("policy {}", policy.identity)),
                        });
                    }
                }
            }
            write_audit(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn remove_policy<'a>(
        &'a self,
        domain: &'a str,
        replacing: &'a Policy,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let identity = &replacing.identity;
            let mut tx = audited(&self.pool, audit).await?;
            // Assignments go by ON DELETE CASCADE.
            let done = sqlx::query("DELETE FROM policies WHERE domain = ? AND identity = ? AND description = ? AND calling_e2ee = ?")
                .bind(domain)
                .bind(identity)
                .bind(&replacing.description)
                .bind(replacing.calling_e2ee.as_str())
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                let exists: Option<i64> =
                    sqlx::query_scalar("SELECT 1 FROM policies WHERE domain = ? AND identity = ?")
                        .bind(domain)
                        .bind(identity)
                        .fetch_optional(&mut *tx)
                        .await?;
                return Err(match exists {
                    Some(_) => Error::Changed(format!("policy {identity}")),
                    None => Error::NotFound(format!("policy {identity}")),
                });
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn assignments<'a>(&'a self, domain: &'a str) -> StoreFuture<'a, Vec<Assignment>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT kind, target, rank, policy FROM assignments WHERE domain = ? ORDER BY kind, target")
                .bind(domain)
                .fetch_all(&self.pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let kind: String = r.try_get("kind")?;
                let name: String = r.try_get("target")?;
                let rank: Option<i64> = r.try_get("rank")?;
                let target = match kind.as_str() {
                    "user" => Target::User { user: name },
                    "group" => Target::Group {
                        group: name,
                        rank: rank.and_then(|r| u32::try_from(r).ok()),
                    },
                    _ => Target::Global,
                };
                out.push(Assignment {
                    target,
                    policy: r.try_get("policy")?,
                });
            }
            Ok(out)
        })
    }

    fn assign<'a>(
        &'a self,
        domain: &'a str,
        target: &'a Target,
        policy: Option<&'a str>,
        replacing: Option<&'a str>,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let (kind, name, rank) = match target {
                Target::User { user } => ("user", user.as_str(), None),
                Target::Group { group, rank } => ("group", group.as_str(), *rank),
                Target::Global => ("global", "", None),
            };
            let mut tx = audited(&self.pool, audit).await?;
            let current: Option<String> = sqlx::query_scalar(
                "SELECT policy FROM assignments WHERE domain = ? AND kind = ? AND target = ?",
            )
            .bind(domain)
            .bind(kind)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
            if current.as_deref() != replacing {
                return Err(Error::Changed(format!("the assignment of {kind} {name}")));
            }
            match policy {
                Some(policy) => {
                    let put = sqlx::query(
                        "INSERT INTO assignments (domain, kind, target, rank, policy) VALUES (?, ?, ?, ?, ?) \
                         ON CONFLICT (domain, kind, target) DO UPDATE SET rank = excluded.rank, policy = excluded.policy",
                    )
                    .bind(domain)
                    .bind(kind)
                    .bind(name)
                    .bind(rank)
                    .bind(policy)
                    .execute(&mut *tx)
                    .await;
                    match put {
                        Err(sqlx::Error::Database(d)) if d.is_foreign_key_violation() => {
                            return Err(Error::NotFound(format!("policy {policy}")));
                        }
                        other => other?,
                    };
                }
                None => {
                    sqlx::query(
                        "DELETE FROM assignments WHERE domain = ? AND kind = ? AND target = ?",
                    )
                    .bind(domain)
                    .bind(kind)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn create_session<'a>(&'a self, session: &'a Session) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            let now = unix_now();
            let mut tx = self.pool.begin().await?;
            sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO sessions (token_hash, user, expires_at) VALUES (?, ?, ?)")
                .bind(&session.token_hash)
                .bind(&session.user)
                .bind(session.expires_at)
                .execute(&mut *tx)
                .await?;
            // The user's oldest sessions beyond the cap end now.
            let ended: Vec<String> = sqlx::query_scalar(
                "SELECT token_hash FROM sessions WHERE user = ? ORDER BY expires_at DESC, rowid DESC LIMIT -1 OFFSET ?",
            )
            .bind(&session.user)
            .bind(i64::try_from(super::MAX_SESSIONS_PER_USER).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await?;
            for hash in &ended {
                sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(ended)
        })
    }

    fn session<'a>(&'a self, token_hash: &'a str, now: i64) -> StoreFuture<'a, Option<Session>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT token_hash, user, expires_at FROM sessions WHERE token_hash = ? AND expires_at > ?")
                .bind(token_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
            row.map(|r| {
                Ok(Session {
                    token_hash: r.try_get("token_hash")?,
                    user: r.try_get("user")?,
                    expires_at: r.try_get("expires_at")?,
                })
            })
            .transpose()
        })
    }

    fn delete_session<'a>(&'a self, token_hash: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
                .bind(token_hash)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn audit_log<'a>(&'a self, domain: &'a str, limit: u32) -> StoreFuture<'a, Vec<AuditEntry>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT id, at, domain, actor, action, target, old, new FROM audit WHERE domain = ? ORDER BY id DESC LIMIT ?",
            )
            .bind(domain)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(AuditEntry {
                        id: r.try_get("id")?,
                        at: r.try_get("at")?,
                        audit: Audit {
                            domain: r.try_get("domain")?,
                            actor: r.try_get("actor")?,
                            action: r.try_get("action")?,
                            target: r.try_get("target")?,
                            old: r.try_get("old")?,
                            new: r.try_get("new")?,
                        },
                    })
                })
                .collect()
        })
    }

    fn add_history<'a>(&'a self, records: &'a [CallRecord]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let mut users = std::collections::BTreeSet::new();
            for r in records {
                // A user removed since the call has no history to keep.
                sqlx::query(
                    "INSERT INTO call_history (user, peer, direction, outcome, mode, at, duration_secs) \
                     SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM users WHERE name = ?)",
                )
                .bind(&r.user)
                .bind(&r.peer)
                .bind(r.direction.as_str())
                .bind(r.outcome.as_str())
                .bind(r.mode.map(history::mode_str))
                .bind(r.at)
                .bind(r.duration_secs)
                .bind(&r.user)
                .execute(&mut *tx)
                .await?;
                users.insert(r.user.as_str());
            }
            for user in users {
                sqlx::query(
                    "DELETE FROM call_history WHERE user = ? AND id NOT IN \
                     (SELECT id FROM call_history WHERE user = ? ORDER BY id DESC LIMIT ?)",
                )
                .bind(user)
                .bind(user)
                .bind(HISTORY_PER_USER)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn history<'a>(&'a self, user: &'a str, limit: u32) -> StoreFuture<'a, Vec<CallRecord>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT user, peer, direction, outcome, mode, at, duration_secs FROM call_history \
                 WHERE user = ? ORDER BY id DESC LIMIT ?",
            )
            .bind(user)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let bad = |what: &str| Error::Internal(format!("call_history: bad {what}"));
                    let direction: String = r.try_get("direction")?;
                    let outcome: String = r.try_get("outcome")?;
                    let mode: Option<String> = r.try_get("mode")?;
                    Ok(CallRecord {
                        user: r.try_get("user")?,
                        peer: r.try_get("peer")?,
                        direction: Direction::parse(&direction).ok_or_else(|| bad("direction"))?,
                        outcome: Outcome::parse(&outcome).ok_or_else(|| bad("outcome"))?,
                        mode: match mode {
                            Some(m) => Some(history::parse_mode(&m).ok_or_else(|| bad("mode"))?),
                            None => None,
                        },
                        at: r.try_get("at")?,
                        duration_secs: r.try_get("duration_secs")?,
                    })
                })
                .collect()
        })
    }
}

/// A tenant's calling policy from its row.
fn calling_from(r: &sqlx::sqlite::SqliteRow) -> Result<CallingPolicy> {
    Ok(CallingPolicy {
        allow_cloud_recording_for_calls: r.try_get("allow_recording")?,
        allow_transcription_for_calling: r.try_get("allow_transcription")?,
        allow_voicemail: r.try_get("allow_voicemail")?,
    })
}
