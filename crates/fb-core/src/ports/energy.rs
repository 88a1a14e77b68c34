//! Storage port of energy recommendations (C3).

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::energy::{EnergyAction, Recommendation, RecommendationId, RecommendationStatus};
use crate::identity::SiteScope;
use crate::plant::MachineId;

use super::StoreError;

/// Which recommendations to list, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct RecommendationFilter {
    /// Only recommendations of these sites. No `Default`: every filter says its sites.
    pub sites: SiteScope,
    pub status: Option<RecommendationStatus>,
    pub machine: Option<MachineId>,
    pub limit: usize,
}

impl RecommendationFilter {
    pub fn new(sites: SiteScope, limit: usize) -> Self {
        Self {
            sites,
            status: None,
            machine: None,
            limit,
        }
    }
}

/// Stores recommendations. In every store, whatever writes: at most one proposed
/// recommendation per machine and action (`Conflict { constraint: "recommendation_open" }`).
#[async_trait]
pub trait RecommendationStore: Send + Sync {
    async fn insert_recommendation(&self, r: &Recommendation) -> Result<(), StoreError>;

    async fn recommendation(
        &self,
        id: RecommendationId,
    ) -> Result<Option<Recommendation>, StoreError>;

    async fn list_recommendations(
        &self,
        filter: &RecommendationFilter,
    ) -> Result<Vec<Recommendation>, StoreError>;

    /// The proposed recommendation of the machine for the action, if any.
    async fn open_recommendation(
        &self,
        machine: &MachineId,
        action: EnergyAction,
    ) -> Result<Option<Recommendation>, StoreError>;

    /// Decides a proposed recommendation: `to` (accepted or dismissed), by whom and when, and
    /// for an accepted one its command id, recorded as pending. `false`, changing nothing, when
    /// it is not proposed any more (decided or expired in between) or does not exist.
    async fn decide_recommendation(
        &self,
        id: RecommendationId,
        to: RecommendationStatus,
        by: &str,
        at: OffsetDateTime,
        command: Option<Uuid>,
    ) -> Result<bool, StoreError>;

    /// Marks an accepted recommendation's pending command as sent; `false` if it is not pending.
    async fn mark_command_sent(&self, id: RecommendationId) -> Result<bool, StoreError>;

    /// Expires every proposed recommendation whose `expires_at` is at or before `now`; returns
    /// how many.
    async fn expire_recommendations(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}
