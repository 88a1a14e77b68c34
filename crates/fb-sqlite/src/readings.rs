//! The readings store on SQLite: batched multi-row inserts into the hour-chunked table, rollups
//! and latest values updated in the same transaction.

use std::collections::BTreeSet;

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, Row};

use fb_core::plant::{MachineId, Reading, SensorKey};
use fb_core::ports::{
    AppendOutcome, BucketStats, RangeQuery, ReadingStore, Resolution, RetentionCutoffs,
    RetentionOutcome, StoreError,
};
use fb_sql::readings::{aggregate, bucket_start, from_micros, newest, rollup_table, to_micros};

use crate::SqliteStore;

/// Rows per INSERT statement: 4 parameters each, well under SQLite's 32766-parameter limit, and
/// large enough that statement overhead is small.
const ROWS_PER_STATEMENT: usize = 1000;
const CHUNK_MICROS: i64 = 3_600_000_000;

fn insert_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(64 + rows * 16);
    sql.push_str("INSERT OR IGNORE INTO readings (chunk, series, ts, value) VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?)");
    }
    sql
}

impl SqliteStore {}

#[async_trait]
impl ReadingStore for SqliteStore {
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

        let mut tx = Self::timed("readings.begin", self.pool.begin()).await?;
        let mut inserted = 0u64;
        let full_sql = insert_sql(ROWS_PER_STATEMENT);
        for part in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = if part.len() == ROWS_PER_STATEMENT {
                full_sql.clone()
            } else {
                insert_sql(part.len())
            };
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for &(series, ts, value) in part {
                query = query
                    .bind(ts.div_euclid(CHUNK_MICROS))
                    .bind(series)
                    .bind(ts)
                    .bind(value);
            }
            inserted += Self::timed("readings.insert", query.execute(&mut *tx))
                .await?
                .rows_affected();
        }
        let inserted = inserted as usize;
        let duplicates = batch.len() - inserted;

        if duplicates == 0 {
            // The common case: every row is new, so the batch itself is the delta.
            for resolution in [Resolution::Minute, Resolution::Hour] {
                let sql = format!(
                    "INSERT INTO {t} (series, bucket, count, min, max, sum) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (series, bucket) DO UPDATE SET count = {t}.count + excluded.count, \
                     min = min({t}.min, excluded.min), max = max({t}.max, excluded.max), sum = {t}.sum + excluded.sum",
                    t = rollup_table(resolution)
                );
                for ((series, bucket), agg) in aggregate(&rows, resolution.seconds()) {
                    let query = sqlx::query(AssertSqlSafe(sql.clone()))
                        .bind(series)
                        .bind(bucket)
                        .bind(agg.count)
                        .bind(agg.min)
                        .bind(agg.max)
                        .bind(agg.sum)
                        .execute(&mut *tx);
                    Self::timed("rollups.upsert", query).await?;
                }
            }
            for (series, (ts, value)) in newest(&rows) {
                let query = sqlx::query(
                    "INSERT INTO latest (series, ts, value) VALUES ($1, $2, $3) ON CONFLICT (series) \
                     DO UPDATE SET ts = excluded.ts, value = excluded.value WHERE excluded.ts > latest.ts",
                )
                .bind(series).bind(ts).bind(value)
                .execute(&mut *tx);
                Self::timed("latest.upsert", query).await?;
            }
        } else {
            // Some rows existed: recompute the touched buckets and latest values from what is
            // stored, so nothing is counted twice and the first stored value wins everywhere.
            for resolution in [Resolution::Minute, Resolution::Hour] {
                let secs = resolution.seconds();
                let touched: BTreeSet<(i64, i64)> = rows
                    .iter()
                    .map(|&(s, ts, _)| (s, bucket_start(ts, secs)))
                    .collect();
                let sql = format!(
                    "INSERT OR REPLACE INTO {t} (series, bucket, count, min, max, sum) \
                     SELECT series, $2, COUNT(*), MIN(value), MAX(value), SUM(value) FROM readings \
                     WHERE chunk BETWEEN $3 AND $4 AND series = $1 AND ts >= $5 AND ts < $6 GROUP BY series",
                    t = rollup_table(resolution)
                );
                for (series, bucket) in touched {
                    let (from, to) = (bucket * 1_000_000, (bucket + secs) * 1_000_000);
                    let query = sqlx::query(AssertSqlSafe(sql.clone()))
                        .bind(series)
                        .bind(bucket)
                        .bind(from.div_euclid(CHUNK_MICROS))
                        .bind((to - 1).div_euclid(CHUNK_MICROS))
                        .bind(from)
                        .bind(to)
                        .execute(&mut *tx);
                    Self::timed("rollups.recompute", query).await?;
                }
            }
            for (series, (ts, _)) in newest(&rows) {
                let query = sqlx::query(
                    "INSERT INTO latest (series, ts, value) SELECT series, ts, value FROM readings \
                     WHERE chunk = $3 AND series = $1 AND ts = $2 ON CONFLICT (series) \
                     DO UPDATE SET ts = excluded.ts, value = excluded.value WHERE excluded.ts > latest.ts",
                )
                .bind(series).bind(ts).bind(ts.div_euclid(CHUNK_MICROS))
                .execute(&mut *tx);
                Self::timed("latest.upsert", query).await?;
            }
        }
        Self::timed("readings.commit", tx.commit()).await?;
        Ok(AppendOutcome {
            inserted,
            duplicates,
        })
    }

    async fn raw_readings(&self, q: &RangeQuery) -> Result<Vec<Reading>, StoreError> {
        let (from, to) = (to_micros(q.from), to_micros(q.to));
        let mut out = Vec::new();
        for (series, sensor) in self.series_of(&q.machine, q.sensor.as_ref()).await? {
            if out.len() >= q.limit {
                break;
            }
            let query = sqlx::query(
                "SELECT ts, value FROM readings WHERE chunk BETWEEN $1 AND $2 AND series = $3 \
                 AND ts >= $4 AND ts < $5 ORDER BY chunk, ts LIMIT $6",
            )
            .bind(from.div_euclid(CHUNK_MICROS))
            .bind((to - 1).div_euclid(CHUNK_MICROS))
            .bind(series)
            .bind(from)
            .bind(to)
            .bind((q.limit - out.len()) as i64)
            .fetch_all(&self.pool);
            for row in Self::timed("readings.range", query).await? {
                out.push(Reading {
                    machine: q.machine.clone(),
                    sensor: sensor.clone(),
                    ts: from_micros(row.try_get("ts").map_err(fb_sql::corrupt)?),
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
                    ts: from_micros(row.try_get("ts").map_err(fb_sql::corrupt)?),
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
            // Whole hour chunks only: a chunk goes when all of it is older than the cut-off.
            let chunk = to_micros(cutoff).div_euclid(CHUNK_MICROS);
            let query = sqlx::query("DELETE FROM readings WHERE chunk < $1")
                .bind(chunk)
                .execute(&self.pool);
            outcome.raw_units = Self::timed("retention.raw", query).await?.rows_affected();
        }
        self.delete_old_rollups(cutoffs, &mut outcome).await?;
        Ok(outcome)
    }
}
