//! Liveness, readiness, metrics and the OpenAPI document.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use fb_core::Code;

use crate::api::v1::{Health, Readiness};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Caller;
use crate::state::AppState;

const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness: the process is up and serving. Never touches dependencies.
#[utoipa::path(get, operation_id = "healthz", path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is alive", body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
    })
}

/// Readiness: the node can take traffic (the store answers and it is not shutting down).
#[utoipa::path(get, operation_id = "readyz", path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready (store unreachable or draining)", body = ErrorBody),
    ))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    if state.is_draining() {
        return Err(ApiError::new(Code::not_ready, "the node is shutting down"));
    }
    match tokio::time::timeout(READY_CHECK_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Ok(Json(Readiness {
            status: "ready".to_owned(),
            store: state.store.backend().to_owned(),
        })),
        Ok(Err(e)) => Err(ApiError::new(Code::not_ready, "the store does not answer")
            .with_cause(format!("store ping failed: {e}"))),
        Err(_) => Err(ApiError::new(
            Code::not_ready,
            "the store did not answer in time",
        )),
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, operation_id = "metrics", path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<impl IntoResponse, ApiError> {
    // The metrics name every site's machines (health, anomalies…): a scraper of all sites only.
    fb_app::scope::require_all_sites(&caller, "metrics").map_err(|e| ApiError::from_coded(&e))?;
    state.metrics.run_upkeep();
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    ))
}

/// This document.
#[utoipa::path(get, operation_id = "openapi", path = "/api/v1/openapi.json", tag = "health",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub(crate) async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document_json(),
    )
}
