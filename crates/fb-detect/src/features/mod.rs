//! Streaming features per sensor, each updated in O(1) (amortised where noted) or in
//! work bounded by its window, with memory fixed at construction.
//!
//! These are the product's building blocks for rules and dashboards (rolling statistics,
//! EWMA, robust z-scores, trends, threshold-crossing counts); the detector uses some too.

mod crossing;
mod ewma;
mod ring;
mod robust;
mod rolling;
mod trend;

pub use crossing::ThresholdCrossings;
pub use ewma::Ewma;
pub use ring::Ring;
pub use robust::RollingMedian;
pub use rolling::RollingStats;
pub use trend::RollingSlope;

use thiserror::Error;

/// A feature was configured with a value it cannot work with.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum FeatureError {
    #[error("smoothing factor {0} must be in (0, 1]")]
    BadAlpha(f64),
    #[error("half-life {0} must be a positive, finite number of points")]
    BadHalfLife(f64),
    #[error("hysteresis {0} must be finite and not negative")]
    BadHysteresis(f64),
}
