//! Extractors whose rejections use the API's error format.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;

use fb_core::Code;
use fb_core::identity::Principal;

use crate::error::ApiError;

/// `axum::Json` with our error format. Messages name the offending field, e.g.
/// `role: unknown variant "root", expected one of admin, supervisor, operator, viewer`.
pub(crate) struct AppJson<T>(pub T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(AppJson(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(Code::payload_too_large, "the request body is too large")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            Code::unsupported_media_type,
            "expected a request body with Content-Type: application/json",
        ),
        _ => {
            // axum's text is "Failed to deserialize the JSON body into the target type: <path>: <reason>";
            // keep the part after the first ": " that names the field.
            let text = rejection.body_text();
            let detail = text
                .split_once(": ")
                .map_or(text.as_str(), |(_, rest)| rest);
            ApiError::new(Code::invalid_json, format!("invalid JSON body: {detail}"))
        }
    }
}

/// `axum::extract::Path` with our error format.
pub(crate) struct AppPath<T>(pub T);

impl<S, T> FromRequestParts<S> for AppPath<T>
where
    axum::extract::Path<T>: FromRequestParts<S, Rejection = PathRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(AppPath(value)),
            Err(rejection) => Err(ApiError::new(
                Code::invalid_parameter,
                rejection.body_text(),
            )),
        }
    }
}

/// The authenticated caller, put in the request by the access check of the route.
pub(crate) struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            // Only reachable if a handler that needs a caller is mounted as public: a bug.
            .ok_or_else(|| ApiError::new(Code::internal, Code::internal.description()))
    }
}
