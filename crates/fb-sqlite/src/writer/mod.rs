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

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use fb_core::ports::{AppendOutcome, StoreError};

use crate::BACKEND;
use crate::turns::WriteTurns;

mod compact;
mod readings;
mod scores;
mod sql;

pub(crate) use compact::current_chunk;
use readings::Newest;

/// A group commit stops taking queued batches beyond this many rows, so that one transaction
/// (and the latency of the batches in it) stays bounded.
const GROUP_ROWS: usize = 200_000;

/// One row to store: series id, Unix microseconds, value.
pub(crate) type Row = (i64, i64, f64);

/// One score to store: series id, Unix microseconds, score, anomaly flag.
pub(crate) type ScoreRow = (i64, i64, f32, bool);

enum Job {
    Append {
        rows: Vec<Row>,
        reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
    },
    Scores {
        rows: Vec<ScoreRow>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Merge the segments of every closed hour now, rather than a little at a time.
    Compact {
        reply: oneshot::Sender<Result<usize, StoreError>>,
    },
}

/// An append of the group being committed.
pub(crate) struct Append {
    pub(crate) rows: Vec<Row>,
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
    pub(crate) fn start(options: &WriterOptions, turns: WriteTurns) -> Result<Self, StoreError> {
        let mut conn = open(options).map_err(map_err)?;
        compact::convert_legacy_readings(&mut conn).map_err(map_err)?;
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let thread = std::thread::Builder::new()
            .name("fb-sqlite-writer".into())
            .spawn(move || run(conn, rx, &turns))
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

    /// Stores the scores of readings (in their own transaction, after queued readings).
    pub(crate) async fn append_scores(&self, rows: Vec<ScoreRow>) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Scores { rows, reply }).await?;
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
    // Checkpoints run on their own thread, never inside a commit (see `checkpoint`).
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(conn)
}

/// How often, at most, the writer looks for segments of closed hours to merge.
const COMPACTION_EVERY: Duration = Duration::from_secs(10);
/// (series, hour) pairs merged per pass, so that a pass never holds up ingest for long; a full
/// pass is followed by another at the next idle moment, so a backlog still drains quickly.
pub(crate) const COMPACTION_PAIRS: usize = 16;

fn run(mut conn: Connection, mut queue: mpsc::Receiver<Job>, turns: &WriteTurns) {
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
            Job::Scores { rows, reply } => {
                let turn = turns.take_blocking();
                let start = Instant::now();
                let result = scores::commit(&mut conn, &rows, &mut newest.marked).map_err(map_err);
                fb_sql::record_query_time(BACKEND, "scores.commit", start.elapsed());
                drop(turn);
                if result.is_err() {
                    newest.marked.clear();
                }
                let _ = reply.send(result);
                continue;
            }
            Job::Compact { reply } => {
                newest.marked.clear();
                let mut looked_at = 0;
                let result = loop {
                    // A turn per pass, so that other writers get theirs in between.
                    let _turn = turns.take_blocking();
                    match compact::compact(&mut conn, current_chunk()) {
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
        let turn = turns.take_blocking();
        let start = Instant::now();
        let result = readings::commit(&mut conn, &group, &mut newest);
        fb_sql::record_query_time(BACKEND, "readings.group_commit", start.elapsed());
        drop(turn);
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
            let turn = turns.take_blocking();
            let compacted = compact::compact(&mut conn, current_chunk());
            drop(turn);
            match compacted {
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

pub(crate) fn corrupt(message: String) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(message.into())
}

/// `SQLITE_BUSY` / `SQLITE_LOCKED` (another writer held the lock past the busy timeout) and
/// a full disk may pass; retrying later can succeed.
pub(crate) fn is_transient(e: &rusqlite::Error) -> bool {
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
