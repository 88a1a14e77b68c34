//! Per-request telemetry: the op id, the request span, the access log line, request metrics and
//! the request time-out.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;

use fb_core::Code;

use crate::error::ApiError;
use crate::state::AppState;

pub const OP_ID_HEADER: &str = "x-request-id";
const MAX_OP_ID_LEN: usize = 128;

tokio::task_local! {
    static OP_ID: String;
}

/// The op id of the request being handled on this task, if any.
pub(crate) fn current_op_id() -> Option<String> {
    OP_ID.try_with(Clone::clone).ok()
}

/// Accepts a caller's request id only if it is short and plain, so it is safe in logs and headers.
fn accept_op_id(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.:".contains(c);
    (!s.is_empty() && s.len() <= MAX_OP_ID_LEN && s.chars().all(plain)).then(|| s.to_owned())
}

/// Outermost middleware: op id, span, time-out, metrics and one access-log line per request.
pub(crate) async fn observe(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let op_id = request
        .headers()
        .get(OP_ID_HEADER)
        .and_then(accept_op_id)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    // A bounded label: the route template, never the raw path.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let span = tracing::info_span!(
        "request",
        op_id = %op_id,
        method = method,
        route = %route,
        principal = tracing::field::Empty,
        error_code = tracing::field::Empty,
    );

    let timeout = state.options.request_timeout;
    let mut response = OP_ID
        .scope(op_id.clone(), async move {
            match tokio::time::timeout(timeout, next.run(request)).await {
                Ok(response) => response,
                Err(_) => ApiError::new(
                    Code::request_timeout,
                    format!("the request took longer than {}", human(timeout)),
                )
                .into_response(),
            }
        })
        .instrument(span.clone())
        .await;

    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&op_id) {
        headers.insert(OP_ID_HEADER, value);
    }
    // Responses carry tokens, keys and plant data: never cached by browsers or proxies.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let status = response.status().as_u16();
    let elapsed = start.elapsed();
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("fb_http_requests_total", &labels).increment(1);
    metrics::histogram!("fb_http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "Request handled."
        );
    });
    response
}

/// Clients choose the method string; only the standard ones become metric labels, so that
/// invented methods cannot create unbounded label sets.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method as M;
    match *method {
        M::GET => "GET",
        M::POST => "POST",
        M::PUT => "PUT",
        M::PATCH => "PATCH",
        M::DELETE => "DELETE",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

fn human(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// The process-wide Prometheus recorder, installed on first use. Metrics are global in the
/// `metrics` facade, so there is exactly one per process.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Request latencies: 1 ms to 10 s. Store queries: 50 µs to 5 s.
            let request_buckets = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ];
            let query_buckets = [
                0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                0.25, 1.0, 5.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("fb_http_request_duration_seconds".into()),
                    &request_buckets,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("fb_store_query_duration_seconds".into()),
                        &query_buckets,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(fb_outbound::telemetry::CALL_DURATION_SECONDS.into()),
                        fb_outbound::telemetry::CALL_DURATION_BUCKETS,
                    )
                });
            let recorder = match builder {
                Ok(b) => b.build_recorder(),
                Err(_) => PrometheusBuilder::new().build_recorder(),
            };
            let handle = recorder.handle();
            // Fails only if another recorder is installed already; then ours simply stays empty.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("A metrics recorder was already installed; /metrics may be empty.");
            }
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_ids_from_callers_are_filtered() {
        let ok = HeaderValue::from_static("abc-123_X.y:z");
        assert_eq!(accept_op_id(&ok).as_deref(), Some("abc-123_X.y:z"));
        assert_eq!(accept_op_id(&HeaderValue::from_static("has space")), None);
        assert_eq!(accept_op_id(&HeaderValue::from_static("")), None);
        let long = "a".repeat(MAX_OP_ID_LEN + 1);
        assert_eq!(accept_op_id(&HeaderValue::from_str(&long).unwrap()), None);
    }
}
