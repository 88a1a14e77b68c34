//! Driven adapter: rate-limit buckets in Redis, so that several nodes enforce one limit.
//!
//! Each check is one `EVALSHA` of a Lua script (`gcra.lua`, loaded once and cached by its hash)
//! that reads the bucket's stored TAT, decides and writes the new one atomically. The time is
//! Redis' own (`TIME` inside the script), not the caller's: nodes' clocks drift apart, and a
//! node whose clock ran ahead would find every bucket fuller than the others do, so one clock
//! for all is what makes the limit one limit. Keys are `<prefix>ratelimit:<policy>:<subject>`
//! and expire when their bucket is full again, so idle clients cost Redis nothing.
//!
//! Every call is bounded by `Options::timeout`. The connection is made on first use and remade
//! after a failure, so a node starts and serves while Redis is down (the caller then limits on
//! its own, see `fb_app::rate_limit::Limiter`).

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use fb_core::ports::{RateLimitStore, StoreError};
use fb_core::rate_limit::{self, Decision, Quota};

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct Options {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Put before every key, so that several deployments (or tests) can share one Redis.
    pub key_prefix: String,
    /// Longest wait for one check before it counts as failed.
    pub timeout: Duration,
}

/// A connection attempt may take longer than one check's time-out (it runs on its own and
/// later checks use it), but not forever.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

pub struct RedisRateLimitStore {
    connection: ConnectionManager,
    script: redis::Script,
    key_prefix: String,
    timeout: Duration,
}

impl RedisRateLimitStore {
    /// Prepares the store without connecting (the first check connects). Fails only on a
    /// malformed URL. Needs a Tokio runtime.
    pub fn open(options: &Options) -> Result<Self, StoreError> {
        let client = redis::Client::open(options.url.as_str()).map_err(invalid_url)?;
        // No retries inside the manager: a failed check falls back at once, and the next one
        // starts a new connection attempt.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(CONNECT_TIMEOUT));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StoreError::Other(Box::new(e)))?;
        Ok(Self {
            connection,
            script: redis::Script::new(include_str!("gcra.lua")),
            key_prefix: options.key_prefix.clone(),
            timeout: options.timeout,
        })
    }

    /// The Redis key of a bucket.
    pub fn key(&self, bucket: &str) -> String {
        format!("{}ratelimit:{bucket}", self.key_prefix)
    }

    /// The one Redis call of this adapter: the script, bounded by the time-out.
    async fn run_script(&self, key: &str, quota: &Quota) -> Result<(i64, i64, i64), StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(self.key(key))
            .arg(quota.interval_micros())
            .arg(quota.capacity_micros());
        match tokio::time::timeout(self.timeout, invocation.invoke_async(&mut connection)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(StoreError::Unavailable(Box::new(e))),
            Err(_) => Err(StoreError::Unavailable(
                format!(
                    "Redis did not answer within {} ms",
                    self.timeout.as_millis()
                )
                .into(),
            )),
        }
    }
}

fn invalid_url(e: redis::RedisError) -> StoreError {
    // The URL may hold a password: say what is wrong, never echo it.
    StoreError::Other(format!("the Redis URL is not valid ({:?})", e.kind()).into())
}

#[async_trait]
impl RateLimitStore for RedisRateLimitStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn check(&self, key: &str, quota: &Quota) -> Result<Decision, StoreError> {
        let (allowed, now, stored) = self.run_script(key, quota).await?;
        let (decision, _) = rate_limit::decide((stored >= 0).then_some(stored), now, quota);
        if decision.allowed != (allowed == 1) {
            // The script and fb-core's step disagree: a bug, never a reason to let requests
            // through unchecked; the caller falls back to its own buckets.
            return Err(StoreError::Corrupt(format!(
                "the Redis script decided {allowed} where GCRA decides {}",
                decision.allowed
            )));
        }
        Ok(decision)
    }
}
