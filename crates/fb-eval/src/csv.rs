//! A labelled multivariate CSV history of your own, scored with the product's per-machine
//! detection (`factorybrain eval csv`).
//!
//! # Reading a file
//!
//! - The first row is the header. A UTF-8 byte-order mark, surrounding whitespace and
//!   surrounding quotes are stripped from the names (and from every cell). The separator is
//!   `,` unless told otherwise (`--sep ';'`).
//! - Every row must have as many fields as the header (error naming the line otherwise).
//! - The **time column** must exist. Its cells are RFC 3339 (`2024-05-01T10:00:00Z`), an ISO
//!   date-time without an offset, taken as UTC (`2024-05-01 10:00:00`, `2024-05-01T10:00`,
//!   `2024-05-01`), or a number: above 1e9 a Unix time (seconds; milliseconds above 1e11, as at
//!   ingest), otherwise seconds from an arbitrary start, such as a row index. Rows must be in
//!   time order within a file: a row earlier than the one before is an error naming its line
//!   (equal times are allowed).
//! - The **label column** must exist. Its cells are `1`/`true` (anomalous) or `0`/`false`
//!   (normal), in any case; anything else, an empty cell too, is an error naming the line.
//! - **Sensors** are all other columns, except the `--exclude` ones, whose every non-empty cell
//!   is a finite number. An empty cell is a missing reading: that sensor is skipped on that row.
//!   Other columns (text, codes, or empty in every row) are ignored and listed in the report
//!   (`ignored_columns`). A file needs at least one sensor. An `--exclude` name that is a
//!   column of no file is an error (a typo would otherwise let a label in as a sensor).
//!
//! # Scoring
//!
//! - Each file is one machine with its own detection state ([`MachineDetector`]), its sensors
//!   of kind `other` with no limits. Every file gets the same settings:
//!   [`DetectionConfig::default`] with `warmup` = the train rows.
//! - **Train rows**: `--train-rows N` for every file (10 to 100000), or by default 15 % of the
//!   file's rows, at least 10 and at most 750 (NAB's probationary period, with the detectors'
//!   minimum). These first rows only train: they are fed to the detectors but not counted.
//! - A row is fed as one reading per present sensor, all at the row's time, in column order, so
//!   the multivariate detector judges each complete row. (A row with a missing cell is judged
//!   on the next row's first reading, with the missing sensor's last value standing in.)
//!   Time-based checks between rows (no data) are not run: they judge silences, not rows.
//! - A row is **flagged** if any of its readings scored `anomaly` (some detector alarmed).
//! - **Point-wise**, over the scored rows of all files together: TP, FP, TN, FN;
//!   precision = TP/(TP+FP), recall = TP/(TP+FN), F1 = 2TP/(2TP+FP+FN),
//!   false-alarm rate = FP/(FP+TN), missed-alarm rate = FN/(TP+FN); each is `None` (JSON
//!   `null`, text "n/a") when its denominator is 0.
//! - **Event-wise**, within each file's scored rows: a labelled event is a maximal run of
//!   consecutive positive rows; it is detected if any of its rows is flagged. A false-alarm
//!   episode is a maximal run of consecutive flagged rows containing no positive row.
//! - Cost: detector time per reading on one core (reading and parsing the file excluded) and
//!   the largest [`MachineDetector::memory_bytes`] of the files' machines.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use fb_core::plant::{
    Location, Machine, MachineId, MachineStatus, SensorKey, SensorKind, SensorSpec, from_micros,
    parse_timestamp_micros,
};
use fb_detect::pipeline::{DetectionConfig, MachineDetector};

use crate::EvalError;

/// Fewest and most train rows the detectors accept (their warm-up range).
pub const TRAIN_ROWS_RANGE: std::ops::RangeInclusive<usize> = 10..=100_000;
/// Most train rows of the default (NAB's probationary cap).
pub const DEFAULT_TRAIN_ROWS_CAP: usize = 750;

/// How to read the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    pub time_column: String,
    pub label_column: String,
    /// Field separator (one byte).
    pub separator: u8,
    /// Columns that are not sensors (other labels, identifiers that look numeric).
    pub exclude: Vec<String>,
}

impl CsvOptions {
    pub fn new(time_column: impl Into<String>, label_column: impl Into<String>) -> Self {
        Self {
            time_column: time_column.into(),
            label_column: label_column.into(),
            separator: b',',
            exclude: Vec::new(),
        }
    }
}

/// One labelled file, read.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub path: PathBuf,
    /// Sensor column names, in column order.
    pub sensors: Vec<String>,
    /// Columns that are neither time, label, excluded nor numeric.
    pub ignored_columns: Vec<String>,
    /// `--exclude` names this file has.
    pub excluded_columns: Vec<String>,
    /// Unix microseconds (or microseconds from the start) per row.
    pub timestamps: Vec<i64>,
    pub labels: Vec<bool>,
    /// Row-major, `sensors.len()` values per row; NaN is a missing reading.
    pub values: Vec<f64>,
}

impl History {
    pub fn rows(&self) -> usize {
        self.timestamps.len()
    }

    /// The sensor values of row `r` (NaN = missing).
    pub fn row(&self, r: usize) -> &[f64] {
        let p = self.sensors.len();
        &self.values[r * p..(r + 1) * p]
    }
}

/// Reads every file and checks that each `--exclude` name is a column of some file.
pub fn read_histories(paths: &[PathBuf], opts: &CsvOptions) -> Result<Vec<History>, EvalError> {
    let histories = paths
        .iter()
        .map(|p| read_history(p, opts))
        .collect::<Result<Vec<_>, _>>()?;
    let unknown: Vec<&str> = opts
        .exclude
        .iter()
        .map(|name| clean(name))
        .filter(|name| {
            !histories
                .iter()
                .any(|h| h.excluded_columns.iter().any(|c| c == name))
        })
        .collect();
    if !unknown.is_empty() {
        return Err(EvalError::Options(format!(
            "--exclude names no column of any file: {}",
            unknown.join(", ")
        )));
    }
    Ok(histories)
}

/// Reads one labelled file.
pub fn read_history(path: &Path, opts: &CsvOptions) -> Result<History, EvalError> {
    let file = std::fs::File::open(path).map_err(|e| EvalError::io(path, e))?;
    read_history_from(std::io::BufReader::new(file), path, opts)
}

/// What a column turns out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Time,
    Label,
    Excluded,
    /// Numeric so far; its values are kept.
    Sensor,
    /// Had a cell that is not a number.
    Ignored,
}

/// Reads labelled CSV text; `path` names it in errors.
pub fn read_history_from(
    reader: impl Read,
    path: &Path,
    opts: &CsvOptions,
) -> Result<History, EvalError> {
    let fail = |message: String| EvalError::format(path, message);
    let mut reader = ::csv::ReaderBuilder::new()
        .delimiter(opts.separator)
        .flexible(true)
        .from_reader(reader);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| fail(csv_error(&e)))?
        .iter()
        .map(|h| clean(h).to_owned())
        .collect();
    let find = |name: &str, what: &str| {
        let name = clean(name);
        headers.iter().position(|h| h == name).ok_or_else(|| {
            fail(format!(
                "line 1: no {what} column {name:?}; the columns are: {}",
                headers.join(", ")
            ))
        })
    };
    let time_col = find(&opts.time_column, "time")?;
    let label_col = find(&opts.label_column, "label")?;
    let excluded: BTreeSet<&str> = opts.exclude.iter().map(|n| clean(n)).collect();
    let mut roles: Vec<Role> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            if i == time_col {
                Role::Time
            } else if i == label_col {
                Role::Label
            } else if excluded.contains(h.as_str()) {
                Role::Excluded
            } else {
                Role::Sensor
            }
        })
        .collect();
    let mut columns: Vec<Vec<f64>> = vec![Vec::new(); headers.len()];
    let mut present = vec![false; headers.len()];
    let (mut timestamps, mut labels) = (Vec::new(), Vec::new());
    let mut record = ::csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(fail(csv_error(&e))),
        }
        let line = record.position().map_or(0, ::csv::Position::line);
        if record.len() != headers.len() {
            return Err(fail(format!(
                "line {line}: {} fields, but the header has {}",
                record.len(),
                headers.len()
            )));
        }
        let cell = |i: usize| clean(record.get(i).unwrap_or(""));
        let text = cell(time_col);
        let ts = parse_time(text).ok_or_else(|| {
            fail(format!(
                "line {line}, column {:?}: {text:?} is not a time (RFC 3339, ISO date-time or a \
                 number of seconds)",
                headers[time_col]
            ))
        })?;
        if timestamps.last().is_some_and(|&prev| ts < prev) {
            return Err(fail(format!(
                "line {line}, column {:?}: {text:?} is earlier than the row before; rows must be \
                 in time order",
                headers[time_col]
            )));
        }
        let text = cell(label_col);
        let label = parse_label(text).ok_or_else(|| {
            fail(format!(
                "line {line}, column {:?}: label {text:?} is not 0, 1, true or false",
                headers[label_col]
            ))
        })?;
        timestamps.push(ts);
        labels.push(label);
        for (i, role) in roles.iter_mut().enumerate() {
            if *role != Role::Sensor {
                continue;
            }
            let text = cell(i);
            if text.is_empty() {
                columns[i].push(f64::NAN);
                continue;
            }
            match text.parse::<f64>() {
                Ok(v) if v.is_finite() => {
                    columns[i].push(v);
                    present[i] = true;
                }
                _ => {
                    *role = Role::Ignored;
                    columns[i] = Vec::new();
                }
            }
        }
    }
    if timestamps.is_empty() {
        return Err(fail("no data rows after the header".to_owned()));
    }
    let mut sensors = Vec::new();
    let mut ignored_columns = Vec::new();
    let mut excluded_columns = Vec::new();
    let mut kept = Vec::new();
    for (i, role) in roles.iter().enumerate() {
        match role {
            Role::Sensor if present[i] => {
                sensors.push(headers[i].clone());
                kept.push(i);
            }
            Role::Sensor | Role::Ignored => ignored_columns.push(headers[i].clone()),
            Role::Excluded => excluded_columns.push(headers[i].clone()),
            Role::Time | Role::Label => {}
        }
    }
    if sensors.is_empty() {
        return Err(fail(format!(
            "no sensor columns: no column other than time, label and excluded ones is numeric \
             (ignored: {})",
            ignored_columns.join(", ")
        )));
    }
    let columns = &columns;
    let values = (0..timestamps.len())
        .flat_map(|r| kept.iter().map(move |&i| columns[i][r]))
        .collect();
    Ok(History {
        path: path.to_owned(),
        sensors,
        ignored_columns,
        excluded_columns,
        timestamps,
        labels,
        values,
    })
}

/// A header name or cell without BOM, surrounding whitespace or surrounding quotes.
fn clean(text: &str) -> &str {
    let text = text.trim_start_matches('\u{feff}').trim();
    let unquoted = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .or_else(|| text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')));
    unquoted.map_or(text, str::trim)
}

fn csv_error(e: &::csv::Error) -> String {
    match e.position() {
        Some(pos) => format!("line {}: {e}", pos.line()),
        None => e.to_string(),
    }
}

/// Microseconds of a time cell: RFC 3339; an ISO date-time without offset (UTC); a Unix time
/// above 1e9 (seconds, or milliseconds above 1e11); another number as seconds from a start.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(n) = text.parse::<f64>() {
        if !n.is_finite() {
            return None;
        }
        if n > 1e9 {
            return parse_timestamp_micros(text).ok();
        }
        return Some((n * 1e6).round() as i64);
    }
    if let Ok(micros) = parse_timestamp_micros(text) {
        return Some(micros);
    }
    // ISO without an offset (UTC), with a space for the T, without seconds, or a date alone.
    let (date, time) = text
        .split_once(['T', 't', ' '])
        .map_or((text, "00:00:00"), |(d, t)| (d, t.trim()));
    let has_offset = time.ends_with(['Z', 'z']) || time.contains(['+', '-']);
    let (clock, offset) = match time.find(['Z', 'z', '+', '-']) {
        Some(i) if has_offset => time.split_at(i),
        _ => (time, ""),
    };
    let clock = if clock.len() == 5 {
        format!("{clock}:00")
    } else {
        clock.to_owned()
    };
    let offset = if offset.is_empty() { "Z" } else { offset };
    parse_timestamp_micros(&format!("{date}T{clock}{offset}")).ok()
}

/// A label cell: `1`/`true` or `0`/`false`, in any case.
pub fn parse_label(text: &str) -> Option<bool> {
    let text = text.trim();
    if text == "1" || text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text == "0" || text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// The `--sep` byte: one ASCII character, or `\t` / `tab` for a tab.
pub fn parse_separator(text: &str) -> Result<u8, String> {
    match text {
        "\\t" | "tab" | "TAB" => Ok(b'\t'),
        _ => match text.as_bytes() {
            [b] if b.is_ascii() && *b != b'"' && *b != b'\n' && *b != b'\r' => Ok(*b),
            _ => Err(format!(
                "separator {text:?} must be one ASCII character (or \\t for a tab)"
            )),
        },
    }
}

/// Train rows of a file of `rows` rows by default: 15 %, at least 10, at most 750.
pub fn default_train_rows(rows: usize) -> usize {
    (rows.saturating_mul(15) / 100).clamp(*TRAIN_ROWS_RANGE.start(), DEFAULT_TRAIN_ROWS_CAP)
}

/// Confusion counts and events of some scored rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub tp: usize,
    pub fp: usize,
    pub tn: usize,
    #[serde(rename = "fn")]
    pub fn_: usize,
    /// Maximal runs of consecutive positive rows.
    pub events: usize,
    /// Events with at least one flagged row.
    pub detected_events: usize,
    /// Maximal runs of consecutive flagged rows containing no positive row.
    pub false_alarm_episodes: usize,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Tally) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.tn += o.tn;
        self.fn_ += o.fn_;
        self.events += o.events;
        self.detected_events += o.detected_events;
        self.false_alarm_episodes += o.false_alarm_episodes;
    }
}

/// Counts rows and events of one file's scored rows (`labels[i]`: positive, `flagged[i]`:
/// predicted anomalous).
pub fn tally(labels: &[bool], flagged: &[bool]) -> Tally {
    let mut t = Tally::default();
    for (&l, &f) in labels.iter().zip(flagged) {
        match (l, f) {
            (true, true) => t.tp += 1,
            (false, true) => t.fp += 1,
            (false, false) => t.tn += 1,
            (true, false) => t.fn_ += 1,
        }
    }
    let n = labels.len().min(flagged.len());
    for (start, end) in runs(&labels[..n]) {
        t.events += 1;
        if flagged[start..end].iter().any(|f| *f) {
            t.detected_events += 1;
        }
    }
    for (start, end) in runs(&flagged[..n]) {
        if !labels[start..end].iter().any(|l| *l) {
            t.false_alarm_episodes += 1;
        }
    }
    t
}

/// Maximal runs of `true` as half-open ranges.
fn runs(bits: &[bool]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &b) in bits.iter().enumerate() {
        match (b, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, bits.len()));
    }
    out
}

fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// The figures of a tally: counts, point-wise rates (`None` when undefined) and events.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Figures {
    #[serde(flatten)]
    pub counts: Tally,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    pub false_alarm_rate: Option<f64>,
    pub missed_alarm_rate: Option<f64>,
}

impl From<Tally> for Figures {
    fn from(t: Tally) -> Self {
        Self {
            counts: t,
            precision: ratio(t.tp, t.tp + t.fp),
            recall: ratio(t.tp, t.tp + t.fn_),
            f1: ratio(2 * t.tp, 2 * t.tp + t.fp + t.fn_),
            false_alarm_rate: ratio(t.fp, t.fp + t.tn),
            missed_alarm_rate: ratio(t.fn_, t.tp + t.fn_),
        }
    }
}

/// One file's part of the report.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: String,
    pub rows: usize,
    pub train_rows: usize,
    pub scored_rows: usize,
    /// Labelled positive rows among the scored ones.
    pub positive_rows: usize,
    pub flagged_rows: usize,
    pub sensors: Vec<String>,
    pub ignored_columns: Vec<String>,
    #[serde(flatten)]
    pub figures: Figures,
}

/// What `factorybrain eval csv` reports.
#[derive(Debug, Clone, Serialize)]
pub struct CsvReport {
    pub files: usize,
    pub rows: usize,
    pub scored_rows: usize,
    pub positive_rows: usize,
    pub flagged_rows: usize,
    /// Point-wise and event-wise figures over the scored rows of all files.
    #[serde(flatten)]
    pub figures: Figures,
    /// Non-numeric columns of any file, in first-seen order.
    pub ignored_columns: Vec<String>,
    /// Detector time per reading on one core.
    pub ns_per_reading: f64,
    /// Memory of one machine's detection (the largest of the files').
    pub bytes_per_machine: usize,
    pub per_file: Vec<FileReport>,
}

/// The machine a file stands for: one sensor of kind `other` per sensor column, no limits.
pub fn machine_of(history: &History) -> Machine {
    let id = history
        .path
        .file_stem()
        .map_or_else(|| "csv".to_owned(), |s| s.to_string_lossy().into_owned());
    Machine {
        id: MachineId(id.clone()),
        name: id,
        machine_type: "csv".into(),
        machine_class: None,
        location: Location {
            site: "eval".into(),
            area: None,
            line: None,
            cell: None,
        },
        status: MachineStatus::Running,
        active: true,
        sensors: history
            .sensors
            .iter()
            .map(|name| SensorSpec {
                key: SensorKey(name.clone()),
                kind: SensorKind::Other,
                unit: "1".into(),
                physical_min: f64::MIN,
                physical_max: f64::MAX,
                warning_low: None,
                warning_high: None,
                critical_low: None,
                critical_high: None,
            })
            .collect(),
        last_maintenance: None,
        next_maintenance: None,
        health_score: None,
        failure_probability: None,
        rul_hours: None,
        created_at: from_micros(0),
        updated_at: from_micros(0),
    }
}

/// One file through a fresh machine detection.
#[derive(Debug, Clone, PartialEq)]
pub struct Flagged {
    /// Per row: some reading of it scored `anomaly`.
    pub rows: Vec<bool>,
    /// Readings fed.
    pub readings: usize,
    /// Time spent in the detector.
    pub seconds: f64,
    /// The detection's memory at the end.
    pub memory_bytes: usize,
}

/// Feeds `history` to a fresh machine detection with `train_rows` of warm-up.
pub fn flag_rows(history: &History, train_rows: usize) -> Result<Flagged, EvalError> {
    if !TRAIN_ROWS_RANGE.contains(&train_rows) {
        return Err(EvalError::Options(format!(
            "train rows must be between {} and {}, got {train_rows}",
            TRAIN_ROWS_RANGE.start(),
            TRAIN_ROWS_RANGE.end()
        )));
    }
    let cfg = DetectionConfig {
        warmup: train_rows,
        ..DetectionConfig::default()
    };
    let mut detector = MachineDetector::new(&machine_of(history), &cfg)
        .map_err(|e| EvalError::Detector(e.to_string()))?;
    let mut signals = Vec::new();
    let mut flagged = Vec::with_capacity(history.rows());
    let mut readings = 0usize;
    let start = Instant::now();
    for (r, &ts) in history.timestamps.iter().enumerate() {
        let mut any = false;
        for (i, &value) in history.row(r).iter().enumerate() {
            if value.is_nan() {
                continue;
            }
            any |= detector.observe(i, ts, value, &mut signals).anomaly;
            readings += 1;
        }
        signals.clear();
        flagged.push(any);
    }
    Ok(Flagged {
        seconds: start.elapsed().as_secs_f64(),
        rows: flagged,
        readings,
        memory_bytes: detector.memory_bytes(),
    })
}

/// Scores every file with its own machine detection and pools the figures.
/// `train_rows`: the same for every file, or `None` for [`default_train_rows`].
pub fn evaluate(histories: &[History], train_rows: Option<usize>) -> Result<CsvReport, EvalError> {
    let mut per_file = Vec::with_capacity(histories.len());
    let mut total = Tally::default();
    let (mut readings, mut seconds, mut bytes) = (0usize, 0.0f64, 0usize);
    let mut ignored: Vec<String> = Vec::new();
    for h in histories {
        let rows = h.rows();
        let train = train_rows.unwrap_or_else(|| default_train_rows(rows));
        let run = flag_rows(h, train)?;
        readings += run.readings;
        seconds += run.seconds;
        bytes = bytes.max(run.memory_bytes);
        let from = train.min(rows);
        let t = tally(&h.labels[from..], &run.rows[from..]);
        total += t;
        for c in &h.ignored_columns {
            if !ignored.contains(c) {
                ignored.push(c.clone());
            }
        }
        per_file.push(FileReport {
            path: h.path.display().to_string(),
            rows,
            train_rows: train,
            scored_rows: rows - from,
            positive_rows: t.tp + t.fn_,
            flagged_rows: t.tp + t.fp,
            sensors: h.sensors.clone(),
            ignored_columns: h.ignored_columns.clone(),
            figures: t.into(),
        });
    }
    Ok(CsvReport {
        files: per_file.len(),
        rows: per_file.iter().map(|f| f.rows).sum(),
        scored_rows: per_file.iter().map(|f| f.scored_rows).sum(),
        positive_rows: total.tp + total.fn_,
        flagged_rows: total.tp + total.fp,
        figures: total.into(),
        ignored_columns: ignored,
        ns_per_reading: if readings == 0 {
            0.0
        } else {
            seconds * 1e9 / readings as f64
        },
        bytes_per_machine: bytes,
        per_file,
    })
}

#[cfg(test)]
mod tests;
