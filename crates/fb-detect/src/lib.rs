//! Anomaly detection for FactoryBrain's sensor streams.
//!
//! * [`detector`] scores streams point by point ([`detector::NoveltyDetector`]).
//! * [`features`] are streaming per-sensor statistics (rolling, EWMA, robust, trend,
//!   threshold crossings).
//! * [`nab`] scores a detector on the Numenta Anomaly Benchmark (v1.1 rules).
//!
//! The crate does no I/O: callers hand it data in memory.

pub mod detector;
pub mod features;
pub mod nab;
