//! The metrics of outbound calls, through the `metrics` facade (the server installs the
//! Prometheus recorder). Every series is labelled with the target's name.
//!
//! Handles are looked up per event rather than kept: an outbound call costs milliseconds, the
//! lookup nanoseconds, and a handle taken before the recorder was installed would count nothing.

use std::sync::Arc;
use std::time::Duration;

use crate::breaker::CircuitState;

/// `fb_outbound_calls_total{target, outcome}`: calls by how they ended (see [`CallOutcome`]).
pub const CALLS_TOTAL: &str = "fb_outbound_calls_total";
/// `fb_outbound_call_duration_seconds{target}`: the time of a whole call, attempts and waits
/// included, for calls that ran at least once (refusals by an open circuit take no time).
pub const CALL_DURATION_SECONDS: &str = "fb_outbound_call_duration_seconds";
/// `fb_outbound_retries_total{target}`: attempts after the first.
pub const RETRIES_TOTAL: &str = "fb_outbound_retries_total";
/// `fb_outbound_circuit_state{target}`: 0 closed, 1 half-open, 2 open.
pub const CIRCUIT_STATE: &str = "fb_outbound_circuit_state";
/// `fb_outbound_circuit_transitions_total{target, to}`: `to` is `closed`, `half_open` or `open`.
pub const CIRCUIT_TRANSITIONS_TOTAL: &str = "fb_outbound_circuit_transitions_total";

/// Buckets for [`CALL_DURATION_SECONDS`] (5 ms to 60 s: a LAN service to a slow LLM answer with
/// retries), for the server to give its Prometheus recorder.
pub const CALL_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How a call ended: the `outcome` label of [`CALLS_TOTAL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    Success,
    /// Returned a permanent error at once.
    PermanentError,
    /// Gave up on a retryable error: attempts, deadline or circuit exhausted.
    RetryableError,
    /// An attempt's time-out or the deadline ran out.
    Timeout,
    /// Refused by the open circuit without running.
    CircuitOpen,
}

impl CallOutcome {
    pub fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::PermanentError => "permanent_error",
            Self::RetryableError => "retryable_error",
            Self::Timeout => "timeout",
            Self::CircuitOpen => "circuit_open",
        }
    }
}

pub(crate) fn call(target: &Arc<str>, outcome: CallOutcome, ran_for: Option<Duration>) {
    metrics::counter!(CALLS_TOTAL, "target" => target.clone(), "outcome" => outcome.label())
        .increment(1);
    if let Some(elapsed) = ran_for {
        metrics::histogram!(CALL_DURATION_SECONDS, "target" => target.clone())
            .record(elapsed.as_secs_f64());
    }
}

pub(crate) fn retry(target: &Arc<str>) {
    metrics::counter!(RETRIES_TOTAL, "target" => target.clone()).increment(1);
}

pub(crate) fn circuit_state(target: &Arc<str>, state: CircuitState) {
    metrics::gauge!(CIRCUIT_STATE, "target" => target.clone()).set(state.gauge_value());
}

pub(crate) fn circuit_transition(target: &Arc<str>, to: CircuitState) {
    circuit_state(target, to);
    metrics::counter!(CIRCUIT_TRANSITIONS_TOTAL, "target" => target.clone(), "to" => to.label())
        .increment(1);
}
