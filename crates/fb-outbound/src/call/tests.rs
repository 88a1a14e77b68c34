//! The retry loop on paused time: `tokio::time::Instant` advances only when every task waits,
//! by exactly what they wait for, so the times asserted here are the loop's own decisions.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::*;
use crate::policy::Backoff;
use crate::test_recorder::TestRecorder;

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq)]
enum TestError {
    Busy { retry_after: Option<Duration> },
    BadRequest,
}

const BUSY: TestError = TestError::Busy { retry_after: None };

impl Classify for TestError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Busy { retry_after } => ErrorClass::Retryable {
                retry_after: *retry_after,
            },
            Self::BadRequest => ErrorClass::Permanent,
        }
    }
}

impl fmt::Display for TestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

enum Answer {
    Value(u32),
    Error(TestError),
    /// Never answers: only a time-out ends the attempt.
    Hang,
}

/// A dependency that gives one scripted answer per attempt and notes when each attempt began.
#[derive(Default)]
struct Dependency {
    answers: Mutex<VecDeque<Answer>>,
    started: Mutex<Vec<Instant>>,
}

impl Dependency {
    fn answering(answers: impl IntoIterator<Item = Answer>) -> Self {
        Self {
            answers: Mutex::new(answers.into_iter().collect()),
            started: Mutex::default(),
        }
    }

    async fn serve(&self) -> Result<u32, TestError> {
        self.started.lock().unwrap().push(Instant::now());
        let answer = self.answers.lock().unwrap().pop_front();
        match answer.expect("the script ran out of answers") {
            Answer::Value(v) => Ok(v),
            Answer::Error(e) => Err(e),
            Answer::Hang => std::future::pending().await,
        }
    }

    fn attempts(&self) -> usize {
        self.started.lock().unwrap().len()
    }

    /// The time between consecutive attempts.
    fn gaps(&self) -> Vec<Duration> {
        let started = self.started.lock().unwrap();
        started.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

fn policy() -> Policy {
    Policy::new(SECOND, 60 * SECOND)
        .with_max_attempts(3)
        .with_backoff(Backoff::new(100 * MS, 10 * SECOND))
}

fn never_opens() -> BreakerSettings {
    BreakerSettings::consecutive_failures(1000)
}

fn outbound(policy: Policy, breaker: BreakerSettings) -> Outbound {
    Outbound::new("t", policy, breaker).with_jitter_seed(7)
}

#[tokio::test(start_paused = true)]
async fn a_success_is_returned_after_one_attempt() {
    let dependency = Dependency::answering([Answer::Value(42)]);
    let result = outbound(policy(), never_opens())
        .call(|| dependency.serve())
        .await;
    assert_eq!(result.unwrap(), 42);
    assert_eq!(dependency.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn retryable_errors_are_retried_after_jittered_waits_within_the_ceilings() {
    let run = || async {
        let dependency =
            Dependency::answering([Answer::Error(BUSY), Answer::Error(BUSY), Answer::Value(1)]);
        let result = outbound(policy(), never_opens())
            .call(|| dependency.serve())
            .await;
        assert_eq!(result.unwrap(), 1);
        dependency.gaps()
    };
    let gaps = run().await;
    assert_eq!(gaps.len(), 2);
    // Full jitter: the first wait is at most the base, the second at most twice it.
    assert!(gaps[0] <= 100 * MS && gaps[1] <= 200 * MS, "{gaps:?}");
    assert_ne!(gaps[0], gaps[1]);
    // The same seed, the same waits.
    assert_eq!(run().await, gaps);
}

#[tokio::test(start_paused = true)]
async fn the_last_retryable_error_is_returned_when_attempts_run_out() {
    let busy = |n| TestError::Busy {
        retry_after: Some(n * MS),
    };
    let dependency = Dependency::answering([1, 2, 3].map(|n| Answer::Error(busy(n))));
    let result = outbound(policy(), never_opens())
        .call(|| dependency.serve())
        .await;
    match result {
        Err(CallError::Failed { error, attempts }) => {
            assert_eq!((error, attempts), (busy(3), 3));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_return_at_once_and_keep_the_circuit_closed() {
    let target = outbound(policy(), BreakerSettings::consecutive_failures(2));
    for _ in 0..5 {
        let dependency = Dependency::answering([Answer::Error(TestError::BadRequest)]);
        let result = target.call(|| dependency.serve()).await;
        assert!(
            matches!(
                result,
                Err(CallError::Failed {
                    error: TestError::BadRequest,
                    attempts: 1
                })
            ),
            "{result:?}"
        );
    }
    assert_eq!(target.circuit_state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_hint_is_waited_at_least() {
    let hinted = TestError::Busy {
        retry_after: Some(2 * SECOND),
    };
    let dependency = Dependency::answering([Answer::Error(hinted), Answer::Value(1)]);
    let result = outbound(policy(), never_opens())
        .call(|| dependency.serve())
        .await;
    assert_eq!(result.unwrap(), 1);
    // The jittered wait (at most 100 ms) is shorter than the hint, so the hint decides.
    assert_eq!(dependency.gaps(), [2 * SECOND]);
}

#[tokio::test(start_paused = true)]
async fn a_hint_past_the_deadline_ends_the_call_at_once() {
    let hinted = TestError::Busy {
        retry_after: Some(120 * SECOND),
    };
    let dependency = Dependency::answering([Answer::Error(hinted.clone())]);
    let started = Instant::now();
    let result = outbound(policy(), never_opens())
        .call(|| dependency.serve())
        .await;
    assert!(
        matches!(result, Err(CallError::Failed { ref error, attempts: 1 }) if *error == hinted),
        "{result:?}"
    );
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn attempts_that_hang_time_out_and_are_retried() {
    let dependency = Dependency::answering([Answer::Hang, Answer::Hang, Answer::Hang]);
    let started = Instant::now();
    let result = outbound(policy(), never_opens())
        .call(|| dependency.serve())
        .await;
    assert!(
        matches!(result, Err(CallError::Timeout { attempts: 3 })),
        "{result:?}"
    );
    // Three attempts of one second each, and two waits of at most 100 and 200 ms.
    let gaps = dependency.gaps();
    assert!(
        gaps.iter()
            .all(|gap| *gap >= SECOND && *gap <= SECOND + 200 * MS)
    );
    assert_eq!(started.elapsed(), gaps.iter().sum::<Duration>() + SECOND);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_cuts_an_attempt_short_and_ends_the_call() {
    let policy = Policy::new(10 * SECOND, 3 * SECOND).with_max_attempts(5);
    let dependency = Dependency::answering([Answer::Hang]);
    let started = Instant::now();
    let result = outbound(policy, never_opens())
        .call(|| dependency.serve())
        .await;
    assert!(
        matches!(result, Err(CallError::Timeout { attempts: 1 })),
        "{result:?}"
    );
    assert_eq!(started.elapsed(), 3 * SECOND);
}

#[tokio::test(start_paused = true)]
async fn an_open_circuit_refuses_without_running_the_operation_until_a_probe_succeeds() {
    let breaker = BreakerSettings::consecutive_failures(2).with_open_for(30 * SECOND);
    let target = outbound(policy().with_max_attempts(1), breaker);
    let dependency =
        Dependency::answering([Answer::Error(BUSY), Answer::Error(BUSY), Answer::Value(5)]);
    for _ in 0..2 {
        assert!(target.call(|| dependency.serve()).await.is_err());
    }
    assert_eq!(target.circuit_state(), CircuitState::Open);

    tokio::time::advance(10 * SECOND).await;
    let refused = target.call(|| dependency.serve()).await;
    assert!(
        matches!(refused, Err(CallError::CircuitOpen { retry_after: Some(wait) }) if wait == 20 * SECOND),
        "{refused:?}"
    );
    assert_eq!(dependency.attempts(), 2);

    tokio::time::advance(20 * SECOND).await;
    assert_eq!(target.call(|| dependency.serve()).await.unwrap(), 5);
    assert_eq!(target.circuit_state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_circuit_that_opens_mid_call_ends_it_with_the_last_failure() {
    let target = outbound(
        policy().with_max_attempts(5),
        BreakerSettings::consecutive_failures(2),
    );
    let dependency = Dependency::answering([Answer::Error(BUSY), Answer::Hang]);
    let result = target.call(|| dependency.serve()).await;
    // The second attempt timed out and opened the circuit: that time-out is the answer.
    assert!(
        matches!(result, Err(CallError::Timeout { attempts: 2 })),
        "{result:?}"
    );
    assert_eq!(dependency.attempts(), 2);
}

#[tokio::test(start_paused = true)]
async fn clones_share_the_breaker() {
    let target = outbound(
        policy().with_max_attempts(1),
        BreakerSettings::consecutive_failures(1),
    );
    let clone = target.clone();
    let dependency = Dependency::answering([Answer::Error(BUSY)]);
    assert!(clone.call(|| dependency.serve()).await.is_err());
    assert_eq!(target.circuit_state(), CircuitState::Open);
    let refused = target.call(|| dependency.serve()).await;
    assert!(matches!(refused, Err(CallError::CircuitOpen { .. })));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_lets_the_next_call_probe() {
    let breaker = BreakerSettings::consecutive_failures(1).with_open_for(SECOND);
    let target = outbound(policy().with_max_attempts(1), breaker);
    let dependency = Dependency::answering([Answer::Error(BUSY), Answer::Hang, Answer::Value(9)]);
    assert!(target.call(|| dependency.serve()).await.is_err());
    tokio::time::advance(SECOND).await;
    // The caller gives up on the probe before its own time-out: its future is dropped.
    let abandoned = tokio::time::timeout(100 * MS, target.call(|| dependency.serve())).await;
    assert!(abandoned.is_err());
    assert_eq!(target.circuit_state(), CircuitState::HalfOpen);
    assert_eq!(target.call(|| dependency.serve()).await.unwrap(), 9);
    assert_eq!(target.circuit_state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn calls_retries_and_durations_are_counted_per_target() {
    let recorder = TestRecorder::default();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let target = Outbound::new(
        "erp",
        policy().with_max_attempts(2),
        BreakerSettings::consecutive_failures(2),
    )
    .with_jitter_seed(3);
    let dependency = Dependency::answering([
        Answer::Error(BUSY),
        Answer::Value(1),
        Answer::Error(TestError::BadRequest),
        Answer::Hang,
        Answer::Hang,
    ]);
    assert!(target.call(|| dependency.serve()).await.is_ok());
    assert!(target.call(|| dependency.serve()).await.is_err());
    assert!(target.call(|| dependency.serve()).await.is_err());
    assert!(target.call(|| dependency.serve()).await.is_err());

    let calls = |outcome: &str| {
        recorder.value(&format!(
            "fb_outbound_calls_total{{target=erp,outcome={outcome}}}"
        ))
    };
    assert_eq!(calls("success"), Some(1.0));
    assert_eq!(calls("permanent_error"), Some(1.0));
    assert_eq!(calls("timeout"), Some(1.0));
    assert_eq!(calls("circuit_open"), Some(1.0));
    assert_eq!(
        recorder.value("fb_outbound_retries_total{target=erp}"),
        Some(2.0)
    );
    assert_eq!(
        recorder.value("fb_outbound_circuit_state{target=erp}"),
        Some(2.0)
    );
    // One duration per call that ran: the refusal by the open circuit took no time to count.
    let durations = recorder.samples("fb_outbound_call_duration_seconds{target=erp}");
    assert_eq!(durations.len(), 3);
    assert!(
        durations[2] > 2.0,
        "two attempts of a second: {durations:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn unbounded_settings_do_not_overflow_the_clock() {
    let policy = Policy::new(SECOND, Duration::MAX).with_max_attempts(2);
    let breaker = BreakerSettings::consecutive_failures(1).with_open_for(Duration::MAX);
    let target = outbound(policy, breaker);
    let dependency = Dependency::answering([Answer::Error(BUSY)]);
    assert!(matches!(
        target.call(|| dependency.serve()).await,
        Err(CallError::Failed { attempts: 1, .. })
    ));
    assert_eq!(target.circuit_state(), CircuitState::Open);
}

#[test]
fn call_errors_read_well_and_keep_their_source() {
    let failed: CallError<std::io::Error> = CallError::Failed {
        error: std::io::Error::other("connection reset"),
        attempts: 3,
    };
    assert_eq!(
        failed.to_string(),
        "failed after 3 attempt(s): connection reset"
    );
    assert!(std::error::Error::source(&failed).is_some());
    let open: CallError<std::io::Error> = CallError::CircuitOpen {
        retry_after: Some(1500 * MS),
    };
    assert_eq!(open.to_string(), "circuit open; retry in 1500 ms");
    assert!(open.into_error().is_none());
}
