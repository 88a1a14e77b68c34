//! The building blocks of machine detection besides the novelty detector: static limits and
//! vibration zones, the adaptive statistical detector, sensor faults, and the multivariate
//! detector, and the recognition of a machine's changes of operating point that those learning
//! detectors must not call anomalies. [`crate::pipeline`] combines them per machine.

pub mod faults;
pub mod limits;
pub mod mode;
pub mod multivariate;
pub mod shift;
