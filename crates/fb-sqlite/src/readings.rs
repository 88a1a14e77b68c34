//! The readings store on SQLite: appends go through the writer thread (`writer.rs`); queries of
//! segments, latest values and retention through the pool.

use async_trait::async_trait;
use sqlx::Row;

use fb_core::plant::{MachineId, Reading, ReadingBatch, ScoreBatch, SensorKey};
use fb_core::ports::{
    AppendOutcome, BucketStats, RangeQuery, ReadingStore, Resolution, RetentionCutoffs,
    RetentionOutcome, ScoreStore, ScoredPoint, StoreError,
};
use fb_sql::readings::{from_micros, to_micros};

use crate::SqliteStore;
use crate::segments::{self, chunk_of};

#[async_trait]
impl ReadingStore for SqliteStore {
    async fn append_readings(&self, batch: &ReadingBatch) -> Result<AppendOutcome, StoreError> {
        if batch.is_empty() {
            return Ok(AppendOutcome::default());
        }
        let ids = self.series_ids(batch.series()).await?;
        let rows = batch
            .samples()
            .iter()
            .map(|s| (ids[s.series.get()], s.ts_micros, s.value))
            .collect();
        self.writer.append(rows).await
    }

    async fn raw_readings(&self, q: &RangeQuery) -> Result<Vec<Reading>, StoreError> {
        let (from, to) = (to_micros(q.from), to_micros(q.to));
        if from >= to {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for (series, sensor) in self.series_of(&q.machine, q.sensor.as_ref()).await? {
            if out.len() >= q.limit {
                break;
            }
            // Hour by hour: segments of one hour may interleave in time (late data), hours never.
            for chunk in chunk_of(from)..=chunk_of(to - 1) {
                if out.len() >= q.limit {
                    break;
                }
                let query = sqlx::query(
                    "SELECT data FROM segments WHERE series = $1 AND chunk = $2 \
                     AND last >= $3 AND first < $4",
                )
                .bind(series)
                .bind(chunk)
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool);
                let mut samples = Vec::new();
                for row in Self::timed("segments.range", query).await? {
                    let data: Vec<u8> = row.try_get("data").map_err(fb_sql::corrupt)?;
                    segments::decode_into(&data, &mut samples).map_err(StoreError::Corrupt)?;
                }
                samples.retain(|&(ts, _)| ts >= from && ts < to);
                samples.sort_unstable_by_key(|&(ts, _)| ts);
                let room = q.limit - out.len();
                out.extend(samples.into_iter().take(room).map(|(ts, value)| Reading {
                    machine: q.machine.clone(),
                    sensor: sensor.clone(),
                    ts: from_micros(ts),
                    value,
                }));
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
            let _turn = self.write_turn().await;
            // Whole hour chunks only: a chunk goes when all of it is older than the cut-off.
            let chunk = chunk_of(to_micros(cutoff));
            let query = sqlx::query("DELETE FROM segments WHERE chunk < $1")
                .bind(chunk)
                .execute(&self.pool);
            outcome.raw_units = Self::timed("retention.raw", query).await?.rows_affected();
            let query = sqlx::query("DELETE FROM segment_dirty WHERE chunk < $1")
                .bind(chunk)
                .execute(&self.pool);
            Self::timed("retention.segment_dirty", query).await?;
            let query = sqlx::query("DELETE FROM score_segments WHERE chunk < $1")
                .bind(chunk)
                .execute(&self.pool);
            Self::timed("retention.scores", query).await?;
        }
        self.delete_old_rollups(cutoffs, &mut outcome).await?;
        Ok(outcome)
    }
}

#[async_trait]
impl ScoreStore for SqliteStore {
    async fn append_scores(&self, batch: &ScoreBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let ids = self.series_ids(batch.series()).await?;
        let rows = batch
            .samples()
            .iter()
            .map(|s| (ids[s.series.get()], s.ts_micros, s.score, s.anomaly))
            .collect();
        self.writer.append_scores(rows).await
    }

    async fn scores(&self, q: &RangeQuery) -> Result<Vec<ScoredPoint>, StoreError> {
        let (from, to) = (to_micros(q.from), to_micros(q.to));
        let mut out = Vec::new();
        if from >= to {
            return Ok(out);
        }
        for (series, sensor) in self.series_of(&q.machine, q.sensor.as_ref()).await? {
            for chunk in chunk_of(from)..=chunk_of(to - 1) {
                if out.len() >= q.limit {
                    return Ok(out);
                }
                let query = sqlx::query(
                    "SELECT data FROM score_segments WHERE series = $1 AND chunk = $2 \
                     AND last >= $3 AND first < $4 ORDER BY rowid",
                )
                .bind(series)
                .bind(chunk)
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool);
                let mut samples = Vec::new();
                for row in Self::timed("scores.range", query).await? {
                    let data: Vec<u8> = row.try_get("data").map_err(fb_sql::corrupt)?;
                    segments::decode_raw_into(&data, &mut samples).map_err(StoreError::Corrupt)?;
                }
                samples.retain(|&(ts, _)| ts >= from && ts < to);
                // Stable: a reading scored twice keeps the score stored first.
                samples.sort_by_key(|&(ts, _)| ts);
                samples.dedup_by_key(|s| s.0);
                let room = q.limit - out.len();
                out.extend(samples.into_iter().take(room).map(|(ts, payload)| {
                    let (score, anomaly) = segments::score_of(payload);
                    ScoredPoint {
                        sensor: sensor.clone(),
                        ts: from_micros(ts),
                        score,
                        anomaly,
                    }
                }));
            }
        }
        Ok(out)
    }
}
