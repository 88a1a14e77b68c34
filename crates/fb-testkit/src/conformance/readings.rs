use time::{Duration, OffsetDateTime};

use fb_core::plant::{MachineId, Reading, ReadingBatch, SensorKey};
use fb_core::ports::{AppendOutcome, RangeQuery, ReadingStore, Resolution, Storage, StoreError};

async fn append(
    store: &dyn ReadingStore,
    readings: &[Reading],
) -> Result<AppendOutcome, StoreError> {
    store
        .append_readings(&ReadingBatch::from_readings(readings))
        .await
}

/// A recent instant on a whole hour (readings stores may partition by day around "now").
fn base() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc() - Duration::days(2);
    now.replace_time(time::Time::from_hms(10, 0, 0).unwrap_or(time::Time::MIDNIGHT))
}

fn reading(machine: &str, sensor: &str, at: OffsetDateTime, value: f64) -> Reading {
    Reading {
        machine: MachineId(machine.into()),
        sensor: SensorKey(sensor.into()),
        ts: at,
        value,
    }
}

fn range(
    machine: &str,
    sensor: Option<&str>,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> RangeQuery {
    RangeQuery {
        machine: MachineId(machine.into()),
        sensor: sensor.map(|s| SensorKey(s.into())),
        from,
        to,
        limit: 10_000,
    }
}

pub async fn appends_are_idempotent_and_first_value_wins(storage: &Storage) {
    let store = &storage.readings;
    let t = base();
    let batch = vec![
        reading("m1", "temp", t, 20.0),
        reading("m1", "temp", t + Duration::seconds(1), 21.0),
        reading("m1", "vib", t, 1.5),
    ];
    assert_eq!(
        append(&**store, &batch).await.unwrap(),
        AppendOutcome {
            inserted: 3,
            duplicates: 0,
            duplicate_samples: vec![],
        }
    );
    let again = vec![
        reading("m1", "temp", t, 99.0),
        reading("m1", "temp", t + Duration::seconds(2), 22.0),
    ];
    assert_eq!(
        append(&**store, &again).await.unwrap(),
        AppendOutcome {
            inserted: 1,
            duplicates: 1,
            duplicate_samples: vec![0],
        }
    );
    let raw = store
        .raw_readings(&range("m1", Some("temp"), t, t + Duration::minutes(1)))
        .await
        .unwrap();
    let values: Vec<f64> = raw.iter().map(|r| r.value).collect();
    assert_eq!(
        values,
        [20.0, 21.0, 22.0],
        "the first value of a duplicate is kept"
    );
    assert_eq!(
        append(&**store, &[]).await.unwrap(),
        AppendOutcome::default()
    );
}

pub async fn repeats_within_a_batch_count_once(storage: &Storage) {
    let store = &storage.readings;
    let t = base();
    let batch = vec![
        reading("m8", "x", t, 1.0),
        reading("m8", "x", t, 2.0),
        reading("m8", "x", t + Duration::seconds(1), 3.0),
    ];
    assert_eq!(
        append(&**store, &batch).await.unwrap(),
        AppendOutcome {
            inserted: 2,
            duplicates: 1,
            duplicate_samples: vec![1],
        }
    );
    let q = range("m8", Some("x"), t, t + Duration::minutes(1));
    let raw = store.raw_readings(&q).await.unwrap();
    assert_eq!(raw.iter().map(|r| r.value).collect::<Vec<_>>(), [1.0, 3.0]);
    let minutes = store.rollup_readings(&q, Resolution::Minute).await.unwrap();
    assert_eq!(
        minutes.iter().map(|b| (b.count, b.sum)).collect::<Vec<_>>(),
        [(2, 4.0)]
    );
}

pub async fn raw_ranges_are_half_open_ordered_and_limited(storage: &Storage) {
    let store = &storage.readings;
    let t = base();
    let batch: Vec<Reading> = (0..10)
        .flat_map(|i| {
            let at = t + Duration::seconds(i * 10);
            [
                reading("m2", "b", at, i as f64),
                reading("m2", "a", at, -(i as f64)),
            ]
        })
        .collect();
    append(&**store, &batch).await.unwrap();
    let q = range(
        "m2",
        None,
        t + Duration::seconds(10),
        t + Duration::seconds(50),
    );
    let raw = store.raw_readings(&q).await.unwrap();
    let seen: Vec<(String, f64)> = raw.iter().map(|r| (r.sensor.0.clone(), r.value)).collect();
    assert_eq!(
        seen,
        [
            ("a", -1.0),
            ("a", -2.0),
            ("a", -3.0),
            ("a", -4.0),
            ("b", 1.0),
            ("b", 2.0),
            ("b", 3.0),
            ("b", 4.0)
        ]
        .map(|(s, v)| (s.to_owned(), v))
    );
    assert_eq!(
        raw[0].ts,
        t + Duration::seconds(10),
        "from is inclusive, to exclusive"
    );
    let limited = store
        .raw_readings(&RangeQuery {
            limit: 3,
            ..q.clone()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 3);
    assert!(
        store
            .raw_readings(&range("other", None, t, t + Duration::hours(1)))
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn rollups_follow_appends_without_double_counting(storage: &Storage) {
    let store = &storage.readings;
    let t = base();
    // Minute 0: 1, 2, 3; minute 1: 10; an hour later: 100.
    let batch = vec![
        reading("m3", "p", t, 1.0),
        reading("m3", "p", t + Duration::seconds(20), 2.0),
        reading("m3", "p", t + Duration::seconds(40), 3.0),
        reading("m3", "p", t + Duration::seconds(70), 10.0),
        reading("m3", "p", t + Duration::minutes(61), 100.0),
    ];
    append(&**store, &batch).await.unwrap();
    // A redelivery of part of the batch plus one new reading in minute 0.
    let redelivered = vec![
        batch[0].clone(),
        batch[3].clone(),
        reading("m3", "p", t + Duration::seconds(50), 4.0),
    ];
    assert_eq!(
        append(&**store, &redelivered).await.unwrap(),
        AppendOutcome {
            inserted: 1,
            duplicates: 2,
            duplicate_samples: vec![0, 1],
        }
    );

    let q = range("m3", Some("p"), t, t + Duration::hours(2));
    let minutes = store.rollup_readings(&q, Resolution::Minute).await.unwrap();
    let summary: Vec<(i64, u64, f64, f64, f64)> = minutes
        .iter()
        .map(|b| ((b.start - t).whole_minutes(), b.count, b.min, b.max, b.sum))
        .collect();
    assert_eq!(
        summary,
        [
            (0, 4, 1.0, 4.0, 10.0),
            (1, 1, 10.0, 10.0, 10.0),
            (61, 1, 100.0, 100.0, 100.0)
        ]
    );
    let hours = store.rollup_readings(&q, Resolution::Hour).await.unwrap();
    let summary: Vec<(i64, u64, f64)> = hours
        .iter()
        .map(|b| ((b.start - t).whole_hours(), b.count, b.sum))
        .collect();
    assert_eq!(summary, [(0, 5, 20.0), (1, 1, 100.0)]);
}

pub async fn latest_values_track_the_newest_stored_reading(storage: &Storage) {
    let store = &storage.readings;
    let t = base();
    append(
        &**store,
        &[
            reading("m4", "t", t, 1.0),
            reading("m4", "t", t + Duration::seconds(5), 2.0),
            reading("m4", "s", t, 7.0),
        ],
    )
    .await
    .unwrap();
    // Late data older than the latest does not replace it; a duplicate of the latest changes nothing.
    append(
        &**store,
        &[
            reading("m4", "t", t - Duration::minutes(1), 0.5),
            reading("m4", "t", t + Duration::seconds(5), 99.0),
        ],
    )
    .await
    .unwrap();
    let latest = store
        .latest_readings(&MachineId("m4".into()))
        .await
        .unwrap();
    let seen: Vec<(String, f64)> = latest
        .iter()
        .map(|r| (r.sensor.0.clone(), r.value))
        .collect();
    assert_eq!(seen, [("s".to_owned(), 7.0), ("t".to_owned(), 2.0)]);
    assert_eq!(latest[1].ts, t + Duration::seconds(5));
    assert!(
        store
            .latest_readings(&MachineId("none".into()))
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn readings_span_days_and_keep_microseconds(storage: &Storage) {
    let store = &storage.readings;
    let t = base() - Duration::days(10) + Duration::microseconds(123_456);
    let batch: Vec<Reading> = (0..12)
        .map(|d| reading("m5", "x", t + Duration::days(d), d as f64))
        .collect();
    assert_eq!(append(&**store, &batch).await.unwrap().inserted, 12);
    let raw = store
        .raw_readings(&range("m5", Some("x"), t, t + Duration::days(12)))
        .await
        .unwrap();
    assert_eq!(raw.len(), 12);
    assert_eq!(
        raw[3].ts,
        t + Duration::days(3),
        "microseconds survive the round trip"
    );
}

pub async fn concurrent_appends_to_the_same_series_all_land(storage: &Storage) {
    // Batches for the same sensors committing at once must neither deadlock nor lose counts.
    let t = base();
    let batches: Vec<Vec<Reading>> = (0..4)
        .map(|b| {
            (0..50)
                .flat_map(|i| {
                    let at = t + Duration::seconds(i * 4 + b);
                    [
                        reading("m6", "a", at, 1.0),
                        reading("m6", "b", at, 2.0),
                        reading("m6", "c", at, 3.0),
                    ]
                })
                .collect()
        })
        .collect();
    let store = &storage.readings;
    let (r0, r1, r2, r3) = tokio::join!(
        append(&**store, &batches[0]),
        append(&**store, &batches[1]),
        append(&**store, &batches[2]),
        append(&**store, &batches[3]),
    );
    for r in [r0, r1, r2, r3] {
        assert_eq!(r.unwrap().inserted, 150);
    }
    let q = range("m6", Some("a"), t, t + Duration::hours(1));
    let minutes = store.rollup_readings(&q, Resolution::Minute).await.unwrap();
    assert_eq!(minutes.iter().map(|b| b.count).sum::<u64>(), 200);
}

pub async fn retention_removes_old_raw_data_and_rollups(storage: &Storage) {
    let store = &storage.readings;
    let recent = base();
    let old = recent - Duration::days(20);
    append(
        &**store,
        &[
            reading("m7", "x", old, 1.0),
            reading("m7", "x", recent, 2.0),
        ],
    )
    .await
    .unwrap();
    let cutoff = recent - Duration::days(10);
    let cutoffs = fb_core::ports::RetentionCutoffs {
        raw: Some(cutoff),
        minute: Some(cutoff),
        hour: None,
    };
    let outcome = store.apply_retention(&cutoffs).await.unwrap();
    assert!(outcome.raw_units > 0, "{outcome:?}");
    let q = range(
        "m7",
        Some("x"),
        old - Duration::hours(1),
        recent + Duration::hours(1),
    );
    let raw = store.raw_readings(&q).await.unwrap();
    assert_eq!(raw.iter().map(|r| r.value).collect::<Vec<_>>(), [2.0]);
    let minutes = store.rollup_readings(&q, Resolution::Minute).await.unwrap();
    assert_eq!(minutes.iter().map(|b| b.sum).collect::<Vec<_>>(), [2.0]);
    // Nothing to remove the second time; new data still lands.
    assert_eq!(store.apply_retention(&cutoffs).await.unwrap().raw_units, 0);
    assert_eq!(
        append(
            &**store,
            &[reading("m7", "x", recent + Duration::seconds(1), 3.0)]
        )
        .await
        .unwrap()
        .inserted,
        1
    );
}
