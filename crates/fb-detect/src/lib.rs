//! Anomaly detection for FactoryBrain's sensor streams.
//!
//! * [`detector`] scores streams point by point ([`detector::NoveltyDetector`]).
//! * [`features`] are streaming per-sensor statistics (rolling, EWMA, robust, trend,
//!   threshold crossings).
//! * [`rules`] are the other detectors: limits and ISO 10816 zones, adaptive statistical
//!   thresholds, sensor faults, and the multivariate one.
//! * [`pipeline`] runs them all for a machine: a score per reading, findings for alerts,
//!   the signals of the health score.
//! * [`nab`] scores a detector on the Numenta Anomaly Benchmark (v1.1 rules).
//!
//! The crate does no I/O: callers hand it data in memory.

pub mod detector;
pub mod features;
pub mod nab;
pub mod pipeline;
pub mod rules;
