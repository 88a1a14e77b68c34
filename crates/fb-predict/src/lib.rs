//! Failure prediction and remaining useful life (issue #6): pure computation, no I/O, no clock,
//! randomness only from explicit seeds.
//!
//! * [`data`]: generic unit histories (a unit is one machine's life) and the targets:
//!   piecewise-linear RUL, failure within a horizon.
//! * [`regime`]: operating regimes found in the settings, per-regime sensor scaling.
//! * [`features`]: derived inputs, rolling-window features, the streaming [`FeatureState`].
//! * [`gbdt`]: histogram gradient-boosted trees (regression and logistic).
//! * [`train`]: the pipeline: by-unit cross-validation, bounded search, report.
//! * [`model`]: the trained [`Model`], its metadata and its versioned JSON format.
//! * [`stream`]: [`MachinePredictor`], the per-machine live state.
//! * [`live`]: mapping a machine's sensors onto a model's inputs.
//! * [`metrics`]: RMSE, the PHM08 score, precision/recall/F1, Platt calibration.

pub mod data;
pub mod features;
pub mod gbdt;
pub mod live;
pub mod metrics;
pub mod model;
pub mod regime;
pub mod stream;
pub mod train;

pub use data::{History, Observation, Reading, Schema, Target, Unit};
pub use features::{FeatureSpec, FeatureState};
pub use model::{Model, ModelKind, ModelMeta, Prediction};
pub use stream::MachinePredictor;
pub use train::{Progress, TrainConfig, TrainingReport, train};

use fb_core::{Code, Coded, FieldError};

#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// The history or the configuration cannot be trained on; every problem is listed.
    #[error("invalid input: {}", describe(.0))]
    Invalid(Vec<FieldError>),
    /// A reading does not fit the model (wrong count, not finite, back in time).
    #[error("reading refused: {}", describe(.0))]
    Reading(Vec<FieldError>),
    /// Not a model of this format and version, or an inconsistent one.
    #[error("not a usable model: {0}")]
    Format(String),
}

impl PredictError {
    pub(crate) fn reading(field: impl Into<String>, reason: impl Into<String>) -> Self {
        PredictError::Reading(vec![FieldError::new(field, reason)])
    }
}

fn describe(problems: &[FieldError]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}", p.field, p.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Coded for PredictError {
    fn code(&self) -> Code {
        match self {
            PredictError::Invalid(_) | PredictError::Reading(_) => Code::invalid_field,
            PredictError::Format(_) => Code::invalid_json,
        }
    }

    fn field_errors(&self) -> &[FieldError] {
        match self {
            PredictError::Invalid(p) | PredictError::Reading(p) => p,
            PredictError::Format(_) => &[],
        }
    }
}

#[cfg(test)]
mod tests;
