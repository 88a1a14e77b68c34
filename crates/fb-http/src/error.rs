//! The one error format of the API:
//! `{"error": {"code", "message", "details", "request_id"}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use fb_core::error::{Code, Coded, ErrorKind, FieldError};

use crate::telemetry;

/// The single mapping from error kinds to HTTP statuses.
pub fn status_for(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The code of an error response, kept in its extensions for the middleware that records the
/// call in the audit log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RespondedCode(pub Code);

/// An error on its way to the client. Internal detail (`cause`) is logged, never sent.
#[derive(Debug)]
pub struct ApiError {
    code: Code,
    message: String,
    details: Vec<FieldError>,
    cause: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorObject,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorObject {
    /// Stable machine-readable code from the error-code table.
    #[schema(example = "invalid_field")]
    code: &'static str,
    /// Human-readable explanation.
    message: String,
    /// Field-level problems (empty when not applicable).
    details: Vec<FieldDetail>,
    /// The request's op id, also in the `x-request-id` response header and in the server log.
    request_id: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct FieldDetail {
    field: String,
    reason: String,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Vec::new(),
            cause: None,
        }
    }

    /// A malformed query or path parameter, named in `details`.
    pub(crate) fn invalid_parameter(field: &str, reason: &str) -> Self {
        Self::about_field(Code::invalid_parameter, field, reason)
    }

    /// An invalid field of a request, named in `details`.
    pub(crate) fn invalid_field(field: &str, reason: &str) -> Self {
        Self::about_field(Code::invalid_field, field, reason)
    }

    fn about_field(code: Code, field: &str, reason: &str) -> Self {
        Self::new(code, format!("{field}: {reason}"))
            .with_details(vec![FieldError::new(field, reason)])
    }

    pub fn with_details(mut self, details: Vec<FieldError>) -> Self {
        self.details = details;
        self
    }

    pub fn code(&self) -> Code {
        self.code
    }

    pub fn details(&self) -> &[FieldError] {
        &self.details
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Internal detail for the log (never sent to the client).
    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    /// Converts an area error. Internal errors keep their text for the log only.
    pub fn from_coded<E: Coded>(e: &E) -> Self {
        let code = e.code();
        let internal = matches!(code.kind(), ErrorKind::Internal | ErrorKind::Unavailable);
        let message = if internal {
            code.description().to_owned()
        } else {
            e.to_string()
        };
        Self {
            code,
            message,
            details: e.field_errors().to_vec(),
            cause: internal.then(|| error_chain(e)),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl From<fb_app::ingest::Error> for ApiError {
    fn from(e: fb_app::ingest::Error) -> Self {
        Self::from_coded(&e)
    }
}

impl From<fb_app::plant::Error> for ApiError {
    fn from(e: fb_app::plant::Error) -> Self {
        Self::from_coded(&e)
    }
}

impl From<fb_app::alerts::Error> for ApiError {
    fn from(e: fb_app::alerts::Error) -> Self {
        Self::from_coded(&e)
    }
}

impl From<fb_app::energy::Error> for ApiError {
    fn from(e: fb_app::energy::Error) -> Self {
        Self::from_coded(&e)
    }
}

impl From<fb_app::procurement::Error> for ApiError {
    fn from(e: fb_app::procurement::Error) -> Self {
        Self::from_coded(&e)
    }
}

impl From<fb_app::optimizer::Error> for ApiError {
    fn from(e: fb_app::optimizer::Error) -> Self {
        Self::from_coded(&e)
    }
}

impl From<fb_app::maintenance::Error> for ApiError {
    fn from(e: fb_app::maintenance::Error) -> Self {
        Self::from_coded(&e)
    }
}

impl From<fb_app::gates::Error> for ApiError {
    fn from(e: fb_app::gates::Error) -> Self {
        Self::from_coded(&e)
    }
}

impl From<fb_app::audit::Error> for ApiError {
    fn from(e: fb_app::audit::Error) -> Self {
        Self::from_coded(&e)
    }
}

impl From<fb_app::devices::Error> for ApiError {
    fn from(e: fb_app::devices::Error) -> Self {
        Self::from_coded(&e)
    }
}

impl From<fb_app::models::Error> for ApiError {
    fn from(e: fb_app::models::Error) -> Self {
        Self::from_coded(&e)
    }
}

impl From<fb_app::auth::Error> for ApiError {
    fn from(e: fb_app::auth::Error) -> Self {
        Self::from_coded(&e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_for(self.code.kind());
        // The code goes on the request span, so the one access-log line of the request carries
        // it. Server-side failures are logged here, once, with their internal cause.
        tracing::Span::current().record("error_code", self.code.as_str());
        if status.is_server_error() {
            let cause = self.cause.as_deref().unwrap_or(&self.message);
            if self.code.kind() == ErrorKind::Internal {
                tracing::error!(code = self.code.as_str(), error = %cause, "Request failed.");
            } else {
                tracing::warn!(code = self.code.as_str(), error = %cause, "Request failed.");
            }
        }
        let body = ErrorBody {
            error: ErrorObject {
                code: self.code.as_str(),
                message: self.message,
                details: self
                    .details
                    .into_iter()
                    .map(|d| FieldDetail {
                        field: d.field,
                        reason: d.reason,
                    })
                    .collect(),
                request_id: telemetry::current_op_id().unwrap_or_default(),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        response.extensions_mut().insert(RespondedCode(self.code));
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"factorybrain\""),
            );
        }
        if matches!(
            self.code.kind(),
            ErrorKind::RateLimited | ErrorKind::Unavailable
        ) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// The error reference (`docs/errors.md`): every code, its HTTP status and meaning.
pub fn error_reference_markdown() -> String {
    let mut text = String::from(
        "# Error codes\n\n\
         Generated from the code table in `fb-core` (`crates/fb-core/src/error.rs`); a test fails \
         when this file drifts. Every error body is\n\n\
         ```json\n{\"error\": {\"code\": \"…\", \"message\": \"…\", \"details\": [{\"field\": \"…\", \"reason\": \"…\"}], \"request_id\": \"…\"}}\n```\n\n\
         Codes are stable: they are never renamed or reused.\n\n\
         | code | HTTP | meaning |\n|---|---|---|\n",
    );
    for code in Code::ALL {
        let status = status_for(code.kind());
        text.push_str(&format!(
            "| `{}` | {} | {} |\n",
            code.as_str(),
            status.as_u16(),
            code.description()
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regenerate with `FB_UPDATE_SCHEMA=1 cargo test -p fb-http`.
    #[test]
    fn committed_error_reference_matches_the_code_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/errors.md");
        let generated = error_reference_markdown();
        if std::env::var_os("FB_UPDATE_SCHEMA").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/errors.md is out of date: run FB_UPDATE_SCHEMA=1 cargo test -p fb-http"
        );
    }

    #[test]
    fn every_kind_maps_to_a_4xx_or_5xx() {
        for code in Code::ALL {
            let status = status_for(code.kind());
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{code:?} -> {status}"
            );
        }
        assert_eq!(
            status_for(Code::permission_denied.kind()),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status_for(Code::invalid_token.kind()),
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn internal_errors_do_not_leak() {
        let e = fb_app::auth::Error::Internal(
            "connection to 10.0.0.5 refused: password=hunter2".into(),
        );
        let api = ApiError::from_coded(&e);
        assert_eq!(api.code, Code::internal);
        assert!(!api.message.contains("hunter2"));
        assert!(api.cause.unwrap().contains("refused"));
    }
}
