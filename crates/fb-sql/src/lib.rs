//! Support shared by the SQL storage adapters (`fb-sqlite`, `fb-postgres`).
//!
//! Where the SQL is portable (plain `$n` parameters, `ON CONFLICT`, `RETURNING`, and types both
//! drivers encode: uuid, text, bool, bytes, timestamps), it is written once here and stamped onto
//! each store by a macro, because sqlx code that is generic over the database needs a wall of
//! trait bounds per query. Backend-specific work (DDL, partitioning, bulk loads, error
//! classification) stays in each adapter.

pub mod audit;
mod dead_letters;
pub mod detection;
mod devices;
pub mod energy;
pub mod gates;
mod identities;
mod machines;
pub mod models;
pub mod procurement;
pub mod readings;
mod series;
pub mod sessions;
mod sites;
pub mod tickets;

use std::borrow::Cow;
use std::time::Instant;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use fb_core::ports::StoreError;

#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use fb_core;
    pub use sqlx;
    pub use time::OffsetDateTime;
    pub use uuid::Uuid;
}

pub use audit::AUDIT_COLUMNS;
pub use dead_letters::DEAD_LETTER_COLUMNS;
pub use detection::{ALERT_COLUMNS, ANOMALY_COLUMNS};
pub use devices::DEVICE_COLUMNS;
pub use energy::RECOMMENDATION_COLUMNS;
pub use identities::{API_KEY_COLUMNS, NOT_THE_LAST_FULL_ADMIN, USER_COLUMNS, full_admins_clause};
pub use machines::{MACHINE_COLUMNS, sensors_from_json, sensors_to_json};
pub use models::{MODEL_ACTIVATION_COLUMNS, MODEL_COLUMNS, MODEL_FROM};
pub use procurement::ORDER_COLUMNS;
pub use series::SeriesCache;
pub use sites::{site_condition, sites_from_text, sites_to_text};
pub use tickets::TICKET_COLUMNS;

/// Runs a query, records its latency as `fb_store_query_duration_seconds{backend, query}` and
/// maps the driver error with the adapter's own classification.
pub async fn timed<T>(
    backend: &'static str,
    query: &'static str,
    future: impl Future<Output = Result<T, sqlx::Error>>,
    map_err: fn(sqlx::Error) -> StoreError,
) -> Result<T, StoreError> {
    let start = Instant::now();
    let result = future.await;
    record_query_time(backend, query, start.elapsed());
    result.map_err(map_err)
}

/// Records a query's latency as `fb_store_query_duration_seconds{backend, query}`, for work that
/// does not go through sqlx (SQLite's readings writer).
pub fn record_query_time(backend: &'static str, query: &'static str, elapsed: std::time::Duration) {
    metrics::histogram!("fb_store_query_duration_seconds", "backend" => backend, "query" => query)
        .record(elapsed.as_secs_f64());
}

/// A migrator over migrations embedded with `include_str!`, as (version, name, sql).
/// Released migrations are never edited: sqlx verifies each applied migration's checksum.
pub fn migrator(migrations: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*name),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Classifies driver errors the same way for every backend, given the backend's names for its
/// unique constraints and its notion of a transient failure (retrying later may succeed).
pub fn classify(
    e: sqlx::Error,
    constraint_of: impl Fn(&dyn sqlx::error::DatabaseError) -> &'static str,
    is_transient: impl Fn(&dyn sqlx::error::DatabaseError) -> bool,
) -> StoreError {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
            constraint: constraint_of(db.as_ref()),
        },
        sqlx::Error::Database(ref db) if is_transient(db.as_ref()) => {
            StoreError::Unavailable(Box::new(e))
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => StoreError::Unavailable(Box::new(e)),
        other => StoreError::Other(Box::new(other)),
    }
}

pub fn corrupt(e: sqlx::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}
