//! Unit histories: what training takes. A *unit* is one machine's life (or the observed part of
//! it): observations in time order, each with the operating settings it ran under and its sensor
//! values, and the time it failed, if it did. Nothing here is specific to C-MAPSS: a plant's
//! machine type gives one unit per machine and maintenance cycle, with its own sensors.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use fb_core::FieldError;

/// Names of the inputs, in the order every observation holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// Operating settings (load, speed, altitude…): they choose the regime a reading is
    /// normalised in, and are not features themselves. May be empty.
    pub settings: Vec<String>,
    pub sensors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Cycle number or hours; strictly increasing within a unit. RUL is in its unit.
    pub time: f64,
    pub settings: Vec<f64>,
    pub sensors: Vec<f64>,
}

/// One reading as the live path hands it over, borrowed (no allocation per update).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading<'a> {
    pub time: f64,
    pub settings: &'a [f64],
    pub sensors: &'a [f64],
}

impl Observation {
    pub fn reading(&self) -> Reading<'_> {
        Reading {
            time: self.time,
            settings: &self.settings,
            sensors: &self.sensors,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub id: String,
    pub observations: Vec<Observation>,
    /// When the unit failed (RUL 0), or `None` if it was still running when the history ends
    /// (right-censored: it still teaches what cannot be near failure, see [`Target::label`]).
    pub failed_at: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub schema: Schema,
    pub units: Vec<Unit>,
}

/// What a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// Remaining useful life, piecewise linear: constant at `cap` while the machine is healthy,
    /// then falling to 0 at failure. Early in life the sensors cannot tell 300 cycles left from
    /// 200 (degradation has not begun), so a linear target there would only teach noise; the
    /// knee is where the literature's C-MAPSS results put it (Heimes 2008, Li et al. 2018:
    /// 125–130 cycles).
    Rul { cap: f64 },
    /// Whether the unit fails within `horizon` time units: a probability.
    FailureWithin { horizon: f64 },
}

impl Target {
    /// The training label of an observation at `time` in `unit`, or `None` where the history
    /// does not tell it. A censored unit that ran until `end` is known to have had at least
    /// `end − time` left: enough for a capped RUL of `cap` once that reaches the cap, and for
    /// "no failure within the horizon" once it reaches the horizon.
    pub fn label(&self, unit: &Unit, time: f64) -> Option<f64> {
        let end = unit.observations.last().map(|o| o.time)?;
        match (*self, unit.failed_at) {
            (Target::Rul { cap }, Some(failed)) => Some((failed - time).clamp(0.0, cap)),
            (Target::Rul { cap }, None) => (end - time >= cap).then_some(cap),
            (Target::FailureWithin { horizon }, Some(failed)) => {
                Some(if failed - time <= horizon { 1.0 } else { 0.0 })
            }
            (Target::FailureWithin { horizon }, None) => (end - time >= horizon).then_some(0.0),
        }
    }

    pub fn problems(&self) -> Vec<FieldError> {
        match *self {
            Target::Rul { cap } if !(cap > 0.0 && cap.is_finite()) => {
                vec![FieldError::new("target.cap", "must be a positive number")]
            }
            Target::FailureWithin { horizon } if !(horizon >= 0.0 && horizon.is_finite()) => {
                vec![FieldError::new(
                    "target.horizon",
                    "must be a finite number >= 0",
                )]
            }
            _ => Vec::new(),
        }
    }
}

impl History {
    pub fn observations(&self) -> usize {
        self.units.iter().map(|u| u.observations.len()).sum()
    }

    /// Every problem with the history, each naming where it is.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        let names = self.schema.settings.iter().chain(&self.schema.sensors);
        let mut seen = std::collections::BTreeSet::new();
        for name in names {
            if name.is_empty() || !seen.insert(name.as_str()) {
                out.push(FieldError::new(
                    "schema",
                    format!("input names must be non-empty and unique: {name:?}"),
                ));
            }
        }
        if self.schema.sensors.is_empty() {
            out.push(FieldError::new(
                "schema.sensors",
                "at least one sensor is needed",
            ));
        }
        let mut ids = std::collections::BTreeSet::new();
        if self.units.is_empty() {
            out.push(FieldError::new("units", "no units to learn from"));
        }
        for (u, unit) in self.units.iter().enumerate() {
            let at = format!("units[{u}]");
            if !ids.insert(unit.id.as_str()) {
                out.push(FieldError::new(format!("{at}.id"), "duplicate unit id"));
            }
            if unit.observations.is_empty() {
                out.push(FieldError::new(
                    format!("{at}.observations"),
                    "a unit needs at least one observation",
                ));
            }
            let mut previous = f64::NEG_INFINITY;
            for (i, o) in unit.observations.iter().enumerate() {
                if let Some(problem) = reading_problem(&self.schema, o.reading(), previous) {
                    out.push(FieldError::new(format!("{at}.observations[{i}]"), problem));
                    break;
                }
                previous = o.time;
            }
            if let (Some(failed), Some(last)) = (unit.failed_at, unit.observations.last())
                && !(failed.is_finite() && failed >= last.time)
            {
                out.push(FieldError::new(
                    format!("{at}.failed_at"),
                    "must be at or after the unit's last observation",
                ));
            }
        }
        out
    }

    /// SHA-256 of the history in a canonical, length-prefixed encoding (names, ids, failure
    /// times and every value's IEEE bits): the same data gives the same hash whatever file
    /// format it came from, so a registry can tell which data trained a model.
    pub fn data_hash(&self) -> String {
        let mut hash = Sha256::new();
        let text = |hash: &mut Sha256, s: &str| {
            hash.update((s.len() as u64).to_le_bytes());
            hash.update(s.as_bytes());
        };
        for names in [&self.schema.settings, &self.schema.sensors] {
            hash.update((names.len() as u64).to_le_bytes());
            for name in names {
                text(&mut hash, name);
            }
        }
        hash.update((self.units.len() as u64).to_le_bytes());
        for unit in &self.units {
            text(&mut hash, &unit.id);
            hash.update(unit.failed_at.unwrap_or(f64::NAN).to_bits().to_le_bytes());
            hash.update((unit.observations.len() as u64).to_le_bytes());
            for o in &unit.observations {
                for v in std::iter::once(&o.time)
                    .chain(&o.settings)
                    .chain(&o.sensors)
                {
                    hash.update(v.to_bits().to_le_bytes());
                }
            }
        }
        hex(&hash.finalize())
    }
}

/// What is wrong with one reading, if anything (also checked for every live update).
pub fn reading_problem(schema: &Schema, o: Reading<'_>, previous: f64) -> Option<String> {
    if o.settings.len() != schema.settings.len() {
        return Some(format!(
            "{} settings, the schema has {}",
            o.settings.len(),
            schema.settings.len()
        ));
    }
    if o.sensors.len() != schema.sensors.len() {
        return Some(format!(
            "{} sensor values, the schema has {}",
            o.sensors.len(),
            schema.sensors.len()
        ));
    }
    if !o.time.is_finite() || o.time <= previous {
        return Some("time must be a finite number after the previous observation's".into());
    }
    if let Some(k) = o.settings.iter().position(|v| !v.is_finite()) {
        return Some(format!(
            "setting {} is not a finite number",
            schema.settings[k]
        ));
    }
    if let Some(k) = o.sensors.iter().position(|v| !v.is_finite()) {
        return Some(format!(
            "sensor {} is not a finite number",
            schema.sensors[k]
        ));
    }
    None
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn unit(id: &str, times: &[f64], failed_at: Option<f64>) -> Unit {
        Unit {
            id: id.into(),
            observations: times
                .iter()
                .map(|&t| Observation {
                    time: t,
                    settings: vec![],
                    sensors: vec![t],
                })
                .collect(),
            failed_at,
        }
    }

    #[test]
    fn rul_is_piecewise_linear_and_censored_units_teach_only_what_they_know() {
        let failed = unit("a", &[1.0, 2.0, 3.0], Some(200.0));
        let rul = Target::Rul { cap: 125.0 };
        assert_eq!(rul.label(&failed, 1.0), Some(125.0));
        assert_eq!(rul.label(&failed, 100.0), Some(100.0));
        assert_eq!(rul.label(&failed, 200.0), Some(0.0));
        let running = unit("b", &[0.0, 100.0, 130.0], None);
        assert_eq!(rul.label(&running, 0.0), Some(125.0));
        assert_eq!(rul.label(&running, 100.0), None);
        let soon = Target::FailureWithin { horizon: 30.0 };
        assert_eq!(soon.label(&failed, 169.0), Some(0.0));
        assert_eq!(soon.label(&failed, 170.0), Some(1.0));
        assert_eq!(soon.label(&running, 100.0), Some(0.0));
        assert_eq!(soon.label(&running, 101.0), None);
    }

    #[test]
    fn problems_name_the_field_and_the_hash_sees_every_value() {
        let history = History {
            schema: Schema {
                settings: vec![],
                sensors: vec!["t".into()],
            },
            units: vec![
                unit("a", &[1.0, 2.0], Some(2.0)),
                unit("a", &[2.0, 1.0], Some(0.5)),
            ],
        };
        let fields: Vec<String> = history.problems().into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "units[1].id",
                "units[1].observations[1]",
                "units[1].failed_at"
            ]
        );
        let mut other = history.clone();
        other.units[0].observations[1].sensors[0] = 2.000_000_001;
        assert_ne!(history.data_hash(), other.data_hash());
        assert_eq!(history.data_hash(), history.clone().data_hash());
        assert_eq!(history.data_hash().len(), 64);
    }
}
