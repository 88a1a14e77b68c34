//! `/api/v1` request and response bodies.
//!
//! Types that carry a password, token or key have no `Debug`, so they cannot end up in a log.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use fb_core::error::FieldError;
use fb_core::identity::{self, Permission, Principal, SiteScope, Subject};

/// A wire enum (snake_case) mirroring a domain enum variant for variant, both ways.
macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident <=> $domain:path { $($variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, ::serde::Serialize, ::serde::Deserialize, ::utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl From<$domain> for $name {
            fn from(v: $domain) -> Self {
                match v { $(<$domain>::$variant => $name::$variant),+ }
            }
        }

        impl From<$name> for $domain {
            fn from(v: $name) -> Self {
                match v { $($name::$variant => <$domain>::$variant),+ }
            }
        }
    };
}

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

/// The sites a user or API key reaches: `"all"` (every site, including sites added later), or
/// a list of site names (as in a machine's `location.site`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Sites {
    All(AllSites),
    #[schema(example = json!(["plant-a", "plant-b"]))]
    Named(Vec<String>),
}

/// The word `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AllSites {
    All,
}

impl<'de> Deserialize<'de> for Sites {
    // By hand rather than untagged, so that a wrong value gets a reason a person can act on.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Sites;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"all\" or a list of site names")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Sites, E> {
                if v == "all" {
                    Ok(Sites::All(AllSites::All))
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Str(v), &self))
                }
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Sites, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(Sites::Named(names))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Sites {
    /// The scope, with every site name checked (problems named `field[i]`).
    pub fn to_scope(&self, field: &str) -> Result<SiteScope, Vec<FieldError>> {
        match self {
            Sites::All(_) => Ok(SiteScope::All),
            Sites::Named(names) => SiteScope::named(field, names),
        }
    }
}

impl From<&SiteScope> for Sites {
    fn from(scope: &SiteScope) -> Self {
        match scope {
            SiteScope::All => Sites::All(AllSites::All),
            SiteScope::Sites(names) => Sites::Named(names.iter().cloned().collect()),
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

/// A session's tokens.
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
    /// Trade it for new tokens at POST /api/v1/auth/refresh before it expires. It works once:
    /// store the one that comes back. Presenting a used one ends the session.
    pub refresh_token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub refresh_expires_at: OffsetDateTime,
    /// The login session these tokens belong to.
    pub session_id: Uuid,
    /// The password was generated; the user should choose one (POST /api/v1/auth/password).
    pub must_change_password: bool,
    /// The role requires a second factor that is not enrolled yet: until it is (POST
    /// /api/v1/auth/mfa/totp, then …/confirm), only the caller's own account can be managed.
    pub mfa_enrolment_required: bool,
}

/// The password was right; the second factor must follow at POST /api/v1/auth/mfa/verify.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct MfaChallengeResponse {
    /// Always true.
    pub mfa_required: bool,
    /// Send it with the code to POST /api/v1/auth/mfa/verify.
    pub mfa_token: String,
    /// Seconds the MFA step may take.
    #[schema(example = 300)]
    pub expires_in: i64,
}

/// What a login answers: a session's tokens, or the request for a second factor.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum LoginResponse {
    Session(TokenResponse),
    MfaRequired(MfaChallengeResponse),
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
    pub sites: Sites,
    pub disabled: bool,
    pub must_change_password: bool,
    /// A second factor (TOTP) is enrolled.
    pub mfa_enabled: bool,
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
            sites: (&u.sites).into(),
            disabled: u.disabled,
            must_change_password: u.must_change_password,
            mfa_enabled: u.mfa_enabled,
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
    /// Within the caller's own sites. Omitted: the caller's own sites.
    #[serde(default)]
    pub sites: Option<Sites>,
    /// At least 12 characters. Omit to have one generated and returned once.
    #[serde(default)]
    pub password: Option<String>,
}

/// A change of a user's access; omitted fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// No more privileged than the caller's own role.
    #[serde(default)]
    pub role: Option<Role>,
    /// Within the caller's own sites.
    #[serde(default)]
    pub sites: Option<Sites>,
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
    /// The sites whose machines, readings and alerts the caller reaches.
    pub sites: Sites,
    /// Every permission the caller holds now, e.g. `plant.read`.
    pub permissions: Vec<String>,
    pub must_change_password: bool,
    /// The login session of the access token (none for API keys).
    pub session_id: Option<Uuid>,
    /// The role requires a second factor this session has not verified yet.
    pub mfa_enrolment_required: bool,
}

impl Me {
    pub fn new(principal: &Principal, must_change_password: bool) -> Self {
        let (kind, id, name) = match &principal.subject {
            Subject::User { id, username, .. } => {
                (PrincipalKind::User, Some(id.0), username.clone())
            }
            Subject::ApiKey { id, name } => (PrincipalKind::ApiKey, Some(id.0), name.clone()),
            Subject::System => (PrincipalKind::System, None, "system".to_owned()),
        };
        Self {
            kind,
            id,
            name,
            role: principal.role.into(),
            sites: (&principal.sites).into(),
            permissions: Permission::ALL
                .into_iter()
                .filter(|p| principal.can(*p))
                .map(|p| p.as_str().to_owned())
                .collect(),
            must_change_password,
            session_id: principal.session().map(|s| s.0),
            mfa_enrolment_required: principal.mfa_enrolment_pending,
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
    pub sites: Sites,
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
            sites: (&k.sites).into(),
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
    /// Within the caller's own sites. Omitted: the caller's own sites.
    #[serde(default)]
    pub sites: Option<Sites>,
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
mod devices;
mod energy;
mod events;
mod gates;
mod kpis;
mod machines;
mod models;
mod procurement;
mod readings;
mod sessions;
mod tickets;
pub use alerts::*;
pub use audit::*;
pub use devices::*;
pub use energy::*;
pub use events::*;
pub use gates::*;
pub use kpis::*;
pub use machines::*;
pub use models::*;
pub use procurement::*;
pub use readings::*;
pub use sessions::*;
pub use tickets::*;
