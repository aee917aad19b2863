//! Persistent state behind the [`Store`] trait: tenants, users, groups, policies,
//! assignments, sessions and the audit log.
//!
//! Handlers, the CLI and the policy refresher only see `dyn Store`. Two stores
//! implement it: [`SqliteStore`], the embedded default (a file in the data
//! directory), and [`PostgresStore`], chosen by a `database_url`. Both pass the
//! same conformance suite (`relay/tests/store_conformance.rs`).
//! Every change that an admin makes is written together with its audit entry, in
//! one transaction: either both are durable or neither is.
//!
//! A store never decides policy (that is `crate::policy`) and never hashes
//! passwords (that is `crate::auth`).

mod postgres;
mod sqlite;

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

pub use postgres::{NodeLock, PostgresStore};
pub use shieldcall_proto::admin::{Audit, AuditEntry, Group};
pub use sqlite::SqliteStore;

use crate::error::{Error, Result};
use crate::hub::CallRecord;
use crate::policy::{Assignment, CallingPolicy, ExternalAccess, Policy, Target};

/// What every store method returns: a boxed future, so `Store` is object safe.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// A tenant: one mail domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    /// The mail domain, e.g. `example.test`.
    pub domain: String,
    /// Whom the tenant's users may reach outside it.
    pub external_access: ExternalAccess,
    /// What its people may have the server do in their calls.
    pub calling: CallingPolicy,
}

/// A user account.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// `name@domain`, lower case.
    pub name: String,
    /// Argon2id PHC string; never logged (see the `Debug` impl).
    pub password_hash: String,
    /// Administers their tenant.
    pub admin: bool,
    /// The "End-to-end encrypted calls" switch; `None` until the user touches it.
    pub e2ee_switch: Option<bool>,
    /// The display name an admin gave the account; empty for none.
    pub display_name: String,
}

impl User {
    /// The tenant's domain.
    pub fn domain(&self) -> &str {
        crate::policy::domain_of(&self.name)
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("admin", &self.admin)
            .field("e2ee_switch", &self.e2ee_switch)
            .field("display_name", &self.display_name)
            .finish_non_exhaustive()
    }
}

/// Sessions one user may hold at once (20: every browser and device they sign in
/// on); a new sign-in beyond it ends the oldest.
pub const MAX_SESSIONS_PER_USER: usize = 20;

/// A signed-in session. Only the SHA-256 of the token is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Hex SHA-256 of the cookie's token.
    pub token_hash: String,
    /// Who signed in.
    pub user: String,
    /// Unix seconds after which the session is void.
    pub expires_at: i64,
}

/// The relay's persistence. Mutations take the [`Audit`] entry to store with them.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// A number that grows with every change to tenants, users, groups, policies or
    /// assignments, also when another process made it.
    fn changes(&self) -> StoreFuture<'_, i64>;

    /// The database's own word that [`Store::changes`] moved, so the change
    /// watcher reloads at once instead of at its next poll: a channel that gets
    /// `()` after changes commit (several may arrive as one) and closes if the
    /// engine stops listening. `None` where the engine has no such signal
    /// (SQLite: the poll alone).
    fn change_events(&self) -> StoreFuture<'_, Option<tokio::sync::mpsc::Receiver<()>>> {
        Box::pin(async { Ok(None) })
    }

    /// All tenants.
    fn tenants(&self) -> StoreFuture<'_, Vec<Tenant>>;
    /// Sets a tenant's external access. `NotFound` if there is no such tenant.
    ///
    /// Compare-and-set, like every audited write that records an old value: the
    /// write happens only if the stored value is still `replacing` (as the caller
    /// read it), else [`Error::Changed`] and nothing is
    /// written, so the audit's old value is the value really replaced.
    fn set_external_access<'a>(
        &'a self,
        domain: &'a str,
        access: &'a ExternalAccess,
        replacing: &'a ExternalAccess,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()>;

    /// Sets a tenant's calling policy, if it is still `replacing` (as
    /// [`Store::set_external_access`]).
    fn set_calling_policy<'a>(
        &'a self,
        domain: &'a str,
        policy: &'a CallingPolicy,
        replacing: &'a CallingPolicy,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()>;

    /// Adds a user, creating the tenant (with its `Global` policy) if it is new.
    /// `Conflict` if the user exists.
    fn add_user<'a>(
        &'a self,
        user: &'a User,
        global: &'a Policy,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()>;
    /// One user.
    fn user<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<User>>;
    /// Every user's name and display name (empty for none), sorted by name: the
    /// directory contact lists are drawn from (no hashes are read).
    fn directory(&self) -> StoreFuture<'_, Vec<(String, String)>>;
    /// The users of one tenant, or of all tenants.
    fn users<'a>(&'a self, domain: Option<&'a str>) -> StoreFuture<'a, Vec<User>>;
    /// Replaces a password hash and ends the user's sessions.
    fn set_password<'a>(
        &'a self,
        name: &'a str,
        hash: &'a str,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()>;
    /// Sets the user's E2EE switch.
    /// Compare-and-set on the switch as read (`replacing`), as
    /// [`Store::set_external_access`].
    fn set_switch<'a>(
        &'a self,
        name: &'a str,
        on: Option<bool>,
        replacing: Option<bool>,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()>;
    /// Sets a user's display name (empty for none).
    /// Compare-and-set on the name as read (`replacing`), as
    /// [`Store::set_external_access`].
    fn set_display_name<'a>(
        &'a self,
        name: &'a str,
        display_name: &'a str,
        replacing: &'a str,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()>;
    /// Removes a user with their sessions, memberships and direct assignment.
    fn remove_user<'a>(&'a self, name: &'a str, audit: &'a Audit) -> StoreFuture<'a, ()>;

    /// Adds a group. `Conflict` if it exists.
    fn add_group<'a>(
        &'a self,
        domain: &'a str,
        name: &'a str,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()>;
    /// Removes a group with its memberships and assignment.
    fn remove_group<'a>(
        &'a self,
        domain: &'a str,
        name: &'a str,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()>;
    /// A tenant's groups with their members, by name.
    fn groups<'a>(&'a self, domain: &'a str) -> StoreFuture<'a, Vec<Group>>;
    /// Adds a user (of the same tenant) to a group.
    fn add_member<'a>(
        &'a self,
        domain: &'a str,
        group: &'a str,
        user: &'a str,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()>;
    /// Removes a user from a group.
    fn remove_member<'a>(
        &'a self,
        domain: &'a str,
        group: &'a str,
        user: &'a str,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()>;
    /// The groups a user belongs to.
    fn groups_of<'a>(&'a self, user: &'a str) -> StoreFuture<'a, Vec<String>>;

    /// A tenant's policies, `Global` first, then by identity.
    fn policies<'a>(&'a self, domain: &'a str) -> StoreFuture<'a, Vec<Policy>>;
    /// Creates (`create`) or updates a policy. `Conflict` / `NotFound` otherwise.
    ///
    /// `replacing` is `None` to create the policy (`Conflict` if it exists), or the
    /// policy as the caller read it: the update then happens only if the stored
    /// policy is still exactly that (compare-and-set, in the write's transaction),
    /// so the audit entry's old value is the value really replaced; otherwise
    /// [`Error::Changed`] and nothing is written.
    fn put_policy<'a>(
        &'a self,
        domain: &'a str,
        policy: &'a Policy,
        replacing: Option<&'a Policy>,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()>;
    /// Removes a policy and every assignment of it.
    /// Compare-and-set on the policy as read (`replacing`), as
    /// [`Store::set_external_access`].
    fn remove_policy<'a>(
        &'a self,
        domain: &'a str,
        replacing: &'a Policy,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()>;
    /// A tenant's assignments.
    fn assignments<'a>(&'a self, domain: &'a str) -> StoreFuture<'a, Vec<Assignment>>;
    /// Grants `policy` to `target`, or removes the target's assignment (`None`).
    /// Compare-and-set on the target's assigned policy as read (`replacing`,
    /// `None` for no assignment), as [`Store::set_external_access`].
    fn assign<'a>(
        &'a self,
        domain: &'a str,
        target: &'a Target,
        policy: Option<&'a str>,
        replacing: Option<&'a str>,
        audit: &'a Audit,
    ) -> StoreFuture<'a, ()>;

    /// Stores a new session; the user's oldest sessions beyond
    /// [`MAX_SESSIONS_PER_USER`] end, and their token hashes are returned (so
    /// their connections can be closed).
    fn create_session<'a>(&'a self, session: &'a Session) -> StoreFuture<'a, Vec<String>>;
    /// A session by token hash, if it exists and has not expired at `now`.
    fn session<'a>(&'a self, token_hash: &'a str, now: i64) -> StoreFuture<'a, Option<Session>>;
    /// Ends a session.
    fn delete_session<'a>(&'a self, token_hash: &'a str) -> StoreFuture<'a, ()>;

    /// A tenant's audit log, newest first.
    fn audit_log<'a>(&'a self, domain: &'a str, limit: u32) -> StoreFuture<'a, Vec<AuditEntry>>;

    /// Appends call history records (of users that still exist; others are
    /// skipped) and keeps each user's newest [`HISTORY_PER_USER`].
    fn add_history<'a>(&'a self, records: &'a [CallRecord]) -> StoreFuture<'a, ()>;
    /// A user's call history, newest first, at most `limit` entries.
    fn history<'a>(&'a self, user: &'a str, limit: u32) -> StoreFuture<'a, Vec<CallRecord>>;
}

/// Call history entries kept per user (the newest): a phone's recent-calls list
/// is about as long, and it bounds what a busy account costs the store.
pub const HISTORY_PER_USER: u32 = 200;

/// A tenant's stored external access (`mode`, comma-separated `domains`).
fn access_from(mode: &str, domains: &str) -> ExternalAccess {
    match mode {
        "allow-list" => ExternalAccess::AllowList {
            domains: domains
                .split(',')
                .filter(|d| !d.is_empty())
                .map(String::from)
                .collect(),
        },
        "block" => ExternalAccess::Block,
        _ => ExternalAccess::AllowAll,
    }
}

/// `NotFound(what)` when a write touched no row.
fn need(affected: u64, what: impl FnOnce() -> String) -> Result<()> {
    if affected == 0 {
        Err(Error::NotFound(what()))
    } else {
        Ok(())
    }
}

/// The compare-and-set check of a user's column read inside the write's
/// transaction: `NotFound` without the user, `Changed` (naming `what`) when
/// the value is not the one the caller read.
fn check_user_value<T: PartialEq>(
    current: Option<T>,
    replacing: &T,
    name: &str,
    what: &str,
) -> Result<()> {
    match current {
        None => Err(Error::NotFound(format!("user {name}"))),
        Some(c) if c != *replacing => Err(Error::Changed(format!("the {what} of {name}"))),
        Some(_) => Ok(()),
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// An insert's constraint failures as callers see them, on either engine: a
/// duplicate is a `Conflict` naming `what`, a missing parent row a `NotFound`
/// naming `parent`.
fn check_insert<T>(
    inserted: std::result::Result<T, sqlx::Error>,
    what: impl FnOnce() -> String,
    parent: impl FnOnce() -> String,
) -> Result<()> {
    match inserted {
        Err(e) if is_unique_violation(&e) => Err(Error::Conflict(what())),
        Err(sqlx::Error::Database(d)) if d.is_foreign_key_violation() => {
            Err(Error::NotFound(parent()))
        }
        other => other.map(|_| ()).map_err(Into::into),
    }
}

/// Now, in Unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
