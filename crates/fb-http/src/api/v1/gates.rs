//! `/api/v1/approvals` and `/api/v1/decisions` bodies: the confidence gates' approval queue and
//! the agents' decision log (E5).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use fb_core::gates;

wire_enum!(
    /// The kind of gated action: `purchase_order` or `machine_command`.
    ActionKind <=> gates::ActionKind { PurchaseOrder, MachineCommand }
);
wire_enum!(
    /// `pending` → `approved`, `rejected` or `expired` (nobody answered in time).
    ApprovalStatus <=> gates::ApprovalStatus { Pending, Approved, Rejected, Expired }
);
wire_enum!(
    /// What became of a decision: `executed`, `held` (in the approval queue), `rejected` or
    /// `failed`.
    DecisionOutcome <=> gates::DecisionOutcome { Executed, Held, Rejected, Failed }
);

/// An action held at its gate.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApprovalItem {
    pub id: Uuid,
    pub kind: ActionKind,
    pub site: String,
    pub machine: Option<String>,
    /// One line for the approver.
    pub summary: String,
    /// What the executor gets (JSON).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// In [0, 1].
    pub confidence: f64,
    /// The gate's threshold when it held the item.
    pub threshold: f64,
    /// Purchase orders: the amount in minor units.
    pub amount_minor: Option<i64>,
    /// Machine commands: the command.
    pub command: Option<String>,
    /// The agent that asked.
    pub requested_by: String,
    /// Why the gate held it, each naming its figures, e.g. `low_confidence: 0.62 < 0.80`.
    pub reasons: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub status: ApprovalStatus,
    /// Who answered (`user:<name>`, `api_key:<id>`, `system` for an expiry), when and why.
    pub answered_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub answered_at: Option<OffsetDateTime>,
    pub answer_reason: Option<String>,
    /// The decision-log entry that recorded the hold.
    pub decision: Option<Uuid>,
}

impl From<gates::ApprovalItem> for ApprovalItem {
    fn from(a: gates::ApprovalItem) -> Self {
        let payload = serde_json::from_str(&a.payload)
            .unwrap_or(serde_json::Value::String(a.payload.clone()));
        Self {
            id: a.id.0,
            kind: a.kind.into(),
            site: a.site,
            machine: a.machine.map(|m| m.0),
            summary: a.summary,
            payload,
            confidence: a.confidence,
            threshold: a.threshold,
            amount_minor: a.amount_minor,
            command: a.command,
            requested_by: a.requested_by,
            reasons: a.reasons,
            created_at: a.created_at,
            expires_at: a.expires_at,
            status: a.status.into(),
            answered_by: a.answer.as_ref().map(|x| x.by.clone()),
            answered_at: a.answer.as_ref().map(|x| x.at),
            answer_reason: a.answer.and_then(|x| x.reason),
            decision: a.decision.map(|d| d.0),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApprovalList {
    /// Newest first.
    pub items: Vec<ApprovalItem>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<Uuid>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsParams {
    /// `pending`, `approved`, `rejected` or `expired`.
    pub status: Option<String>,
    /// `purchase_order` or `machine_command`.
    pub kind: Option<String>,
    /// Only items of this site (within the caller's sites).
    pub site: Option<String>,
    /// Page: items created before this id.
    pub before: Option<Uuid>,
    /// 1 to 1000; default 100.
    pub limit: Option<usize>,
}

/// An answer to an approval item.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    /// Why; required to reject (1 to 1000 characters), optional to approve.
    #[schema(example = "Supplier confirmed the price by phone")]
    pub reason: Option<String>,
}

/// What running an approved action came to.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Execution {
    /// `executed` or `failed`.
    pub outcome: DecisionOutcome,
    /// What the executor said.
    pub note: String,
}

/// An approved item and what its executor did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApprovedItem {
    pub item: ApprovalItem,
    pub execution: Execution,
}

/// One entry of the decision log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentDecision {
    pub id: Uuid,
    pub agent: String,
    pub site: String,
    pub machine: Option<String>,
    /// The inputs in short (JSON).
    #[schema(value_type = Object)]
    pub inputs: serde_json::Value,
    pub action: String,
    pub reason: String,
    /// In [0, 1].
    pub confidence: f64,
    pub outcome: DecisionOutcome,
    /// The approval item it made or answered.
    pub approval: Option<Uuid>,
    pub ticket: Option<Uuid>,
    pub alert: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl From<gates::AgentDecision> for AgentDecision {
    fn from(d: gates::AgentDecision) -> Self {
        let inputs =
            serde_json::from_str(&d.inputs).unwrap_or(serde_json::Value::String(d.inputs.clone()));
        Self {
            id: d.id.0,
            agent: d.agent,
            site: d.site,
            machine: d.machine.map(|m| m.0),
            inputs,
            action: d.action,
            reason: d.reason,
            confidence: d.confidence,
            outcome: d.outcome.into(),
            approval: d.approval.map(|a| a.0),
            ticket: d.ticket,
            alert: d.alert,
            at: d.at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DecisionList {
    /// Newest first.
    pub decisions: Vec<AgentDecision>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<Uuid>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DecisionsParams {
    /// Only this agent's decisions, e.g. `procurement`.
    pub agent: Option<String>,
    /// Decisions at or after this time (RFC 3339).
    pub from: Option<String>,
    /// Decisions before this time (RFC 3339).
    pub to: Option<String>,
    /// Page: decisions recorded before this id.
    pub before: Option<Uuid>,
    /// 1 to 1000; default 100.
    pub limit: Option<usize>,
}
