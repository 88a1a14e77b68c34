//! How long one target's calls may take and how they are retried.

use std::time::Duration;

use rand::Rng;

/// The time and retry budget of one target's calls.
///
/// Every attempt has its own time-out, and the whole call (attempts and the waits between them)
/// has a deadline. A call stops at whichever comes first: a success, a permanent error, the last
/// attempt, or the deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    attempt_timeout: Duration,
    deadline: Duration,
    max_attempts: u32,
    backoff: Backoff,
}

impl Policy {
    /// A policy with the given time budgets, three attempts and the default back-off.
    pub fn new(attempt_timeout: Duration, deadline: Duration) -> Self {
        Self {
            attempt_timeout,
            deadline,
            ..Self::default()
        }
    }

    /// How many times the operation may run in one call, the first included. At least one.
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    pub fn attempt_timeout(&self) -> Duration {
        self.attempt_timeout
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }
}

impl Default for Policy {
    /// 10 s per attempt, 30 s in all, three attempts, back-off from 100 ms capped at 5 s: sized
    /// for calls to services on the plant's network or the internet, not for in-process work.
    fn default() -> Self {
        Self {
            attempt_timeout: Duration::from_secs(10),
            deadline: Duration::from_secs(30),
            max_attempts: 3,
            backoff: Backoff::default(),
        }
    }
}

/// Exponential back-off with *full jitter*: before retry `n` (1 for the first retry) the call
/// waits a uniformly random time in `[0, min(cap, base · 2^(n-1))]`.
///
/// Why full jitter rather than decorrelated jitter: in the simulations of Marc Brooker's "Exponential
/// Backoff and Jitter" (AWS Architecture Blog, 2015) both spread competing clients out and do far
/// less work than no jitter; full jitter made the fewest calls and decorrelated finished a little
/// sooner. Full jitter also depends on nothing but the retry number, so a wait is a pure function
/// of (retry, random draw): nothing to carry between attempts, and each bound is testable on its
/// own. Decorrelated jitter carries the previous wait and can grow past a short deadline faster.
/// Its one weakness, a wait close to zero now and then, costs a single early attempt, which is
/// what the breaker is for if the dependency is really down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
}

impl Backoff {
    /// `base` is the ceiling of the first retry's wait; ceilings double up to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap: cap.max(base),
        }
    }

    /// The longest wait before retry `retry` (1 for the first retry).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1);
        let factor = 1u32.checked_shl(doublings).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The wait before retry `retry`: uniform in `[0, ceiling(retry)]`.
    pub fn delay(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        // u64 nanoseconds reach 584 years, far beyond any cap.
        let ceiling = u64::try_from(self.ceiling(retry).as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(0..=ceiling))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn ceilings_double_from_the_base_up_to_the_cap() {
        let backoff = Backoff::new(100 * MS, 1000 * MS);
        let ceilings: Vec<_> = (1..=6).map(|n| backoff.ceiling(n)).collect();
        assert_eq!(
            ceilings,
            [100 * MS, 200 * MS, 400 * MS, 800 * MS, 1000 * MS, 1000 * MS]
        );
        // Far retries neither overflow nor pass the cap.
        assert_eq!(backoff.ceiling(64), 1000 * MS);
        assert_eq!(backoff.ceiling(u32::MAX), 1000 * MS);
    }

    #[test]
    fn a_cap_below_the_base_is_raised_to_it() {
        let backoff = Backoff::new(500 * MS, 100 * MS);
        assert_eq!(backoff.ceiling(1), 500 * MS);
        assert_eq!(backoff.ceiling(3), 500 * MS);
    }

    #[test]
    fn full_jitter_spreads_waits_over_the_whole_range() {
        let backoff = Backoff::new(100 * MS, 10_000 * MS);
        let mut rng = SmallRng::seed_from_u64(7);
        for retry in 1..=8 {
            let ceiling = backoff.ceiling(retry);
            let waits: Vec<Duration> = (0..2000).map(|_| backoff.delay(retry, &mut rng)).collect();
            assert!(waits.iter().all(|w| *w <= ceiling), "retry {retry}");
            // Uniform on [0, ceiling]: the mean is near the middle, and both ends are reached,
            // which tells full jitter from "equal jitter" (never below ceiling / 2).
            let mean = waits.iter().sum::<Duration>() / 2000;
            assert!(
                mean > ceiling * 45 / 100 && mean < ceiling * 55 / 100,
                "{mean:?}"
            );
            assert!(waits.iter().any(|w| *w < ceiling / 10), "retry {retry}");
            assert!(waits.iter().any(|w| *w > ceiling * 9 / 10), "retry {retry}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_waits() {
        let backoff = Backoff::default();
        let draw = |seed| {
            let mut rng = SmallRng::seed_from_u64(seed);
            (1..=5)
                .map(|n| backoff.delay(n, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(42), draw(42));
        assert_ne!(draw(42), draw(43));
    }

    #[test]
    fn a_policy_runs_the_operation_at_least_once() {
        let policy = Policy::default().with_max_attempts(0);
        assert_eq!(policy.max_attempts(), 1);
    }
}
