//! Thresholding, NAB's corpus-wide threshold optimisation and normalisation.

use serde::{Deserialize, Serialize};

use super::error::NabError;
use super::profile::{CostMatrix, Profile};
use super::sweep::{PreparedFile, Row, Zone};

/// NAB starts its sweep above any possible score: the "detect nothing" threshold.
pub const NO_DETECTION_THRESHOLD: f64 = 1.1;

/// The corpus score if every row with a score at or above `threshold` is a detection.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThresholdScore {
    pub threshold: f64,
    pub score: f64,
}

/// One file's outcome at the chosen threshold. Counts are of rows, as in NAB's tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileScore {
    pub name: String,
    pub score: f64,
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
    pub tn: usize,
}

/// A detector's result under one profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileScore {
    pub profile: Profile,
    /// The corpus-wide threshold that maximises `raw`.
    pub threshold: f64,
    /// Sum of the per-file scores at `threshold`.
    pub raw: f64,
    /// What a detector that never fires scores.
    pub null: f64,
    /// What a detector that fires exactly at the start of every window scores.
    pub perfect: f64,
    /// `100 * (raw - null) / (perfect - null)`: null = 0, perfect = 100.
    pub normalized: f64,
    pub files: Vec<FileScore>,
}

/// Results for every profile asked for, in the order asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub profiles: Vec<ProfileScore>,
}

impl Scores {
    pub fn get(&self, profile: &str) -> Option<&ProfileScore> {
        self.profiles.iter().find(|p| p.profile.name == profile)
    }

    /// Normalised score of a profile, if it was scored.
    pub fn normalized(&self, profile: &str) -> Option<f64> {
        self.get(profile).map(|p| p.normalized)
    }
}

/// Value of a detection on `row` under `costs`; windows are scaled so that a detection on
/// a window's first row is worth exactly `costs.tp`.
fn weighted(row: &Row, costs: &CostMatrix) -> f64 {
    match row.zone {
        Zone::Window(_) => row.position_weight * costs.tp,
        Zone::Outside | Zone::Probation => row.position_weight * costs.fp,
    }
}

/// The corpus score at every distinct threshold, from "detect nothing" down to the lowest
/// score, in that order. Only the best (earliest) detection in a window counts, and a
/// detected window's positive weight replaces its false-negative cost.
pub fn threshold_curve(files: &[PreparedFile], costs: &CostMatrix) -> Vec<ThresholdScore> {
    let mut offsets = Vec::with_capacity(files.len());
    let mut windows = 0;
    for file in files {
        offsets.push(windows);
        windows += file.scorable_windows;
    }
    let mut best_in_window = vec![-costs.fn_; windows];

    let mut rows: Vec<(f64, Option<usize>, f64)> = files
        .iter()
        .zip(&offsets)
        .flat_map(|(file, &offset)| {
            file.rows.iter().filter_map(move |row| match row.zone {
                Zone::Probation => None,
                Zone::Outside => Some((row.score, None, weighted(row, costs))),
                Zone::Window(id) => Some((row.score, Some(offset + id), weighted(row, costs))),
            })
        })
        .collect();
    // Stable, so equal scores keep corpus order and the result is deterministic.
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));

    let mut total = -costs.fn_ * windows as f64;
    let mut curve = Vec::new();
    let mut threshold = NO_DETECTION_THRESHOLD;
    for (score, window, value) in rows {
        if score != threshold {
            curve.push(ThresholdScore {
                threshold,
                score: total,
            });
            threshold = score;
        }
        match window {
            None => total += value,
            Some(w) => {
                if value > best_in_window[w] {
                    total += value - best_in_window[w];
                    best_in_window[w] = value;
                }
            }
        }
    }
    curve.push(ThresholdScore {
        threshold,
        score: total,
    });
    curve
}

/// NAB's optimiser: the threshold with the highest corpus score; on ties the higher
/// threshold, as NAB's stable sort of a descending sweep gives.
pub fn optimize_threshold(files: &[PreparedFile], costs: &CostMatrix) -> ThresholdScore {
    threshold_curve(files, costs).into_iter().fold(
        ThresholdScore {
            threshold: NO_DETECTION_THRESHOLD,
            score: f64::NEG_INFINITY,
        },
        |best, candidate| {
            if candidate.score > best.score {
                candidate
            } else {
                best
            }
        },
    )
}

/// Scores one file with every row at or above `threshold` taken as a detection.
pub fn score_file(file: &PreparedFile, costs: &CostMatrix, threshold: f64) -> FileScore {
    let mut best_in_window = vec![-costs.fn_; file.scorable_windows];
    let (mut tp, mut fp, mut fn_, mut tn) = (0, 0, 0, 0);
    let mut false_positives = 0.0;
    for row in &file.rows {
        let detected = row.score >= threshold;
        match (row.zone, detected) {
            (Zone::Probation, _) => {}
            (Zone::Outside, true) => {
                fp += 1;
                false_positives += weighted(row, costs);
            }
            (Zone::Outside, false) => tn += 1,
            (Zone::Window(id), true) => {
                tp += 1;
                best_in_window[id] = best_in_window[id].max(weighted(row, costs));
            }
            (Zone::Window(_), false) => fn_ += 1,
        }
    }
    FileScore {
        name: file.name.clone(),
        score: false_positives + best_in_window.iter().sum::<f64>(),
        tp,
        fp,
        fn_,
        tn,
    }
}

/// Checks and labels every file once.
pub fn prepare(files: &[super::ScoredFile]) -> Result<Vec<PreparedFile>, NabError> {
    files.iter().map(PreparedFile::new).collect()
}

/// Scores every file at a given threshold and normalises the total. NAB's scoreboard
/// uses the optimised threshold ([`score_prepared`]); a fixed one is useful to compare
/// with published tables or to score a detector deployed with a chosen threshold.
pub fn score_at_threshold(
    files: &[PreparedFile],
    profile: &Profile,
    threshold: f64,
) -> Result<ProfileScore, NabError> {
    let costs = &profile.costs;
    let file_scores: Vec<FileScore> = files
        .iter()
        .map(|f| score_file(f, costs, threshold))
        .collect();
    let raw = file_scores.iter().map(|f| f.score).sum::<f64>();
    // The null detector misses every scorable window and raises no false alarm.
    let scorable: usize = files.iter().map(|f| f.scorable_windows).sum();
    let null = -costs.fn_ * scorable as f64;
    // NAB credits the perfect detector with every labelled window.
    let all_windows: usize = files.iter().map(|f| f.windows).sum();
    let perfect = costs.tp * all_windows as f64;
    if perfect == null {
        return Err(NabError::DegenerateProfile {
            profile: profile.name.clone(),
        });
    }
    Ok(ProfileScore {
        profile: profile.clone(),
        threshold,
        raw,
        null,
        perfect,
        normalized: 100.0 * (raw - null) / (perfect - null),
        files: file_scores,
    })
}

/// The whole NAB procedure on prepared files: optimise one threshold per profile over the
/// corpus, score each file at it, and normalise against the null and perfect detectors.
pub fn score_prepared(files: &[PreparedFile], profiles: &[Profile]) -> Result<Scores, NabError> {
    if profiles.is_empty() {
        return Err(NabError::NoProfiles);
    }
    profiles
        .iter()
        .map(|profile| {
            let best = optimize_threshold(files, &profile.costs);
            score_at_threshold(files, profile, best.threshold)
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|profiles| Scores { profiles })
}

/// Scores a detector's output on a corpus: the entry point the product calls.
pub fn score_corpus(files: &[super::ScoredFile], profiles: &[Profile]) -> Result<Scores, NabError> {
    score_prepared(&prepare(files)?, profiles)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::nab::{ScoredFile, Window};

    /// 100 rows at one-second steps with one window over rows 40..=49.
    fn file(scores: impl Fn(usize) -> f64) -> ScoredFile {
        ScoredFile {
            name: "toy".into(),
            timestamps: (0..100).collect(),
            scores: (0..100).map(scores).collect(),
            windows: vec![Window { start: 40, end: 49 }],
        }
    }

    fn standard(scores: impl Fn(usize) -> f64) -> ProfileScore {
        let prepared = prepare(&[file(scores)]).unwrap();
        score_prepared(&prepared, &[Profile::standard()])
            .unwrap()
            .profiles
            .remove(0)
    }

    #[test]
    fn silent_detector_scores_zero() {
        let result = standard(|_| 0.0);
        assert_eq!(result.normalized, 0.0);
        assert_eq!(result.raw, -1.0);
    }

    #[test]
    fn detection_at_window_start_scores_one_hundred() {
        let result = standard(|i| if i == 40 { 1.0 } else { 0.0 });
        assert!((result.normalized - 100.0).abs() < 1e-9);
    }

    #[test]
    fn only_the_earliest_detection_in_a_window_counts() {
        let early = standard(|i| if i == 40 { 1.0 } else { 0.0 });
        let early_and_late = standard(|i| if i == 40 || i == 48 { 1.0 } else { 0.0 });
        assert_eq!(early.raw, early_and_late.raw);
        let late = standard(|i| if i == 48 { 1.0 } else { 0.0 });
        assert!(late.raw < early.raw && late.raw > 0.0);
    }

    #[test]
    fn false_positives_cost_less_right_after_a_window() {
        let prepared = prepare(&[file(|i| if i == 40 || i == 50 { 1.0 } else { 0.0 })]).unwrap();
        let near = score_file(&prepared[0], &Profile::standard().costs, 1.0);
        let prepared = prepare(&[file(|i| if i == 40 || i == 95 { 1.0 } else { 0.0 })]).unwrap();
        let far = score_file(&prepared[0], &Profile::standard().costs, 1.0);
        assert!(near.score > far.score);
        assert!((far.score - (1.0 - 0.11)).abs() < 1e-9);
        assert_eq!((far.tp, far.fp), (1, 1));
    }

    #[test]
    fn probationary_rows_are_ignored() {
        // Rows 0..15 are probationary for a 100-row file.
        let result = standard(|i| if i < 15 || i == 40 { 1.0 } else { 0.0 });
        assert!((result.normalized - 100.0).abs() < 1e-9);
    }

    #[test]
    fn optimiser_prefers_the_higher_threshold_on_ties() {
        let prepared = prepare(&[file(|i| if i == 40 { 0.9 } else { 0.1 })]).unwrap();
        let best = optimize_threshold(&prepared, &Profile::standard().costs);
        assert_eq!(best.threshold, 0.9);
    }

    #[test]
    fn mismatched_lengths_are_refused() {
        let mut bad = file(|_| 0.0);
        bad.scores.pop();
        assert!(matches!(
            prepare(&[bad]),
            Err(NabError::LengthMismatch { .. })
        ));
    }
}
