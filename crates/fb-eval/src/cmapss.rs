//! NASA C-MAPSS turbofan run-to-failure data (Saxena et al., PHM08): reading a subset's files
//! into `fb_predict` histories, training on `train_FD00x.txt`, and scoring the prediction at
//! each test unit's last cycle against `RUL_FD00x.txt`.
//!
//! Files: space-separated, no header, 26 columns: unit, cycle, three operating settings, 21
//! sensors. Training units run to failure (RUL 0 at their last cycle); test units stop early
//! and `RUL_FD00x.txt` gives, line by line, the cycles each had left.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use fb_predict::data::{History, Observation, Schema, Unit};
use fb_predict::metrics;
use fb_predict::{MachinePredictor, Model, Progress, TrainConfig};

use crate::EvalError;

pub const SETTINGS: usize = 3;
pub const SENSORS: usize = 21;

pub fn schema() -> Schema {
    Schema {
        settings: (1..=SETTINGS).map(|i| format!("setting_{i}")).collect(),
        sensors: (1..=SENSORS).map(|i| format!("sensor_{i}")).collect(),
    }
}

/// One subset: training histories, test histories (censored) and the test units' true RUL.
#[derive(Debug, Clone)]
pub struct Subset {
    pub name: String,
    pub train: History,
    pub test: History,
    pub test_rul: Vec<f64>,
}

/// Reads `train_<subset>.txt`, `test_<subset>.txt` and `RUL_<subset>.txt` from `dir`.
pub fn read_subset(dir: &Path, subset: &str) -> Result<Subset, EvalError> {
    if !subset.starts_with("FD00") || subset.len() != 5 {
        return Err(EvalError::Options(format!(
            "subset {subset:?}: expected FD001, FD002, FD003 or FD004"
        )));
    }
    let train = read_units(&dir.join(format!("train_{subset}.txt")), true)?;
    let test = read_units(&dir.join(format!("test_{subset}.txt")), false)?;
    let rul_path = dir.join(format!("RUL_{subset}.txt"));
    let text = std::fs::read_to_string(&rul_path).map_err(|e| EvalError::io(&rul_path, e))?;
    let test_rul = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            l.trim()
                .parse::<f64>()
                .map_err(|e| EvalError::format(&rul_path, format!("line {}: {e}", i + 1)))
        })
        .collect::<Result<Vec<f64>, _>>()?;
    if test_rul.len() != test.units.len() {
        return Err(EvalError::format(
            &rul_path,
            format!(
                "{} values for {} test units",
                test_rul.len(),
                test.units.len()
            ),
        ));
    }
    Ok(Subset {
        name: subset.to_owned(),
        train,
        test,
        test_rul,
    })
}

/// One file of units; `run_to_failure` marks each unit failed at its last cycle.
pub fn read_units(path: &Path, run_to_failure: bool) -> Result<History, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    let mut units: Vec<Unit> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let values = line
            .split_ascii_whitespace()
            .map(str::parse::<f64>)
            .collect::<Result<Vec<f64>, _>>()
            .map_err(|e| EvalError::format(path, format!("line {}: {e}", n + 1)))?;
        if values.len() != 2 + SETTINGS + SENSORS {
            return Err(EvalError::format(
                path,
                format!("line {}: {} columns, expected 26", n + 1, values.len()),
            ));
        }
        let id = format!("{}", values[0]);
        if units.last().is_none_or(|u| u.id != id) {
            units.push(Unit {
                id,
                observations: Vec::new(),
                failed_at: None,
            });
        }
        if let Some(unit) = units.last_mut() {
            unit.observations.push(Observation {
                time: values[1],
                settings: values[2..2 + SETTINGS].to_vec(),
                sensors: values[2 + SETTINGS..].to_vec(),
            });
        }
    }
    if run_to_failure {
        for unit in &mut units {
            unit.failed_at = unit.observations.last().map(|o| o.time);
        }
    }
    let history = History {
        schema: schema(),
        units,
    };
    if let Some(problem) = history.problems().first() {
        return Err(EvalError::format(
            path,
            format!("{}: {}", problem.field, problem.reason),
        ));
    }
    Ok(history)
}

#[derive(Debug, Clone, Serialize)]
pub struct CmapssReport {
    pub subset: String,
    pub train_units: usize,
    pub test_units: usize,
    pub regimes: usize,
    pub sensors_kept: Vec<String>,
    /// Against the true RUL as published.
    pub rmse: f64,
    /// Against the true RUL capped like the target (the convention of most published tables).
    pub rmse_capped: f64,
    pub phm08_score: f64,
    pub mae: f64,
    pub cv_rmse: f64,
    pub chosen_params: fb_predict::gbdt::BoostParams,
    pub trees: usize,
    pub train_seconds: f64,
    /// Mean cost of taking one reading into a live predictor (ingest path), over every test cycle.
    pub observe_ns: f64,
    /// Mean cost of one prediction (window features and every tree), over every test cycle.
    pub predict_ns: f64,
    pub bytes_per_machine: usize,
    pub model_bytes: usize,
    pub predictions: Vec<f64>,
}

/// Trains on the subset's training file only and scores the test units' last cycles.
pub fn evaluate(
    subset: &Subset,
    config: &TrainConfig,
    progress: &mut dyn FnMut(Progress),
) -> Result<(CmapssReport, Model), EvalError> {
    let started = Instant::now();
    let mut model = fb_predict::train(&subset.train, config, progress)
        .map_err(|e| EvalError::Detector(e.to_string()))?;
    let train_seconds = started.elapsed().as_secs_f64();
    model.meta.training_seconds = Some(train_seconds);
    let model = std::sync::Arc::new(model);

    // Every test cycle goes through a live predictor, as readings would arrive.
    let mut predictions = Vec::with_capacity(subset.test.units.len());
    let mut updates = 0u64;
    let mut bytes_per_machine = 0;
    let (mut observing, mut predicting) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    for unit in &subset.test.units {
        let mut predictor = MachinePredictor::new(model.clone());
        let mut last = 0.0;
        for o in &unit.observations {
            let started = Instant::now();
            predictor
                .observe(o.reading())
                .map_err(|e| EvalError::Detector(e.to_string()))?;
            let observed = Instant::now();
            last = predictor.rul().unwrap_or(0.0);
            predicting += observed.elapsed();
            observing += observed - started;
            updates += 1;
        }
        bytes_per_machine = predictor.state_bytes();
        predictions.push(last);
    }
    let per_update = |d: std::time::Duration| d.as_nanos() as f64 / updates.max(1) as f64;
    let (observe_ns, predict_ns) = (per_update(observing), per_update(predicting));
    let cap = match model.meta.target {
        fb_predict::Target::Rul { cap } => cap,
        fb_predict::Target::FailureWithin { .. } => f64::INFINITY,
    };
    let capped: Vec<f64> = subset.test_rul.iter().map(|r| r.min(cap)).collect();
    let report = &model.meta.report;
    let cv_rmse = match report.validation {
        fb_predict::train::SplitMetrics::Rul { rmse, .. } => rmse,
        fb_predict::train::SplitMetrics::Failure { .. } => f64::NAN,
    };
    let model_bytes = model
        .to_json()
        .map_err(|e| EvalError::Detector(e.to_string()))?
        .len();
    let out = CmapssReport {
        subset: subset.name.clone(),
        train_units: subset.train.units.len(),
        test_units: subset.test.units.len(),
        regimes: report.regimes,
        sensors_kept: report.sensors_kept.clone(),
        rmse: metrics::rmse(&predictions, &subset.test_rul),
        rmse_capped: metrics::rmse(&predictions, &capped),
        phm08_score: metrics::phm08_score(&predictions, &subset.test_rul),
        mae: metrics::mae(&predictions, &subset.test_rul),
        cv_rmse,
        chosen_params: report.candidates[report.chosen].params.clone(),
        trees: report.trees,
        train_seconds,
        observe_ns,
        predict_ns,
        bytes_per_machine,
        model_bytes,
        predictions,
    };
    let model = std::sync::Arc::try_unwrap(model).unwrap_or_else(|shared| (*shared).clone());
    Ok((out, model))
}
