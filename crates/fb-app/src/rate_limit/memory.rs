//! Token buckets in this process: the store of a single node, and every node's fallback when
//! the shared store cannot answer.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use fb_core::Clock;
use fb_core::ports::{RateLimitStore, StoreError};
use fb_core::rate_limit::{self, Decision, Quota};

/// Lock shards: a sweep of one shard (see [`MemoryRateLimitStore`]) holds up an
/// eighth of the keys, not all of them.
const SHARDS: usize = 8;

/// Buckets in memory, at most `max_keys` of them.
///
/// Memory is bounded: a key costs its text plus about 60 bytes, so the default 100,000 keys
/// hold well under 20 MB. When a shard is full, it first forgets the buckets that are full
/// again (an idle bucket and a forgotten one answer alike, so that loses nothing); if that is
/// not enough, it forgets the tenth of its buckets nearest to full. Forgetting a bucket can only
/// let its client through sooner, never refuse anyone, and with keys chosen by clients (many
/// addresses, many usernames) an attacker can at worst reset buckets, never grow memory.
///
/// Keys are hashed with a per-process random seed, because clients choose them.
pub struct MemoryRateLimitStore {
    shards: Box<[Mutex<HashMap<String, i64>>]>,
    shard_capacity: usize,
    hasher: RandomState,
    clock: Arc<dyn Clock>,
}

impl MemoryRateLimitStore {
    pub fn new(max_keys: usize, clock: Arc<dyn Clock>) -> Self {
        // Small bounds (tests) get one shard, so that the bound is exact.
        let shards = if max_keys < SHARDS * 16 { 1 } else { SHARDS };
        Self {
            shards: (0..shards).map(|_| Mutex::new(HashMap::new())).collect(),
            shard_capacity: (max_keys / shards).max(1),
            hasher: RandomState::new(),
            clock,
        }
    }

    /// Takes a token from the bucket `key`. Never waits on anything but a short lock.
    pub fn take(&self, key: &str, quota: &Quota) -> Decision {
        let now = unix_micros(self.clock.now());
        let index = (self.hasher.hash_one(key) as usize) % self.shards.len();
        let mut shard = self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let stored = shard.get(key).copied();
        let (decision, new_tat) = rate_limit::decide(stored, now, quota);
        if let Some(tat) = new_tat {
            match shard.get_mut(key) {
                Some(slot) => *slot = tat,
                None => {
                    if shard.len() >= self.shard_capacity {
                        make_room(&mut shard, now, self.shard_capacity);
                    }
                    shard.insert(key.to_owned(), tat);
                }
            }
        }
        decision
    }

    /// Buckets held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Frees at least one slot in a full shard: idle buckets first, then the tenth nearest to full
/// (smallest TAT), so that a sweep happens once per tenth of the capacity, not per insert.
fn make_room(shard: &mut HashMap<String, i64>, now: i64, capacity: usize) {
    shard.retain(|_, tat| *tat > now);
    let target = capacity - capacity.div_ceil(10);
    if shard.len() <= target {
        return;
    }
    let mut tats: Vec<i64> = shard.values().copied().collect();
    let cut = shard.len() - target;
    let (_, threshold, _) = tats.select_nth_unstable(cut - 1);
    let threshold = *threshold;
    // Everything below the threshold goes, and of the buckets exactly at it only as many as
    // needed, so that ties do not empty the shard.
    let below = tats.iter().filter(|tat| **tat < threshold).count();
    let mut ties_to_drop = cut - below;
    shard.retain(|_, tat| {
        if *tat < threshold {
            false
        } else if *tat == threshold && ties_to_drop > 0 {
            ties_to_drop -= 1;
            false
        } else {
            true
        }
    });
}

pub(crate) fn unix_micros(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

#[async_trait]
impl RateLimitStore for MemoryRateLimitStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn check(&self, key: &str, quota: &Quota) -> Result<Decision, StoreError> {
        Ok(self.take(key, quota))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use fb_testkit::FakeClock;

    use super::*;

    struct Fixture {
        store: Arc<dyn RateLimitStore>,
    }

    impl Fixture {
        async fn finish(self) {}
    }

    async fn open_rate_limits() -> Fixture {
        Fixture {
            store: Arc::new(MemoryRateLimitStore::new(
                10_000,
                Arc::new(FakeClock::new()),
            )),
        }
    }

    fb_testkit::rate_limit_conformance!();

    fn per_minute(burst: u32) -> Quota {
        Quota::new(burst, Duration::from_secs(60)).unwrap()
    }

    #[test]
    fn memory_stays_within_the_bound() {
        let clock = Arc::new(FakeClock::new());
        let store = MemoryRateLimitStore::new(50, clock.clone());
        for i in 0..1_000 {
            store.take(&format!("client-{i}"), &per_minute(5));
            assert!(store.len() <= 50, "{} buckets after {i}", store.len());
        }
        let big = MemoryRateLimitStore::new(1_000, clock);
        for i in 0..10_000 {
            big.take(&format!("client-{i}"), &per_minute(5));
        }
        assert!(big.len() <= 1_000);
    }

    #[test]
    fn idle_buckets_are_forgotten_first() {
        let clock = Arc::new(FakeClock::new());
        let store = MemoryRateLimitStore::new(10, clock.clone());
        let q = per_minute(2);
        // A busy client empties its bucket...
        store.take("busy", &q);
        store.take("busy", &q);
        // ...and nine others use a token each, then go quiet until their buckets are full.
        for i in 0..9 {
            store.take(
                &format!("idle-{i}"),
                &Quota::new(2, Duration::from_secs(1)).unwrap(),
            );
        }
        clock.advance(time::Duration::seconds(5));
        // New clients arrive; the busy bucket survives and still refuses.
        for i in 0..5 {
            store.take(&format!("new-{i}"), &q);
        }
        assert_eq!(store.len(), 6);
        assert!(!store.take("busy", &q).allowed);
    }

    #[test]
    fn when_nothing_is_idle_the_buckets_nearest_to_full_go() {
        let clock = Arc::new(FakeClock::new());
        let store = MemoryRateLimitStore::new(10, clock.clone());
        let q = per_minute(3);
        for i in 0..10 {
            store.take(&format!("light-{i}"), &q);
        }
        store.take("light-0", &q); // now the only one with two tokens gone
        store.take("heavy", &q);
        assert_eq!(store.len(), 10, "a tenth was forgotten, then heavy added");
        // The heaviest user was kept: it has two tokens gone and is refused after one more.
        store.take("light-0", &q);
        assert!(!store.take("light-0", &q).allowed);
    }
}
