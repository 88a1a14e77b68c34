//! Committing a group of readings batches: segments, then rollups and latest values of exactly
//! the new samples.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use rustc_hash::FxHashMap as HashMap;

use fb_core::ports::{AppendOutcome, Resolution};
use fb_sql::readings::{RollupDeltas, rollup_table};

use super::Append;
use super::sql::{DirtyMarks, SegmentWrites, insert_rows};
use crate::segments::{self, Table, chunk_of};

/// The newest stored time of each series this writer has touched. Samples after it are new
/// without a lookup.
#[derive(Default)]
pub(super) struct Newest {
    by_series: HashMap<i64, i64>,
    /// Pairs this writer marked for merging since the last merge pass.
    pub(super) marked: DirtyMarks,
}

impl Newest {
    fn get(&mut self, tx: &Transaction, series: i64) -> rusqlite::Result<i64> {
        if let Some(ts) = self.by_series.get(&series) {
            return Ok(*ts);
        }
        let stored: Option<i64> = tx
            .prepare_cached(
                "SELECT last FROM segments WHERE series = ?1 ORDER BY chunk DESC, last DESC LIMIT 1",
            )?
            .query_row(params![series], |row| row.get(0))
            .optional()?;
        let ts = stored.unwrap_or(i64::MIN);
        self.by_series.insert(series, ts);
        Ok(ts)
    }

    /// After a failed commit the cache may hold times and marks that were rolled back.
    pub(super) fn clear(&mut self) {
        self.by_series.clear();
        self.marked.clear();
    }
}

/// A row of the group with where it came from: job and position, which also order repeats.
struct Entry {
    ts: i64,
    value: f64,
    job: u32,
    position: u32,
}

/// One transaction for the whole group: new samples as segments, then the rollups and latest
/// values of exactly those. Outcomes come back in the group's order.
pub(super) fn commit(
    conn: &mut Connection,
    group: &[Append],
    newest: &mut Newest,
) -> rusqlite::Result<Vec<AppendOutcome>> {
    // Rows by series, in arrival order. Each series' rows usually arrive in time order already,
    // so most need no sort; the stable sort of the others keeps repeats of a (series, ts) in
    // arrival order, so the first delivery wins.
    let mut by_series: HashMap<i64, Vec<Entry>> = HashMap::default();
    for (job, j) in group.iter().enumerate() {
        for (position, &(series, ts, value)) in j.rows.iter().enumerate() {
            by_series.entry(series).or_default().push(Entry {
                ts,
                value,
                job: job as u32,
                position: position as u32,
            });
        }
    }
    let mut runs: Vec<(i64, Vec<Entry>)> = by_series.into_iter().collect();
    runs.sort_unstable_by_key(|(series, _)| *series);
    for (_, run) in &mut runs {
        if !run.is_sorted_by_key(|e| e.ts) {
            run.sort_by_key(|e| e.ts);
        }
    }

    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcomes = vec![AppendOutcome::default(); group.len()];
    let mut deltas = RollupDeltas::default();
    let mut raised: Vec<(i64, i64)> = Vec::new();
    let mut fresh: Vec<(i64, f64)> = Vec::new();
    let mut writes = SegmentWrites::new(Table::Readings);
    for (series, run) in &runs {
        let series = *series;
        let stored_newest = newest.get(&tx, series)?;
        // Samples up to the newest stored one may be stored already: late data, redeliveries,
        // or batches of concurrent senders arriving out of order. Only the stored times within
        // their span are read.
        let late = run.iter().map(|e| e.ts).filter(|&ts| ts <= stored_newest);
        let stored = match (late.clone().min(), late.max()) {
            (Some(lo), Some(hi)) => stored_times(&tx, series, lo, hi)?,
            _ => Vec::new(),
        };
        // Both the run and the stored times ascend: one merge walk finds the duplicates.
        let mut stored = stored.into_iter().peekable();
        let mut previous: Option<i64> = None;
        for e in run {
            let repeat = previous == Some(e.ts);
            previous = Some(e.ts);
            while stored.next_if(|&ts| ts < e.ts).is_some() {}
            let outcome = &mut outcomes[e.job as usize];
            if repeat || stored.peek() == Some(&e.ts) {
                outcome.duplicates += 1;
                outcome.duplicate_samples.push(e.position);
            } else {
                outcome.inserted += 1;
                deltas.add(series, e.ts, e.value);
                fresh.push((e.ts, e.value));
            }
        }
        // Late samples get segments of their own, so that the segments of data arriving in
        // order stay disjoint and late checks of later groups read only what they overlap.
        let (late, in_order) =
            fresh.split_at(fresh.partition_point(|&(ts, _)| ts <= stored_newest));
        for part in [late, in_order] {
            for piece in part.chunk_by(|a, b| chunk_of(a.0) == chunk_of(b.0)) {
                writes.add(series, piece, &mut newest.marked);
            }
        }
        if let Some(&(last, _)) = fresh.last()
            && last > stored_newest
        {
            raised.push((series, last));
        }
        fresh.clear();
    }
    writes.write(&tx)?;
    for resolution in [Resolution::Minute, Resolution::Hour] {
        let t = rollup_table(resolution);
        let mut values = Vec::new();
        for ((series, bucket), a) in deltas.buckets(resolution) {
            values.extend([
                Value::Integer(series),
                Value::Integer(bucket),
                Value::Integer(a.count),
                Value::Real(a.min),
                Value::Real(a.max),
                Value::Real(a.sum),
            ]);
        }
        insert_rows(
            &tx,
            &format!("INSERT INTO {t} (series, bucket, count, min, max, sum) VALUES"),
            &format!(
                "ON CONFLICT (series, bucket) DO UPDATE SET count = {t}.count + excluded.count, \
                 min = min({t}.min, excluded.min), max = max({t}.max, excluded.max), \
                 sum = {t}.sum + excluded.sum"
            ),
            6,
            values,
        )?;
    }
    let mut values = Vec::new();
    for (series, (ts, value)) in deltas.latest() {
        values.extend([
            Value::Integer(series),
            Value::Integer(ts),
            Value::Real(value),
        ]);
    }
    insert_rows(
        &tx,
        "INSERT INTO latest (series, ts, value) VALUES",
        "ON CONFLICT (series) DO UPDATE SET ts = excluded.ts, value = excluded.value \
         WHERE excluded.ts > latest.ts",
        3,
        values,
    )?;
    tx.commit()?;
    for (series, ts) in raised {
        newest.by_series.insert(series, ts);
    }
    for outcome in &mut outcomes {
        outcome.duplicate_samples.sort_unstable();
    }
    Ok(outcomes)
}

/// The times stored for a series between `lo` and `hi` (inclusive), ascending.
fn stored_times(tx: &Transaction, series: i64, lo: i64, hi: i64) -> rusqlite::Result<Vec<i64>> {
    let mut select = tx.prepare_cached(
        "SELECT data FROM segments WHERE series = ?1 AND chunk BETWEEN ?2 AND ?3 \
         AND last >= ?4 AND first <= ?5",
    )?;
    let mut rows = select.query(params![series, chunk_of(lo), chunk_of(hi), lo, hi])?;
    let mut samples = Vec::new();
    while let Some(row) = rows.next()? {
        let data = row.get_ref(0)?.as_blob()?;
        segments::decode_into(data, &mut samples).map_err(super::corrupt)?;
    }
    let mut times: Vec<i64> = samples
        .into_iter()
        .map(|(ts, _)| ts)
        .filter(|ts| (lo..=hi).contains(ts))
        .collect();
    times.sort_unstable();
    Ok(times)
}
