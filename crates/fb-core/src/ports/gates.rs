//! Storage ports of the confidence gates (E5): the approval queue and the decision log.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::gates::{
    ActionKind, AgentDecision, Answer, ApprovalId, ApprovalItem, ApprovalStatus, DecisionId,
};
use crate::identity::SiteScope;

use super::StoreError;

/// Which approval items to list, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalFilter {
    /// Only items of these sites. No `Default`: every filter says its sites.
    pub sites: SiteScope,
    pub status: Option<ApprovalStatus>,
    pub kind: Option<ActionKind>,
    /// Page: items created before this one (ids are time-ordered UUIDv7).
    pub before: Option<ApprovalId>,
    pub limit: usize,
}

impl ApprovalFilter {
    pub fn new(sites: SiteScope, limit: usize) -> Self {
        Self {
            sites,
            status: None,
            kind: None,
            before: None,
            limit,
        }
    }
}

/// Which decisions to list, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionFilter {
    pub sites: SiteScope,
    pub agent: Option<String>,
    /// Decisions at or after `from` and before `to`.
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    /// Page: decisions recorded before this one.
    pub before: Option<DecisionId>,
    pub limit: usize,
}

impl DecisionFilter {
    pub fn new(sites: SiteScope, limit: usize) -> Self {
        Self {
            sites,
            agent: None,
            from: None,
            to: None,
            before: None,
            limit,
        }
    }
}

/// The approval queue. Answering is atomic in every store: of any number of concurrent
/// answers, only one finds the item pending and takes it.
#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// Inserts a new, pending item. `Conflict { constraint: "approval_id" }` on a repeated id.
    async fn insert_approval(&self, item: &ApprovalItem) -> Result<(), StoreError>;

    async fn approval(&self, id: ApprovalId) -> Result<Option<ApprovalItem>, StoreError>;

    async fn list_approvals(
        &self,
        filter: &ApprovalFilter,
    ) -> Result<Vec<ApprovalItem>, StoreError>;

    /// Sets the answer of a pending item, atomically, and returns the item as stored after:
    /// approved or rejected only while `answer.at < expires_at`, expired only once
    /// `answer.at >= expires_at`. `None`, changing nothing, when the item does not exist, was
    /// answered already, or the time does not fit the answer.
    async fn answer_approval(
        &self,
        id: ApprovalId,
        answer: &Answer,
    ) -> Result<Option<ApprovalItem>, StoreError>;

    /// Pending items whose time ran out at `now` (`expires_at <= now`), oldest first, at most
    /// `limit`.
    async fn due_approvals(
        &self,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<ApprovalItem>, StoreError>;
}

/// The decision log: append-only.
#[async_trait]
pub trait DecisionStore: Send + Sync {
    /// Appends a decision. `Conflict { constraint: "decision_id" }` on a repeated id.
    async fn insert_decision(&self, decision: &AgentDecision) -> Result<(), StoreError>;

    async fn decision(&self, id: DecisionId) -> Result<Option<AgentDecision>, StoreError>;

    async fn list_decisions(
        &self,
        filter: &DecisionFilter,
    ) -> Result<Vec<AgentDecision>, StoreError>;
}
