//! The crate's one error type, and the one place it becomes an HTTP response.
//!
//! Internal details (SQL, I/O) are logged and never reach a client: they answer
//! `500 {"error":"internal"}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Everything that can fail in the relay outside the WebSocket protocol (which has
/// its own wire error codes, `shieldcall_proto::ErrorCode`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A named thing (user, group, policy, tenant) does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A named thing already exists.
    #[error("{0} already exists")]
    Conflict(String),
    /// A compare-and-set write found the thing changed since it was read (another
    /// admin or the CLI at the same moment); nothing was written.
    #[error("{0} was changed by someone else at the same moment; try again")]
    Changed(String),
    /// The request is malformed or breaks a rule; the text says which.
    #[error("{0}")]
    Invalid(String),
    /// `Global` is part of every tenant and is never removed.
    #[error("the Global policy cannot be removed")]
    GlobalPermanent,
    /// No valid session.
    #[error("sign-in required")]
    Unauthorized,
    /// Wrong user name or password.
    #[error("wrong user name or password")]
    BadCredentials,
    /// Signed in, but not allowed to do this (not an admin, foreign origin, ...).
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// Too many sign-in attempts; try again later.
    #[error("too many attempts, try again later")]
    RateLimited,
    /// Every password-hashing slot stayed taken for the queue timeout; try again.
    #[error("the server is busy checking other passwords; try again in a moment")]
    Busy,
    /// The database failed.
    #[error("store: {0}")]
    Store(#[from] sqlx::Error),
    /// Anything else that is our fault.
    #[error("internal: {0}")]
    Internal(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status and the stable code sent to clients.
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::Changed(_) => (StatusCode::CONFLICT, "changed"),
            Self::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
            Self::GlobalPermanent => (StatusCode::BAD_REQUEST, "global-permanent"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::BadCredentials => (StatusCode::UNAUTHORIZED, "bad-credentials"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate-limited"),
            Self::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            Self::Store(_) | Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "request failed");
            String::from("internal error")
        } else {
            self.to_string()
        };
        (
            status,
            Json(serde_json::json!({ "error": code, "message": message })),
        )
            .into_response()
    }
}
