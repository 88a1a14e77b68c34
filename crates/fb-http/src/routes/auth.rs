//! Login (with its MFA step), refresh, logout, the caller's identity, sessions, password and
//! second factor.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use fb_app::auth::{ClientInfo, LoginOutcome, MfaProof, SessionTokens};
use fb_core::identity::{Principal, User};
use fb_core::session::SessionId;

use crate::api::v1::{
    ChangePasswordRequest, DisableMfaRequest, LoginRequest, LoginResponse, Me,
    MfaChallengeResponse, MfaCodeRequest, MfaStatus, MfaVerifyRequest, RecoveryCodesResponse,
    RefreshRequest, Session, SessionList, TokenResponse, TotpEnrolmentResponse,
};
use crate::audit::AuditFacts;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, AppPath, Caller};
use crate::rate_limit::{Applied, ClientAddress};
use crate::state::AppState;

/// What the connection says about the client, kept with a new session.
fn client_info(headers: &HeaderMap, client: ClientAddress) -> ClientInfo {
    ClientInfo {
        client: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        source: match client {
            ClientAddress::Known(ip) => ip.to_string(),
            ClientAddress::Unknown => "unknown".to_owned(),
        },
    }
}

fn token_response(
    user: &User,
    tokens: SessionTokens,
    mfa_enrolment_required: bool,
) -> TokenResponse {
    TokenResponse {
        access_token: tokens.access.token,
        token_type: "Bearer".to_owned(),
        expires_in: tokens.access.expires_in_secs,
        expires_at: tokens.access.expires_at,
        refresh_token: tokens.refresh_token,
        refresh_expires_at: tokens.refresh_expires_at,
        session_id: tokens.session.0,
        must_change_password: user.must_change_password,
        mfa_enrolment_required,
    }
}

/// Exchanges a username and password for a session: an access token (one hour by default) and
/// a refresh token. A user with a second factor gets an `mfa_token` instead, to complete the
/// login at POST /api/v1/auth/mfa/verify.
#[utoipa::path(post, operation_id = "login", path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in, or the second factor is to follow", body = LoginResponse),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Wrong username or password, or account disabled", body = ErrorBody),
    ))]
pub(crate) async fn login(
    State(state): State<AppState>,
    client: ClientAddress,
    headers: HeaderMap,
    AppJson(body): AppJson<LoginRequest>,
) -> (AuditFacts, Response) {
    // The audit record names the account tried (never the password), and on success its id.
    let username = body.username.trim();
    // Only a name that could be a username is recorded: a password typed into the username
    // field must not stay in a log that can never be edited.
    let shown = match fb_core::identity::validate_username("username", username) {
        Ok(()) => username,
        Err(_) => "[invalid]",
    };
    let facts = AuditFacts::target(format!("user:{shown}")).detail("username", shown);
    // Checked before the password hash is computed: that is the work a guesser wants done.
    let limits = match state.rate_limits.check_login(client, username).await {
        Ok(applied) => applied,
        Err(refusal) => return (facts, refusal),
    };
    let outcome = state
        .auth
        .login(username, &body.password, &client_info(&headers, client))
        .await;
    let (facts, answer) = match outcome {
        Ok(LoginOutcome::Session(user, tokens)) => {
            let pending = state.auth.requires_mfa(user.role);
            let facts = facts
                .detail("user_id", user.id.to_string())
                .detail("session_id", tokens.session.to_string());
            let body = LoginResponse::Session(token_response(&user, tokens, pending));
            (facts, Json(body).into_response())
        }
        Ok(LoginOutcome::MfaRequired(user, challenge)) => {
            let facts = facts
                .detail("user_id", user.id.to_string())
                .detail("step", "mfa_required");
            let body = LoginResponse::MfaRequired(MfaChallengeResponse {
                mfa_required: true,
                mfa_token: challenge.token,
                expires_in: challenge.expires_in_secs,
            });
            (facts, Json(body).into_response())
        }
        Err(e) => (facts, ApiError::from(e).into_response()),
    };
    (facts, limits.annotate(answer))
}

/// Completes a login with a second factor: the `mfa_token` of the login's answer and the
/// authenticator's current code (or a recovery code).
#[utoipa::path(post, operation_id = "verify_mfa", path = "/api/v1/auth/mfa/verify", tag = "auth",
    request_body = MfaVerifyRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 400, description = "Neither or both of code and recovery_code", body = ErrorBody),
        (status = 401, description = "Wrong, expired or reused code, or the MFA step expired", body = ErrorBody),
    ))]
pub(crate) async fn verify_mfa(
    State(state): State<AppState>,
    client: ClientAddress,
    headers: HeaderMap,
    AppJson(body): AppJson<MfaVerifyRequest>,
) -> (AuditFacts, Response) {
    let facts = AuditFacts::default();
    // Codes are short. Every try counts against the address's login limit here, and below
    // against the per-user budget of code checks of the user the challenge names, so that
    // spreading guesses over many addresses gains nothing.
    let limits = match state.rate_limits.check_login(client, "").await {
        Ok(applied) => applied,
        Err(refusal) => return (facts, refusal),
    };
    let proof = match (body.code, body.recovery_code) {
        (Some(code), None) => MfaProof::Code(code),
        (None, Some(code)) => MfaProof::RecoveryCode(code),
        _ => {
            let error = ApiError::invalid_field(
                "code",
                "send either code (six digits) or recovery_code, not both",
            );
            return (facts, limits.annotate(error.into_response()));
        }
    };
    let method = match proof {
        MfaProof::Code(_) => "totp",
        MfaProof::RecoveryCode(_) => "recovery_code",
    };
    // Guesses are counted per user too: spread over many addresses, they share one budget.
    let mut facts = facts.detail("method", method);
    let limits = match state.auth.challenge_subject(&body.mfa_token) {
        Some(user) => {
            facts = AuditFacts::target(format!("user:{user}"))
                .detail("user_id", user.to_string())
                .detail("method", method);
            match state.rate_limits.check_second_factor(user).await {
                Ok(more) => limits.and(more),
                Err(refusal) => return (facts, limits.annotate(refusal)),
            }
        }
        None => limits,
    };
    let outcome = state
        .auth
        .verify_mfa(&body.mfa_token, &proof, &client_info(&headers, client))
        .await;
    let (facts, answer) = match outcome {
        Ok((user, tokens)) => {
            let facts = AuditFacts::target(format!("user:{}", user.username))
                .detail("user_id", user.id.to_string())
                .detail("session_id", tokens.session.to_string())
                .detail("method", method);
            (
                facts,
                Json(token_response(&user, tokens, false)).into_response(),
            )
        }
        Err(e) => (facts, ApiError::from(e).into_response()),
    };
    (facts, limits.annotate(answer))
}

/// Trades a refresh token for a new access token and a new refresh token (each refresh token
/// works once). Presenting one that was used already ends its session: two parties held it.
#[utoipa::path(post, operation_id = "refresh", path = "/api/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = TokenResponse),
        (status = 401, description = "Unknown, expired or reused refresh token", body = ErrorBody),
    ))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    AppJson(body): AppJson<RefreshRequest>,
) -> Result<(AuditFacts, Json<TokenResponse>), ApiError> {
    let (user, tokens) = state.auth.refresh(&body.refresh_token).await?;
    let facts = AuditFacts::target(format!("user:{}", user.username))
        .detail("session_id", tokens.session.to_string());
    let caller = state.auth.authenticate(&tokens.access.token).await?;
    Ok((
        facts,
        Json(token_response(&user, tokens, caller.mfa_enrolment_pending)),
    ))
}

/// Ends the caller's session: its access and refresh tokens stop working at once.
#[utoipa::path(post, operation_id = "logout", path = "/api/v1/auth/logout", tag = "auth",
    responses(
        (status = 204, description = "Logged out"),
        (status = 403, description = "Called with an API key", body = ErrorBody),
    ))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<(AuditFacts, StatusCode), ApiError> {
    let session = state.auth.logout(&caller).await?;
    Ok((
        AuditFacts::target(format!("session:{}", session.id)),
        StatusCode::NO_CONTENT,
    ))
}

/// The caller's active sessions, newest first.
#[utoipa::path(get, operation_id = "list_my_sessions", path = "/api/v1/auth/sessions", tag = "auth",
    responses((status = 200, description = "Sessions", body = SessionList)))]
pub(crate) async fn my_sessions(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<SessionList>, ApiError> {
    let current = caller.session();
    let sessions = state.auth.my_sessions(&caller).await?;
    Ok(Json(SessionList {
        sessions: sessions
            .into_iter()
            .map(|s| Session::new(s, current))
            .collect(),
    }))
}

/// Ends one of the caller's own sessions (a forgotten browser, a lost tablet).
#[utoipa::path(delete, operation_id = "end_my_session", path = "/api/v1/auth/sessions/{session}", tag = "auth",
    params(("session" = uuid::Uuid, Path, description = "Session id")),
    responses(
        (status = 204, description = "Ended"),
        (status = 404, description = "No session of the caller has this id", body = ErrorBody),
    ))]
pub(crate) async fn end_my_session(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(session): AppPath<uuid::Uuid>,
) -> Result<StatusCode, ApiError> {
    state
        .auth
        .end_my_session(&caller, SessionId(session))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's second factor: enrolled, pending, required by the role, recovery codes left.
#[utoipa::path(get, operation_id = "mfa_status", path = "/api/v1/auth/mfa", tag = "auth",
    responses((status = 200, description = "Status", body = MfaStatus)))]
pub(crate) async fn mfa_status(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<MfaStatus>, ApiError> {
    Ok(Json(state.auth.mfa_status(&caller).await?.into()))
}

/// Starts TOTP enrolment: a new secret, shown once, to add to an authenticator app. It is
/// required only after POST /api/v1/auth/mfa/totp/confirm with a first code.
#[utoipa::path(post, operation_id = "enrol_totp", path = "/api/v1/auth/mfa/totp", tag = "auth",
    responses(
        (status = 200, description = "Enrolment started", body = TotpEnrolmentResponse),
        (status = 409, description = "A second factor is enabled already", body = ErrorBody),
    ))]
pub(crate) async fn enrol_totp(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<TotpEnrolmentResponse>, ApiError> {
    let enrolment = state.auth.start_totp_enrolment(&caller).await?;
    Ok(Json(TotpEnrolmentResponse {
        secret: enrolment.secret,
        otpauth_uri: enrolment.uri,
        digits: fb_app::auth::totp::DIGITS,
        period_secs: fb_app::auth::totp::PERIOD_SECS,
        algorithm: "SHA1".to_owned(),
    }))
}

/// Confirms enrolment with the authenticator's first code; returns ten recovery codes, shown
/// this once. The caller's session counts as verified from now on.
#[utoipa::path(post, operation_id = "confirm_totp", path = "/api/v1/auth/mfa/totp/confirm", tag = "auth",
    request_body = MfaCodeRequest,
    responses(
        (status = 200, description = "Enabled", body = RecoveryCodesResponse),
        (status = 401, description = "Wrong code", body = ErrorBody),
        (status = 409, description = "Already enabled, or enrolment not started", body = ErrorBody),
    ))]
pub(crate) async fn confirm_totp(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppJson(body): AppJson<MfaCodeRequest>,
) -> Response {
    let limits = match second_factor_limits(&state, &caller).await {
        Ok(limits) => limits,
        Err(refusal) => return refusal,
    };
    let answer = match state.auth.confirm_totp(&caller, &body.code).await {
        Ok(recovery_codes) => Json(RecoveryCodesResponse { recovery_codes }).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    };
    limits.annotate(answer)
}

/// Turns the caller's second factor off (password and a current code); not for roles that
/// require one.
#[utoipa::path(delete, operation_id = "disable_totp", path = "/api/v1/auth/mfa/totp", tag = "auth",
    request_body = DisableMfaRequest,
    responses(
        (status = 204, description = "Disabled"),
        (status = 401, description = "Wrong password or code", body = ErrorBody),
        (status = 403, description = "The role requires a second factor", body = ErrorBody),
        (status = 409, description = "No second factor is enrolled (mfa_not_enrolled)", body = ErrorBody),
    ))]
pub(crate) async fn disable_totp(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppJson(body): AppJson<DisableMfaRequest>,
) -> Response {
    let limits = match second_factor_limits(&state, &caller).await {
        Ok(limits) => limits,
        Err(refusal) => return refusal,
    };
    let limits = match reauth_limits(&state, &caller).await {
        Ok(more) => limits.and(more),
        Err(refusal) => return limits.annotate(refusal),
    };
    let answer = match state
        .auth
        .disable_totp(&caller, &body.current_password, &body.code)
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => ApiError::from(e).into_response(),
    };
    limits.annotate(answer)
}

/// Replaces the caller's recovery codes (the old ones stop working), with a current code.
#[utoipa::path(post, operation_id = "new_recovery_codes", path = "/api/v1/auth/mfa/recovery-codes", tag = "auth",
    request_body = MfaCodeRequest,
    responses(
        (status = 200, description = "New codes", body = RecoveryCodesResponse),
        (status = 401, description = "Wrong code", body = ErrorBody),
        (status = 409, description = "No second factor is enrolled (mfa_not_enrolled)", body = ErrorBody),
    ))]
pub(crate) async fn new_recovery_codes(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppJson(body): AppJson<MfaCodeRequest>,
) -> Response {
    let limits = match second_factor_limits(&state, &caller).await {
        Ok(limits) => limits,
        Err(refusal) => return refusal,
    };
    let answer = match state
        .auth
        .regenerate_recovery_codes(&caller, &body.code)
        .await
    {
        Ok(recovery_codes) => Json(RecoveryCodesResponse { recovery_codes }).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    };
    limits.annotate(answer)
}

/// The per-user budget of one-time code checks of a logged-in caller (API keys have no second
/// factor: their calls are refused by the service, and cost nothing here).
async fn second_factor_limits(state: &AppState, caller: &Principal) -> Result<Applied, Response> {
    match caller.user_id() {
        Some(user) => state.rate_limits.check_second_factor(user).await,
        None => Ok(Applied::default()),
    }
}

/// The per-user budget of password checks of a logged-in caller.
async fn reauth_limits(state: &AppState, caller: &Principal) -> Result<Applied, Response> {
    match caller.user_id() {
        Some(user) => state.rate_limits.check_reauth(user).await,
        None => Ok(Applied::default()),
    }
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
) -> Response {
    let limits = match reauth_limits(&state, &caller).await {
        Ok(limits) => limits,
        Err(refusal) => return refusal,
    };
    let answer = match state
        .auth
        .change_password(&caller, &body.current_password, &body.new_password)
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => ApiError::from(e).into_response(),
    };
    limits.annotate(answer)
}
