//! A plant's own machine histories for training (`factorybrain model train --format csv`): one
//! CSV file, any number of units (a unit is one machine's life or maintenance cycle).
//!
//! # The format
//!
//! - The first row is the header; the separator is `,` unless told otherwise. A UTF-8
//!   byte-order mark and whitespace around names and cells are stripped; surrounding quotes
//!   are the CSV's own.
//! - **`unit`** (the column's name is an option): the unit's id, any non-empty text. Rows of
//!   several units may be interleaved; each unit keeps the order of its first row.
//! - **`time`**: a number, in the history's time unit (hours, cycles…: the trainer is told how
//!   many seconds one is), strictly increasing within a unit (an error naming the line
//!   otherwise).
//! - **`failed`** (optional): `1`/`true` on the row where the unit failed, which must be its
//!   last row; `0`/`false`/empty otherwise. A unit without such a row was still running when
//!   the history ends (censored: it teaches what it can). Without the column every unit is
//!   censored, which a RUL or failure model cannot learn from.
//! - **Settings**: the columns named as settings (operating conditions such as load or speed:
//!   they choose the regime a reading is normalised in). Every one must exist.
//! - **Sensors**: every other column, except the excluded ones. Cells are finite numbers; an
//!   empty cell repeats the unit's previous value of that column (a slower sensor), and is an
//!   error on a unit's first row. A cell that is not a number is an error naming the line and
//!   the column (exclude text columns).
//!
//! The column names become the model's input names, so a model trained here serves live the
//! machines whose sensor keys are those names.

use std::collections::HashMap;
use std::path::Path;

use fb_predict::data::{History, Observation, Schema, Unit};

use crate::EvalError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryCsv {
    pub unit_column: String,
    pub time_column: String,
    pub failed_column: String,
    pub settings: Vec<String>,
    pub exclude: Vec<String>,
    pub separator: u8,
}

impl Default for HistoryCsv {
    fn default() -> Self {
        Self {
            unit_column: "unit".into(),
            time_column: "time".into(),
            failed_column: "failed".into(),
            settings: Vec::new(),
            exclude: Vec::new(),
            separator: b',',
        }
    }
}

/// Reads a history file.
pub fn read(path: &Path, options: &HistoryCsv) -> Result<History, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    parse(&text, options).map_err(|message| EvalError::format(path, message))
}

/// Parses a history from CSV text; the error names the line and column.
pub fn parse(text: &str, options: &HistoryCsv) -> Result<History, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(options.separator)
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| format!("line 1: {e}"))?
        .iter()
        .map(str::to_owned)
        .collect();
    let column = |name: &str, what: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("no {what} column {name:?} in the header"))
    };
    let unit_at = column(&options.unit_column, "unit")?;
    let time_at = column(&options.time_column, "time")?;
    let failed_at = header.iter().position(|h| *h == options.failed_column);
    for name in &options.exclude {
        column(name, "excluded")?;
    }
    let settings_at = options
        .settings
        .iter()
        .map(|name| column(name, "settings"))
        .collect::<Result<Vec<_>, _>>()?;
    let special = [Some(unit_at), Some(time_at), failed_at];
    let sensors_at: Vec<usize> = (0..header.len())
        .filter(|i| {
            !special.contains(&Some(*i))
                && !settings_at.contains(i)
                && !options.exclude.contains(&header[*i])
        })
        .collect();
    if sensors_at.is_empty() {
        return Err(
            "no sensor columns: every column is the unit, time, failed, a setting or excluded"
                .into(),
        );
    }
    let schema = Schema {
        settings: options.settings.clone(),
        sensors: sensors_at.iter().map(|&i| header[i].clone()).collect(),
    };

    struct Building {
        unit: Unit,
        /// The line of the row that marked the failure, if one did.
        failed_line: Option<usize>,
    }
    let mut units: Vec<Building> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (n, record) in reader.records().enumerate() {
        let line = n + 2;
        let record = record.map_err(|e| format!("line {line}: {e}"))?;
        if record.len() != header.len() {
            return Err(format!(
                "line {line}: {} fields, the header has {}",
                record.len(),
                header.len()
            ));
        }
        let id = &record[unit_at];
        if id.is_empty() {
            return Err(format!(
                "line {line}, column {}: the unit is empty",
                options.unit_column
            ));
        }
        let u = *index.entry(id.to_owned()).or_insert_with(|| {
            units.push(Building {
                unit: Unit {
                    id: id.to_owned(),
                    observations: Vec::new(),
                    failed_at: None,
                },
                failed_line: None,
            });
            units.len() - 1
        });
        let building = &mut units[u];
        if let Some(failed) = building.failed_line {
            return Err(format!(
                "line {line}: unit {id:?} has a row after its failure (line {failed})"
            ));
        }
        let number = |at: usize| -> Result<Option<f64>, String> {
            let cell = &record[at];
            if cell.is_empty() {
                return Ok(None);
            }
            match cell.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(Some(v)),
                _ => Err(format!(
                    "line {line}, column {}: {cell:?} is not a finite number",
                    header[at]
                )),
            }
        };
        let time = number(time_at)?.ok_or_else(|| {
            format!(
                "line {line}, column {}: the time is empty",
                options.time_column
            )
        })?;
        let previous = building.unit.observations.last();
        if previous.is_some_and(|p| time <= p.time) {
            return Err(format!(
                "line {line}, column {}: {time} is not after unit {id:?}'s previous time",
                options.time_column
            ));
        }
        let values = |columns: &[usize], earlier: Option<&Vec<f64>>| {
            columns
                .iter()
                .enumerate()
                .map(|(k, &at)| match number(at)? {
                    Some(v) => Ok(v),
                    None => earlier.map(|e| e[k]).ok_or_else(|| {
                        format!(
                            "line {line}, column {}: empty on unit {id:?}'s first row",
                            header[at]
                        )
                    }),
                })
                .collect::<Result<Vec<f64>, String>>()
        };
        let settings = values(&settings_at, previous.map(|p| &p.settings))?;
        let sensors = values(&sensors_at, previous.map(|p| &p.sensors))?;
        building.unit.observations.push(Observation {
            time,
            settings,
            sensors,
        });
        if let Some(at) = failed_at {
            let failed = match record[at].to_ascii_lowercase().as_str() {
                "1" | "true" => true,
                "0" | "false" | "" => false,
                other => {
                    return Err(format!(
                        "line {line}, column {}: {other:?} is not 1, true, 0, false or empty",
                        options.failed_column
                    ));
                }
            };
            if failed {
                building.unit.failed_at = Some(time);
                building.failed_line = Some(line);
            }
        }
    }
    if units.is_empty() {
        return Err("no rows after the header".into());
    }
    Ok(History {
        schema,
        units: units.into_iter().map(|b| b.unit).collect(),
    })
}

/// The median step between consecutive observations of a unit, in the history's time unit:
/// the interval a live machine's readings are averaged over to feed a model trained on it.
pub fn median_step(history: &History) -> Option<f64> {
    let mut steps: Vec<f64> = history
        .units
        .iter()
        .flat_map(|u| u.observations.windows(2).map(|w| w[1].time - w[0].time))
        .collect();
    if steps.is_empty() {
        return None;
    }
    steps.sort_by(f64::total_cmp);
    Some(steps[steps.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> HistoryCsv {
        HistoryCsv {
            settings: vec!["load".into()],
            exclude: vec!["operator".into()],
            ..HistoryCsv::default()
        }
    }

    #[test]
    fn reads_units_settings_sensors_and_failures() {
        let text = "\u{feff}unit,time,load,vibration,temperature,failed,operator\n\
                    a,1,0.5,2.0,50,0,ann\n\
                    b,1,0.9,1.0,40,,bob\n\
                    a,2,0.5,2.5,,0,ann\n\
                    a,3, 0.6 ,3.0,55,1,ann\n\
                    b,2,0.9,1.1,41,0,bob\n";
        let history = parse(text, &options()).unwrap();
        assert_eq!(history.schema.settings, ["load"]);
        assert_eq!(history.schema.sensors, ["vibration", "temperature"]);
        let ids: Vec<&str> = history.units.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        let a = &history.units[0];
        assert_eq!(a.failed_at, Some(3.0));
        assert_eq!(a.observations[1].sensors, [2.5, 50.0], "empty repeats");
        assert_eq!(a.observations[2].settings, [0.6]);
        assert_eq!(history.units[1].failed_at, None);
        assert!(history.problems().is_empty());
        assert_eq!(median_step(&history), Some(1.0));
    }

    #[test]
    fn every_problem_names_its_line_and_column() {
        let cases = [
            (
                "unit,time,v\na,1,x\n",
                "line 2, column v: \"x\" is not a finite number",
            ),
            (
                "unit,time,v\na,2,1\na,2,1\n",
                "line 3, column time: 2 is not after",
            ),
            (
                "unit,time,v\na,1,\n",
                "line 2, column v: empty on unit \"a\"'s first row",
            ),
            (
                "unit,time,v,failed\na,1,1,1\na,2,1,0\n",
                "line 3: unit \"a\" has a row after its failure (line 2)",
            ),
            ("unit,time,v,failed\na,1,1,maybe\n", "line 2, column failed"),
            ("unit,v\na,1\n", "no time column \"time\""),
            ("unit,time\na,1\n", "no sensor columns"),
            (
                "unit,time,v\n,1,1\n",
                "line 2, column unit: the unit is empty",
            ),
            ("unit,time,v\n", "no rows after the header"),
            ("unit,time,v\na,1\n", "line 2"),
        ];
        for (text, expected) in cases {
            let error = parse(text, &HistoryCsv::default()).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        let error = parse("unit,time,v\na,1,1\n", &options()).unwrap_err();
        assert!(error.contains("no excluded column \"operator\""), "{error}");
    }
}
