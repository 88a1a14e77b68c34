//! The approval queue and the decision log in memory. Times are kept to whole microseconds,
//! as the SQL stores keep them.

use std::collections::BTreeMap;

use async_trait::async_trait;
use time::OffsetDateTime;

use fb_core::clock::truncate_to_micros;
use fb_core::gates::{AgentDecision, Answer, ApprovalId, ApprovalItem, ApprovalStatus, DecisionId};
use fb_core::ports::{ApprovalFilter, ApprovalStore, DecisionFilter, DecisionStore, StoreError};

use super::{MemoryStore, State};

#[derive(Default)]
pub(super) struct GateState {
    approvals: BTreeMap<ApprovalId, ApprovalItem>,
    decisions: BTreeMap<DecisionId, AgentDecision>,
}

fn state(s: &mut State) -> &mut GateState {
    &mut s.gates
}

fn stored_item(item: &ApprovalItem) -> ApprovalItem {
    let mut item = item.clone();
    item.created_at = truncate_to_micros(item.created_at);
    item.expires_at = truncate_to_micros(item.expires_at);
    if let Some(answer) = &mut item.answer {
        answer.at = truncate_to_micros(answer.at);
    }
    item
}

#[async_trait]
impl ApprovalStore for MemoryStore {
    async fn insert_approval(&self, item: &ApprovalItem) -> Result<(), StoreError> {
        self.with(|s| {
            let g = state(s);
            if g.approvals.contains_key(&item.id) {
                return Err(StoreError::Conflict {
                    constraint: "approval_id",
                });
            }
            g.approvals.insert(item.id, stored_item(item));
            Ok(())
        })
    }

    async fn approval(&self, id: ApprovalId) -> Result<Option<ApprovalItem>, StoreError> {
        Ok(self.with(|s| state(s).approvals.get(&id).cloned()))
    }

    async fn list_approvals(&self, f: &ApprovalFilter) -> Result<Vec<ApprovalItem>, StoreError> {
        Ok(self.with(|s| {
            state(s)
                .approvals
                .values()
                .rev()
                .filter(|a| f.sites.contains(&a.site))
                .filter(|a| f.status.is_none_or(|st| st == a.status))
                .filter(|a| f.kind.is_none_or(|k| k == a.kind))
                .filter(|a| f.before.is_none_or(|b| a.id < b))
                .take(f.limit)
                .cloned()
                .collect()
        }))
    }

    async fn answer_approval(
        &self,
        id: ApprovalId,
        answer: &Answer,
    ) -> Result<Option<ApprovalItem>, StoreError> {
        let at = truncate_to_micros(answer.at);
        Ok(self.with(|s| {
            let item = state(s).approvals.get_mut(&id)?;
            let fits = match answer.status {
                ApprovalStatus::Pending => false,
                ApprovalStatus::Expired => item.expires_at <= at,
                ApprovalStatus::Approved | ApprovalStatus::Rejected => at < item.expires_at,
            };
            if item.status != ApprovalStatus::Pending || !fits {
                return None;
            }
            item.status = answer.status;
            item.answer = Some(Answer {
                at,
                ..answer.clone()
            });
            Some(item.clone())
        }))
    }

    async fn due_approvals(
        &self,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<ApprovalItem>, StoreError> {
        let now = truncate_to_micros(now);
        Ok(self.with(|s| {
            let mut due: Vec<ApprovalItem> = state(s)
                .approvals
                .values()
                .filter(|a| a.status == ApprovalStatus::Pending && a.expires_at <= now)
                .cloned()
                .collect();
            due.sort_by_key(|a| (a.expires_at, a.id));
            due.truncate(limit);
            due
        }))
    }
}

#[async_trait]
impl DecisionStore for MemoryStore {
    async fn insert_decision(&self, decision: &AgentDecision) -> Result<(), StoreError> {
        self.with(|s| {
            let g = state(s);
            if g.decisions.contains_key(&decision.id) {
                return Err(StoreError::Conflict {
                    constraint: "decision_id",
                });
            }
            let mut decision = decision.clone();
            decision.at = truncate_to_micros(decision.at);
            g.decisions.insert(decision.id, decision);
            Ok(())
        })
    }

    async fn decision(&self, id: DecisionId) -> Result<Option<AgentDecision>, StoreError> {
        Ok(self.with(|s| state(s).decisions.get(&id).cloned()))
    }

    async fn list_decisions(&self, f: &DecisionFilter) -> Result<Vec<AgentDecision>, StoreError> {
        Ok(self.with(|s| {
            state(s)
                .decisions
                .values()
                .rev()
                .filter(|d| f.sites.contains(&d.site))
                .filter(|d| f.agent.as_ref().is_none_or(|a| *a == d.agent))
                .filter(|d| f.from.is_none_or(|from| d.at >= from))
                .filter(|d| f.to.is_none_or(|to| d.at < to))
                .filter(|d| f.before.is_none_or(|b| d.id < b))
                .take(f.limit)
                .cloned()
                .collect()
        }))
    }
}
