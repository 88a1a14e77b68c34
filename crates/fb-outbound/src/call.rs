//! [`Outbound`]: one target's policy, breaker and metrics, and the retry loop that uses them.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::time::Instant;

use crate::breaker::{BreakerSettings, CircuitBreaker, CircuitState};
use crate::classify::{Classify, ErrorClass};
use crate::policy::Policy;
use crate::telemetry::{self, CallOutcome};

/// Calls to one target (a named dependency: `llm`, `webhook:maintenance`, `erp`) with its
/// policy and circuit breaker. Cheap to clone; clones share the breaker and the jitter source.
/// Make one per target and clone it: two made with the same name would keep two breakers and
/// write one state gauge.
#[derive(Debug, Clone)]
pub struct Outbound {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    target: Arc<str>,
    policy: Policy,
    breaker: CircuitBreaker,
    jitter: Mutex<SmallRng>,
}

/// Why a call through [`Outbound::call`] returned no value.
#[derive(Debug)]
pub enum CallError<E> {
    /// An attempt's time-out or the call's deadline ran out while the operation was running.
    Timeout { attempts: u32 },
    /// The circuit is open: the operation was not run. `retry_after` as in
    /// [`Rejected`](crate::Rejected).
    CircuitOpen { retry_after: Option<Duration> },
    /// The operation's own error: a permanent one, or the last retryable one when attempts,
    /// deadline or circuit left no room for another try.
    Failed { error: E, attempts: u32 },
}

impl<E> CallError<E> {
    /// The operation's error, if it got that far.
    pub fn into_error(self) -> Option<E> {
        match self {
            Self::Failed { error, .. } => Some(error),
            Self::Timeout { .. } | Self::CircuitOpen { .. } => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout { attempts } => write!(f, "timed out after {attempts} attempt(s)"),
            Self::CircuitOpen {
                retry_after: Some(wait),
            } => write!(f, "circuit open; retry in {} ms", wait.as_millis()),
            Self::CircuitOpen { retry_after: None } => {
                write!(f, "circuit half-open with every probe in flight")
            }
            Self::Failed { error, attempts } => {
                write!(f, "failed after {attempts} attempt(s): {error}")
            }
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CallError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Failed { error, .. } => Some(error),
            Self::Timeout { .. } | Self::CircuitOpen { .. } => None,
        }
    }
}

/// What the last attempt left behind, for when no further attempt is made.
enum Failure<E> {
    TimedOut,
    Retryable(E),
}

impl<E> Failure<E> {
    fn into_error(self, attempts: u32) -> (CallError<E>, CallOutcome) {
        match self {
            Self::TimedOut => (CallError::Timeout { attempts }, CallOutcome::Timeout),
            Self::Retryable(error) => (
                CallError::Failed { error, attempts },
                CallOutcome::RetryableError,
            ),
        }
    }
}

impl Outbound {
    /// Also creates the target's breaker, which sets `fb_outbound_circuit_state{target}` to
    /// closed; build it after the server has installed its metrics recorder.
    pub fn new(target: impl Into<Arc<str>>, policy: Policy, breaker: BreakerSettings) -> Self {
        let target = target.into();
        Self {
            shared: Arc::new(Shared {
                breaker: CircuitBreaker::new(target.clone(), breaker),
                target,
                policy,
                jitter: Mutex::new(SmallRng::from_os_rng()),
            }),
        }
    }

    /// Makes the back-off waits repeatable (tests, simulations). Affects every clone.
    pub fn with_jitter_seed(self, seed: u64) -> Self {
        *self
            .shared
            .jitter
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = SmallRng::seed_from_u64(seed);
        self
    }

    pub fn target(&self) -> &str {
        &self.shared.target
    }

    pub fn policy(&self) -> &Policy {
        &self.shared.policy
    }

    pub fn circuit_state(&self) -> CircuitState {
        self.shared.breaker.state()
    }

    /// Runs `operation` under the target's policy and breaker.
    ///
    /// Each attempt runs `operation()` afresh with the time-out `min(attempt_timeout, time left
    /// before the deadline)`. Retryable errors and time-outs are retried after a jittered
    /// back-off (at least the error's `retry_after`) while attempts remain, the wait ends before
    /// the deadline, and the breaker admits the call; otherwise the last failure is returned.
    /// Permanent errors return at once. Dropping the returned future abandons the attempt in
    /// flight without counting it against the breaker.
    pub async fn call<T, E, F, Fut>(&self, mut operation: F) -> Result<T, CallError<E>>
    where
        E: Classify,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let shared = &*self.shared;
        let policy = &shared.policy;
        let started = Instant::now();
        let deadline = crate::instant_after(started, policy.deadline());
        let mut attempts = 0u32;
        let mut last: Option<Failure<E>> = None;
        let (error, outcome) = loop {
            let permit = match shared.breaker.try_acquire() {
                Ok(permit) => permit,
                // A circuit that opens between attempts ends the call with the failure that
                // helped open it: it says more than "circuit open" about what went wrong.
                Err(rejected) => match last.take() {
                    Some(failure) => break failure.into_error(attempts),
                    None => {
                        telemetry::call(&shared.target, CallOutcome::CircuitOpen, None);
                        return Err(CallError::CircuitOpen {
                            retry_after: rejected.retry_after,
                        });
                    }
                },
            };
            if attempts > 0 {
                telemetry::retry(&shared.target);
            }
            attempts += 1;
            let budget = policy
                .attempt_timeout()
                .min(deadline.saturating_duration_since(Instant::now()));
            let (failure, hint) = match tokio::time::timeout(budget, operation()).await {
                Ok(Ok(value)) => {
                    permit.success();
                    telemetry::call(
                        &shared.target,
                        CallOutcome::Success,
                        Some(started.elapsed()),
                    );
                    return Ok(value);
                }
                Ok(Err(error)) => match error.class() {
                    ErrorClass::Permanent => {
                        permit.success();
                        let failed = CallError::Failed { error, attempts };
                        break (failed, CallOutcome::PermanentError);
                    }
                    ErrorClass::Retryable { retry_after } => {
                        permit.failure();
                        (Failure::Retryable(error), retry_after)
                    }
                },
                Err(_elapsed) => {
                    permit.failure();
                    (Failure::TimedOut, None)
                }
            };
            let wait = self.backoff_before(attempts, hint);
            let left = deadline.saturating_duration_since(Instant::now());
            // No attempt could start before the deadline (a jittered wait, or a retry-after hint
            // reaching past it): give up now rather than sleep until then.
            if attempts >= policy.max_attempts() || wait >= left {
                break failure.into_error(attempts);
            }
            last = Some(failure);
            tokio::time::sleep(wait).await;
        };
        telemetry::call(&shared.target, outcome, Some(started.elapsed()));
        Err(error)
    }

    /// The wait before the next attempt, `retry` being the number of attempts made so far.
    fn backoff_before(&self, retry: u32, hint: Option<Duration>) -> Duration {
        let shared = &*self.shared;
        let mut rng = shared.jitter.lock().unwrap_or_else(PoisonError::into_inner);
        let jittered = shared.policy.backoff().delay(retry, &mut *rng);
        hint.map_or(jittered, |hint| hint.max(jittered))
    }
}

#[cfg(test)]
mod tests;
