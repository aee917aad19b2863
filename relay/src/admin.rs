//! `/api/admin/...`: the tenant admin's API, with Teams' parameter names.
//!
//! Only admins of a tenant, only for that tenant ([`AdminAuthed`]); state-changing
//! requests need a same-origin `Origin` and (for bodies) `Content-Type:
//! application/json`, on top of the SameSite=Strict cookie. Every change is audited
//! (in `ops`) and pushed to affected signed-in users before the response.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use shieldcall_proto::admin::{
    CallingPolicy, DisplayName, GrantForm, NameForm, PolicyForm, UserForm, UserRow,
};

use crate::AppState;
use crate::auth::AdminAuthed;
use crate::error::{Error, Result};
use crate::ops::{self, Ops};
use crate::policy::{ExternalAccess, domain_of};

/// The routes, nested under `/api/admin`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/policies", get(list_policies).post(new_policy))
        .route(
            "/policies/{identity}",
            get(get_policy).put(set_policy).delete(remove_policy),
        )
        .route("/grant", post(grant))
        .route("/assignments", get(assignments))
        .route("/users", get(users))
        .route("/users/{user}/effective", get(effective))
        .route("/users/{user}/name", axum::routing::put(set_name))
        .route("/groups", get(groups).post(add_group))
        .route("/groups/{group}", axum::routing::delete(remove_group))
        .route("/groups/{group}/members", post(add_member))
        .route(
            "/groups/{group}/members/{user}",
            axum::routing::delete(remove_member),
        )
        .route("/audit", get(audit))
        .route("/external-access", get(get_access).put(set_access))
        .route("/calling-policy", get(get_calling).put(set_calling))
}

fn domain(a: &AdminAuthed) -> &str {
    domain_of(&a.0.user.name)
}

fn ops<'a>(state: &'a AppState, a: &'a AdminAuthed) -> Ops<'a> {
    Ops {
        store: state.store(),
        actor: &a.0.user.name,
    }
}

async fn changed(state: &AppState) -> Result<Response> {
    state.refresh().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_policies(State(state): State<AppState>, a: AdminAuthed) -> Result<Response> {
    Ok(Json(ops(&state, &a).get_policies(domain(&a), None).await?).into_response())
}

async fn get_policy(
    State(state): State<AppState>,
    a: AdminAuthed,
    Path(identity): Path<String>,
) -> Result<Response> {
    let p = ops(&state, &a)
        .get_policies(domain(&a), Some(&identity))
        .await?;
    Ok(Json(p.into_iter().next()).into_response())
}

async fn new_policy(
    State(state): State<AppState>,
    a: AdminAuthed,
    Json(f): Json<PolicyForm>,
) -> Result<Response> {
    let identity = f
        .identity
        .ok_or_else(|| Error::Invalid("Identity is required".into()))?;
    let p = ops(&state, &a)
        .new_policy(
            domain(&a),
            &identity,
            f.description.as_deref(),
            f.calling_e2ee,
        )
        .await?;
    state.refresh().await?;
    Ok((StatusCode::CREATED, Json(p)).into_response())
}

async fn set_policy(
    State(state): State<AppState>,
    a: AdminAuthed,
    Path(identity): Path<String>,
    Json(f): Json<PolicyForm>,
) -> Result<Response> {
    if f.identity.as_ref().is_some_and(|i| i != &identity) {
        return Err(Error::Invalid(
            "Identity in the body differs from the path".into(),
        ));
    }
    let p = ops(&state, &a)
        .set_policy(
            domain(&a),
            &identity,
            f.description.as_deref(),
            f.calling_e2ee,
        )
        .await?;
    state.refresh().await?;
    Ok(Json(p).into_response())
}

async fn remove_policy(
    State(state): State<AppState>,
    a: AdminAuthed,
    Path(identity): Path<String>,
) -> Result<Response> {
    ops(&state, &a).remove_policy(domain(&a), &identity).await?;
    changed(&state).await
}

async fn grant(
    State(state): State<AppState>,
    a: AdminAuthed,
    Json(f): Json<GrantForm>,
) -> Result<Response> {
    let target = f.target().map_err(|why| Error::Invalid(why.into()))?;
    ops(&state, &a)
        .grant(domain(&a), &target, f.policy_name.as_deref())
        .await?;
    changed(&state).await
}

async fn assignments(State(state): State<AppState>, a: AdminAuthed) -> Result<Response> {
    Ok(Json(state.store().assignments(domain(&a)).await?).into_response())
}

async fn users(State(state): State<AppState>, a: AdminAuthed) -> Result<Response> {
    let store = state.store();
    let mut out = Vec::new();
    for u in store.users(Some(domain(&a))).await? {
        let effective = ops::effective_setting(store, &u.name).await?;
        out.push(UserRow {
            user: u.name,
            name: u.display_name,
            admin: u.admin,
            e2ee_switch: u.e2ee_switch,
            effective,
        });
    }
    Ok(Json(out).into_response())
}

async fn effective(
    State(state): State<AppState>,
    a: AdminAuthed,
    Path(user): Path<String>,
) -> Result<Response> {
    let user = ops::normalize_user(&user)?;
    if domain_of(&user) != domain(&a) {
        return Err(Error::NotFound(format!("user {user}")));
    }
    Ok(Json(ops::effective_setting(state.store(), &user).await?).into_response())
}

/// `PUT /api/admin/users/{user}/name {"name": "Alice Example"}` ("" removes it):
/// the display name shown beside the address. Answers the name as stored.
async fn set_name(
    State(state): State<AppState>,
    a: AdminAuthed,
    Path(user): Path<String>,
    Json(form): Json<NameForm>,
) -> Result<Response> {
    let user = ops::normalize_user(&user)?;
    if domain_of(&user) != domain(&a) {
        return Err(Error::NotFound(format!("user {user}")));
    }
    let stored = ops(&state, &a).set_display_name(&user, &form.name).await?;
    state.refresh().await?;
    Ok(Json(DisplayName { user, name: stored }).into_response())
}

async fn groups(State(state): State<AppState>, a: AdminAuthed) -> Result<Response> {
    Ok(Json(state.store().groups(domain(&a)).await?).into_response())
}

async fn add_group(
    State(state): State<AppState>,
    a: AdminAuthed,
    Json(f): Json<NameForm>,
) -> Result<Response> {
    ops(&state, &a).add_group(domain(&a), &f.name).await?;
    changed(&state).await
}

async fn remove_group(
    State(state): State<AppState>,
    a: AdminAuthed,
    Path(group): Path<String>,
) -> Result<Response> {
    ops(&state, &a).remove_group(domain(&a), &group).await?;
    changed(&state).await
}

async fn add_member(
    State(state): State<AppState>,
    a: AdminAuthed,
    Path(group): Path<String>,
    Json(f): Json<UserForm>,
) -> Result<Response> {
    ops(&state, &a)
        .add_member(domain(&a), &group, &f.user)
        .await?;
    changed(&state).await
}

async fn remove_member(
    State(state): State<AppState>,
    a: AdminAuthed,
    Path((group, user)): Path<(String, String)>,
) -> Result<Response> {
    ops(&state, &a)
        .remove_member(domain(&a), &group, &user)
        .await?;
    changed(&state).await
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    limit: Option<u32>,
}

async fn audit(
    State(state): State<AppState>,
    a: AdminAuthed,
    Query(q): Query<AuditQuery>,
) -> Result<Response> {
    let limit = q.limit.unwrap_or(100).min(1000);
    Ok(Json(state.store().audit_log(domain(&a), limit).await?).into_response())
}

/// The admin's own tenant, as stored.
async fn tenant(state: &AppState, a: &AdminAuthed) -> Result<crate::store::Tenant> {
    state
        .store()
        .tenants()
        .await?
        .into_iter()
        .find(|t| t.domain == domain(a))
        .ok_or_else(|| Error::NotFound("tenant".into()))
}

async fn get_access(State(state): State<AppState>, a: AdminAuthed) -> Result<Response> {
    Ok(Json(tenant(&state, &a).await?.external_access).into_response())
}

async fn get_calling(State(state): State<AppState>, a: AdminAuthed) -> Result<Response> {
    Ok(Json(tenant(&state, &a).await?.calling).into_response())
}

async fn set_calling(
    State(state): State<AppState>,
    a: AdminAuthed,
    Json(policy): Json<CallingPolicy>,
) -> Result<Response> {
    ops(&state, &a)
        .set_calling_policy(domain(&a), &policy)
        .await?;
    changed(&state).await
}

async fn set_access(
    State(state): State<AppState>,
    a: AdminAuthed,
    Json(access): Json<ExternalAccess>,
) -> Result<Response> {
    ops(&state, &a)
        .set_external_access(domain(&a), &access)
        .await?;
    changed(&state).await
}
