//! PostgreSQL adapter: every storage port on PostgreSQL, chosen when `storage.url` is
//! `postgres://…`. Several stateless nodes can share one database (J2).
//!
//! All tables live in one schema (`storage.schema`, default `public`), which is also how the
//! conformance tests run in parallel: each test gets a schema of its own.

mod identities;
mod migrations;
mod rows;

use std::str::FromStr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use fb_core::ports::{SecretStore, StoreError, StoreHealth};

const BACKEND: &str = "postgres";

#[derive(Clone)]
pub struct Options {
    /// `postgres://user:password@host:port/database?…`
    pub url: String,
    /// Schema holding every table; created if missing. Must be a plain identifier.
    pub schema: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl std::fmt::Debug for Options {
    // The URL may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("url", &"[redacted]")
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

pub struct PgStore {
    pool: PgPool,
}

/// A schema name we are willing to interpolate into DDL: `[a-z_][a-z0-9_]{0,62}`.
pub fn is_valid_schema(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl PgStore {
    /// Connects, creates the schema if needed and applies pending migrations.
    pub async fn open(options: &Options) -> Result<Self, StoreError> {
        if !is_valid_schema(&options.schema) {
            return Err(StoreError::Corrupt(format!(
                "invalid schema name {:?}: use lowercase letters, digits and '_'",
                options.schema
            )));
        }
        let connect = PgConnectOptions::from_str(&options.url)
            .map_err(|e| StoreError::Other(Box::new(e)))?
            .application_name("factorybrain")
            .options([("search_path", options.schema.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(map_err)?;
        // The name was validated above; identifiers cannot be bound as parameters.
        let create = format!("CREATE SCHEMA IF NOT EXISTS \"{}\"", options.schema);
        timed(
            "schema.create",
            sqlx::query(sqlx::AssertSqlSafe(create)).execute(&pool),
        )
        .await?;
        let store = Self { pool };
        migrations::run(&store.pool).await?;
        Ok(store)
    }

    /// The versions of the migrations this build knows, in order.
    pub fn known_migrations() -> Vec<i64> {
        migrations::known()
    }

    /// Drops a schema and everything in it. For tests and tooling that create throw-away schemas.
    pub async fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
        if !is_valid_schema(schema) || schema == "public" {
            return Err(StoreError::Corrupt(format!(
                "refusing to drop schema {schema:?}"
            )));
        }
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .map_err(map_err)?;
        let drop_sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
        timed(
            "schema.drop",
            sqlx::query(sqlx::AssertSqlSafe(drop_sql)).execute(&pool),
        )
        .await?;
        pool.close().await;
        Ok(())
    }
}

#[async_trait]
impl StoreHealth for PgStore {
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
impl SecretStore for PgStore {
    async fn get_or_insert_secret(
        &self,
        name: &str,
        candidate: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let insert = sqlx::query(
            "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, now()) \
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
            let constraint = match db.constraint() {
                Some("users_username_key") => "username",
                Some("api_keys_prefix_key") => "api_key_prefix",
                _ => "unique",
            };
            StoreError::Conflict { constraint }
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => StoreError::Unavailable(Box::new(e)),
        other => StoreError::Other(Box::new(other)),
    }
}
