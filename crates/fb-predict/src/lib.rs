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
//!
//! # Why gradient-boosted trees, written here
//!
//! The issue asks for a strong method that trains on 2 cores in minutes. On tabular windows of
//! sensor statistics, boosted trees are the strongest such method we know: C-MAPSS FD001 with
//! this crate's features gives a test RMSE of 12.0 (11.8 on FD003) against 12.6 for the deep
//! CNN of Li et al. 2018, training in about two and a half minutes for the whole search (eight
//! parameter sets × five folds, one thread) and 20 seconds for one set. A 1-D CNN or LSTM was
//! not tried here: the published ones at this accuracy train for many epochs over every window
//! of the training set, and the Rust crates for them (burn, candle, tch) would bring a large,
//! multi-threaded dependency whose results are not bit-reproducible, for no accuracy to gain
//! over the figure above. One engine serves regression (RUL) and classification (failure
//! within a horizon, logistic loss, then Platt calibration).
//!
//! The crates considered (crates.io, December 2026): `perpetual` (3.0 only as a release
//! candidate; its selling point is no tuning, but it brings rayon threads, a wide dependency
//! tree and its own model format, and gives no control of the determinism the tests rely on),
//! `forust-ml` (0.8, an XGBoost-like booster; same dependency and format concerns, little
//! maintenance), `gbdt` (0.1.3, unmaintained, exact splits only, no leaf-wise growth or early
//! stopping), `linfa` and `smartcore` (general toolkits whose tree ensembles are random forests
//! or exact-split trees without boosting shrinkage and histogram speed). Writing the engine
//! here cost about 900 lines with its tests (binning, histograms with the subtraction trick,
//! leaf-wise growth, Newton leaf values, early stopping), and it stays inside fb-core's dependency allow-list (plus
//! `serde_json` for the model format), deterministic to the bit, with a format we version.
//!
//! # Measured (see the README's "Failure prediction and RUL")
//!
//! `factorybrain eval cmapss --subset FD001` and `eval ai4i` reproduce the figures; the
//! tests in `crates/fb-eval/tests/predict.rs` hold the goals.

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
pub use live::{InputMap, LiveSpec, Resampled, Resampler};
pub use model::{Model, ModelKind, ModelMeta, Prediction, REGISTRY_FORMAT};
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
