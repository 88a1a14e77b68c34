//! Feature engineering: from one unit's readings, cycle by cycle, to the row of numbers the
//! trees see.
//!
//! 1. *Derived inputs* (optional): physically meaningful combinations of raw sensors, e.g.
//!    mechanical power = torque × speed, tool load = wear × torque, a temperature difference.
//!    Trees split on one feature at a time, so a failure that happens when a product crosses a
//!    limit needs a staircase of splits unless the product is given.
//! 2. *Regime normalisation* ([`crate::regime`]): each kept sensor standardised by its regime's
//!    training mean and spread; sensors that carry nothing are dropped.
//! 3. *Window features* per kept sensor over the last readings: mean, last, least-squares
//!    slope, standard deviation, min, max over a window; EWMAs; drift of the recent mean from
//!    the unit's first readings (engines start with different wear); and the unit's age.
//!
//! The same [`FeatureState`] computes features in training (fed a unit's rows in order) and in
//! live inference (fed one reading at a time), so the two cannot disagree. Its memory is fixed
//! at construction: a ring of the longest window per sensor.

use serde::{Deserialize, Serialize};

use crate::data::{Reading, Schema, reading_problem};
use crate::regime::{RegimeModel, Scalers};

/// One feature computed per kept sensor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stat", rename_all = "snake_case", deny_unknown_fields)]
pub enum SensorFeature {
    Last,
    Mean {
        window: usize,
    },
    Std {
        window: usize,
    },
    Min {
        window: usize,
    },
    Max {
        window: usize,
    },
    /// Least-squares slope per reading over the window.
    Slope {
        window: usize,
    },
    /// Exponentially weighted moving average over the unit's whole history.
    Ewma {
        alpha: f64,
    },
    /// Mean of the last `window` readings minus the mean of the unit's first readings (as many
    /// as the longest drift window; all of them while there are fewer).
    DriftFromStart {
        window: usize,
    },
}

impl SensorFeature {
    fn window(&self) -> usize {
        match *self {
            SensorFeature::Last | SensorFeature::Ewma { .. } => 1,
            SensorFeature::Mean { window }
            | SensorFeature::Std { window }
            | SensorFeature::Min { window }
            | SensorFeature::Max { window }
            | SensorFeature::Slope { window }
            | SensorFeature::DriftFromStart { window } => window,
        }
    }

    fn name(&self, sensor: &str) -> String {
        match *self {
            SensorFeature::Last => format!("{sensor}.last"),
            SensorFeature::Mean { window } => format!("{sensor}.mean{window}"),
            SensorFeature::Std { window } => format!("{sensor}.std{window}"),
            SensorFeature::Min { window } => format!("{sensor}.min{window}"),
            SensorFeature::Max { window } => format!("{sensor}.max{window}"),
            SensorFeature::Slope { window } => format!("{sensor}.slope{window}"),
            SensorFeature::Ewma { alpha } => format!("{sensor}.ewma{alpha}"),
            SensorFeature::DriftFromStart { window } => format!("{sensor}.drift{window}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DerivedOp {
    Product,
    Difference,
}

/// A new input computed from two raw ones, before normalisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DerivedInput {
    pub name: String,
    pub op: DerivedOp,
    pub a: String,
    pub b: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    pub sensor_features: Vec<SensorFeature>,
    /// Add the time since the unit's first observation.
    pub age: bool,
    pub derived: Vec<DerivedInput>,
}

impl FeatureSpec {
    /// What run-to-failure histories get by default: short and long means (noise is large next
    /// to a cycle's wear), spread and range, two slopes, two EWMAs, drift from the start, age.
    pub fn run_to_failure() -> Self {
        use SensorFeature::*;
        Self {
            sensor_features: vec![
                Last,
                Mean { window: 5 },
                Mean { window: 15 },
                Mean { window: 30 },
                Std { window: 15 },
                Min { window: 15 },
                Max { window: 15 },
                Slope { window: 15 },
                Slope { window: 30 },
                Ewma { alpha: 0.1 },
                Ewma { alpha: 0.03 },
                DriftFromStart { window: 15 },
            ],
            age: true,
            derived: Vec::new(),
        }
    }

    /// For machines watched live from the middle of their life: the same window statistics and
    /// EWMAs as [`Self::run_to_failure`], without the unit's age and the drift from its first
    /// readings. A live predictor starts when the server starts (or a model is promoted), not
    /// when the machine was last repaired, so features measured from "the start" would mean
    /// something else live than in training.
    pub fn condition() -> Self {
        let mut spec = Self::run_to_failure();
        spec.sensor_features
            .retain(|f| !matches!(f, SensorFeature::DriftFromStart { .. }));
        spec.age = false;
        spec
    }

    /// The ring length: the longest window any feature needs.
    pub fn window(&self) -> usize {
        self.sensor_features
            .iter()
            .map(SensorFeature::window)
            .max()
            .unwrap_or(1)
            .max(1)
    }

    pub fn problems(&self, schema: &Schema) -> Vec<fb_core::FieldError> {
        use fb_core::FieldError;
        let mut out = Vec::new();
        if self.sensor_features.is_empty() {
            out.push(FieldError::new(
                "features.sensor_features",
                "at least one is needed",
            ));
        }
        for (i, f) in self.sensor_features.iter().enumerate() {
            let bad = match *f {
                SensorFeature::Ewma { alpha } => !(alpha > 0.0 && alpha <= 1.0),
                other => !(1..=10_000).contains(&other.window()),
            };
            if bad {
                out.push(FieldError::new(
                    format!("features.sensor_features[{i}]"),
                    "windows must be 1..=10000 and alpha in (0, 1]",
                ));
            }
        }
        for (i, d) in self.derived.iter().enumerate() {
            for (field, name) in [("a", &d.a), ("b", &d.b)] {
                if !schema.sensors.contains(name) {
                    out.push(FieldError::new(
                        format!("features.derived[{i}].{field}"),
                        format!("{name:?} is not one of the sensors"),
                    ));
                }
            }
            if schema.sensors.contains(&d.name) || schema.settings.contains(&d.name) {
                out.push(FieldError::new(
                    format!("features.derived[{i}].name"),
                    "clashes with an input's name",
                ));
            }
        }
        out
    }
}

/// Everything fitted on training data that turns readings into features; saved in the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturePipeline {
    pub spec: FeatureSpec,
    /// The raw inputs a reading must carry, in order.
    pub schema: Schema,
    pub regimes: RegimeModel,
    /// Over the extended sensors (raw then derived), per regime.
    pub scalers: Scalers,
    /// Indices into the extended sensors of those that become features.
    pub kept: Vec<usize>,
    /// Extended sensor names (raw then derived).
    pub inputs: Vec<String>,
    /// One name per feature, in the order of the rows the trees see.
    pub names: Vec<String>,
}

impl FeaturePipeline {
    pub fn new(
        spec: FeatureSpec,
        schema: Schema,
        regimes: RegimeModel,
        scalers: Scalers,
        kept: Vec<usize>,
    ) -> Self {
        let inputs: Vec<String> = schema
            .sensors
            .iter()
            .cloned()
            .chain(spec.derived.iter().map(|d| d.name.clone()))
            .collect();
        let mut names: Vec<String> = kept
            .iter()
            .flat_map(|&s| {
                spec.sensor_features
                    .iter()
                    .map(|f| f.name(&inputs[s]))
                    .collect::<Vec<_>>()
            })
            .collect();
        if spec.age {
            names.push("age".into());
        }
        Self {
            spec,
            schema,
            regimes,
            scalers,
            kept,
            inputs,
            names,
        }
    }

    pub fn features(&self) -> usize {
        self.names.len()
    }

    /// The raw sensors followed by the derived inputs.
    pub fn extend(&self, sensors: &[f64], out: &mut Vec<f64>) {
        extend_inputs(&self.spec, &self.schema, sensors, out);
    }

    /// Whether the fitted parts agree with each other (checked when a model is loaded).
    pub fn is_consistent(&self) -> bool {
        let regimes = self.regimes.regimes();
        let extended = self.schema.sensors.len() + self.spec.derived.len();
        let settings = self.schema.settings.len();
        regimes >= 1
            && self.regimes.scale.len() == settings
            && self.regimes.centres.iter().all(|c| c.len() == settings)
            && self.scalers.mean.len() == regimes
            && self.scalers.spread.len() == regimes
            && self
                .scalers
                .mean
                .iter()
                .chain(&self.scalers.spread)
                .all(|row| row.len() == extended)
            && self.scalers.mean.iter().flatten().all(|m| m.is_finite())
            && self
                .scalers
                .spread
                .iter()
                .flatten()
                .all(|d| d.is_finite() && *d > 0.0)
            && self
                .regimes
                .scale
                .iter()
                .all(|(m, d)| m.is_finite() && d.is_finite() && *d > 0.0)
            && self.regimes.centres.iter().flatten().all(|c| c.is_finite())
            && self.kept.iter().all(|&k| k < extended)
            && self.inputs.len() == extended
            && self.names.len()
                == self.kept.len() * self.spec.sensor_features.len() + usize::from(self.spec.age)
            && self.spec.problems(&self.schema).is_empty()
    }
}

/// Raw sensors, then each derived input (names checked by [`FeatureSpec::problems`]).
pub fn extend_inputs(spec: &FeatureSpec, schema: &Schema, sensors: &[f64], out: &mut Vec<f64>) {
    out.clear();
    out.extend_from_slice(sensors);
    let index = |name: &str| schema.sensors.iter().position(|s| s == name).unwrap_or(0);
    for d in &spec.derived {
        let (a, b) = (sensors[index(&d.a)], sensors[index(&d.b)]);
        out.push(match d.op {
            DerivedOp::Product => a * b,
            DerivedOp::Difference => a - b,
        });
    }
}

/// One unit's (or live machine's) feature state. Memory: a ring of `window` normalised values
/// per kept sensor, one EWMA per sensor and alpha, the start means, and scratch buffers; all
/// allocated here, none per update.
#[derive(Debug, Clone)]
pub struct FeatureState {
    window: usize,
    /// `[sensor][slot]`, slot = count % window.
    ring: Vec<f64>,
    count: u64,
    first_time: f64,
    last_time: f64,
    ewma: Vec<f64>,
    start_sum: Vec<f64>,
    start_window: usize,
    extended: Vec<f64>,
    chronological: Vec<f64>,
}

impl FeatureState {
    pub fn new(pipeline: &FeaturePipeline) -> Self {
        let window = pipeline.spec.window();
        let kept = pipeline.kept.len();
        let alphas = ewma_alphas(&pipeline.spec).count();
        let start_window = pipeline
            .spec
            .sensor_features
            .iter()
            .filter_map(|f| match f {
                SensorFeature::DriftFromStart { window } => Some(*window),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        Self {
            window,
            ring: vec![0.0; kept * window],
            count: 0,
            first_time: 0.0,
            last_time: f64::NEG_INFINITY,
            ewma: vec![0.0; kept * alphas],
            start_sum: vec![0.0; kept],
            start_window,
            extended: Vec::with_capacity(pipeline.inputs.len()),
            chronological: vec![0.0; window],
        }
    }

    /// Readings seen so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Bytes this state holds (struct and buffers): what a machine costs in memory.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + 8 * (self.ring.capacity()
                + self.ewma.capacity()
                + self.start_sum.capacity()
                + self.extended.capacity()
                + self.chronological.capacity())
    }

    /// Takes one reading; refuses one that does not fit the schema or goes back in time.
    pub fn push(&mut self, pipeline: &FeaturePipeline, o: Reading<'_>) -> Result<(), String> {
        if let Some(problem) = reading_problem(&pipeline.schema, o, self.last_time) {
            return Err(problem);
        }
        self.push_unchecked(pipeline, o);
        Ok(())
    }

    /// [`Self::push`] without the checks, for histories already validated as a whole.
    pub(crate) fn push_unchecked(&mut self, pipeline: &FeaturePipeline, o: Reading<'_>) {
        if self.count == 0 {
            self.first_time = o.time;
        }
        self.last_time = o.time;
        let regime = pipeline.regimes.assign(o.settings);
        extend_inputs(
            &pipeline.spec,
            &pipeline.schema,
            o.sensors,
            &mut self.extended,
        );
        let slot = (self.count % self.window as u64) as usize;
        let alphas = ewma_alphas(&pipeline.spec).count();
        for (k, &s) in pipeline.kept.iter().enumerate() {
            let value = pipeline.scalers.normalise(regime, s, self.extended[s]);
            self.ring[k * self.window + slot] = value;
            for (a, alpha) in ewma_alphas(&pipeline.spec).enumerate() {
                let e = &mut self.ewma[k * alphas + a];
                *e = if self.count == 0 {
                    value
                } else {
                    alpha * value + (1.0 - alpha) * *e
                };
            }
            if (self.count as usize) < self.start_window {
                self.start_sum[k] += value;
            }
        }
        self.count += 1;
    }

    /// The features after the readings so far, in `pipeline.names` order. Empty before the
    /// first reading.
    pub fn features(&mut self, pipeline: &FeaturePipeline, out: &mut Vec<f64>) {
        out.clear();
        if self.count == 0 {
            return;
        }
        let available = (self.count as usize).min(self.window);
        let alphas = ewma_alphas(&pipeline.spec).count();
        for k in 0..pipeline.kept.len() {
            // The ring in time order, oldest first.
            let ring = &self.ring[k * self.window..(k + 1) * self.window];
            let next = (self.count % self.window as u64) as usize;
            let values = &mut self.chronological[..available];
            for (j, v) in values.iter_mut().enumerate() {
                *v = ring[(next + self.window - available + j) % self.window];
            }
            let mut alpha_index = 0;
            for feature in &pipeline.spec.sensor_features {
                let tail = |w: usize| &values[available - w.min(available)..];
                out.push(match *feature {
                    SensorFeature::Last => values[available - 1],
                    SensorFeature::Mean { window } => mean(tail(window)),
                    SensorFeature::Std { window } => std_dev(tail(window)),
                    SensorFeature::Min { window } => {
                        tail(window).iter().copied().fold(f64::INFINITY, f64::min)
                    }
                    SensorFeature::Max { window } => tail(window)
                        .iter()
                        .copied()
                        .fold(f64::NEG_INFINITY, f64::max),
                    SensorFeature::Slope { window } => slope(tail(window)),
                    SensorFeature::Ewma { .. } => {
                        alpha_index += 1;
                        self.ewma[k * alphas + alpha_index - 1]
                    }
                    SensorFeature::DriftFromStart { window } => {
                        let seen = (self.count as usize).min(self.start_window).max(1);
                        mean(tail(window)) - self.start_sum[k] / seen as f64
                    }
                });
            }
        }
        if pipeline.spec.age {
            out.push(self.last_time - self.first_time);
        }
    }
}

fn ewma_alphas(spec: &FeatureSpec) -> impl Iterator<Item = f64> + '_ {
    spec.sensor_features.iter().filter_map(|f| match f {
        SensorFeature::Ewma { alpha } => Some(*alpha),
        _ => None,
    })
}

pub(crate) fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

pub(crate) fn std_dev(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt()
}

/// Least-squares slope against 0, 1, 2, …; 0 for fewer than two values.
pub(crate) fn slope(v: &[f64]) -> f64 {
    let n = v.len();
    if n < 2 {
        return 0.0;
    }
    let x_mean = (n - 1) as f64 / 2.0;
    let y_mean = mean(v);
    let mut num = 0.0;
    let mut den = 0.0;
    for (i, y) in v.iter().enumerate() {
        let dx = i as f64 - x_mean;
        num += dx * (y - y_mean);
        den += dx * dx;
    }
    num / den
}
