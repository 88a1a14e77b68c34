//! The building blocks of machine detection besides the novelty detector: static limits and
//! vibration zones, the adaptive statistical detector, sensor faults, and the multivariate
//! detector. [`crate::pipeline`] combines them per machine.

pub mod faults;
pub mod limits;
pub mod multivariate;
pub mod shift;
