//! Maintenance tickets (C1) and machines' reliability.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use fb_app::maintenance::Move;
use fb_core::alerts::AlertKind;
use fb_core::identity::SiteScope;
use fb_core::maintenance::{
    FailureType, NewTicket, TicketId, TicketPriority, TicketStatus, Transition, templates,
};
use fb_core::plant::MachineId;
use fb_core::ports::TicketFilter;

use crate::api::v1::{
    CreateTicketRequest, MachineReliability, ReliabilityParams, RepairTemplate, RepairTemplateList,
    ResolveTicketRequest, Ticket, TicketList, TicketMoveRequest, TicketsParams,
    UpdateTicketRequest,
};
use crate::audit::AuditFacts;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, AppPath, AppQuery, Caller, OptionalJson, query_time};
use crate::state::AppState;

fn failure_type_param(raw: &str) -> Result<FailureType, ApiError> {
    FailureType::parse(raw).ok_or_else(|| {
        ApiError::invalid_parameter(
            "failure_type",
            "must be bearing, overheating, pressure_leak, electrical, flow, sensor_fault or other",
        )
    })
}

/// What the audit log keeps of a ticket's change.
fn facts(ticket: &fb_core::maintenance::Ticket) -> AuditFacts {
    AuditFacts::target(format!("ticket:{}", ticket.id))
        .detail("machine", ticket.machine.0.as_str())
        .detail("status", ticket.status.as_str())
        .detail("version", ticket.version.to_string())
}

/// Tickets, newest first, with filters and paging.
#[utoipa::path(get, operation_id = "list_tickets", path = "/api/v1/tickets", tag = "maintenance",
    params(TicketsParams),
    responses(
        (status = 200, description = "Tickets", body = TicketList),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppQuery(params): AppQuery<TicketsParams>,
) -> Result<Json<TicketList>, ApiError> {
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
            Some(TicketStatus::parse(s).ok_or_else(|| {
                ApiError::invalid_parameter(
                    "status",
                    "must be open, in_progress, resolved, closed or active",
                )
            })?),
            false,
        ),
    };
    // The service narrows the sites to the caller's.
    let sites = match params.site {
        Some(site) => SiteScope::named("site", &[site])
            .map_err(|e| ApiError::invalid_parameter("site", &e[0].reason))?,
        None => SiteScope::All,
    };
    let filter = TicketFilter {
        sites,
        machine: params.machine.map(MachineId),
        status,
        active_only,
        priority: params
            .priority
            .as_deref()
            .map(|p| {
                TicketPriority::parse(p).ok_or_else(|| {
                    ApiError::invalid_parameter("priority", "must be low, medium, high or critical")
                })
            })
            .transpose()?,
        failure_type: params
            .failure_type
            .as_deref()
            .map(failure_type_param)
            .transpose()?,
        before: params.before.map(TicketId),
        limit,
    };
    let tickets = state.maintenance.list(&caller, &filter).await?;
    let next_before = (tickets.len() == limit)
        .then(|| tickets.last().map(|t| t.id.0))
        .flatten();
    Ok(Json(TicketList {
        tickets: tickets.into_iter().map(Ticket::from).collect(),
        next_before,
    }))
}

/// The built-in repair procedure of each failure type: the steps a new ticket gets when none
/// are given, and the priority of tickets critical alerts open.
#[utoipa::path(get, operation_id = "list_ticket_templates", path = "/api/v1/tickets/templates", tag = "maintenance",
    responses((status = 200, description = "One template per failure type", body = RepairTemplateList)))]
pub(crate) async fn templates() -> Json<RepairTemplateList> {
    Json(RepairTemplateList {
        templates: templates::TEMPLATES
            .iter()
            .map(|t| RepairTemplate {
                failure_type: t.failure_type.into(),
                label: t.label.to_owned(),
                auto_priority: t.auto_priority.into(),
                alert_kinds: AlertKind::ALL
                    .into_iter()
                    .filter(|k| FailureType::of_alert(*k) == t.failure_type)
                    .map(|k| k.as_str().to_owned())
                    .collect(),
                steps: t.steps.iter().map(|s| (*s).to_owned()).collect(),
            })
            .collect(),
    })
}

/// Opens a ticket by hand. At most one ticket per machine and failure type is open or in
/// progress: a second is refused with `ticket_already_open`, which names the first.
#[utoipa::path(post, operation_id = "create_ticket", path = "/api/v1/tickets", tag = "maintenance",
    request_body = CreateTicketRequest,
    responses(
        (status = 201, description = "Opened", body = Ticket),
        (status = 400, description = "Invalid fields (`invalid_field`); details name each, e.g. `machine` for a machine the caller cannot see", body = ErrorBody),
        (status = 409, description = "The machine has an active ticket for this failure type (`ticket_already_open`)", body = ErrorBody),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppJson(body): AppJson<CreateTicketRequest>,
) -> (AuditFacts, Result<(StatusCode, Json<Ticket>), ApiError>) {
    let attempt = AuditFacts::target(format!("machine:{}", body.machine)).detail(
        "failure_type",
        FailureType::from(body.failure_type).as_str(),
    );
    let new = NewTicket {
        machine: MachineId(body.machine),
        title: body.title,
        description: body.description,
        failure_type: body.failure_type.into(),
        priority: body.priority.map_or(TicketPriority::Medium, Into::into),
        assignee: body.assignee,
        steps: body.steps,
        cost_estimate_minor: body.cost_estimate_minor,
        alerts: Vec::new(),
    };
    match state.maintenance.create(&caller, new).await {
        Ok(ticket) => (
            facts(&ticket).detail("failure_type", ticket.failure_type.as_str()),
            Ok((StatusCode::CREATED, Json(ticket.into()))),
        ),
        Err(e) => (attempt, Err(e.into())),
    }
}

/// One ticket.
#[utoipa::path(get, operation_id = "get_ticket", path = "/api/v1/tickets/{id}", tag = "maintenance",
    params(("id" = uuid::Uuid, Path, description = "Ticket id")),
    responses(
        (status = 200, description = "The ticket", body = Ticket),
        (status = 404, description = "No such ticket (`ticket_not_found`)", body = ErrorBody),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(id): AppPath<uuid::Uuid>,
) -> Result<Json<Ticket>, ApiError> {
    Ok(Json(
        state.maintenance.get(&caller, TicketId(id)).await?.into(),
    ))
}

/// Changes a ticket's title, description, priority, assignee or costs, and ticks repair steps
/// off (or back). A closed ticket changes no more.
#[utoipa::path(patch, operation_id = "update_ticket", path = "/api/v1/tickets/{id}", tag = "maintenance",
    params(("id" = uuid::Uuid, Path, description = "Ticket id")),
    request_body = UpdateTicketRequest,
    responses(
        (status = 200, description = "The ticket as changed", body = Ticket),
        (status = 400, description = "Invalid fields (`invalid_field`), e.g. `steps[0].step` beyond the ticket's steps or an `assignee` who may not work on it", body = ErrorBody),
        (status = 404, description = "No such ticket (`ticket_not_found`)", body = ErrorBody),
        (status = 409, description = "The ticket is closed (`ticket_closed`) or moved on since `version` (`ticket_version_conflict`)", body = ErrorBody),
    ))]
pub(crate) async fn update(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(id): AppPath<uuid::Uuid>,
    AppJson(body): AppJson<UpdateTicketRequest>,
) -> Result<(AuditFacts, Json<Ticket>), ApiError> {
    let ticket = state
        .maintenance
        .update(&caller, TicketId(id), (&body).into(), body.version)
        .await?;
    Ok((facts(&ticket), Json(ticket.into())))
}

async fn move_ticket(
    state: &AppState,
    caller: &fb_core::identity::Principal,
    id: uuid::Uuid,
    action: Transition,
    request: Move,
) -> Result<(AuditFacts, Json<Ticket>), ApiError> {
    let ticket = state
        .maintenance
        .transition(caller, TicketId(id), action, request)
        .await?;
    Ok((facts(&ticket), Json(ticket.into())))
}

/// Open → in progress: work begins.
#[utoipa::path(post, operation_id = "start_ticket", path = "/api/v1/tickets/{id}/start", tag = "maintenance",
    params(("id" = uuid::Uuid, Path, description = "Ticket id")),
    request_body = TicketMoveRequest,
    responses(
        (status = 200, description = "The ticket, in progress", body = Ticket),
        (status = 404, description = "No such ticket (`ticket_not_found`)", body = ErrorBody),
        (status = 409, description = "Not open (`ticket_transition_invalid`), or moved on since `version` (`ticket_version_conflict`)", body = ErrorBody),
    ))]
pub(crate) async fn start(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(id): AppPath<uuid::Uuid>,
    OptionalJson(body): OptionalJson<TicketMoveRequest>,
) -> Result<(AuditFacts, Json<Ticket>), ApiError> {
    move_ticket(&state, &caller, id, Transition::Start, body.into()).await
}

/// In progress → resolved: the repair is done. May record what it cost.
#[utoipa::path(post, operation_id = "resolve_ticket", path = "/api/v1/tickets/{id}/resolve", tag = "maintenance",
    params(("id" = uuid::Uuid, Path, description = "Ticket id")),
    request_body = ResolveTicketRequest,
    responses(
        (status = 200, description = "The ticket, resolved", body = Ticket),
        (status = 400, description = "Invalid `actual_cost_minor`", body = ErrorBody),
        (status = 404, description = "No such ticket (`ticket_not_found`)", body = ErrorBody),
        (status = 409, description = "Not in progress (`ticket_transition_invalid`), or moved on since `version` (`ticket_version_conflict`)", body = ErrorBody),
    ))]
pub(crate) async fn resolve(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(id): AppPath<uuid::Uuid>,
    OptionalJson(body): OptionalJson<ResolveTicketRequest>,
) -> Result<(AuditFacts, Json<Ticket>), ApiError> {
    let request = Move {
        comment: body.comment,
        actual_cost_minor: body.actual_cost_minor,
        expected_version: body.version,
    };
    move_ticket(&state, &caller, id, Transition::Resolve, request).await
}

/// Resolved → closed: the repair is signed off. Final. Needs `tickets.close` (supervisors).
#[utoipa::path(post, operation_id = "close_ticket", path = "/api/v1/tickets/{id}/close", tag = "maintenance",
    params(("id" = uuid::Uuid, Path, description = "Ticket id")),
    request_body = TicketMoveRequest,
    responses(
        (status = 200, description = "The ticket, closed", body = Ticket),
        (status = 404, description = "No such ticket (`ticket_not_found`)", body = ErrorBody),
        (status = 409, description = "Not resolved (`ticket_transition_invalid`), or moved on since `version` (`ticket_version_conflict`)", body = ErrorBody),
    ))]
pub(crate) async fn close(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(id): AppPath<uuid::Uuid>,
    OptionalJson(body): OptionalJson<TicketMoveRequest>,
) -> Result<(AuditFacts, Json<Ticket>), ApiError> {
    move_ticket(&state, &caller, id, Transition::Close, body.into()).await
}

/// Resolved → in progress: the repair did not hold. Refused while the machine has another
/// active ticket for the same failure type.
#[utoipa::path(post, operation_id = "reopen_ticket", path = "/api/v1/tickets/{id}/reopen", tag = "maintenance",
    params(("id" = uuid::Uuid, Path, description = "Ticket id")),
    request_body = TicketMoveRequest,
    responses(
        (status = 200, description = "The ticket, in progress again", body = Ticket),
        (status = 404, description = "No such ticket (`ticket_not_found`)", body = ErrorBody),
        (status = 409, description = "Not resolved (`ticket_transition_invalid`), another ticket of the machine and failure type is active (`ticket_already_open`), or moved on since `version` (`ticket_version_conflict`)", body = ErrorBody),
    ))]
pub(crate) async fn reopen(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(id): AppPath<uuid::Uuid>,
    OptionalJson(body): OptionalJson<TicketMoveRequest>,
) -> Result<(AuditFacts, Json<Ticket>), ApiError> {
    move_ticket(&state, &caller, id, Transition::Reopen, body.into()).await
}

/// A machine's MTBF, MTTR and availability over a window, from its tickets.
#[utoipa::path(get, operation_id = "get_machine_reliability", path = "/api/v1/machines/{machine}/reliability", tag = "maintenance",
    params(("machine" = String, Path, description = "Machine id"), ReliabilityParams),
    responses(
        (status = 200, description = "The machine's reliability", body = MachineReliability),
        (status = 400, description = "Invalid parameter or window", body = ErrorBody),
        (status = 404, description = "No such machine (`machine_not_found`)", body = ErrorBody),
    ))]
pub(crate) async fn reliability(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(machine): AppPath<String>,
    AppQuery(params): AppQuery<ReliabilityParams>,
) -> Result<Json<MachineReliability>, ApiError> {
    let to = query_time("to", params.to.as_deref())?.unwrap_or_else(|| state.maintenance.now());
    let from = query_time("from", params.from.as_deref())?.unwrap_or(to - time::Duration::days(90));
    let failure_type = params
        .failure_type
        .as_deref()
        .map(failure_type_param)
        .transpose()?;
    let figures = state
        .maintenance
        .reliability(&caller, &machine, from, to, failure_type)
        .await?;
    Ok(Json(MachineReliability::new(
        machine,
        failure_type,
        &figures,
    )))
}
