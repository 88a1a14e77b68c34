//! From a live machine to a model's inputs.
//!
//! A model names the inputs it was trained on (`pipeline.schema`: settings, then sensors). The
//! server trains per machine type on its own history, with the machines' sensor keys as those
//! names, so a machine of that type feeds the model by key. [`InputMap`] resolves the keys once
//! per machine (when its predictor is made, again when its sensors change) and then assembles
//! each update from the machine's latest values without a lookup.

use fb_core::FieldError;
use fb_core::plant::SensorSpec;

use crate::data::Schema;

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
