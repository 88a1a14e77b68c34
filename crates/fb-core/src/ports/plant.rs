//! Storage ports of the plant model and its readings (A1, A2).

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Code;
use crate::identity::SiteScope;
use crate::plant::{Machine, MachineId, Reading, ReadingBatch, SensorKey};

use super::StoreError;

#[async_trait]
pub trait MachineStore: Send + Sync {
    /// `Conflict { constraint: "machine_id" }` when the id is taken.
    async fn insert_machine(&self, machine: &Machine) -> Result<(), StoreError>;
    async fn machine(&self, id: &MachineId) -> Result<Option<Machine>, StoreError>;
    /// The machines of the given sites (every machine for `SiteScope::All`), ordered by id.
    /// The sites are part of the query, so a later limit or page counts only visible machines.
    async fn list_machines(&self, sites: &SiteScope) -> Result<Vec<Machine>, StoreError>;
    /// Replaces the stored machine with the same id; `false` if there is none.
    async fn update_machine(&self, machine: &Machine) -> Result<bool, StoreError>;
    /// Deletes the machine (its readings stay until retention removes them); `false` if none.
    async fn delete_machine(&self, id: &MachineId) -> Result<bool, StoreError>;
    /// Sets the health score detection computed, leaving every other field alone (so it never
    /// overwrites a concurrent edit); `false` if there is no such machine.
    async fn set_machine_health(
        &self,
        id: &MachineId,
        health: f64,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Sets the failure probability and remaining useful life live prediction computed (None:
    /// no active model of that kind serves the machine), leaving every other field alone;
    /// `false` if there is no such machine.
    async fn set_machine_prediction(
        &self,
        id: &MachineId,
        failure_probability: Option<f64>,
        rul_hours: Option<f64>,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}

/// What an append did: readings newly stored, and readings skipped because their
/// (machine, sensor, ts) was stored before (the first value wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    pub inserted: usize,
    pub duplicates: usize,
    /// Positions (ascending) in the batch's samples of the duplicates, so that consumers are
    /// handed each reading once however often it was delivered.
    pub duplicate_samples: Vec<u32>,
}

/// A time range of one machine: `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeQuery {
    pub machine: MachineId,
    /// `None`: every sensor of the machine.
    pub sensor: Option<SensorKey>,
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    /// At most this many rows come back.
    pub limit: usize,
}

/// The rollup resolutions kept up to date as readings arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resolution {
    Minute,
    Hour,
}

impl Resolution {
    pub fn seconds(self) -> i64 {
        match self {
            Resolution::Minute => 60,
            Resolution::Hour => 3600,
        }
    }
}

/// Statistics of one sensor over one bucket. `sum` (not the mean) is kept so that buckets merge
/// exactly into larger ones.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketStats {
    pub sensor: SensorKey,
    /// Start of the bucket.
    pub start: OffsetDateTime,
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
}

#[async_trait]
pub trait ReadingStore: Send + Sync {
    /// Stores a batch atomically. Readings whose (machine, sensor, ts) is stored already (or
    /// repeated earlier in the batch) are skipped and reported as duplicates. The minute and hour
    /// rollups and the latest values are updated in the same transaction, from the readings
    /// actually inserted, so they never count a reading twice.
    async fn append_readings(&self, batch: &ReadingBatch) -> Result<AppendOutcome, StoreError>;
    /// Raw readings in the range, ordered by sensor then time.
    async fn raw_readings(&self, query: &RangeQuery) -> Result<Vec<Reading>, StoreError>;
    /// Rollup buckets whose start lies in the range, ordered by sensor then start.
    async fn rollup_readings(
        &self,
        query: &RangeQuery,
        resolution: Resolution,
    ) -> Result<Vec<BucketStats>, StoreError>;
    /// The newest reading of every sensor of the machine, ordered by sensor.
    async fn latest_readings(&self, machine: &MachineId) -> Result<Vec<Reading>, StoreError>;
    /// Removes data older than each cut-off. Raw data goes in whole storage units (hour chunks,
    /// day partitions) that lie entirely before the cut-off, so slightly more may remain.
    async fn apply_retention(
        &self,
        cutoffs: &RetentionCutoffs,
    ) -> Result<RetentionOutcome, StoreError>;
}

/// Data older than a cut-off is removed; `None` keeps that resolution forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionCutoffs {
    pub raw: Option<OffsetDateTime>,
    pub minute: Option<OffsetDateTime>,
    pub hour: Option<OffsetDateTime>,
}

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Raw rows deleted (SQLite) or day partitions dropped (PostgreSQL).
    pub raw_units: u64,
    pub minute_rows: u64,
    pub hour_rows: u64,
}

/// A payload or reading that was refused, kept with what is needed to inspect and replay it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub id: Uuid,
    pub received_at: OffsetDateTime,
    /// Where it came from: `http`, or `mqtt:<topic>`.
    pub source: String,
    pub code: Code,
    pub reason: String,
    /// The bytes as received: the whole payload, or the one item of a batch that was refused.
    pub payload: Vec<u8>,
    pub content_type: String,
    pub replayed_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeadLetterFilter {
    pub code: Option<Code>,
    /// Only letters not yet replayed successfully.
    pub pending_only: bool,
    /// Page after this id (ids are time-ordered UUIDv7).
    pub after: Option<Uuid>,
    pub limit: usize,
}

#[async_trait]
pub trait DeadLetterStore: Send + Sync {
    async fn insert_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), StoreError>;
    /// Oldest first.
    async fn list_dead_letters(
        &self,
        filter: &DeadLetterFilter,
    ) -> Result<Vec<DeadLetter>, StoreError>;
    async fn dead_letter(&self, id: Uuid) -> Result<Option<DeadLetter>, StoreError>;
    /// Records a successful replay; `false` if there is no such letter.
    async fn mark_replayed(&self, id: Uuid, at: OffsetDateTime) -> Result<bool, StoreError>;
}
