//! The circuit breaker: stop calling a dependency that is down, and find out when it is back.
//!
//! The design is resilience4j's *count-based sliding window*: the outcomes of the last
//! `window` calls are kept in a ring; once at least `minimum_calls` are in it, the circuit opens
//! when the failures among them reach `failure_ratio`. ("N consecutive failures" is the special
//! case `window = minimum_calls = N`, `failure_ratio = 1.0`.) A window rather than a streak, so
//! that a dependency failing every other call still trips the breaker.
//!
//! ```text
//!   closed ──(failure ratio reached)──► open ──(open_for elapsed, next call)──► half-open
//!     ▲                                  ▲                                         │
//!     │                                  └───────────(a probe fails)───────────────┤
//!     └──────────────────────(half_open_probes probes succeed)─────────────────────┘
//! ```
//!
//! While open, calls are refused at once without running. The move to half-open happens when a
//! call arrives after `open_for`, not on a timer, so the state gauge reads "open" until then.
//! Half-open admits at most `half_open_probes` calls; any failure among them re-opens the circuit
//! for another `open_for`, and when all of them succeed it closes with an empty window.
//!
//! Every admitted call holds a [`Permit`] and reports its outcome through it. Permits carry the
//! generation of the state they were issued in, and an outcome is counted only in that same
//! state: a slow call admitted while closed that fails after the circuit has gone half-open
//! says nothing about the probe. A permit dropped without an outcome (the caller's future was
//! cancelled) frees its probe slot.
//!
//! The state sits behind a `std::sync::Mutex` held for a few comparisons, never across an
//! `await`. The state gauge is set inside the lock, so that racing transitions cannot leave it
//! showing a state the breaker has already left.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::telemetry;

/// When the circuit opens and how it recovers.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSettings {
    window: u32,
    minimum_calls: u32,
    failure_ratio: f64,
    open_for: Duration,
    half_open_probes: u32,
}

impl BreakerSettings {
    /// Opens when, among the last `window` calls (and at least `minimum_calls` of them), the
    /// share of failures reaches `failure_ratio` (clamped to `(0, 1]`). `minimum_calls` is
    /// clamped to `1..=window`, so that one failure in a quiet period does not open the circuit
    /// unless asked to.
    pub fn new(window: u32, minimum_calls: u32, failure_ratio: f64) -> Self {
        let window = window.max(1);
        let failure_ratio = if failure_ratio.is_nan() {
            1.0
        } else {
            failure_ratio.clamp(f64::MIN_POSITIVE, 1.0)
        };
        Self {
            window,
            minimum_calls: minimum_calls.clamp(1, window),
            failure_ratio,
            ..Self::default()
        }
    }

    /// Opens after `failures` failures in a row.
    pub fn consecutive_failures(failures: u32) -> Self {
        Self::new(failures, failures, 1.0)
    }

    /// How long the circuit stays open before a probe is let through.
    pub fn with_open_for(mut self, open_for: Duration) -> Self {
        self.open_for = open_for;
        self
    }

    /// How many probe calls half-open admits, all of which must succeed to close. At least one.
    pub fn with_half_open_probes(mut self, probes: u32) -> Self {
        self.half_open_probes = probes.max(1);
        self
    }

    pub fn open_for(&self) -> Duration {
        self.open_for
    }
}

impl Default for BreakerSettings {
    /// Half of the last 10 calls failed, with at least 5 calls seen; open for 30 s; one probe.
    /// Outbound targets of a plant (an inference server, a ticketing system) see a few calls a
    /// minute, so the window is small enough to react within one incident.
    fn default() -> Self {
        Self {
            window: 10,
            minimum_calls: 5,
            failure_ratio: 0.5,
            open_for: Duration::from_secs(30),
            half_open_probes: 1,
        }
    }
}

/// The three states, with the values the `fb_outbound_circuit_state` gauge shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    HalfOpen,
    Open,
}

impl CircuitState {
    pub fn gauge_value(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::HalfOpen => 1.0,
            Self::Open => 2.0,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }
}

/// The breaker refused a call without running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// When the circuit is open: the time until a probe will be let through. `None` while
    /// half-open with every probe slot taken: that ends when a probe does, at no known time.
    pub retry_after: Option<Duration>,
}

/// A breaker for one target. Clones share the state.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    target: Arc<str>,
    settings: BreakerSettings,
    state: Mutex<Machine>,
}

#[derive(Debug)]
struct Machine {
    /// Bumped on every transition; outcomes of permits from another generation are ignored.
    generation: u64,
    phase: Phase,
}

#[derive(Debug)]
enum Phase {
    Closed(Window),
    Open { until: Instant },
    HalfOpen { admitted: u32, succeeded: u32 },
}

/// The outcomes of the last `capacity` calls, `true` for a failure.
#[derive(Debug)]
struct Window {
    outcomes: Vec<bool>,
    next: usize,
    failures: u32,
}

impl Window {
    fn new(capacity: u32) -> Self {
        Self {
            outcomes: Vec::with_capacity(capacity as usize),
            next: 0,
            failures: 0,
        }
    }

    fn record(&mut self, capacity: u32, failed: bool) {
        if self.outcomes.len() < capacity as usize {
            self.outcomes.push(failed);
        } else if let Some(slot) = self.outcomes.get_mut(self.next) {
            if *slot {
                self.failures -= 1;
            }
            *slot = failed;
        }
        self.next = (self.next + 1) % capacity as usize;
        if failed {
            self.failures += 1;
        }
    }

    fn trips(&self, settings: &BreakerSettings) -> bool {
        let calls = self.outcomes.len() as u32;
        calls >= settings.minimum_calls
            && f64::from(self.failures) >= settings.failure_ratio * f64::from(calls)
    }
}

impl CircuitBreaker {
    /// A closed breaker; sets `fb_outbound_circuit_state{target}` to 0.
    pub fn new(target: impl Into<Arc<str>>, settings: BreakerSettings) -> Self {
        let target = target.into();
        telemetry::circuit_state(&target, CircuitState::Closed);
        Self {
            shared: Arc::new(Shared {
                target,
                state: Mutex::new(Machine {
                    generation: 0,
                    phase: Phase::Closed(Window::new(settings.window)),
                }),
                settings,
            }),
        }
    }

    pub fn target(&self) -> &str {
        &self.shared.target
    }

    /// The state now. An open circuit whose `open_for` has passed still reads open: it turns
    /// half-open when the next call asks for a permit.
    pub fn state(&self) -> CircuitState {
        match self.lock().phase {
            Phase::Closed(_) => CircuitState::Closed,
            Phase::Open { .. } => CircuitState::Open,
            Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Asks to run one call. The permit must be told the outcome; dropping it untold means the
    /// call was abandoned.
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejected> {
        let mut machine = self.lock();
        let now = Instant::now();
        if let Phase::Open { until } = machine.phase {
            if now < until {
                return Err(Rejected {
                    retry_after: Some(until - now),
                });
            }
            self.transition(&mut machine, CircuitState::HalfOpen);
        }
        if let Phase::HalfOpen { admitted, .. } = &mut machine.phase {
            if *admitted >= self.shared.settings.half_open_probes {
                return Err(Rejected { retry_after: None });
            }
            *admitted += 1;
        }
        Ok(Permit {
            breaker: self,
            generation: machine.generation,
            settled: false,
        })
    }

    fn settle(&self, generation: u64, outcome: Outcome) {
        let mut machine = self.lock();
        if machine.generation != generation {
            return;
        }
        let settings = &self.shared.settings;
        let next = match (&mut machine.phase, outcome) {
            (Phase::Closed(window), Outcome::Success | Outcome::Failure) => {
                window.record(settings.window, outcome == Outcome::Failure);
                window.trips(settings).then_some(CircuitState::Open)
            }
            (Phase::HalfOpen { .. }, Outcome::Failure) => Some(CircuitState::Open),
            (Phase::HalfOpen { succeeded, .. }, Outcome::Success) => {
                *succeeded += 1;
                (*succeeded >= settings.half_open_probes).then_some(CircuitState::Closed)
            }
            (Phase::HalfOpen { admitted, .. }, Outcome::Abandoned) => {
                *admitted = admitted.saturating_sub(1);
                None
            }
            // Abandoned while closed: the call tells nothing. Open issues no permits.
            (Phase::Closed(_), Outcome::Abandoned) | (Phase::Open { .. }, _) => None,
        };
        if let Some(to) = next {
            self.transition(&mut machine, to);
        }
    }

    fn transition(&self, machine: &mut Machine, to: CircuitState) {
        let settings = &self.shared.settings;
        machine.generation += 1;
        machine.phase = match to {
            CircuitState::Closed => Phase::Closed(Window::new(settings.window)),
            CircuitState::Open => Phase::Open {
                until: crate::instant_after(Instant::now(), settings.open_for),
            },
            CircuitState::HalfOpen => Phase::HalfOpen {
                admitted: 0,
                succeeded: 0,
            },
        };
        telemetry::circuit_transition(&self.shared.target, to);
    }

    fn lock(&self) -> MutexGuard<'_, Machine> {
        // No code panics while holding the lock, and every update leaves the state whole, so a
        // poisoned lock still guards a consistent state.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    Failure,
    Abandoned,
}

/// Leave to make one call through the breaker.
#[derive(Debug)]
#[must_use = "a permit must be told the call's outcome"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    generation: u64,
    settled: bool,
}

impl Permit<'_> {
    /// The dependency answered: a result, or a permanent error about the request itself.
    pub fn success(mut self) {
        self.settled = true;
        self.breaker.settle(self.generation, Outcome::Success);
    }

    /// The dependency failed: a retryable error or a time-out.
    pub fn failure(mut self) {
        self.settled = true;
        self.breaker.settle(self.generation, Outcome::Failure);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.breaker.settle(self.generation, Outcome::Abandoned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_recorder::TestRecorder;

    const SECOND: Duration = Duration::from_secs(1);

    /// Makes one call per letter: `S` succeeds, `F` fails (spaces are for reading).
    fn play(breaker: &CircuitBreaker, outcomes: &str) {
        for outcome in outcomes.chars().filter(|c| !c.is_whitespace()) {
            let permit = breaker.try_acquire().unwrap();
            match outcome {
                'S' => permit.success(),
                'F' => permit.failure(),
                other => panic!("no outcome {other:?}"),
            }
        }
    }

    /// A breaker that opens on the first failure, for tests of what comes after.
    fn opening_at_once(open_for: Duration) -> CircuitBreaker {
        CircuitBreaker::new(
            "t",
            BreakerSettings::consecutive_failures(1).with_open_for(open_for),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_failures_open_the_circuit_and_a_success_resets_the_streak() {
        let breaker = CircuitBreaker::new("t", BreakerSettings::consecutive_failures(3));
        play(&breaker, "F F S F F");
        assert_eq!(breaker.state(), CircuitState::Closed);
        play(&breaker, "F");
        assert_eq!(breaker.state(), CircuitState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_opens_on_the_failure_ratio_once_it_has_enough_calls() {
        let breaker = CircuitBreaker::new("t", BreakerSettings::new(4, 4, 0.5));
        // Two failures, but only three calls seen: below the minimum.
        play(&breaker, "F S F");
        assert_eq!(breaker.state(), CircuitState::Closed);
        // 2 of the last 4 failed: 50 % reached.
        play(&breaker, "S");
        assert_eq!(breaker.state(), CircuitState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn old_outcomes_slide_out_of_the_window() {
        let breaker = CircuitBreaker::new("t", BreakerSettings::new(4, 4, 0.75));
        // The last four are never 3 failures: F F S S, F S S S, S S S F, S S F F.
        play(&breaker, "F F S S S F F");
        assert_eq!(breaker.state(), CircuitState::Closed);
        // S F F F: the early failures had slid out, these three count.
        play(&breaker, "F");
        assert_eq!(breaker.state(), CircuitState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn open_refuses_until_open_for_has_passed_then_admits_one_probe() {
        let breaker = opening_at_once(10 * SECOND);
        play(&breaker, "F");
        tokio::time::advance(4 * SECOND).await;
        let refused = breaker.try_acquire().unwrap_err();
        assert_eq!(refused.retry_after, Some(6 * SECOND));
        tokio::time::advance(6 * SECOND).await;
        let probe = breaker.try_acquire().unwrap();
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        // The probe is out: nobody else gets in, and nobody knows for how long.
        assert_eq!(breaker.try_acquire().unwrap_err().retry_after, None);
        probe.success();
        assert_eq!(breaker.state(), CircuitState::Closed);
        play(&breaker, "S");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_for_another_open_for() {
        let breaker = opening_at_once(10 * SECOND);
        play(&breaker, "F");
        tokio::time::advance(10 * SECOND).await;
        play(&breaker, "F");
        assert_eq!(breaker.state(), CircuitState::Open);
        let refused = breaker.try_acquire().unwrap_err();
        assert_eq!(refused.retry_after, Some(10 * SECOND));
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_closes_only_when_every_probe_succeeded() {
        let breaker = CircuitBreaker::new(
            "t",
            BreakerSettings::consecutive_failures(1)
                .with_open_for(SECOND)
                .with_half_open_probes(2),
        );
        play(&breaker, "F");
        tokio::time::advance(SECOND).await;
        let first = breaker.try_acquire().unwrap();
        let second = breaker.try_acquire().unwrap();
        assert!(breaker.try_acquire().is_err());
        first.success();
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        second.success();
        assert_eq!(breaker.state(), CircuitState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_probe_frees_its_slot() {
        let breaker = opening_at_once(SECOND);
        play(&breaker, "F");
        tokio::time::advance(SECOND).await;
        drop(breaker.try_acquire().unwrap());
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        play(&breaker, "S");
        assert_eq!(breaker.state(), CircuitState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn outcomes_of_calls_admitted_in_an_earlier_state_are_ignored() {
        let breaker = opening_at_once(SECOND);
        let slow = breaker.try_acquire().unwrap();
        play(&breaker, "F");
        tokio::time::advance(SECOND).await;
        let probe = breaker.try_acquire().unwrap();
        // The slow call from the closed state succeeds late: that is not the probe's answer.
        slow.success();
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        probe.failure();
        assert_eq!(breaker.state(), CircuitState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn the_state_gauge_follows_every_transition() {
        let recorder = TestRecorder::default();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let breaker = opening_at_once(SECOND);
        let gauge = "fb_outbound_circuit_state{target=t}";
        assert_eq!(recorder.value(gauge), Some(0.0));
        play(&breaker, "F");
        assert_eq!(recorder.value(gauge), Some(2.0));
        tokio::time::advance(SECOND).await;
        let probe = breaker.try_acquire().unwrap();
        assert_eq!(recorder.value(gauge), Some(1.0));
        probe.success();
        assert_eq!(recorder.value(gauge), Some(0.0));
        for to in ["open", "half_open", "closed"] {
            let transitions = format!("fb_outbound_circuit_transitions_total{{target=t,to={to}}}");
            assert_eq!(recorder.value(&transitions), Some(1.0), "{to}");
        }
    }
}
