//! From a live machine to a model's inputs.
//!
//! A model names the inputs it was trained on (`pipeline.schema`: settings, then sensors). The
//! server trains per machine type on its own history, with the machines' sensor keys as those
//! names, so a machine of that type feeds the model by key. [`InputMap`] resolves the keys once
//! per machine (when its predictor is made, again when its sensors change) and then assembles
//! each update from the machine's latest values without a lookup.
//!
//! Sensors report one value at a time, each at its own rate; a model learnt from observations
//! taken at a fixed interval (one a minute, one a flight). [`Resampler`] turns a machine's
//! readings into those observations — the mean of each sensor's readings over the interval —
//! and [`LiveSpec`] says what the interval is and what a model's time unit is in seconds, so
//! that a RUL in the model's unit becomes hours on the machine. The trainer of plant histories
//! uses the same resampler, so a model sees live what it saw in training.

use serde::{Deserialize, Serialize};

use fb_core::FieldError;
use fb_core::plant::SensorSpec;

use crate::data::Schema;

/// How a model meets live readings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveSpec {
    /// One observation per this many seconds: the mean of each input's readings in it.
    pub sample_secs: f64,
    /// Seconds in one unit of the model's time (3600 for a model trained in hours, the length
    /// of a cycle for one trained in cycles). RUL is in this unit.
    pub secs_per_unit: f64,
}

impl LiveSpec {
    /// Longest interval: a day.
    pub const SAMPLE_SECS_MAX: f64 = 86_400.0;

    /// Every problem, each under its field's name.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        if !(self.sample_secs >= 0.001 && self.sample_secs <= Self::SAMPLE_SECS_MAX) {
            out.push(FieldError::new(
                "sample_secs",
                "must be between 0.001 and 86400 seconds",
            ));
        }
        if !(self.secs_per_unit > 0.0 && self.secs_per_unit.is_finite()) {
            out.push(FieldError::new(
                "secs_per_unit",
                "must be a positive number of seconds",
            ));
        }
        out
    }

    /// A reading's time (Unix µs) in the model's unit.
    pub fn time(&self, ts_micros: i64) -> f64 {
        ts_micros as f64 / 1e6 / self.secs_per_unit
    }

    /// A duration in the model's unit (a RUL) in hours.
    pub fn hours(&self, units: f64) -> f64 {
        units * self.secs_per_unit / 3600.0
    }
}

/// What [`Resampler::push`] did with a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resampled {
    /// Added to the current interval.
    Added,
    /// It opened a new interval: the previous one is complete and `row` holds its observation,
    /// taken at `at_micros` (the end of that interval).
    Closed { at_micros: i64 },
    /// Older than the current interval (late or redelivered): not used.
    Late,
}

/// One machine's readings into one observation per interval. Each input's value in an
/// observation is the mean of its readings in the interval, or its last value before it when it
/// sent none (a slower sensor); an input never heard from is NaN, which a predictor refuses.
/// Memory is fixed at construction; nothing is allocated per reading.
#[derive(Debug, Clone)]
pub struct Resampler {
    sample_micros: i64,
    /// Index of the current interval (`ts / sample`), None before the first reading.
    bucket: Option<i64>,
    sums: Vec<f64>,
    counts: Vec<u32>,
    last: Vec<f64>,
}

impl Resampler {
    /// For `inputs` inputs (a machine's sensors), one observation per `sample_secs`.
    pub fn new(inputs: usize, sample_secs: f64) -> Self {
        Self {
            sample_micros: ((sample_secs * 1e6).round() as i64).max(1),
            bucket: None,
            sums: vec![0.0; inputs],
            counts: vec![0; inputs],
            last: vec![f64::NAN; inputs],
        }
    }

    /// Takes one reading of input `input` (an index below `inputs`; others are ignored).
    pub fn push(
        &mut self,
        input: usize,
        ts_micros: i64,
        value: f64,
        row: &mut Vec<f64>,
    ) -> Resampled {
        if input >= self.sums.len() || !value.is_finite() {
            return Resampled::Late;
        }
        let bucket = ts_micros.div_euclid(self.sample_micros);
        let outcome = match self.bucket {
            Some(current) if bucket < current => return Resampled::Late,
            Some(current) if bucket > current => {
                self.close(row);
                Resampled::Closed {
                    at_micros: (current + 1).saturating_mul(self.sample_micros),
                }
            }
            _ => Resampled::Added,
        };
        self.bucket = Some(bucket);
        self.sums[input] += value;
        self.counts[input] += 1;
        outcome
    }

    fn close(&mut self, row: &mut Vec<f64>) {
        row.clear();
        for ((sum, count), last) in self
            .sums
            .iter_mut()
            .zip(&mut self.counts)
            .zip(&mut self.last)
        {
            if *count > 0 {
                *last = *sum / f64::from(*count);
            }
            row.push(*last);
            *sum = 0.0;
            *count = 0;
        }
    }
}

/// For each model input, the index of the machine sensor that provides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputMap {
    pub settings: Vec<usize>,
    pub sensors: Vec<usize>,
}

impl InputMap {
    /// Matches the model's input names against the machine's sensor keys; every input the
    /// machine lacks is reported (the model cannot serve this machine).
    pub fn new(schema: &Schema, machine: &[SensorSpec]) -> Result<Self, Vec<FieldError>> {
        let mut missing = Vec::new();
        let mut resolve = |names: &[String], part: &str| -> Vec<usize> {
            names
                .iter()
                .enumerate()
                .filter_map(|(i, name)| {
                    let found = machine.iter().position(|s| s.key.0 == *name);
                    if found.is_none() {
                        missing.push(FieldError::new(
                            format!("schema.{part}[{i}]"),
                            format!("the machine has no sensor {name:?}"),
                        ));
                    }
                    found
                })
                .collect()
        };
        let settings = resolve(&schema.settings, "settings");
        let sensors = resolve(&schema.sensors, "sensors");
        if missing.is_empty() {
            Ok(Self { settings, sensors })
        } else {
            Err(missing)
        }
    }

    /// Fills `settings` and `sensors` in the model's order from values indexed like the
    /// machine's sensors.
    pub fn assemble(&self, values: &[f64], settings: &mut Vec<f64>, sensors: &mut Vec<f64>) {
        settings.clear();
        settings.extend(self.settings.iter().map(|&i| values[i]));
        sensors.clear();
        sensors.extend(self.sensors.iter().map(|&i| values[i]));
    }
}

#[cfg(test)]
mod tests {
    use fb_core::plant::{SensorKey, SensorKind};

    use super::*;

    fn sensor(key: &str) -> SensorSpec {
        SensorSpec {
            key: SensorKey(key.into()),
            kind: SensorKind::Other,
            unit: "u".into(),
            physical_min: 0.0,
            physical_max: 1.0,
            warning_low: None,
            warning_high: None,
            critical_low: None,
            critical_high: None,
        }
    }

    #[test]
    fn readings_become_one_observation_per_interval_of_their_means() {
        let mut r = Resampler::new(2, 60.0);
        let mut row = Vec::new();
        let s = |secs: i64| secs * 1_000_000;
        assert_eq!(r.push(0, s(600), 1.0, &mut row), Resampled::Added);
        assert_eq!(r.push(0, s(630), 3.0, &mut row), Resampled::Added);
        assert_eq!(r.push(1, s(659), 10.0, &mut row), Resampled::Added);
        assert_eq!(
            r.push(0, s(660), 5.0, &mut row),
            Resampled::Closed { at_micros: s(660) }
        );
        assert_eq!(row, [2.0, 10.0]);
        assert_eq!(r.push(1, s(610), 7.0, &mut row), Resampled::Late);
        // Input 1 silent for an interval keeps its last mean; a gap of intervals closes once.
        assert_eq!(
            r.push(0, s(900), 1.0, &mut row),
            Resampled::Closed { at_micros: s(720) }
        );
        assert_eq!(row, [5.0, 10.0]);
        let mut fresh = Resampler::new(2, 60.0);
        fresh.push(0, s(0), 1.0, &mut row);
        fresh.push(0, s(60), 1.0, &mut row);
        assert!(row[1].is_nan(), "never heard from: {row:?}");
    }

    #[test]
    fn live_spec_converts_time_and_rul() {
        let hours = LiveSpec {
            sample_secs: 60.0,
            secs_per_unit: 3600.0,
        };
        assert_eq!(hours.time(7_200_000_000), 2.0);
        assert_eq!(hours.hours(1.5), 1.5);
        let cycles = LiveSpec {
            sample_secs: 1800.0,
            secs_per_unit: 1800.0,
        };
        assert_eq!(cycles.hours(10.0), 5.0);
        assert!(hours.problems().is_empty());
        let bad = LiveSpec {
            sample_secs: 0.0,
            secs_per_unit: f64::NAN,
        };
        let fields: Vec<String> = bad.problems().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["sample_secs", "secs_per_unit"]);
    }

    #[test]
    fn resolves_inputs_by_key_in_the_models_order_and_names_every_missing_one() {
        let machine = ["power", "temperature", "speed", "vibration"].map(sensor);
        let schema = Schema {
            settings: vec!["speed".into()],
            sensors: vec!["vibration".into(), "temperature".into()],
        };
        let map = InputMap::new(&schema, &machine).unwrap();
        let (mut settings, mut sensors) = (Vec::new(), Vec::new());
        map.assemble(&[7.0, 60.0, 1450.0, 2.5], &mut settings, &mut sensors);
        assert_eq!(settings, [1450.0]);
        assert_eq!(sensors, [2.5, 60.0]);

        let other = Schema {
            settings: vec!["load".into()],
            sensors: vec!["vibration".into(), "flow".into()],
        };
        let missing = InputMap::new(&other, &machine).unwrap_err();
        let fields: Vec<&str> = missing.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["schema.settings[0]", "schema.sensors[1]"]);
    }
}
