//! The readings store on PostgreSQL: daily range partitions, UNNEST batch inserts, rollups and
//! latest values updated in the same transaction.

use std::collections::BTreeSet;

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, Row};
use time::OffsetDateTime;

use fb_core::plant::{MachineId, Reading, SensorKey};
use fb_core::ports::{
    AppendOutcome, BucketStats, RangeQuery, ReadingStore, Resolution, RetentionCutoffs,
    RetentionOutcome, StoreError,
};
use fb_sql::readings::{aggregate, bucket_start, from_micros, newest, rollup_table, to_micros};

use crate::PgStore;

const DAY_MICROS: i64 = 86_400_000_000;
/// Partitions made at start, beyond today, so that ingest never waits for DDL at midnight.
const DAYS_AHEAD: i64 = 2;

impl PgStore {
    pub(crate) async fn create_partitions_ahead(&self) -> Result<(), StoreError> {
        let today = to_micros(OffsetDateTime::now_utc()).div_euclid(DAY_MICROS);
        let days: BTreeSet<i64> = (today..=today + DAYS_AHEAD).collect();
        self.ensure_partitions(&days).await
    }

    /// Creates the daily partitions holding `days` (days since the epoch) unless they exist.
    async fn ensure_partitions(&self, days: &BTreeSet<i64>) -> Result<(), StoreError> {
        let missing: Vec<i64> = {
            let known = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
            days.iter()
                .copied()
                .filter(|d| !known.contains(d))
                .collect()
        };
        for day in missing {
            let from = from_micros(day * DAY_MICROS);
            let to = from_micros((day + 1) * DAY_MICROS);
            let name = format!(
                "readings_{:04}{:02}{:02}",
                from.year(),
                u8::from(from.month()),
                from.day()
            );
            // Names and bounds are computed from an integer day, never from input.
            let sql = format!(
                "CREATE TABLE IF NOT EXISTS {name} PARTITION OF readings FOR VALUES FROM ('{}') TO ('{}')",
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
                .insert(day);
        }
        Ok(())
    }
}

#[async_trait]
impl ReadingStore for PgStore {
    async fn append_readings(&self, batch: &[Reading]) -> Result<AppendOutcome, StoreError> {
        if batch.is_empty() {
            return Ok(AppendOutcome::default());
        }
        let pairs: BTreeSet<(&str, &str)> = batch
            .iter()
            .map(|r| (r.machine.0.as_str(), r.sensor.0.as_str()))
            .collect();
        let ids = self.series_ids(&pairs).await?;
        let mut rows = Vec::with_capacity(batch.len());
        for r in batch {
            let id = ids
                .get(&(r.machine.0.clone(), r.sensor.0.clone()))
                .copied()
                .ok_or_else(|| StoreError::Corrupt("series vanished".into()))?;
            rows.push((id, to_micros(r.ts), r.value));
        }
        let days: BTreeSet<i64> = rows
            .iter()
            .map(|&(_, ts, _)| ts.div_euclid(DAY_MICROS))
            .collect();
        self.ensure_partitions(&days).await?;

        let series: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let times: Vec<OffsetDateTime> = rows.iter().map(|r| from_micros(r.1)).collect();
        let values: Vec<f64> = rows.iter().map(|r| r.2).collect();
        let mut tx = Self::timed("readings.begin", self.pool.begin()).await?;
        let insert = sqlx::query(
            "INSERT INTO readings (series, ts, value) \
             SELECT * FROM UNNEST($1::bigint[], $2::timestamptz[], $3::float8[]) ON CONFLICT DO NOTHING",
        )
        .bind(&series)
        .bind(&times)
        .bind(&values)
        .execute(&mut *tx);
        let inserted = Self::timed("readings.insert", insert)
            .await?
            .rows_affected() as usize;
        let duplicates = batch.len() - inserted;

        for resolution in [Resolution::Minute, Resolution::Hour] {
            let t = rollup_table(resolution);
            if duplicates == 0 {
                // Upsert in key order: concurrent batches then take row locks in the same order
                // and cannot deadlock.
                let mut deltas: Vec<_> =
                    aggregate(&rows, resolution.seconds()).into_iter().collect();
                deltas.sort_unstable_by_key(|(key, _)| *key);
                let mut cols: (Vec<i64>, Vec<i64>, Vec<i64>, Vec<f64>, Vec<f64>, Vec<f64>) =
                    Default::default();
                for ((s, b), a) in deltas {
                    cols.0.push(s);
                    cols.1.push(b);
                    cols.2.push(a.count);
                    cols.3.push(a.min);
                    cols.4.push(a.max);
                    cols.5.push(a.sum);
                }
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
            } else {
                // Some rows existed: recompute the touched buckets from what is stored.
                let secs = resolution.seconds();
                let touched: BTreeSet<(i64, i64)> = rows
                    .iter()
                    .map(|&(s, ts, _)| (s, bucket_start(ts, secs)))
                    .collect();
                let sql = format!(
                    "INSERT INTO {t} (series, bucket, count, min, max, sum) \
                     SELECT series, $2, COUNT(*), MIN(value), MAX(value), SUM(value) FROM readings \
                     WHERE series = $1 AND ts >= $3 AND ts < $4 GROUP BY series \
                     ON CONFLICT (series, bucket) DO UPDATE SET count = excluded.count, min = excluded.min, \
                     max = excluded.max, sum = excluded.sum"
                );
                for (s, bucket) in touched {
                    let query = sqlx::query(AssertSqlSafe(sql.clone()))
                        .bind(s)
                        .bind(bucket)
                        .bind(from_micros(bucket * 1_000_000))
                        .bind(from_micros((bucket + secs) * 1_000_000))
                        .execute(&mut *tx);
                    Self::timed("rollups.recompute", query).await?;
                }
            }
        }
        // Latest values come from the stored rows, so that a duplicate never overrides the first value.
        let newest = newest(&rows);
        let mut latest_series: Vec<i64> = newest.keys().copied().collect();
        latest_series.sort_unstable(); // one lock order for all batches (see above)
        let latest_ts: Vec<OffsetDateTime> = latest_series
            .iter()
            .map(|s| from_micros(newest[s].0))
            .collect();
        let query = sqlx::query(
            "INSERT INTO latest (series, ts, value) \
             SELECT r.series, r.ts, r.value FROM readings r \
             JOIN UNNEST($1::bigint[], $2::timestamptz[]) AS n(series, ts) ON r.series = n.series AND r.ts = n.ts \
             ON CONFLICT (series) DO UPDATE SET ts = excluded.ts, value = excluded.value WHERE excluded.ts > latest.ts",
        )
        .bind(&latest_series)
        .bind(&latest_ts)
        .execute(&mut *tx);
        Self::timed("latest.upsert", query).await?;
        Self::timed("readings.commit", tx.commit()).await?;
        Ok(AppendOutcome {
            inserted,
            duplicates,
        })
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
            let query = sqlx::query_scalar::<_, String>(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                 JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace \
                 WHERE p.relname = 'readings' AND n.nspname = current_schema()",
            )
            .fetch_all(&self.pool);
            for name in Self::timed("retention.partitions", query).await? {
                let Some(day) = partition_day(&name) else {
                    continue;
                };
                if day < cutoff_day {
                    // The name came from the catalogue and matched readings_YYYYMMDD.
                    let drop_sql = format!("DROP TABLE IF EXISTS {name}");
                    Self::timed(
                        "retention.drop_partition",
                        sqlx::query(AssertSqlSafe(drop_sql)).execute(&self.pool),
                    )
                    .await?;
                    self.partitions
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&day);
                    outcome.raw_units += 1;
                }
            }
        }
        self.delete_old_rollups(cutoffs, &mut outcome).await?;
        Ok(outcome)
    }
}

/// The day (since the epoch) of a partition named `readings_YYYYMMDD`.
fn partition_day(name: &str) -> Option<i64> {
    let digits = name.strip_prefix("readings_")?;
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
