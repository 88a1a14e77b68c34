//! Ports: the traits adapters implement. API boundary: changing a signature here changes every
//! adapter and the conformance suite in `fb-testkit`.

mod store;

pub use store::{IdentityStore, SecretStore, Storage, StoreError, StoreHealth};
