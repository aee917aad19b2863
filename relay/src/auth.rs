//! Passwords, session tokens and the extractors that guard every private route.
//!
//! - Passwords: Argon2id (PHC strings), hashed and checked on the blocking pool.
//! - Sessions: a 256-bit random token in the `shieldcall_session` cookie
//!   (`__Host-shieldcall_session` under HTTPS, see [`SECURE_COOKIE`]); the store
//!   keeps only its SHA-256, so a copy of the database signs nobody in.
//! - [`Authed`] extracts a valid session or rejects with 401 before the handler (or
//!   the WebSocket upgrade) runs; [`AdminAuthed`] adds the admin role and, for
//!   state-changing methods, a same-origin `Origin` check.
//! - [`LoginLimiter`]: failed sign-ins per account and per address.
//!
//! Never logs a password, a token or a cookie.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::{Error, Result};
use crate::store::{Session, User, unix_now};

/// The session cookie's name on plain HTTP (development on loopback).
pub const COOKIE: &str = "shieldcall_session";

/// The session cookie's name when cookies are `Secure` (HTTPS): the `__Host-`
/// prefix makes the browser refuse it unless it is `Secure`, `Path=/` and has no
/// `Domain`, so a sibling subdomain cannot plant or overwrite it. Under HTTPS only
/// this name is read.
pub const SECURE_COOKIE: &str = "__Host-shieldcall_session";

/// The session cookie's name for a relay whose cookies are `secure` or not.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure { SECURE_COOKIE } else { COOKIE }
}

/// Argon2id cost. The defaults are argon2's (19 MiB, 2 passes, 1 lane), OWASP's
/// minimum recommendation; tests lower them to run fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
}

impl Default for PasswordCost {
    fn default() -> Self {
        Self {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
        }
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(|e| Error::Internal(format!("getrandom: {e}")))?;
    Ok(b)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// `n` random bytes as hex (call ids, one-time passwords).
pub fn random_hex<const N: usize>() -> Result<String> {
    Ok(hex(&random_bytes::<N>()?))
}

/// How many Argon2 computations run at once in this process: two per core. Each
/// takes its memory cost (19 MiB by default) for its whole run, so without a bound
/// a burst of sign-ins would put hundreds of them on tokio's blocking pool.
fn argon2_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        tokio::sync::Semaphore::new(2 * cores)
    })
}

/// How long a password check waits for an Argon2 slot before the request is
/// answered `503` (try again): a short queue, not an unbounded one.
pub const ARGON2_QUEUE_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs `work` (an Argon2 computation) on the blocking pool once one of the
/// [`argon2_permits`] is free, or fails with [`Error::Busy`] after
/// [`ARGON2_QUEUE_TIMEOUT`].
async fn with_argon2_slot<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let permit = tokio::time::timeout(ARGON2_QUEUE_TIMEOUT, argon2_permits().acquire())
        .await
        .map_err(|_| Error::Busy)?
        .map_err(|e| Error::Internal(format!("argon2 permits: {e}")))?;
    let out = tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(format!("argon2 task: {e}")))?;
    drop(permit);
    out
}

/// Hashes a password with Argon2id on the blocking pool (bounded, see
/// [`with_argon2_slot`]).
pub async fn hash_password(cost: PasswordCost, password: String) -> Result<String> {
    let salt = random_bytes::<16>()?;
    with_argon2_slot(move || {
        let params = Params::new(cost.memory_kib, cost.iterations, 1, None)
            .map_err(|e| Error::Internal(format!("argon2 params: {e}")))?;
        let salt =
            SaltString::encode_b64(&salt).map_err(|e| Error::Internal(format!("salt: {e}")))?;
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("argon2: {e}")))
    })
    .await
}

/// Checks a password against a stored hash on the blocking pool (bounded, see
/// [`with_argon2_slot`]).
pub async fn verify_password(hash: String, password: String) -> Result<bool> {
    with_argon2_slot(move || {
        let parsed =
            PasswordHash::new(&hash).map_err(|e| Error::Internal(format!("stored hash: {e}")))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
}

/// Hex SHA-256 of a session token, as stored.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// A fresh session token and its hash.
pub fn new_token() -> Result<(String, String)> {
    let token = hex(&random_bytes::<32>()?);
    let hash = token_hash(&token);
    Ok((token, hash))
}

/// The session token from the cookie called `name` in the `Cookie` headers, if any.
pub fn cookie_token<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name && !v.is_empty()).then_some(v)
        })
}

/// A request with a valid session.
#[derive(Debug, Clone)]
pub struct Authed {
    /// The signed-in user, as stored now.
    pub user: User,
    /// The session.
    pub session: Session,
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let name = cookie_name(state.secure_cookies());
        let token = cookie_token(parts, name).ok_or(Error::Unauthorized)?;
        let store = state.store();
        let session = store
            .session(&token_hash(token), unix_now())
            .await?
            .ok_or(Error::Unauthorized)?;
        let user = store
            .user(&session.user)
            .await?
            .ok_or(Error::Unauthorized)?;
        Ok(Self { user, session })
    }
}

/// Whether a state-changing request comes from one of our own origins. A missing
/// `Origin` is refused: every browser sends it on `POST`, `PUT` and `DELETE`.
pub fn same_origin(parts: &Parts, state: &AppState) -> bool {
    parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| state.origin_allowed(o))
}

/// A request by an admin of their tenant; state-changing methods must be same-origin.
#[derive(Debug, Clone)]
pub struct AdminAuthed(pub Authed);

impl FromRequestParts<AppState> for AdminAuthed {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let authed = Authed::from_request_parts(parts, state).await?;
        if !authed.user.admin {
            return Err(Error::Forbidden("admins only"));
        }
        let safe = matches!(parts.method, Method::GET | Method::HEAD);
        if !safe && !same_origin(parts, state) {
            return Err(Error::Forbidden("cross-origin request"));
        }
        Ok(Self(authed))
    }
}

/// Sign-in limits: attempts counted per account and per client address in a
/// sliding window.
///
/// An attempt is recorded by [`LoginLimiter::begin`] *before* the password is
/// checked, under the same lock as the count, so parallel attempts cannot all pass
/// the check and be counted only afterwards. A successful sign-in takes its
/// attempt back and clears the account's count. In memory: a restart forgets
/// them. A poisoned lock is recovered, never turned into "refuse everyone".
#[derive(Debug)]
pub struct LoginLimiter {
    /// Attempts allowed per account within `window`.
    per_account: usize,
    /// Attempts allowed per address within `window`.
    per_address: usize,
    /// The window.
    window: Duration,
    /// Attempt times by key (`u:<user>` or `a:<ip>`).
    attempts: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// Keys the limiter keeps at most; past it, expired entries are dropped first,
/// and if none expired a new key is refused (counted as limited) instead of
/// forgetting every count at once.
pub const LIMITER_KEYS: usize = 100_000;

/// An attempt recorded by [`LoginLimiter::begin`]; hand it back on success.
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct Attempt {
    at: Instant,
}

impl LoginLimiter {
    /// Limits: `per_account` and `per_address` attempts per `window`.
    pub fn new(per_account: usize, per_address: usize, window: Duration) -> Self {
        Self {
            per_account,
            per_address,
            window,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    fn keys(user: &str, addr: Option<IpAddr>) -> [Option<String>; 2] {
        [Some(format!("u:{user}")), addr.map(|a| format!("a:{a}"))]
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        self.attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records an attempt if the account and the address are both under their
    /// limits; `None` (rate limited, nothing recorded) otherwise.
    pub fn begin(&self, user: &str, addr: Option<IpAddr>) -> Option<Attempt> {
        let now = Instant::now();
        let window = self.window;
        let mut map = self.map();
        let live = |q: &mut VecDeque<Instant>| {
            while q.front().is_some_and(|t| now.duration_since(*t) > window) {
                q.pop_front();
            }
            q.len()
        };
        let keys = Self::keys(user, addr);
        let limits = [self.per_account, self.per_address];
        let mut new_keys = 0;
        for (key, limit) in keys.iter().zip(limits) {
            let Some(key) = key else { continue };
            match map.get_mut(key) {
                Some(q) => {
                    if live(q) >= limit {
                        return None;
                    }
                }
                None => new_keys += 1,
            }
        }
        if map.len() + new_keys > LIMITER_KEYS {
            map.retain(|_, q| live(q) > 0);
            if map.len() + new_keys > LIMITER_KEYS {
                return None;
            }
        }
        for key in keys.into_iter().flatten() {
            map.entry(key).or_default().push_back(now);
        }
        Some(Attempt { at: now })
    }

    /// A successful sign-in: the account's count is cleared and the address gets
    /// this attempt back.
    pub fn succeeded(&self, user: &str, addr: Option<IpAddr>, attempt: Attempt) {
        let mut map = self.map();
        let [account, address] = Self::keys(user, addr);
        if let Some(k) = account {
            map.remove(&k);
        }
        if let Some(k) = address
            && let Some(q) = map.get_mut(&k)
            && let Some(i) = q.iter().rposition(|t| *t == attempt.at)
        {
            q.remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_counts_per_account_and_address() {
        let l = LoginLimiter::new(2, 3, Duration::from_secs(60));
        let ip: Option<IpAddr> = "192.0.2.1".parse().ok();
        assert!(l.begin("a@x.test", ip).is_some());
        assert!(l.begin("a@x.test", ip).is_some());
        assert!(l.begin("a@x.test", ip).is_none(), "account limit");
        let b = l.begin("b@x.test", ip).expect("third from the address");
        assert!(l.begin("c@x.test", ip).is_none(), "address limit");
        // b's success gives the address its attempt back.
        l.succeeded("b@x.test", ip, b);
        assert!(l.begin("c@x.test", ip).is_some());
        assert!(l.begin("a@x.test", None).is_none(), "a is still limited");
    }

    #[test]
    fn parallel_attempts_are_counted_before_any_check_finishes() {
        let l = std::sync::Arc::new(LoginLimiter::new(5, 1000, Duration::from_secs(60)));
        let passed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..64)
                .map(|_| {
                    let l = l.clone();
                    s.spawn(move || usize::from(l.begin("a@x.test", None).is_some()))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        assert_eq!(passed, 5);
    }

    #[test]
    fn a_full_limiter_drops_expired_keys_instead_of_forgetting_all() {
        let l = LoginLimiter::new(1, 1000, Duration::from_secs(10));
        {
            let mut map = l.map();
            let old = Instant::now() - Duration::from_secs(20);
            for i in 0..LIMITER_KEYS {
                map.insert(format!("u:old{i}"), VecDeque::from([old]));
            }
        }
        assert!(
            l.begin("locked@x.test", None).is_some(),
            "room after pruning"
        );
        assert!(
            l.begin("locked@x.test", None).is_none(),
            "its count survived"
        );
    }

    #[tokio::test]
    async fn hashes_verify() {
        let cost = PasswordCost {
            memory_kib: 64,
            iterations: 1,
        };
        let h = hash_password(cost, "secret".into()).await.expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(
            verify_password(h.clone(), "secret".into())
                .await
                .expect("verify")
        );
        assert!(!verify_password(h, "wrong".into()).await.expect("verify"));
    }
}
