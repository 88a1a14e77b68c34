//! Storage ports of detection and alerts (B2, B3).

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::alerts::{Alert, AlertId, AlertKind, AlertStatus};
use crate::detection::{Anomaly, Severity};
use crate::identity::SiteScope;
use crate::plant::{MachineId, ScoreBatch, SensorKey};

use super::{RangeQuery, StoreError};

/// Which alerts to list, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertFilter {
    /// Only alerts of machines in these sites. An alert whose machine was deleted has no site
    /// any more, so only `SiteScope::All` lists it. No `Default`: every filter says its sites.
    pub sites: SiteScope,
    pub machine: Option<MachineId>,
    pub status: Option<AlertStatus>,
    /// Open or acknowledged only (ignored when `status` is given).
    pub active_only: bool,
    pub severity: Option<Severity>,
    pub kind: Option<AlertKind>,
    /// Page: alerts opened before this one (ids are time-ordered UUIDv7).
    pub before: Option<AlertId>,
    pub limit: usize,
}

impl AlertFilter {
    /// Up to `limit` alerts of the given sites, newest first, with no other condition.
    pub fn new(sites: SiteScope, limit: usize) -> Self {
        Self {
            sites,
            machine: None,
            status: None,
            active_only: false,
            severity: None,
            kind: None,
            before: None,
            limit,
        }
    }
}

#[async_trait]
pub trait AlertStore: Send + Sync {
    async fn insert_alert(&self, alert: &Alert) -> Result<(), StoreError>;
    /// Replaces the stored alert if its version is still `expected_version` (the caller has set
    /// `alert.version` to the next one); `false` if someone changed it in between.
    async fn update_alert(&self, alert: &Alert, expected_version: u64) -> Result<bool, StoreError>;
    async fn alert(&self, id: AlertId) -> Result<Option<Alert>, StoreError>;
    async fn list_alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>, StoreError>;
}

/// Which anomalies to list, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyFilter {
    pub machine: MachineId,
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    /// Page: anomalies after this one (ids are time-ordered UUIDv7).
    pub after: Option<Uuid>,
    pub limit: usize,
}

#[async_trait]
pub trait AnomalyStore: Send + Sync {
    async fn insert_anomalies(&self, anomalies: &[Anomaly]) -> Result<(), StoreError>;
    /// Anomalies found at an instant in `[from, to)`, in time order.
    async fn list_anomalies(&self, filter: &AnomalyFilter) -> Result<Vec<Anomaly>, StoreError>;
}

/// The score detection gave one stored reading.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredPoint {
    pub sensor: SensorKey,
    pub ts: OffsetDateTime,
    pub score: f32,
    pub anomaly: bool,
}

#[async_trait]
pub trait ScoreStore: Send + Sync {
    /// Stores the scores of readings; a reading scored twice keeps its first score.
    async fn append_scores(&self, batch: &ScoreBatch) -> Result<(), StoreError>;
    /// Scores in the range, ordered by sensor then time (like `raw_readings`).
    async fn scores(&self, query: &RangeQuery) -> Result<Vec<ScoredPoint>, StoreError>;
}
