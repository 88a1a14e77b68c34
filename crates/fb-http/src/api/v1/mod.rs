//! `/api/v1` request and response bodies.
//!
//! Types that carry a password, token or key have no `Debug`, so they cannot end up in a log.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use fb_core::identity::{self, Permission, Principal, Subject};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Supervisor,
    Operator,
    Viewer,
}

impl From<identity::Role> for Role {
    fn from(r: identity::Role) -> Self {
        match r {
            identity::Role::Admin => Role::Admin,
            identity::Role::Supervisor => Role::Supervisor,
            identity::Role::Operator => Role::Operator,
            identity::Role::Viewer => Role::Viewer,
        }
    }
}

impl From<Role> for identity::Role {
    fn from(r: Role) -> Self {
        match r {
            Role::Admin => identity::Role::Admin,
            Role::Supervisor => identity::Role::Supervisor,
            Role::Operator => identity::Role::Operator,
            Role::Viewer => identity::Role::Viewer,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "admin")]
    pub username: String,
    pub password: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT to send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds until the token expires.
    #[schema(example = 3600)]
    pub expires_in: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The password was generated; the user should choose one (POST /api/v1/auth/password).
    pub must_change_password: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    /// At least 12 characters.
    pub new_password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    pub must_change_password: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<identity::User> for User {
    fn from(u: identity::User) -> Self {
        Self {
            id: u.id.0,
            username: u.username,
            role: u.role.into(),
            disabled: u.disabled,
            must_change_password: u.must_change_password,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// 3–64 characters: lowercase letters, digits, `.`, `_`, `-`.
    #[schema(example = "line3.operator")]
    pub username: String,
    pub role: Role,
    /// At least 12 characters. Omit to have one generated and returned once.
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct CreatedUser {
    pub user: User,
    /// Present only when the password was generated; shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_password: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserList {
    pub users: Vec<User>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    User,
    ApiKey,
    System,
}

/// The caller as the server sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Me {
    pub kind: PrincipalKind,
    pub id: Option<Uuid>,
    /// Username or API key name.
    pub name: String,
    pub role: Role,
    /// Every permission the role holds, e.g. `plant.read`.
    pub permissions: Vec<String>,
    pub must_change_password: bool,
}

impl Me {
    pub fn new(principal: &Principal, must_change_password: bool) -> Self {
        let (kind, id, name) = match &principal.subject {
            Subject::User { id, username } => (PrincipalKind::User, Some(id.0), username.clone()),
            Subject::ApiKey { id, name } => (PrincipalKind::ApiKey, Some(id.0), name.clone()),
            Subject::System => (PrincipalKind::System, None, "system".to_owned()),
        };
        Self {
            kind,
            id,
            name,
            role: principal.role.into(),
            permissions: Permission::ALL
                .into_iter()
                .filter(|p| principal.can(*p))
                .map(|p| p.as_str().to_owned())
                .collect(),
            must_change_password,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    /// The public part of the key (`fbk_<prefix>_…`), for recognising it in lists.
    pub prefix: String,
    pub name: String,
    pub role: Role,
    pub created_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

impl From<identity::ApiKey> for ApiKey {
    fn from(k: identity::ApiKey) -> Self {
        Self {
            id: k.id.0,
            prefix: k.prefix,
            name: k.name,
            role: k.role.into(),
            created_by: k.created_by.map(|u| u.0),
            created_at: k.created_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    #[schema(example = "historian-bridge")]
    pub name: String,
    /// No more privileged than the caller's own role.
    pub role: Role,
    /// Optional expiry (RFC 3339); the key stops working then.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    pub api_key: ApiKey,
    /// The full key, shown this once. Send it as `Authorization: Bearer <key>`.
    pub key: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKey>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: String,
    /// Store backend name (`sqlite` or `postgres`).
    pub store: String,
}

mod alerts;
mod audit;
mod events;
mod machines;
mod readings;
pub use alerts::*;
pub use audit::*;
pub use events::*;
pub use machines::*;
pub use readings::*;
