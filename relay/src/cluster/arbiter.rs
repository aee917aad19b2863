//! The arbiter: what several relay nodes on one PostgreSQL database must agree
//! on, decided by PostgreSQL, one conditional write per race (schema version 5,
//! `store/pg_schema_v5.sql`).
//!
//! - **Nodes** hold a lease ([`Arbiter::renew`]); a node whose lease has run out
//!   is dead: it can no longer renew, add a device or take over a call (it is
//!   fenced), and the first live node to [`Arbiter::reap`] it cleans up after
//!   it, exactly once: its devices go, the ringing calls its hub carried end,
//!   and the answered ones wait until a grace deadline for one of their people
//!   to resume through a live node, which takes the call over
//!   ([`Arbiter::claim_home`]: the first claim wins).
//! - **Devices** are rows per node; presence is read from them
//!   ([`Arbiter::statuses`]), counting only live nodes.
//! - **A call** is carried by the hub of one node, its home, which decides
//!   everything within it (who accepts first, a timeout against an accept) as
//!   a single relay does. What nodes race for is the people: a call is placed
//!   by taking both people's busy rows in the order of their names in one
//!   transaction ([`Arbiter::place`]), so two people calling each other
//!   through two nodes make at most one call, neither waits on the other, and
//!   a refused call leaves nothing behind.
//! - **Time** is the database's: every lease, ring and grace deadline is set and
//!   compared with `clock_timestamp()`, so nodes whose clocks differ agree.
//!
//! The nodes learn of each other's decisions over the bus (`crate::bus`); what
//! they learn is a hint, and the rows here are the truth they read. The race
//! tests are `relay/tests/cluster_races.rs`.

use std::time::Duration;

use shieldcall_proto::Status;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};

use crate::error::{Error, Result};

/// Connections of an arbiter's own pool ([`Arbiter::connect`]).
const POOL_SIZE: u32 = 4;

/// What [`Arbiter::reserve_park_code`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    /// This code, for the whole cluster.
    Code(u8),
    /// The call has no row carried by this node.
    NoCall,
    /// Every code is in use.
    Full,
}

/// A device on a node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceAt {
    /// The node's id.
    pub node: String,
    /// The node's number for the device.
    pub device: u64,
}

/// A call as the database holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRow {
    /// Its id.
    pub id: String,
    /// Who called.
    pub caller: String,
    /// Who was called.
    pub callee: String,
    /// Accepted.
    pub answered: bool,
    /// The node whose hub carries it.
    pub home: String,
    /// The caller's bound device; `None` while its node is gone.
    pub caller_at: Option<DeviceAt>,
    /// The callee's bound device; `None` until answered, or while its node is gone.
    pub callee_at: Option<DeviceAt>,
    /// Waiting for a side whose node died to come back.
    pub in_grace: bool,
}

/// What [`Arbiter::place`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// The call rings; both people are busy in it.
    Ringing,
    /// This person is in another call (or placing one); nothing was written.
    Busy(String),
}

/// What [`Arbiter::reap`] cleaned up after nodes whose leases ran out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaped {
    /// The dead nodes.
    pub nodes: Vec<String>,
    /// The users who had devices on them (their presence may have changed).
    pub users: Vec<String>,
    /// Ringing calls their hubs carried: ended.
    pub cancelled: Vec<CallRow>,
    /// Answered calls their hubs carried: waiting to be resumed elsewhere.
    pub waiting: Vec<CallRow>,
}

/// One node's view of the arbiter: its id and a pool on the database.
#[derive(Debug, Clone)]
pub struct Arbiter {
    pool: PgPool,
    node: String,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn device_id(device: u64) -> Result<i64> {
    i64::try_from(device).map_err(|_| Error::Internal("device number out of range".into()))
}

const CALL_COLUMNS: &str = "id, caller, callee, state, home_node, caller_node, caller_device, \
                            callee_node, callee_device, grace_until IS NOT NULL AS in_grace";

fn call_row(r: &sqlx::postgres::PgRow) -> Result<CallRow> {
    let at = |node: Option<String>, device: Option<i64>| match (node, device) {
        (Some(node), Some(d)) => u64::try_from(d)
            .ok()
            .map(|device| DeviceAt { node, device }),
        _ => None,
    };
    Ok(CallRow {
        id: r.try_get("id")?,
        caller: r.try_get("caller")?,
        callee: r.try_get("callee")?,
        answered: r.try_get::<String, _>("state")? == "answered",
        home: r.try_get("home_node")?,
        caller_at: at(r.try_get("caller_node")?, r.try_get("caller_device")?),
        callee_at: at(r.try_get("callee_node")?, r.try_get("callee_device")?),
        in_grace: r.try_get("in_grace")?,
    })
}

impl Arbiter {
    /// Joins the cluster as a new node (a fresh random id) on `pool`, holding
    /// a lease of `lease`.
    pub async fn join(pool: PgPool, lease: Duration) -> Result<Self> {
        let node = crate::auth::random_hex::<8>()?;
        sqlx::query(
            "INSERT INTO cluster_nodes (id, lease_until) \
             VALUES ($1, clock_timestamp() + $2 * interval '1 millisecond')",
        )
        .bind(&node)
        .bind(ms(lease))
        .execute(&pool)
        .await?;
        Ok(Self { pool, node })
    }

    /// [`Arbiter::join`] on a small pool of its own on `url` (a database the
    /// store has migrated).
    pub async fn connect(url: &str, lease: Duration) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            // As the store's pool: tested when released, not again when taken.
            .test_before_acquire(false)
            .connect(url)
            .await?;
        Self::join(pool, lease).await
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Extends this node's lease to `lease` from now. `false`: the lease had
    /// run out (or the node was reaped); the node is dead to the others and
    /// must stop serving.
    pub async fn renew(&self, lease: Duration) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE cluster_nodes SET lease_until = clock_timestamp() + $2 * interval '1 millisecond' \
             WHERE id = $1 AND lease_until > clock_timestamp()",
        )
        .bind(&self.node)
        .bind(ms(lease))
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Leaves the cluster (a clean shutdown), as a reap of this node would:
    /// its devices go, the ringing calls its hub carries end, and the
    /// answered ones wait `grace` for a resume through another node.
    pub async fn leave(&self, grace: Duration) -> Result<Reaped> {
        let mut tx = self.pool.begin().await?;
        let nodes = vec![self.node.clone()];
        let reaped = reap_nodes(&mut tx, nodes, grace).await?;
        tx.commit().await?;
        Ok(reaped)
    }

    /// Records device `device` of `user` (session `session_hash`) on this node.
    /// `false`: this node's lease has run out; nothing was written.
    pub async fn add_device(&self, device: u64, user: &str, session_hash: &str) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO cluster_devices (node, device, user_name, session_hash) \
             SELECT id, $2, $3, $4 FROM cluster_nodes \
             WHERE id = $1 AND lease_until > clock_timestamp()",
        )
        .bind(&self.node)
        .bind(device_id(device)?)
        .bind(user)
        .bind(session_hash)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Forgets device `device` of this node (its connection ended).
    pub async fn remove_device(&self, device: u64) -> Result<bool> {
        let r = sqlx::query("DELETE FROM cluster_devices WHERE node = $1 AND device = $2")
            .bind(&self.node)
            .bind(device_id(device)?)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The session of device `device` of `node`, while that node is live.
    pub async fn session_of(&self, node: &str, device: u64) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT d.session_hash FROM cluster_devices d \
             JOIN cluster_nodes n ON n.id = d.node AND n.lease_until > clock_timestamp() \
             WHERE d.node = $1 AND d.device = $2",
        )
        .bind(node)
        .bind(device_id(device)?)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// `user`'s devices on live nodes.
    pub async fn devices_of(&self, user: &str) -> Result<Vec<DeviceAt>> {
        let rows = sqlx::query(
            "SELECT d.node, d.device FROM cluster_devices d \
             JOIN cluster_nodes n ON n.id = d.node AND n.lease_until > clock_timestamp() \
             WHERE d.user_name = $1 ORDER BY d.node, d.device",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let device: i64 = r.try_get("device")?;
                Ok(DeviceAt {
                    node: r.try_get("node")?,
                    device: u64::try_from(device).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// The presence of each of `users` across the cluster: online with a
    /// device on a live node, busy if also in a call.
    pub async fn statuses(&self, users: &[String]) -> Result<Vec<(String, Status)>> {
        self.statuses_besides(users, None).await
    }

    /// The presence of each of `users` as the other nodes know it: `Busy` in a
    /// call while online on any live node (this one included: the call may be
    /// carried by another node's hub), else `Online` with a device on another
    /// live node, else `Offline` (whatever this node's own devices say).
    pub async fn statuses_elsewhere(&self, users: &[String]) -> Result<Vec<(String, Status)>> {
        self.statuses_besides(users, Some(&self.node)).await
    }

    /// [`Arbiter::statuses`] counting as online only devices of nodes other
    /// than `besides` (busy counts wherever the person is online).
    async fn statuses_besides(
        &self,
        users: &[String],
        besides: Option<&str>,
    ) -> Result<Vec<(String, Status)>> {
        let rows = sqlx::query(
            "WITH live AS (SELECT d.user_name, d.node FROM cluster_devices d \
                   JOIN cluster_nodes n ON n.id = d.node AND n.lease_until > clock_timestamp()) \
             SELECT u.name, \
               EXISTS (SELECT 1 FROM live WHERE user_name = u.name \
                       AND node IS DISTINCT FROM $2) AS online, \
               EXISTS (SELECT 1 FROM cluster_busy b WHERE b.user_name = u.name) \
               AND EXISTS (SELECT 1 FROM live WHERE user_name = u.name) AS busy \
             FROM unnest($1::text[]) AS u(name)",
        )
        .bind(users)
        .bind(besides)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(status_row).collect()
    }

    /// Everyone [`Arbiter::statuses_elsewhere`] does not call `Offline`, with
    /// their presence (for the periodic reconcile).
    pub async fn online_elsewhere(&self) -> Result<Vec<(String, Status)>> {
        let rows = sqlx::query(
            "SELECT d.user_name AS name, bool_or(d.node <> $1) AS online, \
               EXISTS (SELECT 1 FROM cluster_busy b WHERE b.user_name = d.user_name) AS busy \
             FROM cluster_devices d \
             JOIN cluster_nodes n ON n.id = d.node AND n.lease_until > clock_timestamp() \
             GROUP BY d.user_name \
             HAVING bool_or(d.node <> $1) \
                OR EXISTS (SELECT 1 FROM cluster_busy b WHERE b.user_name = d.user_name)",
        )
        .bind(&self.node)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(status_row).collect()
    }

    /// Places call `id` from `caller` (on this node's `device`) to `callee`,
    /// ringing until `ring` from now.
    pub async fn place(
        &self,
        id: &str,
        caller: &str,
        callee: &str,
        device: u64,
        ring: Duration,
    ) -> Result<Placed> {
        self.place_beside(id, caller, callee, device, ring, None)
            .await
    }

    /// [`Arbiter::place`] of a second call of `caller`'s beside call `beside`
    /// (a consultation, a member added to a group call), which holds the
    /// caller's busy row: only the callee's is taken.
    pub async fn place_beside(
        &self,
        id: &str,
        caller: &str,
        callee: &str,
        device: u64,
        ring: Duration,
        beside: Option<&str>,
    ) -> Result<Placed> {
        if caller == callee {
            return Err(Error::Invalid("a call needs two people".into()));
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO cluster_calls (id, caller, callee, state, home_node, caller_node, caller_device, ring_until) \
             VALUES ($1, $2, $3, 'ringing', $4, $4, $5, clock_timestamp() + $6 * interval '1 millisecond')",
        )
        .bind(id)
        .bind(caller)
        .bind(callee)
        .bind(&self.node)
        .bind(device_id(device)?)
        .bind(ms(ring))
        .execute(&mut *tx)
        .await?;
        if let Some(beside) = beside {
            let holds: Option<String> =
                sqlx::query_scalar("SELECT call_id FROM cluster_busy WHERE user_name = $1")
                    .bind(caller)
                    .fetch_optional(&mut *tx)
                    .await?;
            if holds.as_deref() != Some(beside) || !take_busy(&mut tx, callee, id).await? {
                tx.rollback().await?;
                let who = if holds.as_deref() == Some(beside) {
                    callee
                } else {
                    caller
                };
                return Ok(Placed::Busy(who.to_string()));
            }
            tx.commit().await?;
            return Ok(Placed::Ringing);
        }
        let (first, second) = if caller < callee {
            (caller, callee)
        } else {
            (callee, caller)
        };
        for user in [first, second] {
            if !take_busy(&mut tx, user, id).await? {
                tx.rollback().await?;
                return Ok(Placed::Busy(user.to_string()));
            }
        }
        tx.commit().await?;
        Ok(Placed::Ringing)
    }

    /// The home's hub answered call `id`: from now on, if the home dies, the
    /// call waits for its people to resume it elsewhere instead of ending.
    /// `None` if it was not a ringing call of this node; else the devices its
    /// two people have on other live nodes (each is to hear of the call, so
    /// that it can take it over: "move here"), in one statement.
    pub async fn mark_answered(&self, id: &str) -> Result<Option<Vec<(String, DeviceAt)>>> {
        let rows = sqlx::query(
            "WITH c AS (UPDATE cluster_calls SET state = 'answered' \
               WHERE id = $1 AND home_node = $2 AND state = 'ringing' \
               RETURNING caller, callee) \
             SELECT d.user_name, d.node, d.device FROM c \
             LEFT JOIN (cluster_devices d JOIN cluster_nodes n \
                 ON n.id = d.node AND n.lease_until > clock_timestamp()) \
               ON d.user_name IN (c.caller, c.callee) AND d.node <> $2 \
             ORDER BY d.node, d.device",
        )
        .bind(id)
        .bind(&self.node)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut elsewhere = Vec::new();
        for r in &rows {
            let Some(user) = r.try_get::<Option<String>, _>("user_name")? else {
                continue;
            };
            let device: i64 = r.try_get("device")?;
            elsewhere.push((
                user,
                DeviceAt {
                    node: r.try_get("node")?,
                    device: u64::try_from(device).unwrap_or_default(),
                },
            ));
        }
        Ok(Some(elsewhere))
    }

    /// Makes the busy rows follow this node's hub where a call changed hands
    /// within it: each of `freed` (a parker, a transferor) loses the row that
    /// names the call they let go of; each of `busy` (whoever picked up, or
    /// was joined to a call) gets a row naming their call if they have none
    /// and the call is this node's. No row changes its call. Returns the
    /// users whose row went or came.
    pub async fn sync_busy(
        &self,
        busy: &[(String, String)],
        freed: &[(String, String)],
    ) -> Result<Vec<String>> {
        let mut changed = Vec::new();
        if !freed.is_empty() {
            let (users, calls): (Vec<&str>, Vec<&str>) =
                freed.iter().map(|(u, c)| (u.as_str(), c.as_str())).unzip();
            let gone: Vec<String> = sqlx::query_scalar(
                "DELETE FROM cluster_busy b USING unnest($1::text[], $2::text[]) AS t(u, c) \
                 WHERE b.user_name = t.u AND b.call_id = t.c RETURNING b.user_name",
            )
            .bind(&users)
            .bind(&calls)
            .fetch_all(&self.pool)
            .await?;
            changed.extend(gone);
        }
        if !busy.is_empty() {
            let (users, calls): (Vec<&str>, Vec<&str>) =
                busy.iter().map(|(u, c)| (u.as_str(), c.as_str())).unzip();
            let came: Vec<String> = sqlx::query_scalar(
                "INSERT INTO cluster_busy (user_name, call_id) \
                 SELECT t.u, t.c FROM unnest($1::text[], $2::text[]) AS t(u, c) \
                 WHERE EXISTS (SELECT 1 FROM cluster_calls WHERE id = t.c AND home_node = $3) \
                 ON CONFLICT (user_name) DO NOTHING RETURNING user_name",
            )
            .bind(&users)
            .bind(&calls)
            .bind(&self.node)
            .fetch_all(&self.pool)
            .await?;
            changed.extend(came);
        }
        Ok(changed)
    }

    /// Takes a pickup code no node uses for call `id`, carried by this node,
    /// before its hub parks the call under it.
    pub async fn reserve_park_code(&self, id: &str) -> Result<Reserved> {
        // Two nodes may draw one free code at once: the loser draws again.
        for _ in 0..8 {
            let code: Option<i16> = sqlx::query_scalar(
                "INSERT INTO cluster_parked (code, call_id) \
                 SELECT c, $1 FROM generate_series(10, 99) AS c \
                 WHERE NOT EXISTS (SELECT 1 FROM cluster_parked p WHERE p.code = c) \
                   AND EXISTS (SELECT 1 FROM cluster_calls WHERE id = $1 AND home_node = $2) \
                 ORDER BY random() LIMIT 1 \
                 ON CONFLICT (code) DO NOTHING RETURNING code",
            )
            .bind(id)
            .bind(&self.node)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(code) = code {
                return Ok(Reserved::Code(u8::try_from(code).unwrap_or_default()));
            }
            let (call, taken): (bool, i64) = sqlx::query_as(
                "SELECT EXISTS (SELECT 1 FROM cluster_calls WHERE id = $1 AND home_node = $2), \
                        (SELECT count(*) FROM cluster_parked)",
            )
            .bind(id)
            .bind(&self.node)
            .fetch_one(&self.pool)
            .await?;
            if !call {
                return Ok(Reserved::NoCall);
            }
            if taken >= 90 {
                return Ok(Reserved::Full);
            }
        }
        Ok(Reserved::Full)
    }

    /// Gives pickup codes back: each `(code, call id)` as reserved.
    pub async fn release_park_codes(&self, codes: &[(u8, String)]) -> Result<()> {
        let (nums, ids): (Vec<i16>, Vec<String>) = codes
            .iter()
            .map(|(c, id)| (i16::from(*c), id.clone()))
            .unzip();
        sqlx::query(
            "DELETE FROM cluster_parked p USING unnest($1::smallint[], $2::text[]) AS t(code, id) \
             WHERE p.code = t.code AND p.call_id = t.id",
        )
        .bind(&nums)
        .bind(&ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The node carrying the call parked under `code`, if a live one does,
    /// and the call.
    pub async fn parked_at(&self, code: u8) -> Result<Option<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT c.home_node, c.id FROM cluster_parked p \
             JOIN cluster_calls c ON c.id = p.call_id \
             JOIN cluster_nodes n ON n.id = c.home_node AND n.lease_until > clock_timestamp() \
             WHERE p.code = $1",
        )
        .bind(i16::from(code))
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The nodes carrying `user`'s answered calls, other than this one (and
    /// not waiting for a dead home to be replaced): a device of theirs that
    /// connects here is to hear of those calls.
    pub async fn homes_of_answered(&self, user: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT c.home_node FROM cluster_busy b \
             JOIN cluster_calls c ON c.id = b.call_id \
             WHERE b.user_name = $1 AND c.state = 'answered' \
               AND c.grace_until IS NULL AND c.home_node <> $2",
        )
        .bind(user)
        .bind(&self.node)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Where call `id` is carried: its home node, and whether that node is live.
    pub async fn home_of(&self, id: &str) -> Result<Option<(String, bool)>> {
        let r = sqlx::query(
            "SELECT c.home_node, EXISTS (SELECT 1 FROM cluster_nodes n \
               WHERE n.id = c.home_node AND n.lease_until > clock_timestamp()) AS live \
             FROM cluster_calls c WHERE c.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        r.map(|r| Ok((r.try_get("home_node")?, r.try_get("live")?)))
            .transpose()
    }

    /// Call `id`, carried by this node's hub, is over (however it ended: the
    /// hub decided): it and its busy rows go.
    pub async fn end_call(&self, id: &str) -> Result<Option<CallRow>> {
        Ok(self.end_calls(&[id.to_string()]).await?.pop())
    }

    /// [`Arbiter::end_call`] for each of `ids`, in one statement: the rows
    /// of those that were this node's calls.
    pub async fn end_calls(&self, ids: &[String]) -> Result<Vec<CallRow>> {
        let sql = format!(
            "DELETE FROM cluster_calls WHERE id = ANY($1) AND home_node = $2 RETURNING {CALL_COLUMNS}"
        );
        let rows = sqlx::query(&sql)
            .bind(ids)
            .bind(&self.node)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(call_row).collect()
    }

    /// Takes over answered call `id`, whose home died, as this node's: the
    /// first of its people to resume through a live node makes that node the
    /// home; the others' resumes then go there. `None`: not such a call (its
    /// home lives, it is not answered, its grace ran out, or another node
    /// took it first), or this node is fenced.
    pub async fn claim_home(&self, id: &str) -> Result<Option<CallRow>> {
        let sql = format!(
            "UPDATE cluster_calls c SET home_node = $2, grace_until = NULL \
             WHERE c.id = $1 AND c.state = 'answered' \
               AND NOT EXISTS (SELECT 1 FROM cluster_nodes n \
                               WHERE n.id = c.home_node AND n.lease_until > clock_timestamp()) \
               AND (c.grace_until IS NULL OR c.grace_until > clock_timestamp()) \
               AND EXISTS (SELECT 1 FROM cluster_nodes n \
                           WHERE n.id = $2 AND n.lease_until > clock_timestamp()) \
             RETURNING {CALL_COLUMNS}"
        );
        let r = sqlx::query(&sql)
            .bind(id)
            .bind(&self.node)
            .fetch_optional(&self.pool)
            .await?;
        r.as_ref().map(call_row).transpose()
    }

    /// Calls whose home is this node, placed more than `age` ago (to compare
    /// with what its hub carries).
    pub async fn calls_homed_here(&self, age: Duration) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM cluster_calls WHERE home_node = $1 \
             AND placed_at < clock_timestamp() - $2 * interval '1 millisecond'",
        )
        .bind(&self.node)
        .bind(ms(age))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records a sign-in attempt under each of `keys` (with its allowance
    /// within `window`), as `auth::LoginLimiter::begin` does in memory, but
    /// counted across every node: `None` (nothing recorded) while a key's
    /// allowance is used up and its delay (`first_delay`, doubling with each
    /// attempt beyond, at most `window`) has not passed since its last attempt.
    /// Attempts on one key are serialised by a transaction-scoped lock, so
    /// parallel ones on several nodes cannot all pass.
    pub async fn signin_begin(
        &self,
        keys: &[(String, usize)],
        window: Duration,
        first_delay: Duration,
    ) -> Result<Option<i64>> {
        let mut tx = self.pool.begin().await?;
        let mut sorted: Vec<&(String, usize)> = keys.iter().collect();
        sorted.sort();
        for (key, _) in &sorted {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM cluster_signins WHERE at <= clock_timestamp() - $1 * interval '1 millisecond'")
            .bind(ms(window))
            .execute(&mut *tx)
            .await?;
        for (key, allowance) in &sorted {
            let r = sqlx::query(
                "SELECT count(*) AS n, \
                   extract(epoch FROM clock_timestamp() - max(at))::float8 AS since \
                 FROM cluster_signins WHERE key = $1",
            )
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
            let n = usize::try_from(r.try_get::<i64, _>("n")?).unwrap_or(usize::MAX);
            if n >= *allowance {
                let over = u32::try_from(n - allowance).unwrap_or(u32::MAX).min(20);
                let delay = first_delay.saturating_mul(1 << over).min(window);
                let since: Option<f64> = r.try_get("since")?;
                if since.is_some_and(|s| s < delay.as_secs_f64()) {
                    tx.rollback().await?;
                    return Ok(None);
                }
            }
        }
        let attempt: i64 = sqlx::query_scalar("SELECT nextval('cluster_signin_attempts')")
            .fetch_one(&mut *tx)
            .await?;
        let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        sqlx::query(
            "INSERT INTO cluster_signins (key, attempt) SELECT k, $2 FROM unnest($1::text[]) AS k",
        )
        .bind(&names)
        .bind(attempt)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(attempt))
    }

    /// A sign-in succeeded: the counts under `cleared` go, and the other keys
    /// (the address) get this attempt back.
    pub async fn signin_succeeded(&self, cleared: &[String], attempt: i64) -> Result<()> {
        sqlx::query("DELETE FROM cluster_signins WHERE key = ANY($1) OR attempt = $2")
            .bind(cleared)
            .bind(attempt)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The key every node makes call ids with: made by the first node, read
    /// by the others.
    pub async fn shared_key(&self) -> Result<[u8; 32]> {
        let mut fresh = [0u8; 32];
        getrandom::getrandom(&mut fresh).map_err(|e| Error::Internal(format!("getrandom: {e}")))?;
        sqlx::query("INSERT INTO cluster_key (id, key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING")
            .bind(fresh.as_slice())
            .execute(&self.pool)
            .await?;
        let key: Vec<u8> = sqlx::query_scalar("SELECT key FROM cluster_key WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        key.try_into()
            .map_err(|_| Error::Internal("the cluster's call-id key is not 32 bytes".into()))
    }

    /// Calls whose home died and that nobody resumed within the grace: ended.
    pub async fn expire_grace(&self) -> Result<Vec<CallRow>> {
        let sql = format!(
            "DELETE FROM cluster_calls WHERE grace_until <= clock_timestamp() RETURNING {CALL_COLUMNS}"
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(call_row).collect()
    }

    /// Cleans up after every node whose lease ran out, in one transaction.
    /// Nodes reaping at once each take different dead nodes (or none), so
    /// each dead node is reaped exactly once. Its devices go; the calls its
    /// hub carried end if they were ringing, and wait `grace` for a resume
    /// through another node (`claim_home`) if they were answered.
    pub async fn reap(&self, grace: Duration) -> Result<Reaped> {
        let mut tx = self.pool.begin().await?;
        let nodes: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM cluster_nodes WHERE lease_until <= clock_timestamp() \
             ORDER BY id FOR UPDATE SKIP LOCKED",
        )
        .fetch_all(&mut *tx)
        .await?;
        if nodes.is_empty() {
            tx.commit().await?;
            return Ok(Reaped::default());
        }
        let reaped = reap_nodes(&mut tx, nodes, grace).await?;
        tx.commit().await?;
        Ok(reaped)
    }
}

/// In `tx`: what [`Arbiter::reap`] and [`Arbiter::leave`] do for `nodes`.
async fn reap_nodes(
    tx: &mut Transaction<'_, Postgres>,
    nodes: Vec<String>,
    grace: Duration,
) -> Result<Reaped> {
    let mut users: Vec<String> =
        sqlx::query_scalar("DELETE FROM cluster_devices WHERE node = ANY($1) RETURNING user_name")
            .bind(&nodes)
            .fetch_all(&mut **tx)
            .await?;
    users.sort();
    users.dedup();
    let sql = format!(
        "DELETE FROM cluster_calls WHERE state = 'ringing' AND home_node = ANY($1) \
         RETURNING {CALL_COLUMNS}"
    );
    let cancelled = sqlx::query(&sql).bind(&nodes).fetch_all(&mut **tx).await?;
    let sql = format!(
        "UPDATE cluster_calls SET grace_until = clock_timestamp() + $2 * interval '1 millisecond' \
         WHERE state = 'answered' AND home_node = ANY($1) AND grace_until IS NULL \
         RETURNING {CALL_COLUMNS}"
    );
    let waiting = sqlx::query(&sql)
        .bind(&nodes)
        .bind(ms(grace))
        .fetch_all(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM cluster_nodes WHERE id = ANY($1)")
        .bind(&nodes)
        .execute(&mut **tx)
        .await?;
    Ok(Reaped {
        nodes,
        users,
        cancelled: cancelled.iter().map(call_row).collect::<Result<_>>()?,
        waiting: waiting.iter().map(call_row).collect::<Result<_>>()?,
    })
}

/// A row of `name`, `online`, `busy` as a presence.
fn status_row(r: &sqlx::postgres::PgRow) -> Result<(String, Status)> {
    let status = match (r.try_get("online")?, r.try_get("busy")?) {
        (_, true) => Status::Busy,
        (true, false) => Status::Online,
        (false, false) => Status::Offline,
    };
    Ok((r.try_get("name")?, status))
}

/// Takes `user`'s busy row for call `id`; `false` if another call holds it
/// (after that call's transaction, if still open, has ended).
async fn take_busy(tx: &mut Transaction<'_, Postgres>, user: &str, id: &str) -> Result<bool> {
    let r = sqlx::query(
        "INSERT INTO cluster_busy (user_name, call_id) VALUES ($1, $2) \
         ON CONFLICT (user_name) DO NOTHING",
    )
    .bind(user)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}
