//! PostgreSQL adapter: every storage port on PostgreSQL, chosen when `storage.url` is
//! `postgres://…`. Several stateless nodes can share one database (J2).
//!
//! All tables live in one schema (`storage.schema`, default `public`), which is also how the
//! conformance tests run in parallel: each test gets a schema of its own.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};

use fb_core::ports::StoreError;

const BACKEND: &str = "postgres";

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
        "detection",
        include_str!("../migrations/0005_detection.sql"),
    ),
    (
        6,
        "sessions",
        include_str!("../migrations/0006_sessions.sql"),
    ),
    (7, "audit", include_str!("../migrations/0007_audit.sql")),
    (
        8,
        "site_scopes",
        include_str!("../migrations/0008_site_scopes.sql"),
    ),
    (9, "devices", include_str!("../migrations/0009_devices.sql")),
    (10, "models", include_str!("../migrations/0010_models.sql")),
    (
        11,
        "tickets",
        include_str!("../migrations/0011_tickets.sql"),
    ),
    (13, "gates", include_str!("../migrations/0013_gates.sql")),
    (14, "energy", include_str!("../migrations/0014_energy.sql")),
    (
        15,
        "procurement",
        include_str!("../migrations/0015_procurement.sql"),
    ),
];

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
    /// (machine, sensor) → series id; series are never deleted, so entries never go stale.
    series: fb_sql::SeriesCache,
    /// Days (since the epoch) whose readings partition is known to exist.
    /// (table, day since the epoch) of the partitions known to exist.
    partitions: std::sync::Mutex<std::collections::HashSet<(&'static str, i64)>>,
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
        // CREATE SCHEMA needs the CREATE right on the database even with IF NOT EXISTS, which
        // an application role often lacks: create it only when it is missing.
        let exists = sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
        )
        .bind(&options.schema)
        .fetch_one(&pool);
        if !Self::timed("schema.exists", exists).await? {
            // The name was validated above; identifiers cannot be bound as parameters.
            let create = format!("CREATE SCHEMA IF NOT EXISTS \"{}\"", options.schema);
            Self::timed(
                "schema.create",
                sqlx::query(sqlx::AssertSqlSafe(create)).execute(&pool),
            )
            .await?;
        }
        fb_sql::migrator(MIGRATIONS)
            .run(&pool)
            .await
            .map_err(|e| StoreError::Other(Box::new(e)))?;
        let store = Self {
            pool,
            series: Default::default(),
            partitions: Default::default(),
        };
        store.create_partitions_ahead().await?;
        Ok(store)
    }

    /// Nothing runs in the background of this store: every write is the caller's own query.
    async fn stop_background_work(&self) {}

    /// PostgreSQL writers do not exclude each other (row locks are enough), so there are no
    /// turns to take.
    async fn write_turn(&self) {}

    async fn timed<T>(
        query: &'static str,
        future: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        fb_sql::timed(BACKEND, query, future, map_err).await
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
        Self::timed(
            "schema.drop",
            sqlx::query(sqlx::AssertSqlSafe(drop_sql)).execute(&pool),
        )
        .await?;
        pool.close().await;
        Ok(())
    }
}

fb_sql::sql_identity_store!(PgStore, PgRow, BACKEND, "FOR UPDATE");
fb_sql::sql_machine_store!(PgStore, PgRow);
fb_sql::sql_dead_letter_store!(PgStore, PgRow);
fb_sql::sql_detection_store!(PgStore, PgRow);
fb_sql::sql_audit_store!(PgStore, PgRow);
fb_sql::sql_session_store!(PgStore, PgRow);
fb_sql::sql_device_store!(PgStore, PgRow);
fb_sql::sql_model_store!(PgStore, PgRow);
fb_sql::sql_ticket_store!(PgStore, PgRow);
fb_sql::sql_gate_store!(PgStore, PgRow);
fb_sql::sql_recommendation_store!(PgStore, PgRow);
fb_sql::sql_procurement_store!(PgStore, PgRow);

fb_sql::sql_series_store!(PgStore);

mod readings;

fn map_err(e: sqlx::Error) -> StoreError {
    let constraint_of = |db: &dyn sqlx::error::DatabaseError| match db.constraint() {
        Some("users_username_key") => "username",
        Some("api_keys_prefix_key") => "api_key_prefix",
        Some("machines_pkey") => "machine_id",
        Some("alerts_one_active") => "alert_active",
        Some("devices_name_key") => "device_name",
        Some("tickets_one_active") => "ticket_active",
        Some("ticket_alerts_pkey") => "ticket_alert",
        Some("approvals_pkey") => "approval_id",
        Some("agent_decisions_pkey") => "decision_id",
        Some("energy_recommendations_one_open") => "recommendation_open",
        Some("procurement_orders_ticket_part") => "order_ticket_part",
        Some("procurement_orders_open_reorder") => "order_open_reorder",
        Some("procurement_orders_pkey") => "order_id",
        _ => "unique",
    };
    // SQLSTATE classes 08 (connection exception), 53 (insufficient resources, e.g. too many
    // connections), 57 (operator intervention, e.g. admin shutdown) and 40001/40P01
    // (serialization failure, deadlock): the database may well answer if asked again.
    let is_transient = |db: &dyn sqlx::error::DatabaseError| {
        db.code().is_some_and(|c| {
            c.starts_with("08")
                || c.starts_with("53")
                || c.starts_with("57")
                || c == "40001"
                || c == "40P01"
        })
    };
    fb_sql::classify(e, constraint_of, is_transient)
}
