use fb_core::error::{Code, Coded, FieldError};
use fb_core::identity::Permission;
use fb_core::ports::StoreError;

use super::Rejection;
use crate::scope::OutOfScope;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {}", describe_fields(.0))]
    Validation(Vec<FieldError>),
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("invalid access token: {}", .0.reason())]
    InvalidToken(Rejection),
    #[error("invalid API key: unknown, revoked or expired")]
    InvalidApiKey,
    #[error("this role lacks the permission {0}")]
    PermissionDenied(Permission),
    #[error("this action needs a user session; API keys cannot perform it")]
    UserSessionRequired,
    #[error("no such user")]
    UserNotFound,
    #[error("no such API key")]
    ApiKeyNotFound,
    #[error("the username is taken")]
    UsernameTaken,
    #[error("the API key is already revoked")]
    ApiKeyRevoked,
    #[error(
        "the last active admin of all sites cannot be disabled, demoted or limited to some sites"
    )]
    LastAdmin,
    #[error(transparent)]
    OutOfScope(#[from] OutOfScope),
    #[error("nobody can change their own role or sites")]
    OwnAccessChange,
    #[error("too many logins are being checked at once; retry shortly")]
    Busy,
    #[error("the refresh token is unknown, expired, or of a session that has ended")]
    RefreshTokenInvalid,
    #[error("the refresh token was used before; its session has been ended")]
    RefreshTokenReused,
    #[error("the one-time code is wrong, expired or was used before")]
    MfaCodeInvalid,
    #[error("this role requires a second factor: enrol one before using other routes")]
    MfaEnrolmentRequired,
    #[error("a second factor is enabled already")]
    MfaAlreadyEnabled,
    #[error("no second factor is enrolled")]
    MfaNotEnrolled,
    #[error("this role requires a second factor; it cannot be turned off")]
    MfaRequiredForRole,
    #[error("no such session")]
    SessionNotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl Coded for Error {
    fn code(&self) -> Code {
        match self {
            Error::Validation(_) => Code::invalid_field,
            Error::InvalidCredentials => Code::invalid_credentials,
            Error::InvalidToken(_) => Code::invalid_token,
            Error::InvalidApiKey => Code::invalid_api_key,
            Error::PermissionDenied(_) => Code::permission_denied,
            Error::UserSessionRequired => Code::user_session_required,
            Error::UserNotFound => Code::user_not_found,
            Error::ApiKeyNotFound => Code::api_key_not_found,
            Error::UsernameTaken => Code::username_taken,
            Error::ApiKeyRevoked => Code::api_key_revoked,
            Error::LastAdmin => Code::last_admin,
            Error::OutOfScope(e) => e.code(),
            Error::OwnAccessChange => Code::own_access_change,
            Error::Busy => Code::auth_busy,
            Error::RefreshTokenInvalid => Code::refresh_token_invalid,
            Error::RefreshTokenReused => Code::refresh_token_reused,
            Error::MfaCodeInvalid => Code::mfa_code_invalid,
            Error::MfaEnrolmentRequired => Code::mfa_enrolment_required,
            Error::MfaAlreadyEnabled => Code::mfa_already_enabled,
            Error::MfaNotEnrolled => Code::mfa_not_enrolled,
            Error::MfaRequiredForRole => Code::mfa_required_for_role,
            Error::SessionNotFound => Code::session_not_found,
            Error::Store(StoreError::Unavailable(_)) => Code::storage_unavailable,
            Error::Store(_) | Error::Internal(_) => Code::internal,
        }
    }

    fn field_errors(&self) -> &[FieldError] {
        match self {
            Error::Validation(fields) => fields,
            Error::OutOfScope(e) => e.field_errors(),
            _ => &[],
        }
    }
}

/// `field 'x'` or `fields 'x', 'y'`, for the messages of validation errors.
pub(crate) fn describe_fields(fields: &[FieldError]) -> String {
    let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
    match names.as_slice() {
        [] => "input".to_owned(),
        [one] => format!("field '{one}'"),
        many => format!("fields '{}'", many.join("', '")),
    }
}
