//! The audit log.

use axum::Json;
use axum::extract::State;

use fb_core::audit::Outcome;
use fb_core::ports::AuditFilter;

use crate::api::v1::{AuditList, AuditParams, AuditRecord};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppQuery, Caller, query_time};
use crate::state::AppState;

/// Audit records with filters and cursor paging: oldest first by default (follow the log with
/// `after`), or newest first with `order=desc` (page with `before`).
#[utoipa::path(get, operation_id = "list_audit", path = "/api/v1/audit", tag = "audit",
    params(AuditParams),
    responses(
        (status = 200, description = "Audit records", body = AuditList),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppQuery(params): AppQuery<AuditParams>,
) -> Result<Json<AuditList>, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid_parameter(
            "limit",
            "must be between 1 and 1000",
        ));
    }
    let newest_first = match params.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(ApiError::invalid_parameter("order", "must be asc or desc")),
    };
    let filter = AuditFilter {
        actor: params.actor,
        action: params.action,
        target: params.target,
        outcome: params
            .outcome
            .as_deref()
            .map(|o| {
                Outcome::parse(o).ok_or_else(|| {
                    ApiError::invalid_parameter("outcome", "must be success, failure or denied")
                })
            })
            .transpose()?,
        from: query_time("from", params.from.as_deref())?,
        to: query_time("to", params.to.as_deref())?,
        after: params.after,
        before: params.before,
        newest_first,
        limit,
    };
    let records = state.audit.list(&caller, &filter).await?;
    let next = (records.len() == limit)
        .then(|| records.last().map(|r| r.seq))
        .flatten();
    Ok(Json(AuditList {
        records: records.into_iter().map(AuditRecord::from).collect(),
        next_after: next.filter(|_| !newest_first),
        next_before: next.filter(|_| newest_first),
    }))
}
