//! Sessions, refresh, and the second factor.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use fb_core::session;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token of the last login or refresh (`fbr_…`).
    pub refresh_token: String,
}

/// The login's second step: the `mfa_token` of the login's answer and either the current code
/// of the authenticator app or one of the recovery codes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaVerifyRequest {
    pub mfa_token: String,
    /// Six digits.
    #[serde(default)]
    #[schema(example = "492039")]
    pub code: Option<String>,
    /// One of the recovery codes handed out at enrolment (each works once).
    #[serde(default)]
    pub recovery_code: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaCodeRequest {
    /// The current six-digit code of the authenticator app.
    #[schema(example = "492039")]
    pub code: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableMfaRequest {
    pub current_password: String,
    /// The current six-digit code of the authenticator app.
    pub code: String,
}

/// A started TOTP enrolment, shown once.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TotpEnrolmentResponse {
    /// The shared secret (base32), to type into an authenticator app.
    pub secret: String,
    /// The same as an `otpauth://` URI, to show as a QR code.
    pub otpauth_uri: String,
    #[schema(example = 6)]
    pub digits: u32,
    #[schema(example = 30)]
    pub period_secs: i64,
    #[schema(example = "SHA1")]
    pub algorithm: String,
}

/// One-time recovery codes, shown this once: each can stand in for a code once.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RecoveryCodesResponse {
    pub recovery_codes: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MfaStatus {
    pub enabled: bool,
    /// Enrolment was started and waits for its first code.
    pub pending: bool,
    /// The caller's role requires a second factor.
    pub required: bool,
    pub recovery_codes_left: u64,
}

impl From<fb_app::auth::MfaStatus> for MfaStatus {
    fn from(s: fb_app::auth::MfaStatus) -> Self {
        Self {
            enabled: s.enabled,
            pending: s.pending,
            required: s.required,
            recovery_codes_left: s.recovery_codes_left,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub refreshed_at: OffsetDateTime,
    /// The session ends then, however often it is refreshed.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The second factor was verified at login.
    pub mfa: bool,
    /// The client's User-Agent at login.
    pub client: String,
    /// The client's address at login.
    pub source: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    /// `logout`, `revoked`, `refresh_token_reused`, `password_changed`, `user_disabled`, `mfa_reset`.
    pub end_reason: Option<String>,
    /// The session of the access token that asked.
    pub current: bool,
}

impl Session {
    pub fn new(s: session::Session, current: Option<session::SessionId>) -> Self {
        Self {
            current: current == Some(s.id),
            id: s.id.0,
            user_id: s.user.0,
            created_at: s.created_at,
            refreshed_at: s.refreshed_at,
            expires_at: s.expires_at,
            mfa: s.mfa,
            client: s.client,
            source: s.source,
            ended_at: s.ended_at,
            end_reason: s.end_reason.map(|r| r.as_str().to_owned()),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<Session>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionsEnded {
    /// Sessions that were active and are ended now.
    pub ended: u64,
}
