//! The readings store on PostgreSQL: daily range partitions, UNNEST batch inserts, rollups and
//! latest values updated in the same transaction.

use std::collections::{BTreeSet, HashSet};

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, Row};
use time::OffsetDateTime;

use fb_core::plant::{MachineId, Reading, ReadingBatch, ScoreBatch, SensorKey};
use fb_core::ports::{
    AppendOutcome, BucketStats, RangeQuery, ReadingStore, Resolution, RetentionCutoffs,
    RetentionOutcome, ScoreStore, ScoredPoint, StoreError,
};
use fb_sql::readings::{RollupDeltas, from_micros, rollup_table, to_micros};

use crate::PgStore;

const DAY_MICROS: i64 = 86_400_000_000;
/// Partitions made at start, beyond today, so that ingest never waits for DDL at midnight.
const DAYS_AHEAD: i64 = 2;

/// Tables partitioned by day: raw readings and their anomaly scores, kept and dropped together.
const PARTITIONED: [&str; 2] = ["readings", "reading_scores"];

impl PgStore {
    pub(crate) async fn create_partitions_ahead(&self) -> Result<(), StoreError> {
        let today = to_micros(OffsetDateTime::now_utc()).div_euclid(DAY_MICROS);
        let days: BTreeSet<i64> = (today..=today + DAYS_AHEAD).collect();
        for table in PARTITIONED {
            self.ensure_partitions(table, &days).await?;
        }
        Ok(())
    }

    /// Creates the daily partitions of `table` holding `days` (days since the epoch) unless
    /// they exist.
    async fn ensure_partitions(
        &self,
        table: &'static str,
        days: &BTreeSet<i64>,
    ) -> Result<(), StoreError> {
        let missing: Vec<i64> = {
            let known = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
            days.iter()
                .copied()
                .filter(|d| !known.contains(&(table, *d)))
                .collect()
        };
        for day in missing {
            let from = from_micros(day * DAY_MICROS);
            let to = from_micros((day + 1) * DAY_MICROS);
            let name = format!(
                "{table}_{:04}{:02}{:02}",
                from.year(),
                u8::from(from.month()),
                from.day()
            );
            // Names and bounds are computed from a constant and an integer day, never from input.
            let sql = format!(
                "CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} FOR VALUES FROM ('{}') TO ('{}')",
                fb_sql::readings::rfc3339(from),
                fb_sql::readings::rfc3339(to)
            );
            if let Err(e) = Self::timed(
                "partitions.create",
                sqlx::query(AssertSqlSafe(sql)).execute(&self.pool),
            )
            .await
            {
                // Two nodes may race to create the same partition; only a missing one is an error.
                let exists = sqlx::query_scalar::<_, bool>("SELECT to_regclass($1) IS NOT NULL")
                    .bind(&name)
                    .fetch_one(&self.pool);
                if !Self::timed("partitions.exists", exists).await? {
                    return Err(e);
                }
            }
            self.partitions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((table, day));
        }
        Ok(())
    }
}

#[async_trait]
impl ReadingStore for PgStore {
    async fn append_readings(&self, batch: &ReadingBatch) -> Result<AppendOutcome, StoreError> {
        if batch.is_empty() {
            return Ok(AppendOutcome::default());
        }
        let ids = self.series_ids(batch.series()).await?;
        let days: BTreeSet<i64> = batch
            .samples()
            .iter()
            .map(|s| s.ts_micros.div_euclid(DAY_MICROS))
            .collect();
        self.ensure_partitions("readings", &days).await?;

        let mut series = Vec::with_capacity(batch.len());
        let mut times = Vec::with_capacity(batch.len());
        let mut values = Vec::with_capacity(batch.len());
        for s in batch.samples() {
            series.push(ids[s.series.get()]);
            times.push(from_micros(s.ts_micros));
            values.push(s.value);
        }
        let mut tx = Self::timed("readings.begin", self.pool.begin()).await?;
        // RETURNING names the rows that were new, so the rollups add exactly those: a row that
        // was stored before (or is being stored by a concurrent batch, whose commit this one
        // waits for) is neither counted nor allowed to replace the first value.
        let insert = sqlx::query_as::<_, (i64, OffsetDateTime)>(
            "INSERT INTO readings (series, ts, value) \
             SELECT * FROM UNNEST($1::bigint[], $2::timestamptz[], $3::float8[]) \
             ON CONFLICT DO NOTHING RETURNING series, ts",
        )
        .bind(&series)
        .bind(&times)
        .bind(&values)
        .fetch_all(&mut *tx);
        let returned = Self::timed("readings.insert", insert).await?;

        let mut outcome = AppendOutcome::default();
        let mut deltas = RollupDeltas::default();
        if returned.len() == batch.len() {
            for s in batch.samples() {
                deltas.add(ids[s.series.get()], s.ts_micros, s.value);
            }
            outcome.inserted = batch.len();
        } else {
            let mut fresh: HashSet<(i64, i64)> = returned
                .iter()
                .map(|(series, ts)| (*series, to_micros(*ts)))
                .collect();
            for (position, s) in batch.samples().iter().enumerate() {
                let key = (ids[s.series.get()], s.ts_micros);
                // A key repeated within the batch is new only the first time.
                if fresh.remove(&key) {
                    deltas.add(key.0, key.1, s.value);
                    outcome.inserted += 1;
                } else {
                    outcome.duplicates += 1;
                    outcome.duplicate_samples.push(position as u32);
                }
            }
        }

        for resolution in [Resolution::Minute, Resolution::Hour] {
            let buckets = deltas.buckets(resolution);
            if buckets.is_empty() {
                continue;
            }
            let mut cols: (Vec<i64>, Vec<i64>, Vec<i64>, Vec<f64>, Vec<f64>, Vec<f64>) =
                Default::default();
            for ((s, b), a) in buckets {
                cols.0.push(s);
                cols.1.push(b);
                cols.2.push(a.count);
                cols.3.push(a.min);
                cols.4.push(a.max);
                cols.5.push(a.sum);
            }
            let t = rollup_table(resolution);
            // Upserted in key order (see `RollupDeltas::buckets`), so concurrent batches take
            // row locks in one order and cannot deadlock.
            let sql = format!(
                "INSERT INTO {t} (series, bucket, count, min, max, sum) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::float8[], $5::float8[], $6::float8[]) \
                 ON CONFLICT (series, bucket) DO UPDATE SET count = {t}.count + excluded.count, \
                 min = LEAST({t}.min, excluded.min), max = GREATEST({t}.max, excluded.max), sum = {t}.sum + excluded.sum"
            );
            let query = sqlx::query(AssertSqlSafe(sql))
                .bind(&cols.0)
                .bind(&cols.1)
                .bind(&cols.2)
                .bind(&cols.3)
                .bind(&cols.4)
                .bind(&cols.5)
                .execute(&mut *tx);
            Self::timed("rollups.upsert", query).await?;
        }
        let latest = deltas.latest();
        if !latest.is_empty() {
            let (mut l_series, mut l_ts, mut l_values) = (Vec::new(), Vec::new(), Vec::new());
            for (s, (ts, value)) in latest {
                l_series.push(s);
                l_ts.push(from_micros(ts));
                l_values.push(value);
            }
            let query = sqlx::query(
                "INSERT INTO latest (series, ts, value) \
                 SELECT * FROM UNNEST($1::bigint[], $2::timestamptz[], $3::float8[]) \
                 ON CONFLICT (series) DO UPDATE SET ts = excluded.ts, value = excluded.value \
                 WHERE excluded.ts > latest.ts",
            )
            .bind(&l_series)
            .bind(&l_ts)
            .bind(&l_values)
            .execute(&mut *tx);
            Self::timed("latest.upsert", query).await?;
        }
        Self::timed("readings.commit", tx.commit()).await?;
        Ok(outcome)
    }

    async fn raw_readings(&self, q: &RangeQuery) -> Result<Vec<Reading>, StoreError> {
        let mut out = Vec::new();
        for (series, sensor) in self.series_of(&q.machine, q.sensor.as_ref()).await? {
            if out.len() >= q.limit {
                break;
            }
            let query = sqlx::query(
                "SELECT ts, value FROM readings WHERE series = $1 AND ts >= $2 AND ts < $3 ORDER BY ts LIMIT $4",
            )
            .bind(series)
            .bind(q.from)
            .bind(q.to)
            .bind((q.limit - out.len()) as i64)
            .fetch_all(&self.pool);
            for row in Self::timed("readings.range", query).await? {
                out.push(Reading {
                    machine: q.machine.clone(),
                    sensor: sensor.clone(),
                    ts: row.try_get("ts").map_err(fb_sql::corrupt)?,
                    value: row.try_get("value").map_err(fb_sql::corrupt)?,
                });
            }
        }
        Ok(out)
    }

    async fn rollup_readings(
        &self,
        q: &RangeQuery,
        resolution: Resolution,
    ) -> Result<Vec<BucketStats>, StoreError> {
        self.rollups_of(q, resolution).await
    }

    async fn latest_readings(&self, machine: &MachineId) -> Result<Vec<Reading>, StoreError> {
        let query = sqlx::query(
            "SELECT s.sensor_key, l.ts, l.value FROM latest l JOIN series s ON s.id = l.series \
             WHERE s.machine_id = $1 ORDER BY s.sensor_key",
        )
        .bind(&machine.0)
        .fetch_all(&self.pool);
        Self::timed("latest.of_machine", query)
            .await?
            .iter()
            .map(|row| {
                Ok(Reading {
                    machine: machine.clone(),
                    sensor: SensorKey(row.try_get("sensor_key").map_err(fb_sql::corrupt)?),
                    ts: row.try_get("ts").map_err(fb_sql::corrupt)?,
                    value: row.try_get("value").map_err(fb_sql::corrupt)?,
                })
            })
            .collect()
    }

    async fn apply_retention(
        &self,
        cutoffs: &RetentionCutoffs,
    ) -> Result<RetentionOutcome, StoreError> {
        let mut outcome = RetentionOutcome::default();
        if let Some(cutoff) = cutoffs.raw {
            // Drop whole day partitions that end at or before the cut-off: instant, no vacuum.
            let cutoff_day = to_micros(cutoff).div_euclid(DAY_MICROS);
            for table in PARTITIONED {
                let query = sqlx::query_scalar::<_, String>(
                    "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                     JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace \
                     WHERE p.relname = $1 AND n.nspname = current_schema()",
                )
                .bind(table)
                .fetch_all(&self.pool);
                for name in Self::timed("retention.partitions", query).await? {
                    let Some(day) = partition_day(table, &name) else {
                        continue;
                    };
                    if day < cutoff_day {
                        // The name came from the catalogue and matched <table>_YYYYMMDD.
                        let drop_sql = format!("DROP TABLE IF EXISTS {name}");
                        Self::timed(
                            "retention.drop_partition",
                            sqlx::query(AssertSqlSafe(drop_sql)).execute(&self.pool),
                        )
                        .await?;
                        self.partitions
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&(table, day));
                        if table == "readings" {
                            outcome.raw_units += 1;
                        }
                    }
                }
            }
        }
        self.delete_old_rollups(cutoffs, &mut outcome).await?;
        Ok(outcome)
    }
}

/// The day (since the epoch) of a partition named `<table>_YYYYMMDD`.
fn partition_day(table: &str, name: &str) -> Option<i64> {
    let digits = name.strip_prefix(table)?.strip_prefix('_')?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = digits[..4].parse().ok()?;
    let month: u8 = digits[4..6].parse().ok()?;
    let day: u8 = digits[6..].parse().ok()?;
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    Some(to_micros(date.midnight().assume_utc()).div_euclid(DAY_MICROS))
}

#[async_trait]
impl ScoreStore for PgStore {
    async fn append_scores(&self, batch: &ScoreBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let ids = self.series_ids(batch.series()).await?;
        let days: BTreeSet<i64> = batch
            .samples()
            .iter()
            .map(|s| s.ts_micros.div_euclid(DAY_MICROS))
            .collect();
        self.ensure_partitions("reading_scores", &days).await?;
        let mut series = Vec::with_capacity(batch.len());
        let mut times = Vec::with_capacity(batch.len());
        let mut scores = Vec::with_capacity(batch.len());
        let mut flags = Vec::with_capacity(batch.len());
        for s in batch.samples() {
            series.push(ids[s.series.get()]);
            times.push(from_micros(s.ts_micros));
            scores.push(s.score);
            flags.push(s.anomaly);
        }
        let insert = sqlx::query(
            "INSERT INTO reading_scores (series, ts, score, anomaly) \
             SELECT * FROM UNNEST($1::bigint[], $2::timestamptz[], $3::real[], $4::boolean[]) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&series)
        .bind(&times)
        .bind(&scores)
        .bind(&flags)
        .execute(&self.pool);
        Self::timed("scores.insert", insert).await.map(drop)
    }

    async fn scores(&self, q: &RangeQuery) -> Result<Vec<ScoredPoint>, StoreError> {
        let mut out = Vec::new();
        for (series, sensor) in self.series_of(&q.machine, q.sensor.as_ref()).await? {
            if out.len() >= q.limit {
                break;
            }
            let query = sqlx::query_as::<_, (OffsetDateTime, f32, bool)>(
                "SELECT ts, score, anomaly FROM reading_scores WHERE series = $1 AND ts >= $2 \
                 AND ts < $3 ORDER BY ts LIMIT $4",
            )
            .bind(series)
            .bind(q.from)
            .bind(q.to)
            .bind((q.limit - out.len()) as i64)
            .fetch_all(&self.pool);
            for (ts, score, anomaly) in Self::timed("scores.range", query).await? {
                out.push(ScoredPoint {
                    sensor: sensor.clone(),
                    ts,
                    score,
                    anomaly,
                });
            }
        }
        Ok(out)
    }
}
