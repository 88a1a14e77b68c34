//! The confidence gates' approval queue and the agents' decision log (E5).

use axum::Json;
use axum::extract::State;

use fb_app::gates::Execution as AppExecution;
use fb_core::gates::{ActionKind, ApprovalId, ApprovalStatus, DecisionId};
use fb_core::identity::SiteScope;
use fb_core::ports::{ApprovalFilter, DecisionFilter};

use crate::api::v1::{
    AgentDecision, AnswerRequest, ApprovalItem, ApprovalList, ApprovalsParams, ApprovedItem,
    DecisionList, DecisionOutcome, DecisionsParams, Execution,
};
use crate::audit::AuditFacts;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppPath, AppQuery, Caller, OptionalJson, query_time};
use crate::state::AppState;

/// A list's `limit`: 1 to 1000, default 100.
pub(crate) fn limit_param(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(100);
    if (1..=1000).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::invalid_parameter(
            "limit",
            "must be between 1 and 1000",
        ))
    }
}

fn facts(item: &fb_core::gates::ApprovalItem) -> AuditFacts {
    AuditFacts::target(format!("approval:{}", item.id))
        .detail("kind", item.kind.as_str())
        .detail("status", item.status.as_str())
}

/// The approval queue, newest first, with filters and paging.
#[utoipa::path(get, operation_id = "list_approvals", path = "/api/v1/approvals", tag = "gates",
    params(ApprovalsParams),
    responses(
        (status = 200, description = "Approval items", body = ApprovalList),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppQuery(params): AppQuery<ApprovalsParams>,
) -> Result<Json<ApprovalList>, ApiError> {
    let limit = limit_param(params.limit)?;
    let status = params
        .status
        .as_deref()
        .map(|s| {
            ApprovalStatus::parse(s).ok_or_else(|| {
                ApiError::invalid_parameter(
                    "status",
                    "must be pending, approved, rejected or expired",
                )
            })
        })
        .transpose()?;
    let kind = params
        .kind
        .as_deref()
        .map(|k| {
            ActionKind::parse(k).ok_or_else(|| {
                ApiError::invalid_parameter("kind", "must be purchase_order or machine_command")
            })
        })
        .transpose()?;
    let sites = match params.site {
        Some(site) => SiteScope::named("site", &[site])
            .map_err(|e| ApiError::invalid_parameter("site", &e[0].reason))?,
        None => SiteScope::All,
    };
    let filter = ApprovalFilter {
        sites,
        status,
        kind,
        before: params.before.map(ApprovalId),
        limit,
    };
    let items = state.gates.list(&caller, &filter).await?;
    let next_before = (items.len() == limit)
        .then(|| items.last().map(|i| i.id.0))
        .flatten();
    Ok(Json(ApprovalList {
        items: items.into_iter().map(ApprovalItem::from).collect(),
        next_before,
    }))
}

/// One approval item.
#[utoipa::path(get, operation_id = "get_approval", path = "/api/v1/approvals/{id}", tag = "gates",
    params(("id" = uuid::Uuid, Path, description = "Approval item id")),
    responses(
        (status = 200, description = "The item", body = ApprovalItem),
        (status = 404, description = "No such item (`approval_not_found`)", body = ErrorBody),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(id): AppPath<uuid::Uuid>,
) -> Result<Json<ApprovalItem>, ApiError> {
    Ok(Json(state.gates.get(&caller, ApprovalId(id)).await?.into()))
}

/// Approves a pending item: its action runs at once, once. Needs the gate's permission
/// (`orders.approve`) and the item's site.
#[utoipa::path(post, operation_id = "approve_approval", path = "/api/v1/approvals/{id}/approve", tag = "gates",
    params(("id" = uuid::Uuid, Path, description = "Approval item id")),
    request_body = AnswerRequest,
    responses(
        (status = 200, description = "Approved, and what running it came to", body = ApprovedItem),
        (status = 400, description = "Invalid `reason`", body = ErrorBody),
        (status = 404, description = "No such item (`approval_not_found`)", body = ErrorBody),
        (status = 409, description = "Answered already (`approval_already_decided`) or expired (`approval_expired`)", body = ErrorBody),
    ))]
pub(crate) async fn approve(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(id): AppPath<uuid::Uuid>,
    OptionalJson(body): OptionalJson<AnswerRequest>,
) -> Result<(AuditFacts, Json<ApprovedItem>), ApiError> {
    let approved = state
        .gates
        .approve(&caller, ApprovalId(id), body.reason)
        .await?;
    let execution = match approved.execution {
        AppExecution::Executed(note) => Execution {
            outcome: DecisionOutcome::Executed,
            note,
        },
        AppExecution::Failed(note) => Execution {
            outcome: DecisionOutcome::Failed,
            note,
        },
    };
    Ok((
        facts(&approved.item),
        Json(ApprovedItem {
            item: approved.item.into(),
            execution,
        }),
    ))
}

/// Rejects a pending item with a reason; its action does not run.
#[utoipa::path(post, operation_id = "reject_approval", path = "/api/v1/approvals/{id}/reject", tag = "gates",
    params(("id" = uuid::Uuid, Path, description = "Approval item id")),
    request_body = AnswerRequest,
    responses(
        (status = 200, description = "Rejected", body = ApprovalItem),
        (status = 400, description = "`reason` missing or invalid (`invalid_field`)", body = ErrorBody),
        (status = 404, description = "No such item (`approval_not_found`)", body = ErrorBody),
        (status = 409, description = "Answered already (`approval_already_decided`) or expired (`approval_expired`)", body = ErrorBody),
    ))]
pub(crate) async fn reject(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(id): AppPath<uuid::Uuid>,
    OptionalJson(body): OptionalJson<AnswerRequest>,
) -> Result<(AuditFacts, Json<ApprovalItem>), ApiError> {
    let item = state
        .gates
        .reject(&caller, ApprovalId(id), body.reason)
        .await?;
    Ok((facts(&item), Json(item.into())))
}

/// The agents' decision log, newest first, with filters and paging.
#[utoipa::path(get, operation_id = "list_decisions", path = "/api/v1/decisions", tag = "gates",
    params(DecisionsParams),
    responses(
        (status = 200, description = "Decisions", body = DecisionList),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
    ))]
pub(crate) async fn decisions(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppQuery(params): AppQuery<DecisionsParams>,
) -> Result<Json<DecisionList>, ApiError> {
    let limit = limit_param(params.limit)?;
    let filter = DecisionFilter {
        sites: SiteScope::All,
        agent: params.agent,
        from: query_time("from", params.from.as_deref())?,
        to: query_time("to", params.to.as_deref())?,
        before: params.before.map(DecisionId),
        limit,
    };
    let decisions = state.gates.decisions(&caller, &filter).await?;
    let next_before = (decisions.len() == limit)
        .then(|| decisions.last().map(|d| d.id.0))
        .flatten();
    Ok(Json(DecisionList {
        decisions: decisions.into_iter().map(AgentDecision::from).collect(),
        next_before,
    }))
}
