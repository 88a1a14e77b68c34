//! The storage conformance suite on SQLite: each case gets a fresh database file.

// Test code: a failed expectation should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use fb_core::ports::Storage;
use fb_sqlite::{Location, Options, SqliteStore};

struct Fixture {
    storage: Storage,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn finish(self) {
        self.storage.health.close().await;
    }
}

async fn open() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        location: Location::File(dir.path().join("factorybrain.db")),
        max_connections: 4,
        busy_timeout: Duration::from_secs(5),
        acquire_timeout: Duration::from_secs(5),
    };
    let store = SqliteStore::open(&options).await.unwrap();
    Fixture {
        storage: Storage::from_backend(Arc::new(store)),
        _dir: dir,
    }
}

fb_testkit::storage_conformance!();

#[tokio::test]
async fn reopening_applies_no_migration_twice_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        location: Location::File(dir.path().join("factorybrain.db")),
        max_connections: 2,
        busy_timeout: Duration::from_secs(5),
        acquire_timeout: Duration::from_secs(5),
    };
    let store = SqliteStore::open(&options).await.unwrap();
    let storage = Storage::from_backend(Arc::new(store));
    let user = fb_testkit::fixtures::user("keeper", fb_core::identity::Role::Viewer);
    storage.identities.insert_user(&user).await.unwrap();
    storage.health.close().await;

    let reopened = Storage::from_backend(Arc::new(SqliteStore::open(&options).await.unwrap()));
    assert_eq!(
        reopened.identities.user_by_id(user.id).await.unwrap(),
        Some(user)
    );
}
