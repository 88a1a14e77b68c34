//! Maintenance (C1): tickets for failures of machines, their lifecycle and repair steps, and the
//! reliability figures (MTBF, MTTR) computed from them.
//!
//! A ticket records one failure of one machine: what failed (a [`FailureType`]), how urgent it
//! is, who reported it and who works on it, the repair steps (from the built-in
//! [`templates`]), the cost, and the alerts that showed it. Its lifecycle is the table
//! [`TRANSITIONS`]:
//!
//! | From          | Action    | To            |
//! |---------------|-----------|---------------|
//! | `open`        | `start`   | `in_progress` |
//! | `in_progress` | `resolve` | `resolved`    |
//! | `resolved`    | `close`   | `closed`      |
//! | `resolved`    | `reopen`  | `in_progress` |
//!
//! Anything else is refused ([`TransitionError`], code `ticket_transition_invalid`), and a
//! closed ticket changes no more. A ticket is *active* while `open` or `in_progress`: at most one
//! ticket per machine and failure type is active, which every store enforces.

pub mod reliability;
pub mod templates;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::alerts::{AlertId, AlertKind};
use crate::error::FieldError;
use crate::identity::validate_username;
use crate::plant::MachineId;

pub use reliability::{Reliability, reliability};
pub use templates::{Template, template};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TicketId(pub Uuid);

impl std::fmt::Display for TicketId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What failed: a closed set aligned with the alert kinds, each with a repair template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureType {
    /// Bearings and what vibration shows: wear, misalignment, imbalance.
    Bearing,
    Overheating,
    /// Pressure lost or out of its range: leaks, seals, valves.
    PressureLeak,
    /// Power and current: supply, motor windings, drives.
    Electrical,
    Flow,
    /// The measurement itself: a stuck, silent, out-of-range or spiking sensor.
    SensorFault,
    Other,
}

impl FailureType {
    pub const ALL: [FailureType; 7] = [
        FailureType::Bearing,
        FailureType::Overheating,
        FailureType::PressureLeak,
        FailureType::Electrical,
        FailureType::Flow,
        FailureType::SensorFault,
        FailureType::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureType::Bearing => "bearing",
            FailureType::Overheating => "overheating",
            FailureType::PressureLeak => "pressure_leak",
            FailureType::Electrical => "electrical",
            FailureType::Flow => "flow",
            FailureType::SensorFault => "sensor_fault",
            FailureType::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// What an alert of this kind is a failure of.
    pub fn of_alert(kind: AlertKind) -> Self {
        match kind {
            AlertKind::Vibration => FailureType::Bearing,
            AlertKind::Overheating => FailureType::Overheating,
            AlertKind::Pressure => FailureType::PressureLeak,
            AlertKind::Power => FailureType::Electrical,
            AlertKind::Flow => FailureType::Flow,
            AlertKind::StuckSensor
            | AlertKind::NoData
            | AlertKind::OutOfRange
            | AlertKind::Spike => FailureType::SensorFault,
            AlertKind::Process | AlertKind::LowHealth | AlertKind::FailureRisk => {
                FailureType::Other
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketPriority {
    Low,
    Medium,
    High,
    Critical,
}

impl TicketPriority {
    pub const ALL: [TicketPriority; 4] = [
        TicketPriority::Low,
        TicketPriority::Medium,
        TicketPriority::High,
        TicketPriority::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TicketPriority::Low => "low",
            TicketPriority::Medium => "medium",
            TicketPriority::High => "high",
            TicketPriority::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    Open,
    InProgress,
    Resolved,
    Closed,
}

impl TicketStatus {
    pub const ALL: [TicketStatus; 4] = [
        TicketStatus::Open,
        TicketStatus::InProgress,
        TicketStatus::Resolved,
        TicketStatus::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Open => "open",
            TicketStatus::InProgress => "in_progress",
            TicketStatus::Resolved => "resolved",
            TicketStatus::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Open or in progress: the failure is still being dealt with. At most one active ticket
    /// per machine and failure type.
    pub fn is_active(self) -> bool {
        matches!(self, TicketStatus::Open | TicketStatus::InProgress)
    }
}

/// A change of a ticket's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// Work begins.
    Start,
    /// The repair is done (the machine runs again).
    Resolve,
    /// Signed off: the repair held. Final.
    Close,
    /// The repair did not hold: back to work.
    Reopen,
}

/// The whole lifecycle: (from, action, to). Nothing else is allowed.
pub const TRANSITIONS: [(TicketStatus, Transition, TicketStatus); 4] = [
    (
        TicketStatus::Open,
        Transition::Start,
        TicketStatus::InProgress,
    ),
    (
        TicketStatus::InProgress,
        Transition::Resolve,
        TicketStatus::Resolved,
    ),
    (
        TicketStatus::Resolved,
        Transition::Close,
        TicketStatus::Closed,
    ),
    (
        TicketStatus::Resolved,
        Transition::Reopen,
        TicketStatus::InProgress,
    ),
];

impl Transition {
    pub const ALL: [Transition; 4] = [
        Transition::Start,
        Transition::Resolve,
        Transition::Close,
        Transition::Reopen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Start => "start",
            Transition::Resolve => "resolve",
            Transition::Close => "close",
            Transition::Reopen => "reopen",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The status this action leads to from `from`, if the table allows it.
    pub fn target(self, from: TicketStatus) -> Result<TicketStatus, TransitionError> {
        TRANSITIONS
            .iter()
            .find(|(f, t, _)| *f == from && *t == self)
            .map(|(_, _, to)| *to)
            .ok_or(TransitionError { from, action: self })
    }
}

/// The lifecycle does not allow `action` from `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the ticket is {}; it cannot {}", .from.as_str(), .action.as_str())]
pub struct TransitionError {
    pub from: TicketStatus,
    pub action: Transition,
}

/// One step of a repair, ticked off by a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairStep {
    pub text: String,
    pub done: bool,
    /// Who ticked it off last, and when (kept when it is unticked again: `done` says).
    pub done_by: Option<String>,
    pub done_at: Option<OffsetDateTime>,
}

impl RepairStep {
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            done: false,
            done_by: None,
            done_at: None,
        }
    }
}

/// A transition as it happened: who, when, what they said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketAction {
    pub action: Transition,
    /// `user:<name>`, `api_key:<id>` or `system`.
    pub by: String,
    pub at: OffsetDateTime,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    /// UUIDv7: tickets sort by creation.
    pub id: TicketId,
    pub machine: MachineId,
    /// The machine's site when the ticket was opened; scopes decide on it.
    pub site: String,
    pub title: String,
    pub description: String,
    pub failure_type: FailureType,
    pub priority: TicketPriority,
    pub status: TicketStatus,
    /// The username of the person working on it.
    pub assignee: Option<String>,
    /// Who opened it: `user:<name>`, `api_key:<id>`, or `system` (the auto-ticket rule).
    pub reporter: String,
    pub steps: Vec<RepairStep>,
    /// In the minor unit (cents) of the plant's currency; never negative.
    pub cost_estimate_minor: Option<i64>,
    pub actual_cost_minor: Option<i64>,
    /// The alerts that showed this failure, oldest first; an alert belongs to one ticket.
    pub alerts: Vec<AlertId>,
    pub created_at: OffsetDateTime,
    /// The first start.
    pub started_at: Option<OffsetDateTime>,
    /// The latest resolution; cleared by a reopen.
    pub resolved_at: Option<OffsetDateTime>,
    pub closed_at: Option<OffsetDateTime>,
    /// Every transition, oldest first (the latest [`HISTORY_MAX`]).
    pub history: Vec<TicketAction>,
    /// 1 when created; increases with every stored change (optimistic concurrency).
    pub version: u64,
    pub updated_at: OffsetDateTime,
}

/// Longest title, in characters.
pub const TITLE_MAX: usize = 200;
/// Longest description, in characters.
pub const DESCRIPTION_MAX: usize = 10_000;
/// Longest comment on a transition, in characters (longer ones are cut).
pub const COMMENT_MAX: usize = 2_000;
/// Most repair steps on a ticket.
pub const STEPS_MAX: usize = 50;
/// Longest repair step, in characters.
pub const STEP_MAX: usize = 500;
/// Largest cost in minor units: ten billion in the major unit.
pub const COST_MAX_MINOR: i64 = 1_000_000_000_000;
/// Transitions kept in a ticket's history (the oldest go first).
pub const HISTORY_MAX: usize = 100;
/// Alerts linked to one ticket at most: the first ones, which showed the failure. A failure
/// that keeps raising alerts past this links no more of them.
pub const ALERTS_MAX: usize = 100;

/// What a person or the auto-ticket rule supplies to open a ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTicket {
    pub machine: MachineId,
    pub title: String,
    pub description: String,
    pub failure_type: FailureType,
    pub priority: TicketPriority,
    pub assignee: Option<String>,
    /// `None`: the failure type's template.
    pub steps: Option<Vec<String>>,
    pub cost_estimate_minor: Option<i64>,
    pub alerts: Vec<AlertId>,
}

impl NewTicket {
    /// Every problem, each named by its field.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        check_text("title", &self.title, 1, TITLE_MAX, &mut errors);
        check_text(
            "description",
            &self.description,
            0,
            DESCRIPTION_MAX,
            &mut errors,
        );
        if let Some(assignee) = &self.assignee {
            errors.extend(validate_username("assignee", assignee).err());
        }
        if let Some(steps) = &self.steps {
            errors.extend(validate_steps(steps));
        }
        errors.extend(validate_cost(
            "cost_estimate_minor",
            self.cost_estimate_minor,
        ));
        errors
    }

    /// The ticket this opens, with the failure type's template when no steps were given.
    /// Text is trimmed; call [`validate`](Self::validate) first.
    pub fn open(self, site: String, reporter: String, at: OffsetDateTime) -> Ticket {
        let steps = match self.steps {
            Some(steps) => steps.iter().map(|s| RepairStep::new(s.trim())).collect(),
            None => template(self.failure_type)
                .steps
                .iter()
                .map(|s| RepairStep::new(*s))
                .collect(),
        };
        let mut alerts = self.alerts;
        alerts.truncate(ALERTS_MAX);
        Ticket {
            id: TicketId(Uuid::now_v7()),
            machine: self.machine,
            site,
            title: self.title.trim().to_owned(),
            description: self.description.trim().to_owned(),
            failure_type: self.failure_type,
            priority: self.priority,
            status: TicketStatus::Open,
            assignee: self.assignee,
            reporter,
            steps,
            cost_estimate_minor: self.cost_estimate_minor,
            actual_cost_minor: None,
            alerts,
            created_at: at,
            started_at: None,
            resolved_at: None,
            closed_at: None,
            history: Vec::new(),
            version: 1,
            updated_at: at,
        }
    }
}

/// Steps given by hand: 1 to [`STEPS_MAX`], each 1 to [`STEP_MAX`] characters.
pub fn validate_steps(steps: &[String]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if steps.is_empty() || steps.len() > STEPS_MAX {
        errors.push(FieldError::new(
            "steps",
            format!("must list 1 to {STEPS_MAX} steps"),
        ));
    }
    for (i, step) in steps.iter().enumerate().take(STEPS_MAX) {
        check_text(&format!("steps[{i}]"), step, 1, STEP_MAX, &mut errors);
    }
    errors
}

/// A cost: 0 to [`COST_MAX_MINOR`] minor units.
pub fn validate_cost(field: &str, cost: Option<i64>) -> Option<FieldError> {
    cost.filter(|c| !(0..=COST_MAX_MINOR).contains(c)).map(|_| {
        FieldError::new(
            field,
            format!("must be 0 to {COST_MAX_MINOR} (minor units, e.g. cents)"),
        )
    })
}

fn check_text(field: &str, value: &str, min: usize, max: usize, errors: &mut Vec<FieldError>) {
    let len = value.trim().chars().count();
    if len < min || len > max {
        errors.push(FieldError::new(
            field,
            format!("must be {min} to {max} characters"),
        ));
    } else if value
        .chars()
        .any(|c| c.is_control() && !(field == "description" && (c == '\n' || c == '\t')))
    {
        errors.push(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
}

/// A change of a ticket's fields by a person; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TicketPatch {
    pub title: Option<String>,
    pub description: Option<String>,
    pub priority: Option<TicketPriority>,
    /// `Some(None)` clears the assignee.
    pub assignee: Option<Option<String>>,
    pub cost_estimate_minor: Option<Option<i64>>,
    pub actual_cost_minor: Option<Option<i64>>,
    /// (step index, done).
    pub steps_done: Vec<(usize, bool)>,
}

impl TicketPatch {
    pub fn is_empty(&self) -> bool {
        *self == TicketPatch::default()
    }

    /// Every problem with the patch on `ticket`, each named by its field.
    pub fn validate(&self, ticket: &Ticket) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Some(title) = &self.title {
            check_text("title", title, 1, TITLE_MAX, &mut errors);
        }
        if let Some(description) = &self.description {
            check_text("description", description, 0, DESCRIPTION_MAX, &mut errors);
        }
        if let Some(Some(assignee)) = &self.assignee {
            errors.extend(validate_username("assignee", assignee).err());
        }
        if let Some(cost) = self.cost_estimate_minor {
            errors.extend(validate_cost("cost_estimate_minor", cost));
        }
        if let Some(cost) = self.actual_cost_minor {
            errors.extend(validate_cost("actual_cost_minor", cost));
        }
        for (i, (step, _)) in self.steps_done.iter().enumerate() {
            if *step >= ticket.steps.len() {
                errors.push(FieldError::new(
                    format!("steps[{i}].step"),
                    format!(
                        "the ticket has {} steps (0 to {})",
                        ticket.steps.len(),
                        ticket.steps.len().saturating_sub(1)
                    ),
                ));
            }
        }
        errors
    }
}

/// A ticket that is closed changes no more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the ticket is closed; it changes no more")]
pub struct ClosedError;

impl Ticket {
    /// Applies a validated patch by `by` at `at`. Returns whether anything changed.
    pub fn apply(
        &mut self,
        patch: &TicketPatch,
        by: &str,
        at: OffsetDateTime,
    ) -> Result<bool, ClosedError> {
        if self.status == TicketStatus::Closed {
            return Err(ClosedError);
        }
        let before = self.clone();
        if let Some(title) = &patch.title {
            self.title = title.trim().to_owned();
        }
        if let Some(description) = &patch.description {
            self.description = description.trim().to_owned();
        }
        if let Some(priority) = patch.priority {
            self.priority = priority;
        }
        if let Some(assignee) = &patch.assignee {
            self.assignee.clone_from(assignee);
        }
        if let Some(cost) = patch.cost_estimate_minor {
            self.cost_estimate_minor = cost;
        }
        if let Some(cost) = patch.actual_cost_minor {
            self.actual_cost_minor = cost;
        }
        for &(index, done) in &patch.steps_done {
            if let Some(step) = self.steps.get_mut(index)
                && step.done != done
            {
                step.done = done;
                step.done_by = Some(by.to_owned());
                step.done_at = Some(at);
            }
        }
        let changed = *self != before;
        if changed {
            self.updated_at = at;
        }
        Ok(changed)
    }

    /// Moves the ticket along its lifecycle ([`TRANSITIONS`]) and records who did it.
    /// Resolving sets `resolved_at` (and the actual cost when given); reopening clears it.
    pub fn transition(
        &mut self,
        action: Transition,
        by: &str,
        at: OffsetDateTime,
        comment: Option<String>,
    ) -> Result<(), TransitionError> {
        let to = action.target(self.status)?;
        match action {
            Transition::Start => {
                self.started_at.get_or_insert(at);
            }
            Transition::Resolve => self.resolved_at = Some(at),
            Transition::Close => self.closed_at = Some(at),
            Transition::Reopen => self.resolved_at = None,
        }
        self.status = to;
        self.history.push(TicketAction {
            action,
            by: by.to_owned(),
            at,
            comment: comment
                .map(|c| c.trim().chars().take(COMMENT_MAX).collect::<String>())
                .filter(|c| !c.is_empty()),
        });
        if self.history.len() > HISTORY_MAX {
            let extra = self.history.len() - HISTORY_MAX;
            self.history.drain(..extra);
        }
        self.updated_at = at;
        Ok(())
    }

    /// Adds an alert that shows the same failure; `false` if it is linked already (or the
    /// ticket holds [`ALERTS_MAX`]).
    pub fn link_alert(&mut self, alert: AlertId, at: OffsetDateTime) -> bool {
        if self.alerts.contains(&alert) || self.alerts.len() >= ALERTS_MAX {
            return false;
        }
        self.alerts.push(alert);
        self.updated_at = at;
        true
    }

    /// The comment of the latest resolution, if it said one.
    pub fn resolution(&self) -> Option<&TicketAction> {
        self.resolved_at?;
        self.history
            .iter()
            .rev()
            .find(|a| a.action == Transition::Resolve)
    }

    /// Time from report to repair, for a resolved (or closed) ticket.
    pub fn time_to_repair(&self) -> Option<time::Duration> {
        self.resolved_at.map(|r| r - self.created_at)
    }
}

#[cfg(test)]
mod tests;
