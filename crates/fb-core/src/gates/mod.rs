//! Confidence gates (E5): every kind of autonomous action passes a gate — a confidence
//! threshold and limits — before it runs. Below the threshold or above a limit the action halts
//! in the approval queue as an [`ApprovalItem`] until a person allowed for the gate approves or
//! rejects it, or it expires. Agents record what they decided in the decision log
//! ([`AgentDecision`]).
//!
//! Pure: [`Gate::judge`] decides, the stores keep, `fb_app::gates` orchestrates.

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::error::FieldError;
use crate::identity::Permission;
use crate::plant::MachineId;

#[cfg(test)]
mod tests;

/// Longest a summary, a reason or a short text field may be, in characters.
pub const TEXT_MAX_CHARS: usize = 1_000;
/// Longest an action's payload (JSON text) may be, in bytes.
pub const PAYLOAD_MAX_BYTES: usize = 64 * 1024;
/// Longest an approval may wait before it expires.
pub const TIMEOUT_MAX: Duration = Duration::days(30);

macro_rules! names {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names! {
    /// The closed set of gated actions. A new kind of autonomous action adds a variant here, a
    /// gate in the settings and an executor in the composition root.
    ActionKind {
        /// A purchase order for parts (procurement, C2).
        PurchaseOrder => "purchase_order",
        /// A command sent to a machine (energy, C3: standby, load reduction, …).
        MachineCommand => "machine_command",
    }
}

impl ActionKind {
    /// The permission a person needs to approve or reject an action of this kind.
    /// `orders.approve` ("approve purchase orders and gated actions") belongs to supervisors
    /// and admins; operators and viewers cannot approve.
    pub fn approver(self) -> Permission {
        match self {
            ActionKind::PurchaseOrder | ActionKind::MachineCommand => Permission::OrdersApprove,
        }
    }
}

names! {
    /// An approval item's lifecycle: pending → approved, rejected or expired; final after that.
    ApprovalStatus {
        Pending => "pending",
        Approved => "approved",
        Rejected => "rejected",
        /// Nobody answered before `expires_at`.
        Expired => "expired",
    }
}

names! {
    /// What became of an agent's decision, as the decision log records it.
    DecisionOutcome {
        /// Done (passed its gate, or approved, and carried out).
        Executed => "executed",
        /// Halted at its gate, waiting in the approval queue.
        Held => "held",
        /// A person rejected it.
        Rejected => "rejected",
        /// It was to run and failed.
        Failed => "failed",
    }
}

/// One gate: what an action of its kind must meet to run without a person.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub kind: ActionKind,
    /// In [0, 1]: an action less confident than this is held.
    pub min_confidence: f64,
    /// Purchase orders: the largest amount, in minor units, that runs without a person.
    pub max_amount_minor: Option<i64>,
    /// Machine commands: the commands that may run without a person (`None`: any).
    pub allowed_commands: Option<Vec<String>>,
    /// How long an approval item waits for a person before it expires.
    pub timeout: Duration,
}

/// Why a gate held an action; each names what it measured.
#[derive(Debug, Clone, PartialEq)]
pub enum HoldReason {
    /// Confidence below the gate's threshold.
    LowConfidence { confidence: f64, threshold: f64 },
    /// The amount is above the gate's limit.
    AmountOverLimit { amount_minor: i64, limit_minor: i64 },
    /// The gate limits amounts and the action states none.
    AmountMissing,
    /// The command is not one the gate lets run without a person.
    CommandNotAllowed { command: String },
}

impl HoldReason {
    /// A stable name of the reason.
    pub fn code(&self) -> &'static str {
        match self {
            HoldReason::LowConfidence { .. } => "low_confidence",
            HoldReason::AmountOverLimit { .. } => "amount_over_limit",
            HoldReason::AmountMissing => "amount_missing",
            HoldReason::CommandNotAllowed { .. } => "command_not_allowed",
        }
    }

    /// The reason for people, e.g. `low_confidence: 0.62 < 0.80`.
    pub fn describe(&self) -> String {
        match self {
            HoldReason::LowConfidence {
                confidence,
                threshold,
            } => format!("low_confidence: {confidence:.2} < {threshold:.2}"),
            HoldReason::AmountOverLimit {
                amount_minor,
                limit_minor,
            } => format!("amount_over_limit: {amount_minor} > {limit_minor} (minor units)"),
            HoldReason::AmountMissing => "amount_missing: the gate limits amounts".to_owned(),
            HoldReason::CommandNotAllowed { command } => {
                format!("command_not_allowed: '{command}'")
            }
        }
    }
}

/// A gate's verdict on an action.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Confident enough and within every limit: the caller carries it out.
    Proceed,
    /// Halted for a person, for every reason listed (never empty).
    Hold { reasons: Vec<HoldReason> },
}

/// An action an agent wants to take, as it reaches its gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub kind: ActionKind,
    /// The site it acts in (approvers must have it in their sites).
    pub site: String,
    pub machine: Option<MachineId>,
    /// One line for the approver, e.g. "Order 4 bearings SKF-6205 from Acme for 412.00 EUR".
    pub summary: String,
    /// What the executor needs, as JSON text (opaque here).
    pub payload: String,
    /// In [0, 1].
    pub confidence: f64,
    /// Purchase orders: the amount in minor units.
    pub amount_minor: Option<i64>,
    /// Machine commands: the command's name.
    pub command: Option<String>,
    /// The agent's name, e.g. `procurement`.
    pub requested_by: String,
}

fn text(errors: &mut Vec<FieldError>, field: &str, value: &str, required: bool) {
    if required && value.trim().is_empty() {
        errors.push(FieldError::new(field, "must not be empty"));
    } else if value.chars().count() > TEXT_MAX_CHARS {
        errors.push(FieldError::new(
            field,
            format!("must be at most {TEXT_MAX_CHARS} characters"),
        ));
    } else if value.chars().any(char::is_control) && field != "payload" {
        errors.push(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
}

fn confidence_ok(value: f64) -> bool {
    value.is_finite() && (0.0..=1.0).contains(&value)
}

impl Action {
    /// Every field that is wrong, named.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        text(&mut errors, "site", &self.site, true);
        text(&mut errors, "summary", &self.summary, true);
        text(&mut errors, "requested_by", &self.requested_by, true);
        if self.payload.len() > PAYLOAD_MAX_BYTES {
            errors.push(FieldError::new(
                "payload",
                format!("must be at most {PAYLOAD_MAX_BYTES} bytes"),
            ));
        }
        if !confidence_ok(self.confidence) {
            errors.push(FieldError::new("confidence", "must be a number in [0, 1]"));
        }
        if self.amount_minor.is_some_and(|a| a < 0) {
            errors.push(FieldError::new("amount_minor", "must not be negative"));
        }
        if self.kind == ActionKind::MachineCommand {
            match &self.command {
                None => errors.push(FieldError::new(
                    "command",
                    "is required for a machine command",
                )),
                Some(c) => text(&mut errors, "command", c, true),
            }
        }
        errors
    }
}

impl Gate {
    /// Checks the gate's settings, naming each field under `prefix` (e.g. `gates.purchase_order`).
    pub fn validate(&self, prefix: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if !confidence_ok(self.min_confidence) {
            errors.push(FieldError::new(
                format!("{prefix}.min_confidence"),
                "must be a number in [0, 1]",
            ));
        }
        if self.max_amount_minor.is_some_and(|a| a < 0) {
            errors.push(FieldError::new(
                format!("{prefix}.max_amount_minor"),
                "must not be negative",
            ));
        }
        if let Some(commands) = &self.allowed_commands
            && commands.iter().any(|c| c.trim().is_empty())
        {
            errors.push(FieldError::new(
                format!("{prefix}.allowed_commands"),
                "must not hold an empty command",
            ));
        }
        if self.timeout <= Duration::ZERO || self.timeout > TIMEOUT_MAX {
            errors.push(FieldError::new(
                format!("{prefix}.timeout"),
                "must be more than 0 s and at most 30 days",
            ));
        }
        errors
    }

    /// Proceed, or hold naming every reason: below the threshold, above the amount limit (or no
    /// amount where the gate limits amounts), a command the gate does not allow.
    pub fn judge(&self, action: &Action) -> Verdict {
        let mut reasons = Vec::new();
        // A NaN confidence is never confident enough.
        if action.confidence.is_nan() || action.confidence < self.min_confidence {
            reasons.push(HoldReason::LowConfidence {
                confidence: action.confidence,
                threshold: self.min_confidence,
            });
        }
        if let Some(limit) = self.max_amount_minor {
            match action.amount_minor {
                Some(amount) if amount > limit => reasons.push(HoldReason::AmountOverLimit {
                    amount_minor: amount,
                    limit_minor: limit,
                }),
                Some(_) => {}
                None => reasons.push(HoldReason::AmountMissing),
            }
        }
        if let Some(allowed) = &self.allowed_commands {
            let command = action.command.clone().unwrap_or_default();
            if !allowed.contains(&command) {
                reasons.push(HoldReason::CommandNotAllowed { command });
            }
        }
        if reasons.is_empty() {
            Verdict::Proceed
        } else {
            Verdict::Hold { reasons }
        }
    }
}

/// The gates of every action kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Gates {
    pub purchase_order: Gate,
    pub machine_command: Gate,
}

impl Default for Gates {
    /// The defaults of `defaults.yaml`: orders up to 5,000.00 at confidence 0.8 run alone;
    /// machine commands `standby` and `resume` at confidence 0.9; 24 h to answer.
    fn default() -> Self {
        Self {
            purchase_order: Gate {
                kind: ActionKind::PurchaseOrder,
                min_confidence: 0.8,
                max_amount_minor: Some(500_000),
                allowed_commands: None,
                timeout: Duration::hours(24),
            },
            machine_command: Gate {
                kind: ActionKind::MachineCommand,
                min_confidence: 0.9,
                max_amount_minor: None,
                allowed_commands: Some(vec!["standby".to_owned(), "resume".to_owned()]),
                timeout: Duration::hours(24),
            },
        }
    }
}

impl Gates {
    pub fn gate(&self, kind: ActionKind) -> &Gate {
        match kind {
            ActionKind::PurchaseOrder => &self.purchase_order,
            ActionKind::MachineCommand => &self.machine_command,
        }
    }

    /// Every gate's settings checked, fields named `gates.<kind>.<field>`.
    pub fn validate(&self) -> Vec<FieldError> {
        ActionKind::ALL
            .iter()
            .flat_map(|k| self.gate(*k).validate(&format!("gates.{k}")))
            .collect()
    }
}

/// An approval item's id (UUIDv7: time-ordered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApprovalId(pub Uuid);

impl ApprovalId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for ApprovalId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for ApprovalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An agent decision's id (UUIDv7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DecisionId(pub Uuid);

impl DecisionId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The id of the decision an agent makes about `key` (an event id, a command id): the
    /// same agent and key always give the same id, so a decision made again after a
    /// redelivery or a restart finds the first one instead of acting twice. The first 16
    /// bytes of SHA-256 over the length-prefixed agent and key, marked as a custom (version 8)
    /// UUID so that it never collides with the UUIDv7 of `new`.
    pub fn for_key(agent: &str, key: &str) -> Self {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(b"factorybrain.decision/1");
        for part in [agent, key] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        let digest = hash.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }
}

impl Default for DecisionId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for DecisionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Who answered an item, when and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Approved, rejected or expired.
    pub status: ApprovalStatus,
    /// `user:<name>`, `api_key:<id>`, or `system` for an expiry.
    pub by: String,
    pub at: OffsetDateTime,
    /// Required for a rejection.
    pub reason: Option<String>,
}

impl Answer {
    /// The answer's own fields checked: a final status, a reason for a rejection.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.status == ApprovalStatus::Pending {
            errors.push(FieldError::new("status", "an answer is never pending"));
        }
        match &self.reason {
            Some(r) => text(
                &mut errors,
                "reason",
                r,
                self.status == ApprovalStatus::Rejected,
            ),
            None if self.status == ApprovalStatus::Rejected => {
                errors.push(FieldError::new("reason", "is required to reject"));
            }
            None => {}
        }
        errors
    }
}

/// An action held at its gate, waiting for a person.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalItem {
    pub id: ApprovalId,
    pub kind: ActionKind,
    pub site: String,
    pub machine: Option<MachineId>,
    pub summary: String,
    /// JSON text, for the executor.
    pub payload: String,
    pub confidence: f64,
    pub amount_minor: Option<i64>,
    pub command: Option<String>,
    /// The agent that asked.
    pub requested_by: String,
    /// Why the gate held it ([`HoldReason::describe`]).
    pub reasons: Vec<String>,
    /// The threshold of the gate when it held the item.
    pub threshold: f64,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub status: ApprovalStatus,
    /// Set once, when the item leaves `pending`.
    pub answer: Option<Answer>,
    /// The decision-log entry that recorded the hold.
    pub decision: Option<DecisionId>,
}

impl ApprovalItem {
    /// The item a hold creates: pending until `now + gate.timeout`.
    pub fn held(
        action: &Action,
        gate: &Gate,
        reasons: &[HoldReason],
        decision: Option<DecisionId>,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id: ApprovalId::new(),
            kind: action.kind,
            site: action.site.clone(),
            machine: action.machine.clone(),
            summary: action.summary.clone(),
            payload: action.payload.clone(),
            confidence: action.confidence,
            amount_minor: action.amount_minor,
            command: action.command.clone(),
            requested_by: action.requested_by.clone(),
            reasons: reasons.iter().map(HoldReason::describe).collect(),
            threshold: gate.min_confidence,
            created_at: now,
            expires_at: now + gate.timeout,
            status: ApprovalStatus::Pending,
            answer: None,
            decision,
        }
    }

    /// Whether a person may still answer it at `now`: pending and not yet expired.
    pub fn is_open_at(&self, now: OffsetDateTime) -> bool {
        self.status == ApprovalStatus::Pending && now < self.expires_at
    }

    /// The action it holds, to hand to the executor once approved.
    pub fn action(&self) -> Action {
        Action {
            kind: self.kind,
            site: self.site.clone(),
            machine: self.machine.clone(),
            summary: self.summary.clone(),
            payload: self.payload.clone(),
            confidence: self.confidence,
            amount_minor: self.amount_minor,
            command: self.command.clone(),
            requested_by: self.requested_by.clone(),
        }
    }
}

/// One entry of the decision log: what an agent decided, from what, why, and what became of it.
/// Append-only.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentDecision {
    pub id: DecisionId,
    /// The agent's name, e.g. `procurement`.
    pub agent: String,
    /// The site it is about (the log is read within the reader's sites).
    pub site: String,
    pub machine: Option<MachineId>,
    /// The inputs in short, as JSON text.
    pub inputs: String,
    /// What it decided to do, e.g. `purchase_order`.
    pub action: String,
    pub reason: String,
    /// In [0, 1].
    pub confidence: f64,
    pub outcome: DecisionOutcome,
    /// The approval item it made or answered, if any.
    pub approval: Option<ApprovalId>,
    /// The maintenance ticket and alert it came from, if any.
    pub ticket: Option<Uuid>,
    pub alert: Option<Uuid>,
    pub at: OffsetDateTime,
}

impl AgentDecision {
    /// Every field that is wrong, named.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        text(&mut errors, "agent", &self.agent, true);
        text(&mut errors, "site", &self.site, true);
        text(&mut errors, "action", &self.action, true);
        text(&mut errors, "reason", &self.reason, false);
        if self.inputs.len() > PAYLOAD_MAX_BYTES {
            errors.push(FieldError::new(
                "inputs",
                format!("must be at most {PAYLOAD_MAX_BYTES} bytes"),
            ));
        }
        if !confidence_ok(self.confidence) {
            errors.push(FieldError::new("confidence", "must be a number in [0, 1]"));
        }
        errors
    }
}
