//! Where rate-limit buckets are kept: in this process, or shared by every node.

use async_trait::async_trait;

use crate::rate_limit::{Decision, Quota};

use super::StoreError;

/// Token buckets by key (see [`crate::rate_limit`]). Each check takes one token from the bucket
/// `key` under `quota` if one is there, atomically: concurrent checks on one key, from one node
/// or several, never admit more than the quota.
///
/// A store keeps its own time: the in-process store reads the `Clock` port, a shared store uses
/// one clock for every node (its server's), so that nodes with skewed clocks still agree.
#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Short name of the backend, for logs (`memory`, `redis`).
    fn backend(&self) -> &'static str;

    /// Takes a token from the bucket `key` and says whether the request may pass.
    /// `Unavailable` when a shared store cannot answer in time.
    async fn check(&self, key: &str, quota: &Quota) -> Result<Decision, StoreError>;
}
