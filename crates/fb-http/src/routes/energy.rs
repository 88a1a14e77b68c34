//! Energy (C3): the report and the recommendations.

use axum::Json;
use axum::extract::State;

use fb_app::energy::ReportQuery;
use fb_core::energy::{RecommendationId, RecommendationStatus};
use fb_core::ports::Resolution;

use crate::api::v1::{
    EnergyParams, EnergyReport, Recommendation, RecommendationList, RecommendationsParams,
};
use crate::audit::AuditFacts;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppPath, AppQuery, Caller, required_time};
use crate::state::AppState;

/// kWh, cost, CO2, baseline and reduction per site and machine over `[from, to)`.
#[utoipa::path(get, operation_id = "energy_report", path = "/api/v1/energy", tag = "energy",
    params(EnergyParams),
    responses(
        (status = 200, description = "The figures", body = EnergyReport),
        (status = 400, description = "Invalid parameter (named)", body = ErrorBody),
    ))]
pub(crate) async fn report(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppQuery(params): AppQuery<EnergyParams>,
) -> Result<Json<EnergyReport>, ApiError> {
    let from = required_time("from", params.from.as_deref())?;
    let to = required_time("to", params.to.as_deref())?;
    let bucket = match params.bucket.as_deref() {
        None | Some("hour") => Resolution::Hour,
        Some("minute") => Resolution::Minute,
        Some(_) => {
            return Err(ApiError::invalid_parameter(
                "bucket",
                "must be minute or hour",
            ));
        }
    };
    let report = state
        .energy
        .report(
            &caller,
            ReportQuery {
                site: params.site,
                from,
                to,
                bucket,
            },
        )
        .await?;
    Ok(Json(report.into()))
}

/// Recommendations, newest first.
#[utoipa::path(get, operation_id = "list_energy_recommendations", path = "/api/v1/energy/recommendations", tag = "energy",
    params(RecommendationsParams),
    responses(
        (status = 200, description = "Recommendations", body = RecommendationList),
        (status = 400, description = "Invalid parameter (named)", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppQuery(params): AppQuery<RecommendationsParams>,
) -> Result<Json<RecommendationList>, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid_parameter(
            "limit",
            "must be between 1 and 1000",
        ));
    }
    let status = params
        .status
        .as_deref()
        .map(|s| {
            RecommendationStatus::parse(s).ok_or_else(|| {
                ApiError::invalid_parameter(
                    "status",
                    "must be proposed, accepted, dismissed or expired",
                )
            })
        })
        .transpose()?;
    let recommendations = state
        .energy
        .list(&caller, status, params.site, limit)
        .await?;
    Ok(Json(RecommendationList {
        recommendations: recommendations.into_iter().map(Into::into).collect(),
    }))
}

fn facts(r: &fb_core::energy::Recommendation) -> AuditFacts {
    let facts = AuditFacts::target(format!("recommendation:{}", r.id.0))
        .detail("machine", r.machine.0.as_str())
        .detail("action", r.action.as_str())
        .detail("status", r.status.as_str());
    match r.command_id {
        Some(c) => facts.detail("command", c.to_string()),
        None => facts,
    }
}

/// Accepts a proposed recommendation: its machine command is recorded (`pending`) and goes to
/// the machine through the confidence gate (`sent` once published).
#[utoipa::path(post, operation_id = "accept_energy_recommendation", path = "/api/v1/energy/recommendations/{id}/accept", tag = "energy",
    params(("id" = uuid::Uuid, Path, description = "Recommendation id")),
    responses(
        (status = 200, description = "The recommendation, accepted", body = Recommendation),
        (status = 404, description = "No such recommendation (`recommendation_not_found`)", body = ErrorBody),
        (status = 409, description = "Decided or expired already (`recommendation_not_open`)", body = ErrorBody),
    ))]
pub(crate) async fn accept(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(id): AppPath<uuid::Uuid>,
) -> Result<(AuditFacts, Json<Recommendation>), ApiError> {
    let r = state.energy.accept(&caller, RecommendationId(id)).await?;
    Ok((facts(&r), Json(r.into())))
}

/// Dismisses a proposed recommendation.
#[utoipa::path(post, operation_id = "dismiss_energy_recommendation", path = "/api/v1/energy/recommendations/{id}/dismiss", tag = "energy",
    params(("id" = uuid::Uuid, Path, description = "Recommendation id")),
    responses(
        (status = 200, description = "The recommendation, dismissed", body = Recommendation),
        (status = 404, description = "No such recommendation (`recommendation_not_found`)", body = ErrorBody),
        (status = 409, description = "Decided or expired already (`recommendation_not_open`)", body = ErrorBody),
    ))]
pub(crate) async fn dismiss(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(id): AppPath<uuid::Uuid>,
) -> Result<(AuditFacts, Json<Recommendation>), ApiError> {
    let r = state.energy.dismiss(&caller, RecommendationId(id)).await?;
    Ok((facts(&r), Json(r.into())))
}
