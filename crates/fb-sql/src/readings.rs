//! Backend-neutral pieces of the readings stores: time encoding and rollup aggregation.

use std::collections::HashMap;

use time::OffsetDateTime;

/// Microseconds since the Unix epoch: the precision every store keeps.
pub fn to_micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

pub fn from_micros(micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

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

/// Aggregates `(series, ts_micros, value)` rows into `(series, bucket start) → Aggregate`.
pub fn aggregate(rows: &[(i64, i64, f64)], bucket_secs: i64) -> HashMap<(i64, i64), Aggregate> {
    let mut buckets: HashMap<(i64, i64), Aggregate> = HashMap::new();
    for &(series, ts, value) in rows {
        buckets
            .entry((series, bucket_start(ts, bucket_secs)))
            .and_modify(|a| a.add(value))
            .or_insert_with(|| Aggregate::of(value));
    }
    buckets
}

/// The newest `(ts, value)` per series in a batch.
pub fn newest(rows: &[(i64, i64, f64)]) -> HashMap<i64, (i64, f64)> {
    let mut newest: HashMap<i64, (i64, f64)> = HashMap::new();
    for &(series, ts, value) in rows {
        let slot = newest.entry(series).or_insert((ts, value));
        if ts > slot.0 {
            *slot = (ts, value);
        }
    }
    newest
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
    fn aggregates_per_series_and_bucket() {
        let rows = [
            (1, 0, 2.0),
            (1, 30_000_000, 4.0),
            (1, 61_000_000, 10.0),
            (2, 0, -1.0),
        ];
        let a = aggregate(&rows, 60);
        assert_eq!(
            a[&(1, 0)],
            Aggregate {
                count: 2,
                min: 2.0,
                max: 4.0,
                sum: 6.0
            }
        );
        assert_eq!(a[&(1, 60)].count, 1);
        assert_eq!(a[&(2, 0)].min, -1.0);
        assert_eq!(newest(&rows)[&1], (61_000_000, 10.0));
    }

    #[test]
    fn micros_round_trip() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_123_456_000).unwrap();
        assert_eq!(from_micros(to_micros(t)), t);
    }
}
