//! A batch of valid readings in the compact form that stores and in-process consumers take.
//!
//! Ingest handles hundreds of thousands of readings a second, most of them from a few hundred
//! series. Carrying two id strings per reading would cost two allocations and two string hashes
//! per reading at every step; instead a batch names each series once and its samples refer to
//! it by position.

use std::collections::HashMap;

use time::OffsetDateTime;

use super::{MachineId, Reading, SensorKey};

/// One sensor of one machine.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesName {
    pub machine: MachineId,
    pub sensor: SensorKey,
}

/// Position of a series within its batch; only [`ReadingBatch::add_series`] makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesIdx(u32);

impl SeriesIdx {
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

/// One value of one series at one instant (Unix microseconds, the precision every store keeps).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub series: SeriesIdx,
    pub ts_micros: i64,
    pub value: f64,
}

impl Sample {
    pub fn ts(&self) -> OffsetDateTime {
        from_micros(self.ts_micros)
    }
}

/// The anomaly score detection gave one reading, kept with it (B2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreSample {
    pub series: SeriesIdx,
    pub ts_micros: i64,
    /// In [0, 1].
    pub score: f32,
    pub anomaly: bool,
}

/// Samples of several series, each series named once.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesBatch<S> {
    series: Vec<SeriesName>,
    samples: Vec<S>,
}

/// Readings that passed validation. Within a batch a (series, ts) pair appears at most once when
/// it comes from ingest (which de-duplicates); stores still treat repeats correctly.
pub type ReadingBatch = SeriesBatch<Sample>;

/// Anomaly scores of readings, as detection hands them to the store.
pub type ScoreBatch = SeriesBatch<ScoreSample>;

impl<S> Default for SeriesBatch<S> {
    fn default() -> Self {
        Self {
            series: Vec::new(),
            samples: Vec::new(),
        }
    }
}

impl<S> SeriesBatch<S> {
    pub fn with_capacity(samples: usize) -> Self {
        Self {
            series: Vec::new(),
            samples: Vec::with_capacity(samples),
        }
    }

    /// Names a new series of this batch. The caller keeps track of series it added already.
    pub fn add_series(&mut self, machine: MachineId, sensor: SensorKey) -> SeriesIdx {
        let idx = SeriesIdx(u32::try_from(self.series.len()).unwrap_or(u32::MAX));
        self.series.push(SeriesName { machine, sensor });
        idx
    }

    pub fn push_sample(&mut self, sample: S) {
        self.samples.push(sample);
    }

    pub fn series(&self) -> &[SeriesName] {
        &self.series
    }

    pub fn samples(&self) -> &[S] {
        &self.samples
    }

    /// The series a sample belongs to.
    pub fn name(&self, series: SeriesIdx) -> &SeriesName {
        &self.series[series.get()]
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Drops the samples at the given positions (ascending), e.g. those a store had already.
    pub fn remove_samples(&mut self, ascending: &[u32]) {
        if ascending.is_empty() {
            return;
        }
        let mut drop = ascending.iter().copied().peekable();
        let mut position = 0u32;
        self.samples.retain(|_| {
            let keep = drop.peek() != Some(&position);
            if !keep {
                drop.next();
            }
            position += 1;
            keep
        });
    }
}

impl ReadingBatch {
    pub fn push(&mut self, series: SeriesIdx, ts_micros: i64, value: f64) {
        self.samples.push(Sample {
            series,
            ts_micros,
            value,
        });
    }

    /// Every sample as a self-contained [`Reading`] (allocates two strings each: for tests,
    /// answers and small batches, not the ingest path).
    pub fn readings(&self) -> impl Iterator<Item = Reading> + '_ {
        self.samples.iter().map(|s| {
            let name = self.name(s.series);
            Reading {
                machine: name.machine.clone(),
                sensor: name.sensor.clone(),
                ts: s.ts(),
                value: s.value,
            }
        })
    }

    /// Builds a batch from readings, naming each series once (sub-microsecond digits dropped).
    pub fn from_readings(readings: &[Reading]) -> Self {
        let mut batch = Self::with_capacity(readings.len());
        let mut known: HashMap<(&MachineId, &SensorKey), SeriesIdx> = HashMap::new();
        for r in readings {
            let idx = *known
                .entry((&r.machine, &r.sensor))
                .or_insert_with(|| batch.add_series(r.machine.clone(), r.sensor.clone()));
            batch.push(idx, to_micros(r.ts), r.value);
        }
        batch
    }
}

/// Microseconds since the Unix epoch (sub-microsecond digits dropped).
pub fn to_micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000)).unwrap_or(i64::MAX)
}

/// The instant `micros` after the Unix epoch (the epoch itself if out of range).
pub fn from_micros(micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(machine: &str, sensor: &str, secs: i64, value: f64) -> Reading {
        Reading {
            machine: MachineId(machine.into()),
            sensor: SensorKey(sensor.into()),
            ts: OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH),
            value,
        }
    }

    #[test]
    fn names_each_series_once_and_round_trips() {
        let readings = vec![
            reading("m1", "t", 10, 1.0),
            reading("m1", "v", 10, 2.0),
            reading("m1", "t", 11, 3.0),
            reading("m2", "t", 10, 4.0),
        ];
        let batch = ReadingBatch::from_readings(&readings);
        assert_eq!(batch.series().len(), 3);
        assert_eq!(batch.len(), 4);
        assert_eq!(batch.samples()[2].series, batch.samples()[0].series);
        assert_eq!(batch.readings().collect::<Vec<_>>(), readings);
    }

    #[test]
    fn removes_samples_by_position() {
        let readings: Vec<_> = (0..6).map(|i| reading("m", "t", i, i as f64)).collect();
        let mut batch = ReadingBatch::from_readings(&readings);
        batch.remove_samples(&[0, 3, 5]);
        let left: Vec<f64> = batch.samples().iter().map(|s| s.value).collect();
        assert_eq!(left, vec![1.0, 2.0, 4.0]);
        batch.remove_samples(&[]);
        assert_eq!(batch.len(), 3);
    }

    #[test]
    fn micros_floor_before_the_epoch() {
        let t =
            OffsetDateTime::from_unix_timestamp_nanos(-1_500).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(to_micros(t), -2);
        assert_eq!(
            from_micros(to_micros(OffsetDateTime::UNIX_EPOCH)),
            OffsetDateTime::UNIX_EPOCH
        );
    }
}
