//! Driven adapter: rate-limit buckets in Redis, so that several nodes enforce one limit.
//!
//! Each check is one `EVALSHA` of a Lua script (`gcra.lua`, loaded once and cached by its hash)
//! that reads the bucket's stored TAT, decides and writes the new one atomically. The time is
//! Redis' own (`TIME` inside the script), not the caller's: nodes' clocks drift apart, and a
//! node whose clock ran ahead would find every bucket fuller than the others do, so one clock
//! for all is what makes the limit one limit. Keys are `<prefix>ratelimit:<policy>:<subject>`
//! and expire when their bucket is full again, so idle clients cost Redis nothing.
//!
//! Every call goes through the resilience layer (`fb_outbound::Outbound`, target `redis`): bounded
//! by `Options::timeout`, never retried (the caller's answer cannot wait, and it has its own
//! buckets to fall back to), and behind a circuit breaker, so that a Redis that hangs costs one
//! time-out per check only until the circuit opens; then checks fail at once until a probe
//! finds Redis back. The breaker's state is `fb_outbound_circuit_state{target="redis"}` in
//! `/metrics`. The connection is made on first use and remade after a failure, so a node starts
//! and serves while Redis is down (the caller then limits on its own, see
//! `fb_app::rate_limit::Limiter`).

use std::time::Duration;

use async_trait::async_trait;
use fb_outbound::{BreakerSettings, CallError, Classify, ErrorClass, Outbound, Policy};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use fb_core::ports::{RateLimitStore, StoreError};
use fb_core::rate_limit::{self, Decision, Quota};

/// How to reach Redis.
#[derive(Clone)]
pub struct Options {
    /// `redis://[user:password@]host:port[/db]`: may hold a password, so `Debug` leaves it out.
    pub url: String,
    /// Put before every key, so that several deployments (or tests) can share one Redis.
    pub key_prefix: String,
    /// Longest wait for one check before it counts as failed.
    pub timeout: Duration,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("url", &"[redacted]")
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A connection attempt may take longer than one check's time-out (it runs on its own and
/// later checks use it), but not forever.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The name of Redis in the outbound metrics.
pub const OUTBOUND_TARGET: &str = "redis";
/// How long the circuit stays open before one check probes Redis again.
const OPEN_FOR: Duration = Duration::from_secs(10);

/// The breaker of rate-limit checks: every request makes one, so a window of 20 fills within a
/// moment; half of them failing (at least 10 seen) means Redis is down or hanging.
fn breaker_settings() -> BreakerSettings {
    BreakerSettings::new(20, 10, 0.5).with_open_for(OPEN_FOR)
}

pub struct RedisRateLimitStore {
    connection: ConnectionManager,
    script: redis::Script,
    key_prefix: String,
    timeout: Duration,
    outbound: Outbound,
}

/// A Redis error as the resilience layer sees it.
#[derive(Debug)]
struct RedisFailure(redis::RedisError);

impl Classify for RedisFailure {
    /// Redis unreachable, hung up or slow: retryable, and counted by the breaker. Anything
    /// else (a script or type error) is Redis answering: the breaker counts it as Redis up.
    fn class(&self) -> ErrorClass {
        let e = &self.0;
        if e.is_io_error()
            || e.is_connection_refusal()
            || e.is_connection_dropped()
            || e.is_timeout()
        {
            ErrorClass::RETRYABLE
        } else {
            ErrorClass::Permanent
        }
    }
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
        // One attempt: a rate-limit check answers now or falls back, it never waits for a retry.
        let policy = Policy::new(options.timeout, options.timeout).with_max_attempts(1);
        Ok(Self {
            connection,
            script: redis::Script::new(include_str!("gcra.lua")),
            key_prefix: options.key_prefix.clone(),
            timeout: options.timeout,
            outbound: Outbound::new(OUTBOUND_TARGET, policy, breaker_settings()),
        })
    }

    /// The Redis key of a bucket.
    pub fn key(&self, bucket: &str) -> String {
        format!("{}ratelimit:{bucket}", self.key_prefix)
    }

    /// The state of the circuit breaker in front of Redis.
    pub fn circuit_state(&self) -> fb_outbound::CircuitState {
        self.outbound.circuit_state()
    }

    /// The one Redis call of this adapter: the script, through the resilience layer.
    async fn run_script(&self, key: &str, quota: &Quota) -> Result<(i64, i64, i64), StoreError> {
        let key = self.key(key);
        let answer = self
            .outbound
            .call(|| {
                let mut connection = self.connection.clone();
                let mut invocation = self.script.prepare_invoke();
                invocation
                    .key(&key)
                    .arg(quota.interval_micros())
                    .arg(quota.capacity_micros());
                async move {
                    invocation
                        .invoke_async::<(i64, i64, i64)>(&mut connection)
                        .await
                        .map_err(RedisFailure)
                }
            })
            .await;
        answer.map_err(|e| match e {
            CallError::Failed { error, .. } => StoreError::Unavailable(Box::new(error.0)),
            CallError::Timeout { .. } => StoreError::Unavailable(
                format!(
                    "Redis did not answer within {} ms",
                    self.timeout.as_millis()
                )
                .into(),
            ),
            CallError::CircuitOpen { retry_after } => StoreError::Unavailable(
                format!(
                    "Redis failed too often and is not asked (circuit open{})",
                    retry_after.map_or_else(String::new, |wait| format!(
                        "; next probe in {} ms",
                        wait.as_millis()
                    ))
                )
                .into(),
            ),
        })
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
