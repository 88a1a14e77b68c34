//! Backend-neutral pieces of the readings stores: time encoding and rollup aggregation.

use rustc_hash::FxHashMap;

use time::OffsetDateTime;

pub use fb_core::plant::{from_micros, to_micros};

/// The table holding a rollup resolution.
pub fn rollup_table(resolution: fb_core::ports::Resolution) -> &'static str {
    match resolution {
        fb_core::ports::Resolution::Minute => "rollup_minute",
        fb_core::ports::Resolution::Hour => "rollup_hour",
    }
}

/// RFC 3339 text of an instant, e.g. for partition bounds in DDL.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The start (Unix seconds) of the `bucket_secs` bucket holding `micros`.
pub fn bucket_start(micros: i64, bucket_secs: i64) -> i64 {
    micros.div_euclid(1_000_000).div_euclid(bucket_secs) * bucket_secs
}

/// Count, min, max and sum of a set of values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aggregate {
    pub count: i64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
}

impl Aggregate {
    fn of(value: f64) -> Self {
        Self {
            count: 1,
            min: value,
            max: value,
            sum: value,
        }
    }

    fn add(&mut self, value: f64) {
        self.count += 1;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sum += value;
    }
}

/// What a batch adds to the rollups and latest values, accumulated from the rows it inserted.
/// Rows added in (series, time) order hit the bucket touched last and skip the hash lookup.
#[derive(Debug, Default)]
pub struct RollupDeltas {
    minute: Buckets,
    hour: Buckets,
    latest: FxHashMap<i64, (i64, f64)>,
}

#[derive(Debug, Default)]
struct Buckets {
    slots: Vec<((i64, i64), Aggregate)>,
    index: FxHashMap<(i64, i64), usize>,
}

impl Buckets {
    fn add(&mut self, key: (i64, i64), value: f64) {
        if let Some((last, aggregate)) = self.slots.last_mut()
            && *last == key
        {
            aggregate.add(value);
            return;
        }
        match self.index.get(&key) {
            Some(&slot) => self.slots[slot].1.add(value),
            None => {
                self.index.insert(key, self.slots.len());
                self.slots.push((key, Aggregate::of(value)));
            }
        }
    }
}

impl RollupDeltas {
    /// Counts one newly inserted row of `series` at `ts` (Unix microseconds).
    pub fn add(&mut self, series: i64, ts: i64, value: f64) {
        self.minute.add((series, bucket_start(ts, 60)), value);
        self.hour.add((series, bucket_start(ts, 3600)), value);
        let slot = self.latest.entry(series).or_insert((ts, value));
        if ts > slot.0 {
            *slot = (ts, value);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// `((series, bucket start), aggregate)` in key order: concurrent writers that upsert in
    /// the same order take row locks in the same order and cannot deadlock.
    pub fn buckets(&self, resolution: fb_core::ports::Resolution) -> Vec<((i64, i64), Aggregate)> {
        let buckets = match resolution {
            fb_core::ports::Resolution::Minute => &self.minute,
            fb_core::ports::Resolution::Hour => &self.hour,
        };
        let mut out = buckets.slots.clone();
        out.sort_unstable_by_key(|(key, _)| *key);
        out
    }

    /// `(series, (ts, value))` of the newest inserted row per series, in series order.
    pub fn latest(&self) -> Vec<(i64, (i64, f64))> {
        let mut out: Vec<_> = self.latest.iter().map(|(s, l)| (*s, *l)).collect();
        out.sort_unstable_by_key(|(series, _)| *series);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_floor_including_before_the_epoch() {
        assert_eq!(bucket_start(59_999_999, 60), 0);
        assert_eq!(bucket_start(60_000_000, 60), 60);
        assert_eq!(bucket_start(-1, 60), -60);
    }

    #[test]
    fn deltas_per_series_and_bucket() {
        let mut d = RollupDeltas::default();
        for (series, ts, value) in [
            (1, 0, 2.0),
            (1, 30_000_000, 4.0),
            (1, 61_000_000, 10.0),
            (2, 0, -1.0),
        ] {
            d.add(series, ts, value);
        }
        let minutes = d.buckets(fb_core::ports::Resolution::Minute);
        assert_eq!(
            minutes[0],
            (
                (1, 0),
                Aggregate {
                    count: 2,
                    min: 2.0,
                    max: 4.0,
                    sum: 6.0
                }
            )
        );
        assert_eq!(minutes[1].0, (1, 60));
        assert_eq!(minutes[2].1.min, -1.0);
        assert_eq!(d.buckets(fb_core::ports::Resolution::Hour)[0].1.count, 3);
        assert_eq!(d.latest(), vec![(1, (61_000_000, 10.0)), (2, (0, -1.0))]);
    }

    #[test]
    fn micros_round_trip() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_123_456_000).unwrap();
        assert_eq!(from_micros(to_micros(t)), t);
    }
}
