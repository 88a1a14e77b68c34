//! The parts of the readings stores whose SQL is portable: series ids, rollup queries and
//! rollup retention, stamped onto a store by [`sql_series_store!`](crate::sql_series_store).
//! Bulk inserts, raw rows (whose time column differs) and partitions stay in each adapter.

use std::collections::HashMap;
use std::sync::Mutex;

use fb_core::plant::{MachineId, SensorKey, SeriesName};

/// (machine, sensor) → series id, shared by a store's tasks. Series are never deleted, so
/// entries never go stale. Nested by machine so that lookups borrow the batch's names.
#[derive(Debug, Default)]
pub struct SeriesCache {
    machines: Mutex<HashMap<MachineId, HashMap<SensorKey, i64>>>,
}

impl SeriesCache {
    /// The known id of each name, in order.
    pub fn lookup(&self, names: &[SeriesName]) -> Vec<Option<i64>> {
        let machines = self.machines.lock().unwrap_or_else(|p| p.into_inner());
        names
            .iter()
            .map(|n| {
                machines
                    .get(n.machine.0.as_str())
                    .and_then(|sensors| sensors.get(n.sensor.0.as_str()))
                    .copied()
            })
            .collect()
    }

    pub fn insert(&self, name: &SeriesName, id: i64) {
        self.machines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.machine.clone())
            .or_default()
            .insert(name.sensor.clone(), id);
    }
}

/// Implements, as inherent methods of `$store` (which needs a `pool`, an associated `timed`, a
/// `write_turn` and a `series: SeriesCache`): `series_ids`, `series_of`, `rollups_of` and `delete_old_rollups`.
#[macro_export]
macro_rules! sql_series_store {
    ($store:ty) => {
        impl $store {
            /// Series ids for a batch's series, in the batch's order, creating missing ones.
            /// Cached: series change rarely and are never deleted, and every batch needs them.
            async fn series_ids(
                &self,
                names: &[$crate::__private::fb_core::plant::SeriesName],
            ) -> Result<Vec<i64>, $crate::__private::fb_core::ports::StoreError> {
                let mut ids = self.series.lookup(names);
                for (name, slot) in names.iter().zip(ids.iter_mut()) {
                    if slot.is_some() {
                        continue;
                    }
                    let insert = $crate::__private::sqlx::query(
                        "INSERT INTO series (machine_id, sensor_key) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    )
                    .bind(&name.machine.0)
                    .bind(&name.sensor.0)
                    .execute(&self.pool);
                    let turn = self.write_turn().await;
                    Self::timed("series.insert", insert).await?;
                    drop(turn);
                    let select = $crate::__private::sqlx::query_scalar::<_, i64>(
                        "SELECT id FROM series WHERE machine_id = $1 AND sensor_key = $2",
                    )
                    .bind(&name.machine.0)
                    .bind(&name.sensor.0)
                    .fetch_one(&self.pool);
                    let id = Self::timed("series.get", select).await?;
                    self.series.insert(name, id);
                    *slot = Some(id);
                }
                Ok(ids.into_iter().map(|id| id.unwrap_or_default()).collect())
            }

            /// The series of a machine (or one of its sensors), ordered by sensor.
            async fn series_of(
                &self,
                machine: &$crate::__private::fb_core::plant::MachineId,
                sensor: Option<&$crate::__private::fb_core::plant::SensorKey>,
            ) -> Result<Vec<(i64, $crate::__private::fb_core::plant::SensorKey)>, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::sqlx::Row as _;
                let query = $crate::__private::sqlx::query(
                    "SELECT id, sensor_key FROM series WHERE machine_id = $1 \
                     AND (CAST($2 AS TEXT) IS NULL OR sensor_key = $2) ORDER BY sensor_key",
                )
                .bind(&machine.0)
                .bind(sensor.map(|s| s.0.as_str()))
                .fetch_all(&self.pool);
                Self::timed("series.of_machine", query)
                    .await?
                    .iter()
                    .map(|row| {
                        Ok((
                            row.try_get("id").map_err($crate::corrupt)?,
                            $crate::__private::fb_core::plant::SensorKey(row.try_get("sensor_key").map_err($crate::corrupt)?),
                        ))
                    })
                    .collect()
            }

            /// Rollup rows whose bucket starts in the query's range, per sensor then start.
            async fn rollups_of(
                &self,
                q: &$crate::__private::fb_core::ports::RangeQuery,
                resolution: $crate::__private::fb_core::ports::Resolution,
            ) -> Result<Vec<$crate::__private::fb_core::ports::BucketStats>, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                let sql = format!(
                    "SELECT bucket, count, min, max, sum FROM {} WHERE series = $1 AND bucket >= $2 \
                     AND bucket < $3 ORDER BY bucket LIMIT $4",
                    $crate::readings::rollup_table(resolution)
                );
                let mut out = Vec::new();
                for (series, sensor) in self.series_of(&q.machine, q.sensor.as_ref()).await? {
                    if out.len() >= q.limit {
                        break;
                    }
                    let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql.clone()))
                        .bind(series)
                        .bind(q.from.unix_timestamp())
                        .bind(q.to.unix_timestamp())
                        .bind((q.limit - out.len()) as i64)
                        .fetch_all(&self.pool);
                    for row in Self::timed("rollups.range", query).await? {
                        let bucket: i64 = row.try_get("bucket").map_err(corrupt)?;
                        out.push($crate::__private::fb_core::ports::BucketStats {
                            sensor: sensor.clone(),
                            start: $crate::readings::from_micros(bucket * 1_000_000),
                            count: row.try_get::<i64, _>("count").map_err(corrupt)?.max(0) as u64,
                            min: row.try_get("min").map_err(corrupt)?,
                            max: row.try_get("max").map_err(corrupt)?,
                            sum: row.try_get("sum").map_err(corrupt)?,
                        });
                    }
                }
                Ok(out)
            }

            /// Deletes minute and hour rollup rows older than their cut-offs.
            async fn delete_old_rollups(
                &self,
                cutoffs: &$crate::__private::fb_core::ports::RetentionCutoffs,
                outcome: &mut $crate::__private::fb_core::ports::RetentionOutcome,
            ) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                use $crate::__private::fb_core::ports::Resolution;
                for (resolution, cutoff) in [(Resolution::Minute, cutoffs.minute), (Resolution::Hour, cutoffs.hour)] {
                    let Some(cutoff) = cutoff else { continue };
                    let sql = format!("DELETE FROM {} WHERE bucket < $1", $crate::readings::rollup_table(resolution));
                    let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                        .bind(cutoff.unix_timestamp())
                        .execute(&self.pool);
                    let removed = Self::timed("retention.rollups", query).await?.rows_affected();
                    match resolution {
                        Resolution::Minute => outcome.minute_rows = removed,
                        Resolution::Hour => outcome.hour_rows = removed,
                    }
                }
                Ok(())
            }
        }
    };
}
