//! Committing the anomaly scores of readings: one score segment per series and hour.

use rusqlite::{Connection, TransactionBehavior};
use rustc_hash::FxHashMap as HashMap;

use super::ScoreRow;
use super::sql::{DirtyMarks, SegmentWrites};
use crate::segments::{RawSample, Table, chunk_of, score_payload};

pub(super) fn commit(
    conn: &mut Connection,
    rows: &[ScoreRow],
    marked: &mut DirtyMarks,
) -> rusqlite::Result<()> {
    let mut by_series: HashMap<i64, Vec<RawSample>> = HashMap::default();
    for &(series, ts, score, anomaly) in rows {
        by_series
            .entry(series)
            .or_default()
            .push((ts, score_payload(score, anomaly)));
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut writes = SegmentWrites::new(Table::Scores);
    for (series, mut samples) in by_series {
        // Stable, so a time scored twice in one batch keeps its first score.
        samples.sort_by_key(|s| s.0);
        for piece in samples.chunk_by(|a, b| chunk_of(a.0) == chunk_of(b.0)) {
            writes.add_raw(series, piece, marked);
        }
    }
    writes.write(&tx)?;
    tx.commit()
}
