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
/// `with_argon2_slot`).
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
/// `with_argon2_slot`).
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

/// Refuses a request whose `Origin` header names a foreign site. A request without
/// one (not from a browser) passes: it cannot carry a victim's cookie.
#[derive(Debug, Clone, Copy)]
pub struct NotCrossSite;

impl FromRequestParts<AppState> for NotCrossSite {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        match parts.headers.get(header::ORIGIN) {
            None => Ok(Self),
            Some(_) if same_origin(parts, state) => Ok(Self),
            Some(_) => Err(Error::Forbidden("cross-origin request")),
        }
    }
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

/// Sign-in limits: attempts counted in a sliding window under three keys, each
/// with its own allowance, after which every further attempt must wait a delay
/// that doubles with each attempt (1 s, 2 s, 4 s, ... up to the window) instead
/// of a hard lock for the whole window:
///
/// - the account from one address (`per_account`, 5): a password guesser at one
///   address slows down at once;
/// - the account from anywhere (10 × `per_account`): a guesser spread over many
///   addresses, without letting one address's failures lock the account for
///   everyone else;
/// - the address (`per_address`, 20): one address trying many accounts. IPv6
///   addresses count per /64, the block one subscriber usually holds.
///
/// An attempt is recorded by [`LoginLimiter::begin`] *before* the password is
/// checked, under the same lock as the count, so parallel attempts cannot all pass
/// the check and be counted only afterwards. A successful sign-in takes its
/// attempt back from the address and clears the account's counts. In memory: a
/// restart forgets them. A poisoned lock is recovered, never turned into "refuse
/// everyone". In a cluster the same counts are kept in PostgreSQL instead, for
/// every node together (`cluster::Arbiter::signin_begin`).
#[derive(Debug)]
pub struct LoginLimiter {
    /// Attempts allowed per account and address within `window` before delays.
    per_account: usize,
    /// Attempts allowed per address within `window` before delays.
    per_address: usize,
    /// The window.
    window: Duration,
    /// Attempt times by key (`ua:<user> <net>`, `u:<user>`, `a:<net>`).
    attempts: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// Keys the limiter keeps at most; past it, expired entries are dropped first,
/// and if none expired a new key is refused (counted as limited) instead of
/// forgetting every count at once.
pub const LIMITER_KEYS: usize = 100_000;

/// The first delay once an allowance is used up; it doubles with each attempt.
pub const LIMITER_FIRST_DELAY: Duration = Duration::from_secs(1);

/// An attempt recorded by [`LoginLimiter::begin`]; hand it back on success.
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct Attempt {
    at: Instant,
}

/// The network an address is counted under: the address itself for IPv4 (and
/// IPv4-mapped IPv6), its /64 for IPv6.
pub fn address_key(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

impl LoginLimiter {
    /// Limits: `per_account` (per address; ten times that from anywhere) and
    /// `per_address` attempts per `window` before the delays begin.
    pub fn new(per_account: usize, per_address: usize, window: Duration) -> Self {
        Self {
            per_account,
            per_address,
            window,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// The sliding window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The keys of an attempt and each key's allowance (`a:` keys are the
    /// address's, which a success only takes its attempt back from; the
    /// others a success clears).
    pub fn keys(&self, user: &str, addr: Option<IpAddr>) -> Vec<(String, usize)> {
        let mut keys = vec![(format!("u:{user}"), self.per_account.saturating_mul(10))];
        if let Some(a) = addr {
            let net = address_key(a);
            keys.push((format!("ua:{user} {net}"), self.per_account));
            keys.push((format!("a:{net}"), self.per_address));
        }
        keys
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        self.attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records an attempt if every key is within its allowance, or has waited
    /// out its delay; `None` (rate limited, nothing recorded) otherwise.
    pub fn begin(&self, user: &str, addr: Option<IpAddr>) -> Option<Attempt> {
        self.begin_at(user, addr, Instant::now())
    }

    fn begin_at(&self, user: &str, addr: Option<IpAddr>, now: Instant) -> Option<Attempt> {
        let window = self.window;
        let mut map = self.map();
        let live = |q: &mut VecDeque<Instant>| {
            while q
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) > window)
            {
                q.pop_front();
            }
            q.len()
        };
        let keys = self.keys(user, addr);
        let mut new_keys = 0;
        for (key, allowance) in &keys {
            let Some(q) = map.get_mut(key) else {
                new_keys += 1;
                continue;
            };
            let n = live(q);
            if n >= *allowance {
                let over = u32::try_from(n - allowance).unwrap_or(u32::MAX).min(20);
                let delay = LIMITER_FIRST_DELAY.saturating_mul(1 << over).min(window);
                if q.back()
                    .is_some_and(|last| now.saturating_duration_since(*last) < delay)
                {
                    return None;
                }
            }
        }
        if map.len() + new_keys > LIMITER_KEYS {
            map.retain(|_, q| live(q) > 0);
            if map.len() + new_keys > LIMITER_KEYS {
                return None;
            }
        }
        for (key, _) in keys {
            map.entry(key).or_default().push_back(now);
        }
        Some(Attempt { at: now })
    }

    /// A successful sign-in: the account's counts are cleared and the address
    /// gets this attempt back.
    pub fn succeeded(&self, user: &str, addr: Option<IpAddr>, attempt: Attempt) {
        let mut map = self.map();
        for (key, _) in self.keys(user, addr) {
            if key.starts_with("a:") {
                if let Some(q) = map.get_mut(&key)
                    && let Some(i) = q.iter().rposition(|t| *t == attempt.at)
                {
                    q.remove(i);
                }
            } else {
                map.remove(&key);
            }
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
        let t = Instant::now();
        assert!(l.begin_at("a@x.test", ip, t).is_some());
        assert!(l.begin_at("a@x.test", ip, t).is_some());
        assert!(
            l.begin_at("a@x.test", ip, t).is_none(),
            "account at this address"
        );
        let b = l
            .begin_at("b@x.test", ip, t)
            .expect("third from the address");
        assert!(l.begin_at("c@x.test", ip, t).is_none(), "address allowance");
        // b's success gives the address its attempt back.
        l.succeeded("b@x.test", ip, b);
        assert!(l.begin_at("c@x.test", ip, t).is_some());
        // Another address is not held back by a's failures here.
        let other: Option<IpAddr> = "198.51.100.7".parse().ok();
        assert!(l.begin_at("a@x.test", other, t).is_some());
    }

    #[test]
    fn past_the_allowance_each_attempt_waits_twice_as_long() {
        let l = LoginLimiter::new(2, 1000, Duration::from_secs(300));
        let ip: Option<IpAddr> = "192.0.2.1".parse().ok();
        let t0 = Instant::now();
        assert!(l.begin_at("a@x.test", ip, t0).is_some());
        assert!(l.begin_at("a@x.test", ip, t0).is_some());
        let mut t = t0;
        for wait in [1, 2, 4, 8] {
            let d = Duration::from_secs(wait);
            assert!(
                l.begin_at("a@x.test", ip, t + d - Duration::from_millis(10))
                    .is_none(),
                "before {wait} s"
            );
            t += d;
            assert!(l.begin_at("a@x.test", ip, t).is_some(), "after {wait} s");
        }
    }

    #[test]
    fn many_addresses_slow_the_account_without_locking_it_for_long() {
        let l = LoginLimiter::new(5, 1000, Duration::from_secs(300));
        let t = Instant::now();
        for i in 0..50u8 {
            let ip = Some(IpAddr::from([203, 0, 113, i]));
            assert!(l.begin_at("a@x.test", ip, t).is_some(), "attempt {i}");
        }
        let ip = Some(IpAddr::from([198, 51, 100, 1]));
        assert!(
            l.begin_at("a@x.test", ip, t).is_none(),
            "the account-wide allowance"
        );
        assert!(
            l.begin_at("a@x.test", ip, t + Duration::from_secs(1))
                .is_some(),
            "a delay, not a lock"
        );
    }

    #[test]
    fn ipv6_counts_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        assert_eq!(address_key(mapped), "192.0.2.1");
    }

    #[test]
    fn parallel_attempts_are_counted_before_any_check_finishes() {
        let l = std::sync::Arc::new(LoginLimiter::new(5, 1000, Duration::from_secs(60)));
        let ip: Option<IpAddr> = "192.0.2.1".parse().ok();
        let passed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..64)
                .map(|_| {
                    let l = l.clone();
                    s.spawn(move || usize::from(l.begin("a@x.test", ip).is_some()))
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
        let ip: Option<IpAddr> = "192.0.2.1".parse().ok();
        assert!(l.begin("locked@x.test", ip).is_some(), "room after pruning");
        assert!(l.begin("locked@x.test", ip).is_none(), "its count survived");
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
