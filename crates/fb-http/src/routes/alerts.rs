//! Alerts and what detection found.

use axum::Json;
use axum::extract::State;

use fb_core::alerts::{AlertId, AlertKind, AlertStatus};
use fb_core::detection::Severity;
use fb_core::identity::SiteScope;
use fb_core::plant::MachineId;
use fb_core::ports::AlertFilter;

use crate::api::v1::{
    Alert, AlertActionRequest, AlertList, AlertsParams, AnomaliesParams, Anomaly, AnomalyList,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppPath, AppQuery, Caller, OptionalJson, query_time};
use crate::state::AppState;

/// Alerts, newest first, with filters and paging.
#[utoipa::path(get, operation_id = "list_alerts", path = "/api/v1/alerts", tag = "alerts",
    params(AlertsParams),
    responses(
        (status = 200, description = "Alerts", body = AlertList),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppQuery(params): AppQuery<AlertsParams>,
) -> Result<Json<AlertList>, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid_parameter(
            "limit",
            "must be between 1 and 1000",
        ));
    }
    let (status, active_only) = match params.status.as_deref() {
        None => (None, false),
        Some("active") => (None, true),
        Some(s) => (
            Some(AlertStatus::parse(s).ok_or_else(|| {
                ApiError::invalid_parameter(
                    "status",
                    "must be open, acknowledged, resolved or active",
                )
            })?),
            false,
        ),
    };
    let filter = AlertFilter {
        // The service narrows this to the caller's sites.
        sites: SiteScope::All,
        machine: params.machine.map(MachineId),
        status,
        active_only,
        severity: params
            .severity
            .as_deref()
            .map(|s| {
                Severity::parse(s).ok_or_else(|| {
                    ApiError::invalid_parameter("severity", "must be warning or critical")
                })
            })
            .transpose()?,
        kind: params
            .kind
            .as_deref()
            .map(|k| {
                AlertKind::parse(k)
                    .ok_or_else(|| ApiError::invalid_parameter("kind", "is not an alert kind"))
            })
            .transpose()?,
        before: params.before.map(AlertId),
        limit,
    };
    let alerts = state.alerts.list(&caller, &filter).await?;
    let next_before = (alerts.len() == limit)
        .then(|| alerts.last().map(|a| a.id.0))
        .flatten();
    Ok(Json(AlertList {
        alerts: alerts.into_iter().map(Alert::from).collect(),
        next_before,
    }))
}

/// One alert.
#[utoipa::path(get, operation_id = "get_alert", path = "/api/v1/alerts/{id}", tag = "alerts",
    params(("id" = uuid::Uuid, Path, description = "Alert id")),
    responses(
        (status = 200, description = "The alert", body = Alert),
        (status = 404, description = "No such alert", body = ErrorBody),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(id): AppPath<uuid::Uuid>,
) -> Result<Json<Alert>, ApiError> {
    Ok(Json(state.alerts.get(&caller, AlertId(id)).await?.into()))
}

/// Open → acknowledged: someone is on it; the alert stops escalating.
#[utoipa::path(post, operation_id = "acknowledge_alert", path = "/api/v1/alerts/{id}/acknowledge", tag = "alerts",
    params(("id" = uuid::Uuid, Path, description = "Alert id")),
    request_body = AlertActionRequest,
    responses(
        (status = 200, description = "The acknowledged alert", body = Alert),
        (status = 404, description = "No such alert", body = ErrorBody),
        (status = 409, description = "Not open (alert_transition_invalid)", body = ErrorBody),
    ))]
pub(crate) async fn acknowledge(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(id): AppPath<uuid::Uuid>,
    OptionalJson(body): OptionalJson<AlertActionRequest>,
) -> Result<Json<Alert>, ApiError> {
    let comment = body.comment;
    let alert = state
        .alerts
        .acknowledge(&caller, AlertId(id), comment)
        .await?;
    Ok(Json(alert.into()))
}

/// Open or acknowledged → resolved.
#[utoipa::path(post, operation_id = "resolve_alert", path = "/api/v1/alerts/{id}/resolve", tag = "alerts",
    params(("id" = uuid::Uuid, Path, description = "Alert id")),
    request_body = AlertActionRequest,
    responses(
        (status = 200, description = "The resolved alert", body = Alert),
        (status = 404, description = "No such alert", body = ErrorBody),
        (status = 409, description = "Already resolved (alert_transition_invalid)", body = ErrorBody),
    ))]
pub(crate) async fn resolve(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(id): AppPath<uuid::Uuid>,
    OptionalJson(body): OptionalJson<AlertActionRequest>,
) -> Result<Json<Alert>, ApiError> {
    let comment = body.comment;
    let alert = state.alerts.resolve(&caller, AlertId(id), comment).await?;
    Ok(Json(alert.into()))
}

/// What detection found on a machine: each anomaly with its kind, detector and evidence.
#[utoipa::path(get, operation_id = "list_anomalies", path = "/api/v1/machines/{machine}/anomalies", tag = "alerts",
    params(("machine" = String, Path, description = "Machine id"), AnomaliesParams),
    responses(
        (status = 200, description = "Anomalies, oldest first", body = AnomalyList),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
        (status = 404, description = "No such machine", body = ErrorBody),
    ))]
pub(crate) async fn anomalies(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(machine): AppPath<String>,
    AppQuery(params): AppQuery<AnomaliesParams>,
) -> Result<Json<AnomalyList>, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid_parameter(
            "limit",
            "must be between 1 and 1000",
        ));
    }
    let to = query_time("to", params.to.as_deref())?.unwrap_or_else(|| state.plant.now());
    let from =
        query_time("from", params.from.as_deref())?.unwrap_or(to - time::Duration::hours(24));
    let found = state
        .plant
        .anomalies(&caller, &machine, from, to, params.after, limit)
        .await?;
    let next_after = (found.len() == limit)
        .then(|| found.last().map(|a| a.id))
        .flatten();
    Ok(Json(AnomalyList {
        anomalies: found.into_iter().map(Anomaly::from).collect(),
        next_after,
    }))
}
