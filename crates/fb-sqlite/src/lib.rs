//! SQLite adapter: every storage port on one SQLite file (the embedded default, J1).
//!
//! Tuned for a single node: WAL journal (readers never block the writer), `synchronous=NORMAL`
//! (durable across process crashes, and across power loss up to the last checkpoint), a busy
//! timeout instead of immediate `SQLITE_BUSY` errors, and a small pool since SQLite serialises
//! writers anyway. sqlx caches prepared statements per connection. Readings are written by one
//! dedicated thread with its own connection (`writer`), which merges queued batches into one
//! transaction. The writers of the process take turns on an in-process lock rather than
//! meeting in SQLite's busy handler (`turns`), and WAL checkpoints run on a thread of their own
//! instead of inside commits (`checkpoint`).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};

use fb_core::ports::StoreError;

const BACKEND: &str = "sqlite";

/// Embedded migrations, applied at open. Append only; never edit a released one.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "identities",
        include_str!("../migrations/0001_identities.sql"),
    ),
    (
        2,
        "machines",
        include_str!("../migrations/0002_machines.sql"),
    ),
    (
        3,
        "readings",
        include_str!("../migrations/0003_readings.sql"),
    ),
    (
        4,
        "dead_letters",
        include_str!("../migrations/0004_dead_letters.sql"),
    ),
    (
        5,
        "segments",
        include_str!("../migrations/0005_segments.sql"),
    ),
    (
        6,
        "detection",
        include_str!("../migrations/0006_detection.sql"),
    ),
    (
        7,
        "sessions",
        include_str!("../migrations/0007_sessions.sql"),
    ),
    (8, "audit", include_str!("../migrations/0008_audit.sql")),
    (
        9,
        "site_scopes",
        include_str!("../migrations/0009_site_scopes.sql"),
    ),
    (
        10,
        "devices",
        include_str!("../migrations/0010_devices.sql"),
    ),
    (11, "models", include_str!("../migrations/0011_models.sql")),
    (
        12,
        "tickets",
        include_str!("../migrations/0012_tickets.sql"),
    ),
    (13, "gates", include_str!("../migrations/0013_gates.sql")),
    (14, "energy", include_str!("../migrations/0014_energy.sql")),
    (
        15,
        "procurement",
        include_str!("../migrations/0015_procurement.sql"),
    ),
];

#[derive(Debug, Clone)]
pub struct Options {
    pub location: Location,
    pub max_connections: u32,
    pub busy_timeout: Duration,
    pub acquire_timeout: Duration,
    /// Page cache of the readings writer's connection, in KiB.
    pub writer_cache_kib: u32,
    /// Readings batches waiting for the writer at most.
    pub writer_queue: usize,
}

#[derive(Debug, Clone)]
pub enum Location {
    File(PathBuf),
    /// A `sqlite:` URL as sqlx understands it (an explicit `storage.url`).
    Url(String),
}

pub struct SqliteStore {
    pool: SqlitePool,
    series: fb_sql::SeriesCache,
    writer: writer::Writer,
    turns: turns::WriteTurns,
    checkpointer: checkpoint::Checkpointer,
}

impl SqliteStore {
    /// Opens (creating if needed) the database and applies pending migrations.
    pub async fn open(options: &Options) -> Result<Self, StoreError> {
        let connect = match &options.location {
            Location::File(path) => SqliteConnectOptions::new().filename(path),
            Location::Url(url) => {
                SqliteConnectOptions::from_str(url).map_err(|e| StoreError::Other(Box::new(e)))?
            }
        }
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(options.busy_timeout)
        // The checkpoint thread copies the log into the database (see `checkpoint`).
        .pragma("wal_autocheckpoint", "0");
        let path = connect.get_filename().to_path_buf();
        if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" {
            return Err(StoreError::Other(
                "SQLite needs a database file (an in-memory database cannot be shared by the readings writer)".into(),
            ));
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(map_err)?;
        if let Location::File(path) = &options.location {
            restrict_to_owner(path);
        }
        fb_sql::migrator(MIGRATIONS)
            .run(&pool)
            .await
            .map_err(|e| StoreError::Other(Box::new(e)))?;
        let checkpointer = checkpoint::Checkpointer::start(path.clone(), options.busy_timeout)?;
        let turns = turns::WriteTurns::default();
        let writer = writer::Writer::start(
            &writer::WriterOptions {
                path,
                busy_timeout: options.busy_timeout,
                cache_kib: options.writer_cache_kib,
                queue: options.writer_queue,
            },
            turns.clone(),
        )?;
        Ok(Self {
            pool,
            series: Default::default(),
            writer,
            turns,
            checkpointer,
        })
    }

    /// Merges the raw-reading segments of every hour that ended over an hour ago (the writer
    /// also does this a little at a time when idle). Returns the (series, hour) pairs looked at.
    pub async fn compact_segments(&self) -> Result<usize, StoreError> {
        self.writer.compact().await
    }

    /// Waits for this process's turn to write (see `turns`); every write through the pool
    /// holds it for its whole transaction.
    async fn write_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.turns.take().await
    }

    /// Lets queued readings batches commit and stops the writer and checkpoint threads.
    async fn stop_background_work(&self) {
        self.writer.close(Duration::from_secs(10)).await;
        self.checkpointer.close(Duration::from_secs(10)).await;
    }

    async fn timed<T>(
        query: &'static str,
        future: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        fb_sql::timed(BACKEND, query, future, map_err).await
    }
}

fb_sql::sql_identity_store!(SqliteStore, SqliteRow, BACKEND, "");
fb_sql::sql_machine_store!(SqliteStore, SqliteRow);
fb_sql::sql_dead_letter_store!(SqliteStore, SqliteRow);
fb_sql::sql_detection_store!(SqliteStore, SqliteRow);
fb_sql::sql_audit_store!(SqliteStore, SqliteRow);
fb_sql::sql_session_store!(SqliteStore, SqliteRow);
fb_sql::sql_device_store!(SqliteStore, SqliteRow);
fb_sql::sql_model_store!(SqliteStore, SqliteRow);
fb_sql::sql_ticket_store!(SqliteStore, SqliteRow);
fb_sql::sql_gate_store!(SqliteStore, SqliteRow);
fb_sql::sql_recommendation_store!(SqliteStore, SqliteRow);
fb_sql::sql_procurement_store!(SqliteStore, SqliteRow);

fb_sql::sql_series_store!(SqliteStore);

mod checkpoint;
mod readings;
mod segments;
mod turns;
mod writer;

/// The database holds password hashes and the token signing key: owner-only (0600). SQLite
/// gives its -wal and -shm files the same mode as the database file.
fn restrict_to_owner(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
            tracing::warn!(path = %path.display(), error = %e, "Cannot restrict the database file to its owner.");
        }
    }
}

fn map_err(e: sqlx::Error) -> StoreError {
    // SQLite names the column, not a constraint: "UNIQUE constraint failed: users.username".
    let constraint_of = |db: &dyn sqlx::error::DatabaseError| {
        let message = db.message();
        if message.contains("procurement_orders.ticket_id") {
            "order_ticket_part"
        } else if message.contains("procurement_orders.site") {
            "order_open_reorder"
        } else if message.contains("procurement_orders.id") {
            "order_id"
        } else if message.contains("energy_recommendations.machine_id") {
            "recommendation_open"
        } else if message.contains("tickets.machine_id") {
            "ticket_active"
        } else if message.contains("ticket_alerts.alert_id") {
            "ticket_alert"
        } else if message.contains("users.username") {
            "username"
        } else if message.contains("api_keys.prefix") {
            "api_key_prefix"
        } else if message.contains("machines.id") {
            "machine_id"
        } else if message.contains("alerts.machine_id") {
            "alert_active"
        } else if message.contains("devices.name") {
            "device_name"
        } else if message.contains("approvals.id") {
            "approval_id"
        } else if message.contains("agent_decisions.id") {
            "decision_id"
        } else {
            "unique"
        }
    };
    // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with extended codes: another writer held the lock
    // past the busy timeout.
    let is_transient = |db: &dyn sqlx::error::DatabaseError| {
        db.code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6))
    };
    fb_sql::classify(e, constraint_of, is_transient)
}
