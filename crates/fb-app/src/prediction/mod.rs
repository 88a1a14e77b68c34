//! Live failure prediction and remaining useful life (issue #6, B4, B6): every machine whose
//! type has an active model gets a [`MachinePredictor`] per model, fed as readings are stored;
//! the answers go onto the machine (`failure_probability`, `rul_hours`, which the failure-risk
//! alert rule reads), into `/metrics`, and, when a remote model server is configured, come from
//! it within a latency budget with the local model as the fallback.
//!
//! * **Loading.** [`PredictLoader`] is the registry's [`ModelLoader`] for fb-predict's format
//!   ([`fb_predict::REGISTRY_FORMAT`]): the payload is the model file, the registry's `params`
//!   carry how it meets live readings ([`PARAM_SAMPLE_SECS`], [`PARAM_SECS_PER_UNIT`]).
//! * **Readings to observations.** A model learnt from observations at a fixed interval (one a
//!   minute for the plant's models); each predictor has a [`Resampler`] that turns the
//!   machine's readings into those, the mean of each sensor over the interval, and
//!   [`InputMap`] picks the model's inputs from the machine's sensors by key. A machine lacking
//!   an input the model needs gets no predictor (logged once per model).
//! * **Cost.** One task owns every machine's state (no lock on the hot path); a reading costs a
//!   hash lookup per series and batch and an addition; a closed interval costs one
//!   `observe`; predictions run on the tick (`Options::tick`), only for machines that got a new
//!   observation since. The task follows ingest's broadcast like detection and never slows
//!   ingest: when it falls behind it skips batches and counts them.
//! * **Units.** A RUL model answers in its own time unit (hours for the plant's models,
//!   cycles for C-MAPSS); `rul_hours` = RUL × `secs_per_unit` / 3600 ([`LiveSpec::hours`]).
//! * **Writes.** The machine record is written through [`MachineStore::set_machine_prediction`]
//!   when a figure changed, at most once per `Options::store_every` per machine; the gauges
//!   `fb_machine_failure_probability{machine}` and `fb_machine_rul_hours{machine}` follow every
//!   prediction.
//! * **Promotion.** Each tick compares the predictors' models with the registry's active ones:
//!   a promoted model with the same feature pipeline takes over the predictor's state
//!   ([`MachinePredictor::with_model`]), another one starts afresh. No restart.
//! * **Remote backend (B6).** With [`Remote`] set, each tick sends the feature rows of every
//!   machine due, one request per model line, and uses the answers that come back within the
//!   budget and make sense (a probability in [0, 1], a RUL ≥ 0); on a time-out, an error, an
//!   open circuit or a bad answer the local model's prediction stands
//!   (`fb_prediction_remote_total{outcome}`).

use std::sync::Arc;

use fb_core::model::{ModelKind, StoredModel};
use fb_predict::{LiveSpec, Model};

use crate::models::{LoadedModel, ModelLoader};

/// Registry param: seconds per observation the model was trained on.
pub const PARAM_SAMPLE_SECS: &str = "live.sample_secs";
/// Registry param: seconds in one unit of the model's time (its RUL's unit).
pub const PARAM_SECS_PER_UNIT: &str = "live.secs_per_unit";

/// A model ready for live prediction.
#[derive(Debug, Clone)]
pub struct LiveModel {
    pub model: Arc<Model>,
    pub live: LiveSpec,
}

impl LiveModel {
    /// Reads a registered model: the payload as fb-predict's model file, checked against what
    /// the registry says of it, and its live parameters.
    pub fn load(stored: &StoredModel, payload: &[u8]) -> Result<Self, String> {
        if stored.format != fb_predict::REGISTRY_FORMAT {
            return Err(format!(
                "format {:?} is not {:?}",
                stored.format,
                fb_predict::REGISTRY_FORMAT
            ));
        }
        let text = std::str::from_utf8(payload).map_err(|_| "the payload is not UTF-8 text")?;
        let model = Model::from_json(text).map_err(|e| e.to_string())?;
        if model.kind().as_str() != stored.kind.as_str() {
            return Err(format!(
                "the file is a {} model, registered as {}",
                model.kind().as_str(),
                stored.kind
            ));
        }
        if model.meta.features != stored.features {
            return Err("the file's features differ from the registered ones".to_owned());
        }
        let param = |name: &str| -> Result<f64, String> {
            let text = stored
                .params
                .get(name)
                .ok_or_else(|| format!("params.{name} is missing"))?;
            text.trim()
                .parse::<f64>()
                .map_err(|_| format!("params.{name} is not a number: {text:?}"))
        };
        let live = LiveSpec {
            sample_secs: param(PARAM_SAMPLE_SECS)?,
            secs_per_unit: param(PARAM_SECS_PER_UNIT)?,
        };
        if let Some(problem) = live.problems().first() {
            return Err(format!("params.live.{}: {}", problem.field, problem.reason));
        }
        Ok(Self {
            model: Arc::new(model),
            live,
        })
    }
}

/// What the registry keeps of a trained model: its kind, line, format, data hash, features,
/// the validation figures as metrics (out-of-fold, so honest; `train.*` for the optimistic
/// in-sample ones), the training settings and the live parameters as params.
pub fn draft(
    model: &Model,
    machine_type: &str,
    live: &LiveSpec,
    note: Option<String>,
) -> fb_core::model::ModelDraft {
    use fb_predict::train::SplitMetrics;
    use std::collections::BTreeMap;
    let meta = &model.meta;
    let report = &meta.report;
    let mut metrics = BTreeMap::new();
    let mut split = |prefix: &str, m: &SplitMetrics| match m {
        SplitMetrics::Rul { rows, rmse, mae } => {
            metrics.insert(format!("{prefix}rmse"), *rmse);
            metrics.insert(format!("{prefix}mae"), *mae);
            metrics.insert(format!("{prefix}rows"), *rows as f64);
        }
        SplitMetrics::Failure {
            rows,
            positives,
            log_loss,
            brier,
            at_threshold,
        } => {
            metrics.insert(format!("{prefix}log_loss"), *log_loss);
            metrics.insert(format!("{prefix}brier"), *brier);
            metrics.insert(format!("{prefix}precision"), at_threshold.precision);
            metrics.insert(format!("{prefix}recall"), at_threshold.recall);
            metrics.insert(format!("{prefix}f1"), at_threshold.f1);
            metrics.insert(format!("{prefix}rows"), *rows as f64);
            metrics.insert(format!("{prefix}positives"), *positives as f64);
        }
    };
    split("", &report.validation);
    split("train.", &report.train);
    if let Some(threshold) = report.decision_threshold {
        metrics.insert("threshold".to_owned(), threshold);
    }
    metrics.insert("trees".to_owned(), report.trees as f64);
    metrics.insert("units".to_owned(), meta.units as f64);
    metrics.insert("observations".to_owned(), meta.observations as f64);
    if let Some(seconds) = meta.training_seconds {
        metrics.insert("training_seconds".to_owned(), seconds);
    }
    metrics.retain(|_, v| v.is_finite());
    let chosen = report.candidates.get(report.chosen).map(|c| &c.params);
    let mut params = BTreeMap::from([
        (PARAM_SAMPLE_SECS.to_owned(), live.sample_secs.to_string()),
        (
            PARAM_SECS_PER_UNIT.to_owned(),
            live.secs_per_unit.to_string(),
        ),
        ("engine".to_owned(), meta.engine.clone()),
        ("seed".to_owned(), meta.config.seed.to_string()),
        ("cv.folds".to_owned(), report.folds.to_string()),
        (
            "search.candidates".to_owned(),
            report.candidates.len().to_string(),
        ),
        ("regimes".to_owned(), report.regimes.to_string()),
        ("sensors_kept".to_owned(), report.sensors_kept.join(",")),
    ]);
    match meta.target {
        fb_predict::Target::Rul { cap } => {
            params.insert("target.rul_cap".to_owned(), cap.to_string());
        }
        fb_predict::Target::FailureWithin { horizon } => {
            params.insert("target.horizon".to_owned(), horizon.to_string());
        }
    }
    if let Some(p) = chosen {
        for (name, value) in [
            ("boost.num_leaves", p.num_leaves.to_string()),
            ("boost.max_depth", p.max_depth.to_string()),
            ("boost.min_data_in_leaf", p.min_data_in_leaf.to_string()),
            ("boost.learning_rate", p.learning_rate.to_string()),
            ("boost.feature_fraction", p.feature_fraction.to_string()),
            ("boost.row_fraction", p.row_fraction.to_string()),
            ("boost.lambda_l2", p.lambda_l2.to_string()),
        ] {
            params.insert(name.to_owned(), value);
        }
    }
    params.retain(|_, v| v.chars().count() <= fb_core::model::PARAM_VALUE_MAX);
    fb_core::model::ModelDraft {
        kind: match meta.kind {
            fb_predict::ModelKind::Rul => ModelKind::Rul,
            fb_predict::ModelKind::Failure => ModelKind::Failure,
        },
        machine_type: machine_type.to_owned(),
        format: fb_predict::REGISTRY_FORMAT.to_owned(),
        data_hash: meta.data_hash.clone(),
        features: meta.features.clone(),
        metrics,
        params,
        note,
    }
}

/// The registry's loader for fb-predict's models.
#[derive(Debug)]
pub struct PredictLoader {
    formats: Vec<String>,
}

impl Default for PredictLoader {
    fn default() -> Self {
        Self {
            formats: vec![fb_predict::REGISTRY_FORMAT.to_owned()],
        }
    }
}

impl ModelLoader for PredictLoader {
    type Loaded = LiveModel;

    fn formats(&self) -> &[String] {
        &self.formats
    }

    fn load(&self, model: &StoredModel, payload: &[u8]) -> Result<LiveModel, String> {
        LiveModel::load(model, payload)
    }
}

/// Where the active models come from: the registry's cache on this node.
pub trait ActiveModels: Send + Sync {
    fn active(&self, kind: ModelKind, machine_type: &str) -> Option<Arc<LoadedModel<LiveModel>>>;
}

impl<L: ModelLoader<Loaded = LiveModel>> ActiveModels for crate::models::Service<L> {
    fn active(&self, kind: ModelKind, machine_type: &str) -> Option<Arc<LoadedModel<LiveModel>>> {
        crate::models::Service::active(self, kind, machine_type)
    }
}

mod service;

pub use service::{MachinePrediction, Options, Remote, Service};

#[cfg(test)]
mod tests;
