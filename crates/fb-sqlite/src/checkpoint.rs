//! WAL checkpoints on a thread of their own.
//!
//! By default SQLite checkpoints inside the commit that grows the write-ahead log past 1,000
//! pages: that commit then copies the log into the database and syncs both files, which took
//! 4 to 10 ms here, so one commit in a few hundred (an alert's, a single reading's) was that
//! much slower than the rest. Every connection of the store turns automatic checkpoints off
//! (`wal_autocheckpoint = 0`) and this thread checkpoints instead. Its checkpoints are
//! `PASSIVE`: they copy what is committed without taking the write lock, so writers go on
//! meanwhile, and once the whole log is copied the next writer starts it from the beginning.
//! A reader that stays open can keep the log from being reused; it then grows until the
//! reader ends, as it would with automatic checkpoints.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use fb_core::ports::StoreError;

/// How often the log is copied into the database. At the product's top ingest rate the log
/// grows by some 30 MB a second, so it stays within tens of MB.
const EVERY: Duration = Duration::from_millis(250);

pub(crate) struct Checkpointer {
    stop: std::sync::Mutex<Option<mpsc::Sender<()>>>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Checkpointer {
    pub(crate) fn start(path: PathBuf, busy_timeout: Duration) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|conn| {
            conn.busy_timeout(busy_timeout)?;
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
            Ok(conn)
        })
        .map_err(|e| StoreError::Other(Box::new(e)))?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fb-sqlite-checkpoint".into())
            .spawn(move || run(&conn, &stopped))
            .map_err(|e| StoreError::Other(Box::new(e)))?;
        Ok(Self {
            stop: std::sync::Mutex::new(Some(stop)),
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// Stops the thread after its current checkpoint (waiting at most `bound`).
    pub(crate) async fn close(&self, bound: Duration) {
        drop(self.stop.lock().unwrap_or_else(|p| p.into_inner()).take());
        let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        let joined = tokio::task::spawn_blocking(move || thread.join());
        if tokio::time::timeout(bound, joined).await.is_err() {
            tracing::warn!("The SQLite checkpoint thread did not stop in time.");
        }
    }
}

fn run(conn: &Connection, stopped: &mpsc::Receiver<()>) {
    let mut failing = false;
    loop {
        match stopped.recv_timeout(EVERY) {
            Err(RecvTimeoutError::Timeout) => {}
            // Asked to stop, or the store is gone.
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let started = std::time::Instant::now();
        // (busy, frames in the log, frames copied); busy is set when another checkpoint ran.
        let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        });
        match result {
            Ok((logged, copied)) => {
                failing = false;
                if copied > 0 {
                    fb_sql::record_query_time(crate::BACKEND, "wal.checkpoint", started.elapsed());
                }
                tracing::trace!(logged, copied, "WAL checkpoint.");
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "WAL checkpoint failed; retrying.");
            }
            Err(_) => {}
        }
    }
}
