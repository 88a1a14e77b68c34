//! Embedded migrations, applied at start and by `factorybrain migrate`. Files are append-only:
//! a released migration is never edited (sqlx checks each applied migration's checksum).

use std::borrow::Cow;

use sqlx::PgPool;
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use fb_core::ports::StoreError;

const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "identities",
    include_str!("../migrations/0001_identities.sql"),
)];

fn migrator() -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
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

pub(crate) async fn run(pool: &PgPool) -> Result<(), StoreError> {
    migrator()
        .run(pool)
        .await
        .map_err(|e| StoreError::Other(Box::new(e)))
}

pub(crate) fn known() -> Vec<i64> {
    MIGRATIONS.iter().map(|(v, _, _)| *v).collect()
}
