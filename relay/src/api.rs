//! Sign-in, sign-out and "who am I".
//!
//! `POST /api/login` `{"user","password"}` → 200 `{"user","admin"}` with the
//! session cookie, 401 on a wrong name or password, 429 when rate limited, 503
//! when every password-hashing slot stayed busy (`auth::ARGON2_QUEUE_TIMEOUT`).
//! `POST /api/logout` ends the session and the WebSockets opened with it.
//! `GET /api/me` → `{"user","admin","e2ee"}`.
//! `GET /api/history` → the user's recent calls (see [`history`]).

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::AppState;
use crate::auth::{self, Authed, NotCrossSite};
use crate::error::{Error, Result};
use crate::ops;
use crate::store::{Session, unix_now};

/// The client's address, when the server knows it: the peer's address, or, when
/// the peer is one of `Config::trusted_proxies`, the last address in its
/// `X-Forwarded-For` (the one that proxy appended). Without trusted proxies the
/// header is ignored: any client could write it.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded = || {
            parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .next_back()
                .and_then(|a| a.trim().parse::<IpAddr>().ok())
        };
        Ok(Self(match peer {
            Some(p) if state.config().trusted_proxies.contains(&p) => forwarded().or(peer),
            _ => peer,
        }))
    }
}

/// The sign-in form.
#[derive(Deserialize)]
pub struct Login {
    /// `name@domain`.
    user: String,
    /// Never logged.
    password: String,
}

fn cookie(state: &AppState, value: &str, max_age: u64) -> Result<HeaderValue> {
    let secure = state.secure_cookies();
    let name = auth::cookie_name(secure);
    let flag = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{flag}"
    ))
    .map_err(|e| Error::Internal(format!("cookie: {e}")))
}

/// `POST /api/login`.
pub async fn login(
    State(state): State<AppState>,
    _: NotCrossSite,
    ClientAddr(addr): ClientAddr,
    Json(form): Json<Login>,
) -> Result<Response> {
    let Ok(name) = ops::normalize_user(&form.user) else {
        return Err(Error::BadCredentials);
    };
    // Counted before the password is checked, so parallel attempts cannot all
    // pass the limit.
    let limiter = state.limiter();
    let attempt = match state.cluster() {
        // Several nodes: counted in the database, for all of them together.
        Some(c) => c
            .node()
            .arbiter()
            .signin_begin(
                &limiter.keys(&name, addr),
                limiter.window(),
                auth::LIMITER_FIRST_DELAY,
            )
            .await?
            .map(Attempt::Shared),
        None => limiter.begin(&name, addr).map(Attempt::Here),
    };
    let Some(attempt) = attempt else {
        tracing::warn!(user = %name, "sign-in rate limited");
        return Err(Error::RateLimited);
    };
    let user = state.store().user(&name).await?;
    let ok = match &user {
        Some(u) => auth::verify_password(u.password_hash.clone(), form.password).await?,
        None => {
            // Same work for an unknown name, so timing does not tell which exist.
            let dummy = state.dummy_hash().await?;
            let _ = auth::verify_password(dummy, form.password).await?;
            false
        }
    };
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!(user = %name, "sign-in failed");
        return Err(Error::BadCredentials);
    };
    match (attempt, state.cluster()) {
        (Attempt::Shared(n), Some(c)) => {
            let cleared: Vec<String> = limiter
                .keys(&name, addr)
                .into_iter()
                .map(|(k, _)| k)
                .filter(|k| !k.starts_with("a:"))
                .collect();
            c.node().arbiter().signin_succeeded(&cleared, n).await?;
        }
        (Attempt::Here(a), _) => limiter.succeeded(&name, addr, a),
        (Attempt::Shared(_), None) => {}
    }
    let (token, hash) = auth::new_token()?;
    let lifetime = state.config().session_lifetime.as_secs();
    let ended = state
        .store()
        .create_session(&Session {
            token_hash: hash,
            user: user.name.clone(),
            expires_at: unix_now().saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX)),
        })
        .await?;
    for old in ended {
        // The user's oldest session beyond the cap: its connections close too.
        state.hub().sign_out(&user.name, Some(&old));
    }
    tracing::info!(user = %user.name, "signed in");
    let mut resp =
        Json(serde_json::json!({ "user": user.name, "admin": user.admin })).into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, cookie(&state, &token, lifetime)?);
    Ok(resp)
}

/// A sign-in attempt, as counted: by this relay, or by the cluster's database.
enum Attempt {
    Here(auth::Attempt),
    Shared(i64),
}

/// `POST /api/logout`.
pub async fn logout(
    State(state): State<AppState>,
    _: NotCrossSite,
    authed: Authed,
) -> Result<Response> {
    state
        .store()
        .delete_session(&authed.session.token_hash)
        .await?;
    state
        .hub()
        .sign_out(&authed.user.name, Some(&authed.session.token_hash));
    tracing::info!(user = %authed.user.name, "signed out");
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, cookie(&state, "", 0)?);
    Ok(resp)
}

/// `GET /api/me`.
pub async fn me(State(state): State<AppState>, authed: Authed) -> Result<Response> {
    let e2ee = ops::effective_setting(state.store(), &authed.user.name).await?;
    Ok(Json(
        serde_json::json!({ "user": authed.user.name, "admin": authed.user.admin, "e2ee": e2ee }),
    )
    .into_response())
}

/// Entries `GET /api/history` returns: the newest, as many as a person scrolls
/// through (the store keeps [`crate::store::HISTORY_PER_USER`]).
pub const HISTORY_PAGE: u32 = 50;

/// `GET /api/history`: the signed-in user's calls, newest first
/// (`{"calls":[{"peer","direction","outcome","mode","at","duration_secs"}]}`).
/// Records of calls that just ended are written first, so they are included.
pub async fn history(State(state): State<AppState>, authed: Authed) -> Result<Response> {
    if let Err(e) = state.flush_history().await {
        // Kept for the next try; what the store has is still answered.
        tracing::warn!(error = %e, "writing the call history failed");
    }
    let calls = state
        .store()
        .history(&authed.user.name, HISTORY_PAGE)
        .await?;
    Ok(Json(serde_json::json!({ "calls": calls })).into_response())
}

/// `GET /api/recordings`: the recordings the signed-in user is in (their side
/// and the other person's), newest first.
pub async fn recordings(State(state): State<AppState>, authed: Authed) -> Result<Response> {
    let list = crate::media::recordings_of(&state.config().data_dir, &authed.user.name);
    Ok(Json(serde_json::json!({ "recordings": list })).into_response())
}

/// `GET /api/recordings/{id}`: one recording's WebM file, for someone in it
/// (`404` for anyone else, as for an id that does not exist). Streamed in
/// 64 KiB pieces: an hour's recording is some 170 MB, not to be held in memory
/// per request.
pub async fn recording(
    State(state): State<AppState>,
    authed: Authed,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Response> {
    let path = crate::media::recording_file(&state.config().data_dir, &authed.user.name, &id)
        .ok_or_else(|| Error::NotFound("no such recording".into()))?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| Error::NotFound("no such recording".into()))?;
    let len = file.metadata().await.map(|m| m.len()).ok();
    let pieces = futures_util::stream::unfold(Some(file), |file| async move {
        use tokio::io::AsyncReadExt;
        let mut file = file?;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(axum::body::Bytes::from(buf)), Some(file)))
            }
            // The response ends with the error; nothing more is read.
            Err(e) => Some((Err(e), None)),
        }
    });
    let mut response = axum::body::Body::from_stream(pieces).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/webm"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Some(len) = len {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    Ok(response)
}
