//! Login, the caller's identity and password change.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::v1::{ChangePasswordRequest, LoginRequest, Me, TokenResponse};
use crate::audit::AuditFacts;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, Caller};
use crate::rate_limit::ClientAddress;
use crate::state::AppState;

/// Exchanges a username and password for an access token (valid one hour by default).
#[utoipa::path(post, operation_id = "login", path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Wrong username or password, or account disabled", body = ErrorBody),
    ))]
pub(crate) async fn login(
    State(state): State<AppState>,
    client: ClientAddress,
    AppJson(body): AppJson<LoginRequest>,
) -> (AuditFacts, Response) {
    // The audit record names the account tried (never the password), and on success its id.
    let username = body.username.trim();
    let facts = AuditFacts::target(format!("user:{username}")).detail("username", username);
    // Checked before the password hash is computed: that is the work a guesser wants done.
    let limits = match state.rate_limits.check_login(client, username).await {
        Ok(applied) => applied,
        Err(refusal) => return (facts, refusal),
    };
    let (facts, answer) = match state.auth.login(username, &body.password).await {
        Ok((user, token)) => (
            facts.detail("user_id", user.id.to_string()),
            Json(TokenResponse {
                access_token: token.token,
                token_type: "Bearer".to_owned(),
                expires_in: token.expires_in_secs,
                expires_at: token.expires_at,
                must_change_password: user.must_change_password,
            })
            .into_response(),
        ),
        Err(e) => (facts, ApiError::from(e).into_response()),
    };
    (facts, limits.annotate(answer))
}

/// The authenticated caller: user or API key, role and permissions.
#[utoipa::path(get, operation_id = "me", path = "/api/v1/auth/me", tag = "auth",
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    ))]
pub(crate) async fn me(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<Me>, ApiError> {
    let must_change = state
        .auth
        .current_user(&caller)
        .await?
        .is_some_and(|u| u.must_change_password);
    Ok(Json(Me::new(&caller, must_change)))
}

/// Changes the caller's own password. Needs a user session (not an API key).
#[utoipa::path(post, operation_id = "change_password", path = "/api/v1/auth/password", tag = "auth",
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Password changed"),
        (status = 400, description = "New password too short or too long", body = ErrorBody),
        (status = 401, description = "Current password wrong", body = ErrorBody),
        (status = 403, description = "Called with an API key", body = ErrorBody),
    ))]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppJson(body): AppJson<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .auth
        .change_password(&caller, &body.current_password, &body.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
