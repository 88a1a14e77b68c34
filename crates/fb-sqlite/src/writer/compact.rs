//! Merging the segments of closed hours, and converting stores of an earlier version.

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::COMPACTION_PAIRS;
use super::sql::{DirtyMarks, SegmentWrites};
use crate::segments::{self, MAX_SAMPLES, RawSample, Table, chunk_of};

/// The hour chunk of the wall clock.
pub(crate) fn current_chunk() -> i64 {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    chunk_of(micros)
}

/// Merges the segments of (series, hour) pairs that ended over an hour ago, readings and scores
/// alike, into segments of up to `MAX_SAMPLES`. Returns the pairs handled.
pub(super) fn compact(conn: &mut Connection, now_chunk: i64) -> rusqlite::Result<usize> {
    let pairs: Vec<(i64, i64)> = conn
        .prepare_cached("SELECT series, chunk FROM segment_dirty WHERE chunk < ?1 LIMIT ?2")?
        .query_map(params![now_chunk - 1, COMPACTION_PAIRS as i64], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    for &(series, chunk) in &pairs {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for table in Table::ALL {
            merge(&tx, table, series, chunk)?;
        }
        tx.prepare_cached("DELETE FROM segment_dirty WHERE series = ?1 AND chunk = ?2")?
            .execute(params![series, chunk])?;
        tx.commit()?;
    }
    Ok(pairs.len())
}

/// Rewrites the segments of one series and hour as few full ones. A time stored twice (scores
/// may be) keeps its first sample.
fn merge(tx: &Transaction, table: Table, series: i64, chunk: i64) -> rusqlite::Result<()> {
    let mut samples: Vec<RawSample> = Vec::new();
    let mut segment_count = 0;
    {
        let mut select = tx.prepare_cached(&format!(
            "SELECT data FROM {} WHERE series = ?1 AND chunk = ?2 ORDER BY rowid",
            table.name()
        ))?;
        let mut rows = select.query(params![series, chunk])?;
        while let Some(row) = rows.next()? {
            let data = row.get_ref(0)?.as_blob()?;
            segments::decode_raw_into(data, &mut samples).map_err(super::corrupt)?;
            segment_count += 1;
        }
    }
    if segment_count <= samples.len().div_ceil(MAX_SAMPLES) {
        return Ok(());
    }
    // Stable: of two samples at one time, the one stored first stays first.
    samples.sort_by_key(|s| s.0);
    samples.dedup_by_key(|s| s.0);
    tx.prepare_cached(&format!(
        "DELETE FROM {} WHERE series = ?1 AND chunk = ?2",
        table.name()
    ))?
    .execute(params![series, chunk])?;
    let mut writes = SegmentWrites::new(table);
    // The caller deletes the pair's mark: merged segments need none.
    let mut marked = DirtyMarks::from_iter([(series, chunk)]);
    for piece in samples.chunks(MAX_SAMPLES) {
        writes.add_raw(series, piece, &mut marked);
    }
    writes.write(tx)
}

/// Stores of an earlier version kept a row per reading; their rows become segments (one
/// transaction, so a crash midway leaves the old table as it was).
pub(super) fn convert_legacy_readings(conn: &mut Connection) -> rusqlite::Result<()> {
    let legacy: Option<String> = conn
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'readings'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    if legacy.is_none() {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut converted = 0usize;
    {
        let mut select =
            tx.prepare("SELECT series, ts, value FROM readings ORDER BY series, chunk, ts")?;
        let mut rows = select.query([])?;
        let mut current: Option<(i64, i64)> = None;
        let mut samples: Vec<(i64, f64)> = Vec::new();
        let mut marked = DirtyMarks::default();
        while let Some(row) = rows.next()? {
            let (series, ts, value): (i64, i64, f64) = (row.get(0)?, row.get(1)?, row.get(2)?);
            let key = (series, chunk_of(ts));
            if current != Some(key) || samples.len() == MAX_SAMPLES {
                if let Some((s, _)) = current {
                    let mut writes = SegmentWrites::new(Table::Readings);
                    writes.add(s, &samples, &mut marked);
                    writes.write(&tx)?;
                }
                samples.clear();
                current = Some(key);
            }
            samples.push((ts, value));
            converted += 1;
        }
        if let Some((s, _)) = current {
            let mut writes = SegmentWrites::new(Table::Readings);
            writes.add(s, &samples, &mut marked);
            writes.write(&tx)?;
        }
    }
    tx.execute("DROP TABLE readings", [])?;
    tx.commit()?;
    tracing::info!(
        readings = converted,
        "Converted stored readings into segments."
    );
    Ok(())
}
