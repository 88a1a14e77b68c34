//! The rate-limit store conformance suite: the same cases for the in-process store and every
//! shared one. Quotas refill over an hour, so that no token can come back while a case runs
//! (the shared stores keep real time): nothing here depends on how fast the machine is.

use std::sync::Arc;
use std::time::Duration;

use fb_core::ports::RateLimitStore;
use fb_core::rate_limit::Quota;

const HOUR: Duration = Duration::from_secs(3600);

fn quota(burst: u32) -> Quota {
    Quota::new(burst, HOUR).unwrap()
}

/// A key no other case (or concurrent run sharing a store) uses.
fn fresh_key(name: &str) -> String {
    format!("{name}:{}", uuid::Uuid::now_v7())
}

/// Generates one test per rate-limit conformance case. Expects `async fn open_rate_limits()`
/// in scope, returning a fixture with a `store: Arc<dyn RateLimitStore>` field and an
/// `async fn finish(self)`.
#[macro_export]
macro_rules! rate_limit_conformance {
    () => {
        $crate::rate_limit_conformance!(@cases
            rate_limit_allows_the_burst_then_refuses,
            rate_limit_keys_are_independent,
            rate_limit_refusals_take_no_token,
            rate_limit_concurrent_checks_admit_exactly_the_burst,
            rate_limit_quotas_of_one,
        );
    };
    (@cases $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = open_rate_limits().await;
                $crate::conformance::$case(fixture.store.clone()).await;
                fixture.finish().await;
            }
        )+
    };
}

pub async fn rate_limit_allows_the_burst_then_refuses(store: Arc<dyn RateLimitStore>) {
    let key = fresh_key("burst");
    let q = quota(3); // a token every 20 minutes
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let d = store.check(&key, &q).await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.retry_after, Duration::ZERO);
        remaining.push(d.remaining);
    }
    assert_eq!(remaining, [2, 1, 0]);
    let refused = store.check(&key, &q).await.unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    let interval = HOUR / 3;
    assert!(
        refused.retry_after > interval - Duration::from_secs(60) && refused.retry_after <= interval,
        "one token comes back within an interval: {:?}",
        refused.retry_after
    );
    assert!(
        refused.reset_after > HOUR - Duration::from_secs(60) && refused.reset_after <= HOUR,
        "an empty bucket is full again after the whole period: {:?}",
        refused.reset_after
    );
}

pub async fn rate_limit_keys_are_independent(store: Arc<dyn RateLimitStore>) {
    let (a, b) = (fresh_key("a"), fresh_key("b"));
    let q = quota(1);
    assert!(store.check(&a, &q).await.unwrap().allowed);
    assert!(!store.check(&a, &q).await.unwrap().allowed);
    let other = store.check(&b, &q).await.unwrap();
    assert!(other.allowed, "another key has its own bucket");
    assert_eq!(other.remaining, 0);
}

pub async fn rate_limit_refusals_take_no_token(store: Arc<dyn RateLimitStore>) {
    let key = fresh_key("refusals");
    let q = quota(2);
    store.check(&key, &q).await.unwrap();
    store.check(&key, &q).await.unwrap();
    let first = store.check(&key, &q).await.unwrap();
    let mut last = first;
    for _ in 0..5 {
        last = store.check(&key, &q).await.unwrap();
        assert!(!last.allowed);
    }
    assert!(
        last.retry_after <= first.retry_after,
        "knocking while refused must not push recovery further away: {:?} then {:?}",
        first.retry_after,
        last.retry_after
    );
}

pub async fn rate_limit_concurrent_checks_admit_exactly_the_burst(store: Arc<dyn RateLimitStore>) {
    let key = Arc::new(fresh_key("concurrent"));
    let q = quota(10);
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move { store.check(&key, &q).await.unwrap().allowed })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        if task.await.unwrap() {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 10, "the check and the update are one atomic step");
}

pub async fn rate_limit_quotas_of_one(store: Arc<dyn RateLimitStore>) {
    let key = fresh_key("one");
    let q = quota(1);
    let first = store.check(&key, &q).await.unwrap();
    assert!(first.allowed);
    assert_eq!(first.remaining, 0);
    assert!(first.reset_after > HOUR - Duration::from_secs(60) && first.reset_after <= HOUR);
    let refused = store.check(&key, &q).await.unwrap();
    assert!(!refused.allowed);
    assert!(refused.retry_after > HOUR - Duration::from_secs(60));
}
