//! Rate limits as token buckets, computed with GCRA (the generic cell rate algorithm).
//!
//! A [`Quota`] is a bucket of `burst` tokens that refills continuously over `period`: a client
//! may send `burst` requests at once, then one every `period / burst`. GCRA keeps one number per
//! bucket instead of a token count and a refill time: the *theoretical arrival time* (TAT), the
//! instant at which the bucket will be full again. That single number is what a store keeps per
//! key, which is what makes a shared store (one atomic read-modify-write of one value) simple.
//!
//! Times are whole microseconds since the Unix epoch, as `i64`: exact in Redis' Lua numbers
//! (doubles, exact below 2^53, i.e. until the year 2255), and the precision of every other time
//! in the product.

use std::time::Duration;

/// A token bucket: `burst` requests at once, refilled evenly over `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    burst: u32,
    period: Duration,
    /// `period / burst` in µs: the time one token takes to come back.
    interval_micros: i64,
}

impl Quota {
    /// `None` when `burst` is 0 or the period is shorter than one microsecond per token.
    pub fn new(burst: u32, period: Duration) -> Option<Quota> {
        let period_micros = i64::try_from(period.as_micros()).ok()?;
        let interval_micros = period_micros.checked_div(i64::from(burst))?;
        (interval_micros >= 1).then_some(Quota {
            burst,
            period,
            interval_micros,
        })
    }

    pub fn burst(&self) -> u32 {
        self.burst
    }

    pub fn period(&self) -> Duration {
        self.period
    }

    /// Time for one token to come back, in µs.
    pub fn interval_micros(&self) -> i64 {
        self.interval_micros
    }

    /// Time for an empty bucket to fill, in µs: `burst` intervals (equal to `period` up to the
    /// rounding of the interval down to whole microseconds).
    pub fn capacity_micros(&self) -> i64 {
        self.interval_micros.saturating_mul(i64::from(self.burst))
    }
}

/// The answer to one request against one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Tokens left after this request (0 when refused).
    pub remaining: u32,
    /// When refused: how long until one token is back. Zero when allowed.
    pub retry_after: Duration,
    /// How long until the bucket is full again.
    pub reset_after: Duration,
}

/// One GCRA step: the decision for a request arriving at `now` on a bucket whose stored TAT is
/// `stored_tat` (`None`: never used or forgotten, i.e. full), and the TAT to store when the
/// request is allowed. A refused request changes nothing, so a client that keeps knocking while
/// refused does not push its own recovery further away.
pub fn decide(stored_tat: Option<i64>, now: i64, quota: &Quota) -> (Decision, Option<i64>) {
    // A TAT in the past means the bucket has been full since then; it counts from now.
    let tat = stored_tat.map_or(now, |t| t.max(now));
    let new_tat = tat.saturating_add(quota.interval_micros);
    // The request fits if, after taking its token, the bucket is not more than empty.
    let allow_at = new_tat.saturating_sub(quota.capacity_micros());
    if now < allow_at {
        let decision = Decision {
            allowed: false,
            remaining: 0,
            retry_after: micros(allow_at - now),
            reset_after: micros(tat - now),
        };
        return (decision, None);
    }
    let reset_after = new_tat - now;
    let free = quota.capacity_micros() - reset_after;
    let remaining = u32::try_from(free / quota.interval_micros).unwrap_or(u32::MAX);
    let decision = Decision {
        allowed: true,
        remaining,
        retry_after: Duration::ZERO,
        reset_after: micros(reset_after),
    };
    (decision, Some(new_tat))
}

fn micros(value: i64) -> Duration {
    Duration::from_micros(u64::try_from(value).unwrap_or(0))
}

/// Whole seconds, rounded up: what `Retry-After` and the RateLimit header fields carry, so that
/// a client that waits that long finds its token back.
pub fn whole_seconds_up(d: Duration) -> u64 {
    d.as_micros()
        .div_ceil(1_000_000)
        .try_into()
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;

    fn quota(burst: u32, period_secs: u64) -> Quota {
        Quota::new(burst, Duration::from_secs(period_secs)).unwrap()
    }

    /// Runs `count` requests at `now`, threading the stored TAT through like a store does.
    fn run(tat: &mut Option<i64>, now: i64, quota: &Quota, count: usize) -> Vec<Decision> {
        (0..count)
            .map(|_| {
                let (decision, new_tat) = decide(*tat, now, quota);
                if let Some(t) = new_tat {
                    *tat = Some(t);
                }
                decision
            })
            .collect()
    }

    #[test]
    fn a_full_bucket_allows_the_burst_then_refuses() {
        let q = quota(3, 3); // one token per second
        let mut tat = None;
        let decisions = run(&mut tat, 100 * SECOND, &q, 4);
        let remaining: Vec<u32> = decisions.iter().map(|d| d.remaining).collect();
        let allowed: Vec<bool> = decisions.iter().map(|d| d.allowed).collect();
        assert_eq!(allowed, [true, true, true, false]);
        assert_eq!(remaining, [2, 1, 0, 0]);
        assert_eq!(decisions[0].reset_after, Duration::from_secs(1));
        assert_eq!(decisions[2].reset_after, Duration::from_secs(3));
        assert_eq!(decisions[3].retry_after, Duration::from_secs(1));
        assert_eq!(decisions[3].reset_after, Duration::from_secs(3));
        assert_eq!(tat, Some(103 * SECOND), "refusals leave the TAT alone");
    }

    #[test]
    fn retry_after_is_exact_to_the_microsecond() {
        let q = quota(2, 1); // a token every 500 ms
        let mut tat = None;
        run(&mut tat, 0, &q, 2);
        let refused = run(&mut tat, 123_456, &q, 1)[0];
        assert!(!refused.allowed);
        assert_eq!(
            refused.retry_after,
            Duration::from_micros(500_000 - 123_456)
        );
        // One microsecond early is still too early; on time is allowed.
        assert!(!run(&mut tat, 499_999, &q, 1)[0].allowed);
        let on_time = run(&mut tat, 500_000, &q, 1)[0];
        assert!(on_time.allowed);
        assert_eq!(on_time.remaining, 0);
    }

    #[test]
    fn tokens_come_back_one_interval_at_a_time() {
        let q = quota(4, 4);
        let mut tat = None;
        run(&mut tat, 0, &q, 4);
        // 2.5 s later two and a half tokens are back: two whole ones.
        let later = run(&mut tat, 2_500_000, &q, 3);
        assert_eq!(
            later.iter().map(|d| d.allowed).collect::<Vec<_>>(),
            [true, true, false]
        );
        assert_eq!(later[0].remaining, 1);
        assert_eq!(later[2].retry_after, Duration::from_millis(500));
    }

    #[test]
    fn an_idle_bucket_is_full_again_and_never_more_than_full() {
        let q = quota(3, 60);
        let mut tat = None;
        run(&mut tat, 0, &q, 3);
        // Long after the bucket filled up, still only the burst is available.
        let decisions = run(&mut tat, 3_600 * SECOND, &q, 4);
        assert_eq!(
            decisions.iter().filter(|d| d.allowed).count(),
            3,
            "idle time does not accumulate beyond the burst"
        );
        assert_eq!(decisions[0].remaining, 2);
    }

    #[test]
    fn a_stored_tat_in_the_past_counts_as_full() {
        let q = quota(5, 5);
        let (fresh, _) = decide(None, 10 * SECOND, &q);
        let (stale, _) = decide(Some(SECOND), 10 * SECOND, &q);
        assert_eq!(fresh, stale);
    }

    #[test]
    fn quotas_reject_nonsense() {
        assert!(Quota::new(0, Duration::from_secs(1)).is_none());
        assert!(Quota::new(10, Duration::from_micros(5)).is_none());
        let q = Quota::new(3, Duration::from_secs(1)).unwrap();
        assert_eq!(q.interval_micros(), 333_333);
        assert_eq!(q.capacity_micros(), 999_999);
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(whole_seconds_up(Duration::ZERO), 0);
        assert_eq!(whole_seconds_up(Duration::from_micros(1)), 1);
        assert_eq!(whole_seconds_up(Duration::from_secs(2)), 2);
        assert_eq!(whole_seconds_up(Duration::from_millis(2_001)), 3);
    }
}
