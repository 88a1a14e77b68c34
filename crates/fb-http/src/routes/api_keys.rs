//! API keys for machines and integrations.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use fb_app::auth::{ApiKeyRef, NewApiKey};

use crate::api::v1::{ApiKey, ApiKeyList, CreateApiKeyRequest, CreatedApiKey};
use crate::audit::AuditFacts;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, AppPath, Caller};
use crate::state::AppState;

/// All API keys within the caller's sites, newest first, revoked ones included. Secrets are never listed.
#[utoipa::path(get, operation_id = "list_api_keys", path = "/api/v1/api_keys", tag = "api_keys",
    responses((status = 200, description = "API keys", body = ApiKeyList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<ApiKeyList>, ApiError> {
    let keys = state.auth.list_api_keys(&caller).await?;
    Ok(Json(ApiKeyList {
        api_keys: keys.into_iter().map(ApiKey::from).collect(),
    }))
}

/// Creates an API key scoped to a role. The key is returned once; only its hash is stored.
#[utoipa::path(post, operation_id = "create_api_key", path = "/api/v1/api_keys", tag = "api_keys",
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "Created", body = CreatedApiKey),
        (status = 400, description = "Invalid name, role or expiry", body = ErrorBody),
        (status = 403, description = "Role more privileged than the caller's, or sites beyond the caller's (site_out_of_scope)", body = ErrorBody),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppJson(body): AppJson<CreateApiKeyRequest>,
) -> Result<(StatusCode, AuditFacts, Json<CreatedApiKey>), ApiError> {
    let new = NewApiKey {
        name: body.name,
        role: body.role.into(),
        sites: super::users::requested_sites(body.sites.as_ref())?,
        expires_at: body.expires_at,
    };
    let (api_key, key) = state.auth.create_api_key(&caller, new).await?;
    let facts = AuditFacts::target(format!("api_key:{}", api_key.id))
        .detail("prefix", api_key.prefix.as_str())
        .detail("role", api_key.role.as_str())
        .detail("sites", api_key.sites.to_string());
    Ok((
        StatusCode::CREATED,
        facts,
        Json(CreatedApiKey {
            api_key: api_key.into(),
            key,
        }),
    ))
}

/// Revokes an API key (by id or prefix). It stops working at once; the record is kept.
#[utoipa::path(post, operation_id = "revoke_api_key", path = "/api/v1/api_keys/{key}/revoke", tag = "api_keys",
    params(("key" = String, Path, description = "API key id or prefix")),
    responses(
        (status = 200, description = "Revoked", body = ApiKey),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 409, description = "Already revoked", body = ErrorBody),
    ))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(key): AppPath<String>,
) -> Result<Json<ApiKey>, ApiError> {
    let key = state
        .auth
        .revoke_api_key(&caller, &ApiKeyRef::parse(&key))
        .await?;
    Ok(Json(key.into()))
}
