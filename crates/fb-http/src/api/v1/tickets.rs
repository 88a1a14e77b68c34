//! `/api/v1/tickets` bodies: maintenance tickets, their repair templates, and machines'
//! reliability.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use fb_core::maintenance;

use super::machines::present;

wire_enum!(
    /// What failed: `bearing` (and what vibration shows), `overheating`, `pressure_leak`,
    /// `electrical` (power, current), `flow`, `sensor_fault` (the measurement itself) or `other`.
    FailureType <=> maintenance::FailureType {
        Bearing,
        Overheating,
        PressureLeak,
        Electrical,
        Flow,
        SensorFault,
        Other
    }
);
wire_enum!(
    /// `low`, `medium`, `high` or `critical`.
    TicketPriority <=> maintenance::TicketPriority { Low, Medium, High, Critical }
);
wire_enum!(
    /// `open` → `in_progress` → `resolved` → `closed`; a resolved ticket may be reopened
    /// (back to `in_progress`).
    TicketStatus <=> maintenance::TicketStatus { Open, InProgress, Resolved, Closed }
);
wire_enum!(
    /// A status change: `start`, `resolve`, `close` or `reopen`.
    TicketAction <=> maintenance::Transition { Start, Resolve, Close, Reopen }
);

/// One step of a repair.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RepairStep {
    pub text: String,
    pub done: bool,
    /// Who ticked it off (or back) last, and when.
    pub done_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub done_at: Option<OffsetDateTime>,
}

/// A status change as it happened.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TicketHistoryEntry {
    pub action: TicketAction,
    /// `user:<name>`, `api_key:<id>` or `system`.
    pub by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub comment: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Ticket {
    pub id: Uuid,
    pub machine: String,
    /// The machine's site when the ticket was opened.
    pub site: String,
    pub title: String,
    pub description: String,
    pub failure_type: FailureType,
    pub priority: TicketPriority,
    pub status: TicketStatus,
    /// The username of who works on it.
    pub assignee: Option<String>,
    /// Who opened it: `user:<name>`, `api_key:<id>`, or `system` for a ticket opened by a
    /// critical alert.
    pub reporter: String,
    pub steps: Vec<RepairStep>,
    /// In the minor unit (e.g. cents) of the plant's currency.
    pub cost_estimate_minor: Option<i64>,
    pub actual_cost_minor: Option<i64>,
    /// The alerts that showed this failure, oldest first.
    pub alerts: Vec<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The first start.
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    /// The latest resolution (cleared by a reopen).
    #[serde(with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub closed_at: Option<OffsetDateTime>,
    /// Every status change, oldest first.
    pub history: Vec<TicketHistoryEntry>,
    /// Increases with every change; send it back as `version` to refuse a change to a ticket
    /// that moved on since it was read.
    pub version: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<maintenance::Ticket> for Ticket {
    fn from(t: maintenance::Ticket) -> Self {
        Self {
            id: t.id.0,
            machine: t.machine.0,
            site: t.site,
            title: t.title,
            description: t.description,
            failure_type: t.failure_type.into(),
            priority: t.priority.into(),
            status: t.status.into(),
            assignee: t.assignee,
            reporter: t.reporter,
            steps: t
                .steps
                .into_iter()
                .map(|s| RepairStep {
                    text: s.text,
                    done: s.done,
                    done_by: s.done_by,
                    done_at: s.done_at,
                })
                .collect(),
            cost_estimate_minor: t.cost_estimate_minor,
            actual_cost_minor: t.actual_cost_minor,
            alerts: t.alerts.into_iter().map(|a| a.0).collect(),
            created_at: t.created_at,
            started_at: t.started_at,
            resolved_at: t.resolved_at,
            closed_at: t.closed_at,
            history: t
                .history
                .into_iter()
                .map(|a| TicketHistoryEntry {
                    action: a.action.into(),
                    by: a.by,
                    at: a.at,
                    comment: a.comment,
                })
                .collect(),
            version: t.version,
            updated_at: t.updated_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TicketList {
    /// Newest first.
    pub tickets: Vec<Ticket>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<Uuid>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TicketsParams {
    pub machine: Option<String>,
    /// Only tickets of this site (within the caller's sites).
    pub site: Option<String>,
    /// `open`, `in_progress`, `resolved`, `closed`, or `active` (open or in progress).
    pub status: Option<String>,
    /// `low`, `medium`, `high` or `critical`.
    pub priority: Option<String>,
    pub failure_type: Option<String>,
    /// Page: tickets opened before this id.
    pub before: Option<Uuid>,
    /// 1 to 1000; default 100.
    pub limit: Option<usize>,
}

/// A ticket opened by hand.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTicketRequest {
    /// A machine in one of the caller's sites; the ticket takes its site.
    #[schema(example = "press-01")]
    pub machine: String,
    /// 1 to 200 characters.
    #[schema(example = "Grinding noise from the main drive")]
    pub title: String,
    /// Up to 10,000 characters.
    #[serde(default)]
    pub description: String,
    pub failure_type: FailureType,
    /// Default `medium`.
    #[serde(default)]
    pub priority: Option<TicketPriority>,
    /// The username of an active user who may work on tickets of the machine's site.
    #[serde(default)]
    pub assignee: Option<String>,
    /// The repair steps, 1 to 50 of up to 500 characters each. Omitted: the failure type's
    /// template (GET /api/v1/tickets/templates).
    #[serde(default)]
    pub steps: Option<Vec<String>>,
    /// In minor units (e.g. cents), 0 to 10^12.
    #[serde(default)]
    pub cost_estimate_minor: Option<i64>,
}

/// A step ticked off, or back.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepDone {
    /// The step's index in `steps`, from 0.
    pub step: usize,
    pub done: bool,
}

/// A change of a ticket's fields: absent fields stay as they are; `null` clears an optional
/// one. Status changes have routes of their own.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTicketRequest {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub priority: Option<TicketPriority>,
    /// A username, or `null` to unassign.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub assignee: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub cost_estimate_minor: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub actual_cost_minor: Option<Option<i64>>,
    /// Steps ticked off or back.
    #[serde(default)]
    pub steps: Vec<StepDone>,
    /// The version last read: the change is refused (`ticket_version_conflict`) if the ticket
    /// moved on since. Omitted: applied to the ticket as it is.
    #[serde(default)]
    pub version: Option<u64>,
}

impl From<&UpdateTicketRequest> for maintenance::TicketPatch {
    fn from(r: &UpdateTicketRequest) -> Self {
        Self {
            title: r.title.clone(),
            description: r.description.clone(),
            priority: r.priority.map(Into::into),
            assignee: r.assignee.clone(),
            cost_estimate_minor: r.cost_estimate_minor,
            actual_cost_minor: r.actual_cost_minor,
            steps_done: r.steps.iter().map(|s| (s.step, s.done)).collect(),
        }
    }
}

/// A status change: start, close or reopen.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketMoveRequest {
    /// Up to 2000 characters, kept in the ticket's history.
    #[serde(default)]
    pub comment: Option<String>,
    /// The version last read (see `UpdateTicketRequest.version`).
    #[serde(default)]
    pub version: Option<u64>,
}

impl From<TicketMoveRequest> for fb_app::maintenance::Move {
    fn from(body: TicketMoveRequest) -> Self {
        Self {
            comment: body.comment,
            actual_cost_minor: None,
            expected_version: body.version,
        }
    }
}

/// Resolving: the repair is done.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveTicketRequest {
    /// What was done, up to 2000 characters, kept in the ticket's history.
    #[serde(default)]
    pub comment: Option<String>,
    /// What the repair cost, in minor units (e.g. cents), 0 to 10^12.
    #[serde(default)]
    pub actual_cost_minor: Option<i64>,
    /// The version last read (see `UpdateTicketRequest.version`).
    #[serde(default)]
    pub version: Option<u64>,
}

/// A failure type's built-in repair procedure.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RepairTemplate {
    pub failure_type: FailureType,
    #[schema(example = "Bearing / vibration")]
    pub label: String,
    /// The priority of a ticket a critical alert opens.
    pub auto_priority: TicketPriority,
    /// The alert kinds whose critical alerts open tickets of this failure type.
    pub alert_kinds: Vec<String>,
    pub steps: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RepairTemplateList {
    pub templates: Vec<RepairTemplate>,
}

/// A machine's reliability over a window, from its maintenance tickets (see the README's
/// Maintenance section for the definitions).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MachineReliability {
    pub machine: String,
    /// The tickets counted: of this failure type, or all.
    pub failure_type: Option<FailureType>,
    /// The observed window: as asked, starting no earlier than the machine was registered.
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    pub observed_hours: f64,
    /// Time between a failure's report and its repair, overlaps counted once.
    pub downtime_hours: f64,
    /// Observed − downtime.
    pub operating_hours: f64,
    /// Tickets opened in the window.
    pub failures: u64,
    /// Tickets resolved in the window.
    pub repairs: u64,
    /// Tickets not resolved at the window's end.
    pub unresolved: u64,
    /// Mean time between failures: operating hours / failures; absent without a failure.
    pub mtbf_hours: Option<f64>,
    /// Mean time to repair: the mean of (resolved − reported) of tickets resolved in the
    /// window; absent without a repair.
    pub mttr_hours: Option<f64>,
    /// Operating / observed time, 0 to 1; absent for an empty window.
    pub availability: Option<f64>,
}

impl MachineReliability {
    pub fn new(
        machine: String,
        failure_type: Option<maintenance::FailureType>,
        r: &maintenance::Reliability,
    ) -> Self {
        let hours = |d: time::Duration| d.as_seconds_f64() / 3600.0;
        Self {
            machine,
            failure_type: failure_type.map(Into::into),
            from: r.from,
            to: r.to,
            observed_hours: hours(r.observed),
            downtime_hours: hours(r.downtime),
            operating_hours: hours(r.operating),
            failures: r.failures,
            repairs: r.repairs,
            unresolved: r.unresolved,
            mtbf_hours: r.mtbf.map(hours),
            mttr_hours: r.mttr.map(hours),
            availability: r.availability,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReliabilityParams {
    /// Start (inclusive): RFC 3339 or Unix seconds/milliseconds. Default: 90 days before `to`.
    pub from: Option<String>,
    /// End (exclusive). Default: now.
    pub to: Option<String>,
    /// Count only tickets of this failure type.
    pub failure_type: Option<String>,
}
