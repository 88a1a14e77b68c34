//! The payloads of the domain events: the wire shape of each, written out here rather than
//! derived from the domain types, so that a change to a domain type cannot change the wire
//! format by accident (the round-trip tests pin it).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::alerts::{Alert, AlertAction, AlertId, AlertKind, AlertStatus};
use crate::detection::{Anomaly, AnomalyKind, DetectorKind, Evidence, Severity};
use crate::plant::{MachineId, SensorKey};

use super::EventId;

/// An anomaly's onset, as detection stored it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyEvent {
    /// The stored anomaly's id.
    pub anomaly: Uuid,
    pub machine: MachineId,
    /// `None` when it is about the machine as a whole (multivariate).
    pub sensor: Option<SensorKey>,
    pub kind: AnomalyKind,
    pub detector: DetectorKind,
    pub severity: Severity,
    /// When the reading that showed it was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// In [0, 1].
    pub score: f64,
    pub evidence: Vec<Evidence>,
}

impl From<&Anomaly> for AnomalyEvent {
    fn from(a: &Anomaly) -> Self {
        Self {
            anomaly: a.id,
            machine: a.machine.clone(),
            sensor: a.sensor.clone(),
            kind: a.kind,
            detector: a.detector,
            severity: a.severity,
            at: a.at,
            score: a.score,
            evidence: a.evidence.clone(),
        }
    }
}

/// Who did something, when, and what they said (an alert's acknowledgement or resolution).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionEvent {
    /// `user:<name>`, `key:<prefix>`, or `system`.
    pub by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub comment: Option<String>,
}

impl From<&AlertAction> for ActionEvent {
    fn from(a: &AlertAction) -> Self {
        Self {
            by: a.by.clone(),
            at: a.at,
            comment: a.comment.clone(),
        }
    }
}

/// An alert as it stood after the change the event announces (opened, acknowledged or
/// resolved). `version` is the stored alert's: a consumer that sees an older version than one
/// it handled can tell the message is stale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub alert: AlertId,
    pub machine: MachineId,
    pub kind: AlertKind,
    pub severity: Severity,
    pub status: AlertStatus,
    pub title: String,
    pub evidence: Vec<Evidence>,
    #[serde(with = "time::serde::rfc3339")]
    pub opened_at: OffsetDateTime,
    pub escalation_level: u32,
    pub acknowledged: Option<ActionEvent>,
    pub resolved: Option<ActionEvent>,
    pub version: u64,
}

impl From<&Alert> for AlertEvent {
    fn from(a: &Alert) -> Self {
        Self {
            alert: a.id,
            machine: a.machine.clone(),
            kind: a.kind,
            severity: a.severity,
            status: a.status,
            title: a.title.clone(),
            evidence: a.evidence.clone(),
            opened_at: a.opened_at,
            escalation_level: a.escalation_level,
            acknowledged: a.acknowledged.as_ref().map(ActionEvent::from),
            resolved: a.resolved.as_ref().map(ActionEvent::from),
            version: a.version,
        }
    }
}

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The wire name (also the subject token where the value is one).
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }
    };
}

wire_enum! {
    /// A maintenance ticket's lifecycle (C1): open → in progress → resolved → closed.
    TicketStatus {
        Open => "open",
        InProgress => "in_progress",
        Resolved => "resolved",
        Closed => "closed",
    }
}

wire_enum! {
    /// A ticket's priority, named as the tickets API names it.
    TicketPriority {
        Low => "low",
        Medium => "medium",
        High => "high",
        Critical => "critical",
    }
}

/// A ticket opened or moved to another status (the subject's action token is the new status).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketEvent {
    pub ticket: Uuid,
    pub machine: MachineId,
    pub status: TicketStatus,
    pub priority: TicketPriority,
    pub title: String,
    /// The failure type the ticket is about (a repair-step template's key), if known.
    pub failure_type: Option<String>,
    /// The alert that opened it, for tickets opened from alerts (the first of its alerts).
    pub alert: Option<AlertId>,
    pub assignee: Option<String>,
}

impl From<&crate::maintenance::Ticket> for TicketEvent {
    fn from(t: &crate::maintenance::Ticket) -> Self {
        use crate::maintenance::{TicketPriority as P, TicketStatus as S};
        Self {
            ticket: t.id.0,
            machine: t.machine.clone(),
            status: match t.status {
                S::Open => TicketStatus::Open,
                S::InProgress => TicketStatus::InProgress,
                S::Resolved => TicketStatus::Resolved,
                S::Closed => TicketStatus::Closed,
            },
            priority: match t.priority {
                P::Low => TicketPriority::Low,
                P::Medium => TicketPriority::Medium,
                P::High => TicketPriority::High,
                P::Critical => TicketPriority::Critical,
            },
            title: t.title.clone(),
            failure_type: Some(t.failure_type.as_str().to_owned()),
            alert: t.alerts.first().copied(),
            assignee: t.assignee.clone(),
        }
    }
}

wire_enum! {
    /// A spare-parts order's lifecycle (C2): orders over a gate's limit wait for approval.
    OrderStatus {
        AwaitingApproval => "awaiting_approval",
        Approved => "approved",
        Rejected => "rejected",
        Placed => "placed",
        Received => "received",
        Cancelled => "cancelled",
    }
}

/// An order created or moved to another status (the subject's action token is the new
/// status). Money is in the currency's minor unit (cents), never a float.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderEvent {
    pub order: Uuid,
    /// The machine the parts are for; `None` for stock reordered at its reorder point (the
    /// subject's key token is then `~`).
    pub machine: Option<MachineId>,
    /// The ticket that needs the parts, if any.
    pub ticket: Option<Uuid>,
    pub part: String,
    pub quantity: u32,
    pub supplier: Option<String>,
    pub status: OrderStatus,
    /// ISO 4217 code, e.g. `EUR`.
    pub currency: String,
    /// The negotiated total, in minor units.
    pub amount_minor: i64,
    /// (quoted − negotiated) × quantity, in minor units.
    pub savings_minor: i64,
}

wire_enum! {
    /// What the energy optimizer (C3) recommends.
    EnergyAction {
        /// Put an idle machine on standby.
        Standby => "standby",
        /// Reduce the load of a low-efficiency machine.
        LoadReduction => "load_reduction",
        /// Move a non-critical run out of the peak tariff window.
        ShiftOffPeak => "shift_off_peak",
    }
}

/// A recommendation with its expected savings; accepted ones pass a gate before any command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyRecommendationEvent {
    pub recommendation: Uuid,
    pub machine: MachineId,
    pub action: EnergyAction,
    pub expected_kwh_saved: f64,
    pub expected_co2_kg_saved: f64,
    pub reason: String,
}

wire_enum! {
    /// What became of an agent's decision.
    DecisionOutcome {
        /// Done.
        Executed => "executed",
        /// Halted at a confidence gate, waiting for a person.
        HeldForApproval => "held_for_approval",
        /// The agent decided to do nothing (and said why).
        Skipped => "skipped",
        /// It tried and failed.
        Failed => "failed",
        /// A person rejected it at its confidence gate.
        Rejected => "rejected",
    }
}

/// An agent's decision, as the decision log records it: agent, inputs in short, action,
/// reason, confidence, outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentDecisionEvent {
    pub decision: Uuid,
    /// The agent's name (the subject's key token), e.g. `maintenance`.
    pub agent: String,
    /// The machine the decision is about, if one.
    pub machine: Option<MachineId>,
    /// The inputs in short, for people.
    pub inputs: String,
    /// What it decided to do, e.g. `open_ticket`.
    pub action: String,
    pub reason: String,
    /// In [0, 1].
    pub confidence: f64,
    pub outcome: DecisionOutcome,
    /// The event the agent reacted to, when it reacted to one.
    pub trigger: Option<EventId>,
}

wire_enum! {
    /// What a confidence gate (E5) did with an action (the subject's action token).
    GateVerdict {
        /// Below the threshold or above a limit: waiting in the approval queue.
        Held => "held",
        Approved => "approved",
        Rejected => "rejected",
        /// Nobody answered in time.
        TimedOut => "timed_out",
        /// Confident enough and within limits: passed without a person.
        Passed => "passed",
    }
}

/// A gate's decision on one action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateDecisionEvent {
    /// The approval item's id.
    pub item: Uuid,
    /// The gate's name (the subject's key token), e.g. `orders`.
    pub gate: String,
    pub verdict: GateVerdict,
    /// The action's confidence and the gate's threshold, both in [0, 1].
    pub confidence: f64,
    pub threshold: f64,
    /// Who approved or rejected it (`user:<name>`), for a person's verdict.
    pub by: Option<String>,
    pub reason: Option<String>,
    /// The agent decision the action came from.
    pub decision: Option<Uuid>,
}

wire_enum! {
    /// What the plant optimizer (C4) asks of the other agents (the subject's action token).
    Directive {
        /// The machine's detectors become more sensitive until `until`.
        IncreaseMonitoring => "increase_monitoring",
        /// The energy side runs the machine (or the site) in reduction mode.
        ActivateReductionMode => "activate_reduction_mode",
        /// Procurement and the storeroom get the parts for a failure type ready.
        PrepareSpareParts => "prepare_spare_parts",
    }
}

/// A directive of the plant optimizer, coordinating the other agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoordinationEvent {
    pub directive: Directive,
    /// The machine it is about; `None` for the whole site (the subject's key token is `~`).
    pub machine: Option<MachineId>,
    pub reason: String,
    /// Until when it holds (increase monitoring), if it ends.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
    /// The sensitivity factor (increase monitoring): detection thresholds are multiplied by
    /// it, in (0, 1].
    #[serde(default)]
    pub factor: Option<f64>,
    /// The failure type to prepare parts for (prepare spare parts), a ticket failure type.
    #[serde(default)]
    pub failure_type: Option<String>,
    /// The decision-log entry that records it.
    #[serde(default)]
    pub decision: Option<Uuid>,
}
