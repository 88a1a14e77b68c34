//! User administration.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use fb_app::auth::{AccessChange, NewUser, UserRef};
use fb_core::identity::SiteScope;

use crate::api::v1::{
    CreateUserRequest, CreatedUser, Session, SessionList, SessionsEnded, Sites, UpdateUserRequest,
    User, UserList,
};
use crate::audit::AuditFacts;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, AppPath, AppQuery, Caller};
use crate::state::AppState;

/// The scope a request names in `sites`, checked; `None` when it names none.
pub(crate) fn requested_sites(sites: Option<&Sites>) -> Result<Option<SiteScope>, ApiError> {
    sites
        .map(|s| s.to_scope("sites"))
        .transpose()
        .map_err(|fields| ApiError::from_coded(&fb_app::auth::Error::Validation(fields)))
}

/// All users within the caller's sites, ordered by username.
#[utoipa::path(get, operation_id = "list_users", path = "/api/v1/users", tag = "users",
    responses((status = 200, description = "Users", body = UserList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<UserList>, ApiError> {
    let users = state.auth.list_users(&caller).await?;
    Ok(Json(UserList {
        users: users.into_iter().map(User::from).collect(),
    }))
}

/// Creates a user. Without a password, one is generated and returned once.
#[utoipa::path(post, operation_id = "create_user", path = "/api/v1/users", tag = "users",
    request_body = CreateUserRequest,
    responses(
        (status = 201, description = "Created", body = CreatedUser),
        (status = 400, description = "Invalid username, role or password", body = ErrorBody),
        (status = 409, description = "Username taken", body = ErrorBody),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppJson(body): AppJson<CreateUserRequest>,
) -> Result<(StatusCode, AuditFacts, Json<CreatedUser>), ApiError> {
    let new = NewUser {
        username: body.username,
        role: body.role.into(),
        sites: requested_sites(body.sites.as_ref())?,
        password: body.password,
    };
    let (user, generated_password) = state.auth.create_user(&caller, new).await?;
    let facts = AuditFacts::target(format!("user:{}", user.username))
        .detail("user_id", user.id.to_string())
        .detail("role", user.role.as_str())
        .detail("sites", user.sites.to_string());
    Ok((
        StatusCode::CREATED,
        facts,
        Json(CreatedUser {
            user: user.into(),
            generated_password,
        }),
    ))
}

/// Changes a user's role and sites (by id or username). Nobody changes their own; the new role
/// and sites must be within the caller's own; the last active admin of all sites stays one.
#[utoipa::path(patch, operation_id = "update_user", path = "/api/v1/users/{user}", tag = "users",
    params(("user" = String, Path, description = "User id or username")),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, description = "Changed", body = User),
        (status = 400, description = "Invalid role or sites", body = ErrorBody),
        (status = 403, description = "Role or sites beyond the caller's (site_out_of_scope), or the caller's own account (own_access_change)", body = ErrorBody),
        (status = 404, description = "No such user within the caller's sites", body = ErrorBody),
        (status = 409, description = "The last active admin of all sites", body = ErrorBody),
    ))]
pub(crate) async fn update(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(user): AppPath<String>,
    AppJson(body): AppJson<UpdateUserRequest>,
) -> Result<(AuditFacts, Json<User>), ApiError> {
    let change = AccessChange {
        role: body.role.map(Into::into),
        sites: requested_sites(body.sites.as_ref())?,
    };
    let user = state
        .auth
        .update_user_access(&caller, &UserRef::parse(&user), change)
        .await?;
    let facts = AuditFacts::target(format!("user:{}", user.username))
        .detail("user_id", user.id.to_string())
        .detail("role", user.role.as_str())
        .detail("sites", user.sites.to_string());
    Ok((facts, Json(user.into())))
}

/// Disables a user (by id or username): it can no longer log in and its tokens stop working.
#[utoipa::path(post, operation_id = "disable_user", path = "/api/v1/users/{user}/disable", tag = "users",
    params(("user" = String, Path, description = "User id or username")),
    responses(
        (status = 200, description = "Disabled", body = User),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "The last active admin", body = ErrorBody),
    ))]
pub(crate) async fn disable(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(user): AppPath<String>,
) -> Result<Json<User>, ApiError> {
    let user = state
        .auth
        .set_user_disabled(&caller, &UserRef::parse(&user), true)
        .await?;
    Ok(Json(user.into()))
}

/// Re-enables a disabled user.
#[utoipa::path(post, operation_id = "enable_user", path = "/api/v1/users/{user}/enable", tag = "users",
    params(("user" = String, Path, description = "User id or username")),
    responses(
        (status = 200, description = "Enabled", body = User),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
pub(crate) async fn enable(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(user): AppPath<String>,
) -> Result<Json<User>, ApiError> {
    let user = state
        .auth
        .set_user_disabled(&caller, &UserRef::parse(&user), false)
        .await?;
    Ok(Json(user.into()))
}

/// A user's sessions (ended ones too with `?all=true`), for reviewing where they are logged in.
#[utoipa::path(get, operation_id = "list_user_sessions", path = "/api/v1/users/{user}/sessions", tag = "users",
    params(
        ("user" = String, Path, description = "User id or username"),
        ("all" = Option<bool>, Query, description = "Include ended sessions"),
    ),
    responses(
        (status = 200, description = "Sessions", body = SessionList),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
pub(crate) async fn sessions(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(user): AppPath<String>,
    AppQuery(query): AppQuery<SessionsQuery>,
) -> Result<Json<SessionList>, ApiError> {
    let (_, sessions) = state
        .auth
        .user_sessions(&caller, &UserRef::parse(&user), query.all.unwrap_or(false))
        .await?;
    let current = caller.session();
    Ok(Json(SessionList {
        sessions: sessions
            .into_iter()
            .map(|s| Session::new(s, current))
            .collect(),
    }))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionsQuery {
    all: Option<bool>,
}

/// Ends every session of a user: their access and refresh tokens stop working at once.
#[utoipa::path(post, operation_id = "end_user_sessions", path = "/api/v1/users/{user}/sessions/end", tag = "users",
    params(("user" = String, Path, description = "User id or username")),
    responses(
        (status = 200, description = "Ended", body = SessionsEnded),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
pub(crate) async fn end_sessions(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(user): AppPath<String>,
) -> Result<(AuditFacts, Json<SessionsEnded>), ApiError> {
    let (user, ended) = state
        .auth
        .end_user_sessions(&caller, &UserRef::parse(&user))
        .await?;
    let facts = AuditFacts::target(format!("user:{}", user.username))
        .detail("user_id", user.id.to_string())
        .detail("ended", ended.to_string());
    Ok((facts, Json(SessionsEnded { ended })))
}

/// Removes a user's second factor (a lost phone, no recovery code left) and ends their
/// sessions; they enrol again after their next login.
#[utoipa::path(post, operation_id = "reset_user_mfa", path = "/api/v1/users/{user}/mfa/reset", tag = "users",
    params(("user" = String, Path, description = "User id or username")),
    responses(
        (status = 200, description = "Reset", body = User),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
pub(crate) async fn reset_mfa(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(user): AppPath<String>,
) -> Result<(AuditFacts, Json<User>), ApiError> {
    let user = state
        .auth
        .reset_mfa(&caller, &UserRef::parse(&user))
        .await?;
    let facts = AuditFacts::target(format!("user:{}", user.username))
        .detail("user_id", user.id.to_string());
    Ok((facts, Json(user.into())))
}
