//! Confidence gates (E5): the use cases of the approval queue and the decision log.
//!
//! An agent hands its action to [`Service::submit`]. The action's gate judges it: `Proceed`
//! hands it back for the agent to carry out; `Hold` stores an approval item. Either way the
//! decision log gets an entry. A person with the gate's permission (`orders.approve` for every
//! kind today: supervisors and admins) and the item's site approves ([`Service::approve`]) or
//! rejects with a reason ([`Service::reject`]); an approval runs the [`GatedExecutor`] registered
//! for the kind, exactly once, because only one answer can take a pending item (the store's
//! atomic answer). Unanswered items expire ([`Service::sweep`], run by [`Service::run_sweeper`]).
//!
//! Everything that changes state is audited here (actor, action `approval.*`, target
//! `approval:<id>`), and published on the event bus when one is attached
//! ([`Service::with_bus`]): `gate.decided` for every verdict and `agent.decided` for every
//! decision-log entry.
//!
//! Reading the queue and the log needs `plant.read` (viewers read the decision log), within the
//! caller's sites.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::watch;
use uuid::Uuid;

use fb_core::Clock;
use fb_core::audit::{AuditEntry, Outcome as AuditOutcome};
use fb_core::clock::truncate_to_micros;
use fb_core::error::{Code, Coded, FieldError};
use fb_core::events::{
    AgentDecisionEvent, DecisionOutcome as BusOutcome, Envelope, Event, EventId, GateDecisionEvent,
    GateVerdict,
};
use fb_core::gates::{
    Action, ActionKind, AgentDecision, Answer, ApprovalId, ApprovalItem, ApprovalStatus,
    DecisionId, DecisionOutcome, Gates, Verdict,
};
use fb_core::identity::{Permission, Principal};
use fb_core::ports::{
    ApprovalFilter, ApprovalStore, DecisionFilter, DecisionStore, EventBus, StoreError,
};

use crate::audit;

/// The source of the events and the actor of the sweep's audit records.
pub const SOURCE: &str = "gates";
const SYSTEM: &str = "system";
/// Items the sweep expires in one pass at most.
pub const SWEEP_BATCH: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("this role lacks the permission {0}")]
    PermissionDenied(Permission),
    #[error("invalid {}", FieldError::names(.0))]
    Validation(Vec<FieldError>),
    #[error("no approval item has this id")]
    NotFound,
    #[error("the approval item was {0} already")]
    AlreadyDecided(ApprovalStatus),
    #[error("the approval item expired at {0}")]
    Expired(OffsetDateTime),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for Error {
    fn code(&self) -> Code {
        match self {
            Error::PermissionDenied(_) => Code::permission_denied,
            Error::Validation(_) => Code::invalid_field,
            Error::NotFound => Code::approval_not_found,
            Error::AlreadyDecided(_) => Code::approval_already_decided,
            Error::Expired(_) => Code::approval_expired,
            Error::Store(StoreError::Unavailable(_)) => Code::storage_unavailable,
            Error::Store(_) => Code::internal,
        }
    }

    fn field_errors(&self) -> &[FieldError] {
        match self {
            Error::Validation(fields) => fields,
            _ => &[],
        }
    }
}

/// Carries out an approved action of one kind. Agents register theirs
/// ([`Service::register_executor`]); the service calls it once per approved item.
#[async_trait]
pub trait GatedExecutor: Send + Sync {
    /// Runs the action; `Ok` with a short note of what was done, `Err` with why it failed.
    async fn execute(&self, item: ApprovalId, action: &Action) -> Result<String, String>;

    /// Told once when a held action of its kind will not run: a person rejected it or nobody
    /// answered in time (`item.status` says which), so that the agent can close what waited on
    /// it. `Ok` with a short note, `Err` with why it could not; either way the item stays
    /// answered. By default there is nothing to close.
    async fn declined(&self, item: &ApprovalItem) -> Result<String, String> {
        let _ = item;
        Ok(String::new())
    }
}

/// What an agent submits: the action, and what the decision log should say about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    pub action: Action,
    /// The inputs in short, as JSON text.
    pub inputs: String,
    pub reason: String,
    pub ticket: Option<Uuid>,
    pub alert: Option<Uuid>,
}

/// The gate's verdict as the agent sees it.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one value per submission, matched at once by the agent"
)]
pub enum Submitted {
    /// Passed the gate: the caller carries the action out now.
    Proceed { decision: AgentDecision },
    /// Halted in the approval queue.
    Held {
        item: ApprovalItem,
        decision: AgentDecision,
    },
}

/// What running an approved action came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Execution {
    Executed(String),
    Failed(String),
}

/// An approved item and what its executor did.
#[derive(Debug, Clone, PartialEq)]
pub struct Approved {
    pub item: ApprovalItem,
    pub execution: Execution,
}

pub struct Service {
    approvals: Arc<dyn ApprovalStore>,
    decisions: Arc<dyn DecisionStore>,
    gates: Gates,
    executors: RwLock<BTreeMap<ActionKind, Arc<dyn GatedExecutor>>>,
    audit: Arc<audit::Service>,
    bus: OnceLock<Arc<dyn EventBus>>,
    clock: Arc<dyn Clock>,
}

impl Service {
    pub fn new(
        approvals: Arc<dyn ApprovalStore>,
        decisions: Arc<dyn DecisionStore>,
        gates: Gates,
        audit: Arc<audit::Service>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            approvals,
            decisions,
            gates,
            executors: RwLock::new(BTreeMap::new()),
            audit,
            bus: OnceLock::new(),
            clock,
        }
    }

    /// Publishes gate verdicts and decisions on `bus`.
    pub fn with_bus(self, bus: Arc<dyn EventBus>) -> Self {
        self.attach_bus(bus);
        self
    }

    /// Publishes gate verdicts and decisions on `bus` from now on (the server opens its bus
    /// after the API's services are built). The first bus attached stays.
    pub fn attach_bus(&self, bus: Arc<dyn EventBus>) {
        let _ = self.bus.set(bus);
    }

    /// The executor approved actions of `kind` are handed to (replacing any before it).
    pub fn register_executor(&self, kind: ActionKind, executor: Arc<dyn GatedExecutor>) {
        self.executors
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kind, executor);
    }

    fn executor(&self, kind: ActionKind) -> Option<Arc<dyn GatedExecutor>> {
        self.executors
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&kind)
            .cloned()
    }

    pub fn gates(&self) -> &Gates {
        &self.gates
    }

    fn now(&self) -> OffsetDateTime {
        truncate_to_micros(self.clock.now())
    }

    /// Judges an agent's action at its gate, records the decision, and stores the item when
    /// it is held.
    pub async fn submit(&self, submission: Submission) -> Result<Submitted, Error> {
        self.submit_as(DecisionId::new(), submission).await
    }

    /// [`submit`](Self::submit), once per `key` (the event or command the action answers):
    /// the decision's id is [`DecisionId::for_key`] of the agent and the key, so an agent that
    /// submits the same action again (a redelivered event, a restart between the submit and
    /// its ack) gets the verdict it got the first time — the same decision and, for a held
    /// action, the same approval item — and nothing is stored, audited or published twice.
    pub async fn submit_once(&self, key: &str, submission: Submission) -> Result<Submitted, Error> {
        let id = DecisionId::for_key(&submission.action.requested_by, key);
        if let Some(first) = self.decisions.decision(id).await? {
            return self.replay(first, &submission.action).await;
        }
        match self.submit_as(id, submission.clone()).await {
            // Submitted at the same moment by another handle of the agent: theirs stands.
            Err(Error::Store(StoreError::Conflict {
                constraint: "decision_id",
            })) => match self.decisions.decision(id).await? {
                Some(first) => self.replay(first, &submission.action).await,
                None => Err(Error::Store(StoreError::Unavailable(
                    "a decision with this key was being stored; try again".into(),
                ))),
            },
            other => other,
        }
    }

    /// The verdict a keyed decision got, as `submit` answered it then. A held decision whose
    /// approval item is missing (the node stopped between storing the two) gets its item now,
    /// with the id the decision names.
    async fn replay(&self, first: AgentDecision, action: &Action) -> Result<Submitted, Error> {
        let Some(approval) = first.approval else {
            return Ok(Submitted::Proceed { decision: first });
        };
        if let Some(item) = self.approvals.approval(approval).await? {
            return Ok(Submitted::Held {
                item,
                decision: first,
            });
        }
        let gate = self.gates.gate(action.kind);
        let reasons = match gate.judge(action) {
            Verdict::Hold { reasons } => reasons,
            Verdict::Proceed => Vec::new(),
        };
        let mut item = ApprovalItem::held(action, gate, &reasons, Some(first.id), first.at);
        item.id = approval;
        self.store_held(&item, &first).await?;
        Ok(Submitted::Held {
            item,
            decision: first,
        })
    }

    /// Stores a held action's approval item, audits and publishes it.
    async fn store_held(&self, item: &ApprovalItem, decision: &AgentDecision) -> Result<(), Error> {
        self.approvals.insert_approval(item).await?;
        self.record(
            &item.requested_by,
            "approval.hold",
            item,
            AuditOutcome::Success,
            [("reasons", item.reasons.join("; "))],
        )
        .await;
        self.publish_decision(decision).await;
        self.publish_verdict(item, GateVerdict::Held, decision.at)
            .await;
        Ok(())
    }

    /// Runs the executor registered for `action`'s kind: what an agent calls for an action
    /// that passed its gate, so that passed and approved actions are carried out by the same
    /// code. `key` names the run (the decision or approval id) for the executor's logs.
    pub async fn execute(&self, key: Uuid, action: &Action) -> Execution {
        match self.executor(action.kind) {
            Some(executor) => match executor.execute(ApprovalId(key), action).await {
                Ok(note) => Execution::Executed(note),
                Err(why) => Execution::Failed(why),
            },
            None => Execution::Failed(format!("no executor is registered for {}", action.kind)),
        }
    }

    /// Carries out an action that passed its gate ([`Submitted::Proceed`]) with the executor
    /// of its kind. A failure is written to the decision log as a follow-up of `decision`
    /// (which says `executed`: the gate let it run).
    pub async fn carry_out(&self, decision: &AgentDecision, action: &Action) -> Execution {
        let execution = self.execute(decision.id.0, action).await;
        if let Execution::Failed(why) = &execution {
            let failed = AgentDecision {
                id: DecisionId::new(),
                outcome: DecisionOutcome::Failed,
                reason: format!("passed its gate, then failed: {why}")
                    .chars()
                    .take(fb_core::gates::TEXT_MAX_CHARS)
                    .collect(),
                at: self.now(),
                ..decision.clone()
            };
            match self.decisions.insert_decision(&failed).await {
                Ok(()) => self.publish_decision(&failed).await,
                Err(e) => {
                    tracing::warn!(decision = %decision.id, error = %e, "Could not record that a passed action failed.")
                }
            }
        }
        execution
    }

    async fn submit_as(&self, id: DecisionId, submission: Submission) -> Result<Submitted, Error> {
        let Submission {
            action,
            inputs,
            reason,
            ticket,
            alert,
        } = submission;
        let mut errors = action.validate();
        if serde_json::from_str::<serde_json::Value>(&action.payload).is_err() {
            errors.push(FieldError::new("payload", "must be JSON text"));
        }
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        let gate = self.gates.gate(action.kind);
        let now = self.now();
        let mut decision = AgentDecision {
            id,
            agent: action.requested_by.clone(),
            site: action.site.clone(),
            machine: action.machine.clone(),
            inputs,
            action: action.kind.as_str().to_owned(),
            reason,
            confidence: action.confidence,
            outcome: DecisionOutcome::Executed,
            approval: None,
            ticket,
            alert,
            at: now,
        };
        let errors = decision.validate();
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        match gate.judge(&action) {
            Verdict::Proceed => {
                self.decisions.insert_decision(&decision).await?;
                self.publish_decision(&decision).await;
                self.publish_gate(
                    &action.site,
                    now,
                    GateDecisionEvent {
                        item: decision.id.0,
                        gate: action.kind.as_str().to_owned(),
                        verdict: GateVerdict::Passed,
                        confidence: action.confidence,
                        threshold: gate.min_confidence,
                        by: None,
                        reason: None,
                        decision: Some(decision.id.0),
                    },
                )
                .await;
                Ok(Submitted::Proceed { decision })
            }
            Verdict::Hold { reasons } => {
                let item = ApprovalItem::held(&action, gate, &reasons, Some(decision.id), now);
                decision.outcome = DecisionOutcome::Held;
                decision.approval = Some(item.id);
                // The decision first: it is what a keyed submission finds again, and it names
                // the item, so a stop between the two leaves nothing a replay cannot finish.
                self.decisions.insert_decision(&decision).await?;
                self.store_held(&item, &decision).await?;
                Ok(Submitted::Held { item, decision })
            }
        }
    }

    /// Records a decision that passes no gate (an agent's directive, a rule that only
    /// informs) in the decision log and publishes it as `agent.decided`, naming the event it
    /// reacted to. The decision's id is the caller's, so that an agent can derive it from the
    /// event it handles: `Ok(false)`, with nothing published, when a decision with that id is
    /// logged already (the same event handled before, on this node or another).
    pub async fn record_decision(
        &self,
        decision: &AgentDecision,
        trigger: Option<EventId>,
    ) -> Result<bool, Error> {
        let errors = decision.validate();
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        match self.decisions.insert_decision(decision).await {
            Ok(()) => {}
            Err(StoreError::Conflict {
                constraint: "decision_id",
            }) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        self.publish_decision_caused(decision, trigger).await;
        Ok(true)
    }

    /// Items matching `filter` within the caller's sites, newest first.
    pub async fn list(
        &self,
        caller: &Principal,
        filter: &ApprovalFilter,
    ) -> Result<Vec<ApprovalItem>, Error> {
        require(caller, Permission::PlantRead)?;
        let filter = ApprovalFilter {
            sites: filter.sites.intersection(&caller.sites),
            ..filter.clone()
        };
        Ok(self.approvals.list_approvals(&filter).await?)
    }

    pub async fn get(&self, caller: &Principal, id: ApprovalId) -> Result<ApprovalItem, Error> {
        require(caller, Permission::PlantRead)?;
        self.visible(caller, id).await
    }

    /// The decision log within the caller's sites, newest first.
    pub async fn decisions(
        &self,
        caller: &Principal,
        filter: &DecisionFilter,
    ) -> Result<Vec<AgentDecision>, Error> {
        require(caller, Permission::PlantRead)?;
        let filter = DecisionFilter {
            sites: filter.sites.intersection(&caller.sites),
            ..filter.clone()
        };
        Ok(self.decisions.list_decisions(&filter).await?)
    }

    async fn visible(&self, caller: &Principal, id: ApprovalId) -> Result<ApprovalItem, Error> {
        match self.approvals.approval(id).await? {
            Some(item) if caller.can_access_site(&item.site) => Ok(item),
            _ => Err(Error::NotFound),
        }
    }

    /// Approves a pending item and runs its executor once. Needs the gate's permission and the
    /// item's site; `reason` is optional.
    pub async fn approve(
        &self,
        caller: &Principal,
        id: ApprovalId,
        reason: Option<String>,
    ) -> Result<Approved, Error> {
        let item = self
            .answer(caller, id, ApprovalStatus::Approved, reason)
            .await?;
        let execution = self.execute(item.id.0, &item.action()).await;
        let (outcome, note) = match &execution {
            Execution::Executed(note) => (DecisionOutcome::Executed, note.clone()),
            Execution::Failed(why) => (DecisionOutcome::Failed, why.clone()),
        };
        self.record(
            &caller.describe(),
            "approval.execute",
            &item,
            if outcome == DecisionOutcome::Executed {
                AuditOutcome::Success
            } else {
                AuditOutcome::Failure
            },
            [("result", note.clone())],
        )
        .await;
        self.follow_up(
            &item,
            outcome,
            format!("approved by {}: {note}", caller.describe()),
        )
        .await?;
        Ok(Approved { item, execution })
    }

    /// Rejects a pending item; `reason` is required. The action does not run.
    pub async fn reject(
        &self,
        caller: &Principal,
        id: ApprovalId,
        reason: Option<String>,
    ) -> Result<ApprovalItem, Error> {
        let item = self
            .answer(caller, id, ApprovalStatus::Rejected, reason.clone())
            .await?;
        self.follow_up(
            &item,
            DecisionOutcome::Rejected,
            format!(
                "rejected by {}: {}",
                caller.describe(),
                reason.unwrap_or_default()
            ),
        )
        .await?;
        self.tell_declined(&item).await;
        Ok(item)
    }

    /// Tells the kind's executor that a held action will not run; a failure is logged and
    /// audited, never undoes the answer.
    async fn tell_declined(&self, item: &ApprovalItem) {
        let Some(executor) = self.executor(item.kind) else {
            return;
        };
        if let Err(why) = executor.declined(item).await {
            tracing::warn!(item = %item.id, kind = %item.kind, error = %why, "The executor could not close a declined action.");
            self.record(
                SYSTEM,
                "approval.decline",
                item,
                AuditOutcome::Failure,
                [("result", why)],
            )
            .await;
        }
    }

    /// A decision-log entry for what became of a held action.
    async fn follow_up(
        &self,
        item: &ApprovalItem,
        outcome: DecisionOutcome,
        reason: String,
    ) -> Result<(), Error> {
        let held = match item.decision {
            Some(id) => self.decisions.decision(id).await?,
            None => None,
        };
        let decision = AgentDecision {
            id: DecisionId::new(),
            agent: item.requested_by.clone(),
            site: item.site.clone(),
            machine: item.machine.clone(),
            inputs: held
                .as_ref()
                .map_or_else(|| "{}".to_owned(), |d| d.inputs.clone()),
            action: item.kind.as_str().to_owned(),
            reason: reason
                .chars()
                .take(fb_core::gates::TEXT_MAX_CHARS)
                .collect(),
            confidence: item.confidence,
            outcome,
            approval: Some(item.id),
            ticket: held.as_ref().and_then(|d| d.ticket),
            alert: held.as_ref().and_then(|d| d.alert),
            at: self.now(),
        };
        self.decisions.insert_decision(&decision).await?;
        self.publish_decision(&decision).await;
        Ok(())
    }

    /// Checks and stores a person's answer; audits it, whatever came of it.
    async fn answer(
        &self,
        caller: &Principal,
        id: ApprovalId,
        status: ApprovalStatus,
        reason: Option<String>,
    ) -> Result<ApprovalItem, Error> {
        let action = match status {
            ApprovalStatus::Approved => "approval.approve",
            _ => "approval.reject",
        };
        let result = self.try_answer(caller, id, status, reason).await;
        let target_item = match &result {
            Ok(item) => Some(item.clone()),
            Err(_) => self.approvals.approval(id).await.ok().flatten(),
        };
        let outcome = match &result {
            Ok(_) => AuditOutcome::Success,
            Err(Error::PermissionDenied(_)) => AuditOutcome::Denied,
            Err(_) => AuditOutcome::Failure,
        };
        let mut details = vec![];
        if let Err(e) = &result {
            details.push(("code", e.code().as_str().to_owned()));
        }
        match &target_item {
            Some(item) => {
                self.record(&caller.describe(), action, item, outcome, details)
                    .await;
            }
            None => {
                self.audit
                    .record(entry(
                        &caller.describe(),
                        action,
                        format!("approval:{id}"),
                        outcome,
                        self.now(),
                        details,
                    ))
                    .await;
            }
        }
        let item = result?;
        let verdict = match status {
            ApprovalStatus::Approved => GateVerdict::Approved,
            _ => GateVerdict::Rejected,
        };
        let at = item.answer.as_ref().map_or_else(|| self.now(), |a| a.at);
        self.publish_verdict(&item, verdict, at).await;
        Ok(item)
    }

    async fn try_answer(
        &self,
        caller: &Principal,
        id: ApprovalId,
        status: ApprovalStatus,
        reason: Option<String>,
    ) -> Result<ApprovalItem, Error> {
        require(caller, Permission::PlantRead)?;
        let item = self.visible(caller, id).await?;
        require(caller, item.kind.approver())?;
        let answer = Answer {
            status,
            by: caller.describe(),
            at: self.now(),
            reason: reason.filter(|r| !r.trim().is_empty() || status == ApprovalStatus::Rejected),
        };
        let errors = answer.validate();
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        if let Some(answered) = self.approvals.answer_approval(id, &answer).await? {
            return Ok(answered);
        }
        // Not taken: tell why from what is stored now.
        match self.approvals.approval(id).await? {
            None => Err(Error::NotFound),
            Some(now) if now.status != ApprovalStatus::Pending => {
                Err(Error::AlreadyDecided(now.status))
            }
            Some(now) => Err(Error::Expired(now.expires_at)),
        }
    }

    /// Expires every pending item whose time ran out, audited and published; how many.
    pub async fn sweep(&self) -> Result<usize, StoreError> {
        let mut expired = 0;
        loop {
            let now = self.now();
            let due = self.approvals.due_approvals(now, SWEEP_BATCH).await?;
            let last_batch = due.len() < SWEEP_BATCH;
            for item in due {
                let answer = Answer {
                    status: ApprovalStatus::Expired,
                    by: SYSTEM.to_owned(),
                    at: now,
                    reason: Some("nobody answered in time".to_owned()),
                };
                // Someone may have answered it in between: then it is theirs.
                let Some(item) = self.approvals.answer_approval(item.id, &answer).await? else {
                    continue;
                };
                expired += 1;
                self.record(
                    SYSTEM,
                    "approval.expire",
                    &item,
                    AuditOutcome::Success,
                    [("expires_at", item.expires_at.to_string())],
                )
                .await;
                self.publish_verdict(&item, GateVerdict::TimedOut, now)
                    .await;
                self.tell_declined(&item).await;
            }
            if last_batch {
                break;
            }
        }
        Ok(expired)
    }

    /// Sweeps every `every` until `stop` turns true.
    pub async fn run_sweeper(
        self: Arc<Self>,
        every: std::time::Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // The arms only pick what happened; the sweep runs after the select, so that no
            // borrow of the stop signal lives across it.
            let stopped = tokio::select! {
                _ = stop.wait_for(|s| *s) => true,
                _ = ticks.tick() => false,
            };
            if stopped {
                break;
            }
            match self.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "Expired unanswered approval items."),
                Err(e) => {
                    tracing::warn!(error = %e, "Could not sweep the approval queue; trying again later.")
                }
            }
        }
    }

    async fn record<K: AsRef<str>>(
        &self,
        actor: &str,
        action: &str,
        item: &ApprovalItem,
        outcome: AuditOutcome,
        details: impl IntoIterator<Item = (K, String)>,
    ) {
        let mut all: Vec<(String, String)> = vec![
            ("kind".to_owned(), item.kind.as_str().to_owned()),
            ("site".to_owned(), item.site.clone()),
            ("status".to_owned(), item.status.as_str().to_owned()),
        ];
        all.extend(details.into_iter().map(|(k, v)| (k.as_ref().to_owned(), v)));
        self.audit
            .record(entry(
                actor,
                action,
                format!("approval:{}", item.id),
                outcome,
                self.now(),
                all,
            ))
            .await;
    }

    async fn publish_verdict(&self, item: &ApprovalItem, verdict: GateVerdict, at: OffsetDateTime) {
        let answer = item.answer.as_ref();
        self.publish_gate(
            &item.site,
            at,
            GateDecisionEvent {
                item: item.id.0,
                gate: item.kind.as_str().to_owned(),
                verdict,
                confidence: item.confidence,
                threshold: item.threshold,
                by: answer.map(|a| a.by.clone()),
                reason: match verdict {
                    GateVerdict::Held => Some(item.reasons.join("; ")),
                    _ => answer.and_then(|a| a.reason.clone()),
                },
                decision: item.decision.map(|d| d.0),
            },
        )
        .await;
    }

    async fn publish_gate(&self, site: &str, at: OffsetDateTime, event: GateDecisionEvent) {
        self.publish(site, at, Event::GateDecision(event)).await;
    }

    async fn publish_decision(&self, d: &AgentDecision) {
        self.publish_decision_caused(d, None).await;
    }

    async fn publish_decision_caused(&self, d: &AgentDecision, trigger: Option<EventId>) {
        let outcome = match d.outcome {
            DecisionOutcome::Executed => BusOutcome::Executed,
            DecisionOutcome::Held => BusOutcome::HeldForApproval,
            DecisionOutcome::Rejected => BusOutcome::Rejected,
            DecisionOutcome::Failed => BusOutcome::Failed,
        };
        let event = Event::AgentDecision(AgentDecisionEvent {
            decision: d.id.0,
            agent: d.agent.clone(),
            machine: d.machine.clone(),
            inputs: d.inputs.clone(),
            action: d.action.clone(),
            reason: d.reason.clone(),
            confidence: d.confidence,
            outcome,
            trigger,
        });
        self.publish_caused(&d.site, d.at, event, trigger).await;
    }

    /// Publishes on the bus when one is attached. The store holds the truth: a failed publish
    /// is logged and counted, never undoes the change.
    async fn publish(&self, site: &str, at: OffsetDateTime, event: Event) {
        self.publish_caused(site, at, event, None).await;
    }

    async fn publish_caused(
        &self,
        site: &str,
        at: OffsetDateTime,
        event: Event,
        cause: Option<EventId>,
    ) {
        let Some(bus) = self.bus.get() else { return };
        let name = event.name();
        let mut envelope = Envelope::new(SOURCE, Some(site), at, event);
        if let Some(cause) = cause {
            envelope = envelope.caused_by(cause);
        }
        if let Err(e) = bus.publish(&envelope).await {
            metrics::counter!("fb_gate_publish_failures_total").increment(1);
            tracing::warn!(event = name, id = %envelope.id(), error = %e, "Could not publish a gate event on the bus; the store keeps the change.");
        }
    }
}

fn entry<K: AsRef<str>>(
    actor: &str,
    action: &str,
    target: String,
    outcome: AuditOutcome,
    at: OffsetDateTime,
    details: impl IntoIterator<Item = (K, String)>,
) -> AuditEntry {
    AuditEntry {
        at,
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: Some(target),
        outcome,
        op_id: Uuid::now_v7().to_string(),
        source: SOURCE.to_owned(),
        details: details
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v))
            .collect(),
    }
}

fn require(caller: &Principal, permission: Permission) -> Result<(), Error> {
    if caller.can(permission) {
        Ok(())
    } else {
        Err(Error::PermissionDenied(permission))
    }
}

#[cfg(test)]
mod tests;
