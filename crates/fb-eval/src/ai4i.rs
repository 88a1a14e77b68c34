//! AI4I 2020 predictive-maintenance data (Matzka 2020, UCI 601): 10,000 milling operations in
//! production order, each with its product quality (L/M/H), air and process temperature,
//! spindle speed, torque and tool wear, and whether the machine failed, by mode: tool wear
//! (TWF), heat dissipation (HDF), power (PWF), overstrain (OSF), random (RNF).
//!
//! The data set has no units, so each operation is a one-observation unit and the failure model
//! answers "does this operation end in a failure" (horizon 0) from the operation's readings.
//!
//! * **Split by row order, in blocks**: within each block of 1,000 consecutive operations the
//!   first 70 % train and the last 30 % test. Rows are in production order (tool wear climbs
//!   and resets with each tool change, air temperature drifts), so within a block the model
//!   predicts later production from earlier, as a plant would, and a tool's operations are
//!   never shuffled across the split. One cut at 70 % of the whole file would be simpler but
//!   cannot measure heat-dissipation failures: all 115 fall in the first 70 % (they need a warm
//!   spell of the drifting air temperature), so the test part would have none. The failure
//!   modes are functions of the current operation (the data set's generator), so blocks leak
//!   no label from the future; they make every period of the drift appear on both sides.
//! * **Derived inputs**, physical, not fitted to this file. The data set's documentation
//!   defines the modes by three quantities no single reading shows: mechanical power (torque ×
//!   angular speed: PWF outside a band), strain (tool wear × torque: OSF above a limit that
//!   depends on product quality), and the temperature difference process − air (HDF when small
//!   at low speed). A tree tests one input at a time, so a limit on a product of two readings
//!   costs it a staircase of splits that never quite fits; given the product, one split does.
//!   Product quality is an ordinal input (L < M < H, the order of its OSF limits).
//! * **Threshold** per mode: the best F1 on the out-of-fold predictions of the training part;
//!   the test rows are never seen before they are scored.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use fb_predict::data::{History, Observation, Schema, Unit};
use fb_predict::features::{DerivedInput, DerivedOp, FeatureSpec, SensorFeature};
use fb_predict::metrics::{self, BinaryScores};
use fb_predict::{Model, Progress, TrainConfig};

use crate::EvalError;

/// The label columns, in the file's order: the overall flag first, then the modes.
pub const LABELS: [&str; 6] = ["Machine failure", "TWF", "HDF", "PWF", "OSF", "RNF"];

const READINGS: [&str; 5] = [
    "Air temperature [K]",
    "Process temperature [K]",
    "Rotational speed [rpm]",
    "Torque [Nm]",
    "Tool wear [min]",
];

/// One operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub udi: f64,
    /// Product quality: 0 = L, 1 = M, 2 = H.
    pub quality: f64,
    pub readings: [f64; 5],
    /// Per [`LABELS`].
    pub labels: [bool; 6],
}

pub fn read(path: &Path) -> Result<Vec<Operation>, EvalError> {
    let file = std::fs::File::open(path).map_err(|e| EvalError::io(path, e))?;
    let mut reader = ::csv::ReaderBuilder::new().from_reader(std::io::BufReader::new(file));
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| EvalError::format(path, e))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_owned())
        .collect();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| EvalError::format(path, format!("no column {name:?}")))
    };
    let udi = column("UDI")?;
    let quality = column("Type")?;
    let readings = READINGS.map(column);
    let labels = LABELS.map(column);
    let readings: Vec<usize> = readings.into_iter().collect::<Result<_, _>>()?;
    let labels: Vec<usize> = labels.into_iter().collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let line = n + 2;
        let record = record.map_err(|e| EvalError::format(path, e))?;
        let cell = |i: usize| record.get(i).unwrap_or("").trim();
        let number = |i: usize| {
            cell(i).parse::<f64>().map_err(|_| {
                EvalError::format(path, format!("line {line}: {:?} is not a number", cell(i)))
            })
        };
        let quality = match cell(quality) {
            "L" => 0.0,
            "M" => 1.0,
            "H" => 2.0,
            other => {
                return Err(EvalError::format(
                    path,
                    format!("line {line}: Type {other:?} is not L, M or H"),
                ));
            }
        };
        let mut values = [0.0; 5];
        for (v, &i) in values.iter_mut().zip(&readings) {
            *v = number(i)?;
        }
        let mut flags = [false; 6];
        for (flag, &i) in flags.iter_mut().zip(&labels) {
            *flag = match cell(i) {
                "1" => true,
                "0" => false,
                other => {
                    return Err(EvalError::format(
                        path,
                        format!("line {line}: label {other:?} is not 0 or 1"),
                    ));
                }
            };
        }
        out.push(Operation {
            udi: number(udi)?,
            quality,
            readings: values,
            labels: flags,
        });
    }
    if out.len() < 10 {
        return Err(EvalError::format(path, "fewer than 10 operations"));
    }
    Ok(out)
}

pub fn schema() -> Schema {
    Schema {
        settings: Vec::new(),
        sensors: [
            "quality",
            "air_k",
            "process_k",
            "speed_rpm",
            "torque_nm",
            "wear_min",
        ]
        .map(String::from)
        .to_vec(),
    }
}

/// The operation-level features: each reading as it is, plus the three physical quantities.
pub fn features() -> FeatureSpec {
    let derived = |name: &str, op, a: &str, b: &str| DerivedInput {
        name: name.into(),
        op,
        a: a.into(),
        b: b.into(),
    };
    FeatureSpec {
        sensor_features: vec![SensorFeature::Last],
        age: false,
        derived: vec![
            derived("power", DerivedOp::Product, "torque_nm", "speed_rpm"),
            derived("strain", DerivedOp::Product, "wear_min", "torque_nm"),
            derived("temp_diff", DerivedOp::Difference, "process_k", "air_k"),
        ],
    }
}

/// The training configuration for every label: one-reading features, failure now.
pub fn config() -> TrainConfig {
    let mut config = TrainConfig::failure(0.0);
    config.features = features();
    // Raw readings with many distinct values (speed, torque products): finer cuts.
    config.boost.max_bins = 255;
    config
}

/// Operations as one-observation units, failed where `label` is set.
pub fn history(operations: &[Operation], label: usize) -> History {
    History {
        schema: schema(),
        units: operations
            .iter()
            .map(|o| Unit {
                id: format!("{}", o.udi),
                observations: vec![Observation {
                    time: o.udi,
                    settings: Vec::new(),
                    sensors: std::iter::once(o.quality).chain(o.readings).collect(),
                }],
                failed_at: o.labels[label].then_some(o.udi),
            })
            .collect(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ModeReport {
    pub label: String,
    pub train_positives: usize,
    pub test_positives: usize,
    /// Chosen on the training part's out-of-fold predictions.
    pub threshold: f64,
    pub test: BinaryScores,
    pub train_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ai4iReport {
    pub operations: usize,
    pub split: Split,
    pub train_operations: usize,
    pub modes: Vec<ModeReport>,
}

/// How operations are split into training and test parts, keeping production order.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Split {
    /// Consecutive operations per block (the whole file: one cut).
    pub block: usize,
    /// The first share of each block trains.
    pub train_share: f64,
}

impl Default for Split {
    fn default() -> Self {
        Self {
            block: 1000,
            train_share: 0.7,
        }
    }
}

impl Split {
    pub fn apply(
        &self,
        operations: &[Operation],
    ) -> Result<(Vec<Operation>, Vec<Operation>), EvalError> {
        if !(self.train_share > 0.0 && self.train_share < 1.0) || self.block < 2 {
            return Err(EvalError::Options(
                "the training share must be in (0, 1) and a block at least 2 operations".into(),
            ));
        }
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for block in operations.chunks(self.block) {
            let cut = ((block.len() as f64 * self.train_share) as usize).clamp(1, block.len() - 1);
            train.extend_from_slice(&block[..cut]);
            test.extend_from_slice(&block[cut..]);
        }
        Ok((train, test))
    }
}

/// Trains one model per label on the training part and scores the test part. `progress` gets
/// the label's index with each training step.
pub fn evaluate(
    operations: &[Operation],
    split: Split,
    config: &TrainConfig,
    progress: &mut dyn FnMut(usize, Progress),
) -> Result<(Ai4iReport, Vec<Model>), EvalError> {
    let (train, test) = split.apply(operations)?;
    let (train, test) = (train.as_slice(), test.as_slice());
    let mut modes = Vec::new();
    let mut models = Vec::new();
    for (label, name) in LABELS.iter().enumerate() {
        let started = Instant::now();
        let model = fb_predict::train(&history(train, label), config, &mut |p| progress(label, p))
            .map_err(|e| EvalError::Detector(format!("{name}: {e}")))?;
        let train_seconds = started.elapsed().as_secs_f64();
        let threshold = model.meta.report.decision_threshold.unwrap_or(0.5);
        let truth: Vec<bool> = test.iter().map(|o| o.labels[label]).collect();
        let probabilities = history(test, label)
            .units
            .iter()
            .map(|u| {
                model
                    .predict_last(&u.observations)
                    .map(|p| p.map_or(0.0, |p| p.value()))
                    .map_err(|e| EvalError::Detector(e.to_string()))
            })
            .collect::<Result<Vec<f64>, _>>()?;
        modes.push(ModeReport {
            label: (*name).to_owned(),
            train_positives: train.iter().filter(|o| o.labels[label]).count(),
            test_positives: truth.iter().filter(|&&t| t).count(),
            threshold,
            test: metrics::binary_scores(&probabilities, &truth, threshold),
            train_seconds,
        });
        models.push(model);
    }
    Ok((
        Ai4iReport {
            operations: operations.len(),
            split,
            train_operations: train.len(),
            modes,
        },
        models,
    ))
}
