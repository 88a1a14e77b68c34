//! SQLite adapter: every storage port on one SQLite file (the embedded default, J1).
//!
//! Tuned for a single node: WAL journal (readers never block the writer), `synchronous=NORMAL`
//! (durable across process crashes, and across power loss up to the last checkpoint), a busy
//! timeout instead of immediate `SQLITE_BUSY` errors, and a small pool since SQLite serialises
//! writers anyway. sqlx caches prepared statements per connection.

mod identities;
mod migrations;
mod rows;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use fb_core::ports::{SecretStore, StoreError, StoreHealth};

const BACKEND: &str = "sqlite";

#[derive(Debug, Clone)]
pub struct Options {
    /// The database file, or `:memory:`-style URL given as `sqlite://...`.
    pub location: Location,
    pub max_connections: u32,
    pub busy_timeout: Duration,
    pub acquire_timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum Location {
    File(PathBuf),
    /// A `sqlite:` URL as sqlx understands it (used for explicit `storage.url` settings).
    Url(String),
}

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database and applies pending migrations.
    pub async fn open(options: &Options) -> Result<Self, StoreError> {
        let connect = match &options.location {
            Location::File(path) => SqliteConnectOptions::new().filename(path),
            Location::Url(url) => SqliteConnectOptions::from_str(url).map_err(other)?,
        }
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(options.busy_timeout);
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(map_err)?;
        let store = Self { pool };
        migrations::run(&store.pool).await?;
        Ok(store)
    }

    /// The versions of the migrations this build knows, in order.
    pub fn known_migrations() -> Vec<i64> {
        migrations::known()
    }
}

#[async_trait]
impl StoreHealth for SqliteStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn ping(&self) -> Result<(), StoreError> {
        timed("health.ping", sqlx::query("SELECT 1").execute(&self.pool))
            .await
            .map(drop)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl SecretStore for SqliteStore {
    async fn get_or_insert_secret(
        &self,
        name: &str,
        candidate: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let insert = sqlx::query(
            "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, strftime('%Y-%m-%dT%H:%M:%fZ')) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .execute(&self.pool);
        timed("secrets.insert", insert).await?;
        let select = sqlx::query_scalar::<_, Vec<u8>>("SELECT value FROM secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool);
        timed("secrets.get", select).await
    }
}

/// Runs a query, records its latency under `query`, and maps driver errors to `StoreError`.
pub(crate) async fn timed<T>(
    query: &'static str,
    future: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, StoreError> {
    let start = Instant::now();
    let result = future.await;
    metrics::histogram!("fb_store_query_duration_seconds", "backend" => BACKEND, "query" => query)
        .record(start.elapsed().as_secs_f64());
    result.map_err(map_err)
}

pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            let message = db.message();
            let constraint = if message.contains("users.username") {
                "username"
            } else if message.contains("api_keys.prefix") {
                "api_key_prefix"
            } else {
                "unique"
            };
            StoreError::Conflict { constraint }
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(Box::new(e))
        }
        sqlx::Error::Database(ref db) if db.message().contains("database is locked") => {
            StoreError::Unavailable(Box::new(e))
        }
        other => StoreError::Other(Box::new(other)),
    }
}

fn other(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Other(Box::new(e))
}
