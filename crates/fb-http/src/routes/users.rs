//! User administration.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use fb_app::auth::{NewUser, UserRef};

use crate::api::v1::{CreateUserRequest, CreatedUser, User, UserList};
use crate::audit::AuditFacts;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, AppPath, Caller};
use crate::state::AppState;

/// All users, ordered by username.
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
        password: body.password,
    };
    let (user, generated_password) = state.auth.create_user(&caller, new).await?;
    let facts = AuditFacts::target(format!("user:{}", user.username))
        .detail("user_id", user.id.to_string())
        .detail("role", user.role.as_str());
    Ok((
        StatusCode::CREATED,
        facts,
        Json(CreatedUser {
            user: user.into(),
            generated_password,
        }),
    ))
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
