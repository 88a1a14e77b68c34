//! A trained model and its self-describing, versioned format.
//!
//! JSON (`to_json` / `from_json`): an object with `format` = `"factorybrain.predict.model"`,
//! `format_version`, `meta` (what a registry lists: kind, target, engine, feature names, data
//! hash, training configuration and report), `pipeline` (everything inference needs to turn
//! readings into features: schema, regime model, per-regime scalers, kept sensors, feature
//! spec and window lengths), `ensemble` (the boosters, one per cross-validation fold, averaged)
//! and `calibration` (Platt, failure models). Floats are written shortest-round-trip and read
//! back exactly, so a loaded model predicts bit-identically. A loader refuses another format,
//! a newer version and any internal inconsistency, before a single prediction is made.

use serde::{Deserialize, Serialize};

use crate::PredictError;
use crate::data::{Observation, Target};
use crate::features::{FeaturePipeline, FeatureState};
use crate::gbdt::Booster;
use crate::metrics::Platt;
use crate::train::{TrainConfig, TrainingReport};

pub const FORMAT: &str = "factorybrain.predict.model";
/// Bumped on any change a version-1 reader would misread.
pub const FORMAT_VERSION: u32 = 1;
/// The payload format as the model registry names it (`<name>/<version>`): [`FORMAT`] and
/// [`FORMAT_VERSION`] in one string, the one constant the trainer registers models under and
/// the server's loader reads (a test holds the three together).
pub const REGISTRY_FORMAT: &str = "factorybrain.predict.model/1";
/// The engine that trained a model, for the registry's listing.
pub const ENGINE: &str = concat!("fb-predict ", env!("CARGO_PKG_VERSION"), " gbdt");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Rul,
    Failure,
}

impl ModelKind {
    pub fn of(target: &Target) -> Self {
        match target {
            Target::Rul { .. } => ModelKind::Rul,
            Target::FailureWithin { .. } => ModelKind::Failure,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Rul => "rul",
            ModelKind::Failure => "failure",
        }
    }
}

/// What a model answers for one machine at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Prediction {
    /// Remaining useful life in the history's time unit, in [0, cap].
    Rul(f64),
    /// Probability of failure within the model's horizon, in [0, 1].
    FailureProbability(f64),
}

/// What a registry keeps beside the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelMeta {
    pub kind: ModelKind,
    pub target: Target,
    pub engine: String,
    pub features: Vec<String>,
    /// [`crate::data::History::data_hash`] of the training data.
    pub data_hash: String,
    pub units: usize,
    pub observations: usize,
    /// The configuration that created the model (the search space's starting point and seed).
    pub config: TrainConfig,
    pub report: TrainingReport,
    /// Wall-clock training time, set by the caller that has a clock (this crate has none).
    pub training_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub format: String,
    pub format_version: u32,
    pub meta: ModelMeta,
    pub pipeline: FeaturePipeline,
    pub ensemble: Vec<Booster>,
    pub calibration: Option<Platt>,
}

impl Model {
    pub fn kind(&self) -> ModelKind {
        self.meta.kind
    }

    pub fn to_json(&self) -> Result<String, PredictError> {
        serde_json::to_string(self).map_err(|e| PredictError::Format(e.to_string()))
    }

    pub fn from_json(text: &str) -> Result<Self, PredictError> {
        #[derive(Deserialize)]
        struct Header {
            format: String,
            format_version: u32,
        }
        let header: Header = serde_json::from_str(text)
            .map_err(|e| PredictError::Format(format!("not a model: {e}")))?;
        if header.format != FORMAT {
            return Err(PredictError::Format(format!(
                "format {:?} is not {FORMAT:?}",
                header.format
            )));
        }
        if header.format_version > FORMAT_VERSION {
            return Err(PredictError::Format(format!(
                "format version {} is newer than this build reads ({FORMAT_VERSION})",
                header.format_version
            )));
        }
        let model: Model =
            serde_json::from_str(text).map_err(|e| PredictError::Format(e.to_string()))?;
        model.check()?;
        Ok(model)
    }

    /// Internal consistency: every index in range, every number finite, parts agreeing.
    fn check(&self) -> Result<(), PredictError> {
        let features = self.pipeline.features();
        let problem = if !self.pipeline.is_consistent() {
            Some("the feature pipeline's parts disagree")
        } else if self.meta.features != self.pipeline.names {
            Some("meta.features differs from the pipeline's feature names")
        } else if self.meta.kind != ModelKind::of(&self.meta.target) {
            Some("meta.kind does not match meta.target")
        } else if self.ensemble.is_empty() {
            Some("the ensemble is empty")
        } else if self
            .ensemble
            .iter()
            .any(|b| b.features != features || !b.is_well_formed())
        {
            Some("a booster does not fit the feature list or is malformed")
        } else if (self.kind() == ModelKind::Failure) != self.calibration.is_some() {
            Some("failure models, and only they, carry a calibration")
        } else {
            None
        };
        match problem {
            Some(p) => Err(PredictError::Format(p.into())),
            None => Ok(()),
        }
    }

    /// The ensemble's mean raw score for one feature row.
    pub fn raw_score(&self, features: &[f64]) -> f64 {
        self.ensemble
            .iter()
            .map(|b| b.predict_raw(features))
            .sum::<f64>()
            / self.ensemble.len() as f64
    }

    /// The prediction for one feature row (in `meta.features` order).
    pub fn predict_features(&self, features: &[f64]) -> Prediction {
        let raw = self.raw_score(features);
        match (self.meta.target, self.calibration) {
            (Target::Rul { cap }, _) => Prediction::Rul(raw.clamp(0.0, cap)),
            (Target::FailureWithin { .. }, calibration) => Prediction::FailureProbability(
                calibration.unwrap_or(Platt::IDENTITY).probability(raw),
            ),
        }
    }

    /// A prediction after every observation of a history, as the live path would have made
    /// them. Refuses an observation that does not fit the model's inputs.
    pub fn predict_history(
        &self,
        observations: &[Observation],
    ) -> Result<Vec<Prediction>, PredictError> {
        let mut state = FeatureState::new(&self.pipeline);
        let mut row = Vec::with_capacity(self.pipeline.features());
        let mut out = Vec::with_capacity(observations.len());
        for (i, o) in observations.iter().enumerate() {
            state
                .push(&self.pipeline, o.reading())
                .map_err(|reason| PredictError::reading(format!("observations[{i}]"), reason))?;
            state.features(&self.pipeline, &mut row);
            out.push(self.predict_features(&row));
        }
        Ok(out)
    }

    /// The prediction after a history's last observation (None for an empty one).
    pub fn predict_last(
        &self,
        observations: &[Observation],
    ) -> Result<Option<Prediction>, PredictError> {
        Ok(self.predict_history(observations)?.last().copied())
    }
}

impl Prediction {
    pub fn value(self) -> f64 {
        match self {
            Prediction::Rul(v) | Prediction::FailureProbability(v) => v,
        }
    }
}
