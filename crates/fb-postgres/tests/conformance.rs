//! The storage conformance suite on PostgreSQL. Each case runs in a schema of its own so cases
//! run in parallel; the schema is dropped when the case passes (and left for inspection when it
//! fails). The server must be reachable: a missing server fails the run, it is never skipped.

// Test code: a failed expectation should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use fb_core::ports::Storage;
use fb_postgres::{Options, PgStore};

fn url() -> String {
    std::env::var("FB_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

struct Fixture {
    storage: Storage,
    schema: String,
}

impl Fixture {
    async fn finish(self) {
        self.storage.health.close().await;
        PgStore::drop_schema(&url(), &self.schema).await.unwrap();
    }
}

fn options(schema: &str) -> Options {
    Options {
        url: url(),
        schema: schema.to_owned(),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(10),
    }
}

async fn open() -> Fixture {
    let schema = format!("fbtest_{}", uuid::Uuid::now_v7().simple());
    let store = PgStore::open(&options(&schema)).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL at {} must be running for these tests: {e}",
            url()
        )
    });
    Fixture {
        storage: Storage::from_backend(Arc::new(store)),
        schema,
    }
}

fb_testkit::storage_conformance!();

#[tokio::test]
async fn reopening_applies_no_migration_twice_and_keeps_data() {
    let fixture = open().await;
    let user = fb_testkit::fixtures::user("keeper", fb_core::identity::Role::Viewer);
    fixture.storage.identities.insert_user(&user).await.unwrap();

    let reopened = Storage::from_backend(Arc::new(
        PgStore::open(&options(&fixture.schema)).await.unwrap(),
    ));
    assert_eq!(
        reopened.identities.user_by_id(user.id).await.unwrap(),
        Some(user)
    );
    reopened.health.close().await;
    fixture.finish().await;
}

#[test]
fn schema_names_are_plain_identifiers() {
    assert!(fb_postgres::is_valid_schema("public"));
    assert!(fb_postgres::is_valid_schema("plant_7"));
    assert!(!fb_postgres::is_valid_schema("Plant"));
    assert!(!fb_postgres::is_valid_schema("a\"; DROP TABLE users; --"));
    assert!(!fb_postgres::is_valid_schema(""));
}

#[tokio::test]
async fn the_audit_log_refuses_changes_in_the_database_too() {
    use std::str::FromStr;

    let fixture = open().await;
    let entry = fb_testkit::fixtures::audit_entry(
        "user:alice",
        "user.disable",
        None,
        fb_core::audit::Outcome::Success,
    );
    let record = fixture.storage.audit.append_audit(&entry).await.unwrap();
    let connect = sqlx::postgres::PgConnectOptions::from_str(&url())
        .unwrap()
        .options([("search_path", fixture.schema.as_str())]);
    let pool = sqlx::PgPool::connect_with(connect).await.unwrap();
    for sql in [
        "UPDATE audit_log SET actor = 'user:mallory'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "DELETE FROM audit_head",
        "TRUNCATE audit_head",
        "UPDATE audit_head SET seq = 0",
    ] {
        let refused = sqlx::query(sql)
            .execute(&pool)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("append-only") || refused.contains("cannot move back"),
            "{sql}: {refused}"
        );
    }
    pool.close().await;
    assert_eq!(
        fixture.storage.audit.scan_audit(0, 10).await.unwrap(),
        [Ok(record.clone())]
    );
    assert_eq!(
        fixture.storage.audit.audit_head().await.unwrap(),
        Some(record.as_head())
    );
    let next = fixture.storage.audit.append_audit(&entry).await.unwrap();
    assert_eq!((next.seq, next.prev_hash), (2, record.hash));
    fixture.finish().await;
}
