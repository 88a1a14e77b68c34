//! The Numenta Anomaly Benchmark on disk (data/, labels/combined_windows.json, results/) and a
//! run of the product's detector over it, scored by `fb_detect::nab`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use fb_detect::detector::{NoveltyConfig, NoveltyDetector, StreamingDetector};
use fb_detect::nab::{self, Profile, ScoredFile, Scores, Window};

use crate::EvalError;

/// One data file: its corpus key ("category/file.csv"), timestamps (Unix seconds), values and
/// labelled windows.
#[derive(Debug, Clone)]
pub struct Series {
    pub key: String,
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
    pub windows: Vec<Window>,
}

/// Every data file named by the label file, in its key order.
pub fn read_corpus(nab_dir: &Path) -> Result<Vec<Series>, EvalError> {
    read_windows(nab_dir)?
        .into_iter()
        .map(|(key, windows)| {
            let (timestamps, values) = read_column(&nab_dir.join("data").join(&key), "value")?;
            Ok(Series {
                key,
                timestamps,
                values,
                windows,
            })
        })
        .collect()
}

/// The label windows per data file, keyed by "category/file.csv".
pub fn read_windows(nab_dir: &Path) -> Result<BTreeMap<String, Vec<Window>>, EvalError> {
    let path = nab_dir.join("labels/combined_windows.json");
    let text = std::fs::read_to_string(&path).map_err(|e| EvalError::io(&path, e))?;
    let raw: BTreeMap<String, Vec<[String; 2]>> =
        serde_json::from_str(&text).map_err(|e| EvalError::format(&path, e))?;
    raw.into_iter()
        .map(|(file, windows)| {
            let windows = windows
                .iter()
                .map(|[start, end]| {
                    Ok(Window {
                        start: parse_time(start).ok_or_else(|| bad_time(&path, start))?,
                        end: parse_time(end).ok_or_else(|| bad_time(&path, end))?,
                    })
                })
                .collect::<Result<_, EvalError>>()?;
            Ok((file, windows))
        })
        .collect()
}

/// A NAB CSV's timestamps and one numeric column (`value`, or `anomaly_score` of a result file).
pub fn read_column(path: &Path, column: &str) -> Result<(Vec<i64>, Vec<f64>), EvalError> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| EvalError::format(path, e))?;
    let headers = reader
        .headers()
        .map_err(|e| EvalError::format(path, e))?
        .clone();
    let find = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| EvalError::format(path, format!("no column {name:?}")))
    };
    let (ts_col, value_col) = (find("timestamp")?, find(column)?);
    let mut timestamps = Vec::new();
    let mut values = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(|e| EvalError::format(path, e))?;
        let cell = |i: usize| record.get(i).unwrap_or("").trim();
        let ts = parse_time(cell(ts_col)).ok_or_else(|| bad_time(path, cell(ts_col)))?;
        let value = cell(value_col).parse::<f64>().map_err(|_| {
            EvalError::format(path, format!("row {}: {column} is not a number", row + 2))
        })?;
        timestamps.push(ts);
        values.push(value);
    }
    Ok((timestamps, values))
}

/// Path of a published detector's per-row output for a data file.
pub fn result_path(nab_dir: &Path, detector: &str, key: &str) -> PathBuf {
    let (category, file) = key.split_once('/').unwrap_or(("", key));
    nab_dir
        .join("results")
        .join(detector)
        .join(category)
        .join(format!("{detector}_{file}"))
}

/// A published detector's outputs as scored files, to check the scorer against NAB's board.
pub fn published_outputs(nab_dir: &Path, detector: &str) -> Result<Vec<ScoredFile>, EvalError> {
    read_windows(nab_dir)?
        .into_iter()
        .map(|(key, windows)| {
            let path = result_path(nab_dir, detector, &key);
            let (timestamps, scores) = read_column(&path, "anomaly_score")?;
            Ok(ScoredFile {
                name: key,
                timestamps,
                scores,
                windows,
            })
        })
        .collect()
}

/// How the detector is set up for a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warmup {
    /// NAB's probationary period of each file (15 %, at most 750 rows), which NAB grants every
    /// detector; all other settings are the same for every file.
    Probationary,
    /// The same number of points for every file.
    Fixed(usize),
}

/// What `factorybrain eval nab` reports.
#[derive(Debug, Clone, Serialize)]
pub struct NabReport {
    pub files: usize,
    pub points: usize,
    /// Normalised score per profile (null detector 0, perfect 100).
    pub standard: f64,
    pub reward_low_fp_rate: f64,
    pub reward_low_fn_rate: f64,
    /// Corpus-wide threshold NAB chose per profile.
    pub thresholds: BTreeMap<String, f64>,
    /// Detector time per point on one core.
    pub ns_per_point: f64,
    /// Memory of one detector instance (one sensor).
    pub bytes_per_sensor: usize,
}

/// Runs the product's detector over every file and scores the corpus.
pub fn evaluate(corpus: &[Series], warmup: Warmup) -> Result<(NabReport, Scores), EvalError> {
    let mut files = Vec::with_capacity(corpus.len());
    let (mut points, mut seconds, mut bytes) = (0usize, 0.0f64, 0usize);
    for series in corpus {
        let warmup = match warmup {
            Warmup::Probationary => nab::probationary_length(series.values.len()),
            Warmup::Fixed(n) => n,
        };
        let mut detector = NoveltyDetector::new(NoveltyConfig::new(warmup))
            .map_err(|e| EvalError::Detector(e.to_string()))?;
        let start = Instant::now();
        let scores: Vec<f64> = series
            .timestamps
            .iter()
            .zip(&series.values)
            .map(|(&t, &v)| detector.update(t, v))
            .collect();
        seconds += start.elapsed().as_secs_f64();
        points += scores.len();
        bytes = bytes.max(detector.memory_bytes());
        files.push(ScoredFile {
            name: series.key.clone(),
            timestamps: series.timestamps.clone(),
            scores,
            windows: series.windows.clone(),
        });
    }
    let scores = nab::score_corpus(&files, &Profile::nab_v1_1())
        .map_err(|e| EvalError::Detector(e.to_string()))?;
    let normalized = |name: &str| scores.normalized(name).unwrap_or(f64::NAN);
    let report = NabReport {
        files: files.len(),
        points,
        standard: normalized("standard"),
        reward_low_fp_rate: normalized("reward_low_FP_rate"),
        reward_low_fn_rate: normalized("reward_low_FN_rate"),
        thresholds: scores
            .profiles
            .iter()
            .map(|p| (p.profile.name.clone(), p.threshold))
            .collect(),
        ns_per_point: if points == 0 {
            0.0
        } else {
            seconds * 1e9 / points as f64
        },
        bytes_per_sensor: bytes,
    };
    Ok((report, scores))
}

/// Seconds since 1970 of NAB's "YYYY-MM-DD HH:MM:SS[.ffffff]" (UTC; the fraction is dropped).
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, time) = text.split_once([' ', 'T']).unwrap_or((text, "00:00:00"));
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.split('.').next().unwrap_or("");
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
    let hour = t.next()??;
    let minute = t.next().unwrap_or(Some(0))?;
    let second = t.next().unwrap_or(Some(0))?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some(
        fb_core::clock::days_from_civil(year, month, day) * 86_400
            + hour * 3600
            + minute * 60
            + second,
    )
}

fn bad_time(path: &Path, text: &str) -> EvalError {
    EvalError::format(path, format!("{text:?} is not a NAB timestamp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_as_utc_seconds() {
        assert_eq!(parse_time("1970-01-01 00:00:00"), Some(0));
        assert_eq!(
            parse_time("2014-02-19 10:50:00.000000"),
            Some(1_392_807_000)
        );
        assert_eq!(parse_time("2000-03-01 00:00:01"), Some(951_868_801));
        assert_eq!(parse_time("2000-13-01 00:00:01"), None);
        assert_eq!(parse_time("yesterday"), None);
    }
}
