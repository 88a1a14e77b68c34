//! The in-memory fake passes the same conformance suite as the real stores.

use std::sync::Arc;

use fb_core::ports::Storage;
use fb_testkit::fakes::MemoryStore;

struct Fixture {
    storage: Storage,
}

impl Fixture {
    async fn finish(self) {}
}

async fn open() -> Fixture {
    Fixture {
        storage: Storage::from_backend(Arc::new(MemoryStore::new())),
    }
}

fb_testkit::storage_conformance!();
