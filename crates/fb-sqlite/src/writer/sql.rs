//! Writing many rows with few statements.

use rusqlite::Transaction;
use rusqlite::types::Value;

use crate::segments::{self, RawSample, Table, chunk_of};

/// Segments and merge marks a transaction is about to write, inserted many rows per statement
/// (executing a statement costs far more than one more row in it).
pub(super) struct SegmentWrites {
    table: Table,
    segments: Vec<Value>,
    dirty: Vec<Value>,
}

impl SegmentWrites {
    pub(super) fn new(table: Table) -> Self {
        Self {
            table,
            segments: Vec::new(),
            dirty: Vec::new(),
        }
    }

    /// Readings of one series and hour (sorted by time, none stored before) as a segment; the
    /// hour is marked for merging unless `marked` says it is already.
    pub(super) fn add(&mut self, series: i64, samples: &[(i64, f64)], marked: &mut DirtyMarks) {
        if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
            let data = segments::encode(samples);
            self.add_encoded(series, (first.0, last.0), samples.len(), data, marked);
        }
    }

    /// Samples in their stored form (sorted by time), for any table.
    pub(super) fn add_raw(&mut self, series: i64, samples: &[RawSample], marked: &mut DirtyMarks) {
        if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
            let data = segments::encode_raw(samples);
            self.add_encoded(series, (first.0, last.0), samples.len(), data, marked);
        }
    }

    fn add_encoded(
        &mut self,
        series: i64,
        (first, last): (i64, i64),
        count: usize,
        data: Vec<u8>,
        marked: &mut DirtyMarks,
    ) {
        let chunk = chunk_of(first);
        self.segments.extend([
            Value::Integer(series),
            Value::Integer(chunk),
            Value::Integer(first),
            Value::Integer(last),
            Value::Integer(count as i64),
            Value::Blob(data),
        ]);
        if marked.insert((series, chunk)) {
            self.dirty
                .extend([Value::Integer(series), Value::Integer(chunk)]);
        }
    }

    pub(super) fn write(self, tx: &Transaction) -> rusqlite::Result<()> {
        insert_rows(
            tx,
            &format!(
                "INSERT INTO {} (series, chunk, first, last, count, data) VALUES",
                self.table.name()
            ),
            "",
            6,
            self.segments,
        )?;
        insert_rows(
            tx,
            "INSERT OR IGNORE INTO segment_dirty (series, chunk) VALUES",
            "",
            2,
            self.dirty,
        )
    }
}

/// (series, hour) pairs known to be marked for merging (so not marked again).
pub(super) type DirtyMarks = rustc_hash::FxHashSet<(i64, i64)>;

/// Rows per multi-row statement: 64 × at most 6 parameters, far below SQLite's limit.
const ROWS_PER_STATEMENT: usize = 64;

/// `{head} (?, …), (?, …) {tail}` for `values` (row-major, `width` per row), in statements of up
/// to `ROWS_PER_STATEMENT` rows.
pub(super) fn insert_rows(
    tx: &Transaction,
    head: &str,
    tail: &str,
    width: usize,
    values: Vec<Value>,
) -> rusqlite::Result<()> {
    let rows = values.len() / width;
    let mut values = values.into_iter();
    let mut done = 0;
    while done < rows {
        let n = (rows - done).min(ROWS_PER_STATEMENT);
        let row = format!("({})", vec!["?"; width].join(","));
        let sql = format!("{head} {} {tail}", vec![row; n].join(","));
        tx.prepare_cached(&sql)?
            .execute(rusqlite::params_from_iter(values.by_ref().take(n * width)))?;
        done += n;
    }
    Ok(())
}
