//! The Redis rate-limit store against the Redis on this machine (`FB_TEST_REDIS_URL`, default
//! redis://127.0.0.1:6379). Every test uses a key prefix of its own, so tests run in parallel
//! and leave nothing behind (their keys are deleted at the end, and expire anyway).

// Test code: a failed expectation should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use fb_core::ports::{RateLimitStore, StoreError};
use fb_core::rate_limit::Quota;
use fb_redis::{Options, RedisRateLimitStore};

fn redis_url() -> String {
    std::env::var("FB_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn options(prefix: &str) -> Options {
    Options {
        url: redis_url(),
        key_prefix: prefix.to_owned(),
        // Generous: the machine is shared and busy; time-outs have their own test below.
        timeout: Duration::from_secs(5),
    }
}

struct Fixture {
    store: Arc<dyn RateLimitStore>,
    prefix: String,
}

impl Fixture {
    async fn finish(self) {
        delete_prefix(&self.prefix).await;
    }
}

fn fresh_prefix() -> String {
    format!("fbtest:{}:", uuid::Uuid::now_v7().simple())
}

async fn open_rate_limits() -> Fixture {
    let prefix = fresh_prefix();
    Fixture {
        store: Arc::new(RedisRateLimitStore::open(&options(&prefix)).unwrap()),
        prefix,
    }
}

async fn connection() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis_url()).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

async fn delete_prefix(prefix: &str) {
    let mut connection = connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut connection)
            .await
            .unwrap();
    }
}

fb_testkit::rate_limit_conformance!();

fn per_hour(burst: u32) -> Quota {
    Quota::new(burst, Duration::from_secs(3600)).unwrap()
}

#[tokio::test]
async fn two_nodes_share_one_bucket() {
    let prefix = fresh_prefix();
    let node_a = RedisRateLimitStore::open(&options(&prefix)).unwrap();
    let node_b = RedisRateLimitStore::open(&options(&prefix)).unwrap();
    let q = per_hour(3);
    assert!(node_a.check("ip:10.0.0.1", &q).await.unwrap().allowed);
    assert!(node_b.check("ip:10.0.0.1", &q).await.unwrap().allowed);
    let third = node_a.check("ip:10.0.0.1", &q).await.unwrap();
    assert!(third.allowed);
    assert_eq!(third.remaining, 0, "node A saw node B's request");
    assert!(!node_b.check("ip:10.0.0.1", &q).await.unwrap().allowed);
    delete_prefix(&prefix).await;
}

#[tokio::test]
async fn keys_carry_the_prefix_and_expire_when_the_bucket_is_full_again() {
    let prefix = fresh_prefix();
    let store = RedisRateLimitStore::open(&options(&prefix)).unwrap();
    let q = Quota::new(10, Duration::from_secs(600)).unwrap(); // a token a minute
    store.check("principal:user:1", &q).await.unwrap();
    store.check("principal:user:1", &q).await.unwrap();
    let key = store.key("principal:user:1");
    assert_eq!(key, format!("{prefix}ratelimit:principal:user:1"));
    let mut connection = connection().await;
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    // Two tokens taken: full again in two minutes.
    assert!(
        ttl_ms > 60_000 && ttl_ms <= 120_000,
        "the key expires when its bucket is full again, not {ttl_ms} ms"
    );
    let tat: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(
        tat.len() == 16 && tat.bytes().all(|b| b.is_ascii_digit()),
        "the TAT is stored as whole microseconds: {tat}"
    );
    delete_prefix(&prefix).await;
}

#[tokio::test]
async fn an_unreachable_redis_is_unavailable_not_an_error_of_the_request() {
    let store = RedisRateLimitStore::open(&Options {
        url: "redis://127.0.0.1:1".to_owned(),
        key_prefix: fresh_prefix(),
        timeout: Duration::from_millis(50),
    })
    .unwrap();
    for _ in 0..3 {
        let result = store.check("ip:10.0.0.1", &per_hour(3)).await;
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
    }
}

/// A server that accepts connections and never says a word: what a hung Redis looks like.
async fn silent_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, silent)
}

#[tokio::test]
async fn a_redis_that_never_answers_times_out() {
    let (addr, silent) = silent_server().await;
    let store = RedisRateLimitStore::open(&Options {
        url: format!("redis://{addr}"),
        key_prefix: fresh_prefix(),
        timeout: Duration::from_millis(50),
    })
    .unwrap();
    let result = store.check("ip:10.0.0.1", &per_hour(3)).await;
    match result {
        Err(StoreError::Unavailable(e)) => assert!(e.to_string().contains("50 ms"), "{e}"),
        other => panic!("expected a time-out, got {other:?}"),
    }
    silent.abort();
}

#[test]
fn a_malformed_url_is_refused_without_echoing_it() {
    let result = RedisRateLimitStore::open(&Options {
        url: "http://user:hunter2@somewhere".to_owned(),
        key_prefix: String::new(),
        timeout: Duration::from_millis(50),
    });
    let message = result.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("not valid"), "{message}");
    assert!(!message.contains("hunter2"));
}

/// A Redis that hangs costs one time-out per check only until the circuit opens: then checks
/// are refused without asking it, until the breaker's probe.
#[tokio::test]
async fn a_hanging_redis_opens_the_circuit_and_is_no_longer_asked() {
    let (addr, silent) = silent_server().await;
    let store = RedisRateLimitStore::open(&Options {
        url: format!("redis://{addr}"),
        key_prefix: fresh_prefix(),
        timeout: Duration::from_millis(20),
    })
    .unwrap();
    assert_eq!(store.circuit_state(), fb_outbound::CircuitState::Closed);
    let mut timed_out = 0;
    while store.circuit_state() != fb_outbound::CircuitState::Open {
        let result = store.check("ip:10.0.0.1", &per_hour(3)).await;
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        timed_out += 1;
        assert!(timed_out <= 10, "ten failures of ten open the circuit");
    }
    match store.check("ip:10.0.0.1", &per_hour(3)).await {
        Err(StoreError::Unavailable(e)) => {
            assert!(e.to_string().contains("circuit open"), "{e}");
        }
        other => panic!("expected a refusal by the open circuit, got {other:?}"),
    }
    silent.abort();
}
