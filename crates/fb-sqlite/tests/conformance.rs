//! The storage conformance suite on SQLite: each case gets a fresh database file.

// Test code: a failed expectation should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use fb_core::plant::{MachineId, Reading, SensorKey};
use fb_core::ports::{RangeQuery, ReadingStore, Resolution, Storage, StoreHealth};
use fb_sqlite::{Location, Options, SqliteStore};

struct Fixture {
    storage: Storage,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn finish(self) {
        self.storage.health.close().await;
    }
}

async fn open() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        location: Location::File(dir.path().join("factorybrain.db")),
        max_connections: 4,
        busy_timeout: Duration::from_secs(5),
        acquire_timeout: Duration::from_secs(5),
        writer_cache_kib: 8 * 1024,
        writer_queue: 8,
    };
    let store = SqliteStore::open(&options).await.unwrap();
    Fixture {
        storage: Storage::from_backend(Arc::new(store)),
        _dir: dir,
    }
}

fb_testkit::storage_conformance!();

#[tokio::test]
async fn reopening_applies_no_migration_twice_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        location: Location::File(dir.path().join("factorybrain.db")),
        max_connections: 2,
        busy_timeout: Duration::from_secs(5),
        acquire_timeout: Duration::from_secs(5),
        writer_cache_kib: 8 * 1024,
        writer_queue: 8,
    };
    let store = SqliteStore::open(&options).await.unwrap();
    let storage = Storage::from_backend(Arc::new(store));
    let user = fb_testkit::fixtures::user("keeper", fb_core::identity::Role::Viewer);
    storage.identities.insert_user(&user).await.unwrap();
    storage.health.close().await;

    let reopened = Storage::from_backend(Arc::new(SqliteStore::open(&options).await.unwrap()));
    assert_eq!(
        reopened.identities.user_by_id(user.id).await.unwrap(),
        Some(user)
    );
}

fn options_in(dir: &std::path::Path) -> Options {
    Options {
        location: Location::File(dir.join("factorybrain.db")),
        max_connections: 2,
        busy_timeout: Duration::from_secs(5),
        acquire_timeout: Duration::from_secs(5),
        writer_cache_kib: 8 * 1024,
        writer_queue: 8,
    }
}

fn readings(at: &[(time::OffsetDateTime, f64)]) -> fb_core::plant::ReadingBatch {
    let readings: Vec<Reading> = at
        .iter()
        .map(|&(ts, value)| Reading {
            machine: MachineId("m".into()),
            sensor: SensorKey("x".into()),
            ts,
            value,
        })
        .collect();
    fb_core::plant::ReadingBatch::from_readings(&readings)
}

fn hour_query(from: time::OffsetDateTime) -> RangeQuery {
    RangeQuery {
        machine: MachineId("m".into()),
        sensor: None,
        from,
        to: from + time::Duration::hours(1),
        limit: 1000,
    }
}

fn count(dir: &std::path::Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(dir.join("factorybrain.db")).unwrap();
    conn.query_row(sql, [], |row| row.get(0)).unwrap()
}

/// A whole hour a few hours ago, so that its segments count as closed.
fn closed_hour() -> time::OffsetDateTime {
    let t = time::OffsetDateTime::now_utc() - time::Duration::hours(3);
    t.replace_time(time::Time::from_hms(t.hour(), 0, 0).unwrap())
}

#[tokio::test]
async fn segments_of_closed_hours_merge_and_still_de_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&options_in(dir.path())).await.unwrap();
    let t = closed_hour();
    let at = |s: i64| t + time::Duration::seconds(s);
    // Three writes, the last one older than what is stored (the slow de-duplication path).
    for range in [0..10, 20..30, 10..20] {
        let batch: Vec<_> = range.map(|s| (at(s), s as f64)).collect();
        assert_eq!(
            store
                .append_readings(&readings(&batch))
                .await
                .unwrap()
                .inserted,
            10
        );
    }
    assert_eq!(count(dir.path(), "SELECT count(*) FROM segments"), 3);

    assert_eq!(store.compact_segments().await.unwrap(), 1);
    assert_eq!(count(dir.path(), "SELECT count(*) FROM segments"), 1);
    assert_eq!(count(dir.path(), "SELECT count(*) FROM segment_dirty"), 0);
    let raw = store.raw_readings(&hour_query(t)).await.unwrap();
    let values: Vec<f64> = raw.iter().map(|r| r.value).collect();
    assert_eq!(values, (0..30).map(|s| s as f64).collect::<Vec<_>>());

    let again = store
        .append_readings(&readings(&[(at(5), 99.0), (at(30), 30.0)]))
        .await
        .unwrap();
    assert_eq!((again.inserted, again.duplicate_samples), (1, vec![0]));
    let minutes = store
        .rollup_readings(&hour_query(t), Resolution::Minute)
        .await
        .unwrap();
    assert_eq!(minutes.iter().map(|b| b.count).sum::<u64>(), 31);
    store.close().await;
}

#[tokio::test]
async fn stores_with_a_row_per_reading_are_converted_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let t = closed_hour();
    let store = SqliteStore::open(&options_in(dir.path())).await.unwrap();
    store.append_readings(&readings(&[(t, 1.0)])).await.unwrap();
    store.close().await;
    // The table of the previous version, as its migration made it, with readings in it.
    {
        let conn = rusqlite::Connection::open(dir.path().join("factorybrain.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE readings (chunk INTEGER NOT NULL, series INTEGER NOT NULL, \
             ts INTEGER NOT NULL, value REAL NOT NULL, PRIMARY KEY (chunk, series, ts)) STRICT, WITHOUT ROWID",
        )
        .unwrap();
        let series: i64 = conn
            .query_row("SELECT id FROM series", [], |row| row.get(0))
            .unwrap();
        for s in 1..4i64 {
            let ts = (t.unix_timestamp() + s) * 1_000_000;
            conn.execute(
                "INSERT INTO readings VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![ts.div_euclid(3_600_000_000), series, ts, s as f64 + 1.0],
            )
            .unwrap();
        }
    }
    let store = SqliteStore::open(&options_in(dir.path())).await.unwrap();
    let raw = store.raw_readings(&hour_query(t)).await.unwrap();
    assert_eq!(
        raw.iter().map(|r| r.value).collect::<Vec<_>>(),
        [1.0, 2.0, 3.0, 4.0]
    );
    assert_eq!(
        count(
            dir.path(),
            "SELECT count(*) FROM sqlite_master WHERE name = 'readings'"
        ),
        0
    );
    store.close().await;
}

/// The writers of one process take turns instead of meeting in SQLite's busy handler: with no
/// busy timeout at all, readings commits on the writer thread and registry, health and alert
/// writes through the pool, all at once, never see "database is locked".
#[tokio::test]
async fn writers_of_one_process_never_see_the_lock_taken() {
    use fb_core::ports::{AlertStore, MachineStore};

    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        busy_timeout: Duration::ZERO,
        ..options_in(dir.path())
    };
    let store = Arc::new(SqliteStore::open(&options).await.unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    let start = closed_hour();
    for writer in 0..4i64 {
        let store = store.clone();
        tasks.spawn(async move {
            for i in 0..50i64 {
                let at = start + time::Duration::seconds(writer * 1000 + i);
                store
                    .append_readings(&readings(&[(at, i as f64)]))
                    .await
                    .map_err(|e| format!("readings: {e}"))?;
            }
            Ok::<(), String>(())
        });
    }
    for writer in 0..4 {
        let store = store.clone();
        tasks.spawn(async move {
            let machine = fb_testkit::fixtures::machine(&format!("turns-{writer}"));
            store
                .insert_machine(&machine)
                .await
                .map_err(|e| format!("machine: {e}"))?;
            for i in 0..50 {
                store
                    .set_machine_health(&machine.id, f64::from(i), fb_testkit::fixtures::instant())
                    .await
                    .map_err(|e| format!("health: {e}"))?;
                let mut alert = fb_testkit::fixtures::alert(
                    &machine.id.0,
                    fb_core::alerts::AlertKind::Overheating,
                    fb_core::detection::Severity::Warning,
                );
                // One active alert per machine and kind: the rest are history.
                alert.status = fb_core::alerts::AlertStatus::Resolved;
                store
                    .insert_alert(&alert)
                    .await
                    .map_err(|e| format!("alert: {e}"))?;
            }
            Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    Storage::from_backend(store).health.close().await;
}

/// Commits never checkpoint (every connection has `wal_autocheckpoint = 0`); the store's own
/// thread copies the log into the database file.
#[tokio::test]
async fn the_checkpoint_thread_copies_the_log_into_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&options_in(dir.path())).await.unwrap();
    let file = dir.path().join("factorybrain.db");
    let before = std::fs::metadata(&file).unwrap().len();
    let t = closed_hour();
    let batch: Vec<_> = (0..20_000)
        .map(|s| (t + time::Duration::milliseconds(s * 100), s as f64))
        .collect();
    store.append_readings(&readings(&batch)).await.unwrap();
    let mut grown = false;
    for _ in 0..100 {
        if std::fs::metadata(&file).unwrap().len() > before {
            grown = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(grown, "the database file never received the logged pages");
    Storage::from_backend(Arc::new(store)).health.close().await;
}

#[tokio::test]
async fn the_audit_log_refuses_changes_in_the_database_too() {
    use fb_core::ports::AuditStore;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&options_in(dir.path())).await.unwrap();
    let entry = fb_testkit::fixtures::audit_entry(
        "user:alice",
        "user.disable",
        None,
        fb_core::audit::Outcome::Success,
    );
    let record = store.append_audit(&entry).await.unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("factorybrain.db")).unwrap();
    for sql in [
        "UPDATE audit_log SET actor = 'user:mallory'",
        "DELETE FROM audit_log",
        "DELETE FROM audit_head",
        "UPDATE audit_head SET seq = 0",
    ] {
        let refused = conn.execute(sql, []).unwrap_err().to_string();
        assert!(
            refused.contains("append-only")
                || refused.contains("cannot be deleted")
                || refused.contains("cannot move back"),
            "{sql}: {refused}"
        );
    }
    assert_eq!(store.scan_audit(0, 10).await.unwrap(), [Ok(record.clone())]);
    assert_eq!(store.audit_head().await.unwrap(), Some(record.as_head()));
    let next = store.append_audit(&entry).await.unwrap();
    assert_eq!((next.seq, next.prev_hash), (2, record.hash));
    store.close().await;
}
