//! A stored recommendation and its lifecycle: proposed → accepted / dismissed / expired.
//!
//! At most one open (proposed) recommendation per machine and kind, in every store. An accepted
//! recommendation carries the machine command it becomes; the command is `pending` until the
//! confidence gate (issue #7, E5) lets it through and the command sink publishes it.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{EnergyAction, Proposal};
use crate::plant::MachineId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecommendationId(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecommendationStatus {
    Proposed,
    Accepted,
    Dismissed,
    Expired,
}

impl RecommendationStatus {
    pub const ALL: [Self; 4] = [
        Self::Proposed,
        Self::Accepted,
        Self::Dismissed,
        Self::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::Accepted => "accepted",
            Self::Dismissed => "dismissed",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Only a proposed recommendation can still be decided.
    pub fn is_open(self) -> bool {
        self == Self::Proposed
    }
}

/// Where the machine command of an accepted recommendation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandState {
    /// Recorded, waiting for the gate.
    Pending,
    /// Handed to the command sink (published on MQTT).
    Sent,
}

impl CommandState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Sent]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// The command a recommendation becomes, as the machine receives it.
pub fn command_of(action: EnergyAction) -> &'static str {
    match action {
        EnergyAction::Standby => "standby",
        EnergyAction::LoadReduction => "reduce_load",
        EnergyAction::ShiftOffPeak => "defer_run",
    }
}

/// How sure the energy agent is that acting on a recommendation of this kind is right, as its
/// gate reads it (issue #7, E5; the gate's default threshold for machine commands is 0.9).
///
/// - `standby`: 0.95. The machine ran at idle power through the whole look-back with no
///   output; standby is reversed by `resume` at no cost but the warm-up.
/// - `reduce_load`: 0.75. The efficiency figure rests on a flow sensor and a rated value, and
///   lowering the load slows production: a person should confirm it.
/// - `defer_run`: 0.7. Whether a run is non-critical is a planning question the readings
///   cannot answer.
///
/// Below the threshold the command waits in the approval queue, so only standby runs alone by
/// default, and only because `standby` is also in the gate's allowed commands.
pub fn confidence_of(action: EnergyAction) -> f64 {
    match action {
        EnergyAction::Standby => 0.95,
        EnergyAction::LoadReduction => 0.75,
        EnergyAction::ShiftOffPeak => 0.7,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub id: RecommendationId,
    pub machine: MachineId,
    pub site: String,
    pub action: EnergyAction,
    pub status: RecommendationStatus,
    pub expected_kwh_saved: f64,
    pub expected_cost_saved: f64,
    pub expected_co2_kg_saved: f64,
    pub reason: String,
    pub created_at: OffsetDateTime,
    /// A proposed recommendation not decided by then expires.
    pub expires_at: OffsetDateTime,
    pub decided_at: Option<OffsetDateTime>,
    pub decided_by: Option<String>,
    /// The id of the machine command, once accepted.
    pub command_id: Option<Uuid>,
    pub command_state: Option<CommandState>,
}

impl Recommendation {
    /// A new proposed recommendation from a rule's proposal.
    pub fn proposed(
        id: RecommendationId,
        p: Proposal,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            machine: p.machine,
            site: p.site,
            action: p.action,
            status: RecommendationStatus::Proposed,
            expected_kwh_saved: p.expected_kwh_saved,
            expected_cost_saved: p.expected_cost_saved,
            expected_co2_kg_saved: p.expected_co2_kg_saved,
            reason: p.reason,
            created_at: now,
            expires_at,
            decided_at: None,
            decided_by: None,
            command_id: None,
            command_state: None,
        }
    }
}

/// A command to a machine, as an accepted recommendation issues it (the MQTT adapter writes it
/// as JSON on `factorybrain/{site}/{machine}/cmd`).
#[derive(Debug, Clone, PartialEq)]
pub struct MachineCommand {
    pub id: Uuid,
    pub recommendation: RecommendationId,
    pub site: String,
    pub machine: MachineId,
    /// `standby`, `reduce_load` or `defer_run` ([`command_of`]).
    pub command: String,
    pub reason: String,
    pub issued_at: OffsetDateTime,
}

impl MachineCommand {
    /// The command of an accepted recommendation, with the command id its acceptance recorded.
    pub fn of(r: &Recommendation, id: Uuid, issued_at: OffsetDateTime) -> Self {
        Self {
            id,
            recommendation: r.id,
            site: r.site.clone(),
            machine: r.machine.clone(),
            command: command_of(r.action).to_owned(),
            reason: r.reason.clone(),
            issued_at,
        }
    }
}
