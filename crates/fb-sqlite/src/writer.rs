//! The readings writer: one thread that owns one SQLite connection and commits readings batches
//! taken from a bounded queue, several at a time.
//!
//! SQLite has one writer at a time. Concurrent transactions through the pool would only queue
//! on the database lock (and retry on `SQLITE_BUSY`), so ingest funnels into this thread
//! instead, which also lets it merge the batches waiting in the queue into one transaction
//! (group commit: one fsync and one rollup pass for all of them).
//!
//! A group is sorted by (series, time) and written as one segment per series and hour (see
//! `migrations/0005_segments.sql`). De-duplication needs no lookup for the common case: the
//! writer knows the newest stored time of each series, and a sample after it is new; only
//! older samples (late data, redeliveries) are checked against the stored segments of their
//! hour. Rollups then add exactly the new samples. When the queue is empty, segments of closed
//! hours are merged so that queries read few rows.
//!
//! It uses rusqlite rather than sqlx: blocking, prepared statements on a thread of its own, with
//! no per-value argument buffers. Both drivers link the same SQLite library, so they share the
//! file's locks and WAL as any two connections do.

use rustc_hash::FxHashMap as HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};
use tokio::sync::{mpsc, oneshot};

use fb_core::ports::{AppendOutcome, Resolution, StoreError};
use fb_sql::readings::{RollupDeltas, rollup_table};

use crate::BACKEND;
use crate::segments::{self, MAX_SAMPLES, chunk_of};

/// A group commit stops taking queued batches beyond this many rows, so that one transaction
/// (and the latency of the batches in it) stays bounded.
const GROUP_ROWS: usize = 200_000;

/// One row to store: series id, Unix microseconds, value.
pub(crate) type Row = (i64, i64, f64);

enum Job {
    Append {
        rows: Vec<Row>,
        reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
    },
    /// Merge the segments of every closed hour now, rather than a little at a time.
    Compact {
        reply: oneshot::Sender<Result<usize, StoreError>>,
    },
}

/// An append of the group being committed.
struct Append {
    rows: Vec<Row>,
    reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

#[derive(Debug, Clone)]
pub(crate) struct WriterOptions {
    pub path: PathBuf,
    pub busy_timeout: Duration,
    /// Page cache of the writer's connection, in KiB: the index pages of every active series
    /// and the rollup rows being updated should stay cached.
    pub cache_kib: u32,
    /// Batches waiting at most; callers wait for room beyond it.
    pub queue: usize,
}

pub(crate) struct Writer {
    queue: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Writer {
    pub(crate) fn start(options: &WriterOptions) -> Result<Self, StoreError> {
        let mut conn = open(options).map_err(map_err)?;
        convert_legacy_readings(&mut conn).map_err(map_err)?;
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let thread = std::thread::Builder::new()
            .name("fb-sqlite-writer".into())
            .spawn(move || run(conn, rx))
            .map_err(|e| StoreError::Other(Box::new(e)))?;
        Ok(Self {
            queue: std::sync::Mutex::new(Some(tx)),
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// Stores the rows in the next group commit and reports which were already stored.
    pub(crate) async fn append(&self, rows: Vec<Row>) -> Result<AppendOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Append { rows, reply }).await?;
        answer.await.map_err(|_| closed())?
    }

    /// Merges the segments of every hour that ended over an hour ago; returns the (series,
    /// hour) pairs looked at.
    pub(crate) async fn compact(&self) -> Result<usize, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Compact { reply }).await?;
        answer.await.map_err(|_| closed())?
    }

    async fn send(&self, job: Job) -> Result<(), StoreError> {
        let sender = self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(closed)?;
        sender.send(job).await.map_err(|_| closed())
    }

    /// Lets queued batches commit, then stops the thread (waiting at most `bound`).
    pub(crate) async fn close(&self, bound: Duration) {
        drop(self.queue.lock().unwrap_or_else(|p| p.into_inner()).take());
        let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        let joined = tokio::task::spawn_blocking(move || thread.join());
        if tokio::time::timeout(bound, joined).await.is_err() {
            tracing::warn!("The SQLite readings writer did not stop in time.");
        }
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable("the SQLite readings writer has stopped".into())
}

fn open(options: &WriterOptions) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        &options.path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(options.busy_timeout)?;
    // The database is in WAL mode already (set when the pool opened it); this connection only
    // needs its own per-connection settings.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -i64::from(options.cache_kib))?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

/// How often, at most, the writer looks for segments of closed hours to merge.
const COMPACTION_EVERY: Duration = Duration::from_secs(10);
/// (series, hour) pairs merged per pass, so that a pass never holds up ingest for long; a full
/// pass is followed by another at the next idle moment, so a backlog still drains quickly.
const COMPACTION_PAIRS: usize = 16;

fn run(mut conn: Connection, mut queue: mpsc::Receiver<Job>) {
    let mut newest = Newest::default();
    let mut last_compaction = Instant::now();
    let mut backlog = false;
    let mut deferred: Option<Job> = None;
    loop {
        let Some(job) = deferred.take().or_else(|| queue.blocking_recv()) else {
            break;
        };
        let first = match job {
            Job::Append { rows, reply } => Append { rows, reply },
            Job::Compact { reply } => {
                newest.marked.clear();
                let mut looked_at = 0;
                let result = loop {
                    match compact(&mut conn, current_chunk()) {
                        Ok(0) => break Ok(looked_at),
                        Ok(n) => looked_at += n,
                        Err(e) => break Err(map_err(e)),
                    }
                };
                let _ = reply.send(result);
                continue;
            }
        };
        let mut rows = first.rows.len();
        let mut group = vec![first];
        while rows < GROUP_ROWS {
            match queue.try_recv() {
                Ok(Job::Append { rows: more, reply }) => {
                    rows += more.len();
                    group.push(Append { rows: more, reply });
                }
                Ok(other) => {
                    deferred = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let start = Instant::now();
        let result = commit(&mut conn, &group, &mut newest);
        fb_sql::record_query_time(BACKEND, "readings.group_commit", start.elapsed());
        match result {
            Ok(outcomes) => {
                for (job, outcome) in group.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                newest.clear();
                let message = e.to_string();
                let transient = is_transient(&e);
                for job in group {
                    let error = if transient {
                        StoreError::Unavailable(message.clone().into())
                    } else {
                        StoreError::Other(message.clone().into())
                    };
                    let _ = job.reply.send(Err(error));
                }
            }
        }
        let due = backlog || last_compaction.elapsed() >= COMPACTION_EVERY;
        if deferred.is_none() && queue.is_empty() && due {
            last_compaction = Instant::now();
            let start = Instant::now();
            // A pass deletes marks; forget ours so that new segments mark their hour again.
            newest.marked.clear();
            match compact(&mut conn, current_chunk()) {
                Ok(merged) if merged > 0 => {
                    fb_sql::record_query_time(BACKEND, "segments.compact", start.elapsed());
                    tracing::debug!(pairs = merged, "Merged the segments of closed hours.");
                    backlog = merged == COMPACTION_PAIRS;
                }
                Ok(_) => backlog = false,
                Err(e) => {
                    backlog = false;
                    tracing::warn!(error = %e, "Merging segments failed; retrying later.");
                }
            }
        }
    }
}

/// The newest stored time of each series this writer has touched. Samples after it are new
/// without a lookup.
#[derive(Default)]
struct Newest {
    by_series: HashMap<i64, i64>,
    /// Pairs this writer marked for merging since the last merge pass.
    marked: DirtyMarks,
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
    fn clear(&mut self) {
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
fn commit(
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
    let mut writes = SegmentWrites::default();
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
        segments::decode_into(data, &mut samples).map_err(corrupt)?;
    }
    let mut times: Vec<i64> = samples
        .into_iter()
        .map(|(ts, _)| ts)
        .filter(|ts| (lo..=hi).contains(ts))
        .collect();
    times.sort_unstable();
    Ok(times)
}

/// Segments and merge marks a transaction is about to write, inserted many rows per statement
/// (executing a statement costs far more than one more row in it).
#[derive(Default)]
struct SegmentWrites {
    segments: Vec<Value>,
    dirty: Vec<Value>,
}

impl SegmentWrites {
    /// Samples of one series and hour (sorted by time, none stored before) as a segment; the
    /// hour is marked for merging unless `marked` says it is already.
    fn add(&mut self, series: i64, samples: &[(i64, f64)], marked: &mut DirtyMarks) {
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
            return;
        };
        let chunk = chunk_of(first.0);
        self.segments.extend([
            Value::Integer(series),
            Value::Integer(chunk),
            Value::Integer(first.0),
            Value::Integer(last.0),
            Value::Integer(samples.len() as i64),
            Value::Blob(segments::encode(samples)),
        ]);
        if marked.insert((series, chunk)) {
            self.dirty
                .extend([Value::Integer(series), Value::Integer(chunk)]);
        }
    }

    fn write(self, tx: &Transaction) -> rusqlite::Result<()> {
        insert_rows(
            tx,
            "INSERT INTO segments (series, chunk, first, last, count, data) VALUES",
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
type DirtyMarks = rustc_hash::FxHashSet<(i64, i64)>;

/// Rows per multi-row statement: 64 × at most 6 parameters, far below SQLite's limit.
const ROWS_PER_STATEMENT: usize = 64;

/// `{head} (?, …), (?, …) {tail}` for `values` (row-major, `width` per row), in statements of up
/// to `ROWS_PER_STATEMENT` rows.
fn insert_rows(
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

/// The hour chunk of the wall clock.
fn current_chunk() -> i64 {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    chunk_of(micros)
}

/// Merges the segments of (series, hour) pairs that ended over an hour ago into segments of up
/// to `MAX_SAMPLES`. Returns the pairs handled.
fn compact(conn: &mut Connection, now_chunk: i64) -> rusqlite::Result<usize> {
    let pairs: Vec<(i64, i64)> = conn
        .prepare_cached("SELECT series, chunk FROM segment_dirty WHERE chunk < ?1 LIMIT ?2")?
        .query_map(params![now_chunk - 1, COMPACTION_PAIRS as i64], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    for &(series, chunk) in &pairs {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut samples = Vec::new();
        let mut segment_count = 0;
        {
            let mut select =
                tx.prepare_cached("SELECT data FROM segments WHERE series = ?1 AND chunk = ?2")?;
            let mut rows = select.query(params![series, chunk])?;
            while let Some(row) = rows.next()? {
                let data: Vec<u8> = row.get(0)?;
                segments::decode_into(&data, &mut samples).map_err(corrupt)?;
                segment_count += 1;
            }
        }
        let full = samples.len().div_ceil(MAX_SAMPLES);
        if segment_count > full {
            samples.sort_unstable_by_key(|s| s.0);
            tx.prepare_cached("DELETE FROM segments WHERE series = ?1 AND chunk = ?2")?
                .execute(params![series, chunk])?;
            let mut writes = SegmentWrites::default();
            // The pair's mark is deleted below: merged segments need none.
            let mut marked = DirtyMarks::from_iter([(series, chunk)]);
            for piece in samples.chunks(MAX_SAMPLES) {
                writes.add(series, piece, &mut marked);
            }
            writes.write(&tx)?;
        }
        tx.prepare_cached("DELETE FROM segment_dirty WHERE series = ?1 AND chunk = ?2")?
            .execute(params![series, chunk])?;
        tx.commit()?;
    }
    Ok(pairs.len())
}

/// Stores of an earlier version kept a row per reading; their rows become segments (one
/// transaction, so a crash midway leaves the old table as it was).
fn convert_legacy_readings(conn: &mut Connection) -> rusqlite::Result<()> {
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
                    let mut writes = SegmentWrites::default();
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
            let mut writes = SegmentWrites::default();
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

fn corrupt(message: String) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(message.into())
}

/// `SQLITE_BUSY` / `SQLITE_LOCKED` (another writer held the lock past the busy timeout) and
/// a full disk may pass; retrying later can succeed.
fn is_transient(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(
            rusqlite::ErrorCode::DatabaseBusy
                | rusqlite::ErrorCode::DatabaseLocked
                | rusqlite::ErrorCode::DiskFull
        )
    )
}

fn map_err(e: rusqlite::Error) -> StoreError {
    if is_transient(&e) {
        StoreError::Unavailable(Box::new(e))
    } else {
        StoreError::Other(Box::new(e))
    }
}
