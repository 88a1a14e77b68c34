use thiserror::Error;

use crate::features::FeatureError;

/// A detector was configured with settings it cannot work with.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DetectorError {
    #[error("{field} {reason}")]
    InvalidConfig {
        field: &'static str,
        reason: &'static str,
    },
    #[error(transparent)]
    Feature(#[from] FeatureError),
}
