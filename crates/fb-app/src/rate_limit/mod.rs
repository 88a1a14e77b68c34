//! Rate limiting: named policies checked against token buckets, kept in this process or in a
//! store that several nodes share (see [`fb_core::rate_limit`] for the algorithm).
//!
//! A shared store that fails (down, slow, unreachable) never fails a request: the check falls
//! back to this node's own buckets, so limits still hold per node, and the failure is counted
//! (`fb_rate_limit_fallbacks_total`) and logged at most once a minute.

mod memory;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fb_core::ports::{RateLimitStore, StoreError};
use fb_core::rate_limit::{Decision, Quota};

pub use memory::MemoryRateLimitStore;

/// A named limit. The name is part of every bucket's key and is shown to clients in the
/// RateLimit header fields, so it is short and stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub name: &'static str,
    pub quota: Quota,
}

/// How often a failing shared store is reported in the log (every failure is counted).
const FALLBACK_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Checks requests against policies, on the shared store if there is one, else (or when it
/// fails) on this node's buckets.
pub struct Limiter {
    shared: Option<Arc<dyn RateLimitStore>>,
    local: MemoryRateLimitStore,
    fallback_log: Mutex<FallbackLog>,
}

#[derive(Default)]
struct FallbackLog {
    last_warning: Option<Instant>,
    unreported: u64,
}

impl Limiter {
    /// Buckets in this process only (a single node).
    pub fn local(local: MemoryRateLimitStore) -> Self {
        Self {
            shared: None,
            local,
            fallback_log: Mutex::default(),
        }
    }

    /// Buckets in `shared`, with `local` as the fallback while it fails.
    pub fn shared(shared: Arc<dyn RateLimitStore>, local: MemoryRateLimitStore) -> Self {
        Self {
            shared: Some(shared),
            ..Self::local(local)
        }
    }

    /// Takes a token from `subject`'s bucket under `policy`. Never fails.
    pub async fn check(&self, policy: &Policy, subject: &str) -> Decision {
        let key = format!("{}:{subject}", policy.name);
        if let Some(shared) = &self.shared {
            match shared.check(&key, &policy.quota).await {
                Ok(decision) => return decision,
                Err(e) => self.fell_back(shared.backend(), &e),
            }
        }
        self.local.take(&key, &policy.quota)
    }

    fn fell_back(&self, backend: &str, error: &StoreError) {
        metrics::counter!("fb_rate_limit_fallbacks_total").increment(1);
        let mut log = self
            .fallback_log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let due = log
            .last_warning
            .is_none_or(|at| at.elapsed() >= FALLBACK_WARNING_EVERY);
        if !due {
            log.unreported += 1;
            return;
        }
        let unreported = std::mem::take(&mut log.unreported);
        log.last_warning = Some(Instant::now());
        drop(log);
        tracing::warn!(
            backend,
            error = %error,
            failures_since_last_warning = unreported,
            "The shared rate-limit store failed; limiting on this node alone until it answers."
        );
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use fb_testkit::FakeClock;

    use super::*;

    /// A shared store that is down: every check fails like an unreachable server's.
    struct Unreachable;

    #[async_trait]
    impl RateLimitStore for Unreachable {
        fn backend(&self) -> &'static str {
            "unreachable"
        }

        async fn check(&self, _: &str, _: &Quota) -> Result<Decision, StoreError> {
            Err(StoreError::Unavailable("connection refused".into()))
        }
    }

    fn policy(name: &'static str, burst: u32) -> Policy {
        Policy {
            name,
            quota: Quota::new(burst, Duration::from_secs(60)).unwrap(),
        }
    }

    fn local() -> MemoryRateLimitStore {
        MemoryRateLimitStore::new(1_000, Arc::new(FakeClock::new()))
    }

    #[tokio::test]
    async fn a_failing_shared_store_falls_back_to_local_limits() {
        let limiter = Limiter::shared(Arc::new(Unreachable), local());
        let p = policy("ip", 2);
        let allowed: Vec<bool> = [
            limiter.check(&p, "10.0.0.1").await,
            limiter.check(&p, "10.0.0.1").await,
            limiter.check(&p, "10.0.0.1").await,
        ]
        .iter()
        .map(|d| d.allowed)
        .collect();
        assert_eq!(allowed, [true, true, false], "still limited, on this node");
        let log = limiter.fallback_log.lock().unwrap();
        assert!(log.last_warning.is_some());
        assert_eq!(log.unreported, 2, "one warning, the rest counted");
    }

    #[tokio::test]
    async fn policies_and_subjects_have_their_own_buckets() {
        let limiter = Limiter::local(local());
        let (ip, login) = (policy("ip", 1), policy("login_ip", 1));
        assert!(limiter.check(&ip, "10.0.0.1").await.allowed);
        assert!(!limiter.check(&ip, "10.0.0.1").await.allowed);
        assert!(limiter.check(&login, "10.0.0.1").await.allowed);
        assert!(limiter.check(&ip, "10.0.0.2").await.allowed);
    }
}
