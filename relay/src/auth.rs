//! Passwords, session tokens and the extractors that guard every private route.
//!
//! - Passwords: Argon2id (PHC strings), hashed and checked on the blocking pool.
//! - Sessions: a 256-bit random token in the `shieldcall_session` cookie; the store
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

/// The session cookie's name.
pub const COOKIE: &str = "shieldcall_session";

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

/// Hashes a password with Argon2id on the blocking pool.
pub async fn hash_password(cost: PasswordCost, password: String) -> Result<String> {
    let salt = random_bytes::<16>()?;
    tokio::task::spawn_blocking(move || {
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
    .map_err(|e| Error::Internal(format!("hash task: {e}")))?
}

/// Checks a password against a stored hash on the blocking pool.
pub async fn verify_password(hash: String, password: String) -> Result<bool> {
    tokio::task::spawn_blocking(move || {
        let parsed =
            PasswordHash::new(&hash).map_err(|e| Error::Internal(format!("stored hash: {e}")))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| Error::Internal(format!("verify task: {e}")))?
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

/// The session token from the `Cookie` headers, if any.
pub fn cookie_token(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == COOKIE && !v.is_empty()).then_some(v)
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
        let token = cookie_token(parts).ok_or(Error::Unauthorized)?;
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

/// Sign-in limits: failures counted per account and per client address in a
/// sliding window. In memory: a restart forgets them.
#[derive(Debug)]
pub struct LoginLimiter {
    /// Failures allowed per account within `window`.
    per_account: usize,
    /// Failures allowed per address within `window`.
    per_address: usize,
    /// The window.
    window: Duration,
    /// Failure times by key (`u:<user>` or `a:<ip>`).
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    /// Limits: `per_account` and `per_address` failures per `window`.
    pub fn new(per_account: usize, per_address: usize, window: Duration) -> Self {
        Self {
            per_account,
            per_address,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(user: &str, addr: Option<IpAddr>) -> [Option<String>; 2] {
        [Some(format!("u:{user}")), addr.map(|a| format!("a:{a}"))]
    }

    /// Whether another attempt is allowed now.
    pub fn allowed(&self, user: &str, addr: Option<IpAddr>) -> bool {
        let now = Instant::now();
        let Ok(mut map) = self.failures.lock() else {
            return false;
        };
        let [account, address] = Self::keys(user, addr);
        let mut count = |key: Option<String>| {
            key.and_then(|k| {
                map.get_mut(&k).map(|q| {
                    while q
                        .front()
                        .is_some_and(|t| now.duration_since(*t) > self.window)
                    {
                        q.pop_front();
                    }
                    q.len()
                })
            })
            .unwrap_or(0)
        };
        count(account) < self.per_account && count(address) < self.per_address
    }

    /// Records a failed attempt.
    pub fn failed(&self, user: &str, addr: Option<IpAddr>) {
        let now = Instant::now();
        if let Ok(mut map) = self.failures.lock() {
            // Bound memory: forget everything if an attacker sprays many keys.
            if map.len() > 100_000 {
                map.clear();
            }
            for key in Self::keys(user, addr).into_iter().flatten() {
                map.entry(key).or_default().push_back(now);
            }
        }
    }

    /// Forgets an account's failures after a successful sign-in.
    pub fn succeeded(&self, user: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&format!("u:{user}"));
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
        assert!(l.allowed("a@x.test", ip));
        l.failed("a@x.test", ip);
        l.failed("a@x.test", ip);
        assert!(!l.allowed("a@x.test", ip));
        assert!(l.allowed("b@x.test", ip));
        l.failed("b@x.test", ip);
        assert!(!l.allowed("c@x.test", ip), "address limit");
        l.succeeded("a@x.test");
        assert!(l.allowed("a@x.test", None));
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
