//! The machines registry (A1): who may read, edit and create machines, and validation.
//!
//! Viewers read. Operators change what running the plant needs: status, the active flag, sensor
//! metadata (units and limits) and maintenance dates. Admins create, delete and change a
//! machine's identity, type, class and location.
//!
//! Every call sees only the machines of the caller's sites ([`crate::scope`]): others answer
//! `machine_not_found` like machines that do not exist, and a machine cannot be created in or
//! moved to a site outside them.

use std::sync::Arc;

use fb_core::Clock;
use fb_core::error::{Code, Coded, FieldError};
use fb_core::identity::{Permission, Principal};
use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::scope::{MachineVisibility, OutOfScope, require_site};
use fb_core::detection::Anomaly;
use fb_core::plant::{
    Machine, MachineId, MachinePatch, NewMachine, Reading, SensorKey, validate_machine,
};
use fb_core::ports::{
    AnomalyFilter, AnomalyStore, BucketStats, MachineStore, RangeQuery, ReadingStore, Resolution,
    ScoreStore, ScoredPoint, StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {}", FieldError::names(.0))]
    Validation(Vec<FieldError>),
    #[error("no machine has the id '{0}'")]
    NotFound(String),
    #[error("a machine with the id '{0}' exists already")]
    Exists(String),
    #[error("this role lacks the permission {0}")]
    PermissionDenied(Permission),
    #[error(transparent)]
    OutOfScope(#[from] OutOfScope),
    #[error("{0}")]
    QueryTooLarge(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for Error {
    fn code(&self) -> Code {
        match self {
            Error::Validation(_) => Code::invalid_field,
            Error::NotFound(_) => Code::machine_not_found,
            Error::Exists(_) => Code::machine_exists,
            Error::PermissionDenied(_) => Code::permission_denied,
            Error::OutOfScope(e) => e.code(),
            Error::QueryTooLarge(_) => Code::query_too_large,
            Error::Store(StoreError::Unavailable(_)) => Code::storage_unavailable,
            Error::Store(_) => Code::internal,
        }
    }

    fn field_errors(&self) -> &[FieldError] {
        match self {
            Error::Validation(fields) => fields,
            Error::OutOfScope(e) => e.field_errors(),
            _ => &[],
        }
    }
}

/// Limits of readings queries.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    /// Longest range of a raw query.
    pub max_raw_range: time::Duration,
    /// Most points a raw query returns (over all sensors).
    pub max_points: usize,
    /// Most buckets a bucketed query returns (over all sensors).
    pub max_buckets: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_raw_range: time::Duration::days(7),
            max_points: 100_000,
            max_buckets: 20_000,
        }
    }
}

/// How to bucket a query: pick a size from the range, or a fixed size in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Auto,
    Seconds(i64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReadingsQuery {
    pub machine: String,
    pub sensor: Option<String>,
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    /// `None`: raw points.
    pub bucket: Option<Bucket>,
}

/// A stored reading with the score detection gave it (none yet, or detection off).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredReading {
    pub reading: Reading,
    /// (score in [0, 1], anomaly flag).
    pub score: Option<(f32, bool)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReadingsResult {
    Raw(Vec<ScoredReading>),
    Buckets {
        resolution: Resolution,
        bucket_secs: i64,
        buckets: Vec<BucketStats>,
    },
}

/// Bucket sizes `auto` chooses from: each a whole number of minutes or hours.
const NICE_BUCKETS: &[i64] = &[
    60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 604_800,
];
/// About this many buckets per sensor for `bucket=auto`: enough for a chart, few enough to be quick.
const AUTO_BUCKETS: i64 = 300;

pub struct Service {
    machines: Arc<dyn MachineStore>,
    visibility: MachineVisibility,
    readings: Arc<dyn ReadingStore>,
    scores: Arc<dyn ScoreStore>,
    anomalies: Arc<dyn AnomalyStore>,
    clock: Arc<dyn Clock>,
    limits: QueryLimits,
}

impl Service {
    pub fn new(
        machines: Arc<dyn MachineStore>,
        readings: Arc<dyn ReadingStore>,
        scores: Arc<dyn ScoreStore>,
        anomalies: Arc<dyn AnomalyStore>,
        clock: Arc<dyn Clock>,
        limits: QueryLimits,
    ) -> Self {
        Self {
            visibility: MachineVisibility::new(machines.clone()),
            machines,
            readings,
            scores,
            anomalies,
            clock,
            limits,
        }
    }

    /// What detection found on a machine in a time range, oldest first.
    pub async fn anomalies(
        &self,
        caller: &Principal,
        machine: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
        after: Option<uuid::Uuid>,
        limit: usize,
    ) -> Result<Vec<Anomaly>, Error> {
        let machine = self.get(caller, machine).await?;
        if to <= from {
            return Err(Error::Validation(vec![FieldError::new(
                "to",
                "must be after from",
            )]));
        }
        Ok(self
            .anomalies
            .list_anomalies(&AnomalyFilter {
                machine: machine.id,
                from,
                to,
                after,
                limit,
            })
            .await?)
    }

    /// Raw points, or buckets computed from the minute or hour rollups (whichever the bucket size
    /// allows), for one machine and optionally one sensor.
    pub async fn readings(
        &self,
        caller: &Principal,
        q: &ReadingsQuery,
    ) -> Result<ReadingsResult, Error> {
        let machine = self.get(caller, &q.machine).await?;
        let sensor = match &q.sensor {
            Some(key) => Some(machine.sensor(key).map(|s| s.key.clone()).ok_or_else(|| {
                Error::Validation(vec![FieldError::new(
                    "sensor",
                    format!("machine '{}' has no sensor '{key}'", machine.id),
                )])
            })?),
            None => None,
        };
        if q.to <= q.from {
            return Err(Error::Validation(vec![FieldError::new(
                "to",
                "must be after from",
            )]));
        }
        let range = q.to - q.from;
        let sensors = sensor.as_ref().map_or(machine.sensors.len().max(1), |_| 1);
        let Some(bucket) = q.bucket else {
            if range > self.limits.max_raw_range {
                return Err(Error::QueryTooLarge(format!(
                    "raw queries cover at most {} hours; narrow from/to or ask for buckets (bucket=auto)",
                    self.limits.max_raw_range.whole_hours()
                )));
            }
            let query = self.range_query(machine.id.clone(), sensor, q, self.limits.max_points + 1);
            let points = self.readings.raw_readings(&query).await?;
            if points.len() > self.limits.max_points {
                return Err(Error::QueryTooLarge(format!(
                    "more than {} points; narrow from/to or ask for buckets (bucket=auto)",
                    self.limits.max_points
                )));
            }
            let scores = self.scores.scores(&query).await?;
            return Ok(ReadingsResult::Raw(with_scores(points, scores)));
        };
        let bucket_secs = match bucket {
            Bucket::Seconds(s) if s >= 60 && s % 60 == 0 && (s < 3600 || s % 3600 == 0) => s,
            Bucket::Seconds(_) => {
                return Err(Error::Validation(vec![FieldError::new(
                    "bucket",
                    "must be a whole number of minutes below an hour, or of hours (e.g. 60, 300, 3600, 86400), or auto",
                )]));
            }
            Bucket::Auto => {
                let wanted = range.whole_seconds() / AUTO_BUCKETS;
                NICE_BUCKETS
                    .iter()
                    .copied()
                    .find(|b| *b >= wanted)
                    .unwrap_or(604_800)
            }
        };
        let per_sensor = range.whole_seconds() / bucket_secs + 1;
        if per_sensor * sensors as i64 > self.limits.max_buckets as i64 {
            return Err(Error::QueryTooLarge(format!(
                "{} buckets of {bucket_secs} s exceed the limit of {}; use larger buckets or a shorter range",
                per_sensor * sensors as i64,
                self.limits.max_buckets
            )));
        }
        let resolution = if bucket_secs < 3600 {
            Resolution::Minute
        } else {
            Resolution::Hour
        };
        // Rollup rows per requested bucket, per sensor; the store caps rows, so ask for enough.
        let rows_per_bucket = (bucket_secs / resolution.seconds()).max(1) as usize;
        let cap = (per_sensor as usize * sensors)
            .saturating_mul(rows_per_bucket)
            .saturating_add(1);
        let aligned_from = q.from
            - time::Duration::seconds(q.from.unix_timestamp().rem_euclid(resolution.seconds()));
        let mut query = self.range_query(machine.id.clone(), sensor, q, cap);
        query.from = aligned_from;
        let rows = self.readings.rollup_readings(&query, resolution).await?;
        Ok(ReadingsResult::Buckets {
            resolution,
            bucket_secs,
            buckets: merge(rows, bucket_secs),
        })
    }

    /// The newest reading of every sensor of a machine.
    pub async fn latest(&self, caller: &Principal, machine: &str) -> Result<Vec<Reading>, Error> {
        let machine = self.get(caller, machine).await?;
        Ok(self.readings.latest_readings(&machine.id).await?)
    }

    fn range_query(
        &self,
        machine: MachineId,
        sensor: Option<SensorKey>,
        q: &ReadingsQuery,
        limit: usize,
    ) -> RangeQuery {
        RangeQuery {
            machine,
            sensor,
            from: q.from,
            to: q.to,
            limit,
        }
    }

    /// When a query gives no end, it ends now.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    pub async fn create(&self, caller: &Principal, new: NewMachine) -> Result<Machine, Error> {
        require(caller, Permission::PlantManage)?;
        require_site(caller, "location.site", &new.location.site)?;
        let now = self.clock.now();
        let machine = Machine {
            id: MachineId(new.id),
            name: new.name,
            machine_type: new.machine_type,
            machine_class: new.machine_class,
            location: new.location,
            status: new.status,
            active: new.active,
            sensors: new.sensors,
            last_maintenance: new.last_maintenance,
            next_maintenance: new.next_maintenance,
            health_score: None,
            failure_probability: None,
            rul_hours: None,
            created_at: now,
            updated_at: now,
        };
        let problems = validate_machine(&machine);
        if !problems.is_empty() {
            return Err(Error::Validation(problems));
        }
        self.machines
            .insert_machine(&machine)
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => Error::Exists(machine.id.0.clone()),
                other => other.into(),
            })?;
        tracing::info!(machine_id = %machine.id, "Machine created.");
        Ok(machine)
    }

    /// The machine, if it exists within the caller's sites; otherwise `NotFound` either way.
    pub async fn get(&self, caller: &Principal, id: &str) -> Result<Machine, Error> {
        require(caller, Permission::PlantRead)?;
        self.visibility
            .machine(caller, &MachineId(id.to_owned()))
            .await?
            .ok_or_else(|| Error::NotFound(id.to_owned()))
    }

    /// The machines of the caller's sites, ordered by id.
    pub async fn list(&self, caller: &Principal) -> Result<Vec<Machine>, Error> {
        require(caller, Permission::PlantRead)?;
        Ok(self.machines.list_machines(&caller.sites).await?)
    }

    /// Applies a partial update. Operational changes need `readings.write`; anything touching
    /// identity, type, class or location needs `plant.manage`.
    pub async fn update(
        &self,
        caller: &Principal,
        id: &str,
        patch: MachinePatch,
    ) -> Result<Machine, Error> {
        let needed = if patch.is_operational() {
            Permission::ReadingsWrite
        } else {
            Permission::PlantManage
        };
        require(caller, needed)?;
        let mut machine = self.get(caller, id).await?;
        patch.apply(&mut machine);
        require_site(caller, "location.site", &machine.location.site)?;
        machine.updated_at = self.clock.now();
        let problems = validate_machine(&machine);
        if !problems.is_empty() {
            return Err(Error::Validation(problems));
        }
        if !self.machines.update_machine(&machine).await? {
            return Err(Error::NotFound(id.to_owned()));
        }
        tracing::info!(machine_id = %machine.id, "Machine updated.");
        Ok(machine)
    }

    pub async fn delete(&self, caller: &Principal, id: &str) -> Result<(), Error> {
        require(caller, Permission::PlantManage)?;
        // Outside the caller's sites it does not exist for them.
        self.get(caller, id).await?;
        if !self
            .machines
            .delete_machine(&MachineId(id.to_owned()))
            .await?
        {
            return Err(Error::NotFound(id.to_owned()));
        }
        tracing::info!(machine_id = %id, "Machine deleted.");
        Ok(())
    }
}

fn require(caller: &Principal, permission: Permission) -> Result<(), Error> {
    if caller.can(permission) {
        Ok(())
    } else {
        Err(Error::PermissionDenied(permission))
    }
}

/// Merges rollup rows into buckets of `bucket_secs`, per sensor, keeping exact count/min/max/sum.
fn merge(rows: Vec<BucketStats>, bucket_secs: i64) -> Vec<BucketStats> {
    let mut merged: BTreeMap<(SensorKey, i64), BucketStats> = BTreeMap::new();
    for row in rows {
        let start = row.start.unix_timestamp().div_euclid(bucket_secs) * bucket_secs;
        merged
            .entry((row.sensor.clone(), start))
            .and_modify(|b| {
                b.count += row.count;
                b.min = b.min.min(row.min);
                b.max = b.max.max(row.max);
                b.sum += row.sum;
            })
            .or_insert_with(|| BucketStats {
                start: OffsetDateTime::from_unix_timestamp(start).unwrap_or(row.start),
                ..row
            });
    }
    merged.into_values().collect()
}

/// Joins readings with their scores; both come ordered by sensor then time.
fn with_scores(points: Vec<Reading>, scores: Vec<ScoredPoint>) -> Vec<ScoredReading> {
    let mut scores = scores.into_iter().peekable();
    points
        .into_iter()
        .map(|reading| {
            let key = (&reading.sensor, reading.ts);
            while scores.next_if(|s| (&s.sensor, s.ts) < key).is_some() {}
            let score = scores
                .next_if(|s| (&s.sensor, s.ts) == key)
                .map(|s| (s.score, s.anomaly));
            ScoredReading { reading, score }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sensor: &str, start: i64, count: u64, min: f64, max: f64, sum: f64) -> BucketStats {
        BucketStats {
            sensor: SensorKey(sensor.into()),
            start: OffsetDateTime::from_unix_timestamp(start).unwrap(),
            count,
            min,
            max,
            sum,
        }
    }

    #[test]
    fn minute_rows_merge_into_larger_buckets_exactly() {
        let rows = vec![
            row("a", 0, 2, 1.0, 3.0, 4.0),
            row("a", 60, 1, 0.5, 0.5, 0.5),
            row("a", 300, 1, 9.0, 9.0, 9.0),
            row("b", 0, 1, 7.0, 7.0, 7.0),
        ];
        let merged = merge(rows, 300);
        assert_eq!(
            merged,
            vec![
                row("a", 0, 3, 0.5, 3.0, 4.5),
                row("a", 300, 1, 9.0, 9.0, 9.0),
                row("b", 0, 1, 7.0, 7.0, 7.0)
            ]
        );
    }
}
