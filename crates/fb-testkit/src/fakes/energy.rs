//! Energy recommendations in memory, with the stores' rule: one proposed recommendation per
//! machine and action.

use std::collections::BTreeMap;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use fb_core::energy::{
    CommandState, EnergyAction, Recommendation, RecommendationId, RecommendationStatus,
};
use fb_core::plant::MachineId;
use fb_core::ports::{RecommendationFilter, RecommendationStore, StoreError};

use super::{MemoryStore, State};

fn state(s: &mut State) -> &mut BTreeMap<RecommendationId, Recommendation> {
    &mut s.recommendations
}

#[async_trait]
impl RecommendationStore for MemoryStore {
    async fn insert_recommendation(&self, r: &Recommendation) -> Result<(), StoreError> {
        self.with(|s| {
            let all = state(s);
            if all.contains_key(&r.id) {
                return Err(StoreError::Conflict {
                    constraint: "recommendation_id",
                });
            }
            let clash = r.status.is_open()
                && all
                    .values()
                    .any(|o| o.status.is_open() && o.machine == r.machine && o.action == r.action);
            if clash {
                return Err(StoreError::Conflict {
                    constraint: "recommendation_open",
                });
            }
            all.insert(r.id, r.clone());
            Ok(())
        })
    }

    async fn recommendation(
        &self,
        id: RecommendationId,
    ) -> Result<Option<Recommendation>, StoreError> {
        Ok(self.with(|s| state(s).get(&id).cloned()))
    }

    async fn list_recommendations(
        &self,
        f: &RecommendationFilter,
    ) -> Result<Vec<Recommendation>, StoreError> {
        Ok(self.with(|s| {
            state(s)
                .values()
                .rev()
                .filter(|r| f.sites.contains(&r.site))
                .filter(|r| f.status.is_none_or(|st| st == r.status))
                .filter(|r| f.machine.as_ref().is_none_or(|m| *m == r.machine))
                .take(f.limit)
                .cloned()
                .collect()
        }))
    }

    async fn open_recommendation(
        &self,
        machine: &MachineId,
        action: EnergyAction,
    ) -> Result<Option<Recommendation>, StoreError> {
        Ok(self.with(|s| {
            state(s)
                .values()
                .find(|r| r.status.is_open() && r.machine == *machine && r.action == action)
                .cloned()
        }))
    }

    async fn decide_recommendation(
        &self,
        id: RecommendationId,
        to: RecommendationStatus,
        by: &str,
        at: OffsetDateTime,
        command: Option<Uuid>,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|s| match state(s).get_mut(&id) {
            Some(r) if r.status.is_open() => {
                r.status = to;
                r.decided_by = Some(by.to_owned());
                r.decided_at = Some(at);
                r.command_id = command;
                r.command_state = command.map(|_| CommandState::Pending);
                true
            }
            _ => false,
        }))
    }

    async fn mark_command_sent(&self, id: RecommendationId) -> Result<bool, StoreError> {
        Ok(self.with(|s| match state(s).get_mut(&id) {
            Some(r) if r.command_state == Some(CommandState::Pending) => {
                r.command_state = Some(CommandState::Sent);
                true
            }
            _ => false,
        }))
    }

    async fn expire_recommendations(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        Ok(self.with(|s| {
            let mut n = 0;
            for r in state(s).values_mut() {
                if r.status.is_open() && r.expires_at <= now {
                    r.status = RecommendationStatus::Expired;
                    n += 1;
                }
            }
            n
        }))
    }
}
