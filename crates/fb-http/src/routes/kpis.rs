//! The plant optimizer's KPIs (C4).

use axum::Json;
use axum::extract::State;

use fb_app::optimizer::KpiQuery;

use crate::api::v1::{KpiParams, KpiReport, LineKpiReport};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppQuery, Caller, required_time};
use crate::state::AppState;

fn query(params: KpiParams) -> Result<KpiQuery, ApiError> {
    Ok(KpiQuery {
        from: required_time("from", params.from.as_deref())?,
        to: required_time("to", params.to.as_deref())?,
        site: params.site,
        line: params.line,
    })
}

/// OEE (availability × performance × quality), downtime, health, energy, CO2, savings, MTBF
/// and MTTR per site, line and machine over `[from, to)`; each figure says why when it is
/// unknown.
#[utoipa::path(get, operation_id = "kpi_report", path = "/api/v1/kpis", tag = "kpis",
    params(KpiParams),
    responses(
        (status = 200, description = "The KPIs", body = KpiReport),
        (status = 400, description = "Invalid parameter (named)", body = ErrorBody),
    ))]
pub(crate) async fn report(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppQuery(params): AppQuery<KpiParams>,
) -> Result<Json<KpiReport>, ApiError> {
    let report = state.optimizer.kpis(&caller, query(params)?).await?;
    Ok(Json(report.into()))
}

/// The lines' KPIs only (the same figures as in `/api/v1/kpis`).
#[utoipa::path(get, operation_id = "kpi_lines", path = "/api/v1/kpis/lines", tag = "kpis",
    params(KpiParams),
    responses(
        (status = 200, description = "The lines' KPIs", body = LineKpiReport),
        (status = 400, description = "Invalid parameter (named)", body = ErrorBody),
    ))]
pub(crate) async fn lines(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppQuery(params): AppQuery<KpiParams>,
) -> Result<Json<LineKpiReport>, ApiError> {
    let report = state.optimizer.kpis(&caller, query(params)?).await?;
    Ok(Json(report.into()))
}
