//! Turn-taking for SQLite's one write lock, inside the process.
//!
//! SQLite lets one connection write at a time. Two connections of this process write: the
//! readings writer thread (rusqlite) and the sqlx pool (alerts, anomalies, health, identities,
//! the registry). When one finds the lock taken, SQLite's busy handler makes it sleep 1, 2, 5,
//! 10 ms… and try again, however soon the lock was released: an alert's write that found a
//! readings commit of 0.3 ms in progress waited at least 1 ms, often 3, and a readings batch
//! behind a health update as long. Taking turns on an in-process lock first means a writer
//! waits exactly as long as the writer before it, in arrival order (tokio's mutex is fair),
//! and the busy handler only ever sees other processes (the CLI on the same file).
//!
//! Every write through the pool takes a turn for its whole transaction; the writer thread
//! takes one per commit. A turn is never taken while another is held (the lock is not
//! reentrant): store methods take it at their outermost level only.

use std::sync::Arc;

use tokio::sync::{Mutex, MutexGuard};

#[derive(Clone, Default)]
pub(crate) struct WriteTurns(Arc<Mutex<()>>);

impl WriteTurns {
    /// Waits for the turn to write (async callers: the pool's store methods).
    pub(crate) async fn take(&self) -> MutexGuard<'_, ()> {
        self.0.lock().await
    }

    /// Waits for the turn to write, blocking the thread (the readings writer thread, which
    /// runs outside the async runtime).
    pub(crate) fn take_blocking(&self) -> MutexGuard<'_, ()> {
        self.0.blocking_lock()
    }
}
