//! [`Store`] on PostgreSQL through sqlx: the store of a relay whose configuration
//! names a `database_url`.
//!
//! - **Schema.** Versions are plain SQL files embedded in the binary
//!   (`pg_schema_v*.sql`), applied at open and tracked in `schema_version`. The
//!   migration runs in one transaction under a transaction-scoped advisory lock
//!   ([`MIGRATE_LOCK`]), so relays (and CLIs) that start together apply each
//!   version exactly once and the others wait for it.
//! - **Compare-and-set.** SQLite serialises writers; PostgreSQL at its default
//!   READ COMMITTED does not, so every audited write first takes one
//!   transaction-scoped advisory lock ([`WRITE_LOCK`]). What it reads next is the
//!   latest committed state and no other audited write runs until it commits: the
//!   compare of a compare-and-set holds until its set. Admin writes are rare
//!   (people clicking), so one lock for all of them costs nothing measurable;
//!   sign-ins and call history do not take it.
//! - **One node.** A relay that is the only node holds a session-scoped advisory
//!   lock ([`NODE_LOCK`]) on a connection of its own ([`NodeLock`]), so a second
//!   relay started on the same database is refused at start instead of splitting
//!   the calls between two switchboards that do not know each other. The CLI does
//!   not take it: it runs beside the relay.
//! - **Change notifications.** Every counted change also sends a `NOTIFY` on
//!   [`CHANGES_CHANNEL`], delivered at commit; [`Store::change_events`] listens
//!   on a connection of its own, so the relay reloads a CLI's change at once
//!   rather than at its next poll.
//! - **Durability** is PostgreSQL's: a transaction that returned is committed
//!   (`synchronous_commit` as the server is configured; `on` by default).

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool, Row};
use tokio::sync::mpsc;

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
    include_str!("pg_schema_v1.sql"),
    include_str!("pg_schema_v2.sql"),
    include_str!("pg_schema_v3.sql"),
    include_str!("pg_schema_v4.sql"),
    include_str!("pg_schema_v5.sql"),
    include_str!("pg_schema_v6.sql"),
];

/// The channel every counted change notifies (schema version 4).
const CHANGES_CHANNEL: &str = "shieldcall_changes";

/// After the listening connection failed, how long before it is tried again
/// (1 s): the poll of the counter covers the gap.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// Advisory lock keys: one 64-bit space per database, shared with anything else
/// that uses advisory locks there, hence values unlikely to collide
/// (`0x5348_4c44` is "SHLD").
const MIGRATE_LOCK: i64 = 0x5348_4c44_0000_0001;
/// Held by every audited write's transaction (see the module docs).
const WRITE_LOCK: i64 = 0x5348_4c44_0000_0002;
/// Held for its lifetime by the one relay node (see [`NodeLock`]).
const NODE_LOCK: i64 = 0x5348_4c44_0000_0003;

/// Connections in the pool (16): each is a PostgreSQL backend process, and a
/// relay's queries are short; sign-ins wait for Argon2, not for the database.
const POOL_SIZE: u32 = 16;

/// How long a query waits for a free connection or for PostgreSQL to accept one
/// (10 s), before the request fails with `internal` instead of hanging.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The PostgreSQL store. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    options: PgConnectOptions,
}

/// Parses a `postgres://` URL, with a message that never repeats the URL (it may
/// hold a password).
fn parse_url(url: &str) -> Result<PgConnectOptions> {
    let options = PgConnectOptions::from_str(url).map_err(|e| {
        Error::Invalid(format!(
            "database_url is not a PostgreSQL URL (postgres://user:password@host/db): {}",
            redact_error(&e)
        ))
    })?;
    Ok(options)
}

/// sqlx's URL errors quote the URL; keep only what is not the URL.
fn redact_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Configuration(_) => "malformed URL".into(),
        other => other.to_string(),
    }
}

impl PostgresStore {
    /// Connects to `url` and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = parse_url(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // sqlx pings a connection when it goes back to the pool (a broken
            // one is closed then); pinging it again when it is taken would
            // add a round trip to every query (a fifth of a relay's CPU while
            // thousands of browsers reconnect).
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        let store = Self { pool, options };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATE_LOCK)
            .execute(&mut *tx)
            .await?;
        sqlx::raw_sql("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .execute(&mut *tx)
            .await?;
        let version: Option<i32> = sqlx::query_scalar("SELECT max(version) FROM schema_version")
            .fetch_one(&mut *tx)
            .await?;
        let current = usize::try_from(version.unwrap_or(0)).unwrap_or(0);
        if current > MIGRATIONS.len() {
            return Err(Error::Internal(format!(
                "the database has schema version {current}, newer than this relay's {}; run the newer relay",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
            sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
                .bind(version)
                .execute(&mut *tx)
                .await?;
            tracing::info!(version, "store schema migrated (PostgreSQL)");
        }
        tx.commit().await?;
        Ok(())
    }

    /// The connection pool (shared with the cluster's arbiter).
    pub fn pool(&self) -> PgPool {
        self.pool.clone()
    }

    /// Claims the database for this relay as its one node. Refused (`Invalid`,
    /// naming the reason) while another relay holds it.
    pub async fn claim_node(&self) -> Result<NodeLock> {
        NodeLock::claim(&self.options).await
    }

    /// Begins an audited write: the transaction holds [`WRITE_LOCK`] and starts
    /// with its audit entry. Dropped without commit, the entry goes with the rest.
    async fn audited(&self, audit: &Audit) -> Result<sqlx::Transaction<'_, sqlx::Postgres>> {
        let mut tx = self.locked().await?;
        write_audit(&mut tx, audit).await?;
        Ok(tx)
    }

    /// A transaction holding [`WRITE_LOCK`], for a write that records its audit
    /// entries itself.
    async fn locked(&self) -> Result<sqlx::Transaction<'_, sqlx::Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

/// The one-node claim: a session-scoped advisory lock on a connection that
/// lives as long as this value. PostgreSQL releases it when the connection ends,
/// so a relay killed with `kill -9` frees the database as soon as its TCP
/// connection is gone.
#[derive(Debug)]
pub struct NodeLock {
    options: PgConnectOptions,
    conn: Option<PgConnection>,
}

/// How long a claim is tried before it is refused (3 s): a relay killed a
/// moment ago holds it until PostgreSQL has noticed its connection is gone
/// (milliseconds on a healthy network), and a supervisor may restart it sooner.
const CLAIM_PATIENCE: Duration = Duration::from_secs(3);

impl NodeLock {
    async fn claim(options: &PgConnectOptions) -> Result<Self> {
        let mut lock = Self {
            options: options.clone(),
            conn: None,
        };
        let deadline = tokio::time::Instant::now() + CLAIM_PATIENCE;
        while !lock.try_take().await? {
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Invalid(
                "another relay node already uses this database; several nodes on one database need a message bus (bus_url), and without one only a single relay may run"
                    .into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(lock)
    }

    /// Gives the claim up at once (a relay that stops), so a relay started right
    /// after on the same database does not wait for the connection to close.
    pub async fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(NODE_LOCK)
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
        }
    }

    /// Opens a connection and tries the lock on it.
    async fn try_take(&mut self) -> Result<bool> {
        let mut conn = self.options.connect().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(NODE_LOCK)
            .fetch_one(&mut conn)
            .await?;
        if got {
            self.conn = Some(conn);
        } else {
            conn.close().await.ok();
        }
        Ok(got)
    }

    /// Checks that the claim still holds, taking it again on a new connection
    /// if the old one broke (PostgreSQL restarted, the network dropped).
    /// `Ok(false)`: another relay took the database meanwhile; this one must
    /// stop. `Err`: PostgreSQL cannot be reached now; nobody else can take the
    /// lock either, so the caller tries again later.
    pub async fn check(&mut self) -> Result<bool> {
        if let Some(conn) = self.conn.as_mut() {
            if conn.ping().await.is_ok() {
                return Ok(true);
            }
            tracing::warn!(
                "the connection holding this node's claim on the database broke; claiming again"
            );
            self.conn = None;
        }
        self.try_take().await
    }
}

async fn write_audit(conn: &mut PgConnection, a: &Audit) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit (at, domain, actor, action, target, old, new) VALUES ($1, $2, $3, $4, $5, $6, $7)",
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

fn user_from(row: &sqlx::postgres::PgRow) -> Result<User> {
    Ok(User {
        name: row.try_get("name")?,
        password_hash: row.try_get("password_hash")?,
        admin: row.try_get("admin")?,
        e2ee_switch: row.try_get("e2ee_switch")?,
        display_name: row.try_get("display_name")?,
    })
}

fn policy_from(row: &sqlx::postgres::PgRow) -> Result<Policy> {
    let kind: String = row.try_get("calling_e2ee")?;
    Ok(Policy {
        identity: row.try_get("identity")?,
        description: row.try_get("description")?,
        calling_e2ee: E2eePolicyType::from_str(&kind)
            .map_err(|_| Error::Internal(format!("stored policy type {kind:?}")))?,
    })
}

/// `LIMIT` takes a BIGINT.
fn limit_of(n: u32) -> i64 {
    i64::from(n)
}

impl Store for PostgresStore {
    fn changes(&self) -> StoreFuture<'_, i64> {
        Box::pin(async move {
            Ok(sqlx::query_scalar("SELECT changes FROM meta WHERE id = 1")
                .fetch_one(&self.pool)
                .await?)
        })
    }

    fn change_events(&self) -> StoreFuture<'_, Option<mpsc::Receiver<()>>> {
        Box::pin(async move {
            let mut listener = PgListener::connect_with(&self.pool).await?;
            listener.listen(CHANGES_CHANNEL).await?;
            // One slot: signals that arrive while one waits are one refresh.
            let (tx, rx) = mpsc::channel(1);
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = tx.closed() => return,
                        got = listener.recv() => {
                            if let Err(e) = got {
                                tracing::warn!(error = %e, "listening for store changes failed; polling meanwhile");
                                tokio::time::sleep(LISTEN_RETRY).await;
                            }
                            // A failure too: what changed while the connection
                            // was down was not notified, so look once more.
                            let _ = tx.try_send(());
                        }
                    }
                }
            });
            Ok(Some(rx))
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
            let mut tx = self.audited(audit).await?;
            let row = sqlx::query(
                "SELECT external_access, allowed_domains FROM tenants WHERE domain = $1",
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
                "UPDATE tenants SET external_access = $1, allowed_domains = $2 WHERE domain = $3",
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
            let mut tx = self.audited(audit).await?;
            let row = sqlx::query(
                "SELECT allow_recording, allow_transcription, allow_voicemail FROM tenants WHERE domain = $1",
            )
            .bind(domain)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::NotFound(format!("tenant {domain}")))?;
            if calling_from(&row)? != *replacing {
                return Err(Error::Changed(format!("calling policy of {domain}")));
            }
            let done = sqlx::query(
                "UPDATE tenants SET allow_recording = $1, allow_transcription = $2, allow_voicemail = $3 WHERE domain = $4",
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
            // The audit entries in SQLite's order: the tenant's, then the user's.
            let mut tx = self.locked().await?;
            let created =
                sqlx::query("INSERT INTO tenants (domain) VALUES ($1) ON CONFLICT DO NOTHING")
                    .bind(domain)
                    .execute(&mut *tx)
                    .await?;
            if created.rows_affected() == 1 {
                sqlx::query("INSERT INTO policies (domain, identity, description, calling_e2ee) VALUES ($1, $2, $3, $4)")
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
            let inserted = sqlx::query("INSERT INTO users (name, domain, password_hash, admin, e2ee_switch, display_name) VALUES ($1, $2, $3, $4, $5, $6)")
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
                "SELECT name, password_hash, admin, e2ee_switch, display_name FROM users WHERE name = $1",
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
                "SELECT name, password_hash, admin, e2ee_switch, display_name FROM users \
                 WHERE $1::text IS NULL OR domain = $1 ORDER BY name",
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
            let mut tx = self.audited(audit).await?;
            let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2")
                .bind(hash)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            need(done.rows_affected(), || format!("user {name}"))?;
            sqlx::query("DELETE FROM sessions WHERE user_name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
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
            let mut tx = self.audited(audit).await?;
            let current: Option<Option<bool>> =
                sqlx::query_scalar("SELECT e2ee_switch FROM users WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
            check_user_value(current, &replacing, name, "switch")?;
            sqlx::query("UPDATE users SET e2ee_switch = $1 WHERE name = $2")
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
            let mut tx = self.audited(audit).await?;
            let current: Option<String> =
                sqlx::query_scalar("SELECT display_name FROM users WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
            check_user_value(current.as_deref(), &replacing, name, "display name")?;
            sqlx::query("UPDATE users SET display_name = $1 WHERE name = $2")
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
            let mut tx = self.audited(audit).await?;
            sqlx::query("DELETE FROM assignments WHERE kind = 'user' AND target = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            // Sessions, memberships and history go by ON DELETE CASCADE.
            let done = sqlx::query("DELETE FROM users WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            need(done.rows_affected(), || format!("user {name}"))?;
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
            let mut tx = self.audited(audit).await?;
            let inserted = sqlx::query("INSERT INTO groups (domain, name) VALUES ($1, $2)")
                .bind(domain)
                .bind(name)
                .execute(&mut *tx)
                .await;
            check_insert(
                inserted,
                || format!("group {name}"),
                || format!("tenant {domain}"),
            )?;
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
            let mut tx = self.audited(audit).await?;
            sqlx::query(
                "DELETE FROM assignments WHERE domain = $1 AND kind = 'group' AND target = $2",
            )
            .bind(domain)
            .bind(name)
            .execute(&mut *tx)
            .await?;
            let done = sqlx::query("DELETE FROM groups WHERE domain = $1 AND name = $2")
                .bind(domain)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            need(done.rows_affected(), || format!("group {name}"))?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn groups<'a>(&'a self, domain: &'a str) -> StoreFuture<'a, Vec<Group>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT g.name AS name, m.user_name AS user_name FROM groups g \
                 LEFT JOIN members m ON m.domain = g.domain AND m.group_name = g.name \
                 WHERE g.domain = $1 ORDER BY g.name, m.user_name",
            )
            .bind(domain)
            .fetch_all(&self.pool)
            .await?;
            let mut groups: Vec<Group> = Vec::new();
            for r in &rows {
                let name: String = r.try_get("name")?;
                let user: Option<String> = r.try_get("user_name")?;
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
            let mut tx = self.audited(audit).await?;
            let inserted = sqlx::query(
                "INSERT INTO members (domain, group_name, user_name) VALUES ($1, $2, $3)",
            )
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
            let mut tx = self.audited(audit).await?;
            let done = sqlx::query(
                "DELETE FROM members WHERE domain = $1 AND group_name = $2 AND user_name = $3",
            )
            .bind(domain)
            .bind(group)
            .bind(user)
            .execute(&mut *tx)
            .await?;
            need(done.rows_affected(), || format!("{user} in group {group}"))?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn groups_of<'a>(&'a self, user: &'a str) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move {
            Ok(sqlx::query_scalar(
                "SELECT group_name FROM members WHERE user_name = $1 ORDER BY group_name",
            )
            .bind(user)
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn policies<'a>(&'a self, domain: &'a str) -> StoreFuture<'a, Vec<Policy>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT identity, description, calling_e2ee FROM policies WHERE domain = $1 \
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
            let mut tx = self.audited(audit).await?;
            match replacing {
                None => {
                    let inserted = sqlx::query("INSERT INTO policies (domain, identity, description, calling_e2ee) VALUES ($1, $2, $3, $4)")
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
                    let done = sqlx::query("UPDATE policies SET description = $1, calling_e2ee = $2 WHERE domain = $3 AND identity = $4 AND description = $5 AND calling_e2ee = $6")
                        .bind(&policy.description)
                        .bind(policy.calling_e2ee.as_str())
                        .bind(domain)
                        .bind(&policy.identity)
                        .bind(&old.description)
                        .bind(old.calling_e2ee.as_str())
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        let exists: Option<i32> = sqlx::query_scalar(
                            "SELECT 1 FROM policies WHERE domain = $1 AND identity = $2",
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
            let mut tx = self.audited(audit).await?;
            // Assignments go by ON DELETE CASCADE.
            let done = sqlx::query("DELETE FROM policies WHERE domain = $1 AND identity = $2 AND description = $3 AND calling_e2ee = $4")
                .bind(domain)
                .bind(identity)
                .bind(&replacing.description)
                .bind(replacing.calling_e2ee.as_str())
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                let exists: Option<i32> = sqlx::query_scalar(
                    "SELECT 1 FROM policies WHERE domain = $1 AND identity = $2",
                )
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
            let rows = sqlx::query("SELECT kind, target, rank, policy FROM assignments WHERE domain = $1 ORDER BY kind, target")
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
            let rank = rank.map(i64::from);
            let mut tx = self.audited(audit).await?;
            let current: Option<String> = sqlx::query_scalar(
                "SELECT policy FROM assignments WHERE domain = $1 AND kind = $2 AND target = $3",
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
                        "INSERT INTO assignments (domain, kind, target, rank, policy) VALUES ($1, $2, $3, $4, $5) \
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
                        "DELETE FROM assignments WHERE domain = $1 AND kind = $2 AND target = $3",
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
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO sessions (token_hash, user_name, expires_at) VALUES ($1, $2, $3)",
            )
            .bind(&session.token_hash)
            .bind(&session.user)
            .bind(session.expires_at)
            .execute(&mut *tx)
            .await?;
            // The user's oldest sessions beyond the cap end now.
            let ended: Vec<String> = sqlx::query_scalar(
                "DELETE FROM sessions WHERE token_hash IN (SELECT token_hash FROM sessions \
                 WHERE user_name = $1 ORDER BY expires_at DESC, id DESC OFFSET $2) RETURNING token_hash",
            )
            .bind(&session.user)
            .bind(i64::try_from(super::MAX_SESSIONS_PER_USER).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(ended)
        })
    }

    fn session<'a>(&'a self, token_hash: &'a str, now: i64) -> StoreFuture<'a, Option<Session>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT token_hash, user_name, expires_at FROM sessions WHERE token_hash = $1 AND expires_at > $2")
                .bind(token_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
            row.map(|r| {
                Ok(Session {
                    token_hash: r.try_get("token_hash")?,
                    user: r.try_get("user_name")?,
                    expires_at: r.try_get("expires_at")?,
                })
            })
            .transpose()
        })
    }

    fn delete_session<'a>(&'a self, token_hash: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                .bind(token_hash)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn audit_log<'a>(&'a self, domain: &'a str, limit: u32) -> StoreFuture<'a, Vec<AuditEntry>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT id, at, domain, actor, action, target, old, new FROM audit WHERE domain = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(domain)
            .bind(limit_of(limit))
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
                    "INSERT INTO call_history (user_name, peer, direction, outcome, mode, at, duration_secs) \
                     SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM users WHERE name = $1)",
                )
                .bind(&r.user)
                .bind(&r.peer)
                .bind(r.direction.as_str())
                .bind(r.outcome.as_str())
                .bind(r.mode.map(history::mode_str))
                .bind(r.at)
                .bind(r.duration_secs)
                .execute(&mut *tx)
                .await?;
                users.insert(r.user.as_str());
            }
            for user in users {
                sqlx::query(
                    "DELETE FROM call_history WHERE user_name = $1 AND id NOT IN \
                     (SELECT id FROM call_history WHERE user_name = $1 ORDER BY id DESC LIMIT $2)",
                )
                .bind(user)
                .bind(limit_of(HISTORY_PER_USER))
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
                "SELECT user_name, peer, direction, outcome, mode, at, duration_secs FROM call_history \
                 WHERE user_name = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(user)
            .bind(limit_of(limit))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let bad = |what: &str| Error::Internal(format!("call_history: bad {what}"));
                    let direction: String = r.try_get("direction")?;
                    let outcome: String = r.try_get("outcome")?;
                    let mode: Option<String> = r.try_get("mode")?;
                    Ok(CallRecord {
                        user: r.try_get("user_name")?,
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
fn calling_from(r: &sqlx::postgres::PgRow) -> Result<CallingPolicy> {
    Ok(CallingPolicy {
        allow_cloud_recording_for_calls: r.try_get("allow_recording")?,
        allow_transcription_for_calling: r.try_get("allow_transcription")?,
        allow_voicemail: r.try_get("allow_voicemail")?,
    })
}
